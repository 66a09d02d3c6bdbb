/* Fuzz target: a TensorFlow frozen GraphDef (graph/ac_tf.c: protobuf-c
 * unpacking, constant reading and folding, the NHWC->NCHW mapping, then shape
 * inference). A loaded graph must have a shape for every tensor a node
 * writes; a failure must come with a status and a message. */
#include <stdint.h>
#include <stdlib.h>

#include "ac_tf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_tf_load_buffer(data, size, "fuzz.pb", NULL, &err);
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
