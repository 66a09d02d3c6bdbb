#include "ac_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ac_runner {
    const ac_graph *g;
    int input, batch;
    ac_dataset *ds;
    size_t per;              /* floats per sample */
    float *x;                /* [batch * per] */
    ac_metric_label *lab;    /* [batch] */
    float sample_w, sample_h; /* the input's spatial size: the frame of box labels */
    ac_metric_tensor *outs, *refs; /* [g->noutputs] */
    ac_runner_batch_fn fn;
    void *ctx;
    ac_ref_cache *ref_cache;  /* fp32 outputs of earlier batches, or NULL */
    uint64_t ref_key;
    const float **ref_ptrs;   /* [g->noutputs]: this batch's fp32 outputs */
    size_t *ref_elems;        /* [g->noutputs]: floats per sample of each output */
};

ac_dataset_opts ac_runner_data_opts(const ac_graph *g, int input, const char *preprocess, int nthreads)
{
    const ac_tensor *in = &g->tensors[g->inputs[input]];
    ac_dataset_opts d = {.preprocess = preprocess, .nthreads = nthreads};
    if (in->ndim == 4) {
        bool nhwc = in->dims[3] <= 4 && in->dims[1] > 4;
        d.layout = nhwc ? AC_LAYOUT_NHWC : AC_LAYOUT_NCHW;
        d.channels = (int)(nhwc ? in->dims[3] : in->dims[1]);
        d.height = (int)(nhwc ? in->dims[1] : in->dims[2]);
        d.width = (int)(nhwc ? in->dims[2] : in->dims[3]);
    }
    return d;
}

int ac_runner_check_data(const ac_graph *g, int input, ac_dataset *ds, const char *what, ac_err *err)
{
    const ac_tensor *in = &g->tensors[g->inputs[input]];
    size_t want = in->ndim >= 1 && in->dims[0] > 0 ? (size_t)(ac_tensor_numel(in) / in->dims[0]) : 0;
    if (ac_dataset_sample_elems(ds, 0) == want)
        return 0;
    int64_t dims[8];
    int nd = ac_dataset_sample_shape(ds, 0, dims);
    char shape[128] = "";
    size_t len = 0;
    for (int i = 0; i < nd && i < 8 && len < sizeof shape - 24; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i ? "x" : "", (long long)dims[i]);
    return ac_err_set(err, AC_E_INVALID, "%s data %s: samples are %s (%zu values), the model input '%s' needs %zu",
                      what, ac_dataset_source_name(ds), shape, ac_dataset_sample_elems(ds, 0), in->name, want);
}

ac_runner *ac_runner_new(const ac_graph *g, int input, ac_dataset *ds, ac_err *err)
{
    if (input < 0 || input >= g->ninputs) {
        ac_err_set(err, AC_E_INVALID, "runner: input %d out of range (%d inputs)", input, g->ninputs);
        return NULL;
    }
    const ac_tensor *in = &g->tensors[g->inputs[input]];
    if (in->dtype != AC_DT_F32 || in->ndim < 2 || in->dims[0] < 1) {
        ac_err_set(err, AC_E_UNSUPPORTED, "input '%s': need a float32 tensor with a batch dim", in->name);
        return NULL;
    }
    if (ac_runner_check_data(g, input, ds, "the", err))
        return NULL;
    ac_runner *r = calloc(1, sizeof *r);
    if (!r) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    r->g = g;
    r->input = input;
    r->batch = (int)in->dims[0];
    r->ds = ds;
    r->per = ac_dataset_sample_elems(ds, 0);
    ac_dataset_opts shape = ac_runner_data_opts(g, input, NULL, 0);
    r->sample_w = (float)shape.width;
    r->sample_h = (float)shape.height;
    r->x = malloc(sizeof(float) * r->per * (size_t)r->batch);
    r->lab = calloc((size_t)r->batch, sizeof *r->lab);
    r->outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *r->outs);
    r->refs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *r->refs);
    r->ref_ptrs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *r->ref_ptrs);
    r->ref_elems = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *r->ref_elems);
    if (!r->x || !r->lab || !r->outs || !r->refs || !r->ref_ptrs || !r->ref_elems) {
        ac_runner_destroy(&r);
        ac_err_set(err, AC_E_NOMEM, "out of memory for a batch of %d", (int)in->dims[0]);
        return NULL;
    }
    for (int o = 0; o < g->noutputs; o++) {
        const ac_tensor *t = &g->tensors[g->outputs[o]];
        r->ref_elems[o] = t->ndim && t->dims[0] > 0 ? (size_t)(ac_tensor_numel(t) / t->dims[0]) : 0;
    }
    return r;
}

void ac_runner_set_ref_cache(ac_runner *r, ac_ref_cache *c, uint64_t key)
{
    r->ref_cache = c;
    r->ref_key = key;
}

void ac_runner_destroy(ac_runner **p)
{
    if (!p || !*p)
        return;
    ac_runner *r = *p;
    free(r->x);
    free(r->lab);
    free(r->outs);
    free(r->refs);
    free(r->ref_ptrs);
    free(r->ref_elems);
    free(r);
    *p = NULL;
}

void ac_runner_set_callback(ac_runner *r, ac_runner_batch_fn fn, void *ctx)
{
    r->fn = fn;
    r->ctx = ctx;
}

int ac_runner_batch(const ac_runner *r)
{
    return r->batch;
}

const float *ac_runner_input(const ac_runner *r)
{
    return r->x;
}

int ac_runner_read_batch(ac_runner *r, int64_t first, int n, ac_err *err)
{
    if (n < 1 || n > r->batch)
        return ac_err_set(err, AC_E_INTERNAL, "runner: batch of %d samples, the model batch is %d", n, r->batch);
    if (ac_dataset_read(r->ds, 0, first, n, r->x, err))
        return -1;
    for (int i = n; i < r->batch; i++)
        memcpy(r->x + (size_t)i * r->per, r->x + (size_t)(n - 1) * r->per, r->per * sizeof(float));
    return 0;
}

static int check_range(const ac_runner *r, int64_t begin, int64_t end, ac_err *err)
{
    int64_t count = ac_dataset_count(r->ds);
    if (begin < 0 || end < begin || end > count)
        return ac_err_set(err, AC_E_INVALID, "sample range [%lld, %lld) is outside %s (%lld samples)",
                          (long long)begin, (long long)end, ac_dataset_source_name(r->ds), (long long)count);
    return 0;
}

int ac_runner_calibrate(ac_runner *r, ac_exec *fp32, ac_calib_collector *c, int64_t begin, int64_t end, ac_err *err)
{
    if (check_range(r, begin, end, err))
        return -1;
    /* Tensors are observed as their nodes finish: the executor may share buffers. */
    ac_calib_observer *obs = ac_calib_observer_new(c, ac_exec_threads(fp32), err);
    if (!obs)
        return -1;
    ac_exec_set_node_hook(fp32, ac_calib_observer_node, obs);
    int rc = 0;
    for (int64_t first = begin; first < end && !rc; first += r->batch) {
        const void *in[1] = {r->x};
        /* a short last batch is padded; only its real samples are observed */
        const int n = end - first < r->batch ? (int)(end - first) : r->batch;
        ac_calib_observer_set_real(obs, n, r->batch);
        if (ac_runner_read_batch(r, first, n, err) || ac_exec_run(fp32, in, err)) {
            ac_err fin = {0};
            if (ac_calib_observer_finish(obs, &fin) && err)
                *err = fin; /* the observer's reason before the run's */
            rc = -1;
        } else if (r->fn) {
            rc = r->fn(r->ctx, first, n, err);
        }
    }
    ac_exec_set_node_hook(fp32, NULL, NULL);
    if (!rc && ac_calib_observer_finish(obs, err))
        rc = -1;
    ac_calib_observer_destroy(&obs);
    return rc;
}

static void tensor_view(const ac_graph *g, int t, const float *data, int n, ac_metric_tensor *v)
{
    const ac_tensor *ts = &g->tensors[t];
    memset(v, 0, sizeof *v);
    v->data = data;
    v->ndim = ts->ndim;
    for (int d = 0; d < ts->ndim && d < AC_METRIC_MAX_DIMS; d++)
        v->dims[d] = ts->dims[d];
    v->dims[0] = n; /* only the real samples of a padded batch */
}

/* The batch's labels for the metric: class indices, or boxes, which the
 * dataset keeps in pixels of its samples (docs/datasets.md §2), so the metric
 * normalises them by the input's size into the frame detections decode to. */
static int fill_labels(ac_runner *r, int64_t first, int n)
{
    const ac_labels *labels = ac_dataset_labels(r->ds);
    ac_label_kind kind = labels ? ac_labels_kind(labels) : AC_LABEL_NONE;
    if (kind == AC_LABEL_NONE || (kind == AC_LABEL_BOXES && !(r->sample_w > 0 && r->sample_h > 0)))
        return 0;
    for (int i = 0; i < n; i++) {
        ac_metric_label *l = &r->lab[i];
        memset(l, 0, sizeof *l);
        if (kind == AC_LABEL_CLASS) {
            l->cls = ac_labels_class(labels, first + i);
            continue;
        }
        const ac_box *boxes;
        l->cls = -1;
        l->has_boxes = 1;
        l->nboxes = ac_labels_boxes(labels, first + i, &boxes);
        l->boxes = (const ac_metric_box *)boxes; /* same layout (ac_metric_plugin.h) */
        l->img_w = r->sample_w;
        l->img_h = r->sample_h;
    }
    return 1;
}

static int run_int8(void *ctx, const void *const *inputs, ac_err *err)
{
    return ac_qexec_run(ctx, inputs, err);
}

static const float *out_int8(void *ctx, int t)
{
    return ac_qexec_tensor_float(ctx, t);
}

static int run_fp32(void *ctx, const void *const *inputs, ac_err *err)
{
    return ac_exec_run(ctx, inputs, err);
}

static const float *out_fp32(void *ctx, int t)
{
    return ac_exec_tensor(ctx, t);
}

ac_runner_exec ac_runner_exec_int8(ac_qexec *e)
{
    return (ac_runner_exec){.run = run_int8, .output = out_int8, .ctx = e};
}

ac_runner_exec ac_runner_exec_fp32(ac_exec *e)
{
    return (ac_runner_exec){.run = run_fp32, .output = out_fp32, .ctx = e};
}

int ac_runner_score(ac_runner *r, const ac_runner_exec *cand, const ac_runner_exec *ref,
                    ac_metric_partial *cand_part, ac_metric_partial *ref_part, int64_t begin, int64_t end,
                    ac_err *err)
{
    const ac_graph *g = r->g;
    if (check_range(r, begin, end, err))
        return -1;
    if ((cand && !cand_part) || (!ref && ref_part) || (!cand && !ref))
        return ac_err_set(err, AC_E_INTERNAL, "runner: inconsistent executors and partials");
    for (int64_t first = begin; first < end; first += r->batch) {
        int n = (int)(end - first < r->batch ? end - first : r->batch);
        const void *in[1] = {r->x};
        if (ac_runner_read_batch(r, first, n, err))
            return -1;
        if (cand && cand->run(cand->ctx, in, err))
            return -1;
        const float *const *cached = ref && r->ref_cache ? ac_ref_cache_get(r->ref_cache, r->ref_key, first, n) : NULL;
        if (ref && !cached && ref->run(ref->ctx, in, err))
            return -1;
        int has_labels = fill_labels(r, first, n);
        for (int o = 0; o < g->noutputs; o++) {
            int t = g->outputs[o];
            const float *cv = cand ? cand->output(cand->ctx, t) : NULL;
            const float *rv = cached ? cached[o] : ref ? ref->output(ref->ctx, t) : NULL;
            r->ref_ptrs[o] = rv;
            if ((cand && !cv) || (ref && !rv))
                return ac_err_set(err, AC_E_INTERNAL, "output '%s': no float value after the run",
                                  g->tensors[t].name);
            if (cand)
                tensor_view(g, t, cv, n, &r->outs[o]);
            if (ref)
                tensor_view(g, t, rv, n, &r->refs[o]);
        }
        /* Not kept (no room, or out of memory) only costs a later rerun. */
        if (ref && !cached && r->ref_cache)
            (void)ac_ref_cache_put(r->ref_cache, r->ref_key, first, n, g->noutputs, r->ref_ptrs, r->ref_elems);
        if (cand && ac_metric_partial_add(cand_part, first, n, r->outs, g->noutputs, ref ? r->refs : NULL,
                                          ref ? g->noutputs : 0, has_labels ? r->lab : NULL, err))
            return -1;
        if (ref_part && ac_metric_partial_add(ref_part, first, n, r->refs, g->noutputs, r->refs, g->noutputs,
                                              has_labels ? r->lab : NULL, err))
            return -1;
        if (r->fn) {
            int rc = r->fn(r->ctx, first, n, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}
