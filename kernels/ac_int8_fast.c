/* Fast BM1684 int8 conv / FC kernels (see ac_int8_fast.h), bit-identical to
 * the __ref kernels of ac_int8_ref.c.
 *
 * Arithmetic. Inputs are int8 or uint8 codes, weights int8. The AVX-512 path
 * multiplies with vpdpbusd, which takes one *unsigned* byte operand: signed
 * inputs are shifted to unsigned by adding 128 (xor 0x80), and the extra
 * 128 * sum(w) is subtracted per output channel afterwards. All of this is
 * modulo-2^32 integer arithmetic on values whose true sum is an int32 (the
 * lowering proves the accumulator cannot overflow), so the result is the
 * exact accumulator. Padding reads code 0, i.e. 0x80 after the shift; its
 * 128 * w is part of the same correction. vpmaddubsw is never used: it
 * saturates pairs to int16. The AVX2 path widens the same unsigned bytes to
 * int16 and uses vpmaddwd (pairs of 255 * 128 fit int32); the portable path
 * multiplies in C (uint32, wrapping by definition).
 *
 * Epilogue (spec §3 step 5, §10.7): v = rshift_round(acc + bias, r) with the
 * bias and rounding adds done in 64 bits by __ref. The SIMD paths compute the
 * same value in 32-bit lanes without overflow: with c = bias + 2^(r-1) split
 * as c = ch * 2^r + cl (0 <= cl < 2^r) and acc = q * 2^r + rem (q = acc >> r,
 * rem = acc & (2^r - 1)),
 *     (acc + c) >> r = q + ch + ((rem + cl) >> r),
 * where rem + cl < 2^32 is added and shifted as unsigned. q is clamped to
 * +-2^24 first (|ch| <= 2^15, so a clamped q saturates the same way), then the
 * ReLU / clip and the code range are one [lo, hi] clamp (see epi_init).
 *
 * Conv layouts. Grouped / normal convs run as GEMMs per (image, group):
 * Y[c_out/g][pixels] = W[c_out/g][K] * B[K][pixels], K = c_in/g * kh * kw,
 * on an 8x32 int32 micro-tile over the whole K (exact, so no K blocking is
 * needed for determinism), then the epilogue turns each row into codes.
 *  - stride 1 (not 1x1): implicit GEMM, B read in place from a once-built
 *    quad-interleaved padded input (see gemm_geom);
 *  - otherwise B is built per column block (im2col) in panels of NR = 32
 *    pixels, [K/4][NR][4] bytes: 4 consecutive k of one pixel form the dword
 *    vpdpbusd consumes; 1x1 stride-1 convs read their rows from the input.
 *  - W is stored in panels of MR = 8 output channels, [K/4][MR][4] int8 (for
 *    vpdpbusd's broadcast operand) and the same as int16 (for AVX2), plus
 *    sum(w) and sum|w| per channel; ac_conv_q8_pack() does it once per plan,
 *    otherwise the kernel packs the panels it needs into scratch.
 * Depthwise convs (one input channel per group, any channel multiplier):
 * plane by plane, straight from the NCHW input, with the filter's taps packed
 * once per plan (4 per dword). AVX-512 has three plane kernels, picked by
 * shape (dw512_plan_of): dword windows for rows of >= 32 outputs at stride_w
 * 1 / 2 / 4 (plain loads, no permute), whole rows gathered by vpermt2b for
 * narrow planes, vpermb windows of up to 16 outputs for the rest; AVX2 and
 * portable C work on a zero-padded copy of the plane.
 *
 * Threads: tiles (image*group, column block, row block) or planes or FC
 * features are split in contiguous ranges; tile sizes may depend on nth
 * because integer results do not depend on the order of the sums. */
#include "ac_int8_fast.h"
#include "ac_int8_fast_internal.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ac_round.h"

#define T_AVX2 __attribute__((target("avx2")))
#define T_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

enum {
    MR = 8,              /* weight panel rows (output channels) */
    NR = 32,             /* B panel columns (output pixels) */
    B_BLOCK_BYTES = 192 * 1024, /* packed B block target: stays in L2 */
    NB_MAX = 1024,       /* widest column block */
    ALIGN = 64,
    DW_SLACK = 64,       /* bytes after a padded depthwise plane: 64-byte loads */
    MAX_TAPS = 256,      /* implicit GEMM up to this kernel area (larger: im2col) */
    PACK_MAGIC = 0x38714341 /* "ACq8" */
};

static const uint8_t k_zero_row[NB_MAX + 16]; /* + the 16-byte over-reads of a row tail */

/* ---- ISA selection ------------------------------------------------------------------ */

bool ac_q8_isa_available(ac_q8_isa isa)
{
    switch (isa) {
    case AC_Q8_ISA_AVX512:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
    case AC_Q8_ISA_AVX2:
        return __builtin_cpu_supports("avx2");
    default:
        return true;
    }
}

ac_q8_isa ac_q8_isa_resolve(ac_q8_isa isa)
{
    if (isa == AC_Q8_ISA_PORTABLE)
        return AC_Q8_ISA_PORTABLE;
    if ((isa == AC_Q8_ISA_AUTO || isa == AC_Q8_ISA_AVX512) &&
        ac_q8_isa_available(AC_Q8_ISA_AVX512))
        return AC_Q8_ISA_AVX512;
    return ac_q8_isa_available(AC_Q8_ISA_AVX2) ? AC_Q8_ISA_AVX2 : AC_Q8_ISA_PORTABLE;
}

const char *ac_q8_isa_name(ac_q8_isa isa)
{
    switch (isa) {
    case AC_Q8_ISA_PORTABLE: return "portable";
    case AC_Q8_ISA_AVX2: return "avx2";
    case AC_Q8_ISA_AVX512: return "avx512vnni";
    default: return "auto";
    }
}

/* ---- small helpers -------------------------------------------------------------------- */

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int64_t round_up64(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
static int div_up(int v, int by) { return (v + by - 1) / by; }

static uint8_t *align_up(void *p)
{
    uintptr_t u = (uintptr_t)p;
    return (uint8_t *)((u + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

/* ---- epilogue --------------------------------------------------------------------------- */

/* Per output channel: what is added to the raw accumulator first (init), the
 * rounding shift and the final clamp.
 * - simple: when sum|w| * max|x| + |bias| + 2^(r-1) fits int32 (nearly every
 *   layer), init = corr + bias + 2^(r-1) and the code is clamp(acc >> r): the
 *   int32 sum is the exact 64-bit value of __ref;
 * - otherwise init = corr and the split rounding of the file comment applies.
 * corr = -128 * sum(w) for offset (signed) inputs, 0 otherwise. */
typedef struct {
    int32_t init;
    int32_t bias;
    int32_t r;
    int32_t simple;
    int32_t mask;   /* 2^r - 1 */
    int32_t cl, ch; /* bias + 2^(r-1) = ch * 2^r + cl */
    int32_t lo, hi; /* final clamp: ReLU / clip composed with the code range */
} epi_consts;

/* offset: the accumulator holds sum((x + 128) * w); wsum = sum(w); bound =
 * sum|w| * max|x| (a bound on |acc|), negative when unknown. */
static void epi_init(epi_consts *e, bool offset, int32_t wsum, int64_t bound, int32_t bias,
                     int32_t r, bool relu, int32_t clip_hi, bool y_signed)
{
    const uint32_t corr = offset ? 0u - (uint32_t)wsum * 128u : 0u;
    const int64_t half = r > 0 ? (int64_t)1 << (r - 1) : 0;
    e->simple = bound >= 0 && bound + (bias < 0 ? -(int64_t)bias : bias) + half <= INT32_MAX;
    e->init = (int32_t)(e->simple ? corr + (uint32_t)(int32_t)bias + (uint32_t)half : corr);
    e->bias = bias;
    e->r = r;
    e->mask = r > 0 ? (int32_t)((1u << r) - 1u) : 0;
    int64_t c = (int64_t)bias + half;
    int64_t ch = c >> r; /* arithmetic: floor */
    e->ch = (int32_t)ch;
    e->cl = (int32_t)(uint32_t)(c - ch * ((int64_t)1 << r));
    /* __ref: w = relu ? min(max(v, 0), clip_hi) : v, then saturation to
     * [ymin, ymax]. With relu and clip_hi >= 0 that is clamp(v, 0,
     * min(clip_hi, ymax)) (both ranges hold 0); with clip_hi < 0 it is the
     * constant sat(clip_hi). */
    int32_t ymin = y_signed ? -128 : 0, ymax = y_signed ? 127 : 255;
    if (!relu) {
        e->lo = ymin;
        e->hi = ymax;
    } else if (clip_hi >= 0) {
        e->lo = 0;
        e->hi = clip_hi < ymax ? clip_hi : ymax;
    } else {
        int32_t v = clip_hi < ymin ? ymin : clip_hi;
        e->lo = e->hi = v;
    }
}

/* One code from a raw accumulator; the general case in 64 bits as __ref does. */
static inline int32_t requant1(uint32_t acc_raw, const epi_consts *e)
{
    const int32_t a = (int32_t)(acc_raw + (uint32_t)e->init);
    int64_t v = e->simple ? (int64_t)(a >> e->r) : ac_rshift_round((int64_t)a + e->bias, e->r);
    if (v < e->lo)
        v = e->lo;
    if (v > e->hi)
        v = e->hi;
    return (int32_t)v;
}

static void epi_row_scalar(const int32_t *acc, int n, const epi_consts *e, uint8_t *dst)
{
    for (int j = 0; j < n; j++)
        dst[j] = (uint8_t)requant1((uint32_t)acc[j], e); /* two's complement byte */
}

T_AVX2 static inline __m256i requant8_avx2(__m256i acc, const epi_consts *e)
{
    const __m128i rc = _mm_cvtsi32_si128(e->r);
    acc = _mm256_add_epi32(acc, _mm256_set1_epi32(e->init));
    __m256i v;
    if (e->simple) {
        v = _mm256_sra_epi32(acc, rc);
    } else {
        __m256i q = _mm256_sra_epi32(acc, rc);
        __m256i rem = _mm256_and_si256(acc, _mm256_set1_epi32(e->mask));
        __m256i t = _mm256_srl_epi32(_mm256_add_epi32(rem, _mm256_set1_epi32(e->cl)), rc);
        q = _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(1 << 24)),
                             _mm256_set1_epi32(-(1 << 24)));
        v = _mm256_add_epi32(_mm256_add_epi32(q, _mm256_set1_epi32(e->ch)), t);
    }
    v = _mm256_max_epi32(v, _mm256_set1_epi32(e->lo));
    return _mm256_min_epi32(v, _mm256_set1_epi32(e->hi));
}

/* 8 codes (values already in the code range) to bytes, n <= 8 stored: the low
 * byte of each lane (two's complement for int8). */
T_AVX2 static inline void store8_avx2(__m256i v, uint8_t *dst, int n)
{
    __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    __m128i b = _mm_packus_epi16(_mm_and_si128(w16, _mm_set1_epi16(0xFF)), _mm_setzero_si128());
    if (n == 8) {
        _mm_storel_epi64((__m128i *)dst, b);
    } else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        memcpy(dst, tmp, (size_t)n);
    }
}

T_AVX2 static void epi_row_avx2(const int32_t *acc, int n, const epi_consts *e, uint8_t *dst)
{
    for (int j = 0; j < n; j += 8) {
        __m256i a;
        if (j + 8 <= n) {
            a = _mm256_loadu_si256((const __m256i *)(acc + j));
        } else {
            int32_t tmp[8] = {0};
            memcpy(tmp, acc + j, sizeof(int32_t) * (size_t)(n - j));
            a = _mm256_loadu_si256((const __m256i *)tmp);
        }
        store8_avx2(requant8_avx2(a, e), dst + j, imin(8, n - j));
    }
}

T_AVX512 static inline __m512i requant16_avx512(__m512i acc, const epi_consts *e)
{
    const __m128i rc = _mm_cvtsi32_si128(e->r);
    acc = _mm512_add_epi32(acc, _mm512_set1_epi32(e->init));
    __m512i v;
    if (e->simple) {
        v = _mm512_sra_epi32(acc, rc);
    } else {
        __m512i q = _mm512_sra_epi32(acc, rc);
        __m512i rem = _mm512_and_si512(acc, _mm512_set1_epi32(e->mask));
        __m512i t = _mm512_srl_epi32(_mm512_add_epi32(rem, _mm512_set1_epi32(e->cl)), rc);
        q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(1 << 24)),
                             _mm512_set1_epi32(-(1 << 24)));
        v = _mm512_add_epi32(_mm512_add_epi32(q, _mm512_set1_epi32(e->ch)), t);
    }
    v = _mm512_max_epi32(v, _mm512_set1_epi32(e->lo));
    return _mm512_min_epi32(v, _mm512_set1_epi32(e->hi));
}

/* Low byte of each lane (the code, two's complement for int8) for lanes < n. */
T_AVX512 static inline void store16_avx512(__m512i v, uint8_t *dst, int n)
{
    const __m128i b = _mm512_cvtepi32_epi8(v); /* register form: the memory form is slow */
    if (n >= 16)
        _mm_storeu_si128((__m128i *)dst, b);
    else
        _mm_mask_storeu_epi8(dst, (__mmask16)((1u << n) - 1u), b);
}

T_AVX512 static void epi_row_avx512(const int32_t *acc, int n, const epi_consts *e, uint8_t *dst)
{
    for (int j = 0; j < n; j += 16) {
        int cnt = imin(16, n - j);
        __mmask16 m = cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cnt) - 1u);
        __m512i a = _mm512_maskz_loadu_epi32(m, acc + j);
        store16_avx512(requant16_avx512(a, e), dst + j, cnt);
    }
}

/* Bits [lo, hi) of a 64-bit mask (clipped to [0, 64]). */
static uint64_t range_mask64(int64_t lo, int64_t hi)
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > 64 ? 64 : hi;
    if (hi <= lo)
        return 0;
    const uint64_t below_hi = hi >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1;
    return below_hi & ~(((uint64_t)1 << lo) - 1);
}

/* Bytes [off, off + n) of v stored at dst, n <= 32, with plain stores:
 * masked byte stores cost several times a plain store here. n >= 16: two
 * (possibly overlapping) 16-byte stores, the second of v shifted by one
 * vpermb; n == 32 one store; smaller n masked. */
T_AVX512 static inline void store_bytes_avx512(uint8_t *dst, __m512i v, int off, int n)
{
    static const uint8_t iota[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
        44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    const __m512i io = _mm512_loadu_si512(iota);
    if (n == 32) {
        _mm256_storeu_si256((__m256i *)dst,
                            _mm512_castsi512_si256(off ? _mm512_permutexvar_epi8(
                                                             _mm512_add_epi8(io, _mm512_set1_epi8((char)off)), v)
                                                       : v));
    } else if (n >= 16) {
        const __m512i a = _mm512_permutexvar_epi8(_mm512_add_epi8(io, _mm512_set1_epi8((char)off)), v);
        const __m512i b =
            _mm512_permutexvar_epi8(_mm512_add_epi8(io, _mm512_set1_epi8((char)(off + n - 16))), v);
        _mm_storeu_si128((__m128i *)dst, _mm512_castsi512_si128(a));
        _mm_storeu_si128((__m128i *)(dst + n - 16), _mm512_castsi512_si128(b));
    } else if (n > 0) {
        const __m512i a = _mm512_permutexvar_epi8(_mm512_add_epi8(io, _mm512_set1_epi8((char)off)), v);
        _mm_mask_storeu_epi8(dst, (__mmask16)((1u << n) - 1u), _mm512_castsi512_si128(a));
    }
}

/* Bytes [0, n) of v at dst, n <= 64: plain stores (see store_bytes_avx512). */
T_AVX512 static inline void store64_avx512(uint8_t *dst, __m512i v, int n)
{
    if (n >= 64) {
        _mm512_storeu_si512(dst, v);
    } else if (n > 32) {
        _mm256_storeu_si256((__m256i *)dst, _mm512_castsi512_si256(v));
        store_bytes_avx512(dst + n - 32, v, n - 32, 32);
    } else {
        store_bytes_avx512(dst, v, 0, n);
    }
}

/* 64 int32 lanes (4 vectors, each value already shifted) to codes: the
 * saturating packs (dword -> word -> byte) are the clamp to the code range,
 * and a byte max / min narrows it to [lo, hi] (ReLU / clip) when needed.
 * The packs interleave 128-bit lanes: byte 16j + 4t + i of the result is lane
 * 4j + i of vector t (callers permute). */
typedef struct {
    __m512i lo8, hi8; /* byte clamp, when narrower than the code range */
    bool y_signed, clamp_lo, clamp_hi;
} codes_clamp;

T_AVX512 static void codes_clamp_init(codes_clamp *c, const epi_consts *e, bool y_signed)
{
    c->y_signed = y_signed;
    c->clamp_lo = e->lo > (y_signed ? -128 : 0);
    c->clamp_hi = e->hi < (y_signed ? 127 : 255);
    c->lo8 = _mm512_set1_epi8((char)e->lo);
    c->hi8 = _mm512_set1_epi8((char)e->hi);
}

T_AVX512 static inline __attribute__((always_inline)) __m512i
codes_pack64(const codes_clamp *c, __m512i a0, __m512i a1, __m512i a2, __m512i a3)
{
    __m512i r;
    if (c->y_signed) {
        r = _mm512_packs_epi16(_mm512_packs_epi32(a0, a1), _mm512_packs_epi32(a2, a3));
        if (c->clamp_lo)
            r = _mm512_max_epi8(r, c->lo8);
        if (c->clamp_hi)
            r = _mm512_min_epi8(r, c->hi8);
    } else {
        /* packs, not packus, first: packus_epi16 reads its words as signed */
        r = _mm512_packus_epi16(_mm512_packs_epi32(a0, a1), _mm512_packs_epi32(a2, a3));
        if (c->clamp_lo)
            r = _mm512_max_epu8(r, c->lo8);
        if (c->clamp_hi)
            r = _mm512_min_epu8(r, c->hi8);
    }
    return r;
}

/* ---- GEMM geometry and weight packing ---------------------------------------------------- */

/* Two ways to feed B:
 * - implicit: the input of one (image, group) is stored once as
 *   xq[phase][c/4][hp][wp][4] (4 channels per dword, zero-padded planes hp x
 *   wp). Stride phases: input row sh*oh - pt + ky*dh = sh*(oh + qy) + ry with
 *   0 <= ry < sh, so tap row ky of output row oh is row oh + qy - qy0 of
 *   phase ry's plane (its rows sh*(r + qy0) + ry of the input); columns
 *   alike. Stride 1 has one phase (the padded plane itself); a strided conv
 *   stores each input byte once (no im2col). With outputs computed on the
 *   padded grid (j = oh * wp + ow, ow < wp), the input of tap t for output j
 *   is at j + tapoff[t]: 32 consecutive outputs read 128 contiguous bytes.
 *   Columns ow >= w_out are computed and dropped. K is ordered (tap, channel
 *   quad).
 * - im2col (pointwise stride 1, huge kernels, strides over 4): B blocks are
 *   built per column block in panels of NR pixels ([kq][NR][4]); K is
 *   ordered (channel, ky, kx) as in OIHW. */
enum {
    MAX_PHASE_STRIDE = 4,
    TM = 32 /* output channels per channels-in-lanes tile (conv_gemm_t7) */
};

/* Pixels per channels-in-lanes tile for this output width, 0: none. 14 only
 * for spatial kernels (measured: with a 1x1 kernel's small K the transposed
 * epilogue costs more than the grid columns it saves). */
static int ukt_width(const ac_conv2d_shape *s)
{
    if (s->w_out == 7)
        return 7;
    return s->w_out % 14 == 0 && s->kh * s->kw > 1 ? 14 : 0;
}

typedef struct {
    int cin_g, cout_g;
    int k;       /* K */
    bool implicit;
    int taps;    /* implicit: kh * kw; im2col: 1 */
    int cq;      /* quads per tap: implicit ceil(cin_g / 4); im2col kq */
    int kq;      /* quads of K: taps * cq */
    int hp, wp;  /* implicit: padded phase plane */
    int qy0, qx0;               /* implicit: lowest qy, qx (row / column shift of tap 0) */
    int nry, nrx;               /* implicit: phases used along rows / columns */
    int8_t iry[MAX_PHASE_STRIDE], irx[MAX_PHASE_STRIDE]; /* phase index of ry / rx, -1 unused */
    int8_t ry[MAX_PHASE_STRIDE], rx[MAX_PHASE_STRIDE];   /* used phases in order */
    int n;       /* output columns per image: implicit h_out * wp, else h_out * w_out */
    int npan;    /* weight panels per group */
    int nb;      /* column block (multiple of NR) */
} gemm_geom;

static bool conv_is_pointwise(const ac_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_left == 0 && s->h_out == s->h_in && s->w_out == s->w_in;
}

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Phases of one dimension: taps k*dil - pad = stride*q + r; the q range and
 * the used r, in increasing r. Returns the number of rows / columns the phase
 * planes add to the output's. */
static int phase_dim(int kn, int dil, int pad, int stride, int *q0, int8_t *idx, int8_t *used,
                     int *nused)
{
    int qmin = 0, qmax = 0;
    memset(idx, -1, MAX_PHASE_STRIDE);
    for (int kk = 0; kk < kn; kk++) {
        const int v = kk * dil - pad, q = floor_div(v, stride), r = v - q * stride;
        qmin = kk == 0 || q < qmin ? q : qmin;
        qmax = kk == 0 || q > qmax ? q : qmax;
        idx[r] = 1;
    }
    *nused = 0;
    for (int r = 0; r < stride; r++)
        if (idx[r] > 0) {
            used[*nused] = (int8_t)r;
            idx[r] = (int8_t)(*nused)++;
        }
    *q0 = qmin;
    return qmax - qmin;
}

static void gemm_geom_of(const ac_conv2d_shape *s, gemm_geom *g)
{
    g->cin_g = s->groups > 0 ? s->c_in / s->groups : 0;
    g->cout_g = s->groups > 0 ? s->c_out / s->groups : 0;
    g->k = g->cin_g * s->kh * s->kw;
    /* pointwise convs keep the im2col path: its B rows are the input rows, packed
     * block by block so each block stays in L2 (faster than a whole-plane xq);
     * but 7-wide outputs take the channels-in-lanes tiles of conv_gemm_t7 */
    g->implicit = s->stride_h <= MAX_PHASE_STRIDE && s->stride_w <= MAX_PHASE_STRIDE &&
                  s->kh * s->kw <= MAX_TAPS && (!conv_is_pointwise(s) || s->w_out == 7);
    if (g->implicit) {
        g->taps = s->kh * s->kw;
        g->cq = div_up(g->cin_g, 4);
        g->hp = s->h_out + phase_dim(s->kh, s->dil_h, s->pad_top, s->stride_h, &g->qy0, g->iry,
                                     g->ry, &g->nry);
        g->wp = s->w_out + phase_dim(s->kw, s->dil_w, s->pad_left, s->stride_w, &g->qx0, g->irx,
                                     g->rx, &g->nrx);
        g->n = s->h_out * g->wp;
    } else {
        g->taps = 1;
        g->cq = div_up(g->k, 4);
        g->hp = g->wp = 0;
        g->nry = g->nrx = 0;
        g->n = s->h_out * s->w_out;
    }
    g->kq = g->taps * g->cq;
    g->npan = div_up(g->cout_g, MR);
    int nb = B_BLOCK_BYTES / (imax(g->kq, 1) * 4) / NR * NR;
    nb = imax(NR, imin(nb, NB_MAX));
    g->nb = imin(nb, (int)round_up64(imax(g->n, 1), NR));
}

/* implicit: bytes of one phase plane of xq */
static int64_t xq_phase_bytes(const gemm_geom *g) { return (int64_t)g->cq * g->hp * g->wp * 4; }

/* implicit: offset in xq of tap t's input for output column 0 */
static int64_t xq_tap_offset(const ac_conv2d_shape *s, const gemm_geom *g, int t)
{
    const int vy = (t / s->kw) * s->dil_h - s->pad_top, vx = (t % s->kw) * s->dil_w - s->pad_left;
    const int qy = floor_div(vy, s->stride_h), qx = floor_div(vx, s->stride_w);
    const int ph = g->iry[vy - qy * s->stride_h] * g->nrx + g->irx[vx - qx * s->stride_w];
    return ph * xq_phase_bytes(g) + ((int64_t)(qy - g->qy0) * g->wp + (qx - g->qx0)) * 4;
}

/* implicit: bytes of xq plus the slack its last reads run into */
static size_t xq_bytes(const ac_conv2d_shape *s, const gemm_geom *g)
{
    return (size_t)(xq_phase_bytes(g) * g->nry * g->nrx) + 4 * ((size_t)(g->wp - s->w_out) + NR) +
           ALIGN;
}

static size_t panel_s8_bytes(const gemm_geom *g) { return (size_t)g->kq * MR * 4; }

/* Packed weights: a 64-byte header, then every panel as int8, every panel as
 * int16, then per output channel sum(w) and sum|w|. */
typedef struct {
    uint32_t magic;
    int32_t c_out, k, groups, mr, kq, implicit;
    int32_t max_sabs; /* largest sum|w| of a filter: bounds every accumulator */
} pack_header;

static size_t pack_off_i16(const ac_conv2d_shape *s, const gemm_geom *g)
{
    return ALIGN + (size_t)s->groups * g->npan * panel_s8_bytes(g);
}

static size_t pack_off_sums(const ac_conv2d_shape *s, const gemm_geom *g)
{
    return pack_off_i16(s, g) + 2 * (size_t)s->groups * g->npan * panel_s8_bytes(g);
}

/* Index into a filter ([c_in/g][kh][kw]) of byte i of quad q, -1 for padding. */
static int quad_k(const ac_conv2d_shape *s, const gemm_geom *g, int q, int i)
{
    if (!g->implicit) {
        int k = 4 * q + i;
        return k < g->k ? k : -1;
    }
    const int tap = q / g->cq, ci = 4 * (q % g->cq) + i;
    return ci < g->cin_g ? ci * s->kh * s->kw + tap : -1;
}

/* One panel: filters [0, rows) of w (stride k) into s8 / i16 ([kq][MR][4]),
 * zero rows and padding past the end; sums[r] = {sum(w), sum|w|} (rows only). */
static void pack_panel(const ac_conv2d_shape *s, const gemm_geom *g, const int8_t *w, int rows,
                       int8_t *s8, int16_t *i16, int32_t (*sums)[2])
{
    for (int q = 0; q < g->kq; q++)
        for (int i = 0; i < 4; i++) {
            const int k = quad_k(s, g, q, i);
            for (int r = 0; r < MR; r++) {
                int8_t v = r < rows && k >= 0 ? w[(int64_t)r * g->k + k] : 0;
                s8[(q * MR + r) * 4 + i] = v;
                i16[(q * MR + r) * 4 + i] = v;
            }
        }
    for (int r = 0; r < rows; r++) {
        int32_t sum = 0, sabs = 0;
        for (int kk = 0; kk < g->k; kk++) {
            int v = w[(int64_t)r * g->k + kk];
            sum += v;
            sabs += v < 0 ? -v : v;
        }
        sums[r][0] = sum;
        sums[r][1] = sabs;
    }
}

static bool conv_is_direct_dw(const ac_conv2d_shape *s)
{
    return s->groups > 1 && s->c_in == s->groups;
}

static bool conv_is_empty(const ac_conv2d_shape *s)
{
    return s->n <= 0 || s->c_out <= 0 || s->h_out <= 0 || s->w_out <= 0 || s->groups <= 0;
}

static size_t dw_pack_bytes(const ac_conv2d_shape *s);
static void dw_pack(const ac_conv_q8_params *p, uint8_t *base);

size_t ac_conv_q8_pack_bytes(const ac_conv_q8_params *p)
{
    const ac_conv2d_shape *s = &p->s;
    if (conv_is_empty(s))
        return 0;
    if (conv_is_direct_dw(s))
        return dw_pack_bytes(s);
    gemm_geom g;
    gemm_geom_of(s, &g);
    return pack_off_sums(s, &g) + 2 * sizeof(int32_t) * (size_t)s->c_out;
}

void ac_conv_q8_pack(const ac_conv_q8_params *p, void *packed)
{
    const ac_conv2d_shape *s = &p->s;
    if (ac_conv_q8_pack_bytes(p) == 0)
        return;
    if (conv_is_direct_dw(s)) {
        dw_pack(p, packed);
        return;
    }
    gemm_geom g;
    gemm_geom_of(s, &g);
    uint8_t *base = packed;
    pack_header h = {PACK_MAGIC, s->c_out, g.k, s->groups, MR, g.kq, g.implicit, 0};
    memset(base, 0, ALIGN);
    int32_t(*sums)[2] = (int32_t(*)[2])(void *)(base + pack_off_sums(s, &g));
    for (int gr = 0; gr < s->groups; gr++)
        for (int pi = 0; pi < g.npan; pi++) {
            size_t idx = (size_t)gr * g.npan + pi;
            int r0 = pi * MR, rows = imin(MR, g.cout_g - r0);
            int oc0 = gr * g.cout_g + r0;
            int32_t ps[MR][2];
            pack_panel(s, &g, p->w + (int64_t)oc0 * g.k, rows,
                       (int8_t *)(base + ALIGN + idx * panel_s8_bytes(&g)),
                       (int16_t *)(void *)(base + pack_off_i16(s, &g) + 2 * idx * panel_s8_bytes(&g)),
                       ps);
            memcpy(sums + oc0, ps, sizeof(int32_t) * 2 * (size_t)rows);
            for (int r = 0; r < rows; r++)
                h.max_sabs = imax(h.max_sabs, ps[r][1]);
        }
    memcpy(base, &h, sizeof h);
}

static bool packed_matches(const ac_conv_q8_params *p, const gemm_geom *g)
{
    if (!p->w_packed)
        return false;
    pack_header h;
    memcpy(&h, p->w_packed, sizeof h);
    return h.magic == PACK_MAGIC && h.c_out == p->s.c_out && h.k == g->k &&
           h.groups == p->s.groups && h.mr == MR && h.kq == g->kq && h.implicit == g->implicit;
}

/* Columns c of [0, n) whose input column sw * c + off lies in [0, w_in): [*lo, *hi). */
static void valid_range(int off, int sw, int w_in, int n, int *lo, int *hi)
{
    const int l = off >= 0 ? 0 : (-off + sw - 1) / sw;
    const int h = w_in - 1 - off < 0 ? 0 : (w_in - 1 - off) / sw + 1;
    *hi = imax(0, imin(h, n));
    *lo = imin(l, *hi);
}

/* ---- B packing (im2col into quad panels) --------------------------------------------------- */

/* dst[c - c0] = src[sw * c + off] for c in [c0, c1) whose column sw * c + off
 * lies in [0, w_in), 0 for the others (padding). Reads stay inside the row. */
static void gather_cols(uint8_t *dst, const uint8_t *src, int sw, int off, int c0, int c1,
                        int w_in, const uint8_t *xend)
{
    int lo, hi;
    valid_range(off, sw, w_in, c1, &lo, &hi);
    lo = imax(imin(lo, c1), c0);
    hi = imax(hi, lo);
    memset(dst, 0, (size_t)(lo - c0));
    int c = lo;
    if (sw == 1) {
        memcpy(dst + (lo - c0), src + lo + off, (size_t)(hi - lo));
        c = hi;
    } else if (sw == 2) {
        /* even bytes of 32: mask to 16-bit lanes, pack; the reads may run past the
         * row (not past xend), a last partial group goes through a buffer */
        const __m128i m = _mm_set1_epi16(0x00FF);
        for (; c < hi && (size_t)(xend - (src + 2 * c + off)) >= 32; c += 16) {
            const uint8_t *sp = src + 2 * c + off;
            const __m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)sp), m);
            const __m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(sp + 16)), m);
            if (c + 16 <= hi) {
                _mm_storeu_si128((__m128i *)(dst + (c - c0)), _mm_packus_epi16(a, b));
            } else {
                uint8_t t16[16];
                _mm_storeu_si128((__m128i *)t16, _mm_packus_epi16(a, b));
                memcpy(dst + (c - c0), t16, (size_t)(hi - c));
                c = hi;
                break;
            }
        }
    }
    for (; c < hi; c++)
        dst[c - c0] = src[sw * c + off];
    memset(dst + (hi - c0), 0, (size_t)(c1 - hi));
}

/* Row k of the im2col matrix for output pixels [j0, j0 + nb): codes, 0 for
 * padding (xend: the end of the input tensor). */
static void im2col_row(uint8_t *row, const ac_conv2d_shape *s, const uint8_t *xg,
                       const uint8_t *xend, int k, int j0, int nb)
{
    const int ksz = s->kh * s->kw;
    const int ci = k / ksz, ky = (k % ksz) / s->kw, kx = k % s->kw;
    const uint8_t *xc = xg + ci * (int64_t)s->h_in * s->w_in;
    const int off = kx * s->dil_w - s->pad_left;
    for (int j = j0; j < j0 + nb;) {
        const int oh = j / s->w_out, ow_a = j % s->w_out;
        const int ow_b = imin(s->w_out, ow_a + (j0 + nb - j));
        uint8_t *d = row + (j - j0); /* d[ow - ow_a] for ow in [ow_a, ow_b) */
        const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
        if (ih < 0 || ih >= s->h_in)
            memset(d, 0, (size_t)(ow_b - ow_a));
        else
            gather_cols(d, xc + (int64_t)ih * s->w_in, s->stride_w, off, ow_a, ow_b, s->w_in, xend);
        j += ow_b - ow_a;
    }
}

/* Interleave rows[0..3] (nb valid bytes each) into quad q of the panels of bp:
 * byte (panel P, q, pixel jj, i) = rows[i][P*NR + jj] ^ flip, pixels past nb = 0 ^ flip. */
static void interleave_quad(uint8_t *bp, int kq, int q, const uint8_t *const rows[4], int nb,
                            uint8_t flip)
{
    const __m128i f = _mm_set1_epi8((char)flip);
    int j = 0;
    for (; j + 16 <= nb; j += 16) {
        __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[0] + j)), f);
        __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[1] + j)), f);
        __m128i c = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[2] + j)), f);
        __m128i d = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[3] + j)), f);
        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        uint8_t *dst = bp + ((int64_t)(j / NR) * kq + q) * NR * 4 + (j % NR) * 4;
        _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(dst + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_storeu_si128((__m128i *)(dst + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
    const int end = (int)round_up64(nb, NR);
    for (; j < end; j++) {
        uint8_t *dst = bp + ((int64_t)(j / NR) * kq + q) * NR * 4 + (j % NR) * 4;
        for (int i = 0; i < 4; i++)
            dst[i] = (uint8_t)((j < nb ? rows[i][j] : 0) ^ flip);
    }
}

/* B block for pixels [j0, j0 + nb) of one (image, group) input xg. */
static void pack_b(uint8_t *bp, uint8_t *rowbuf, const ac_conv2d_shape *s, const gemm_geom *g,
                   const uint8_t *xend,
                   const uint8_t *xg, int j0, int nb, uint8_t flip)
{
    const bool direct = conv_is_pointwise(s);
    const int64_t plane = (int64_t)s->h_in * s->w_in;
    for (int q = 0; q < g->kq; q++) {
        const uint8_t *rows[4];
        for (int i = 0; i < 4; i++) {
            int k = 4 * q + i;
            if (k >= g->k) {
                rows[i] = k_zero_row;
            } else if (direct) {
                rows[i] = xg + k * plane + j0;
            } else {
                uint8_t *r = rowbuf + (size_t)i * (NB_MAX + 16);
                im2col_row(r, s, xg, xend, k, j0, nb);
                rows[i] = r;
            }
        }
        interleave_quad(bp, g->kq, q, rows, nb, flip);
    }
}

/* ---- GEMM micro-kernels --------------------------------------------------------------------
 * c[MR][NR] = sum over taps t and quads q < cq of the weight panel (quad t*cq + q)
 * times B(t, q) = b + tapoff[t] + q * bstride, NR dwords (4 bytes of one pixel). */
typedef struct {
    int taps, cq;
    const int64_t *tapoff;
    int64_t bstride;
} b_walk;

static void uk_portable(const b_walk *bw, const int8_t *w, const uint8_t *b, int32_t *c)
{
    uint32_t acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int t = 0; t < bw->taps; t++)
        for (int q = 0; q < bw->cq; q++) {
            const uint8_t *bq = b + bw->tapoff[t] + q * bw->bstride;
            for (int r = 0; r < MR; r++) {
                const int8_t *wr = w + r * 4;
                for (int j = 0; j < NR; j++) {
                    const uint8_t *bj = bq + j * 4;
                    acc[r][j] += (uint32_t)((int32_t)bj[0] * wr[0] + (int32_t)bj[1] * wr[1] +
                                            (int32_t)bj[2] * wr[2] + (int32_t)bj[3] * wr[3]);
                }
            }
            w += MR * 4;
        }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++)
            c[r * NR + j] = (int32_t)acc[r][j];
}

/* 4 rows x 8 pixels with vpmaddwd: unsigned bytes widened to int16, weights as
 * int16 (w points at row 0 of the 4, panel stride MR*4); each dword holds the sum
 * of 2 of a pixel's 4 products, the halves are added at the end (hadd). */
T_AVX2 static void uk_4x8_avx2(const b_walk *bw, const int16_t *w, const uint8_t *b, int32_t *c)
{
    __m256i a00 = _mm256_setzero_si256(), a01 = _mm256_setzero_si256();
    __m256i a10 = _mm256_setzero_si256(), a11 = _mm256_setzero_si256();
    __m256i a20 = _mm256_setzero_si256(), a21 = _mm256_setzero_si256();
    __m256i a30 = _mm256_setzero_si256(), a31 = _mm256_setzero_si256();
    for (int t = 0; t < bw->taps; t++) {
        const uint8_t *bq = b + bw->tapoff[t];
        for (int q = 0; q < bw->cq; q++, bq += bw->bstride, w += MR * 4) {
            const __m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)bq));
            const __m256i x1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bq + 16)));
            int64_t wv;
            __m256i ww;
#define AC_ROW(r, lo, hi)                                                                    \
    memcpy(&wv, w + (r) * 4, sizeof wv);                                                     \
    ww = _mm256_set1_epi64x(wv);                                                             \
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(x0, ww));                                    \
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(x1, ww));
            AC_ROW(0, a00, a01)
            AC_ROW(1, a10, a11)
            AC_ROW(2, a20, a21)
            AC_ROW(3, a30, a31)
#undef AC_ROW
        }
    }
    /* hadd gives pixels 0,1,4,5 | 2,3,6,7; the permute restores 0..7 */
    _mm256_storeu_si256((__m256i *)c,
                        _mm256_permute4x64_epi64(_mm256_hadd_epi32(a00, a01), 0xD8));
    _mm256_storeu_si256((__m256i *)(c + NR),
                        _mm256_permute4x64_epi64(_mm256_hadd_epi32(a10, a11), 0xD8));
    _mm256_storeu_si256((__m256i *)(c + 2 * NR),
                        _mm256_permute4x64_epi64(_mm256_hadd_epi32(a20, a21), 0xD8));
    _mm256_storeu_si256((__m256i *)(c + 3 * NR),
                        _mm256_permute4x64_epi64(_mm256_hadd_epi32(a30, a31), 0xD8));
}

T_AVX2 static void uk_avx2(const b_walk *bw, const int16_t *w, const uint8_t *b, int32_t *c)
{
    for (int r0 = 0; r0 < MR; r0 += 4)
        for (int j0 = 0; j0 < NR; j0 += 8)
            uk_4x8_avx2(bw, w + r0 * 4, b + j0 * 4, c + r0 * NR + j0);
}

/* The 8x32 accumulation: c[2r], c[2r+1] (pixels 0-15, 16-31 of row r) start
 * as given. Constant indices only, so the array lives in registers. */
T_AVX512 static inline __attribute__((always_inline)) void
uk_8x32_loop_avx512(const b_walk *bw, const int8_t *w, const uint8_t *b, __m512i *c)
{
    const int64_t bstride = bw->bstride;
    for (int t = 0; t < bw->taps; t++) {
        const uint8_t *bq = b + bw->tapoff[t];
        for (int q = 0; q < bw->cq; q++, bq += bstride, w += MR * 4) {
            const __m512i b0 = _mm512_loadu_si512(bq);
            const __m512i b1 = _mm512_loadu_si512(bq + 64);
            int32_t wv;
            __m512i ww;
#define AC_ROW(r)                                                                            \
    memcpy(&wv, w + (r) * 4, sizeof wv);                                                     \
    ww = _mm512_set1_epi32(wv);                                                              \
    c[2 * (r)] = _mm512_dpbusd_epi32(c[2 * (r)], b0, ww);                                    \
    c[2 * (r) + 1] = _mm512_dpbusd_epi32(c[2 * (r) + 1], b1, ww);
            AC_ROW(0)
            AC_ROW(1)
            AC_ROW(2)
            AC_ROW(3)
            AC_ROW(4)
            AC_ROW(5)
            AC_ROW(6)
            AC_ROW(7)
#undef AC_ROW
        }
    }
}

T_AVX512 static void uk_8x32_avx512(const b_walk *bw, const int8_t *w, const uint8_t *b,
                                    int32_t *c)
{
    __m512i acc[16];
#define AC_Z(r) acc[2 * (r)] = acc[2 * (r) + 1] = _mm512_setzero_si512();
    AC_Z(0) AC_Z(1) AC_Z(2) AC_Z(3) AC_Z(4) AC_Z(5) AC_Z(6) AC_Z(7)
#undef AC_Z
    uk_8x32_loop_avx512(bw, w, b, acc);
#define AC_ST(r)                                                                             \
    _mm512_storeu_si512(c + (r) * NR, acc[2 * (r)]);                                         \
    _mm512_storeu_si512(c + (r) * NR + 16, acc[2 * (r) + 1]);
    AC_ST(0) AC_ST(1) AC_ST(2) AC_ST(3) AC_ST(4) AC_ST(5) AC_ST(6) AC_ST(7)
#undef AC_ST
}

/* The same tile with the simple epilogue fused (every row's constants simple):
 * accumulators start at their row's init, codes = clamp(acc >> r), packed two
 * rows per 64 bytes; rows < `rows` and columns < nc stored, row r at dst +
 * r * dstride (ec holds `rows` entries). No int32 tile round trip. */
T_AVX512 static void uk_8x32_codes_avx512(const b_walk *bw, const int8_t *w, const uint8_t *b,
                                          const epi_consts *ec, const codes_clamp *cc,
                                          uint8_t *dst, int64_t dstride, int rows, int nc)
{
    __m512i acc[16];
#define AC_I(rr_) acc[2 * (rr_)] = acc[2 * (rr_) + 1] = _mm512_set1_epi32((rr_) < rows ? ec[rr_].init : 0);
    AC_I(0) AC_I(1) AC_I(2) AC_I(3) AC_I(4) AC_I(5) AC_I(6) AC_I(7)
#undef AC_I
    uk_8x32_loop_avx512(bw, w, b, acc);
    /* after codes_pack64, byte 16j + 4t + i is lane 4j + i of vector t: rows
     * 2m (t = 0, 1) and 2m + 1 (t = 2, 3) to bytes [0, 32) and [32, 64) */
    uint8_t idx[64];
    for (int t = 0; t < 4; t++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 4; i++)
                idx[32 * (t / 2) + 16 * (t % 2) + 4 * j + i] = (uint8_t)(16 * j + 4 * t + i);
    const __m512i perm = _mm512_loadu_si512(idx);
#define AC_PAIR(rr_)                                                                           \
    if ((rr_) < rows) {                                                                        \
        const __m128i ra = _mm_cvtsi32_si128(ec[rr_].r);                                      \
        const __m128i rb = _mm_cvtsi32_si128((rr_) + 1 < rows ? ec[(rr_) + 1].r : 0);             \
        const __m512i v = _mm512_permutexvar_epi8(                                           \
            perm, codes_pack64(cc, _mm512_sra_epi32(acc[2 * (rr_)], ra),                       \
                               _mm512_sra_epi32(acc[2 * (rr_) + 1], ra),                       \
                               _mm512_sra_epi32(acc[2 * (rr_) + 2], rb),                       \
                               _mm512_sra_epi32(acc[2 * (rr_) + 3], rb)));                     \
        store_bytes_avx512(dst + (rr_) * dstride, v, 0, nc);                                 \
        if ((rr_) + 1 < rows)                                                                  \
            store_bytes_avx512(dst + ((rr_) + 1) * dstride, v, 32, nc);                        \
    }
    AC_PAIR(0) AC_PAIR(2) AC_PAIR(4) AC_PAIR(6)
#undef AC_PAIR
}

/* ---- implicit B: the quad-interleaved padded input ----------------------------------------- */

/* dst[j][i] = rows[i][j] ^ flip for j < n (4 rows into n dwords). tail_ok:
 * the rows may be read 16 bytes past n and dst written 64 bytes past 4n, so
 * the last partial group of 16 needs no scalar loop. */
static void interleave4(uint8_t *dst, const uint8_t *const rows[4], int n, uint8_t flip,
                        bool tail_ok)
{
    const __m128i f = _mm_set1_epi8((char)flip);
    int j = 0;
    for (; j + 16 <= n || (tail_ok && j < n); j += 16) {
        __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[0] + j)), f);
        __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[1] + j)), f);
        __m128i c = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[2] + j)), f);
        __m128i d = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(rows[3] + j)), f);
        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        uint8_t *o = dst + (int64_t)j * 4;
        _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
    for (; j < n; j++)
        for (int i = 0; i < 4; i++)
            dst[(int64_t)j * 4 + i] = rows[i][j] ^ flip;
}


/* One padded phase row of xq with AVX-512 (stride_w 1 or 2): dst[c][i] =
 * row i's byte at column sw * c + off (0 outside [0, w_in); rows[i] NULL:
 * all 0), ^ flip, for c < n. 16 columns of the 4 rows take one vpermt2b
 * (4 loads of 16 * sw bytes into two registers), its zero mask the padding;
 * 64-byte stores, so up to 63 bytes past 4n are written. [xbeg, xend): the
 * input tensor (loads that would leave it are masked). */
T_AVX512 static void xq_row_avx512(uint8_t *dst, const uint8_t *const rows[4], int sw, int off,
                                   int n, int w_in, uint8_t flip, const uint8_t *xbeg,
                                   const uint8_t *xend)
{
    uint8_t ix[64];
    for (int c = 0; c < 16; c++) /* rows 0, 1 in the first register, 2, 3 in the second */
        for (int i = 0; i < 4; i++)
            ix[4 * c + i] = (uint8_t)((i / 2) * 64 + (i % 2) * 16 * sw + sw * c);
    const __m512i idx = _mm512_loadu_si512(ix), fv = _mm512_set1_epi8((char)flip);
    int lo, hi;
    valid_range(off, sw, w_in, n, &lo, &hi);
    const int span = 16 * sw; /* input bytes of 16 columns */
    for (int c0 = 0; c0 < n; c0 += 16) {
        __m256i part[4];
        for (int i = 0; i < 4; i++) {
            part[i] = _mm256_setzero_si256();
            if (!rows[i])
                continue;
            const uint8_t *p = rows[i] + sw * c0 + off; /* may lie outside the tensor */
            if ((uintptr_t)p >= (uintptr_t)xbeg && (uintptr_t)p + (uintptr_t)span <= (uintptr_t)xend)
                part[i] = sw == 1 ? _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p))
                                  : _mm256_loadu_si256((const __m256i *)p);
            else /* bytes inside the tensor only; the address in integers */
                part[i] = _mm256_maskz_loadu_epi8(
                    (__mmask32)range_mask64((int64_t)((uintptr_t)xbeg - (uintptr_t)p),
                                            (int64_t)((uintptr_t)xend - (uintptr_t)p)) &
                        (__mmask32)range_mask64(0, span),
                    p);
        }
        const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(sw == 1 ? _mm256_inserti128_si256(part[0], _mm256_castsi256_si128(part[1]), 1) : part[0]),
                                             sw == 1 ? _mm256_setzero_si256() : part[1], 1);
        const __m512i b = _mm512_inserti64x4(_mm512_castsi256_si512(sw == 1 ? _mm256_inserti128_si256(part[2], _mm256_castsi256_si128(part[3]), 1) : part[2]),
                                             sw == 1 ? _mm256_setzero_si256() : part[3], 1);
        /* columns c0 + c inside [lo, hi): their 4 bytes kept, padding zeroed */
        const uint64_t keep = range_mask64(4 * (int64_t)(lo - c0), 4 * (int64_t)(hi - c0));
        const __m512i v = _mm512_maskz_permutex2var_epi8(keep, a, idx, b);
        _mm512_storeu_si512(dst + 4 * (int64_t)c0, _mm512_xor_si512(v, fv));
    }
}

/* xq[phase][c/4][hp][wp][4] of one (image, group) input xg (see gemm_geom):
 * padding and channels past cin_g read code 0; the slack after it is filled
 * too (its reads are dropped). [xbeg, xend): the input tensor. */
static void build_xq(uint8_t *xq, uint8_t *rowbuf, const ac_conv2d_shape *s, const gemm_geom *g,
                     const uint8_t *xbeg, const uint8_t *xend, const uint8_t *xg, uint8_t flip,
                     ac_q8_isa isa)
{
    const int64_t plane = (int64_t)s->h_in * s->w_in;
    const size_t rowcap = (size_t)imax(NB_MAX, g->wp) + 16;
    const bool vbmi = isa == AC_Q8_ISA_AVX512 && s->stride_w <= 2;
    for (int py = 0; py < g->nry; py++)
        for (int px = 0; px < g->nrx; px++) {
            uint8_t *xp = xq + (py * g->nrx + px) * xq_phase_bytes(g);
            const int off = g->qx0 * s->stride_w + g->rx[px]; /* input column of phase column 0 */
            const bool direct = s->stride_w == 1 && off == 0 && g->wp == s->w_in;
            /* a phase plane that is the input plane itself (1x1, no padding): each
             * channel quad in one run of hp * wp columns */
            const bool whole = vbmi && direct && s->stride_h == 1 && g->qy0 == 0 &&
                               g->hp == s->h_in;
            for (int c4 = 0; whole && c4 < g->cq; c4++) {
                const uint8_t *src[4];
                for (int i = 0; i < 4; i++)
                    src[i] = 4 * c4 + i < g->cin_g ? xg + (4 * c4 + i) * plane : NULL;
                xq_row_avx512(xp + (int64_t)c4 * g->hp * g->wp * 4, src, 1, 0, g->hp * g->wp,
                              g->hp * g->wp, flip, xbeg, xend);
            }
            for (int c4 = 0; !whole && c4 < g->cq; c4++) {
                for (int hr = 0; hr < g->hp; hr++) {
                    const int ih = (hr + g->qy0) * s->stride_h + g->ry[py];
                    uint8_t *dst = xp + ((int64_t)c4 * g->hp + hr) * g->wp * 4;
                    const uint8_t *src[4];
                    for (int i = 0; i < 4; i++) {
                        const int ci = 4 * c4 + i;
                        src[i] = ci >= g->cin_g || ih < 0 || ih >= s->h_in
                                     ? NULL
                                     : xg + ci * plane + (int64_t)ih * s->w_in;
                    }
                    /* rows are written in order: a tail's over-write lands in the next
                     * row (rewritten after) or in the slack */
                    if (vbmi) {
                        xq_row_avx512(dst, src, s->stride_w, off, g->wp, s->w_in, flip, xbeg, xend);
                        continue;
                    }
                    const uint8_t *rows[4];
                    bool tail_ok = true; /* 16-byte over-reads stay inside the buffers */
                    for (int i = 0; i < 4; i++) {
                        uint8_t *r = rowbuf + (size_t)i * rowcap;
                        if (!src[i]) {
                            rows[i] = k_zero_row; /* wp <= NB_MAX here, else a zeroed row buffer */
                            if (g->wp > NB_MAX) {
                                memset(r, 0, (size_t)g->wp);
                                rows[i] = r;
                            }
                        } else if (direct) {
                            rows[i] = src[i];
                            tail_ok = tail_ok && (size_t)(xend - src[i]) >= (size_t)g->wp + 16;
                        } else {
                            gather_cols(r, src[i], s->stride_w, off, 0, g->wp, s->w_in, xend);
                            rows[i] = r;
                        }
                    }
                    interleave4(dst, rows, g->wp, flip, tail_ok);
                }
            }
        }
    const size_t body = (size_t)(xq_phase_bytes(g) * g->nry * g->nrx);
    memset(xq + body, flip, xq_bytes(s, g) - body);
}

/* ---- output channels in lanes (AVX-512) ----------------------------------------------------
 * With pixels in lanes the implicit GEMM computes the padded grid: 7x7
 * planes fill 49 of 64 lanes (63 grid columns), 14x14 planes 196 of 224.
 * Here a tile is 32 output channels (the lanes of two vectors, weights from 4
 * packed MR panels) x P = 7 or 14 pixels of one output row (each pixel's 4
 * input bytes broadcast): every lane is an output. Simple epilogue only
 * (per-lane start value and shift); the codes are transposed back to P bytes
 * per channel row, 8 pixels per pair of vpermt2b. P = 14 fills 28 of the 32
 * vector registers with accumulators. */

/* The two vpermt2b index vectors of ukt_codes8. */
typedef struct {
    __m512i lo, hi;
} ukt_perm;

T_AVX512 static void ukt_perm_init(ukt_perm *pm)
{
    uint8_t ix[2][64];
    for (int h = 0; h < 2; h++)
        for (int oc = 0; oc < 8; oc++)
            for (int px = 0; px < 8; px++) {
                const int ch = 8 * h + oc;
                ix[h][8 * oc + px] = (uint8_t)((px >= 4 ? 64 : 0) + 16 * (ch / 4) + 4 * (px % 4) + ch % 4);
            }
    pm->lo = _mm512_loadu_si512(ix[0]);
    pm->hi = _mm512_loadu_si512(ix[1]);
}

/* codes of 8 pixels (vectors a[0..7], 16 channels each, already shifted) to
 * out[channel][8]: after codes_pack64 byte 16j + 4t + i is channel 4j + i of
 * pixel t (r0: pixels 0-3, r1: 4-7). */
T_AVX512 static inline void ukt_codes8(const codes_clamp *cc, const ukt_perm *pm,
                                       const __m512i *a, uint8_t out[128])
{
    const __m512i r0 = codes_pack64(cc, a[0], a[1], a[2], a[3]);
    const __m512i r1 = codes_pack64(cc, a[4], a[5], a[6], a[7]);
    _mm512_storeu_si512(out, _mm512_permutex2var_epi8(r0, pm->lo, r1));
    _mm512_storeu_si512(out + 64, _mm512_permutex2var_epi8(r0, pm->hi, r1));
}

/* The tile for P pixels (a constant once inlined): c[2p + v] = pixel p,
 * channels 16v .. 16v + 15; rows < `rows` stored, row r at dst + r *
 * plane_out. Written out, not looped, up to P = 14: 28 accumulators. */
T_AVX512 static inline __attribute__((always_inline)) void
ukt_body(const b_walk *bw, const int8_t *const wp[4], const uint8_t *b, const int32_t *init,
         const int32_t *shift, const codes_clamp *cc, const ukt_perm *pm, uint8_t *dst,
         int64_t plane_out, int rows, const int P)
{
    __m512i c[2 * 14];
    const __m512i i0 = _mm512_loadu_si512(init), i1 = _mm512_loadu_si512(init + 16);
    for (int px = 0; px < P; px++) { /* unrolled at -O3; P <= 14 */
        c[2 * px] = i0;
        c[2 * px + 1] = i1;
    }
    int64_t wo = 0; /* quad t * cq + q of every panel */
    for (int t = 0; t < bw->taps; t++) {
        const uint8_t *bq = b + bw->tapoff[t];
        for (int q = 0; q < bw->cq; q++, bq += bw->bstride, wo += MR * 4) {
            const __m512i w0 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(wp[0] + wo))),
                _mm256_loadu_si256((const __m256i *)(wp[1] + wo)), 1);
            const __m512i w1 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(wp[2] + wo))),
                _mm256_loadu_si256((const __m256i *)(wp[3] + wo)), 1);
            int32_t v;
            __m512i bb;
#define AC_PX(px)                                                                            \
    if ((px) < P) {                                                                          \
        memcpy(&v, bq + 4 * (px), sizeof v);                                                 \
        bb = _mm512_set1_epi32(v);                                                           \
        c[2 * (px)] = _mm512_dpbusd_epi32(c[2 * (px)], bb, w0);                              \
        c[2 * (px) + 1] = _mm512_dpbusd_epi32(c[2 * (px) + 1], bb, w1);                      \
    }
            AC_PX(0) AC_PX(1) AC_PX(2) AC_PX(3) AC_PX(4) AC_PX(5) AC_PX(6)
            AC_PX(7) AC_PX(8) AC_PX(9) AC_PX(10) AC_PX(11) AC_PX(12) AC_PX(13)
#undef AC_PX
        }
    }
    uint8_t codes[2][2][128]; /* [channel vector][8-pixel group][channel][8] */
    for (int vv = 0; vv < 2; vv++) {
        const __m512i sh = _mm512_loadu_si512(shift + 16 * vv);
        for (int g8 = 0; g8 * 8 < P; g8++) {
            __m512i a[8];
            for (int k = 0; k < 8; k++) /* pixels past P repeat the last one (not stored) */
                a[k] = _mm512_srav_epi32(c[2 * imin(8 * g8 + k, P - 1) + vv], sh);
            ukt_codes8(cc, pm, a, codes[vv][g8]);
        }
    }
    for (int r = 0; r < rows; r++) { /* constant sizes: inlined moves, not memcpy calls */
        uint8_t *d = dst + r * plane_out;
        const uint8_t *c0 = codes[r / 16][0] + 8 * (r % 16), *c1 = codes[r / 16][1] + 8 * (r % 16);
        if (P == 7) {
            memcpy(d, c0, 7);
        } else {
            memcpy(d, c0, 8);
            memcpy(d + 8, c1, 6);
        }
    }
}

T_AVX512 static void ukt7_codes_avx512(const b_walk *bw, const int8_t *const wp[4], const uint8_t *b,
                                       const int32_t *init, const int32_t *shift,
                                       const codes_clamp *cc, const ukt_perm *pm, uint8_t *dst,
                                       int64_t plane_out, int rows)
{
    ukt_body(bw, wp, b, init, shift, cc, pm, dst, plane_out, rows, 7);
}

T_AVX512 static void ukt14_codes_avx512(const b_walk *bw, const int8_t *const wp[4],
                                        const uint8_t *b, const int32_t *init,
                                        const int32_t *shift, const codes_clamp *cc,
                                        const ukt_perm *pm, uint8_t *dst, int64_t plane_out,
                                        int rows)
{
    ukt_body(bw, wp, b, init, shift, cc, pm, dst, plane_out, rows, 14);
}

/* ---- GEMM conv driver ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *bp;      /* im2col: packed B block (kq * nb * 4); implicit: xq */
    uint8_t *rowbuf;  /* 4 rows */
    int8_t *w8;       /* one weight panel (on-the-fly packing) */
    int16_t *w16;
    int32_t *tile;    /* MR x NR int32 */
    epi_consts *ec;   /* cout_g */
} gemm_slice;

static size_t rowbuf_bytes(const gemm_geom *g)
{
    return (size_t)round_up64(4 * ((int64_t)imax(NB_MAX, g->wp) + 16), ALIGN);
}

static size_t bp_bytes(const ac_conv2d_shape *s, const gemm_geom *g)
{
    return (size_t)round_up64(g->implicit ? (int64_t)xq_bytes(s, g) : (int64_t)g->kq * g->nb * 4,
                              ALIGN);
}

static size_t gemm_slice_bytes(const ac_conv2d_shape *s, const gemm_geom *g)
{
    size_t b = bp_bytes(s, g) + rowbuf_bytes(g);
    b += (size_t)round_up64((int64_t)panel_s8_bytes(g) * 3, ALIGN);
    b += sizeof(int32_t) * MR * NR;
    b += (size_t)round_up64((int64_t)sizeof(epi_consts) * g->cout_g, ALIGN);
    return b + ALIGN; /* alignment of the slice start */
}

static gemm_slice gemm_slice_get(void *scratch, const ac_conv2d_shape *s, const gemm_geom *g,
                                 int ith)
{
    uint8_t *p = align_up((uint8_t *)scratch + (size_t)ith * gemm_slice_bytes(s, g));
    gemm_slice sl;
    sl.bp = p;
    p += bp_bytes(s, g);
    sl.rowbuf = p;
    p += rowbuf_bytes(g);
    sl.w8 = (int8_t *)p;
    sl.w16 = (int16_t *)(void *)(p + panel_s8_bytes(g));
    p += round_up64((int64_t)panel_s8_bytes(g) * 3, ALIGN);
    sl.tile = (int32_t *)(void *)p;
    p += sizeof(int32_t) * MR * NR;
    sl.ec = (epi_consts *)(void *)p;
    return sl;
}

typedef struct {
    const ac_conv_q8_params *p;
    const gemm_geom *g;
    const gemm_slice *sl;
    ac_q8_isa isa;
    b_walk bw;
    uint8_t *yimg;    /* output of this (image, group): channel 0 of the group */
    bool fused;       /* AVX-512 and every epilogue of the group simple */
    codes_clamp cc;
} gemm_run;

/* Micro-tile (weight panel w8/w16 for rows r0.. of the group, B at b for
 * columns [j, j + nc)). */
/* Codes of one tile row (nc columns from padded-grid column j) to the
 * output rows they belong to: row segments, columns ow >= w_out dropped. */
static void scatter_codes(const ac_conv2d_shape *s, const gemm_geom *g, const uint8_t *codes,
                          uint8_t *yrow, int j, int nc)
{
    for (int l = 0; l < nc;) {
        const int jj = j + l, oh = jj / g->wp, ow = jj % g->wp;
        if (ow >= s->w_out) {
            l += g->wp - ow;
            continue;
        }
        const int len = imin(s->w_out - ow, nc - l);
        memcpy(yrow + (int64_t)oh * s->w_out + ow, codes + l, (size_t)len);
        l += len;
    }
}

static void gemm_micro(const gemm_run *gr, const int8_t *w8, const int16_t *w16, int r0,
                       const uint8_t *b, int j, int nc)
{
    const ac_conv2d_shape *s = &gr->p->s;
    const gemm_geom *g = gr->g;
    const int rows = imin(MR, g->cout_g - r0);
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    const bool contiguous = !g->implicit || g->wp == s->w_out;
    uint8_t codes[MR][NR];
    if (gr->fused) {
        if (contiguous) {
            uk_8x32_codes_avx512(&gr->bw, w8, b, &gr->sl->ec[r0], &gr->cc,
                                 gr->yimg + (int64_t)r0 * plane_out + j, plane_out, rows, nc);
            return;
        }
        uk_8x32_codes_avx512(&gr->bw, w8, b, &gr->sl->ec[r0], &gr->cc, &codes[0][0], NR, rows, nc);
        for (int r = 0; r < rows; r++)
            scatter_codes(s, g, codes[r], gr->yimg + (int64_t)(r0 + r) * plane_out, j, nc);
        return;
    }
    int32_t *tile = gr->sl->tile;
    switch (gr->isa) {
    case AC_Q8_ISA_AVX512: uk_8x32_avx512(&gr->bw, w8, b, tile); break;
    case AC_Q8_ISA_AVX2: uk_avx2(&gr->bw, w16, b, tile); break;
    default: uk_portable(&gr->bw, w8, b, tile); break;
    }
    for (int r = 0; r < rows; r++) {
        const epi_consts *e = &gr->sl->ec[r0 + r];
        uint8_t *yrow = gr->yimg + (int64_t)(r0 + r) * plane_out;
        uint8_t *dst = contiguous ? yrow + j : codes[r];
        switch (gr->isa) {
        case AC_Q8_ISA_AVX512: epi_row_avx512(tile + r * NR, nc, e, dst); break;
        case AC_Q8_ISA_AVX2: epi_row_avx2(tile + r * NR, nc, e, dst); break;
        default: epi_row_scalar(tile + r * NR, nc, e, dst); break;
        }
        if (!contiguous)
            scatter_codes(s, g, codes[r], yrow, j, nc);
    }
}

/* The conv as 32-channel x P-pixel tiles (see above): when ukt_width gives a
 * P, the weights are packed and every epilogue is
 * simple (the pack's largest sum|w| proves it). Tiles (image * group, output
 * row segment, channel block) in contiguous ranges per thread. Returns false
 * when it does not apply. */
static bool conv_gemm_t7(const ac_conv_q8_params *p, const gemm_geom *g, const gemm_slice *sl,
                         const uint8_t *x, uint8_t *y, int ith, int nth, ac_q8_isa isa,
                         gemm_run *gr)
{
    const ac_conv2d_shape *s = &p->s;
    const int P = ukt_width(s);
    if (isa != AC_Q8_ISA_AVX512 || !g->implicit || !P || g->cout_g < TM || !packed_matches(p, g))
        return false;
    pack_header h;
    memcpy(&h, p->w_packed, sizeof h);
    const int64_t xmax = p->x_signed ? 128 : 255;
    if ((int64_t)h.max_sabs * xmax + 32768 + ((int64_t)1 << 30) > INT32_MAX)
        return false;
    const uint8_t *pk = p->w_packed;
    const int outer = s->n * s->groups, nmb = div_up(g->cout_g, TM), nseg = s->w_out / P;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in, plane_out = (int64_t)s->h_out * s->w_out;
    const uint8_t *xend = x + (int64_t)s->n * s->c_in * plane_in;
    const uint8_t flip = p->x_signed ? 0x80 : 0;
    epi_consts e;
    epi_init(&e, false, 0, 0, 0, 0, p->relu, p->clip_hi, p->y_signed); /* lo, hi */
    codes_clamp_init(&gr->cc, &e, p->y_signed);
    ukt_perm pm;
    ukt_perm_init(&pm);
    /* the slice's epilogue area as per-channel start values and shifts */
    int32_t *init = (int32_t *)(void *)sl->ec, *shift = init + round_up64(g->cout_g, TM);
    const int32_t(*sums)[2] = (const int32_t(*)[2])(const void *)(pk + pack_off_sums(s, g));
    int64_t lo, hi, built = -1, consts = -1;
    /* tiles (o, output row segment of P pixels, channel block) */
    const int64_t rowsegs = (int64_t)s->h_out * nseg;
    ac_ref_range((int64_t)outer * rowsegs * nmb, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const int o = (int)(t / (rowsegs * nmb));
        const int rs = (int)(t / nmb % rowsegs), mb = (int)(t % nmb);
        const int oh = rs / nseg, ow0 = (rs % nseg) * P;
        const int img = o / s->groups, grp = o % s->groups;
        if (built != o) {
            build_xq(sl->bp, sl->rowbuf, s, g, x, xend,
                     x + ((int64_t)img * s->c_in + (int64_t)grp * g->cin_g) * plane_in, flip, isa);
            built = o;
        }
        if (consts != grp) { /* simple epilogue: start = corr + bias + 2^(r-1), shift r */
            for (int r = 0; r < g->cout_g; r++) {
                const int oc = grp * g->cout_g + r, rs = p->rshift[oc];
                init[r] = (int32_t)((p->x_signed ? 0u - (uint32_t)sums[oc][0] * 128u : 0u) +
                                    (uint32_t)(p->bias ? p->bias[oc] : 0) +
                                    (rs > 0 ? 1u << (rs - 1) : 0u));
                shift[r] = rs;
            }
            consts = grp;
        }
        const int r0 = mb * TM;
        const int8_t *wp[4];
        for (int i = 0; i < 4; i++) /* panels past the group's last repeat it (not stored) */
            wp[i] = (const int8_t *)(pk + ALIGN +
                                     ((size_t)grp * g->npan + imin(g->npan - 1, r0 / MR + i)) *
                                         panel_s8_bytes(g));
        uint8_t *dst = y + ((int64_t)img * s->c_out + (int64_t)grp * g->cout_g + r0) * plane_out +
                       (int64_t)oh * s->w_out + ow0;
        const uint8_t *b = sl->bp + ((int64_t)oh * g->wp + ow0) * 4;
        (P == 7 ? ukt7_codes_avx512 : ukt14_codes_avx512)(&gr->bw, wp, b, init + r0, shift + r0,
                                                         &gr->cc, &pm, dst, plane_out,
                                                         imin(TM, g->cout_g - r0));
    }
    return true;
}

static void conv_gemm(const ac_conv_q8_params *p, const uint8_t *x, uint8_t *y, void *scratch,
                      int ith, int nth, ac_q8_isa isa)
{
    const ac_conv2d_shape *s = &p->s;
    gemm_geom g;
    gemm_geom_of(s, &g);
    const gemm_slice sl = gemm_slice_get(scratch, s, &g, ith);
    const bool packed = packed_matches(p, &g);
    const uint8_t *pk = p->w_packed;
    const int outer = s->n * s->groups;
    const int nnb = div_up(g.n, g.nb);
    /* Enough tiles for the threads: split rows when columns are too few. */
    int nrb = 1;
    if ((int64_t)outer * nnb < 2 * (int64_t)nth)
        nrb = imin(g.npan, div_up(2 * nth, outer * nnb));
    const int ppb = div_up(g.npan, nrb);
    nrb = div_up(g.npan, ppb);
    const int64_t tiles = (int64_t)outer * nnb * nrb;
    int64_t begin, end;
    ac_ref_range(tiles, ith, nth, &begin, &end);
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const uint8_t *xend = x + (int64_t)s->n * s->c_in * plane_in;
    const uint8_t flip = p->x_signed ? 0x80 : 0;
    const int64_t xmax = p->x_signed ? 128 : 255;
    int64_t tapoff[MAX_TAPS];
    gemm_run gr = {.p = p, .g = &g, .sl = &sl, .isa = isa, .bw = {g.taps, g.cq, tapoff, 0}};
    if (g.implicit) {
        gr.bw.bstride = (int64_t)g.hp * g.wp * 4;
        for (int t = 0; t < g.taps; t++)
            tapoff[t] = xq_tap_offset(s, &g, t);
    } else {
        gr.bw.bstride = NR * 4;
        tapoff[0] = 0;
    }
    if (conv_gemm_t7(p, &g, &sl, x, y, ith, nth, isa, &gr))
        return;
    int64_t built = -1, epi_built = -1;
    for (int64_t t = begin; t < end; t++) {
        const int64_t cb = t / nrb; /* o * nnb + column block */
        const int rb = (int)(t % nrb);
        const int o = (int)(cb / nnb), nbi = (int)(cb % nnb);
        const int img = o / s->groups, grp = o % s->groups;
        const int j0 = nbi * g.nb, ncols = imin(g.nb, g.n - j0);
        const uint8_t *xg = x + ((int64_t)img * s->c_in + (int64_t)grp * g.cin_g) * plane_in;
        if (g.implicit ? built != o : built != cb) {
            if (g.implicit)
                build_xq(sl.bp, sl.rowbuf, s, &g, x, xend, xg, flip, isa);
            else
                pack_b(sl.bp, sl.rowbuf, s, &g, xend, xg, j0, ncols, flip);
            built = g.implicit ? o : cb;
        }
        const int p0 = rb * ppb, p1 = imin(g.npan, (rb + 1) * ppb);
        if (epi_built != grp) { /* the group's epilogue constants */
            for (int pi = 0; pi < g.npan; pi++) {
                const int r0 = pi * MR, rows = imin(MR, g.cout_g - r0);
                const int oc0 = grp * g.cout_g + r0;
                int32_t sums[MR][2];
                if (packed)
                    memcpy(sums, pk + pack_off_sums(s, &g) + 2 * sizeof(int32_t) * (size_t)oc0,
                           2 * sizeof(int32_t) * (size_t)rows);
                else
                    for (int r = 0; r < rows; r++) {
                        const int8_t *wr = p->w + (int64_t)(oc0 + r) * g.k;
                        sums[r][0] = sums[r][1] = 0;
                        for (int kk = 0; kk < g.k; kk++) {
                            sums[r][0] += wr[kk];
                            sums[r][1] += wr[kk] < 0 ? -wr[kk] : wr[kk];
                        }
                    }
                for (int r = 0; r < rows; r++)
                    epi_init(&sl.ec[r0 + r], p->x_signed, sums[r][0], sums[r][1] * xmax,
                             p->bias ? p->bias[oc0 + r] : 0, p->rshift[oc0 + r], p->relu,
                             p->clip_hi, p->y_signed);
            }
            epi_built = grp;
            gr.fused = isa == AC_Q8_ISA_AVX512;
            for (int r = 0; r < g.cout_g && gr.fused; r++)
                gr.fused = sl.ec[r].simple;
            if (gr.fused)
                codes_clamp_init(&gr.cc, &sl.ec[0], p->y_signed);
        }
        gr.yimg = y + ((int64_t)img * s->c_out + (int64_t)grp * g.cout_g) * s->h_out * s->w_out;
        /* B for columns [j0 + jp, ...): implicit reads xq in place, im2col its panels */
        if (packed) {
            /* each B micro-panel stays in L1 while the row block's weights stream by */
            for (int jp = 0; jp < ncols; jp += NR) {
                const uint8_t *b = g.implicit ? sl.bp + (int64_t)(j0 + jp) * 4
                                              : sl.bp + (int64_t)(jp / NR) * g.kq * NR * 4;
                for (int pi = p0; pi < p1; pi++) {
                    size_t idx = (size_t)grp * g.npan + pi;
                    const int8_t *w8 = (const int8_t *)(pk + ALIGN + idx * panel_s8_bytes(&g));
                    const int16_t *w16 = (const int16_t *)(const void *)(
                        pk + pack_off_i16(s, &g) + 2 * idx * panel_s8_bytes(&g));
                    gemm_micro(&gr, w8, w16, pi * MR, b, j0 + jp, imin(NR, ncols - jp));
                }
            }
        } else {
            for (int pi = p0; pi < p1; pi++) {
                const int r0 = pi * MR;
                int32_t unused[MR][2];
                pack_panel(s, &g, p->w + (int64_t)(grp * g.cout_g + r0) * g.k,
                           imin(MR, g.cout_g - r0), sl.w8, sl.w16, unused);
                for (int jp = 0; jp < ncols; jp += NR) {
                    const uint8_t *b = g.implicit ? sl.bp + (int64_t)(j0 + jp) * 4
                                                  : sl.bp + (int64_t)(jp / NR) * g.kq * NR * 4;
                    gemm_micro(&gr, sl.w8, sl.w16, r0, b, j0 + jp, imin(NR, ncols - jp));
                }
            }
        }
    }
}

/* ---- depthwise (one input channel per group) ------------------------------------------------ */

typedef struct {
    int rows, cols; /* padded plane: every input position any output reads */
} dw_geom;

static void dw_geom_of(const ac_conv2d_shape *s, dw_geom *d)
{
    d->rows = (s->h_out - 1) * s->stride_h + (s->kh - 1) * s->dil_h + 1;
    d->cols = (s->w_out - 1) * s->stride_w + (s->kw - 1) * s->dil_w + 1;
}

static size_t dw_slice_bytes(const ac_conv2d_shape *s)
{
    dw_geom d;
    dw_geom_of(s, &d);
    return (size_t)round_up64((int64_t)d.rows * d.cols + DW_SLACK, ALIGN) + ALIGN;
}

static size_t dwd_slice_bytes(const ac_conv2d_shape *s);

/* One thread's depthwise scratch: enough for any of the kernels (the padded
 * plane of the AVX2 / portable ones, the dword kernel's border data). */
static size_t dw_scratch_slice(const ac_conv2d_shape *s)
{
    size_t a = dw_slice_bytes(s), b = dwd_slice_bytes(s);
    return a > b ? a : b;
}

/* pad[r][c] = x[r - pad_top][c - pad_left] ^ flip, 0 ^ flip outside the plane and
 * in the slack after it. */
static void dw_pad_plane(const ac_conv2d_shape *s, const dw_geom *d, const uint8_t *xc,
                         uint8_t *pad, uint8_t flip)
{
    const int c0 = imax(0, imin(s->pad_left, d->cols));
    const int c1 = imax(c0, imin(s->pad_left + s->w_in, d->cols));
    for (int r = 0; r < d->rows; r++) {
        uint8_t *pr = pad + (int64_t)r * d->cols;
        const int ih = r - s->pad_top;
        if (ih < 0 || ih >= s->h_in) {
            memset(pr, flip, (size_t)d->cols);
            continue;
        }
        memset(pr, flip, (size_t)c0);
        const uint8_t *src = xc + (int64_t)ih * s->w_in + (c0 - s->pad_left);
        const __m128i f = _mm_set1_epi8((char)flip);
        int c = 0;
        for (; c + 16 <= c1 - c0; c += 16)
            _mm_storeu_si128((__m128i *)(pr + c0 + c),
                             _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + c)), f));
        for (; c < c1 - c0; c++)
            pr[c0 + c] = src[c] ^ flip;
        memset(pr + c1, flip, (size_t)(d->cols - c1));
    }
    memset(pad + (int64_t)d->rows * d->cols, flip, DW_SLACK);
}

static void dw_plane_scalar(const ac_conv2d_shape *s, const dw_geom *d, const uint8_t *pad,
                            const int8_t *wc, const epi_consts *e, uint8_t *yc)
{
    for (int oh = 0; oh < s->h_out; oh++)
        for (int ow = 0; ow < s->w_out; ow++) {
            uint32_t acc = 0;
            for (int ky = 0; ky < s->kh; ky++) {
                const uint8_t *pr = pad + (int64_t)(oh * s->stride_h + ky * s->dil_h) * d->cols +
                                    (int64_t)ow * s->stride_w;
                for (int kx = 0; kx < s->kw; kx++)
                    acc += (uint32_t)((int32_t)pr[kx * s->dil_w] * wc[ky * s->kw + kx]);
            }
            yc[(int64_t)oh * s->w_out + ow] = (uint8_t)requant1(acc, e);
        }
}

/* 8 bytes at p, p + sw, ..., p + 7*sw (n of them valid; others 0). */
T_AVX2 static inline __m128i dw_load8_avx2(const uint8_t *p, int sw, int n)
{
    if (sw == 1)
        return _mm_loadl_epi64((const __m128i *)p);
    if (sw == 2)
        return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p),
                                _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1,
                                              -1, -1));
    uint8_t tmp[16] = {0};
    for (int i = 0; i < n; i++)
        tmp[i] = p[(int64_t)i * sw];
    return _mm_loadu_si128((const __m128i *)tmp);
}

T_AVX2 static void dw_plane_avx2(const ac_conv2d_shape *s, const dw_geom *d, const uint8_t *pad,
                                 const int8_t *wc, const epi_consts *e, uint8_t *yc)
{
    const int sw = s->stride_w, dw = s->dil_w;
    for (int oh = 0; oh < s->h_out; oh++) {
        for (int ow0 = 0; ow0 < s->w_out; ow0 += 8) {
            const int n = imin(8, s->w_out - ow0);
            __m256i acc = _mm256_setzero_si256();
            for (int ky = 0; ky < s->kh; ky++) {
                const uint8_t *pr = pad + (int64_t)(oh * s->stride_h + ky * s->dil_h) * d->cols +
                                    (int64_t)ow0 * sw;
                for (int kx = 0; kx < s->kw; kx++) {
                    /* each lane: the byte in the low int16, 0 above; weight likewise */
                    __m256i xv = _mm256_cvtepu8_epi32(dw_load8_avx2(pr + kx * dw, sw, n));
                    __m256i wv = _mm256_set1_epi32((uint16_t)(int16_t)wc[ky * s->kw + kx]);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv));
                }
            }
            store8_avx2(requant8_avx2(acc, e), yc + (int64_t)oh * s->w_out + ow0, n);
        }
    }
}

/* AVX2 on the padded plane, stride_w 1 or 2 and no column dilation: the
 * dword-window idea with 16-bit pairs. Bytes widened to int16 by the load
 * (vpmovzxbw), lane L of a load at column c holds columns c + 2L, c + 2L + 1,
 * which vpmaddwd multiplies by a pair of taps of the pixel whose window starts
 * at c + 2L: stride 1 takes two accumulators (even / odd pixels, loads one
 * column apart), stride 2 one. 4 instructions per 2 taps of 8 pixels instead
 * of 4 per tap. */
enum { DWA_MAX_PAIRS = 64 }; /* kh * ceil(kw / 2) */

static bool dw_pairs_usable(const ac_conv2d_shape *s)
{
    return s->dil_w == 1 && (s->stride_w == 1 || s->stride_w == 2) &&
           s->kh * div_up(s->kw, 2) <= DWA_MAX_PAIRS;
}

T_AVX2 static void dw_plane_pairs_avx2(const ac_conv2d_shape *s, const dw_geom *d,
                                       const uint8_t *pad, const int8_t *wc, const epi_consts *e,
                                       uint8_t *yc)
{
    const int np = div_up(s->kw, 2), sw = s->stride_w, step = sw == 1 ? 16 : 8;
    __m256i wp[DWA_MAX_PAIRS];
    for (int ky = 0; ky < s->kh; ky++)
        for (int q = 0; q < np; q++) {
            const int kx = 2 * q;
            const uint32_t lo = (uint16_t)(int16_t)wc[ky * s->kw + kx];
            const uint32_t hi = kx + 1 < s->kw ? (uint16_t)(int16_t)wc[ky * s->kw + kx + 1] : 0;
            wp[ky * np + q] = _mm256_set1_epi32((int32_t)(lo | hi << 16));
        }
    for (int oh = 0; oh < s->h_out; oh++)
        for (int ow0 = 0; ow0 < s->w_out; ow0 += step) {
            __m256i even = _mm256_setzero_si256(), odd = _mm256_setzero_si256();
            for (int ky = 0; ky < s->kh; ky++) {
                const uint8_t *row =
                    pad + (int64_t)(oh * s->stride_h + ky * s->dil_h) * d->cols + (int64_t)ow0 * sw;
                for (int q = 0; q < np; q++) {
                    const __m256i w = wp[ky * np + q];
                    const __m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(row + 2 * q)));
                    even = _mm256_add_epi32(even, _mm256_madd_epi16(x0, w));
                    if (sw == 1) {
                        const __m256i x1 =
                            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(row + 2 * q + 1)));
                        odd = _mm256_add_epi32(odd, _mm256_madd_epi16(x1, w));
                    }
                }
            }
            uint8_t *dst = yc + (int64_t)oh * s->w_out + ow0;
            const int n = imin(step, s->w_out - ow0);
            if (sw == 2) {
                store8_avx2(requant8_avx2(even, e), dst, n);
                continue;
            }
            /* codes (in range) of pixels 2L and 2L+1 as the words of dword L */
            const __m256i w16 = _mm256_blend_epi16(requant8_avx2(even, e),
                                                   _mm256_slli_epi32(requant8_avx2(odd, e), 16), 0xAA);
            const __m256i b = _mm256_permute4x64_epi64(
                _mm256_packus_epi16(_mm256_and_si256(w16, _mm256_set1_epi16(0xFF)), _mm256_setzero_si256()),
                0xD8);
            if (n == 16) {
                _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(b));
            } else {
                uint8_t tmp[16];
                _mm_storeu_si128((__m128i *)tmp, _mm256_castsi256_si128(b));
                memcpy(dst, tmp, (size_t)n);
            }
        }
}

/* Taps 4qq .. 4qq+3 of kernel row ky of filter wc as the 4 bytes of a dword
 * (0 past kw), built in a register: byte stores then a dword load would stall
 * store forwarding. */
static inline int32_t dw_tap_quad(const ac_conv2d_shape *s, const int8_t *wc, int ky, int qq)
{
    uint32_t q = 0;
    for (int i = 0; i < 4 && 4 * qq + i < s->kw; i++)
        q |= (uint32_t)(uint8_t)wc[ky * s->kw + 4 * qq + i] << (8 * i);
    return (int32_t)q;
}

/* ---- depthwise, plane-wise on the NCHW input (AVX-512) --------------------------------------
 * Each output plane straight from its NCHW input plane, with no padded copy:
 * a vector is R output rows of wv pixels (R > 1 only for planes narrower than
 * 16), and per kernel row ky and quad of taps qq it costs one 64-byte load of
 * the input window, one vpermb that gathers the 4 taps of each lane's pixel
 * into a dword, and one vpdpbusd. Taps that fall in the padding are zeroed by
 * the vpermb's mask (a zero byte is code 0 once offset: 0x80 for int8), and
 * loads near the ends of the tensor are masked, so borders cost masks, not a
 * copy. The masks: one per column block (and quad), one per row block and ky,
 * bit 4L+i for tap i of lane L; lanes that are not stored count as valid. */

enum {
    DWP_MAX_QUADS = 32,  /* kh * ceil(kw / 4) */
    DWP_MAX_COLBLK = 256 /* column blocks x quads */
};

typedef struct {
    int R, wv, nq;
    int ncb, nrb;        /* column blocks (of wv pixels), row blocks (of R rows) */
    uint8_t idx[64];     /* byte 4L+i: offset of tap i of lane L in the window */
    uint64_t spare;      /* bytes of lanes >= R * wv */
    uint64_t rowlanes[16];
    uint64_t colm[DWP_MAX_COLBLK];
} dwp_plan;

static bool dwp_plan_of(const ac_conv2d_shape *s, dwp_plan *v)
{
    const int sh = s->stride_h, sw = s->stride_w, dw = s->dil_w;
    const int top = imin(4, s->kw) - 1; /* highest tap of a quad */
    v->nq = div_up(s->kw, 4);
    v->wv = imin(16, s->w_out);
    v->R = s->w_out < 16 ? imin(16 / s->w_out, s->h_out) : 1;
    /* the window of a vector: every lane's taps within 64 bytes */
    while (v->R > 1 && (int64_t)(v->R - 1) * sh * s->w_in + (int64_t)(v->wv - 1) * sw +
                               (int64_t)top * dw > 63)
        v->R--;
    while (v->wv > 1 && (int64_t)(v->wv - 1) * sw + (int64_t)top * dw > 63)
        v->wv--;
    if ((int64_t)(v->wv - 1) * sw + (int64_t)top * dw > 63 || s->kh * v->nq > DWP_MAX_QUADS)
        return false;
    v->ncb = div_up(s->w_out, v->wv);
    v->nrb = div_up(s->h_out, v->R);
    if (v->ncb * v->nq > DWP_MAX_COLBLK)
        return false;
    const int live = v->R * v->wv;
    v->spare = 0;
    memset(v->rowlanes, 0, sizeof v->rowlanes);
    for (int L = 0; L < 16; L++) {
        const uint64_t bytes = (uint64_t)0xF << (4 * L);
        if (L >= live)
            v->spare |= bytes;
        else
            v->rowlanes[L / v->wv] |= bytes;
        for (int i = 0; i < 4; i++)
            v->idx[4 * L + i] = (uint8_t)(L < live && i <= top ? (int64_t)(L / v->wv) * sh * s->w_in +
                                                                     (L % v->wv) * sw + i * dw
                                                               : 0);
    }
    for (int cb = 0; cb < v->ncb; cb++)
        for (int qq = 0; qq < v->nq; qq++) {
            uint64_t m = v->spare;
            for (int L = 0; L < live; L++)
                for (int i = 0; i < 4; i++) {
                    const int ow = cb * v->wv + L % v->wv, kx = 4 * qq + i;
                    const int64_t iw = (int64_t)ow * sw - s->pad_left + (int64_t)kx * dw;
                    if (ow >= s->w_out || kx >= s->kw || (iw >= 0 && iw < s->w_in))
                        m |= (uint64_t)1 << (4 * L + i);
                }
            v->colm[cb * v->nq + qq] = m;
        }
    return true;
}

/* Bytes [0, 64) of a load at tensor offset off that lie inside [0, xbytes). */
static inline uint64_t dwp_load_mask(int64_t off, int64_t xbytes)
{
    const int64_t lo = off < 0 ? -off : 0, hi = xbytes - off < 64 ? xbytes - off : 64;
    if (hi <= lo)
        return 0;
    const uint64_t below_hi = hi >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1;
    return below_hi & ~(((uint64_t)1 << lo) - 1);
}

/* One vector's accumulator over taps [0, nk): k walks (ky, qq); koff[k] is
 * the window's offset from base, mrow/mcol the row / column masks. */
T_AVX512 static inline __m512i dwp_acc_masked(const uint8_t *x, int64_t xbytes, int64_t base,
                                              const int64_t *koff, const uint64_t *mrow,
                                              const uint64_t *mcol, int nq, int nk, __m512i idx,
                                              __m512i fv, const __m512i *wq)
{
    __m512i acc = _mm512_setzero_si512();
    for (int k = 0; k < nk; k++) {
        const int64_t off = base + koff[k];
        const uint64_t m = mrow[k / nq] & mcol[k % nq];
        const uint64_t lm = dwp_load_mask(off, xbytes);
        /* address in integers: off may lie outside x (its bytes are masked off) */
        const void *p = (const void *)((uintptr_t)x + (uintptr_t)off);
        const __m512i xv = _mm512_maskz_permutexvar_epi8(m, idx, _mm512_maskz_loadu_epi8(lm, p));
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(xv, fv), wq[k]);
    }
    return acc;
}

/* Row blocks [rb0, rb1) of one output plane yc; its input plane lies at byte
 * xoff of the input tensor x (xbytes long). Vectors whose every tap is inside
 * the input take the unmasked loop. */
T_AVX512 static void dwp_plane_avx512(const ac_conv2d_shape *s, const dwp_plan *v,
                                      const uint8_t *x, int64_t xbytes, int64_t xoff,
                                      const int32_t *quads, const epi_consts *e, uint8_t flip,
                                      uint8_t *yc, int rb0, int rb1)
{
    const int nq = v->nq, nk = s->kh * nq;
    __m512i wq[DWP_MAX_QUADS];
    int64_t koff[DWP_MAX_QUADS];
    for (int ky = 0; ky < s->kh; ky++)
        for (int qq = 0; qq < nq; qq++) {
            wq[ky * nq + qq] = _mm512_set1_epi32(quads[ky * nq + qq]);
            koff[ky * nq + qq] = (int64_t)ky * s->dil_h * s->w_in + 4 * qq * s->dil_w;
        }
    const int64_t span = koff[nk - 1] + 64; /* bytes from base the loads cover */
    const __m512i idx = _mm512_loadu_si512(v->idx), fv = _mm512_set1_epi8((char)flip);
    uint64_t rowm[DWP_MAX_QUADS];
    for (int rb = rb0; rb < rb1; rb++) {
        const int oh0 = rb * v->R;
        bool rows_in = true;
        for (int ky = 0; ky < s->kh; ky++) {
            uint64_t m = v->spare;
            for (int rr = 0; rr < v->R; rr++) {
                const int64_t ih =
                    (int64_t)(oh0 + rr) * s->stride_h - s->pad_top + (int64_t)ky * s->dil_h;
                if (oh0 + rr >= s->h_out || (ih >= 0 && ih < s->h_in))
                    m |= v->rowlanes[rr];
            }
            rowm[ky] = m;
            rows_in = rows_in && m == ~(uint64_t)0;
        }
        const int64_t rbase = xoff + ((int64_t)oh0 * s->stride_h - s->pad_top) * s->w_in - s->pad_left;
        uint8_t *yrow = yc + (int64_t)oh0 * s->w_out;
        for (int cb = 0; cb < v->ncb; cb++) {
            const int ow0 = cb * v->wv;
            const int64_t base = rbase + (int64_t)ow0 * s->stride_w;
            const uint64_t *mcol = &v->colm[cb * nq];
            bool in = rows_in && base >= 0 && base + span <= xbytes;
            for (int qq = 0; in && qq < nq; qq++)
                in = mcol[qq] == ~(uint64_t)0;
            __m512i acc;
            if (in) {
                acc = _mm512_setzero_si512();
                const uint8_t *xb = x + base;
                for (int k = 0; k < nk; k++) {
                    const __m512i xv = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512(xb + koff[k]));
                    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(xv, fv), wq[k]);
                }
            } else {
                acc = dwp_acc_masked(x, xbytes, base, koff, rowm, mcol, nq, nk, idx, fv, wq);
            }
            const __m512i res = requant16_avx512(acc, e);
            if (v->R == 1)
                store16_avx512(res, yrow + ow0, imin(v->wv, s->w_out - ow0));
            else
                store16_avx512(res, yrow, imin(v->R, s->h_out - oh0) * s->w_out);
        }
    }
}

/* ---- depthwise, dword windows (AVX-512) ---------------------------------------------------
 * For stride_w 1, 2 or 4 and no column dilation, no permute is needed at all:
 * the 4 bytes of dword lane L of a plain 64-byte load at input column c are
 * columns c + 4L .. c + 4L + 3, which is exactly the window of 4 taps of the
 * output pixel whose window starts there. So one load + one vpdpbusd gives 4
 * taps of 16 pixels that are 4 / stride_w apart; 4 accumulators (loads at 4
 * shifted columns) cover 64 consecutive output pixels of a row, and the
 * epilogue's byte permute puts their codes back in pixel order.
 * The loads read the NCHW rows in place, without masks (masked loads, or a
 * padded copy, cost a fifth to a half more here). A tap that falls in the
 * left / right padding reads a neighbouring byte instead: in the few column
 * blocks where that happens ("border" blocks) such taps get weight 0 in that
 * lane, and for int8 input the 128 * w the offset padding would have added is
 * put back into that lane's starting value. Kernel rows in the top / bottom
 * padding are skipped (uint8) or added as code 0 (int8). Rows whose reads
 * would leave the input tensor (its very first and last rows) are read from a
 * bounce copy. Two output rows are computed at a time: each input row is
 * loaded once for both (stride 1: 4 rows for 2 outputs instead of 6). Narrow
 * planes waste lanes here: the permute kernels below take them. */

enum {
    DWD_MAX_BORDER = 4, /* border column blocks */
    DWD_MAX_D = 64,     /* (kh - 1) * dil_h + stride_h + 1 */
    DWD_MAX_NQ = 8      /* quads per kernel row (kw <= 32) */
};

typedef struct {
    int sw, nq, nk;
    int ncb;                 /* column blocks (of 64 pixels) per row */
    int dmax;                /* input rows below a row pair's first */
    int8_t kya[DWD_MAX_D], kyb[DWD_MAX_D];
    int64_t rmin, rmax;      /* bytes read around an input row: [rmin, rmax) */
    int nborder;
    int border_cb[DWD_MAX_BORDER];
    uint64_t wkeep[DWD_MAX_BORDER][4][DWD_MAX_NQ]; /* weight bytes kept, per lane and tap */
    bool k3;     /* 3x3, dil_h 1, stride_h 1 or 2: the written-out block */
    int sw_h;    /* stride_h */
} dwd_plan;


/* Output pixel (within a block of 64) of lane L of accumulator t: stride 1
 * interleaves 4 accumulators, stride 2 two pairs, stride 4 none. */
static int dwd_pixel(int sw, int t, int L)
{
    return sw == 1 ? 4 * L + t : (sw == 2 ? 32 * (t / 2) + 2 * L + t % 2 : 16 * t + L);
}

/* Input column of lane 0 of accumulator t of column block cb. */
static int dwd_col(const ac_conv2d_shape *s, int cb, int t)
{
    return (cb * 64 + dwd_pixel(s->stride_w, t, 0)) * s->stride_w - s->pad_left;
}

static bool dwd_plan_of(const ac_conv2d_shape *s, dwd_plan *v)
{
    v->sw = s->stride_w;
    v->nq = div_up(s->kw, 4);
    v->nk = s->kh * v->nq;
    v->ncb = div_up(s->w_out, 64);
    v->dmax = (s->kh - 1) * s->dil_h + s->stride_h;
    if (s->dil_w != 1 || (v->sw != 1 && v->sw != 2 && v->sw != 4) || v->nk > DWP_MAX_QUADS ||
        v->nq > DWD_MAX_NQ || s->w_out < 32 || v->dmax >= DWD_MAX_D || s->kh > 127)
        return false;
    for (int dd = 0; dd <= v->dmax; dd++) {
        const int db = dd - s->stride_h;
        v->kya[dd] = (int8_t)(dd % s->dil_h == 0 && dd / s->dil_h < s->kh ? dd / s->dil_h : -1);
        v->kyb[dd] = (int8_t)(db >= 0 && db % s->dil_h == 0 && db / s->dil_h < s->kh
                                  ? db / s->dil_h : -1);
    }
    v->sw_h = s->stride_h;
    v->k3 = s->kh == 3 && s->kw <= 4 && s->dil_h == 1 && (s->stride_h == 1 || s->stride_h == 2);
    v->rmin = dwd_col(s, 0, 0);
    v->rmax = dwd_col(s, v->ncb - 1, 3) + 4 * (v->nq - 1) + 64;
    /* pixels whose taps can leave the row: ow < first_in or ow >= last_in */
    const int first_in = div_up(s->pad_left, s->stride_w);
    const int last_in = s->w_in + s->pad_left - s->kw >= 0
                            ? (s->w_in + s->pad_left - s->kw) / s->stride_w + 1 : 0;
    v->nborder = 0;
    for (int cb = 0; cb < v->ncb; cb++) {
        const int p0 = cb * 64, p1 = imin(s->w_out, p0 + 64);
        if (p0 >= first_in && p1 <= last_in)
            continue;
        if (v->nborder == DWD_MAX_BORDER)
            return false;
        const int bi = v->nborder++;
        v->border_cb[bi] = cb;
        for (int t = 0; t < 4; t++)
            for (int qq = 0; qq < v->nq; qq++) {
                uint64_t keep = ~(uint64_t)0;
                for (int L = 0; L < 16; L++) {
                    const int ow = p0 + dwd_pixel(s->stride_w, t, L);
                    for (int i = 0; i < 4 && ow < s->w_out; i++) {
                        const int kx = 4 * qq + i, iw = ow * s->stride_w - s->pad_left + kx;
                        if (kx < s->kw && (iw < 0 || iw >= s->w_in))
                            keep &= ~((uint64_t)1 << (4 * L + i));
                    }
                }
                v->wkeep[bi][t][qq] = keep;
            }
    }
    return true;
}

/* Per-thread scratch of the dword kernel (0 when it does not apply): the
 * border blocks' weights and starting values, and bounce rows. */
static size_t dwd_slice_bytes(const ac_conv2d_shape *s)
{
    dwd_plan v;
    if (!dwd_plan_of(s, &v))
        return 0;
    return (size_t)64 * DWD_MAX_BORDER * 4 * (size_t)(v.nk + 1) +
           (size_t)(v.dmax + 1) * (size_t)round_up64(v.rmax - v.rmin, 64) + ALIGN;
}

/* Epilogue of 4 accumulators to 64 codes in pixel order: acc >> r (simple
 * epilogue) or requant16 (codes already in range: the packs are then exact),
 * codes_pack64, one vpermb to pixel order. */
typedef struct {
    __m512i perm; /* packed byte -> pixel order */
    codes_clamp cc;
} dwd_epi;

T_AVX512 static void dwd_epi_init(dwd_epi *q, int sw, const epi_consts *e, bool y_signed)
{
    uint8_t idx[64];
    /* after the packs, byte 16j + 4t + i holds lane 4j + i of accumulator t */
    for (int j = 0; j < 4; j++)
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < 4; i++)
                idx[dwd_pixel(sw, t, 4 * j + i)] = (uint8_t)(16 * j + 4 * t + i);
    memcpy(&q->perm, idx, 64);
    codes_clamp_init(&q->cc, e, y_signed);
}

T_AVX512 static inline __attribute__((always_inline)) void
dwd_emit(const dwd_epi *q, const epi_consts *e, __m128i rc, __m512i a0, __m512i a1, __m512i a2,
         __m512i a3, uint8_t *dst, int n)
{
    if (e->simple) { /* rc: the shift count e->r */
        a0 = _mm512_sra_epi32(a0, rc);
        a1 = _mm512_sra_epi32(a1, rc);
        a2 = _mm512_sra_epi32(a2, rc);
        a3 = _mm512_sra_epi32(a3, rc);
    } else {
        a0 = requant16_avx512(a0, e);
        a1 = requant16_avx512(a1, e);
        a2 = requant16_avx512(a2, e);
        a3 = requant16_avx512(a3, e);
    }
    const __m512i r = _mm512_permutexvar_epi8(q->perm, codes_pack64(&q->cc, a0, a1, a2, a3));
    store64_avx512(dst, r, n);
}

/* The accumulators' start (simple epilogue: init folded in). */
T_AVX512 static inline __m512i dw_acc_init(const epi_consts *e)
{
    return _mm512_set1_epi32(e->simple ? e->init : 0);
}

/* Bytes [rmin, rmax) around input row `off` of x, those inside x, into a
 * bounce buffer (the rest zero: only zero-weight taps read them). */
T_AVX512 static const uint8_t *dwd_bounce_row(const dwd_plan *v, const uint8_t *x,
                                              int64_t xbytes, int64_t off, uint8_t *buf)
{
    for (int64_t c = v->rmin; c < v->rmax; c += 64) {
        const int64_t at = off + c;
        const uint64_t m = range_mask64(-at, xbytes - at);
        _mm512_storeu_si512(buf + (c - v->rmin),
                            _mm512_maskz_loadu_epi8(m, (const void *)((uintptr_t)x + (uintptr_t)at)));
    }
    return buf - v->rmin; /* column c at [c] for c in [rmin, rmax) */
}

/* 4 window loads of input row r at the accumulators' columns (+ off),
 * offset for int8. */
#define DWD_LOAD4(xv, r, col, off)                                                             \
    do {                                                                                       \
        xv[0] = _mm512_loadu_si512((r) + (off) + col[0]);                                      \
        xv[1] = _mm512_loadu_si512((r) + (off) + col[1]);                                      \
        xv[2] = _mm512_loadu_si512((r) + (off) + col[2]);                                      \
        xv[3] = _mm512_loadu_si512((r) + (off) + col[3]);                                      \
        if (flip) {                                                                            \
            xv[0] = _mm512_xor_si512(xv[0], f80);                                              \
            xv[1] = _mm512_xor_si512(xv[1], f80);                                              \
            xv[2] = _mm512_xor_si512(xv[2], f80);                                              \
            xv[3] = _mm512_xor_si512(xv[3], f80);                                              \
        }                                                                                      \
    } while (0)
#define DWD_MAC4(a, xv, w0, w1, w2, w3)                                                        \
    do {                                                                                       \
        a[0] = _mm512_dpbusd_epi32(a[0], xv[0], (w0));                                         \
        a[1] = _mm512_dpbusd_epi32(a[1], xv[1], (w1));                                         \
        a[2] = _mm512_dpbusd_epi32(a[2], xv[2], (w2));                                         \
        a[3] = _mm512_dpbusd_epi32(a[3], xv[3], (w3));                                         \
    } while (0)

/* One column block of a row pair (b: the second row, when pair) from input
 * rows src[d] (NULL: padding), accumulator t starting at init[t] with
 * weights W[t][k] (a border block's lanes have their out-of-row taps zeroed).
 * Written out, not looped over the 4 accumulators: -O2 keeps the vectors in
 * registers only then. */
T_AVX512 static inline __attribute__((always_inline)) void
dwd_block(const dwd_plan *v, const uint8_t *const *src, const int *col, const __m512i *const *W,
          const __m512i *init, bool pair, __m512i *a, __m512i *b, const bool flip)
{
    const __m512i f80 = _mm512_set1_epi8((char)0x80);
    __m512i xv[4];
    a[0] = b[0] = init[0];
    a[1] = b[1] = init[1];
    a[2] = b[2] = init[2];
    a[3] = b[3] = init[3];
    if (v->k3 && pair) {
        /* 3x3, row stride 1 or 2: the taps in registers, the rows written out */
        const __m512i w00 = W[0][0], w01 = W[0][1], w02 = W[0][2];
        const __m512i w10 = W[1][0], w11 = W[1][1], w12 = W[1][2];
        const __m512i w20 = W[2][0], w21 = W[2][1], w22 = W[2][2];
        const __m512i w30 = W[3][0], w31 = W[3][1], w32 = W[3][2];
#define DWD_ROW(d, ma, mb)                                                                     \
        do {                                                                                   \
            if (src[d]) {                                                                      \
                DWD_LOAD4(xv, src[d], col, 0);                                                 \
            } else if (flip) {                                                                 \
                xv[0] = xv[1] = xv[2] = xv[3] = f80;                                           \
            } else {                                                                           \
                break;                                                                         \
            }                                                                                  \
            ma;                                                                                \
            mb;                                                                                \
        } while (0)
#define DWD_A(k) DWD_MAC4(a, xv, w0##k, w1##k, w2##k, w3##k)
#define DWD_B(k) DWD_MAC4(b, xv, w0##k, w1##k, w2##k, w3##k)
        if (v->sw_h == 1) {
            DWD_ROW(0, DWD_A(0), (void)0);
            DWD_ROW(1, DWD_A(1), DWD_B(0));
            DWD_ROW(2, DWD_A(2), DWD_B(1));
            DWD_ROW(3, (void)0, DWD_B(2));
        } else {
            DWD_ROW(0, DWD_A(0), (void)0);
            DWD_ROW(1, DWD_A(1), (void)0);
            DWD_ROW(2, DWD_A(2), DWD_B(0));
            DWD_ROW(3, (void)0, DWD_B(1));
            DWD_ROW(4, (void)0, DWD_B(2));
        }
#undef DWD_A
#undef DWD_B
#undef DWD_ROW
        return;
    }
    const int nq = v->nq;
    for (int d = 0; d <= v->dmax; d++) {
        const int ka = v->kya[d], kb = pair ? v->kyb[d] : -1;
        if (ka < 0 && kb < 0)
            continue;
        const uint8_t *row = src[d];
        for (int qq = 0; qq < nq; qq++) {
            if (row)
                DWD_LOAD4(xv, row, col, 4 * qq);
            else if (flip) /* padding row: code 0, offset */
                xv[0] = xv[1] = xv[2] = xv[3] = f80;
            else
                continue;
            if (ka >= 0) {
                const int k = ka * nq + qq;
                DWD_MAC4(a, xv, W[0][k], W[1][k], W[2][k], W[3][k]);
            }
            if (kb >= 0) {
                const int k = kb * nq + qq;
                DWD_MAC4(b, xv, W[0][k], W[1][k], W[2][k], W[3][k]);
            }
        }
    }
}

/* Output rows [oh0, oh1) of one plane yc, whose input plane is at byte xoff
 * of x; quads: the filter's tap quads (dw_tap_quad order); ws: this thread's
 * dwd scratch (64-byte aligned). flip: int8 input (a constant once inlined). */
T_AVX512 static inline __attribute__((always_inline)) void
dwd_rows_body(const ac_conv2d_shape *s, const dwd_plan *v, const dwd_epi *qe, const uint8_t *x,
              int64_t xbytes, int64_t xoff, const int32_t *quads, const epi_consts *e,
              uint8_t *yc, int oh0, int oh1, uint8_t *ws, const bool flip)
{
    const int nk = v->nk;
    __m512i wq[DWP_MAX_QUADS];
    for (int k = 0; k < nk; k++)
        wq[k] = _mm512_set1_epi32(quads[k]);
    const __m512i init = dw_acc_init(e), f80 = _mm512_set1_epi8((char)0x80);
    const __m128i rc = _mm_cvtsi32_si128(e->r);
    /* border blocks: weights with the out-of-row taps zeroed per lane; for
     * int8, starting values that put back the 128 * w those taps would add */
    __m512i *bw = (__m512i *)(void *)ws;
    __m512i *binit = bw + DWD_MAX_BORDER * 4 * nk;
    uint8_t *bounce = (uint8_t *)(binit + DWD_MAX_BORDER * 4);
    for (int bi = 0; bi < v->nborder; bi++)
        for (int t = 0; t < 4; t++) {
            __m512i acc = init;
            for (int k = 0; k < nk; k++) {
                const uint64_t keep = v->wkeep[bi][t][k % v->nq];
                bw[(bi * 4 + t) * nk + k] = _mm512_maskz_mov_epi8(keep, wq[k]);
                if (flip)
                    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_mov_epi8(~keep, f80), wq[k]);
            }
            binit[bi * 4 + t] = acc;
        }
    const __m512i *wuni[4] = {wq, wq, wq, wq};
    const __m512i iuni[4] = {init, init, init, init};
    const int64_t bounce_stride = round_up64(v->rmax - v->rmin, 64);
    const uint8_t *src[DWD_MAX_D];
    __m512i a[4], b[4];
    for (int oh = oh0; oh < oh1; oh += 2) {
        const bool pair = oh + 1 < oh1;
        const int ih0 = oh * s->stride_h - s->pad_top;
        for (int d = 0; d <= v->dmax; d++) {
            const int ih = ih0 + d;
            src[d] = NULL;
            if (ih < 0 || ih >= s->h_in || (v->kya[d] < 0 && (!pair || v->kyb[d] < 0)))
                continue;
            const int64_t off = xoff + (int64_t)ih * s->w_in;
            src[d] = off + v->rmin >= 0 && off + v->rmax <= xbytes
                         ? x + off
                         : dwd_bounce_row(v, x, xbytes, off, bounce + d * bounce_stride);
        }
        for (int cb = 0, bi = 0; cb < v->ncb; cb++) {
            const int col[4] = {dwd_col(s, cb, 0), dwd_col(s, cb, 1), dwd_col(s, cb, 2),
                                dwd_col(s, cb, 3)};
            if (bi < v->nborder && v->border_cb[bi] == cb) {
                const __m512i *wb[4] = {bw + (bi * 4) * nk, bw + (bi * 4 + 1) * nk,
                                        bw + (bi * 4 + 2) * nk, bw + (bi * 4 + 3) * nk};
                dwd_block(v, src, col, wb, binit + bi * 4, pair, a, b, flip);
                bi++;
            } else {
                dwd_block(v, src, col, wuni, iuni, pair, a, b, flip);
            }
            const int n = imin(64, s->w_out - cb * 64);
            uint8_t *dst = yc + (int64_t)oh * s->w_out + cb * 64;
            dwd_emit(qe, e, rc, a[0], a[1], a[2], a[3], dst, n);
            if (pair)
                dwd_emit(qe, e, rc, b[0], b[1], b[2], b[3], dst + s->w_out, n);
        }
    }
}

/* ---- depthwise, narrow planes: windows by permute (AVX-512) --------------------------------
 * For planes too narrow for the dword kernel: a block is R whole output rows
 * (R * w_out <= 64 pixels, pixel 16t + L in lane L of accumulator t) whose
 * input rows fit 128 bytes, loaded as two registers; each lane's 4 taps are
 * gathered from them by one vpermt2b, whose zero mask also drops the taps in
 * the padding (code 0 once offset). The byte indices relative to the block's
 * first input row are the same for every block; the masks (columns inside
 * the row, rows inside the plane) are tabled per block. */

enum {
    DWQ_MAX_NK = DWP_MAX_QUADS / 2, /* kh * ceil(kw / 4): the idx table stays small */
    DWQ_MAX_MASKS = 1024 /* blocks x 4 x nk */
};

typedef struct {
    int R, nblk, nk, nq;
    uint8_t idx[4][DWQ_MAX_NK][64];
    uint64_t mask[DWQ_MAX_MASKS]; /* [block][t][k] */
} dwq_plan;

static bool dwq_plan_of(const ac_conv2d_shape *s, dwq_plan *v)
{
    const int sh = s->stride_h, sw = s->stride_w, dh = s->dil_h, dw = s->dil_w;
    v->nq = div_up(s->kw, 4);
    v->nk = s->kh * v->nq;
    if (v->nk > DWQ_MAX_NK || s->w_in > 128 || s->w_out > 64)
        return false;
    v->R = imin(64 / s->w_out, s->h_out);
    while (v->R > 0 && ((int64_t)(v->R - 1) * sh + (int64_t)(s->kh - 1) * dh + 1) * s->w_in > 128)
        v->R--;
    if (v->R * s->w_out < 32) /* the vpermb kernel fills more lanes */
        return false;
    v->nblk = div_up(s->h_out, v->R);
    if (v->nblk * 4 * v->nk > DWQ_MAX_MASKS)
        return false;
    /* per accumulator: lane bits by block row rr, tap bits inside the row by quad */
    uint64_t rrlanes[4][64] = {{0}}, colbits[4][DWQ_MAX_NK] = {{0}};
    for (int t = 0; t < 4; t++)
        for (int L = 0; L < 16; L++) {
            const int p = 16 * t + L, rr = p / s->w_out, ow = p % s->w_out;
            if (rr < v->R)
                rrlanes[t][rr] |= (uint64_t)0xF << (4 * L);
            for (int qq = 0; qq < v->nq; qq++)
                for (int i = 0; i < 4; i++) {
                    const int kx = 4 * qq + i, iw = ow * sw - s->pad_left + kx * dw;
                    if (kx < s->kw && iw >= 0 && iw < s->w_in)
                        colbits[t][qq] |= (uint64_t)1 << (4 * L + i);
                    for (int ky = 0; ky < s->kh; ky++)
                        v->idx[t][ky * v->nq + qq][4 * L + i] =
                            (uint8_t)(((rr * sh + ky * dh) * s->w_in + iw) & 127);
                }
        }
    for (int b = 0; b < v->nblk; b++)
        for (int ky = 0; ky < s->kh; ky++) {
            uint64_t rows[4] = {0, 0, 0, 0}; /* lanes whose input row is inside the plane */
            for (int rr = 0; rr < v->R && b * v->R + rr < s->h_out; rr++) {
                const int ih = (b * v->R + rr) * sh - s->pad_top + ky * dh;
                if (ih >= 0 && ih < s->h_in)
                    for (int t = 0; t < 4; t++)
                        rows[t] |= rrlanes[t][rr];
            }
            for (int t = 0; t < 4; t++)
                for (int qq = 0; qq < v->nq; qq++)
                    v->mask[(b * 4 + t) * v->nk + ky * v->nq + qq] = rows[t] & colbits[t][qq];
        }
    return true;
}

/* The 128 bytes of x at offset base in two registers; bytes outside x read 0
 * (masked loads only there: they are slow). */
T_AVX512 static inline void dwq_window(const uint8_t *x, int64_t xbytes, int64_t base,
                                       __m512i *lo, __m512i *hi)
{
    if (base >= 0 && base + 128 <= xbytes) {
        *lo = _mm512_loadu_si512(x + base);
        *hi = _mm512_loadu_si512(x + base + 64);
    } else { /* the addresses in integers: they may lie outside x, masked off */
        *lo = _mm512_maskz_loadu_epi8(range_mask64(-base, xbytes - base),
                                      (const void *)((uintptr_t)x + (uintptr_t)base));
        *hi = _mm512_maskz_loadu_epi8(range_mask64(-base - 64, xbytes - base - 64),
                                      (const void *)((uintptr_t)x + (uintptr_t)(base + 64)));
    }
}

/* The byte-index vectors of 3x3 filters (3 tap quads) in registers, loaded
 * once per thread: they are the same for every block and plane. */
typedef struct {
    __m512i v[4][3];
} dwq_idx3;

/* Blocks [b0, b1) of one output plane yc, whose input plane is at byte xoff
 * of x. nk: the tap quads (a constant 3 with ix, whose registers then replace
 * the index table: per block only the two window loads, 12 vpermt2b +
 * vpdpbusd and the epilogue remain). */
T_AVX512 static inline __attribute__((always_inline)) void
dwq_plane_body(const ac_conv2d_shape *s, const dwq_plan *v, const dwq_idx3 *ix, const int nk,
               const dwd_epi *qe, const uint8_t *x, int64_t xbytes, int64_t xoff,
               const int32_t *quads, const epi_consts *e, uint8_t *yc, int b0, int b1,
               const bool flip)
{
    const __m512i init = dw_acc_init(e), f80 = _mm512_set1_epi8((char)0x80);
    const __m128i rc = _mm_cvtsi32_si128(e->r);
    for (int b = b0; b < b1; b++) {
        __m512i lo, hi;
        dwq_window(x, xbytes, xoff + ((int64_t)b * v->R * s->stride_h - s->pad_top) * s->w_in,
                   &lo, &hi);
        const uint64_t *m = &v->mask[(int64_t)b * 4 * nk];
        __m512i a0 = init, a1 = init, a2 = init, a3 = init;
        for (int k = 0; k < nk; k++) {
#define DWQ_TAP(a, t)                                                                          \
    do {                                                                                       \
        __m512i xv_ = _mm512_maskz_permutex2var_epi8(                                          \
            m[(t) * nk + k], lo, ix ? ix->v[t][k] : _mm512_loadu_si512(v->idx[t][k]), hi);     \
        if (flip)                                                                              \
            xv_ = _mm512_xor_si512(xv_, f80);                                                  \
        a = _mm512_dpbusd_epi32(a, xv_, _mm512_set1_epi32(quads[k]));                          \
    } while (0)
            DWQ_TAP(a0, 0);
            DWQ_TAP(a1, 1);
            DWQ_TAP(a2, 2);
            DWQ_TAP(a3, 3);
#undef DWQ_TAP
        }
        dwd_emit(qe, e, rc, a0, a1, a2, a3, yc + (int64_t)b * v->R * s->w_out,
                 imin(v->R, s->h_out - b * v->R) * s->w_out);
    }
}

/* The AVX-512 plane kernels, whichever the shape allows. */
typedef struct {
    enum { DW512_DWORD, DW512_PERM2, DW512_PERM } kind; /* dwd, dwq, dwp */
    int nrb;     /* row blocks (dwd: rows) */
    int sw_epi;  /* lane -> pixel map of the epilogue (dwd_pixel's stride) */
    union {
        dwd_plan d;
        dwq_plan q;
        dwp_plan p;
    } u;
} dw512_plan;

/* Depthwise packing (once per plan, as for GEMM weights): a 64-byte header,
 * each output channel's tap quads (kh * ceil(kw / 4) dwords, dw_tap_quad
 * order), then sum(w) and sum|w| per channel. */
typedef struct {
    uint32_t magic;
    int32_t c_out, kh, kw;
} dw_pack_header;

enum { DW_PACK_MAGIC = 0x44714341 /* "ACqD" */ };

static int dw_nk(const ac_conv2d_shape *s) { return s->kh * div_up(s->kw, 4); }

static size_t dw_pack_bytes(const ac_conv2d_shape *s)
{
    return ALIGN + sizeof(int32_t) * (size_t)s->c_out * (size_t)(dw_nk(s) + 2);
}

/* quads (nk dwords) and {sum(w), sum|w|} of output channel oc's filter */
static void dw_pack_chan(const ac_conv2d_shape *s, const int8_t *w, int oc, int32_t *quads,
                         int32_t sums[2])
{
    const int nq = div_up(s->kw, 4), ksz = s->kh * s->kw;
    const int8_t *wc = w + (int64_t)oc * ksz;
    for (int ky = 0; ky < s->kh; ky++)
        for (int qq = 0; qq < nq; qq++)
            quads[ky * nq + qq] = dw_tap_quad(s, wc, ky, qq);
    sums[0] = sums[1] = 0;
    for (int i = 0; i < ksz; i++) {
        sums[0] += wc[i];
        sums[1] += wc[i] < 0 ? -wc[i] : wc[i];
    }
}

static void dw_pack(const ac_conv_q8_params *p, uint8_t *base)
{
    const ac_conv2d_shape *s = &p->s;
    const int nk = dw_nk(s);
    dw_pack_header h = {DW_PACK_MAGIC, s->c_out, s->kh, s->kw};
    memset(base, 0, ALIGN);
    memcpy(base, &h, sizeof h);
    int32_t *quads = (int32_t *)(void *)(base + ALIGN);
    int32_t(*sums)[2] = (int32_t(*)[2])(void *)(quads + (int64_t)s->c_out * nk);
    for (int oc = 0; oc < s->c_out; oc++)
        dw_pack_chan(s, p->w, oc, quads + (int64_t)oc * nk, sums[oc]);
}

static bool dw_packed_matches(const ac_conv_q8_params *p)
{
    if (!p->w_packed)
        return false;
    dw_pack_header h;
    memcpy(&h, p->w_packed, sizeof h);
    return h.magic == DW_PACK_MAGIC && h.c_out == p->s.c_out && h.kh == p->s.kh &&
           h.kw == p->s.kw;
}

/* Units [lo, hi) of (image, output channel, share of the row blocks), in that
 * order (channels of an image next to each other); planes are split into row
 * shares only when there are too few planes for the threads. Per unit: the
 * channel's tap quads and sums (packed, or computed), its epilogue start value
 * and shift, then the plane kernel. A template for the kernel kind and the
 * input signedness (constants once inlined), so that the small-plane kernels
 * run with no call per plane. */
T_AVX512 static inline __attribute__((always_inline)) void
dw512_walk(const ac_conv_q8_params *p, const dw512_plan *v, const uint8_t *x, uint8_t *y,
           uint8_t *ws, int64_t lo, int64_t hi, int shares, const int kind, const bool flip)
{
    const ac_conv2d_shape *s = &p->s;
    const int cout_g = s->c_out / s->groups, nk = dw_nk(s);
    const int64_t plane_in = (int64_t)s->h_in * s->w_in, plane_out = (int64_t)s->h_out * s->w_out;
    const int64_t xbytes = (int64_t)s->n * s->c_in * plane_in;
    const int32_t xmax = flip ? 128 : 255;
    const bool packed = dw_packed_matches(p);
    const int32_t *pq = packed ? (const int32_t *)(const void *)((const uint8_t *)p->w_packed + ALIGN) : NULL;
    const int32_t(*psums)[2] = packed ? (const int32_t(*)[2])(const void *)(pq + (int64_t)s->c_out * nk) : NULL;
    int64_t plane = lo / shares;
    int share = (int)(lo % shares);
    int oc = (int)(plane % s->c_out), ocg = oc % cout_g, ic = oc / cout_g; /* oc = ic * cout_g + ocg */
    int64_t img = plane / s->c_out;
    /* every channel's epilogue is the simple one when even the largest filter
     * sum fits (always for real kernels): then only init and r vary */
    const bool all_simple = (int64_t)s->kh * s->kw * 128 * xmax + 32768 + ((int64_t)1 << 30) <= INT32_MAX;
    epi_consts e;
    epi_init(&e, false, 0, 0, 0, 0, p->relu, p->clip_hi, p->y_signed); /* lo, hi */
    dwd_epi qe;
    if (kind != DW512_PERM)
        dwd_epi_init(&qe, v->sw_epi, &e, p->y_signed);
    /* narrow planes with 3x3 filters: the index vectors in registers */
    const bool plane3 = kind == DW512_PERM2 && nk == 3;
    dwq_idx3 ix3;
    if (plane3)
        for (int t = 0; t < 4; t++)
            for (int k = 0; k < 3; k++)
                ix3.v[t][k] = _mm512_loadu_si512(v->u.q.idx[t][k]);
    int32_t own_quads[DWP_MAX_QUADS], own_sums[2];
    for (int64_t u = lo; u < hi; u++) {
        const int32_t *quads = own_quads, *sums = own_sums;
        if (packed) {
            quads = pq + (int64_t)oc * nk;
            sums = psums[oc];
        } else {
            dw_pack_chan(s, p->w, oc, own_quads, own_sums);
        }
        const int32_t bias = p->bias ? p->bias[oc] : 0, r = p->rshift[oc];
        if (all_simple) {
            e.r = r;
            e.init = (int32_t)((flip ? 0u - (uint32_t)sums[0] * 128u : 0u) + (uint32_t)bias +
                               (r > 0 ? 1u << (r - 1) : 0u));
        } else {
            epi_init(&e, flip, sums[0], (int64_t)sums[1] * xmax, bias, r, p->relu, p->clip_hi,
                     p->y_signed);
        }
        const int rb0 = shares == 1 ? 0 : (int)((int64_t)v->nrb * share / shares);
        const int rb1 = shares == 1 ? v->nrb : (int)((int64_t)v->nrb * (share + 1) / shares);
        const int64_t xoff = (img * s->c_in + ic) * plane_in;
        uint8_t *yc = y + plane * plane_out;
        if (kind == DW512_PERM)
            dwp_plane_avx512(s, &v->u.p, x, xbytes, xoff, quads, &e, flip ? 0x80 : 0, yc, rb0,
                             rb1);
        else if (kind == DW512_PERM2 && plane3 && rb0 == 0 && rb1 == 1) /* one block: no loop */
            dwq_plane_body(s, &v->u.q, &ix3, 3, &qe, x, xbytes, xoff, quads, &e, yc, 0, 1, flip);
        else if (kind == DW512_PERM2 && plane3)
            dwq_plane_body(s, &v->u.q, &ix3, 3, &qe, x, xbytes, xoff, quads, &e, yc, rb0, rb1, flip);
        else if (kind == DW512_PERM2)
            dwq_plane_body(s, &v->u.q, NULL, nk, &qe, x, xbytes, xoff, quads, &e, yc, rb0, rb1,
                           flip);
        else
            dwd_rows_body(s, &v->u.d, &qe, x, xbytes, xoff, quads, &e, yc, rb0, rb1, ws, flip);
        if (++share == shares) { /* next plane */
            share = 0;
            plane++;
            if (++ocg == cout_g) {
                ocg = 0;
                ic++;
            }
            if (++oc == s->c_out) {
                oc = ocg = ic = 0;
                img++;
            }
        }
    }
}

#define DW512_WALK(name, kind, flip)                                                           \
    T_AVX512 static void name(const ac_conv_q8_params *p, const dw512_plan *v, const uint8_t *x, \
                              uint8_t *y, uint8_t *ws, int64_t lo, int64_t hi, int shares)     \
    {                                                                                          \
        dw512_walk(p, v, x, y, ws, lo, hi, shares, kind, flip);                                \
    }
DW512_WALK(dw512_walk_d_u8, DW512_DWORD, false)
DW512_WALK(dw512_walk_d_s8, DW512_DWORD, true)
DW512_WALK(dw512_walk_q_u8, DW512_PERM2, false)
DW512_WALK(dw512_walk_q_s8, DW512_PERM2, true)
DW512_WALK(dw512_walk_p_u8, DW512_PERM, false)
DW512_WALK(dw512_walk_p_s8, DW512_PERM, true)
#undef DW512_WALK

static void conv_depthwise_512(const ac_conv_q8_params *p, const dw512_plan *v, const uint8_t *x,
                               uint8_t *y, void *scratch, int ith, int nth)
{
    const ac_conv2d_shape *s = &p->s;
    const int64_t planes = (int64_t)s->n * s->c_out;
    const int shares =
        planes >= 4 * (int64_t)nth ? 1 : imin(v->nrb, div_up(4 * nth, (int)planes));
    int64_t lo, hi;
    ac_ref_range(planes * shares, ith, nth, &lo, &hi);
    if (lo >= hi)
        return;
    uint8_t *ws = align_up((uint8_t *)scratch + (size_t)ith * dw_scratch_slice(s));
    const bool sg = p->x_signed;
    switch (v->kind) {
    case DW512_DWORD: (sg ? dw512_walk_d_s8 : dw512_walk_d_u8)(p, v, x, y, ws, lo, hi, shares); break;
    case DW512_PERM2: (sg ? dw512_walk_q_s8 : dw512_walk_q_u8)(p, v, x, y, ws, lo, hi, shares); break;
    default: (sg ? dw512_walk_p_s8 : dw512_walk_p_u8)(p, v, x, y, ws, lo, hi, shares); break;
    }
}

static bool dw512_plan_of(const ac_conv2d_shape *s, dw512_plan *v)
{
    if (dwd_plan_of(s, &v->u.d)) {
        v->kind = DW512_DWORD;
        v->nrb = s->h_out;
        v->sw_epi = s->stride_w;
        return true;
    }
    if (dwq_plan_of(s, &v->u.q)) {
        v->kind = DW512_PERM2;
        v->nrb = v->u.q.nblk;
        v->sw_epi = 4; /* pixel 16t + L */
        return true;
    }
    v->kind = DW512_PERM;
    if (!dwp_plan_of(s, &v->u.p))
        return false;
    v->nrb = v->u.p.nrb;
    return true;
}

static void conv_depthwise(const ac_conv_q8_params *p, const uint8_t *x, uint8_t *y,
                           void *scratch, int ith, int nth, ac_q8_isa isa)
{
    const ac_conv2d_shape *s = &p->s;
    dw512_plan pl;
    if (isa == AC_Q8_ISA_AVX512) {
        if (dw512_plan_of(s, &pl)) {
            conv_depthwise_512(p, &pl, x, y, scratch, ith, nth);
            return;
        }
        isa = AC_Q8_ISA_AVX2; /* taps too far apart for a 64-byte window */
    }
    dw_geom d;
    dw_geom_of(s, &d);
    uint8_t *pad = align_up((uint8_t *)scratch + (size_t)ith * dw_scratch_slice(s));
    const int cout_g = s->c_out / s->groups;
    const int ksz = s->kh * s->kw;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    const uint8_t flip = p->x_signed ? 0x80 : 0;
    const bool pairs = dw_pairs_usable(s);
    int64_t lo, hi, padded = -1;
    ac_ref_range((int64_t)s->n * s->c_out, ith, nth, &lo, &hi);
    for (int64_t plane = lo; plane < hi; plane++) {
        const int oc = (int)(plane % s->c_out);
        const int64_t img = plane / s->c_out;
        const int64_t in_plane = img * s->c_in + oc / cout_g;
        if (in_plane != padded) { /* channel multipliers share the padded input */
            dw_pad_plane(s, &d, x + in_plane * plane_in, pad, flip);
            padded = in_plane;
        }
        const int8_t *wc = p->w + (int64_t)oc * ksz;
        int32_t wsum = 0, wabs = 0;
        for (int i = 0; i < ksz; i++) {
            wsum += wc[i];
            wabs += wc[i] < 0 ? -wc[i] : wc[i];
        }
        epi_consts e;
        epi_init(&e, p->x_signed, wsum, (int64_t)wabs * (p->x_signed ? 128 : 255),
                 p->bias ? p->bias[oc] : 0, p->rshift[oc], p->relu, p->clip_hi, p->y_signed);
        uint8_t *yc = y + plane * plane_out;
        if (isa == AC_Q8_ISA_AVX2 && pairs)
            dw_plane_pairs_avx2(s, &d, pad, wc, &e, yc);
        else if (isa == AC_Q8_ISA_AVX2)
            dw_plane_avx2(s, &d, pad, wc, &e, yc);
        else
            dw_plane_scalar(s, &d, pad, wc, &e, yc);
    }
}

/* ---- conv entry points -------------------------------------------------------------------- */

size_t ac_conv2d_q8_scratch_bytes(const ac_conv_q8_params *p, int nth)
{
    const ac_conv2d_shape *s = &p->s;
    if (nth < 1)
        nth = 1;
    if (conv_is_empty(s))
        return 0;
    if (conv_is_direct_dw(s))
        return (size_t)nth * dw_scratch_slice(s);
    gemm_geom g;
    gemm_geom_of(s, &g);
    return (size_t)nth * gemm_slice_bytes(s, &g);
}

void ac_conv2d_q8_isa(const ac_conv_q8_params *p, const void *x, void *y, void *scratch, int ith,
                      int nth, ac_q8_isa isa)
{
    if (nth < 1) {
        nth = 1;
        ith = 0;
    }
    if (conv_is_empty(&p->s))
        return;
    isa = ac_q8_isa_resolve(isa);
    if (conv_is_direct_dw(&p->s))
        conv_depthwise(p, x, y, scratch, ith, nth, isa);
    else
        conv_gemm(p, x, y, scratch, ith, nth, isa);
}

void ac_conv2d_q8(const ac_conv_q8_params *p, const void *x, void *y, void *scratch, int ith,
                  int nth)
{
    if (ac_kernels_ref_forced() || (!scratch && ac_conv2d_q8_scratch_bytes(p, nth) > 0)) {
        ac_conv2d_q8__ref(p, x, y, ith, nth);
        return;
    }
    ac_conv2d_q8_isa(p, x, y, scratch, ith, nth, AC_Q8_ISA_AUTO);
}

/* ---- fully connected ---------------------------------------------------------------------- */

/* Each thread converts x once into its slice (offset bytes for AVX-512, int16
 * for AVX2), zero-padded to whole vectors, then computes a contiguous range of
 * output features for every row, 4 rows at a time so each weight load serves 4. */
static int64_t fc_kpad(const ac_fc_q8_params *p) { return round_up64(p->k, 64); }

static size_t fc_slice_bytes(const ac_fc_q8_params *p)
{
    return (size_t)round_up64(p->m * fc_kpad(p) * 2, ALIGN) + ALIGN;
}

size_t ac_fc_q8_scratch_bytes(const ac_fc_q8_params *p, int nth)
{
    if (nth < 1)
        nth = 1;
    if (p->m <= 0 || p->n <= 0 || p->k <= 0)
        return 0;
    return (size_t)nth * fc_slice_bytes(p);
}

static void fc_epi(const ac_fc_q8_params *p, int64_t o, bool offset, int32_t wsum, int64_t i,
                   uint32_t acc, uint8_t *y)
{
    epi_consts e;
    epi_init(&e, offset, wsum, -1, p->bias ? p->bias[o] : 0, p->rshift[o], p->relu, p->clip_hi,
             p->y_signed);
    y[i * p->n + o] = (uint8_t)requant1(acc, &e);
}

static void fc_portable(const ac_fc_q8_params *p, const uint8_t *x, uint8_t *y, int64_t lo,
                        int64_t hi)
{
    for (int64_t o = lo; o < hi; o++) {
        const int8_t *w = p->w + o * p->k;
        for (int64_t i = 0; i < p->m; i++) {
            uint32_t acc = 0;
            for (int64_t kk = 0; kk < p->k; kk++)
                acc += (uint32_t)(ac_q8_get(x, p->x_signed, i * p->k + kk) * w[kk]);
            fc_epi(p, o, false, 0, i, acc, y);
        }
    }
}

T_AVX2 static void fc_avx2(const ac_fc_q8_params *p, const uint8_t *x, uint8_t *y, int64_t lo,
                           int64_t hi, uint8_t *slice)
{
    const int64_t kp = fc_kpad(p);
    int16_t *xs = (int16_t *)(void *)slice;
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t kk = 0; kk < kp; kk++)
            xs[i * kp + kk] = (int16_t)(kk < p->k ? ac_q8_get(x, p->x_signed, i * p->k + kk) : 0);
    for (int64_t o = lo; o < hi; o++) {
        const int8_t *w = p->w + o * p->k;
        for (int64_t i0 = 0; i0 < p->m; i0 += 4) {
            const int rows = (int)(p->m - i0 < 4 ? p->m - i0 : 4);
            const int16_t *xr[4];
            for (int r = 0; r < 4; r++) /* spare rows repeat row i0 */
                xr[r] = xs + (i0 + (r < rows ? r : 0)) * kp;
            __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
            __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
            for (int64_t kk = 0; kk < p->k; kk += 16) {
                __m128i wb;
                if (kk + 16 <= p->k) {
                    wb = _mm_loadu_si128((const __m128i *)(w + kk));
                } else {
                    int8_t tmp[16] = {0};
                    memcpy(tmp, w + kk, (size_t)(p->k - kk));
                    wb = _mm_loadu_si128((const __m128i *)tmp);
                }
                const __m256i wv = _mm256_cvtepi8_epi16(wb);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xr[0] + kk)), wv));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xr[1] + kk)), wv));
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xr[2] + kk)), wv));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xr[3] + kk)), wv));
            }
            __m256i acc[4] = {a0, a1, a2, a3};
            for (int r = 0; r < rows; r++) {
                int32_t lanes[8];
                _mm256_storeu_si256((__m256i *)lanes, acc[r]);
                uint32_t sum = 0;
                for (int l = 0; l < 8; l++)
                    sum += (uint32_t)lanes[l];
                fc_epi(p, o, false, 0, i0 + r, sum, y);
            }
        }
    }
}

T_AVX512 static void fc_avx512(const ac_fc_q8_params *p, const uint8_t *x, uint8_t *y,
                               int64_t lo, int64_t hi, uint8_t *slice)
{
    const int64_t kp = fc_kpad(p);
    const uint8_t flip = p->x_signed ? 0x80 : 0;
    uint8_t *xs = slice;
    for (int64_t i = 0; i < p->m; i++) {
        memset(xs + i * kp, 0, (size_t)kp);
        for (int64_t kk = 0; kk < p->k; kk++)
            xs[i * kp + kk] = x[i * p->k + kk] ^ flip;
    }
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    for (int64_t o = lo; o < hi; o++) {
        const int8_t *w = p->w + o * p->k;
        int32_t wsum = 0; /* sum(w): from 128 * sum(w) computed on the first row block */
        for (int64_t i0 = 0; i0 < p->m; i0 += 4) {
            const int rows = (int)(p->m - i0 < 4 ? p->m - i0 : 4);
            const uint8_t *xr[4];
            for (int r = 0; r < 4; r++)
                xr[r] = xs + (i0 + (r < rows ? r : 0)) * kp;
            const bool want_sum = i0 == 0 && p->x_signed;
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
            __m512i ws = _mm512_setzero_si512();
            for (int64_t kk = 0; kk < p->k; kk += 64) {
                const int64_t left = p->k - kk;
                const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
                const __m512i wv = _mm512_maskz_loadu_epi8(m, w + kk);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xr[0] + kk), wv);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(xr[1] + kk), wv);
                a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(xr[2] + kk), wv);
                a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(xr[3] + kk), wv);
                if (want_sum)
                    ws = _mm512_dpbusd_epi32(ws, k80, wv);
            }
            if (want_sum) /* 128 * sum(w) is exact in int32 (|sum(w)| <= 128 k) */
                wsum = _mm512_reduce_add_epi32(ws) / 128;
            __m512i acc[4] = {a0, a1, a2, a3};
            for (int r = 0; r < rows; r++)
                fc_epi(p, o, p->x_signed, wsum, i0 + r,
                       (uint32_t)_mm512_reduce_add_epi32(acc[r]), y);
        }
    }
}

void ac_fc_q8_isa(const ac_fc_q8_params *p, const void *x, void *y, void *scratch, int ith,
                  int nth, ac_q8_isa isa)
{
    if (nth < 1) {
        nth = 1;
        ith = 0;
    }
    if (p->m <= 0 || p->n <= 0)
        return;
    isa = ac_q8_isa_resolve(isa);
    if (p->k <= 0)
        isa = AC_Q8_ISA_PORTABLE; /* no scratch then */
    int64_t lo, hi;
    ac_ref_range(p->n, ith, nth, &lo, &hi);
    if (lo >= hi)
        return;
    uint8_t *slice = isa == AC_Q8_ISA_PORTABLE
                         ? NULL
                         : align_up((uint8_t *)scratch + (size_t)ith * fc_slice_bytes(p));
    switch (isa) {
    case AC_Q8_ISA_AVX512: fc_avx512(p, x, y, lo, hi, slice); break;
    case AC_Q8_ISA_AVX2: fc_avx2(p, x, y, lo, hi, slice); break;
    default: fc_portable(p, x, y, lo, hi); break;
    }
}

void ac_fc_q8(const ac_fc_q8_params *p, const void *x, void *y, void *scratch, int ith, int nth)
{
    if (ac_kernels_ref_forced() || (!scratch && ac_fc_q8_scratch_bytes(p, nth) > 0)) {
        ac_fc_q8__ref(p, x, y, ith, nth);
        return;
    }
    ac_fc_q8_isa(p, x, y, scratch, ith, nth, AC_Q8_ISA_AUTO);
}
