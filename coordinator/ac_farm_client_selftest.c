/* ac_farm_client against scripted brokers on a real TCP endpoint: a broker
 * is killed and another starts on the same address, at the moments that
 * matter for what the client has sent and heard (docs/protocol.md §7.7-7.8):
 *   - before it greeted the client: nothing of the job may have gone to it;
 *   - after it took the tasks and answered some: the rest is resubmitted to
 *     the next broker, after the job's blobs;
 *   - between two runs of the client: the next run starts on the new broker
 *     with the blobs first.
 * The scripted broker answers tasks itself (no workers), so each check sees
 * exactly which messages the client sent to which broker. */
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_check.h"
#include "ac_farm_client.h"
#include "ac_msg_codec.h"

#define NT 4
#define JOB "selftest-job"
#define MAX_PEERS 16

/* ---- a scripted broker ----------------------------------------------------------- */

typedef struct {
    zsock_t *router;
    uint64_t epoch;
    bool greet;               /* send the greeting HEARTBEAT to a new connection */
    zframe_t *peers[MAX_PEERS];
    int npeers;
    int answer_first;         /* answer only this many tasks of a SUBMIT (-1: all) */
    /* what it received */
    int submits, blob_puts, heartbeats, statuses;
    uint64_t blob_have, blob_total;
    bool blob_complete_at_submit;
    ac_task_key submitted[64];
    int nsubmitted;
} fake_broker;

static fake_broker *fake_new(const char *endpoint, uint64_t epoch, bool greet)
{
    fake_broker *f = calloc(1, sizeof *f);
    f->epoch = epoch;
    f->greet = greet;
    f->answer_first = -1;
    f->blob_complete_at_submit = true;
    f->router = zsock_new(ZMQ_ROUTER);
    zsock_set_linger(f->router, 0);
    zsock_set_maxmsgsize(f->router, (int64_t)AC_MSG_MAX_BYTES);
    /* the previous broker's port may take a moment to be free again */
    for (int i = 0; i < 100 && zsock_bind(f->router, "%s", endpoint) < 0; i++)
        usleep(20000);
    return f;
}

static void fake_destroy(fake_broker **p)
{
    fake_broker *f = *p;
    for (int i = 0; i < f->npeers; i++)
        zframe_destroy(&f->peers[i]);
    zsock_destroy(&f->router);
    free(f);
    *p = NULL;
}

static void fake_send(fake_broker *f, zframe_t *rid, const ac_msg *m)
{
    ac_err err = {0};
    CHECK(ac_msg_send(f->router, rid, m, &err) == AC_OK, "fake broker send: %s", err.msg);
}

static void fake_heartbeat(fake_broker *f, zframe_t *rid)
{
    ac_msg hb;
    ac_msg_init(&hb, AC_PROTO_CLIENT, AC_MSG_HEARTBEAT);
    hb.heartbeat.epoch = f->epoch;
    hb.heartbeat.interval_ms = 50;
    hb.heartbeat.liveness = 4;
    fake_send(f, rid, &hb);
}

static void fake_status_reply(fake_broker *f, zframe_t *rid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "epoch", 5);
    msgpack_pack_uint64(&pk, f->epoch);
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS_REPLY);
    m.status_map.data = (const uint8_t *)sb.data;
    m.status_map.len = sb.size;
    fake_send(f, rid, &m);
    msgpack_sbuffer_destroy(&sb);
}

static void fake_result(fake_broker *f, zframe_t *rid, const ac_task_key *k)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_RESULT);
    m.result.key = *k;
    m.result.key.attempt = 1;
    m.result.status = AC_RESULT_OK;
    m.result.seconds = 0.001;
    fake_send(f, rid, &m);
}

/* A connection not seen before (a restarted client socket, or one that
 * reconnected by itself) gets the greeting when the broker greets. */
static void fake_note_peer(fake_broker *f, zframe_t *rid)
{
    for (int i = 0; i < f->npeers; i++)
        if (zframe_eq(f->peers[i], rid))
            return;
    if (f->npeers < MAX_PEERS)
        f->peers[f->npeers++] = zframe_dup(rid);
    if (f->greet)
        fake_heartbeat(f, rid);
}

static void fake_on_submit(fake_broker *f, zframe_t *rid, const ac_msg_submit *s)
{
    f->submits++;
    if (f->blob_total == 0 || f->blob_have != f->blob_total)
        f->blob_complete_at_submit = false;
    for (uint32_t i = 0; i < s->ntasks; i++) {
        if (f->nsubmitted < 64)
            f->submitted[f->nsubmitted++] = s->tasks[i].key;
        if (f->answer_first < 0 || (int)i < f->answer_first)
            fake_result(f, rid, &s->tasks[i].key);
    }
}

/* Serves for ms milliseconds (or until *stop is set). */
static void fake_serve(fake_broker *f, int ms, atomic_int *stop)
{
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end && !(stop && atomic_load(stop))) {
        zmq_pollitem_t it = {zsock_resolve(f->router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) <= 0)
            continue;
        ac_msg m;
        zframe_t *rid = NULL;
        ac_err err = {0};
        if (ac_msg_recv(f->router, AC_DIR_TO_BROKER, &m, &rid, NULL, &err) != AC_OK) {
            CHECK(0, "the client sent a malformed message: %s", err.msg);
            zframe_destroy(&rid);
            continue;
        }
        fake_note_peer(f, rid);
        switch (m.cmd) {
        case AC_MSG_HEARTBEAT: f->heartbeats++; break;
        case AC_MSG_STATUS:
            f->statuses++;
            fake_status_reply(f, rid);
            break;
        case AC_MSG_BLOB_PUT:
            f->blob_puts++;
            if (m.blob.offset == 0)
                f->blob_have = 0;
            f->blob_have += m.blob.data.len;
            f->blob_total = m.blob.total;
            break;
        case AC_MSG_SUBMIT: fake_on_submit(f, rid, &m.submit); break;
        default: break;
        }
        ac_msg_reset(&m);
        zframe_destroy(&rid);
    }
}

/* ---- the client, in a thread ------------------------------------------------------- */

static uint8_t blob_bytes[3u << 20]; /* three chunks */

typedef struct {
    char endpoint[128];
    int runs;                 /* 1 or 2 */
    atomic_int go_second;     /* the second run waits for this */
    atomic_int finished;
    int rc[2];
    ac_err err;
    ac_farm_outcome out[2][NT];
    ac_farm_client_stats stats;
} client_run;

static void make_tasks(ac_task *t, uint32_t round)
{
    memset(t, 0, sizeof(ac_task) * NT);
    for (int i = 0; i < NT; i++) {
        snprintf(t[i].key.job, sizeof t[i].key.job, "%s", JOB);
        t[i].key.round = round;
        t[i].key.shard = (uint32_t)i;
        t[i].kind = AC_TASK_NOOP;
        memset(t[i].model_hash, 7, AC_HASH_BYTES);
        t[i].end = 1;
        t[i].batch = 1;
    }
}

static void *client_main(void *arg)
{
    client_run *r = arg;
    ac_farm_client_opts o = {.endpoint = r->endpoint, .heartbeat_ms = 50, .liveness = 4};
    ac_farm_client *c = ac_farm_client_new(&o, &r->err);
    r->rc[0] = r->rc[1] = -1;
    if (c) {
        uint8_t hash[AC_HASH_BYTES];
        memset(hash, 7, sizeof hash);
        r->rc[0] = ac_farm_client_put_blob(c, JOB, hash, blob_bytes, sizeof blob_bytes, &r->err);
        ac_task tasks[NT];
        for (int run = 0; run < r->runs && r->rc[0] == 0; run++) {
            while (run == 1 && !atomic_load(&r->go_second))
                usleep(5000);
            make_tasks(tasks, (uint32_t)run + 1);
            r->rc[run] = ac_farm_client_run(c, JOB, tasks, NT, r->out[run], 20.0, NULL, NULL, &r->err);
        }
        ac_farm_client_get_stats(c, &r->stats);
        ac_farm_client_destroy(&c);
    }
    atomic_store(&r->finished, 1);
    return NULL;
}

static int outcomes_ok(const ac_farm_outcome *o)
{
    int k = 0;
    for (int i = 0; i < NT; i++)
        k += o[i].status == AC_RESULT_OK;
    return k;
}

/* Binds a first broker on an ephemeral port and starts the client on it. */
static fake_broker *start(client_run *r, pthread_t *th, uint64_t epoch, bool greet, int runs)
{
    memset(r, 0, sizeof *r);
    r->runs = runs;
    fake_broker *f = fake_new("tcp://127.0.0.1:*", epoch, greet);
    snprintf(r->endpoint, sizeof r->endpoint, "%s", zsock_endpoint(f->router));
    pthread_create(th, NULL, client_main, r);
    return f;
}

static void finish(client_run *r, pthread_t th, fake_broker *f)
{
    fake_serve(f, 20000, &r->finished);
    pthread_join(th, NULL);
}

/* The broker dies before its greeting reached the client: the client must
 * not have sent it the job's blobs or tasks, and the next broker gets them. */
static void test_killed_before_greeting(void)
{
    client_run r;
    pthread_t th;
    fake_broker *b0 = start(&r, &th, 11, false, 1);
    fake_serve(b0, 400, NULL);
    CHECK(b0->heartbeats > 0, "the client did not announce itself");
    CHECK(b0->blob_puts == 0 && b0->submits == 0,
          "before any greeting the client sent %d blob chunks and %d SUBMITs", b0->blob_puts, b0->submits);
    fake_destroy(&b0);
    fake_broker *b1 = fake_new(r.endpoint, 22, true);
    finish(&r, th, b1);
    CHECK(r.rc[0] == 0, "run failed: %s", r.err.msg);
    CHECK(outcomes_ok(r.out[0]) == NT, "%d of %d tasks ok", outcomes_ok(r.out[0]), NT);
    CHECK(b1->submits >= 1 && b1->blob_complete_at_submit, "the new broker got %d SUBMITs, blobs first: %d",
          b1->submits, b1->blob_complete_at_submit);
    fake_destroy(&b1);
    ac_farm_outcome_free(r.out[0], NT);
}

/* The broker took the tasks, answered two and died: the next broker gets the
 * blobs again and exactly the two tasks without a result. */
static void test_killed_after_some_results(void)
{
    client_run r;
    pthread_t th;
    fake_broker *b0 = start(&r, &th, 11, true, 1);
    b0->answer_first = 2;
    for (int i = 0; i < 400 && b0->submits == 0; i++)
        fake_serve(b0, 10, NULL);
    fake_serve(b0, 100, NULL); /* the two results leave before the "kill" */
    CHECK(b0->submits == 1 && b0->nsubmitted == NT, "first broker: %d SUBMITs of %d tasks", b0->submits,
          b0->nsubmitted);
    fake_destroy(&b0);
    fake_broker *b1 = fake_new(r.endpoint, 22, true);
    finish(&r, th, b1);
    CHECK(r.rc[0] == 0, "run failed: %s", r.err.msg);
    CHECK(outcomes_ok(r.out[0]) == NT, "%d of %d tasks ok", outcomes_ok(r.out[0]), NT);
    CHECK(b1->blob_complete_at_submit, "the new broker got a SUBMIT before the whole blob");
    CHECK(b1->nsubmitted == 2 && b1->submitted[0].shard == 2 && b1->submitted[1].shard == 3,
          "resubmitted %d tasks (want shards 2 and 3)", b1->nsubmitted);
    CHECK(r.stats.broker_restarts >= 1 && r.stats.resubmits == 2, "restarts %d, resubmits %d",
          r.stats.broker_restarts, r.stats.resubmits);
    fake_destroy(&b1);
    ac_farm_outcome_free(r.out[0], NT);
}

/* The broker restarts while the client computes between two runs: the second
 * run's tasks go to the new broker, after the job's blobs. With late_ms > 0
 * the new broker reads nothing for that long after the second run starts,
 * longer than the client waits for its STATUS answer: the client cannot know
 * which broker is there, and must still not send tasks before the blobs. */
static void test_restart_between_runs(int late_ms)
{
    client_run r;
    pthread_t th;
    fake_broker *b0 = start(&r, &th, 11, true, 2);
    for (int i = 0; i < 400 && b0->nsubmitted < NT; i++)
        fake_serve(b0, 10, NULL);
    fake_serve(b0, 100, NULL);
    fake_destroy(&b0);
    fake_broker *b1 = fake_new(r.endpoint, 22, true);
    atomic_store(&r.go_second, 1);
    if (late_ms > 0)
        usleep((useconds_t)late_ms * 1000);
    finish(&r, th, b1);
    CHECK(r.rc[0] == 0 && r.rc[1] == 0, "runs: %d %d: %s", r.rc[0], r.rc[1], r.err.msg);
    CHECK(outcomes_ok(r.out[0]) == NT && outcomes_ok(r.out[1]) == NT, "ok: %d and %d of %d",
          outcomes_ok(r.out[0]), outcomes_ok(r.out[1]), NT);
    CHECK(b1->blob_complete_at_submit && b1->nsubmitted == NT, "new broker: %d tasks, blobs first: %d",
          b1->nsubmitted, b1->blob_complete_at_submit);
    CHECK(r.stats.broker_restarts >= 1, "restarts %d", r.stats.broker_restarts);
    fake_destroy(&b1);
    ac_farm_outcome_free(r.out[0], NT);
    ac_farm_outcome_free(r.out[1], NT);
}

int main(void)
{
    for (size_t i = 0; i < sizeof blob_bytes; i++)
        blob_bytes[i] = (uint8_t)(i * 31u);
    test_killed_before_greeting();
    test_killed_after_some_results();
    test_restart_between_runs(0);
    test_restart_between_runs(600); /* the client waits 50 ms x 4 for the STATUS answer */
    if (failures)
        fprintf(stderr, "farm_client_selftest: %d failure(s)\n", failures);
    else
        printf("farm_client_selftest: ok\n");
    return failures != 0;
}
