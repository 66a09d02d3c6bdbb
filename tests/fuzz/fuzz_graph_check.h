/* The rules every model-importer fuzz target checks on what the importer
 * returned: a failure comes with a status and a message; a loaded graph has a
 * dtype and a shape for every tensor a node writes (shape inference ran). A
 * broken rule aborts, which libFuzzer reports as a finding. */
#ifndef FUZZ_GRAPH_CHECK_H
#define FUZZ_GRAPH_CHECK_H

#include <stdbool.h>
#include <stdlib.h>

#include "ac_graph.h"

/* True when g loaded (the caller checks more, then destroys it). */
static bool fuzz_graph_loaded(const ac_graph *g, const ac_err *err)
{
    if (!g) {
        if (err->code == AC_OK || !err->msg[0])
            abort(); /* an error without a status or message */
        return false;
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].noutputs; j++) {
            int t = g->nodes[i].outputs[j];
            if (t >= 0 && (g->tensors[t].ndim < 0 || g->tensors[t].dtype == AC_DT_UNDEFINED))
                abort(); /* shape inference claimed success but left a tensor unknown */
        }
    return true;
}

#endif
