#include "ac_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *descr;
    size_t size;
} npy_types[] = {
    {"<f4", 4}, {"<f8", 8}, {"<i8", 8}, {"<i4", 4}, {"<i2", 2}, {"<u2", 2},
    {"|i1", 1}, {"|u1", 1}, {"|b1", 1}, {"<u4", 4}, {"<u8", 8},
};

static size_t descr_size(const char *d)
{
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strcmp(npy_types[i].descr, d) == 0)
            return npy_types[i].size;
    return 0;
}

/* Find `'key':` in the header dict and return the position after the colon. */
static const char *header_value(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static int parse_header(const char *hdr, const char *name, ac_npy *out, ac_err *err)
{
    const char *d = header_value(hdr, "descr");
    if (!d || *d != '\'')
        return ac_err_set(err, AC_E_INVALID, "%s: npy header has no 'descr' string", name);
    d++;
    const char *end = strchr(d, '\'');
    if (!end || end - d >= (long)sizeof out->descr)
        return ac_err_set(err, AC_E_INVALID, "%s: npy header 'descr' is malformed", name);
    memcpy(out->descr, d, (size_t)(end - d));
    out->descr[end - d] = '\0';
    /* numpy writes '<u1' and '|u1' alike; normalise single-byte types to '|'. */
    if ((out->descr[0] == '<' || out->descr[0] == '=') && out->descr[2] == '1' && out->descr[3] == '\0')
        out->descr[0] = '|';
    if (out->descr[0] == '=')
        out->descr[0] = '<';
    out->elem_size = descr_size(out->descr);
    if (!out->elem_size)
        return ac_err_set(err, AC_E_UNSUPPORTED,
                          "%s: npy dtype '%s' is not supported (little-endian numbers and bool only)",
                          name, out->descr);
    const char *f = header_value(hdr, "fortran_order");
    if (!f)
        return ac_err_set(err, AC_E_INVALID, "%s: npy header has no 'fortran_order'", name);
    if (strncmp(f, "False", 5) != 0)
        return ac_err_set(err, AC_E_UNSUPPORTED,
                          "%s: npy array is in Fortran order; save it with np.ascontiguousarray", name);
    const char *s = header_value(hdr, "shape");
    if (!s || *s != '(')
        return ac_err_set(err, AC_E_INVALID, "%s: npy header has no 'shape' tuple", name);
    s++;
    out->ndim = 0;
    uint64_t numel = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == ')')
            break;
        if (*s < '0' || *s > '9')
            return ac_err_set(err, AC_E_INVALID, "%s: npy shape has a non-number at '%.10s'", name, s);
        char *e;
        unsigned long long v = strtoull(s, &e, 10);
        if (out->ndim >= AC_NPY_MAX_DIMS)
            return ac_err_set(err, AC_E_UNSUPPORTED, "%s: npy array has more than %d dims", name,
                              AC_NPY_MAX_DIMS);
        if (v > ((uint64_t)1 << 40) || (v && numel > ((uint64_t)1 << 40) / v))
            return ac_err_set(err, AC_E_INVALID, "%s: npy shape is too large", name);
        numel *= v;
        out->dims[out->ndim++] = (int64_t)v;
        s = e;
    }
    if (*s != ')')
        return ac_err_set(err, AC_E_INVALID, "%s: npy shape tuple is not closed", name);
    out->nbytes = (size_t)numel * out->elem_size;
    return 0;
}

int ac_npy_parse(const void *buf, size_t len, const char *name, ac_npy *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return ac_err_set(err, AC_E_INVALID, "%s: not a .npy file (bad magic)", name);
    int major = b[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return ac_err_set(err, AC_E_INVALID, "%s: truncated npy header", name);
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        hoff = 12;
    } else {
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: npy format version %d is not supported", name, major);
    }
    if (hlen > len - hoff)
        return ac_err_set(err, AC_E_INVALID, "%s: npy header length %zu exceeds the file", name, hlen);
    char *hdr = malloc(hlen + 1);
    if (!hdr)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", name);
    memcpy(hdr, b + hoff, hlen);
    hdr[hlen] = '\0';
    int rc = parse_header(hdr, name, out, err);
    free(hdr);
    if (rc)
        return rc;
    size_t doff = hoff + hlen;
    if (len - doff < out->nbytes)
        return ac_err_set(err, AC_E_INVALID, "%s: npy data is truncated (%zu bytes, shape needs %zu)",
                          name, len - doff, out->nbytes);
    out->data = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->data)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu bytes", name, out->nbytes);
    memcpy(out->data, b + doff, out->nbytes);
    return 0;
}

int ac_npy_read(const char *path, ac_npy *out, ac_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: cannot seek", path);
    }
    long len = ftell(f);
    rewind(f);
    if (len < 0) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: cannot tell its size", path);
    }
    void *buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    int rc = got == (size_t)len ? ac_npy_parse(buf, got, path, out, err)
                                : ac_err_set(err, AC_E_IO, "%s: short read", path);
    free(buf);
    return rc;
}

void ac_npy_free(ac_npy *a)
{
    if (a) {
        free(a->data);
        a->data = NULL;
    }
}

int ac_npy_write(const char *path, const char *descr, int ndim, const int64_t *dims,
                 const void *data, ac_err *err)
{
    size_t esize = descr_size(descr);
    if (!esize)
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: cannot write npy dtype '%s'", path, descr);
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld%s", (long long)dims[i],
                      ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        numel *= (size_t)dims[i];
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* Pad with spaces so that magic + header is a multiple of 64, ending in '\n'. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    n += (int)pad;
    hdr[n++] = '\n';
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create", tmp);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff),
                             (unsigned char)(n >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)n, f) == (size_t)n &&
             fwrite(data, esize, numel, f) == numel;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return ac_err_set(err, AC_E_IO, "%s: write failed", path);
    }
    return 0;
}
