/* Fuzz target: a Caffe network. The input is the prototxt text, optionally
 * followed by a NUL byte and the .caffemodel bytes; without the NUL the
 * prototxt is checked alone (every parameter zero). A loaded graph must have
 * a shape for every tensor a node writes; a failure must come with a status
 * and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_caffe.h"
#include "fuzz_graph_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *model = nul ? nul + 1 : NULL;
    size_t mlen = nul ? size - text_len - 1 : 0;
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_caffe_load_buffer((const char *)data, text_len, "fuzz.prototxt", model, mlen, "fuzz.caffemodel",
                                       NULL, &err);
    if (!fuzz_graph_loaded(g, &err))
        return 0;
    if (g->ninputs < 1 || g->noutputs < 1)
        abort(); /* a loaded network has inputs and outputs */
    ac_graph_destroy(&g);
    return 0;
}
