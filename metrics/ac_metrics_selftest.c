/* metrics selftest: hand-computed top-1/top-5, cosine, AP, NMS, decoders,
 * sharding invariance (1, 2, 3, 7 shards, several merge orders, through
 * encode/decode), the score's upper bound, strict decoding of garbage, and the plug-in contract.
 *
 *   ac_metrics_selftest [PLUGIN.so]          (the plug-in tests skip without it)
 *   ac_metrics_selftest --write-seeds DIR    (fuzz seeds: valid encoded partials) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_metric.h"
#include "fuzz_metric_partial.h"
#include "ac_check.h"

#define CHECK_NEAR(a, b, tol)                                                                                          \
    do {                                                                                                               \
        checks++;                                                                                                      \
        double a_ = (a), b_ = (b);                                                                                     \
        if (!(fabs(a_ - b_) <= (tol))) {                                                                               \
            failures++;                                                                                                \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g\n", __FILE__, __LINE__, #a, a_, b_);                    \
        }                                                                                                              \
    } while (0)
#define CHECK_OK(expr)                                                                                                 \
    do {                                                                                                               \
        checks++;                                                                                                      \
        ac_err_clear(&err);                                                                                            \
        if ((expr) != AC_OK) {                                                                                         \
            failures++;                                                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, err.msg);                             \
        }                                                                                                              \
    } while (0)
/* expr must fail with a message containing needle */
#define CHECK_ERR(expr, needle)                                                                                        \
    do {                                                                                                               \
        checks++;                                                                                                      \
        ac_err_clear(&err);                                                                                            \
        int rc_ = (expr);                                                                                              \
        if (rc_ == AC_OK || !strstr(err.msg, needle)) {                                                                \
            failures++;                                                                                                \
            fprintf(stderr, "%s:%d: %s: rc %d, message '%s', expected one containing '%s'\n", __FILE__, __LINE__,    \
                    #expr, rc_, err.msg, needle);                                                                      \
        }                                                                                                              \
    } while (0)

static ac_err err;

/* A deterministic generator (xorshift64*), so the tests do not depend on libc's rand. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static float frand(void) { return (float)((rnd() >> 40) / (double)(1 << 24)); } /* [0,1) */

static ac_metric_tensor tensor(const float *data, int ndim, const int64_t *dims)
{
    ac_metric_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t.dims[d] = dims[d];
    return t;
}

static ac_metric *metric_new(const ac_metric_options *o)
{
    ac_metric *m = ac_metric_new(o, &err);
    if (!m) {
        fprintf(stderr, "ac_metric_new: %s\n", err.msg);
        exit(1); /* a test program: nothing else can run */
    }
    return m;
}

/* ------------------------------------------------------------------ classify */

static void test_classify(void)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_CLASSIFY);
    o.topk = 2;
    ac_metric *m = metric_new(&o);
    /* 4 samples x 4 classes. label ranks: 0 (top-1), 1 (top-2), 2, and a tie
     * at rank 1 (equal to a lower index: counts behind it). */
    const float x[16] = {0.9f, 0.1f, 0.0f, 0.0f, /* label 0: rank 0 */
                         0.5f, 0.3f, 0.2f, 0.0f, /* label 1: rank 1 */
                         0.1f, 0.2f, 0.3f, 0.4f, /* label 1: rank 2 */
                         0.4f, 0.4f, 0.1f, 0.1f}; /* label 1: tied with class 0 -> rank 1 */
    int64_t dims[2] = {4, 4};
    ac_metric_tensor t = tensor(x, 2, dims);
    ac_metric_label l[4] = {{.cls = 0}, {.cls = 1}, {.cls = 1}, {.cls = 1}};
    ac_metric_partial *p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 4, &t, 1, NULL, 0, l, &err));
    ac_metric_result r;
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK(r.samples == 4 && r.top1_correct == 1 && r.topk_correct == 3);
    CHECK(r.top1 == 0.25 && r.topk_accuracy == 0.75 && r.score == 0.25);
    /* the same sample again is refused, and the partial is unchanged */
    int64_t one[2] = {1, 4};
    ac_metric_tensor t1 = tensor(x, 2, one);
    CHECK_ERR(ac_metric_partial_add(p, 3, 1, &t1, 1, NULL, 0, l, &err), "sample 3 is in both partials");
    CHECK(ac_metric_partial_samples(p) == 4);
    /* a label outside the classes */
    ac_metric_label bad[4] = {{.cls = 0}, {.cls = 4}, {.cls = 0}, {.cls = 0}};
    CHECK_ERR(ac_metric_partial_add(p, 10, 4, &t, 1, NULL, 0, bad, &err), "label 4 is outside the 4 classes");
    CHECK_ERR(ac_metric_partial_add(p, 10, 4, &t, 1, NULL, 0, NULL, &err), "have no labels");
    int64_t wrong[2] = {3, 4};
    ac_metric_tensor tw = tensor(x, 2, wrong);
    CHECK_ERR(ac_metric_partial_add(p, 10, 4, &tw, 1, NULL, 0, l, &err), "has 3 samples in dim 0, expected 4");
    CHECK(ac_metric_partial_samples(p) == 4);
    /* top-5 with 1000 classes: label at rank 4 counts, rank 5 does not */
    o.topk = 5;
    ac_metric *m5 = metric_new(&o);
    float *big = calloc(2 * 1000, sizeof *big);
    for (int i = 0; i < 1000; i++)
        big[i] = big[1000 + i] = (float)i / 1000.f; /* class 999 is top-1 */
    int64_t bd[4] = {2, 1000, 1, 1};
    ac_metric_tensor bt = tensor(big, 4, bd);
    ac_metric_label bl[2] = {{.cls = 995}, {.cls = 994}};
    ac_metric_partial *p5 = ac_metric_partial_new(m5, &err);
    CHECK_OK(ac_metric_partial_add(p5, 100, 2, &bt, 1, NULL, 0, bl, &err));
    CHECK_OK(ac_metric_score(p5, &r, &err));
    CHECK(r.top1_correct == 0 && r.topk_correct == 1 && r.topk == 5);
    free(big);
    ac_metric_partial_destroy(&p5);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m5);
    ac_metric_destroy(&m);
    CHECK(m == NULL);
    ac_metric_destroy(&m); /* NULL-safe */
    ac_metric_partial_destroy(&p);
}

/* ------------------------------------------------------------------ similarity */

static void test_similarity(void)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_SIMILARITY);
    o.classifier = 1;
    ac_metric *m = metric_new(&o);
    /* sample 0: [1,0] vs [1,1] -> cos 1/sqrt2, argmax 0 vs 0 (tie -> first) agree;
     * sample 1: [0,2] vs [0,3] -> cos 1, argmax agree; sample 2: [1,0] vs [0,1] -> 0, disagree */
    const float a[6] = {1, 0, 0, 2, 1, 0}, b[6] = {1, 1, 0, 3, 0, 1};
    int64_t dims[2] = {3, 2};
    ac_metric_tensor ta = tensor(a, 2, dims), tb = tensor(b, 2, dims);
    ac_metric_partial *p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 3, &ta, 1, &tb, 1, NULL, &err));
    ac_metric_result r;
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK_NEAR(r.cosine, (1 / sqrt(2.0) + 1 + 0) / 3, 1e-9);
    CHECK(r.cosine_min == 0.0);
    CHECK(r.top1_agree == 2);
    CHECK_NEAR(r.score, 2.0 / 3, 0);
    /* the cosine is an integer sum of 2^-32 steps: exactly this */
    CHECK(r.cosine == (double)(llround(1 / sqrt(2.0) * 4294967296.0) + 4294967296LL) / 4294967296.0 / 3.0);
    CHECK_ERR(ac_metric_partial_add(p, 5, 3, &ta, 1, NULL, 0, NULL, &err), "needs the fp32 outputs");
    int64_t d2[2] = {3, 1};
    ac_metric_tensor tc = tensor(b, 2, d2);
    CHECK_ERR(ac_metric_partial_add(p, 5, 3, &ta, 1, &tc, 1, NULL, &err), "differ in shape");
    /* zero vectors: both zero agree (1), one zero does not (0); NaN gives 0 */
    const float z[6] = {0, 0, 0, 0, NAN, 1}, z2[6] = {0, 0, 1, 1, 1, 1};
    ac_metric_tensor tz = tensor(z, 2, dims), tz2 = tensor(z2, 2, dims);
    ac_metric_options_init(&o, AC_METRIC_SIMILARITY);
    ac_metric *mc = metric_new(&o);
    ac_metric_partial *q = ac_metric_partial_new(mc, &err);
    CHECK_OK(ac_metric_partial_add(q, 0, 3, &tz, 1, &tz2, 1, NULL, &err));
    CHECK_OK(ac_metric_score(q, &r, &err));
    CHECK_NEAR(r.cosine, 1.0 / 3, 1e-12);
    CHECK(r.score == r.cosine && r.top1_agree == 0);
    ac_metric_partial_destroy(&q);
    ac_metric_destroy(&mc);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
}

/* ------------------------------------------------------------------ AP and NMS */

static void test_ap(void)
{
    /* hand-computed: tp 1,0,1,0,0,1 with 4 objects. precision 1,.5,.667,.5,.4,.5,
     * recall .25,.25,.5,.5,.5,.75; interpolated precision 1,.667,.667,.5,.5,.5.
     * all-point: .25*1 + .25*2/3 + .25*.5; 101-point: 26 points at 1, 25 at 2/3,
     * 25 at .5, 25 (recall > .75) at 0. */
    const uint8_t tp[6] = {1, 0, 1, 0, 0, 1};
    CHECK_NEAR(ac_ap_all_point(tp, 6, 4), 0.25 + 0.25 * 2 / 3.0 + 0.125, 1e-15);
    CHECK_NEAR(ac_ap_101_point(tp, 6, 4), (26 + 25 * 2 / 3.0 + 12.5) / 101, 1e-15);
    const uint8_t all[3] = {1, 1, 1};
    CHECK(ac_ap_all_point(all, 3, 3) == 1.0 && ac_ap_101_point(all, 3, 3) == 1.0);
    /* VOC example (all-point): tp 0,1,1 with 2 objects: precision .5 then .667
     * -> interpolated .667 at both steps -> 2/3 */
    const uint8_t voc[3] = {0, 1, 1};
    CHECK_NEAR(ac_ap_all_point(voc, 3, 2), 2 / 3.0, 1e-15);
    /* half the objects never found: recall stops at .5 */
    CHECK_NEAR(ac_ap_all_point(all, 3, 6), 0.5, 1e-15);
    CHECK_NEAR(ac_ap_101_point(all, 3, 6), 51 / 101.0, 1e-15);
    CHECK(ac_ap_all_point(tp, 0, 4) == 0.0);

    CHECK_NEAR(ac_box_iou(0, 0, 2, 2, 1, 1, 3, 3), 1.0 / 7, 1e-15);
    CHECK(ac_box_iou(0, 0, 1, 1, 1, 0, 2, 1) == 0.0);
    CHECK(ac_box_iou(0, 0, 1, 1, 0, 0, 1, 1) == 1.0);
    CHECK(ac_detect_iou_threshold(0) == 0.5 && ac_detect_iou_threshold(9) == 0.95);
    CHECK_NEAR(ac_detect_iou_threshold(3), 0.65, 1e-15);
}

static void test_nms(void)
{
    /* a: kept; b: IoU(a,b) = 0.6 > 0.5 -> dropped; c: other class -> kept;
     * d: IoU with a = 1/3 -> kept; e: same score as a, lower index... */
    ac_det d[6] = {
        {0, 0, 10, 10, 0.9f, 0, 5},  /* a */
        {0, 0, 10, 6, 0.8f, 0, 1},   /* b: inside a, IoU 0.6 */
        {0, 0, 10, 10, 0.7f, 1, 2},  /* c: class 1 */
        {5, 0, 15, 10, 0.6f, 0, 3},  /* d: IoU 50/150 */
        {20, 20, 30, 30, 0.9f, 0, 4}, /* e: ties a's score, disjoint */
        {0, 0, 10, 5, 0.5f, 0, 0},   /* f: IoU 0.5 exactly with a: not > 0.5, kept */
    };
    int32_t n = ac_detect_nms(d, 6, 0.5f, 100, 0);
    CHECK(n == 5);
    /* order: score desc, class, index: e(0.9, idx4) before a(0.9, idx5) */
    CHECK(d[0].index == 4 && d[1].index == 5 && d[2].index == 2 && d[3].index == 3 && d[4].index == 0);
    ac_det d2[3] = {{0, 0, 10, 10, 0.9f, 0, 1}, {0, 0, 10, 10, 0.9f, 0, 0}, {0, 0, 10, 10, 0.8f, 1, 2}};
    /* equal scores: the lower index wins; class-agnostic drops the class-1 copy */
    n = ac_detect_nms(d2, 3, 0.5f, 100, 1);
    CHECK(n == 1 && d2[0].index == 0);
    ac_det d3[4] = {{0, 0, 1, 1, 0.1f, 0, 0}, {2, 2, 3, 3, 0.4f, 0, 1}, {4, 4, 5, 5, 0.3f, 0, 2}, {6, 6, 7, 7, 0.2f, 0, 3}};
    n = ac_detect_nms(d3, 4, 0.5f, 2, 0); /* cap */
    CHECK(n == 2 && d3[0].index == 1 && d3[1].index == 2);
    ac_det d4[2] = {{0, 0, 1, 1, 0.5f, 0, 0}, {0, 0, 1, 1, 0.6f, 0, 1}};
    n = ac_detect_nms(d4, 2, 1.0f, 10, 0); /* NMS off: both, sorted */
    CHECK(n == 2 && d4[0].index == 1);
}

/* ------------------------------------------------------------------ decoders */

static void test_yolo_decode(void)
{
    ac_detect_config c;
    ac_detect_config_init(&c, AC_DECODE_YOLO);
    c.nclasses = 2;
    c.in_w = c.in_h = 64;
    c.nanchors = 2;
    c.anchors[0][0] = 64, c.anchors[0][1] = 32;
    c.anchors[1][0] = 8, c.anchors[1][1] = 8;
    c.nheads = 1;
    c.head_outputs[0] = 0;
    c.head_nmask[0] = 1;
    c.head_mask[0][0] = 0;
    c.score_threshold = 0.5f;
    CHECK_OK(ac_detect_config_check(&c, &err));
    /* [1, 1*(5+2), 2, 2]: everything -20 but cell (y=1, x=0) */
    float head[7 * 4];
    for (int i = 0; i < 28; i++)
        head[i] = -20.f;
    int cell = 1 * 2 + 0;
    head[0 * 4 + cell] = 0.f;              /* tx: sigmoid 0.5 */
    head[1 * 4 + cell] = 0.f;              /* ty */
    head[2 * 4 + cell] = 0.f;              /* tw: exp 1 */
    head[3 * 4 + cell] = (float)log(2.0);  /* th: exp 2 */
    head[4 * 4 + cell] = 20.f;             /* objectness */
    head[6 * 4 + cell] = 20.f;             /* class 1 */
    int64_t dims[4] = {1, 7, 2, 2};
    ac_metric_tensor t = tensor(head, 4, dims);
    ac_det *d = NULL;
    int32_t n = 0;
    CHECK_OK(ac_detect_run(&c, &t, 1, 1, 0, c.score_threshold, &d, &n, &err));
    CHECK(n == 1);
    if (n == 1) {
        /* centre ((0+.5)/2, (1+.5)/2), size (64/64, 2*32/64) */
        CHECK_NEAR(d[0].x1, 0.25 - 0.5, 1e-6);
        CHECK_NEAR(d[0].y1, 0.75 - 0.5, 1e-6);
        CHECK_NEAR(d[0].x2, 0.25 + 0.5, 1e-6);
        CHECK_NEAR(d[0].y2, 0.75 + 0.5, 1e-6);
        CHECK(d[0].cls == 1 && d[0].index == cell);
        CHECK_NEAR(d[0].score, 1.0 / (1 + exp(-20.0)) / (1 + exp(-20.0)), 1e-7);
    }
    free(d);
    /* scale_xy 2: x = (col + 2*sig - 0.5) / W */
    c.scale_xy = 2.f;
    head[0 * 4 + cell] = 20.f; /* sigmoid ~1 */
    CHECK_OK(ac_detect_run(&c, &t, 1, 1, 0, c.score_threshold, &d, &n, &err));
    CHECK(n == 1 && fabs((d[0].x1 + d[0].x2) / 2 - (0 + 2 * 1.0 - 0.5) / 2) < 1e-6);
    free(d);
    /* wrong channel count */
    int64_t bad[4] = {1, 8, 2, 2};
    ac_metric_tensor tb = tensor(head, 4, bad);
    CHECK_ERR(ac_detect_run(&c, &tb, 1, 1, 0, 0.5f, &d, &n, &err), "YOLO head 0 has shape [1,8,2,2], expected [1,7,?,?]");
    /* two heads, two anchors per head, indices run over heads then anchors then cells */
    c.scale_xy = 1.f;
    c.nheads = 2;
    c.head_outputs[1] = 1;
    c.head_nmask[1] = 1;
    c.head_mask[1][0] = 1;
    float h1[7 * 1] = {0, 0, 0, 0, 20, 20, -20}; /* 1x1 grid, class 0 */
    int64_t d1[4] = {1, 7, 1, 1};
    head[0 * 4 + cell] = 0.f;
    ac_metric_tensor two[2] = {t, tensor(h1, 4, d1)};
    CHECK_OK(ac_detect_run(&c, two, 2, 1, 0, 0.5f, &d, &n, &err));
    CHECK(n == 2);
    if (n == 2) {
        CHECK(d[1].index == 4 || d[0].index == 4); /* head 1 starts after head 0's 4 cells */
        const ac_det *h = d[0].index == 4 ? &d[0] : &d[1];
        CHECK(h->cls == 0);
        CHECK_NEAR(h->x2 - h->x1, 8.0 / 64, 1e-6);
    }
    free(d);
}

/* YuNet-style grid heads: two levels (strides 16, 32 on 64x64: 4x4 and 2x2
 * cells); one confident cell on each, known boxes; indices run over level
 * 0's cells, then level 1's. */
static void test_grid_decode(void)
{
    ac_detect_config c;
    ac_detect_config_init(&c, AC_DECODE_GRID);
    c.in_w = c.in_h = 64;
    c.nlevels = 2;
    c.strides[0] = 16, c.strides[1] = 32;
    c.level_cls[0] = 0, c.level_cls[1] = 1;
    c.level_obj[0] = 2, c.level_obj[1] = 3;
    c.level_box[0] = 4, c.level_box[1] = 5;
    CHECK_OK(ac_detect_config_check(&c, &err));
    float cls0[16] = {0}, obj0[16] = {0}, box0[64] = {0}, cls1[4] = {0}, obj1[4] = {0}, box1[16] = {0};
    /* level 0, row 2, column 1 (cell 9): score sqrt(0.81 * 1.2 -> 1) = 0.9 */
    cls0[9] = 0.81f, obj0[9] = 1.2f;
    box0[9 * 4 + 0] = 0.5f, box0[9 * 4 + 1] = 0.25f;            /* centre (1.5, 2.25) cells */
    box0[9 * 4 + 2] = 0.f, box0[9 * 4 + 3] = (float)log(2.0); /* 16 x 32 pixels */
    /* level 1, cell 3 (row 1, column 1): sqrt(0.25 * 0.36) = 0.3; cls below 0 clamps to 0 elsewhere */
    cls1[3] = 0.25f, obj1[3] = 0.36f, cls1[0] = -1.f, obj1[0] = 1.f;
    int64_t s0[3] = {1, 16, 1}, b0[3] = {1, 16, 4}, s1[3] = {1, 4, 1}, b1[3] = {1, 4, 4};
    ac_metric_tensor t[6] = {tensor(cls0, 3, s0), tensor(cls1, 3, s1), tensor(obj0, 3, s0),
                             tensor(obj1, 3, s1), tensor(box0, 3, b0), tensor(box1, 3, b1)};
    ac_det *d = NULL;
    int32_t n = 0;
    CHECK_OK(ac_detect_run(&c, t, 6, 1, 0, 0.2f, &d, &n, &err));
    CHECK(n == 2);
    if (n == 2) {
        CHECK(d[0].index == 9 && d[1].index == 16 + 3);
        CHECK_NEAR(d[0].score, 0.9, 1e-6);
        CHECK_NEAR(d[1].score, 0.3, 1e-6);
        /* centre (1.5*16, 2.25*16) = (24, 36) px, size 16 x 32 px, over 64 */
        CHECK_NEAR(d[0].x1, 16.0 / 64, 1e-6);
        CHECK_NEAR(d[0].x2, 32.0 / 64, 1e-6);
        CHECK_NEAR(d[0].y1, 20.0 / 64, 1e-6);
        CHECK_NEAR(d[0].y2, 52.0 / 64, 1e-6);
        /* level 1 cell (1,1), zero offsets: centre (32, 32), 32 x 32 */
        CHECK_NEAR(d[1].x1, 16.0 / 64, 1e-6);
        CHECK_NEAR(d[1].y2, 48.0 / 64, 1e-6);
    }
    free(d);
    /* a level whose objectness has the wrong cell count */
    int64_t bad[3] = {1, 15, 1};
    t[2] = tensor(obj0, 3, bad);
    CHECK_ERR(ac_detect_run(&c, t, 6, 1, 0, 0.2f, &d, &n, &err), "level 0 objectness has shape [1,15,1], expected [1,16,1]");
    c.strides[1] = 128;
    CHECK_ERR(ac_detect_config_check(&c, &err), "level 1 stride 128 must be >= 1 and at most the input size");
}

/* MediaPipe anchors: two levels on 32x32 (stride 16: 2x2 cells, 2 anchors;
 * stride 32: 1 cell, 3 anchors), logits, boxes of 6 values (extra ignored). */
static void test_anchors_decode(void)
{
    ac_detect_config c;
    ac_detect_config_init(&c, AC_DECODE_ANCHORS);
    c.in_w = c.in_h = 32;
    c.nlevels = 2;
    c.strides[0] = 16, c.strides[1] = 32;
    c.level_anchors[0] = 2, c.level_anchors[1] = 3;
    c.level_cls[0] = 0, c.level_cls[1] = 1;
    c.level_box[0] = 2, c.level_box[1] = 3;
    CHECK_OK(ac_detect_config_check(&c, &err));
    float sc0[8], sc1[3], bx0[8 * 6] = {0}, bx1[3 * 6] = {0};
    for (int i = 0; i < 8; i++)
        sc0[i] = -500.f; /* clamped to -100: sigmoid ~0 */
    for (int i = 0; i < 3; i++)
        sc1[i] = -5.f;
    /* level 0, cell (row 1, column 0), anchor 1: index 2*2 + 1 = 5; logit 2 */
    sc0[5] = 2.f;
    bx0[5 * 6 + 0] = 4.f, bx0[5 * 6 + 1] = -8.f, bx0[5 * 6 + 2] = 8.f, bx0[5 * 6 + 3] = 16.f;
    sc1[2] = 0.f; /* 0.5 */
    bx1[2 * 6 + 2] = bx1[2 * 6 + 3] = 32.f;
    int64_t s0[3] = {1, 8, 1}, b0[3] = {1, 8, 6}, s1[3] = {1, 3, 1}, b1[3] = {1, 3, 6};
    ac_metric_tensor t[4] = {tensor(sc0, 3, s0), tensor(sc1, 3, s1), tensor(bx0, 3, b0), tensor(bx1, 3, b1)};
    ac_det *d = NULL;
    int32_t n = 0;
    CHECK_OK(ac_detect_run(&c, t, 4, 1, 0, 0.4f, &d, &n, &err));
    CHECK(n == 2);
    if (n == 2) {
        CHECK(d[0].index == 5 && d[1].index == 8 + 2);
        CHECK_NEAR(d[0].score, 1.0 / (1 + exp(-2.0)), 1e-6);
        /* anchor centre (0.25, 0.75) + (4, -8)/32 = (0.375, 0.5); size (0.25, 0.5) */
        CHECK_NEAR(d[0].x1, 0.25, 1e-6);
        CHECK_NEAR(d[0].x2, 0.5, 1e-6);
        CHECK_NEAR(d[0].y1, 0.25, 1e-6);
        CHECK_NEAR(d[0].y2, 0.75, 1e-6);
        /* the single 32-px cell: centre (0.5, 0.5), the whole input */
        CHECK(d[1].x1 == 0.f && d[1].y2 == 1.f);
    }
    free(d);
    int64_t short_box[3] = {1, 3, 3};
    t[3] = tensor(bx1, 3, short_box);
    CHECK_ERR(ac_detect_run(&c, t, 4, 1, 0, 0.4f, &d, &n, &err), "need at least 4");
    c.level_anchors[0] = 0;
    CHECK_ERR(ac_detect_config_check(&c, &err), "level 0 has 0 anchors per cell");
}

static void test_ssd_decode(void)
{
    /* corners: 3 priors, 3 columns (background 0) */
    ac_detect_config c;
    ac_detect_config_init(&c, AC_DECODE_SSD);
    c.nclasses = 2;
    c.score_threshold = 0.3f;
    const float scores[9] = {0.9f, 0.05f, 0.05f, 0.1f, 0.8f, 0.1f, 0.2f, 0.4f, 0.4f};
    const float boxes[12] = {0, 0, .1f, .1f, .2f, .2f, .4f, .4f, .6f, .6f, .9f, .9f};
    int64_t ds[3] = {1, 3, 3}, db[3] = {1, 3, 4};
    ac_metric_tensor t[2] = {tensor(scores, 3, ds), tensor(boxes, 3, db)};
    ac_det *d = NULL;
    int32_t n = 0;
    CHECK_OK(ac_detect_run(&c, t, 2, 1, 0, c.score_threshold, &d, &n, &err));
    /* prior 1 class 0 (0.8), prior 2 classes 0 and 1 (0.4 each: class 0 first) */
    CHECK(n == 3);
    if (n == 3) {
        CHECK(d[0].index == 1 && d[0].cls == 0 && d[0].x1 == .2f);
        CHECK(d[1].index == 2 && d[1].cls == 0 && d[2].index == 2 && d[2].cls == 1);
    }
    free(d);
    /* a model that lists its boxes first: read the other way round, same detections */
    ac_metric_tensor swapped[2] = {t[1], t[0]};
    ac_det *d2 = NULL;
    int32_t n2 = 0;
    CHECK_OK(ac_detect_run(&c, swapped, 2, 1, 0, c.score_threshold, &d2, &n2, &err));
    CHECK(n2 == 3 && d2 && d2[0].index == 1 && d2[0].x1 == .2f && d2[2].cls == 1);
    free(d2);
    c.background = -1;
    CHECK_ERR(ac_detect_run(&c, t, 2, 1, 0, 0.3f, &d, &n, &err), "scores has shape [1,3,3], expected [1,?,2]");

    /* priors: one level, stride 16 on 32x16 -> 2x1 cells, 2 sizes -> 4 priors */
    ac_detect_config_init(&c, AC_DECODE_SSD_PRIORS);
    c.nclasses = 1;
    c.in_w = 32;
    c.in_h = 16;
    c.nlevels = 1;
    c.strides[0] = 16;
    c.nsizes[0] = 2;
    c.min_sizes[0][0] = 8;
    c.min_sizes[0][1] = 16;
    c.score_threshold = 0.5f;
    CHECK_OK(ac_detect_config_check(&c, &err));
    const float sc[8] = {0.1f, 0.9f, 0.9f, 0.1f, 0.9f, 0.1f, 0.9f, 0.1f}; /* prior 0 only */
    /* prior 0: centre (.25,.5), size (8/32, 8/16) = (.25,.5); regression: dx=1 -> cx += 1*.1*.25 */
    const float rg[16] = {1, 0, 0, (float)(log(2.0) / 0.2), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int64_t s4[3] = {1, 4, 2}, b4[3] = {1, 4, 4};
    ac_metric_tensor tp[2] = {tensor(sc, 3, s4), tensor(rg, 3, b4)};
    CHECK_OK(ac_detect_run(&c, tp, 2, 1, 0, c.score_threshold, &d, &n, &err));
    CHECK(n == 1);
    if (n == 1) {
        CHECK(d[0].index == 0 && d[0].cls == 0);
        CHECK_NEAR((d[0].x1 + d[0].x2) / 2, 0.25 + 0.025, 1e-6);
        CHECK_NEAR(d[0].x2 - d[0].x1, 0.25, 1e-6);
        CHECK_NEAR(d[0].y2 - d[0].y1, 1.0, 1e-6); /* exp(log 2) * .5 */
    }
    free(d);
    int64_t s5[3] = {1, 5, 2};
    ac_metric_tensor tq[2] = {tensor(sc, 3, s5), tensor(rg, 3, b4)};
    CHECK_ERR(ac_detect_run(&c, tq, 2, 1, 0, 0.5f, &d, &n, &err), "boxes has shape");
    CHECK(n == 0 && d == NULL);
    /* UltraFace presets: 4420 priors */
    ac_detect_config_ultraface_320(&c, 1);
    CHECK_OK(ac_detect_config_check(&c, &err));
    float *us = calloc(4420 * 2, sizeof *us), *ub = calloc(4420 * 4, sizeof *ub);
    int64_t us_d[3] = {1, 4420, 2}, ub_d[3] = {1, 4420, 4};
    ac_metric_tensor ut[2] = {tensor(us, 3, us_d), tensor(ub, 3, ub_d)};
    us[2 * 4419 + 1] = 0.9f; /* the last prior: level 3, row 3, col 4, size 256 */
    CHECK_OK(ac_detect_run(&c, ut, 2, 1, 0, 0.5f, &d, &n, &err));
    CHECK(n == 1);
    if (n == 1) {
        /* centre ((4+.5)/5, (3+.5)/4) = (.9, .875), size (256/320, 256/240 -> clipped 1) */
        CHECK_NEAR((d[0].x1 + d[0].x2) / 2, 0.9, 1e-6);
        CHECK_NEAR((d[0].y1 + d[0].y2) / 2, 0.875, 1e-6);
        CHECK_NEAR(d[0].x2 - d[0].x1, 0.8, 1e-6);
        CHECK_NEAR(d[0].y2 - d[0].y1, 1.0, 1e-6);
    }
    free(d);
    free(us);
    free(ub);
    ac_detect_config_yolo_fastest(&c, 0, 1);
    CHECK_OK(ac_detect_config_check(&c, &err));
    c.nms_iou = 2.f;
    CHECK_ERR(ac_detect_config_check(&c, &err), "nms_iou 2 must lie in [0,1]");
}

/* ------------------------------------------------------------------ detection metric */

static ac_metric *dets_metric(int nclasses, int labelled_pixels)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_DETECT);
    ac_detect_config_init(&o.detect, AC_DECODE_DETS);
    o.detect.nclasses = nclasses;
    o.detect.score_threshold = 0.0f;
    o.detect.ref_score_threshold = 0.5f;
    o.detect.nms_iou = 1.0f; /* rows are final detections */
    (void)labelled_pixels;
    return metric_new(&o);
}

static void test_detect_metric(void)
{
    ac_metric *m = dets_metric(2, 0);
    /* 2 samples; [2, 3, 6] rows x1,y1,x2,y2,score,class */
    const float rows[36] = {
        0.1f, 0.1f, 0.3f, 0.3f, 0.9f, 0, 0.5f, 0.5f, 0.9f, 0.9f, 0.8f, 1, 0, 0, 0, 0, -1, 0, /* sample 0; row 2 dropped */
        0.2f, 0.2f, 0.4f, 0.4f, 0.7f, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1, 0,
    };
    int64_t dims[3] = {2, 3, 6};
    ac_metric_tensor t = tensor(rows, 3, dims);
    /* labels in pixels of a 100x100 image: the same boxes -> every metric 1 */
    ac_metric_box b0[2] = {{0, 10, 10, 30, 30}, {1, 50, 50, 90, 90}}, b1[1] = {{0, 20, 20, 40, 40}};
    ac_metric_label l[2] = {{.cls = -1, .has_boxes = 1, .boxes = b0, .nboxes = 2, .img_w = 100, .img_h = 100},
                            {.cls = -1, .has_boxes = 1, .boxes = b1, .nboxes = 1, .img_w = 100, .img_h = 100}};
    ac_metric_partial *p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 2, &t, 1, NULL, 0, l, &err));
    ac_metric_result r;
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK(r.map50 == 1.0 && r.map50_95 == 1.0 && r.map50_101 == 1.0 && r.score == 1.0);
    CHECK(r.detections == 3 && r.gt_boxes == 3 && r.classes_with_gt == 2 && r.labelled == 1);
    ac_metric_partial_destroy(&p);

    /* shift sample 1's box: IoU with its label = (0.15*0.2)/(0.04+0.04-0.03) = 0.6 */
    float moved[36];
    memcpy(moved, rows, sizeof moved);
    moved[18] = 0.25f, moved[20] = 0.45f;
    ac_metric_tensor tm = tensor(moved, 3, dims);
    p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 2, &tm, 1, NULL, 0, l, &err));
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK(r.map50 == 1.0);
    /* class 0: TP at .50,.55,.60 (IoU 0.6 >= .6? .6 computed in float: check below) */
    double iou = ac_box_iou(0.25f, 0.2f, 0.45f, 0.4f, 0.2f, 0.2f, 0.4f, 0.4f);
    int tps = 0;
    for (int k = 0; k < 10; k++)
        tps += iou >= ac_detect_iou_threshold(k);
    /* class 0 at thresholds where the moved box fails: 1 TP (score .9) then FP (.7):
     * 101-point AP = 51/101; class 1 always 1 */
    double cls0 = (tps * 1.0 + (10 - tps) * 51.0 / 101) / 10;
    CHECK_NEAR(r.map50_95, (cls0 + 1.0) / 2, 1e-12);
    ac_metric_partial_destroy(&p);

    /* no labels: the fp32 reference's detections (score >= 0.5) are the truth */
    p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 2, &t, 1, &t, 1, NULL, &err));
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK(r.score == 1.0 && r.labelled == 0 && r.gt_boxes == 3);
    /* mixing labelled and unlabelled samples is refused */
    int64_t d1[3] = {1, 3, 6};
    ac_metric_tensor t1 = tensor(rows, 3, d1);
    CHECK_ERR(ac_metric_partial_add(p, 5, 1, &t1, 1, NULL, 0, l, &err), "scored against labels");
    CHECK_ERR(ac_metric_partial_add(p, 5, 1, &t1, 1, NULL, 0, NULL, &err), "neither labels nor fp32 outputs");
    ac_metric_box badb[1] = {{7, 0, 0, 1, 1}};
    ac_metric_label bl = {.cls = -1, .has_boxes = 1, .boxes = badb, .nboxes = 1};
    ac_metric_partial *q = ac_metric_partial_new(m, &err);
    CHECK_ERR(ac_metric_partial_add(q, 5, 1, &t1, 1, NULL, 0, &bl, &err), "box 0 has class 7, must be 0..1");
    float badrow[6] = {0, 0, 1, 1, 0.9f, 2.5f};
    int64_t d16[3] = {1, 1, 6};
    ac_metric_tensor tbad = tensor(badrow, 3, d16);
    CHECK_ERR(ac_metric_partial_add(q, 5, 1, &tbad, 1, &tbad, 1, NULL, &err), "class 2.5, must be an integer");
    CHECK(ac_metric_partial_samples(q) == 0);
    CHECK_ERR(ac_metric_score(q, &r, &err), "holds no samples");
    ac_metric_partial_destroy(&q);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
}

/* ------------------------------------------------------------------ sharding invariance */

typedef struct {
    ac_metric *m;
    int nsamples;
    /* per-sample data (batch of 1 each, concatenated) */
    int nout;
    int64_t dims[2][AC_METRIC_MAX_DIMS];
    int ndim[2];
    float *out[2], *ref[2];
    ac_metric_label *labels;
    ac_metric_box *boxes;
} dataset;

static int64_t per_sample(const dataset *ds, int o)
{
    int64_t n = 1;
    for (int d = 1; d < ds->ndim[o]; d++)
        n *= ds->dims[o][d];
    return n;
}

/* Adds samples [first, first + n) of ds to p in one batch. */
static int add_range(const dataset *ds, ac_metric_partial *p, int first, int n)
{
    ac_metric_tensor o[2], r[2];
    for (int k = 0; k < ds->nout; k++) {
        int64_t per = per_sample(ds, k);
        o[k] = tensor(ds->out[k] + first * per, ds->ndim[k], ds->dims[k]);
        r[k] = tensor(ds->ref[k] + first * per, ds->ndim[k], ds->dims[k]);
        o[k].dims[0] = r[k].dims[0] = n;
    }
    ac_metric_kind kind = ac_metric_get_kind(ds->m);
    int use_labels = kind == AC_METRIC_CLASSIFY || (kind == AC_METRIC_DETECT && ds->labels);
    return ac_metric_partial_add(p, first, n, o, ds->nout, r, ds->nout, use_labels ? ds->labels + first : NULL, &err);
}

static void dataset_free(dataset *ds)
{
    for (int k = 0; k < 2; k++) {
        free(ds->out[k]);
        free(ds->ref[k]);
    }
    free(ds->labels);
    free(ds->boxes);
    ac_metric_destroy(&ds->m);
}

static void dataset_alloc(dataset *ds, int nout)
{
    ds->nout = nout;
    for (int k = 0; k < nout; k++) {
        ds->dims[k][0] = 1;
        int64_t n = ds->nsamples * per_sample(ds, k);
        ds->out[k] = malloc((size_t)n * sizeof(float));
        ds->ref[k] = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            ds->ref[k][i] = frand() * 4 - 2;
            ds->out[k][i] = ds->ref[k][i] + (frand() - 0.5f) * 0.8f; /* a noisy "int8" copy */
        }
    }
}

static void make_classify(dataset *ds)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_CLASSIFY);
    ds->m = metric_new(&o);
    ds->nsamples = 97;
    ds->ndim[0] = 2;
    ds->dims[0][1] = 10;
    dataset_alloc(ds, 1);
    ds->labels = calloc((size_t)ds->nsamples, sizeof *ds->labels);
    for (int i = 0; i < ds->nsamples; i++)
        ds->labels[i].cls = (int32_t)(rnd() % 10);
}

static void make_similarity(dataset *ds)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_SIMILARITY);
    o.classifier = 1;
    o.output = 1;
    ds->m = metric_new(&o);
    ds->nsamples = 101;
    ds->ndim[0] = 4;
    ds->dims[0][1] = 3, ds->dims[0][2] = 5, ds->dims[0][3] = 7;
    ds->ndim[1] = 2;
    ds->dims[1][1] = 12;
    dataset_alloc(ds, 2);
}

/* YOLO heads with random logits (objectness biased low), scored against the
 * fp32 heads' detections or against random labels. */
static void make_yolo(dataset *ds, int with_labels)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_DETECT);
    ac_detect_config *c = &o.detect;
    ac_detect_config_init(c, AC_DECODE_YOLO);
    c->nclasses = 3;
    c->in_w = c->in_h = 64;
    c->nanchors = 2;
    c->anchors[0][0] = 16, c->anchors[0][1] = 20;
    c->anchors[1][0] = 30, c->anchors[1][1] = 24;
    c->nheads = 2;
    c->head_outputs[0] = 0, c->head_outputs[1] = 1;
    c->head_nmask[0] = c->head_nmask[1] = 1;
    c->head_mask[0][0] = 1, c->head_mask[1][0] = 0;
    c->score_threshold = 0.05f;
    c->ref_score_threshold = 0.3f;
    c->nms_iou = 0.5f;
    c->max_detections = 20;
    ds->m = metric_new(&o);
    ds->nsamples = 83;
    ds->ndim[0] = ds->ndim[1] = 4;
    ds->dims[0][1] = ds->dims[1][1] = 8;
    ds->dims[0][2] = ds->dims[0][3] = 4;
    ds->dims[1][2] = ds->dims[1][3] = 8;
    dataset_alloc(ds, 2);
    for (int k = 0; k < 2; k++) {
        int64_t hw = ds->dims[k][2] * ds->dims[k][3];
        for (int s = 0; s < ds->nsamples; s++)
            for (int64_t i = 0; i < hw; i++) {
                float *obj = ds->ref[k] + s * 8 * hw + 4 * hw + i;
                *obj -= 1.5f;
                ds->out[k][obj - ds->ref[k]] = *obj + (frand() - 0.5f) * 0.6f;
            }
    }
    if (with_labels) {
        /* labels: the fp32 model's confident detections, jittered, some dropped,
         * so the score is neither 0 nor 1 and ranks matter */
        ds->labels = calloc((size_t)ds->nsamples, sizeof *ds->labels);
        ds->boxes = calloc((size_t)ds->nsamples * 20, sizeof *ds->boxes);
        for (int s = 0; s < ds->nsamples; s++) {
            ac_metric_tensor r[2];
            for (int k = 0; k < 2; k++) {
                r[k] = tensor(ds->ref[k] + s * per_sample(ds, k), 4, ds->dims[k]);
                r[k].dims[0] = 1;
            }
            ac_det *d = NULL;
            int32_t n = 0, nb = 0;
            CHECK_OK(ac_detect_run(c, r, 2, 1, 0, 0.2f, &d, &n, &err));
            for (int32_t i = 0; i < n && nb < 20; i++) {
                if (rnd() % 5 == 0)
                    continue;
                float j[4];
                for (int e = 0; e < 4; e++)
                    j[e] = (frand() - 0.5f) * 0.1f;
                ds->boxes[s * 20 + nb++] = (ac_metric_box){d[i].cls, (d[i].x1 + j[0]) * 64, (d[i].y1 + j[1]) * 64,
                                                           (d[i].x2 + j[2]) * 64, (d[i].y2 + j[3]) * 64};
            }
            free(d);
            ds->labels[s] = (ac_metric_label){.cls = -1, .has_boxes = 1, .boxes = ds->boxes + s * 20, .nboxes = nb,
                                              .img_w = 64, .img_h = 64};
        }
    }
}

static void make_plugin(dataset *ds, const char *path)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_PLUGIN);
    o.plugin_path = path;
    o.plugin_options = "tol=0.25";
    ds->m = metric_new(&o);
    ds->nsamples = 50;
    ds->ndim[0] = 2;
    ds->dims[0][1] = 9;
    dataset_alloc(ds, 1);
}

/* Builds the partial of samples assigned to shard s (assign[i] == s), adding
 * them in runs of consecutive samples of random length. */
static ac_metric_partial *shard_partial(const dataset *ds, const int *assign, int s)
{
    ac_metric_partial *p = ac_metric_partial_new(ds->m, &err);
    int i = 0;
    while (i < ds->nsamples) {
        if (assign[i] != s) {
            i++;
            continue;
        }
        int n = 1, max = 1 + (int)(rnd() % 5);
        while (i + n < ds->nsamples && assign[i + n] == s && n < max)
            n++;
        CHECK_OK(add_range(ds, p, i, n));
        i += n;
    }
    return p;
}

static ac_metric_partial *roundtrip(const ac_metric *m, const ac_metric_partial *p)
{
    uint8_t *b = NULL;
    size_t n = 0;
    ac_metric_partial *q = NULL;
    CHECK_OK(ac_metric_partial_encode(p, &b, &n, &err));
    CHECK_OK(ac_metric_partial_decode(m, b, n, &q, &err));
    free(b);
    return q;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static int results_equal(const ac_metric_result *a, const ac_metric_result *b)
{
    return same_bits(a->score, b->score) && a->samples == b->samples && a->top1_correct == b->top1_correct &&
           a->topk_correct == b->topk_correct && same_bits(a->top1, b->top1) &&
           same_bits(a->topk_accuracy, b->topk_accuracy) && same_bits(a->cosine, b->cosine) &&
           same_bits(a->cosine_min, b->cosine_min) && a->top1_agree == b->top1_agree &&
           same_bits(a->map50, b->map50) && same_bits(a->map50_95, b->map50_95) &&
           same_bits(a->map50_101, b->map50_101) && a->detections == b->detections && a->gt_boxes == b->gt_boxes &&
           a->classes_with_gt == b->classes_with_gt && strcmp(a->details, b->details) == 0;
}

/* The score and encoding of p must be those of the reference. */
static void check_same(const char *what, const ac_metric_partial *p, const ac_metric_result *ref, const uint8_t *rb,
                       size_t rn)
{
    ac_metric_result r;
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK_OK(ac_metric_partial_encode(p, &b, &n, &err));
    int ok = results_equal(&r, ref) && n == rn && memcmp(b, rb, n) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  %s: score %.17g vs %.17g, %zu vs %zu bytes\n", what, r.score, ref->score, n, rn);
    free(b);
}

static void test_sharding(dataset *ds, const char *name)
{
    /* reference: one partial, one sample at a time, in order */
    ac_metric_partial *ref = ac_metric_partial_new(ds->m, &err);
    for (int i = 0; i < ds->nsamples; i++)
        CHECK_OK(add_range(ds, ref, i, 1));
    ac_metric_result rr;
    uint8_t *rb = NULL;
    size_t rn = 0;
    CHECK_OK(ac_metric_score(ref, &rr, &err));
    CHECK_OK(ac_metric_partial_encode(ref, &rb, &rn, &err));
    CHECK(rr.score >= 0 && rr.score <= 1);
    printf("  %-22s %3d samples: score %.17g (%zu bytes)", name, ds->nsamples, rr.score, rn);
    if (ac_metric_get_kind(ds->m) == AC_METRIC_DETECT)
        printf(" mAP50 %.4f mAP50:95 %.4f, %lld detections, %lld truths", rr.map50, rr.map50_95,
               (long long)rr.detections, (long long)rr.gt_boxes);
    printf("\n");
    /* one batch of everything */
    ac_metric_partial *all = ac_metric_partial_new(ds->m, &err);
    CHECK_OK(add_range(ds, all, 0, ds->nsamples));
    check_same("one batch", all, &rr, rb, rn);
    ac_metric_partial_destroy(&all);

    static const int ks[4] = {1, 2, 3, 7};
    int *assign = malloc((size_t)ds->nsamples * sizeof *assign);
    for (int ki = 0; ki < 4; ki++) {
        int K = ks[ki];
        for (int mode = 0; mode < 2; mode++) {
            /* mode 0: contiguous index ranges; mode 1: random assignment */
            for (int i = 0; i < ds->nsamples; i++)
                assign[i] = mode == 0 ? (int)((int64_t)i * K / ds->nsamples) : (int)(rnd() % (uint64_t)K);
            ac_metric_partial *sh[7];
            for (int s = 0; s < K; s++)
                sh[s] = shard_partial(ds, assign, s);
            char what[64];
            /* a: left fold in order */
            ac_metric_partial *a = ac_metric_partial_new(ds->m, &err);
            for (int s = 0; s < K; s++)
                CHECK_OK(ac_metric_partial_merge(a, sh[s], &err));
            snprintf(what, sizeof what, "%s K=%d mode %d in order", name, K, mode);
            check_same(what, a, &rr, rb, rn);
            /* b: reverse order, each shard through encode/decode */
            ac_metric_partial *b = ac_metric_partial_new(ds->m, &err);
            for (int s = K - 1; s >= 0; s--) {
                ac_metric_partial *q = roundtrip(ds->m, sh[s]);
                if (q)
                    CHECK_OK(ac_metric_partial_merge(b, q, &err));
                ac_metric_partial_destroy(&q);
            }
            snprintf(what, sizeof what, "%s K=%d mode %d reversed via bytes", name, K, mode);
            check_same(what, b, &rr, rb, rn);
            /* c: a tree: merge pairs (s, s+1) into s, then the pairs' results, ... */
            ac_metric_partial *t[7];
            for (int s = 0; s < K; s++)
                t[s] = roundtrip(ds->m, sh[s]);
            for (int step = 1; step < K; step *= 2)
                for (int s = 0; s + step < K; s += 2 * step) {
                    CHECK_OK(ac_metric_partial_merge(t[s + step], t[s], &err)); /* into the later one */
                    ac_metric_partial_destroy(&t[s]);
                    t[s] = t[s + step];
                    t[s + step] = NULL;
                }
            ac_metric_partial *root = NULL;
            for (int s = 0; s < K; s++)
                if (t[s]) {
                    if (!root)
                        root = t[s];
                    else
                        CHECK(0); /* the tree leaves one partial */
                }
            snprintf(what, sizeof what, "%s K=%d mode %d tree", name, K, mode);
            if (root)
                check_same(what, root, &rr, rb, rn);
            /* merging a shard twice is refused and leaves the partial as it was */
            if (K > 1) {
                CHECK(ac_metric_partial_merge(a, sh[0], &err) != AC_OK && strstr(err.msg, "in both partials"));
                check_same("after a refused merge", a, &rr, rb, rn);
            }
            for (int s = 0; s < K; s++) {
                if (ac_metric_partial_samples(sh[s]) > 0)
                    CHECK(ac_metric_partial_has_sample(sh[s], s == 0 ? 0 : 0) == (assign[0] == s));
                ac_metric_partial_destroy(&sh[s]);
            }
            for (int s = 0; s < K; s++)
                ac_metric_partial_destroy(&t[s]);
            ac_metric_partial_destroy(&a);
            ac_metric_partial_destroy(&b);
        }
    }
    /* an empty partial encodes and decodes too */
    ac_metric_partial *e = ac_metric_partial_new(ds->m, &err), *e2 = roundtrip(ds->m, e);
    CHECK(e2 && ac_metric_partial_samples(e2) == 0);
    ac_metric_partial_destroy(&e);
    ac_metric_partial_destroy(&e2);
    free(assign);
    free(rb);
    ac_metric_partial_destroy(&ref);
}

/* ------------------------------------------------------------------ score bound */

/* ac_metric_score_bound on growing prefixes and on random subsets: never
 * below the final score (bit for bit, not within a tolerance), never rising
 * as samples come in, 1 before any sample, the final score once all are in,
 * and refused when the partial holds more samples than the total. */
static void test_bound(const dataset *ds, const char *name)
{
    ac_metric_partial *all = ac_metric_partial_new(ds->m, &err);
    CHECK_OK(add_range(ds, all, 0, ds->nsamples));
    ac_metric_result fin;
    CHECK_OK(ac_metric_score(all, &fin, &err));
    double b = -1, prev = 2;
    ac_metric_partial *p = ac_metric_partial_new(ds->m, &err);
    CHECK(ac_metric_score_bound(p, ds->nsamples, &b) == 1 && b == 1.0);
    int below = 0, rising = 0, steps = 0;
    for (int i = 0; i < ds->nsamples; i += 1 + (int)(rnd() % 4)) {
        int n = i + 3 <= ds->nsamples ? 3 : ds->nsamples - i;
        CHECK_OK(add_range(ds, p, i, n));
        i += n - 1;
        CHECK(ac_metric_score_bound(p, ds->nsamples, &b) == 1);
        below += b < fin.score;
        rising += b > prev;
        prev = b;
        steps++;
    }
    CHECK(below == 0 && rising == 0);
    /* random subsets, merged from shards as the farm does */
    for (int rep = 0; rep < 20; rep++) {
        ac_metric_partial *q = ac_metric_partial_new(ds->m, &err);
        for (int i = 0; i < ds->nsamples; i++)
            if (rnd() % 3 == 0)
                CHECK_OK(add_range(ds, q, i, 1));
        CHECK(ac_metric_score_bound(q, ds->nsamples, &b) == 1);
        below += b < fin.score;
        ac_metric_partial_destroy(&q);
    }
    CHECK(below == 0);
    CHECK(ac_metric_score_bound(all, ds->nsamples, &b) == 1 && b == fin.score);
    CHECK(ac_metric_score_bound(all, ds->nsamples - 1, &b) == 0);
    printf("  %-22s bound over %d prefixes and 20 subsets: never below the final %.17g\n", name, steps, fin.score);
    ac_metric_partial_destroy(&p);
    ac_metric_partial_destroy(&all);
}

/* The bound by hand: 1 of 4 classified right, 6 still to come of 10: at most
 * 7/10. Detection and plug-in scores have no bound. */
static void test_bound_by_hand(void)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_CLASSIFY);
    ac_metric *m = metric_new(&o);
    const float x[8] = {0.9f, 0.1f, 0.9f, 0.1f, 0.9f, 0.1f, 0.9f, 0.1f};
    int64_t dims[2] = {4, 2};
    ac_metric_tensor t = tensor(x, 2, dims);
    ac_metric_label l[4] = {{.cls = 0}, {.cls = 1}, {.cls = 1}, {.cls = 1}};
    ac_metric_partial *p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 4, &t, 1, NULL, 0, l, &err));
    double b = -1;
    CHECK(ac_metric_score_bound(p, 10, &b) == 1 && b == 0.7);
    CHECK(ac_metric_score_bound(p, 3, &b) == 0);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
    ac_metric_options_init(&o, AC_METRIC_DETECT);
    m = metric_new(&o);
    p = ac_metric_partial_new(m, &err);
    CHECK(ac_metric_score_bound(p, 10, &b) == 0);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
}

/* ------------------------------------------------------------------ strict decoding */

/* Every truncation of a valid encoding is rejected with a message; byte
 * flips never crash, and when one decodes, it still encodes and scores. */
static void test_garbage(const dataset *ds, const char *name)
{
    ac_metric_partial *p = ac_metric_partial_new(ds->m, &err);
    CHECK_OK(add_range(ds, p, 0, ds->nsamples < 20 ? ds->nsamples : 20));
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(ac_metric_partial_encode(p, &b, &n, &err));
    ac_metric_partial *q = NULL;
    int truncated_ok = 1;
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, b, k);
        ac_err_clear(&err);
        if (ac_metric_partial_decode(ds->m, c, k, &q, &err) == AC_OK || !err.msg[0] || q)
            truncated_ok = 0;
        ac_metric_partial_destroy(&q);
        free(c);
    }
    CHECK(truncated_ok);
    int flips_decoded = 0;
    for (int trial = 0; trial < 2000; trial++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        int nflip = 1 + (int)(rnd() % 3);
        for (int f = 0; f < nflip; f++)
            c[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
        ac_err_clear(&err);
        if (ac_metric_partial_decode(ds->m, c, n, &q, &err) == AC_OK) {
            flips_decoded++;
            ac_metric_result r;
            uint8_t *b2 = NULL;
            size_t n2 = 0;
            CHECK_OK(ac_metric_partial_encode(q, &b2, &n2, &err));
            ac_err_clear(&err);
            if (ac_metric_score(q, &r, &err) == AC_OK)
                CHECK(r.score >= 0 && r.score <= 1);
            free(b2);
        } else {
            CHECK(err.msg[0] != '\0');
        }
        ac_metric_partial_destroy(&q);
        free(c);
    }
    printf("  garbage %-14s %zu-byte partial: every truncation rejected, %d of 2000 bit flips still decode\n", name, n,
           flips_decoded);
    /* trailing bytes */
    uint8_t *c = malloc(n + 1);
    memcpy(c, b, n);
    c[n] = 0;
    CHECK_ERR(ac_metric_partial_decode(ds->m, c, n + 1, &q, &err), "1 bytes follow the partial");
    free(c);
    free(b);
    ac_metric_partial_destroy(&p);
}

static void test_decode_rules(void)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_CLASSIFY);
    ac_metric *m = metric_new(&o);
    o.topk = 3;
    ac_metric *m3 = metric_new(&o);
    ac_metric_partial *p = ac_metric_partial_new(m, &err), *q = NULL;
    const float x[4] = {1, 0, 0, 1};
    int64_t dims[2] = {2, 2};
    ac_metric_tensor t = tensor(x, 2, dims);
    ac_metric_label l[2] = {{.cls = 0}, {.cls = 0}};
    CHECK_OK(ac_metric_partial_add(p, 10, 2, &t, 1, NULL, 0, l, &err));
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_OK(ac_metric_partial_encode(p, &b, &n, &err));
    /* a metric with other options has another fingerprint */
    CHECK_ERR(ac_metric_partial_decode(m3, b, n, &q, &err), "options fingerprint");
    ac_metric_partial *p3 = ac_metric_partial_new(m3, &err);
    CHECK_ERR(ac_metric_partial_merge(p3, p, &err), "different metrics");
    ac_metric_partial_destroy(&p3);
    /* another kind */
    ac_metric_options_init(&o, AC_METRIC_SIMILARITY);
    ac_metric *ms = metric_new(&o);
    CHECK_ERR(ac_metric_partial_decode(ms, b, n, &q, &err), "a similarity partial is a map of 8 keys");
    ac_metric_destroy(&ms);
    CHECK_ERR(ac_metric_partial_decode(m, (const uint8_t *)"\x93\x01\x02\x03", 4, &q, &err), "expected a map");
    CHECK_ERR(ac_metric_partial_decode(m, NULL, 0, &q, &err), "truncated");
    ac_metric_partial_destroy(&p);
    free(b);
    ac_metric_destroy(&m3);
    ac_metric_destroy(&m);
    ac_metric_options_init(&o, AC_METRIC_DETECT);
    o.detect.nclasses = 0;
    CHECK(ac_metric_new(&o, &err) == NULL && strstr(err.msg, "nclasses 0 must be in 1..100000"));
    ac_metric_options_init(&o, AC_METRIC_PLUGIN);
    o.plugin_path = "/nonexistent/libnothing.so";
    CHECK(ac_metric_new(&o, &err) == NULL && strstr(err.msg, "cannot load"));
}

/* ------------------------------------------------------------------ plug-in */

static void test_plugin(const char *path)
{
    ac_metric_options o;
    ac_metric_options_init(&o, AC_METRIC_PLUGIN);
    o.plugin_path = path;
    o.plugin_options = "tol=oops";
    CHECK(ac_metric_new(&o, &err) == NULL && strstr(err.msg, "init failed") && strstr(err.msg, "tol=oops"));
    o.plugin_options = "tol=0.5";
    ac_metric *m = metric_new(&o);
    CHECK(strstr(ac_metric_describe(m), "name=within_tol options=tol=0.5") != NULL);
    /* 3 samples x 4 values: 2, 4 and 0 values within 0.5 */
    const float a[12] = {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0}, b[12] = {0, 0, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9};
    int64_t dims[2] = {3, 4};
    ac_metric_tensor ta = tensor(a, 2, dims), tb = tensor(b, 2, dims);
    ac_metric_partial *p = ac_metric_partial_new(m, &err);
    CHECK_OK(ac_metric_partial_add(p, 0, 3, &ta, 1, &tb, 1, NULL, &err));
    ac_metric_result r;
    CHECK_OK(ac_metric_score(p, &r, &err));
    CHECK(r.score == 0.5 && strcmp(r.details, "6 of 12 values within 0.5") == 0);
    CHECK_ERR(ac_metric_partial_add(p, 7, 3, &ta, 1, NULL, 0, NULL, &err), "add sample 7: sample 7: needs one fp32");
    /* contract: (p1 + p2) + p3 == p1 + (p2 + p3), and a round trip keeps the score */
    ac_metric_partial *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = ac_metric_partial_new(m, &err);
        ac_metric_tensor x = ta, y = tb;
        x.data += 4 * i, y.data += 4 * i;
        x.dims[0] = y.dims[0] = 1;
        CHECK_OK(ac_metric_partial_add(s[i], i, 1, &x, 1, &y, 1, NULL, &err));
    }
    ac_metric_partial *left = roundtrip(m, s[0]), *right = roundtrip(m, s[2]);
    CHECK_OK(ac_metric_partial_merge(left, s[1], &err));
    CHECK_OK(ac_metric_partial_merge(left, s[2], &err));
    CHECK_OK(ac_metric_partial_merge(right, s[1], &err));
    CHECK_OK(ac_metric_partial_merge(right, s[0], &err));
    ac_metric_result rl, rr;
    CHECK_OK(ac_metric_score(left, &rl, &err));
    CHECK_OK(ac_metric_score(right, &rr, &err));
    CHECK(results_equal(&rl, &r) && results_equal(&rr, &r));
    ac_metric_partial *rt = roundtrip(m, left);
    CHECK_OK(ac_metric_score(rt, &rr, &err));
    CHECK(results_equal(&rr, &r));
    /* the plug-in's own decoder rejects its garbage, with its message */
    uint8_t *bytes = NULL;
    size_t n = 0;
    CHECK_OK(ac_metric_partial_encode(left, &bytes, &n, &err));
    bytes[n - 17] = 7; /* the plug-in's version byte */
    ac_metric_partial *bad = NULL;
    CHECK_ERR(ac_metric_partial_decode(m, bytes, n, &bad, &err), "starting with version 1");
    free(bytes);
    ac_metric_partial *e = ac_metric_partial_new(m, &err);
    CHECK_ERR(ac_metric_score(e, &rr, &err), "holds no samples");
    ac_metric_partial_destroy(&e);
    ac_metric_partial_destroy(&rt);
    ac_metric_partial_destroy(&left);
    ac_metric_partial_destroy(&right);
    for (int i = 0; i < 3; i++)
        ac_metric_partial_destroy(&s[i]);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
}

/* ------------------------------------------------------------------ seeds and main */

static int write_seed(const char *dir, const char *name, int which, const ac_metric_partial *p)
{
    uint8_t *b = NULL;
    size_t n = 0;
    if (ac_metric_partial_encode(p, &b, &n, &err))
        return 1;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint8_t sel = (uint8_t)which;
    int rc = !f || fwrite(&sel, 1, 1, f) != 1 || fwrite(b, 1, n, f) != n;
    if (f && fclose(f))
        rc = 1;
    free(b);
    if (rc)
        fprintf(stderr, "cannot write %s\n", path);
    return rc;
}

/* Valid partials of each fuzz metric (empty, one batch, several ranges). */
static int write_seeds(const char *dir)
{
    int rc = 0;
    for (int which = 0; which < FUZZ_METRIC_COUNT; which++) {
        ac_metric_options o;
        fuzz_metric_options(which, &o);
        ac_metric *m = metric_new(&o);
        ac_metric_partial *p = ac_metric_partial_new(m, &err);
        char name[64];
        snprintf(name, sizeof name, "seed-%s-%d-empty", ac_metric_kind_name(o.kind), which);
        rc |= write_seed(dir, name, which, p);
        /* [3, ...] outputs per kind; samples 0..2 then 7..9 */
        float *x = NULL, *y = NULL;
        ac_metric_tensor t[2], r[2];
        int nt = 1;
        ac_metric_box boxes[3] = {{0, 0.1f, 0.1f, 0.5f, 0.5f}, {2, 0.2f, 0.3f, 0.6f, 0.9f}, {1, 0, 0, 1, 1}};
        ac_metric_label l[3];
        for (int i = 0; i < 3; i++)
            l[i] = (ac_metric_label){.cls = i, .has_boxes = 1, .boxes = boxes, .nboxes = i + 1};
        if (which == 0 || which == 1) {
            int64_t d[2] = {3, 10};
            x = malloc(30 * sizeof *x), y = malloc(30 * sizeof *y);
            for (int i = 0; i < 30; i++)
                x[i] = frand(), y[i] = frand();
            t[0] = tensor(x, 2, d), r[0] = tensor(y, 2, d);
        } else if (which == 2) {
            int64_t d[3] = {3, 4, 6};
            x = malloc(72 * sizeof *x);
            for (int i = 0; i < 12; i++) {
                float *row = x + 6 * i;
                row[0] = frand() * 0.5f, row[1] = frand() * 0.5f, row[2] = row[0] + 0.5f * frand(),
                row[3] = row[1] + 0.5f * frand(), row[4] = frand(), row[5] = (float)(rnd() % 3);
            }
            t[0] = tensor(x, 3, d), r[0] = t[0];
        } else {
            int64_t ds[3] = {3, 4420, 2}, db[3] = {3, 4420, 4};
            x = malloc(3 * 4420 * 2 * sizeof *x), y = malloc(3 * 4420 * 4 * sizeof *y);
            for (int i = 0; i < 3 * 4420; i++) {
                float f = frand();
                f = f * f * f * f; /* few confident priors */
                x[2 * i] = 1 - f, x[2 * i + 1] = f;
            }
            for (int i = 0; i < 3 * 4420 * 4; i++)
                y[i] = frand() - 0.5f;
            t[0] = tensor(x, 3, ds), t[1] = tensor(y, 3, db);
            r[0] = t[0], r[1] = t[1];
            nt = 2;
        }
        const ac_metric_label *lab = which == 0 || which == 2 ? l : NULL;
        if (ac_metric_partial_add(p, 0, 3, t, nt, r, nt, lab, &err) ||
            ac_metric_partial_add(p, 7, 3, t, nt, r, nt, lab, &err)) {
            fprintf(stderr, "seed %d: %s\n", which, err.msg);
            rc = 1;
        }
        snprintf(name, sizeof name, "seed-%s-%d-six", ac_metric_kind_name(o.kind), which);
        rc |= write_seed(dir, name, which, p);
        free(x);
        free(y);
        ac_metric_partial_destroy(&p);
        ac_metric_destroy(&m);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *plugin = NULL, *seeds = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc)
            seeds = argv[++i];
        else
            plugin = argv[i];
    }
    if (seeds)
        return write_seeds(seeds);
    test_classify();
    test_similarity();
    test_ap();
    test_nms();
    test_yolo_decode();
    test_ssd_decode();
    test_detect_metric();
    test_decode_rules();
    test_grid_decode();
    test_anchors_decode();
    test_bound_by_hand();
    printf("sharding invariance (1, 2, 3, 7 shards; contiguous and random; in order, reversed via bytes, tree):\n");
    dataset ds;
    memset(&ds, 0, sizeof ds);
    make_classify(&ds);
    test_sharding(&ds, "classify");
    test_bound(&ds, "classify");
    test_garbage(&ds, "classify");
    dataset_free(&ds);
    memset(&ds, 0, sizeof ds);
    make_similarity(&ds);
    test_sharding(&ds, "similarity");
    test_bound(&ds, "similarity top-1");
    {
        /* the same outputs scored by mean cosine */
        ac_metric_options co;
        ac_metric_options_init(&co, AC_METRIC_SIMILARITY);
        ac_metric *agree = ds.m;
        ds.m = metric_new(&co);
        test_bound(&ds, "similarity cosine");
        ac_metric_destroy(&ds.m);
        ds.m = agree;
    }
    test_garbage(&ds, "similarity");
    dataset_free(&ds);
    memset(&ds, 0, sizeof ds);
    make_yolo(&ds, 0);
    test_sharding(&ds, "detect yolo vs fp32");
    test_garbage(&ds, "detect vs fp32");
    dataset_free(&ds);
    memset(&ds, 0, sizeof ds);
    make_yolo(&ds, 1);
    test_sharding(&ds, "detect yolo labels");
    test_garbage(&ds, "detect labels");
    dataset_free(&ds);
    if (plugin) {
        test_plugin(plugin);
        memset(&ds, 0, sizeof ds);
        make_plugin(&ds, plugin);
        test_sharding(&ds, "plugin within_tol");
        test_garbage(&ds, "plugin");
        dataset_free(&ds);
    } else {
        printf("plug-in tests skipped: no plug-in path given\n");
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
