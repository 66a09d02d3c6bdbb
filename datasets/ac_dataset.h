/* ac_dataset: one handle over every data source, giving random access by
 * index to preprocessed float32 samples and their labels.
 *
 * Sources (ac_dataset_open picks by what the path is):
 *   - an image folder or an ImageList file (JPEG/PNG, decoded + preprocessed);
 *   - an LMDB folder (data.mdb) of our msgpack tensor records (already
 *     preprocessed: read as stored, converted to float32), labels from
 *     data.label beside it;
 *   - an LMDB folder of Caffe Datum records (decoded + preprocessed);
 *   - idx image + label files (ac_dataset_open_idx; gray images, preprocessed).
 * Images are decoded per read (nothing is cached), so memory does not grow
 * with the dataset: see docs/datasets.md for the bound. Reads are split over
 * OpenMP threads by sample, so results do not depend on the thread count. */
#ifndef AC_DATASET_H
#define AC_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "ac_err.h"
#include "ac_labels.h"
#include "ac_preproc.h"
#include "ac_record.h"

typedef enum {
    AC_DS_IMAGE_FOLDER,
    AC_DS_IMAGE_LIST,
    AC_DS_LMDB_TENSORS,
    AC_DS_LMDB_CAFFE,
    AC_DS_IDX
} ac_dataset_source;

typedef struct {
    const char *preprocess;  /* preprocessing string (resolve templates first); NULL = none */
    ac_layout layout;        /* NCHW (default) or NHWC, from the model's input */
    int channels;            /* 1 or 3 (model input); 0 = images 3, idx 1, Caffe its own */
    int height, width;       /* required sample size; 0 = whatever the first sample gives */
    const char *yolo_labels; /* folder of YOLO .txt labels, one per image (images only) */
    int nthreads;            /* decode threads; 0 = OpenMP's default */
} ac_dataset_opts;

typedef struct ac_dataset ac_dataset;

ac_dataset *ac_dataset_open(const char *source, const ac_dataset_opts *opts, ac_err *err);
ac_dataset *ac_dataset_open_idx(const char *images, const char *labels, const ac_dataset_opts *opts, ac_err *err);
void ac_dataset_destroy(ac_dataset **p);

ac_dataset_source ac_dataset_source_kind(const ac_dataset *ds);
const char *ac_dataset_source_name(const ac_dataset *ds);
int64_t ac_dataset_count(const ac_dataset *ds);
int ac_dataset_ninputs(const ac_dataset *ds);
/* Per-sample shape of input i (no batch dimension); returns the rank. */
int ac_dataset_sample_shape(const ac_dataset *ds, int input, int64_t *dims);
size_t ac_dataset_sample_elems(const ac_dataset *ds, int input);
/* The stored element type ("float32" for decoded images). */
const char *ac_dataset_dtype(const ac_dataset *ds, int input);
/* The number of LMDB records (1 per sample for other sources). */
int64_t ac_dataset_nrecords(const ac_dataset *ds);

/* Samples [index, index + count) of input `input`, as float32, into out
 * (count * sample_elems floats). Errors name the sample's file/record. */
int ac_dataset_read(ac_dataset *ds, int input, int64_t index, int64_t count, float *out, ac_err *err);

ac_label_kind ac_dataset_label_kind(const ac_dataset *ds);
const ac_labels *ac_dataset_labels(const ac_dataset *ds); /* NULL when unlabelled */

/* "images/a.jpg", "list.txt line 3 (a.jpg)", "db record 7 (key ...)". */
void ac_dataset_where(const ac_dataset *ds, int64_t index, char *buf, size_t n);

/* SHA-256 of the content (see docs/datasets.md): file/record bytes in order,
 * the labels, and the preprocessing, layout, channels and size. Paths do not
 * count: the same data in another folder hashes the same. Computed once. */
int ac_dataset_hash(ac_dataset *ds, uint8_t out[32], ac_err *err);

/* A shard: a contiguous index range of a dataset named by its hash. */
typedef struct {
    uint8_t dataset[32];
    int64_t begin, end;
} ac_shard;

/* Shard i of n over count samples: [count*i/n, count*(i+1)/n). */
void ac_shard_range(int64_t count, int nshards, int i, int64_t *begin, int64_t *end);
int ac_dataset_shard(ac_dataset *ds, int nshards, int i, ac_shard *out, ac_err *err);

/* Samples used for `iterations` batches of `batch`; iterations <= 0 means all
 * (calib_iterations / test_iterations = 0). */
int64_t ac_dataset_limit(int64_t count, int64_t iterations, int64_t batch);

typedef struct {
    int batch;       /* samples per record; 0 = 1 */
    int overwrite;   /* replace an existing output folder */
    int skip_bad;    /* undecodable samples: warn and skip instead of failing */
    FILE *log;       /* warnings (skips); NULL = stderr */
} ac_dataset_write_opts;

/* Writes the dataset (all inputs, float32, labels) as an LMDB of our format,
 * atomically. *written / *skipped get the sample counts. */
int ac_dataset_write_lmdb(ac_dataset *ds, const char *dir, const ac_dataset_write_opts *o, int64_t *written,
                          int64_t *skipped, ac_err *err);

#endif
