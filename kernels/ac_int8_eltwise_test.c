/* int8_eltwise_test: the fast int8 Clamp / Add kernels (ac_int8_eltwise.h)
 * bit for bit against ac_clamp_q8__ref / ac_add_q8__ref.
 *
 * Every case runs each ISA this CPU supports (avx2, avx512bw) plus the public
 * entry point, with nth = 1, 2, 3, 7 (each ith in turn), and must give the
 * __ref bytes; outputs start from a sentinel (every byte must be written) and
 * guard bytes after the output must stay untouched. Cases cover lengths
 * around the vector widths (0, 1, 31..33, 63..65, ...), all four input /
 * output signedness pairs, every Add multiplier m in [0, 127] with every
 * shift r in [0, 31] (all that ac_add_params produces, saturation included),
 * negative m, 1 to 4 inputs, fused ReLU, broadcast (the __ref fallback), and
 * Clamp bounds inside, at and beyond the output range (lo > hi included).
 * Inputs cycle through all 256 codes, then random codes.
 *
 * Usage: ac_int8_eltwise_test [--seed N] */
#include "ac_int8_eltwise.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_check.h"
#include "ac_conv_f32.h"
#include "ac_kernel_test_util.h"

enum { GUARD = 64, SENTINEL = 0xA5 };

static int g_cases = 0;

/* All 256 codes in order from a random start, then random codes. */
static void fill_codes(uint8_t *p, int64_t n)
{
    int start = rng_int(0, 255);
    for (int64_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i < 256 ? start + i : rng_next());
}

static const int64_t k_lengths[] = {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 95, 127,
                                    128, 129, 255, 256, 257, 1000, 4099};
#define NLEN ((int)(sizeof k_lengths / sizeof k_lengths[0]))
static const int k_nths[] = {1, 2, 3, 7};

/* The ISAs to run: each available one once (a missing one resolves lower), -1 = public. */
static int isa_list(int *out)
{
    int n = 0;
    out[n++] = -1;
    if (ac_elt_isa_resolve(AC_ELT_ISA_AVX2) == AC_ELT_ISA_AVX2)
        out[n++] = AC_ELT_ISA_AVX2;
    if (ac_elt_isa_resolve(AC_ELT_ISA_AVX512BW) == AC_ELT_ISA_AVX512BW)
        out[n++] = AC_ELT_ISA_AVX512BW;
    return n;
}

static const char *isa_label(int isa)
{
    return isa < 0 ? "public" : ac_elt_isa_name((ac_elt_isa)isa);
}

/* Output bytes [0, n) equal want, the GUARD bytes after them still SENTINEL. */
static void compare(const char *what, const uint8_t *got, const uint8_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            CHECK(got[i] == want[i], "%s: element %lld of %lld: got %d, want %d", what,
                  (long long)i, (long long)n, got[i], want[i]);
            return;
        }
    for (int64_t i = n; i < n + GUARD; i++)
        if (got[i] != SENTINEL) {
            CHECK(got[i] == SENTINEL, "%s: guard byte %lld overwritten", what,
                  (long long)(i - n));
            return;
        }
}

/* ---- clamp ------------------------------------------------------------------------------ */

static void test_clamp_case(const ac_clamp_q8_params *p, int64_t n, const uint8_t *x)
{
    uint8_t *want = xmalloc((size_t)n + GUARD), *got = xmalloc((size_t)n + GUARD);
    ac_clamp_q8__ref(p, x, want, n, 0, 1);
    int isas[3], nisa = isa_list(isas);
    char what[160];
    for (int k = 0; k < nisa; k++)
        for (int t = 0; t < (int)(sizeof k_nths / sizeof k_nths[0]); t++) {
            memset(got, SENTINEL, (size_t)n + GUARD);
            for (int ith = 0; ith < k_nths[t]; ith++) {
                if (isas[k] < 0)
                    ac_clamp_q8(p, x, got, n, ith, k_nths[t]);
                else
                    ac_clamp_q8_isa(p, x, got, n, ith, k_nths[t], (ac_elt_isa)isas[k]);
            }
            snprintf(what, sizeof what, "clamp %s nth=%d n=%lld x_signed=%d y_signed=%d lo=%d hi=%d",
                     isa_label(isas[k]), k_nths[t], (long long)n, p->x_signed, p->y_signed, p->lo,
                     p->hi);
            compare(what, got, want, n);
        }
    /* In place (x == y), as the executor may run it. */
    if (n > 0) {
        memcpy(got, x, (size_t)n);
        memset(got + n, SENTINEL, GUARD);
        ac_clamp_q8(p, got, got, n, 0, 1);
        compare("clamp in place", got, want, n);
    }
    free(want);
    free(got);
    g_cases++;
}

static void test_clamp(void)
{
    const int32_t bounds[][2] = {
        {0, AC_Q8_NO_CLIP}, {0, 6}, {0, 100}, {0, 127}, {0, 200}, {-128, 127}, {-5, 5},
        {-128, 255}, {INT32_MIN, INT32_MAX}, {10, 3}, {-300, -200}, {300, 400}, {-10, -20},
        {128, AC_Q8_NO_CLIP}, {1, 254}};
    uint8_t *x = xmalloc(5000);
    for (int b = 0; b < (int)(sizeof bounds / sizeof bounds[0]); b++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < NLEN; l++) {
                ac_clamp_q8_params p = {.x_signed = s & 1, .y_signed = s >> 1,
                                        .lo = bounds[b][0], .hi = bounds[b][1]};
                fill_codes(x, k_lengths[l]);
                test_clamp_case(&p, k_lengths[l], x);
            }
    for (int c = 0; c < 200; c++) {
        ac_clamp_q8_params p = {.x_signed = rng_int(0, 1), .y_signed = rng_int(0, 1),
                                .lo = rng_int(-300, 300), .hi = rng_int(-300, 300)};
        int64_t n = rng_int(0, 3000);
        fill_codes(x, n);
        test_clamp_case(&p, n, x);
    }
    free(x);
}

/* ---- add ---------------------------------------------------------------------------------- */

/* Contiguous strides for every input (same shape as the output). */
static void set_dims(ac_add_q8_params *p, int ndim, const int64_t *dims)
{
    p->ndim = ndim;
    for (int i = 0; i < p->ninputs; i++) {
        int64_t st = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            p->dims[d] = dims[d];
            p->strides[i][d] = st;
            st *= dims[d];
        }
    }
}

static int64_t numel_of(const ac_add_q8_params *p)
{
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= p->dims[d];
    return n;
}

/* Input i holds numel codes (inputs that broadcast read fewer of them):
 * fill_codes(), or the same codes `fixed` in every input when given. */
static void test_add_case(const ac_add_q8_params *p, const uint8_t *fixed)
{
    int64_t n = numel_of(p);
    uint8_t *in[AC_Q8_MAX_INPUTS];
    const void *xs[AC_Q8_MAX_INPUTS];
    for (int i = 0; i < p->ninputs; i++) {
        in[i] = xmalloc((size_t)n);
        if (fixed)
            memcpy(in[i], fixed, (size_t)n);
        else
            fill_codes(in[i], n);
        xs[i] = in[i];
    }
    uint8_t *want = xmalloc((size_t)n + GUARD), *got = xmalloc((size_t)n + GUARD);
    ac_add_q8__ref(p, xs, want, 0, 1);
    int isas[3], nisa = isa_list(isas);
    char what[200];
    for (int k = 0; k < nisa; k++)
        for (int t = 0; t < (int)(sizeof k_nths / sizeof k_nths[0]); t++) {
            memset(got, SENTINEL, (size_t)n + GUARD);
            for (int ith = 0; ith < k_nths[t]; ith++) {
                if (isas[k] < 0)
                    ac_add_q8(p, xs, got, ith, k_nths[t]);
                else
                    ac_add_q8_isa(p, xs, got, ith, k_nths[t], (ac_elt_isa)isas[k]);
            }
            snprintf(what, sizeof what,
                     "add %s nth=%d n=%lld inputs=%d m0=%d r0=%d s0=%d m1=%d r1=%d y_signed=%d "
                     "relu=%d",
                     isa_label(isas[k]), k_nths[t], (long long)n, p->ninputs, p->m[0], p->r[0],
                     p->in_signed[0], p->ninputs > 1 ? p->m[1] : 0, p->ninputs > 1 ? p->r[1] : 0,
                     p->y_signed, p->relu);
            compare(what, got, want, n);
        }
    /* In place over the first input (the executor may reuse its buffer). */
    if (n > 0 && p->ninputs > 0) {
        uint8_t *alias = xmalloc((size_t)n + GUARD);
        memcpy(alias, in[0], (size_t)n);
        memset(alias + n, SENTINEL, GUARD);
        xs[0] = alias;
        ac_add_q8(p, xs, alias, 0, 1);
        compare("add in place", alias, want, n);
        free(alias);
    }
    for (int i = 0; i < p->ninputs; i++)
        free(in[i]);
    free(want);
    free(got);
    g_cases++;
}

static void random_add(ac_add_q8_params *p, int ninputs, int m_lo)
{
    memset(p, 0, sizeof *p);
    p->ninputs = ninputs;
    for (int i = 0; i < ninputs; i++) {
        p->in_signed[i] = rng_int(0, 1);
        p->m[i] = rng_int(m_lo, 127);
        p->r[i] = rng_int(0, 31);
    }
    p->y_signed = rng_int(0, 1);
    p->relu = rng_int(0, 1);
}

static void test_add(void)
{
    ac_add_q8_params p;
    /* Every (m, r) of the lowering on input 0, both signednesses, with a random
     * second input; a length with a vector tail. */
    for (int m = 0; m <= 127; m++)
        for (int r = 0; r <= 31; r++) {
            random_add(&p, 2, 0);
            p.m[0] = m;
            p.r[0] = r;
            p.in_signed[0] = (m + r) & 1;
            int64_t dims[1] = {rng_int(60, 200)};
            set_dims(&p, 1, dims);
            test_add_case(&p, NULL);
        }
    /* Edge lengths, every signedness pair, saturating multipliers. */
    for (int l = 0; l < NLEN; l++)
        for (int s = 0; s < 8; s++) {
            random_add(&p, 2, 0);
            p.in_signed[0] = s & 1;
            p.in_signed[1] = (s >> 1) & 1;
            p.y_signed = (s >> 2) & 1;
            if (l & 1) {
                p.m[0] = p.m[1] = 127;
                p.r[0] = p.r[1] = 0;
            }
            int64_t dims[2] = {1, k_lengths[l]};
            set_dims(&p, 2, dims);
            test_add_case(&p, NULL);
        }
    /* Random: 1 to 4 inputs, negative m, 4-D shapes with 1-sized dims. */
    for (int c = 0; c < 300; c++) {
        random_add(&p, rng_int(1, 4), c % 3 == 0 ? -127 : 0);
        int64_t dims[4] = {rng_int(1, 3), rng_int(1, 17), rng_int(1, 9), rng_int(1, 40)};
        set_dims(&p, 4, dims);
        test_add_case(&p, NULL);
    }
    /* Four inputs at the largest terms, m = 127, 127, -127, -127 on equal
     * codes: the exact sum is 0 but the running int16 sum leaves int16, so
     * the plan must fall back to __ref rather than saturate. */
    random_add(&p, 4, 0);
    p.y_signed = true; /* exact 0 stays 0, a saturated sum would give -128 */
    p.relu = false;
    for (int i = 0; i < 4; i++) {
        p.m[i] = i < 2 ? 127 : -127;
        p.r[i] = 0;
        p.in_signed[i] = false;
    }
    uint8_t same[256];
    for (int i = 0; i < 256; i++)
        same[i] = (uint8_t)(255 - i);
    int64_t dims1[1] = {256};
    set_dims(&p, 1, dims1);
    test_add_case(&p, same);
    /* Broadcast: input 1 repeats along dim 0 (the __ref fallback). */
    random_add(&p, 2, 0);
    int64_t dims[2] = {5, 70};
    set_dims(&p, 2, dims);
    p.strides[1][0] = 0;
    test_add_case(&p, NULL);
}

/* With ac_kernels_force_ref() (what AC_FORCE_REF=1 sets) the public entry
 * points run __ref: the results must not change. */
/* fp32 <-> int8 boundaries against the __ref loops: halfway values k + 1/2
 * (and their float neighbours) times the scale, signed zeros, NaN, +-inf,
 * huge and tiny values, for both signednesses, several scales, lengths with
 * tails and nth 1-3; dequantize over every code. */
static void test_boundaries(void)
{
    enum { N = 517 };
    static const double scales[] = {0.1, 3.7 / 127.0, 1e-3, 1000.0, 6.0 / 255.0};
    float *x = xmalloc(N * sizeof(float));
    uint8_t want[N], got[N];
    float fw[N], fg[N];
    for (size_t sc = 0; sc < sizeof scales / sizeof scales[0]; sc++) {
        const double scale = scales[sc];
        for (int i = 0; i < N; i++) {
            const int k = rng_int(-300, 300);
            switch (i % 8) {
            case 0: x[i] = (float)((k + 0.5) * scale); break;
            case 1: x[i] = nextafterf((float)((k + 0.5) * scale), INFINITY); break;
            case 2: x[i] = nextafterf((float)((k + 0.5) * scale), -INFINITY); break;
            case 3: x[i] = (float)(k * scale * 0.37); break;
            case 4: x[i] = i % 16 == 4 ? -0.0f : 0.0f; break;
            case 5: x[i] = i % 24 == 5 ? NAN : i % 24 == 13 ? INFINITY : -INFINITY; break;
            case 6: x[i] = (float)(k * 1e30); break;
            default: x[i] = (float)(k * 1e-40); break;
            }
        }
        for (int sig = 0; sig < 2; sig++)
            for (int nth = 1; nth <= 3; nth++) {
                ac_quantize_q8__ref(x, want, N, scale, sig, 0, 1);
                memset(got, 0xA5, sizeof got);
                for (int ith = 0; ith < nth; ith++)
                    ac_quantize_q8(x, got, N, scale, sig, ith, nth);
                CHECK(!memcmp(want, got, N), "quantize scale %g signed %d nth %d differs", scale, sig, nth);
                uint8_t codes[N];
                for (int i = 0; i < N; i++)
                    codes[i] = (uint8_t)i;
                ac_dequantize_q8__ref(codes, fw, N, scale, sig, 0, 1);
                for (int ith = 0; ith < nth; ith++)
                    ac_dequantize_q8(codes, fg, N, scale, sig, ith, nth);
                CHECK(!memcmp(fw, fg, sizeof fw), "dequantize scale %g signed %d nth %d differs", scale, sig, nth);
                g_cases += 2;
            }
    }
    free(x);
}

static void test_forced(void)
{
    ac_kernels_force_ref(true);
    CHECK(ac_kernels_ref_forced(), "force_ref did not stick");
    ac_add_q8_params p;
    random_add(&p, 2, 0);
    int64_t dims[1] = {130};
    set_dims(&p, 1, dims);
    test_add_case(&p, NULL);
    ac_clamp_q8_params c = {.x_signed = true, .y_signed = false, .lo = 0, .hi = 6};
    uint8_t x[130];
    fill_codes(x, 130);
    test_clamp_case(&c, 130, x);
    ac_kernels_force_ref(false);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng_seed(strtoull(argv[++i], NULL, 0));
        else {
            fprintf(stderr, "usage: %s [--seed N]\n", argv[0]);
            return 2;
        }
    }
    printf("int8_eltwise_test: isa auto = %s\n", ac_elt_isa_name(ac_elt_isa_resolve(AC_ELT_ISA_AUTO)));
    test_clamp();
    test_add();
    test_boundaries();
    test_forced();
    printf("int8_eltwise_test: %d cases, %d failures\n", g_cases, failures);
    return failures ? 1 : 0;
}
