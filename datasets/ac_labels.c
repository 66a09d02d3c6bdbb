#include "ac_labels.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ac_labels {
    ac_label_kind kind;
    int64_t count, cap;
    int32_t *cls;       /* CLASS: count values */
    int64_t *start;     /* BOXES: count + 1 offsets into boxes */
    ac_box *boxes;
    int64_t nboxes, boxcap;
};

ac_labels *ac_labels_new(ac_label_kind kind)
{
    ac_labels *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->kind = kind;
    l->start = calloc(1, sizeof *l->start);
    if (!l->start) {
        free(l);
        return NULL;
    }
    return l;
}

void ac_labels_destroy(ac_labels **p)
{
    if (!p || !*p)
        return;
    free((*p)->cls);
    free((*p)->start);
    free((*p)->boxes);
    free(*p);
    *p = NULL;
}

ac_label_kind ac_labels_kind(const ac_labels *l) { return l ? l->kind : AC_LABEL_NONE; }
int64_t ac_labels_count(const ac_labels *l) { return l ? l->count : 0; }

const char *ac_label_kind_name(ac_label_kind k)
{
    return k == AC_LABEL_CLASS ? "classification" : k == AC_LABEL_BOXES ? "detection" : "none";
}

static int grow(ac_labels *l, ac_err *err)
{
    if (l->count < l->cap)
        return AC_OK;
    int64_t cap = l->cap ? l->cap * 2 : 256;
    int32_t *c = realloc(l->cls, sizeof *c * (size_t)cap);
    if (!c)
        return ac_err_set(err, AC_E_NOMEM, "out of memory for labels");
    l->cls = c;
    int64_t *s = realloc(l->start, sizeof *s * (size_t)(cap + 1));
    if (!s)
        return ac_err_set(err, AC_E_NOMEM, "out of memory for labels");
    l->start = s;
    l->cap = cap;
    return AC_OK;
}

int ac_labels_add_class(ac_labels *l, int32_t cls, ac_err *err)
{
    if (l->kind != AC_LABEL_CLASS)
        return ac_err_set(err, AC_E_INVALID, "a class label added to %s labels", ac_label_kind_name(l->kind));
    int rc = grow(l, err);
    if (rc)
        return rc;
    l->cls[l->count++] = cls;
    return AC_OK;
}

int ac_labels_add_boxes(ac_labels *l, const ac_box *boxes, int n, ac_err *err)
{
    if (l->kind != AC_LABEL_BOXES)
        return ac_err_set(err, AC_E_INVALID, "boxes added to %s labels", ac_label_kind_name(l->kind));
    int rc = grow(l, err);
    if (rc)
        return rc;
    if (l->nboxes + n > l->boxcap) {
        int64_t cap = l->boxcap ? l->boxcap : 256;
        while (cap < l->nboxes + n)
            cap *= 2;
        ac_box *b = realloc(l->boxes, sizeof *b * (size_t)cap);
        if (!b)
            return ac_err_set(err, AC_E_NOMEM, "out of memory for boxes");
        l->boxes = b;
        l->boxcap = cap;
    }
    if (n)
        memcpy(l->boxes + l->nboxes, boxes, sizeof *boxes * (size_t)n);
    l->nboxes += n;
    l->cls[l->count] = n;
    l->start[++l->count] = l->nboxes;
    return AC_OK;
}

int32_t ac_labels_class(const ac_labels *l, int64_t i)
{
    return l && l->kind == AC_LABEL_CLASS && i >= 0 && i < l->count ? l->cls[i] : -1;
}

int ac_labels_boxes(const ac_labels *l, int64_t i, const ac_box **boxes)
{
    *boxes = NULL;
    if (!l || l->kind != AC_LABEL_BOXES || i < 0 || i >= l->count)
        return 0;
    int n = (int)(l->start[i + 1] - l->start[i]);
    *boxes = n ? l->boxes + l->start[i] : NULL;
    return n;
}

/* ---------------------------------------------------------------- parsing helpers */

typedef struct {
    const char *s;
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

static int span_int(span t, int32_t *out)
{
    char buf[32];
    if (t.n == 0 || t.n >= sizeof buf)
        return -1;
    memcpy(buf, t.s, t.n);
    buf[t.n] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static int span_float(span t, float *out)
{
    char buf[64];
    if (t.n == 0 || t.n >= sizeof buf)
        return -1;
    memcpy(buf, t.s, t.n);
    buf[t.n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || end == buf || !isfinite(v) || fabs(v) > 3.0e38)
        return -1;
    *out = (float)v;
    return 0;
}

static void show(span t, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s", (int)(t.n < 40 ? t.n : 40), t.s);
}

/* Splits text into lines (\n or \r\n); a final newline does not start a line. */
static int64_t split_lines(const char *text, size_t len, span **out)
{
    int64_t n = 0, cap = 64;
    span *v = malloc(sizeof *v * (size_t)cap);
    if (!v)
        return -1;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        if (n == cap) {
            cap *= 2;
            span *t = realloc(v, sizeof *v * (size_t)cap);
            if (!t) {
                free(v);
                return -1;
            }
            v = t;
        }
        size_t e = j;
        if (e > i && text[e - 1] == '\r')
            e--;
        v[n++] = (span){text + i, e - i};
        i = j + 1;
    }
    *out = v;
    return n;
}

/* Classification line: exactly `expect` non-negative integers separated by ','. */
static int parse_class_line(span line, int64_t expect, int32_t *vals, const char *name, int64_t lineno,
                            const char *text, ac_err *err)
{
    int64_t n = 0;
    size_t i = 0;
    span t = trim(line);
    if (t.n == 0)
        return ac_err_set(err, AC_E_INVALID, "%s: line %lld is empty; a classification line holds %lld labels",
                          name, (long long)lineno, (long long)expect);
    while (i <= t.n) {
        size_t j = i;
        while (j < t.n && t.s[j] != ',')
            j++;
        span f = trim((span){t.s + i, j - i});
        int32_t v;
        char b[48];
        show(f, b, sizeof b);
        if (span_int(f, &v))
            return ac_err_set(err, AC_E_INVALID,
                              "%s: line %lld, column %d: '%s' is not a class index (a non-negative integer)",
                              name, (long long)lineno, (int)(t.s + i - line.s) + 1, b);
        if (n < expect)
            vals[n] = v;
        n++;
        i = j + 1;
    }
    (void)text;
    if (n != expect)
        return ac_err_set(err, AC_E_INVALID,
                          "%s: line %lld has %lld labels but its record holds %lld samples (one label per sample)",
                          name, (long long)lineno, (long long)n, (long long)expect);
    return AC_OK;
}

/* Detection line: boxes separated by ';', each "class,x1,y1,x2,y2". */
static int parse_box_line(span line, ac_box **boxes, int *nb, int *cap, const char *name, int64_t lineno,
                          ac_err *err)
{
    *nb = 0;
    size_t i = 0;
    span t = trim(line);
    while (i < t.n) {
        size_t j = i;
        while (j < t.n && t.s[j] != ';')
            j++;
        span b = trim((span){t.s + i, j - i});
        int colno = (int)(t.s + i - line.s) + 1;
        i = j + 1;
        if (b.n == 0)
            continue; /* "a;b;" or "a;;b" */
        span f[5];
        int nf = 0;
        size_t k = 0;
        while (k <= b.n) {
            size_t e = k;
            while (e < b.n && b.s[e] != ',')
                e++;
            if (nf < 5)
                f[nf] = trim((span){b.s + k, e - k});
            nf++;
            k = e + 1;
        }
        char sb[48];
        show(b, sb, sizeof sb);
        if (nf != 5)
            return ac_err_set(err, AC_E_INVALID,
                              "%s: line %lld, column %d: box '%s' has %d fields; a box is class,x1,y1,x2,y2", name,
                              (long long)lineno, colno, sb, nf);
        ac_box box;
        if (span_int(f[0], &box.cls))
            return ac_err_set(err, AC_E_INVALID,
                              "%s: line %lld, column %d: box '%s': class is not a non-negative integer", name,
                              (long long)lineno, colno, sb);
        float *c[4] = {&box.x1, &box.y1, &box.x2, &box.y2};
        for (int q = 0; q < 4; q++)
            if (span_float(f[q + 1], c[q]))
                return ac_err_set(err, AC_E_INVALID,
                                  "%s: line %lld, column %d: box '%s': coordinate %d is not a finite number", name,
                                  (long long)lineno, colno, sb, q + 1);
        if (box.x2 < box.x1 || box.y2 < box.y1)
            return ac_err_set(err, AC_E_INVALID,
                              "%s: line %lld, column %d: box '%s': needs x1 <= x2 and y1 <= y2", name,
                              (long long)lineno, colno, sb);
        if (*nb == *cap) {
            int nc = *cap ? *cap * 2 : 16;
            ac_box *nbx = realloc(*boxes, sizeof *nbx * (size_t)nc);
            if (!nbx)
                return ac_err_set(err, AC_E_NOMEM, "out of memory");
            *boxes = nbx;
            *cap = nc;
        }
        (*boxes)[(*nb)++] = box;
    }
    return AC_OK;
}

static int try_class(span *lines, int64_t nlines, const char *name, const int64_t *batch, ac_labels **out,
                     const char *text, ac_err *err)
{
    ac_labels *l = ac_labels_new(AC_LABEL_CLASS);
    if (!l)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    int32_t *vals = NULL;
    int64_t vcap = 0;
    for (int64_t r = 0; r < nlines; r++) {
        if (batch[r] > vcap) {
            free(vals);
            vcap = batch[r];
            vals = malloc(sizeof *vals * (size_t)vcap);
            if (!vals) {
                ac_labels_destroy(&l);
                return ac_err_set(err, AC_E_NOMEM, "out of memory");
            }
        }
        int rc = parse_class_line(lines[r], batch[r], vals, name, r + 1, text, err);
        for (int64_t k = 0; !rc && k < batch[r]; k++)
            rc = ac_labels_add_class(l, vals[k], err);
        if (rc) {
            free(vals);
            ac_labels_destroy(&l);
            return rc;
        }
    }
    free(vals);
    *out = l;
    return AC_OK;
}

static int try_boxes(span *lines, int64_t nlines, const char *name, ac_labels **out, ac_err *err)
{
    ac_labels *l = ac_labels_new(AC_LABEL_BOXES);
    if (!l)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    ac_box *boxes = NULL;
    int nb, cap = 0;
    for (int64_t r = 0; r < nlines; r++) {
        int rc = parse_box_line(lines[r], &boxes, &nb, &cap, name, r + 1, err);
        if (!rc)
            rc = ac_labels_add_boxes(l, boxes, nb, err);
        if (rc) {
            free(boxes);
            ac_labels_destroy(&l);
            return rc;
        }
    }
    free(boxes);
    *out = l;
    return AC_OK;
}

int ac_labels_parse_datalabel(const char *text, size_t len, const char *name, const int64_t *batch,
                              int64_t nrecords, ac_labels **out, ac_err *err)
{
    *out = NULL;
    span *lines = NULL;
    int64_t nlines = split_lines(text, len, &lines);
    if (nlines < 0)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    int64_t nsamples = 0;
    for (int64_t r = 0; r < nrecords; r++) {
        if (batch[r] < 1) {
            free(lines);
            return ac_err_set(err, AC_E_INVALID, "%s: record %lld has batch size %lld", name, (long long)r,
                              (long long)batch[r]);
        }
        nsamples += batch[r];
    }
    int rc;
    ac_err class_err = {0}, box_err = {0};
    int tried_class = 0, tried_boxes = 0;
    if (nlines == nrecords) {
        tried_class = 1;
        rc = try_class(lines, nlines, name, batch, out, text, &class_err);
        if (!rc) {
            free(lines);
            return AC_OK;
        }
        if (rc == AC_E_NOMEM) {
            free(lines);
            return ac_err_set(err, rc, "%s", class_err.msg);
        }
    }
    if (nlines == nsamples) {
        tried_boxes = 1;
        rc = try_boxes(lines, nlines, name, out, &box_err);
        if (!rc) {
            free(lines);
            return AC_OK;
        }
    }
    free(lines);
    if (tried_class && tried_boxes)
        return ac_err_set(err, AC_E_INVALID, "%s is neither classification labels (%s) nor detection boxes (%s)",
                          name, class_err.msg, box_err.msg);
    if (tried_class)
        return ac_err_set(err, AC_E_INVALID, "%s", class_err.msg);
    if (tried_boxes)
        return ac_err_set(err, AC_E_INVALID, "%s", box_err.msg);
    return ac_err_set(err, AC_E_INVALID,
                      "%s has %lld lines; expected %lld (classification: one line per record) or %lld "
                      "(detection: one line per image)",
                      name, (long long)nlines, (long long)nrecords, (long long)nsamples);
}

int ac_labels_write_record(const ac_labels *l, int64_t first, int64_t n, FILE *f)
{
    if (!l || l->kind == AC_LABEL_NONE)
        return 0;
    if (first < 0 || first + n > l->count)
        return -1;
    if (l->kind == AC_LABEL_CLASS) {
        for (int64_t i = 0; i < n; i++)
            fprintf(f, "%s%d", i ? "," : "", l->cls[first + i]);
        fputc('\n', f);
    } else {
        for (int64_t i = 0; i < n; i++) {
            const ac_box *b;
            int nb = ac_labels_boxes(l, first + i, &b);
            for (int k = 0; k < nb; k++)
                fprintf(f, "%s%d,%.9g,%.9g,%.9g,%.9g", k ? ";" : "", b[k].cls, b[k].x1, b[k].y1, b[k].x2, b[k].y2);
            fputc('\n', f);
        }
    }
    return ferror(f) ? -1 : 0;
}

int ac_labels_parse_yolo(const char *text, size_t len, const char *name, int img_w, int img_h, ac_box **boxes,
                         int *nboxes, ac_err *err)
{
    *boxes = NULL;
    *nboxes = 0;
    span *lines = NULL;
    int64_t nlines = split_lines(text, len, &lines);
    if (nlines < 0)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    ac_box *v = nlines ? malloc(sizeof *v * (size_t)nlines) : NULL;
    if (nlines && !v) {
        free(lines);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int n = 0;
    for (int64_t r = 0; r < nlines; r++) {
        span t = trim(lines[r]);
        if (t.n == 0)
            continue;
        span f[5];
        int nf = 0;
        size_t i = 0;
        while (i < t.n) {
            while (i < t.n && isspace((unsigned char)t.s[i]))
                i++;
            size_t j = i;
            while (j < t.n && !isspace((unsigned char)t.s[j]))
                j++;
            if (j > i) {
                if (nf < 5)
                    f[nf] = (span){t.s + i, j - i};
                nf++;
            }
            i = j;
        }
        char sb[48];
        show(t, sb, sizeof sb);
        float cx, cy, w, h;
        ac_box b;
        const char *why = NULL;
        if (nf != 5)
            why = "a YOLO line has 5 fields: class cx cy w h";
        else if (span_int(f[0], &b.cls))
            why = "class is not a non-negative integer";
        else if (span_float(f[1], &cx) || span_float(f[2], &cy) || span_float(f[3], &w) || span_float(f[4], &h))
            why = "cx, cy, w, h must be finite numbers";
        else if (w < 0 || h < 0 || cx < -0.01f || cx > 1.01f || cy < -0.01f || cy > 1.01f || w > 1.01f ||
                 h > 1.01f)
            why = "cx, cy, w, h are normalised to 0..1 (w, h >= 0)";
        if (why) {
            free(lines);
            free(v);
            return ac_err_set(err, AC_E_INVALID, "%s: line %lld: '%s': %s", name, (long long)r + 1, sb, why);
        }
        b.x1 = (cx - w / 2) * img_w;
        b.y1 = (cy - h / 2) * img_h;
        b.x2 = (cx + w / 2) * img_w;
        b.y2 = (cy + h / 2) * img_h;
        v[n++] = b;
    }
    free(lines);
    *boxes = v;
    *nboxes = n;
    return AC_OK;
}
