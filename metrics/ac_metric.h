/* ac_metric: accuracy scores built from mergeable partials.
 *
 * A metric (ac_metric) is a kind plus options. A partial (ac_metric_partial)
 * starts empty, takes samples (ac_metric_partial_add), merges with other
 * partials of the same metric (ac_metric_partial_merge), travels as msgpack
 * bytes (encode/decode), and gives a score (ac_metric_score): one number in
 * [0,1] for the search plus details.
 *
 * Exactness: a partial holds integers (counts, fixed-point cosine sums),
 * per-sample detection records kept sorted by (sample, detection), and the set
 * of sample indices it covers. Merging is therefore exactly associative and
 * commutative: any sharding of the samples, merged in any order, gives the
 * same partial (the same encoded bytes) and a bit-identical score. Adding the
 * same sample twice, or merging partials that share a sample, is an error.
 * docs/metrics.md has the full description. */
#ifndef AC_METRIC_H
#define AC_METRIC_H

#include <stddef.h>
#include <stdint.h>

#include "ac_detect.h"
#include "ac_err.h"
#include "ac_metric_plugin.h"

typedef enum {
    AC_METRIC_SIMILARITY = 1, /* agreement of the candidate with the fp32 outputs, no labels */
    AC_METRIC_CLASSIFY = 2,   /* top-1 / top-k against class labels */
    AC_METRIC_DETECT = 3,     /* mAP against boxes, or against the fp32 model's detections */
    AC_METRIC_PLUGIN = 4      /* a user's shared object (ac_metric_plugin.h) */
} ac_metric_kind;

typedef struct {
    ac_metric_kind kind;
    int32_t output;     /* classify, similarity: the output holding the class scores */
    int32_t topk;       /* classify: k of the second accuracy (default 5) */
    int32_t classifier; /* similarity: also count top-1 agreement on `output`, and score by it */
    ac_detect_config detect;    /* detect */
    const char *plugin_path;    /* plugin: the .so to dlopen */
    const char *plugin_options; /* plugin: the string given to its init (NULL: "") */
} ac_metric_options;

/* Scores and details. Fields a kind does not produce are 0. */
typedef struct {
    double score; /* the main score in [0,1] the search uses (see docs/metrics.md §1) */
    int64_t samples;
    /* classify */
    int32_t topk;
    int64_t top1_correct, topk_correct;
    double top1, topk_accuracy;
    /* similarity */
    double cosine;     /* mean over samples and outputs of the per-sample cosine */
    double cosine_min; /* the smallest per-sample, per-output cosine */
    int64_t top1_agree;
    double top1_agreement;
    /* detect */
    double map50;     /* mAP@0.5, all-point interpolation (VOC2010+) */
    double map50_95;  /* COCO mAP@[.5:.95], 101-point interpolation */
    double map50_101; /* mAP@0.5 with COCO's 101-point interpolation (pycocotools' AP50) */
    int64_t detections, gt_boxes;
    int32_t classes_with_gt;
    int32_t labelled; /* 1: scored against labels; 0: against the fp32 model's detections */
    /* plugin */
    char details[256];
} ac_metric_result;

typedef struct ac_metric ac_metric;
typedef struct ac_metric_partial ac_metric_partial;

/* Defaults: output 0, topk 5, detect config for AC_DECODE_SSD. */
void ac_metric_options_init(ac_metric_options *o, ac_metric_kind kind);
const char *ac_metric_kind_name(ac_metric_kind kind); /* "similarity", "classify", "detect", "plugin" */

/* Checks the options (and loads the plug-in). NULL with a message on error. */
ac_metric *ac_metric_new(const ac_metric_options *o, ac_err *err);
void ac_metric_destroy(ac_metric **p);
ac_metric_kind ac_metric_get_kind(const ac_metric *m);
/* A canonical text of the options; partials of metrics whose descriptions
 * differ do not merge. fingerprint: its 64-bit FNV-1a hash, carried in every
 * encoded partial. */
const char *ac_metric_describe(const ac_metric *m);
uint64_t ac_metric_fingerprint(const ac_metric *m);

/* An empty partial of m (m must outlive it). NULL only when out of memory. */
ac_metric_partial *ac_metric_partial_new(const ac_metric *m, ac_err *err);
void ac_metric_partial_destroy(ac_metric_partial **p);

/* Adds samples first_sample .. first_sample + nsamples - 1. Every tensor's
 * dims[0] is nsamples (sample i is the i-th slice). refs: the fp32 outputs
 * (similarity: required, same shapes as outputs; detect without labels:
 * required; may be NULL otherwise). labels: nsamples entries (classify:
 * required; detect: when present every entry must have has_boxes) or NULL.
 * On error the partial is unchanged. */
int ac_metric_partial_add(ac_metric_partial *p, int64_t first_sample, int64_t nsamples,
                          const ac_metric_tensor *outputs, int32_t noutputs, const ac_metric_tensor *refs,
                          int32_t nrefs, const ac_metric_label *labels, ac_err *err);

/* dst += src. Both partials must be of the same metric (same fingerprint) and
 * cover disjoint samples. On error dst is unchanged. */
int ac_metric_partial_merge(ac_metric_partial *dst, const ac_metric_partial *src, ac_err *err);

/* msgpack bytes (malloc'ed, *bytes freed by the caller). The encoding of a
 * partial depends only on its content, not on how it was built. */
int ac_metric_partial_encode(const ac_metric_partial *p, uint8_t **bytes, size_t *len, ac_err *err);
/* Strict: the format, version, kind and options fingerprint must be m's, every
 * count and record must be consistent; garbage or truncated bytes give an
 * error naming the field, never a crash. */
int ac_metric_partial_decode(const ac_metric *m, const uint8_t *bytes, size_t len, ac_metric_partial **out,
                             ac_err *err);

int64_t ac_metric_partial_samples(const ac_metric_partial *p);
/* Whether sample index s has been added (to this partial or one merged into it). */
int ac_metric_partial_has_sample(const ac_metric_partial *p, int64_t s);

/* The score and its details. Deterministic: a function of the partial's content only. */
int ac_metric_score(const ac_metric_partial *p, ac_metric_result *r, ac_err *err);

/* An upper bound of the score a partial can reach once it holds total_samples
 * samples (the ones it holds plus total_samples - held, still to come), for a
 * search that only needs to know whether a candidate can still meet its budget.
 * Exists for scores that are means over samples of per-sample values in [0,1]:
 * classify (top-1), similarity (top-1 agreement, or mean cosine). The bound
 * assumes every missing sample scores 1 and is computed with the same
 * operations as ac_metric_score on the integer sums, so the final score is
 * never above it, bit for bit. Returns 1 with *bound set, or 0 when the kind
 * has no such bound (detect: mAP is not a mean over samples; plugin: unknown)
 * or the partial already holds more than total_samples samples. */
int ac_metric_score_bound(const ac_metric_partial *p, int64_t total_samples, double *bound);

#endif
