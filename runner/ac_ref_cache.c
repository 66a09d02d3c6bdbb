#include "ac_ref_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;
    int64_t first;
    int n, nout;
    float **outs;
    size_t bytes;
} entry;

struct ac_ref_cache {
    size_t max_bytes, bytes;
    entry *entries;
    int count, cap;
    int64_t hits, misses;
};

ac_ref_cache *ac_ref_cache_new(size_t max_bytes)
{
    ac_ref_cache *c = calloc(1, sizeof *c);
    if (c)
        c->max_bytes = max_bytes;
    return c;
}

static void entry_free(entry *e)
{
    for (int o = 0; o < e->nout; o++)
        free(e->outs[o]);
    free(e->outs);
    memset(e, 0, sizeof *e);
}

void ac_ref_cache_clear(ac_ref_cache *c)
{
    for (int i = 0; i < c->count; i++)
        entry_free(&c->entries[i]);
    c->count = 0;
    c->bytes = 0;
}

void ac_ref_cache_destroy(ac_ref_cache **p)
{
    if (!p || !*p)
        return;
    ac_ref_cache_clear(*p);
    free((*p)->entries);
    free(*p);
    *p = NULL;
}

const float *const *ac_ref_cache_get(ac_ref_cache *c, uint64_t key, int64_t first, int n)
{
    for (int i = 0; i < c->count; i++) {
        const entry *e = &c->entries[i];
        if (e->key == key && e->first == first && e->n == n) {
            c->hits++;
            return (const float *const *)e->outs;
        }
    }
    c->misses++;
    return NULL;
}

/* Drops the entries of keys other than `key` (a new graph or dataset has come). */
static void drop_other_keys(ac_ref_cache *c, uint64_t key)
{
    int kept = 0;
    for (int i = 0; i < c->count; i++) {
        if (c->entries[i].key == key) {
            c->entries[kept++] = c->entries[i];
            continue;
        }
        c->bytes -= c->entries[i].bytes;
        entry_free(&c->entries[i]);
    }
    c->count = kept;
}

int ac_ref_cache_put(ac_ref_cache *c, uint64_t key, int64_t first, int n, int nout, const float *const *outs,
                     const size_t *elems)
{
    size_t bytes = 0;
    for (int o = 0; o < nout; o++)
        bytes += (size_t)n * elems[o] * sizeof(float);
    if (c->bytes + bytes > c->max_bytes)
        drop_other_keys(c, key);
    if (c->bytes + bytes > c->max_bytes)
        return 0;
    if (c->count == c->cap) {
        int ncap = c->cap ? c->cap * 2 : 16;
        entry *ne = realloc(c->entries, sizeof *ne * (size_t)ncap);
        if (!ne)
            return -1;
        c->entries = ne;
        c->cap = ncap;
    }
    entry e = {.key = key, .first = first, .n = n, .nout = nout, .bytes = bytes};
    e.outs = calloc((size_t)nout, sizeof *e.outs);
    if (!e.outs)
        return -1;
    for (int o = 0; o < nout; o++) {
        size_t len = (size_t)n * elems[o] * sizeof(float);
        e.outs[o] = malloc(len ? len : 1);
        if (!e.outs[o]) {
            entry_free(&e);
            return -1;
        }
        memcpy(e.outs[o], outs[o], len);
    }
    c->entries[c->count++] = e;
    c->bytes += bytes;
    return 1;
}

void ac_ref_cache_stats(const ac_ref_cache *c, int *entries, size_t *bytes, int64_t *hits, int64_t *misses)
{
    *entries = c->count;
    *bytes = c->bytes;
    *hits = c->hits;
    *misses = c->misses;
}
