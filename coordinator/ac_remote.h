/* ac_remote: the server side of remote test mode (docs/remote.md). The search
 * runs in the coordinator as usual; for each candidate the job calls
 * ac_remote_serve, which offers the candidate to the user's Python client,
 * runs the client's batches through the job's executor callback (the farm
 * job sends them to workers as run tasks), and returns the score the client
 * reports. Between candidates and while the server is busy
 * (calibrating, writing artefacts) requests are answered with WAIT, and after
 * the search with FINISHED and the report.
 *
 * Every frame goes through msg/ac_remote_msg; a malformed request is counted,
 * answered with ERROR and otherwise ignored. Over TCP the socket may require
 * CURVE: only clients whose public certificates are in curve_dir connect. */
#ifndef AC_REMOTE_H
#define AC_REMOTE_H

#include <stdint.h>
#include <stdio.h>

#include "ac_err.h"
#include "ac_graph.h"

typedef struct {
    const char *endpoint;   /* where the server listens: tcp://HOST:PORT or ipc://PATH */
    const char *curve_dir;  /* admitted client public certificates; NULL: no CURVE */
    const char *curve_cert; /* the server's certificate (with its secret key); needed with curve_dir */
    const char *model_name; /* shown to the client */
    int test_iterations;    /* batches the client should run per candidate (0: all it has) */
    FILE *log;              /* progress lines; NULL: quiet */
} ac_remote_options;

typedef struct ac_remote ac_remote;

/* Binds the socket. The graph (input `input`, its outputs) must outlive it. */
ac_remote *ac_remote_new(const ac_remote_options *o, const ac_graph *g, int input, ac_err *err);
void ac_remote_destroy(ac_remote **p);
const char *ac_remote_endpoint(const ac_remote *r);

typedef struct {
    int64_t id;                /* unique per candidate served by this process */
    const char *name;
    const char *kind;          /* "int8" or "fp32" */
    const char *strategy_json; /* a JSON object describing the candidate */
} ac_remote_candidate;

/* Runs n samples of the candidate: in holds n x the input's sample as
 * float32 bytes (not necessarily aligned); outs[o] gets graph output o's n
 * rows (n x prod(dims[1:]) floats). */
typedef struct {
    int (*run)(void *ctx, const uint8_t *in, int64_t n, float *const *outs, ac_err *err);
    void *ctx;
} ac_remote_exec;

/* Serves c until the client reports its score (*score). deadline: a
 * zclock_mono() time in ms after which it gives up (0: none), returning
 * non-zero with a message. */
int ac_remote_serve(ac_remote *r, const ac_remote_candidate *c, const ac_remote_exec *exec, int64_t deadline_ms,
                    double *score, ac_err *err);

/* Answers whatever arrives within ms with WAIT (reason), so a client polling
 * while the server is busy learns why. */
void ac_remote_wait(ac_remote *r, int ms, const char *reason);

/* Answers with FINISHED (the report) until the client fetched it with RESULT
 * or linger_s passed. */
void ac_remote_finish(ac_remote *r, const char *report_json, double linger_s);

/* Requests refused as malformed (counted, answered with ERROR). */
int64_t ac_remote_bad_requests(const ac_remote *r);

#endif
