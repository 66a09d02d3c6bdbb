/* ac_import: the graph-building steps every importer repeats (TensorFlow,
 * MXNet, Caffe, Darknet): a node whose one output tensor carries the node's
 * name (constants: ac_graph_add_const; attributes: ac_node_set_* of
 * ac_graph.h). ac_import_node returns 0, or -1 when memory runs out (the
 * importer reports that with its own context: file, node, rule). */
#ifndef AC_IMPORT_H
#define AC_IMPORT_H

#include "ac_graph.h"

/* *node stays valid until the next node is added; node may be NULL. */
int ac_import_node(ac_graph *g, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node);
/* The file name of a path (what error messages name). */
const char *ac_import_base_name(const char *path);

#endif
