#include "ac_import.h"

#include <string.h>

int ac_import_node(ac_graph *g, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node)
{
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, -1, NULL);
    if (t < 0)
        return -1;
    int i = ac_graph_add_node(g, name, ac_op_name(op), op, nin, ins, 1, &t);
    if (i < 0)
        return -1;
    *out = t;
    if (node)
        *node = &g->nodes[i];
    return 0;
}

const char *ac_import_base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}
