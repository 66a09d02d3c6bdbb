#define _GNU_SOURCE
#include "ac_worker_cache.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ac_blob.h"
#include "ac_onnx.h"
#include "ac_passes.h"
#include "ac_sha256.h"

#define MAX_GRAPHS_PER_MODEL 4
#define MAX_ENTRIES 1024
#define MAX_SHAPE_SPECS AC_ONNX_MAX_SHAPES

typedef enum { ENTRY_MODEL, ENTRY_DATASET, ENTRY_LOCAL } entry_kind;

typedef struct {
    char shapes[256];
    ac_graph *g;
    uint64_t id;
} graph_slot;

typedef struct {
    uint8_t hash[32];
    entry_kind kind;
    uint64_t bytes;      /* on disk (0 for a local dataset) */
    uint64_t last_used;  /* a tick of the cache's clock */
    uint64_t epoch;      /* begin_task epoch of the last use */
    char path[AC_BLOB_PATH_MAX];  /* model file / unpacked folder / data_path */
    graph_slot graphs[MAX_GRAPHS_PER_MODEL];
    int ngraphs;
    ac_dataset *ds;      /* opened and verified */
    char opts_key[640];  /* the options it was opened with */
} entry;

struct ac_worker_cache {
    pthread_mutex_t mu;
    char dir[2048]; /* blob paths add a 67-byte name */
    bool own_dir;
    uint64_t max_bytes, bytes, tick, epoch, next_graph_id;
    entry *e[MAX_ENTRIES];
    int n;
    void (*evict_fn)(void *ctx, uint64_t id);
    void *evict_ctx;
};

/* ---- helpers -------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Bytes of the regular files under path (folders nest a few levels at most). */
static uint64_t tree_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISREG(st.st_mode))
        return (uint64_t)st.st_size;
    if (!S_ISDIR(st.st_mode))
        return 0;
    uint64_t n = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char sub[AC_BLOB_PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) < (int)sizeof sub)
            n += tree_bytes(sub);
    }
    if (d)
        closedir(d);
    return n;
}

static void entry_free(ac_worker_cache *c, entry *e, bool remove_files)
{
    for (int i = 0; i < e->ngraphs; i++) {
        if (c->evict_fn)
            c->evict_fn(c->evict_ctx, e->graphs[i].id);
        ac_graph_destroy(&e->graphs[i].g);
    }
    ac_dataset_destroy(&e->ds);
    if (remove_files && e->kind == ENTRY_MODEL)
        remove(e->path);
    else if (remove_files && e->kind == ENTRY_DATASET)
        remove_tree(e->path);
    free(e);
}

static entry *find(ac_worker_cache *c, const uint8_t hash[32])
{
    for (int i = 0; i < c->n; i++)
        if (!memcmp(c->e[i]->hash, hash, 32))
            return c->e[i];
    return NULL;
}

static void touch(ac_worker_cache *c, entry *e)
{
    e->last_used = ++c->tick;
    e->epoch = c->epoch;
}

static void drop(ac_worker_cache *c, entry *e, bool remove_files)
{
    for (int i = 0; i < c->n; i++)
        if (c->e[i] == e) {
            c->bytes -= e->bytes;
            c->e[i] = c->e[--c->n];
            break;
        }
    entry_free(c, e, remove_files);
}

/* Evicts least recently used entries (not used in this task) until `need`
 * more bytes fit; when they cannot, the bound is exceeded (the task needs them). */
static void make_room(ac_worker_cache *c, uint64_t need)
{
    while (c->max_bytes && c->bytes + need > c->max_bytes) {
        entry *victim = NULL;
        for (int i = 0; i < c->n; i++) {
            entry *e = c->e[i];
            if (e->epoch == c->epoch || e->bytes == 0)
                continue;
            if (!victim || e->last_used < victim->last_used)
                victim = e;
        }
        if (!victim)
            return;
        drop(c, victim, true);
    }
}

static entry *add_entry(ac_worker_cache *c, const uint8_t hash[32], entry_kind kind, const char *path,
                        uint64_t bytes, ac_err *err)
{
    if (c->n == MAX_ENTRIES) {
        make_room(c, UINT64_MAX / 2); /* evict one entry at least, when any is free */
        if (c->n == MAX_ENTRIES) {
            ac_err_set(err, AC_E_NOMEM, "worker cache: %d entries in use", MAX_ENTRIES);
            return NULL;
        }
    }
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(e->hash, hash, 32);
    e->kind = kind;
    e->bytes = bytes;
    snprintf(e->path, sizeof e->path, "%s", path);
    c->e[c->n++] = e;
    c->bytes += bytes;
    touch(c, e);
    return e;
}

static bool parse_hex(const char *s, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return strlen(s) == 64;
}

/* Registers the blobs a previous run left in the folder. */
static void scan_dir(ac_worker_cache *c)
{
    DIR *d = opendir(c->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        uint8_t h[32];
        if ((de->d_name[0] != 'm' && de->d_name[0] != 'd') || de->d_name[1] != '-' || !parse_hex(de->d_name + 2, h))
            continue;
        char path[AC_BLOB_PATH_MAX];
        snprintf(path, sizeof path, "%s/%.255s", c->dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || find(c, h))
            continue;
        if (de->d_name[0] == 'm' && S_ISREG(st.st_mode)) {
            add_entry(c, h, ENTRY_MODEL, path, (uint64_t)st.st_size, NULL);
        } else if (de->d_name[0] == 'd' && S_ISDIR(st.st_mode)) {
            ac_blob_dataset_paths p;
            if (ac_blob_unpacked_paths(path, &p, NULL) == 0)
                add_entry(c, h, ENTRY_DATASET, path, tree_bytes(path), NULL);
            else
                remove_tree(path); /* an interrupted unpack */
        }
    }
    if (d)
        closedir(d);
}

/* ---- lifecycle ------------------------------------------------------------------ */

ac_worker_cache *ac_worker_cache_new(const char *dir, uint64_t max_bytes, ac_err *err)
{
    ac_worker_cache *c = calloc(1, sizeof *c);
    if (!c) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    c->epoch = 1;
    if (dir && strlen(dir) >= sizeof c->dir) {
        ac_err_set(err, AC_E_INVALID, "--cache-dir: longer than %zu bytes", sizeof c->dir - 1);
        ac_worker_cache_destroy(&c);
        return NULL;
    }
    if (dir) {
        snprintf(c->dir, sizeof c->dir, "%s", dir);
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            ac_err_set(err, AC_E_IO, "--cache-dir %s: cannot create: %s", dir, strerror(errno));
            ac_worker_cache_destroy(&c);
            return NULL;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(c->dir, sizeof c->dir, "%s/autocalib-worker-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(c->dir)) {
            ac_err_set(err, AC_E_IO, "%s: cannot create a cache folder: %s", c->dir, strerror(errno));
            c->dir[0] = '\0';
            ac_worker_cache_destroy(&c);
            return NULL;
        }
        c->own_dir = true;
    }
    scan_dir(c);
    c->epoch++;
    return c;
}

void ac_worker_cache_destroy(ac_worker_cache **p)
{
    if (!p || !*p)
        return;
    ac_worker_cache *c = *p;
    for (int i = 0; i < c->n; i++)
        entry_free(c, c->e[i], false);
    if (c->own_dir && c->dir[0])
        remove_tree(c->dir);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *p = NULL;
}

void ac_worker_cache_set_evict_hook(ac_worker_cache *c, void (*fn)(void *ctx, uint64_t graph_id), void *ctx)
{
    pthread_mutex_lock(&c->mu);
    c->evict_fn = fn;
    c->evict_ctx = ctx;
    pthread_mutex_unlock(&c->mu);
}

void ac_worker_cache_begin_task(ac_worker_cache *c)
{
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    pthread_mutex_unlock(&c->mu);
}

bool ac_worker_cache_has(ac_worker_cache *c, const uint8_t hash[32])
{
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, hash);
    bool has = e && e->kind != ENTRY_LOCAL;
    pthread_mutex_unlock(&c->mu);
    return has;
}

size_t ac_worker_cache_hashes(ac_worker_cache *c, uint8_t *out, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->e[i]->kind == ENTRY_LOCAL)
            continue;
        if (out && n < cap)
            memcpy(out + 32 * n, c->e[i]->hash, 32);
        n++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t ac_worker_cache_bytes(ac_worker_cache *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- blobs ---------------------------------------------------------------------- */

static void hex_of(const uint8_t hash[32], char out[65])
{
    ac_sha256_hex(hash, out);
}

int ac_worker_cache_put_model(ac_worker_cache *c, const uint8_t hash[32], const uint8_t *buf, size_t len,
                              ac_err *err)
{
    uint8_t got[32];
    ac_sha256 s;
    ac_sha256_init(&s);
    ac_sha256_update(&s, buf, len);
    ac_sha256_final(&s, got);
    char hex[65], ghex[65];
    hex_of(hash, hex);
    if (memcmp(got, hash, 32)) {
        hex_of(got, ghex);
        return ac_err_set(err, AC_E_INVALID, "model blob %.16s...: %zu bytes hash to %.16s..., not to the task's hash",
                          hex, len, ghex);
    }
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    entry *e = find(c, hash);
    if (e && e->kind == ENTRY_MODEL) {
        touch(c, e);
        goto done;
    }
    make_room(c, len);
    char path[AC_BLOB_PATH_MAX], tmp[AC_BLOB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/m-%s", c->dir, hex);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0 || rename(tmp, path) != 0) {
        rc = ac_err_set(err, AC_E_IO, "%s: cannot write the model blob: %s", path, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (!add_entry(c, hash, ENTRY_MODEL, path, len, err))
        rc = -1;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int ac_worker_cache_put_dataset(ac_worker_cache *c, const uint8_t hash[32], const uint8_t *buf, size_t len,
                                ac_err *err)
{
    char hex[65];
    hex_of(hash, hex);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    entry *e = find(c, hash);
    if (e && e->kind == ENTRY_DATASET) {
        touch(c, e);
        goto done;
    }
    if (e) /* a local dataset under the same hash: the blob replaces it */
        drop(c, e, false);
    make_room(c, len);
    char path[AC_BLOB_PATH_MAX], tmp[AC_BLOB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/d-%s", c->dir, hex);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    remove_tree(tmp);
    ac_blob_dataset_paths p;
    if (ac_blob_unpack_dataset(buf, len, tmp, &p, err)) {
        remove_tree(tmp);
        ac_err_prefix(err, "dataset blob %.16s...: ", hex);
        rc = -1;
        goto done;
    }
    remove_tree(path);
    if (rename(tmp, path) != 0) {
        rc = ac_err_set(err, AC_E_IO, "%s: cannot move the unpacked dataset into place: %s", path, strerror(errno));
        remove_tree(tmp);
        goto done;
    }
    if (!add_entry(c, hash, ENTRY_DATASET, path, tree_bytes(path), err))
        rc = -1;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- objects -------------------------------------------------------------------- */

static ac_graph *load_graph(const char *path, const char *shapes, ac_err *err)
{
    ac_onnx_shape specs[MAX_SHAPE_SPECS];
    int n = 0;
    if (shapes && *shapes && ac_onnx_parse_shapes(shapes, specs, MAX_SHAPE_SPECS, &n, err)) {
        ac_err_prefix(err, "task input_shapes '%s': ", shapes);
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        ac_err_set(err, AC_E_IO, "%s: cannot open the cached model: %s", path, strerror(errno));
        return NULL;
    }
    len = (size_t)st.st_size;
    buf = malloc(len ? len : 1);
    if (!buf || (len && fread(buf, 1, len, f) != len)) {
        fclose(f);
        free(buf);
        ac_err_set(err, AC_E_IO, "%s: cannot read the cached model", path);
        return NULL;
    }
    fclose(f);
    ac_onnx_options o = {.nshapes = n, .shapes = specs};
    ac_graph *g = ac_onnx_load_buffer(buf, len, "model blob", &o, err);
    free(buf);
    if (g && ac_graph_simplify(g, NULL, err))
        ac_graph_destroy(&g);
    return g;
}

int ac_worker_cache_graph(ac_worker_cache *c, const uint8_t hash[32], const char *shapes, const ac_graph **g,
                          uint64_t *id, ac_err *err)
{
    if (!shapes)
        shapes = "";
    if (strlen(shapes) >= sizeof((graph_slot *)0)->shapes)
        return ac_err_set(err, AC_E_INVALID, "task input_shapes: longer than 255 bytes");
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    entry *e = find(c, hash);
    if (!e || e->kind != ENTRY_MODEL) {
        rc = AC_CACHE_MISSING;
        goto done;
    }
    touch(c, e);
    for (int i = 0; i < e->ngraphs; i++)
        if (!strcmp(e->graphs[i].shapes, shapes)) {
            *g = e->graphs[i].g;
            *id = e->graphs[i].id;
            /* most recent first */
            graph_slot s = e->graphs[i];
            memmove(&e->graphs[1], &e->graphs[0], (size_t)i * sizeof s);
            e->graphs[0] = s;
            goto done;
        }
    ac_graph *ng = load_graph(e->path, shapes, err);
    if (!ng) {
        rc = -1;
        goto done;
    }
    if (e->ngraphs == MAX_GRAPHS_PER_MODEL) {
        graph_slot *old = &e->graphs[--e->ngraphs];
        if (c->evict_fn)
            c->evict_fn(c->evict_ctx, old->id);
        ac_graph_destroy(&old->g);
    }
    memmove(&e->graphs[1], &e->graphs[0], (size_t)e->ngraphs * sizeof e->graphs[0]);
    snprintf(e->graphs[0].shapes, sizeof e->graphs[0].shapes, "%s", shapes);
    e->graphs[0].g = ng;
    e->graphs[0].id = ++c->next_graph_id;
    e->ngraphs++;
    *g = ng;
    *id = e->graphs[0].id;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int open_checked(const ac_blob_dataset_paths *p, const ac_dataset_opts *opts, const uint8_t hash[32],
                        ac_dataset **out, const char *what, ac_err *err)
{
    ac_dataset *ds = ac_blob_open_dataset(p, opts, err);
    if (!ds)
        return -1;
    uint8_t got[32];
    if (ac_dataset_hash(ds, got, err)) {
        ac_dataset_destroy(&ds);
        return -1;
    }
    if (memcmp(got, hash, 32)) {
        char want[65], have[65];
        ac_sha256_hex(hash, want);
        ac_sha256_hex(got, have);
        ac_dataset_destroy(&ds);
        return ac_err_set(err, AC_E_INVALID,
                          "%s %s: content hash %.16s... is not the task's data_hash %.16s... (other data, "
                          "preprocessing or input shape)",
                          what, p->source, have, want);
    }
    *out = ds;
    return 0;
}

static bool local_paths(const char *data_path, ac_blob_dataset_paths *p)
{
    memset(p, 0, sizeof *p);
    const char *bar = strchr(data_path, '|');
    if (bar) {
        p->idx = true;
        snprintf(p->source, sizeof p->source, "%.*s", (int)(bar - data_path), data_path);
        snprintf(p->labels, sizeof p->labels, "%s", bar + 1);
        /* "IMAGES|": an idx set without labels */
        return access(p->source, R_OK) == 0 && (!p->labels[0] || access(p->labels, R_OK) == 0);
    }
    snprintf(p->source, sizeof p->source, "%s", data_path);
    return access(p->source, R_OK) == 0;
}

int ac_worker_cache_dataset(ac_worker_cache *c, const uint8_t hash[32], const char *data_path,
                            const ac_dataset_opts *opts, ac_dataset **ds, ac_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    entry *e = find(c, hash);
    char key[640];
    snprintf(key, sizeof key, "%d %d %d %d %.600s", (int)opts->layout, opts->channels, opts->height, opts->width,
             opts->preprocess ? opts->preprocess : "");
    if (e && e->ds && strcmp(e->opts_key, key)) {
        /* Other options than the open one: they must give the same content. */
        ac_blob_dataset_paths p;
        ac_dataset *other = NULL;
        if (e->kind == ENTRY_LOCAL ? !local_paths(e->path, &p) : ac_blob_unpacked_paths(e->path, &p, err) != 0) {
            rc = ac_err_set(err, AC_E_IO, "%s: no longer readable", e->path);
            goto done;
        }
        if (open_checked(&p, opts, hash, &other, "dataset", err)) {
            rc = -1;
            goto done;
        }
        ac_dataset_destroy(&e->ds);
        e->ds = other;
        snprintf(e->opts_key, sizeof e->opts_key, "%s", key);
    }
    if (e && e->ds) {
        touch(c, e);
        *ds = e->ds;
        goto done;
    }
    if (e && e->kind == ENTRY_DATASET) {
        touch(c, e);
        ac_blob_dataset_paths p;
        /* A failure is the task's error, not the blob's: the content hash
         * covers the job's options, so input shapes or preprocessing that do
         * not match data_hash fail here while the files are fine. */
        if (ac_blob_unpacked_paths(e->path, &p, err) ||
            open_checked(&p, opts, hash, &e->ds, "dataset blob", err)) {
            rc = -1;
            goto done;
        }
        snprintf(e->opts_key, sizeof e->opts_key, "%s", key);
        *ds = e->ds;
        goto done;
    }
    ac_blob_dataset_paths p;
    if (data_path && *data_path && local_paths(data_path, &p)) {
        ac_dataset *local = NULL;
        ac_err lerr = {0};
        /* A path that does not hash right is not an error: the blob is fetched instead. */
        if (open_checked(&p, opts, hash, &local, "data_path", &lerr) == 0) {
            entry *ne = add_entry(c, hash, ENTRY_LOCAL, data_path, 0, err);
            if (!ne) {
                ac_dataset_destroy(&local);
                rc = -1;
                goto done;
            }
            ne->ds = local;
            snprintf(ne->opts_key, sizeof ne->opts_key, "%s", key);
            *ds = local;
            goto done;
        }
    }
    rc = AC_CACHE_MISSING;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}
