/* autocalib run: fp32 inference of a model on .npy inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_exec.h"
#include "ac_model.h"
#include "ac_npy.h"

#define MAX_INPUTS 16

typedef struct {
    const char *model, *weights, *shapes, *input, *output, *dump_dir;
    int threads;
    bool help;
} run_options;

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

static int write_tensor(const ac_graph *g, const ac_exec *e, int t, const char *path, ac_err *err)
{
    const ac_tensor *ts = &g->tensors[t];
    const char *descr = npy_descr(ts->dtype);
    if (!descr)
        return ac_err_set(err, AC_E_UNSUPPORTED, "tensor '%s': dtype %s cannot be written as .npy",
                          ts->name, ac_dtype_name(ts->dtype));
    return ac_npy_write(path, descr, ts->ndim, ts->dims, ac_exec_tensor(e, t), err);
}

/* OUT.npy for the first output, OUT.<name>.npy for the others. */
static int write_outputs(const ac_graph *g, const ac_exec *e, const char *out, ac_err *err)
{
    size_t len = strlen(out);
    size_t stem = len > 4 && !strcmp(out + len - 4, ".npy") ? len - 4 : len;
    for (int i = 0; i < g->noutputs; i++) {
        char path[4096], safe[512];
        if (i == 0) {
            snprintf(path, sizeof path, "%.*s.npy", (int)stem, out);
        } else {
            file_safe(safe, sizeof safe, g->tensors[g->outputs[i]].name);
            snprintf(path, sizeof path, "%.*s.%s.npy", (int)stem, out, safe);
        }
        if (write_tensor(g, e, g->outputs[i], path, err))
            return -1;
        printf("wrote %s (%s)\n", path, g->tensors[g->outputs[i]].name);
    }
    return 0;
}

static int dump_tensors(const ac_graph *g, const ac_exec *e, const char *dir, ac_err *err)
{
    if (mkdir(dir, 0777) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return ac_err_set(err, AC_E_IO, "--dump_tensors %s: cannot create the folder", dir);
    }
    int count = 0;
    for (int t = 0; t < g->ntensors; t++) {
        const ac_tensor *ts = &g->tensors[t];
        if (ts->data || ts->ndim < 0 || !ac_exec_tensor(e, t))
            continue;
        char path[4096], safe[512];
        file_safe(safe, sizeof safe, ts->name);
        snprintf(path, sizeof path, "%s/%s.npy", dir, safe);
        if (write_tensor(g, e, t, path, err))
            return -1;
        count++;
    }
    printf("dumped %d tensors to %s\n", count, dir);
    return 0;
}

/* Classifier-looking outputs ([N, C] floats) get a top-5 line per sample. */
static void print_top5(const ac_graph *g, const ac_exec *e)
{
    for (int o = 0; o < g->noutputs; o++) {
        const ac_tensor *t = &g->tensors[g->outputs[o]];
        if (t->dtype != AC_DT_F32 || ac_tensor_numel(t) <= 0)
            continue;
        int64_t n = t->dims[0], c = ac_tensor_numel(t) / (t->ndim ? t->dims[0] : 1);
        if (t->ndim < 1 || n <= 0)
            continue;
        const float *y = ac_exec_tensor(e, g->outputs[o]);
        printf("output '%s' %s:\n", t->name, ac_dtype_name(t->dtype));
        for (int64_t s = 0; s < n && s < 64; s++) {
            int best[5] = {-1, -1, -1, -1, -1};
            for (int64_t k = 0; k < c; k++)
                for (int r = 0; r < 5 && r < c; r++)
                    if (best[r] < 0 || y[s * c + k] > y[s * c + best[r]]) {
                        for (int q = 4; q > r; q--)
                            best[q] = best[q - 1];
                        best[r] = (int)k;
                        break;
                    }
            printf("  sample %lld top-5:", (long long)s);
            for (int r = 0; r < 5 && r < c; r++)
                printf(" %d (%.4g)", best[r], y[s * c + best[r]]);
            printf("\n");
        }
    }
}

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

static int run_model(const run_options *o, ac_err *err)
{
    char *list = strdup(o->input);
    char *files[MAX_INPUTS];
    int nfiles = list ? split_list(list, files, MAX_INPUTS) : 0;
    ac_npy arrs[MAX_INPUTS];
    memset(arrs, 0, sizeof arrs);
    ac_graph *g = NULL;
    ac_exec *e = NULL;
    char *auto_shapes = NULL;
    int rc = -1;
    for (int i = 0; i < nfiles; i++)
        if (ac_npy_read(files[i], &arrs[i], err))
            goto done;
    if (!o->shapes)
        auto_shapes = shapes_from_npy(arrs, nfiles);
    ac_model_options mo = {.weights = o->weights, .input_shapes = o->shapes ? o->shapes : auto_shapes};
    g = ac_model_load(o->model, &mo, NULL, err);
    if (!g)
        goto done;
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
    e = ac_exec_new(g, err);
    if (!e)
        goto done;
    ac_exec_set_threads(e, o->threads);
    if (ac_exec_run(e, ins, err))
        goto done;
    if (o->output && write_outputs(g, e, o->output, err))
        goto done;
    if (!o->output)
        print_top5(g, e);
    if (o->dump_dir && dump_tensors(g, e, o->dump_dir, err))
        goto done;
    rc = 0;
done:
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
    for (int i = 0; i < nfiles; i++)
        ac_npy_free(&arrs[i]);
    free(auto_shapes);
    free(list);
    return rc;
}

int ac_cmd_run(int argc, char **argv)
{
    run_options o = {0};
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &o.model, "model file"},
        {"weights", NULL, AC_ARG_STRING, &o.weights, "weights file of two-file formats"},
        {"input_data_shape", NULL, AC_ARG_STRING, &o.shapes,
         "input shape(s), e.g. '(1,3,224,224)'; default: the shapes of the --input arrays"},
        {"input", NULL, AC_ARG_STRING, &o.input, "input .npy file(s), comma-separated, one per model input"},
        {"output", NULL, AC_ARG_STRING, &o.output,
         "OUT.npy: first output to OUT.npy, others to OUT.<output_name>.npy (default: print top-5)"},
        {"dump_tensors", NULL, AC_ARG_STRING, &o.dump_dir, "write every tensor of the run as DIR/<tensor>.npy"},
        {"threads", NULL, AC_ARG_INT, &o.threads, "OpenMP threads (default: all cores)"},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, NULL, &o.help, &err)) {
        fprintf(stderr, "autocalib run: %s\n", err.msg);
        return 2;
    }
    if (o.help) {
        ac_args_print_help("usage: autocalib run --model MODEL --input X.npy [--output Y.npy]", specs, nspecs);
        return 0;
    }
    if (!o.model || !o.input) {
        fprintf(stderr, "autocalib run: --model and --input are required (see --help)\n");
        return 2;
    }
    if (o.threads < 0) {
        fprintf(stderr, "autocalib run: --threads %d must be >= 0\n", o.threads);
        return 2;
    }
    if (run_model(&o, &err))
        return ac_cli_fail("run", err.msg);
    return 0;
}
