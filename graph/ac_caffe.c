/* ac_caffe: Caffe prototxt + caffemodel -> ac_graph. See ac_caffe.h for the
 * grammar and the layer list, docs/importers.md for the mapping.
 *
 * Structure: the prototxt text becomes a tree of fields (parse_*), each with
 * its line and column; the caffemodel is unpacked by protobuf-c into layer
 * names and blobs. One pass over the layers then emits ONNX-semantics nodes,
 * inferring each node's shape as soon as it is added (the op's own infer
 * function), so a layer sees its inputs' shapes and every rule is checked
 * with the prototxt position at hand. Fields a layer does not read are
 * errors unless they are training-only. */
#include "ac_caffe.h"

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
#include "caffe_min.pb-c.h"

#define MAX_DEPTH 32              /* nested messages in the prototxt */
#define MAX_LIST 64               /* values of one repeated numeric field */
#define MAX_BOTTOMS 256
#define MAX_KERNEL 4096
#define MAX_DIM ((int64_t)1 << 24)
/* Without a caffemodel every parameter is zero; this bounds what a prototxt
 * can make us allocate then. */
#define MAX_ZERO_PARAMS ((int64_t)1 << 24)

/* ---- prototxt text -> field tree -------------------------------------------------------- */

typedef enum { PT_SCALAR, PT_STRING, PT_MSG } pt_kind;

typedef struct {
    const char *name, *val; /* val: the token (scalars) or the unescaped text (strings) */
    int line, col;
    pt_kind kind;
    int child, next;        /* first child (messages) and next sibling, -1 for none */
    bool used;
} pt_field;

typedef struct {
    const char *s, *file;
    size_t len, pos;
    int line, col;
    ac_err *err;
    ac_arena *arena;
    pt_field *f;
    int n, cap;
} pt_parser;

__attribute__((format(printf, 5, 6))) static int pt_err(pt_parser *P, int line, int col, ac_status code,
                                                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ac_err_set(P->err, code, "%s:%d:%d: %s", P->file, line, col, msg);
}

static int peek(const pt_parser *P) { return P->pos < P->len ? (unsigned char)P->s[P->pos] : -1; }

static void advance(pt_parser *P)
{
    if (P->s[P->pos] == '\n') {
        P->line++;
        P->col = 1;
    } else
        P->col++;
    P->pos++;
}

static int skip_blank(pt_parser *P)
{
    for (int c; (c = peek(P)) >= 0;) {
        if (c == '#') {
            while (peek(P) >= 0 && peek(P) != '\n')
                advance(P);
        } else if (c == '\0')
            return pt_err(P, P->line, P->col, AC_E_INVALID, "a NUL byte (not a text file?)");
        else if (isspace(c))
            advance(P);
        else
            break;
    }
    return 0;
}

static int new_field(pt_parser *P, int *idx)
{
    if (P->n == P->cap) {
        int ncap = P->cap ? P->cap * 2 : 256;
        pt_field *nf = realloc(P->f, (size_t)ncap * sizeof *nf);
        if (!nf)
            return pt_err(P, P->line, P->col, AC_E_NOMEM, "out of memory");
        P->f = nf;
        P->cap = ncap;
    }
    P->f[P->n] = (pt_field){.child = -1, .next = -1, .line = P->line, .col = P->col};
    *idx = P->n++;
    return 0;
}

static bool is_ident_start(int c) { return isalpha(c) || c == '_'; }
static bool is_token_char(int c) { return isalnum(c) || c == '_' || c == '+' || c == '-' || c == '.'; }

/* A quoted string with C escapes (\n \t \\ \" \' and \ooo octal). */
static int parse_string(pt_parser *P, const char **out)
{
    int q = peek(P), line = P->line, col = P->col;
    advance(P);
    size_t start = P->pos, cap = 0;
    while (peek(P) != q) {
        if (peek(P) < 0 || peek(P) == '\n')
            return pt_err(P, line, col, AC_E_INVALID, "the string is not closed on its line");
        if (peek(P) == '\\')
            advance(P);
        if (peek(P) < 0)
            return pt_err(P, line, col, AC_E_INVALID, "the string is not closed");
        advance(P);
    }
    size_t end = P->pos;
    advance(P);
    cap = end - start;
    char *s = ac_arena_alloc(P->arena, cap + 1), *w = s;
    if (!s)
        return pt_err(P, line, col, AC_E_NOMEM, "out of memory");
    for (size_t i = start; i < end; i++) {
        char c = P->s[i];
        if (c != '\\') {
            *w++ = c;
            continue;
        }
        c = P->s[++i];
        if (c >= '0' && c <= '7') {
            int v = 0, k = 0;
            for (; k < 3 && i < end && P->s[i] >= '0' && P->s[i] <= '7'; k++, i++)
                v = v * 8 + (P->s[i] - '0');
            i--;
            if (v == 0 || v > 255)
                return pt_err(P, line, col, AC_E_INVALID, "an octal escape must be 1..255");
            *w++ = (char)v;
            continue;
        }
        const char *from = "nt\\\"'r", *to = "\n\t\\\"'\r";
        const char *m = c ? strchr(from, c) : NULL;
        if (!m)
            return pt_err(P, line, col, AC_E_INVALID, "unknown escape '\\%c' in a string", c);
        *w++ = to[m - from];
    }
    *w = '\0';
    *out = s;
    return 0;
}

static int parse_message(pt_parser *P, int parent, int close, int depth);

/* One field: name, then ': value', or '{ ... }' / '< ... >' (with or without ':'). */
static int parse_field(pt_parser *P, int parent, int depth, int *idx)
{
    int line = P->line, col = P->col;
    size_t start = P->pos;
    if (!is_ident_start(peek(P)))
        return pt_err(P, line, col, AC_E_INVALID, "expected a field name, found '%c'", peek(P));
    while (peek(P) >= 0 && (isalnum(peek(P)) || peek(P) == '_'))
        advance(P);
    const char *name = ac_arena_strndup(P->arena, P->s + start, P->pos - start);
    if (!name)
        return pt_err(P, line, col, AC_E_NOMEM, "out of memory");
    if (skip_blank(P))
        return -1;
    bool colon = peek(P) == ':';
    if (colon) {
        advance(P);
        if (skip_blank(P))
            return -1;
    }
    if (new_field(P, idx))
        return -1;
    pt_field *f = &P->f[*idx];
    f->name = name;
    f->line = line;
    f->col = col;
    int c = peek(P);
    if (c == '{' || c == '<') {
        if (depth >= MAX_DEPTH)
            return pt_err(P, line, col, AC_E_UNSUPPORTED, "messages nest deeper than %d", MAX_DEPTH);
        P->f[*idx].kind = PT_MSG;
        advance(P);
        return parse_message(P, *idx, c == '{' ? '}' : '>', depth + 1);
    }
    if (!colon)
        return pt_err(P, P->line, P->col, AC_E_INVALID, "expected ':' or '{' after field '%s'", name);
    if (c == '"' || c == '\'') {
        P->f[*idx].kind = PT_STRING;
        return parse_string(P, &P->f[*idx].val);
    }
    if (c == '[')
        return pt_err(P, P->line, P->col, AC_E_UNSUPPORTED,
                      "field '%s': lists in brackets are not supported; repeat the field instead", name);
    size_t vs = P->pos;
    int vline = P->line, vcol = P->col;
    while (peek(P) >= 0 && is_token_char(peek(P)))
        advance(P);
    if (P->pos == vs)
        return pt_err(P, vline, vcol, AC_E_INVALID, "field '%s': expected a value", name);
    P->f[*idx].kind = PT_SCALAR;
    P->f[*idx].val = ac_arena_strndup(P->arena, P->s + vs, P->pos - vs);
    return P->f[*idx].val ? 0 : pt_err(P, vline, vcol, AC_E_NOMEM, "out of memory");
}

/* Fields up to the closing bracket (or the end of the text for the top level, close = 0). */
static int parse_message(pt_parser *P, int parent, int close, int depth)
{
    /* the bracket that opened the message is the character before */
    int open_line = P->line, open_col = close ? P->col - 1 : P->col, tail = -1;
    for (;;) {
        if (skip_blank(P))
            return -1;
        int c = peek(P);
        if (c < 0) {
            if (close)
                return pt_err(P, open_line, open_col, AC_E_INVALID, "the message opened here is not closed with '%c'",
                              close);
            return 0;
        }
        if (close && c == close) {
            advance(P);
            return 0;
        }
        if (c == '}' || c == '>')
            return pt_err(P, P->line, P->col, AC_E_INVALID, "'%c' closes no message", c);
        int idx;
        if (parse_field(P, parent, depth, &idx))
            return -1;
        if (tail < 0)
            P->f[parent].child = idx;
        else
            P->f[tail].next = idx;
        tail = idx;
        if (skip_blank(P))
            return -1;
        if (peek(P) == ',' || peek(P) == ';')
            advance(P);
    }
}

/* ---- the loader ------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int tensor;
    bool read; /* some layer read it: not a graph output */
} cf_blob;

typedef struct {
    const char *name;
    size_t nblobs;
    CaffeMin__BlobProto **blobs;
} cf_weights;

typedef struct {
    ac_err *err;
    const char *text_name, *model_name;
    pt_parser P;
    ac_graph *g;
    const ac_caffe_options *opt;
    int nshapes_used;
    /* caffemodel */
    CaffeMin__NetParameter *net;
    cf_weights *w;
    int nw;
    bool zero_weights;
    int64_t zero_params;
    /* name -> current tensor of each top */
    cf_blob *blobs;
    int nblobs, cap_blobs;
    int order;          /* number of tops ever written, for output order */
    /* the layer being built */
    int layer;          /* its field index */
    const char *lname, *ltype;
    int pm;             /* its *_param message, -1 when absent */
    int nin;
    int ins[MAX_BOTTOMS];
    int ntop;
    const char *tops[MAX_BOTTOMS];
    const cf_weights *lw;
} ld;

/* "file:line:col: layer 'name' (Type): message" at field f (or the layer's own line). */
__attribute__((format(printf, 4, 5))) static int lerr(ld *L, int f, ac_status code, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const pt_field *at = &L->P.f[f >= 0 ? f : L->layer];
    if (!L->lname)
        return ac_err_set(L->err, code, "%s:%d:%d: %s", L->text_name, at->line, at->col, msg);
    return ac_err_set(L->err, code, "%s:%d:%d: layer '%s' (%s): %s", L->text_name, at->line, at->col, L->lname,
                      L->ltype, msg);
}

#define TRY(x)                                                                                                        \
    do {                                                                                                              \
        int rc_ = (x);                                                                                                \
        if (rc_)                                                                                                      \
            return rc_;                                                                                               \
    } while (0)

static int nomem(ld *L) { return lerr(L, -1, AC_E_NOMEM, "out of memory"); }

/* ---- field access ----------------------------------------------------------------------- */

/* The only field `name` of message m (marked used), -1 when absent; twice is an error. */
static int find1(ld *L, int m, const char *name, int *out)
{
    *out = -1;
    if (m < 0)
        return 0;
    for (int i = L->P.f[m].child; i >= 0; i = L->P.f[i].next)
        if (!strcmp(L->P.f[i].name, name)) {
            if (*out >= 0)
                return lerr(L, i, AC_E_INVALID, "field '%s' appears twice (first at line %d)", name,
                            L->P.f[*out].line);
            *out = i;
            L->P.f[i].used = true;
        }
    return 0;
}

static int want_kind(ld *L, int f, pt_kind k)
{
    static const char *const what[] = {"a number or a name", "a quoted string", "a message { ... }"};
    if (L->P.f[f].kind != k)
        return lerr(L, f, AC_E_INVALID, "field '%s' must be %s", L->P.f[f].name, what[k]);
    return 0;
}

static bool parse_i64(const char *s, int64_t *v)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!isdigit((unsigned char)*p))
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno)
        return false;
    *v = x;
    return true;
}

static int field_int(ld *L, int f, int64_t lo, int64_t hi, int64_t *v)
{
    TRY(want_kind(L, f, PT_SCALAR));
    if (!parse_i64(L->P.f[f].val, v))
        return lerr(L, f, AC_E_INVALID, "field '%s': '%.40s' is not an integer", L->P.f[f].name, L->P.f[f].val);
    if (*v < lo || *v > hi)
        return lerr(L, f, AC_E_INVALID, "field '%s': %lld is outside %lld..%lld", L->P.f[f].name, (long long)*v,
                    (long long)lo, (long long)hi);
    return 0;
}

static int get_int(ld *L, int m, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *v)
{
    int f;
    TRY(find1(L, m, name, &f));
    *v = def;
    return f < 0 ? 0 : field_int(L, f, lo, hi, v);
}

static int field_float(ld *L, int f, double *v)
{
    TRY(want_kind(L, f, PT_SCALAR));
    const char *s = L->P.f[f].val;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    /* decimal only: strtod's hex floats, inf and nan are no model's numbers */
    if (errno || *end || end == s || !isfinite(x) || strpbrk(s, "xXnN"))
        return lerr(L, f, AC_E_INVALID, "field '%s': '%.40s' is not a finite number", L->P.f[f].name, s);
    *v = x;
    return 0;
}

static int get_float(ld *L, int m, const char *name, double def, double *v)
{
    int f;
    TRY(find1(L, m, name, &f));
    *v = def;
    return f < 0 ? 0 : field_float(L, f, v);
}

/* Every value of a repeated float field (in order). */
static int get_floats(ld *L, int m, const char *name, double *vals, int max, int *n)
{
    *n = 0;
    if (m < 0)
        return 0;
    for (int i = L->P.f[m].child; i >= 0; i = L->P.f[i].next) {
        if (strcmp(L->P.f[i].name, name))
            continue;
        L->P.f[i].used = true;
        if (*n == max)
            return lerr(L, i, AC_E_UNSUPPORTED, "field '%s' repeats more than %d times", name, max);
        TRY(field_float(L, i, &vals[(*n)++]));
    }
    return 0;
}

static int get_bool(ld *L, int m, const char *name, bool def, bool *v)
{
    int f;
    TRY(find1(L, m, name, &f));
    *v = def;
    if (f < 0)
        return 0;
    TRY(want_kind(L, f, PT_SCALAR));
    const char *s = L->P.f[f].val;
    if (!strcmp(s, "true") || !strcmp(s, "1"))
        *v = true;
    else if (!strcmp(s, "false") || !strcmp(s, "0"))
        *v = false;
    else
        return lerr(L, f, AC_E_INVALID, "field '%s': '%.40s' is not true or false", name, s);
    return 0;
}

/* An enum by name: the index in names (NULL-terminated), def when absent. */
static int get_enum(ld *L, int m, const char *name, const char *const *names, int def, int *v)
{
    int f;
    TRY(find1(L, m, name, &f));
    *v = def;
    if (f < 0)
        return 0;
    TRY(want_kind(L, f, PT_SCALAR));
    for (int i = 0; names[i]; i++)
        if (!strcmp(L->P.f[f].val, names[i])) {
            *v = i;
            return 0;
        }
    char list[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return lerr(L, f, AC_E_INVALID, "field '%s': '%.40s' is not one of %s", name, L->P.f[f].val, list);
}

/* Every value of a repeated integer field (in order). */
static int get_ints(ld *L, int m, const char *name, int64_t lo, int64_t hi, int64_t *vals, int *n)
{
    *n = 0;
    if (m < 0)
        return 0;
    for (int i = L->P.f[m].child; i >= 0; i = L->P.f[i].next) {
        if (strcmp(L->P.f[i].name, name))
            continue;
        L->P.f[i].used = true;
        if (*n == MAX_LIST)
            return lerr(L, i, AC_E_UNSUPPORTED, "field '%s' repeats more than %d times", name, MAX_LIST);
        TRY(field_int(L, i, lo, hi, &vals[(*n)++]));
    }
    return 0;
}

/* A sub-message (or -1 when absent). */
static int get_msg(ld *L, int m, const char *name, int *out)
{
    TRY(find1(L, m, name, out));
    return *out < 0 ? 0 : want_kind(L, *out, PT_MSG);
}

/* Fields that only training reads: accepted and ignored anywhere. */
static const char *const ignored_fields[] = {"param", "loss_weight", "propagate_down", "weight_filler",
                                             "bias_filler", "filler", "engine", "blobs_lr", "weight_decay",
                                             "force_nd_im2col", "debug_info", "force_backward", "state", NULL};

static bool ignored(const char *name)
{
    for (int i = 0; ignored_fields[i]; i++)
        if (!strcmp(name, ignored_fields[i]))
            return true;
    return false;
}

/* Every field of message m must have been read (or be ignorable). */
static int check_unused(ld *L, int m, const char *where)
{
    for (int i = L->P.f[m].child; i >= 0; i = L->P.f[i].next)
        if (!L->P.f[i].used && !ignored(L->P.f[i].name))
            return lerr(L, i, AC_E_UNSUPPORTED, "%s has no field '%s' the importer reads (docs/importers.md lists them)",
                        where, L->P.f[i].name);
    return 0;
}

/* ---- graph building ---------------------------------------------------------------------- */

static const char *tname(ld *L, const char *base, const char *suffix)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", base, suffix);
    if (ac_graph_find_tensor(L->g, buf) < 0)
        return ac_arena_strdup(L->g->arena, buf);
    for (int k = 2;; k++) {
        snprintf(buf, sizeof buf, "%s%s_%d", base, suffix, k);
        if (ac_graph_find_tensor(L->g, buf) < 0)
            return ac_arena_strdup(L->g->arena, buf);
    }
}

static int const_tensor(ld *L, const char *suffix, ac_dtype dt, int ndim, const int64_t *dims, const void *data,
                        int *t)
{
    const char *name = tname(L, L->lname, suffix);
    if (!name)
        return nomem(L);
    *t = ac_graph_add_const(L->g, name, dt, ndim, dims, data, L->err);
    return *t < 0 ? (int)L->err->code : 0;
}

static int const_ints(ld *L, const char *suffix, int n, const int64_t *v, int *t)
{
    int64_t d[1] = {n};
    return const_tensor(L, suffix, AC_DT_I64, 1, d, v, t);
}

/* A node named after the layer (suffix for helper nodes); its shape is
 * inferred at once so the next layer sees it. attrs are set by the caller
 * through set_attrs before inference, hence the two steps. */
static int add_node(ld *L, const char *suffix, ac_op op, int nin, const int *ins, ac_node **node, int *out)
{
    *node = NULL;
    *out = -1;
    const char *name = tname(L, L->lname, suffix);
    if (!name || ac_import_node(L->g, name, op, nin, ins, out, node))
        return nomem(L);
    return 0;
}

static int infer(ld *L, ac_node *n)
{
    if (ac_op_def_get(n->op)->infer(L->g, n, L->err))
        return lerr(L, -1, L->err->code, "%s", L->err->msg);
    return 0;
}

static int attr_ints(ld *L, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    return ac_node_set_ints(L->g, n, name, cnt, v) ? nomem(L) : 0;
}

static int attr_int(ld *L, ac_node *n, const char *name, int64_t v)
{
    return ac_node_set_int(L->g, n, name, v) ? nomem(L) : 0;
}

static int attr_float(ld *L, ac_node *n, const char *name, float v)
{
    return ac_node_set_float(L->g, n, name, v) ? nomem(L) : 0;
}

static int attr_str(ld *L, ac_node *n, const char *name, const char *v)
{
    return ac_node_set_string(L->g, n, name, v) ? nomem(L) : 0;
}

/* A node without attributes, inferred. */
static int simple(ld *L, const char *suffix, ac_op op, int nin, const int *ins, int *out)
{
    ac_node *n;
    TRY(add_node(L, suffix, op, nin, ins, &n, out));
    return infer(L, n);
}

static const ac_tensor *T(ld *L, int t) { return &L->g->tensors[t]; }

/* ---- blobs (weights) --------------------------------------------------------------------- */

static const cf_weights *find_weights(ld *L, const char *name)
{
    for (int i = 0; i < L->nw; i++)
        if (L->w[i].name && !strcmp(L->w[i].name, name))
            return &L->w[i];
    return NULL;
}

static int64_t blob_numel(const CaffeMin__BlobProto *b)
{
    if (b->shape) {
        int64_t n = 1;
        for (size_t i = 0; i < b->shape->n_dim; i++) {
            if (b->shape->dim[i] < 0 || b->shape->dim[i] > MAX_DIM * 64)
                return -1;
            n *= b->shape->dim[i];
            if (n > ((int64_t)1 << 32))
                return -1;
        }
        return n;
    }
    /* the legacy 4-D shape: each factor is an int32, so cap the product as it grows */
    int32_t legacy[4] = {b->num, b->channels, b->height, b->width};
    int64_t n = 1;
    for (int i = 0; i < 4; i++) {
        if (legacy[i] < 0)
            return -1;
        n *= legacy[i];
        if (n > ((int64_t)1 << 32))
            return -1;
    }
    return n;
}

/* The layer's blob k as count floats (malloc'ed; zeros without a caffemodel). */
static int blob(ld *L, int k, int64_t count, const char *what, float **out)
{
    *out = NULL;
    if (L->zero_weights) {
        L->zero_params += count;
        if (L->zero_params > MAX_ZERO_PARAMS)
            return lerr(L, -1, AC_E_UNSUPPORTED, "more than %lld parameters; without a caffemodel the check stops there",
                        (long long)MAX_ZERO_PARAMS);
        *out = calloc((size_t)(count ? count : 1), sizeof(float));
        return *out ? 0 : nomem(L);
    }
    if (!L->lw)
        return lerr(L, -1, AC_E_INVALID, "%s has no layer of this name: its %s are missing", L->model_name, what);
    if ((size_t)k >= L->lw->nblobs)
        return lerr(L, -1, AC_E_INVALID, "%s holds %zu blobs for this layer; its %s (blob %d) are missing",
                    L->model_name, L->lw->nblobs, what, k);
    const CaffeMin__BlobProto *b = L->lw->blobs[k];
    if (b->n_double_data && !b->n_data)
        return lerr(L, -1, AC_E_UNSUPPORTED, "%s: blob %d (%s) holds double_data; only float data is supported",
                    L->model_name, k, what);
    int64_t shape_n = blob_numel(b);
    if ((int64_t)b->n_data != count || (shape_n != count && !(shape_n == 0 && !b->shape)))
        return lerr(L, -1, AC_E_INVALID, "%s: blob %d (%s) has %zu values (shape: %lld), the layer needs %lld",
                    L->model_name, k, what, b->n_data, (long long)shape_n, (long long)count);
    for (size_t i = 0; i < b->n_data; i++)
        if (!isfinite(b->data[i]))
            return lerr(L, -1, AC_E_INVALID, "%s: blob %d (%s) value %zu is not a finite number", L->model_name, k,
                        what, i);
    *out = malloc((size_t)(count ? count : 1) * sizeof(float));
    if (!*out)
        return nomem(L);
    memcpy(*out, b->data, (size_t)count * sizeof(float));
    return 0;
}

/* blob k as a constant tensor of the given shape. */
static int blob_const(ld *L, int k, const char *what, const char *suffix, int ndim, const int64_t *dims, int *t)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    float *v;
    TRY(blob(L, k, n, what, &v));
    int rc = const_tensor(L, suffix, AC_DT_F32, ndim, dims, v, t);
    free(v);
    return rc;
}

static size_t nblobs(ld *L) { return L->zero_weights || !L->lw ? 0 : L->lw->nblobs; }

/* ---- layer kinds ------------------------------------------------------------------------- */

static int one_in(ld *L)
{
    if (L->nin != 1 || L->ntop != 1)
        return lerr(L, -1, AC_E_INVALID, "takes one bottom and one top (has %d and %d)", L->nin, L->ntop);
    return 0;
}

/* kernel/pad/stride in either form: `X: v` (repeated, one value for both
 * dims or h then w) or `X_h` + `X_w`. */
static int hw_pair(ld *L, const char *base, int64_t def, int64_t lo, bool required, int64_t out[2])
{
    char hn[32], wn[32];
    snprintf(hn, sizeof hn, "%s_h", base);
    snprintf(wn, sizeof wn, "%s_w", base);
    const char *rep = !strcmp(base, "kernel") ? "kernel_size" : base;
    int64_t v[MAX_LIST];
    int n, fh, fw;
    TRY(get_ints(L, L->pm, rep, lo, MAX_KERNEL, v, &n));
    TRY(find1(L, L->pm, hn, &fh));
    TRY(find1(L, L->pm, wn, &fw));
    if (n && (fh >= 0 || fw >= 0))
        return lerr(L, fh >= 0 ? fh : fw, AC_E_INVALID, "give either %s or %s_h/%s_w, not both", rep, base, base);
    if ((fh >= 0) != (fw >= 0))
        return lerr(L, fh >= 0 ? fh : fw, AC_E_INVALID, "%s_h and %s_w go together", base, base);
    if (n > 2)
        return lerr(L, L->pm, AC_E_UNSUPPORTED, "%s has %d values; only 2-D (1 or 2 values) is supported", rep, n);
    if (fh >= 0) {
        TRY(field_int(L, fh, lo, MAX_KERNEL, &out[0]));
        TRY(field_int(L, fw, lo, MAX_KERNEL, &out[1]));
    } else if (n) {
        out[0] = v[0];
        out[1] = v[n - 1];
    } else {
        if (required)
            return lerr(L, L->pm >= 0 ? L->pm : -1, AC_E_INVALID, "needs %s or %s_h and %s_w", rep, base, base);
        out[0] = out[1] = def;
    }
    return 0;
}

static int spatial_input(ld *L, int *x)
{
    TRY(one_in(L));
    *x = L->ins[0];
    if (T(L, *x)->ndim != 4)
        return lerr(L, -1, AC_E_UNSUPPORTED, "bottom '%s' is %d-D; only 4-D (N, C, H, W) is supported",
                    T(L, *x)->name, T(L, *x)->ndim);
    return 0;
}

static int build_conv(ld *L, bool deconv, int *out)
{
    int x;
    TRY(spatial_input(L, &x));
    int64_t n = 0, group, axis, k[2], p[2], s[2], dil[MAX_LIST];
    int nd;
    bool bias;
    TRY(get_int(L, L->pm, "num_output", 0, 1, MAX_DIM, &n));
    if (n == 0)
        return lerr(L, L->pm, AC_E_INVALID, "needs num_output (> 0)");
    TRY(get_bool(L, L->pm, "bias_term", true, &bias));
    TRY(get_int(L, L->pm, "group", 1, 1, MAX_DIM, &group));
    TRY(get_int(L, L->pm, "axis", 1, 1, 1, &axis));
    TRY(hw_pair(L, "kernel", 0, 1, true, k));
    TRY(hw_pair(L, "pad", 0, 0, false, p));
    TRY(hw_pair(L, "stride", 1, 1, false, s));
    TRY(get_ints(L, L->pm, "dilation", 1, MAX_KERNEL, dil, &nd));
    if (nd > 2)
        return lerr(L, L->pm, AC_E_UNSUPPORTED, "dilation has %d values; only 2-D is supported", nd);
    int64_t d2[2] = {nd ? dil[0] : 1, nd ? dil[nd - 1] : 1};
    int64_t c = T(L, x)->dims[1];
    if (c % group || n % group)
        return lerr(L, L->pm, AC_E_INVALID, "group %lld must divide the %lld input channels and num_output %lld",
                    (long long)group, (long long)c, (long long)n);
    /* Caffe's weight blob: [num_output, C/group, kh, kw]; Deconvolution: [C, num_output/group, kh, kw] */
    int64_t wd[4] = {deconv ? c : n, deconv ? n / group : c / group, k[0], k[1]}, bd[1] = {n};
    int ins[3] = {x, -1, -1};
    TRY(blob_const(L, 0, "weights", ".weight", 4, wd, &ins[1]));
    if (bias)
        TRY(blob_const(L, 1, "biases", ".bias", 1, bd, &ins[2]));
    else if (nblobs(L) > 1)
        return lerr(L, -1, AC_E_INVALID, "bias_term is false but %s holds %zu blobs", L->model_name, nblobs(L));
    ac_node *node;
    TRY(add_node(L, "", deconv ? AC_OP_CONV_TRANSPOSE : AC_OP_CONV, bias ? 3 : 2, ins, &node, out));
    int64_t pads[4] = {p[0], p[1], p[0], p[1]};
    TRY(attr_ints(L, node, "kernel_shape", 2, k));
    TRY(attr_ints(L, node, "strides", 2, s));
    TRY(attr_ints(L, node, "pads", 4, pads));
    TRY(attr_ints(L, node, "dilations", 2, d2));
    TRY(attr_int(L, node, "group", group));
    return infer(L, node);
}

static int build_convolution(ld *L, int *out) { return build_conv(L, false, out); }
static int build_deconvolution(ld *L, int *out) { return build_conv(L, true, out); }

static int build_inner_product(ld *L, int *out)
{
    TRY(one_in(L));
    int64_t n = 0, axis;
    bool bias, transpose;
    TRY(get_int(L, L->pm, "num_output", 0, 1, MAX_DIM, &n));
    if (n == 0)
        return lerr(L, L->pm, AC_E_INVALID, "needs num_output (> 0)");
    TRY(get_bool(L, L->pm, "bias_term", true, &bias));
    TRY(get_bool(L, L->pm, "transpose", false, &transpose));
    TRY(get_int(L, L->pm, "axis", 1, 1, 1, &axis));
    const ac_tensor *xt = T(L, L->ins[0]);
    if (xt->ndim < 2)
        return lerr(L, -1, AC_E_INVALID, "bottom '%s' has %d dims; InnerProduct needs at least 2", xt->name, xt->ndim);
    int64_t kdim = 1;
    for (int d = 1; d < xt->ndim; d++)
        kdim *= xt->dims[d];
    int x;
    ac_node *node;
    TRY(add_node(L, "_flatten", AC_OP_FLATTEN, 1, &L->ins[0], &node, &x));
    TRY(attr_int(L, node, "axis", 1));
    TRY(infer(L, node));
    /* Caffe stores [num_output, K], or [K, num_output] with transpose */
    int64_t wd[2] = {transpose ? kdim : n, transpose ? n : kdim}, bd[1] = {n};
    int ins[3] = {x, -1, -1};
    TRY(blob_const(L, 0, "weights", ".weight", 2, wd, &ins[1]));
    if (bias)
        TRY(blob_const(L, 1, "biases", ".bias", 1, bd, &ins[2]));
    TRY(add_node(L, "", AC_OP_GEMM, bias ? 3 : 2, ins, &node, out));
    TRY(attr_int(L, node, "transB", transpose ? 0 : 1));
    return infer(L, node);
}

/* Per-channel [C] vectors of a 4-D (or 2-D) input. */
static int channels_of(ld *L, int x, int64_t *c)
{
    const ac_tensor *t = T(L, x);
    if (t->ndim < 2)
        return lerr(L, -1, AC_E_UNSUPPORTED, "bottom '%s' has %d dims; channels are dim 1", t->name, t->ndim);
    *c = t->dims[1];
    return 0;
}

static int build_batchnorm(ld *L, int *out)
{
    TRY(one_in(L));
    double eps;
    bool global;
    TRY(get_float(L, L->pm, "eps", 1e-5, &eps));
    TRY(get_bool(L, L->pm, "use_global_stats", true, &global));
    int f;
    TRY(find1(L, L->pm, "moving_average_fraction", &f));
    if (!global)
        return lerr(L, L->pm, AC_E_UNSUPPORTED, "use_global_stats: false (batch statistics) is training only");
    if (eps <= 0)
        return lerr(L, L->pm, AC_E_INVALID, "eps must be > 0");
    int64_t c = 0;
    TRY(channels_of(L, L->ins[0], &c));
    float *mean = NULL, *var = NULL, *sf = NULL;
    int rc = blob(L, 0, c, "means", &mean);
    if (!rc)
        rc = blob(L, 1, c, "variances", &var);
    if (!rc)
        rc = blob(L, 2, 1, "moving-average factor", &sf);
    /* Caffe divides the accumulated statistics by the factor (0 means 0) */
    float scale = !rc && sf[0] != 0 ? 1.f / sf[0] : 0.f;
    int ins[5] = {L->ins[0], -1, -1, -1, -1};
    float *one = NULL, *zero = NULL;
    if (!rc && (!(one = malloc((size_t)c * sizeof *one)) || !(zero = calloc((size_t)c, sizeof *zero))))
        rc = nomem(L);
    for (int64_t i = 0; !rc && i < c; i++) {
        mean[i] *= scale;
        var[i] *= scale;
        one[i] = 1.f;
        if (var[i] < 0)
            rc = lerr(L, -1, AC_E_INVALID, "variance %lld is negative (%g)", (long long)i, (double)var[i]);
    }
    int64_t d[1] = {c};
    if (!rc)
        rc = const_tensor(L, ".scale", AC_DT_F32, 1, d, one, &ins[1]);
    if (!rc)
        rc = const_tensor(L, ".bias", AC_DT_F32, 1, d, zero, &ins[2]);
    if (!rc)
        rc = const_tensor(L, ".mean", AC_DT_F32, 1, d, mean, &ins[3]);
    if (!rc)
        rc = const_tensor(L, ".var", AC_DT_F32, 1, d, var, &ins[4]);
    free(mean);
    free(var);
    free(sf);
    free(one);
    free(zero);
    TRY(rc);
    ac_node *node;
    TRY(add_node(L, "", AC_OP_BATCHNORM, 5, ins, &node, out));
    TRY(attr_float(L, node, "epsilon", (float)eps));
    return infer(L, node);
}

/* The BatchNormalization node writing tensor x that nothing reads yet: a
 * Scale right after it folds into its scale and bias. */
static ac_node *lone_batchnorm(ld *L, int x)
{
    for (int i = L->g->nnodes - 1; i >= 0; i--) {
        ac_node *n = &L->g->nodes[i];
        if (n->noutputs == 1 && n->outputs[0] == x)
            return n->op == AC_OP_BATCHNORM && ac_graph_uses(L->g, x) == 0 ? n : NULL;
    }
    return NULL;
}

static int build_scale(ld *L, int *out)
{
    TRY(one_in(L));
    int64_t axis, num_axes, c = 0;
    bool bias;
    TRY(get_int(L, L->pm, "axis", 1, 1, 1, &axis));
    TRY(get_int(L, L->pm, "num_axes", 1, 1, 1, &num_axes));
    TRY(get_bool(L, L->pm, "bias_term", false, &bias));
    TRY(channels_of(L, L->ins[0], &c));
    float *s = NULL, *b = NULL;
    int rc = blob(L, 0, c, "scales", &s);
    if (!rc && bias)
        rc = blob(L, 1, c, "biases", &b);
    ac_node *bn = rc ? NULL : lone_batchnorm(L, L->ins[0]);
    if (bn) {
        /* y = (bn(x)) * s + b: scale' = s, bias' = b (the BN had 1 and 0) */
        float *gamma = L->g->tensors[bn->inputs[1]].data, *beta = L->g->tensors[bn->inputs[2]].data;
        for (int64_t i = 0; i < c; i++) {
            gamma[i] *= s[i];
            beta[i] = beta[i] * s[i] + (b ? b[i] : 0.f);
        }
        *out = L->ins[0];
    } else if (!rc) {
        int64_t d[3] = {c, 1, 1};
        int ndim = T(L, L->ins[0])->ndim == 2 ? 1 : 3;
        int ins[2] = {L->ins[0], -1};
        rc = const_tensor(L, ".scale", AC_DT_F32, ndim, d, s, &ins[1]);
        if (!rc)
            rc = simple(L, bias ? "_mul" : "", AC_OP_MUL, 2, ins, out);
        if (!rc && bias) {
            ins[0] = *out;
            rc = const_tensor(L, ".bias", AC_DT_F32, ndim, d, b, &ins[1]);
            if (!rc)
                rc = simple(L, "", AC_OP_ADD, 2, ins, out);
        }
    }
    free(s);
    free(b);
    return rc;
}

static int build_relu(ld *L, int *out)
{
    TRY(one_in(L));
    double slope;
    TRY(get_float(L, L->pm, "negative_slope", 0, &slope));
    if (slope == 0)
        return simple(L, "", AC_OP_RELU, 1, L->ins, out);
    ac_node *n;
    TRY(add_node(L, "", AC_OP_LEAKY_RELU, 1, L->ins, &n, out));
    TRY(attr_float(L, n, "alpha", (float)slope));
    return infer(L, n);
}

static int build_prelu(ld *L, int *out)
{
    TRY(one_in(L));
    bool shared;
    TRY(get_bool(L, L->pm, "channel_shared", false, &shared));
    int64_t c = 0;
    TRY(channels_of(L, L->ins[0], &c));
    int nd = T(L, L->ins[0])->ndim - 1;
    int64_t d[AC_MAX_DIMS] = {shared ? 1 : c, 1, 1, 1, 1, 1, 1, 1};
    int ins[2] = {L->ins[0], -1};
    TRY(blob_const(L, 0, "slopes", ".slope", shared ? 1 : nd, d, &ins[1]));
    return simple(L, "", AC_OP_PRELU, 2, ins, out);
}

static int build_pooling(ld *L, int *out)
{
    static const char *const pools[] = {"MAX", "AVE", "STOCHASTIC", NULL};
    static const char *const rounds[] = {"CEIL", "FLOOR", NULL};
    int x, pool, round;
    bool global;
    TRY(spatial_input(L, &x));
    TRY(get_enum(L, L->pm, "pool", pools, 0, &pool));
    TRY(get_enum(L, L->pm, "round_mode", rounds, 0, &round));
    TRY(get_bool(L, L->pm, "global_pooling", false, &global));
    if (pool == 2)
        return lerr(L, L->pm, AC_E_UNSUPPORTED, "STOCHASTIC pooling is not supported (MAX, AVE)");
    if (global) {
        int64_t k[2];
        TRY(hw_pair(L, "pad", 0, 0, false, k));
        TRY(hw_pair(L, "stride", 1, 1, false, k));
        if (k[0] != 1 || k[1] != 1)
            return lerr(L, L->pm, AC_E_INVALID, "global_pooling takes stride 1");
        return simple(L, "", pool ? AC_OP_GLOBAL_AVGPOOL : AC_OP_GLOBAL_MAXPOOL, 1, &x, out);
    }
    int64_t k[2], p[2], s[2], in[2] = {T(L, x)->dims[2], T(L, x)->dims[3]};
    TRY(hw_pair(L, "kernel", 0, 1, true, k));
    TRY(hw_pair(L, "pad", 0, 0, false, p));
    TRY(hw_pair(L, "stride", 1, 1, false, s));
    bool ceil = round == 0, overflow = false;
    for (int d = 0; d < 2; d++) {
        if (p[d] >= k[d])
            return lerr(L, L->pm, AC_E_INVALID, "pad %lld must be smaller than the kernel %lld (Caffe's rule)",
                        (long long)p[d], (long long)k[d]);
        int64_t span = in[d] + 2 * p[d] - k[d];
        if (span < 0)
            return lerr(L, L->pm, AC_E_INVALID, "kernel %lld does not fit the input %lld with pad %lld",
                        (long long)k[d], (long long)in[d], (long long)p[d]);
        /* Caffe: ceil((H + 2p - k) / s) + 1, less a last window starting in
         * the padding: ONNX ceil_mode computes the same count */
        int64_t o = ceil ? (span + s[d] - 1) / s[d] + 1 : span / s[d] + 1;
        if (ceil && p[d] && (o - 1) * s[d] >= in[d] + p[d])
            o--;
        if ((o - 1) * s[d] >= in[d] + p[d])
            return lerr(L, L->pm, AC_E_UNSUPPORTED, "the last window lies outside the input (kernel %lld < stride %lld)",
                        (long long)k[d], (long long)s[d]);
        if ((o - 1) * s[d] + k[d] > in[d] + 2 * p[d])
            overflow = true;
    }
    /* Caffe's AVE divides by the window clipped to the padded input: ONNX
     * count_include_pad when no window reaches past the padding; without
     * padding, a window past the edge counts its input pixels only. */
    if (pool == 1 && overflow && (p[0] || p[1]))
        return lerr(L, L->pm, AC_E_UNSUPPORTED,
                    "AVE pooling with pad and ceil rounding past the padded edge has no ONNX equivalent");
    ac_node *node;
    TRY(add_node(L, "", pool ? AC_OP_AVGPOOL : AC_OP_MAXPOOL, 1, &x, &node, out));
    int64_t pads[4] = {p[0], p[1], p[0], p[1]};
    TRY(attr_ints(L, node, "kernel_shape", 2, k));
    TRY(attr_ints(L, node, "strides", 2, s));
    TRY(attr_ints(L, node, "pads", 4, pads));
    if (ceil)
        TRY(attr_int(L, node, "ceil_mode", 1));
    if (pool == 1 && (p[0] || p[1]))
        TRY(attr_int(L, node, "count_include_pad", 1));
    return infer(L, node);
}

/* SSD's Normalize (an L2 norm): y = x / sqrt(sum(x^2) + eps) * scale, the
 * sum over the channels at each position (across_spatial: false, as SSD uses
 * it) or over C, H and W (Caffe's default); scale per channel, or one value
 * (channel_shared). Built from Mul, ReduceMean (times the count), Add, Sqrt,
 * Div: the IR has no L2 reduction. */
static int build_normalize(ld *L, int *out)
{
    TRY(one_in(L));
    bool across, shared;
    double eps;
    TRY(get_bool(L, L->pm, "across_spatial", true, &across));
    TRY(get_bool(L, L->pm, "channel_shared", true, &shared));
    TRY(get_float(L, L->pm, "eps", 1e-10, &eps));
    const ac_tensor *xt = T(L, L->ins[0]);
    if (xt->ndim != 4)
        return lerr(L, -1, AC_E_UNSUPPORTED, "needs a 4-d (N, C, H, W) bottom, not %d-d", xt->ndim);
    int64_t c = xt->dims[1], count = across ? xt->dims[1] * xt->dims[2] * xt->dims[3] : xt->dims[1];
    float *s = NULL;
    TRY(blob(L, 0, shared ? 1 : c, "scale", &s));
    int x = L->ins[0], sq, mean, sum, sum_eps, norm, normed, k;
    ac_node *rn;
    int rc = simple(L, "_sq", AC_OP_MUL, 2, (int[]){x, x}, &sq);
    if (!rc)
        rc = add_node(L, "_mean", AC_OP_REDUCE_MEAN, 1, &sq, &rn, &mean);
    if (!rc)
        rc = ac_node_set_ints(L->g, rn, "axes", across ? 3 : 1, (const int64_t[]){1, 2, 3}) ||
             ac_node_set_int(L->g, rn, "keepdims", 1) || infer(L, rn);
    float cnt = (float)count, e = (float)eps;
    if (!rc)
        rc = const_tensor(L, ".count", AC_DT_F32, 0, NULL, &cnt, &k) ||
             simple(L, "_sum", AC_OP_MUL, 2, (int[]){mean, k}, &sum);
    if (!rc)
        rc = const_tensor(L, ".eps", AC_DT_F32, 0, NULL, &e, &k) ||
             simple(L, "_sum_eps", AC_OP_ADD, 2, (int[]){sum, k}, &sum_eps);
    if (!rc)
        rc = simple(L, "_norm", AC_OP_SQRT, 1, &sum_eps, &norm) ||
             simple(L, "_div", AC_OP_DIV, 2, (int[]){x, norm}, &normed);
    if (!rc)
        rc = const_tensor(L, ".scale", AC_DT_F32, shared ? 0 : 3, (const int64_t[]){c, 1, 1}, s, &k) ||
             simple(L, "", AC_OP_MUL, 2, (int[]){normed, k}, out);
    free(s);
    return rc ? -1 : 0;
}

static int build_eltwise(ld *L, int *out)
{
    static const char *const ops[] = {"PROD", "SUM", "MAX", NULL};
    int op;
    double coeff[MAX_BOTTOMS];
    TRY(get_enum(L, L->pm, "operation", ops, 1, &op));
    bool stable;
    TRY(get_bool(L, L->pm, "stable_prod_grad", true, &stable));
    if (L->nin < 2 || L->ntop != 1)
        return lerr(L, -1, AC_E_INVALID, "takes at least two bottoms and one top");
    int nc;
    TRY(get_floats(L, L->pm, "coeff", coeff, MAX_BOTTOMS, &nc));
    if (nc && (op != 1 || nc != L->nin))
        return lerr(L, L->pm, AC_E_INVALID, "coeff is for SUM, one per bottom (%d bottoms, %d coeffs)", L->nin, nc);
    for (int i = 0; i < L->nin; i++)
        if (T(L, L->ins[i])->ndim != T(L, L->ins[0])->ndim ||
            memcmp(T(L, L->ins[i])->dims, T(L, L->ins[0])->dims, sizeof(int64_t) * (size_t)T(L, L->ins[0])->ndim))
            return lerr(L, -1, AC_E_INVALID, "bottom '%s' and bottom '%s' differ in shape", T(L, L->ins[0])->name,
                        T(L, L->ins[i])->name);
    int acc = -1;
    for (int i = 0; i < L->nin; i++) {
        int x = L->ins[i];
        char sfx[48];
        if (nc && coeff[i] != 1) {
            float cv = (float)coeff[i];
            int ins[2] = {x, -1};
            snprintf(sfx, sizeof sfx, "_coeff%d", i);
            TRY(const_tensor(L, ".coeff", AC_DT_F32, 0, NULL, &cv, &ins[1]));
            TRY(simple(L, sfx, AC_OP_MUL, 2, ins, &x));
        }
        if (acc < 0) {
            acc = x;
            continue;
        }
        snprintf(sfx, sizeof sfx, i == L->nin - 1 ? "" : "_%d", i);
        int ins[2] = {acc, x};
        if (op == 2) {
            /* max(a, b) = relu(a - b) + b: the IR has no Max */
            int dlt, r;
            char s2[56];
            snprintf(s2, sizeof s2, "_sub%d", i);
            TRY(simple(L, s2, AC_OP_SUB, 2, ins, &dlt));
            snprintf(s2, sizeof s2, "_relu%d", i);
            TRY(simple(L, s2, AC_OP_RELU, 1, &dlt, &r));
            int a2[2] = {r, x};
            TRY(simple(L, sfx, AC_OP_ADD, 2, a2, &acc));
        } else
            TRY(simple(L, sfx, op ? AC_OP_ADD : AC_OP_MUL, 2, ins, &acc));
    }
    *out = acc;
    return 0;
}

static int build_concat(ld *L, int *out)
{
    int64_t axis, cdim;
    int fa, fc;
    TRY(find1(L, L->pm, "axis", &fa));
    TRY(find1(L, L->pm, "concat_dim", &fc));
    if (fa >= 0 && fc >= 0)
        return lerr(L, fc, AC_E_INVALID, "give axis or concat_dim, not both");
    TRY(get_int(L, L->pm, "axis", 1, -AC_MAX_DIMS, AC_MAX_DIMS - 1, &axis));
    TRY(get_int(L, L->pm, "concat_dim", axis, 0, AC_MAX_DIMS - 1, &cdim));
    if (L->nin < 1 || L->ntop != 1)
        return lerr(L, -1, AC_E_INVALID, "takes bottoms and one top");
    if (L->nin == 1) {
        *out = L->ins[0];
        return 0;
    }
    ac_node *node;
    TRY(add_node(L, "", AC_OP_CONCAT, L->nin, L->ins, &node, out));
    TRY(attr_int(L, node, "axis", fc >= 0 ? cdim : axis));
    return infer(L, node);
}

/* Reshape to a shape of Caffe's (0 copies the dim, -1 is inferred): the same
 * rule as ONNX Reshape without allowzero. */
static int reshape_to(ld *L, int x, int n, const int64_t *shape, int *out)
{
    int ins[2] = {x, -1};
    TRY(const_ints(L, ".shape", n, shape, &ins[1]));
    return simple(L, "", AC_OP_RESHAPE, 2, ins, out);
}

static int build_flatten(ld *L, int *out)
{
    TRY(one_in(L));
    int64_t axis, end;
    int nd = T(L, L->ins[0])->ndim;
    TRY(get_int(L, L->pm, "axis", 1, -nd, nd - 1, &axis));
    TRY(get_int(L, L->pm, "end_axis", -1, -nd, nd - 1, &end));
    if (axis < 0)
        axis += nd;
    if (end < 0)
        end += nd;
    if (end < axis)
        return lerr(L, L->pm, AC_E_INVALID, "end_axis comes before axis");
    int64_t shape[AC_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < axis; d++)
        shape[k++] = 0;
    shape[k++] = -1;
    for (int64_t d = end + 1; d < nd; d++)
        shape[k++] = T(L, L->ins[0])->dims[d];
    return reshape_to(L, L->ins[0], k, shape, out);
}

static int build_reshape(ld *L, int *out)
{
    TRY(one_in(L));
    int sm;
    int64_t axis, num_axes, dims[MAX_LIST];
    int nd;
    TRY(get_msg(L, L->pm, "shape", &sm));
    TRY(get_int(L, L->pm, "axis", 0, 0, 0, &axis));
    TRY(get_int(L, L->pm, "num_axes", -1, -1, -1, &num_axes));
    if (sm < 0)
        return lerr(L, L->pm, AC_E_INVALID, "needs shape { dim: ... }");
    TRY(get_ints(L, sm, "dim", -1, MAX_DIM, dims, &nd));
    TRY(check_unused(L, sm, "shape"));
    if (nd < 1 || nd > AC_MAX_DIMS)
        return lerr(L, sm, AC_E_UNSUPPORTED, "shape has %d dims (1..%d)", nd, AC_MAX_DIMS);
    return reshape_to(L, L->ins[0], nd, dims, out);
}

static int build_permute(ld *L, int *out)
{
    TRY(one_in(L));
    int64_t order[MAX_LIST];
    int n, nd = T(L, L->ins[0])->ndim;
    TRY(get_ints(L, L->pm, "order", 0, AC_MAX_DIMS - 1, order, &n));
    /* Caffe appends the axes the order leaves out, in their order */
    bool seen[AC_MAX_DIMS] = {false};
    for (int i = 0; i < n; i++) {
        if (order[i] >= nd || seen[order[i]])
            return lerr(L, L->pm, AC_E_INVALID, "order value %lld repeats or is not an axis of the %d-D bottom",
                        (long long)order[i], nd);
        seen[order[i]] = true;
    }
    for (int d = 0; d < nd; d++)
        if (!seen[d])
            order[n++] = d;
    ac_node *node;
    TRY(add_node(L, "", AC_OP_TRANSPOSE, 1, L->ins, &node, out));
    TRY(attr_ints(L, node, "perm", n, order));
    return infer(L, node);
}

static int build_softmax(ld *L, int *out)
{
    TRY(one_in(L));
    int64_t axis;
    TRY(get_int(L, L->pm, "axis", 1, -AC_MAX_DIMS, AC_MAX_DIMS - 1, &axis));
    ac_node *node;
    TRY(add_node(L, "", AC_OP_SOFTMAX, 1, L->ins, &node, out));
    TRY(attr_int(L, node, "axis", axis));
    return infer(L, node);
}

static int build_sigmoid(ld *L, int *out)
{
    TRY(one_in(L));
    return simple(L, "", AC_OP_SIGMOID, 1, L->ins, out);
}

static int build_tanh(ld *L, int *out)
{
    TRY(one_in(L));
    return simple(L, "", AC_OP_TANH, 1, L->ins, out);
}

/* Upsample (the common fork's upsample_param { scale }): nearest neighbour. */
static int build_upsample(ld *L, int *out)
{
    int x;
    TRY(spatial_input(L, &x));
    int64_t scale, sh, sw;
    TRY(get_int(L, L->pm, "scale", 2, 1, MAX_KERNEL, &scale));
    TRY(get_int(L, L->pm, "scale_h", scale, 1, MAX_KERNEL, &sh));
    TRY(get_int(L, L->pm, "scale_w", scale, 1, MAX_KERNEL, &sw));
    float sc[4] = {1, 1, (float)sh, (float)sw};
    int64_t sd[1] = {4};
    int ins[3] = {x, -1, -1};
    TRY(const_tensor(L, ".scales", AC_DT_F32, 1, sd, sc, &ins[2]));
    ac_node *node;
    TRY(add_node(L, "", AC_OP_RESIZE, 3, ins, &node, out));
    TRY(attr_str(L, node, "mode", "nearest"));
    TRY(attr_str(L, node, "coordinate_transformation_mode", "asymmetric"));
    TRY(attr_str(L, node, "nearest_mode", "floor"));
    return infer(L, node);
}

/* PriorBox (SSD): the default boxes depend on shapes only, so they are
 * computed here, as Caffe-SSD's PriorBoxLayer::Forward_cpu does (in float),
 * into a constant [1, 2, H * W * priors * 4]: the boxes (x0, y0, x1, y1
 * relative to the image), then their variances. */
#define MAX_PRIOR_SIZES 16
static int build_priorbox(ld *L, int *out)
{
    double mins[MAX_PRIOR_SIZES], maxs[MAX_PRIOR_SIZES], ars[MAX_PRIOR_SIZES], var[MAX_PRIOR_SIZES], offset, step,
        step_h, step_w;
    int nmin, nmax, nar, nvar;
    bool flip, clip;
    int64_t img, img_h, img_w;
    TRY(get_floats(L, L->pm, "min_size", mins, MAX_PRIOR_SIZES, &nmin));
    TRY(get_floats(L, L->pm, "max_size", maxs, MAX_PRIOR_SIZES, &nmax));
    TRY(get_floats(L, L->pm, "aspect_ratio", ars, MAX_PRIOR_SIZES, &nar));
    TRY(get_floats(L, L->pm, "variance", var, MAX_PRIOR_SIZES, &nvar));
    TRY(get_bool(L, L->pm, "flip", true, &flip));
    TRY(get_bool(L, L->pm, "clip", false, &clip));
    TRY(get_int(L, L->pm, "img_size", 0, 0, MAX_DIM, &img));
    TRY(get_int(L, L->pm, "img_h", img, 0, MAX_DIM, &img_h));
    TRY(get_int(L, L->pm, "img_w", img, 0, MAX_DIM, &img_w));
    TRY(get_float(L, L->pm, "step", 0, &step));
    TRY(get_float(L, L->pm, "step_h", step, &step_h));
    TRY(get_float(L, L->pm, "step_w", step, &step_w));
    TRY(get_float(L, L->pm, "offset", 0.5, &offset));
    if (L->nin != 2 || L->ntop != 1)
        return lerr(L, -1, AC_E_INVALID, "takes two bottoms (the feature map, the image) and one top");
    const ac_tensor *fm = T(L, L->ins[0]), *im = T(L, L->ins[1]);
    if (fm->ndim != 4 || im->ndim != 4)
        return lerr(L, -1, AC_E_INVALID, "both bottoms must be 4-D (N, C, H, W)");
    if (!nmin || (nmax && nmax != nmin) || (nvar != 0 && nvar != 1 && nvar != 4))
        return lerr(L, L->pm, AC_E_INVALID, "needs min_size, as many max_size as min_size (or none), and 1 or 4 variances");
    for (int i = 0; i < nmin; i++)
        if (mins[i] <= 0 || (nmax && maxs[i] <= mins[i]))
            return lerr(L, L->pm, AC_E_INVALID, "min_size must be > 0 and max_size > min_size");
    float ar[2 * MAX_PRIOR_SIZES + 1] = {1.f};
    int na = 1;
    for (int i = 0; i < nar; i++) {
        bool dup = false;
        for (int j = 0; j < na; j++)
            dup |= fabsf((float)ars[i] - ar[j]) < 1e-6f;
        if (dup)
            continue;
        if (ars[i] <= 0)
            return lerr(L, L->pm, AC_E_INVALID, "aspect_ratio must be > 0");
        ar[na++] = (float)ars[i];
        if (flip)
            ar[na++] = 1.f / (float)ars[i];
    }
    int64_t lh = fm->dims[2], lw = fm->dims[3];
    float ih = img_h ? (float)img_h : (float)im->dims[2], iw = img_w ? (float)img_w : (float)im->dims[3];
    float sh = step_h > 0 ? (float)step_h : ih / (float)lh, sw = step_w > 0 ? (float)step_w : iw / (float)lw;
    int64_t np = (int64_t)na * nmin + nmax, dim = lh * lw * np * 4;
    if (dim > MAX_ZERO_PARAMS)
        return lerr(L, -1, AC_E_UNSUPPORTED, "%lld prior boxes", (long long)(dim / 4));
    float *v = malloc((size_t)(2 * dim) * sizeof *v), *p = v;
    if (!v)
        return nomem(L);
    for (int64_t h = 0; h < lh; h++)
        for (int64_t w = 0; w < lw; w++) {
            float cx = ((float)w + (float)offset) * sw, cy = ((float)h + (float)offset) * sh;
            for (int s = 0; s < nmin; s++) {
                float bw[2 + 2 * MAX_PRIOR_SIZES], bh[2 + 2 * MAX_PRIOR_SIZES];
                int nb = 0;
                bw[nb] = bh[nb] = (float)mins[s], nb++;
                if (nmax)
                    bw[nb] = bh[nb] = sqrtf((float)mins[s] * (float)maxs[s]), nb++;
                for (int r = 1; r < na; r++, nb++) {
                    bw[nb] = (float)mins[s] * sqrtf(ar[r]);
                    bh[nb] = (float)mins[s] / sqrtf(ar[r]);
                }
                for (int b = 0; b < nb; b++) {
                    *p++ = (cx - bw[b] / 2.f) / iw;
                    *p++ = (cy - bh[b] / 2.f) / ih;
                    *p++ = (cx + bw[b] / 2.f) / iw;
                    *p++ = (cy + bh[b] / 2.f) / ih;
                }
            }
        }
    for (int64_t i = 0; clip && i < dim; i++)
        v[i] = fminf(fmaxf(v[i], 0.f), 1.f);
    for (int64_t i = 0; i < dim; i++)
        v[dim + i] = nvar == 4 ? (float)var[i % 4] : nvar == 1 ? (float)var[0] : 0.1f;
    int64_t d[3] = {1, 2, dim};
    int rc = const_tensor(L, "", AC_DT_F32, 3, d, v, out);
    free(v);
    /* what a detection decoder needs to compute the same boxes: the priors
     * themselves are no graph output (see drop_constant_outputs) */
    char key[160], val[512];
    int k = snprintf(val, sizeof val, "feature=%lldx%lld image=%gx%g step=%gx%g offset=%g clip=%d priors=%lld min=",
                     (long long)lh, (long long)lw, (double)ih, (double)iw, (double)sh, (double)sw, offset, clip,
                     (long long)np);
    for (int i = 0; i < nmin && k < (int)sizeof val; i++)
        k += snprintf(val + k, sizeof val - (size_t)k, "%s%g", i ? "," : "", mins[i]);
    for (int i = 0; i < nmax && k < (int)sizeof val; i++)
        k += snprintf(val + k, sizeof val - (size_t)k, "%s%g", i ? "," : " max=", maxs[i]);
    for (int i = 0; i < na && k < (int)sizeof val; i++)
        k += snprintf(val + k, sizeof val - (size_t)k, "%s%g", i ? "," : " aspect=", (double)ar[i]);
    for (int i = 0; i < 4 && k < (int)sizeof val; i++)
        k += snprintf(val + k, sizeof val - (size_t)k, "%s%g", i ? "," : " variance=",
                      nvar == 4 ? var[i] : nvar == 1 ? var[0] : 0.1);
    snprintf(key, sizeof key, "caffe.priorbox.%s", L->tops[0]);
    if (!rc && ac_graph_set_meta(L->g, key, val))
        rc = nomem(L);
    return rc;
}

/* Dropout is nothing at inference (Caffe scales at training time). */
static int build_dropout(ld *L, int *out)
{
    TRY(one_in(L));
    double ratio;
    bool scale;
    TRY(get_float(L, L->pm, "dropout_ratio", 0.5, &ratio));
    TRY(get_bool(L, L->pm, "scale_train", true, &scale));
    *out = L->ins[0];
    return 0;
}

typedef int (*build_fn)(ld *L, int *out);

static const struct {
    const char *type, *param;
    build_fn build;
} kinds[] = {
    {"Convolution", "convolution_param", build_convolution},
    {"Deconvolution", "convolution_param", build_deconvolution},
    {"InnerProduct", "inner_product_param", build_inner_product},
    {"BatchNorm", "batch_norm_param", build_batchnorm},
    {"Scale", "scale_param", build_scale},
    {"ReLU", "relu_param", build_relu},
    {"PReLU", "prelu_param", build_prelu},
    {"Pooling", "pooling_param", build_pooling},
    {"Eltwise", "eltwise_param", build_eltwise},
    {"Concat", "concat_param", build_concat},
    {"Flatten", "flatten_param", build_flatten},
    {"Reshape", "reshape_param", build_reshape},
    {"Permute", "permute_param", build_permute},
    {"Softmax", "softmax_param", build_softmax},
    {"Sigmoid", "sigmoid_param", build_sigmoid},
    {"TanH", "tanh_param", build_tanh},
    {"Upsample", "upsample_param", build_upsample},
    {"Dropout", "dropout_param", build_dropout},
    {"Normalize", "norm_param", build_normalize},
    {"PriorBox", "prior_box_param", build_priorbox},
};

/* ---- blobs by name ------------------------------------------------------------------------ */

static int find_blob(ld *L, const char *name)
{
    for (int i = L->nblobs - 1; i >= 0; i--)
        if (!strcmp(L->blobs[i].name, name))
            return i;
    return -1;
}

/* Top `name` now is tensor t (an in-place layer replaces the blob). */
static int set_blob(ld *L, const char *name, int t)
{
    int i = find_blob(L, name);
    if (i < 0) {
        if (L->nblobs == L->cap_blobs) {
            int ncap = L->cap_blobs ? L->cap_blobs * 2 : 64;
            cf_blob *nb = realloc(L->blobs, (size_t)ncap * sizeof *nb);
            if (!nb)
                return nomem(L);
            L->blobs = nb;
            L->cap_blobs = ncap;
        }
        i = L->nblobs++;
    }
    L->blobs[i] = (cf_blob){.name = name, .tensor = t};
    return 0;
}

/* ---- inputs ------------------------------------------------------------------------------- */

static const ac_onnx_shape *shape_override(ld *L, const char *name, int position)
{
    const ac_caffe_options *o = L->opt;
    for (int i = 0; o && i < o->nshapes; i++)
        if (o->shapes[i].name[0] ? !strcmp(o->shapes[i].name, name) : i == position) {
            L->nshapes_used++;
            return &o->shapes[i];
        }
    return NULL;
}

static int add_input(ld *L, const char *name, int ndim, const int64_t *dims, int at)
{
    int64_t d[AC_MAX_DIMS];
    if (ndim < 1 || ndim > AC_MAX_DIMS)
        return lerr(L, at, AC_E_UNSUPPORTED, "input '%s' has %d dims (1..%d)", name, ndim, AC_MAX_DIMS);
    memcpy(d, dims, sizeof(int64_t) * (size_t)ndim);
    const ac_onnx_shape *sh = shape_override(L, name, L->g->ninputs);
    if (sh) {
        ndim = sh->ndim;
        memcpy(d, sh->dims, sizeof(int64_t) * (size_t)ndim);
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (d[i] < 1 || d[i] > MAX_DIM)
            return lerr(L, at, AC_E_INVALID, "input '%s': dim %d is %lld (1..%lld)", name, i, (long long)d[i],
                        (long long)MAX_DIM);
        n *= d[i];
        if (n > AC_ONNX_MAX_NUMEL)
            return lerr(L, at, AC_E_UNSUPPORTED, "input '%s' has more than 2^31 elements", name);
    }
    if (find_blob(L, name) >= 0)
        return lerr(L, at, AC_E_INVALID, "input '%s' is declared twice", name);
    int t = ac_graph_add_tensor(L->g, name, AC_DT_F32, ndim, d);
    if (t < 0)
        return nomem(L);
    L->g->tensors[t].is_input = true;
    int *ins = ac_arena_alloc(L->g->arena, sizeof(int) * (size_t)(L->g->ninputs + 1));
    if (!ins)
        return nomem(L);
    if (L->g->ninputs)
        memcpy(ins, L->g->inputs, sizeof(int) * (size_t)L->g->ninputs);
    ins[L->g->ninputs] = t;
    L->g->inputs = ins;
    L->g->ninputs++;
    return set_blob(L, L->g->tensors[t].name, t);
}

/* BlobShape message m: its dims. */
static int shape_dims(ld *L, int m, int64_t *dims, int *n)
{
    TRY(get_ints(L, m, "dim", 1, MAX_DIM, dims, n));
    return check_unused(L, m, "shape");
}

/* An Input layer: input_param { shape { dim ... } } per top (one shape for all). */
static int build_input_layer(ld *L)
{
    int shapes[MAX_BOTTOMS], ns = 0;
    if (L->pm >= 0)
        for (int i = L->P.f[L->pm].child; i >= 0; i = L->P.f[i].next)
            if (!strcmp(L->P.f[i].name, "shape")) {
                L->P.f[i].used = true;
                TRY(want_kind(L, i, PT_MSG));
                if (ns == MAX_BOTTOMS)
                    return lerr(L, i, AC_E_UNSUPPORTED, "more than %d shapes", MAX_BOTTOMS);
                shapes[ns++] = i;
            }
    if (L->nin || !L->ntop)
        return lerr(L, -1, AC_E_INVALID, "an Input layer has tops and no bottoms");
    if (ns != 1 && ns != L->ntop)
        return lerr(L, L->pm >= 0 ? L->pm : -1, AC_E_INVALID, "needs one shape, or one per top (%d tops, %d shapes)",
                    L->ntop, ns);
    for (int k = 0; k < L->ntop; k++) {
        int64_t dims[MAX_LIST];
        int nd;
        TRY(shape_dims(L, shapes[ns == 1 ? 0 : k], dims, &nd));
        TRY(add_input(L, L->tops[k], nd, dims, shapes[ns == 1 ? 0 : k]));
    }
    return 0;
}

/* The legacy net-level inputs: input: "x" with input_shape { } or four input_dim each. */
static int net_inputs(ld *L, int root)
{
    const char *names[MAX_BOTTOMS];
    int at[MAX_BOTTOMS], shapes[MAX_BOTTOMS], n = 0, ns = 0, ndim = 0;
    int64_t dims[MAX_LIST];
    for (int i = L->P.f[root].child; i >= 0; i = L->P.f[i].next) {
        const pt_field *f = &L->P.f[i];
        if (!strcmp(f->name, "input")) {
            L->P.f[i].used = true;
            TRY(want_kind(L, i, PT_STRING));
            if (n == MAX_BOTTOMS)
                return lerr(L, i, AC_E_UNSUPPORTED, "more than %d inputs", MAX_BOTTOMS);
            at[n] = i;
            names[n++] = f->val;
        } else if (!strcmp(f->name, "input_shape")) {
            L->P.f[i].used = true;
            TRY(want_kind(L, i, PT_MSG));
            if (ns == MAX_BOTTOMS)
                return lerr(L, i, AC_E_UNSUPPORTED, "more than %d input shapes", MAX_BOTTOMS);
            shapes[ns++] = i;
        }
    }
    TRY(get_ints(L, root, "input_dim", 1, MAX_DIM, dims, &ndim));
    if (!n) {
        if (ns || ndim)
            return lerr(L, ns ? shapes[0] : root, AC_E_INVALID, "input_shape / input_dim without input");
        return 0;
    }
    if (ns && ndim)
        return lerr(L, shapes[0], AC_E_INVALID, "give input_shape or input_dim, not both");
    if (ns ? ns != n : ndim != 4 * n)
        return lerr(L, at[0], AC_E_INVALID, "%d inputs need %d input_shape or %d input_dim (found %d)", n, n, 4 * n,
                    ns ? ns : ndim);
    for (int k = 0; k < n; k++) {
        int64_t d[MAX_LIST];
        int nd = 4;
        if (ns)
            TRY(shape_dims(L, shapes[k], d, &nd));
        else
            memcpy(d, dims + 4 * k, sizeof(int64_t) * 4);
        TRY(add_input(L, names[k], nd, d, at[k]));
    }
    return 0;
}

/* ---- layers -------------------------------------------------------------------------------- */

/* include { phase: TEST } / exclude { phase: TRAIN } rules: is the layer in the TEST net? */
static int in_test_net(ld *L, bool *keep)
{
    static const char *const phases[] = {"TRAIN", "TEST", NULL};
    bool any_include = false, included = false, excluded = false;
    for (int i = L->P.f[L->layer].child; i >= 0; i = L->P.f[i].next) {
        const char *n = L->P.f[i].name;
        bool inc = !strcmp(n, "include");
        if (!inc && strcmp(n, "exclude"))
            continue;
        L->P.f[i].used = true;
        TRY(want_kind(L, i, PT_MSG));
        int phase;
        TRY(get_enum(L, i, "phase", phases, -1, &phase));
        TRY(check_unused(L, i, n));
        if (phase < 0)
            return lerr(L, i, AC_E_UNSUPPORTED, "%s without a phase is not supported", n);
        if (inc) {
            any_include = true;
            included |= phase == 1;
        } else
            excluded |= phase == 1;
    }
    int ph;
    TRY(get_enum(L, L->layer, "phase", phases, 1, &ph));
    *keep = ph == 1 && !excluded && (!any_include || included);
    return 0;
}

static int string_list(ld *L, const char *field, const char **out, int *n)
{
    *n = 0;
    for (int i = L->P.f[L->layer].child; i >= 0; i = L->P.f[i].next) {
        if (strcmp(L->P.f[i].name, field))
            continue;
        L->P.f[i].used = true;
        TRY(want_kind(L, i, PT_STRING));
        if (*n == MAX_BOTTOMS)
            return lerr(L, i, AC_E_UNSUPPORTED, "more than %d %s fields", MAX_BOTTOMS, field);
        out[(*n)++] = L->P.f[i].val;
    }
    return 0;
}

static int build_layer(ld *L, int layer)
{
    L->layer = layer;
    L->lname = NULL;
    int fname, ftype;
    TRY(want_kind(L, layer, PT_MSG));
    TRY(find1(L, layer, "name", &fname));
    TRY(find1(L, layer, "type", &ftype));
    if (ftype < 0)
        return lerr(L, layer, AC_E_INVALID, "a layer needs a type");
    TRY(want_kind(L, ftype, PT_STRING));
    if (fname >= 0)
        TRY(want_kind(L, fname, PT_STRING));
    L->ltype = L->P.f[ftype].val;
    L->lname = fname >= 0 && L->P.f[fname].val[0] ? L->P.f[fname].val : L->ltype;
    bool keep = false;
    TRY(in_test_net(L, &keep));
    if (!keep)
        return 0;
    const char *bottoms[MAX_BOTTOMS];
    TRY(string_list(L, "bottom", bottoms, &L->nin));
    TRY(string_list(L, "top", L->tops, &L->ntop));
    for (int i = 0; i < L->nin; i++) {
        int b = find_blob(L, bottoms[i]);
        if (b < 0)
            return lerr(L, -1, AC_E_INVALID, "bottom '%s' is no top of an earlier layer nor an input", bottoms[i]);
        L->ins[i] = L->blobs[b].tensor;
        L->blobs[b].read = true;
    }
    if (!strcmp(L->ltype, "DetectionOutput")) {
        /* the graph ends here: the layer's bottoms (locations, confidences,
         * priors) become outputs for the decoder after the network */
        int dp;
        TRY(get_msg(L, layer, "detection_output_param", &dp));
        for (int i = 0; i < L->nin; i++)
            L->blobs[find_blob(L, bottoms[i])].read = false;
        return check_unused(L, layer, "a layer");
    }
    L->lw = find_weights(L, L->lname);
    size_t k = 0, nk = sizeof kinds / sizeof kinds[0];
    bool input = !strcmp(L->ltype, "Input");
    while (!input && k < nk && strcmp(L->ltype, kinds[k].type))
        k++;
    if (!input && !strcmp(L->ltype, "Split")) {
        /* every top is the bottom itself */
        if (L->nin != 1)
            return lerr(L, -1, AC_E_INVALID, "Split takes one bottom");
        for (int t = 0; t < L->ntop; t++)
            TRY(set_blob(L, L->tops[t], L->ins[0]));
        return check_unused(L, layer, "a layer");
    }
    if (!input && k == nk)
        return lerr(L, ftype, AC_E_UNSUPPORTED,
                    "layer type '%s' is not supported (Input, Convolution, Deconvolution, InnerProduct, BatchNorm, "
                    "Scale, ReLU, PReLU, Pooling, Eltwise, Concat, Flatten, Reshape, Permute, Softmax, Sigmoid, TanH, "
                    "Upsample, Dropout, Split, PriorBox, DetectionOutput)",
                    L->ltype);
    const char *pname = input ? "input_param" : kinds[k].param;
    TRY(get_msg(L, layer, pname, &L->pm));
    /* a *_param of another layer type is a mistake in the file */
    for (int i = L->P.f[layer].child; i >= 0; i = L->P.f[i].next) {
        const char *n = L->P.f[i].name;
        size_t len = strlen(n);
        if (!L->P.f[i].used && len > 6 && !strcmp(n + len - 6, "_param"))
            return lerr(L, i, AC_E_INVALID, "a %s layer takes %s, not %s", L->ltype, pname, n);
    }
    if (input) {
        TRY(build_input_layer(L));
    } else {
        int out = -1;
        TRY(kinds[k].build(L, &out));
        if (L->ntop != 1)
            return lerr(L, -1, AC_E_INVALID, "takes one top (has %d)", L->ntop);
        TRY(set_blob(L, L->tops[0], out));
    }
    if (L->pm >= 0)
        TRY(check_unused(L, L->pm, pname));
    return check_unused(L, layer, "a layer");
}

/* Outputs: the tops no layer read, in the order they were last written. */
static int set_outputs(ld *L)
{
    int *outs = malloc(sizeof(int) * (size_t)(L->nblobs ? L->nblobs : 1)), n = 0;
    if (!outs)
        return nomem(L);
    for (int i = 0; i < L->nblobs; i++) {
        int t = L->blobs[i].tensor;
        if (L->blobs[i].read || L->g->tensors[t].is_input)
            continue;
        bool dup = false;
        for (int j = 0; j < n; j++)
            dup |= outs[j] == t;
        if (!dup)
            outs[n++] = t;
    }
    int rc = 0;
    L->lname = NULL;
    if (!n)
        rc = ac_err_set(L->err, AC_E_INVALID, "%s: the network computes nothing (no top is left unread)", L->text_name);
    else if (ac_graph_set_io(L->g, L->g->ninputs, L->g->inputs, n, outs))
        rc = ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    free(outs);
    return rc;
}

/* Outputs that are constants after folding (SSD priors, which depend on
 * shapes only) are no outputs: nothing computes them per input, and ONNX
 * (the farm's form) has no constant outputs. Their PriorBox parameters are
 * metadata ("caffe.priorbox.<top>"). */
static int drop_constant_outputs(ld *L)
{
    int n = 0;
    for (int i = 0; i < L->g->noutputs; i++)
        if (!L->g->tensors[L->g->outputs[i]].data)
            L->g->outputs[n++] = L->g->outputs[i];
    if (!n)
        return ac_err_set(L->err, AC_E_INVALID, "%s: every output is a constant (the network computes nothing)",
                          L->text_name);
    if (ac_graph_set_io(L->g, L->g->ninputs, L->g->inputs, n, L->g->outputs))
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    ac_graph_prune(L->g);
    return 0;
}

static int build(ld *L)
{
    int root = 0;
    L->layer = root;
    int fname;
    TRY(find1(L, root, "name", &fname));
    TRY(net_inputs(L, root));
    int nlayers = 0;
    for (int i = L->P.f[root].child; i >= 0; i = L->P.f[i].next) {
        L->lname = NULL;
        if (!strcmp(L->P.f[i].name, "layers"))
            return lerr(L, i, AC_E_UNSUPPORTED,
                        "V1 'layers' entries are not supported in a prototxt; upgrade it to 'layer' (Caffe's "
                        "upgrade_net_proto_text)");
        if (strcmp(L->P.f[i].name, "layer"))
            continue;
        L->P.f[i].used = true;
        if (++nlayers > AC_CAFFE_MAX_LAYERS)
            return lerr(L, i, AC_E_UNSUPPORTED, "more than %d layers", AC_CAFFE_MAX_LAYERS);
        TRY(build_layer(L, i));
    }
    L->lname = NULL;
    L->layer = root;
    TRY(check_unused(L, root, "the net"));
    if (!L->g->ninputs)
        return ac_err_set(L->err, AC_E_INVALID, "%s: no input (an Input layer or the net's input fields)",
                          L->text_name);
    if (L->opt && L->nshapes_used != L->opt->nshapes)
        return ac_err_set(L->err, AC_E_INVALID, "--input_data_shape names an input the network does not have");
    TRY(set_outputs(L));
    if (ac_graph_toposort(L->g, L->err) || ac_graph_infer_shapes(L->g, L->err))
        return ac_err_prefix(L->err, "%s: ", L->text_name);
    return drop_constant_outputs(L);
}

/* ---- entry points -------------------------------------------------------------------------- */

static int read_model(ld *L, const void *buf, size_t len)
{
    L->net = caffe_min__net_parameter__unpack(NULL, len, buf);
    if (!L->net)
        return ac_err_set(L->err, AC_E_INVALID, "%s: not a Caffe NetParameter (the protobuf does not decode)",
                          L->model_name);
    size_t n = L->net->n_layer + L->net->n_layers;
    if (n > AC_CAFFE_MAX_LAYERS * 4)
        return ac_err_set(L->err, AC_E_UNSUPPORTED, "%s: %zu layers", L->model_name, n);
    L->w = calloc(n ? n : 1, sizeof *L->w);
    if (!L->w)
        return ac_err_set(L->err, AC_E_NOMEM, "out of memory");
    for (size_t i = 0; i < L->net->n_layer; i++)
        L->w[L->nw++] = (cf_weights){L->net->layer[i]->name, L->net->layer[i]->n_blobs, L->net->layer[i]->blobs};
    for (size_t i = 0; i < L->net->n_layers; i++)
        L->w[L->nw++] = (cf_weights){L->net->layers[i]->name, L->net->layers[i]->n_blobs, L->net->layers[i]->blobs};
    return 0;
}

ac_graph *ac_caffe_load_buffer(const char *text, size_t text_len, const char *text_name, const void *model,
                               size_t model_len, const char *model_name, const ac_caffe_options *opt, ac_err *err)
{
    ac_err local;
    if (!err)
        err = &local;
    ac_err_clear(err);
    ld L = {.err = err, .opt = opt};
    L.text_name = text_name ? text_name : "model.prototxt";
    L.model_name = model_name ? model_name : "model.caffemodel";
    L.zero_weights = model == NULL;
    L.P = (pt_parser){.s = text ? text : "", .len = text ? text_len : 0, .line = 1, .col = 1, .file = L.text_name,
                      .err = err};
    int rc = 0, root;
    if (L.P.len > AC_CAFFE_MAX_PROTOTXT_BYTES)
        rc = ac_err_set(err, AC_E_UNSUPPORTED, "%s: %zu bytes, a prototxt may have at most %d", L.text_name, L.P.len,
                        AC_CAFFE_MAX_PROTOTXT_BYTES);
    if (!rc && !(L.P.arena = ac_arena_new(0)))
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
    if (!rc && !(rc = new_field(&L.P, &root))) {
        L.P.f[root].kind = PT_MSG;
        L.P.f[root].name = "net";
        rc = parse_message(&L.P, root, 0, 0);
    }
    if (!rc && model)
        rc = read_model(&L, model, model_len);
    if (!rc && !(L.g = ac_graph_new(L.text_name)))
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory for the graph");
    if (!rc) {
        L.g->opset = AC_CAFFE_OPSET;
        rc = build(&L);
    }
    if (rc && !err->code)
        ac_err_set(err, AC_E_INTERNAL, "%s: import failed without a message", L.text_name);
    if (L.net)
        caffe_min__net_parameter__free_unpacked(L.net, NULL);
    free(L.w);
    free(L.blobs);
    free(L.P.f);
    ac_arena_destroy(&L.P.arena);
    if (rc)
        ac_graph_destroy(&L.g);
    return L.g;
}

ac_graph *ac_caffe_load(const char *prototxt_path, const char *caffemodel_path, const ac_caffe_options *opt,
                        ac_err *err)
{
    char *text = NULL, *model = NULL;
    size_t tlen, mlen;
    if (ac_model_file_read(prototxt_path, AC_CAFFE_MAX_PROTOTXT_BYTES, "prototxt", &text, &tlen, err) ||
        ac_model_file_read(caffemodel_path, (size_t)2 << 30, "caffemodel", &model, &mlen, err)) {
        free(text);
        return NULL;
    }
    ac_graph *g = ac_caffe_load_buffer(text, tlen, ac_import_base_name(prototxt_path), model, mlen, ac_import_base_name(caffemodel_path),
                                       opt, err);
    free(text);
    free(model);
    return g;
}
