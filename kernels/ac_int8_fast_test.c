/* int8_fast_test: the fast int8 conv / FC kernels (ac_int8_fast.h) bit for bit
 * against the __ref kernels (ac_int8_ref.h), XNNPACK style.
 *
 * For every case (a fixed list of edge shapes + seeded random ones):
 *  - every ISA variant this CPU supports (portable, AVX2, AVX-512 VNNI) is
 *    forced in turn, with nth = 1, 2, 3 (each ith run one after the other),
 *    with and without weights packed by ac_conv_q8_pack(); each output must be
 *    byte-identical to __ref;
 *  - every output byte is written (outputs start from a sentinel, and two
 *    sentinels are used), nothing past the output is touched (guard bytes);
 *  - scratch is exactly *_scratch_bytes(p, nth) bytes and weights are exactly
 *    their size (ASan builds catch overruns);
 * Case parameters cover channels that are not multiples of the vector widths,
 * 1x1 planes, odd pads / strides, dilation, groups, depthwise (and channel
 * multipliers), batch > 1, int8 and uint8 inputs and outputs, per-tensor and
 * per-channel shifts (including 0 and 31), saturation (extreme weights and
 * biases) and ReLU / clip on and off.
 * Also: the public entry points honour ac_kernels_force_ref() and a NULL
 * scratch, use a matching packed buffer and ignore a mismatching one.
 *
 * Usage: ac_int8_fast_test [--seed N] [--random N] */
#include "ac_int8_fast.h"
#include "ac_int8_fast_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_check.h"
#include "ac_kernel_test_util.h"

static int g_conv_cases = 0, g_fc_cases = 0, g_runs = 0;

static void fill_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_next();
}

/* ---- case description --------------------------------------------------------------- */

typedef enum { W_RANDOM, W_SMALL, W_EXTREME } w_mode;
typedef enum { B_NONE, B_RANDOM, B_EXTREME } b_mode;
typedef enum { R_TYPICAL, R_PER_CHANNEL, R_ZERO, R_31 } r_mode;
typedef enum { ACT_NONE, ACT_RELU, ACT_CLIP } act_mode;

typedef struct {
    bool x_signed, y_signed;
    w_mode wm;
    b_mode bm;
    r_mode rm;
    act_mode act;
} q_opts;

static const ac_q8_isa k_isas[] = {AC_Q8_ISA_PORTABLE, AC_Q8_ISA_AVX2, AC_Q8_ISA_AVX512};

static void make_weights(int8_t *w, int64_t n, w_mode wm)
{
    for (int64_t i = 0; i < n; i++) {
        switch (wm) {
        case W_SMALL: w[i] = (int8_t)rng_int(-3, 3); break;
        case W_EXTREME: w[i] = (int8_t)((rng_next() & 1) ? 127 : -128); break;
        default: w[i] = (int8_t)rng_int(-128, 127); break;
        }
    }
}

static void make_bias(int16_t *b, int64_t n, b_mode bm)
{
    for (int64_t i = 0; i < n; i++)
        b[i] = bm == B_EXTREME ? (int16_t)((rng_next() & 1) ? 32767 : -32768)
                               : (int16_t)rng_int(-3000, 3000);
}

/* Shifts: "typical" puts the rounding shift near the accumulator's scale so
 * outputs are spread over the code range (and some saturate). */
static void make_shifts(int32_t *r, int64_t n, r_mode rm, int64_t k)
{
    int typical = 0;
    while (((int64_t)1 << typical) < k * 64 && typical < 31)
        typical++;
    typical = typical > 4 ? typical - 4 : 0;
    int shared = rng_int(typical > 2 ? typical - 2 : 0, typical + 2 > 31 ? 31 : typical + 2);
    for (int64_t i = 0; i < n; i++) {
        switch (rm) {
        case R_ZERO: r[i] = 0; break;
        case R_31: r[i] = 31; break;
        case R_PER_CHANNEL: r[i] = (rng_next() % 4 == 0) ? rng_int(0, 31) : rng_int(0, typical + 3 > 31 ? 31 : typical + 3); break;
        default: r[i] = shared; break;
        }
    }
}

static void apply_act(act_mode act, bool *relu, int32_t *clip_hi)
{
    *relu = act != ACT_NONE;
    *clip_hi = act == ACT_CLIP ? rng_int(-3, 300) : AC_Q8_NO_CLIP;
}

static void random_opts(q_opts *o)
{
    o->x_signed = rng_next() & 1;
    o->y_signed = rng_next() & 1;
    int v = rng_int(0, 9);
    o->wm = v < 6 ? W_RANDOM : (v < 8 ? W_SMALL : W_EXTREME);
    v = rng_int(0, 9);
    o->bm = v < 2 ? B_NONE : (v < 8 ? B_RANDOM : B_EXTREME);
    v = rng_int(0, 9);
    o->rm = v < 5 ? R_TYPICAL : (v < 8 ? R_PER_CHANNEL : (v < 9 ? R_ZERO : R_31));
    v = rng_int(0, 3);
    o->act = v < 2 ? ACT_NONE : (v < 3 ? ACT_RELU : ACT_CLIP);
}

/* ---- conv ----------------------------------------------------------------------------- */

#define GUARD 64

static int out_dim(int in, int k, int s, int pad_lo, int pad_hi, int dil)
{
    int span = dil * (k - 1) + 1;
    int v = in + pad_lo + pad_hi - span;
    return v < 0 ? 0 : v / s + 1;
}

static void run_conv_fast(const ac_conv_q8_params *p, const void *x, uint8_t *y, size_t ybytes,
                          int nth, ac_q8_isa isa, uint8_t sentinel)
{
    memset(y, sentinel, ybytes + GUARD);
    size_t sb = ac_conv2d_q8_scratch_bytes(p, nth);
    void *scratch = sb ? xmalloc(sb) : NULL;
    if (scratch)
        fill_bytes(scratch, sb); /* the kernel must not rely on zeroed scratch */
    for (int ith = 0; ith < nth; ith++)
        ac_conv2d_q8_isa(p, x, y, scratch, ith, nth, isa);
    free(scratch);
    g_runs++;
}

static int compare_out(const char *what, const uint8_t *got, const uint8_t *want, size_t n,
                       uint8_t sentinel)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            CHECK(0, "%s: byte %zu got %d want %d", what, i, got[i], want[i]);
            return 1;
        }
    for (size_t i = n; i < n + GUARD; i++)
        if (got[i] != sentinel) {
            CHECK(0, "%s: wrote past the output (byte %zu)", what, i);
            return 1;
        }
    return 0;
}

static void describe_conv(char *buf, size_t len, const ac_conv2d_shape *s, const q_opts *o,
                          const char *isa, int nth, bool packed)
{
    snprintf(buf, len,
             "conv n%d c%d->%d in%dx%d out%dx%d k%dx%d s%d,%d p%d,%d d%d,%d g%d x%c y%c w%d b%d "
             "r%d act%d isa=%s nth=%d packed=%d",
             s->n, s->c_in, s->c_out, s->h_in, s->w_in, s->h_out, s->w_out, s->kh, s->kw,
             s->stride_h, s->stride_w, s->pad_top, s->pad_left, s->dil_h, s->dil_w, s->groups,
             o->x_signed ? 's' : 'u', o->y_signed ? 's' : 'u', o->wm, o->bm, o->rm, o->act, isa,
             nth, packed);
}

static void test_conv(const ac_conv2d_shape *s, const q_opts *o)
{
    g_conv_cases++;
    const int64_t k = (int64_t)(s->c_in / s->groups) * s->kh * s->kw;
    const size_t xbytes = (size_t)s->n * s->c_in * s->h_in * s->w_in;
    const size_t ybytes = (size_t)s->n * s->c_out * s->h_out * s->w_out;
    uint8_t *x = xmalloc(xbytes);
    fill_bytes(x, xbytes);
    int8_t *w = xmalloc((size_t)(s->c_out * k));
    make_weights(w, s->c_out * k, o->wm);
    int16_t *bias = o->bm == B_NONE ? NULL : xmalloc(sizeof(int16_t) * (size_t)s->c_out);
    if (bias)
        make_bias(bias, s->c_out, o->bm);
    int32_t *rs = xmalloc(sizeof(int32_t) * (size_t)s->c_out);
    make_shifts(rs, s->c_out, o->rm, k);
    ac_conv_q8_params p = {.s = *s, .x_signed = o->x_signed, .y_signed = o->y_signed, .w = w,
                           .bias = bias, .rshift = rs};
    apply_act(o->act, &p.relu, &p.clip_hi);

    uint8_t *ref = xmalloc(ybytes + GUARD);
    memset(ref, 0xA5, ybytes + GUARD);
    ac_conv2d_q8__ref(&p, x, ref, 0, 1);

    size_t pb = ac_conv_q8_pack_bytes(&p);
    void *packed = pb ? xmalloc(pb) : NULL;
    if (packed)
        ac_conv_q8_pack(&p, packed);

    uint8_t *y = xmalloc(ybytes + GUARD);
    char what[512];
    for (size_t ii = 0; ii < sizeof k_isas / sizeof k_isas[0]; ii++) {
        ac_q8_isa isa = k_isas[ii];
        if (!ac_q8_isa_available(isa))
            continue;
        for (int nth = 1; nth <= 3; nth++) {
            for (int use_pack = 0; use_pack <= (packed ? 1 : 0); use_pack++) {
                ac_conv_q8_params q = p;
                q.w_packed = use_pack ? packed : NULL;
                uint8_t sentinel = (nth & 1) ? 0xA5 : 0x5A;
                run_conv_fast(&q, x, y, ybytes, nth, isa, sentinel);
                describe_conv(what, sizeof what, s, o, ac_q8_isa_name(isa), nth, use_pack);
                if (sentinel != 0xA5)
                    memset(ref + ybytes, sentinel, GUARD);
                compare_out(what, y, ref, ybytes, sentinel);
                memset(ref + ybytes, 0xA5, GUARD);
            }
        }
    }
    free(y);
    free(packed);
    free(ref);
    free(rs);
    free(bias);
    free(w);
    free(x);
}

static ac_conv2d_shape conv_shape(int n, int c_in, int h, int w, int c_out, int kh, int kw,
                                  int sh, int sw, int pt, int pl, int pb, int pr, int dh, int dw,
                                  int groups)
{
    ac_conv2d_shape s = {n, c_in, h, w, c_out, out_dim(h, kh, sh, pt, pb, dh),
                         out_dim(w, kw, sw, pl, pr, dw), kh, kw, sh, sw, pt, pl, dh, dw, groups};
    return s;
}

/* Each shape under a spread of option sets (both signednesses, every mode). */
static void test_conv_all_opts(const ac_conv2d_shape *s)
{
    if (s->h_out <= 0 || s->w_out <= 0)
        return;
    static const q_opts fixed[] = {
        {true, true, W_RANDOM, B_RANDOM, R_TYPICAL, ACT_NONE},
        {false, false, W_RANDOM, B_RANDOM, R_PER_CHANNEL, ACT_RELU},
        {true, false, W_EXTREME, B_EXTREME, R_ZERO, ACT_NONE},
        {false, true, W_EXTREME, B_RANDOM, R_31, ACT_CLIP},
        {true, true, W_SMALL, B_NONE, R_PER_CHANNEL, ACT_CLIP},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        test_conv(s, &fixed[i]);
}

static void test_conv_edges(void)
{
    const ac_conv2d_shape shapes[] = {
        /* pointwise (direct B rows), channels off the vector widths, 1x1 planes */
        conv_shape(1, 3, 5, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 17, 6, 6, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(2, 5, 1, 1, 33, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 64, 3, 11, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        /* 1x1 strided / padded (im2col path) */
        conv_shape(1, 6, 9, 9, 10, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 4, 4, 4, 8, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        /* 3x3 variants: pad 1, stride 2, odd pads, dilation, 1x1 output */
        conv_shape(1, 8, 10, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        conv_shape(2, 7, 11, 9, 13, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1, 1),
        conv_shape(1, 5, 8, 12, 6, 3, 3, 1, 3, 2, 0, 1, 2, 1, 1, 1),
        conv_shape(1, 3, 13, 13, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1),
        conv_shape(1, 9, 3, 3, 11, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 2, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        /* strided convs as implicit GEMMs over stride phases (stride 5: im2col) */
        conv_shape(1, 8, 56, 56, 16, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(2, 5, 17, 23, 7, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1),
        conv_shape(1, 3, 21, 22, 4, 3, 3, 4, 4, 1, 1, 1, 1, 1, 1, 1),
        conv_shape(1, 3, 21, 26, 4, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1, 1),
        conv_shape(1, 4, 9, 40, 6, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 6, 12, 15, 5, 3, 3, 2, 1, 0, 2, 1, 0, 1, 1, 1),
        /* 7-wide outputs: 32-channel x 7-pixel tiles (channel tails, groups, batch) */
        conv_shape(1, 64, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        conv_shape(2, 96, 7, 7, 64, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 32, 14, 14, 36, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 24, 9, 7, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        conv_shape(1, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2),
        conv_shape(1, 16, 14, 28, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),  /* 14-pixel tiles */
        conv_shape(2, 8, 31, 29, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1),   /* 15x14 outputs */
        /* first layers: 7x7/2 and 5x5, 3 input channels */
        conv_shape(1, 3, 30, 34, 16, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1),
        conv_shape(2, 3, 17, 17, 8, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1),
        conv_shape(1, 1, 28, 28, 12, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        /* column blocks: many pixels with a small K, fewer with a large K */
        conv_shape(1, 4, 40, 41, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 64, 20, 20, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        /* K = 36300: sum|w| * 255 + 2^30 leaves int32, the split-rounding epilogue */
        conv_shape(1, 300, 11, 11, 9, 11, 11, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        conv_shape(1, 300, 12, 11, 3, 11, 11, 1, 1, 0, 0, 0, 0, 1, 1, 1),
        /* grouped */
        conv_shape(1, 12, 7, 7, 18, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(2, 8, 6, 5, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2),
        conv_shape(1, 10, 9, 9, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 5),
        /* depthwise: wide and small planes, strides, dilation, 5x5 / 7x7, multipliers */
        conv_shape(1, 5, 40, 37, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5),
        conv_shape(2, 17, 14, 14, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 17),
        conv_shape(1, 6, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 6),
        conv_shape(1, 4, 33, 34, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4),
        conv_shape(1, 3, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(1, 3, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(1, 4, 9, 5, 4, 3, 3, 1, 1, 0, 2, 1, 0, 1, 1, 4),
        conv_shape(1, 3, 20, 21, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 3),
        conv_shape(1, 2, 23, 19, 2, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 2),
        conv_shape(1, 3, 15, 18, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 3),
        conv_shape(1, 3, 30, 40, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3),   /* stride 3 */
        conv_shape(1, 2, 50, 60, 2, 3, 3, 1, 1, 1, 20, 1, 20, 1, 20, 2), /* dil 20: no vpermb */
        conv_shape(1, 3, 8, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),     /* multiplier 2 */
        conv_shape(1, 2, 10, 10, 6, 3, 1, 2, 1, 1, 0, 1, 0, 1, 1, 2),   /* 3x1, multiplier 3 */
        conv_shape(1, 2, 9, 31, 2, 1, 9, 1, 1, 0, 4, 0, 4, 1, 1, 2),    /* 1x9: two quads */
        /* depthwise, dword-window kernel (w_out >= 32): column blocks of 64, the
         * left / right border lanes, both ends of the tensor, strides 1 / 2 / 4 */
        conv_shape(1, 3, 9, 112, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(2, 3, 7, 65, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(1, 2, 6, 64, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 2),
        conv_shape(1, 3, 9, 129, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(2, 2, 11, 140, 2, 3, 3, 4, 4, 1, 1, 1, 1, 1, 1, 2),
        conv_shape(1, 2, 12, 40, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 2),   /* two quads */
        conv_shape(1, 2, 13, 38, 2, 7, 7, 2, 1, 3, 3, 3, 3, 1, 1, 2),
        conv_shape(1, 2, 14, 36, 4, 3, 3, 1, 1, 2, 1, 2, 1, 2, 1, 2),   /* dil_h 2, multiplier */
        conv_shape(1, 2, 10, 70, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2),   /* stride_h 3 */
        conv_shape(1, 3, 8, 50, 3, 3, 3, 1, 1, 0, 2, 1, 0, 1, 1, 3),    /* odd pads */
        conv_shape(1, 3, 5, 33, 3, 3, 1, 2, 1, 1, 0, 1, 0, 1, 1, 3),    /* 3x1 */
        conv_shape(1, 2, 1, 48, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2),    /* one output row */
        conv_shape(1, 2, 4, 40, 2, 3, 3, 1, 1, 3, 5, 3, 5, 1, 1, 2),    /* pads past the kernel */
        /* depthwise, narrow planes by permute (R whole rows per 64 lanes) and vpermb */
        conv_shape(1, 3, 20, 20, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 3),
        conv_shape(1, 3, 16, 16, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
        conv_shape(2, 4, 8, 8, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 4),
        conv_shape(1, 5, 12, 12, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 5),
        conv_shape(3, 9, 7, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9),
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        test_conv_all_opts(&shapes[i]);
}

static void test_conv_random(int count)
{
    for (int c = 0; c < count; c++) {
        const int kind = rng_int(0, 3); /* 0 normal, 1 grouped, 2 depthwise, 3 pointwise */
        int groups = 1, c_in, c_out;
        if (kind == 2) {
            groups = rng_int(2, 20);
            c_in = groups;
            c_out = groups * rng_int(1, 2);
        } else if (kind == 1) {
            groups = rng_int(2, 4);
            c_in = groups * rng_int(1, 6);
            c_out = groups * rng_int(1, 6);
        } else {
            c_in = rng_int(1, 40);
            c_out = rng_int(1, 40);
        }
        int kh = kind == 3 ? 1 : rng_int(1, 5), kw = kind == 3 ? 1 : rng_int(1, 5);
        int sh = kind == 3 ? 1 : rng_int(1, 3), sw = kind == 3 ? 1 : rng_int(1, 3);
        int dh = kind == 3 ? 1 : rng_int(1, 2), dw = kind == 3 ? 1 : rng_int(1, 2);
        int pt = kind == 3 ? 0 : rng_int(0, 2), pl = kind == 3 ? 0 : rng_int(0, 2);
        int pb = kind == 3 ? 0 : rng_int(0, 2), pr = kind == 3 ? 0 : rng_int(0, 2);
        int h = rng_int(1, 24), w = rng_int(1, kind == 2 ? 140 : 40); /* dw: wide rows too */
        ac_conv2d_shape s = conv_shape(rng_int(1, 3), c_in, h, w, c_out, kh, kw, sh, sw, pt, pl,
                                       pb, pr, dh, dw, groups);
        if (s.h_out <= 0 || s.w_out <= 0)
            continue;
        q_opts o;
        random_opts(&o);
        test_conv(&s, &o);
    }
}

/* ---- FC --------------------------------------------------------------------------------- */

static void test_fc(int64_t m, int64_t n, int64_t k, const q_opts *o)
{
    g_fc_cases++;
    uint8_t *x = xmalloc((size_t)(m * k));
    fill_bytes(x, (size_t)(m * k));
    int8_t *w = xmalloc((size_t)(n * k));
    make_weights(w, n * k, o->wm);
    int16_t *bias = o->bm == B_NONE ? NULL : xmalloc(sizeof(int16_t) * (size_t)n);
    if (bias)
        make_bias(bias, n, o->bm);
    int32_t *rs = xmalloc(sizeof(int32_t) * (size_t)n);
    make_shifts(rs, n, o->rm, k);
    ac_fc_q8_params p = {m, n, k, o->x_signed, o->y_signed, w, bias, rs, false, AC_Q8_NO_CLIP};
    apply_act(o->act, &p.relu, &p.clip_hi);
    const size_t ybytes = (size_t)(m * n);
    uint8_t *ref = xmalloc(ybytes + GUARD);
    memset(ref, 0xA5, ybytes + GUARD);
    ac_fc_q8__ref(&p, x, ref, 0, 1);
    uint8_t *y = xmalloc(ybytes + GUARD);
    for (size_t ii = 0; ii < sizeof k_isas / sizeof k_isas[0]; ii++) {
        ac_q8_isa isa = k_isas[ii];
        if (!ac_q8_isa_available(isa))
            continue;
        for (int nth = 1; nth <= 3; nth++) {
            memset(y, 0xA5, ybytes + GUARD);
            size_t sb = ac_fc_q8_scratch_bytes(&p, nth);
            void *scratch = sb ? xmalloc(sb) : NULL;
            if (scratch)
                fill_bytes(scratch, sb);
            for (int ith = 0; ith < nth; ith++)
                ac_fc_q8_isa(&p, x, y, scratch, ith, nth, isa);
            free(scratch);
            g_runs++;
            char what[256];
            snprintf(what, sizeof what, "fc m%lld n%lld k%lld x%c y%c w%d b%d r%d act%d isa=%s nth=%d",
                     (long long)m, (long long)n, (long long)k, o->x_signed ? 's' : 'u',
                     o->y_signed ? 's' : 'u', o->wm, o->bm, o->rm, o->act, ac_q8_isa_name(isa), nth);
            compare_out(what, y, ref, ybytes, 0xA5);
        }
    }
    free(y);
    free(ref);
    free(rs);
    free(bias);
    free(w);
    free(x);
}

static void test_fc_cases(int random_count)
{
    static const int64_t ms[] = {1, 2, 4, 5, 9};
    static const int64_t ks[] = {1, 3, 15, 16, 17, 63, 64, 65, 200, 1000};
    static const int64_t ns[] = {1, 7, 33};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
                q_opts o;
                random_opts(&o);
                test_fc(ms[a], ns[c], ks[b], &o);
            }
    for (int i = 0; i < random_count; i++) {
        q_opts o;
        random_opts(&o);
        test_fc(rng_int(1, 12), rng_int(1, 70), rng_int(1, 700), &o);
    }
}

/* ---- public entry points: force-ref, NULL scratch, packed buffers ----------------------- */

static void test_dispatch(void)
{
    ac_conv2d_shape s = conv_shape(1, 16, 9, 9, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const int64_t k = 16 * 9;
    const size_t xbytes = 16 * 81, ybytes = (size_t)24 * s.h_out * s.w_out;
    uint8_t *x = xmalloc(xbytes);
    fill_bytes(x, xbytes);
    int8_t *w = xmalloc((size_t)(24 * k)), *w_other = xmalloc((size_t)(24 * k));
    make_weights(w, 24 * k, W_RANDOM);
    make_weights(w_other, 24 * k, W_RANDOM);
    int16_t bias[24];
    int32_t rs[24];
    make_bias(bias, 24, B_RANDOM);
    make_shifts(rs, 24, R_TYPICAL, k);
    ac_conv_q8_params p = {.s = s, .x_signed = true, .y_signed = true, .w = w, .bias = bias,
                           .rshift = rs, .relu = false, .clip_hi = AC_Q8_NO_CLIP};
    uint8_t *ref = xmalloc(ybytes), *y = xmalloc(ybytes);
    ac_conv2d_q8__ref(&p, x, ref, 0, 1);
    size_t sb = ac_conv2d_q8_scratch_bytes(&p, 1);
    void *scratch = xmalloc(sb);

    /* Packed from other weights: the fast path must use it (so its output
     * differs), the forced __ref must not. */
    ac_conv_q8_params other = p;
    other.w = w_other;
    void *packed_other = xmalloc(ac_conv_q8_pack_bytes(&other));
    ac_conv_q8_pack(&other, packed_other);
    ac_conv_q8_params q = p;
    q.w_packed = packed_other;
    ac_kernels_force_ref(false);
    ac_conv2d_q8(&q, x, y, scratch, 0, 1);
    CHECK(memcmp(y, ref, ybytes) != 0, "a matching packed buffer is used by the fast path");
    ac_kernels_force_ref(true);
    memset(y, 0, ybytes);
    ac_conv2d_q8(&q, x, y, scratch, 0, 1);
    CHECK(memcmp(y, ref, ybytes) == 0, "force-ref routes ac_conv2d_q8 to __ref");
    ac_kernels_force_ref(false);

    /* NULL scratch: __ref */
    memset(y, 0, ybytes);
    ac_conv2d_q8(&p, x, y, NULL, 0, 1);
    CHECK(memcmp(y, ref, ybytes) == 0, "NULL scratch runs __ref");

    /* A packed buffer for another shape is ignored. */
    ac_conv_q8_params wrong = p;
    wrong.s.c_out = 16;
    void *packed_wrong = xmalloc(ac_conv_q8_pack_bytes(&wrong));
    ac_conv_q8_pack(&wrong, packed_wrong);
    q.w_packed = packed_wrong;
    memset(y, 0, ybytes);
    ac_conv2d_q8(&q, x, y, scratch, 0, 1);
    CHECK(memcmp(y, ref, ybytes) == 0, "a mismatching packed buffer is ignored");

    /* FC through the public entry point, forced and not. */
    ac_fc_q8_params f = {3, 24, k, true, false, w, bias, rs, true, AC_Q8_NO_CLIP};
    uint8_t fref[72], fy[72];
    ac_fc_q8__ref(&f, x, fref, 0, 1);
    void *fs = xmalloc(ac_fc_q8_scratch_bytes(&f, 2));
    for (int forced = 0; forced <= 1; forced++) {
        ac_kernels_force_ref(forced);
        memset(fy, 0, sizeof fy);
        ac_fc_q8(&f, x, fy, fs, 0, 2);
        ac_fc_q8(&f, x, fy, fs, 1, 2);
        CHECK(memcmp(fy, fref, sizeof fy) == 0, "ac_fc_q8 (forced %d) matches __ref", forced);
        memset(fy, 0, sizeof fy);
        ac_fc_q8(&f, x, fy, NULL, 0, 1);
        CHECK(memcmp(fy, fref, sizeof fy) == 0, "ac_fc_q8 NULL scratch (forced %d)", forced);
    }
    ac_kernels_force_ref(false);
    free(fs);
    free(packed_wrong);
    free(packed_other);
    free(scratch);
    free(y);
    free(ref);
    free(w_other);
    free(w);
    free(x);
}

int main(int argc, char **argv)
{
    int random_convs = 300, random_fcs = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng_seed(strtoull(argv[++i], NULL, 0));
        else if (!strcmp(argv[i], "--random") && i + 1 < argc)
            random_convs = atoi(argv[++i]);
    }
    printf("int8_fast_test: ISAs here:");
    for (size_t i = 0; i < sizeof k_isas / sizeof k_isas[0]; i++)
        if (ac_q8_isa_available(k_isas[i]))
            printf(" %s", ac_q8_isa_name(k_isas[i]));
    printf(" (auto = %s)\n", ac_q8_isa_name(ac_q8_isa_resolve(AC_Q8_ISA_AUTO)));
    test_dispatch();
    test_conv_edges();
    test_conv_random(random_convs);
    test_fc_cases(random_fcs);
    printf("int8_fast_test: %d conv cases, %d fc cases, %d fast runs compared, %d failures\n",
           g_conv_cases, g_fc_cases, g_runs, failures);
    return failures ? 1 : 0;
}
