#include "ac_quantize.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_calibrate.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_outputs.h"
#include "ac_metric.h"
#include "ac_model.h"
#include "ac_plan.h"
#include "ac_qexec.h"
#include "ac_runner.h"

#define TUNE_IMAGES 16   /* images scored by the KL tuning step (the reference uses a few) */
#define MAX_FP32_LAYERS 4096

/* Per-layer agreement of int8 with fp32 activations on the test set. */
typedef ac_layer_acc layer_acc;

typedef struct {
    const ac_quantize_options *o;
    double t0;
    ac_graph *g;
    int input;            /* index into g->inputs */
    int out_index;        /* scored output, index into g->outputs */
    int batch;
    ac_dataset *calib, *test;
    ac_exec *fp32;
    ac_calib_table *table;
    ac_plan *plan;
    ac_qexec *int8;
    ac_metric *metric;
    ac_metric_partial *fp32_part, *int8_part;
    ac_metric_result fp32_res, int8_res;
    layer_acc *acc;       /* [g->ntensors] */
    ac_runner *calib_run, *test_run; /* the data loops (batches, padding, labels) */
    char *fp32_names_buf;
    const char *fp32_names[MAX_FP32_LAYERS];
    int n_fp32_names;
    int tuned_up;
    int64_t n_calib, n_test;
    double t_calib, t_test;
} job;

void ac_quantize_options_init(ac_quantize_options *o)
{
    memset(o, 0, sizeof *o);
    o->accept_int8_decay = 0.005;
    o->output_dir = "./autocalib_out";
    o->th_method = AC_TH_KL;
    o->kl_tune = true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void say(const job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const job *j, const char *fmt, ...)
{
    if (j->o->quiet)
        return;
    FILE *f = j->o->log ? j->o->log : stdout;
    fprintf(f, "[%7.2fs] ", now_s() - j->t0);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

/* ---- model and data ------------------------------------------------------------ */

static int find_io(const ac_graph *g, int n, const int *idx, const char *name, const char *what, ac_err *err)
{
    if (!name || !*name)
        return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(g->tensors[idx[i]].name, name))
            return i;
    return -ac_err_set(err, AC_E_INVALID, "--%s_data_name '%s': the model has no such %s", what, name, what);
}

static int load_model(job *j, ac_err *err)
{
    ac_model_options mo = {.weights = j->o->weights, .input_shapes = j->o->input_data_shape};
    j->g = ac_model_load(j->o->model, &mo, NULL, err);
    if (!j->g)
        return -1;
    j->input = find_io(j->g, j->g->ninputs, j->g->inputs, j->o->input_data_name, "input", err);
    j->out_index = find_io(j->g, j->g->noutputs, j->g->outputs, j->o->output_data_name, "output", err);
    if (j->input < 0 || j->out_index < 0)
        return -1;
    if (j->g->ninputs != 1)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: models with %d inputs are not supported yet (one data input)",
                          j->o->model, j->g->ninputs);
    const ac_tensor *in = &j->g->tensors[j->g->inputs[j->input]];
    if (in->dtype != AC_DT_F32 || in->ndim < 2)
        return ac_err_set(err, AC_E_UNSUPPORTED, "input '%s': need a float32 tensor with a batch dim", in->name);
    j->batch = (int)in->dims[0];
    return 0;
}

/* The sample layout the model input expects (shared with the workers: it also
 * decides the dataset's content hash). */
static ac_dataset_opts data_opts(const job *j)
{
    return ac_runner_data_opts(j->g, j->input, j->o->preprocess, j->o->threads);
}

static ac_dataset *open_data(const job *j, const char *images, const char *lmdb, const char *idx_images,
                             const char *idx_labels, const char *what, ac_err *err)
{
    ac_dataset_opts d = data_opts(j);
    /* Our LMDBs hold tensors that were preprocessed when they were written. */
    if (lmdb)
        d.preprocess = NULL;
    int given = (images != NULL) + (lmdb != NULL) + (idx_images != NULL);
    if (given != 1) {
        ac_err_set(err, AC_E_INVALID,
                   given ? "give one %s source (--%s_image_source, --%s_lmdb_path or --%s_idx_images), not several"
                         : "no %s data: give --%s_image_source, --%s_lmdb_path or --%s_idx_images",
                   what, what, what, what);
        return NULL;
    }
    ac_dataset *ds = idx_images ? ac_dataset_open_idx(idx_images, idx_labels, &d, err)
                                : ac_dataset_open(images ? images : lmdb, &d, err);
    if (!ds)
        return NULL;
    if (ac_runner_check_data(j->g, j->input, ds, what, err))
        ac_dataset_destroy(&ds);
    return ds;
}

/* ---- calibration ---------------------------------------------------------------- */

static int feed_calibration(job *j, ac_calib_collector *c, int64_t nsamples, ac_err *err)
{
    return ac_runner_calibrate(j->calib_run, j->fp32, c, 0, nsamples, err);
}

static int calibrate(job *j, ac_err *err)
{
    double t = now_s();
    int64_t count = ac_dataset_count(j->calib);
    j->n_calib = ac_dataset_limit(count, j->o->calib_iterations, j->batch);
    /* Statistics use whole batches only, so no sample is counted twice. */
    j->n_calib -= j->n_calib % j->batch;
    if (j->n_calib <= 0)
        return ac_err_set(err, AC_E_INVALID, "calibration data %s: %lld samples, fewer than one batch of %d",
                          ac_dataset_source_name(j->calib), (long long)count, j->batch);
    ac_calib_collector *c = ac_calib_collector_new(j->g, 0, err);
    if (!c)
        return -1;
    int rc = -1;
    say(j, "calibration: %lld samples of %s, %s thresholds%s", (long long)j->n_calib,
        ac_dataset_source_name(j->calib), ac_th_method_name(j->o->th_method),
        j->o->kl_tune && j->o->th_method == AC_TH_KL ? " + upward tuning" : "");
    if (feed_calibration(j, c, j->n_calib, err))
        goto done;
    if (ac_th_method_needs_hist(j->o->th_method)) {
        if (ac_calib_collector_begin_hist(c, err) || feed_calibration(j, c, j->n_calib, err))
            goto done;
    }
    if (j->o->kl_tune && j->o->th_method == AC_TH_KL) {
        int64_t tune = TUNE_IMAGES < j->n_calib ? TUNE_IMAGES : j->n_calib;
        tune = tune < j->batch ? j->batch : tune - tune % j->batch;
        if (ac_calib_collector_begin_tune(c, j->o->th_method, err) || feed_calibration(j, c, tune, err))
            goto done;
        j->table = ac_calib_collector_tuned_table(c, &j->tuned_up, err);
    } else {
        j->table = ac_calib_collector_table(c, j->o->th_method, err);
    }
    if (!j->table)
        goto done;
    j->t_calib = now_s() - t;
    say(j, "calibration: %zu tensors in %.2fs%s", ac_calib_table_size(j->table), j->t_calib,
        j->o->kl_tune && j->o->th_method == AC_TH_KL ? "" : "");
    if (j->o->kl_tune && j->o->th_method == AC_TH_KL)
        say(j, "calibration: tuning raised %d of %zu KL thresholds", j->tuned_up, ac_calib_table_size(j->table));
    rc = 0;
done:
    ac_calib_collector_destroy(&c);
    return rc;
}

/* ---- plan ----------------------------------------------------------------------- */

static int build_plan(job *j, ac_err *err)
{
    if (j->o->fp32_layers && *j->o->fp32_layers) {
        j->fp32_names_buf = strdup(j->o->fp32_layers);
        if (!j->fp32_names_buf)
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        for (char *tok = strtok(j->fp32_names_buf, ","); tok; tok = strtok(NULL, ",")) {
            while (*tok == ' ')
                tok++;
            if (!*tok)
                continue;
            if (j->n_fp32_names >= MAX_FP32_LAYERS)
                return ac_err_set(err, AC_E_INVALID, "--fp32_layers: more than %d names", MAX_FP32_LAYERS);
            j->fp32_names[j->n_fp32_names++] = tok;
        }
    }
    ac_quant_options qo = {.per_channel = j->o->per_channel,
                           .accuracy_opt = j->o->accuracy_opt,
                           .first_conv_fp32 = j->o->first_conv_fp32,
                           .fp32_layers = j->fp32_names,
                           .n_fp32_layers = j->n_fp32_names};
    j->plan = ac_plan_build(j->g, j->table, &qo, err);
    if (!j->plan) {
        if (err && strstr(err->msg, "fp32_layers") == NULL && j->n_fp32_names)
            ac_err_prefix(err, "--fp32_layers: ");
        return -1;
    }
    say(j, "plan: %d int8 layers, %d fp32 layers%s", j->plan->n_int8, j->plan->n_fp32,
        j->o->per_channel ? " (per-channel shifts)" : "");
    if (j->o->verbose)
        ac_plan_print(j->plan, j->o->log ? j->o->log : stdout);
    return 0;
}

/* ---- scoring -------------------------------------------------------------------- */

static int make_metric(job *j, ac_err *err)
{
    const ac_labels *labels = ac_dataset_labels(j->test);
    const char *task = j->o->task;
    if (!task || !*task)
        task = labels && ac_labels_kind(labels) == AC_LABEL_CLASS ? "classify" : "similarity";
    ac_metric_options mo;
    if (!strcmp(task, "classify")) {
        if (!labels || ac_labels_kind(labels) != AC_LABEL_CLASS)
            return ac_err_set(err, AC_E_INVALID, "--task classify: the test data %s has no class labels",
                              ac_dataset_source_name(j->test));
        ac_metric_options_init(&mo, AC_METRIC_CLASSIFY);
    } else if (!strcmp(task, "similarity")) {
        ac_metric_options_init(&mo, AC_METRIC_SIMILARITY);
        const ac_tensor *out = &j->g->tensors[j->g->outputs[j->out_index]];
        mo.classifier = out->ndim == 2 && out->dims[1] > 1;
    } else if (!strcmp(task, "detect")) {
        /* Without a decoder configuration option yet, detections are scored
         * against the fp32 model's own (SSD-style boxes + scores outputs). */
        ac_metric_options_init(&mo, AC_METRIC_DETECT);
        if (ac_detect_config_preset(&mo.detect, j->o->detect_decoder, err))
            return ac_err_prefix(err, "--detect_decoder: ");
    } else {
        return ac_err_set(err, AC_E_INVALID, "--task '%s': must be classify, detect or similarity", task);
    }
    mo.output = j->out_index;
    j->metric = ac_metric_new(&mo, err);
    if (!j->metric)
        return -1;
    j->fp32_part = ac_metric_partial_new(j->metric, err);
    j->int8_part = ac_metric_partial_new(j->metric, err);
    return j->fp32_part && j->int8_part ? 0 : -1;
}

static void accumulate_layers(job *j, int nreal, float *tmp)
{
    ac_layer_acc_add(j->acc, j->plan, j->fp32, j->int8, j->batch, nreal, tmp);
}

/* After each test batch: the per-layer agreement of its real samples. */
typedef struct {
    job *j;
    float *tmp;
} layer_ctx;

static int after_test_batch(void *ctx, int64_t first, int n, ac_err *err)
{
    layer_ctx *c = ctx;
    accumulate_layers(c->j, n, c->tmp);
    (void)first;
    (void)err;
    return 0;
}

static int evaluate(job *j, ac_err *err)
{
    double t = now_s();
    const ac_graph *g = j->g;
    j->n_test = ac_dataset_limit(ac_dataset_count(j->test), j->o->test_iterations, j->batch);
    bool need_fp32 = j->o->fp32_score <= 0 || ac_metric_get_kind(j->metric) != AC_METRIC_CLASSIFY;
    int64_t maxnumel = 0;
    for (int t = 0; t < g->ntensors; t++)
        if (ac_tensor_numel(&g->tensors[t]) > maxnumel)
            maxnumel = ac_tensor_numel(&g->tensors[t]);
    layer_ctx lc = {.j = j, .tmp = malloc(sizeof(float) * (size_t)(maxnumel > 0 ? maxnumel : 1))};
    int rc = -1;
    if (!lc.tmp) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for scoring");
        goto done;
    }
    say(j, "scoring: %lld test samples of %s (%s)", (long long)j->n_test, ac_dataset_source_name(j->test),
        ac_metric_kind_name(ac_metric_get_kind(j->metric)));
    /* The loop the workers run too (runner/ac_runner.h): the same batches,
     * padding and labels, so sharded scores equal this one. */
    ac_runner_set_callback(j->test_run, need_fp32 ? after_test_batch : NULL, &lc);
    ac_runner_exec cand = ac_runner_exec_int8(j->int8), ref = ac_runner_exec_fp32(j->fp32);
    if (ac_runner_score(j->test_run, &cand, need_fp32 ? &ref : NULL, j->int8_part,
                        need_fp32 && j->o->fp32_score <= 0 ? j->fp32_part : NULL, 0, j->n_test, err))
        goto done;
    if (ac_metric_score(j->int8_part, &j->int8_res, err))
        goto done;
    if (j->o->fp32_score > 0)
        j->fp32_res.score = j->o->fp32_score;
    else if (ac_metric_score(j->fp32_part, &j->fp32_res, err))
        goto done;
    j->t_test = now_s() - t;
    rc = 0;
done:
    free(lc.tmp);
    return rc;
}

/* ---- artefacts ------------------------------------------------------------------ */

static int write_artefacts(job *j, ac_quantize_result *res, ac_err *err)
{
    res->elapsed_s = now_s() - j->t0;
    bool tuned = j->o->kl_tune && j->o->th_method == AC_TH_KL;
    ac_outputs out = {
        .output_dir = j->o->output_dir,
        .model_path = j->o->model,
        .g = j->g,
        .plan = j->plan,
        .task = ac_metric_kind_name(ac_metric_get_kind(j->metric)),
        .fp32_score = j->fp32_res.score,
        .int8_score = j->int8_res.score,
        .accept_decay = j->o->accept_int8_decay,
        .met_budget = j->fp32_res.score - j->int8_res.score <= j->o->accept_int8_decay + 1e-12,
        .fp32_res = j->o->fp32_score > 0 ? NULL : &j->fp32_res,
        .int8_res = &j->int8_res,
        .th_method = ac_th_method_name(j->o->th_method),
        .kl_tune = tuned,
        .per_channel = j->o->per_channel,
        .accuracy_opt = j->o->accuracy_opt,
        .first_conv_fp32 = j->o->first_conv_fp32,
        .fp32_requested = j->fp32_names,
        .n_fp32_requested = j->n_fp32_names,
        .calib_source = ac_dataset_source_name(j->calib),
        .calib_samples = j->n_calib,
        .tuned_thresholds = j->tuned_up,
        .calib_s = j->t_calib,
        .test_source = ac_dataset_source_name(j->test),
        .test_samples = j->n_test,
        .test_s = j->t_test,
        .layers = j->acc,
        .layer_samples = j->n_test,
        .estimated_cost = ac_estimated_cost(j->plan),
        .elapsed_s = res->elapsed_s,
    };
    if (ac_outputs_write(&out, err))
        return -1;
    snprintf(res->output_dir, sizeof res->output_dir, "%s", j->o->output_dir);
    return 0;
}

/* ---- the job -------------------------------------------------------------------- */

static void job_free(job *j)
{
    ac_metric_partial_destroy(&j->fp32_part);
    ac_metric_partial_destroy(&j->int8_part);
    ac_metric_destroy(&j->metric);
    ac_qexec_destroy(&j->int8);
    ac_plan_destroy(&j->plan);
    ac_calib_table_destroy(&j->table);
    ac_exec_destroy(&j->fp32);
    ac_dataset_destroy(&j->calib);
    ac_dataset_destroy(&j->test);
    ac_graph_destroy(&j->g);
    free(j->acc);
    ac_runner_destroy(&j->calib_run);
    ac_runner_destroy(&j->test_run);
    free(j->fp32_names_buf);
}

int ac_quantize_run(const ac_quantize_options *o, ac_quantize_result *res, ac_err *err)
{
    job j = {.o = o, .t0 = now_s()};
    memset(res, 0, sizeof *res);
    int rc = -1;
    if (!o->model) {
        ac_err_set(err, AC_E_INVALID, "--model is required");
        goto done;
    }
    if (o->accept_int8_decay < 0 || o->accept_int8_decay >= 1) {
        ac_err_set(err, AC_E_INVALID, "--accept_int8_decay %g: must be in [0, 1)", o->accept_int8_decay);
        goto done;
    }
    if (load_model(&j, err))
        goto done;
    say(&j, "model: %s, %d nodes, input '%s' batch %d", o->model, j.g->nnodes,
        j.g->tensors[j.g->inputs[j.input]].name, j.batch);
    j.calib = open_data(&j, o->calib_image_source, o->calib_lmdb_path, o->calib_idx_images, o->calib_idx_labels,
                        "calib", err);
    if (!j.calib)
        goto done;
    j.test = open_data(&j, o->test_image_source, o->test_lmdb_path, o->test_idx_images, o->test_idx_labels, "test",
                       err);
    if (!j.test)
        goto done;
    j.acc = calloc((size_t)j.g->ntensors, sizeof *j.acc);
    if (!j.acc) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    j.calib_run = ac_runner_new(j.g, j.input, j.calib, err);
    j.test_run = j.calib_run ? ac_runner_new(j.g, j.input, j.test, err) : NULL;
    if (!j.test_run)
        goto done;
    j.fp32 = ac_exec_new(j.g, err);
    if (!j.fp32)
        goto done;
    ac_exec_set_threads(j.fp32, o->threads);
    if (make_metric(&j, err) || calibrate(&j, err) || build_plan(&j, err))
        goto done;
    j.int8 = ac_qexec_new(j.plan, err);
    if (!j.int8)
        goto done;
    ac_qexec_set_threads(j.int8, o->threads);
    if (evaluate(&j, err))
        goto done;
    res->fp32_score = j.fp32_res.score;
    res->int8_score = j.int8_res.score;
    res->met_budget = res->fp32_score - res->int8_score <= o->accept_int8_decay + 1e-12;
    res->n_fp32_layers = j.plan->n_fp32;
    snprintf(res->task, sizeof res->task, "%s", ac_metric_kind_name(ac_metric_get_kind(j.metric)));
    say(&j, "scores (%s): fp32 %.4f, int8 %.4f, loss %.4f, budget %.4f: %s", res->task, res->fp32_score,
        res->int8_score, res->fp32_score - res->int8_score, o->accept_int8_decay,
        res->met_budget ? "met" : "NOT met");
    if (write_artefacts(&j, res, err))
        goto done;
    rc = 0;
done:
    job_free(&j);
    return rc;
}
