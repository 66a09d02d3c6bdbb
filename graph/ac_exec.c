#include "ac_exec.h"

#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ac_bigbuf.h"
#include "ac_mem_plan.h"
#include "ac_ops.h"

struct ac_exec {
    const ac_graph *g;
    void **buf;          /* per tensor: its activation buffer, NULL for constants */
    void *arena;         /* shared mode: every buffer points into it (not owned per tensor) */
    size_t act_bytes;    /* bytes of activation buffers */
    const void **in_ptr; /* scratch pointer arrays, sized for the widest node */
    void **out_ptr;
    int max_io;
    void *scratch;
    size_t scratch_bytes;
    int nthreads;
    int scratch_nth;     /* thread count the scratch was sized for */
    ac_exec_node_fn hook;
    void *hook_ctx;
    /* shared mode: fold[i] is the activation node i + 1 that Conv node i
     * applies as it stores (kind NONE: none); its output aliases the conv's */
    ac_conv_act *fold;
};

/* Readers of tensor t among the nodes, plus one if it is a graph output. */
static int readers(const ac_graph *g, int t)
{
    int r = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].ninputs; j++)
            r += g->nodes[i].inputs[j] == t;
    for (int o = 0; o < g->noutputs; o++)
        r += g->outputs[o] == t;
    return r;
}

/* Conv node i followed by an activation that alone reads its output: the
 * activation can run in the conv's stores. */
static bool find_fold(const ac_graph *g, int i, ac_conv_act *act)
{
    const ac_node *n = &g->nodes[i], *m = &g->nodes[i + 1];
    if (n->op != AC_OP_CONV || n->noutputs != 1 || m->noutputs != 1 || m->ninputs < 1)
        return false;
    const int t = n->outputs[0], t2 = m->outputs[0];
    return t >= 0 && t2 >= 0 && m->inputs[0] == t && g->tensors[t].dtype == AC_DT_F32 &&
           g->tensors[t2].dtype == AC_DT_F32 && ac_op_conv_act(g, m, act) && readers(g, t) == 1;
}

static int max_threads(const ac_exec *e)
{
    return e->nthreads > 0 ? e->nthreads : omp_get_max_threads();
}

/* Scratch is sized for the largest need over all nodes at the run's thread count. */
static int ensure_scratch(ac_exec *e, int nth, ac_err *err)
{
    if (e->scratch_nth == nth)
        return 0;
    size_t need = 0;
    for (int i = 0; i < e->g->nnodes; i++) {
        const ac_op_def *def = ac_op_def_get(e->g->nodes[i].op);
        if (def && def->scratch_bytes) {
            size_t b = def->scratch_bytes(e->g, &e->g->nodes[i], nth);
            if (b > need)
                need = b;
        }
    }
    free(e->scratch);
    e->scratch = NULL;
    e->scratch_bytes = 0;
    if (need && posix_memalign(&e->scratch, 64, need) != 0) {
        e->scratch = NULL;
        return ac_err_set(err, AC_E_NOMEM, "out of memory for %zu bytes of kernel scratch", need);
    }
    e->scratch_bytes = need;
    e->scratch_nth = nth;
    return 0;
}

/* Shared mode: every activation tensor (node outputs and graph inputs) gets
 * its place in one arena from the memory plan. */
static int plan_arena(ac_exec *e)
{
    const ac_graph *g = e->g;
    int nt = g->ntensors;
    int *first = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    int *last = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    int *tensor = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    ac_mem_block *b = malloc(sizeof *b * (size_t)(nt ? nt : 1));
    int *alias = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    int rc = -1, n = 0;
    if (!first || !last || !tensor || !b || !alias)
        goto done;
    ac_mem_lifetimes(g, first, last);
    /* a folded activation's output is the conv's buffer, which lives as long */
    for (int t = 0; t < nt; t++)
        alias[t] = -1;
    for (int i = 0; i + 1 < g->nnodes; i++) {
        if (e->fold[i].kind == AC_CONV_ACT_NONE)
            continue;
        const int t = g->nodes[i].outputs[0], t2 = g->nodes[i + 1].outputs[0];
        alias[t2] = t;
        last[t] = last[t2] > last[t] ? last[t2] : last[t];
    }
    for (int t = 0; t < nt; t++) {
        const ac_tensor *ts = &g->tensors[t];
        if (ac_tensor_is_const(ts) || (ts->producer < 0 && !ts->is_input) || alias[t] >= 0)
            continue;
        tensor[n] = t;
        b[n++] = (ac_mem_block){.bytes = ac_tensor_bytes(ts), .first = first[t], .last = last[t]};
    }
    e->act_bytes = ac_mem_plan(b, n);
    if (ac_bigbuf_alloc(&e->arena, e->act_bytes) != 0) {
        e->arena = NULL;
        goto done;
    }
    for (int k = 0; k < n; k++)
        e->buf[tensor[k]] = (char *)e->arena + b[k].offset;
    for (int t = 0; t < nt; t++)
        if (alias[t] >= 0)
            e->buf[t] = e->buf[alias[t]];
    rc = 0;
done:
    free(alias);
    free(first);
    free(last);
    free(tensor);
    free(b);
    return rc;
}

static ac_exec *exec_new(const ac_graph *g, bool shared, ac_err *err)
{
    ac_exec *e = calloc(1, sizeof *e);
    if (!e) {
        ac_err_set(err, AC_E_NOMEM, "out of memory creating executor");
        return NULL;
    }
    e->g = g;
    e->buf = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof(void *));
    if (!e->buf)
        goto nomem;
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        if (!ac_op_def_get(n->op)) {
            ac_err_set(err, AC_E_UNSUPPORTED, "node '%s' (%s, opset %d): operator not supported",
                       n->name, n->op_type, g->opset);
            ac_exec_destroy(&e);
            return NULL;
        }
        if (n->ninputs > e->max_io)
            e->max_io = n->ninputs;
        if (n->noutputs > e->max_io)
            e->max_io = n->noutputs;
        for (int j = 0; j < n->noutputs; j++) {
            int t = n->outputs[j];
            if (t < 0 || ac_tensor_is_const(&g->tensors[t]))
                continue;
            int64_t numel = ac_tensor_numel(&g->tensors[t]);
            if (numel < 0) {
                ac_err_set(err, AC_E_INVALID, "tensor '%s' (output of '%s') has no inferred shape",
                           g->tensors[t].name, n->name);
                ac_exec_destroy(&e);
                return NULL;
            }
            if (shared)
                continue; /* placed in the arena below */
            size_t bytes = ac_tensor_bytes(&g->tensors[t]);
            e->act_bytes += bytes;
            if (ac_bigbuf_alloc(&e->buf[t], bytes) != 0) {
                e->buf[t] = NULL;
                goto nomem;
            }
        }
    }
    e->in_ptr = calloc((size_t)(e->max_io + 1), sizeof(void *));
    e->out_ptr = calloc((size_t)(e->max_io + 1), sizeof(void *));
    if (!e->in_ptr || !e->out_ptr)
        goto nomem;
    if (shared) {
        /* only with shared buffers: there the conv's own output is never read back */
        e->fold = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *e->fold);
        if (!e->fold)
            goto nomem;
        for (int i = 0; i + 1 < g->nnodes; i++)
            if (!find_fold(g, i, &e->fold[i]))
                e->fold[i].kind = AC_CONV_ACT_NONE;
        if (plan_arena(e))
            goto nomem;
    }
    return e;
nomem:
    ac_err_set(err, AC_E_NOMEM, "out of memory allocating tensors of '%s'", g->name);
    ac_exec_destroy(&e);
    return NULL;
}

ac_exec *ac_exec_new(const ac_graph *g, ac_err *err)
{
    return exec_new(g, false, err);
}

ac_exec *ac_exec_new_shared(const ac_graph *g, ac_err *err)
{
    return exec_new(g, true, err);
}

size_t ac_exec_activation_bytes(const ac_exec *e)
{
    return e->act_bytes;
}

void ac_exec_destroy(ac_exec **p)
{
    if (!p || !*p)
        return;
    ac_exec *e = *p;
    if (e->buf && !e->arena)
        for (int i = 0; i < e->g->ntensors; i++)
            free(e->buf[i]);
    free(e->arena);
    free(e->buf);
    free(e->in_ptr);
    free(e->out_ptr);
    free(e->scratch);
    free(e->fold);
    free(e);
    *p = NULL;
}

void ac_exec_set_threads(ac_exec *e, int nthreads)
{
    e->nthreads = nthreads > 0 ? nthreads : 0;
}

void ac_exec_set_node_hook(ac_exec *e, ac_exec_node_fn fn, void *ctx)
{
    e->hook = fn;
    e->hook_ctx = ctx;
}

int ac_exec_folds(const ac_exec *e)
{
    int n = 0;
    for (int i = 0; e->fold && i < e->g->nnodes; i++)
        n += e->fold[i].kind != AC_CONV_ACT_NONE;
    return n;
}

int ac_exec_threads(const ac_exec *e)
{
    return max_threads(e);
}

const void *ac_exec_tensor(const ac_exec *e, int t)
{
    if (t < 0 || t >= e->g->ntensors)
        return NULL;
    if (ac_tensor_is_const(&e->g->tensors[t]))
        return e->g->tensors[t].data;
    return e->buf[t];
}

int ac_exec_run(ac_exec *e, const void *const *inputs, ac_err *err)
{
    const ac_graph *g = e->g;
    for (int i = 0; i < g->ninputs; i++) {
        int t = g->inputs[i];
        if (!inputs[i])
            return ac_err_set(err, AC_E_INVALID, "graph input '%s' was not given", g->tensors[t].name);
        /* Inputs are copied so a caller's buffer is never aliased by a later run. */
        size_t bytes = ac_tensor_bytes(&g->tensors[t]);
        if (!e->buf[t] && ac_bigbuf_alloc(&e->buf[t], bytes) != 0) {
            e->buf[t] = NULL;
            return ac_err_set(err, AC_E_NOMEM, "out of memory for input '%s'", g->tensors[t].name);
        }
        memcpy(e->buf[t], inputs[i], bytes);
    }
    int nth = max_threads(e);
    if (ensure_scratch(e, nth, err))
        return err ? (int)err->code : AC_E_NOMEM;

    int failed_node = -1;
    bool hook_failed = false;
    /* Folds run only where nothing looks between the two ops: no node hook,
     * and the fast conv kernel (the __ref one does not fold). */
    const bool fold = e->fold && !e->hook && !ac_kernels_ref_forced();
    /* One parallel region for the whole run; every thread walks all nodes. */
#pragma omp parallel num_threads(nth)
    {
        int ith = omp_get_thread_num();
        int nthr = omp_get_num_threads();
        if (e->hook) {
            if (e->hook(e->hook_ctx, e, -1, ith, nthr)) {
#pragma omp atomic write
                hook_failed = true;
            }
#pragma omp barrier
        }
        for (int i = 0; i < g->nnodes; i++) {
            const ac_node *n = &g->nodes[i];
            const ac_op_def *def = ac_op_def_get(n->op);
#pragma omp single
            {
                for (int j = 0; j < n->ninputs; j++)
                    e->in_ptr[j] = n->inputs[j] >= 0 ? ac_exec_tensor(e, n->inputs[j]) : NULL;
                for (int j = 0; j < n->noutputs; j++)
                    e->out_ptr[j] = n->outputs[j] >= 0 ? e->buf[n->outputs[j]] : NULL;
            } /* implicit barrier: pointers are ready for all threads */
            const bool folded = fold && e->fold[i].kind != AC_CONV_ACT_NONE;
            int rc = folded ? !ac_op_run_conv_act(g, n, e->in_ptr, e->out_ptr, e->scratch, ith, nthr, &e->fold[i])
                            : def->run(g, n, e->in_ptr, e->out_ptr, e->scratch, ith, nthr);
            if (rc) {
#pragma omp critical
                {
                    if (failed_node < 0 || i < failed_node)
                        failed_node = i;
                }
            }
#pragma omp barrier
            if (e->hook) {
                if (e->hook(e->hook_ctx, e, i, ith, nthr)) {
#pragma omp atomic write
                    hook_failed = true;
                }
#pragma omp barrier
            }
            if (folded)
                i++; /* the activation ran in the conv's stores */
        }
    }
    if (hook_failed)
        return ac_err_set(err, AC_E_INTERNAL, "the node hook failed during the run of '%s'", g->name);
    if (failed_node >= 0) {
        const ac_node *n = &g->nodes[failed_node];
        return ac_err_set(err, AC_E_INVALID, "node '%s' (%s): run failed on its input data",
                          n->name, n->op_type);
    }
    return 0;
}
