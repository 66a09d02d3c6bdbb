/* ac_model: load a model file of any supported format into a ready graph:
 * import (the format is chosen by file type), shape inference, and the
 * simplification passes (BN folding, Identity/Dropout removal, ReLU6/SiLU
 * recognition, pruning). This is what the CLI and the workers call. */
#ifndef AC_MODEL_H
#define AC_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_graph.h"
#include "ac_passes.h"

typedef struct {
    const char *weights;          /* second file of two-file formats (Darknet .weights, Caffe .caffemodel), a PyTorch state dict */
    const char *input_shapes;     /* --input_data_shape string, NULL for the file's shapes */
    bool no_simplify;             /* keep the graph exactly as imported */
} ac_model_options;

typedef enum { AC_FORMAT_UNKNOWN = 0, AC_FORMAT_ONNX, AC_FORMAT_DARKNET, AC_FORMAT_PYTORCH, AC_FORMAT_CAFFE, AC_FORMAT_TF, AC_FORMAT_MXNET } ac_model_format;

/* By file type: .onnx, .cfg (Darknet, with --weights), .prototxt (Caffe,
 * with --weights X.caffemodel), .pt/.pth/.torchscript
 * or module.py:Class (PyTorch, exported through python/export_pytorch.py:
 * ac_pytorch.h), .pb (TensorFlow frozen GraphDef: ac_tf.h), .json (MXNet symbol, with
 * --weights .params: ac_mxnet.h); without a known
 * extension by the first bytes (an ONNX ModelProto starts with 0x08, a
 * Darknet cfg with a '[' after blanks and comment lines). */
ac_model_format ac_model_detect(const char *path);
const char *ac_model_format_name(ac_model_format f);

/* NULL on error (err names the file and the rule). stats may be NULL. */
ac_graph *ac_model_load(const char *path, const ac_model_options *opt, ac_passes_stats *stats,
                        ac_err *err);

/* The bytes a farm worker loads (it reads ONNX: ac_onnx_load_buffer): an
 * ONNX file as it is; any other format imported (opt's weights and input
 * shapes, no simplification) and serialized as ONNX (ac_onnx_save_buffer),
 * so every importer's models run on the farm unchanged. *buf is malloc'ed. */
int ac_model_blob(const char *path, const ac_model_options *opt, uint8_t **buf, size_t *len, ac_err *err);

/* Total weight elements (constant float tensors read by nodes). */
int64_t ac_graph_param_count(const ac_graph *g);

#endif
