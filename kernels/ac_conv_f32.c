/* Fast fp32 convolution and GEMM (first version: delegates to the __ref kernels;
 * the blocked SIMD path replaces these bodies). */
#include "ac_conv_f32.h"

size_t ac_conv2d_f32_scratch_bytes(const ac_conv2d_shape *s, int nth)
{
    return 0;
}

void ac_conv2d_f32(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias,
                   float *y, void *scratch, int ith, int nth)
{
    ac_conv2d_f32__ref(s, x, w, bias, y, ith, nth);
}

size_t ac_gemm_f32_scratch_bytes(const ac_gemm_shape *s, int nth)
{
    return 0;
}

void ac_gemm_f32(const ac_gemm_shape *s, const float *a, const float *b, const float *c, float *y,
                 void *scratch, int ith, int nth)
{
    ac_gemm_f32__ref(s, a, b, c, y, ith, nth);
}
