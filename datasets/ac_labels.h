/* ac_labels: per-sample labels (a class index, or detection boxes) and the
 * text formats they come in:
 *   data.label (next to data.mdb), classification: one line per record, the
 *     batch's labels separated by ',' ("3,13,4,6");
 *   data.label, detection: one line per sample, boxes separated by ';', each
 *     box "class,x1,y1,x2,y2" in pixels of the stored sample, i.e. of the
 *     network input (empty line: no box);
 *   YOLO txt: one file per image, one "class cx cy w h" line per box,
 *     normalised to the original image; ac_dataset maps them through the
 *     preprocessing (resizes, crops) into pixels of the network input.
 * So a dataset's box labels are always in pixels of its samples. */
#ifndef AC_LABELS_H
#define AC_LABELS_H

#include <stdint.h>
#include <stdio.h>

#include "ac_err.h"

typedef enum { AC_LABEL_NONE = 0, AC_LABEL_CLASS = 1, AC_LABEL_BOXES = 2 } ac_label_kind;

typedef struct {
    int32_t cls;
    float x1, y1, x2, y2;
} ac_box;

typedef struct ac_labels ac_labels;

ac_labels *ac_labels_new(ac_label_kind kind);
void ac_labels_destroy(ac_labels **p);
ac_label_kind ac_labels_kind(const ac_labels *l);
const char *ac_label_kind_name(ac_label_kind k); /* "none", "classification", "detection" */
int64_t ac_labels_count(const ac_labels *l);

int ac_labels_add_class(ac_labels *l, int32_t cls, ac_err *err);
int ac_labels_add_boxes(ac_labels *l, const ac_box *boxes, int n, ac_err *err);
int32_t ac_labels_class(const ac_labels *l, int64_t i);
/* Number of boxes of sample i; *boxes points into l. */
int ac_labels_boxes(const ac_labels *l, int64_t i, const ac_box **boxes);

/* Parses data.label for records of the given batch sizes and decides its kind:
 * classification when there is one line per record and each holds exactly
 * that record's batch-size integers; detection when there is one line per
 * sample and each parses as boxes. Errors name the file, line, column, rule. */
int ac_labels_parse_datalabel(const char *text, size_t len, const char *name, const int64_t *batch,
                              int64_t nrecords, ac_labels **out, ac_err *err);

/* Writes the data.label line(s) for samples [first, first + n) forming one
 * record: one line for classification, n lines for detection. */
int ac_labels_write_record(const ac_labels *l, int64_t first, int64_t n, FILE *f);

/* One YOLO txt file -> boxes in pixels of an img_w x img_h image (malloc'ed). */
int ac_labels_parse_yolo(const char *text, size_t len, const char *name, int img_w, int img_h, ac_box **boxes,
                         int *nboxes, ac_err *err);

#endif
