/* Fast fp32 unary ops and fast 2-D max / average pooling (fp32 and BM1684
 * int8), bit for bit the results of their __ref kernels (ac_ref_f32.h,
 * ac_int8_ref.h), which stay the oracle and the fallback.
 *
 * Contracts (as ac_int8_eltwise.h):
 * - same (ith, nth) split as the __ref kernels (ac_ref_range over elements for
 *   unary, over the n * c planes for pooling); each output is computed with
 *   the same float operations in the same order as __ref, so outputs are
 *   identical for any nth; unary allows x == y;
 * - no scratch, nothing allocated;
 * - ac_kernels_ref_forced() (AC_FORCE_REF) routes every call to __ref.
 *
 * Unary: ReLU, Clip and LeakyReLU have their own loop (no per-element switch);
 * the other kinds run __ref. Binary: see ac_binary_f32. Pooling: the fast path takes 2-D (and 1-D) pools,
 * in[0] == out[0] == kernel[0] == 1 with no depth padding, no dilation,
 * non-negative pads (ceil-mode windows hanging over the end included); any
 * other shape runs __ref. */
#ifndef AC_UNARY_POOL_FAST_H
#define AC_UNARY_POOL_FAST_H

#include "ac_int8_ref.h"
#include "ac_ref_f32.h"

void ac_unary_f32(const ac_unary_params *p, const float *x, float *y, int64_t n, int ith, int nth);

/* Add, Sub, Mul and Div with a loop per operand layout of the innermost dim
 * (both contiguous, or one of them broadcast); same-shape operands as one
 * flat run split evenly over the threads; PRELU and other strides run __ref.
 * Every element is __ref's, computed by one thread; y may be a or b. A NaN
 * result is a NaN, but with two NaN operands which payload comes out is the
 * instruction's choice. */
void ac_binary_f32(ac_binary_kind k, const ac_bcast_shape *s, const float *a, const float *b, float *y, int ith,
                   int nth);

void ac_maxpool_f32(const ac_pool_shape *s, const float *x, float *y, int ith, int nth);
void ac_avgpool_f32(const ac_pool_shape *s, const float *x, float *y, int ith, int nth);

void ac_maxpool_q8(const ac_pool_shape *s, bool is_signed, const void *x, void *y, int ith,
                   int nth);
void ac_avgpool_q8(const ac_avgpool_q8_params *p, const void *x, void *y, int ith, int nth);

/* True when the pooling fast path takes shape s (otherwise the entry points
 * above run __ref): for tests, which must exercise both. */
bool ac_pool_fast_supported(const ac_pool_shape *s);

#endif
