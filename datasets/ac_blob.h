/* ac_blob: models and datasets as blobs for the farm (docs/worker.md §3).
 * The coordinator packs them (a model is its file's bytes; a dataset is an
 * archive of its files), uploads them once per job by hash, and workers
 * unpack them into their cache.
 *
 * Dataset archive (msgpack, strict on reading):
 *   ["ac-dataset-blob", 1, kind, source, labels, [[relative path, bin bytes], ...]]
 * kind "idx": source and labels are the idx image and label files' relative
 * paths; kind "path": source is the relative path ac_dataset_open gets ("" =
 * the folder holding the files: an image folder or an LMDB), labels is the
 * folder of YOLO label files (".yolo_labels", packed when the options name
 * one) or "".
 * Relative paths are '/'-separated, non-empty components other than "." and
 * "..", no NUL or newline, at most 1024 bytes, each given once, in byte-wise
 * sorted order (so the same files always give the same archive bytes).
 *
 * Hashes: a model blob's hash is the SHA-256 of the file's bytes; a dataset
 * blob's hash is the content hash of the dataset opened with the job's
 * options (ac_dataset_hash: it covers the preprocessing and the input
 * layout), which is the task's data_hash; a worker checks it after opening. */
#ifndef AC_BLOB_H
#define AC_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_dataset.h"
#include "ac_err.h"

#define AC_BLOB_PATH_MAX 4096
#define AC_BLOB_REL_MAX 1024

/* Where an unpacked (or local) dataset is opened from. */
typedef struct {
    bool idx;                          /* ac_dataset_open_idx(source, labels) */
    char source[AC_BLOB_PATH_MAX];     /* else ac_dataset_open(source) */
    char labels[AC_BLOB_PATH_MAX];
} ac_blob_dataset_paths;

/* The model file's bytes (*buf malloc'ed) and their SHA-256. */
int ac_blob_pack_model(const char *path, uint8_t **buf, size_t *len, uint8_t hash[32], ac_err *err);

/* Packs a dataset: idx_labels given: the idx pair (source = the image file;
 * idx_labels "" for idx images without labels);
 * else source is an image folder or an LMDB folder (its regular files, not
 * recursive, lock.mdb left out) or an ImageList file (the list and the images
 * it names, which must be relative paths inside the list's folder).
 * When opts is given, *hash is the content hash of the dataset opened with
 * them (what tasks carry as data_hash); otherwise the SHA-256 of the archive. */
int ac_blob_pack_dataset(const char *source, const char *idx_labels, const ac_dataset_opts *opts, uint8_t **buf,
                         size_t *len, uint8_t hash[32], ac_err *err);

/* Writes the archive's files under dir (created; must not hold them already)
 * and a manifest (dir/ac-blob-manifest); out gets the paths to open. */
int ac_blob_unpack_dataset(const uint8_t *buf, size_t len, const char *dir, ac_blob_dataset_paths *out,
                           ac_err *err);
/* The paths of a folder written by ac_blob_unpack_dataset (from its manifest). */
int ac_blob_unpacked_paths(const char *dir, ac_blob_dataset_paths *out, ac_err *err);

ac_dataset *ac_blob_open_dataset(const ac_blob_dataset_paths *p, const ac_dataset_opts *opts, ac_err *err);

#endif
