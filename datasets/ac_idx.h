/* ac_idx: idx files (MNIST / Fashion-MNIST), plain or gzip-compressed
 * (zlib's gz reader takes both). Only unsigned-byte data (type 0x08).
 *
 * ac_idx_load reads a file whole. ac_idx_open reads the header only and
 * decompresses the data as far as ac_idx_need asks: a calibration run that
 * uses 300 of Fashion-MNIST's 60 000 training images decompresses 235 KB of
 * its 47 MB, once per process that opens it (coordinator and each worker). */
#ifndef AC_IDX_H
#define AC_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_IDX_MAX_BYTES ((size_t)1 << 32)

typedef struct ac_idx_stream ac_idx_stream;

typedef struct {
    int ndim;
    int64_t dims[4];
    uint8_t *data; /* product(dims) bytes, inside alloc (ac_idx_open: valid as far as ac_idx_need went) */
    size_t nbytes;
    void *alloc;   /* owned */
    ac_idx_stream *stream; /* ac_idx_open: the open file, until every byte is in */
} ac_idx;

int ac_idx_load(const char *path, ac_idx *out, ac_err *err);
/* The header now, the data on demand. */
int ac_idx_open(const char *path, ac_idx *out, ac_err *err);
/* data[0, bytes) is in (bytes <= nbytes). Thread-safe; data never moves.
 * A file shorter than its header promises is an error naming it. */
int ac_idx_need(ac_idx *x, size_t bytes, ac_err *err);
/* From memory (the decompressed file). Takes buf (malloc'ed or from
 * ac_bigbuf_alloc) in every case: out keeps it, or it is freed on error. */
int ac_idx_parse(uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err);
void ac_idx_free(ac_idx *x);

#endif
