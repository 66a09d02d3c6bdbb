#include "ac_mem_plan.h"

#include <stdlib.h>

static size_t align_up(size_t x)
{
    return (x + AC_MEM_ALIGN - 1) / AC_MEM_ALIGN * AC_MEM_ALIGN;
}

/* A block's index with the key it is sorted by. The key travels with the
 * index, so the comparators need no shared state: executors are planned on
 * several threads at once (the embedded cluster's workers share a process). */
typedef struct {
    size_t key;
    int index;
} keyed;

/* Largest first, ties by index. */
static int by_key_desc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->index - y->index;
}

/* Lowest first, ties by index. */
static int by_key_asc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->index - y->index;
}

static int overlaps(const ac_mem_block *a, const ac_mem_block *b)
{
    return a->first <= b->last && b->first <= a->last;
}

size_t ac_mem_plan(ac_mem_block *b, int n)
{
    keyed *order = malloc(sizeof(keyed) * (size_t)(n ? n : 1));
    keyed *live = malloc(sizeof(keyed) * (size_t)(n ? n : 1));
    if (!order || !live) { /* no memory to plan with: blocks laid end to end */
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            b[i].offset = at;
            at += align_up(b[i].bytes ? b[i].bytes : 1);
        }
        free(order);
        free(live);
        return at;
    }
    for (int i = 0; i < n; i++)
        order[i] = (keyed){b[i].bytes, i};
    qsort(order, (size_t)n, sizeof *order, by_key_desc);
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        ac_mem_block *x = &b[order[k].index];
        size_t need = align_up(x->bytes ? x->bytes : 1);
        /* the placed blocks that share a node with x, by offset */
        int nl = 0;
        for (int q = 0; q < k; q++)
            if (overlaps(&b[order[q].index], x))
                live[nl++] = (keyed){b[order[q].index].offset, order[q].index};
        qsort(live, (size_t)nl, sizeof *live, by_key_asc);
        size_t at = 0;
        for (int q = 0; q < nl; q++) {
            const ac_mem_block *y = &b[live[q].index];
            if (y->offset >= at + need)
                break; /* the gap before y fits */
            size_t end = y->offset + align_up(y->bytes ? y->bytes : 1);
            if (end > at)
                at = end;
        }
        x->offset = at;
        if (at + need > total)
            total = at + need;
    }
    free(order);
    free(live);
    return total;
}

void ac_mem_lifetimes(const ac_graph *g, int *first, int *last)
{
    for (int t = 0; t < g->ntensors; t++)
        first[t] = last[t] = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        for (int j = 0; j < n->noutputs; j++)
            if (n->outputs[j] >= 0 && first[n->outputs[j]] < 0) {
                first[n->outputs[j]] = i;
                if (last[n->outputs[j]] < i)
                    last[n->outputs[j]] = i;
            }
        for (int j = 0; j < n->ninputs; j++)
            if (n->inputs[j] >= 0 && last[n->inputs[j]] < i)
                last[n->inputs[j]] = i;
    }
    for (int i = 0; i < g->ninputs; i++)
        first[g->inputs[i]] = -1;
    for (int i = 0; i < g->noutputs; i++)
        last[g->outputs[i]] = g->nnodes;
}
