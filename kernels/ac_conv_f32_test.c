/* conv_f32_test: the fast fp32 conv/gemm against the __ref kernels.
 *
 * For every case (fixed edge shapes + seeded random ones):
 *  - fast (AVX-512, AVX2 and portable C kernels) matches __ref within 1e-4 of the element's
 *    magnitude, where the magnitude is __ref run on |x|, |w|, |bias| (a bound
 *    on the rounding of any summation order);
 *  - fast with nth = 1, 2, 3 (each ith run in turn) is bit-identical, and the
 *    AVX-512 and AVX2 kernels agree bit for bit (same FMA chains);
 *  - a non-depthwise conv gives the bits of ac_gemm_f32 on its explicit im2col
 *    matrix (the fast path packs B from padded phase planes instead);
 *  - every output element is written (outputs start as NaN);
 *  - scratch is exactly *_scratch_bytes(s, nth) bytes (ASan builds catch overruns);
 *  - the force-ref switch routes the public entry points to __ref. */
#include "ac_conv_f32.h"
#include "ac_conv_f32_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_check.h"
#include "ac_kernel_test_util.h"

static int g_conv_cases = 0, g_gemm_cases = 0;

static float *rand_floats(size_t count)
{
    float *p = xmalloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++)
        p[i] = (float)((int)(rng_next() % 20001) - 10000) / 10000.0f;
    return p;
}

static float *abs_copy(const float *p, size_t count)
{
    float *q = xmalloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++)
        q[i] = fabsf(p[i]);
    return q;
}

static float *nan_floats(size_t count)
{
    float *p = xmalloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++)
        p[i] = NAN;
    return p;
}

/* fast within tolerance of ref; mag is ref on absolute values. */
static int compare_tol(const char *what, const float *fast, const float *ref, const float *mag,
                       size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const float tol = 1e-4f * mag[i] + 1e-6f;
        if (!(fabsf(fast[i] - ref[i]) <= tol)) {
            CHECK(0, "%s: element %zu fast %.9g ref %.9g (tol %.3g)", what, i, fast[i], ref[i],
                  tol);
            return 1;
        }
    }
    return 0;
}

/* Every ISA the fast path has (each falls back to the best available below it). */
static const ac_conv_isa isas[] = {AC_CONV_ISA_AVX512, AC_CONV_ISA_AVX2, AC_CONV_ISA_PORTABLE};
enum { K_NISAS = sizeof isas / sizeof isas[0] };

/* ---- conv ------------------------------------------------------------------- */

typedef struct {
    int n, c_in, h, w, c_out, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, groups;
} conv_case;

static bool conv_case_shape(const conv_case *c, ac_conv2d_shape *s)
{
    memset(s, 0, sizeof *s);
    s->n = c->n;
    s->c_in = c->c_in;
    s->h_in = c->h;
    s->w_in = c->w;
    s->c_out = c->c_out;
    s->kh = c->kh;
    s->kw = c->kw;
    s->stride_h = c->sh;
    s->stride_w = c->sw;
    s->pad_top = c->pt;
    s->pad_left = c->pl;
    s->dil_h = c->dh;
    s->dil_w = c->dw;
    s->groups = c->groups;
    const int eh = c->dh * (c->kh - 1) + 1, ew = c->dw * (c->kw - 1) + 1;
    const int hp = c->h + c->pt + c->pb, wp = c->w + c->pl + c->pr;
    if (hp < eh || wp < ew)
        return false;
    s->h_out = (hp - eh) / c->sh + 1;
    s->w_out = (wp - ew) / c->sw + 1;
    return true;
}

static void run_conv_fast(const ac_conv2d_shape *s, const float *x, const float *w,
                          const float *b, float *y, int nth, ac_conv_isa isa)
{
    const size_t bytes = ac_conv2d_f32_scratch_bytes(s, nth);
    void *scratch = bytes ? xmalloc(bytes) : NULL;
    for (int ith = 0; ith < nth; ith++)
        ac_conv2d_f32_isa(s, x, w, b, y, scratch, ith, nth, isa);
    free(scratch);
}

/* The im2col matrix of image b, group g: [cin_g*kh*kw][h_out*w_out], row k =
 * (ci, ky, kx), zeros where the tap falls in the padding. */
static float *im2col(const ac_conv2d_shape *s, const float *x, int b, int g)
{
    const int cin_g = s->c_in / s->groups, n = s->h_out * s->w_out;
    float *cols = xmalloc((size_t)cin_g * s->kh * s->kw * n * sizeof(float));
    for (int ci = 0; ci < cin_g; ci++)
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
                float *d = cols + (size_t)((ci * s->kh + ky) * s->kw + kx) * n;
                const float *xc = x + ((size_t)b * s->c_in + (size_t)g * cin_g + ci) * s->h_in * s->w_in;
                for (int oh = 0; oh < s->h_out; oh++)
                    for (int ow = 0; ow < s->w_out; ow++) {
                        const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
                        const int iw = ow * s->stride_w - s->pad_left + kx * s->dil_w;
                        const bool in = ih >= 0 && ih < s->h_in && iw >= 0 && iw < s->w_in;
                        d[oh * s->w_out + ow] = in ? xc[ih * s->w_in + iw] : 0.0f;
                    }
            }
    return cols;
}

/* A non-depthwise conv is the GEMM weights x im2col (plus the bias as Gemm's C)
 * whatever way the fast conv reads its input: same K order and K blocks, so
 * the same bits as ac_gemm_f32_isa on the explicit im2col matrix. */
static void check_conv_is_gemm(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias,
                               const float *y, ac_conv_isa isa, const char *name)
{
    const int cin_g = s->c_in / s->groups, cout_g = s->c_out / s->groups;
    const int k = cin_g * s->kh * s->kw, n = s->h_out * s->w_out;
    ac_gemm_shape gs = {.m = cout_g, .n = n, .k = k, .alpha = 1.0f, .beta = bias ? 1.0f : 0.0f,
                        .c_rows = cout_g, .c_cols = 1};
    const size_t bytes = ac_gemm_f32_scratch_bytes(&gs, 1);
    void *scratch = xmalloc(bytes ? bytes : 1);
    float *yg = xmalloc((size_t)cout_g * n * sizeof(float));
    bool same = true;
    for (int b = 0; b < s->n && same; b++)
        for (int g = 0; g < s->groups && same; g++) {
            float *cols = im2col(s, x, b, g);
            ac_gemm_f32_isa(&gs, w + (size_t)g * cout_g * k, cols, bias ? bias + g * cout_g : NULL, yg, scratch, 0,
                            1, isa);
            same = !memcmp(yg, y + ((size_t)b * s->c_out + (size_t)g * cout_g) * n, (size_t)cout_g * n * sizeof(float));
            free(cols);
        }
    CHECK(same, "%s (isa %d): differs from the GEMM over its im2col matrix", name, (int)isa);
    free(scratch);
    free(yg);
}

static void check_conv(const conv_case *c, const char *name)
{
    ac_conv2d_shape s;
    if (!conv_case_shape(c, &s))
        return;
    g_conv_cases++;
    const size_t nx = (size_t)s.n * s.c_in * s.h_in * s.w_in;
    const size_t nw = (size_t)s.c_out * (s.c_in / s.groups) * s.kh * s.kw;
    const size_t ny = (size_t)s.n * s.c_out * s.h_out * s.w_out;
    float *x = rand_floats(nx), *w = rand_floats(nw), *b = rand_floats(s.c_out);
    float *xa = abs_copy(x, nx), *wa = abs_copy(w, nw), *ba = abs_copy(b, s.c_out);
    const bool with_bias = rng_next() % 4 != 0;
    float *ref = nan_floats(ny), *mag = nan_floats(ny);
    ac_conv2d_f32__ref(&s, x, w, with_bias ? b : NULL, ref, 0, 1);
    ac_conv2d_f32__ref(&s, xa, wa, with_bias ? ba : NULL, mag, 0, 1);

    /* __ref itself must not depend on nth either. */
    float *ref3 = nan_floats(ny);
    for (int ith = 0; ith < 3; ith++)
        ac_conv2d_f32__ref(&s, x, w, with_bias ? b : NULL, ref3, ith, 3);
    CHECK(memcmp(ref, ref3, ny * sizeof(float)) == 0, "%s: __ref differs for nth=3", name);

    float *y_first = NULL; /* the AVX-512 result, when that ISA ran */
    for (int ii = 0; ii < K_NISAS; ii++) {
        float *y1 = nan_floats(ny);
        run_conv_fast(&s, x, w, with_bias ? b : NULL, y1, 1, isas[ii]);
        if (ii == 0 && ac_conv_isa_avx512_available()) {
            y_first = nan_floats(ny);
            memcpy(y_first, y1, ny * sizeof(float));
        }
        if (isas[ii] == AC_CONV_ISA_AVX2 && y_first)
            CHECK(memcmp(y_first, y1, ny * sizeof(float)) == 0,
                  "%s: AVX-512 and AVX2 results differ (same FMA chains expected)", name);
        char what[160];
        snprintf(what, sizeof what, "%s (isa %d, nth 1)", name, (int)isas[ii]);
        compare_tol(what, y1, ref, mag, ny);
        if (!(s.groups > 1 && s.groups == s.c_in && s.groups == s.c_out)) /* depthwise: a direct kernel */
            check_conv_is_gemm(&s, x, w, with_bias ? b : NULL, y1, isas[ii], name);
        for (int nth = 2; nth <= 3; nth++) {
            float *yn = nan_floats(ny);
            run_conv_fast(&s, x, w, with_bias ? b : NULL, yn, nth, isas[ii]);
            CHECK(memcmp(y1, yn, ny * sizeof(float)) == 0, "%s (isa %d): nth=%d differs from nth=1",
                  name, (int)isas[ii], nth);
            free(yn);
        }
        free(y1);
    }
    free(x), free(w), free(b), free(xa), free(wa), free(ba), free(ref), free(mag), free(ref3);
    free(y_first);
}

static const conv_case k_conv_cases[] = {
    /* n cin  h   w cout kh kw sh sw pt pl pb pr dh dw groups */
    {1, 3, 7, 9, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},       /* pointwise, odd channels */
    {1, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* resnet 3x3 */
    {2, 8, 15, 17, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},    /* strided, batch 2 */
    {1, 3, 32, 32, 64, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1},    /* stem */
    {1, 37, 1, 1, 19, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* 1x1 spatial */
    {1, 16, 9, 9, 24, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1},     /* 1x1 stride 2 shortcut */
    {1, 9, 12, 12, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},    /* dilation 2 */
    {2, 8, 10, 10, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},    /* groups 2 */
    {1, 24, 40, 40, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 24},  /* depthwise s1 (vector path) */
    {2, 17, 33, 35, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 17},  /* depthwise s2 */
    {1, 8, 29, 29, 8, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 8},     /* depthwise 5x5 s2 */
    {1, 5, 20, 24, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 5},     /* depthwise dilated */
    {1, 6, 16, 36, 6, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1, 6},     /* depthwise SAME-style pads */
    {1, 6, 11, 11, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 6},    /* depthwise multiplier 2 */
    {1, 4, 13, 10, 7, 3, 3, 1, 1, 2, 0, 1, 3, 1, 1, 1},     /* odd asymmetric pads */
    {1, 64, 9, 9, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},     /* K = 576: several K blocks */
    {1, 300, 20, 20, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},   /* pointwise K > 256, N > 256 */
    {1, 2, 3, 3, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1},       /* kernel bigger than input */
    {1, 3, 1, 50, 4, 1, 3, 1, 1, 0, 1, 0, 1, 1, 1, 1},      /* 1-D */
    {1, 7, 3, 3, 7, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 7},       /* depthwise to 1x1 */
    {3, 32, 7, 7, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* batch 3, many row blocks */
    {1, 16, 56, 23, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* N > 256, rows split across blocks */
    {1, 8, 30, 30, 8, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 8},     /* depthwise stride 3 */
    {1, 2, 40, 70, 2, 3, 3, 1, 2, 1, 1, 1, 1, 1, 3, 2},     /* depthwise mixed stride, dil_w 3 */
    {1, 3, 9, 70, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3},      /* depthwise s2, wide rows (row path) */
    {2, 4, 11, 77, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 4},     /* depthwise dilated, wide rows */
    {1, 3, 12, 13, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3},     /* depthwise unpadded, 11-wide */
    {3, 24, 7, 7, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* pointwise 7x7, images side by side */
    {5, 16, 3, 5, 13, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* pointwise tiny planes, many per panel */
    {2, 300, 14, 14, 20, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},  /* pointwise K > 256, blocks across images */
    {2, 8, 9, 9, 12, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2},      /* pointwise groups 2: per image */
};

static void test_conv_fixed(void)
{
    const int count = (int)(sizeof k_conv_cases / sizeof k_conv_cases[0]);
    for (int i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof name, "conv fixed case %d", i);
        check_conv(&k_conv_cases[i], name);
    }
}

static void test_conv_random(void)
{
    for (int i = 0; i < 150; i++) {
        conv_case c;
        c.groups = rng_int(0, 3) == 0 ? rng_int(2, 4) : 1;
        const bool depthwise = rng_int(0, 3) == 0;
        c.n = rng_int(1, 2);
        c.kh = rng_int(1, 4);
        c.kw = rng_int(1, 4);
        c.sh = rng_int(1, 3);
        c.sw = rng_int(1, 3);
        c.dh = rng_int(1, 2);
        c.dw = rng_int(1, 2);
        c.pt = rng_int(0, c.kh);
        c.pl = rng_int(0, c.kw);
        c.pb = rng_int(0, c.kh);
        c.pr = rng_int(0, c.kw);
        c.h = rng_int(1, 24);
        c.w = rng_int(1, 40);
        if (depthwise) {
            c.groups = c.c_in = c.c_out = rng_int(1, 20);
        } else {
            c.c_in = c.groups * rng_int(1, 20);
            c.c_out = c.groups * rng_int(1, 20);
        }
        char name[64];
        snprintf(name, sizeof name, "conv random case %d", i);
        check_conv(&c, name);
    }
}

/* ---- gemm ------------------------------------------------------------------- */

typedef struct {
    int m, n, k;
    bool ta, tb;
    float alpha, beta;
    int c_form; /* 0 none, 1 scalar, 2 row [1][N], 3 column [M][1], 4 full [M][N] */
} gemm_case;

static void run_gemm_fast(const ac_gemm_shape *s, const float *a, const float *b, const float *c,
                          float *y, int nth, ac_conv_isa isa)
{
    const size_t bytes = ac_gemm_f32_scratch_bytes(s, nth);
    void *scratch = bytes ? xmalloc(bytes) : NULL;
    for (int ith = 0; ith < nth; ith++)
        ac_gemm_f32_isa(s, a, b, c, y, scratch, ith, nth, isa);
    free(scratch);
}

static void check_gemm(const gemm_case *g, const char *name)
{
    ac_gemm_shape s = {.m = g->m, .n = g->n, .k = g->k, .trans_a = g->ta, .trans_b = g->tb,
                       .alpha = g->alpha, .beta = g->beta};
    static const int rows_of[5] = {0, 1, 1, -1, -1}, cols_of[5] = {0, 1, -1, 1, -1};
    s.c_rows = rows_of[g->c_form] < 0 ? g->m : rows_of[g->c_form];
    s.c_cols = cols_of[g->c_form] < 0 ? g->n : cols_of[g->c_form];
    g_gemm_cases++;
    const size_t na = (size_t)g->m * g->k, nb = (size_t)g->k * g->n, ny = (size_t)g->m * g->n;
    const size_t nc = (size_t)s.c_rows * s.c_cols;
    float *a = rand_floats(na), *b = rand_floats(nb), *c = rand_floats(nc);
    float *aa = abs_copy(a, na), *ba = abs_copy(b, nb), *ca = abs_copy(c, nc);
    const float *cp = g->c_form ? c : NULL, *cap = g->c_form ? ca : NULL;
    ac_gemm_shape sa = s;
    sa.alpha = fabsf(s.alpha);
    sa.beta = fabsf(s.beta);
    float *ref = nan_floats(ny), *mag = nan_floats(ny);
    ac_gemm_f32__ref(&s, a, b, cp, ref, 0, 1);
    ac_gemm_f32__ref(&sa, aa, ba, cap, mag, 0, 1);
    float *y_first = NULL; /* the AVX-512 result, when that ISA ran */
    for (int ii = 0; ii < K_NISAS; ii++) {
        float *y1 = nan_floats(ny);
        run_gemm_fast(&s, a, b, cp, y1, 1, isas[ii]);
        if (ii == 0 && ac_conv_isa_avx512_available()) {
            y_first = nan_floats(ny);
            memcpy(y_first, y1, ny * sizeof(float));
        }
        if (isas[ii] == AC_CONV_ISA_AVX2 && y_first)
            CHECK(memcmp(y_first, y1, ny * sizeof(float)) == 0,
                  "%s: AVX-512 and AVX2 results differ (same FMA chains expected)", name);
        char what[160];
        snprintf(what, sizeof what, "%s (isa %d, nth 1)", name, (int)isas[ii]);
        compare_tol(what, y1, ref, mag, ny);
        for (int nth = 2; nth <= 3; nth++) {
            float *yn = nan_floats(ny);
            run_gemm_fast(&s, a, b, cp, yn, nth, isas[ii]);
            CHECK(memcmp(y1, yn, ny * sizeof(float)) == 0, "%s (isa %d): nth=%d differs from nth=1",
                  name, (int)isas[ii], nth);
            free(yn);
        }
        free(y1);
    }
    free(a), free(b), free(c), free(aa), free(ba), free(ca), free(ref), free(mag);
    free(y_first);
}

static void test_gemm(void)
{
    static const gemm_case fixed[] = {
        {1, 1000, 512, false, true, 1.0f, 1.0f, 2},   /* classifier: x * W^T + b */
        {4, 10, 3, false, false, 1.0f, 1.0f, 0},
        {7, 9, 300, true, false, 0.5f, 2.0f, 4},      /* trans A, K > 256 */
        {13, 17, 5, true, true, -1.5f, 0.25f, 3},
        {1, 1, 1, false, false, 1.0f, 1.0f, 1},
        {6, 16, 8, false, false, 1.0f, 0.0f, 4},      /* beta 0 ignores C */
        {5, 3, 0, false, false, 1.0f, 1.0f, 4},       /* K = 0: beta * C only */
        {100, 300, 40, false, true, 1.0f, 1.0f, 4},   /* several row and column blocks */
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "gemm fixed case %zu", i);
        check_gemm(&fixed[i], name);
    }
    for (int i = 0; i < 40; i++) {
        gemm_case g = {rng_int(1, 40), rng_int(1, 70), rng_int(1, 300), rng_int(0, 1),
                       rng_int(0, 1), (float)rng_int(-4, 4) / 2.0f, (float)rng_int(-4, 4) / 2.0f,
                       rng_int(0, 4)};
        char name[64];
        snprintf(name, sizeof name, "gemm random case %d", i);
        check_gemm(&g, name);
    }
}

/* ---- force-ref switch ------------------------------------------------------- */

static void test_force_ref(void)
{
    ac_conv2d_shape s;
    const conv_case c = {1, 40, 9, 9, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    conv_case_shape(&c, &s);
    const size_t nx = 40 * 81, nw = 20 * 40 * 9, ny = 20 * 81;
    float *x = rand_floats(nx), *w = rand_floats(nw);
    float *ref = nan_floats(ny), *y = nan_floats(ny);
    ac_conv2d_f32__ref(&s, x, w, NULL, ref, 0, 1);
    const size_t bytes = ac_conv2d_f32_scratch_bytes(&s, 1);
    void *scratch = xmalloc(bytes);

    const bool was = ac_kernels_ref_forced();
    ac_kernels_force_ref(true);
    CHECK(ac_kernels_ref_forced(), "force_ref(true) not reported");
    ac_conv2d_f32(&s, x, w, NULL, y, scratch, 0, 1);
    CHECK(memcmp(y, ref, ny * sizeof(float)) == 0, "forced conv is not bit-identical to __ref");

    ac_gemm_shape gs = {.m = 20, .n = 81, .k = 40, .alpha = 1.0f, .beta = 1.0f};
    float *gy = nan_floats(ny), *gref = nan_floats(ny);
    void *gscratch = xmalloc(ac_gemm_f32_scratch_bytes(&gs, 1));
    ac_gemm_f32__ref(&gs, w, x, NULL, gref, 0, 1);
    ac_gemm_f32(&gs, w, x, NULL, gy, gscratch, 0, 1);
    CHECK(memcmp(gy, gref, ny * sizeof(float)) == 0, "forced gemm is not bit-identical to __ref");

    ac_kernels_force_ref(false);
    CHECK(!ac_kernels_ref_forced(), "force_ref(false) not reported");
    ac_conv2d_f32(&s, x, w, NULL, y, scratch, 0, 1);
    float *yi = nan_floats(ny);
    ac_conv2d_f32_isa(&s, x, w, NULL, yi, scratch, 0, 1, AC_CONV_ISA_AUTO);
    CHECK(memcmp(y, yi, ny * sizeof(float)) == 0, "unforced conv is not the fast path");
    ac_kernels_force_ref(was);
    free(x), free(w), free(ref), free(y), free(yi), free(scratch), free(gy), free(gref),
        free(gscratch);
}

int main(void)
{
    rng_seed(0x2545F4914F6CDD1DULL); /* this test's cases were drawn from this seed */
    printf("conv_f32_test: avx2+fma %s, avx512f %s\n", ac_conv_isa_avx2_available() ? "yes" : "no",
           ac_conv_isa_avx512_available() ? "yes" : "no");
    test_conv_fixed();
    test_conv_random();
    test_gemm();
    test_force_ref();
    if (failures) {
        fprintf(stderr, "conv_f32_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("conv_f32_test: all passed (%d conv cases, %d gemm cases)\n", g_conv_cases,
           g_gemm_cases);
    return 0;
}
