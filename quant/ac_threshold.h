/* ac_threshold: activation thresholds from merged calibration statistics
 * (docs/bm1684-int8.md §1 and §7; formulas and references in
 * docs/calibration.md §5).
 *
 * A threshold th makes a tensor int8 with scale th/127 when its calibrated min
 * is < 0, otherwise uint8 with scale th/255. Every method's answer is capped at
 * the tensor's abs-max, and a tensor whose abs-max is <= 1e-5 gets 1e-5. */
#ifndef AC_THRESHOLD_H
#define AC_THRESHOLD_H

#include "ac_calib_stats.h"
#include "ac_err.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    AC_TH_KL = 0,         /* least KL(P||Q) clip, 128 levels (default) */
    AC_TH_MAX,            /* abs-max */
    AC_TH_PERCENTILE9999, /* 99.99th percentile of |x| (non-zero values) */
    AC_TH_MSE,            /* clip minimising the expected quantization error */
    AC_TH_ACIQ_GAUSS,     /* 3.924 * sigma */
    AC_TH_ACIQ_LAPLACE,   /* 9.897 * b */
    AC_TH_METHOD_COUNT
} ac_th_method;

#define AC_TH_FLOOR 1e-5
#define AC_TH_KL_LEVELS 128
#define AC_TH_ACIQ_GAUSS_K 3.924
#define AC_TH_ACIQ_LAPLACE_K 9.897

/* "KL", "MAX", "PERCENTILE9999", "MSE", "ACIQ_GAUSS", "ACIQ_LAPLACE". */
const char *ac_th_method_name(ac_th_method m);
/* Case-insensitive inverse of ac_th_method_name. */
int ac_th_method_parse(const char *name, ac_th_method *m, ac_err *err);
/* Whether the method reads the pass-2 histogram (KL, PERCENTILE9999, MSE). */
bool ac_th_method_needs_hist(ac_th_method m);

typedef struct {
    double th;      /* the threshold to use: raw capped at abs-max, floored at 1e-5 */
    double raw;     /* the method's own answer */
    float min, max; /* the calibrated range (for the calibration table) */
    bool is_signed; /* min < 0: int8 with scale th/127; else uint8 with th/255 */
    double scale;
} ac_threshold;

/* Threshold of one tensor. Errors: no finite value observed; a histogram
 * method without a histogram, or with one whose range is not this tensor's
 * abs-max (pass 2 ran with another range); KL with fewer than 128 bins. */
int ac_threshold_compute(const ac_calib_stats *st, ac_th_method m, ac_threshold *out,
                         ac_err *err);

/* Cap at abs-max, then the 1e-5 rule (abs-max <= 1e-5 -> 1e-5; never below 1e-5). */
double ac_threshold_finish(double raw, double absmax);

/* ---- the histogram methods on a raw histogram --------------------------------------
 * hist[j] counts |x| in the bin centred on j*width (bins [(j-1/2)w, (j+1/2)w)). */

/* KL (§7): clip after i = levels, 2*levels, ... <= nbins bins; P = hist[0..i)
 * with the tail folded into bin i-1, normalised by the total; Q = hist[0..i)
 * merged into `levels` groups of i/levels bins, each group's mass spread evenly
 * over its non-empty bins, normalised by the mass below the clip; the least
 * sum P*(log10(P+1e-30) - log10(Q+1e-30)) wins (first on ties); returns
 * i*width. A candidate with no mass below the clip is skipped. Returns 0 when
 * the histogram is empty or has fewer than `levels` bins. */
double ac_threshold_kl_hist(const uint64_t *hist, int nbins, double width, int levels);

/* The upper edge (j+1/2)*width of the first bin j where the running count
 * reaches fraction * total. 0 for an empty histogram. */
double ac_threshold_percentile_hist(const uint64_t *hist, int nbins, double width,
                                    double fraction);

/* MSE: among clips c_k = (k+1/2)*width (k = 0..nbins-1, the last one capped at
 * (nbins-1)*width), the one minimising
 *     c^2/(12 L^2) * N(|x| <= c) + sum over |x| > c of (|x| - c)^2
 * with bin j represented by j*width (bin 0 by width/4) and L the number of
 * positive levels (127 signed, 255 unsigned); first on ties. This is the
 * objective whose stationary point OCTAV's fixed-point iteration solves; here
 * it is minimised directly over the candidates. 0 for an empty histogram. */
double ac_threshold_mse_hist(const uint64_t *hist, int nbins, double width, int levels);

/* ---- upward tuning (needs a network run; done by the caller) ----------------------
 * The reference moves a KL threshold up toward abs-max in even steps and keeps
 * the candidate with the least per-layer output error on a few images. This
 * gives the candidates: out[0] = th, out[i] = th + i*(absmax - th)/steps for
 * i = 1..steps (out has steps+1 entries). Returns the number written: 1 when
 * th >= absmax (nothing to tune), else steps+1. The caller evaluates them and
 * picks the least error, ties to the lower threshold. */
int ac_threshold_tune_candidates(double th, double absmax, int steps, double *out);

#endif
