#include "ac_worker_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_calibrate.h"
#include "ac_metric.h"
#include "ac_payload.h"
#include "ac_plan.h"
#include "ac_runner.h"

/* Prepared executors hold every activation of a batch (hundreds of MB for an
 * ImageNet net at batch 20), so few are kept: the fp32 reference, the
 * candidate whose shards are running, and one more for interleaved shards. */
#define PLAN_SLOTS 3

/* The fp32 reference's outputs kept across tasks (ac_ref_cache): enough for
 * the search's sensitivity subset of any zoo model, and a whole test set of
 * a classifier, so that candidates scored against the fp32 model do not run
 * it again. */
#define REF_CACHE_BYTES ((size_t)96 << 20)

/* A prepared candidate (or the fp32 model) of one loaded graph. */
typedef struct {
    bool used;
    uint64_t graph_id, payload_id;
    bool fp32;
    ac_calib_table *table;
    ac_plan *plan;
    ac_backend_pair pair;
    uint64_t last_used;
} plan_slot;

struct ac_worker_eval {
    ac_worker_cache *cache;
    ac_backend *backend;
    int threads;
    plan_slot slots[PLAN_SLOTS];
    uint64_t tick;
    int built, reused;
    /* fp32 executor for calibration, of one graph */
    uint64_t calib_graph;
    ac_exec *calib_exec;
    ac_ref_cache *ref_cache;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void slot_free(ac_worker_eval *w, plan_slot *s)
{
    if (!s->used)
        return;
    if (s->pair.h)
        w->backend->release(w->backend, s->pair.h);
    ac_plan_destroy(&s->plan);
    ac_calib_table_destroy(&s->table);
    memset(s, 0, sizeof *s);
}

/* The cache frees a graph: everything built on it goes first. */
static void on_graph_evicted(void *ctx, uint64_t graph_id)
{
    ac_worker_eval *w = ctx;
    for (int i = 0; i < PLAN_SLOTS; i++)
        if (w->slots[i].used && w->slots[i].graph_id == graph_id)
            slot_free(w, &w->slots[i]);
    if (w->calib_graph == graph_id) {
        ac_exec_destroy(&w->calib_exec);
        w->calib_graph = 0;
    }
    /* Its keys hash graph ids, which the cache may give out again. */
    ac_ref_cache_clear(w->ref_cache);
}

ac_worker_eval *ac_worker_eval_new(ac_worker_cache *cache, ac_backend *backend, int threads, ac_err *err)
{
    ac_worker_eval *w = calloc(1, sizeof *w);
    if (!w) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    w->cache = cache;
    w->backend = backend;
    w->threads = threads;
    w->ref_cache = ac_ref_cache_new(REF_CACHE_BYTES);
    if (!w->ref_cache) {
        free(w);
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    ac_worker_cache_set_evict_hook(cache, on_graph_evicted, w);
    return w;
}

void ac_worker_eval_destroy(ac_worker_eval **p)
{
    if (!p || !*p)
        return;
    ac_worker_eval *w = *p;
    ac_worker_cache_set_evict_hook(w->cache, NULL, NULL);
    for (int i = 0; i < PLAN_SLOTS; i++)
        slot_free(w, &w->slots[i]);
    ac_exec_destroy(&w->calib_exec);
    ac_ref_cache_destroy(&w->ref_cache);
    free(w);
    *p = NULL;
}

void ac_worker_eval_plan_stats(const ac_worker_eval *w, int *built, int *reused)
{
    *built = w->built;
    *reused = w->reused;
}

/* ---- per-batch hooks -------------------------------------------------------------- */

typedef struct {
    const ac_worker_hooks *hooks;
    int64_t begin, end;
    bool cancelled;
} batch_ctx;

static int after_batch(void *ctx, int64_t first, int n, ac_err *err)
{
    batch_ctx *b = ctx;
    if (!b->hooks)
        return 0;
    if (b->hooks->progress)
        b->hooks->progress(b->hooks->ctx, (uint64_t)(first + n - b->begin), (uint64_t)(b->end - b->begin));
    if (b->hooks->cancel && atomic_load(b->hooks->cancel)) {
        b->cancelled = true;
        return ac_err_set(err, AC_E_INVALID, "cancelled");
    }
    return 0;
}

/* ---- plans -------------------------------------------------------------------------- */

static plan_slot *find_slot(ac_worker_eval *w, uint64_t graph_id, uint64_t payload_id, bool fp32)
{
    for (int i = 0; i < PLAN_SLOTS; i++) {
        plan_slot *s = &w->slots[i];
        if (s->used && s->graph_id == graph_id && s->fp32 == fp32 && (fp32 || s->payload_id == payload_id)) {
            s->last_used = ++w->tick;
            return s;
        }
    }
    return NULL;
}

static plan_slot *free_slot(ac_worker_eval *w)
{
    plan_slot *victim = &w->slots[0];
    for (int i = 0; i < PLAN_SLOTS; i++) {
        if (!w->slots[i].used)
            return &w->slots[i];
        if (w->slots[i].last_used < victim->last_used)
            victim = &w->slots[i];
    }
    slot_free(w, victim);
    return victim;
}

static plan_slot *fp32_model(ac_worker_eval *w, const ac_graph *g, uint64_t graph_id, ac_err *err)
{
    plan_slot *s = find_slot(w, graph_id, 0, true);
    if (s)
        return s;
    s = free_slot(w);
    s->pair.b = w->backend;
    s->pair.h = w->backend->prepare(w->backend, g, NULL, err);
    if (!s->pair.h)
        return NULL;
    s->used = true;
    s->fp32 = true;
    s->graph_id = graph_id;
    s->last_used = ++w->tick;
    return s;
}

static plan_slot *candidate(ac_worker_eval *w, const ac_graph *g, uint64_t graph_id, const ac_eval_payload *p,
                            uint64_t payload_id, ac_err *err)
{
    plan_slot *s = find_slot(w, graph_id, payload_id, false);
    if (s) {
        w->reused++;
        return s;
    }
    s = free_slot(w);
    s->table = ac_calib_table_new();
    if (!s->table) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int32_t i = 0; i < p->nranges; i++)
        if (ac_calib_table_set(s->table, p->ranges[i].name, p->ranges[i].th, p->ranges[i].min, p->ranges[i].max,
                               err)) {
            ac_err_prefix(err, "eval payload ranges: ");
            goto fail;
        }
    ac_quant_options qo = {.per_channel = p->per_channel,
                           .accuracy_opt = p->accuracy_opt,
                           .first_conv_fp32 = p->first_conv_fp32,
                           .fp32_layers = p->fp32_layers,
                           .n_fp32_layers = p->nfp32};
    s->plan = ac_plan_build(g, s->table, &qo, err);
    if (!s->plan)
        goto fail;
    /* The plan keeps qo's pointers (into the payload): it must not use them later. */
    s->plan->opt.fp32_layers = NULL;
    s->plan->opt.n_fp32_layers = 0;
    s->pair.b = w->backend;
    s->pair.h = w->backend->prepare(w->backend, g, s->plan, err);
    if (!s->pair.h)
        goto fail;
    s->used = true;
    s->graph_id = graph_id;
    s->payload_id = payload_id;
    s->last_used = ++w->tick;
    w->built++;
    return s;
fail:
    s->used = true;
    slot_free(w, s);
    return NULL;
}

/* ---- the task ------------------------------------------------------------------------- */

typedef struct {
    const ac_graph *g;
    uint64_t graph_id;
    ac_dataset *ds;
} task_data;

/* Model and dataset of the task (a run task has no dataset); AC_CACHE_MISSING
 * names the blob to fetch. */
static int resolve(ac_worker_eval *w, const ac_task *t, task_data *d, uint8_t missing[32], ac_err *err)
{
    int rc = ac_worker_cache_graph(w->cache, t->model_hash, t->input_shapes, &d->g, &d->graph_id, err);
    if (rc == AC_CACHE_MISSING)
        memcpy(missing, t->model_hash, 32);
    if (rc)
        return rc;
    if (d->g->ninputs != 1)
        return ac_err_set(err, AC_E_UNSUPPORTED, "the model has %d inputs; one data input is supported",
                          d->g->ninputs);
    const ac_tensor *in = &d->g->tensors[d->g->inputs[0]];
    if (in->dtype != AC_DT_F32 || in->ndim < 2)
        return ac_err_set(err, AC_E_UNSUPPORTED, "input '%s': need a float32 tensor with a batch dim", in->name);
    if (t->batch > 0 && t->batch != in->dims[0])
        return ac_err_set(err, AC_E_INVALID, "task batch %d: the model input '%s' (input_shapes '%s') has batch %lld",
                          t->batch, in->name, t->input_shapes, (long long)in->dims[0]);
    if (t->kind == AC_TASK_RUN)
        return 0;
    ac_dataset_opts o = ac_runner_data_opts(d->g, 0, t->preprocess[0] ? t->preprocess : NULL, w->threads);
    rc = ac_worker_cache_dataset(w->cache, t->data_hash, t->data_path, &o, &d->ds, err);
    if (rc == AC_CACHE_MISSING)
        memcpy(missing, t->data_hash, 32);
    return rc;
}

static int run_calib(ac_worker_eval *w, const ac_task *t, const task_data *d, ac_runner *r, batch_ctx *bc,
                     uint8_t **partial, size_t *plen, ac_err *err)
{
    ac_calib_payload cp;
    if (ac_calib_payload_decode(t->payload.data, t->payload.len, &cp, err))
        return -1;
    ac_calib_collector *c = ac_calib_collector_from_template(d->g, cp.collector_template.data,
                                                             cp.collector_template.len, err);
    if (!c)
        return -1;
    int rc = -1;
    if (w->calib_graph != d->graph_id) {
        ac_exec_destroy(&w->calib_exec);
        w->calib_graph = 0;
        /* observed node by node (ac_runner_calibrate): buffers may be shared */
        w->calib_exec = ac_exec_new_shared(d->g, err);
        if (!w->calib_exec)
            goto done;
        ac_exec_set_threads(w->calib_exec, w->threads);
        w->calib_graph = d->graph_id;
    }
    ac_runner_set_callback(r, after_batch, bc);
    if (ac_runner_calibrate(r, w->calib_exec, c, t->begin, t->end, err))
        goto done;
    rc = ac_calib_collector_encode(c, partial, plen, err);
done:
    ac_calib_collector_destroy(&c);
    return rc;
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* What decides the fp32 outputs of a batch: the graph (model and input
 * shapes, so the batch), the dataset and its preprocessing. */
static uint64_t ref_key(const ac_task *t, const task_data *d)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, &d->graph_id, sizeof d->graph_id);
    h = fnv1a(h, t->data_hash, sizeof t->data_hash);
    return fnv1a(h, t->preprocess, strlen(t->preprocess));
}

static int run_eval(ac_worker_eval *w, const ac_task *t, const task_data *d, ac_runner *r, batch_ctx *bc,
                    uint8_t **partial, size_t *plen, ac_err *err)
{
    ac_eval_payload p;
    ac_payload_storage st;
    if (ac_eval_payload_decode(t->payload.data, t->payload.len, &p, &st, err))
        return -1;
    int rc = -1;
    ac_metric *m = NULL;
    ac_metric_partial *part = NULL;
    if (p.metric_kind < AC_METRIC_SIMILARITY || p.metric_kind > AC_METRIC_DETECT) {
        ac_err_set(err, AC_E_UNSUPPORTED, "eval payload: metric kind %d is not one a task can name (1..3)",
                   (int)p.metric_kind);
        goto done;
    }
    if (p.metric_output < 0 || p.metric_output >= d->g->noutputs) {
        ac_err_set(err, AC_E_INVALID, "eval payload: metric output %d, the model has %d outputs",
                   (int)p.metric_output, d->g->noutputs);
        goto done;
    }
    ac_metric_options mo;
    ac_metric_options_init(&mo, (ac_metric_kind)p.metric_kind);
    mo.output = p.metric_output;
    if (p.metric_topk > 0)
        mo.topk = p.metric_topk;
    mo.classifier = p.metric_classifier;
    if (mo.kind == AC_METRIC_DETECT && ac_detect_config_preset(&mo.detect, p.detect_preset, err))
        goto done;
    m = ac_metric_new(&mo, err);
    part = m ? ac_metric_partial_new(m, err) : NULL;
    if (!part)
        goto done;
    ac_runner_set_callback(r, after_batch, bc);
    plan_slot *ref = NULL, *cand = NULL;
    if (p.fp32_reference || p.need_reference) {
        ref = fp32_model(w, d->g, d->graph_id, err);
        if (!ref)
            goto done;
    }
    if (!p.fp32_reference) {
        uint64_t id = ac_eval_payload_id(t->payload.data, t->payload.len);
        cand = candidate(w, d->g, d->graph_id, &p, id, err);
        if (!cand)
            goto done;
    }
    /* fp32_model may have been evicted by candidate's slot choice: look again. */
    if (ref && !(ref = find_slot(w, d->graph_id, 0, true)) && !(ref = fp32_model(w, d->g, d->graph_id, err)))
        goto done;
    ac_runner_set_ref_cache(r, ref ? w->ref_cache : NULL, ref ? ref_key(t, d) : 0);
    ac_runner_exec ce = cand ? ac_backend_exec(&cand->pair) : (ac_runner_exec){0};
    ac_runner_exec re = ref ? ac_backend_exec(&ref->pair) : (ac_runner_exec){0};
    if (p.fp32_reference)
        rc = ac_runner_score(r, NULL, &re, NULL, part, t->begin, t->end, err);
    else
        rc = ac_runner_score(r, &ce, ref ? &re : NULL, part, NULL, t->begin, t->end, err);
    if (!rc)
        rc = ac_metric_partial_encode(part, partial, plen, err);
done:
    ac_metric_partial_destroy(&part);
    ac_metric_destroy(&m);
    ac_payload_storage_free(&st);
    return rc;
}

/* A run task: the samples in the payload through the candidate (or the fp32
 * model) in model batches, the last one padded by repeating its last sample;
 * the result holds every graph output for the real samples. */
static int run_inline(ac_worker_eval *w, const ac_task *t, const task_data *d, batch_ctx *bc, uint8_t **partial,
                      size_t *plen, ac_err *err)
{
    ac_run_payload rp;
    ac_eval_payload p;
    ac_payload_storage st = {0};
    if (ac_run_payload_decode(t->payload.data, t->payload.len, &rp, err) ||
        ac_eval_payload_decode(rp.eval.data, rp.eval.len, &p, &st, err))
        return -1;
    const ac_graph *g = d->g;
    const ac_tensor *in = &g->tensors[g->inputs[0]];
    int batch = (int)in->dims[0];
    size_t per = (size_t)(ac_tensor_numel(in) / batch);
    int64_t n = rp.shape[0];
    int rc = -1;
    float *x = NULL, *out = NULL;
    ac_run_output *outs = NULL;
    bool fits = rp.ndim == in->ndim;
    for (int k = 1; fits && k < in->ndim; k++)
        fits = rp.shape[k] == in->dims[k];
    if (!fits) {
        ac_err_set(err, AC_E_INVALID, "run payload: samples of %d dims do not fit the input '%s'", (int)rp.ndim,
                   in->name);
        goto done;
    }
    plan_slot *s = p.fp32_reference ? fp32_model(w, g, d->graph_id, err)
                                    : candidate(w, g, d->graph_id, &p, ac_eval_payload_id(rp.eval.data, rp.eval.len),
                                                err);
    if (!s)
        goto done;
    ac_runner_exec ex = ac_backend_exec(&s->pair);
    size_t total = 0;
    for (int o = 0; o < g->noutputs; o++)
        total += (size_t)(ac_tensor_numel(&g->tensors[g->outputs[o]]) / batch) * (size_t)n;
    x = malloc(sizeof(float) * per * (size_t)batch);
    out = malloc(sizeof(float) * (total ? total : 1));
    outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *outs);
    if (!x || !out || !outs) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for a run task of %lld samples", (long long)n);
        goto done;
    }
    const uint8_t *src = rp.data.data; /* a view into the frame: copied, since it need not be float-aligned */
    for (int64_t b = 0; b < n; b += batch) {
        int64_t m = n - b < batch ? n - b : batch;
        memcpy(x, src + (size_t)b * per * sizeof(float), sizeof(float) * per * (size_t)m);
        for (int64_t k = m; k < batch; k++)
            memcpy(x + (size_t)k * per, x + (size_t)(m - 1) * per, sizeof(float) * per);
        const void *ins[1] = {x};
        if (ex.run(ex.ctx, ins, err))
            goto done;
        size_t off = 0;
        for (int o = 0; o < g->noutputs; o++) {
            size_t po = (size_t)(ac_tensor_numel(&g->tensors[g->outputs[o]]) / batch);
            const float *v = ex.output(ex.ctx, g->outputs[o]);
            if (!v) {
                ac_err_set(err, AC_E_INTERNAL, "output %d has no value after the run", o);
                goto done;
            }
            memcpy(out + off + (size_t)b * po, v, sizeof(float) * po * (size_t)m);
            off += po * (size_t)n;
        }
        if (after_batch(bc, t->begin + b, (int)m, err)) /* progress, and a cancel stops here */
            goto done;
    }
    size_t off = 0;
    for (int o = 0; o < g->noutputs; o++) {
        const ac_tensor *ot = &g->tensors[g->outputs[o]];
        size_t po = (size_t)(ac_tensor_numel(ot) / batch);
        outs[o].ndim = ot->ndim < AC_RUN_MAX_DIMS ? ot->ndim : AC_RUN_MAX_DIMS;
        memcpy(outs[o].shape, ot->dims, sizeof(int64_t) * (size_t)outs[o].ndim);
        outs[o].shape[0] = n;
        outs[o].data = (ac_bytes){(const uint8_t *)(out + off), sizeof(float) * po * (size_t)n};
        off += po * (size_t)n;
    }
    rc = ac_run_outputs_encode(outs, g->noutputs, partial, plen, err);
done:
    free(x);
    free(out);
    free(outs);
    ac_payload_storage_free(&st);
    return rc;
}

int ac_worker_eval_run(ac_worker_eval *w, const ac_task *task, const ac_worker_hooks *hooks, ac_result *res,
                       uint8_t **partial, uint8_t missing[AC_HASH_BYTES])
{
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    res->key = task->key;
    *partial = NULL;
    size_t plen = 0;
    ac_err err = {0};
    int rc = 0;
    batch_ctx bc = {.hooks = hooks, .begin = task->begin, .end = task->end};
    ac_runner *r = NULL;
    if (task->kind == AC_TASK_NOOP)
        goto done;
    if (task->kind < AC_TASK_CALIB || task->kind > AC_TASK_RUN) {
        rc = ac_err_set(&err, AC_E_INVALID, "task kind %d: not calib (1), eval (2), noop (3) or run (4)",
                        (int)task->kind);
        goto done;
    }
    task_data d = {0};
    rc = resolve(w, task, &d, missing, &err);
    if (rc == AC_CACHE_MISSING)
        return AC_CACHE_MISSING;
    if (rc)
        goto done;
    if (task->kind != AC_TASK_CALIB && w->calib_exec) {
        /* A job calibrates first, then evaluates: the calibration executor
         * (one buffer per tensor, hundreds of MB for an ImageNet net) is not
         * kept through the evaluations. */
        ac_exec_destroy(&w->calib_exec);
        w->calib_graph = 0;
    }
    if (task->kind == AC_TASK_RUN) {
        rc = run_inline(w, task, &d, &bc, partial, &plen, &err);
        goto done;
    }
    r = ac_runner_new(d.g, 0, d.ds, &err);
    if (!r) {
        rc = -1;
        goto done;
    }
    rc = task->kind == AC_TASK_CALIB ? run_calib(w, task, &d, r, &bc, partial, &plen, &err)
                                     : run_eval(w, task, &d, r, &bc, partial, &plen, &err);
done:
    ac_runner_destroy(&r);
    res->seconds = now_s() - t0;
    if (bc.cancelled) {
        res->status = AC_RESULT_CANCELLED;
        snprintf(res->error, sizeof res->error, "cancelled");
    } else if (rc) {
        res->status = AC_RESULT_ERROR;
        snprintf(res->error, sizeof res->error, "%.511s", err.msg[0] ? err.msg : "task failed");
    } else {
        res->status = AC_RESULT_OK;
        res->partial.data = *partial;
        res->partial.len = plen;
        return 0;
    }
    free(*partial);
    *partial = NULL;
    return 0;
}
