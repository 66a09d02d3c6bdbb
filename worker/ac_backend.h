/* ac_backend: where a worker runs a prepared candidate (docs/worker.md §2).
 *
 * A backend turns (fp32 graph, int8 plan) into a runnable handle, runs it on
 * one batch of inputs and hands back the graph outputs as float tensors; the
 * worker's data loop (runner/ac_runner.h) and the scoring never see more than
 * that. The CPU emulator (graph/ac_exec for fp32, quant/ac_qexec for the
 * BM1684 int8 arithmetic) is the backend now; a BM1684 board running a
 * compiled bmodel through the vendor runtime, or a GPU, fits behind the same
 * four calls: prepare compiles or loads, run copies the batch in and the
 * outputs back, output returns the host copy.
 *
 * Calibration is not a backend's business: statistics need every fp32
 * activation, which the worker collects with graph/ac_exec on the CPU. */
#ifndef AC_BACKEND_H
#define AC_BACKEND_H

#include "ac_graph.h"
#include "ac_plan.h"
#include "ac_runner.h"

typedef struct ac_backend ac_backend;

struct ac_backend {
    const char *name; /* "cpu-emulator"; announced in READY */
    /* A runnable handle: plan NULL runs the fp32 graph, else the int8 plan
     * (which points into g). g and plan outlive the handle. NULL + err on error. */
    void *(*prepare)(ac_backend *b, const ac_graph *g, const ac_plan *plan, ac_err *err);
    /* One batch: inputs[i] feeds g->inputs[i] (the graph's input shapes, batch included). */
    int (*run)(ac_backend *b, void *h, const void *const *inputs, ac_err *err);
    /* The float32 value of graph output tensor `tensor` (an index in g->outputs[])
     * after the last run, batch rows first; NULL when it is not an output. */
    const float *(*output)(ac_backend *b, void *h, int tensor);
    void (*release)(ac_backend *b, void *h);
    void (*destroy)(ac_backend *b);
    int threads; /* kernel threads (0 = OpenMP default) */
};

/* The CPU emulator: ac_exec / ac_qexec with `threads` OpenMP threads. */
ac_backend *ac_backend_cpu_new(int threads, ac_err *err);
void ac_backend_destroy(ac_backend **p);

/* A prepared handle as the runner's executor view (pair must outlive it). */
typedef struct {
    ac_backend *b;
    void *h;
} ac_backend_pair;
ac_runner_exec ac_backend_exec(ac_backend_pair *pair);

#endif
