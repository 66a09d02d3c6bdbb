/* ac_farm_client: the coordinator's side of the bus (docs/protocol.md §7).
 * Uploads a job's blobs, submits tasks, collects exactly one result per task
 * (duplicates ignored), heartbeats the broker, and survives a broker restart:
 * when the broker's epoch changes or it falls silent for interval x liveness,
 * the blobs are uploaded again and every task without a result is resubmitted
 * (tasks are idempotent). Results are returned in task order, so whoever
 * merges them does so in a fixed order whatever the arrival order was. */
#ifndef AC_FARM_CLIENT_H
#define AC_FARM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"
#include "ac_msg.h"

typedef struct {
    const char *endpoint;      /* the broker, e.g. tcp://host:5555 or inproc://... */
    const char *cert_path;     /* CURVE: this coordinator's secret certificate (NULL: plain) */
    const char *server_pub;    /* CURVE: the broker's public certificate */
    int heartbeat_ms;          /* 0: 1000 */
    int liveness;              /* 0: 3 */
} ac_farm_client_opts;

/* A task's outcome, owned by the caller after ac_farm_client_run. */
typedef struct {
    ac_result_status status;
    char error[512];
    uint32_t attempts;         /* the attempt that produced it */
    double seconds;
    uint8_t *partial;          /* malloc'ed (NULL on error) */
    size_t partial_len;
} ac_farm_outcome;

typedef struct ac_farm_client ac_farm_client;

ac_farm_client *ac_farm_client_new(const ac_farm_client_opts *o, ac_err *err);
void ac_farm_client_destroy(ac_farm_client **p);

/* Registers a blob of the job (the bytes must stay valid until the job ends)
 * and uploads it in chunks. */
int ac_farm_client_put_blob(ac_farm_client *c, const char *job, const uint8_t hash[AC_HASH_BYTES],
                            const uint8_t *data, size_t len, ac_err *err);

/* Progress: called after each result with (done, total, the task's index, its
 * outcome). Returns 0 to go on; < 0 to stop waiting (every task still without
 * an outcome is cancelled); k > 0 when the callback wrote k task indices to
 * cancel[0..k) (room for `total`): the tasks no longer wanted. Those still
 * without an outcome get status CANCELLED, the broker is sent CANCEL for them
 * (docs/protocol.md §5.9), and a late result for one is ignored. */
typedef int (*ac_farm_progress_fn)(void *ctx, int done, int total, int index, const ac_farm_outcome *o,
                                   int *cancel);

/* Submits tasks[0..n) (their key.job must be `job`) and waits until every one
 * has an outcome; out[i] belongs to tasks[i]. A task that failed after the
 * broker's attempts, or with an error, has status ERROR with the message.
 * timeout_s > 0 bounds the whole wait (remaining tasks are cancelled and get
 * status CANCELLED). Returns 0 when every task has an outcome. */
int ac_farm_client_run(ac_farm_client *c, const char *job, const ac_task *tasks, int n, ac_farm_outcome *out,
                       double timeout_s, ac_farm_progress_fn progress, void *ctx, ac_err *err);

void ac_farm_outcome_free(ac_farm_outcome *o, int n);

int ac_farm_client_end_job(ac_farm_client *c, const char *job, ac_err *err);

/* Counters for reports. */
typedef struct {
    int resubmits;            /* tasks resubmitted after a broker restart */
    int broker_restarts;      /* epoch changes or silences seen */
    int duplicates;           /* results ignored because the task already had one */
    int requeued_results;     /* results whose attempt was > 1 (a worker died) */
    int cancelled;            /* tasks cancelled at the caller's request, before their result */
    int late_results;         /* results ignored because their task had been cancelled */
} ac_farm_client_stats;
void ac_farm_client_get_stats(const ac_farm_client *c, ac_farm_client_stats *s);

#endif
