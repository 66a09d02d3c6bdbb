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
    uint8_t *data; /* malloc'ed, product(dims) bytes */
    size_t nbytes;
} ac_idx;

int ac_idx_load(const char *path, ac_idx *out, ac_err *err);
/* From memory (the decompressed file); copies the data. */
int ac_idx_parse(const uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err);
void ac_idx_free(ac_idx *x);

#endif
