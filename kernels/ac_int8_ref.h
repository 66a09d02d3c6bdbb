/* BM1684 int8 reference (__ref) kernels: the integer arithmetic of
 * docs/bm1684-int8.md (the "spec") §3-§6 and §10, on codes. They define the
 * semantics of every int8 op; quant/ac_plan.c computes their parameters and
 * quant/ac_qexec.c runs them.
 *
 * Conventions (as kernels/ac_ref_f32.h):
 * - Plain parameter structs, no graph types. A code tensor is int8 (signed,
 *   [-128, 127]) or uint8 (unsigned, [0, 255]); each pointer comes with its
 *   *_signed flag and is read as int8_t or uint8_t accordingly.
 * - Every kernel takes (ith, nth) and computes only its share of the output,
 *   split with ac_ref_range(); each output code is computed by one thread with
 *   the same operations whatever nth is, so results are identical for any
 *   thread count.
 * - Rounding and saturation come from kernels/ac_round.h only.
 * - Conv/FC accumulate in int32 (spec §10.7). The lowering (ac_plan.c) proves
 *   for every layer that no accumulator can leave int32 (sum over a filter of
 *   |w_q| * max|x| < 2^31, checked before a layer is made int8), so the
 *   accumulation here cannot overflow; the bias add and the rounding add are
 *   done in 64 bits.
 * - Data movement (Reshape, Transpose, Slice, Pad with 0, Split, Concat of
 *   equal ranges, nearest Resize) moves codes with the element-size-generic
 *   kernels of ac_ref_f32.h (elem_size 1). */
#ifndef AC_INT8_REF_H
#define AC_INT8_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_conv_f32.h"
#include "ac_ref_f32.h"

/* No upper clamp (clip_hi): the output saturation alone applies. */
#define AC_Q8_NO_CLIP INT32_MAX
/* Most inputs of an int8 Add / Concat. */
#define AC_Q8_MAX_INPUTS 16

/* Read code i of a code tensor. */
static inline int32_t ac_q8_get(const void *x, bool is_signed, int64_t i)
{
    return is_signed ? (int32_t)((const int8_t *)x)[i] : (int32_t)((const uint8_t *)x)[i];
}

/* Saturate v to the code range and store it at i. */
static inline void ac_q8_put(void *y, bool is_signed, int64_t i, int64_t v)
{
    if (is_signed)
        ((int8_t *)y)[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    else
        ((uint8_t *)y)[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

/* ---- convolution / fully connected (§3) ------------------------------------- */

/* y = sat(clamp(rshift_round(acc + bias[c], rshift[c]))) where acc = sum of
 * x * w over the window (padding reads code 0), clamp = [0, clip_hi] when relu
 * is set (a fused ReLU / ReLU6), none otherwise. Per-tensor lowering gives every
 * channel the same rshift. */
typedef struct {
    ac_conv2d_shape s;
    bool x_signed, y_signed;
    const int8_t *w;        /* [c_out][c_in/groups][kh][kw] */
    const int16_t *bias;    /* [c_out], NULL: no bias */
    const int32_t *rshift;  /* [c_out], each in [0, 31] */
    bool relu;
    int32_t clip_hi;        /* with relu: upper clamp code, AC_Q8_NO_CLIP for none */
    /* Optional: the weights as ac_conv_q8_pack() (kernels/ac_int8_fast.h) laid
     * them out for the fast kernels, packed once per plan. NULL: the fast kernels
     * pack on the fly. The __ref kernel ignores it. */
    const void *w_packed;
} ac_conv_q8_params;

void ac_conv2d_q8__ref(const ac_conv_q8_params *p, const void *x, void *y, int ith, int nth);

/* Fully connected: y[i][o] = requant(sum_k x[i][k] * w[o][k] + bias[o]), as conv. */
typedef struct {
    int64_t m, n, k;        /* rows, output features, input features */
    bool x_signed, y_signed;
    const int8_t *w;        /* [n][k] */
    const int16_t *bias;    /* [n] or NULL */
    const int32_t *rshift;  /* [n] */
    bool relu;
    int32_t clip_hi;
} ac_fc_q8_params;

void ac_fc_q8__ref(const ac_fc_q8_params *p, const void *x, void *y, int ith, int nth);

/* ---- element-wise (§4) -------------------------------------------------------- */

/* Add of n inputs, numpy broadcasting: strides[i][d] is input i's stride
 * along output dim d (0 repeats it). t_i = rshift_round(q_i * m[i], r[i]);
 * y = sat(sum t_i), with a fused ReLU (clamp at 0) before saturation. */
typedef struct {
    int ninputs;
    int ndim;
    int64_t dims[AC_REF_MAX_DIMS];
    int64_t strides[AC_Q8_MAX_INPUTS][AC_REF_MAX_DIMS];
    bool in_signed[AC_Q8_MAX_INPUTS];
    int32_t m[AC_Q8_MAX_INPUTS];
    int32_t r[AC_Q8_MAX_INPUTS];
    bool y_signed;
    bool relu;
} ac_add_q8_params;

void ac_add_q8__ref(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth);

/* Mul of two inputs (broadcast as ac_bcast_shape): y = sat(rshift_round(a*b*m, r)). */
typedef struct {
    ac_bcast_shape s;
    bool a_signed, b_signed, y_signed;
    int32_t m;
    int32_t r;
} ac_mul_q8_params;

void ac_mul_q8__ref(const ac_mul_q8_params *p, const void *a, const void *b, void *y, int ith,
                    int nth);

/* Requant between two scales: y = sat(rshift_round(q*m, r)); m = 1, r = 0 is a copy
 * (with saturation when the sign changes). */
typedef struct {
    bool x_signed, y_signed;
    int32_t m;
    int32_t r;
} ac_requant_q8_params;

void ac_requant_q8__ref(const ac_requant_q8_params *p, const void *x, void *y, int64_t n,
                        int ith, int nth);

/* Concat along an axis (inputs [outer][chunk_i], as ac_concat__ref) with each
 * input requantized to the output's scale by rq[i]. */
void ac_concat_q8__ref(int64_t outer, int ninputs, const int64_t *chunk,
                       const ac_requant_q8_params *rq, const void *const *x, void *y, int ith,
                       int nth);

/* ---- pooling (§5, §10.6) ------------------------------------------------------ */

/* Max over the window's in-bounds codes (padding never wins); input and output
 * share the range. A window with no in-bounds element gives the lowest code. */
void ac_maxpool_q8__ref(const ac_pool_shape *s, bool is_signed, const void *x, void *y, int ith,
                        int nth);

/* Average: sum the in-bounds codes; when the divisor `count` (in-bounds
 * elements, or with count_include_pad the window clipped to the padded input)
 * differs from the kernel area k, rescale sum to round_half_away(sum*k/count)
 * (exact integers); then y = sat(rshift_round(sum * m, e)) with m/2^e ~ 1/k. */
typedef struct {
    ac_pool_shape s;
    bool x_signed, y_signed;
    int64_t k;
    int32_t m;
    int32_t e;
} ac_avgpool_q8_params;

void ac_avgpool_q8__ref(const ac_avgpool_q8_params *p, const void *x, void *y, int ith, int nth);

/* Global average pool over rows of len codes: k = len. */
typedef struct {
    int64_t rows, len;
    bool x_signed, y_signed;
    int32_t m;
    int32_t e;
} ac_global_avgpool_q8_params;

void ac_global_avgpool_q8__ref(const ac_global_avgpool_q8_params *p, const void *x, void *y,
                               int ith, int nth);
void ac_global_maxpool_q8__ref(int64_t rows, int64_t len, bool is_signed, const void *x, void *y,
                               int ith, int nth);

/* ---- activations (§5, §10.5) ---------------------------------------------------- */

/* y = sat(min(max(q, lo), hi)): ReLU is lo = 0, hi = AC_Q8_NO_CLIP; ReLU6 /
 * Clip(0, max) adds hi = the clip code when it lies inside the output range. */
typedef struct {
    bool x_signed, y_signed;
    int32_t lo, hi;
} ac_clamp_q8_params;

void ac_clamp_q8__ref(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith,
                      int nth);

/* PReLU / LeakyReLU: x viewed as [outer][channels][inner]; q >= 0 unchanged,
 * q < 0 -> rshift_round(q * m[c], r). LeakyReLU is channels = 1. */
typedef struct {
    int64_t outer, channels, inner;
    bool x_signed, y_signed;
    const int32_t *m; /* [channels] */
    int32_t r;
} ac_prelu_q8_params;

void ac_prelu_q8__ref(const ac_prelu_q8_params *p, const void *x, void *y, int ith, int nth);

/* 256-entry table: y = table[q + 128] for int8 inputs, table[q] for uint8;
 * entries are output codes. */
typedef struct {
    bool x_signed, y_signed;
    int16_t table[256];
} ac_lut_q8_params;

void ac_lut_q8__ref(const ac_lut_q8_params *p, const void *x, void *y, int64_t n, int ith,
                    int nth);

/* ---- boundaries (§1, §6) ---------------------------------------------------------- */

/* q = clamp(round_half_away(x / scale)) (a division, §10.1). */
void ac_quantize_q8__ref(const float *x, void *y, int64_t n, double scale, bool is_signed,
                         int ith, int nth);
/* x = (float)(q * scale), the product in double. */
void ac_dequantize_q8__ref(const void *x, float *y, int64_t n, double scale, bool is_signed,
                           int ith, int nth);

#endif
