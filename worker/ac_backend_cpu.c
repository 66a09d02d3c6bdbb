/* The CPU emulator backend (ac_backend.h). */
#include <stdlib.h>

#include "ac_backend.h"
#include "ac_exec.h"
#include "ac_qexec.h"

typedef struct {
    ac_exec *fp32;  /* plan NULL */
    ac_qexec *int8; /* plan given */
} cpu_handle;

static void *cpu_prepare(ac_backend *b, const ac_graph *g, const ac_plan *plan, ac_err *err)
{
    cpu_handle *h = calloc(1, sizeof *h);
    if (!h) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    /* Only the graph outputs are read after a run: activations share memory. */
    if (plan) {
        h->int8 = ac_qexec_new_shared(plan, err);
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
    (void)b;
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
    free(b);
}

ac_backend *ac_backend_cpu_new(int threads, ac_err *err)
{
    ac_backend *b = calloc(1, sizeof *b);
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
