/* ac_msg_codec: see ac_msg_codec.h and docs/protocol.md (section numbers below
 * refer to it). Encoding uses msgpack-c's packer; decoding uses ac_mpack, which
 * checks every declared length against the bytes present before using it. */
#include "ac_msg_codec.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_mpack.h"

/* ---- commands (§4) ---------------------------------------------------- */

static const char *const cmd_names[] = {
    NULL,       "READY",    "HEARTBEAT", "DISCONNECT", "PROGRESS", "RESULT",
    "BLOB_REQ", "TASK",     "CANCEL",    "BLOB",       "SUBMIT",   "BLOB_PUT",
    "JOB_END",  "STATUS",   "STATUS_REPLY", "ERROR"};

const char *ac_msg_cmd_name(ac_msg_cmd cmd)
{
    return cmd >= AC_MSG_READY && cmd <= AC_MSG_ERROR ? cmd_names[cmd] : "?";
}

bool ac_msg_cmd_allowed(ac_msg_proto proto, ac_msg_dir dir, ac_msg_cmd cmd)
{
    if (cmd == AC_MSG_HEARTBEAT || cmd == AC_MSG_DISCONNECT)
        return proto == AC_PROTO_WORKER || proto == AC_PROTO_CLIENT;
    if (proto == AC_PROTO_WORKER && dir == AC_DIR_TO_BROKER)
        return cmd == AC_MSG_READY || cmd == AC_MSG_PROGRESS || cmd == AC_MSG_RESULT ||
               cmd == AC_MSG_BLOB_REQ;
    if (proto == AC_PROTO_WORKER && dir == AC_DIR_FROM_BROKER)
        return cmd == AC_MSG_TASK || cmd == AC_MSG_CANCEL || cmd == AC_MSG_BLOB;
    if (proto == AC_PROTO_CLIENT && dir == AC_DIR_TO_BROKER)
        return cmd == AC_MSG_SUBMIT || cmd == AC_MSG_CANCEL || cmd == AC_MSG_BLOB_PUT ||
               cmd == AC_MSG_JOB_END || cmd == AC_MSG_STATUS;
    if (proto == AC_PROTO_CLIENT && dir == AC_DIR_FROM_BROKER)
        return cmd == AC_MSG_RESULT || cmd == AC_MSG_STATUS_REPLY || cmd == AC_MSG_ERROR;
    return false;
}

static bool has_data_frame(ac_msg_cmd cmd)
{
    return cmd == AC_MSG_BLOB || cmd == AC_MSG_BLOB_PUT;
}

void ac_msg_init(ac_msg *m, ac_msg_proto proto, ac_msg_cmd cmd)
{
    memset(m, 0, sizeof *m);
    m->proto = proto;
    m->cmd = cmd;
}

void ac_msg_reset(ac_msg *m)
{
    if (!m)
        return;
    zmsg_destroy(&m->frames_);
    free(m->alloc_);
    memset(m, 0, sizeof *m);
}

/* ---- keys and ids ------------------------------------------------------ */

bool ac_task_key_eq(const ac_task_key *a, const ac_task_key *b)
{
    return a->round == b->round && a->candidate == b->candidate && a->shard == b->shard &&
           !strcmp(a->job, b->job);
}

void ac_task_key_str(const ac_task_key *k, char out[AC_TASK_KEY_STR_MAX])
{
    snprintf(out, AC_TASK_KEY_STR_MAX, "%.63s/%u/%u/%u", k->job, (unsigned)k->round,
             (unsigned)k->candidate, (unsigned)k->shard);
}

static bool job_bytes_valid(const char *s, size_t len)
{
    if (len < 1 || len >= AC_JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool ac_msg_job_id_valid(const char *s)
{
    return s && job_bytes_valid(s, strnlen(s, AC_JOB_ID_MAX));
}

/* ---- validation shared by encoder and decoder --------------------------- */

static bool str_fits(const char *s, size_t cap)
{
    return strnlen(s, cap) < cap;
}

static int check_key(const ac_task_key *k, const char *job, const char *what, ac_err *err)
{
    if (!str_fits(k->job, AC_JOB_ID_MAX) || !ac_msg_job_id_valid(k->job))
        return ac_err_set(err, AC_E_INVALID,
                          "%s: job id must be 1..63 printable ASCII bytes without space", what);
    if (job && strcmp(job, k->job))
        return ac_err_set(err, AC_E_INVALID, "%s: key's job '%s' differs from the message's job '%s'",
                          what, k->job, job);
    return AC_OK;
}

static int check_task(const ac_task *t, const char *job, const char *what, ac_err *err)
{
    int rc = check_key(&t->key, job, what, err);
    if (rc)
        return rc;
    if (t->kind < AC_TASK_CALIB || t->kind > AC_TASK_RUN)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'kind' must be 1..4, got %d", what,
                          (int)t->kind);
    if (!str_fits(t->data_path, sizeof t->data_path) ||
        !str_fits(t->input_shapes, sizeof t->input_shapes) ||
        !str_fits(t->preprocess, sizeof t->preprocess))
        return ac_err_set(err, AC_E_INVALID, "%s: a string field is not NUL-terminated", what);
    if (t->begin < 0 || t->end < t->begin)
        return ac_err_set(err, AC_E_INVALID,
                          "%s: fields 'begin'/'end' must satisfy 0 <= begin <= end, got %lld..%lld",
                          what, (long long)t->begin, (long long)t->end);
    if (t->batch < 0)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'batch' must be >= 0, got %d", what,
                          (int)t->batch);
    if (t->payload.len && !t->payload.data)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'payload' has a length but no bytes", what);
    return AC_OK;
}

static int check_result(const ac_result *r, ac_err *err)
{
    int rc = check_key(&r->key, NULL, "RESULT", err);
    if (rc)
        return rc;
    if (r->status > AC_RESULT_CANCELLED)
        return ac_err_set(err, AC_E_INVALID, "RESULT: field 'status' must be 0..2, got %d",
                          (int)r->status);
    if (!str_fits(r->error, sizeof r->error))
        return ac_err_set(err, AC_E_INVALID, "RESULT: field 'error' is not NUL-terminated");
    if (!isfinite(r->seconds) || r->seconds < 0)
        return ac_err_set(err, AC_E_INVALID, "RESULT: field 'seconds' must be finite and >= 0, got %g",
                          r->seconds);
    if (r->partial.len && !r->partial.data)
        return ac_err_set(err, AC_E_INVALID, "RESULT: field 'partial' has a length but no bytes");
    return AC_OK;
}

/* Everything the decoder checks beyond types, applied to a filled message. */
static int check_msg(const ac_msg *m, ac_msg_dir dir, ac_err *err)
{
    if (m->proto != AC_PROTO_WORKER && m->proto != AC_PROTO_CLIENT)
        return ac_err_set(err, AC_E_INVALID, "sub-protocol must be worker or client, got %d",
                          (int)m->proto);
    if (!ac_msg_cmd_allowed(m->proto, dir, m->cmd))
        return ac_err_set(err, AC_E_INVALID, "command 0x%02x (%s) is not defined for %s %s the broker",
                          (unsigned)m->cmd, ac_msg_cmd_name(m->cmd),
                          m->proto == AC_PROTO_WORKER ? "workers" : "clients",
                          dir == AC_DIR_TO_BROKER ? "to" : "from");
    switch (m->cmd) {
    case AC_MSG_READY:
        if (!str_fits(m->ready.name, sizeof m->ready.name) ||
            !str_fits(m->ready.isa, sizeof m->ready.isa) ||
            !str_fits(m->ready.backend, sizeof m->ready.backend))
            return ac_err_set(err, AC_E_INVALID, "READY: a string field is not NUL-terminated");
        if (m->ready.cached.len % AC_HASH_BYTES || (m->ready.cached.len && !m->ready.cached.data))
            return ac_err_set(err, AC_E_INVALID,
                              "READY: field 'cached' must be a multiple of %d bytes, got %zu",
                              AC_HASH_BYTES, m->ready.cached.len);
        return AC_OK;
    case AC_MSG_HEARTBEAT:
    case AC_MSG_STATUS:
        return AC_OK;
    case AC_MSG_DISCONNECT:
        return str_fits(m->reason, sizeof m->reason)
                   ? AC_OK
                   : ac_err_set(err, AC_E_INVALID, "DISCONNECT: field 'reason' is not NUL-terminated");
    case AC_MSG_PROGRESS:
        if (m->progress.done > m->progress.total)
            return ac_err_set(err, AC_E_INVALID, "PROGRESS: field 'done' (%llu) exceeds 'total' (%llu)",
                              (unsigned long long)m->progress.done,
                              (unsigned long long)m->progress.total);
        return check_key(&m->progress.key, NULL, "PROGRESS", err);
    case AC_MSG_RESULT:
        return check_result(&m->result, err);
    case AC_MSG_BLOB_REQ:
        if (m->blob_req.length < 1 || m->blob_req.length > AC_BLOB_CHUNK)
            return ac_err_set(err, AC_E_INVALID, "BLOB_REQ: field 'length' must be 1..%u, got %u",
                              AC_BLOB_CHUNK, (unsigned)m->blob_req.length);
        return AC_OK;
    case AC_MSG_TASK:
        return check_task(&m->task, NULL, "TASK", err);
    case AC_MSG_CANCEL:
        if (!ac_msg_job_id_valid(m->cancel.job))
            return ac_err_set(err, AC_E_INVALID,
                              "CANCEL: field 'job' must be 1..63 printable ASCII bytes without space");
        if (m->cancel.nkeys > AC_MSG_CANCEL_MAX || (m->cancel.nkeys && !m->cancel.keys))
            return ac_err_set(err, AC_E_INVALID, "CANCEL: field 'keys' must hold at most %u keys, got %u",
                              AC_MSG_CANCEL_MAX, (unsigned)m->cancel.nkeys);
        for (uint32_t i = 0; i < m->cancel.nkeys; i++) {
            int rc = check_key(&m->cancel.keys[i], m->cancel.job, "CANCEL key", err);
            if (rc)
                return rc;
        }
        return AC_OK;
    case AC_MSG_BLOB:
    case AC_MSG_BLOB_PUT: {
        const ac_msg_blob *b = &m->blob;
        const char *what = ac_msg_cmd_name(m->cmd);
        if (m->cmd == AC_MSG_BLOB_PUT && !ac_msg_job_id_valid(b->job))
            return ac_err_set(err, AC_E_INVALID,
                              "BLOB_PUT: field 'job' must be 1..63 printable ASCII bytes without space");
        if (m->cmd == AC_MSG_BLOB && b->status > AC_BLOB_RANGE)
            return ac_err_set(err, AC_E_INVALID, "BLOB: field 'status' must be 0..2, got %d",
                              (int)b->status);
        if (b->data.len > AC_BLOB_CHUNK || (b->data.len && !b->data.data))
            return ac_err_set(err, AC_E_INVALID, "%s: data frame must hold at most %u bytes, got %zu",
                              what, AC_BLOB_CHUNK, b->data.len);
        if (m->cmd == AC_MSG_BLOB && b->status != AC_BLOB_OK && b->data.len)
            return ac_err_set(err, AC_E_INVALID, "BLOB: status %d must come with an empty data frame",
                              (int)b->status);
        if (b->offset > b->total || b->data.len > b->total - b->offset)
            return ac_err_set(err, AC_E_INVALID,
                              "%s: chunk [%llu, +%zu) exceeds the blob's total of %llu bytes", what,
                              (unsigned long long)b->offset, b->data.len,
                              (unsigned long long)b->total);
        return AC_OK;
    }
    case AC_MSG_SUBMIT:
        if (!ac_msg_job_id_valid(m->submit.job))
            return ac_err_set(err, AC_E_INVALID,
                              "SUBMIT: field 'job' must be 1..63 printable ASCII bytes without space");
        if (m->submit.ntasks > AC_MSG_SUBMIT_MAX || (m->submit.ntasks && !m->submit.tasks))
            return ac_err_set(err, AC_E_INVALID, "SUBMIT: field 'tasks' must hold at most %u tasks, got %u",
                              AC_MSG_SUBMIT_MAX, (unsigned)m->submit.ntasks);
        for (uint32_t i = 0; i < m->submit.ntasks; i++) {
            char what[48];
            snprintf(what, sizeof what, "SUBMIT task %u", (unsigned)i);
            int rc = check_task(&m->submit.tasks[i], m->submit.job, what, err);
            if (rc)
                return rc;
        }
        return AC_OK;
    case AC_MSG_JOB_END:
        return ac_msg_job_id_valid(m->job)
                   ? AC_OK
                   : ac_err_set(err, AC_E_INVALID,
                                "JOB_END: field 'job' must be 1..63 printable ASCII bytes without space");
    case AC_MSG_STATUS_REPLY: {
        ac_mpack_reader r;
        ac_mpack_reader_init(&r, m->status_map.data, m->status_map.len);
        if (ac_mpack_peek(&r) != AC_MPACK_MAP || !ac_mpack_skip(&r) || r.left)
            return ac_err_set(err, AC_E_INVALID, "STATUS_REPLY: field 'status' must be one msgpack map");
        return AC_OK;
    }
    case AC_MSG_ERROR:
        if (m->error.job[0] && !ac_msg_job_id_valid(m->error.job))
            return ac_err_set(err, AC_E_INVALID,
                              "ERROR: field 'job' must be empty or 1..63 printable ASCII bytes");
        return str_fits(m->error.message, sizeof m->error.message)
                   ? AC_OK
                   : ac_err_set(err, AC_E_INVALID, "ERROR: field 'message' is not NUL-terminated");
    }
    return ac_err_set(err, AC_E_INVALID, "unknown command 0x%02x", (unsigned)m->cmd);
}

/* ---- encoding ------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    if (n)
        msgpack_pack_bin_body(pk, p, n);
}

static void pack_key(msgpack_packer *pk, const ac_task_key *k)
{
    msgpack_pack_array(pk, 5);
    pack_str(pk, k->job);
    msgpack_pack_uint32(pk, k->round);
    msgpack_pack_uint32(pk, k->candidate);
    msgpack_pack_uint32(pk, k->shard);
    msgpack_pack_uint32(pk, k->attempt);
}

static void pack_task(msgpack_packer *pk, const ac_task *t)
{
    msgpack_pack_array(pk, 11);
    pack_key(pk, &t->key);
    msgpack_pack_uint32(pk, (uint32_t)t->kind);
    pack_bin(pk, t->model_hash, AC_HASH_BYTES);
    pack_bin(pk, t->data_hash, AC_HASH_BYTES);
    pack_str(pk, t->data_path);
    pack_str(pk, t->input_shapes);
    pack_str(pk, t->preprocess);
    msgpack_pack_int64(pk, t->begin);
    msgpack_pack_int64(pk, t->end);
    msgpack_pack_int32(pk, t->batch);
    pack_bin(pk, t->payload.data, t->payload.len);
}

static void pack_body(msgpack_packer *pk, const ac_msg *m)
{
    switch (m->cmd) {
    case AC_MSG_READY:
        msgpack_pack_array(pk, 5);
        pack_str(pk, m->ready.name);
        msgpack_pack_uint32(pk, m->ready.threads);
        pack_str(pk, m->ready.isa);
        pack_str(pk, m->ready.backend);
        pack_bin(pk, m->ready.cached.data, m->ready.cached.len);
        break;
    case AC_MSG_HEARTBEAT:
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint64(pk, m->heartbeat.epoch);
        msgpack_pack_uint32(pk, m->heartbeat.interval_ms);
        msgpack_pack_uint32(pk, m->heartbeat.liveness);
        break;
    case AC_MSG_DISCONNECT:
        msgpack_pack_array(pk, 1);
        pack_str(pk, m->reason);
        break;
    case AC_MSG_PROGRESS:
        msgpack_pack_array(pk, 3);
        pack_key(pk, &m->progress.key);
        msgpack_pack_uint64(pk, m->progress.done);
        msgpack_pack_uint64(pk, m->progress.total);
        break;
    case AC_MSG_RESULT:
        msgpack_pack_array(pk, 5);
        pack_key(pk, &m->result.key);
        msgpack_pack_uint32(pk, (uint32_t)m->result.status);
        pack_str(pk, m->result.error);
        msgpack_pack_double(pk, m->result.seconds);
        pack_bin(pk, m->result.partial.data, m->result.partial.len);
        break;
    case AC_MSG_BLOB_REQ:
        msgpack_pack_array(pk, 3);
        pack_bin(pk, m->blob_req.hash, AC_HASH_BYTES);
        msgpack_pack_uint64(pk, m->blob_req.offset);
        msgpack_pack_uint32(pk, m->blob_req.length);
        break;
    case AC_MSG_TASK:
        pack_task(pk, &m->task);
        break;
    case AC_MSG_CANCEL:
        msgpack_pack_array(pk, 2);
        pack_str(pk, m->cancel.job);
        msgpack_pack_array(pk, m->cancel.nkeys);
        for (uint32_t i = 0; i < m->cancel.nkeys; i++)
            pack_key(pk, &m->cancel.keys[i]);
        break;
    case AC_MSG_BLOB:
        msgpack_pack_array(pk, 4);
        pack_bin(pk, m->blob.hash, AC_HASH_BYTES);
        msgpack_pack_uint64(pk, m->blob.offset);
        msgpack_pack_uint64(pk, m->blob.total);
        msgpack_pack_uint32(pk, (uint32_t)m->blob.status);
        break;
    case AC_MSG_BLOB_PUT:
        msgpack_pack_array(pk, 4);
        pack_str(pk, m->blob.job);
        pack_bin(pk, m->blob.hash, AC_HASH_BYTES);
        msgpack_pack_uint64(pk, m->blob.offset);
        msgpack_pack_uint64(pk, m->blob.total);
        break;
    case AC_MSG_SUBMIT:
        msgpack_pack_array(pk, 2);
        pack_str(pk, m->submit.job);
        msgpack_pack_array(pk, m->submit.ntasks);
        for (uint32_t i = 0; i < m->submit.ntasks; i++)
            pack_task(pk, &m->submit.tasks[i]);
        break;
    case AC_MSG_JOB_END:
        msgpack_pack_array(pk, 1);
        pack_str(pk, m->job);
        break;
    case AC_MSG_STATUS:
        msgpack_pack_array(pk, 0);
        break;
    case AC_MSG_STATUS_REPLY:
        /* The map is already msgpack: append its bytes after the array header. */
        msgpack_pack_array(pk, 1);
        msgpack_sbuffer_write(pk->data, (const char *)m->status_map.data, m->status_map.len);
        break;
    case AC_MSG_ERROR:
        msgpack_pack_array(pk, 2);
        pack_str(pk, m->error.job);
        pack_str(pk, m->error.message);
        break;
    }
}

int ac_msg_encode(const ac_msg *m, ac_msg_dir dir, zmsg_t **out, ac_err *err)
{
    *out = NULL;
    int rc = check_msg(m, dir, err);
    if (rc)
        return ac_err_prefix(err, "cannot encode: ");
    zmsg_t *zm = zmsg_new();
    if (!zm)
        return ac_err_set(err, AC_E_NOMEM, "cannot encode %s: out of memory", ac_msg_cmd_name(m->cmd));
    uint8_t sig[5];
    memcpy(sig, m->proto == AC_PROTO_WORKER ? AC_MSG_SIG_WORKER : AC_MSG_SIG_CLIENT, 4);
    sig[4] = AC_PROTO_VERSION;
    uint8_t cmd = (uint8_t)m->cmd;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_body(&pk, m);
    rc = zmsg_addmem(zm, sig, sizeof sig) | zmsg_addmem(zm, &cmd, 1) | zmsg_addmem(zm, sb.data, sb.size);
    if (has_data_frame(m->cmd))
        rc |= zmsg_addmem(zm, m->blob.data.data, m->blob.data.len);
    msgpack_sbuffer_destroy(&sb);
    if (rc) {
        zmsg_destroy(&zm);
        return ac_err_set(err, AC_E_NOMEM, "cannot encode %s: out of memory", ac_msg_cmd_name(m->cmd));
    }
    *out = zm;
    return AC_OK;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct {
    ac_mpack_reader r;
    const char *cmd; /* for messages */
    ac_err *err;
} dec;

/* A failed read leaves the position unspecified, so the type of the offending
 * value is taken before reading (peek(d) in every reader below). */
static int bad_value(dec *d, ac_mpack_type t, const char *field, const char *rule)
{
    return ac_err_set(d->err, AC_E_INVALID, "%s body: field '%s' must be %s (got %s)", d->cmd, field,
                      rule, ac_mpack_type_name(t));
}
#define bad(d, field, rule) bad_value(d, next_, field, rule)
#define peek(d) ac_mpack_type next_ = ac_mpack_peek(&(d)->r)

static int rd_array(dec *d, const char *field, uint32_t want)
{
    peek(d);
    uint32_t n;
    if (!ac_mpack_read_array(&d->r, &n))
        return bad(d, field, "an array");
    if (n != want)
        return ac_err_set(d->err, AC_E_INVALID, "%s body: '%s' must be an array of %u elements, got %u",
                          d->cmd, field, (unsigned)want, (unsigned)n);
    return AC_OK;
}

static int rd_u64(dec *d, const char *field, uint64_t *v)
{
    peek(d);
    return ac_mpack_read_uint(&d->r, v) ? AC_OK : bad(d, field, "an unsigned integer");
}

static int rd_u32(dec *d, const char *field, uint32_t *v)
{
    peek(d);
    uint64_t x;
    if (!ac_mpack_read_uint(&d->r, &x) || x > UINT32_MAX)
        return bad(d, field, "an unsigned 32-bit integer");
    *v = (uint32_t)x;
    return AC_OK;
}

static int rd_i64(dec *d, const char *field, int64_t *v)
{
    peek(d);
    return ac_mpack_read_int(&d->r, v) ? AC_OK : bad(d, field, "a signed 64-bit integer");
}

static int rd_i32(dec *d, const char *field, int32_t *v)
{
    peek(d);
    int64_t x;
    if (!ac_mpack_read_int(&d->r, &x) || x < INT32_MIN || x > INT32_MAX)
        return bad(d, field, "a signed 32-bit integer");
    *v = (int32_t)x;
    return AC_OK;
}

/* A string into a fixed buffer of cap bytes (NUL included); no NUL inside. */
static int rd_str(dec *d, const char *field, char *dst, size_t cap)
{
    peek(d);
    const char *s;
    size_t n;
    if (!ac_mpack_read_str(&d->r, &s, &n))
        return bad(d, field, "a string");
    if (n >= cap)
        return ac_err_set(d->err, AC_E_INVALID, "%s body: field '%s' holds %zu bytes, at most %zu allowed",
                          d->cmd, field, n, cap - 1);
    if (memchr(s, 0, n))
        return ac_err_set(d->err, AC_E_INVALID, "%s body: field '%s' contains a NUL byte", d->cmd, field);
    memcpy(dst, s, n);
    dst[n] = '\0';
    return AC_OK;
}

static int rd_job(dec *d, const char *field, char dst[AC_JOB_ID_MAX], bool may_be_empty)
{
    int rc = rd_str(d, field, dst, AC_JOB_ID_MAX);
    if (rc)
        return rc;
    if ((may_be_empty && !dst[0]) || ac_msg_job_id_valid(dst))
        return AC_OK;
    return ac_err_set(d->err, AC_E_INVALID,
                      "%s body: field '%s' must be 1..63 printable ASCII bytes without space", d->cmd,
                      field);
}

static int rd_bin(dec *d, const char *field, ac_bytes *b)
{
    peek(d);
    return ac_mpack_read_bin(&d->r, &b->data, &b->len) ? AC_OK : bad(d, field, "a binary");
}

static int rd_hash(dec *d, const char *field, uint8_t h[AC_HASH_BYTES])
{
    peek(d);
    ac_bytes b;
    if (!ac_mpack_read_bin(&d->r, &b.data, &b.len) || b.len != AC_HASH_BYTES)
        return bad(d, field, "a 32-byte binary");
    memcpy(h, b.data, AC_HASH_BYTES);
    return AC_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

static int rd_key(dec *d, ac_task_key *k)
{
    TRY(rd_array(d, "key", 5));
    TRY(rd_job(d, "key.job", k->job, false));
    TRY(rd_u32(d, "key.round", &k->round));
    TRY(rd_u32(d, "key.candidate", &k->candidate));
    TRY(rd_u32(d, "key.shard", &k->shard));
    TRY(rd_u32(d, "key.attempt", &k->attempt));
    return AC_OK;
}

static int rd_task(dec *d, ac_task *t)
{
    uint32_t kind;
    TRY(rd_array(d, "task", 11));
    TRY(rd_key(d, &t->key));
    TRY(rd_u32(d, "kind", &kind));
    t->kind = (ac_task_kind)kind;
    TRY(rd_hash(d, "model_hash", t->model_hash));
    TRY(rd_hash(d, "data_hash", t->data_hash));
    TRY(rd_str(d, "data_path", t->data_path, sizeof t->data_path));
    TRY(rd_str(d, "input_shapes", t->input_shapes, sizeof t->input_shapes));
    TRY(rd_str(d, "preprocess", t->preprocess, sizeof t->preprocess));
    TRY(rd_i64(d, "begin", &t->begin));
    TRY(rd_i64(d, "end", &t->end));
    TRY(rd_i32(d, "batch", &t->batch));
    TRY(rd_bin(d, "payload", &t->payload));
    return AC_OK;
}

static int rd_body(dec *d, ac_msg *m)
{
    uint32_t u;
    ac_mpack_type next_;
    switch (m->cmd) {
    case AC_MSG_READY:
        TRY(rd_array(d, "body", 5));
        TRY(rd_str(d, "name", m->ready.name, sizeof m->ready.name));
        TRY(rd_u32(d, "threads", &m->ready.threads));
        TRY(rd_str(d, "isa", m->ready.isa, sizeof m->ready.isa));
        TRY(rd_str(d, "backend", m->ready.backend, sizeof m->ready.backend));
        return rd_bin(d, "cached", &m->ready.cached);
    case AC_MSG_HEARTBEAT:
        TRY(rd_array(d, "body", 3));
        TRY(rd_u64(d, "epoch", &m->heartbeat.epoch));
        TRY(rd_u32(d, "interval_ms", &m->heartbeat.interval_ms));
        return rd_u32(d, "liveness", &m->heartbeat.liveness);
    case AC_MSG_DISCONNECT:
        TRY(rd_array(d, "body", 1));
        return rd_str(d, "reason", m->reason, sizeof m->reason);
    case AC_MSG_PROGRESS:
        TRY(rd_array(d, "body", 3));
        TRY(rd_key(d, &m->progress.key));
        TRY(rd_u64(d, "done", &m->progress.done));
        return rd_u64(d, "total", &m->progress.total);
    case AC_MSG_RESULT:
        TRY(rd_array(d, "body", 5));
        TRY(rd_key(d, &m->result.key));
        TRY(rd_u32(d, "status", &u));
        m->result.status = (ac_result_status)u;
        TRY(rd_str(d, "error", m->result.error, sizeof m->result.error));
        next_ = ac_mpack_peek(&d->r);
        if (!ac_mpack_read_f64(&d->r, &m->result.seconds))
            return bad(d, "seconds", "a float64");
        return rd_bin(d, "partial", &m->result.partial);
    case AC_MSG_BLOB_REQ:
        TRY(rd_array(d, "body", 3));
        TRY(rd_hash(d, "hash", m->blob_req.hash));
        TRY(rd_u64(d, "offset", &m->blob_req.offset));
        return rd_u32(d, "length", &m->blob_req.length);
    case AC_MSG_TASK:
        return rd_task(d, &m->task);
    case AC_MSG_CANCEL:
        TRY(rd_array(d, "body", 2));
        TRY(rd_job(d, "job", m->cancel.job, false));
        next_ = ac_mpack_peek(&d->r);
        if (!ac_mpack_read_array(&d->r, &m->cancel.nkeys))
            return bad(d, "keys", "an array");
        if (m->cancel.nkeys > AC_MSG_CANCEL_MAX)
            return ac_err_set(d->err, AC_E_INVALID, "CANCEL body: field 'keys' holds %u keys, at most %u allowed",
                              (unsigned)m->cancel.nkeys, AC_MSG_CANCEL_MAX);
        if (m->cancel.nkeys) {
            /* n is bounded by the bytes present (ac_mpack) and by the limit above. */
            m->cancel.keys = calloc(m->cancel.nkeys, sizeof *m->cancel.keys);
            if (!m->cancel.keys)
                return ac_err_set(d->err, AC_E_NOMEM, "CANCEL: out of memory for %u keys",
                                  (unsigned)m->cancel.nkeys);
            m->alloc_ = m->cancel.keys;
        }
        for (uint32_t i = 0; i < m->cancel.nkeys; i++)
            TRY(rd_key(d, &m->cancel.keys[i]));
        return AC_OK;
    case AC_MSG_BLOB:
        TRY(rd_array(d, "body", 4));
        TRY(rd_hash(d, "hash", m->blob.hash));
        TRY(rd_u64(d, "offset", &m->blob.offset));
        TRY(rd_u64(d, "total", &m->blob.total));
        TRY(rd_u32(d, "status", &u));
        m->blob.status = (ac_blob_status)u;
        return AC_OK;
    case AC_MSG_BLOB_PUT:
        TRY(rd_array(d, "body", 4));
        TRY(rd_job(d, "job", m->blob.job, false));
        TRY(rd_hash(d, "hash", m->blob.hash));
        TRY(rd_u64(d, "offset", &m->blob.offset));
        return rd_u64(d, "total", &m->blob.total);
    case AC_MSG_SUBMIT:
        TRY(rd_array(d, "body", 2));
        TRY(rd_job(d, "job", m->submit.job, false));
        next_ = ac_mpack_peek(&d->r);
        if (!ac_mpack_read_array(&d->r, &m->submit.ntasks))
            return bad(d, "tasks", "an array");
        if (m->submit.ntasks > AC_MSG_SUBMIT_MAX)
            return ac_err_set(d->err, AC_E_INVALID, "SUBMIT body: field 'tasks' holds %u tasks, at most %u allowed",
                              (unsigned)m->submit.ntasks, AC_MSG_SUBMIT_MAX);
        if (m->submit.ntasks) {
            m->submit.tasks = calloc(m->submit.ntasks, sizeof *m->submit.tasks);
            if (!m->submit.tasks)
                return ac_err_set(d->err, AC_E_NOMEM, "SUBMIT: out of memory for %u tasks",
                                  (unsigned)m->submit.ntasks);
            m->alloc_ = m->submit.tasks;
        }
        for (uint32_t i = 0; i < m->submit.ntasks; i++)
            TRY(rd_task(d, &m->submit.tasks[i]));
        return AC_OK;
    case AC_MSG_JOB_END:
        TRY(rd_array(d, "body", 1));
        return rd_job(d, "job", m->job, false);
    case AC_MSG_STATUS:
        return rd_array(d, "body", 0);
    case AC_MSG_STATUS_REPLY: {
        TRY(rd_array(d, "body", 1));
        const uint8_t *start = d->r.p;
        next_ = ac_mpack_peek(&d->r);
        if (ac_mpack_peek(&d->r) != AC_MPACK_MAP || !ac_mpack_skip(&d->r))
            return bad(d, "status", "a msgpack map");
        m->status_map.data = start;
        m->status_map.len = (size_t)(d->r.p - start);
        return AC_OK;
    }
    case AC_MSG_ERROR:
        TRY(rd_array(d, "body", 2));
        TRY(rd_job(d, "job", m->error.job, true));
        return rd_str(d, "message", m->error.message, sizeof m->error.message);
    }
    return ac_err_set(d->err, AC_E_INVALID, "unknown command 0x%02x", (unsigned)m->cmd);
}

int ac_msg_decode_frames(const ac_bytes *frames, size_t nframes, ac_msg_dir dir, ac_msg *out,
                         ac_err *err)
{
    memset(out, 0, sizeof *out);
    if (nframes < 3)
        return ac_err_set(err, AC_E_INVALID, "message has %zu frames, at least 3 required", nframes);
    const ac_bytes *sig = &frames[0];
    if (sig->len != 5 || (memcmp(sig->data, AC_MSG_SIG_WORKER, 4) && memcmp(sig->data, AC_MSG_SIG_CLIENT, 4)))
        return ac_err_set(err, AC_E_INVALID,
                          "frame 0 (signature) must be \"ACPW\" or \"ACPC\" + version, got %zu bytes",
                          sig->len);
    if (sig->data[4] != AC_PROTO_VERSION)
        return ac_err_set(err, AC_E_INVALID, "frame 0 (signature): protocol version %u is not supported (want %u)",
                          (unsigned)sig->data[4], (unsigned)AC_PROTO_VERSION);
    out->proto = sig->data[3] == 'W' ? AC_PROTO_WORKER : AC_PROTO_CLIENT;
    if (frames[1].len != 1)
        return ac_err_set(err, AC_E_INVALID, "frame 1 (command) must be 1 byte, got %zu", frames[1].len);
    out->cmd = (ac_msg_cmd)frames[1].data[0];
    if (out->cmd < AC_MSG_READY || out->cmd > AC_MSG_ERROR)
        return ac_err_set(err, AC_E_INVALID, "frame 1: unknown command 0x%02x", (unsigned)frames[1].data[0]);
    if (!ac_msg_cmd_allowed(out->proto, dir, out->cmd)) {
        ac_err_set(err, AC_E_INVALID, "frame 1: command %s is not defined for %s %s the broker",
                   ac_msg_cmd_name(out->cmd), out->proto == AC_PROTO_WORKER ? "workers" : "clients",
                   dir == AC_DIR_TO_BROKER ? "to" : "from");
        ac_msg_reset(out);
        return AC_E_INVALID;
    }
    size_t want = has_data_frame(out->cmd) ? 4 : 3;
    if (nframes != want) {
        ac_err_set(err, AC_E_INVALID, "%s must have %zu frames, got %zu", ac_msg_cmd_name(out->cmd),
                   want, nframes);
        ac_msg_reset(out);
        return AC_E_INVALID;
    }
    dec d = {.cmd = ac_msg_cmd_name(out->cmd), .err = err};
    ac_mpack_reader_init(&d.r, frames[2].data, frames[2].len);
    int rc = rd_body(&d, out);
    if (!rc && d.r.left)
        rc = ac_err_set(err, AC_E_INVALID, "%s body: %zu bytes follow the body array", d.cmd, d.r.left);
    if (!rc && has_data_frame(out->cmd))
        out->blob.data = frames[3];
    if (!rc)
        rc = check_msg(out, dir, err);
    if (rc) {
        ac_msg_reset(out);
        return rc;
    }
    return AC_OK;
}

#define AC_MSG_MAX_FRAMES 8

int ac_msg_decode(zmsg_t **zmsg, ac_msg_dir dir, ac_msg *out, ac_err *err)
{
    zmsg_t *zm = *zmsg;
    *zmsg = NULL;
    memset(out, 0, sizeof *out);
    size_t n = zm ? zmsg_size(zm) : 0;
    if (n > AC_MSG_MAX_FRAMES) {
        zmsg_destroy(&zm);
        return ac_err_set(err, AC_E_INVALID, "message has %zu frames, at most 4 allowed", n);
    }
    ac_bytes frames[AC_MSG_MAX_FRAMES];
    size_t i = 0;
    for (zframe_t *f = zm ? zmsg_first(zm) : NULL; f; f = zmsg_next(zm), i++) {
        frames[i].data = zframe_data(f);
        frames[i].len = zframe_size(f);
    }
    int rc = ac_msg_decode_frames(frames, n, dir, out, err);
    if (rc) {
        zmsg_destroy(&zm);
        return rc;
    }
    out->frames_ = zm;
    return AC_OK;
}

/* ---- sockets --------------------------------------------------------------- */

int ac_msg_send(zsock_t *sock, zframe_t *routing_id, const ac_msg *m, ac_err *err)
{
    zmsg_t *zm;
    int rc = ac_msg_encode(m, routing_id ? AC_DIR_FROM_BROKER : AC_DIR_TO_BROKER, &zm, err);
    if (rc)
        return rc;
    if (routing_id) {
        zframe_t *id = zframe_dup(routing_id);
        if (!id || zmsg_prepend(zm, &id)) {
            zframe_destroy(&id);
            zmsg_destroy(&zm);
            return ac_err_set(err, AC_E_NOMEM, "cannot send %s: out of memory", ac_msg_cmd_name(m->cmd));
        }
    }
    if (zmsg_send(&zm, sock) != 0) {
        zmsg_destroy(&zm);
        return ac_err_set(err, AC_E_IO, "cannot send %s: %s", ac_msg_cmd_name(m->cmd),
                          zmq_strerror(zmq_errno()));
    }
    return AC_OK;
}

int ac_msg_recv_routed(zsock_t *sock, zmsg_t **zmsg, zframe_t **routing_id, char *user_id, ac_err *err)
{
    *zmsg = NULL;
    *routing_id = NULL;
    if (user_id)
        user_id[0] = '\0';
    zmsg_t *zm = zmsg_recv(sock);
    if (!zm)
        return ac_err_set(err, AC_E_IO, "receive failed: %s", zmq_strerror(zmq_errno()));
    *routing_id = zmsg_pop(zm);
    if (!*routing_id) {
        zmsg_destroy(&zm);
        return ac_err_set(err, AC_E_INVALID, "message without a routing id");
    }
    zframe_t *first = zmsg_first(zm);
    if (user_id && first) {
        /* ZAP metadata of a frame the peer sent (the routing id frame is made
         * by the ROUTER): the CURVE public key (Z85) that zauth admitted. */
        const char *uid = zframe_meta(first, "User-Id");
        if (uid)
            snprintf(user_id, 41, "%s", uid);
    }
    *zmsg = zm;
    return AC_OK;
}

ac_msg_proto ac_msg_peek_proto(zmsg_t *zmsg)
{
    zframe_t *f = zmsg ? zmsg_first(zmsg) : NULL;
    return f && zframe_size(f) >= 4 && !memcmp(zframe_data(f), AC_MSG_SIG_CLIENT, 4) ? AC_PROTO_CLIENT
                                                                                     : AC_PROTO_WORKER;
}

int ac_msg_recv(zsock_t *sock, ac_msg_dir dir, ac_msg *out, zframe_t **routing_id, char *user_id,
                ac_err *err)
{
    memset(out, 0, sizeof *out);
    if (user_id)
        user_id[0] = '\0';
    if (routing_id) {
        zmsg_t *zm = NULL;
        int rc = ac_msg_recv_routed(sock, &zm, routing_id, user_id, err);
        if (rc)
            return rc;
        return ac_msg_decode(&zm, dir, out, err);
    }
    zmsg_t *zm = zmsg_recv(sock);
    if (!zm)
        return ac_err_set(err, AC_E_IO, "receive failed: %s", zmq_strerror(zmq_errno()));
    return ac_msg_decode(&zm, dir, out, err);
}

zsock_t *ac_msg_dealer_new(const char *endpoint, const char *cert_path, const char *server_pub_path,
                           ac_err *err)
{
    if ((cert_path == NULL) != (server_pub_path == NULL)) {
        ac_err_set(err, AC_E_INVALID, "CURVE needs both a certificate and the broker's public key");
        return NULL;
    }
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s) {
        ac_err_set(err, AC_E_IO, "cannot create a DEALER socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zsock_set_linger(s, 0);
    zsock_set_maxmsgsize(s, (int64_t)AC_MSG_MAX_BYTES);
    /* Never block a peer's loop: when no connection can take a message (the
     * broker refused this key), a send fails with AC_E_IO instead. */
    zsock_set_sndtimeo(s, 0);
    if (cert_path) {
        zcert_t *mine = zcert_load(cert_path);
        zcert_t *server = zcert_load(server_pub_path);
        if (!mine || !server || !strcmp(zcert_secret_txt(mine), "0000000000000000000000000000000000000000")) {
            ac_err_set(err, AC_E_IO, "%s: cannot load a CURVE certificate%s",
                       !mine ? cert_path : !server ? server_pub_path : cert_path,
                       mine && server ? " with a secret key" : "");
            zcert_destroy(&mine);
            zcert_destroy(&server);
            zsock_destroy(&s);
            return NULL;
        }
        zcert_apply(mine, s);
        zsock_set_curve_serverkey(s, zcert_public_txt(server));
        zcert_destroy(&mine);
        zcert_destroy(&server);
    }
    if (zsock_connect(s, "%s", endpoint) != 0) {
        ac_err_set(err, AC_E_IO, "cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}
