#include "ac_worker.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_backend.h"
#include "ac_msg_codec.h"
#include "ac_worker_cache.h"
#include "ac_worker_eval.h"

#define MAX_FETCHES_PER_TASK 4   /* blobs fetched for one task before it fails */
#define PROGRESS_MIN_MS 200      /* PROGRESS at most this often */
#define READY_MAX_HASHES 1024

typedef enum { IDLE = 0, FETCHING, RUNNING } worker_state;

/* What the task thread shares with the loop. */
typedef struct {
    atomic_int cancel;
    atomic_int finished;           /* the thread is done: rc, res, partial are set */
    atomic_uint_fast64_t done, total;
    int rc;                         /* 0 or AC_CACHE_MISSING */
    /* A fetched blob the thread stores in the cache before the task runs
     * (unpacking and hashing a dataset can take longer than the broker's
     * liveness, so it must not block the loop's heartbeats). */
    uint8_t *blob;
    size_t blob_len;
    bool blob_is_model;
    uint8_t blob_hash[AC_HASH_BYTES];
    ac_result res;
    uint8_t *partial;
    uint8_t missing[AC_HASH_BYTES];
} task_run;

struct ac_worker {
    ac_worker_config cfg;
    char name[AC_MSG_NAME_MAX];
    ac_worker_cache *cache;
    ac_backend *backend;
    ac_worker_eval *eval;
    zsock_t *sock;
    int64_t last_recv, next_hb;
    uint64_t broker_epoch;
    worker_state state;
    /* the current task (a deep copy) */
    ac_task task;
    uint8_t *payload;
    int fetches;
    /* blob being fetched */
    uint8_t blob_hash[AC_HASH_BYTES];
    uint8_t *blob;
    uint64_t blob_len, blob_total;
    /* task thread */
    pthread_t thread;
    bool thread_live;
    task_run run;
    uint64_t progress_sent_done;
    int64_t progress_at;
    ac_worker_stats stats;
};

static void say(const ac_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const ac_worker *w, const char *fmt, ...)
{
    if (!w->cfg.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "worker %s: ", w->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *ac_worker_isa(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
    if (__builtin_cpu_supports("sse4.2"))
        return "sse4.2";
#endif
    return "generic";
}

void ac_worker_config_defaults(ac_worker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
}

ac_worker *ac_worker_new(const ac_worker_config *cfg, ac_err *err)
{
    if (!cfg->endpoint || !*cfg->endpoint) {
        ac_err_set(err, AC_E_INVALID, "worker: no broker endpoint (--connect)");
        return NULL;
    }
    if ((cfg->cert_path == NULL) != (cfg->server_pub_path == NULL)) {
        ac_err_set(err, AC_E_INVALID, "worker: CURVE needs both --curve-key and --server-key");
        return NULL;
    }
    ac_worker *w = calloc(1, sizeof *w);
    if (!w) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    if (w->cfg.heartbeat_ms <= 0)
        w->cfg.heartbeat_ms = 1000;
    if (w->cfg.liveness <= 0)
        w->cfg.liveness = 3;
    if (cfg->name && *cfg->name) {
        snprintf(w->name, sizeof w->name, "%s", cfg->name);
    } else {
        /* Several workers may share a process (the embedded cluster): the
         * handle's address tells them apart. */
        char host[32] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(w->name, sizeof w->name, "%s-%d-%04x", host, (int)getpid(), (unsigned)(((uintptr_t)w >> 4) & 0xffff));
    }
    w->cache = ac_worker_cache_new(cfg->cache_dir, cfg->cache_bytes, err);
    w->backend = w->cache ? ac_backend_cpu_new(cfg->threads, err) : NULL;
    w->eval = w->backend ? ac_worker_eval_new(w->cache, w->backend, cfg->threads, err) : NULL;
    if (!w->eval) {
        ac_worker_destroy(&w);
        return NULL;
    }
    return w;
}

static void stop_task_thread(ac_worker *w)
{
    if (!w->thread_live)
        return;
    atomic_store(&w->run.cancel, 1);
    pthread_join(w->thread, NULL);
    w->thread_live = false;
    free(w->run.partial);
    w->run.partial = NULL;
    free(w->run.blob);
    w->run.blob = NULL;
}

static void clear_task(ac_worker *w)
{
    stop_task_thread(w);
    free(w->payload);
    w->payload = NULL;
    free(w->blob);
    w->blob = NULL;
    w->blob_len = w->blob_total = 0;
    w->fetches = 0;
    w->state = IDLE;
}

void ac_worker_destroy(ac_worker **p)
{
    if (!p || !*p)
        return;
    ac_worker *w = *p;
    clear_task(w);
    zsock_destroy(&w->sock);
    ac_worker_eval_destroy(&w->eval);
    ac_backend_destroy(&w->backend);
    ac_worker_cache_destroy(&w->cache);
    free(w);
    *p = NULL;
}

void ac_worker_get_stats(const ac_worker *w, ac_worker_stats *out)
{
    *out = w->stats;
}

/* ---- sending -------------------------------------------------------------------------- */

static int send_msg(ac_worker *w, ac_msg *m)
{
    ac_err err = {0};
    int rc = ac_msg_send(w->sock, NULL, m, &err);
    if (rc)
        say(w, "send %s failed: %s", ac_msg_cmd_name(m->cmd), err.msg);
    w->next_hb = zclock_mono() + w->cfg.heartbeat_ms;
    return rc;
}

static void send_ready(ac_worker *w)
{
    uint8_t *hashes = malloc((size_t)READY_MAX_HASHES * AC_HASH_BYTES);
    size_t n = hashes ? ac_worker_cache_hashes(w->cache, hashes, READY_MAX_HASHES) : 0;
    if (n > READY_MAX_HASHES)
        n = READY_MAX_HASHES;
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_READY);
    snprintf(m.ready.name, sizeof m.ready.name, "%s", w->name);
    m.ready.threads = (uint32_t)(w->cfg.threads > 0 ? w->cfg.threads : 0);
    snprintf(m.ready.isa, sizeof m.ready.isa, "%s", ac_worker_isa());
    snprintf(m.ready.backend, sizeof m.ready.backend, "%s", w->backend->name);
    m.ready.cached = (ac_bytes){hashes, n * AC_HASH_BYTES};
    send_msg(w, &m);
    free(hashes);
}

static void send_heartbeat(ac_worker *w)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_HEARTBEAT);
    m.heartbeat.interval_ms = (uint32_t)w->cfg.heartbeat_ms;
    m.heartbeat.liveness = (uint32_t)w->cfg.liveness;
    send_msg(w, &m);
}

static void send_result(ac_worker *w, const ac_result *res)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_RESULT);
    m.result = *res;
    m.result.key = w->task.key;
    if (m.result.status != AC_RESULT_OK)
        m.result.partial = (ac_bytes){NULL, 0};
    if (!(m.result.seconds >= 0))
        m.result.seconds = 0;
    send_msg(w, &m);
    if (res->status == AC_RESULT_OK)
        w->stats.tasks_ok++;
    else if (res->status == AC_RESULT_CANCELLED)
        w->stats.tasks_cancelled++;
    else
        w->stats.tasks_error++;
    char key[AC_TASK_KEY_STR_MAX];
    ac_task_key_str(&w->task.key, key);
    say(w, "task %s: %s%s%s (%.3fs)", key,
        res->status == AC_RESULT_OK ? "ok" : res->status == AC_RESULT_CANCELLED ? "cancelled" : "error",
        res->status == AC_RESULT_ERROR ? ": " : "", res->status == AC_RESULT_ERROR ? res->error : "", res->seconds);
}

static void fail_task(ac_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_task(ac_worker *w, const char *fmt, ...)
{
    ac_result res;
    memset(&res, 0, sizeof res);
    res.status = AC_RESULT_ERROR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.error, sizeof res.error, fmt, ap);
    va_end(ap);
    send_result(w, &res);
    clear_task(w);
}

/* ---- connection ------------------------------------------------------------------------- */

static int connect_broker(ac_worker *w, ac_err *err)
{
    zsock_destroy(&w->sock);
    w->sock = ac_msg_dealer_new(w->cfg.endpoint, w->cfg.cert_path, w->cfg.server_pub_path, err);
    if (!w->sock)
        return -1;
    w->last_recv = zclock_mono();
    send_ready(w);
    return 0;
}

static void reconnect(ac_worker *w, const char *why)
{
    say(w, "reconnecting: %s", why);
    w->stats.reconnects++;
    if (w->state != IDLE)
        w->stats.tasks_dropped++;
    clear_task(w); /* the broker requeues it */
    ac_err err = {0};
    if (connect_broker(w, &err))
        say(w, "reconnect failed: %s", err.msg);
}

/* ---- tasks ---------------------------------------------------------------------------- */

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    task_run *r = ctx;
    atomic_store(&r->total, total);
    atomic_store(&r->done, done);
}

static void *task_thread(void *arg)
{
    ac_worker *w = arg;
    task_run *r = &w->run;
    ac_worker_hooks hooks = {.progress = on_progress, .ctx = r, .cancel = &r->cancel};
    if (r->blob) {
        ac_err err = {0};
        int rc = r->blob_is_model ? ac_worker_cache_put_model(w->cache, r->blob_hash, r->blob, r->blob_len, &err)
                                  : ac_worker_cache_put_dataset(w->cache, r->blob_hash, r->blob, r->blob_len, &err);
        free(r->blob);
        r->blob = NULL;
        if (rc) {
            memset(&r->res, 0, sizeof r->res);
            r->res.status = AC_RESULT_ERROR;
            snprintf(r->res.error, sizeof r->res.error, "%.500s", err.msg);
            r->rc = 0;
            atomic_store(&r->finished, 1);
            return NULL;
        }
    }
    r->rc = ac_worker_eval_run(w->eval, &w->task, &hooks, &r->res, &r->partial, r->missing);
    atomic_store(&r->finished, 1);
    return NULL;
}

/* Runs the task on its thread; a fetched blob (owned by the run from here on)
 * is stored in the cache there first. */
static void start_run(ac_worker *w, uint8_t *blob, size_t blob_len, bool is_model)
{
    memset(&w->run, 0, sizeof w->run);
    w->run.blob = blob;
    w->run.blob_len = blob_len;
    w->run.blob_is_model = is_model;
    memcpy(w->run.blob_hash, w->blob_hash, AC_HASH_BYTES);
    w->progress_sent_done = 0;
    w->progress_at = zclock_mono();
    w->state = RUNNING;
    if (pthread_create(&w->thread, NULL, task_thread, w) != 0) {
        free(w->run.blob);
        w->run.blob = NULL;
        fail_task(w, "worker %s: cannot start a task thread", w->name);
        return;
    }
    w->thread_live = true;
}

static void request_chunk(ac_worker *w)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_BLOB_REQ);
    memcpy(m.blob_req.hash, w->blob_hash, AC_HASH_BYTES);
    m.blob_req.offset = w->blob_len;
    m.blob_req.length = AC_BLOB_CHUNK;
    send_msg(w, &m);
}

static void start_fetch(ac_worker *w, const uint8_t hash[AC_HASH_BYTES])
{
    if (++w->fetches > MAX_FETCHES_PER_TASK) {
        fail_task(w, "worker %s: the task still misses a blob after %d fetches", w->name, MAX_FETCHES_PER_TASK);
        return;
    }
    memcpy(w->blob_hash, hash, AC_HASH_BYTES);
    free(w->blob);
    w->blob = NULL;
    w->blob_len = w->blob_total = 0;
    w->state = FETCHING;
    char hex[65];
    for (int i = 0; i < AC_HASH_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    say(w, "fetching blob %.16s...", hex);
    request_chunk(w);
}

static void on_task(ac_worker *w, const ac_task *t)
{
    if (w->state != IDLE) {
        say(w, "TASK while busy: ignored (the broker sends one task at a time)");
        return;
    }
    w->task = *t;
    w->payload = NULL;
    char key[AC_TASK_KEY_STR_MAX];
    ac_task_key_str(&t->key, key);
    say(w, "task %s: start (attempt %u)", key, (unsigned)t->key.attempt);
    if (t->payload.len) {
        w->payload = malloc(t->payload.len);
        if (!w->payload) {
            fail_task(w, "worker %s: out of memory for a %zu-byte payload", w->name, t->payload.len);
            return;
        }
        memcpy(w->payload, t->payload.data, t->payload.len);
    }
    w->task.payload = (ac_bytes){w->payload, t->payload.len};
    w->fetches = 0;
    ac_worker_cache_begin_task(w->cache);
    start_run(w, NULL, 0, false);
}

static void on_blob(ac_worker *w, const ac_msg_blob *b)
{
    if (w->state != FETCHING || memcmp(b->hash, w->blob_hash, AC_HASH_BYTES))
        return; /* late chunk of a dropped fetch */
    if (b->status != AC_BLOB_OK) {
        fail_task(w, "worker %s: the broker holds no blob for the task's %s hash", w->name,
                  !memcmp(b->hash, w->task.model_hash, AC_HASH_BYTES) ? "model" : "data");
        return;
    }
    if (b->offset != w->blob_len || (w->blob_total && b->total != w->blob_total) ||
        b->offset + b->data.len > b->total || (b->data.len == 0 && b->offset < b->total)) {
        fail_task(w, "worker %s: blob chunk at %llu of %llu out of order (have %llu bytes)", w->name,
                  (unsigned long long)b->offset, (unsigned long long)b->total, (unsigned long long)w->blob_len);
        return;
    }
    if (!w->blob) {
        w->blob_total = b->total;
        w->blob = malloc(b->total ? b->total : 1);
        if (!w->blob) {
            fail_task(w, "worker %s: out of memory for a %llu-byte blob", w->name, (unsigned long long)b->total);
            return;
        }
    }
    memcpy(w->blob + w->blob_len, b->data.data, b->data.len);
    w->blob_len += b->data.len;
    if (w->blob_len < w->blob_total) {
        request_chunk(w);
        return;
    }
    bool model = !memcmp(w->blob_hash, w->task.model_hash, AC_HASH_BYTES);
    w->stats.blobs_fetched++;
    w->stats.blob_bytes += w->blob_len;
    uint8_t *blob = w->blob;
    w->blob = NULL;
    start_run(w, blob, (size_t)w->blob_len, model); /* stored on the task thread, then the task runs */
}

static void on_cancel(ac_worker *w, const ac_msg_cancel *c)
{
    if (w->state == IDLE || strcmp(c->job, w->task.key.job))
        return;
    bool hit = c->nkeys == 0;
    for (uint32_t i = 0; !hit && i < c->nkeys; i++)
        hit = ac_task_key_eq(&c->keys[i], &w->task.key);
    if (!hit)
        return;
    if (w->state == RUNNING) {
        atomic_store(&w->run.cancel, 1); /* the thread stops at the next batch */
        return;
    }
    ac_result res;
    memset(&res, 0, sizeof res);
    res.status = AC_RESULT_CANCELLED;
    snprintf(res.error, sizeof res.error, "cancelled");
    send_result(w, &res);
    clear_task(w);
}

/* The loop's view of a running task: progress, completion. */
static void poll_task(ac_worker *w)
{
    if (w->state != RUNNING)
        return;
    task_run *r = &w->run;
    if (atomic_load(&r->finished)) {
        pthread_join(w->thread, NULL);
        w->thread_live = false;
        if (r->rc == AC_CACHE_MISSING) {
            start_fetch(w, r->missing);
            return;
        }
        send_result(w, &r->res);
        free(r->partial);
        r->partial = NULL;
        clear_task(w);
        return;
    }
    uint64_t done = atomic_load(&r->done), total = atomic_load(&r->total);
    int64_t now = zclock_mono();
    if (done != w->progress_sent_done && total && now - w->progress_at >= PROGRESS_MIN_MS) {
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_PROGRESS);
        m.progress.key = w->task.key;
        m.progress.done = done <= total ? done : total;
        m.progress.total = total;
        send_msg(w, &m);
        w->progress_sent_done = done;
        w->progress_at = now;
        w->stats.progress_sent++;
    }
}

static void on_message(ac_worker *w, ac_msg *m)
{
    switch (m->cmd) {
    case AC_MSG_HEARTBEAT:
        if (w->broker_epoch && m->heartbeat.epoch && m->heartbeat.epoch != w->broker_epoch) {
            w->broker_epoch = m->heartbeat.epoch;
            reconnect(w, "the broker restarted");
            return;
        }
        w->broker_epoch = m->heartbeat.epoch;
        break;
    case AC_MSG_TASK:
        on_task(w, &m->task);
        break;
    case AC_MSG_BLOB:
        on_blob(w, &m->blob);
        break;
    case AC_MSG_CANCEL:
        on_cancel(w, &m->cancel);
        break;
    case AC_MSG_DISCONNECT:
        reconnect(w, m->reason[0] ? m->reason : "DISCONNECT from the broker");
        break;
    default:
        break;
    }
}

/* ---- the loop ------------------------------------------------------------------------- */

int ac_worker_run(ac_worker *w, zsock_t *pipe)
{
    ac_err err = {0};
    if (connect_broker(w, &err)) {
        fprintf(stderr, "worker %s: %s\n", w->name, err.msg);
        return -1;
    }
    say(w, "connected to %s (%s, %s)", w->cfg.endpoint, ac_worker_isa(), w->backend->name);
    int rc = 0;
    while (!(pipe == NULL && zsys_interrupted)) {
        zpoller_t *poller = zpoller_new(w->sock, NULL);
        if (pipe)
            zpoller_add(poller, pipe);
        int tick = w->state == RUNNING ? 20 : w->cfg.heartbeat_ms / 4 > 5 ? w->cfg.heartbeat_ms / 4 : 5;
        void *which = zpoller_wait(poller, tick);
        bool terminated = zpoller_terminated(poller);
        zpoller_destroy(&poller);
        if (terminated && !which)
            break;
        if (pipe && which == pipe) {
            zmsg_t *cmd = zmsg_recv(pipe);
            char *s = cmd ? zmsg_popstr(cmd) : NULL;
            bool term = !s || !strcmp(s, "$TERM");
            if (s && !strcmp(s, "STATS"))
                zsock_send(pipe, "b", &w->stats, sizeof w->stats);
            free(s);
            zmsg_destroy(&cmd);
            if (term)
                break;
        } else if (which == w->sock) {
            /* Drain what is there. */
            while (zsock_events(w->sock) & ZMQ_POLLIN) {
                ac_msg in;
                int r = ac_msg_recv(w->sock, AC_DIR_FROM_BROKER, &in, NULL, NULL, &err);
                if (r == AC_E_IO)
                    break;
                w->last_recv = zclock_mono();
                if (r) {
                    say(w, "malformed message from the broker: %s", err.msg);
                    reconnect(w, "malformed message from the broker");
                    break;
                }
                zsock_t *before = w->sock;
                on_message(w, &in);
                ac_msg_reset(&in);
                if (w->sock != before)
                    break; /* reconnected: the old socket is gone */
            }
        }
        poll_task(w);
        int64_t now = zclock_mono();
        if (now - w->last_recv > (int64_t)w->cfg.heartbeat_ms * w->cfg.liveness) {
            reconnect(w, "the broker is silent");
            continue;
        }
        if (now >= w->next_hb)
            send_heartbeat(w);
    }
    /* Leaving: a running task is abandoned (the broker requeues it). */
    clear_task(w);
    if (w->sock) {
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_DISCONNECT);
        snprintf(m.reason, sizeof m.reason, "worker %s shutting down", w->name);
        send_msg(w, &m);
    }
    say(w, "stopped");
    return rc;
}

/* ---- actor ------------------------------------------------------------------------------- */

static void worker_actor(zsock_t *pipe, void *arg)
{
    ac_worker *w = arg;
    zsock_signal(pipe, 0);
    ac_worker_run(w, pipe);
    ac_worker_destroy(&w);
}

zactor_t *ac_worker_actor_new(const ac_worker_config *cfg, ac_err *err)
{
    ac_worker *w = ac_worker_new(cfg, err);
    if (!w)
        return NULL;
    zactor_t *a = zactor_new(worker_actor, w);
    if (!a) {
        ac_worker_destroy(&w);
        ac_err_set(err, AC_E_INTERNAL, "worker: cannot start its thread");
    }
    return a;
}

int ac_worker_actor_stats(zactor_t *actor, ac_worker_stats *out)
{
    if (zstr_send(actor, "STATS") != 0)
        return -1;
    zframe_t *f = zframe_recv(actor);
    int rc = f && zframe_size(f) == sizeof *out ? 0 : -1;
    if (!rc)
        memcpy(out, zframe_data(f), sizeof *out);
    zframe_destroy(&f);
    return rc;
}
