/* ac_ops: per-op semantics over the IR. For every ac_op: validation of
 * attributes and inputs, shape/dtype inference, and execution through the
 * kernels/ functions. Importers only map names; all rules live here so every
 * model format gets the same checks and the same error messages. */
#ifndef AC_OPS_H
#define AC_OPS_H

#include "ac_conv_f32.h"
#include "ac_graph.h"

typedef struct {
    /* Validate attributes, input count, dtypes and shapes; set output dtypes and
     * shapes; may store typed parameters in n->params (allocated in g->arena).
     * Inputs that must be constant for static shapes (Reshape shape, Slice
     * starts, Resize scales, Pad pads, ...) are checked here. Errors name the
     * node, its op type, the opset and the rule, e.g.
     * "node 'conv1' (Conv, opset 13): attribute 'strides' has 3 values, input is 2-D". */
    int (*infer)(ac_graph *g, ac_node *n, ac_err *err);

    /* Bytes of scratch memory run() needs per call (shared by all threads;
     * a kernel splits it by ith itself). May be NULL (no scratch). */
    size_t (*scratch_bytes)(const ac_graph *g, const ac_node *n, int nth);

    /* Compute the outputs. Called by every thread of the executor's single
     * parallel region with ith in [0,nth); splits work by ith so that results
     * are identical for any nth; the executor puts a barrier after each node.
     * in[i] is NULL for an absent optional input. Returns 0, or non-zero for a
     * data-dependent error (e.g. a Gather index out of range). */
    int (*run)(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out,
               void *scratch, int ith, int nth);
} ac_op_def;

/* NULL for AC_OP_UNKNOWN / out of range. */
const ac_op_def *ac_op_def_get(ac_op op);

/* Conv + activation in one pass (the executor's fold, graph/ac_exec.c):
 * whether node n is an activation a conv can apply to its stores (Relu,
 * Relu6, Clip with constant bounds on an fp32 tensor), as act; and running
 * fp32 Conv node n with act applied (false when the conv kernel would take
 * its __ref path, which does not fold: the caller runs the two ops). */
bool ac_op_conv_act(const ac_graph *g, const ac_node *n, ac_conv_act *act);
bool ac_op_run_conv_act(const ac_graph *g, const ac_node *n, const void *const *in, void *const *out, void *scratch,
                        int ith, int nth, const ac_conv_act *act);

/* Run inference node by node in topological order. A node whose inputs are all
 * constant (and Shape of a known shape) is folded: executed once, its outputs
 * become constants. Requires ac_graph_toposort first. */
int ac_graph_infer_shapes(ac_graph *g, ac_err *err);

/* Multiply-accumulate count of one node (Conv, ConvTranspose, Gemm, MatMul), 0 otherwise. */
int64_t ac_node_macs(const ac_graph *g, const ac_node *n);

#endif
