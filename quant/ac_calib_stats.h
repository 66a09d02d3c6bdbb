/* ac_calib_stats: per-tensor calibration statistics that merge exactly.
 *
 * Two passes over the calibration data (docs/calibration.md explains why):
 *   pass 1  ac_calib_stats_observe(): count, zeros, min, max, abs-max and the
 *           moments sum(x), sum(|x|), sum(x^2), all kept exactly;
 *   pass 2  ac_calib_stats_set_hist_range(global abs-max), then
 *           ac_calib_stats_observe_hist(): a histogram of |x| (zeros excluded)
 *           whose bins are centred on j*width, width = absmax/(nbins-1), bin of
 *           x = floor(|x|/width + 1/2) (the reference toolchain's layout).
 * Every field is either an integer count, a min/max, or an exact fixed-point
 * sum, so merging partial statistics of any sharding, in any order, gives the
 * same bytes as one pass over all the data.
 *
 * Non-finite values (NaN, +-inf) are counted in n_nonfinite and otherwise
 * ignored by both passes. */
#ifndef AC_CALIB_STATS_H
#define AC_CALIB_STATS_H

#include "ac_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AC_CALIB_DEFAULT_BINS 2048
#define AC_CALIB_MAX_BINS 65536

typedef struct ac_calib_stats ac_calib_stats;

/* nbins in [2, AC_CALIB_MAX_BINS]; 0 means AC_CALIB_DEFAULT_BINS. NULL on a bad
 * nbins or when out of memory. */
ac_calib_stats *ac_calib_stats_new(int nbins);
void ac_calib_stats_destroy(ac_calib_stats **p);
ac_calib_stats *ac_calib_stats_dup(const ac_calib_stats *st);

/* Pass 1: fold n values into the range statistics and moments. __ref is the
 * plain one-value-at-a-time loop, the oracle of the fast one (same bytes). */
void ac_calib_stats_observe(ac_calib_stats *st, const float *x, size_t n);
void ac_calib_stats_observe__ref(ac_calib_stats *st, const float *x, size_t n);

/* Start pass 2 with the global abs-max (from the merged pass-1 statistics).
 * Fails when absmax is negative or not finite, or when a different range is
 * already set. */
int ac_calib_stats_set_hist_range(ac_calib_stats *st, float absmax, ac_err *err);

/* Pass 2: add |x| of the non-zero finite values to the histogram. A value
 * above the range (the data differ from pass 1's) lands in the last bin and is
 * counted in hist_clamped. Requires a range (set_hist_range); without one the
 * call does nothing and returns false. */
bool ac_calib_stats_observe_hist(ac_calib_stats *st, const float *x, size_t n);

/* The plain one-value-at-a-time loops of both passes: the oracles of the
 * vector versions above (the same bytes), used where the CPU lacks AVX-512.
 * The histogram one requires a range. */
void ac_calib_stats_observe__ref(ac_calib_stats *st, const float *x, size_t n);
void ac_calib_stats_observe_hist__ref(ac_calib_stats *st, const float *x, size_t n);

/* dst += src. Both must have the same nbins; where both have a histogram range
 * the ranges must be bit-identical. dst adopts src's range when it has none. */
int ac_calib_stats_merge(ac_calib_stats *dst, const ac_calib_stats *src, ac_err *err);

/* Every field equal (bit for bit). */
bool ac_calib_stats_equal(const ac_calib_stats *a, const ac_calib_stats *b);

/* ---- read access ---------------------------------------------------------------- */
uint64_t ac_calib_stats_count(const ac_calib_stats *st);    /* finite values seen */
uint64_t ac_calib_stats_zeros(const ac_calib_stats *st);    /* of which exactly 0 */
uint64_t ac_calib_stats_nonfinite(const ac_calib_stats *st);
float ac_calib_stats_min(const ac_calib_stats *st); /* 0 when count == 0 */
float ac_calib_stats_max(const ac_calib_stats *st);
float ac_calib_stats_absmax(const ac_calib_stats *st);
/* Moments over the finite values (0 when count == 0), each rounded once from
 * the exact sum: mean of x, mean of |x|, mean of x^2. */
double ac_calib_stats_mean(const ac_calib_stats *st);
double ac_calib_stats_mean_abs(const ac_calib_stats *st);
double ac_calib_stats_mean_sq(const ac_calib_stats *st);

int ac_calib_stats_nbins(const ac_calib_stats *st);
bool ac_calib_stats_has_hist(const ac_calib_stats *st);
float ac_calib_stats_hist_absmax(const ac_calib_stats *st);
double ac_calib_stats_hist_width(const ac_calib_stats *st); /* absmax/(nbins-1) */
const uint64_t *ac_calib_stats_hist(const ac_calib_stats *st); /* nbins counts */
uint64_t ac_calib_stats_hist_total(const ac_calib_stats *st);
uint64_t ac_calib_stats_hist_clamped(const ac_calib_stats *st);

/* ---- wire form (msgpack, docs/calibration.md §4) ------------------------------- */

/* *buf is malloc'd; the caller frees it. */
int ac_calib_stats_encode(const ac_calib_stats *st, uint8_t **buf, size_t *len, ac_err *err);

/* Strict: any deviation from the layout, any inconsistent field or trailing
 * byte is an error naming the field. Never reads outside [buf, buf+len) and
 * never allocates more than the validated nbins. */
int ac_calib_stats_decode(const uint8_t *buf, size_t len, ac_calib_stats **out, ac_err *err);

#endif
