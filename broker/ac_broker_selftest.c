/* broker selftest: a broker in its own thread (ac_broker_actor_new) on real
 * ZeroMQ sockets (inproc, ipc, loopback tcp with CURVE), with fake workers
 * (threads) and fake coordinators written with the codec. Heartbeats are 100
 * ms, so a silent peer is dropped after 300 ms. Waits have generous safety
 * limits so a broken broker fails the test instead of hanging it; no check
 * depends on how fast the machine is. */
#include "ac_broker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_mpack.h"
#include "ac_msg_codec.h"
#include "ac_check.h"

#define HB_MS 100
#define WAIT_MS 20000 /* safety limit for one expected message */

static ac_broker_config test_config(const char *endpoint)
{
    ac_broker_config cfg;
    ac_broker_config_defaults(&cfg);
    cfg.endpoint = endpoint;
    cfg.heartbeat_ms = HB_MS;
    cfg.liveness = 3;
    cfg.verbose = getenv("AC_BROKER_VERBOSE") != NULL;
    return cfg;
}

static zactor_t *start_broker(const ac_broker_config *cfg, char *endpoint)
{
    ac_err err;
    zactor_t *b = ac_broker_actor_new(cfg, endpoint, &err);
    if (!b) {
        fprintf(stderr, "cannot start broker: %s\n", err.msg);
        exit(1);
    }
    return b;
}

static ac_broker_stats stats(zactor_t *b)
{
    ac_broker_stats st;
    CHECK(ac_broker_actor_stats(b, &st) == AC_OK);
    return st;
}

/* ---- a peer driven from the test thread --------------------------------------------- */

typedef struct {
    zsock_t *s;
    ac_msg_proto proto;
    int64_t last_hb;
} conn;

static conn conn_new(const char *endpoint, ac_msg_proto proto, const char *cert, const char *server_pub)
{
    ac_err err;
    conn c = {ac_msg_dealer_new(endpoint, cert, server_pub, &err), proto, 0};
    if (!c.s) {
        fprintf(stderr, "connect: %s\n", err.msg);
        exit(1);
    }
    return c;
}

static void conn_send(conn *c, const ac_msg *m)
{
    ac_err err;
    /* a refused peer's sends fail (no connection takes them); that is expected */
    if (ac_msg_send(c->s, NULL, m, &err) != AC_OK && getenv("AC_BROKER_VERBOSE"))
        fprintf(stderr, "send: %s\n", err.msg);
}

static void conn_heartbeat(conn *c)
{
    ac_msg m;
    ac_msg_init(&m, c->proto, AC_MSG_HEARTBEAT);
    m.heartbeat.interval_ms = HB_MS;
    m.heartbeat.liveness = 3;
    conn_send(c, &m);
    c->last_hb = zclock_mono();
}

/* The next message that is not a HEARTBEAT, heartbeating meanwhile; false
 * after timeout_ms. */
static bool conn_recv(conn *c, ac_msg *out, int timeout_ms)
{
    memset(out, 0, sizeof *out);
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        if (now - c->last_hb >= HB_MS / 2)
            conn_heartbeat(c);
        if (now >= end)
            return false;
        zmq_pollitem_t it = {zsock_resolve(c->s), 0, ZMQ_POLLIN, 0};
        long wait = end - now < HB_MS / 2 ? (long)(end - now) : HB_MS / 2;
        if (zmq_poll(&it, 1, wait) <= 0)
            continue;
        ac_err err;
        if (ac_msg_recv(c->s, AC_DIR_FROM_BROKER, out, NULL, NULL, &err) != AC_OK) {
            fprintf(stderr, "recv: %s\n", err.msg);
            failures++;
            continue;
        }
        if (out->cmd != AC_MSG_HEARTBEAT)
            return true;
        ac_msg_reset(out);
    }
}

/* Heartbeats for ms, failing on anything but heartbeats. */
static void conn_idle(conn *c, int ms)
{
    ac_msg m;
    if (conn_recv(c, &m, ms)) {
        fprintf(stderr, "unexpected %s while idle\n", ac_msg_cmd_name(m.cmd));
        failures++;
        ac_msg_reset(&m);
    }
}

static void conn_close(conn *c)
{
    zsock_destroy(&c->s);
}

static ac_task make_task(const char *job, uint32_t shard)
{
    ac_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.key.job, sizeof t.key.job, "%s", job);
    t.key.shard = shard;
    t.kind = AC_TASK_NOOP;
    t.model_hash[0] = (uint8_t)job[0];
    t.end = 10;
    return t;
}

static void submit(conn *c, const char *job, uint32_t first, uint32_t n)
{
    ac_task *tasks = calloc(n, sizeof *tasks);
    for (uint32_t i = 0; i < n; i++)
        tasks[i] = make_task(job, first + i);
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_SUBMIT);
    snprintf(m.submit.job, sizeof m.submit.job, "%s", job);
    m.submit.ntasks = n;
    m.submit.tasks = tasks;
    conn_send(c, &m);
    free(tasks);
}

/* The next RESULT (other messages are failures). */
static bool next_result(conn *c, ac_result *r)
{
    ac_msg m;
    if (!conn_recv(c, &m, WAIT_MS)) {
        fprintf(stderr, "no RESULT within the safety limit\n");
        failures++;
        return false;
    }
    bool ok = m.cmd == AC_MSG_RESULT;
    if (ok) {
        *r = m.result;
        r->partial.data = NULL;
    } else {
        fprintf(stderr, "expected RESULT, got %s (%s)\n", ac_msg_cmd_name(m.cmd),
                m.cmd == AC_MSG_ERROR ? m.error.message : m.cmd == AC_MSG_DISCONNECT ? m.reason : "");
        failures++;
    }
    ac_msg_reset(&m);
    return ok;
}

/* ---- fake workers (threads) --------------------------------------------------------- */

typedef enum {
    FW_NORMAL,    /* answers each task after delay_ms */
    FW_VANISH,    /* on its first task: closes its socket and goes silent */
    FW_DUPLICATE, /* answers each task twice */
    FW_HOLD,      /* keeps each task until cancelled */
    FW_QUIT       /* on its first task: sends DISCONNECT and leaves */
} fw_mode;

typedef struct {
    char name[32];
    char endpoint[256];
    fw_mode mode;
    int delay_ms;
    atomic_int tasks, violations, cancels, results;
    atomic_uint last_attempt;
    zactor_t *actor;
} fake_worker;

static void send_ready(zsock_t *s, const char *name)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_READY);
    snprintf(m.ready.name, sizeof m.ready.name, "%s", name);
    m.ready.threads = 1;
    snprintf(m.ready.isa, sizeof m.ready.isa, "generic");
    snprintf(m.ready.backend, sizeof m.ready.backend, "fake");
    ac_err err;
    ac_msg_send(s, NULL, &m, &err);
}

static void send_result_msg(zsock_t *s, const ac_task_key *key, ac_result_status st)
{
    static const uint8_t partial[] = {0x91, 0x2a};
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_RESULT);
    m.result.key = *key;
    m.result.status = st;
    m.result.seconds = 0.001;
    if (st == AC_RESULT_OK) {
        m.result.partial.data = partial;
        m.result.partial.len = sizeof partial;
    }
    ac_err err;
    ac_msg_send(s, NULL, &m, &err);
}

static void fake_worker_actor(zsock_t *pipe, void *arg)
{
    fake_worker *fw = arg;
    ac_err err;
    zsock_t *s = ac_msg_dealer_new(fw->endpoint, NULL, NULL, &err);
    zsock_signal(pipe, 0);
    if (!s)
        return;
    send_ready(s, fw->name);
    bool busy = false, gone = false;
    ac_task_key current;
    int64_t deadline = 0, last_hb = zclock_mono();
    for (;;) {
        zmq_pollitem_t items[2] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
                                   {s ? zsock_resolve(s) : NULL, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, s ? 2 : 1, 10) < 0)
            break;
        if (items[0].revents & ZMQ_POLLIN) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || !strcmp(cmd, "$TERM");
            zstr_free(&cmd);
            if (term)
                break;
        }
        if (s && (items[1].revents & ZMQ_POLLIN)) {
            ac_msg m;
            if (ac_msg_recv(s, AC_DIR_FROM_BROKER, &m, NULL, NULL, &err) == AC_OK) {
                if (m.cmd == AC_MSG_TASK) {
                    if (busy)
                        fw->violations++;
                    fw->tasks++;
                    fw->last_attempt = m.task.key.attempt;
                    busy = true;
                    current = m.task.key;
                    deadline = fw->mode == FW_HOLD ? INT64_MAX : zclock_mono() + fw->delay_ms;
                    if (fw->mode == FW_VANISH) {
                        zsock_destroy(&s);
                        gone = true;
                    } else if (fw->mode == FW_QUIT) {
                        ac_msg q;
                        ac_msg_init(&q, AC_PROTO_WORKER, AC_MSG_DISCONNECT);
                        snprintf(q.reason, sizeof q.reason, "leaving");
                        ac_msg_send(s, NULL, &q, &err);
                        zsock_destroy(&s);
                        gone = true;
                    }
                } else if (m.cmd == AC_MSG_CANCEL) {
                    fw->cancels++;
                    for (uint32_t i = 0; i < m.cancel.nkeys; i++)
                        if (busy && ac_task_key_eq(&m.cancel.keys[i], &current)) {
                            send_result_msg(s, &current, AC_RESULT_CANCELLED);
                            busy = false;
                        }
                } else if (m.cmd == AC_MSG_DISCONNECT) {
                    busy = false;
                    send_ready(s, fw->name);
                }
                ac_msg_reset(&m);
            }
        }
        if (gone)
            continue;
        int64_t now = zclock_mono();
        if (busy && now >= deadline) {
            send_result_msg(s, &current, AC_RESULT_OK);
            fw->results++;
            if (fw->mode == FW_DUPLICATE)
                send_result_msg(s, &current, AC_RESULT_OK);
            busy = false;
        }
        if (now - last_hb >= HB_MS / 2) {
            ac_msg hb;
            ac_msg_init(&hb, AC_PROTO_WORKER, AC_MSG_HEARTBEAT);
            ac_msg_send(s, NULL, &hb, &err);
            last_hb = now;
        }
    }
    if (s) { /* a clean worker says goodbye */
        ac_msg q;
        ac_msg_init(&q, AC_PROTO_WORKER, AC_MSG_DISCONNECT);
        snprintf(q.reason, sizeof q.reason, "stopping");
        ac_msg_send(s, NULL, &q, &err);
    }
    zsock_destroy(&s);
}

static fake_worker *worker_start(const char *endpoint, const char *name, fw_mode mode, int delay_ms)
{
    fake_worker *fw = calloc(1, sizeof *fw);
    snprintf(fw->name, sizeof fw->name, "%s", name);
    snprintf(fw->endpoint, sizeof fw->endpoint, "%s", endpoint);
    fw->mode = mode;
    fw->delay_ms = delay_ms;
    fw->actor = zactor_new(fake_worker_actor, fw);
    return fw;
}

static void worker_stop(fake_worker **fw)
{
    if (*fw) {
        zactor_destroy(&(*fw)->actor);
        free(*fw);
        *fw = NULL;
    }
}

/* Waits (heartbeating c) until the broker counts exactly n idle workers. */
static void wait_idle_workers(zactor_t *b, conn *c, uint32_t n)
{
    for (int i = 0; i < WAIT_MS / 20; i++) {
        if (stats(b).idle_workers == n)
            return;
        conn_idle(c, 20);
    }
    fprintf(stderr, "broker never saw %u idle workers\n", n);
    failures++;
}

/* Sends chunks [first, last) of a blob as BLOB_PUT. */
static void put_blob_chunks(conn *c, const char *job, const uint8_t hash[AC_HASH_BYTES], const uint8_t *data,
                            size_t size, int first, int last)
{
    for (int k = first; k < last && (size_t)k * AC_BLOB_CHUNK < size; k++) {
        size_t off = (size_t)k * AC_BLOB_CHUNK;
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_BLOB_PUT);
        snprintf(m.blob.job, sizeof m.blob.job, "%s", job);
        memcpy(m.blob.hash, hash, AC_HASH_BYTES);
        m.blob.offset = off;
        m.blob.total = size;
        m.blob.data.data = data + off;
        m.blob.data.len = size - off < AC_BLOB_CHUNK ? size - off : AC_BLOB_CHUNK;
        conn_send(c, &m);
    }
}

/* A worker fetches the blob in chunks; true when it equals data[0..size). */
static bool fetched_equal(conn *w, const uint8_t hash[AC_HASH_BYTES], const uint8_t *data, size_t size)
{
    uint8_t *got = malloc(size);
    size_t have = 0;
    while (have < size) {
        ac_msg m, in;
        ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_BLOB_REQ);
        memcpy(m.blob_req.hash, hash, AC_HASH_BYTES);
        m.blob_req.offset = have;
        m.blob_req.length = AC_BLOB_CHUNK;
        conn_send(w, &m);
        if (!conn_recv(w, &in, WAIT_MS))
            break;
        bool ok = in.cmd == AC_MSG_BLOB && in.blob.status == AC_BLOB_OK && in.blob.offset == have &&
                  in.blob.total == size && in.blob.data.len;
        if (ok) {
            memcpy(got + have, in.blob.data.data, in.blob.data.len);
            have += in.blob.data.len;
        }
        ac_msg_reset(&in);
        if (!ok)
            break;
    }
    bool same = have == size && !memcmp(got, data, size);
    free(got);
    return same;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_dispatch_idle_only(const char *transport)
{
    char ep[256];
    ac_broker_config cfg = test_config(transport);
    zactor_t *b = start_broker(&cfg, ep);
    conn c = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    fake_worker *w1 = worker_start(ep, "w1", FW_NORMAL, 30), *w2 = worker_start(ep, "w2", FW_NORMAL, 30);
    wait_idle_workers(b, &c, 2);
    submit(&c, "jobA", 0, 12);
    bool seen[12] = {false};
    for (int i = 0; i < 12; i++) {
        ac_result r;
        if (!next_result(&c, &r))
            break;
        CHECK(r.status == AC_RESULT_OK && r.key.shard < 12 && !seen[r.key.shard]);
        if (r.key.shard < 12)
            seen[r.key.shard] = true;
        CHECK(r.key.attempt == 1);
    }
    CHECK(w1->violations == 0 && w2->violations == 0); /* never a task while busy */
    CHECK(w1->tasks + w2->tasks == 12);
    CHECK(w1->tasks > 0 && w2->tasks > 0);
    ac_broker_stats st = stats(b);
    CHECK(st.dispatched == 12 && st.results == 12 && st.queued == 0 && st.in_flight == 0);
    CHECK(st.workers == 2 && st.clients == 1 && st.jobs == 1);
    worker_stop(&w1);
    worker_stop(&w2);
    conn_close(&c);
    zactor_destroy(&b);
    printf("  dispatch to idle workers only (%s): ok\n", transport);
}

static void test_fairness(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-fair");
    zactor_t *b = start_broker(&cfg, ep);
    conn ca = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL), cb = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    fake_worker *w = worker_start(ep, "w", FW_NORMAL, 2);
    wait_idle_workers(b, &ca, 1);
    /* Job A queues 40 tasks first; job B's 10 arrive while A's are running. */
    submit(&ca, "jobA", 0, 40);
    conn_heartbeat(&cb);
    ac_result r;
    CHECK(next_result(&ca, &r));
    submit(&cb, "jobB", 0, 10);
    /* B must be served while A still has work: all of B done before A finishes
     * (40 A tasks vs 10 B tasks, alternated), and no long run of A after B started. */
    int a_done = 1, b_done = 0;
    while (b_done < 10) {
        if (!next_result(&cb, &r))
            break;
        b_done++;
    }
    ac_broker_stats st = stats(b);
    uint64_t finished = st.results;
    a_done = (int)finished - b_done;
    CHECK(b_done == 10);
    /* with alternation A has had at most ~b_done + a few more dispatches */
    CHECK(a_done <= b_done + 4);
    CHECK(a_done < 40); /* B did not wait for A to finish */
    while (a_done < 40 && next_result(&ca, &r))
        a_done++;
    CHECK(a_done == 40);
    worker_stop(&w);
    conn_close(&ca);
    conn_close(&cb);
    zactor_destroy(&b);
    printf("  fairness across two jobs: ok (B finished when %u results were out)\n", (unsigned)finished);
}

static void test_requeue_and_fail(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-requeue");
    zactor_t *b = start_broker(&cfg, ep);
    conn c = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    /* A worker vanishes with the task; the task goes to the next one with attempt 2. */
    fake_worker *v = worker_start(ep, "vanisher", FW_VANISH, 0);
    wait_idle_workers(b, &c, 1);
    submit(&c, "jobR", 0, 1);
    while (v->tasks == 0)
        conn_idle(&c, 10);
    fake_worker *n = worker_start(ep, "normal", FW_NORMAL, 5);
    ac_result r;
    CHECK(next_result(&c, &r));
    CHECK(r.status == AC_RESULT_OK && r.key.attempt == 2);
    CHECK(n->last_attempt == 2);
    ac_broker_stats st = stats(b);
    CHECK(st.requeued == 1 && st.expired_peers >= 1);
    worker_stop(&n);
    worker_stop(&v);

    /* A worker that says DISCONNECT while busy: requeued at once. */
    fake_worker *q = worker_start(ep, "quitter", FW_QUIT, 0);
    wait_idle_workers(b, &c, 1);
    submit(&c, "jobR", 1, 1);
    while (q->tasks == 0)
        conn_idle(&c, 10);
    n = worker_start(ep, "normal2", FW_NORMAL, 5);
    CHECK(next_result(&c, &r));
    CHECK(r.status == AC_RESULT_OK && r.key.shard == 1 && r.key.attempt == 2);
    worker_stop(&n);
    worker_stop(&q);

    /* Three workers die in turn with the same task: it fails back after 3 attempts. */
    fake_worker *d[3];
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "doomed%d", i);
        d[i] = worker_start(ep, name, FW_VANISH, 0);
    }
    wait_idle_workers(b, &c, 3);
    submit(&c, "jobF", 0, 1);
    CHECK(next_result(&c, &r));
    CHECK(r.status == AC_RESULT_ERROR && r.key.attempt == 3);
    CHECK(strstr(r.error, "task failed after 3 attempts (workers doomed") != NULL);
    CHECK(d[0]->tasks + d[1]->tasks + d[2]->tasks == 3);
    st = stats(b);
    CHECK(st.failed == 1 && st.queued == 0 && st.in_flight == 0);
    for (int i = 0; i < 3; i++)
        worker_stop(&d[i]);
    conn_close(&c);
    zactor_destroy(&b);
    printf("  requeue on a vanished worker (attempt + 1), fail after 3 attempts: ok (%s)\n", r.error);
}

static void test_duplicates_and_cancel(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-dup");
    zactor_t *b = start_broker(&cfg, ep);
    conn c = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    fake_worker *w = worker_start(ep, "dup", FW_DUPLICATE, 1);
    wait_idle_workers(b, &c, 1);
    submit(&c, "jobD", 0, 5);
    ac_result r;
    for (int i = 0; i < 5; i++)
        CHECK(next_result(&c, &r) && r.status == AC_RESULT_OK);
    conn_idle(&c, 3 * HB_MS); /* no second copy of any result arrives */
    /* A resubmission of completed keys runs them again, once each. */
    ac_broker_stats st = stats(b);
    CHECK(st.duplicate_results == 5 && st.results == 5);
    worker_stop(&w);

    /* Cancel: one task held by a worker, four queued. */
    fake_worker *h = worker_start(ep, "holder", FW_HOLD, 0);
    wait_idle_workers(b, &c, 1);
    submit(&c, "jobC", 0, 5);
    submit(&c, "jobC", 0, 5); /* resubmitted while queued / in flight: ignored */
    while (h->tasks == 0)
        conn_idle(&c, 10);
    st = stats(b);
    CHECK(st.queued == 4 && st.in_flight == 1);
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_CANCEL);
    snprintf(m.cancel.job, sizeof m.cancel.job, "jobC");
    conn_send(&c, &m);
    while (h->cancels == 0)
        conn_idle(&c, 10);
    conn_idle(&c, HB_MS); /* no RESULT for cancelled tasks */
    st = stats(b);
    CHECK(st.queued == 0 && st.in_flight == 0 && st.cancelled == 5);
    CHECK(st.idle_workers == 1); /* the worker answered CANCELLED and is idle again */
    /* Cancel by key: two of three queued tasks. */
    submit(&c, "jobC", 10, 3); /* shard 10 goes to the holder, 11 and 12 wait */
    while (h->tasks < 2)
        conn_idle(&c, 10);
    ac_task_key keys[2];
    memset(keys, 0, sizeof keys);
    for (int i = 0; i < 2; i++) {
        snprintf(keys[i].job, sizeof keys[i].job, "jobC");
        keys[i].shard = 11 + (uint32_t)i;
    }
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_CANCEL);
    snprintf(m.cancel.job, sizeof m.cancel.job, "jobC");
    m.cancel.nkeys = 2;
    m.cancel.keys = keys;
    conn_send(&c, &m);
    conn_idle(&c, HB_MS);
    st = stats(b);
    CHECK(st.queued == 0 && st.in_flight == 1 && st.cancelled == 7);
    /* JOB_END frees the job (and cancels the held task). */
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_JOB_END);
    snprintf(m.job, sizeof m.job, "jobC");
    conn_send(&c, &m);
    while (h->cancels < 2)
        conn_idle(&c, 10);
    conn_idle(&c, HB_MS);
    st = stats(b);
    CHECK(st.in_flight == 0 && st.idle_workers == 1);
    worker_stop(&h);
    conn_close(&c);
    zactor_destroy(&b);
    printf("  duplicate results dropped, cancel (job, keys), job end: ok\n");
}

static void test_blobs(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-blobs");
    cfg.blob_bytes_per_job = 4u << 20;
    zactor_t *b = start_broker(&cfg, ep);
    conn c = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    size_t size = (5u << 20) / 2 + 123; /* 2.5 MiB + 123: three chunks */
    uint8_t *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    uint8_t hash[AC_HASH_BYTES] = {0xb1, 0x0b};
    ac_msg m;
    put_blob_chunks(&c, "jobB", hash, data, size, 0, 3);
    /* A second blob would exceed the job's 4 MiB bound: refused with ERROR. */
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_BLOB_PUT);
    snprintf(m.blob.job, sizeof m.blob.job, "jobB");
    m.blob.hash[0] = 0xee;
    m.blob.total = 2u << 20;
    m.blob.data.data = data;
    m.blob.data.len = 100;
    conn_send(&c, &m);
    ac_msg in;
    CHECK(conn_recv(&c, &in, WAIT_MS) && in.cmd == AC_MSG_ERROR &&
          strstr(in.error.message, "exceeds the blob store bound") && !strcmp(in.error.job, "jobB"));
    ac_msg_reset(&in);

    /* A worker fetches it in chunks. */
    conn w = conn_new(ep, AC_PROTO_WORKER, NULL, NULL);
    send_ready(w.s, "fetcher");
    CHECK(fetched_equal(&w, hash, data, size));
    /* Unknown hash, and a range beyond the end. */
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_BLOB_REQ);
    m.blob_req.hash[0] = 0x77;
    m.blob_req.length = 10;
    conn_send(&w, &m);
    CHECK(conn_recv(&w, &in, WAIT_MS) && in.cmd == AC_MSG_BLOB && in.blob.status == AC_BLOB_UNKNOWN);
    ac_msg_reset(&in);
    memcpy(m.blob_req.hash, hash, AC_HASH_BYTES);
    m.blob_req.offset = size;
    conn_send(&w, &m);
    CHECK(conn_recv(&w, &in, WAIT_MS) && in.cmd == AC_MSG_BLOB && in.blob.status == AC_BLOB_RANGE);
    ac_msg_reset(&in);
    /* After JOB_END the blob is gone. */
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_JOB_END);
    snprintf(m.job, sizeof m.job, "jobB");
    conn_send(&c, &m);
    conn_idle(&c, HB_MS);
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_BLOB_REQ);
    memcpy(m.blob_req.hash, hash, AC_HASH_BYTES);
    m.blob_req.length = 10;
    conn_send(&w, &m);
    CHECK(conn_recv(&w, &in, WAIT_MS) && in.cmd == AC_MSG_BLOB && in.blob.status == AC_BLOB_UNKNOWN);
    ac_msg_reset(&in);
    free(data);
    conn_close(&w);
    conn_close(&c);
    zactor_destroy(&b);
    printf("  blob put / served in chunks / bound / freed: ok\n");
}

/* A client that started over on a new connection uploads the blob again from
 * offset 0 while the broker holds part of the first upload; late chunks of the
 * first upload must not spoil the second. */
static void test_blob_upload_restarted(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-blob-restart");
    zactor_t *b = start_broker(&cfg, ep);
    conn old = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    size_t size = 2 * AC_BLOB_CHUNK + 77; /* three chunks */
    uint8_t *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 40503u >> 7);
    uint8_t hash[AC_HASH_BYTES] = {0xc4, 0x11};
    put_blob_chunks(&old, "jobR", hash, data, size, 0, 2); /* the first upload stops after 2 chunks */
    conn_idle(&old, HB_MS);
    conn fresh = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    put_blob_chunks(&fresh, "jobR", hash, data, size, 0, 1);
    put_blob_chunks(&old, "jobR", hash, data, size, 2, 3); /* late: the abandoned upload's last chunk */
    put_blob_chunks(&fresh, "jobR", hash, data, size, 1, 3);
    ac_msg in;
    bool refused = conn_recv(&fresh, &in, HB_MS * 2) && in.cmd == AC_MSG_ERROR;
    CHECK(!refused, "the new upload was refused: %s", refused ? in.error.message : "");
    if (refused)
        ac_msg_reset(&in);
    conn w = conn_new(ep, AC_PROTO_WORKER, NULL, NULL);
    send_ready(w.s, "fetcher");
    CHECK(fetched_equal(&w, hash, data, size), "the blob served is not the one uploaded");
    free(data);
    conn_close(&w);
    conn_close(&fresh);
    conn_close(&old);
    zactor_destroy(&b);
    printf("  blob upload started over on a new connection: ok\n");
}

static void test_garbage_and_limits(void)
{
    char ep[256];
    ac_broker_config cfg = test_config("inproc://broker-garbage");
    cfg.max_msgs_per_s = 200;
    zactor_t *b = start_broker(&cfg, ep);
    conn c = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    fake_worker *w = worker_start(ep, "w", FW_NORMAL, 1);
    wait_idle_workers(b, &c, 1);
    /* A raw socket sends garbage of several shapes; each is answered with DISCONNECT. */
    zsock_t *raw = zsock_new_dealer(ep);
    zsock_set_rcvtimeo(raw, WAIT_MS);
    zsock_send(raw, "s", "hello");
    zsock_send(raw, "bbb", "ACPW\x01", (size_t)5, "\x01", (size_t)1, "\xc1", (size_t)1);
    zsock_send(raw, "bbb", "ACPC\x09", (size_t)5, "\x0d", (size_t)1, "\x90", (size_t)1);
    zsock_send(raw, "bbb", "ACPC\x01", (size_t)5, "\x7f", (size_t)1, "\x90", (size_t)1);
    zsock_send(raw, "bbbb", "ACPC\x01", (size_t)5, "\x0d", (size_t)1, "\x90", (size_t)1, "x", (size_t)1);
    int disconnects = 0;
    for (int i = 0; i < 5; i++) {
        ac_msg m;
        ac_err err;
        if (ac_msg_recv(raw, AC_DIR_FROM_BROKER, &m, NULL, NULL, &err) == AC_OK) {
            disconnects += m.cmd == AC_MSG_DISCONNECT && strstr(m.reason, "malformed") != NULL;
            ac_msg_reset(&m);
        }
    }
    CHECK(disconnects == 5);
    ac_broker_stats st = stats(b);
    CHECK(st.malformed == 5);
    /* A registered worker that sends garbage is dropped; a HEARTBEAT from an
     * unknown worker is answered with DISCONNECT. */
    conn rw = conn_new(ep, AC_PROTO_WORKER, NULL, NULL);
    send_ready(rw.s, "rogue");
    wait_idle_workers(b, &c, 2);
    zsock_send(rw.s, "b", "junk", (size_t)4);
    conn_heartbeat(&rw);
    ac_msg m;
    CHECK(conn_recv(&rw, &m, WAIT_MS) && m.cmd == AC_MSG_DISCONNECT && strstr(m.reason, "malformed"));
    ac_msg_reset(&m);
    CHECK(conn_recv(&rw, &m, WAIT_MS) && m.cmd == AC_MSG_DISCONNECT && strstr(m.reason, "unknown worker"));
    ac_msg_reset(&m);
    st = stats(b);
    CHECK(st.malformed == 6 && st.unknown_peer >= 1 && st.workers == 1);
    /* A flood of messages from one peer: the excess is dropped, others are served. */
    conn flood = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    for (int i = 0; i < 3000; i++)
        conn_heartbeat(&flood);
    submit(&c, "jobG", 0, 3);
    ac_result r;
    for (int i = 0; i < 3; i++)
        CHECK(next_result(&c, &r) && r.status == AC_RESULT_OK);
    conn_idle(&c, HB_MS);
    st = stats(b);
    CHECK(st.rate_dropped > 0);
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS);
    conn_send(&c, &m);
    ac_msg in;
    CHECK(conn_recv(&c, &in, WAIT_MS) && in.cmd == AC_MSG_STATUS_REPLY);
    if (in.cmd == AC_MSG_STATUS_REPLY) {
        /* spot-check the map: a worker named "w" that has done 3 tasks */
        ac_mpack_reader rd;
        ac_mpack_reader_init(&rd, in.status_map.data, in.status_map.len);
        uint32_t n;
        CHECK(ac_mpack_read_map(&rd, &n) && n == 9);
        bool found = false;
        for (uint32_t i = 0; i < n; i++) {
            const char *k;
            size_t kl;
            CHECK(ac_mpack_read_str(&rd, &k, &kl));
            if (kl == 7 && !memcmp(k, "workers", 7)) {
                uint32_t nw;
                CHECK(ac_mpack_read_array(&rd, &nw) && nw == 1);
                found = true;
            }
            ac_mpack_skip(&rd);
            if (found)
                break;
        }
        CHECK(found);
    }
    ac_msg_reset(&in);
    zsock_destroy(&raw);
    conn_close(&flood);
    conn_close(&rw);
    worker_stop(&w);
    conn_close(&c);
    zactor_destroy(&b);
    printf("  garbage counted and answered with DISCONNECT, service continues, rate limit: ok\n");
}

/* ---- CURVE -------------------------------------------------------------------------- */

static void make_cert(const char *dir, const char *name, bool public_in_dir, const char *keydir)
{
    zcert_t *c = zcert_new();
    char path[512];
    snprintf(path, sizeof path, "%s/%s.key", keydir, name);
    zcert_save_secret(c, path);
    snprintf(path, sizeof path, "%s/%s.pub", keydir, name);
    zcert_save_public(c, path);
    if (public_in_dir) {
        snprintf(path, sizeof path, "%s/%s.pub", dir, name);
        zcert_save_public(c, path);
    }
    zcert_destroy(&c);
}

/* STATUS round trip on a fresh connection with the given key; true if answered. */
static bool curve_status(const char *ep, const char *keydir, const char *name, int wait_ms)
{
    char cert[512], server[512];
    snprintf(cert, sizeof cert, "%s/%s.key", keydir, name);
    snprintf(server, sizeof server, "%s/broker.pub", keydir);
    conn c = conn_new(ep, AC_PROTO_CLIENT, cert, server);
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS);
    conn_send(&c, &m);
    ac_msg in;
    bool ok = conn_recv(&c, &in, wait_ms) && in.cmd == AC_MSG_STATUS_REPLY;
    ac_msg_reset(&in);
    conn_close(&c);
    return ok;
}

static void test_curve(void)
{
    char tmpl[] = "/tmp/ac_broker_curve_XXXXXX";
    char *base = mkdtemp(tmpl);
    CHECK(base != NULL);
    if (!base)
        return;
    char dir[256], keys[256];
    snprintf(dir, sizeof dir, "%s/admitted", base);
    snprintf(keys, sizeof keys, "%s/keys", base);
    zsys_dir_create(dir);
    zsys_dir_create(keys);
    make_cert(dir, "broker", false, keys);
    make_cert(dir, "coord", true, keys);
    make_cert(dir, "other", true, keys);
    make_cert(dir, "intruder", false, keys);
    char cert[512];
    snprintf(cert, sizeof cert, "%s/broker.key", keys);
    ac_broker_config cfg = test_config("tcp://127.0.0.1:*");
    cfg.curve_dir = dir;
    cfg.cert_path = cert;
    char ep[256];
    zactor_t *b = start_broker(&cfg, ep);
    CHECK(curve_status(ep, keys, "coord", WAIT_MS));           /* a listed key is admitted */
    CHECK(!curve_status(ep, keys, "intruder", 10 * HB_MS));    /* an unknown key is refused */
    /* A plain (non-CURVE) peer gets nothing either. */
    conn plain = conn_new(ep, AC_PROTO_CLIENT, NULL, NULL);
    ac_msg m, in;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS);
    conn_send(&plain, &m);
    CHECK(!conn_recv(&plain, &in, 5 * HB_MS));
    conn_close(&plain);
    /* Peers are identified by key: a job submitted by "coord" cannot be ended by "other". */
    char ccert[512], ocert[512], spub[512];
    snprintf(ccert, sizeof ccert, "%s/coord.key", keys);
    snprintf(ocert, sizeof ocert, "%s/other.key", keys);
    snprintf(spub, sizeof spub, "%s/broker.pub", keys);
    conn co = conn_new(ep, AC_PROTO_CLIENT, ccert, spub), ot = conn_new(ep, AC_PROTO_CLIENT, ocert, spub);
    submit(&co, "jobK", 0, 2);
    conn_idle(&co, HB_MS);
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_JOB_END);
    snprintf(m.job, sizeof m.job, "jobK");
    conn_send(&ot, &m);
    CHECK(conn_recv(&ot, &in, WAIT_MS) && in.cmd == AC_MSG_ERROR && strstr(in.error.message, "another key"));
    ac_msg_reset(&in);
    CHECK(stats(b).queued == 2);
    /* Admitting a key by adding its file, without a restart. */
    char path[512];
    snprintf(path, sizeof path, "%s/intruder.pub", keys);
    char dst[512];
    snprintf(dst, sizeof dst, "%s/intruder.pub", dir);
    zcert_t *ic = zcert_load(path);
    CHECK(ic && zcert_save_public(ic, dst) == 0);
    zcert_destroy(&ic);
    /* zauth's store notices the change by the directory's timestamp and size */
    bool admitted = false;
    for (int64_t end = zclock_mono() + WAIT_MS; !admitted && zclock_mono() < end;) {
        admitted = curve_status(ep, keys, "intruder", 2 * HB_MS);
        conn_idle(&co, HB_MS / 2);
        conn_idle(&ot, HB_MS / 2);
    }
    CHECK(admitted);
    /* Revoking "coord" by removing its file: its open connection is dropped and
     * a new one is refused. */
    snprintf(path, sizeof path, "%s/coord.pub", dir);
    unlink(path);
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS);
    bool revoked = false;
    for (int64_t end = zclock_mono() + WAIT_MS; !revoked && zclock_mono() < end;) {
        conn_idle(&ot, 1);
        conn_send(&co, &m);
        if (conn_recv(&co, &in, 2 * HB_MS)) {
            revoked = in.cmd == AC_MSG_DISCONNECT && strstr(in.reason, "revoked");
        }
        ac_msg_reset(&in);
    }
    CHECK(revoked);
    CHECK(!curve_status(ep, keys, "coord", 10 * HB_MS));
    CHECK(stats(b).revoked >= 1);
    conn_close(&co);
    conn_close(&ot);
    zactor_destroy(&b);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    printf("  CURVE: listed key admitted, unknown refused, added key admitted, removed key revoked: ok\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    zsys_init();
    zsys_handler_set(NULL);
    printf("broker_selftest:\n");
    /* AC_BROKER_ONLY=name runs one test (dispatch, fairness, requeue, cancel, blobs, garbage, curve). */
    const char *only = getenv("AC_BROKER_ONLY");
#define RUN(name, call)                                                                            \
    do {                                                                                           \
        if (!only || !strcmp(only, name))                                                          \
            call;                                                                                  \
    } while (0)
    char ipc[128];
    snprintf(ipc, sizeof ipc, "ipc:///tmp/ac_broker_selftest_%d.ipc", (int)getpid());
    RUN("dispatch", test_dispatch_idle_only("inproc://broker-dispatch"));
    RUN("dispatch", test_dispatch_idle_only(ipc));
    RUN("dispatch", test_dispatch_idle_only("tcp://127.0.0.1:*"));
    RUN("fairness", test_fairness());
    RUN("requeue", test_requeue_and_fail());
    RUN("cancel", test_duplicates_and_cancel());
    RUN("blobs", test_blobs());
    RUN("blob upload started over", test_blob_upload_restarted());
    RUN("garbage", test_garbage_and_limits());
    RUN("curve", test_curve());
    if (failures) {
        fprintf(stderr, "broker_selftest: %d failures\n", failures);
        return 1;
    }
    printf("broker_selftest: ok\n");
    return 0;
}
