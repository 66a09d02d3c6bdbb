/* ac_graph: the model IR every importer produces and everything downstream
 * consumes. Plain data structs (ggml style): tensors with explicit shapes,
 * nodes with an op, attributes and tensor indices, kept in topological order.
 * One arena per graph owns all names, shapes, attributes and constant data.
 *
 * Attributes use ONNX names and meanings whatever the source format, so one
 * validation/shape-inference routine per op (graph/ac_ops.c) serves every
 * importer. */
#ifndef AC_GRAPH_H
#define AC_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_arena.h"
#include "ac_err.h"

#define AC_MAX_DIMS 8

/* Element types; values are ONNX TensorProto.DataType codes. */
typedef enum {
    AC_DT_UNDEFINED = 0,
    AC_DT_F32 = 1,
    AC_DT_U8 = 2,
    AC_DT_I8 = 3,
    AC_DT_U16 = 4,
    AC_DT_I16 = 5,
    AC_DT_I32 = 6,
    AC_DT_I64 = 7,
    AC_DT_BOOL = 9,
    AC_DT_F64 = 11
} ac_dtype;

size_t ac_dtype_size(ac_dtype dt); /* 0 for unsupported */
const char *ac_dtype_name(ac_dtype dt);

typedef struct {
    const char *name;
    ac_dtype dtype;
    int ndim;                      /* -1 while the shape is unknown */
    int64_t dims[AC_MAX_DIMS];     /* after shape inference every dim is >= 0 */
    void *data;                    /* constant data (arena-owned), NULL for activations */
    int producer;                  /* index of the node writing it, -1 for inputs/constants */
    bool is_input, is_output;
} ac_tensor;

typedef enum {
    AC_ATTR_INT,
    AC_ATTR_FLOAT,
    AC_ATTR_INTS,
    AC_ATTR_FLOATS,
    AC_ATTR_STRING,
    AC_ATTR_TENSOR /* value in .tensor: an index into graph->tensors (a constant) */
} ac_attr_type;

typedef struct {
    const char *name;
    ac_attr_type type;
    int64_t i;
    float f;
    int n;            /* element count for INTS / FLOATS */
    int64_t *ints;
    float *floats;
    const char *s;
    int tensor;
} ac_attr;

/* Op kinds. AC_OP_UNKNOWN keeps op_type for the error message. */
typedef enum {
    AC_OP_UNKNOWN = 0,
    AC_OP_CONV, AC_OP_CONV_TRANSPOSE, AC_OP_GEMM, AC_OP_MATMUL, AC_OP_BATCHNORM,
    AC_OP_ADD, AC_OP_SUB, AC_OP_MUL, AC_OP_DIV,
    AC_OP_RELU, AC_OP_LEAKY_RELU, AC_OP_PRELU, AC_OP_CLIP, AC_OP_RELU6, AC_OP_SIGMOID,
    AC_OP_TANH, AC_OP_HARD_SIGMOID, AC_OP_HARD_SWISH, AC_OP_SILU, AC_OP_EXP, AC_OP_SOFTMAX,
    AC_OP_MAXPOOL, AC_OP_AVGPOOL, AC_OP_GLOBAL_AVGPOOL, AC_OP_GLOBAL_MAXPOOL, AC_OP_REDUCE_MEAN,
    AC_OP_CONCAT, AC_OP_SPLIT, AC_OP_SLICE, AC_OP_RESHAPE, AC_OP_FLATTEN, AC_OP_TRANSPOSE,
    AC_OP_SQUEEZE, AC_OP_UNSQUEEZE, AC_OP_PAD, AC_OP_RESIZE, AC_OP_UPSAMPLE,
    AC_OP_IDENTITY, AC_OP_DROPOUT, AC_OP_CONSTANT, AC_OP_CONSTANT_OF_SHAPE,
    AC_OP_SHAPE, AC_OP_GATHER, AC_OP_CAST, AC_OP_SQRT,
    AC_OP_COUNT
} ac_op;

typedef struct {
    const char *name;     /* node name; importers invent one when the file has none */
    const char *op_type;  /* source op name as written in the file (for messages) */
    ac_op op;
    int ninputs, noutputs;
    int *inputs;          /* tensor indices; -1 for an absent optional input */
    int *outputs;
    int nattrs;
    ac_attr *attrs;
    void *params;         /* typed, validated parameters filled by ac_ops_prepare */
} ac_node;

/* One metadata entry (ONNX metadata_props, Darknet's YOLO head parameters):
 * what an importer knows about the model that is not in the nodes, for the
 * tools downstream (e.g. the detection decoder's anchors). */
typedef struct {
    const char *key, *value;
} ac_graph_meta;

typedef struct ac_graph {
    ac_arena *arena;
    const char *name;     /* model name (file name) for messages */
    int opset;            /* ONNX default-domain opset the model was written for */
    int ntensors, cap_tensors;
    ac_tensor *tensors;
    int nnodes, cap_nodes;
    ac_node *nodes;       /* topological order once ac_graph_toposort succeeded */
    int ninputs, noutputs;
    int *inputs;          /* graph input tensor indices (non-constant) */
    int *outputs;
    int nmeta;
    ac_graph_meta *meta;  /* arena-owned, in the order set */
} ac_graph;

ac_graph *ac_graph_new(const char *name);
void ac_graph_destroy(ac_graph **p);

/* Tensors. add returns the index or -1 (out of memory). find returns -1 when absent. */
int ac_graph_add_tensor(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims);
int ac_graph_find_tensor(const ac_graph *g, const char *name);
/* Copies data into the arena and marks the tensor constant. */
int ac_graph_set_const(ac_graph *g, int t, const void *data, size_t bytes, ac_err *err);
int64_t ac_tensor_numel(const ac_tensor *t); /* -1 when the shape is unknown */
size_t ac_tensor_bytes(const ac_tensor *t);
bool ac_tensor_is_const(const ac_tensor *t);

/* Nodes: inputs/outputs are copied into the arena. Returns the node index or -1. */
int ac_graph_add_node(ac_graph *g, const char *name, const char *op_type, ac_op op,
                      int ninputs, const int *inputs, int noutputs, const int *outputs);
ac_attr *ac_node_add_attr(ac_graph *g, ac_node *n, const char *name, ac_attr_type type);
/* Importers' setters: add one attribute with its value (arena-copied).
 * 0, or -1 when out of memory. */
int ac_node_set_int(ac_graph *g, ac_node *n, const char *name, int64_t v);
int ac_node_set_float(ac_graph *g, ac_node *n, const char *name, float v);
int ac_node_set_ints(ac_graph *g, ac_node *n, const char *name, int cnt, const int64_t *v);
int ac_node_set_string(ac_graph *g, ac_node *n, const char *name, const char *v);
/* A constant tensor (data copied, ac_tensor_bytes of the shape): its index, or
 * -1 with err set. */
int ac_graph_add_const(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data,
                       ac_err *err);
const ac_attr *ac_node_attr(const ac_node *n, const char *name);
/* Typed getters: return def when absent; set *err on a wrong type (returns def). */
int64_t ac_node_attr_int(const ac_node *n, const char *name, int64_t def, int *bad_type);
float ac_node_attr_float(const ac_node *n, const char *name, float def, int *bad_type);
const char *ac_node_attr_string(const ac_node *n, const char *name, const char *def, int *bad_type);

int ac_graph_set_io(ac_graph *g, int ninputs, const int *inputs, int noutputs, const int *outputs);

/* Metadata: set replaces the value of an existing key. Returns 0 or -1 (out of
 * memory). get returns NULL when the key is absent. */
int ac_graph_set_meta(ac_graph *g, const char *key, const char *value);
const char *ac_graph_get_meta(const ac_graph *g, const char *key);

/* Map an ONNX op_type to an ac_op (AC_OP_UNKNOWN when not supported). */
ac_op ac_op_from_onnx(const char *op_type);
const char *ac_op_name(ac_op op);

/* Recompute producers, check single assignment, order nodes topologically.
 * Errors name the tensor or node that breaks the rule. */
int ac_graph_toposort(ac_graph *g, ac_err *err);

/* Number of nodes that read tensor t (+1 if it is a graph output). */
int ac_graph_uses(const ac_graph *g, int t);

/* Drop nodes whose outputs no graph output needs, and nodes whose outputs were
 * all constant-folded. Tensors keep their indices. */
void ac_graph_prune(ac_graph *g);

#endif
