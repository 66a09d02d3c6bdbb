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
 * Depthwise convs (one input channel per group): with AVX-512, 16 channels per
 * vector on a transposed input strip (see the channels-in-lanes section);
 * otherwise (and for dilated columns / channel multipliers) plane by plane on
 * a zero-padded copy, with vpermb gathering 4 taps per dword on AVX-512.
 *
 * Threads: tiles (image*group, column block, row block) or planes or FC
 * features are split in contiguous ranges; tile sizes may depend on nth
 * because integer results do not depend on the order of the sums. */
#include "ac_int8_fast.h"
#include "ac_int8_fast_internal.h"

#include <immintrin.h>
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

static const uint8_t k_zero_row[NB_MAX];

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

/* ---- GEMM geometry and weight packing ---------------------------------------------------- */

/* Two ways to feed B:
 * - implicit (stride 1): the input of one (image, group) is stored once as
 *   xq[c/4][hp][wp][4] (4 channels per dword, zero-padded plane hp x wp).
 *   With outputs computed on the padded grid (j = oh * wp + ow, ow < wp), the
 *   input of tap (ky, kx) for output j is at j + ky*dh*wp + kx*dw: 32
 *   consecutive outputs read 128 contiguous bytes, no im2col at all. Columns
 *   ow >= w_out are computed and dropped. K is ordered (tap, channel quad).
 * - im2col (other strides): B blocks are built per column block in panels of
 *   NR pixels ([kq][NR][4]); K is ordered (channel, ky, kx) as in OIHW. */
typedef struct {
    int cin_g, cout_g;
    int k;       /* K */
    bool implicit;
    int taps;    /* implicit: kh * kw; im2col: 1 */
    int cq;      /* quads per tap: implicit ceil(cin_g / 4); im2col kq */
    int kq;      /* quads of K: taps * cq */
    int hp, wp;  /* implicit: padded input plane */
    int n;       /* output columns per image: implicit h_out * wp, else h_out * w_out */
    int npan;    /* weight panels per group */
    int nb;      /* column block (multiple of NR) */
} gemm_geom;

static bool conv_is_pointwise(const ac_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_left == 0 && s->h_out == s->h_in && s->w_out == s->w_in;
}

static void gemm_geom_of(const ac_conv2d_shape *s, gemm_geom *g)
{
    g->cin_g = s->groups > 0 ? s->c_in / s->groups : 0;
    g->cout_g = s->groups > 0 ? s->c_out / s->groups : 0;
    g->k = g->cin_g * s->kh * s->kw;
    /* pointwise convs keep the im2col path: its B rows are the input rows, packed
     * block by block so each block stays in L2 (faster than a whole-plane xq) */
    g->implicit = s->stride_h == 1 && s->stride_w == 1 && s->kh * s->kw <= MAX_TAPS &&
                  !conv_is_pointwise(s);
    if (g->implicit) {
        g->taps = s->kh * s->kw;
        g->cq = div_up(g->cin_g, 4);
        g->hp = s->h_out + (s->kh - 1) * s->dil_h;
        g->wp = s->w_out + (s->kw - 1) * s->dil_w;
        g->n = s->h_out * g->wp;
    } else {
        g->taps = 1;
        g->cq = div_up(g->k, 4);
        g->hp = g->wp = 0;
        g->n = s->h_out * s->w_out;
    }
    g->kq = g->taps * g->cq;
    g->npan = div_up(g->cout_g, MR);
    int nb = B_BLOCK_BYTES / (imax(g->kq, 1) * 4) / NR * NR;
    nb = imax(NR, imin(nb, NB_MAX));
    g->nb = imin(nb, (int)round_up64(imax(g->n, 1), NR));
}

/* implicit: bytes of xq plus the slack its last reads run into */
static size_t xq_bytes(const ac_conv2d_shape *s, const gemm_geom *g)
{
    return (size_t)g->cq * g->hp * g->wp * 4 + 4 * ((size_t)(s->kw - 1) * s->dil_w + NR) + ALIGN;
}

static size_t panel_s8_bytes(const gemm_geom *g) { return (size_t)g->kq * MR * 4; }

/* Packed weights: a 64-byte header, then every panel as int8, every panel as
 * int16, then per output channel sum(w) and sum|w|. */
typedef struct {
    uint32_t magic;
    int32_t c_out, k, groups, mr, kq, implicit;
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

size_t ac_conv_q8_pack_bytes(const ac_conv_q8_params *p)
{
    const ac_conv2d_shape *s = &p->s;
    if (conv_is_empty(s) || conv_is_direct_dw(s))
        return 0;
    gemm_geom g;
    gemm_geom_of(s, &g);
    return pack_off_sums(s, &g) + 2 * sizeof(int32_t) * (size_t)s->c_out;
}

void ac_conv_q8_pack(const ac_conv_q8_params *p, void *packed)
{
    const ac_conv2d_shape *s = &p->s;
    if (ac_conv_q8_pack_bytes(p) == 0)
        return;
    gemm_geom g;
    gemm_geom_of(s, &g);
    uint8_t *base = packed;
    pack_header h = {PACK_MAGIC, s->c_out, g.k, s->groups, MR, g.kq, g.implicit};
    memset(base, 0, ALIGN);
    memcpy(base, &h, sizeof h);
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
        }
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

/* ---- B packing (im2col into quad panels) --------------------------------------------------- */

/* Row k of the im2col matrix for output pixels [j0, j0 + nb): codes, 0 for padding. */
static void im2col_row(uint8_t *row, const ac_conv2d_shape *s, const uint8_t *xg, int k, int j0,
                       int nb)
{
    const int ksz = s->kh * s->kw;
    const int ci = k / ksz, ky = (k % ksz) / s->kw, kx = k % s->kw;
    const int64_t plane = (int64_t)s->h_in * s->w_in;
    const uint8_t *xc = xg + ci * plane;
    const int sw = s->stride_w, off = kx * s->dil_w - s->pad_left;
    /* valid ow: 0 <= ow * sw + off < w_in */
    const int vlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    const int vhi = s->w_in - 1 - off < 0 ? 0 : imin(s->w_out, (s->w_in - 1 - off) / sw + 1);
    int j = j0;
    while (j < j0 + nb) {
        const int oh = j / s->w_out, ow_a = j % s->w_out;
        const int ow_b = imin(s->w_out, ow_a + (j0 + nb - j));
        uint8_t *d = row + (j - j0); /* d[ow - ow_a] for ow in [ow_a, ow_b) */
        const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
        if (ih < 0 || ih >= s->h_in) {
            memset(d, 0, (size_t)(ow_b - ow_a));
        } else {
            const uint8_t *src = xc + (int64_t)ih * s->w_in; /* src[ow * sw + off] */
            const int va = imax(imin(vlo, ow_b), ow_a), vb = imax(imin(vhi, ow_b), va);
            memset(d, 0, (size_t)(va - ow_a));
            if (sw == 1) {
                memcpy(d + (va - ow_a), src + va + off, (size_t)(vb - va));
            } else {
                int ow = va;
                if (sw == 2) {
                    /* even bytes of 32: mask to 16-bit lanes, pack; only while the
                     * 32-byte read stays inside the plane */
                    const int64_t plane_left = plane - (int64_t)ih * s->w_in - off;
                    const __m128i m = _mm_set1_epi16(0x00FF);
                    for (; ow + 16 <= vb && 2 * (int64_t)ow + 32 <= plane_left; ow += 16) {
                        const uint8_t *sp = src + 2 * ow + off;
                        __m128i lo = _mm_loadu_si128((const __m128i *)sp);
                        __m128i hi = _mm_loadu_si128((const __m128i *)(sp + 16));
                        _mm_storeu_si128((__m128i *)(d + (ow - ow_a)),
                                         _mm_packus_epi16(_mm_and_si128(lo, m),
                                                          _mm_and_si128(hi, m)));
                    }
                }
                for (; ow < vb; ow++)
                    d[ow - ow_a] = src[(int64_t)ow * sw + off];
            }
            memset(d + (vb - ow_a), 0, (size_t)(ow_b - vb));
        }
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
                im2col_row(r, s, xg, k, j0, nb);
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

T_AVX512 static void uk_8x32_avx512(const b_walk *bw, const int8_t *w, const uint8_t *b,
                                    int32_t *c)
{
    __m512i c00 = _mm512_setzero_si512(), c01 = _mm512_setzero_si512();
    __m512i c10 = _mm512_setzero_si512(), c11 = _mm512_setzero_si512();
    __m512i c20 = _mm512_setzero_si512(), c21 = _mm512_setzero_si512();
    __m512i c30 = _mm512_setzero_si512(), c31 = _mm512_setzero_si512();
    __m512i c40 = _mm512_setzero_si512(), c41 = _mm512_setzero_si512();
    __m512i c50 = _mm512_setzero_si512(), c51 = _mm512_setzero_si512();
    __m512i c60 = _mm512_setzero_si512(), c61 = _mm512_setzero_si512();
    __m512i c70 = _mm512_setzero_si512(), c71 = _mm512_setzero_si512();
    const int64_t bstride = bw->bstride;
    for (int t = 0; t < bw->taps; t++) {
        const uint8_t *bq = b + bw->tapoff[t];
        for (int q = 0; q < bw->cq; q++, bq += bstride, w += MR * 4) {
            const __m512i b0 = _mm512_loadu_si512(bq);
            const __m512i b1 = _mm512_loadu_si512(bq + 64);
            int32_t wv;
            __m512i ww;
#define AC_ROW(r, lo, hi)                                                                    \
    memcpy(&wv, w + (r) * 4, sizeof wv);                                                     \
    ww = _mm512_set1_epi32(wv);                                                              \
    lo = _mm512_dpbusd_epi32(lo, b0, ww);                                                    \
    hi = _mm512_dpbusd_epi32(hi, b1, ww);
            AC_ROW(0, c00, c01)
            AC_ROW(1, c10, c11)
            AC_ROW(2, c20, c21)
            AC_ROW(3, c30, c31)
            AC_ROW(4, c40, c41)
            AC_ROW(5, c50, c51)
            AC_ROW(6, c60, c61)
            AC_ROW(7, c70, c71)
#undef AC_ROW
        }
    }
#define AC_ST(r, lo, hi)                                                                     \
    _mm512_storeu_si512(c + (r) * NR, lo);                                                   \
    _mm512_storeu_si512(c + (r) * NR + 16, hi);
    AC_ST(0, c00, c01)
    AC_ST(1, c10, c11)
    AC_ST(2, c20, c21)
    AC_ST(3, c30, c31)
    AC_ST(4, c40, c41)
    AC_ST(5, c50, c51)
    AC_ST(6, c60, c61)
    AC_ST(7, c70, c71)
#undef AC_ST
}

/* ---- implicit B: the quad-interleaved padded input ----------------------------------------- */

/* dst[j][i] = rows[i][j] ^ flip for j < n (4 rows into n dwords). */
static void interleave4(uint8_t *dst, const uint8_t *const rows[4], int n, uint8_t flip)
{
    const __m128i f = _mm_set1_epi8((char)flip);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
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

/* xq[c/4][hp][wp][4] of one (image, group) input xg: padding and channels past
 * cin_g read code 0; the slack after it is filled too (its reads are dropped). */
static void build_xq(uint8_t *xq, uint8_t *rowbuf, const ac_conv2d_shape *s, const gemm_geom *g,
                     const uint8_t *xg, uint8_t flip)
{
    const int64_t plane = (int64_t)s->h_in * s->w_in;
    const size_t rowcap = (size_t)imax(NB_MAX, g->wp) + 16;
    const bool no_pad_cols = s->pad_left == 0 && g->wp == s->w_in;
    for (int c4 = 0; c4 < g->cq; c4++) {
        for (int hr = 0; hr < g->hp; hr++) {
            const int ih = hr - s->pad_top;
            const uint8_t *rows[4];
            for (int i = 0; i < 4; i++) {
                const int ci = 4 * c4 + i;
                if (ci >= g->cin_g || ih < 0 || ih >= s->h_in) {
                    rows[i] = k_zero_row; /* wp <= NB_MAX here, else a zeroed row buffer */
                    if (g->wp > NB_MAX) {
                        uint8_t *r = rowbuf + (size_t)i * rowcap;
                        memset(r, 0, (size_t)g->wp);
                        rows[i] = r;
                    }
                    continue;
                }
                const uint8_t *src = xg + ci * plane + (int64_t)ih * s->w_in;
                if (no_pad_cols) {
                    rows[i] = src;
                    continue;
                }
                uint8_t *r = rowbuf + (size_t)i * rowcap;
                const int c0 = imax(0, imin(s->pad_left, g->wp));
                const int c1 = imax(c0, imin(s->pad_left + s->w_in, g->wp));
                memset(r, 0, (size_t)c0);
                memcpy(r + c0, src + (c0 - s->pad_left), (size_t)(c1 - c0));
                memset(r + c1, 0, (size_t)(g->wp - c1));
                rows[i] = r;
            }
            interleave4(xq + ((int64_t)c4 * g->hp + hr) * g->wp * 4, rows, g->wp, flip);
        }
    }
    const size_t body = (size_t)g->cq * g->hp * g->wp * 4;
    memset(xq + body, flip, xq_bytes(s, g) - body);
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
} gemm_run;

/* Micro-tile (weight panel w8/w16 for rows r0.. of the group, B at b for
 * columns [j, j + nc)). */
static void gemm_micro(const gemm_run *gr, const int8_t *w8, const int16_t *w16, int r0,
                       const uint8_t *b, int j, int nc)
{
    const ac_conv2d_shape *s = &gr->p->s;
    const gemm_geom *g = gr->g;
    int32_t *tile = gr->sl->tile;
    const int rows = imin(MR, g->cout_g - r0);
    switch (gr->isa) {
    case AC_Q8_ISA_AVX512: uk_8x32_avx512(&gr->bw, w8, b, tile); break;
    case AC_Q8_ISA_AVX2: uk_avx2(&gr->bw, w16, b, tile); break;
    default: uk_portable(&gr->bw, w8, b, tile); break;
    }
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    for (int r = 0; r < rows; r++) {
        const epi_consts *e = &gr->sl->ec[r0 + r];
        uint8_t *yrow = gr->yimg + (int64_t)(r0 + r) * plane_out;
        const bool contiguous = !g->implicit || g->wp == s->w_out;
        uint8_t codes[NR];
        uint8_t *dst = contiguous ? yrow + j : codes;
        switch (gr->isa) {
        case AC_Q8_ISA_AVX512: epi_row_avx512(tile + r * NR, nc, e, dst); break;
        case AC_Q8_ISA_AVX2: epi_row_avx2(tile + r * NR, nc, e, dst); break;
        default: epi_row_scalar(tile + r * NR, nc, e, dst); break;
        }
        if (contiguous)
            continue;
        /* padded-grid columns j.. to output pixels: row segments, ow >= w_out dropped */
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
    const uint8_t flip = p->x_signed ? 0x80 : 0;
    const int64_t xmax = p->x_signed ? 128 : 255;
    int64_t tapoff[MAX_TAPS];
    gemm_run gr = {p, &g, &sl, isa, {g.taps, g.cq, tapoff, 0}, NULL};
    if (g.implicit) {
        gr.bw.bstride = (int64_t)g.hp * g.wp * 4;
        for (int t = 0; t < g.taps; t++)
            tapoff[t] = ((int64_t)(t / s->kw) * s->dil_h * g.wp + (int64_t)(t % s->kw) * s->dil_w) * 4;
    } else {
        gr.bw.bstride = NR * 4;
        tapoff[0] = 0;
    }
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
                build_xq(sl.bp, sl.rowbuf, s, &g, xg, flip);
            else
                pack_b(sl.bp, sl.rowbuf, s, &g, xg, j0, ncols, flip);
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

static size_t dwc_slice_bytes(const ac_conv2d_shape *s);

/* One thread's depthwise scratch: enough for either kernel. */
static size_t dw_scratch_slice(const ac_conv2d_shape *s)
{
    size_t a = dw_slice_bytes(s), b = dwc_slice_bytes(s);
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
        for (int c = 0; c < c1 - c0; c++)
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

/* Vector shape of the AVX-512 depthwise kernel: R output rows of wv pixels
 * (R > 1 only when wv = w_out < 16), and the vpermb index: byte 4L+i of the
 * vector = offset of tap i of lane L from the vector's base. */
typedef struct {
    int R, wv;
    uint8_t idx[64];
} dw_vec;

static bool dw_vec_plan(const ac_conv2d_shape *s, const dw_geom *d, dw_vec *v)
{
    const int taps = imin(4, s->kw) - 1; /* the highest live tap in a quad */
    v->wv = imin(16, s->w_out);
    v->R = s->w_out < 16 ? 16 / s->w_out : 1;
    for (; v->R >= 1; v->R--) {
        int64_t maxoff = (int64_t)(v->R - 1) * s->stride_h * d->cols +
                         (int64_t)(v->wv - 1) * s->stride_w + (int64_t)taps * s->dil_w;
        if (maxoff <= 63)
            break;
    }
    if (v->R < 1 || s->kh * div_up(s->kw, 4) > 64)
        return false;
    for (int L = 0; L < 16; L++)
        for (int i = 0; i < 4; i++) {
            int64_t off = 0;
            if (L < v->R * v->wv && i <= taps)
                off = (int64_t)(L / v->wv) * s->stride_h * d->cols +
                      (int64_t)(L % v->wv) * s->stride_w + (int64_t)i * s->dil_w;
            v->idx[4 * L + i] = (uint8_t)off;
        }
    return true;
}

T_AVX512 static void dw_plane_avx512(const ac_conv2d_shape *s, const dw_geom *d,
                                     const uint8_t *pad, const int8_t *wc, const epi_consts *e,
                                     uint8_t *yc, const dw_vec *v)
{
    const int nq = div_up(s->kw, 4);
    int32_t wq[64];
    for (int ky = 0; ky < s->kh; ky++)
        for (int qq = 0; qq < nq; qq++) {
            uint8_t b[4];
            for (int i = 0; i < 4; i++) {
                int kx = 4 * qq + i;
                b[i] = (uint8_t)(kx < s->kw ? wc[ky * s->kw + kx] : 0);
            }
            memcpy(&wq[ky * nq + qq], b, 4);
        }
    const __m512i idx = _mm512_loadu_si512(v->idx);
    const int64_t row_step = (int64_t)s->dil_h * d->cols;
    const int qstep = 4 * s->dil_w;
    for (int oh0 = 0; oh0 < s->h_out; oh0 += v->R) {
        for (int ow0 = 0; ow0 < s->w_out; ow0 += v->wv) {
            const uint8_t *base =
                pad + (int64_t)oh0 * s->stride_h * d->cols + (int64_t)ow0 * s->stride_w;
            __m512i acc = _mm512_setzero_si512();
            for (int ky = 0; ky < s->kh; ky++) {
                const uint8_t *rb = base + ky * row_step;
                for (int qq = 0; qq < nq; qq++) {
                    __m512i xv = _mm512_permutexvar_epi8(idx, _mm512_loadu_si512(rb + qq * qstep));
                    acc = _mm512_dpbusd_epi32(acc, xv, _mm512_set1_epi32(wq[ky * nq + qq]));
                }
            }
            const __m512i res = requant16_avx512(acc, e);
            if (v->R == 1)
                store16_avx512(res, yc + (int64_t)oh0 * s->w_out + ow0, imin(v->wv, s->w_out - ow0));
            else
                store16_avx512(res, yc + (int64_t)oh0 * s->w_out,
                               imin(v->R, s->h_out - oh0) * s->w_out);
        }
    }
}

/* ---- depthwise, channels in lanes (AVX-512) ---------------------------------------------
 * For convs with one output per input channel and no column dilation: 16
 * channels at a time, the padded input strip is transposed to t[row][col][16
 * channels]; one 64-byte load then holds 4 consecutive columns of 16 channels,
 * vpermb regroups it to 16 dwords of 4 taps (one per channel) and one vpdpbusd
 * does 4 taps of 16 channels. Every lane does useful work whatever the plane
 * size (the plane-wise kernel wastes lanes on 7x7 / 14x14 planes), and the
 * per-lane epilogue takes per-channel constants (variable shifts). Output
 * pixels are taken 16 at a time in NCHW order and transposed back. */

enum { DWC_STRIP = 8 }; /* output rows per strip: the strip's t stays in L1/L2 */

static int dwc_strip_rows(const ac_conv2d_shape *s)
{
    return (DWC_STRIP - 1) * s->stride_h + (s->kh - 1) * s->dil_h + 1;
}

static size_t dwc_slice_bytes(const ac_conv2d_shape *s)
{
    dw_geom d;
    dw_geom_of(s, &d);
    /* slack: 16-column stores past the last row, 64-byte loads past the end */
    return (size_t)round_up64((int64_t)dwc_strip_rows(s) * d.cols * 16 + 320, ALIGN) + ALIGN;
}

/* kh * kw <= 64 keeps every accumulator bound far inside int32 (simple epilogue). */
static bool dwc_usable(const ac_conv2d_shape *s)
{
    return s->c_out == s->c_in && s->dil_w == 1 && s->kh * div_up(s->kw, 4) <= 16 &&
           s->kh * s->kw <= 64;
}

/* 16 x 16 bytes: r[i] byte j -> r[j] byte i. */
static inline void transpose16x16(__m128i r[16])
{
    __m128i b[16], c[16];
    for (int k = 0; k < 8; k++) {
        b[2 * k] = _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
        b[2 * k + 1] = _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
    }
    /* b[2m]: rows 2m,2m+1 for bytes 0..7; b[2m+1]: bytes 8..15 */
    for (int n = 0; n < 4; n++) {
        c[4 * n + 0] = _mm_unpacklo_epi16(b[4 * n], b[4 * n + 2]);
        c[4 * n + 1] = _mm_unpackhi_epi16(b[4 * n], b[4 * n + 2]);
        c[4 * n + 2] = _mm_unpacklo_epi16(b[4 * n + 1], b[4 * n + 3]);
        c[4 * n + 3] = _mm_unpackhi_epi16(b[4 * n + 1], b[4 * n + 3]);
    }
    /* c[4n+q]: rows 4n..4n+3, bytes 4q..4q+3 */
    for (int o = 0; o < 2; o++)
        for (int q = 0; q < 4; q++) {
            b[8 * o + 2 * q] = _mm_unpacklo_epi32(c[8 * o + q], c[8 * o + 4 + q]);
            b[8 * o + 2 * q + 1] = _mm_unpackhi_epi32(c[8 * o + q], c[8 * o + 4 + q]);
        }
    /* b[8o+m]: rows 8o..8o+7, bytes 2m, 2m+1 */
    for (int m = 0; m < 8; m++) {
        r[2 * m] = _mm_unpacklo_epi64(b[m], b[8 + m]);
        r[2 * m + 1] = _mm_unpackhi_epi64(b[m], b[8 + m]);
    }
}

/* Within each 128-bit lane: 4x4 transpose of dwords across a, b, c, d. */
#define AC_TRANSPOSE4_EPI32_512(a, b, c, d)                                                      \
    do {                                                                                         \
        __m512i t0_ = _mm512_unpacklo_epi32(a, b), t1_ = _mm512_unpackhi_epi32(a, b);            \
        __m512i t2_ = _mm512_unpacklo_epi32(c, d), t3_ = _mm512_unpackhi_epi32(c, d);            \
        a = _mm512_unpacklo_epi64(t0_, t2_);                                                     \
        b = _mm512_unpackhi_epi64(t0_, t2_);                                                     \
        c = _mm512_unpacklo_epi64(t1_, t3_);                                                     \
        d = _mm512_unpackhi_epi64(t1_, t3_);                                                     \
    } while (0)

/* t rows for padded rows [pr0, pr1) of channels [c0, c0 + nch) of image img:
 * t[row][col][16] (offset bytes). 16 input columns of 16 channels go in as
 * 16 rows of 16 bytes: lane m of zmm k = channel 4m + k; a dword transpose
 * per lane and a vpermb give 4 zmm of [pixel][channel]. */
T_AVX512 static void dwc_build(uint8_t *t, const ac_conv2d_shape *s, const dw_geom *d,
                               const uint8_t *ximg, int c0, int nch, int pr0, int pr1, uint8_t flip)
{
    const int64_t plane = (int64_t)s->h_in * s->w_in;
    const __m512i f = _mm512_set1_epi8((char)flip);
    uint8_t pix[64]; /* [pixel p][channel c] <- byte 4c + p of the transposed dwords */
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < 16; c++)
            pix[16 * p + c] = (uint8_t)(4 * c + p);
    const __m512i pidx = _mm512_loadu_si512(pix);
    const int c_lo = imax(0, imin(s->pad_left, d->cols));         /* first input column */
    const int c_hi = imax(c_lo, imin(s->pad_left + s->w_in, d->cols)); /* past the last */
    const int64_t rowb = (int64_t)d->cols * 16;
    for (int r = pr0; r < pr1; r++) {
        uint8_t *trow = t + (int64_t)(r - pr0) * rowb;
        const int ih = r - s->pad_top;
        if (ih < 0 || ih >= s->h_in) {
            memset(trow, flip, (size_t)rowb);
            continue;
        }
        memset(trow, flip, (size_t)c_lo * 16);
        for (int c = c_lo; c < c_hi; c += 16) {
            const int iw0 = c - s->pad_left, cnt = imin(16, c_hi - c);
            const __mmask16 m = cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cnt) - 1u);
            __m512i z[4];
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_setzero_si512();
                for (int lane = 0; lane < 4; lane++) {
                    const int ch = 4 * lane + k;
                    if (ch >= nch)
                        continue;
                    const __m128i row = _mm_maskz_loadu_epi8(
                        m, ximg + (c0 + ch) * plane + (int64_t)ih * s->w_in + iw0);
                    v = lane == 0 ? _mm512_inserti32x4(v, row, 0)
                        : lane == 1 ? _mm512_inserti32x4(v, row, 1)
                        : lane == 2 ? _mm512_inserti32x4(v, row, 2)
                                    : _mm512_inserti32x4(v, row, 3);
                }
                z[k] = v;
            }
            /* lane m of z[k] = 16 pixels of channel 4m + k; after the transpose lane m of
             * z[g] holds pixels 4g..4g+3 of channels 4m..4m+3 (byte 4c' + p) */
            AC_TRANSPOSE4_EPI32_512(z[0], z[1], z[2], z[3]);
            for (int g = 0; g < 4; g++) {
                /* z[g] byte 16m + 4*kk + p = pixel 4g + p of channel 4m + kk: reorder to [p][c] */
                z[g] = _mm512_xor_si512(_mm512_permutexvar_epi8(pidx, z[g]), f);
                _mm512_storeu_si512(trow + (int64_t)(c + 4 * g) * 16, z[g]);
            }
        }
        /* right padding last: the 16-column stores above may run into it */
        memset(trow + (int64_t)c_hi * 16, flip, (size_t)(d->cols - c_hi) * 16);
    }
    memset(t + (int64_t)(pr1 - pr0) * rowb, flip, 64);
}

T_AVX512 static void dwc_block_avx512(const ac_conv_q8_params *p, const dw_geom *d,
                                      const uint8_t *ximg, uint8_t *yimg, int c0, int oh_a,
                                      int oh_b, uint8_t *t)
{
    const ac_conv2d_shape *s = &p->s;
    const int nch = imin(16, s->c_out - c0);
    const int nq = div_up(s->kw, 4), ksz = s->kh * s->kw;
    const int pr0 = oh_a * s->stride_h;
    const int pr1 = imin(d->rows, (oh_b - 1) * s->stride_h + (s->kh - 1) * s->dil_h + 1);
    dwc_build(t, s, d, ximg, c0, nch, pr0, pr1, p->x_signed ? 0x80 : 0);

    /* weights: lane c of wv[ky * nq + qq] = taps 4qq..4qq+3 of row ky of channel c0 + c */
    __m512i wv[16];
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i wsum = _mm512_setzero_si512(), wabs = _mm512_setzero_si512();
    for (int ky = 0; ky < s->kh; ky++)
        for (int qq = 0; qq < nq; qq++) {
            int8_t b[64];
            memset(b, 0, sizeof b);
            const int ntap = imin(4, s->kw - 4 * qq);
            const int8_t *src = p->w + (int64_t)c0 * ksz + ky * s->kw + 4 * qq;
            for (int c = 0; c < nch; c++)
                for (int i = 0; i < ntap; i++)
                    b[4 * c + i] = src[(int64_t)c * ksz + i];
            const __m512i v = _mm512_loadu_si512(b);
            wv[ky * nq + qq] = v;
            wsum = _mm512_dpbusd_epi32(wsum, ones, v);
            wabs = _mm512_dpbusd_epi32(wabs, _mm512_abs_epi8(v), ones); /* |-128| = 0x80 as u8 */
        }
    (void)wabs; /* kh * kw <= 64: sum|w| * 255 + |bias| + 2^30 < 2^31, always the simple epilogue */
    /* per-channel epilogue (simple form, see epi_init): init = corr + bias + 2^(r-1),
     * code = clamp(acc >> r); lanes past nch get zeros and are not stored */
    const __mmask16 cm = (__mmask16)((1u << nch) - 1u);
    const __m512i rv = _mm512_maskz_loadu_epi32(cm, p->rshift + c0);
    const __m512i biasv =
        p->bias ? _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(cm, p->bias + c0))
                : _mm512_setzero_si512();
    const __m512i halfv = _mm512_srli_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), rv), 1);
    __m512i initv = _mm512_add_epi32(biasv, halfv);
    if (p->x_signed)
        initv = _mm512_sub_epi32(initv, _mm512_slli_epi32(wsum, 7));
    epi_consts e0;
    epi_init(&e0, false, 0, 0, 0, 0, p->relu, p->clip_hi, p->y_signed);
    const __m512i lov = _mm512_set1_epi32(e0.lo), hiv = _mm512_set1_epi32(e0.hi);
    /* vpermb: dword c = bytes c, 16 + c, 32 + c, 48 + c (4 columns of channel c) */
    uint8_t tix[64];
    for (int c = 0; c < 16; c++)
        for (int i = 0; i < 4; i++)
            tix[4 * c + i] = (uint8_t)(16 * i + c);
    const __m512i tidx = _mm512_loadu_si512(tix);

    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    const int64_t row_step = (int64_t)s->dil_h * d->cols * 16;
    /* codes of 4 pixels (packs, lane L byte 4p + k = pixel p, channel 4L + k) to
     * byte 4c + p; then a dword transpose per lane gives 16 pixels per channel */
    uint8_t oix[64];
    for (int c = 0; c < 16; c++)
        for (int pp = 0; pp < 4; pp++)
            oix[4 * c + pp] = (uint8_t)(16 * (c / 4) + 4 * pp + c % 4);
    const __m512i oidx = _mm512_loadu_si512(oix);
    const bool ysig = p->y_signed;
    const int ja = oh_a * s->w_out, jb = oh_b * s->w_out;
    int oh = oh_a, ow = 0;
    for (int j0 = ja; j0 < jb; j0 += 16) {
        const int n = imin(16, jb - j0);
        __m512i z[4];
        for (int g = 0; g < 4; g++) {
            __m512i vv[4];
            const uint8_t *base[4];
            for (int pp = 0; pp < 4; pp++) {
                /* pixels past n repeat the last valid one (computed, not stored) */
                base[pp] = t + ((int64_t)(oh * s->stride_h - pr0) * d->cols +
                                (int64_t)ow * s->stride_w) * 16;
                if (4 * g + pp + 1 < n && ++ow == s->w_out) {
                    ow = 0;
                    oh++;
                }
            }
            if (s->kh == 3 && nq == 1) {
                /* 3x3 (any stride): 4 independent chains of 3 taps rows */
                __m512i a0 = initv, a1 = initv, a2 = initv, a3 = initv;
                for (int ky = 0; ky < 3; ky++) {
                    const int64_t o = ky * row_step;
                    a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(tidx, _mm512_loadu_si512(base[0] + o)), wv[ky]);
                    a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(tidx, _mm512_loadu_si512(base[1] + o)), wv[ky]);
                    a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(tidx, _mm512_loadu_si512(base[2] + o)), wv[ky]);
                    a3 = _mm512_dpbusd_epi32(a3, _mm512_permutexvar_epi8(tidx, _mm512_loadu_si512(base[3] + o)), wv[ky]);
                }
                vv[0] = a0;
                vv[1] = a1;
                vv[2] = a2;
                vv[3] = a3;
            } else {
                for (int pp = 0; pp < 4; pp++) {
                    __m512i acc = initv;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int qq = 0; qq < nq; qq++) {
                            const __m512i xv =
                                _mm512_loadu_si512(base[pp] + ky * row_step + qq * 64);
                            acc = _mm512_dpbusd_epi32(acc, _mm512_permutexvar_epi8(tidx, xv),
                                                      wv[ky * nq + qq]);
                        }
                    vv[pp] = acc;
                }
            }
            for (int pp = 0; pp < 4; pp++)
                vv[pp] = _mm512_min_epi32(_mm512_max_epi32(_mm512_srav_epi32(vv[pp], rv), lov), hiv);
            /* values are inside the output code range: the saturating packs are exact */
            __m512i ab = ysig ? _mm512_packs_epi32(vv[0], vv[1]) : _mm512_packus_epi32(vv[0], vv[1]);
            __m512i cd = ysig ? _mm512_packs_epi32(vv[2], vv[3]) : _mm512_packus_epi32(vv[2], vv[3]);
            z[g] = _mm512_permutexvar_epi8(oidx, ysig ? _mm512_packs_epi16(ab, cd)
                                                      : _mm512_packus_epi16(ab, cd));
        }
        if (n == 16 && ++ow == s->w_out) { /* to the next block's first pixel */
            ow = 0;
            oh++;
        }
        AC_TRANSPOSE4_EPI32_512(z[0], z[1], z[2], z[3]);
        /* lane m of z[k] = pixels j0.. of channel 4m + k */
        uint8_t rows[4][64];
        for (int k = 0; k < 4; k++)
            _mm512_storeu_si512(rows[k], z[k]);
        const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        for (int c = 0; c < nch; c++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)&rows[c % 4][16 * (c / 4)]);
            _mm_mask_storeu_epi8(yimg + (int64_t)(c0 + c) * plane_out + j0, m, v);
        }
    }
}

static void conv_depthwise_cl(const ac_conv_q8_params *p, const uint8_t *x, uint8_t *y,
                              void *scratch, int ith, int nth)
{
    const ac_conv2d_shape *s = &p->s;
    dw_geom d;
    dw_geom_of(s, &d);
    uint8_t *t = align_up((uint8_t *)scratch + (size_t)ith * dw_scratch_slice(s));
    const int nblk = div_up(s->c_out, 16), nstrip = div_up(s->h_out, DWC_STRIP);
    int64_t lo, hi;
    ac_ref_range((int64_t)s->n * nblk * nstrip, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        const int strip = (int)(u % nstrip), blk = (int)(u / nstrip % nblk);
        const int64_t img = u / ((int64_t)nstrip * nblk);
        const int oh_a = strip * DWC_STRIP, oh_b = imin(s->h_out, oh_a + DWC_STRIP);
        dwc_block_avx512(p, &d, x + img * s->c_in * (int64_t)s->h_in * s->w_in,
                         y + img * s->c_out * (int64_t)s->h_out * s->w_out, blk * 16, oh_a, oh_b, t);
    }
}

static void conv_depthwise(const ac_conv_q8_params *p, const uint8_t *x, uint8_t *y,
                           void *scratch, int ith, int nth, ac_q8_isa isa)
{
    const ac_conv2d_shape *s = &p->s;
    if (isa == AC_Q8_ISA_AVX512 && dwc_usable(s)) {
        conv_depthwise_cl(p, x, y, scratch, ith, nth);
        return;
    }
    dw_geom d;
    dw_geom_of(s, &d);
    uint8_t *pad = align_up((uint8_t *)scratch + (size_t)ith * dw_scratch_slice(s));
    dw_vec vec;
    if (isa == AC_Q8_ISA_AVX512 && !dw_vec_plan(s, &d, &vec))
        isa = AC_Q8_ISA_AVX2;
    const int cout_g = s->c_out / s->groups;
    const int ksz = s->kh * s->kw;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    const uint8_t flip = p->x_signed ? 0x80 : 0;
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
        switch (isa) {
        case AC_Q8_ISA_AVX512: dw_plane_avx512(s, &d, pad, wc, &e, yc, &vec); break;
        case AC_Q8_ISA_AVX2: dw_plane_avx2(s, &d, pad, wc, &e, yc); break;
        default: dw_plane_scalar(s, &d, pad, wc, &e, yc); break;
        }
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
