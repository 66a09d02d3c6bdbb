/* Fuzz target: an MXNet model. The input is the symbol JSON, a NUL byte and
 * the .params bytes (without the NUL, the bytes are a .params file checked
 * alone by ac_mxnet_check_params). The data input is given the shape
 * (1,3,8,8). A loaded graph must have a shape for every tensor a node
 * writes; a failure must come with a status and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_mxnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) {
        int n;
        if (ac_mxnet_check_params(data, size, "fuzz.params", &n, &err) && (err.code == AC_OK || !err.msg[0]))
            abort();
        return 0;
    }
    ac_onnx_shape shape = {.name = "", .ndim = 4, .dims = {1, 3, 8, 8}};
    ac_mxnet_options opt = {.shapes = &shape, .nshapes = 1};
    size_t jlen = (size_t)(nul - data);
    ac_graph *g = ac_mxnet_load_buffer((const char *)data, jlen, "fuzz-symbol.json", nul + 1, size - jlen - 1,
                                       "fuzz.params", &opt, &err);
    if (!g) {
        if (err.code == AC_OK || !err.msg[0])
            abort(); /* an error without a status or message */
        return 0;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].noutputs; j++) {
            int t = g->nodes[i].outputs[j];
            if (t >= 0 && (g->tensors[t].ndim < 0 || g->tensors[t].dtype == AC_DT_UNDEFINED))
                abort();
        }
    ac_graph_destroy(&g);
    return 0;
}
