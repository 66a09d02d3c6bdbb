#include "ac_mem_plan.h"

#include <stdlib.h>

static size_t align_up(size_t x)
{
    return (x + AC_MEM_ALIGN - 1) / AC_MEM_ALIGN * AC_MEM_ALIGN;
}

static const ac_mem_block *sort_base;

static int by_size_desc(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    size_t si = sort_base[i].bytes, sj = sort_base[j].bytes;
    if (si != sj)
        return si > sj ? -1 : 1;
    return i - j;
}

static int by_offset(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    size_t oi = sort_base[i].offset, oj = sort_base[j].offset;
    return oi < oj ? -1 : oi > oj ? 1 : i - j;
}

static int overlaps(const ac_mem_block *a, const ac_mem_block *b)
{
    return a->first <= b->last && b->first <= a->last;
}

size_t ac_mem_plan(ac_mem_block *b, int n)
{
    int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
    int *live = malloc(sizeof(int) * (size_t)(n ? n : 1));
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
        order[i] = i;
    sort_base = b;
    qsort(order, (size_t)n, sizeof(int), by_size_desc);
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        ac_mem_block *x = &b[order[k]];
        size_t need = align_up(x->bytes ? x->bytes : 1);
        /* the placed blocks that share a node with x, by offset */
        int nl = 0;
        for (int q = 0; q < k; q++)
            if (overlaps(&b[order[q]], x))
                live[nl++] = order[q];
        sort_base = b;
        qsort(live, (size_t)nl, sizeof(int), by_offset);
        size_t at = 0;
        for (int q = 0; q < nl; q++) {
            const ac_mem_block *y = &b[live[q]];
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
