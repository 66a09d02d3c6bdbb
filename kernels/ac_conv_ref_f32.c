/* Reference fp32 convolution and GEMM: direct loops that define the semantics
 * the fast kernels (ac_conv_f32.c) are tested against, plus the run-time
 * switch that forces these reference kernels everywhere.
 *
 * Accumulation order (the fast kernels differ from it only by rounding):
 *   conv: acc = 0; for ci in group, ky, kx: acc += x * w;  y = acc + bias
 *   gemm: acc = 0; for kk: acc += a * b;  y = alpha * acc (+ beta * c) */
#include "ac_conv_f32.h"

#include <stdlib.h>
#include <string.h>

/* ---- force-reference switch ------------------------------------------------
 * The one piece of global mutable state the conventions allow. 0 = not yet
 * decided (AC_FORCE_REF is read on first use), 1 = off, 2 = on. Atomic so the
 * lazy read is safe when every thread of a parallel region asks at once. */
static int g_force_ref_state = 0;

void ac_kernels_force_ref(bool on)
{
    __atomic_store_n(&g_force_ref_state, on ? 2 : 1, __ATOMIC_RELAXED);
}

bool ac_kernels_ref_forced(void)
{
    int state = __atomic_load_n(&g_force_ref_state, __ATOMIC_RELAXED);
    if (state == 0) {
        const char *env = getenv("AC_FORCE_REF");
        bool on = env && env[0] && strcmp(env, "0") != 0;
        int expected = 0;
        /* A concurrent explicit ac_kernels_force_ref() wins over the environment. */
        __atomic_compare_exchange_n(&g_force_ref_state, &expected, on ? 2 : 1, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        state = __atomic_load_n(&g_force_ref_state, __ATOMIC_RELAXED);
    }
    return state == 2;
}

/* ---- work split -------------------------------------------------------------- */

/* [*begin, *end) of `total` items for thread ith of nth: contiguous, balanced. */
static void split_range(int64_t total, int ith, int nth, int64_t *begin, int64_t *end)
{
    if (nth < 1) {
        nth = 1;
        ith = 0;
    }
    *begin = total * ith / nth;
    *end = total * (ith + 1) / nth;
}

/* ---- conv ------------------------------------------------------------------- */

void ac_conv2d_f32__ref(const ac_conv2d_shape *s, const float *x, const float *w,
                        const float *bias, float *y, int ith, int nth)
{
    const int cin_g = s->c_in / s->groups;
    const int cout_g = s->c_out / s->groups;
    const int64_t plane_in = (int64_t)s->h_in * s->w_in;
    const int64_t plane_out = (int64_t)s->h_out * s->w_out;

    /* Work item = one output plane (image, output channel). */
    int64_t begin, end;
    split_range((int64_t)s->n * s->c_out, ith, nth, &begin, &end);
    for (int64_t item = begin; item < end; item++) {
        const int b = (int)(item / s->c_out);
        const int co = (int)(item % s->c_out);
        const int g = co / cout_g;
        const float *wco = w + (int64_t)co * cin_g * s->kh * s->kw;
        float *yp = y + item * plane_out;
        for (int oh = 0; oh < s->h_out; oh++) {
            for (int ow = 0; ow < s->w_out; ow++) {
                float acc = 0.0f;
                for (int ci = 0; ci < cin_g; ci++) {
                    const float *xp = x + ((int64_t)b * s->c_in + (int64_t)g * cin_g + ci) * plane_in;
                    const float *wp = wco + (int64_t)ci * s->kh * s->kw;
                    for (int ky = 0; ky < s->kh; ky++) {
                        const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
                        if (ih < 0 || ih >= s->h_in)
                            continue;
                        for (int kx = 0; kx < s->kw; kx++) {
                            const int iw = ow * s->stride_w - s->pad_left + kx * s->dil_w;
                            if (iw < 0 || iw >= s->w_in)
                                continue;
                            acc += xp[(int64_t)ih * s->w_in + iw] * wp[ky * s->kw + kx];
                        }
                    }
                }
                yp[(int64_t)oh * s->w_out + ow] = bias ? acc + bias[co] : acc;
            }
        }
    }
}

/* ---- gemm ------------------------------------------------------------------- */

/* Element (i, j) of C under the ONNX Gemm unidirectional broadcast. */
static float gemm_c_at(const ac_gemm_shape *s, const float *c, int i, int j)
{
    const int ci = s->c_rows == 1 ? 0 : i;
    const int cj = s->c_cols == 1 ? 0 : j;
    return c[(int64_t)ci * s->c_cols + cj];
}

void ac_gemm_f32__ref(const ac_gemm_shape *s, const float *a, const float *b, const float *c,
                      float *y, int ith, int nth)
{
    /* Work item = one row of Y. */
    int64_t begin, end;
    split_range(s->m, ith, nth, &begin, &end);
    for (int64_t i = begin; i < end; i++) {
        for (int j = 0; j < s->n; j++) {
            float acc = 0.0f;
            for (int kk = 0; kk < s->k; kk++) {
                const float av = s->trans_a ? a[(int64_t)kk * s->m + i] : a[i * s->k + kk];
                const float bv = s->trans_b ? b[(int64_t)j * s->k + kk] : b[(int64_t)kk * s->n + j];
                acc += av * bv;
            }
            float v = s->alpha * acc;
            /* beta == 0 ignores C entirely (as onnxruntime does), so a NaN in C
             * does not leak into the result. */
            if (c && s->beta != 0.0f)
                v += s->beta * gemm_c_at(s, c, (int)i, j);
            y[i * s->n + j] = v;
        }
    }
}
