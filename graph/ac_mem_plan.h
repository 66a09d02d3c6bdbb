/* ac_mem_plan: activation memory shared by tensors whose lifetimes do not
 * overlap, for executors that only need the graph outputs after a run (the
 * workers' evaluations, `autocalib run` without --dump_tensors). Calibration
 * and per-layer statistics read every tensor after a run and keep one buffer
 * per tensor.
 *
 * A tensor lives from the node that produces it (graph inputs: from before
 * the first node) to the last node that reads it (graph outputs: to the
 * end). Two buffers whose lifetimes share a node never share memory, so a
 * node's outputs never alias its inputs. */
#ifndef AC_MEM_PLAN_H
#define AC_MEM_PLAN_H

#include <stddef.h>

#include "ac_graph.h"

#define AC_MEM_ALIGN 64

typedef struct {
    size_t bytes;
    int first, last; /* lifetime in node indices, inclusive; -1 = before the first node */
    size_t offset;   /* set by ac_mem_plan */
} ac_mem_block;

/* Places every block in one arena (greedy by size, largest first, ties by
 * index; each at the lowest aligned offset clear of the blocks already
 * placed whose lifetimes overlap it). Returns the arena's size in bytes. */
size_t ac_mem_plan(ac_mem_block *blocks, int n);

/* Lifetimes of g's tensors: first[t] = producing node (-1 for graph inputs
 * and tensors nothing writes), last[t] = last reading node (g->nnodes for
 * graph outputs; first[t] when nothing reads it). */
void ac_mem_lifetimes(const ac_graph *g, int *first, int *last);

#endif
