/* Fast BM1684 int8 element-wise kernels: Clamp (ReLU / ReLU6 / Clip) and Add,
 * bit for bit the results of ac_clamp_q8__ref / ac_add_q8__ref, with AVX-512BW
 * or AVX2 chosen at run time and the __ref kernels as the portable fallback.
 *
 * Contracts (as ac_int8_fast.h):
 * - same (ith, nth) split as the __ref kernels (ac_ref_range over the output
 *   elements); outputs identical for any nth; x may equal y;
 * - no scratch, nothing allocated;
 * - ac_kernels_ref_forced() (AC_FORCE_REF) routes every call to __ref.
 *
 * Add takes the vector path only for same-shape inputs (no broadcast) whose
 * multipliers fit |m| <= 127 (all the lowering produces: ac_add_params gives
 * m in [0, 127], r in [0, 31]); anything else runs __ref. */
#ifndef AC_INT8_ELTWISE_H
#define AC_INT8_ELTWISE_H

#include "ac_int8_ref.h"

void ac_clamp_q8(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith,
                 int nth);
void ac_add_q8(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth);

/* fp32 <-> int8 at plan boundaries (ac_quantize_q8__ref / ac_dequantize_q8__ref,
 * bit for bit): y = sat(round_half_away(x / scale)) (NaN to 0) and
 * y = (float)(q * scale), both in double, 16 values per AVX-512 step (the
 * rounding is C round()'s: the fraction after truncation, exact in double,
 * decides). Without AVX-512F/VL the __ref loops run. */
void ac_quantize_q8(const float *x, void *y, int64_t n, double scale, bool is_signed, int ith, int nth);
void ac_dequantize_q8(const void *x, float *y, int64_t n, double scale, bool is_signed, int ith, int nth);

/* For tests and benchmarks: the same kernels with the instruction set pinned
 * and never redirected by AC_FORCE_REF. An ISA the CPU lacks falls back to the
 * best one below it (AC_ELT_ISA_REF is the __ref kernel itself). */
typedef enum {
    AC_ELT_ISA_AUTO = 0,
    AC_ELT_ISA_REF = 1,
    AC_ELT_ISA_AVX2 = 2,
    AC_ELT_ISA_AVX512BW = 3
} ac_elt_isa;

ac_elt_isa ac_elt_isa_resolve(ac_elt_isa isa);
const char *ac_elt_isa_name(ac_elt_isa isa);
void ac_clamp_q8_isa(const ac_clamp_q8_params *p, const void *x, void *y, int64_t n, int ith,
                     int nth, ac_elt_isa isa);
void ac_add_q8_isa(const ac_add_q8_params *p, const void *const *x, void *y, int ith, int nth,
                   ac_elt_isa isa);

#endif
