/* ac_broker: see ac_broker.h and docs/protocol.md (§ numbers below).
 *
 * State, all owned by the broker's one thread:
 *   peers     routing id + CURVE key -> peer (worker or client)
 *   idle      workers ready for a task, longest idle first
 *   jobs      job id -> job: FIFO queue, task table (queued + in flight), blobs
 *   rr        jobs in round-robin order: the job served last moves to the back
 * A task is in its job's table from SUBMIT until its RESULT (or failure, or
 * cancel); while in flight it points to its worker and the worker to it. */
#include "ac_broker.h"

#include <dirent.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_msg_codec.h"

#define PEER_ID_MAX (2 * 256 + 42)
#define WORKER_CACHED_MAX 256 /* hashes remembered per worker */

typedef struct job job;
typedef struct task task;

typedef struct {
    char id[PEER_ID_MAX]; /* CURVE key + ':' + hex routing id */
    zframe_t *rid;
    char key[41]; /* CURVE public key (Z85), "" without CURVE */
    ac_msg_proto proto;
    int64_t last_recv, last_send;
    double tokens;
    int64_t tokens_at;
    /* workers */
    char name[AC_MSG_NAME_MAX];
    uint32_t threads;
    char isa[AC_MSG_TAG_MAX], backend[AC_MSG_TAG_MAX];
    uint8_t (*cached)[AC_HASH_BYTES];
    size_t ncached;
    bool busy;
    ac_task_key current; /* the task it runs (valid while busy) */
    task *task;          /* NULL while busy with a cancelled task */
    uint64_t tasks_done;
    void *idle_handle;   /* in b->idle while idle */
} peer;

struct task {
    ac_task t; /* t.key.attempt = dispatches so far; t.payload -> payload */
    uint8_t *payload;
    job *job;
    peer *worker;       /* while in flight */
    void *queue_handle; /* while queued */
    char keystr[AC_TASK_KEY_STR_MAX];
    char died[200];     /* names of the workers that died running it */
    uint64_t done, total;
};

typedef struct {
    uint8_t hash[AC_HASH_BYTES];
    uint8_t *data;
    uint64_t total, have;
    char uploader[PEER_ID_MAX]; /* the connection whose chunks fill it, while partial */
} blob;

struct job {
    char id[AC_JOB_ID_MAX];
    char owner_key[41];
    peer *owner; /* NULL while the coordinator is gone */
    int64_t orphan_since;
    zlistx_t *queue; /* task*, FIFO */
    zhashx_t *tasks; /* keystr -> task* (owns) */
    zhashx_t *blobs; /* hex hash -> blob* (owns) */
    uint64_t blob_bytes;
    uint64_t submitted, done, failed, requeued, cancelled;
    uint32_t in_flight;
    void *rr_handle;
};

struct ac_broker {
    ac_broker_config cfg;
    char endpoint[256];
    char curve_dir[1024];
    zsock_t *router;
    zactor_t *auth;
    zhashx_t *admitted; /* CURVE keys listed in curve_dir (NULL without CURVE) */
    int64_t next_reload;
    zhashx_t *peers; /* id -> peer* (owns) */
    zlistx_t *idle;  /* peer* */
    zhashx_t *jobs;  /* id -> job* (owns) */
    zlistx_t *rr;    /* job*, round-robin order */
    uint64_t epoch;
    int64_t started, next_tick;
    uint32_t queued;  /* tasks queued over all jobs */
    ac_broker_stats st;
    int64_t log_window;
    int log_count;
};

/* ---- logging ------------------------------------------------------------ */

static void blog(ac_broker *b, bool fault, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Faults are rate-limited (20 lines per second) so a flood cannot fill the log. */
static void blog(ac_broker *b, bool fault, const char *fmt, ...)
{
    if (!b->cfg.verbose)
        return;
    if (fault) {
        int64_t now = zclock_mono();
        if (now - b->log_window >= 1000) {
            b->log_window = now;
            b->log_count = 0;
        }
        if (++b->log_count > 20)
            return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "broker: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool hash_is_zero(const uint8_t h[AC_HASH_BYTES])
{
    for (int i = 0; i < AC_HASH_BYTES; i++)
        if (h[i])
            return false;
    return true;
}

static const char *peer_label(const peer *p)
{
    return p->proto == AC_PROTO_WORKER && p->name[0] ? p->name : p->id;
}

/* ---- configuration --------------------------------------------------------- */

void ac_broker_config_defaults(ac_broker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->endpoint = "tcp://*:5555";
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->max_attempts = 3;
    cfg->blob_bytes_per_job = 4ull << 30;
    cfg->max_queued_per_job = 1000000;
    cfg->max_msgs_per_s = 20000;
    cfg->max_msg_bytes = (int64_t)AC_MSG_MAX_BYTES;
    cfg->job_orphan_ms = 600000;
}

/* ---- destructors for the containers ------------------------------------- */

static void task_free(task **tp)
{
    if (*tp) {
        free((*tp)->payload);
        free(*tp);
        *tp = NULL;
    }
}

static void task_destructor(void **item)
{
    task_free((task **)item);
}

static void blob_destructor(void **item)
{
    blob *bl = *item;
    if (bl) {
        free(bl->data);
        free(bl);
        *item = NULL;
    }
}

static void job_destructor(void **item)
{
    job *j = *item;
    if (j) {
        zlistx_destroy(&j->queue);
        zhashx_destroy(&j->tasks);
        zhashx_destroy(&j->blobs);
        free(j);
        *item = NULL;
    }
}

static void peer_destructor(void **item)
{
    peer *p = *item;
    if (p) {
        zframe_destroy(&p->rid);
        free(p->cached);
        free(p);
        *item = NULL;
    }
}

/* ---- sending ----------------------------------------------------------------- */

static void send_to(ac_broker *b, peer *p, const ac_msg *m)
{
    ac_err err;
    if (ac_msg_send(b->router, p->rid, m, &err) != AC_OK)
        blog(b, true, "cannot send %s to %s: %s", ac_msg_cmd_name(m->cmd), peer_label(p), err.msg);
    p->last_send = zclock_mono();
}

static void send_disconnect(ac_broker *b, zframe_t *rid, ac_msg_proto proto, const char *reason)
{
    ac_msg m;
    ac_msg_init(&m, proto, AC_MSG_DISCONNECT);
    snprintf(m.reason, sizeof m.reason, "%s", reason);
    ac_err err;
    ac_msg_send(b->router, rid, &m, &err);
}

static void send_error(ac_broker *b, peer *p, const char *jobid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_error(ac_broker *b, peer *p, const char *jobid, const char *fmt, ...)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_ERROR);
    if (jobid && ac_msg_job_id_valid(jobid))
        snprintf(m.error.job, sizeof m.error.job, "%s", jobid);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.error.message, sizeof m.error.message, fmt, ap);
    va_end(ap);
    b->st.refused++;
    blog(b, true, "refused (%s): %s", peer_label(p), m.error.message);
    send_to(b, p, &m);
}

static void send_heartbeat(ac_broker *b, peer *p)
{
    ac_msg m;
    ac_msg_init(&m, p->proto, AC_MSG_HEARTBEAT);
    m.heartbeat.epoch = b->epoch;
    m.heartbeat.interval_ms = (uint32_t)b->cfg.heartbeat_ms;
    m.heartbeat.liveness = (uint32_t)b->cfg.liveness;
    send_to(b, p, &m);
}

static void send_cancel(ac_broker *b, peer *w, const ac_task_key *key)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_CANCEL);
    snprintf(m.cancel.job, sizeof m.cancel.job, "%s", key->job);
    m.cancel.nkeys = 1;
    m.cancel.keys = (ac_task_key *)key;
    send_to(b, w, &m);
}

/* A RESULT to the job's coordinator (dropped and counted while it is gone). */
static void send_result(ac_broker *b, job *j, const ac_result *r)
{
    if (!j->owner) {
        b->st.undeliverable++;
        return;
    }
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_RESULT);
    m.result = *r;
    send_to(b, j->owner, &m);
}

/* ---- tasks and queues ---------------------------------------------------------- */

static void task_unqueue(ac_broker *b, task *t)
{
    if (t->queue_handle) {
        zlistx_delete(t->job->queue, t->queue_handle);
        t->queue_handle = NULL;
        b->queued--;
    }
}

/* Removes t from its job (queued or in flight) and frees it. The worker
 * running it stays busy until it answers (its RESULT clears it). */
static void task_remove(ac_broker *b, task *t)
{
    task_unqueue(b, t);
    if (t->worker) {
        t->worker->task = NULL;
        t->worker = NULL;
        t->job->in_flight--;
    }
    zhashx_delete(t->job->tasks, t->keystr); /* frees t */
}

static void worker_set_idle(ac_broker *b, peer *w)
{
    w->busy = false;
    w->task = NULL;
    if (!w->idle_handle)
        w->idle_handle = zlistx_add_end(b->idle, w);
}

static void worker_remember(peer *w, const uint8_t h[AC_HASH_BYTES])
{
    if (hash_is_zero(h))
        return;
    for (size_t i = 0; i < w->ncached; i++)
        if (!memcmp(w->cached[i], h, AC_HASH_BYTES))
            return;
    if (w->ncached == WORKER_CACHED_MAX) { /* forget the oldest, as the worker's LRU would */
        memmove(w->cached[0], w->cached[1], (WORKER_CACHED_MAX - 1) * (size_t)AC_HASH_BYTES);
        w->ncached--;
    }
    if (!w->cached) {
        w->cached = malloc(WORKER_CACHED_MAX * (size_t)AC_HASH_BYTES);
        if (!w->cached)
            return;
    }
    memcpy(w->cached[w->ncached++], h, AC_HASH_BYTES);
}

static bool worker_holds(const peer *w, const uint8_t h[AC_HASH_BYTES])
{
    for (size_t i = 0; i < w->ncached; i++)
        if (!memcmp(w->cached[i], h, AC_HASH_BYTES))
            return true;
    return false;
}

/* An idle worker for t: the longest-idle one that holds the model, else the
 * longest-idle one. */
static peer *pick_worker(ac_broker *b, const task *t)
{
    if (!hash_is_zero(t->t.model_hash))
        for (peer *w = zlistx_first(b->idle); w; w = zlistx_next(b->idle))
            if (worker_holds(w, t->t.model_hash))
                return w;
    return zlistx_first(b->idle);
}

/* The next job with queued tasks in round-robin order. */
static job *next_job(ac_broker *b)
{
    for (job *j = zlistx_first(b->rr); j; j = zlistx_next(b->rr))
        if (zlistx_size(j->queue))
            return j;
    return NULL;
}

static void dispatch(ac_broker *b)
{
    while (b->queued && zlistx_size(b->idle)) {
        job *j = next_job(b);
        if (!j)
            break;
        zlistx_move_end(b->rr, j->rr_handle); /* fairness: this job waits for the others */
        task *t = zlistx_first(j->queue);
        task_unqueue(b, t);
        peer *w = pick_worker(b, t);
        zlistx_delete(b->idle, w->idle_handle);
        w->idle_handle = NULL;
        w->busy = true;
        w->task = t;
        t->t.key.attempt++;
        w->current = t->t.key;
        t->worker = w;
        t->done = t->total = 0;
        j->in_flight++;
        b->st.dispatched++;
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_TASK);
        m.task = t->t;
        send_to(b, w, &m);
        worker_remember(w, t->t.model_hash);
        worker_remember(w, t->t.data_hash);
    }
}

/* The worker running t is gone: requeue t at the front of its job's queue, or
 * fail it back to the coordinator after max_attempts. */
static void requeue_or_fail(ac_broker *b, task *t, const char *who)
{
    job *j = t->job;
    size_t used = strlen(t->died);
    snprintf(t->died + used, sizeof t->died - used, "%s%s", used ? ", " : "", who);
    t->worker = NULL;
    j->in_flight--;
    if ((int)t->t.key.attempt >= b->cfg.max_attempts) {
        ac_result r;
        memset(&r, 0, sizeof r);
        r.key = t->t.key;
        r.status = AC_RESULT_ERROR;
        snprintf(r.error, sizeof r.error, "task failed after %u attempts (workers %s died)",
                 (unsigned)t->t.key.attempt, t->died);
        blog(b, true, "task %s: %s", t->keystr, r.error);
        send_result(b, j, &r);
        j->failed++;
        b->st.failed++;
        zhashx_delete(j->tasks, t->keystr);
        return;
    }
    t->queue_handle = zlistx_add_start(j->queue, t);
    b->queued++;
    j->requeued++;
    b->st.requeued++;
    blog(b, false, "task %s requeued (attempt %u ended with worker %s)", t->keystr,
         (unsigned)t->t.key.attempt, who);
}

/* Forgets a peer: a worker's task is requeued, a client's jobs wait for it. */
static void peer_drop(ac_broker *b, peer *p, const char *why)
{
    blog(b, false, "%s %s dropped: %s", p->proto == AC_PROTO_WORKER ? "worker" : "client",
         peer_label(p), why);
    if (p->proto == AC_PROTO_WORKER) {
        if (p->task)
            requeue_or_fail(b, p->task, peer_label(p));
        if (p->idle_handle)
            zlistx_delete(b->idle, p->idle_handle);
    } else {
        for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs))
            if (j->owner == p) {
                j->owner = NULL;
                j->orphan_since = zclock_mono();
            }
    }
    zhashx_delete(b->peers, p->id);
}

/* ---- jobs and blobs ----------------------------------------------------------- */

static job *job_new(ac_broker *b, const char *id, peer *owner)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->owner_key, sizeof j->owner_key, "%s", owner->key);
    j->owner = owner;
    j->queue = zlistx_new();
    j->tasks = zhashx_new();
    j->blobs = zhashx_new();
    if (!j->queue || !j->tasks || !j->blobs) {
        job_destructor((void **)&j);
        return NULL;
    }
    zhashx_set_destructor(j->tasks, task_destructor);
    zhashx_set_destructor(j->blobs, blob_destructor);
    zhashx_insert(b->jobs, id, j);
    j->rr_handle = zlistx_add_end(b->rr, j);
    return j;
}

static void job_cancel_all(ac_broker *b, job *j)
{
    for (task *t = zhashx_first(j->tasks); t; t = zhashx_first(j->tasks)) {
        if (t->worker)
            send_cancel(b, t->worker, &t->t.key);
        j->cancelled++;
        b->st.cancelled++;
        task_remove(b, t);
    }
}

static void job_free(ac_broker *b, job *j)
{
    job_cancel_all(b, j);
    zlistx_delete(b->rr, j->rr_handle);
    zhashx_delete(b->jobs, j->id);
}

/* A job's client-side request: the job must exist (unless create) and belong
 * to this peer's key; SUBMIT re-attaches the job to the peer's connection. */
static job *job_for_client(ac_broker *b, peer *p, const char *id, bool create, bool attach)
{
    job *j = zhashx_lookup(b->jobs, id);
    if (!j) {
        if (!create) {
            send_error(b, p, id, "job '%s' is not known to the broker", id);
            return NULL;
        }
        j = job_new(b, id, p);
        if (!j)
            send_error(b, p, id, "job '%s': out of memory", id);
        return j;
    }
    if (strcmp(j->owner_key, p->key)) {
        send_error(b, p, id, "job '%s' belongs to another key", id);
        return NULL;
    }
    if (attach || !j->owner) {
        j->owner = p;
        j->orphan_since = 0;
    }
    return j;
}

static blob *blob_find(ac_broker *b, const uint8_t h[AC_HASH_BYTES])
{
    char hx[2 * AC_HASH_BYTES + 1];
    hex(h, AC_HASH_BYTES, hx);
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs)) {
        blob *bl = zhashx_lookup(j->blobs, hx);
        if (bl && bl->have == bl->total)
            return bl;
    }
    return NULL;
}

/* ---- handlers: workers ------------------------------------------------------ */

static void on_ready(ac_broker *b, peer *w, const ac_msg *m)
{
    if (w->busy && w->task) /* READY again: the worker restarted its loop */
        requeue_or_fail(b, w->task, peer_label(w));
    snprintf(w->name, sizeof w->name, "%.63s", m->ready.name[0] ? m->ready.name : w->id);
    w->threads = m->ready.threads;
    snprintf(w->isa, sizeof w->isa, "%s", m->ready.isa);
    snprintf(w->backend, sizeof w->backend, "%s", m->ready.backend);
    w->ncached = 0;
    for (size_t i = 0; i + AC_HASH_BYTES <= m->ready.cached.len; i += AC_HASH_BYTES)
        worker_remember(w, m->ready.cached.data + i);
    worker_set_idle(b, w);
    blog(b, false, "worker %s ready (%u threads, %s, %s, %zu cached)", w->name, (unsigned)w->threads,
         w->isa, w->backend, w->ncached);
}

static task *task_lookup(ac_broker *b, const ac_task_key *key, job **jp)
{
    job *j = zhashx_lookup(b->jobs, key->job);
    *jp = j;
    if (!j)
        return NULL;
    char ks[AC_TASK_KEY_STR_MAX];
    ac_task_key_str(key, ks);
    return zhashx_lookup(j->tasks, ks);
}

static void on_result(ac_broker *b, peer *w, const ac_msg *m)
{
    const ac_result *r = &m->result;
    bool was_current = w->busy && ac_task_key_eq(&w->current, &r->key);
    job *j;
    task *t = task_lookup(b, &r->key, &j);
    if (was_current) {
        w->tasks_done++;
        worker_set_idle(b, w);
    }
    if (!t) {
        /* completed, cancelled or never known: harmless (tasks are idempotent) */
        if (!(was_current && r->status == AC_RESULT_CANCELLED))
            b->st.duplicate_results++;
        return;
    }
    if (r->status == AC_RESULT_CANCELLED) {
        /* Only an answer to a CANCEL is expected; the task is live, so this
         * worker gave it up: run it elsewhere. */
        if (t->worker == w)
            requeue_or_fail(b, t, peer_label(w));
        return;
    }
    if (t->worker && t->worker != w) /* a late result beat the retry: stop the retry */
        send_cancel(b, t->worker, &t->t.key);
    b->st.results++;
    if (r->status == AC_RESULT_OK)
        j->done++;
    else
        j->failed++;
    send_result(b, j, r);
    task_remove(b, t);
}

static void on_progress(ac_broker *b, peer *w, const ac_msg *m)
{
    if (w->task && ac_task_key_eq(&w->task->t.key, &m->progress.key)) {
        w->task->done = m->progress.done;
        w->task->total = m->progress.total;
    }
}

static void on_blob_req(ac_broker *b, peer *w, const ac_msg *m)
{
    ac_msg out;
    ac_msg_init(&out, AC_PROTO_WORKER, AC_MSG_BLOB);
    memcpy(out.blob.hash, m->blob_req.hash, AC_HASH_BYTES);
    out.blob.offset = m->blob_req.offset;
    blob *bl = blob_find(b, m->blob_req.hash);
    if (!bl) {
        out.blob.status = AC_BLOB_UNKNOWN;
        out.blob.offset = 0;
    } else if (m->blob_req.offset > bl->total || (m->blob_req.offset == bl->total && bl->total)) {
        out.blob.status = AC_BLOB_RANGE;
        out.blob.offset = 0;
        out.blob.total = bl->total;
    } else {
        uint64_t left = bl->total - m->blob_req.offset;
        out.blob.total = bl->total;
        out.blob.data.data = bl->data + m->blob_req.offset;
        out.blob.data.len = (size_t)(left < m->blob_req.length ? left : m->blob_req.length);
    }
    send_to(b, w, &out);
}

static void on_worker_msg(ac_broker *b, peer *w, const ac_msg *m)
{
    switch (m->cmd) {
    case AC_MSG_READY: on_ready(b, w, m); break;
    case AC_MSG_RESULT: on_result(b, w, m); break;
    case AC_MSG_PROGRESS: on_progress(b, w, m); break;
    case AC_MSG_BLOB_REQ: on_blob_req(b, w, m); break;
    case AC_MSG_DISCONNECT: peer_drop(b, w, "it disconnected"); break;
    default: break; /* HEARTBEAT: being heard is all */
    }
}

/* ---- handlers: clients -------------------------------------------------------- */

static void on_submit(ac_broker *b, peer *p, const ac_msg *m)
{
    job *j = job_for_client(b, p, m->submit.job, true, true);
    if (!j)
        return;
    uint64_t live = zhashx_size(j->tasks);
    if (live + m->submit.ntasks > b->cfg.max_queued_per_job) {
        send_error(b, p, j->id, "job '%s': %llu tasks queued or in flight, %u more exceed the limit of %u",
                   j->id, (unsigned long long)live, (unsigned)m->submit.ntasks,
                   (unsigned)b->cfg.max_queued_per_job);
        return;
    }
    for (uint32_t i = 0; i < m->submit.ntasks; i++) {
        const ac_task *src = &m->submit.tasks[i];
        char ks[AC_TASK_KEY_STR_MAX];
        ac_task_key_str(&src->key, ks);
        if (zhashx_lookup(j->tasks, ks))
            continue; /* resubmitted while queued or in flight */
        task *t = calloc(1, sizeof *t);
        if (!t || (src->payload.len && !(t->payload = malloc(src->payload.len)))) {
            free(t);
            send_error(b, p, j->id, "job '%s': out of memory after %u tasks", j->id, (unsigned)i);
            return;
        }
        t->t = *src;
        t->t.key.attempt = 0;
        if (src->payload.len)
            memcpy(t->payload, src->payload.data, src->payload.len);
        t->t.payload.data = t->payload;
        t->job = j;
        memcpy(t->keystr, ks, sizeof ks);
        zhashx_insert(j->tasks, ks, t);
        t->queue_handle = zlistx_add_end(j->queue, t);
        b->queued++;
        j->submitted++;
    }
}

static void on_cancel(ac_broker *b, peer *p, const ac_msg *m)
{
    job *j = job_for_client(b, p, m->cancel.job, false, false);
    if (!j)
        return;
    if (m->cancel.nkeys == 0) {
        job_cancel_all(b, j);
        return;
    }
    for (uint32_t i = 0; i < m->cancel.nkeys; i++) {
        job *jj;
        task *t = task_lookup(b, &m->cancel.keys[i], &jj);
        if (!t)
            continue;
        if (t->worker)
            send_cancel(b, t->worker, &t->t.key);
        j->cancelled++;
        b->st.cancelled++;
        task_remove(b, t);
    }
}

static void on_blob_put(ac_broker *b, peer *p, const ac_msg *m)
{
    const ac_msg_blob *in = &m->blob;
    job *j = job_for_client(b, p, in->job, true, false);
    if (!j)
        return;
    char hx[2 * AC_HASH_BYTES + 1];
    hex(in->hash, AC_HASH_BYTES, hx);
    blob *bl = zhashx_lookup(j->blobs, hx);
    if (bl && bl->have == bl->total)
        return; /* already complete: a re-upload is harmless */
    if (bl && in->offset == 0) {
        /* A client that started over on a new connection uploads again from
         * the start: that upload replaces the partial one. */
        j->blob_bytes -= bl->total;
        zhashx_delete(j->blobs, hx);
        bl = NULL;
    } else if (bl && strcmp(bl->uploader, p->id) != 0) {
        return; /* a late chunk of an upload its client gave up (it started over) */
    }
    if (!bl) {
        if (in->offset != 0) {
            send_error(b, p, j->id, "blob %.16s...: first chunk must start at offset 0, got %llu", hx,
                       (unsigned long long)in->offset);
            return;
        }
        if (in->total > b->cfg.blob_bytes_per_job - j->blob_bytes ||
            j->blob_bytes > b->cfg.blob_bytes_per_job) {
            send_error(b, p, j->id,
                       "job '%s': blob %.16s... of %llu bytes exceeds the blob store bound (%llu of %llu bytes used)",
                       j->id, hx, (unsigned long long)in->total, (unsigned long long)j->blob_bytes,
                       (unsigned long long)b->cfg.blob_bytes_per_job);
            return;
        }
        bl = calloc(1, sizeof *bl);
        if (!bl || !(bl->data = malloc(in->total ? in->total : 1))) {
            free(bl);
            send_error(b, p, j->id, "job '%s': cannot allocate %llu bytes for blob %.16s...", j->id,
                       (unsigned long long)in->total, hx);
            return;
        }
        memcpy(bl->hash, in->hash, AC_HASH_BYTES);
        bl->total = in->total;
        snprintf(bl->uploader, sizeof bl->uploader, "%s", p->id);
        zhashx_insert(j->blobs, hx, bl);
        j->blob_bytes += in->total;
    }
    if (in->offset != bl->have || in->total != bl->total) {
        send_error(b, p, j->id, "blob %.16s...: chunk at %llu of %llu, expected offset %llu of %llu; upload dropped",
                   hx, (unsigned long long)in->offset, (unsigned long long)in->total,
                   (unsigned long long)bl->have, (unsigned long long)bl->total);
        j->blob_bytes -= bl->total;
        zhashx_delete(j->blobs, hx);
        return;
    }
    if (in->data.len)
        memcpy(bl->data + bl->have, in->data.data, in->data.len);
    bl->have += in->data.len;
}

static void on_status(ac_broker *b, peer *p)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    ac_err err;
    if (ac_broker_status_encode(b, &buf, &len, &err) != AC_OK) {
        send_error(b, p, NULL, "status: %s", err.msg);
        return;
    }
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_STATUS_REPLY);
    m.status_map.data = buf;
    m.status_map.len = len;
    send_to(b, p, &m);
    free(buf);
}

static void on_client_msg(ac_broker *b, peer *p, const ac_msg *m)
{
    switch (m->cmd) {
    case AC_MSG_SUBMIT: on_submit(b, p, m); break;
    case AC_MSG_CANCEL: on_cancel(b, p, m); break;
    case AC_MSG_BLOB_PUT: on_blob_put(b, p, m); break;
    case AC_MSG_JOB_END: {
        job *j = job_for_client(b, p, m->job, false, false);
        if (j)
            job_free(b, j);
        break;
    }
    case AC_MSG_STATUS: on_status(b, p); break;
    case AC_MSG_DISCONNECT: peer_drop(b, p, "it disconnected"); break;
    default: break;
    }
}

/* ---- receiving --------------------------------------------------------------- */

static bool take_token(ac_broker *b, peer *p, int64_t now)
{
    if (!b->cfg.max_msgs_per_s)
        return true;
    double rate = b->cfg.max_msgs_per_s, burst = 2.0 * rate;
    p->tokens += (double)(now - p->tokens_at) * rate / 1000.0;
    if (p->tokens > burst)
        p->tokens = burst;
    p->tokens_at = now;
    if (p->tokens < 1.0)
        return false;
    p->tokens -= 1.0;
    return true;
}

static void peer_id(const zframe_t *rid, const char *key, char out[PEER_ID_MAX])
{
    size_t n = zframe_size((zframe_t *)rid);
    if (n > 255)
        n = 255;
    size_t k = strlen(key);
    memcpy(out, key, k);
    out[k] = ':';
    hex(zframe_data((zframe_t *)rid), n, out + k + 1);
}

static void handle_one(ac_broker *b)
{
    zmsg_t *zm = NULL;
    zframe_t *rid = NULL;
    char key[41];
    ac_err err;
    if (ac_msg_recv_routed(b->router, &zm, &rid, key, &err) != AC_OK) {
        zframe_destroy(&rid);
        return;
    }
    int64_t now = zclock_mono();
    char id[PEER_ID_MAX];
    peer_id(rid, key, id);
    peer *p = zhashx_lookup(b->peers, id);
    ac_msg_proto claimed = ac_msg_peek_proto(zm);

    if (b->admitted && !zhashx_lookup(b->admitted, key)) {
        /* zauth admitted the connection, but the key has since been removed */
        b->st.revoked++;
        if (p)
            peer_drop(b, p, "its key was removed from the curve directory");
        send_disconnect(b, rid, claimed, "key revoked");
        zmsg_destroy(&zm);
        zframe_destroy(&rid);
        return;
    }
    if (p) {
        p->last_recv = now;
        if (!take_token(b, p, now)) {
            b->st.rate_dropped++;
            zmsg_destroy(&zm);
            zframe_destroy(&rid);
            return;
        }
    }
    ac_msg m;
    if (ac_msg_decode(&zm, AC_DIR_TO_BROKER, &m, &err) != AC_OK) {
        b->st.malformed++;
        blog(b, true, "malformed message from %s: %s", p ? peer_label(p) : id, err.msg);
        if (p)
            peer_drop(b, p, "malformed message");
        char reason[AC_MSG_REASON_MAX];
        snprintf(reason, sizeof reason, "malformed: %.240s", err.msg);
        send_disconnect(b, rid, claimed, reason);
        zframe_destroy(&rid);
        return;
    }
    if (p && p->proto != m.proto) {
        b->st.malformed++;
        blog(b, true, "%s switched sub-protocol", peer_label(p));
        peer_drop(b, p, "it switched sub-protocol");
        send_disconnect(b, rid, m.proto, "one connection, one sub-protocol");
        goto done;
    }
    if (!p) {
        if (m.cmd == AC_MSG_DISCONNECT)
            goto done;
        if (m.proto == AC_PROTO_WORKER && m.cmd != AC_MSG_READY) {
            /* not registered (never sent READY, or dropped): it must start over */
            b->st.unknown_peer++;
            send_disconnect(b, rid, AC_PROTO_WORKER, "unknown worker: send READY");
            goto done;
        }
        p = calloc(1, sizeof *p);
        if (!p)
            goto done;
        memcpy(p->id, id, sizeof p->id);
        snprintf(p->key, sizeof p->key, "%s", key);
        p->rid = rid;
        rid = NULL;
        p->proto = m.proto;
        p->last_recv = p->last_send = p->tokens_at = now;
        p->tokens = b->cfg.max_msgs_per_s ? 2.0 * b->cfg.max_msgs_per_s : 0;
        take_token(b, p, now);
        zhashx_insert(b->peers, p->id, p);
        if (m.proto == AC_PROTO_CLIENT) {
            blog(b, false, "client %s connected", p->id);
            /* The greeting (§7.8): a client learns this broker's epoch before any
             * answer to what it sent, so a restarted broker that receives what a
             * client queued for the old one is noticed before its results count. */
            send_heartbeat(b, p);
        }
    }
    if (m.proto == AC_PROTO_WORKER)
        on_worker_msg(b, p, &m);
    else
        on_client_msg(b, p, &m);
    dispatch(b);
done:
    ac_msg_reset(&m);
    zframe_destroy(&rid);
}

/* ---- CURVE key directory ------------------------------------------------------ */

/* Re-reads the admitted public keys (zauth checks new connections; this list
 * lets the broker drop peers whose key was removed). */
static void reload_keys(ac_broker *b)
{
    zhashx_t *keys = zhashx_new();
    if (!keys)
        return;
    DIR *d = opendir(b->curve_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", b->curve_dir, de->d_name);
        zcert_t *c = zcert_load(path);
        if (c) {
            zhashx_insert(keys, zcert_public_txt(c), (void *)1);
            zcert_destroy(&c);
        }
    }
    if (d)
        closedir(d);
    if (b->admitted && zhashx_size(b->admitted) != zhashx_size(keys))
        blog(b, false, "curve directory %s: %zu keys admitted", b->curve_dir, zhashx_size(keys));
    zhashx_destroy(&b->admitted);
    b->admitted = keys;
    zlistx_t *gone = zlistx_new();
    for (peer *p = zhashx_first(b->peers); p; p = zhashx_next(b->peers))
        if (!zhashx_lookup(keys, p->key))
            zlistx_add_end(gone, p);
    for (peer *p = zlistx_first(gone); p; p = zlistx_next(gone)) {
        b->st.revoked++;
        send_disconnect(b, p->rid, p->proto, "key revoked");
        peer_drop(b, p, "its key was removed from the curve directory");
    }
    zlistx_destroy(&gone);
}

/* ---- time ---------------------------------------------------------------------- */

static void tick(ac_broker *b, int64_t now)
{
    int64_t expiry = (int64_t)b->cfg.heartbeat_ms * b->cfg.liveness;
    zlistx_t *dead = zlistx_new();
    for (peer *p = zhashx_first(b->peers); p; p = zhashx_next(b->peers)) {
        if (now - p->last_recv > expiry)
            zlistx_add_end(dead, p);
        else if (now - p->last_send >= b->cfg.heartbeat_ms)
            send_heartbeat(b, p);
    }
    for (peer *p = zlistx_first(dead); p; p = zlistx_next(dead)) {
        b->st.expired_peers++;
        send_disconnect(b, p->rid, p->proto, "silent for longer than interval x liveness");
        peer_drop(b, p, "silent for longer than interval x liveness");
    }
    zlistx_destroy(&dead);
    zlistx_t *orphans = zlistx_new();
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs))
        if (!j->owner && j->orphan_since && now - j->orphan_since > b->cfg.job_orphan_ms)
            zlistx_add_end(orphans, j);
    for (job *j = zlistx_first(orphans); j; j = zlistx_next(orphans)) {
        blog(b, false, "job %s freed: its coordinator has been gone for %lld ms", j->id,
             (long long)b->cfg.job_orphan_ms);
        job_free(b, j);
    }
    zlistx_destroy(&orphans);
    if (b->admitted && now >= b->next_reload) {
        reload_keys(b);
        b->next_reload = now + 1000;
    }
    dispatch(b);
}

/* ---- lifecycle ------------------------------------------------------------------- */

ac_broker *ac_broker_new(const ac_broker_config *cfg, ac_err *err)
{
    if (!cfg->endpoint || !cfg->endpoint[0]) {
        ac_err_set(err, AC_E_INVALID, "broker: an endpoint to bind is required");
        return NULL;
    }
    if (cfg->heartbeat_ms < 1 || cfg->liveness < 1 || cfg->max_attempts < 1) {
        ac_err_set(err, AC_E_INVALID,
                   "broker: heartbeat_ms, liveness and max_attempts must be >= 1 (got %d, %d, %d)",
                   cfg->heartbeat_ms, cfg->liveness, cfg->max_attempts);
        return NULL;
    }
    if (cfg->curve_dir && !cfg->cert_path) {
        ac_err_set(err, AC_E_INVALID, "broker: --curve-dir needs the broker's own certificate (--cert)");
        return NULL;
    }
    ac_broker *b = calloc(1, sizeof *b);
    if (!b) {
        ac_err_set(err, AC_E_NOMEM, "broker: out of memory");
        return NULL;
    }
    b->cfg = *cfg;
    b->cfg.endpoint = NULL;
    b->cfg.curve_dir = NULL;
    b->cfg.cert_path = NULL;
    b->peers = zhashx_new();
    b->idle = zlistx_new();
    b->jobs = zhashx_new();
    b->rr = zlistx_new();
    b->router = zsock_new(ZMQ_ROUTER);
    if (!b->peers || !b->idle || !b->jobs || !b->rr || !b->router) {
        ac_err_set(err, AC_E_NOMEM, "broker: out of memory");
        ac_broker_destroy(&b);
        return NULL;
    }
    zhashx_set_destructor(b->peers, peer_destructor);
    zhashx_set_destructor(b->jobs, job_destructor);
    zsock_set_linger(b->router, 0);
    zsock_set_maxmsgsize(b->router, cfg->max_msg_bytes > 0 ? cfg->max_msg_bytes : -1);
    zsock_set_sndhwm(b->router, 100000);
    zsock_set_rcvhwm(b->router, 100000);
    if (cfg->curve_dir) {
        snprintf(b->curve_dir, sizeof b->curve_dir, "%s", cfg->curve_dir);
        zcert_t *cert = zcert_load(cfg->cert_path);
        if (!cert || !strcmp(zcert_secret_txt(cert), "0000000000000000000000000000000000000000")) {
            ac_err_set(err, AC_E_IO, "broker: %s: cannot load a certificate with a secret key",
                       cfg->cert_path);
            zcert_destroy(&cert);
            ac_broker_destroy(&b);
            return NULL;
        }
        /* zauth checks each new connection against the directory, which its
         * certificate store re-reads when it changes. */
        b->auth = zactor_new(zauth, NULL);
        if (!b->auth) {
            ac_err_set(err, AC_E_INTERNAL, "broker: cannot start zauth");
            zcert_destroy(&cert);
            ac_broker_destroy(&b);
            return NULL;
        }
        zstr_sendx(b->auth, "CURVE", b->curve_dir, NULL);
        zsock_wait(b->auth);
        zcert_apply(cert, b->router);
        zcert_destroy(&cert);
        zsock_set_curve_server(b->router, 1);
        zsock_set_zap_domain(b->router, "autocalib");
        reload_keys(b);
        b->next_reload = zclock_mono() + 1000;
    }
    if (zsock_bind(b->router, "%s", cfg->endpoint) < 0) {
        ac_err_set(err, AC_E_IO, "broker: cannot bind %s: %s", cfg->endpoint, zmq_strerror(zmq_errno()));
        ac_broker_destroy(&b);
        return NULL;
    }
    const char *ep = zsock_endpoint(b->router);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", ep ? ep : cfg->endpoint);
    /* A random epoch per start, so coordinators notice a restarted broker (§7). */
    uint64_t e = 0;
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(&e, sizeof e, 1, ur) != 1)
        e = (uint64_t)zclock_time() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    if (ur)
        fclose(ur);
    b->epoch = e ? e : 1;
    b->started = zclock_mono();
    b->next_tick = b->started + cfg->heartbeat_ms;
    blog(b, false, "bound %s%s, heartbeat %d ms x %d", b->endpoint, cfg->curve_dir ? " (CURVE)" : "",
         cfg->heartbeat_ms, cfg->liveness);
    return b;
}

void ac_broker_destroy(ac_broker **self)
{
    if (!self || !*self)
        return;
    ac_broker *b = *self;
    zsock_destroy(&b->router);
    zactor_destroy(&b->auth);
    zhashx_destroy(&b->admitted);
    zlistx_destroy(&b->idle);
    zlistx_destroy(&b->rr);
    zhashx_destroy(&b->jobs);
    zhashx_destroy(&b->peers);
    free(b);
    *self = NULL;
}

const char *ac_broker_endpoint(const ac_broker *self)
{
    return self->endpoint;
}

void ac_broker_get_stats(const ac_broker *b, ac_broker_stats *out)
{
    *out = b->st;
    out->workers = out->clients = 0;
    for (peer *p = zhashx_first(b->peers); p; p = zhashx_next(b->peers)) {
        if (p->proto == AC_PROTO_WORKER)
            out->workers++;
        else
            out->clients++;
    }
    out->idle_workers = (uint32_t)zlistx_size(b->idle);
    out->jobs = (uint32_t)zhashx_size(b->jobs);
    out->queued = b->queued;
    out->in_flight = 0;
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs))
        out->in_flight += j->in_flight;
}

/* Returns true when the pipe asked to stop. */
static bool on_pipe(ac_broker *b, zsock_t *pipe)
{
    zmsg_t *msg = zmsg_recv(pipe);
    if (!msg)
        return true;
    char *cmd = zmsg_popstr(msg);
    bool stop = !cmd || !strcmp(cmd, "$TERM");
    if (cmd && !strcmp(cmd, "STATS")) {
        ac_broker_stats st;
        ac_broker_get_stats(b, &st);
        zsock_send(pipe, "b", &st, sizeof st);
    }
    free(cmd);
    zmsg_destroy(&msg);
    return stop;
}

int ac_broker_run(ac_broker *b, zsock_t *pipe)
{
    zmq_pollitem_t items[2] = {{zsock_resolve(b->router), 0, ZMQ_POLLIN, 0},
                               {pipe ? zsock_resolve(pipe) : NULL, 0, ZMQ_POLLIN, 0}};
    int nitems = pipe ? 2 : 1;
    for (;;) {
        if (!pipe && zsys_interrupted)
            break;
        int64_t now = zclock_mono();
        long timeout = b->next_tick > now ? (long)(b->next_tick - now) : 0;
        int rc = zmq_poll(items, nitems, timeout);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc > 0 && pipe && (items[1].revents & ZMQ_POLLIN) && on_pipe(b, pipe))
            break;
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            /* a batch per wake-up; libzmq fair-queues the peers' pipes */
            for (int i = 0; i < 512 && (zsock_events(b->router) & ZMQ_POLLIN); i++)
                handle_one(b);
        }
        now = zclock_mono();
        if (now >= b->next_tick) {
            tick(b, now);
            /* tick at twice the heartbeat rate so expiry is at most half an interval late */
            b->next_tick = now + (b->cfg.heartbeat_ms + 1) / 2;
        }
    }
    return AC_OK;
}

/* ---- status ------------------------------------------------------------------------ */

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pk_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

int ac_broker_status_encode(const ac_broker *b, uint8_t **buf, size_t *len, ac_err *err)
{
    ac_broker_stats st;
    ac_broker_get_stats(b, &st);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    pk_kv_u64(&pk, "epoch", b->epoch);
    pk_kv_u64(&pk, "uptime_ms", (uint64_t)(zclock_mono() - b->started));
    pk_kv_u64(&pk, "heartbeat_ms", (uint64_t)b->cfg.heartbeat_ms);
    pk_kv_u64(&pk, "liveness", (uint64_t)b->cfg.liveness);
    pk_str(&pk, "curve");
    if (b->admitted)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pk_str(&pk, "counters");
    msgpack_pack_map(&pk, 13);
    pk_kv_u64(&pk, "malformed", st.malformed);
    pk_kv_u64(&pk, "rate_dropped", st.rate_dropped);
    pk_kv_u64(&pk, "duplicate_results", st.duplicate_results);
    pk_kv_u64(&pk, "unknown_peer", st.unknown_peer);
    pk_kv_u64(&pk, "revoked", st.revoked);
    pk_kv_u64(&pk, "refused", st.refused);
    pk_kv_u64(&pk, "dispatched", st.dispatched);
    pk_kv_u64(&pk, "results", st.results);
    pk_kv_u64(&pk, "requeued", st.requeued);
    pk_kv_u64(&pk, "failed", st.failed);
    pk_kv_u64(&pk, "cancelled", st.cancelled);
    pk_kv_u64(&pk, "undeliverable", st.undeliverable);
    pk_kv_u64(&pk, "expired_peers", st.expired_peers);

    pk_str(&pk, "workers");
    msgpack_pack_array(&pk, st.workers);
    for (peer *p = zhashx_first(b->peers); p; p = zhashx_next(b->peers)) {
        if (p->proto != AC_PROTO_WORKER)
            continue;
        char ks[AC_TASK_KEY_STR_MAX] = "";
        if (p->busy)
            ac_task_key_str(&p->current, ks);
        msgpack_pack_map(&pk, 9);
        pk_kv_str(&pk, "name", p->name);
        pk_kv_str(&pk, "key", p->key);
        pk_kv_str(&pk, "state", p->busy ? "busy" : "idle");
        pk_kv_u64(&pk, "threads", p->threads);
        pk_kv_str(&pk, "isa", p->isa);
        pk_kv_str(&pk, "backend", p->backend);
        pk_str(&pk, "cached");
        msgpack_pack_array(&pk, p->ncached);
        for (size_t i = 0; i < p->ncached; i++) {
            char hx[2 * AC_HASH_BYTES + 1];
            hex(p->cached[i], AC_HASH_BYTES, hx);
            pk_str(&pk, hx);
        }
        pk_kv_u64(&pk, "tasks_done", p->tasks_done);
        pk_kv_str(&pk, "task", ks);
    }
    pk_str(&pk, "jobs");
    msgpack_pack_array(&pk, st.jobs);
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs)) {
        msgpack_pack_map(&pk, 11);
        pk_kv_str(&pk, "job", j->id);
        pk_kv_u64(&pk, "submitted", j->submitted);
        pk_kv_u64(&pk, "queued", zlistx_size(j->queue));
        pk_kv_u64(&pk, "in_flight", j->in_flight);
        pk_kv_u64(&pk, "done", j->done);
        pk_kv_u64(&pk, "failed", j->failed);
        pk_kv_u64(&pk, "requeued", j->requeued);
        pk_kv_u64(&pk, "cancelled", j->cancelled);
        pk_kv_u64(&pk, "blobs", zhashx_size(j->blobs));
        pk_kv_u64(&pk, "blob_bytes", j->blob_bytes);
        pk_str(&pk, "coordinator");
        if (j->owner)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
    }
    uint32_t nflight = 0;
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs))
        for (task *t = zhashx_first(j->tasks); t; t = zhashx_next(j->tasks))
            nflight += t->worker != NULL;
    pk_str(&pk, "in_flight");
    msgpack_pack_array(&pk, nflight);
    for (job *j = zhashx_first(b->jobs); j; j = zhashx_next(b->jobs))
        for (task *t = zhashx_first(j->tasks); t; t = zhashx_next(j->tasks)) {
            if (!t->worker)
                continue;
            msgpack_pack_map(&pk, 5);
            pk_kv_str(&pk, "task", t->keystr);
            pk_kv_str(&pk, "worker", peer_label(t->worker));
            pk_kv_u64(&pk, "attempt", t->t.key.attempt);
            pk_kv_u64(&pk, "done", t->done);
            pk_kv_u64(&pk, "total", t->total);
        }
    *buf = malloc(sb.size ? sb.size : 1);
    if (!*buf) {
        msgpack_sbuffer_destroy(&sb);
        return ac_err_set(err, AC_E_NOMEM, "status: out of memory");
    }
    memcpy(*buf, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return AC_OK;
}

/* ---- actor -------------------------------------------------------------------------- */

typedef struct {
    const ac_broker_config *cfg;
} actor_args;

static void broker_actor(zsock_t *pipe, void *arg)
{
    actor_args *a = arg;
    ac_err err;
    ac_err_clear(&err);
    ac_broker *b = ac_broker_new(a->cfg, &err); /* a is not touched after the signal */
    zsock_signal(pipe, 0);
    if (!b) {
        zsock_send(pipe, "sis", "ERR", (int)err.code, err.msg);
        return;
    }
    zsock_send(pipe, "sis", "OK", 0, ac_broker_endpoint(b));
    ac_broker_run(b, pipe);
    ac_broker_destroy(&b);
}

zactor_t *ac_broker_actor_new(const ac_broker_config *cfg, char *endpoint_out, ac_err *err)
{
    actor_args a = {cfg};
    zactor_t *actor = zactor_new(broker_actor, &a);
    if (!actor) {
        ac_err_set(err, AC_E_INTERNAL, "broker: cannot start its thread");
        return NULL;
    }
    char *status = NULL, *text = NULL;
    int code = 0;
    if (zsock_recv(actor, "sis", &status, &code, &text) != 0 || !status || strcmp(status, "OK")) {
        ac_err_set(err, code ? (ac_status)code : AC_E_INTERNAL, "%s", text ? text : "broker: failed to start");
        zstr_free(&status);
        zstr_free(&text);
        zactor_destroy(&actor);
        return NULL;
    }
    if (endpoint_out)
        snprintf(endpoint_out, 256, "%s", text);
    zstr_free(&status);
    zstr_free(&text);
    return actor;
}

int ac_broker_actor_stats(zactor_t *actor, ac_broker_stats *out)
{
    memset(out, 0, sizeof *out);
    if (zstr_send(actor, "STATS") != 0)
        return AC_E_IO;
    zframe_t *f = zframe_recv(actor);
    if (!f || zframe_size(f) != sizeof *out) {
        zframe_destroy(&f);
        return AC_E_IO;
    }
    memcpy(out, zframe_data(f), sizeof *out);
    zframe_destroy(&f);
    return AC_OK;
}
