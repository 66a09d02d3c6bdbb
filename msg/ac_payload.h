/* ac_payload: the kind-specific task payloads (ac_task.payload), produced by
 * the coordinator and read by workers. Plain types only (msg/ depends on
 * nothing but base/): a candidate strategy is a threshold table plus options,
 * a calibration task carries the collector template bytes of quant/.
 * Encoded with msgpack-c, decoded strictly with base/ac_mpack (every field
 * checked, errors name it). */
#ifndef AC_PAYLOAD_H
#define AC_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"
#include "ac_msg.h"

/* One calibration table entry. */
typedef struct {
    const char *name;
    double th, min, max;
} ac_payload_range;

/* An evaluation task: run the candidate (or the fp32 model) over the shard and
 * return the metric partial. */
typedef struct {
    bool fp32_reference;          /* run the fp32 model instead of an int8 plan */
    /* the candidate strategy (ignored for fp32_reference) */
    int32_t nranges;
    const ac_payload_range *ranges; /* the calibration table (before sharing) */
    bool per_channel, accuracy_opt, first_conv_fp32;
    int32_t nfp32;
    const char *const *fp32_layers;
    /* the score: metrics/ac_metric.h options */
    int32_t metric_kind;          /* ac_metric_kind */
    int32_t metric_output, metric_topk, metric_classifier;
    bool need_reference;          /* similarity / unlabelled detect: the worker also runs fp32 */
    char detect_preset[32];       /* detect: the decoder preset (metrics/ac_detect.h), "" = default */
} ac_eval_payload;

/* A calibration task: one pass of the collector over the shard. */
typedef struct {
    ac_bytes collector_template;  /* quant/ac_calibrate.h: ac_calib_collector_encode_template */
} ac_calib_payload;

/* A run task (remote test mode): the candidate's eval payload (its metric
 * fields unused) and samples carried inline, float32, the model input's
 * sample shape; the worker returns every graph output for those samples. */
#define AC_RUN_MAX_DIMS 8
typedef struct {
    ac_bytes eval;                 /* an encoded ac_eval_payload */
    int32_t ndim;
    int64_t shape[AC_RUN_MAX_DIMS]; /* [n, sample dims...] */
    ac_bytes data;                 /* n * prod(sample dims) float32, little-endian */
} ac_run_payload;

/* A run task's result: the graph outputs in graph order, [n, ...] float32 each. */
typedef struct {
    int32_t ndim;
    int64_t shape[AC_RUN_MAX_DIMS];
    ac_bytes data;
} ac_run_output;

/* *buf malloc'ed (free it). */
int ac_run_payload_encode(const ac_run_payload *p, uint8_t **buf, size_t *len, ac_err *err);
int ac_run_outputs_encode(const ac_run_output *outs, int32_t n, uint8_t **buf, size_t *len, ac_err *err);
/* Views into buf; outputs: up to cap entries, *n set (more than cap is an error). */
int ac_run_payload_decode(const uint8_t *buf, size_t len, ac_run_payload *out, ac_err *err);
int ac_run_outputs_decode(const uint8_t *buf, size_t len, ac_run_output *outs, int32_t cap, int32_t *n,
                          ac_err *err);

/* *buf malloc'ed (free it). */
int ac_eval_payload_encode(const ac_eval_payload *p, uint8_t **buf, size_t *len, ac_err *err);
int ac_calib_payload_encode(const ac_calib_payload *p, uint8_t **buf, size_t *len, ac_err *err);

/* Decoded views point into buf (which must outlive them); arrays are malloc'ed
 * into *storage (free with ac_payload_storage_free). */
typedef struct {
    void *ranges;
    void *names;
} ac_payload_storage;

int ac_eval_payload_decode(const uint8_t *buf, size_t len, ac_eval_payload *out, ac_payload_storage *storage,
                           ac_err *err);
int ac_calib_payload_decode(const uint8_t *buf, size_t len, ac_calib_payload *out, ac_err *err);
void ac_payload_storage_free(ac_payload_storage *s);

/* A stable 64-bit identity of a candidate (FNV-1a over its canonical encoding):
 * workers cache plans by it. */
uint64_t ac_eval_payload_id(const uint8_t *buf, size_t len);

#endif
