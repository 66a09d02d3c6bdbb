#include "ac_quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ac_calibrate.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_job.h"
#include "ac_outputs.h"
#include "ac_metric.h"
#include "ac_model.h"
#include "ac_plan.h"
#include "ac_qexec.h"
#include "ac_runner.h"
#include "ac_summary.h"

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

/* ---- model and data ------------------------------------------------------------ */

static int load_model(job *j, ac_err *err)
{
    ac_job_model m;
    int rc = ac_job_load_model(j->o, &m, err);
    j->g = m.g;
    j->input = m.input;
    j->out_index = m.out_index;
    j->batch = m.batch;
    return rc;
}

static ac_job_model job_model(const job *j)
{
    return (ac_job_model){.g = j->g, .input = j->input, .out_index = j->out_index, .batch = j->batch};
}

/* ---- calibration ---------------------------------------------------------------- */

/* After each calibration batch: the progress of the pass. */
static int calib_progress(void *ctx, int64_t first, int n, ac_err *err)
{
    ac_progress_update(ctx, first + n);
    (void)err;
    return 0;
}

static int feed_calibration(job *j, ac_calib_collector *c, int64_t nsamples, const char *pass, ac_err *err)
{
    char what[64];
    snprintf(what, sizeof what, "calibration (%s)", pass);
    ac_progress *p = ac_job_progress(j->o, j->t0, what, nsamples, "samples");
    ac_runner_set_callback(j->calib_run, calib_progress, p);
    int rc = ac_runner_calibrate(j->calib_run, j->fp32, c, 0, nsamples, err);
    ac_runner_set_callback(j->calib_run, NULL, NULL);
    ac_progress_destroy(&p);
    return rc;
}

static int calibrate(job *j, ac_err *err)
{
    double t = ac_job_now();
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
    ac_job_say(j->o, j->t0, "calibration: %lld samples of %s, %s thresholds%s", (long long)j->n_calib,
        ac_dataset_source_name(j->calib), ac_th_method_name(j->o->th_method),
        j->o->kl_tune && j->o->th_method == AC_TH_KL ? " + upward tuning" : "");
    if (feed_calibration(j, c, j->n_calib, "range pass", err))
        goto done;
    if (ac_th_method_needs_hist(j->o->th_method)) {
        if (ac_calib_collector_begin_hist(c, err) || feed_calibration(j, c, j->n_calib, "histogram pass", err))
            goto done;
    }
    if (j->o->kl_tune && j->o->th_method == AC_TH_KL) {
        /* TUNE_IMAGES samples, a padded batch when the batch is larger */
        int64_t tune = TUNE_IMAGES < j->n_calib ? TUNE_IMAGES : j->n_calib;
        if (ac_calib_collector_begin_tune(c, j->o->th_method, err) || feed_calibration(j, c, tune, "KL tuning", err))
            goto done;
        j->table = ac_calib_collector_tuned_table(c, &j->tuned_up, err);
    } else {
        j->table = ac_calib_collector_table(c, j->o->th_method, err);
    }
    if (!j->table)
        goto done;
    j->t_calib = ac_job_now() - t;
    ac_job_say(j->o, j->t0, "calibration: %zu tensors in %.2fs%s", ac_calib_table_size(j->table), j->t_calib,
        j->o->kl_tune && j->o->th_method == AC_TH_KL ? "" : "");
    if (j->o->kl_tune && j->o->th_method == AC_TH_KL)
        ac_job_say(j->o, j->t0, "calibration: tuning raised %d of %zu KL thresholds", j->tuned_up, ac_calib_table_size(j->table));
    rc = 0;
done:
    ac_calib_collector_destroy(&c);
    return rc;
}

/* ---- plan ----------------------------------------------------------------------- */

static int build_plan(job *j, ac_err *err)
{
    if (ac_job_split_names(j->o->fp32_layers, &j->fp32_names_buf, j->fp32_names, MAX_FP32_LAYERS,
                           &j->n_fp32_names, "--fp32_layers", err))
        return -1;
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
    ac_job_say(j->o, j->t0, "plan: %d int8 layers, %d fp32 layers%s", j->plan->n_int8, j->plan->n_fp32,
        j->o->per_channel ? " (per-channel shifts)" : "");
    if (j->o->verbose)
        ac_plan_print(j->plan, j->o->log ? j->o->log : stdout);
    return 0;
}

/* ---- scoring -------------------------------------------------------------------- */

static int make_metric(job *j, ac_err *err)
{
    ac_metric_options mo;
    ac_job_model m = job_model(j);
    if (ac_job_metric_options(j->o, &m, j->test, &mo, err))
        return -1;
    j->metric = ac_metric_new(&mo, err);
    if (!j->metric)
        return -1;
    j->fp32_part = ac_metric_partial_new(j->metric, err);
    j->int8_part = ac_metric_partial_new(j->metric, err);
    return j->fp32_part && j->int8_part ? 0 : -1;
}

/* After each test batch: the per-layer agreement of its real samples (when
 * the fp32 model runs too), and the progress. */
typedef struct {
    job *j;
    bool layers;
    ac_progress *progress;
} layer_ctx;

static int after_test_batch(void *ctx, int64_t first, int n, ac_err *err)
{
    layer_ctx *c = ctx;
    if (c->layers)
        ac_layer_acc_add(c->j->acc, c->j->plan, c->j->fp32, c->j->int8, c->j->batch, n);
    ac_progress_update(c->progress, first + n);
    (void)err;
    return 0;
}

static int evaluate(job *j, ac_err *err)
{
    double t = ac_job_now();
    j->n_test = ac_dataset_limit(ac_dataset_count(j->test), j->o->test_iterations, j->batch);
    bool need_fp32 = j->o->fp32_score <= 0 || ac_metric_get_kind(j->metric) != AC_METRIC_CLASSIFY;
    layer_ctx lc = {.j = j, .layers = need_fp32};
    int rc = -1;
    ac_job_say(j->o, j->t0, "scoring: %lld test samples of %s (%s)", (long long)j->n_test, ac_dataset_source_name(j->test),
        ac_metric_kind_name(ac_metric_get_kind(j->metric)));
    /* The loop the workers run too (runner/ac_runner.h): the same batches,
     * padding and labels, so sharded scores equal this one. */
    lc.progress = ac_job_progress(j->o, j->t0, need_fp32 ? "scoring int8 and fp32" : "scoring int8", j->n_test,
                                  "samples");
    ac_runner_set_callback(j->test_run, after_test_batch, &lc);
    ac_runner_exec cand = ac_runner_exec_int8(j->int8), ref = ac_runner_exec_fp32(j->fp32);
    int src = ac_runner_score(j->test_run, &cand, need_fp32 ? &ref : NULL, j->int8_part,
                              need_fp32 && j->o->fp32_score <= 0 ? j->fp32_part : NULL, 0, j->n_test, err);
    ac_progress_destroy(&lc.progress);
    if (src)
        goto done;
    if (ac_metric_score(j->int8_part, &j->int8_res, err))
        goto done;
    if (j->o->fp32_score > 0)
        j->fp32_res.score = j->o->fp32_score;
    else if (ac_metric_score(j->fp32_part, &j->fp32_res, err))
        goto done;
    j->t_test = ac_job_now() - t;
    rc = 0;
done:
    return rc;
}

/* ---- artefacts ------------------------------------------------------------------ */

static int write_artefacts(job *j, ac_quantize_result *res, ac_err *err)
{
    res->elapsed_s = ac_job_now() - j->t0;
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
        .chosen = -1,
        .elapsed_s = res->elapsed_s,
    };
    if (ac_outputs_write(&out, err))
        return -1;
    if (!j->o->quiet)
        ac_summary_print(&out, j->o->log ? j->o->log : stdout);
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
    job j = {.o = o, .t0 = ac_job_now()};
    ac_job_model m;
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
    ac_job_say(j.o, j.t0, "model: %s, %d nodes, input '%s' batch %d", o->model, j.g->nnodes,
               j.g->tensors[j.g->inputs[j.input]].name, j.batch);
    m = job_model(&j);
    j.calib = ac_job_open_data(o, &m, o->calib_image_source, o->calib_lmdb_path, o->calib_idx_images,
                               o->calib_idx_labels, NULL, "calib", err);
    if (!j.calib)
        goto done;
    j.test = ac_job_open_data(o, &m, o->test_image_source, o->test_lmdb_path, o->test_idx_images,
                              o->test_idx_labels, o->test_yolo_labels, "test", err);
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
    ac_job_say(j.o, j.t0, "scores (%s): fp32 %.4f, int8 %.4f, loss %.4f, budget %.4f: %s", res->task, res->fp32_score,
        res->int8_score, res->fp32_score - res->int8_score, o->accept_int8_decay,
        res->met_budget ? "met" : "NOT met");
    if (write_artefacts(&j, res, err))
        goto done;
    rc = 0;
done:
    job_free(&j);
    return rc;
}
