#include "ac_farm_job.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ac_blob.h"
#include "ac_calibrate.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_image.h"
#include "ac_job.h"
#include "ac_metric.h"
#include "ac_model.h"
#include "ac_ops.h"
#include "ac_outputs.h"
#include "ac_payload.h"
#include "ac_plan.h"
#include "ac_json.h"
#include "ac_qexec.h"
#include "ac_remote.h"
#include "ac_runner.h"
#include "ac_search.h"
#include "ac_sha256.h"
#include "ac_summary.h"

#define TUNE_IMAGES 16        /* as the single-process job */
#define MAX_NAMES 4096
#define JOURNAL_NAME "journal.acj"

typedef struct {
    uint8_t *bytes;
    size_t len;
    uint8_t hash[AC_HASH_BYTES];
    char local[sizeof(((ac_task *)0)->data_path)]; /* data_path for workers sharing this file system */
} blob;

/* What the report keeps of each search candidate (parallel to the search's list). */
typedef struct {
    int shards;
    double elapsed_s;
    char error[160];
    ac_metric_result result; /* the details of the candidate's score */
    bool has_result;
} cand_info;

typedef struct {
    const ac_farm_job_options *o;
    ac_farm_client *client;
    double t0;
    char job[AC_JOB_ID_MAX];
    ac_graph *g;
    int input, out_index, batch;
    ac_dataset *calib, *test;
    ac_dataset_opts dopt;
    blob model, calib_blob, test_blob;
    int64_t n_calib, n_test, n_subset;
    ac_calib_table *tables[AC_TH_METHOD_COUNT];
    int tuned_up;
    double t_calib, t_test;
    ac_metric *metric;
    ac_metric_options mopt;
    /* Subset rounds (the screen, auto mode's probes) score by the mean
     * cosine of every output against the fp32 model's: a continuous measure
     * that tells apart candidates a few hundred samples of top-1 cannot. */
    ac_metric *rank_metric;
    ac_metric_options rank_mopt;
    ac_metric_result fp32_res;
    bool have_fp32_res;
    double fp32_score;
    uint32_t round;       /* task key round: one per batch of submitted tasks */
    uint32_t next_cand;   /* task key candidate ids, in submission order */
    ac_search_result *search;
    cand_info *info;
    int ninfo;
    int failed_tasks;
    int cancelled_tasks;  /* tasks of candidates stopped early from a bound */
    bool timed_out;
    FILE *journal;
    char journal_path[PATH_MAX + 64];
    /* journaled evaluations read back on --resume */
    char **jkeys;
    double *jscore;
    int *jfailed, njournal;
    char *base_names_buf;
    const char *base_names[MAX_NAMES];
    int n_base_names;
    ac_remote *remote;     /* remote test mode: the client scores the candidates */
    int64_t remote_served; /* candidates offered to the client so far (their ids) */
} fjob;

void ac_farm_job_options_init(ac_farm_job_options *o)
{
    memset(o, 0, sizeof *o);
    ac_quantize_options_init(&o->q);
    o->workers = 1;
}

/* What scores the candidates, for logs and the report. */
static const char *job_task(const fjob *j)
{
    return j->remote ? "remote" : ac_metric_kind_name(j->mopt.kind);
}

/* ---- setup: model, data, blobs ------------------------------------------------- */

static int load_model(fjob *j, ac_err *err)
{
    ac_job_model m;
    int rc = ac_job_load_model(&j->o->q, &m, err);
    j->g = m.g;
    j->input = m.input;
    j->out_index = m.out_index;
    j->batch = m.batch;
    if (rc)
        return -1;
    /* Workers load ONNX bytes: an ONNX file travels as it is, other formats as
     * their import in ONNX form (ac_model_blob); the hash names those bytes. */
    ac_model_options mo = {.weights = j->o->q.weights, .input_shapes = j->o->q.input_data_shape};
    if (ac_model_blob(j->o->q.model, &mo, &j->model.bytes, &j->model.len, err))
        return -1;
    ac_sha256 s;
    ac_sha256_init(&s);
    ac_sha256_update(&s, j->model.bytes, j->model.len);
    ac_sha256_final(&s, j->model.hash);
    return 0;
}

static ac_job_model job_model(const fjob *j)
{
    return (ac_job_model){.g = j->g, .input = j->input, .out_index = j->out_index, .batch = j->batch};
}

static int open_data(fjob *j, const char *images, const char *lmdb, const char *idx_images, const char *idx_labels,
                     const char *yolo_labels, const char *what, ac_dataset **ds, blob *b, ac_err *err)
{
    ac_job_model m = job_model(j);
    *ds = ac_job_open_data(&j->o->q, &m, images, lmdb, idx_images, idx_labels, yolo_labels, what, err);
    if (!*ds)
        return -1;
    ac_dataset_opts d = j->dopt;
    if (lmdb)
        d.preprocess = NULL; /* our LMDBs hold preprocessed tensors */
    d.yolo_labels = yolo_labels;
    const char *src = images ? images : lmdb ? lmdb : idx_images;
    if (!j->o->local_data) {
        /* Remote workers get the dataset once, as a blob (docs/worker.md §3). */
        if (ac_blob_pack_dataset(src, idx_images ? (idx_labels ? idx_labels : "") : NULL, &d, &b->bytes, &b->len,
                                 b->hash, err))
            return -1;
    } else {
        /* Workers on this machine read the files where they are (data_path);
         * the content hash is the one a packed blob would carry. */
        if (ac_dataset_hash(*ds, b->hash, err))
            return -1;
        /* A path that does not fit a task stays empty: workers then fetch the blob. */
        b->local[0] = '\0';
        char a[PATH_MAX], l[PATH_MAX];
        /* A task names one path; images with a YOLO label folder need two, so
         * they travel as a blob (which carries both). */
        if (!yolo_labels && realpath(src, a)) {
            if (idx_images && idx_labels && realpath(idx_labels, l) && strlen(a) + strlen(l) + 2 <= sizeof b->local) {
                snprintf(b->local, sizeof b->local, "%s|", a);
                strcat(b->local, l);
            } else if (idx_images && !idx_labels && strlen(a) + 2 <= sizeof b->local) {
                snprintf(b->local, sizeof b->local, "%s|", a); /* an idx set without labels (calibration) */
            } else if (!idx_images && strlen(a) < sizeof b->local) {
                memcpy(b->local, a, strlen(a) + 1);
            }
        }
        if (!b->local[0] && ac_blob_pack_dataset(src, idx_images ? (idx_labels ? idx_labels : "") : NULL, &d,
                                                 &b->bytes, &b->len, b->hash, err))
            return -1; /* no path to give: the workers fetch the blob after all */
    }
    return 0;
}

static int upload(fjob *j, const blob *b, ac_err *err)
{
    if (!b->bytes)
        return 0; /* read in place (data_path): an empty blob would only mislead a fetch */
    return ac_farm_client_put_blob(j->client, j->job, b->hash, b->bytes, b->len, err);
}

/* ---- tasks ------------------------------------------------------------------------ */

static ac_task base_task(const fjob *j, ac_task_kind kind, const blob *data, int64_t begin, int64_t end)
{
    ac_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.key.job, sizeof t.key.job, "%s", j->job);
    t.key.round = j->round;
    t.kind = kind;
    memcpy(t.model_hash, j->model.hash, AC_HASH_BYTES);
    memcpy(t.data_hash, data->hash, AC_HASH_BYTES);
    memcpy(t.data_path, data->local, sizeof t.data_path);
    if (j->o->q.input_data_shape)
        snprintf(t.input_shapes, sizeof t.input_shapes, "%s", j->o->q.input_data_shape);
    if (j->dopt.preprocess && data != NULL && !j->o->q.calib_lmdb_path && data == &j->calib_blob)
        snprintf(t.preprocess, sizeof t.preprocess, "%s", j->dopt.preprocess);
    if (j->dopt.preprocess && data == &j->test_blob && !j->o->q.test_lmdb_path)
        snprintf(t.preprocess, sizeof t.preprocess, "%s", j->dopt.preprocess);
    t.begin = begin;
    t.end = end;
    t.batch = j->batch;
    return t;
}

/* Batches per shard: fixed (--shard_batches, default 8), so that partial
 * scores merge in the same grouping on any farm. */
static int shard_batches(const fjob *j)
{
    return j->o->shard_batches > 0 ? j->o->shard_batches : 8;
}

/* Batches per shard of a calibration pass whose statistics merge exactly
 * (ranges, histogram counts): the grouping cannot change them, so the pass
 * is cut to keep every worker busy, at most shard_batches per shard (each
 * partial carries every tensor's histogram). */
static int calib_shard_batches(const fjob *j, int64_t n)
{
    const int64_t batches = (n + j->batch - 1) / j->batch;
    const int64_t workers = j->o->workers > 0 ? j->o->workers : 1;
    const int64_t per = (batches + workers - 1) / workers;
    return per < 1 ? 1 : per < shard_batches(j) ? (int)per : shard_batches(j);
}

/* Shards: [0, n) in pieces of per_batches whole batches (the last one may be short). */
static int shard_count_of(const fjob *j, int64_t n, int per_batches)
{
    int64_t per = (int64_t)per_batches * j->batch;
    return (int)((n + per - 1) / per);
}

static void shard_range_of(const fjob *j, int64_t n, int per_batches, int s, int64_t *b, int64_t *e)
{
    int64_t per = (int64_t)per_batches * j->batch;
    *b = s * per;
    *e = *b + per < n ? *b + per : n;
}

static int shard_count(const fjob *j, int64_t n)
{
    return shard_count_of(j, n, shard_batches(j));
}

static void shard_range(const fjob *j, int64_t n, int s, int64_t *b, int64_t *e)
{
    shard_range_of(j, n, shard_batches(j), s, b, e);
}

/* How many candidates the farm can evaluate side by side without slowing
 * each other: workers beyond one full-set candidate's shards. Each split
 * point of a search round is a candidate, and one more costs a whole
 * evaluation when the shards of one already keep every worker busy. */
static int side_by_side(const fjob *j)
{
    int workers = j->o->workers > 0 ? j->o->workers : 1;
    int shards = shard_count(j, j->n_test);
    int n = shards > 0 ? workers / shards : workers;
    return n > 1 ? n : 1;
}

static double time_left(const fjob *j)
{
    if (j->o->max_search_seconds <= 0)
        return 0;
    double left = j->o->max_search_seconds - (ac_job_now() - j->t0);
    return left > 0.001 ? left : 0.001;
}

/* Early decision in pass/fail rounds: the partials of each candidate that came
 * in so far, merged as they arrive (merging is exact in any order; the score
 * is still computed from the shards merged in shard order), and whether its
 * score bound already failed the budget. */
typedef struct {
    const fjob *j;
    const ac_eval_round *round;
    int64_t nsamples;             /* each candidate's samples in all */
    int *task_cand;               /* per task: its candidate (index into the round) */
    int *first_task;              /* per candidate: its tasks are [first_task, first_task + nshards) */
    int nshards;
    ac_metric_partial **seen;     /* per candidate, NULL: no bound is kept */
    int *received;                /* per candidate: results in so far */
    bool *stopped;
} bound_ctx;

/* After each result: a candidate whose final score cannot meet the budget any
 * more is stopped and its other tasks cancelled. Only a bound that fails
 * stops it, so a candidate that would pass always runs to the end. */
static int bound_progress(void *ctx, int done, int total, int index, const ac_farm_outcome *o, int *cancel)
{
    bound_ctx *b = ctx;
    int i = b->task_cand[index];
    (void)done;
    (void)total;
    if (i < 0 || b->stopped[i])
        return 0;
    /* The last result decides a candidate in full: that is no early stop. */
    if (++b->received[i] >= b->nshards || !b->seen[i] || o->status != AC_RESULT_OK)
        return 0;
    ac_metric_partial *sp = NULL;
    ac_err e = {0};
    if (ac_metric_partial_decode(b->j->metric, o->partial, o->partial_len, &sp, &e) ||
        ac_metric_partial_merge(b->seen[i], sp, &e)) {
        /* no more bounds for it: the merge in shard order will report the fault */
        ac_metric_partial_destroy(&sp);
        ac_metric_partial_destroy(&b->seen[i]);
        return 0;
    }
    ac_metric_partial_destroy(&sp);
    double bound;
    if (!ac_metric_score_bound(b->seen[i], b->nsamples, &bound) || ac_search_passes(b->round->search, bound))
        return 0;
    b->stopped[i] = true;
    int k = 0;
    for (int s = 0; s < b->nshards; s++)
        cancel[k++] = b->first_task[i] + s;
    return k;
}

/* What the farm client calls after each result: the phase's progress, then
 * the early decisions of a pass/fail round. */
typedef struct {
    ac_progress *progress;
    bound_ctx *bounds;
} run_ctx;

static int run_progress(void *ctx, int done, int total, int index, const ac_farm_outcome *o, int *cancel)
{
    run_ctx *r = ctx;
    ac_progress_update(r->progress, done);
    return r->bounds ? bound_progress(r->bounds, done, total, index, o, cancel) : 0;
}

/* what: the phase, shown with a progress bar or lines (NULL: not shown). */
static int run_tasks_bounded(fjob *j, const char *what, const ac_task *tasks, int n, ac_farm_outcome *out,
                             bound_ctx *b, ac_err *err)
{
    run_ctx rc = {.progress = what ? ac_job_progress(&j->o->q, j->t0, what, n, "tasks") : NULL, .bounds = b};
    int failed = ac_farm_client_run(j->client, j->job, tasks, n, out, time_left(j), run_progress, &rc, err);
    ac_progress_destroy(&rc.progress);
    if (failed)
        return -1;
    for (int i = 0; i < n; i++) {
        if (out[i].status == AC_RESULT_ERROR)
            j->failed_tasks++;
        if (out[i].status != AC_RESULT_CANCELLED)
            continue;
        if (b && b->task_cand[i] >= 0 && b->stopped[b->task_cand[i]])
            j->cancelled_tasks++; /* decided from the bound */
        else
            j->timed_out = true;
    }
    return 0;
}

static int run_tasks(fjob *j, const char *what, const ac_task *tasks, int n, ac_farm_outcome *out, ac_err *err)
{
    return run_tasks_bounded(j, what, tasks, n, out, NULL, err);
}

/* ---- calibration on the farm -------------------------------------------------------- */

/* per_batches: the pass's shard size (its merge decides what may vary). */
static int calib_pass(fjob *j, ac_calib_collector *master, int64_t nsamples, int per_batches, const char *what,
                      ac_err *err)
{
    uint8_t *tpl = NULL, *payload = NULL;
    size_t tlen = 0, plen = 0;
    if (ac_calib_collector_encode_template(master, &tpl, &tlen, err))
        return -1;
    ac_calib_payload cp = {.collector_template = {tpl, tlen}};
    int rc = ac_calib_payload_encode(&cp, &payload, &plen, err);
    free(tpl);
    if (rc)
        return -1;
    int n = shard_count_of(j, nsamples, per_batches);
    ac_task *tasks = calloc((size_t)n, sizeof *tasks);
    ac_farm_outcome *out = calloc((size_t)n, sizeof *out);
    rc = -1;
    if (!tasks || !out) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    j->round++;
    for (int s = 0; s < n; s++) {
        int64_t b, e;
        shard_range_of(j, nsamples, per_batches, s, &b, &e);
        tasks[s] = base_task(j, AC_TASK_CALIB, &j->calib_blob, b, e);
        tasks[s].key.candidate = 0;
        tasks[s].key.shard = (uint32_t)s;
        tasks[s].payload.data = payload;
        tasks[s].payload.len = plen;
    }
    if (run_tasks(j, what, tasks, n, out, err))
        goto done;
    /* Merged in shard order: the statistics do not depend on which worker ran what. */
    for (int s = 0; s < n; s++) {
        if (out[s].status != AC_RESULT_OK) {
            ac_err_set(err, AC_E_IO, "calibration shard %d [%lld, %lld): %s", s, (long long)tasks[s].begin,
                       (long long)tasks[s].end, out[s].error);
            goto done;
        }
        if (ac_calib_collector_merge_encoded(master, out[s].partial, out[s].partial_len, err)) {
            ac_err_prefix(err, "calibration shard %d: ", s);
            goto done;
        }
    }
    rc = 0;
done:
    if (out)
        ac_farm_outcome_free(out, n);
    free(out);
    free(tasks);
    free(payload);
    return rc;
}

static int calibrate(fjob *j, ac_err *err)
{
    double t = ac_job_now();
    const ac_quantize_options *q = &j->o->q;
    int64_t count = ac_dataset_count(j->calib);
    j->n_calib = ac_dataset_limit(count, q->calib_iterations, j->batch);
    j->n_calib -= j->n_calib % j->batch;
    if (j->n_calib <= 0)
        return ac_err_set(err, AC_E_INVALID, "calibration data %s: %lld samples, fewer than one batch of %d",
                          ac_dataset_source_name(j->calib), (long long)count, j->batch);
    const int per = calib_shard_batches(j, j->n_calib);
    ac_job_say(&j->o->q, j->t0, "calibration: %lld samples in %d shard(s) on the farm (range, histogram, KL tuning passes)",
        (long long)j->n_calib, shard_count_of(j, j->n_calib, per));
    ac_calib_collector *c = ac_calib_collector_new(j->g, 0, err);
    if (!c)
        return -1;
    int rc = -1;
    if (calib_pass(j, c, j->n_calib, per, "calibration (range pass)", err) || ac_calib_collector_begin_hist(c, err) ||
        calib_pass(j, c, j->n_calib, per, "calibration (histogram pass)", err))
        goto done;
    /* Every method's table comes from the same merged statistics. */
    for (int m = 0; m < AC_TH_METHOD_COUNT; m++) {
        j->tables[m] = ac_calib_collector_table(c, (ac_th_method)m, err);
        if (!j->tables[m])
            goto done;
    }
    if (q->kl_tune) {
        /* TUNE_IMAGES samples, a padded batch when the batch is larger */
        int64_t tune = TUNE_IMAGES < j->n_calib ? TUNE_IMAGES : j->n_calib;
        if (ac_calib_collector_begin_tune(c, AC_TH_KL, err) || calib_pass(j, c, tune, shard_batches(j), "calibration (KL tuning)", err))
            goto done;
        ac_calib_table_destroy(&j->tables[AC_TH_KL]);
        j->tables[AC_TH_KL] = ac_calib_collector_tuned_table(c, &j->tuned_up, err);
        if (!j->tables[AC_TH_KL])
            goto done;
    }
    j->t_calib = ac_job_now() - t;
    ac_job_say(&j->o->q, j->t0, "calibration: %zu tensors in %.2fs%s", ac_calib_table_size(j->tables[AC_TH_KL]), j->t_calib,
        q->kl_tune ? "" : " (no KL tuning)");
    rc = 0;
done:
    ac_calib_collector_destroy(&c);
    return rc;
}

/* ---- scoring on the farm ------------------------------------------------------------ */

static int make_metric(fjob *j, ac_err *err)
{
    ac_job_model m = job_model(j);
    ac_quantize_options q = j->o->q;
    if (j->remote)
        q.task = "similarity"; /* only for the per-layer statistics: the client scores */
    if (ac_job_metric_options(&q, &m, j->test, &j->mopt, err))
        return -1;
    j->mopt.output = j->out_index;
    j->metric = ac_metric_new(&j->mopt, err);
    if (!j->metric)
        return -1;
    ac_metric_options_init(&j->rank_mopt, AC_METRIC_SIMILARITY);
    j->rank_mopt.output = j->out_index;
    j->rank_mopt.classifier = 0;
    j->rank_metric = ac_metric_new(&j->rank_mopt, err);
    return j->rank_metric ? 0 : -1;
}

/* The metric of a round: the job's, or the ranking cosine on the subset. */
static const ac_metric *round_metric(const fjob *j, bool subset)
{
    return subset && !j->remote ? j->rank_metric : j->metric;
}

/* Payload of one candidate (or of the fp32 reference when c is NULL),
 * scored by the subset's ranking metric when subset. */
static int eval_payload(const fjob *j, const ac_candidate *c, bool subset, uint8_t **buf, size_t *len, ac_err *err)
{
    const ac_metric_options *mo = subset ? &j->rank_mopt : &j->mopt;
    ac_eval_payload p;
    memset(&p, 0, sizeof p);
    p.metric_kind = (int32_t)mo->kind;
    p.metric_output = mo->output;
    p.metric_topk = mo->topk;
    p.metric_classifier = mo->classifier;
    p.need_reference = mo->kind != AC_METRIC_CLASSIFY;
    if (mo->kind == AC_METRIC_DETECT && j->o->q.detect_decoder)
        snprintf(p.detect_preset, sizeof p.detect_preset, "%s", j->o->q.detect_decoder);
    ac_payload_range *ranges = NULL;
    const char **names = NULL;
    if (!c) {
        p.fp32_reference = true;
    } else {
        const ac_calib_table *t = j->tables[c->method];
        size_t n = ac_calib_table_size(t);
        ranges = calloc(n ? n : 1, sizeof *ranges);
        names = calloc((size_t)(c->nfp32 + j->n_base_names + 1), sizeof *names);
        if (!ranges || !names) {
            free(ranges);
            free(names);
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            const ac_calib_entry *e = ac_calib_table_at(t, i);
            ranges[i] = (ac_payload_range){e->name, e->th, e->min, e->max};
        }
        int nn = 0;
        for (int i = 0; i < j->n_base_names; i++)
            names[nn++] = j->base_names[i];
        for (int i = 0; i < c->nfp32; i++)
            names[nn++] = j->g->nodes[c->fp32_nodes[i]].name;
        p.nranges = (int32_t)n;
        p.ranges = ranges;
        p.per_channel = c->per_channel;
        p.accuracy_opt = c->accuracy_opt;
        p.first_conv_fp32 = c->first_conv_fp32;
        p.nfp32 = nn;
        p.fp32_layers = names;
    }
    int rc = ac_eval_payload_encode(&p, buf, len, err);
    free(ranges);
    free(names);
    return rc;
}

/* The plan a candidate describes, built here for its cost and the final artefacts. */
/* The candidate's plan on graph g (j->g, or j->g at another batch). */
static ac_plan *candidate_plan_on(const fjob *j, const ac_graph *g, const ac_candidate *c, ac_err *err)
{
    const char *names[MAX_NAMES];
    int nn = 0;
    for (int i = 0; i < j->n_base_names && nn < MAX_NAMES; i++)
        names[nn++] = j->base_names[i];
    for (int i = 0; i < c->nfp32 && nn < MAX_NAMES; i++)
        names[nn++] = j->g->nodes[c->fp32_nodes[i]].name;
    ac_quant_options qo = {.per_channel = c->per_channel,
                           .accuracy_opt = c->accuracy_opt,
                           .first_conv_fp32 = c->first_conv_fp32,
                           .fp32_layers = names,
                           .n_fp32_layers = nn};
    return ac_plan_build(g, j->tables[c->method], &qo, err);
}

static ac_plan *candidate_plan(const fjob *j, const ac_candidate *c, ac_err *err)
{
    return candidate_plan_on(j, j->g, c, err);
}

/* ---- the journal --------------------------------------------------------------------- */

static void strategy_key(const fjob *j, const ac_candidate *c, bool subset, char *buf, size_t n)
{
    /* Built-in subset scores are cosines ("subset-cos"); a remote client's are its own. */
    int len = snprintf(buf, n, "%s|%s|%d%d%d|", !subset ? "full" : j->remote ? "subset" : "subset-cos",
                       ac_th_method_name(c->method),
                       c->per_channel, c->accuracy_opt, c->first_conv_fp32);
    for (int i = 0; i < c->nfp32 && len < (int)n - 12; i++)
        len += snprintf(buf + len, n - (size_t)len, "%s%d", i ? "," : "", c->fp32_nodes[i]);
}

static int journal_find(const fjob *j, const char *key)
{
    for (int i = 0; i < j->njournal; i++)
        if (!strcmp(j->jkeys[i], key))
            return i;
    return -1;
}

static void journal_write(fjob *j, const char *key, const ac_candidate *c)
{
    if (!j->journal)
        return;
    fprintf(j->journal, "cand %s %d %.17g\n", key, c->failed ? 1 : 0, c->score);
    fflush(j->journal);
    fsync(fileno(j->journal));
}

/* The journal's first line names the job's inputs, so a resume with other
 * inputs starts afresh instead of reusing scores that do not apply. */
static void job_signature(const fjob *j, char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    const uint8_t *hs[3] = {j->model.hash, j->calib_blob.hash, j->test_blob.hash};
    for (int h = 0; h < 3; h++)
        for (int i = 0; i < 8 && k + 2 < n; i++) {
            buf[k++] = hex[hs[h][i] >> 4];
            buf[k++] = hex[hs[h][i] & 15];
        }
    snprintf(buf + k, n - k, "-%lld-%lld-%d-%s-%g", (long long)j->n_calib, (long long)j->n_test, j->batch,
             j->mopt.kind == AC_METRIC_CLASSIFY ? "c" : "s", j->o->q.fp32_score);
}

static int journal_open(fjob *j, ac_err *err)
{
    const char *dir = j->o->q.output_dir;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", dir, strerror(errno));
    snprintf(j->journal_path, sizeof j->journal_path, "%s/" JOURNAL_NAME, dir);
    char sig[256];
    job_signature(j, sig, sizeof sig);
    if (j->o->resume) {
        FILE *f = fopen(j->journal_path, "r");
        char line[8192];
        bool match = false;
        if (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            match = !strncmp(line, "autocalib-journal 1 ", 20) && !strcmp(line + 20, sig);
        }
        while (f && match && fgets(line, sizeof line, f)) {
            char key[4096];
            int failed;
            double score;
            if (sscanf(line, "cand %4095s %d %lf", key, &failed, &score) != 3)
                continue; /* a line cut by a kill: the evaluation runs again */
            char **nk = realloc(j->jkeys, sizeof(char *) * (size_t)(j->njournal + 1));
            double *ns = realloc(j->jscore, sizeof(double) * (size_t)(j->njournal + 1));
            int *nf = realloc(j->jfailed, sizeof(int) * (size_t)(j->njournal + 1));
            if (nk)
                j->jkeys = nk;
            if (ns)
                j->jscore = ns;
            if (nf)
                j->jfailed = nf;
            if (!nk || !ns || !nf)
                break;
            j->jkeys[j->njournal] = strdup(key);
            j->jscore[j->njournal] = score;
            j->jfailed[j->njournal] = failed;
            if (j->jkeys[j->njournal])
                j->njournal++;
        }
        if (f)
            fclose(f);
        ac_job_say(&j->o->q, j->t0, "resume: %d evaluation(s) from %s%s", j->njournal, j->journal_path,
            match ? "" : " (none: no journal of this job)");
        if (match) {
            j->journal = fopen(j->journal_path, "a");
            return j->journal ? 0 : ac_err_set(err, AC_E_IO, "%s: cannot append", j->journal_path);
        }
    }
    j->journal = fopen(j->journal_path, "w");
    if (!j->journal)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", j->journal_path, strerror(errno));
    fprintf(j->journal, "autocalib-journal 1 %s\n", sig);
    fflush(j->journal);
    return 0;
}

/* ---- the evaluator the search calls ------------------------------------------------------ */

static int keep_info(fjob *j, int index, int shards, double seconds, const char *error)
{
    if (index >= j->ninfo) {
        int n = index + 64;
        cand_info *ni = realloc(j->info, sizeof *ni * (size_t)n);
        if (!ni)
            return -1;
        memset(ni + j->ninfo, 0, sizeof *ni * (size_t)(n - j->ninfo));
        j->info = ni;
        j->ninfo = n;
    }
    j->info[index].shards = shards;
    j->info[index].elapsed_s = seconds;
    snprintf(j->info[index].error, sizeof j->info[index].error, "%s", error ? error : "");
    return 0;
}

/* Bounds are kept in pass/fail rounds, for metrics that have one. */
static int bounds_begin(const fjob *j, const ac_eval_round *round, int n, int ntasks_max, int64_t nsamples,
                        int nshards, bound_ctx *b, ac_err *err)
{
    memset(b, 0, sizeof *b);
    if (!round->pass_fail)
        return 0;
    ac_metric_partial *probe = ac_metric_partial_new(j->metric, err);
    double unused;
    if (!probe)
        return -1;
    int has_bound = ac_metric_score_bound(probe, nsamples, &unused);
    ac_metric_partial_destroy(&probe);
    if (!has_bound)
        return 0;
    b->j = j;
    b->round = round;
    b->nsamples = nsamples;
    b->nshards = nshards;
    b->task_cand = malloc(sizeof(int) * (size_t)(ntasks_max > 0 ? ntasks_max : 1));
    b->first_task = calloc((size_t)n, sizeof(int));
    b->seen = calloc((size_t)n, sizeof *b->seen);
    b->received = calloc((size_t)n, sizeof(int));
    b->stopped = calloc((size_t)n, sizeof(bool));
    if (!b->task_cand || !b->first_task || !b->seen || !b->received || !b->stopped)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    for (int t = 0; t < ntasks_max; t++)
        b->task_cand[t] = -1;
    return 0;
}

/* Candidate i's tasks start at task `first` (only with bounds kept). */
static int bounds_add(bound_ctx *b, int i, int first, ac_err *err)
{
    if (!b->seen)
        return 0;
    b->first_task[i] = first;
    for (int s = 0; s < b->nshards; s++)
        b->task_cand[first + s] = i;
    b->seen[i] = ac_metric_partial_new(b->j->metric, err);
    return b->seen[i] ? 0 : -1;
}

static void bounds_end(bound_ctx *b, int n)
{
    for (int i = 0; b->seen && i < n; i++)
        ac_metric_partial_destroy(&b->seen[i]);
    free(b->seen);
    free(b->received);
    free(b->stopped);
    free(b->task_cand);
    free(b->first_task);
    memset(b, 0, sizeof *b);
}

/* ---- remote test mode: the client scores ------------------------------------------- */

/* The candidate as the client sees it (calib.strategy): a JSON object. */
static char *remote_strategy(const fjob *j, const ac_candidate *c, int64_t id, bool subset)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    ac_json js;
    ac_json_init(&js, f);
    ac_json_object_begin(&js);
    ac_json_key(&js, "id");
    ac_json_int(&js, id);
    ac_json_key(&js, "name");
    ac_json_string(&js, c ? c->name : "fp32");
    ac_json_key(&js, "kind");
    ac_json_string(&js, c ? "int8" : "fp32");
    if (c) {
        ac_json_key(&js, "th_method");
        ac_json_string(&js, ac_th_method_name(c->method));
        ac_json_key(&js, "per_channel");
        ac_json_bool(&js, c->per_channel);
        ac_json_key(&js, "accuracy_opt");
        ac_json_bool(&js, c->accuracy_opt);
        ac_json_key(&js, "first_conv_fp32");
        ac_json_bool(&js, c->first_conv_fp32);
        ac_json_key(&js, "fp32_layers");
        ac_json_array_begin(&js);
        for (int i = 0; i < j->n_base_names; i++)
            ac_json_string(&js, j->base_names[i]);
        for (int i = 0; i < c->nfp32; i++)
            ac_json_string(&js, j->g->nodes[c->fp32_nodes[i]].name);
        ac_json_array_end(&js);
        /* a subset probe (fast-mode screen, auto-mode removal probe): the client may score it on part of its data */
        ac_json_key(&js, "subset");
        ac_json_bool(&js, subset);
    }
    ac_json_object_end(&js);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

typedef struct {
    fjob *j;
    uint32_t candidate;    /* task key of the candidate being served */
    const uint8_t *eval;   /* its eval payload (ac_eval_payload) */
    size_t eval_len;
} remote_run_ctx;

/* One client batch on the farm: split into run tasks of whole model batches
 * (about one per worker, at most ~16 MB of samples each), run, and the
 * outputs put back together in sample order. */
static int remote_run(void *ctx, const uint8_t *in, int64_t n, float *const *outs, ac_err *err)
{
    remote_run_ctx *rr = ctx;
    fjob *j = rr->j;
    const ac_graph *g = j->g;
    const ac_tensor *it = &g->tensors[g->inputs[j->input]];
    size_t per = (size_t)(ac_tensor_numel(it) / j->batch) * sizeof(float);
    int workers = j->o->workers > 0 ? j->o->workers : 1;
    int64_t chunk = (n + workers - 1) / workers;
    int64_t cap = (int64_t)((16u << 20) / per);
    if (chunk > cap)
        chunk = cap;
    chunk = (chunk + j->batch - 1) / j->batch * j->batch; /* whole batches: no padding inside */
    if (chunk < 1)
        chunk = j->batch;
    int ntasks = (int)((n + chunk - 1) / chunk);
    ac_task *tasks = calloc((size_t)ntasks, sizeof *tasks);
    uint8_t **payloads = calloc((size_t)ntasks, sizeof *payloads);
    ac_farm_outcome *out = calloc((size_t)ntasks, sizeof *out);
    blob none = {0}; /* the samples travel in the payload */
    int rc = -1;
    if (!tasks || !payloads || !out) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    j->round++;
    for (int k = 0; k < ntasks; k++) {
        int64_t b = (int64_t)k * chunk, m = n - b < chunk ? n - b : chunk;
        ac_run_payload rp = {.eval = {rr->eval, rr->eval_len}, .ndim = it->ndim,
                             .data = {in + (size_t)b * per, (size_t)m * per}};
        memcpy(rp.shape, it->dims, sizeof(int64_t) * (size_t)it->ndim);
        rp.shape[0] = m;
        size_t plen;
        if (ac_run_payload_encode(&rp, &payloads[k], &plen, err))
            goto done;
        tasks[k] = base_task(j, AC_TASK_RUN, &none, 0, m);
        tasks[k].key.candidate = rr->candidate;
        tasks[k].key.shard = (uint32_t)k;
        tasks[k].payload = (ac_bytes){payloads[k], plen};
    }
    if (run_tasks(j, NULL, tasks, ntasks, out, err))
        goto done;
    for (int k = 0; k < ntasks; k++) {
        int64_t b = (int64_t)k * chunk, m = tasks[k].end;
        ac_run_output got[64];
        int32_t ng = 0;
        if (out[k].status != AC_RESULT_OK) {
            ac_err_set(err, AC_E_IO, "run task %d of %d: %s", k + 1, ntasks, out[k].error);
            goto done;
        }
        if (ac_run_outputs_decode(out[k].partial, out[k].partial_len, got, 64, &ng, err))
            goto done;
        if (ng != g->noutputs) {
            ac_err_set(err, AC_E_IO, "run task %d: a worker returned %d outputs, the model has %d", k + 1, (int)ng,
                       g->noutputs);
            goto done;
        }
        for (int o = 0; o < g->noutputs; o++) {
            size_t po = (size_t)(ac_tensor_numel(&g->tensors[g->outputs[o]]) / j->batch);
            if (got[o].shape[0] != m || got[o].data.len != po * (size_t)m * sizeof(float)) {
                ac_err_set(err, AC_E_IO, "run task %d: output %d does not have %lld rows of %zu values", k + 1, o,
                           (long long)m, po);
                goto done;
            }
            memcpy(outs[o] + (size_t)b * po, got[o].data.data, got[o].data.len);
        }
    }
    rc = 0;
done:
    if (out)
        ac_farm_outcome_free(out, ntasks);
    free(out);
    for (int k = 0; payloads && k < ntasks; k++)
        free(payloads[k]);
    free(payloads);
    free(tasks);
    return rc;
}

/* Offers one candidate (c NULL: the fp32 model) to the client and waits for
 * its score; the client's batches run on the farm's workers. */
static int remote_score(fjob *j, const ac_candidate *c, bool subset, double *score, ac_err *err)
{
    int64_t id = j->remote_served++;
    char *strategy = remote_strategy(j, c, id, subset);
    remote_run_ctx rr = {.j = j, .candidate = j->next_cand++};
    uint8_t *eval = NULL;
    int rc = -1;
    if (!strategy) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
    } else if (!eval_payload(j, c, false, &eval, &rr.eval_len, err)) {
        rr.eval = eval;
        ac_remote_exec ex = {remote_run, &rr};
        ac_remote_candidate rc_ = {id, c ? c->name : "fp32", c ? "int8" : "fp32", strategy};
        int64_t deadline = 0;
        if (j->o->max_search_seconds > 0)
            deadline = zclock_mono() + (int64_t)((j->o->max_search_seconds - (ac_job_now() - j->t0)) * 1000.0);
        rc = ac_remote_serve(j->remote, &rc_, &ex, deadline, score, err);
    }
    free(eval);
    free(strategy);
    return rc;
}

static int evaluate(void *ctx, ac_candidate *cands, int n, const ac_eval_round *round, ac_err *err)
{
    fjob *j = ctx;
    bool subset = round->subset;
    int64_t nsamples = subset ? j->n_subset : j->n_test;
    int nshards = shard_count(j, nsamples);
    int first_index = (int)(cands - j->search->cands);
    double t = ac_job_now();
    ac_task *tasks = calloc((size_t)n * (size_t)nshards, sizeof *tasks);
    ac_farm_outcome *out = calloc((size_t)n * (size_t)nshards, sizeof *out);
    uint8_t **payloads = calloc((size_t)n, sizeof *payloads);
    int *todo = calloc((size_t)n, sizeof *todo);
    int rc = -1, ntasks = 0;
    bound_ctx bounds;
    if (bounds_begin(j, round, n, n * nshards, nsamples, nshards, &bounds, err))
        goto done;
    if (!tasks || !out || !payloads || !todo) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    j->round++;
    for (int i = 0; i < n; i++) {
        ac_candidate *c = &cands[i];
        /* Cost from the plan this coordinator builds for the candidate. */
        ac_err perr = {0};
        ac_plan *plan = candidate_plan(j, c, &perr);
        c->cost = plan ? ac_estimated_cost(plan) : INFINITY;
        ac_plan_destroy(&plan);
        char key[4096];
        strategy_key(j, c, subset, key, sizeof key);
        int jr = journal_find(j, key);
        if (jr >= 0) {
            c->evaluated = true;
            c->failed = j->jfailed[jr];
            c->score = j->jscore[jr];
            keep_info(j, first_index + i, 0, 0, "from the journal");
            continue;
        }
        if (j->timed_out || (j->o->max_search_seconds > 0 && ac_job_now() - j->t0 > j->o->max_search_seconds)) {
            j->timed_out = true;
            c->evaluated = true;
            c->failed = true;
            keep_info(j, first_index + i, 0, 0, "not evaluated: --max_search_seconds reached");
            continue;
        }
        if (j->remote) {
            double t1 = ac_job_now();
            ac_err rerr = {0};
            c->evaluated = true;
            if (remote_score(j, c, subset, &c->score, &rerr)) {
                /* Only the deadline of --max_search_seconds ends a remote
                 * candidate and lets the search go on; anything else ends it. */
                if (!(j->o->max_search_seconds > 0) || zsys_interrupted) {
                    ac_err_set(err, rerr.code ? rerr.code : AC_E_IO, "%s", rerr.msg);
                    goto done;
                }
                j->timed_out = true;
                c->failed = true;
                keep_info(j, first_index + i, 0, ac_job_now() - t1, rerr.msg);
                continue;
            }
            c->failed = false;
            keep_info(j, first_index + i, 0, ac_job_now() - t1, NULL);
            journal_write(j, key, c);
            continue;
        }
        size_t plen = 0;
        if (eval_payload(j, c, subset, &payloads[i], &plen, err))
            goto done;
        uint32_t id = j->next_cand++;
        if (bounds_add(&bounds, i, ntasks, err))
            goto done;
        for (int s = 0; s < nshards; s++) {
            int64_t b, e;
            shard_range(j, nsamples, s, &b, &e);
            ac_task *tk = &tasks[ntasks++];
            *tk = base_task(j, AC_TASK_EVAL, &j->test_blob, b, e);
            tk->key.candidate = id;
            tk->key.shard = (uint32_t)s;
            tk->payload.data = payloads[i];
            tk->payload.len = plen;
        }
        todo[i] = 1;
    }
    char what[96];
    snprintf(what, sizeof what, "round %d: %d candidate(s)%s", cands[0].round, n, subset ? " on the subset" : "");
    if (ntasks && run_tasks_bounded(j, what, tasks, ntasks, out, bounds.seen ? &bounds : NULL, err))
        goto done;
    double elapsed = ac_job_now() - t;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!todo[i])
            continue;
        ac_candidate *c = &cands[i];
        if (bounds.stopped && bounds.stopped[i]) {
            /* Decided from the bound: it fails the budget; its score is never
             * known, so it is not journaled (a resume evaluates it again). */
            k += nshards;
            c->evaluated = c->early_stopped = true;
            c->failed = false;
            c->score = 0;
            keep_info(j, first_index + i, nshards, elapsed, NULL);
            continue;
        }
        const ac_metric *metric = round_metric(j, subset);
        ac_metric_partial *part = ac_metric_partial_new(metric, err);
        if (!part)
            goto done;
        const char *why = NULL;
        for (int s = 0; s < nshards; s++, k++) {
            if (why)
                continue;
            if (out[k].status != AC_RESULT_OK) {
                why = out[k].status == AC_RESULT_CANCELLED ? "cancelled: --max_search_seconds reached" : out[k].error;
                continue;
            }
            ac_metric_partial *sp = NULL;
            ac_err derr = {0};
            if (ac_metric_partial_decode(metric, out[k].partial, out[k].partial_len, &sp, &derr) ||
                ac_metric_partial_merge(part, sp, &derr))
                why = "a worker returned a partial that does not decode or merge";
            ac_metric_partial_destroy(&sp);
        }
        ac_metric_result r;
        ac_err serr = {0};
        c->evaluated = true;
        c->failed = why != NULL || ac_metric_score(part, &r, &serr) != 0;
        c->score = c->failed ? 0 : r.score;
        ac_metric_partial_destroy(&part);
        keep_info(j, first_index + i, nshards, elapsed, why);
        if (!c->failed && first_index + i < j->ninfo) {
            j->info[first_index + i].result = r;
            j->info[first_index + i].has_result = true;
        }
        char key[4096];
        strategy_key(j, c, subset, key, sizeof key);
        if (!j->timed_out || !c->failed)
            journal_write(j, key, c);
    }
    rc = 0;
done:
    if (out)
        ac_farm_outcome_free(out, ntasks);
    free(out);
    free(tasks);
    for (int i = 0; payloads && i < n; i++)
        free(payloads[i]);
    free(payloads);
    free(todo);
    bounds_end(&bounds, n);
    return rc;
}

static int int8_layers(void *ctx, const ac_candidate *c, int *out, int cap)
{
    fjob *j = ctx;
    ac_err err = {0};
    ac_plan *p = candidate_plan(j, c, &err);
    int n = 0;
    for (int i = 0; p && i < j->g->nnodes && n < cap; i++)
        /* Every layer whose int8 form changes values (conv/FC, but also Add, the
         * clamps, pools and tables: with all convs in fp32 their activations are
         * still quantized); layers that only move codes add no error, and an
         * activation fused with its conv goes to fp32 with the conv. */
        if (p->nodes[i].mode == AC_MODE_INT8 && p->nodes[i].kind != AC_Q8_MOVE && ac_plan_fused_producer(p, i) < 0)
            out[n++] = i;
    ac_plan_destroy(&p);
    return n;
}

static const char *layer_name(void *ctx, int node)
{
    const fjob *j = ctx;
    return j->g->nodes[node].name;
}

/* The fp32 score: one evaluation of the fp32 model over the test shards. */
static int fp32_score(fjob *j, ac_err *err)
{
    if (j->o->q.fp32_score > 0) {
        j->fp32_score = j->o->q.fp32_score;
        return 0;
    }
    double t = ac_job_now();
    if (j->remote) { /* the client scores the fp32 model first, once per job */
        int jr = journal_find(j, "fp32");
        if (jr >= 0) {
            j->fp32_score = j->jscore[jr];
            return 0;
        }
        if (remote_score(j, NULL, false, &j->fp32_score, err))
            return -1;
        j->t_test = ac_job_now() - t;
        ac_candidate scored = {.score = j->fp32_score};
        journal_write(j, "fp32", &scored);
        return 0;
    }
    uint8_t *payload = NULL;
    size_t plen = 0;
    if (eval_payload(j, NULL, false, &payload, &plen, err))
        return -1;
    int n = shard_count(j, j->n_test);
    ac_task *tasks = calloc((size_t)n, sizeof *tasks);
    ac_farm_outcome *out = calloc((size_t)n, sizeof *out);
    ac_metric_partial *part = ac_metric_partial_new(j->metric, err);
    int rc = -1;
    if (!tasks || !out || !part)
        goto done;
    j->round++;
    uint32_t id = j->next_cand++;
    for (int s = 0; s < n; s++) {
        int64_t b, e;
        shard_range(j, j->n_test, s, &b, &e);
        tasks[s] = base_task(j, AC_TASK_EVAL, &j->test_blob, b, e);
        tasks[s].key.candidate = id;
        tasks[s].key.shard = (uint32_t)s;
        tasks[s].payload.data = payload;
        tasks[s].payload.len = plen;
    }
    if (run_tasks(j, "fp32 scoring", tasks, n, out, err))
        goto done;
    for (int s = 0; s < n; s++) {
        ac_metric_partial *sp = NULL;
        if (out[s].status != AC_RESULT_OK) {
            ac_err_set(err, AC_E_IO, "fp32 scoring, shard %d: %s", s, out[s].error);
            goto done;
        }
        if (ac_metric_partial_decode(j->metric, out[s].partial, out[s].partial_len, &sp, err) ||
            ac_metric_partial_merge(part, sp, err)) {
            ac_metric_partial_destroy(&sp);
            goto done;
        }
        ac_metric_partial_destroy(&sp);
    }
    if (ac_metric_score(part, &j->fp32_res, err))
        goto done;
    j->have_fp32_res = true;
    j->fp32_score = j->fp32_res.score;
    j->t_test = ac_job_now() - t;
    rc = 0;
done:
    if (out)
        ac_farm_outcome_free(out, n);
    free(out);
    free(tasks);
    free(payload);
    ac_metric_partial_destroy(&part);
    return rc;
}

/* ---- the chosen plan: per-layer statistics here, then the artefacts ----------------------- */

typedef struct {
    ac_layer_acc *acc;
    const ac_plan *plan;
    ac_exec *fp32;
    ac_qexec *int8;
    int batch;
    ac_progress *progress;
} layer_ctx;

static int after_batch(void *ctx, int64_t first, int n, ac_err *err)
{
    layer_ctx *c = ctx;
    ac_layer_acc_add(c->acc, c->plan, c->fp32, c->int8, c->batch, n);
    ac_progress_update(c->progress, first + n);
    (void)err;
    return 0;
}

/* Per-layer cosine/SQNR of the chosen plan on the search's subset, here. */
/* Batch of the per-layer statistics: their executors keep every tensor of a
 * run for the comparison, 186 MB for MobileNetV2 at batch 100, and a batch
 * of 100 over 256 samples ran 44 padding samples. The statistics are sums
 * over the samples in order, the same at any batch. */
#define LAYER_STATS_BATCH 8

static int layer_statistics(fjob *j, const ac_candidate *best, ac_layer_acc *acc, ac_err *err)
{
    /* The graph at the small batch, if the model loads so (else the job's). */
    ac_graph *small = NULL;
    if (j->batch > LAYER_STATS_BATCH) {
        ac_job_model m = job_model(j);
        ac_err e = {0};
        small = ac_job_load_model_batch(&j->o->q, &m, LAYER_STATS_BATCH, &e);
    }
    const ac_graph *g = small ? small : j->g;
    ac_plan *plan = candidate_plan_on(j, g, best, err);
    layer_ctx lc = {.acc = acc, .plan = plan, .batch = (int)g->tensors[g->inputs[j->input]].dims[0]};
    ac_runner *r = plan ? ac_runner_new(g, j->input, j->test, err) : NULL;
    lc.fp32 = r ? ac_exec_new(g, err) : NULL;
    lc.int8 = lc.fp32 ? ac_qexec_new(plan, err) : NULL;
    ac_metric_partial *pa = lc.int8 ? ac_metric_partial_new(j->metric, err) : NULL;
    int rc = -1;
    if (!pa)
        goto done;
    ac_exec_set_threads(lc.fp32, j->o->q.threads);
    ac_qexec_set_threads(lc.int8, j->o->q.threads);
    ac_runner_set_callback(r, after_batch, &lc);
    ac_runner_exec cand = ac_runner_exec_int8(lc.int8), ref = ac_runner_exec_fp32(lc.fp32);
    lc.progress = ac_job_progress(&j->o->q, j->t0, "per-layer statistics of the chosen plan", j->n_subset, "samples");
    rc = ac_runner_score(r, &cand, &ref, pa, NULL, 0, j->n_subset, err);
    ac_progress_destroy(&lc.progress);
done:
    ac_metric_partial_destroy(&pa);
    ac_qexec_destroy(&lc.int8);
    ac_exec_destroy(&lc.fp32);
    ac_runner_destroy(&r);
    ac_plan_destroy(&plan);
    ac_graph_destroy(&small);
    return rc;
}

static int finish(fjob *j, const ac_search_options *so, ac_quantize_result *res, ac_err *err)
{
    ac_search_result *sr = j->search;
    const ac_candidate *best = &sr->cands[sr->best];
    ac_plan *plan = candidate_plan(j, best, err);
    if (!plan)
        return -1;
    ac_layer_acc *acc = calloc((size_t)j->g->ntensors, sizeof *acc);
    ac_outputs_candidate *oc = calloc((size_t)sr->ncands, sizeof *oc);
    int rc = -1;
    if (!acc || !oc) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    if (layer_statistics(j, best, acc, err))
        goto done;
    for (int i = 0; i < sr->ncands; i++) {
        const ac_candidate *c = &sr->cands[i];
        const cand_info *ci = i < j->ninfo ? &j->info[i] : NULL;
        snprintf(oc[i].name, sizeof oc[i].name, "%s", c->name);
        oc[i].th_method = ac_th_method_name(c->method);
        oc[i].per_channel = c->per_channel;
        oc[i].accuracy_opt = c->accuracy_opt;
        oc[i].first_conv_fp32 = c->first_conv_fp32;
        oc[i].evaluated = c->evaluated;
        oc[i].failed = c->failed;
        oc[i].subset = c->subset;
        oc[i].decided_fail = c->decided_fail;
        if (c->evaluated && !c->failed && !c->subset)
            oc[i].decided = !c->decided_fail && ac_search_passes(so, c->score) ? "pass" : "fail";
        oc[i].score = c->score;
        oc[i].cost = c->cost;
        oc[i].round = c->round;
        oc[i].shards = ci ? ci->shards : 0;
        oc[i].elapsed_s = ci ? ci->elapsed_s : 0;
        oc[i].error = ci && ci->error[0] ? ci->error : NULL;
        oc[i].result = ci && ci->has_result && !c->decided_fail ? &ci->result : NULL;
        if (c->nfp32) {
            const char **names = calloc((size_t)c->nfp32, sizeof *names);
            if (names)
                for (int k = 0; k < c->nfp32; k++)
                    names[k] = j->g->nodes[c->fp32_nodes[k]].name;
            oc[i].fp32_layers = names;
            oc[i].nfp32 = names ? c->nfp32 : 0;
        }
    }
    ac_farm_client_stats cs;
    ac_farm_client_get_stats(j->client, &cs);
    res->elapsed_s = ac_job_now() - j->t0;
    ac_outputs out = {
        .output_dir = j->o->q.output_dir,
        .model_path = j->o->q.model,
        .g = j->g,
        .plan = plan,
        .task = job_task(j),
        .fp32_score = j->fp32_score,
        .int8_score = best->score,
        .accept_decay = j->o->q.accept_int8_decay,
        .met_budget = sr->met_budget,
        .fp32_res = j->have_fp32_res ? &j->fp32_res : NULL,
        .int8_res = sr->best < j->ninfo && j->info[sr->best].has_result ? &j->info[sr->best].result : NULL,
        .th_method = ac_th_method_name(best->method),
        .kl_tune = j->o->q.kl_tune && best->method == AC_TH_KL,
        .per_channel = best->per_channel,
        .accuracy_opt = best->accuracy_opt,
        .first_conv_fp32 = best->first_conv_fp32,
        .fp32_requested = j->base_names,
        .n_fp32_requested = j->n_base_names,
        .calib_source = ac_dataset_source_name(j->calib),
        .calib_samples = j->n_calib,
        .tuned_thresholds = j->tuned_up,
        .calib_s = j->t_calib,
        .test_source = j->remote ? "remote client" : ac_dataset_source_name(j->test),
        .test_samples = j->remote ? 0 : j->n_test,
        .test_s = j->t_test,
        .layers = acc,
        .layer_samples = j->n_subset,
        .mode = so->auto_mode ? "auto" : "fast",
        .cands = oc,
        .ncands = sr->ncands,
        .rounds = sr->rounds,
        .evaluations = sr->evaluations,
        .subset_evaluations = sr->subset_evaluations,
        .workers = j->o->workers,
        .requeues = cs.requeued_results,
        .broker_restarts = cs.broker_restarts,
        .failed_tasks = j->failed_tasks,
        .early_stopped = sr->early_stopped,
        .cancelled_tasks = j->cancelled_tasks,
        .chosen = sr->best,
        .estimated_cost = ac_estimated_cost(plan),
        .search_timed_out = j->timed_out,
        .elapsed_s = res->elapsed_s,
    };
    if (j->journal) {
        fclose(j->journal);
        j->journal = NULL;
    }
    if (ac_outputs_write(&out, err))
        goto done;
    if (!j->o->q.quiet) {
        FILE *log = j->o->q.log ? j->o->q.log : stdout;
        if (j->o->q.verbose)
            ac_plan_print(plan, log);
        ac_summary_print(&out, log);
    }
    res->fp32_score = j->fp32_score;
    res->int8_score = best->score;
    res->met_budget = sr->met_budget;
    res->n_fp32_layers = plan->n_fp32;
    snprintf(res->task, sizeof res->task, "%s", job_task(j));
    snprintf(res->output_dir, sizeof res->output_dir, "%s", j->o->q.output_dir);
    rc = 0;
done:
    for (int i = 0; oc && i < sr->ncands; i++)
        free((void *)oc[i].fp32_layers);
    free(oc);
    free(acc);
    ac_plan_destroy(&plan);
    return rc;
}

static void job_free(fjob *j)
{
    if (j->journal)
        fclose(j->journal);
    for (int m = 0; m < AC_TH_METHOD_COUNT; m++)
        ac_calib_table_destroy(&j->tables[m]);
    ac_metric_destroy(&j->metric);
    ac_metric_destroy(&j->rank_metric);
    ac_remote_destroy(&j->remote);
    ac_dataset_destroy(&j->calib);
    ac_dataset_destroy(&j->test);
    ac_graph_destroy(&j->g);
    free(j->model.bytes);
    free(j->calib_blob.bytes);
    free(j->test_blob.bytes);
    if (j->search)
        ac_search_result_free(j->search);
    free(j->search);
    free(j->info);
    for (int i = 0; i < j->njournal; i++)
        free(j->jkeys[i]);
    free(j->jkeys);
    free(j->jscore);
    free(j->jfailed);
    free(j->base_names_buf);
}

static int start_remote(fjob *j, ac_err *err)
{
    const ac_quantize_options *q = &j->o->q;
    if (q->test_image_source || q->test_lmdb_path || q->test_idx_images || q->test_yolo_labels)
        return ac_err_set(err, AC_E_INVALID, "--test_source remote: the client streams the test data; drop the "
                                             "--test_... data options");
    ac_remote_options ro = {.endpoint = j->o->remote_listen,
                            .curve_dir = j->o->remote_curve_dir,
                            .curve_cert = j->o->remote_curve_cert,
                            .model_name = q->model,
                            .test_iterations = q->test_iterations,
                            .log = q->quiet ? NULL : q->log ? q->log : stdout};
    j->remote = ac_remote_new(&ro, j->g, j->input, err);
    return j->remote ? 0 : -1;
}

/* After the artefacts: the client fetches the report (report.json's text). */
static void serve_result(fjob *j)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/report.json", j->o->q.output_dir);
    uint8_t *text = NULL;
    size_t n = 0;
    ac_err e = {0};
    char *report = NULL;
    if (!ac_file_read(path, &text, &n, &e) && (report = malloc(n + 1))) {
        memcpy(report, text, n);
        report[n] = '\0';
    }
    ac_remote_finish(j->remote, report ? report : "{}", j->o->remote_linger > 0 ? j->o->remote_linger : 30.0);
    free(report);
    free(text);
}

static int parse_base_names(fjob *j, ac_err *err)
{
    if (ac_job_split_names(j->o->q.fp32_layers, &j->base_names_buf, j->base_names, MAX_NAMES, &j->n_base_names,
                           "--fp32_layers", err))
        return -1;
    /* An unknown name is the user's error: say so before any work is sent out.
     * Names are node names or output tensor names, as ac_plan_build takes them. */
    for (int i = 0; i < j->n_base_names; i++) {
        bool found = false;
        for (int k = 0; k < j->g->nnodes && !found; k++)
            found = !strcmp(j->g->nodes[k].name, j->base_names[i]) ||
                    !strcmp(j->g->tensors[j->g->nodes[k].outputs[0]].name, j->base_names[i]);
        if (!found)
            return ac_err_set(err, AC_E_INVALID, "--fp32_layers: '%s' is neither a layer nor a layer output of %s",
                              j->base_names[i], j->o->q.model);
    }
    return 0;
}

int ac_farm_job_run(const ac_farm_job_options *o, ac_farm_client *client, ac_quantize_result *res, ac_err *err)
{
    fjob j = {.o = o, .client = client, .t0 = ac_job_now()};
    memset(res, 0, sizeof *res);
    const ac_quantize_options *q = &o->q;
    int rc = -1;
    if (!q->model) {
        ac_err_set(err, AC_E_INVALID, "--model is required");
        goto done;
    }
    if (q->accept_int8_decay < 0 || q->accept_int8_decay >= 1) {
        ac_err_set(err, AC_E_INVALID, "--accept_int8_decay %g: must be in [0, 1)", q->accept_int8_decay);
        goto done;
    }
    if (load_model(&j, err))
        goto done;
    /* Job ids: unique per run, readable in broker status. */
    snprintf(j.job, sizeof j.job, "q-%d-%08x", (int)getpid(), (unsigned)(ac_job_now() * 1000.0));
    j.dopt = ac_runner_data_opts(j.g, j.input, q->preprocess, q->threads);
    if (o->remote_listen && start_remote(&j, err))
        goto done;
    if (open_data(&j, q->calib_image_source, q->calib_lmdb_path, q->calib_idx_images, q->calib_idx_labels, NULL,
                  "calib", &j.calib, &j.calib_blob, err))
        goto done;
    /* Remote mode has no test data here; the calibration data stands in for
     * the per-layer statistics of the report. */
    if (j.remote ? open_data(&j, q->calib_image_source, q->calib_lmdb_path, q->calib_idx_images, q->calib_idx_labels,
                             NULL, "calib", &j.test, &j.test_blob, err)
                 : open_data(&j, q->test_image_source, q->test_lmdb_path, q->test_idx_images, q->test_idx_labels,
                             q->test_yolo_labels, "test", &j.test, &j.test_blob, err))
        goto done;
    if (make_metric(&j, err))
        goto done;
    j.n_test = ac_dataset_limit(ac_dataset_count(j.test), j.remote ? q->calib_iterations : q->test_iterations, j.batch);
    j.n_subset = o->subset_samples > 0 ? o->subset_samples : 256;
    if (j.n_subset > j.n_test)
        j.n_subset = j.n_test;
    ac_job_say(&j.o->q, j.t0, "model: %s, %d nodes, batch %d; job %s; test %lld samples in %d shard(s)", q->model, j.g->nnodes,
        j.batch, j.job, (long long)j.n_test, shard_count(&j, j.n_test));
    if (upload(&j, &j.model, err) || upload(&j, &j.calib_blob, err) || (!j.remote && upload(&j, &j.test_blob, err)))
        goto done;
    if (parse_base_names(&j, err) || journal_open(&j, err) || calibrate(&j, err) || fp32_score(&j, err))
        goto done;
    ac_job_say(&j.o->q, j.t0, "fp32 %s score %.4f; searching (%s mode) for the cheapest plan within %.4f", job_task(&j),
        j.fp32_score, o->auto_calib ? "auto" : "fast", q->accept_int8_decay);
    j.search = calloc(1, sizeof *j.search);
    if (!j.search) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    ac_search_options so = {.fp32_score = j.fp32_score,
                            .accept_decay = q->accept_int8_decay,
                            .auto_mode = o->auto_calib,
                            /* a remote client's subset score is its own metric on
                             * part of its data: no fidelity screen to trust first */
                            .baseline_first = j.remote || o->baseline_first,
                            .parallel = side_by_side(&j),
                            .debug = o->calib_debug,
                            .log = q->log ? q->log : stdout};
    ac_evaluator ev = {evaluate, int8_layers, layer_name, &j};
    /* evaluate() finds a candidate's index from j.search->cands, the list the
     * search is filling. */
    if (ac_search_run(&so, &ev, j.search, err))
        goto done;
    if (j.search->best < 0) {
        ac_err_set(err, AC_E_IO, "the search evaluated no candidate successfully (%d failed task(s))", j.failed_tasks);
        goto done;
    }
    const ac_candidate *best = &j.search->cands[j.search->best];
    ac_job_say(&j.o->q, j.t0,
        "search: %s after %d round(s), %d evaluation(s) (%d stopped early, %d task(s) cancelled): '%s' int8 %.4f "
        "(fp32 %.4f)%s",
        j.search->met_budget ? "budget met" : "budget NOT met", j.search->rounds, j.search->evaluations,
        j.search->early_stopped, j.cancelled_tasks, best->name, best->score, j.fp32_score,
        j.timed_out ? " (--max_search_seconds reached)" : "");
    ac_farm_client_end_job(client, j.job, NULL);
    if (finish(&j, &so, res, err))
        goto done;
    if (j.remote)
        serve_result(&j);
    rc = 0;
done:
    job_free(&j);
    return rc;
}
