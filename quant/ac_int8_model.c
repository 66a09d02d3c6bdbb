/* ac_int8_model: see ac_int8_model.h and docs/int8-model-format.md (the
 * section numbers below are that document's). */
#include "ac_int8_model.h"

#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_mpack.h"
#include "ac_onnx.h"
#include "ac_ops.h"

/* Tensor data, biases and weights are stored as the host's bytes; the format
 * says little-endian (§2). */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ac_int8_model stores raw little-endian arrays: port the byte copies for this host"
#endif

/* Reader limits (§2): beyond these a file is refused rather than allocated. */
#define MAX_TENSOR_BYTES ((int64_t)1 << 32)
#define MAX_DIM ((int64_t)1 << 31)
#define MAX_NAME 4096

/* ---- stable names of the plan's enums (§6) ------------------------------------------------ */

/* The file stores enum values by these names, not by number, so reordering
 * ac_plan.h's enums cannot silently change a file's meaning. Adding a value
 * there must add its name here (the asserts fail otherwise). */
_Static_assert(AC_WHY_COUNT == 17, "add the new ac_fp32_reason to reason_ids");
_Static_assert(AC_Q8_MOVE == 13, "add the new ac_q8_kind to kind_ids");

static const char *const reason_ids[AC_WHY_COUNT] = {
    [AC_WHY_NONE] = "none",
    [AC_WHY_FORCED] = "forced",
    [AC_WHY_ACCURACY_OPT] = "accuracy_opt",
    [AC_WHY_FIRST_CONV] = "first_conv",
    [AC_WHY_SHIFT] = "shift",
    [AC_WHY_STRIDE] = "stride",
    [AC_WHY_POOL_AREA] = "pool_area",
    [AC_WHY_ADD_MULT] = "add_multiplier",
    [AC_WHY_MUL_MULT] = "mul_multiplier",
    [AC_WHY_REQUANT] = "requant",
    [AC_WHY_SLOPE] = "slope",
    [AC_WHY_ACCUMULATOR] = "accumulator",
    [AC_WHY_NO_INT8_FORM] = "no_int8_form",
    [AC_WHY_NOT_ACTIVATION] = "not_activation",
    [AC_WHY_RANGE] = "range",
    [AC_WHY_FOLLOWS_FP32] = "follows_fp32",
    [AC_WHY_FUSED_ACT] = "fused_activation",
};

static const char *const kind_ids[AC_Q8_MOVE + 1] = {
    [AC_Q8_NONE] = "none",
    [AC_Q8_CONV] = "conv",
    [AC_Q8_FC] = "fc",
    [AC_Q8_ADD] = "add",
    [AC_Q8_MUL] = "mul",
    [AC_Q8_CONCAT] = "concat",
    [AC_Q8_MAXPOOL] = "maxpool",
    [AC_Q8_AVGPOOL] = "avgpool",
    [AC_Q8_GLOBAL_AVGPOOL] = "global_avgpool",
    [AC_Q8_GLOBAL_MAXPOOL] = "global_maxpool",
    [AC_Q8_CLAMP] = "clamp",
    [AC_Q8_PRELU] = "prelu",
    [AC_Q8_LUT] = "lut",
    [AC_Q8_MOVE] = "move",
};

static const char *const attr_type_ids[] = {
    [AC_ATTR_INT] = "int",       [AC_ATTR_FLOAT] = "float",   [AC_ATTR_INTS] = "ints",
    [AC_ATTR_FLOATS] = "floats", [AC_ATTR_STRING] = "string", [AC_ATTR_TENSOR] = "tensor",
};
#define N_ATTR_TYPES ((int)(sizeof attr_type_ids / sizeof attr_type_ids[0]))

/* ---- per-node parameters as named fields (§6.2) -------------------------------------------- */

/* The writer packs these fields; the reader parses the stored ones into the
 * same form and compares them with the fields of the rebuilt plan. One
 * function (node_fields) therefore defines the parameter layout for both. */
typedef enum { F_NIL, F_BOOL, F_INT, F_INTS, F_BIN } ftype;

static const char *ftype_name(ftype t)
{
    static const char *const names[] = {"nil", "bool", "integer", "integer array", "binary"};
    return names[t];
}

#define KEY_MAX 24
#define MAX_FIELDS 8

typedef struct {
    char key[KEY_MAX];
    ftype type;
    int64_t i;            /* F_BOOL (0/1), F_INT */
    int64_t *ints;        /* F_INTS, malloc'ed (owned) */
    size_t n;
    const uint8_t *bin;   /* F_BIN, not owned */
    size_t len;
} pfield;

typedef struct {
    int n;
    pfield f[MAX_FIELDS];
} pfields;

static void pfields_free(pfields *fs)
{
    for (int i = 0; i < fs->n; i++)
        free(fs->f[i].ints);
    fs->n = 0;
}

static pfield *add_field(pfields *fs, const char *key, ftype type)
{
    pfield *f = &fs->f[fs->n++]; /* node_fields never adds more than MAX_FIELDS */
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->type = type;
    return f;
}

static void add_bool(pfields *fs, const char *key, bool v)
{
    add_field(fs, key, F_BOOL)->i = v;
}

static void add_int(pfields *fs, const char *key, int64_t v)
{
    add_field(fs, key, F_INT)->i = v;
}

static void add_bin(pfields *fs, const char *key, const void *p, size_t len)
{
    if (!p) {
        add_field(fs, key, F_NIL);
        return;
    }
    pfield *f = add_field(fs, key, F_BIN);
    f->bin = p;
    f->len = len;
}

/* An integer array filled by the caller; false when out of memory. */
static int64_t *add_ints(pfields *fs, const char *key, size_t n)
{
    pfield *f = add_field(fs, key, F_INTS);
    f->ints = malloc(sizeof(int64_t) * (n ? n : 1));
    f->n = n;
    return f->ints;
}

static bool add_ints_i32(pfields *fs, const char *key, const int32_t *v, size_t n)
{
    int64_t *d = add_ints(fs, key, n);
    for (size_t i = 0; d && i < n; i++)
        d[i] = v[i];
    return d != NULL;
}

/* The integer parameters of node i of the plan (none for fp32 nodes). Shapes
 * and strides are not stored: they follow from the graph. false: out of memory. */
static bool node_fields(const ac_plan *p, int i, pfields *fs)
{
    const ac_node_plan *np = &p->nodes[i];
    const ac_node *n = &p->g->nodes[i];
    bool ok = true;
    fs->n = 0;
    if (np->mode != AC_MODE_INT8)
        return true;
    switch (np->kind) {
    case AC_Q8_CONV:
    case AC_Q8_FC: {
        bool conv = np->kind == AC_Q8_CONV;
        const ac_conv_q8_params *cp = &np->u.conv;
        const ac_fc_q8_params *fp = &np->u.fc;
        int64_t cout = conv ? cp->s.c_out : fp->n;
        int64_t k = conv ? (int64_t)(cp->s.c_in / cp->s.groups) * cp->s.kh * cp->s.kw : fp->k;
        add_bool(fs, "x_signed", conv ? cp->x_signed : fp->x_signed);
        add_bool(fs, "y_signed", conv ? cp->y_signed : fp->y_signed);
        add_bool(fs, "relu", conv ? cp->relu : fp->relu);
        add_int(fs, "clip_hi", conv ? cp->clip_hi : fp->clip_hi);
        add_bin(fs, "weights", conv ? (const void *)cp->w : (const void *)fp->w, (size_t)(cout * k));
        add_bin(fs, "bias", conv ? (const void *)cp->bias : (const void *)fp->bias,
                sizeof(int16_t) * (size_t)cout);
        ok = add_ints_i32(fs, "rshift", conv ? cp->rshift : fp->rshift, (size_t)cout);
        break;
    }
    case AC_Q8_ADD: {
        const ac_add_q8_params *ap = &np->u.add;
        int64_t *s = add_ints(fs, "in_signed", (size_t)ap->ninputs);
        for (int j = 0; s && j < ap->ninputs; j++)
            s[j] = ap->in_signed[j];
        add_bool(fs, "y_signed", ap->y_signed);
        add_bool(fs, "relu", ap->relu);
        ok = s && add_ints_i32(fs, "m", ap->m, (size_t)ap->ninputs) &&
             add_ints_i32(fs, "r", ap->r, (size_t)ap->ninputs);
        break;
    }
    case AC_Q8_MUL:
        add_bool(fs, "a_signed", np->u.mul.a_signed);
        add_bool(fs, "b_signed", np->u.mul.b_signed);
        add_bool(fs, "y_signed", np->u.mul.y_signed);
        add_int(fs, "m", np->u.mul.m);
        add_int(fs, "r", np->u.mul.r);
        break;
    case AC_Q8_CONCAT: {
        size_t ni = (size_t)n->ninputs;
        const ac_requant_q8_params *rq = np->u.concat.rq;
        int64_t *xs = add_ints(fs, "x_signed", ni), *ys = add_ints(fs, "y_signed", ni);
        int64_t *m = add_ints(fs, "m", ni), *r = add_ints(fs, "r", ni);
        ok = xs && ys && m && r;
        for (size_t j = 0; ok && j < ni; j++) {
            xs[j] = rq[j].x_signed;
            ys[j] = rq[j].y_signed;
            m[j] = rq[j].m;
            r[j] = rq[j].r;
        }
        break;
    }
    case AC_Q8_AVGPOOL:
        add_bool(fs, "x_signed", np->u.avgpool.x_signed);
        add_bool(fs, "y_signed", np->u.avgpool.y_signed);
        add_int(fs, "k", np->u.avgpool.k);
        add_int(fs, "m", np->u.avgpool.m);
        add_int(fs, "e", np->u.avgpool.e);
        break;
    case AC_Q8_GLOBAL_AVGPOOL:
        add_bool(fs, "x_signed", np->u.gavg.x_signed);
        add_bool(fs, "y_signed", np->u.gavg.y_signed);
        add_int(fs, "k", np->u.gavg.len);
        add_int(fs, "m", np->u.gavg.m);
        add_int(fs, "e", np->u.gavg.e);
        break;
    case AC_Q8_CLAMP:
        add_bool(fs, "x_signed", np->u.clamp.x_signed);
        add_bool(fs, "y_signed", np->u.clamp.y_signed);
        add_int(fs, "lo", np->u.clamp.lo);
        add_int(fs, "hi", np->u.clamp.hi);
        break;
    case AC_Q8_PRELU:
        add_bool(fs, "x_signed", np->u.prelu.x_signed);
        add_bool(fs, "y_signed", np->u.prelu.y_signed);
        ok = add_ints_i32(fs, "m", np->u.prelu.m, (size_t)np->u.prelu.channels);
        add_int(fs, "r", np->u.prelu.r);
        break;
    case AC_Q8_LUT: {
        add_bool(fs, "x_signed", np->u.lut.x_signed);
        add_bool(fs, "y_signed", np->u.lut.y_signed);
        int64_t *t = add_ints(fs, "table", 256);
        for (int j = 0; t && j < 256; j++)
            t[j] = np->u.lut.table[j];
        ok = t != NULL;
        break;
    }
    default: /* maxpool, global maxpool, move: codes only move, no parameters */
        break;
    }
    if (!ok)
        pfields_free(fs);
    return ok;
}

/* ---- writer (§3-§6) ------------------------------------------------------------------------- */

typedef struct {
    msgpack_packer pk;
    int rc; /* sticky: non-zero after the first failed pack */
} wr;

static void w_str(wr *w, const char *s)
{
    size_t n = strlen(s);
    if (!w->rc)
        w->rc = msgpack_pack_str(&w->pk, n) || msgpack_pack_str_body(&w->pk, s, n);
}

static void w_map(wr *w, size_t n)
{
    if (!w->rc)
        w->rc = msgpack_pack_map(&w->pk, n);
}

static void w_array(wr *w, size_t n)
{
    if (!w->rc)
        w->rc = msgpack_pack_array(&w->pk, n);
}

static void w_int(wr *w, int64_t v)
{
    if (!w->rc)
        w->rc = msgpack_pack_int64(&w->pk, v);
}

static void w_bool(wr *w, bool v)
{
    if (!w->rc)
        w->rc = v ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk);
}

static void w_nil(wr *w)
{
    if (!w->rc)
        w->rc = msgpack_pack_nil(&w->pk);
}

static void w_f32(wr *w, float v)
{
    if (!w->rc)
        w->rc = msgpack_pack_float(&w->pk, v);
}

static void w_f64(wr *w, double v)
{
    if (!w->rc)
        w->rc = msgpack_pack_double(&w->pk, v);
}

static void w_bin(wr *w, const void *p, size_t n)
{
    if (!w->rc)
        w->rc = msgpack_pack_bin(&w->pk, n) || (n && msgpack_pack_bin_body(&w->pk, p, n));
}

static void w_tensor(wr *w, const ac_tensor *t)
{
    w_map(w, 4);
    w_str(w, "name");
    w_str(w, t->name);
    w_str(w, "dtype");
    w_int(w, t->dtype);
    w_str(w, "dims");
    if (t->ndim < 0) {
        w_nil(w);
    } else {
        w_array(w, (size_t)t->ndim);
        for (int d = 0; d < t->ndim; d++)
            w_int(w, t->dims[d]);
    }
    w_str(w, "data");
    if (t->data)
        w_bin(w, t->data, ac_tensor_bytes(t));
    else
        w_nil(w);
}

static void w_attr(wr *w, const ac_attr *a)
{
    w_map(w, 3);
    w_str(w, "name");
    w_str(w, a->name);
    w_str(w, "type");
    w_str(w, attr_type_ids[a->type]);
    w_str(w, "value");
    switch (a->type) {
    case AC_ATTR_INT: w_int(w, a->i); break;
    case AC_ATTR_FLOAT: w_f32(w, a->f); break;
    case AC_ATTR_INTS:
        w_array(w, (size_t)a->n);
        for (int k = 0; k < a->n; k++)
            w_int(w, a->ints[k]);
        break;
    case AC_ATTR_FLOATS:
        w_array(w, (size_t)a->n);
        for (int k = 0; k < a->n; k++)
            w_f32(w, a->floats[k]);
        break;
    case AC_ATTR_STRING: w_str(w, a->s ? a->s : ""); break;
    case AC_ATTR_TENSOR: w_int(w, a->tensor); break;
    }
}

static void w_node(wr *w, const ac_node *n)
{
    w_map(w, 6);
    w_str(w, "name");
    w_str(w, n->name);
    w_str(w, "op_type");
    w_str(w, n->op_type);
    w_str(w, "op");
    w_str(w, ac_op_name(n->op));
    w_str(w, "inputs");
    w_array(w, (size_t)n->ninputs);
    for (int k = 0; k < n->ninputs; k++)
        w_int(w, n->inputs[k]);
    w_str(w, "outputs");
    w_array(w, (size_t)n->noutputs);
    for (int k = 0; k < n->noutputs; k++)
        w_int(w, n->outputs[k]);
    w_str(w, "attrs");
    w_array(w, (size_t)n->nattrs);
    for (int k = 0; k < n->nattrs; k++)
        w_attr(w, &n->attrs[k]);
}

static void w_graph(wr *w, const ac_graph *g)
{
    w_map(w, 6);
    w_str(w, "name");
    w_str(w, g->name ? g->name : "");
    w_str(w, "opset");
    w_int(w, g->opset);
    w_str(w, "tensors");
    w_array(w, (size_t)g->ntensors);
    for (int t = 0; t < g->ntensors; t++)
        w_tensor(w, &g->tensors[t]);
    w_str(w, "nodes");
    w_array(w, (size_t)g->nnodes);
    for (int i = 0; i < g->nnodes; i++)
        w_node(w, &g->nodes[i]);
    w_str(w, "inputs");
    w_array(w, (size_t)g->ninputs);
    for (int i = 0; i < g->ninputs; i++)
        w_int(w, g->inputs[i]);
    w_str(w, "outputs");
    w_array(w, (size_t)g->noutputs);
    for (int i = 0; i < g->noutputs; i++)
        w_int(w, g->outputs[i]);
}

static void w_options(wr *w, const ac_quant_options *o)
{
    w_map(w, 4);
    w_str(w, "per_channel");
    w_bool(w, o->per_channel);
    w_str(w, "accuracy_opt");
    w_bool(w, o->accuracy_opt);
    w_str(w, "first_conv_fp32");
    w_bool(w, o->first_conv_fp32);
    w_str(w, "fp32_layers");
    int n = o->fp32_layers ? o->n_fp32_layers : 0;
    w_array(w, (size_t)n);
    for (int i = 0; i < n; i++)
        w_str(w, o->fp32_layers[i]);
}

static void w_table(wr *w, const ac_calib_table *t)
{
    size_t n = t ? ac_calib_table_size(t) : 0;
    w_array(w, n);
    for (size_t i = 0; i < n; i++) {
        const ac_calib_entry *e = ac_calib_table_at(t, i);
        w_array(w, 4);
        w_str(w, e->name);
        w_f64(w, e->th);
        w_f64(w, e->min);
        w_f64(w, e->max);
    }
}

static void w_fields(wr *w, const pfields *fs)
{
    w_map(w, (size_t)fs->n);
    for (int i = 0; i < fs->n; i++) {
        const pfield *f = &fs->f[i];
        w_str(w, f->key);
        switch (f->type) {
        case F_NIL: w_nil(w); break;
        case F_BOOL: w_bool(w, f->i != 0); break;
        case F_INT: w_int(w, f->i); break;
        case F_BIN: w_bin(w, f->bin, f->len); break;
        case F_INTS:
            w_array(w, f->n);
            for (size_t k = 0; k < f->n; k++)
                w_int(w, f->ints[k]);
            break;
        }
    }
}

static int w_plan(wr *w, const ac_plan *p, ac_err *err)
{
    w_array(w, (size_t)p->g->nnodes);
    for (int i = 0; i < p->g->nnodes; i++) {
        const ac_node_plan *np = &p->nodes[i];
        pfields fs;
        if (!node_fields(p, i, &fs))
            return ac_err_set(err, AC_E_NOMEM, "out of memory encoding node '%s'",
                              p->g->nodes[i].name);
        w_map(w, 7);
        w_str(w, "node");
        w_str(w, p->g->nodes[i].name);
        w_str(w, "mode");
        w_str(w, np->mode == AC_MODE_INT8 ? "int8" : "fp32");
        w_str(w, "reason");
        w_str(w, np->why >= 0 && np->why < AC_WHY_COUNT ? reason_ids[np->why] : "none");
        w_str(w, "detail");
        w_str(w, np->detail);
        w_str(w, "kind");
        w_str(w, np->kind >= 0 && np->kind <= AC_Q8_MOVE ? kind_ids[np->kind] : "none");
        w_str(w, "per_channel");
        w_bool(w, np->per_channel);
        w_str(w, "params");
        w_fields(w, &fs);
        pfields_free(&fs);
    }
    return 0;
}

int ac_int8_model_encode(const ac_plan *p, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wr w = {.rc = 0};
    msgpack_packer_init(&w.pk, &sb, msgpack_sbuffer_write);
    w_map(&w, 7);
    w_str(&w, "format"); /* first, so that files are recognised by their first bytes (§3) */
    w_str(&w, AC_INT8_MODEL_FORMAT);
    w_str(&w, "version");
    w_int(&w, AC_INT8_MODEL_VERSION);
    w_str(&w, "producer");
    w_str(&w, AC_INT8_MODEL_PRODUCER);
    w_str(&w, "graph");
    w_graph(&w, p->g);
    w_str(&w, "options");
    w_options(&w, &p->opt);
    w_str(&w, "calibration_table");
    w_table(&w, p->shared);
    w_str(&w, "plan");
    int rc = w_plan(&w, p, err);
    if (!rc && w.rc)
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory encoding the int8 model");
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    *buf = (uint8_t *)sb.data; /* malloc'ed by the sbuffer; the caller frees it */
    *len = sb.size;
    return AC_OK;
}

int ac_int8_model_write(const char *path, const ac_plan *p, ac_err *err)
{
    uint8_t *buf;
    size_t len;
    int rc = ac_int8_model_encode(p, &buf, &len, err);
    if (rc)
        return rc;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(buf);
        return ac_err_set(err, AC_E_NOMEM, "out of memory writing %s", path);
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = ac_err_set(err, AC_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        bool ok = fwrite(buf, 1, len, f) == len;
        ok = (fflush(f) == 0) && ok;
        ok = (fsync(fileno(f)) == 0) && ok;
        ok = (fclose(f) == 0) && ok;
        if (!ok)
            rc = ac_err_set(err, AC_E_IO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            rc = ac_err_set(err, AC_E_IO, "%s: cannot rename to %s: %s", tmp, path,
                            strerror(errno));
        if (rc)
            remove(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}

/* ---- detection -------------------------------------------------------------------------------- */

bool ac_int8_model_detect_bytes(const void *buf, size_t len)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint8_t tag = len ? ((const uint8_t *)buf)[0] : 0;
    bool is_map = (tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf;
    if (!is_map || ac_mpack_peek(&r) != AC_MPACK_MAP)
        return false;
    /* Skip the map header without the length check (only a prefix may be given). */
    size_t hdr = tag == 0xde ? 3 : tag == 0xdf ? 5 : 1;
    if (len < hdr)
        return false;
    ac_mpack_reader_init(&r, (const uint8_t *)buf + hdr, len - hdr);
    return ac_mpack_read_str_eq(&r, "format") && ac_mpack_read_str_eq(&r, AC_INT8_MODEL_FORMAT);
}

bool ac_int8_model_detect(const char *path)
{
    uint8_t head[64];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return ac_int8_model_detect_bytes(head, n);
}

/* ---- reader ------------------------------------------------------------------------------------ */

struct ac_int8_model {
    ac_graph *g;
    ac_plan *plan;
    const char *producer;   /* in g->arena */
};

typedef struct {
    ac_mpack_reader r;
    const char *name; /* the file, for messages */
    ac_err *err;
    ac_graph *g;
} rd;

__attribute__((format(printf, 3, 4))) static int bad_code(rd *d, ac_status code, const char *fmt,
                                                          ...)
{
    char msg[AC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ac_err_set(d->err, code, "%s: %s", d->name, msg);
}

#define bad(d, ...) bad_code(d, AC_E_INVALID, __VA_ARGS__)

/* Map header with exactly n pairs. */
static int rd_map_n(rd *d, const char *where, uint32_t n)
{
    uint32_t got;
    ac_mpack_type t = ac_mpack_peek(&d->r);
    if (!ac_mpack_read_map(&d->r, &got))
        return bad(d, "%s: expected a map of %u entries, got %s", where, n,
                   t == AC_MPACK_MAP ? "a truncated map" : ac_mpack_type_name(t));
    if (got != n)
        return bad(d, "%s: expected a map of %u entries, got %u", where, n, got);
    return 0;
}

/* The next key must be `key` (keys come in the documented order, §2). */
static int rd_key(rd *d, const char *where, const char *key)
{
    if (ac_mpack_read_str_eq(&d->r, key))
        return 0;
    return bad(d, "%s: expected the key \"%s\" here (keys come in the documented order)", where,
               key);
}

static int rd_count(rd *d, const char *where, uint32_t *n)
{
    ac_mpack_type t = ac_mpack_peek(&d->r);
    if (!ac_mpack_read_array(&d->r, n))
        return bad(d, "%s: expected an array, got %s", where,
                   t == AC_MPACK_ARRAY ? "a truncated array" : ac_mpack_type_name(t));
    return 0;
}

static int rd_i64(rd *d, const char *where, int64_t lo, int64_t hi, int64_t *v)
{
    ac_mpack_type t = ac_mpack_peek(&d->r);
    if (!ac_mpack_read_int(&d->r, v))
        return bad(d, "%s: expected an integer, got %s", where,
                   t == AC_MPACK_INT ? "a truncated or too large integer" : ac_mpack_type_name(t));
    if (*v < lo || *v > hi)
        return bad(d, "%s: %lld is outside [%lld, %lld]", where, (long long)*v, (long long)lo,
                   (long long)hi);
    return 0;
}

static int rd_bool(rd *d, const char *where, bool *v)
{
    if (!ac_mpack_read_bool(&d->r, v))
        return bad(d, "%s: expected a bool, got %s", where,
                   ac_mpack_type_name(ac_mpack_peek(&d->r)));
    return 0;
}

/* A string without NUL bytes, copied into the graph's arena. */
static int rd_string(rd *d, const char *where, bool nonempty, const char **out)
{
    const char *s;
    size_t len;
    ac_mpack_type t = ac_mpack_peek(&d->r);
    if (!ac_mpack_read_str(&d->r, &s, &len))
        return bad(d, "%s: expected a string, got %s", where,
                   t == AC_MPACK_STR ? "a truncated string" : ac_mpack_type_name(t));
    if (memchr(s, '\0', len))
        return bad(d, "%s: string holds a NUL byte", where);
    if (nonempty && len == 0)
        return bad(d, "%s: must not be empty", where);
    if (len > MAX_NAME)
        return bad(d, "%s: string of %zu bytes (at most %d)", where, len, MAX_NAME);
    *out = ac_arena_strndup(d->g->arena, s, len);
    if (!*out)
        return bad_code(d, AC_E_NOMEM, "%s: out of memory", where);
    return 0;
}

/* An index into the tensors, or -1 when allow_absent. */
static int rd_tensor_index(rd *d, const char *where, bool allow_absent, int *t)
{
    int64_t v;
    if (rd_i64(d, where, allow_absent ? -1 : 0, (int64_t)d->g->ntensors - 1, &v))
        return d->err->code;
    *t = (int)v;
    return 0;
}

static int rd_tensor(rd *d, uint32_t i)
{
    char where[96];
    snprintf(where, sizeof where, "graph.tensors[%u]", i);
    const char *name;
    int64_t dtype;
    if (rd_map_n(d, where, 4) || rd_key(d, where, "name") || rd_string(d, where, true, &name))
        return d->err->code;
    char at[MAX_NAME + 128];
    snprintf(at, sizeof at, "graph.tensors[%u] '%s'", i, name);
    if (rd_key(d, at, "dtype") || rd_i64(d, at, 0, 64, &dtype))
        return d->err->code;
    if (dtype != AC_DT_UNDEFINED && ac_dtype_size((ac_dtype)dtype) == 0)
        return bad(d, "%s.dtype: %lld is not a supported element type", at, (long long)dtype);
    if (rd_key(d, at, "dims"))
        return d->err->code;
    int ndim = -1;
    int64_t dims[AC_MAX_DIMS] = {0};
    if (!ac_mpack_read_nil(&d->r)) {
        uint32_t nd;
        if (rd_count(d, at, &nd))
            return d->err->code;
        if (nd > AC_MAX_DIMS)
            return bad(d, "%s.dims: %u dims (at most %d)", at, nd, AC_MAX_DIMS);
        ndim = (int)nd;
        int64_t numel = 1;
        for (int k = 0; k < ndim; k++) {
            if (rd_i64(d, at, 0, MAX_DIM, &dims[k]))
                return d->err->code;
            numel = numel > MAX_TENSOR_BYTES || dims[k] > MAX_TENSOR_BYTES ? MAX_TENSOR_BYTES + 1
                                                                           : numel * dims[k];
        }
        if (numel > MAX_TENSOR_BYTES)
            return bad(d, "%s.dims: more than %lld elements", at, (long long)MAX_TENSOR_BYTES);
    }
    int t = ac_graph_add_tensor(d->g, name, (ac_dtype)dtype, ndim, dims);
    if (t < 0)
        return bad_code(d, AC_E_NOMEM, "%s: out of memory", at);
    if (rd_key(d, at, "data"))
        return d->err->code;
    if (ac_mpack_read_nil(&d->r))
        return 0;
    const uint8_t *b;
    size_t len;
    if (!ac_mpack_read_bin(&d->r, &b, &len))
        return bad(d, "%s.data: expected nil or binary data, got %s", at,
                   ac_mpack_type_name(ac_mpack_peek(&d->r)));
    const ac_tensor *ts = &d->g->tensors[t];
    if (ndim < 0 || dtype == AC_DT_UNDEFINED)
        return bad(d, "%s.data: a constant needs a dtype and dims", at);
    if (len != ac_tensor_bytes(ts))
        return bad(d, "%s.data: %zu bytes, but %s with these dims needs %zu", at, len,
                   ac_dtype_name(ts->dtype), ac_tensor_bytes(ts));
    ac_err e = {0};
    if (ac_graph_set_const(d->g, t, b, len, &e))
        return bad_code(d, e.code, "%s", e.msg);
    return 0;
}

static int rd_attr(rd *d, ac_node *n, const char *at, uint32_t k)
{
    char where[MAX_NAME + 160];
    snprintf(where, sizeof where, "%s.attrs[%u]", at, k);
    const char *name, *type;
    if (rd_map_n(d, where, 3) || rd_key(d, where, "name") || rd_string(d, where, true, &name) ||
        rd_key(d, where, "type") || rd_string(d, where, true, &type) || rd_key(d, where, "value"))
        return d->err->code;
    snprintf(where, sizeof where, "%s attribute '%s'", at, name);
    int ty = -1;
    for (int i = 0; i < N_ATTR_TYPES; i++)
        if (strcmp(type, attr_type_ids[i]) == 0)
            ty = i;
    if (ty < 0)
        return bad(d, "%s: type \"%s\" is not one of int, float, ints, floats, string, tensor",
                   where, type);
    if (ac_node_attr(n, name))
        return bad(d, "%s: given twice", where);
    ac_attr *a = ac_node_add_attr(d->g, n, name, (ac_attr_type)ty);
    if (!a)
        return bad_code(d, AC_E_NOMEM, "%s: out of memory", where);
    uint32_t cnt;
    switch (a->type) {
    case AC_ATTR_INT: return rd_i64(d, where, INT64_MIN, INT64_MAX, &a->i);
    case AC_ATTR_FLOAT:
        if (!ac_mpack_read_f32(&d->r, &a->f))
            return bad(d, "%s: expected a float32, got %s", where,
                       ac_mpack_type_name(ac_mpack_peek(&d->r)));
        return 0;
    case AC_ATTR_STRING: return rd_string(d, where, false, &a->s);
    case AC_ATTR_TENSOR: {
        int t = -1;
        if (rd_tensor_index(d, where, false, &t))
            return d->err->code;
        if (!ac_tensor_is_const(&d->g->tensors[t]))
            return bad(d, "%s: tensor %d '%s' is not a constant", where, t,
                       d->g->tensors[t].name);
        a->tensor = t;
        return 0;
    }
    case AC_ATTR_INTS:
    case AC_ATTR_FLOATS:
        if (rd_count(d, where, &cnt))
            return d->err->code;
        if (cnt > INT_MAX / 8)
            return bad(d, "%s: %u values", where, cnt);
        a->n = (int)cnt;
        if (a->type == AC_ATTR_INTS) {
            a->ints = ac_arena_alloc(d->g->arena, sizeof(int64_t) * (cnt ? cnt : 1));
            if (!a->ints)
                return bad_code(d, AC_E_NOMEM, "%s: out of memory", where);
            for (uint32_t j = 0; j < cnt; j++)
                if (rd_i64(d, where, INT64_MIN, INT64_MAX, &a->ints[j]))
                    return d->err->code;
        } else {
            a->floats = ac_arena_alloc(d->g->arena, sizeof(float) * (cnt ? cnt : 1));
            if (!a->floats)
                return bad_code(d, AC_E_NOMEM, "%s: out of memory", where);
            for (uint32_t j = 0; j < cnt; j++)
                if (!ac_mpack_read_f32(&d->r, &a->floats[j]))
                    return bad(d, "%s[%u]: expected a float32, got %s", where, j,
                               ac_mpack_type_name(ac_mpack_peek(&d->r)));
        }
        return 0;
    }
    return 0;
}

/* An array of tensor indices into a malloc'ed buffer. */
static int rd_index_list(rd *d, const char *where, bool allow_absent, int **out, int *n)
{
    uint32_t cnt;
    *out = NULL;
    if (rd_count(d, where, &cnt))
        return d->err->code;
    int *v = malloc(sizeof(int) * (cnt ? cnt : 1));
    if (!v)
        return bad_code(d, AC_E_NOMEM, "%s: out of memory", where);
    for (uint32_t k = 0; k < cnt; k++) {
        char at[MAX_NAME + 200];
        snprintf(at, sizeof at, "%s[%u]", where, k);
        if (rd_tensor_index(d, at, allow_absent, &v[k])) {
            free(v);
            return d->err->code;
        }
    }
    *out = v;
    *n = (int)cnt;
    return 0;
}

static int rd_node(rd *d, uint32_t i)
{
    char where[96];
    snprintf(where, sizeof where, "graph.nodes[%u]", i);
    const char *name, *op_type, *op_name;
    if (rd_map_n(d, where, 6) || rd_key(d, where, "name") || rd_string(d, where, true, &name))
        return d->err->code;
    char at[MAX_NAME + 128];
    snprintf(at, sizeof at, "graph.nodes[%u] '%s'", i, name);
    if (rd_key(d, at, "op_type") || rd_string(d, at, true, &op_type) || rd_key(d, at, "op") ||
        rd_string(d, at, true, &op_name))
        return d->err->code;
    ac_op op = ac_op_from_onnx(op_name);
    if (op == AC_OP_UNKNOWN)
        return bad_code(d, AC_E_UNSUPPORTED, "%s.op: \"%s\" is not an operator this version knows",
                        at, op_name);
    int *ins = NULL, *outs = NULL, nin = 0, nout = 0;
    char f[MAX_NAME + 160];
    snprintf(f, sizeof f, "%s.inputs", at);
    if (rd_key(d, at, "inputs") || rd_index_list(d, f, true, &ins, &nin))
        return d->err->code;
    snprintf(f, sizeof f, "%s.outputs", at);
    if (rd_key(d, at, "outputs") || rd_index_list(d, f, true, &outs, &nout)) {
        free(ins);
        return d->err->code;
    }
    int idx = ac_graph_add_node(d->g, name, op_type, op, nin, ins, nout, outs);
    free(ins);
    free(outs);
    if (idx < 0)
        return bad_code(d, AC_E_NOMEM, "%s: out of memory", at);
    uint32_t na;
    if (rd_key(d, at, "attrs") || rd_count(d, at, &na))
        return d->err->code;
    for (uint32_t k = 0; k < na; k++)
        if (rd_attr(d, &d->g->nodes[idx], at, k))
            return d->err->code;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names must be unique (tables and the CLI find tensors by name). */
static int check_unique(rd *d, const char *what, const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return bad(d, "graph.%s: the name '%s' is used twice", what, names[i]);
    return 0;
}

static int rd_graph(rd *d)
{
    int64_t opset;
    uint32_t nt, nn;
    const char *s;
    size_t len;
    if (rd_map_n(d, "graph", 6) || rd_key(d, "graph", "name"))
        return d->err->code;
    if (!ac_mpack_read_str(&d->r, &s, &len) || memchr(s, '\0', len) || len > MAX_NAME)
        return bad(d, "graph.name: expected a string without NUL bytes");
    /* The graph (and its arena) is created with its name. */
    char *tmp = malloc(len + 1);
    if (!tmp)
        return bad_code(d, AC_E_NOMEM, "graph.name: out of memory");
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    d->g = ac_graph_new(tmp);
    free(tmp);
    if (!d->g)
        return bad_code(d, AC_E_NOMEM, "graph: out of memory");
    if (rd_key(d, "graph", "opset") || rd_i64(d, "graph.opset", 1, 1000, &opset))
        return d->err->code;
    d->g->opset = (int)opset;
    if (rd_key(d, "graph", "tensors") || rd_count(d, "graph.tensors", &nt))
        return d->err->code;
    if (nt > INT_MAX / 2)
        return bad(d, "graph.tensors: %u tensors", nt);
    for (uint32_t i = 0; i < nt; i++)
        if (rd_tensor(d, i))
            return d->err->code;
    if (rd_key(d, "graph", "nodes") || rd_count(d, "graph.nodes", &nn))
        return d->err->code;
    if (nn > INT_MAX / 2)
        return bad(d, "graph.nodes: %u nodes", nn);
    for (uint32_t i = 0; i < nn; i++)
        if (rd_node(d, i))
            return d->err->code;
    int *ins = NULL, *outs = NULL, nin = 0, nout = 0;
    if (rd_key(d, "graph", "inputs") || rd_index_list(d, "graph.inputs", false, &ins, &nin))
        return d->err->code;
    if (rd_key(d, "graph", "outputs") || rd_index_list(d, "graph.outputs", false, &outs, &nout)) {
        free(ins);
        return d->err->code;
    }
    int rc = 0;
    for (int i = 0; i < nin && !rc; i++)
        if (ac_tensor_is_const(&d->g->tensors[ins[i]]) || d->g->tensors[ins[i]].ndim < 0)
            rc = bad(d, "graph.inputs[%d]: tensor '%s' is a constant or has no dims", i,
                     d->g->tensors[ins[i]].name);
    if (!rc && ac_graph_set_io(d->g, nin, ins, nout, outs))
        rc = bad_code(d, AC_E_NOMEM, "graph: out of memory");
    free(ins);
    free(outs);
    if (rc)
        return rc;
    int nnames = d->g->ntensors > d->g->nnodes ? d->g->ntensors : d->g->nnodes;
    const char **names = malloc(sizeof *names * (size_t)(nnames ? nnames : 1));
    if (!names)
        return bad_code(d, AC_E_NOMEM, "graph: out of memory");
    for (int t = 0; t < d->g->ntensors; t++)
        names[t] = d->g->tensors[t].name;
    rc = check_unique(d, "tensors", names, d->g->ntensors);
    for (int i = 0; !rc && i < d->g->nnodes; i++)
        names[i] = d->g->nodes[i].name;
    if (!rc)
        rc = check_unique(d, "nodes", names, d->g->nnodes);
    free(names);
    return rc;
}

/* Toposort and shape inference of the stored graph; the result must be the
 * stored graph (same node order, same dtypes and dims). */
static int rebuild_graph(rd *d)
{
    ac_graph *g = d->g;
    int nnodes = g->nnodes;
    /* A stored graph is already folded (it was simplified before it was
     * planned): a node that shape inference would fold means the file was not
     * written by a writer of this format; folding it could also allocate
     * whatever a crafted ConstantOfShape asks for. */
    for (int i = 0; i < nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        bool all_const = true;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] >= 0 && !ac_tensor_is_const(&g->tensors[n->inputs[k]]))
                all_const = false;
        if (all_const || n->op == AC_OP_SHAPE)
            return bad(d, "graph.nodes[%d] '%s' (%s): would be constant-folded; a stored graph "
                       "is already folded", i, n->name, n->op_type);
    }
    /* Keep the stored tensors and node order to compare with the rebuilt ones. */
    ac_tensor *stored = malloc(sizeof *stored * (size_t)(g->ntensors ? g->ntensors : 1));
    const char **order = malloc(sizeof *order * (size_t)(nnodes ? nnodes : 1));
    if (!stored || !order) {
        free(stored);
        free(order);
        return bad_code(d, AC_E_NOMEM, "graph: out of memory");
    }
    memcpy(stored, g->tensors, sizeof *stored * (size_t)g->ntensors);
    for (int i = 0; i < nnodes; i++)
        order[i] = g->nodes[i].name;
    ac_err e = {0};
    int rc = 0;
    if (ac_graph_toposort(g, &e) || ac_graph_infer_shapes(g, &e))
        rc = bad_code(d, e.code ? e.code : AC_E_INVALID, "graph: %s", e.msg);
    if (!rc && g->nnodes != nnodes)
        rc = bad(d, "graph: shape inference changed the node count (%d -> %d)", nnodes,
                 g->nnodes);
    /* The plan is indexed by node: the stored order must be a topological order. */
    for (int i = 0; !rc && i < nnodes; i++)
        if (g->nodes[i].name != order[i])
            rc = bad(d, "graph.nodes[%d] '%s': the nodes are not in topological order", i,
                     order[i]);
    for (int t = 0; !rc && t < g->ntensors; t++) {
        const ac_tensor *a = &stored[t], *b = &g->tensors[t];
        bool same = a->ndim == b->ndim && a->dtype == b->dtype;
        for (int k = 0; same && k < a->ndim; k++)
            same = a->dims[k] == b->dims[k];
        if (!same)
            rc = bad(d, "graph.tensors[%d] '%s': stored as %s with %d dims, shape inference "
                     "gives %s with %d dims (or other sizes)", t, a->name,
                     ac_dtype_name(a->dtype), a->ndim, ac_dtype_name(b->dtype), b->ndim);
        else if (ac_tensor_numel(b) > MAX_TENSOR_BYTES ||
                 (int64_t)ac_tensor_bytes(b) > MAX_TENSOR_BYTES)
            rc = bad(d, "graph.tensors[%d] '%s': more than %lld bytes", t, b->name,
                     (long long)MAX_TENSOR_BYTES);
    }
    free(stored);
    free(order);
    return rc;
}

static int rd_options(rd *d, ac_quant_options *o)
{
    uint32_t n;
    memset(o, 0, sizeof *o);
    if (rd_map_n(d, "options", 4) || rd_key(d, "options", "per_channel") ||
        rd_bool(d, "options.per_channel", &o->per_channel) ||
        rd_key(d, "options", "accuracy_opt") ||
        rd_bool(d, "options.accuracy_opt", &o->accuracy_opt) ||
        rd_key(d, "options", "first_conv_fp32") ||
        rd_bool(d, "options.first_conv_fp32", &o->first_conv_fp32) ||
        rd_key(d, "options", "fp32_layers") || rd_count(d, "options.fp32_layers", &n))
        return d->err->code;
    const char **names = ac_arena_alloc(d->g->arena, sizeof *names * (n ? n : 1));
    if (!names)
        return bad_code(d, AC_E_NOMEM, "options.fp32_layers: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "options.fp32_layers[%u]", i);
        if (rd_string(d, where, true, &names[i]))
            return d->err->code;
    }
    o->fp32_layers = names;
    o->n_fp32_layers = (int)n;
    return 0;
}

static int rd_table(rd *d, ac_calib_table **out)
{
    uint32_t n;
    if (rd_count(d, "calibration_table", &n))
        return d->err->code;
    ac_calib_table *t = ac_calib_table_new();
    if (!t)
        return bad_code(d, AC_E_NOMEM, "calibration_table: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "calibration_table[%u]", i);
        uint32_t four;
        const char *name;
        double v[3];
        static const char *const what[3] = {"threshold", "min", "max"};
        if (rd_count(d, where, &four))
            goto fail;
        if (four != 4) {
            bad(d, "%s: expected [name, threshold, min, max], got %u elements", where, four);
            goto fail;
        }
        if (rd_string(d, where, true, &name))
            goto fail;
        for (int k = 0; k < 3; k++)
            if (!ac_mpack_read_f64(&d->r, &v[k])) {
                bad(d, "%s '%s': %s: expected a float64, got %s", where, name, what[k],
                    ac_mpack_type_name(ac_mpack_peek(&d->r)));
                goto fail;
            }
        ac_err e = {0};
        if (ac_calib_table_set(t, name, v[0], v[1], v[2], &e)) {
            bad_code(d, e.code, "%s: %s", where, e.msg);
            goto fail;
        }
        if (ac_calib_table_size(t) != (size_t)i + 1) {
            bad(d, "%s: tensor '%s' is listed twice", where, name);
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    ac_calib_table_destroy(&t);
    return d->err->code;
}

/* One stored plan entry (§6), kept until the rebuilt plan is compared with it. */
typedef struct {
    ac_node_mode mode;
    ac_fp32_reason why;
    ac_q8_kind kind;
    bool per_channel;
    pfields params;
} stored_node;

static int find_id(const char *const *ids, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (ids[i] && strcmp(ids[i], s) == 0)
            return i;
    return -1;
}

static int rd_param(rd *d, const char *at, pfields *fs)
{
    const char *key;
    size_t klen;
    if (!ac_mpack_read_str(&d->r, &key, &klen) || klen == 0 || klen >= KEY_MAX ||
        memchr(key, '\0', klen))
        return bad(d, "%s.params: expected a parameter name (a string of 1 to %d bytes)", at,
                   KEY_MAX - 1);
    pfield *f = &fs->f[fs->n++];
    memset(f, 0, sizeof *f);
    memcpy(f->key, key, klen);
    for (int i = 0; i < fs->n - 1; i++)
        if (strcmp(fs->f[i].key, f->key) == 0)
            return bad(d, "%s.params: '%s' given twice", at, f->key);
    ac_mpack_type t = ac_mpack_peek(&d->r);
    bool b;
    uint32_t n;
    switch (t) {
    case AC_MPACK_NIL:
        ac_mpack_read_nil(&d->r);
        f->type = F_NIL;
        return 0;
    case AC_MPACK_BOOL:
        ac_mpack_read_bool(&d->r, &b);
        f->type = F_BOOL;
        f->i = b;
        return 0;
    case AC_MPACK_INT:
        f->type = F_INT;
        if (!ac_mpack_read_int(&d->r, &f->i))
            return bad(d, "%s.params.%s: integer out of range or truncated", at, f->key);
        return 0;
    case AC_MPACK_BIN:
        f->type = F_BIN;
        if (!ac_mpack_read_bin(&d->r, &f->bin, &f->len))
            return bad(d, "%s.params.%s: truncated binary", at, f->key);
        return 0;
    case AC_MPACK_ARRAY:
        f->type = F_INTS;
        if (!ac_mpack_read_array(&d->r, &n))
            return bad(d, "%s.params.%s: truncated array", at, f->key);
        f->ints = malloc(sizeof(int64_t) * (n ? n : 1));
        if (!f->ints)
            return bad_code(d, AC_E_NOMEM, "%s.params.%s: out of memory", at, f->key);
        f->n = n;
        for (uint32_t k = 0; k < n; k++)
            if (!ac_mpack_read_int(&d->r, &f->ints[k]))
                return bad(d, "%s.params.%s[%u]: expected an integer", at, f->key, k);
        return 0;
    default:
        return bad(d, "%s.params.%s: expected nil, bool, integer, binary or an integer array, "
                   "got %s", at, f->key, ac_mpack_type_name(t));
    }
}

static int rd_plan_node(rd *d, int i, stored_node *sn)
{
    const ac_node *n = &d->g->nodes[i];
    char where[64];
    snprintf(where, sizeof where, "plan[%d]", i);
    const char *name, *mode, *reason, *detail, *kind;
    if (rd_map_n(d, where, 7) || rd_key(d, where, "node") || rd_string(d, where, true, &name))
        return d->err->code;
    if (strcmp(name, n->name) != 0)
        return bad(d, "%s: node '%s', but graph.nodes[%d] is '%s'", where, name, i, n->name);
    char at[MAX_NAME + 64];
    snprintf(at, sizeof at, "plan[%d] '%s'", i, name);
    if (rd_key(d, at, "mode") || rd_string(d, at, true, &mode) || rd_key(d, at, "reason") ||
        rd_string(d, at, true, &reason) || rd_key(d, at, "detail") ||
        rd_string(d, at, false, &detail) || rd_key(d, at, "kind") ||
        rd_string(d, at, true, &kind) || rd_key(d, at, "per_channel") ||
        rd_bool(d, at, &sn->per_channel))
        return d->err->code;
    if (strcmp(mode, "int8") != 0 && strcmp(mode, "fp32") != 0)
        return bad(d, "%s.mode: \"%s\" is neither \"int8\" nor \"fp32\"", at, mode);
    sn->mode = mode[0] == 'i' ? AC_MODE_INT8 : AC_MODE_FP32;
    int why = find_id(reason_ids, AC_WHY_COUNT, reason);
    if (why < 0)
        return bad(d, "%s.reason: \"%s\" is not a known reason", at, reason);
    sn->why = (ac_fp32_reason)why;
    int k = find_id(kind_ids, AC_Q8_MOVE + 1, kind);
    if (k < 0)
        return bad(d, "%s.kind: \"%s\" is not a known int8 kind", at, kind);
    sn->kind = (ac_q8_kind)k;
    uint32_t np;
    if (rd_key(d, at, "params"))
        return d->err->code;
    if (!ac_mpack_read_map(&d->r, &np))
        return bad(d, "%s.params: expected a map", at);
    if (np > MAX_FIELDS)
        return bad(d, "%s.params: %u parameters (at most %d)", at, np, MAX_FIELDS);
    for (uint32_t j = 0; j < np; j++)
        if (rd_param(d, at, &sn->params))
            return d->err->code;
    return 0;
}

#define MISMATCH "file written by a different version or corrupted"

/* A field of the rebuilt plan against the stored one. */
static int verify_field(rd *d, const ac_node *n, const pfield *want, const pfield *got)
{
    if (strcmp(want->key, got->key) != 0)
        return bad(d, "node '%s' (%s): parameter '%s' expected, the file has '%s' (" MISMATCH ")",
                   n->name, n->op_type, want->key, got->key);
    if (want->type != got->type)
        return bad(d, "node '%s' (%s): parameter '%s' is %s in the file, %s in the rebuilt plan "
                   "(" MISMATCH ")", n->name, n->op_type, want->key, ftype_name(got->type),
                   ftype_name(want->type));
    switch (want->type) {
    case F_NIL: return 0;
    case F_BOOL:
    case F_INT:
        if (want->i != got->i)
            return bad(d, "node '%s' (%s): parameter '%s' is %lld in the file, %lld in the "
                       "rebuilt plan (" MISMATCH ")", n->name, n->op_type, want->key,
                       (long long)got->i, (long long)want->i);
        return 0;
    case F_INTS:
    case F_BIN: {
        bool ints = want->type == F_INTS;
        size_t nw = ints ? want->n : want->len, ng = ints ? got->n : got->len;
        if (nw != ng)
            return bad(d, "node '%s' (%s): parameter '%s' has %zu %s in the file, %zu in the "
                       "rebuilt plan (" MISMATCH ")", n->name, n->op_type, want->key, ng,
                       ints ? "values" : "bytes", nw);
        for (size_t k = 0; k < nw; k++) {
            int64_t a = ints ? want->ints[k] : want->bin[k];
            int64_t b = ints ? got->ints[k] : got->bin[k];
            if (a != b && ints)
                return bad(d, "node '%s' (%s): parameter '%s' differs at element %zu (file "
                           "%lld, rebuilt %lld) (" MISMATCH ")", n->name, n->op_type, want->key,
                           k, (long long)b, (long long)a);
            if (a != b)
                return bad(d, "node '%s' (%s): parameter '%s' differs at byte %zu (file 0x%02x, "
                           "rebuilt 0x%02x) (" MISMATCH ")", n->name, n->op_type, want->key, k,
                           (unsigned)b, (unsigned)a);
        }
        return 0;
    }
    }
    return 0;
}

static int verify_node(rd *d, const ac_plan *p, int i, const stored_node *sn)
{
    const ac_node *n = &p->g->nodes[i];
    const ac_node_plan *np = &p->nodes[i];
    if (sn->mode != np->mode || sn->why != np->why)
        return bad(d, "node '%s' (%s): the file says %s (%s), the rebuilt plan %s (%s) (" MISMATCH
                   ")", n->name, n->op_type, sn->mode == AC_MODE_INT8 ? "int8" : "fp32",
                   reason_ids[sn->why], np->mode == AC_MODE_INT8 ? "int8" : "fp32",
                   reason_ids[np->why]);
    if (sn->kind != np->kind)
        return bad(d, "node '%s' (%s): kind is %s in the file, %s in the rebuilt plan (" MISMATCH
                   ")", n->name, n->op_type, kind_ids[sn->kind], kind_ids[np->kind]);
    if (sn->per_channel != np->per_channel)
        return bad(d, "node '%s' (%s): per_channel differs from the rebuilt plan (" MISMATCH ")",
                   n->name, n->op_type);
    pfields want;
    if (!node_fields(p, i, &want))
        return bad_code(d, AC_E_NOMEM, "node '%s': out of memory", n->name);
    int rc = 0;
    for (int k = 0; k < want.n && !rc; k++) {
        if (k >= sn->params.n)
            rc = bad(d, "node '%s' (%s): parameter '%s' is missing (" MISMATCH ")", n->name,
                     n->op_type, want.f[k].key);
        else
            rc = verify_field(d, n, &want.f[k], &sn->params.f[k]);
    }
    if (!rc && sn->params.n > want.n)
        rc = bad(d, "node '%s' (%s): unexpected parameter '%s' (" MISMATCH ")", n->name,
                 n->op_type, sn->params.f[want.n].key);
    pfields_free(&want);
    return rc;
}

/* The rebuilt plan's shared table must be the stored one, entry by entry. */
static int verify_table(rd *d, const ac_calib_table *stored, const ac_calib_table *rebuilt)
{
    size_t n = ac_calib_table_size(stored);
    if (ac_calib_table_size(rebuilt) != n)
        return bad(d, "calibration_table: %zu entries, threshold sharing gives %zu (" MISMATCH ")",
                   n, ac_calib_table_size(rebuilt));
    for (size_t i = 0; i < n; i++) {
        const ac_calib_entry *a = ac_calib_table_at(stored, i), *b = ac_calib_table_at(rebuilt, i);
        if (strcmp(a->name, b->name) != 0 || memcmp(&a->th, &b->th, sizeof a->th) != 0 ||
            memcmp(&a->min, &b->min, sizeof a->min) != 0 ||
            memcmp(&a->max, &b->max, sizeof a->max) != 0)
            return bad(d, "calibration_table[%zu] '%s': (%.9g, %.9g, %.9g) in the file, sharing "
                       "gives '%s' (%.9g, %.9g, %.9g) (" MISMATCH ")", i, a->name, a->th, a->min,
                       a->max, b->name, b->th, b->min, b->max);
    }
    return 0;
}

static int rd_header(rd *d, const char **producer, size_t *producer_len)
{
    int64_t version;
    uint32_t n;
    ac_mpack_type t = ac_mpack_peek(&d->r);
    if (!ac_mpack_read_map(&d->r, &n))
        return bad(d, "(top level): expected a msgpack map, got %s",
                   t == AC_MPACK_MAP ? "a truncated map" : ac_mpack_type_name(t));
    if (!ac_mpack_read_str_eq(&d->r, "format") ||
        !ac_mpack_read_str_eq(&d->r, AC_INT8_MODEL_FORMAT))
        return bad(d, "format: expected the key \"format\" first, with the value \"%s\" "
                   "(not an int8 model file)", AC_INT8_MODEL_FORMAT);
    if (rd_key(d, "(top level)", "version"))
        return d->err->code;
    if (!ac_mpack_read_int(&d->r, &version))
        return bad(d, "version: expected an integer");
    if (version != AC_INT8_MODEL_VERSION)
        return bad_code(d, AC_E_UNSUPPORTED, "version %lld is not supported (this reader knows "
                        "version %d)", (long long)version, AC_INT8_MODEL_VERSION);
    if (n != 7)
        return bad(d, "(top level): expected a map of 7 entries, got %u", n);
    if (rd_key(d, "(top level)", "producer"))
        return d->err->code;
    if (!ac_mpack_read_str(&d->r, producer, producer_len) ||
        memchr(*producer, '\0', *producer_len))
        return bad(d, "producer: expected a string without NUL bytes");
    return 0;
}

ac_int8_model *ac_int8_model_parse(const void *buf, size_t len, const char *name, ac_err *err)
{
    ac_err local = {0};
    rd d = {.name = name ? name : "int8 model", .err = err ? err : &local};
    ac_mpack_reader_init(&d.r, buf, len);
    ac_int8_model *m = NULL;
    ac_calib_table *table = NULL;
    stored_node *sn = NULL;
    uint32_t nplan = 0;
    ac_quant_options opt;
    const char *producer;
    size_t producer_len;
    if (rd_header(&d, &producer, &producer_len))
        goto fail;
    if (rd_key(&d, "(top level)", "graph") || rd_graph(&d) || rebuild_graph(&d))
        goto fail;
    if (rd_key(&d, "(top level)", "options") || rd_options(&d, &opt))
        goto fail;
    if (rd_key(&d, "(top level)", "calibration_table") || rd_table(&d, &table))
        goto fail;
    if (rd_key(&d, "(top level)", "plan") || rd_count(&d, "plan", &nplan))
        goto fail;
    if (nplan != (uint32_t)d.g->nnodes) {
        bad(&d, "plan: %u entries for %d nodes", nplan, d.g->nnodes);
        nplan = 0;
        goto fail;
    }
    sn = calloc(nplan ? nplan : 1, sizeof *sn);
    m = calloc(1, sizeof *m);
    if (!sn || !m) {
        bad_code(&d, AC_E_NOMEM, "plan: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < nplan; i++)
        if (rd_plan_node(&d, (int)i, &sn[i]))
            goto fail;
    if (d.r.left != 0) {
        bad(&d, "%zu trailing byte(s) after the document", d.r.left);
        goto fail;
    }
    m->producer = ac_arena_strndup(d.g->arena, producer, producer_len);
    if (!m->producer) {
        bad_code(&d, AC_E_NOMEM, "out of memory");
        goto fail;
    }
    /* Rebuild the plan from the stored table and options, then verify (§7). */
    ac_err e = {0};
    m->plan = ac_plan_build(d.g, table, &opt, &e);
    if (!m->plan) {
        bad_code(&d, e.code ? e.code : AC_E_INVALID, "rebuilding the plan: %s", e.msg);
        goto fail;
    }
    if (verify_table(&d, table, m->plan->shared))
        goto fail;
    for (uint32_t i = 0; i < nplan; i++)
        if (verify_node(&d, m->plan, (int)i, &sn[i]))
            goto fail;
    m->g = d.g;
    ac_calib_table_destroy(&table);
    for (uint32_t i = 0; i < nplan; i++)
        pfields_free(&sn[i].params);
    free(sn);
    return m;
fail:
    if (m)
        ac_plan_destroy(&m->plan);
    free(m);
    for (uint32_t i = 0; sn && i < nplan; i++)
        pfields_free(&sn[i].params);
    free(sn);
    ac_calib_table_destroy(&table);
    ac_graph_destroy(&d.g);
    if (d.err->code == AC_OK)
        ac_err_set(d.err, AC_E_INVALID, "%s: invalid int8 model", d.name);
    return NULL;
}

ac_int8_model *ac_int8_model_load(const char *path, ac_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        ac_err_set(err, AC_E_IO, "%s: cannot determine the size", path);
        return NULL;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %ld bytes", path, size);
        return NULL;
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        ac_err_set(err, AC_E_IO, "%s: short read (%zu of %ld bytes)", path, got, size);
        return NULL;
    }
    ac_int8_model *m = ac_int8_model_parse(buf, (size_t)size, path, err);
    free(buf);
    return m;
}

void ac_int8_model_destroy(ac_int8_model **p)
{
    if (!p || !*p)
        return;
    ac_plan_destroy(&(*p)->plan);
    ac_graph_destroy(&(*p)->g);
    free(*p);
    *p = NULL;
}

/* Sets the inputs' dims from parsed shapes (positional or named) and
 * re-infers; false with err on a bad shape. */
static int apply_shapes(ac_graph *g, const ac_onnx_shape *sh, int n, ac_err *err)
{
    bool named = n > 0 && sh[0].name[0];
    if (!named && n > g->ninputs)
        return ac_err_set(err, AC_E_INVALID, "%d shapes for %d model input(s)", n, g->ninputs);
    for (int k = 0; k < n; k++) {
        int t = -1;
        if (!named) {
            t = g->inputs[k];
        } else {
            for (int i = 0; i < g->ninputs; i++)
                if (strcmp(g->tensors[g->inputs[i]].name, sh[k].name) == 0)
                    t = g->inputs[i];
            if (t < 0)
                return ac_err_set(err, AC_E_INVALID, "the model has no input named '%s'",
                                  sh[k].name);
        }
        ac_tensor *ts = &g->tensors[t];
        if (sh[k].ndim != ts->ndim)
            return ac_err_set(err, AC_E_INVALID, "input '%s' has %d dims, the shape gives %d",
                              ts->name, ts->ndim, sh[k].ndim);
        int64_t numel = 1;
        for (int d = 0; d < sh[k].ndim; d++) {
            if (sh[k].dims[d] < 1 || sh[k].dims[d] > AC_ONNX_MAX_NUMEL / numel)
                return ac_err_set(err, AC_E_INVALID, "input '%s': dim %d = %lld is out of range",
                                  ts->name, d, (long long)sh[k].dims[d]);
            numel *= sh[k].dims[d];
        }
        for (int d = 0; d < sh[k].ndim; d++)
            ts->dims[d] = sh[k].dims[d];
    }
    return ac_graph_infer_shapes(g, err);
}

int ac_int8_model_set_input_shapes(ac_int8_model *m, const char *shapes, ac_err *err)
{
    ac_onnx_shape sh[AC_ONNX_MAX_SHAPES];
    int n = 0;
    if (ac_onnx_parse_shapes(shapes, sh, AC_ONNX_MAX_SHAPES, &n, err))
        return ac_err_prefix(err, "input shapes '%s': ", shapes);
    ac_graph *g = m->g;
    /* The current shapes, to restore on failure. */
    ac_onnx_shape old[AC_ONNX_MAX_SHAPES];
    int nold = g->ninputs < AC_ONNX_MAX_SHAPES ? g->ninputs : AC_ONNX_MAX_SHAPES;
    for (int i = 0; i < nold; i++) {
        const ac_tensor *t = &g->tensors[g->inputs[i]];
        old[i].name[0] = '\0';
        old[i].ndim = t->ndim;
        memcpy(old[i].dims, t->dims, sizeof old[i].dims);
    }
    int nnodes = g->nnodes;
    ac_plan *p = NULL;
    int rc = apply_shapes(g, sh, n, err);
    if (!rc && g->nnodes != nnodes)
        rc = ac_err_set(err, AC_E_INVALID, "constant folding changed the graph");
    if (!rc) {
        p = ac_plan_build(g, m->plan->shared, &m->plan->opt, err);
        rc = p ? 0 : (err && err->code ? (int)err->code : AC_E_INVALID);
    }
    if (rc) {
        ac_err keep = err ? *err : (ac_err){0};
        ac_err ignore = {0};
        apply_shapes(g, old, nold, &ignore); /* back to shapes that worked */
        if (err)
            *err = keep;
        return ac_err_prefix(err, "input shapes '%s': ", shapes);
    }
    ac_plan_destroy(&m->plan);
    m->plan = p;
    return 0;
}

const ac_graph *ac_int8_model_graph(const ac_int8_model *m)
{
    return m->g;
}

const ac_plan *ac_int8_model_plan(const ac_int8_model *m)
{
    return m->plan;
}

const char *ac_int8_model_producer(const ac_int8_model *m)
{
    return m->producer;
}
