/* bench_int8_conv: our fast int8 conv (kernels/ac_int8_fast.c) against our
 * __ref kernel and oneDNN's int8 convolution, on ResNet-18 and MobileNetV2
 * layer shapes, batch 1 and 8, 1 and 2 threads.
 *
 * - ours: ac_conv2d_q8 with weights packed once (as the executor does per
 *   plan), NCHW int8/uint8 in, int8/uint8 out with the full BM1684 epilogue
 *   (int16 bias, rounding shift, saturation; ReLU where the layer has one);
 * - ref: ac_conv2d_q8__ref (batch 1, 1 thread only: it is slow);
 * - onednn: oneDNN's convolution primitive, u8/s8 source x s8 weights + s32
 *   bias -> s32 destination, with the layouts it prefers (format "any");
 *   only the primitive is timed, not the reorders from/to NCHW (its best
 *   case), and it does no requantization (less work than ours).
 * oneDNN's s32 output, requantized with the same rule, is checked against
 * ours before timing. GOPS = 2 * MACs / best time (at least 5 calls and 0.3 s
 * after a warm-up; the machine is shared, so best-of is the fair figure).
 *
 * Also: an int8 peak, a register-only vpdpbusd loop (when the CPU has
 * AVX-512 VNNI), and ours as a fraction of it on the large 3x3 layers.
 *
 * Prints one row per (layer, batch, threads), the geomeans of ours / onednn
 * per thread count (comment lines: on a shared machine the multi-thread rows
 * are the noisy ones), then over the depthwise rows, the 1x1 rows and all rows,
 * and a final line int8_conv_geomean_vs_onednn=<ratio>.
 *
 * Usage: bench_int8_conv [--threads 1,2] [--batch 1,8] [--no-ref] [--filter SUBSTRING] */
#define _GNU_SOURCE
#include "ac_int8_fast.h"
#include "ac_int8_fast_internal.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_round.h"

#ifdef AC_BENCH_HAVE_DNNL
#include <dnnl.h>
#endif

typedef struct {
    const char *name;
    int c_in, h, w, c_out, k, stride, pad, groups; /* groups 0 = depthwise */
    bool x_signed; /* what the lowering gives: uint8 after a ReLU, int8 otherwise */
    bool relu;
} bench_layer;

static const bench_layer k_layers[] = {
    {"r18.conv1 7x7s2", 3, 224, 224, 64, 7, 2, 3, 1, true, true},
    {"r18.l1 3x3", 64, 56, 56, 64, 3, 1, 1, 1, false, true},
    {"r18.l2.0 3x3s2", 64, 56, 56, 128, 3, 2, 1, 1, false, true},
    {"r18.l2.down 1x1s2", 64, 56, 56, 128, 1, 2, 0, 1, false, false},
    {"r18.l2 3x3", 128, 28, 28, 128, 3, 1, 1, 1, false, true},
    {"r18.l3.down 1x1s2", 128, 28, 28, 256, 1, 2, 0, 1, false, false},
    {"r18.l3 3x3", 256, 14, 14, 256, 3, 1, 1, 1, false, true},
    {"r18.l4.down 1x1s2", 256, 14, 14, 512, 1, 2, 0, 1, false, false},
    {"r18.l4 3x3", 512, 7, 7, 512, 3, 1, 1, 1, false, true},
    {"mv2.b1.dw 3x3", 32, 112, 112, 32, 3, 1, 1, 0, false, true},
    {"mv2.b1.project 1x1", 32, 112, 112, 16, 1, 1, 0, 1, false, false},
    {"mv2.b2.expand 1x1", 16, 112, 112, 96, 1, 1, 0, 1, true, true},
    {"mv2.b2.dw 3x3s2", 96, 112, 112, 96, 3, 2, 1, 0, false, true},
    {"mv2.b3.expand 1x1", 24, 56, 56, 144, 1, 1, 0, 1, true, true},
    {"mv2.b3.dw 3x3", 144, 56, 56, 144, 3, 1, 1, 0, false, true},
    {"mv2.b3.project 1x1", 144, 56, 56, 24, 1, 1, 0, 1, false, false},
    {"mv2.b8.expand 1x1", 64, 14, 14, 384, 1, 1, 0, 1, true, true},
    {"mv2.b8.dw 3x3", 384, 14, 14, 384, 3, 1, 1, 0, false, true},
    {"mv2.b16.dw 3x3", 960, 7, 7, 960, 3, 1, 1, 0, false, true},
    {"mv2.b16.project 1x1", 960, 7, 7, 320, 1, 1, 0, 1, false, false},
    {"mv2.last 1x1", 320, 7, 7, 1280, 1, 1, 0, 1, true, true},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*bench_fn)(void *ctx);
static double time_best(bench_fn fn, void *ctx, int min_reps, double min_s)
{
    fn(ctx);
    double best = 1e30, start = now_s();
    for (int rep = 0; rep < min_reps || now_s() - start < min_s; rep++) {
        double t0 = now_s();
        fn(ctx);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return best;
}

typedef struct {
    ac_conv_q8_params p;
    const uint8_t *x;
    uint8_t *y;
    void *scratch;
    int nth;
} conv_ctx;

static void run_ours(void *v)
{
    conv_ctx *c = v;
#pragma omp parallel num_threads(c->nth)
    ac_conv2d_q8(&c->p, c->x, c->y, c->scratch, omp_get_thread_num(), omp_get_num_threads());
}

static void run_ref(void *v)
{
    conv_ctx *c = v;
#pragma omp parallel num_threads(c->nth)
    ac_conv2d_q8__ref(&c->p, c->x, c->y, omp_get_thread_num(), omp_get_num_threads());
}

#ifdef AC_BENCH_HAVE_DNNL
typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t conv;
    dnnl_memory_t src, wei, bia, dst;
    int nth;
} dnnl_ctx;

#define DNNL_OK(call)                                                                         \
    do {                                                                                      \
        dnnl_status_t st_ = (call);                                                           \
        if (st_ != dnnl_success) {                                                            \
            fprintf(stderr, "onednn: %s failed (%d)\n", #call, (int)st_);                     \
            return false;                                                                     \
        }                                                                                     \
    } while (0)

static bool dnnl_reorder_copy(dnnl_ctx *d, const dnnl_memory_desc_t *plain_md, void *plain,
                              dnnl_memory_t mem, bool to_mem)
{
    const dnnl_memory_desc_t *mem_md;
    DNNL_OK(dnnl_memory_get_memory_desc(mem, &mem_md));
    dnnl_memory_t pm;
    DNNL_OK(dnnl_memory_create(&pm, plain_md, d->eng, plain));
    dnnl_primitive_desc_t rpd;
    if (to_mem)
        DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, plain_md, d->eng, mem_md, d->eng, NULL));
    else
        DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, mem_md, d->eng, plain_md, d->eng, NULL));
    dnnl_primitive_t r;
    DNNL_OK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, to_mem ? pm : mem}, {DNNL_ARG_TO, to_mem ? mem : pm}};
    DNNL_OK(dnnl_primitive_execute(r, d->stream, 2, args));
    DNNL_OK(dnnl_stream_wait(d->stream));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(pm);
    return true;
}

static bool dnnl_setup(dnnl_ctx *d, const conv_ctx *c, const int32_t *bias32, const char **impl)
{
    const ac_conv2d_shape *s = &c->p.s;
    memset(d, 0, sizeof *d);
    d->nth = c->nth;
    omp_set_num_threads(d->nth); /* oneDNN (OpenMP build) sizes its split at creation */
    DNNL_OK(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags));
    const int g = s->groups;
    const dnnl_data_type_t xt = c->p.x_signed ? dnnl_s8 : dnnl_u8;
    dnnl_dims_t src_dims = {s->n, s->c_in, s->h_in, s->w_in};
    dnnl_dims_t dst_dims = {s->n, s->c_out, s->h_out, s->w_out};
    dnnl_dims_t wei_dims_g = {g, s->c_out / g, s->c_in / g, s->kh, s->kw};
    dnnl_dims_t wei_dims = {s->c_out, s->c_in, s->kh, s->kw};
    dnnl_dims_t bia_dims = {s->c_out};
    const int wnd = g > 1 ? 5 : 4;
    dnnl_memory_desc_t src_any, wei_any, bia_md, dst_any, src_plain, wei_plain;
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, xt, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_s32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&wei_any, wnd, g > 1 ? wei_dims_g : wei_dims, dnnl_s8,
                                         dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bia_md, 1, bia_dims, dnnl_s32, dnnl_x));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_plain, 4, src_dims, xt, dnnl_nchw));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&wei_plain, wnd, g > 1 ? wei_dims_g : wei_dims, dnnl_s8,
                                         g > 1 ? dnnl_goihw : dnnl_oihw));
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, dil = {s->dil_h - 1, s->dil_w - 1};
    const int pad_b = (s->h_out - 1) * s->stride_h + s->dil_h * (s->kh - 1) + 1 - s->h_in - s->pad_top;
    const int pad_r = (s->w_out - 1) * s->stride_w + s->dil_w * (s->kw - 1) + 1 - s->w_in - s->pad_left;
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_rr = {pad_b, pad_r};
    dnnl_convolution_desc_t cd;
    DNNL_OK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                       dnnl_convolution_direct, &src_any, &wei_any,
                                                       &bia_md, &dst_any, strides, dil, pad_l,
                                                       pad_rr));
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &cd, NULL, d->eng, NULL));
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        *impl = name; /* owned by pd: copied below before destroying it */
    static char impl_buf[64];
    snprintf(impl_buf, sizeof impl_buf, "%s", *impl ? *impl : "?");
    *impl = impl_buf;
    DNNL_OK(dnnl_primitive_create(&d->conv, pd));
    DNNL_OK(dnnl_memory_create(&d->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&d->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&d->bia, &bia_md, d->eng, (void *)bias32));
    DNNL_OK(dnnl_memory_create(&d->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_destroy(pd);
    if (!dnnl_reorder_copy(d, &src_plain, (void *)c->x, d->src, true) ||
        !dnnl_reorder_copy(d, &wei_plain, (void *)c->p.w, d->wei, true))
        return false;
    return true;
}

static bool dnnl_read_dst(dnnl_ctx *d, const ac_conv2d_shape *s, int32_t *out)
{
    dnnl_dims_t dst_dims = {s->n, s->c_out, s->h_out, s->w_out};
    dnnl_memory_desc_t dst_plain;
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_plain, 4, dst_dims, dnnl_s32, dnnl_nchw));
    return dnnl_reorder_copy(d, &dst_plain, out, d->dst, false);
}

static void run_dnnl(void *v)
{
    dnnl_ctx *d = v;
    omp_set_num_threads(d->nth);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, d->src},
                               {DNNL_ARG_WEIGHTS, d->wei},
                               {DNNL_ARG_BIAS, d->bia},
                               {DNNL_ARG_DST, d->dst}};
    dnnl_primitive_execute(d->conv, d->stream, 4, args);
    dnnl_stream_wait(d->stream);
}

static void dnnl_teardown(dnnl_ctx *d)
{
    dnnl_primitive_destroy(d->conv);
    dnnl_memory_destroy(d->src);
    dnnl_memory_destroy(d->wei);
    dnnl_memory_destroy(d->bia);
    dnnl_memory_destroy(d->dst);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->eng);
}

/* oneDNN's s32 (acc + bias) requantized as the spec says must equal our codes. */
static bool dnnl_agrees(const conv_ctx *c, const int32_t *acc, const uint8_t *ours, size_t count)
{
    const ac_conv_q8_params *p = &c->p;
    const int64_t plane = (int64_t)p->s.h_out * p->s.w_out;
    for (size_t i = 0; i < count; i++) {
        int oc = (int)((int64_t)i / plane % p->s.c_out);
        int64_t v = ac_rshift_round(acc[i], p->rshift[oc]);
        if (p->relu) {
            v = v < 0 ? 0 : v;
            v = v > p->clip_hi ? p->clip_hi : v;
        }
        int64_t lo = p->y_signed ? -128 : 0, hi = p->y_signed ? 127 : 255;
        v = v < lo ? lo : (v > hi ? hi : v);
        if ((uint8_t)v != ours[i]) {
            fprintf(stderr, "onednn disagrees at %zu: %lld vs ours %d\n", i, (long long)v, ours[i]);
            return false;
        }
    }
    return true;
}
#endif

/* ---- int8 peak: vpdpbusd on registers only ------------------------------------------------ */

/* 24 independent accumulators (zmm0-23) in inline asm, so the compiler can
 * neither spill nor drop them: enough chains to cover vpdpbusd's latency. */
__attribute__((target("avx512f,avx512vnni"))) static double vnni_peak_gops(double min_s)
{
    const __m512i b = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x01FF0102);
    const int64_t inner = 1 << 15;
    double best = 0.0, start = now_s();
    while (now_s() - start < min_s) {
        double t0 = now_s();
        int64_t n = inner;
        __asm__ volatile("1:\n\t"
                "vpdpbusd %[w], %[b], %%zmm0\n\t"
                "vpdpbusd %[w], %[b], %%zmm1\n\t"
                "vpdpbusd %[w], %[b], %%zmm2\n\t"
                "vpdpbusd %[w], %[b], %%zmm3\n\t"
                "vpdpbusd %[w], %[b], %%zmm4\n\t"
                "vpdpbusd %[w], %[b], %%zmm5\n\t"
                "vpdpbusd %[w], %[b], %%zmm6\n\t"
                "vpdpbusd %[w], %[b], %%zmm7\n\t"
                "vpdpbusd %[w], %[b], %%zmm8\n\t"
                "vpdpbusd %[w], %[b], %%zmm9\n\t"
                "vpdpbusd %[w], %[b], %%zmm10\n\t"
                "vpdpbusd %[w], %[b], %%zmm11\n\t"
                "vpdpbusd %[w], %[b], %%zmm12\n\t"
                "vpdpbusd %[w], %[b], %%zmm13\n\t"
                "vpdpbusd %[w], %[b], %%zmm14\n\t"
                "vpdpbusd %[w], %[b], %%zmm15\n\t"
                "vpdpbusd %[w], %[b], %%zmm16\n\t"
                "vpdpbusd %[w], %[b], %%zmm17\n\t"
                "vpdpbusd %[w], %[b], %%zmm18\n\t"
                "vpdpbusd %[w], %[b], %%zmm19\n\t"
                "vpdpbusd %[w], %[b], %%zmm20\n\t"
                "vpdpbusd %[w], %[b], %%zmm21\n\t"
                "vpdpbusd %[w], %[b], %%zmm22\n\t"
                "vpdpbusd %[w], %[b], %%zmm23\n\t"
                "dec %[n]\n\t"
                "jnz 1b\n\t"
                : [n] "+r"(n)
                : [b] "v"(b), [w] "v"(w)
                : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "cc");
        double dt = now_s() - t0;
        double gops = (double)inner * 24 * 64 * 2 / dt * 1e-9;
        if (gops > best)
            best = gops;
    }
    return best;
}

/* ---- main ---------------------------------------------------------------------------------------- */

static uint32_t g_seed = 12345u;
static uint32_t rnd(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return g_seed >> 8;
}

static int parse_list(char *arg, int *out, int max)
{
    int n = 0;
    for (char *tok = strtok(arg, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = atoi(tok) > 0 ? atoi(tok) : 1;
    return n;
}

static void print_val(double v, const char *fmt)
{
    if (v > 0)
        printf(fmt, v);
    else
        printf(" %8s", "-");
}

static void print_ratio(double ours, double peer, const char *fmt)
{
    if (peer > 0)
        printf(fmt, ours / peer);
    else
        printf(" %8s", "-");
}

static bool is_pointwise(const bench_layer *L) { return L->k == 1; }
static bool is_depthwise(const bench_layer *L) { return L->groups == 0; }

int main(int argc, char **argv)
{
    int threads[4] = {1, 2}, nthreads = 2, batches[4] = {1, 8}, nbatches = 2;
    bool with_ref = true;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-ref")) {
            with_ref = false;
        } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
            filter = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = parse_list(argv[++i], threads, 4);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            nbatches = parse_list(argv[++i], batches, 4);
        } else {
            fprintf(stderr, "usage: %s [--threads 1,2] [--batch 1,8] [--no-ref] [--filter S]\n",
                    argv[0]);
            return 2;
        }
    }
    const bool have_vnni = ac_q8_isa_available(AC_Q8_ISA_AVX512);
    const double peak = have_vnni ? vnni_peak_gops(0.3) : 0.0;
    printf("# bench_int8_conv: GOPS (2 * MACs / best time); ratio = ours / peer\n");
    printf("# ours: %s, weights packed once; onednn: u8/s8 x s8 + s32 bias -> s32, "
           "layouts 'any', primitive only\n",
           ac_q8_isa_name(ac_q8_isa_resolve(AC_Q8_ISA_AUTO)));
    if (have_vnni)
        printf("# int8 peak (1 thread, register-only vpdpbusd zmm loop): %.1f GOPS\n", peak);
    printf("%-22s %5s %3s %8s %8s %8s %8s %8s %8s  %s\n", "layer", "batch", "thr", "MOP", "ours",
           "ref", "onednn", "/ref", "/onednn", "onednn impl");

    /* log-ratio sums: [0] every row, [1 + ti] the rows of thread count threads[ti];
     * kinds: every layer, depthwise, 1x1 */
    enum { GM_ALL, GM_DW, GM_PW, GM_KINDS };
    double gm_log[5][GM_KINDS] = {{0}};
    int gm_n[5][GM_KINDS] = {{0}};
    double big3x3_best = 0; /* best fraction of peak on the large 3x3 layers */
    const int nlayers = (int)(sizeof k_layers / sizeof k_layers[0]);
    for (int li = 0; li < nlayers; li++) {
        const bench_layer *L = &k_layers[li];
        if (filter && !strstr(L->name, filter))
            continue;
        for (int bi = 0; bi < nbatches; bi++) {
            conv_ctx c;
            memset(&c, 0, sizeof c);
            ac_conv2d_shape *s = &c.p.s;
            s->n = batches[bi];
            s->c_in = L->c_in;
            s->h_in = L->h;
            s->w_in = L->w;
            s->c_out = L->c_out;
            s->kh = s->kw = L->k;
            s->stride_h = s->stride_w = L->stride;
            s->pad_top = s->pad_left = L->pad;
            s->dil_h = s->dil_w = 1;
            s->groups = L->groups ? L->groups : L->c_in;
            s->h_out = (L->h + 2 * L->pad - L->k) / L->stride + 1;
            s->w_out = (L->w + 2 * L->pad - L->k) / L->stride + 1;
            const int64_t k = (int64_t)(s->c_in / s->groups) * L->k * L->k;
            const size_t nx = (size_t)s->n * L->c_in * L->h * L->w;
            const size_t nw = (size_t)s->c_out * k;
            const size_t ny = (size_t)s->n * s->c_out * s->h_out * s->w_out;
            const double ops = 2.0 * (double)ny * (double)k;
            uint8_t *x = malloc(nx);
            int8_t *w = malloc(nw);
            int16_t *bias = malloc(sizeof(int16_t) * (size_t)s->c_out);
            int32_t *bias32 = malloc(sizeof(int32_t) * (size_t)s->c_out);
            int32_t *rs = malloc(sizeof(int32_t) * (size_t)s->c_out);
            for (size_t i = 0; i < nx; i++)
                x[i] = (uint8_t)rnd();
            for (size_t i = 0; i < nw; i++)
                w[i] = (int8_t)((int)(rnd() % 41) - 20); /* typical lowered magnitudes */
            int r = 0;
            while (((int64_t)1 << r) < k * 40 * 64 / 8 && r < 31)
                r++;
            for (int i = 0; i < s->c_out; i++) {
                bias[i] = (int16_t)((int)(rnd() % 4001) - 2000);
                bias32[i] = bias[i];
                rs[i] = r;
            }
            c.p.x_signed = L->x_signed;
            c.p.y_signed = !L->relu;
            c.p.w = w;
            c.p.bias = bias;
            c.p.rshift = rs;
            c.p.relu = L->relu;
            c.p.clip_hi = AC_Q8_NO_CLIP;
            size_t pb = ac_conv_q8_pack_bytes(&c.p);
            void *packed = pb ? malloc(pb) : NULL;
            if (packed)
                ac_conv_q8_pack(&c.p, packed);
            c.p.w_packed = packed;
            c.x = x;
            uint8_t *y_ours = malloc(ny), *y_ref = malloc(ny);
            for (int ti = 0; ti < nthreads; ti++) {
                c.nth = threads[ti];
                size_t sb = ac_conv2d_q8_scratch_bytes(&c.p, c.nth);
                c.scratch = malloc(sb ? sb : 1);
                c.y = y_ours;
                const double t_ours = time_best(run_ours, &c, 5, 0.3);
                double t_ref = 0, t_dnnl = 0;
                if (with_ref && c.nth == 1 && s->n == 1) {
                    c.y = y_ref;
                    t_ref = time_best(run_ref, &c, 1, 0.2);
                    if (memcmp(y_ref, y_ours, ny) != 0)
                        fprintf(stderr, "%s: ours differs from __ref\n", L->name);
                }
                const char *impl = "-";
#ifdef AC_BENCH_HAVE_DNNL
                dnnl_ctx d;
                if (dnnl_setup(&d, &c, bias32, &impl)) {
                    run_dnnl(&d);
                    int32_t *acc = malloc(sizeof(int32_t) * ny);
                    if (dnnl_read_dst(&d, s, acc) && dnnl_agrees(&c, acc, y_ours, ny))
                        t_dnnl = time_best(run_dnnl, &d, 5, 0.3);
                    else
                        fprintf(stderr, "%s: onednn result not usable, not timed\n", L->name);
                    free(acc);
                    dnnl_teardown(&d);
                }
#endif
                const double g_ours = ops / t_ours * 1e-9;
                const double g_ref = t_ref > 0 ? ops / t_ref * 1e-9 : 0;
                const double g_dnnl = t_dnnl > 0 ? ops / t_dnnl * 1e-9 : 0;
                printf("%-22s %5d %3d %8.1f %8.1f", L->name, s->n, c.nth, ops * 1e-6, g_ours);
                print_val(g_ref, " %8.2f");
                print_val(g_dnnl, " %8.1f");
                print_ratio(g_ours, g_ref, " %7.1fx");
                print_ratio(g_ours, g_dnnl, " %7.2fx");
                printf("  %s\n", impl);
                fflush(stdout);
                if (g_dnnl > 0) {
                    const double lr = log(g_ours / g_dnnl);
                    const int kind = is_depthwise(L) ? GM_DW : (is_pointwise(L) ? GM_PW : -1);
                    for (int set = 0; set <= 1; set++) {
                        const int at = set ? 1 + ti : 0;
                        gm_log[at][GM_ALL] += lr;
                        gm_n[at][GM_ALL]++;
                        if (kind >= 0) {
                            gm_log[at][kind] += lr;
                            gm_n[at][kind]++;
                        }
                    }
                }
                if (have_vnni && c.nth == 1 && L->k == 3 && L->groups == 1 && L->stride == 1 &&
                    g_ours / peak > big3x3_best)
                    big3x3_best = g_ours / peak;
                free(c.scratch);
            }
            free(y_ref);
            free(y_ours);
            free(packed);
            free(rs);
            free(bias32);
            free(bias);
            free(w);
            free(x);
        }
    }
    if (have_vnni)
        printf("# ours on the large 3x3 layers (1 thread): best %.0f%% of the int8 peak "
               "(%.1f GOPS)\n", 100.0 * big3x3_best, peak);
    /* per thread count too: on a shared machine the multi-thread rows are the noisy ones */
    for (int ti = 0; ti < nthreads && nthreads > 1; ti++) {
        const int at = 1 + ti;
        printf("# %d thread%s:", threads[ti], threads[ti] > 1 ? "s" : "");
        static const char *const names[GM_KINDS] = {"all", "depthwise", "1x1"};
        for (int k = 0; k < GM_KINDS; k++)
            if (gm_n[at][k])
                printf(" %s %.3f (%d rows)", names[k], exp(gm_log[at][k] / gm_n[at][k]),
                       gm_n[at][k]);
        printf("\n");
    }
    if (gm_n[0][GM_DW])
        printf("int8_conv_depthwise_geomean_vs_onednn=%.3f (%d rows)\n",
               exp(gm_log[0][GM_DW] / gm_n[0][GM_DW]), gm_n[0][GM_DW]);
    if (gm_n[0][GM_PW])
        printf("int8_conv_1x1_geomean_vs_onednn=%.3f (%d rows)\n",
               exp(gm_log[0][GM_PW] / gm_n[0][GM_PW]), gm_n[0][GM_PW]);
    if (gm_n[0][GM_ALL])
        printf("int8_conv_geomean_vs_onednn=%.3f\n", exp(gm_log[0][GM_ALL] / gm_n[0][GM_ALL]));
    else
        printf("int8_conv_geomean_vs_onednn=nan (oneDNN not available)\n");
    return 0;
}
