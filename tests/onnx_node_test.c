/* ONNX backend node-test conformance runner.
 *
 *   onnx_node_test DATA_DIR LIST_FILE [-v] [--all]
 *   onnx_node_test DATA_DIR --tests NAME...      (report each, for maintaining LIST_FILE)
 *
 * DATA_DIR holds test_NAME/model.onnx + test_data_set_N/{input,output}_M.pb (Debian
 * package libonnx-testdata: /usr/share/libonnx-testdata/data/node). LIST_FILE has
 * one line per test: "NAME run" or "NAME exclude REASON". Every "run" test is
 * loaded with the ONNX importer (shapes from its inputs), executed with the fp32
 * executor and compared with the expected outputs: floats within
 * |got - want| <= ATOL + RTOL * |want|, integers and bools exactly, shapes and
 * dtypes exactly. With --all the excluded tests are tried too, and those that
 * now pass are reported. Exit 0 when every "run" test passes, 1 otherwise, 77
 * (ctest SKIP) when DATA_DIR is absent. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_exec.h"
#include "ac_onnx.h"

#define ATOL 1e-4
#define RTOL 1e-3
#define MAX_IO 16
#define MAX_TESTS 4096

typedef struct {
    char name[128];
    int run;            /* 1: run, 0: excluded */
    char reason[256];
} list_entry;

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void free_tensors(ac_onnx_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        ac_onnx_tensor_free(&t[i]);
}

/* Reads prefix_0.pb, prefix_1.pb, ... from dir; returns the count or -1. */
static int read_pbs(const char *dir, const char *prefix, ac_onnx_tensor *out, ac_err *err)
{
    int n = 0;
    for (; n < MAX_IO; n++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        if (!is_file(path))
            break;
        if (ac_onnx_load_tensor_pb(path, &out[n], err)) {
            free_tensors(out, n);
            return -1;
        }
    }
    return n;
}

static void dims_str(char *buf, size_t cap, int ndim, const int64_t *dims)
{
    size_t u = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && u < cap; i++)
        u += (size_t)snprintf(buf + u, cap - u, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (u < cap)
        snprintf(buf + u, cap - u, "]");
}

static double elem_as_double(ac_dtype dt, const void *p, int64_t i)
{
    switch (dt) {
    case AC_DT_F32: return ((const float *)p)[i];
    case AC_DT_F64: return ((const double *)p)[i];
    default: return 0;
    }
}

/* 0 when got matches want, else fills msg. */
static int compare(const ac_tensor *t, const void *got, const ac_onnx_tensor *want, char *msg,
                   size_t cap)
{
    char a[128], b[128];
    if (t->dtype != want->dtype) {
        snprintf(msg, cap, "output '%s': dtype %s, expected %s", t->name, ac_dtype_name(t->dtype),
                 ac_dtype_name(want->dtype));
        return 1;
    }
    int same = t->ndim == want->ndim;
    for (int i = 0; same && i < t->ndim; i++)
        same = t->dims[i] == want->dims[i];
    if (!same) {
        dims_str(a, sizeof a, t->ndim, t->dims);
        dims_str(b, sizeof b, want->ndim, want->dims);
        snprintf(msg, cap, "output '%s': shape %s, expected %s", t->name, a, b);
        return 1;
    }
    int64_t n = ac_tensor_numel(t);
    if (n > 0 && !got) {
        snprintf(msg, cap, "output '%s': no buffer after the run", t->name);
        return 1;
    }
    if (t->dtype == AC_DT_F32 || t->dtype == AC_DT_F64) {
        for (int64_t i = 0; i < n; i++) {
            double g = elem_as_double(t->dtype, got, i), w = elem_as_double(t->dtype, want->data, i);
            if (isnan(w) && isnan(g))
                continue;
            if (isinf(w) && g == w)
                continue;
            if (!(fabs(g - w) <= ATOL + RTOL * fabs(w))) {
                snprintf(msg, cap, "output '%s': element %lld is %.9g, expected %.9g", t->name,
                         (long long)i, g, w);
                return 1;
            }
        }
        return 0;
    }
    size_t es = ac_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) {
        if (memcmp((const char *)got + i * es, (const char *)want->data + i * es, es) != 0) {
            snprintf(msg, cap, "output '%s' (%s): element %lld differs", t->name,
                     ac_dtype_name(t->dtype), (long long)i);
            return 1;
        }
    }
    return 0;
}

/* Input slots whose values decide output shapes: the project compiles static
 * graphs, so these must be constants (the node tests feed them as inputs). */
static const struct {
    ac_op op;
    unsigned slots; /* bit i: input i */
} shape_slots[] = {
    {AC_OP_RESHAPE, 1u << 1},  {AC_OP_SLICE, 0x1eu},   {AC_OP_SQUEEZE, 1u << 1},
    {AC_OP_UNSQUEEZE, 1u << 1}, {AC_OP_PAD, 0x6u},      {AC_OP_RESIZE, 0xeu},
    {AC_OP_UPSAMPLE, 1u << 1}, {AC_OP_SPLIT, 1u << 1}, {AC_OP_CONSTANT_OF_SHAPE, 1u},
    {AC_OP_DROPOUT, 0x6u},
};

/* Marks in bind[] the test inputs that feed a shape slot (graph input order =
 * data set input order). Loads the model once without shape inference. */
static int shape_inputs(const char *model_path, const ac_onnx_tensor *in, int nin, int *bind,
                        char *msg, size_t cap)
{
    ac_onnx_shape shapes[MAX_IO];
    for (int i = 0; i < nin; i++) {
        memset(&shapes[i], 0, sizeof shapes[i]);
        shapes[i].ndim = in[i].ndim;
        memcpy(shapes[i].dims, in[i].dims, sizeof in[i].dims);
        bind[i] = 0;
    }
    ac_onnx_options opt = {.nshapes = nin, .shapes = shapes, .skip_shape_inference = 1};
    ac_err err;
    ac_graph *g = ac_onnx_load(model_path, &opt, &err);
    if (!g) {
        snprintf(msg, cap, "load: %.900s", err.msg);
        return 1;
    }
    for (int k = 0; k < g->nnodes; k++) {
        const ac_node *n = &g->nodes[k];
        for (size_t s = 0; s < sizeof shape_slots / sizeof shape_slots[0]; s++) {
            if (shape_slots[s].op != n->op)
                continue;
            for (int j = 0; j < n->ninputs && j < 32; j++) {
                if (!(shape_slots[s].slots & (1u << j)) || n->inputs[j] < 0)
                    continue;
                for (int i = 0; i < g->ninputs && i < nin; i++)
                    if (g->inputs[i] == n->inputs[j])
                        bind[i] = 1;
            }
        }
    }
    /* Bound values are matched by the model's input names. */
    for (int i = 0; i < g->ninputs && i < nin; i++)
        snprintf(((ac_onnx_tensor *)in)[i].name, sizeof in[i].name, "%s", g->tensors[g->inputs[i]].name);
    ac_graph_destroy(&g);
    return 0;
}

/* Runs one data set; 0 on success, else msg says why. */
static int run_data_set(const char *model_path, const char *set_dir, char *msg, size_t cap)
{
    ac_onnx_tensor in[MAX_IO], out[MAX_IO];
    ac_err err;
    ac_err_clear(&err);
    int nin = read_pbs(set_dir, "input", in, &err);
    if (nin < 0) {
        snprintf(msg, cap, "reading inputs: %.900s", err.msg);
        return 1;
    }
    int nout = read_pbs(set_dir, "output", out, &err);
    if (nout < 0) {
        free_tensors(in, nin);
        snprintf(msg, cap, "reading outputs: %.900s", err.msg);
        return 1;
    }
    ac_exec *e = NULL;
    ac_graph *g = NULL;
    int rc = 1;
    int bind[MAX_IO];
    if (shape_inputs(model_path, in, nin, bind, msg, cap))
        goto done;
    /* Shape-deciding inputs become constants holding the test's values; the
     * others keep their shapes from the data, as --input_data_shape would. */
    ac_onnx_shape shapes[MAX_IO];
    ac_onnx_tensor bound[MAX_IO];
    int nshapes = 0, nbound = 0, fed[MAX_IO];
    for (int i = 0; i < nin; i++) {
        if (bind[i]) {
            bound[nbound++] = in[i];
            continue;
        }
        memset(&shapes[nshapes], 0, sizeof shapes[nshapes]);
        shapes[nshapes].ndim = in[i].ndim;
        memcpy(shapes[nshapes].dims, in[i].dims, sizeof in[i].dims);
        fed[nshapes++] = i;
    }
    ac_onnx_options opt = {.nshapes = nshapes, .shapes = shapes, .nbound = nbound, .bound = bound};
    g = ac_onnx_load(model_path, &opt, &err);
    if (!g) {
        snprintf(msg, cap, "load: %.900s", err.msg);
        goto done;
    }
    if (g->ninputs != nshapes || g->noutputs != nout) {
        snprintf(msg, cap, "model has %d inputs / %d outputs, data set has %d / %d", g->ninputs,
                 g->noutputs, nshapes, nout);
        goto done;
    }
    const void *ptrs[MAX_IO];
    for (int i = 0; i < nshapes; i++) {
        const ac_tensor *t = &g->tensors[g->inputs[i]];
        const ac_onnx_tensor *v = &in[fed[i]];
        if (t->dtype != v->dtype) {
            snprintf(msg, cap, "input '%s': model dtype %s, data %s", t->name, ac_dtype_name(t->dtype),
                     ac_dtype_name(v->dtype));
            goto done;
        }
        static const uint8_t empty[8];
        ptrs[i] = v->data ? v->data : empty; /* a zero-size input still needs a pointer */
    }
    e = ac_exec_new(g, &err);
    if (!e) {
        snprintf(msg, cap, "executor: %.900s", err.msg);
        goto done;
    }
    if (ac_exec_run(e, ptrs, &err)) {
        snprintf(msg, cap, "run: %.900s", err.msg);
        goto done;
    }
    for (int i = 0; i < nout; i++) {
        const ac_tensor *t = &g->tensors[g->outputs[i]];
        if (compare(t, ac_exec_tensor(e, g->outputs[i]), &out[i], msg, cap))
            goto done;
    }
    rc = 0;
done:
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
    free_tensors(in, nin);
    free_tensors(out, nout);
    return rc;
}

static int run_test(const char *data_dir, const char *name, char *msg, size_t cap)
{
    char dir[1024], model[1100], set[1200];
    snprintf(dir, sizeof dir, "%.800s/%.127s", data_dir, name);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    if (!is_file(model)) {
        snprintf(msg, cap, "%s does not exist", model);
        return 1;
    }
    int sets = 0;
    for (int k = 0;; k++) {
        snprintf(set, sizeof set, "%s/test_data_set_%d", dir, k);
        if (!is_dir(set))
            break;
        char m[1024];
        if (run_data_set(model, set, m, sizeof m)) {
            snprintf(msg, cap, "test_data_set_%d: %.1000s", k, m);
            return 1;
        }
        sets++;
    }
    if (!sets) {
        snprintf(msg, cap, "no test_data_set_* in %s", dir);
        return 1;
    }
    return 0;
}

static int read_list(const char *path, list_entry *list, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "onnx_node_test: cannot open %s\n", path);
        return -1;
    }
    char line[1024];
    int lineno = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char name[128], status[16];
        int used = 0;
        if (sscanf(p, "%127s %15s %n", name, status, &used) < 2 || *n == MAX_TESTS) {
            fprintf(stderr, "%s:%d: expected 'NAME run' or 'NAME exclude REASON'\n", path, lineno);
            fclose(f);
            return -1;
        }
        list_entry *e = &list[(*n)++];
        snprintf(e->name, sizeof e->name, "%s", name);
        char *reason = p + used;
        reason[strcspn(reason, "\n")] = '\0';
        snprintf(e->reason, sizeof e->reason, "%s", reason);
        if (strcmp(status, "run") == 0) {
            e->run = 1;
        } else if (strcmp(status, "exclude") == 0 && *reason) {
            e->run = 0;
        } else {
            fprintf(stderr, "%s:%d: status must be 'run' or 'exclude REASON'\n", path, lineno);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA_DIR LIST_FILE [-v] [--all]\n"
                        "       %s DATA_DIR --tests NAME...\n", argv[0], argv[0]);
        return 2;
    }
    const char *data_dir = argv[1];
    if (!is_dir(data_dir)) {
        printf("SKIP: ONNX node test data not found at %s (Debian package libonnx-testdata)\n",
               data_dir);
        return 77;
    }
    char msg[2048];
    if (strcmp(argv[2], "--tests") == 0) {
        int failed = 0;
        for (int i = 3; i < argc; i++) {
            int rc = run_test(data_dir, argv[i], msg, sizeof msg);
            printf("%s %s%s%s\n", argv[i], rc ? "FAIL" : "PASS", rc ? " " : "", rc ? msg : "");
            failed += rc != 0;
        }
        return failed ? 1 : 0;
    }
    int verbose = 0, all = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--all") == 0)
            all = 1;
    }
    static list_entry list[MAX_TESTS];
    int n;
    if (read_list(argv[2], list, &n))
        return 1;
    int run = 0, passed = 0, excluded = 0, missing = 0, now_passing = 0;
    for (int i = 0; i < n; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%.800s/%.127s", data_dir, list[i].name);
        if (!is_dir(dir)) {
            printf("MISSING %s: listed but not in %s\n", list[i].name, data_dir);
            missing++;
            continue;
        }
        if (!list[i].run) {
            excluded++;
            if (all && run_test(data_dir, list[i].name, msg, sizeof msg) == 0) {
                printf("NOW PASSING %s (excluded: %s)\n", list[i].name, list[i].reason);
                now_passing++;
            }
            continue;
        }
        run++;
        if (run_test(data_dir, list[i].name, msg, sizeof msg)) {
            printf("FAIL %s: %s\n", list[i].name, msg);
        } else {
            passed++;
            if (verbose)
                printf("ok   %s\n", list[i].name);
        }
    }
    printf("onnx node tests: %d run, %d passed, %d failed, %d excluded%s", run, passed, run - passed,
           excluded, missing ? "" : "\n");
    if (missing)
        printf(", %d listed tests missing from the data\n", missing);
    if (all)
        printf("%d excluded tests pass now\n", now_passing);
    return passed == run && !missing ? 0 : 1;
}
