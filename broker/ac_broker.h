/* ac_broker: the farm's broker (docs/protocol.md). One ROUTER socket serves
 * workers and coordinators: per-job FIFO queues served round-robin, dispatch
 * to idle workers only (preferring one that holds the task's model), an
 * in-flight table, heartbeats both ways, requeue of a dead worker's task with
 * attempt + 1 and failure back to the coordinator after max_attempts, a
 * per-job blob store served to workers in chunks, CURVE authentication with a
 * directory of public keys, and per-peer limits.
 *
 * Run it in its own thread (ac_broker_actor_new: the embedded cluster and the
 * tests use inproc://, ipc:// or tcp:// endpoints) or in the calling thread
 * (ac_broker_new + ac_broker_run: `autocalib broker`). */
#ifndef AC_BROKER_H
#define AC_BROKER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "ac_err.h"

typedef struct {
    const char *endpoint;         /* bind endpoint, e.g. tcp://\*:5555 or tcp://127.0.0.1:\* */
    const char *curve_dir;        /* NULL: no CURVE; else admitted public keys (czmq cert files) */
    const char *cert_path;        /* the broker's secret certificate (required with curve_dir) */
    int heartbeat_ms;             /* heartbeat interval (1000) */
    int liveness;                 /* heartbeats missed before a peer is dropped (3) */
    int max_attempts;             /* dispatches of a task before it fails (3) */
    uint64_t blob_bytes_per_job;  /* blob store bound per job (4 GiB) */
    uint32_t max_queued_per_job;  /* queued + in-flight tasks per job (1 000 000) */
    uint32_t max_msgs_per_s;      /* per peer, burst 2x; 0 = unlimited (20000) */
    int64_t max_msg_bytes;        /* ZMQ_MAXMSGSIZE (AC_MSG_MAX_BYTES) */
    int64_t job_orphan_ms;        /* a job whose coordinator is gone is freed after this (600000) */
    bool verbose;                 /* log peers and faults to stderr */
} ac_broker_config;

/* Counters (monotonic) and gauges (current). */
typedef struct {
    uint64_t malformed;         /* messages that failed validation */
    uint64_t rate_dropped;      /* dropped by the per-peer message rate limit */
    uint64_t duplicate_results; /* RESULTs for unknown or completed tasks */
    uint64_t unknown_peer;      /* messages from workers that had not sent READY */
    uint64_t revoked;           /* messages from keys no longer in the curve directory */
    uint64_t refused;           /* requests answered with ERROR */
    uint64_t dispatched, results, requeued, failed, cancelled, undeliverable;
    uint64_t expired_peers;     /* peers dropped for silence */
    uint32_t workers, idle_workers, clients, jobs, queued, in_flight;
} ac_broker_stats;

typedef struct ac_broker ac_broker;

void ac_broker_config_defaults(ac_broker_config *cfg);

/* Creates the socket (and zauth with CURVE) and binds. */
ac_broker *ac_broker_new(const ac_broker_config *cfg, ac_err *err);
void ac_broker_destroy(ac_broker **self);

/* The bound endpoint with the port resolved (tcp://127.0.0.1:* -> ...:41235). */
const char *ac_broker_endpoint(const ac_broker *self);

/* Serves until "$TERM" arrives on pipe (when pipe is not NULL) or, without a
 * pipe, until SIGINT/SIGTERM (zsys_interrupted). The pipe also answers
 * "STATS" with one frame holding an ac_broker_stats. */
int ac_broker_run(ac_broker *self, zsock_t *pipe);

void ac_broker_get_stats(const ac_broker *self, ac_broker_stats *out);

/* The STATUS_REPLY map (docs/protocol.md §10), msgpack, malloc'ed. */
int ac_broker_status_encode(const ac_broker *self, uint8_t **buf, size_t *len, ac_err *err);

/* Starts a broker in its own thread. endpoint_out (when not NULL, 256 bytes)
 * receives the bound endpoint. NULL on failure (err says why). Stop it with
 * zactor_destroy. */
zactor_t *ac_broker_actor_new(const ac_broker_config *cfg, char *endpoint_out, ac_err *err);
int ac_broker_actor_stats(zactor_t *actor, ac_broker_stats *out);

#endif
