#include "ac_remote.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ac_remote_msg.h"

struct ac_remote {
    zsock_t *router;
    zactor_t *auth;
    const ac_graph *g;
    int input, batch;
    size_t in_per;          /* floats per input sample */
    char session[33];
    char endpoint[512];
    char model[256];
    int test_iterations;
    FILE *log;
    int64_t bad_requests;
    int64_t last_scored;    /* the candidate whose SCORE was last acknowledged (-1: none) */
    float *out;             /* a RUN's outputs, all of them back to back */
    size_t out_cap;
};

static void say(const ac_remote *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const ac_remote *r, const char *fmt, ...)
{
    if (!r->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->log, "remote: ");
    vfprintf(r->log, fmt, ap);
    fprintf(r->log, "\n");
    fflush(r->log);
    va_end(ap);
}

static int64_t per_sample(const ac_tensor *t, int batch)
{
    int64_t n = ac_tensor_numel(t);
    return batch > 0 && n > 0 ? n / batch : 0;
}

static int setup_curve(ac_remote *r, const ac_remote_options *o, ac_err *err)
{
    zcert_t *cert = o->curve_cert ? zcert_load(o->curve_cert) : NULL;
    if (!cert || !strcmp(zcert_secret_txt(cert), "0000000000000000000000000000000000000000")) {
        zcert_destroy(&cert);
        return ac_err_set(err, AC_E_IO, "--listen with CURVE: %s: cannot load a certificate with a secret key",
                          o->curve_cert ? o->curve_cert : "(no --curve_key)");
    }
    /* zauth admits the clients whose public certificates are in the folder. */
    r->auth = zactor_new(zauth, NULL);
    if (!r->auth) {
        zcert_destroy(&cert);
        return ac_err_set(err, AC_E_INTERNAL, "remote: cannot start zauth");
    }
    zstr_sendx(r->auth, "CURVE", o->curve_dir, NULL);
    zsock_wait(r->auth);
    zcert_apply(cert, r->router);
    zcert_destroy(&cert);
    zsock_set_curve_server(r->router, 1);
    zsock_set_zap_domain(r->router, "autocalib");
    return 0;
}

static void random_session(char *out)
{
    uint8_t b[16] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) {
        uint64_t x = (uint64_t)zclock_time() ^ ((uint64_t)getpid() << 32);
        memcpy(b, &x, sizeof x);
    }
    if (f)
        fclose(f);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

ac_remote *ac_remote_new(const ac_remote_options *o, const ac_graph *g, int input, ac_err *err)
{
    const ac_tensor *in = &g->tensors[g->inputs[input]];
    if (in->ndim < 1 || in->dims[0] < 1 || in->dtype != AC_DT_F32) {
        ac_err_set(err, AC_E_UNSUPPORTED, "remote: input '%s' needs a float32 tensor with a batch dim", in->name);
        return NULL;
    }
    if (g->noutputs < 1 || g->noutputs > 64) {
        ac_err_set(err, AC_E_UNSUPPORTED, "remote: the model has %d outputs; 1..64 are supported", g->noutputs);
        return NULL;
    }
    ac_remote *r = calloc(1, sizeof *r);
    if (!r) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    r->g = g;
    r->input = input;
    r->batch = (int)in->dims[0];
    r->in_per = (size_t)per_sample(in, r->batch);
    r->test_iterations = o->test_iterations;
    r->log = o->log;
    r->last_scored = -1;
    snprintf(r->model, sizeof r->model, "%s", o->model_name ? o->model_name : "");
    random_session(r->session);
    r->router = zsock_new(ZMQ_ROUTER);
    if (!r->router) {
        ac_remote_destroy(&r);
        ac_err_set(err, AC_E_NOMEM, "remote: out of memory");
        return NULL;
    }
    zsock_set_linger(r->router, 0);
    /* A RUN carries at most AC_RM_MAX_DATA bytes of samples plus its header. */
    zsock_set_maxmsgsize(r->router, (int64_t)AC_RM_MAX_DATA + 65536);
    if (o->curve_dir && setup_curve(r, o, err)) {
        ac_remote_destroy(&r);
        return NULL;
    }
    if (zsock_bind(r->router, "%s", o->endpoint) < 0) {
        ac_err_set(err, AC_E_IO, "--listen %s: cannot bind: %s", o->endpoint, zmq_strerror(zmq_errno()));
        ac_remote_destroy(&r);
        return NULL;
    }
    const char *ep = zsock_endpoint(r->router);
    snprintf(r->endpoint, sizeof r->endpoint, "%s", ep ? ep : o->endpoint);
    say(r, "listening on %s (session %s)%s", r->endpoint, r->session, o->curve_dir ? ", CURVE" : "");
    return r;
}

void ac_remote_destroy(ac_remote **p)
{
    if (!p || !*p)
        return;
    ac_remote *r = *p;
    zsock_destroy(&r->router);
    zactor_destroy(&r->auth);
    free(r->out);
    free(r);
    *p = NULL;
}

const char *ac_remote_endpoint(const ac_remote *r) { return r->endpoint; }
int64_t ac_remote_bad_requests(const ac_remote *r) { return r->bad_requests; }

/* ---- one request ------------------------------------------------------------------ */

/* The reply to the peer `who` (the routing id frame). */
static void reply(ac_remote *r, zframe_t *who, uint8_t *buf, size_t len)
{
    if (!buf)
        return;
    zmsg_t *m = zmsg_new();
    zmsg_append(m, &(zframe_t *){zframe_dup(who)});
    zmsg_addmem(m, buf, len);
    free(buf);
    zmsg_send(&m, r->router);
}

static void reply_error(ac_remote *r, zframe_t *who, uint64_t seq, const char *code, const char *message)
{
    uint8_t *buf = NULL;
    size_t len;
    ac_err e = {0};
    if (!ac_rm_encode_error(seq, code, message, &buf, &len, &e))
        reply(r, who, buf, len);
}

static void reply_welcome(ac_remote *r, zframe_t *who, uint64_t seq)
{
    const ac_tensor *in = &r->g->tensors[r->g->inputs[r->input]];
    ac_rm_tensor_desc d = {in->name, "float32", in->ndim, in->dims};
    const char **outs = calloc((size_t)(r->g->noutputs ? r->g->noutputs : 1), sizeof *outs);
    if (!outs)
        return;
    for (int i = 0; i < r->g->noutputs; i++)
        outs[i] = r->g->tensors[r->g->outputs[i]].name;
    ac_rm_welcome w = {r->session, r->model, 1, &d, r->g->noutputs, outs, r->batch, r->test_iterations};
    uint8_t *buf = NULL;
    size_t len;
    ac_err e = {0};
    if (!ac_rm_encode_welcome(seq, &w, &buf, &len, &e))
        reply(r, who, buf, len);
    free(outs);
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *dims)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, d ? "," : "", dims[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Checks a RUN's batch against the model input; fills code/message when it does not fit. */
static bool batch_fits(const ac_remote *r, const ac_rm_request *q, const char **code, char *msg, size_t n)
{
    const ac_tensor *in = &r->g->tensors[r->g->inputs[r->input]];
    char want[128], got[128];
    format_shape(want, sizeof want, in->ndim, in->dims);
    format_shape(got, sizeof got, q->ndim, q->shape);
    if (q->dtype_len != 7 || memcmp(q->dtype, "float32", 7)) {
        *code = "bad_dtype";
        snprintf(msg, n, "the batch is %.*s; the input '%s' takes float32", (int)q->dtype_len, q->dtype, in->name);
        return false;
    }
    bool same = q->ndim == in->ndim && q->shape[0] <= AC_RM_MAX_SAMPLES;
    for (int d = 1; same && d < in->ndim; d++)
        same = q->shape[d] == in->dims[d];
    if (!same) {
        *code = "bad_shape";
        snprintf(msg, n, "the batch has shape %s; the input '%s' takes %s with any batch size from 1 to %d", got,
                 in->name, want, AC_RM_MAX_SAMPLES);
        return false;
    }
    if (q->data_len != (size_t)q->shape[0] * r->in_per * sizeof(float)) {
        *code = "bad_shape";
        snprintf(msg, n, "shape %s needs %zu bytes of float32, the message holds %zu", got,
                 (size_t)q->shape[0] * r->in_per * sizeof(float), q->data_len);
        return false;
    }
    return true;
}

/* Runs the client's samples through exec and answers OUTPUTS. */
static void run_batch(ac_remote *r, zframe_t *who, const ac_rm_request *q, const ac_remote_exec *exec)
{
    const char *code;
    char msg[512];
    if (!batch_fits(r, q, &code, msg, sizeof msg)) {
        reply_error(r, who, q->seq, code, msg);
        return;
    }
    const ac_graph *g = r->g;
    int64_t N = q->shape[0];
    size_t total = 0;
    for (int o = 0; o < g->noutputs; o++)
        total += (size_t)per_sample(&g->tensors[g->outputs[o]], r->batch) * (size_t)N;
    if (total > r->out_cap) {
        float *p = realloc(r->out, sizeof(float) * total);
        if (!p) {
            reply_error(r, who, q->seq, "run_failed", "out of memory for the outputs");
            return;
        }
        r->out = p;
        r->out_cap = total;
    }
    float *dst[64];
    int nout = g->noutputs < 64 ? g->noutputs : 64;
    size_t at = 0;
    for (int o = 0; o < nout; o++) {
        dst[o] = r->out + at;
        at += (size_t)per_sample(&g->tensors[g->outputs[o]], r->batch) * (size_t)N;
    }
    ac_err e = {0};
    if (exec->run(exec->ctx, q->data, N, dst, &e)) {
        reply_error(r, who, q->seq, "run_failed", e.msg);
        return;
    }
    ac_rm_output outs[64];
    int64_t shapes[64][AC_MAX_DIMS];
    size_t off = 0;
    for (int o = 0; o < nout; o++) {
        const ac_tensor *t = &g->tensors[g->outputs[o]];
        memcpy(shapes[o], t->dims, sizeof(int64_t) * (size_t)t->ndim);
        shapes[o][0] = N;
        outs[o] = (ac_rm_output){t->name, t->ndim, shapes[o], r->out + off};
        off += (size_t)per_sample(t, r->batch) * (size_t)N;
    }
    uint8_t *buf = NULL;
    size_t len;
    if (!ac_rm_encode_outputs(q->seq, q->id, nout, outs, &buf, &len, &e))
        reply(r, who, buf, len);
}

typedef struct {
    const ac_remote_candidate *cand; /* being served, or NULL */
    const ac_remote_exec *exec;
    const char *wait_reason;         /* answer to NEXT/RESULT without a candidate */
    const char *report;              /* after the search */
    bool scored, fetched;
    double score;
} serve_state;

static bool session_ok(ac_remote *r, zframe_t *who, const ac_rm_request *q)
{
    if (q->session_len == strlen(r->session) && !memcmp(q->session, r->session, q->session_len))
        return true;
    reply_error(r, who, q->seq, "stale_session", "this server was restarted: say HELLO again");
    return false;
}

static void handle(ac_remote *r, zframe_t *who, const ac_rm_request *q, serve_state *st)
{
    uint8_t *buf = NULL;
    size_t len;
    ac_err e = {0};
    if (q->cmd == AC_RM_HELLO) {
        reply_welcome(r, who, q->seq);
        return;
    }
    if (!session_ok(r, who, q))
        return;
    const ac_remote_candidate *c = st->cand;
    switch (q->cmd) {
    case AC_RM_NEXT:
    case AC_RM_RESULT:
        if (st->report) {
            st->fetched = st->fetched || q->cmd == AC_RM_RESULT;
            if (!ac_rm_encode_finished(q->seq, st->report, &buf, &len, &e))
                reply(r, who, buf, len);
        } else if (q->cmd == AC_RM_NEXT && c && !st->scored) {
            if (!ac_rm_encode_candidate(q->seq, c->id, c->name, c->kind, c->strategy_json, &buf, &len, &e))
                reply(r, who, buf, len);
        } else if (!ac_rm_encode_wait(q->seq, q->cmd == AC_RM_RESULT ? "the search is running" : st->wait_reason,
                                      &buf, &len, &e)) {
            reply(r, who, buf, len);
        }
        break;
    case AC_RM_RUN:
        if (!c || st->scored || q->id != c->id)
            reply_error(r, who, q->seq, "stale_candidate", "that candidate is not being served: ask NEXT");
        else
            run_batch(r, who, q, st->exec);
        break;
    case AC_RM_SCORE:
        if (c && !st->scored && q->id == c->id) {
            st->scored = true;
            st->score = q->score;
            r->last_scored = c->id;
        }
        if (q->id == r->last_scored) { /* also a repeat whose ACK was lost */
            if (!ac_rm_encode_ack(q->seq, q->id, &buf, &len, &e))
                reply(r, who, buf, len);
        } else {
            reply_error(r, who, q->seq, "stale_candidate", "that candidate is not being served: ask NEXT");
        }
        break;
    default: break;
    }
}

/* Reads and answers one message if one arrives within ms. */
static void serve_one(ac_remote *r, int ms, serve_state *st)
{
    zpoller_t *p = zpoller_new(r->router, NULL);
    void *which = p ? zpoller_wait(p, ms) : NULL;
    zpoller_destroy(&p);
    if (!which)
        return;
    zmsg_t *m = zmsg_recv(r->router);
    if (!m)
        return;
    zframe_t *who = zmsg_pop(m);
    zframe_t *body = zmsg_pop(m);
    if (who && body && zmsg_size(m) == 0) {
        ac_rm_request q;
        ac_rm_decode_info info;
        ac_err e = {0};
        if (ac_rm_decode_request(zframe_data(body), zframe_size(body), &q, &info, &e) == 0) {
            handle(r, who, &q, st);
        } else {
            r->bad_requests++;
            say(r, "refused a request: %s", e.msg);
            reply_error(r, who, info.have_seq ? q.seq : 0, info.version_mismatch ? "version" : "bad_request", e.msg);
        }
    } else if (who) {
        r->bad_requests++; /* not one frame: nothing to decode */
        reply_error(r, who, 0, "bad_request", "a request is exactly one frame");
    }
    zframe_destroy(&who);
    zframe_destroy(&body);
    zmsg_destroy(&m);
}

int ac_remote_serve(ac_remote *r, const ac_remote_candidate *c, const ac_remote_exec *exec, int64_t deadline_ms,
                    double *score, ac_err *err)
{
    serve_state st = {.cand = c, .exec = exec, .wait_reason = "between candidates"};
    say(r, "candidate %" PRId64 " '%s' (%s): waiting for the client", c->id, c->name, c->kind);
    while (!st.scored) {
        if (zsys_interrupted)
            return ac_err_set(err, AC_E_IO, "remote: interrupted");
        if (deadline_ms && zclock_mono() >= deadline_ms)
            return ac_err_set(err, AC_E_IO, "remote: no score for candidate '%s' before the deadline", c->name);
        serve_one(r, 200, &st);
    }
    *score = st.score;
    say(r, "candidate %" PRId64 " '%s': score %.6f", c->id, c->name, st.score);
    return 0;
}

void ac_remote_wait(ac_remote *r, int ms, const char *reason)
{
    serve_state st = {.wait_reason = reason};
    int64_t end = zclock_mono() + ms;
    for (int64_t now = zclock_mono(); now < end && !zsys_interrupted; now = zclock_mono())
        serve_one(r, (int)(end - now), &st);
}

void ac_remote_finish(ac_remote *r, const char *report_json, double linger_s)
{
    serve_state st = {.report = report_json, .wait_reason = "finished"};
    int64_t end = zclock_mono() + (int64_t)(linger_s * 1000.0);
    say(r, "search finished: serving the result for up to %.0f s", linger_s);
    for (int64_t now = zclock_mono(); now < end && !st.fetched && !zsys_interrupted; now = zclock_mono())
        serve_one(r, (int)(end - now), &st);
    /* a last moment for the reply to leave (linger is 0) */
    zclock_sleep(100);
}
