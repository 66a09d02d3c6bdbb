/* ac_payload: see ac_payload.h. Layouts (msgpack arrays, fixed field order):
 *
 *   eval:  ["ac-eval-payload", 1, fp32_reference,
 *           [[name, th f64, min f64, max f64] ...],
 *           per_channel, accuracy_opt, first_conv_fp32, [fp32 layer name ...],
 *           metric_kind, metric_output, metric_topk, metric_classifier, need_reference,
 *           detect_preset str<=31]
 *   calib: ["ac-calib-payload", 1, bin collector_template]
 *
 * Booleans are msgpack true/false, integers any msgpack integer encoding that
 * fits int32, thresholds float64 only (bit-exact round trips). docs/protocol.md
 * (payloads) describes the same layout. */
#include "ac_payload.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "ac_mpack.h"

#define EVAL_MAGIC "ac-eval-payload"
#define CALIB_MAGIC "ac-calib-payload"
#define RUN_MAGIC "ac-run-payload"
#define RUN_FIELDS 5
#define OUTPUTS_MAGIC "ac-run-outputs"
#define OUTPUTS_FIELDS 3
#define PAYLOAD_VERSION 1
#define EVAL_FIELDS 14
#define CALIB_FIELDS 3

/* ---- encoding ------------------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_bool(msgpack_packer *pk, bool v)
{
    return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static int finish(msgpack_sbuffer *sb, int rc, uint8_t **buf, size_t *len, const char *what, ac_err *err)
{
    if (rc) {
        msgpack_sbuffer_destroy(sb);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory encoding", what);
    }
    *buf = (uint8_t *)sb->data;
    *len = sb->size;
    return 0;
}

static int check_eval(const ac_eval_payload *p, ac_err *err)
{
    if (p->nranges < 0 || (p->nranges > 0 && !p->ranges))
        return ac_err_set(err, AC_E_INVALID, "eval payload: nranges %d without ranges", (int)p->nranges);
    if (p->nfp32 < 0 || (p->nfp32 > 0 && !p->fp32_layers))
        return ac_err_set(err, AC_E_INVALID, "eval payload: nfp32 %d without fp32_layers", (int)p->nfp32);
    for (int32_t i = 0; i < p->nranges; i++) {
        const ac_payload_range *r = &p->ranges[i];
        if (!r->name || !r->name[0])
            return ac_err_set(err, AC_E_INVALID, "eval payload: range %d has no tensor name", (int)i);
        if (!(r->th > 0) || !isfinite(r->th) || !isfinite(r->min) || !isfinite(r->max) || r->min > r->max)
            return ac_err_set(err, AC_E_INVALID,
                              "eval payload: range '%s': threshold %g, min %g, max %g (need th > 0, finite, "
                              "min <= max)",
                              r->name, r->th, r->min, r->max);
    }
    for (int32_t i = 0; i < p->nfp32; i++)
        if (!p->fp32_layers[i] || !p->fp32_layers[i][0])
            return ac_err_set(err, AC_E_INVALID, "eval payload: fp32 layer %d is empty", (int)i);
    return 0;
}

int ac_eval_payload_encode(const ac_eval_payload *p, uint8_t **buf, size_t *len, ac_err *err)
{
    if (check_eval(p, err))
        return AC_E_INVALID;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, EVAL_FIELDS) || pack_str(&pk, EVAL_MAGIC) ||
             msgpack_pack_uint64(&pk, PAYLOAD_VERSION) || pack_bool(&pk, p->fp32_reference) ||
             msgpack_pack_array(&pk, (size_t)p->nranges);
    for (int32_t i = 0; !rc && i < p->nranges; i++) {
        const ac_payload_range *r = &p->ranges[i];
        rc = msgpack_pack_array(&pk, 4) || pack_str(&pk, r->name) || msgpack_pack_double(&pk, r->th) ||
             msgpack_pack_double(&pk, r->min) || msgpack_pack_double(&pk, r->max);
    }
    rc = rc || pack_bool(&pk, p->per_channel) || pack_bool(&pk, p->accuracy_opt) ||
         pack_bool(&pk, p->first_conv_fp32) || msgpack_pack_array(&pk, (size_t)p->nfp32);
    for (int32_t i = 0; !rc && i < p->nfp32; i++)
        rc = pack_str(&pk, p->fp32_layers[i]);
    rc = rc || msgpack_pack_int64(&pk, p->metric_kind) || msgpack_pack_int64(&pk, p->metric_output) ||
         msgpack_pack_int64(&pk, p->metric_topk) || msgpack_pack_int64(&pk, p->metric_classifier) ||
         pack_bool(&pk, p->need_reference) || pack_str(&pk, p->detect_preset);
    return finish(&sb, rc, buf, len, "eval payload", err);
}

int ac_calib_payload_encode(const ac_calib_payload *p, uint8_t **buf, size_t *len, ac_err *err)
{
    if (!p->collector_template.data || !p->collector_template.len)
        return ac_err_set(err, AC_E_INVALID, "calib payload: empty collector template");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, CALIB_FIELDS) || pack_str(&pk, CALIB_MAGIC) ||
             msgpack_pack_uint64(&pk, PAYLOAD_VERSION) ||
             msgpack_pack_bin(&pk, p->collector_template.len) ||
             msgpack_pack_bin_body(&pk, p->collector_template.data, p->collector_template.len);
    return finish(&sb, rc, buf, len, "calib payload", err);
}

/* ---- decoding ------------------------------------------------------------------- */

static int bad(ac_err *err, const char *what, const char *field)
{
    return ac_err_set(err, AC_E_INVALID, "%s: field '%s' is missing, truncated or of the wrong type", what, field);
}

static int read_i32(ac_mpack_reader *r, int32_t *v)
{
    int64_t x;
    if (!ac_mpack_read_int(r, &x) || x < INT32_MIN || x > INT32_MAX)
        return -1;
    *v = (int32_t)x;
    return 0;
}

static int read_header(ac_mpack_reader *r, const char *magic, uint32_t nfields, const char *what, ac_err *err)
{
    uint32_t n;
    uint64_t version;
    if (!ac_mpack_read_array(r, &n))
        return ac_err_set(err, AC_E_INVALID, "%s: not a msgpack array", what);
    if (n != nfields)
        return ac_err_set(err, AC_E_INVALID, "%s: %u fields, expected %u", what, n, nfields);
    if (!ac_mpack_read_str_eq(r, magic))
        return ac_err_set(err, AC_E_INVALID, "%s: field 'magic' is not \"%s\"", what, magic);
    if (!ac_mpack_read_uint(r, &version))
        return bad(err, what, "version");
    if (version != PAYLOAD_VERSION)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: version %llu, this build reads version %d", what,
                          (unsigned long long)version, PAYLOAD_VERSION);
    return 0;
}

/* A name: a non-empty string without NUL bytes; copied into *dst (NUL-terminated). */
static int read_name(ac_mpack_reader *r, char **dst, const char *what, const char *field, uint32_t i, ac_err *err)
{
    const char *s;
    size_t n;
    if (!ac_mpack_read_str(r, &s, &n))
        return ac_err_set(err, AC_E_INVALID, "%s: %s %u: not a string (missing or truncated)", what, field, i);
    if (n == 0 || memchr(s, '\0', n))
        return ac_err_set(err, AC_E_INVALID, "%s: %s %u: a name must be non-empty and hold no NUL byte", what,
                          field, i);
    memcpy(*dst, s, n);
    (*dst)[n] = '\0';
    *dst += n + 1;
    return 0;
}

/* Peeks the fp32 layer count ahead (a copy of the reader skips the ranges and
 * the three option flags), so every allocation is made once, up front; 0 when
 * the bytes are malformed (the real pass then names the field). */
static uint32_t peek_nfp32(const ac_mpack_reader *r, uint32_t nranges)
{
    ac_mpack_reader c = *r;
    uint32_t nf = 0;
    bool b;
    for (uint32_t i = 0; i < nranges; i++)
        if (!ac_mpack_skip(&c))
            return 0;
    if (!ac_mpack_read_bool(&c, &b) || !ac_mpack_read_bool(&c, &b) ||
        !ac_mpack_read_bool(&c, &b) || !ac_mpack_read_array(&c, &nf))
        return 0;
    return nf;
}

/* storage->ranges: the range array; storage->names: the fp32 pointer array
 * followed by every name's text. Both are bounded by the input: each string's
 * bytes exist in buf, and each array element stands for at least one byte. */
int ac_eval_payload_decode(const uint8_t *buf, size_t len, ac_eval_payload *out, ac_payload_storage *storage,
                           ac_err *err)
{
    static const char *const what = "eval payload";
    memset(out, 0, sizeof *out);
    memset(storage, 0, sizeof *storage);
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    if (read_header(&r, EVAL_MAGIC, EVAL_FIELDS, what, err))
        return err ? err->code : AC_E_INVALID;
    uint32_t nr, nf;
    if (!ac_mpack_read_bool(&r, &out->fp32_reference))
        return bad(err, what, "fp32_reference");
    if (!ac_mpack_read_array(&r, &nr) || nr > INT32_MAX)
        return bad(err, what, "ranges");
    uint32_t nf_max = peek_nfp32(&r, nr);
    storage->ranges = calloc(nr ? nr : 1, sizeof(ac_payload_range));
    storage->names = malloc((size_t)nf_max * sizeof(char *) + len + (size_t)nr + (size_t)nf_max + 1);
    if (!storage->ranges || !storage->names) {
        ac_payload_storage_free(storage);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %u ranges", what, nr);
    }
    ac_payload_range *ranges = storage->ranges;
    const char **layers = storage->names;
    char *tp = (char *)storage->names + (size_t)nf_max * sizeof(char *);
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t n4;
        if (!ac_mpack_read_array(&r, &n4) || n4 != 4) {
            ac_err_set(err, AC_E_INVALID, "%s: range %u: not an array of 4 [name, th, min, max]", what, i);
            goto fail;
        }
        ranges[i].name = tp;
        if (read_name(&r, &tp, what, "range", i, err))
            goto fail;
        if (!ac_mpack_read_f64(&r, &ranges[i].th) || !ac_mpack_read_f64(&r, &ranges[i].min) ||
            !ac_mpack_read_f64(&r, &ranges[i].max)) {
            ac_err_set(err, AC_E_INVALID, "%s: range %u ('%s'): th, min, max must be float64", what, i,
                       ranges[i].name);
            goto fail;
        }
        if (!(ranges[i].th > 0) || !isfinite(ranges[i].th) || !isfinite(ranges[i].min) ||
            !isfinite(ranges[i].max) || ranges[i].min > ranges[i].max) {
            ac_err_set(err, AC_E_INVALID,
                       "%s: range %u ('%s'): threshold %g, min %g, max %g (need th > 0, finite, min <= max)", what,
                       i, ranges[i].name, ranges[i].th, ranges[i].min, ranges[i].max);
            goto fail;
        }
    }
    out->nranges = (int32_t)nr;
    out->ranges = ranges;
    if (!ac_mpack_read_bool(&r, &out->per_channel)) {
        bad(err, what, "per_channel");
        goto fail;
    }
    if (!ac_mpack_read_bool(&r, &out->accuracy_opt)) {
        bad(err, what, "accuracy_opt");
        goto fail;
    }
    if (!ac_mpack_read_bool(&r, &out->first_conv_fp32)) {
        bad(err, what, "first_conv_fp32");
        goto fail;
    }
    if (!ac_mpack_read_array(&r, &nf) || nf != nf_max) {
        bad(err, what, "fp32_layers");
        goto fail;
    }
    for (uint32_t i = 0; i < nf; i++) {
        layers[i] = tp;
        if (read_name(&r, &tp, what, "fp32 layer", i, err))
            goto fail;
    }
    out->nfp32 = (int32_t)nf;
    out->fp32_layers = layers;
    if (read_i32(&r, &out->metric_kind)) {
        bad(err, what, "metric_kind");
        goto fail;
    }
    if (read_i32(&r, &out->metric_output)) {
        bad(err, what, "metric_output");
        goto fail;
    }
    if (read_i32(&r, &out->metric_topk)) {
        bad(err, what, "metric_topk");
        goto fail;
    }
    if (read_i32(&r, &out->metric_classifier)) {
        bad(err, what, "metric_classifier");
        goto fail;
    }
    if (!ac_mpack_read_bool(&r, &out->need_reference)) {
        bad(err, what, "need_reference");
        goto fail;
    }
    const char *preset;
    size_t plen;
    if (!ac_mpack_read_str(&r, &preset, &plen) || plen >= sizeof out->detect_preset ||
        memchr(preset, '\0', plen)) {
        bad(err, what, "detect_preset");
        goto fail;
    }
    memcpy(out->detect_preset, preset, plen);
    out->detect_preset[plen] = '\0';
    if (r.left) {
        ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the last field", what, r.left);
        goto fail;
    }
    return 0;
fail:
    ac_payload_storage_free(storage);
    memset(out, 0, sizeof *out);
    return err ? err->code : AC_E_INVALID;
}

int ac_calib_payload_decode(const uint8_t *buf, size_t len, ac_calib_payload *out, ac_err *err)
{
    static const char *const what = "calib payload";
    memset(out, 0, sizeof *out);
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    if (read_header(&r, CALIB_MAGIC, CALIB_FIELDS, what, err))
        return err ? err->code : AC_E_INVALID;
    const uint8_t *b;
    size_t n;
    if (!ac_mpack_read_bin(&r, &b, &n))
        return bad(err, what, "collector_template");
    if (n == 0)
        return ac_err_set(err, AC_E_INVALID, "%s: empty collector template", what);
    if (r.left)
        return ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the last field", what, r.left);
    out->collector_template.data = b;
    out->collector_template.len = n;
    return 0;
}

void ac_payload_storage_free(ac_payload_storage *s)
{
    if (!s)
        return;
    free(s->ranges);
    free(s->names);
    s->ranges = s->names = NULL;
}

/* ---- identity ------------------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The canonical encoding is what ac_eval_payload_encode writes for the decoded
 * payload, so two encoders that spell an integer differently still name the
 * same candidate. Bytes that do not decode are hashed as they are. */
uint64_t ac_eval_payload_id(const uint8_t *buf, size_t len)
{
    ac_eval_payload p;
    ac_payload_storage st;
    if (ac_eval_payload_decode(buf, len, &p, &st, NULL))
        return fnv1a(buf, len);
    uint8_t *canon = NULL;
    size_t clen = 0;
    uint64_t id = ac_eval_payload_encode(&p, &canon, &clen, NULL) ? fnv1a(buf, len) : fnv1a(canon, clen);
    free(canon);
    ac_payload_storage_free(&st);
    return id;
}

/* ---- run tasks (remote test mode) ------------------------------------------------ */

static int pack_dims(msgpack_packer *pk, int32_t ndim, const int64_t *shape)
{
    int rc = msgpack_pack_array(pk, (size_t)ndim);
    for (int32_t d = 0; !rc && d < ndim; d++)
        rc = msgpack_pack_int64(pk, shape[d]);
    return rc;
}

/* A shape of 1..AC_RUN_MAX_DIMS dims, each 1..2^31; *count gets their product. */
static int read_dims(ac_mpack_reader *r, int32_t *ndim, int64_t *shape, size_t *count, const char *what,
                     ac_err *err)
{
    uint32_t nd;
    if (!ac_mpack_read_array(r, &nd) || nd < 1 || nd > AC_RUN_MAX_DIMS)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'shape' must be 1..%d dims", what, AC_RUN_MAX_DIMS);
    *ndim = (int32_t)nd;
    size_t n = 1;
    for (uint32_t d = 0; d < nd; d++) {
        int64_t v;
        if (!ac_mpack_read_int(r, &v) || v < 1 || v > ((int64_t)1 << 31))
            return ac_err_set(err, AC_E_INVALID, "%s: shape[%u] must be 1..2^31", what, d);
        shape[d] = v;
        if (n > SIZE_MAX / 8 / (size_t)v)
            return ac_err_set(err, AC_E_INVALID, "%s: the shape's element count overflows", what);
        n *= (size_t)v;
    }
    *count = n;
    return 0;
}

int ac_run_payload_encode(const ac_run_payload *p, uint8_t **buf, size_t *len, ac_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, RUN_FIELDS) || pack_str(&pk, RUN_MAGIC) ||
             msgpack_pack_uint64(&pk, PAYLOAD_VERSION) || msgpack_pack_bin(&pk, p->eval.len) ||
             msgpack_pack_bin_body(&pk, p->eval.data, p->eval.len) || pack_dims(&pk, p->ndim, p->shape) ||
             msgpack_pack_bin(&pk, p->data.len) || msgpack_pack_bin_body(&pk, p->data.data, p->data.len);
    return finish(&sb, rc, buf, len, "run payload", err);
}

int ac_run_payload_decode(const uint8_t *buf, size_t len, ac_run_payload *out, ac_err *err)
{
    static const char *const what = "run payload";
    memset(out, 0, sizeof *out);
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    if (read_header(&r, RUN_MAGIC, RUN_FIELDS, what, err))
        return err ? err->code : AC_E_INVALID;
    size_t count;
    if (!ac_mpack_read_bin(&r, &out->eval.data, &out->eval.len))
        return bad(err, what, "eval");
    if (read_dims(&r, &out->ndim, out->shape, &count, what, err))
        return AC_E_INVALID;
    if (!ac_mpack_read_bin(&r, &out->data.data, &out->data.len))
        return bad(err, what, "data");
    if (out->data.len != count * sizeof(float))
        return ac_err_set(err, AC_E_INVALID, "%s: %zu data bytes for a shape of %zu float32 values", what,
                          out->data.len, count);
    if (r.left)
        return ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the last field", what, r.left);
    return 0;
}

int ac_run_outputs_encode(const ac_run_output *outs, int32_t n, uint8_t **buf, size_t *len, ac_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, OUTPUTS_FIELDS) || pack_str(&pk, OUTPUTS_MAGIC) ||
             msgpack_pack_uint64(&pk, PAYLOAD_VERSION) || msgpack_pack_array(&pk, (size_t)n);
    for (int32_t i = 0; !rc && i < n; i++)
        rc = msgpack_pack_array(&pk, 2) || pack_dims(&pk, outs[i].ndim, outs[i].shape) ||
             msgpack_pack_bin(&pk, outs[i].data.len) ||
             msgpack_pack_bin_body(&pk, outs[i].data.data, outs[i].data.len);
    return finish(&sb, rc, buf, len, "run outputs", err);
}

int ac_run_outputs_decode(const uint8_t *buf, size_t len, ac_run_output *outs, int32_t cap, int32_t *n,
                          ac_err *err)
{
    static const char *const what = "run outputs";
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint32_t count;
    if (read_header(&r, OUTPUTS_MAGIC, OUTPUTS_FIELDS, what, err))
        return err ? err->code : AC_E_INVALID;
    if (!ac_mpack_read_array(&r, &count) || count > (uint32_t)cap)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'outputs' must be an array of at most %d", what, (int)cap);
    for (uint32_t i = 0; i < count; i++) {
        ac_run_output *o = &outs[i];
        uint32_t two;
        size_t elems;
        if (!ac_mpack_read_array(&r, &two) || two != 2)
            return ac_err_set(err, AC_E_INVALID, "%s: output %u must be [shape, data]", what, i);
        if (read_dims(&r, &o->ndim, o->shape, &elems, what, err))
            return AC_E_INVALID;
        if (!ac_mpack_read_bin(&r, &o->data.data, &o->data.len) || o->data.len != elems * sizeof(float))
            return ac_err_set(err, AC_E_INVALID, "%s: output %u: data must be %zu float32 values", what, i, elems);
    }
    if (r.left)
        return ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes after the last field", what, r.left);
    *n = (int32_t)count;
    return 0;
}
