#include "ac_graph.h"

#include <stdlib.h>
#include <string.h>

size_t ac_dtype_size(ac_dtype dt)
{
    switch (dt) {
    case AC_DT_F32: return 4;
    case AC_DT_U8: return 1;
    case AC_DT_I8: return 1;
    case AC_DT_U16: return 2;
    case AC_DT_I16: return 2;
    case AC_DT_I32: return 4;
    case AC_DT_I64: return 8;
    case AC_DT_BOOL: return 1;
    case AC_DT_F64: return 8;
    default: return 0;
    }
}

const char *ac_dtype_name(ac_dtype dt)
{
    switch (dt) {
    case AC_DT_F32: return "float32";
    case AC_DT_U8: return "uint8";
    case AC_DT_I8: return "int8";
    case AC_DT_U16: return "uint16";
    case AC_DT_I16: return "int16";
    case AC_DT_I32: return "int32";
    case AC_DT_I64: return "int64";
    case AC_DT_BOOL: return "bool";
    case AC_DT_F64: return "float64";
    default: return "undefined";
    }
}

ac_graph *ac_graph_new(const char *name)
{
    ac_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->arena = ac_arena_new(0);
    if (!g->arena) {
        free(g);
        return NULL;
    }
    g->name = ac_arena_strdup(g->arena, name ? name : "model");
    return g;
}

void ac_graph_destroy(ac_graph **p)
{
    if (!p || !*p)
        return;
    ac_graph *g = *p;
    free(g->tensors);
    free(g->nodes);
    ac_arena_destroy(&g->arena);
    free(g);
    *p = NULL;
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -1;
    memset((char *)n + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = n;
    *cap = ncap;
    return 0;
}

int ac_graph_add_tensor(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims)
{
    if (ndim > AC_MAX_DIMS)
        return -1;
    if (grow((void **)&g->tensors, &g->cap_tensors, g->ntensors + 1, sizeof(ac_tensor)))
        return -1;
    ac_tensor *t = &g->tensors[g->ntensors];
    memset(t, 0, sizeof *t);
    t->name = ac_arena_strdup(g->arena, name);
    if (!t->name)
        return -1;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim && dims; i++)
        t->dims[i] = dims[i];
    t->producer = -1;
    return g->ntensors++;
}

int ac_graph_find_tensor(const ac_graph *g, const char *name)
{
    /* Linear scan: graphs have at most a few thousand tensors and lookups happen at import. */
    for (int i = g->ntensors - 1; i >= 0; i--)
        if (strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}

int64_t ac_tensor_numel(const ac_tensor *t)
{
    if (t->ndim < 0)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0)
            return -1;
        n *= t->dims[i];
    }
    return n;
}

size_t ac_tensor_bytes(const ac_tensor *t)
{
    int64_t n = ac_tensor_numel(t);
    return n < 0 ? 0 : (size_t)n * ac_dtype_size(t->dtype);
}

bool ac_tensor_is_const(const ac_tensor *t)
{
    return t->data != NULL;
}

int ac_graph_set_const(ac_graph *g, int t, const void *data, size_t bytes, ac_err *err)
{
    ac_tensor *ts = &g->tensors[t];
    if (bytes != ac_tensor_bytes(ts))
        return ac_err_set(err, AC_E_INVALID, "tensor '%s': constant holds %zu bytes, shape needs %zu",
                          ts->name, bytes, ac_tensor_bytes(ts));
    ts->data = ac_arena_memdup(g->arena, data, bytes);
    if (!ts->data)
        return ac_err_set(err, AC_E_NOMEM, "tensor '%s': out of memory for %zu bytes", ts->name, bytes);
    return 0;
}

int ac_graph_add_node(ac_graph *g, const char *name, const char *op_type, ac_op op,
                      int ninputs, const int *inputs, int noutputs, const int *outputs)
{
    if (grow((void **)&g->nodes, &g->cap_nodes, g->nnodes + 1, sizeof(ac_node)))
        return -1;
    ac_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->name = ac_arena_strdup(g->arena, name);
    n->op_type = ac_arena_strdup(g->arena, op_type);
    n->op = op;
    n->ninputs = ninputs;
    n->noutputs = noutputs;
    n->inputs = ac_arena_memdup(g->arena, inputs, sizeof(int) * (size_t)(ninputs ? ninputs : 1));
    n->outputs = ac_arena_memdup(g->arena, outputs, sizeof(int) * (size_t)(noutputs ? noutputs : 1));
    if (!n->name || !n->op_type || !n->inputs || !n->outputs)
        return -1;
    return g->nnodes++;
}

ac_attr *ac_node_add_attr(ac_graph *g, ac_node *n, const char *name, ac_attr_type type)
{
    ac_attr *a = ac_arena_alloc(g->arena, sizeof(ac_attr) * (size_t)(n->nattrs + 1));
    if (!a)
        return NULL;
    if (n->nattrs)
        memcpy(a, n->attrs, sizeof(ac_attr) * (size_t)n->nattrs);
    n->attrs = a;
    ac_attr *na = &a[n->nattrs++];
    na->name = ac_arena_strdup(g->arena, name);
    na->type = type;
    na->tensor = -1;
    return na;
}

int ac_node_set_int(ac_graph *g, ac_node *n, const char *name, int64_t v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_INT);
    if (!a)
        return -1;
    a->i = v;
    return 0;
}

int ac_node_set_float(ac_graph *g, ac_node *n, const char *name, float v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_FLOAT);
    if (!a)
        return -1;
    a->f = v;
    return 0;
}

int ac_node_set_ints(ac_graph *g, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_INTS);
    /* an empty list still gets a (1-element) block: the arena has no 0-byte copies */
    if (!a || !(a->ints = ac_arena_memdup(g->arena, v, sizeof *v * (size_t)(cnt > 0 ? cnt : 1))))
        return -1;
    a->n = cnt;
    return 0;
}

int ac_node_set_string(ac_graph *g, ac_node *n, const char *name, const char *v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_STRING);
    return a && (a->s = ac_arena_strdup(g->arena, v)) ? 0 : -1;
}

int ac_graph_add_const(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data,
                       ac_err *err)
{
    int i = ac_graph_add_tensor(g, name, dt, ndim, dims);
    if (i < 0)
        return ac_err_set(err, AC_E_NOMEM, "out of memory for tensor '%s'", name), -1;
    if (ac_graph_set_const(g, i, data, ac_tensor_bytes(&g->tensors[i]), err))
        return -1;
    return i;
}

const ac_attr *ac_node_attr(const ac_node *n, const char *name)
{
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t ac_node_attr_int(const ac_node *n, const char *name, int64_t def, int *bad_type)
{
    const ac_attr *a = ac_node_attr(n, name);
    if (!a)
        return def;
    if (a->type != AC_ATTR_INT) {
        if (bad_type)
            *bad_type = 1;
        return def;
    }
    return a->i;
}

float ac_node_attr_float(const ac_node *n, const char *name, float def, int *bad_type)
{
    const ac_attr *a = ac_node_attr(n, name);
    if (!a)
        return def;
    if (a->type != AC_ATTR_FLOAT) {
        if (bad_type)
            *bad_type = 1;
        return def;
    }
    return a->f;
}

const char *ac_node_attr_string(const ac_node *n, const char *name, const char *def, int *bad_type)
{
    const ac_attr *a = ac_node_attr(n, name);
    if (!a)
        return def;
    if (a->type != AC_ATTR_STRING) {
        if (bad_type)
            *bad_type = 1;
        return def;
    }
    return a->s;
}

int ac_graph_set_io(ac_graph *g, int ninputs, const int *inputs, int noutputs, const int *outputs)
{
    g->inputs = ac_arena_memdup(g->arena, inputs, sizeof(int) * (size_t)(ninputs ? ninputs : 1));
    g->outputs = ac_arena_memdup(g->arena, outputs, sizeof(int) * (size_t)(noutputs ? noutputs : 1));
    if (!g->inputs || !g->outputs)
        return -1;
    g->ninputs = ninputs;
    g->noutputs = noutputs;
    for (int i = 0; i < g->ntensors; i++)
        g->tensors[i].is_input = g->tensors[i].is_output = false;
    for (int i = 0; i < ninputs; i++)
        g->tensors[inputs[i]].is_input = true;
    for (int i = 0; i < noutputs; i++)
        g->tensors[outputs[i]].is_output = true;
    return 0;
}

int ac_graph_set_meta(ac_graph *g, const char *key, const char *value)
{
    const char *v = ac_arena_strdup(g->arena, value);
    if (!v)
        return -1;
    for (int i = 0; i < g->nmeta; i++)
        if (strcmp(g->meta[i].key, key) == 0) {
            g->meta[i].value = v;
            return 0;
        }
    /* The arena cannot grow an array in place; metadata stays small, so copy. */
    ac_graph_meta *m = ac_arena_alloc(g->arena, sizeof *m * (size_t)(g->nmeta + 1));
    const char *k = ac_arena_strdup(g->arena, key);
    if (!m || !k)
        return -1;
    if (g->nmeta)
        memcpy(m, g->meta, sizeof *m * (size_t)g->nmeta);
    m[g->nmeta].key = k;
    m[g->nmeta].value = v;
    g->meta = m;
    g->nmeta++;
    return 0;
}

const char *ac_graph_get_meta(const ac_graph *g, const char *key)
{
    for (int i = 0; i < g->nmeta; i++)
        if (strcmp(g->meta[i].key, key) == 0)
            return g->meta[i].value;
    return NULL;
}

static const struct {
    const char *name;
    ac_op op;
} op_names[] = {
    {"Conv", AC_OP_CONV}, {"ConvTranspose", AC_OP_CONV_TRANSPOSE}, {"Gemm", AC_OP_GEMM},
    {"MatMul", AC_OP_MATMUL}, {"BatchNormalization", AC_OP_BATCHNORM}, {"Add", AC_OP_ADD},
    {"Sub", AC_OP_SUB}, {"Mul", AC_OP_MUL}, {"Div", AC_OP_DIV}, {"Relu", AC_OP_RELU},
    {"LeakyRelu", AC_OP_LEAKY_RELU}, {"PRelu", AC_OP_PRELU}, {"Clip", AC_OP_CLIP},
    {"Relu6", AC_OP_RELU6}, {"Sigmoid", AC_OP_SIGMOID}, {"Tanh", AC_OP_TANH},
    {"HardSigmoid", AC_OP_HARD_SIGMOID}, {"HardSwish", AC_OP_HARD_SWISH}, {"SiLU", AC_OP_SILU},
    {"Exp", AC_OP_EXP}, {"Sqrt", AC_OP_SQRT}, {"Softmax", AC_OP_SOFTMAX}, {"MaxPool", AC_OP_MAXPOOL},
    {"AveragePool", AC_OP_AVGPOOL}, {"GlobalAveragePool", AC_OP_GLOBAL_AVGPOOL},
    {"GlobalMaxPool", AC_OP_GLOBAL_MAXPOOL}, {"ReduceMean", AC_OP_REDUCE_MEAN},
    {"Concat", AC_OP_CONCAT}, {"Split", AC_OP_SPLIT}, {"Slice", AC_OP_SLICE},
    {"Reshape", AC_OP_RESHAPE}, {"Flatten", AC_OP_FLATTEN}, {"Transpose", AC_OP_TRANSPOSE},
    {"Squeeze", AC_OP_SQUEEZE}, {"Unsqueeze", AC_OP_UNSQUEEZE}, {"Pad", AC_OP_PAD},
    {"Resize", AC_OP_RESIZE}, {"Upsample", AC_OP_UPSAMPLE}, {"Identity", AC_OP_IDENTITY},
    {"Dropout", AC_OP_DROPOUT}, {"Constant", AC_OP_CONSTANT},
    {"ConstantOfShape", AC_OP_CONSTANT_OF_SHAPE}, {"Shape", AC_OP_SHAPE},
    {"Gather", AC_OP_GATHER}, {"Cast", AC_OP_CAST},
};

ac_op ac_op_from_onnx(const char *op_type)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strcmp(op_names[i].name, op_type) == 0)
            return op_names[i].op;
    return AC_OP_UNKNOWN;
}

const char *ac_op_name(ac_op op)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (op_names[i].op == op)
            return op_names[i].name;
    return "Unknown";
}

int ac_graph_uses(const ac_graph *g, int t)
{
    int uses = g->tensors[t].is_output ? 1 : 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].ninputs; j++)
            if (g->nodes[i].inputs[j] == t)
                uses++;
    return uses;
}

/* Kahn's algorithm over tensor producers; keeps the file order among ready nodes
 * so that the order is deterministic and close to what the author wrote. */
int ac_graph_toposort(ac_graph *g, ac_err *err)
{
    for (int i = 0; i < g->ntensors; i++)
        g->tensors[i].producer = -1;
    for (int i = 0; i < g->nnodes; i++) {
        for (int j = 0; j < g->nodes[i].noutputs; j++) {
            int t = g->nodes[i].outputs[j];
            if (t < 0)
                continue;
            if (g->tensors[t].producer >= 0)
                return ac_err_set(err, AC_E_INVALID,
                                  "tensor '%s' is written by two nodes ('%s' and '%s')",
                                  g->tensors[t].name, g->nodes[g->tensors[t].producer].name,
                                  g->nodes[i].name);
            if (g->tensors[t].is_input || ac_tensor_is_const(&g->tensors[t]))
                return ac_err_set(err, AC_E_INVALID,
                                  "node '%s' writes tensor '%s', which is a graph input or constant",
                                  g->nodes[i].name, g->tensors[t].name);
            g->tensors[t].producer = i;
        }
    }
    int n = g->nnodes;
    int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
    char *done = calloc((size_t)(n ? n : 1), 1);
    char *ready_t = calloc((size_t)(g->ntensors ? g->ntensors : 1), 1);
    if (!order || !done || !ready_t) {
        free(order);
        free(done);
        free(ready_t);
        return ac_err_set(err, AC_E_NOMEM, "out of memory sorting %d nodes", n);
    }
    /* Ready from the start: graph inputs and constants. A tensor that nothing
     * produces and that is neither stays unready and is reported below. */
    for (int t = 0; t < g->ntensors; t++)
        ready_t[t] = g->tensors[t].producer < 0 &&
                     (g->tensors[t].is_input || ac_tensor_is_const(&g->tensors[t]));
    int count = 0;
    int progress = 1;
    while (count < n && progress) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            int ok = 1;
            for (int j = 0; j < g->nodes[i].ninputs && ok; j++) {
                int t = g->nodes[i].inputs[j];
                if (t >= 0 && !ready_t[t])
                    ok = 0;
            }
            if (!ok)
                continue;
            done[i] = 1;
            order[count++] = i;
            for (int j = 0; j < g->nodes[i].noutputs; j++)
                if (g->nodes[i].outputs[j] >= 0)
                    ready_t[g->nodes[i].outputs[j]] = 1;
            progress = 1;
        }
    }
    int rc = 0;
    if (count < n) {
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            for (int j = 0; j < g->nodes[i].ninputs; j++) {
                int t = g->nodes[i].inputs[j];
                if (t >= 0 && !ready_t[t]) {
                    rc = ac_err_set(err, AC_E_INVALID,
                                    g->tensors[t].producer < 0
                                        ? "node '%s' (%s) reads tensor '%s', which nothing produces"
                                        : "node '%s' (%s) reads tensor '%s' inside a cycle",
                                    g->nodes[i].name, g->nodes[i].op_type, g->tensors[t].name);
                    break;
                }
            }
            if (rc)
                break;
        }
    } else {
        ac_node *sorted = malloc(sizeof(ac_node) * (size_t)(n > 0 ? n : 1));
        if (!sorted) {
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory sorting %d nodes", n);
        } else {
            for (int i = 0; i < n; i++)
                sorted[i] = g->nodes[order[i]];
            if (n > 0) /* g->nodes is NULL in a graph without nodes */
                memcpy(g->nodes, sorted, sizeof(ac_node) * (size_t)n);
            free(sorted);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < g->nodes[i].noutputs; j++)
                    if (g->nodes[i].outputs[j] >= 0)
                        g->tensors[g->nodes[i].outputs[j]].producer = i;
        }
    }
    for (int i = 0; i < g->noutputs && !rc; i++) {
        int t = g->outputs[i];
        if (g->tensors[t].producer < 0 && !g->tensors[t].is_input && !ac_tensor_is_const(&g->tensors[t]))
            rc = ac_err_set(err, AC_E_INVALID, "graph output '%s' is produced by no node",
                            g->tensors[t].name);
    }
    free(order);
    free(done);
    free(ready_t);
    return rc;
}

void ac_graph_prune(ac_graph *g)
{
    /* Walk backwards from outputs marking needed tensors; nodes are in topological order. */
    char *need = calloc((size_t)(g->ntensors ? g->ntensors : 1), 1);
    if (!need)
        return;
    for (int i = 0; i < g->noutputs; i++)
        need[g->outputs[i]] = 1;
    int kept = 0;
    char *keep = calloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
    if (!keep) {
        free(need);
        return;
    }
    for (int i = g->nnodes - 1; i >= 0; i--) {
        ac_node *n = &g->nodes[i];
        int used = 0, folded = 1;
        for (int j = 0; j < n->noutputs; j++) {
            if (n->outputs[j] >= 0 && need[n->outputs[j]])
                used = 1;
            if (n->outputs[j] >= 0 && !ac_tensor_is_const(&g->tensors[n->outputs[j]]))
                folded = 0;
        }
        /* A node whose outputs were all constant-folded has nothing left to compute. */
        if (!used || folded)
            continue;
        keep[i] = 1;
        for (int j = 0; j < n->ninputs; j++)
            if (n->inputs[j] >= 0)
                need[n->inputs[j]] = 1;
    }
    for (int i = 0; i < g->nnodes; i++)
        if (keep[i])
            g->nodes[kept++] = g->nodes[i];
    g->nnodes = kept;
    for (int i = 0; i < g->ntensors; i++)
        g->tensors[i].producer = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].noutputs; j++)
            if (g->nodes[i].outputs[j] >= 0)
                g->tensors[g->nodes[i].outputs[j]].producer = i;
    free(keep);
    free(need);
}
