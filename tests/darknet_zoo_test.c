/* darknet_zoo_test ZOO: the zoo's Yolo-Fastest 1.1 (darknet/yolo-fastest-1.1.cfg +
 * .weights) through the Darknet importer:
 * - its YOLO heads (anchors, masks, classes, output order) equal the
 *   detection decoder's yolo_fastest preset (metrics/ac_detect.h), which the
 *   preset's users rely on;
 * - the bytes a farm worker gets (ac_model_blob: the import serialized as
 *   ONNX) load back into a graph that computes exactly what the direct
 *   import computes, batch 2, after the same simplification passes.
 * Exits 77 (skipped) when the zoo is absent. The comparison with darknet
 * itself is tests/python/test_darknet.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_darknet.h"
#include "ac_detect.h"
#include "ac_exec.h"
#include "ac_model.h"
#include "ac_passes.h"
#include "ac_check.h"

static void check_heads_match_preset(const ac_graph *g)
{
    ac_darknet_head h[4];
    int n = 0;
    ac_err err = {0};
    CHECK(ac_darknet_heads(g, h, 4, &n, &err) == 0 && n == 2, "heads: %s (n %d)", err.msg, n);
    if (n != 2)
        return;
    ac_detect_config c;
    ac_detect_config_yolo_fastest(&c, 0, 1);
    const ac_tensor *in = &g->tensors[g->inputs[0]];
    CHECK(in->dims[3] == c.in_w && in->dims[2] == c.in_h, "input %lldx%lld", (long long)in->dims[3],
          (long long)in->dims[2]);
    for (int k = 0; k < 2; k++) {
        CHECK(h[k].kind == AC_DARKNET_YOLO && h[k].classes == c.nclasses && h[k].output == c.head_outputs[k],
              "head %d: kind %d classes %d output %d", k, h[k].kind, h[k].classes, h[k].output);
        CHECK(h[k].nanchors == c.nanchors && h[k].nmask == c.head_nmask[k] && h[k].scale_xy == c.scale_xy &&
                  !h[k].new_coords,
              "head %d: %d anchors, %d in the mask", k, h[k].nanchors, h[k].nmask);
        for (int a = 0; a < h[k].nanchors && a < c.nanchors; a++)
            CHECK(h[k].anchors[a][0] == c.anchors[a][0] && h[k].anchors[a][1] == c.anchors[a][1], "anchor %d", a);
        for (int a = 0; a < h[k].nmask && a < c.head_nmask[k]; a++)
            CHECK(h[k].mask[a] == c.head_mask[k][a], "head %d mask %d", k, a);
    }
}

static float *run(const ac_graph *g, const float *x, int out)
{
    ac_err err = {0};
    ac_exec *e = ac_exec_new(g, &err);
    const void *ins[1] = {x};
    float *y = NULL;
    if (e && ac_exec_run(e, ins, &err) == 0) {
        size_t n = ac_tensor_bytes(&g->tensors[g->outputs[out]]);
        y = malloc(n);
        memcpy(y, ac_exec_tensor(e, g->outputs[out]), n);
    }
    CHECK(y, "run: %s", err.msg);
    ac_exec_destroy(&e);
    return y;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: darknet_zoo_test ZOO_DIR\n");
        return 2;
    }
    char cfg[4096], weights[4096];
    snprintf(cfg, sizeof cfg, "%s/darknet/yolo-fastest-1.1.cfg", argv[1]);
    snprintf(weights, sizeof weights, "%s/darknet/yolo-fastest-1.1.weights", argv[1]);
    if (access(cfg, R_OK) || access(weights, R_OK)) {
        printf("darknet_zoo_test: %s or its weights are absent, skipped\n", cfg);
        return 77;
    }
    ac_err err = {0};
    ac_model_options o = {.weights = weights, .input_shapes = "(2,3,320,320)"};
    ac_graph *g = ac_model_load(cfg, &o, NULL, &err);
    CHECK(g, "load: %s", err.msg);
    uint8_t *blob = NULL;
    size_t len = 0;
    CHECK(ac_model_blob(cfg, &o, &blob, &len, &err) == 0, "blob: %s", err.msg);
    ac_onnx_shape sh = {.ndim = 4, .dims = {2, 3, 320, 320}};
    ac_onnx_options oo = {.nshapes = 1, .shapes = &sh};
    ac_graph *w = blob ? ac_onnx_load_buffer(blob, len, "model blob", &oo, &err) : NULL;
    CHECK(w && ac_graph_simplify(w, NULL, &err) == 0, "worker's graph: %s", err.msg);
    if (g && w) {
        check_heads_match_preset(g);
        check_heads_match_preset(w);
        CHECK(w->nnodes == g->nnodes, "%d vs %d nodes", w->nnodes, g->nnodes);
        size_t n = 2 * 3 * 320 * 320;
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
        for (int k = 0; k < 2; k++) {
            float *a = run(g, x, k), *b = run(w, x, k);
            size_t m = ac_tensor_bytes(&g->tensors[g->outputs[k]]);
            CHECK(a && b && m == ac_tensor_bytes(&w->tensors[w->outputs[k]]) && !memcmp(a, b, m),
                  "output %d differs between the import and the worker's ONNX form", k);
            free(a);
            free(b);
        }
        free(x);
    }
    free(blob);
    ac_graph_destroy(&g);
    ac_graph_destroy(&w);
    if (failures) {
        fprintf(stderr, "darknet_zoo_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("darknet_zoo_test: all passed\n");
    return 0;
}
