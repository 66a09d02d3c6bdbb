/* ac_darknet: the Darknet importer. A network .cfg (our own strict parser)
 * plus its .weights file become an ac_graph of ONNX ops (opset 13), toposorted
 * and shape-inferred, so everything downstream treats it like an imported
 * ONNX model. docs/importers.md describes the mapping in full.
 *
 * The cfg grammar (as darknet reads it, but strict): every line, with all
 * blanks removed (darknet's strip()), is empty, a comment ('#' or ';' first),
 * a section header "[type]", or "key=value" inside a section. The first
 * section is [net] (or [network]); every other section is one layer, indexed
 * from 0 in file order as darknet does (route/shortcut refer to those
 * indices, negative ones relative to the layer itself). A key may appear once
 * per section; values are integers, floats (strtod) or comma lists of them.
 * A key the importer does not know is an error, except the training-only
 * keys it ignores (docs/importers.md lists them) and any key of [net] (its
 * learning-rate and augmentation settings do not change inference).
 *
 * Layers: convolutional (batch_normalize folded into the weights as darknet
 * computes it: (x - mean) / (sqrt(var) + 1e-6) * scale + bias), maxpool,
 * avgpool (global), route (groups/group_id), shortcut, upsample, dropout
 * (nothing at inference), connected, softmax, and yolo / region, whose input
 * (the raw convolution output) becomes a graph output; their anchors, masks
 * and class counts are graph metadata (ac_darknet_heads). Activations:
 * linear, leaky (0.1), relu, logistic, tanh, swish (x * sigmoid(x)), mish
 * (composed of Sigmoid/Sub/Mul/Div: x * u / (2 - u) with u = s (2 - s),
 * s = sigmoid(x), which equals x * tanh(softplus(x))).
 *
 * The .weights file: int32 major, minor, revision; the "seen" counter as
 * uint64 when major * 10 + minor >= 2 and both are below 1000, else uint32
 * (darknet's rule); then float32 parameters of every convolutional and
 * connected layer in file order; major or minor above 1000 mark transposed
 * connected weights. A file that ends inside a layer, or has bytes after the
 * last one, is an error naming the layer. Every error names the file, the
 * line (cfg) or byte offset (weights), the layer and the rule. */
#ifndef AC_DARKNET_H
#define AC_DARKNET_H

#include <stddef.h>
#include <stdint.h>

#include "ac_graph.h"
#include "ac_onnx.h"

#define AC_DARKNET_OPSET 13
#define AC_DARKNET_MAX_LAYERS 4096
#define AC_DARKNET_MAX_CFG_BYTES (16 << 20)
#define AC_DARKNET_MAX_ANCHORS 32

typedef struct {
    /* An --input_data_shape override of the input [N, C, H, W]: N and the
     * spatial size may change (darknet networks resize), C must be the cfg's
     * channels. NULL: [1, channels, height, width] from [net]. */
    const ac_onnx_shape *shape;
} ac_darknet_options;

/* Loads cfg + weights files. Messages name the files by their base names. */
ac_graph *ac_darknet_load(const char *cfg_path, const char *weights_path, const ac_darknet_options *opt,
                          ac_err *err);

/* The same from memory. weights == NULL checks the cfg alone: the graph is
 * built with every parameter zero (for tests and the fuzzer, never for a
 * model that is run). */
ac_graph *ac_darknet_load_buffer(const char *cfg, size_t cfg_len, const char *cfg_name, const void *weights,
                                 size_t weights_len, const char *weights_name, const ac_darknet_options *opt,
                                 ac_err *err);

/* A YOLO head as the graph metadata describes it. */
typedef enum { AC_DARKNET_YOLO = 1, AC_DARKNET_REGION = 2 } ac_darknet_head_kind;

typedef struct {
    ac_darknet_head_kind kind;
    int output;      /* index into g->outputs */
    int classes;
    int nmask;       /* yolo: anchors this head uses; region: every anchor */
    int mask[AC_DARKNET_MAX_ANCHORS];
    int nanchors;    /* anchor pairs in the layer's anchors= list */
    float anchors[AC_DARKNET_MAX_ANCHORS][2]; /* yolo: input pixels; region: grid cells */
    float scale_xy;  /* yolo scale_x_y (1 unless set) */
    int new_coords;  /* yolo new_coords (0 unless set) */
} ac_darknet_head;

/* The heads a Darknet import recorded (metadata "darknet.heads" and
 * "darknet.head.<i>"). *n = 0 for a graph without them. Errors name the
 * metadata key when its text is malformed. */
int ac_darknet_heads(const ac_graph *g, ac_darknet_head *heads, int max, int *n, ac_err *err);

#endif
