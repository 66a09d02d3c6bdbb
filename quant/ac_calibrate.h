/* ac_calibrate: calibration of a graph's activations from fp32 runs.
 *
 * The caller owns the data loop (datasets are not quant/'s business): it runs
 * the fp32 executor on each calibration batch and hands the executor to the
 * collector, which folds every float activation tensor into its statistics.
 *   pass 1 (range):     count, min, max, abs-max, moments
 *   pass 2 (histogram): |x| histograms over the merged pass-1 abs-max
 *                       (only when the threshold method needs one)
 *   pass 3 (tuning):    the upward KL tuning step on a few batches
 * Collectors built on different shards merge exactly (ac_calib_stats), so the
 * distributed search can compute them on many workers. */
#ifndef AC_CALIBRATE_H
#define AC_CALIBRATE_H

#include <stdbool.h>

#include "ac_calib_stats.h"
#include "ac_calib_table.h"
#include "ac_exec.h"
#include "ac_graph.h"
#include "ac_threshold.h"

#define AC_TUNE_STEPS 21

typedef enum { AC_CALIB_PASS_RANGE = 1, AC_CALIB_PASS_HIST = 2, AC_CALIB_PASS_TUNE = 3 } ac_calib_pass;

typedef struct ac_calib_collector ac_calib_collector;

/* One statistics slot per float activation tensor of g (graph inputs included).
 * nbins 0 = AC_CALIB_DEFAULT_BINS. */
ac_calib_collector *ac_calib_collector_new(const ac_graph *g, int nbins, ac_err *err);
void ac_calib_collector_destroy(ac_calib_collector **p);

ac_calib_pass ac_calib_collector_pass(const ac_calib_collector *c);

/* Fold the tensors of the executor's last run into the current pass. Tensors
 * are processed in parallel (one thread per tensor), so the result does not
 * depend on the thread count. */
int ac_calib_collector_observe(ac_calib_collector *c, const ac_exec *e, ac_err *err);

/* Observation node by node, during the run: each tensor is folded in
 * right after its producer ran, so the executor may share buffers between
 * tensors (ac_exec_new_shared: a fraction of the memory, and the tensor is
 * read while it is still in cache). Same statistics as
 * ac_calib_collector_observe after each run, for any thread count: in the
 * range and histogram passes each thread takes a share of a tensor into its
 * own collector, merged exactly at the end; in the tuning pass each tensor
 * is one thread's, whole.
 *   o = ac_calib_observer_new(c, ac_exec_threads(e));
 *   ac_exec_set_node_hook(e, ac_calib_observer_node, o);  ... runs ...
 *   ac_calib_observer_finish(o, err);   folds the threads' shares into c */
typedef struct ac_calib_observer ac_calib_observer;
ac_calib_observer *ac_calib_observer_new(ac_calib_collector *c, int nth, ac_err *err);
int ac_calib_observer_node(void *observer, const ac_exec *e, int node, int ith, int nth);
/* The next runs carry nreal real samples in a batch of `batch` (the rest is
 * padding): tensors whose dim 0 is the batch are observed on their first
 * nreal samples only. Default: every sample. */
void ac_calib_observer_set_real(ac_calib_observer *o, int nreal, int batch);
/* The first error of the runs (a tensor without a buffer), else 0. Then the merge. */
int ac_calib_observer_finish(ac_calib_observer *o, ac_err *err);
void ac_calib_observer_destroy(ac_calib_observer **p);

/* An empty collector for a shard of the current pass of `master`: same
 * tensors, same histogram ranges (pass 2) or tuning candidates (pass 3), no
 * data. What a worker fills and the coordinator merges back into master. */
ac_calib_collector *ac_calib_collector_new_shard(const ac_calib_collector *master, ac_err *err);

/* dst += src (same graph, same pass). */
int ac_calib_collector_merge(ac_calib_collector *dst, const ac_calib_collector *src, ac_err *err);

/* Pass 1 -> pass 2: fixes every histogram's range at its tensor's abs-max. */
int ac_calib_collector_begin_hist(ac_calib_collector *c, ac_err *err);

/* Thresholds by method; with tune, only after the tuning pass (below). */
ac_calib_table *ac_calib_collector_table(const ac_calib_collector *c, ac_th_method m, ac_err *err);

/* Pass 2 (or 1 for methods without a histogram) -> pass 3: the upward KL
 * tuning step. For each tensor whose threshold is below its abs-max, the
 * candidates th + i*(absmax-th)/AC_TUNE_STEPS are scored by the squared error
 * between the activation and its int8 fake-quantized value over the tuning
 * batches; the least error wins (ties to the lower threshold). */
int ac_calib_collector_begin_tune(ac_calib_collector *c, ac_th_method m, ac_err *err);
/* The tuning candidates' scores on one tensor's batch: out[k] = the sum over
 * the finite x, in order, of (x - q*s)^2, q = clamp(round_half_away(x / s)),
 * s = th[k]/127 (signed) or th[k]/255, for k < ncand <= AC_TUNE_STEPS + 1.
 * All candidates in one pass over x (eight at a time with AVX-512), bit for
 * bit the oracle's sum for each th[k] alone. */
void ac_calib_fake_quant_sq_err(const float *x, size_t n, const double *th, int ncand, bool is_signed, double *out);
double ac_calib_fake_quant_sq_err__ref(const float *x, size_t n, double th, bool is_signed);
/* After the tuning batches: the tuned table; *moved counts thresholds that rose. */
ac_calib_table *ac_calib_collector_tuned_table(const ac_calib_collector *c, int *moved, ac_err *err);

/* ---- wire forms (the farm: workers fill shard collectors) -------------------------
 * The template is what a shard collector needs to start: the pass, the bin
 * count, and per tensor (by name) its histogram range (pass 2) or its tuning
 * candidates (pass 3). The partial is the collected data: per tensor its
 * encoded statistics (passes 1, 2) or its candidate errors (pass 3). Decoding
 * is strict: a tensor name the graph does not have, a missing tensor, a
 * wrong pass or truncated bytes are errors naming the field. */
int ac_calib_collector_encode_template(const ac_calib_collector *master, uint8_t **buf, size_t *len,
                                       ac_err *err);
ac_calib_collector *ac_calib_collector_from_template(const ac_graph *g, const uint8_t *buf, size_t len,
                                                     ac_err *err);
int ac_calib_collector_encode(const ac_calib_collector *c, uint8_t **buf, size_t *len, ac_err *err);
/* dst += the decoded partial (which must be of dst's graph and pass). */
int ac_calib_collector_merge_encoded(ac_calib_collector *dst, const uint8_t *buf, size_t len, ac_err *err);

/* Statistics of one tensor (NULL when the tensor is not collected). */
const ac_calib_stats *ac_calib_collector_stats(const ac_calib_collector *c, int tensor);

#endif
