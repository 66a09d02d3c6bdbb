/* ac_tf: the TensorFlow frozen GraphDef (.pb) importer. The file is parsed
 * with protobuf-c against our own minimal schema (graph/tf_min.proto: the
 * GraphDef/NodeDef/AttrValue/TensorProto fields an inference graph uses) and
 * mapped to ONNX ops at opset 13, toposorted and shape-inferred.
 *
 * Layout: TensorFlow computes in NHWC, the IR's convolutions and pools in
 * NCHW. The graph inputs and outputs stay NHWC, as the TF user feeds and
 * reads them; inside, a Transpose after each 4-D input turns activations into
 * NCHW and they stay so through convolutions, pools, batch norm, bias and
 * elementwise ops, resizes, concatenations and keep_dims means (their axes and
 * constant operands are remapped at import). Weights are converted once at
 * import (Conv2D HWIO -> OIHW, depthwise HWCM -> (C*M)1HW). Ops whose meaning
 * depends on the memory order (Reshape, Squeeze, Softmax, a Mean that drops
 * axes) get their input transposed back to NHWC first, so the result is
 * exactly TensorFlow's; a 4-D output in NCHW gets a Transpose back to NHWC
 * named as the TF node. docs/importers.md lists the ops and attributes.
 *
 * Every error names the file, the node, its op and the rule. */
#ifndef AC_TF_H
#define AC_TF_H

#include <stddef.h>

#include "ac_graph.h"
#include "ac_onnx.h"

#define AC_TF_OPSET 13

typedef struct {
    /* Shapes for the Placeholders in file order (NHWC as TF has them);
     * NULL/0: the Placeholder's own shape with an unknown batch as 1. */
    const ac_onnx_shape *shapes;
    int nshapes;
} ac_tf_options;

ac_graph *ac_tf_load_buffer(const void *buf, size_t len, const char *name, const ac_tf_options *opt, ac_err *err);
ac_graph *ac_tf_load(const char *path, const ac_tf_options *opt, ac_err *err);

#endif
