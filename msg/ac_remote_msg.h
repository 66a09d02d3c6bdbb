/* ac_remote_msg: the codec of remote test mode (docs/remote.md §2), the only
 * code that builds or parses its frames. A frame is the msgpack array
 *   ["ACR", version, command, seq, body]
 * Requests (client -> server) are decoded strictly (every field checked,
 * errors name it); replies (server -> client) are encoded. Requests can also
 * be encoded, for tests and the fuzz seeds. Decoded views point into the
 * frame, which must outlive them. */
#ifndef AC_REMOTE_MSG_H
#define AC_REMOTE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

#define AC_RM_SIGNATURE "ACR"
#define AC_RM_VERSION 1
#define AC_RM_MAX_DIMS 8
#define AC_RM_MAX_STR 4096                       /* names, sessions, dtypes, messages */
#define AC_RM_MAX_DATA ((size_t)1 << 30)         /* bytes of one RUN batch */
#define AC_RM_MAX_SAMPLES 4096                   /* samples of one RUN batch */

typedef enum {
    AC_RM_HELLO = 1,
    AC_RM_NEXT,
    AC_RM_RUN,
    AC_RM_SCORE,
    AC_RM_RESULT,
    /* replies */
    AC_RM_WELCOME,
    AC_RM_CANDIDATE,
    AC_RM_WAIT,
    AC_RM_FINISHED,
    AC_RM_OUTPUTS,
    AC_RM_ACK,
    AC_RM_ERROR
} ac_rm_command;

const char *ac_rm_command_name(ac_rm_command c);

/* A client request. Fields a command does not carry are zero. */
typedef struct {
    ac_rm_command cmd;
    uint64_t seq;
    const char *session; /* NEXT, RUN, SCORE, RESULT */
    size_t session_len;
    int64_t id;          /* RUN, SCORE: the candidate */
    const char *dtype;   /* RUN */
    size_t dtype_len;
    int32_t ndim;        /* RUN: the batch's shape */
    int64_t shape[AC_RM_MAX_DIMS];
    const uint8_t *data; /* RUN: the batch's bytes */
    size_t data_len;
    double score;        /* SCORE */
} ac_rm_request;

/* Decode outcome beyond the status: a frame of another protocol version is
 * reported apart (the server answers ERROR "version"), and seq is filled as
 * soon as it was read, so even a rejected request gets its reply matched. */
typedef struct {
    bool version_mismatch;
    bool have_seq;
    uint64_t version;
} ac_rm_decode_info;

int ac_rm_decode_request(const uint8_t *buf, size_t len, ac_rm_request *r, ac_rm_decode_info *info, ac_err *err);
/* *buf malloc'ed. version: normally AC_RM_VERSION (tests send others). */
int ac_rm_encode_request(const ac_rm_request *r, uint64_t version, uint8_t **buf, size_t *len, ac_err *err);

/* ---- replies ---- */

typedef struct {
    const char *name;
    const char *dtype;
    int32_t ndim;
    const int64_t *shape;
} ac_rm_tensor_desc;

typedef struct {
    const char *session, *model;
    int32_t ninputs;
    const ac_rm_tensor_desc *inputs;
    int32_t noutputs;
    const char *const *outputs;
    int32_t batch;
    int32_t test_iterations;
} ac_rm_welcome;

typedef struct {
    const char *name;
    int32_t ndim;
    const int64_t *shape;
    const float *data; /* prod(shape) floats */
} ac_rm_output;

int ac_rm_encode_welcome(uint64_t seq, const ac_rm_welcome *w, uint8_t **buf, size_t *len, ac_err *err);
int ac_rm_encode_candidate(uint64_t seq, int64_t id, const char *name, const char *kind, const char *strategy_json,
                           uint8_t **buf, size_t *len, ac_err *err);
int ac_rm_encode_wait(uint64_t seq, const char *reason, uint8_t **buf, size_t *len, ac_err *err);
int ac_rm_encode_finished(uint64_t seq, const char *report_json, uint8_t **buf, size_t *len, ac_err *err);
int ac_rm_encode_outputs(uint64_t seq, int64_t id, int32_t n, const ac_rm_output *outs, uint8_t **buf, size_t *len,
                         ac_err *err);
int ac_rm_encode_ack(uint64_t seq, int64_t id, uint8_t **buf, size_t *len, ac_err *err);
int ac_rm_encode_error(uint64_t seq, const char *code, const char *message, uint8_t **buf, size_t *len, ac_err *err);

/* A reply's command and seq, and for ERROR its code (views into buf): for the
 * tests that check what the server answered. */
int ac_rm_decode_reply(const uint8_t *buf, size_t len, ac_rm_command *cmd, uint64_t *seq, const char **error_code,
                       size_t *error_code_len, ac_err *err);

#endif
