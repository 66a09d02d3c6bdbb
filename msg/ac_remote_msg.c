#include "ac_remote_msg.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "ac_mpack.h"

static const char *const command_names[] = {
    [AC_RM_HELLO] = "HELLO",     [AC_RM_NEXT] = "NEXT",       [AC_RM_RUN] = "RUN",
    [AC_RM_SCORE] = "SCORE",     [AC_RM_RESULT] = "RESULT",   [AC_RM_WELCOME] = "WELCOME",
    [AC_RM_CANDIDATE] = "CANDIDATE", [AC_RM_WAIT] = "WAIT",   [AC_RM_FINISHED] = "FINISHED",
    [AC_RM_OUTPUTS] = "OUTPUTS", [AC_RM_ACK] = "ACK",         [AC_RM_ERROR] = "ERROR",
};
#define NCOMMANDS ((int)(sizeof command_names / sizeof command_names[0]))

const char *ac_rm_command_name(ac_rm_command c)
{
    return c > 0 && (int)c < NCOMMANDS ? command_names[c] : "?";
}

static ac_rm_command command_of(const char *s, size_t n)
{
    for (int c = 1; c < NCOMMANDS; c++)
        if (strlen(command_names[c]) == n && !memcmp(command_names[c], s, n))
            return (ac_rm_command)c;
    return 0;
}

/* ---- decoding requests ---------------------------------------------------------- */

static int read_header(ac_mpack_reader *r, ac_rm_command *cmd, uint64_t *seq, uint32_t *body_len,
                       ac_rm_decode_info *info, ac_err *err)
{
    uint32_t n;
    const char *s;
    size_t sn;
    if (!ac_mpack_read_array(r, &n) || n != 5)
        return ac_err_set(err, AC_E_INVALID, "remote message: not an array of 5 ([\"ACR\", version, command, seq, body])");
    if (!ac_mpack_read_str_eq(r, AC_RM_SIGNATURE))
        return ac_err_set(err, AC_E_INVALID, "remote message: field 'signature' must be \"%s\"", AC_RM_SIGNATURE);
    uint64_t version;
    if (!ac_mpack_read_uint(r, &version))
        return ac_err_set(err, AC_E_INVALID, "remote message: field 'version' must be an unsigned integer");
    if (info)
        info->version = version;
    if (version != AC_RM_VERSION) {
        if (info)
            info->version_mismatch = true;
        return ac_err_set(err, AC_E_UNSUPPORTED, "remote message: protocol version %llu, this server speaks %d",
                          (unsigned long long)version, AC_RM_VERSION);
    }
    if (!ac_mpack_read_str(r, &s, &sn) || !(*cmd = command_of(s, sn)))
        return ac_err_set(err, AC_E_INVALID, "remote message: field 'command' is not a known command");
    if (!ac_mpack_read_uint(r, seq))
        return ac_err_set(err, AC_E_INVALID, "remote message: field 'seq' must be an unsigned integer");
    if (info)
        info->have_seq = true;
    if (!ac_mpack_read_array(r, body_len))
        return ac_err_set(err, AC_E_INVALID, "remote message %s: field 'body' must be an array",
                          ac_rm_command_name(*cmd));
    return 0;
}

static int read_string(ac_mpack_reader *r, const char **s, size_t *n, const char *cmd, const char *field, size_t max,
                       ac_err *err)
{
    if (!ac_mpack_read_str(r, s, n) || *n > max)
        return ac_err_set(err, AC_E_INVALID, "remote message %s: field '%s' must be a string of at most %zu bytes", cmd,
                          field, max);
    return 0;
}

static int read_shape(ac_mpack_reader *r, ac_rm_request *q, ac_err *err)
{
    uint32_t nd;
    if (!ac_mpack_read_array(r, &nd) || nd < 1 || nd > AC_RM_MAX_DIMS)
        return ac_err_set(err, AC_E_INVALID, "remote message RUN: field 'shape' must be an array of 1..%d dims",
                          AC_RM_MAX_DIMS);
    q->ndim = (int32_t)nd;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!ac_mpack_read_uint(r, &v) || v < 1 || v > ((uint64_t)1 << 31))
            return ac_err_set(err, AC_E_INVALID, "remote message RUN: shape[%u] must be an integer in 1..2^31", d);
        q->shape[d] = (int64_t)v;
    }
    return 0;
}

int ac_rm_decode_request(const uint8_t *buf, size_t len, ac_rm_request *q, ac_rm_decode_info *info, ac_err *err)
{
    memset(q, 0, sizeof *q);
    if (info)
        memset(info, 0, sizeof *info);
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint32_t body;
    if (read_header(&r, &q->cmd, &q->seq, &body, info, err))
        return -1;
    const char *name = ac_rm_command_name(q->cmd);
    static const uint32_t want[] = {[AC_RM_HELLO] = 0, [AC_RM_NEXT] = 1, [AC_RM_RUN] = 5, [AC_RM_SCORE] = 3,
                                    [AC_RM_RESULT] = 1};
    if (q->cmd > AC_RM_RESULT)
        return ac_err_set(err, AC_E_INVALID, "remote message: %s is a reply, not a request", name);
    if (body != want[q->cmd])
        return ac_err_set(err, AC_E_INVALID, "remote message %s: body must have %u fields, not %u", name,
                          want[q->cmd], body);
    if (q->cmd != AC_RM_HELLO &&
        read_string(&r, &q->session, &q->session_len, name, "session", 64, err))
        return -1;
    if (q->cmd == AC_RM_RUN || q->cmd == AC_RM_SCORE) {
        if (!ac_mpack_read_int(&r, &q->id) || q->id < 0)
            return ac_err_set(err, AC_E_INVALID, "remote message %s: field 'id' must be a non-negative integer", name);
    }
    if (q->cmd == AC_RM_RUN) {
        if (read_string(&r, &q->dtype, &q->dtype_len, name, "dtype", 32, err) || read_shape(&r, q, err))
            return -1;
        if (!ac_mpack_read_bin(&r, &q->data, &q->data_len) || q->data_len > AC_RM_MAX_DATA)
            return ac_err_set(err, AC_E_INVALID, "remote message RUN: field 'data' must be bytes (at most %zu)",
                              AC_RM_MAX_DATA);
    }
    if (q->cmd == AC_RM_SCORE) {
        int64_t iv;
        float fv;
        ac_mpack_type t = ac_mpack_peek(&r);
        bool ok = t == AC_MPACK_INT   ? ac_mpack_read_int(&r, &iv) /* a client may send 1 for 1.0 */
                  : t == AC_MPACK_F32 ? ac_mpack_read_f32(&r, &fv)
                                      : ac_mpack_read_f64(&r, &q->score);
        if (!ok)
            return ac_err_set(err, AC_E_INVALID, "remote message SCORE: field 'score' must be a number");
        if (t == AC_MPACK_INT)
            q->score = (double)iv;
        else if (t == AC_MPACK_F32)
            q->score = fv;
        if (!isfinite(q->score))
            return ac_err_set(err, AC_E_INVALID, "remote message SCORE: field 'score' must be finite");
    }
    if (r.left)
        return ac_err_set(err, AC_E_INVALID, "remote message %s: %zu trailing bytes", name, r.left);
    return 0;
}

/* ---- encoding ------------------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s ? s : "", n);
}

static int pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s ? s : "", n);
}

static int pack_shape(msgpack_packer *pk, int32_t ndim, const int64_t *shape)
{
    int rc = msgpack_pack_array(pk, (size_t)ndim);
    for (int32_t d = 0; !rc && d < ndim; d++)
        rc = msgpack_pack_int64(pk, shape[d]);
    return rc;
}

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} writer;

static int begin(writer *w, uint64_t version, ac_rm_command cmd, uint64_t seq, size_t body)
{
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    return msgpack_pack_array(&w->pk, 5) || pack_str(&w->pk, AC_RM_SIGNATURE) || msgpack_pack_uint64(&w->pk, version) ||
           pack_str(&w->pk, ac_rm_command_name(cmd)) || msgpack_pack_uint64(&w->pk, seq) ||
           msgpack_pack_array(&w->pk, body);
}

static int end(writer *w, int rc, uint8_t **buf, size_t *len, ac_err *err)
{
    if (rc) {
        msgpack_sbuffer_destroy(&w->sb);
        return ac_err_set(err, AC_E_NOMEM, "remote message: out of memory encoding");
    }
    *buf = (uint8_t *)w->sb.data;
    *len = w->sb.size;
    return 0;
}

int ac_rm_encode_request(const ac_rm_request *q, uint64_t version, uint8_t **buf, size_t *len, ac_err *err)
{
    static const size_t body[] = {[AC_RM_HELLO] = 0, [AC_RM_NEXT] = 1, [AC_RM_RUN] = 5, [AC_RM_SCORE] = 3,
                                  [AC_RM_RESULT] = 1};
    if (q->cmd < AC_RM_HELLO || q->cmd > AC_RM_RESULT)
        return ac_err_set(err, AC_E_INVALID, "remote message: %s is not a request", ac_rm_command_name(q->cmd));
    writer w;
    int rc = begin(&w, version, q->cmd, q->seq, body[q->cmd]);
    if (!rc && q->cmd != AC_RM_HELLO)
        rc = pack_strn(&w.pk, q->session, q->session_len);
    if (!rc && (q->cmd == AC_RM_RUN || q->cmd == AC_RM_SCORE))
        rc = msgpack_pack_int64(&w.pk, q->id);
    if (!rc && q->cmd == AC_RM_RUN)
        rc = pack_strn(&w.pk, q->dtype, q->dtype_len) || pack_shape(&w.pk, q->ndim, q->shape) ||
             msgpack_pack_bin(&w.pk, q->data_len) || msgpack_pack_bin_body(&w.pk, q->data, q->data_len);
    if (!rc && q->cmd == AC_RM_SCORE)
        rc = msgpack_pack_double(&w.pk, q->score);
    return end(&w, rc, buf, len, err);
}

int ac_rm_encode_welcome(uint64_t seq, const ac_rm_welcome *x, uint8_t **buf, size_t *len, ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, AC_RM_WELCOME, seq, 6) || pack_str(&w.pk, x->session) ||
             pack_str(&w.pk, x->model) || msgpack_pack_array(&w.pk, (size_t)x->ninputs);
    for (int32_t i = 0; !rc && i < x->ninputs; i++)
        rc = msgpack_pack_array(&w.pk, 3) || pack_str(&w.pk, x->inputs[i].name) || pack_str(&w.pk, x->inputs[i].dtype) ||
             pack_shape(&w.pk, x->inputs[i].ndim, x->inputs[i].shape);
    rc = rc || msgpack_pack_array(&w.pk, (size_t)x->noutputs);
    for (int32_t i = 0; !rc && i < x->noutputs; i++)
        rc = pack_str(&w.pk, x->outputs[i]);
    rc = rc || msgpack_pack_int32(&w.pk, x->batch) || msgpack_pack_int32(&w.pk, x->test_iterations);
    return end(&w, rc, buf, len, err);
}

int ac_rm_encode_candidate(uint64_t seq, int64_t id, const char *name, const char *kind, const char *strategy_json,
                           uint8_t **buf, size_t *len, ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, AC_RM_CANDIDATE, seq, 4) || msgpack_pack_int64(&w.pk, id) ||
             pack_str(&w.pk, name) || pack_str(&w.pk, kind) || pack_str(&w.pk, strategy_json);
    return end(&w, rc, buf, len, err);
}

static int encode_one_string(ac_rm_command cmd, uint64_t seq, const char *s, uint8_t **buf, size_t *len, ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, cmd, seq, 1) || pack_str(&w.pk, s);
    return end(&w, rc, buf, len, err);
}

int ac_rm_encode_wait(uint64_t seq, const char *reason, uint8_t **buf, size_t *len, ac_err *err)
{
    return encode_one_string(AC_RM_WAIT, seq, reason, buf, len, err);
}

int ac_rm_encode_finished(uint64_t seq, const char *report_json, uint8_t **buf, size_t *len, ac_err *err)
{
    return encode_one_string(AC_RM_FINISHED, seq, report_json, buf, len, err);
}

int ac_rm_encode_outputs(uint64_t seq, int64_t id, int32_t n, const ac_rm_output *outs, uint8_t **buf, size_t *len,
                         ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, AC_RM_OUTPUTS, seq, 2) || msgpack_pack_int64(&w.pk, id) ||
             msgpack_pack_array(&w.pk, (size_t)n);
    for (int32_t i = 0; !rc && i < n; i++) {
        size_t count = 1;
        for (int32_t d = 0; d < outs[i].ndim; d++)
            count *= (size_t)outs[i].shape[d];
        /* float32 little-endian on the wire: this machine's order (x86/ARM little-endian) */
        rc = msgpack_pack_array(&w.pk, 3) || pack_str(&w.pk, outs[i].name) ||
             pack_shape(&w.pk, outs[i].ndim, outs[i].shape) || msgpack_pack_bin(&w.pk, count * sizeof(float)) ||
             msgpack_pack_bin_body(&w.pk, outs[i].data, count * sizeof(float));
    }
    return end(&w, rc, buf, len, err);
}

int ac_rm_encode_ack(uint64_t seq, int64_t id, uint8_t **buf, size_t *len, ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, AC_RM_ACK, seq, 1) || msgpack_pack_int64(&w.pk, id);
    return end(&w, rc, buf, len, err);
}

int ac_rm_encode_error(uint64_t seq, const char *code, const char *message, uint8_t **buf, size_t *len, ac_err *err)
{
    writer w;
    int rc = begin(&w, AC_RM_VERSION, AC_RM_ERROR, seq, 2) || pack_str(&w.pk, code) || pack_str(&w.pk, message);
    return end(&w, rc, buf, len, err);
}

int ac_rm_decode_reply(const uint8_t *buf, size_t len, ac_rm_command *cmd, uint64_t *seq, const char **error_code,
                       size_t *error_code_len, ac_err *err)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint32_t body;
    if (read_header(&r, cmd, seq, &body, NULL, err))
        return -1;
    if (*cmd < AC_RM_WELCOME)
        return ac_err_set(err, AC_E_INVALID, "remote message: %s is a request, not a reply", ac_rm_command_name(*cmd));
    if (error_code) {
        *error_code = NULL;
        *error_code_len = 0;
        if (*cmd == AC_RM_ERROR &&
            (body != 2 || read_string(&r, error_code, error_code_len, "ERROR", "code", AC_RM_MAX_STR, err)))
            return -1;
    }
    return 0;
}
