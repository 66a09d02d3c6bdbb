#include "ac_detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ac_detect_config_init(ac_detect_config *c, ac_decode_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->nclasses = 1;
    c->scores_output = 0;
    c->boxes_output = 1;
    c->background = 0;
    c->center_variance = 0.1f;
    c->size_variance = 0.2f;
    c->clip_priors = 1;
    c->scale_xy = 1.0f;
    c->score_threshold = 0.05f;
    c->ref_score_threshold = 0.5f;
    c->nms_iou = 0.5f;
    c->max_detections = 100;
}

void ac_detect_config_ultraface_320(ac_detect_config *c, int raw_boxes)
{
    ac_detect_config_init(c, raw_boxes ? AC_DECODE_SSD_PRIORS : AC_DECODE_SSD);
    c->nclasses = 1;
    c->in_w = 320;
    c->in_h = 240;
    /* UltraFace's define_img_size: strides 8,16,32,64 and these min boxes. */
    static const int strides[4] = {8, 16, 32, 64};
    static const float sizes[4][3] = {{10, 16, 24}, {32, 48, 0}, {64, 96, 0}, {128, 192, 256}};
    static const int nsizes[4] = {3, 2, 2, 3};
    c->nlevels = 4;
    for (int l = 0; l < 4; l++) {
        c->strides[l] = strides[l];
        c->nsizes[l] = nsizes[l];
        for (int s = 0; s < nsizes[l]; s++)
            c->min_sizes[l][s] = sizes[l][s];
    }
    c->nms_iou = 0.3f; /* UltraFace's own post-processing */
}

void ac_detect_config_yolo_fastest(ac_detect_config *c, int out_stride32, int out_stride16)
{
    ac_detect_config_init(c, AC_DECODE_YOLO);
    c->nclasses = 80;
    c->in_w = 320;
    c->in_h = 320;
    static const float anchors[6][2] = {{12, 18}, {37, 49}, {52, 132}, {115, 73}, {119, 199}, {242, 238}};
    c->nanchors = 6;
    for (int a = 0; a < 6; a++) {
        c->anchors[a][0] = anchors[a][0];
        c->anchors[a][1] = anchors[a][1];
    }
    c->nheads = 2;
    c->head_outputs[0] = out_stride32;
    c->head_outputs[1] = out_stride16;
    c->head_nmask[0] = c->head_nmask[1] = 3;
    for (int a = 0; a < 3; a++) {
        c->head_mask[0][a] = 3 + a;
        c->head_mask[1][a] = a;
    }
    c->nms_iou = 0.45f;
}

void ac_detect_config_yunet_320(ac_detect_config *c)
{
    ac_detect_config_init(c, AC_DECODE_GRID);
    c->in_w = c->in_h = 320;
    c->nlevels = 3;
    /* outputs: cls_8, cls_16, cls_32, obj_8, ..., bbox_8, ..., kps_8, ... */
    for (int l = 0; l < 3; l++) {
        c->strides[l] = 8 << l;
        c->level_cls[l] = l;
        c->level_obj[l] = 3 + l;
        c->level_box[l] = 6 + l;
    }
    c->nms_iou = 0.3f; /* OpenCV FaceDetectorYN's default */
}

void ac_detect_config_blazeface_front_128(ac_detect_config *c)
{
    ac_detect_config_init(c, AC_DECODE_ANCHORS);
    c->in_w = c->in_h = 128;
    /* MediaPipe's front-camera anchors: 4 layers, strides 8,16,16,16; the three
     * of stride 16 share one grid, so 2 anchors per 16x16 cell and 6 per 8x8. */
    c->nlevels = 2;
    c->strides[0] = 8, c->strides[1] = 16;
    c->level_anchors[0] = 2, c->level_anchors[1] = 6;
    c->level_cls[0] = 0, c->level_cls[1] = 1;
    c->level_box[0] = 2, c->level_box[1] = 3;
    c->nms_iou = 0.3f; /* MediaPipe's (weighted there; plain greedy here) */
}

static int finite_in(float v, float lo, float hi) { return isfinite(v) && v >= lo && v <= hi; }

/* GRID and ANCHORS: the levels' strides, output indices and anchors. */
static int check_levels(const ac_detect_config *c, ac_err *err)
{
    int grid = c->kind == AC_DECODE_GRID;
    if (c->nlevels < 1 || c->nlevels > AC_DETECT_MAX_LEVELS)
        return ac_err_set(err, AC_E_INVALID, "detect: nlevels %d must be 1..%d", c->nlevels, AC_DETECT_MAX_LEVELS);
    for (int l = 0; l < c->nlevels; l++) {
        if (c->strides[l] < 1 || (grid && (c->strides[l] > c->in_w || c->strides[l] > c->in_h)))
            return ac_err_set(err, AC_E_INVALID, "detect: level %d stride %d must be >= 1%s", l, c->strides[l],
                              grid ? " and at most the input size" : "");
        if (c->level_cls[l] < 0 || c->level_box[l] < 0 || (grid && c->level_obj[l] < 0))
            return ac_err_set(err, AC_E_INVALID, "detect: level %d output indices (%d, %d, %d) must be >= 0", l,
                              c->level_cls[l], c->level_obj[l], c->level_box[l]);
        if (!grid && (c->level_anchors[l] < 1 || c->level_anchors[l] > AC_DETECT_MAX_ANCHORS))
            return ac_err_set(err, AC_E_INVALID, "detect: level %d has %d anchors per cell, must be 1..%d", l,
                              c->level_anchors[l], AC_DETECT_MAX_ANCHORS);
    }
    return AC_OK;
}

int ac_detect_config_check(const ac_detect_config *c, ac_err *err)
{
    if (c->kind < AC_DECODE_SSD || c->kind > AC_DECODE_ANCHORS)
        return ac_err_set(err, AC_E_INVALID, "detect: decoder kind %d is not one of 1..6", (int)c->kind);
    if (c->nclasses < 1 || c->nclasses > 100000)
        return ac_err_set(err, AC_E_INVALID, "detect: nclasses %d must be in 1..100000", c->nclasses);
    if (!finite_in(c->score_threshold, 0.f, 1.f) || !finite_in(c->ref_score_threshold, 0.f, 1.f))
        return ac_err_set(err, AC_E_INVALID, "detect: score thresholds (%g, %g) must lie in [0,1]",
                          (double)c->score_threshold, (double)c->ref_score_threshold);
    if (!finite_in(c->nms_iou, 0.f, 1.f))
        return ac_err_set(err, AC_E_INVALID, "detect: nms_iou %g must lie in [0,1]", (double)c->nms_iou);
    if (c->max_detections < 1 || c->max_detections > 65535)
        return ac_err_set(err, AC_E_INVALID, "detect: max_detections %d must be in 1..65535", c->max_detections);
    int need_size = c->kind == AC_DECODE_SSD_PRIORS || c->kind == AC_DECODE_YOLO || c->kind == AC_DECODE_GRID ||
                    c->kind == AC_DECODE_ANCHORS || (c->kind == AC_DECODE_DETS && c->dets_pixels);
    if (need_size && (c->in_w < 1 || c->in_h < 1 || c->in_w > 65536 || c->in_h > 65536))
        return ac_err_set(err, AC_E_INVALID, "detect: input size %dx%d must be 1..65536 each", c->in_w, c->in_h);
    switch (c->kind) {
    case AC_DECODE_SSD:
    case AC_DECODE_SSD_PRIORS:
        if (c->scores_output < 0 || c->boxes_output < 0 || c->scores_output == c->boxes_output)
            return ac_err_set(err, AC_E_INVALID, "detect: scores_output %d and boxes_output %d must be distinct >= 0",
                              c->scores_output, c->boxes_output);
        if (c->background < -1 || c->background > c->nclasses)
            return ac_err_set(err, AC_E_INVALID, "detect: background column %d must be -1..nclasses (%d)",
                              c->background, c->nclasses);
        if (c->kind == AC_DECODE_SSD)
            break;
        if (c->nlevels < 1 || c->nlevels > AC_DETECT_MAX_LEVELS)
            return ac_err_set(err, AC_E_INVALID, "detect: nlevels %d must be 1..%d", c->nlevels, AC_DETECT_MAX_LEVELS);
        for (int l = 0; l < c->nlevels; l++) {
            if (c->strides[l] < 1)
                return ac_err_set(err, AC_E_INVALID, "detect: level %d stride %d must be >= 1", l, c->strides[l]);
            if (c->nsizes[l] < 1 || c->nsizes[l] > AC_DETECT_MAX_SIZES)
                return ac_err_set(err, AC_E_INVALID, "detect: level %d has %d min sizes, must be 1..%d", l,
                                  c->nsizes[l], AC_DETECT_MAX_SIZES);
            for (int s = 0; s < c->nsizes[l]; s++)
                if (!(isfinite(c->min_sizes[l][s]) && c->min_sizes[l][s] > 0))
                    return ac_err_set(err, AC_E_INVALID, "detect: level %d min size %d (%g) must be > 0", l, s,
                                      (double)c->min_sizes[l][s]);
        }
        if (!(isfinite(c->center_variance) && c->center_variance > 0 && isfinite(c->size_variance) &&
              c->size_variance > 0))
            return ac_err_set(err, AC_E_INVALID, "detect: variances (%g, %g) must be > 0",
                              (double)c->center_variance, (double)c->size_variance);
        break;
    case AC_DECODE_YOLO:
        if (c->nanchors < 1 || c->nanchors > AC_DETECT_MAX_ANCHORS)
            return ac_err_set(err, AC_E_INVALID, "detect: nanchors %d must be 1..%d", c->nanchors,
                              AC_DETECT_MAX_ANCHORS);
        for (int a = 0; a < c->nanchors; a++)
            if (!(isfinite(c->anchors[a][0]) && c->anchors[a][0] > 0 && isfinite(c->anchors[a][1]) &&
                  c->anchors[a][1] > 0))
                return ac_err_set(err, AC_E_INVALID, "detect: anchor %d (%g,%g) must be > 0", a,
                                  (double)c->anchors[a][0], (double)c->anchors[a][1]);
        if (c->nheads < 1 || c->nheads > AC_DETECT_MAX_HEADS)
            return ac_err_set(err, AC_E_INVALID, "detect: nheads %d must be 1..%d", c->nheads, AC_DETECT_MAX_HEADS);
        for (int h = 0; h < c->nheads; h++) {
            if (c->head_outputs[h] < 0)
                return ac_err_set(err, AC_E_INVALID, "detect: head %d output index %d must be >= 0", h,
                                  c->head_outputs[h]);
            if (c->head_nmask[h] < 1 || c->head_nmask[h] > c->nanchors)
                return ac_err_set(err, AC_E_INVALID, "detect: head %d has %d anchors in its mask, must be 1..%d", h,
                                  c->head_nmask[h], c->nanchors);
            for (int a = 0; a < c->head_nmask[h]; a++)
                if (c->head_mask[h][a] < 0 || c->head_mask[h][a] >= c->nanchors)
                    return ac_err_set(err, AC_E_INVALID, "detect: head %d mask entry %d (%d) must be 0..%d", h, a,
                                      c->head_mask[h][a], c->nanchors - 1);
        }
        if (!finite_in(c->scale_xy, 1.f, 4.f))
            return ac_err_set(err, AC_E_INVALID, "detect: scale_xy %g must be in [1,4]", (double)c->scale_xy);
        break;
    case AC_DECODE_DETS:
        if (c->dets_output < 0)
            return ac_err_set(err, AC_E_INVALID, "detect: dets_output %d must be >= 0", c->dets_output);
        break;
    case AC_DECODE_GRID:
    case AC_DECODE_ANCHORS:
        return check_levels(c, err);
    }
    return AC_OK;
}

/* ------------------------------------------------------------------ shapes */

static int64_t priors_count(const ac_detect_config *c)
{
    int64_t n = 0;
    for (int l = 0; l < c->nlevels; l++) {
        int64_t fw = (c->in_w + c->strides[l] - 1) / c->strides[l];
        int64_t fh = (c->in_h + c->strides[l] - 1) / c->strides[l];
        n += fw * fh * c->nsizes[l];
    }
    return n;
}

/* GRID: floor(in/stride) cells per axis (the head's own grid); ANCHORS:
 * ceil(in/stride) cells per axis, times the anchors per cell. */
static int64_t level_cells(const ac_detect_config *c, int l)
{
    int64_t s = c->strides[l];
    if (c->kind == AC_DECODE_GRID)
        return (c->in_w / s) * (c->in_h / s);
    return ((c->in_w + s - 1) / s) * ((c->in_h + s - 1) / s) * c->level_anchors[l];
}

/* SSD: the outputs that hold the scores and the boxes. The configured pair,
 * unless it is the other way round: the scores' last dimension is the column
 * count (classes + background) and the boxes' is 4, so when the configured
 * "scores" end in 4 and the "boxes" in the column count (not 4 itself), the
 * model lists its boxes first (the Caffe UltraFace does) and the two swap. */
static void ssd_outputs(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int *si, int *bi)
{
    *si = c->scores_output, *bi = c->boxes_output;
    int64_t ncols = c->nclasses + (c->background >= 0 ? 1 : 0);
    if (*si < 0 || *bi < 0 || *si >= noutputs || *bi >= noutputs || ncols == 4)
        return;
    const ac_metric_tensor *s = &outputs[*si], *b = &outputs[*bi];
    if (s->ndim == 3 && b->ndim == 3 && s->dims[2] == 4 && b->dims[2] == ncols) {
        int t = *si;
        *si = *bi, *bi = t;
    }
}

static int check_output_index(int idx, int noutputs, const char *what, ac_err *err)
{
    if (idx < 0 || idx >= noutputs)
        return ac_err_set(err, AC_E_INVALID, "detect: %s is output %d but the model gave %d output(s)", what, idx,
                          noutputs);
    return AC_OK;
}

static int check_dims(const ac_metric_tensor *t, int ndim, const int64_t *want, const char *what, ac_err *err)
{
    /* want[d] == -1: any extent >= 1; -2: any extent >= 0 */
    int ok = t->ndim == ndim;
    int64_t n = 1;
    for (int d = 0; ok && d < ndim; d++) {
        ok = want[d] < 0 ? t->dims[d] >= want[d] + 2 : t->dims[d] == want[d];
        n *= t->dims[d];
    }
    ok = ok && (n == 0 || t->data != NULL);
    if (ok)
        return AC_OK;
    char got[160] = "", exp[160] = "";
    size_t k = 0;
    for (int d = 0; d < t->ndim && d < AC_METRIC_MAX_DIMS && k < sizeof got - 24; d++)
        k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", d ? "," : "", (long long)t->dims[d]);
    k = 0;
    for (int d = 0; d < ndim && k < sizeof exp - 24; d++)
        k += want[d] < 0 ? (size_t)snprintf(exp + k, sizeof exp - k, "%s?", d ? "," : "")
                         : (size_t)snprintf(exp + k, sizeof exp - k, "%s%lld", d ? "," : "", (long long)want[d]);
    return ac_err_set(err, AC_E_INVALID, "detect: %s has shape [%s]%s, expected [%s]", what, got,
                      t->data ? "" : " and no data", exp);
}

int ac_detect_check_outputs(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int64_t nbatch,
                            ac_err *err)
{
    int rc;
    switch (c->kind) {
    case AC_DECODE_SSD:
    case AC_DECODE_SSD_PRIORS: {
        int si, bi;
        ssd_outputs(c, outputs, noutputs, &si, &bi);
        if ((rc = check_output_index(si, noutputs, "scores_output", err)) ||
            (rc = check_output_index(bi, noutputs, "boxes_output", err)))
            return rc;
        const ac_metric_tensor *s = &outputs[si], *b = &outputs[bi];
        int64_t ncols = c->nclasses + (c->background >= 0 ? 1 : 0);
        int64_t want_s[3] = {nbatch, -1, ncols};
        if ((rc = check_dims(s, 3, want_s, "scores", err)))
            return rc;
        int64_t want_b[3] = {nbatch, s->dims[1], 4};
        if ((rc = check_dims(b, 3, want_b, "boxes", err)))
            return rc;
        if (c->kind == AC_DECODE_SSD_PRIORS && priors_count(c) != s->dims[1])
            return ac_err_set(err, AC_E_INVALID,
                              "detect: the prior config gives %lld priors for %dx%d but the outputs have %lld boxes",
                              (long long)priors_count(c), c->in_w, c->in_h, (long long)s->dims[1]);
        return AC_OK;
    }
    case AC_DECODE_YOLO:
        for (int h = 0; h < c->nheads; h++) {
            char what[48];
            snprintf(what, sizeof what, "YOLO head %d", h);
            if ((rc = check_output_index(c->head_outputs[h], noutputs, what, err)))
                return rc;
            int64_t want[4] = {nbatch, (int64_t)c->head_nmask[h] * (5 + c->nclasses), -1, -1};
            if ((rc = check_dims(&outputs[c->head_outputs[h]], 4, want, what, err)))
                return rc;
        }
        return AC_OK;
    case AC_DECODE_GRID:
    case AC_DECODE_ANCHORS:
        for (int l = 0; l < c->nlevels; l++) {
            int64_t cells = level_cells(c, l);
            char what[64];
            snprintf(what, sizeof what, "level %d scores", l);
            int64_t want_s[3] = {nbatch, cells, 1};
            if ((rc = check_output_index(c->level_cls[l], noutputs, what, err)) ||
                (rc = check_dims(&outputs[c->level_cls[l]], 3, want_s, what, err)))
                return rc;
            if (c->kind == AC_DECODE_GRID) {
                snprintf(what, sizeof what, "level %d objectness", l);
                if ((rc = check_output_index(c->level_obj[l], noutputs, what, err)) ||
                    (rc = check_dims(&outputs[c->level_obj[l]], 3, want_s, what, err)))
                    return rc;
            }
            snprintf(what, sizeof what, "level %d boxes", l);
            int64_t want_b[3] = {nbatch, cells, c->kind == AC_DECODE_GRID ? 4 : -1};
            if ((rc = check_output_index(c->level_box[l], noutputs, what, err)) ||
                (rc = check_dims(&outputs[c->level_box[l]], 3, want_b, what, err)))
                return rc;
            if (outputs[c->level_box[l]].dims[2] < 4)
                return ac_err_set(err, AC_E_INVALID, "detect: %s have %lld values per anchor, need at least 4", what,
                                  (long long)outputs[c->level_box[l]].dims[2]);
        }
        return AC_OK;
    case AC_DECODE_DETS: {
        if ((rc = check_output_index(c->dets_output, noutputs, "dets_output", err)))
            return rc;
        int64_t want[3] = {nbatch, -2, 6}; /* a model may report no detections */
        return check_dims(&outputs[c->dets_output], 3, want, "detections", err);
    }
    }
    return ac_err_set(err, AC_E_INVALID, "detect: unknown decoder kind %d", (int)c->kind);
}

/* ------------------------------------------------------------------ candidates */

typedef struct {
    ac_det *d;
    int32_t n, cap;
} det_list;

static int det_push(det_list *l, const ac_det *d)
{
    if (l->n == l->cap) {
        if (l->cap > (INT32_MAX / 2))
            return AC_E_NOMEM;
        int32_t cap = l->cap ? 2 * l->cap : 256;
        ac_det *nd = realloc(l->d, (size_t)cap * sizeof *nd);
        if (!nd)
            return AC_E_NOMEM;
        l->d = nd;
        l->cap = cap;
    }
    l->d[l->n++] = *d;
    return AC_OK;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static int decode_ssd(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int64_t b, float thr,
                      det_list *out)
{
    int si, bi;
    ssd_outputs(c, outputs, noutputs, &si, &bi);
    const ac_metric_tensor *st = &outputs[si], *bt = &outputs[bi];
    int64_t P = st->dims[1], C = st->dims[2];
    const float *s = st->data + b * P * C, *bx = bt->data + b * P * 4;
    float *priors = NULL;
    if (c->kind == AC_DECODE_SSD_PRIORS) {
        priors = malloc((size_t)P * 4 * sizeof *priors);
        if (!priors)
            return AC_E_NOMEM;
        int64_t k = 0;
        for (int l = 0; l < c->nlevels; l++) {
            int fw = (c->in_w + c->strides[l] - 1) / c->strides[l];
            int fh = (c->in_h + c->strides[l] - 1) / c->strides[l];
            for (int j = 0; j < fh; j++)
                for (int i = 0; i < fw; i++)
                    for (int q = 0; q < c->nsizes[l]; q++, k++) {
                        float p[4] = {(float)((i + 0.5) / fw), (float)((j + 0.5) / fh),
                                      c->min_sizes[l][q] / (float)c->in_w, c->min_sizes[l][q] / (float)c->in_h};
                        for (int e = 0; e < 4; e++)
                            priors[k * 4 + e] = c->clip_priors ? fminf(fmaxf(p[e], 0.f), 1.f) : p[e];
                    }
        }
    }
    int rc = AC_OK;
    for (int64_t p = 0; p < P && rc == AC_OK; p++) {
        const float *row = s + p * C;
        const float *r = bx + p * 4;
        ac_det d = {0};
        int have_box = 0;
        for (int64_t col = 0; col < C && rc == AC_OK; col++) {
            if (col == c->background || !(row[col] >= thr) || !isfinite(row[col]))
                continue;
            if (!have_box) {
                if (priors) {
                    const float *pr = priors + p * 4;
                    float cx = r[0] * c->center_variance * pr[2] + pr[0];
                    float cy = r[1] * c->center_variance * pr[3] + pr[1];
                    float w = expf(r[2] * c->size_variance) * pr[2];
                    float h = expf(r[3] * c->size_variance) * pr[3];
                    d.x1 = cx - w / 2, d.y1 = cy - h / 2, d.x2 = cx + w / 2, d.y2 = cy + h / 2;
                } else {
                    d.x1 = r[0], d.y1 = r[1], d.x2 = r[2], d.y2 = r[3];
                }
                have_box = 1;
                if (!(isfinite(d.x1) && isfinite(d.y1) && isfinite(d.x2) && isfinite(d.y2)))
                    break; /* a broken box cannot match anything: drop it */
            }
            d.score = row[col];
            d.cls = (int32_t)(c->background >= 0 && col > c->background ? col - 1 : col);
            d.index = (int32_t)p;
            rc = det_push(out, &d);
        }
    }
    free(priors);
    return rc;
}

static int decode_yolo(const ac_detect_config *c, const ac_metric_tensor *outputs, int64_t b, float thr,
                       det_list *out)
{
    int64_t index0 = 0;
    const int C = c->nclasses;
    const double sxy = c->scale_xy;
    for (int h = 0; h < c->nheads; h++) {
        const ac_metric_tensor *t = &outputs[c->head_outputs[h]];
        const int64_t H = t->dims[2], W = t->dims[3], HW = H * W, A = c->head_nmask[h];
        const float *base = t->data + b * A * (5 + C) * HW;
        for (int64_t a = 0; a < A; a++) {
            const float *ch = base + a * (5 + C) * HW;
            const float *anchor = c->anchors[c->head_mask[h][a]];
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) {
                    int64_t cell = y * W + x;
                    double obj = sigmoid(ch[4 * HW + cell]);
                    if (!(obj >= thr)) /* obj * cls <= obj: nothing in this cell can pass */
                        continue;
                    double bx = (x + sigmoid(ch[cell]) * sxy - 0.5 * (sxy - 1)) / W;
                    double by = (y + sigmoid(ch[HW + cell]) * sxy - 0.5 * (sxy - 1)) / H;
                    double bw = exp(ch[2 * HW + cell]) * anchor[0] / c->in_w;
                    double bh = exp(ch[3 * HW + cell]) * anchor[1] / c->in_h;
                    if (!(isfinite(bx) && isfinite(by) && isfinite(bw) && isfinite(bh)))
                        continue;
                    ac_det d = {(float)(bx - bw / 2), (float)(by - bh / 2), (float)(bx + bw / 2),
                                (float)(by + bh / 2), 0.f, 0, (int32_t)(index0 + a * HW + cell)};
                    for (int k = 0; k < C; k++) {
                        float score = (float)(obj * sigmoid(ch[(5 + k) * HW + cell]));
                        if (!(score >= thr))
                            continue;
                        d.score = score;
                        d.cls = k;
                        int rc = det_push(out, &d);
                        if (rc)
                            return rc;
                    }
                }
        }
        index0 += A * HW;
    }
    return AC_OK;
}

static float clamp01(float v) { return v < 0.f ? 0.f : v > 1.f ? 1.f : v; }

/* Pushes the corner box of centre (cx, cy) and size (w, h), all normalised,
 * unless a value is not finite. */
static int push_center_box(det_list *out, double cx, double cy, double w, double h, float score, int32_t index)
{
    if (!(isfinite(cx) && isfinite(cy) && isfinite(w) && isfinite(h)))
        return AC_OK;
    ac_det d = {(float)(cx - w / 2), (float)(cy - h / 2), (float)(cx + w / 2), (float)(cy + h / 2), score, 0, index};
    return det_push(out, &d);
}

static int decode_grid(const ac_detect_config *c, const ac_metric_tensor *outputs, int64_t b, float thr,
                       det_list *out)
{
    int64_t index0 = 0;
    for (int l = 0; l < c->nlevels; l++) {
        const int64_t s = c->strides[l], cols = c->in_w / s, cells = level_cells(c, l);
        const float *cls = outputs[c->level_cls[l]].data + b * cells;
        const float *obj = outputs[c->level_obj[l]].data + b * cells;
        const float *box = outputs[c->level_box[l]].data + b * cells * 4;
        for (int64_t k = 0; k < cells; k++) {
            float score = sqrtf(clamp01(cls[k]) * clamp01(obj[k])); /* NaN stays NaN and fails the test */
            if (!(score >= thr))
                continue;
            const float *r = box + k * 4;
            double cx = (double)(k % cols + r[0]) * s / c->in_w, cy = (double)(k / cols + r[1]) * s / c->in_h;
            double w = exp(r[2]) * s / c->in_w, h = exp(r[3]) * s / c->in_h;
            int rc = push_center_box(out, cx, cy, w, h, score, (int32_t)(index0 + k));
            if (rc)
                return rc;
        }
        index0 += cells;
    }
    return AC_OK;
}

static int decode_anchors(const ac_detect_config *c, const ac_metric_tensor *outputs, int64_t b, float thr,
                          det_list *out)
{
    int64_t index0 = 0;
    for (int l = 0; l < c->nlevels; l++) {
        const int64_t s = c->strides[l], cols = (c->in_w + s - 1) / s, rows = (c->in_h + s - 1) / s;
        const int64_t A = c->level_anchors[l], n = rows * cols * A, R = outputs[c->level_box[l]].dims[2];
        const float *logit = outputs[c->level_cls[l]].data + b * n;
        const float *box = outputs[c->level_box[l]].data + b * n * R;
        for (int64_t k = 0; k < n; k++) {
            /* MediaPipe clamps the logit to [-100, 100] before the sigmoid */
            float score = (float)sigmoid(fmin(fmax(logit[k], -100.0), 100.0));
            if (!(score >= thr))
                continue;
            const float *r = box + k * R;
            int64_t cell = k / A;
            double ax = (cell % cols + 0.5) / cols, ay = (cell / cols + 0.5) / rows;
            int rc = push_center_box(out, ax + (double)r[0] / c->in_w, ay + (double)r[1] / c->in_h,
                                     (double)r[2] / c->in_w, (double)r[3] / c->in_h, score, (int32_t)(index0 + k));
            if (rc)
                return rc;
        }
        index0 += n;
    }
    return AC_OK;
}

static int decode_dets(const ac_detect_config *c, const ac_metric_tensor *outputs, int64_t b, float thr,
                       det_list *out, ac_err *err)
{
    const ac_metric_tensor *t = &outputs[c->dets_output];
    int64_t D = t->dims[1];
    const float *r = t->data + b * D * 6;
    float sx = c->dets_pixels ? (float)c->in_w : 1.f, sy = c->dets_pixels ? (float)c->in_h : 1.f;
    for (int64_t i = 0; i < D; i++, r += 6) {
        if (!(r[4] >= thr) || !isfinite(r[4]))
            continue;
        if (!(r[5] >= 0 && r[5] < (float)c->nclasses) || r[5] != floorf(r[5]))
            return ac_err_set(err, AC_E_INVALID, "detect: detection row %lld has class %g, must be an integer 0..%d",
                              (long long)i, (double)r[5], c->nclasses - 1);
        ac_det d = {r[0] / sx, r[1] / sy, r[2] / sx, r[3] / sy, r[4], (int32_t)r[5], (int32_t)i};
        if (!(isfinite(d.x1) && isfinite(d.y1) && isfinite(d.x2) && isfinite(d.y2)))
            continue;
        int rc = det_push(out, &d);
        if (rc)
            return ac_err_set(err, rc, "detect: out of memory");
    }
    return AC_OK;
}

/* ------------------------------------------------------------------ NMS */

static int cmp_class_score_index(const void *pa, const void *pb)
{
    const ac_det *a = pa, *b = pb;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int cmp_score_index_class(const void *pa, const void *pb)
{
    const ac_det *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return (a->cls > b->cls) - (a->cls < b->cls);
}

static int cmp_score_class_index(const void *pa, const void *pb)
{
    const ac_det *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

double ac_box_iou(double ax1, double ay1, double ax2, double ay2, double bx1, double by1, double bx2, double by2)
{
    /* The same operations as pycocotools' bbIou, so IoUs agree bit for bit. */
    double w = fmin(ax2, bx2) - fmax(ax1, bx1);
    if (!(w > 0))
        return 0.0;
    double h = fmin(ay2, by2) - fmax(ay1, by1);
    if (!(h > 0))
        return 0.0;
    double i = w * h;
    double u = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - i;
    return u > 0 ? i / u : 0.0;
}

static double det_iou(const ac_det *a, const ac_det *b)
{
    return ac_box_iou(a->x1, a->y1, a->x2, a->y2, b->x1, b->y1, b->x2, b->y2);
}

int32_t ac_detect_nms(ac_det *d, int32_t n, float iou, int32_t max_keep, int class_agnostic)
{
    if (n <= 0)
        return 0;
    qsort(d, (size_t)n, sizeof *d, class_agnostic ? cmp_score_index_class : cmp_class_score_index);
    int32_t kept = 0;
    if (iou >= 1.f) {
        kept = n;
    } else {
        for (int32_t g = 0; g < n;) {
            int32_t end = g + 1;
            while (end < n && (class_agnostic || d[end].cls == d[g].cls))
                end++;
            int32_t first = kept; /* kept boxes of this group: d[first..kept) */
            for (int32_t i = g; i < end && kept - first < max_keep; i++) {
                int suppressed = 0;
                for (int32_t j = first; j < kept && !suppressed; j++)
                    suppressed = det_iou(&d[i], &d[j]) > iou;
                if (!suppressed)
                    d[kept++] = d[i];
            }
            g = end;
        }
    }
    qsort(d, (size_t)kept, sizeof *d, cmp_score_class_index);
    return kept < max_keep ? kept : max_keep;
}

int ac_detect_run(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int64_t nbatch, int64_t b,
                  float score_threshold, ac_det **dets, int32_t *ndets, ac_err *err)
{
    *dets = NULL;
    *ndets = 0;
    if (b < 0 || b >= nbatch)
        return ac_err_set(err, AC_E_INVALID, "detect: sample %lld is outside the batch of %lld", (long long)b,
                          (long long)nbatch);
    int rc = ac_detect_check_outputs(c, outputs, noutputs, nbatch, err);
    if (rc)
        return rc;
    det_list l = {0};
    switch (c->kind) {
    case AC_DECODE_SSD:
    case AC_DECODE_SSD_PRIORS: rc = decode_ssd(c, outputs, noutputs, b, score_threshold, &l); break;
    case AC_DECODE_YOLO: rc = decode_yolo(c, outputs, b, score_threshold, &l); break;
    case AC_DECODE_DETS: rc = decode_dets(c, outputs, b, score_threshold, &l, err); break;
    case AC_DECODE_GRID: rc = decode_grid(c, outputs, b, score_threshold, &l); break;
    case AC_DECODE_ANCHORS: rc = decode_anchors(c, outputs, b, score_threshold, &l); break;
    }
    if (rc) {
        free(l.d);
        if (rc == AC_E_NOMEM)
            ac_err_set(err, rc, "detect: out of memory decoding candidates");
        return rc;
    }
    *ndets = ac_detect_nms(l.d, l.n, c->nms_iou, c->max_detections, c->class_agnostic_nms);
    *dets = l.d;
    return AC_OK;
}

/* ------------------------------------------------------------------ matching and AP */

double ac_detect_iou_threshold(int t)
{
    /* numpy.linspace(.5, .95, 10): start + i * ((stop - start) / 9), last = stop */
    if (t >= AC_DETECT_NIOU - 1)
        return 0.95;
    return (double)t * ((0.95 - 0.5) / 9.0) + 0.5;
}

void ac_detect_match(const ac_det *d, int32_t n, const ac_metric_box *gt, int32_t ngt, uint16_t *match)
{
    for (int32_t i = 0; i < n; i++)
        match[i] = 0;
    if (ngt <= 0 || n <= 0)
        return;
    uint8_t *taken = calloc((size_t)ngt, 1);
    if (!taken)
        return; /* out of memory: no matches rather than a crash */
    /* Per threshold, the greedy pass of pycocotools' evaluateImg. */
    for (int t = 0; t < AC_DETECT_NIOU; t++) {
        double thr = ac_detect_iou_threshold(t);
        memset(taken, 0, (size_t)ngt);
        for (int32_t i = 0; i < n; i++) {
            double best = fmin(thr, 1 - 1e-10);
            int32_t m = -1;
            for (int32_t g = 0; g < ngt; g++) {
                if (taken[g] || gt[g].cls != d[i].cls)
                    continue;
                double iou = ac_box_iou(d[i].x1, d[i].y1, d[i].x2, d[i].y2, gt[g].x1, gt[g].y1, gt[g].x2, gt[g].y2);
                if (iou < best)
                    continue;
                best = iou;
                m = g;
            }
            if (m >= 0) {
                taken[m] = 1;
                match[i] |= (uint16_t)(1u << t);
            }
        }
    }
    free(taken);
}

double ac_ap_all_point(const uint8_t *tp, int64_t n, int64_t npos)
{
    if (npos <= 0 || n <= 0)
        return 0.0;
    /* Walk from the end keeping the running max of precision; each step
     * where recall rises adds (rec_i - rec_{i-1}) * max precision at or after i. */
    double *prec = malloc((size_t)n * sizeof *prec);
    if (!prec)
        return 0.0;
    int64_t cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += tp[i] != 0;
        prec[i] = (double)cum / (double)(i + 1);
    }
    for (int64_t i = n - 1; i > 0; i--)
        if (prec[i] > prec[i - 1])
            prec[i - 1] = prec[i];
    double ap = 0.0, prev_rec = 0.0;
    cum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!tp[i])
            continue;
        cum++;
        double rec = (double)cum / (double)npos;
        ap += (rec - prev_rec) * prec[i];
        prev_rec = rec;
    }
    free(prec);
    return ap;
}

double ac_ap_101_point(const uint8_t *tp, int64_t n, int64_t npos)
{
    if (npos <= 0 || n <= 0)
        return 0.0;
    double *prec = malloc((size_t)n * sizeof *prec);
    double *rec = malloc((size_t)n * sizeof *rec);
    if (!prec || !rec) {
        free(prec);
        free(rec);
        return 0.0;
    }
    int64_t cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += tp[i] != 0;
        rec[i] = (double)cum / (double)npos;
        prec[i] = (double)cum / (double)(i + 1);
    }
    for (int64_t i = n - 1; i > 0; i--)
        if (prec[i] > prec[i - 1])
            prec[i - 1] = prec[i];
    /* recall thresholds numpy.linspace(0, 1, 101); searchsorted(rec, r, 'left') */
    double sum = 0.0;
    int64_t pi = 0;
    for (int r = 0; r <= 100; r++) {
        double thr = r == 100 ? 1.0 : (double)r * (1.0 / 100.0);
        while (pi < n && rec[pi] < thr)
            pi++;
        if (pi < n)
            sum += prec[pi];
    }
    free(prec);
    free(rec);
    return sum / 101.0;
}

int ac_detect_config_preset(ac_detect_config *c, const char *name, ac_err *err)
{
    if (!name || !*name || !strcmp(name, "ssd"))
        ac_detect_config_init(c, AC_DECODE_SSD);
    else if (!strcmp(name, "ultraface"))
        ac_detect_config_ultraface_320(c, 0);
    else if (!strcmp(name, "ultraface_raw"))
        ac_detect_config_ultraface_320(c, 1);
    else if (!strcmp(name, "yolo_fastest"))
        ac_detect_config_yolo_fastest(c, 0, 1);
    else if (!strcmp(name, "yunet"))
        ac_detect_config_yunet_320(c);
    else if (!strcmp(name, "blazeface"))
        ac_detect_config_blazeface_front_128(c);
    else
        return ac_err_set(err, AC_E_INVALID,
                          "detect decoder '%s': must be ssd, ultraface, ultraface_raw, yolo_fastest, yunet or blazeface",
                          name);
    return 0;
}
