/* ac_ref_cache: the fp32 model's outputs of scored batches, kept so that
 * scoring many candidates against the fp32 reference (the similarity score,
 * the search's subset rounds) runs the fp32 model once per batch rather than
 * once per candidate.
 *
 * An entry is the float outputs of one batch, n real samples from sample
 * `first`, under a 64-bit key the caller derives from what decides them (the
 * graph, the dataset and its preprocessing, the batch size). Memory is
 * bounded: entries of other keys are dropped first, and a batch that still
 * does not fit is simply not kept. Not thread-safe (one per worker). */
#ifndef AC_REF_CACHE_H
#define AC_REF_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ac_ref_cache ac_ref_cache;

ac_ref_cache *ac_ref_cache_new(size_t max_bytes);
void ac_ref_cache_destroy(ac_ref_cache **p);

/* The outputs stored for (key, first, n): outs[o] points to n * elems[o]
 * floats; NULL when absent. Valid until the next put or clear. */
const float *const *ac_ref_cache_get(ac_ref_cache *c, uint64_t key, int64_t first, int n);

/* Stores copies of the first n * elems[o] floats of each of the nout outputs.
 * Returns 1 when stored, 0 when it did not fit, -1 when out of memory. */
int ac_ref_cache_put(ac_ref_cache *c, uint64_t key, int64_t first, int n, int nout, const float *const *outs,
                     const size_t *elems);

/* Drops every entry. */
void ac_ref_cache_clear(ac_ref_cache *c);

/* Entries held, bytes held, and lookups answered / missed (for tests and logs). */
void ac_ref_cache_stats(const ac_ref_cache *c, int *entries, size_t *bytes, int64_t *hits, int64_t *misses);

#endif
