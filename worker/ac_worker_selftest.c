/* worker selftest: ac_worker_eval on real tasks (the bundled fmnist_plain.onnx
 * and Debian's Fashion-MNIST test set), against the single-process path:
 *  - calibration partials of two shards merged equal one pass (bit for bit),
 *    for the range and the histogram pass;
 *  - eval partials of uneven shards merged give exactly the partial (encoded
 *    bytes) and score of one pass built with the coordinator's functions
 *    (ac_model_load, ac_plan_build, ac_qexec, runner), for an int8 candidate,
 *    an fp32 reference and a similarity metric with need_reference;
 *  - error results: bad payload, unknown fp32 layer, shape mismatch, range,
 *    batch, a calibration range that is not whole batches; missing blobs;
 *  - the plan cache, cache eviction by bytes, the dataset archive (round
 *    trip with the content hash, strict unpacking), data_path use.
 * usage: ac_worker_selftest MODEL.onnx FASHION_MNIST_DIR (exit 77 = skipped) */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ac_blob.h"
#include "ac_model.h"
#include "ac_payload.h"
#include "ac_sha256.h"
#include "ac_worker_eval.h"
#include "ac_check.h"

#define SHAPES "(8,1,28,28)"
#define PREPROCESS "mean_value=72.93,scale=0.011109" /* as autocalib demo */

#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: required: %s (%s)\n", __FILE__, __LINE__, #cond, err.msg); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

typedef struct {
    char model[4096], images[4096], labels[4096];
    uint8_t model_hash[32], data_hash[32];
    uint8_t *model_blob, *data_blob;
    size_t model_len, data_len;
    ac_graph *g;      /* the coordinator's graph (ac_model_load) */
    ac_dataset *ds;   /* the coordinator's dataset */
    ac_worker_cache *cache;
    ac_backend *backend;
    ac_worker_eval *w;
} fixture;

static ac_task base_task(const fixture *f, ac_task_kind kind, int64_t begin, int64_t end)
{
    ac_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.key.job, sizeof t.key.job, "selftest");
    t.key.shard = (uint32_t)begin;
    t.kind = kind;
    memcpy(t.model_hash, f->model_hash, 32);
    memcpy(t.data_hash, f->data_hash, 32);
    snprintf(t.input_shapes, sizeof t.input_shapes, SHAPES);
    snprintf(t.preprocess, sizeof t.preprocess, PREPROCESS);
    t.begin = begin;
    t.end = end;
    return t;
}

/* Runs a task that must succeed; returns its partial (malloc'ed). */
static uint8_t *run_ok(fixture *f, const ac_task *t, size_t *len)
{
    ac_result res;
    uint8_t *partial = NULL, missing[32];
    int rc = ac_worker_eval_run(f->w, t, NULL, &res, &partial, missing);
    if (rc != 0 || res.status != AC_RESULT_OK) {
        fprintf(stderr, "task [%lld, %lld) failed: rc %d, %s\n", (long long)t->begin, (long long)t->end, rc, res.error);
        failures++;
        *len = 0;
        return NULL;
    }
    *len = res.partial.len;
    return partial;
}

/* Runs a task that must end with status ERROR and a message containing `want`. */
static void run_error(fixture *f, const ac_task *t, const char *want)
{
    ac_result res;
    uint8_t *partial = NULL, missing[32];
    int rc = ac_worker_eval_run(f->w, t, NULL, &res, &partial, missing);
    CHECK(rc == 0 && res.status == AC_RESULT_ERROR && partial == NULL);
    if (!strstr(res.error, want)) {
        fprintf(stderr, "error result '%s' does not mention '%s'\n", res.error, want);
        failures++;
    }
}

/* ---- calibration ------------------------------------------------------------------- */

/* The calibration tasks [cuts[0], cuts[1]) and [cuts[1], cuts[2]) of the
 * current pass of master, merged into one shard collector. */
static ac_calib_collector *calib_shards(fixture *f, const ac_calib_collector *master, const uint8_t *payload,
                                        size_t plen, const int64_t cuts[3])
{
    ac_err err = {0};
    ac_calib_collector *merged = ac_calib_collector_new_shard(master, &err);
    REQUIRE(merged);
    for (int s = 0; s < 2; s++) {
        ac_task t = base_task(f, AC_TASK_CALIB, cuts[s], cuts[s + 1]);
        t.payload = (ac_bytes){payload, plen};
        size_t n;
        uint8_t *part = run_ok(f, &t, &n);
        CHECK(part && ac_calib_collector_merge_encoded(merged, part, n, &err) == 0);
        free(part);
    }
    return merged;
}

static void test_calibration(fixture *f, ac_calib_table **table_out)
{
    ac_err err = {0};
    ac_calib_collector *master = ac_calib_collector_new(f->g, 0, &err);
    REQUIRE(master);
    for (int pass = 0; pass < 2; pass++) {
        uint8_t *tmpl;
        size_t tlen;
        REQUIRE(ac_calib_collector_encode_template(master, &tmpl, &tlen, &err) == 0);
        uint8_t *payload;
        size_t plen;
        ac_calib_payload cp = {{tmpl, tlen}};
        REQUIRE(ac_calib_payload_encode(&cp, &payload, &plen, &err) == 0);
        /* Shards [0, 64) + [64, 160) vs one pass [0, 160). */
        const int64_t cuts[3] = {0, 64, 160};
        ac_calib_collector *merged = calib_shards(f, master, payload, plen, cuts);
        ac_task whole = base_task(f, AC_TASK_CALIB, 0, 160);
        whole.payload = (ac_bytes){payload, plen};
        size_t n1;
        uint8_t *one = run_ok(f, &whole, &n1);
        uint8_t *two;
        size_t n2;
        REQUIRE(ac_calib_collector_encode(merged, &two, &n2, &err) == 0);
        CHECK(one && n1 == n2 && !memcmp(one, two, n1));
        /* The coordinator merges the shards into its master. */
        CHECK(ac_calib_collector_merge_encoded(master, one, n1, &err) == 0);
        /* A range ending inside a batch: the padded batch's real samples
         * only, so [0, 12) + [12, 160) merge to the whole again. */
        const int64_t odd_cuts[3] = {0, 12, 160};
        ac_calib_collector *odd_merged = calib_shards(f, master, payload, plen, odd_cuts);
        uint8_t *three;
        size_t n3;
        REQUIRE(ac_calib_collector_encode(odd_merged, &three, &n3, &err) == 0);
        CHECK(one && n1 == n3 && !memcmp(one, three, n1));
        free(three);
        ac_calib_collector_destroy(&odd_merged);
        /* A truncated template is an error. */
        ac_task bad = base_task(f, AC_TASK_CALIB, 0, 8);
        bad.payload = (ac_bytes){payload, plen - 3};
        run_error(f, &bad, "calib payload");
        free(one);
        free(two);
        free(payload);
        free(tmpl);
        ac_calib_collector_destroy(&merged);
        if (pass == 0)
            REQUIRE(ac_calib_collector_begin_hist(master, &err) == 0);
    }
    *table_out = ac_calib_collector_table(master, AC_TH_KL, &err);
    REQUIRE(*table_out);
    ac_calib_collector_destroy(&master);
    printf("calibration: shard partials merged equal one pass (range and histogram passes)\n");
}

/* ---- evaluation -------------------------------------------------------------------- */

/* The single-process partial of [0, n) (the coordinator's functions). */
static uint8_t *expected_partial(fixture *f, const ac_metric *m, const ac_calib_table *table,
                                 const ac_quant_options *qo, bool fp32_reference, bool need_ref, int64_t n,
                                 size_t *len, ac_metric_result *score)
{
    ac_err err = {0};
    ac_metric_partial *part = ac_metric_partial_new(m, &err);
    ac_runner *r = ac_runner_new(f->g, 0, f->ds, &err);
    ac_exec *fp32 = ac_exec_new(f->g, &err);
    REQUIRE(part && r && fp32);
    ac_runner_exec re = ac_runner_exec_fp32(fp32);
    ac_plan *plan = NULL;
    ac_qexec *q = NULL;
    if (fp32_reference) {
        REQUIRE(ac_runner_score(r, NULL, &re, NULL, part, 0, n, &err) == 0);
    } else {
        plan = ac_plan_build(f->g, table, qo, &err);
        REQUIRE(plan);
        q = ac_qexec_new(plan, &err);
        REQUIRE(q);
        ac_runner_exec ce = ac_runner_exec_int8(q);
        REQUIRE(ac_runner_score(r, &ce, need_ref ? &re : NULL, part, NULL, 0, n, &err) == 0);
    }
    uint8_t *buf;
    REQUIRE(ac_metric_partial_encode(part, &buf, len, &err) == 0);
    REQUIRE(ac_metric_score(part, score, &err) == 0);
    ac_qexec_destroy(&q);
    ac_plan_destroy(&plan);
    ac_exec_destroy(&fp32);
    ac_runner_destroy(&r);
    ac_metric_partial_destroy(&part);
    return buf;
}

static uint8_t *payload_of(const ac_calib_table *table, const ac_quant_options *qo, const ac_metric_options *mo,
                           bool fp32_reference, bool need_ref, size_t *len)
{
    ac_err err = {0};
    size_t n = ac_calib_table_size(table);
    ac_payload_range *ranges = calloc(n, sizeof *ranges);
    for (size_t i = 0; i < n; i++) {
        const ac_calib_entry *e = ac_calib_table_at(table, i);
        ranges[i] = (ac_payload_range){e->name, e->th, e->min, e->max};
    }
    ac_eval_payload p = {.fp32_reference = fp32_reference,
                         .nranges = (int32_t)n,
                         .ranges = ranges,
                         .per_channel = qo->per_channel,
                         .accuracy_opt = qo->accuracy_opt,
                         .first_conv_fp32 = qo->first_conv_fp32,
                         .nfp32 = qo->n_fp32_layers,
                         .fp32_layers = qo->fp32_layers,
                         .metric_kind = mo->kind,
                         .metric_output = mo->output,
                         .metric_topk = mo->topk,
                         .metric_classifier = mo->classifier,
                         .need_reference = need_ref};
    uint8_t *buf;
    REQUIRE(ac_eval_payload_encode(&p, &buf, len, &err) == 0);
    free(ranges);
    return buf;
}

static void check_eval(fixture *f, const char *what, const ac_calib_table *table, const ac_quant_options *qo,
                       const ac_metric_options *mo, bool fp32_reference, bool need_ref)
{
    ac_err err = {0};
    const int64_t n = 300;
    ac_metric *m = ac_metric_new(mo, &err);
    REQUIRE(m);
    size_t elen;
    ac_metric_result want;
    uint8_t *expect = expected_partial(f, m, table, qo, fp32_reference, need_ref, n, &elen, &want);
    size_t plen;
    uint8_t *payload = payload_of(table, qo, mo, fp32_reference, need_ref, &plen);
    /* Uneven shards, none aligned to the batch of 8, merged in reverse order. */
    int64_t cuts[4] = {0, 101, 250, n};
    ac_metric_partial *merged = ac_metric_partial_new(m, &err);
    for (int s = 2; s >= 0; s--) {
        ac_task t = base_task(f, AC_TASK_EVAL, cuts[s], cuts[s + 1]);
        t.payload = (ac_bytes){payload, plen};
        size_t len;
        uint8_t *part = run_ok(f, &t, &len);
        ac_metric_partial *p = NULL;
        CHECK(part && ac_metric_partial_decode(m, part, len, &p, &err) == 0);
        CHECK(p && ac_metric_partial_merge(merged, p, &err) == 0);
        ac_metric_partial_destroy(&p);
        free(part);
    }
    uint8_t *got;
    size_t glen;
    ac_metric_result have;
    REQUIRE(ac_metric_partial_encode(merged, &got, &glen, &err) == 0);
    REQUIRE(ac_metric_score(merged, &have, &err) == 0);
    CHECK(glen == elen && !memcmp(got, expect, elen));
    CHECK(have.score == want.score && have.samples == n);
    printf("eval %-28s single process %.6f, 3 shards merged %.6f (%lld samples)\n", what, want.score, have.score,
           (long long)have.samples);
    free(got);
    free(expect);
    free(payload);
    ac_metric_partial_destroy(&merged);
    ac_metric_destroy(&m);
}

static void test_eval(fixture *f, const ac_calib_table *table)
{
    ac_metric_options classify, similarity;
    ac_metric_options_init(&classify, AC_METRIC_CLASSIFY);
    ac_metric_options_init(&similarity, AC_METRIC_SIMILARITY);
    similarity.classifier = 1;
    ac_quant_options plain = {0}, pc = {.per_channel = true, .first_conv_fp32 = true};
    int built0, reused0;
    ac_worker_eval_plan_stats(f->w, &built0, &reused0);
    check_eval(f, "int8 classify", table, &plain, &classify, false, false);
    int built1, reused1;
    ac_worker_eval_plan_stats(f->w, &built1, &reused1);
    CHECK(built1 == built0 + 1 && reused1 == reused0 + 2); /* one plan for three shards */
    check_eval(f, "int8 per-channel+first fp32", table, &pc, &classify, false, true);
    check_eval(f, "fp32 reference classify", table, &plain, &classify, true, false);
    check_eval(f, "int8 similarity", table, &plain, &similarity, false, true);

    /* Error results. */
    size_t plen;
    uint8_t *payload = payload_of(table, &plain, &classify, false, false, &plen);
    ac_task t = base_task(f, AC_TASK_EVAL, 0, 16);
    t.payload = (ac_bytes){payload, plen / 2};
    run_error(f, &t, "eval payload");
    uint8_t garbage[7] = {0x93, 0xc1, 0xff, 0, 1, 2, 3};
    t.payload = (ac_bytes){garbage, sizeof garbage};
    run_error(f, &t, "eval payload");
    t.payload = (ac_bytes){payload, plen};
    t.end = 10001;
    run_error(f, &t, "outside");
    t.end = 16;
    t.batch = 4;
    run_error(f, &t, "batch");
    t.batch = 0;
    t.kind = (ac_task_kind)9;
    run_error(f, &t, "task kind");
    t.kind = AC_TASK_EVAL;
    snprintf(t.input_shapes, sizeof t.input_shapes, "(8,1,32,32)");
    run_error(f, &t, "");  /* the dataset cannot give 32x32 samples: an error result, whatever its words */
    snprintf(t.input_shapes, sizeof t.input_shapes, "(8,1,28");
    run_error(f, &t, "input_shapes");
    snprintf(t.input_shapes, sizeof t.input_shapes, SHAPES);
    /* Other preprocessing: the blob's content hash does not match (the blob stays). */
    snprintf(t.preprocess, sizeof t.preprocess, "scale=0.5");
    run_error(f, &t, "content hash");
    snprintf(t.preprocess, sizeof t.preprocess, PREPROCESS);
    const char *nope[1] = {"no_such_layer"};
    ac_quant_options bad = {.fp32_layers = nope, .n_fp32_layers = 1};
    uint8_t *p2 = payload_of(table, &bad, &classify, false, false, &plen);
    t.payload = (ac_bytes){p2, plen};
    run_error(f, &t, "no_such_layer");
    free(p2);
    ac_metric_options out9 = classify;
    out9.output = 9;
    p2 = payload_of(table, &plain, &out9, false, false, &plen);
    t.payload = (ac_bytes){p2, plen};
    run_error(f, &t, "output 9");
    free(p2);
    /* The worker still works after all that. */
    t.payload = (ac_bytes){payload, plen};
    size_t n;
    free(run_ok(f, &t, &n));
    free(payload);

    /* A NOOP is an empty OK result; an unknown model is a missing blob. */
    ac_task noop = base_task(f, AC_TASK_NOOP, 0, 0);
    ac_result res;
    uint8_t *part, missing[32];
    CHECK(ac_worker_eval_run(f->w, &noop, NULL, &res, &part, missing) == 0 && res.status == AC_RESULT_OK &&
          res.partial.len == 0);
    ac_task unknown = base_task(f, AC_TASK_EVAL, 0, 8);
    unknown.model_hash[0] ^= 1;
    CHECK(ac_worker_eval_run(f->w, &unknown, NULL, &res, &part, missing) == AC_CACHE_MISSING &&
          !memcmp(missing, unknown.model_hash, 32));
    unknown = base_task(f, AC_TASK_EVAL, 0, 8);
    unknown.data_hash[5] ^= 1;
    CHECK(ac_worker_eval_run(f->w, &unknown, NULL, &res, &part, missing) == AC_CACHE_MISSING &&
          !memcmp(missing, unknown.data_hash, 32));
}

/* Cancel between batches, progress reports. */
typedef struct {
    atomic_int cancel;
    uint64_t last_done, total;
    int calls;
} hook_state;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    hook_state *h = ctx;
    h->calls++;
    h->last_done = done;
    h->total = total;
    if (done >= 24)
        atomic_store(&h->cancel, 1);
}

static void test_hooks(fixture *f, const ac_calib_table *table)
{
    ac_metric_options classify;
    ac_metric_options_init(&classify, AC_METRIC_CLASSIFY);
    ac_quant_options plain = {0};
    size_t plen;
    uint8_t *payload = payload_of(table, &plain, &classify, false, false, &plen);
    ac_task t = base_task(f, AC_TASK_EVAL, 0, 100);
    t.payload = (ac_bytes){payload, plen};
    hook_state h = {0};
    ac_worker_hooks hooks = {.progress = on_progress, .ctx = &h, .cancel = &h.cancel};
    ac_result res;
    uint8_t *part, missing[32];
    CHECK(ac_worker_eval_run(f->w, &t, &hooks, &res, &part, missing) == 0);
    CHECK(res.status == AC_RESULT_CANCELLED && part == NULL);
    CHECK(h.calls == 3 && h.last_done == 24 && h.total == 100);
    free(payload);
}

/* ---- caches and blobs ----------------------------------------------------------------- */

static void test_blobs(fixture *f, const char *tmp)
{
    ac_err err = {0};
    /* Round trip: unpack, open with the job's options, same content hash. */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/unpacked", tmp);
    ac_blob_dataset_paths p, p2;
    REQUIRE(ac_blob_unpack_dataset(f->data_blob, f->data_len, dir, &p, &err) == 0);
    CHECK(p.idx && ac_blob_unpacked_paths(dir, &p2, &err) == 0 && !strcmp(p.source, p2.source) &&
          !strcmp(p.labels, p2.labels));
    ac_dataset_opts o = ac_runner_data_opts(f->g, 0, PREPROCESS, 0);
    ac_dataset *ds = ac_blob_open_dataset(&p, &o, &err);
    uint8_t h[32];
    CHECK(ds && ac_dataset_hash(ds, h, &err) == 0 && !memcmp(h, f->data_hash, 32));
    ac_dataset_destroy(&ds);
    /* Unpacking into a folder that holds the files already fails (exclusive create). */
    CHECK(ac_blob_unpack_dataset(f->data_blob, f->data_len, dir, &p, &err) != 0);
    /* Every truncation is rejected before anything is written. */
    for (size_t n = 0; n < f->data_len; n += 1 + n / 3) {
        char d2[4300];
        snprintf(d2, sizeof d2, "%s/trunc", tmp);
        ac_err e2 = {0};
        CHECK(ac_blob_unpack_dataset(f->data_blob, n, d2, &p, &e2) != 0 && e2.msg[0]);
        struct stat st;
        CHECK(stat(d2, &st) != 0); /* nothing written */
    }
    /* A folder archive; unsafe names are refused. */
    char src[4300], out[4300], path[4400];
    snprintf(src, sizeof src, "%s/folder", tmp);
    mkdir(src, 0777);
    const char *names[3] = {"b.bin", "a.txt", "lock.mdb"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", src, names[i]);
        FILE *fp = fopen(path, "wb");
        fprintf(fp, "content of %s", names[i]);
        fclose(fp);
    }
    uint8_t *buf;
    size_t len;
    uint8_t fh[32];
    REQUIRE(ac_blob_pack_dataset(src, NULL, NULL, &buf, &len, fh, &err) == 0);
    snprintf(out, sizeof out, "%s/folder_out", tmp);
    REQUIRE(ac_blob_unpack_dataset(buf, len, out, &p, &err) == 0);
    CHECK(!p.idx && !strcmp(p.source, out));
    snprintf(path, sizeof path, "%s/a.txt", out);
    FILE *fp = fopen(path, "rb");
    char text[64] = "";
    CHECK(fp && fread(text, 1, sizeof text - 1, fp) > 0 && !strcmp(text, "content of a.txt"));
    if (fp)
        fclose(fp);
    snprintf(path, sizeof path, "%s/lock.mdb", out);
    CHECK(access(path, F_OK) != 0);
    /* The same files give the same bytes (sorted); a name with '..' is refused. */
    uint8_t *buf2;
    size_t len2;
    uint8_t fh2[32];
    CHECK(ac_blob_pack_dataset(src, NULL, NULL, &buf2, &len2, fh2, &err) == 0 && len2 == len &&
          !memcmp(buf, buf2, len) && !memcmp(fh, fh2, 32));
    free(buf2);
    uint8_t *evil = malloc(len);
    memcpy(evil, buf, len);
    uint8_t *at = memmem(evil, len, "a.txt", 5);
    REQUIRE(at);
    memcpy(at, "../xx", 5);
    snprintf(out, sizeof out, "%s/evil_out", tmp);
    CHECK(ac_blob_unpack_dataset(evil, len, out, &p, &err) != 0 && strstr(err.msg, "safe"));
    memcpy(at, "/abcd", 5);
    CHECK(ac_blob_unpack_dataset(evil, len, out, &p, &err) != 0);
    free(evil);
    free(buf);
    printf("blobs: dataset archive round trip with the content hash, strict unpacking\n");
}

static void test_cache_eviction(fixture *f, const char *tmp)
{
    ac_err err = {0};
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/small_cache", tmp);
    /* Room for the model and a bit: a second blob evicts the least recent one. */
    ac_worker_cache *c = ac_worker_cache_new(dir, f->model_len + 1000, &err);
    REQUIRE(c);
    uint8_t wrong[32] = {1};
    CHECK(ac_worker_cache_put_model(c, wrong, f->model_blob, f->model_len, &err) != 0 && strstr(err.msg, "hash"));
    CHECK(ac_worker_cache_put_model(c, f->model_hash, f->model_blob, f->model_len, &err) == 0);
    CHECK(ac_worker_cache_has(c, f->model_hash) && ac_worker_cache_bytes(c) == f->model_len);
    /* Blobs used in the current task are kept even over the bound. */
    CHECK(ac_worker_cache_put_dataset(c, f->data_hash, f->data_blob, f->data_len, &err) == 0);
    CHECK(ac_worker_cache_has(c, f->model_hash) && ac_worker_cache_has(c, f->data_hash));
    CHECK(ac_worker_cache_hashes(c, NULL, 0) == 2);
    /* Next task: the dataset is used, the model is evicted to make room for another. */
    ac_worker_cache_begin_task(c);
    ac_dataset_opts o = ac_runner_data_opts(f->g, 0, PREPROCESS, 0);
    ac_dataset *ds;
    CHECK(ac_worker_cache_dataset(c, f->data_hash, NULL, &o, &ds, &err) == 0);
    uint8_t other[32];
    uint8_t small[100] = {0};
    ac_sha256 s;
    ac_sha256_init(&s);
    ac_sha256_update(&s, small, sizeof small);
    ac_sha256_final(&s, other);
    CHECK(ac_worker_cache_put_model(c, other, small, sizeof small, &err) == 0);
    CHECK(!ac_worker_cache_has(c, f->model_hash) && ac_worker_cache_has(c, f->data_hash) &&
          ac_worker_cache_has(c, other));
    char hex[65], path[4400];
    ac_sha256_hex(f->model_hash, hex);
    snprintf(path, sizeof path, "%s/m-%s", dir, hex);
    CHECK(access(path, F_OK) != 0); /* its file is gone */
    ac_worker_cache_destroy(&c);
    /* A restarted worker finds its blobs in the folder. */
    c = ac_worker_cache_new(dir, 0, &err);
    CHECK(c && ac_worker_cache_has(c, f->data_hash) && ac_worker_cache_has(c, other) &&
          !ac_worker_cache_has(c, f->model_hash));
    ac_worker_cache_destroy(&c);

    /* data_path: a fresh cache without the dataset blob uses the files in place. */
    c = ac_worker_cache_new(NULL, 0, &err);
    REQUIRE(c);
    char dp[9000];
    snprintf(dp, sizeof dp, "%s|%s", f->images, f->labels);
    CHECK(ac_worker_cache_dataset(c, f->data_hash, dp, &o, &ds, &err) == 0 && ac_dataset_count(ds) == 10000);
    CHECK(!ac_worker_cache_has(c, f->data_hash)); /* not a blob: not announced */
    uint8_t h2[32];
    memcpy(h2, f->data_hash, 32);
    h2[0] ^= 0xff;
    CHECK(ac_worker_cache_dataset(c, h2, dp, &o, &ds, &err) == AC_CACHE_MISSING);
    CHECK(ac_worker_cache_dataset(c, h2, "/no/such/path", &o, &ds, &err) == AC_CACHE_MISSING);
    ac_worker_cache_destroy(&c);
    printf("cache: eviction by bytes (LRU, current task kept), restart scan, data_path in place\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.onnx FASHION_MNIST_DIR\n", argv[0]);
        return 2;
    }
    fixture f;
    memset(&f, 0, sizeof f);
    ac_err err = {0};
    snprintf(f.model, sizeof f.model, "%s", argv[1]);
    snprintf(f.images, sizeof f.images, "%s/t10k-images-idx3-ubyte.gz", argv[2]);
    snprintf(f.labels, sizeof f.labels, "%s/t10k-labels-idx1-ubyte.gz", argv[2]);
    if (access(f.model, R_OK) || access(f.images, R_OK) || access(f.labels, R_OK)) {
        printf("worker_selftest: skipped (no %s or Fashion-MNIST in %s)\n", f.model, argv[2]);
        return 77;
    }
    char tmp[] = "/tmp/ac_worker_selftest_XXXXXX";
    REQUIRE(mkdtemp(tmp));

    /* The coordinator's side: model, dataset, blobs and hashes. */
    ac_model_options mo = {.input_shapes = SHAPES};
    f.g = ac_model_load(f.model, &mo, NULL, &err);
    REQUIRE(f.g);
    ac_dataset_opts o = ac_runner_data_opts(f.g, 0, PREPROCESS, 0);
    f.ds = ac_dataset_open_idx(f.images, f.labels, &o, &err);
    REQUIRE(f.ds);
    REQUIRE(ac_blob_pack_model(f.model, &f.model_blob, &f.model_len, f.model_hash, &err) == 0);
    REQUIRE(ac_blob_pack_dataset(f.images, f.labels, &o, &f.data_blob, &f.data_len, f.data_hash, &err) == 0);
    uint8_t direct[32];
    REQUIRE(ac_dataset_hash(f.ds, direct, &err) == 0);
    CHECK(!memcmp(direct, f.data_hash, 32));

    /* The worker's side. */
    f.cache = ac_worker_cache_new(NULL, 256u << 20, &err);
    f.backend = ac_backend_cpu_new(0, &err);
    REQUIRE(f.cache && f.backend);
    f.w = ac_worker_eval_new(f.cache, f.backend, 0, &err);
    REQUIRE(f.w);
    REQUIRE(ac_worker_cache_put_model(f.cache, f.model_hash, f.model_blob, f.model_len, &err) == 0);
    REQUIRE(ac_worker_cache_put_dataset(f.cache, f.data_hash, f.data_blob, f.data_len, &err) == 0);

    ac_calib_table *table = NULL;
    test_calibration(&f, &table);
    test_eval(&f, table);
    test_hooks(&f, table);
    test_blobs(&f, tmp);
    test_cache_eviction(&f, tmp);

    ac_calib_table_destroy(&table);
    ac_worker_eval_destroy(&f.w);
    ac_backend_destroy(&f.backend);
    ac_worker_cache_destroy(&f.cache);
    ac_dataset_destroy(&f.ds);
    ac_graph_destroy(&f.g);
    free(f.model_blob);
    free(f.data_blob);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    if (failures) {
        fprintf(stderr, "worker_selftest: %d checks failed\n", failures);
        return 1;
    }
    printf("worker_selftest: ok\n");
    return 0;
}
