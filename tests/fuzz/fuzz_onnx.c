/* Fuzz target: a buffer as an ONNX model. When it loads, shape inference has
 * run too (ac_onnx_load_buffer does it), and every tensor a node writes must
 * then have a dtype and a shape. A failure must come with a message. */
#include <stdint.h>
#include <stdlib.h>

#include "ac_onnx.h"
#include "fuzz_graph_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_onnx_load_buffer(data, size, "fuzz.onnx", NULL, &err);
    if (!fuzz_graph_loaded(g, &err))
        return 0;
    ac_graph_destroy(&g);
    return 0;
}
