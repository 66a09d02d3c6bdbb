/* ac_runner: the data loop shared by the single-process job
 * (coordinator/ac_quantize) and the farm's workers (worker/ac_worker_eval), so
 * that a candidate scored over shards on many workers gives exactly the
 * partials, and so the score, of one pass in one process:
 *   - the dataset options a model input asks for (layout, channels, size),
 *     which also decide the dataset's content hash;
 *   - reading a batch of samples, a short last batch padded by repeating its
 *     last sample (the model always runs full batches);
 *   - calibration: full batches through the fp32 executor into a collector;
 *   - scoring: a sample range through the int8 executor and/or the fp32 one
 *     into metric partials, with the dataset's labels, only the real
 *     samples of a padded batch counted.
 * A callback after every batch lets callers add their own per-batch work
 * (per-layer statistics), report progress and stop (cancel). */
#ifndef AC_RUNNER_H
#define AC_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "ac_calibrate.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_metric.h"
#include "ac_qexec.h"
#include "ac_ref_cache.h"

/* Called after each batch with the samples [first, first + n) it covered; a
 * non-zero return stops the loop, which returns it (fill err). */
typedef int (*ac_runner_batch_fn)(void *ctx, int64_t first, int n, ac_err *err);

typedef struct ac_runner ac_runner;

/* The dataset options for graph input `input` (NCHW unless the last dim looks
 * like channels: dims[3] <= 4 and dims[1] > 4). Strings are not copied. */
ac_dataset_opts ac_runner_data_opts(const ac_graph *g, int input, const char *preprocess, int nthreads);

/* Checks that a sample of ds has the element count of one batch row of the
 * input; the error names the data (`what`: "test", "calib", ...), both shapes
 * and the input. */
int ac_runner_check_data(const ac_graph *g, int input, ac_dataset *ds, const char *what, ac_err *err);

/* A runner feeds graph input `input` (batch = its dims[0]) from ds. Both must
 * outlive it. */
ac_runner *ac_runner_new(const ac_graph *g, int input, ac_dataset *ds, ac_err *err);
void ac_runner_destroy(ac_runner **p);
void ac_runner_set_callback(ac_runner *r, ac_runner_batch_fn fn, void *ctx);
int ac_runner_batch(const ac_runner *r);
/* The batch buffer (batch * sample elems floats) holding the last batch read. */
const float *ac_runner_input(const ac_runner *r);

/* Samples [first, first + n) into the batch buffer, 1 <= n <= batch; rows
 * n..batch-1 repeat sample first + n - 1. */
int ac_runner_read_batch(ac_runner *r, int64_t first, int n, ac_err *err);

/* Observes the fp32 runs of [begin, end) batch by batch; a short last batch
 * is padded and only its real samples are observed (statistics count every
 * sample once). Tensors are observed as their nodes finish
 * (ac_calib_observer), so fp32 may be an executor with shared buffers. */
int ac_runner_calibrate(ac_runner *r, ac_exec *fp32, ac_calib_collector *c, int64_t begin, int64_t end,
                        ac_err *err);

/* An executor as the scoring loop sees it (a backend of the workers may put a
 * board or a GPU behind it): run one batch, then read the float value of a
 * graph output tensor (g->outputs[i], batch rows first). */
typedef struct {
    int (*run)(void *ctx, const void *const *inputs, ac_err *err);
    const float *(*output)(void *ctx, int tensor);
    void *ctx;
} ac_runner_exec;

/* Views of the CPU executors (no allocation; the executor must outlive them). */
ac_runner_exec ac_runner_exec_int8(ac_qexec *e);
ac_runner_exec ac_runner_exec_fp32(ac_exec *e);

/* Lets ac_runner_score take the fp32 reference's outputs of a batch from c
 * (under key: the caller's name for the graph, data and batch) instead of
 * running ref, and keep those it runs. NULL turns it off. */
void ac_runner_set_ref_cache(ac_runner *r, ac_ref_cache *c, uint64_t key);

/* Scores samples [begin, end) in batches from begin (the last one padded).
 *   cand (may be NULL): the candidate; its outputs go to cand_part, with the
 *       reference's outputs as references when ref is given.
 *   ref (may be NULL): the fp32 model; ref_part (may be NULL) then gets its
 *       outputs scored against themselves (the fp32 score).
 * The dataset's labels (class indices, or boxes in pixels of the 4-d input,
 * normalised by its width and height) are given to the partials when it has
 * them. */
int ac_runner_score(ac_runner *r, const ac_runner_exec *cand, const ac_runner_exec *ref,
                    ac_metric_partial *cand_part, ac_metric_partial *ref_part, int64_t begin, int64_t end,
                    ac_err *err);

#endif
