/* ac_metric_tool: a small command line over the metrics library, for the
 * Python comparison tests (tests/python/test_metrics_ref.py).
 *
 *   ac_metric_tool map [--shards K] < detections.txt
 *       Input lines:  classes C | sample S | gt S CLS X1 Y1 X2 Y2 | det S CLS SCORE X1 Y1 X2 Y2
 *       (boxes normalised corners). Scores the detections against the boxes
 *       with the detect metric (decoder "dets", no NMS, no cap below 65535):
 *       sample S goes to shard S % K, each shard's partial travels through
 *       encode/decode, and the shards merge in reverse order. Prints
 *       "name value" lines (%.17g).
 *   ac_metric_tool decode PRESET THRESHOLD FILE:D0,D1,... [FILE:DIMS ...]
 *       Runs a decoder preset (ultraface, ultraface_raw, yolo_fastest, yunet, blazeface) with
 *       NMS on raw little-endian float32 tensors; prints one detection per
 *       line: "cls score x1 y1 x2 y2 index". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_metric.h"

typedef struct {
    int64_t sample;
    int32_t cls;
    float score, x1, y1, x2, y2;
} row;

static int usage(void)
{
    fprintf(stderr, "usage: ac_metric_tool map [--shards K] < detections.txt\n"
                    "       ac_metric_tool decode PRESET THRESHOLD FILE:D0,D1,... ...\n"
                    "         (PRESET: ultraface, ultraface_raw, yolo_fastest, yunet, blazeface)\n");
    return 2;
}

static int grow(void **p, int64_t *cap, int64_t n, size_t size)
{
    if (n < *cap)
        return 0;
    int64_t c = *cap ? *cap * 2 : 1024;
    void *q = realloc(*p, (size_t)c * size);
    if (!q)
        return 1;
    *p = q;
    *cap = c;
    return 0;
}

static int cmd_map(int argc, char **argv)
{
    int shards = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc)
            shards = atoi(argv[++i]);
        else
            return usage();
    }
    if (shards < 1 || shards > 1000)
        return usage();
    int nclasses = 0;
    row *gts = NULL, *dets = NULL;
    int64_t ngt = 0, gcap = 0, ndet = 0, dcap = 0, max_sample = -1;
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, stdin)) {
        lineno++;
        row r = {0};
        long long s;
        int cls;
        if (sscanf(line, "classes %d", &nclasses) == 1)
            continue;
        if (sscanf(line, "sample %lld", &s) == 1) {
            max_sample = s > max_sample ? s : max_sample;
            continue;
        }
        if (sscanf(line, "gt %lld %d %f %f %f %f", &s, &cls, &r.x1, &r.y1, &r.x2, &r.y2) == 6) {
            r.sample = s, r.cls = cls;
            if (grow((void **)&gts, &gcap, ngt, sizeof *gts))
                return 1;
            gts[ngt++] = r;
        } else if (sscanf(line, "det %lld %d %f %f %f %f %f", &s, &cls, &r.score, &r.x1, &r.y1, &r.x2, &r.y2) == 7) {
            r.sample = s, r.cls = cls;
            if (grow((void **)&dets, &dcap, ndet, sizeof *dets))
                return 1;
            dets[ndet++] = r;
        } else if (line[0] != '\n' && line[0] != '#') {
            fprintf(stderr, "stdin:%d: cannot parse '%s'\n", lineno, line);
            return 1;
        }
        if (s < 0) {
            fprintf(stderr, "stdin:%d: negative sample index\n", lineno);
            return 1;
        }
        max_sample = s > max_sample ? s : max_sample;
    }
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_DETECT);
    ac_detect_config_init(&o.detect, AC_DECODE_DETS);
    o.detect.nclasses = nclasses;
    o.detect.score_threshold = 0.f;
    o.detect.nms_iou = 1.f;
    o.detect.max_detections = 65535;
    ac_err err;
    ac_metric *m = ac_metric_new(&o, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ac_metric_partial **part = calloc((size_t)shards, sizeof *part);
    for (int k = 0; k < shards; k++)
        part[k] = ac_metric_partial_new(m, &err);
    int rc = 0;
    /* gts and dets are grouped by sample with a stable counting pass: within a
     * sample, rows keep their input order (the decoder's tie-breaking index) */
    int64_t *gstart = calloc((size_t)(max_sample + 2), sizeof *gstart), *dstart = calloc((size_t)(max_sample + 2), sizeof *dstart);
    row *gs = malloc((size_t)(ngt ? ngt : 1) * sizeof *gs), *dsr = malloc((size_t)(ndet ? ndet : 1) * sizeof *dsr);
    for (int64_t i = 0; i < ngt; i++)
        gstart[gts[i].sample + 1]++;
    for (int64_t i = 0; i < ndet; i++)
        dstart[dets[i].sample + 1]++;
    for (int64_t s = 0; s <= max_sample; s++)
        gstart[s + 1] += gstart[s], dstart[s + 1] += dstart[s];
    {
        int64_t *gpos = malloc((size_t)(max_sample + 1) * sizeof *gpos), *dpos = malloc((size_t)(max_sample + 1) * sizeof *dpos);
        memcpy(gpos, gstart, (size_t)(max_sample + 1) * sizeof *gpos);
        memcpy(dpos, dstart, (size_t)(max_sample + 1) * sizeof *dpos);
        for (int64_t i = 0; i < ngt; i++)
            gs[gpos[gts[i].sample]++] = gts[i];
        for (int64_t i = 0; i < ndet; i++)
            dsr[dpos[dets[i].sample]++] = dets[i];
        free(gpos);
        free(dpos);
    }
    for (int64_t s = 0; s <= max_sample && rc == 0; s++) {
        int64_t nd = dstart[s + 1] - dstart[s], ng = gstart[s + 1] - gstart[s];
        float *t = malloc((size_t)(nd ? nd : 1) * 6 * sizeof *t);
        ac_metric_box *b = malloc((size_t)(ng ? ng : 1) * sizeof *b);
        for (int64_t i = 0; i < nd; i++) {
            const row *r = &dsr[dstart[s] + i];
            float v[6] = {r->x1, r->y1, r->x2, r->y2, r->score, (float)r->cls};
            memcpy(t + 6 * i, v, sizeof v);
        }
        for (int64_t i = 0; i < ng; i++) {
            const row *r = &gs[gstart[s] + i];
            b[i] = (ac_metric_box){r->cls, r->x1, r->y1, r->x2, r->y2};
        }
        ac_metric_tensor tt = {t, 3, {1, nd, 6}};
        ac_metric_label l = {.cls = -1, .has_boxes = 1, .boxes = b, .nboxes = (int32_t)ng};
        if (ac_metric_partial_add(part[s % shards], s, 1, &tt, 1, NULL, 0, &l, &err)) {
            fprintf(stderr, "sample %lld: %s\n", (long long)s, err.msg);
            rc = 1;
        }
        free(t);
        free(b);
    }
    ac_metric_partial *total = ac_metric_partial_new(m, &err);
    for (int k = shards - 1; k >= 0 && rc == 0; k--) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        ac_metric_partial *q = NULL;
        if (ac_metric_partial_encode(part[k], &bytes, &n, &err) || ac_metric_partial_decode(m, bytes, n, &q, &err) ||
            ac_metric_partial_merge(total, q, &err)) {
            fprintf(stderr, "shard %d: %s\n", k, err.msg);
            rc = 1;
        }
        free(bytes);
        ac_metric_partial_destroy(&q);
    }
    ac_metric_result r;
    if (rc == 0 && ac_metric_score(total, &r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 1;
    }
    if (rc == 0)
        printf("map50 %.17g\nmap50_95 %.17g\nmap50_101 %.17g\nscore %.17g\ndetections %lld\ngt_boxes %lld\n"
               "classes_with_gt %d\nsamples %lld\n",
               r.map50, r.map50_95, r.map50_101, r.score, (long long)r.detections, (long long)r.gt_boxes,
               r.classes_with_gt, (long long)r.samples);
    for (int k = 0; k < shards; k++)
        ac_metric_partial_destroy(&part[k]);
    free(part);
    ac_metric_partial_destroy(&total);
    ac_metric_destroy(&m);
    free(gts), free(dets), free(gs), free(dsr), free(gstart), free(dstart);
    return rc;
}

static int cmd_decode(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    ac_detect_config c;
    ac_err perr;
    if (ac_detect_config_preset(&c, argv[0], &perr)) {
        fprintf(stderr, "%s\n", perr.msg);
        return usage();
    }
    float thr = strtof(argv[1], NULL);
    int nt = argc - 2;
    enum { MAX_TENSORS = 16 }; /* YuNet has 12 outputs */
    ac_metric_tensor t[MAX_TENSORS];
    float *data[MAX_TENSORS] = {0};
    int rc = 0;
    if (nt > MAX_TENSORS)
        return usage();
    for (int i = 0; i < nt && rc == 0; i++) {
        char *spec = argv[2 + i], *colon = strrchr(spec, ':');
        if (!colon)
            return usage();
        *colon = '\0';
        memset(&t[i], 0, sizeof t[i]);
        int64_t n = 1;
        for (char *p = colon + 1; *p && t[i].ndim < AC_METRIC_MAX_DIMS;) {
            t[i].dims[t[i].ndim++] = strtoll(p, &p, 10);
            n *= t[i].dims[t[i].ndim - 1];
            if (*p == ',')
                p++;
        }
        FILE *f = fopen(spec, "rb");
        data[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        if (!f || fread(data[i], sizeof(float), (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "%s: cannot read %lld floats\n", spec, (long long)n);
            rc = 1;
        }
        if (f)
            fclose(f);
        t[i].data = data[i];
    }
    ac_det *d = NULL;
    int32_t n = 0;
    ac_err err;
    if (rc == 0 && ac_detect_run(&c, t, nt, t[0].dims[0], 0, thr, &d, &n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 1;
    }
    for (int32_t i = 0; i < n; i++)
        printf("%d %.9g %.9g %.9g %.9g %.9g %d\n", d[i].cls, (double)d[i].score, (double)d[i].x1, (double)d[i].y1,
               (double)d[i].x2, (double)d[i].y2, d[i].index);
    free(d);
    for (int i = 0; i < nt; i++)
        free(data[i]);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "map") == 0)
        return cmd_map(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc - 2, argv + 2);
    return usage();
}
