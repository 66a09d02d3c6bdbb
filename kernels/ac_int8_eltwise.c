/* Fast int8 Clamp and Add: see ac_int8_eltwise.h. */
#include "ac_int8_eltwise.h"

#include <immintrin.h>
#include <string.h>

#include "ac_conv_f32.h"
#include "ac_round.h"

#define T_AVX2 __attribute__((target("avx2")))
#define T_AVX512 __attribute__((target("avx2,avx512f,avx512bw")))

/* Elements per step of every vector loop; a shorter tail is run through a
 * zero-padded stack buffer of this size, so no masked or partial loads. */
enum { BLK = 64 };

/* ---- ISA selection ------------------------------------------------------------------ */

static bool have_avx512bw(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw");
}

ac_elt_isa ac_elt_isa_resolve(ac_elt_isa isa)
{
    if (isa == AC_ELT_ISA_REF)
        return AC_ELT_ISA_REF;
    if ((isa == AC_ELT_ISA_AUTO || isa == AC_ELT_ISA_AVX512BW) && have_avx512bw())
        return AC_ELT_ISA_AVX512BW;
    return __builtin_cpu_supports("avx2") ? AC_ELT_ISA_AVX2 : AC_ELT_ISA_REF;
}

const char *ac_elt_isa_name(ac_elt_isa isa)
{
    switch (isa) {
    case AC_ELT_ISA_REF: return "ref";
    case AC_ELT_ISA_AVX2: return "avx2";
    case AC_ELT_ISA_AVX512BW: return "avx512bw";
    default: return "auto";
    }
}

/* ---- clamp ------------------------------------------------------------------------------ */

/* Saturation to the output range is monotone, so it commutes with min and max:
 * sat(min(max(q, lo), hi)) = min(max(sat(q), sat(lo)), sat(hi)). Every operand
 * then lies in the output range and the clamp runs on 8-bit lanes. sat(q)
 * only acts when the signedness changes: int8 -> uint8 is max(q, 0), uint8 ->
 * int8 is min(q, 127) compared unsigned. */
enum { CL_SS, CL_UU, CL_SU, CL_US }; /* input signedness, output signedness */

typedef struct {
    int kind;
    uint8_t lo, hi; /* sat(lo), sat(hi): output codes as bytes */
} clamp_plan;

static clamp_plan clamp_plan_of(const ac_clamp_q8_params *p)
{
    clamp_plan c;
    c.kind = p->x_signed ? (p->y_signed ? CL_SS : CL_SU) : (p->y_signed ? CL_US : CL_UU);
    int64_t ylo = p->y_signed ? -128 : 0, yhi = p->y_signed ? 127 : 255;
    c.lo = (uint8_t)ac_sat(p->lo, ylo, yhi);
    c.hi = (uint8_t)ac_sat(p->hi, ylo, yhi);
    return c;
}

T_AVX512 static void clamp_span512(const clamp_plan *c, const uint8_t *x, uint8_t *y, int64_t len)
{
    const __m512i lo = _mm512_set1_epi8((char)c->lo), hi = _mm512_set1_epi8((char)c->hi);
    const __m512i zero = _mm512_setzero_si512(), top = _mm512_set1_epi8(127);
    for (int64_t i = 0; i < len; i += 64) {
        __m512i v = _mm512_loadu_si512(x + i);
        switch (c->kind) {
        case CL_SS: v = _mm512_min_epi8(_mm512_max_epi8(v, lo), hi); break;
        case CL_UU: v = _mm512_min_epu8(_mm512_max_epu8(v, lo), hi); break;
        case CL_SU: v = _mm512_min_epu8(_mm512_max_epu8(_mm512_max_epi8(v, zero), lo), hi); break;
        default: v = _mm512_min_epi8(_mm512_max_epi8(_mm512_min_epu8(v, top), lo), hi); break;
        }
        _mm512_storeu_si512(y + i, v);
    }
}

T_AVX2 static void clamp_span256(const clamp_plan *c, const uint8_t *x, uint8_t *y, int64_t len)
{
    const __m256i lo = _mm256_set1_epi8((char)c->lo), hi = _mm256_set1_epi8((char)c->hi);
    const __m256i zero = _mm256_setzero_si256(), top = _mm256_set1_epi8(127);
    for (int64_t i = 0; i < len; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        switch (c->kind) {
        case CL_SS: v = _mm256_min_epi8(_mm256_max_epi8(v, lo), hi); break;
        case CL_UU: v = _mm256_min_epu8(_mm256_max_epu8(v, lo), hi); break;
        case CL_SU: v = _mm256_min_epu8(_mm256_max_epu8(_mm256_max_epi8(v, zero), lo), hi); break;
        default: v = _mm256_min_epi8(_mm256_max_epi8(_mm256_min_epu8(v, top), lo), hi); break;
        }
        _mm256_storeu_si256((__m256i *)(y + i), v);
    }
}

void ac_clamp_q8_isa(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith,
                     int nth, ac_elt_isa isa)
{
    isa = ac_elt_isa_resolve(isa);
    if (isa == AC_ELT_ISA_REF) {
        ac_clamp_q8__ref(p, x, y, n, ith, nth);
        return;
    }
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    clamp_plan c = clamp_plan_of(p);
    void (*span)(const clamp_plan *, const uint8_t *, uint8_t *, int64_t) =
        isa == AC_ELT_ISA_AVX512BW ? clamp_span512 : clamp_span256;
    const uint8_t *xs = (const uint8_t *)x + lo;
    uint8_t *ys = (uint8_t *)y + lo;
    int64_t len = hi - lo, bulk = len / BLK * BLK;
    span(&c, xs, ys, bulk);
    if (bulk < len) {
        uint8_t buf[BLK] = {0};
        memcpy(buf, xs + bulk, (size_t)(len - bulk));
        span(&c, buf, buf, BLK);
        memcpy(ys + bulk, buf, (size_t)(len - bulk));
    }
}

void ac_clamp_q8(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith, int nth)
{
    ac_clamp_q8_isa(p, x, y, n, ith, nth,
                    ac_kernels_ref_forced() ? AC_ELT_ISA_REF : AC_ELT_ISA_AUTO);
}

/* ---- add ---------------------------------------------------------------------------------- */

/* Each term t = rshift_round(q*m, r) is computed exactly in int16 lanes: with
 * |m| <= 127 and q in [-128, 255], |q*m| <= 32385, and
 * - r <= 6 ("shift"): q*m + 2^(r-1) <= 32417 still fits, then an arithmetic
 *   shift (r = 0: nothing added, no shift);
 * - 7 <= r <= 15 ("mulhrs"): vpmulhrsw gives (a*b + 2^14) >> 15, which with
 *   b = m*2^(15-r) (|b| <= 32512) is (q*m + 2^(r-1)) >> r exactly;
 * - r >= 16: -2^(r-1) <= q*m < 2^(r-1), so t = 0 and the input is dropped.
 * The terms are summed with saturating int16 adds: for two terms (the residual
 * Add) sat16 then the final sat8 equal sat8 of the exact sum; for more, the
 * plan is only taken when the sum of the terms' bounds fits int16, so no add
 * ever saturates. */
typedef struct {
    int n;                        /* kept terms */
    int src[AC_Q8_MAX_INPUTS];    /* the input each term reads */
    bool in_signed[AC_Q8_MAX_INPUTS];
    bool mulhrs[AC_Q8_MAX_INPUTS];
    int16_t mul[AC_Q8_MAX_INPUTS]; /* m, or m*2^(15-r) for mulhrs */
    int16_t half[AC_Q8_MAX_INPUTS]; /* 2^(r-1) (0 for r = 0) */
    int shift[AC_Q8_MAX_INPUTS];
    bool relu, y_signed;
} add_plan;

/* Input i reads the output positions one to one: every dim of size > 1 has
 * the contiguous stride. */
static bool same_shape(const ac_add_q8_params *p, int i)
{
    int64_t st = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        if (p->dims[d] != 1 && p->strides[i][d] != st)
            return false;
        st *= p->dims[d];
    }
    return true;
}

/* False when the vector path cannot reproduce __ref (broadcast, |m| > 127,
 * a shift beyond __ref's domain, or three or more terms that could saturate). */
static bool add_plan_of(const ac_add_q8_params *p, add_plan *a)
{
    int64_t bound = 0;
    a->n = 0;
    a->relu = p->relu;
    a->y_signed = p->y_signed;
    for (int i = 0; i < p->ninputs; i++) {
        int32_t m = p->m[i], r = p->r[i] < 0 ? 0 : p->r[i];
        if (!same_shape(p, i) || m < -127 || m > 127 || r > 62)
            return false;
        if (r >= 16)
            continue;
        int k = a->n++;
        a->src[k] = i;
        a->in_signed[k] = p->in_signed[i];
        a->mulhrs[k] = r >= 7;
        a->mul[k] = (int16_t)(r >= 7 ? m * (1 << (15 - r)) : m);
        a->half[k] = (int16_t)(r >= 1 && r <= 6 ? 1 << (r - 1) : 0);
        a->shift[k] = r >= 7 ? 0 : r;
        bound += ((255 * (m < 0 ? -m : m)) >> r) + 1;
    }
    return a->n <= 2 || bound <= INT16_MAX;
}

T_AVX512 static __m512i add_sum512(const add_plan *a, const uint8_t *const *x, int64_t i)
{
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < a->n; k++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(x[k] + i));
        __m512i q = a->in_signed[k] ? _mm512_cvtepi8_epi16(raw) : _mm512_cvtepu8_epi16(raw);
        __m512i t = a->mulhrs[k]
                        ? _mm512_mulhrs_epi16(q, _mm512_set1_epi16(a->mul[k]))
                        : _mm512_sra_epi16(_mm512_add_epi16(_mm512_mullo_epi16(
                                                                q, _mm512_set1_epi16(a->mul[k])),
                                                            _mm512_set1_epi16(a->half[k])),
                                           _mm_cvtsi32_si128(a->shift[k]));
        s = _mm512_adds_epi16(s, t);
    }
    return s;
}

T_AVX512 static void add_span512(const add_plan *a, const uint8_t *const *x, uint8_t *y,
                                 int64_t len)
{
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t i = 0; i < len; i += 32) {
        __m512i s = add_sum512(a, x, i);
        if (a->relu || !a->y_signed)
            s = _mm512_max_epi16(s, zero);
        /* vpmovswb / vpmovuswb: the final saturation (unsigned: after the max with 0) */
        __m256i o = a->y_signed ? _mm512_cvtsepi16_epi8(s) : _mm512_cvtusepi16_epi8(s);
        _mm256_storeu_si256((__m256i *)(y + i), o);
    }
}

T_AVX2 static __m256i add_sum256(const add_plan *a, const uint8_t *const *x, int64_t i)
{
    __m256i s = _mm256_setzero_si256();
    for (int k = 0; k < a->n; k++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(x[k] + i));
        __m256i q = a->in_signed[k] ? _mm256_cvtepi8_epi16(raw) : _mm256_cvtepu8_epi16(raw);
        __m256i t = a->mulhrs[k]
                        ? _mm256_mulhrs_epi16(q, _mm256_set1_epi16(a->mul[k]))
                        : _mm256_sra_epi16(_mm256_add_epi16(_mm256_mullo_epi16(
                                                                q, _mm256_set1_epi16(a->mul[k])),
                                                            _mm256_set1_epi16(a->half[k])),
                                           _mm_cvtsi32_si128(a->shift[k]));
        s = _mm256_adds_epi16(s, t);
    }
    if (a->relu)
        s = _mm256_max_epi16(s, _mm256_setzero_si256());
    return s;
}

T_AVX2 static void add_span256(const add_plan *a, const uint8_t *const *x, uint8_t *y,
                               int64_t len)
{
    for (int64_t i = 0; i < len; i += 32) {
        __m256i s0 = add_sum256(a, x, i), s1 = add_sum256(a, x, i + 16);
        /* packs/packus interleave the 128-bit lanes: 0xD8 puts them back in order */
        __m256i o = a->y_signed ? _mm256_packs_epi16(s0, s1) : _mm256_packus_epi16(s0, s1);
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_permute4x64_epi64(o, 0xD8));
    }
}

void ac_add_q8_isa(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth,
                   ac_elt_isa isa)
{
    add_plan a;
    isa = ac_elt_isa_resolve(isa);
    if (isa == AC_ELT_ISA_REF || !add_plan_of(p, &a)) {
        ac_add_q8__ref(p, x, y, ith, nth);
        return;
    }
    int64_t numel = 1;
    for (int d = 0; d < p->ndim; d++)
        numel *= p->dims[d];
    int64_t lo, hi;
    ac_ref_range(numel, ith, nth, &lo, &hi);
    void (*span)(const add_plan *, const uint8_t *const *, uint8_t *, int64_t) =
        isa == AC_ELT_ISA_AVX512BW ? add_span512 : add_span256;
    const uint8_t *xs[AC_Q8_MAX_INPUTS];
    for (int k = 0; k < a.n; k++)
        xs[k] = (const uint8_t *)x[a.src[k]] + lo;
    uint8_t *ys = (uint8_t *)y + lo;
    int64_t len = hi - lo, bulk = len / BLK * BLK;
    span(&a, xs, ys, bulk);
    if (bulk < len) {
        uint8_t in[AC_Q8_MAX_INPUTS][BLK], out[BLK];
        const uint8_t *ts[AC_Q8_MAX_INPUTS];
        for (int k = 0; k < a.n; k++) {
            memset(in[k], 0, BLK);
            memcpy(in[k], xs[k] + bulk, (size_t)(len - bulk));
            ts[k] = in[k];
        }
        span(&a, ts, out, BLK);
        memcpy(ys + bulk, out, (size_t)(len - bulk));
    }
}

void ac_add_q8(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth)
{
    ac_add_q8_isa(p, x, y, ith, nth, ac_kernels_ref_forced() ? AC_ELT_ISA_REF : AC_ELT_ISA_AUTO);
}

/* ---- fp32 <-> int8 boundaries -------------------------------------------------------- */

#define T_AVX512VL __attribute__((target("avx2,avx512f,avx512vl")))

static bool have_avx512vl(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

/* 8 values of x / scale rounded half away from zero, NaN as 0, clamped to [lo, hi]. */
T_AVX512VL static inline __m256i quantize8(const float *x, __m512d scale, __m512d lo, __m512d hi)
{
    const __m512d v = _mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x)), scale);
    const __m512d t = _mm512_roundscale_pd(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    /* v - t is exact: |fraction| >= 1/2 rounds away from zero */
    const __m512d frac = _mm512_abs_pd(_mm512_sub_pd(v, t));
    const __mmask8 away = _mm512_cmp_pd_mask(frac, _mm512_set1_pd(0.5), _CMP_GE_OQ);
    const __m512d one = _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_castpd_si512(_mm512_set1_pd(1.0)),
        _mm512_and_si512(_mm512_castpd_si512(v), _mm512_set1_epi64((long long)0x8000000000000000ULL))));
    __m512d r = _mm512_mask_add_pd(t, away, t, one);
    r = _mm512_min_pd(_mm512_max_pd(r, lo), hi); /* inf clamps; NaN handled below */
    const __mmask8 nan = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_pd(r, nan, _mm512_setzero_pd());
    return _mm512_cvtpd_epi32(r);
}

T_AVX512VL static void quantize_avx512(const float *x, void *y, int64_t lo_i, int64_t hi_i, double scale,
                                       bool is_signed)
{
    const __m512d vs = _mm512_set1_pd(scale);
    const __m512d lo = _mm512_set1_pd(is_signed ? -128.0 : 0.0), hi = _mm512_set1_pd(is_signed ? 127.0 : 255.0);
    uint8_t *out = y;
    int64_t i = lo_i;
    for (; i + 16 <= hi_i; i += 16) {
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(quantize8(x + i, vs, lo, hi)),
                                             quantize8(x + i + 8, vs, lo, hi), 1);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(q)); /* the low byte: two's complement */
    }
    for (; i < hi_i; i++)
        ac_q8_put(y, is_signed, i, ac_quantize((double)x[i], scale, is_signed));
}

T_AVX512VL static void dequantize_avx512(const void *x, float *y, int64_t lo_i, int64_t hi_i, double scale,
                                         bool is_signed)
{
    const __m512d vs = _mm512_set1_pd(scale);
    const uint8_t *in = x;
    int64_t i = lo_i;
    for (; i + 8 <= hi_i; i += 8) {
        const __m128i b = _mm_loadl_epi64((const __m128i *)(in + i));
        const __m256i q = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
        _mm256_storeu_ps(y + i, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(q), vs)));
    }
    for (; i < hi_i; i++)
        y[i] = (float)((double)ac_q8_get(x, is_signed, i) * scale);
}

void ac_quantize_q8(const float *x, void *y, int64_t n, double scale, bool is_signed, int ith, int nth)
{
    if (ac_kernels_ref_forced() || !have_avx512vl()) {
        ac_quantize_q8__ref(x, y, n, scale, is_signed, ith, nth);
        return;
    }
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    quantize_avx512(x, y, lo, hi, scale, is_signed);
}

void ac_dequantize_q8(const void *x, float *y, int64_t n, double scale, bool is_signed, int ith, int nth)
{
    if (ac_kernels_ref_forced() || !have_avx512vl()) {
        ac_dequantize_q8__ref(x, y, n, scale, is_signed, ith, nth);
        return;
    }
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    dequantize_avx512(x, y, lo, hi, scale, is_signed);
}
