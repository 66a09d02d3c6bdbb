#include "ac_idx.h"

#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ac_bigbuf.h"
#include "ac_image.h"

static int parse_header(const uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err, bool header_only);

struct ac_idx_stream {
    gzFile f;
    char *path;
    size_t have; /* data bytes in so far */
    pthread_mutex_t mu;
};

static void stream_close(ac_idx_stream **p)
{
    if (!*p)
        return;
    if ((*p)->f)
        gzclose((*p)->f);
    pthread_mutex_destroy(&(*p)->mu);
    free((*p)->path);
    free(*p);
    *p = NULL;
}

void ac_idx_free(ac_idx *x)
{
    if (x) {
        stream_close(&x->stream);
        free(x->alloc);
        memset(x, 0, sizeof *x);
    }
}

/* header_only: buf holds the header alone and the data is not checked against it. */
static int parse_header(const uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err, bool header_only)
{
    if (len < 4 || buf[0] || buf[1])
        return ac_err_set(err, AC_E_INVALID, "%s: not an idx file (magic must start 00 00)", name);
    if (buf[2] != 0x08)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: idx element type 0x%02x; only 0x08 (unsigned byte) is supported",
                          name, buf[2]);
    int nd = buf[3];
    if (nd < 1 || nd > 4)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: idx with %d dimensions; 1 to 4 are supported", name, nd);
    if (len < 4 + 4 * (size_t)nd)
        return ac_err_set(err, AC_E_INVALID, "%s: truncated idx header (%zu bytes)", name, len);
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        const uint8_t *p = buf + 4 + 4 * i;
        out->dims[i] = (int64_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
        if (out->dims[i] && total > AC_IDX_MAX_BYTES / (size_t)out->dims[i])
            return ac_err_set(err, AC_E_INVALID, "%s: idx dimensions give more than %zu bytes", name, AC_IDX_MAX_BYTES);
        total *= (size_t)out->dims[i];
    }
    size_t have = len - 4 - 4 * (size_t)nd;
    if (!header_only && have != total)
        return ac_err_set(err, AC_E_INVALID, "%s: idx header promises %zu data bytes, the file holds %zu", name, total,
                          have);
    out->ndim = nd;
    out->nbytes = total;
    return AC_OK;
}

/* Reads up to n bytes (fewer only at the end of the data); -1 on corrupt data. */
static int64_t gz_read_full(gzFile f, uint8_t *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f, dst + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

static int gz_error(gzFile f, const char *path, ac_err *err)
{
    int zerr;
    const char *m = gzerror(f, &zerr);
    return ac_err_set(err, AC_E_INVALID, "%s: corrupt gzip data: %s", path, m);
}

int ac_idx_open(const char *path, ac_idx *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t hdr[4 + 4 * 4];
    int64_t got = gz_read_full(f, hdr, 4);
    if (got == 4 && hdr[3] >= 1 && hdr[3] <= 4) {
        int64_t more = gz_read_full(f, hdr + 4, 4 * (size_t)hdr[3]);
        got = more < 0 ? more : got + more;
    }
    if (got < 0) {
        int rc = gz_error(f, path, err);
        gzclose(f);
        return rc;
    }
    /* the header as ac_idx_parse checks it, with the data the header promises assumed present */
    int rc = parse_header(hdr, (size_t)got, path, out, err, true);
    ac_idx_stream *st = rc ? NULL : calloc(1, sizeof *st);
    if (!rc && st)
        st->path = strdup(path);
    /* untouched pages cost nothing: the buffer is as big as the header says */
    if (!rc && (!st || !st->path || ac_bigbuf_alloc(&out->alloc, out->nbytes) != 0))
        rc = ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu bytes of idx data", path, out->nbytes);
    if (rc) {
        if (st)
            free(st->path);
        free(st);
        free(out->alloc);
        gzclose(f);
        memset(out, 0, sizeof *out);
        return rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->f = f;
    out->data = out->alloc;
    out->stream = st;
    return AC_OK;
}

/* Decompress ahead in steps of at least 1 MiB: few calls, little waste. */
#define NEED_STEP ((size_t)1 << 20)

int ac_idx_need(ac_idx *x, size_t bytes, ac_err *err)
{
    ac_idx_stream *st = x->stream;
    if (!st || bytes == 0)
        return AC_OK;
    if (bytes > x->nbytes)
        bytes = x->nbytes;
    pthread_mutex_lock(&st->mu);
    int rc = AC_OK;
    if (st->have < bytes) {
        size_t to = bytes - st->have < NEED_STEP ? st->have + NEED_STEP : bytes;
        if (to > x->nbytes)
            to = x->nbytes;
        int64_t got = gz_read_full(st->f, x->data + st->have, to - st->have);
        if (got < 0)
            rc = gz_error(st->f, st->path, err);
        else if ((st->have += (size_t)got) < bytes)
            rc = ac_err_set(err, AC_E_INVALID, "%s: idx data ends after %zu bytes; the header promises %zu",
                            st->path, st->have, x->nbytes);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int ac_idx_parse(uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = parse_header(buf, len, name, out, err, false);
    if (rc) {
        memset(out, 0, sizeof *out);
        free(buf);
        return rc;
    }
    /* the data stays where the file put it: no copy of a 47 MB training set */
    out->alloc = buf;
    out->data = buf + 4 + 4 * (size_t)out->ndim;
    return AC_OK;
}

/* The whole file in one call: a plain idx file as it is, a single-member
 * gzip by libdeflate (2-3x zlib's speed on Fashion-MNIST's 26 MB training
 * images, read on every run). Returns 1 when it does not apply (several
 * gzip members, a size the trailer cannot give, bad data): the caller then
 * streams the file through zlib, which names what is wrong. */
static int load_whole(const char *path, ac_idx *out, ac_err *err)
{
    uint8_t *file;
    size_t flen;
    ac_err ferr = {0};
    if (ac_file_read(path, &file, &flen, &ferr))
        return 1; /* the stream below says what is wrong */
    if (flen < 18 || file[0] != 0x1f || file[1] != 0x8b)
        return ac_idx_parse(file, flen, path, out, err);
    /* ISIZE: the uncompressed size mod 2^32, last 4 bytes (little-endian) */
    const size_t isize = (size_t)file[flen - 4] | (size_t)file[flen - 3] << 8 | (size_t)file[flen - 2] << 16 |
                         (size_t)file[flen - 1] << 24;
    void *buf = NULL;
    struct libdeflate_decompressor *d = ac_bigbuf_alloc(&buf, isize) == 0 ? libdeflate_alloc_decompressor() : NULL;
    size_t in_used = 0, got = 0;
    int rc = 1;
    if (d && libdeflate_gzip_decompress_ex(d, file, flen, buf, isize, &in_used, &got) == LIBDEFLATE_SUCCESS &&
        in_used == flen && got == isize) {
        rc = ac_idx_parse(buf, got, path, out, err);
        buf = NULL;
    }
    libdeflate_free_decompressor(d);
    free(buf);
    free(file);
    return rc;
}

int ac_idx_load(const char *path, ac_idx *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    int whole = load_whole(path, out, err);
    if (whole <= 0)
        return whole;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = AC_OK;
    while (buf) {
        if (len == cap) {
            if (cap > AC_IDX_MAX_BYTES) {
                rc = ac_err_set(err, AC_E_INVALID, "%s: larger than %zu bytes", path, AC_IDX_MAX_BYTES);
                break;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb, cap *= 2;
        }
        int n = gzread(f, buf + len, (unsigned)((cap - len) > (1u << 30) ? (1u << 30) : (cap - len)));
        if (n < 0) {
            int zerr;
            const char *m = gzerror(f, &zerr);
            rc = ac_err_set(err, AC_E_INVALID, "%s: corrupt gzip data: %s", path, m);
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    gzclose(f);
    if (!buf)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", path);
    if (rc) {
        free(buf);
        return rc;
    }
    return ac_idx_parse(buf, len, path, out, err);
}
