#include "ac_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AC_ARENA_ALIGN 64

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *mem;
} chunk;

struct ac_arena {
    chunk *head;
    size_t chunk_size;
    size_t total;
};

ac_arena *ac_arena_new(size_t chunk_size)
{
    ac_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->chunk_size = chunk_size ? chunk_size : (size_t)1 << 20;
    return a;
}

void ac_arena_destroy(ac_arena **p)
{
    if (!p || !*p)
        return;
    chunk *c = (*p)->head;
    while (c) {
        chunk *next = c->next;
        free(c->mem);
        free(c);
        c = next;
    }
    free(*p);
    *p = NULL;
}

static chunk *chunk_new(size_t size)
{
    chunk *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (posix_memalign((void **)&c->mem, AC_ARENA_ALIGN, size) != 0) {
        free(c);
        return NULL;
    }
    c->size = size;
    return c;
}

void *ac_arena_alloc(ac_arena *a, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - AC_ARENA_ALIGN)
        return NULL;
    size_t rounded = (size + AC_ARENA_ALIGN - 1) & ~(size_t)(AC_ARENA_ALIGN - 1);
    chunk *c = a->head;
    if (!c || c->size - c->used < rounded) {
        /* Large requests get a chunk of their own so small ones keep filling the current. */
        size_t want = rounded > a->chunk_size ? rounded : a->chunk_size;
        chunk *n = chunk_new(want);
        if (!n)
            return NULL;
        if (c && rounded > a->chunk_size) {
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
    }
    void *p = c->mem + c->used;
    c->used += rounded;
    a->total += rounded;
    memset(p, 0, rounded);
    return p;
}

char *ac_arena_strndup(ac_arena *a, const char *s, size_t n)
{
    char *d = ac_arena_alloc(a, n + 1);
    if (d && n)
        memcpy(d, s, n);
    return d;
}

char *ac_arena_strdup(ac_arena *a, const char *s)
{
    return ac_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

void *ac_arena_memdup(ac_arena *a, const void *src, size_t size)
{
    void *d = ac_arena_alloc(a, size);
    if (d && size)
        memcpy(d, src, size);
    return d;
}

size_t ac_arena_bytes(const ac_arena *a)
{
    return a->total;
}
