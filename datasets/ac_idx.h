/* ac_idx: idx files (MNIST / Fashion-MNIST), plain or gzip-compressed
 * (zlib's gz reader takes both). Only unsigned-byte data (type 0x08). */
#ifndef AC_IDX_H
#define AC_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_IDX_MAX_BYTES ((size_t)1 << 32)

typedef struct {
    int ndim;
    int64_t dims[4];
    uint8_t *data; /* product(dims) bytes, inside alloc */
    size_t nbytes;
    void *alloc;   /* the file's bytes (owned; data skips the header) */
} ac_idx;

int ac_idx_load(const char *path, ac_idx *out, ac_err *err);
/* From memory (the decompressed file). Takes buf (malloc'ed or from
 * ac_bigbuf_alloc) in every case: out keeps it, or it is freed on error. */
int ac_idx_parse(uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err);
void ac_idx_free(ac_idx *x);

#endif
