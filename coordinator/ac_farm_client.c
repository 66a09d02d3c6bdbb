#include "ac_farm_client.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_mpack.h"
#include "ac_msg_codec.h"

typedef struct {
    char job[AC_JOB_ID_MAX];
    uint8_t hash[AC_HASH_BYTES];
    const uint8_t *data;
    size_t len;
    bool sent; /* uploaded on the current socket, to the broker of c->epoch */
} blob_ref;

struct ac_farm_client {
    ac_farm_client_opts o;
    char *endpoint, *cert, *server_pub;
    zsock_t *sock;
    uint64_t epoch;            /* the broker's, from its greeting on this socket (0: not yet) */
    uint64_t last_epoch;       /* the broker's before a start-over whose next broker is unknown */
    int broker_hb_ms;          /* the broker's heartbeat interval, from its HEARTBEAT (0: unknown) */
    double last_recv, last_send;
    blob_ref *blobs;
    int nblobs, cap_blobs;
    ac_farm_client_stats stats;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int interval_ms(const ac_farm_client *c)
{
    return c->o.heartbeat_ms > 0 ? c->o.heartbeat_ms : 1000;
}

/* How often to send: the broker drops a peer it has not heard from for its own
 * interval x liveness, so a broker with a shorter interval than ours sets the
 * pace (silence detection keeps our own interval). */
static int send_interval_ms(const ac_farm_client *c)
{
    int own = interval_ms(c);
    return c->broker_hb_ms > 0 && c->broker_hb_ms < own ? c->broker_hb_ms : own;
}

static int liveness(const ac_farm_client *c)
{
    return c->o.liveness > 0 ? c->o.liveness : 3;
}

static int send_msg(ac_farm_client *c, const ac_msg *m, ac_err *err);

static int send_heartbeat(ac_farm_client *c, ac_err *err)
{
    ac_msg hb;
    ac_msg_init(&hb, AC_PROTO_CLIENT, AC_MSG_HEARTBEAT);
    hb.heartbeat.interval_ms = (uint32_t)interval_ms(c);
    hb.heartbeat.liveness = (uint32_t)liveness(c);
    return send_msg(c, &hb, err);
}

/* A new socket knows no broker yet: it announces itself, and nothing that a
 * broker must hold (blobs, tasks) is sent on it before the broker's greeting
 * (a HEARTBEAT with its epoch, protocol §7.8) arrived. Otherwise messages
 * queued for a broker that then died reach its successor, and the successor's
 * epoch would be taken as the one those messages went to. */
static int connect_socket(ac_farm_client *c, ac_err *err)
{
    zsock_destroy(&c->sock);
    c->sock = ac_msg_dealer_new(c->endpoint, c->cert, c->server_pub, err);
    if (!c->sock)
        return -1;
    c->epoch = 0;
    for (int i = 0; i < c->nblobs; i++)
        c->blobs[i].sent = false;
    c->last_recv = c->last_send = now_s();
    ac_err hb_err = {0};
    send_heartbeat(c, &hb_err); /* if it fails, the run's heartbeats report why */
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

ac_farm_client *ac_farm_client_new(const ac_farm_client_opts *o, ac_err *err)
{
    ac_farm_client *c = calloc(1, sizeof *c);
    if (!c) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    c->o = *o;
    c->endpoint = dup_or_null(o->endpoint);
    c->cert = dup_or_null(o->cert_path);
    c->server_pub = dup_or_null(o->server_pub);
    if (!c->endpoint || connect_socket(c, err)) {
        if (!c->endpoint)
            ac_err_set(err, AC_E_INVALID, "no broker endpoint");
        ac_farm_client_destroy(&c);
        return NULL;
    }
    return c;
}

void ac_farm_client_destroy(ac_farm_client **p)
{
    if (!p || !*p)
        return;
    ac_farm_client *c = *p;
    zsock_destroy(&c->sock);
    free(c->endpoint);
    free(c->cert);
    free(c->server_pub);
    free(c->blobs);
    free(c);
    *p = NULL;
}

static int send_msg(ac_farm_client *c, const ac_msg *m, ac_err *err)
{
    if (ac_msg_send(c->sock, NULL, m, err)) {
        /* Sends never block: a failure means no connection takes messages. */
        if (err && err->code == AC_E_IO)
            ac_err_prefix(err, "broker %s: no connection (is it running%s?): ", c->endpoint,
                          c->cert ? ", and is this coordinator's public key in its --curve-dir" : "");
        return -1;
    }
    c->last_send = now_s();
    return 0;
}

static int upload(ac_farm_client *c, const blob_ref *b, ac_err *err)
{
    size_t off = 0;
    do {
        size_t n = b->len - off < AC_BLOB_CHUNK ? b->len - off : AC_BLOB_CHUNK;
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_BLOB_PUT);
        snprintf(m.blob.job, sizeof m.blob.job, "%s", b->job);
        memcpy(m.blob.hash, b->hash, AC_HASH_BYTES);
        m.blob.offset = off;
        m.blob.total = b->len;
        m.blob.data.data = b->data + off;
        m.blob.data.len = n;
        if (send_msg(c, &m, err))
            return -1;
        off += n;
    } while (off < b->len);
    return 0;
}

int ac_farm_client_put_blob(ac_farm_client *c, const char *job, const uint8_t hash[AC_HASH_BYTES],
                            const uint8_t *data, size_t len, ac_err *err)
{
    for (int i = 0; i < c->nblobs; i++)
        if (!strcmp(c->blobs[i].job, job) && !memcmp(c->blobs[i].hash, hash, AC_HASH_BYTES))
            return 0; /* already registered and uploaded */
    if (c->nblobs == c->cap_blobs) {
        int ncap = c->cap_blobs ? c->cap_blobs * 2 : 8;
        blob_ref *n = realloc(c->blobs, sizeof *n * (size_t)ncap);
        if (!n)
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        c->blobs = n;
        c->cap_blobs = ncap;
    }
    blob_ref *b = &c->blobs[c->nblobs++];
    snprintf(b->job, sizeof b->job, "%s", job);
    memcpy(b->hash, hash, AC_HASH_BYTES);
    b->data = data;
    b->len = len;
    b->sent = false;
    if (!c->epoch)
        return 0; /* uploaded once the broker has greeted this socket */
    b->sent = true;
    return upload(c, b, err);
}

/* Uploads the job's blobs this socket has not sent yet. */
static int upload_pending(ac_farm_client *c, const char *job, ac_err *err)
{
    for (int i = 0; i < c->nblobs; i++) {
        blob_ref *b = &c->blobs[i];
        if (b->sent || strcmp(b->job, job) != 0)
            continue;
        b->sent = true;
        if (upload(c, b, err))
            return -1;
    }
    return 0;
}

static int submit(ac_farm_client *c, const char *job, const ac_task *tasks, const int *idx, int n, ac_err *err)
{
    ac_task *batch = malloc(sizeof(ac_task) * (size_t)(n < (int)AC_MSG_SUBMIT_MAX ? (n ? n : 1) : (int)AC_MSG_SUBMIT_MAX));
    if (!batch)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    for (int first = 0, k; first < n; first += k) {
        /* At most AC_MSG_SUBMIT_MAX tasks, and payloads that keep the frame
         * well below AC_MSG_MAX_BYTES (run tasks carry samples). */
        size_t bytes = 0;
        for (k = 0; first + k < n && k < (int)AC_MSG_SUBMIT_MAX; k++) {
            const ac_task *t = &tasks[idx ? idx[first + k] : first + k];
            if (k > 0 && bytes + t->payload.len > AC_MSG_MAX_BYTES / 2)
                break;
            bytes += t->payload.len + 2048;
            batch[k] = *t;
            batch[k].key.attempt = 0;
        }
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_SUBMIT);
        snprintf(m.submit.job, sizeof m.submit.job, "%s", job);
        m.submit.ntasks = (uint32_t)k;
        m.submit.tasks = batch;
        if (send_msg(c, &m, err)) {
            free(batch);
            return -1;
        }
    }
    free(batch);
    return 0;
}

/* Uploads the job's pending blobs and submits the tasks that have no outcome:
 * on the first greeting of a socket, all of them; after a restart, the rest. */
static int submit_missing(ac_farm_client *c, const char *job, const ac_task *tasks, int n, const bool *have,
                          ac_err *err)
{
    if (upload_pending(c, job, err))
        return -1;
    int *idx = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!idx)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!have[i])
            idx[k++] = i;
    int rc = submit(c, job, tasks, idx, k, err);
    free(idx);
    return rc;
}

static int find_task(const ac_task *tasks, int n, const ac_task_key *k, int hint)
{
    if (hint >= 0 && hint < n && ac_task_key_eq(&tasks[hint].key, k))
        return hint;
    for (int i = 0; i < n; i++)
        if (ac_task_key_eq(&tasks[i].key, k))
            return i;
    return -1;
}

/* Cancels the tasks named by idx[0..nidx) (all n when idx is NULL) that have
 * no outcome yet; *ncancelled (if given) counts them. */
static int cancel_tasks(ac_farm_client *c, const char *job, const ac_task *tasks, int n, ac_farm_outcome *out,
                        bool *have, const int *idx, int nidx, int *ncancelled, ac_err *err)
{
    int m = idx ? nidx : n;
    ac_task_key *keys = malloc(sizeof(ac_task_key) * (size_t)(m > 0 ? m : 1));
    if (!keys)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    uint32_t k = 0;
    for (int q = 0; q < m; q++) {
        int i = idx ? idx[q] : q;
        if (i >= 0 && i < n && !have[i]) {
            keys[k++] = tasks[i].key;
            have[i] = true;
            out[i].status = AC_RESULT_CANCELLED;
            snprintf(out[i].error, sizeof out[i].error, "cancelled");
        }
    }
    if (ncancelled)
        *ncancelled = (int)k;
    int rc = 0;
    for (uint32_t first = 0; first < k && !rc; first += AC_MSG_CANCEL_MAX) {
        ac_msg m;
        ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_CANCEL);
        snprintf(m.cancel.job, sizeof m.cancel.job, "%s", job);
        m.cancel.nkeys = k - first < AC_MSG_CANCEL_MAX ? k - first : AC_MSG_CANCEL_MAX;
        m.cancel.keys = keys + first;
        rc = send_msg(c, &m, err);
    }
    free(keys);
    return rc;
}

static void take_result(ac_farm_client *c, const ac_result *r, ac_farm_outcome *o)
{
    o->status = r->status;
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->attempts = r->key.attempt;
    o->seconds = r->seconds;
    o->partial = NULL;
    o->partial_len = 0;
    if (r->status == AC_RESULT_OK && r->partial.len) {
        o->partial = malloc(r->partial.len);
        if (o->partial) {
            memcpy(o->partial, r->partial.data, r->partial.len);
            o->partial_len = r->partial.len;
        } else {
            o->status = AC_RESULT_ERROR;
            snprintf(o->error, sizeof o->error, "coordinator out of memory for a %zu-byte partial", r->partial.len);
        }
    }
    if (r->key.attempt > 1)
        c->stats.requeued_results++;
}

static uint64_t status_epoch(const ac_bytes *map)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, map->data, map->len);
    uint32_t n;
    if (!ac_mpack_read_map(&r, &n))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        uint64_t v;
        if (!ac_mpack_read_str(&r, &k, &kl))
            return 0;
        if (kl == 5 && !memcmp(k, "epoch", 5))
            return ac_mpack_read_uint(&r, &v) ? v : 0;
        if (!ac_mpack_skip(&r))
            return 0;
    }
    return 0;
}

/* Notes a broker epoch; a different one than known means the broker restarted. */
static void sync_epoch(ac_farm_client *c, uint64_t epoch, bool *again)
{
    if (!epoch)
        return;
    if (c->epoch && epoch != c->epoch) {
        *again = true;
        c->stats.broker_restarts++;
    }
    c->epoch = epoch;
}

/* One message read between runs. Returns false when nothing could be read. */
static bool sync_take(ac_farm_client *c, bool *again, bool *answered)
{
    ac_msg m;
    ac_err merr = {0};
    int r = ac_msg_recv(c->sock, AC_DIR_FROM_BROKER, &m, NULL, NULL, &merr);
    if (r == AC_E_IO)
        return false;
    if (r != AC_OK)
        return true;
    c->last_recv = now_s();
    if (m.cmd == AC_MSG_DISCONNECT) {
        *again = *answered = true;
    } else if (m.cmd == AC_MSG_HEARTBEAT) {
        if (m.heartbeat.interval_ms > 0 && m.heartbeat.interval_ms < INT32_MAX)
            c->broker_hb_ms = (int)m.heartbeat.interval_ms;
        sync_epoch(c, m.heartbeat.epoch, again);
    } else if (m.cmd == AC_MSG_STATUS_REPLY) {
        sync_epoch(c, status_epoch(&m.status_map), again);
        *answered = true;
    }
    ac_msg_reset(&m); /* late results of an earlier run: already decided */
    return true;
}

/* Between runs nobody reads the socket: the broker may have dropped this
 * client meanwhile (the coordinator computed longer than the broker's
 * liveness) or restarted (a new broker does not know this client, holds none
 * of its blobs and sends it nothing until it hears from it). Reads what is
 * queued, then asks the broker for its STATUS and compares the epoch of the
 * answer (one round trip per run); on a DISCONNECT or a new epoch starts over
 * on a new socket, so that the job's blobs reach the broker before any task
 * that names them, and a SUBMIT on a dropped connection does not race with the
 * resubmission on the new one for the job's ownership. No answer within our
 * liveness: which broker is there is unknown (a restarted one may not have
 * been listening yet), so start over as well, and the blobs and tasks wait for
 * the new socket's greeting; tasks sent on the old socket could reach a new
 * broker before the blobs they name. */
static int sync_connection(ac_farm_client *c, ac_err *err)
{
    bool again = false, answered = false;
    while ((zsock_events(c->sock) & ZMQ_POLLIN) && sync_take(c, &again, &answered))
        ;
    if (!again && c->epoch) {
        ac_msg st;
        ac_msg_init(&st, AC_PROTO_CLIENT, AC_MSG_STATUS);
        ac_err serr = {0};
        answered = false;
        if (send_msg(c, &st, &serr) == 0) {
            double end = now_s() + interval_ms(c) * liveness(c) / 1000.0;
            while (!answered && now_s() < end) {
                zmq_pollitem_t it = {zsock_resolve(c->sock), 0, ZMQ_POLLIN, 0};
                if (zmq_poll(&it, 1, (long)((end - now_s()) * 1000.0) + 1) <= 0)
                    continue;
                if (!sync_take(c, &again, &answered))
                    break;
            }
        }
    }
    bool unknown = !again && c->epoch && !answered;
    if (!again && !unknown)
        return 0;
    /* The epoch just seen is the broker the new socket will meet (or the same
     * one after a DISCONNECT): what is sent now goes to it; a different
     * greeting on the new socket starts over again. Unknown: the greeting
     * decides, and tells whether the broker restarted. */
    uint64_t epoch = c->epoch;
    if (connect_socket(c, err))
        return -1;
    if (unknown)
        c->last_epoch = epoch;
    else
        c->epoch = epoch;
    return 0;
}

/* One ac_farm_client_run: the tasks, what has an outcome, and whether the
 * tasks went to the broker of the current socket. */
typedef struct {
    const char *job;
    const ac_task *tasks;
    int n;
    bool *have;
    bool submitted;
    bool restarted; /* started over during this run: the next submission is a resubmission */
} run_state;

static int run_submit(ac_farm_client *c, run_state *rs, ac_err *err)
{
    if (rs->restarted)
        for (int i = 0; i < rs->n; i++)
            c->stats.resubmits += !rs->have[i];
    rs->submitted = true;
    return submit_missing(c, rs->job, rs->tasks, rs->n, rs->have, err);
}

/* The broker restarted or dropped this client: start over on a new socket.
 * epoch is the new broker's when its greeting told it, so blobs and tasks can
 * go at once; 0 when unknown: they wait for the new socket's greeting. */
static int run_start_over(ac_farm_client *c, run_state *rs, uint64_t epoch, zpoller_t **poller, ac_err *err)
{
    zpoller_destroy(poller);
    c->stats.broker_restarts++;
    rs->submitted = false;
    rs->restarted = true;
    if (connect_socket(c, err))
        return -1;
    if (!epoch)
        return 0;
    c->epoch = epoch;
    return run_submit(c, rs, err);
}

/* A message carrying the broker's epoch arrived during a run. */
static int run_epoch(ac_farm_client *c, run_state *rs, uint64_t epoch, zpoller_t **poller, ac_err *err)
{
    if (!epoch)
        return 0;
    if (!c->epoch) { /* this socket's greeting: now the blobs and tasks may go */
        if (c->last_epoch && epoch != c->last_epoch)
            c->stats.broker_restarts++; /* found out only now: see sync_connection */
        c->last_epoch = 0;
        c->epoch = epoch;
        return rs->submitted ? 0 : run_submit(c, rs, err);
    }
    if (epoch == c->epoch)
        return 0;
    return run_start_over(c, rs, epoch, poller, err);
}

/* A RESULT for this run: records it, asks progress whether to stop early. */
static int run_result(ac_farm_client *c, run_state *rs, const ac_result *r, ac_farm_outcome *out, int *done,
                      int *hint, ac_farm_progress_fn progress, void *ctx, int *cancel, ac_err *err)
{
    if (strcmp(r->key.job, rs->job) != 0)
        return 0; /* another job of this client: not ours to wait for */
    int i = find_task(rs->tasks, rs->n, &r->key, *hint);
    if (i < 0)
        return 0;
    *hint = i + 1;
    if (rs->have[i]) {
        if (out[i].status == AC_RESULT_CANCELLED)
            c->stats.late_results++;
        else
            c->stats.duplicates++;
        return 0;
    }
    take_result(c, r, &out[i]);
    rs->have[i] = true;
    (*done)++;
    int k = progress ? progress(ctx, *done, rs->n, i, &out[i], cancel) : 0;
    int rc = 0;
    if (k < 0) {
        rc = cancel_tasks(c, rs->job, rs->tasks, rs->n, out, rs->have, NULL, 0, NULL, err);
        *done = rs->n;
    } else if (k > 0) {
        int nc = 0;
        rc = cancel_tasks(c, rs->job, rs->tasks, rs->n, out, rs->have, cancel, k < rs->n ? k : rs->n, &nc, err);
        c->stats.cancelled += nc;
        *done += nc;
    }
    return rc;
}

int ac_farm_client_run(ac_farm_client *c, const char *job, const ac_task *tasks, int n, ac_farm_outcome *out,
                       double timeout_s, ac_farm_progress_fn progress, void *ctx, ac_err *err)
{
    memset(out, 0, sizeof *out * (size_t)(n > 0 ? n : 0));
    if (n <= 0)
        return 0;
    run_state rs = {.job = job, .tasks = tasks, .n = n, .have = calloc((size_t)n, sizeof(bool))};
    int *cancel = progress ? calloc((size_t)n, sizeof(int)) : NULL;
    if (!rs.have || (progress && !cancel)) {
        free(rs.have);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int rc = sync_connection(c, err);
    if (!rc && c->epoch)
        rc = run_submit(c, &rs, err);
    int done = 0, hint = 0;
    double start = now_s();
    zpoller_t *poller = NULL;
    while (!rc && done < n) {
        if (!poller) {
            poller = zpoller_new(c->sock, NULL);
            if (!poller) {
                rc = ac_err_set(err, AC_E_NOMEM, "cannot poll the broker socket");
                break;
            }
        }
        void *ready = zpoller_wait(poller, send_interval_ms(c));
        double t = now_s();
        if (zpoller_terminated(poller)) {
            rc = ac_err_set(err, AC_E_IO, "interrupted while waiting for results");
            break;
        }
        if (timeout_s > 0 && t - start > timeout_s) {
            rc = cancel_tasks(c, job, tasks, n, out, rs.have, NULL, 0, NULL, err);
            done = n;
            break;
        }
        if (t - c->last_send >= send_interval_ms(c) / 1000.0 && (rc = send_heartbeat(c, err)))
            break;
        if (!ready) {
            /* Silent broker: assume it restarted; start over on a new socket. */
            if (t - c->last_recv > interval_ms(c) * liveness(c) / 1000.0)
                rc = run_start_over(c, &rs, 0, &poller, err);
            continue;
        }
        ac_msg m;
        ac_err merr = {0};
        if (ac_msg_recv(c->sock, AC_DIR_FROM_BROKER, &m, NULL, NULL, &merr) != AC_OK)
            continue; /* a malformed message from the broker: ignore it, liveness decides */
        c->last_recv = t;
        switch (m.cmd) {
        case AC_MSG_HEARTBEAT:
            if (m.heartbeat.interval_ms > 0 && m.heartbeat.interval_ms < INT32_MAX)
                c->broker_hb_ms = (int)m.heartbeat.interval_ms;
            rc = run_epoch(c, &rs, m.heartbeat.epoch, &poller, err);
            break;
        case AC_MSG_STATUS_REPLY:
            rc = run_epoch(c, &rs, status_epoch(&m.status_map), &poller, err);
            break;
        case AC_MSG_RESULT:
            rc = run_result(c, &rs, &m.result, out, &done, &hint, progress, ctx, cancel, err);
            break;
        case AC_MSG_ERROR:
            if (!m.error.job[0] || !strcmp(m.error.job, job))
                rc = ac_err_set(err, AC_E_IO, "broker refused a request of job '%s': %s", job, m.error.message);
            break;
        case AC_MSG_DISCONNECT:
            rc = run_start_over(c, &rs, 0, &poller, err);
            break;
        default:
            break;
        }
        ac_msg_reset(&m);
    }
    zpoller_destroy(&poller);
    free(rs.have);
    free(cancel);
    return rc;
}

void ac_farm_outcome_free(ac_farm_outcome *o, int n)
{
    for (int i = 0; i < n; i++) {
        free(o[i].partial);
        o[i].partial = NULL;
    }
}

int ac_farm_client_end_job(ac_farm_client *c, const char *job, ac_err *err)
{
    ac_msg m;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_JOB_END);
    snprintf(m.job, sizeof m.job, "%s", job);
    int rc = send_msg(c, &m, err);
    int k = 0;
    for (int i = 0; i < c->nblobs; i++)
        if (strcmp(c->blobs[i].job, job) != 0)
            c->blobs[k++] = c->blobs[i];
    c->nblobs = k;
    return rc;
}

void ac_farm_client_get_stats(const ac_farm_client *c, ac_farm_client_stats *s)
{
    *s = c->stats;
}
