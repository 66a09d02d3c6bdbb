#define _GNU_SOURCE /* open_memstream */
#include "ac_dataset.h"

#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ac_idx.h"
#include "ac_image.h"
#include "ac_imagelist.h"
#include "ac_lmdb.h"
#include "ac_sha256.h"

struct ac_dataset {
    ac_dataset_source src;
    char *source, *preprocess, *yolo;
    ac_dataset_opts opts; /* strings point at the copies above */
    ac_preproc *pp;
    int64_t count;
    int ninputs;
    int rank[AC_REC_MAX_TENSORS];
    int64_t shape[AC_REC_MAX_TENSORS][AC_REC_MAX_DIMS];
    ac_rec_dtype dtype[AC_REC_MAX_TENSORS];
    ac_labels *labels;
    ac_imagelist *list;     /* images */
    ac_lmdb *db;            /* LMDB sources */
    int64_t nrecords;
    int64_t *rec_first;     /* LMDB tensors: first sample of each record, nrecords + 1 */
    ac_idx idx_images;      /* idx */
    char *idx_labels_path;
    int hashed;
    uint8_t hash[32];
};

static const char *const source_names[] = {"image folder", "image list", "lmdb (autocalib tensors)", "lmdb (caffe datum)",
                                     "idx"};

ac_dataset_source ac_dataset_source_kind(const ac_dataset *ds) { return ds->src; }
const char *ac_dataset_source_name(const ac_dataset *ds) { return source_names[ds->src]; }
int64_t ac_dataset_count(const ac_dataset *ds) { return ds->count; }
int ac_dataset_ninputs(const ac_dataset *ds) { return ds->ninputs; }
int64_t ac_dataset_nrecords(const ac_dataset *ds) { return ds->nrecords; }
ac_label_kind ac_dataset_label_kind(const ac_dataset *ds) { return ac_labels_kind(ds->labels); }
const ac_labels *ac_dataset_labels(const ac_dataset *ds) { return ds->labels; }

int ac_dataset_sample_shape(const ac_dataset *ds, int input, int64_t *dims)
{
    if (input < 0 || input >= ds->ninputs)
        return 0;
    memcpy(dims, ds->shape[input], sizeof(int64_t) * (size_t)ds->rank[input]);
    return ds->rank[input];
}

size_t ac_dataset_sample_elems(const ac_dataset *ds, int input)
{
    if (input < 0 || input >= ds->ninputs)
        return 0;
    size_t n = 1;
    for (int d = 0; d < ds->rank[input]; d++)
        n *= (size_t)ds->shape[input][d];
    return n;
}

const char *ac_dataset_dtype(const ac_dataset *ds, int input)
{
    return input >= 0 && input < ds->ninputs ? ac_rec_dtype_name(ds->dtype[input]) : "?";
}

void ac_dataset_destroy(ac_dataset **p)
{
    if (!p || !*p)
        return;
    ac_dataset *ds = *p;
    ac_preproc_destroy(&ds->pp);
    ac_labels_destroy(&ds->labels);
    ac_imagelist_destroy(&ds->list);
    ac_lmdb_close(&ds->db);
    ac_idx_free(&ds->idx_images);
    free(ds->rec_first);
    free(ds->source);
    free(ds->preprocess);
    free(ds->yolo);
    free(ds->idx_labels_path);
    free(ds);
    *p = NULL;
}

void ac_dataset_where(const ac_dataset *ds, int64_t index, char *buf, size_t n)
{
    if (index < 0 || index >= ds->count) {
        snprintf(buf, n, "%s sample %lld", ds->source, (long long)index);
        return;
    }
    switch (ds->src) {
    case AC_DS_IMAGE_FOLDER:
    case AC_DS_IMAGE_LIST: ac_imagelist_where(ds->list, index, buf, n); break;
    case AC_DS_LMDB_CAFFE: ac_lmdb_where(ds->db, index, buf, n); break;
    case AC_DS_LMDB_TENSORS: {
        int64_t lo = 0, hi = ds->nrecords - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi + 1) / 2;
            if (ds->rec_first[mid] <= index)
                lo = mid;
            else
                hi = mid - 1;
        }
        char w[512];
        ac_lmdb_where(ds->db, lo, w, sizeof w);
        snprintf(buf, n, "%s sample %lld", w, (long long)(index - ds->rec_first[lo]));
        break;
    }
    case AC_DS_IDX: snprintf(buf, n, "%s image %lld", ds->source, (long long)index); break;
    }
}

/* ---------------------------------------------------------------- image-like samples */

/* Sample i of an image-like source as a decoded image. */
static int get_image(ac_dataset *ds, int64_t i, ac_image_decoder *dec, ac_image *img, int32_t *label, ac_err *err)
{
    char where[1024];
    memset(img, 0, sizeof *img);
    switch (ds->src) {
    case AC_DS_IMAGE_FOLDER:
    case AC_DS_IMAGE_LIST: {
        uint8_t *buf;
        size_t len;
        ac_imagelist_where(ds->list, i, where, sizeof where);
        int rc = ac_file_read(ds->list->paths[i], &buf, &len, err);
        if (rc)
            return ac_err_prefix(err, "%s: ", where);
        rc = ac_image_decode(dec, buf, len, ds->opts.channels, where, img, err);
        free(buf);
        return rc;
    }
    case AC_DS_LMDB_CAFFE: {
        const uint8_t *v;
        size_t vn;
        int32_t lab;
        ac_lmdb_get(ds->db, i, NULL, NULL, &v, &vn);
        ac_lmdb_where(ds->db, i, where, sizeof where);
        return ac_datum_decode(v, vn, where, dec, ds->opts.channels ? ds->opts.channels : 3, img, label ? label : &lab,
                               err);
    }
    case AC_DS_IDX: {
        int h = (int)ds->idx_images.dims[1], w = (int)ds->idx_images.dims[2];
        size_t n = (size_t)h * w;
        int rc = ac_idx_need(&ds->idx_images, (size_t)(i + 1) * n, err);
        if (rc)
            return rc;
        img->u8 = malloc(n);
        if (!img->u8)
            return ac_err_set(err, AC_E_NOMEM, "out of memory");
        memcpy(img->u8, ds->idx_images.data + (size_t)i * n, n);
        img->h = h, img->w = w, img->c = 1;
        return AC_OK;
    }
    default: return ac_err_set(err, AC_E_INTERNAL, "not an image source");
    }
}

static int read_image_sample(ac_dataset *ds, int64_t i, ac_image_decoder *dec, ac_preproc_work *work, float *out,
                             ac_err *err)
{
    ac_image img;
    int rc = get_image(ds, i, dec, &img, NULL, err);
    if (rc)
        return rc;
    char where[1024];
    ac_dataset_where(ds, i, where, sizeof where);
    int c = (int)(ds->opts.layout == AC_LAYOUT_NCHW ? ds->shape[0][0] : ds->shape[0][2]);
    int h = (int)(ds->opts.layout == AC_LAYOUT_NCHW ? ds->shape[0][1] : ds->shape[0][0]);
    int w = (int)(ds->opts.layout == AC_LAYOUT_NCHW ? ds->shape[0][2] : ds->shape[0][1]);
    rc = ac_preproc_run_work(ds->pp, work, &img, c, ds->opts.layout, h, w, out, where, err);
    ac_image_free(&img);
    return rc;
}

/* Decides the sample shape from the first sample (or the options). */
static int setup_image_shape(ac_dataset *ds, ac_err *err)
{
    ac_image_decoder *dec = ac_image_decoder_new();
    if (!dec)
        return ac_err_set(err, AC_E_NOMEM, "cannot create a JPEG decoder");
    ac_image img;
    int rc = get_image(ds, 0, dec, &img, NULL, err);
    ac_image_decoder_destroy(&dec);
    if (rc)
        return rc;
    if (!ds->opts.channels)
        ds->opts.channels = img.c;
    int c = ds->opts.channels, h, w;
    char where[1024];
    ac_dataset_where(ds, 0, where, sizeof where);
    rc = ac_preproc_out_size(ds->pp, img.h, img.w, c, &h, &w, where, err);
    ac_image_free(&img);
    if (rc)
        return rc;
    if ((ds->opts.height && ds->opts.height != h) || (ds->opts.width && ds->opts.width != w))
        return ac_err_set(err, AC_E_INVALID,
                          "%s: preprocessing '%s' gives %dx%d (WxH) samples, the model input is %dx%d; change the "
                          "resize/crop sizes",
                          where, ac_preproc_canonical(ds->pp), w, h, ds->opts.width, ds->opts.height);
    ds->ninputs = 1;
    ds->rank[0] = 3;
    ds->dtype[0] = AC_REC_F32;
    int64_t *s = ds->shape[0];
    if (ds->opts.layout == AC_LAYOUT_NCHW)
        s[0] = c, s[1] = h, s[2] = w;
    else
        s[0] = h, s[1] = w, s[2] = c;
    return AC_OK;
}

static int common_setup(ac_dataset *ds, const char *source, const ac_dataset_opts *o, ac_err *err)
{
    ac_dataset_opts def = {0};
    if (!o)
        o = &def;
    ds->opts = *o;
    ds->source = strdup(source);
    ds->preprocess = strdup(o->preprocess ? o->preprocess : "");
    ds->yolo = o->yolo_labels ? strdup(o->yolo_labels) : NULL;
    if (!ds->source || !ds->preprocess || (o->yolo_labels && !ds->yolo))
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    ds->opts.preprocess = ds->preprocess;
    ds->opts.yolo_labels = ds->yolo;
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return ac_err_set(err, AC_E_INVALID, "channels=%d: image models take 1 (gray) or 3 (BGR/RGB) channels",
                          o->channels);
    if (o->layout != AC_LAYOUT_NCHW && o->layout != AC_LAYOUT_NHWC)
        return ac_err_set(err, AC_E_INVALID, "layout %d is neither NCHW nor NHWC", (int)o->layout);
    if (o->height < 0 || o->width < 0)
        return ac_err_set(err, AC_E_INVALID, "sample size %dx%d is negative", o->width, o->height);
    return ac_preproc_parse(ds->preprocess, &ds->pp, err);
}

/* ---------------------------------------------------------------- YOLO labels */

/* Brings boxes from pixels of the h x w image into pixels of the sample the
 * preprocessing makes of it (what the network sees); boxes the crops cut
 * away are dropped. */
static int map_boxes(const ac_preproc *pp, int h, int w, ac_box *boxes, int *nb, const char *image, ac_err *err)
{
    int kept = 0;
    for (int i = 0; i < *nb; i++) {
        ac_box b = boxes[i];
        int rc = ac_preproc_map_box(pp, h, w, &b.x1, &b.y1, &b.x2, &b.y2, image, err);
        if (rc < 0)
            return -1;
        if (rc > 0)
            boxes[kept++] = b;
    }
    *nb = kept;
    return 0;
}

static int load_yolo(ac_dataset *ds, ac_err *err)
{
    if (ds->list->has_labels)
        return ac_err_set(err, AC_E_INVALID, "%s has labels and YOLO labels were given too (%s); use one",
                          ds->source, ds->yolo);
    ds->labels = ac_labels_new(AC_LABEL_BOXES);
    ac_image_decoder *dec = ac_image_decoder_new();
    if (!ds->labels || !dec) {
        ac_image_decoder_destroy(&dec);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int rc = AC_OK;
    for (int64_t i = 0; i < ds->count && !rc; i++) {
        const char *p = ds->list->paths[i], *slash = strrchr(p, '/'), *base = slash ? slash + 1 : p;
        const char *dot = strrchr(base, '.');
        size_t bl = dot ? (size_t)(dot - base) : strlen(base);
        char lp[4096];
        snprintf(lp, sizeof lp, "%s/%.*s.txt", ds->yolo, (int)bl, base);
        struct stat st;
        if (stat(lp, &st) != 0) { /* YOLO convention: no label file = no object */
            rc = ac_labels_add_boxes(ds->labels, NULL, 0, err);
            continue;
        }
        uint8_t *txt = NULL, *img = NULL;
        size_t tn, in;
        int h = 0, w = 0;
        ac_box *boxes = NULL;
        int nb = 0;
        rc = ac_file_read(lp, &txt, &tn, err);
        if (!rc)
            rc = ac_file_read(p, &img, &in, err);
        if (!rc)
            rc = ac_image_probe(dec, img, in, p, &h, &w, err);
        if (!rc)
            rc = ac_labels_parse_yolo((const char *)txt, tn, lp, w, h, &boxes, &nb, err);
        if (!rc)
            rc = map_boxes(ds->pp, h, w, boxes, &nb, p, err);
        if (!rc)
            rc = ac_labels_add_boxes(ds->labels, boxes, nb, err);
        free(txt);
        free(img);
        free(boxes);
    }
    ac_image_decoder_destroy(&dec);
    return rc;
}

/* ---------------------------------------------------------------- LMDB */

static int setup_lmdb_tensors(ac_dataset *ds, ac_err *err)
{
    int64_t n = ac_lmdb_count(ds->db);
    ds->nrecords = n;
    ds->rec_first = malloc(sizeof *ds->rec_first * (size_t)(n + 1));
    int64_t *batch = malloc(sizeof *batch * (size_t)(n ? n : 1));
    if (!ds->rec_first || !batch) {
        free(batch);
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    int rc = AC_OK;
    int64_t total = 0;
    for (int64_t r = 0; r < n && !rc; r++) {
        const uint8_t *v;
        size_t vn;
        char where[1024];
        ac_lmdb_get(ds->db, r, NULL, NULL, &v, &vn);
        ac_lmdb_where(ds->db, r, where, sizeof where);
        ac_record rec;
        rc = ac_record_decode(v, vn, where, &rec, err);
        if (rc)
            break;
        if (r == 0) {
            ds->ninputs = rec.n;
            for (int t = 0; t < rec.n; t++) {
                ds->rank[t] = rec.t[t].rank - 1;
                ds->dtype[t] = rec.t[t].dtype;
                memcpy(ds->shape[t], rec.t[t].dims + 1, sizeof(int64_t) * (size_t)ds->rank[t]);
            }
        } else if (rec.n != ds->ninputs) {
            rc = ac_err_set(err, AC_E_INVALID, "%s: %d tensors, record 0 has %d (every record holds the same inputs)",
                            where, rec.n, ds->ninputs);
        }
        for (int t = 0; t < rec.n && !rc; t++) {
            int same = rec.t[t].rank - 1 == ds->rank[t] && rec.t[t].dtype == ds->dtype[t] &&
                       !memcmp(rec.t[t].dims + 1, ds->shape[t], sizeof(int64_t) * (size_t)ds->rank[t]);
            if (!same) {
                char a[160] = "", b[160] = "";
                for (int d = 1; d < rec.t[t].rank; d++)
                    snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d > 1 ? "," : "", (long long)rec.t[t].dims[d]);
                for (int d = 0; d < ds->rank[t]; d++)
                    snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "," : "", (long long)ds->shape[t][d]);
                rc = ac_err_set(err, AC_E_INVALID,
                                "%s: tensors[%d] sample shape [%s] %s differs from record 0's [%s] %s (every sample "
                                "has one shape and dtype)",
                                where, t, a, ac_rec_dtype_name(rec.t[t].dtype), b, ac_rec_dtype_name(ds->dtype[t]));
            }
        }
        batch[r] = rec.batch;
        ds->rec_first[r] = total;
        total += rec.batch;
    }
    ds->rec_first[n] = total;
    ds->count = total;
    if (!rc) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data.label", ds->source);
        struct stat st;
        if (stat(path, &st) == 0) {
            uint8_t *txt = NULL;
            size_t tn;
            rc = ac_file_read(path, &txt, &tn, err);
            if (!rc)
                rc = ac_labels_parse_datalabel((const char *)txt, tn, path, batch, n, &ds->labels, err);
            free(txt);
        }
    }
    free(batch);
    return rc;
}

/* Datum field 5 (label) without unpacking the pixels: a protobuf field walk.
 * Returns 0 (label -1 when absent) or -1 for malformed bytes. */
static int datum_label(const uint8_t *p, size_t n, int32_t *label)
{
    *label = -1;
    size_t i = 0;
    while (i < n) {
        uint64_t tag = 0, v = 0;
        for (int s = 0;; s += 7) {
            if (i >= n || s > 63)
                return -1;
            tag |= (uint64_t)(p[i] & 0x7f) << s;
            if (!(p[i++] & 0x80))
                break;
        }
        int wt = (int)(tag & 7);
        if (wt == 0 || wt == 2) {
            for (int s = 0;; s += 7) {
                if (i >= n || s > 63)
                    return -1;
                v |= (uint64_t)(p[i] & 0x7f) << s;
                if (!(p[i++] & 0x80))
                    break;
            }
            if (wt == 2) {
                if (v > n - i)
                    return -1;
                i += v;
            } else if (tag >> 3 == 5) {
                *label = (int32_t)v;
            }
        } else if (wt == 1 || wt == 5) {
            size_t k = wt == 1 ? 8 : 4;
            if (k > n - i)
                return -1;
            i += k;
        } else {
            return -1;
        }
    }
    return 0;
}

static int setup_lmdb_caffe(ac_dataset *ds, ac_err *err)
{
    ds->nrecords = ds->count = ac_lmdb_count(ds->db);
    int rc = AC_OK, labelled = -1;
    ac_labels *l = ac_labels_new(AC_LABEL_CLASS);
    if (!l)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < ds->count && !rc; i++) {
        const uint8_t *v;
        size_t vn;
        char where[1024];
        int32_t label;
        ac_lmdb_get(ds->db, i, NULL, NULL, &v, &vn);
        if (datum_label(v, vn, &label)) {
            ac_lmdb_where(ds->db, i, where, sizeof where);
            rc = ac_err_set(err, AC_E_INVALID, "%s: not a Caffe Datum (malformed protobuf)", where);
            break;
        }
        if (labelled < 0)
            labelled = label >= 0;
        if (labelled != (label >= 0)) {
            ac_lmdb_where(ds->db, i, where, sizeof where);
            rc = ac_err_set(err, AC_E_INVALID, "%s: Datum %s a label but record 0 %s", where,
                            label >= 0 ? "has" : "lacks", label >= 0 ? "lacks one" : "has one");
        } else if (labelled) {
            if (label < 0)
                rc = ac_err_set(err, AC_E_INVALID, "negative label");
            else
                rc = ac_labels_add_class(l, label, err);
        }
    }
    if (rc || labelled != 1)
        ac_labels_destroy(&l);
    ds->labels = l;
    if (rc)
        return rc;
    return setup_image_shape(ds, err);
}

/* ---------------------------------------------------------------- open */

ac_dataset *ac_dataset_open(const char *source, const ac_dataset_opts *o, ac_err *err)
{
    ac_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    int rc = common_setup(ds, source, o, err);
    struct stat st;
    if (!rc && stat(source, &st) != 0)
        rc = ac_err_set(err, AC_E_IO, "%s: %s", source, strerror(errno));
    char mdb[4096];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", source);
    if (rc) {
    } else if (S_ISDIR(st.st_mode) && stat(mdb, &st) == 0) {
        rc = ac_lmdb_open(source, &ds->db, err);
        if (!rc && ac_lmdb_count(ds->db) == 0)
            rc = ac_err_set(err, AC_E_INVALID, "%s: the LMDB holds no record", source);
        if (!rc) {
            const uint8_t *v;
            size_t vn;
            ac_lmdb_get(ds->db, 0, NULL, NULL, &v, &vn);
            ac_record rec;
            ac_err rec_err = {0};
            /* Our records are msgpack maps; anything else is tried as a Caffe Datum. */
            int ours = ac_record_decode(v, vn, source, &rec, &rec_err) == AC_OK || (vn && (v[0] & 0xf0) == 0x80) ||
                       (vn && (v[0] == 0xde || v[0] == 0xdf));
            if (ours) {
                ds->src = AC_DS_LMDB_TENSORS;
                if (ds->preprocess[0])
                    rc = ac_err_set(err, AC_E_INVALID,
                                    "%s holds preprocessed tensors (autocalib format); a preprocessing string ('%s') "
                                    "does not apply to it",
                                    source, ds->preprocess);
                else if (ds->yolo)
                    rc = ac_err_set(err, AC_E_INVALID, "%s: YOLO labels apply to image sources; this LMDB has "
                                    "data.label", source);
                else
                    rc = setup_lmdb_tensors(ds, err);
            } else {
                ds->src = AC_DS_LMDB_CAFFE;
                rc = ds->yolo ? ac_err_set(err, AC_E_INVALID, "%s: YOLO labels apply to image sources", source)
                              : setup_lmdb_caffe(ds, err);
            }
        }
    } else {
        if (S_ISREG(st.st_mode) && strlen(source) > 4 && !strcmp(source + strlen(source) - 4, ".mdb"))
            rc = ac_err_set(err, AC_E_INVALID, "%s: give the LMDB's folder, not its data file", source);
        else {
            ds->src = S_ISDIR(st.st_mode) ? AC_DS_IMAGE_FOLDER : AC_DS_IMAGE_LIST;
            rc = ac_imagelist_load(source, &ds->list, err);
        }
        if (!rc) {
            ds->count = ds->nrecords = ds->list->count;
            if (!ds->opts.channels)
                ds->opts.channels = 3;
            if (ds->yolo)
                rc = load_yolo(ds, err);
            else if (ds->list->has_labels) {
                ds->labels = ac_labels_new(AC_LABEL_CLASS);
                if (!ds->labels)
                    rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
                for (int64_t i = 0; !rc && i < ds->count; i++)
                    rc = ac_labels_add_class(ds->labels, ds->list->labels[i], err);
            }
        }
        if (!rc)
            rc = setup_image_shape(ds, err);
    }
    if (rc) {
        ac_dataset_destroy(&ds);
        return NULL;
    }
    return ds;
}

ac_dataset *ac_dataset_open_idx(const char *images, const char *labels, const ac_dataset_opts *o, ac_err *err)
{
    ac_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    ds->src = AC_DS_IDX;
    int rc = common_setup(ds, images, o, err);
    if (!rc && ds->yolo)
        rc = ac_err_set(err, AC_E_INVALID, "YOLO labels apply to image folders and lists, not idx files");
    if (!rc)
        rc = ac_idx_open(images, &ds->idx_images, err);
    if (!rc && ds->idx_images.ndim != 3)
        rc = ac_err_set(err, AC_E_UNSUPPORTED, "%s: idx images need 3 dimensions (count, rows, columns), got %d",
                        images, ds->idx_images.ndim);
    if (!rc && (ds->idx_images.dims[0] < 1 || ds->idx_images.dims[1] < 1 || ds->idx_images.dims[2] < 1))
        rc = ac_err_set(err, AC_E_INVALID, "%s: idx images of size %lldx%lldx%lld hold no pixel", images,
                        (long long)ds->idx_images.dims[0], (long long)ds->idx_images.dims[1],
                        (long long)ds->idx_images.dims[2]);
    if (!rc) {
        ds->count = ds->nrecords = ds->idx_images.dims[0];
        if (!ds->opts.channels)
            ds->opts.channels = 1;
    }
    if (!rc && labels) {
        ac_idx lab;
        rc = ac_idx_load(labels, &lab, err);
        if (!rc && (lab.ndim != 1 || lab.dims[0] != ds->count))
            rc = ac_err_set(err, AC_E_INVALID, "%s: %lld labels (%d-d) for %lld images in %s; one label per image",
                            labels, (long long)lab.dims[0], lab.ndim, (long long)ds->count, images);
        if (!rc && !(ds->labels = ac_labels_new(AC_LABEL_CLASS)))
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
        for (int64_t i = 0; !rc && i < ds->count; i++)
            rc = ac_labels_add_class(ds->labels, lab.data[i], err);
        ac_idx_free(&lab);
        if (!rc && !(ds->idx_labels_path = strdup(labels)))
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
    }
    if (!rc)
        rc = setup_image_shape(ds, err);
    if (rc) {
        ac_dataset_destroy(&ds);
        return NULL;
    }
    return ds;
}

/* ---------------------------------------------------------------- reading */

static int read_tensor_samples(ac_dataset *ds, int input, int64_t index, int64_t count, float *out, ac_err *err)
{
    size_t per = ac_dataset_sample_elems(ds, input);
    int64_t r = 0, lo = 0, hi = ds->nrecords - 1;
    while (lo < hi) { /* the record holding `index` */
        int64_t mid = (lo + hi + 1) / 2;
        if (ds->rec_first[mid] <= index)
            lo = mid;
        else
            hi = mid - 1;
    }
    r = lo;
    int64_t i = index;
    while (i < index + count) {
        const uint8_t *v;
        size_t vn;
        char where[1024];
        ac_lmdb_get(ds->db, r, NULL, NULL, &v, &vn);
        ac_lmdb_where(ds->db, r, where, sizeof where);
        ac_record rec;
        int rc = ac_record_decode(v, vn, where, &rec, err);
        if (rc)
            return rc;
        int64_t j = i - ds->rec_first[r], take = rec.batch - j;
        if (take > index + count - i)
            take = index + count - i;
        ac_rec_to_f32(&rec.t[input], (size_t)j * per, (size_t)take * per, out + (size_t)(i - index) * per);
        i += take;
        r++;
    }
    return AC_OK;
}

int ac_dataset_read(ac_dataset *ds, int input, int64_t index, int64_t count, float *out, ac_err *err)
{
    if (input < 0 || input >= ds->ninputs)
        return ac_err_set(err, AC_E_INVALID, "%s: input %d does not exist (%d inputs)", ds->source, input, ds->ninputs);
    if (index < 0 || count < 0 || index > ds->count || count > ds->count - index)
        return ac_err_set(err, AC_E_INVALID, "%s: samples %lld..%lld are outside 0..%lld", ds->source,
                          (long long)index, (long long)(index + count - 1), (long long)ds->count - 1);
    if (count == 0)
        return AC_OK;
    if (ds->src == AC_DS_LMDB_TENSORS)
        return read_tensor_samples(ds, input, index, count, out, err);
    size_t per = ac_dataset_sample_elems(ds, 0);
    int64_t bad = -1;
    ac_err first = {0};
    int nt = ds->opts.nthreads > 0 ? ds->opts.nthreads : omp_get_max_threads();
    if (nt > count)
        nt = (int)count;
#pragma omp parallel num_threads(nt)
    {
        ac_err e = {0};
        int64_t mybad = -1;
        ac_image_decoder *dec = ac_image_decoder_new();
        ac_preproc_work *work = ac_preproc_work_new();
        /* Each thread stops at its first failure; every lower index was done by
         * some thread, so the lowest failing index is the same for any thread count. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < count; i++) {
            if (mybad >= 0)
                continue;
            int rc = dec && work ? read_image_sample(ds, index + i, dec, work, out + (size_t)i * per, &e)
                                 : ac_err_set(&e, AC_E_NOMEM, "cannot create a JPEG decoder");
            if (rc)
                mybad = index + i;
        }
        ac_image_decoder_destroy(&dec);
        ac_preproc_work_destroy(&work);
#pragma omp critical(ac_dataset_read)
        if (mybad >= 0 && (bad < 0 || mybad < bad)) {
            bad = mybad;
            first = e;
        }
    }
    if (bad >= 0) {
        if (err)
            *err = first;
        return first.code ? (int)first.code : AC_E_INTERNAL;
    }
    return AC_OK;
}

/* ---------------------------------------------------------------- hash, shards */

static void hash_labels(ac_sha256 *s, const ac_labels *l)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return;
    fprintf(f, "%s\n", ac_label_kind_name(ac_labels_kind(l)));
    for (int64_t i = 0; i < ac_labels_count(l); i++)
        ac_labels_write_record(l, i, 1, f);
    fclose(f);
    ac_sha256_field(s, text, n);
    free(text);
}

/* A field of the file's bytes (its length, then the bytes), read in 1 MiB pieces. */
static int hash_file(ac_sha256 *s, const char *path, ac_err *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)st.st_size >> (8 * i));
    ac_sha256_update(s, len, sizeof len);
    enum { PIECE = 1 << 20 };
    uint8_t *buf = malloc(PIECE);
    size_t total = 0, n = 0;
    while (buf && (n = fread(buf, 1, PIECE, f)) > 0) {
        ac_sha256_update(s, buf, n);
        total += n;
    }
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (!buf)
        return ac_err_set(err, AC_E_NOMEM, "out of memory");
    if (bad || total != (size_t)st.st_size)
        return ac_err_set(err, AC_E_IO, "%s: read %zu of %lld bytes", path, total, (long long)st.st_size);
    return AC_OK;
}

int ac_dataset_hash(ac_dataset *ds, uint8_t out[32], ac_err *err)
{
    if (ds->hashed) {
        memcpy(out, ds->hash, 32);
        return AC_OK;
    }
    ac_sha256 s;
    ac_sha256_init(&s);
    const char *tag = "autocalib.dataset.v1";
    ac_sha256_field(&s, tag, strlen(tag));
    ac_sha256_field(&s, source_names[ds->src], strlen(source_names[ds->src]));
    switch (ds->src) {
    case AC_DS_IMAGE_FOLDER:
    case AC_DS_IMAGE_LIST:
        for (int64_t i = 0; i < ds->count; i++) {
            uint8_t *buf;
            size_t len;
            int rc = ac_file_read(ds->list->paths[i], &buf, &len, err);
            if (rc)
                return rc;
            ac_sha256_field(&s, buf, len);
            free(buf);
        }
        break;
    case AC_DS_LMDB_TENSORS:
    case AC_DS_LMDB_CAFFE:
        for (int64_t i = 0; i < ac_lmdb_count(ds->db); i++) {
            const uint8_t *k, *v;
            size_t kn, vn;
            ac_lmdb_get(ds->db, i, &k, &kn, &v, &vn);
            ac_sha256_field(&s, k, kn);
            ac_sha256_field(&s, v, vn);
        }
        break;
    case AC_DS_IDX: {
        /* the file as stored: hashing it needs no decompression (the data is
         * decompressed only as far as samples are read) */
        int rc = hash_file(&s, ds->source, err);
        if (rc)
            return rc;
        break;
    }
    }
    hash_labels(&s, ds->labels);
    char opts[256];
    int n = snprintf(opts, sizeof opts, "layout=%s channels=%d", ds->opts.layout == AC_LAYOUT_NHWC ? "NHWC" : "NCHW",
                     ds->opts.channels);
    for (int t = 0; t < ds->ninputs; t++)
        for (int d = 0; d < ds->rank[t]; d++)
            n += snprintf(opts + n, sizeof opts - (size_t)n, "%s%lld", d ? "x" : " shape=", (long long)ds->shape[t][d]);
    ac_sha256_field(&s, opts, strlen(opts));
    const char *pp = ac_preproc_canonical(ds->pp);
    ac_sha256_field(&s, pp, strlen(pp));
    ac_sha256_final(&s, ds->hash);
    ds->hashed = 1;
    memcpy(out, ds->hash, 32);
    return AC_OK;
}

void ac_shard_range(int64_t count, int nshards, int i, int64_t *begin, int64_t *end)
{
    if (nshards < 1 || i < 0 || i >= nshards || count <= 0) {
        *begin = *end = 0;
        return;
    }
    /* count * i / n without overflow for any realistic count (< 2^40) */
    *begin = (int64_t)((__int128)count * i / nshards);
    *end = (int64_t)((__int128)count * (i + 1) / nshards);
}

int ac_dataset_shard(ac_dataset *ds, int nshards, int i, ac_shard *out, ac_err *err)
{
    if (nshards < 1 || i < 0 || i >= nshards)
        return ac_err_set(err, AC_E_INVALID, "shard %d of %d does not exist (0 <= shard < shards, shards >= 1)", i,
                          nshards);
    int rc = ac_dataset_hash(ds, out->dataset, err);
    if (rc)
        return rc;
    ac_shard_range(ds->count, nshards, i, &out->begin, &out->end);
    return AC_OK;
}

int64_t ac_dataset_limit(int64_t count, int64_t iterations, int64_t batch)
{
    if (iterations <= 0 || batch <= 0)
        return count;
    if (iterations > count / batch)
        return count;
    return iterations * batch < count ? iterations * batch : count;
}

/* ---------------------------------------------------------------- LMDB export */

static int copy_label(const ac_labels *from, int64_t i, ac_labels *to, ac_err *err)
{
    if (ac_labels_kind(from) == AC_LABEL_CLASS)
        return ac_labels_add_class(to, ac_labels_class(from, i), err);
    const ac_box *b;
    int n = ac_labels_boxes(from, i, &b);
    return ac_labels_add_boxes(to, b, n, err);
}

typedef struct {
    ac_dataset *ds;
    ac_lmdb_writer *w;
    float *pend[AC_REC_MAX_TENSORS];
    int64_t npend, batch;
    ac_labels *plab;
} exporter;

static int flush_batch(exporter *x, ac_err *err)
{
    if (x->npend == 0)
        return AC_OK;
    ac_rec_tensor t[AC_REC_MAX_TENSORS];
    for (int k = 0; k < x->ds->ninputs; k++) {
        t[k].dtype = AC_REC_F32;
        t[k].rank = x->ds->rank[k] + 1;
        t[k].dims[0] = x->npend;
        memcpy(t[k].dims + 1, x->ds->shape[k], sizeof(int64_t) * (size_t)x->ds->rank[k]);
        t[k].data = (const uint8_t *)x->pend[k];
        t[k].nbytes = sizeof(float) * (size_t)x->npend * ac_dataset_sample_elems(x->ds, k);
    }
    int rc = ac_lmdb_writer_put(x->w, t, x->ds->ninputs, x->plab, 0, err);
    ac_label_kind kind = ac_labels_kind(x->plab);
    ac_labels_destroy(&x->plab);
    if (kind != AC_LABEL_NONE && !(x->plab = ac_labels_new(kind)) && !rc)
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
    x->npend = 0;
    return rc;
}

int ac_dataset_write_lmdb(ac_dataset *ds, const char *dir, const ac_dataset_write_opts *o, int64_t *written,
                          int64_t *skipped, ac_err *err)
{
    ac_dataset_write_opts def = {0};
    if (!o)
        o = &def;
    FILE *log = o->log ? o->log : stderr;
    int64_t batch = o->batch > 0 ? o->batch : 1;
    int64_t chunk = batch >= 64 ? batch : (64 / batch) * batch;
    *written = *skipped = 0;
    exporter x = {ds, NULL, {0}, 0, batch, NULL};
    float *buf[AC_REC_MAX_TENSORS] = {0};
    int rc = ac_lmdb_writer_new(dir, o->overwrite, &x.w, err);
    if (ac_dataset_label_kind(ds) != AC_LABEL_NONE && !rc && !(x.plab = ac_labels_new(ac_dataset_label_kind(ds))))
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
    for (int k = 0; k < ds->ninputs && !rc; k++) {
        size_t per = ac_dataset_sample_elems(ds, k);
        buf[k] = malloc(sizeof(float) * per * (size_t)chunk);
        x.pend[k] = malloc(sizeof(float) * per * (size_t)batch);
        if (!buf[k] || !x.pend[k])
            rc = ac_err_set(err, AC_E_NOMEM, "out of memory for a chunk of %lld samples", (long long)chunk);
    }
    char *ok = rc ? NULL : malloc((size_t)chunk);
    if (!rc && !ok)
        rc = ac_err_set(err, AC_E_NOMEM, "out of memory");
    for (int64_t start = 0; !rc && start < ds->count; start += chunk) {
        int64_t n = ds->count - start < chunk ? ds->count - start : chunk;
        memset(ok, 1, (size_t)n);
        for (int k = 0; k < ds->ninputs && !rc; k++) {
            size_t per = ac_dataset_sample_elems(ds, k);
            rc = ac_dataset_read(ds, k, start, n, buf[k], err);
            if (rc && o->skip_bad && ds->src != AC_DS_LMDB_TENSORS && rc != AC_E_NOMEM) {
                rc = AC_OK;
                for (int64_t j = 0; j < n; j++) {
                    ac_err e = {0};
                    if (ac_dataset_read(ds, k, start + j, 1, buf[k] + (size_t)j * per, &e)) {
                        fprintf(log, "warning: skipped: %s\n", e.msg);
                        ok[j] = 0;
                        (*skipped)++;
                    }
                }
            }
        }
        for (int64_t j = 0; j < n && !rc; j++) {
            if (!ok[j])
                continue;
            for (int k = 0; k < ds->ninputs; k++) {
                size_t per = ac_dataset_sample_elems(ds, k);
                memcpy(x.pend[k] + (size_t)x.npend * per, buf[k] + (size_t)j * per, sizeof(float) * per);
            }
            if (x.plab)
                rc = copy_label(ds->labels, start + j, x.plab, err);
            x.npend++;
            (*written)++;
            if (!rc && x.npend == batch)
                rc = flush_batch(&x, err);
        }
    }
    if (!rc)
        rc = flush_batch(&x, err);
    if (!rc)
        rc = ac_lmdb_writer_commit(x.w, err);
    for (int k = 0; k < AC_REC_MAX_TENSORS; k++)
        free(buf[k]), free(x.pend[k]);
    free(ok);
    ac_labels_destroy(&x.plab);
    ac_lmdb_writer_destroy(&x.w);
    if (rc)
        *written = 0;
    return rc;
}
