/* ac_qexec: runs an int8 plan (quant/ac_plan.h) the way the BM1684 computes it.
 * Same structure as graph/ac_exec: one OpenMP parallel region per run, every
 * node's work split by (ith, nth), a barrier after each node; results are
 * identical for any thread count.
 *
 * int8 tensors are stored as int8/uint8 codes, fp32 ones as float. Where an
 * fp32 layer meets int8 ones the tensor is quantized (fp32 -> codes, with its
 * own shared threshold) or dequantized (codes -> fp32) right after it is
 * produced (spec §6); the network input is quantized with its own threshold.
 * fp32 nodes run through the fp32 op definitions of graph/ac_ops.c; int8
 * nodes through kernels/ac_int8_ref.h; code-moving nodes through the fp32
 * op's generic data-movement kernel with 1-byte elements. */
#ifndef AC_QEXEC_H
#define AC_QEXEC_H

#include "ac_plan.h"

typedef struct ac_qexec ac_qexec;

/* The plan (and its graph) must outlive the executor. */
ac_qexec *ac_qexec_new(const ac_plan *p, ac_err *err);
/* The same with one arena of shared activation buffers (graph/ac_mem_plan.h):
 * same results, a fraction of the memory; only the graph inputs and outputs
 * are readable after a run. */
ac_qexec *ac_qexec_new_shared(const ac_plan *p, ac_err *err);
/* Shared buffers in an arena the caller lends: one buffer for executors that
 * never run at the same time (a worker's candidates), so each new candidate
 * does not touch fresh memory. ac_qexec_lend(e, mem) before a run binds mem
 * (at least ac_qexec_activation_bytes(e) bytes, 64-byte aligned); a run
 * before any lend is an error. Outputs read after a run stay valid until
 * another executor runs in the same memory. */
ac_qexec *ac_qexec_new_lent(const ac_plan *p, ac_err *err);
void ac_qexec_lend(ac_qexec *e, void *mem);
/* Bytes of activation buffers (float and codes) the executor holds. */
size_t ac_qexec_activation_bytes(const ac_qexec *e);
void ac_qexec_destroy(ac_qexec **p);

/* 0 = OpenMP default (all cores). */
void ac_qexec_set_threads(ac_qexec *e, int nthreads);

/* inputs[i] feeds graph input g->inputs[i]: float32 (or the input's dtype), numel elements. */
int ac_qexec_run(ac_qexec *e, const void *const *inputs, ac_err *err);

/* Float buffer of tensor t after a run (graph outputs are dequantized here), or
 * NULL when the tensor only exists as codes. Constants return their data. */
const void *ac_qexec_tensor_float(const ac_qexec *e, int t);
/* Codes of tensor t (int8_t when the plan says signed, else uint8_t), or NULL. */
const void *ac_qexec_tensor_codes(const ac_qexec *e, int t);
/* What --dump_tensors writes: the codes (AC_DT_I8 / AC_DT_U8) when the tensor has
 * them, else the float buffer (its graph dtype). NULL for an unknown tensor. */
const void *ac_qexec_tensor_dump(const ac_qexec *e, int t, ac_dtype *dtype);

#endif
