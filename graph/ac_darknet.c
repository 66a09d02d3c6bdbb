/* ac_darknet: Darknet cfg + weights -> ac_graph. See ac_darknet.h for the
 * grammar and the layer mapping, docs/importers.md for the details.
 *
 * Structure: the cfg text is split into sections (parse_cfg); then one pass
 * over the layers computes darknet's shapes (c, h, w per layer, darknet's own
 * formulas, so every rule is checked with the cfg line at hand), consumes the
 * layer's parameters from the weights buffer and emits ONNX-semantics nodes.
 * Shape inference (graph/ac_ops.c) then runs over the result and must agree
 * with darknet's shapes. */
#include "ac_darknet.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_file.h"
#include "ac_import.h"
#include "ac_ops.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "darknet .weights files are little-endian; add byte swapping for big-endian hosts"
#endif

#define MAX_DIM ((int64_t)1 << 24)       /* channels, height, width of any layer */
#define MAX_KERNEL 1024                  /* size, stride, padding, dilation */
#define MAX_LIST 4096                    /* values in one comma list */
#define MAX_HEADS 16                     /* yolo/region layers */
/* Without a weights file every parameter is zero; this bounds what a cfg can
 * make us allocate then (a weights file bounds it by its own size). */
#define MAX_ZERO_PARAMS ((int64_t)1 << 24)

/* ---- cfg text -> sections ------------------------------------------------------------- */

typedef struct {
    const char *key, *value;
    int line;
    bool used;
} dn_opt;

typedef struct {
    const char *type; /* without the brackets */
    int line;
    int nopt, cap;
    dn_opt *opt;
} dn_section;

typedef struct {
    char *text; /* the cfg copied, lines compacted in place */
    int nsec, cap;
    dn_section *sec;
} dn_cfg;

static void cfg_free(dn_cfg *c)
{
    for (int i = 0; i < c->nsec; i++)
        free(c->sec[i].opt);
    free(c->sec);
    free(c->text);
    memset(c, 0, sizeof *c);
}

static bool is_name_char(int ch) { return isalnum(ch) || ch == '_'; }

static bool all_name_chars(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char((unsigned char)s[i]))
            return false;
    return true;
}

static int grow_array(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* One line, blanks removed: a header, an option or nothing. */
static int cfg_line(dn_cfg *c, char *s, int line, const char *name, ac_err *err)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == '#' || s[0] == ';')
        return 0;
    if (s[0] == '[') {
        if (s[n - 1] != ']' || !all_name_chars(s + 1, n - 2))
            return ac_err_set(err, AC_E_INVALID,
                              "%s:%d: a section header is '[' + a layer type (letters, digits, '_') + ']', not '%.40s'",
                              name, line, s);
        if (c->nsec >= AC_DARKNET_MAX_LAYERS + 1)
            return ac_err_set(err, AC_E_UNSUPPORTED, "%s:%d: more than %d layers", name, line,
                              AC_DARKNET_MAX_LAYERS);
        if (grow_array((void **)&c->sec, &c->cap, c->nsec + 1, sizeof *c->sec))
            return ac_err_set(err, AC_E_NOMEM, "%s:%d: out of memory", name, line);
        s[n - 1] = '\0';
        c->sec[c->nsec++] = (dn_section){.type = s + 1, .line = line};
        return 0;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return ac_err_set(err, AC_E_INVALID,
                          "%s:%d: '%.40s' is neither a section header, a comment nor key=value", name, line, s);
    if (!c->nsec)
        return ac_err_set(err, AC_E_INVALID, "%s:%d: option '%.40s' comes before the first section", name, line,
                          s);
    if (!all_name_chars(s, (size_t)(eq - s)))
        return ac_err_set(err, AC_E_INVALID, "%s:%d: a key is letters, digits and '_', not '%.*s'", name, line,
                          (int)(eq - s > 40 ? 40 : eq - s), s);
    if (!eq[1])
        return ac_err_set(err, AC_E_INVALID, "%s:%d: key '%.*s' has no value", name, line, (int)(eq - s), s);
    *eq = '\0';
    dn_section *sec = &c->sec[c->nsec - 1];
    for (int i = 0; i < sec->nopt; i++)
        if (!strcmp(sec->opt[i].key, s))
            return ac_err_set(err, AC_E_INVALID, "%s:%d: key '%s' appears twice in [%s] (first on line %d)", name,
                              line, s, sec->type, sec->opt[i].line);
    if (grow_array((void **)&sec->opt, &sec->cap, sec->nopt + 1, sizeof *sec->opt))
        return ac_err_set(err, AC_E_NOMEM, "%s:%d: out of memory", name, line);
    sec->opt[sec->nopt++] = (dn_opt){.key = s, .value = eq + 1, .line = line};
    return 0;
}

static int parse_cfg(const char *text, size_t len, const char *name, dn_cfg *c, ac_err *err)
{
    memset(c, 0, sizeof *c);
    if (len > AC_DARKNET_MAX_CFG_BYTES)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: %zu bytes, a cfg may have at most %d", name, len,
                          AC_DARKNET_MAX_CFG_BYTES);
    c->text = malloc(len + 1);
    if (!c->text)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", name);
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    char *p = c->text, *end = c->text + len;
    for (int line = 1; p <= end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        /* darknet's strip(): every blank goes, wherever it is */
        char *w = p;
        for (char *r = p; r < stop; r++) {
            if (*r == '\0')
                return ac_err_set(err, AC_E_INVALID, "%s:%d: the line holds a NUL byte (not a text file?)", name,
                                  line);
            if (!isspace((unsigned char)*r))
                *w++ = *r;
        }
        *w = '\0';
        if (cfg_line(c, p, line, name, err))
            return err ? (int)err->code : AC_E_INVALID;
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!c->nsec)
        return ac_err_set(err, AC_E_INVALID, "%s: no sections; a cfg starts with [net]", name);
    if (strcmp(c->sec[0].type, "net") && strcmp(c->sec[0].type, "network"))
        return ac_err_set(err, AC_E_INVALID, "%s:%d: the first section is [%s], it must be [net] (or [network])",
                          name, c->sec[0].line, c->sec[0].type);
    return 0;
}

/* ---- the loader ------------------------------------------------------------------------ */

typedef enum {
    ACT_LINEAR, ACT_LEAKY, ACT_RELU, ACT_LOGISTIC, ACT_TANH, ACT_SWISH, ACT_MISH
} dn_act;

static const char *const act_names[] = {"linear", "leaky", "relu", "logistic", "tanh", "swish", "mish"};

typedef struct {
    int tensor;   /* what later layers read */
    int64_t c, h, w;
    bool flat;    /* the tensor is [N, c*h*w] (connected, softmax) */
    bool head;    /* yolo/region: tensor is the raw input; nothing may read the layer */
    bool cost;    /* [cost]: passes its input on, never the network output */
} dn_layer;

typedef struct {
    ac_err *err;
    const char *cfg_name, *weights_name;
    dn_cfg cfg;
    ac_graph *g;
    /* weights */
    const uint8_t *wbuf;
    size_t wlen, wpos;
    bool zero_weights, transpose;
    int64_t zero_params;
    /* layers */
    dn_layer *layers;
    int nlayers;
    int cur;               /* index of the layer being built */
    const dn_section *sec; /* its section */
    int64_t batch;
    dn_layer input;        /* the network input, "layer -1" */
    int last_weighted;     /* the last layer that read weights, -1 before */
    int nheads;
    char *head_meta[MAX_HEADS]; /* "darknet.head.<i>" values, malloc'ed */
    int head_tensor[MAX_HEADS];
} ld;

/* ---- errors ---------------------------------------------------------------------------- */

/* "file:line: [type] layer i: message" (the [net] section has no layer index). */
__attribute__((format(printf, 4, 5))) static int lerr_at(ld *L, int line, ac_status code, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->cur < 0)
        return ac_err_set(L->err, code, "%s:%d: [%s]: %s", L->cfg_name, line, L->sec->type, msg);
    return ac_err_set(L->err, code, "%s:%d: [%s] layer %d: %s", L->cfg_name, line, L->sec->type, L->cur, msg);
}

#define LERR(code, ...) lerr_at(L, L->sec->line, code, __VA_ARGS__)
#define OERR(o, code, fmt, ...) lerr_at(L, (o)->line, code, "key '%s': " fmt, (o)->key, __VA_ARGS__)

static int nomem(ld *L) { return LERR(AC_E_NOMEM, "out of memory"); }

/* ---- options --------------------------------------------------------------------------- */

static dn_opt *find_opt(ld *L, const char *key)
{
    dn_section *s = (dn_section *)L->sec;
    for (int i = 0; i < s->nopt; i++)
        if (!strcmp(s->opt[i].key, key)) {
            s->opt[i].used = true;
            return &s->opt[i];
        }
    return NULL;
}

static bool parse_int(const char *s, int64_t *v)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static bool parse_float(const char *s, double *v)
{
    /* strtod would also take "inf", "nan" and hex floats; darknet's atof too,
     * but no cfg means them: only decimal digits, sign, point and exponent. */
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return false;
    errno = 0;
    char *end;
    double x = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(x))
        return false;
    *v = x;
    return true;
}

/* A number (an integer when ints) in lo..hi; def when the key is absent. */
static int get_num(ld *L, const char *key, bool ints, double def, double lo, double hi, double *out)
{
    dn_opt *o = find_opt(L, key);
    *out = def;
    if (!o)
        return 0;
    int64_t iv;
    if (ints ? !parse_int(o->value, &iv) : !parse_float(o->value, out))
        return OERR(o, AC_E_INVALID, "'%.40s' is not %s", o->value, ints ? "an integer" : "a number");
    if (ints)
        *out = (double)iv;
    if (*out < lo || *out > hi)
        return OERR(o, AC_E_INVALID, "%.17g is outside %.17g..%.17g", *out, lo, hi);
    return 0;
}

static int get_int(ld *L, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    double v;
    int rc = get_num(L, key, true, (double)def, (double)lo, (double)hi, &v);
    *out = (int64_t)v;
    return rc;
}

static int get_float(ld *L, const char *key, double def, double lo, double hi, double *out)
{
    return get_num(L, key, false, def, lo, hi, out);
}

/* A comma list of numbers (integers when ints). *n = -1 when the key is absent. */
static int get_list(ld *L, const char *key, bool ints, double *vals, int max, int *n, const dn_opt **where)
{
    dn_opt *o = find_opt(L, key);
    *n = -1;
    if (where)
        *where = o;
    if (!o)
        return 0;
    *n = 0;
    const char *p = o->value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item)
            return OERR(o, AC_E_INVALID, "item %d of the list is %s", *n + 1, len ? "too long" : "empty");
        if (*n == max)
            return OERR(o, AC_E_INVALID, "more than %d values", max);
        memcpy(item, p, len);
        item[len] = '\0';
        int64_t iv;
        double fv;
        if (ints ? !parse_int(item, &iv) : !parse_float(item, &fv))
            return OERR(o, AC_E_INVALID, "item %d '%s' is not %s", *n + 1, item, ints ? "an integer" : "a number");
        vals[(*n)++] = ints ? (double)iv : fv;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int get_act(ld *L, const char *def, dn_act *act)
{
    dn_opt *o = find_opt(L, "activation");
    const char *v = o ? o->value : def;
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
        if (!strcmp(v, act_names[i])) {
            *act = (dn_act)i;
            return 0;
        }
    return OERR(o, AC_E_UNSUPPORTED, "activation '%.40s' is not supported (linear, leaky, relu, logistic, tanh, swish, mish)",
                v);
}

/* Keys darknet reads for training only: accepted and ignored in any layer. */
static const char *const ignored_keys[] = {
    "learning_rate", "stopbackward", "dont_update", "burnin_update", "train_only_bn", "onlyforward",
    /* [yolo] / [region] losses, matching and augmentation */
    "jitter", "ignore_thresh", "truth_thresh", "random", "iou_thresh", "cls_normalizer", "iou_normalizer",
    "obj_normalizer", "iou_loss", "nms_kind", "beta_nms", "max", "max_delta", "focal_loss", "label_smooth_eps",
    "counters_per_class", "objectness_smooth", "resize", "delta_normalizer", "uc_normalizer", "track_history_size",
    "sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm", "embedding_layer", "show_details",
    "rescore", "thresh", "object_scale", "noobject_scale", "class_scale", "coord_scale", "mask_scale",
    "bias_match", "absolute", "log", "sqrt", "classfix",
    /* [dropout] (nothing at inference), [softmax], [cost] */
    "probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs", "noloss", "type", "scale", "ratio"};

/* Keys of darknet features the importer does not implement: fine when 0. */
static const char *const zero_keys[] = {"binary", "xnor", "flipped", "antialiasing", "sway", "rotate", "stretch",
                                        "stretch_sway", "dontload", "dontloadscales", "bin_output", "maxpool_depth",
                                        "cbn", "clip", "spatial", "new_coords"};

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, list[i]))
            return true;
    return false;
}

/* After a layer was built: every option it did not read is ignorable or an error. */
static int check_unused(ld *L)
{
    const dn_section *s = L->sec;
    for (int i = 0; i < s->nopt; i++) {
        const dn_opt *o = &s->opt[i];
        if (o->used || in_list(o->key, ignored_keys, sizeof ignored_keys / sizeof ignored_keys[0]))
            continue;
        if (in_list(o->key, zero_keys, sizeof zero_keys / sizeof zero_keys[0])) {
            if (!strcmp(o->value, "0"))
                continue;
            return OERR(o, AC_E_UNSUPPORTED, "'%.40s': this darknet feature is not supported (only 0)", o->value);
        }
        return OERR(o, AC_E_UNSUPPORTED,
                    "[%s] has no such key the importer reads or ignores (docs/importers.md lists them)", s->type);
    }
    return 0;
}

/* ---- weights --------------------------------------------------------------------------- */

/* The next count floats of the weights file (malloc'ed), or zeros without one. */
static int take(ld *L, int64_t count, const char *what, float **out)
{
    *out = NULL;
    if (L->zero_weights) {
        L->zero_params += count;
        if (L->zero_params > MAX_ZERO_PARAMS)
            return LERR(AC_E_UNSUPPORTED, "more than %lld parameters; without a weights file the cfg check stops there",
                        (long long)MAX_ZERO_PARAMS);
        *out = calloc((size_t)(count ? count : 1), sizeof(float));
        return *out ? 0 : nomem(L);
    }
    size_t left = L->wlen - L->wpos;
    if (count < 0 || (uint64_t)count > left / 4)
        return ac_err_set(L->err, AC_E_INVALID,
                          "%s: the file ends inside layer %d ([%s] at %s:%d): its %s need %lld bytes from offset %zu, "
                          "%zu are left",
                          L->weights_name, L->cur, L->sec->type, L->cfg_name, L->sec->line, what,
                          (long long)count * 4, L->wpos, left);
    float *v = malloc((size_t)(count ? count : 1) * sizeof(float));
    if (!v)
        return nomem(L);
    memcpy(v, L->wbuf + L->wpos, (size_t)count * 4);
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(v[i])) {
            size_t at = L->wpos + (size_t)i * 4;
            free(v);
            return ac_err_set(L->err, AC_E_INVALID,
                              "%s: layer %d ([%s] at %s:%d): %s value %lld (offset %zu) is not a finite number",
                              L->weights_name, L->cur, L->sec->type, L->cfg_name, L->sec->line, what, (long long)i,
                              at);
        }
    L->wpos += (size_t)count * 4;
    L->last_weighted = L->cur;
    *out = v;
    return 0;
}

static int read_header(ld *L)
{
    if (L->wlen < 16)
        return ac_err_set(L->err, AC_E_INVALID, "%s: %zu bytes; the header alone (major, minor, revision, seen) needs 16",
                          L->weights_name, L->wlen);
    int32_t v[3];
    memcpy(v, L->wbuf, sizeof v);
    if (v[0] < 0 || v[1] < 0 || v[2] < 0)
        return ac_err_set(L->err, AC_E_INVALID, "%s: version %d.%d.%d has a negative part", L->weights_name, v[0],
                          v[1], v[2]);
    /* darknet (Debian's, pjreddie's): a 64-bit seen counter from 0.2 on,
     * unless the version marks transposed connected weights */
    bool seen64 = (int64_t)v[0] * 10 + v[1] >= 2 && v[0] < 1000 && v[1] < 1000;
    uint64_t seen = 0;
    if (seen64 && L->wlen < 20)
        return ac_err_set(L->err, AC_E_INVALID, "%s: %zu bytes; a version %d.%d header with its 64-bit seen needs 20",
                          L->weights_name, L->wlen, v[0], v[1]);
    if (seen64) {
        memcpy(&seen, L->wbuf + 12, 8);
        L->wpos = 20;
    } else {
        uint32_t s32;
        memcpy(&s32, L->wbuf + 12, 4);
        seen = s32;
        L->wpos = 16;
    }
    L->transpose = v[0] > 1000 || v[1] > 1000;
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", v[0], v[1], v[2]);
    if (ac_graph_set_meta(L->g, "darknet.weights_version", buf))
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seen);
    if (ac_graph_set_meta(L->g, "darknet.seen", buf))
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    return 0;
}

/* darknet's inference batch norm: (x - mean) / (sqrt(var) + .000001f) * scale + bias,
 * folded into the n outputs' weights (per_out each) and biases. */
static int fold_bn(ld *L, int64_t n, int64_t per_out, float *w, float *b, const float *scales, const float *mean,
                   const float *var)
{
    for (int64_t o = 0; o < n; o++) {
        if (var[o] < 0)
            return LERR(AC_E_INVALID, "rolling variance %lld is negative (%g)", (long long)o, (double)var[o]);
        double s = (double)scales[o] / (double)(sqrtf(var[o]) + .000001f);
        for (int64_t k = 0; k < per_out; k++)
            w[o * per_out + k] = (float)(w[o * per_out + k] * s);
        b[o] = (float)((double)b[o] - (double)mean[o] * s);
        if (!isfinite(b[o]) || !isfinite(s))
            return LERR(AC_E_INVALID, "batch norm of output %lld folds to a non-finite value", (long long)o);
    }
    return 0;
}

/* darknet's transposed connected weights: stored [per_out][n], wanted [n][per_out]. */
static int transpose(ld *L, float *w, int64_t n, int64_t per_out)
{
    float *t = malloc((size_t)(n * per_out > 0 ? n * per_out : 1) * sizeof *t);
    if (!t)
        return nomem(L);
    for (int64_t i = 0; i < per_out; i++)
        for (int64_t o = 0; o < n; o++)
            t[o * per_out + i] = w[i * n + o];
    memcpy(w, t, (size_t)(n * per_out) * sizeof *t);
    free(t);
    return 0;
}

/* Reads biases, [scales, mean, variance,] weights (the order of darknet's
 * convolutional layer; connected layers keep the batch norm last) and folds
 * the batch norm. *w and *b are malloc'ed. */
static int read_params(ld *L, int64_t n, int64_t per_out, bool bn, bool bn_last, float **w, float **b)
{
    static const char *const bn_what[3] = {"scales", "rolling means", "rolling variances"};
    float *bn3[3] = {NULL, NULL, NULL};
    *w = *b = NULL;
    int rc = take(L, n, "biases", b);
    if (!rc && bn_last)
        rc = take(L, n * per_out, "weights", w);
    for (int k = 0; k < 3 && bn && !rc; k++)
        rc = take(L, n, bn_what[k], &bn3[k]);
    if (!rc && !bn_last)
        rc = take(L, n * per_out, "weights", w);
    if (!rc && bn_last && L->transpose)
        rc = transpose(L, *w, n, per_out);
    if (!rc && bn)
        rc = fold_bn(L, n, per_out, *w, *b, bn3[0], bn3[1], bn3[2]);
    for (int k = 0; k < 3; k++)
        free(bn3[k]);
    if (rc) {
        free(*w);
        free(*b);
        *w = *b = NULL;
    }
    return rc;
}

/* ---- graph building -------------------------------------------------------------------- */

#define TRY(x)                                                                                                        \
    do {                                                                                                              \
        int rc_ = (x);                                                                                                \
        if (rc_)                                                                                                      \
            return rc_;                                                                                               \
    } while (0)

static int const_tensor(ld *L, const char *name, ac_dtype dt, int ndim, const int64_t *dims, const void *data, int *t)
{
    *t = ac_graph_add_const(L->g, name, dt, ndim, dims, data, L->err);
    return *t < 0 ? (int)L->err->code : 0;
}

static int const_ints(ld *L, const char *name, int n, const int64_t *v, int *t)
{
    int64_t dims[1] = {n};
    return const_tensor(L, name, AC_DT_I64, 1, dims, v, t);
}

static int const_scalar(ld *L, const char *name, float v, int *t)
{
    return const_tensor(L, name, AC_DT_F32, 0, NULL, &v, t);
}

/* A node whose one output tensor has the node's name. *node stays valid until
 * the next node is added. */
static int add_node(ld *L, const char *name, ac_op op, int nin, const int *ins, int *out, ac_node **node)
{
    return ac_import_node(L->g, name, op, nin, ins, out, node) ? nomem(L) : 0;
}

static int attr_ints(ld *L, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    return ac_node_set_ints(L->g, n, name, cnt, v) ? nomem(L) : 0;
}

/* An INT or FLOAT attribute. */
static int attr_num(ld *L, ac_node *n, const char *name, ac_attr_type type, double v)
{
    int rc = type == AC_ATTR_INT ? ac_node_set_int(L->g, n, name, (int64_t)v) : ac_node_set_float(L->g, n, name, (float)v);
    return rc ? nomem(L) : 0;
}

static int attr_str(ld *L, ac_node *n, const char *name, const char *v)
{
    return ac_node_set_string(L->g, n, name, v) ? nomem(L) : 0;
}

/* An elementwise binary node with a scalar constant as one operand. */
static int scalar_op(ld *L, const char *name, ac_op op, int x, float v, bool const_first, int *out)
{
    char cname[160];
    snprintf(cname, sizeof cname, "%s.value", name);
    int c = -1;
    TRY(const_scalar(L, cname, v, &c));
    int ins[2] = {const_first ? c : x, const_first ? x : c};
    return add_node(L, name, op, 2, ins, out, NULL);
}

static int unary(ld *L, const char *name, ac_op op, int x, int *out) { return add_node(L, name, op, 1, &x, out, NULL); }

static int binary(ld *L, const char *name, ac_op op, int a, int b, int *out)
{
    int ins[2] = {a, b};
    return add_node(L, name, op, 2, ins, out, NULL);
}

/* The activation after a layer's main node; x itself for linear. */
static int emit_act(ld *L, dn_act act, int x, const char *base, int *out)
{
    char n[8][160];
    ac_node *node;
    switch (act) {
    case ACT_LINEAR: *out = x; return 0;
    case ACT_LEAKY:
        snprintf(n[0], sizeof n[0], "%s_leaky", base);
        TRY(add_node(L, n[0], AC_OP_LEAKY_RELU, 1, &x, out, &node));
        return attr_num(L, node, "alpha", AC_ATTR_FLOAT, .1f);
    case ACT_RELU: snprintf(n[0], sizeof n[0], "%s_relu", base); return unary(L, n[0], AC_OP_RELU, x, out);
    case ACT_LOGISTIC: snprintf(n[0], sizeof n[0], "%s_logistic", base); return unary(L, n[0], AC_OP_SIGMOID, x, out);
    case ACT_TANH: snprintf(n[0], sizeof n[0], "%s_tanh", base); return unary(L, n[0], AC_OP_TANH, x, out);
    case ACT_SWISH: {
        /* x * sigmoid(x): the simplification pass turns it into one SiLU */
        int s;
        snprintf(n[0], sizeof n[0], "%s_swish_sigmoid", base);
        snprintf(n[1], sizeof n[1], "%s_swish", base);
        TRY(unary(L, n[0], AC_OP_SIGMOID, x, &s));
        return binary(L, n[1], AC_OP_MUL, x, s, out);
    }
    case ACT_MISH: {
        /* x * tanh(softplus(x)) = x * u / (2 - u), u = s (2 - s), s = sigmoid(x):
         * ONNX before opset 18 has no Mish, and this form stays finite for
         * every x (s, u in [0, 1]). */
        int s = -1, t = -1, u = -1, d = -1, q = -1;
        static const char *const part[] = {"sigmoid", "2ms", "u", "2mu", "q", ""};
        for (int k = 0; k < 6; k++)
            snprintf(n[k], sizeof n[k], "%s_mish%s%s", base, *part[k] ? "_" : "", part[k]);
        TRY(unary(L, n[0], AC_OP_SIGMOID, x, &s));
        TRY(scalar_op(L, n[1], AC_OP_SUB, s, 2.f, true, &t));
        TRY(binary(L, n[2], AC_OP_MUL, s, t, &u));
        TRY(scalar_op(L, n[3], AC_OP_SUB, u, 2.f, true, &d));
        TRY(binary(L, n[4], AC_OP_DIV, u, d, &q));
        return binary(L, n[5], AC_OP_MUL, x, q, out);
    }
    }
    return LERR(AC_E_INTERNAL, "activation %d", (int)act);
}

/* ---- layer inputs ---------------------------------------------------------------------- */

static const char *layer_type(const ld *L, int i) { return L->cfg.sec[i + 1].type; }

/* The layer before the current one (the network input for layer 0). */
static int prev_layer(ld *L, dn_layer **out)
{
    dn_layer *p = L->cur ? &L->layers[L->cur - 1] : &L->input;
    if (p->head)
        return LERR(AC_E_UNSUPPORTED,
                    "reads the output of the [%s] layer %d before it, which the importer does not compute (it exports "
                    "the raw input of yolo/region layers; a [route] can read the layer before them)",
                    layer_type(L, L->cur - 1), L->cur - 1);
    *out = p;
    return 0;
}

/* A layer named by index in a route/shortcut list (negative: relative). */
static int ref_layer(ld *L, const dn_opt *o, int64_t v, dn_layer **out)
{
    int64_t idx = v < 0 ? L->cur + v : v;
    if (idx < 0 || idx >= L->cur)
        return OERR(o, AC_E_INVALID, "%lld refers to layer %lld, which does not come before layer %d", (long long)v,
                    (long long)idx, L->cur);
    if (L->layers[idx].head)
        return OERR(o, AC_E_UNSUPPORTED, "layer %lld is a [%s] layer, whose output the importer does not compute",
                    (long long)idx, layer_type(L, (int)idx));
    *out = &L->layers[idx];
    return 0;
}

/* The layer's output as [N, C, H, W]; a flat one (connected, softmax) is reshaped. */
static int as_4d(ld *L, const dn_layer *ly, const char *consumer, int k, int *t)
{
    if (!ly->flat) {
        *t = ly->tensor;
        return 0;
    }
    char name[160], sname[176];
    snprintf(name, sizeof name, "%s_in%d_4d", consumer, k);
    snprintf(sname, sizeof sname, "%s.shape", name);
    int64_t shape[4] = {0, ly->c, ly->h, ly->w}; /* 0: keep the batch */
    int s = -1;
    TRY(const_ints(L, sname, 4, shape, &s));
    return binary(L, name, AC_OP_RESHAPE, ly->tensor, s, t);
}

/* The layer's output as [N, C*H*W]. */
static int as_flat(ld *L, const dn_layer *ly, const char *consumer, int *t)
{
    if (ly->flat) {
        *t = ly->tensor;
        return 0;
    }
    char name[160];
    snprintf(name, sizeof name, "%s_flatten", consumer);
    ac_node *n;
    TRY(add_node(L, name, AC_OP_FLATTEN, 1, &ly->tensor, t, &n));
    return attr_num(L, n, "axis", AC_ATTR_INT, 1);
}

/* ---- layers ---------------------------------------------------------------------------- */

static int build_conv(ld *L, const char *name, dn_layer *out)
{
    int64_t n, size, stride, sx, sy, pad, padding, groups, dil, bn;
    dn_act act;
    TRY(get_int(L, "filters", 1, 1, MAX_DIM, &n));
    TRY(get_int(L, "size", 1, 1, MAX_KERNEL, &size));
    TRY(get_int(L, "stride", 1, 1, MAX_KERNEL, &stride));
    TRY(get_int(L, "stride_x", stride, 1, MAX_KERNEL, &sx));
    TRY(get_int(L, "stride_y", stride, 1, MAX_KERNEL, &sy));
    TRY(get_int(L, "pad", 0, 0, 1, &pad));
    TRY(get_int(L, "padding", 0, 0, MAX_KERNEL, &padding));
    TRY(get_int(L, "groups", 1, 1, MAX_DIM, &groups));
    TRY(get_int(L, "dilation", 1, 1, MAX_KERNEL, &dil));
    TRY(get_int(L, "batch_normalize", 0, 0, 1, &bn));
    TRY(get_act(L, "logistic", &act)); /* darknet's default */
    if (pad)
        padding = size / 2; /* pad=1 overrides padding=, as in darknet */
    if (size == 1)
        dil = 1;
    dn_layer *in = NULL;
    int x = -1;
    TRY(prev_layer(L, &in));
    TRY(as_4d(L, in, name, 0, &x));
    if (in->c % groups || n % groups)
        return LERR(AC_E_INVALID, "groups=%lld must divide the %lld input channels and the %lld filters",
                    (long long)groups, (long long)in->c, (long long)n);
    int64_t ek = (size - 1) * dil + 1;
    if (in->h + 2 * padding < ek || in->w + 2 * padding < ek)
        return LERR(AC_E_INVALID, "a %lldx%lld kernel (dilation %lld) does not fit the %lldx%lld input with padding %lld",
                    (long long)size, (long long)size, (long long)dil, (long long)in->h, (long long)in->w,
                    (long long)padding);
    int64_t per_out = in->c / groups * size * size;
    float *w, *b;
    TRY(read_params(L, n, per_out, bn != 0, false, &w, &b));
    char wn[176], bn_[176];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn_, sizeof bn_, "%s.bias", name);
    int64_t wd[4] = {n, in->c / groups, size, size}, bd[1] = {n};
    int ins[3] = {x, -1, -1};
    int rc = const_tensor(L, wn, AC_DT_F32, 4, wd, w, &ins[1]);
    if (!rc)
        rc = const_tensor(L, bn_, AC_DT_F32, 1, bd, b, &ins[2]);
    free(w);
    free(b);
    TRY(rc);
    ac_node *node;
    int y;
    TRY(add_node(L, name, AC_OP_CONV, 3, ins, &y, &node));
    int64_t k2[2] = {size, size}, st[2] = {sy, sx}, pads[4] = {padding, padding, padding, padding}, dl[2] = {dil, dil};
    TRY(attr_ints(L, node, "kernel_shape", 2, k2));
    TRY(attr_ints(L, node, "strides", 2, st));
    TRY(attr_ints(L, node, "pads", 4, pads));
    TRY(attr_ints(L, node, "dilations", 2, dl));
    TRY(attr_num(L, node, "group", AC_ATTR_INT, groups));
    TRY(emit_act(L, act, y, name, &out->tensor));
    out->c = n;
    out->h = (in->h + 2 * padding - ek) / sy + 1;
    out->w = (in->w + 2 * padding - ek) / sx + 1;
    return 0;
}

static int build_maxpool(ld *L, const char *name, dn_layer *out)
{
    int64_t stride, sx, sy, size, padding;
    TRY(get_int(L, "stride", 1, 1, MAX_KERNEL, &stride));
    TRY(get_int(L, "stride_x", stride, 1, MAX_KERNEL, &sx));
    TRY(get_int(L, "stride_y", stride, 1, MAX_KERNEL, &sy));
    TRY(get_int(L, "size", stride, 1, MAX_KERNEL, &size));
    TRY(get_int(L, "padding", size - 1, 0, MAX_KERNEL, &padding));
    /* darknet pads padding/2 before and the rest after, and counts padded
     * pixels as -FLT_MAX: ONNX MaxPool with those pads, as long as no window
     * lies wholly in the padding. */
    int64_t pb = padding / 2, pe = padding - pb;
    if (pe > size - 1)
        return LERR(AC_E_UNSUPPORTED, "padding=%lld leaves windows without an input pixel (at most %lld for size=%lld)",
                    (long long)padding, (long long)(2 * (size - 1)), (long long)size);
    dn_layer *in = NULL;
    int x = -1;
    TRY(prev_layer(L, &in));
    TRY(as_4d(L, in, name, 0, &x));
    if (in->h + padding < size || in->w + padding < size)
        return LERR(AC_E_INVALID, "size=%lld does not fit the %lldx%lld input with padding %lld", (long long)size,
                    (long long)in->h, (long long)in->w, (long long)padding);
    ac_node *node;
    TRY(add_node(L, name, AC_OP_MAXPOOL, 1, &x, &out->tensor, &node));
    int64_t k2[2] = {size, size}, st[2] = {sy, sx}, pads[4] = {pb, pb, pe, pe};
    TRY(attr_ints(L, node, "kernel_shape", 2, k2));
    TRY(attr_ints(L, node, "strides", 2, st));
    TRY(attr_ints(L, node, "pads", 4, pads));
    out->c = in->c;
    out->h = (in->h + padding - size) / sy + 1;
    out->w = (in->w + padding - size) / sx + 1;
    return 0;
}

static int build_avgpool(ld *L, const char *name, dn_layer *out)
{
    dn_layer *in = NULL;
    int x = -1;
    TRY(prev_layer(L, &in));
    TRY(as_4d(L, in, name, 0, &x));
    TRY(unary(L, name, AC_OP_GLOBAL_AVGPOOL, x, &out->tensor));
    out->c = in->c;
    out->h = out->w = 1;
    return 0;
}

static int build_route(ld *L, const char *name, dn_layer *out)
{
    double v[MAX_LIST];
    int n;
    const dn_opt *o;
    int64_t groups, gid;
    TRY(get_list(L, "layers", true, v, MAX_LIST, &n, &o));
    if (n < 0)
        return LERR(AC_E_INVALID, "a [route] needs layers=");
    TRY(get_int(L, "groups", 1, 1, MAX_DIM, &groups));
    TRY(get_int(L, "group_id", 0, 0, groups - 1, &gid));
    dn_layer *first;
    TRY(ref_layer(L, o, (int64_t)v[0], &first));
    if (n == 1 && groups == 1) {
        *out = *first; /* the same tensor under another layer index */
        out->cost = false;
        return 0;
    }
    int *parts = malloc(sizeof *parts * (size_t)n);
    if (!parts)
        return nomem(L);
    int rc = 0;
    out->c = 0;
    for (int k = 0; k < n && !rc; k++) {
        dn_layer *ly;
        int x;
        char sname[176], cname[192];
        if ((rc = ref_layer(L, o, (int64_t)v[k], &ly)) || (rc = as_4d(L, ly, name, k, &x)))
            break;
        if (ly->h != first->h || ly->w != first->w) {
            rc = OERR(o, AC_E_INVALID, "layer %lld is %lldx%lld, the first is %lldx%lld: route inputs need one size",
                      (long long)(v[k] < 0 ? L->cur + (int64_t)v[k] : (int64_t)v[k]), (long long)ly->w,
                      (long long)ly->h, (long long)first->w, (long long)first->h);
            break;
        }
        if (ly->c % groups) {
            rc = LERR(AC_E_INVALID, "groups=%lld does not divide the %lld channels of input %d", (long long)groups,
                      (long long)ly->c, k);
            break;
        }
        int64_t part = ly->c / groups;
        parts[k] = x;
        out->c += part;
        if (groups == 1)
            continue;
        /* this input's channel group group_id (darknet splits each input) */
        if (n == 1)
            snprintf(sname, sizeof sname, "%s", name);
        else
            snprintf(sname, sizeof sname, "%s_in%d_group", name, k);
        int64_t starts[1] = {part * gid}, ends[1] = {part * (gid + 1)}, axes[1] = {1};
        int ins[4] = {x, -1, -1, -1};
        snprintf(cname, sizeof cname, "%s.starts", sname);
        if ((rc = const_ints(L, cname, 1, starts, &ins[1])))
            break;
        snprintf(cname, sizeof cname, "%s.ends", sname);
        if ((rc = const_ints(L, cname, 1, ends, &ins[2])))
            break;
        snprintf(cname, sizeof cname, "%s.axes", sname);
        if ((rc = const_ints(L, cname, 1, axes, &ins[3])))
            break;
        rc = add_node(L, sname, AC_OP_SLICE, 4, ins, &parts[k], NULL);
    }
    ac_node *node;
    if (!rc && n == 1)
        out->tensor = parts[0];
    else if (!rc && !(rc = add_node(L, name, AC_OP_CONCAT, n, parts, &out->tensor, &node)))
        rc = attr_num(L, node, "axis", AC_ATTR_INT, 1);
    free(parts);
    out->h = first->h;
    out->w = first->w;
    return rc;
}

/* Reads a string key that must have one value (weights_type=none). */
static int only_value(ld *L, const char *key, const char *allowed)
{
    dn_opt *o = find_opt(L, key);
    if (o && strcmp(o->value, allowed))
        return OERR(o, AC_E_UNSUPPORTED, "'%.40s' is not supported (only %s)", o->value, allowed);
    return 0;
}

static int build_shortcut(ld *L, const char *name, dn_layer *out)
{
    double v[MAX_LIST];
    int n;
    const dn_opt *o;
    double alpha, beta;
    dn_act act;
    TRY(get_list(L, "from", true, v, MAX_LIST, &n, &o));
    if (n < 0)
        return LERR(AC_E_INVALID, "a [shortcut] needs from=");
    TRY(get_act(L, "linear", &act));
    TRY(get_float(L, "alpha", 1, -1e30, 1e30, &alpha)); /* pjreddie: alpha * previous + beta * from */
    TRY(get_float(L, "beta", 1, -1e30, 1e30, &beta));
    TRY(only_value(L, "weights_type", "none"));
    TRY(only_value(L, "weights_normalization", "none"));
    TRY(only_value(L, "weights_normalizion", "none")); /* AlexeyAB's spelling */
    if (n > 1 && (alpha != 1 || beta != 1))
        return LERR(AC_E_UNSUPPORTED, "alpha/beta with several from= layers");
    dn_layer *in = NULL;
    int acc = -1;
    char tmp[176];
    TRY(prev_layer(L, &in));
    TRY(as_4d(L, in, name, 0, &acc));
    if (alpha != 1) {
        snprintf(tmp, sizeof tmp, "%s_alpha", name);
        TRY(scalar_op(L, tmp, AC_OP_MUL, acc, (float)alpha, false, &acc));
    }
    for (int k = 0; k < n; k++) {
        dn_layer *ly;
        int x;
        TRY(ref_layer(L, o, (int64_t)v[k], &ly));
        TRY(as_4d(L, ly, name, k + 1, &x));
        if (ly->c != in->c || ly->h != in->h || ly->w != in->w)
            return OERR(o, AC_E_UNSUPPORTED,
                        "layer %lld is %lldx%lldx%lld, the previous layer %lldx%lldx%lld: only equal shapes are added",
                        (long long)(v[k] < 0 ? L->cur + (int64_t)v[k] : (int64_t)v[k]), (long long)ly->w,
                        (long long)ly->h, (long long)ly->c, (long long)in->w, (long long)in->h, (long long)in->c);
        if (beta != 1) {
            snprintf(tmp, sizeof tmp, "%s_beta", name);
            TRY(scalar_op(L, tmp, AC_OP_MUL, x, (float)beta, false, &x));
        }
        if (k == n - 1)
            snprintf(tmp, sizeof tmp, "%s", name);
        else
            snprintf(tmp, sizeof tmp, "%s_add%d", name, k);
        TRY(binary(L, tmp, AC_OP_ADD, acc, x, &acc));
    }
    TRY(emit_act(L, act, acc, name, &out->tensor));
    out->c = in->c;
    out->h = in->h;
    out->w = in->w;
    return 0;
}

static int build_upsample(ld *L, const char *name, dn_layer *out)
{
    int64_t stride;
    double scale;
    TRY(get_int(L, "stride", 2, -MAX_KERNEL, MAX_KERNEL, &stride));
    TRY(get_float(L, "scale", 1, -1e30, 1e30, &scale));
    if (stride < 1)
        return LERR(AC_E_UNSUPPORTED, "stride=%lld: darknet's downsampling (stride < 0) is not supported",
                    (long long)stride);
    dn_layer *in = NULL;
    int x = -1;
    TRY(prev_layer(L, &in));
    TRY(as_4d(L, in, name, 0, &x));
    out->c = in->c;
    out->h = in->h * stride;
    out->w = in->w * stride;
    if (stride == 1 && scale == 1) {
        out->tensor = x;
        return 0;
    }
    int y = x;
    if (stride > 1) {
        /* nearest: out[y][x] = in[y / stride][x / stride] */
        char sname[176];
        snprintf(sname, sizeof sname, "%s.scales", name);
        float sc[4] = {1, 1, (float)stride, (float)stride};
        int64_t sd[1] = {4};
        int ins[3] = {x, -1, -1};
        ac_node *node;
        TRY(const_tensor(L, sname, AC_DT_F32, 1, sd, sc, &ins[2]));
        TRY(add_node(L, name, AC_OP_RESIZE, 3, ins, &y, &node));
        TRY(attr_str(L, node, "mode", "nearest"));
        TRY(attr_str(L, node, "coordinate_transformation_mode", "asymmetric"));
        TRY(attr_str(L, node, "nearest_mode", "floor"));
    }
    if (scale != 1) {
        char mname[176];
        snprintf(mname, sizeof mname, "%s_scale", name);
        TRY(scalar_op(L, mname, AC_OP_MUL, y, (float)scale, false, &y));
    }
    out->tensor = y;
    return 0;
}

/* [dropout] does nothing at inference; [cost] is the training loss. */
static int build_passthrough(ld *L, const char *name, dn_layer *out)
{
    dn_layer *in = NULL;
    TRY(prev_layer(L, &in));
    *out = *in;
    out->cost = false;
    return 0;
}

static int build_cost(ld *L, const char *name, dn_layer *out)
{
    TRY(build_passthrough(L, name, out));
    out->cost = true;
    return 0;
}

static int build_connected(ld *L, const char *name, dn_layer *out)
{
    int64_t n, bn;
    dn_act act;
    TRY(get_int(L, "output", 1, 1, MAX_DIM, &n));
    TRY(get_int(L, "batch_normalize", 0, 0, 1, &bn));
    TRY(get_act(L, "logistic", &act));
    dn_layer *in = NULL;
    int x = -1;
    TRY(prev_layer(L, &in));
    TRY(as_flat(L, in, name, &x));
    int64_t inputs = in->c * in->h * in->w;
    float *w, *b;
    TRY(read_params(L, n, inputs, bn != 0, true, &w, &b));
    char wn[176], bn_[176];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn_, sizeof bn_, "%s.bias", name);
    int64_t wd[2] = {n, inputs}, bd[1] = {n};
    int ins[3] = {x, -1, -1};
    int rc = const_tensor(L, wn, AC_DT_F32, 2, wd, w, &ins[1]);
    if (!rc)
        rc = const_tensor(L, bn_, AC_DT_F32, 1, bd, b, &ins[2]);
    free(w);
    free(b);
    TRY(rc);
    ac_node *node;
    int y;
    TRY(add_node(L, name, AC_OP_GEMM, 3, ins, &y, &node));
    TRY(attr_num(L, node, "transB", AC_ATTR_INT, 1));
    TRY(emit_act(L, act, y, name, &out->tensor));
    out->flat = true;
    out->c = n;
    out->h = out->w = 1;
    return 0;
}

static int build_softmax(ld *L, const char *name, dn_layer *out)
{
    int64_t groups;
    double temp;
    TRY(get_int(L, "groups", 1, 1, MAX_DIM, &groups));
    TRY(get_float(L, "temperature", 1, 1e-30, 1e30, &temp));
    dn_opt *tree = find_opt(L, "tree");
    if (tree)
        return OERR(tree, AC_E_UNSUPPORTED, "'%.40s': the hierarchical softmax is not supported", tree->value);
    dn_layer *in = NULL;
    int x = -1;
    char tmp[176];
    TRY(prev_layer(L, &in));
    TRY(as_flat(L, in, name, &x));
    int64_t inputs = in->c * in->h * in->w;
    if (inputs % groups)
        return LERR(AC_E_INVALID, "groups=%lld does not divide the %lld inputs", (long long)groups, (long long)inputs);
    if (temp != 1) {
        snprintf(tmp, sizeof tmp, "%s_temperature", name);
        TRY(scalar_op(L, tmp, AC_OP_DIV, x, (float)temp, false, &x));
    }
    ac_node *node;
    out->flat = true;
    out->c = inputs;
    out->h = out->w = 1;
    if (groups == 1) {
        TRY(add_node(L, name, AC_OP_SOFTMAX, 1, &x, &out->tensor, &node));
        return attr_num(L, node, "axis", AC_ATTR_INT, 1);
    }
    /* darknet: a softmax over each of the groups consecutive slices */
    int64_t gshape[3] = {0, groups, inputs / groups}, fshape[2] = {0, inputs};
    int s = -1, y = -1;
    char sname[192];
    snprintf(tmp, sizeof tmp, "%s_groups", name);
    snprintf(sname, sizeof sname, "%s.shape", tmp);
    TRY(const_ints(L, sname, 3, gshape, &s));
    TRY(binary(L, tmp, AC_OP_RESHAPE, x, s, &y));
    snprintf(tmp, sizeof tmp, "%s_grouped", name);
    TRY(add_node(L, tmp, AC_OP_SOFTMAX, 1, &y, &y, &node));
    TRY(attr_num(L, node, "axis", AC_ATTR_INT, 2));
    snprintf(sname, sizeof sname, "%s.shape", name);
    TRY(const_ints(L, sname, 2, fshape, &s));
    return binary(L, name, AC_OP_RESHAPE, y, s, &out->tensor);
}

/* Appends printf output to a growing malloc'ed string; returns -1 when out of memory. */
__attribute__((format(printf, 2, 3))) static int sb_add(char **s, const char *fmt, ...)
{
    size_t have = *s ? strlen(*s) : 0;
    va_list ap;
    va_start(ap, fmt);
    int add = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = realloc(*s, have + (size_t)add + 1);
    if (!p)
        return -1;
    va_start(ap, fmt);
    vsnprintf(p + have, (size_t)add + 1, fmt, ap);
    va_end(ap);
    *s = p;
    return 0;
}

/* [yolo] and [region]: the raw input becomes a graph output; the decoding
 * parameters go into the metadata (ac_darknet_heads). */
static int build_head(ld *L, bool yolo, dn_layer *out)
{
    int64_t classes, num, coords = 4, softmax = 0, new_coords = 0;
    double scale_xy = 1, mask[AC_DARKNET_MAX_ANCHORS], anchors[2 * AC_DARKNET_MAX_ANCHORS + 1];
    int nmask, nanch;
    const dn_opt *ao;
    TRY(get_int(L, "classes", 20, 1, 100000, &classes));
    TRY(get_int(L, "num", 1, 1, AC_DARKNET_MAX_ANCHORS, &num));
    if (yolo) {
        TRY(get_list(L, "mask", true, mask, AC_DARKNET_MAX_ANCHORS, &nmask, NULL));
        TRY(get_float(L, "scale_x_y", 1, 0, 1e6, &scale_xy));
        TRY(get_int(L, "new_coords", 0, 0, 1, &new_coords));
    } else {
        TRY(get_int(L, "coords", 4, 1, 1000, &coords));
        TRY(get_int(L, "softmax", 0, 0, 1, &softmax));
        nmask = -1;
        dn_opt *tree = find_opt(L, "tree");
        if (tree)
            return OERR(tree, AC_E_UNSUPPORTED, "'%.40s': the hierarchical softmax is not supported", tree->value);
    }
    TRY(get_list(L, "anchors", false, anchors, 2 * AC_DARKNET_MAX_ANCHORS + 1, &nanch, &ao));
    if (nanch != 2 * num)
        return LERR(AC_E_INVALID, "anchors= must hold num=%lld pairs (%lld values), it has %d", (long long)num,
                    (long long)(2 * num), nanch < 0 ? 0 : nanch);
    for (int k = 0; k < nanch; k++)
        if (!(anchors[k] > 0))
            return OERR(ao, AC_E_INVALID, "value %d (%g) must be > 0", k + 1, anchors[k]);
    if (nmask < 0) {
        nmask = (int)num;
        for (int k = 0; k < nmask; k++)
            mask[k] = k;
    }
    for (int k = 0; k < nmask; k++)
        if (mask[k] < 0 || mask[k] >= (double)num)
            return LERR(AC_E_INVALID, "mask value %g is not an anchor index 0..%lld", mask[k], (long long)(num - 1));
    dn_layer *in = NULL;
    TRY(prev_layer(L, &in));
    int64_t per = yolo ? classes + 5 : coords + 1 + classes;
    if (in->flat || in->c != nmask * per)
        return LERR(AC_E_INVALID, "the layer before has %lld channels%s; %d anchors x (%lld classes + %d) need %lld",
                    (long long)in->c, in->flat ? " (flat)" : "", nmask, (long long)classes, yolo ? 5 : (int)coords + 1,
                    (long long)(nmask * per));
    if (L->nheads == MAX_HEADS)
        return LERR(AC_E_UNSUPPORTED, "more than %d yolo/region layers", MAX_HEADS);
    char *m = NULL;
    int bad = sb_add(&m, "%s classes=%lld layer=%d mask=", yolo ? "yolo" : "region", (long long)classes, L->cur);
    for (int k = 0; k < nmask && !bad; k++)
        bad = sb_add(&m, "%s%d", k ? "," : "", (int)mask[k]);
    bad = bad || sb_add(&m, " anchors=");
    for (int k = 0; k < nanch && !bad; k++)
        bad = sb_add(&m, "%s%.9g", k ? "," : "", anchors[k]);
    if (!bad && yolo)
        bad = sb_add(&m, " scale_x_y=%.9g new_coords=%lld", scale_xy, (long long)new_coords);
    if (!bad && !yolo)
        bad = sb_add(&m, " coords=%lld softmax=%lld", (long long)coords, (long long)softmax);
    if (bad) {
        free(m);
        return nomem(L);
    }
    L->head_meta[L->nheads] = m;
    L->head_tensor[L->nheads++] = in->tensor;
    *out = *in;
    out->head = true;
    out->cost = false;
    return 0;
}

static int build_yolo(ld *L, const char *name, dn_layer *out) { return build_head(L, true, out); }
static int build_region(ld *L, const char *name, dn_layer *out) { return build_head(L, false, out); }

static const struct {
    const char *type, *alias, *prefix;
    int (*build)(ld *L, const char *name, dn_layer *out);
} kinds[] = {
    {"convolutional", "conv", "conv", build_conv},  {"maxpool", "max", "maxpool", build_maxpool},
    {"avgpool", "avg", "avgpool", build_avgpool},   {"route", NULL, "route", build_route},
    {"shortcut", NULL, "shortcut", build_shortcut}, {"upsample", NULL, "upsample", build_upsample},
    {"dropout", NULL, "dropout", build_passthrough}, {"connected", "conn", "fc", build_connected},
    {"softmax", "soft", "softmax", build_softmax},  {"yolo", NULL, "yolo", build_yolo},
    {"region", NULL, "region", build_region},       {"cost", NULL, "cost", build_cost},
};

/* ---- the whole network ------------------------------------------------------------------- */

static int build_input(ld *L, const ac_darknet_options *opt)
{
    L->cur = -1;
    L->sec = &L->cfg.sec[0];
    int64_t w, h, c;
    TRY(get_int(L, "width", 0, 0, MAX_DIM, &w));
    TRY(get_int(L, "height", 0, 0, MAX_DIM, &h));
    TRY(get_int(L, "channels", 0, 0, MAX_DIM, &c));
    if (!w || !h || !c)
        return LERR(AC_E_UNSUPPORTED, "width, height and channels must be given (> 0); networks without an image "
                                      "input (inputs=) are not supported");
    int64_t dims[4] = {1, c, h, w};
    const ac_onnx_shape *sh = opt ? opt->shape : NULL;
    if (sh) {
        if (sh->name[0] && strcmp(sh->name, "input"))
            return ac_err_set(L->err, AC_E_INVALID, "--input_data_shape names '%s'; the Darknet input is 'input'",
                              sh->name);
        if (sh->ndim != 4 || sh->dims[1] != c)
            return ac_err_set(L->err, AC_E_INVALID,
                              "--input_data_shape must be (N,%lld,H,W): the cfg has channels=%lld", (long long)c,
                              (long long)c);
        for (int d = 0; d < 4; d++)
            if (sh->dims[d] < 1 || sh->dims[d] > MAX_DIM)
                return ac_err_set(L->err, AC_E_INVALID, "--input_data_shape: dim %d (%lld) must be 1..%lld", d,
                                  (long long)sh->dims[d], (long long)MAX_DIM);
        memcpy(dims, sh->dims, sizeof dims);
    }
    if (dims[0] * dims[1] * dims[2] * dims[3] > AC_ONNX_MAX_NUMEL)
        return LERR(AC_E_UNSUPPORTED, "an input of %lldx%lldx%lldx%lld has more than 2^31 elements", (long long)dims[0],
                    (long long)dims[1], (long long)dims[2], (long long)dims[3]);
    L->batch = dims[0];
    int t = ac_graph_add_tensor(L->g, "input", AC_DT_F32, 4, dims);
    if (t < 0)
        return nomem(L);
    L->input = (dn_layer){.tensor = t, .c = dims[1], .h = dims[2], .w = dims[3]};
    return 0;
}

static int build_layers(ld *L)
{
    for (int i = 0; i < L->nlayers; i++) {
        L->cur = i;
        L->sec = &L->cfg.sec[i + 1];
        size_t k = 0, nk = sizeof kinds / sizeof kinds[0];
        while (k < nk && strcmp(L->sec->type, kinds[k].type) && !(kinds[k].alias && !strcmp(L->sec->type, kinds[k].alias)))
            k++;
        if (k == nk)
            return LERR(AC_E_UNSUPPORTED, "layer type [%s] is not supported (convolutional, maxpool, avgpool, route, "
                                          "shortcut, upsample, dropout, connected, softmax, yolo, region, cost)",
                        L->sec->type);
        char name[48];
        snprintf(name, sizeof name, "%s_%d", kinds[k].prefix, i);
        dn_layer *ly = &L->layers[i];
        TRY(kinds[k].build(L, name, ly));
        TRY(check_unused(L));
        if (ly->c * ly->h * ly->w > AC_ONNX_MAX_NUMEL / L->batch)
            return LERR(AC_E_UNSUPPORTED, "the output (%lldx%lldx%lld per sample) has more than 2^31 elements",
                        (long long)ly->c, (long long)ly->h, (long long)ly->w);
    }
    return 0;
}

/* Graph outputs: the yolo/region inputs, else the last layer that is not [cost]. */
static int set_outputs(ld *L)
{
    int outs[MAX_HEADS], n = L->nheads;
    memcpy(outs, L->head_tensor, sizeof(int) * (size_t)n);
    if (!n) {
        int i = L->nlayers - 1;
        while (i >= 0 && L->layers[i].cost)
            i--;
        const dn_layer *last = i >= 0 ? &L->layers[i] : &L->input;
        outs[n++] = last->tensor;
    }
    for (int k = 0; k < n; k++) {
        if (outs[k] == L->input.tensor)
            return ac_err_set(L->err, AC_E_INVALID, "%s: the network computes nothing (its output is its input)",
                              L->cfg_name);
        for (int j = 0; j < k; j++)
            if (outs[j] == outs[k])
                return ac_err_set(L->err, AC_E_INVALID, "%s: two yolo/region layers read the same tensor '%s'",
                                  L->cfg_name, L->g->tensors[outs[k]].name);
    }
    if (ac_graph_set_io(L->g, 1, &L->input.tensor, n, outs))
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    char key[32], val[16];
    for (int k = 0; k < L->nheads; k++) {
        snprintf(key, sizeof key, "darknet.head.%d", k);
        char *full = NULL;
        if (sb_add(&full, "%s output=%d", L->head_meta[k], k) || ac_graph_set_meta(L->g, key, full)) {
            free(full);
            return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
        }
        free(full);
    }
    snprintf(val, sizeof val, "%d", L->nheads);
    if (ac_graph_set_meta(L->g, "darknet.heads", val))
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    return 0;
}

/* Shape inference must give darknet's own layer shapes. */
static int check_shapes(ld *L)
{
    for (int i = 0; i < L->nlayers; i++) {
        const dn_layer *ly = &L->layers[i];
        const ac_tensor *t = &L->g->tensors[ly->tensor];
        int64_t want[4] = {L->batch, ly->c, ly->h, ly->w}, flat[2] = {L->batch, ly->c * ly->h * ly->w};
        bool ok = ly->flat ? t->ndim == 2 && !memcmp(t->dims, flat, sizeof flat)
                           : t->ndim == 4 && !memcmp(t->dims, want, sizeof want);
        if (!ok) {
            L->cur = i;
            L->sec = &L->cfg.sec[i + 1];
            return LERR(AC_E_INTERNAL, "tensor '%s' has %d dims (%lld, %lld, ...), darknet's shape is %lldx%lldx%lld",
                        t->name, t->ndim, t->ndim > 0 ? (long long)t->dims[0] : -1LL,
                        t->ndim > 1 ? (long long)t->dims[1] : -1LL, (long long)ly->c, (long long)ly->h,
                        (long long)ly->w);
        }
    }
    return 0;
}

static int build(ld *L, const ac_darknet_options *opt)
{
    TRY(build_input(L, opt));
    if (!L->zero_weights)
        TRY(read_header(L));
    L->nlayers = L->cfg.nsec - 1;
    if (!L->nlayers)
        return ac_err_set(L->err, AC_E_INVALID, "%s: no layers after [net]", L->cfg_name);
    L->layers = calloc((size_t)L->nlayers, sizeof *L->layers);
    if (!L->layers)
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    TRY(build_layers(L));
    if (!L->zero_weights && L->wpos != L->wlen) {
        if (L->last_weighted < 0)
            return ac_err_set(L->err, AC_E_INVALID, "%s: %zu bytes of parameters, but no layer of %s has weights",
                              L->weights_name, L->wlen - L->wpos, L->cfg_name);
        const dn_section *s = &L->cfg.sec[L->last_weighted + 1];
        return ac_err_set(L->err, AC_E_INVALID,
                          "%s: %zu bytes after the parameters of the last layer with weights (layer %d, [%s] at %s:%d, "
                          "ends at offset %zu): the file does not belong to this cfg",
                          L->weights_name, L->wlen - L->wpos, L->last_weighted, s->type, L->cfg_name, s->line, L->wpos);
    }
    TRY(set_outputs(L));
    if (ac_graph_toposort(L->g, L->err) || ac_graph_infer_shapes(L->g, L->err))
        return ac_err_prefix(L->err, "%s: ", L->cfg_name);
    return check_shapes(L);
}

ac_graph *ac_darknet_load_buffer(const char *cfg, size_t cfg_len, const char *cfg_name, const void *weights,
                                 size_t weights_len, const char *weights_name, const ac_darknet_options *opt,
                                 ac_err *err)
{
    ac_err local;
    if (!err)
        err = &local;
    ac_err_clear(err);
    ld L = {.err = err, .last_weighted = -1};
    L.cfg_name = cfg_name ? cfg_name : "model.cfg";
    L.weights_name = weights_name ? weights_name : "model.weights";
    L.zero_weights = weights == NULL;
    L.wbuf = weights;
    L.wlen = weights ? weights_len : 0;
    int rc = parse_cfg(cfg ? cfg : "", cfg ? cfg_len : 0, L.cfg_name, &L.cfg, err);
    if (!rc) {
        L.g = ac_graph_new(L.cfg_name);
        if (!L.g)
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory for the graph");
    }
    if (!rc) {
        L.g->opset = AC_DARKNET_OPSET;
        rc = build(&L, opt);
    }
    if (rc && !err->code)
        ac_err_set(err, AC_E_INTERNAL, "%s: import failed without a message", L.cfg_name);
    for (int k = 0; k < L.nheads; k++)
        free(L.head_meta[k]);
    free(L.layers);
    cfg_free(&L.cfg);
    if (rc)
        ac_graph_destroy(&L.g);
    return L.g;
}

ac_graph *ac_darknet_load(const char *cfg_path, const char *weights_path, const ac_darknet_options *opt,
                          ac_err *err)
{
    char *cfg = NULL, *w = NULL;
    size_t clen, wlen;
    if (ac_model_file_read(cfg_path, AC_DARKNET_MAX_CFG_BYTES, "cfg", &cfg, &clen, err) ||
        ac_model_file_read(weights_path, (size_t)2 << 30, "weights", &w, &wlen, err)) {
        free(cfg);
        return NULL;
    }
    ac_graph *g = ac_darknet_load_buffer(cfg, clen, ac_import_base_name(cfg_path), w, wlen, ac_import_base_name(weights_path), opt, err);
    free(cfg);
    free(w);
    return g;
}

/* ---- heads from the metadata ----------------------------------------------------------- */

static int parse_numbers(const char *v, size_t len, bool ints, double *out, int max, int *n)
{
    *n = 0;
    const char *p = v, *end = v + len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
        char item[64];
        if (!l || l >= sizeof item || *n == max)
            return -1;
        memcpy(item, p, l);
        item[l] = '\0';
        int64_t iv;
        if (ints ? !parse_int(item, &iv) : !parse_float(item, &out[*n]))
            return -1;
        if (ints)
            out[*n] = (double)iv;
        (*n)++;
        p = c ? c + 1 : end;
    }
    return *n ? 0 : -1;
}

static int parse_head(const char *key, const char *text, int noutputs, ac_darknet_head *h, ac_err *err)
{
    memset(h, 0, sizeof *h);
    h->scale_xy = 1;
    h->output = -1;
    const char *p = text;
    bool first = true;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        double v[2 * AC_DARKNET_MAX_ANCHORS];
        int n = 0, bad = 0;
        if (first) {
            if (len == 4 && !strncmp(p, "yolo", 4))
                h->kind = AC_DARKNET_YOLO;
            else if (len == 6 && !strncmp(p, "region", 6))
                h->kind = AC_DARKNET_REGION;
            else
                bad = 1;
        } else if (!eq) {
            bad = 1;
        } else {
            size_t kl = (size_t)(eq - p), vl = len - kl - 1;
            const char *val = eq + 1;
#define KEY(s) (kl == sizeof(s) - 1 && !strncmp(p, s, kl))
            if (KEY("anchors")) {
                bad = parse_numbers(val, vl, false, v, 2 * AC_DARKNET_MAX_ANCHORS, &n) || n % 2;
                h->nanchors = n / 2;
                for (int k = 0; k < n; k++)
                    h->anchors[k / 2][k % 2] = (float)v[k];
            } else if (KEY("mask")) {
                bad = parse_numbers(val, vl, true, v, AC_DARKNET_MAX_ANCHORS, &n);
                h->nmask = n;
                for (int k = 0; k < n; k++)
                    h->mask[k] = (int)v[k];
            } else if (KEY("scale_x_y")) {
                bad = parse_numbers(val, vl, false, v, 1, &n);
                h->scale_xy = (float)v[0];
            } else if (KEY("classes") || KEY("output") || KEY("new_coords") || KEY("layer") || KEY("coords") ||
                       KEY("softmax")) {
                bad = parse_numbers(val, vl, true, v, 1, &n) || v[0] < 0 || v[0] > 1e6;
                if (KEY("classes"))
                    h->classes = (int)v[0];
                else if (KEY("output"))
                    h->output = (int)v[0];
                else if (KEY("new_coords"))
                    h->new_coords = (int)v[0];
            }
#undef KEY
        }
        if (bad)
            return ac_err_set(err, AC_E_INVALID, "metadata %s: item '%.*s' is malformed", key, (int)(len > 60 ? 60 : len),
                              p);
        first = false;
        p = sp ? sp + 1 : p + len;
    }
    if (!h->kind || h->classes < 1 || h->nanchors < 1 || h->nmask < 1 || h->output < 0 || h->output >= noutputs)
        return ac_err_set(err, AC_E_INVALID,
                          "metadata %s: needs a kind, classes >= 1, anchors, mask and an output index below %d", key,
                          noutputs);
    for (int k = 0; k < h->nmask; k++)
        if (h->mask[k] < 0 || h->mask[k] >= h->nanchors)
            return ac_err_set(err, AC_E_INVALID, "metadata %s: mask value %d is not an anchor index", key, h->mask[k]);
    return 0;
}

int ac_darknet_heads(const ac_graph *g, ac_darknet_head *heads, int max, int *n, ac_err *err)
{
    *n = 0;
    const char *cnt = ac_graph_get_meta(g, "darknet.heads");
    if (!cnt)
        return 0;
    int64_t count;
    if (!parse_int(cnt, &count) || count < 0 || count > MAX_HEADS)
        return ac_err_set(err, AC_E_INVALID, "metadata darknet.heads: '%.20s' is not a count 0..%d", cnt, MAX_HEADS);
    if (count > max)
        return ac_err_set(err, AC_E_INVALID, "the graph has %lld YOLO heads, room for %d", (long long)count, max);
    for (int k = 0; k < (int)count; k++) {
        char key[32];
        snprintf(key, sizeof key, "darknet.head.%d", k);
        const char *v = ac_graph_get_meta(g, key);
        if (!v)
            return ac_err_set(err, AC_E_INVALID, "metadata %s is missing", key);
        TRY(parse_head(key, v, g->noutputs, &heads[k], err));
    }
    *n = (int)count;
    return 0;
}
