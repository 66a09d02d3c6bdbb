/* ac_round: see ac_round.h. Every formula follows docs/bm1684-int8.md §10.1:
 * double precision, operations in the written order, no contraction (the
 * project compiles with -ffp-contract=off). Scaling by 2^r always uses ldexp,
 * which is exact for the exponent ranges met here. */
#include "ac_round.h"

#include <math.h>

/* The external definitions of the header's inline run-time helpers. */
extern inline int64_t ac_rshift_round(int64_t v, int r);
extern inline int64_t ac_sat(int64_t v, int64_t lo, int64_t hi);
extern inline int8_t ac_sat_i8(int64_t v);
extern inline uint8_t ac_sat_u8(int64_t v);
extern inline int16_t ac_sat_i16(int64_t v);

/* ---- float -> int rounding ------------------------------------------------------- */

int64_t ac_round_half_away(double x)
{
    if (isnan(x))
        return 0;
    double r = round(x); /* C round(): halfway cases away from zero, exact */
    if (r >= 9223372036854775808.0)
        return INT64_MAX;
    if (r < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)r;
}

int8_t ac_round_half_away_i8(double x)
{
    return ac_sat_i8(ac_round_half_away(x));
}

uint8_t ac_round_half_away_u8(double x)
{
    return ac_sat_u8(ac_round_half_away(x));
}

int16_t ac_round_half_away_i16(double x)
{
    return ac_sat_i16(ac_round_half_away(x));
}

int32_t ac_round_half_away_i32(double x)
{
    return (int32_t)ac_sat(ac_round_half_away(x), INT32_MIN, INT32_MAX);
}

double ac_scale_from_th(double th, bool is_signed)
{
    return is_signed ? th / 127.0 : th / 255.0;
}

int32_t ac_quantize(double x, double scale, bool is_signed)
{
    int64_t q = ac_round_half_away(x / scale);
    return is_signed ? ac_sat_i8(q) : ac_sat_u8(q);
}

bool ac_clip_upper_code(double max, double scale, int32_t hi, int32_t *code)
{
    int64_t c = ac_round_half_away(max / scale);
    *code = (int32_t)ac_sat(c, INT32_MIN, INT32_MAX);
    return c >= 0 && c < hi;
}

/* ---- convolution / fully connected ------------------------------------------------- */

int ac_conv_shift(double wmax, double ratio)
{
    double p = wmax * ratio;
    if (!(p >= 0.0) || isinf(p))
        return AC_SHIFT_INVALID;
    if (p == 0.0)
        return AC_SHIFT_MAX; /* all-zero filter: §10.2 */
    /* p = f * 2^e with f in [0.5, 1). p*2^r = f * 2^(e+r) is below 64 when
     * e+r <= 6, is f*128 when e+r = 7 (below 127 iff f < 127/128, exact in
     * binary), and at least 128 beyond: so r is 7-e or 6-e. */
    int e;
    double f = frexp(p, &e);
    int r = f < 127.0 / 128.0 ? 7 - e : 6 - e;
    return r > AC_SHIFT_MAX ? AC_SHIFT_MAX : r;
}

int8_t ac_quant_weight(float w, int r, double ratio)
{
    double scaled = ldexp((double)w, r); /* exact */
    return ac_round_half_away_i8(scaled * ratio);
}

/* The rounded (unclamped) bias code. */
static int64_t bias_code(float b, int r, double s_out)
{
    double scaled = ldexp((double)b, r); /* exact */
    return ac_round_half_away(scaled / s_out);
}

int16_t ac_quant_bias(float b, int r, double s_out)
{
    return ac_sat_i16(bias_code(b, r, s_out));
}

static bool bias_overflows(float b, int r, double s_out)
{
    int64_t q = bias_code(b, r, s_out);
    return q < INT16_MIN || q > INT16_MAX;
}

size_t ac_bias_overflow_count(const float *bias, size_t n, int r, double s_out)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += bias_overflows(bias[i], r, s_out);
    return count;
}

bool ac_bias_overflow_too_many(size_t n_over, size_t n)
{
    /* Integer form of n_over / n > 0.03: exactly 3% does not back off. */
    return (uint64_t)n_over * 100u > (uint64_t)n * 3u;
}

int ac_bias_backoff(const float *bias, size_t n, int r, double s_out)
{
    if (r < 0 || !bias || n == 0)
        return r;
    while (r > 0 && ac_bias_overflow_too_many(ac_bias_overflow_count(bias, n, r, s_out), n))
        r--;
    return r;
}

int ac_conv_shift_per_tensor(double wmax, double ratio, const float *bias, size_t n_bias,
                             double s_out)
{
    return ac_bias_backoff(bias, n_bias, ac_conv_shift(wmax, ratio), s_out);
}

ac_pc_status ac_conv_shift_per_channel(const float *wmax, const float *bias, size_t n_ch,
                                       double ratio, double s_out, int *r_out,
                                       size_t *bad_channel)
{
    for (size_t c = 0; c < n_ch; c++) {
        int r = ac_conv_shift(wmax[c], ratio);
        if (r < 0) {
            if (bad_channel)
                *bad_channel = c;
            return AC_PC_FP32_SHIFT;
        }
        /* One bias value per channel: "more than 3%" means "it overflows". */
        while (bias && r >= 0 && bias_overflows(bias[c], r, s_out))
            r--;
        if (r < 0) {
            if (bad_channel)
                *bad_channel = c;
            return AC_PC_FP32_BIAS;
        }
        r_out[c] = r;
    }
    return AC_PC_OK;
}

/* ---- elementwise ------------------------------------------------------------------- */

bool ac_add_params(double c, double s_in, double s_out, int32_t *m, int *r)
{
    double x = c * s_in / s_out;
    *m = 0;
    *r = 0;
    if (!isfinite(x) || x < 0.0)
        return false;
    if (x == 0.0) {
        *r = AC_SHIFT_MAX;
        return true;
    }
    /* Largest r with x*2^r <= 127 (§10.2); same frexp argument as
     * ac_conv_shift but with a non-strict bound. */
    int e;
    double f = frexp(x, &e);
    int rr = f <= 127.0 / 128.0 ? 7 - e : 6 - e;
    if (rr < 0)
        rr = 0;
    if (rr > AC_SHIFT_MAX)
        rr = AC_SHIFT_MAX;
    int64_t mm = ac_round_half_away(ldexp(x, rr));
    *m = (int32_t)ac_sat(mm, INT32_MIN, INT32_MAX);
    *r = rr;
    return mm >= 0 && mm <= 127;
}

/* |m*2^-r - a| for m = round_half_away(a*2^r) >= 0, computed without rounding:
 * a*2^r is exact, m - a*2^r is exact (|m - a*2^r| <= 1/2, so either m = 0 or
 * the two operands are within a factor of 2: Sterbenz), and the final scaling
 * is exact. Comparing errors therefore compares the true errors. */
static double exact_error(double a, int64_t m, int r)
{
    return ldexp(fabs((double)m - ldexp(a, r)), -r);
}

bool ac_mult_shift(double x, int r_max, int32_t *m, int *r)
{
    *m = 0;
    *r = 0;
    if (!isfinite(x))
        return false;
    if (r_max > 62)
        r_max = 62;
    double a = fabs(x);
    bool found = false;
    double best_err = 0.0;
    int64_t best_m = 0;
    int best_r = 0;
    for (int rr = 0; rr <= r_max; rr++) {
        int64_t mm = ac_round_half_away(ldexp(a, rr));
        if (mm > 127)
            break; /* m only grows with r */
        double err = exact_error(a, mm, rr);
        if (!found || err < best_err) {
            found = true;
            best_err = err;
            best_m = mm;
            best_r = rr;
        }
    }
    if (!found)
        return false;
    *m = (int32_t)(x < 0.0 ? -best_m : best_m);
    *r = best_r;
    return true;
}

bool ac_mul_params(double s_a, double s_b, double s_out, int32_t *m, int *r)
{
    double x = s_a * s_b / s_out;
    bool ok = ac_mult_shift(x, AC_SHIFT_MAX, m, r);
    return ok && *m >= 0 && *m <= 127;
}

bool ac_requant_params(double s_in, double s_out, int32_t *m, int *r)
{
    double x = s_in / s_out;
    bool ok = ac_mult_shift(x, 30, m, r);
    return ok && *m >= 0 && *m <= 127;
}

bool ac_leaky_params(double alpha, int32_t *m, int *r)
{
    return ac_mult_shift(alpha, AC_SHIFT_MAX, m, r);
}

bool ac_prelu_params(const float *alpha, size_t n, int32_t *m, int *r)
{
    *r = 0;
    for (size_t c = 0; c < n; c++) {
        m[c] = 0;
        if (!isfinite(alpha[c]))
            return false;
    }
    bool found = false;
    double best_err = 0.0;
    int best_r = 0;
    for (int rr = 0; rr <= AC_SHIFT_MAX; rr++) {
        double worst = 0.0;
        bool fits = true;
        for (size_t c = 0; c < n && fits; c++) {
            double a = fabs((double)alpha[c]);
            int64_t mm = ac_round_half_away(ldexp(a, rr));
            if (mm > 127)
                fits = false;
            double err = exact_error(a, mm, rr);
            if (err > worst)
                worst = err;
        }
        if (!fits)
            break;
        if (!found || worst < best_err) {
            found = true;
            best_err = worst;
            best_r = rr;
        }
    }
    if (!found)
        return false;
    for (size_t c = 0; c < n; c++) {
        int64_t mm = ac_round_half_away(ldexp(fabs((double)alpha[c]), best_r));
        m[c] = (int32_t)(alpha[c] < 0.0f ? -mm : mm);
    }
    *r = best_r;
    return true;
}

/* ---- pooling ----------------------------------------------------------------------- */

/* round(2^e / k) for positive integers: floor((2^(e+1) + k) / 2k). No ties
 * arise away from 0.5 (2^e/k = n + 1/2 needs k*(2n+1) = 2^(e+1)), and the
 * formula rounds that one up, as round-half-away does. */
static uint64_t round_pow2_div(int e, uint64_t k)
{
    return ((UINT64_C(1) << (e + 1)) + k) / (2 * k);
}

bool ac_avgpool_params(int64_t k, int32_t *m, int *e)
{
    *m = 0;
    *e = 0;
    if (k < 1 || k > (INT64_C(1) << 24))
        return false;
    uint64_t uk = (uint64_t)k;
    int ee = 0;
    while (round_pow2_div(ee + 1, uk) <= 255) /* round(2^e/k) never decreases */
        ee++;
    uint64_t mm = round_pow2_div(ee, uk);
    while (ee > 0 && (mm & 1u) == 0) {
        mm >>= 1;
        ee--;
    }
    *m = (int32_t)mm;
    *e = ee;
    return true;
}

int64_t ac_avgpool_rescale(int64_t sum, int64_t k, int64_t count)
{
    int64_t num = sum * k;
    if (num >= 0)
        return (2 * num + count) / (2 * count);
    return -((2 * -num + count) / (2 * count));
}
