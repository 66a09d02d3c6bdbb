/* bench_net: whole-network int8 inference speed of an int8 model file (.acq,
 * written by `autocalib quantize`), run by the shared-activation int8
 * executor (ac_qexec_new_shared) that the workers and `autocalib run` use.
 *
 * For each batch size: the model's input shape is set to that batch (the
 * plan is rebuilt from the stored table, as `autocalib run` does), one
 * executor is made, the input is filled once (real samples from --input
 * repeated cyclically, else a fixed pseudo-random pattern in [-1, 1]), then
 * --warmup untimed calls and timed calls until at least --seconds and 5
 * calls. Every call is timed on its own; images/s is given from the median
 * call (throughput on a loaded machine) and from the best call (the figure
 * the kernel benches use). bench/bench_nets.py runs this next to ONNX
 * Runtime and PyTorch (docs/performance.md).
 *
 * Prints one line per batch:
 *   batch=B threads=T calls=N median_ms=.. best_ms=.. images_per_s=.. images_per_s_best=..
 *   activation_bytes=..
 * and with --output FILE.npy writes the first graph output of the last call
 * at the last batch size (float32), so the caller can check that ours and
 * the peers run the same network.
 *
 * Usage: bench_net MODEL.acq [--batch 1,8] [--threads 2] [--seconds 2] [--warmup 3]
 *                            [--input X.npy] [--output Y.npy] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ac_int8_model.h"
#include "ac_npy.h"
#include "ac_qexec.h"

#define MAX_BATCHES 8
#define MIN_CALLS 5
#define MAX_CALLS 100000

typedef struct {
    const char *model, *input, *output;
    int batches[MAX_BATCHES], nbatches;
    int threads, warmup;
    double seconds;
} bench_options;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_net MODEL.acq [--batch 1,8] [--threads 2] [--seconds 2] [--warmup 3] "
                    "[--input X.npy] [--output Y.npy]\n");
    return 2;
}

static int parse_batches(bench_options *o, const char *s)
{
    o->nbatches = 0;
    for (const char *p = s; *p;) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 1 || b > 4096 || o->nbatches == MAX_BATCHES)
            return -1;
        o->batches[o->nbatches++] = (int)b;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return o->nbatches ? 0 : -1;
}

static int parse_args(bench_options *o, int argc, char **argv)
{
    *o = (bench_options){.batches = {1, 8}, .nbatches = 2, .threads = 2, .warmup = 3, .seconds = 2.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (o->model)
                return -1;
            o->model = a;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--batch")) {
            if (parse_batches(o, v))
                return -1;
        } else if (!strcmp(a, "--threads")) {
            o->threads = atoi(v);
        } else if (!strcmp(a, "--warmup")) {
            o->warmup = atoi(v);
        } else if (!strcmp(a, "--seconds")) {
            o->seconds = atof(v);
        } else if (!strcmp(a, "--input")) {
            o->input = v;
        } else if (!strcmp(a, "--output")) {
            o->output = v;
        } else {
            return -1;
        }
    }
    return o->model && o->threads >= 1 && o->warmup >= 0 && o->seconds > 0 ? 0 : -1;
}

/* "(B,d1,d2,...)" from the graph input's own dims with dim 0 replaced. */
static void batch_shape(const ac_tensor *t, int batch, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(%d", batch);
    for (int d = 1; d < t->ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, ",%lld", (long long)t->dims[d]);
    if (len < cap)
        snprintf(buf + len, cap - len, ")");
}

/* The batch's input: the --input samples repeated cyclically, else a fixed
 * pattern (a 32-bit LCG mapped to [-1, 1]) so every run times the same data. */
static float *make_input(const ac_npy *samples, size_t numel)
{
    float *x = malloc(numel * sizeof *x);
    if (!x)
        return NULL;
    if (samples) {
        size_t have = samples->nbytes / sizeof(float);
        const float *src = samples->data;
        for (size_t i = 0; i < numel; i++)
            x[i] = src[i % have];
        return x;
    }
    uint32_t s = 12345u;
    for (size_t i = 0; i < numel; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
    }
    return x;
}

/* Times one batch size; the executor is made and destroyed here. */
static int bench_batch(ac_int8_model *m, const bench_options *o, const ac_npy *samples, int batch, bool last,
                       ac_err *err)
{
    const ac_graph *g = ac_int8_model_graph(m);
    char shape[256];
    batch_shape(&g->tensors[g->inputs[0]], batch, shape, sizeof shape);
    if (ac_int8_model_set_input_shapes(m, shape, err))
        return -1;
    g = ac_int8_model_graph(m);
    const ac_tensor *in = &g->tensors[g->inputs[0]];
    size_t numel = (size_t)ac_tensor_numel(in);
    if (samples && samples->nbytes % (numel / (size_t)batch * sizeof(float)) != 0)
        return ac_err_set(err, AC_E_INVALID, "--input %s: %zu bytes is not a whole number of [%s] samples",
                          o->input, samples->nbytes, shape);
    ac_qexec *e = ac_qexec_new_shared(ac_int8_model_plan(m), err);
    float *x = make_input(samples, numel);
    double *times = malloc(sizeof(double) * MAX_CALLS);
    int rc = -1, calls = 0;
    if (!e || !x || !times) {
        if (e)
            ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    ac_qexec_set_threads(e, o->threads);
    const void *ins[1] = {x};
    for (int i = 0; i < o->warmup; i++)
        if (ac_qexec_run(e, ins, err))
            goto done;
    double start = now_s();
    while ((calls < MIN_CALLS || now_s() - start < o->seconds) && calls < MAX_CALLS) {
        double t0 = now_s();
        if (ac_qexec_run(e, ins, err))
            goto done;
        times[calls++] = now_s() - t0;
    }
    qsort(times, (size_t)calls, sizeof *times, cmp_double);
    double median = calls % 2 ? times[calls / 2] : 0.5 * (times[calls / 2 - 1] + times[calls / 2]);
    printf("batch=%d threads=%d calls=%d median_ms=%.3f best_ms=%.3f images_per_s=%.2f images_per_s_best=%.2f "
           "activation_bytes=%zu\n",
           batch, o->threads, calls, 1e3 * median, 1e3 * times[0], batch / median, batch / times[0],
           ac_qexec_activation_bytes(e));
    fflush(stdout);
    if (last && o->output) {
        const ac_tensor *out = &g->tensors[g->outputs[0]];
        const void *v = ac_qexec_tensor_float(e, g->outputs[0]);
        if (!v) {
            ac_err_set(err, AC_E_INTERNAL, "output '%s' has no float value", out->name);
            goto done;
        }
        if (ac_npy_write(o->output, "<f4", out->ndim, out->dims, v, err))
            goto done;
    }
    rc = 0;
done:
    free(times);
    free(x);
    ac_qexec_destroy(&e);
    return rc;
}

int main(int argc, char **argv)
{
    bench_options o;
    if (parse_args(&o, argc, argv))
        return usage();
    ac_err err = {0};
    ac_npy samples = {0};
    ac_int8_model *m = ac_int8_model_load(o.model, &err);
    int rc = 1;
    if (!m)
        goto done;
    const ac_graph *g = ac_int8_model_graph(m);
    if (g->ninputs != 1 || g->tensors[g->inputs[0]].dtype != AC_DT_F32) {
        ac_err_set(&err, AC_E_UNSUPPORTED, "%s: bench_net times models with one float32 input", o.model);
        goto done;
    }
    if (o.input) {
        if (ac_npy_read(o.input, &samples, &err))
            goto done;
        if (strcmp(samples.descr, "<f4") != 0 || samples.nbytes == 0) {
            ac_err_set(&err, AC_E_INVALID, "--input %s: need float32 samples, got '%s'", o.input, samples.descr);
            goto done;
        }
    }
    printf("model=%s threads=%d warmup=%d seconds=%.2f input=%s\n", o.model, o.threads, o.warmup, o.seconds,
           o.input ? o.input : "pattern");
    for (int i = 0; i < o.nbatches; i++)
        if (bench_batch(m, &o, o.input ? &samples : NULL, o.batches[i], i == o.nbatches - 1, &err))
            goto done;
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench_net: %s\n", err.msg);
    ac_npy_free(&samples);
    ac_int8_model_destroy(&m);
    return rc;
}
