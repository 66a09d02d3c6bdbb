/* ac_plan: BM1684 lowering (see ac_plan.h, docs/int8.md). Parameter
 * arithmetic is done by kernels/ac_round.c (double precision, spec §10.1);
 * this file decides which rule applies where. */
#include "ac_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_round.h"

/* Spec §5: pools / global pools with a larger window run in fp32. */
#define POOL_AREA_MAX 225
/* Spec §3: conv strides above this run in fp32. */
#define STRIDE_MAX 15

const char *ac_fp32_reason_name(ac_fp32_reason why)
{
    static const char *const names[AC_WHY_COUNT] = {
        [AC_WHY_NONE] = "none",
        [AC_WHY_FORCED] = "forced by --fp32_layers",
        [AC_WHY_ACCURACY_OPT] = "depthwise conv kept in fp32 by --accuracy_opt",
        [AC_WHY_FIRST_CONV] = "first conv kept in fp32 by --first_conv_fp32",
        [AC_WHY_SHIFT] = "shift r < 0",
        [AC_WHY_STRIDE] = "stride > 15",
        [AC_WHY_POOL_AREA] = "pool area > 225",
        [AC_WHY_ADD_MULT] = "Add multiplier outside [0, 127]",
        [AC_WHY_MUL_MULT] = "Mul multiplier outside [0, 127]",
        [AC_WHY_REQUANT] = "Concat requant multiplier out of range",
        [AC_WHY_SLOPE] = "slope has no int8 form",
        [AC_WHY_ACCUMULATOR] = "accumulator could leave int32",
        [AC_WHY_NO_INT8_FORM] = "op has no int8 form",
        [AC_WHY_NOT_ACTIVATION] = "operands are not float activations",
        [AC_WHY_RANGE] = "input and output ranges differ",
        [AC_WHY_FOLLOWS_FP32] = "moves the output of an fp32 layer",
        [AC_WHY_FUSED_ACT] = "activation fused with an fp32 conv/FC",
    };
    return why >= 0 && why < AC_WHY_COUNT && names[why] ? names[why] : "?";
}

const char *ac_q8_kind_name(ac_q8_kind k)
{
    static const char *const names[] = {"fp32", "conv", "fc", "add", "mul", "concat", "maxpool",
                                  "avgpool", "global_avgpool", "global_maxpool", "clamp",
                                  "prelu", "lut", "move"};
    return k >= 0 && k <= AC_Q8_MOVE ? names[k] : "?";
}

/* ---- graph helpers ----------------------------------------------------------------------- */

static bool is_activation(const ac_graph *g, int t)
{
    return t >= 0 && t < g->ntensors && g->tensors[t].dtype == AC_DT_F32 &&
           !ac_tensor_is_const(&g->tensors[t]);
}

static bool is_const(const ac_graph *g, int t)
{
    return t >= 0 && t < g->ntensors && ac_tensor_is_const(&g->tensors[t]);
}

static const float *const_f32(const ac_graph *g, int t)
{
    return is_const(g, t) && g->tensors[t].dtype == AC_DT_F32 ? g->tensors[t].data : NULL;
}

static int in0(const ac_node *n)
{
    return n->ninputs > 0 ? n->inputs[0] : -1;
}

/* Clip's constant bounds (attributes before opset 11, scalar inputs after);
 * false when a bound is computed at run time. */
static bool clip_bounds(const ac_graph *g, const ac_node *n, double *lo, double *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (n->op == AC_OP_RELU6) {
        *lo = 0.0;
        *hi = 6.0;
        return true;
    }
    if (g->opset < 11) {
        *lo = ac_node_attr_float(n, "min", -INFINITY, NULL);
        *hi = ac_node_attr_float(n, "max", INFINITY, NULL);
        return true;
    }
    for (int i = 1; i <= 2 && i < n->ninputs; i++) {
        int t = n->inputs[i];
        if (t < 0)
            continue;
        const float *v = const_f32(g, t);
        if (!v || ac_tensor_numel(&g->tensors[t]) != 1)
            return false;
        if (i == 1)
            *lo = v[0];
        else
            *hi = v[0];
    }
    return true;
}

/* ReLU6 / Clip(0, max): treated as ReLU for sharing (§10.5). */
static bool is_relu_like(const ac_graph *g, const ac_node *n)
{
    if (n->op == AC_OP_RELU || n->op == AC_OP_RELU6)
        return true;
    double lo, hi;
    return n->op == AC_OP_CLIP && clip_bounds(g, n, &lo, &hi) && lo == 0.0;
}

static bool is_nearest_resize(const ac_node *n)
{
    if (n->op != AC_OP_RESIZE && n->op != AC_OP_UPSAMPLE)
        return false;
    const char *mode = ac_node_attr_string(n, "mode", "nearest", NULL);
    return mode && strcmp(mode, "nearest") == 0;
}

/* Reshape-like ops: the first sharing step (§10.4). */
static bool is_reshape_like(ac_op op)
{
    return op == AC_OP_RESHAPE || op == AC_OP_FLATTEN || op == AC_OP_SQUEEZE ||
           op == AC_OP_UNSQUEEZE || op == AC_OP_TRANSPOSE || op == AC_OP_IDENTITY ||
           op == AC_OP_DROPOUT;
}

/* "Input takes the output's threshold" ops (§2). GlobalMaxPool is a MaxPool (ours). */
static bool is_backward(const ac_graph *g, const ac_node *n)
{
    return is_relu_like(g, n) || n->op == AC_OP_MAXPOOL || n->op == AC_OP_GLOBAL_MAXPOOL ||
           n->op == AC_OP_LEAKY_RELU || n->op == AC_OP_PRELU;
}

/* "Output takes the input's threshold" ops (§2). Split is added (ours): its
 * outputs are slices of the input. */
static bool is_forward(const ac_graph *g, const ac_node *n)
{
    return is_reshape_like(n->op) || is_backward(g, n) || is_nearest_resize(n) ||
           n->op == AC_OP_PAD || n->op == AC_OP_SLICE || n->op == AC_OP_SPLIT ||
           n->op == AC_OP_AVGPOOL || n->op == AC_OP_GLOBAL_AVGPOOL;
}

/* ---- threshold sharing (§2, §10.4) -------------------------------------------------------- */

typedef struct {
    bool has;
    bool pinned; /* Sigmoid / Softmax outputs: fixed to [0, 1], never overwritten */
    double th, min, max;
} range;

static bool range_same(const range *a, const range *b)
{
    return a->has == b->has && a->th == b->th && a->min == b->min && a->max == b->max;
}

/* dst := src (threshold and sign: the whole range). Returns whether dst changed. */
static bool copy_range(range *dst, const range *src)
{
    if (!src->has || dst->pinned || range_same(dst, src))
        return false;
    dst->has = true;
    dst->th = src->th;
    dst->min = src->min;
    dst->max = src->max;
    return true;
}

/* Forward: every activation output of n takes input 0's range. */
static bool forward_node(const ac_graph *g, const ac_node *n, range *r)
{
    int x = in0(n);
    if (!is_activation(g, x) || !r[x].has)
        return false;
    bool changed = false;
    for (int j = 0; j < n->noutputs; j++)
        if (is_activation(g, n->outputs[j]))
            changed |= copy_range(&r[n->outputs[j]], &r[x]);
    return changed;
}

static bool backward_node(const ac_graph *g, const ac_node *n, range *r)
{
    int y = n->noutputs > 0 ? n->outputs[0] : -1;
    if (!is_activation(g, y) || !r[y].has)
        return false;
    if (n->op == AC_OP_CONCAT) {
        for (int i = 0; i < n->ninputs; i++)
            if (!is_activation(g, n->inputs[i]) || ac_graph_uses(g, n->inputs[i]) != 1)
                return false;
        bool changed = false;
        for (int i = 0; i < n->ninputs; i++)
            changed |= copy_range(&r[n->inputs[i]], &r[y]);
        return changed;
    }
    int x = in0(n);
    if (!is_activation(g, x) || ac_graph_uses(g, x) != 1 || r[x].pinned)
        return false;
    if (n->op == AC_OP_LEAKY_RELU || n->op == AC_OP_PRELU) {
        /* Threshold from the output, the sign (min/max) stays the input's. */
        if (!r[x].has || r[x].th == r[y].th)
            return false;
        r[x].th = r[y].th;
        return true;
    }
    return copy_range(&r[x], &r[y]);
}

/* Ranges of every tensor after sharing; tensors absent from the table have has = false. */
static range *share_ranges(const ac_graph *g, const ac_calib_table *table, ac_err *err)
{
    range *r = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof *r);
    if (!r) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for %d tensor ranges", g->ntensors);
        return NULL;
    }
    for (int t = 0; t < g->ntensors; t++) {
        if (!is_activation(g, t))
            continue;
        const ac_calib_entry *e = ac_calib_table_find(table, g->tensors[t].name);
        if (e) {
            r[t].has = true;
            r[t].th = e->th;
            r[t].min = e->min;
            r[t].max = e->max;
        }
    }
    /* Sigmoid and Softmax outputs are [0, 1] (§2, §10.9). */
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        if ((n->op == AC_OP_SIGMOID || n->op == AC_OP_SOFTMAX) && is_activation(g, n->outputs[0])) {
            range *o = &r[n->outputs[0]];
            *o = (range){.has = true, .pinned = true, .th = 1.0, .min = 0.0, .max = 1.0};
        }
    }
    /* 1. forward through reshape-like ops. */
    for (int i = 0; i < g->nnodes; i++)
        if (is_reshape_like(g->nodes[i].op))
            forward_node(g, &g->nodes[i], r);
    /* 2. backward rules until nothing changes (a DAG: bounded by the node count). */
    for (int pass = 0; pass <= g->nnodes; pass++) {
        bool changed = false;
        for (int i = g->nnodes - 1; i >= 0; i--) {
            const ac_node *n = &g->nodes[i];
            if (is_backward(g, n) || n->op == AC_OP_CONCAT)
                changed |= backward_node(g, n, r);
        }
        if (!changed)
            break;
    }
    /* 3. forward rules in topological order: forward has the last word. */
    for (int i = 0; i < g->nnodes; i++)
        if (is_forward(g, &g->nodes[i]))
            forward_node(g, &g->nodes[i], r);
    return r;
}

static ac_calib_table *table_with_ranges(const ac_graph *g, const ac_calib_table *table,
                                         const range *r, ac_err *err)
{
    ac_calib_table *out = ac_calib_table_dup(table);
    if (!out) {
        ac_err_set(err, AC_E_NOMEM, "out of memory copying the calibration table");
        return NULL;
    }
    for (int t = 0; t < g->ntensors; t++)
        if (r[t].has && ac_calib_table_set(out, g->tensors[t].name, r[t].th, r[t].min, r[t].max,
                                           err)) {
            ac_calib_table_destroy(&out);
            return NULL;
        }
    return out;
}

ac_calib_table *ac_plan_share(const ac_graph *g, const ac_calib_table *table, ac_err *err)
{
    range *r = share_ranges(g, table, err);
    if (!r)
        return NULL;
    ac_calib_table *out = table_with_ranges(g, table, r, err);
    free(r);
    return out;
}

/* ---- lowering helpers ----------------------------------------------------------------------- */

typedef struct {
    const ac_graph *g;
    ac_plan *p;
    ac_err *err;
} ctx;

__attribute__((format(printf, 3, 4))) static int go_fp32(ac_node_plan *np, ac_fp32_reason why,
                                                         const char *fmt, ...)
{
    np->mode = AC_MODE_FP32;
    np->kind = AC_Q8_NONE;
    np->why = why;
    np->detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(np->detail, sizeof np->detail, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static void *alloc(ctx *c, size_t bytes)
{
    void *p = ac_arena_alloc(c->p->arena, bytes ? bytes : 1);
    if (!p)
        ac_err_set(c->err, AC_E_NOMEM, "out of memory for int8 parameters (%zu bytes)", bytes);
    return p;
}

static const ac_tensor_plan *tq(ctx *c, int t)
{
    return &c->p->tensors[t];
}

static bool same_range(const ac_tensor_plan *a, const ac_tensor_plan *b)
{
    return a->th == b->th && a->is_signed == b->is_signed;
}

/* Code range upper end of a tensor (127 or 255). */
static int32_t code_hi(const ac_tensor_plan *t)
{
    return t->is_signed ? 127 : 255;
}

/* Quantize a conv/FC: W is [cout][k] float, bias [cout] or NULL. Fills the
 * int8 weights, int16 biases and per-channel shifts; sets the node to fp32
 * when a rule says so. */
static int lower_weights(ctx *c, ac_node_plan *np, const ac_node *n, const float *w,
                         const float *bias, int64_t cout, int64_t k, const ac_tensor_plan *x,
                         const ac_tensor_plan *y, int8_t **wq_out, int16_t **bq_out,
                         int32_t **rs_out)
{
    double ratio = x->scale / y->scale;
    int8_t *wq = alloc(c, (size_t)(cout * k));
    int16_t *bq = bias ? alloc(c, sizeof(int16_t) * (size_t)cout) : NULL;
    int32_t *rs = alloc(c, sizeof(int32_t) * (size_t)cout);
    float *wmax = malloc(sizeof(float) * (size_t)cout);
    int *rc = malloc(sizeof(int) * (size_t)cout);
    if (!wq || (bias && !bq) || !rs || !wmax || !rc) {
        free(wmax);
        free(rc);
        return ac_err_set(c->err, AC_E_NOMEM, "out of memory lowering '%s'", n->name);
    }
    float all = 0.0f;
    for (int64_t o = 0; o < cout; o++) {
        float m = 0.0f;
        for (int64_t i = 0; i < k; i++)
            m = fabsf(w[o * k + i]) > m ? fabsf(w[o * k + i]) : m;
        wmax[o] = m;
        all = m > all ? m : all;
    }
    bool fp32 = false;
    if (np->per_channel) {
        size_t bad = 0;
        ac_pc_status st =
            ac_conv_shift_per_channel(wmax, bias, (size_t)cout, ratio, y->scale, rc, &bad);
        if (st != AC_PC_OK) {
            go_fp32(np, AC_WHY_SHIFT, "per-channel: channel %zu needs r < 0 (%s; max|w| = %g, "
                    "s_in/s_out = %g)", bad, st == AC_PC_FP32_BIAS ? "bias overflows int16 at r = 0"
                    : "weights", (double)wmax[bad], ratio);
            fp32 = true;
        }
    } else {
        int r = ac_conv_shift_per_tensor(all, ratio, bias, bias ? (size_t)cout : 0, y->scale);
        if (r < 0) {
            go_fp32(np, AC_WHY_SHIFT, "r = %d (max|w| = %g, s_in/s_out = %g)",
                    r == AC_SHIFT_INVALID ? -1 : r, (double)all, ratio);
            fp32 = true;
        }
        for (int64_t o = 0; o < cout; o++)
            rc[o] = r;
    }
    if (!fp32) {
        int64_t xmax = x->is_signed ? 128 : 255;
        for (int64_t o = 0; o < cout && !fp32; o++) {
            rs[o] = rc[o];
            int64_t abs_sum = 0;
            for (int64_t i = 0; i < k; i++) {
                int8_t q = ac_quant_weight(w[o * k + i], rc[o], ratio);
                wq[o * k + i] = q;
                abs_sum += q < 0 ? -(int64_t)q : q;
            }
            if (bq)
                bq[o] = ac_quant_bias(bias[o], rc[o], y->scale);
            if (abs_sum * xmax > INT32_MAX) {
                go_fp32(np, AC_WHY_ACCUMULATOR, "channel %lld: sum|w_q| * max|x| = %lld",
                        (long long)o, (long long)(abs_sum * xmax));
                fp32 = true;
            }
        }
    }
    free(wmax);
    free(rc);
    *wq_out = wq;
    *bq_out = bq;
    *rs_out = rs;
    return 0;
}

static int lower_conv(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    const float *w = const_f32(g, n->inputs[1]);
    const float *b = n->ninputs > 2 && n->inputs[2] >= 0 ? const_f32(g, n->inputs[2]) : NULL;
    if (!w || (n->ninputs > 2 && n->inputs[2] >= 0 && !b))
        return go_fp32(np, AC_WHY_NOT_ACTIVATION, "weights or bias are not constant");
    const ac_conv2d_shape *s = n->params;
    if (s->stride_h > STRIDE_MAX || s->stride_w > STRIDE_MAX)
        return go_fp32(np, AC_WHY_STRIDE, "stride %dx%d", s->stride_h, s->stride_w);
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    int64_t k = (int64_t)(s->c_in / s->groups) * s->kh * s->kw;
    ac_conv_q8_params *cp = &np->u.conv;
    int8_t *wq;
    int16_t *bq;
    int32_t *rs;
    int rc = lower_weights(c, np, n, w, b, s->c_out, k, x, y, &wq, &bq, &rs);
    if (rc || np->mode == AC_MODE_FP32)
        return rc;
    np->kind = AC_Q8_CONV;
    cp->s = *s;
    cp->x_signed = x->is_signed;
    cp->y_signed = y->is_signed;
    cp->w = wq;
    cp->bias = bq;
    cp->rshift = rs;
    cp->relu = false;
    cp->clip_hi = AC_Q8_NO_CLIP;
    return 0;
}

/* Gemm (A [M][K] activation, constant B and C) and MatMul (A [..., K] activation,
 * constant 2-D B): fully connected. */
static int lower_fc(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    const ac_tensor *a = &g->tensors[n->inputs[0]];
    int bt = n->inputs[1];
    const float *B = const_f32(g, bt);
    if (!B)
        return go_fp32(np, AC_WHY_NO_INT8_FORM, "MatMul/Gemm of two activations");
    int64_t m, k, nn;
    bool trans_b = false;
    float alpha = 1.0f, beta = 1.0f;
    const float *C = NULL;
    int64_t c_cols = 0;
    if (n->op == AC_OP_GEMM) {
        const ac_gemm_shape *gs = n->params;
        if (gs->trans_a)
            return go_fp32(np, AC_WHY_NO_INT8_FORM, "Gemm with transA = 1");
        m = gs->m;
        k = gs->k;
        nn = gs->n;
        trans_b = gs->trans_b;
        alpha = gs->alpha;
        beta = gs->beta;
        if (n->ninputs > 2 && n->inputs[2] >= 0) {
            C = const_f32(g, n->inputs[2]);
            if (!C)
                return go_fp32(np, AC_WHY_NOT_ACTIVATION, "bias is not constant");
            if (gs->c_rows > 1)
                return go_fp32(np, AC_WHY_NO_INT8_FORM, "bias varies over rows");
            c_cols = gs->c_cols;
        }
    } else {
        const ac_tensor *bts = &g->tensors[bt];
        if (bts->ndim != 2 || a->ndim < 1)
            return go_fp32(np, AC_WHY_NO_INT8_FORM, "MatMul with a %d-D constant", bts->ndim);
        k = bts->dims[0];
        nn = bts->dims[1];
        m = k ? ac_tensor_numel(a) / k : 0;
    }
    float *w = malloc(sizeof(float) * (size_t)(nn * k + 1));
    float *bias = C ? malloc(sizeof(float) * (size_t)nn) : NULL;
    if (!w || (C && !bias)) {
        free(w);
        free(bias);
        return ac_err_set(c->err, AC_E_NOMEM, "out of memory lowering '%s'", n->name);
    }
    /* W[o][i] = alpha * B (transposed as needed), bias[o] = beta * C: float, as
     * the fp32 Gemm scales them (alpha = beta = 1 leaves them unchanged). */
    for (int64_t o = 0; o < nn; o++)
        for (int64_t i = 0; i < k; i++) {
            float v = trans_b ? B[o * k + i] : B[i * nn + o];
            w[o * k + i] = alpha == 1.0f ? v : alpha * v;
        }
    for (int64_t o = 0; C && o < nn; o++) {
        float v = C[c_cols == 1 ? 0 : o];
        bias[o] = beta == 1.0f ? v : beta * v;
    }
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    int8_t *wq;
    int16_t *bq;
    int32_t *rs;
    int rc = lower_weights(c, np, n, w, bias, nn, k, x, y, &wq, &bq, &rs);
    free(w);
    free(bias);
    if (rc || np->mode == AC_MODE_FP32)
        return rc;
    np->kind = AC_Q8_FC;
    ac_fc_q8_params *fp = &np->u.fc;
    fp->m = m;
    fp->n = nn;
    fp->k = k;
    fp->x_signed = x->is_signed;
    fp->y_signed = y->is_signed;
    fp->w = wq;
    fp->bias = bq;
    fp->rshift = rs;
    fp->relu = false;
    fp->clip_hi = AC_Q8_NO_CLIP;
    return 0;
}

/* Strides of tensor t viewed with the output's rank (numpy broadcasting). */
static void bcast_strides(const ac_tensor *t, const ac_tensor *out, int64_t *st)
{
    int64_t s = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int dt = d - (out->ndim - t->ndim);
        int64_t e = dt >= 0 ? t->dims[dt] : 1;
        st[d] = e == 1 ? 0 : s;
        s *= e;
    }
}

static int lower_add(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    if (n->ninputs > AC_Q8_MAX_INPUTS)
        return go_fp32(np, AC_WHY_NO_INT8_FORM, "%d inputs", n->ninputs);
    const ac_tensor *out = &g->tensors[n->outputs[0]];
    const ac_tensor_plan *y = tq(c, n->outputs[0]);
    ac_add_q8_params *ap = &np->u.add;
    ap->ninputs = n->ninputs;
    ap->ndim = out->ndim;
    for (int d = 0; d < out->ndim; d++)
        ap->dims[d] = out->dims[d];
    for (int i = 0; i < n->ninputs; i++) {
        const ac_tensor_plan *x = tq(c, n->inputs[i]);
        double coef = n->op == AC_OP_SUB && i == 1 ? -1.0 : 1.0;
        int32_t m;
        int r;
        if (!ac_add_params(coef, x->scale, y->scale, &m, &r))
            return go_fp32(np, AC_WHY_ADD_MULT, "input '%s': c*s_in/s_out = %g",
                           g->tensors[n->inputs[i]].name, coef * x->scale / y->scale);
        ap->in_signed[i] = x->is_signed;
        ap->m[i] = m;
        ap->r[i] = r;
        bcast_strides(&g->tensors[n->inputs[i]], out, ap->strides[i]);
    }
    ap->y_signed = y->is_signed;
    ap->relu = false;
    np->kind = AC_Q8_ADD;
    return 0;
}

static int lower_mul(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    const ac_tensor *out = &g->tensors[n->outputs[0]];
    const ac_tensor_plan *a = tq(c, n->inputs[0]), *b = tq(c, n->inputs[1]);
    const ac_tensor_plan *y = tq(c, n->outputs[0]);
    ac_mul_q8_params *mp = &np->u.mul;
    int32_t m;
    int r;
    if (!ac_mul_params(a->scale, b->scale, y->scale, &m, &r))
        return go_fp32(np, AC_WHY_MUL_MULT, "s_a*s_b/s_out = %g", a->scale * b->scale / y->scale);
    mp->s.ndim = out->ndim;
    for (int d = 0; d < out->ndim; d++)
        mp->s.dims[d] = out->dims[d];
    bcast_strides(&g->tensors[n->inputs[0]], out, mp->s.a_strides);
    bcast_strides(&g->tensors[n->inputs[1]], out, mp->s.b_strides);
    mp->a_signed = a->is_signed;
    mp->b_signed = b->is_signed;
    mp->y_signed = y->is_signed;
    mp->m = m;
    mp->r = r;
    np->kind = AC_Q8_MUL;
    return 0;
}

static int lower_concat(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    const ac_tensor *x0 = &g->tensors[n->inputs[0]];
    int64_t axis = ac_node_attr_int(n, "axis", 0, NULL);
    if (axis < 0)
        axis += x0->ndim;
    const ac_tensor_plan *y = tq(c, n->outputs[0]);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < x0->ndim; d++) {
        if (d < axis)
            outer *= x0->dims[d];
        if (d > axis)
            inner *= x0->dims[d];
    }
    int64_t *chunk = alloc(c, sizeof(int64_t) * (size_t)n->ninputs);
    ac_requant_q8_params *rq = alloc(c, sizeof(ac_requant_q8_params) * (size_t)n->ninputs);
    if (!chunk || !rq)
        return c->err ? (int)c->err->code : AC_E_NOMEM;
    for (int i = 0; i < n->ninputs; i++) {
        const ac_tensor_plan *x = tq(c, n->inputs[i]);
        chunk[i] = g->tensors[n->inputs[i]].dims[axis] * inner;
        rq[i].x_signed = x->is_signed;
        rq[i].y_signed = y->is_signed;
        rq[i].m = 1;
        rq[i].r = 0;
        int r = 0;
        if (!same_range(x, y) && !ac_requant_params(x->scale, y->scale, &rq[i].m, &r))
            return go_fp32(np, AC_WHY_REQUANT, "input '%s': s_in/s_out = %g",
                           g->tensors[n->inputs[i]].name, x->scale / y->scale);
        rq[i].r = r;
    }
    np->u.concat.outer = outer;
    np->u.concat.chunk = chunk;
    np->u.concat.rq = rq;
    np->kind = AC_Q8_CONCAT;
    return 0;
}

static int64_t pool_area(const ac_pool_shape *s)
{
    return s->kernel[0] * s->kernel[1] * s->kernel[2];
}

/* Input and every output must share the range (code-moving ops). */
static bool ranges_shared(ctx *c, const ac_node *n)
{
    const ac_tensor_plan *x = tq(c, n->inputs[0]);
    for (int j = 0; j < n->noutputs; j++)
        if (n->outputs[j] >= 0 && !same_range(x, tq(c, n->outputs[j])))
            return false;
    return true;
}

static int range_differs(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    return go_fp32(np, AC_WHY_RANGE, "input th %g%s, output th %g%s", x->th,
                   x->is_signed ? " int8" : " uint8", y->th, y->is_signed ? " int8" : " uint8");
}

static int lower_pool(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    const ac_tensor *xt = &g->tensors[n->inputs[0]];
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    if (!ranges_shared(c, n))
        return range_differs(c, n, np);
    if (n->op == AC_OP_MAXPOOL || n->op == AC_OP_AVGPOOL) {
        const ac_pool_shape *s = n->params;
        int64_t k = pool_area(s);
        if (k > POOL_AREA_MAX)
            return go_fp32(np, AC_WHY_POOL_AREA, "kernel area %lld", (long long)k);
        if (n->op == AC_OP_MAXPOOL) {
            np->u.maxpool = *s;
            np->kind = AC_Q8_MAXPOOL;
            return 0;
        }
        ac_avgpool_q8_params *ap = &np->u.avgpool;
        ap->s = *s;
        ap->k = k;
        int e;
        if (!ac_avgpool_params(k, &ap->m, &e))
            return go_fp32(np, AC_WHY_POOL_AREA, "kernel area %lld", (long long)k);
        ap->e = e;
        ap->x_signed = x->is_signed;
        ap->y_signed = y->is_signed;
        np->kind = AC_Q8_AVGPOOL;
        return 0;
    }
    int64_t rows = xt->dims[0] * xt->dims[1];
    int64_t len = rows ? ac_tensor_numel(xt) / rows : 0;
    if (len > POOL_AREA_MAX || len < 1)
        return go_fp32(np, AC_WHY_POOL_AREA, "global pool over %lld pixels", (long long)len);
    if (n->op == AC_OP_GLOBAL_MAXPOOL) {
        np->u.gmax.rows = rows;
        np->u.gmax.len = len;
        np->kind = AC_Q8_GLOBAL_MAXPOOL;
        return 0;
    }
    ac_global_avgpool_q8_params *gp = &np->u.gavg;
    int e;
    if (!ac_avgpool_params(len, &gp->m, &e))
        return go_fp32(np, AC_WHY_POOL_AREA, "global pool over %lld pixels", (long long)len);
    gp->e = e;
    gp->rows = rows;
    gp->len = len;
    gp->x_signed = x->is_signed;
    gp->y_signed = y->is_signed;
    np->kind = AC_Q8_GLOBAL_AVGPOOL;
    return 0;
}

/* The float function a 256-entry table samples (double precision; the formulas
 * of kernels/ac_ref_f32.c, evaluated in double). */
static double lut_f(const ac_graph *g, const ac_node *n, double x, double lo, double hi)
{
    switch (n->op) {
    case AC_OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case AC_OP_TANH: return tanh(x);
    case AC_OP_SILU: return x / (1.0 + exp(-x));
    case AC_OP_EXP: return exp(x);
    case AC_OP_SQRT: return x > 0.0 ? sqrt(x) : 0.0; /* codes of a negative input: its clamp at 0 */
    case AC_OP_HARD_SWISH: {
        double t = x / 6.0 + 0.5;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
        return x * t;
    }
    case AC_OP_HARD_SIGMOID: {
        double a = ac_node_attr_float(n, "alpha", 0.2f, NULL);
        double b = ac_node_attr_float(n, "beta", 0.5f, NULL);
        double t = a * x + b;
        return t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
    }
    case AC_OP_CLIP: return x < lo ? lo : (x > hi ? hi : x);
    default: return x;
    }
}

static int lower_lut(ctx *c, const ac_node *n, ac_node_plan *np, double lo, double hi)
{
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    ac_lut_q8_params *lp = &np->u.lut;
    lp->x_signed = x->is_signed;
    lp->y_signed = y->is_signed;
    int32_t q0 = x->is_signed ? -128 : 0;
    for (int i = 0; i < 256; i++) {
        double v = lut_f(c->g, n, (double)(q0 + i) * x->scale, lo, hi);
        lp->table[i] = (int16_t)ac_quantize(v, y->scale, y->is_signed);
    }
    np->kind = AC_Q8_LUT;
    return 0;
}

static int lower_clip(ctx *c, const ac_node *n, ac_node_plan *np)
{
    double lo, hi;
    if (!clip_bounds(c->g, n, &lo, &hi))
        return go_fp32(np, AC_WHY_NOT_ACTIVATION, "Clip bounds are computed at run time");
    if (lo != 0.0 && n->op != AC_OP_RELU)
        return lower_lut(c, n, np, lo, hi);
    if (!ranges_shared(c, n))
        return range_differs(c, n, np);
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    ac_clamp_q8_params *cp = &np->u.clamp;
    cp->x_signed = x->is_signed;
    cp->y_signed = y->is_signed;
    cp->lo = 0;
    cp->hi = AC_Q8_NO_CLIP;
    int32_t code;
    if (n->op != AC_OP_RELU && isfinite(hi) && ac_clip_upper_code(hi, y->scale, code_hi(y), &code))
        cp->hi = code;
    np->kind = AC_Q8_CLAMP;
    return 0;
}

static int lower_prelu(ctx *c, const ac_node *n, ac_node_plan *np)
{
    const ac_graph *g = c->g;
    if (!ranges_shared(c, n))
        return range_differs(c, n, np);
    const ac_tensor *xt = &g->tensors[n->inputs[0]];
    const ac_tensor_plan *x = tq(c, n->inputs[0]), *y = tq(c, n->outputs[0]);
    ac_prelu_q8_params *pp = &np->u.prelu;
    int64_t numel = ac_tensor_numel(xt);
    float alpha1;
    const float *alpha = &alpha1;
    int64_t nch = 1;
    if (n->op == AC_OP_LEAKY_RELU) {
        alpha1 = ac_node_attr_float(n, "alpha", 0.01f, NULL);
    } else {
        alpha = const_f32(g, n->inputs[1]);
        if (!alpha)
            return go_fp32(np, AC_WHY_NOT_ACTIVATION, "slope is not constant");
        const ac_tensor *st = &g->tensors[n->inputs[1]];
        nch = ac_tensor_numel(st);
        if (nch != 1) {
            /* One slope per channel (axis 1): every other slope dim is 1. */
            bool ok = xt->ndim >= 2 && nch == xt->dims[1];
            for (int d = 0; ok && d < st->ndim; d++) {
                int dx = d + (xt->ndim - st->ndim);
                ok = st->dims[d] == 1 || dx == 1;
            }
            if (!ok)
                return go_fp32(np, AC_WHY_SLOPE, "slope '%s' is not per channel", st->name);
        }
    }
    int32_t *m = alloc(c, sizeof(int32_t) * (size_t)nch);
    if (!m)
        return c->err ? (int)c->err->code : AC_E_NOMEM;
    int r;
    if (!ac_prelu_params(alpha, (size_t)nch, m, &r))
        return go_fp32(np, AC_WHY_SLOPE, "a slope needs |m| > 127");
    pp->channels = nch;
    if (nch == 1) {
        pp->outer = numel;
        pp->inner = 1;
    } else {
        pp->outer = xt->dims[0];
        pp->inner = numel / (xt->dims[0] * nch);
    }
    pp->x_signed = x->is_signed;
    pp->y_signed = y->is_signed;
    pp->m = m;
    pp->r = r;
    np->kind = AC_Q8_PRELU;
    return 0;
}

/* Pad's constant value is 0 (codes 0), or the mode copies input codes. */
static bool pad_value_zero(const ac_graph *g, const ac_node *n)
{
    const char *mode = ac_node_attr_string(n, "mode", "constant", NULL);
    if (!mode || strcmp(mode, "constant") != 0)
        return true;
    if (g->opset < 11)
        return ac_node_attr_float(n, "value", 0.0f, NULL) == 0.0f;
    if (n->ninputs > 2 && n->inputs[2] >= 0) {
        const float *v = const_f32(g, n->inputs[2]);
        return v && (ac_tensor_numel(&g->tensors[n->inputs[2]]) == 0 || v[0] == 0.0f);
    }
    return true;
}

static bool is_move(const ac_graph *g, const ac_node *n)
{
    if (is_reshape_like(n->op) && n->op != AC_OP_DROPOUT)
        return true;
    if (n->op == AC_OP_DROPOUT)
        return n->noutputs < 2 || n->outputs[1] < 0;
    return n->op == AC_OP_SLICE || n->op == AC_OP_SPLIT || is_nearest_resize(n) ||
           n->op == AC_OP_PAD;
}

/* Which inputs are int8 data (the others must be constants): all for Concat,
 * two for Add/Sub/Mul, the first otherwise. */
static int data_inputs(const ac_node *n)
{
    switch (n->op) {
    case AC_OP_CONCAT: return n->ninputs;
    case AC_OP_ADD:
    case AC_OP_SUB:
    case AC_OP_MUL: return 2;
    default: return 1;
    }
}

static bool has_int8_form(const ac_graph *g, const ac_node *n)
{
    switch (n->op) {
    case AC_OP_CONV: case AC_OP_GEMM: case AC_OP_MATMUL: case AC_OP_ADD: case AC_OP_SUB:
    case AC_OP_MUL: case AC_OP_CONCAT: case AC_OP_MAXPOOL: case AC_OP_AVGPOOL:
    case AC_OP_GLOBAL_AVGPOOL: case AC_OP_GLOBAL_MAXPOOL: case AC_OP_RELU: case AC_OP_RELU6:
    case AC_OP_CLIP: case AC_OP_LEAKY_RELU: case AC_OP_PRELU: case AC_OP_SIGMOID:
    case AC_OP_TANH: case AC_OP_HARD_SIGMOID: case AC_OP_HARD_SWISH: case AC_OP_SILU:
    case AC_OP_EXP: case AC_OP_SQRT:
        return true;
    default:
        return is_move(g, n);
    }
}

static int lower_node(ctx *c, int i)
{
    const ac_graph *g = c->g;
    const ac_node *n = &g->nodes[i];
    ac_node_plan *np = &c->p->nodes[i];
    if (!has_int8_form(g, n))
        return go_fp32(np, AC_WHY_NO_INT8_FORM, "%s", n->op_type);
    /* Data inputs and outputs must be float activations; other inputs constants. */
    int nd = data_inputs(n);
    if (n->ninputs < nd || n->noutputs < 1)
        return go_fp32(np, AC_WHY_NOT_ACTIVATION, "missing operands");
    for (int j = 0; j < n->ninputs; j++) {
        int t = n->inputs[j];
        if (j < nd && !is_activation(g, t))
            return go_fp32(np, AC_WHY_NOT_ACTIVATION, "input %d '%s' is not a float activation",
                           j, t >= 0 ? g->tensors[t].name : "(none)");
        if (j >= nd && t >= 0 && !is_const(g, t) && n->op != AC_OP_PRELU)
            return go_fp32(np, AC_WHY_NOT_ACTIVATION, "input %d '%s' is computed at run time", j,
                           g->tensors[t].name);
    }
    if (n->op == AC_OP_PRELU && !is_const(g, n->inputs[1]))
        return go_fp32(np, AC_WHY_NOT_ACTIVATION, "slope is computed at run time");
    for (int j = 0; j < n->noutputs; j++)
        if (n->outputs[j] >= 0 && !is_activation(g, n->outputs[j]))
            return go_fp32(np, AC_WHY_NOT_ACTIVATION, "output '%s' is not a float activation",
                           g->tensors[n->outputs[j]].name);
    /* Every int8 operand needs a calibrated range. */
    for (int j = 0; j < nd + n->noutputs; j++) {
        int t = j < nd ? n->inputs[j] : n->outputs[j - nd];
        if (t >= 0 && !c->p->tensors[t].has_range)
            return ac_err_set(c->err, AC_E_INVALID,
                              "tensor '%s' (%s of node '%s', %s) has no calibration threshold: "
                              "add it to the calibration table or keep the layer in fp32",
                              g->tensors[t].name, j < nd ? "input" : "output", n->name,
                              n->op_type);
    }
    np->mode = AC_MODE_INT8;
    np->why = AC_WHY_NONE;
    switch (n->op) {
    case AC_OP_CONV: return lower_conv(c, n, np);
    case AC_OP_GEMM:
    case AC_OP_MATMUL: return lower_fc(c, n, np);
    case AC_OP_ADD:
    case AC_OP_SUB: return lower_add(c, n, np);
    case AC_OP_MUL: return lower_mul(c, n, np);
    case AC_OP_CONCAT: return lower_concat(c, n, np);
    case AC_OP_MAXPOOL:
    case AC_OP_AVGPOOL:
    case AC_OP_GLOBAL_AVGPOOL:
    case AC_OP_GLOBAL_MAXPOOL: return lower_pool(c, n, np);
    case AC_OP_RELU:
    case AC_OP_RELU6:
    case AC_OP_CLIP: return lower_clip(c, n, np);
    case AC_OP_LEAKY_RELU:
    case AC_OP_PRELU: return lower_prelu(c, n, np);
    case AC_OP_SIGMOID:
    case AC_OP_TANH:
    case AC_OP_HARD_SIGMOID:
    case AC_OP_HARD_SWISH:
    case AC_OP_SILU:
    case AC_OP_EXP:
    case AC_OP_SQRT: return lower_lut(c, n, np, 0.0, 0.0);
    default:
        if (n->op == AC_OP_PAD && !pad_value_zero(g, n))
            return go_fp32(np, AC_WHY_NO_INT8_FORM, "Pad with a non-zero constant");
        if (!ranges_shared(c, n))
            return range_differs(c, n, np);
        np->kind = AC_Q8_MOVE;
        return 0;
    }
}

/* ---- options --------------------------------------------------------------------------------- */

static bool node_has_name(const ac_graph *g, const ac_node *n, const char *name)
{
    if (n->name && strcmp(n->name, name) == 0)
        return true;
    for (int j = 0; j < n->noutputs; j++)
        if (n->outputs[j] >= 0 && strcmp(g->tensors[n->outputs[j]].name, name) == 0)
            return true;
    return false;
}

static bool is_depthwise(const ac_node *n)
{
    if (n->op != AC_OP_CONV || !n->params)
        return false;
    const ac_conv2d_shape *s = n->params;
    return s->groups > 1 && s->groups == s->c_in;
}

static int apply_options(ctx *c)
{
    const ac_graph *g = c->g;
    const ac_quant_options *o = &c->p->opt;
    for (int k = 0; k < o->n_fp32_layers; k++) {
        const char *name = o->fp32_layers[k];
        bool found = false;
        for (int i = 0; i < g->nnodes; i++)
            if (node_has_name(g, &g->nodes[i], name)) {
                go_fp32(&c->p->nodes[i], AC_WHY_FORCED, NULL);
                found = true;
            }
        if (!found)
            return ac_err_set(c->err, AC_E_INVALID,
                              "--fp32_layers: '%s' is neither a layer name nor a layer output "
                              "name of '%s'",
                              name, g->name ? g->name : "the model");
    }
    bool first = true;
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        ac_node_plan *np = &c->p->nodes[i];
        if (n->op != AC_OP_CONV)
            continue;
        if (first && o->first_conv_fp32 && np->why == AC_WHY_NONE)
            go_fp32(np, AC_WHY_FIRST_CONV, NULL);
        first = false;
        if (o->accuracy_opt && is_depthwise(n) && np->why == AC_WHY_NONE)
            go_fp32(np, AC_WHY_ACCURACY_OPT, NULL);
    }
    return 0;
}

/* ---- build ----------------------------------------------------------------------------------- */

static void tensor_ranges(ac_plan *p, const range *r)
{
    const ac_graph *g = p->g;
    for (int t = 0; t < g->ntensors; t++) {
        ac_tensor_plan *tp = &p->tensors[t];
        tp->activation = is_activation(g, t);
        if (!tp->activation || !r[t].has)
            continue;
        tp->has_range = true;
        tp->th = r[t].th;
        tp->min = r[t].min;
        tp->max = r[t].max;
        tp->is_signed = r[t].min < 0.0;
        tp->scale = ac_scale_from_th(tp->th, tp->is_signed);
    }
}

/* A code-moving node (Reshape, Transpose, Flatten, ...) whose data input an
 * fp32 layer produces moves floats instead: quantizing a tensor only to move
 * its bytes adds rounding error and saves nothing on the chip. In graph
 * order, so chains of such nodes follow too; keeping every layer before them
 * in fp32 then keeps the whole path in fp32, which is what a user (or the
 * auto search) asks for by putting those layers in fp32. */
static void moves_follow_fp32(ac_plan *p)
{
    const ac_graph *g = p->g;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node_plan *np = &p->nodes[i];
        const ac_node *n = &g->nodes[i];
        if (np->mode != AC_MODE_INT8 || np->kind != AC_Q8_MOVE || n->ninputs < 1 || n->inputs[0] < 0)
            continue;
        int producer = g->tensors[n->inputs[0]].producer;
        if (producer >= 0 && p->nodes[producer].mode == AC_MODE_FP32)
            go_fp32(np, AC_WHY_FOLLOWS_FP32, "input from fp32 layer '%s'", g->nodes[producer].name);
    }
}

static bool is_conv_or_fc(const ac_node *n)
{
    return n->op == AC_OP_CONV || n->op == AC_OP_CONV_TRANSPOSE || n->op == AC_OP_GEMM || n->op == AC_OP_MATMUL;
}

/* A ReLU / ReLU6 / Clip whose input is an fp32 conv or FC, and that is that
 * output's only consumer, stays in fp32 with it: the chip's compiler fuses
 * the activation into the conv (tpu-mlir's do_relu), so an fp32 conv in the
 * quantize table keeps its activation in fp32 too. Quantizing in between
 * would round the pre-activation values, which the chip never does, and
 * would make a conv kept in fp32 by the search lose most of what it gains. */
int ac_plan_fused_producer(const ac_plan *p, int node)
{
    const ac_graph *g = p->g;
    const ac_node *n = &g->nodes[node];
    const ac_node_plan *np = &p->nodes[node];
    bool clamp = np->kind == AC_Q8_CLAMP || (np->mode == AC_MODE_FP32 && np->why == AC_WHY_FUSED_ACT);
    if (!clamp || n->ninputs < 1 || n->inputs[0] < 0)
        return -1;
    int t = n->inputs[0];
    int producer = g->tensors[t].producer;
    if (producer < 0 || !is_conv_or_fc(&g->nodes[producer]))
        return -1;
    int consumers = 0;
    for (int k = 0; k < g->nnodes; k++)
        for (int j = 0; j < g->nodes[k].ninputs; j++)
            consumers += g->nodes[k].inputs[j] == t;
    return consumers == 1 ? producer : -1;
}

static void activations_follow_fp32(ac_plan *p)
{
    const ac_graph *g = p->g;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node_plan *np = &p->nodes[i];
        if (np->mode != AC_MODE_INT8)
            continue;
        int producer = ac_plan_fused_producer(p, i);
        if (producer >= 0 && p->nodes[producer].mode == AC_MODE_FP32)
            go_fp32(np, AC_WHY_FUSED_ACT, "activation of fp32 layer '%s'", g->nodes[producer].name);
    }
}

/* Where each tensor lives: codes, float, or both (§6). */
static void tensor_storage(ac_plan *p)
{
    const ac_graph *g = p->g;
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        bool int8 = p->nodes[i].mode == AC_MODE_INT8;
        int nd = int8 ? data_inputs(n) : n->ninputs;
        for (int j = 0; j < nd; j++) {
            int t = n->inputs[j];
            if (t >= 0 && p->tensors[t].activation) {
                if (int8)
                    p->tensors[t].has_codes = true;
                else
                    p->tensors[t].has_float = true;
            }
        }
        for (int j = 0; j < n->noutputs; j++) {
            int t = n->outputs[j];
            if (t < 0)
                continue;
            if (int8)
                p->tensors[t].int8_produced = p->tensors[t].has_codes = true;
            else
                p->tensors[t].has_float = true;
        }
    }
    for (int i = 0; i < g->ninputs; i++)
        p->tensors[g->inputs[i]].has_float = true;
    for (int i = 0; i < g->noutputs; i++)
        p->tensors[g->outputs[i]].has_float = true;
}

ac_plan *ac_plan_build(const ac_graph *g, const ac_calib_table *table, const ac_quant_options *opt,
                       ac_err *err)
{
    ac_plan *p = calloc(1, sizeof *p);
    range *r = NULL;
    if (!p)
        goto nomem;
    p->g = g;
    if (opt)
        p->opt = *opt;
    p->arena = ac_arena_new(1 << 20);
    p->tensors = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof *p->tensors);
    p->nodes = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *p->nodes);
    if (!p->arena || !p->tensors || !p->nodes)
        goto nomem;
    r = share_ranges(g, table, err);
    if (!r)
        goto fail;
    p->shared = table_with_ranges(g, table, r, err);
    if (!p->shared)
        goto fail;
    tensor_ranges(p, r);
    ctx c = {g, p, err};
    if (apply_options(&c))
        goto fail;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node_plan *np = &p->nodes[i];
        np->per_channel = p->opt.per_channel;
        if (np->why != AC_WHY_NONE)
            continue;
        if (lower_node(&c, i))
            goto fail;
    }
    activations_follow_fp32(p);
    moves_follow_fp32(p);
    tensor_storage(p);
    for (int i = 0; i < g->nnodes; i++) {
        if (p->nodes[i].mode == AC_MODE_INT8)
            p->n_int8++;
        else
            p->n_fp32++;
    }
    /* Codes of a float-produced tensor come from quantizing it: it needs a range
     * (an int8 node's operands were checked already; this covers graph inputs). */
    for (int t = 0; t < g->ntensors; t++)
        if (p->tensors[t].has_codes && !p->tensors[t].has_range) {
            ac_err_set(err, AC_E_INVALID, "tensor '%s' has no calibration threshold",
                       g->tensors[t].name);
            goto fail;
        }
    free(r);
    return p;
nomem:
    ac_err_set(err, AC_E_NOMEM, "out of memory building the int8 plan");
fail:
    free(r);
    ac_plan_destroy(&p);
    return NULL;
}

void ac_plan_destroy(ac_plan **pp)
{
    if (!pp || !*pp)
        return;
    ac_plan *p = *pp;
    ac_arena_destroy(&p->arena);
    free(p->tensors);
    free(p->nodes);
    ac_calib_table_destroy(&p->shared);
    free(p);
    *pp = NULL;
}

int ac_plan_qtable(const ac_plan *p, const char **names, int cap)
{
    int count = 0;
    for (int i = 0; i < p->g->nnodes; i++) {
        const ac_node *n = &p->g->nodes[i];
        if (p->nodes[i].mode != AC_MODE_FP32 || n->noutputs < 1 ||
            !is_activation(p->g, n->outputs[0]))
            continue;
        if (names && count < cap)
            names[count] = p->g->tensors[n->outputs[0]].name;
        count++;
    }
    return count;
}

int ac_plan_write_qtable(const ac_plan *p, const char *path, ac_err *err)
{
    int n = ac_plan_qtable(p, NULL, 0);
    const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    if (!names)
        return ac_err_set(err, AC_E_NOMEM, "out of memory writing %s", path);
    ac_plan_qtable(p, names, n);
    int rc = ac_qtable_write(path, names, (size_t)n, "layers kept in fp32 (BM1684: F32 only)", err);
    free(names);
    return rc;
}

void ac_plan_print(const ac_plan *p, FILE *f)
{
    const ac_graph *g = p->g;
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        const ac_node_plan *np = &p->nodes[i];
        fprintf(f, "%-32s %-18s ", n->name, n->op_type);
        if (np->mode == AC_MODE_FP32) {
            fprintf(f, "fp32  %s%s%s\n", ac_fp32_reason_name(np->why), np->detail[0] ? ": " : "",
                    np->detail);
            continue;
        }
        fprintf(f, "int8  %s", ac_q8_kind_name(np->kind));
        if (np->kind == AC_Q8_CONV || np->kind == AC_Q8_FC) {
            const int32_t *rs = np->kind == AC_Q8_CONV ? np->u.conv.rshift : np->u.fc.rshift;
            int64_t nc = np->kind == AC_Q8_CONV ? np->u.conv.s.c_out : np->u.fc.n;
            int32_t lo = rs[0], hi = rs[0];
            for (int64_t o = 1; o < nc; o++) {
                lo = rs[o] < lo ? rs[o] : lo;
                hi = rs[o] > hi ? rs[o] : hi;
            }
            if (lo == hi)
                fprintf(f, " r=%d", lo);
            else
                fprintf(f, " r=%d..%d (per channel)", lo, hi);
        }
        fprintf(f, "\n");
    }
}
