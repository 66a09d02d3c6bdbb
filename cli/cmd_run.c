/* autocalib run: inference of an fp32 model or an int8 model file
 * (docs/int8-model-format.md; detected by its first bytes) on .npy inputs, an
 * image folder/list, an LMDB or idx files. fp32 models run on the fp32
 * executor, int8 models on the BM1684 int8 executor (quant/ac_qexec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_int8_model.h"
#include "ac_model.h"
#include "ac_npy.h"
#include "ac_qexec.h"

#define MAX_INPUTS 16

typedef struct {
    const char *model, *weights, *shapes, *input, *output, *dump_dir;
    const char *image_source, *lmdb_path, *idx_images, *idx_labels;
    const char *preprocess; /* resolved from the template / user string */
    int threads, test_iterations;
    bool help;
} run_options;

/* ---- the model: fp32 graph + fp32 executor, or int8 model file + int8 executor ------------ */

typedef struct {
    ac_graph *fp32_graph;
    ac_int8_model *int8;
    const ac_graph *g;
    ac_exec *e;
    ac_qexec *q;
} runner;

static void runner_close(runner *r)
{
    ac_exec_destroy(&r->e);
    ac_qexec_destroy(&r->q);
    ac_graph_destroy(&r->fp32_graph);
    ac_int8_model_destroy(&r->int8);
}

/* Do the inputs already have these shapes ("(a,b),(c,d)" as shapes_from_npy writes)? */
static bool same_shapes(const ac_graph *g, const char *shapes)
{
    char buf[1024];
    size_t len = 0;
    for (int i = 0; i < g->ninputs && len < sizeof buf; i++) {
        const ac_tensor *t = &g->tensors[g->inputs[i]];
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s(", i ? "," : "");
        for (int d = 0; d < t->ndim && len < sizeof buf; d++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lld", d ? "," : "",
                                    (long long)t->dims[d]);
        if (len < sizeof buf)
            len += (size_t)snprintf(buf + len, sizeof buf - len, ")");
    }
    return len < sizeof buf && strcmp(buf, shapes) == 0;
}

/* shapes: --input_data_shape, or the .npy shapes, or NULL for the model's own. */
static int runner_open(runner *r, const run_options *o, const char *shapes, ac_err *err)
{
    memset(r, 0, sizeof *r);
    if (ac_int8_model_detect(o->model)) {
        r->int8 = ac_int8_model_load(o->model, err);
        if (!r->int8)
            return -1;
        if (shapes && *shapes && !same_shapes(ac_int8_model_graph(r->int8), shapes) &&
            ac_int8_model_set_input_shapes(r->int8, shapes, err))
            return ac_err_prefix(err, "%s: ", o->model);
        r->g = ac_int8_model_graph(r->int8);
        /* --dump_tensors reads every tensor; otherwise activations share memory */
        r->q = o->dump_dir ? ac_qexec_new(ac_int8_model_plan(r->int8), err)
                           : ac_qexec_new_shared(ac_int8_model_plan(r->int8), err);
        if (!r->q)
            return -1;
        ac_qexec_set_threads(r->q, o->threads);
        return 0;
    }
    ac_model_options mo = {.weights = o->weights, .input_shapes = shapes};
    r->fp32_graph = ac_model_load(o->model, &mo, NULL, err);
    if (!r->fp32_graph)
        return -1;
    r->g = r->fp32_graph;
    r->e = o->dump_dir ? ac_exec_new(r->g, err) : ac_exec_new_shared(r->g, err);
    if (!r->e)
        return -1;
    ac_exec_set_threads(r->e, o->threads);
    return 0;
}

static int runner_run(runner *r, const void *const *ins, ac_err *err)
{
    return r->q ? ac_qexec_run(r->q, ins, err) : ac_exec_run(r->e, ins, err);
}

/* The value of tensor t in its graph dtype (int8 models: dequantized for outputs). */
static const void *runner_value(const runner *r, int t)
{
    return r->q ? ac_qexec_tensor_float(r->q, t) : ac_exec_tensor(r->e, t);
}

/* What --dump_tensors writes: codes (int8/uint8) for int8 tensors, else the value. */
static const void *runner_dump(const runner *r, int t, ac_dtype *dt)
{
    if (r->q)
        return ac_qexec_tensor_dump(r->q, t, dt);
    *dt = r->g->tensors[t].dtype;
    return ac_exec_tensor(r->e, t);
}

/* ---- writing tensors ------------------------------------------------------------------------- */

static const char *npy_descr(ac_dtype dt)
{
    switch (dt) {
    case AC_DT_F32: return "<f4";
    case AC_DT_F64: return "<f8";
    case AC_DT_I64: return "<i8";
    case AC_DT_I32: return "<i4";
    case AC_DT_I16: return "<i2";
    case AC_DT_U16: return "<u2";
    case AC_DT_I8: return "|i1";
    case AC_DT_U8: return "|u1";
    case AC_DT_BOOL: return "|b1";
    default: return NULL;
    }
}

/* A tensor name made safe as a file name: path separators and odd characters become '_'. */
static void file_safe(char *dst, size_t cap, const char *name)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        dst[i] = ok ? c : '_';
    }
    dst[i] = '\0';
    if (dst[0] == '.')
        dst[0] = '_';
}

static int write_array(const char *path, const char *tname, ac_dtype dt, int ndim,
                       const int64_t *dims, const void *data, ac_err *err)
{
    const char *descr = npy_descr(dt);
    if (!descr)
        return ac_err_set(err, AC_E_UNSUPPORTED, "tensor '%s': dtype %s cannot be written as .npy",
                          tname, ac_dtype_name(dt));
    return ac_npy_write(path, descr, ndim, dims, data, err);
}

/* OUT.npy for the first output, OUT.<name>.npy for the others. */
static void output_path(char *path, size_t cap, const char *out, int i, const char *tname)
{
    size_t len = strlen(out);
    size_t stem = len > 4 && !strcmp(out + len - 4, ".npy") ? len - 4 : len;
    char safe[512];
    if (i == 0) {
        snprintf(path, cap, "%.*s.npy", (int)stem, out);
    } else {
        file_safe(safe, sizeof safe, tname);
        snprintf(path, cap, "%.*s.%s.npy", (int)stem, out, safe);
    }
}

static int write_outputs(const runner *r, const char *out, ac_err *err)
{
    const ac_graph *g = r->g;
    for (int i = 0; i < g->noutputs; i++) {
        const ac_tensor *t = &g->tensors[g->outputs[i]];
        char path[4096];
        output_path(path, sizeof path, out, i, t->name);
        const void *v = runner_value(r, g->outputs[i]);
        if (!v)
            return ac_err_set(err, AC_E_INTERNAL, "output '%s' has no value", t->name);
        if (write_array(path, t->name, t->dtype, t->ndim, t->dims, v, err))
            return -1;
        printf("wrote %s (%s)\n", path, t->name);
    }
    return 0;
}

static int dump_tensors(const runner *r, const char *dir, ac_err *err)
{
    const ac_graph *g = r->g;
    if (mkdir(dir, 0777) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return ac_err_set(err, AC_E_IO, "--dump_tensors %s: cannot create the folder", dir);
    }
    int count = 0, codes = 0;
    for (int t = 0; t < g->ntensors; t++) {
        const ac_tensor *ts = &g->tensors[t];
        ac_dtype dt = AC_DT_UNDEFINED;
        const void *v = ts->data || ts->ndim < 0 ? NULL : runner_dump(r, t, &dt);
        if (!v)
            continue;
        char path[4096], safe[512];
        file_safe(safe, sizeof safe, ts->name);
        snprintf(path, sizeof path, "%s/%s.npy", dir, safe);
        if (write_array(path, ts->name, dt, ts->ndim, ts->dims, v, err))
            return -1;
        count++;
        codes += r->q && (dt == AC_DT_I8 || dt == AC_DT_U8) && ts->dtype == AC_DT_F32;
    }
    if (r->q)
        printf("dumped %d tensors to %s (%d as int8/uint8 codes, %d as float)\n", count, dir,
               codes, count - codes);
    else
        printf("dumped %d tensors to %s\n", count, dir);
    return 0;
}

/* ---- top-5 -------------------------------------------------------------------------------------- */

static void top5(const float *y, int64_t c, int best[5])
{
    for (int r = 0; r < 5; r++)
        best[r] = -1;
    for (int64_t k = 0; k < c; k++)
        for (int r = 0; r < 5 && r < c; r++)
            if (best[r] < 0 || y[k] > y[best[r]]) {
                for (int q = 4; q > r; q--)
                    best[q] = best[q - 1];
                best[r] = (int)k;
                break;
            }
}

static void print_row_top5(const float *y, int64_t c)
{
    int best[5];
    top5(y, c, best);
    for (int r = 0; r < 5 && r < c; r++)
        printf(" %d (%.4g)", best[r], y[best[r]]);
}

/* Classifier-looking outputs ([N, C] floats) get a top-5 line per sample. */
static void print_top5(const runner *r)
{
    const ac_graph *g = r->g;
    for (int o = 0; o < g->noutputs; o++) {
        const ac_tensor *t = &g->tensors[g->outputs[o]];
        if (t->dtype != AC_DT_F32 || ac_tensor_numel(t) <= 0 || t->ndim < 1 || t->dims[0] <= 0)
            continue;
        int64_t n = t->dims[0], c = ac_tensor_numel(t) / n;
        const float *y = runner_value(r, g->outputs[o]);
        printf("output '%s' %s:\n", t->name, ac_dtype_name(t->dtype));
        for (int64_t s = 0; s < n && s < 64; s++) {
            printf("  sample %lld top-5:", (long long)s);
            print_row_top5(y + s * c, c);
            printf("\n");
        }
    }
}

/* ---- .npy inputs -------------------------------------------------------------------------------- */

/* "a.npy,b.npy" -> files[]; the string is modified in place. */
static int split_list(char *s, char **files, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        files[n++] = tok;
    return n;
}

/* When no shape was given, the .npy shapes become the input shapes, so a
 * batch of 16 runs as batch 16. */
static char *shapes_from_npy(const ac_npy *arrs, int n)
{
    size_t cap = 64 + (size_t)n * AC_NPY_MAX_DIMS * 24;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s(", i ? "," : "");
        for (int d = 0; d < arrs[i].ndim; d++)
            len += (size_t)snprintf(s + len, cap - len, "%s%lld", d ? "," : "", (long long)arrs[i].dims[d]);
        len += (size_t)snprintf(s + len, cap - len, ")");
    }
    return s;
}

static int check_input(const ac_graph *g, int i, const ac_npy *a, const char *file, ac_err *err)
{
    const ac_tensor *t = &g->tensors[g->inputs[i]];
    const char *want = npy_descr(t->dtype);
    if (!want || strcmp(want, a->descr) != 0)
        return ac_err_set(err, AC_E_INVALID, "%s: dtype %s, but input '%s' is %s", file, a->descr,
                          t->name, ac_dtype_name(t->dtype));
    int same = a->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = a->dims[d] == t->dims[d];
    if (!same) {
        char got[128] = "", need[128] = "";
        size_t l1 = 0, l2 = 0;
        for (int d = 0; d < a->ndim; d++)
            l1 += (size_t)snprintf(got + l1, sizeof got - l1, "%s%lld", d ? "," : "", (long long)a->dims[d]);
        for (int d = 0; d < t->ndim; d++)
            l2 += (size_t)snprintf(need + l2, sizeof need - l2, "%s%lld", d ? "," : "", (long long)t->dims[d]);
        return ac_err_set(err, AC_E_INVALID, "%s: shape (%s) does not match input '%s' (%s)", file,
                          got, t->name, need);
    }
    return 0;
}

static int run_npy(const run_options *o, ac_err *err)
{
    char *list = strdup(o->input);
    char *files[MAX_INPUTS];
    int nfiles = list ? split_list(list, files, MAX_INPUTS) : 0;
    ac_npy arrs[MAX_INPUTS];
    memset(arrs, 0, sizeof arrs);
    runner r = {0};
    char *auto_shapes = NULL;
    int rc = -1;
    for (int i = 0; i < nfiles; i++)
        if (ac_npy_read(files[i], &arrs[i], err))
            goto done;
    if (!o->shapes)
        auto_shapes = shapes_from_npy(arrs, nfiles);
    if (runner_open(&r, o, o->shapes ? o->shapes : auto_shapes, err))
        goto done;
    const ac_graph *g = r.g;
    if (nfiles != g->ninputs) {
        ac_err_set(err, AC_E_INVALID, "--input gives %d file(s), the model has %d input(s)", nfiles,
                   g->ninputs);
        goto done;
    }
    const void *ins[MAX_INPUTS];
    for (int i = 0; i < nfiles; i++) {
        if (check_input(g, i, &arrs[i], files[i], err))
            goto done;
        ins[i] = arrs[i].data;
    }
    if (runner_run(&r, ins, err))
        goto done;
    if (o->output && write_outputs(&r, o->output, err))
        goto done;
    if (!o->output)
        print_top5(&r);
    if (o->dump_dir && dump_tensors(&r, o->dump_dir, err))
        goto done;
    rc = 0;
done:
    runner_close(&r);
    for (int i = 0; i < nfiles; i++)
        ac_npy_free(&arrs[i]);
    free(auto_shapes);
    free(list);
    return rc;
}

/* ---- image / LMDB / idx inputs ------------------------------------------------------------------ */

/* The sample layout the model input expects: NCHW unless the last dim looks
 * like channels (as autocalib quantize decides). */
static ac_dataset_opts data_opts(const ac_tensor *in, const run_options *o)
{
    ac_dataset_opts d = {.preprocess = o->preprocess, .nthreads = o->threads};
    if (in->ndim == 4) {
        bool nhwc = in->dims[3] <= 4 && in->dims[1] > 4;
        d.layout = nhwc ? AC_LAYOUT_NHWC : AC_LAYOUT_NCHW;
        d.channels = (int)(nhwc ? in->dims[3] : in->dims[1]);
        d.height = (int)(nhwc ? in->dims[1] : in->dims[2]);
        d.width = (int)(nhwc ? in->dims[2] : in->dims[3]);
    }
    return d;
}

/* Runs the dataset batch by batch (the model input's dim 0; a short last
 * batch repeats its last sample, whose results are not reported), prints
 * top-5 per sample and top-1 when the data has class labels. --output
 * collects the first output of every sample into one array; --dump_tensors
 * dumps the first batch. */
static int run_dataset(const run_options *o, ac_err *err)
{
    runner r = {0};
    ac_dataset *ds = NULL;
    float *x = NULL, *collected = NULL;
    int rc = -1;
    if (runner_open(&r, o, o->shapes, err))
        goto done;
    const ac_graph *g = r.g;
    if (g->ninputs != 1) {
        ac_err_set(err, AC_E_UNSUPPORTED, "%s: %d inputs; image/LMDB/idx data feeds one-input "
                   "models (use --input with .npy files)", o->model, g->ninputs);
        goto done;
    }
    const ac_tensor *in = &g->tensors[g->inputs[0]];
    if (in->dtype != AC_DT_F32 || in->ndim < 2 || in->dims[0] < 1) {
        ac_err_set(err, AC_E_UNSUPPORTED, "input '%s': need a float32 tensor with a batch dim",
                   in->name);
        goto done;
    }
    ac_dataset_opts d = data_opts(in, o);
    ds = o->idx_images ? ac_dataset_open_idx(o->idx_images, o->idx_labels, &d, err)
                       : ac_dataset_open(o->image_source ? o->image_source : o->lmdb_path, &d, err);
    if (!ds)
        goto done;
    int64_t batch = in->dims[0];
    size_t per = ac_dataset_sample_elems(ds, 0);
    if ((int64_t)per * batch != ac_tensor_numel(in)) {
        ac_err_set(err, AC_E_INVALID, "%s: samples have %zu values, the model input '%s' needs "
                   "%lld per sample", ac_dataset_source_name(ds), per, in->name,
                   (long long)(ac_tensor_numel(in) / batch));
        goto done;
    }
    const ac_tensor *out = &g->tensors[g->outputs[0]];
    int64_t out_per = ac_tensor_numel(out) / (out->ndim > 0 && out->dims[0] == batch ? batch : 1);
    bool rows = out->ndim > 0 && out->dims[0] == batch && out->dtype == AC_DT_F32;
    int64_t n = ac_dataset_limit(ac_dataset_count(ds), o->test_iterations, batch);
    const ac_labels *labels = ac_dataset_labels(ds);
    bool classes = labels && ac_labels_kind(labels) == AC_LABEL_CLASS;
    x = malloc(sizeof(float) * per * (size_t)batch);
    if (o->output && !rows) {
        ac_err_set(err, AC_E_UNSUPPORTED, "--output with a dataset needs a float32 first output "
                   "with the batch as dim 0 ('%s' is not)", out->name);
        goto done;
    }
    if (o->output)
        collected = malloc(sizeof(float) * (size_t)out_per * (size_t)(n ? n : 1));
    if (!x || (o->output && !collected)) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for a batch of %lld", (long long)batch);
        goto done;
    }
    printf("%s: %lld samples from %s, batch %lld, %s model\n", o->model, (long long)n,
           ac_dataset_source_name(ds), (long long)batch, r.q ? "int8" : "fp32");
    int64_t correct = 0;
    for (int64_t first = 0; first < n; first += batch) {
        int64_t nb = n - first < batch ? n - first : batch;
        if (ac_dataset_read(ds, 0, first, nb, x, err))
            goto done;
        for (int64_t i = nb; i < batch; i++)
            memcpy(x + (size_t)i * per, x + (size_t)(nb - 1) * per, per * sizeof(float));
        const void *ins[1] = {x};
        if (runner_run(&r, ins, err))
            goto done;
        if (first == 0 && o->dump_dir && dump_tensors(&r, o->dump_dir, err))
            goto done;
        const float *y = runner_value(&r, g->outputs[0]);
        for (int64_t i = 0; rows && i < nb; i++) {
            const float *row = y + i * out_per;
            if (collected)
                memcpy(collected + (first + i) * out_per, row, sizeof(float) * (size_t)out_per);
            char where[256];
            ac_dataset_where(ds, first + i, where, sizeof where);
            printf("  sample %lld (%s) top-5:", (long long)(first + i), where);
            print_row_top5(row, out_per);
            if (classes) {
                int best[5];
                top5(row, out_per, best);
                int32_t label = ac_labels_class(labels, first + i);
                correct += best[0] == label;
                printf("  label %d", label);
            }
            printf("\n");
        }
    }
    if (classes && n > 0)
        printf("top-1: %lld / %lld = %.2f%%\n", (long long)correct, (long long)n,
               100.0 * (double)correct / (double)n);
    if (collected) {
        char path[4096];
        int64_t dims[AC_MAX_DIMS];
        memcpy(dims, out->dims, sizeof dims);
        dims[0] = n;
        output_path(path, sizeof path, o->output, 0, out->name);
        if (write_array(path, out->name, AC_DT_F32, out->ndim, dims, collected, err))
            goto done;
        printf("wrote %s (%s, %lld samples)\n", path, out->name, (long long)n);
    }
    rc = 0;
done:
    free(x);
    free(collected);
    ac_dataset_destroy(&ds);
    runner_close(&r);
    return rc;
}

int ac_cmd_run(int argc, char **argv)
{
    run_options o = {0};
    const char *user_pp = NULL, *template_name = NULL;
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &o.model, "model file: fp32 (ONNX, Darknet .cfg or Caffe .prototxt with --weights, PyTorch .pt or module.py:Class) or an int8 model (autocalib quantize)"},
        {"weights", NULL, AC_ARG_STRING, &o.weights, "the weights of two-file formats (Darknet: --model X.cfg --weights X.weights; Caffe: --model X.prototxt --weights X.caffemodel; a state dict for module.py:Class)"},
        {"input_data_shape", NULL, AC_ARG_STRING, &o.shapes,
         "input shape(s), e.g. '(1,3,224,224)'; default: the shapes of the --input arrays, else the model's"},
        {"input", NULL, AC_ARG_STRING, &o.input, "input .npy file(s), comma-separated, one per model input"},
        {"image_source", NULL, AC_ARG_STRING, &o.image_source, "images: a folder or an ImageList file"},
        {"lmdb_path", NULL, AC_ARG_STRING, &o.lmdb_path, "an LMDB folder (ours or Caffe Datum)"},
        {"idx_images", NULL, AC_ARG_STRING, &o.idx_images, "an idx image file (MNIST style, .gz ok)"},
        {"idx_labels", NULL, AC_ARG_STRING, &o.idx_labels, "its idx label file"},
        {"data_preproccess_str", "data_preprocess_str", AC_ARG_STRING, &user_pp,
         "preprocessing of images, e.g. 'resize_h=256,resize_w=256;crop_h=224,crop_w=224'"},
        {"image_data_preproccess", "image_data_preprocess", AC_ARG_STRING, &template_name,
         "a preprocessing template name (user_defined: --data_preproccess_str)"},
        {"test_iterations", NULL, AC_ARG_INT, &o.test_iterations, "batches of data to run (0 = all)"},
        {"output", NULL, AC_ARG_STRING, &o.output,
         "OUT.npy: first output to OUT.npy, others to OUT.<output_name>.npy (default: print top-5)"},
        {"dump_tensors", NULL, AC_ARG_STRING, &o.dump_dir,
         "write every tensor of the run as DIR/<tensor>.npy (int8 models: codes for int8 tensors)"},
        {"threads", NULL, AC_ARG_INT, &o.threads, "OpenMP threads (default: all cores)"},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, NULL, &o.help, &err)) {
        fprintf(stderr, "autocalib run: %s\n", err.msg);
        return 2;
    }
    if (o.help) {
        ac_args_print_help("usage: autocalib run --model MODEL (--input X.npy | --image_source S | "
                           "--lmdb_path D | --idx_images F) [--output Y.npy]",
                           specs, nspecs);
        return 0;
    }
    int sources = (o.input != NULL) + (o.image_source != NULL) + (o.lmdb_path != NULL) +
                  (o.idx_images != NULL);
    if (!o.model || sources != 1) {
        fprintf(stderr, "autocalib run: --model and one of --input, --image_source, --lmdb_path, "
                        "--idx_images are required (see --help)\n");
        return 2;
    }
    if (o.threads < 0 || o.test_iterations < 0) {
        fprintf(stderr, "autocalib run: --threads and --test_iterations must be >= 0\n");
        return 2;
    }
    if ((user_pp || template_name) && o.input) {
        fprintf(stderr, "autocalib run: preprocessing applies to images, not to --input arrays\n");
        return 2;
    }
    if (ac_preproc_resolve(template_name, user_pp, &o.preprocess, &err)) {
        fprintf(stderr, "autocalib run: --image_data_preproccess: %s\n", err.msg);
        return 2;
    }
    if (o.input ? run_npy(&o, &err) : run_dataset(&o, &err))
        return ac_cli_fail("run", err.msg);
    return 0;
}
