/* fp32 convolution and matrix multiply: the shared shape descriptions, the
 * __ref kernels that define the semantics, and the fast versions used by the
 * executor. Every kernel takes (ith, nth): it computes only its share of the
 * output, split so that each output element is computed by exactly one thread
 * with the same instruction sequence whatever nth is; results are therefore
 * identical for any thread count. */
#ifndef AC_CONV_F32_H
#define AC_CONV_F32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2-D convolution, NCHW activations, OIHW weights ([c_out][c_in/groups][kh][kw]).
 * 1-D convs are 2-D convs with h = kh = 1. Padding is zero. */
typedef struct {
    int n, c_in, h_in, w_in;
    int c_out, h_out, w_out;
    int kh, kw;
    int stride_h, stride_w;
    int pad_top, pad_left;   /* bottom/right padding is implied by h_out/w_out */
    int dil_h, dil_w;
    int groups;
} ac_conv2d_shape;

/* An activation a conv applies to its own output as it stores it (the
 * executor folds a Relu or Clip that only reads the conv into it): exactly
 * the unary ops' expressions, so the same bits as running them after. */
typedef enum { AC_CONV_ACT_NONE = 0, AC_CONV_ACT_RELU, AC_CONV_ACT_CLIP } ac_conv_act_kind;
typedef struct {
    ac_conv_act_kind kind;
    float lo, hi; /* CLIP */
} ac_conv_act;

/* y[n][co][oh][ow] = bias[co] + sum over ci in the group, kh, kw. bias may be NULL. */
void ac_conv2d_f32__ref(const ac_conv2d_shape *s, const float *x, const float *w,
                        const float *bias, float *y, int ith, int nth);

/* Fast path: same contract, results within fp32 rounding of __ref (different
 * accumulation order), bit-identical for any nth. scratch is one buffer shared
 * by all threads, at least ac_conv2d_f32_scratch_bytes(s, nth) bytes (thread
 * ith uses its own slice; no alignment needed); the kernel allocates nothing.
 * A NULL scratch where bytes are needed runs the __ref kernel instead. */
size_t ac_conv2d_f32_scratch_bytes(const ac_conv2d_shape *s, int nth);
void ac_conv2d_f32(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias,
                   float *y, void *scratch, int ith, int nth);
/* The same, then act on every output this thread stored, while it is in cache.
 * Only the fast path applies it: false (nothing done) when the __ref kernels
 * would run (forced, or no scratch), so the caller runs the op itself. */
bool ac_conv2d_f32_act(const ac_conv2d_shape *s, const float *x, const float *w, const float *bias, float *y,
                       void *scratch, int ith, int nth, const ac_conv_act *act);

/* Y[M][N] = alpha * op(A)[M][K] * op(B)[K][N] + beta * C, where op transposes
 * when trans_* is set and C (may be NULL) broadcasts per the ONNX Gemm rule:
 * c_rows x c_cols with each of them either 1 or M / N. */
typedef struct {
    int m, n, k;
    bool trans_a, trans_b;
    float alpha, beta;
    int c_rows, c_cols;
} ac_gemm_shape;

/* beta == 0 ignores C (a NaN in C does not reach Y). Same scratch contract as conv. */
void ac_gemm_f32__ref(const ac_gemm_shape *s, const float *a, const float *b, const float *c,
                      float *y, int ith, int nth);
size_t ac_gemm_f32_scratch_bytes(const ac_gemm_shape *s, int nth);
void ac_gemm_f32(const ac_gemm_shape *s, const float *a, const float *b, const float *c, float *y,
                 void *scratch, int ith, int nth);

/* Run-time switch that forces the __ref kernels in ac_conv2d_f32/ac_gemm_f32.
 * Until set explicitly it follows the environment: AC_FORCE_REF set to
 * anything but "" or "0" turns it on (read once, on first use). */
void ac_kernels_force_ref(bool on);
bool ac_kernels_ref_forced(void);

#endif
