#include "ac_qexec.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ac_int8_eltwise.h"
#include "ac_int8_fast.h"
#include "ac_bigbuf.h"
#include "ac_mem_plan.h"
#include "ac_ops.h"
#include "ac_unary_pool_fast.h"

struct ac_qexec {
    const ac_plan *p;
    const ac_graph *g;
    /* The graph as the code-moving nodes see it: int8 tensors typed I8/U8, so the
     * fp32 ops' generic kernels move 1-byte elements. Shares nodes with g. */
    ac_graph shadow;
    ac_tensor *shadow_tensors;
    void **fbuf;          /* per tensor: float (native dtype) buffer or NULL */
    void **qbuf;          /* per tensor: codes or NULL */
    bool *convert_after;  /* per node: some output is quantized / dequantized after it */
    const void **in_ptr;
    void **out_ptr;
    int max_io;
    void *scratch;
    int scratch_nth;
    void **wpacked;       /* per node: int8 conv weights packed for the fast kernels, or NULL */
    int nthreads;
    void *arena;          /* shared mode: fbuf/qbuf point into it (graph/ac_mem_plan.h) */
    size_t act_bytes;     /* bytes of activation buffers */
    /* lent mode (ac_qexec_new_lent): the arena is the caller's, bound per run */
    bool lent, bound;
    size_t *foff, *qoff;  /* per tensor: offset in the arena, SIZE_MAX for none */
};

/* Every planned buffer at its offset from base. */
static void bind_arena(ac_qexec *e, void *base)
{
    for (int t = 0; t < e->g->ntensors; t++) {
        if (e->foff[t] != SIZE_MAX)
            e->fbuf[t] = (char *)base + e->foff[t];
        if (e->qoff[t] != SIZE_MAX)
            e->qbuf[t] = (char *)base + e->qoff[t];
    }
}

/* One buffer to place: tensor t's float (codes = false) or code buffer. */
typedef struct {
    ac_mem_block *b;
    int *tensor;
    bool *codes;
    int n;
    int *first, *last;
} arena_plan;

/* Shared mode: fbuf/qbuf entries were marked with a non-NULL placeholder by
 * the allocation pass; here each gets its place in one arena. */
static int plan_arena(ac_qexec *e)
{
    const ac_graph *g = e->g;
    size_t cap = (size_t)(2 * g->ntensors + 1);
    arena_plan a = {malloc(sizeof(ac_mem_block) * cap), malloc(sizeof(int) * cap), malloc(sizeof(bool) * cap), 0,
                    malloc(sizeof(int) * cap), malloc(sizeof(int) * cap)};
    int rc = -1;
    if (!a.b || !a.tensor || !a.codes || !a.first || !a.last)
        goto done;
    ac_mem_lifetimes(g, a.first, a.last);
    for (int t = 0; t < g->ntensors; t++)
        for (int c = 0; c < 2; c++) {
            void *mark = c ? e->qbuf[t] : e->fbuf[t];
            if (!mark)
                continue;
            size_t bytes = c ? (size_t)ac_tensor_numel(&g->tensors[t]) : ac_tensor_bytes(&g->tensors[t]);
            a.tensor[a.n] = t;
            a.codes[a.n] = c;
            a.b[a.n++] = (ac_mem_block){.bytes = bytes, .first = a.first[t], .last = a.last[t]};
        }
    e->act_bytes = ac_mem_plan(a.b, a.n);
    e->foff = malloc(sizeof(size_t) * (size_t)(g->ntensors ? g->ntensors : 1));
    e->qoff = malloc(sizeof(size_t) * (size_t)(g->ntensors ? g->ntensors : 1));
    if (!e->foff || !e->qoff)
        goto done;
    for (int t = 0; t < g->ntensors; t++)
        e->foff[t] = e->qoff[t] = SIZE_MAX;
    for (int k = 0; k < a.n; k++)
        *(a.codes[k] ? &e->qoff[a.tensor[k]] : &e->foff[a.tensor[k]]) = a.b[k].offset;
    if (!e->lent) {
        if (ac_bigbuf_alloc(&e->arena, e->act_bytes) != 0) {
            e->arena = NULL;
            goto done;
        }
        bind_arena(e, e->arena);
    }
    rc = 0;
done:
    free(a.b);
    free(a.tensor);
    free(a.codes);
    free(a.first);
    free(a.last);
    return rc;
}

static bool is_activation(const ac_plan *p, int t)
{
    return t >= 0 && p->tensors[t].activation;
}

static int alloc_buf(void **b, size_t bytes)
{
    if (ac_bigbuf_alloc(b, bytes) != 0) {
        *b = NULL;
        return -1;
    }
    return 0;
}

/* The placeholder a shared-mode allocation pass leaves where a buffer is needed. */
static char arena_mark;

static int need_buf(const ac_qexec *e, void **b, size_t bytes, bool shared)
{
    if (shared) {
        *b = &arena_mark;
        return 0;
    }
    ((ac_qexec *)e)->act_bytes += bytes;
    return alloc_buf(b, bytes);
}

/* lent: shared buffers in an arena the caller lends before each run. */
static ac_qexec *qexec_new_mode(const ac_plan *p, bool shared, bool lent, ac_err *err)
{
    const ac_graph *g = p->g;
    ac_qexec *e = calloc(1, sizeof *e);
    if (!e) {
        ac_err_set(err, AC_E_NOMEM, "out of memory creating the int8 executor");
        return NULL;
    }
    e->p = p;
    e->g = g;
    e->lent = lent;
    size_t nt = (size_t)(g->ntensors ? g->ntensors : 1);
    e->fbuf = calloc(nt, sizeof(void *));
    e->qbuf = calloc(nt, sizeof(void *));
    e->shadow_tensors = calloc(nt, sizeof(ac_tensor));
    e->convert_after = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(bool));
    if (!e->fbuf || !e->qbuf || !e->shadow_tensors || !e->convert_after)
        goto nomem;
    memcpy(e->shadow_tensors, g->tensors, sizeof(ac_tensor) * (size_t)g->ntensors);
    e->shadow = *g;
    e->shadow.tensors = e->shadow_tensors;
    for (int t = 0; t < g->ntensors; t++) {
        const ac_tensor *ts = &g->tensors[t];
        const ac_tensor_plan *tp = &p->tensors[t];
        if (ac_tensor_is_const(ts))
            continue;
        if (tp->has_codes)
            e->shadow_tensors[t].dtype = tp->is_signed ? AC_DT_I8 : AC_DT_U8;
        if (ts->producer < 0 && !ts->is_input)
            continue; /* nothing writes it */
        int64_t numel = ac_tensor_numel(ts);
        if (numel < 0) {
            ac_err_set(err, AC_E_INVALID, "tensor '%s' has no inferred shape", ts->name);
            ac_qexec_destroy(&e);
            return NULL;
        }
        if ((tp->has_float || !tp->activation) && need_buf(e, &e->fbuf[t], ac_tensor_bytes(ts), shared))
            goto nomem;
        if (tp->has_codes && need_buf(e, &e->qbuf[t], (size_t)numel, shared))
            goto nomem;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        if (n->ninputs > e->max_io)
            e->max_io = n->ninputs;
        if (n->noutputs > e->max_io)
            e->max_io = n->noutputs;
        if (!ac_op_def_get(n->op)) {
            ac_err_set(err, AC_E_UNSUPPORTED, "node '%s' (%s): operator not supported", n->name,
                       n->op_type);
            ac_qexec_destroy(&e);
            return NULL;
        }
        for (int j = 0; j < n->noutputs; j++) {
            int t = n->outputs[j];
            if (t >= 0 && p->tensors[t].has_codes && p->tensors[t].has_float)
                e->convert_after[i] = true;
        }
    }
    e->in_ptr = calloc((size_t)(e->max_io + 1), sizeof(void *));
    e->out_ptr = calloc((size_t)(e->max_io + 1), sizeof(void *));
    e->wpacked = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(void *));
    if (!e->in_ptr || !e->out_ptr || !e->wpacked || (shared && plan_arena(e)))
        goto nomem;
    /* Pack the int8 conv weights once per plan for the fast kernels. */
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node_plan *np = &p->nodes[i];
        if (np->mode != AC_MODE_INT8 || np->kind != AC_Q8_CONV)
            continue;
        size_t bytes = ac_conv_q8_pack_bytes(&np->u.conv);
        if (!bytes)
            continue;
        if (alloc_buf(&e->wpacked[i], bytes))
            goto nomem;
        ac_conv_q8_pack(&np->u.conv, e->wpacked[i]);
    }
    return e;
nomem:
    ac_err_set(err, AC_E_NOMEM, "out of memory allocating the int8 tensors of '%s'", g->name);
    ac_qexec_destroy(&e);
    return NULL;
}

static ac_qexec *qexec_new(const ac_plan *p, bool shared, ac_err *err)
{
    return qexec_new_mode(p, shared, false, err);
}

ac_qexec *ac_qexec_new(const ac_plan *p, ac_err *err)
{
    return qexec_new(p, false, err);
}

ac_qexec *ac_qexec_new_shared(const ac_plan *p, ac_err *err)
{
    return qexec_new(p, true, err);
}

size_t ac_qexec_activation_bytes(const ac_qexec *e)
{
    return e->act_bytes;
}

void ac_qexec_destroy(ac_qexec **pp)
{
    if (!pp || !*pp)
        return;
    ac_qexec *e = *pp;
    for (int t = 0; t < e->g->ntensors; t++) {
        /* shared mode: the buffers are the arena's, or still placeholders */
        if (e->fbuf && e->fbuf[t] != &arena_mark && !e->arena && !e->lent)
            free(e->fbuf[t]);
        if (e->qbuf && e->qbuf[t] != &arena_mark && !e->arena && !e->lent)
            free(e->qbuf[t]);
    }
    free(e->arena);
    free(e->foff);
    free(e->qoff);
    free(e->fbuf);
    free(e->qbuf);
    free(e->shadow_tensors);
    free(e->convert_after);
    free(e->in_ptr);
    free(e->out_ptr);
    free(e->scratch);
    if (e->wpacked)
        for (int i = 0; i < e->g->nnodes; i++)
            free(e->wpacked[i]);
    free(e->wpacked);
    free(e);
    *pp = NULL;
}

void ac_qexec_set_threads(ac_qexec *e, int nthreads)
{
    e->nthreads = nthreads > 0 ? nthreads : 0;
}

const void *ac_qexec_tensor_float(const ac_qexec *e, int t)
{
    if (t < 0 || t >= e->g->ntensors)
        return NULL;
    if (ac_tensor_is_const(&e->g->tensors[t]))
        return e->g->tensors[t].data;
    return e->fbuf[t];
}

const void *ac_qexec_tensor_codes(const ac_qexec *e, int t)
{
    if (t < 0 || t >= e->g->ntensors)
        return NULL;
    return e->qbuf[t];
}

const void *ac_qexec_tensor_dump(const ac_qexec *e, int t, ac_dtype *dtype)
{
    if (t < 0 || t >= e->g->ntensors)
        return NULL;
    if (e->qbuf[t]) {
        *dtype = e->p->tensors[t].is_signed ? AC_DT_I8 : AC_DT_U8;
        return e->qbuf[t];
    }
    *dtype = e->g->tensors[t].dtype;
    return ac_qexec_tensor_float(e, t);
}

/* fp32 nodes (conv / gemm) and int8 conv / FC nodes may need kernel scratch. */
static int ensure_scratch(ac_qexec *e, int nth, ac_err *err)
{
    if (e->scratch_nth == nth)
        return 0;
    size_t need = 0;
    for (int i = 0; i < e->g->nnodes; i++) {
        const ac_node *n = &e->g->nodes[i];
        const ac_op_def *def = ac_op_def_get(n->op);
        const ac_node_plan *np = &e->p->nodes[i];
        size_t b = 0;
        if (np->mode == AC_MODE_FP32 && def->scratch_bytes)
            b = def->scratch_bytes(e->g, n, nth);
        else if (np->mode == AC_MODE_INT8 && np->kind == AC_Q8_CONV)
            b = ac_conv2d_q8_scratch_bytes(&np->u.conv, nth);
        else if (np->mode == AC_MODE_INT8 && np->kind == AC_Q8_FC)
            b = ac_fc_q8_scratch_bytes(&np->u.fc, nth);
        need = b > need ? b : need;
    }
    free(e->scratch);
    e->scratch = NULL;
    if (need && alloc_buf(&e->scratch, need))
        return ac_err_set(err, AC_E_NOMEM, "out of memory for %zu bytes of kernel scratch", need);
    e->scratch_nth = nth;
    return 0;
}

/* Quantize or dequantize tensor t between its two buffers (thread's share). */
static void convert(const ac_qexec *e, int t, bool from_codes, int ith, int nth)
{
    const ac_tensor_plan *tp = &e->p->tensors[t];
    int64_t n = ac_tensor_numel(&e->g->tensors[t]);
    if (from_codes)
        ac_dequantize_q8(e->qbuf[t], e->fbuf[t], n, tp->scale, tp->is_signed, ith, nth);
    else
        ac_quantize_q8(e->fbuf[t], e->qbuf[t], n, tp->scale, tp->is_signed, ith, nth);
}

static void set_pointers(ac_qexec *e, const ac_node *n, bool int8)
{
    for (int j = 0; j < n->ninputs; j++) {
        int t = n->inputs[j];
        if (t < 0)
            e->in_ptr[j] = NULL;
        else if (int8 && is_activation(e->p, t))
            e->in_ptr[j] = e->qbuf[t];
        else
            e->in_ptr[j] = ac_qexec_tensor_float(e, t);
    }
    for (int j = 0; j < n->noutputs; j++) {
        int t = n->outputs[j];
        e->out_ptr[j] = t < 0 ? NULL : (int8 ? e->qbuf[t] : e->fbuf[t]);
    }
}

static int run_int8(const ac_qexec *e, const ac_node *n, const ac_node_plan *np, int ith, int nth)
{
    const void *const *in = e->in_ptr;
    void *const *out = e->out_ptr;
    const ac_tensor_plan *x = &e->p->tensors[n->inputs[0]];
    int64_t numel = ac_tensor_numel(&e->g->tensors[n->outputs[0]]);
    switch (np->kind) {
    case AC_Q8_CONV: {
        ac_conv_q8_params cp = np->u.conv; /* fast kernels, with this plan's packed weights */
        cp.w_packed = e->wpacked[np - e->p->nodes];
        ac_conv2d_q8(&cp, in[0], out[0], e->scratch, ith, nth);
        return 0;
    }
    case AC_Q8_FC: ac_fc_q8(&np->u.fc, in[0], out[0], e->scratch, ith, nth); return 0;
    case AC_Q8_ADD: ac_add_q8(&np->u.add, in, out[0], ith, nth); return 0;
    case AC_Q8_MUL: ac_mul_q8__ref(&np->u.mul, in[0], in[1], out[0], ith, nth); return 0;
    case AC_Q8_CONCAT:
        ac_concat_q8__ref(np->u.concat.outer, n->ninputs, np->u.concat.chunk, np->u.concat.rq, in,
                          out[0], ith, nth);
        return 0;
    case AC_Q8_MAXPOOL:
        ac_maxpool_q8(&np->u.maxpool, x->is_signed, in[0], out[0], ith, nth);
        return 0;
    case AC_Q8_AVGPOOL: ac_avgpool_q8(&np->u.avgpool, in[0], out[0], ith, nth); return 0;
    case AC_Q8_GLOBAL_AVGPOOL: ac_global_avgpool_q8__ref(&np->u.gavg, in[0], out[0], ith, nth); return 0;
    case AC_Q8_GLOBAL_MAXPOOL:
        ac_global_maxpool_q8__ref(np->u.gmax.rows, np->u.gmax.len, x->is_signed, in[0], out[0],
                                  ith, nth);
        return 0;
    case AC_Q8_CLAMP: ac_clamp_q8(&np->u.clamp, in[0], out[0], numel, ith, nth); return 0;
    case AC_Q8_PRELU: ac_prelu_q8__ref(&np->u.prelu, in[0], out[0], ith, nth); return 0;
    case AC_Q8_LUT: ac_lut_q8__ref(&np->u.lut, in[0], out[0], numel, ith, nth); return 0;
    case AC_Q8_MOVE:
        return ac_op_def_get(n->op)->run(&e->shadow, n, in, out, NULL, ith, nth);
    default: return 1;
    }
}

ac_qexec *ac_qexec_new_lent(const ac_plan *p, ac_err *err)
{
    return qexec_new_mode(p, true, true, err);
}

void ac_qexec_lend(ac_qexec *e, void *mem)
{
    if (!e->lent || !mem)
        return;
    bind_arena(e, mem);
    e->bound = true;
}

int ac_qexec_run(ac_qexec *e, const void *const *inputs, ac_err *err)
{
    const ac_graph *g = e->g;
    const ac_plan *p = e->p;
    if (e->lent && !e->bound)
        return ac_err_set(err, AC_E_INTERNAL, "int8 executor of '%s': run before an arena was lent", g->name);
    for (int i = 0; i < g->ninputs; i++) {
        int t = g->inputs[i];
        if (!inputs[i])
            return ac_err_set(err, AC_E_INVALID, "graph input '%s' was not given",
                              g->tensors[t].name);
        memcpy(e->fbuf[t], inputs[i], ac_tensor_bytes(&g->tensors[t]));
    }
    int nth = e->nthreads > 0 ? e->nthreads : omp_get_max_threads();
    if (ensure_scratch(e, nth, err))
        return err ? (int)err->code : AC_E_NOMEM;
    int failed_node = -1;
#pragma omp parallel num_threads(nth)
    {
        int ith = omp_get_thread_num();
        int nthr = omp_get_num_threads();
        /* The network input is quantized with its own threshold. */
        for (int i = 0; i < g->ninputs; i++)
            if (p->tensors[g->inputs[i]].has_codes)
                convert(e, g->inputs[i], false, ith, nthr);
#pragma omp barrier
        for (int i = 0; i < g->nnodes; i++) {
            const ac_node *n = &g->nodes[i];
            const ac_node_plan *np = &p->nodes[i];
            bool int8 = np->mode == AC_MODE_INT8;
#pragma omp single
            set_pointers(e, n, int8);
            /* implicit barrier: pointers ready */
            int rc = int8 ? run_int8(e, n, np, ith, nthr)
                          : ac_op_def_get(n->op)->run(g, n, e->in_ptr, e->out_ptr, e->scratch, ith,
                                                      nthr);
            if (rc) {
#pragma omp critical
                {
                    if (failed_node < 0 || i < failed_node)
                        failed_node = i;
                }
            }
#pragma omp barrier
            if (e->convert_after[i]) {
                for (int j = 0; j < n->noutputs; j++) {
                    int t = n->outputs[j];
                    if (t >= 0 && p->tensors[t].has_codes && p->tensors[t].has_float)
                        convert(e, t, p->tensors[t].int8_produced, ith, nthr);
                }
#pragma omp barrier
            }
        }
    }
    if (failed_node >= 0) {
        const ac_node *n = &g->nodes[failed_node];
        return ac_err_set(err, AC_E_INVALID, "node '%s' (%s, %s): run failed on its input data",
                          n->name, n->op_type,
                          p->nodes[failed_node].mode == AC_MODE_INT8 ? "int8" : "fp32");
    }
    return 0;
}
