/* ac_onnx: the ONNX importer. Reads a serialized ModelProto into an ac_graph
 * that is faithful to the file (no fusion, no folding passes besides the
 * constant folding that shape inference does), then toposorts it and infers
 * shapes. Everything in the file is external input: every malformed or
 * unsupported construct is an error naming the node, op type, opset and rule.
 *
 * What is supported:
 * - IR versions 3..10; default-domain ("" or "ai.onnx") opsets 1..17, where a
 *   model older than opset 7 is accepted only when every op it uses has the
 *   same definition as at opset 7 (ac_onnx_op_version). Nodes of any other
 *   domain are rejected.
 * - Tensor dtypes float32, float64, int8, uint8, int16, uint16, int32, int64,
 *   bool, in raw_data (little-endian) or the typed fields. External data,
 *   strings, float16/bfloat16, complex, sparse tensors are rejected.
 * - Constant nodes become constant tensors (no node is kept for them).
 * - Graph inputs that also have an initializer are constants.
 *
 * Dynamic input dims (dim_param or no dim_value): an --input_data_shape
 * override gives their size. Without one, dim 0 of an input with 2 or more
 * dims whose name says it is the batch ("N", "batch", "batch_size",
 * "batchsize", "bs", "unk__*", or no name) becomes 1; any other dynamic dim
 * is an error that names the input, the dim and the option that fixes it.
 * Intermediate value_info is not used: shape inference computes those. */
#ifndef AC_ONNX_H
#define AC_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "ac_graph.h"

#define AC_ONNX_MAX_SHAPES 32
#define AC_ONNX_NAME_MAX 128
/* Largest element count a graph input may have: guards the executor and
 * shape inference against absurd sizes written in a file or an option. */
#define AC_ONNX_MAX_NUMEL ((int64_t)1 << 31)

/* One input shape override: name is "" for a positional one. */
typedef struct {
    char name[AC_ONNX_NAME_MAX];
    int ndim;
    int64_t dims[AC_MAX_DIMS];
} ac_onnx_shape;

typedef struct ac_onnx_tensor ac_onnx_tensor;

typedef struct {
    /* Input shape overrides. Either all positional (applied to the graph
     * inputs in order, bound inputs not counted; fewer than the inputs is
     * fine) or all named. */
    int nshapes;
    const ac_onnx_shape *shapes;
    /* Graph inputs bound to fixed values (matched by ac_onnx_tensor.name):
     * they become constants, so inputs that decide shapes (a Reshape's shape,
     * Slice starts, Resize scales, ...) can be given for a static graph. The
     * dtype must be the declared one and fixed dims must match. */
    int nbound;
    const ac_onnx_tensor *bound;
    /* Return the graph right after toposort, without ac_graph_infer_shapes. */
    int skip_shape_inference;
} ac_onnx_options;

/* Parse an --input_data_shape string into out[0..max): one or several shapes
 *   "(1,3,224,224)"  "[1,3,224,224]"  "1,3,224,224"
 *   "(1,3,224,224),(1,10)"  "(1,3,224,224);(1,10)"  "[[1,3,224,224],[1,10]]"
 *   "data:(1,3,224,224),mask=[1,10]"   "()" is a scalar.
 * Spaces are ignored. Every dim is an integer in [0, 2^31). Returns 0 and sets
 * *n, or fills err naming the offending position and the rule (the caller
 * prefixes the option name and value). */
int ac_onnx_parse_shapes(const char *s, ac_onnx_shape *out, int max, int *n, ac_err *err);

/* Load a model from a file or a buffer (name is used in messages). NULL on
 * error with err filled. opt may be NULL. */
ac_graph *ac_onnx_load(const char *path, const ac_onnx_options *opt, ac_err *err);
ac_graph *ac_onnx_load_buffer(const void *buf, size_t len, const char *name,
                              const ac_onnx_options *opt, ac_err *err);

/* Serializes a graph as an ONNX ModelProto (IR 8, opset g->opset): the nodes
 * in order with their names and attributes, every constant a node reads as a
 * raw_data initializer, the inputs and outputs with their shapes, the
 * metadata as metadata_props. Nodes that shape inference folded into
 * constants are left out. Every op must exist in ONNX at g->opset, so the
 * passes' SiLU/Relu6 cannot be written: serialize before ac_graph_simplify.
 * ac_onnx_load_buffer reads the result back into the same graph. *buf is
 * malloc'ed. */
int ac_onnx_save_buffer(const ac_graph *g, uint8_t **buf, size_t *len, ac_err *err);

/* Version of op_type's definition that a default-domain model of the given
 * opset uses (the largest since_version <= opset); 0 when the op does not
 * exist at that opset or is not supported, -1 when the definition in use
 * differs from the oldest one the project implements (that of opset 7). */
int ac_onnx_op_version(const char *op_type, int opset);

/* A tensor read from a serialized TensorProto (ONNX backend test data). */
struct ac_onnx_tensor {
    char name[AC_ONNX_NAME_MAX];
    ac_dtype dtype;
    int ndim;
    int64_t dims[AC_MAX_DIMS];
    void *data; /* malloc'ed, numel * ac_dtype_size(dtype) bytes (NULL when 0) */
    size_t bytes;
};

int ac_onnx_load_tensor_pb(const char *path, ac_onnx_tensor *t, ac_err *err);
int ac_onnx_tensor_from_buffer(const void *buf, size_t len, const char *name, ac_onnx_tensor *t,
                               ac_err *err);
void ac_onnx_tensor_free(ac_onnx_tensor *t);

#endif
