/* ac_msg_codec: encode the farm's messages into ZeroMQ frames and decode +
 * validate frames into the structs of ac_msg.h (docs/protocol.md is the
 * normative layout). No other module builds or parses frames.
 *
 * Typical use (a worker):
 *
 *     zsock_t *s = ac_msg_dealer_new("tcp://host:5555", "w1.key", "broker.pub", &err);
 *     ac_msg m;
 *     ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_READY);
 *     snprintf(m.ready.name, sizeof m.ready.name, "w1");
 *     ac_msg_send(s, NULL, &m, &err);
 *     ...
 *     ac_msg in;
 *     if (ac_msg_recv(s, AC_DIR_FROM_BROKER, &in, NULL, &err) == AC_OK) {
 *         if (in.cmd == AC_MSG_TASK) ... in.task ...
 *         ac_msg_reset(&in);          // frees what decoding allocated
 *     }
 *
 * A decoded message's byte strings (ac_bytes) point into the received frames,
 * which the ac_msg owns until ac_msg_reset; copy what must outlive it. */
#ifndef AC_MSG_CODEC_H
#define AC_MSG_CODEC_H

#include <czmq.h>

#include "ac_msg.h"

#define AC_MSG_SIG_WORKER "ACPW"
#define AC_MSG_SIG_CLIENT "ACPC"
#define AC_MSG_SUBMIT_MAX 4096u     /* tasks per SUBMIT message */
#define AC_MSG_CANCEL_MAX 65536u    /* keys per CANCEL message */
#define AC_MSG_NAME_MAX 64          /* worker name, NUL included */
#define AC_MSG_TAG_MAX 32           /* isa, backend, NUL included */
#define AC_MSG_REASON_MAX 256       /* DISCONNECT reason, NUL included */
#define AC_MSG_ERROR_MAX 512        /* RESULT error / ERROR message, NUL included */

/* Sub-protocol: the signature of frame 0. */
typedef enum { AC_PROTO_WORKER = 'W', AC_PROTO_CLIENT = 'C' } ac_msg_proto;

/* Which way a message travels; the allowed commands depend on it. */
typedef enum { AC_DIR_TO_BROKER = 0, AC_DIR_FROM_BROKER = 1 } ac_msg_dir;

typedef enum {
    AC_MSG_READY = 0x01,
    AC_MSG_HEARTBEAT = 0x02,
    AC_MSG_DISCONNECT = 0x03,
    AC_MSG_PROGRESS = 0x04,
    AC_MSG_RESULT = 0x05,
    AC_MSG_BLOB_REQ = 0x06,
    AC_MSG_TASK = 0x07,
    AC_MSG_CANCEL = 0x08,
    AC_MSG_BLOB = 0x09,
    AC_MSG_SUBMIT = 0x0a,
    AC_MSG_BLOB_PUT = 0x0b,
    AC_MSG_JOB_END = 0x0c,
    AC_MSG_STATUS = 0x0d,
    AC_MSG_STATUS_REPLY = 0x0e,
    AC_MSG_ERROR = 0x0f
} ac_msg_cmd;

typedef enum { AC_BLOB_OK = 0, AC_BLOB_UNKNOWN = 1, AC_BLOB_RANGE = 2 } ac_blob_status;

typedef struct {
    char name[AC_MSG_NAME_MAX];
    uint32_t threads;
    char isa[AC_MSG_TAG_MAX];
    char backend[AC_MSG_TAG_MAX];
    ac_bytes cached; /* n * AC_HASH_BYTES: the hashes the worker holds */
} ac_msg_ready;

typedef struct {
    uint64_t epoch; /* broker: random non-zero per start; peers: 0 */
    uint32_t interval_ms, liveness;
} ac_msg_heartbeat;

typedef struct {
    ac_task_key key;
    uint64_t done, total;
} ac_msg_progress;

typedef struct {
    uint8_t hash[AC_HASH_BYTES];
    uint64_t offset;
    uint32_t length;
} ac_msg_blob_req;

/* BLOB (broker -> worker) and BLOB_PUT (client -> broker); job is used by BLOB_PUT
 * only, status by BLOB only. */
typedef struct {
    char job[AC_JOB_ID_MAX];
    uint8_t hash[AC_HASH_BYTES];
    uint64_t offset, total;
    ac_blob_status status;
    ac_bytes data;
} ac_msg_blob;

/* CANCEL: nkeys == 0 cancels every task of the job. */
typedef struct {
    char job[AC_JOB_ID_MAX];
    uint32_t nkeys;
    ac_task_key *keys;
} ac_msg_cancel;

typedef struct {
    char job[AC_JOB_ID_MAX];
    uint32_t ntasks;
    ac_task *tasks;
} ac_msg_submit;

typedef struct {
    char job[AC_JOB_ID_MAX]; /* may be empty */
    char message[AC_MSG_ERROR_MAX];
} ac_msg_error;

/* One message. Set proto and cmd (ac_msg_init) and fill the member named by
 * the command; the other members are unused. */
typedef struct {
    ac_msg_proto proto;
    ac_msg_cmd cmd;
    union {
        ac_msg_ready ready;
        ac_msg_heartbeat heartbeat;
        char reason[AC_MSG_REASON_MAX]; /* DISCONNECT */
        ac_msg_progress progress;
        ac_result result;
        ac_msg_blob_req blob_req;
        ac_task task;
        ac_msg_cancel cancel;
        ac_msg_blob blob; /* BLOB, BLOB_PUT */
        ac_msg_submit submit;
        char job[AC_JOB_ID_MAX]; /* JOB_END */
        ac_bytes status_map;     /* STATUS_REPLY: one msgpack map */
        ac_msg_error error;
    };
    /* Owned by a decoded message (ac_msg_reset frees them). */
    zmsg_t *frames_;
    void *alloc_;
} ac_msg;

/* Zeroes *m and sets its sub-protocol and command. */
void ac_msg_init(ac_msg *m, ac_msg_proto proto, ac_msg_cmd cmd);
/* Frees what decoding allocated and zeroes *m (NULL-safe, idempotent). */
void ac_msg_reset(ac_msg *m);

const char *ac_msg_cmd_name(ac_msg_cmd cmd);
/* Whether cmd is defined for the sub-protocol in that direction (§4). */
bool ac_msg_cmd_allowed(ac_msg_proto proto, ac_msg_dir dir, ac_msg_cmd cmd);

/* Encodes m as frames (signature, command, body[, data]); validates it as the
 * decoder would, so a peer never sends what the other side must reject. */
int ac_msg_encode(const ac_msg *m, ac_msg_dir dir, zmsg_t **out, ac_err *err);

/* Decodes and validates frames (without any routing id). On success *out
 * holds pointers into frames[]; the caller keeps frames alive until it is done
 * (ac_msg_reset frees only what decoding allocated). On failure *out is reset
 * and err names the frame/field and the rule. */
int ac_msg_decode_frames(const ac_bytes *frames, size_t nframes, ac_msg_dir dir, ac_msg *out,
                         ac_err *err);

/* As ac_msg_decode_frames over a zmsg_t, which *zmsg passes to *out (also on
 * failure it is destroyed; *zmsg is set to NULL). */
int ac_msg_decode(zmsg_t **zmsg, ac_msg_dir dir, ac_msg *out, ac_err *err);

/* Sends m on a socket. routing_id: the peer's routing id on a ROUTER socket
 * (the broker), NULL on a DEALER. Direction: FROM_BROKER when routing_id is
 * given, TO_BROKER otherwise. */
int ac_msg_send(zsock_t *sock, zframe_t *routing_id, const ac_msg *m, ac_err *err);

/* Receives one message (blocking; poll first for a timeout). On a ROUTER pass
 * routing_id (receives a new frame, also when decoding fails, so the caller can
 * answer DISCONNECT) and user_id (the peer's CURVE public key in Z85, "" without
 * CURVE; at least 41 bytes). Returns AC_E_INVALID for a malformed message,
 * AC_E_IO when the receive itself failed (interrupted, socket closed). */
int ac_msg_recv(zsock_t *sock, ac_msg_dir dir, ac_msg *out, zframe_t **routing_id,
                char *user_id, ac_err *err);

/* ac_msg_recv on a ROUTER in two steps, for a caller that decides (peer
 * lookup, rate limits) before it pays for decoding: receives the frames, pops
 * the routing id and reads the User-Id; then ac_msg_decode(zmsg, ...).
 * ac_msg_peek_proto tells which sub-protocol a (possibly malformed) message
 * claims, so the answer to garbage uses the peer's signature. */
int ac_msg_recv_routed(zsock_t *sock, zmsg_t **zmsg, zframe_t **routing_id, char *user_id, ac_err *err);
ac_msg_proto ac_msg_peek_proto(zmsg_t *zmsg);

/* A DEALER socket connected to a broker. With cert_path and server_pub_path
 * (czmq certificate files: this peer's secret certificate, the broker's public
 * one) the socket is a CURVE client; with both NULL it is plain. Sends never
 * block: messages queue while the connection is re-established, and a send
 * fails (AC_E_IO) only when no connection can take it, e.g. after the broker
 * refused this peer's key. Linger is 0. */
zsock_t *ac_msg_dealer_new(const char *endpoint, const char *cert_path,
                           const char *server_pub_path, ac_err *err);

/* Task keys: equality ignores the attempt; the string form "job/round/candidate/shard"
 * (for logs and hash tables) needs AC_TASK_KEY_STR_MAX bytes. */
#define AC_TASK_KEY_STR_MAX (AC_JOB_ID_MAX + 3 * 11 + 1)
bool ac_task_key_eq(const ac_task_key *a, const ac_task_key *b);
void ac_task_key_str(const ac_task_key *k, char out[AC_TASK_KEY_STR_MAX]);
/* Whether s is a valid job id (1..63 bytes of 0x21..0x7e). */
bool ac_msg_job_id_valid(const char *s);

#endif
