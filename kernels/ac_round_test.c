/* Test battery for kernels/ac_round.{h,c}: one group per rule of
 * docs/bm1684-int8.md that the helpers implement. Known values come from the
 * spec's examples or are worked out in the comments; sweeps check the defining
 * property of a rule against a slow, obviously-correct formulation. */
#include "ac_round.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "ac_check.h"

#define CHECK_EQ(got, want)                                                                    \
    do {                                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);                               \
        if (g_ != w_) {                                                                        \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", __FILE__, __LINE__, #got,    \
                    g_, w_);                                                                   \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* splitmix64: a small deterministic generator for the sweeps. */
static uint64_t rng_state = 0x1684u;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static double rng_uniform(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

/* ---- rshift_round ------------------------------------------------------------------ */

static void test_rshift_round(void)
{
    CHECK_EQ(ac_rshift_round(-3, 1), -1); /* -1.5 -> -1: half up, not away */
    CHECK_EQ(ac_rshift_round(3, 1), 2);   /* +1.5 -> 2 */
    CHECK_EQ(ac_rshift_round(-1, 1), 0);  /* -0.5 -> 0 */
    CHECK_EQ(ac_rshift_round(-5, 2), -1); /* -1.25 -> -1 */
    CHECK_EQ(ac_rshift_round(-6, 2), -1); /* -1.5 -> -1 */
    CHECK_EQ(ac_rshift_round(-7, 2), -2); /* -1.75 -> -2 */
    CHECK_EQ(ac_rshift_round(-10, 2), -2); /* -2.5 -> -2 */
    CHECK_EQ(ac_rshift_round(10, 2), 3);  /* 2.5 -> 3 */
    CHECK_EQ(ac_rshift_round(-123, 0), -123); /* r = 0: unchanged */
    CHECK_EQ(ac_rshift_round(123, 0), 123);
    /* The rounding add is done in 64 bits: INT32_MAX + 2^30 would overflow int32. */
    CHECK_EQ(ac_rshift_round(INT32_MAX, 31), 1);
    CHECK_EQ(ac_rshift_round(INT32_MAX, 1), INT64_C(1) << 30);
    CHECK_EQ(ac_rshift_round(INT32_MIN, 31), -1);
    CHECK_EQ(ac_rshift_round(INT32_MIN, 32), 0); /* -0.5 -> 0 */
    /* Sweep against floor(v/2^r + 1/2), exact in double for these sizes. */
    for (int r = 0; r <= 12; r++)
        for (int64_t v = -5000; v <= 5000; v++) {
            int64_t want = (int64_t)floor(ldexp((double)v, -r) + 0.5);
            if (ac_rshift_round(v, r) != want) {
                fprintf(stderr, "rshift_round(%" PRId64 ", %d) = %" PRId64 ", want %" PRId64 "\n",
                        v, r, ac_rshift_round(v, r), want);
                failures++;
                return;
            }
        }
}

/* ---- saturation ------------------------------------------------------------------- */

static void test_saturation(void)
{
    CHECK_EQ(ac_sat_i8(127), 127);
    CHECK_EQ(ac_sat_i8(128), 127);
    CHECK_EQ(ac_sat_i8(-128), -128);
    CHECK_EQ(ac_sat_i8(-129), -128);
    CHECK_EQ(ac_sat_i8(INT64_MAX), 127);
    CHECK_EQ(ac_sat_i8(INT64_MIN), -128);
    CHECK_EQ(ac_sat_u8(-1), 0);
    CHECK_EQ(ac_sat_u8(0), 0);
    CHECK_EQ(ac_sat_u8(255), 255);
    CHECK_EQ(ac_sat_u8(256), 255);
    CHECK_EQ(ac_sat_i16(32767), 32767);
    CHECK_EQ(ac_sat_i16(32768), 32767);
    CHECK_EQ(ac_sat_i16(-32768), -32768);
    CHECK_EQ(ac_sat_i16(-32769), -32768);
    CHECK_EQ(ac_sat(5, -3, 3), 3);
    CHECK_EQ(ac_sat(-5, -3, 3), -3);
}

/* ---- round_half_away ---------------------------------------------------------------- */

static void test_round_half_away(void)
{
    CHECK_EQ(ac_round_half_away(0.5), 1);
    CHECK_EQ(ac_round_half_away(-0.5), -1);
    CHECK_EQ(ac_round_half_away(1.5), 2);
    CHECK_EQ(ac_round_half_away(2.5), 3); /* not to even */
    CHECK_EQ(ac_round_half_away(-2.5), -3);
    CHECK_EQ(ac_round_half_away(nextafter(0.5, 0.0)), 0); /* 0.49999999999999994 */
    CHECK_EQ(ac_round_half_away(-nextafter(0.5, 0.0)), 0);
    CHECK_EQ(ac_round_half_away(nextafter(2.5, 0.0)), 2);
    CHECK_EQ(ac_round_half_away(4503599627370497.0), 4503599627370497); /* 2^52+1 */
    CHECK_EQ(ac_round_half_away(1e300), INT64_MAX);
    CHECK_EQ(ac_round_half_away(-1e300), INT64_MIN);
    CHECK_EQ(ac_round_half_away(INFINITY), INT64_MAX);
    CHECK_EQ(ac_round_half_away(-INFINITY), INT64_MIN);
    CHECK_EQ(ac_round_half_away(NAN), 0);
    CHECK_EQ(ac_round_half_away(-9223372036854775808.0), INT64_MIN);
    /* clamped variants */
    CHECK_EQ(ac_round_half_away_i8(126.5), 127);
    CHECK_EQ(ac_round_half_away_i8(127.5), 127);
    CHECK_EQ(ac_round_half_away_i8(-127.5), -128);
    CHECK_EQ(ac_round_half_away_i8(-128.5), -128);
    CHECK_EQ(ac_round_half_away_i8(-1e9), -128);
    CHECK_EQ(ac_round_half_away_u8(-0.4), 0);
    CHECK_EQ(ac_round_half_away_u8(-0.5), 0); /* -1 clamps to 0 */
    CHECK_EQ(ac_round_half_away_u8(254.5), 255);
    CHECK_EQ(ac_round_half_away_u8(1e9), 255);
    CHECK_EQ(ac_round_half_away_i16(32766.5), 32767);
    CHECK_EQ(ac_round_half_away_i16(32767.5), 32767);
    CHECK_EQ(ac_round_half_away_i16(-32768.5), -32768);
    CHECK_EQ(ac_round_half_away_i32(2147483647.5), INT32_MAX);
    CHECK_EQ(ac_round_half_away_i32(-2147483648.5), INT32_MIN);

    /* Weights: round_half_away((W*2^r)*ratio), clamped to int8. */
    CHECK_EQ(ac_quant_weight(0.5f, 0, 1.0), 1);
    CHECK_EQ(ac_quant_weight(-0.5f, 0, 1.0), -1);
    CHECK_EQ(ac_quant_weight(1.5f, 1, 0.5), 2);  /* (1.5*2)*0.5 = 1.5 -> 2 */
    CHECK_EQ(ac_quant_weight(-2.5f, 2, 0.25), -3);
    CHECK_EQ(ac_quant_weight(0.25f, 9, 1.0), 127); /* 128 clamps */
    CHECK_EQ(ac_quant_weight(-0.25f, 9, 1.0), -128);
    CHECK_EQ(ac_quant_weight(-0.25f, 10, 1.0), -128); /* -256 clamps */
    /* Bias: round_half_away((B*2^r)/s_out), clamped to int16. */
    CHECK_EQ(ac_quant_bias(2.5f, 0, 1.0), 3);
    CHECK_EQ(ac_quant_bias(-2.5f, 0, 1.0), -3);
    CHECK_EQ(ac_quant_bias(0.75f, 1, 0.5), 3); /* 1.5/0.5 = 3 */
    CHECK_EQ(ac_quant_bias(1.25f, 2, 2.0), 3); /* 5/2 = 2.5 -> 3 */
    CHECK_EQ(ac_quant_bias(-1.25f, 2, 2.0), -3);
    CHECK_EQ(ac_quant_bias(40000.0f, 0, 1.0), 32767);
    CHECK_EQ(ac_quant_bias(-40000.0f, 0, 1.0), -32768);

    /* Input quantization: round_half_away(x/s), a division. */
    CHECK(ac_scale_from_th(127.0, true) == 1.0);
    CHECK(ac_scale_from_th(255.0, false) == 1.0);
    CHECK(ac_scale_from_th(1.0, true) == 1.0 / 127.0);
    CHECK_EQ(ac_quantize(1.0, 2.0, true), 1);
    CHECK_EQ(ac_quantize(-1.0, 2.0, true), -1);
    CHECK_EQ(ac_quantize(-1.0, 2.0, false), 0);
    CHECK_EQ(ac_quantize(1000.0, 1.0, true), 127);
    CHECK_EQ(ac_quantize(-1000.0, 1.0, true), -128);
    CHECK_EQ(ac_quantize(1000.0, 1.0, false), 255);
    CHECK_EQ(ac_quantize(0.25, 0.1, true), 3); /* 0.25/0.1 is 2.5 in double: away */
    CHECK_EQ(ac_quantize(-0.25, 0.1, true), -3);

    /* ReLU6 clamp code (§10.5). */
    int32_t code = 0;
    CHECK(!ac_clip_upper_code(6.0, 6.0 / 127.0, 127, &code));
    CHECK_EQ(code, 127);
    CHECK(ac_clip_upper_code(6.0, 0.1, 127, &code));
    CHECK_EQ(code, 60);
    CHECK(!ac_clip_upper_code(6.0, 0.01, 255, &code)); /* 600 is beyond saturation */
}

/* ---- avg-pool ------------------------------------------------------------------------ */

static void test_avgpool(void)
{
    static const struct {
        int k, m, e;
    } known[] = {{9, 57, 9}, {49, 167, 13}, {4, 1, 2}, {1, 1, 0},
                 {2, 1, 1},  {3, 171, 9},   {225, 73, 14}};
    /* k = 3: 2^9/3 = 170.67 -> 171; 2^10/3 = 341 > 255. k = 225: 2^16/225 =
     * 291 > 255, 2^15/225 = 145.6 -> 146 = 2*73 -> 73/2^14. */
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        int32_t m = 0;
        int e = 0;
        CHECK(ac_avgpool_params(known[i].k, &m, &e));
        if (m != known[i].m || e != known[i].e) {
            fprintf(stderr, "avgpool k=%d: %d/2^%d, expected %d/2^%d\n", known[i].k, m, e,
                    known[i].m, known[i].e);
            failures++;
        }
    }
    int32_t m;
    int e;
    CHECK(!ac_avgpool_params(0, &m, &e));
    CHECK(!ac_avgpool_params(-3, &m, &e));

    /* Defining property for k = 1..225, against a slow double formulation:
     * e_raw is the largest e with round(2^e/k) <= 255; the answer is the same
     * fraction with common factors of 2 cancelled. */
    for (int k = 1; k <= 225; k++) {
        CHECK(ac_avgpool_params(k, &m, &e));
        int e_raw = -1;
        double m_raw = 0;
        for (int t = 0; t < 40; t++) {
            double v = floor(ldexp(1.0, t) / k + 0.5);
            if (v <= 255) {
                e_raw = t;
                m_raw = v;
            }
        }
        int ok = e_raw >= e && e >= 0 && ldexp((double)m, e_raw - e) == m_raw &&
                 (e == 0 || (m & 1) == 1) && m >= 1 && m <= 255 &&
                 fabs(ldexp((double)m, -e) - 1.0 / k) <= ldexp(1.0, -e_raw - 1);
        if (!ok) {
            fprintf(stderr, "avgpool k=%d: %d/2^%d breaks the rule (raw %g/2^%d)\n", k, m, e,
                    m_raw, e_raw);
            failures++;
        }
    }

    /* §10.6 rescale: round_half_away(sum*k/count), exact. */
    CHECK_EQ(ac_avgpool_rescale(10, 9, 6), 15);
    CHECK_EQ(ac_avgpool_rescale(7, 9, 6), 11);   /* 10.5 -> 11 */
    CHECK_EQ(ac_avgpool_rescale(-7, 9, 6), -11); /* -10.5 -> -11 */
    CHECK_EQ(ac_avgpool_rescale(5, 4, 3), 7);    /* 6.67 */
    CHECK_EQ(ac_avgpool_rescale(-5, 4, 3), -7);
    CHECK_EQ(ac_avgpool_rescale(0, 9, 4), 0);
    CHECK_EQ(ac_avgpool_rescale(-127 * 4, 9, 4), -127 * 9);
    for (int count = 1; count <= 9; count++)
        for (int sum = -128 * 9; sum <= 127 * 9; sum++) {
            double exact = (double)sum * 9.0 / count; /* exact enough: ties are n/2 */
            int64_t want = (int64_t)round(exact);
            if (ac_avgpool_rescale(sum, 9, count) != want) {
                fprintf(stderr, "avgpool_rescale(%d, 9, %d) = %" PRId64 ", want %" PRId64 "\n",
                        sum, count, ac_avgpool_rescale(sum, 9, count), want);
                failures++;
                return;
            }
        }
}

/* ---- conv / FC shift and the 3% rule ------------------------------------------------ */

static void test_conv_shift(void)
{
    /* Strict bound at exact powers of two: 1 * 2^6 = 64 < 127, 2^7 = 128 is not. */
    CHECK_EQ(ac_conv_shift(1.0, 1.0), 6);
    CHECK_EQ(ac_conv_shift(0.5, 1.0), 7);
    CHECK_EQ(ac_conv_shift(2.0, 0.5), 6);
    /* 127/128 * 2^7 = 127 exactly: not < 127, so r = 6; one ulp below gives 7. */
    CHECK_EQ(ac_conv_shift(127.0 / 128.0, 1.0), 6);
    CHECK_EQ(ac_conv_shift(nextafter(127.0 / 128.0, 0.0), 1.0), 7);
    CHECK_EQ(ac_conv_shift(127.0, 1.0), -1); /* 127 * 2^0 is not < 127 */
    CHECK_EQ(ac_conv_shift(254.0, 0.5), -1);
    CHECK_EQ(ac_conv_shift(126.99, 1.0), 0);
    CHECK_EQ(ac_conv_shift(127.0 * 0x1p-24, 1.0), 23);
    CHECK_EQ(ac_conv_shift(0x1p-24, 1.0), 30);
    CHECK_EQ(ac_conv_shift(0x1p-25, 1.0), 31);
    CHECK_EQ(ac_conv_shift(1e-20, 1.0), 31); /* capped */
    CHECK_EQ(ac_conv_shift(0.0, 0.7), 31);   /* all-zero filter */
    CHECK(ac_conv_shift(NAN, 1.0) < 0);
    CHECK(ac_conv_shift(INFINITY, 1.0) < 0);
    CHECK(ac_conv_shift(-1.0, 1.0) < 0);
    /* Defining property on random products. */
    for (int i = 0; i < 20000; i++) {
        double wmax = ldexp(rng_uniform() + 0.01, (int)(rng_next() % 60) - 40);
        double ratio = ldexp(rng_uniform() + 0.01, (int)(rng_next() % 20) - 10);
        double p = wmax * ratio;
        int r = ac_conv_shift(wmax, ratio);
        int ok = r <= 31 && ldexp(p, r) < 127.0 && (r == 31 || ldexp(p, r + 1) >= 127.0);
        if (!ok) {
            fprintf(stderr, "conv_shift(%a, %a) = %d breaks the rule\n", wmax, ratio, r);
            failures++;
            return;
        }
    }
}

static void test_bias_backoff(void)
{
    CHECK(!ac_bias_overflow_too_many(3, 100)); /* exactly 3%: no back-off */
    CHECK(ac_bias_overflow_too_many(4, 100));
    CHECK(!ac_bias_overflow_too_many(0, 0));
    CHECK(!ac_bias_overflow_too_many(1, 34)); /* 2.94% */
    CHECK(ac_bias_overflow_too_many(1, 33));  /* 3.03% */
    CHECK(!ac_bias_overflow_too_many(30, 1000));
    CHECK(ac_bias_overflow_too_many(31, 1000));

    /* Overflow is judged on the rounded code. */
    float edge[4] = {32767.5f, 32767.49f, -32768.5f, -32768.4f};
    CHECK_EQ(ac_bias_overflow_count(edge, 1, 0, 1.0), 1);     /* -> 32768 */
    CHECK_EQ(ac_bias_overflow_count(edge + 1, 1, 0, 1.0), 0); /* -> 32767 */
    CHECK_EQ(ac_bias_overflow_count(edge + 2, 1, 0, 1.0), 1); /* -> -32769 */
    CHECK_EQ(ac_bias_overflow_count(edge + 3, 1, 0, 1.0), 0); /* -> -32768 */

    /* 100 bias values; at r = 5 a value of 2000 gives 64000 (overflow), at r = 4
     * 32000 (fits). Three of them (exactly 3%) keep r = 5, four back off to 4. */
    float bias[100];
    for (int i = 0; i < 100; i++)
        bias[i] = 0.1f * (float)(i % 7);
    for (int i = 0; i < 3; i++)
        bias[i] = 2000.0f;
    CHECK_EQ(ac_bias_backoff(bias, 100, 5, 1.0), 5);
    bias[3] = -2000.0f;
    CHECK_EQ(ac_bias_backoff(bias, 100, 5, 1.0), 4);
    /* The loop stops at r = 0 and clamps. */
    for (int i = 0; i < 10; i++)
        bias[i] = 1e9f;
    CHECK_EQ(ac_bias_backoff(bias, 100, 5, 1.0), 0);
    CHECK_EQ(ac_quant_bias(bias[0], 0, 1.0), 32767);
    CHECK_EQ(ac_bias_backoff(bias, 100, -2, 1.0), -2); /* fp32 stays fp32 */
    CHECK_EQ(ac_bias_backoff(NULL, 0, 7, 1.0), 7);

    /* Search + back-off together: wmax*ratio = 1 -> r = 6; a bias of 1000 is
     * 64000 at r = 6 and 32000 at r = 5. */
    float one = 1000.0f;
    CHECK_EQ(ac_conv_shift_per_tensor(1.0, 1.0, &one, 1, 1.0), 5);
    CHECK_EQ(ac_conv_shift_per_tensor(1.0, 1.0, NULL, 0, 1.0), 6);

    /* Per-channel: each channel on its own. */
    int r[3] = {0};
    size_t bad = 99;
    float wmax_ok[2] = {1.0f, 0.5f};
    float bias_ok[2] = {1000.0f, 0.0f};
    CHECK_EQ(ac_conv_shift_per_channel(wmax_ok, bias_ok, 2, 1.0, 1.0, r, &bad), AC_PC_OK);
    CHECK_EQ(r[0], 5);
    CHECK_EQ(r[1], 7);
    CHECK_EQ(ac_conv_shift_per_channel(wmax_ok, NULL, 2, 1.0, 1.0, r, &bad), AC_PC_OK);
    CHECK_EQ(r[0], 6);
    float wmax_big[3] = {1.0f, 0.0f, 1000.0f};
    CHECK_EQ(ac_conv_shift_per_channel(wmax_big, NULL, 3, 1.0, 1.0, r, &bad), AC_PC_FP32_SHIFT);
    CHECK_EQ(bad, 2);
    CHECK_EQ(r[1], 31); /* all-zero channel */
    float wmax_two[2] = {1.0f, 1.0f};
    float bias_huge[2] = {0.0f, 40000.0f}; /* overflows even at r = 0 */
    CHECK_EQ(ac_conv_shift_per_channel(wmax_two, bias_huge, 2, 1.0, 1.0, r, &bad),
             AC_PC_FP32_BIAS);
    CHECK_EQ(bad, 1);
}

/* ---- Add, Mul, requant, LeakyReLU, PReLU --------------------------------------------- */

static void test_add(void)
{
    int32_t m;
    int r;
    CHECK(ac_add_params(1.0, 1.0, 1.0, &m, &r)); /* x = 1: 64/2^6 */
    CHECK_EQ(m, 64);
    CHECK_EQ(r, 6);
    CHECK(ac_add_params(1.0, 0.5, 1.0, &m, &r)); /* x = 0.5: 64/2^7 */
    CHECK_EQ(m, 64);
    CHECK_EQ(r, 7);
    CHECK(ac_add_params(1.0, 0.75, 1.0, &m, &r)); /* 96 <= 127, 192 is not */
    CHECK_EQ(m, 96);
    CHECK_EQ(r, 7);
    CHECK(ac_add_params(1.0, 127.0 / 128.0, 1.0, &m, &r)); /* x*2^7 = 127: <= holds */
    CHECK_EQ(m, 127);
    CHECK_EQ(r, 7);
    /* Known scales: thresholds 4 and 6 into 8, all signed: x = (4/127)/(8/127). */
    CHECK(ac_add_params(1.0, 4.0 / 127.0, 8.0 / 127.0, &m, &r));
    CHECK_EQ(m, 64);
    CHECK_EQ(r, 7);
    CHECK(ac_add_params(1.0, 6.0 / 127.0, 8.0 / 127.0, &m, &r)); /* 0.75 */
    CHECK_EQ(m, 96);
    CHECK_EQ(r, 7);
    /* x = 0.1: largest r with 0.1*2^r <= 127 is 10 (102.4); m = 102. */
    CHECK(ac_add_params(1.0, 0.1, 1.0, &m, &r));
    CHECK_EQ(m, 102);
    CHECK_EQ(r, 10);
    /* coefficient 0.5 (e.g. a mean of two inputs). */
    CHECK(ac_add_params(0.5, 1.0, 1.0, &m, &r));
    CHECK_EQ(m, 64);
    CHECK_EQ(r, 7);
    CHECK(ac_add_params(1.0, 127.4, 1.0, &m, &r)); /* r clamps at 0, m = 127 */
    CHECK_EQ(m, 127);
    CHECK_EQ(r, 0);
    CHECK(!ac_add_params(1.0, 127.5, 1.0, &m, &r)); /* m = 128 -> fp32 */
    CHECK(!ac_add_params(1.0, 200.0, 1.0, &m, &r));
    CHECK(!ac_add_params(-1.0, 1.0, 1.0, &m, &r)); /* negative m -> fp32 */
    CHECK(ac_add_params(1.0, 1e-12, 1.0, &m, &r)); /* r capped at 31, m rounds to 0 */
    CHECK_EQ(m, 0);
    CHECK_EQ(r, 31);
    CHECK(ac_add_params(0.0, 1.0, 1.0, &m, &r));
    CHECK_EQ(m, 0);
    CHECK_EQ(r, 31);
    CHECK(!ac_add_params(1.0, 1.0, 0.0, &m, &r)); /* infinite ratio */
}

static void test_mult(void)
{
    int32_t m;
    int r;
    CHECK(ac_leaky_params(0.1, &m, &r)); /* spec: 51/512 */
    CHECK_EQ(m, 51);
    CHECK_EQ(r, 9);
    CHECK(ac_leaky_params(0.01, &m, &r)); /* 41/4096 (82/8192 is the same value) */
    CHECK_EQ(m, 41);
    CHECK_EQ(r, 12);
    CHECK(ac_leaky_params(-0.1, &m, &r));
    CHECK_EQ(m, -51);
    CHECK_EQ(r, 9);
    CHECK(ac_leaky_params(0.0, &m, &r));
    CHECK_EQ(m, 0);
    CHECK_EQ(r, 0);
    CHECK(ac_mul_params(1.0, 1.0, 1.0, &m, &r)); /* exact 1/1 */
    CHECK_EQ(m, 1);
    CHECK_EQ(r, 0);
    CHECK(ac_mul_params(0.5, 0.2, 1.0, &m, &r)); /* 0.1 -> 51/512 */
    CHECK_EQ(m, 51);
    CHECK_EQ(r, 9);
    CHECK(!ac_mul_params(16.0, 16.0, 1.0, &m, &r)); /* 256 needs m > 127 */
    CHECK(ac_requant_params(2.0, 1.0, &m, &r));
    CHECK_EQ(m, 2);
    CHECK_EQ(r, 0);
    /* 1/3: r = 8 gives 85/256 (err 0.0013), r = 9 would need 171 > 127. */
    CHECK(ac_requant_params(1.0, 3.0, &m, &r));
    CHECK_EQ(m, 85);
    CHECK_EQ(r, 8);
    /* r_max 30 for requant: 2^-31 is best approximated by 0/2^0 there; Mul
     * (r up to 31) finds 1/2^31. */
    CHECK(ac_requant_params(0x1p-31, 1.0, &m, &r));
    CHECK_EQ(m, 0);
    CHECK(ac_mul_params(0x1p-31, 1.0, 1.0, &m, &r));
    CHECK_EQ(m, 1);
    CHECK_EQ(r, 31);

    /* PReLU: shared shift. 0.25 fits up to r = 8 (64); 0.1 gives 26/256 at r = 8
     * and 13/128 at r = 7, the same value: the tie goes to r = 7. */
    float alpha[2] = {0.1f, 0.25f};
    int32_t mc[2];
    CHECK(ac_prelu_params(alpha, 2, mc, &r));
    CHECK_EQ(r, 7);
    CHECK_EQ(mc[0], 13);
    CHECK_EQ(mc[1], 32);
    float one_alpha[1] = {0.1f};
    CHECK(ac_prelu_params(one_alpha, 1, mc, &r)); /* = LeakyReLU (0.1f is not 0.1) */
    int32_t ml;
    int rl;
    CHECK(ac_leaky_params((double)0.1f, &ml, &rl));
    CHECK_EQ(mc[0], ml);
    CHECK_EQ(r, rl);
    float too_big[1] = {200.0f};
    CHECK(!ac_prelu_params(too_big, 1, mc, &r));
}

int main(void)
{
    test_rshift_round();
    test_saturation();
    test_round_half_away();
    test_avgpool();
    test_conv_shift();
    test_bias_backoff();
    test_add();
    test_mult();
    if (failures) {
        fprintf(stderr, "round_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("round_test: all checks passed\n");
    return 0;
}
