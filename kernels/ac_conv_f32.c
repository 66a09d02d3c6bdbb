/* Fast fp32 convolution and GEMM.
 *
 * Both ops run on one blocked SGEMM driver: Y[M][N] (+)= A[M][K] * B[K][N].
 *  - conv: per (image, group) A = weights [c_out/g][c_in/g*kh*kw], B = the
 *    im2col of the input ([c_in/g*kh*kw][h_out*w_out]) read from padded phase
 *    planes of the input without building it (see "convs without im2col"); a
 *    1x1 stride-1 unpadded conv reads the input directly as B.
 *  - gemm: A and B are the operands, transposes handled by strides.
 * Depthwise convs (groups == c_in == c_out) take a direct kernel instead
 * (see the depthwise section).
 *
 * Determinism for any nth: work is split into output tiles (image, group,
 * row block, column block). Every output element is computed the same way
 * whatever tile it lands in: K is cut into fixed KC-sized blocks (never
 * depending on nth or tile sizes); for each block the micro-kernel sums the
 * block in K order into a register (one FMA chain per element), then adds
 * that to the element (Y = block0, Y += block1, ...). Partial tiles run the
 * same micro-kernel on zero-padded panels. The only things that vary with nth
 * are which thread computes a tile and how much scratch is needed. The AVX2
 * and AVX-512 kernels run the same FMA chains, so they agree bit for bit; the
 * portable C kernel (multiply then add) agrees with them to rounding.
 *
 * Scratch: thread ith uses slice ith of the caller's buffer, sized by
 * *_scratch_bytes(s, nth); nothing is allocated here. */
#include "ac_conv_f32.h"
#include "ac_conv_f32_internal.h"

#include <immintrin.h>
#include <string.h>

enum {
    MR = 6,    /* micro-tile rows (output channels / Y rows) */
    NR = 16,   /* micro-tile columns (output pixels / Y columns), AVX2 and portable */
    NR_AVX512 = 32,
    NR_MAX = 32, /* packed-B scratch is sized for the widest kernel */
    KC = 256,  /* K block: fixed, part of the numerical definition (see above) */
    NB = 256,  /* column block: packed B (KC x NB floats) stays in L2 */
    MB = 96,   /* largest row block */
    MB_MIN = 24,
    ALIGN = 64
};

/* ---- micro-kernels ----------------------------------------------------------
 * c[MR][NR] (row stride ldc) = (accumulate ? c : 0) + sum_k A(r, k) * b[k][j]
 * with A(r, k) = arow[r][k * acs] (a packed kc x MR panel: arow[r] = panel + r,
 * acs = MR; or the rows of a row-major matrix read in place: acs = 1) and b
 * packed as kc x NR. */
typedef void (*ukernel_fn)(int kc, const float *const *arow, int64_t acs, const float *b,
                           float *c, int64_t ldc, int accumulate);

static void ukernel_6x16_portable(int kc, const float *const *arow, int64_t acs, const float *b,
                                  float *c, int64_t ldc, int accumulate)
{
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        for (int r = 0; r < MR; r++) {
            const float av = arow[r][k * acs];
            for (int j = 0; j < NR; j++)
                acc[r][j] += av * b[j];
        }
        b += NR;
    }
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        for (int j = 0; j < NR; j++)
            cr[j] = accumulate ? cr[j] + acc[r][j] : acc[r][j];
    }
}

__attribute__((target("avx2,fma"))) static void
ukernel_6x16_avx2(int kc, const float *const *arow, int64_t acs, const float *b, float *c,
                  int64_t ldc, int accumulate)
{
    const float *a0 = arow[0], *a1 = arow[1], *a2 = arow[2];
    const float *a3 = arow[3], *a4 = arow[4], *a5 = arow[5];
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t k = 0, ka = 0; k < kc; k++, ka += acs) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a0 + ka);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1 + ka);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2 + ka);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3 + ka);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a4 + ka);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a5 + ka);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
        b += NR;
    }
#define AC_STORE_ROW(r, lo, hi)                                                    \
    do {                                                                           \
        float *cr = c + (r) * ldc;                                                 \
        if (accumulate) {                                                          \
            lo = _mm256_add_ps(_mm256_loadu_ps(cr), lo);                           \
            hi = _mm256_add_ps(_mm256_loadu_ps(cr + 8), hi);                       \
        }                                                                          \
        _mm256_storeu_ps(cr, lo);                                                  \
        _mm256_storeu_ps(cr + 8, hi);                                              \
    } while (0)
    AC_STORE_ROW(0, c00, c01);
    AC_STORE_ROW(1, c10, c11);
    AC_STORE_ROW(2, c20, c21);
    AC_STORE_ROW(3, c30, c31);
    AC_STORE_ROW(4, c40, c41);
    AC_STORE_ROW(5, c50, c51);
#undef AC_STORE_ROW
}

/* 6x32 with AVX-512: the same per-element FMA chain as the AVX2 kernel (so
 * bit-identical results), half the instructions per flop. */
__attribute__((target("avx512f"))) static void
ukernel_6x32_avx512(int kc, const float *const *arow, int64_t acs, const float *b, float *c,
                    int64_t ldc, int accumulate)
{
    const float *a0 = arow[0], *a1 = arow[1], *a2 = arow[2];
    const float *a3 = arow[3], *a4 = arow[4], *a5 = arow[5];
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    for (int64_t k = 0, ka = 0; k < kc; k++, ka += acs) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        __m512 av;
        av = _mm512_set1_ps(a0[ka]);
        c00 = _mm512_fmadd_ps(av, b0, c00);
        c01 = _mm512_fmadd_ps(av, b1, c01);
        av = _mm512_set1_ps(a1[ka]);
        c10 = _mm512_fmadd_ps(av, b0, c10);
        c11 = _mm512_fmadd_ps(av, b1, c11);
        av = _mm512_set1_ps(a2[ka]);
        c20 = _mm512_fmadd_ps(av, b0, c20);
        c21 = _mm512_fmadd_ps(av, b1, c21);
        av = _mm512_set1_ps(a3[ka]);
        c30 = _mm512_fmadd_ps(av, b0, c30);
        c31 = _mm512_fmadd_ps(av, b1, c31);
        av = _mm512_set1_ps(a4[ka]);
        c40 = _mm512_fmadd_ps(av, b0, c40);
        c41 = _mm512_fmadd_ps(av, b1, c41);
        av = _mm512_set1_ps(a5[ka]);
        c50 = _mm512_fmadd_ps(av, b0, c50);
        c51 = _mm512_fmadd_ps(av, b1, c51);
        b += NR_AVX512;
    }
#define AC_STORE_ROW(r, lo, hi)                                                    \
    do {                                                                           \
        float *cr = c + (r) * ldc;                                                 \
        if (accumulate) {                                                          \
            lo = _mm512_add_ps(_mm512_loadu_ps(cr), lo);                           \
            hi = _mm512_add_ps(_mm512_loadu_ps(cr + 16), hi);                      \
        }                                                                          \
        _mm512_storeu_ps(cr, lo);                                                  \
        _mm512_storeu_ps(cr + 16, hi);                                             \
    } while (0)
    AC_STORE_ROW(0, c00, c01);
    AC_STORE_ROW(1, c10, c11);
    AC_STORE_ROW(2, c20, c21);
    AC_STORE_ROW(3, c30, c31);
    AC_STORE_ROW(4, c40, c41);
    AC_STORE_ROW(5, c50, c51);
#undef AC_STORE_ROW
}

typedef struct {
    ukernel_fn fn;
    int nr; /* packed-B panel width the kernel expects */
} ukernel;

static const ukernel k_ukernel_portable = {ukernel_6x16_portable, NR};
static const ukernel k_ukernel_avx2 = {ukernel_6x16_avx2, NR};
static const ukernel k_ukernel_avx512 = {ukernel_6x32_avx512, NR_AVX512};

bool ac_conv_isa_avx2_available(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool ac_conv_isa_avx512_available(void)
{
    return ac_conv_isa_avx2_available() && __builtin_cpu_supports("avx512f");
}

/* The ISA actually used: the requested one, or the best available below it. */
static ac_conv_isa resolve_isa(ac_conv_isa isa)
{
    if (isa == AC_CONV_ISA_PORTABLE)
        return AC_CONV_ISA_PORTABLE;
    if ((isa == AC_CONV_ISA_AUTO || isa == AC_CONV_ISA_AVX512) && ac_conv_isa_avx512_available())
        return AC_CONV_ISA_AVX512;
    return ac_conv_isa_avx2_available() ? AC_CONV_ISA_AVX2 : AC_CONV_ISA_PORTABLE;
}

static const ukernel *ukernel_for(ac_conv_isa isa)
{
    switch (isa) {
    case AC_CONV_ISA_AVX512:
        return &k_ukernel_avx512;
    case AC_CONV_ISA_AVX2:
        return &k_ukernel_avx2;
    default:
        return &k_ukernel_portable;
    }
}

/* ---- small helpers ------------------------------------------------------------ */

static int imin(int a, int b) { return a < b ? a : b; }
static int iclamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int round_up(int v, int to) { return (v + to - 1) / to * to; }
static int div_up(int v, int by) { return (v + by - 1) / by; }

static float *align_ptr(void *p)
{
    uintptr_t u = (uintptr_t)p;
    return (float *)((u + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

/* ---- activations on stored outputs ------------------------------------------------ */

/* y[0, n) through act in place: ac_unary_f32's ReLU (x > 0 ? x : 0, NaN and
 * -0 to +0) and Clip (NaN kept) expressions. */
static void act_span(float *y, int64_t n, const ac_conv_act *act)
{
    if (!act || act->kind == AC_CONV_ACT_NONE)
        return;
    if (act->kind == AC_CONV_ACT_RELU) {
        for (int64_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        return;
    }
    const float lo = act->lo, hi = act->hi;
    for (int64_t i = 0; i < n; i++) {
        const float v = y[i] < lo ? lo : y[i];
        y[i] = v > hi ? hi : v;
    }
}

/* ---- packing -------------------------------------------------------------------- */

/* dst[kk][r] (kc x MR) = A(i0 + r, k0 + kk), A(i, k) = a[i*rs + k*cs]; rows r >= mr are 0. */
static void pack_a(float *dst, const float *a, int64_t rs, int64_t cs, int i0, int mr, int k0,
                   int kc)
{
    if (mr < MR)
        memset(dst, 0, sizeof(float) * MR * kc);
    if (cs == 1) {
        for (int r = 0; r < mr; r++) {
            const float *src = a + (int64_t)(i0 + r) * rs + k0;
            for (int kk = 0; kk < kc; kk++)
                dst[kk * MR + r] = src[kk];
        }
    } else {
        for (int kk = 0; kk < kc; kk++) {
            const float *src = a + (int64_t)i0 * rs + (int64_t)(k0 + kk) * cs;
            for (int r = 0; r < mr; r++)
                dst[kk * MR + r] = src[r * rs];
        }
    }
}

/* Panels of B for rows [k0, k0+kc) and columns [j0, j0+nb): panel p holds
 * dst[p][kk][jj] (kc x w) = B(k0 + kk, j0 + p*w + jj), B(k, j) = b[k*rs + j*cs],
 * w = the kernel's panel width; columns past nb are 0. */
static void pack_b(float *dst, int w, const float *b, int64_t rs, int64_t cs, int k0, int kc,
                   int j0, int nb)
{
    for (int p = 0; p * w < nb; p++) {
        float *d = dst + (int64_t)p * kc * w;
        const int jb = j0 + p * w;
        const int nr = imin(w, nb - p * w);
        if (cs == 1) {
            for (int kk = 0; kk < kc; kk++) {
                const float *src = b + (int64_t)(k0 + kk) * rs + jb;
                memcpy(d + kk * w, src, sizeof(float) * nr);
                if (nr < w)
                    memset(d + kk * w + nr, 0, sizeof(float) * (w - nr));
            }
        } else {
            if (nr < w)
                memset(d, 0, sizeof(float) * w * kc);
            for (int jj = 0; jj < nr; jj++) {
                const float *src = b + (int64_t)(jb + jj) * cs + (int64_t)k0 * rs;
                for (int kk = 0; kk < kc; kk++)
                    d[kk * w + jj] = src[kk * rs];
            }
        }
    }
}

/* n zeros at d; the runs are short (padding columns), so no call. */
static void zero_run(float *d, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = 0.0f;
}

/* ---- the blocked driver ---------------------------------------------------------- */

typedef struct {
    int m, n, k;
    const float *a; /* A(i, k) = a[i*a_rs + k*a_cs] */
    int64_t a_rs, a_cs;
    const float *b; /* B(k, j) = b[k*b_rs + j*b_cs] */
    int64_t b_rs, b_cs;
    float *y; /* Y(i, j) = y[i*ldy + j] */
    int64_t ldy;
} gemm_job;

typedef struct {
    float *apack; /* MR x KC */
    float *bpack; /* KC x NB (rounded to NR_MAX) */
} scratch_slice;

static void scratch_sizes(int k, int n, size_t *a_f, size_t *b_f)
{
    const int kc = imin(k, KC) > 0 ? imin(k, KC) : 1;
    const int nb = round_up(imin(n, NB) > 0 ? imin(n, NB) : 1, NR_MAX);
    *a_f = (size_t)MR * kc;
    *b_f = (size_t)kc * nb;
}

static size_t slice_bytes(int k, int n)
{
    size_t a_f, b_f;
    scratch_sizes(k, n, &a_f, &b_f);
    return (a_f + b_f) * sizeof(float) + 2 * ALIGN;
}

static scratch_slice slice_get(void *scratch, int k, int n, int ith)
{
    size_t a_f, b_f;
    scratch_sizes(k, n, &a_f, &b_f);
    char *base = (char *)scratch + (size_t)ith * slice_bytes(k, n);
    scratch_slice sl;
    sl.apack = align_ptr(base);
    sl.bpack = align_ptr(sl.apack + a_f);
    return sl;
}

/* Y rows [m0, m0+mb) x columns [j0, j0+nb) = A * B over the full K. */
static void gemm_tile(const gemm_job *job, int m0, int mb, int j0, int nb, const scratch_slice *sl,
                      const ukernel *uk)
{
    const int w = uk->nr;
    if (job->k == 0) {
        for (int i = m0; i < m0 + mb; i++)
            memset(job->y + i * job->ldy + j0, 0, sizeof(float) * nb);
        return;
    }
    for (int k0 = 0; k0 < job->k; k0 += KC) {
        const int kc = imin(KC, job->k - k0);
        const int accumulate = k0 > 0;
        pack_b(sl->bpack, w, job->b, job->b_rs, job->b_cs, k0, kc, j0, nb);
        for (int i = m0; i < m0 + mb; i += MR) {
            const int mr = imin(MR, m0 + mb - i);
            /* Rows of A are read in place when contiguous along K (conv weights,
             * Gemm without trans_a): packing them cost as much as the math for
             * small N. Rows past mr repeat the last row; their results are dropped. */
            const float *arow[MR];
            int64_t acs;
            if (job->a_cs == 1) {
                for (int r = 0; r < MR; r++)
                    arow[r] = job->a + (int64_t)(i + imin(r, mr - 1)) * job->a_rs + k0;
                acs = 1;
            } else {
                pack_a(sl->apack, job->a, job->a_rs, job->a_cs, i, mr, k0, kc);
                for (int r = 0; r < MR; r++)
                    arow[r] = sl->apack + r;
                acs = MR;
            }
            for (int p = 0; p * w < nb; p++) {
                const int nr = imin(w, nb - p * w);
                const float *bp = sl->bpack + (int64_t)p * kc * w;
                float *c = job->y + i * job->ldy + j0 + p * w;
                if (mr == MR && nr == w) {
                    uk->fn(kc, arow, acs, bp, c, job->ldy, accumulate);
                } else {
                    /* Edge tile: same kernel on a full local tile, valid part copied. */
                    float tile[MR * NR_MAX];
                    memset(tile, 0, sizeof tile);
                    if (accumulate)
                        for (int r = 0; r < mr; r++)
                            memcpy(tile + r * w, c + r * job->ldy, sizeof(float) * nr);
                    uk->fn(kc, arow, acs, bp, tile, w, accumulate);
                    for (int r = 0; r < mr; r++)
                        memcpy(c + r * job->ldy, tile + r * w, sizeof(float) * nr);
                }
            }
        }
    }
}

/* Row block size for an M x N problem with `outer` independent (image, group)
 * problems: at most MB rows, cut smaller (down to MB_MIN) while there are too
 * few tiles to keep nth threads busy. Affects speed only, never results. */
static int row_block(int m, int n, int outer, int nth)
{
    int nmb = div_up(m, MB);
    int mb = round_up(div_up(m, nmb), MR);
    const int64_t nnb = div_up(n, NB);
    while (mb > MB_MIN && (int64_t)outer * nnb * div_up(m, mb) < 4 * nth)
        mb = round_up(mb / 2, MR);
    return mb;
}

/* ---- convs without im2col ---------------------------------------------------------------
 * The input of one (image, group) is copied once into zero-padded phase planes:
 * for stride (sh, sw), channel ci has sh*sw planes, plane (py, px) holding the
 * padded input's rows py, py+sh, ... and columns px, px+sw, ..., Hq x Wq of
 * them with Wq = w_out + (kw-1)*dil_w/sw, Hq = h_out + (kh-1)*dil_h/sh (plus a
 * zero tail). On the widened output grid q = oh*Wq + ow (ow < Wq), tap
 * (ky, kx) reads plane ((ky*dil_h) % sh, (kx*dil_w) % sw) of ci at
 * q + (ky*dil_h / sh)*Wq + kx*dil_w / sw: every row of B is a contiguous run
 * of one plane, so panels are packed straight from it, with no im2col staging
 * and no per-output-row segments. The widened tile is computed into scratch
 * and its valid columns (ow < w_out) are stored plus the bias. K order, KC
 * blocks and FMA chains are those of a GEMM over the im2col matrix, so the
 * results do not depend on this layout; the price is (Wq - w_out) / w_out more
 * columns of arithmetic, far less than the copies it saves. */

typedef struct {
    int wq, hq;         /* one phase plane */
    int64_t plane;      /* floats per phase plane (Hq*Wq + tail, rounded) */
    int64_t n_wide;     /* h_out * Wq */
    int ldt;            /* tile row stride: widened columns per block, whole panels */
    int rows;           /* tile rows: c_out/groups rounded to MR */
} wide_geom;

static wide_geom wide_geom_of(const ac_conv2d_shape *s)
{
    wide_geom g;
    const int ox_max = (s->kw - 1) * s->dil_w / s->stride_w;
    g.wq = s->w_out + ox_max;
    g.hq = s->h_out + (s->kh - 1) * s->dil_h / s->stride_h;
    /* The last widened column of the last row reads ox_max past Hq*Wq. */
    g.plane = (int64_t)round_up(g.hq * g.wq + ox_max, 16);
    g.n_wide = (int64_t)s->h_out * g.wq;
    g.ldt = round_up((int)(g.n_wide < NB ? g.n_wide : NB), NR_MAX);
    g.rows = round_up(s->c_out / s->groups, MR);
    return g;
}

typedef struct {
    float *bpack; /* KC x ldt */
    float *tile;  /* rows x ldt */
    float *xp;    /* c_in/groups x sh*sw phase planes */
} wide_slice;

static void wide_sizes(const ac_conv2d_shape *s, size_t *b_f, size_t *t_f, size_t *x_f)
{
    const wide_geom g = wide_geom_of(s);
    const int k = s->c_in / s->groups * s->kh * s->kw;
    *b_f = (size_t)imin(k, KC) * (size_t)g.ldt;
    *t_f = (size_t)g.rows * (size_t)g.ldt;
    *x_f = (size_t)(s->c_in / s->groups) * (size_t)(s->stride_h * s->stride_w) * (size_t)g.plane;
}

static size_t wide_slice_bytes(const ac_conv2d_shape *s)
{
    size_t b_f, t_f, x_f;
    wide_sizes(s, &b_f, &t_f, &x_f);
    return (b_f + t_f + x_f) * sizeof(float) + 3 * ALIGN;
}

static wide_slice wide_slice_get(const ac_conv2d_shape *s, void *scratch, int ith)
{
    size_t b_f, t_f, x_f;
    wide_sizes(s, &b_f, &t_f, &x_f);
    char *base = (char *)scratch + (size_t)ith * wide_slice_bytes(s);
    wide_slice sl;
    sl.bpack = align_ptr(base);
    sl.tile = align_ptr(sl.bpack + b_f);
    sl.xp = align_ptr(sl.tile + t_f);
    return sl;
}

/* d[c] = src[c * step] for c < n: a copy for step 1, a loop of its own for
 * step 2 (the usual stride), which the compiler keeps in registers. */
static void gather_run(float *restrict d, const float *restrict src, int n, int step)
{
    if (step == 1) {
        memcpy(d, src, sizeof(float) * (size_t)n);
    } else if (step == 2) {
        for (int c = 0; c < n; c++)
            d[c] = src[2 * c];
    } else {
        for (int c = 0; c < n; c++)
            d[c] = src[(int64_t)c * step];
    }
}

/* One phase plane of one channel xc: d[r][c] = padded input row r*sh + py,
 * column c*sw + px (0 outside the input), tail zero. */
static void wide_pad_plane(const ac_conv2d_shape *s, const wide_geom *g, const float *xc, int py, int px, float *d)
{
    const int sw = s->stride_w;
    /* column c holds input column c*sw + px - pad_left: inside for c in [ca, cb) */
    const int first = s->pad_left - px; /* c*sw >= first */
    const int ca = iclamp(first <= 0 ? 0 : (first + sw - 1) / sw, 0, g->wq);
    const int last = s->pad_left + s->w_in - px; /* c*sw < last */
    const int cb = iclamp(last <= 0 ? 0 : (last + sw - 1) / sw, ca, g->wq);
    for (int r = 0; r < g->hq; r++, d += g->wq) {
        const int ih = r * s->stride_h + py - s->pad_top;
        if (ih < 0 || ih >= s->h_in) {
            zero_run(d, g->wq);
            continue;
        }
        const float *src = xc + (int64_t)ih * s->w_in + (ca * sw + px - s->pad_left);
        zero_run(d, ca);
        gather_run(d + ca, src, cb - ca, sw);
        zero_run(d + cb, g->wq - cb);
    }
    zero_run(d, (int)(g->plane - (int64_t)g->hq * g->wq));
}

/* Whether some tap reads phase (py, px): a 1x1 stride-2 conv reads one of four. */
static bool phase_used(const ac_conv2d_shape *s, int py, int px)
{
    bool row = false, col = false;
    for (int ky = 0; ky < s->kh && !row; ky++)
        row = ky * s->dil_h % s->stride_h == py;
    for (int kx = 0; kx < s->kw && !col; kx++)
        col = kx * s->dil_w % s->stride_w == px;
    return row && col;
}

/* xp = the cin_g channels at xg as phase planes, channel by channel (the
 * planes no tap reads are left as they are). */
static void wide_pad(const ac_conv2d_shape *s, const wide_geom *g, const float *xg, int cin_g, float *xp)
{
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    for (int ci = 0; ci < cin_g; ci++)
        for (int py = 0; py < s->stride_h; py++)
            for (int px = 0; px < s->stride_w; px++, xp += g->plane)
                if (phase_used(s, py, px))
                    wide_pad_plane(s, g, xg + ci * plane_in, py, px, xp);
}

/* Panels of B rows [k0, k0+kc), widened columns [j0, j0+nb), as pack_b lays them out. */
static void wide_pack(float *dst, int w, const ac_conv2d_shape *s, const wide_geom *g, const float *xp, int k0,
                      int kc, int64_t j0, int nb)
{
    const int ksz = s->kh * s->kw, phases = s->stride_h * s->stride_w;
    for (int kk = 0; kk < kc; kk++) {
        const int k = k0 + kk;
        const int ci = k / ksz, ky = (k % ksz) / s->kw, kx = k % s->kw;
        const int dy = ky * s->dil_h, dx = kx * s->dil_w;
        const int phase = (dy % s->stride_h) * s->stride_w + dx % s->stride_w;
        const float *row = xp + ((int64_t)ci * phases + phase) * g->plane +
                           (int64_t)(dy / s->stride_h) * g->wq + dx / s->stride_w + j0;
        for (int p = 0; p * w < nb; p++) {
            float *d = dst + (int64_t)p * kc * w + (int64_t)kk * w;
            const int nr = imin(w, nb - p * w);
            memcpy(d, row + p * w, sizeof(float) * (size_t)nr);
            if (nr < w)
                zero_run(d + nr, w - nr);
        }
    }
}

/* d[0, n) = src[0, n) (+ bv with a bias), then act: a run of tile columns stored back. */
static void store_run(float *d, const float *src, int n, bool with_bias, float bv, const ac_conv_act *act)
{
    if (with_bias)
        for (int v = 0; v < n; v++)
            d[v] = src[v] + bv;
    else
        memcpy(d, src, sizeof(float) * (size_t)n);
    act_span(d, n, act);
}

/* y rows [m0, m0+mrows) (of one image and group, plane h_out x w_out) from the
 * widened tile over columns [j0, j0+nb): the valid columns, plus the bias. */
static void wide_store(const ac_conv2d_shape *s, const wide_geom *g, const float *tile, float *yg,
                       const float *bias, int m0, int mrows, int64_t j0, int nb, const ac_conv_act *act)
{
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    for (int i = 0; i < mrows; i++) {
        const float *t = tile + (int64_t)i * g->ldt;
        float *yr = yg + (int64_t)(m0 + i) * plane_out;
        const float bv = bias ? bias[m0 + i] : 0.0f;
        int64_t j = j0;
        int oh = (int)(j0 / g->wq), ow = (int)(j0 % g->wq);
        while (j < j0 + nb) {
            const int len = (int)(j0 + nb - j < g->wq - ow ? j0 + nb - j : g->wq - ow);
            const int valid = iclamp(s->w_out - ow, 0, len);
            store_run(yr + (int64_t)oh * s->w_out + ow, t + (j - j0), valid, bias != NULL, bv, act);
            j += len;
            oh++;
            ow = 0;
        }
    }
}

/* One K block [k0, k0+kc) of a tile in scratch: rows [m0, m0+mrows) of the
 * row-major A (row stride k) against the packed panels of nb columns,
 * accumulated into tile (row stride ldt, whole panels and MR rows of room). */
static void tile_k_block(const ukernel *uk, const float *a, int k, int k0, int kc, int m0, int mrows,
                         const float *bpack, int nb, float *tile, int ldt)
{
    const int w = uk->nr;
    for (int i = 0; i < mrows; i += MR) {
        const int mr = imin(MR, mrows - i);
        /* rows past mr repeat the last row; the tile has room for them */
        const float *arow[MR];
        for (int r = 0; r < MR; r++)
            arow[r] = a + (int64_t)(m0 + i + imin(r, mr - 1)) * k + k0;
        for (int p = 0; p * w < nb; p++)
            uk->fn(kc, arow, 1, bpack + (int64_t)p * kc * w, tile + (int64_t)i * ldt + p * w, ldt, k0 > 0);
    }
}

/* The GEMM of one tile: rows [m0, m0+mrows) x widened columns [j0, j0+nb) into sl->tile. */
static void wide_tile(const ac_conv2d_shape *s, const wide_geom *g, const float *wg, int k, const wide_slice *sl,
                      int m0, int mrows, int64_t j0, int nb, const ukernel *uk)
{
    const int w = uk->nr;
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = imin(KC, k - k0);
        wide_pack(sl->bpack, w, s, g, sl->xp, k0, kc, j0, nb);
        tile_k_block(uk, wg, k, k0, kc, m0, mrows, sl->bpack, nb, sl->tile, g->ldt);
    }
}

static void conv_wide(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                      void *scratch, int ith, int nth, const ukernel *uk, const ac_conv_act *act)
{
    const wide_geom g = wide_geom_of(s);
    const wide_slice sl = wide_slice_get(s, scratch, ith);
    const int cin_g = s->c_in / s->groups, cout_g = s->c_out / s->groups;
    const int k = cin_g * s->kh * s->kw;
    const int outer = s->n * s->groups;
    const int mb = row_block(cout_g, (int)(g.n_wide < INT32_MAX ? g.n_wide : INT32_MAX), outer, nth);
    const int nmb = div_up(cout_g, mb);
    const int64_t nnb = (g.n_wide + NB - 1) / NB;
    const int64_t tiles = (int64_t)outer * nnb * nmb;
    const int64_t begin = tiles * ith / nth, end = tiles * (ith + 1) / nth;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    int padded = -1; /* the (image, group) now in sl.xp */
    for (int64_t t = begin; t < end;) {
        const int64_t col_block = t / nmb;
        const int64_t run_end = end < (col_block + 1) * nmb ? end : (col_block + 1) * nmb;
        const int o = (int)(col_block / nnb);
        const int64_t j0 = (col_block % nnb) * NB;
        const int b = o / s->groups, gi = o % s->groups;
        const int m0 = (int)(t % nmb) * mb;
        const int mrows = imin((int)(run_end - t) * mb, cout_g - m0);
        const int nb = (int)(g.n_wide - j0 < NB ? g.n_wide - j0 : NB);
        t = run_end;
        if (o != padded) {
            wide_pad(s, &g, x + ((int64_t)b * s->c_in + (int64_t)gi * cin_g) * plane_in, cin_g, sl.xp);
            padded = o;
        }
        const float *wg = w + (int64_t)gi * cout_g * k;
        wide_tile(s, &g, wg, k, &sl, m0, mrows, j0, nb, uk);
        wide_store(s, &g, sl.tile, y + ((int64_t)b * s->c_out + (int64_t)gi * cout_g) * plane_out,
                   bias ? bias + gi * cout_g : NULL, m0, mrows, j0, nb, act);
    }
}

/* ---- depthwise ----------------------------------------------------------------------
 * Work item = one (image, channel) plane. The AVX2 path first copies the plane
 * into a zero-padded buffer wide enough for whole 8-output blocks, so every
 * output runs the same vector code (taps in (ky, kx) order, padding taps add
 * 0 * w); the portable path computes each output directly, skipping padding. */

/* One output row of a depthwise conv, scalar: taps in (ky, kx) order, bias last. */
static void dw_row_scalar(const ac_conv2d_shape *s, const float *xc, const float *wc, float bias,
                          float *yrow, int oh)
{
    for (int ow = 0; ow < s->w_out; ow++) {
        float acc = 0.0f;
        for (int ky = 0; ky < s->kh; ky++) {
            const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
            if (ih < 0 || ih >= s->h_in)
                continue;
            for (int kx = 0; kx < s->kw; kx++) {
                const int iw = ow * s->stride_w - s->pad_left + kx * s->dil_w;
                if (iw < 0 || iw >= s->w_in)
                    continue;
                acc += xc[(int64_t)ih * s->w_in + iw] * wc[ky * s->kw + kx];
            }
        }
        yrow[ow] = acc + bias;
    }
}

/* Rows and columns of the padded plane: every row a tap can touch, and every
 * column an 8-output block can load (stride 2 loads one float past the last tap). */
static void dw_pad_geom(const ac_conv2d_shape *s, int *rows, int *cols)
{
    const int w_out8 = round_up(s->w_out, 8);
    *rows = (s->h_out - 1) * s->stride_h + (s->kh - 1) * s->dil_h + 1;
    *cols = round_up((w_out8 - 1) * s->stride_w + (s->kw - 1) * s->dil_w + 2, 8);
}

static size_t dw_slice_bytes(const ac_conv2d_shape *s)
{
    int rows, cols;
    dw_pad_geom(s, &rows, &cols);
    /* + 8 floats: the last row's tail store may run 8 floats past the row */
    return ((size_t)rows * cols + 8) * sizeof(float) + ALIGN;
}

/* 8 consecutive outputs' taps starting at p, for stride sw. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 dw_load8(const float *p, int sw)
{
    if (sw == 1)
        return _mm256_loadu_ps(p);
    if (sw == 2) {
        const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
        const __m256 ev = _mm256_shuffle_ps(v0, v1, 0x88); /* 0 2 8 10 | 4 6 12 14 */
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8));
    }
    return _mm256_set_ps(p[7 * sw], p[6 * sw], p[5 * sw], p[4 * sw], p[3 * sw], p[2 * sw], p[sw],
                         p[0]);
}

/* The first n (1..8) lanes of v to d. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_store8(float *d, __m256 v, int n)
{
    if (n >= 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(d, mask, v);
}

/* The plane's outputs as blocks of 8 (row by row); 4 blocks at a time so the
 * four FMA chains overlap (one chain alone is latency bound). */
__attribute__((target("avx2,fma"))) static void
dw_plane_avx2(const ac_conv2d_shape *s, const float *pad, int cols, const float *wc, float bias,
              float *yc)
{
    const int sw = s->stride_w;
    const int bpr = div_up(s->w_out, 8); /* blocks per output row */
    const int total = s->h_out * bpr;
    const __m256 bv = _mm256_set1_ps(bias);
    for (int bi = 0; bi < total; bi += 4) {
        const int cnt = imin(4, total - bi);
        const float *base[4];
        float *dst[4];
        int valid[4];
        for (int u = 0; u < 4; u++) {
            const int idx = bi + imin(u, cnt - 1); /* spare lanes recompute the last block */
            const int oh = idx / bpr, ow = idx % bpr * 8;
            base[u] = pad + (int64_t)oh * s->stride_h * cols + ow * sw;
            dst[u] = yc + (int64_t)oh * s->w_out + ow;
            valid[u] = imin(8, s->w_out - ow);
        }
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int ky = 0; ky < s->kh; ky++) {
            for (int kx = 0; kx < s->kw; kx++) {
                const int64_t off = (int64_t)ky * s->dil_h * cols + kx * s->dil_w;
                const __m256 wv = _mm256_set1_ps(wc[ky * s->kw + kx]);
                a0 = _mm256_fmadd_ps(wv, dw_load8(base[0] + off, sw), a0);
                a1 = _mm256_fmadd_ps(wv, dw_load8(base[1] + off, sw), a1);
                a2 = _mm256_fmadd_ps(wv, dw_load8(base[2] + off, sw), a2);
                a3 = _mm256_fmadd_ps(wv, dw_load8(base[3] + off, sw), a3);
            }
        }
        const __m256 acc[4] = {_mm256_add_ps(a0, bv), _mm256_add_ps(a1, bv), _mm256_add_ps(a2, bv),
                               _mm256_add_ps(a3, bv)};
        for (int u = 0; u < cnt; u++)
            dw_store8(dst[u], acc[u], valid[u]);
    }
}

/* One 8-output block of a 3x3 kernel at p (row stride cols). */
#define AC_DW3X3_BLOCK(a, p, cols, dw, sw)                                                   \
    do {                                                                                     \
        const float *q0_ = (p), *q1_ = q0_ + (cols) * dh, *q2_ = q1_ + (cols) * dh;          \
        a = _mm256_setzero_ps();                                                             \
        a = _mm256_fmadd_ps(wv[0], dw_load8(q0_, sw), a);                                    \
        a = _mm256_fmadd_ps(wv[1], dw_load8(q0_ + (dw), sw), a);                             \
        a = _mm256_fmadd_ps(wv[2], dw_load8(q0_ + 2 * (dw), sw), a);                         \
        a = _mm256_fmadd_ps(wv[3], dw_load8(q1_, sw), a);                                    \
        a = _mm256_fmadd_ps(wv[4], dw_load8(q1_ + (dw), sw), a);                             \
        a = _mm256_fmadd_ps(wv[5], dw_load8(q1_ + 2 * (dw), sw), a);                         \
        a = _mm256_fmadd_ps(wv[6], dw_load8(q2_, sw), a);                                    \
        a = _mm256_fmadd_ps(wv[7], dw_load8(q2_ + (dw), sw), a);                             \
        a = _mm256_fmadd_ps(wv[8], dw_load8(q2_ + 2 * (dw), sw), a);                         \
    } while (0)

/* 3x3 fast path: the same taps in the same order as dw_plane_avx2 (so the
 * same results), weights held in registers, 4 blocks of 8 in flight; blocks
 * run row by row across output rows, so narrow planes (7x7) overlap too.
 * sw is a literal at each call site, so the loads specialise. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
dw3x3_blocks_avx2(const ac_conv2d_shape *s, const float *pad, int64_t cols, const __m256 wv[9],
                  __m256 bv, float *yc, int sw)
{
    const int64_t dh = s->dil_h;
    const int dw = s->dil_w;
    const int bpr = div_up(s->w_out, 8);
    const int total = s->h_out * bpr;
    int oh = 0, ob = 0; /* output row and block within it of the next block */
    for (int bi = 0; bi < total; bi += 4) {
        const int cnt = imin(4, total - bi);
        const float *src[4];
        float *dst[4];
        int valid[4];
        for (int u = 0; u < 4; u++) {
            src[u] = pad + (int64_t)oh * s->stride_h * cols + ob * 8 * sw;
            dst[u] = yc + (int64_t)oh * s->w_out + ob * 8;
            valid[u] = imin(8, s->w_out - ob * 8);
            if (u + 1 < cnt && ++ob == bpr) { /* spare lanes repeat the last block */
                ob = 0;
                oh++;
            }
        }
        if (++ob == bpr) {
            ob = 0;
            oh++;
        }
        __m256 a0, a1, a2, a3;
        AC_DW3X3_BLOCK(a0, src[0], cols, dw, sw);
        AC_DW3X3_BLOCK(a1, src[1], cols, dw, sw);
        AC_DW3X3_BLOCK(a2, src[2], cols, dw, sw);
        AC_DW3X3_BLOCK(a3, src[3], cols, dw, sw);
        a0 = _mm256_add_ps(a0, bv);
        a1 = _mm256_add_ps(a1, bv);
        a2 = _mm256_add_ps(a2, bv);
        a3 = _mm256_add_ps(a3, bv);
        /* a block's valid lanes only (a 7- or 28-wide row ends inside one):
         * masked stores, no copy through the stack */
        const __m256 acc[4] = {a0, a1, a2, a3};
        for (int u = 0; u < cnt; u++)
            dw_store8(dst[u], acc[u], valid[u]);
    }
}

/* Row by row variant for wide planes (less bookkeeping per block than the
 * flat walk above; identical arithmetic per output). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
dw3x3_rows_avx2(const ac_conv2d_shape *s, const float *pad, int64_t cols, const __m256 wv[9],
                __m256 bv, float *yc, int sw)
{
    const int64_t dh = s->dil_h;
    const int dw = s->dil_w;
    for (int oh = 0; oh < s->h_out; oh++) {
        const float *row = pad + (int64_t)oh * s->stride_h * cols;
        float *yrow = yc + (int64_t)oh * s->w_out;
        int ow = 0;
        for (; ow + 32 <= s->w_out; ow += 32) {
            __m256 a0, a1, a2, a3;
            AC_DW3X3_BLOCK(a0, row + ow * sw, cols, dw, sw);
            AC_DW3X3_BLOCK(a1, row + (ow + 8) * sw, cols, dw, sw);
            AC_DW3X3_BLOCK(a2, row + (ow + 16) * sw, cols, dw, sw);
            AC_DW3X3_BLOCK(a3, row + (ow + 24) * sw, cols, dw, sw);
            _mm256_storeu_ps(yrow + ow, _mm256_add_ps(a0, bv));
            _mm256_storeu_ps(yrow + ow + 8, _mm256_add_ps(a1, bv));
            _mm256_storeu_ps(yrow + ow + 16, _mm256_add_ps(a2, bv));
            _mm256_storeu_ps(yrow + ow + 24, _mm256_add_ps(a3, bv));
        }
        for (; ow < s->w_out; ow += 8) {
            __m256 a0;
            AC_DW3X3_BLOCK(a0, row + ow * sw, cols, dw, sw);
            a0 = _mm256_add_ps(a0, bv);
            dw_store8(yrow + ow, a0, imin(8, s->w_out - ow));
        }
    }
}
#undef AC_DW3X3_BLOCK

__attribute__((target("avx2,fma"))) static void
dw3x3_plane_avx2(const ac_conv2d_shape *s, const float *pad, int cols, const float *wc,
                 float bias, float *yc)
{
    __m256 wv[9];
    for (int i = 0; i < 9; i++)
        wv[i] = _mm256_set1_ps(wc[i]);
    const __m256 bv = _mm256_set1_ps(bias);
    if (s->w_out >= 32) {
        if (s->stride_w == 1)
            dw3x3_rows_avx2(s, pad, cols, wv, bv, yc, 1);
        else
            dw3x3_rows_avx2(s, pad, cols, wv, bv, yc, 2);
    } else {
        if (s->stride_w == 1)
            dw3x3_blocks_avx2(s, pad, cols, wv, bv, yc, 1);
        else
            dw3x3_blocks_avx2(s, pad, cols, wv, bv, yc, 2);
    }
}

/* pad[r][c] = x[r - pad_top][c - pad_left], 0 outside the plane. Vector
 * stores: planes are small and libc calls per row cost more than the copy. */
__attribute__((target("avx2,fma"))) static void
dw_pad_plane_avx2(const ac_conv2d_shape *s, const float *xc, float *pad, int rows, int cols)
{
    const int c0 = iclamp(s->pad_left, 0, cols);
    const int c1 = iclamp(s->pad_left + s->w_in, c0, cols);
    const int len = c1 - c0;
    const __m256 zero = _mm256_setzero_ps();
    for (int r = 0; r < rows; r++) {
        float *pr = pad + (int64_t)r * cols;
        for (int c = 0; c < cols; c += 8) /* cols is a multiple of 8 */
            _mm256_storeu_ps(pr + c, zero);
        const int ih = r - s->pad_top;
        if (ih < 0 || ih >= s->h_in)
            continue;
        const float *src = xc + (int64_t)ih * s->w_in + (c0 - s->pad_left);
        float *d = pr + c0;
        int j = 0;
        for (; j + 8 <= len; j += 8)
            _mm256_storeu_ps(d + j, _mm256_loadu_ps(src + j));
        if (j < len) {
            /* tail: a masked load never reads past the input row (lanes past it
             * come in as 0); a copy through a stack buffer instead stalled on
             * store forwarding once per row, more than the plane's arithmetic */
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(len - j), lane);
            /* may spill into the next row (rewritten next) or the slice's 8 spare floats */
            _mm256_storeu_ps(d + j, _mm256_maskload_ps(src + j, mask));
        }
    }
}

static void conv_depthwise(const ac_conv2d_shape *s, const float *x, const float *w,
                           const float *bias, float *y, void *scratch, int ith, int nth,
                           ac_conv_isa isa, const ac_conv_act *act)
{
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;
    const int ksz = s->kh * s->kw;
    int rows = 0, cols = 0;
    dw_pad_geom(s, &rows, &cols);
    float *pad = align_ptr((char *)scratch + (size_t)ith * dw_slice_bytes(s));
    const int64_t planes = (int64_t)s->n * s->c_out;
    const int64_t begin = planes * ith / nth, end = planes * (ith + 1) / nth;
    for (int64_t plane = begin; plane < end; plane++) {
        const int c = (int)(plane % s->c_out);
        const float *xc = x + plane * plane_in; /* c_in == c_out */
        const float *wc = w + (int64_t)c * ksz;
        const float bv = bias ? bias[c] : 0.0f;
        float *yc = y + plane * plane_out;
        if (isa != AC_CONV_ISA_PORTABLE) { /* AVX-512 CPUs use the AVX2 depthwise code */
            dw_pad_plane_avx2(s, xc, pad, rows, cols);
            if (s->kh == 3 && s->kw == 3 && s->stride_w <= 2)
                dw3x3_plane_avx2(s, pad, cols, wc, bv, yc);
            else
                dw_plane_avx2(s, pad, cols, wc, bv, yc);
        } else {
            for (int oh = 0; oh < s->h_out; oh++)
                dw_row_scalar(s, xc, wc, bv, yc + (int64_t)oh * s->w_out, oh);
        }
        act_span(yc, plane_out, act);
    }
}

static bool conv_is_depthwise(const ac_conv2d_shape *s)
{
    return s->groups > 1 && s->groups == s->c_in && s->groups == s->c_out;
}

/* 1x1, stride 1, no padding: the input planes are B as they are. */
static bool conv_is_pointwise(const ac_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_left == 0 && s->h_out == s->h_in && s->w_out == s->w_in;
}

/* ---- conv ------------------------------------------------------------------------------ */

/* ---- pointwise convs on small planes: images side by side ------------------------------
 * A 1x1 conv on a 7x7 plane is a GEMM with N = 49: two 32-wide panels, the
 * second mostly zeros, and every tile an edge tile. With one group and
 * planes under a column block, the images of the batch are laid side by
 * side instead, N = n * h * w: column j is pixel j % hw of image j / hw, so
 * panels and blocks are full. Panels are packed from the images' planes
 * and the tile (in scratch) is stored back to each image with its bias.
 * Each output element is still one FMA chain per K block, so the results
 * are those of the per-image path bit for bit. */

static bool pointwise_batched(const ac_conv2d_shape *s)
{
    return s->groups == 1 && s->n > 1 && (int64_t)s->h_out * s->w_out < NB;
}

typedef struct {
    int ldt, rows;
} pwb_geom;

static pwb_geom pwb_geom_of(const ac_conv2d_shape *s)
{
    const int64_t n_all = (int64_t)s->n * s->h_out * s->w_out;
    pwb_geom g = {round_up((int)(n_all < NB ? n_all : NB), NR_MAX), round_up(s->c_out, MR)};
    return g;
}

static size_t pwb_slice_bytes(const ac_conv2d_shape *s)
{
    const pwb_geom g = pwb_geom_of(s);
    return ((size_t)imin(s->c_in, KC) * g.ldt + (size_t)g.rows * g.ldt) * sizeof(float) + 2 * ALIGN;
}

/* Panels of B rows [k0, k0+kc), columns [j0, j0+nb) of the side-by-side images. */
static void pwb_pack(float *dst, int w, const float *x, int64_t hw, int64_t img_stride, int k0, int kc, int64_t j0,
                     int nb)
{
    for (int p = 0; p * w < nb; p++) {
        float *d = dst + (int64_t)p * kc * w;
        const int nr = imin(w, nb - p * w);
        int64_t j = j0 + p * w;
        int done = 0;
        while (done < nr) { /* runs within one image */
            const int64_t img = j / hw, pix = j % hw;
            const int len = (int)(hw - pix < nr - done ? hw - pix : nr - done);
            const float *src = x + img * img_stride + (int64_t)k0 * hw + pix;
            for (int kk = 0; kk < kc; kk++)
                memcpy(d + (int64_t)kk * w + done, src + (int64_t)kk * hw, sizeof(float) * (size_t)len);
            done += len;
            j += len;
        }
        if (nr < w)
            for (int kk = 0; kk < kc; kk++)
                zero_run(d + (int64_t)kk * w + nr, w - nr);
    }
}

static void conv_pointwise_batched(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias,
                                   float *y, void *scratch, int ith, int nth, const ukernel *uk,
                                   const ac_conv_act *act)
{
    const pwb_geom g = pwb_geom_of(s);
    const int64_t hw = (int64_t)s->h_out * s->w_out, n_all = (int64_t)s->n * hw;
    const int k = s->c_in, m = s->c_out, wd = uk->nr;
    float *bpack = align_ptr((char *)scratch + (size_t)ith * pwb_slice_bytes(s));
    float *tile = align_ptr(bpack + (size_t)imin(k, KC) * g.ldt);
    const int mb = row_block(m, (int)(n_all < INT32_MAX ? n_all : INT32_MAX), 1, nth);
    const int nmb = div_up(m, mb);
    const int64_t nnb = (n_all + NB - 1) / NB;
    const int64_t tiles = nnb * nmb;
    const int64_t begin = tiles * ith / nth, end = tiles * (ith + 1) / nth;
    for (int64_t t = begin; t < end;) {
        const int64_t col_block = t / nmb;
        const int64_t run_end = end < (col_block + 1) * nmb ? end : (col_block + 1) * nmb;
        const int m0 = (int)(t % nmb) * mb;
        const int mrows = imin((int)(run_end - t) * mb, m - m0);
        const int64_t j0 = col_block * NB;
        const int nb = (int)(n_all - j0 < NB ? n_all - j0 : NB);
        t = run_end;
        for (int k0 = 0; k0 < k; k0 += KC) {
            const int kc = imin(KC, k - k0);
            pwb_pack(bpack, wd, x, hw, (int64_t)s->c_in * hw, k0, kc, j0, nb);
            tile_k_block(uk, w, k, k0, kc, m0, mrows, bpack, nb, tile, g.ldt);
        }
        /* back to each image's planes, plus the bias */
        for (int i = 0; i < mrows; i++) {
            const float bv = bias ? bias[m0 + i] : 0.0f;
            const float *tr = tile + (int64_t)i * g.ldt;
            int64_t j = j0;
            while (j < j0 + nb) {
                const int64_t img = j / hw, pix = j % hw;
                const int len = (int)(hw - pix < j0 + nb - j ? hw - pix : j0 + nb - j);
                store_run(y + (img * s->c_out + m0 + i) * hw + pix, tr + (j - j0), len, bias != NULL, bv, act);
                j += len;
            }
        }
    }
}

size_t ac_conv2d_f32_scratch_bytes(const ac_conv2d_shape *s, int nth)
{
    if (nth < 1)
        nth = 1;
    if (conv_is_depthwise(s))
        return (size_t)nth * dw_slice_bytes(s);
    if (!conv_is_pointwise(s))
        return (size_t)nth * wide_slice_bytes(s);
    if (pointwise_batched(s))
        return (size_t)nth * pwb_slice_bytes(s);
    return (size_t)nth * slice_bytes(s->c_in / s->groups, s->h_out * s->w_out);
}

/* 1x1 stride 1 unpadded: per (image, group) B is the input planes as they are. */
static void conv_pointwise(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                           void *scratch, int ith, int nth, const ukernel *uk, const ac_conv_act *act)
{
    const int cin_g = s->c_in / s->groups, cout_g = s->c_out / s->groups;
    const int k = cin_g;
    const int n = s->h_out * s->w_out;
    const scratch_slice sl = slice_get(scratch, k, n, ith);
    const int outer = s->n * s->groups;
    const int mb = row_block(cout_g, n, outer, nth);
    const int nmb = div_up(cout_g, mb), nnb = div_up(n, NB);
    /* Tiles ordered (image*group, column block, row block); a thread's run of
     * tiles in one column block is done in one pass so its B block is packed once. */
    const int64_t tiles = (int64_t)outer * nnb * nmb;
    const int64_t begin = tiles * ith / nth, end = tiles * (ith + 1) / nth;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;

    for (int64_t t = begin; t < end;) {
        const int64_t col_block = t / nmb; /* o * nnb + nbi */
        const int64_t run_end = end < (col_block + 1) * nmb ? end : (col_block + 1) * nmb;
        const int o = (int)(col_block / nnb), nbi = (int)(col_block % nnb);
        const int b = o / s->groups, g = o % s->groups;
        const int m0 = (int)(t % nmb) * mb;
        const int mrows = imin((int)(run_end - t) * mb, cout_g - m0);
        const int j0 = nbi * NB, ncols = imin(NB, n - j0);
        t = run_end;
        gemm_job job;
        memset(&job, 0, sizeof job);
        job.m = cout_g;
        job.n = n;
        job.k = k;
        job.a = w + (int64_t)g * cout_g * k;
        job.a_rs = k;
        job.a_cs = 1;
        job.b = x + ((int64_t)b * s->c_in + (int64_t)g * cin_g) * plane_in;
        job.b_rs = plane_in;
        job.b_cs = 1;
        job.y = y + ((int64_t)b * s->c_out + (int64_t)g * cout_g) * n;
        job.ldy = n;
        gemm_tile(&job, m0, mrows, j0, ncols, &sl, uk);
        for (int i = m0; i < m0 + mrows; i++) {
            float *yr = job.y + (int64_t)i * n + j0;
            if (bias) {
                const float bv = bias[g * cout_g + i];
                for (int j = 0; j < ncols; j++)
                    yr[j] += bv;
            }
            act_span(yr, ncols, act);
        }
    }
}

static void conv_isa_act(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                         void *scratch, int ith, int nth, ac_conv_isa isa, const ac_conv_act *act);

void ac_conv2d_f32_isa(const ac_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y, void *scratch, int ith, int nth,
                       ac_conv_isa isa)
{
    conv_isa_act(s, x, w, bias, y, scratch, ith, nth, isa, NULL);
}

static void conv_isa_act(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                         void *scratch, int ith, int nth, ac_conv_isa isa, const ac_conv_act *act)
{
    isa = resolve_isa(isa);
    if (nth < 1) {
        nth = 1;
        ith = 0;
    }
    if (s->n <= 0 || s->c_out <= 0 || s->h_out <= 0 || s->w_out <= 0)
        return;
    if (conv_is_depthwise(s))
        conv_depthwise(s, x, w, bias, y, scratch, ith, nth, isa, act);
    else if (conv_is_pointwise(s) && pointwise_batched(s))
        conv_pointwise_batched(s, x, w, bias, y, scratch, ith, nth, ukernel_for(isa), act);
    else if (conv_is_pointwise(s))
        conv_pointwise(s, x, w, bias, y, scratch, ith, nth, ukernel_for(isa), act);
    else
        conv_wide(s, x, w, bias, y, scratch, ith, nth, ukernel_for(isa), act);
}

bool ac_conv2d_f32_act(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                       void *scratch, int ith, int nth, const ac_conv_act *act)
{
    if (ac_kernels_ref_forced() || (!scratch && ac_conv2d_f32_scratch_bytes(s, nth) > 0))
        return false;
    conv_isa_act(s, x, w, bias, y, scratch, ith, nth, AC_CONV_ISA_AUTO, act);
    return true;
}

void ac_conv2d_f32(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias,
                   float *y, void *scratch, int ith, int nth)
{
    if (ac_kernels_ref_forced() || (!scratch && ac_conv2d_f32_scratch_bytes(s, nth) > 0)) {
        ac_conv2d_f32__ref(s, x, w, bias, y, ith, nth);
        return;
    }
    ac_conv2d_f32_isa(s, x, w, bias, y, scratch, ith, nth, AC_CONV_ISA_AUTO);
}

/* ---- gemm ------------------------------------------------------------------------------ */

size_t ac_gemm_f32_scratch_bytes(const ac_gemm_shape *s, int nth)
{
    if (nth < 1)
        nth = 1;
    return (size_t)nth * slice_bytes(s->k, s->n);
}

void ac_gemm_f32_isa(const ac_gemm_shape *s, const float *a, const float *b, const float *c,
                     float *y, void *scratch, int ith, int nth, ac_conv_isa isa)
{
    isa = resolve_isa(isa);
    if (nth < 1) {
        nth = 1;
        ith = 0;
    }
    if (s->m <= 0 || s->n <= 0)
        return;
    const ukernel *uk = ukernel_for(isa);
    const scratch_slice sl = slice_get(scratch, s->k, s->n, ith);
    gemm_job job;
    memset(&job, 0, sizeof job);
    job.m = s->m;
    job.n = s->n;
    job.k = s->k;
    job.a = a;
    job.a_rs = s->trans_a ? 1 : s->k;
    job.a_cs = s->trans_a ? s->m : 1;
    job.b = b;
    job.b_rs = s->trans_b ? 1 : s->n;
    job.b_cs = s->trans_b ? s->k : 1;
    job.y = y;
    job.ldy = s->n;

    const int mb = row_block(s->m, s->n, 1, nth);
    const int nmb = div_up(s->m, mb), nnb = div_up(s->n, NB);
    /* Tiles ordered (column block, row block), runs done in one pass as in conv. */
    const int64_t tiles = (int64_t)nmb * nnb;
    const int64_t begin = tiles * ith / nth, end = tiles * (ith + 1) / nth;
    const bool use_c = c && s->beta != 0.0f; /* as in __ref: beta == 0 ignores C */
    for (int64_t t = begin; t < end;) {
        const int64_t nbi = t / nmb;
        const int64_t run_end = end < (nbi + 1) * nmb ? end : (nbi + 1) * nmb;
        const int m0 = (int)(t % nmb) * mb;
        const int mrows = imin((int)(run_end - t) * mb, s->m - m0);
        const int j0 = (int)nbi * NB, ncols = imin(NB, s->n - j0);
        t = run_end;
        gemm_tile(&job, m0, mrows, j0, ncols, &sl, uk);
        for (int i = m0; i < m0 + mrows; i++) {
            float *yr = y + (int64_t)i * s->n;
            const float *cr = use_c ? c + (int64_t)(s->c_rows == 1 ? 0 : i) * s->c_cols : NULL;
            for (int j = j0; j < j0 + ncols; j++) {
                float v = s->alpha * yr[j];
                if (cr)
                    v += s->beta * cr[s->c_cols == 1 ? 0 : j];
                yr[j] = v;
            }
        }
    }
}

void ac_gemm_f32(const ac_gemm_shape *s, const float *a, const float *b, const float *c, float *y,
                 void *scratch, int ith, int nth)
{
    if (ac_kernels_ref_forced() || !scratch) {
        ac_gemm_f32__ref(s, a, b, c, y, ith, nth);
        return;
    }
    ac_gemm_f32_isa(s, a, b, c, y, scratch, ith, nth, AC_CONV_ISA_AUTO);
}
