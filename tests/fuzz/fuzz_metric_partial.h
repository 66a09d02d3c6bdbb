/* The metrics the fuzz target decodes partials of; the first input byte picks
 * one. Shared with ac_metrics_selftest --write-seeds, which writes valid
 * partials of each as seeds (tests/fuzz/corpus/metric_partial/). */
#ifndef FUZZ_METRIC_PARTIAL_H
#define FUZZ_METRIC_PARTIAL_H

#include "ac_metric.h"

#define FUZZ_METRIC_COUNT 4

static inline void fuzz_metric_options(int which, ac_metric_options *o)
{
    switch (which) {
    case 0: ac_metric_options_init(o, AC_METRIC_CLASSIFY); break;
    case 1:
        ac_metric_options_init(o, AC_METRIC_SIMILARITY);
        o->classifier = 1;
        break;
    case 2:
        ac_metric_options_init(o, AC_METRIC_DETECT);
        ac_detect_config_init(&o->detect, AC_DECODE_DETS);
        o->detect.nclasses = 3;
        o->detect.score_threshold = 0.f;
        o->detect.nms_iou = 1.f;
        break;
    default:
        ac_metric_options_init(o, AC_METRIC_DETECT);
        ac_detect_config_ultraface_320(&o->detect, 1);
        break;
    }
}

#endif
