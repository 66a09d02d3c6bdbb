#include "ac_import.h"

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

int ac_import_const(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data,
                    int *t, ac_err *err)
{
    int i = ac_graph_add_tensor(g, name, dt, ndim, dims);
    if (i < 0)
        return ac_err_set(err, AC_E_NOMEM, "out of memory for constant '%s'", name);
    if (ac_graph_set_const(g, i, data, ac_tensor_bytes(&g->tensors[i]), err))
        return err->code;
    *t = i;
    return 0;
}
