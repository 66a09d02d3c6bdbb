/* Fast BM1684 int8 conv / FC kernels: the same arithmetic as the __ref
 * kernels of ac_int8_ref.h, bit for bit, with SIMD (AVX-512 VNNI or AVX2,
 * chosen at run time) and a portable C fallback.
 *
 * Why bit-identical is easy to keep here: the accumulation is exact integer
 * arithmetic (int32, proven not to overflow by the lowering), so any
 * summation order, tiling or thread split gives the same accumulator, and the
 * epilogue (bias, rounding shift, ReLU / clip, saturation) is exact as well.
 *
 * Contracts (as the fp32 fast kernels, kernels/ac_conv_f32.h):
 * - same (ith, nth) split convention; outputs identical for any nth;
 * - scratch is one caller buffer shared by all threads, at least
 *   *_scratch_bytes(p, nth) bytes (thread ith uses its own slice; no
 *   alignment needed); nothing is allocated in the kernels. A NULL scratch
 *   where bytes are needed runs the __ref kernel instead;
 * - ac_kernels_ref_forced() (AC_FORCE_REF) routes every call to __ref. */
#ifndef AC_INT8_FAST_H
#define AC_INT8_FAST_H

#include <stddef.h>

#include "ac_int8_ref.h"

/* Weight packing, once per plan: ac_conv_q8_pack_bytes(p) bytes (0 when this
 * conv has nothing to pack: empty), filled by ac_conv_q8_pack()
 * from p->w (no alignment needed). Store the buffer in p->w_packed; it stays
 * valid while p->w and the shape do not change. The kernels check the
 * buffer's header against the shape and pack on the fly when it does not
 * match. */
size_t ac_conv_q8_pack_bytes(const ac_conv_q8_params *p);
void ac_conv_q8_pack(const ac_conv_q8_params *p, void *packed);

/* Conv: same contract and results as ac_conv2d_q8__ref. */
size_t ac_conv2d_q8_scratch_bytes(const ac_conv_q8_params *p, int nth);
void ac_conv2d_q8(const ac_conv_q8_params *p, const void *x, void *y, void *scratch, int ith,
                  int nth);

/* FC: same contract and results as ac_fc_q8__ref. */
size_t ac_fc_q8_scratch_bytes(const ac_fc_q8_params *p, int nth);
void ac_fc_q8(const ac_fc_q8_params *p, const void *x, void *y, void *scratch, int ith, int nth);

#endif
