#define _XOPEN_SOURCE 700
#include "ac_lmdb.h"

#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caffe_datum.pb-c.h"

/* ---------------------------------------------------------------- reader */

typedef struct {
    const uint8_t *k, *v;
    size_t kn, vn;
} kv;

struct ac_lmdb {
    MDB_env *env;
    MDB_txn *txn;
    int64_t n;
    kv *items;
    char *dir;
};

void ac_lmdb_close(ac_lmdb **p)
{
    if (!p || !*p)
        return;
    ac_lmdb *db = *p;
    if (db->txn)
        mdb_txn_abort(db->txn);
    if (db->env)
        mdb_env_close(db->env);
    free(db->items);
    free(db->dir);
    free(db);
    *p = NULL;
}

int64_t ac_lmdb_count(const ac_lmdb *db) { return db->n; }

void ac_lmdb_get(const ac_lmdb *db, int64_t i, const uint8_t **key, size_t *klen, const uint8_t **val,
                 size_t *vlen)
{
    const kv *e = &db->items[i];
    if (key)
        *key = e->k, *klen = e->kn;
    if (val)
        *val = e->v, *vlen = e->vn;
}

void ac_lmdb_where(const ac_lmdb *db, int64_t i, char *buf, size_t n)
{
    const kv *e = &db->items[i];
    char key[48];
    size_t kl = e->kn < 40 ? e->kn : 40, j;
    for (j = 0; j < kl; j++)
        key[j] = (e->k[j] >= 32 && e->k[j] < 127) ? (char)e->k[j] : '?';
    key[j] = 0;
    snprintf(buf, n, "%s record %lld (key %s%s)", db->dir, (long long)i, key, e->kn > 40 ? "..." : "");
}

int ac_lmdb_open(const char *dir, ac_lmdb **out, ac_err *err)
{
    *out = NULL;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) != 0)
        return ac_err_set(err, AC_E_IO, "%s: no LMDB here (%s: %s)", dir, path, strerror(errno));
    ac_lmdb *db = calloc(1, sizeof *db);
    if (!db || !(db->dir = strdup(dir))) {
        free(db);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int rc;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    /* NOLOCK: reading a database nobody writes, maybe from a read-only folder. */
    if ((rc = mdb_env_create(&db->env)) || (rc = mdb_env_open(db->env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0644)) ||
        (rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &db->txn)) || (rc = mdb_dbi_open(db->txn, NULL, 0, &dbi)) ||
        (rc = mdb_cursor_open(db->txn, dbi, &cur))) {
        ac_lmdb_close(&db);
        return ac_err_set(err, AC_E_IO, "%s: cannot open the LMDB: %s", dir, mdb_strerror(rc));
    }
    MDB_stat ms;
    mdb_stat(db->txn, dbi, &ms);
    db->items = malloc(sizeof *db->items * (ms.ms_entries ? ms.ms_entries : 1));
    if (!db->items) {
        mdb_cursor_close(cur);
        ac_lmdb_close(&db);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu entries", dir, ms.ms_entries);
    }
    MDB_val k, v;
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0 && db->n < (int64_t)ms.ms_entries) {
        db->items[db->n++] = (kv){k.mv_data, v.mv_data, k.mv_size, v.mv_size};
        op = MDB_NEXT;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ac_lmdb_close(&db);
        return ac_err_set(err, AC_E_IO, "%s: reading the LMDB failed: %s", dir, mdb_strerror(rc));
    }
    *out = db;
    return AC_OK;
}

/* ---------------------------------------------------------------- writer */

struct ac_lmdb_writer {
    MDB_env *env;
    MDB_dbi dbi;
    char *dir, *tmp;
    FILE *labels;
    int overwrite, labelled; /* labelled: -1 unknown, 0 no, 1 yes */
    int64_t n;
    size_t mapsize;
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

void ac_lmdb_writer_destroy(ac_lmdb_writer **p)
{
    if (!p || !*p)
        return;
    ac_lmdb_writer *w = *p;
    if (w->labels)
        fclose(w->labels);
    if (w->env)
        mdb_env_close(w->env);
    if (w->tmp)
        rm_tree(w->tmp);
    free(w->dir);
    free(w->tmp);
    free(w);
    *p = NULL;
}

int ac_lmdb_writer_new(const char *dir, int overwrite, ac_lmdb_writer **out, ac_err *err)
{
    *out = NULL;
    struct stat st;
    if (!overwrite && stat(dir, &st) == 0)
        return ac_err_set(err, AC_E_INVALID, "%s already exists (choose another output or allow overwriting)", dir);
    ac_lmdb_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(dir) + 32;
    if (!w || !(w->dir = strdup(dir)) || !(w->tmp = malloc(n))) {
        if (w)
            free(w->dir);
        free(w);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    snprintf(w->tmp, n, "%s.tmp-XXXXXX", dir);
    if (!mkdtemp(w->tmp)) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        ac_lmdb_writer_destroy(&w);
        return ac_err_set(err, AC_E_IO, "%s: cannot create a temporary folder beside it: %s", dir, strerror(e));
    }
    w->overwrite = overwrite;
    w->labelled = -1;
    w->mapsize = (size_t)1 << 28;
    int rc;
    MDB_txn *txn = NULL;
    /* NOSYNC: one fsync at commit instead of one per record. */
    if ((rc = mdb_env_create(&w->env)) || (rc = mdb_env_set_mapsize(w->env, w->mapsize)) ||
        (rc = mdb_env_open(w->env, w->tmp, MDB_NOSYNC | MDB_NOMETASYNC, 0664)) ||
        (rc = mdb_txn_begin(w->env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &w->dbi)) ||
        (rc = mdb_txn_commit(txn))) {
        ac_lmdb_writer_destroy(&w);
        return ac_err_set(err, AC_E_IO, "%s: cannot create the LMDB: %s", dir, mdb_strerror(rc));
    }
    *out = w;
    return AC_OK;
}

int64_t ac_lmdb_writer_count(const ac_lmdb_writer *w) { return w->n; }

static int put_value(ac_lmdb_writer *w, const void *val, size_t len, ac_err *err)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(w->env, &info);
    mdb_env_stat(w->env, &st);
    size_t used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    size_t need = used + 2 * len + ((size_t)4 << 20);
    if (need > w->mapsize) {
        size_t ns = w->mapsize * 2;
        while (ns < need * 2)
            ns *= 2;
        int rc = mdb_env_set_mapsize(w->env, ns);
        if (rc)
            return ac_err_set(err, AC_E_IO, "%s: cannot grow the LMDB map to %zu bytes: %s", w->dir, ns,
                              mdb_strerror(rc));
        w->mapsize = ns;
    }
    char key[32];
    int kl = snprintf(key, sizeof key, "%010lld", (long long)w->n);
    MDB_val k = {(size_t)kl, key}, v = {len, (void *)val};
    MDB_txn *txn;
    int rc = mdb_txn_begin(w->env, NULL, 0, &txn);
    if (!rc) {
        rc = mdb_put(txn, w->dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    if (rc)
        return ac_err_set(err, AC_E_IO, "%s: writing record %lld failed: %s", w->dir, (long long)w->n,
                          mdb_strerror(rc));
    w->n++;
    return AC_OK;
}

int ac_lmdb_writer_put_raw(ac_lmdb_writer *w, const void *val, size_t len, ac_err *err)
{
    return put_value(w, val, len, err);
}

int ac_lmdb_writer_put(ac_lmdb_writer *w, const ac_rec_tensor *t, int n, const ac_labels *labels,
                       int64_t label_first, ac_err *err)
{
    int has = labels && ac_labels_kind(labels) != AC_LABEL_NONE;
    if (w->labelled >= 0 && w->labelled != has)
        return ac_err_set(err, AC_E_INVALID, "%s: record %lld %s labels but earlier records %s", w->dir,
                          (long long)w->n, has ? "has" : "has no", has ? "have none" : "have them");
    for (int i = 1; i < n; i++)
        if (t[i].dims[0] != t[0].dims[0])
            return ac_err_set(err, AC_E_INVALID, "%s: record %lld: tensor %d has batch %lld, tensor 0 has %lld", w->dir,
                              (long long)w->n, i, (long long)t[i].dims[0], (long long)t[0].dims[0]);
    if (has && label_first + t[0].dims[0] > ac_labels_count(labels))
        return ac_err_set(err, AC_E_INVALID, "%s: record %lld needs labels %lld..%lld, only %lld exist", w->dir,
                          (long long)w->n, (long long)label_first, (long long)(label_first + t[0].dims[0] - 1),
                          (long long)ac_labels_count(labels));
    uint8_t *buf;
    size_t len;
    int rc = ac_record_encode(t, n, &buf, &len, err);
    if (rc)
        return rc;
    rc = put_value(w, buf, len, err);
    free(buf);
    if (rc)
        return rc;
    w->labelled = has;
    if (has) {
        if (!w->labels) {
            char p[4096];
            snprintf(p, sizeof p, "%s/data.label", w->tmp);
            if (!(w->labels = fopen(p, "w")))
                return ac_err_set(err, AC_E_IO, "%s: %s", p, strerror(errno));
        }
        if (ac_labels_write_record(labels, label_first, t[0].dims[0], w->labels))
            return ac_err_set(err, AC_E_IO, "%s/data.label: write failed", w->tmp);
    }
    return AC_OK;
}

int ac_lmdb_writer_commit(ac_lmdb_writer *w, ac_err *err)
{
    if (w->n == 0)
        return ac_err_set(err, AC_E_INVALID, "%s: no record to write (the LMDB would be empty)", w->dir);
    int rc = mdb_env_sync(w->env, 1);
    if (rc)
        return ac_err_set(err, AC_E_IO, "%s: sync failed: %s", w->dir, mdb_strerror(rc));
    mdb_env_close(w->env);
    w->env = NULL;
    if (w->labels) {
        int bad = fflush(w->labels) != 0 || fsync(fileno(w->labels)) != 0;
        bad |= fclose(w->labels) != 0;
        w->labels = NULL;
        if (bad)
            return ac_err_set(err, AC_E_IO, "%s/data.label: write failed", w->tmp);
    }
    struct stat st;
    char *old = NULL;
    if (stat(w->dir, &st) == 0) {
        if (!w->overwrite)
            return ac_err_set(err, AC_E_INVALID, "%s appeared while writing; not replacing it", w->dir);
        size_t n = strlen(w->dir) + 32;
        old = malloc(n);
        if (!old)
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        snprintf(old, n, "%s.old-%d", w->dir, (int)getpid());
        if (rename(w->dir, old) != 0) {
            free(old);
            return ac_err_set(err, AC_E_IO, "%s: cannot move the old one aside: %s", w->dir, strerror(errno));
        }
    }
    if (rename(w->tmp, w->dir) != 0) {
        int e = errno;
        if (old)
            rename(old, w->dir);
        free(old);
        return ac_err_set(err, AC_E_IO, "%s: cannot move %s into place: %s", w->dir, w->tmp, strerror(e));
    }
    free(w->tmp);
    w->tmp = NULL;
    if (old)
        rm_tree(old);
    free(old);
    return AC_OK;
}

/* ---------------------------------------------------------------- Caffe Datum */

int ac_datum_decode(const uint8_t *val, size_t len, const char *name, ac_image_decoder *dec, int channels,
                    ac_image *img, int32_t *label, ac_err *err)
{
    memset(img, 0, sizeof *img);
    Caffe__Datum *d = caffe__datum__unpack(NULL, len, val);
    if (!d)
        return ac_err_set(err, AC_E_INVALID, "%s: not a Caffe Datum (protobuf decode failed, %zu bytes)", name, len);
    int rc = AC_OK;
    *label = d->has_label ? d->label : -1;
    if (d->has_encoded && d->encoded) {
        if (!d->has_data)
            rc = ac_err_set(err, AC_E_INVALID, "%s: encoded Datum without data", name);
        else
            rc = ac_image_decode(dec, d->data.data, d->data.len, channels, name, img, err);
        caffe__datum__free_unpacked(d, NULL);
        return rc;
    }
    int c = d->channels, h = d->height, w = d->width;
    if (c != 1 && c != 3)
        rc = ac_err_set(err, AC_E_UNSUPPORTED, "%s: Datum channels=%d; 1 or 3 are supported", name, c);
    else if (h <= 0 || w <= 0 || h > AC_IMAGE_MAX_SIDE || w > AC_IMAGE_MAX_SIDE ||
             (uint64_t)h * w > AC_IMAGE_MAX_PIXELS)
        rc = ac_err_set(err, AC_E_INVALID, "%s: Datum size %dx%d (WxH) is outside 1..%d", name, w, h,
                        AC_IMAGE_MAX_SIDE);
    size_t npix = rc ? 0 : (size_t)h * w, need = npix * c;
    if (!rc && d->n_float_data) {
        if (d->n_float_data != need)
            rc = ac_err_set(err, AC_E_INVALID, "%s: Datum has %zu float_data values; channels x height x width = %zu",
                            name, d->n_float_data, need);
        else if (!(img->f32 = malloc(sizeof(float) * need)))
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
        else
            for (int k = 0; k < c; k++) /* CHW -> HWC */
                for (size_t i = 0; i < npix; i++)
                    img->f32[i * c + k] = d->float_data[(size_t)k * npix + i];
    } else if (!rc) {
        if (!d->has_data || d->data.len != need)
            rc = ac_err_set(err, AC_E_INVALID, "%s: Datum data has %zu bytes; channels x height x width = %zu", name,
                            d->has_data ? d->data.len : 0, need);
        else if (!(img->u8 = malloc(need)))
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
        else
            for (int k = 0; k < c; k++)
                for (size_t i = 0; i < npix; i++)
                    img->u8[i * c + k] = d->data.data[(size_t)k * npix + i];
    }
    caffe__datum__free_unpacked(d, NULL);
    if (rc) {
        ac_image_free(img);
        return rc;
    }
    img->h = h, img->w = w, img->c = c;
    return AC_OK;
}

int ac_datum_encode(int channels, int height, int width, const uint8_t *data, size_t len, int encoded,
                    int32_t label, uint8_t **out, size_t *out_len, ac_err *err)
{
    Caffe__Datum d = CAFFE__DATUM__INIT;
    d.has_channels = d.has_height = d.has_width = 1;
    d.channels = channels, d.height = height, d.width = width;
    d.has_data = 1;
    d.data.data = (uint8_t *)data;
    d.data.len = len;
    d.has_label = 1;
    d.label = label;
    d.has_encoded = 1;
    d.encoded = encoded;
    *out_len = caffe__datum__get_packed_size(&d);
    *out = malloc(*out_len ? *out_len : 1);
    if (!*out)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    caffe__datum__pack(&d, *out);
    return AC_OK;
}
