/* ac_msg: the farm's messages as C structs, and their codec. Only msg/ touches
 * raw frames (docs/protocol.md is the normative description). Three peers:
 *   coordinator (client) --ROUTER-- broker --ROUTER-- workers (DEALER)
 * Tasks are small: a task names its job, round, candidate and shard, the model
 * and dataset by content hash, a sample range, and a kind-specific payload
 * (a candidate strategy or a calibration pass state, msgpack bytes produced by
 * the coordinator and read by the worker). Results carry an encoded partial
 * (calibration statistics or a metric partial). Model and dataset bytes
 * travel as blobs, once per worker, in chunks, by content hash. */
#ifndef AC_MSG_H
#define AC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_PROTO_VERSION 1
#define AC_HASH_BYTES 32
#define AC_JOB_ID_MAX 64
#define AC_BLOB_CHUNK (1u << 20)        /* bytes per BLOB chunk */
#define AC_MSG_MAX_BYTES (64u << 20)    /* largest frame a peer accepts */

/* Identifies a task; results are keyed by it (idempotent, duplicates harmless). */
typedef struct {
    char job[AC_JOB_ID_MAX];
    uint32_t round, candidate, shard;
    uint32_t attempt;   /* set by the broker: 1 for the first dispatch */
} ac_task_key;

typedef enum {
    AC_TASK_CALIB = 1,  /* calibration pass over a shard -> encoded collector partial */
    AC_TASK_EVAL = 2,   /* run a candidate (or fp32) over a shard -> encoded metric partial */
    AC_TASK_NOOP = 3,   /* benchmarks and tests: returns an empty result at once */
    AC_TASK_RUN = 4     /* remote test mode: run a candidate on the samples in the payload -> their outputs */
} ac_task_kind;

/* A byte string inside a message (points into the decoded frame or the caller's buffer). */
typedef struct {
    const uint8_t *data;
    size_t len;
} ac_bytes;

typedef struct {
    ac_task_key key;
    ac_task_kind kind;
    uint8_t model_hash[AC_HASH_BYTES];
    uint8_t data_hash[AC_HASH_BYTES];
    char data_path[1024];    /* optional: a dataset path the worker may read directly (shared FS) */
    char input_shapes[256];  /* --input_data_shape of the job */
    char preprocess[512];    /* preprocessing string for image datasets */
    int64_t begin, end;      /* sample range [begin, end) */
    int32_t batch;
    ac_bytes payload;        /* kind-specific, opaque to the broker */
} ac_task;

typedef enum { AC_RESULT_OK = 0, AC_RESULT_ERROR = 1, AC_RESULT_CANCELLED = 2 } ac_result_status;

typedef struct {
    ac_task_key key;
    ac_result_status status;
    char error[512];
    double seconds;          /* worker wall time for the task */
    ac_bytes partial;        /* encoded partial when status is OK */
} ac_result;

#endif
