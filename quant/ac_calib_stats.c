/* ac_calib_stats: see ac_calib_stats.h and docs/calibration.md.
 *
 * Exact sums: a finite float32 is M * 2^(s - 149) with M < 2^24 an integer and
 * s = max(biased exponent, 1) - 1 in [0, 253]. So |x| is the integer M << s in
 * units of 2^-149 (below 2^277) and x^2 the integer M^2 << 2s in units of
 * 2^-298 (below 2^554). Summing those integers in little-endian 64-bit limbs
 * (6 limbs = 384 bits for |x|, 10 limbs = 640 bits for x^2, room for 2^64
 * values) loses nothing, so the sums are associative and commutative: merge
 * order cannot change a bit. Positive and negative values go to separate
 * accumulators, which also gives sum |x| = pos + neg for free. */
#include "ac_calib_stats.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define ABS_LIMBS 6
#define SQ_LIMBS 10
#define ABS_UNIT_EXP (-149) /* value of the lowest bit of an |x| accumulator */
#define SQ_UNIT_EXP (-298)

struct ac_calib_stats {
    int nbins;
    uint64_t count;       /* finite values */
    uint64_t n_zero;      /* finite values equal to 0 (either sign) */
    uint64_t n_nonfinite; /* NaN, +-inf: ignored by everything else */
    float min, max;       /* over finite values, -0 stored as +0; 0 when count == 0 */
    uint64_t pos[ABS_LIMBS]; /* sum of x over x > 0, units 2^-149 */
    uint64_t neg[ABS_LIMBS]; /* sum of -x over x < 0 */
    uint64_t sq[SQ_LIMBS];   /* sum of x^2, units 2^-298 */
    bool has_hist;
    float hist_absmax;
    double hist_width;     /* hist_absmax / (nbins - 1) */
    uint64_t hist_clamped; /* pass-2 values beyond the range, put in the last bin */
    uint64_t *hist;        /* nbins counts, all 0 until pass 2 */
};

/* ---- fixed-point accumulators ------------------------------------------------------- */

/* l += v << shift. Returns false when the sum leaves the top limb. */
static bool acc_add_shifted(uint64_t *l, int nl, uint64_t v, unsigned shift)
{
    unsigned i = shift / 64, off = shift % 64;
    uint64_t lo = v << off;
    uint64_t hi = off ? v >> (64 - off) : 0;
    l[i] += lo;
    uint64_t carry = hi + (l[i] < lo); /* hi < 2^63: no overflow */
    for (i++; carry && i < (unsigned)nl; i++) {
        l[i] += carry;
        carry = l[i] < carry;
    }
    return carry == 0;
}

/* out = a + b over nl limbs; false on overflow (out then unspecified). */
static bool acc_sum(uint64_t *out, const uint64_t *a, const uint64_t *b, int nl)
{
    uint64_t carry = 0;
    for (int i = 0; i < nl; i++) {
        uint64_t s = a[i] + carry;
        uint64_t c1 = s < carry;
        uint64_t t = s + b[i];
        uint64_t c2 = t < s;
        out[i] = t;
        carry = c1 | c2;
    }
    return carry == 0;
}

static int acc_cmp(const uint64_t *a, const uint64_t *b, int nl)
{
    for (int i = nl - 1; i >= 0; i--)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* out = a - b, requires a >= b. */
static void acc_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, int nl)
{
    uint64_t borrow = 0;
    for (int i = 0; i < nl; i++) {
        uint64_t d = a[i] - b[i] - borrow;
        borrow = (a[i] < b[i]) || (a[i] - b[i] < borrow);
        out[i] = d;
    }
}

static bool acc_is_zero(const uint64_t *l, int nl)
{
    for (int i = 0; i < nl; i++)
        if (l[i])
            return false;
    return true;
}

/* The accumulator as a double: the top three non-zero-limb terms, added from
 * the most significant down (relative error below 2^-50). It is a fixed
 * function of the exact integer, so it is as reproducible as the sum. */
static double acc_to_double(const uint64_t *l, int nl, int unit_exp)
{
    int h = nl - 1;
    while (h >= 0 && l[h] == 0)
        h--;
    double d = 0.0;
    for (int i = h; i >= 0 && i >= h - 2; i--)
        d += ldexp((double)l[i], 64 * i + unit_exp);
    return d;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

ac_calib_stats *ac_calib_stats_new(int nbins)
{
    if (nbins == 0)
        nbins = AC_CALIB_DEFAULT_BINS;
    if (nbins < 2 || nbins > AC_CALIB_MAX_BINS)
        return NULL;
    ac_calib_stats *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->hist = calloc((size_t)nbins, sizeof *st->hist);
    if (!st->hist) {
        free(st);
        return NULL;
    }
    st->nbins = nbins;
    return st;
}

void ac_calib_stats_destroy(ac_calib_stats **p)
{
    if (!p || !*p)
        return;
    free((*p)->hist);
    free(*p);
    *p = NULL;
}

ac_calib_stats *ac_calib_stats_dup(const ac_calib_stats *st)
{
    ac_calib_stats *d = ac_calib_stats_new(st->nbins);
    if (!d)
        return NULL;
    uint64_t *hist = d->hist;
    *d = *st;
    d->hist = hist;
    memcpy(d->hist, st->hist, (size_t)st->nbins * sizeof *st->hist);
    return d;
}

/* ---- pass 1 ------------------------------------------------------------------------- */

/* Values are summed per exponent first (one add each), then the per-exponent
 * sums are folded into the limbs once per block: a block of 2^16 values keeps
 * every bucket below 2^64 (mantissas < 2^24, squared < 2^48). Still exact, so
 * the blocking does not change a bit of the result. */
#define OBSERVE_BLOCK 65536
#define NSHIFT 254 /* s in [0, 253] */

typedef struct {
    uint64_t abs[2][NSHIFT]; /* [0]: x > 0, [1]: x < 0 (indexed by the sign bit) */
    uint64_t sq[NSHIFT];
    unsigned lo, hi; /* range of shifts touched, lo > hi when none */
} buckets;

/* The fold: with NSHIFT buckets of values < 2^64 placed at shift s (or 2s),
 * the limb sums stay far below their capacity (see the limb counts). */
static void fold_buckets(ac_calib_stats *st, buckets *b)
{
    for (unsigned s = b->lo; s <= b->hi && b->lo <= b->hi; s++) {
        if (b->abs[0][s])
            acc_add_shifted(st->pos, ABS_LIMBS, b->abs[0][s], s);
        if (b->abs[1][s])
            acc_add_shifted(st->neg, ABS_LIMBS, b->abs[1][s], s);
        if (b->sq[s])
            acc_add_shifted(st->sq, SQ_LIMBS, b->sq[s], 2 * s);
        b->abs[0][s] = b->abs[1][s] = b->sq[s] = 0;
    }
    b->lo = NSHIFT;
    b->hi = 0;
}

void ac_calib_stats_observe__ref(ac_calib_stats *st, const float *x, size_t n)
{
    buckets b;
    memset(&b, 0, sizeof b);
    b.lo = NSHIFT;
    for (size_t i = 0; i < n; i++) {
        if (i % OBSERVE_BLOCK == 0 && i > 0)
            fold_buckets(st, &b);
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        uint32_t bexp = (bits >> 23) & 0xffu;
        uint32_t frac = bits & 0x7fffffu;
        if (bexp == 0xffu) {
            st->n_nonfinite++;
            continue;
        }
        float v = x[i];
        if (bexp == 0 && frac == 0) {
            st->n_zero++;
            v = 0.0f; /* -0 counts as +0, so min/max do not depend on order */
        }
        if (st->count == 0) {
            st->min = st->max = v;
        } else {
            if (v < st->min)
                st->min = v;
            if (v > st->max)
                st->max = v;
        }
        st->count++;
        if (v == 0.0f)
            continue;
        uint64_t mant = bexp ? (frac | 0x800000u) : frac;
        unsigned shift = bexp ? bexp - 1 : 0;
        b.abs[bits >> 31][shift] += mant; /* no branch on the sign */
        b.sq[shift] += mant * mant;
        if (shift < b.lo)
            b.lo = shift;
        if (shift > b.hi)
            b.hi = shift;
    }
    fold_buckets(st, &b);
}

/* ---- pass 2 ------------------------------------------------------------------------- */

int ac_calib_stats_set_hist_range(ac_calib_stats *st, float absmax, ac_err *err)
{
    if (!isfinite(absmax) || absmax < 0.0f)
        return ac_err_set(err, AC_E_INVALID,
                          "calibration histogram: range %g must be finite and >= 0",
                          (double)absmax);
    if (absmax == 0.0f)
        absmax = 0.0f; /* one zero */
    if (st->has_hist) {
        if (memcmp(&st->hist_absmax, &absmax, sizeof absmax) != 0)
            return ac_err_set(err, AC_E_INVALID,
                              "calibration histogram: range already set to %.9g, got %.9g",
                              (double)st->hist_absmax, (double)absmax);
        return AC_OK;
    }
    st->has_hist = true;
    st->hist_absmax = absmax;
    st->hist_width = (double)absmax / (double)(st->nbins - 1);
    return AC_OK;
}

void ac_calib_stats_observe_hist__ref(ac_calib_stats *st, const float *x, size_t n)
{
    const double width = st->hist_width;
    const size_t last = (size_t)st->nbins - 1;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        if (!(a > 0.0) || isinf(a)) /* zero or NaN or inf */
            continue;
        size_t idx = last;
        double t = width > 0.0 ? floor(a / width + 0.5) : INFINITY;
        if (t <= (double)last)
            idx = (size_t)t;
        else
            st->hist_clamped++;
        st->hist[idx]++;
    }
}

/* ---- merge / compare ---------------------------------------------------------------- */

static bool add_u64(uint64_t *dst, uint64_t a, uint64_t b)
{
    *dst = a + b;
    return *dst >= a;
}


/* ---- the AVX-512 passes -----------------------------------------------------------
 * The same statistics as the __ref loops, bit for bit: the per-element work
 * (classifying, min/max, counts, mantissa and exponent; for the histogram the
 * double division and floor, which vector instructions round exactly as the
 * scalar ones) runs 16 or 8 lanes at a time; what stays scalar is the bucket
 * and bin increments, done only for the lanes that add something (after a
 * ReLU half the values are zeros and add nothing). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f,avx512dq,popcnt")))

static bool have_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

/* Folds the buckets touched since the last fold (their range is kept per
 * lane in vlo/vhi) and starts the ranges again. */
AVX512_TARGET static void fold_lanes(ac_calib_stats *st, buckets *b, __m512i *vlo, __m512i *vhi)
{
    const unsigned lo = _mm512_reduce_min_epu32(*vlo), hi = _mm512_reduce_max_epu32(*vhi);
    b->lo = lo < b->lo ? lo : b->lo;
    b->hi = hi > b->hi ? hi : b->hi;
    fold_buckets(st, b);
    *vlo = _mm512_set1_epi32(NSHIFT);
    *vhi = _mm512_setzero_si512();
}

/* The adds since the last fold stay below a bucket block (bucket sums < 2^64). */
AVX512_TARGET static void observe_avx512(ac_calib_stats *st, const float *x, size_t n)
{
    buckets b;
    memset(&b, 0, sizeof b);
    b.lo = NSHIFT;
    __m512 vmin = _mm512_set1_ps(INFINITY), vmax = _mm512_set1_ps(-INFINITY);
    __m512i vlo = _mm512_set1_epi32(NSHIFT), vhi = _mm512_setzero_si512();
    const __m512i expmask = _mm512_set1_epi32(0xff), fracmask = _mm512_set1_epi32(0x7fffff);
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), hidden = _mm512_set1_epi32(0x800000);
    const __m512i one = _mm512_set1_epi32(1);
    uint64_t finite = 0, zeros = 0, nonfinite = 0;
    size_t adds = 0;
    uint32_t mant[16], shift[16];
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if (adds > OBSERVE_BLOCK - 16) {
            fold_lanes(st, &b, &vlo, &vhi);
            adds = 0;
        }
        const __m512i bits = _mm512_loadu_si512((const void *)(x + i));
        const __m512i bexp = _mm512_and_si512(_mm512_srli_epi32(bits, 23), expmask);
        const __mmask16 fin = _mm512_cmpneq_epi32_mask(bexp, expmask);
        const __mmask16 zero = fin & _mm512_testn_epi32_mask(bits, absmask);
        const __mmask16 nz = fin & (__mmask16)~zero;
        const __m512 v = _mm512_mask_mov_ps(_mm512_castsi512_ps(bits), zero, _mm512_setzero_ps()); /* -0 as +0 */
        vmin = _mm512_mask_min_ps(vmin, fin, vmin, v);
        vmax = _mm512_mask_max_ps(vmax, fin, vmax, v);
        finite += (uint64_t)_mm_popcnt_u32(fin);
        zeros += (uint64_t)_mm_popcnt_u32(zero);
        nonfinite += 16 - (uint64_t)_mm_popcnt_u32(fin);
        const __mmask16 normal = _mm512_test_epi32_mask(bexp, bexp);
        const __m512i frac = _mm512_and_si512(bits, fracmask);
        const __m512i m = _mm512_mask_or_epi32(frac, normal, frac, hidden);
        const __m512i sh = _mm512_maskz_sub_epi32(normal, bexp, one);
        vlo = _mm512_mask_min_epu32(vlo, nz, vlo, sh);
        vhi = _mm512_mask_max_epu32(vhi, nz, vhi, sh);
        _mm512_storeu_si512((void *)mant, m);
        _mm512_storeu_si512((void *)shift, sh);
        const uint32_t sign = (uint32_t)_mm512_movepi32_mask(bits);
        for (uint32_t left = nz; left; left &= left - 1) {
            const int l = __builtin_ctz(left);
            const uint64_t mv = mant[l];
            b.abs[(sign >> l) & 1][shift[l]] += mv;
            b.sq[shift[l]] += mv * mv;
        }
        adds += (size_t)_mm_popcnt_u32(nz);
    }
    fold_lanes(st, &b, &vlo, &vhi); /* then the tail, one value at a time */
    st->n_nonfinite += nonfinite;
    if (finite) {
        const float mn = _mm512_reduce_min_ps(vmin), mx = _mm512_reduce_max_ps(vmax);
        if (st->count == 0) {
            st->min = mn;
            st->max = mx;
        } else {
            st->min = mn < st->min ? mn : st->min;
            st->max = mx > st->max ? mx : st->max;
        }
        st->count += finite;
        st->n_zero += zeros;
    }
    ac_calib_stats_observe__ref(st, x + i, n - i);
}

AVX512_TARGET static void observe_hist_avx512(ac_calib_stats *st, const float *x, size_t n)
{
    const double width = st->hist_width;
    const uint64_t last = (uint64_t)st->nbins - 1;
    const __m512d vw = _mm512_set1_pd(width), half = _mm512_set1_pd(0.5), vlast = _mm512_set1_pd((double)last);
    const __m512d zero = _mm512_setzero_pd(), inf = _mm512_set1_pd(INFINITY);
    const __m512i ilast = _mm512_set1_epi64((long long)last);
    uint64_t idx[8];
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512d a = _mm512_abs_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
        /* a > 0 and not inf: zeros, NaN (unordered) and inf add nothing */
        const __mmask8 ok = _mm512_cmp_pd_mask(a, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(a, inf, _CMP_NEQ_OQ);
        if (!ok)
            continue;
        const __m512d t = _mm512_roundscale_pd(_mm512_add_pd(_mm512_div_pd(a, vw), half), _MM_FROUND_TO_NEG_INF);
        const __mmask8 in = ok & _mm512_cmp_pd_mask(t, vlast, _CMP_LE_OQ);
        st->hist_clamped += (uint64_t)_mm_popcnt_u32(ok & (__mmask8)~in);
        _mm512_storeu_si512((void *)idx, _mm512_mask_cvttpd_epu64(ilast, in, t));
        for (uint32_t left = ok; left; left &= left - 1)
            st->hist[idx[__builtin_ctz(left)]]++;
    }
    ac_calib_stats_observe_hist__ref(st, x + i, n - i);
}
#endif

void ac_calib_stats_observe(ac_calib_stats *st, const float *x, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512()) {
        observe_avx512(st, x, n);
        return;
    }
#endif
    ac_calib_stats_observe__ref(st, x, n);
}

bool ac_calib_stats_observe_hist(ac_calib_stats *st, const float *x, size_t n)
{
    if (!st->has_hist)
        return false;
#if defined(__x86_64__) && defined(__GNUC__)
    /* width 0 (an all-zero tensor's range) sends every value to the last bin: __ref */
    if (st->hist_width > 0.0 && have_avx512()) {
        observe_hist_avx512(st, x, n);
        return true;
    }
#endif
    ac_calib_stats_observe_hist__ref(st, x, n);
    return true;
}

int ac_calib_stats_merge(ac_calib_stats *dst, const ac_calib_stats *src, ac_err *err)
{
    if (dst->nbins != src->nbins)
        return ac_err_set(err, AC_E_INVALID,
                          "calibration statistics merge: %d histogram bins against %d",
                          dst->nbins, src->nbins);
    if (dst->has_hist && src->has_hist &&
        memcmp(&dst->hist_absmax, &src->hist_absmax, sizeof(float)) != 0)
        return ac_err_set(err, AC_E_INVALID,
                          "calibration statistics merge: histogram ranges differ (%.9g against "
                          "%.9g); pass 2 must use the merged pass-1 abs-max everywhere",
                          (double)dst->hist_absmax, (double)src->hist_absmax);
    /* Compute everything first so a failed merge leaves dst unchanged. */
    uint64_t count, n_zero, n_nonfinite, clamped;
    uint64_t pos[ABS_LIMBS], neg[ABS_LIMBS], sq[SQ_LIMBS];
    bool ok = add_u64(&count, dst->count, src->count) &&
              add_u64(&n_zero, dst->n_zero, src->n_zero) &&
              add_u64(&n_nonfinite, dst->n_nonfinite, src->n_nonfinite) &&
              add_u64(&clamped, dst->hist_clamped, src->hist_clamped) &&
              acc_sum(pos, dst->pos, src->pos, ABS_LIMBS) &&
              acc_sum(neg, dst->neg, src->neg, ABS_LIMBS) &&
              acc_sum(sq, dst->sq, src->sq, SQ_LIMBS);
    for (int j = 0; ok && j < dst->nbins; j++)
        ok = dst->hist[j] + src->hist[j] >= dst->hist[j];
    if (!ok)
        return ac_err_set(err, AC_E_INVALID, "calibration statistics merge: a count overflows");

    if (src->count > 0) {
        if (dst->count == 0) {
            dst->min = src->min;
            dst->max = src->max;
        } else {
            dst->min = src->min < dst->min ? src->min : dst->min;
            dst->max = src->max > dst->max ? src->max : dst->max;
        }
    }
    dst->count = count;
    dst->n_zero = n_zero;
    dst->n_nonfinite = n_nonfinite;
    dst->hist_clamped = clamped;
    memcpy(dst->pos, pos, sizeof pos);
    memcpy(dst->neg, neg, sizeof neg);
    memcpy(dst->sq, sq, sizeof sq);
    if (src->has_hist && !dst->has_hist) {
        dst->has_hist = true;
        dst->hist_absmax = src->hist_absmax;
        dst->hist_width = src->hist_width;
    }
    for (int j = 0; j < dst->nbins; j++)
        dst->hist[j] += src->hist[j];
    return AC_OK;
}

bool ac_calib_stats_equal(const ac_calib_stats *a, const ac_calib_stats *b)
{
    return a->nbins == b->nbins && a->count == b->count && a->n_zero == b->n_zero &&
           a->n_nonfinite == b->n_nonfinite && memcmp(&a->min, &b->min, sizeof(float)) == 0 &&
           memcmp(&a->max, &b->max, sizeof(float)) == 0 &&
           memcmp(a->pos, b->pos, sizeof a->pos) == 0 &&
           memcmp(a->neg, b->neg, sizeof a->neg) == 0 &&
           memcmp(a->sq, b->sq, sizeof a->sq) == 0 && a->has_hist == b->has_hist &&
           memcmp(&a->hist_absmax, &b->hist_absmax, sizeof(float)) == 0 &&
           a->hist_clamped == b->hist_clamped &&
           memcmp(a->hist, b->hist, (size_t)a->nbins * sizeof *a->hist) == 0;
}

/* ---- read access -------------------------------------------------------------------- */

uint64_t ac_calib_stats_count(const ac_calib_stats *st) { return st->count; }
uint64_t ac_calib_stats_zeros(const ac_calib_stats *st) { return st->n_zero; }
uint64_t ac_calib_stats_nonfinite(const ac_calib_stats *st) { return st->n_nonfinite; }
float ac_calib_stats_min(const ac_calib_stats *st) { return st->min; }
float ac_calib_stats_max(const ac_calib_stats *st) { return st->max; }

float ac_calib_stats_absmax(const ac_calib_stats *st)
{
    float a = -st->min;
    return a > st->max ? a : st->max + 0.0f;
}

double ac_calib_stats_mean(const ac_calib_stats *st)
{
    if (st->count == 0)
        return 0.0;
    uint64_t d[ABS_LIMBS];
    if (acc_cmp(st->pos, st->neg, ABS_LIMBS) >= 0) {
        acc_sub(d, st->pos, st->neg, ABS_LIMBS);
        return acc_to_double(d, ABS_LIMBS, ABS_UNIT_EXP) / (double)st->count;
    }
    acc_sub(d, st->neg, st->pos, ABS_LIMBS);
    return -acc_to_double(d, ABS_LIMBS, ABS_UNIT_EXP) / (double)st->count;
}

double ac_calib_stats_mean_abs(const ac_calib_stats *st)
{
    if (st->count == 0)
        return 0.0;
    uint64_t s[ABS_LIMBS];
    acc_sum(s, st->pos, st->neg, ABS_LIMBS); /* cannot overflow: each < 2^341 */
    return acc_to_double(s, ABS_LIMBS, ABS_UNIT_EXP) / (double)st->count;
}

double ac_calib_stats_mean_sq(const ac_calib_stats *st)
{
    if (st->count == 0)
        return 0.0;
    return acc_to_double(st->sq, SQ_LIMBS, SQ_UNIT_EXP) / (double)st->count;
}

int ac_calib_stats_nbins(const ac_calib_stats *st) { return st->nbins; }
bool ac_calib_stats_has_hist(const ac_calib_stats *st) { return st->has_hist; }
float ac_calib_stats_hist_absmax(const ac_calib_stats *st) { return st->hist_absmax; }
double ac_calib_stats_hist_width(const ac_calib_stats *st) { return st->hist_width; }
const uint64_t *ac_calib_stats_hist(const ac_calib_stats *st) { return st->hist; }
uint64_t ac_calib_stats_hist_clamped(const ac_calib_stats *st) { return st->hist_clamped; }

uint64_t ac_calib_stats_hist_total(const ac_calib_stats *st)
{
    uint64_t t = 0;
    for (int j = 0; j < st->nbins; j++)
        t += st->hist[j];
    return t;
}

/* ---- wire form ---------------------------------------------------------------------- */

/* docs/calibration.md §4: a 14-element msgpack array. */
#define WIRE_MAGIC "acstats"
#define WIRE_VERSION 1
#define WIRE_FIELDS 14

static void limbs_to_le(uint8_t *out, const uint64_t *l, int nl)
{
    for (int i = 0; i < nl; i++)
        for (int b = 0; b < 8; b++)
            out[8 * i + b] = (uint8_t)(l[i] >> (8 * b));
}

static void le_to_limbs(uint64_t *l, const uint8_t *in, int nl)
{
    for (int i = 0; i < nl; i++) {
        l[i] = 0;
        for (int b = 0; b < 8; b++)
            l[i] |= (uint64_t)in[8 * i + b] << (8 * b);
    }
}

static int pack_limbs(msgpack_packer *pk, const uint64_t *l, int nl)
{
    uint8_t bytes[8 * SQ_LIMBS];
    limbs_to_le(bytes, l, nl);
    return msgpack_pack_bin(pk, (size_t)nl * 8) || msgpack_pack_bin_body(pk, bytes, (size_t)nl * 8);
}

int ac_calib_stats_encode(const ac_calib_stats *st, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, WIRE_FIELDS) ||
             msgpack_pack_str(&pk, strlen(WIRE_MAGIC)) ||
             msgpack_pack_str_body(&pk, WIRE_MAGIC, strlen(WIRE_MAGIC)) ||
             msgpack_pack_uint64(&pk, WIRE_VERSION) || msgpack_pack_uint64(&pk, st->count) ||
             msgpack_pack_uint64(&pk, st->n_zero) || msgpack_pack_uint64(&pk, st->n_nonfinite) ||
             msgpack_pack_float(&pk, st->min) || msgpack_pack_float(&pk, st->max) ||
             pack_limbs(&pk, st->pos, ABS_LIMBS) || pack_limbs(&pk, st->neg, ABS_LIMBS) ||
             pack_limbs(&pk, st->sq, SQ_LIMBS) || msgpack_pack_uint64(&pk, (uint64_t)st->nbins) ||
             (st->has_hist ? msgpack_pack_float(&pk, st->hist_absmax) : msgpack_pack_nil(&pk)) ||
             msgpack_pack_uint64(&pk, st->hist_clamped) ||
             msgpack_pack_array(&pk, st->has_hist ? (size_t)st->nbins : 0);
    for (int j = 0; !rc && st->has_hist && j < st->nbins; j++)
        rc = msgpack_pack_uint64(&pk, st->hist[j]);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return ac_err_set(err, AC_E_NOMEM, "calibration statistics: out of memory encoding");
    }
    *buf = (uint8_t *)sb.data; /* malloc'd by the sbuffer; the caller frees it */
    *len = sb.size;
    return AC_OK;
}

/* A bounds-checked msgpack reader for exactly the types the layout uses.
 * msgpack-c's own unpacker allocates array storage from a declared length
 * before checking that the bytes exist, so a 5-byte garbage input could ask
 * for gigabytes; this reader checks every length against what is left. */
typedef struct {
    const uint8_t *p;
    size_t left;
} reader;

static bool rd_bytes(reader *r, size_t n, const uint8_t **out)
{
    if (r->left < n)
        return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool rd_be(reader *r, size_t n, uint64_t *v)
{
    const uint8_t *b;
    if (!rd_bytes(r, n, &b))
        return false;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = (*v << 8) | b[i];
    return true;
}

static bool rd_tag(reader *r, uint8_t *tag)
{
    const uint8_t *b;
    if (!rd_bytes(r, 1, &b))
        return false;
    *tag = b[0];
    return true;
}

static bool rd_uint(reader *r, uint64_t *v)
{
    uint8_t t;
    if (!rd_tag(r, &t))
        return false;
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    switch (t) {
    case 0xcc: return rd_be(r, 1, v);
    case 0xcd: return rd_be(r, 2, v);
    case 0xce: return rd_be(r, 4, v);
    case 0xcf: return rd_be(r, 8, v);
    default: return false;
    }
}

static bool rd_array(reader *r, uint64_t *n)
{
    uint8_t t;
    if (!rd_tag(r, &t))
        return false;
    if (t >= 0x90 && t <= 0x9f) {
        *n = t & 0x0fu;
        return true;
    }
    if (t == 0xdc)
        return rd_be(r, 2, n);
    if (t == 0xdd)
        return rd_be(r, 4, n);
    return false;
}

static bool rd_str(reader *r, const uint8_t **s, size_t *len)
{
    uint8_t t;
    uint64_t n;
    if (!rd_tag(r, &t))
        return false;
    if (t >= 0xa0 && t <= 0xbf)
        n = t & 0x1fu;
    else if (!((t == 0xd9 && rd_be(r, 1, &n)) || (t == 0xda && rd_be(r, 2, &n)) ||
               (t == 0xdb && rd_be(r, 4, &n))))
        return false;
    *len = (size_t)n;
    return rd_bytes(r, (size_t)n, s);
}

static bool rd_bin(reader *r, const uint8_t **b, size_t *len)
{
    uint8_t t;
    uint64_t n;
    if (!rd_tag(r, &t))
        return false;
    if (!((t == 0xc4 && rd_be(r, 1, &n)) || (t == 0xc5 && rd_be(r, 2, &n)) ||
          (t == 0xc6 && rd_be(r, 4, &n))))
        return false;
    *len = (size_t)n;
    return rd_bytes(r, (size_t)n, b);
}

static bool rd_f32(reader *r, float *f)
{
    uint8_t t;
    uint64_t v;
    if (!rd_tag(r, &t) || t != 0xca || !rd_be(r, 4, &v))
        return false;
    uint32_t bits = (uint32_t)v;
    memcpy(f, &bits, sizeof *f);
    return true;
}

static bool rd_nil(reader *r)
{
    if (r->left >= 1 && r->p[0] == 0xc0) {
        r->p++;
        r->left--;
        return true;
    }
    return false;
}

static bool rd_limbs(reader *r, uint64_t *l, int nl)
{
    const uint8_t *b;
    size_t len;
    if (!rd_bin(r, &b, &len) || len != (size_t)nl * 8)
        return false;
    le_to_limbs(l, b, nl);
    return true;
}

static bool is_neg_zero(float f)
{
    return f == 0.0f && signbit(f);
}

#define BAD(field, rule)                                                                      \
    ac_err_set(err, AC_E_INVALID, "calibration statistics: field %s: %s", field, rule)

/* Reads and checks everything except the histogram counts into st. */
static int decode_fields(reader *r, ac_calib_stats **out, ac_err *err)
{
    uint64_t n, version, count, n_zero, n_nonfinite, nbins, clamped;
    float mn, mx, habs = 0.0f;
    uint64_t pos[ABS_LIMBS], neg[ABS_LIMBS], sq[SQ_LIMBS];
    const uint8_t *s;
    size_t slen;
    if (!rd_array(r, &n) || n != WIRE_FIELDS)
        return BAD("(top level)", "expected a msgpack array of 14 elements");
    if (!rd_str(r, &s, &slen) || slen != strlen(WIRE_MAGIC) || memcmp(s, WIRE_MAGIC, slen) != 0)
        return BAD("magic", "expected the string \"acstats\"");
    if (!rd_uint(r, &version) || version != WIRE_VERSION)
        return BAD("version", "expected unsigned integer 1");
    if (!rd_uint(r, &count))
        return BAD("count", "expected an unsigned integer");
    if (!rd_uint(r, &n_zero) || n_zero > count)
        return BAD("n_zero", "expected an unsigned integer <= count");
    if (!rd_uint(r, &n_nonfinite))
        return BAD("n_nonfinite", "expected an unsigned integer");
    if (!rd_f32(r, &mn) || !isfinite(mn) || is_neg_zero(mn))
        return BAD("min", "expected a finite float32 (not -0)");
    if (!rd_f32(r, &mx) || !isfinite(mx) || is_neg_zero(mx))
        return BAD("max", "expected a finite float32 (not -0)");
    if (!rd_limbs(r, pos, ABS_LIMBS))
        return BAD("sum_pos", "expected 48 bytes of binary");
    if (!rd_limbs(r, neg, ABS_LIMBS))
        return BAD("sum_neg", "expected 48 bytes of binary");
    if (!rd_limbs(r, sq, SQ_LIMBS))
        return BAD("sum_sq", "expected 80 bytes of binary");
    if (!rd_uint(r, &nbins) || nbins < 2 || nbins > AC_CALIB_MAX_BINS)
        return BAD("nbins", "expected an unsigned integer in [2, 65536]");
    bool has_hist = !rd_nil(r);
    if (has_hist && (!rd_f32(r, &habs) || !isfinite(habs) || habs < 0.0f || is_neg_zero(habs)))
        return BAD("hist_absmax", "expected nil or a finite float32 >= 0");
    if (!rd_uint(r, &clamped))
        return BAD("hist_clamped", "expected an unsigned integer");

    /* Consistency: what one honest producer can emit. */
    bool pos_zero = acc_is_zero(pos, ABS_LIMBS), neg_zero = acc_is_zero(neg, ABS_LIMBS);
    if (count == 0 && (mn != 0.0f || mx != 0.0f || !pos_zero || !neg_zero))
        return BAD("min/max/sums", "must be zero when count is 0");
    if (mn > mx)
        return BAD("min", "is greater than max");
    if (n_zero > 0 && (mn > 0.0f || mx < 0.0f))
        return BAD("min/max", "zeros were counted but 0 is outside [min, max]");
    if (!pos_zero && !(mx > 0.0f))
        return BAD("sum_pos", "is non-zero but max is not positive");
    if (!neg_zero && !(mn < 0.0f))
        return BAD("sum_neg", "is non-zero but min is not negative");
    if (acc_is_zero(sq, SQ_LIMBS) != (pos_zero && neg_zero))
        return BAD("sum_sq", "must be zero exactly when sum_pos and sum_neg are");
    if (count > n_zero && pos_zero && neg_zero)
        return BAD("sum_pos/sum_neg", "non-zero values were counted but the sums are zero");
    if (!has_hist && clamped != 0)
        return BAD("hist_clamped", "must be 0 without a histogram");

    ac_calib_stats *st = ac_calib_stats_new((int)nbins);
    if (!st)
        return ac_err_set(err, AC_E_NOMEM, "calibration statistics: out of memory");
    st->count = count;
    st->n_zero = n_zero;
    st->n_nonfinite = n_nonfinite;
    st->min = mn;
    st->max = mx;
    memcpy(st->pos, pos, sizeof pos);
    memcpy(st->neg, neg, sizeof neg);
    memcpy(st->sq, sq, sizeof sq);
    st->hist_clamped = clamped;
    if (has_hist) {
        st->has_hist = true;
        st->hist_absmax = habs;
        st->hist_width = (double)habs / (double)(st->nbins - 1);
    }
    *out = st;
    return AC_OK;
}

int ac_calib_stats_decode(const uint8_t *buf, size_t len, ac_calib_stats **out, ac_err *err)
{
    *out = NULL;
    if (!buf && len)
        return BAD("(top level)", "no buffer");
    reader r = {buf, len};
    ac_calib_stats *st = NULL;
    int rc = decode_fields(&r, &st, err);
    if (rc)
        return rc;
    uint64_t n;
    if (!rd_array(&r, &n) || n != (st->has_hist ? (uint64_t)st->nbins : 0)) {
        rc = BAD("hist", "expected an array of nbins counts (empty without a range)");
        goto fail;
    }
    uint64_t total = 0;
    for (uint64_t j = 0; j < n; j++) {
        if (!rd_uint(&r, &st->hist[j]) || total + st->hist[j] < total) {
            rc = BAD("hist", "expected unsigned integer counts whose sum fits 64 bits");
            goto fail;
        }
        total += st->hist[j];
    }
    if (st->hist_clamped > (n ? st->hist[n - 1] : 0)) {
        rc = BAD("hist_clamped", "exceeds the last bin's count");
        goto fail;
    }
    if (r.left != 0) {
        rc = ac_err_set(err, AC_E_INVALID,
                        "calibration statistics: %zu trailing byte(s) after the message", r.left);
        goto fail;
    }
    *out = st;
    return AC_OK;
fail:
    ac_calib_stats_destroy(&st);
    return rc;
}
