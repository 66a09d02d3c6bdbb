/* ac_arena: one bump allocator per model. Everything a graph owns (names,
 * shapes, constant data, attributes) lives in its arena and is freed at once. */
#ifndef AC_ARENA_H
#define AC_ARENA_H

#include <stddef.h>

typedef struct ac_arena ac_arena;

ac_arena *ac_arena_new(size_t chunk_size);
void ac_arena_destroy(ac_arena **p);

/* 64-byte aligned, zero-filled; NULL only when the system is out of memory. */
void *ac_arena_alloc(ac_arena *a, size_t size);
char *ac_arena_strdup(ac_arena *a, const char *s);
char *ac_arena_strndup(ac_arena *a, const char *s, size_t n);
void *ac_arena_memdup(ac_arena *a, const void *src, size_t size);
size_t ac_arena_bytes(const ac_arena *a);

#endif
