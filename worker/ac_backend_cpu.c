/* The CPU emulator backend (ac_backend.h). */
#include <stdlib.h>

#include "ac_backend.h"
#include "ac_bigbuf.h"
#include "ac_exec.h"
#include "ac_qexec.h"

typedef struct {
    ac_exec *fp32;  /* plan NULL */
    ac_qexec *int8; /* plan given */
} cpu_handle;

/* The backend with the activation memory its int8 handles share: a worker
 * runs one at a time, and a fresh arena per candidate cost a quarter of the
 * subset screen in first touches. It grows to the largest plan's need. */
typedef struct {
    ac_backend b; /* first: the ac_backend * the worker holds */
    void *pool;
    size_t pool_bytes;
} cpu_backend;

static int lend_pool(cpu_backend *cb, ac_qexec *q, ac_err *err)
{
    const size_t need = ac_qexec_activation_bytes(q);
    if (need > cb->pool_bytes || !cb->pool) {
        free(cb->pool);
        cb->pool = NULL;
        cb->pool_bytes = 0;
        if (ac_bigbuf_alloc(&cb->pool, need) != 0) {
            cb->pool = NULL;
            return ac_err_set(err, AC_E_NOMEM, "out of memory for %zu bytes of int8 activations", need);
        }
        cb->pool_bytes = need;
    }
    ac_qexec_lend(q, cb->pool);
    return 0;
}

static void *cpu_prepare(ac_backend *b, const ac_graph *g, const ac_plan *plan, ac_err *err)
{
    cpu_handle *h = calloc(1, sizeof *h);
    if (!h) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    /* Only the graph outputs are read after a run: activations share memory. */
    if (plan) {
        h->int8 = ac_qexec_new_lent(plan, err);
        if (h->int8)
            ac_qexec_set_threads(h->int8, b->threads);
    } else {
        h->fp32 = ac_exec_new_shared(g, err);
        if (h->fp32)
            ac_exec_set_threads(h->fp32, b->threads);
    }
    if (!h->int8 && !h->fp32) {
        free(h);
        return NULL;
    }
    return h;
}

static int cpu_run(ac_backend *b, void *hv, const void *const *inputs, ac_err *err)
{
    cpu_handle *h = hv;
    if (h->int8 && lend_pool((cpu_backend *)b, h->int8, err))
        return -1;
    return h->int8 ? ac_qexec_run(h->int8, inputs, err) : ac_exec_run(h->fp32, inputs, err);
}

static const float *cpu_output(ac_backend *b, void *hv, int tensor)
{
    cpu_handle *h = hv;
    (void)b;
    return h->int8 ? ac_qexec_tensor_float(h->int8, tensor) : ac_exec_tensor(h->fp32, tensor);
}

static void cpu_release(ac_backend *b, void *hv)
{
    cpu_handle *h = hv;
    (void)b;
    if (!h)
        return;
    ac_qexec_destroy(&h->int8);
    ac_exec_destroy(&h->fp32);
    free(h);
}

static void cpu_destroy(ac_backend *b)
{
    cpu_backend *cb = (cpu_backend *)b;
    free(cb->pool);
    free(cb);
}

ac_backend *ac_backend_cpu_new(int threads, ac_err *err)
{
    cpu_backend *cb = calloc(1, sizeof *cb);
    ac_backend *b = cb ? &cb->b : NULL;
    if (!b) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    b->name = "cpu-emulator";
    b->prepare = cpu_prepare;
    b->run = cpu_run;
    b->output = cpu_output;
    b->release = cpu_release;
    b->destroy = cpu_destroy;
    b->threads = threads;
    return b;
}

void ac_backend_destroy(ac_backend **p)
{
    if (!p || !*p)
        return;
    (*p)->destroy(*p);
    *p = NULL;
}

static int pair_run(void *ctx, const void *const *inputs, ac_err *err)
{
    ac_backend_pair *p = ctx;
    return p->b->run(p->b, p->h, inputs, err);
}

static const float *pair_output(void *ctx, int tensor)
{
    ac_backend_pair *p = ctx;
    return p->b->output(p->b, p->h, tensor);
}

ac_runner_exec ac_backend_exec(ac_backend_pair *pair)
{
    return (ac_runner_exec){.run = pair_run, .output = pair_output, .ctx = pair};
}
