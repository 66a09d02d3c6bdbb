/* bench_conv_f32: our fast fp32 conv (kernels/ac_conv_f32.c) against our
 * __ref kernel and against peers, on ResNet-18 / MobileNetV2 layer shapes at
 * batch 1, for 1 and 2 threads.
 *
 * Peers (when found at build time):
 *  - openblas: the classic im2col + cblas_sgemm conv (Caffe style: one sgemm
 *    per group, a 1x1 stride-1 conv skips im2col), OpenBLAS's own threads;
 *  - onednn: oneDNN's convolution primitive with the layouts it prefers
 *    (format "any"); only the primitive is timed, the reorders from/to NCHW
 *    are not (its best case: our kernel works on plain NCHW).
 * Every peer's output is checked against ours before it is timed.
 *
 * Usage: bench_conv_f32 [--threads 1,2] [--no-ref] [--filter SUBSTRING]
 * Prints one row per (layer, threads): GFLOPS of each, and ours / peer. */
#define _GNU_SOURCE
#include "ac_conv_f32.h"
#include "ac_conv_f32_internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef AC_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef AC_BENCH_HAVE_DNNL
#include <dnnl.h>
#endif

typedef struct {
    const char *name;
    int c_in, h, w, c_out, k, stride, pad, groups; /* groups 0 = depthwise */
} bench_layer;

static const bench_layer k_layers[] = {
    {"r18.conv1 7x7s2", 3, 224, 224, 64, 7, 2, 3, 1},
    {"r18.l1 3x3", 64, 56, 56, 64, 3, 1, 1, 1},
    {"r18.l2.0 3x3s2", 64, 56, 56, 128, 3, 2, 1, 1},
    {"r18.l2.down 1x1s2", 64, 56, 56, 128, 1, 2, 0, 1},
    {"r18.l2 3x3", 128, 28, 28, 128, 3, 1, 1, 1},
    {"r18.l3 3x3", 256, 14, 14, 256, 3, 1, 1, 1},
    {"r18.l4 3x3", 512, 7, 7, 512, 3, 1, 1, 1},
    {"mv2.conv0 3x3s2", 3, 224, 224, 32, 3, 2, 1, 1},
    {"mv2.b1.dw 3x3", 32, 112, 112, 32, 3, 1, 1, 0},
    {"mv2.b1.project 1x1", 32, 112, 112, 16, 1, 1, 0, 1},
    {"mv2.b2.expand 1x1", 16, 112, 112, 96, 1, 1, 0, 1},
    {"mv2.b2.dw 3x3s2", 96, 112, 112, 96, 3, 2, 1, 0},
    {"mv2.b3.expand 1x1", 24, 56, 56, 144, 1, 1, 0, 1},
    {"mv2.b3.dw 3x3", 144, 56, 56, 144, 3, 1, 1, 0},
    {"mv2.b3.project 1x1", 144, 56, 56, 24, 1, 1, 0, 1},
    {"mv2.b8.expand 1x1", 64, 14, 14, 384, 1, 1, 0, 1},
    {"mv2.b8.dw 3x3", 384, 14, 14, 384, 3, 1, 1, 0},
    {"mv2.b16.dw 3x3", 960, 7, 7, 960, 3, 1, 1, 0},
    {"mv2.b16.project 1x1", 960, 7, 7, 320, 1, 1, 0, 1},
    {"mv2.last 1x1", 320, 7, 7, 1280, 1, 1, 0, 1},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of one call: at least min_reps calls and min_s seconds after one warm-up. */
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
    ac_conv2d_shape s;
    const float *x, *w, *bias;
    float *y;
    void *scratch;
    int nth;
    float *cols; /* openblas im2col buffer */
} conv_ctx;

static void run_ours(void *p)
{
    conv_ctx *c = p;
#pragma omp parallel num_threads(c->nth)
    ac_conv2d_f32(&c->s, c->x, c->w, c->bias, c->y, c->scratch, omp_get_thread_num(),
                  omp_get_num_threads());
}

static void run_ref(void *p)
{
    conv_ctx *c = p;
#pragma omp parallel num_threads(c->nth)
    ac_conv2d_f32__ref(&c->s, c->x, c->w, c->bias, c->y, omp_get_thread_num(),
                       omp_get_num_threads());
}

#ifdef AC_BENCH_HAVE_OPENBLAS
static bool blas_direct(const ac_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_left == 0;
}

/* Plain im2col of one (image, group): cols[ci*kh*kw + ky*kw + kx][oh*w_out + ow]. */
static void im2col(const ac_conv2d_shape *s, const float *xg, float *cols, int nth)
{
    const int cin_g = s->c_in / s->groups, ksz = s->kh * s->kw;
    const int n = s->h_out * s->w_out;
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int k = 0; k < cin_g * ksz; k++) {
        const int ci = k / ksz, ky = k % ksz / s->kw, kx = k % s->kw;
        const float *xc = xg + (size_t)ci * s->h_in * s->w_in;
        float *row = cols + (size_t)k * n;
        for (int oh = 0; oh < s->h_out; oh++) {
            const int ih = oh * s->stride_h - s->pad_top + ky * s->dil_h;
            for (int ow = 0; ow < s->w_out; ow++) {
                const int iw = ow * s->stride_w - s->pad_left + kx * s->dil_w;
                row[oh * s->w_out + ow] = (ih >= 0 && ih < s->h_in && iw >= 0 && iw < s->w_in)
                                              ? xc[(size_t)ih * s->w_in + iw]
                                              : 0.0f;
            }
        }
    }
}

static void run_openblas(void *p)
{
    conv_ctx *c = p;
    const ac_conv2d_shape *s = &c->s;
    const int cin_g = s->c_in / s->groups, cout_g = s->c_out / s->groups;
    const int k = cin_g * s->kh * s->kw, n = s->h_out * s->w_out;
    for (int b = 0; b < s->n; b++) {
        for (int g = 0; g < s->groups; g++) {
            const float *xg = c->x + ((size_t)b * s->c_in + (size_t)g * cin_g) * s->h_in * s->w_in;
            const float *src = xg;
            if (!blas_direct(s)) {
                im2col(s, xg, c->cols, c->nth);
                src = c->cols;
            }
            float *yg = c->y + ((size_t)b * s->c_out + (size_t)g * cout_g) * n;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout_g, n, k, 1.0f,
                        c->w + (size_t)g * cout_g * k, k, src, n, 0.0f, yg, n);
            if (c->bias)
                for (int co = 0; co < cout_g; co++)
                    for (int j = 0; j < n; j++)
                        yg[(size_t)co * n + j] += c->bias[g * cout_g + co];
        }
    }
}
#endif

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

/* Copy between a plain-layout buffer and a memory object of any layout. */
static bool dnnl_reorder_copy(dnnl_ctx *d, const dnnl_memory_desc_t *plain_md, float *plain,
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

static bool dnnl_setup(dnnl_ctx *d, const conv_ctx *c)
{
    const ac_conv2d_shape *s = &c->s;
    memset(d, 0, sizeof *d);
    d->nth = c->nth;
    /* oneDNN (OpenMP build) sizes its work split when the primitive is created. */
    omp_set_num_threads(d->nth);
    DNNL_OK(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags));
    const int g = s->groups;
    dnnl_dims_t src_dims = {s->n, s->c_in, s->h_in, s->w_in};
    dnnl_dims_t dst_dims = {s->n, s->c_out, s->h_out, s->w_out};
    dnnl_dims_t wei_dims = {g, s->c_out / g, s->c_in / g, s->kh, s->kw};
    dnnl_dims_t bia_dims = {s->c_out};
    dnnl_memory_desc_t src_any, wei_any, bia_md, dst_any, src_plain, wei_plain, dst_plain;
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&wei_any, 5, wei_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bia_md, 1, bia_dims, dnnl_f32, dnnl_x));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_plain, 4, src_dims, dnnl_f32, dnnl_nchw));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_plain, 4, dst_dims, dnnl_f32, dnnl_nchw));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&wei_plain, 5, wei_dims, dnnl_f32, dnnl_goihw));
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
    DNNL_OK(dnnl_primitive_create(&d->conv, pd));
    DNNL_OK(dnnl_memory_create(&d->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&d->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    DNNL_OK(dnnl_memory_create(&d->bia, &bia_md, d->eng, (void *)c->bias));
    DNNL_OK(dnnl_memory_create(&d->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
                               d->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_destroy(pd);
    if (!dnnl_reorder_copy(d, &src_plain, (float *)c->x, d->src, true) ||
        !dnnl_reorder_copy(d, &wei_plain, (float *)c->w, d->wei, true))
        return false;
    (void)dst_plain;
    return true;
}

static bool dnnl_read_dst(dnnl_ctx *d, const conv_ctx *c, float *out)
{
    const ac_conv2d_shape *s = &c->s;
    dnnl_dims_t dst_dims = {s->n, s->c_out, s->h_out, s->w_out};
    dnnl_memory_desc_t dst_plain;
    DNNL_OK(dnnl_memory_desc_init_by_tag(&dst_plain, 4, dst_dims, dnnl_f32, dnnl_nchw));
    return dnnl_reorder_copy(d, &dst_plain, out, d->dst, false);
}

static void run_dnnl(void *p)
{
    dnnl_ctx *d = p;
    omp_set_num_threads(d->nth); /* the Debian build runs on OpenMP */
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
#endif

/* Largest |a - b| relative to the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t count)
{
    double maxd = 0.0, maxb = 1e-30;
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxd))
            maxd = d; /* NaN propagates as a huge difference */
        if (fabs((double)b[i]) > maxb)
            maxb = fabs((double)b[i]);
    }
    return maxd / maxb;
}

static float *rand_floats(size_t count, unsigned *seed)
{
    float *p = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1103515245u + 12345u;
        p[i] = (float)((*seed >> 8) % 2001) / 1000.0f - 1.0f;
    }
    return p;
}

static void print_ratio(double ours, double peer)
{
    if (peer > 0)
        printf(" %7.2fx", ours / peer);
    else
        printf(" %8s", "-");
}

int main(int argc, char **argv)
{
    int threads[4] = {1, 2}, nthreads = 2;
    bool with_ref = true;
    const char *filter = NULL;
    /* Our kernels and oneDNN run on OpenMP threads while OpenBLAS runs its own:
     * spinning idle OpenMP workers would steal the cores OpenBLAS is using, so
     * the bench re-executes itself with passive OpenMP waiting unless the
     * caller chose a policy (before parsing: strtok edits argv). */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-ref")) {
            with_ref = false;
        } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
            filter = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = 0;
            for (char *tok = strtok(argv[++i], ","); tok && nthreads < 4; tok = strtok(NULL, ","))
                threads[nthreads++] = atoi(tok) > 0 ? atoi(tok) : 1;
        } else {
            fprintf(stderr, "usage: %s [--threads 1,2] [--no-ref] [--filter SUBSTRING]\n", argv[0]);
            return 2;
        }
    }

    printf("# bench_conv_f32: GFLOPS (2 * MACs / best time), batch 1; ratio = ours / peer\n");
    printf("# avx2+fma: %s  avx512f: %s  OMP_WAIT_POLICY=%s\n",
           ac_conv_isa_avx2_available() ? "yes" : "no",
           ac_conv_isa_avx512_available() ? "yes" : "no", getenv("OMP_WAIT_POLICY"));
    printf("%-22s %3s %8s %8s %8s %8s %8s %8s %8s %8s\n", "layer", "thr", "MFLOP", "ours", "ref",
           "openblas", "onednn", "/ref", "/oblas", "/onednn");

    unsigned seed = 12345u;
    const int nlayers = (int)(sizeof k_layers / sizeof k_layers[0]);
    for (int li = 0; li < nlayers; li++) {
        const bench_layer *L = &k_layers[li];
        if (filter && !strstr(L->name, filter))
            continue;
        conv_ctx c;
        memset(&c, 0, sizeof c);
        ac_conv2d_shape *s = &c.s;
        s->n = 1;
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
        const size_t nx = (size_t)L->c_in * L->h * L->w;
        const size_t nw = (size_t)s->c_out * (s->c_in / s->groups) * L->k * L->k;
        const size_t ny = (size_t)s->c_out * s->h_out * s->w_out;
        const double flop = 2.0 * (double)ny * (s->c_in / s->groups) * L->k * L->k;
        float *x = rand_floats(nx, &seed), *w = rand_floats(nw, &seed);
        float *bias = rand_floats(s->c_out, &seed);
        float *y = malloc(ny * sizeof(float)), *y_ours = malloc(ny * sizeof(float));
        float *y_peer = malloc(ny * sizeof(float));
        c.x = x;
        c.w = w;
        c.bias = bias;
        c.y = y;

        for (int ti = 0; ti < nthreads; ti++) {
            c.nth = threads[ti];
            c.scratch = malloc(ac_conv2d_f32_scratch_bytes(s, c.nth) + 1);
            c.y = y_ours;
            const double t_ours = time_best(run_ours, &c, 5, 0.3);
            c.y = y;
            double t_ref = 0, t_blas = 0, t_dnnl = 0;
            if (with_ref) {
                run_ref(&c);
                if (rel_diff(y, y_ours, ny) > 1e-4)
                    fprintf(stderr, "%s: ours differs from __ref by %.3g\n", L->name,
                            rel_diff(y, y_ours, ny));
                t_ref = time_best(run_ref, &c, 1, 0.2);
            }
#ifdef AC_BENCH_HAVE_OPENBLAS
            openblas_set_num_threads(c.nth);
            c.cols = malloc((size_t)(s->c_in / s->groups) * L->k * L->k * s->h_out * s->w_out *
                            sizeof(float));
            c.y = y_peer;
            run_openblas(&c);
            if (rel_diff(y_peer, y_ours, ny) > 1e-4)
                fprintf(stderr, "%s: openblas differs from ours by %.3g\n", L->name,
                        rel_diff(y_peer, y_ours, ny));
            t_blas = time_best(run_openblas, &c, 5, 0.3);
            free(c.cols);
            c.cols = NULL;
            c.y = y;
#endif
#ifdef AC_BENCH_HAVE_DNNL
            dnnl_ctx d;
            if (dnnl_setup(&d, &c)) {
                run_dnnl(&d);
                if (dnnl_read_dst(&d, &c, y_peer) && rel_diff(y_peer, y_ours, ny) > 1e-4)
                    fprintf(stderr, "%s: onednn differs from ours by %.3g\n", L->name,
                            rel_diff(y_peer, y_ours, ny));
                t_dnnl = time_best(run_dnnl, &d, 5, 0.3);
                dnnl_teardown(&d);
            }
#endif
            const double g_ours = flop / t_ours * 1e-9;
            const double g_ref = t_ref > 0 ? flop / t_ref * 1e-9 : 0;
            const double g_blas = t_blas > 0 ? flop / t_blas * 1e-9 : 0;
            const double g_dnnl = t_dnnl > 0 ? flop / t_dnnl * 1e-9 : 0;
            printf("%-22s %3d %8.1f %8.2f %8.2f %8.2f %8.2f", L->name, c.nth, flop * 1e-6, g_ours,
                   g_ref, g_blas, g_dnnl);
            print_ratio(g_ours, g_ref);
            print_ratio(g_ours, g_blas);
            print_ratio(g_ours, g_dnnl);
            printf("\n");
            fflush(stdout);
            free(c.scratch);
        }
        free(x), free(w), free(bias), free(y), free(y_ours), free(y_peer);
    }
    return 0;
}
