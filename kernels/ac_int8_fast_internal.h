/* Internals of the fast int8 kernels, for tests and benchmarks only: entry
 * points that pin the ISA, so each variant the CPU supports is tested. */
#ifndef AC_INT8_FAST_INTERNAL_H
#define AC_INT8_FAST_INTERNAL_H

#include "ac_int8_fast.h"

typedef enum {
    AC_Q8_ISA_AUTO = 0,     /* best the CPU supports (what the public entry points use) */
    AC_Q8_ISA_PORTABLE = 1, /* plain C (SSE2 for the data shuffles, baseline x86-64) */
    AC_Q8_ISA_AVX2 = 2,     /* AVX2: int16 multiply-add (vpmaddwd) */
    AC_Q8_ISA_AVX512 = 3    /* AVX-512 F/BW/VL + VNNI (vpdpbusd) + VBMI (vpermb) */
} ac_q8_isa;

/* True when the running CPU (and OS) supports that ISA; AUTO and PORTABLE always. */
bool ac_q8_isa_available(ac_q8_isa isa);
/* The ISA a request resolves to: the one asked for if available, else the best below it. */
ac_q8_isa ac_q8_isa_resolve(ac_q8_isa isa);
const char *ac_q8_isa_name(ac_q8_isa isa);

/* Same contracts as ac_conv2d_q8 / ac_fc_q8, with the ISA pinned and never
 * redirected to the __ref kernels (scratch must be given when bytes are needed). */
void ac_conv2d_q8_isa(const ac_conv_q8_params *p, const void *x, void *y, void *scratch, int ith,
                      int nth, ac_q8_isa isa);
void ac_fc_q8_isa(const ac_fc_q8_params *p, const void *x, void *y, void *scratch, int ith,
                  int nth, ac_q8_isa isa);

#endif
