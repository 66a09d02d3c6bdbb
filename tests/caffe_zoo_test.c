/* caffe_zoo_test ZOO: the zoo's UltraFace RFB-320 in Caffe form
 * (faces/caffe/RFB-320.prototxt + .caffemodel): the bytes a farm worker gets
 * (ac_model_blob: the import serialized as ONNX) load back into a graph that
 * computes exactly what the direct import computes, after the same
 * simplification passes. Exits 77 (skipped) when the zoo is absent. The
 * comparison with the ONNX twin is tests/python/test_caffe.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_exec.h"
#include "ac_model.h"
#include "ac_onnx.h"
#include "ac_passes.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: caffe_zoo_test ZOO_DIR\n");
        return 2;
    }
    char proto[4096], model[4096];
    snprintf(proto, sizeof proto, "%s/faces/caffe/RFB-320.prototxt", argv[1]);
    snprintf(model, sizeof model, "%s/faces/caffe/RFB-320.caffemodel", argv[1]);
    if (access(proto, R_OK) || access(model, R_OK)) {
        printf("caffe_zoo_test: %s or its caffemodel are absent, skipped\n", proto);
        return 77;
    }
    ac_err err = {0};
    ac_model_options o = {.weights = model};
    ac_graph *g = ac_model_load(proto, &o, NULL, &err);
    uint8_t *blob = NULL;
    size_t len = 0;
    ac_graph *w = NULL;
    if (g && ac_model_blob(proto, &o, &blob, &len, &err) == 0 &&
        (w = ac_onnx_load_buffer(blob, len, "model blob", NULL, &err)) && ac_graph_simplify(w, NULL, &err))
        ac_graph_destroy(&w);
    if (!g || !w) {
        fprintf(stderr, "FAIL caffe_zoo_test: %s\n", err.msg);
        free(blob);
        ac_graph_destroy(&g);
        return 1;
    }
    int failures = 0;
    if (w->nnodes != g->nnodes || w->noutputs != g->noutputs) {
        fprintf(stderr, "FAIL: %d nodes / %d outputs vs %d / %d\n", w->nnodes, w->noutputs, g->nnodes, g->noutputs);
        failures++;
    }
    size_t n = 3 * 240 * 320;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1.f;
    const void *ins[1] = {x};
    ac_exec *eg = ac_exec_new(g, &err), *ew = ac_exec_new(w, &err);
    if (!eg || !ew || ac_exec_run(eg, ins, &err) || ac_exec_run(ew, ins, &err)) {
        fprintf(stderr, "FAIL run: %s\n", err.msg);
        failures++;
    } else
        for (int k = 0; k < g->noutputs && k < w->noutputs; k++) {
            size_t m = ac_tensor_bytes(&g->tensors[g->outputs[k]]);
            if (strcmp(g->tensors[g->outputs[k]].name, w->tensors[w->outputs[k]].name) ||
                m != ac_tensor_bytes(&w->tensors[w->outputs[k]]) ||
                memcmp(ac_exec_tensor(eg, g->outputs[k]), ac_exec_tensor(ew, w->outputs[k]), m)) {
                fprintf(stderr, "FAIL: output %d (%s) differs between the import and the worker's ONNX form\n", k,
                        g->tensors[g->outputs[k]].name);
                failures++;
            }
        }
    ac_exec_destroy(&eg);
    ac_exec_destroy(&ew);
    free(x);
    free(blob);
    ac_graph_destroy(&g);
    ac_graph_destroy(&w);
    if (failures)
        return 1;
    printf("caffe_zoo_test: all passed\n");
    return 0;
}
