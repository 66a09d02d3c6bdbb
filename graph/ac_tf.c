#include "ac_tf.h"

#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ac_file.h"
#include "ac_import.h"
#include "ac_ops.h"
#include "tf_min.pb-c.h"

/* TensorFlow DataType codes (types.proto). */
enum { TF_FLOAT = 1, TF_DOUBLE = 2, TF_INT32 = 3, TF_INT64 = 9, TF_BOOL = 10 };

#define MAX_CONCAT 1024

/* The IR value of a TF node's output 0; nchw: a 4-D activation held in NCHW. */
typedef struct {
    int t;
    bool nchw;
} tf_val;

typedef struct {
    const char *file;
    ac_err *err;
    ac_graph *g;
    Actf__GraphDef *gd;
    int n;
    int *order;       /* node indices sorted by name, for lookup */
    tf_val *val;      /* per node; t = -1 until built */
    char *state;      /* DFS: 0 new, 1 on the stack, 2 built */
    bool *consumed;   /* read by another node */
    char *isconst;    /* FOLD_* per node */
    const Actf__NodeDef *cur;
    const ac_tf_options *opt;
    int nplaceholders;
    int inputs[AC_MAX_DIMS * 4];
    int ninputs;
    char name[512];   /* scratch for derived names */
} tl;

#define TRY(x)                                                                                                        \
    do {                                                                                                              \
        int rc_ = (x);                                                                                                \
        if (rc_)                                                                                                      \
            return rc_;                                                                                               \
    } while (0)

/* An error about the node being built: file, node, op, then the rule. */
static int node_err(tl *L, ac_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int node_err(tl *L, ac_status code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->cur)
        return ac_err_set(L->err, code, "%s: node '%s' (%s): %s", L->file, L->cur->name, L->cur->op, msg);
    return ac_err_set(L->err, code, "%s: %s", L->file, msg);
}

static int nomem(tl *L) { return node_err(L, AC_E_NOMEM, "out of memory"); }

/* ---- lookup and attributes ---------------------------------------------------------------- */

/* A node's index with its name: the comparator needs no shared state, so
 * graphs can be imported on several threads at once. */
typedef struct {
    const char *name;
    int index;
} named_node;

static int cmp_node(const void *a, const void *b)
{
    const named_node *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->index - y->index;
}

/* L->order: node indices sorted by name. */
static int sort_by_name(tl *L)
{
    named_node *tmp = malloc(sizeof *tmp * (size_t)(L->n > 0 ? L->n : 1));
    if (!tmp)
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    for (int i = 0; i < L->n; i++)
        tmp[i] = (named_node){L->gd->node[i]->name, i};
    qsort(tmp, (size_t)L->n, sizeof *tmp, cmp_node);
    for (int i = 0; i < L->n; i++)
        L->order[i] = tmp[i].index;
    free(tmp);
    return 0;
}

/* Node index of an input reference "name", "name:0"; -1 when absent. *port
 * gets the output index, *control whether it is a "^name" control edge. */
static int find_node(tl *L, const char *ref, int *port, bool *control)
{
    *control = ref[0] == '^';
    if (*control)
        ref++;
    char key[512];
    snprintf(key, sizeof key, "%s", ref);
    *port = 0;
    char *colon = strrchr(key, ':');
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end != colon + 1 && !*end && p >= 0) {
            *port = (int)p;
            *colon = 0;
        }
    }
    int lo = 0, hi = L->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(key, L->gd->node[L->order[mid]]->name);
        if (!c)
            return L->order[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static const Actf__AttrValue *attr(const Actf__NodeDef *nd, const char *key)
{
    for (size_t i = 0; i < nd->n_attr; i++)
        if (nd->attr[i]->key && !strcmp(nd->attr[i]->key, key))
            return nd->attr[i]->value;
    return NULL;
}

static int attr_case(tl *L, const char *key, Actf__AttrValue__ValueCase want, const char *what, bool required,
                     const Actf__AttrValue **out)
{
    const Actf__AttrValue *a = attr(L->cur, key);
    *out = NULL;
    if (!a) {
        if (required)
            return node_err(L, AC_E_INVALID, "attribute '%s' (%s) is missing", key, what);
        return 0;
    }
    if (a->value_case != want)
        return node_err(L, AC_E_INVALID, "attribute '%s' must be %s", key, what);
    *out = a;
    return 0;
}

static int attr_bool(tl *L, const char *key, bool def, bool *v)
{
    const Actf__AttrValue *a;
    TRY(attr_case(L, key, ACTF__ATTR_VALUE__VALUE_B, "a bool", false, &a));
    *v = a ? a->b : def;
    return 0;
}

static int attr_float(tl *L, const char *key, float def, float *v)
{
    const Actf__AttrValue *a;
    TRY(attr_case(L, key, ACTF__ATTR_VALUE__VALUE_F, "a float", false, &a));
    *v = a ? a->f : def;
    return 0;
}

/* A string attribute compared with def when absent. */
static int attr_str(tl *L, const char *key, const char *def, char *out, size_t cap)
{
    const Actf__AttrValue *a;
    TRY(attr_case(L, key, ACTF__ATTR_VALUE__VALUE_S, "a string", false, &a));
    if (!a) {
        snprintf(out, cap, "%s", def);
        return 0;
    }
    size_t n = a->s.len < cap - 1 ? a->s.len : cap - 1;
    memcpy(out, a->s.data, n);
    out[n] = 0;
    return 0;
}

/* A list(int) attribute of exactly n values (n < 0: any count up to max). */
static int attr_ints(tl *L, const char *key, int n, int max, int64_t *v, int *count)
{
    const Actf__AttrValue *a;
    TRY(attr_case(L, key, ACTF__ATTR_VALUE__VALUE_LIST, "a list of ints", n > 0, &a));
    size_t got = a && a->list ? a->list->n_i : 0;
    if ((n > 0 && got != (size_t)n) || got > (size_t)max)
        return node_err(L, AC_E_INVALID, "attribute '%s' has %zu values, expected %d", key, got, n > 0 ? n : max);
    for (size_t i = 0; i < got; i++)
        v[i] = a->list->i[i];
    if (count)
        *count = (int)got;
    return 0;
}

/* NHWC is the only data_format: NCHW TF graphs are GPU-only and rare frozen. */
static int check_nhwc(tl *L)
{
    char fmt[16];
    TRY(attr_str(L, "data_format", "NHWC", fmt, sizeof fmt));
    if (strcmp(fmt, "NHWC"))
        return node_err(L, AC_E_UNSUPPORTED, "data_format '%s' is not supported (NHWC only)", fmt);
    return 0;
}

/* ---- constants ---------------------------------------------------------------------------- */

typedef struct {
    ac_dtype dt;
    int ndim;
    int64_t dims[AC_MAX_DIMS];
    int64_t numel;
    void *data; /* malloc'ed, numel elements of dt */
} tf_const;

static void const_free(tf_const *c)
{
    free(c->data);
    c->data = NULL;
}

/* A Const node's TensorProto: tensor_content bytes, or the typed *_val list
 * where a single value fills the whole shape (TF's compact form). */
static int read_tensor(tl *L, const Actf__TensorProto *tp, tf_const *c)
{
    memset(c, 0, sizeof *c);
    switch (tp->dtype) {
    case TF_FLOAT: c->dt = AC_DT_F32; break;
    case TF_INT32: c->dt = AC_DT_I32; break;
    case TF_INT64: c->dt = AC_DT_I64; break;
    default: return node_err(L, AC_E_UNSUPPORTED, "constant of TF DataType %d (float, int32 and int64 only)", tp->dtype);
    }
    const Actf__TensorShapeProto *sp = tp->tensor_shape;
    size_t nd = sp ? sp->n_dim : 0;
    if (nd > AC_MAX_DIMS)
        return node_err(L, AC_E_UNSUPPORTED, "constant of rank %zu (at most %d)", nd, AC_MAX_DIMS);
    c->ndim = (int)nd;
    c->numel = 1;
    for (size_t i = 0; i < nd; i++) {
        int64_t d = sp->dim[i]->size;
        if (d < 0 || d > AC_ONNX_MAX_NUMEL || c->numel * d > AC_ONNX_MAX_NUMEL)
            return node_err(L, AC_E_INVALID, "constant dim %zu is %lld: out of range", i, (long long)d);
        c->dims[i] = d;
        c->numel *= d;
    }
    size_t es = ac_dtype_size(c->dt), bytes = (size_t)c->numel * es;
    c->data = malloc(bytes ? bytes : 1);
    if (!c->data)
        return nomem(L);
    if (tp->tensor_content.len) {
        if (tp->tensor_content.len != bytes) {
            const_free(c);
            return node_err(L, AC_E_INVALID, "tensor_content has %zu bytes, the shape needs %zu", tp->tensor_content.len,
                            bytes);
        }
        memcpy(c->data, tp->tensor_content.data, bytes);
        return 0;
    }
    size_t nv = c->dt == AC_DT_F32 ? tp->n_float_val : c->dt == AC_DT_I32 ? tp->n_int_val : tp->n_int64_val;
    if (c->numel && !nv) {
        const_free(c);
        return node_err(L, AC_E_INVALID, "constant has %lld elements but no values", (long long)c->numel);
    }
    if (nv > (size_t)c->numel) {
        const_free(c);
        return node_err(L, AC_E_INVALID, "constant has %zu values for %lld elements", nv, (long long)c->numel);
    }
    /* TF repeats the last value to fill the shape. */
    for (int64_t i = 0; i < c->numel; i++) {
        size_t k = (size_t)i < nv ? (size_t)i : nv - 1;
        if (c->dt == AC_DT_F32)
            ((float *)c->data)[i] = tp->float_val[k];
        else if (c->dt == AC_DT_I32)
            ((int32_t *)c->data)[i] = tp->int_val[k];
        else
            ((int64_t *)c->data)[i] = tp->int64_val[k];
    }
    return 0;
}

/* ---- constant folding ---------------------------------------------------------------------
 * Frozen graphs keep arithmetic on constants as nodes (Keras' batch norm is
 * Rsqrt/Mul/Sub over its frozen statistics); the importer evaluates such
 * subgraphs, so they reach the IR as constants and BN as Mul + Add. */

enum { FOLD_UNKNOWN = 0, FOLD_YES, FOLD_NO };
#define FOLD_DEPTH 64

static bool fold_op(const char *op)
{
    static const char *const ops[] = {"Identity", "Rsqrt", "Add", "AddV2", "Sub", "Mul", "RealDiv"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(op, ops[i]))
            return true;
    return false;
}

/* Whether node j's value is a constant (a Const, or foldable ops on constants). */
static bool const_kind_at(tl *L, int j, int depth)
{
    if (L->isconst[j] != FOLD_UNKNOWN)
        return L->isconst[j] == FOLD_YES;
    const Actf__NodeDef *nd = L->gd->node[j];
    bool yes = false;
    if (!strcmp(nd->op, "Const"))
        yes = true;
    else if (depth < FOLD_DEPTH && fold_op(nd->op) && nd->n_input >= 1) {
        yes = true;
        for (size_t i = 0; i < nd->n_input && yes; i++) {
            int port;
            bool ctl;
            int k = find_node(L, nd->input[i], &port, &ctl);
            if (ctl)
                continue;
            yes = k >= 0 && port == 0 && const_kind_at(L, k, depth + 1);
        }
    }
    L->isconst[j] = yes ? FOLD_YES : FOLD_NO;
    return yes;
}

static bool const_kind(tl *L, int j) { return j >= 0 && const_kind_at(L, j, 0); }

/* out = a op b with numpy broadcasting (float only). */
static int fold_binary(tl *L, const char *op, const tf_const *a, const tf_const *b, tf_const *out)
{
    if (a->dt != AC_DT_F32 || b->dt != AC_DT_F32)
        return node_err(L, AC_E_UNSUPPORTED, "folding %s on integer constants", op);
    memset(out, 0, sizeof *out);
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t da[AC_MAX_DIMS], db[AC_MAX_DIMS];
    out->dt = AC_DT_F32;
    out->ndim = r;
    out->numel = 1;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        da[i] = ia >= 0 ? a->dims[ia] : 1;
        db[i] = ib >= 0 ? b->dims[ib] : 1;
        if (da[i] != db[i] && da[i] != 1 && db[i] != 1)
            return node_err(L, AC_E_INVALID, "constant operands of shapes that do not broadcast (dim %d: %lld vs %lld)",
                            i, (long long)da[i], (long long)db[i]);
        out->dims[i] = da[i] == 1 ? db[i] : da[i];
        out->numel *= out->dims[i];
    }
    float *o = malloc(sizeof(float) * (size_t)(out->numel ? out->numel : 1));
    if (!o)
        return nomem(L);
    const float *pa = a->data, *pb = b->data;
    int64_t idx[AC_MAX_DIMS] = {0};
    for (int64_t e = 0; e < out->numel; e++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < r; i++) {
            oa = oa * da[i] + (da[i] == 1 ? 0 : idx[i]);
            ob = ob * db[i] + (db[i] == 1 ? 0 : idx[i]);
        }
        float x = pa[oa], y = pb[ob];
        o[e] = op[0] == 'A' ? x + y : op[0] == 'S' ? x - y : op[0] == 'M' ? x * y : x / y;
        for (int i = r - 1; i >= 0 && ++idx[i] == out->dims[i]; i--)
            idx[i] = 0;
    }
    out->data = o;
    return 0;
}

/* The value of constant node j (const_kind(L, j) must hold). */
static int eval_const(tl *L, int j, tf_const *c)
{
    const Actf__NodeDef *nd = L->gd->node[j];
    if (!strcmp(nd->op, "Const")) {
        const Actf__AttrValue *a = attr(nd, "value");
        if (!a || a->value_case != ACTF__ATTR_VALUE__VALUE_TENSOR || !a->tensor)
            return node_err(L, AC_E_INVALID, "Const '%s' has no 'value' tensor", nd->name);
        return read_tensor(L, a->tensor, c);
    }
    tf_const in[2];
    int nin = 0;
    for (size_t i = 0; i < nd->n_input && nin < 2; i++) {
        int port;
        bool ctl;
        int k = find_node(L, nd->input[i], &port, &ctl);
        if (ctl)
            continue;
        int rc = eval_const(L, k, &in[nin]);
        if (rc) {
            if (nin)
                const_free(&in[0]);
            return rc;
        }
        nin++;
    }
    int rc = 0;
    if (!strcmp(nd->op, "Identity")) {
        *c = in[0];
        return 0;
    }
    if (!strcmp(nd->op, "Rsqrt")) {
        if (in[0].dt != AC_DT_F32)
            rc = node_err(L, AC_E_UNSUPPORTED, "folding Rsqrt '%s' of an integer constant", nd->name);
        for (int64_t i = 0; !rc && i < in[0].numel; i++)
            ((float *)in[0].data)[i] = 1.0f / sqrtf(((float *)in[0].data)[i]);
        if (!rc) {
            *c = in[0];
            return 0;
        }
    } else if (nin != 2)
        rc = node_err(L, AC_E_INVALID, "%s '%s' needs two inputs", nd->op, nd->name);
    else
        rc = fold_binary(L, !strcmp(nd->op, "RealDiv") ? "Div" : nd->op, &in[0], &in[1], c);
    for (int i = 0; i < nin; i++)
        const_free(&in[i]);
    return rc;
}

/* The constant behind input k of the current node. */
static int input_const(tl *L, int k, const char *what, tf_const *c)
{
    const Actf__NodeDef *nd = L->cur;
    if ((size_t)k >= nd->n_input)
        return node_err(L, AC_E_INVALID, "input %d (%s) is missing", k, what);
    int port;
    bool ctl;
    int j = find_node(L, nd->input[k], &port, &ctl);
    if (j < 0 || ctl)
        return node_err(L, AC_E_INVALID, "input '%s' names no node", nd->input[k]);
    if (!const_kind(L, j))
        return node_err(L, AC_E_UNSUPPORTED, "%s (input '%s', a %s) must be a constant", what, nd->input[k],
                        L->gd->node[j]->op);
    return eval_const(L, j, c);
}

/* Integer values of a small constant (axes, shapes, paddings, sizes). */
static int const_ints(tl *L, int k, const char *what, int64_t *v, int max, int *n)
{
    tf_const c;
    TRY(input_const(L, k, what, &c));
    if (c.dt == AC_DT_F32 || c.numel > max) {
        const_free(&c);
        return node_err(L, AC_E_INVALID, "%s must be at most %d integers", what, max);
    }
    for (int64_t i = 0; i < c.numel; i++)
        v[i] = c.dt == AC_DT_I32 ? ((int32_t *)c.data)[i] : ((int64_t *)c.data)[i];
    *n = (int)c.numel;
    const_free(&c);
    return 0;
}

static const char *derived(tl *L, const char *suffix)
{
    snprintf(L->name, sizeof L->name, "%s/%s", L->cur->name, suffix);
    return L->name;
}

static int new_const(tl *L, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data, int *t)
{
    *t = ac_graph_add_const(L->g, name, dt, ndim, dims, data, L->err);
    return *t < 0 ? (int)L->err->code : 0;
}

static int ints_const(tl *L, const char *suffix, int n, const int64_t *v, int *t)
{
    int64_t d = n;
    return new_const(L, derived(L, suffix), AC_DT_I64, 1, &d, v, t);
}

/* ---- nodes -------------------------------------------------------------------------------- */

static int add_node(tl *L, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node)
{
    return ac_import_node(L->g, name, op, nin, ins, out, node) ? nomem(L) : 0;
}

static int set_ints(tl *L, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    return ac_node_set_ints(L->g, n, name, cnt, v) ? nomem(L) : 0;
}

static int set_int(tl *L, ac_node *n, const char *name, int64_t v)
{
    return ac_node_set_int(L->g, n, name, v) ? nomem(L) : 0;
}

static int set_str(tl *L, ac_node *n, const char *name, const char *v)
{
    return ac_node_set_string(L->g, n, name, v) ? nomem(L) : 0;
}

static const int64_t TO_NCHW[4] = {0, 3, 1, 2}, TO_NHWC[4] = {0, 2, 3, 1};
/* NHWC axis -> NCHW axis. */
static const int NHWC_AXIS[4] = {0, 2, 3, 1};

static int transpose(tl *L, int x, const int64_t *perm, const char *name, int *out)
{
    ac_node *n;
    TRY(add_node(L, name, AC_OP_TRANSPOSE, 1, &x, out, &n));
    return set_ints(L, n, "perm", 4, perm);
}

static int rank_of(tl *L, int t);

/* A value in NCHW: 4-D NHWC activations get a Transpose. */
static int as_nchw(tl *L, tf_val v, const char *what, int *t)
{
    if (v.nchw) {
        *t = v.t;
        return 0;
    }
    int r = rank_of(L, v.t);
    if (r < 0)
        return L->err->code;
    if (r != 4)
        return node_err(L, AC_E_INVALID, "%s must be 4-D (NHWC), it has %d dims", what, r);
    return transpose(L, v.t, TO_NCHW, derived(L, "to_nchw"), t);
}

/* A value in TF's own layout (NHWC for 4-D). */
static int as_tf(tl *L, tf_val v, int *t)
{
    if (!v.nchw) {
        *t = v.t;
        return 0;
    }
    return transpose(L, v.t, TO_NHWC, derived(L, "to_nhwc"), t);
}

/* The rank of tensor t: shape inference over the graph built so far, as the
 * ops that need it (Resize sizes, broadcasting) are met. Returns -1 with err set. */
static int infer(tl *L)
{
    if (ac_graph_toposort(L->g, L->err) || ac_graph_infer_shapes(L->g, L->err))
        return ac_err_prefix(L->err, "%s: ", L->file);
    return 0;
}

static int rank_of(tl *L, int t)
{
    if (L->g->tensors[t].ndim < 0 && infer(L))
        return -1;
    return L->g->tensors[t].ndim;
}

static int build_const(tl *L, int j, tf_val *out);

/* ---- inputs ------------------------------------------------------------------------------- */

static int build_node(tl *L, int k);

/* The value of input k of the current node (a built node, or a Const as an IR constant). */
static int input(tl *L, int k, tf_val *v)
{
    const Actf__NodeDef *nd = L->cur;
    if ((size_t)k >= nd->n_input)
        return node_err(L, AC_E_INVALID, "input %d is missing (the op needs it)", k);
    int port;
    bool ctl;
    int j = find_node(L, nd->input[k], &port, &ctl);
    if (j < 0 || ctl)
        return node_err(L, AC_E_INVALID, "input '%s' names no node", nd->input[k]);
    if (port != 0)
        return node_err(L, AC_E_UNSUPPORTED, "input '%s': only output 0 of a node is supported", nd->input[k]);
    if (L->val[j].t < 0) {
        /* A constant read as an activation: made an IR constant on first use
         * (constants read as weights are converted by their consumer instead). */
        if (const_kind(L, j)) {
            const Actf__NodeDef *save = L->cur;
            L->cur = L->gd->node[j];
            int rc = build_const(L, j, &L->val[j]);
            L->cur = save;
            TRY(rc);
        }
    }
    if (L->val[j].t < 0)
        return node_err(L, AC_E_INTERNAL, "input '%s' was not built before its consumer", nd->input[k]);
    *v = L->val[j];
    return 0;
}

static int node_inputs(tl *L, const Actf__NodeDef *nd, int *count)
{
    int c = 0;
    for (size_t i = 0; i < nd->n_input; i++)
        if (nd->input[i][0] != '^')
            c++;
    *count = c;
    return 0;
}

/* ---- ops ---------------------------------------------------------------------------------- */

static int padding_attr(tl *L, ac_node *n)
{
    char pad[16];
    TRY(attr_str(L, "padding", "", pad, sizeof pad));
    if (!strcmp(pad, "SAME"))
        return set_str(L, n, "auto_pad", "SAME_UPPER"); /* TF puts the odd pixel at the end */
    if (!strcmp(pad, "VALID"))
        return set_str(L, n, "auto_pad", "VALID");
    if (!strcmp(pad, "EXPLICIT")) {
        int64_t p[8], pads[4];
        TRY(attr_ints(L, "explicit_paddings", 8, 8, p, NULL));
        if (p[0] || p[1] || p[6] || p[7])
            return node_err(L, AC_E_UNSUPPORTED, "explicit_paddings on the batch or channel axis");
        pads[0] = p[2], pads[1] = p[4], pads[2] = p[3], pads[3] = p[5];
        return set_ints(L, n, "pads", 4, pads);
    }
    return node_err(L, AC_E_INVALID, "padding '%s' is not SAME, VALID or EXPLICIT", pad);
}

/* strides / dilations / ksize [1, h, w, 1] -> [h, w]. */
static int spatial(tl *L, const char *key, bool required, int64_t *hw)
{
    int64_t v[4] = {1, 1, 1, 1};
    int cnt = 0;
    TRY(attr_ints(L, key, required ? 4 : -1, 4, v, &cnt));
    if (!required && cnt == 0)
        v[0] = v[1] = v[2] = v[3] = 1;
    else if (cnt != 4)
        return node_err(L, AC_E_INVALID, "attribute '%s' must have 4 values", key);
    if (v[0] != 1 || v[3] != 1)
        return node_err(L, AC_E_UNSUPPORTED, "attribute '%s' must be 1 on the batch and channel axes", key);
    if (v[1] < 1 || v[2] < 1 || v[1] > 65536 || v[2] > 65536)
        return node_err(L, AC_E_INVALID, "attribute '%s' must be in [1, 65536]", key);
    hw[0] = v[1];
    hw[1] = v[2];
    return 0;
}

static int build_conv(tl *L, bool depthwise, tf_val *out)
{
    TRY(check_nhwc(L));
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    tf_const f;
    TRY(input_const(L, 1, "filter", &f));
    if (f.dt != AC_DT_F32 || f.ndim != 4) {
        const_free(&f);
        return node_err(L, AC_E_INVALID, "filter must be a 4-D float constant (HWIO)");
    }
    int64_t kh = f.dims[0], kw = f.dims[1], ci = f.dims[2], co = f.dims[3];
    int64_t odims[4] = {depthwise ? ci * co : co, depthwise ? 1 : ci, kh, kw};
    float *w = malloc(sizeof(float) * (size_t)(f.numel ? f.numel : 1));
    if (!w) {
        const_free(&f);
        return nomem(L);
    }
    const float *src = f.data;
    /* HWIO -> OIHW; depthwise HWCM -> (C*M) 1 H W with channel c*M + m. */
    for (int64_t y = 0; y < kh; y++)
        for (int64_t xx = 0; xx < kw; xx++)
            for (int64_t i = 0; i < ci; i++)
                for (int64_t o = 0; o < co; o++) {
                    float v = src[((y * kw + xx) * ci + i) * co + o];
                    int64_t oc = depthwise ? i * co + o : o, ic = depthwise ? 0 : i;
                    w[((oc * odims[1] + ic) * kh + y) * kw + xx] = v;
                }
    const_free(&f);
    int wt = -1;
    int rc = new_const(L, derived(L, "W"), AC_DT_F32, 4, odims, w, &wt);
    free(w);
    TRY(rc);
    int xt;
    TRY(as_nchw(L, x, "input", &xt));
    int ins[2] = {xt, wt};
    ac_node *n;
    TRY(add_node(L, L->cur->name, AC_OP_CONV, 2, ins, &out->t, &n));
    int64_t st[2], dl[2], ks[2] = {kh, kw};
    TRY(spatial(L, "strides", true, st));
    TRY(spatial(L, "dilations", false, dl));
    TRY(set_ints(L, n, "kernel_shape", 2, ks));
    TRY(set_ints(L, n, "strides", 2, st));
    TRY(set_ints(L, n, "dilations", 2, dl));
    if (depthwise)
        TRY(set_int(L, n, "group", ci));
    TRY(padding_attr(L, n));
    out->nchw = true;
    return 0;
}

static int build_pool(tl *L, ac_op op, tf_val *out)
{
    TRY(check_nhwc(L));
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int xt;
    TRY(as_nchw(L, x, "input", &xt));
    ac_node *n;
    TRY(add_node(L, L->cur->name, op, 1, &xt, &out->t, &n));
    int64_t ks[2], st[2];
    TRY(spatial(L, "ksize", true, ks));
    TRY(spatial(L, "strides", true, st));
    TRY(set_ints(L, n, "kernel_shape", 2, ks));
    TRY(set_ints(L, n, "strides", 2, st));
    TRY(padding_attr(L, n)); /* AvgPool: ONNX count_include_pad=0 is TF's SAME average */
    out->nchw = true;
    return 0;
}

/* A constant operand of an elementwise op with an NCHW activation: TF
 * broadcasts it against NHWC, so it is padded to 4-D and permuted. */
static int const_operand_nchw(tl *L, int k, int *t)
{
    tf_const c;
    TRY(input_const(L, k, "operand", &c));
    if (c.dt != AC_DT_F32 || c.ndim > 4) {
        const_free(&c);
        return node_err(L, AC_E_UNSUPPORTED, "a constant operand of a 4-D activation must be float, at most 4-D");
    }
    int64_t d4[4] = {1, 1, 1, 1};
    for (int i = 0; i < c.ndim; i++)
        d4[4 - c.ndim + i] = c.dims[i];
    int64_t nd[4] = {d4[0], d4[3], d4[1], d4[2]};
    float *p = malloc(sizeof(float) * (size_t)(c.numel ? c.numel : 1));
    if (!p) {
        const_free(&c);
        return nomem(L);
    }
    const float *s = c.data;
    for (int64_t a = 0; a < d4[0]; a++)
        for (int64_t h = 0; h < d4[1]; h++)
            for (int64_t w = 0; w < d4[2]; w++)
                for (int64_t ch = 0; ch < d4[3]; ch++)
                    p[((a * d4[3] + ch) * d4[1] + h) * d4[2] + w] = s[((a * d4[1] + h) * d4[2] + w) * d4[3] + ch];
    const_free(&c);
    int rc = new_const(L, derived(L, k ? "b" : "a"), AC_DT_F32, 4, nd, p, t);
    free(p);
    return rc;
}

static bool input_is_const(tl *L, int k)
{
    int port;
    bool ctl;
    if ((size_t)k >= L->cur->n_input)
        return false;
    int j = find_node(L, L->cur->input[k], &port, &ctl);
    return !ctl && port == 0 && const_kind(L, j);
}

static int build_binary(tl *L, ac_op op, tf_val *out)
{
    tf_val a = {-1, false}, b = {-1, false};
    TRY(input(L, 0, &a));
    TRY(input(L, 1, &b));
    bool ca = input_is_const(L, 0), cb = input_is_const(L, 1);
    int at = a.t, bt = b.t;
    bool nchw = false;
    if (a.nchw && cb) {
        TRY(const_operand_nchw(L, 1, &bt));
        nchw = true;
    } else if (b.nchw && ca) {
        TRY(const_operand_nchw(L, 0, &at));
        nchw = true;
    } else if (a.nchw || b.nchw) {
        /* Two activations: both NCHW when both are 4-D, else both in TF's layout. */
        int ra = rank_of(L, a.t), rb = rank_of(L, b.t);
        if (ra < 0 || rb < 0)
            return L->err->code;
        if (ra == 4 && rb == 4) {
            TRY(as_nchw(L, a, "operand 0", &at));
            TRY(as_nchw(L, b, "operand 1", &bt));
            nchw = true;
        } else {
            TRY(as_tf(L, a, &at));
            TRY(as_tf(L, b, &bt));
        }
    }
    int ins[2] = {at, bt};
    TRY(add_node(L, L->cur->name, op, 2, ins, &out->t, NULL));
    out->nchw = nchw;
    return 0;
}

static int build_bias_add(tl *L, tf_val *out)
{
    TRY(check_nhwc(L));
    return build_binary(L, AC_OP_ADD, out);
}

static int build_unary(tl *L, ac_op op, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    TRY(add_node(L, L->cur->name, op, 1, &x.t, &out->t, NULL));
    out->nchw = x.nchw;
    return 0;
}

static int build_relu6(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    float lo = 0, hi = 6;
    int ins[3] = {x.t, -1, -1};
    TRY(new_const(L, derived(L, "min"), AC_DT_F32, 0, NULL, &lo, &ins[1]));
    TRY(new_const(L, derived(L, "max"), AC_DT_F32, 0, NULL, &hi, &ins[2]));
    TRY(add_node(L, L->cur->name, AC_OP_CLIP, 3, ins, &out->t, NULL));
    out->nchw = x.nchw;
    return 0;
}

static int build_batchnorm(tl *L, tf_val *out)
{
    TRY(check_nhwc(L));
    bool training;
    TRY(attr_bool(L, "is_training", false, &training));
    if (training)
        return node_err(L, AC_E_UNSUPPORTED, "is_training=true (freeze the graph for inference)");
    float eps;
    TRY(attr_float(L, "epsilon", 1e-4f, &eps));
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int ins[5];
    TRY(as_nchw(L, x, "input", &ins[0]));
    static const char *const what[4] = {"scale", "offset", "mean", "variance"};
    for (int i = 1; i < 5; i++) {
        tf_const c;
        TRY(input_const(L, i, what[i - 1], &c));
        if (c.dt != AC_DT_F32 || c.ndim != 1) {
            const_free(&c);
            return node_err(L, AC_E_INVALID, "%s must be a 1-D float constant", what[i - 1]);
        }
        int rc = new_const(L, derived(L, what[i - 1]), AC_DT_F32, 1, c.dims, c.data, &ins[i]);
        const_free(&c);
        TRY(rc);
    }
    ac_node *n;
    TRY(add_node(L, L->cur->name, AC_OP_BATCHNORM, 5, ins, &out->t, &n));
    out->nchw = true;
    return ac_node_set_float(L->g, n, "epsilon", eps) ? nomem(L) : 0;
}

static int build_mean(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int64_t axes[AC_MAX_DIMS];
    int na = 0;
    TRY(const_ints(L, 1, "reduction_indices", axes, AC_MAX_DIMS, &na));
    bool keep;
    TRY(attr_bool(L, "keep_dims", false, &keep));
    int r = rank_of(L, x.t);
    if (r < 0)
        return L->err->code;
    for (int i = 0; i < na; i++) {
        if (axes[i] < -r || axes[i] >= r)
            return node_err(L, AC_E_INVALID, "axis %lld is out of range for a %d-D input", (long long)axes[i], r);
        if (axes[i] < 0)
            axes[i] += r;
    }
    /* Dropping axes from NCHW leaves the rest in NCHW order; that is TF's
     * order only for the global H,W mean, so otherwise reduce in NHWC. */
    bool hw_only = na == 2 && ((axes[0] == 1 && axes[1] == 2) || (axes[0] == 2 && axes[1] == 1));
    int xt = x.t;
    bool nchw = x.nchw && (keep || hw_only);
    if (x.nchw && !nchw)
        TRY(as_tf(L, x, &xt));
    if (nchw)
        for (int i = 0; i < na; i++)
            axes[i] = NHWC_AXIS[axes[i]];
    ac_node *n;
    TRY(add_node(L, L->cur->name, AC_OP_REDUCE_MEAN, 1, &xt, &out->t, &n));
    TRY(set_ints(L, n, "axes", na, axes));
    TRY(set_int(L, n, "keepdims", keep));
    out->nchw = nchw && keep;
    return 0;
}

static int build_concat(tl *L, tf_val *out)
{
    int nin;
    TRY(node_inputs(L, L->cur, &nin));
    int n = nin - 1;
    if (n < 1 || n > MAX_CONCAT)
        return node_err(L, AC_E_INVALID, "needs 1 to %d inputs and an axis, has %d inputs", MAX_CONCAT, nin);
    int64_t axis;
    int na = 0;
    TRY(const_ints(L, n, "axis", &axis, 1, &na));
    if (na != 1)
        return node_err(L, AC_E_INVALID, "axis must be one integer");
    tf_val v[MAX_CONCAT];
    bool all_nchw = true;
    for (int i = 0; i < n; i++) {
        TRY(input(L, i, &v[i]));
        all_nchw = all_nchw && v[i].nchw;
    }
    int r = rank_of(L, v[0].t);
    if (r < 0)
        return L->err->code;
    if (axis < -r || axis >= r)
        return node_err(L, AC_E_INVALID, "axis %lld is out of range for %d-D inputs", (long long)axis, r);
    if (axis < 0)
        axis += r;
    /* Mixed layouts: the 4-D ones that are NHWC are turned to NCHW when any is. */
    bool any = false;
    for (int i = 0; i < n; i++)
        any = any || v[i].nchw;
    int *ins = malloc(sizeof(int) * (size_t)n);
    if (!ins)
        return nomem(L);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char what[32];
        snprintf(what, sizeof what, "input %d", i);
        if (any && !all_nchw && !v[i].nchw) {
            snprintf(L->name, sizeof L->name, "%s/to_nchw%d", L->cur->name, i);
            int rr = rank_of(L, v[i].t);
            rc = rr != 4 ? node_err(L, AC_E_UNSUPPORTED, "mixes 4-D and %d-D inputs", rr)
                         : transpose(L, v[i].t, TO_NCHW, L->name, &ins[i]);
        } else
            ins[i] = v[i].t;
    }
    ac_node *nd = NULL;
    if (!rc)
        rc = add_node(L, L->cur->name, AC_OP_CONCAT, n, ins, &out->t, &nd);
    free(ins);
    TRY(rc);
    out->nchw = any;
    return set_int(L, nd, "axis", any ? NHWC_AXIS[axis] : axis);
}

static int build_reshape(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int64_t shape[AC_MAX_DIMS];
    int n = 0;
    TRY(const_ints(L, 1, "shape", shape, AC_MAX_DIMS, &n));
    for (int i = 0; i < n; i++)
        if (shape[i] == 0 || shape[i] < -1)
            return node_err(L, AC_E_UNSUPPORTED, "shape value %lld (only positive sizes and -1)", (long long)shape[i]);
    int xt = -1, st = -1;
    TRY(as_tf(L, x, &xt));
    TRY(ints_const(L, "shape", n, shape, &st));
    int ins[2] = {xt, st};
    TRY(add_node(L, L->cur->name, AC_OP_RESHAPE, 2, ins, &out->t, NULL));
    out->nchw = false;
    return 0;
}

static int build_squeeze(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int64_t axes[AC_MAX_DIMS];
    int na = 0;
    TRY(attr_ints(L, "squeeze_dims", -1, AC_MAX_DIMS, axes, &na));
    int xt;
    TRY(as_tf(L, x, &xt));
    int ins[2] = {xt, -1};
    if (na)
        TRY(ints_const(L, "axes", na, axes, &ins[1]));
    TRY(add_node(L, L->cur->name, AC_OP_SQUEEZE, na ? 2 : 1, ins, &out->t, NULL));
    out->nchw = false;
    return 0;
}

static int build_matmul(tl *L, tf_val *out)
{
    bool ta, tb;
    TRY(attr_bool(L, "transpose_a", false, &ta));
    TRY(attr_bool(L, "transpose_b", false, &tb));
    if (ta)
        return node_err(L, AC_E_UNSUPPORTED, "transpose_a=true");
    tf_val a = {-1, false};
    TRY(input(L, 0, &a));
    int ins[2];
    TRY(as_tf(L, a, &ins[0]));
    if (input_is_const(L, 1)) {
        tf_const c;
        TRY(input_const(L, 1, "b", &c));
        if (c.dt != AC_DT_F32 || c.ndim != 2) {
            const_free(&c);
            return node_err(L, AC_E_INVALID, "b must be a 2-D float constant");
        }
        int64_t d[2] = {tb ? c.dims[1] : c.dims[0], tb ? c.dims[0] : c.dims[1]};
        float *p = c.data;
        float *tp = NULL;
        if (tb) {
            tp = malloc(sizeof(float) * (size_t)(c.numel ? c.numel : 1));
            if (!tp) {
                const_free(&c);
                return nomem(L);
            }
            for (int64_t i = 0; i < d[0]; i++)
                for (int64_t j = 0; j < d[1]; j++)
                    tp[i * d[1] + j] = p[j * d[0] + i];
            p = tp;
        }
        int rc = new_const(L, derived(L, "B"), AC_DT_F32, 2, d, p, &ins[1]);
        free(tp);
        const_free(&c);
        TRY(rc);
    } else {
        tf_val b = {-1, false};
        TRY(input(L, 1, &b));
        TRY(as_tf(L, b, &ins[1]));
        if (tb) {
            ac_node *n;
            static const int64_t perm[2] = {1, 0};
            int t;
            TRY(add_node(L, derived(L, "b_t"), AC_OP_TRANSPOSE, 1, &ins[1], &t, &n));
            TRY(set_ints(L, n, "perm", 2, perm));
            ins[1] = t;
        }
    }
    TRY(add_node(L, L->cur->name, AC_OP_MATMUL, 2, ins, &out->t, NULL));
    out->nchw = false;
    return 0;
}

static int build_pad(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int64_t p[2 * AC_MAX_DIMS];
    int n = 0;
    TRY(const_ints(L, 1, "paddings", p, 2 * AC_MAX_DIMS, &n));
    int r = rank_of(L, x.t);
    if (r < 0)
        return L->err->code;
    if (n != 2 * r)
        return node_err(L, AC_E_INVALID, "paddings has %d values, a %d-D input needs %d", n, r, 2 * r);
    int64_t pads[2 * AC_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        int d = x.nchw ? NHWC_AXIS[i] : i;
        pads[d] = p[2 * i];
        pads[r + d] = p[2 * i + 1];
    }
    int ins[3] = {x.t, -1, -1};
    TRY(ints_const(L, "pads", 2 * r, pads, &ins[1]));
    int nin = 2;
    if (!strcmp(L->cur->op, "PadV2")) {
        tf_const c;
        TRY(input_const(L, 2, "constant_values", &c));
        if (c.dt != AC_DT_F32 || c.numel != 1) {
            const_free(&c);
            return node_err(L, AC_E_INVALID, "constant_values must be one float");
        }
        int rc = new_const(L, derived(L, "value"), AC_DT_F32, 0, NULL, c.data, &ins[2]);
        const_free(&c);
        TRY(rc);
        nin = 3;
    }
    ac_node *nd;
    TRY(add_node(L, L->cur->name, AC_OP_PAD, nin, ins, &out->t, &nd));
    out->nchw = x.nchw;
    return set_str(L, nd, "mode", "constant");
}

static int build_softmax(tl *L, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int xt;
    TRY(as_tf(L, x, &xt));
    ac_node *n;
    TRY(add_node(L, L->cur->name, AC_OP_SOFTMAX, 1, &xt, &out->t, &n));
    out->nchw = false;
    return set_int(L, n, "axis", -1);
}

static int build_resize(tl *L, bool linear, tf_val *out)
{
    tf_val x = {-1, false};
    TRY(input(L, 0, &x));
    int64_t hw[2];
    int n = 0;
    TRY(const_ints(L, 1, "size", hw, 2, &n));
    if (n != 2 || hw[0] < 1 || hw[1] < 1)
        return node_err(L, AC_E_INVALID, "size must be two positive integers");
    bool align, half;
    TRY(attr_bool(L, "align_corners", false, &align));
    TRY(attr_bool(L, "half_pixel_centers", false, &half));
    if (align && half)
        return node_err(L, AC_E_INVALID, "align_corners and half_pixel_centers are exclusive");
    int ins[4] = {-1, -1, -1, -1};
    TRY(as_nchw(L, x, "images", &ins[0]));
    if (rank_of(L, ins[0]) < 0)
        return L->err->code;
    const ac_tensor *xt = &L->g->tensors[ins[0]];
    int64_t sizes[4] = {xt->dims[0], xt->dims[1], hw[0], hw[1]};
    TRY(ints_const(L, "sizes", 4, sizes, &ins[3]));
    ac_node *nd;
    TRY(add_node(L, L->cur->name, AC_OP_RESIZE, 4, ins, &out->t, &nd));
    TRY(set_str(L, nd, "mode", linear ? "linear" : "nearest"));
    /* TF's coordinate rules in ONNX terms; nearest rounds half up with
     * align_corners (roundf on non-negative values) and floors otherwise. */
    TRY(set_str(L, nd, "coordinate_transformation_mode",
                align ? "align_corners" : half ? (linear ? "half_pixel" : "tf_half_pixel_for_nn") : "asymmetric"));
    if (!linear)
        TRY(set_str(L, nd, "nearest_mode", align ? "round_prefer_ceil" : "floor"));
    out->nchw = true;
    return 0;
}

static int build_identity(tl *L, tf_val *out)
{
    TRY(input(L, 0, out));
    return 0;
}

static int build_placeholder(tl *L, tf_val *out)
{
    int idx = L->nplaceholders++;
    if (L->ninputs >= (int)(sizeof L->inputs / sizeof L->inputs[0]))
        return node_err(L, AC_E_UNSUPPORTED, "too many Placeholders");
    const Actf__AttrValue *dt = attr(L->cur, "dtype");
    if (dt && (dt->value_case != ACTF__ATTR_VALUE__VALUE_TYPE || dt->type != TF_FLOAT))
        return node_err(L, AC_E_UNSUPPORTED, "only float inputs are supported");
    int64_t dims[AC_MAX_DIMS];
    int nd = -1;
    const ac_onnx_shape *given = NULL;
    if (L->opt && L->opt->nshapes) {
        for (int i = 0; i < L->opt->nshapes; i++)
            if (!strcmp(L->opt->shapes[i].name, L->cur->name))
                given = &L->opt->shapes[i];
        if (!given && idx < L->opt->nshapes && !L->opt->shapes[idx].name[0])
            given = &L->opt->shapes[idx];
    }
    if (given) {
        nd = given->ndim;
        memcpy(dims, given->dims, sizeof dims);
    } else {
        const Actf__AttrValue *s = attr(L->cur, "shape");
        if (!s || s->value_case != ACTF__ATTR_VALUE__VALUE_SHAPE || !s->shape || s->shape->unknown_rank)
            return node_err(L, AC_E_INVALID, "the input has no shape: give --input_data_shape (NHWC)");
        if (s->shape->n_dim > AC_MAX_DIMS)
            return node_err(L, AC_E_UNSUPPORTED, "input of rank %zu", s->shape->n_dim);
        nd = (int)s->shape->n_dim;
        for (int i = 0; i < nd; i++) {
            dims[i] = s->shape->dim[i]->size;
            if (dims[i] < 0 && i == 0)
                dims[i] = 1; /* the batch */
            else if (dims[i] < 0)
                return node_err(L, AC_E_INVALID, "dim %d of the input is unknown: give --input_data_shape (NHWC)", i);
        }
    }
    int t = ac_graph_add_tensor(L->g, L->cur->name, AC_DT_F32, nd, dims);
    if (t < 0)
        return nomem(L);
    L->g->tensors[t].is_input = true;
    L->inputs[L->ninputs++] = t;
    out->t = t;
    out->nchw = false;
    if (nd == 4) {
        TRY(transpose(L, t, TO_NCHW, derived(L, "nchw"), &out->t));
        out->nchw = true;
    }
    return 0;
}

/* A constant (a Const or a folded subgraph) used as an activation: an
 * operand of Add, a Concat input, ... */
static int build_const(tl *L, int j, tf_val *out)
{
    tf_const c;
    TRY(eval_const(L, j, &c));
    int rc = new_const(L, L->gd->node[j]->name, c.dt, c.ndim, c.dims, c.data, &out->t);
    const_free(&c);
    out->nchw = false;
    return rc;
}

typedef struct {
    const char *op;
    int (*fn)(tl *L, tf_val *out);
} op_entry;

static int op_conv2d(tl *L, tf_val *o) { return build_conv(L, false, o); }
static int op_depthwise(tl *L, tf_val *o) { return build_conv(L, true, o); }
static int op_maxpool(tl *L, tf_val *o) { return build_pool(L, AC_OP_MAXPOOL, o); }
static int op_avgpool(tl *L, tf_val *o) { return build_pool(L, AC_OP_AVGPOOL, o); }
static int op_add(tl *L, tf_val *o) { return build_binary(L, AC_OP_ADD, o); }
static int op_sub(tl *L, tf_val *o) { return build_binary(L, AC_OP_SUB, o); }
static int op_mul(tl *L, tf_val *o) { return build_binary(L, AC_OP_MUL, o); }
static int op_relu(tl *L, tf_val *o) { return build_unary(L, AC_OP_RELU, o); }
static int op_sigmoid(tl *L, tf_val *o) { return build_unary(L, AC_OP_SIGMOID, o); }
static int op_nearest(tl *L, tf_val *o) { return build_resize(L, false, o); }
static int op_bilinear(tl *L, tf_val *o) { return build_resize(L, true, o); }

static const op_entry OPS[] = {
    {"Conv2D", op_conv2d},
    {"DepthwiseConv2dNative", op_depthwise},
    {"BiasAdd", build_bias_add},
    {"FusedBatchNorm", build_batchnorm},
    {"FusedBatchNormV3", build_batchnorm},
    {"Relu", op_relu},
    {"Relu6", build_relu6},
    {"MaxPool", op_maxpool},
    {"AvgPool", op_avgpool},
    {"Mean", build_mean},
    {"ConcatV2", build_concat},
    {"Reshape", build_reshape},
    {"Squeeze", build_squeeze},
    {"MatMul", build_matmul},
    {"Add", op_add},
    {"AddV2", op_add},
    {"Sub", op_sub},
    {"Mul", op_mul},
    {"Pad", build_pad},
    {"PadV2", build_pad},
    {"Identity", build_identity},
    {"Softmax", build_softmax},
    {"Sigmoid", op_sigmoid},
    {"ResizeNearestNeighbor", op_nearest},
    {"ResizeBilinear", op_bilinear},
    {"Placeholder", build_placeholder},
};

static int build_node(tl *L, int k)
{
    L->cur = L->gd->node[k];
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(OPS[i].op, L->cur->op)) {
            tf_val v = {-1, false};
            TRY(OPS[i].fn(L, &v));
            L->val[k] = v;
            return 0;
        }
    return node_err(L, AC_E_UNSUPPORTED, "op '%s' is not supported (docs/importers.md lists the TensorFlow ops)",
                    L->cur->op);
}

/* ---- graph order and outputs -------------------------------------------------------------- */

/* Builds node root after everything it reads: an iterative DFS (graphs can
 * be deep), a cycle is an error naming a node on it. */
static int build_from(tl *L, int root, int *stack)
{
    if (L->state[root] == 2)
        return 0;
    int sp = 0;
    stack[sp++] = root;
    L->state[root] = 1;
    while (sp) {
        int k = stack[sp - 1];
        const Actf__NodeDef *nd = L->gd->node[k];
        bool pushed = false;
        /* Const nodes read as weights are never built; the consumer builds what it reads. */
        for (size_t i = 0; i < nd->n_input && !pushed; i++) {
            int port;
            bool ctl;
            int j = find_node(L, nd->input[i], &port, &ctl);
            if (ctl)
                continue;
            if (j < 0) {
                L->cur = nd;
                return node_err(L, AC_E_INVALID, "input '%s' names no node", nd->input[i]);
            }
            if (const_kind(L, j))
                continue; /* built on first use as an activation, if ever */
            if (L->state[j] == 1) {
                L->cur = nd;
                return node_err(L, AC_E_INVALID, "input '%s' closes a cycle", nd->input[i]);
            }
            if (L->state[j] == 0) {
                L->state[j] = 1;
                stack[sp++] = j;
                pushed = true;
            }
        }
        if (pushed)
            continue;
        TRY(build_node(L, k));
        L->state[k] = 2;
        sp--;
    }
    return 0;
}

static bool is_output_candidate(const Actf__NodeDef *nd)
{
    return strcmp(nd->op, "Const") && strcmp(nd->op, "NoOp") && strcmp(nd->op, "Placeholder");
}

static int set_outputs(tl *L, int *stack)
{
    int nout = 0;
    int *outs = malloc(sizeof(int) * (size_t)(L->n ? L->n : 1));
    if (!outs)
        return nomem(L);
    int rc = 0;
    for (int k = 0; k < L->n && !rc; k++) {
        const Actf__NodeDef *nd = L->gd->node[k];
        if (L->consumed[k] || !is_output_candidate(nd))
            continue;
        rc = build_from(L, k, stack);
        if (rc)
            break;
        tf_val v = L->val[k];
        L->cur = nd;
        /* An output that is an alias (Identity) or in NCHW gets a node named as the TF node. */
        if (v.nchw) {
            ac_tensor *t = &L->g->tensors[v.t];
            if (!strcmp(t->name, nd->name))
                t->name = ac_arena_strdup(L->g->arena, derived(L, "nchw_out"));
            if (!t->name)
                rc = nomem(L);
            else
                rc = transpose(L, v.t, TO_NHWC, nd->name, &v.t);
        } else if (strcmp(L->g->tensors[v.t].name, nd->name) || L->g->tensors[v.t].is_input ||
                   ac_tensor_is_const(&L->g->tensors[v.t])) {
            int x = v.t;
            rc = add_node(L, nd->name, AC_OP_IDENTITY, 1, &x, &v.t, NULL);
        }
        if (!rc)
            outs[nout++] = v.t;
    }
    L->cur = NULL;
    if (!rc && !nout)
        rc = node_err(L, AC_E_INVALID, "the graph has no output (every node is read by another)");
    if (!rc && !L->ninputs)
        rc = node_err(L, AC_E_INVALID, "the graph has no Placeholder input");
    if (!rc && ac_graph_set_io(L->g, L->ninputs, L->inputs, nout, outs))
        rc = nomem(L);
    free(outs);
    return rc;
}

static int mark_consumed(tl *L)
{
    for (int k = 0; k < L->n; k++) {
        const Actf__NodeDef *nd = L->gd->node[k];
        if (!nd->name || !*nd->name || !nd->op) {
            L->cur = NULL;
            return node_err(L, AC_E_INVALID, "node %d has no name or op", k);
        }
        for (size_t i = 0; i < nd->n_input; i++) {
            int port;
            bool ctl;
            int j = find_node(L, nd->input[i], &port, &ctl);
            if (j >= 0)
                L->consumed[j] = true;
        }
    }
    for (int i = 1; i < L->n; i++)
        if (!strcmp(L->gd->node[L->order[i]]->name, L->gd->node[L->order[i - 1]]->name)) {
            L->cur = NULL;
            return node_err(L, AC_E_INVALID, "two nodes are named '%s'", L->gd->node[L->order[i]]->name);
        }
    return 0;
}

static int build(tl *L)
{
    L->n = (int)L->gd->n_node;
    if (!L->n)
        return ac_err_set(L->err, AC_E_INVALID, "%s: the GraphDef has no nodes (is it a frozen .pb?)", L->file);
    L->order = malloc(sizeof(int) * (size_t)L->n);
    L->val = malloc(sizeof(tf_val) * (size_t)L->n);
    L->state = calloc((size_t)L->n, 1);
    L->consumed = calloc((size_t)L->n, sizeof(bool));
    L->isconst = calloc((size_t)L->n, 1);
    int *stack = malloc(sizeof(int) * (size_t)L->n);
    int rc = 0;
    if (!L->order || !L->val || !L->state || !L->consumed || !L->isconst || !stack)
        rc = ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    if (!rc) {
        for (int i = 0; i < L->n; i++) {
            L->order[i] = i;
            L->val[i].t = -1;
            L->val[i].nchw = false;
        }
        rc = sort_by_name(L);
        if (!rc)
            rc = mark_consumed(L);
    }
    if (!rc)
        rc = set_outputs(L, stack);
    free(stack);
    if (!rc && (ac_graph_toposort(L->g, L->err) || ac_graph_infer_shapes(L->g, L->err)))
        rc = ac_err_prefix(L->err, "%s: ", L->file);
    return rc;
}

ac_graph *ac_tf_load_buffer(const void *buf, size_t len, const char *name, const ac_tf_options *opt, ac_err *err)
{
    ac_err local;
    if (!err)
        err = &local;
    ac_err_clear(err);
    tl L = {.file = name ? name : "model.pb", .err = err, .opt = opt};
    L.gd = actf__graph_def__unpack(NULL, len, buf);
    if (!L.gd) {
        ac_err_set(err, AC_E_INVALID, "%s: not a TensorFlow GraphDef (the protobuf does not parse)", L.file);
        return NULL;
    }
    L.g = ac_graph_new(L.file);
    int rc = L.g ? 0 : ac_err_set(err, AC_E_NOMEM, "out of memory for the graph");
    if (!rc) {
        L.g->opset = AC_TF_OPSET;
        rc = build(&L);
    }
    if (rc && !err->code)
        ac_err_set(err, AC_E_INTERNAL, "%s: import failed without a message", L.file);
    free(L.order);
    free(L.val);
    free(L.state);
    free(L.consumed);
    free(L.isconst);
    actf__graph_def__free_unpacked(L.gd, NULL);
    if (rc)
        ac_graph_destroy(&L.g);
    return L.g;
}

ac_graph *ac_tf_load(const char *path, const ac_tf_options *opt, ac_err *err)
{
    char *buf = NULL;
    size_t len;
    if (ac_model_file_read(path, (size_t)2 << 30, "GraphDef", &buf, &len, err))
        return NULL;
    ac_graph *g = ac_tf_load_buffer(buf, len, ac_import_base_name(path), opt, err);
    free(buf);
    return g;
}
