#include "ac_imagelist.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_image.h"

void ac_imagelist_destroy(ac_imagelist **p)
{
    if (!p || !*p)
        return;
    for (int64_t i = 0; i < (*p)->count; i++)
        free((*p)->paths[i]);
    free((*p)->paths);
    free((*p)->labels);
    free((*p)->lines);
    free((*p)->source);
    free(*p);
    *p = NULL;
}

void ac_imagelist_where(const ac_imagelist *l, int64_t i, char *buf, size_t n)
{
    if (l->lines[i] > 0)
        snprintf(buf, n, "%s line %lld (%s)", l->source, (long long)l->lines[i], l->paths[i]);
    else
        snprintf(buf, n, "%s", l->paths[i]);
}

static int push(ac_imagelist *l, int64_t *cap, char *path, int32_t label, int64_t line, ac_err *err)
{
    if (l->count == *cap) {
        int64_t nc = *cap ? *cap * 2 : 64;
        char **p = realloc(l->paths, sizeof *p * (size_t)nc);
        if (p)
            l->paths = p;
        int32_t *lab = realloc(l->labels, sizeof *lab * (size_t)nc);
        if (lab)
            l->labels = lab;
        int64_t *ln = realloc(l->lines, sizeof *ln * (size_t)nc);
        if (ln)
            l->lines = ln;
        if (!p || !lab || !ln) {
            free(path);
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        }
        *cap = nc;
    }
    l->paths[l->count] = path;
    l->labels[l->count] = label;
    l->lines[l->count] = line;
    l->count++;
    return AC_OK;
}

static char *join(const char *dir, const char *s, size_t n)
{
    size_t dl = (dir && n && s[0] != '/') ? strlen(dir) : 0;
    char *p = malloc(dl + 1 + n + 1);
    if (!p)
        return NULL;
    if (dl) {
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, s, n);
        p[dl + 1 + n] = 0;
    } else {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* The label: after the last ',' or, without a comma, the last whitespace-
 * separated token when it is an integer. Returns 1 with a label, 0 without,
 * -1 for a comma followed by a non-integer. */
static int split_label(const char *s, size_t n, size_t *path_len, int32_t *label)
{
    const char *comma = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',')
            comma = s + i;
    const char *lab;
    size_t cut;
    if (comma) {
        cut = (size_t)(comma - s);
        lab = comma + 1;
    } else {
        size_t e = n;
        while (e && !isspace((unsigned char)s[e - 1]))
            e--;
        if (e == 0) { /* one token: a path only */
            *path_len = n;
            return 0;
        }
        cut = e;
        lab = s + e;
    }
    char buf[32];
    size_t ln = n - (size_t)(lab - s);
    while (ln && isspace((unsigned char)*lab))
        lab++, ln--;
    int ok = ln > 0 && ln < sizeof buf;
    long v = -1;
    if (ok) {
        memcpy(buf, lab, ln);
        buf[ln] = 0;
        char *end;
        errno = 0;
        v = strtol(buf, &end, 10);
        ok = !errno && !*end && v >= 0 && v <= INT32_MAX;
    }
    if (!ok) {
        if (comma)
            return -1;
        *path_len = n; /* "my file.jpg": the last token is part of the path */
        return 0;
    }
    while (cut && isspace((unsigned char)s[cut - 1]))
        cut--;
    *path_len = cut;
    *label = (int32_t)v;
    return 1;
}

int ac_imagelist_parse(const char *text, size_t len, const char *list_name, const char *base_dir,
                       ac_imagelist **out, ac_err *err)
{
    *out = NULL;
    ac_imagelist *l = calloc(1, sizeof *l);
    if (!l || !(l->source = strdup(list_name))) {
        free(l);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int64_t cap = 0, lineno = 0, first_with = 0, first_without = 0;
    size_t i = 0;
    int rc = AC_OK;
    while (i < len && !rc) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        const char *s = text + i;
        size_t n = j - i;
        i = j + 1;
        lineno++;
        while (n && isspace((unsigned char)*s))
            s++, n--;
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 0 || s[0] == '#')
            continue;
        if (memchr(s, 0, n)) {
            rc = ac_err_set(err, AC_E_INVALID, "%s line %lld: contains a NUL byte (not a text list)", list_name,
                            (long long)lineno);
            break;
        }
        size_t plen = n;
        int32_t label = -1;
        int has = split_label(s, n, &plen, &label);
        if (has < 0) {
            rc = ac_err_set(err, AC_E_INVALID,
                            "%s line %lld: the text after the last ',' is not a label (a non-negative integer)",
                            list_name, (long long)lineno);
            break;
        }
        if (plen == 0) {
            rc = ac_err_set(err, AC_E_INVALID, "%s line %lld: no path before the label", list_name,
                            (long long)lineno);
            break;
        }
        if (has && !first_with)
            first_with = lineno;
        if (!has && !first_without)
            first_without = lineno;
        if (first_with && first_without) {
            rc = ac_err_set(err, AC_E_INVALID,
                            "%s line %lld has %s label but line %lld has %s; label every line or none", list_name,
                            (long long)lineno, has ? "a" : "no", (long long)(has ? first_without : first_with),
                            has ? "none" : "one");
            break;
        }
        char *path = join(base_dir, s, plen);
        if (!path) {
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
            break;
        }
        rc = push(l, &cap, path, label, lineno, err);
    }
    if (!rc && l->count == 0)
        rc = ac_err_set(err, AC_E_INVALID, "%s: the list names no image (only blank or '#' lines)", list_name);
    if (rc) {
        ac_imagelist_destroy(&l);
        return rc;
    }
    l->has_labels = first_with != 0;
    *out = l;
    return AC_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_dir(const char *dir, ac_imagelist **out, ac_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ac_err_set(err, AC_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    ac_imagelist *l = calloc(1, sizeof *l);
    if (!l || !(l->source = strdup(dir))) {
        free(l);
        closedir(d);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int64_t cap = 0, others = 0;
    int rc = AC_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (!ac_image_has_image_ext(e->d_name)) {
            others++;
            continue;
        }
        char *p = join(dir, e->d_name, strlen(e->d_name));
        struct stat st;
        if (!p)
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
        else if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        } else
            rc = push(l, &cap, p, -1, 0, err);
    }
    closedir(d);
    if (!rc && l->count == 0)
        rc = ac_err_set(err, AC_E_INVALID, "%s: the folder holds no .jpg/.jpeg/.png file (%lld other entries)", dir,
                        (long long)others);
    if (rc) {
        ac_imagelist_destroy(&l);
        return rc;
    }
    /* Sort paths together with their (unused) labels and lines: all -1/0. */
    qsort(l->paths, (size_t)l->count, sizeof *l->paths, cmp_str);
    *out = l;
    return AC_OK;
}

int ac_imagelist_load(const char *source, ac_imagelist **out, ac_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(source, &st) != 0)
        return ac_err_set(err, AC_E_IO, "%s: %s", source, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return load_dir(source, out, err);
    uint8_t *buf;
    size_t len;
    int rc = ac_file_read(source, &buf, &len, err);
    if (rc)
        return rc;
    char *base = strdup(source);
    if (!base) {
        free(buf);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(base, ".");
    rc = ac_imagelist_parse((const char *)buf, len, source, base, out, err);
    free(buf);
    free(base);
    if (rc)
        return rc;
    for (int64_t i = 0; i < (*out)->count; i++) {
        int missing = stat((*out)->paths[i], &st) != 0;
        if (missing || !S_ISREG(st.st_mode)) {
            rc = ac_err_set(err, AC_E_IO, "%s line %lld: image '%s' %s", source, (long long)(*out)->lines[i],
                            (*out)->paths[i], missing ? strerror(errno) : "is not a regular file");
            ac_imagelist_destroy(out);
            return rc;
        }
    }
    return AC_OK;
}
