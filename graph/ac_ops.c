/* ac_ops: per-op validation, shape/dtype inference, constant folding and
 * execution. ONNX semantics for opsets 7-17; g->opset selects between the
 * attribute and input forms of ops that changed (Clip, Slice, Pad, Split,
 * Squeeze/Unsqueeze, Softmax, Resize/Upsample, Shape, Dropout).
 *
 * Every check that can fail on model content returns an error naming the
 * node, its op type, the opset and the rule; nothing here asserts on input.
 * Arithmetic lives in kernels/ (ac_ref_f32.h, ac_conv_f32.h): run() functions
 * only pick pointers and parameters computed by infer() into n->params. */
#include "ac_ops.h"

#include "ac_conv_f32.h"
#include "ac_ref_f32.h"
#include "ac_unary_pool_fast.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest element count of any tensor: keeps every size computation (and the
 * int fields of the conv/gemm shapes) far from overflow. */
#define AC_MAX_NUMEL ((int64_t)INT32_MAX)
/* Bound for kernel sizes, strides, dilations and pads read from attributes. */
#define AC_MAX_SPATIAL_PARAM ((int64_t)1 << 24)

/* ---- errors ---------------------------------------------------------------- */

__attribute__((format(printf, 5, 6))) static int node_err(const ac_graph *g, const ac_node *n,
                                                          ac_err *err, ac_status code,
                                                          const char *fmt, ...)
{
    char msg[AC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ac_err_set(err, code, "node '%s' (%s, opset %d): %s", n->name, n->op_type, g->opset,
                      msg);
}

#define BAD(...) node_err(g, n, err, AC_E_INVALID, __VA_ARGS__)
#define UNSUPPORTED(...) node_err(g, n, err, AC_E_UNSUPPORTED, __VA_ARGS__)
#define TRY(x)                                                                                 \
    do {                                                                                       \
        int rc_ = (x);                                                                         \
        if (rc_)                                                                               \
            return rc_;                                                                        \
    } while (0)

/* ---- inputs and outputs -------------------------------------------------- */

/* Input i, or NULL when absent (index -1 or beyond ninputs). */
static const ac_tensor *in_t(const ac_graph *g, const ac_node *n, int i)
{
    if (i >= n->ninputs || n->inputs[i] < 0)
        return NULL;
    return &g->tensors[n->inputs[i]];
}

static ac_tensor *out_t(ac_graph *g, const ac_node *n, int i)
{
    if (i >= n->noutputs || n->outputs[i] < 0)
        return NULL;
    return &g->tensors[n->outputs[i]];
}

/* Input/output counts, required inputs present, every present input has a
 * known shape. Inputs [0, min_in) are required. */
static int check_io(const ac_graph *g, const ac_node *n, ac_err *err, int min_in, int max_in,
                    int min_out, int max_out)
{
    if (n->ninputs < min_in || n->ninputs > max_in) {
        if (min_in == max_in)
            return BAD("expects %d input(s), got %d", min_in, n->ninputs);
        return BAD("expects %d to %d inputs, got %d", min_in, max_in, n->ninputs);
    }
    if (n->noutputs < min_out || n->noutputs > max_out) {
        if (min_out == max_out)
            return BAD("expects %d output(s), got %d", min_out, n->noutputs);
        return BAD("expects %d to %d outputs, got %d", min_out, max_out, n->noutputs);
    }
    for (int i = 0; i < n->ninputs; i++) {
        int t = n->inputs[i];
        if (t >= g->ntensors || t < -1)
            return BAD("input %d refers to tensor %d, which does not exist", i, t);
        if (t < 0) {
            if (i < min_in)
                return BAD("required input %d is missing", i);
            continue;
        }
        const ac_tensor *ts = &g->tensors[t];
        if (ts->ndim < 0 || ts->ndim > AC_MAX_DIMS)
            return BAD("input '%s' has no known shape", ts->name);
        for (int d = 0; d < ts->ndim; d++)
            if (ts->dims[d] < 0)
                return BAD("input '%s' has an unknown dimension %d", ts->name, d);
        if (ac_dtype_size(ts->dtype) == 0)
            return UNSUPPORTED("input '%s' has unsupported element type %s", ts->name,
                               ac_dtype_name(ts->dtype));
    }
    for (int i = 0; i < n->noutputs; i++)
        if (n->outputs[i] >= g->ntensors || n->outputs[i] < -1)
            return BAD("output %d refers to tensor %d, which does not exist", i, n->outputs[i]);
    if (n->noutputs < 1 || n->outputs[0] < 0)
        return BAD("output 0 is missing");
    return 0;
}

/* Element count with overflow check against AC_MAX_NUMEL; -1 when too big. */
static int64_t checked_numel(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    bool zero = false;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || dims[d] > AC_MAX_NUMEL)
            return -1;
        if (dims[d] == 0)
            zero = true;
        else if (!zero && n > AC_MAX_NUMEL / dims[d])
            return -1;
        else if (!zero)
            n *= dims[d];
    }
    return zero ? 0 : n;
}

static int set_out(ac_graph *g, const ac_node *n, ac_err *err, int k, ac_dtype dt, int ndim,
                   const int64_t *dims)
{
    ac_tensor *t = out_t(g, n, k);
    if (!t)
        return 0;
    if (ndim < 0 || ndim > AC_MAX_DIMS)
        return BAD("output '%s' would have rank %d (at most %d supported)", t->name, ndim,
                   AC_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (dims[d] < 0)
            return BAD("output '%s' would have negative dimension %lld", t->name,
                       (long long)dims[d]);
    if (checked_numel(ndim, dims) < 0)
        return BAD("output '%s' would have more than %lld elements", t->name,
                   (long long)AC_MAX_NUMEL);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < AC_MAX_DIMS; d++)
        t->dims[d] = d < ndim ? dims[d] : 0;
    return 0;
}

static int set_out_like(ac_graph *g, const ac_node *n, ac_err *err, int k, const ac_tensor *like)
{
    return set_out(g, n, err, k, like->dtype, like->ndim, like->dims);
}

static int need_f32(const ac_graph *g, const ac_node *n, ac_err *err, int i)
{
    const ac_tensor *t = in_t(g, n, i);
    if (t && t->dtype != AC_DT_F32)
        return UNSUPPORTED("input '%s' must be float32, got %s", t->name,
                           ac_dtype_name(t->dtype));
    return 0;
}

static void *params_new(ac_graph *g, ac_node *n, size_t size)
{
    n->params = ac_arena_alloc(g->arena, size);
    return n->params;
}

#define PARAMS(type)                                                                           \
    type *p = params_new(g, n, sizeof(type));                                                  \
    if (!p)                                                                                    \
        return node_err(g, n, err, AC_E_NOMEM, "out of memory for parameters");

/* ---- attributes -------------------------------------------------------------- */

static int attr_int(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                    int64_t def, int64_t *out)
{
    const ac_attr *a = ac_node_attr(n, name);
    *out = def;
    if (!a)
        return 0;
    if (a->type != AC_ATTR_INT)
        return BAD("attribute '%s' must be an int", name);
    *out = a->i;
    return 0;
}

static int attr_float(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                      float def, float *out)
{
    const ac_attr *a = ac_node_attr(n, name);
    *out = def;
    if (!a)
        return 0;
    if (a->type == AC_ATTR_INT)
        *out = (float)a->i;
    else if (a->type == AC_ATTR_FLOAT)
        *out = a->f;
    else
        return BAD("attribute '%s' must be a float", name);
    return 0;
}

static int attr_string(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                       const char *def, const char **out)
{
    const ac_attr *a = ac_node_attr(n, name);
    *out = def;
    if (!a)
        return 0;
    if (a->type != AC_ATTR_STRING || !a->s)
        return BAD("attribute '%s' must be a string", name);
    *out = a->s;
    return 0;
}

/* ints attribute; *count = -1 when absent. */
static int attr_ints(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                     const int64_t **v, int *count)
{
    const ac_attr *a = ac_node_attr(n, name);
    *v = NULL;
    *count = -1;
    if (!a)
        return 0;
    if (a->type == AC_ATTR_INT) { /* a single value written as an int */
        *v = &a->i;
        *count = 1;
        return 0;
    }
    if (a->type != AC_ATTR_INTS || a->n < 0 || (a->n > 0 && !a->ints))
        return BAD("attribute '%s' must be a list of ints", name);
    *v = a->ints;
    *count = a->n;
    return 0;
}

static int attr_floats(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                       const float **v, int *count)
{
    const ac_attr *a = ac_node_attr(n, name);
    *v = NULL;
    *count = -1;
    if (!a)
        return 0;
    if (a->type == AC_ATTR_FLOAT) {
        *v = &a->f;
        *count = 1;
        return 0;
    }
    if (a->type != AC_ATTR_FLOATS || a->n < 0 || (a->n > 0 && !a->floats))
        return BAD("attribute '%s' must be a list of floats", name);
    *v = a->floats;
    *count = a->n;
    return 0;
}

/* Constant int64/int32 input i copied to out[max]; *count = -1 when absent. */
static int const_ints(const ac_graph *g, const ac_node *n, ac_err *err, int i, const char *what,
                      int64_t *out, int max, int *count)
{
    const ac_tensor *t = in_t(g, n, i);
    *count = -1;
    if (!t)
        return 0;
    if (!ac_tensor_is_const(t))
        return UNSUPPORTED("input '%s' (%s) must be a constant for static shapes", t->name,
                           what);
    if (t->dtype != AC_DT_I64 && t->dtype != AC_DT_I32)
        return BAD("input '%s' (%s) must be int64 or int32, got %s", t->name, what,
                   ac_dtype_name(t->dtype));
    int64_t k = ac_tensor_numel(t);
    if (k > max)
        return BAD("input '%s' (%s) has %lld values, at most %d allowed", t->name, what,
                   (long long)k, max);
    for (int64_t j = 0; j < k; j++)
        out[j] = t->dtype == AC_DT_I64 ? ((const int64_t *)t->data)[j]
                                       : ((const int32_t *)t->data)[j];
    *count = (int)k;
    return 0;
}

static int const_floats(const ac_graph *g, const ac_node *n, ac_err *err, int i,
                        const char *what, float *out, int max, int *count)
{
    const ac_tensor *t = in_t(g, n, i);
    *count = -1;
    if (!t)
        return 0;
    if (!ac_tensor_is_const(t))
        return UNSUPPORTED("input '%s' (%s) must be a constant for static shapes", t->name,
                           what);
    if (t->dtype != AC_DT_F32 && t->dtype != AC_DT_F64)
        return BAD("input '%s' (%s) must be float32, got %s", t->name, what,
                   ac_dtype_name(t->dtype));
    int64_t k = ac_tensor_numel(t);
    if (k > max)
        return BAD("input '%s' (%s) has %lld values, at most %d allowed", t->name, what,
                   (long long)k, max);
    for (int64_t j = 0; j < k; j++)
        out[j] = t->dtype == AC_DT_F32 ? ((const float *)t->data)[j]
                                       : (float)((const double *)t->data)[j];
    *count = (int)k;
    return 0;
}

/* A list of ints from the attribute `attr` or, when absent, from constant
 * input `input` (ops moved the list from attribute to input in later opsets;
 * either form is accepted). *count = -1 when neither is present. */
static int ints_attr_or_input(const ac_graph *g, const ac_node *n, ac_err *err, const char *attr,
                              int input, int64_t *out, int max, int *count)
{
    const int64_t *v;
    int c;
    TRY(attr_ints(g, n, err, attr, &v, &c));
    if (c >= 0) {
        if (in_t(g, n, input))
            return BAD("'%s' is given both as attribute and as input", attr);
        if (c > max)
            return BAD("attribute '%s' has %d values, at most %d allowed", attr, c, max);
        memcpy(out, v, sizeof(int64_t) * (size_t)c);
        *count = c;
        return 0;
    }
    return const_ints(g, n, err, input, attr, out, max, count);
}

/* axis in [-rank, rank) (or [-rank, rank] with inclusive_end) mapped to [0, rank). */
static int norm_axis(const ac_graph *g, const ac_node *n, ac_err *err, const char *what,
                     int64_t axis, int rank, bool inclusive_end, int *out)
{
    int64_t hi = inclusive_end ? rank : rank - 1;
    *out = 0;
    if (axis < -rank || axis > hi)
        return BAD("%s %lld is out of range [%d, %lld] for rank %d", what, (long long)axis,
                   -rank, (long long)hi, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

/* Normalise a list of axes; rejects duplicates. */
static int norm_axes(const ac_graph *g, const ac_node *n, ac_err *err, const char *what,
                     const int64_t *axes, int count, int rank, bool *mask)
{
    for (int d = 0; d < AC_MAX_DIMS; d++)
        mask[d] = false;
    for (int i = 0; i < count; i++) {
        int a;
        TRY(norm_axis(g, n, err, what, axes[i], rank, false, &a));
        if (mask[a])
            return BAD("%s %lld is repeated", what, (long long)axes[i]);
        mask[a] = true;
    }
    return 0;
}

/* ---- shared run helpers ------------------------------------------------------- */

static size_t out_bytes(const ac_graph *g, const ac_node *n, int k)
{
    return ac_tensor_bytes(&g->tensors[n->outputs[k]]);
}

static int64_t in_numel(const ac_graph *g, const ac_node *n, int i)
{
    return ac_tensor_numel(&g->tensors[n->inputs[i]]);
}

/* Identity-like ops: output 0 is a copy of input 0. */
static int run_copy(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                    void *scratch, int ith, int nth)
{
    ac_copy__ref(in[0], out[0], out_bytes(g, n, 0), ith, nth);
    return 0;
}

/* ---- element-wise unary ------------------------------------------------------- */

typedef struct {
    ac_unary_params u;
    bool min_input, max_input; /* Clip: read min/max from a non-constant input at run time */
} unary_params;

/* Clip's min (i=1) or max (i=2) input from opset 11: a scalar; constant ones
 * are read now, others at run time. */
static int clip_bound(const ac_graph *g, const ac_node *n, ac_err *err, int i, float *v,
                      bool *at_run)
{
    const ac_tensor *t = in_t(g, n, i);
    *at_run = false;
    if (!t)
        return 0;
    if (t->dtype != AC_DT_F32)
        return UNSUPPORTED("input '%s' (%s) must be float32, got %s", t->name,
                           i == 1 ? "min" : "max", ac_dtype_name(t->dtype));
    if (ac_tensor_numel(t) != 1)
        return BAD("input '%s' (%s) must be a scalar, has %lld elements", t->name,
                   i == 1 ? "min" : "max", (long long)ac_tensor_numel(t));
    if (ac_tensor_is_const(t))
        *v = *(const float *)t->data;
    else
        *at_run = true;
    return 0;
}

static int infer_unary(ac_graph *g, ac_node *n, ac_err *err)
{
    int max_in = n->op == AC_OP_CLIP && g->opset >= 11 ? 3 : 1;
    TRY(check_io(g, n, err, 1, max_in, 1, 1));
    TRY(need_f32(g, n, err, 0));
    PARAMS(unary_params);
    switch (n->op) {
    case AC_OP_RELU: p->u.kind = AC_UNARY_RELU; break;
    case AC_OP_LEAKY_RELU:
        p->u.kind = AC_UNARY_LEAKY_RELU;
        TRY(attr_float(g, n, err, "alpha", 0.01f, &p->u.alpha));
        break;
    case AC_OP_RELU6:
        p->u.kind = AC_UNARY_CLIP;
        p->u.alpha = 0.0f;
        p->u.beta = 6.0f;
        break;
    case AC_OP_CLIP:
        p->u.kind = AC_UNARY_CLIP;
        if (g->opset < 11) {
            TRY(attr_float(g, n, err, "min", -FLT_MAX, &p->u.alpha));
            TRY(attr_float(g, n, err, "max", FLT_MAX, &p->u.beta));
        } else {
            p->u.alpha = -INFINITY;
            p->u.beta = INFINITY;
            TRY(clip_bound(g, n, err, 1, &p->u.alpha, &p->min_input));
            TRY(clip_bound(g, n, err, 2, &p->u.beta, &p->max_input));
        }
        break;
    case AC_OP_SIGMOID: p->u.kind = AC_UNARY_SIGMOID; break;
    case AC_OP_TANH: p->u.kind = AC_UNARY_TANH; break;
    case AC_OP_HARD_SIGMOID:
        p->u.kind = AC_UNARY_HARD_SIGMOID;
        TRY(attr_float(g, n, err, "alpha", 0.2f, &p->u.alpha));
        TRY(attr_float(g, n, err, "beta", 0.5f, &p->u.beta));
        break;
    case AC_OP_HARD_SWISH: p->u.kind = AC_UNARY_HARD_SWISH; break;
    case AC_OP_SILU: p->u.kind = AC_UNARY_SILU; break;
    case AC_OP_EXP: p->u.kind = AC_UNARY_EXP; break;
    case AC_OP_SQRT: p->u.kind = AC_UNARY_SQRT; break;
    default: return BAD("not an element-wise unary op");
    }
    return set_out_like(g, n, err, 0, in_t(g, n, 0));
}

bool ac_op_conv_act(const ac_graph *g, const ac_node *n, ac_conv_act *act)
{
    if ((n->op != AC_OP_RELU && n->op != AC_OP_RELU6 && n->op != AC_OP_CLIP) || !n->params || n->ninputs < 1 ||
        n->inputs[0] < 0 || g->tensors[n->inputs[0]].dtype != AC_DT_F32)
        return false;
    const unary_params *p = n->params;
    if (p->min_input || p->max_input) /* bounds known only at run time */
        return false;
    act->kind = p->u.kind == AC_UNARY_RELU ? AC_CONV_ACT_RELU : AC_CONV_ACT_CLIP;
    act->lo = p->u.alpha;
    act->hi = p->u.beta;
    return p->u.kind == AC_UNARY_RELU || p->u.kind == AC_UNARY_CLIP;
}

static int run_unary(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                     void *scratch, int ith, int nth)
{
    const unary_params *p = n->params;
    ac_unary_params u = p->u;
    if (p->min_input)
        u.alpha = *(const float *)in[1];
    if (p->max_input)
        u.beta = *(const float *)in[2];
    ac_unary_f32(&u, in[0], out[0], in_numel(g, n, 0), ith, nth);
    return 0;
}

/* ---- broadcast binary ------------------------------------------------------------- */

typedef struct {
    ac_binary_kind kind;
    ac_dtype dtype;
    ac_bcast_shape s;
} binary_params;

/* Numpy multidirectional broadcasting of a and b into s (and the output dims). */
static int broadcast(const ac_graph *g, const ac_node *n, ac_err *err, const ac_tensor *a,
                     const ac_tensor *b, ac_bcast_shape *s)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    s->ndim = nd;
    int64_t ast = 1, bst = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t ea = da >= 0 ? a->dims[da] : 1, eb = db >= 0 ? b->dims[db] : 1;
        if (ea != eb && ea != 1 && eb != 1)
            return BAD("inputs '%s' and '%s' do not broadcast: dimension %d is %lld vs %lld",
                       a->name, b->name, d, (long long)ea, (long long)eb);
        s->dims[d] = ea == 1 ? eb : ea;
        s->a_strides[d] = ea == 1 ? 0 : ast;
        s->b_strides[d] = eb == 1 ? 0 : bst;
        ast *= ea;
        bst *= eb;
    }
    return 0;
}

static int infer_binary(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 2, 1, 1));
    const ac_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    PARAMS(binary_params);
    switch (n->op) {
    case AC_OP_ADD: p->kind = AC_BINARY_ADD; break;
    case AC_OP_SUB: p->kind = AC_BINARY_SUB; break;
    case AC_OP_MUL: p->kind = AC_BINARY_MUL; break;
    case AC_OP_DIV: p->kind = AC_BINARY_DIV; break;
    case AC_OP_PRELU: p->kind = AC_BINARY_PRELU; break;
    default: return BAD("not a binary op");
    }
    if (a->dtype != b->dtype)
        return BAD("inputs '%s' (%s) and '%s' (%s) must have the same element type", a->name,
                   ac_dtype_name(a->dtype), b->name, ac_dtype_name(b->dtype));
    bool ok = a->dtype == AC_DT_F32 ||
              (n->op != AC_OP_PRELU && (a->dtype == AC_DT_I64 || a->dtype == AC_DT_I32));
    if (!ok)
        return UNSUPPORTED("element type %s is not supported (float32%s)",
                           ac_dtype_name(a->dtype), n->op == AC_OP_PRELU ? "" : ", int64, int32");
    p->dtype = a->dtype;
    TRY(broadcast(g, n, err, a, b, &p->s));
    if (n->op == AC_OP_PRELU) { /* the slope broadcasts to X, not the other way */
        bool same = p->s.ndim == a->ndim;
        for (int d = 0; same && d < a->ndim; d++)
            same = p->s.dims[d] == a->dims[d];
        if (!same)
            return BAD("slope '%s' must broadcast to the shape of '%s'", b->name, a->name);
    }
    return set_out(g, n, err, 0, a->dtype, p->s.ndim, p->s.dims);
}

static int run_binary(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                      void *scratch, int ith, int nth)
{
    const binary_params *p = n->params;
    switch (p->dtype) {
    case AC_DT_F32: ac_binary_f32(p->kind, &p->s, in[0], in[1], out[0], ith, nth); return 0;
    case AC_DT_I64: return ac_binary_i64__ref(p->kind, &p->s, in[0], in[1], out[0], ith, nth);
    case AC_DT_I32: return ac_binary_i32__ref(p->kind, &p->s, in[0], in[1], out[0], ith, nth);
    default: return 1;
    }
}

/* ---- spatial attributes (Conv, ConvTranspose, pools) ------------------------- */

typedef enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } auto_pad_mode;

typedef struct {
    int nsp; /* spatial dims */
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
    auto_pad_mode auto_pad;
} spatial;

/* Reads an ints attribute that must have `want` values in [lo, AC_MAX_SPATIAL_PARAM]
 * into out; keeps out's defaults when absent. */
static int spatial_ints(const ac_graph *g, const ac_node *n, ac_err *err, const char *name,
                        int want, int64_t lo, int64_t *out)
{
    const int64_t *v;
    int c;
    TRY(attr_ints(g, n, err, name, &v, &c));
    if (c < 0)
        return 0;
    if (c != want)
        return BAD("attribute '%s' must have %d values, got %d", name, want, c);
    for (int i = 0; i < c; i++) {
        if (v[i] < lo || v[i] > AC_MAX_SPATIAL_PARAM)
            return BAD("attribute '%s' value %lld is out of range [%lld, %lld]", name,
                       (long long)v[i], (long long)lo, (long long)AC_MAX_SPATIAL_PARAM);
        out[i] = v[i];
    }
    return 0;
}

/* kernel: from the weights (Conv) or NULL (pools: attribute kernel_shape required). */
static int spatial_attrs(const ac_graph *g, const ac_node *n, ac_err *err, int nsp,
                         const int64_t *kernel, bool has_dilations, spatial *sp)
{
    sp->nsp = nsp;
    for (int i = 0; i < 3; i++) {
        sp->kernel[i] = sp->stride[i] = sp->dilation[i] = 1;
        sp->pad_begin[i] = sp->pad_end[i] = 0;
    }
    const int64_t *ks;
    int kc;
    TRY(attr_ints(g, n, err, "kernel_shape", &ks, &kc));
    if (kc < 0 && !kernel)
        return BAD("attribute 'kernel_shape' is required");
    if (kc >= 0) {
        TRY(spatial_ints(g, n, err, "kernel_shape", nsp, 1, sp->kernel));
        for (int i = 0; kernel && i < nsp; i++)
            if (sp->kernel[i] != kernel[i])
                return BAD("attribute 'kernel_shape' value %lld differs from the weight's %lld",
                           (long long)sp->kernel[i], (long long)kernel[i]);
    } else {
        for (int i = 0; i < nsp; i++) {
            if (kernel[i] < 1 || kernel[i] > AC_MAX_SPATIAL_PARAM)
                return BAD("kernel size %lld is out of range", (long long)kernel[i]);
            sp->kernel[i] = kernel[i];
        }
    }
    TRY(spatial_ints(g, n, err, "strides", nsp, 1, sp->stride));
    if (has_dilations)
        TRY(spatial_ints(g, n, err, "dilations", nsp, 1, sp->dilation));
    else if (ac_node_attr(n, "dilations")) {
        int64_t dil[3] = {1, 1, 1};
        TRY(spatial_ints(g, n, err, "dilations", nsp, 1, dil));
        for (int i = 0; i < nsp; i++)
            if (dil[i] != 1)
                return UNSUPPORTED("attribute 'dilations' other than 1 is not supported");
    }
    int64_t pads[6] = {0, 0, 0, 0, 0, 0};
    TRY(spatial_ints(g, n, err, "pads", 2 * nsp, 0, pads));
    for (int i = 0; i < nsp; i++) {
        sp->pad_begin[i] = pads[i];
        sp->pad_end[i] = pads[nsp + i];
    }
    const char *ap;
    TRY(attr_string(g, n, err, "auto_pad", "NOTSET", &ap));
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0')
        sp->auto_pad = PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        sp->auto_pad = PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        sp->auto_pad = PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0)
        sp->auto_pad = PAD_VALID;
    else
        return BAD("attribute 'auto_pad' value '%s' is not one of NOTSET, SAME_UPPER, "
                   "SAME_LOWER, VALID",
                   ap);
    return 0;
}

/* Output size of a convolution / pool along one dim (fills pads for auto_pad). */
static int window_out(const ac_graph *g, const ac_node *n, ac_err *err, spatial *sp, int d,
                      int64_t in, bool ceil_mode, int64_t *out)
{
    int64_t eff = (sp->kernel[d] - 1) * sp->dilation[d] + 1;
    if (sp->auto_pad == PAD_SAME_UPPER || sp->auto_pad == PAD_SAME_LOWER) {
        int64_t o = (in + sp->stride[d] - 1) / sp->stride[d];
        int64_t total = (o - 1) * sp->stride[d] + eff - in;
        if (total < 0)
            total = 0;
        int64_t small = total / 2, big = total - small;
        sp->pad_begin[d] = sp->auto_pad == PAD_SAME_UPPER ? small : big;
        sp->pad_end[d] = sp->auto_pad == PAD_SAME_UPPER ? big : small;
        *out = o;
        return 0;
    }
    if (sp->auto_pad == PAD_VALID)
        sp->pad_begin[d] = sp->pad_end[d] = 0;
    int64_t span = in + sp->pad_begin[d] + sp->pad_end[d] - eff;
    if (span < 0)
        return BAD("kernel extent %lld (kernel %lld, dilation %lld) exceeds padded input size "
                   "%lld on spatial dim %d",
                   (long long)eff, (long long)sp->kernel[d], (long long)sp->dilation[d],
                   (long long)(in + sp->pad_begin[d] + sp->pad_end[d]), d);
    int64_t o = span / sp->stride[d] + 1;
    if (ceil_mode && span % sp->stride[d]) {
        o++;
        /* A last window that would start in the end padding is dropped (as PyTorch). */
        if ((o - 1) * sp->stride[d] >= in + sp->pad_begin[d])
            o--;
    }
    *out = o;
    return 0;
}

/* ---- Conv ------------------------------------------------------------------------ */

static int to_int(int64_t v)
{
    return (int)v; /* callers have bounded v by AC_MAX_NUMEL / AC_MAX_SPATIAL_PARAM */
}

static int infer_conv(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 3, 1, 1));
    for (int i = 0; i < 3; i++)
        TRY(need_f32(g, n, err, i));
    const ac_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 1), *b = in_t(g, n, 2);
    if (x->ndim == 5)
        return UNSUPPORTED("3-D convolution is not supported (input '%s' is 5-D)", x->name);
    if (x->ndim != 3 && x->ndim != 4)
        return BAD("input '%s' must be 3-D or 4-D (N, C, spatial...), got %d-D", x->name,
                   x->ndim);
    if (w->ndim != x->ndim)
        return BAD("weight '%s' must be %d-D like the input, got %d-D", w->name, x->ndim,
                   w->ndim);
    int nsp = x->ndim - 2;
    int64_t group;
    TRY(attr_int(g, n, err, "group", 1, &group));
    int64_t cin = x->dims[1], cout = w->dims[0];
    if (group < 1 || group > AC_MAX_NUMEL)
        return BAD("attribute 'group' must be >= 1, got %lld", (long long)group);
    if (cin % group)
        return BAD("input channels %lld not divisible by group %lld", (long long)cin,
                   (long long)group);
    if (cout % group)
        return BAD("output channels %lld (weight dim 0) not divisible by group %lld",
                   (long long)cout, (long long)group);
    if (w->dims[1] * group != cin)
        return BAD("weight '%s' has %lld input channels per group, input has %lld channels "
                   "in %lld groups",
                   w->name, (long long)w->dims[1], (long long)cin, (long long)group);
    if (cout == 0)
        return BAD("weight '%s' has no output channels", w->name);
    if (b && (b->ndim != 1 || b->dims[0] != cout))
        return BAD("bias '%s' must have shape [%lld]", b->name, (long long)cout);
    spatial sp;
    TRY(spatial_attrs(g, n, err, nsp, w->dims + 2, true, &sp));
    int64_t od[AC_MAX_DIMS] = {x->dims[0], cout};
    for (int d = 0; d < nsp; d++)
        TRY(window_out(g, n, err, &sp, d, x->dims[2 + d], false, &od[2 + d]));
    TRY(set_out(g, n, err, 0, AC_DT_F32, x->ndim, od));
    PARAMS(ac_conv2d_shape);
    /* 1-D convolution is a 2-D one with height 1. */
    int o = nsp == 1 ? 1 : 0;
    p->n = to_int(x->dims[0]);
    p->c_in = to_int(cin);
    p->h_in = nsp == 1 ? 1 : to_int(x->dims[2]);
    p->w_in = to_int(x->dims[3 - o]);
    p->c_out = to_int(cout);
    p->h_out = nsp == 1 ? 1 : to_int(od[2]);
    p->w_out = to_int(od[3 - o]);
    p->kh = nsp == 1 ? 1 : to_int(sp.kernel[0]);
    p->kw = to_int(sp.kernel[nsp - 1]);
    p->stride_h = nsp == 1 ? 1 : to_int(sp.stride[0]);
    p->stride_w = to_int(sp.stride[nsp - 1]);
    p->dil_h = nsp == 1 ? 1 : to_int(sp.dilation[0]);
    p->dil_w = to_int(sp.dilation[nsp - 1]);
    p->pad_top = nsp == 1 ? 0 : to_int(sp.pad_begin[0]);
    p->pad_left = to_int(sp.pad_begin[nsp - 1]);
    p->groups = to_int(group);
    return 0;
}

static size_t scratch_conv(const ac_graph *g, const ac_node *n, int nth)
{
    return ac_conv2d_f32_scratch_bytes(n->params, nth);
}

static int run_conv(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                    void *scratch, int ith, int nth)
{
    ac_conv2d_f32(n->params, in[0], in[1], n->ninputs > 2 ? in[2] : NULL, out[0], scratch, ith,
                  nth);
    return 0;
}

bool ac_op_run_conv_act(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out, void *scratch,
                        int ith, int nth, const ac_conv_act *act)
{
    if (n->op != AC_OP_CONV || !n->params)
        return false;
    return ac_conv2d_f32_act(n->params, in[0], in[1], n->ninputs > 2 ? in[2] : NULL, out[0], scratch, ith, nth, act);
}

/* ---- ConvTranspose ------------------------------------------------------------- */

static int infer_conv_transpose(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 3, 1, 1));
    for (int i = 0; i < 3; i++)
        TRY(need_f32(g, n, err, i));
    const ac_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 1), *b = in_t(g, n, 2);
    if (x->ndim < 3 || x->ndim > 5)
        return BAD("input '%s' must be 3-D to 5-D (N, C, spatial...), got %d-D", x->name,
                   x->ndim);
    if (w->ndim != x->ndim)
        return BAD("weight '%s' must be %d-D like the input, got %d-D", w->name, x->ndim,
                   w->ndim);
    int nsp = x->ndim - 2;
    int64_t group;
    TRY(attr_int(g, n, err, "group", 1, &group));
    int64_t cin = x->dims[1];
    if (group < 1 || group > AC_MAX_NUMEL)
        return BAD("attribute 'group' must be >= 1, got %lld", (long long)group);
    if (w->dims[0] != cin)
        return BAD("weight '%s' dim 0 is %lld, input has %lld channels", w->name,
                   (long long)w->dims[0], (long long)cin);
    if (cin % group)
        return BAD("input channels %lld not divisible by group %lld", (long long)cin,
                   (long long)group);
    int64_t cout = w->dims[1] * group;
    if (cout == 0)
        return BAD("weight '%s' has no output channels", w->name);
    if (b && (b->ndim != 1 || b->dims[0] != cout))
        return BAD("bias '%s' must have shape [%lld]", b->name, (long long)cout);
    spatial sp;
    TRY(spatial_attrs(g, n, err, nsp, w->dims + 2, true, &sp));
    int64_t opad[3] = {0, 0, 0};
    TRY(spatial_ints(g, n, err, "output_padding", nsp, 0, opad));
    const int64_t *os;
    int osc;
    TRY(attr_ints(g, n, err, "output_shape", &os, &osc));
    if (osc >= 0 && osc != nsp && osc != nsp + 2)
        return BAD("attribute 'output_shape' must have %d values, got %d", nsp, osc);
    if (osc == nsp + 2)
        os += 2;
    int64_t od[AC_MAX_DIMS] = {x->dims[0], cout};
    for (int d = 0; d < nsp; d++) {
        int64_t in = x->dims[2 + d];
        int64_t full = sp.stride[d] * (in - 1) + opad[d] + (sp.kernel[d] - 1) * sp.dilation[d] + 1;
        if (opad[d] >= sp.stride[d] && opad[d] >= sp.dilation[d])
            return BAD("attribute 'output_padding' value %lld must be smaller than the stride "
                       "or the dilation",
                       (long long)opad[d]);
        int64_t want = -1;
        if (osc >= 0) {
            want = os[d];
            if (want < 1 || want > AC_MAX_NUMEL)
                return BAD("attribute 'output_shape' value %lld is out of range",
                           (long long)want);
        } else if (sp.auto_pad == PAD_SAME_UPPER || sp.auto_pad == PAD_SAME_LOWER) {
            want = in * sp.stride[d];
        }
        if (want >= 0) {
            /* A negative total (output larger than the full one) extends the end. */
            int64_t total = full - want > 0 ? full - want : 0;
            int64_t small = total / 2, big = total - small;
            bool upper = sp.auto_pad == PAD_SAME_UPPER;
            sp.pad_begin[d] = upper ? small : big;
            sp.pad_end[d] = upper ? big : small;
            od[2 + d] = want;
        } else {
            if (sp.auto_pad == PAD_VALID)
                sp.pad_begin[d] = sp.pad_end[d] = 0;
            od[2 + d] = full - sp.pad_begin[d] - sp.pad_end[d];
            if (od[2 + d] < 1)
                return BAD("output size %lld on spatial dim %d is not positive (pads too large)",
                           (long long)od[2 + d], d);
        }
    }
    TRY(set_out(g, n, err, 0, AC_DT_F32, x->ndim, od));
    PARAMS(ac_conv_transpose_shape);
    p->n = x->dims[0];
    p->c_in = cin;
    p->c_out = cout;
    p->groups = group;
    int lead = 3 - nsp; /* 1-D and 2-D use leading spatial dims of 1 */
    for (int d = 0; d < 3; d++) {
        int s = d - lead;
        p->in[d] = s >= 0 ? x->dims[2 + s] : 1;
        p->out[d] = s >= 0 ? od[2 + s] : 1;
        p->kernel[d] = s >= 0 ? sp.kernel[s] : 1;
        p->stride[d] = s >= 0 ? sp.stride[s] : 1;
        p->dilation[d] = s >= 0 ? sp.dilation[s] : 1;
        p->pad_begin[d] = s >= 0 ? sp.pad_begin[s] : 0;
    }
    return 0;
}

static int run_conv_transpose(const ac_graph *g, const ac_node *n, const void *const *in,
                              void *const *out, void *scratch, int ith, int nth)
{
    ac_conv_transpose_f32__ref(n->params, in[0], in[1], n->ninputs > 2 ? in[2] : NULL, out[0],
                               ith, nth);
    return 0;
}

/* ---- Gemm ------------------------------------------------------------------------- */

static int infer_gemm(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 3, 1, 1));
    for (int i = 0; i < 3; i++)
        TRY(need_f32(g, n, err, i));
    const ac_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *c = in_t(g, n, 2);
    if (a->ndim != 2 || b->ndim != 2)
        return BAD("inputs '%s' and '%s' must be 2-D, got %d-D and %d-D", a->name, b->name,
                   a->ndim, b->ndim);
    int64_t ta, tb;
    PARAMS(ac_gemm_shape);
    TRY(attr_int(g, n, err, "transA", 0, &ta));
    TRY(attr_int(g, n, err, "transB", 0, &tb));
    TRY(attr_float(g, n, err, "alpha", 1.0f, &p->alpha));
    TRY(attr_float(g, n, err, "beta", 1.0f, &p->beta));
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t kb = tb ? b->dims[1] : b->dims[0], nn = tb ? b->dims[0] : b->dims[1];
    if (k != kb)
        return BAD("inner dimensions differ: A gives K=%lld, B gives K=%lld", (long long)k,
                   (long long)kb);
    int64_t cr = 0, cc = 0;
    if (c) {
        if (c->ndim > 2)
            return BAD("bias '%s' must have at most 2 dims, got %d", c->name, c->ndim);
        cr = c->ndim == 2 ? c->dims[0] : 1;
        cc = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
        if ((cr != 1 && cr != m) || (cc != 1 && cc != nn))
            return BAD("bias '%s' of shape [%lld, %lld] does not broadcast to [%lld, %lld]",
                       c->name, (long long)cr, (long long)cc, (long long)m, (long long)nn);
    }
    int64_t od[2] = {m, nn};
    TRY(set_out(g, n, err, 0, AC_DT_F32, 2, od));
    p->m = to_int(m);
    p->n = to_int(nn);
    p->k = to_int(k);
    p->trans_a = ta != 0;
    p->trans_b = tb != 0;
    p->c_rows = to_int(cr);
    p->c_cols = to_int(cc);
    return 0;
}

static size_t scratch_gemm(const ac_graph *g, const ac_node *n, int nth)
{
    return ac_gemm_f32_scratch_bytes(n->params, nth);
}

static int run_gemm(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                    void *scratch, int ith, int nth)
{
    ac_gemm_f32(n->params, in[0], in[1], n->ninputs > 2 ? in[2] : NULL, out[0], scratch, ith,
                nth);
    return 0;
}

/* ---- MatMul ------------------------------------------------------------------------ */

typedef struct {
    ac_gemm_shape gs;
    int nb; /* batch rank */
    int64_t batch[AC_MAX_DIMS], a_st[AC_MAX_DIMS], b_st[AC_MAX_DIMS]; /* in matrices */
    int64_t nbatch;
} matmul_params;

static int infer_matmul(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 2, 1, 1));
    TRY(need_f32(g, n, err, 0));
    TRY(need_f32(g, n, err, 1));
    const ac_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    if (a->ndim < 1 || b->ndim < 1)
        return BAD("inputs '%s' and '%s' must have at least 1 dim", a->name, b->name);
    PARAMS(matmul_params);
    /* 1-D operands: A [K] is [1, K], B [K] is [K, 1]; the added dim is dropped after. */
    int64_t m = a->ndim == 1 ? 1 : a->dims[a->ndim - 2], k = a->dims[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->dims[0] : b->dims[b->ndim - 2];
    int64_t nn = b->ndim == 1 ? 1 : b->dims[b->ndim - 1];
    if (k != kb)
        return BAD("inner dimensions differ: '%s' has K=%lld, '%s' has K=%lld", a->name,
                   (long long)k, b->name, (long long)kb);
    int abr = a->ndim > 2 ? a->ndim - 2 : 0, bbr = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = abr > bbr ? abr : bbr;
    if (nb + 2 > AC_MAX_DIMS)
        return BAD("output rank %d exceeds %d", nb + 2, AC_MAX_DIMS);
    int64_t ast = 1, bst = 1;
    p->nbatch = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int da = d - (nb - abr), db = d - (nb - bbr);
        int64_t ea = da >= 0 ? a->dims[da] : 1, eb = db >= 0 ? b->dims[db] : 1;
        if (ea != eb && ea != 1 && eb != 1)
            return BAD("batch dimensions do not broadcast: %lld vs %lld", (long long)ea,
                       (long long)eb);
        p->batch[d] = ea == 1 ? eb : ea;
        p->a_st[d] = ea == 1 ? 0 : ast;
        p->b_st[d] = eb == 1 ? 0 : bst;
        ast *= ea;
        bst *= eb;
        p->nbatch *= p->batch[d];
    }
    p->nb = nb;
    int64_t od[AC_MAX_DIMS];
    int r = 0;
    for (int d = 0; d < nb; d++)
        od[r++] = p->batch[d];
    if (a->ndim > 1)
        od[r++] = m;
    if (b->ndim > 1)
        od[r++] = nn;
    TRY(set_out(g, n, err, 0, AC_DT_F32, r, od));
    if (checked_numel(2, (int64_t[]){m, k}) < 0 || checked_numel(2, (int64_t[]){k, nn}) < 0)
        return BAD("operands are too large");
    p->gs.m = to_int(m);
    p->gs.n = to_int(nn);
    p->gs.k = to_int(k);
    p->gs.alpha = 1.0f;
    p->gs.beta = 0.0f;
    return 0;
}

static size_t scratch_matmul(const ac_graph *g, const ac_node *n, int nth)
{
    const matmul_params *p = n->params;
    return ac_gemm_f32_scratch_bytes(&p->gs, nth);
}

static int run_matmul(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                      void *scratch, int ith, int nth)
{
    const matmul_params *p = n->params;
    const float *a = in[0], *b = in[1];
    float *y = out[0];
    int64_t amat = (int64_t)p->gs.m * p->gs.k, bmat = (int64_t)p->gs.k * p->gs.n;
    int64_t ymat = (int64_t)p->gs.m * p->gs.n;
    /* Every thread walks all batches; ac_gemm_f32 splits each one by ith. */
    for (int64_t bi = 0; bi < p->nbatch; bi++) {
        int64_t ao = 0, bo = 0, rem = bi;
        for (int d = p->nb - 1; d >= 0; d--) {
            int64_t i = rem % p->batch[d];
            rem /= p->batch[d];
            ao += i * p->a_st[d];
            bo += i * p->b_st[d];
        }
        ac_gemm_f32(&p->gs, a + ao * amat, b + bo * bmat, NULL, y + bi * ymat, scratch, ith, nth);
    }
    return 0;
}

/* ---- BatchNormalization --------------------------------------------------------------- */

static int infer_batchnorm(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 5, 5, 1, 5));
    for (int i = 1; i < n->noutputs; i++)
        if (n->outputs[i] >= 0)
            return UNSUPPORTED("training outputs (output %d) are not supported", i);
    for (int i = 0; i < 5; i++)
        TRY(need_f32(g, n, err, i));
    int64_t training, spatial_attr;
    TRY(attr_int(g, n, err, "training_mode", 0, &training));
    if (training)
        return UNSUPPORTED("training_mode=1 is not supported (inference only)");
    TRY(attr_int(g, n, err, "spatial", 1, &spatial_attr));
    if (!spatial_attr)
        return UNSUPPORTED("spatial=0 is not supported");
    const ac_tensor *x = in_t(g, n, 0);
    if (x->ndim < 2)
        return BAD("input '%s' must have at least 2 dims (N, C, ...), got %d", x->name, x->ndim);
    for (int i = 1; i < 5; i++) {
        const ac_tensor *t = in_t(g, n, i);
        if (t->ndim != 1 || t->dims[0] != x->dims[1])
            return BAD("input '%s' must have shape [%lld] (the channel count)", t->name,
                       (long long)x->dims[1]);
    }
    PARAMS(ac_batchnorm_shape);
    TRY(attr_float(g, n, err, "epsilon", 1e-5f, &p->eps));
    p->n = x->dims[0];
    p->c = x->dims[1];
    p->inner = 1;
    for (int d = 2; d < x->ndim; d++)
        p->inner *= x->dims[d];
    return set_out_like(g, n, err, 0, x);
}

static int run_batchnorm(const ac_graph *g, const ac_node *n, const void *const *in,
                         void *const *out, void *scratch, int ith, int nth)
{
    ac_batchnorm_f32__ref(n->params, in[0], in[1], in[2], in[3], in[4], out[0], ith, nth);
    return 0;
}

/* ---- Softmax ---------------------------------------------------------------------------- */

static int infer_softmax(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    TRY(need_f32(g, n, err, 0));
    const ac_tensor *x = in_t(g, n, 0);
    if (x->ndim < 1)
        return BAD("input '%s' must have at least 1 dim", x->name);
    int64_t axis_attr;
    TRY(attr_int(g, n, err, "axis", g->opset >= 13 ? -1 : 1, &axis_attr));
    int axis;
    TRY(norm_axis(g, n, err, "axis", axis_attr, x->ndim, false, &axis));
    PARAMS(ac_softmax_shape);
    p->outer = p->len = p->inner = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= x->dims[d];
    if (g->opset >= 13) {
        p->len = x->dims[axis];
        for (int d = axis + 1; d < x->ndim; d++)
            p->inner *= x->dims[d];
    } else { /* before opset 13: the input is flattened to 2-D at axis */
        for (int d = axis; d < x->ndim; d++)
            p->len *= x->dims[d];
    }
    return set_out_like(g, n, err, 0, x);
}

static int run_softmax(const ac_graph *g, const ac_node *n, const void *const *in,
                       void *const *out, void *scratch, int ith, int nth)
{
    ac_softmax_f32__ref(n->params, in[0], out[0], ith, nth);
    return 0;
}

/* ---- pools ------------------------------------------------------------------------------ */

static int infer_pool(ac_graph *g, ac_node *n, ac_err *err)
{
    bool is_max = n->op == AC_OP_MAXPOOL;
    TRY(check_io(g, n, err, 1, 1, 1, is_max ? 2 : 1));
    if (n->noutputs > 1 && n->outputs[1] >= 0)
        return UNSUPPORTED("the Indices output is not supported");
    TRY(need_f32(g, n, err, 0));
    const ac_tensor *x = in_t(g, n, 0);
    if (x->ndim < 3 || x->ndim > 5)
        return BAD("input '%s' must be 3-D to 5-D (N, C, spatial...), got %d-D", x->name,
                   x->ndim);
    int nsp = x->ndim - 2;
    spatial sp;
    TRY(spatial_attrs(g, n, err, nsp, NULL, is_max || g->opset >= 19, &sp));
    int64_t ceil_mode, cip = 0, storage;
    TRY(attr_int(g, n, err, "ceil_mode", 0, &ceil_mode));
    if (!is_max)
        TRY(attr_int(g, n, err, "count_include_pad", 0, &cip));
    TRY(attr_int(g, n, err, "storage_order", 0, &storage));
    int64_t od[AC_MAX_DIMS] = {x->dims[0], x->dims[1]};
    for (int d = 0; d < nsp; d++) {
        TRY(window_out(g, n, err, &sp, d, x->dims[2 + d], ceil_mode != 0, &od[2 + d]));
        int64_t eff = (sp.kernel[d] - 1) * sp.dilation[d] + 1;
        if (sp.pad_begin[d] >= eff || sp.pad_end[d] >= eff)
            return BAD("pads (%lld, %lld) must be smaller than the kernel extent %lld",
                       (long long)sp.pad_begin[d], (long long)sp.pad_end[d], (long long)eff);
    }
    TRY(set_out(g, n, err, 0, AC_DT_F32, x->ndim, od));
    PARAMS(ac_pool_shape);
    p->n = x->dims[0];
    p->c = x->dims[1];
    p->count_include_pad = cip != 0;
    int lead = 3 - nsp;
    for (int d = 0; d < 3; d++) {
        int s = d - lead;
        p->in[d] = s >= 0 ? x->dims[2 + s] : 1;
        p->out[d] = s >= 0 ? od[2 + s] : 1;
        p->kernel[d] = s >= 0 ? sp.kernel[s] : 1;
        p->stride[d] = s >= 0 ? sp.stride[s] : 1;
        p->dilation[d] = s >= 0 ? sp.dilation[s] : 1;
        p->pad_begin[d] = s >= 0 ? sp.pad_begin[s] : 0;
        p->pad_end[d] = s >= 0 ? sp.pad_end[s] : 0;
    }
    return 0;
}

static int run_pool(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                    void *scratch, int ith, int nth)
{
    if (n->op == AC_OP_MAXPOOL)
        ac_maxpool_f32(n->params, in[0], out[0], ith, nth);
    else
        ac_avgpool_f32(n->params, in[0], out[0], ith, nth);
    return 0;
}

static int infer_global_pool(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    TRY(need_f32(g, n, err, 0));
    const ac_tensor *x = in_t(g, n, 0);
    if (x->ndim < 3)
        return BAD("input '%s' must have at least 3 dims (N, C, spatial...), got %d", x->name,
                   x->ndim);
    int64_t od[AC_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        od[d] = d < 2 ? x->dims[d] : 1;
    for (int d = 2; d < x->ndim; d++)
        if (x->dims[d] == 0)
            return BAD("input '%s' has an empty spatial dim %d", x->name, d);
    return set_out(g, n, err, 0, AC_DT_F32, x->ndim, od);
}

static int run_global_pool(const ac_graph *g, const ac_node *n, const void *const *in,
                           void *const *out, void *scratch, int ith, int nth)
{
    const ac_tensor *x = &g->tensors[n->inputs[0]];
    int64_t rows = x->dims[0] * x->dims[1];
    int64_t len = rows ? ac_tensor_numel(x) / rows : 0;
    ac_global_pool_f32__ref(n->op == AC_OP_GLOBAL_MAXPOOL, rows, len, in[0], out[0], ith, nth);
    return 0;
}

/* ---- ReduceMean ----------------------------------------------------------------------------- */

static int infer_reduce_mean(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 2, 1, 1));
    TRY(need_f32(g, n, err, 0));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t axes[AC_MAX_DIMS], keepdims, noop;
    int na;
    TRY(ints_attr_or_input(g, n, err, "axes", 1, axes, AC_MAX_DIMS, &na));
    TRY(attr_int(g, n, err, "keepdims", 1, &keepdims));
    TRY(attr_int(g, n, err, "noop_with_empty_axes", 0, &noop));
    PARAMS(ac_reduce_shape);
    p->ndim = x->ndim;
    bool mask[AC_MAX_DIMS];
    TRY(norm_axes(g, n, err, "axis", axes, na > 0 ? na : 0, x->ndim, mask));
    int64_t od[AC_MAX_DIMS];
    int r = 0;
    for (int d = 0; d < x->ndim; d++) {
        bool red = na > 0 ? mask[d] : !noop; /* no axes: all of them (or none with noop) */
        p->dims[d] = x->dims[d];
        p->reduce[d] = red;
        if (red && x->dims[d] == 0)
            return BAD("cannot average over empty dim %d of '%s'", d, x->name);
        if (!red)
            od[r++] = x->dims[d];
        else if (keepdims)
            od[r++] = 1;
    }
    return set_out(g, n, err, 0, AC_DT_F32, r, od);
}

static int run_reduce_mean(const ac_graph *g, const ac_node *n, const void *const *in,
                           void *const *out, void *scratch, int ith, int nth)
{
    ac_reduce_mean_f32__ref(n->params, in[0], out[0], ith, nth);
    return 0;
}

/* ---- Concat / Split ------------------------------------------------------------------------- */

typedef struct {
    int64_t outer;
    int64_t *chunk; /* per input / output, in elements */
} concat_params;

static int infer_concat(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, n->ninputs > 0 ? n->ninputs : 1, 1, 1));
    const ac_tensor *x0 = in_t(g, n, 0);
    int64_t axis_attr;
    if (!ac_node_attr(n, "axis"))
        return BAD("attribute 'axis' is required");
    TRY(attr_int(g, n, err, "axis", 0, &axis_attr));
    if (x0->ndim < 1)
        return BAD("inputs must have at least 1 dim ('%s' is a scalar)", x0->name);
    int axis;
    TRY(norm_axis(g, n, err, "axis", axis_attr, x0->ndim, false, &axis));
    PARAMS(concat_params);
    p->chunk = ac_arena_alloc(g->arena, sizeof(int64_t) * (size_t)n->ninputs);
    if (!p->chunk)
        return node_err(g, n, err, AC_E_NOMEM, "out of memory");
    int64_t od[AC_MAX_DIMS];
    memcpy(od, x0->dims, sizeof od);
    od[axis] = 0;
    int64_t inner = 1;
    p->outer = 1;
    for (int d = 0; d < x0->ndim; d++) {
        if (d < axis)
            p->outer *= x0->dims[d];
        if (d > axis)
            inner *= x0->dims[d];
    }
    for (int i = 0; i < n->ninputs; i++) {
        const ac_tensor *t = in_t(g, n, i);
        if (!t)
            return BAD("input %d is missing", i);
        if (t->dtype != x0->dtype)
            return BAD("input '%s' is %s, input '%s' is %s", t->name, ac_dtype_name(t->dtype),
                       x0->name, ac_dtype_name(x0->dtype));
        if (t->ndim != x0->ndim)
            return BAD("input '%s' has rank %d, input '%s' has rank %d", t->name, t->ndim,
                       x0->name, x0->ndim);
        for (int d = 0; d < t->ndim; d++)
            if (d != axis && t->dims[d] != x0->dims[d])
                return BAD("input '%s' dim %d is %lld, input '%s' has %lld", t->name, d,
                           (long long)t->dims[d], x0->name, (long long)x0->dims[d]);
        od[axis] += t->dims[axis];
        if (od[axis] > AC_MAX_NUMEL)
            return BAD("output dim %d is too large", axis);
        p->chunk[i] = t->dims[axis] * inner;
    }
    return set_out(g, n, err, 0, x0->dtype, x0->ndim, od);
}

static int run_concat(const ac_graph *g, const ac_node *n, const void *const *in,
                      void *const *out, void *scratch, int ith, int nth)
{
    const concat_params *p = n->params;
    size_t es = ac_dtype_size(g->tensors[n->outputs[0]].dtype);
    ac_concat__ref(es, p->outer, n->ninputs, p->chunk, in, out[0], ith, nth);
    return 0;
}

static int infer_split(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 2, 1, n->noutputs > 0 ? n->noutputs : 1));
    const ac_tensor *x = in_t(g, n, 0);
    if (x->ndim < 1)
        return BAD("input '%s' must have at least 1 dim", x->name);
    int64_t axis_attr;
    TRY(attr_int(g, n, err, "axis", 0, &axis_attr));
    int axis;
    TRY(norm_axis(g, n, err, "axis", axis_attr, x->ndim, false, &axis));
    int nout = n->noutputs;
    int64_t *sizes = ac_arena_alloc(g->arena, sizeof(int64_t) * (size_t)nout);
    if (!sizes)
        return node_err(g, n, err, AC_E_NOMEM, "out of memory");
    int ns;
    TRY(ints_attr_or_input(g, n, err, "split", 1, sizes, nout, &ns));
    int64_t len = x->dims[axis];
    if (ns >= 0) {
        if (ns != nout)
            return BAD("'split' has %d values for %d outputs", ns, nout);
        int64_t sum = 0;
        for (int i = 0; i < nout; i++) {
            if (sizes[i] < 0 || sizes[i] > AC_MAX_NUMEL)
                return BAD("'split' value %lld is invalid", (long long)sizes[i]);
            sum += sizes[i];
        }
        if (sum != len)
            return BAD("'split' values sum to %lld, dim %d is %lld", (long long)sum, axis,
                       (long long)len);
    } else {
        int64_t num_outputs;
        TRY(attr_int(g, n, err, "num_outputs", nout, &num_outputs));
        if (num_outputs != nout)
            return BAD("attribute 'num_outputs' is %lld, node has %d outputs",
                       (long long)num_outputs, nout);
        /* Equal parts; from opset 18 the last part may be smaller. */
        int64_t part = g->opset >= 18 ? (len + nout - 1) / nout : len / nout;
        if (g->opset < 18 && len % nout)
            return BAD("dim %d of size %lld does not split into %d equal parts", axis,
                       (long long)len, nout);
        for (int i = 0; i < nout; i++) {
            int64_t rest = len - part * i;
            sizes[i] = rest < 0 ? 0 : (rest < part ? rest : part);
        }
    }
    PARAMS(concat_params);
    p->chunk = sizes;
    p->outer = 1;
    int64_t inner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < axis)
            p->outer *= x->dims[d];
        if (d > axis)
            inner *= x->dims[d];
    }
    for (int i = 0; i < nout; i++) {
        int64_t od[AC_MAX_DIMS];
        memcpy(od, x->dims, sizeof od);
        od[axis] = sizes[i];
        TRY(set_out(g, n, err, i, x->dtype, x->ndim, od));
        sizes[i] *= inner; /* chunk in elements from here on */
    }
    return 0;
}

static int run_split(const ac_graph *g, const ac_node *n, const void *const *in,
                     void *const *out, void *scratch, int ith, int nth)
{
    const concat_params *p = n->params;
    size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
    ac_split__ref(es, p->outer, n->noutputs, p->chunk, in[0], out, ith, nth);
    return 0;
}

/* ---- Slice ---------------------------------------------------------------------------------- */

static int infer_slice(ac_graph *g, ac_node *n, ac_err *err)
{
    bool attrs = g->opset < 10;
    TRY(check_io(g, n, err, attrs ? 1 : 3, attrs ? 1 : 5, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int r = x->ndim;
    int64_t starts[AC_MAX_DIMS], ends[AC_MAX_DIMS], axes[AC_MAX_DIMS], steps[AC_MAX_DIMS];
    int ns, ne, na, nst;
    if (attrs) {
        TRY(ints_attr_or_input(g, n, err, "starts", 1, starts, AC_MAX_DIMS, &ns));
        TRY(ints_attr_or_input(g, n, err, "ends", 2, ends, AC_MAX_DIMS, &ne));
        TRY(ints_attr_or_input(g, n, err, "axes", 3, axes, AC_MAX_DIMS, &na));
        nst = -1;
        if (ns < 0 || ne < 0)
            return BAD("attributes 'starts' and 'ends' are required");
    } else {
        TRY(const_ints(g, n, err, 1, "starts", starts, AC_MAX_DIMS, &ns));
        TRY(const_ints(g, n, err, 2, "ends", ends, AC_MAX_DIMS, &ne));
        TRY(const_ints(g, n, err, 3, "axes", axes, AC_MAX_DIMS, &na));
        TRY(const_ints(g, n, err, 4, "steps", steps, AC_MAX_DIMS, &nst));
    }
    if (ns != ne)
        return BAD("'starts' has %d values, 'ends' has %d", ns, ne);
    if (na >= 0 && na != ns)
        return BAD("'axes' has %d values, 'starts' has %d", na, ns);
    if (nst >= 0 && nst != ns)
        return BAD("'steps' has %d values, 'starts' has %d", nst, ns);
    if (ns > r)
        return BAD("%d slices for a %d-D input", ns, r);
    PARAMS(ac_slice_shape);
    p->ndim = r;
    for (int d = 0; d < r; d++) {
        p->in_dims[d] = p->out_dims[d] = x->dims[d];
        p->start[d] = 0;
        p->step[d] = 1;
    }
    bool seen[AC_MAX_DIMS] = {false};
    for (int i = 0; i < ns; i++) {
        int a;
        TRY(norm_axis(g, n, err, "axis", na >= 0 ? axes[i] : i, r, false, &a));
        if (seen[a])
            return BAD("axis %d is sliced twice", a);
        seen[a] = true;
        int64_t step = nst >= 0 ? steps[i] : 1;
        if (step == 0)
            return BAD("step 0 on axis %d is invalid", a);
        if (step == INT64_MIN)
            step = INT64_MIN + 1; /* keeps -step representable; the result is the same */
        int64_t dim = x->dims[a], s = starts[i], e = ends[i];
        /* Negative values count from the end; then clamp (ONNX Slice rules).
         * dim <= AC_MAX_NUMEL, so adding it to any int64 value cannot overflow. */
        if (s < 0)
            s += dim;
        if (e < 0)
            e += dim;
        int64_t len;
        if (step > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
            len = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
            len = s > e ? (s - e - 1) / (-step) + 1 : 0;
        }
        p->start[a] = len > 0 ? s : 0;
        p->step[a] = step;
        p->out_dims[a] = len;
    }
    return set_out(g, n, err, 0, x->dtype, r, p->out_dims);
}

static int run_slice(const ac_graph *g, const ac_node *n, const void *const *in,
                     void *const *out, void *scratch, int ith, int nth)
{
    size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
    ac_slice__ref(es, n->params, in[0], out[0], ith, nth);
    return 0;
}

/* ---- shape-only ops: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout ---------------- */

static int infer_reshape(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 2, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t shape[AC_MAX_DIMS + 1];
    int ns;
    TRY(ints_attr_or_input(g, n, err, "shape", 1, shape, AC_MAX_DIMS + 1, &ns));
    if (ns < 0)
        return BAD("input 'shape' is required");
    if (ns > AC_MAX_DIMS)
        return UNSUPPORTED("target rank %d exceeds %d", ns, AC_MAX_DIMS);
    int64_t allowzero;
    TRY(attr_int(g, n, err, "allowzero", 0, &allowzero));
    int64_t numel = ac_tensor_numel(x), known = 1;
    int infer_at = -1;
    bool has_zero = false;
    for (int d = 0; d < ns; d++) {
        if (shape[d] == -1) {
            if (infer_at >= 0)
                return BAD("'shape' has more than one -1");
            infer_at = d;
            continue;
        }
        if (shape[d] < -1)
            return BAD("'shape' value %lld is invalid", (long long)shape[d]);
        if (shape[d] == 0 && !allowzero) {
            if (d >= x->ndim)
                return BAD("'shape' value 0 at index %d copies a dim the %d-D input lacks", d,
                           x->ndim);
            shape[d] = x->dims[d];
        }
        if (shape[d] == 0)
            has_zero = true;
        if (shape[d] > AC_MAX_NUMEL || (known && shape[d] && known > AC_MAX_NUMEL / shape[d]))
            return BAD("'shape' describes more than %lld elements", (long long)AC_MAX_NUMEL);
        known *= shape[d];
    }
    if (infer_at >= 0) {
        if (has_zero || known == 0) {
            if (numel != 0)
                return BAD("'shape' has -1 with a zero dim, input has %lld elements",
                           (long long)numel);
            return BAD("'shape' -1 is ambiguous with a zero dim");
        }
        if (numel % known)
            return BAD("cannot reshape %lld elements: not divisible by %lld", (long long)numel,
                       (long long)known);
        shape[infer_at] = numel / known;
        known = numel;
    }
    if (known != numel)
        return BAD("cannot reshape %lld elements into %lld", (long long)numel, (long long)known);
    return set_out(g, n, err, 0, x->dtype, ns, shape);
}

static int infer_flatten(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t axis_attr;
    TRY(attr_int(g, n, err, "axis", 1, &axis_attr));
    int axis;
    TRY(norm_axis(g, n, err, "axis", axis_attr, x->ndim, true, &axis));
    int64_t od[2] = {1, 1};
    for (int d = 0; d < x->ndim; d++)
        od[d < axis ? 0 : 1] *= x->dims[d];
    return set_out(g, n, err, 0, x->dtype, 2, od);
}

static int infer_squeeze(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 2, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t axes[AC_MAX_DIMS];
    int na;
    TRY(ints_attr_or_input(g, n, err, "axes", 1, axes, AC_MAX_DIMS, &na));
    bool mask[AC_MAX_DIMS];
    TRY(norm_axes(g, n, err, "axis", axes, na > 0 ? na : 0, x->ndim, mask));
    int64_t od[AC_MAX_DIMS];
    int r = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (na > 0 && mask[d] && x->dims[d] != 1)
            return BAD("cannot squeeze axis %d of size %lld", d, (long long)x->dims[d]);
        bool drop = na > 0 ? mask[d] : x->dims[d] == 1;
        if (!drop)
            od[r++] = x->dims[d];
    }
    return set_out(g, n, err, 0, x->dtype, r, od);
}

static int infer_unsqueeze(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 2, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t axes[AC_MAX_DIMS];
    int na;
    TRY(ints_attr_or_input(g, n, err, "axes", 1, axes, AC_MAX_DIMS, &na));
    if (na < 1)
        return BAD("'axes' is required and must not be empty");
    int r = x->ndim + na;
    if (r > AC_MAX_DIMS)
        return UNSUPPORTED("output rank %d exceeds %d", r, AC_MAX_DIMS);
    bool mask[AC_MAX_DIMS];
    TRY(norm_axes(g, n, err, "axis", axes, na, r, mask));
    int64_t od[AC_MAX_DIMS];
    for (int d = 0, j = 0; d < r; d++)
        od[d] = mask[d] ? 1 : x->dims[j++];
    return set_out(g, n, err, 0, x->dtype, r, od);
}

static int infer_identity(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    return set_out_like(g, n, err, 0, in_t(g, n, 0));
}

static int infer_dropout(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 3, 1, 2));
    const ac_tensor *tm = in_t(g, n, 2);
    if (tm) {
        if (!ac_tensor_is_const(tm) || tm->dtype != AC_DT_BOOL || ac_tensor_numel(tm) != 1)
            return UNSUPPORTED("input 'training_mode' must be a constant bool scalar");
        if (*(const uint8_t *)tm->data)
            return UNSUPPORTED("training_mode=true is not supported (inference only)");
    }
    const ac_tensor *x = in_t(g, n, 0);
    TRY(set_out_like(g, n, err, 0, x));
    /* The mask is all true in inference (bool from opset 10, the data type before). */
    return set_out(g, n, err, 1, g->opset >= 10 ? AC_DT_BOOL : x->dtype, x->ndim, x->dims);
}

static int run_dropout(const ac_graph *g, const ac_node *n, const void *const *in,
                       void *const *out, void *scratch, int ith, int nth)
{
    ac_copy__ref(in[0], out[0], out_bytes(g, n, 0), ith, nth);
    if (n->noutputs > 1 && out[1]) {
        const ac_tensor *m = &g->tensors[n->outputs[1]];
        int64_t lo, hi;
        ac_ref_range(ac_tensor_numel(m), ith, nth, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) {
            if (m->dtype == AC_DT_F32)
                ((float *)out[1])[i] = 1.0f;
            else if (m->dtype == AC_DT_BOOL)
                ((uint8_t *)out[1])[i] = 1;
            else
                memset((char *)out[1] + i * ac_dtype_size(m->dtype), 0, ac_dtype_size(m->dtype));
        }
    }
    return 0;
}

/* ---- Transpose ------------------------------------------------------------------------------ */

static int infer_transpose(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    const int64_t *perm;
    int np;
    TRY(attr_ints(g, n, err, "perm", &perm, &np));
    if (np >= 0 && np != x->ndim)
        return BAD("attribute 'perm' has %d values, input is %d-D", np, x->ndim);
    PARAMS(ac_transpose_shape);
    p->ndim = x->ndim;
    bool seen[AC_MAX_DIMS] = {false};
    int64_t od[AC_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        int64_t v = np >= 0 ? perm[d] : x->ndim - 1 - d;
        if (v < 0 || v >= x->ndim || seen[v])
            return BAD("attribute 'perm' is not a permutation of 0..%d", x->ndim - 1);
        seen[v] = true;
        p->perm[d] = (int)v;
        p->in_dims[d] = x->dims[d];
        od[d] = x->dims[v];
    }
    return set_out(g, n, err, 0, x->dtype, x->ndim, od);
}

static int run_transpose(const ac_graph *g, const ac_node *n, const void *const *in,
                         void *const *out, void *scratch, int ith, int nth)
{
    size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
    ac_transpose__ref(es, n->params, in[0], out[0], ith, nth);
    return 0;
}

/* ---- Pad ------------------------------------------------------------------------------------ */

typedef struct {
    ac_pad_shape s;
    unsigned char value[8];
} pad_params;

/* Store v converted to dtype dt in out (elem bytes). */
static void scalar_store(ac_dtype dt, double v, unsigned char *out)
{
    ac_cast__ref(AC_REF_F64, &v, (ac_ref_type)dt, out, 1, 0, 1);
}

static bool ref_type_ok(ac_dtype dt)
{
    return dt == AC_DT_F32 || dt == AC_DT_F64 || dt == AC_DT_I64 || dt == AC_DT_I32 ||
           dt == AC_DT_I8 || dt == AC_DT_U8 || dt == AC_DT_BOOL;
}

static int infer_pad(ac_graph *g, ac_node *n, ac_err *err)
{
    bool attrs = g->opset < 11;
    TRY(check_io(g, n, err, attrs ? 1 : 2, attrs ? 1 : 4, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int r = x->ndim;
    int64_t pads[2 * AC_MAX_DIMS], axes[AC_MAX_DIMS];
    int np, na = -1;
    const char *mode;
    TRY(attr_string(g, n, err, "mode", "constant", &mode));
    PARAMS(pad_params);
    double value = 0.0;
    if (attrs) {
        float v;
        TRY(ints_attr_or_input(g, n, err, "pads", 1, pads, 2 * AC_MAX_DIMS, &np));
        TRY(attr_float(g, n, err, "value", 0.0f, &v));
        value = v;
    } else {
        TRY(const_ints(g, n, err, 1, "pads", pads, 2 * AC_MAX_DIMS, &np));
        TRY(const_ints(g, n, err, 3, "axes", axes, AC_MAX_DIMS, &na));
        const ac_tensor *cv = in_t(g, n, 2);
        if (cv && ac_tensor_numel(cv) > 0) {
            if (!ac_tensor_is_const(cv))
                return UNSUPPORTED("input '%s' (constant_value) must be a constant", cv->name);
            if (cv->dtype != x->dtype)
                return BAD("constant_value '%s' is %s, data is %s", cv->name,
                           ac_dtype_name(cv->dtype), ac_dtype_name(x->dtype));
            if (!ref_type_ok(cv->dtype))
                return UNSUPPORTED("constant_value type %s", ac_dtype_name(cv->dtype));
            ac_cast__ref((ac_ref_type)cv->dtype, cv->data, AC_REF_F64, &value, 1, 0, 1);
        }
    }
    if (np < 0)
        return BAD("'pads' is required");
    int npad = na >= 0 ? na : r;
    if (np != 2 * npad)
        return BAD("'pads' has %d values, expected %d (2 per %s)", np, 2 * npad,
                   na >= 0 ? "axis" : "input dim");
    if (!ref_type_ok(x->dtype))
        return UNSUPPORTED("element type %s", ac_dtype_name(x->dtype));
    p->s.ndim = r;
    if (strcmp(mode, "constant") == 0)
        p->s.mode = AC_PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        p->s.mode = AC_PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        p->s.mode = AC_PAD_EDGE;
    else
        return UNSUPPORTED("mode '%s' is not supported (constant, reflect, edge)", mode);
    int64_t begin[AC_MAX_DIMS] = {0}, end[AC_MAX_DIMS] = {0};
    bool mask[AC_MAX_DIMS];
    for (int d = 0; d < AC_MAX_DIMS; d++)
        mask[d] = false;
    for (int i = 0; i < npad; i++) {
        int a = i;
        if (na >= 0)
            TRY(norm_axis(g, n, err, "axis", axes[i], r, false, &a));
        if (na >= 0 && mask[a])
            return BAD("axis %d is repeated", a);
        mask[a] = true;
        begin[a] = pads[i];
        end[a] = pads[npad + i];
    }
    int64_t od[AC_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        if (begin[d] < -AC_MAX_NUMEL || begin[d] > AC_MAX_NUMEL || end[d] < -AC_MAX_NUMEL ||
            end[d] > AC_MAX_NUMEL)
            return BAD("pad value on dim %d is out of range", d);
        od[d] = x->dims[d] + begin[d] + end[d];
        if (od[d] < 0)
            return BAD("pads make dim %d negative (%lld)", d, (long long)od[d]);
        bool pads_out = begin[d] > 0 || end[d] > 0;
        if (pads_out && p->s.mode == AC_PAD_REFLECT &&
            (x->dims[d] < 2 || begin[d] >= x->dims[d] || end[d] >= x->dims[d]))
            return BAD("reflect pads (%lld, %lld) must be smaller than dim %d of size %lld",
                       (long long)begin[d], (long long)end[d], d, (long long)x->dims[d]);
        if (pads_out && p->s.mode == AC_PAD_EDGE && x->dims[d] < 1)
            return BAD("edge padding of empty dim %d", d);
        p->s.in_dims[d] = x->dims[d];
        p->s.out_dims[d] = od[d];
        p->s.pad_begin[d] = begin[d];
    }
    scalar_store(x->dtype, value, p->value);
    return set_out(g, n, err, 0, x->dtype, r, od);
}

static int run_pad(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                   void *scratch, int ith, int nth)
{
    const pad_params *p = n->params;
    size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
    ac_pad__ref(es, &p->s, p->value, in[0], out[0], ith, nth);
    return 0;
}

/* ---- Resize / Upsample -------------------------------------------------------------------- */

typedef struct {
    bool linear;
    ac_resize_nearest_shape nearest;
    ac_resize_linear_shape lin;
} resize_params;

static int resize_setup(ac_graph *g, ac_node *n, ac_err *err, const ac_tensor *x, bool linear,
                        ac_coord_mode cm, ac_nearest_mode nm, const float *scales,
                        const int64_t *sizes)
{
    int r = x->ndim;
    int64_t od[AC_MAX_DIMS];
    float sc[AC_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        if (sizes) {
            if (sizes[d] < 0 || sizes[d] > AC_MAX_NUMEL)
                return BAD("'sizes' value %lld is invalid", (long long)sizes[d]);
            od[d] = sizes[d];
            sc[d] = x->dims[d] ? (float)od[d] / (float)x->dims[d] : 1.0f;
        } else {
            if (!(scales[d] > 0.0f) || !(scales[d] < 1e6f))
                return BAD("'scales' value %g must be positive and finite", (double)scales[d]);
            double o = floor((double)x->dims[d] * (double)scales[d]);
            if (o > (double)AC_MAX_NUMEL)
                return BAD("output dim %d would be too large", d);
            od[d] = (int64_t)o;
            sc[d] = scales[d];
        }
        if (od[d] > 0 && x->dims[d] == 0)
            return BAD("cannot resize empty dim %d to %lld", d, (long long)od[d]);
    }
    TRY(set_out(g, n, err, 0, x->dtype, r, od));
    PARAMS(resize_params);
    p->linear = linear;
    if (!linear) {
        ac_resize_nearest_shape *s = &p->nearest;
        s->ndim = r;
        for (int d = 0; d < r; d++) {
            s->in_dims[d] = x->dims[d];
            s->out_dims[d] = od[d];
            int64_t *tab = ac_arena_alloc(g->arena, sizeof(int64_t) * (size_t)(od[d] ? od[d] : 1));
            if (!tab)
                return node_err(g, n, err, AC_E_NOMEM, "out of memory");
            for (int64_t i = 0; i < od[d]; i++)
                tab[i] = ac_resize_nearest_index(
                    nm, ac_resize_coord(cm, i, sc[d], x->dims[d], od[d]), x->dims[d]);
            s->src[d] = tab;
        }
        return 0;
    }
    if (x->dtype != AC_DT_F32)
        return UNSUPPORTED("linear resize of %s data (float32 only)", ac_dtype_name(x->dtype));
    if (r < 2)
        return UNSUPPORTED("linear resize needs at least 2 dims");
    for (int d = 0; d < r - 2; d++)
        if (od[d] != x->dims[d] || sc[d] != 1.0f)
            return UNSUPPORTED("linear resize only on the last two axes (dim %d changes)", d);
    ac_resize_linear_shape *s = &p->lin;
    s->outer = 1;
    for (int d = 0; d < r - 2; d++)
        s->outer *= x->dims[d];
    s->h_in = x->dims[r - 2];
    s->w_in = x->dims[r - 1];
    s->h_out = od[r - 2];
    s->w_out = od[r - 1];
    for (int ax = 0; ax < 2; ax++) {
        int d = r - 2 + ax;
        size_t cnt = (size_t)(od[d] ? od[d] : 1);
        int64_t *i0 = ac_arena_alloc(g->arena, sizeof(int64_t) * cnt);
        int64_t *i1 = ac_arena_alloc(g->arena, sizeof(int64_t) * cnt);
        float *l1 = ac_arena_alloc(g->arena, sizeof(float) * cnt);
        if (!i0 || !i1 || !l1)
            return node_err(g, n, err, AC_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < od[d]; i++)
            ac_resize_linear_taps(ac_resize_coord(cm, i, sc[d], x->dims[d], od[d]), x->dims[d],
                                  &i0[i], &i1[i], &l1[i]);
        if (ax == 0) {
            s->h0 = i0;
            s->h1 = i1;
            s->hl = l1;
        } else {
            s->w0 = i0;
            s->w1 = i1;
            s->wl = l1;
        }
    }
    return 0;
}

/* mode attribute: nearest / linear (bilinear accepted for old Upsample); cubic rejected. */
static int resize_mode(const ac_graph *g, const ac_node *n, ac_err *err, bool *linear)
{
    const char *mode;
    TRY(attr_string(g, n, err, "mode", "nearest", &mode));
    if (strcmp(mode, "nearest") == 0)
        *linear = false;
    else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
        *linear = true;
    else if (strcmp(mode, "cubic") == 0)
        return UNSUPPORTED("mode 'cubic' is not supported (nearest, linear)");
    else
        return BAD("attribute 'mode' value '%s' is invalid", mode);
    return 0;
}

static int infer_resize(ac_graph *g, ac_node *n, ac_err *err)
{
    bool v10 = g->opset < 11;
    TRY(check_io(g, n, err, v10 ? 2 : 1, v10 ? 2 : 4, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int r = x->ndim;
    bool linear;
    TRY(resize_mode(g, n, err, &linear));
    ac_coord_mode cm = AC_COORD_ASYMMETRIC;
    ac_nearest_mode nm = AC_NEAREST_FLOOR;
    float scales[AC_MAX_DIMS];
    int64_t sizes[AC_MAX_DIMS];
    int nsc = -1, nsz = -1;
    if (v10) {
        TRY(const_floats(g, n, err, 1, "scales", scales, AC_MAX_DIMS, &nsc));
    } else {
        const char *ctm, *nms;
        TRY(attr_string(g, n, err, "coordinate_transformation_mode", "half_pixel", &ctm));
        TRY(attr_string(g, n, err, "nearest_mode", "round_prefer_floor", &nms));
        if (strcmp(ctm, "half_pixel") == 0)
            cm = AC_COORD_HALF_PIXEL;
        else if (strcmp(ctm, "pytorch_half_pixel") == 0)
            cm = AC_COORD_PYTORCH_HALF_PIXEL;
        else if (strcmp(ctm, "align_corners") == 0)
            cm = AC_COORD_ALIGN_CORNERS;
        else if (strcmp(ctm, "asymmetric") == 0)
            cm = AC_COORD_ASYMMETRIC;
        else if (strcmp(ctm, "tf_half_pixel_for_nn") == 0)
            cm = AC_COORD_TF_HALF_PIXEL_FOR_NN;
        else if (strcmp(ctm, "tf_crop_and_resize") == 0)
            return UNSUPPORTED("coordinate_transformation_mode 'tf_crop_and_resize' is not "
                               "supported");
        else
            return BAD("coordinate_transformation_mode '%s' is invalid", ctm);
        if (strcmp(nms, "round_prefer_floor") == 0)
            nm = AC_NEAREST_ROUND_PREFER_FLOOR;
        else if (strcmp(nms, "round_prefer_ceil") == 0)
            nm = AC_NEAREST_ROUND_PREFER_CEIL;
        else if (strcmp(nms, "floor") == 0)
            nm = AC_NEAREST_FLOOR;
        else if (strcmp(nms, "ceil") == 0)
            nm = AC_NEAREST_CEIL;
        else
            return BAD("nearest_mode '%s' is invalid", nms);
        int64_t antialias;
        TRY(attr_int(g, n, err, "antialias", 0, &antialias));
        if (antialias)
            return UNSUPPORTED("antialias=1 is not supported");
        if (ac_node_attr(n, "axes"))
            return UNSUPPORTED("attribute 'axes' is not supported");
        const ac_tensor *sct = in_t(g, n, 2), *szt = in_t(g, n, 3);
        if (sct && ac_tensor_numel(sct) > 0)
            TRY(const_floats(g, n, err, 2, "scales", scales, AC_MAX_DIMS, &nsc));
        if (szt && ac_tensor_numel(szt) > 0)
            TRY(const_ints(g, n, err, 3, "sizes", sizes, AC_MAX_DIMS, &nsz));
        if (nsc >= 0 && nsz >= 0)
            return BAD("only one of 'scales' and 'sizes' may be given");
    }
    if (nsc < 0 && nsz < 0)
        return BAD("one of 'scales' and 'sizes' is required");
    if ((nsc >= 0 ? nsc : nsz) != r)
        return BAD("'%s' has %d values, input is %d-D", nsc >= 0 ? "scales" : "sizes",
                   nsc >= 0 ? nsc : nsz, r);
    return resize_setup(g, n, err, x, linear, cm, nm, nsc >= 0 ? scales : NULL,
                        nsz >= 0 ? sizes : NULL);
}

static int infer_upsample(ac_graph *g, ac_node *n, ac_err *err)
{
    bool attr = g->opset < 9;
    TRY(check_io(g, n, err, attr ? 1 : 2, attr ? 1 : 2, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    bool linear;
    TRY(resize_mode(g, n, err, &linear));
    float scales[AC_MAX_DIMS];
    int nsc;
    if (attr) {
        const float *v;
        TRY(attr_floats(g, n, err, "scales", &v, &nsc));
        if (nsc < 0)
            return BAD("attribute 'scales' is required");
        if (nsc > AC_MAX_DIMS)
            return BAD("attribute 'scales' has %d values", nsc);
        memcpy(scales, v, sizeof(float) * (size_t)nsc);
    } else {
        TRY(const_floats(g, n, err, 1, "scales", scales, AC_MAX_DIMS, &nsc));
    }
    if (nsc != x->ndim)
        return BAD("'scales' has %d values, input is %d-D", nsc, x->ndim);
    return resize_setup(g, n, err, x, linear, AC_COORD_ASYMMETRIC, AC_NEAREST_FLOOR, scales, NULL);
}

static int run_resize(const ac_graph *g, const ac_node *n, const void *const *in,
                      void *const *out, void *scratch, int ith, int nth)
{
    const resize_params *p = n->params;
    if (p->linear) {
        ac_resize_linear_f32__ref(&p->lin, in[0], out[0], ith, nth);
    } else {
        size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
        ac_resize_nearest__ref(es, &p->nearest, in[0], out[0], ith, nth);
    }
    return 0;
}

/* ---- Constant / ConstantOfShape / Shape ------------------------------------------------------ */

typedef struct {
    const void *data;
    size_t bytes;
} constant_params;

static int infer_constant(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 0, 0, 1, 1));
    static const char *const unsupported[] = {"sparse_value", "value_string", "value_strings"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (ac_node_attr(n, unsupported[i]))
            return UNSUPPORTED("attribute '%s' is not supported", unsupported[i]);
    PARAMS(constant_params);
    const ac_attr *a;
    if ((a = ac_node_attr(n, "value"))) {
        if (a->type != AC_ATTR_TENSOR || a->tensor < 0 || a->tensor >= g->ntensors)
            return BAD("attribute 'value' must be a tensor");
        const ac_tensor *t = &g->tensors[a->tensor];
        if (!ac_tensor_is_const(t) || t->ndim < 0)
            return BAD("attribute 'value' tensor '%s' has no data", t->name);
        p->data = t->data;
        p->bytes = ac_tensor_bytes(t);
        return set_out_like(g, n, err, 0, t);
    }
    if ((a = ac_node_attr(n, "value_float"))) {
        float *v = ac_arena_alloc(g->arena, sizeof(float));
        if (!v)
            return node_err(g, n, err, AC_E_NOMEM, "out of memory");
        TRY(attr_float(g, n, err, "value_float", 0.0f, v));
        p->data = v;
        p->bytes = 4;
        return set_out(g, n, err, 0, AC_DT_F32, 0, NULL);
    }
    if ((a = ac_node_attr(n, "value_int"))) {
        int64_t *v = ac_arena_alloc(g->arena, sizeof(int64_t));
        if (!v)
            return node_err(g, n, err, AC_E_NOMEM, "out of memory");
        TRY(attr_int(g, n, err, "value_int", 0, v));
        p->data = v;
        p->bytes = 8;
        return set_out(g, n, err, 0, AC_DT_I64, 0, NULL);
    }
    if ((a = ac_node_attr(n, "value_floats"))) {
        const float *v;
        int c;
        TRY(attr_floats(g, n, err, "value_floats", &v, &c));
        p->data = v;
        p->bytes = sizeof(float) * (size_t)c;
        int64_t d = c;
        return set_out(g, n, err, 0, AC_DT_F32, 1, &d);
    }
    if ((a = ac_node_attr(n, "value_ints"))) {
        const int64_t *v;
        int c;
        TRY(attr_ints(g, n, err, "value_ints", &v, &c));
        p->data = v;
        p->bytes = sizeof(int64_t) * (size_t)c;
        int64_t d = c;
        return set_out(g, n, err, 0, AC_DT_I64, 1, &d);
    }
    return BAD("one of the attributes 'value', 'value_float(s)', 'value_int(s)' is required");
}

static int run_constant(const ac_graph *g, const ac_node *n, const void *const *in,
                        void *const *out, void *scratch, int ith, int nth)
{
    const constant_params *p = n->params;
    ac_copy__ref(p->data, out[0], p->bytes, ith, nth);
    return 0;
}

static int infer_constant_of_shape(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    int64_t shape[AC_MAX_DIMS + 1];
    int ns;
    const ac_tensor *st = in_t(g, n, 0);
    if (st->ndim != 1)
        return BAD("input '%s' (shape) must be 1-D, got %d-D", st->name, st->ndim);
    TRY(const_ints(g, n, err, 0, "shape", shape, AC_MAX_DIMS + 1, &ns));
    if (ns > AC_MAX_DIMS)
        return UNSUPPORTED("output rank %d exceeds %d", ns, AC_MAX_DIMS);
    PARAMS(constant_params);
    ac_dtype dt = AC_DT_F32;
    static const float zero[2] = {0.0f, 0.0f};
    p->data = zero;
    const ac_attr *a = ac_node_attr(n, "value");
    if (a) {
        if (a->type != AC_ATTR_TENSOR || a->tensor < 0 || a->tensor >= g->ntensors)
            return BAD("attribute 'value' must be a tensor");
        const ac_tensor *t = &g->tensors[a->tensor];
        if (!ac_tensor_is_const(t) || ac_tensor_numel(t) != 1)
            return BAD("attribute 'value' must hold exactly one element");
        dt = t->dtype;
        p->data = t->data;
    }
    p->bytes = ac_dtype_size(dt);
    if (!p->bytes)
        return UNSUPPORTED("value type %s", ac_dtype_name(dt));
    return set_out(g, n, err, 0, dt, ns, shape);
}

static int run_constant_of_shape(const ac_graph *g, const ac_node *n, const void *const *in,
                                 void *const *out, void *scratch, int ith, int nth)
{
    const constant_params *p = n->params;
    int64_t lo, hi;
    ac_ref_range(ac_tensor_numel(&g->tensors[n->outputs[0]]), ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        memcpy((char *)out[0] + (size_t)i * p->bytes, p->data, p->bytes);
    return 0;
}

typedef struct {
    int start, end;
} shape_params;

static int infer_shape(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t start, end;
    TRY(attr_int(g, n, err, "start", 0, &start));
    TRY(attr_int(g, n, err, "end", x->ndim, &end));
    /* Negative values count from the end; both clamp to [0, rank]. */
    if (start < 0)
        start += x->ndim;
    if (end < 0)
        end += x->ndim;
    start = start < 0 ? 0 : (start > x->ndim ? x->ndim : start);
    end = end < 0 ? 0 : (end > x->ndim ? x->ndim : end);
    PARAMS(shape_params);
    p->start = (int)start;
    p->end = end > start ? (int)end : (int)start;
    int64_t d = p->end - p->start;
    return set_out(g, n, err, 0, AC_DT_I64, 1, &d);
}

static int run_shape(const ac_graph *g, const ac_node *n, const void *const *in,
                     void *const *out, void *scratch, int ith, int nth)
{
    const shape_params *p = n->params;
    const ac_tensor *x = &g->tensors[n->inputs[0]];
    if (ith == 0)
        for (int d = p->start; d < p->end; d++)
            ((int64_t *)out[0])[d - p->start] = x->dims[d];
    return 0;
}

/* ---- Gather ------------------------------------------------------------------------------------ */

typedef struct {
    int64_t outer, axis_len, inner, nidx;
    bool idx32;
} gather_params;

static int infer_gather(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 2, 2, 1, 1));
    const ac_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    if (idx->dtype != AC_DT_I64 && idx->dtype != AC_DT_I32)
        return BAD("indices '%s' must be int64 or int32, got %s", idx->name,
                   ac_dtype_name(idx->dtype));
    if (x->ndim < 1)
        return BAD("data '%s' must have at least 1 dim", x->name);
    int64_t axis_attr;
    TRY(attr_int(g, n, err, "axis", 0, &axis_attr));
    int axis;
    TRY(norm_axis(g, n, err, "axis", axis_attr, x->ndim, false, &axis));
    int r = x->ndim - 1 + idx->ndim;
    if (r > AC_MAX_DIMS)
        return UNSUPPORTED("output rank %d exceeds %d", r, AC_MAX_DIMS);
    PARAMS(gather_params);
    p->axis_len = x->dims[axis];
    p->nidx = ac_tensor_numel(idx);
    p->idx32 = idx->dtype == AC_DT_I32;
    p->outer = p->inner = 1;
    int64_t od[AC_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < axis; d++) {
        od[k++] = x->dims[d];
        p->outer *= x->dims[d];
    }
    for (int d = 0; d < idx->ndim; d++)
        od[k++] = idx->dims[d];
    for (int d = axis + 1; d < x->ndim; d++) {
        od[k++] = x->dims[d];
        p->inner *= x->dims[d];
    }
    if (ac_tensor_is_const(idx)) /* known indices: check them now for a precise message */
        for (int64_t i = 0; i < p->nidx; i++) {
            int64_t v = p->idx32 ? ((const int32_t *)idx->data)[i] : ((const int64_t *)idx->data)[i];
            if (v < -p->axis_len || v >= p->axis_len)
                return BAD("index %lld is out of range [%lld, %lld) for axis %d", (long long)v,
                           (long long)-p->axis_len, (long long)p->axis_len, axis);
        }
    return set_out(g, n, err, 0, x->dtype, r, od);
}

static int run_gather(const ac_graph *g, const ac_node *n, const void *const *in,
                      void *const *out, void *scratch, int ith, int nth)
{
    const gather_params *p = n->params;
    size_t es = ac_dtype_size(g->tensors[n->inputs[0]].dtype);
    return ac_gather__ref(es, p->outer, p->axis_len, p->inner, in[1], p->idx32, p->nidx, in[0],
                          out[0], ith, nth);
}

/* ---- Cast ------------------------------------------------------------------------------------- */

static int infer_cast(ac_graph *g, ac_node *n, ac_err *err)
{
    TRY(check_io(g, n, err, 1, 1, 1, 1));
    const ac_tensor *x = in_t(g, n, 0);
    int64_t to;
    if (!ac_node_attr(n, "to"))
        return BAD("attribute 'to' is required");
    TRY(attr_int(g, n, err, "to", 0, &to));
    if (to < 0 || to > 64 || !ref_type_ok((ac_dtype)to))
        return UNSUPPORTED("cast to type %lld is not supported (float32, float64, int64, "
                           "int32, int8, uint8, bool)",
                           (long long)to);
    if (!ref_type_ok(x->dtype))
        return UNSUPPORTED("cast from %s is not supported", ac_dtype_name(x->dtype));
    return set_out(g, n, err, 0, (ac_dtype)to, x->ndim, x->dims);
}

static int run_cast(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
                    void *scratch, int ith, int nth)
{
    ac_cast__ref((ac_ref_type)g->tensors[n->inputs[0]].dtype, in[0],
                 (ac_ref_type)g->tensors[n->outputs[0]].dtype, out[0], in_numel(g, n, 0), ith,
                 nth);
    return 0;
}

/* ---- table ------------------------------------------------------------------------------------- */

static const ac_op_def op_defs[AC_OP_COUNT] = {
    [AC_OP_CONV] = {infer_conv, scratch_conv, run_conv},
    [AC_OP_CONV_TRANSPOSE] = {infer_conv_transpose, NULL, run_conv_transpose},
    [AC_OP_GEMM] = {infer_gemm, scratch_gemm, run_gemm},
    [AC_OP_MATMUL] = {infer_matmul, scratch_matmul, run_matmul},
    [AC_OP_BATCHNORM] = {infer_batchnorm, NULL, run_batchnorm},
    [AC_OP_ADD] = {infer_binary, NULL, run_binary},
    [AC_OP_SUB] = {infer_binary, NULL, run_binary},
    [AC_OP_MUL] = {infer_binary, NULL, run_binary},
    [AC_OP_DIV] = {infer_binary, NULL, run_binary},
    [AC_OP_PRELU] = {infer_binary, NULL, run_binary},
    [AC_OP_RELU] = {infer_unary, NULL, run_unary},
    [AC_OP_LEAKY_RELU] = {infer_unary, NULL, run_unary},
    [AC_OP_CLIP] = {infer_unary, NULL, run_unary},
    [AC_OP_RELU6] = {infer_unary, NULL, run_unary},
    [AC_OP_SIGMOID] = {infer_unary, NULL, run_unary},
    [AC_OP_TANH] = {infer_unary, NULL, run_unary},
    [AC_OP_HARD_SIGMOID] = {infer_unary, NULL, run_unary},
    [AC_OP_HARD_SWISH] = {infer_unary, NULL, run_unary},
    [AC_OP_SILU] = {infer_unary, NULL, run_unary},
    [AC_OP_EXP] = {infer_unary, NULL, run_unary},
    [AC_OP_SQRT] = {infer_unary, NULL, run_unary},
    [AC_OP_SOFTMAX] = {infer_softmax, NULL, run_softmax},
    [AC_OP_MAXPOOL] = {infer_pool, NULL, run_pool},
    [AC_OP_AVGPOOL] = {infer_pool, NULL, run_pool},
    [AC_OP_GLOBAL_AVGPOOL] = {infer_global_pool, NULL, run_global_pool},
    [AC_OP_GLOBAL_MAXPOOL] = {infer_global_pool, NULL, run_global_pool},
    [AC_OP_REDUCE_MEAN] = {infer_reduce_mean, NULL, run_reduce_mean},
    [AC_OP_CONCAT] = {infer_concat, NULL, run_concat},
    [AC_OP_SPLIT] = {infer_split, NULL, run_split},
    [AC_OP_SLICE] = {infer_slice, NULL, run_slice},
    [AC_OP_RESHAPE] = {infer_reshape, NULL, run_copy},
    [AC_OP_FLATTEN] = {infer_flatten, NULL, run_copy},
    [AC_OP_TRANSPOSE] = {infer_transpose, NULL, run_transpose},
    [AC_OP_SQUEEZE] = {infer_squeeze, NULL, run_copy},
    [AC_OP_UNSQUEEZE] = {infer_unsqueeze, NULL, run_copy},
    [AC_OP_PAD] = {infer_pad, NULL, run_pad},
    [AC_OP_RESIZE] = {infer_resize, NULL, run_resize},
    [AC_OP_UPSAMPLE] = {infer_upsample, NULL, run_resize},
    [AC_OP_IDENTITY] = {infer_identity, NULL, run_copy},
    [AC_OP_DROPOUT] = {infer_dropout, NULL, run_dropout},
    [AC_OP_CONSTANT] = {infer_constant, NULL, run_constant},
    [AC_OP_CONSTANT_OF_SHAPE] = {infer_constant_of_shape, NULL, run_constant_of_shape},
    [AC_OP_SHAPE] = {infer_shape, NULL, run_shape},
    [AC_OP_GATHER] = {infer_gather, NULL, run_gather},
    [AC_OP_CAST] = {infer_cast, NULL, run_cast},
};

const ac_op_def *ac_op_def_get(ac_op op)
{
    if ((int)op <= AC_OP_UNKNOWN || (int)op >= AC_OP_COUNT || !op_defs[op].infer)
        return NULL;
    return &op_defs[op];
}

/* ---- shape inference + constant folding ------------------------------------------------------ */

/* Run node n once on one thread and turn its outputs into constants. */
static int fold_node(ac_graph *g, ac_node *n, const ac_op_def *def, ac_err *err)
{
    const void **in = calloc((size_t)n->ninputs + 1, sizeof(void *));
    void **out = calloc((size_t)n->noutputs + 1, sizeof(void *));
    size_t sbytes = def->scratch_bytes ? def->scratch_bytes(g, n, 1) : 0;
    void *scratch = sbytes ? malloc(sbytes) : NULL;
    int rc = 0;
    if (!in || !out || (sbytes && !scratch)) {
        rc = node_err(g, n, err, AC_E_NOMEM, "out of memory while folding constants");
        goto done;
    }
    for (int i = 0; i < n->ninputs; i++)
        in[i] = n->inputs[i] >= 0 ? g->tensors[n->inputs[i]].data : NULL;
    for (int i = 0; i < n->noutputs; i++) {
        if (n->outputs[i] < 0)
            continue;
        size_t b = ac_tensor_bytes(&g->tensors[n->outputs[i]]);
        out[i] = malloc(b ? b : 1);
        if (!out[i]) {
            rc = node_err(g, n, err, AC_E_NOMEM, "out of memory while folding constants");
            goto done;
        }
    }
    if (def->run(g, n, in, out, scratch, 0, 1)) {
        rc = BAD("constant folding failed: the constant inputs are invalid for this op "
                 "(e.g. an index out of range or an integer division by zero)");
        goto done;
    }
    for (int i = 0; i < n->noutputs && !rc; i++)
        if (n->outputs[i] >= 0)
            rc = ac_graph_set_const(g, n->outputs[i], out[i],
                                    ac_tensor_bytes(&g->tensors[n->outputs[i]]), err);
done:
    if (out)
        for (int i = 0; i < n->noutputs; i++)
            free(out[i]);
    free(out);
    free(in);
    free(scratch);
    return rc;
}

static bool foldable(const ac_graph *g, const ac_node *n)
{
    if (n->op == AC_OP_SHAPE)
        return true; /* shapes are static after inference */
    for (int i = 0; i < n->ninputs; i++)
        if (n->inputs[i] >= 0 && !ac_tensor_is_const(&g->tensors[n->inputs[i]]))
            return false;
    return true;
}

int ac_graph_infer_shapes(ac_graph *g, ac_err *err)
{
    char *folded = calloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
    if (!folded)
        return ac_err_set(err, AC_E_NOMEM, "out of memory inferring shapes");
    int rc = 0, nfolded = 0;
    for (int i = 0; i < g->nnodes && !rc; i++) {
        ac_node *n = &g->nodes[i];
        const ac_op_def *def = ac_op_def_get(n->op);
        n->params = NULL;
        if (!def) {
            rc = node_err(g, n, err, AC_E_UNSUPPORTED, "operator not supported");
            break;
        }
        rc = def->infer(g, n, err);
        if (!rc && foldable(g, n)) {
            rc = fold_node(g, n, def, err);
            folded[i] = 1;
            nfolded++;
        }
    }
    /* Folded nodes are gone: their outputs are constants now. */
    if (!rc && nfolded) {
        int kept = 0;
        for (int i = 0; i < g->nnodes; i++)
            if (!folded[i])
                g->nodes[kept++] = g->nodes[i];
        g->nnodes = kept;
        for (int t = 0; t < g->ntensors; t++)
            g->tensors[t].producer = -1;
        for (int i = 0; i < g->nnodes; i++)
            for (int j = 0; j < g->nodes[i].noutputs; j++)
                if (g->nodes[i].outputs[j] >= 0)
                    g->tensors[g->nodes[i].outputs[j]].producer = i;
    }
    free(folded);
    return rc;
}

int64_t ac_node_macs(const ac_graph *g, const ac_node *n)
{
    if (n->ninputs < 2 || n->noutputs < 1 || n->inputs[0] < 0 || n->inputs[1] < 0 ||
        n->outputs[0] < 0)
        return 0;
    const ac_tensor *x = &g->tensors[n->inputs[0]], *w = &g->tensors[n->inputs[1]];
    const ac_tensor *y = &g->tensors[n->outputs[0]];
    int64_t ny = ac_tensor_numel(y), nx = ac_tensor_numel(x);
    if (ny < 0 || nx < 0 || w->ndim < 0)
        return 0;
    switch (n->op) {
    case AC_OP_CONV: { /* each output: c_in/group * kernel taps = W's per-filter size */
        int64_t per = 1;
        for (int d = 1; d < w->ndim; d++)
            per *= w->dims[d];
        return ny * per;
    }
    case AC_OP_CONV_TRANSPOSE: { /* each input element scatters to c_out/group * taps */
        int64_t per = 1;
        for (int d = 1; d < w->ndim; d++)
            per *= w->dims[d];
        return nx * per;
    }
    case AC_OP_GEMM: {
        if (x->ndim != 2)
            return 0;
        int64_t ta = ac_node_attr_int(n, "transA", 0, NULL);
        return ny * (ta ? x->dims[0] : x->dims[1]);
    }
    case AC_OP_MATMUL: return x->ndim >= 1 ? ny * x->dims[x->ndim - 1] : 0;
    default: return 0;
    }
}
