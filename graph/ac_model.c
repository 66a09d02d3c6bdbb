#include "ac_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_onnx.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

ac_model_format ac_model_detect(const char *path)
{
    if (ends_with(path, ".onnx"))
        return AC_FORMAT_ONNX;
    /* No known extension: an ONNX ModelProto starts with field 1 (ir_version, varint): 0x08. */
    FILE *f = fopen(path, "rb");
    if (!f)
        return AC_FORMAT_UNKNOWN;
    int c = fgetc(f);
    fclose(f);
    return c == 0x08 ? AC_FORMAT_ONNX : AC_FORMAT_UNKNOWN;
}

const char *ac_model_format_name(ac_model_format f)
{
    return f == AC_FORMAT_ONNX ? "onnx" : "unknown";
}

ac_graph *ac_model_load(const char *path, const ac_model_options *opt, ac_passes_stats *stats,
                        ac_err *err)
{
    ac_model_options none = {0};
    if (!opt)
        opt = &none;
    ac_onnx_shape shapes[AC_ONNX_MAX_SHAPES];
    int nshapes = 0;
    if (opt->input_shapes && *opt->input_shapes &&
        ac_onnx_parse_shapes(opt->input_shapes, shapes, AC_ONNX_MAX_SHAPES, &nshapes, err)) {
        ac_err_prefix(err, "--input_data_shape '%s': ", opt->input_shapes);
        return NULL;
    }
    ac_graph *g = NULL;
    switch (ac_model_detect(path)) {
    case AC_FORMAT_ONNX: {
        ac_onnx_options o = {.nshapes = nshapes, .shapes = shapes};
        g = ac_onnx_load(path, &o, err);
        break;
    }
    default: {
        FILE *f = fopen(path, "rb");
        if (!f)
            ac_err_set(err, AC_E_IO, "%s: cannot open the model file", path);
        else {
            fclose(f);
            ac_err_set(err, AC_E_UNSUPPORTED,
                       "%s: unknown model format (supported: ONNX .onnx)", path);
        }
        return NULL;
    }
    }
    if (!g)
        return NULL;
    if (!opt->no_simplify && ac_graph_simplify(g, stats, err)) {
        ac_err_prefix(err, "%s: ", path);
        ac_graph_destroy(&g);
        return NULL;
    }
    return g;
}

int64_t ac_graph_param_count(const ac_graph *g)
{
    char *seen = calloc((size_t)(g->ntensors ? g->ntensors : 1), 1);
    if (!seen)
        return -1;
    int64_t total = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].ninputs; j++) {
            int t = g->nodes[i].inputs[j];
            if (t < 0 || seen[t] || !g->tensors[t].data || g->tensors[t].dtype != AC_DT_F32)
                continue;
            seen[t] = 1;
            total += ac_tensor_numel(&g->tensors[t]);
        }
    free(seen);
    return total;
}
