#include "ac_mxnet.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_file.h"
#include "ac_import.h"
#include "ac_ops.h"

#define PARAMS_LIST_MAGIC 0x112ULL
#define ND_V1 0xF993FAC8u
#define ND_V2 0xF993FAC9u
#define ND_V3 0xF993FACAu
#define MAX_PARAMS (1 << 20)

/* ---- the .params NDArray list -------------------------------------------------------------- */

typedef struct {
    char *name;     /* without the arg:/aux: prefix */
    int ndim;
    int64_t dims[AC_MAX_DIMS];
    int64_t numel;
    float *data;    /* malloc'ed float32 (float64 files are converted) */
    bool used;
} mx_param;

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *name;
    ac_err *err;
} rd;

static int rd_err(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_err(rd *r, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ac_err_set(r->err, AC_E_INVALID, "%s: offset %zu: %s", r->name, r->pos, msg);
}

static int rd_bytes(rd *r, void *out, size_t n, const char *what)
{
    if (r->len - r->pos < n)
        return rd_err(r, "the file ends inside %s (%zu bytes needed, %zu left)", what, n, r->len - r->pos);
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

#define TRY(x)                                                                                                        \
    do {                                                                                                              \
        int rc_ = (x);                                                                                                \
        if (rc_)                                                                                                      \
            return rc_;                                                                                               \
    } while (0)

static int read_ndarray(rd *r, int index, mx_param *p)
{
    uint32_t magic = 0;
    TRY(rd_bytes(r, &magic, 4, "an NDArray's magic"));
    bool legacy = magic != ND_V1 && magic != ND_V2 && magic != ND_V3;
    if (!legacy && magic != ND_V1) {
        int32_t stype = 0;
        TRY(rd_bytes(r, &stype, 4, "the storage type"));
        if (stype != 0)
            return rd_err(r, "array %d has storage type %d: only dense arrays (0) are supported", index, stype);
    }
    int64_t ndim;
    if (legacy)
        ndim = magic;
    else if (magic == ND_V3) {
        int32_t n = 0;
        TRY(rd_bytes(r, &n, 4, "ndim"));
        ndim = n;
    } else {
        uint32_t n = 0;
        TRY(rd_bytes(r, &n, 4, "ndim"));
        ndim = n;
    }
    if (ndim < 0 || ndim > AC_MAX_DIMS)
        return rd_err(r, "array %d has %lld dims (0 to %d)", index, (long long)ndim, AC_MAX_DIMS);
    p->ndim = (int)ndim;
    p->numel = 1;
    for (int i = 0; i < p->ndim; i++) {
        int64_t d = 0;
        if (legacy) {
            uint32_t d32 = 0;
            TRY(rd_bytes(r, &d32, 4, "a dim"));
            d = d32;
        } else
            TRY(rd_bytes(r, &d, 8, "a dim"));
        if (d < 0 || d > AC_ONNX_MAX_NUMEL || p->numel * d > AC_ONNX_MAX_NUMEL)
            return rd_err(r, "array %d dim %d is %lld: out of range", index, i, (long long)d);
        p->dims[i] = d;
        p->numel *= d;
    }
    if (p->ndim == 0)
        return rd_err(r, "array %d has no shape (a none NDArray is not a parameter)", index);
    int32_t ctx[2] = {0, 0}, type = 0;
    TRY(rd_bytes(r, ctx, 8, "the context"));
    TRY(rd_bytes(r, &type, 4, "the type flag"));
    if (type != 0 && type != 1)
        return rd_err(r, "array %d has type flag %d: float32 (0) and float64 (1) only", index, type);
    size_t es = type ? 8 : 4, bytes = (size_t)p->numel * es;
    if (r->len - r->pos < bytes)
        return rd_err(r, "array %d needs %zu data bytes, %zu left", index, bytes, r->len - r->pos);
    p->data = malloc(sizeof(float) * (size_t)(p->numel ? p->numel : 1));
    if (!p->data)
        return ac_err_set(r->err, AC_E_NOMEM, "out of memory");
    const uint8_t *src = r->p + r->pos;
    if (type == 0)
        memcpy(p->data, src, bytes);
    else
        for (int64_t i = 0; i < p->numel; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            p->data[i] = (float)v;
        }
    r->pos += bytes;
    return 0;
}

static void params_free(mx_param *ps, int n)
{
    for (int i = 0; i < n; i++) {
        free(ps[i].name);
        free(ps[i].data);
    }
    free(ps);
}

static int read_params(const void *buf, size_t len, const char *name, mx_param **out, int *count, ac_err *err)
{
    rd r = {.p = buf, .len = len, .name = name, .err = err};
    *out = NULL;
    *count = 0;
    uint64_t head[3];
    TRY(rd_bytes(&r, head, sizeof head, "the header"));
    if (head[0] != PARAMS_LIST_MAGIC) {
        r.pos = 0;
        return rd_err(&r, "magic 0x%llx is not an MXNet NDArray list (0x112)", (unsigned long long)head[0]);
    }
    if (head[2] > MAX_PARAMS) {
        r.pos = 16;
        return rd_err(&r, "%llu arrays (at most %d)", (unsigned long long)head[2], MAX_PARAMS);
    }
    int n = (int)head[2];
    mx_param *ps = calloc((size_t)(n ? n : 1), sizeof *ps);
    if (!ps)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = read_ndarray(&r, i, &ps[i]);
    uint64_t nnames = 0;
    if (!rc)
        rc = rd_bytes(&r, &nnames, 8, "the name count");
    if (!rc && nnames != (uint64_t)n)
        rc = rd_err(&r, "%llu names for %d arrays", (unsigned long long)nnames, n);
    for (int i = 0; i < n && !rc; i++) {
        uint64_t sl = 0;
        rc = rd_bytes(&r, &sl, 8, "a name length");
        if (!rc && sl > r.len - r.pos)
            rc = rd_err(&r, "name %d is %llu bytes, %zu left", i, (unsigned long long)sl, r.len - r.pos);
        if (rc)
            break;
        const char *s = (const char *)r.p + r.pos;
        size_t skip = sl >= 4 && (!memcmp(s, "arg:", 4) || !memcmp(s, "aux:", 4)) ? 4 : 0;
        ps[i].name = strndup(s + skip, (size_t)sl - skip);
        if (!ps[i].name)
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
        r.pos += (size_t)sl;
    }
    if (!rc && r.pos != r.len)
        rc = rd_err(&r, "%zu bytes after the last name", r.len - r.pos);
    if (rc) {
        params_free(ps, n);
        return rc;
    }
    *out = ps;
    *count = n;
    return 0;
}

int ac_mxnet_check_params(const void *buf, size_t len, const char *name, int *count, ac_err *err)
{
    mx_param *ps;
    int rc = read_params(buf, len, name ? name : "model.params", &ps, count, err);
    if (!rc)
        params_free(ps, *count);
    return rc;
}

/* ---- the symbol ---------------------------------------------------------------------------- */

typedef struct {
    int t;          /* IR tensor of output 0, -1 until built */
    bool is_input;  /* a null node without a parameter: a graph input */
} mx_val;

typedef struct {
    const char *file;
    ac_err *err;
    ac_graph *g;
    json_t *nodes;
    int n;
    mx_val *val;
    mx_param *ps;
    int nps;
    const ac_mxnet_options *opt;
    int ninputs, inputs[16];
    int cur;            /* node being built */
    const char *cur_name, *cur_op;
    json_t *cur_attrs;
    char name[512];
} ml;

static int node_err(ml *L, ac_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int node_err(ml *L, ac_status code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->cur >= 0)
        return ac_err_set(L->err, code, "%s: node %d '%s' (%s): %s", L->file, L->cur, L->cur_name, L->cur_op, msg);
    return ac_err_set(L->err, code, "%s: %s", L->file, msg);
}

static int nomem(ml *L) { return node_err(L, AC_E_NOMEM, "out of memory"); }

/* An attribute's string value ("(3, 3)", "8", "True", "relu"); NULL when absent. */
static int attr_s(ml *L, const char *key, const char **out)
{
    *out = NULL;
    if (!L->cur_attrs)
        return 0;
    json_t *v = json_object_get(L->cur_attrs, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return node_err(L, AC_E_INVALID, "attribute '%s' must be a string", key);
    *out = json_string_value(v);
    return 0;
}

static int attr_int(ml *L, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *v)
{
    const char *s;
    TRY(attr_s(L, key, &s));
    if (!s) {
        *v = def;
        return 0;
    }
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || x < lo || x > hi)
        return node_err(L, AC_E_INVALID, "attribute '%s' = '%s' is not an integer in [%lld, %lld]", key, s,
                        (long long)lo, (long long)hi);
    *v = x;
    return 0;
}

static int attr_float(ml *L, const char *key, double def, double *v)
{
    const char *s;
    TRY(attr_s(L, key, &s));
    if (!s) {
        *v = def;
        return 0;
    }
    char *end;
    *v = strtod(s, &end);
    if (end == s || *end)
        return node_err(L, AC_E_INVALID, "attribute '%s' = '%s' is not a number", key, s);
    return 0;
}

static int attr_bool(ml *L, const char *key, bool def, bool *v)
{
    const char *s;
    TRY(attr_s(L, key, &s));
    if (!s)
        *v = def;
    else if (!strcmp(s, "True") || !strcmp(s, "true") || !strcmp(s, "1"))
        *v = true;
    else if (!strcmp(s, "False") || !strcmp(s, "false") || !strcmp(s, "0"))
        *v = false;
    else
        return node_err(L, AC_E_INVALID, "attribute '%s' = '%s' is not True or False", key, s);
    return 0;
}

/* A tuple "(3, 3)" / "[1,1]" / "3" of n values (n = 2 for the spatial ones); def when absent. */
static int attr_tuple(ml *L, const char *key, int n, int64_t def, int64_t lo, int64_t *v, bool *given)
{
    const char *s;
    TRY(attr_s(L, key, &s));
    if (given)
        *given = s != NULL;
    for (int i = 0; i < n; i++)
        v[i] = def;
    if (!s)
        return 0;
    int k = 0;
    const char *p = s;
    while (*p) {
        if (*p == '(' || *p == ')' || *p == '[' || *p == ']' || *p == ',' || *p == ' ') {
            p++;
            continue;
        }
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || k >= n || x < lo || x > 65536)
            return node_err(L, AC_E_INVALID, "attribute '%s' = '%s' is not a tuple of %d integers in [%lld, 65536]",
                            key, s, n, (long long)lo);
        v[k++] = x;
        p = end;
    }
    if (k != n)
        return node_err(L, AC_E_INVALID, "attribute '%s' = '%s' has %d values, expected %d (2-D only)", key, s, k,
                        n);
    return 0;
}

/* ---- IR helpers ---------------------------------------------------------------------------- */

static int add_node(ml *L, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node)
{
    return ac_import_node(L->g, name, op, nin, ins, out, node) ? nomem(L) : 0;
}

static int set_ints(ml *L, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    return ac_node_set_ints(L->g, n, name, cnt, v) ? nomem(L) : 0;
}

static int set_num(ml *L, ac_node *n, const char *name, ac_attr_type type, double v)
{
    int rc = type == AC_ATTR_INT ? ac_node_set_int(L->g, n, name, (int64_t)v) : ac_node_set_float(L->g, n, name, (float)v);
    return rc ? nomem(L) : 0;
}

/* ---- inputs -------------------------------------------------------------------------------- */

static mx_param *find_param(ml *L, const char *name)
{
    for (int i = 0; i < L->nps; i++)
        if (!strcmp(L->ps[i].name, name))
            return &L->ps[i];
    return NULL;
}

static int node_inputs(ml *L, int k, json_t **out, int *n)
{
    json_t *nd = json_array_get(L->nodes, (size_t)k);
    json_t *ins = json_object_get(nd, "inputs");
    if (!ins || !json_is_array(ins))
        return node_err(L, AC_E_INVALID, "'inputs' must be an array");
    *out = ins;
    *n = (int)json_array_size(ins);
    return 0;
}

/* Node index of input slot i of the current node. */
static int input_node(ml *L, int i, int *j)
{
    json_t *ins = NULL;
    int n = 0;
    TRY(node_inputs(L, L->cur, &ins, &n));
    if (i >= n)
        return node_err(L, AC_E_INVALID, "input %d is missing (it has %d)", i, n);
    json_t *e = json_array_get(ins, (size_t)i);
    json_t *id = json_is_array(e) ? json_array_get(e, 0) : NULL;
    json_t *port = json_is_array(e) ? json_array_get(e, 1) : NULL;
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= L->cur)
        return node_err(L, AC_E_INVALID, "input %d must be [node, output, version] with an earlier node", i);
    if (port && (!json_is_integer(port) || json_integer_value(port) != 0))
        return node_err(L, AC_E_UNSUPPORTED, "input %d reads output %lld of its node (output 0 only)", i,
                        port && json_is_integer(port) ? (long long)json_integer_value(port) : -1LL);
    *j = (int)json_integer_value(id);
    return 0;
}

/* The IR tensor of input slot i (an activation, a parameter or a graph input). */
static int input(ml *L, int i, int *t)
{
    int j = -1;
    TRY(input_node(L, i, &j));
    if (L->val[j].t < 0)
        return node_err(L, AC_E_INVALID, "input %d (node %d) has no value", i, j);
    *t = L->val[j].t;
    return 0;
}

/* A parameter input: must be a null node with an array in the .params file,
 * of numel elements (want_numel < 0: any). */
static int param_input(ml *L, int i, const char *what, int64_t want_numel, mx_param **out)
{
    int j = -1;
    TRY(input_node(L, i, &j));
    json_t *nd = json_array_get(L->nodes, (size_t)j);
    const char *op = json_string_value(json_object_get(nd, "op"));
    const char *name = json_string_value(json_object_get(nd, "name"));
    mx_param *p = op && !strcmp(op, "null") && name ? find_param(L, name) : NULL;
    if (!p)
        return node_err(L, AC_E_INVALID, "%s (input %d, '%s') is not in the .params file", what, i,
                        name ? name : "?");
    if (want_numel >= 0 && p->numel != want_numel)
        return node_err(L, AC_E_INVALID, "%s '%s' has %lld values, expected %lld", what, name, (long long)p->numel,
                        (long long)want_numel);
    *out = p;
    return 0;
}

/* ---- ops ----------------------------------------------------------------------------------- */

static int build_conv(ml *L, int *out)
{
    int64_t k[2], s[2], d[2], p[2], nf, ng;
    bool no_bias;
    const char *layout;
    TRY(attr_tuple(L, "kernel", 2, 0, 1, k, NULL));
    if (!k[0])
        return node_err(L, AC_E_INVALID, "attribute 'kernel' is required");
    TRY(attr_tuple(L, "stride", 2, 1, 1, s, NULL));
    TRY(attr_tuple(L, "dilate", 2, 1, 1, d, NULL));
    TRY(attr_tuple(L, "pad", 2, 0, 0, p, NULL));
    TRY(attr_int(L, "num_filter", 0, 1, 1 << 20, &nf));
    TRY(attr_int(L, "num_group", 1, 1, 1 << 20, &ng));
    TRY(attr_bool(L, "no_bias", false, &no_bias));
    TRY(attr_s(L, "layout", &layout));
    if (layout && strcmp(layout, "NCHW"))
        return node_err(L, AC_E_UNSUPPORTED, "layout '%s' (NCHW only)", layout);
    int ins[3] = {-1, -1, -1};
    TRY(input(L, 0, &ins[0]));
    mx_param *w, *b = NULL;
    TRY(param_input(L, 1, "weight", -1, &w));
    if (w->ndim != 4 || w->dims[0] != nf || w->dims[2] != k[0] || w->dims[3] != k[1])
        return node_err(L, AC_E_INVALID, "weight '%s' is not %lldx?x%lldx%lld (num_filter x C/group x kernel)",
                        w->name, (long long)nf, (long long)k[0], (long long)k[1]);
    ins[1] = ac_graph_find_tensor(L->g, w->name);
    if (!no_bias) {
        TRY(param_input(L, 2, "bias", nf, &b));
        ins[2] = ac_graph_find_tensor(L->g, b->name);
    }
    ac_node *n;
    TRY(add_node(L, L->cur_name, AC_OP_CONV, no_bias ? 2 : 3, ins, out, &n));
    int64_t pads[4] = {p[0], p[1], p[0], p[1]};
    TRY(set_ints(L, n, "kernel_shape", 2, k));
    TRY(set_ints(L, n, "strides", 2, s));
    TRY(set_ints(L, n, "dilations", 2, d));
    TRY(set_ints(L, n, "pads", 4, pads));
    return set_num(L, n, "group", AC_ATTR_INT, (double)ng);
}

static int build_batchnorm(ml *L, int *out)
{
    double eps;
    bool fix_gamma;
    int64_t axis;
    TRY(attr_float(L, "eps", 1e-3, &eps));
    TRY(attr_bool(L, "fix_gamma", true, &fix_gamma));
    TRY(attr_int(L, "axis", 1, -8, 8, &axis));
    if (axis != 1)
        return node_err(L, AC_E_UNSUPPORTED, "axis %lld (the channel axis 1 only)", (long long)axis);
    int ins[5];
    TRY(input(L, 0, &ins[0]));
    static const char *const what[4] = {"gamma", "beta", "moving_mean", "moving_var"};
    mx_param *p[4];
    for (int i = 0; i < 4; i++) {
        TRY(param_input(L, i + 1, what[i], i ? p[0]->numel : -1, &p[i]));
        ins[i + 1] = ac_graph_find_tensor(L->g, p[i]->name);
    }
    if (fix_gamma) {
        /* MXNet ignores gamma (uses 1) when fix_gamma is set, as it is by default. */
        int64_t c = p[0]->numel;
        float *ones = malloc(sizeof(float) * (size_t)(c ? c : 1));
        if (!ones)
            return nomem(L);
        for (int64_t i = 0; i < c; i++)
            ones[i] = 1.0f;
        snprintf(L->name, sizeof L->name, "%s/fixed_gamma", L->cur_name);
        int t = ac_graph_add_tensor(L->g, L->name, AC_DT_F32, 1, &c);
        int rc = t < 0 ? nomem(L) : ac_graph_set_const(L->g, t, ones, sizeof(float) * (size_t)c, L->err);
        free(ones);
        TRY(rc);
        ins[1] = t;
    }
    ac_node *n;
    TRY(add_node(L, L->cur_name, AC_OP_BATCHNORM, 5, ins, out, &n));
    return set_num(L, n, "epsilon", AC_ATTR_FLOAT, eps);
}

static int build_activation(ml *L, int *out)
{
    const char *act;
    TRY(attr_s(L, "act_type", &act));
    ac_op op = !act ? AC_OP_UNKNOWN
               : !strcmp(act, "relu") ? AC_OP_RELU
               : !strcmp(act, "sigmoid") ? AC_OP_SIGMOID
               : !strcmp(act, "tanh") ? AC_OP_TANH
                                       : AC_OP_UNKNOWN;
    if (op == AC_OP_UNKNOWN)
        return node_err(L, AC_E_UNSUPPORTED, "act_type '%s' (relu, sigmoid, tanh)", act ? act : "(missing)");
    int x;
    TRY(input(L, 0, &x));
    return add_node(L, L->cur_name, op, 1, &x, out, NULL);
}

static int build_leaky(ml *L, int *out)
{
    const char *act;
    double slope;
    TRY(attr_s(L, "act_type", &act));
    if (act && strcmp(act, "leaky"))
        return node_err(L, AC_E_UNSUPPORTED, "act_type '%s' (leaky only)", act);
    TRY(attr_float(L, "slope", 0.25, &slope));
    int x;
    TRY(input(L, 0, &x));
    ac_node *n;
    TRY(add_node(L, L->cur_name, AC_OP_LEAKY_RELU, 1, &x, out, &n));
    return set_num(L, n, "alpha", AC_ATTR_FLOAT, slope);
}

static int build_pool(ml *L, int *out)
{
    const char *type, *conv;
    bool global, cip;
    int64_t k[2], s[2], p[2];
    TRY(attr_s(L, "pool_type", &type));
    TRY(attr_s(L, "pooling_convention", &conv));
    TRY(attr_bool(L, "global_pool", false, &global));
    TRY(attr_bool(L, "count_include_pad", true, &cip));
    bool max = !type || !strcmp(type, "max");
    if (!max && strcmp(type, "avg"))
        return node_err(L, AC_E_UNSUPPORTED, "pool_type '%s' (max, avg)", type);
    if (conv && strcmp(conv, "valid") && strcmp(conv, "full"))
        return node_err(L, AC_E_UNSUPPORTED, "pooling_convention '%s' (valid, full)", conv);
    int x;
    TRY(input(L, 0, &x));
    if (global)
        return add_node(L, L->cur_name, max ? AC_OP_GLOBAL_MAXPOOL : AC_OP_GLOBAL_AVGPOOL, 1, &x, out, NULL);
    TRY(attr_tuple(L, "kernel", 2, 0, 1, k, NULL));
    if (!k[0])
        return node_err(L, AC_E_INVALID, "attribute 'kernel' is required without global_pool");
    TRY(attr_tuple(L, "stride", 2, 1, 1, s, NULL));
    TRY(attr_tuple(L, "pad", 2, 0, 0, p, NULL));
    ac_node *n;
    TRY(add_node(L, L->cur_name, max ? AC_OP_MAXPOOL : AC_OP_AVGPOOL, 1, &x, out, &n));
    int64_t pads[4] = {p[0], p[1], p[0], p[1]};
    TRY(set_ints(L, n, "kernel_shape", 2, k));
    TRY(set_ints(L, n, "strides", 2, s));
    TRY(set_ints(L, n, "pads", 4, pads));
    if (conv && !strcmp(conv, "full"))
        TRY(set_num(L, n, "ceil_mode", AC_ATTR_INT, 1));
    if (!max)
        TRY(set_num(L, n, "count_include_pad", AC_ATTR_INT, cip));
    return 0;
}

static int build_fc(ml *L, int *out)
{
    int64_t nh = 0;
    bool no_bias, flatten;
    TRY(attr_int(L, "num_hidden", 0, 1, 1 << 24, &nh));
    TRY(attr_bool(L, "no_bias", false, &no_bias));
    TRY(attr_bool(L, "flatten", true, &flatten));
    if (!flatten)
        return node_err(L, AC_E_UNSUPPORTED, "flatten=False");
    int x;
    TRY(input(L, 0, &x));
    snprintf(L->name, sizeof L->name, "%s/flatten", L->cur_name);
    ac_node *n;
    int ins[3] = {-1, -1, -1};
    TRY(add_node(L, L->name, AC_OP_FLATTEN, 1, &x, &ins[0], &n));
    TRY(set_num(L, n, "axis", AC_ATTR_INT, 1));
    mx_param *w, *b;
    TRY(param_input(L, 1, "weight", -1, &w));
    if (w->ndim != 2 || w->dims[0] != nh)
        return node_err(L, AC_E_INVALID, "weight '%s' is not num_hidden (%lld) x inputs", w->name, (long long)nh);
    ins[1] = ac_graph_find_tensor(L->g, w->name);
    if (!no_bias) {
        TRY(param_input(L, 2, "bias", nh, &b));
        ins[2] = ac_graph_find_tensor(L->g, b->name);
    }
    TRY(add_node(L, L->cur_name, AC_OP_GEMM, no_bias ? 2 : 3, ins, out, &n));
    return set_num(L, n, "transB", AC_ATTR_INT, 1);
}

static int build_flatten(ml *L, int *out)
{
    int x;
    TRY(input(L, 0, &x));
    ac_node *n;
    TRY(add_node(L, L->cur_name, AC_OP_FLATTEN, 1, &x, out, &n));
    return set_num(L, n, "axis", AC_ATTR_INT, 1);
}

static int build_softmax(ml *L, int *out)
{
    int64_t axis = 1;
    if (!strcmp(L->cur_op, "softmax"))
        TRY(attr_int(L, "axis", -1, -8, 8, &axis));
    int x;
    TRY(input(L, 0, &x)); /* SoftmaxOutput's label input is training-only */
    ac_node *n;
    TRY(add_node(L, L->cur_name, AC_OP_SOFTMAX, 1, &x, out, &n));
    return set_num(L, n, "axis", AC_ATTR_INT, (double)axis);
}

static int build_binary(ml *L, ac_op op, int *out)
{
    int ins[2];
    TRY(input(L, 0, &ins[0]));
    TRY(input(L, 1, &ins[1]));
    return add_node(L, L->cur_name, op, 2, ins, out, NULL);
}

static int build_concat(ml *L, int *out)
{
    json_t *arr = NULL;
    int n = 0;
    TRY(node_inputs(L, L->cur, &arr, &n));
    int64_t dim;
    TRY(attr_int(L, "dim", 1, -8, 8, &dim));
    if (n < 1 || n > 1024)
        return node_err(L, AC_E_INVALID, "needs 1 to 1024 inputs, has %d", n);
    int ins[1024];
    for (int i = 0; i < n; i++)
        TRY(input(L, i, &ins[i]));
    ac_node *nd;
    TRY(add_node(L, L->cur_name, AC_OP_CONCAT, n, ins, out, &nd));
    return set_num(L, nd, "axis", AC_ATTR_INT, (double)dim);
}

static int build_clip(ml *L, int *out)
{
    double lo, hi;
    TRY(attr_float(L, "a_min", 0, &lo));
    TRY(attr_float(L, "a_max", 0, &hi));
    int ins[3];
    TRY(input(L, 0, &ins[0]));
    float v[2] = {(float)lo, (float)hi};
    for (int i = 0; i < 2; i++) {
        snprintf(L->name, sizeof L->name, "%s/%s", L->cur_name, i ? "max" : "min");
        ins[i + 1] = ac_graph_add_tensor(L->g, L->name, AC_DT_F32, 0, NULL);
        if (ins[i + 1] < 0)
            return nomem(L);
        TRY(ac_graph_set_const(L->g, ins[i + 1], &v[i], sizeof(float), L->err));
    }
    return add_node(L, L->cur_name, AC_OP_CLIP, 3, ins, out, NULL);
}

/* Dropout does nothing at inference: its output is its input. */
static int build_dropout(ml *L, int *out) { return input(L, 0, out); }

static int op_add(ml *L, int *o) { return build_binary(L, AC_OP_ADD, o); }
static int op_sub(ml *L, int *o) { return build_binary(L, AC_OP_SUB, o); }
static int op_mul(ml *L, int *o) { return build_binary(L, AC_OP_MUL, o); }

typedef struct {
    const char *op;
    int (*fn)(ml *L, int *out);
} op_entry;

static const op_entry OPS[] = {
    {"Convolution", build_conv},      {"BatchNorm", build_batchnorm},     {"Activation", build_activation},
    {"LeakyReLU", build_leaky},        {"Pooling", build_pool},            {"FullyConnected", build_fc},
    {"Flatten", build_flatten},        {"flatten", build_flatten},         {"SoftmaxOutput", build_softmax},
    {"SoftmaxActivation", build_softmax}, {"softmax", build_softmax},      {"elemwise_add", op_add},
    {"_Plus", op_add},                 {"_plus", op_add},                  {"broadcast_add", op_add},
    {"elemwise_sub", op_sub},          {"broadcast_sub", op_sub},          {"elemwise_mul", op_mul},
    {"broadcast_mul", op_mul},         {"_Mul", op_mul},                   {"Concat", build_concat},
    {"concat", build_concat},          {"Dropout", build_dropout},         {"clip", build_clip},
};

/* A null node: a parameter (an IR constant) or a graph input. */
static int build_null(ml *L, mx_val *v)
{
    mx_param *p = find_param(L, L->cur_name);
    if (p) {
        int t = ac_graph_add_tensor(L->g, L->cur_name, AC_DT_F32, p->ndim, p->dims);
        if (t < 0)
            return nomem(L);
        TRY(ac_graph_set_const(L->g, t, p->data, sizeof(float) * (size_t)p->numel, L->err));
        p->used = true;
        v->t = t;
        return 0;
    }
    v->is_input = true;
    return 0;
}

/* Graph inputs are made when first read (SoftmaxOutput's label never is). */
static int make_input(ml *L, int j)
{
    json_t *nd = json_array_get(L->nodes, (size_t)j);
    const char *name = json_string_value(json_object_get(nd, "name"));
    if (L->ninputs >= (int)(sizeof L->inputs / sizeof L->inputs[0]))
        return node_err(L, AC_E_UNSUPPORTED, "more than 16 inputs");
    const ac_onnx_shape *s = NULL;
    if (L->opt)
        for (int i = 0; i < L->opt->nshapes && !s; i++)
            if (!strcmp(L->opt->shapes[i].name, name) ||
                (!L->opt->shapes[i].name[0] && i == L->ninputs))
                s = &L->opt->shapes[i];
    if (!s)
        return node_err(L, AC_E_INVALID, "input '%s' has no shape (an MXNet symbol records none): give "
                        "--input_data_shape", name);
    int t = ac_graph_add_tensor(L->g, name, AC_DT_F32, s->ndim, s->dims);
    if (t < 0)
        return nomem(L);
    L->g->tensors[t].is_input = true;
    L->inputs[L->ninputs++] = t;
    L->val[j].t = t;
    return 0;
}

static bool is_label_slot(const char *op, int slot)
{
    return slot >= 1 && !strcmp(op, "SoftmaxOutput");
}

static int build_node(ml *L, int k)
{
    json_t *nd = json_array_get(L->nodes, (size_t)k);
    L->cur = k;
    L->cur_name = json_string_value(json_object_get(nd, "name"));
    L->cur_op = json_string_value(json_object_get(nd, "op"));
    if (!json_is_object(nd) || !L->cur_name || !L->cur_op || !*L->cur_name) {
        L->cur_name = L->cur_name ? L->cur_name : "?";
        L->cur_op = L->cur_op ? L->cur_op : "?";
        return node_err(L, AC_E_INVALID, "a node needs string 'name' and 'op'");
    }
    /* MXNet wrote the attributes as "attrs" (1.x), "attr" or "param" (0.x). */
    L->cur_attrs = json_object_get(nd, "attrs");
    if (!L->cur_attrs)
        L->cur_attrs = json_object_get(nd, "attr");
    if (!L->cur_attrs)
        L->cur_attrs = json_object_get(nd, "param");
    if (L->cur_attrs && !json_is_object(L->cur_attrs))
        return node_err(L, AC_E_INVALID, "'attrs' must be an object");
    if (!strcmp(L->cur_op, "null"))
        return build_null(L, &L->val[k]);
    json_t *ins = NULL;
    int nin = 0;
    TRY(node_inputs(L, k, &ins, &nin));
    for (int i = 0; i < nin; i++) {
        int j = -1;
        TRY(input_node(L, i, &j));
        if (L->val[j].is_input && L->val[j].t < 0 && !is_label_slot(L->cur_op, i)) {
            int save = L->cur;
            TRY(make_input(L, j));
            L->cur = save;
        }
    }
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(OPS[i].op, L->cur_op))
            return OPS[i].fn(L, &L->val[k].t);
    return node_err(L, AC_E_UNSUPPORTED, "op '%s' is not supported (docs/importers.md lists the MXNet ops)",
                    L->cur_op);
}

static int set_outputs(ml *L, json_t *root)
{
    json_t *heads = json_object_get(root, "heads");
    L->cur = -1;
    if (!json_is_array(heads) || !json_array_size(heads) || json_array_size(heads) > 64)
        return node_err(L, AC_E_INVALID, "'heads' must list 1 to 64 outputs");
    int outs[64], n = (int)json_array_size(heads);
    for (int i = 0; i < n; i++) {
        json_t *h = json_array_get(heads, (size_t)i);
        json_t *id = json_is_array(h) ? json_array_get(h, 0) : NULL;
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= L->n)
            return node_err(L, AC_E_INVALID, "heads[%d] names no node", i);
        int t = L->val[json_integer_value(id)].t;
        if (t < 0 || L->g->tensors[t].is_input || ac_tensor_is_const(&L->g->tensors[t]))
            return node_err(L, AC_E_UNSUPPORTED, "heads[%d] is not computed by a node", i);
        outs[i] = t;
    }
    if (!L->ninputs)
        return node_err(L, AC_E_INVALID, "the symbol reads no input");
    if (ac_graph_set_io(L->g, L->ninputs, L->inputs, n, outs))
        return nomem(L);
    return 0;
}

static int build(ml *L, const char *json, size_t json_len)
{
    json_error_t je;
    json_t *root = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &je);
    L->cur = -1;
    if (!root)
        return ac_err_set(L->err, AC_E_INVALID, "%s:%d:%d: not JSON: %s", L->file, je.line, je.column, je.text);
    int rc = 0;
    L->nodes = json_object_get(root, "nodes");
    if (!json_is_array(L->nodes) || !json_array_size(L->nodes) || json_array_size(L->nodes) > (1u << 20))
        rc = node_err(L, AC_E_INVALID, "'nodes' must be a non-empty array (is it an MXNet symbol file?)");
    if (!rc) {
        L->n = (int)json_array_size(L->nodes);
        L->val = calloc((size_t)L->n, sizeof *L->val);
        if (!L->val)
            rc = nomem(L);
    }
    for (int k = 0; !rc && k < L->n; k++)
        L->val[k].t = -1;
    for (int k = 0; !rc && k < L->n; k++)
        rc = build_node(L, k);
    if (!rc)
        rc = set_outputs(L, root);
    for (int i = 0; !rc && i < L->nps; i++)
        if (!L->ps[i].used) {
            /* A parameter no node reads: the files do not belong together. */
            L->cur = -1;
            rc = node_err(L, AC_E_INVALID, "parameter '%s' of the .params file is not in the symbol", L->ps[i].name);
        }
    json_decref(root);
    if (!rc && (ac_graph_toposort(L->g, L->err) || ac_graph_infer_shapes(L->g, L->err)))
        rc = ac_err_prefix(L->err, "%s: ", L->file);
    return rc;
}

ac_graph *ac_mxnet_load_buffer(const char *json, size_t json_len, const char *json_name, const void *params,
                               size_t params_len, const char *params_name, const ac_mxnet_options *opt,
                               ac_err *err)
{
    ac_err local;
    if (!err)
        err = &local;
    ac_err_clear(err);
    ml L = {.file = json_name ? json_name : "model-symbol.json", .err = err, .opt = opt, .cur = -1};
    int rc = read_params(params ? params : "", params ? params_len : 0, params_name ? params_name : "model.params",
                         &L.ps, &L.nps, err);
    if (!rc) {
        L.g = ac_graph_new(L.file);
        if (!L.g)
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory for the graph");
    }
    if (!rc) {
        L.g->opset = AC_MXNET_OPSET;
        rc = build(&L, json ? json : "", json ? json_len : 0);
    }
    if (rc && !err->code)
        ac_err_set(err, AC_E_INTERNAL, "%s: import failed without a message", L.file);
    free(L.val);
    if (L.ps)
        params_free(L.ps, L.nps);
    if (rc)
        ac_graph_destroy(&L.g);
    return L.g;
}

ac_graph *ac_mxnet_load(const char *json_path, const char *params_path, const ac_mxnet_options *opt, ac_err *err)
{
    char *js = NULL, *ps = NULL;
    size_t jl, pl;
    if (ac_model_file_read(json_path, (size_t)256 << 20, "symbol JSON", &js, &jl, err) ||
        ac_model_file_read(params_path, (size_t)2 << 30, "params", &ps, &pl, err)) {
        free(js);
        return NULL;
    }
    ac_graph *g = ac_mxnet_load_buffer(js, jl, ac_import_base_name(json_path), ps, pl, ac_import_base_name(params_path), opt, err);
    free(js);
    free(ps);
    return g;
}
