#include "ac_blob.h"

#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_imagelist.h"
#include "ac_mpack.h"
#include "ac_sha256.h"

#define BLOB_MAGIC "ac-dataset-blob"
#define BLOB_VERSION 1
#define MANIFEST "ac-blob-manifest"
#define YOLO_DIR ".yolo_labels" /* kind "path": where YOLO label files go */

static int read_file(const char *path, uint8_t **buf, size_t *len, ac_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, f) != n) {
        free(b);
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: read failed", path);
    }
    fclose(f);
    *buf = b;
    *len = n;
    return 0;
}

int ac_blob_pack_model(const char *path, uint8_t **buf, size_t *len, uint8_t hash[32], ac_err *err)
{
    if (read_file(path, buf, len, err))
        return -1;
    ac_sha256 s;
    ac_sha256_init(&s);
    ac_sha256_update(&s, *buf, *len);
    ac_sha256_final(&s, hash);
    return 0;
}

/* ---- relative paths ------------------------------------------------------------- */

static bool rel_path_ok(const char *p, size_t n)
{
    if (n == 0 || n > AC_BLOB_REL_MAX || p[0] == '/' || p[n - 1] == '/')
        return false;
    if (memchr(p, '\0', n) || memchr(p, '\n', n) || memchr(p, '\r', n))
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t c = i - start;
            if (c == 0 || (c == 1 && p[start] == '.') || (c == 2 && p[start] == '.' && p[start + 1] == '.'))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* ---- packing -------------------------------------------------------------------- */

typedef struct {
    char **rel;    /* relative names */
    char **full;   /* paths to read */
    size_t n, cap;
} file_list;

static int list_add(file_list *l, const char *rel, const char *full, ac_err *err)
{
    if (!rel_path_ok(rel, strlen(rel)))
        return ac_err_set(err, AC_E_INVALID,
                          "'%s': cannot be packed: a dataset file must be a relative path inside the dataset's "
                          "folder (no '..', no absolute path)",
                          rel);
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->rel[i], rel))
            return 0; /* listed twice: packed once */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **r = realloc(l->rel, cap * sizeof *r);
        if (r)
            l->rel = r;
        char **f = realloc(l->full, cap * sizeof *f);
        if (f)
            l->full = f;
        if (!r || !f)
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        l->cap = cap;
    }
    l->rel[l->n] = strdup(rel);
    l->full[l->n] = strdup(full);
    if (!l->rel[l->n] || !l->full[l->n]) {
        free(l->rel[l->n]);
        free(l->full[l->n]);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    l->n++;
    return 0;
}

static void list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->rel[i]);
        free(l->full[i]);
    }
    free(l->rel);
    free(l->full);
}

static void list_sort(file_list *l)
{
    for (size_t i = 1; i < l->n; i++)
        for (size_t k = i; k > 0 && strcmp(l->rel[k - 1], l->rel[k]) > 0; k--) {
            char *t = l->rel[k];
            l->rel[k] = l->rel[k - 1];
            l->rel[k - 1] = t;
            t = l->full[k];
            l->full[k] = l->full[k - 1];
            l->full[k - 1] = t;
        }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The folder's regular files (not recursive; dot files and lock.mdb left
 * out), named prefix + their name in the archive. */
static int list_folder(const char *dir, const char *prefix, file_list *l, ac_err *err)
{
    size_t n0 = l->n;
    DIR *d = opendir(dir);
    if (!d)
        return ac_err_set(err, AC_E_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "lock.mdb"))
            continue;
        char full[AC_BLOB_PATH_MAX], rel[AC_BLOB_REL_MAX + 1];
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", dir, de->d_name) >= (int)sizeof full ||
            snprintf(rel, sizeof rel, "%s%s", prefix, de->d_name) >= (int)sizeof rel)
            rc = ac_err_set(err, AC_E_INVALID, "%s/%s: path too long", dir, de->d_name);
        else if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = list_add(l, rel, full, err);
    }
    closedir(d);
    if (!rc && l->n == n0)
        rc = ac_err_set(err, AC_E_INVALID, "%s: no files to pack", dir);
    return rc;
}

static int list_imagelist(const char *list, file_list *l, ac_err *err)
{
    uint8_t *text;
    size_t n;
    if (read_file(list, &text, &n, err))
        return -1;
    ac_imagelist *il = NULL;
    int rc = ac_imagelist_parse((const char *)text, n, list, NULL, &il, err);
    free(text);
    if (rc)
        return -1;
    char dir[AC_BLOB_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", list);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    rc = list_add(l, base_name(list), list, err);
    for (int64_t i = 0; !rc && i < il->count; i++) {
        const char *rel = il->paths[i];
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        char full[AC_BLOB_PATH_MAX];
        if (snprintf(full, sizeof full, "%s/%s", dir, rel) >= (int)sizeof full)
            rc = ac_err_set(err, AC_E_INVALID, "%s: path too long", rel);
        else
            rc = list_add(l, rel, full, err);
    }
    ac_imagelist_destroy(&il);
    return rc;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

int ac_blob_pack_dataset(const char *source, const char *idx_labels, const ac_dataset_opts *opts, uint8_t **buf,
                         size_t *len, uint8_t hash[32], ac_err *err)
{
    file_list l = {0};
    const char *kind, *src_rel, *lab_rel = "";
    struct stat st;
    int rc;
    if (stat(source, &st) != 0)
        return ac_err_set(err, AC_E_IO, "%s: %s", source, strerror(errno));
    if (idx_labels && !*idx_labels) {
        /* idx images without labels (calibration data) */
        kind = "idx";
        src_rel = base_name(source);
        rc = list_add(&l, src_rel, source, err);
    } else if (idx_labels) {
        kind = "idx";
        src_rel = base_name(source);
        lab_rel = base_name(idx_labels);
        if (!strcmp(src_rel, lab_rel))
            return ac_err_set(err, AC_E_INVALID, "%s and %s: the idx files need different names", source,
                              idx_labels);
        rc = list_add(&l, src_rel, source, err) || list_add(&l, lab_rel, idx_labels, err);
    } else if (S_ISDIR(st.st_mode)) {
        kind = "path";
        src_rel = "";
        rc = list_folder(source, "", &l, err);
    } else {
        kind = "path";
        src_rel = base_name(source);
        rc = list_imagelist(source, &l, err);
    }
    if (!rc && !idx_labels && opts && opts->yolo_labels) {
        /* YOLO label files travel in a folder of their own (dot-named, so an
         * image folder's listing never sees it). */
        lab_rel = YOLO_DIR;
        rc = list_folder(opts->yolo_labels, YOLO_DIR "/", &l, err);
    }
    if (rc) {
        list_free(&l);
        return -1;
    }
    list_sort(&l);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc = msgpack_pack_array(&pk, 6) || pack_str(&pk, BLOB_MAGIC) || msgpack_pack_uint64(&pk, BLOB_VERSION) ||
         pack_str(&pk, kind) || pack_str(&pk, src_rel) || pack_str(&pk, lab_rel) || msgpack_pack_array(&pk, l.n);
    if (rc)
        ac_err_set(err, AC_E_NOMEM, "out of memory packing %s", source);
    for (size_t i = 0; !rc && i < l.n; i++) {
        uint8_t *b;
        size_t n;
        if (read_file(l.full[i], &b, &n, err)) {
            rc = -1;
            break;
        }
        rc = msgpack_pack_array(&pk, 2) || pack_str(&pk, l.rel[i]) || msgpack_pack_bin(&pk, n) ||
             msgpack_pack_bin_body(&pk, b, n);
        free(b);
        if (rc)
            ac_err_set(err, AC_E_NOMEM, "out of memory packing %s", l.full[i]);
    }
    list_free(&l);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    if (opts) {
        ac_dataset *ds = idx_labels ? ac_dataset_open_idx(source, *idx_labels ? idx_labels : NULL, opts, err)
                                    : ac_dataset_open(source, opts, err);
        if (!ds || ac_dataset_hash(ds, hash, err)) {
            ac_dataset_destroy(&ds);
            msgpack_sbuffer_destroy(&sb);
            return -1;
        }
        ac_dataset_destroy(&ds);
    } else {
        ac_sha256 s;
        ac_sha256_init(&s);
        ac_sha256_update(&s, sb.data, sb.size);
        ac_sha256_final(&s, hash);
    }
    *buf = (uint8_t *)sb.data;
    *len = sb.size;
    return 0;
}

/* ---- unpacking ------------------------------------------------------------------ */

static int write_file(const char *path, const uint8_t *b, size_t n, ac_err *err)
{
    FILE *f = fopen(path, "wbx"); /* exclusive: a name given twice is an error */
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t w = n ? fwrite(b, 1, n, f) : 0;
    if (fclose(f) != 0 || w != n)
        return ac_err_set(err, AC_E_IO, "%s: write failed", path);
    return 0;
}

/* Creates the folders of rel under dir. */
static int make_parents(const char *dir, const char *rel, ac_err *err)
{
    char path[AC_BLOB_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (n < 0 || n >= (int)sizeof path)
        return ac_err_set(err, AC_E_INVALID, "%s/%s: path too long", dir, rel);
    size_t base = strlen(dir) + 1;
    for (size_t i = base; path[i]; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            path[i] = '/';
            return ac_err_set(err, AC_E_IO, "%s: cannot create a folder: %s", path, strerror(e));
        }
        path[i] = '/';
    }
    return 0;
}

static int resolve(const char *dir, bool idx, const char *src, size_t sn, const char *lab, size_t ln,
                   ac_blob_dataset_paths *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    out->idx = idx;
    int a = sn ? snprintf(out->source, sizeof out->source, "%s/%.*s", dir, (int)sn, src)
               : snprintf(out->source, sizeof out->source, "%s", dir);
    int b = ln ? snprintf(out->labels, sizeof out->labels, "%s/%.*s", dir, (int)ln, lab) : 0;
    if (a < 0 || a >= (int)sizeof out->source || b < 0 || b >= (int)sizeof out->labels)
        return ac_err_set(err, AC_E_INVALID, "%s: path too long", dir);
    return 0;
}

int ac_blob_unpack_dataset(const uint8_t *buf, size_t len, const char *dir, ac_blob_dataset_paths *out,
                           ac_err *err)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint32_t n, nfiles;
    uint64_t version;
    const char *kind, *src, *lab;
    size_t kn, sn, ln;
    if (!ac_mpack_read_array(&r, &n) || n != 6 || !ac_mpack_read_str_eq(&r, BLOB_MAGIC))
        return ac_err_set(err, AC_E_INVALID, "dataset blob: not an archive (want [\"%s\", ...] of 6 fields)",
                          BLOB_MAGIC);
    if (!ac_mpack_read_uint(&r, &version) || version != BLOB_VERSION)
        return ac_err_set(err, AC_E_UNSUPPORTED, "dataset blob: field 'version' must be %d", BLOB_VERSION);
    if (!ac_mpack_read_str(&r, &kind, &kn) || !((kn == 3 && !memcmp(kind, "idx", 3)) ||
                                                (kn == 4 && !memcmp(kind, "path", 4))))
        return ac_err_set(err, AC_E_INVALID, "dataset blob: field 'kind' must be \"idx\" or \"path\"");
    bool idx = kn == 3;
    if (!ac_mpack_read_str(&r, &src, &sn) || (sn && !rel_path_ok(src, sn)) || (idx && !sn))
        return ac_err_set(err, AC_E_INVALID, "dataset blob: field 'source' must be a relative path%s",
                          idx ? "" : " or \"\"");
    if (!ac_mpack_read_str(&r, &lab, &ln) || (ln && !rel_path_ok(lab, ln)))
        return ac_err_set(err, AC_E_INVALID, "dataset blob: field 'labels' must be a relative path or \"\" (no labels)");
    if (!ac_mpack_read_array(&r, &nfiles) || nfiles == 0)
        return ac_err_set(err, AC_E_INVALID, "dataset blob: field 'files' must be a non-empty array");
    /* Check the whole archive before writing anything. */
    ac_mpack_reader files = r;
    char prev[AC_BLOB_REL_MAX + 1] = "";
    for (uint32_t i = 0; i < nfiles; i++) {
        uint32_t two;
        const char *name;
        size_t nn;
        const uint8_t *b;
        size_t bn;
        if (!ac_mpack_read_array(&r, &two) || two != 2 || !ac_mpack_read_str(&r, &name, &nn) ||
            !ac_mpack_read_bin(&r, &b, &bn))
            return ac_err_set(err, AC_E_INVALID, "dataset blob: file %u is not [path, bin] (truncated?)", i);
        if (!rel_path_ok(name, nn))
            return ac_err_set(err, AC_E_INVALID, "dataset blob: file %u: '%.*s' is not a safe relative path", i,
                              (int)(nn > 200 ? 200 : nn), name);
        char cur[AC_BLOB_REL_MAX + 1];
        memcpy(cur, name, nn);
        cur[nn] = '\0';
        if (i && strcmp(prev, cur) >= 0)
            return ac_err_set(err, AC_E_INVALID, "dataset blob: file %u: '%s' is out of order or repeated", i, cur);
        memcpy(prev, cur, nn + 1);
    }
    if (r.left)
        return ac_err_set(err, AC_E_INVALID, "dataset blob: %zu trailing bytes", r.left);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", dir, strerror(errno));
    for (uint32_t i = 0; i < nfiles; i++) {
        uint32_t two;
        const char *name;
        size_t nn;
        const uint8_t *b;
        size_t bn;
        ac_mpack_read_array(&files, &two);
        ac_mpack_read_str(&files, &name, &nn);
        ac_mpack_read_bin(&files, &b, &bn);
        char rel[AC_BLOB_REL_MAX + 1], path[AC_BLOB_PATH_MAX];
        memcpy(rel, name, nn);
        rel[nn] = '\0';
        if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
            return ac_err_set(err, AC_E_INVALID, "%s/%s: path too long", dir, rel);
        if (make_parents(dir, rel, err) || write_file(path, b, bn, err))
            return -1;
    }
    char mpath[AC_BLOB_PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/" MANIFEST, dir);
    FILE *f = fopen(mpath, "w");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", mpath, strerror(errno));
    fprintf(f, "%s\n%.*s\n%.*s\n", idx ? "idx" : "path", (int)sn, src, (int)ln, lab);
    if (fclose(f) != 0)
        return ac_err_set(err, AC_E_IO, "%s: write failed", mpath);
    return resolve(dir, idx, src, sn, lab, ln, out, err);
}

int ac_blob_unpacked_paths(const char *dir, ac_blob_dataset_paths *out, ac_err *err)
{
    char mpath[AC_BLOB_PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/" MANIFEST, dir);
    uint8_t *text;
    size_t n;
    if (read_file(mpath, &text, &n, err))
        return -1;
    /* Three lines: kind, source, labels. */
    char *lines[3] = {0};
    size_t lens[3] = {0};
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i < n && k < 3; i++)
        if (text[i] == '\n') {
            lines[k] = (char *)text + start;
            lens[k++] = i - start;
            start = i + 1;
        }
    int rc;
    bool idx = k == 3 && lens[0] == 3 && !memcmp(lines[0], "idx", 3);
    bool path = k == 3 && lens[0] == 4 && !memcmp(lines[0], "path", 4);
    if (k != 3 || start != n || !(idx || path) || (lens[1] && !rel_path_ok(lines[1], lens[1])) ||
        (lens[2] && !rel_path_ok(lines[2], lens[2])))
        rc = ac_err_set(err, AC_E_INVALID, "%s: not a blob manifest (kind, source, labels lines)", mpath);
    else
        rc = resolve(dir, idx, lines[1], lens[1], lines[2], lens[2], out, err);
    free(text);
    return rc;
}

ac_dataset *ac_blob_open_dataset(const ac_blob_dataset_paths *p, const ac_dataset_opts *opts, ac_err *err)
{
    if (p->idx)
        return ac_dataset_open_idx(p->source, p->labels[0] ? p->labels : NULL, opts, err);
    ac_dataset_opts o = *opts;
    if (p->labels[0])
        o.yolo_labels = p->labels; /* the archive's YOLO label folder */
    return ac_dataset_open(p->source, &o, err);
}
