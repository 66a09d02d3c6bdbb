/* Fuzz target: a Darknet network. The input is the cfg text, optionally
 * followed by a NUL byte and the .weights bytes; without the NUL the cfg is
 * checked alone (every parameter zero). A loaded graph must have a shape for
 * every tensor a node writes, and its YOLO head metadata must parse; a
 * failure must come with a status and a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_darknet.h"
#include "fuzz_graph_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t cfg_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *w = nul ? nul + 1 : NULL;
    size_t wlen = nul ? size - cfg_len - 1 : 0;
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = ac_darknet_load_buffer((const char *)data, cfg_len, "fuzz.cfg", w, wlen, "fuzz.weights", NULL, &err);
    if (!fuzz_graph_loaded(g, &err))
        return 0;
    ac_darknet_head heads[16];
    int n;
    if (ac_darknet_heads(g, heads, 16, &n, &err) != 0)
        abort(); /* the importer wrote metadata its own reader refuses */
    ac_graph_destroy(&g);
    return 0;
}
