/* Fuzz target: an MXNet model. The input is the symbol JSON, a NUL byte and
 * the .params bytes (without the NUL, the bytes are a .params file checked
 * alone by ac_mxnet_check_params). The data input is given the shape
 * (1,3,8,8). A loaded graph must have a shape for every tensor a node
 * writes; a failure must come with a status and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_mxnet.h"
#include "fuzz_graph_check.h"

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
    if (!fuzz_graph_loaded(g, &err))
        return 0;
    ac_graph_destroy(&g);
    return 0;
}
