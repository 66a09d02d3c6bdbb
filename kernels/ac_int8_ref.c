/* BM1684 int8 __ref kernels: see ac_int8_ref.h. */
#include "ac_int8_ref.h"

#include "ac_round.h"

/* ---- requantization of an accumulator (§3 step 5) ------------------------------------- */

/* v = acc + bias (64-bit), rounded shift, optional ReLU clamp, saturation by the store. */
static inline int64_t conv_requant(int32_t acc, int32_t bias, int32_t r, bool relu, int32_t hi)
{
    int64_t v = ac_rshift_round((int64_t)acc + bias, r);
    if (relu) {
        if (v < 0)
            v = 0;
        if (v > hi)
            v = hi;
    }
    return v;
}

/* ---- convolution ----------------------------------------------------------------------- */

/* Output columns are accumulated in chunks of this many int32 on the stack. */
#define CONV_CHUNK 256

/* Columns ow of [lo, hi) whose input column ow*sw + off lies in [0, w_in). */
static void valid_cols(int off, int sw, int w_in, int w_out, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int h = w_in - 1 - off < 0 ? 0 : (w_in - 1 - off) / sw + 1;
    *lo = l;
    *hi = h < w_out ? h : w_out;
}

/* One output row (n, oc, oh) of a conv whose input codes are of type T. */
#define CONV_ROW(T)                                                                              \
    static void conv_row_##T(const ac_conv_q8_params *p, const T *x, void *y, int n, int oc,    \
                             int oh)                                                             \
    {                                                                                            \
        const ac_conv2d_shape *s = &p->s;                                                        \
        int cout_g = s->c_out / s->groups, cin_g = s->c_in / s->groups;                          \
        int g = oc / cout_g;                                                                     \
        const int8_t *wc = p->w + (int64_t)oc * cin_g * s->kh * s->kw;                           \
        int32_t bias = p->bias ? p->bias[oc] : 0;                                                \
        int64_t ybase = (((int64_t)n * s->c_out + oc) * s->h_out + oh) * s->w_out;               \
        int32_t acc[CONV_CHUNK];                                                                 \
        for (int ow0 = 0; ow0 < s->w_out; ow0 += CONV_CHUNK) {                                   \
            int ow1 = ow0 + CONV_CHUNK < s->w_out ? ow0 + CONV_CHUNK : s->w_out;                 \
            for (int i = 0; i < ow1 - ow0; i++)                                                  \
                acc[i] = 0;                                                                      \
            for (int ic = 0; ic < cin_g; ic++) {                                                 \
                const T *xp = x + ((int64_t)n * s->c_in + (int64_t)g * cin_g + ic) *             \
                                      s->h_in * s->w_in;                                         \
                for (int kh = 0; kh < s->kh; kh++) {                                             \
                    int ih = oh * s->stride_h - s->pad_top + kh * s->dil_h;                      \
                    if (ih < 0 || ih >= s->h_in)                                                 \
                        continue;                                                                \
                    const T *xr = xp + (int64_t)ih * s->w_in;                                    \
                    for (int kw = 0; kw < s->kw; kw++) {                                         \
                        int32_t wv = wc[((int64_t)ic * s->kh + kh) * s->kw + kw];                \
                        if (wv == 0)                                                             \
                            continue;                                                            \
                        int off = kw * s->dil_w - s->pad_left;                                   \
                        int lo, hi;                                                              \
                        valid_cols(off, s->stride_w, s->w_in, s->w_out, &lo, &hi);               \
                        if (lo < ow0)                                                            \
                            lo = ow0;                                                            \
                        if (hi > ow1)                                                            \
                            hi = ow1;                                                            \
                        for (int ow = lo; ow < hi; ow++)                                         \
                            acc[ow - ow0] += (int32_t)xr[ow * s->stride_w + off] * wv;           \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
            for (int ow = ow0; ow < ow1; ow++)                                                   \
                ac_q8_put(y, p->y_signed, ybase + ow,                                            \
                          conv_requant(acc[ow - ow0], bias, p->rshift[oc], p->relu,              \
                                       p->clip_hi));                                             \
        }                                                                                        \
    }

CONV_ROW(int8_t)
CONV_ROW(uint8_t)

void ac_conv2d_q8__ref(const ac_conv_q8_params *p, const void *x, void *y, int ith, int nth)
{
    const ac_conv2d_shape *s = &p->s;
    int64_t rows = (int64_t)s->n * s->c_out * s->h_out;
    int64_t lo, hi;
    ac_ref_range(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int oh = (int)(r % s->h_out);
        int oc = (int)(r / s->h_out % s->c_out);
        int n = (int)(r / ((int64_t)s->h_out * s->c_out));
        if (p->x_signed)
            conv_row_int8_t(p, x, y, n, oc, oh);
        else
            conv_row_uint8_t(p, x, y, n, oc, oh);
    }
}

/* ---- fully connected ------------------------------------------------------------------------ */

#define FC_DOT(T)                                                                                \
    static int32_t fc_dot_##T(const T *x, const int8_t *w, int64_t k)                            \
    {                                                                                            \
        int32_t acc = 0;                                                                         \
        for (int64_t i = 0; i < k; i++)                                                          \
            acc += (int32_t)x[i] * w[i];                                                         \
        return acc;                                                                              \
    }

FC_DOT(int8_t)
FC_DOT(uint8_t)

void ac_fc_q8__ref(const ac_fc_q8_params *p, const void *x, void *y, int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(p->m * p->n, ith, nth, &lo, &hi);
    for (int64_t idx = lo; idx < hi; idx++) {
        int64_t i = idx / p->n, o = idx % p->n;
        const int8_t *w = p->w + o * p->k;
        int32_t acc = p->x_signed ? fc_dot_int8_t((const int8_t *)x + i * p->k, w, p->k)
                                  : fc_dot_uint8_t((const uint8_t *)x + i * p->k, w, p->k);
        int32_t bias = p->bias ? p->bias[o] : 0;
        ac_q8_put(y, p->y_signed, idx, conv_requant(acc, bias, p->rshift[o], p->relu, p->clip_hi));
    }
}

/* ---- element-wise ------------------------------------------------------------------------ */

/* Offset of output element idx in an input with the given strides. */
static int64_t bcast_offset(int ndim, const int64_t *dims, const int64_t *strides, int64_t idx)
{
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t i = idx % dims[d];
        idx /= dims[d];
        off += i * strides[d];
    }
    return off;
}

static int64_t numel_of(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    return n;
}

void ac_add_q8__ref(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(numel_of(p->ndim, p->dims), ith, nth, &lo, &hi);
    for (int64_t idx = lo; idx < hi; idx++) {
        int64_t sum = 0;
        for (int i = 0; i < p->ninputs; i++) {
            int64_t off = bcast_offset(p->ndim, p->dims, p->strides[i], idx);
            int64_t q = ac_q8_get(x[i], p->in_signed[i], off);
            sum += ac_rshift_round(q * p->m[i], p->r[i]);
        }
        if (p->relu && sum < 0)
            sum = 0;
        ac_q8_put(y, p->y_signed, idx, sum);
    }
}

void ac_mul_q8__ref(const ac_mul_q8_params *p, const void *a, const void *b, void *y, int ith,
                    int nth)
{
    const ac_bcast_shape *s = &p->s;
    int64_t lo, hi;
    ac_ref_range(numel_of(s->ndim, s->dims), ith, nth, &lo, &hi);
    for (int64_t idx = lo; idx < hi; idx++) {
        int64_t qa = ac_q8_get(a, p->a_signed, bcast_offset(s->ndim, s->dims, s->a_strides, idx));
        int64_t qb = ac_q8_get(b, p->b_signed, bcast_offset(s->ndim, s->dims, s->b_strides, idx));
        ac_q8_put(y, p->y_signed, idx, ac_rshift_round(qa * qb * p->m, p->r));
    }
}

void ac_requant_q8__ref(const ac_requant_q8_params *p, const void *x, void *y, int64_t n,
                        int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        ac_q8_put(y, p->y_signed, i,
                  ac_rshift_round((int64_t)ac_q8_get(x, p->x_signed, i) * p->m, p->r));
}

void ac_concat_q8__ref(int64_t outer, int ninputs, const int64_t *chunk,
                       const ac_requant_q8_params *rq, const void *const *x, void *y, int ith,
                       int nth)
{
    int64_t row = 0;
    for (int i = 0; i < ninputs; i++)
        row += chunk[i];
    int64_t lo, hi;
    ac_ref_range(outer * row, ith, nth, &lo, &hi);
    for (int64_t idx = lo; idx < hi; idx++) {
        int64_t o = idx / row, c = idx % row;
        int i = 0;
        while (c >= chunk[i]) {
            c -= chunk[i];
            i++;
        }
        int64_t q = ac_q8_get(x[i], rq[i].x_signed, o * chunk[i] + c);
        ac_q8_put(y, rq[i].y_signed, idx, ac_rshift_round(q * rq[i].m, rq[i].r));
    }
}

/* ---- pooling ----------------------------------------------------------------------------- */

/* The window of output o in one dim: its start and its size clipped to the
 * padded input (count_include_pad divisor), as ac_ref_f32.c. */
static int64_t padded_count(const ac_pool_shape *s, int d, int64_t start)
{
    int64_t count = 0;
    for (int64_t k = 0; k < s->kernel[d]; k++) {
        int64_t i = start + k * s->dilation[d];
        if (i >= -s->pad_begin[d] && i < s->in[d] + s->pad_end[d])
            count++;
    }
    return count;
}

/* Max (is_max) or sum of the in-bounds codes of one window; *valid counts them. */
static int64_t window_reduce(const ac_pool_shape *s, bool is_max, bool x_signed, const void *x,
                             int64_t base, const int64_t *start, int64_t *valid)
{
    int64_t acc = is_max ? INT64_MIN : 0;
    *valid = 0;
    for (int64_t kd = 0; kd < s->kernel[0]; kd++) {
        int64_t id = start[0] + kd * s->dilation[0];
        if (id < 0 || id >= s->in[0])
            continue;
        for (int64_t kh = 0; kh < s->kernel[1]; kh++) {
            int64_t ih = start[1] + kh * s->dilation[1];
            if (ih < 0 || ih >= s->in[1])
                continue;
            for (int64_t kw = 0; kw < s->kernel[2]; kw++) {
                int64_t iw = start[2] + kw * s->dilation[2];
                if (iw < 0 || iw >= s->in[2])
                    continue;
                int64_t v = ac_q8_get(x, x_signed, base + (id * s->in[1] + ih) * s->in[2] + iw);
                if (is_max)
                    acc = v > acc ? v : acc;
                else
                    acc += v;
                (*valid)++;
            }
        }
    }
    return acc;
}

/* Walks every output of the thread's (n, c) planes; avg == NULL means max. */
static void pool_q8(const ac_pool_shape *s, const ac_avgpool_q8_params *avg, bool x_signed,
                    bool y_signed, const void *x, void *y, int ith, int nth)
{
    int64_t in_plane = s->in[0] * s->in[1] * s->in[2];
    int64_t out_plane = s->out[0] * s->out[1] * s->out[2];
    int64_t lo, hi;
    ac_ref_range(s->n * s->c, ith, nth, &lo, &hi);
    for (int64_t pl = lo; pl < hi; pl++)
        for (int64_t od = 0; od < s->out[0]; od++)
            for (int64_t oh = 0; oh < s->out[1]; oh++)
                for (int64_t ow = 0; ow < s->out[2]; ow++) {
                    int64_t o[3] = {od, oh, ow}, start[3], padded = 1, valid;
                    for (int d = 0; d < 3; d++) {
                        start[d] = o[d] * s->stride[d] - s->pad_begin[d];
                        padded *= padded_count(s, d, start[d]);
                    }
                    int64_t v = window_reduce(s, avg == NULL, x_signed, x, pl * in_plane, start,
                                              &valid);
                    int64_t yi = pl * out_plane + (od * s->out[1] + oh) * s->out[2] + ow;
                    if (!avg) {
                        ac_q8_put(y, y_signed, yi, valid ? v : (y_signed ? -128 : 0));
                        continue;
                    }
                    int64_t count = s->count_include_pad ? padded : valid;
                    if (count < 1) {
                        ac_q8_put(y, y_signed, yi, 0);
                        continue;
                    }
                    if (count != avg->k)
                        v = ac_avgpool_rescale(v, avg->k, count);
                    ac_q8_put(y, y_signed, yi, ac_rshift_round(v * avg->m, avg->e));
                }
}

void ac_maxpool_q8__ref(const ac_pool_shape *s, bool is_signed, const void *x, void *y, int ith,
                        int nth)
{
    pool_q8(s, NULL, is_signed, is_signed, x, y, ith, nth);
}

void ac_avgpool_q8__ref(const ac_avgpool_q8_params *p, const void *x, void *y, int ith, int nth)
{
    pool_q8(&p->s, p, p->x_signed, p->y_signed, x, y, ith, nth);
}

void ac_global_avgpool_q8__ref(const ac_global_avgpool_q8_params *p, const void *x, void *y,
                               int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(p->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t sum = 0;
        for (int64_t i = 0; i < p->len; i++)
            sum += ac_q8_get(x, p->x_signed, r * p->len + i);
        ac_q8_put(y, p->y_signed, r, ac_rshift_round(sum * p->m, p->e));
    }
}

void ac_global_maxpool_q8__ref(int64_t rows, int64_t len, bool is_signed, const void *x, void *y,
                               int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t mx = is_signed ? -128 : 0;
        for (int64_t i = 0; i < len; i++) {
            int64_t v = ac_q8_get(x, is_signed, r * len + i);
            mx = v > mx ? v : mx;
        }
        ac_q8_put(y, is_signed, r, mx);
    }
}

/* ---- activations ----------------------------------------------------------------------- */

void ac_clamp_q8__ref(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith,
                      int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        int64_t v = ac_q8_get(x, p->x_signed, i);
        if (v < p->lo)
            v = p->lo;
        if (v > p->hi)
            v = p->hi;
        ac_q8_put(y, p->y_signed, i, v);
    }
}

void ac_prelu_q8__ref(const ac_prelu_q8_params *p, const void *x, void *y, int ith, int nth)
{
    int64_t n = p->outer * p->channels * p->inner;
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        int64_t c = i / p->inner % p->channels;
        int64_t v = ac_q8_get(x, p->x_signed, i);
        if (v < 0)
            v = ac_rshift_round(v * p->m[c], p->r);
        ac_q8_put(y, p->y_signed, i, v);
    }
}

void ac_lut_q8__ref(const ac_lut_q8_params *p, const void *x, void *y, int64_t n, int ith,
                    int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    int32_t base = p->x_signed ? 128 : 0;
    for (int64_t i = lo; i < hi; i++)
        ac_q8_put(y, p->y_signed, i, p->table[ac_q8_get(x, p->x_signed, i) + base]);
}

/* ---- boundaries -------------------------------------------------------------------------- */

void ac_quantize_q8__ref(const float *x, void *y, int64_t n, double scale, bool is_signed,
                         int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        ac_q8_put(y, is_signed, i, ac_quantize((double)x[i], scale, is_signed));
}

void ac_dequantize_q8__ref(const void *x, float *y, int64_t n, double scale, bool is_signed,
                           int ith, int nth)
{
    int64_t lo, hi;
    ac_ref_range(n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        y[i] = (float)((double)ac_q8_get(x, is_signed, i) * scale);
}
