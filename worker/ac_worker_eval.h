/* ac_worker_eval: a worker's transport-free core (docs/worker.md §1): execute
 * one task (msg/ac_msg.h) against the cached model and dataset and produce the
 * result's partial bytes.
 *   AC_TASK_CALIB: a shard collector from the payload's template on the
 *     graph, fp32 runs over the shard's samples (whole batches), the encoded
 *     collector partial (quant/ac_calibrate.h).
 *   AC_TASK_EVAL: the candidate's int8 plan (built from the payload's ranges
 *     and options, cached by ac_eval_payload_id) or the fp32 model, run over
 *     the shard by the backend (runner/ac_runner.h: exactly the loop of
 *     `autocalib quantize`), the encoded metric partial.
 *   AC_TASK_NOOP: an empty OK result.
 *   AC_TASK_RUN: the samples carried in the payload (remote test mode) run
 *     through the candidate or the fp32 model in model batches; the encoded
 *     graph outputs (msg/ac_payload.h ac_run_outputs). No dataset.
 * Every failure of the task's input (payload, names, shapes, ranges) becomes a
 * result with status ERROR and a message; only a missing blob is returned to
 * the caller, which fetches it and runs the task again. */
#ifndef AC_WORKER_EVAL_H
#define AC_WORKER_EVAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "ac_backend.h"
#include "ac_msg.h"
#include "ac_worker_cache.h"

typedef struct {
    /* After each batch: samples done of total (may be NULL). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
    /* Checked between batches: non-zero stops the task with status CANCELLED. */
    const atomic_int *cancel;
} ac_worker_hooks;

typedef struct ac_worker_eval ac_worker_eval;

/* cache and backend must outlive the evaluator; threads: fp32 calibration runs. */
ac_worker_eval *ac_worker_eval_new(ac_worker_cache *cache, ac_backend *backend, int threads, ac_err *err);
void ac_worker_eval_destroy(ac_worker_eval **p);

/* Runs the task. Returns 0 with *res filled (key copied, status, error,
 * seconds; res->partial points to *partial, malloc'ed, which the caller
 * frees; NULL unless status is OK), or AC_CACHE_MISSING with the hash of the
 * blob to fetch in missing[] (then run again). hooks may be NULL. */
int ac_worker_eval_run(ac_worker_eval *w, const ac_task *task, const ac_worker_hooks *hooks, ac_result *res,
                       uint8_t **partial, uint8_t missing[AC_HASH_BYTES]);

/* Plans built and reused so far (tests, logs). */
void ac_worker_eval_plan_stats(const ac_worker_eval *w, int *built, int *reused);

#endif
