/* ac_worker_cache: a worker's models and datasets, keyed by content hash
 * (docs/worker.md §3). Bounded in bytes on disk with LRU eviction.
 *
 * Blobs arrive as bytes (BLOB chunks) and are stored in the cache folder:
 *   m-<hex>    a model file (ONNX), its SHA-256 checked on put;
 *   d-<hex>/   a dataset archive (datasets/ac_blob.h) unpacked; its content
 *              hash (ac_dataset_hash with the job's options) is checked when
 *              it is first opened.
 * A folder given at start is scanned, so a restarted worker keeps its blobs.
 * Loaded objects live in memory beside their blob: graphs per (model hash,
 * input shapes), one opened dataset per data hash. A dataset at a task's
 * data_path (shared file system) is used in place when it hashes to the
 * task's data_hash.
 *
 * Pointers returned stay valid until an entry is evicted, which happens only
 * in put calls and never to entries used since the last begin_task. All calls
 * are serialised by an internal mutex (the worker loop and its task thread
 * share the cache). */
#ifndef AC_WORKER_CACHE_H
#define AC_WORKER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_dataset.h"
#include "ac_graph.h"

/* Returned (positive) by ac_worker_cache_graph / _dataset when the blob is not held. */
#define AC_CACHE_MISSING 100

typedef struct ac_worker_cache ac_worker_cache;

/* dir NULL: a private folder under $TMPDIR (or /tmp), removed by destroy.
 * max_bytes 0: no bound. */
ac_worker_cache *ac_worker_cache_new(const char *dir, uint64_t max_bytes, ac_err *err);
void ac_worker_cache_destroy(ac_worker_cache **p);

/* Entries used from now on are not evicted until the next begin_task. */
void ac_worker_cache_begin_task(ac_worker_cache *c);

bool ac_worker_cache_has(ac_worker_cache *c, const uint8_t hash[32]);
/* Up to cap hashes (32 bytes each) into out; returns how many blobs are held. */
size_t ac_worker_cache_hashes(ac_worker_cache *c, uint8_t *out, size_t cap);
uint64_t ac_worker_cache_bytes(ac_worker_cache *c);

/* A model file's bytes: SHA-256 must equal hash. */
int ac_worker_cache_put_model(ac_worker_cache *c, const uint8_t hash[32], const uint8_t *buf, size_t len,
                              ac_err *err);
/* A dataset archive: unpacked (strictly); the content hash is checked at the first open. */
int ac_worker_cache_put_dataset(ac_worker_cache *c, const uint8_t hash[32], const uint8_t *buf, size_t len,
                                ac_err *err);

/* The imported, simplified graph of model `hash` with the input shapes string
 * (NULL/"" = the file's). *id is unique per loaded graph (never reused), for
 * callers that cache things built on the graph (see set_evict_hook). */
int ac_worker_cache_graph(ac_worker_cache *c, const uint8_t hash[32], const char *shapes, const ac_graph **g,
                          uint64_t *id, ac_err *err);

/* The dataset whose content hash (with opts) is `hash`: from the cache, or
 * opened at data_path when it is given, readable and hashes to `hash`
 * ("IMAGES|LABELS" names an idx pair). A blob that opens with other content
 * (the task's options do not match data_hash) is an error; the blob stays. */
int ac_worker_cache_dataset(ac_worker_cache *c, const uint8_t hash[32], const char *data_path,
                            const ac_dataset_opts *opts, ac_dataset **ds, ac_err *err);

/* Called (under the cache's lock) before a graph is freed. */
void ac_worker_cache_set_evict_hook(ac_worker_cache *c, void (*fn)(void *ctx, uint64_t graph_id), void *ctx);

#endif
