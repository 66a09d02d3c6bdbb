/* Fuzz target: a TensorFlow frozen GraphDef (graph/ac_tf.c: protobuf-c
 * unpacking, constant reading and folding, the NHWC->NCHW mapping, then shape
 * inference). A loaded graph must have a shape for every tensor a node
 * writes; a failure must come with a status and a message. */
#include <stdint.h>
#include <stdlib.h>

#include "ac_tf.h"
#include "fuzz_graph_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_tf_load_buffer(data, size, "fuzz.pb", NULL, &err);
    if (!fuzz_graph_loaded(g, &err))
        return 0;
    ac_graph_destroy(&g);
    return 0;
}
