#include "ac_idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#include <stdio.h>
#include <sys/stat.h>

#include "ac_bigbuf.h"

void ac_idx_free(ac_idx *x)
{
    if (x) {
        free(x->alloc);
        memset(x, 0, sizeof *x);
    }
}

static int parse_header(const uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err)
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
    if (have != total)
        return ac_err_set(err, AC_E_INVALID, "%s: idx header promises %zu data bytes, the file holds %zu", name, total,
                          have);
    out->ndim = nd;
    out->nbytes = total;
    return AC_OK;
}

int ac_idx_parse(uint8_t *buf, size_t len, const char *name, ac_idx *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = parse_header(buf, len, name, out, err);
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

/* The file's bytes in one buffer (huge pages when large); non-zero on any failure. */
static int read_whole(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return -1;
    void *b = NULL;
    int rc = -1;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && ac_bigbuf_alloc(&b, (size_t)st.st_size) == 0) {
        if (fread(b, 1, (size_t)st.st_size, f) == (size_t)st.st_size && !ferror(f)) {
            *buf = b;
            *len = (size_t)st.st_size;
            b = NULL;
            rc = 0;
        }
        free(b);
    }
    fclose(f);
    return rc;
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
    if (read_whole(path, &file, &flen))
        return 1;
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
