/* Test support for the int8 plan tests (plan_selftest, the q8 dump tool, the
 * long MobileNetV2 test): model loading with a batch size, abs-max thresholds
 * from fp32 runs (the calibration module is separate; tests use the simplest
 * method so they do not depend on it), and top-1 evaluation. Not part of the
 * ac_quant library. */
#ifndef AC_QTEST_UTIL_H
#define AC_QTEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "ac_calib_table.h"
#include "ac_graph.h"
#include "ac_plan.h"

/* Loads an ONNX model with the first input's batch dim set to `batch`
 * (dims = batch followed by the file's other dims; shape given by caller). */
ac_graph *qt_load(const char *path, const char *input_shape, ac_err *err);

/* Abs-max calibration table: runs the fp32 executor over nbatch batches of
 * `x` (each of the input's numel floats) and records min, max, abs-max of
 * every float activation (th = max(abs-max, 1e-5)). */
ac_calib_table *qt_absmax_table(const ac_graph *g, const float *x, int nbatch, ac_err *err);

/* Top-1 agreement with labels over nbatch batches (labels: batch * nbatch).
 * plan NULL: the fp32 executor. Returns the number correct, -1 on error. */
int64_t qt_top1(const ac_graph *g, const ac_plan *plan, const float *x, const int32_t *labels,
                int nbatch, int label_offset, int nthreads, ac_err *err);

/* Fashion-MNIST: n images from an idx file preprocessed as (x/255-0.2860)/0.3530
 * into a malloc'ed [n][784] buffer, and their labels. NULL when absent. */
float *qt_fmnist(const char *images, const char *labels, int64_t first, int64_t n,
                 int32_t **labels_out, ac_err *err);

/* First existing path among <repo>/models/<name> and <zoo>/fmnist/<name>; NULL if none. */
const char *qt_find_fmnist_model(const char *repo, const char *zoo, const char *name, char *buf,
                                 size_t cap);

#endif
