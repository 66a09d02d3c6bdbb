/* autocalib demo: the bundled example end to end. Until quantization lands it
 * runs fp32 inference of the bundled Fashion-MNIST models on the Fashion-MNIST
 * test set (Debian's dataset-fashion-mnist) and prints top-1 and throughput. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_model.h"

#define DEMO_PREPROCESS "mean_value=72.93,scale=0.011109" /* (x/255 - 0.2860) / 0.3530 */
#define DEMO_DATA "/usr/share/datasets/fashion-mnist"

static const char *demo_models[] = {"fmnist_plain.onnx", "fmnist_resnet.onnx", "fmnist_mbv2.onnx"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The models folder of the source tree: <exe>/../../models (build/cli/autocalib).
 * out must hold PATH_MAX bytes. */
static int default_models_dir(char *out, size_t n)
{
    char exe[PATH_MAX - 64]; /* leaves room for "/models/<file>" in out */
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return -1;
        *slash = '\0';
        snprintf(out, n, "%s/models/%s", exe, demo_models[0]);
        if (access(out, R_OK) == 0) {
            snprintf(out, n, "%s/models", exe);
            return 0;
        }
    }
    return -1;
}

typedef struct {
    int correct, total;
    double seconds;
} demo_result;

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static int evaluate(const char *model, ac_dataset *ds, int batch, int64_t limit, int threads,
                    demo_result *r, ac_err *err)
{
    char shape[64];
    snprintf(shape, sizeof shape, "(%d,1,28,28)", batch);
    ac_model_options mo = {.input_shapes = shape};
    ac_graph *g = ac_model_load(model, &mo, NULL, err);
    if (!g)
        return -1;
    ac_exec *e = ac_exec_new(g, err);
    float *x = malloc(sizeof(float) * (size_t)batch * 28 * 28);
    int rc = -1;
    if (!e || !x) {
        if (!x)
            ac_err_set(err, AC_E_NOMEM, "out of memory for a batch of %d", batch);
        goto done;
    }
    ac_exec_set_threads(e, threads);
    const ac_tensor *out = &g->tensors[g->outputs[0]];
    int classes = (int)(ac_tensor_numel(out) / batch);
    const ac_labels *labels = ac_dataset_labels(ds);
    memset(r, 0, sizeof *r);
    double t0 = now_s();
    for (int64_t i = 0; i + batch <= limit; i += batch) {
        if (ac_dataset_read(ds, 0, i, batch, x, err))
            goto done;
        const void *in[1] = {x};
        if (ac_exec_run(e, in, err))
            goto done;
        const float *y = ac_exec_tensor(e, g->outputs[0]);
        for (int s = 0; s < batch; s++) {
            r->correct += argmax(y + (size_t)s * (size_t)classes, classes) == ac_labels_class(labels, i + s);
            r->total++;
        }
    }
    r->seconds = now_s() - t0;
    rc = 0;
done:
    free(x);
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
    return rc;
}

int ac_cmd_demo(int argc, char **argv)
{
    const char *models_dir = NULL, *data_dir = DEMO_DATA;
    int batch = 100, limit = 0, threads = 0;
    bool help = false;
    ac_arg_spec specs[] = {
        {"models_dir", NULL, AC_ARG_STRING, &models_dir, "folder with the bundled models (default: the source tree's models/)"},
        {"data_dir", NULL, AC_ARG_STRING, &data_dir, "Fashion-MNIST idx folder (default " DEMO_DATA ")"},
        {"batch", NULL, AC_ARG_INT, &batch, "batch size (default 100)"},
        {"test_iterations", NULL, AC_ARG_INT, &limit, "batches to run; 0 = the whole test set"},
        {"threads", NULL, AC_ARG_INT, &threads, "OpenMP threads (default: all cores)"},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, NULL, &help, &err)) {
        fprintf(stderr, "autocalib demo: %s\n", err.msg);
        return 2;
    }
    if (help) {
        ac_args_print_help("usage: autocalib demo [options]", specs, nspecs);
        return 0;
    }
    if (batch < 1 || batch > 10000 || limit < 0 || threads < 0) {
        fprintf(stderr, "autocalib demo: --batch must be in [1,10000], --test_iterations and --threads >= 0\n");
        return 2;
    }
    char dir[PATH_MAX];
    if (models_dir)
        snprintf(dir, sizeof dir, "%s", models_dir);
    else if (default_models_dir(dir, sizeof dir))
        return ac_cli_fail("demo", "cannot find the bundled models folder; pass --models_dir");

    char images[PATH_MAX], labels[PATH_MAX];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", data_dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", data_dir);
    ac_dataset_opts dopt = {.preprocess = DEMO_PREPROCESS, .layout = AC_LAYOUT_NCHW, .channels = 1,
                            .nthreads = threads};
    ac_dataset *ds = ac_dataset_open_idx(images, labels, &dopt, &err);
    if (!ds)
        return ac_cli_fail("demo", err.msg);
    int64_t count = ac_dataset_count(ds);
    int64_t use = ac_dataset_limit(count, limit, batch);
    use -= use % batch;
    printf("autocalib demo: fp32 inference of the bundled Fashion-MNIST models\n"
           "data: %s (%lld test images, using %lld), preprocessing '%s'\n\n",
           data_dir, (long long)count, (long long)use, DEMO_PREPROCESS);
    printf("%-22s %10s %12s %10s\n", "model", "top-1", "images/s", "seconds");
    int rc = 0;
    for (size_t m = 0; m < sizeof demo_models / sizeof demo_models[0]; m++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", dir, demo_models[m]);
        demo_result r;
        if (evaluate(path, ds, batch, use, threads, &r, &err)) {
            rc = ac_cli_fail("demo", err.msg);
            break;
        }
        printf("%-22s %9.2f%% %12.0f %10.2f\n", demo_models[m], 100.0 * r.correct / (r.total ? r.total : 1),
               r.seconds > 0 ? r.total / r.seconds : 0.0, r.seconds);
    }
    ac_dataset_destroy(&ds);
    return rc;
}
