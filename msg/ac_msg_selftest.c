/* ac_msg selftest: every command round-trips through encode + decode (and
 * through real sockets), every malformation of docs/protocol.md §3/§5 is
 * rejected with a message naming the field. `--write-seeds DIR` writes one
 * valid message of every command (fuzz input format of tests/fuzz/fuzz_msg.c)
 * plus a few malformed ones into DIR. */
#include "ac_msg_codec.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ac_check.h"

static const uint8_t partial_bytes[] = {0x93, 1, 2, 3};
static const uint8_t payload_bytes[] = {0x81, 0xa1, 'k', 0x2a};
static uint8_t cached_bytes[2 * AC_HASH_BYTES];
static uint8_t blob_bytes[1000];
static ac_task_key sample_keys[3];
static ac_task sample_tasks[2];
static const uint8_t status_map_bytes[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x90};

static void fill_key(ac_task_key *k, const char *job, uint32_t r, uint32_t c, uint32_t s, uint32_t a)
{
    memset(k, 0, sizeof *k);
    snprintf(k->job, sizeof k->job, "%s", job);
    k->round = r;
    k->candidate = c;
    k->shard = s;
    k->attempt = a;
}

static void fill_task(ac_task *t, const char *job, uint32_t shard)
{
    memset(t, 0, sizeof *t);
    fill_key(&t->key, job, 2, 7, shard, 0);
    t->kind = AC_TASK_EVAL;
    for (int i = 0; i < AC_HASH_BYTES; i++) {
        t->model_hash[i] = (uint8_t)(i + 1);
        t->data_hash[i] = (uint8_t)(0xff - i);
    }
    snprintf(t->data_path, sizeof t->data_path, "/data/val.lmdb");
    snprintf(t->input_shapes, sizeof t->input_shapes, "[1,3,224,224]");
    snprintf(t->preprocess, sizeof t->preprocess, "resize=256,crop=224");
    t->begin = 1000;
    t->end = 1000 + 250 * (int64_t)shard + 1;
    t->batch = 16;
    t->payload.data = payload_bytes;
    t->payload.len = sizeof payload_bytes;
}

typedef struct {
    ac_msg m;
    ac_msg_dir dir;
} sample;

/* One valid message of every (sub-protocol, direction, command). */
static int make_samples(sample *out)
{
    int n = 0;
    for (int i = 0; i < (int)sizeof cached_bytes; i++)
        cached_bytes[i] = (uint8_t)(i * 7);
    for (int i = 0; i < (int)sizeof blob_bytes; i++)
        blob_bytes[i] = (uint8_t)(i * 13 + 5);
    fill_key(&sample_keys[0], "job-A", 1, 2, 3, 0);
    fill_key(&sample_keys[1], "job-A", 1, 2, 4, 0);
    fill_key(&sample_keys[2], "job-A", 0xffffffffu, 0, 0, 0);
    fill_task(&sample_tasks[0], "job-A", 0);
    fill_task(&sample_tasks[1], "job-A", 1);
    sample_tasks[1].kind = AC_TASK_CALIB;
    sample_tasks[1].payload.len = 0;
    sample_tasks[1].payload.data = NULL;
    sample_tasks[1].data_path[0] = '\0';

#define NEW(proto, dir_, cmd) (ac_msg_init(&out[n].m, proto, cmd), out[n].dir = dir_, &out[n++].m)
    ac_msg *m = NEW(AC_PROTO_WORKER, AC_DIR_TO_BROKER, AC_MSG_READY);
    snprintf(m->ready.name, sizeof m->ready.name, "worker-1");
    m->ready.threads = 8;
    snprintf(m->ready.isa, sizeof m->ready.isa, "avx512");
    snprintf(m->ready.backend, sizeof m->ready.backend, "cmodel");
    m->ready.cached.data = cached_bytes;
    m->ready.cached.len = sizeof cached_bytes;
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < 2; d++) {
            ac_msg_proto proto = p ? AC_PROTO_CLIENT : AC_PROTO_WORKER;
            m = NEW(proto, (ac_msg_dir)d, AC_MSG_HEARTBEAT);
            m->heartbeat.epoch = d ? 0x123456789abcdef0ull : 0;
            m->heartbeat.interval_ms = 1000;
            m->heartbeat.liveness = 3;
            m = NEW(proto, (ac_msg_dir)d, AC_MSG_DISCONNECT);
            snprintf(m->reason, sizeof m->reason, "shutting down (%d%d)", p, d);
        }
    m = NEW(AC_PROTO_WORKER, AC_DIR_TO_BROKER, AC_MSG_PROGRESS);
    m->progress.key = sample_keys[0];
    m->progress.done = 10;
    m->progress.total = 250;
    for (int d = 0; d < 2; d++) {
        m = NEW(d ? AC_PROTO_CLIENT : AC_PROTO_WORKER, (ac_msg_dir)d, AC_MSG_RESULT);
        m->result.key = sample_keys[0];
        m->result.key.attempt = 2;
        m->result.status = d ? AC_RESULT_ERROR : AC_RESULT_OK;
        if (d)
            snprintf(m->result.error, sizeof m->result.error, "task failed after 3 attempts");
        m->result.seconds = 1.25;
        if (!d) {
            m->result.partial.data = partial_bytes;
            m->result.partial.len = sizeof partial_bytes;
        }
    }
    m = NEW(AC_PROTO_WORKER, AC_DIR_TO_BROKER, AC_MSG_BLOB_REQ);
    memcpy(m->blob_req.hash, cached_bytes, AC_HASH_BYTES);
    m->blob_req.offset = 1u << 20;
    m->blob_req.length = AC_BLOB_CHUNK;
    m = NEW(AC_PROTO_WORKER, AC_DIR_FROM_BROKER, AC_MSG_TASK);
    m->task = sample_tasks[0];
    m->task.key.attempt = 1;
    for (int p = 0; p < 2; p++) {
        m = NEW(p ? AC_PROTO_CLIENT : AC_PROTO_WORKER, p ? AC_DIR_TO_BROKER : AC_DIR_FROM_BROKER,
                AC_MSG_CANCEL);
        snprintf(m->cancel.job, sizeof m->cancel.job, "job-A");
        m->cancel.nkeys = p ? 3 : 1;
        m->cancel.keys = sample_keys;
    }
    m = NEW(AC_PROTO_CLIENT, AC_DIR_TO_BROKER, AC_MSG_CANCEL); /* whole job */
    snprintf(m->cancel.job, sizeof m->cancel.job, "job-A");
    m = NEW(AC_PROTO_WORKER, AC_DIR_FROM_BROKER, AC_MSG_BLOB);
    memcpy(m->blob.hash, cached_bytes, AC_HASH_BYTES);
    m->blob.offset = 24;
    m->blob.total = 24 + sizeof blob_bytes;
    m->blob.data.data = blob_bytes;
    m->blob.data.len = sizeof blob_bytes;
    m = NEW(AC_PROTO_WORKER, AC_DIR_FROM_BROKER, AC_MSG_BLOB);
    memcpy(m->blob.hash, cached_bytes, AC_HASH_BYTES);
    m->blob.status = AC_BLOB_UNKNOWN;
    m = NEW(AC_PROTO_CLIENT, AC_DIR_TO_BROKER, AC_MSG_SUBMIT);
    snprintf(m->submit.job, sizeof m->submit.job, "job-A");
    m->submit.ntasks = 2;
    m->submit.tasks = sample_tasks;
    m = NEW(AC_PROTO_CLIENT, AC_DIR_TO_BROKER, AC_MSG_BLOB_PUT);
    snprintf(m->blob.job, sizeof m->blob.job, "job-A");
    memcpy(m->blob.hash, cached_bytes, AC_HASH_BYTES);
    m->blob.offset = 0;
    m->blob.total = 5000;
    m->blob.data.data = blob_bytes;
    m->blob.data.len = sizeof blob_bytes;
    m = NEW(AC_PROTO_CLIENT, AC_DIR_TO_BROKER, AC_MSG_JOB_END);
    snprintf(m->job, sizeof m->job, "job-A");
    m = NEW(AC_PROTO_CLIENT, AC_DIR_TO_BROKER, AC_MSG_STATUS);
    m = NEW(AC_PROTO_CLIENT, AC_DIR_FROM_BROKER, AC_MSG_STATUS_REPLY);
    m->status_map.data = status_map_bytes;
    m->status_map.len = sizeof status_map_bytes;
    m = NEW(AC_PROTO_CLIENT, AC_DIR_FROM_BROKER, AC_MSG_ERROR);
    snprintf(m->error.job, sizeof m->error.job, "job-A");
    snprintf(m->error.message, sizeof m->error.message, "blob store full");
#undef NEW
    return n;
}

static bool bytes_eq(ac_bytes a, ac_bytes b)
{
    return a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len));
}

static bool key_same(const ac_task_key *a, const ac_task_key *b)
{
    return ac_task_key_eq(a, b) && a->attempt == b->attempt;
}

static bool task_same(const ac_task *a, const ac_task *b)
{
    return key_same(&a->key, &b->key) && a->kind == b->kind &&
           !memcmp(a->model_hash, b->model_hash, AC_HASH_BYTES) &&
           !memcmp(a->data_hash, b->data_hash, AC_HASH_BYTES) && !strcmp(a->data_path, b->data_path) &&
           !strcmp(a->input_shapes, b->input_shapes) && !strcmp(a->preprocess, b->preprocess) &&
           a->begin == b->begin && a->end == b->end && a->batch == b->batch &&
           bytes_eq(a->payload, b->payload);
}

static bool msg_same(const ac_msg *a, const ac_msg *b)
{
    if (a->proto != b->proto || a->cmd != b->cmd)
        return false;
    switch (a->cmd) {
    case AC_MSG_READY:
        return !strcmp(a->ready.name, b->ready.name) && a->ready.threads == b->ready.threads &&
               !strcmp(a->ready.isa, b->ready.isa) && !strcmp(a->ready.backend, b->ready.backend) &&
               bytes_eq(a->ready.cached, b->ready.cached);
    case AC_MSG_HEARTBEAT:
        return !memcmp(&a->heartbeat, &b->heartbeat, sizeof a->heartbeat);
    case AC_MSG_DISCONNECT:
        return !strcmp(a->reason, b->reason);
    case AC_MSG_PROGRESS:
        return key_same(&a->progress.key, &b->progress.key) && a->progress.done == b->progress.done &&
               a->progress.total == b->progress.total;
    case AC_MSG_RESULT:
        return key_same(&a->result.key, &b->result.key) && a->result.status == b->result.status &&
               !strcmp(a->result.error, b->result.error) && a->result.seconds == b->result.seconds &&
               bytes_eq(a->result.partial, b->result.partial);
    case AC_MSG_BLOB_REQ:
        return !memcmp(a->blob_req.hash, b->blob_req.hash, AC_HASH_BYTES) &&
               a->blob_req.offset == b->blob_req.offset && a->blob_req.length == b->blob_req.length;
    case AC_MSG_TASK:
        return task_same(&a->task, &b->task);
    case AC_MSG_CANCEL:
        if (strcmp(a->cancel.job, b->cancel.job) || a->cancel.nkeys != b->cancel.nkeys)
            return false;
        for (uint32_t i = 0; i < a->cancel.nkeys; i++)
            if (!key_same(&a->cancel.keys[i], &b->cancel.keys[i]))
                return false;
        return true;
    case AC_MSG_BLOB:
    case AC_MSG_BLOB_PUT:
        return (a->cmd == AC_MSG_BLOB || !strcmp(a->blob.job, b->blob.job)) &&
               !memcmp(a->blob.hash, b->blob.hash, AC_HASH_BYTES) && a->blob.offset == b->blob.offset &&
               a->blob.total == b->blob.total && a->blob.status == b->blob.status &&
               bytes_eq(a->blob.data, b->blob.data);
    case AC_MSG_SUBMIT:
        if (strcmp(a->submit.job, b->submit.job) || a->submit.ntasks != b->submit.ntasks)
            return false;
        for (uint32_t i = 0; i < a->submit.ntasks; i++)
            if (!task_same(&a->submit.tasks[i], &b->submit.tasks[i]))
                return false;
        return true;
    case AC_MSG_JOB_END:
        return !strcmp(a->job, b->job);
    case AC_MSG_STATUS:
        return true;
    case AC_MSG_STATUS_REPLY:
        return bytes_eq(a->status_map, b->status_map);
    case AC_MSG_ERROR:
        return !strcmp(a->error.job, b->error.job) && !strcmp(a->error.message, b->error.message);
    }
    return false;
}

static void test_round_trips(sample *s, int n)
{
    bool seen[16] = {false};
    for (int i = 0; i < n; i++) {
        ac_err err;
        zmsg_t *zm = NULL;
        int rc = ac_msg_encode(&s[i].m, s[i].dir, &zm, &err);
        if (rc) {
            fprintf(stderr, "encode %s: %s\n", ac_msg_cmd_name(s[i].m.cmd), err.msg);
            failures++;
            continue;
        }
        ac_msg back;
        rc = ac_msg_decode(&zm, s[i].dir, &back, &err);
        if (rc) {
            fprintf(stderr, "decode %s: %s\n", ac_msg_cmd_name(s[i].m.cmd), err.msg);
            failures++;
            continue;
        }
        CHECK(zm == NULL);
        CHECK(msg_same(&s[i].m, &back));
        seen[s[i].m.cmd] = true;
        /* The other direction must refuse every command but HEARTBEAT and DISCONNECT. */
        zmsg_t *again = NULL;
        CHECK(ac_msg_encode(&s[i].m, s[i].dir, &again, &err) == AC_OK);
        ac_msg wrong;
        rc = ac_msg_decode(&again, !s[i].dir, &wrong, &err);
        bool both = s[i].m.cmd == AC_MSG_HEARTBEAT || s[i].m.cmd == AC_MSG_DISCONNECT;
        CHECK(both ? rc == AC_OK : rc == AC_E_INVALID);
        ac_msg_reset(&wrong);
        ac_msg_reset(&back);
        ac_msg_reset(&back); /* idempotent */
    }
    for (int c = AC_MSG_READY; c <= AC_MSG_ERROR; c++)
        CHECK(seen[c]);
}

/* ---- malformations -------------------------------------------------------- */

typedef struct {
    uint8_t sig[8];
    size_t siglen;
    uint8_t cmd[2];
    size_t cmdlen;
    msgpack_sbuffer body;
    msgpack_packer pk;
} raw;

static void raw_init(raw *r, const char *sig, uint8_t version, int cmd)
{
    memcpy(r->sig, sig, 4);
    r->sig[4] = version;
    r->siglen = 5;
    r->cmd[0] = (uint8_t)cmd;
    r->cmdlen = 1;
    msgpack_sbuffer_init(&r->body);
    msgpack_packer_init(&r->pk, &r->body, msgpack_sbuffer_write);
}

static void pstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pbin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    if (n)
        msgpack_pack_bin_body(pk, p, n);
}

static void pkey(msgpack_packer *pk, const char *job, uint64_t round)
{
    msgpack_pack_array(pk, 5);
    pstr(pk, job);
    msgpack_pack_uint64(pk, round);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_uint32(pk, 2);
    msgpack_pack_uint32(pk, 0);
}

static void expect_reject_frames(const ac_bytes *f, size_t n, ac_msg_dir dir, const char *want,
                                 int line)
{
    ac_msg m;
    ac_err err;
    ac_err_clear(&err);
    int rc = ac_msg_decode_frames(f, n, dir, &m, &err);
    if (rc != AC_E_INVALID || !strstr(err.msg, want)) {
        fprintf(stderr, "line %d: expected rejection mentioning \"%s\", got rc=%d \"%s\"\n", line, want,
                rc, err.msg);
        failures++;
    }
    if (rc == AC_OK)
        ac_msg_reset(&m);
    CHECK(m.alloc_ == NULL && m.frames_ == NULL);
}

static void expect_reject(raw *r, ac_msg_dir dir, const char *want, int line)
{
    static const uint8_t data[4] = {1, 2, 3, 4};
    ac_bytes f[4] = {{r->sig, r->siglen}, {r->cmd, r->cmdlen},
                     {(const uint8_t *)r->body.data, r->body.size}, {data, sizeof data}};
    bool blob = r->cmdlen == 1 && (r->cmd[0] == AC_MSG_BLOB || r->cmd[0] == AC_MSG_BLOB_PUT);
    expect_reject_frames(f, blob ? 4 : 3, dir, want, line);
    msgpack_sbuffer_destroy(&r->body);
}

#define REJECT(r, dir, want) expect_reject(r, dir, want, __LINE__)

static void pack_ready(msgpack_packer *pk, const char *name, size_t cached_len)
{
    msgpack_pack_array(pk, 5);
    pstr(pk, name);
    msgpack_pack_uint32(pk, 4);
    pstr(pk, "avx2");
    pstr(pk, "cmodel");
    pbin(pk, cached_bytes, cached_len);
}

static void pack_task_fields(msgpack_packer *pk, const char *job, int kind, size_t hash_len,
                             int64_t begin, int64_t end)
{
    uint8_t h[40] = {0};
    msgpack_pack_array(pk, 11);
    pkey(pk, job, 0);
    msgpack_pack_uint32(pk, (uint32_t)kind);
    pbin(pk, h, hash_len);
    pbin(pk, h, AC_HASH_BYTES);
    pstr(pk, "");
    pstr(pk, "");
    pstr(pk, "");
    msgpack_pack_int64(pk, begin);
    msgpack_pack_int64(pk, end);
    msgpack_pack_int32(pk, 1);
    pbin(pk, NULL, 0);
}

static void test_malformed(void)
{
    raw r;
    /* frames, signature, version, command */
    {
        uint8_t sig[5] = {'A', 'C', 'P', 'W', 1}, cmd = AC_MSG_STATUS, body = 0x90;
        ac_bytes f[5] = {{sig, 5}, {&cmd, 1}, {&body, 1}, {&body, 1}, {&body, 1}};
        expect_reject_frames(f, 2, AC_DIR_TO_BROKER, "at least 3 required", __LINE__);
        expect_reject_frames(f, 0, AC_DIR_TO_BROKER, "at least 3 required", __LINE__);
        cmd = AC_MSG_HEARTBEAT;
        expect_reject_frames(f, 4, AC_DIR_TO_BROKER, "HEARTBEAT must have 3 frames, got 4", __LINE__);
        cmd = AC_MSG_BLOB;
        expect_reject_frames(f, 3, AC_DIR_FROM_BROKER, "BLOB must have 4 frames, got 3", __LINE__);
        sig[3] = 'X';
        cmd = AC_MSG_HEARTBEAT;
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "frame 0 (signature)", __LINE__);
        f[0].len = 4;
        sig[3] = 'W';
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "frame 0 (signature)", __LINE__);
        f[0].len = 5;
        sig[4] = 2;
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "protocol version 2 is not supported", __LINE__);
        sig[4] = 1;
        f[1].len = 0;
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "frame 1 (command) must be 1 byte", __LINE__);
        f[1].len = 1;
        cmd = 0x7f;
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "unknown command 0x7f", __LINE__);
        cmd = 0;
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "unknown command 0x00", __LINE__);
        cmd = AC_MSG_SUBMIT; /* a client command under the worker signature */
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "SUBMIT is not defined for workers", __LINE__);
        cmd = AC_MSG_TASK; /* a broker command sent to the broker */
        expect_reject_frames(f, 3, AC_DIR_TO_BROKER, "TASK is not defined for workers to", __LINE__);
    }
    /* body shape */
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS);
    msgpack_pack_map(&r.pk, 0);
    REJECT(&r, AC_DIR_TO_BROKER, "'body' must be an array");
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_nil(&r.pk);
    REJECT(&r, AC_DIR_TO_BROKER, "must be an array of 0 elements, got 1");
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS);
    msgpack_pack_array(&r.pk, 0);
    msgpack_pack_nil(&r.pk);
    REJECT(&r, AC_DIR_TO_BROKER, "1 bytes follow the body array");
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS); /* empty body frame */
    REJECT(&r, AC_DIR_TO_BROKER, "must be an array (got end of data)");
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS);
    msgpack_sbuffer_write(&r.body, "\xc1", 1);
    REJECT(&r, AC_DIR_TO_BROKER, "reserved byte 0xc1");
    /* READY fields */
    raw_init(&r, "ACPW", 1, AC_MSG_READY);
    msgpack_pack_array(&r.pk, 5);
    pstr(&r.pk, "w");
    pstr(&r.pk, "4");
    pstr(&r.pk, "avx2");
    pstr(&r.pk, "cmodel");
    pbin(&r.pk, NULL, 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'threads' must be an unsigned 32-bit integer");
    raw_init(&r, "ACPW", 1, AC_MSG_READY);
    msgpack_pack_array(&r.pk, 5);
    pstr(&r.pk, "w");
    msgpack_pack_uint64(&r.pk, 1ull << 32);
    pstr(&r.pk, "avx2");
    pstr(&r.pk, "cmodel");
    pbin(&r.pk, NULL, 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'threads' must be an unsigned 32-bit integer");
    raw_init(&r, "ACPW", 1, AC_MSG_READY);
    pack_ready(&r.pk, "0123456789012345678901234567890123456789012345678901234567890123", 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'name' holds 64 bytes, at most 63");
    raw_init(&r, "ACPW", 1, AC_MSG_READY);
    msgpack_pack_array(&r.pk, 5);
    msgpack_pack_str(&r.pk, 3);
    msgpack_pack_str_body(&r.pk, "a\0b", 3);
    msgpack_pack_uint32(&r.pk, 4);
    pstr(&r.pk, "avx2");
    pstr(&r.pk, "cmodel");
    pbin(&r.pk, NULL, 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'name' contains a NUL byte");
    raw_init(&r, "ACPW", 1, AC_MSG_READY);
    pack_ready(&r.pk, "w", 33);
    REJECT(&r, AC_DIR_TO_BROKER, "'cached' must be a multiple of 32 bytes");
    raw_init(&r, "ACPW", 1, AC_MSG_READY); /* truncated: the binary is cut short */
    pack_ready(&r.pk, "w", 64);
    r.body.size -= 10;
    REJECT(&r, AC_DIR_TO_BROKER, "field 'cached' must be a binary");
    /* keys, jobs, numbers */
    raw_init(&r, "ACPW", 1, AC_MSG_PROGRESS);
    msgpack_pack_array(&r.pk, 3);
    pkey(&r.pk, "job A", 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'key.job' must be 1..63 printable ASCII");
    raw_init(&r, "ACPW", 1, AC_MSG_PROGRESS);
    msgpack_pack_array(&r.pk, 3);
    pkey(&r.pk, "", 0);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'key.job' must be 1..63 printable ASCII");
    raw_init(&r, "ACPW", 1, AC_MSG_PROGRESS);
    msgpack_pack_array(&r.pk, 3);
    pkey(&r.pk, "j", 1ull << 32);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'key.round' must be an unsigned 32-bit integer");
    raw_init(&r, "ACPW", 1, AC_MSG_PROGRESS);
    msgpack_pack_array(&r.pk, 3);
    pkey(&r.pk, "j", 0);
    msgpack_pack_uint32(&r.pk, 5);
    msgpack_pack_uint32(&r.pk, 4);
    REJECT(&r, AC_DIR_TO_BROKER, "'done' (5) exceeds 'total' (4)");
    raw_init(&r, "ACPW", 1, AC_MSG_PROGRESS);
    msgpack_pack_array(&r.pk, 3);
    pkey(&r.pk, "j", 0);
    msgpack_pack_int32(&r.pk, -1);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'done' must be an unsigned integer");
    /* RESULT */
    for (int v = 0; v < 4; v++) {
        raw_init(&r, "ACPW", 1, AC_MSG_RESULT);
        msgpack_pack_array(&r.pk, 5);
        pkey(&r.pk, "j", 0);
        msgpack_pack_uint32(&r.pk, v == 0 ? 3 : 0);
        pstr(&r.pk, "");
        if (v == 1)
            msgpack_pack_float(&r.pk, 1.0f);
        else
            msgpack_pack_double(&r.pk, v == 2 ? NAN : v == 3 ? -1.0 : 1.0);
        pbin(&r.pk, NULL, 0);
        REJECT(&r, AC_DIR_TO_BROKER,
               v == 0 ? "field 'status' must be 0..2, got 3"
               : v == 1 ? "field 'seconds' must be a float64"
                        : "field 'seconds' must be finite and >= 0");
    }
    /* BLOB_REQ */
    for (int v = 0; v < 3; v++) {
        raw_init(&r, "ACPW", 1, AC_MSG_BLOB_REQ);
        msgpack_pack_array(&r.pk, 3);
        pbin(&r.pk, cached_bytes, v == 2 ? 31 : 32);
        msgpack_pack_uint32(&r.pk, 0);
        msgpack_pack_uint32(&r.pk, v == 0 ? 0 : AC_BLOB_CHUNK + 1);
        REJECT(&r, AC_DIR_TO_BROKER,
               v == 2 ? "field 'hash' must be a 32-byte binary" : "field 'length' must be 1..");
    }
    /* TASK */
    raw_init(&r, "ACPW", 1, AC_MSG_TASK);
    pack_task_fields(&r.pk, "j", 5, 32, 0, 1);
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'kind' must be 1..4, got 5");
    raw_init(&r, "ACPW", 1, AC_MSG_TASK);
    pack_task_fields(&r.pk, "j", 1, 16, 0, 1);
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'model_hash' must be a 32-byte binary");
    raw_init(&r, "ACPW", 1, AC_MSG_TASK);
    pack_task_fields(&r.pk, "j", 1, 32, 5, 4);
    REJECT(&r, AC_DIR_FROM_BROKER, "0 <= begin <= end, got 5..4");
    raw_init(&r, "ACPW", 1, AC_MSG_TASK);
    pack_task_fields(&r.pk, "j", 1, 32, -1, 4);
    REJECT(&r, AC_DIR_FROM_BROKER, "0 <= begin <= end");
    /* SUBMIT */
    raw_init(&r, "ACPC", 1, AC_MSG_SUBMIT);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, 1);
    pack_task_fields(&r.pk, "job-B", 1, 32, 0, 1);
    REJECT(&r, AC_DIR_TO_BROKER, "key's job 'job-B' differs from the message's job 'job-A'");
    raw_init(&r, "ACPC", 1, AC_MSG_SUBMIT);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, 1000000); /* declared, not present: no allocation */
    REJECT(&r, AC_DIR_TO_BROKER, "field 'tasks' must be an array");
    raw_init(&r, "ACPC", 1, AC_MSG_SUBMIT);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, AC_MSG_SUBMIT_MAX + 1);
    for (unsigned i = 0; i <= AC_MSG_SUBMIT_MAX; i++)
        msgpack_pack_nil(&r.pk);
    REJECT(&r, AC_DIR_TO_BROKER, "holds 4097 tasks, at most 4096");
    raw_init(&r, "ACPC", 1, AC_MSG_SUBMIT);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, 2);
    pack_task_fields(&r.pk, "job-A", 1, 32, 0, 1);
    msgpack_pack_nil(&r.pk);
    REJECT(&r, AC_DIR_TO_BROKER, "'task' must be an array");
    /* CANCEL */
    raw_init(&r, "ACPC", 1, AC_MSG_CANCEL);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, 1);
    pkey(&r.pk, "job-B", 0);
    REJECT(&r, AC_DIR_TO_BROKER, "CANCEL key: key's job 'job-B' differs");
    raw_init(&r, "ACPC", 1, AC_MSG_CANCEL);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "job-A");
    msgpack_pack_array(&r.pk, 0xffffffffu);
    REJECT(&r, AC_DIR_TO_BROKER, "field 'keys' must be an array");
    /* BLOB / BLOB_PUT */
    raw_init(&r, "ACPW", 1, AC_MSG_BLOB);
    msgpack_pack_array(&r.pk, 4);
    pbin(&r.pk, cached_bytes, 32);
    msgpack_pack_uint64(&r.pk, 10);
    msgpack_pack_uint64(&r.pk, 12); /* 4 data bytes at 10 exceed 12 */
    msgpack_pack_uint32(&r.pk, 0);
    REJECT(&r, AC_DIR_FROM_BROKER, "chunk [10, +4) exceeds the blob's total of 12 bytes");
    raw_init(&r, "ACPW", 1, AC_MSG_BLOB);
    msgpack_pack_array(&r.pk, 4);
    pbin(&r.pk, cached_bytes, 32);
    msgpack_pack_uint64(&r.pk, 0);
    msgpack_pack_uint64(&r.pk, 12);
    msgpack_pack_uint32(&r.pk, 1);
    REJECT(&r, AC_DIR_FROM_BROKER, "status 1 must come with an empty data frame");
    raw_init(&r, "ACPC", 1, AC_MSG_BLOB_PUT);
    msgpack_pack_array(&r.pk, 4);
    pstr(&r.pk, "j");
    pbin(&r.pk, cached_bytes, 32);
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    msgpack_pack_uint64(&r.pk, 3);
    REJECT(&r, AC_DIR_TO_BROKER, "exceeds the blob's total of 3 bytes");
    /* STATUS_REPLY, ERROR, JOB_END */
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS_REPLY);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_array(&r.pk, 0);
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'status' must be a msgpack map");
    raw_init(&r, "ACPC", 1, AC_MSG_STATUS_REPLY);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 2);
    pstr(&r.pk, "a");
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'status' must be a msgpack map");
    raw_init(&r, "ACPC", 1, AC_MSG_JOB_END);
    msgpack_pack_array(&r.pk, 1);
    pstr(&r.pk, "0123456789012345678901234567890123456789012345678901234567890123");
    REJECT(&r, AC_DIR_TO_BROKER, "field 'job' holds 64 bytes, at most 63");
    raw_init(&r, "ACPC", 1, AC_MSG_ERROR);
    msgpack_pack_array(&r.pk, 2);
    pstr(&r.pk, "");
    msgpack_pack_true(&r.pk);
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'message' must be a string (got bool)");
    raw_init(&r, "ACPW", 1, AC_MSG_DISCONNECT);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_str(&r.pk, 300);
    for (int i = 0; i < 300; i++)
        msgpack_pack_str_body(&r.pk, "x", 1);
    REJECT(&r, AC_DIR_FROM_BROKER, "field 'reason' holds 300 bytes, at most 255");

    /* The encoder refuses what the decoder would refuse. */
    ac_msg m;
    ac_err err;
    zmsg_t *zm = NULL;
    ac_msg_init(&m, AC_PROTO_CLIENT, AC_MSG_SUBMIT);
    snprintf(m.submit.job, sizeof m.submit.job, "bad job");
    CHECK(ac_msg_encode(&m, AC_DIR_TO_BROKER, &zm, &err) == AC_E_INVALID && zm == NULL);
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_TASK);
    CHECK(ac_msg_encode(&m, AC_DIR_FROM_BROKER, &zm, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "cannot encode: TASK") != NULL);
    ac_msg_init(&m, AC_PROTO_WORKER, AC_MSG_READY);
    CHECK(ac_msg_encode(&m, AC_DIR_FROM_BROKER, &zm, &err) == AC_E_INVALID);
}

/* ---- sockets: a ROUTER and a DEALER over inproc ---------------------------- */

static void test_sockets(sample *s, int n)
{
    zsock_t *router = zsock_new_router("inproc://msg-selftest");
    ac_err err;
    zsock_t *dealer = ac_msg_dealer_new("inproc://msg-selftest", NULL, NULL, &err);
    CHECK(router && dealer);
    if (!router || !dealer)
        return;
    zsock_set_rcvtimeo(router, 5000);
    zsock_set_rcvtimeo(dealer, 5000);
    for (int i = 0; i < n; i++) {
        if (s[i].dir != AC_DIR_TO_BROKER)
            continue;
        CHECK(ac_msg_send(dealer, NULL, &s[i].m, &err) == AC_OK);
        ac_msg in;
        zframe_t *rid = NULL;
        char uid[41];
        CHECK(ac_msg_recv(router, AC_DIR_TO_BROKER, &in, &rid, uid, &err) == AC_OK);
        CHECK(msg_same(&s[i].m, &in));
        CHECK(uid[0] == '\0'); /* no CURVE */
        /* and back: the broker answers with the messages that travel from it */
        for (int j = 0; j < n; j++) {
            if (s[j].dir != AC_DIR_FROM_BROKER || s[j].m.proto != s[i].m.proto)
                continue;
            CHECK(ac_msg_send(router, rid, &s[j].m, &err) == AC_OK);
            ac_msg back;
            CHECK(ac_msg_recv(dealer, AC_DIR_FROM_BROKER, &back, NULL, NULL, &err) == AC_OK);
            CHECK(msg_same(&s[j].m, &back));
            ac_msg_reset(&back);
        }
        zframe_destroy(&rid);
        ac_msg_reset(&in);
    }
    /* A malformed message still yields the routing id, so the broker can answer. */
    zsock_send(dealer, "sb", "junk", "\x01\x02", (size_t)2);
    ac_msg in;
    zframe_t *rid = NULL;
    CHECK(ac_msg_recv(router, AC_DIR_TO_BROKER, &in, &rid, NULL, &err) == AC_E_INVALID);
    CHECK(rid != NULL);
    zframe_destroy(&rid);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

/* ---- seeds ------------------------------------------------------------------ */

static void write_seed(const char *dir, const char *name, uint8_t dirbyte, zmsg_t *zm)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        failures++;
        return;
    }
    fputc(dirbyte, f);
    for (zframe_t *fr = zmsg_first(zm); fr; fr = zmsg_next(zm)) {
        size_t len = zframe_size(fr);
        if (len > 0xffff)
            len = 0xffff;
        fputc((int)(len >> 8), f);
        fputc((int)(len & 0xff), f);
        fwrite(zframe_data(fr), 1, len, f);
    }
    fclose(f);
}

static void write_seeds(const char *dir, sample *s, int n)
{
    for (int i = 0; i < n; i++) {
        zmsg_t *zm = NULL;
        ac_err err;
        if (ac_msg_encode(&s[i].m, s[i].dir, &zm, &err)) {
            failures++;
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%02d-%s-%c-%s", i, ac_msg_cmd_name(s[i].m.cmd), (char)s[i].m.proto,
                 s[i].dir == AC_DIR_TO_BROKER ? "to" : "from");
        write_seed(dir, name, (uint8_t)s[i].dir, zm);
        /* and a copy with the body's last byte cut off (a malformed neighbour) */
        zframe_t *body = zmsg_first(zm);
        body = zmsg_next(zm);
        body = zmsg_next(zm);
        if (zframe_size(body) > 1) {
            zframe_t *cut = zframe_new(zframe_data(body), zframe_size(body) - 1);
            zmsg_t *bad = zmsg_new();
            zframe_t *f0 = zmsg_first(zm);
            zmsg_addmem(bad, zframe_data(f0), zframe_size(f0));
            zframe_t *f1 = zmsg_next(zm);
            zmsg_addmem(bad, zframe_data(f1), zframe_size(f1));
            zmsg_append(bad, &cut);
            snprintf(name, sizeof name, "%02d-%s-truncated", i, ac_msg_cmd_name(s[i].m.cmd));
            write_seed(dir, name, (uint8_t)s[i].dir, bad);
            zmsg_destroy(&bad);
        }
        zmsg_destroy(&zm);
    }
}

int main(int argc, char **argv)
{
    static sample samples[40];
    int n = make_samples(samples);
    if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
        write_seeds(argv[2], samples, n);
        printf("wrote the seeds of %d messages (and truncated copies) to %s\n", n, argv[2]);
        return failures ? 1 : 0;
    }
    test_round_trips(samples, n);
    test_malformed();
    test_sockets(samples, n);
    if (failures) {
        fprintf(stderr, "msg_selftest: %d failures\n", failures);
        return 1;
    }
    printf("msg_selftest: %d messages round-trip, malformations rejected, sockets ok\n", n);
    return 0;
}
