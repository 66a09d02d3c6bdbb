/* ac_npy: NumPy .npy files (format versions 1.0-3.0), C order, little-endian.
 * Used for `autocalib run --input/--output` and `--dump_tensors`. */
#ifndef AC_NPY_H
#define AC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_NPY_MAX_DIMS 8

/* descr is the numpy type string: "<f4", "<f8", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1", ... */
typedef struct {
    char descr[8];
    size_t elem_size;
    int ndim;
    int64_t dims[AC_NPY_MAX_DIMS];
    size_t nbytes;   /* product of dims * elem_size */
    void *data;      /* malloc'ed; freed by ac_npy_free */
} ac_npy;

/* Reads the whole file. Errors name the file and the rule (bad magic, fortran
 * order, big-endian, unsupported dtype, truncated data). */
int ac_npy_read(const char *path, ac_npy *out, ac_err *err);
/* Parse from memory (the file reader and the fuzz target use it). */
int ac_npy_parse(const void *buf, size_t len, const char *name, ac_npy *out, ac_err *err);
void ac_npy_free(ac_npy *a);

/* Writes atomically (temporary name, then rename). */
int ac_npy_write(const char *path, const char *descr, int ndim, const int64_t *dims,
                 const void *data, ac_err *err);

#endif
