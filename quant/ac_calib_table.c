#include "ac_calib_table.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ac_calib_table {
    size_t n, cap;
    ac_calib_entry *e;
};

ac_calib_table *ac_calib_table_new(void)
{
    return calloc(1, sizeof(ac_calib_table));
}

void ac_calib_table_destroy(ac_calib_table **p)
{
    if (!p || !*p)
        return;
    ac_calib_table *t = *p;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].name);
    free(t->e);
    free(t);
    *p = NULL;
}

ac_calib_table *ac_calib_table_dup(const ac_calib_table *t)
{
    ac_calib_table *c = ac_calib_table_new();
    if (!c)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (ac_calib_table_set(c, t->e[i].name, t->e[i].th, t->e[i].min, t->e[i].max, NULL)) {
            ac_calib_table_destroy(&c);
            return NULL;
        }
    return c;
}

static ac_calib_entry *find(const ac_calib_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].name, name) == 0)
            return &t->e[i];
    return NULL;
}

const ac_calib_entry *ac_calib_table_find(const ac_calib_table *t, const char *name)
{
    return find(t, name);
}

size_t ac_calib_table_size(const ac_calib_table *t)
{
    return t->n;
}

const ac_calib_entry *ac_calib_table_at(const ac_calib_table *t, size_t i)
{
    return i < t->n ? &t->e[i] : NULL;
}

static int check_values(const char *name, double th, double min, double max, ac_err *err)
{
    if (!isfinite(th) || !isfinite(min) || !isfinite(max))
        return ac_err_set(err, AC_E_INVALID, "tensor '%s': threshold, min and max must be finite",
                          name);
    if (!(th > 0.0))
        return ac_err_set(err, AC_E_INVALID, "tensor '%s': threshold %g must be > 0", name, th);
    if (min > max)
        return ac_err_set(err, AC_E_INVALID, "tensor '%s': min %g is greater than max %g", name,
                          min, max);
    return 0;
}

int ac_calib_table_set(ac_calib_table *t, const char *name, double th, double min, double max,
                       ac_err *err)
{
    int rc = check_values(name, th, min, max, err);
    if (rc)
        return rc;
    ac_calib_entry *e = find(t, name);
    if (!e) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 64;
            ac_calib_entry *ne = realloc(t->e, cap * sizeof *ne);
            if (!ne)
                return ac_err_set(err, AC_E_NOMEM, "out of memory adding tensor '%s'", name);
            t->e = ne;
            t->cap = cap;
        }
        e = &t->e[t->n];
        e->name = strdup(name);
        if (!e->name)
            return ac_err_set(err, AC_E_NOMEM, "out of memory adding tensor '%s'", name);
        t->n++;
    }
    e->th = th;
    e->min = min;
    e->max = max;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------- */

#define MAX_FIELDS 8

/* Splits line (modified in place) into whitespace-separated fields; returns
 * the count (up to MAX_FIELDS + 1 so that "too many" is visible). */
static int split_fields(char *line, char **f)
{
    int n = 0;
    char *s = line;
    while (*s) {
        while (*s && isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        if (n <= MAX_FIELDS)
            f[n] = s;
        n++;
        while (*s && !isspace((unsigned char)*s))
            s++;
        if (*s)
            *s++ = '\0';
    }
    return n > MAX_FIELDS + 1 ? MAX_FIELDS + 1 : n;
}

static bool parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && errno != ERANGE && isfinite(*v);
}

/* tpu-mlir section markers are '#' directly followed by a name ("#int4_th",
 * "#weight_scale"); comments have a space or another '#' after the '#'. */
static bool is_section_marker(const char *line)
{
    return line[0] == '#' && (isalpha((unsigned char)line[1]) || line[1] == '_');
}

typedef int (*line_fn)(void *ctx, const char *source, int lineno, char *line, ac_err *err);

/* fn's "stop here, no error" answer (errors are positive ac_status codes). */
#define LINE_STOP (-1)

/* Calls fn on each line (without its '\r\n'); LINE_STOP ends the walk. */
static int for_each_line(const char *text, size_t len, const char *source, line_fn fn, void *ctx,
                         ac_err *err)
{
    size_t pos = 0;
    int lineno = 0;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        if (n && text[pos + n - 1] == '\r')
            n--;
        lineno++;
        if (n + 1 > cap) {
            cap = n + 1 > 256 ? n + 1 : 256;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = ac_err_set(err, AC_E_NOMEM, "%s line %d: out of memory", source, lineno);
                break;
            }
            buf = nb;
        }
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        if (memchr(buf, '\0', n)) {
            rc = ac_err_set(err, AC_E_INVALID, "%s line %d: contains a NUL byte", source, lineno);
            break;
        }
        rc = fn(ctx, source, lineno, buf, err);
        if (rc) {
            if (rc == LINE_STOP)
                rc = 0;
            break;
        }
        pos = end + 1;
    }
    free(buf);
    return rc;
}

static int calib_line(void *ctx, const char *source, int lineno, char *line, ac_err *err)
{
    ac_calib_table *t = ctx;
    const char *s = line;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s)
        return 0;
    if (*s == '#')
        return is_section_marker(s) ? LINE_STOP : 0;
    char *f[MAX_FIELDS + 1];
    int nf = split_fields(line, f);
    double v[3];
    if (nf != 4 || !parse_double(f[1], &v[0]) || !parse_double(f[2], &v[1]) ||
        !parse_double(f[3], &v[2]))
        return ac_err_set(err, AC_E_INVALID,
                          "%s line %d: expected 'name threshold min max' (a name and three "
                          "finite numbers), got %d field(s)%s",
                          source, lineno, nf, nf == 4 ? " with a bad number" : "");
    if (!(v[0] > 0.0))
        return ac_err_set(err, AC_E_INVALID, "%s line %d: tensor '%s': threshold %s must be > 0",
                          source, lineno, f[0], f[1]);
    if (find(t, f[0]))
        return ac_err_set(err, AC_E_INVALID, "%s line %d: tensor '%s' is listed twice", source,
                          lineno, f[0]);
    int rc = ac_calib_table_set(t, f[0], v[0], v[1], v[2], err);
    if (rc)
        ac_err_prefix(err, "%s line %d: ", source, lineno);
    return rc;
}

int ac_calib_table_parse(const char *text, size_t len, const char *source, ac_calib_table **out,
                         ac_err *err)
{
    *out = NULL;
    ac_calib_table *t = ac_calib_table_new();
    if (!t)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", source);
    int rc = for_each_line(text, len, source, calib_line, t, err);
    if (rc) {
        ac_calib_table_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

static int read_file(const char *path, char **text, size_t *len, ac_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory reading the file", path);
    if (bad) {
        free(buf);
        return ac_err_set(err, AC_E_IO, "%s: read error", path);
    }
    *text = buf;
    *len = n;
    return 0;
}

int ac_calib_table_read(const char *path, ac_calib_table **out, ac_err *err)
{
    char *text;
    size_t len;
    *out = NULL;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    rc = ac_calib_table_parse(text, len, path, out, err);
    free(text);
    return rc;
}

static void write_header(FILE *f, const char *header)
{
    if (!header)
        return;
    const char *s = header;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        fprintf(f, "# %.*s\n", (int)n, s);
        s += n + (e ? 1 : 0);
    }
}

int ac_calib_table_write(const ac_calib_table *t, const char *path, const char *header,
                         ac_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    write_header(f, header);
    fprintf(f, "# op_name threshold min max\n");
    for (size_t i = 0; i < t->n; i++) {
        /* Seven decimals (the tpu-mlir format): a threshold below 0.00000005
         * would print as 0, which no reader takes, so it is written as the
         * smallest value the format holds. */
        double th = t->e[i].th < 1e-7 ? 1e-7 : t->e[i].th;
        fprintf(f, "%s %.7f %.7f %.7f\n", t->e[i].name, th, t->e[i].min, t->e[i].max);
    }
    if (fclose(f) != 0)
        return ac_err_set(err, AC_E_IO, "%s: write error", path);
    return 0;
}

/* ---- quantize table ------------------------------------------------------------------- */

void ac_qtable_free(ac_qtable *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->names[i]);
    free(q->names);
    q->names = NULL;
    q->n = 0;
}

static int qtable_line(void *ctx, const char *source, int lineno, char *line, ac_err *err)
{
    ac_qtable *q = ctx;
    const char *s = line;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s || *s == '#')
        return 0;
    char *f[MAX_FIELDS + 1];
    int nf = split_fields(line, f);
    if (nf != 2)
        return ac_err_set(err, AC_E_INVALID,
                          "%s line %d: expected 'layer_output_name F32', got %d field(s)", source,
                          lineno, nf);
    if (strcmp(f[1], "F32") != 0)
        return ac_err_set(err, AC_E_INVALID,
                          "%s line %d: layer '%s': mode '%s' is not supported on BM1684 (only "
                          "F32)",
                          source, lineno, f[0], f[1]);
    char **nn = realloc(q->names, (q->n + 1) * sizeof *nn);
    if (!nn)
        return ac_err_set(err, AC_E_NOMEM, "%s line %d: out of memory", source, lineno);
    q->names = nn;
    q->names[q->n] = strdup(f[0]);
    if (!q->names[q->n])
        return ac_err_set(err, AC_E_NOMEM, "%s line %d: out of memory", source, lineno);
    q->n++;
    return 0;
}

int ac_qtable_parse(const char *text, size_t len, const char *source, ac_qtable *out,
                    ac_err *err)
{
    out->n = 0;
    out->names = NULL;
    int rc = for_each_line(text, len, source, qtable_line, out, err);
    if (rc)
        ac_qtable_free(out);
    return rc;
}

int ac_qtable_read(const char *path, ac_qtable *out, ac_err *err)
{
    char *text;
    size_t len;
    out->n = 0;
    out->names = NULL;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    rc = ac_qtable_parse(text, len, path, out, err);
    free(text);
    return rc;
}

int ac_qtable_write(const char *path, const char *const *names, size_t n, const char *header,
                    ac_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    write_header(f, header);
    fprintf(f, "# layer_output_name mode\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s F32\n", names[i]);
    if (fclose(f) != 0)
        return ac_err_set(err, AC_E_IO, "%s: write error", path);
    return 0;
}
