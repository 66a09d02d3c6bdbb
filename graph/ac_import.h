/* ac_import: the graph-building steps every importer repeats (TensorFlow,
 * MXNet): a node whose one output tensor carries the node's name, and
 * a constant (attributes: ac_node_set_* of ac_graph.h). They return 0, or -1 when memory runs out (the
 * importer reports that with its own context: file, node, rule);
 * ac_import_const fills err itself. */
#ifndef AC_IMPORT_H
#define AC_IMPORT_H

#include "ac_graph.h"

/* *node stays valid until the next node is added; node may be NULL. */
int ac_import_node(ac_graph *g, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node);
/* A constant tensor holding a copy of data; returns 0 or err's code. */
int ac_import_const(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data,
                    int *t, ac_err *err);

#endif
