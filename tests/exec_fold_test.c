/* Conv + activation folds of the shared-buffer executor (graph/ac_exec.c) on
 * real models and data: for each model given, 20 Fashion-MNIST test images at
 * batch 10 through
 *   - the executor with a buffer per tensor (no folds),
 *   - the shared executor (folds on; it must find some),
 *   - the shared executor with a node hook (folds off, activations in place),
 * at 1, 2 and 3 threads: every graph output must be the same bytes.
 * Skips (77) when the dataset package is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_check.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_model.h"

#define BATCH 10
#define IMAGES 20

static int no_op_hook(void *ctx, const ac_exec *e, int node, int ith, int nth)
{
    (void)ctx, (void)e, (void)node, (void)ith, (void)nth;
    return 0;
}

/* The first graph output of e after a run on x, copied. */
static float *run_copy(const ac_graph *g, ac_exec *e, const float *x, size_t *n)
{
    ac_err err = {0};
    const void *in[1] = {x};
    CHECK(ac_exec_run(e, in, &err) == 0, "%s", err.msg);
    *n = (size_t)ac_tensor_numel(&g->tensors[g->outputs[0]]);
    float *out = malloc(*n * sizeof *out);
    memcpy(out, ac_exec_tensor(e, g->outputs[0]), *n * sizeof *out);
    return out;
}

static void check_model(const char *model, ac_dataset *ds)
{
    ac_err err = {0};
    ac_model_options mo = {.input_shapes = "(10,1,28,28)"};
    ac_graph *g = ac_model_load(model, &mo, NULL, &err);
    CHECK(g != NULL, "%s: %s", model, err.msg);
    if (!g)
        return;
    ac_exec *plain = ac_exec_new(g, &err), *shared = ac_exec_new_shared(g, &err), *hooked = ac_exec_new_shared(g, &err);
    CHECK(plain && shared && hooked, "%s", err.msg);
    CHECK(ac_exec_folds(plain) == 0, "%s: an executor with a buffer per tensor folded", model);
    CHECK(ac_exec_folds(shared) > 0, "%s: no conv + activation fold found", model);
    ac_exec_set_node_hook(hooked, no_op_hook, NULL);
    float *x = malloc(sizeof(float) * BATCH * 28 * 28);
    for (int first = 0; plain && shared && hooked && first < IMAGES; first += BATCH) {
        CHECK(ac_dataset_read(ds, 0, first, BATCH, x, &err) == 0, "%s", err.msg);
        for (int nth = 1; nth <= 3; nth++) {
            ac_exec_set_threads(plain, nth);
            ac_exec_set_threads(shared, nth);
            ac_exec_set_threads(hooked, nth);
            size_t n1, n2, n3;
            float *a = run_copy(g, plain, x, &n1), *b = run_copy(g, shared, x, &n2), *c = run_copy(g, hooked, x, &n3);
            CHECK(n1 == n2 && !memcmp(a, b, n1 * sizeof *a), "%s, %d thread(s): folded outputs differ", model, nth);
            CHECK(n1 == n3 && !memcmp(a, c, n1 * sizeof *a), "%s, %d thread(s): in-place activations differ", model,
                  nth);
            free(a), free(b), free(c);
        }
    }
    printf("exec_fold_test: %s: %d fold(s)\n", model, shared ? ac_exec_folds(shared) : -1);
    free(x);
    ac_exec_destroy(&plain);
    ac_exec_destroy(&shared);
    ac_exec_destroy(&hooked);
    ac_graph_destroy(&g);
}

int main(int argc, char **argv)
{
    const char *images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    if (access(images, R_OK) != 0) {
        printf("exec_fold_test: SKIP: %s is absent (Debian package dataset-fashion-mnist)\n", images);
        return 77;
    }
    ac_err err = {0};
    ac_dataset_opts o = {.preprocess = "mean_value=72.93,scale=0.011109", .channels = 1};
    ac_dataset *ds = ac_dataset_open_idx(images, NULL, &o, &err);
    if (!ds) {
        fprintf(stderr, "exec_fold_test: %s\n", err.msg);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        check_model(argv[i], ds);
    ac_dataset_destroy(&ds);
    if (failures) {
        fprintf(stderr, "exec_fold_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("exec_fold_test: all passed\n");
    return 0;
}
