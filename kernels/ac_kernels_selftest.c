/* Selftest of the non-conv __ref kernels (kernels/ac_ref_f32.h): small
 * hand-computed cases for each kernel, and thread-count invariance: every
 * kernel run as nth = 1, 2, 3 "threads" (shares run one after the other)
 * must give bit-identical outputs. Conv/GEMM have their own test file. */
#include "ac_ref_f32.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ac_check.h"

static int near(float a, float b)
{
    return fabsf(a - b) <= 1e-5f + 1e-5f * fabsf(b);
}

static void check_floats(const char *what, const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        if (!near(got[i], want[i])) {
            fprintf(stderr, "%s: element %d is %.7g, expected %.7g\n", what, i, got[i], want[i]);
            failures++;
            return;
        }
}

static void check_i64(const char *what, const int64_t *got, const int64_t *want, int n)
{
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "%s: element %d is %lld, expected %lld\n", what, i,
                    (long long)got[i], (long long)want[i]);
            failures++;
            return;
        }
}

/* ---- thread-count invariance harness ---------------------------------------------- */

/* A kernel call: fills out (out_bytes) from the context for share (ith, nth). */
typedef struct job {
    const char *name;
    void (*run)(const struct job *j, void *out, int ith, int nth);
    const void *ctx;
    size_t out_bytes;
} job;

/* Runs j with nth = 1, 2, 3 (every share in turn) and requires identical bytes;
 * the nth = 1 result is left in out. */
static void run_all_shares(const job *j, void *out)
{
    void *ref = NULL;
    for (int nth = 3; nth >= 1; nth--) {
        memset(out, 0xA5, j->out_bytes); /* catches elements no share writes */
        for (int ith = 0; ith < nth; ith++)
            j->run(j, out, ith, nth);
        if (!ref) {
            ref = malloc(j->out_bytes ? j->out_bytes : 1);
            memcpy(ref, out, j->out_bytes);
        } else if (memcmp(ref, out, j->out_bytes) != 0) {
            fprintf(stderr, "%s: output differs between nth=3 and nth=%d\n", j->name, nth);
            failures++;
        }
    }
    free(ref);
}

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static float *random_floats(int64_t n, unsigned seed)
{
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = frand(&seed) * 4.0f;
    return v;
}

/* ---- element-wise ----------------------------------------------------------------- */

typedef struct {
    ac_unary_params p;
    const float *x;
    int64_t n;
} unary_ctx;

static void unary_job(const job *j, void *out, int ith, int nth)
{
    const unary_ctx *c = j->ctx;
    ac_unary_f32__ref(&c->p, c->x, out, c->n, ith, nth);
}

static void test_unary(void)
{
    const float x[5] = {-3.0f, -1.0f, 0.0f, 1.0f, 3.0f};
    float y[5];
    struct {
        ac_unary_kind k;
        float alpha, beta;
        float want[5];
    } cases[] = {
        {AC_UNARY_RELU, 0, 0, {0, 0, 0, 1, 3}},
        {AC_UNARY_LEAKY_RELU, 0.1f, 0, {-0.3f, -0.1f, 0, 1, 3}},
        {AC_UNARY_CLIP, -2.0f, 2.0f, {-2, -1, 0, 1, 2}},
        {AC_UNARY_CLIP, 0.0f, 6.0f, {0, 0, 0, 1, 3}},
        {AC_UNARY_SIGMOID, 0, 0, {0.0474258736f, 0.268941421f, 0.5f, 0.731058579f, 0.952574127f}},
        {AC_UNARY_TANH, 0, 0, {-0.995054754f, -0.761594156f, 0, 0.761594156f, 0.995054754f}},
        {AC_UNARY_HARD_SIGMOID, 0.2f, 0.5f, {0, 0.3f, 0.5f, 0.7f, 1}},
        {AC_UNARY_HARD_SWISH, 0, 0, {0, -1.0f / 3.0f, 0, 2.0f / 3.0f, 3}},
        {AC_UNARY_SILU, 0, 0, {-0.142277620f, -0.268941421f, 0, 0.731058579f, 2.857722380f}},
        {AC_UNARY_EXP, 0, 0, {0.0497870684f, 0.367879441f, 1, 2.718281828f, 20.08553692f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ac_unary_params p = {cases[i].k, cases[i].alpha, cases[i].beta};
        ac_unary_f32__ref(&p, x, y, 5, 0, 1);
        char name[64];
        snprintf(name, sizeof name, "unary kind %d", (int)cases[i].k);
        check_floats(name, y, cases[i].want, 5);
    }
    /* Clip with min > max gives max (ONNX); NaN passes through. */
    ac_unary_params p = {AC_UNARY_CLIP, 2.0f, 1.0f};
    float xn[2] = {0.0f, NAN}, yn[2];
    ac_unary_f32__ref(&p, xn, yn, 2, 0, 1);
    CHECK(yn[0] == 1.0f && isnan(yn[1]));

    float *big = random_floats(1001, 7);
    float *out = malloc(sizeof(float) * 1001);
    unary_ctx c = {{AC_UNARY_SILU, 0, 0}, big, 1001};
    job j = {"unary silu", unary_job, &c, sizeof(float) * 1001};
    run_all_shares(&j, out);
    free(big);
    free(out);
}

/* Broadcast shape of a (ra dims) and b (rb dims), as graph/ac_ops.c builds it. */
static void make_bcast(ac_bcast_shape *s, int ra, const int64_t *a, int rb, const int64_t *b)
{
    int nd = ra > rb ? ra : rb;
    s->ndim = nd;
    int64_t ast = 1, bst = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t ea = d - (nd - ra) >= 0 ? a[d - (nd - ra)] : 1;
        int64_t eb = d - (nd - rb) >= 0 ? b[d - (nd - rb)] : 1;
        s->dims[d] = ea == 1 ? eb : ea;
        s->a_strides[d] = ea == 1 ? 0 : ast;
        s->b_strides[d] = eb == 1 ? 0 : bst;
        ast *= ea;
        bst *= eb;
    }
}

typedef struct {
    ac_binary_kind k;
    ac_bcast_shape s;
    const float *a, *b;
} binary_ctx;

static void binary_job(const job *j, void *out, int ith, int nth)
{
    const binary_ctx *c = j->ctx;
    ac_binary_f32__ref(c->k, &c->s, c->a, c->b, out, ith, nth);
}

static void test_binary(void)
{
    ac_bcast_shape s;
    const float a[6] = {1, 2, 3, 4, 5, 6};
    float y[6];
    /* [2,3] + [3] */
    const float row[3] = {10, 20, 30};
    make_bcast(&s, 2, (int64_t[]){2, 3}, 1, (int64_t[]){3});
    ac_binary_f32__ref(AC_BINARY_ADD, &s, a, row, y, 0, 1);
    check_floats("add [2,3]+[3]", y, (float[]){11, 22, 33, 14, 25, 36}, 6);
    /* [2,3] * [2,1] */
    const float col[2] = {2, -1};
    make_bcast(&s, 2, (int64_t[]){2, 3}, 2, (int64_t[]){2, 1});
    ac_binary_f32__ref(AC_BINARY_MUL, &s, a, col, y, 0, 1);
    check_floats("mul [2,3]*[2,1]", y, (float[]){2, 4, 6, -4, -5, -6}, 6);
    /* [2,1] - [3] gives [2,3] */
    make_bcast(&s, 2, (int64_t[]){2, 1}, 1, (int64_t[]){3});
    ac_binary_f32__ref(AC_BINARY_SUB, &s, col, row, y, 0, 1);
    check_floats("sub [2,1]-[3]", y, (float[]){-8, -18, -28, -11, -21, -31}, 6);
    /* scalar / scalar */
    make_bcast(&s, 0, NULL, 0, NULL);
    ac_binary_f32__ref(AC_BINARY_DIV, &s, (float[]){1}, (float[]){4}, y, 0, 1);
    CHECK(y[0] == 0.25f);
    /* PRelu with a per-channel slope [2,1] */
    const float xp[6] = {-1, 2, -3, -4, 5, -6};
    make_bcast(&s, 2, (int64_t[]){2, 3}, 2, (int64_t[]){2, 1});
    ac_binary_f32__ref(AC_BINARY_PRELU, &s, xp, (float[]){0.5f, 0.25f}, y, 0, 1);
    check_floats("prelu", y, (float[]){-0.5f, 2, -1.5f, -1, 5, -1.5f}, 6);

    /* int64: truncating division, wrap-around, division by zero reported */
    int64_t ia[4] = {-7, 7, INT64_MAX, 5}, ib[4] = {2, -2, 1, 0}, iy[4];
    make_bcast(&s, 1, (int64_t[]){4}, 1, (int64_t[]){4});
    CHECK(ac_binary_i64__ref(AC_BINARY_DIV, &s, ia, ib, iy, 0, 1) != 0);
    check_i64("i64 div", iy, (int64_t[]){-3, -3, INT64_MAX, 0}, 4);
    CHECK(ac_binary_i64__ref(AC_BINARY_ADD, &s, ia, ib, iy, 0, 1) == 0);
    check_i64("i64 add wraps", iy, (int64_t[]){-5, 5, INT64_MIN, 5}, 4);
    int64_t mn[1] = {INT64_MIN}, m1[1] = {-1};
    make_bcast(&s, 1, (int64_t[]){1}, 1, (int64_t[]){1});
    CHECK(ac_binary_i64__ref(AC_BINARY_DIV, &s, mn, m1, iy, 0, 1) != 0);
    int32_t xa[2] = {6, INT32_MAX}, xb[2] = {4, 2}, xy[2];
    make_bcast(&s, 1, (int64_t[]){2}, 1, (int64_t[]){2});
    CHECK(ac_binary_i32__ref(AC_BINARY_MUL, &s, xa, xb, xy, 0, 1) == 0);
    CHECK(xy[0] == 24 && xy[1] == -2);

    /* thread invariance on a 3-D broadcast */
    float *ba = random_floats(5 * 7 * 9, 1), *bb = random_floats(7 * 1, 2);
    float *out = malloc(sizeof(float) * 5 * 7 * 9);
    binary_ctx c = {AC_BINARY_DIV, {0}, ba, bb};
    make_bcast(&c.s, 3, (int64_t[]){5, 7, 9}, 2, (int64_t[]){7, 1});
    job j = {"binary div bcast", binary_job, &c, sizeof(float) * 5 * 7 * 9};
    run_all_shares(&j, out);
    free(ba);
    free(bb);
    free(out);
}

static void test_cast(void)
{
    const float f[6] = {-1.7f, 2.9f, NAN, 1e20f, -1e20f, 300.0f};
    int64_t i64[6];
    ac_cast__ref(AC_REF_F32, f, AC_REF_I64, i64, 6, 0, 1);
    check_i64("f32->i64", i64, (int64_t[]){-1, 2, 0, INT64_MAX, INT64_MIN, 300}, 6);
    uint8_t u8[6];
    ac_cast__ref(AC_REF_F32, f, AC_REF_U8, u8, 6, 0, 1);
    CHECK(u8[0] == 0 && u8[1] == 2 && u8[2] == 0 && u8[3] == 255 && u8[5] == 255);
    uint8_t b[6];
    ac_cast__ref(AC_REF_F32, f, AC_REF_BOOL, b, 6, 0, 1);
    CHECK(b[0] == 1 && b[2] == 1 && b[3] == 1);
    const int64_t iv[3] = {0, 4294967297LL, -1};
    int32_t i32[3];
    ac_cast__ref(AC_REF_I64, iv, AC_REF_I32, i32, 3, 0, 1);
    CHECK(i32[0] == 0 && i32[1] == 1 && i32[2] == -1);
    float back[3];
    ac_cast__ref(AC_REF_I64, iv, AC_REF_F32, back, 3, 0, 1);
    CHECK(back[0] == 0.0f && back[2] == -1.0f);
    double d[2];
    ac_cast__ref(AC_REF_BOOL, (uint8_t[]){1, 0}, AC_REF_F64, d, 2, 0, 1);
    CHECK(d[0] == 1.0 && d[1] == 0.0);
}

/* ---- normalisation, softmax, pools, reduce ------------------------------------------- */

typedef struct {
    ac_softmax_shape s;
    const float *x;
} softmax_ctx;

static void softmax_job(const job *j, void *out, int ith, int nth)
{
    const softmax_ctx *c = j->ctx;
    ac_softmax_f32__ref(&c->s, c->x, out, ith, nth);
}

static void test_batchnorm_softmax(void)
{
    /* x [1,2,2]: channel 0 = {1, 3}, channel 1 = {2, 4} */
    ac_batchnorm_shape s = {1, 2, 2, 0.0f};
    const float x[4] = {1, 3, 2, 4};
    float y[4];
    ac_batchnorm_f32__ref(&s, x, (float[]){2, 1}, (float[]){0, 10}, (float[]){1, 2},
                          (float[]){4, 1}, y, 0, 1);
    check_floats("batchnorm", y, (float[]){0, 2, 10, 12}, 4);

    ac_softmax_shape sm = {1, 3, 1};
    float p[3];
    ac_softmax_f32__ref(&sm, (float[]){1, 2, 3}, p, 0, 1);
    check_floats("softmax", p, (float[]){0.0900305732f, 0.244728471f, 0.665240956f}, 3);
    /* axis in the middle: [1][2][2], softmax over the 2 of the middle */
    ac_softmax_shape sm2 = {1, 2, 2};
    float q[4];
    ac_softmax_f32__ref(&sm2, (float[]){0, 5, 0, 5}, q, 0, 1);
    check_floats("softmax inner", q, (float[]){0.5f, 0.5f, 0.5f, 0.5f}, 4);
    /* large values do not overflow */
    ac_softmax_f32__ref(&sm, (float[]){1000, 1000, 1000}, p, 0, 1);
    check_floats("softmax large", p, (float[]){1.0f / 3, 1.0f / 3, 1.0f / 3}, 3);

    float *bx = random_floats(4 * 10 * 6, 3);
    float *out = malloc(sizeof(float) * 4 * 10 * 6);
    softmax_ctx c = {{4, 10, 6}, bx};
    job j = {"softmax", softmax_job, &c, sizeof(float) * 4 * 10 * 6};
    run_all_shares(&j, out);
    free(bx);
    free(out);
}

static ac_pool_shape pool2d(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow,
                            int64_t k, int64_t stride, int64_t pad)
{
    ac_pool_shape s;
    memset(&s, 0, sizeof s);
    s.n = n;
    s.c = c;
    int64_t in[3] = {1, h, w}, out[3] = {1, oh, ow};
    for (int d = 0; d < 3; d++) {
        s.in[d] = in[d];
        s.out[d] = out[d];
        s.kernel[d] = d ? k : 1;
        s.stride[d] = d ? stride : 1;
        s.dilation[d] = 1;
        s.pad_begin[d] = s.pad_end[d] = d ? pad : 0;
    }
    return s;
}

typedef struct {
    ac_pool_shape s;
    bool is_max;
    const float *x;
} pool_ctx;

static void pool_job(const job *j, void *out, int ith, int nth)
{
    const pool_ctx *c = j->ctx;
    if (c->is_max)
        ac_maxpool_f32__ref(&c->s, c->x, out, ith, nth);
    else
        ac_avgpool_f32__ref(&c->s, c->x, out, ith, nth);
}

static void test_pools(void)
{
    const float x[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    float y[9];
    ac_pool_shape s = pool2d(1, 1, 4, 4, 2, 2, 2, 2, 0);
    ac_maxpool_f32__ref(&s, x, y, 0, 1);
    check_floats("maxpool 2x2/2", y, (float[]){6, 8, 14, 16}, 4);
    ac_avgpool_f32__ref(&s, x, y, 0, 1);
    check_floats("avgpool 2x2/2", y, (float[]){3.5f, 5.5f, 11.5f, 13.5f}, 4);
    /* 3x3 window, stride 1... on a 2x2 input with pad 1: corners see 4 values */
    const float x2[4] = {1, 2, 3, 4};
    ac_pool_shape p = pool2d(1, 1, 2, 2, 2, 2, 3, 1, 1);
    ac_avgpool_f32__ref(&p, x2, y, 0, 1);
    check_floats("avgpool pad excl", y, (float[]){2.5f, 2.5f, 2.5f, 2.5f}, 4);
    p.count_include_pad = true;
    ac_avgpool_f32__ref(&p, x2, y, 0, 1);
    check_floats("avgpool pad incl", y, (float[]){10.0f / 9, 10.0f / 9, 10.0f / 9, 10.0f / 9}, 4);
    ac_maxpool_f32__ref(&p, (float[]){-1, -2, -3, -4}, y, 0, 1);
    check_floats("maxpool pad ignores padding", y, (float[]){-1, -1, -1, -1}, 4);
    /* dilation 2 on a 1x4 row (1-D as 2-D): window {x0, x2} and {x1, x3} */
    ac_pool_shape d = pool2d(1, 1, 1, 4, 1, 2, 1, 1, 0);
    d.kernel[2] = 2;
    d.dilation[2] = 2;
    ac_maxpool_f32__ref(&d, (float[]){5, 1, 2, 7}, y, 0, 1);
    check_floats("maxpool dilation", y, (float[]){5, 7}, 2);

    ac_global_pool_f32__ref(false, 2, 3, (float[]){1, 2, 3, 4, 5, 9}, y, 0, 1);
    check_floats("global avg", y, (float[]){2, 6}, 2);
    ac_global_pool_f32__ref(true, 2, 3, (float[]){1, 2, 3, 4, 5, 9}, y, 0, 1);
    check_floats("global max", y, (float[]){3, 9}, 2);

    float *bx = random_floats(2 * 3 * 11 * 13, 4);
    float *out = malloc(sizeof(float) * 2 * 3 * 6 * 7);
    pool_ctx c = {pool2d(2, 3, 11, 13, 6, 7, 3, 2, 1), false, bx};
    c.s.count_include_pad = true;
    job j = {"avgpool", pool_job, &c, sizeof(float) * 2 * 3 * 6 * 7};
    run_all_shares(&j, out);
    c.is_max = true;
    j.name = "maxpool";
    run_all_shares(&j, out);
    free(bx);
    free(out);
}

static void test_reduce(void)
{
    const float x[6] = {1, 2, 3, 4, 5, 6}; /* [2,3] */
    float y[3];
    ac_reduce_shape s = {2, {2, 3}, {false, true}};
    ac_reduce_mean_f32__ref(&s, x, y, 0, 1);
    check_floats("reduce axis 1", y, (float[]){2, 5}, 2);
    ac_reduce_shape s0 = {2, {2, 3}, {true, false}};
    ac_reduce_mean_f32__ref(&s0, x, y, 0, 1);
    check_floats("reduce axis 0", y, (float[]){2.5f, 3.5f, 4.5f}, 3);
    ac_reduce_shape sa = {2, {2, 3}, {true, true}};
    ac_reduce_mean_f32__ref(&sa, x, y, 0, 1);
    check_floats("reduce all", y, (float[]){3.5f}, 1);
}

/* ---- ConvTranspose --------------------------------------------------------------------- */

static ac_conv_transpose_shape ct1d(int64_t cin, int64_t cout, int64_t groups, int64_t in,
                                   int64_t out, int64_t k, int64_t stride, int64_t pad)
{
    ac_conv_transpose_shape s;
    memset(&s, 0, sizeof s);
    s.n = 1;
    s.c_in = cin;
    s.c_out = cout;
    s.groups = groups;
    for (int d = 0; d < 3; d++) {
        s.in[d] = d == 2 ? in : 1;
        s.out[d] = d == 2 ? out : 1;
        s.kernel[d] = d == 2 ? k : 1;
        s.stride[d] = d == 2 ? stride : 1;
        s.dilation[d] = 1;
        s.pad_begin[d] = d == 2 ? pad : 0;
    }
    return s;
}

typedef struct {
    ac_conv_transpose_shape s;
    const float *x, *w, *b;
} ct_ctx;

static void ct_job(const job *j, void *out, int ith, int nth)
{
    const ct_ctx *c = j->ctx;
    ac_conv_transpose_f32__ref(&c->s, c->x, c->w, c->b, out, ith, nth);
}

static void test_conv_transpose(void)
{
    float y[8];
    /* x = [1, 2], w = [1, 1, 1]: stride 1 -> [1, 3, 3, 2]; stride 2 -> [1, 1, 3, 2, 2] */
    ac_conv_transpose_shape s = ct1d(1, 1, 1, 2, 4, 3, 1, 0);
    ac_conv_transpose_f32__ref(&s, (float[]){1, 2}, (float[]){1, 1, 1}, NULL, y, 0, 1);
    check_floats("convT s1", y, (float[]){1, 3, 3, 2}, 4);
    s = ct1d(1, 1, 1, 2, 5, 3, 2, 0);
    ac_conv_transpose_f32__ref(&s, (float[]){1, 2}, (float[]){1, 1, 1}, (float[]){10}, y, 0, 1);
    check_floats("convT s2 bias", y, (float[]){11, 11, 13, 12, 12}, 5);
    /* pad 1 crops one output at each end */
    s = ct1d(1, 1, 1, 2, 3, 3, 2, 1);
    ac_conv_transpose_f32__ref(&s, (float[]){1, 2}, (float[]){1, 2, 3}, NULL, y, 0, 1);
    check_floats("convT pad", y, (float[]){2, 3 + 2, 4}, 3);
    /* two groups, one channel each: outputs are independent */
    s = ct1d(2, 2, 2, 1, 2, 2, 1, 0);
    ac_conv_transpose_f32__ref(&s, (float[]){1, 10}, (float[]){1, 2, 3, 4}, NULL, y, 0, 1);
    check_floats("convT groups", y, (float[]){1, 2, 30, 40}, 4);

    ct_ctx c;
    memset(&c, 0, sizeof c);
    c.s.n = 2;
    c.s.c_in = 4;
    c.s.c_out = 6;
    c.s.groups = 2;
    int64_t in[3] = {1, 5, 4}, out[3] = {1, 10, 8}, k[3] = {1, 3, 2}, st[3] = {1, 2, 2};
    for (int d = 0; d < 3; d++) {
        c.s.in[d] = in[d];
        c.s.out[d] = out[d];
        c.s.kernel[d] = k[d];
        c.s.stride[d] = st[d];
        c.s.dilation[d] = 1;
        c.s.pad_begin[d] = d == 1 ? 1 : 0;
    }
    float *bx = random_floats(2 * 4 * 5 * 4, 5), *bw = random_floats(4 * 3 * 3 * 2, 6);
    float *bb = random_floats(6, 7);
    float *o = malloc(sizeof(float) * 2 * 6 * 10 * 8);
    c.x = bx;
    c.w = bw;
    c.b = bb;
    job j = {"conv transpose", ct_job, &c, sizeof(float) * 2 * 6 * 10 * 8};
    run_all_shares(&j, o);
    free(bx);
    free(bw);
    free(bb);
    free(o);
}

/* ---- data movement ------------------------------------------------------------------------ */

typedef struct {
    ac_slice_shape s;
    const float *x;
} slice_ctx;

static void slice_job(const job *j, void *out, int ith, int nth)
{
    const slice_ctx *c = j->ctx;
    ac_slice__ref(sizeof(float), &c->s, c->x, out, ith, nth);
}

typedef struct {
    ac_transpose_shape s;
    const float *x;
} transpose_ctx;

static void transpose_job(const job *j, void *out, int ith, int nth)
{
    const transpose_ctx *c = j->ctx;
    ac_transpose__ref(sizeof(float), &c->s, c->x, out, ith, nth);
}

static void test_movement(void)
{
    /* concat [2,1] and [2,2] on axis 1, then split back */
    const float a[2] = {1, 2}, b[4] = {3, 4, 5, 6};
    const void *ins[2] = {a, b};
    int64_t chunk[2] = {1, 2};
    float y[6];
    ac_concat__ref(sizeof(float), 2, 2, chunk, ins, y, 0, 1);
    check_floats("concat", y, (float[]){1, 3, 4, 2, 5, 6}, 6);
    float sa[2], sb[4];
    void *outs[2] = {sa, sb};
    ac_split__ref(sizeof(float), 2, 2, chunk, y, outs, 0, 1);
    check_floats("split a", sa, a, 2);
    check_floats("split b", sb, b, 4);

    /* slice [2,3] rows 1.. and columns 2,1,0 (step -1) */
    const float x[6] = {1, 2, 3, 4, 5, 6};
    ac_slice_shape s = {2, {2, 3}, {1, 3}, {1, 2}, {1, -1}};
    ac_slice__ref(sizeof(float), &s, x, y, 0, 1);
    check_floats("slice neg step", y, (float[]){6, 5, 4}, 3);

    ac_transpose_shape t = {2, {2, 3}, {1, 0}};
    ac_transpose__ref(sizeof(float), &t, x, y, 0, 1);
    check_floats("transpose", y, (float[]){1, 4, 2, 5, 3, 6}, 6);

    /* pads on a 1-D [1,2,3] */
    const float p[3] = {1, 2, 3};
    float py[7];
    const float zero = -1.0f;
    ac_pad_shape ps = {1, AC_PAD_CONSTANT, {3}, {7}, {2}};
    ac_pad__ref(sizeof(float), &ps, &zero, p, py, 0, 1);
    check_floats("pad constant", py, (float[]){-1, -1, 1, 2, 3, -1, -1}, 7);
    ps.mode = AC_PAD_REFLECT;
    ac_pad__ref(sizeof(float), &ps, &zero, p, py, 0, 1);
    check_floats("pad reflect", py, (float[]){3, 2, 1, 2, 3, 2, 1}, 7);
    ps.mode = AC_PAD_EDGE;
    ac_pad__ref(sizeof(float), &ps, &zero, p, py, 0, 1);
    check_floats("pad edge", py, (float[]){1, 1, 1, 2, 3, 3, 3}, 7);
    ac_pad_shape crop = {1, AC_PAD_CONSTANT, {3}, {1}, {-1}};
    ac_pad__ref(sizeof(float), &crop, &zero, p, py, 0, 1);
    CHECK(py[0] == 2.0f);

    /* gather axis 1 of [2,3] with indices {2, -3} */
    const int64_t idx[2] = {2, -3};
    CHECK(ac_gather__ref(sizeof(float), 2, 3, 1, idx, false, 2, x, y, 0, 1) == 0);
    check_floats("gather", y, (float[]){3, 1, 6, 4}, 4);
    const int32_t idx32[1] = {1};
    CHECK(ac_gather__ref(sizeof(float), 1, 2, 3, idx32, true, 1, x, y, 0, 1) == 0);
    check_floats("gather rows int32", y, (float[]){4, 5, 6}, 3);
    const int64_t bad[1] = {3};
    CHECK(ac_gather__ref(sizeof(float), 2, 3, 1, bad, false, 1, x, y, 0, 1) != 0);

    int64_t in4[4] = {3, 4, 5, 6};
    float *bx = random_floats(3 * 4 * 5 * 6, 8);
    float *o = malloc(sizeof(float) * 3 * 4 * 5 * 6);
    transpose_ctx tc = {{4, {3, 4, 5, 6}, {2, 0, 3, 1}}, bx};
    job j = {"transpose", transpose_job, &tc, sizeof(float) * 3 * 4 * 5 * 6};
    run_all_shares(&j, o);
    slice_ctx sc = {{4, {3, 4, 5, 6}, {2, 4, 2, 3}, {2, 0, 4, 0}, {-1, 1, -2, 2}}, bx};
    memcpy(sc.s.in_dims, in4, sizeof in4);
    job j2 = {"slice", slice_job, &sc, sizeof(float) * 2 * 4 * 2 * 3};
    run_all_shares(&j2, o);
    free(bx);
    free(o);
}

/* ---- resize ---------------------------------------------------------------------------------- */

static void test_resize(void)
{
    /* coordinate transforms for 2 -> 4 (scale 2) */
    CHECK(near(ac_resize_coord(AC_COORD_HALF_PIXEL, 0, 2.0f, 2, 4), -0.25f));
    CHECK(near(ac_resize_coord(AC_COORD_ASYMMETRIC, 3, 2.0f, 2, 4), 1.5f));
    CHECK(near(ac_resize_coord(AC_COORD_ALIGN_CORNERS, 3, 2.0f, 2, 4), 1.0f));
    CHECK(near(ac_resize_coord(AC_COORD_PYTORCH_HALF_PIXEL, 0, 0.5f, 2, 1), 0.0f));
    CHECK(near(ac_resize_coord(AC_COORD_TF_HALF_PIXEL_FOR_NN, 1, 2.0f, 2, 4), 0.75f));
    /* nearest modes, clamped */
    CHECK(ac_resize_nearest_index(AC_NEAREST_ROUND_PREFER_FLOOR, 1.5f, 4) == 1);
    CHECK(ac_resize_nearest_index(AC_NEAREST_ROUND_PREFER_CEIL, 1.5f, 4) == 2);
    CHECK(ac_resize_nearest_index(AC_NEAREST_ROUND_PREFER_FLOOR, 1.6f, 4) == 2);
    CHECK(ac_resize_nearest_index(AC_NEAREST_FLOOR, 1.9f, 4) == 1);
    CHECK(ac_resize_nearest_index(AC_NEAREST_CEIL, 1.1f, 4) == 2);
    CHECK(ac_resize_nearest_index(AC_NEAREST_CEIL, 3.5f, 4) == 3);
    CHECK(ac_resize_nearest_index(AC_NEAREST_FLOOR, -0.25f, 4) == 0);

    /* nearest 2x upsample of a 2x2 (asymmetric + floor, as Upsample) */
    int64_t src[4] = {0, 0, 1, 1};
    ac_resize_nearest_shape ns = {2, {2, 2}, {4, 4}, {src, src}};
    float y[16];
    ac_resize_nearest__ref(sizeof(float), &ns, (float[]){1, 2, 3, 4}, y, 0, 1);
    check_floats("nearest 2x", y, (float[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 16);

    /* bilinear 1x2 -> 1x4, half_pixel: [1, 1.25, 1.75, 2] */
    int64_t h0[1] = {0}, h1[1] = {0}, w0[4], w1[4];
    float hl[1] = {0}, wl[4];
    for (int i = 0; i < 4; i++)
        ac_resize_linear_taps(ac_resize_coord(AC_COORD_HALF_PIXEL, i, 2.0f, 2, 4), 2, &w0[i],
                              &w1[i], &wl[i]);
    ac_resize_linear_shape ls = {1, 1, 2, 1, 4, h0, h1, w0, w1, hl, wl};
    ac_resize_linear_f32__ref(&ls, (float[]){1, 2}, y, 0, 1);
    check_floats("bilinear", y, (float[]){1, 1.25f, 1.75f, 2}, 4);
}

int main(void)
{
    test_unary();
    test_binary();
    test_cast();
    test_batchnorm_softmax();
    test_pools();
    test_reduce();
    test_conv_transpose();
    test_movement();
    test_resize();
    float dummy[4] = {1, 2, 3, 4}, copy[4];
    for (int ith = 0; ith < 3; ith++)
        ac_copy__ref(dummy, copy, sizeof dummy, ith, 3);
    check_floats("copy", copy, dummy, 4);
    if (failures) {
        fprintf(stderr, "kernels selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("kernels selftest: ok\n");
    return 0;
}
