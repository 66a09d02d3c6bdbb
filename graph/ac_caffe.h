/* ac_caffe: the Caffe importer. A network .prototxt (protobuf text format,
 * read by our own small strict parser) plus its binary .caffemodel (read
 * through protobuf-c with our minimal schema graph/caffe_min.proto: layer
 * names and blobs) become an ac_graph of ONNX ops (opset 13), toposorted and
 * shape-inferred. docs/importers.md describes the mapping in full.
 *
 * Text format accepted: fields `name: value` (numbers, identifiers for enums
 * and booleans, "..." or '...' strings with C escapes), messages
 * `name { ... }` (the ':' before '{' and '<' '>' brackets are accepted too),
 * '#' comments, optional ',' or ';' after a field. Lists in brackets are
 * not. A field no layer reads is an error, except training-only ones
 * (param, loss_weight, *_filler, engine, ...).
 *
 * The structure comes from the prototxt, the weights from the caffemodel by
 * layer name, as Caffe itself does (Net::CopyTrainedLayersFrom); V2 `layer`
 * and V1 `layers` entries of the caffemodel are both read. Layers:
 * Input (and the legacy net-level input/input_shape/input_dim), Convolution,
 * Deconvolution, InnerProduct, BatchNorm (+ a following Scale folded into
 * it), Scale, ReLU, PReLU, Pooling, Eltwise, Concat, Flatten, Reshape,
 * Permute, Softmax, Sigmoid, TanH, Upsample, Dropout, Split. Graph outputs
 * are the tops no layer reads (Caffe's rule). Every error names the file,
 * the line and column (prototxt) or the layer (caffemodel), and the rule. */
#ifndef AC_CAFFE_H
#define AC_CAFFE_H

#include <stddef.h>
#include <stdint.h>

#include "ac_graph.h"
#include "ac_onnx.h"

#define AC_CAFFE_OPSET 13
#define AC_CAFFE_MAX_PROTOTXT_BYTES (16 << 20)
#define AC_CAFFE_MAX_LAYERS 8192

typedef struct {
    /* --input_data_shape overrides, by name or positional (like ONNX). */
    int nshapes;
    const ac_onnx_shape *shapes;
} ac_caffe_options;

/* Loads prototxt + caffemodel files. Messages name the files by base name. */
ac_graph *ac_caffe_load(const char *prototxt_path, const char *caffemodel_path, const ac_caffe_options *opt,
                        ac_err *err);

/* The same from memory. model == NULL checks the prototxt alone: every
 * parameter is zero (for tests and the fuzzer, never for a model that runs). */
ac_graph *ac_caffe_load_buffer(const char *text, size_t text_len, const char *text_name, const void *model,
                               size_t model_len, const char *model_name, const ac_caffe_options *opt, ac_err *err);

#endif
