/* Loads every ONNX model of the shared zoo (fmnist/, imagenet/, faces/) with
 * the importer and shape inference, and checks that every tensor the nodes use
 * has a known dtype and shape afterwards.
 *   onnx_zoo_test ZOO_DIR       exit 77 (ctest SKIP) when ZOO_DIR is absent */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_onnx.h"

static int check_model(const char *path)
{
    ac_err err;
    ac_graph *g = ac_onnx_load(path, NULL, &err);
    if (!g) {
        printf("FAIL %s: %s\n", path, err.msg);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < g->nnodes && !bad; i++) {
        const ac_node *n = &g->nodes[i];
        for (int j = 0; j < n->noutputs && !bad; j++) {
            int t = n->outputs[j];
            if (t >= 0 && (g->tensors[t].ndim < 0 || g->tensors[t].dtype == AC_DT_UNDEFINED)) {
                printf("FAIL %s: node '%s' (%s) output '%s' has no shape or dtype after inference\n",
                       path, n->name, n->op_type, g->tensors[t].name);
                bad = 1;
            }
        }
    }
    if (!bad) {
        const ac_tensor *in = &g->tensors[g->inputs[0]];
        printf("ok   %s: %d inputs (first '%s' %dD, dim0 %lld), %d outputs, %d nodes, opset %d\n", path,
               g->ninputs, in->name, in->ndim, (long long)(in->ndim > 0 ? in->dims[0] : 0),
               g->noutputs, g->nnodes, g->opset);
    }
    ac_graph_destroy(&g);
    return bad;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *zoo = argc > 1 ? argv[1] : "/work/shared/zoo";
    struct stat st;
    if (stat(zoo, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: model zoo not found at %s\n", zoo);
        return 77;
    }
    static const char *subdirs[] = {"fmnist", "imagenet", "faces"};
    int models = 0, failed = 0;
    for (size_t s = 0; s < sizeof subdirs / sizeof subdirs[0]; s++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", zoo, subdirs[s]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        char *names[256];
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < 256) {
            size_t len = strlen(de->d_name);
            if (len > 5 && strcmp(de->d_name + len - 5, ".onnx") == 0)
                names[n++] = strdup(de->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof names[0], cmp_str);
        for (int i = 0; i < n; i++) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            failed += check_model(path);
            models++;
            free(names[i]);
        }
    }
    if (!models) {
        printf("SKIP: no .onnx models under %s/{fmnist,imagenet,faces}\n", zoo);
        return 77;
    }
    printf("onnx zoo: %d models, %d failed\n", models, failed);
    return failed ? 1 : 0;
}
