/* ac_detect: detection post-processing (box decoders + NMS), per-sample
 * matching against ground truth, and average precision. Pure functions over
 * plain arrays; ac_metric builds the detection score from them.
 *
 * Every decoder yields boxes as corners in [0,1] of the network input (x over
 * its width, y over its height), so they compare directly with labels that
 * are normalised by the image size (a plain resize keeps that frame; a
 * letterbox does not). */
#ifndef AC_DETECT_H
#define AC_DETECT_H

#include <stdint.h>

#include "ac_err.h"
#include "ac_metric_plugin.h"

#define AC_DETECT_MAX_LEVELS 8
#define AC_DETECT_MAX_SIZES 8
#define AC_DETECT_MAX_HEADS 8
#define AC_DETECT_MAX_ANCHORS 32
#define AC_DETECT_NIOU 10 /* IoU thresholds .50:.05:.95 */

typedef enum {
    /* SSD-style outputs already decoded: scores [N,P,C] (probabilities, one
     * column per class, `background` column skipped) and boxes [N,P,4]
     * normalised corners x1,y1,x2,y2 (UltraFace's full ONNX model). */
    AC_DECODE_SSD = 1,
    /* The same scores with boxes [N,P,4] as raw regressions against prior
     * boxes (cx,cy,w,h offsets scaled by the variances), as the simplified
     * UltraFace model outputs them; priors from the level config below. */
    AC_DECODE_SSD_PRIORS = 2,
    /* Darknet YOLO heads, each [N, A*(5+C), H, W] raw conv outputs. */
    AC_DECODE_YOLO = 3,
    /* Final detections [N, D, 6] rows x1,y1,x2,y2,score,class (a model with
     * its own post-processing); rows with score < threshold are dropped. */
    AC_DECODE_DETS = 4,
    /* Anchor-free grid heads (YuNet): level l, of stride strides[l], is a
     * grid of floor(in/stride) cells, row-major, with outputs cls [N,cells,1]
     * and obj [N,cells,1] (probabilities) and bbox [N,cells,4]: centre
     * offsets in cells, then log width and height in strides. Score
     * sqrt(clamp01(cls) * clamp01(obj)); one class. */
    AC_DECODE_GRID = 5,
    /* MediaPipe SSD anchors (BlazeFace): level l, of stride strides[l], is a
     * grid of ceil(in/stride) cells with level_anchors[l] unit anchors at
     * each cell centre (order row, column, anchor); its scores [N,cells*A,1]
     * are logits and its boxes [N,cells*A,R] (R >= 4) centre x, y and width,
     * height in input pixels, the centre relative to the anchor's. */
    AC_DECODE_ANCHORS = 6
} ac_decode_kind;

typedef struct {
    ac_decode_kind kind;
    int32_t nclasses; /* object classes, not counting an SSD background column */
    int32_t in_w, in_h; /* network input size in pixels (YOLO, priors, DETS in pixels) */

    /* SSD / SSD_PRIORS */
    /* indices into the outputs array; a model that lists the boxes first (last
     * dimension 4, the scores' being the column count, not 4) is read the other
     * way round (the Caffe UltraFace) */
    int32_t scores_output, boxes_output;
    int32_t background;                  /* background column in scores, -1: none */
    /* SSD_PRIORS: level l has a feature map of ceil(in/strides[l]) cells;
     * prior centre ((i+0.5)/fm_w, (j+0.5)/fm_h), size min_sizes[l][s]/in;
     * order: level, row, column, size. */
    int32_t nlevels;
    int32_t strides[AC_DETECT_MAX_LEVELS];
    int32_t nsizes[AC_DETECT_MAX_LEVELS];
    float min_sizes[AC_DETECT_MAX_LEVELS][AC_DETECT_MAX_SIZES];
    float center_variance, size_variance;
    int32_t clip_priors; /* clamp prior boxes (cx,cy,w,h) to [0,1] */

    /* YOLO: head h reads outputs[head_outputs[h]] with the anchors
     * anchors[head_mask[h][0..head_nmask[h]-1]] (w,h in input pixels). */
    int32_t nheads;
    int32_t head_outputs[AC_DETECT_MAX_HEADS];
    int32_t head_nmask[AC_DETECT_MAX_HEADS];
    int32_t head_mask[AC_DETECT_MAX_HEADS][AC_DETECT_MAX_ANCHORS];
    int32_t nanchors;
    float anchors[AC_DETECT_MAX_ANCHORS][2];
    float scale_xy; /* darknet scale_x_y (1.0 for plain YOLOv3) */

    /* GRID and ANCHORS: level l reads outputs level_cls[l] (scores), level_obj[l]
     * (GRID's objectness) and level_box[l] (boxes); strides[] and nlevels
     * as above; level_anchors[l] anchors per cell (ANCHORS). */
    int32_t level_cls[AC_DETECT_MAX_LEVELS];
    int32_t level_obj[AC_DETECT_MAX_LEVELS];
    int32_t level_box[AC_DETECT_MAX_LEVELS];
    int32_t level_anchors[AC_DETECT_MAX_LEVELS];

    /* DETS */
    int32_t dets_output;
    int32_t dets_pixels; /* 1: boxes in input pixels (divided by in_w/in_h) */

    /* Post-processing */
    float score_threshold;     /* a candidate is kept when its score >= this */
    float ref_score_threshold; /* fp32 detections used as ground truth (no labels) */
    float nms_iou;             /* suppress a box whose IoU with a kept one is > this; >= 1: no NMS */
    int32_t max_detections;    /* per sample, after NMS (COCO evaluates 100) */
    int32_t class_agnostic_nms;
} ac_detect_config;

/* One detection. index: the candidate's position in the decoder's order
 * (prior / grid cell / row), the deterministic tie-breaker. */
typedef struct {
    float x1, y1, x2, y2;
    float score;
    int32_t cls;
    int32_t index;
} ac_det;

/* Defaults for a decoder kind (thresholds 0.05 / 0.5, NMS 0.5, 100 boxes). */
void ac_detect_config_init(ac_detect_config *c, ac_decode_kind kind);
/* UltraFace RFB-320 (zoo faces/): raw_boxes 0 for the full model, 1 for _simplified. */
void ac_detect_config_ultraface_320(ac_detect_config *c, int raw_boxes);
/* Yolo-Fastest 1.1 COCO 320x320 (zoo darknet/): heads[0] stride 32 (mask 3,4,5), heads[1] stride 16. */
void ac_detect_config_yolo_fastest(ac_detect_config *c, int out_stride32, int out_stride16);

/* YuNet 320x320 (zoo faces/yunet_n_320_320.onnx): cls, obj, bbox outputs of strides 8, 16, 32. */
void ac_detect_config_yunet_320(ac_detect_config *c);
/* MediaPipe BlazeFace front 128x128 (zoo faces/face_detection_front_128x128_barracuda.onnx):
 * scores of strides 8 and 16 at outputs 0, 1, boxes at 2, 3. */
void ac_detect_config_blazeface_front_128(ac_detect_config *c);

/* A configuration by preset name: "ssd" (corner boxes + class scores, the
 * default), "ultraface" (UltraFace RFB-320, decoded boxes), "ultraface_raw"
 * (its _simplified model: prior offsets), "yolo_fastest" (outputs 0 and 1 are
 * the stride-32 and stride-16 heads), "yunet", "blazeface". "" means "ssd".
 * An unknown name is an error listing the known ones. */
int ac_detect_config_preset(ac_detect_config *c, const char *name, ac_err *err);

/* Checks ranges and array bounds; the message names the field and the rule. */
int ac_detect_config_check(const ac_detect_config *c, ac_err *err);

/* Checks that outputs hold what the decoder reads (indices, shapes) for a
 * batch of nbatch samples. */
int ac_detect_check_outputs(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int64_t nbatch,
                            ac_err *err);

/* Decodes sample b of a batch of nbatch (checking the outputs first), keeps scores >= threshold, applies per-class
 * NMS and the max_detections cap. *dets (malloc'ed, may be NULL when *ndets
 * is 0) is sorted by (score desc, class asc, index asc). */
int ac_detect_run(const ac_detect_config *c, const ac_metric_tensor *outputs, int noutputs, int64_t nbatch, int64_t b,
                  float score_threshold, ac_det **dets, int32_t *ndets, ac_err *err);

/* Greedy NMS in place on d[0..n): sorts by (score desc, index asc) within each
 * class (or over all when class_agnostic), drops a box whose IoU with a kept
 * box of its class is > iou, then sorts the kept ones by (score desc, class
 * asc, index asc) and keeps at most max_keep. Returns the count kept. */
int32_t ac_detect_nms(ac_det *d, int32_t n, float iou, int32_t max_keep, int class_agnostic);

/* IoU of two corner boxes in double; 0 when the union is empty. */
double ac_box_iou(double ax1, double ay1, double ax2, double ay2, double bx1, double by1, double bx2, double by2);

/* The IoU thresholds .50:.05:.95 exactly as numpy.linspace(.5, .95, 10) gives them. */
double ac_detect_iou_threshold(int t);

/* COCO-style greedy matching within one sample: detections d[0..n) in the
 * given order (score desc), each matched to the unmatched ground-truth box of
 * its class with the highest IoU >= threshold (ties: the later box, as
 * pycocotools). match[i] gets bit t set when detection i is a true positive
 * at ac_detect_iou_threshold(t). gt boxes are normalised corners. */
void ac_detect_match(const ac_det *d, int32_t n, const ac_metric_box *gt, int32_t ngt, uint16_t *match);

/* Average precision from a ranked list: tp[i] is 1 for a true positive; npos
 * ground-truth objects. All-point interpolation (VOC2010+), and COCO's
 * 101-point interpolation (pycocotools' accumulate). npos must be > 0. */
double ac_ap_all_point(const uint8_t *tp, int64_t n, int64_t npos);
double ac_ap_101_point(const uint8_t *tp, int64_t n, int64_t npos);

#endif
