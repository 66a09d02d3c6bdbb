/* ac_exec: fp32 reference execution of a shape-inferred graph.
 * One OpenMP parallel region per run (ggml style): every thread walks the
 * nodes, each op splits its work by thread index, a barrier follows each node.
 * Results are identical for any thread count. Every tensor keeps its buffer
 * after a run so callers (calibration, --dump_tensors) can read any of them. */
#ifndef AC_EXEC_H
#define AC_EXEC_H

#include "ac_graph.h"

typedef struct ac_exec ac_exec;

/* The graph must be toposorted and shape-inferred; it must outlive the executor. */
ac_exec *ac_exec_new(const ac_graph *g, ac_err *err);
void ac_exec_destroy(ac_exec **p);

/* 0 = OpenMP default (all cores). */
void ac_exec_set_threads(ac_exec *e, int nthreads);

/* inputs[i] feeds graph input g->inputs[i]; each holds numel * dtype_size bytes. */
int ac_exec_run(ac_exec *e, const void *const *inputs, ac_err *err);

/* Buffer of tensor t after a run (constants return their data). */
const void *ac_exec_tensor(const ac_exec *e, int t);

#endif
