/* Flat-argument entry points to the int8 __ref kernels for ctypes
 * (tests/python/test_int8_numpy.py): no structs cross the language boundary.
 * Each call runs the kernel once per ith in [0, nth), in order, so the test
 * also covers the work split. Built only into the ac_int8_shared library. */
#include "ac_int8_ref.h"

void ac_q8t_conv(const void *x, int x_signed, int n, int c_in, int h_in, int w_in, int c_out,
                 int h_out, int w_out, int kh, int kw, int sh, int sw, int pt, int pl, int dh,
                 int dw, int groups, const int8_t *w, const int16_t *bias, const int32_t *rshift,
                 int y_signed, int relu, int clip_hi, void *y, int nth)
{
    ac_conv_q8_params p = {
        .s = {n, c_in, h_in, w_in, c_out, h_out, w_out, kh, kw, sh, sw, pt, pl, dh, dw, groups},
        .x_signed = x_signed, .y_signed = y_signed, .w = w, .bias = bias, .rshift = rshift,
        .relu = relu, .clip_hi = clip_hi};
    for (int i = 0; i < nth; i++)
        ac_conv2d_q8__ref(&p, x, y, i, nth);
}

void ac_q8t_fc(const void *x, int x_signed, int64_t m, int64_t n, int64_t k, const int8_t *w,
               const int16_t *bias, const int32_t *rshift, int y_signed, void *y, int nth)
{
    ac_fc_q8_params p = {m, n, k, x_signed, y_signed, w, bias, rshift, false, AC_Q8_NO_CLIP};
    for (int i = 0; i < nth; i++)
        ac_fc_q8__ref(&p, x, y, i, nth);
}

/* Same-shape inputs (numel elements each). */
void ac_q8t_add(int ninputs, const void *const *x, const int32_t *in_signed, const int32_t *m,
                const int32_t *r, int64_t numel, int y_signed, int relu, void *y, int nth)
{
    ac_add_q8_params p = {.ninputs = ninputs, .ndim = 1, .dims = {numel}, .y_signed = y_signed,
                          .relu = relu};
    for (int i = 0; i < ninputs; i++) {
        p.strides[i][0] = 1;
        p.in_signed[i] = in_signed[i];
        p.m[i] = m[i];
        p.r[i] = r[i];
    }
    for (int i = 0; i < nth; i++)
        ac_add_q8__ref(&p, x, y, i, nth);
}

/* 2-D pools over [n][c][h][w]; is_max selects max pooling (m, e, k unused). */
void ac_q8t_pool(int is_max, const void *x, int x_signed, int64_t n, int64_t c, int64_t h,
                 int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                 int64_t pt, int64_t pl, int64_t pb, int64_t pr, int count_include_pad, int32_t m,
                 int32_t e, int y_signed, void *y, int nth)
{
    ac_avgpool_q8_params p = {
        .s = {.n = n, .c = c, .in = {1, h, w}, .out = {1, oh, ow}, .kernel = {1, kh, kw},
              .stride = {1, sh, sw}, .dilation = {1, 1, 1}, .pad_begin = {0, pt, pl},
              .pad_end = {0, pb, pr}, .count_include_pad = count_include_pad},
        .x_signed = x_signed, .y_signed = y_signed, .k = kh * kw, .m = m, .e = e};
    for (int i = 0; i < nth; i++) {
        if (is_max)
            ac_maxpool_q8__ref(&p.s, x_signed, x, y, i, nth);
        else
            ac_avgpool_q8__ref(&p, x, y, i, nth);
    }
}

void ac_q8t_global_avgpool(const void *x, int x_signed, int64_t rows, int64_t len, int32_t m,
                           int32_t e, int y_signed, void *y, int nth)
{
    ac_global_avgpool_q8_params p = {rows, len, x_signed, y_signed, m, e};
    for (int i = 0; i < nth; i++)
        ac_global_avgpool_q8__ref(&p, x, y, i, nth);
}

void ac_q8t_lut(const void *x, int x_signed, const int16_t *table, int64_t n, int y_signed,
                void *y, int nth)
{
    ac_lut_q8_params p = {.x_signed = x_signed, .y_signed = y_signed};
    for (int i = 0; i < 256; i++)
        p.table[i] = table[i];
    for (int i = 0; i < nth; i++)
        ac_lut_q8__ref(&p, x, y, n, i, nth);
}

void ac_q8t_quantize(const float *x, void *y, int64_t n, double scale, int is_signed, int nth)
{
    for (int i = 0; i < nth; i++)
        ac_quantize_q8__ref(x, y, n, scale, is_signed, i, nth);
}
