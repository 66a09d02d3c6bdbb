#include "ac_image.h"

#include "ac_bigbuf.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <turbojpeg.h>

struct ac_image_decoder {
    tjhandle tj;
};

ac_image_decoder *ac_image_decoder_new(void)
{
    ac_image_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->tj = tjInitDecompress();
    if (!d->tj) {
        free(d);
        return NULL;
    }
    return d;
}

void ac_image_decoder_destroy(ac_image_decoder **p)
{
    if (!p || !*p)
        return;
    tjDestroy((*p)->tj);
    free(*p);
    *p = NULL;
}

void ac_image_free(ac_image *img)
{
    if (!img)
        return;
    free(img->u8);
    free(img->f32);
    memset(img, 0, sizeof *img);
}

int ac_image_has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

int ac_file_read(const char *path, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    /* a large file on huge pages (ac_bigbuf): fewer first-touch faults; free() frees it */
    void *mem = NULL;
    uint8_t *b = ac_bigbuf_alloc(&mem, n) == 0 ? mem : NULL;
    if (!b) {
        fclose(f);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(b, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(b);
        return ac_err_set(err, AC_E_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    *buf = b;
    *len = n;
    return AC_OK;
}

static int is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }
static int is_png(const uint8_t *b, size_t n) { return n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8); }

static int check_size(int h, int w, const char *name, ac_err *err)
{
    if (h <= 0 || w <= 0 || h > AC_IMAGE_MAX_SIDE || w > AC_IMAGE_MAX_SIDE ||
        (uint64_t)h * (uint64_t)w > AC_IMAGE_MAX_PIXELS)
        return ac_err_set(err, AC_E_INVALID,
                          "%s: image size %dx%d (WxH) is outside 1..%d per side and %u pixels", name, w,
                          h, AC_IMAGE_MAX_SIDE, AC_IMAGE_MAX_PIXELS);
    return AC_OK;
}

static int unknown_format(const uint8_t *b, size_t n, const char *name, ac_err *err)
{
    char hex[3 * 8 + 1] = "";
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(hex + 3 * i, 4, "%02x ", b[i]);
    return ac_err_set(err, AC_E_INVALID,
                      "%s: not a JPEG (starts ff d8 ff) or PNG (starts 89 50 4e 47); first bytes: %s(%zu bytes)",
                      name, hex, n);
}

/* ---------------------------------------------------------------- JPEG */

/* Adobe APP14 marker present: Photoshop-style CMYK JPEGs store inverted ink
 * values, which Pillow undoes; we do the same so CMYK images match Pillow. */
static int jpeg_has_adobe_marker(const uint8_t *b, size_t n)
{
    size_t p = 2;
    while (p + 4 <= n) {
        if (b[p] != 0xFF)
            return 0;
        uint8_t m = b[p + 1];
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xFF) {
            p += (m == 0xFF) ? 1 : 2;
            continue;
        }
        if (m == 0xDA) /* start of scan: no more header markers */
            return 0;
        size_t seg = (size_t)b[p + 2] << 8 | b[p + 3];
        if (seg < 2 || p + 2 + seg > n)
            return 0;
        if (m == 0xEE && seg >= 7 && !memcmp(b + p + 4, "Adobe", 5))
            return 1;
        p += 2 + seg;
    }
    return 0;
}

static int tj_fail(ac_image_decoder *d, const char *name, const char *what, ac_err *err)
{
    return ac_err_set(err, AC_E_INVALID, "%s: JPEG %s failed: %s", name, what, tjGetErrorStr2(d->tj));
}

static int decode_jpeg(ac_image_decoder *d, const uint8_t *buf, size_t len, int channels,
                       const char *name, ac_image *img, ac_err *err)
{
    int w, h, subsamp, cs;
    if (len > 0xFFFFFFFFul)
        return ac_err_set(err, AC_E_INVALID, "%s: JPEG of %zu bytes is too large", name, len);
    if (tjDecompressHeader3(d->tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0)
        return tj_fail(d, name, "header", err);
    int rc = check_size(h, w, name, err);
    if (rc)
        return rc;
    int cmyk = (cs == TJCS_CMYK || cs == TJCS_YCCK);
    int fmt = cmyk ? TJPF_CMYK : (channels == 1 ? TJPF_GRAY : TJPF_BGR);
    int psize = tjPixelSize[fmt];
    uint8_t *px = malloc((size_t)w * h * psize);
    if (!px)
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
    /* Warnings (truncated data, corrupt entropy segments) count as errors: a
     * partly grey image must not reach calibration silently. */
    if (tjDecompress2(d->tj, buf, (unsigned long)len, px, w, 0, h, fmt, TJFLAG_STOPONWARNING) != 0) {
        free(px);
        return tj_fail(d, name, "decode", err);
    }
    if (cmyk) {
        int inverted = jpeg_has_adobe_marker(buf, len);
        uint8_t *out = malloc((size_t)w * h * channels);
        if (!out) {
            free(px);
            return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", name);
        }
        for (size_t i = 0; i < (size_t)w * h; i++) {
            int v[4];
            for (int k = 0; k < 4; k++)
                v[k] = inverted ? 255 - px[4 * i + k] : px[4 * i + k];
            int nk = 255 - v[3], rgb[3];
            for (int k = 0; k < 3; k++) { /* Pillow's cmyk2rgb */
                int t = v[k] * nk + 128;
                t = nk - (((t >> 8) + t) >> 8);
                rgb[k] = t < 0 ? 0 : t > 255 ? 255 : t;
            }
            if (channels == 1) {
                out[i] = ac_bgr_to_gray((uint8_t)rgb[2], (uint8_t)rgb[1], (uint8_t)rgb[0]);
            } else {
                out[3 * i] = (uint8_t)rgb[2];
                out[3 * i + 1] = (uint8_t)rgb[1];
                out[3 * i + 2] = (uint8_t)rgb[0];
            }
        }
        free(px);
        px = out;
    }
    img->h = h, img->w = w, img->c = channels, img->u8 = px, img->f32 = NULL;
    return AC_OK;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    char msg[256];
} png_src;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos)
        png_error(png, "file is truncated");
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static int decode_png(const uint8_t *buf, size_t len, int channels, const char *name, int probe_only,
                      ac_image *img, ac_err *err)
{
    png_src src = {buf, len, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png)
        return ac_err_set(err, AC_E_NOMEM, "%s: cannot create PNG reader", name);
    png_infop info = png_create_info_struct(png);
    /* Written after setjmp and read after a longjmp: volatile. */
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return ac_err_set(err, AC_E_INVALID, "%s: PNG decode failed: %s", name,
                          src.msg[0] ? src.msg : "out of memory");
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, AC_IMAGE_MAX_SIDE, AC_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int rc = check_size(h, w, name, err);
    if (rc || probe_only) {
        png_destroy_read_struct(&png, &info, NULL);
        if (!rc)
            img->h = h, img->w = w;
        return rc;
    }
    int ct = png_get_color_type(png, info);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if ((ct & ~PNG_COLOR_MASK_ALPHA) == PNG_COLOR_TYPE_GRAY)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_packing(png);
    png_set_interlace_handling(png);
    /* After the transforms above: gray (with or without alpha) is 1 channel, the rest RGB. */
    int pc = (ct & ~PNG_COLOR_MASK_ALPHA) == PNG_COLOR_TYPE_GRAY ? 1 : 3;
    if (pc == 3)
        png_set_bgr(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * pc)
        png_error(png, "unexpected row size after conversion");
    px = malloc((size_t)h * rowbytes);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!px || !rows)
        png_error(png, "out of memory");
    for (int y = 0; y < h; y++)
        rows[y] = px + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    uint8_t *p = px;
    if (pc != channels) {
        uint8_t *out = malloc((size_t)w * h * channels);
        if (!out) {
            free(p);
            return ac_err_set(err, AC_E_NOMEM, "%s: out of memory", name);
        }
        for (size_t i = 0; i < (size_t)w * h; i++) {
            if (channels == 1)
                out[i] = ac_bgr_to_gray(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
            else
                out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = p[i];
        }
        free(p);
        p = out;
    }
    img->h = h, img->w = w, img->c = channels, img->u8 = p, img->f32 = NULL;
    return AC_OK;
}

/* ---------------------------------------------------------------- entry points */

int ac_image_decode(ac_image_decoder *d, const uint8_t *buf, size_t len, int channels,
                    const char *name, ac_image *img, ac_err *err)
{
    memset(img, 0, sizeof *img);
    if (channels != 1 && channels != 3)
        return ac_err_set(err, AC_E_INVALID, "%s: %d channels requested; 1 (gray) or 3 (BGR) are supported",
                          name, channels);
    if (is_jpeg(buf, len))
        return decode_jpeg(d, buf, len, channels, name, img, err);
    if (is_png(buf, len))
        return decode_png(buf, len, channels, name, 0, img, err);
    return unknown_format(buf, len, name, err);
}

int ac_image_probe(ac_image_decoder *d, const uint8_t *buf, size_t len, const char *name, int *h,
                   int *w, ac_err *err)
{
    if (is_jpeg(buf, len)) {
        int ss, cs;
        if (len > 0xFFFFFFFFul || tjDecompressHeader3(d->tj, buf, (unsigned long)len, w, h, &ss, &cs) != 0)
            return tj_fail(d, name, "header", err);
        return check_size(*h, *w, name, err);
    }
    if (is_png(buf, len)) {
        ac_image img = {0};
        int rc = decode_png(buf, len, 3, name, 1, &img, err);
        *h = img.h, *w = img.w;
        return rc;
    }
    return unknown_format(buf, len, name, err);
}
