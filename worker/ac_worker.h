/* ac_worker: the worker loop over the farm protocol (docs/protocol.md §6,
 * docs/worker.md §4). A DEALER connected to the broker (a CURVE client when
 * keys are given) announces READY (name, threads, ISA, backend, cached
 * hashes), heartbeats, receives TASKs, fetches missing blobs with BLOB_REQ /
 * BLOB (assembled, hash checked, cached), runs the task on its own thread
 * (ac_worker_eval) while the loop keeps heartbeating, sends PROGRESS between
 * batches and RESULT at the end, honours CANCEL, reconnects when the broker
 * goes silent for interval x liveness or says DISCONNECT, and says DISCONNECT
 * when it stops.
 *
 * In-process as a thread (ac_worker_actor_new: the embedded cluster, tests)
 * or in the calling thread (ac_worker_new + ac_worker_run: `autocalib worker`). */
#ifndef AC_WORKER_H
#define AC_WORKER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "ac_err.h"

typedef struct {
    const char *endpoint;        /* the broker, e.g. tcp://host:5555 */
    const char *name;            /* NULL: host-pid-n */
    int threads;                 /* kernel threads (0 = OpenMP default) */
    const char *cache_dir;       /* NULL: a private temporary folder */
    uint64_t cache_bytes;        /* on-disk blob bound (0 = none) */
    const char *cert_path;       /* CURVE: this worker's secret certificate file */
    const char *server_pub_path; /* CURVE: the broker's public certificate file */
    int heartbeat_ms;            /* 1000 */
    int liveness;                /* 3 */
    bool verbose;                /* log tasks and reconnects to stderr */
} ac_worker_config;

typedef struct {
    uint64_t tasks_ok, tasks_error, tasks_cancelled, tasks_dropped;
    uint64_t blobs_fetched, blob_bytes, reconnects, progress_sent;
} ac_worker_stats;

typedef struct ac_worker ac_worker;

void ac_worker_config_defaults(ac_worker_config *cfg);

ac_worker *ac_worker_new(const ac_worker_config *cfg, ac_err *err);
void ac_worker_destroy(ac_worker **p);

/* Serves until "$TERM" on pipe (when given) or SIGINT/SIGTERM (zsys_interrupted).
 * The pipe also answers "STATS" with one frame holding an ac_worker_stats. */
int ac_worker_run(ac_worker *w, zsock_t *pipe);
void ac_worker_get_stats(const ac_worker *w, ac_worker_stats *out);

/* A worker in its own thread; stop it with zactor_destroy. */
zactor_t *ac_worker_actor_new(const ac_worker_config *cfg, ac_err *err);
int ac_worker_actor_stats(zactor_t *actor, ac_worker_stats *out);

/* "avx512", "avx2", "sse4.2" or "generic": what READY announces. */
const char *ac_worker_isa(void);

#endif
