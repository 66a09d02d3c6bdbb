/* autocalib demo: the bundled example end to end. Each bundled Fashion-MNIST
 * model is calibrated on Fashion-MNIST training images, quantized for BM1684
 * and scored fp32 vs int8 on test images (Debian's dataset-fashion-mnist),
 * through the same search on an embedded cluster that `autocalib quantize`
 * runs; artefacts go to <output_dir>/<model>/. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_farm_job.h"

#define DEMO_PREPROCESS "mean_value=72.93,scale=0.011109" /* (x/255 - 0.2860) / 0.3530 */
#define DEMO_DATA "/usr/share/datasets/fashion-mnist"
#define DEMO_BATCH 16

static const char *const demo_models[] = {"fmnist_plain", "fmnist_resnet", "fmnist_mbv2"};

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
        snprintf(out, n, "%s/models/%s.onnx", exe, demo_models[0]);
        if (access(out, R_OK) == 0) {
            snprintf(out, n, "%s/models", exe);
            return 0;
        }
    }
    return -1;
}

int ac_cmd_demo(int argc, char **argv)
{
    const char *models_dir = NULL, *data_dir = DEMO_DATA, *output_dir = "./autocalib_out";
    int calib_images = 320, test_images = 1000, threads = 0;
    bool help = false, quiet = false;
    ac_arg_spec specs[] = {
        {"models_dir", NULL, AC_ARG_STRING, &models_dir, "folder with the bundled models (default: the source tree's models/)"},
        {"data_dir", NULL, AC_ARG_STRING, &data_dir, "Fashion-MNIST idx folder (default " DEMO_DATA ")"},
        {"output_dir", NULL, AC_ARG_STRING, &output_dir, "artefacts go to OUTPUT_DIR/<model> (default ./autocalib_out)"},
        {"calib_images", NULL, AC_ARG_INT, &calib_images, "calibration images from the training set (default 320)"},
        {"test_images", NULL, AC_ARG_INT, &test_images, "test images (default 1000; 0 = the whole 10k test set)"},
        {"threads", NULL, AC_ARG_INT, &threads, "OpenMP threads (default: all cores)"},
        {"quiet", NULL, AC_ARG_FLAG, &quiet, "only the summary table"},
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
    if (calib_images < DEMO_BATCH || test_images < 0 || threads < 0) {
        fprintf(stderr, "autocalib demo: --calib_images must be >= %d, --test_images and --threads >= 0\n",
                DEMO_BATCH);
        return 2;
    }
    char dir[PATH_MAX];
    if (models_dir)
        snprintf(dir, sizeof dir, "%s", models_dir);
    else if (default_models_dir(dir, sizeof dir))
        return ac_cli_fail("demo", "cannot find the bundled models folder; pass --models_dir");

    char train[PATH_MAX], images[PATH_MAX], labels[PATH_MAX];
    snprintf(train, sizeof train, "%s/train-images-idx3-ubyte.gz", data_dir);
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", data_dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", data_dir);
    printf("autocalib demo: quantize the bundled Fashion-MNIST models for BM1684\n"
           "data: %s (calibration: %d training images; test: %s%d test images), budget 0.5 points\n\n",
           data_dir, calib_images / DEMO_BATCH * DEMO_BATCH, test_images ? "the first " : "all ",
           /* whole batches: the count is rounded up to a multiple of the batch */
           test_images ? (test_images + DEMO_BATCH - 1) / DEMO_BATCH * DEMO_BATCH : 10000);
    size_t nmodels = sizeof demo_models / sizeof demo_models[0];
    ac_quantize_result res[3];
    char outs[3][PATH_MAX];
    for (size_t m = 0; m < nmodels; m++) {
        char model[PATH_MAX + 64];
        snprintf(model, sizeof model, "%s/%s.onnx", dir, demo_models[m]);
        snprintf(outs[m], sizeof outs[m], "%s/%s", output_dir, demo_models[m]);
        ac_farm_job_options fo;
        ac_farm_job_options_init(&fo);
        ac_quantize_options o = fo.q;
        o.model = model;
        o.calib_idx_images = train;
        o.test_idx_images = images;
        o.test_idx_labels = labels;
        o.preprocess = DEMO_PREPROCESS;
        o.input_data_shape = "(16,1,28,28)";
        o.calib_iterations = calib_images / DEMO_BATCH;
        o.test_iterations = (test_images + DEMO_BATCH - 1) / DEMO_BATCH;
        o.output_dir = outs[m];
        o.threads = threads;
        o.quiet = quiet;
        if (!quiet)
            printf("== %s\n", demo_models[m]);
        if (m == 0 && access(output_dir, F_OK) != 0 && mkdir(output_dir, 0777) != 0) {
            fprintf(stderr, "autocalib demo: %s: cannot create the output folder\n", output_dir);
            return 1;
        }
        /* The same path as `autocalib quantize`: the search on an embedded cluster. */
        fo.q = o;
        if (ac_cli_run_search(&fo, NULL, 0, NULL, NULL, &res[m], &err))
            return ac_cli_fail("demo", err.msg);
    }
    printf("\n%-16s %10s %10s %10s %8s %8s  %s\n", "model", "fp32 top-1", "int8 top-1", "loss", "budget", "seconds",
           "artefacts");
    for (size_t m = 0; m < nmodels; m++)
        printf("%-16s %9.2f%% %9.2f%% %9.2f%% %8s %8.1f  %s\n", demo_models[m], 100 * res[m].fp32_score,
               100 * res[m].int8_score, 100 * (res[m].fp32_score - res[m].int8_score),
               res[m].met_budget ? "met" : "missed", res[m].elapsed_s, outs[m]);
    printf("\nEach folder holds calibration_table and qtable (for tpu-mlir), the int8 model "
           "(autocalib run --model ...), report.json and report.html (open it in a browser).\n");
    return 0;
}
