/* Fast fp32 unary ops and 2-D pooling (fp32 and int8): see ac_unary_pool_fast.h.
 * Plain C written so that gcc -O3 vectorises the inner loops; bit-exactness
 * comes from computing every output with exactly the __ref expression, in the
 * __ref order (-ffp-contract=off keeps a*b+c from fusing). */
#include "ac_unary_pool_fast.h"

#include <math.h>
#include <string.h>

#include "ac_conv_f32.h"
#include "ac_round.h"

/* ---- unary ------------------------------------------------------------------------------ */

/* Each loop is unary_one() of ac_ref_f32.c for one kind, so NaN, -0.0 and inf
 * come out as there: ReLU maps NaN and -0.0 to +0.0, Clip keeps NaN. */
static void relu_span(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* c ? a : b done on the bits: gcc (under its default -ftrapping-math) keeps
 * a float ?: between a value and a product as a branch, but vectorises this. */
static inline float select_f32(bool c, float a, float b)
{
    uint32_t ua, ub, m = -(uint32_t)c;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    uint32_t r = (ua & m) | (ub & ~m);
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

static void leaky_relu_span(const float *x, float *y, int64_t n, float alpha)
{
    /* alpha * x for every element (only kept where x < 0): no branch. */
    for (int64_t i = 0; i < n; i++)
        y[i] = select_f32(x[i] >= 0.0f, x[i], alpha * x[i]);
}

static void clip_span(const float *x, float *y, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

void ac_unary_f32(const ac_unary_params *p, const float *x, float *y, int64_t n, int ith, int nth)
{
    /* A NaN alpha times a NaN x gives one of the two NaNs, which one depends
     * on the instruction's operand order (the vector and scalar code differ):
     * only __ref gives __ref's bits then. With alpha a number the product of a
     * NaN x is x's NaN, whatever the order. */
    bool fast = p->kind == AC_UNARY_RELU || p->kind == AC_UNARY_CLIP ||
                (p->kind == AC_UNARY_LEAKY_RELU && !isnan(p->alpha));
    if (!fast || ac_kernels_ref_forced()) {
        ac_unary_f32__ref(p, x, y, n, ith, nth);
        return;
    }
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    if (hi <= lo)
        return;
    switch (p->kind) {
    case AC_UNARY_RELU: relu_span(x + lo, y + lo, hi - lo); break;
    case AC_UNARY_LEAKY_RELU: leaky_relu_span(x + lo, y + lo, hi - lo, p->alpha); break;
    default: clip_span(x + lo, y + lo, hi - lo, p->alpha, p->beta); break;
    }
}

/* ---- binary ------------------------------------------------------------------------------ */

/* One row: y[i] = a[i*as] OP b[i*bs] with as, bs each 0 or 1; a loop per case
 * so that each one vectorises (the scalar operand is loaded once). */
#define AC_BINARY_ROW(NAME, OP)                                                                \
    static void NAME(const float *a, int64_t as, const float *b, int64_t bs, float *y, int64_t n) \
    {                                                                                          \
        if (as == 1 && bs == 1) {                                                              \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = a[i] OP b[i];                                                           \
        } else if (as == 1) {                                                                  \
            const float v = b[0];                                                              \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = a[i] OP v;                                                              \
        } else if (bs == 1) {                                                                  \
            const float u = a[0];                                                              \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = u OP b[i];                                                              \
        } else {                                                                               \
            const float r = a[0] OP b[0];                                                      \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = r;                                                                      \
        }                                                                                      \
    }
AC_BINARY_ROW(add_row, +)
AC_BINARY_ROW(sub_row, -)
AC_BINARY_ROW(mul_row, *)
AC_BINARY_ROW(div_row, /)
#undef AC_BINARY_ROW

typedef void (*binary_row_fn)(const float *a, int64_t as, const float *b, int64_t bs, float *y, int64_t n);

/* Both operands laid out exactly as the output (every dim of size > 1 at the
 * dense stride): element i of the output reads element i of each. */
static bool both_dense(const ac_bcast_shape *s)
{
    int64_t stride = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        if (s->dims[d] != 1 && (s->a_strides[d] != stride || s->b_strides[d] != stride))
            return false;
        stride *= s->dims[d];
    }
    return true;
}

void ac_binary_f32(ac_binary_kind k, const ac_bcast_shape *s, const float *a, const float *b, float *y, int ith,
                   int nth)
{
    const int64_t len = s->ndim ? s->dims[s->ndim - 1] : 1;
    const int64_t as = s->ndim ? s->a_strides[s->ndim - 1] : 0;
    const int64_t bs = s->ndim ? s->b_strides[s->ndim - 1] : 0;
    binary_row_fn row = k == AC_BINARY_ADD   ? add_row
                        : k == AC_BINARY_SUB ? sub_row
                        : k == AC_BINARY_MUL ? mul_row
                        : k == AC_BINARY_DIV ? div_row
                                             : NULL;
    if (!row || (as != 0 && as != 1) || (bs != 0 && bs != 1) || ac_kernels_ref_forced()) {
        ac_binary_f32__ref(k, s, a, b, y, ith, nth);
        return;
    }
    int64_t lo, hi;
    if (both_dense(s)) {
        /* same-shape operands (a residual Add): one flat run, no per-row offsets */
        int64_t total = 1;
        for (int d = 0; d < s->ndim; d++)
            total *= s->dims[d];
        ac_ref_range(total, ith, nth, &lo, &hi);
        if (hi > lo)
            row(a + lo, 1, b + lo, 1, y + lo, hi - lo);
        return;
    }
    ac_ref_range(ac_bcast_rows(s), ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t ao, bo;
        ac_bcast_row_offsets(s, r, &ao, &bo);
        row(a + ao, as, b + bo, bs, y + r * len, len);
    }
}

/* ---- 2-D pooling: geometry ------------------------------------------------------------- */

/* Output columns accumulated at a time, on the stack. */
enum { CHUNK = 256 };

/* Dims 1 and 2 of a fast-path ac_pool_shape. */
typedef struct {
    int64_t h, w, oh, ow;
    int64_t kh, kw, sh, sw;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
    /* Interior columns [ow_a, ow_b): the window lies inside [0, w), so it
     * needs no clipping and its padded size is kw. */
    int64_t ow_a, ow_b;
    bool count_include_pad;
} pool2d;

/* One window dim: its in-bounds inputs [lo, hi) and its size clipped to the
 * padded input [-pad_begin, len + pad_end) (the count_include_pad divisor,
 * padded_count() of the __ref kernels). */
typedef struct {
    int64_t lo, hi, padded;
} win1d;

static win1d clip_window(int64_t start, int64_t k, int64_t len, int64_t pad_begin,
                         int64_t pad_end)
{
    win1d r;
    r.lo = start > 0 ? start : 0;
    r.hi = start + k < len ? start + k : len;
    if (r.hi < r.lo)
        r.hi = r.lo;
    int64_t plo = start > -pad_begin ? start : -pad_begin;
    int64_t phi = start + k < len + pad_end ? start + k : len + pad_end;
    r.padded = phi > plo ? phi - plo : 0;
    return r;
}

static win1d row_window(const pool2d *g, int64_t oh)
{
    return clip_window(oh * g->sh - g->pad_top, g->kh, g->h, g->pad_top, g->pad_bottom);
}

static win1d col_window(const pool2d *g, int64_t ow)
{
    return clip_window(ow * g->sw - g->pad_left, g->kw, g->w, g->pad_left, g->pad_right);
}

/* The fast path's shapes: depth dim trivial (as 1-D and 2-D pools are built),
 * no dilation, non-negative pads. */
static bool pool2d_of(const ac_pool_shape *s, pool2d *g)
{
    if (s->in[0] != 1 || s->out[0] != 1 || s->kernel[0] != 1 || s->pad_begin[0] != 0 ||
        s->pad_end[0] != 0)
        return false;
    for (int d = 1; d < 3; d++)
        if (s->dilation[d] != 1 || s->kernel[d] < 1 || s->stride[d] < 1 || s->pad_begin[d] < 0 ||
            s->pad_end[d] < 0 || s->in[d] < 1 || s->out[d] < 0)
            return false;
    *g = (pool2d){.h = s->in[1], .w = s->in[2], .oh = s->out[1], .ow = s->out[2],
                  .kh = s->kernel[1], .kw = s->kernel[2], .sh = s->stride[1], .sw = s->stride[2],
                  .pad_top = s->pad_begin[1], .pad_left = s->pad_begin[2],
                  .pad_bottom = s->pad_end[1], .pad_right = s->pad_end[2],
                  .count_include_pad = s->count_include_pad};
    /* The window start ow * sw - pad_left grows with ow, so the interior is
     * one run of columns. */
    g->ow_a = 0;
    while (g->ow_a < g->ow && g->ow_a * g->sw - g->pad_left < 0)
        g->ow_a++;
    g->ow_b = g->ow_a;
    while (g->ow_b < g->ow && g->ow_b * g->sw - g->pad_left + g->kw <= g->w)
        g->ow_b++;
    return true;
}

bool ac_pool_fast_supported(const ac_pool_shape *s)
{
    pool2d g;
    return pool2d_of(s, &g);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- 2-D pooling: window accumulation, per element type and reduction --------------------- */

/* pool_row_NAME: the accumulators acc[ow - ow0] of output columns [ow0, ow1)
 * of one output row, whose clipped input rows are r. Every output folds OP
 * over its in-bounds inputs in the __ref order (rows, then columns,
 * ascending) starting from INIT, which matters for floats (a sum's rounding,
 * max of -0.0 and +0.0). Border columns are clipped one by one; interior
 * columns run tap by tap across the row (same order per output, no bounds
 * checks, and the inner loop vectorises). */
#define POOL_ROW(NAME, T, ACC, INIT, OP)                                                         \
    static ACC pool_window_##NAME(const T *x, int64_t w, win1d r, win1d c)                      \
    {                                                                                            \
        ACC a = INIT;                                                                            \
        for (int64_t ih = r.lo; ih < r.hi; ih++)                                                 \
            for (int64_t iw = c.lo; iw < c.hi; iw++)                                             \
                a = OP(a, x[ih * w + iw]);                                                       \
        return a;                                                                                \
    }                                                                                            \
                                                                                                 \
    static void pool_taps_##NAME(ACC *a, const T *x, int64_t n, int64_t sw)                      \
    {                                                                                            \
        if (sw == 1) {                                                                           \
            for (int64_t i = 0; i < n; i++)                                                      \
                a[i] = OP(a[i], x[i]);                                                           \
        } else {                                                                                 \
            for (int64_t i = 0; i < n; i++)                                                      \
                a[i] = OP(a[i], x[i * sw]);                                                      \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    static void pool_row_##NAME(const pool2d *g, const void *plane, win1d r, int64_t ow0,        \
                                int64_t ow1, void *accv)                                         \
    {                                                                                            \
        const T *x = plane;                                                                      \
        ACC *acc = accv;                                                                         \
        int64_t ia = clamp64(g->ow_a, ow0, ow1), ib = clamp64(g->ow_b, ia, ow1);                 \
        for (int64_t ow = ow0; ow < ia; ow++)                                                    \
            acc[ow - ow0] = pool_window_##NAME(x, g->w, r, col_window(g, ow));                   \
        for (int64_t ow = ib; ow < ow1; ow++)                                                    \
            acc[ow - ow0] = pool_window_##NAME(x, g->w, r, col_window(g, ow));                   \
        ACC *ai = acc + (ia - ow0);                                                              \
        for (int64_t i = 0; i < ib - ia; i++)                                                    \
            ai[i] = INIT;                                                                        \
        if (ib == ia)                                                                            \
            return;                                                                              \
        for (int64_t ih = r.lo; ih < r.hi; ih++)                                                 \
            for (int64_t kw = 0; kw < g->kw; kw++)                                               \
                pool_taps_##NAME(ai, x + ih * g->w + ia * g->sw - g->pad_left + kw, ib - ia,     \
                                 g->sw);                                                         \
    }

/* The __ref folds: max keeps the earlier value unless v is greater (NaN never
 * wins), sum adds in order. */
#define OP_MAX(a, v) ((v) > (a) ? (v) : (a))
#define OP_SUM(a, v) ((a) + (v))

POOL_ROW(max_f32, float, float, -INFINITY, OP_MAX)
POOL_ROW(sum_f32, float, float, 0.0f, OP_SUM)
/* int8 max stays in the code type: starting from the lowest code gives the
 * lowest code for a window without in-bounds inputs, as __ref. */
POOL_ROW(max_s8, int8_t, int8_t, INT8_MIN, OP_MAX)
POOL_ROW(max_u8, uint8_t, uint8_t, 0, OP_MAX)
/* At most kernel area * 255 < 2^31: int32 sums are exact. */
POOL_ROW(sum_s8, int8_t, int32_t, 0, OP_SUM)
POOL_ROW(sum_u8, uint8_t, int32_t, 0, OP_SUM)

/* ---- 2-D pooling: outputs and the driver ---------------------------------------------------- */

typedef struct pool_job pool_job;
typedef void (*pool_row_fn)(const pool2d *g, const void *plane, win1d r, int64_t ow0,
                            int64_t ow1, void *acc);
/* Writes outputs [ow0, ow1) of one row (y points at ow0) from their accumulators. */
typedef void (*pool_out_fn)(const pool_job *j, const void *plane, win1d r, int64_t ow0,
                            int64_t ow1, const void *acc, void *y);

struct pool_job {
    pool2d g;
    size_t x_size, y_size; /* element bytes */
    pool_row_fn row;
    pool_out_fn out;
    const ac_avgpool_q8_params *avg_q8;
};

/* The divisor of __ref's average: in-bounds inputs, or the window clipped to
 * the padded input. */
static int64_t avg_count(const pool2d *g, win1d r, int64_t ow)
{
    win1d c = col_window(g, ow);
    return g->count_include_pad ? r.padded * c.padded : (r.hi - r.lo) * (c.hi - c.lo);
}

/* Max outputs are the accumulators themselves (int8: codes, sign unchanged). */
static void out_copy(const pool_job *j, const void *plane, win1d r, int64_t ow0, int64_t ow1,
                     const void *acc, void *y)
{
    memcpy(y, acc, (size_t)(ow1 - ow0) * j->y_size);
}

/* A sum that met two NaNs (or a NaN and inf - inf) is the NaN one add kept,
 * and which one is up to the code: the vectorised interior computes x + acc
 * where __ref's scalar fold keeps acc's. Such outputs (none in real data) are
 * summed again with the scalar fold, which compiles as __ref's does; the test
 * compares NaN payloads bit for bit. */
static void out_avg_f32(const pool_job *j, const void *plane, win1d r, int64_t ow0, int64_t ow1,
                        const void *acc, void *y)
{
    const float *a = acc;
    float *py = y;
    for (int64_t ow = ow0; ow < ow1; ow++) {
        float sum = a[ow - ow0];
        if (isnan(sum))
            sum = pool_window_sum_f32(plane, j->g.w, r, col_window(&j->g, ow));
        py[ow - ow0] = sum / (float)avg_count(&j->g, r, ow);
    }
}

/* ac_avgpool_q8__ref's requantization of a window sum. */
static void out_avg_q8(const pool_job *j, const void *plane, win1d r, int64_t ow0, int64_t ow1,
                       const void *acc, void *y)
{
    const ac_avgpool_q8_params *p = j->avg_q8;
    const int32_t *a = acc;
    for (int64_t ow = ow0; ow < ow1; ow++) {
        int64_t count = avg_count(&j->g, r, ow), v = 0;
        if (count >= 1) {
            v = a[ow - ow0];
            if (count != p->k)
                v = ac_avgpool_rescale(v, p->k, count);
            v = ac_rshift_round(v * p->m, p->e);
        }
        ac_q8_put(y, p->y_signed, ow - ow0, v);
    }
}

/* The thread's share of (n, c) planes, as the __ref kernels split them. */
static void pool_run_fast(const pool_job *j, int64_t planes, const void *x, void *y, int ith,
                          int nth)
{
    const pool2d *g = &j->g;
    union {
        float f[CHUNK];
        int32_t i[CHUNK];
    } acc;
    int64_t lo, hi;
    ac_ref_range(planes, ith, nth, &lo, &hi);
    for (int64_t p = lo; p < hi; p++) {
        const char *xp = (const char *)x + (size_t)(p * g->h * g->w) * j->x_size;
        char *yp = (char *)y + (size_t)(p * g->oh * g->ow) * j->y_size;
        for (int64_t oh = 0; oh < g->oh; oh++) {
            win1d r = row_window(g, oh);
            for (int64_t ow0 = 0; ow0 < g->ow; ow0 += CHUNK) {
                int64_t ow1 = ow0 + CHUNK < g->ow ? ow0 + CHUNK : g->ow;
                j->row(g, xp, r, ow0, ow1, &acc);
                j->out(j, xp, r, ow0, ow1, &acc, yp + (size_t)(oh * g->ow + ow0) * j->y_size);
            }
        }
    }
}

/* ---- entry points ----------------------------------------------------------------------- */

/* Fills j's geometry from s; false when __ref must run instead (AC_FORCE_REF,
 * or a shape the fast path does not take). */
static bool pool_job_ready(pool_job *j, const ac_pool_shape *s)
{
    return !ac_kernels_ref_forced() && pool2d_of(s, &j->g);
}

void ac_maxpool_f32(const ac_pool_shape *s, const float *x, float *y, int ith, int nth)
{
    pool_job j = {.x_size = 4, .y_size = 4, .row = pool_row_max_f32, .out = out_copy};
    if (pool_job_ready(&j, s))
        pool_run_fast(&j, s->n * s->c, x, y, ith, nth);
    else
        ac_maxpool_f32__ref(s, x, y, ith, nth);
}

void ac_avgpool_f32(const ac_pool_shape *s, const float *x, float *y, int ith, int nth)
{
    pool_job j = {.x_size = 4, .y_size = 4, .row = pool_row_sum_f32, .out = out_avg_f32};
    if (pool_job_ready(&j, s))
        pool_run_fast(&j, s->n * s->c, x, y, ith, nth);
    else
        ac_avgpool_f32__ref(s, x, y, ith, nth);
}

void ac_maxpool_q8(const ac_pool_shape *s, bool is_signed, const void *x, void *y, int ith,
                   int nth)
{
    pool_job j = {.x_size = 1, .y_size = 1, .out = out_copy,
                  .row = is_signed ? pool_row_max_s8 : pool_row_max_u8};
    if (pool_job_ready(&j, s))
        pool_run_fast(&j, s->n * s->c, x, y, ith, nth);
    else
        ac_maxpool_q8__ref(s, is_signed, x, y, ith, nth);
}

void ac_avgpool_q8(const ac_avgpool_q8_params *p, const void *x, void *y, int ith, int nth)
{
    pool_job j = {.x_size = 1, .y_size = 1, .out = out_avg_q8, .avg_q8 = p,
                  .row = p->x_signed ? pool_row_sum_s8 : pool_row_sum_u8};
    if (pool_job_ready(&j, &p->s))
        pool_run_fast(&j, p->s.n * p->s.c, x, y, ith, nth);
    else
        ac_avgpool_q8__ref(p, x, y, ith, nth);
}
