/* ac_onnx: ONNX ModelProto -> ac_graph. See ac_onnx.h for what is supported.
 *
 * Safety: the file is checked by a small protobuf wire walker (bounded nesting,
 * every length inside its parent) before protobuf-c unpacks it, because
 * protobuf-c recurses without a depth limit. After unpacking, every length,
 * count and dim is checked against the data actually present before anything
 * is allocated from it. */
#include "ac_onnx.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ac_file.h"
#include "ac_ops.h"
#include "onnx/onnx.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; add byte swapping for big-endian hosts"
#endif

#define MIN_IR_VERSION 3
#define MAX_IR_VERSION 10
#define MIN_OPSET 1
#define MAX_OPSET 17
#define BASE_OPSET 7       /* op definitions are implemented as of this opset and later */
#define MAX_WIRE_DEPTH 64  /* nesting of protobuf messages (subgraphs are rejected anyway) */

/* ------------------------------------------------------------------------ */
/* Op versions: since_version history of every default-domain op the project
 * supports (from onnx.defs, ONNX 1.12). Used to reject opsets whose
 * definition the project does not implement and ops newer than the model. */

static const struct {
    const char *op;
    int since[8]; /* ascending, 0-terminated */
} op_versions[] = {
    {"Conv", {1, 11}},
    {"ConvTranspose", {1, 11}},
    {"Gemm", {1, 6, 7, 9, 11, 13}},
    {"MatMul", {1, 9, 13}},
    {"BatchNormalization", {1, 6, 7, 9, 14, 15}},
    {"Add", {1, 6, 7, 13, 14}},
    {"Sub", {1, 6, 7, 13, 14}},
    {"Mul", {1, 6, 7, 13, 14}},
    {"Div", {1, 6, 7, 13, 14}},
    {"Relu", {1, 6, 13, 14}},
    {"LeakyRelu", {1, 6, 16}},
    {"PRelu", {1, 6, 7, 9, 16}},
    {"Clip", {1, 6, 11, 12, 13}},
    {"Sigmoid", {1, 6, 13}},
    {"Tanh", {1, 6, 13}},
    {"HardSigmoid", {1, 6}},
    {"HardSwish", {14}},
    {"Exp", {1, 6, 13}},
    {"Sqrt", {1, 6, 13}},
    {"Softmax", {1, 11, 13}},
    {"MaxPool", {1, 8, 10, 11, 12}},
    {"AveragePool", {1, 7, 10, 11}},
    {"GlobalAveragePool", {1}},
    {"GlobalMaxPool", {1}},
    {"ReduceMean", {1, 11, 13}},
    {"Concat", {1, 4, 11, 13}},
    {"Split", {1, 2, 11, 13}},
    {"Slice", {1, 10, 11, 13}},
    {"Reshape", {1, 5, 13, 14}},
    {"Flatten", {1, 9, 11, 13}},
    {"Transpose", {1, 13}},
    {"Squeeze", {1, 11, 13}},
    {"Unsqueeze", {1, 11, 13}},
    {"Pad", {1, 2, 11, 13}},
    {"Resize", {10, 11, 13}},
    {"Upsample", {1, 7, 9, 10}},
    {"Identity", {1, 13, 14, 16}},
    {"Dropout", {1, 6, 7, 10, 12, 13}},
    {"Constant", {1, 9, 11, 12, 13}},
    {"ConstantOfShape", {9}},
    {"Shape", {1, 13, 15}},
    {"Gather", {1, 11, 13}},
    {"Cast", {1, 6, 9, 13}},
};

static int op_version_at(int idx, int opset)
{
    int v = 0;
    for (int k = 0; k < 8 && op_versions[idx].since[k]; k++)
        if (op_versions[idx].since[k] <= opset)
            v = op_versions[idx].since[k];
    return v;
}

static int op_index(const char *op_type)
{
    for (size_t i = 0; i < sizeof op_versions / sizeof op_versions[0]; i++)
        if (strcmp(op_versions[i].op, op_type) == 0)
            return (int)i;
    return -1;
}

int ac_onnx_op_version(const char *op_type, int opset)
{
    int idx = op_index(op_type);
    if (idx < 0)
        return 0;
    int v = op_version_at(idx, opset);
    if (v == 0)
        return 0;
    if (opset < BASE_OPSET && v != op_version_at(idx, BASE_OPSET))
        return -1;
    return v;
}

/* ------------------------------------------------------------------------ */
/* --input_data_shape parser */

typedef struct {
    const char *s; /* whole string, for positions in messages */
    const char *p;
} scanner;

static void skip_spaces(scanner *sc)
{
    while (*sc->p && isspace((unsigned char)*sc->p))
        sc->p++;
}

static int shape_error(scanner *sc, ac_err *err, const char *rule)
{
    /* The caller prefixes the option and its value; this names the place. */
    if (*sc->p)
        return ac_err_set(err, AC_E_INVALID, "at position %d (at '%.12s'): %s", (int)(sc->p - sc->s),
                          sc->p, rule);
    return ac_err_set(err, AC_E_INVALID, "at position %d (the end): %s", (int)(sc->p - sc->s), rule);
}

static int parse_dim(scanner *sc, int64_t *out, ac_err *err)
{
    skip_spaces(sc);
    if (*sc->p == '-')
        return shape_error(sc, err, "a dim must not be negative");
    if (!isdigit((unsigned char)*sc->p))
        return shape_error(sc, err, "expected a dim (a non-negative integer)");
    int64_t v = 0;
    while (isdigit((unsigned char)*sc->p)) {
        v = v * 10 + (*sc->p - '0');
        if (v >= ((int64_t)1 << 31))
            return shape_error(sc, err, "a dim must be below 2^31");
        sc->p++;
    }
    *out = v;
    return 0;
}

/* dims inside brackets (or bare, close = 0): "1,3,224,224" */
static int parse_dims(scanner *sc, char close, ac_onnx_shape *sh, ac_err *err)
{
    sh->ndim = 0;
    skip_spaces(sc);
    if (close && *sc->p == close) {
        sc->p++;
        return 0; /* scalar */
    }
    for (;;) {
        if (sh->ndim == AC_MAX_DIMS)
            return shape_error(sc, err, "more than 8 dims");
        if (parse_dim(sc, &sh->dims[sh->ndim], err))
            return err ? (int)err->code : AC_E_INVALID;
        sh->ndim++;
        skip_spaces(sc);
        if (*sc->p == ',') {
            sc->p++;
            continue;
        }
        if (close) {
            if (*sc->p != close) {
                char rule[64];
                snprintf(rule, sizeof rule, "expected ',' or '%c'", close);
                return shape_error(sc, err, rule);
            }
            sc->p++;
        }
        return 0;
    }
}

/* optional "name:" or "name=" before a shape */
static int parse_shape_name(scanner *sc, ac_onnx_shape *sh, ac_err *err)
{
    sh->name[0] = '\0';
    skip_spaces(sc);
    const char *start = sc->p;
    const char *q = sc->p;
    while (*q && *q != ':' && *q != '=' && *q != '(' && *q != '[' && *q != ',' && *q != ';')
        q++;
    if (*q != ':' && *q != '=')
        return 0;
    const char *end = q;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    if (end == start) {
        sc->p = q;
        return shape_error(sc, err, "empty input name before ':'");
    }
    if ((size_t)(end - start) >= AC_ONNX_NAME_MAX)
        return shape_error(sc, err, "input name longer than 127 characters");
    memcpy(sh->name, start, (size_t)(end - start));
    sh->name[end - start] = '\0';
    sc->p = q + 1;
    return 0;
}

int ac_onnx_parse_shapes(const char *s, ac_onnx_shape *out, int max, int *n, ac_err *err)
{
    *n = 0;
    if (!s)
        return ac_err_set(err, AC_E_INVALID, "no value");
    scanner sc = {s, s};
    skip_spaces(&sc);
    if (!*sc.p)
        return ac_err_set(err, AC_E_INVALID, "empty value, expected a shape like (1,3,224,224)");
    /* "[[1,3,224,224],[1,10]]": an outer list of shapes */
    int outer = 0;
    if (*sc.p == '[') {
        scanner peek = {s, sc.p + 1};
        skip_spaces(&peek);
        if (*peek.p == '[' || *peek.p == '(') {
            outer = 1;
            sc.p = peek.p;
        }
    }
    for (;;) {
        if (*n == max) {
            char rule[64];
            snprintf(rule, sizeof rule, "more than %d shapes", max);
            return shape_error(&sc, err, rule);
        }
        ac_onnx_shape *sh = &out[*n];
        memset(sh, 0, sizeof *sh);
        if (parse_shape_name(&sc, sh, err))
            return err ? (int)err->code : AC_E_INVALID;
        skip_spaces(&sc);
        int rc;
        if (*sc.p == '(')
            sc.p++, rc = parse_dims(&sc, ')', sh, err);
        else if (*sc.p == '[')
            sc.p++, rc = parse_dims(&sc, ']', sh, err);
        else if (*n == 0 && !outer && !sh->name[0])
            rc = parse_dims(&sc, 0, sh, err); /* bare "1,3,224,224": exactly one shape */
        else
            return shape_error(&sc, err, "expected '(' or '['");
        if (rc)
            return rc;
        (*n)++;
        skip_spaces(&sc);
        if (outer && *sc.p == ']') {
            sc.p++;
            outer = 0;
            skip_spaces(&sc);
            if (*sc.p)
                return shape_error(&sc, err, "unexpected text after the closing ']'");
            return 0;
        }
        if (!*sc.p) {
            if (outer)
                return shape_error(&sc, err, "missing the closing ']' of the list of shapes");
            return 0;
        }
        if (*sc.p != ',' && *sc.p != ';')
            return shape_error(&sc, err, "expected ',' or ';' between shapes");
        sc.p++;
    }
}

/* ------------------------------------------------------------------------ */
/* Protobuf wire walker: checks structure and nesting before protobuf-c runs. */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int wire_check(const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *d,
                      int depth)
{
    if (depth > MAX_WIRE_DEPTH)
        return -2;
    while (p < end) {
        uint64_t key, v;
        if (read_varint(&p, end, &key))
            return -1;
        unsigned wt = (unsigned)(key & 7);
        uint64_t num = key >> 3;
        if (num == 0 || num > 536870911u)
            return -1;
        switch (wt) {
        case 0:
            if (read_varint(&p, end, &v))
                return -1;
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        case 2: {
            if (read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return -1;
            const ProtobufCFieldDescriptor *f =
                d ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = wire_check(p, p + v, f->descriptor, depth + 1);
                if (rc)
                    return rc;
            }
            p += v;
            break;
        }
        default:
            return -1; /* groups (3, 4) and invalid wire types */
        }
    }
    return 0;
}

static int unpack_checked(const ProtobufCMessageDescriptor *d, const void *buf, size_t len,
                          const char *what, ProtobufCMessage **out, ac_err *err)
{
    const uint8_t *p = buf;
    int rc = wire_check(p, p + len, d, 0);
    if (rc == -2)
        return ac_err_set(err, AC_E_INVALID, "%s messages nested deeper than %d levels", what,
                          MAX_WIRE_DEPTH);
    if (rc)
        return ac_err_set(err, AC_E_INVALID,
                          "not a valid %s: malformed or truncated protobuf data (%zu bytes)", what, len);
    *out = protobuf_c_message_unpack(d, NULL, len, p);
    if (!*out)
        return ac_err_set(err, AC_E_INVALID, "not a valid %s: protobuf decoding failed (%zu bytes)",
                          what, len);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* dtypes and tensor decoding */

static const char *onnx_dtype_name(int32_t t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                  "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                  "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    if (t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]))
        return names[t];
    return "unknown";
}

/* ONNX DataType -> ac_dtype (same codes); 0 when not supported. */
static ac_dtype dtype_from_onnx(int32_t t)
{
    switch (t) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 9: case 11: return (ac_dtype)t;
    default: return AC_DT_UNDEFINED;
    }
}

typedef struct {
    ac_dtype dt;
    int ndim;
    int64_t dims[AC_MAX_DIMS];
    int64_t numel;
    void *data; /* malloc'ed; NULL when numel == 0 */
    size_t bytes;
} decoded_tensor;

static int dims_numel(const int64_t *dims, int ndim, int64_t *numel, const char *what, ac_err *err)
{
    int64_t n = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return ac_err_set(err, AC_E_INVALID, "%s: dim %d is %lld, dims must be >= 0", what, i,
                              (long long)dims[i]);
        if (dims[i] == 0)
            zero = 1;
    }
    if (zero) {
        *numel = 0;
        return 0;
    }
    for (int i = 0; i < ndim; i++) {
        if (n > (((int64_t)1 << 48) / dims[i]))
            return ac_err_set(err, AC_E_INVALID, "%s: dims give more than 2^48 elements", what);
        n *= dims[i];
    }
    *numel = n;
    return 0;
}

/* Copy typed-field values of count n into out (numel elements of dt). */
static int copy_typed(const Onnx__TensorProto *tp, ac_dtype dt, void *out, int64_t numel,
                      const char *what, ac_err *err)
{
    size_t have;
    const char *field;
    switch (dt) {
    case AC_DT_F32: have = tp->n_float_data, field = "float_data"; break;
    case AC_DT_F64: have = tp->n_double_data, field = "double_data"; break;
    case AC_DT_I64: have = tp->n_int64_data, field = "int64_data"; break;
    default: have = tp->n_int32_data, field = "int32_data"; break;
    }
    if ((uint64_t)have != (uint64_t)numel)
        return ac_err_set(err, AC_E_INVALID, "%s: %s holds %zu values, dims need %lld", what, field,
                          have, (long long)numel);
    for (int64_t i = 0; i < numel; i++) {
        switch (dt) {
        case AC_DT_F32: ((float *)out)[i] = tp->float_data[i]; break;
        case AC_DT_F64: ((double *)out)[i] = tp->double_data[i]; break;
        case AC_DT_I64: ((int64_t *)out)[i] = tp->int64_data[i]; break;
        case AC_DT_I32: ((int32_t *)out)[i] = tp->int32_data[i]; break;
        case AC_DT_I16: ((int16_t *)out)[i] = (int16_t)tp->int32_data[i]; break;
        case AC_DT_U16: ((uint16_t *)out)[i] = (uint16_t)tp->int32_data[i]; break;
        case AC_DT_I8: ((int8_t *)out)[i] = (int8_t)tp->int32_data[i]; break;
        case AC_DT_U8: ((uint8_t *)out)[i] = (uint8_t)tp->int32_data[i]; break;
        case AC_DT_BOOL: ((uint8_t *)out)[i] = tp->int32_data[i] != 0; break;
        default: return ac_err_set(err, AC_E_INTERNAL, "%s: unexpected dtype", what);
        }
    }
    return 0;
}

static int decode_tensor(const Onnx__TensorProto *tp, const char *what, decoded_tensor *out,
                         ac_err *err)
{
    memset(out, 0, sizeof *out);
    if ((tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data)
        return ac_err_set(err, AC_E_UNSUPPORTED,
                          "%s: data is stored in an external file (data_location EXTERNAL), which is "
                          "not supported; save the model with its weights inside "
                          "(onnx.save_model(m, path, save_as_external_data=False))",
                          what);
    if (tp->segment)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    if (!tp->has_data_type)
        return ac_err_set(err, AC_E_INVALID, "%s: no data_type", what);
    out->dt = dtype_from_onnx(tp->data_type);
    if (!out->dt)
        return ac_err_set(err, AC_E_UNSUPPORTED,
                          "%s: dtype %s (%d) is not supported (float, double, int8/16/32/64, uint8/16, "
                          "bool are)",
                          what, onnx_dtype_name(tp->data_type), (int)tp->data_type);
    if (tp->n_dims > AC_MAX_DIMS)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: %zu dims, at most %d are supported", what,
                          tp->n_dims, AC_MAX_DIMS);
    out->ndim = (int)tp->n_dims;
    for (int i = 0; i < out->ndim; i++)
        out->dims[i] = tp->dims[i];
    if (dims_numel(out->dims, out->ndim, &out->numel, what, err))
        return err ? (int)err->code : AC_E_INVALID;
    size_t esize = ac_dtype_size(out->dt);
    if (tp->has_raw_data) {
        /* Checked by division so that a huge numel cannot overflow the product. */
        if (tp->raw_data.len % esize || (uint64_t)(tp->raw_data.len / esize) != (uint64_t)out->numel)
            return ac_err_set(err, AC_E_INVALID,
                              "%s: raw_data holds %zu bytes, dims need %lld elements of %zu bytes",
                              what, tp->raw_data.len, (long long)out->numel, esize);
    } else {
        /* Typed fields: the count must equal numel; compared before allocating. */
        size_t have = out->dt == AC_DT_F32   ? tp->n_float_data
                      : out->dt == AC_DT_F64 ? tp->n_double_data
                      : out->dt == AC_DT_I64 ? tp->n_int64_data
                                             : tp->n_int32_data;
        if ((uint64_t)have != (uint64_t)out->numel)
            return copy_typed(tp, out->dt, NULL, out->numel, what, err); /* fills the message */
    }
    out->bytes = (size_t)out->numel * esize;
    if (out->numel == 0)
        return 0;
    out->data = malloc(out->bytes);
    if (!out->data)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu bytes", what, out->bytes);
    if (tp->has_raw_data) {
        memcpy(out->data, tp->raw_data.data, out->bytes);
        if (out->dt == AC_DT_BOOL)
            for (size_t i = 0; i < out->bytes; i++)
                ((uint8_t *)out->data)[i] = ((uint8_t *)out->data)[i] != 0;
        return 0;
    }
    int rc = copy_typed(tp, out->dt, out->data, out->numel, what, err);
    if (rc) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* name -> tensor index map (open addressing over arena-owned names) */

typedef struct {
    int cap, count;
    const char **keys;
    int *vals;
} name_map;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void map_free(name_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int map_find(const name_map *m, const char *key)
{
    if (!m->cap)
        return -1;
    for (size_t i = hash_str(key) & (size_t)(m->cap - 1);; i = (i + 1) & (size_t)(m->cap - 1)) {
        if (!m->keys[i])
            return -1;
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
}

static int map_put(name_map *m, const char *key, int val)
{
    if ((m->count + 1) * 2 > m->cap) {
        int ncap = m->cap ? m->cap * 2 : 256;
        const char **nk = calloc((size_t)ncap, sizeof *nk);
        int *nv = calloc((size_t)ncap, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (int i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t j = hash_str(m->keys[i]) & (size_t)(ncap - 1);
            while (nk[j])
                j = (j + 1) & (size_t)(ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t i = hash_str(key) & (size_t)(m->cap - 1);
    while (m->keys[i])
        i = (i + 1) & (size_t)(m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the loader */

typedef struct {
    ac_graph *g;
    const Onnx__GraphProto *gp;
    const ac_onnx_options *opt;
    ac_err *err;
    name_map map;
    int opset;
    int shapes_changed;     /* an override replaced a fixed dim: declared output dims may differ */
    const char **node_names; /* per NodeProto, arena-owned */
} loader;

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static int nomem(loader *L, const char *what)
{
    return ac_err_set(L->err, AC_E_NOMEM, "out of memory while adding %s", what);
}

/* Adds a tensor whose name must be new; returns its index or -1 with err set. */
static int add_named_tensor(loader *L, const char *name, ac_dtype dt, int ndim, const int64_t *dims,
                            const char *ctx)
{
    int prev = map_find(&L->map, name);
    if (prev >= 0) {
        ac_err_set(L->err, AC_E_INVALID, "%stensor '%s' is defined twice", ctx, name);
        return -1;
    }
    int t = ac_graph_add_tensor(L->g, name, dt, ndim, dims);
    if (t < 0 || map_put(&L->map, L->g->tensors[t].name, t)) {
        nomem(L, name);
        return -1;
    }
    return t;
}

/* A decoded tensor becomes the constant tensor t's shape and data. */
static int set_const_from(loader *L, int t, decoded_tensor *d)
{
    ac_tensor *ts = &L->g->tensors[t];
    ts->dtype = d->dt;
    ts->ndim = d->ndim;
    memcpy(ts->dims, d->dims, sizeof d->dims);
    int rc;
    if (d->numel == 0) {
        /* Keep a non-NULL pointer: data != NULL is what marks a constant. */
        ts->data = ac_arena_alloc(L->g->arena, 1);
        rc = ts->data ? 0 : nomem(L, ts->name);
    } else {
        rc = ac_graph_set_const(L->g, t, d->data, d->bytes, L->err);
    }
    free(d->data);
    d->data = NULL;
    return rc;
}

static int check_versions(loader *L, const Onnx__ModelProto *m)
{
    if (!m->has_ir_version)
        return ac_err_set(L->err, AC_E_INVALID, "model has no ir_version");
    if (m->ir_version < MIN_IR_VERSION || m->ir_version > MAX_IR_VERSION)
        return ac_err_set(L->err, AC_E_UNSUPPORTED,
                          "ir_version %lld is not supported (%d..%d are)", (long long)m->ir_version,
                          MIN_IR_VERSION, MAX_IR_VERSION);
    int found = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *dom = str_or_empty(o->domain);
        if (*dom && strcmp(dom, "ai.onnx") != 0)
            continue; /* other domains: only an error if a node uses them */
        if (found)
            return ac_err_set(L->err, AC_E_INVALID, "opset_import lists the default domain twice");
        if (!o->has_version)
            return ac_err_set(L->err, AC_E_INVALID, "opset_import of the default domain has no version");
        if (o->version < MIN_OPSET || o->version > MAX_OPSET)
            return ac_err_set(L->err, AC_E_UNSUPPORTED,
                              "default-domain opset %lld is not supported (%d..%d are)",
                              (long long)o->version, MIN_OPSET, MAX_OPSET);
        L->opset = (int)o->version;
        found = 1;
    }
    if (!found)
        return ac_err_set(L->err, AC_E_INVALID, "opset_import has no default-domain (\"\" / ai.onnx) entry");
    L->g->opset = L->opset;
    return 0;
}

static int add_initializers(loader *L)
{
    const Onnx__GraphProto *gp = L->gp;
    if (gp->n_sparse_initializer)
        return ac_err_set(L->err, AC_E_UNSUPPORTED, "sparse initializers are not supported (%zu given)",
                          gp->n_sparse_initializer);
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        char what[AC_ONNX_NAME_MAX + 64];
        if (!tp->name || !*tp->name)
            return ac_err_set(L->err, AC_E_INVALID, "initializer #%zu has no name", i);
        snprintf(what, sizeof what, "initializer '%.*s'", AC_ONNX_NAME_MAX, tp->name);
        decoded_tensor d;
        if (decode_tensor(tp, what, &d, L->err))
            return L->err ? (int)L->err->code : AC_E_INVALID;
        int t = add_named_tensor(L, tp->name, d.dt, d.ndim, d.dims, "initializers: ");
        if (t < 0) {
            free(d.data);
            return L->err ? (int)L->err->code : AC_E_INVALID;
        }
        if (set_const_from(L, t, &d))
            return L->err ? (int)L->err->code : AC_E_INVALID;
    }
    return 0;
}

static int is_batch_name(const char *p)
{
    static const char *const names[] = {"n", "batch", "batch_size", "batchsize", "bs", "?"};
    if (!p || !*p)
        return 1;
    if (strncmp(p, "unk__", 5) == 0)
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(p, names[i]) == 0)
            return 1;
    return 0;
}

static int tensor_type_of(const Onnx__TypeProto *tp, const Onnx__TypeProto__Tensor **out);

/* The value the caller binds to input name, or NULL. */
static const ac_onnx_tensor *find_bound(const loader *L, const char *name)
{
    if (!L->opt)
        return NULL;
    for (int i = 0; i < L->opt->nbound; i++)
        if (strcmp(L->opt->bound[i].name, name) == 0)
            return &L->opt->bound[i];
    return NULL;
}

/* A bound input becomes a constant holding the caller's value. */
static int add_bound_input(loader *L, const Onnx__ValueInfoProto *vi, const ac_onnx_tensor *v)
{
    char ctx[AC_ONNX_NAME_MAX + 32];
    snprintf(ctx, sizeof ctx, "input '%.*s' (bound to a value)", AC_ONNX_NAME_MAX, vi->name);
    const Onnx__TypeProto__Tensor *tt;
    if (tensor_type_of(vi->type, &tt))
        return ac_err_set(L->err, AC_E_UNSUPPORTED, "%s: only tensor inputs are supported", ctx);
    if (tt->has_elem_type && (int32_t)v->dtype != tt->elem_type)
        return ac_err_set(L->err, AC_E_INVALID, "%s: the model declares %s, the value is %s", ctx,
                          onnx_dtype_name(tt->elem_type), ac_dtype_name(v->dtype));
    if (tt->shape) {
        int ok = (int)tt->shape->n_dim == v->ndim;
        for (int i = 0; ok && i < v->ndim; i++)
            ok = tt->shape->dim[i]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                 tt->shape->dim[i]->dim_value == v->dims[i];
        if (!ok)
            return ac_err_set(L->err, AC_E_INVALID, "%s: the value's shape differs from the model's",
                              ctx);
    }
    if (v->ndim < 0 || v->ndim > AC_MAX_DIMS)
        return ac_err_set(L->err, AC_E_INVALID, "%s: %d dims", ctx, v->ndim);
    decoded_tensor d = {.dt = v->dtype, .ndim = v->ndim};
    memcpy(d.dims, v->dims, sizeof d.dims);
    if (dims_numel(d.dims, d.ndim, &d.numel, ctx, L->err))
        return L->err->code;
    d.bytes = (size_t)d.numel * ac_dtype_size(d.dt);
    if (!ac_dtype_size(d.dt) || d.bytes != v->bytes || (d.bytes && !v->data))
        return ac_err_set(L->err, AC_E_INVALID, "%s: %zu bytes of data, the shape needs %zu", ctx,
                          v->bytes, d.bytes);
    if (d.bytes) {
        d.data = malloc(d.bytes);
        if (!d.data)
            return nomem(L, ctx);
        memcpy(d.data, v->data, d.bytes);
    }
    int t = add_named_tensor(L, vi->name, d.dt, d.ndim, d.dims, "graph inputs: ");
    if (t < 0) {
        free(d.data);
        return L->err->code;
    }
    return set_const_from(L, t, &d);
}

/* Finds the override for real input k (name), or NULL. */
static const ac_onnx_shape *find_override(loader *L, int k, const char *name)
{
    const ac_onnx_options *o = L->opt;
    if (!o || o->nshapes <= 0)
        return NULL;
    if (o->shapes[0].name[0]) {
        for (int i = 0; i < o->nshapes; i++)
            if (strcmp(o->shapes[i].name, name) == 0)
                return &o->shapes[i];
        return NULL;
    }
    return k < o->nshapes ? &o->shapes[k] : NULL;
}

/* Lists real input names into buf for messages. */
static void input_names(loader *L, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < L->gp->n_input && used + 1 < cap; i++) {
        const char *nm = str_or_empty(L->gp->input[i]->name);
        int t = map_find(&L->map, nm);
        if ((t >= 0 && ac_tensor_is_const(&L->g->tensors[t])) || find_bound(L, nm))
            continue;
        int w = snprintf(buf + used, cap - used, "%s'%s'", used ? ", " : "", nm);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static int check_overrides(loader *L, int nreal)
{
    const ac_onnx_options *o = L->opt;
    if (!o || o->nshapes <= 0)
        return 0;
    char names[512];
    int named = o->shapes[0].name[0] != '\0';
    for (int i = 0; i < o->nshapes; i++) {
        if ((o->shapes[i].name[0] != '\0') != named)
            return ac_err_set(L->err, AC_E_INVALID,
                              "--input_data_shape: give either all shapes with input names or none");
        if (o->shapes[i].ndim < 0 || o->shapes[i].ndim > AC_MAX_DIMS)
            return ac_err_set(L->err, AC_E_INVALID, "--input_data_shape: shape %d has %d dims", i,
                              o->shapes[i].ndim);
        if (named) {
            int t = map_find(&L->map, o->shapes[i].name);
            int found = 0;
            for (size_t j = 0; j < L->gp->n_input && !found; j++)
                found = strcmp(str_or_empty(L->gp->input[j]->name), o->shapes[i].name) == 0;
            if (!found || (t >= 0 && ac_tensor_is_const(&L->g->tensors[t]))) {
                input_names(L, names, sizeof names);
                return ac_err_set(L->err, AC_E_INVALID,
                                  "--input_data_shape names input '%s', which the model does not have "
                                  "(its inputs: %s)",
                                  o->shapes[i].name, names);
            }
        }
    }
    if (!named && o->nshapes > nreal) {
        input_names(L, names, sizeof names);
        return ac_err_set(L->err, AC_E_INVALID,
                          "--input_data_shape gives %d shapes, the model has %d input%s (%s)",
                          o->nshapes, nreal, nreal == 1 ? "" : "s", names);
    }
    return 0;
}

static int tensor_type_of(const Onnx__TypeProto *tp, const Onnx__TypeProto__Tensor **out)
{
    *out = NULL;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return -1;
    *out = tp->tensor_type;
    return 0;
}

static int add_input(loader *L, const Onnx__ValueInfoProto *vi, int k, int *tensor)
{
    const char *name = vi->name;
    char ctx[AC_ONNX_NAME_MAX + 32];
    snprintf(ctx, sizeof ctx, "input '%.*s'", AC_ONNX_NAME_MAX, name);
    const Onnx__TypeProto__Tensor *tt;
    if (tensor_type_of(vi->type, &tt))
        return ac_err_set(L->err, AC_E_UNSUPPORTED,
                          "%s: only tensor inputs are supported (not sequence, map, optional or sparse)",
                          ctx);
    ac_dtype dt = tt->has_elem_type ? dtype_from_onnx(tt->elem_type) : AC_DT_UNDEFINED;
    if (!dt)
        return ac_err_set(L->err, AC_E_UNSUPPORTED, "%s: dtype %s (%d) is not supported", ctx,
                          onnx_dtype_name(tt->elem_type), (int)tt->elem_type);
    const ac_onnx_shape *ov = find_override(L, k, name);
    int ndim = -1;
    int64_t dims[AC_MAX_DIMS] = {0};
    if (tt->shape) {
        if (tt->shape->n_dim > AC_MAX_DIMS)
            return ac_err_set(L->err, AC_E_UNSUPPORTED, "%s: %zu dims, at most %d are supported", ctx,
                              tt->shape->n_dim, AC_MAX_DIMS);
        ndim = (int)tt->shape->n_dim;
        if (ov && ov->ndim != ndim)
            return ac_err_set(L->err, AC_E_INVALID,
                              "%s has %d dims in the model, --input_data_shape gives %d", ctx, ndim,
                              ov->ndim);
        for (int i = 0; i < ndim; i++) {
            const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[i];
            int fixed = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            if (fixed && (dm->dim_value < 0 || dm->dim_value >= ((int64_t)1 << 31)))
                return ac_err_set(L->err, AC_E_INVALID, "%s: dim %d is %lld, must be in [0, 2^31)",
                                  ctx, i, (long long)dm->dim_value);
            if (ov) {
                dims[i] = ov->dims[i];
                if (fixed && dm->dim_value != ov->dims[i])
                    L->shapes_changed = 1;
            } else if (fixed) {
                dims[i] = dm->dim_value;
            } else {
                const char *param =
                    dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dm->dim_param
                                                                                          : NULL;
                if (i == 0 && ndim >= 2 && is_batch_name(param)) {
                    dims[i] = 1; /* the batch: one sample unless the user says otherwise */
                } else {
                    return ac_err_set(L->err, AC_E_INVALID,
                                      "%s: dim %d ('%s') is dynamic; give the input's shape with "
                                      "--input_data_shape, e.g. \"(1,3,224,224)\"",
                                      ctx, i, param && *param ? param : "?");
                }
            }
        }
    } else if (ov) {
        ndim = ov->ndim;
        memcpy(dims, ov->dims, sizeof dims);
    } else {
        return ac_err_set(L->err, AC_E_INVALID,
                          "%s has no shape in the model; give it with --input_data_shape", ctx);
    }
    int64_t numel;
    if (dims_numel(dims, ndim, &numel, ctx, L->err))
        return L->err ? (int)L->err->code : AC_E_INVALID;
    if (numel > AC_ONNX_MAX_NUMEL)
        return ac_err_set(L->err, AC_E_INVALID, "%s: %lld elements, at most 2^31 are supported", ctx,
                          (long long)numel);
    *tensor = add_named_tensor(L, name, dt, ndim, dims, "graph inputs: ");
    return *tensor < 0 ? (L->err ? (int)L->err->code : AC_E_INVALID) : 0;
}

static int add_inputs(loader *L, int **inputs, int *ninputs)
{
    const Onnx__GraphProto *gp = L->gp;
    int nreal = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *nm = gp->input[i]->name;
        if (!nm || !*nm)
            return ac_err_set(L->err, AC_E_INVALID, "graph input #%zu has no name", i);
        int t = map_find(&L->map, nm);
        if (!(t >= 0 && ac_tensor_is_const(&L->g->tensors[t])) && !find_bound(L, nm))
            nreal++;
    }
    for (int i = 0; L->opt && i < L->opt->nbound; i++) {
        int found = 0;
        for (size_t j = 0; j < gp->n_input && !found; j++)
            found = strcmp(gp->input[j]->name, L->opt->bound[i].name) == 0;
        if (!found)
            return ac_err_set(L->err, AC_E_INVALID, "a value is bound to input '%.*s', which the model "
                              "does not have", AC_ONNX_NAME_MAX, L->opt->bound[i].name);
    }
    if (check_overrides(L, nreal))
        return L->err ? (int)L->err->code : AC_E_INVALID;
    *inputs = ac_arena_alloc(L->g->arena, sizeof(int) * (size_t)(nreal ? nreal : 1));
    if (!*inputs)
        return nomem(L, "graph inputs");
    int k = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        int t = map_find(&L->map, gp->input[i]->name);
        if (t >= 0 && ac_tensor_is_const(&L->g->tensors[t]))
            continue; /* an initializer: a constant, not something the caller feeds */
        const ac_onnx_tensor *v = find_bound(L, gp->input[i]->name);
        if (v) {
            if (add_bound_input(L, gp->input[i], v))
                return L->err->code;
            continue;
        }
        if (add_input(L, gp->input[i], k, &(*inputs)[k]))
            return L->err ? (int)L->err->code : AC_E_INVALID;
        k++;
    }
    *ninputs = k;
    return 0;
}

/* "node 'conv1' (Conv, opset 13): " */
static void node_ctx(loader *L, size_t i, char *buf, size_t cap)
{
    const Onnx__NodeProto *np = L->gp->node[i];
    snprintf(buf, cap, "node '%.*s' (%.64s, opset %d): ", AC_ONNX_NAME_MAX, L->node_names[i],
             str_or_empty(np->op_type), L->opset);
}

static int check_node_op(loader *L, size_t i)
{
    const Onnx__NodeProto *np = L->gp->node[i];
    char ctx[AC_ONNX_NAME_MAX + 128];
    node_ctx(L, i, ctx, sizeof ctx);
    const char *dom = str_or_empty(np->domain);
    if (*dom && strcmp(dom, "ai.onnx") != 0)
        return ac_err_set(L->err, AC_E_UNSUPPORTED,
                          "%sdomain '%.64s' is not supported (only the default ONNX domain is)", ctx, dom);
    int v = ac_onnx_op_version(np->op_type, L->opset);
    int idx = op_index(np->op_type);
    if (v == 0 && idx < 0)
        return ac_err_set(L->err, AC_E_UNSUPPORTED, "%soperator %.64s is not supported", ctx,
                          np->op_type);
    if (v == 0)
        return ac_err_set(L->err, AC_E_INVALID, "%s%s does not exist before opset %d", ctx,
                          np->op_type, op_versions[idx].since[0]);
    if (v < 0)
        return ac_err_set(L->err, AC_E_UNSUPPORTED,
                          "%sthe model's opset selects %s-%d, whose definition differs from the one "
                          "implemented (%s-%d); convert the model to opset %d or newer",
                          ctx, np->op_type, op_version_at(idx, L->opset), np->op_type,
                          op_version_at(idx, BASE_OPSET), BASE_OPSET);
    return 0;
}

/* A Constant node's value as a decoded tensor. */
static int constant_value(loader *L, size_t i, decoded_tensor *d)
{
    const Onnx__NodeProto *np = L->gp->node[i];
    char ctx[AC_ONNX_NAME_MAX + 128];
    node_ctx(L, i, ctx, sizeof ctx);
    memset(d, 0, sizeof *d);
    if (np->n_attribute != 1)
        return ac_err_set(L->err, AC_E_INVALID, "%sneeds exactly one value attribute, has %zu", ctx,
                          np->n_attribute);
    const Onnx__AttributeProto *a = np->attribute[0];
    const char *an = str_or_empty(a->name);
    if (strcmp(an, "value") == 0) {
        if (!a->t)
            return ac_err_set(L->err, AC_E_INVALID, "%sattribute 'value' holds no tensor", ctx);
        char what[AC_ONNX_NAME_MAX + 160];
        snprintf(what, sizeof what, "%sattribute 'value'", ctx);
        return decode_tensor(a->t, what, d, L->err);
    }
    int is_float = strcmp(an, "value_float") == 0, is_floats = strcmp(an, "value_floats") == 0;
    int is_int = strcmp(an, "value_int") == 0, is_ints = strcmp(an, "value_ints") == 0;
    if (!is_float && !is_floats && !is_int && !is_ints)
        return ac_err_set(L->err, AC_E_UNSUPPORTED,
                          "%sattribute '%.64s' is not supported (value, value_float(s), value_int(s) are)",
                          ctx, an);
    size_t n = is_float || is_int ? 1 : is_floats ? a->n_floats : a->n_ints;
    if ((is_floats || is_ints) && n > ((size_t)1 << 40))
        return ac_err_set(L->err, AC_E_INVALID, "%stoo many values", ctx);
    d->dt = is_float || is_floats ? AC_DT_F32 : AC_DT_I64;
    d->ndim = is_float || is_int ? 0 : 1;
    d->dims[0] = (int64_t)n;
    d->numel = (int64_t)n;
    d->bytes = n * ac_dtype_size(d->dt);
    if (n == 0)
        return 0;
    d->data = malloc(d->bytes);
    if (!d->data)
        return nomem(L, "a Constant value");
    if (is_float)
        ((float *)d->data)[0] = a->f;
    else if (is_int)
        ((int64_t *)d->data)[0] = a->i;
    else if (is_floats)
        memcpy(d->data, a->floats, d->bytes);
    else
        memcpy(d->data, a->ints, d->bytes);
    return 0;
}

/* Pass 1: every node output becomes a tensor (Constant outputs get their data). */
static int add_node_outputs(loader *L)
{
    const Onnx__GraphProto *gp = L->gp;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        char ctx[AC_ONNX_NAME_MAX + 128];
        node_ctx(L, i, ctx, sizeof ctx);
        if (check_node_op(L, i))
            return L->err ? (int)L->err->code : AC_E_INVALID;
        int is_const = strcmp(np->op_type, "Constant") == 0;
        if (is_const && (np->n_output != 1 || !np->output[0] || !*np->output[0]))
            return ac_err_set(L->err, AC_E_INVALID, "%sneeds exactly one named output", ctx);
        for (size_t j = 0; j < np->n_output; j++) {
            const char *on = np->output[j];
            if (!on || !*on)
                continue; /* an optional output the model does not use */
            int t = add_named_tensor(L, on, AC_DT_UNDEFINED, -1, NULL, ctx);
            if (t < 0)
                return L->err ? (int)L->err->code : AC_E_INVALID;
            if (is_const) {
                decoded_tensor d;
                if (constant_value(L, i, &d) || set_const_from(L, t, &d))
                    return L->err ? (int)L->err->code : AC_E_INVALID;
            }
        }
    }
    return 0;
}

static const char *attr_type_name(Onnx__AttributeProto__AttributeType t)
{
    switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "GRAPH";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "GRAPHS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return "STRINGS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "SPARSE_TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "SPARSE_TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "TYPE_PROTO";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "TYPE_PROTOS";
    default: return "UNDEFINED";
    }
}

/* A TENSOR attribute becomes a constant tensor named "<node>:<attr>". */
static int add_tensor_attr(loader *L, const char *ctx, const char *node_name,
                           const Onnx__AttributeProto *a, ac_attr *out)
{
    if (!a->t)
        return ac_err_set(L->err, AC_E_INVALID, "%sattribute '%.64s' of type TENSOR holds no tensor",
                          ctx, a->name);
    char what[AC_ONNX_NAME_MAX + 256];
    snprintf(what, sizeof what, "%sattribute '%.64s'", ctx, a->name);
    decoded_tensor d;
    if (decode_tensor(a->t, what, &d, L->err))
        return L->err ? (int)L->err->code : AC_E_INVALID;
    char tname[2 * AC_ONNX_NAME_MAX + 32];
    snprintf(tname, sizeof tname, "%.*s:%.64s", AC_ONNX_NAME_MAX, node_name, a->name);
    /* Unique among file names (all known by now); attribute tensors are not looked up by name. */
    for (int k = 2; map_find(&L->map, tname) >= 0 || ac_graph_find_tensor(L->g, tname) >= 0; k++)
        snprintf(tname, sizeof tname, "%.*s:%.64s#%d", AC_ONNX_NAME_MAX, node_name, a->name, k);
    int t = ac_graph_add_tensor(L->g, tname, d.dt, d.ndim, d.dims);
    if (t < 0) {
        free(d.data);
        return nomem(L, tname);
    }
    out->tensor = t;
    return set_const_from(L, t, &d);
}

static int add_attrs(loader *L, size_t i, ac_node *n)
{
    const Onnx__NodeProto *np = L->gp->node[i];
    char ctx[AC_ONNX_NAME_MAX + 128];
    node_ctx(L, i, ctx, sizeof ctx);
    for (size_t k = 0; k < np->n_attribute; k++) {
        const Onnx__AttributeProto *a = np->attribute[k];
        if (!a->name || !*a->name)
            return ac_err_set(L->err, AC_E_INVALID, "%sattribute #%zu has no name", ctx, k);
        if (a->ref_attr_name && *a->ref_attr_name)
            return ac_err_set(L->err, AC_E_INVALID,
                              "%sattribute '%.64s' refers to a function attribute outside a function",
                              ctx, a->name);
        if (ac_node_attr(n, a->name))
            return ac_err_set(L->err, AC_E_INVALID, "%sattribute '%.64s' is given twice", ctx, a->name);
        if (!a->has_type)
            return ac_err_set(L->err, AC_E_INVALID, "%sattribute '%.64s' has no type", ctx, a->name);
        ac_attr_type at;
        switch (a->type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: at = AC_ATTR_INT; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: at = AC_ATTR_FLOAT; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: at = AC_ATTR_INTS; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: at = AC_ATTR_FLOATS; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: at = AC_ATTR_STRING; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: at = AC_ATTR_TENSOR; break;
        default:
            return ac_err_set(L->err, AC_E_UNSUPPORTED, "%sattribute '%.64s' of type %s is not supported",
                              ctx, a->name, attr_type_name(a->type));
        }
        size_t count = at == AC_ATTR_INTS ? a->n_ints : at == AC_ATTR_FLOATS ? a->n_floats : 0;
        if (count > INT_MAX / 8)
            return ac_err_set(L->err, AC_E_INVALID, "%sattribute '%.64s' has too many values", ctx,
                              a->name);
        ac_attr *out = ac_node_add_attr(L->g, n, a->name, at);
        if (!out || !out->name)
            return nomem(L, "an attribute");
        switch (at) {
        case AC_ATTR_INT: out->i = a->i; break;
        case AC_ATTR_FLOAT: out->f = a->f; break;
        case AC_ATTR_INTS:
            out->n = (int)count;
            /* An empty list has no array in the message: allocate, then copy what there is. */
            out->ints = ac_arena_alloc(L->g->arena, sizeof(int64_t) * (count ? count : 1));
            if (!out->ints)
                return nomem(L, "an attribute");
            if (count)
                memcpy(out->ints, a->ints, sizeof(int64_t) * count);
            break;
        case AC_ATTR_FLOATS:
            out->n = (int)count;
            out->floats = ac_arena_alloc(L->g->arena, sizeof(float) * (count ? count : 1));
            if (!out->floats)
                return nomem(L, "an attribute");
            if (count)
                memcpy(out->floats, a->floats, sizeof(float) * count);
            break;
        case AC_ATTR_STRING:
            out->s = ac_arena_strndup(L->g->arena, a->has_s ? (const char *)a->s.data : "",
                                      a->has_s ? a->s.len : 0);
            if (!out->s)
                return nomem(L, "an attribute");
            break;
        case AC_ATTR_TENSOR:
            if (add_tensor_attr(L, ctx, n->name, a, out))
                return L->err ? (int)L->err->code : AC_E_INVALID;
            break;
        }
    }
    return 0;
}

/* Pass 2: the nodes themselves, with inputs resolved by name. */
static int add_nodes(loader *L)
{
    const Onnx__GraphProto *gp = L->gp;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (strcmp(np->op_type, "Constant") == 0)
            continue; /* already a constant tensor */
        char ctx[AC_ONNX_NAME_MAX + 128];
        node_ctx(L, i, ctx, sizeof ctx);
        if (np->n_input > 4096 || np->n_output > 4096)
            return ac_err_set(L->err, AC_E_INVALID, "%s%zu inputs and %zu outputs, at most 4096 each",
                              ctx, np->n_input, np->n_output);
        int *ins = malloc(sizeof(int) * (np->n_input + 1));
        int *outs = malloc(sizeof(int) * (np->n_output + 1));
        if (!ins || !outs) {
            free(ins);
            free(outs);
            return nomem(L, "a node");
        }
        int rc = 0;
        for (size_t j = 0; j < np->n_input && !rc; j++) {
            const char *in = np->input[j];
            ins[j] = -1; /* empty name: an absent optional input */
            if (in && *in) {
                ins[j] = map_find(&L->map, in);
                if (ins[j] < 0)
                    rc = ac_err_set(L->err, AC_E_INVALID,
                                    "%sinput '%.*s' is not a graph input, initializer or node output",
                                    ctx, AC_ONNX_NAME_MAX, in);
            }
        }
        for (size_t j = 0; j < np->n_output && !rc; j++)
            outs[j] = np->output[j] && *np->output[j] ? map_find(&L->map, np->output[j]) : -1;
        int idx = -1;
        if (!rc) {
            idx = ac_graph_add_node(L->g, L->node_names[i], np->op_type, ac_op_from_onnx(np->op_type),
                                    (int)np->n_input, ins, (int)np->n_output, outs);
            if (idx < 0)
                rc = nomem(L, "a node");
        }
        free(ins);
        free(outs);
        if (rc)
            return rc;
        if (add_attrs(L, i, &L->g->nodes[idx]))
            return L->err ? (int)L->err->code : AC_E_INVALID;
    }
    return 0;
}

static int name_nodes(loader *L)
{
    const Onnx__GraphProto *gp = L->gp;
    L->node_names = ac_arena_alloc(L->g->arena, sizeof(char *) * (gp->n_node + 1));
    if (!L->node_names)
        return nomem(L, "node names");
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (!np->op_type || !*np->op_type)
            return ac_err_set(L->err, AC_E_INVALID, "node #%zu ('%.*s') has no op_type", i,
                              AC_ONNX_NAME_MAX, str_or_empty(np->name));
        char buf[AC_ONNX_NAME_MAX + 32];
        if (np->name && *np->name)
            L->node_names[i] = ac_arena_strdup(L->g->arena, np->name);
        else {
            snprintf(buf, sizeof buf, "%.64s_%zu", np->op_type, i);
            L->node_names[i] = ac_arena_strdup(L->g->arena, buf);
        }
        if (!L->node_names[i])
            return nomem(L, "node names");
    }
    return 0;
}

static int add_outputs(loader *L, int **outputs, int *noutputs)
{
    const Onnx__GraphProto *gp = L->gp;
    if (gp->n_output == 0)
        return ac_err_set(L->err, AC_E_INVALID, "graph has no outputs");
    *outputs = ac_arena_alloc(L->g->arena, sizeof(int) * gp->n_output);
    if (!*outputs)
        return nomem(L, "graph outputs");
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *nm = gp->output[i]->name;
        if (!nm || !*nm)
            return ac_err_set(L->err, AC_E_INVALID, "graph output #%zu has no name", i);
        int t = map_find(&L->map, nm);
        if (t < 0)
            return ac_err_set(L->err, AC_E_INVALID,
                              "graph output '%.*s' is not a graph input, initializer or node output",
                              AC_ONNX_NAME_MAX, nm);
        for (size_t j = 0; j < i; j++)
            if ((*outputs)[j] == t)
                return ac_err_set(L->err, AC_E_INVALID, "graph output '%.*s' is listed twice",
                                  AC_ONNX_NAME_MAX, nm);
        const Onnx__TypeProto__Tensor *tt;
        if (gp->output[i]->type && tensor_type_of(gp->output[i]->type, &tt))
            return ac_err_set(L->err, AC_E_UNSUPPORTED,
                              "graph output '%.*s': only tensor outputs are supported", AC_ONNX_NAME_MAX,
                              nm);
        (*outputs)[i] = t;
    }
    *noutputs = (int)gp->n_output;
    return 0;
}

static void format_dims(char *buf, size_t cap, int ndim, const int64_t *dims)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

/* After shape inference: what the file declares for its outputs must agree. */
static int check_declared_outputs(loader *L)
{
    const Onnx__GraphProto *gp = L->gp;
    for (size_t i = 0; i < gp->n_output; i++) {
        const ac_tensor *t = &L->g->tensors[L->g->outputs[i]];
        const Onnx__TypeProto__Tensor *tt;
        if (tensor_type_of(gp->output[i]->type, &tt))
            continue;
        if (tt->has_elem_type && tt->elem_type != 0 && t->dtype != AC_DT_UNDEFINED &&
            (int32_t)t->dtype != tt->elem_type)
            return ac_err_set(L->err, AC_E_INVALID,
                              "graph output '%s': the model declares dtype %s, shape inference gives %s",
                              t->name, onnx_dtype_name(tt->elem_type), ac_dtype_name(t->dtype));
        if (!tt->shape || L->shapes_changed || t->ndim < 0)
            continue;
        int mismatch = (int)tt->shape->n_dim != t->ndim;
        for (int d = 0; d < t->ndim && !mismatch; d++) {
            const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
            if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                dm->dim_value != t->dims[d])
                mismatch = 1;
        }
        if (mismatch) {
            char have[160], want[160] = "[";
            format_dims(have, sizeof have, t->ndim, t->dims);
            size_t used = 1;
            for (size_t d = 0; d < tt->shape->n_dim && used < sizeof want; d++) {
                const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
                if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
                    used += (size_t)snprintf(want + used, sizeof want - used, "%s%lld", d ? "," : "",
                                             (long long)dm->dim_value);
                else
                    used += (size_t)snprintf(want + used, sizeof want - used, "%s?", d ? "," : "");
            }
            if (used < sizeof want)
                snprintf(want + used, sizeof want - used, "]");
            return ac_err_set(L->err, AC_E_INVALID,
                              "graph output '%s': the model declares shape %s, shape inference gives %s",
                              t->name, want, have);
        }
    }
    return 0;
}

static int build_graph(loader *L, const Onnx__ModelProto *m)
{
    if (check_versions(L, m))
        return L->err->code;
    if (!m->graph)
        return ac_err_set(L->err, AC_E_INVALID, "model has no graph");
    L->gp = m->graph;
    int *inputs = NULL, *outputs = NULL, ninputs = 0, noutputs = 0;
    if (add_initializers(L) || add_inputs(L, &inputs, &ninputs) || name_nodes(L) ||
        add_node_outputs(L) || add_nodes(L) || add_outputs(L, &outputs, &noutputs))
        return L->err->code;
    if (ac_graph_set_io(L->g, ninputs, inputs, noutputs, outputs))
        return nomem(L, "graph inputs and outputs");
    /* metadata_props: kept for the tools downstream (e.g. a Darknet import's YOLO heads) */
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = m->metadata_props[i];
        if (e->key && e->value && ac_graph_set_meta(L->g, e->key, e->value))
            return nomem(L, "metadata");
    }
    if (ac_graph_toposort(L->g, L->err))
        return L->err->code;
    if (L->opt && L->opt->skip_shape_inference)
        return 0;
    if (ac_graph_infer_shapes(L->g, L->err))
        return L->err->code;
    return check_declared_outputs(L);
}

ac_graph *ac_onnx_load_buffer(const void *buf, size_t len, const char *name,
                              const ac_onnx_options *opt, ac_err *err)
{
    ac_err local;
    if (!err)
        err = &local;
    ac_err_clear(err);
    if (!name)
        name = "model";
    ProtobufCMessage *msg = NULL;
    if (unpack_checked(&onnx__model_proto__descriptor, buf, len, "ONNX model", &msg, err)) {
        ac_err_prefix(err, "%s: ", name);
        return NULL;
    }
    const Onnx__ModelProto *m = (const Onnx__ModelProto *)msg;
    loader L = {0};
    L.opt = opt;
    L.err = err;
    L.g = ac_graph_new(name);
    int rc = L.g ? build_graph(&L, m) : ac_err_set(err, AC_E_NOMEM, "out of memory for the graph");
    map_free(&L.map);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rc) {
        if (!err->code)
            ac_err_set(err, (ac_status)rc, "load failed");
        ac_err_prefix(err, "%s: ", name);
        ac_graph_destroy(&L.g);
        return NULL;
    }
    return L.g;
}

ac_graph *ac_onnx_load(const char *path, const ac_onnx_options *opt, ac_err *err)
{
    char *buf;
    size_t len;
    if (ac_model_file_read(path, (size_t)2 << 30, "protobuf", &buf, &len, err))
        return NULL;
    /* Messages name the file by its base name, as users know it. */
    const char *base = strrchr(path, '/');
    ac_graph *g = ac_onnx_load_buffer(buf, len, base ? base + 1 : path, opt, err);
    free(buf);
    return g;
}

/* ------------------------------------------------------------------------ */
/* standalone TensorProto files */

int ac_onnx_tensor_from_buffer(const void *buf, size_t len, const char *name, ac_onnx_tensor *t,
                               ac_err *err)
{
    memset(t, 0, sizeof *t);
    if (!name)
        name = "tensor";
    ProtobufCMessage *msg = NULL;
    if (unpack_checked(&onnx__tensor_proto__descriptor, buf, len, "ONNX TensorProto", &msg, err))
        return ac_err_prefix(err, "%s: ", name);
    const Onnx__TensorProto *tp = (const Onnx__TensorProto *)msg;
    char what[AC_ONNX_NAME_MAX + 64];
    snprintf(what, sizeof what, "%s: tensor '%.*s'", name, AC_ONNX_NAME_MAX, str_or_empty(tp->name));
    decoded_tensor d;
    int rc = decode_tensor(tp, what, &d, err);
    if (!rc) {
        snprintf(t->name, sizeof t->name, "%s", str_or_empty(tp->name));
        t->dtype = d.dt;
        t->ndim = d.ndim;
        memcpy(t->dims, d.dims, sizeof d.dims);
        t->data = d.data;
        t->bytes = d.bytes;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

int ac_onnx_load_tensor_pb(const char *path, ac_onnx_tensor *t, ac_err *err)
{
    memset(t, 0, sizeof *t);
    char *buf;
    size_t len;
    if (ac_model_file_read(path, (size_t)2 << 30, "protobuf", &buf, &len, err))
        return err ? (int)err->code : AC_E_IO;
    int rc = ac_onnx_tensor_from_buffer(buf, len, path, t, err);
    free(buf);
    return rc;
}

void ac_onnx_tensor_free(ac_onnx_tensor *t)
{
    if (!t)
        return;
    free(t->data);
    t->data = NULL;
    t->bytes = 0;
}
