#include "ac_metric.h"

#include <dlfcn.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTIAL_FORMAT "ac_metric_partial"
#define PARTIAL_VERSION 1
#define COS_SCALE 4294967296.0 /* per-sample cosines are summed as integers of 2^-32 */
#define MAX_SAMPLE_INDEX ((int64_t)1 << 62)
#define MAX_OUTPUTS 4096
#define DET_RECORD_BYTES 24

/* ------------------------------------------------------------------ types */

struct ac_metric {
    ac_metric_options o; /* plugin_path / plugin_options point at our copies */
    char *plugin_path, *plugin_options;
    char *desc;
    uint64_t fingerprint;
    void *dl;
    const ac_metric_plugin *plugin;
    void *plugin_state;
};

/* One detection of one sample, as the partial keeps it. match: bit t is set
 * when it is a true positive at IoU threshold t (ac_detect_iou_threshold). */
typedef struct {
    int64_t sample;
    int32_t det; /* rank within its sample, (score desc, class, index) */
    int32_t cls;
    float score;
    uint16_t match;
} det_rec;

struct ac_metric_partial {
    const ac_metric *m;
    int64_t *ranges; /* sorted, disjoint, non-adjacent [first, end) pairs */
    int64_t nranges, ranges_cap;
    int64_t nsamples;
    /* classify */
    int64_t top1, topk;
    /* similarity */
    int32_t nout;       /* 0 until the first sample */
    int64_t *cos_q32;   /* per output: sum of round(cosine * 2^32) */
    double cos_min;     /* 2.0 until the first sample */
    int64_t agree;
    /* detect */
    int32_t labelled;   /* -1 until the first sample, then 1 (labels) or 0 (fp32 detections) */
    int64_t *gt;        /* per class: ground-truth boxes */
    det_rec *dets;      /* sorted by (sample, det) */
    int64_t ndets, dets_cap;
    /* plugin */
    void *pp;
};

void ac_metric_options_init(ac_metric_options *o, ac_metric_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->output = 0;
    o->topk = 5;
    ac_detect_config_init(&o->detect, AC_DECODE_SSD);
}

const char *ac_metric_kind_name(ac_metric_kind kind)
{
    switch (kind) {
    case AC_METRIC_SIMILARITY: return "similarity";
    case AC_METRIC_CLASSIFY: return "classify";
    case AC_METRIC_DETECT: return "detect";
    case AC_METRIC_PLUGIN: return "plugin";
    }
    return "?";
}

static const char *decode_kind_name(ac_decode_kind k)
{
    switch (k) {
    case AC_DECODE_SSD: return "ssd";
    case AC_DECODE_SSD_PRIORS: return "ssd_priors";
    case AC_DECODE_YOLO: return "yolo";
    case AC_DECODE_DETS: return "dets";
    case AC_DECODE_GRID: return "grid";
    case AC_DECODE_ANCHORS: return "anchors";
    }
    return "?";
}

/* ------------------------------------------------------------------ description */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* Floats as C99 hex (%a) so the text, and its hash, identify the exact values. */
static char *describe(const ac_metric_options *o, const ac_metric_plugin *plugin)
{
    strbuf b = {0};
    sb_printf(&b, "%s", ac_metric_kind_name(o->kind));
    switch (o->kind) {
    case AC_METRIC_CLASSIFY: sb_printf(&b, " output=%d topk=%d", o->output, o->topk); break;
    case AC_METRIC_SIMILARITY: sb_printf(&b, " output=%d classifier=%d", o->output, o->classifier ? 1 : 0); break;
    case AC_METRIC_PLUGIN:
        sb_printf(&b, " name=%s options=%s", plugin ? plugin->name : "?", o->plugin_options ? o->plugin_options : "");
        break;
    case AC_METRIC_DETECT: {
        const ac_detect_config *c = &o->detect;
        sb_printf(&b, " decoder=%s nclasses=%d in=%dx%d score_thr=%a ref_score_thr=%a nms_iou=%a max_det=%d agnostic=%d",
                  decode_kind_name(c->kind), c->nclasses, c->in_w, c->in_h, (double)c->score_threshold,
                  (double)c->ref_score_threshold, (double)c->nms_iou, c->max_detections,
                  c->class_agnostic_nms ? 1 : 0);
        if (c->kind == AC_DECODE_SSD || c->kind == AC_DECODE_SSD_PRIORS)
            sb_printf(&b, " scores=%d boxes=%d background=%d", c->scores_output, c->boxes_output, c->background);
        if (c->kind == AC_DECODE_SSD_PRIORS) {
            sb_printf(&b, " variances=%a,%a clip=%d levels=", (double)c->center_variance, (double)c->size_variance,
                      c->clip_priors ? 1 : 0);
            for (int l = 0; l < c->nlevels; l++) {
                sb_printf(&b, "%s%d:", l ? ";" : "", c->strides[l]);
                for (int s = 0; s < c->nsizes[l]; s++)
                    sb_printf(&b, "%s%a", s ? "," : "", (double)c->min_sizes[l][s]);
            }
        }
        if (c->kind == AC_DECODE_YOLO) {
            sb_printf(&b, " scale_xy=%a anchors=", (double)c->scale_xy);
            for (int a = 0; a < c->nanchors; a++)
                sb_printf(&b, "%s%a,%a", a ? ";" : "", (double)c->anchors[a][0], (double)c->anchors[a][1]);
            sb_printf(&b, " heads=");
            for (int h = 0; h < c->nheads; h++) {
                sb_printf(&b, "%s%d:", h ? ";" : "", c->head_outputs[h]);
                for (int a = 0; a < c->head_nmask[h]; a++)
                    sb_printf(&b, "%s%d", a ? "," : "", c->head_mask[h][a]);
            }
        }
        if (c->kind == AC_DECODE_DETS)
            sb_printf(&b, " dets=%d pixels=%d", c->dets_output, c->dets_pixels ? 1 : 0);
        if (c->kind == AC_DECODE_GRID || c->kind == AC_DECODE_ANCHORS) {
            sb_printf(&b, " levels=");
            for (int l = 0; l < c->nlevels; l++)
                sb_printf(&b, "%s%d:%d,%d,%d,%d", l ? ";" : "", c->strides[l], c->level_cls[l], c->level_obj[l],
                          c->level_box[l], c->level_anchors[l]);
        }
        break;
    }
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ------------------------------------------------------------------ metric */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int load_plugin(ac_metric *m, ac_err *err)
{
    if (!m->o.plugin_path || !m->o.plugin_path[0])
        return ac_err_set(err, AC_E_INVALID, "metric plugin: no shared object path given");
    m->dl = dlopen(m->o.plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) {
        const char *why = dlerror();
        return ac_err_set(err, AC_E_IO, "metric plugin '%s': cannot load: %s", m->o.plugin_path, why ? why : "?");
    }
    ac_metric_plugin_entry_fn entry;
    void *sym = dlsym(m->dl, AC_METRIC_PLUGIN_ENTRY);
    memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer, as POSIX allows */
    if (!sym)
        return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': does not export %s()", m->o.plugin_path,
                          AC_METRIC_PLUGIN_ENTRY);
    const ac_metric_plugin *pl = entry();
    if (!pl)
        return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': %s() returned NULL", m->o.plugin_path,
                          AC_METRIC_PLUGIN_ENTRY);
    if (pl->abi_version != AC_METRIC_PLUGIN_ABI)
        return ac_err_set(err, AC_E_UNSUPPORTED, "metric plugin '%s': ABI version %u, this build supports %u",
                          m->o.plugin_path, pl->abi_version, AC_METRIC_PLUGIN_ABI);
    if (pl->struct_size < sizeof(ac_metric_plugin))
        return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': struct_size %u is smaller than %zu",
                          m->o.plugin_path, pl->struct_size, sizeof(ac_metric_plugin));
    if (!pl->name || !pl->name[0] || !pl->init || !pl->fini || !pl->partial_new || !pl->partial_free || !pl->add ||
        !pl->merge || !pl->encode || !pl->decode || !pl->score)
        return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': its table must set name and every function",
                          m->o.plugin_path);
    char msg[512] = "";
    m->plugin_state = pl->init(m->o.plugin_options ? m->o.plugin_options : "", msg, sizeof msg);
    if (!m->plugin_state) {
        msg[sizeof msg - 1] = '\0';
        return ac_err_set(err, AC_E_INVALID, "metric plugin '%s' (%s): init failed: %s", m->o.plugin_path, pl->name,
                          msg[0] ? msg : "(no message)");
    }
    m->plugin = pl;
    return AC_OK;
}

static int check_options(const ac_metric_options *o, ac_err *err)
{
    switch (o->kind) {
    case AC_METRIC_CLASSIFY:
        if (o->topk < 1 || o->topk > 1000000)
            return ac_err_set(err, AC_E_INVALID, "metric classify: topk %d must be in 1..1000000", o->topk);
        /* fall through */
    case AC_METRIC_SIMILARITY:
        if (o->output < 0 || o->output >= MAX_OUTPUTS)
            return ac_err_set(err, AC_E_INVALID, "metric %s: output %d must be in 0..%d", ac_metric_kind_name(o->kind),
                              o->output, MAX_OUTPUTS - 1);
        return AC_OK;
    case AC_METRIC_DETECT: return ac_detect_config_check(&o->detect, err);
    case AC_METRIC_PLUGIN: return AC_OK;
    }
    return ac_err_set(err, AC_E_INVALID, "metric: kind %d is not one of 1..4", (int)o->kind);
}

ac_metric *ac_metric_new(const ac_metric_options *o, ac_err *err)
{
    if (check_options(o, err))
        return NULL;
    ac_metric *m = calloc(1, sizeof *m);
    if (!m) {
        ac_err_set(err, AC_E_NOMEM, "metric: out of memory");
        return NULL;
    }
    m->o = *o;
    m->o.plugin_path = m->o.plugin_options = NULL;
    if (o->kind == AC_METRIC_PLUGIN) {
        m->plugin_path = dup_str(o->plugin_path ? o->plugin_path : "");
        m->plugin_options = dup_str(o->plugin_options ? o->plugin_options : "");
        if (!m->plugin_path || !m->plugin_options) {
            ac_err_set(err, AC_E_NOMEM, "metric: out of memory");
            ac_metric_destroy(&m);
            return NULL;
        }
        m->o.plugin_path = m->plugin_path;
        m->o.plugin_options = m->plugin_options;
        if (load_plugin(m, err)) {
            ac_metric_destroy(&m);
            return NULL;
        }
    }
    m->desc = describe(&m->o, m->plugin);
    if (!m->desc) {
        ac_err_set(err, AC_E_NOMEM, "metric: out of memory");
        ac_metric_destroy(&m);
        return NULL;
    }
    m->fingerprint = fnv1a64(m->desc);
    return m;
}

void ac_metric_destroy(ac_metric **p)
{
    if (!p || !*p)
        return;
    ac_metric *m = *p;
    if (m->plugin && m->plugin_state)
        m->plugin->fini(m->plugin_state);
    if (m->dl)
        dlclose(m->dl);
    free(m->plugin_path);
    free(m->plugin_options);
    free(m->desc);
    free(m);
    *p = NULL;
}

ac_metric_kind ac_metric_get_kind(const ac_metric *m) { return m->o.kind; }
const char *ac_metric_describe(const ac_metric *m) { return m->desc; }
uint64_t ac_metric_fingerprint(const ac_metric *m) { return m->fingerprint; }

/* ------------------------------------------------------------------ partial */

static void plugin_msg(ac_err *err, const ac_metric *m, const char *what, const char *msg)
{
    ac_err_set(err, AC_E_INVALID, "metric plugin '%s': %s: %s", m->plugin->name, what, msg[0] ? msg : "(no message)");
}

ac_metric_partial *ac_metric_partial_new(const ac_metric *m, ac_err *err)
{
    ac_metric_partial *p = calloc(1, sizeof *p);
    if (!p)
        goto oom;
    p->m = m;
    p->cos_min = 2.0;
    p->labelled = -1;
    if (m->o.kind == AC_METRIC_DETECT) {
        p->gt = calloc((size_t)m->o.detect.nclasses, sizeof *p->gt);
        if (!p->gt)
            goto oom;
    }
    if (m->o.kind == AC_METRIC_PLUGIN) {
        p->pp = m->plugin->partial_new(m->plugin_state);
        if (!p->pp)
            goto oom;
    }
    return p;
oom:
    ac_metric_partial_destroy(&p);
    ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory");
    return NULL;
}

void ac_metric_partial_destroy(ac_metric_partial **pp)
{
    if (!pp || !*pp)
        return;
    ac_metric_partial *p = *pp;
    if (p->pp)
        p->m->plugin->partial_free(p->m->plugin_state, p->pp);
    free(p->ranges);
    free(p->cos_q32);
    free(p->gt);
    free(p->dets);
    free(p);
    *pp = NULL;
}

int64_t ac_metric_partial_samples(const ac_metric_partial *p) { return p->nsamples; }

int ac_metric_partial_has_sample(const ac_metric_partial *p, int64_t s)
{
    int64_t lo = 0, hi = p->nranges;
    while (lo < hi) { /* first range whose end > s */
        int64_t mid = lo + (hi - lo) / 2;
        if (p->ranges[2 * mid + 1] > s)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < p->nranges && p->ranges[2 * lo] <= s;
}

/* Union of two range lists into a new array; fails naming a shared sample. */
static int ranges_union(const int64_t *a, int64_t na, const int64_t *b, int64_t nb, int64_t **out, int64_t *nout,
                        ac_err *err)
{
    int64_t *r = malloc((size_t)(na + nb > 0 ? na + nb : 1) * 2 * sizeof *r);
    if (!r)
        return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory");
    int64_t i = 0, j = 0, n = 0;
    while (i < na || j < nb) {
        const int64_t *next = (j >= nb || (i < na && a[2 * i] < b[2 * j])) ? &a[2 * i++] : &b[2 * j++];
        if (n > 0 && next[0] < r[2 * n - 1]) {
            int64_t s = next[0];
            free(r);
            return ac_err_set(err, AC_E_INVALID,
                              "metric partial: sample %lld is in both partials (each sample may be added once)",
                              (long long)s);
        }
        if (n > 0 && next[0] == r[2 * n - 1]) {
            r[2 * n - 1] = next[1]; /* adjacent: coalesce */
        } else {
            r[2 * n] = next[0];
            r[2 * n + 1] = next[1];
            n++;
        }
    }
    *out = r;
    *nout = n;
    return AC_OK;
}

static int cmp_rec_key(const det_rec *a, const det_rec *b)
{
    if (a->sample != b->sample)
        return a->sample < b->sample ? -1 : 1;
    return (a->det > b->det) - (a->det < b->det);
}

/* The merged record array (new allocation, or NULL when both are empty). */
static int merge_dets(const ac_metric_partial *dst, const ac_metric_partial *src, det_rec **out, ac_err *err)
{
    int64_t n = dst->ndets + src->ndets;
    *out = NULL;
    if (n == 0)
        return AC_OK;
    det_rec *r = malloc((size_t)n * sizeof *r);
    if (!r)
        return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory merging %lld detections", (long long)n);
    int64_t i = 0, j = 0, k = 0;
    while (i < dst->ndets || j < src->ndets) {
        if (j >= src->ndets || (i < dst->ndets && cmp_rec_key(&dst->dets[i], &src->dets[j]) < 0))
            r[k++] = dst->dets[i++];
        else
            r[k++] = src->dets[j++];
    }
    *out = r;
    return AC_OK;
}

int ac_metric_partial_merge(ac_metric_partial *dst, const ac_metric_partial *src, ac_err *err)
{
    const ac_metric *m = dst->m;
    if (dst == src)
        return ac_err_set(err, AC_E_INVALID, "metric partial: cannot merge a partial into itself");
    if (src->m != m && src->m->fingerprint != m->fingerprint)
        return ac_err_set(err, AC_E_INVALID, "metric partial: cannot merge partials of different metrics ('%s' and '%s')",
                          m->desc, src->m->desc);
    if (src->nsamples == 0)
        return AC_OK;
    /* Checks first, so that dst is unchanged on error. */
    if (m->o.kind == AC_METRIC_SIMILARITY && dst->nout && src->nout != dst->nout)
        return ac_err_set(err, AC_E_INVALID, "metric similarity: partials have %d and %d outputs", dst->nout,
                          src->nout);
    if (m->o.kind == AC_METRIC_DETECT && dst->labelled >= 0 && src->labelled != dst->labelled)
        return ac_err_set(err, AC_E_INVALID,
                          "metric detect: one partial is scored against labels, the other against fp32 detections");
    int64_t nsamples;
    if (__builtin_add_overflow(dst->nsamples, src->nsamples, &nsamples))
        return ac_err_set(err, AC_E_INVALID, "metric partial: sample count overflows");
    int64_t *cos = NULL;
    if (m->o.kind == AC_METRIC_SIMILARITY) {
        cos = malloc((size_t)src->nout * sizeof *cos);
        if (!cos)
            return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory");
        for (int32_t o = 0; o < src->nout; o++)
            if (__builtin_add_overflow(dst->nout ? dst->cos_q32[o] : 0, src->cos_q32[o], &cos[o])) {
                free(cos);
                return ac_err_set(err, AC_E_INVALID, "metric similarity: cosine sum of output %d overflows", o);
            }
    }
    int64_t *ranges = NULL, nranges = 0;
    if (ranges_union(dst->ranges, dst->nranges, src->ranges, src->nranges, &ranges, &nranges, err)) {
        free(cos);
        return err ? err->code : AC_E_INVALID;
    }
    det_rec *dets = NULL;
    /* Appending (src's records all after dst's, as when a worker adds its
     * samples in order) grows dst in place; otherwise a merged copy is made. */
    int append = m->o.kind == AC_METRIC_DETECT &&
                 (src->ndets == 0 || dst->ndets == 0 || cmp_rec_key(&dst->dets[dst->ndets - 1], &src->dets[0]) < 0);
    if (append && dst->ndets + src->ndets > dst->dets_cap) {
        int64_t cap = dst->dets_cap ? dst->dets_cap : 256;
        while (cap < dst->ndets + src->ndets)
            cap *= 2;
        det_rec *grown = realloc(dst->dets, (size_t)cap * sizeof *grown);
        if (!grown) {
            free(cos);
            free(ranges);
            return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory merging detections");
        }
        dst->dets = grown; /* same content: dst is still unchanged */
        dst->dets_cap = cap;
    }
    if (m->o.kind == AC_METRIC_DETECT && !append) {
        if (merge_dets(dst, src, &dets, err)) {
            free(cos);
            free(ranges);
            return err ? err->code : AC_E_NOMEM;
        }
    }
    if (m->o.kind == AC_METRIC_PLUGIN) {
        char msg[512] = "";
        if (m->plugin->merge(m->plugin_state, dst->pp, src->pp, msg, sizeof msg)) {
            msg[sizeof msg - 1] = '\0';
            free(cos);
            free(ranges);
            plugin_msg(err, m, "merge", msg);
            return AC_E_INVALID;
        }
    }
    /* Commit. */
    free(dst->ranges);
    dst->ranges = ranges;
    dst->nranges = dst->ranges_cap = nranges;
    dst->nsamples = nsamples;
    dst->top1 += src->top1;
    dst->topk += src->topk;
    dst->agree += src->agree;
    if (m->o.kind == AC_METRIC_SIMILARITY) {
        free(dst->cos_q32);
        dst->cos_q32 = cos;
        dst->nout = src->nout;
        if (src->cos_min < dst->cos_min)
            dst->cos_min = src->cos_min;
    }
    if (m->o.kind == AC_METRIC_DETECT) {
        for (int32_t c = 0; c < m->o.detect.nclasses; c++)
            dst->gt[c] += src->gt[c];
        if (append) {
            if (src->ndets)
                memcpy(dst->dets + dst->ndets, src->dets, (size_t)src->ndets * sizeof *src->dets);
            dst->ndets += src->ndets;
        } else {
            free(dst->dets);
            dst->dets = dets;
            dst->ndets = dst->dets_cap = dst->ndets + src->ndets;
        }
        dst->labelled = src->labelled;
    }
    return AC_OK;
}

/* ------------------------------------------------------------------ add */

static int64_t numel_checked(const ac_metric_tensor *t)
{
    if (t->ndim < 1 || t->ndim > AC_METRIC_MAX_DIMS)
        return -1;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0 || __builtin_mul_overflow(n, t->dims[d], &n) || n > ((int64_t)1 << 40))
            return -1;
    }
    return n;
}

static int check_tensors(const char *what, const ac_metric_tensor *t, int32_t n, int64_t nsamples, ac_err *err)
{
    if (n < 0 || n > MAX_OUTPUTS || (n > 0 && !t))
        return ac_err_set(err, AC_E_INVALID, "metric: %d %s tensors (must be 0..%d, with an array)", n, what,
                          MAX_OUTPUTS);
    for (int32_t i = 0; i < n; i++) {
        int64_t ne = numel_checked(&t[i]);
        if (ne < 0)
            return ac_err_set(err, AC_E_INVALID, "metric: %s %d has rank %d or a bad extent (rank 1..%d, extents >= 0)",
                              what, i, t[i].ndim, AC_METRIC_MAX_DIMS);
        if (t[i].dims[0] != nsamples)
            return ac_err_set(err, AC_E_INVALID, "metric: %s %d has %lld samples in dim 0, expected %lld", what, i,
                              (long long)t[i].dims[0], (long long)nsamples);
        if (ne > 0 && !t[i].data)
            return ac_err_set(err, AC_E_INVALID, "metric: %s %d has no data", what, i);
    }
    return AC_OK;
}

/* Sample b of a batch tensor, as a [1, ...] tensor. */
static ac_metric_tensor slice(const ac_metric_tensor *t, int64_t b)
{
    ac_metric_tensor s = *t;
    int64_t per = 1;
    for (int d = 1; d < t->ndim; d++)
        per *= t->dims[d];
    s.dims[0] = 1;
    s.data = t->data ? t->data + b * per : NULL;
    return s;
}

/* Rank of label among the scores: elements strictly greater, plus equal ones
 * at a lower index (ties go to the lower class index; NaNs rank last). */
static int64_t label_rank(const float *x, int64_t n, int64_t label)
{
    float v = x[label];
    if (isnan(v))
        return n;
    int64_t r = 0;
    for (int64_t i = 0; i < n; i++)
        r += x[i] > v || (x[i] == v && i < label);
    return r;
}

static int64_t argmax(const float *x, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best]))
            best = i;
    return best;
}

/* Cosine in double, in [-1,1]; two zero vectors agree (1), a zero against a
 * non-zero vector or any non-finite value does not (0). */
static double cosine(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (!isfinite(ab) || !isfinite(aa) || !isfinite(bb))
        return 0.0;
    if (aa == 0 && bb == 0)
        return 1.0;
    if (aa == 0 || bb == 0)
        return 0.0;
    double c = ab / (sqrt(aa) * sqrt(bb));
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

static int add_classify(ac_metric_partial *t, int64_t first, int64_t ns, const ac_metric_tensor *out, int32_t nout,
                        const ac_metric_label *labels, ac_err *err)
{
    const ac_metric_options *o = &t->m->o;
    if (o->output >= nout)
        return ac_err_set(err, AC_E_INVALID, "metric classify: output %d requested, the model gave %d", o->output,
                          nout);
    if (!labels)
        return ac_err_set(err, AC_E_INVALID, "metric classify: samples %lld.. have no labels", (long long)first);
    const ac_metric_tensor *x = &out[o->output];
    int64_t C = numel_checked(x) / (ns > 0 ? ns : 1);
    for (int64_t b = 0; b < ns; b++) {
        int32_t label = labels[b].cls;
        if (label < 0 || label >= C)
            return ac_err_set(err, AC_E_INVALID, "metric classify: sample %lld: label %d is outside the %lld classes",
                              (long long)(first + b), label, (long long)C);
        int64_t r = label_rank(x->data + b * C, C, label);
        t->top1 += r < 1;
        t->topk += r < o->topk;
    }
    return AC_OK;
}

static int add_similarity(ac_metric_partial *t, int64_t first, int64_t ns, const ac_metric_tensor *out,
                          int32_t nout, const ac_metric_tensor *ref, int32_t nref, ac_err *err)
{
    const ac_metric_options *o = &t->m->o;
    if (!ref || nref != nout || nout < 1)
        return ac_err_set(err, AC_E_INVALID,
                          "metric similarity: needs the fp32 outputs, one per candidate output (got %d and %d)", nref,
                          nout);
    for (int32_t i = 0; i < nout; i++) {
        int same = out[i].ndim == ref[i].ndim;
        for (int d = 0; same && d < out[i].ndim; d++)
            same = out[i].dims[d] == ref[i].dims[d];
        if (!same)
            return ac_err_set(err, AC_E_INVALID, "metric similarity: output %d and its fp32 reference differ in shape",
                              i);
    }
    if (o->classifier && o->output >= nout)
        return ac_err_set(err, AC_E_INVALID, "metric similarity: output %d requested, the model gave %d", o->output,
                          nout);
    t->nout = nout;
    t->cos_q32 = calloc((size_t)nout, sizeof *t->cos_q32);
    if (!t->cos_q32)
        return ac_err_set(err, AC_E_NOMEM, "metric similarity: out of memory");
    for (int32_t i = 0; i < nout; i++) {
        int64_t per = numel_checked(&out[i]) / ns;
        for (int64_t b = 0; b < ns; b++) {
            double c = cosine(out[i].data + b * per, ref[i].data + b * per, per);
            /* |round(c * 2^32)| <= 2^32, so 2^31 samples fit in an int64 */
            if (__builtin_add_overflow(t->cos_q32[i], (int64_t)llround(c * COS_SCALE), &t->cos_q32[i]))
                return ac_err_set(err, AC_E_INVALID, "metric similarity: cosine sum overflows");
            if (c < t->cos_min)
                t->cos_min = c;
        }
    }
    if (o->classifier) {
        int64_t per = numel_checked(&out[o->output]) / ns;
        for (int64_t b = 0; b < ns; b++) {
            int64_t a = argmax(out[o->output].data + b * per, per), r = argmax(ref[o->output].data + b * per, per);
            t->agree += a >= 0 && a == r;
        }
    }
    (void)first;
    return AC_OK;
}

static int push_rec(ac_metric_partial *t, const det_rec *r, ac_err *err)
{
    if (t->ndets == t->dets_cap) {
        int64_t cap = t->dets_cap ? 2 * t->dets_cap : 256;
        det_rec *d = realloc(t->dets, (size_t)cap * sizeof *d);
        if (!d)
            return ac_err_set(err, AC_E_NOMEM, "metric detect: out of memory");
        t->dets = d;
        t->dets_cap = cap;
    }
    t->dets[t->ndets++] = *r;
    return AC_OK;
}

static int add_detect(ac_metric_partial *t, int64_t first, int64_t ns, const ac_metric_tensor *out, int32_t nout,
                      const ac_metric_tensor *ref, int32_t nref, const ac_metric_label *labels, ac_err *err)
{
    const ac_detect_config *c = &t->m->o.detect;
    int rc = ac_detect_check_outputs(c, out, nout, ns, err);
    if (rc)
        return rc;
    if (!labels) {
        if (!ref || nref < 1)
            return ac_err_set(err, AC_E_INVALID,
                              "metric detect: samples %lld.. have neither labels nor fp32 outputs to compare with",
                              (long long)first);
        if ((rc = ac_detect_check_outputs(c, ref, nref, ns, err)))
            return ac_err_prefix(err, "fp32 reference: ");
    }
    t->labelled = labels ? 1 : 0;
    for (int64_t b = 0; b < ns && rc == AC_OK; b++) {
        ac_det *dets = NULL, *refd = NULL;
        ac_metric_box *gt = NULL;
        uint16_t *match = NULL;
        int32_t n = 0, ngt = 0;
        if ((rc = ac_detect_run(c, out, nout, ns, b, c->score_threshold, &dets, &n, err)))
            break;
        if (labels) {
            const ac_metric_label *l = &labels[b];
            if (!l->has_boxes || l->nboxes < 0 || (l->nboxes > 0 && !l->boxes)) {
                rc = ac_err_set(err, AC_E_INVALID, "metric detect: sample %lld has no box label", (long long)(first + b));
            } else {
                ngt = l->nboxes;
                gt = malloc((size_t)(ngt > 0 ? ngt : 1) * sizeof *gt);
                if (!gt)
                    rc = ac_err_set(err, AC_E_NOMEM, "metric detect: out of memory");
                /* a division, not a multiply by the reciprocal: 20/100 gives the float nearest 0.2 */
                float sx = l->img_w > 0 ? l->img_w : 1.f, sy = l->img_h > 0 ? l->img_h : 1.f;
                for (int32_t g = 0; g < ngt && rc == AC_OK; g++) {
                    const ac_metric_box *s = &l->boxes[g];
                    if (s->cls < 0 || s->cls >= c->nclasses)
                        rc = ac_err_set(err, AC_E_INVALID, "metric detect: sample %lld box %d has class %d, must be 0..%d",
                                        (long long)(first + b), g, s->cls, c->nclasses - 1);
                    else if (!(isfinite(s->x1) && isfinite(s->y1) && isfinite(s->x2) && isfinite(s->y2)))
                        rc = ac_err_set(err, AC_E_INVALID, "metric detect: sample %lld box %d has a non-finite corner",
                                        (long long)(first + b), g);
                    else
                        gt[g] = (ac_metric_box){s->cls, s->x1 / sx, s->y1 / sy, s->x2 / sx, s->y2 / sy};
                }
            }
        } else if ((rc = ac_detect_run(c, ref, nref, ns, b, c->ref_score_threshold, &refd, &ngt, err)) == AC_OK) {
            gt = malloc((size_t)(ngt > 0 ? ngt : 1) * sizeof *gt);
            if (!gt)
                rc = ac_err_set(err, AC_E_NOMEM, "metric detect: out of memory");
            for (int32_t g = 0; g < ngt && rc == AC_OK; g++)
                gt[g] = (ac_metric_box){refd[g].cls, refd[g].x1, refd[g].y1, refd[g].x2, refd[g].y2};
        }
        if (rc == AC_OK) {
            match = malloc((size_t)(n > 0 ? n : 1) * sizeof *match);
            if (!match)
                rc = ac_err_set(err, AC_E_NOMEM, "metric detect: out of memory");
        }
        if (rc == AC_OK) {
            ac_detect_match(dets, n, gt, ngt, match);
            for (int32_t g = 0; g < ngt; g++)
                t->gt[gt[g].cls]++;
            for (int32_t i = 0; i < n && rc == AC_OK; i++) {
                det_rec r = {first + b, i, dets[i].cls, dets[i].score, match[i]};
                rc = push_rec(t, &r, err);
            }
        }
        free(dets);
        free(refd);
        free(gt);
        free(match);
    }
    return rc;
}

static int add_plugin(ac_metric_partial *t, int64_t first, int64_t ns, const ac_metric_tensor *out, int32_t nout,
                      const ac_metric_tensor *ref, int32_t nref, const ac_metric_label *labels, ac_err *err)
{
    const ac_metric *m = t->m;
    int32_t nt = nout + nref;
    ac_metric_tensor *s = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *s);
    if (!s)
        return ac_err_set(err, AC_E_NOMEM, "metric plugin: out of memory");
    int rc = AC_OK;
    for (int64_t b = 0; b < ns && rc == AC_OK; b++) {
        for (int32_t i = 0; i < nout; i++)
            s[i] = slice(&out[i], b);
        for (int32_t i = 0; i < nref; i++)
            s[nout + i] = slice(&ref[i], b);
        char msg[512] = "";
        if (m->plugin->add(m->plugin_state, t->pp, first + b, s, nout, nref ? s + nout : NULL, nref,
                           labels ? &labels[b] : NULL, msg, sizeof msg)) {
            msg[sizeof msg - 1] = '\0';
            char what[64];
            snprintf(what, sizeof what, "add sample %lld", (long long)(first + b));
            plugin_msg(err, m, what, msg);
            rc = AC_E_INVALID;
        }
    }
    free(s);
    return rc;
}

int ac_metric_partial_add(ac_metric_partial *p, int64_t first_sample, int64_t nsamples,
                          const ac_metric_tensor *outputs, int32_t noutputs, const ac_metric_tensor *refs,
                          int32_t nrefs, const ac_metric_label *labels, ac_err *err)
{
    if (first_sample < 0 || nsamples < 1 || nsamples > MAX_SAMPLE_INDEX - first_sample)
        return ac_err_set(err, AC_E_INVALID, "metric: samples %lld + %lld: first must be >= 0, count >= 1, end <= 2^62",
                          (long long)first_sample, (long long)nsamples);
    int rc;
    if ((rc = check_tensors("output", outputs, noutputs, nsamples, err)) ||
        (rc = check_tensors("fp32 output", refs, refs ? nrefs : 0, nsamples, err)))
        return rc;
    if (!refs)
        nrefs = 0;
    /* The samples go into a fresh partial that is then merged: p stays
     * unchanged on any error, and a repeated sample is caught by the merge. */
    ac_metric_partial *t = ac_metric_partial_new(p->m, err);
    if (!t)
        return AC_E_NOMEM;
    switch (p->m->o.kind) {
    case AC_METRIC_CLASSIFY: rc = add_classify(t, first_sample, nsamples, outputs, noutputs, labels, err); break;
    case AC_METRIC_SIMILARITY:
        rc = add_similarity(t, first_sample, nsamples, outputs, noutputs, refs, nrefs, err);
        break;
    case AC_METRIC_DETECT:
        rc = add_detect(t, first_sample, nsamples, outputs, noutputs, refs, nrefs, labels, err);
        break;
    case AC_METRIC_PLUGIN:
        rc = add_plugin(t, first_sample, nsamples, outputs, noutputs, refs, nrefs, labels, err);
        break;
    }
    if (rc == AC_OK) {
        t->ranges = malloc(2 * sizeof *t->ranges);
        if (!t->ranges) {
            rc = ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory");
        } else {
            t->ranges[0] = first_sample;
            t->ranges[1] = first_sample + nsamples;
            t->nranges = t->ranges_cap = 1;
            t->nsamples = nsamples;
            rc = ac_metric_partial_merge(p, t, err);
        }
    }
    ac_metric_partial_destroy(&t);
    return rc;
}

/* ------------------------------------------------------------------ score */

static int cmp_rec_rank(const void *pa, const void *pb)
{
    /* class, then score desc, then (sample, det): a total, deterministic order */
    const det_rec *a = pa, *b = pb;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return cmp_rec_key(a, b);
}

static int score_detect(const ac_metric_partial *p, ac_metric_result *r, ac_err *err)
{
    const int32_t C = p->m->o.detect.nclasses;
    r->labelled = p->labelled > 0;
    r->detections = p->ndets;
    for (int32_t c = 0; c < C; c++) {
        r->gt_boxes += p->gt[c];
        r->classes_with_gt += p->gt[c] > 0;
    }
    if (r->classes_with_gt == 0) {
        /* Nothing to find: perfect when nothing was reported, else every detection is false. */
        r->map50 = r->map50_95 = r->map50_101 = p->ndets == 0 ? 1.0 : 0.0;
        r->score = r->map50_95;
        return AC_OK;
    }
    det_rec *d = NULL;
    uint8_t *tp = NULL;
    if (p->ndets > 0) {
        d = malloc((size_t)p->ndets * sizeof *d);
        tp = malloc((size_t)p->ndets);
        if (!d || !tp) {
            free(d);
            free(tp);
            return ac_err_set(err, AC_E_NOMEM, "metric detect: out of memory scoring %lld detections",
                              (long long)p->ndets);
        }
        memcpy(d, p->dets, (size_t)p->ndets * sizeof *d);
        qsort(d, (size_t)p->ndets, sizeof *d, cmp_rec_rank);
    }
    double sum50 = 0, sum50_95 = 0, sum50_101 = 0;
    int64_t g = 0;
    for (int32_t c = 0; c < C; c++) {
        int64_t start = g;
        while (g < p->ndets && d[g].cls == c)
            g++;
        if (p->gt[c] == 0)
            continue; /* classes without ground truth are excluded */
        int64_t n = g - start;
        double ap_t = 0;
        for (int t = 0; t < AC_DETECT_NIOU; t++) {
            for (int64_t i = 0; i < n; i++)
                tp[i] = (d[start + i].match >> t) & 1;
            double ap = n > 0 ? ac_ap_101_point(tp, n, p->gt[c]) : 0.0;
            ap_t += ap;
            if (t == 0) {
                sum50 += n > 0 ? ac_ap_all_point(tp, n, p->gt[c]) : 0.0;
                sum50_101 += ap;
            }
        }
        sum50_95 += ap_t / AC_DETECT_NIOU;
    }
    free(d);
    free(tp);
    r->map50 = sum50 / r->classes_with_gt;
    r->map50_95 = sum50_95 / r->classes_with_gt;
    r->map50_101 = sum50_101 / r->classes_with_gt;
    r->score = r->map50_95;
    return AC_OK;
}

int ac_metric_score(const ac_metric_partial *p, ac_metric_result *r, ac_err *err)
{
    memset(r, 0, sizeof *r);
    const ac_metric *m = p->m;
    r->samples = p->nsamples;
    if (p->nsamples == 0)
        return ac_err_set(err, AC_E_INVALID, "metric %s: the partial holds no samples to score",
                          ac_metric_kind_name(m->o.kind));
    double n = (double)p->nsamples;
    switch (m->o.kind) {
    case AC_METRIC_CLASSIFY:
        r->topk = m->o.topk;
        r->top1_correct = p->top1;
        r->topk_correct = p->topk;
        r->top1 = p->top1 / n;
        r->topk_accuracy = p->topk / n;
        r->score = r->top1;
        return AC_OK;
    case AC_METRIC_SIMILARITY: {
        double sum = 0;
        for (int32_t o = 0; o < p->nout; o++)
            sum += (double)p->cos_q32[o] / COS_SCALE / n;
        r->cosine = p->nout ? sum / p->nout : 0;
        r->cosine_min = p->cos_min;
        r->top1_agree = p->agree;
        r->top1_agreement = p->agree / n;
        r->score = m->o.classifier ? r->top1_agreement : (r->cosine > 0 ? r->cosine : 0);
        if (r->score > 1)
            r->score = 1;
        return AC_OK;
    }
    case AC_METRIC_DETECT: return score_detect(p, r, err);
    case AC_METRIC_PLUGIN: {
        char msg[512] = "";
        double s = -1;
        if (m->plugin->score(m->plugin_state, p->pp, &s, r->details, sizeof r->details, msg, sizeof msg)) {
            msg[sizeof msg - 1] = '\0';
            plugin_msg(err, m, "score", msg);
            return AC_E_INVALID;
        }
        r->details[sizeof r->details - 1] = '\0';
        if (!(s >= 0 && s <= 1))
            return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': score %g is outside [0,1]", m->plugin->name, s);
        r->score = s;
        return AC_OK;
    }
    }
    return ac_err_set(err, AC_E_INTERNAL, "metric: unknown kind");
}

int ac_metric_score_bound(const ac_metric_partial *p, int64_t total_samples, double *bound)
{
    const ac_metric *m = p->m;
    int64_t missing = total_samples - p->nsamples;
    if (missing < 0 || total_samples <= 0)
        return 0;
    double n = (double)total_samples;
    switch (m->o.kind) {
    case AC_METRIC_CLASSIFY:
        /* as ac_metric_score: top1 / n, with every missing sample correct */
        *bound = (double)(p->top1 + missing) / n;
        return 1;
    case AC_METRIC_SIMILARITY:
        if (m->o.classifier) {
            *bound = (double)(p->agree + missing) / n;
            return 1;
        }
        if (p->nout == 0) {
            *bound = 1.0; /* no sample yet: every cosine may still be 1 */
            return 1;
        }
        {
            /* Per output, the cosine sum plus round(1 * 2^32) per missing sample,
             * converted as ac_metric_score converts the final sum. Rounding is
             * monotone, so the final score (whose integer sums are at most
             * these) cannot exceed the result. */
            double sum = 0;
            for (int32_t o = 0; o < p->nout; o++) {
                int64_t q;
                if (__builtin_mul_overflow(missing, (int64_t)COS_SCALE, &q) ||
                    __builtin_add_overflow(q, p->cos_q32[o], &q))
                    return 0;
                sum += (double)q / COS_SCALE / n;
            }
            double b = sum / p->nout;
            *bound = b > 1 ? 1 : b > 0 ? b : 0;
            return 1;
        }
    case AC_METRIC_DETECT:
    case AC_METRIC_PLUGIN:
        return 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ encode */

static void pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

static void put_le(uint8_t *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

int ac_metric_partial_encode(const ac_metric_partial *p, uint8_t **bytes, size_t *len, ac_err *err)
{
    const ac_metric *m = p->m;
    *bytes = NULL;
    *len = 0;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (m->o.kind == AC_METRIC_DETECT && p->ndets > 0) {
        blob_len = (size_t)p->ndets * DET_RECORD_BYTES;
        if (blob_len > UINT32_MAX)
            return ac_err_set(err, AC_E_INVALID, "metric detect: %lld detections exceed the 4 GiB encoding limit",
                              (long long)p->ndets);
        blob = malloc(blob_len);
        if (!blob)
            return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory encoding");
        for (int64_t i = 0; i < p->ndets; i++) {
            uint8_t *b = blob + i * DET_RECORD_BYTES;
            const det_rec *r = &p->dets[i];
            uint32_t sbits;
            memcpy(&sbits, &r->score, 4);
            put_le(b, (uint64_t)r->sample, 8);
            put_le(b + 8, (uint32_t)r->det, 4);
            put_le(b + 12, (uint32_t)r->cls, 4);
            put_le(b + 16, sbits, 4);
            put_le(b + 20, r->match, 2);
            put_le(b + 22, 0, 2);
        }
    }
    if (m->o.kind == AC_METRIC_PLUGIN) {
        size_t need = m->plugin->encode(m->plugin_state, p->pp, NULL, 0);
        if (need == 0 || need > UINT32_MAX)
            return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': encode gave %zu bytes", m->plugin->name, need);
        blob = malloc(need);
        if (!blob)
            return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory encoding");
        if (m->plugin->encode(m->plugin_state, p->pp, blob, need) != need) {
            free(blob);
            return ac_err_set(err, AC_E_INVALID, "metric plugin '%s': encode changed its size between calls",
                              m->plugin->name);
        }
        blob_len = need;
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int nkeys = 5 + (m->o.kind == AC_METRIC_CLASSIFY ? 2 : m->o.kind == AC_METRIC_SIMILARITY ? 3
                                                       : m->o.kind == AC_METRIC_DETECT   ? 3
                                                                                         : 2);
    msgpack_pack_map(&pk, (size_t)nkeys);
    pack_key(&pk, "format");
    pack_key(&pk, PARTIAL_FORMAT);
    pack_key(&pk, "version");
    msgpack_pack_uint32(&pk, PARTIAL_VERSION);
    pack_key(&pk, "kind");
    pack_key(&pk, ac_metric_kind_name(m->o.kind));
    pack_key(&pk, "options");
    msgpack_pack_uint64(&pk, m->fingerprint);
    pack_key(&pk, "samples");
    msgpack_pack_array(&pk, (size_t)(2 * p->nranges));
    for (int64_t i = 0; i < 2 * p->nranges; i++)
        msgpack_pack_int64(&pk, p->ranges[i]);
    switch (m->o.kind) {
    case AC_METRIC_CLASSIFY:
        pack_key(&pk, "top1");
        msgpack_pack_int64(&pk, p->top1);
        pack_key(&pk, "topk");
        msgpack_pack_int64(&pk, p->topk);
        break;
    case AC_METRIC_SIMILARITY:
        pack_key(&pk, "cos_q32");
        msgpack_pack_array(&pk, (size_t)p->nout);
        for (int32_t o = 0; o < p->nout; o++)
            msgpack_pack_int64(&pk, p->cos_q32[o]);
        pack_key(&pk, "cos_min");
        if (p->nsamples)
            msgpack_pack_double(&pk, p->cos_min);
        else
            msgpack_pack_nil(&pk);
        pack_key(&pk, "agree");
        msgpack_pack_int64(&pk, p->agree);
        break;
    case AC_METRIC_DETECT:
        pack_key(&pk, "labelled");
        msgpack_pack_int32(&pk, p->labelled);
        pack_key(&pk, "gt");
        msgpack_pack_array(&pk, (size_t)m->o.detect.nclasses);
        for (int32_t c = 0; c < m->o.detect.nclasses; c++)
            msgpack_pack_int64(&pk, p->gt[c]);
        pack_key(&pk, "dets");
        msgpack_pack_bin(&pk, blob_len);
        if (blob_len)
            msgpack_pack_bin_body(&pk, blob, blob_len);
        break;
    case AC_METRIC_PLUGIN:
        pack_key(&pk, "plugin");
        pack_key(&pk, m->plugin->name);
        pack_key(&pk, "data");
        msgpack_pack_bin(&pk, blob_len);
        msgpack_pack_bin_body(&pk, blob, blob_len);
        break;
    }
    free(blob);
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return ac_err_set(err, AC_E_NOMEM, "metric partial: out of memory encoding");
    }
    *len = sb.size;
    *bytes = (uint8_t *)msgpack_sbuffer_release(&sb);
    return AC_OK;
}

/* ------------------------------------------------------------------ decode */

/* A strict msgpack reader over a byte buffer: every read checks what is left,
 * and every error names the field and the offset. */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *field;
    ac_err *err;
} rd;

static int rd_fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(rd *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ac_err_set(r->err, AC_E_INVALID, "metric partial: field '%s' at byte %zu: %s", r->field, r->pos, msg);
}

static int rd_need(rd *r, size_t n)
{
    if (n > r->len - r->pos)
        return rd_fail(r, "truncated (needs %zu more bytes, %zu left)", n, r->len - r->pos);
    return AC_OK;
}

static uint64_t rd_be(rd *r, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | r->p[r->pos + (size_t)i];
    r->pos += (size_t)n;
    return v;
}

/* Reads a header byte and returns it, or -1 (error set) when out of bytes. */
static int rd_tag(rd *r)
{
    if (rd_need(r, 1))
        return -1;
    return r->p[r->pos++];
}

static int rd_len_of(rd *r, int tag, int fix_lo, int fix_hi, int fix_mask, int t8, int t16, int t32, uint64_t *n,
                     const char *what)
{
    if (tag >= fix_lo && tag <= fix_hi) {
        *n = (uint64_t)(tag & fix_mask);
        return AC_OK;
    }
    int bytes = tag == t8 ? 1 : tag == t16 ? 2 : tag == t32 ? 4 : 0;
    if (!bytes || (t8 < 0 && bytes == 1))
        return rd_fail(r, "expected %s, got type byte 0x%02x", what, tag);
    if (rd_need(r, (size_t)bytes))
        return AC_E_INVALID;
    *n = rd_be(r, bytes);
    return AC_OK;
}

static int rd_map(rd *r, uint64_t *n)
{
    int tag = rd_tag(r);
    return tag < 0 ? AC_E_INVALID : rd_len_of(r, tag, 0x80, 0x8f, 0x0f, -1, 0xde, 0xdf, n, "a map");
}

static int rd_array(rd *r, uint64_t *n)
{
    int tag = rd_tag(r);
    if (tag < 0 || rd_len_of(r, tag, 0x90, 0x9f, 0x0f, -1, 0xdc, 0xdd, n, "an array"))
        return AC_E_INVALID;
    if (*n > r->len - r->pos) /* every element takes at least one byte */
        return rd_fail(r, "array of %llu elements in %zu bytes", (unsigned long long)*n, r->len - r->pos);
    return AC_OK;
}

static int rd_str(rd *r, const uint8_t **s, uint64_t *n)
{
    int tag = rd_tag(r);
    if (tag < 0 || rd_len_of(r, tag, 0xa0, 0xbf, 0x1f, 0xd9, 0xda, 0xdb, n, "a string") || rd_need(r, *n))
        return AC_E_INVALID;
    *s = r->p + r->pos;
    r->pos += *n;
    return AC_OK;
}

static int rd_bin(rd *r, const uint8_t **s, uint64_t *n)
{
    int tag = rd_tag(r);
    if (tag < 0 || rd_len_of(r, tag, 1, 0, 0, 0xc4, 0xc5, 0xc6, n, "binary data") || rd_need(r, *n))
        return AC_E_INVALID;
    *s = r->p + r->pos;
    r->pos += *n;
    return AC_OK;
}

static int rd_int(rd *r, int64_t *v)
{
    int tag = rd_tag(r);
    if (tag < 0)
        return AC_E_INVALID;
    if (tag <= 0x7f) {
        *v = tag;
        return AC_OK;
    }
    if (tag >= 0xe0) {
        *v = (int8_t)tag;
        return AC_OK;
    }
    int bytes = 0, is_signed = 0;
    switch (tag) {
    case 0xcc: bytes = 1; break;
    case 0xcd: bytes = 2; break;
    case 0xce: bytes = 4; break;
    case 0xcf: bytes = 8; break;
    case 0xd0: bytes = 1, is_signed = 1; break;
    case 0xd1: bytes = 2, is_signed = 1; break;
    case 0xd2: bytes = 4, is_signed = 1; break;
    case 0xd3: bytes = 8, is_signed = 1; break;
    default: return rd_fail(r, "expected an integer, got type byte 0x%02x", tag);
    }
    if (rd_need(r, (size_t)bytes))
        return AC_E_INVALID;
    uint64_t u = rd_be(r, bytes);
    if (is_signed) {
        int shift = 64 - 8 * bytes;
        *v = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
    } else {
        if (u > INT64_MAX)
            return rd_fail(r, "integer %llu is too large", (unsigned long long)u);
        *v = (int64_t)u;
    }
    return AC_OK;
}

static int rd_uint64(rd *r, uint64_t *v)
{
    int tag = rd_tag(r);
    if (tag < 0)
        return AC_E_INVALID;
    if (tag <= 0x7f) {
        *v = (uint64_t)tag;
        return AC_OK;
    }
    int bytes = tag == 0xcc ? 1 : tag == 0xcd ? 2 : tag == 0xce ? 4 : tag == 0xcf ? 8 : 0;
    if (!bytes)
        return rd_fail(r, "expected an unsigned integer, got type byte 0x%02x", tag);
    if (rd_need(r, (size_t)bytes))
        return AC_E_INVALID;
    *v = rd_be(r, bytes);
    return AC_OK;
}

/* An integer in [lo, hi]. */
static int rd_range(rd *r, int64_t lo, int64_t hi, int64_t *v)
{
    if (rd_int(r, v))
        return AC_E_INVALID;
    if (*v < lo || *v > hi)
        return rd_fail(r, "value %lld is outside %lld..%lld", (long long)*v, (long long)lo, (long long)hi);
    return AC_OK;
}

static int rd_key(rd *r, const char *want)
{
    const uint8_t *s;
    uint64_t n;
    r->field = want;
    if (rd_str(r, &s, &n))
        return AC_E_INVALID;
    if (n != strlen(want) || memcmp(s, want, n) != 0)
        return rd_fail(r, "expected the key '%s' here, got '%.*s'", want, (int)(n < 40 ? n : 40), (const char *)s);
    return AC_OK;
}

static int rd_expect_str(rd *r, const char *want)
{
    const uint8_t *s;
    uint64_t n;
    if (rd_str(r, &s, &n))
        return AC_E_INVALID;
    if (n != strlen(want) || memcmp(s, want, n) != 0)
        return rd_fail(r, "expected \"%s\", got \"%.*s\"", want, (int)(n < 40 ? n : 40), (const char *)s);
    return AC_OK;
}

static int decode_samples(rd *r, ac_metric_partial *p)
{
    uint64_t n;
    if (rd_key(r, "samples") || rd_array(r, &n))
        return AC_E_INVALID;
    if (n % 2)
        return rd_fail(r, "%llu values: must be [first, end) pairs", (unsigned long long)n);
    p->ranges = malloc((size_t)(n ? n : 1) * sizeof *p->ranges);
    if (!p->ranges)
        return ac_err_set(r->err, AC_E_NOMEM, "metric partial: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        /* sorted, non-empty, disjoint and not adjacent: each value exceeds the one before */
        int64_t lo = i == 0 ? 0 : p->ranges[i - 1] + 1;
        if (rd_int(r, &p->ranges[i]))
            return AC_E_INVALID;
        if (p->ranges[i] < lo || p->ranges[i] > MAX_SAMPLE_INDEX)
            return rd_fail(r, "value %llu (%lld) breaks the rule: [first, end) pairs, sorted, non-empty, disjoint, "
                              "not adjacent, within 0..2^62",
                           (unsigned long long)i, (long long)p->ranges[i]);
    }
    p->nranges = p->ranges_cap = (int64_t)(n / 2);
    for (int64_t i = 0; i < p->nranges; i++)
        p->nsamples += p->ranges[2 * i + 1] - p->ranges[2 * i];
    return AC_OK;
}

static int decode_dets(rd *r, ac_metric_partial *p)
{
    const ac_detect_config *c = &p->m->o.detect;
    const uint8_t *b;
    uint64_t n;
    if (rd_key(r, "dets") || rd_bin(r, &b, &n))
        return AC_E_INVALID;
    if (n % DET_RECORD_BYTES)
        return rd_fail(r, "%llu bytes is not a whole number of %d-byte records", (unsigned long long)n,
                       DET_RECORD_BYTES);
    p->ndets = p->dets_cap = (int64_t)(n / DET_RECORD_BYTES);
    if (p->ndets == 0)
        return AC_OK;
    p->dets = malloc((size_t)p->ndets * sizeof *p->dets);
    int64_t *tp = calloc((size_t)c->nclasses * AC_DETECT_NIOU, sizeof *tp);
    if (!p->dets || !tp) {
        free(tp);
        return ac_err_set(r->err, AC_E_NOMEM, "metric partial: out of memory");
    }
    int64_t range = 0;
    int rc = AC_OK;
    for (int64_t i = 0; i < p->ndets && rc == AC_OK; i++) {
        const uint8_t *q = b + i * DET_RECORD_BYTES;
        det_rec *d = &p->dets[i];
        uint32_t sbits = (uint32_t)get_le(q + 16, 4);
        d->sample = (int64_t)get_le(q, 8);
        d->det = (int32_t)(uint32_t)get_le(q + 8, 4);
        d->cls = (int32_t)(uint32_t)get_le(q + 12, 4);
        memcpy(&d->score, &sbits, 4);
        d->match = (uint16_t)get_le(q + 20, 2);
        while (range < p->nranges && p->ranges[2 * range + 1] <= d->sample)
            range++;
        if (range >= p->nranges || d->sample < p->ranges[2 * range])
            rc = rd_fail(r, "record %lld: sample %lld is not among the partial's samples", (long long)i,
                         (long long)d->sample);
        else if (i > 0 && cmp_rec_key(&p->dets[i - 1], d) >= 0)
            rc = rd_fail(r, "record %lld: records must be sorted by (sample, detection) without repeats", (long long)i);
        else if (d->det < 0 || d->det >= c->max_detections)
            rc = rd_fail(r, "record %lld: detection rank %d must be 0..%d", (long long)i, d->det, c->max_detections - 1);
        else if (d->cls < 0 || d->cls >= c->nclasses)
            rc = rd_fail(r, "record %lld: class %d must be 0..%d", (long long)i, d->cls, c->nclasses - 1);
        else if (!isfinite(d->score) || !(d->score >= c->score_threshold))
            rc = rd_fail(r, "record %lld: score %g must be finite and >= the threshold %g", (long long)i,
                         (double)d->score, (double)c->score_threshold);
        else if (d->match >> AC_DETECT_NIOU || get_le(q + 22, 2) != 0)
            rc = rd_fail(r, "record %lld: match bits 0x%x or padding are invalid", (long long)i, d->match);
        else
            for (int t = 0; t < AC_DETECT_NIOU; t++)
                if ((d->match >> t) & 1 && ++tp[(int64_t)d->cls * AC_DETECT_NIOU + t] > p->gt[d->cls]) {
                    rc = rd_fail(r, "record %lld: class %d has more true positives than its %lld ground-truth boxes",
                                 (long long)i, d->cls, (long long)p->gt[d->cls]);
                    break;
                }
    }
    free(tp);
    return rc;
}

static int decode_body(rd *r, const ac_metric *m, ac_metric_partial *p)
{
    uint64_t nkeys;
    int64_t v = 0;
    uint64_t u = 0;
    const ac_metric_kind kind = m->o.kind;
    const uint64_t want_keys = 5 + (kind == AC_METRIC_CLASSIFY ? 2 : kind == AC_METRIC_PLUGIN ? 2 : 3);
    r->field = "(top level)";
    if (rd_map(r, &nkeys))
        return AC_E_INVALID;
    if (nkeys != want_keys)
        return rd_fail(r, "a %s partial is a map of %llu keys, got %llu", ac_metric_kind_name(kind),
                       (unsigned long long)want_keys, (unsigned long long)nkeys);
    if (rd_key(r, "format") || rd_expect_str(r, PARTIAL_FORMAT))
        return AC_E_INVALID;
    if (rd_key(r, "version") || rd_int(r, &v))
        return AC_E_INVALID;
    if (v != PARTIAL_VERSION)
        return ac_err_set(r->err, AC_E_UNSUPPORTED, "metric partial: version %lld, this build reads version %d",
                          (long long)v, PARTIAL_VERSION);
    if (rd_key(r, "kind") || rd_expect_str(r, ac_metric_kind_name(kind)))
        return AC_E_INVALID;
    if (rd_key(r, "options") || rd_uint64(r, &u))
        return AC_E_INVALID;
    if (u != m->fingerprint)
        return rd_fail(r, "options fingerprint %016llx is not this metric's %016llx ('%s')", (unsigned long long)u,
                       (unsigned long long)m->fingerprint, m->desc);
    if (decode_samples(r, p))
        return AC_E_INVALID;
    const int64_t n = p->nsamples;
    switch (kind) {
    case AC_METRIC_CLASSIFY:
        if (rd_key(r, "top1") || rd_range(r, 0, n, &p->top1) || rd_key(r, "topk") || rd_range(r, p->top1, n, &p->topk))
            return AC_E_INVALID;
        break;
    case AC_METRIC_SIMILARITY: {
        uint64_t nout;
        if (rd_key(r, "cos_q32") || rd_array(r, &nout))
            return AC_E_INVALID;
        if (nout > MAX_OUTPUTS || (n == 0) != (nout == 0))
            return rd_fail(r, "%llu outputs for %lld samples (must be 1..%d, or 0 when empty)",
                           (unsigned long long)nout, (long long)n, MAX_OUTPUTS);
        p->nout = (int32_t)nout;
        p->cos_q32 = calloc(nout ? nout : 1, sizeof *p->cos_q32);
        if (!p->cos_q32)
            return ac_err_set(r->err, AC_E_NOMEM, "metric partial: out of memory");
        /* |sum| <= n * 2^32; n <= 2^62 would overflow, so cap at the int64 range */
        int64_t lim = n <= ((int64_t)1 << 31) ? n * ((int64_t)1 << 32) : INT64_MAX;
        for (uint64_t o = 0; o < nout; o++)
            if (rd_range(r, -lim, lim, &p->cos_q32[o]))
                return AC_E_INVALID;
        if (rd_key(r, "cos_min"))
            return AC_E_INVALID;
        if (n == 0) {
            int tag = rd_tag(r);
            if (tag != 0xc0)
                return tag < 0 ? AC_E_INVALID : rd_fail(r, "an empty partial has nil here, got type byte 0x%02x", tag);
        } else {
            int tag = rd_tag(r);
            if (tag != 0xcb)
                return tag < 0 ? AC_E_INVALID : rd_fail(r, "expected a float64, got type byte 0x%02x", tag);
            if (rd_need(r, 8))
                return AC_E_INVALID;
            uint64_t bits = rd_be(r, 8);
            memcpy(&p->cos_min, &bits, 8);
            if (!(p->cos_min >= -1 && p->cos_min <= 1))
                return rd_fail(r, "%g is outside [-1,1]", p->cos_min);
        }
        if (rd_key(r, "agree") || rd_range(r, 0, m->o.classifier ? n : 0, &p->agree))
            return AC_E_INVALID;
        break;
    }
    case AC_METRIC_DETECT: {
        uint64_t ncls;
        if (rd_key(r, "labelled") || rd_range(r, n ? 0 : -1, n ? 1 : -1, &v))
            return AC_E_INVALID;
        p->labelled = (int32_t)v;
        if (rd_key(r, "gt") || rd_array(r, &ncls))
            return AC_E_INVALID;
        if (ncls != (uint64_t)m->o.detect.nclasses)
            return rd_fail(r, "%llu classes, the metric has %d", (unsigned long long)ncls, m->o.detect.nclasses);
        for (uint64_t c = 0; c < ncls; c++)
            if (rd_range(r, 0, (int64_t)1 << 48, &p->gt[c]))
                return AC_E_INVALID;
        if (decode_dets(r, p))
            return AC_E_INVALID;
        break;
    }
    case AC_METRIC_PLUGIN: {
        const uint8_t *b;
        uint64_t len;
        if (rd_key(r, "plugin") || rd_expect_str(r, m->plugin->name) || rd_key(r, "data") || rd_bin(r, &b, &len))
            return AC_E_INVALID;
        char msg[512] = "";
        void *pp = m->plugin->decode(m->plugin_state, b, (size_t)len, msg, sizeof msg);
        if (!pp) {
            msg[sizeof msg - 1] = '\0';
            plugin_msg(r->err, m, "decode", msg);
            return AC_E_INVALID;
        }
        m->plugin->partial_free(m->plugin_state, p->pp);
        p->pp = pp;
        break;
    }
    }
    if (r->pos != r->len) {
        r->field = "(end)";
        return rd_fail(r, "%zu bytes follow the partial", r->len - r->pos);
    }
    return AC_OK;
}

int ac_metric_partial_decode(const ac_metric *m, const uint8_t *bytes, size_t len, ac_metric_partial **out,
                             ac_err *err)
{
    *out = NULL;
    if (!bytes && len)
        return ac_err_set(err, AC_E_INVALID, "metric partial: no bytes");
    ac_metric_partial *p = ac_metric_partial_new(m, err);
    if (!p)
        return AC_E_NOMEM;
    rd r = {bytes, len, 0, "(top level)", err};
    int rc = decode_body(&r, m, p);
    if (rc) {
        if (err && err->code == AC_OK)
            ac_err_set(err, AC_E_INVALID, "metric partial: invalid");
        ac_metric_partial_destroy(&p);
        return rc;
    }
    *out = p;
    return AC_OK;
}
