/* ac_metric_plugin: the C ABI of a user's own post-processing and score,
 * loaded at run time (dlopen) as a metric of kind "plugin".
 *
 * This header is self-contained (it includes only <stdint.h> and <stddef.h>)
 * so a plug-in can be built without the rest of autocalib. It also defines the
 * plain data types every metric receives: tensors and labels.
 *
 * A plug-in is a shared object that exports
 *
 *     const ac_metric_plugin *ac_metric_plugin_v1(void);
 *
 * returning a pointer to a static table whose abi_version is
 * AC_METRIC_PLUGIN_ABI and whose struct_size is sizeof(ac_metric_plugin) as
 * the plug-in was compiled. Every function pointer must be set.
 *
 * The contract (docs/metrics.md §6), the same one the built-in metrics keep:
 *  - partial_new returns an empty partial; add folds one sample into it;
 *  - merge(dst, src) folds src into dst; merging is associative and
 *    deterministic: any sharding of the samples, merged in any order, gives
 *    partials whose score is bit-identical (use integers, or keep per-sample
 *    values keyed by sample index and reduce them in index order at score time);
 *  - encode gives bytes that decode turns back into an equal partial; decode
 *    must reject garbage and truncated input with a message, never crash;
 *  - score gives one number in [0, 1] (higher is better) for the search, and
 *    an optional one-line text of details.
 * The host calls the plug-in from one thread at a time per state, never
 * passes NULL for a partial, and owns the sample bookkeeping (which sample
 * indices a partial holds; a sample is added at most once over all shards). */
#ifndef AC_METRIC_PLUGIN_H
#define AC_METRIC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define AC_METRIC_PLUGIN_ABI 1u
#define AC_METRIC_MAX_DIMS 8

/* A dense row-major float tensor. For a plug-in's add, dims[0] is 1 (one sample). */
typedef struct {
    const float *data;
    int32_t ndim;
    int64_t dims[AC_METRIC_MAX_DIMS];
} ac_metric_tensor;

/* One ground-truth box; the same layout as datasets/ac_labels.h's ac_box. */
typedef struct {
    int32_t cls;
    float x1, y1, x2, y2;
} ac_metric_box;

/* One sample's label. cls < 0: no class label. has_boxes: boxes/nboxes hold
 * the sample's objects (nboxes may be 0: an image without objects). Boxes are
 * corners; when img_w and img_h are > 0 they are pixels of an img_w x img_h
 * image and are normalised by them, otherwise they are already in [0,1] of the
 * image (the frame detections are decoded into). */
typedef struct {
    int32_t cls;
    int32_t has_boxes;
    const ac_metric_box *boxes;
    int32_t nboxes;
    float img_w, img_h;
} ac_metric_label;

typedef struct ac_metric_plugin {
    uint32_t abi_version; /* AC_METRIC_PLUGIN_ABI */
    uint32_t struct_size; /* sizeof(ac_metric_plugin) */
    const char *name;     /* short identifier, e.g. "within_tol" */

    /* Parses the options string (may be ""), returns the plug-in's state, or
     * NULL with a message in err (errlen bytes, NUL-terminated). */
    void *(*init)(const char *options, char *err, size_t errlen);
    void (*fini)(void *state);

    void *(*partial_new)(void *state); /* NULL: out of memory */
    void (*partial_free)(void *state, void *partial);

    /* One sample: the candidate (int8) model's outputs and, when the host has
     * them, the fp32 reference outputs (nrefs may be 0) and the label (may be
     * NULL). Returns 0, or non-zero with a message. */
    int (*add)(void *state, void *partial, int64_t sample_index, const ac_metric_tensor *outputs, int32_t noutputs,
               const ac_metric_tensor *refs, int32_t nrefs, const ac_metric_label *label, char *err, size_t errlen);

    /* dst += src. Returns 0, or non-zero with a message. */
    int (*merge)(void *state, void *dst, const void *src, char *err, size_t errlen);

    /* Writes the partial's bytes into buf when cap is large enough; always
     * returns the number of bytes the encoding takes (0: failure). */
    size_t (*encode)(void *state, const void *partial, uint8_t *buf, size_t cap);

    /* A new partial from bytes, or NULL with a message. */
    void *(*decode)(void *state, const uint8_t *bytes, size_t len, char *err, size_t errlen);

    /* *score in [0, 1]; details (may be left empty) is a one-line text. */
    int (*score)(void *state, const void *partial, double *score, char *details, size_t details_len, char *err,
                 size_t errlen);
} ac_metric_plugin;

typedef const ac_metric_plugin *(*ac_metric_plugin_entry_fn)(void);
#define AC_METRIC_PLUGIN_ENTRY "ac_metric_plugin_v1"

#endif
