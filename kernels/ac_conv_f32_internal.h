/* Internals of the fast fp32 conv/gemm exposed for tests and benchmarks only:
 * entry points that pin the micro-kernel ISA, so the portable C kernels are
 * tested on machines that would otherwise always pick AVX2. */
#ifndef AC_CONV_F32_INTERNAL_H
#define AC_CONV_F32_INTERNAL_H

#include "ac_conv_f32.h"

typedef enum {
    AC_CONV_ISA_AUTO = 0,     /* best the CPU supports (what ac_conv2d_f32 uses) */
    AC_CONV_ISA_PORTABLE = 1, /* plain C, no intrinsics */
    AC_CONV_ISA_AVX2 = 2,     /* AVX2 + FMA; falls back to PORTABLE if the CPU lacks them */
    AC_CONV_ISA_AVX512 = 3    /* AVX-512F GEMM micro-kernel (AVX2 elsewhere); falls back to AVX2 */
} ac_conv_isa;

/* True when the running CPU has AVX2 and FMA / also AVX-512F. */
bool ac_conv_isa_avx2_available(void);
bool ac_conv_isa_avx512_available(void);

/* Same contracts as ac_conv2d_f32 / ac_gemm_f32 (scratch sizes included), but
 * with the ISA pinned and never redirected to the __ref kernels. */
void ac_conv2d_f32_isa(const ac_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y, void *scratch, int ith, int nth,
                       ac_conv_isa isa);
void ac_gemm_f32_isa(const ac_gemm_shape *s, const float *a, const float *b, const float *c,
                     float *y, void *scratch, int ith, int nth, ac_conv_isa isa);

#endif
