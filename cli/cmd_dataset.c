/* autocalib dataset import|info|dump: build an LMDB from images or idx files,
 * describe a data source, dump samples as .npy (for tests and inspection). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_dataset.h"
#include "ac_npy.h"
#include "ac_sha256.h"

typedef struct {
    const char *image_source, *preprocess_str, *template_name, *out, *idx_images, *idx_labels;
    const char *layout, *yolo_labels, *labels_out;
    int channels, height, width, batch, threads, begin, count;
    bool skip_bad, overwrite, print_all, help;
} dataset_args;

#define COMMON_SPECS(a)                                                                                                \
    {"data_preproccess_str", "data_preprocess_str", AC_ARG_STRING, &(a).preprocess_str,                                \
     "preprocessing string, e.g. 'resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,"              \
     "bgr2rgb=True;crop_h=224,crop_w=224'"},                                                                           \
    {"image_data_preproccess", "image_data_preprocess", AC_ARG_STRING, &(a).template_name,                            \
     "template: vgg_tensorflow, ssd_vgg_tensorflow, ssd_inception_tensorflow, user_defined (default)"},               \
    {"print_all_image_data_preproccess_detail", "print_all_image_data_preprocess_detail", AC_ARG_FLAG,                \
     &(a).print_all, "print every template and every op with its parameters, then exit"},                             \
    {"idx_images", NULL, AC_ARG_STRING, &(a).idx_images, "idx image file (.gz or plain) instead of a source"},        \
    {"idx_labels", NULL, AC_ARG_STRING, &(a).idx_labels, "idx label file for --idx_images"},                          \
    {"layout", NULL, AC_ARG_STRING, &(a).layout, "NCHW (default) or NHWC, as the model input"},                       \
    {"channels", NULL, AC_ARG_INT, &(a).channels, "1 (gray) or 3 (default for images; idx: 1)"},                      \
    {"height", NULL, AC_ARG_INT, &(a).height, "required sample height (0: from the pipeline)"},                      \
    {"width", NULL, AC_ARG_INT, &(a).width, "required sample width (0: from the pipeline)"},                         \
    {"yolo_labels", NULL, AC_ARG_STRING, &(a).yolo_labels, "folder of YOLO .txt labels, one per image"},             \
    {"threads", NULL, AC_ARG_INT, &(a).threads, "decode threads (0: all cores)"}

static int open_source(const char *cmd, const char *source, const dataset_args *a, ac_dataset **ds)
{
    ac_err err = {0};
    const char *pp;
    if (ac_preproc_resolve(a->template_name, a->preprocess_str, &pp, &err))
        return ac_cli_fail(cmd, err.msg);
    ac_dataset_opts o = {pp, AC_LAYOUT_NCHW, a->channels, a->height, a->width, a->yolo_labels, a->threads};
    if (a->layout && !strcasecmp(a->layout, "NHWC"))
        o.layout = AC_LAYOUT_NHWC;
    else if (a->layout && strcasecmp(a->layout, "NCHW")) {
        snprintf(err.msg, sizeof err.msg, "--layout '%s' is neither NCHW nor NHWC", a->layout);
        return ac_cli_fail(cmd, err.msg);
    }
    if (a->idx_images)
        *ds = ac_dataset_open_idx(a->idx_images, a->idx_labels, &o, &err);
    else if (a->idx_labels)
        return ac_cli_fail(cmd, "--idx_labels needs --idx_images");
    else if (!source)
        return ac_cli_fail(cmd, "no data source: give --image_source LIST|DIR (or a folder), or --idx_images F");
    else
        *ds = ac_dataset_open(source, &o, &err);
    return *ds ? 0 : ac_cli_fail(cmd, err.msg);
}

static void print_info(ac_dataset *ds, const char *source)
{
    printf("source: %s (%s)\n", source, ac_dataset_source_name(ds));
    printf("samples: %lld\n", (long long)ac_dataset_count(ds));
    if (ac_dataset_source_kind(ds) == AC_DS_LMDB_TENSORS || ac_dataset_source_kind(ds) == AC_DS_LMDB_CAFFE)
        printf("records: %lld\n", (long long)ac_dataset_nrecords(ds));
    for (int i = 0; i < ac_dataset_ninputs(ds); i++) {
        int64_t d[AC_REC_MAX_DIMS];
        int r = ac_dataset_sample_shape(ds, i, d);
        printf("input %d: shape [", i);
        for (int k = 0; k < r; k++)
            printf("%s%lld", k ? "," : "", (long long)d[k]);
        printf("] dtype %s\n", ac_dataset_dtype(ds, i));
    }
    const ac_labels *l = ac_dataset_labels(ds);
    printf("labels: %s", ac_label_kind_name(ac_dataset_label_kind(ds)));
    if (ac_dataset_label_kind(ds) == AC_LABEL_BOXES) {
        int64_t boxes = 0;
        for (int64_t i = 0; i < ac_labels_count(l); i++) {
            const ac_box *b;
            boxes += ac_labels_boxes(l, i, &b);
        }
        printf(" (%lld boxes)", (long long)boxes);
    }
    printf("\n");
    uint8_t h[32];
    char hex[65];
    ac_err err = {0};
    if (ac_dataset_hash(ds, h, &err) == AC_OK) {
        ac_sha256_hex(h, hex);
        printf("hash: sha256:%s\n", hex);
    } else {
        printf("hash: unavailable (%s)\n", err.msg);
    }
}

static int cmd_import(int argc, char **argv)
{
    dataset_args a = {0};
    a.batch = 1;
    ac_arg_spec specs[] = {
        {"image_source", NULL, AC_ARG_STRING, &a.image_source, "image folder or ImageList file (path [label] per line)"},
        {"out", NULL, AC_ARG_STRING, &a.out, "output LMDB folder (must not exist unless --overwrite)"},
        {"batch", NULL, AC_ARG_INT, &a.batch, "samples per LMDB record (default 1)"},
        {"skip_bad_images", NULL, AC_ARG_FLAG, &a.skip_bad, "skip undecodable images with a counted warning"},
        {"overwrite", NULL, AC_ARG_FLAG, &a.overwrite, "replace an existing --out folder"},
        COMMON_SPECS(a),
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    const char *usage = "usage: autocalib dataset import --image_source LIST|DIR --data_preproccess_str S --out DIR\n"
                        "       autocalib dataset import --idx_images F --idx_labels F [--data_preproccess_str S] --out DIR";
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 3, specs, nspecs, NULL, 0, NULL, &a.help, &err)) {
        fprintf(stderr, "autocalib dataset import: %s\n", err.msg);
        return 2;
    }
    if (a.help) {
        ac_args_print_help(usage, specs, nspecs);
        return 0;
    }
    if (a.print_all) {
        ac_preproc_print_all(stdout);
        return 0;
    }
    if (!a.out) {
        fprintf(stderr, "autocalib dataset import: --out DIR is required\n%s\n", usage);
        return 2;
    }
    if (a.batch < 1)
        return ac_cli_fail("dataset import", "--batch must be >= 1");
    ac_dataset *ds = NULL;
    int rc = open_source("dataset import", a.image_source, &a, &ds);
    if (rc)
        return rc;
    ac_dataset_write_opts wo = {a.batch, a.overwrite, a.skip_bad, stderr};
    int64_t written, skipped;
    if (ac_dataset_write_lmdb(ds, a.out, &wo, &written, &skipped, &err)) {
        ac_dataset_destroy(&ds);
        return ac_cli_fail("dataset import", err.msg);
    }
    printf("wrote %s: %lld samples in records of %d", a.out, (long long)written, a.batch);
    if (skipped)
        printf(", %lld skipped (see the warnings above)", (long long)skipped);
    printf("\n");
    ac_dataset_destroy(&ds);
    return 0;
}

static int cmd_info_or_dump(int argc, char **argv, int dump)
{
    dataset_args a = {0};
    a.count = -1;
    ac_arg_spec specs[] = {
        {"out", NULL, AC_ARG_STRING, &a.out, "dump: .npy file for the samples (float32, [count, ...])"},
        {"labels_out", NULL, AC_ARG_STRING, &a.labels_out, "dump: labels, one line per sample"},
        {"begin", NULL, AC_ARG_INT, &a.begin, "dump: first sample (default 0)"},
        {"count", NULL, AC_ARG_INT, &a.count, "dump: number of samples (default all)"},
        {"image_source", NULL, AC_ARG_STRING, &a.image_source, "the source (or give it as the argument)"},
        COMMON_SPECS(a),
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    const char *cmd = dump ? "dataset dump" : "dataset info";
    const char *usage = dump ? "usage: autocalib dataset dump SOURCE --out FILE.npy [--labels_out F] [--begin N] [--count N]"
                             : "usage: autocalib dataset info SOURCE (LMDB folder, image folder or list; or --idx_images F)";
    const char *pos[1] = {NULL};
    int npos = 0;
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 3, specs, nspecs, pos, 1, &npos, &a.help, &err)) {
        fprintf(stderr, "autocalib %s: %s\n", cmd, err.msg);
        return 2;
    }
    if (a.help) {
        ac_args_print_help(usage, specs, nspecs);
        return 0;
    }
    if (a.print_all) {
        ac_preproc_print_all(stdout);
        return 0;
    }
    const char *source = npos ? pos[0] : a.image_source;
    ac_dataset *ds = NULL;
    int rc = open_source(cmd, source, &a, &ds);
    if (rc)
        return rc;
    if (!dump) {
        print_info(ds, source ? source : a.idx_images);
        ac_dataset_destroy(&ds);
        return 0;
    }
    if (!a.out) {
        ac_dataset_destroy(&ds);
        fprintf(stderr, "autocalib dataset dump: --out FILE.npy is required\n");
        return 2;
    }
    int64_t n = ac_dataset_count(ds), begin = a.begin, count = a.count < 0 ? n - begin : a.count;
    if (begin < 0 || begin > n || count < 0 || count > n - begin) {
        ac_dataset_destroy(&ds);
        snprintf(err.msg, sizeof err.msg, "--begin %lld --count %lld is outside the %lld samples", (long long)begin,
                 (long long)count, (long long)n);
        return ac_cli_fail(cmd, err.msg);
    }
    for (int i = 0; i < ac_dataset_ninputs(ds) && !rc; i++) {
        size_t per = ac_dataset_sample_elems(ds, i);
        float *buf = malloc(sizeof(float) * (per * (size_t)count + 1));
        int64_t dims[AC_REC_MAX_DIMS + 1] = {count};
        int r = ac_dataset_sample_shape(ds, i, dims + 1);
        char path[4096];
        if (i == 0)
            snprintf(path, sizeof path, "%s", a.out);
        else /* like `autocalib run`: OUT.npy for the first, OUT.<i>.npy for the others */
            snprintf(path, sizeof path, "%.*s.%d.npy", (int)(strlen(a.out) > 4 ? strlen(a.out) - 4 : strlen(a.out)),
                     a.out, i);
        if (!buf)
            rc = ac_cli_fail(cmd, "out of memory");
        else if (ac_dataset_read(ds, i, begin, count, buf, &err) || ac_npy_write(path, "<f4", r + 1, dims, buf, &err))
            rc = ac_cli_fail(cmd, err.msg);
        free(buf);
    }
    if (!rc && a.labels_out && ac_dataset_label_kind(ds) != AC_LABEL_NONE) {
        FILE *f = fopen(a.labels_out, "w");
        if (!f)
            rc = ac_cli_fail(cmd, "cannot write --labels_out");
        for (int64_t i = begin; f && i < begin + count; i++)
            ac_labels_write_record(ac_dataset_labels(ds), i, 1, f);
        if (f && fclose(f))
            rc = ac_cli_fail(cmd, "writing --labels_out failed");
    }
    ac_dataset_destroy(&ds);
    return rc;
}

int ac_cmd_dataset(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : NULL;
    if (sub && !strcmp(sub, "import"))
        return cmd_import(argc, argv);
    if (sub && !strcmp(sub, "info"))
        return cmd_info_or_dump(argc, argv, 0);
    if (sub && !strcmp(sub, "dump"))
        return cmd_info_or_dump(argc, argv, 1);
    if (sub && (!strcmp(sub, "--print_all_image_data_preproccess_detail") ||
                !strcmp(sub, "--print-all-image-data-preprocess-detail") || !strcmp(sub, "templates"))) {
        ac_preproc_print_all(stdout);
        return 0;
    }
    FILE *out = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h")) ? stdout : stderr;
    fprintf(out, "usage: autocalib dataset <import|info|dump|templates> [options]  (--help for each)\n"
                 "  import   build an LMDB from an image folder/list or idx files, preprocessed\n"
                 "  info     sample count, shape, dtype, label kind and content hash of a source\n"
                 "  dump     samples as .npy (float32) and labels as text\n"
                 "  templates  every preprocessing template and op with its parameters\n");
    return out == stdout ? 0 : 2;
}
