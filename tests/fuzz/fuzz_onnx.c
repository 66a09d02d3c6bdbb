/* Fuzz target: a buffer as an ONNX model. When it loads, shape inference has
 * run too (ac_onnx_load_buffer does it), and every tensor a node writes must
 * then have a dtype and a shape. A failure must come with a message. */
#include <stdint.h>
#include <stdlib.h>

#include "ac_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_onnx_load_buffer(data, size, "fuzz.onnx", NULL, &err);
    if (!g) {
        if (err.code == AC_OK || !err.msg[0])
            abort(); /* an error without a status or message */
        return 0;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].noutputs; j++) {
            int t = g->nodes[i].outputs[j];
            if (t >= 0 && (g->tensors[t].ndim < 0 || g->tensors[t].dtype == AC_DT_UNDEFINED))
                abort(); /* shape inference claimed success but left a tensor unknown */
        }
    ac_graph_destroy(&g);
    return 0;
}
