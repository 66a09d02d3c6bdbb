/* ac_record: one LMDB value of our format (docs/formats.md): a msgpack map
 *   {"format": "autocalib.tensors", "version": 1,
 *    "tensors": [{"shape": [N, ...], "dtype": "float32", "data": <bin>}, ...]}
 * data is little-endian, C order; every tensor of a record has the same first
 * dimension N (the batch; one record per lmdb_save put). Decoded tensors point
 * into the caller's buffer (no copy). */
#ifndef AC_RECORD_H
#define AC_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_REC_MAX_TENSORS 16
#define AC_REC_MAX_DIMS 8
#define AC_REC_FORMAT "autocalib.tensors"
#define AC_REC_VERSION 1

typedef enum {
    AC_REC_F32, AC_REC_F64, AC_REC_F16, AC_REC_U8, AC_REC_I8, AC_REC_I16, AC_REC_I32, AC_REC_I64
} ac_rec_dtype;

typedef struct {
    ac_rec_dtype dtype;
    int rank;
    int64_t dims[AC_REC_MAX_DIMS];
    const uint8_t *data;
    size_t nbytes;
} ac_rec_tensor;

typedef struct {
    int n;
    int64_t batch;
    ac_rec_tensor t[AC_REC_MAX_TENSORS];
} ac_record;

const char *ac_rec_dtype_name(ac_rec_dtype dt); /* numpy names: "float32", ... */
size_t ac_rec_dtype_size(ac_rec_dtype dt);

/* Validates everything: keys, types, rank 1..8, dims >= 0, byte counts, a
 * common batch >= 1. Errors name the record (`name`), field and rule. */
int ac_record_decode(const void *buf, size_t len, const char *name, ac_record *rec, ac_err *err);
/* malloc'ed msgpack bytes for n tensors. */
int ac_record_encode(const ac_rec_tensor *t, int n, uint8_t **buf, size_t *len, ac_err *err);

/* Elements per sample (dims[1..]) and float32 conversion of elements
 * [first, first + count) of a tensor's data. */
size_t ac_rec_sample_elems(const ac_rec_tensor *t);
void ac_rec_to_f32(const ac_rec_tensor *t, size_t first, size_t count, float *out);

#endif
