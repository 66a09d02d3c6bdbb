/* Helpers shared by the kernel tests (kernels/ac_*_test.c), next to
 * base/ac_check.h for CHECK: a seeded xorshift RNG, so that a failing run can
 * be replayed with the same --seed, and an allocation that ends the test
 * instead of returning NULL. Header-only: each test is one translation unit. */
#ifndef AC_KERNEL_TEST_UTIL_H
#define AC_KERNEL_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t test_rng_state = 0x9E3779B97F4A7C15ULL;

/* xorshift needs a non-zero state: the low bit is forced on. */
static inline void rng_seed(uint64_t seed)
{
    test_rng_state = seed | 1;
}

static inline uint32_t rng_next(void)
{
    test_rng_state ^= test_rng_state << 13;
    test_rng_state ^= test_rng_state >> 7;
    test_rng_state ^= test_rng_state << 17;
    return (uint32_t)(test_rng_state >> 16);
}

/* Uniform in [lo, hi], both inclusive. */
static inline int rng_int(int lo, int hi)
{
    return lo + (int)(rng_next() % (uint32_t)(hi - lo + 1));
}

/* malloc that never returns NULL (0 bytes still gives a valid pointer). */
static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

#endif
