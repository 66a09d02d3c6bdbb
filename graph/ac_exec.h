/* ac_exec: fp32 reference execution of a shape-inferred graph.
 * One OpenMP parallel region per run (ggml style): every thread walks the
 * nodes, each op splits its work by thread index, a barrier follows each node.
 * Results are identical for any thread count. Every tensor keeps its buffer
 * after a run so callers (calibration, --dump_tensors) can read any of them,
 * unless the executor was made with shared buffers (ac_exec_new_shared):
 * then tensors whose lifetimes do not overlap share memory (graph/ac_mem_plan.h)
 * and only the graph inputs and outputs are readable after a run. */
#ifndef AC_EXEC_H
#define AC_EXEC_H

#include "ac_graph.h"

typedef struct ac_exec ac_exec;

/* The graph must be toposorted and shape-inferred; it must outlive the executor. */
ac_exec *ac_exec_new(const ac_graph *g, ac_err *err);
/* The same with one arena of shared activation buffers: same results, a
 * fraction of the memory; ac_exec_tensor is only valid for graph inputs and
 * outputs after a run. */
ac_exec *ac_exec_new_shared(const ac_graph *g, ac_err *err);
/* Bytes of activation buffers the executor holds. */
size_t ac_exec_activation_bytes(const ac_exec *e);
void ac_exec_destroy(ac_exec **p);

/* 0 = OpenMP default (all cores). */
void ac_exec_set_threads(ac_exec *e, int nthreads);

/* A hook run after every node of a run (node = -1 first, once the graph
 * inputs are in place), by every thread of the run's team (ith of nth),
 * after the node's barrier and followed by another: the node's outputs are
 * complete and, with shared buffers too, still valid. It may run OpenMP
 * barriers of its own (all threads call it). Non-zero fails the run.
 * NULL removes it. */
typedef int (*ac_exec_node_fn)(void *ctx, const ac_exec *e, int node, int ith, int nth);
void ac_exec_set_node_hook(ac_exec *e, ac_exec_node_fn fn, void *ctx);

/* Activations the executor runs inside the preceding conv's stores (with
 * shared buffers only: a Relu, Relu6 or constant Clip that alone reads a
 * Conv's output; not during runs with a node hook, nor with the __ref
 * kernels forced). The outputs are the same bits either way. */
int ac_exec_folds(const ac_exec *e);

/* The thread count a run will ask OpenMP for. */
int ac_exec_threads(const ac_exec *e);

/* inputs[i] feeds graph input g->inputs[i]; each holds numel * dtype_size bytes. */
int ac_exec_run(ac_exec *e, const void *const *inputs, ac_err *err);

/* Buffer of tensor t after a run (constants return their data). */
const void *ac_exec_tensor(const ac_exec *e, int t);

#endif
