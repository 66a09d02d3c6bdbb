#include "ac_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_caffe.h"
#include "ac_darknet.h"
#include "ac_file.h"
#include "ac_onnx.h"
#include "ac_pytorch.h"
#include "ac_tf.h"
#include "ac_mxnet.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* A Darknet cfg: the first line that is not blank or a comment is a section header. */
static bool looks_like_cfg(FILE *f)
{
    int c;
    bool comment = false;
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n')
            comment = false;
        else if (comment || c == ' ' || c == '\t' || c == '\r')
            continue;
        else if (c == '#' || c == ';')
            comment = true;
        else
            return c == '[';
    }
    return false;
}

ac_model_format ac_model_detect(const char *path)
{
    if (ends_with(path, ".onnx"))
        return AC_FORMAT_ONNX;
    if (ends_with(path, ".cfg"))
        return AC_FORMAT_DARKNET;
    if (ends_with(path, ".prototxt"))
        return AC_FORMAT_CAFFE;
    if (ac_pytorch_is_model(path))
        return AC_FORMAT_PYTORCH;
    if (ends_with(path, ".pb"))
        return AC_FORMAT_TF;
    if (ends_with(path, ".json"))
        return AC_FORMAT_MXNET;
    FILE *f = fopen(path, "rb");
    if (!f)
        return AC_FORMAT_UNKNOWN;
    int c = fgetc(f);
    ac_model_format fmt = AC_FORMAT_UNKNOWN;
    if (c == 0x08)
        fmt = AC_FORMAT_ONNX;
    else if (c != EOF && ungetc(c, f) != EOF && looks_like_cfg(f))
        fmt = AC_FORMAT_DARKNET;
    fclose(f);
    return fmt;
}

const char *ac_model_format_name(ac_model_format f)
{
    switch (f) {
    case AC_FORMAT_ONNX: return "onnx";
    case AC_FORMAT_DARKNET: return "darknet";
    case AC_FORMAT_CAFFE: return "caffe";
    case AC_FORMAT_PYTORCH: return "pytorch";
    case AC_FORMAT_TF: return "tensorflow";
    case AC_FORMAT_MXNET: return "mxnet";
    default: return "unknown";
    }
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
    ac_model_format fmt = ac_model_detect(path);
    if ((fmt == AC_FORMAT_ONNX || fmt == AC_FORMAT_TF) && opt->weights) {
        ac_err_set(err, AC_E_INVALID, "%s: --weights belongs to two-file formats (Darknet, Caffe, MXNet); an ONNX or TensorFlow file holds its weights",
                   path);
        return NULL;
    }
    switch (fmt) {
    case AC_FORMAT_ONNX: {
        ac_onnx_options o = {.nshapes = nshapes, .shapes = shapes};
        g = ac_onnx_load(path, &o, err);
        break;
    }
    case AC_FORMAT_DARKNET: {
        if (!opt->weights) {
            ac_err_set(err, AC_E_INVALID, "%s: a Darknet cfg needs its weights file: --weights FILE.weights", path);
            return NULL;
        }
        if (nshapes > 1) {
            ac_err_set(err, AC_E_INVALID, "--input_data_shape '%s': a Darknet network has one input", opt->input_shapes);
            return NULL;
        }
        ac_darknet_options o = {.shape = nshapes ? &shapes[0] : NULL};
        g = ac_darknet_load(path, opt->weights, &o, err);
        break;
    }
    case AC_FORMAT_PYTORCH: {
        char *buf;
        size_t len;
        if (ac_pytorch_export_buffer(path, opt->weights, opt->input_shapes, &buf, &len, err))
            return NULL;
        ac_onnx_options o = {.nshapes = nshapes, .shapes = shapes};
        g = ac_onnx_load_buffer(buf, len, path, &o, err);
        free(buf);
        break;
    }
    case AC_FORMAT_CAFFE: {
        if (!opt->weights) {
            ac_err_set(err, AC_E_INVALID, "%s: a Caffe prototxt needs its weights file: --weights FILE.caffemodel", path);
            return NULL;
        }
        ac_caffe_options o = {.nshapes = nshapes, .shapes = shapes};
        g = ac_caffe_load(path, opt->weights, &o, err);
        break;
    }
    case AC_FORMAT_MXNET: {
        if (!opt->weights) {
            ac_err_set(err, AC_E_INVALID, "%s: an MXNet symbol needs its parameters: --weights FILE.params", path);
            return NULL;
        }
        ac_mxnet_options o = {.shapes = shapes, .nshapes = nshapes};
        g = ac_mxnet_load(path, opt->weights, &o, err);
        break;
    }
    case AC_FORMAT_TF: {
        ac_tf_options o = {.shapes = shapes, .nshapes = nshapes};
        g = ac_tf_load(path, &o, err);
        break;
    }
    default: {
        FILE *f = fopen(path, "rb");
        if (!f)
            ac_err_set(err, AC_E_IO, "%s: cannot open the model file", path);
        else {
            fclose(f);
            ac_err_set(err, AC_E_UNSUPPORTED,
                       "%s: unknown model format (supported: ONNX .onnx, Darknet .cfg + --weights, Caffe .prototxt + --weights, PyTorch .pt/.pth or module.py:Class, TensorFlow frozen .pb, MXNet -symbol.json + --weights .params)", path);
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

int ac_model_blob(const char *path, const ac_model_options *opt, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    if (ac_model_detect(path) == AC_FORMAT_ONNX)
        return ac_model_file_read(path, (size_t)2 << 30, "ONNX", (char **)buf, len, err);
    ac_model_options raw = {0};
    if (opt)
        raw = *opt;
    raw.no_simplify = true;
    ac_graph *g = ac_model_load(path, &raw, NULL, err);
    if (!g)
        return err ? (int)err->code : AC_E_INVALID;
    int rc = ac_onnx_save_buffer(g, buf, len, err);
    if (rc)
        ac_err_prefix(err, "%s: ", path);
    ac_graph_destroy(&g);
    return rc;
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
