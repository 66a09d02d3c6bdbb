/* bench_broker: dispatch capacity of the broker and bytes on the wire.
 *
 *   bench_broker [WORKERS=128] [TASKS=200000] [ENDPOINT=tcp://127.0.0.1:*]
 *
 * A broker thread, WORKERS no-op workers (threads, one DEALER each, answering
 * every TASK at once with an empty RESULT) and one coordinator that submits
 * TASKS NOOP tasks (SUBMIT batches of 4096) and waits for every RESULT. Prints
 * tasks/s end to end (submit of the first task to the last result), and the
 * encoded size of a typical TASK/RESULT (frames + ZMTP frame headers), for a
 * NOOP task and for an EVAL task with a candidate payload of 2 KiB (a
 * threshold table of a mid-size network). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_broker.h"
#include "ac_msg_codec.h"

typedef struct {
    char endpoint[256];
    atomic_int *ready;
    atomic_long *done;
} worker_arg;

static void noop_worker(zsock_t *pipe, void *argp)
{
    worker_arg *a = argp;
    ac_err err;
    zsock_t *s = ac_msg_dealer_new(a->endpoint, NULL, NULL, &err);
    zsock_signal(pipe, 0);
    if (!s)
        return;
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_READY);
    snprintf(m.ready.name, sizeof m.ready.name, "noop");
    ac_msg_send(s, NULL, &m, &err);
    (*a->ready)++;
    zpoller_t *poller = zpoller_new(pipe, s, NULL);
    for (;;) {
        zsock_t *which = zpoller_wait(poller, 500);
        if (which == pipe)
            break;
        if (!which) {
            if (zpoller_terminated(poller))
                break;
            ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_HEARTBEAT);
            ac_msg_send(s, NULL, &m, &err);
            continue;
        }
        ac_msg in;
        if (ac_msg_recv(s, AC_DIR_FROM_BROKER, &in, NULL, NULL, &err) != AC_OK)
            continue;
        if (in.cmd == AC_MSG_TASK) {
            ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_RESULT);
            m.result.key = in.task.key;
            ac_msg_send(s, NULL, &m, &err);
            (*a->done)++;
        }
        ac_msg_reset(&in);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&s);
}

/* Encoded bytes of m plus ZMTP 3 frame headers (2 bytes up to 255 bytes of
 * body, 9 above), plus the routing id frame the ROUTER side adds on its hop. */
static size_t wire_bytes(const ac_msg *m, ac_msg_dir dir, size_t *frames_only)
{
    zmsg_t *zm = NULL;
    ac_err err;
    if (ac_msg_encode(m, dir, &zm, &err) != AC_OK) {
        fprintf(stderr, "encode: %s\n", err.msg);
        exit(1);
    }
    size_t body = 0, hdr = 0;
    for (zframe_t *f = zmsg_first(zm); f; f = zmsg_next(zm)) {
        body += zframe_size(f);
        hdr += zframe_size(f) > 255 ? 9 : 2;
    }
    zmsg_destroy(&zm);
    *frames_only = body;
    return body + hdr;
}

static void report_sizes(void)
{
    ac_task t;
    memset(&t, 0, sizeof t);
    snprintf(t.key.job, sizeof t.key.job, "mobilenetv2-auto-3f2a");
    t.key.round = 3;
    t.key.candidate = 17;
    t.key.shard = 42;
    t.key.attempt = 1;
    t.kind = AC_TASK_NOOP;
    memset(t.model_hash, 0xab, sizeof t.model_hash);
    memset(t.data_hash, 0xcd, sizeof t.data_hash);
    t.begin = 42 * 250;
    t.end = 43 * 250;
    t.batch = 25;
    ac_msg m;
    size_t frames;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_TASK);
    m.task = t;
    size_t noop = wire_bytes(&m, AC_DIR_FROM_BROKER, &frames);
    printf("TASK (noop, no payload):              %5zu bytes on the wire (%zu in frames)\n", noop, frames);
    static uint8_t payload[2048];
    t.kind = AC_TASK_EVAL;
    snprintf(t.input_shapes, sizeof t.input_shapes, "[1,3,224,224]");
    snprintf(t.preprocess, sizeof t.preprocess, "resize=256,crop=224,mean=123.7:116.3:103.5,scale=0.017");
    t.payload.data = payload;
    t.payload.len = sizeof payload;
    m.task = t;
    size_t eval = wire_bytes(&m, AC_DIR_FROM_BROKER, &frames);
    printf("TASK (eval, 2 KiB candidate payload): %5zu bytes on the wire (%zu in frames)\n", eval, frames);
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_RESULT);
    m.result.key = t.key;
    m.result.seconds = 1.5;
    size_t res = wire_bytes(&m, AC_DIR_TO_BROKER, &frames);
    printf("RESULT (empty partial):               %5zu bytes on the wire (%zu in frames)\n", res, frames);
    static uint8_t partial[96]; /* a top-k classification partial: counts + a few sums */
    m.result.partial.data = partial;
    m.result.partial.len = sizeof partial;
    res = wire_bytes(&m, AC_DIR_TO_BROKER, &frames);
    printf("RESULT (96-byte metric partial):      %5zu bytes on the wire (%zu in frames)\n", res, frames);
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_HEARTBEAT);
    res = wire_bytes(&m, AC_DIR_TO_BROKER, &frames);
    printf("HEARTBEAT:                            %5zu bytes on the wire (%zu in frames)\n", res, frames);
}

int main(int argc, char **argv)
{
    int nworkers = argc > 1 ? atoi(argv[1]) : 128;
    long ntasks = argc > 2 ? atol(argv[2]) : 200000;
    const char *bind = argc > 3 ? argv[3] : "tcp://127.0.0.1:*";
    if (nworkers < 1 || ntasks < 1) {
        fprintf(stderr, "usage: bench_broker [WORKERS] [TASKS] [ENDPOINT]\n");
        return 2;
    }
    zsys_init();
    zsys_set_max_sockets(0);
    report_sizes();

    ac_broker_config cfg;
    ac_broker_config_defaults(&cfg);
    cfg.endpoint = bind;
    cfg.liveness = 10;
    cfg.max_msgs_per_s = 0;
    char ep[256];
    ac_err err;
    zactor_t *broker = ac_broker_actor_new(&cfg, ep, &err);
    if (!broker) {
        fprintf(stderr, "bench_broker: %s\n", err.msg);
        return 1;
    }
    atomic_int ready = 0;
    atomic_long done = 0;
    worker_arg wa;
    snprintf(wa.endpoint, sizeof wa.endpoint, "%s", ep);
    wa.ready = &ready;
    wa.done = &done;
    zactor_t **workers = calloc((size_t)nworkers, sizeof *workers);
    for (int i = 0; i < nworkers; i++)
        workers[i] = zactor_new(noop_worker, &wa);
    ac_broker_stats st;
    do {
        zclock_sleep(20);
        ac_broker_actor_stats(broker, &st);
    } while ((int)st.idle_workers < nworkers);

    zsock_t *c = ac_msg_dealer_new(ep, NULL, NULL, &err);
    zsock_set_sndtimeo(c, -1); /* the bench may block on its own queue */
    ac_task *batch = calloc(AC_MSG_SUBMIT_MAX, sizeof *batch);
    int64_t t0 = zclock_usecs();
    long submitted = 0, results = 0, last_hb = 0;
    while (results < ntasks) {
        if (submitted < ntasks && submitted - results < 8 * AC_MSG_SUBMIT_MAX) {
            uint32_t n = (uint32_t)(ntasks - submitted < AC_MSG_SUBMIT_MAX ? ntasks - submitted : AC_MSG_SUBMIT_MAX);
            for (uint32_t i = 0; i < n; i++) {
                memset(&batch[i], 0, sizeof batch[i]);
                snprintf(batch[i].key.job, sizeof batch[i].key.job, "bench");
                batch[i].key.shard = (uint32_t)(submitted + i);
                batch[i].kind = AC_TASK_NOOP;
            }
            ac_msg m;
            ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_SUBMIT);
            snprintf(m.submit.job, sizeof m.submit.job, "bench");
            m.submit.ntasks = n;
            m.submit.tasks = batch;
            if (ac_msg_send(c, NULL, &m, &err) != AC_OK) {
                fprintf(stderr, "submit: %s\n", err.msg);
                return 1;
            }
            submitted += n;
        }
        zmq_pollitem_t it = {zsock_resolve(c), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, submitted < ntasks ? 0 : 500) <= 0)
            continue;
        ac_msg in;
        if (ac_msg_recv(c, AC_DIR_FROM_BROKER, &in, NULL, NULL, &err) != AC_OK)
            continue;
        if (in.cmd == AC_MSG_RESULT)
            results++;
        ac_msg_reset(&in);
        if (results - last_hb >= 10000) { /* the coordinator is busy, but alive */
            ac_msg hb;
            ac_msg_init(&hb, AC_PROTO_CLIENT, AC_MSG_HEARTBEAT);
            ac_msg_send(c, NULL, &hb, &err);
            last_hb = results;
        }
    }
    double secs = (double)(zclock_usecs() - t0) / 1e6;
    ac_broker_actor_stats(broker, &st);
    printf("%d no-op workers on %s: %ld tasks in %.2f s = %.0f tasks/s "
           "(dispatched %llu, requeued %llu, duplicates %llu)\n",
           nworkers, ep, ntasks, secs, (double)ntasks / secs, (unsigned long long)st.dispatched,
           (unsigned long long)st.requeued, (unsigned long long)st.duplicate_results);
    zsock_destroy(&c);
    for (int i = 0; i < nworkers; i++)
        zactor_destroy(&workers[i]);
    zactor_destroy(&broker);
    free(workers);
    free(batch);
    return 0;
}
