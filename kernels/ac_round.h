/* ac_round: every rounding, saturation and fixed-point parameter rule of the
 * BM1684 int8 arithmetic (docs/bm1684-int8.md, the "spec"), in one place.
 *
 * Two kinds of helpers live here:
 *  - run-time helpers used inside int8 kernels (rshift_round, saturation):
 *    inline, branch-light, integer only;
 *  - parameter helpers used when lowering a layer (shifts, multipliers, weight
 *    and bias quantization, the avg-pool 1/k table): double precision, in the
 *    exact order of spec §10.1, compiled with -ffp-contract=off.
 * Any other implementation (tests/python/test_round_numpy.py is one) must
 * reproduce these bit for bit; kernels/ac_round_test.c pins each rule. */
#ifndef AC_ROUND_H
#define AC_ROUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- run-time helpers ------------------------------------------------------------- */

/* Round-half-up arithmetic right shift (spec §1): (v + 2^(r-1)) >> r, the
 * rounding add in 64 bits (§10.7). r = 0 leaves v unchanged. -1.5 (v = -3,
 * r = 1) rounds to -1, +1.5 to 2. r must be in [0, 62]. */
inline int64_t ac_rshift_round(int64_t v, int r)
{
    if (r <= 0)
        return v;
    /* >> on a negative int64 is an arithmetic shift with gcc and clang. */
    return (v + ((int64_t)1 << (r - 1))) >> r;
}

inline int64_t ac_sat(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

inline int8_t ac_sat_i8(int64_t v)
{
    return (int8_t)ac_sat(v, INT8_MIN, INT8_MAX);
}

inline uint8_t ac_sat_u8(int64_t v)
{
    return (uint8_t)ac_sat(v, 0, UINT8_MAX);
}

inline int16_t ac_sat_i16(int64_t v)
{
    return (int16_t)ac_sat(v, INT16_MIN, INT16_MAX);
}

/* ---- float -> int rounding ------------------------------------------------------- */

/* Round half away from zero (2.5 -> 3, -2.5 -> -3), saturating at the int64
 * range; NaN gives 0 (never reached with finite models; defined so garbage
 * cannot cause undefined behaviour). */
int64_t ac_round_half_away(double x);
int8_t ac_round_half_away_i8(double x);
uint8_t ac_round_half_away_u8(double x);
int16_t ac_round_half_away_i16(double x);
int32_t ac_round_half_away_i32(double x);

/* Activation scale (spec §1): th/127 for a signed (int8) tensor, th/255 for an
 * unsigned (uint8) one. */
double ac_scale_from_th(double th, bool is_signed);

/* Input quantization (§1, §10.1): clamp(round_half_away(x / scale)) to
 * [-128, 127] or [0, 255]; a division, not a multiply by 1/scale. Also the
 * entry rule of pointwise tables: table[q] = ac_quantize(f(q*s_in), s_out, .). */
int32_t ac_quantize(double x, double scale, bool is_signed);

/* ReLU6 / Clip(0, max) in int8 (§10.5): the clamp code round_half_away(max /
 * scale). Returns true (and the code) only when the code lies strictly inside
 * [0, hi): at or above hi the output saturation already does the clamp. */
bool ac_clip_upper_code(double max, double scale, int32_t hi, int32_t *code);

/* ---- convolution / fully connected (§3, §10.1-10.3) ------------------------------ */

/* The largest r with wmax*ratio*2^r < 127 (strict), capped at 31. wmax*ratio
 * is rounded once in double, then scaled by exact doubling. An all-zero filter
 * (wmax*ratio == 0) gets 31. A negative result means the layer runs in fp32;
 * a non-finite or negative product gives AC_SHIFT_INVALID (< 0, so fp32 too). */
#define AC_SHIFT_MAX 31
#define AC_SHIFT_INVALID (-1000)
int ac_conv_shift(double wmax, double ratio);

/* Weight code: clamp_int8(round_half_away((W*2^r)*ratio)); W is float32
 * widened, W*2^r exact, one rounding in the product. r in [0, 31]. */
int8_t ac_quant_weight(float w, int r, double ratio);

/* Bias code: clamp_int16(round_half_away((B*2^r)/s_out)). r in [0, 31]. */
int16_t ac_quant_bias(float b, int r, double s_out);

/* How many of the n bias values would overflow int16 at shift r (judged on the
 * rounded value, before clamping: §10.3). */
size_t ac_bias_overflow_count(const float *bias, size_t n, int r, double s_out);

/* The 3% rule: more than 3% of n (strictly), i.e. n_over * 100 > 3 * n. */
bool ac_bias_overflow_too_many(size_t n_over, size_t n);

/* Per-tensor back-off (§3 step 3, §10.3): starting at r, decrease r by one
 * while more than 3% of the bias overflows, stopping at r = 0 (the remaining
 * overflowing codes are clamped). A negative r is returned unchanged (the layer
 * is fp32 anyway); bias may be NULL (n = 0): no back-off. */
int ac_bias_backoff(const float *bias, size_t n, int r, double s_out);

/* Shift search + back-off for a per-tensor conv/FC: the r to use, < 0 for fp32. */
int ac_conv_shift_per_tensor(double wmax, double ratio, const float *bias, size_t n_bias,
                             double s_out);

/* Per-channel (ours, §3 "Per-channel mode", §10.3): each output channel c gets
 * r_c from its own wmax_c, then backs off on its own while its single bias
 * value overflows int16. A channel "needs r < 0" when its shift search gives
 * r_c < 0, or when its bias still overflows at r_c = 0 (backing off further
 * would need r < 0): then the whole layer runs in fp32. */
typedef enum {
    AC_PC_OK = 0,        /* every channel has r_c in [0, 31] */
    AC_PC_FP32_SHIFT = 1, /* a channel's wmax_c*ratio is too large: r_c < 0 */
    AC_PC_FP32_BIAS = 2  /* a channel's bias overflows int16 even at r_c = 0 */
} ac_pc_status;

/* wmax[c] = max|W| over channel c; bias may be NULL. r_out[c] receives each
 * channel's shift (meaningful when AC_PC_OK). On a fp32 verdict *bad_channel
 * (may be NULL) names the first offending channel. */
ac_pc_status ac_conv_shift_per_channel(const float *wmax, const float *bias, size_t n_ch,
                                       double ratio, double s_out, int *r_out,
                                       size_t *bad_channel);

/* ---- elementwise (§4, §10.2) ----------------------------------------------------- */

/* Add input with coefficient c: x = c*s_in/s_out (evaluated left to right),
 * r = largest integer with x*2^r <= 127, clamped to [0, 31], m =
 * round_half_away(x*2^r). Returns false (the Add runs in fp32) when m is
 * outside [0, 127] or x is not finite; x = 0 gives m = 0, r = 31. */
bool ac_add_params(double c, double s_in, double s_out, int32_t *m, int *r);

/* The least-error 8-bit multiplier and shift for x: over r = 0..r_max, m =
 * round_half_away(|x|*2^r) with m <= 127, the pair with the least
 * |m*2^-r - |x|| (compared exactly); ties go to the smaller r (so the fraction
 * is reduced). m
 * carries the sign of x. False when even r = 0 needs |m| > 127 (or x is not
 * finite). */
bool ac_mult_shift(double x, int r_max, int32_t *m, int *r);

/* Mul (§4): x = (s_a*s_b)/s_out, r in [0, 31], m in [0, 127]; false -> fp32. */
bool ac_mul_params(double s_a, double s_b, double s_out, int32_t *m, int *r);

/* Requant between two int8 scales (§4): x = s_in/s_out, r in [0, 30]. */
bool ac_requant_params(double s_in, double s_out, int32_t *m, int *r);

/* LeakyReLU negative slope (§5): m/2^r ~ alpha, least error (0.1 -> 51/512). */
bool ac_leaky_params(double alpha, int32_t *m, int *r);

/* PReLU (§5): one shared r in [0, 31] and per-channel m_c (|m_c| <= 127), the r
 * with the least maximum (exact) error over the channels, ties to the smaller r. n = 1
 * gives the LeakyReLU pair. False when some |alpha_c| needs |m_c| > 127. */
bool ac_prelu_params(const float *alpha, size_t n, int32_t *m, int *r);

/* ---- pooling (§5, §10.6) --------------------------------------------------------- */

/* 1/k as m/2^e: the largest e with round(2^e/k) <= 255, m = round(2^e/k), then
 * common factors of 2 cancelled (k=9 -> 57/512, k=49 -> 167/8192, k=4 -> 1/4,
 * k=1 -> 1/1). k must be in [1, 2^24]; false otherwise. (The "area > 225 runs
 * in fp32" policy belongs to the lowering, not to this helper.) */
bool ac_avgpool_params(int64_t k, int32_t *m, int *e);

/* §10.6: rescale a window sum over `count` valid pixels to the kernel area k:
 * round_half_away(sum*k/count) in exact integer arithmetic. Requires
 * 1 <= count, 1 <= k <= 2^24 and |sum| < 2^36 (an int8 window sum always is). */
int64_t ac_avgpool_rescale(int64_t sum, int64_t k, int64_t count);

#endif
