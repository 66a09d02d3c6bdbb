#include "ac_passes.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_ops.h"

/* Nodes reading tensor t (graph outputs not counted). */
static int consumers(const ac_graph *g, int t)
{
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].ninputs; j++)
            if (g->nodes[i].inputs[j] == t)
                c++;
    return c;
}

static void replace_uses(ac_graph *g, int from, int to)
{
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].ninputs; j++)
            if (g->nodes[i].inputs[j] == from)
                g->nodes[i].inputs[j] = to;
}

static const float *const_f32(const ac_graph *g, int t)
{
    if (t < 0 || t >= g->ntensors)
        return NULL;
    const ac_tensor *ts = &g->tensors[t];
    return ts->data && ts->dtype == AC_DT_F32 ? ts->data : NULL;
}

/* Removes nodes marked dead (op_type NULL) and re-points tensor producers at
 * the new node indices, which later rewrites in the same pass rely on. */
static void compact(ac_graph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op_type)
            g->nodes[k++] = g->nodes[i];
    g->nnodes = k;
    for (int t = 0; t < g->ntensors; t++)
        g->tensors[t].producer = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].noutputs; j++)
            if (g->nodes[i].outputs[j] >= 0)
                g->tensors[g->nodes[i].outputs[j]].producer = i;
}

static void kill_node(ac_node *n)
{
    n->op = AC_OP_UNKNOWN;
    n->op_type = NULL;
}

static int new_const_f32(ac_graph *g, const char *base, const char *suffix, int ndim,
                         const int64_t *dims, const float *data, ac_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, ndim, dims);
    if (t < 0) {
        ac_err_set(err, AC_E_NOMEM, "out of memory adding tensor '%s'", name);
        return -1;
    }
    if (ac_graph_set_const(g, t, data, ac_tensor_bytes(&g->tensors[t]), err))
        return -1;
    return t;
}

/* Conv(x, W, B) -> BN(scale, bias, mean, var) becomes Conv(x, W', B') with
 * W'[c] = W[c] * s[c], B'[c] = (B[c] - mean[c]) * s[c] + bias[c], s = scale / sqrt(var + eps).
 * Gemm with a constant B is folded the same way over its output columns. */
static int fold_one_bn(ac_graph *g, ac_node *bn, ac_err *err)
{
    if (bn->ninputs < 5 || bn->noutputs < 1)
        return 0;
    int x = bn->inputs[0];
    const ac_tensor *xt = &g->tensors[x];
    if (xt->producer < 0 || consumers(g, x) != 1 || xt->is_output)
        return 0;
    ac_node *prev = &g->nodes[xt->producer];
    if (prev->op != AC_OP_CONV && prev->op != AC_OP_GEMM)
        return 0;
    const float *gamma = const_f32(g, bn->inputs[1]), *beta = const_f32(g, bn->inputs[2]);
    const float *mean = const_f32(g, bn->inputs[3]), *var = const_f32(g, bn->inputs[4]);
    if (!gamma || !beta || !mean || !var || prev->ninputs < 2)
        return 0;
    int wt = prev->inputs[1];
    const float *w = const_f32(g, wt);
    if (!w)
        return 0;
    const ac_tensor *wts = &g->tensors[wt];
    int64_t cout;
    int trans_b = 0;
    if (prev->op == AC_OP_CONV) {
        cout = wts->dims[0];
    } else {
        /* Gemm: BN over axis 1 of a 2-D output, i.e. the N columns. */
        if (xt->ndim != 2 || ac_node_attr_float(prev, "alpha", 1.0f, NULL) != 1.0f ||
            ac_node_attr_float(prev, "beta", 1.0f, NULL) != 1.0f || wts->ndim != 2)
            return 0;
        trans_b = (int)ac_node_attr_int(prev, "transB", 0, NULL);
        cout = trans_b ? wts->dims[0] : wts->dims[1];
    }
    if (ac_tensor_numel(&g->tensors[bn->inputs[1]]) != cout)
        return 0;
    float eps = ac_node_attr_float(bn, "epsilon", 1e-5f, NULL);
    const float *b = prev->ninputs > 2 && prev->inputs[2] >= 0 ? const_f32(g, prev->inputs[2]) : NULL;
    if (prev->ninputs > 2 && prev->inputs[2] >= 0 && (!b || ac_tensor_numel(&g->tensors[prev->inputs[2]]) != cout))
        return 0;
    int64_t wn = ac_tensor_numel(wts);
    float *nw = malloc(sizeof(float) * (size_t)wn);
    float *nb = malloc(sizeof(float) * (size_t)cout);
    float *s = malloc(sizeof(float) * (size_t)cout);
    if (!nw || !nb || !s) {
        free(nw);
        free(nb);
        free(s);
        return -ac_err_set(err, AC_E_NOMEM, "out of memory folding '%s'", bn->name);
    }
    for (int64_t c = 0; c < cout; c++) {
        s[c] = gamma[c] / sqrtf(var[c] + eps);
        nb[c] = ((b ? b[c] : 0.0f) - mean[c]) * s[c] + beta[c];
    }
    if (prev->op == AC_OP_CONV) {
        int64_t per = wn / cout;
        for (int64_t i = 0; i < wn; i++)
            nw[i] = w[i] * s[i / per];
    } else {
        int64_t rows = wts->dims[0], cols = wts->dims[1];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                nw[r * cols + c] = w[r * cols + c] * s[trans_b ? r : c];
    }
    int64_t bdims[1] = {cout};
    int nwt = new_const_f32(g, prev->name, ".weight_bnfold", wts->ndim, wts->dims, nw, err);
    int nbt = nwt < 0 ? -1 : new_const_f32(g, prev->name, ".bias_bnfold", 1, bdims, nb, err);
    free(nw);
    free(nb);
    free(s);
    if (nwt < 0 || nbt < 0)
        return -1;
    /* Gemm's C must broadcast over rows: shape [N] does. */
    int ins[3] = {prev->inputs[0], nwt, nbt};
    int *arr = ac_arena_memdup(g->arena, ins, sizeof ins);
    if (!arr)
        return -ac_err_set(err, AC_E_NOMEM, "out of memory folding '%s'", bn->name);
    prev->inputs = arr;
    prev->ninputs = 3;
    prev->outputs[0] = bn->outputs[0];
    kill_node(bn);
    return 1;
}

int ac_pass_fold_batchnorm(ac_graph *g, ac_err *err)
{
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op != AC_OP_BATCHNORM)
            continue;
        int rc = fold_one_bn(g, &g->nodes[i], err);
        if (rc < 0)
            return -1;
        count += rc;
    }
    compact(g);
    return count;
}

int ac_pass_drop_identity(ac_graph *g)
{
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node *n = &g->nodes[i];
        if ((n->op != AC_OP_IDENTITY && n->op != AC_OP_DROPOUT) || n->ninputs < 1)
            continue;
        int in = n->inputs[0], out = n->outputs[0];
        /* Keep it when it names a graph output, or when a Dropout mask is used. */
        if (g->tensors[out].is_output || in < 0)
            continue;
        if (n->noutputs > 1 && n->outputs[1] >= 0 && ac_graph_uses(g, n->outputs[1]) > 0)
            continue;
        replace_uses(g, out, in);
        kill_node(n);
        count++;
    }
    compact(g);
    return count;
}

static int const_scalar(const ac_graph *g, int t, float *v)
{
    if (t < 0)
        return 0;
    const float *p = const_f32(g, t);
    if (!p || ac_tensor_numel(&g->tensors[t]) != 1)
        return 0;
    *v = p[0];
    return 1;
}

int ac_pass_recognise_relu6(ac_graph *g)
{
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node *n = &g->nodes[i];
        if (n->op != AC_OP_CLIP)
            continue;
        float lo = -FLT_MAX, hi = FLT_MAX;
        if (ac_node_attr(n, "min") || ac_node_attr(n, "max")) {
            lo = ac_node_attr_float(n, "min", -FLT_MAX, NULL);
            hi = ac_node_attr_float(n, "max", FLT_MAX, NULL);
        } else {
            if (n->ninputs > 1 && n->inputs[1] >= 0 && !const_scalar(g, n->inputs[1], &lo))
                continue;
            if (n->ninputs > 2 && n->inputs[2] >= 0 && !const_scalar(g, n->inputs[2], &hi))
                continue;
        }
        if (lo != 0.0f)
            continue;
        if (hi == 6.0f)
            n->op = AC_OP_RELU6;
        else if (hi >= FLT_MAX)
            n->op = AC_OP_RELU;
        else
            continue;
        n->op_type = ac_op_name(n->op);
        n->ninputs = 1;
        n->nattrs = 0;
        n->params = NULL;
        count++;
    }
    return count;
}

int ac_pass_recognise_silu(ac_graph *g)
{
    int count = 0;
    for (int i = 0; i < g->nnodes; i++) {
        ac_node *m = &g->nodes[i];
        if (m->op != AC_OP_MUL || m->ninputs != 2)
            continue;
        for (int k = 0; k < 2; k++) {
            int s = m->inputs[k], x = m->inputs[1 - k];
            if (s < 0 || x < 0 || g->tensors[s].producer < 0)
                continue;
            ac_node *sig = &g->nodes[g->tensors[s].producer];
            if (sig->op != AC_OP_SIGMOID || sig->inputs[0] != x || consumers(g, s) != 1 ||
                g->tensors[s].is_output)
                continue;
            m->op = AC_OP_SILU;
            m->op_type = ac_op_name(AC_OP_SILU);
            m->inputs[0] = x;
            m->ninputs = 1;
            m->params = NULL;
            kill_node(sig);
            count++;
            break;
        }
    }
    compact(g);
    return count;
}

int ac_graph_simplify(ac_graph *g, ac_passes_stats *stats, ac_err *err)
{
    ac_passes_stats st = {0};
    int before = g->nnodes;
    st.identities_dropped = ac_pass_drop_identity(g);
    st.bn_folded = ac_pass_fold_batchnorm(g, err);
    if (st.bn_folded < 0)
        return err ? (int)err->code : AC_E_INTERNAL;
    st.relu6_recognised = ac_pass_recognise_relu6(g);
    st.silu_recognised = ac_pass_recognise_silu(g);
    if (ac_graph_toposort(g, err))
        return err->code;
    int mid = g->nnodes;
    ac_graph_prune(g);
    st.nodes_pruned = mid - g->nnodes;
    (void)before;
    for (int i = 0; i < g->nnodes; i++)
        g->nodes[i].params = NULL;
    if (ac_graph_infer_shapes(g, err))
        return err->code;
    if (stats)
        *stats = st;
    return 0;
}
