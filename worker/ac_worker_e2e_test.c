/* worker end to end: a broker (in-process thread), two worker threads and a
 * fake coordinator written with the codec over loopback TCP. The coordinator
 * uploads the model and dataset blobs, submits two calibration shards and
 * three eval shards of an int8 candidate plus a task with a bad payload, and
 * merges the results: the calibration partial equals one pass, the merged
 * eval partial equals the single-process partial bit for bit, and the bad
 * task comes back as an ERROR result. The workers fetch the blobs themselves.
 * usage: ac_worker_e2e_test MODEL.onnx FASHION_MNIST_DIR (exit 77 = skipped) */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_blob.h"
#include "ac_broker.h"
#include "ac_model.h"
#include "ac_msg_codec.h"
#include "ac_payload.h"
#include "ac_plan.h"
#include "ac_qexec.h"
#include "ac_runner.h"
#include "ac_worker.h"
#include "ac_check.h"

#define SHAPES "(8,1,28,28)"
#define PREPROCESS "mean_value=72.93,scale=0.011109"
#define JOB "e2e"
#define NEVAL 240

#define REQUIRE(cond)                                                                           \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: required: %s (%s)\n", __FILE__, __LINE__, #cond, err.msg); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static void upload(zsock_t *s, const uint8_t hash[32], const uint8_t *buf, size_t len)
{
    ac_err err = {0};
    for (size_t off = 0; off < len; off += AC_BLOB_CHUNK) {
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_BLOB_PUT);
        snprintf(m.blob.job, sizeof m.blob.job, JOB);
        memcpy(m.blob.hash, hash, 32);
        m.blob.offset = off;
        m.blob.total = len;
        m.blob.data = (ac_bytes){buf + off, len - off < AC_BLOB_CHUNK ? len - off : AC_BLOB_CHUNK};
        REQUIRE(ac_msg_send(s, NULL, &m, &err) == 0);
    }
}

typedef struct {
    uint8_t *partial;
    size_t len;
    int status;
    char error[512];
    bool have;
} got;

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", argv[2]);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", argv[2]);
    if (access(argv[1], R_OK) || access(images, R_OK) || access(labels, R_OK)) {
        printf("worker_e2e: skipped (no model or Fashion-MNIST)\n");
        return 77;
    }
    ac_err err = {0};
    /* The coordinator's side. */
    ac_model_options mo = {.input_shapes = SHAPES};
    ac_graph *g = ac_model_load(argv[1], &mo, NULL, &err);
    REQUIRE(g);
    ac_dataset_opts dopt = ac_runner_data_opts(g, 0, PREPROCESS, 0);
    ac_dataset *ds = ac_dataset_open_idx(images, labels, &dopt, &err);
    REQUIRE(ds);
    uint8_t mhash[32], dhash[32], *mblob, *dblob;
    size_t mlen, dlen;
    REQUIRE(ac_blob_pack_model(argv[1], &mblob, &mlen, mhash, &err) == 0);
    REQUIRE(ac_blob_pack_dataset(images, labels, &dopt, &dblob, &dlen, dhash, &err) == 0);

    /* Calibration template (range pass) and its expected one-pass partial. */
    ac_calib_collector *master = ac_calib_collector_new(g, 0, &err);
    ac_exec *fp32 = ac_exec_new(g, &err);
    ac_runner *r = ac_runner_new(g, 0, ds, &err);
    REQUIRE(master && fp32 && r);
    uint8_t *tmpl, *cpay, *want_calib;
    size_t tlen, cplen, wclen;
    REQUIRE(ac_calib_collector_encode_template(master, &tmpl, &tlen, &err) == 0);
    REQUIRE(ac_calib_payload_encode(&(ac_calib_payload){{tmpl, tlen}}, &cpay, &cplen, &err) == 0);
    ac_calib_collector *one = ac_calib_collector_new_shard(master, &err);
    REQUIRE(one && ac_runner_calibrate(r, fp32, one, 0, 96, &err) == 0);
    REQUIRE(ac_calib_collector_encode(one, &want_calib, &wclen, &err) == 0);
    REQUIRE(ac_calib_collector_merge(master, one, &err) == 0);
    ac_calib_table *table = ac_calib_collector_table(master, AC_TH_MAX, &err);
    REQUIRE(table);

    /* The candidate and its expected single-process partial. */
    size_t n = ac_calib_table_size(table);
    ac_payload_range *ranges = calloc(n, sizeof *ranges);
    for (size_t i = 0; i < n; i++) {
        const ac_calib_entry *e = ac_calib_table_at(table, i);
        ranges[i] = (ac_payload_range){e->name, e->th, e->min, e->max};
    }
    ac_eval_payload ep = {.nranges = (int32_t)n, .ranges = ranges, .metric_kind = AC_METRIC_CLASSIFY,
                          .metric_topk = 5};
    uint8_t *epay;
    size_t eplen;
    REQUIRE(ac_eval_payload_encode(&ep, &epay, &eplen, &err) == 0);
    ac_metric_options mopt;
    ac_metric_options_init(&mopt, AC_METRIC_CLASSIFY);
    ac_metric *metric = ac_metric_new(&mopt, &err);
    ac_metric_partial *want = ac_metric_partial_new(metric, &err), *merged = ac_metric_partial_new(metric, &err);
    ac_quant_options qo = {0};
    ac_plan *plan = ac_plan_build(g, table, &qo, &err);
    REQUIRE(plan);
    ac_qexec *q = ac_qexec_new(plan, &err);
    REQUIRE(q && want && merged);
    ac_runner_exec ce = ac_runner_exec_int8(q);
    REQUIRE(ac_runner_score(r, &ce, NULL, want, NULL, 0, NEVAL, &err) == 0);

    /* Broker and two workers. */
    ac_broker_config bc;
    ac_broker_config_defaults(&bc);
    bc.endpoint = "tcp://127.0.0.1:*";
    bc.heartbeat_ms = 200;
    char ep_str[256];
    zactor_t *broker = ac_broker_actor_new(&bc, ep_str, &err);
    REQUIRE(broker);
    zactor_t *workers[2];
    for (int i = 0; i < 2; i++) {
        ac_worker_config wc;
        ac_worker_config_defaults(&wc);
        wc.endpoint = ep_str;
        wc.heartbeat_ms = 200;
        wc.threads = 1;
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        wc.name = name;
        workers[i] = ac_worker_actor_new(&wc, &err);
        REQUIRE(workers[i]);
    }

    /* The fake coordinator. */
    zsock_t *s = ac_msg_dealer_new(ep_str, NULL, NULL, &err);
    REQUIRE(s);
    upload(s, mhash, mblob, mlen);
    upload(s, dhash, dblob, dlen);
    enum { NTASKS = 6 };
    ac_task tasks[NTASKS];
    memset(tasks, 0, sizeof tasks);
    int64_t cuts_c[3] = {0, 48, 96}, cuts_e[4] = {0, 77, 160, NEVAL};
    for (int i = 0; i < NTASKS; i++) {
        ac_task *t = &tasks[i];
        snprintf(t->key.job, sizeof t->key.job, JOB);
        t->key.round = i < 2 ? 0 : 1;
        t->key.candidate = i == 5 ? 1 : 0;
        t->key.shard = (uint32_t)i;
        memcpy(t->model_hash, mhash, 32);
        memcpy(t->data_hash, dhash, 32);
        snprintf(t->input_shapes, sizeof t->input_shapes, SHAPES);
        snprintf(t->preprocess, sizeof t->preprocess, PREPROCESS);
        if (i < 2) {
            t->kind = AC_TASK_CALIB;
            t->begin = cuts_c[i];
            t->end = cuts_c[i + 1];
            t->payload = (ac_bytes){cpay, cplen};
        } else if (i < 5) {
            t->kind = AC_TASK_EVAL;
            t->begin = cuts_e[i - 2];
            t->end = cuts_e[i - 1];
            t->payload = (ac_bytes){epay, eplen};
        } else {
            t->kind = AC_TASK_EVAL;
            t->begin = 0;
            t->end = 8;
            t->payload = (ac_bytes){epay, eplen - 1}; /* truncated: an ERROR result */
        }
    }
    ac_msg sub;
    ac_msg_init(&sub, AC_PROTO_CLIENT, AC_MSG_SUBMIT);
    snprintf(sub.submit.job, sizeof sub.submit.job, JOB);
    sub.submit.ntasks = NTASKS;
    sub.submit.tasks = tasks;
    REQUIRE(ac_msg_send(s, NULL, &sub, &err) == 0);

    got res[NTASKS];
    memset(res, 0, sizeof res);
    int have = 0, progress = 0;
    int64_t last_hb = zclock_mono();
    while (have < NTASKS && !zsys_interrupted) {
        if (zclock_mono() - last_hb > 200) {
            ac_msg hb;
            ac_msg_init(&hb, AC_PROTO_CLIENT, AC_MSG_HEARTBEAT);
            hb.heartbeat.interval_ms = 200;
            hb.heartbeat.liveness = 3;
            ac_msg_send(s, NULL, &hb, &err);
            last_hb = zclock_mono();
        }
        zpoller_t *p = zpoller_new(s, NULL);
        void *w = zpoller_wait(p, 100);
        zpoller_destroy(&p);
        if (!w)
            continue;
        ac_msg in;
        if (ac_msg_recv(s, AC_DIR_FROM_BROKER, &in, NULL, NULL, &err) != 0) {
            fprintf(stderr, "coordinator: %s\n", err.msg);
            failures++;
            continue;
        }
        if (in.cmd == AC_MSG_RESULT) {
            uint32_t i = in.result.key.shard;
            if (i < NTASKS && !res[i].have) {
                res[i].have = true;
                res[i].status = in.result.status;
                snprintf(res[i].error, sizeof res[i].error, "%s", in.result.error);
                res[i].len = in.result.partial.len;
                res[i].partial = malloc(res[i].len ? res[i].len : 1);
                memcpy(res[i].partial, in.result.partial.data, res[i].len);
                have++;
            }
        } else if (in.cmd == AC_MSG_ERROR) {
            fprintf(stderr, "coordinator: ERROR from the broker: %s\n", in.error.message);
            failures++;
        } else if (in.cmd == AC_MSG_PROGRESS) {
            progress++;
        }
        ac_msg_reset(&in);
    }
    CHECK(have == NTASKS);
    /* Calibration: the two shard partials merged equal one pass. */
    ac_calib_collector *mc = ac_calib_collector_new_shard(master, &err);
    for (int i = 0; i < 2; i++)
        CHECK(res[i].status == AC_RESULT_OK && ac_calib_collector_merge_encoded(mc, res[i].partial, res[i].len, &err) == 0);
    uint8_t *gc;
    size_t gclen;
    REQUIRE(ac_calib_collector_encode(mc, &gc, &gclen, &err) == 0);
    CHECK(gclen == wclen && !memcmp(gc, want_calib, wclen));
    /* Eval: the merged partial equals the single-process one. */
    for (int i = 2; i < 5; i++) {
        ac_metric_partial *pp = NULL;
        CHECK(res[i].status == AC_RESULT_OK && ac_metric_partial_decode(metric, res[i].partial, res[i].len, &pp, &err) == 0);
        CHECK(pp && ac_metric_partial_merge(merged, pp, &err) == 0);
        ac_metric_partial_destroy(&pp);
    }
    uint8_t *a, *b;
    size_t alen, blen;
    REQUIRE(ac_metric_partial_encode(merged, &a, &alen, &err) == 0 && ac_metric_partial_encode(want, &b, &blen, &err) == 0);
    CHECK(alen == blen && !memcmp(a, b, alen));
    ac_metric_result rw, rg;
    REQUIRE(ac_metric_score(want, &rw, &err) == 0 && ac_metric_score(merged, &rg, &err) == 0);
    CHECK(rw.score == rg.score && rg.samples == NEVAL);
    CHECK(res[5].status == AC_RESULT_ERROR && strstr(res[5].error, "eval payload"));
    ac_worker_stats st[2];
    uint64_t fetched = 0, ok = 0;
    for (int i = 0; i < 2; i++) {
        CHECK(ac_worker_actor_stats(workers[i], &st[i]) == 0);
        fetched += st[i].blobs_fetched;
        ok += st[i].tasks_ok;
    }
    CHECK(ok == 5 && fetched >= 2);
    printf("worker_e2e: %d results (score %.4f single process, %.4f from 3 shards on 2 workers), %llu blobs "
           "fetched, %llu+%llu tasks per worker, %d progress messages; bad payload: %s\n",
           have, rw.score, rg.score, (unsigned long long)fetched, (unsigned long long)st[0].tasks_ok + st[0].tasks_error,
           (unsigned long long)st[1].tasks_ok + st[1].tasks_error, progress, res[5].error);

    ac_msg end;
    ac_msg_init(&end, AC_PROTO_CLIENT, AC_MSG_JOB_END);
    snprintf(end.job, sizeof end.job, JOB);
    ac_msg_send(s, NULL, &end, &err);
    zsock_destroy(&s);
    for (int i = 0; i < 2; i++)
        zactor_destroy(&workers[i]);
    zactor_destroy(&broker);
    for (int i = 0; i < NTASKS; i++)
        free(res[i].partial);
    free(a);
    free(b);
    free(gc);
    free(ranges);
    free(epay);
    free(cpay);
    free(tmpl);
    free(want_calib);
    free(mblob);
    free(dblob);
    ac_calib_collector_destroy(&mc);
    ac_calib_collector_destroy(&one);
    ac_calib_collector_destroy(&master);
    ac_calib_table_destroy(&table);
    ac_qexec_destroy(&q);
    ac_plan_destroy(&plan);
    ac_metric_partial_destroy(&want);
    ac_metric_partial_destroy(&merged);
    ac_metric_destroy(&metric);
    ac_runner_destroy(&r);
    ac_exec_destroy(&fp32);
    ac_dataset_destroy(&ds);
    ac_graph_destroy(&g);
    if (failures) {
        fprintf(stderr, "worker_e2e: %d checks failed\n", failures);
        return 1;
    }
    printf("worker_e2e: ok\n");
    return 0;
}
