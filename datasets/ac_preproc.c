#include "ac_preproc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ac_preproc {
    int n;
    ac_pp_op *ops;
    char *canonical;
};

static const struct {
    const char *name, *text, *what;
} templates[] = {
    {"vgg_tensorflow", "resize_side=256;crop_h=224,crop_w=224;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True",
     "TF-slim VGG/ResNet: shorter side to 256, centre 224x224, subtract BGR means, RGB out"},
    {"ssd_vgg_tensorflow",
     "resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True;crop_h=224,crop_w=224",
     "resize to 256x256, subtract BGR means, RGB, centre 224x224"},
    {"ssd_inception_tensorflow",
     "resize_h=256,resize_w=256;scale=0.003921568859368563;crop_fraction=0.875;resize_h=224,resize_w=224;"
     "mean_value=0.5:0.5:0.5,scale=2.0,bgr2rgb=True",
     "Inception: to 0..1, central 87.5%, resize 224x224, to -1..1, RGB"},
    {"user_defined", "", "the string given with --data_preproccess_str (the default)"},
};

static const struct {
    const char *name, *value, *what;
} params[] = {
    {"resize_h", "int 1..65536", "bilinear resize to this height (needs resize_w); half-pixel centres"},
    {"resize_w", "int 1..65536", "bilinear resize to this width (needs resize_h)"},
    {"resize_side", "int 1..65536", "bilinear resize so the shorter side is N, aspect kept (other side rounded)"},
    {"crop_h", "int 1..65536", "centre crop to this height (needs crop_w); top = (H - crop_h) / 2"},
    {"crop_w", "int 1..65536", "centre crop to this width (needs crop_h); left = (W - crop_w) / 2"},
    {"crop_fraction", "number in (0, 1]", "keep the central fraction: start = int((H - H*f) / 2), size = H - 2*start"},
    {"mean_value", "1 or C numbers, ':'-separated", "x = (x - mean) * scale, per channel in the current order"},
    {"scale", "1 or C numbers, ':'-separated", "multiplier of (x - mean); mean 0 when mean_value is absent"},
    {"bgr2rgb", "True/False (also true/false/1/0)", "swap channels 0 and 2 (images enter as BGR)"},
};
#define NPARAMS ((int)(sizeof params / sizeof params[0]))
#define NTEMPLATES ((int)(sizeof templates / sizeof templates[0]))

int ac_preproc_nops(const ac_preproc *p) { return p ? p->n : 0; }
const ac_pp_op *ac_preproc_op(const ac_preproc *p, int i) { return p && i >= 0 && i < p->n ? &p->ops[i] : NULL; }
const char *ac_preproc_canonical(const ac_preproc *p) { return p && p->canonical ? p->canonical : ""; }

void ac_preproc_destroy(ac_preproc **p)
{
    if (!p || !*p)
        return;
    free((*p)->ops);
    free((*p)->canonical);
    free(*p);
    *p = NULL;
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    const char *s; /* start in the full text */
    size_t n;
} span;

static span trim(span t)
{
    while (t.n && isspace((unsigned char)t.s[0]))
        t.s++, t.n--;
    while (t.n && isspace((unsigned char)t.s[t.n - 1]))
        t.n--;
    return t;
}

typedef struct {
    const char *text;
    ac_err *err;
} pctx;

static int col(const pctx *c, span t) { return (int)(t.s - c->text) + 1; }

static int perr(const pctx *c, span where, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return ac_err_set(c->err, AC_E_INVALID, "preprocessing string '%s': column %d: %s", c->text,
                      col(c, where), msg);
}

static int parse_int(const pctx *c, span name, span v, int *out)
{
    char buf[64];
    char nm[32];
    snprintf(nm, sizeof nm, "%.*s", (int)name.n, name.s);
    if (v.n == 0 || v.n >= sizeof buf)
        return perr(c, v, "parameter '%s': value '%s' is not an integer in 1..65536", nm, v.n ? "(too long)" : "");
    memcpy(buf, v.s, v.n);
    buf[v.n] = 0;
    char *end;
    errno = 0;
    long x = strtol(buf, &end, 10);
    if (errno || *end || end == buf || x < 1 || x > 65536)
        return perr(c, v, "parameter '%s': value '%s' is not an integer in 1..65536", nm, buf);
    *out = (int)x;
    return 0;
}

static int parse_num(const pctx *c, const char *nm, span v, double *out)
{
    char buf[64];
    if (v.n == 0 || v.n >= sizeof buf)
        return perr(c, v, "parameter '%s': '%s' is not a number", nm, v.n ? "(too long)" : "(empty)");
    memcpy(buf, v.s, v.n);
    buf[v.n] = 0;
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (errno || *end || end == buf || !isfinite(x))
        return perr(c, v, "parameter '%s': '%s' is not a finite number", nm, buf);
    *out = x;
    return 0;
}

static int parse_list(const pctx *c, span name, span v, float *vals, int *n)
{
    char nm[32];
    snprintf(nm, sizeof nm, "%.*s", (int)name.n, name.s);
    *n = 0;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < v.n && v.s[j] != ':')
            j++;
        if (*n == AC_PP_MAX_CH)
            return perr(c, v, "parameter '%s': more than %s values (one per channel at most)", nm, "4");
        double x;
        span item = trim((span){v.s + i, j - i});
        if (item.n == 0)
            item.s = v.s + i;
        if (parse_num(c, nm, item, &x))
            return AC_E_INVALID;
        if (!isfinite((float)x)) { /* values are applied in float32 */
            char vb[64];
            snprintf(vb, sizeof vb, "%.*s", (int)(item.n < 40 ? item.n : 40), item.s);
            return perr(c, item, "parameter '%s': %s is outside the float32 range", nm, vb);
        }
        vals[(*n)++] = (float)x;
        if (j >= v.n)
            break;
        i = j + 1;
    }
    return 0;
}

static int parse_bool(const pctx *c, span v, int *out)
{
    static const char *const yes[] = {"True", "true", "TRUE", "1"}, *const no[] = {"False", "false", "FALSE", "0"};
    for (int i = 0; i < 4; i++) {
        if (strlen(yes[i]) == v.n && !memcmp(v.s, yes[i], v.n))
            return *out = 1, 0;
        if (strlen(no[i]) == v.n && !memcmp(v.s, no[i], v.n))
            return *out = 0, 0;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", (int)(v.n < 40 ? v.n : 40), v.s);
    return perr(c, v, "parameter 'bgr2rgb': '%s' is not %s", buf, "True/False/true/false/1/0");
}

static ac_pp_kind kind_of(const char *nm)
{
    if (!strcmp(nm, "resize_h") || !strcmp(nm, "resize_w"))
        return AC_PP_RESIZE;
    if (!strcmp(nm, "resize_side"))
        return AC_PP_RESIZE_SIDE;
    if (!strcmp(nm, "crop_h") || !strcmp(nm, "crop_w"))
        return AC_PP_CROP;
    if (!strcmp(nm, "crop_fraction"))
        return AC_PP_CROP_FRACTION;
    if (!strcmp(nm, "mean_value") || !strcmp(nm, "scale"))
        return AC_PP_STAND;
    return AC_PP_BGR2RGB;
}

/* Parses one ';' group into ops appended to p. */
static int parse_group(const pctx *c, span g, ac_preproc *p)
{
    int slot[6] = {-1, -1, -1, -1, -1, -1}; /* op index per kind within this group */
    unsigned seen = 0;                        /* bit per parameter */
    span first_pos[6];
    size_t i = 0;
    while (i <= g.n) {
        size_t j = i;
        while (j < g.n && g.s[j] != ',')
            j++;
        span item = trim((span){g.s + i, j - i});
        i = j + 1;
        if (item.n == 0) {
            if (j < g.n) /* "a=1,,b=2": an empty parameter between commas */
                return perr(c, (span){g.s + j, 1}, "empty parameter before this ','%s%s", "", "");
            continue;
        }
        const char *eq = memchr(item.s, '=', item.n);
        char nm[32];
        snprintf(nm, sizeof nm, "%.*s", (int)(item.n < 31 ? item.n : 31), item.s);
        if (!eq)
            return perr(c, item, "'%s' has no '=' (parameters are name=value)%s", nm, "");
        span name = trim((span){item.s, (size_t)(eq - item.s)});
        span val = trim((span){eq + 1, (size_t)(item.s + item.n - eq - 1)});
        if (val.n == 0)
            val.s = eq + 1;
        snprintf(nm, sizeof nm, "%.*s", (int)(name.n < 31 ? name.n : 31), name.s);
        int pi = -1;
        for (int k = 0; k < NPARAMS; k++)
            if (strlen(params[k].name) == name.n && !memcmp(params[k].name, name.s, name.n))
                pi = k;
        if (pi < 0)
            return perr(c, name,
                        "unknown parameter '%s'; known: %s", nm,
                        "resize_h, resize_w, resize_side, crop_h, crop_w, crop_fraction, mean_value, scale, bgr2rgb");
        if (seen & (1u << pi))
            return perr(c, name, "parameter '%s' appears twice in one op group (start a new group with ';')%s", nm, "");
        seen |= 1u << pi;
        ac_pp_kind k = kind_of(params[pi].name);
        if (slot[k] < 0) {
            ac_pp_op *ops = realloc(p->ops, sizeof *ops * (size_t)(p->n + 1));
            if (!ops)
                return ac_err_set(c->err, AC_E_NOMEM, "out of memory");
            p->ops = ops;
            memset(&ops[p->n], 0, sizeof *ops);
            ops[p->n].kind = k;
            ops[p->n].fraction = 1.0;
            slot[k] = p->n++;
            first_pos[k] = name;
        }
        ac_pp_op *op = &p->ops[slot[k]];
        int rc = 0;
        const char *pn = params[pi].name;
        if (!strcmp(pn, "resize_h") || !strcmp(pn, "crop_h"))
            rc = parse_int(c, name, val, &op->h);
        else if (!strcmp(pn, "resize_w") || !strcmp(pn, "crop_w"))
            rc = parse_int(c, name, val, &op->w);
        else if (!strcmp(pn, "resize_side"))
            rc = parse_int(c, name, val, &op->side);
        else if (!strcmp(pn, "crop_fraction")) {
            rc = parse_num(c, pn, val, &op->fraction);
            if (!rc && !(op->fraction > 0 && op->fraction <= 1)) {
                char vb[64];
                snprintf(vb, sizeof vb, "%.*s", (int)(val.n < 40 ? val.n : 40), val.s);
                rc = perr(c, val, "parameter 'crop_fraction': %s is not in (0, 1]%s", vb, "");
            }
        } else if (!strcmp(pn, "mean_value"))
            rc = parse_list(c, name, val, op->mean, &op->nmean);
        else if (!strcmp(pn, "scale"))
            rc = parse_list(c, name, val, op->scale, &op->nscale);
        else
            rc = parse_bool(c, val, &op->swap);
        if (rc)
            return rc;
    }
    /* Paired parameters must come together. */
    for (int k = 0; k < 6; k++) {
        if (slot[k] < 0)
            continue;
        ac_pp_op *op = &p->ops[slot[k]];
        if (k == AC_PP_RESIZE && (!op->h || !op->w))
            return perr(c, first_pos[k], "%s given without %s (a resize needs both)", op->h ? "resize_h" : "resize_w",
                        op->h ? "resize_w" : "resize_h");
        if (k == AC_PP_CROP && (!op->h || !op->w))
            return perr(c, first_pos[k], "%s given without %s (a crop needs both)", op->h ? "crop_h" : "crop_w",
                        op->h ? "crop_w" : "crop_h");
    }
    return 0;
}

/* The shortest %g spelling that reads back as the same float. */
static const char *fmt_float(float v, char *buf, size_t n)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return buf;
}

static char *make_canonical(const ac_preproc *p)
{
    char fb[32];
    size_t cap = 64 + (size_t)p->n * 160, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = 0;
#define PUT(...) len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__)
    for (int i = 0; i < p->n; i++) {
        const ac_pp_op *op = &p->ops[i];
        if (i)
            PUT(";");
        switch (op->kind) {
        case AC_PP_RESIZE: PUT("resize_h=%d,resize_w=%d", op->h, op->w); break;
        case AC_PP_RESIZE_SIDE: PUT("resize_side=%d", op->side); break;
        case AC_PP_CROP: PUT("crop_h=%d,crop_w=%d", op->h, op->w); break;
        case AC_PP_CROP_FRACTION: PUT("crop_fraction=%.17g", op->fraction); break;
        case AC_PP_STAND:
            if (op->nmean) {
                PUT("mean_value=");
                for (int k = 0; k < op->nmean; k++)
                    PUT("%s%s", k ? ":" : "", fmt_float(op->mean[k], fb, sizeof fb));
            }
            if (op->nscale) {
                PUT("%sscale=", op->nmean ? "," : "");
                for (int k = 0; k < op->nscale; k++)
                    PUT("%s%s", k ? ":" : "", fmt_float(op->scale[k], fb, sizeof fb));
            }
            break;
        case AC_PP_BGR2RGB: PUT("bgr2rgb=%s", op->swap ? "True" : "False"); break;
        }
    }
#undef PUT
    return s;
}

int ac_preproc_parse(const char *text, ac_preproc **out, ac_err *err)
{
    *out = NULL;
    ac_preproc *p = calloc(1, sizeof *p);
    if (!p)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    if (!text)
        text = "";
    pctx c = {text, err};
    size_t n = strlen(text), i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && text[j] != ';')
            j++;
        int rc = parse_group(&c, (span){text + i, j - i}, p);
        if (rc) {
            ac_preproc_destroy(&p);
            return rc;
        }
        i = j + 1;
    }
    p->canonical = make_canonical(p);
    if (!p->canonical) {
        ac_preproc_destroy(&p);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    *out = p;
    return AC_OK;
}

int ac_preproc_resolve(const char *template_name, const char *user_str, const char **out, ac_err *err)
{
    *out = user_str ? user_str : "";
    if (!template_name || !*template_name || !strcmp(template_name, "user_defined"))
        return AC_OK;
    for (int i = 0; i < NTEMPLATES; i++)
        if (!strcmp(template_name, templates[i].name)) {
            if (user_str && *user_str)
                return ac_err_set(err, AC_E_INVALID,
                                  "--image_data_preproccess %s and --data_preproccess_str '%s' both given; "
                                  "a template replaces the string (use user_defined to keep the string)",
                                  template_name, user_str);
            *out = templates[i].text;
            return AC_OK;
        }
    return ac_err_set(err, AC_E_INVALID,
                      "--image_data_preproccess: unknown template '%s'; known: vgg_tensorflow, ssd_vgg_tensorflow, "
                      "ssd_inception_tensorflow, user_defined",
                      template_name);
}

void ac_preproc_print_all(FILE *f)
{
    fprintf(f, "preprocessing templates (--image_data_preproccess NAME):\n");
    for (int i = 0; i < NTEMPLATES; i++)
        fprintf(f, "  %-26s %s\n  %-26s   %s\n", templates[i].name, templates[i].what, "",
                templates[i].text[0] ? templates[i].text : "(--data_preproccess_str)");
    fprintf(f, "\npreprocessing string (--data_preproccess_str): ops separated by ';', parameters by ',',\n"
               "name=value, several values by ':'; ops run in the order written. Images enter as BGR\n"
               "(gray for 1-channel models), every op works in float32.\n\n");
    for (int i = 0; i < NPARAMS; i++)
        fprintf(f, "  %-14s %-34s %s\n", params[i].name, params[i].value, params[i].what);
}

/* ---------------------------------------------------------------- shapes */

static int op_out_size(const ac_pp_op *op, int h, int w, int *oh, int *ow, int index, const char *name,
                       ac_err *err)
{
    *oh = h, *ow = w;
    switch (op->kind) {
    case AC_PP_RESIZE: *oh = op->h, *ow = op->w; break;
    case AC_PP_RESIZE_SIDE:
        if (h <= w) {
            *oh = op->side;
            *ow = (int)floor((double)w * op->side / h + 0.5);
        } else {
            *ow = op->side;
            *oh = (int)floor((double)h * op->side / w + 0.5);
        }
        if (*oh < 1)
            *oh = 1;
        if (*ow < 1)
            *ow = 1;
        if (*oh > AC_IMAGE_MAX_SIDE || *ow > AC_IMAGE_MAX_SIDE)
            return ac_err_set(err, AC_E_INVALID, "%s: op %d (resize_side=%d) gives %dx%d (WxH), over %d per side",
                              name, index + 1, op->side, *ow, *oh, AC_IMAGE_MAX_SIDE);
        break;
    case AC_PP_CROP:
        if (op->h > h || op->w > w)
            return ac_err_set(err, AC_E_INVALID,
                              "%s: op %d (crop_h=%d,crop_w=%d) is larger than the %dx%d (WxH) image at that point",
                              name, index + 1, op->h, op->w, w, h);
        *oh = op->h, *ow = op->w;
        break;
    case AC_PP_CROP_FRACTION: {
        int sh = (int)((h - h * op->fraction) / 2), sw = (int)((w - w * op->fraction) / 2);
        *oh = h - 2 * sh, *ow = w - 2 * sw;
        if (*oh < 1 || *ow < 1)
            return ac_err_set(err, AC_E_INVALID, "%s: op %d (crop_fraction=%g) leaves nothing of a %dx%d image",
                              name, index + 1, op->fraction, w, h);
        break;
    }
    default: break;
    }
    return AC_OK;
}

int ac_preproc_out_size(const ac_preproc *p, int in_h, int in_w, int channels, int *out_h, int *out_w,
                        const char *name, ac_err *err)
{
    int h = in_h, w = in_w;
    for (int i = 0; i < ac_preproc_nops(p); i++) {
        const ac_pp_op *op = &p->ops[i];
        if (op->kind == AC_PP_STAND &&
            ((op->nmean > 1 && op->nmean != channels) || (op->nscale > 1 && op->nscale != channels)))
            return ac_err_set(err, AC_E_INVALID,
                              "%s: op %d (%s): %d mean and %d scale values for a %d-channel input (give 1 or %d)",
                              name, i + 1, p->canonical, op->nmean, op->nscale, channels, channels);
        int rc = op_out_size(op, h, w, &h, &w, i, name, err);
        if (rc)
            return rc;
    }
    *out_h = h, *out_w = w;
    return AC_OK;
}

int ac_preproc_map_box(const ac_preproc *p, int in_h, int in_w, float *x1, float *y1, float *x2, float *y2,
                       const char *name, ac_err *err)
{
    int h = in_h, w = in_w;
    double bx1 = *x1, by1 = *y1, bx2 = *x2, by2 = *y2;
    for (int i = 0; i < ac_preproc_nops(p); i++) {
        const ac_pp_op *op = &p->ops[i];
        int oh, ow;
        int rc = op_out_size(op, h, w, &oh, &ow, i, name, err);
        if (rc)
            return -1;
        switch (op->kind) {
        case AC_PP_RESIZE:
        case AC_PP_RESIZE_SIDE: { /* pixel edges scale with the image (half-pixel centres) */
            double sx = (double)ow / w, sy = (double)oh / h;
            bx1 *= sx, bx2 *= sx, by1 *= sy, by2 *= sy;
            break;
        }
        case AC_PP_CROP:
        case AC_PP_CROP_FRACTION: { /* the same top/left as the crop kernel */
            double dx = (w - ow) / 2, dy = (h - oh) / 2;
            bx1 -= dx, bx2 -= dx, by1 -= dy, by2 -= dy;
            break;
        }
        default: break;
        }
        h = oh, w = ow;
    }
    bx1 = bx1 < 0 ? 0 : bx1 > w ? w : bx1;
    bx2 = bx2 < 0 ? 0 : bx2 > w ? w : bx2;
    by1 = by1 < 0 ? 0 : by1 > h ? h : by1;
    by2 = by2 < 0 ? 0 : by2 > h ? h : by2;
    *x1 = (float)bx1, *y1 = (float)by1, *x2 = (float)bx2, *y2 = (float)by2;
    return bx2 > bx1 && by2 > by1 ? 1 : 0;
}

/* ---------------------------------------------------------------- kernels */

typedef struct {
    int i0, i1;
    float f;
} tap;

static void make_taps(tap *t, int in, int out)
{
    double scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        double s = ((double)o + 0.5) * scale - 0.5;
        if (s < 0)
            s = 0;
        int i0 = (int)s;
        if (i0 > in - 1)
            i0 = in - 1;
        t[o].i0 = i0;
        t[o].i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        t[o].f = (float)(s - i0);
    }
}

/* Bilinear resize, separable with the exact per-pixel arithmetic
 *   top = (1-fx)*a + fx*b (row y0), bot = (1-fx)*c + fx*d (row y1),
 *   out = (1-fy)*top + fy*bot:
 * each needed source row is interpolated horizontally once (cached across
 * output rows), then rows are blended. (float)u8 is exact, so 8-bit sources
 * give the same result as converting first. C is a compile-time constant in
 * the specialised copies (1 and 3 channels). */
#define DEFINE_HROW(NAME, T)                                                                                           \
    static inline __attribute__((always_inline)) void NAME(const T *row, int c, float *dst, int ow, const tap *tx)     \
    {                                                                                                                  \
        for (int x = 0; x < ow; x++) {                                                                                 \
            const T *a = row + (size_t)tx[x].i0 * c, *b = row + (size_t)tx[x].i1 * c;                                  \
            float fx = tx[x].f, gx = 1.0f - fx;                                                                        \
            for (int k = 0; k < c; k++)                                                                                \
                dst[(size_t)x * c + k] = gx * (float)a[k] + fx * (float)b[k];                                          \
        }                                                                                                              \
    }
DEFINE_HROW(hrow_f32_body, float)
DEFINE_HROW(hrow_u8_body, uint8_t)

static void hrow(const float *f32, const uint8_t *u8, int c, float *dst, int ow, const tap *tx)
{
    if (u8) {
        if (c == 3)
            hrow_u8_body(u8, 3, dst, ow, tx);
        else if (c == 1)
            hrow_u8_body(u8, 1, dst, ow, tx);
        else
            hrow_u8_body(u8, c, dst, ow, tx);
    } else {
        if (c == 3)
            hrow_f32_body(f32, 3, dst, ow, tx);
        else if (c == 1)
            hrow_f32_body(f32, 1, dst, ow, tx);
        else
            hrow_f32_body(f32, c, dst, ow, tx);
    }
}

/* src is float (u8 == NULL) or 8-bit (u8 != NULL). */
static void resize_any(const float *src, const uint8_t *u8, int ih, int iw, int c, float *dst, int oh, int ow)
{
    size_t rowlen = (size_t)ow * c;
    tap *ty = malloc(sizeof *ty * (size_t)oh), *tx = malloc(sizeof *tx * (size_t)ow);
    float *ra = malloc(sizeof(float) * rowlen), *rb = malloc(sizeof(float) * rowlen);
    if (!ty || !tx || !ra || !rb) {
        free(ty), free(tx), free(ra), free(rb);
        memset(dst, 0, sizeof *dst * (size_t)oh * ow * c);
        return;
    }
    make_taps(ty, ih, oh);
    make_taps(tx, iw, ow);
    size_t in_row = (size_t)iw * c;
    int ya = -1, yb = -1; /* source rows held in ra, rb */
    for (int y = 0; y < oh; y++) {
        int y0 = ty[y].i0, y1 = ty[y].i1;
        if (ya != y0) {
            if (yb == y0) { /* moving down: the old bottom row is the new top */
                float *t = ra;
                ra = rb, rb = t;
                ya = y0, yb = -1;
            } else {
                hrow(u8 ? NULL : src + y0 * in_row, u8 ? u8 + y0 * in_row : NULL, c, ra, ow, tx);
                ya = y0;
            }
        }
        if (yb != y1) {
            hrow(u8 ? NULL : src + y1 * in_row, u8 ? u8 + y1 * in_row : NULL, c, rb, ow, tx);
            yb = y1;
        }
        float fy = ty[y].f, gy = 1.0f - fy;
        float *d = dst + (size_t)y * rowlen;
        for (size_t i = 0; i < rowlen; i++)
            d[i] = gy * ra[i] + fy * rb[i];
    }
    free(ty), free(tx), free(ra), free(rb);
}

void ac_resize_bilinear_f32(const float *src, int ih, int iw, int c, float *dst, int oh, int ow)
{
    resize_any(src, NULL, ih, iw, c, dst, oh, ow);
}

static void crop_f32(const float *src, int ih, int iw, int c, int y0, int x0, float *dst, int oh, int ow)
{
    (void)ih;
    for (int y = 0; y < oh; y++)
        memcpy(dst + (size_t)y * ow * c, src + ((size_t)(y + y0) * iw + x0) * c, sizeof(float) * (size_t)ow * c);
}

/* Working memory of one thread, reused across images (no page faults per image). */
struct ac_preproc_work {
    float *a, *b;
    size_t cap; /* floats in each */
};

ac_preproc_work *ac_preproc_work_new(void) { return calloc(1, sizeof(ac_preproc_work)); }

void ac_preproc_work_destroy(ac_preproc_work **p)
{
    if (!p || !*p)
        return;
    free((*p)->a);
    free((*p)->b);
    free(*p);
    *p = NULL;
}

static int work_reserve(ac_preproc_work *w, size_t n)
{
    if (w->cap >= n)
        return 0;
    free(w->a);
    free(w->b);
    w->a = malloc(sizeof(float) * n);
    w->b = malloc(sizeof(float) * n);
    w->cap = w->a && w->b ? n : 0;
    return w->cap ? 0 : -1;
}

int ac_preproc_run(const ac_preproc *p, const ac_image *img, int channels, ac_layout layout, int out_h,
                   int out_w, float *out, const char *name, ac_err *err)
{
    ac_preproc_work *w = ac_preproc_work_new();
    if (!w)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for preprocessing", name);
    int rc = ac_preproc_run_work(p, w, img, channels, layout, out_h, out_w, out, name, err);
    ac_preproc_work_destroy(&w);
    return rc;
}

int ac_preproc_run_work(const ac_preproc *p, ac_preproc_work *work, const ac_image *img, int channels,
                        ac_layout layout, int out_h, int out_w, float *out, const char *name, ac_err *err)
{
    int h = img->h, w = img->w, c = channels;
    if (c < 1 || c > AC_PP_MAX_CH || (img->c != c && !((img->c == 1 || img->c == 3) && (c == 1 || c == 3))))
        return ac_err_set(err, AC_E_INVALID, "%s: cannot turn a %d-channel image into %d channels", name, img->c, c);
    /* Stage sizes first: they bound the scratch buffers and validate crops. */
    size_t maxpix = (size_t)h * w;
    int sh = h, sw = w;
    for (int i = 0; i < ac_preproc_nops(p); i++) {
        int rc = op_out_size(&p->ops[i], sh, sw, &sh, &sw, i, name, err);
        if (rc)
            return rc;
        const ac_pp_op *op = &p->ops[i];
        if (op->kind == AC_PP_STAND &&
            ((op->nmean > 1 && op->nmean != c) || (op->nscale > 1 && op->nscale != c)))
            return ac_err_set(err, AC_E_INVALID,
                              "%s: op %d: %d mean_value and %d scale values for a %d-channel image (give 1 or %d)",
                              name, i + 1, op->nmean, op->nscale, c, c);
        if ((size_t)sh * sw > maxpix)
            maxpix = (size_t)sh * sw;
    }
    if ((out_h > 0 && sh != out_h) || (out_w > 0 && sw != out_w))
        return ac_err_set(err, AC_E_INVALID,
                          "%s: the %dx%d (WxH) image is %dx%d after preprocessing '%s', but samples must be %dx%d; "
                          "end the pipeline with resize_h/resize_w or crop_h/crop_w",
                          name, w, h, sw, sh, ac_preproc_canonical(p), out_w, out_h);
    if (work_reserve(work, maxpix * c))
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for preprocessing", name);
    float *a = work->a, *b = work->b;
    /* bgr2rgb is not a pass over the pixels: perm[k] is where logical channel
     * k is stored; standardisation and the final write go through it. */
    int perm[AC_PP_MAX_CH];
    for (int k = 0; k < c; k++)
        perm[k] = k;
    /* A leading resize reads the 8-bit pixels directly (same result as
     * converting first, one pass less). */
    int first = 0;
    if (img->u8 && img->c == c && ac_preproc_nops(p) > 0 &&
        (p->ops[0].kind == AC_PP_RESIZE || p->ops[0].kind == AC_PP_RESIZE_SIDE)) {
        int nh, nw;
        op_out_size(&p->ops[0], h, w, &nh, &nw, 0, name, NULL);
        resize_any(NULL, img->u8, h, w, c, a, nh, nw);
        h = nh, w = nw, first = 1;
    } else {
        size_t npix = (size_t)h * w;
        if (img->c == c && img->u8) {
            for (size_t i = 0; i < npix * c; i++)
                a[i] = (float)img->u8[i];
        } else if (img->c == c) {
            memcpy(a, img->f32, sizeof(float) * npix * c);
        } else if (c == 3) {
            for (size_t i = 0; i < npix; i++)
                a[i * 3] = a[i * 3 + 1] = a[i * 3 + 2] = img->u8 ? (float)img->u8[i] : img->f32[i];
        } else if (img->u8) {
            for (size_t i = 0; i < npix; i++)
                a[i] = ac_bgr_to_gray(img->u8[3 * i], img->u8[3 * i + 1], img->u8[3 * i + 2]);
        } else {
            for (size_t i = 0; i < npix; i++)
                a[i] = 0.299f * img->f32[3 * i + 2] + 0.587f * img->f32[3 * i + 1] + 0.114f * img->f32[3 * i];
        }
    }
    for (int i = first; i < ac_preproc_nops(p); i++) {
        const ac_pp_op *op = &p->ops[i];
        int nh, nw;
        op_out_size(op, h, w, &nh, &nw, i, name, NULL);
        switch (op->kind) {
        case AC_PP_RESIZE:
        case AC_PP_RESIZE_SIDE:
            if (nh != h || nw != w) {
                resize_any(a, NULL, h, w, c, b, nh, nw);
                float *t = a;
                a = b, b = t;
            }
            break;
        case AC_PP_CROP:
        case AC_PP_CROP_FRACTION:
            crop_f32(a, h, w, c, (h - nh) / 2, (w - nw) / 2, b, nh, nw);
            {
                float *t = a;
                a = b, b = t;
            }
            break;
        case AC_PP_STAND: {
            float m[AC_PP_MAX_CH], s[AC_PP_MAX_CH]; /* by storage channel */
            for (int k = 0; k < c; k++) {
                m[perm[k]] = op->nmean ? op->mean[op->nmean > 1 ? k : 0] : 0.0f;
                s[perm[k]] = op->nscale ? op->scale[op->nscale > 1 ? k : 0] : 1.0f;
            }
            size_t n = (size_t)h * w;
            if (c == 3) {
                for (size_t j = 0; j < n; j++) {
                    a[3 * j] = (a[3 * j] - m[0]) * s[0];
                    a[3 * j + 1] = (a[3 * j + 1] - m[1]) * s[1];
                    a[3 * j + 2] = (a[3 * j + 2] - m[2]) * s[2];
                }
            } else {
                for (size_t j = 0; j < n; j++)
                    for (int k = 0; k < c; k++)
                        a[j * c + k] = (a[j * c + k] - m[k]) * s[k];
            }
            break;
        }
        case AC_PP_BGR2RGB:
            if (op->swap && c >= 3) {
                int t = perm[0];
                perm[0] = perm[2];
                perm[2] = t;
            }
            break;
        }
        h = nh, w = nw;
    }
    size_t n = (size_t)h * w;
    if (layout == AC_LAYOUT_NHWC) {
        int identity = 1;
        for (int k = 0; k < c; k++)
            identity &= perm[k] == k;
        if (identity) {
            memcpy(out, a, sizeof(float) * n * c);
        } else {
            for (size_t j = 0; j < n; j++)
                for (int k = 0; k < c; k++)
                    out[j * c + k] = a[j * c + perm[k]];
        }
    } else {
        for (int k = 0; k < c; k++) {
            const float *src = a + perm[k];
            float *dst = out + (size_t)k * n;
            for (size_t j = 0; j < n; j++)
                dst[j] = src[j * c];
        }
    }
    return AC_OK;
}
