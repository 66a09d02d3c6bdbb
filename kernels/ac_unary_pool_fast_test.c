/* unary_pool_fast_test: the fast fp32 unary ops and the fast fp32 / int8 max
 * and average pools (ac_unary_pool_fast.h) bit for bit against their __ref
 * kernels.
 *
 * Every case runs __ref once (nth = 1), then the fast entry point with
 * nth = 1, 2, 3, 7 (each ith in turn, as the ops call it); outputs must be
 * byte-identical (floats compared as bit patterns: NaN payloads, -0.0, inf,
 * denormals; only an average of two or more NaNs may differ in which NaN it
 * keeps, as that depends on how the compiler orders an add's operands, even
 * for __ref itself, e.g. under the sanitizer build), outputs start from a
 * sentinel (every element must be written) and guard bytes after the output
 * must stay untouched.
 * - Unary: ReLU, LeakyReLU (alpha 0, negative, > 1, NaN) and Clip (bounds
 *   inside, equal, crossed, +-0, +-inf, NaN) over lengths around vector widths,
 *   inputs mixing special values, random bit patterns and plain numbers, and
 *   in place; Sigmoid (the __ref fallback) once.
 * - Pools: fixed edge shapes (1x1 planes, kernel larger than the input, 1-D,
 *   rows wider than the kernel's 256-column chunk) and seeded random ones:
 *   batch 1..3, channels 1..17, planes 1..13, kernel 1..7, stride 1..3, each
 *   pad 0..3, floor / ceil output sizes and windows wholly past the end,
 *   count_include_pad both ways; fp32 inputs with specials and mixed
 *   magnitudes (a different summation order would show), int8 and uint8 codes
 *   random or saturated (-128 / 127 / 255), average requantization both from
 *   ac_avgpool_params() and random (saturating) multipliers, every
 *   input / output signedness pair. Shapes the fast path does not take (3-D,
 *   dilation) must still match through the fallback.
 * - ac_kernels_force_ref(true) (AC_FORCE_REF) still gives the __ref results.
 *
 * Usage: ac_unary_pool_fast_test [--seed N] [--random N] */
#include "ac_unary_pool_fast.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "ac_check.h"
#include "ac_conv_f32.h"
#include "ac_kernel_test_util.h"
#include "ac_round.h"

enum { GUARD = 64, SENTINEL = 0xA5 };

static const int k_nths[] = {1, 2, 3, 7};
static int g_cases;

/* ---- fast against __ref ---------------------------------------------------------------- */

/* Runs the fast (or __ref) kernel of ctx for thread ith of nth. */
typedef void (*kernel_fn)(const void *ctx, bool fast, const void *x, void *y, int ith, int nth);

static uint32_t elem_bits(const uint8_t *p, size_t elem)
{
    uint32_t v = 0;
    memcpy(&v, p, elem);
    return v;
}

/* Two float elements that are both NaN (any payload). */
static bool both_nan(const uint8_t *a, const uint8_t *b)
{
    float x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return isnan(x) && isnan(y);
}

/* __ref once, then fast for every nth with each ith in turn: same bytes
 * (nan_any: any NaN for a NaN), every element written, nothing written past
 * the output. */
static void check_fast_vs_ref(const char *what, kernel_fn run, const void *ctx, const void *x,
                              size_t out_bytes, size_t elem, bool nan_any)
{
    uint8_t *ref = xmalloc(out_bytes), *fast = xmalloc(out_bytes + GUARD);
    g_cases++;
    run(ctx, false, x, ref, 0, 1);
    for (size_t t = 0; t < sizeof k_nths / sizeof k_nths[0]; t++) {
        int nth = k_nths[t];
        memset(fast, SENTINEL, out_bytes + GUARD);
        for (int ith = 0; ith < nth; ith++)
            run(ctx, true, x, fast, ith, nth);
        size_t bad = 0; /* the first differing element's offset, out_bytes if none */
        while (bad < out_bytes &&
               (!memcmp(ref + bad, fast + bad, elem) || (nan_any && both_nan(ref + bad, fast + bad))))
            bad += elem;
        CHECK(bad == out_bytes, "%s nth %d: element %zu of %zu: fast 0x%08x ref 0x%08x", what,
              nth, bad / elem, out_bytes / elem, elem_bits(fast + bad, elem),
              elem_bits(ref + bad, elem));
        bool guard_ok = true;
        for (size_t i = 0; i < GUARD; i++)
            guard_ok = guard_ok && fast[out_bytes + i] == SENTINEL;
        CHECK(guard_ok, "%s nth %d: wrote past the output", what, nth);
    }
    free(ref);
    free(fast);
}

/* ---- inputs ------------------------------------------------------------------------------ */

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Values whose treatment differs between careless implementations. */
static float special_float(void)
{
    static const uint32_t bits[] = {
        0x00000000, 0x80000000,             /* +0, -0 */
        0x7f800000, 0xff800000,             /* +inf, -inf */
        0x7fc00000, 0xffc00000, 0x7fc12345, /* quiet NaNs, one with a payload */
        0x7f800001, 0xff812345,             /* signalling NaNs */
        0x00000001, 0x807fffff, 0x00400000, /* denormals */
        0x00800000, 0x80800000,             /* +-FLT_MIN */
        0x7f7fffff, 0xff7fffff,             /* +-FLT_MAX */
        0x3f800000, 0xbf800000, 0x40c00000, /* 1, -1, 6 */
        0x3e4ccccd, 0xbe4ccccd,             /* +-0.2 */
    };
    return bits_float(bits[rng_next() % (sizeof bits / sizeof bits[0])]);
}

/* Plain numbers over a wide range of magnitudes: a float sum taken in another
 * order rounds differently. */
static float spread_float(void)
{
    float v = (float)rng_int(-10000, 10000) / 1000.0f;
    return ldexpf(v, rng_int(-20, 20));
}

/* specials_pct percent special values, 10 % random bit patterns, the rest spread. */
static void fill_floats(float *p, int64_t n, int specials_pct)
{
    for (int64_t i = 0; i < n; i++) {
        int r = rng_int(0, 99);
        p[i] = r < specials_pct ? special_float()
                                : (r < specials_pct + 10 ? bits_float(rng_next() << 16 ^ rng_next())
                                                         : spread_float());
    }
}

/* ---- unary ------------------------------------------------------------------------------- */


typedef struct {
    ac_unary_params p;
    int64_t n;
} unary_case;

static void run_unary(const void *ctx, bool fast, const void *x, void *y, int ith, int nth)
{
    const unary_case *u = ctx;
    (fast ? ac_unary_f32 : ac_unary_f32__ref)(&u->p, x, y, u->n, ith, nth);
}

static void test_unary_case(ac_unary_params p, int64_t n, const float *x)
{
    unary_case u = {p, n};
    char what[96];
    snprintf(what, sizeof what, "unary kind %d alpha %g beta %g n %lld", (int)p.kind, p.alpha,
             p.beta, (long long)n);
    check_fast_vs_ref(what, run_unary, &u, x, (size_t)n * sizeof(float), sizeof(float), false);
}

/* x == y (an activation may run in place): fast over a copy of x gives __ref's output. */
static void test_unary_in_place(ac_unary_params p, int64_t n, const float *x)
{
    float *ref = xmalloc((size_t)n * sizeof(float)), *buf = xmalloc((size_t)n * sizeof(float));
    ac_unary_f32__ref(&p, x, ref, n, 0, 1);
    memcpy(buf, x, (size_t)n * sizeof(float));
    for (int ith = 0; ith < 2; ith++)
        ac_unary_f32(&p, buf, buf, n, ith, 2);
    CHECK(!memcmp(ref, buf, (size_t)n * sizeof(float)), "unary kind %d in place differs",
          (int)p.kind);
    g_cases++;
    free(ref);
    free(buf);
}

static void test_unary(void)
{
    static const int64_t lengths[] = {0,  1,  2,  3,  4,  5,  7,   8,    9,   15, 16,
                                      17, 31, 32, 33, 63, 64, 65, 100, 1000, 4099};
    static const float alphas[] = {0.0f, 0.01f, 0.2f, -0.5f, 1.5f, NAN};
    /* Clip bounds: usual, equal, crossed (min > max gives max), signed zeros
     * both ways, infinite, NaN on either side. */
    static const float clips[][2] = {{0.0f, 6.0f},      {-1.0f, 1.0f},      {2.0f, 2.0f},
                                     {3.0f, -3.0f},     {-0.0f, 0.0f},      {0.0f, -0.0f},
                                     {-INFINITY, INFINITY}, {NAN, 6.0f},    {0.0f, NAN},
                                     {-FLT_MAX, -FLT_MAX}};
    float *x = xmalloc(4099 * sizeof(float));
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        int64_t n = lengths[l];
        fill_floats(x, n, 30);
        test_unary_case((ac_unary_params){.kind = AC_UNARY_RELU}, n, x);
        for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a++)
            test_unary_case((ac_unary_params){.kind = AC_UNARY_LEAKY_RELU, .alpha = alphas[a]}, n,
                            x);
        for (size_t c = 0; c < sizeof clips / sizeof clips[0]; c++)
            test_unary_case((ac_unary_params){AC_UNARY_CLIP, clips[c][0], clips[c][1]}, n, x);
    }
    fill_floats(x, 1000, 30);
    test_unary_case((ac_unary_params){.kind = AC_UNARY_SIGMOID}, 1000, x); /* the fallback */
    test_unary_in_place((ac_unary_params){.kind = AC_UNARY_RELU}, 1000, x);
    test_unary_in_place((ac_unary_params){AC_UNARY_LEAKY_RELU, 0.1f, 0.0f}, 1000, x);
    test_unary_in_place((ac_unary_params){AC_UNARY_CLIP, 0.0f, 6.0f}, 1000, x);
    free(x);
}

/* ---- binary ------------------------------------------------------------------------------ */

typedef struct {
    ac_binary_kind k;
    ac_bcast_shape s;
    const float *b; /* the second operand; x is the first */
} binary_case;

static void run_binary(const void *ctx, bool fast, const void *x, void *y, int ith, int nth)
{
    const binary_case *c = ctx;
    (fast ? ac_binary_f32 : ac_binary_f32__ref)(c->k, &c->s, x, c->b, y, ith, nth);
}

/* [rows][len] out of a (strides as_outer, as_inner) and b (bs_outer, bs_inner). */
static ac_bcast_shape bcast_2d(int64_t rows, int64_t len, int64_t as_o, int64_t as_i, int64_t bs_o, int64_t bs_i)
{
    ac_bcast_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = 2;
    s.dims[0] = rows;
    s.dims[1] = len;
    s.a_strides[0] = as_o;
    s.a_strides[1] = as_i;
    s.b_strides[0] = bs_o;
    s.b_strides[1] = bs_i;
    return s;
}

/* Every kind on the operand layouts the fast loops take (both contiguous, b a
 * column, a a column, both scalars per row, b a row vector) and on one they
 * leave to __ref (a read transposed), NaN and inf among the inputs; then in place. */
static void test_binary(void)
{
    static const int64_t lens[] = {1, 3, 16, 17, 49, 100};
    static const ac_binary_kind kinds[] = {AC_BINARY_ADD, AC_BINARY_SUB, AC_BINARY_MUL, AC_BINARY_DIV,
                                           AC_BINARY_PRELU};
    enum { ROWS = 5, MAXN = ROWS * 100 };
    float *a = xmalloc(MAXN * sizeof(float)), *b = xmalloc(MAXN * sizeof(float));
    fill_floats(a, MAXN, 20);
    fill_floats(b, MAXN, 20);
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        const int64_t n = lens[l];
        const ac_bcast_shape layouts[] = {
            bcast_2d(ROWS, n, n, 1, n, 1),  /* same shape */
            bcast_2d(ROWS, n, n, 1, 1, 0),  /* b per row (a channel's bias) */
            bcast_2d(ROWS, n, 1, 0, n, 1),  /* a per row */
            bcast_2d(ROWS, n, 1, 0, 1, 0),  /* both per row */
            bcast_2d(ROWS, n, n, 1, 0, 1),  /* b one row for all */
            bcast_2d(ROWS, n, 1, ROWS, n, 1) /* a transposed: __ref */
        };
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            for (size_t t = 0; t < sizeof layouts / sizeof layouts[0]; t++) {
                binary_case c = {kinds[k], layouts[t], b};
                char what[96];
                snprintf(what, sizeof what, "binary kind %d layout %zu len %lld", (int)kinds[k], t, (long long)n);
                check_fast_vs_ref(what, run_binary, &c, a, (size_t)(ROWS * n) * sizeof(float), sizeof(float), true);
            }
    }
    /* y == a: an Add may write over its first input */
    const ac_bcast_shape s = bcast_2d(ROWS, 100, 100, 1, 1, 0);
    float *ref = xmalloc(MAXN * sizeof(float)), *buf = xmalloc(MAXN * sizeof(float));
    ac_binary_f32__ref(AC_BINARY_ADD, &s, a, b, ref, 0, 1);
    memcpy(buf, a, MAXN * sizeof(float));
    for (int ith = 0; ith < 2; ith++)
        ac_binary_f32(AC_BINARY_ADD, &s, buf, b, buf, ith, 2);
    bool same = true;
    for (int i = 0; i < MAXN; i++)
        same = same && (!memcmp(&ref[i], &buf[i], sizeof(float)) || (isnan(ref[i]) && isnan(buf[i])));
    CHECK(same, "binary add in place differs from __ref");
    g_cases++;
    free(ref);
    free(buf);
    free(a);
    free(b);
}

/* ---- pooling --------------------------------------------------------------------------------- */

typedef enum { POOL_MAX_F32, POOL_AVG_F32, POOL_MAX_Q8, POOL_AVG_Q8 } pool_kind;
static const char *const k_pool_names[] = {"maxpool f32", "avgpool f32", "maxpool q8",
                                           "avgpool q8"};

typedef struct {
    pool_kind kind;
    ac_avgpool_q8_params q; /* q.s: the shape of every kind; q.x_signed: int8 max's sign too */
} pool_case;

static void run_pool(const void *ctx, bool fast, const void *x, void *y, int ith, int nth)
{
    const pool_case *c = ctx;
    const ac_pool_shape *s = &c->q.s;
    switch (c->kind) {
    case POOL_MAX_F32: (fast ? ac_maxpool_f32 : ac_maxpool_f32__ref)(s, x, y, ith, nth); break;
    case POOL_AVG_F32: (fast ? ac_avgpool_f32 : ac_avgpool_f32__ref)(s, x, y, ith, nth); break;
    case POOL_MAX_Q8:
        (fast ? ac_maxpool_q8 : ac_maxpool_q8__ref)(s, c->q.x_signed, x, y, ith, nth);
        break;
    case POOL_AVG_Q8: (fast ? ac_avgpool_q8 : ac_avgpool_q8__ref)(&c->q, x, y, ith, nth); break;
    }
}

/* OUT_PAST: one window more than ceil mode gives, wholly past the padded end
 * (no in-bounds input: max gives the lowest value, average 0/0 or 0). */
typedef enum { OUT_FLOOR, OUT_CEIL, OUT_PAST } out_mode;

static int64_t out_len(int64_t in, int64_t k, int64_t st, int64_t pb, int64_t pe, out_mode m)
{
    int64_t span = in + pb + pe - k;
    if (span < 0)
        return 1; /* kernel larger than the padded input: one clipped window */
    int64_t out = (m == OUT_FLOOR ? span / st : (span + st - 1) / st) + 1;
    /* ONNX ceil_mode: the last window starts inside the input or its begin pad. */
    if (m != OUT_FLOOR && (out - 1) * st >= in + pb)
        out--;
    return m == OUT_PAST ? out + 1 : out;
}

/* A 2-D pool: n, c, h, w, kernel, stride, pads top / left / bottom / right. */
typedef struct {
    int n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr;
    out_mode om;
    bool cip;
} pool2d_desc;

static ac_pool_shape shape_of(const pool2d_desc *d)
{
    ac_pool_shape s = {.n = d->n,
                       .c = d->c,
                       .in = {1, d->h, d->w},
                       .kernel = {1, d->kh, d->kw},
                       .stride = {1, d->sh, d->sw},
                       .dilation = {1, 1, 1},
                       .pad_begin = {0, d->pt, d->pl},
                       .pad_end = {0, d->pb, d->pr},
                       .count_include_pad = d->cip};
    s.out[0] = 1;
    s.out[1] = out_len(d->h, d->kh, d->sh, d->pt, d->pb, d->om);
    s.out[2] = out_len(d->w, d->kw, d->sw, d->pl, d->pr, d->om);
    return s;
}

static int64_t numel3(int64_t n, int64_t c, const int64_t *dims)
{
    return n * c * dims[0] * dims[1] * dims[2];
}

/* Random codes, or only the extremes and their neighbours (saturation). */
static void fill_codes(uint8_t *p, int64_t n, bool is_signed, bool saturated)
{
    static const int8_t s8[] = {-128, 127, -128, 127, 0, -1, 1};
    static const uint8_t u8[] = {255, 0, 255, 0, 128, 1, 254};
    for (int64_t i = 0; i < n; i++) {
        uint32_t r = rng_next();
        p[i] = !saturated ? (uint8_t)r : (is_signed ? (uint8_t)s8[r % 7] : u8[r % 7]);
    }
}

static void describe(char *buf, size_t size, const pool_case *c)
{
    const ac_pool_shape *s = &c->q.s;
    snprintf(buf, size,
             "%s n%lld c%lld in %lldx%lldx%lld k %lldx%lldx%lld s %lldx%lld dil %lld,%lld "
             "pads %lld,%lld,%lld,%lld out %lldx%lldx%lld cip %d x_signed %d y_signed %d m %d e %d",
             k_pool_names[c->kind], (long long)s->n, (long long)s->c, (long long)s->in[0],
             (long long)s->in[1], (long long)s->in[2], (long long)s->kernel[0],
             (long long)s->kernel[1], (long long)s->kernel[2], (long long)s->stride[1],
             (long long)s->stride[2], (long long)s->dilation[1], (long long)s->dilation[2],
             (long long)s->pad_begin[1], (long long)s->pad_begin[2], (long long)s->pad_end[1],
             (long long)s->pad_end[2], (long long)s->out[0], (long long)s->out[1],
             (long long)s->out[2], (int)s->count_include_pad, (int)c->q.x_signed,
             (int)c->q.y_signed, (int)c->q.m, (int)c->q.e);
}

static void check_pool(pool_case *c, const void *x)
{
    char what[320];
    describe(what, sizeof what, c);
    size_t elem = c->kind == POOL_MAX_F32 || c->kind == POOL_AVG_F32 ? sizeof(float) : 1;
    int64_t out_n = numel3(c->q.s.n, c->q.s.c, c->q.s.out);
    check_fast_vs_ref(what, run_pool, c, x, (size_t)out_n * elem, elem, c->kind == POOL_AVG_F32);
}

/* The avg-pool requantization: the lowering's 1/k, or a random multiplier
 * and shift that saturate often. */
static void pick_avg_params(ac_avgpool_q8_params *q)
{
    q->k = q->s.kernel[0] * q->s.kernel[1] * q->s.kernel[2];
    int e = 0;
    if (rng_int(0, 3) == 0 || !ac_avgpool_params(q->k, &q->m, &e)) {
        q->m = rng_int(1, 4096);
        e = rng_int(0, 16);
    }
    q->e = e;
}

/* Every kind over shape s: fp32 with and without special values, int8 and
 * uint8 codes random and saturated, every signedness pair for the average. */
static void test_pool_shape(const ac_pool_shape *s, bool expect_fast)
{
    CHECK(ac_pool_fast_supported(s) == expect_fast, "fast path %s a shape it should %s",
          expect_fast ? "refuses" : "takes", expect_fast ? "take" : "refuse");
    int64_t in_n = numel3(s->n, s->c, s->in);
    float *xf = xmalloc((size_t)in_n * sizeof(float));
    uint8_t *xq = xmalloc((size_t)in_n);
    pool_case c = {.q.s = *s};
    fill_floats(xf, in_n, rng_int(0, 1) ? 10 : 0);
    for (c.kind = POOL_MAX_F32; c.kind <= POOL_AVG_F32; c.kind++)
        check_pool(&c, xf);
    for (int saturated = 0; saturated < 2; saturated++)
        for (int xs = 0; xs < 2; xs++) {
            fill_codes(xq, in_n, xs, saturated);
            c.q.x_signed = c.q.y_signed = xs;
            c.q.m = c.q.e = 0;
            c.kind = POOL_MAX_Q8;
            check_pool(&c, xq);
            c.kind = POOL_AVG_Q8;
            c.q.y_signed = rng_int(0, 1);
            pick_avg_params(&c.q);
            check_pool(&c, xq);
        }
    free(xf);
    free(xq);
}

static void test_pool_fixed(void)
{
    static const pool2d_desc shapes[] = {
        /* n  c   h    w   kh kw sh sw pt pl pb pr  out         cip */
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, OUT_FLOOR, false}, /* 1x1 plane */
        {2, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, OUT_FLOOR, true},  /* 1x1 plane, all padding */
        {2, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, OUT_FLOOR, false},
        {1, 4, 28, 28, 2, 2, 2, 2, 0, 0, 0, 0, OUT_FLOOR, false}, /* the fmnist pools */
        {3, 5, 14, 14, 2, 2, 2, 2, 0, 0, 0, 0, OUT_FLOOR, false},
        {1, 2, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, OUT_CEIL, true},
        {1, 2, 6, 6, 3, 3, 2, 2, 0, 0, 0, 0, OUT_CEIL, false},  /* last window hangs over */
        {1, 2, 5, 5, 7, 7, 1, 1, 3, 3, 3, 3, OUT_FLOOR, true},  /* kernel > input */
        {1, 2, 5, 4, 7, 6, 3, 2, 0, 1, 2, 3, OUT_PAST, false},  /* windows past the end */
        {2, 2, 1, 50, 1, 3, 1, 2, 0, 1, 0, 1, OUT_CEIL, false}, /* 1-D */
        {1, 1, 3, 700, 3, 3, 1, 1, 1, 1, 1, 1, OUT_FLOOR, true}, /* rows over 256 columns */
        {1, 1, 2, 1100, 2, 5, 1, 2, 0, 2, 1, 2, OUT_CEIL, false},
        {4, 17, 6, 6, 2, 2, 2, 2, 0, 0, 0, 0, OUT_FLOOR, false}, /* batch, odd channels */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        ac_pool_shape s = shape_of(&shapes[i]);
        test_pool_shape(&s, true);
    }
}

static void test_pool_random(int count)
{
    for (int i = 0; i < count; i++) {
        pool2d_desc d = {rng_int(1, 3), rng_int(1, 17), rng_int(1, 13), rng_int(1, 13),
                         rng_int(1, 7), rng_int(1, 7),  rng_int(1, 3),  rng_int(1, 3),
                         rng_int(0, 3), rng_int(0, 3),  rng_int(0, 3),  rng_int(0, 3),
                         (out_mode)rng_int(0, 2), rng_int(0, 1)};
        ac_pool_shape s = shape_of(&d);
        test_pool_shape(&s, true);
    }
}

/* 3-D windows and dilation go to __ref: still the same results. */
static void test_pool_fallback(void)
{
    ac_pool_shape s = {.n = 2, .c = 3, .in = {3, 5, 6}, .out = {2, 3, 3},
                       .kernel = {2, 2, 2}, .stride = {1, 2, 2}, .dilation = {1, 1, 1},
                       .pad_begin = {0, 1, 1}, .pad_end = {0, 0, 0}, .count_include_pad = true};
    test_pool_shape(&s, false);
    ac_pool_shape d = {.n = 1, .c = 2, .in = {1, 9, 9}, .out = {1, 5, 5},
                       .kernel = {1, 3, 3}, .stride = {1, 1, 1}, .dilation = {1, 2, 2},
                       .pad_begin = {0, 0, 0}, .pad_end = {0, 0, 0}};
    test_pool_shape(&d, false);
}

/* With ac_kernels_force_ref() (what AC_FORCE_REF=1 sets) the entry points run
 * __ref: the results must not change. */
static void test_forced(void)
{
    ac_kernels_force_ref(true);
    CHECK(ac_kernels_ref_forced(), "force_ref did not stick");
    float x[130];
    fill_floats(x, 130, 30);
    test_unary_case((ac_unary_params){AC_UNARY_CLIP, 0.0f, 6.0f}, 130, x);
    pool2d_desc d = {2, 3, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, OUT_CEIL, false};
    ac_pool_shape s = shape_of(&d);
    test_pool_shape(&s, true);
    ac_kernels_force_ref(false);
}

int main(int argc, char **argv)
{
    int random = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng_seed(strtoull(argv[++i], NULL, 0));
        else if (!strcmp(argv[i], "--random") && i + 1 < argc)
            random = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seed N] [--random N]\n", argv[0]);
            return 2;
        }
    }
    /* The fast kernels are under test even when AC_FORCE_REF is set around ctest. */
    ac_kernels_force_ref(false);
    test_unary();
    test_binary();
    test_pool_fixed();
    test_pool_fallback();
    test_pool_random(random);
    test_forced();
    printf("unary_pool_fast_test: %d cases, %d checks, %d failures\n", g_cases, checks, failures);
    return failures != 0;
}
