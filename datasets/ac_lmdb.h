/* ac_lmdb: LMDB environments through liblmdb.
 *  - reader: opens read-only, takes one read transaction for the handle's life
 *    and lists every (key, value) in key order; values point into the map, so
 *    any thread may read them while the handle lives.
 *  - writer: builds the database in "<dir>.tmp-<pid>" and renames it to <dir>
 *    on commit, so a crash or an error never leaves a half-written LMDB.
 *  - Caffe Datum values (convert_imageset's format) decoded to an image. */
#ifndef AC_LMDB_H
#define AC_LMDB_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"
#include "ac_image.h"
#include "ac_labels.h"
#include "ac_record.h"

typedef struct ac_lmdb ac_lmdb;

int ac_lmdb_open(const char *dir, ac_lmdb **out, ac_err *err);
void ac_lmdb_close(ac_lmdb **p);
int64_t ac_lmdb_count(const ac_lmdb *db);
void ac_lmdb_get(const ac_lmdb *db, int64_t i, const uint8_t **key, size_t *klen, const uint8_t **val,
                 size_t *vlen);
/* "DIR record 12 (key 0000000012)" for error messages. */
void ac_lmdb_where(const ac_lmdb *db, int64_t i, char *buf, size_t n);

typedef struct ac_lmdb_writer ac_lmdb_writer;

/* dir must not exist unless overwrite (then it is replaced on commit). */
int ac_lmdb_writer_new(const char *dir, int overwrite, ac_lmdb_writer **out, ac_err *err);
/* One record of our format; labels (may be NULL) supplies samples
 * [label_first, label_first + batch) for data.label. */
int ac_lmdb_writer_put(ac_lmdb_writer *w, const ac_rec_tensor *t, int n, const ac_labels *labels,
                       int64_t label_first, ac_err *err);
/* A raw value under the next key (tests write Caffe Datum LMDBs with it). */
int ac_lmdb_writer_put_raw(ac_lmdb_writer *w, const void *val, size_t len, ac_err *err);
int64_t ac_lmdb_writer_count(const ac_lmdb_writer *w);
int ac_lmdb_writer_commit(ac_lmdb_writer *w, ac_err *err);
/* Without a commit, removes everything written. */
void ac_lmdb_writer_destroy(ac_lmdb_writer **p);

/* Caffe Datum -> image (HWC, u8 or f32; BGR as Caffe stores it), channels
 * 1 or 3 for encoded images. */
int ac_datum_decode(const uint8_t *val, size_t len, const char *name, ac_image_decoder *dec, int channels,
                    ac_image *img, int32_t *label, ac_err *err);
/* A Datum value (protobuf-c) for tests: raw CHW uint8 data, or encoded bytes. */
int ac_datum_encode(int channels, int height, int width, const uint8_t *data, size_t len, int encoded,
                    int32_t label, uint8_t **out, size_t *out_len, ac_err *err);

#endif
