/* datasets selftest: parsers and their errors, bilinear resize against a
 * hand-computed case, decode, LMDB round trips (ours and Caffe Datum), idx,
 * labels, sharding and hashing. Writes its files under a fresh /tmp folder. */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "ac_blob.h"
#include "ac_dataset.h"
#include "ac_idx.h"
#include "ac_image.h"
#include "ac_imagelist.h"
#include "ac_labels.h"
#include "ac_lmdb.h"
#include "ac_preproc.h"
#include "ac_record.h"
#include "ac_sha256.h"
#include "ac_check.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* ---------------------------------------------------------------- sha256 */

static void test_sha256(void)
{
    uint8_t d[32];
    char hex[65];
    ac_sha256 s;
    ac_sha256_init(&s);
    ac_sha256_update(&s, "abc", 3);
    ac_sha256_final(&s, d);
    ac_sha256_hex(d, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    ac_sha256_init(&s);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t i = 0; i < strlen(m); i++) /* byte by byte: exercises the block buffer */
        ac_sha256_update(&s, m + i, 1);
    ac_sha256_final(&s, d);
    ac_sha256_hex(d, hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits) = %s",
          hex);
    /* The SHA-extension kernel against the scalar oracle, state for state. */
    enum { NB = 33 };
    static uint8_t buf[64 * NB];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    for (size_t n = 0; n <= NB; n += 1 + n / 4) {
        uint32_t ref[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                           0x5be0cd19};
        uint32_t fast[8];
        memcpy(fast, ref, sizeof ref);
        ac_sha256_blocks__ref(ref, buf, n);
        if (!ac_sha256_blocks_fast(fast, buf, n)) {
            printf("datasets_selftest: no SHA extensions here, the scalar kernel hashes\n");
            break;
        }
        CHECK(!memcmp(ref, fast, sizeof ref), "SHA-extension kernel differs from __ref over %zu block(s)", n);
    }
}

/* ---------------------------------------------------------------- preprocessing */

static void expect_pp_error(const char *text, const char *needle)
{
    ac_preproc *p = NULL;
    ac_err e = {0};
    int rc = ac_preproc_parse(text, &p, &e);
    CHECK(rc == AC_E_INVALID && p == NULL, "'%s' should fail", text);
    CHECK(strstr(e.msg, needle) != NULL, "'%s': message '%s' lacks '%s'", text, e.msg, needle);
    ac_preproc_destroy(&p);
}

static void test_preproc_parse(void)
{
    ac_preproc *p = NULL;
    ac_err e = {0};
    const char *ex = "resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True;crop_h=224,crop_w=224";
    CHECK(ac_preproc_parse(ex, &p, &e) == AC_OK, "%s", e.msg);
    CHECK(ac_preproc_nops(p) == 4, "ops %d", ac_preproc_nops(p));
    const ac_pp_op *o = ac_preproc_op(p, 0);
    CHECK(o->kind == AC_PP_RESIZE && o->h == 256 && o->w == 256, "op0");
    o = ac_preproc_op(p, 1);
    CHECK(o->kind == AC_PP_STAND && o->nmean == 3 && o->mean[2] == 123.68f && o->nscale == 1 && o->scale[0] == 1.0f,
          "op1");
    o = ac_preproc_op(p, 2);
    CHECK(o->kind == AC_PP_BGR2RGB && o->swap == 1, "op2: mean before bgr2rgb, in written order");
    o = ac_preproc_op(p, 3);
    CHECK(o->kind == AC_PP_CROP && o->h == 224 && o->w == 224, "op3");
    CHECK(!strcmp(ac_preproc_canonical(p),
                  "resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1;bgr2rgb=True;crop_h=224,crop_w=224"),
          "canonical %s", ac_preproc_canonical(p));
    ac_preproc_destroy(&p);
    CHECK(p == NULL, "destroy sets NULL");
    ac_preproc_destroy(&p);

    CHECK(ac_preproc_parse("", &p, &e) == AC_OK && ac_preproc_nops(p) == 0, "empty string = no ops");
    ac_preproc_destroy(&p);
    CHECK(ac_preproc_parse(" resize_side = 256 ; ; crop_fraction=0.875;", &p, &e) == AC_OK && ac_preproc_nops(p) == 2,
          "spaces and empty groups: %s", e.msg);
    ac_preproc_destroy(&p);

    expect_pp_error("resize_h=256,resize_w=256;flip=1", "unknown parameter 'flip'");
    expect_pp_error("resize_h=256,resize_w=256;flip=1", "column 27");
    expect_pp_error("resize_h=25x,resize_w=256", "'25x' is not an integer");
    expect_pp_error("resize_h=0,resize_w=256", "not an integer in 1..65536");
    expect_pp_error("mean_value=1:abc:3", "'abc' is not a finite number");
    expect_pp_error("mean_value=1::3", "(empty)");
    expect_pp_error("mean_value=nan", "not a finite number");
    expect_pp_error("scale=1:2:3:4:5", "more than 4 values");
    expect_pp_error("resize_h=256", "resize_h given without resize_w");
    expect_pp_error("crop_w=10", "crop_w given without crop_h");
    expect_pp_error("crop_fraction=1.5", "not in (0, 1]");
    expect_pp_error("bgr2rgb=yes", "'yes' is not True/False");
    expect_pp_error("resize_h", "has no '='");
    expect_pp_error("scale=1,scale=2", "appears twice");
    expect_pp_error("scale=1,,bgr2rgb=1", "empty parameter");

    const char *s;
    CHECK(ac_preproc_resolve("vgg_tensorflow", NULL, &s, &e) == AC_OK && strstr(s, "resize_side=256"), "template");
    CHECK(ac_preproc_resolve("user_defined", "scale=2", &s, &e) == AC_OK && !strcmp(s, "scale=2"), "user_defined");
    CHECK(ac_preproc_resolve("vgg", NULL, &s, &e) == AC_E_INVALID && strstr(e.msg, "unknown template 'vgg'"), "%s",
          e.msg);
    /* every template parses */
    const char *names[] = {"vgg_tensorflow", "ssd_vgg_tensorflow", "ssd_inception_tensorflow"};
    for (int i = 0; i < 3; i++) {
        ac_preproc_resolve(names[i], NULL, &s, &e);
        CHECK(ac_preproc_parse(s, &p, &e) == AC_OK, "%s: %s", names[i], e.msg);
        int h, w;
        CHECK(ac_preproc_out_size(p, 300, 400, 3, &h, &w, "x", &e) == AC_OK && h == 224 && w == 224,
              "%s gives %dx%d", names[i], w, h);
        ac_preproc_destroy(&p);
    }
}

static void test_resize(void)
{
    /* 2x2 -> 4x4, half-pixel centres, by hand: source coordinate of output
     * pixel o is (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to
     * [0, 1]: weights of the second pixel 0, 0.25, 0.75, 1. */
    float src[4] = {0, 10, 20, 30}, dst[16];
    ac_resize_bilinear_f32(src, 2, 2, 1, dst, 4, 4);
    const float wgt[4] = {0, 0.25f, 0.75f, 1};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            CHECK(fabsf(dst[y * 4 + x] - (20 * wgt[y] + 10 * wgt[x])) < 1e-6f, "up (%d,%d) = %g", y, x, dst[y * 4 + x]);
    /* 4 -> 2 (one row): centres at 0.5 and 2.5: averages of neighbours */
    float row[4] = {0, 4, 8, 16}, out[2];
    ac_resize_bilinear_f32(row, 1, 4, 1, out, 1, 2);
    CHECK(out[0] == 2.0f && out[1] == 12.0f, "down %g %g", out[0], out[1]);
    /* 3 channels move together */
    float rgb[6] = {0, 100, 200, 10, 110, 210}, o3[9];
    ac_resize_bilinear_f32(rgb, 1, 2, 3, o3, 1, 3);
    /* x: (0.5)*2/3-0.5 = -1/6 -> 0; 1.5*2/3-0.5 = 0.5; 2.5*2/3-0.5 = 7/6 -> clamp */
    CHECK(o3[0] == 0 && o3[1] == 100 && o3[2] == 200 && o3[3] == 5 && o3[4] == 105 && o3[6] == 10 && o3[8] == 210,
          "rgb %g %g %g", o3[3], o3[4], o3[5]);
}

static void test_preproc_run(void)
{
    /* 4x4 BGR image with B=10*y+x, G=100, R=200 */
    uint8_t px[4 * 4 * 3];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            px[(y * 4 + x) * 3] = (uint8_t)(10 * y + x);
            px[(y * 4 + x) * 3 + 1] = 100;
            px[(y * 4 + x) * 3 + 2] = 200;
        }
    ac_image img = {4, 4, 3, px, NULL};
    ac_preproc *p;
    ac_err e = {0};
    ac_preproc_parse("crop_h=2,crop_w=2;mean_value=1:2:3,scale=0.5:1:2;bgr2rgb=True", &p, &e);
    float nchw[12], nhwc[12];
    CHECK(ac_preproc_run(p, &img, 3, AC_LAYOUT_NCHW, 2, 2, nchw, "img", &e) == AC_OK, "%s", e.msg);
    CHECK(ac_preproc_run(p, &img, 3, AC_LAYOUT_NHWC, 2, 2, nhwc, "img", &e) == AC_OK, "%s", e.msg);
    /* centre crop = rows/cols 1..2; channel 0 after the swap is R: (200-3)*2 */
    CHECK(nchw[0] == 394 && nchw[4] == 98 && nchw[8] == (11 - 1) * 0.5f && nchw[11] == (22 - 1) * 0.5f,
          "nchw %g %g %g %g", nchw[0], nchw[4], nchw[8], nchw[11]);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            CHECK(nhwc[i * 3 + k] == nchw[k * 4 + i], "layout k=%d i=%d", k, i);
    CHECK(ac_preproc_run(p, &img, 3, AC_LAYOUT_NCHW, 3, 3, nchw, "img.jpg", &e) == AC_E_INVALID &&
              strstr(e.msg, "img.jpg") && strstr(e.msg, "samples must be 3x3"),
          "%s", e.msg);
    ac_preproc_destroy(&p);
    ac_preproc_parse("crop_h=8,crop_w=2", &p, &e);
    CHECK(ac_preproc_run(p, &img, 3, AC_LAYOUT_NCHW, 0, 0, nchw, "img.jpg", &e) == AC_E_INVALID &&
              strstr(e.msg, "larger than the 4x4"),
          "%s", e.msg);
    ac_preproc_destroy(&p);
    ac_preproc_parse("mean_value=1:2:3", &p, &e);
    float g[16];
    CHECK(ac_preproc_run(p, &img, 1, AC_LAYOUT_NCHW, 4, 4, g, "img.jpg", &e) == AC_E_INVALID &&
              strstr(e.msg, "3 mean_value"),
          "%s", e.msg);
    ac_preproc_destroy(&p);
    /* gray out of BGR: Pillow's L weights; resize_side keeps the aspect */
    ac_preproc_parse("resize_side=2", &p, &e);
    int oh, ow;
    CHECK(ac_preproc_out_size(p, 4, 8, 1, &oh, &ow, "x", &e) == AC_OK && oh == 2 && ow == 4, "side %dx%d", ow, oh);
    CHECK(ac_preproc_out_size(p, 9, 3, 1, &oh, &ow, "x", &e) == AC_OK && oh == 6 && ow == 2, "side %dx%d", ow, oh);
    ac_preproc_destroy(&p);
    ac_preproc_parse("", &p, &e);
    CHECK(ac_preproc_run(p, &img, 1, AC_LAYOUT_NCHW, 4, 4, g, "x", &e) == AC_OK &&
              g[0] == ac_bgr_to_gray(0, 100, 200),
          "gray %g", g[0]);
    ac_preproc_destroy(&p);
    /* crop_fraction, TF central_crop arithmetic: start = int((10 - 5) / 2) = 2 -> 6 rows;
     * int((7 - 3.5) / 2) = 1 -> 5 columns */
    ac_preproc_parse("crop_fraction=0.5", &p, &e);
    CHECK(ac_preproc_out_size(p, 10, 7, 3, &oh, &ow, "x", &e) == AC_OK && oh == 6 && ow == 5, "fraction %dx%d", ow,
          oh);
    ac_preproc_destroy(&p);

    /* Boxes follow the geometry: 200x100 (WxH) -> resize 80x40 (x0.4) -> centre
     * crop 40x40 (left (80-40)/2 = 20, top 0). */
    ac_preproc_parse("resize_h=40,resize_w=80;mean_value=1,scale=2;crop_h=40,crop_w=40", &p, &e);
    float x1 = 50, y1 = 25, x2 = 150, y2 = 75;
    CHECK(ac_preproc_map_box(p, 100, 200, &x1, &y1, &x2, &y2, "x", &e) == 1 && x1 == 0 && x2 == 40 && y1 == 10 &&
              y2 == 30,
          "mapped box %g,%g,%g,%g", x1, y1, x2, y2); /* 20..60 shifted to 0..40, clipped at 40 */
    x1 = 0, y1 = 0, x2 = 40, y2 = 100; /* wholly left of the crop: cut away */
    CHECK(ac_preproc_map_box(p, 100, 200, &x1, &y1, &x2, &y2, "x", &e) == 0, "box outside the crop kept");
    ac_preproc_destroy(&p);
    ac_preproc_parse("crop_h=40,crop_w=40", &p, &e);
    x1 = 10, y1 = 10, x2 = 20, y2 = 20; /* a crop larger than the image is an error, as for pixels */
    CHECK(ac_preproc_map_box(p, 30, 30, &x1, &y1, &x2, &y2, "small.jpg", &e) < 0 && strstr(e.msg, "small.jpg"),
          "crop error: %s", e.msg);
    ac_preproc_destroy(&p);
    ac_preproc_parse("resize_side=50", &p, &e); /* 200x100 -> 100x50: x0.5 both ways */
    x1 = 50, y1 = 25, x2 = 150, y2 = 75;
    CHECK(ac_preproc_map_box(p, 100, 200, &x1, &y1, &x2, &y2, "x", &e) == 1 && x1 == 25 && x2 == 75 && y1 == 12.5f &&
              y2 == 37.5f,
          "resize_side box %g,%g,%g,%g", x1, y1, x2, y2);
    ac_preproc_destroy(&p);
}

/* ---------------------------------------------------------------- lists and labels */

static void test_imagelist(void)
{
    ac_imagelist *l;
    ac_err e = {0};
    const char *t = "# comment\n./data/a.JPEG, 472\nb c.jpg 7\r\n\n/abs/d.png\t3\n";
    CHECK(ac_imagelist_parse(t, strlen(t), "list.txt", "/base", &l, &e) == AC_OK, "%s", e.msg);
    if (l) {
        CHECK(l->count == 3 && l->has_labels, "count %lld", (long long)l->count);
        CHECK(!strcmp(l->paths[0], "/base/./data/a.JPEG") && l->labels[0] == 472, "%s", l->paths[0]);
        CHECK(!strcmp(l->paths[1], "/base/b c.jpg") && l->labels[1] == 7, "%s", l->paths[1]);
        CHECK(!strcmp(l->paths[2], "/abs/d.png") && l->labels[2] == 3 && l->lines[2] == 5, "%s", l->paths[2]);
        ac_imagelist_destroy(&l);
    }
    t = "my image.jpg\nother.jpg\n";
    CHECK(ac_imagelist_parse(t, strlen(t), "l", NULL, &l, &e) == AC_OK && !l->has_labels &&
              !strcmp(l->paths[0], "my image.jpg"),
          "%s", e.msg);
    ac_imagelist_destroy(&l);
    t = "a.jpg 1\nb.jpg\n";
    CHECK(ac_imagelist_parse(t, strlen(t), "l.txt", NULL, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "l.txt line 2 has no label but line 1 has one"),
          "%s", e.msg);
    t = "a.jpg, x1\n";
    CHECK(ac_imagelist_parse(t, strlen(t), "l.txt", NULL, &l, &e) == AC_E_INVALID && strstr(e.msg, "line 1"), "%s",
          e.msg);
    t = "\n# only\n";
    CHECK(ac_imagelist_parse(t, strlen(t), "l.txt", NULL, &l, &e) == AC_E_INVALID && strstr(e.msg, "names no image"),
          "%s", e.msg);
}

static void test_labels(void)
{
    ac_labels *l;
    ac_err e = {0};
    int64_t b4[2] = {4, 2};
    const char *t = "3,13,4,6\n1, 2\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b4, 2, &l, &e) == AC_OK, "%s", e.msg);
    CHECK(ac_labels_kind(l) == AC_LABEL_CLASS && ac_labels_count(l) == 6 && ac_labels_class(l, 1) == 13 &&
              ac_labels_class(l, 5) == 2,
          "class labels");
    ac_labels_destroy(&l);
    t = "3,13,4\n1,2\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b4, 2, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "line 1 has 3 labels but its record holds 4"),
          "%s", e.msg);
    t = "3,x,4,6\n1,2\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b4, 2, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "line 1, column 3: 'x'"),
          "%s", e.msg);
    t = "1\n2\n3\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b4, 2, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "has 3 lines; expected 2") && strstr(e.msg, "or 6"),
          "%s", e.msg);
    /* detection: one line per image; empty line = no box */
    int64_t b1[3] = {1, 1, 1};
    t = "0,1,2,3,4;5,10,20,30.5,40\n\n2,0,0,1,1\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b1, 3, &l, &e) == AC_OK, "%s", e.msg);
    const ac_box *bx;
    CHECK(ac_labels_kind(l) == AC_LABEL_BOXES && ac_labels_boxes(l, 0, &bx) == 2 && bx[1].cls == 5 &&
              bx[1].x2 == 30.5f && ac_labels_boxes(l, 1, &bx) == 0 && ac_labels_boxes(l, 2, &bx) == 1,
          "boxes");
    char *out = NULL;
    size_t on = 0;
    FILE *f = open_memstream(&out, &on);
    for (int i = 0; i < 3; i++)
        ac_labels_write_record(l, i, 1, f);
    fclose(f);
    CHECK(!strcmp(out, "0,1,2,3,4;5,10,20,30.5,40\n\n2,0,0,1,1\n"), "written '%s'", out);
    free(out);
    ac_labels_destroy(&l);
    t = "0,1,2,3\n\n\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b1, 3, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "has 4 fields"),
          "%s", e.msg);
    t = "0,5,2,3,4\n\n\n";
    CHECK(ac_labels_parse_datalabel(t, strlen(t), "data.label", b1, 3, &l, &e) == AC_E_INVALID &&
              strstr(e.msg, "x1 <= x2"),
          "%s", e.msg);
    /* YOLO */
    ac_box *yb;
    int nb;
    t = "1 0.5 0.5 0.5 0.25\n\n7 0.1 0.2 0.2 0.2\n";
    CHECK(ac_labels_parse_yolo(t, strlen(t), "a.txt", 200, 100, &yb, &nb, &e) == AC_OK && nb == 2, "%s", e.msg);
    CHECK(yb[0].cls == 1 && yb[0].x1 == 50 && yb[0].x2 == 150 && yb[0].y1 == 37.5f && yb[0].y2 == 62.5f, "yolo box");
    free(yb);
    t = "1 0.5 0.5 0.5\n";
    CHECK(ac_labels_parse_yolo(t, strlen(t), "a.txt", 200, 100, &yb, &nb, &e) == AC_E_INVALID &&
              strstr(e.msg, "a.txt: line 1") && strstr(e.msg, "5 fields"),
          "%s", e.msg);
}

/* ---------------------------------------------------------------- records */

static void test_records(void)
{
    float a[2 * 3] = {1, 2, 3, 4, 5, 6};
    uint8_t b[2] = {7, 8};
    ac_rec_tensor t[2] = {{AC_REC_F32, 2, {2, 3}, (const uint8_t *)a, sizeof a},
                          {AC_REC_U8, 1, {2}, b, sizeof b}};
    uint8_t *buf;
    size_t len;
    ac_err e = {0};
    CHECK(ac_record_encode(t, 2, &buf, &len, &e) == AC_OK, "%s", e.msg);
    ac_record r;
    CHECK(ac_record_decode(buf, len, "rec", &r, &e) == AC_OK, "%s", e.msg);
    CHECK(r.n == 2 && r.batch == 2 && r.t[0].rank == 2 && r.t[0].dims[1] == 3 && r.t[1].dtype == AC_REC_U8 &&
              r.t[0].data >= buf && r.t[0].data < buf + len,
          "decoded record");
    float f[3];
    ac_rec_to_f32(&r.t[0], 3, 3, f);
    CHECK(f[0] == 4 && f[2] == 6, "sample 1");
    ac_rec_to_f32(&r.t[1], 1, 1, f);
    CHECK(f[0] == 8, "u8");
    /* every truncation is an error, never a crash */
    int all = 1;
    for (size_t n = 0; n < len; n++)
        all &= ac_record_decode(buf, n, "rec", &r, &e) == AC_E_INVALID;
    CHECK(all, "truncations rejected");
    free(buf);
    /* hostile array size: 0xdd ffffffff in a few bytes */
    const uint8_t hostile[] = {0x83, 0xa6, 'f', 'o', 'r', 'm', 'a', 't', 0xdd, 0xff, 0xff, 0xff, 0xff};
    CHECK(ac_record_decode(hostile, sizeof hostile, "rec", &r, &e) == AC_E_INVALID, "hostile");
    /* byte count mismatch */
    t[0].nbytes = 20;
    ac_record_encode(t, 1, &buf, &len, &e);
    CHECK(ac_record_decode(buf, len, "db record 3", &r, &e) == AC_E_INVALID &&
              strstr(e.msg, "db record 3: tensors[0].data has 20 bytes; shape and dtype float32 need 24"),
          "%s", e.msg);
    free(buf);
    t[0].nbytes = sizeof a;
    t[1].dims[0] = 1;
    t[1].nbytes = 1;
    ac_record_encode(t, 2, &buf, &len, &e);
    CHECK(ac_record_decode(buf, len, "r", &r, &e) == AC_E_INVALID && strstr(e.msg, "tensors[1] has batch 1"), "%s",
          e.msg);
    free(buf);
}

/* ---------------------------------------------------------------- files */

static int write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int gray)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    int rc = tjCompress2(tj, rgb, w, 0, h, gray ? TJPF_GRAY : TJPF_RGB, &jpg, &n, gray ? TJSAMP_GRAY : TJSAMP_444,
                         95, 0);
    if (!rc)
        write_file(path, jpg, n);
    tjFree(jpg);
    tjDestroy(tj);
    return rc;
}

static int write_png(const char *path, const uint8_t *rgb, int w, int h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = PNG_FORMAT_RGB;
    return png_image_write_to_file(&im, path, 0, rgb, 0, NULL) ? 0 : -1;
}

static void make_rgb(uint8_t *p, int w, int h, int seed)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3] = (uint8_t)(x * 7 + seed * 31);
            p[(y * w + x) * 3 + 1] = (uint8_t)(y * 5 + seed);
            p[(y * w + x) * 3 + 2] = (uint8_t)((x + y) * 3);
        }
}

static int same_floats(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }

static void test_decode(void)
{
    uint8_t rgb[16 * 8 * 3];
    make_rgb(rgb, 16, 8, 1);
    write_png(tpath("d.png"), rgb, 16, 8);
    uint8_t *buf;
    size_t len;
    ac_err e = {0};
    ac_image img;
    ac_image_decoder *d = ac_image_decoder_new();
    ac_file_read(tpath("d.png"), &buf, &len, &e);
    CHECK(ac_image_decode(d, buf, len, 3, "d.png", &img, &e) == AC_OK, "%s", e.msg);
    CHECK(img.w == 16 && img.h == 8 && img.c == 3 && img.u8[0] == rgb[2] && img.u8[2] == rgb[0] &&
              !memcmp(img.u8 + 3 * 17, (uint8_t[]){rgb[3 * 17 + 2], rgb[3 * 17 + 1], rgb[3 * 17]}, 3),
          "PNG decodes losslessly to BGR");
    ac_image_free(&img);
    CHECK(ac_image_decode(d, buf, len, 1, "d.png", &img, &e) == AC_OK &&
              img.u8[5] == ac_bgr_to_gray(rgb[17], rgb[16], rgb[15]),
          "PNG gray");
    ac_image_free(&img);
    CHECK(ac_image_decode(d, buf, len / 2, 3, "d.png", &img, &e) == AC_E_INVALID && strstr(e.msg, "d.png: PNG"), "%s",
          e.msg);
    free(buf);
    write_jpeg(tpath("d.jpg"), rgb, 16, 8, 0);
    ac_file_read(tpath("d.jpg"), &buf, &len, &e);
    CHECK(ac_image_decode(d, buf, len, 3, "d.jpg", &img, &e) == AC_OK && img.w == 16, "%s", e.msg);
    ac_image_free(&img);
    CHECK(ac_image_decode(d, buf, len - 40, 3, "cut.jpg", &img, &e) == AC_E_INVALID &&
              strstr(e.msg, "cut.jpg: JPEG") && strstr(e.msg, "Premature end"),
          "truncated JPEG: %s", e.msg);
    buf[0] = 'G';
    CHECK(ac_image_decode(d, buf, len, 3, "x.gif", &img, &e) == AC_E_INVALID && strstr(e.msg, "not a JPEG"), "%s",
          e.msg);
    free(buf);
    ac_image_decoder_destroy(&d);
    CHECK(d == NULL, "decoder destroy");
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void test_image_dataset_and_lmdb(void)
{
    ac_err e = {0};
    mkdir(tpath("imgs"), 0755);
    char name[64];
    uint8_t rgb[40 * 30 * 3];
    for (int i = 0; i < 5; i++) {
        make_rgb(rgb, 40, 30, i);
        snprintf(name, sizeof name, "imgs/%02d.%s", i, i % 2 ? "png" : "jpg");
        if (i % 2)
            write_png(tpath(name), rgb, 40, 30);
        else
            write_jpeg(tpath(name), rgb, 40, 30, i == 4);
    }
    write_file(tpath("imgs/readme.txt"), "x", 1);
    const char *pp = "resize_h=24,resize_w=32;mean_value=103.94:116.78:123.68,scale=0.5,bgr2rgb=True;crop_h=16,crop_w=16";
    ac_dataset_opts o = {pp, AC_LAYOUT_NCHW, 3, 0, 0, NULL, 2};
    ac_dataset *ds = ac_dataset_open(tpath("imgs"), &o, &e);
    CHECK(ds != NULL, "open folder: %s", e.msg);
    if (!ds)
        return;
    int64_t dims[8];
    CHECK(ac_dataset_count(ds) == 5 && ac_dataset_sample_shape(ds, 0, dims) == 3 && dims[0] == 3 && dims[1] == 16 &&
              dims[2] == 16 && ac_dataset_label_kind(ds) == AC_LABEL_NONE,
          "folder: %lld samples", (long long)ac_dataset_count(ds));
    size_t per = ac_dataset_sample_elems(ds, 0);
    float *a = malloc(sizeof(float) * per * 5), *b = malloc(sizeof(float) * per * 5);
    CHECK(ac_dataset_read(ds, 0, 0, 5, a, &e) == AC_OK, "%s", e.msg);
    /* any thread count gives the same bytes; reading one by one too */
    ac_dataset_opts o1 = o;
    o1.nthreads = 1;
    ac_dataset *ds1 = ac_dataset_open(tpath("imgs"), &o1, &e);
    for (int i = 0; i < 5; i++)
        ac_dataset_read(ds1, 0, i, 1, b + (size_t)i * per, &e);
    CHECK(same_floats(a, b, per * 5), "1 thread, one by one == 2 threads");
    uint8_t h0[32], h1[32];
    CHECK(ac_dataset_hash(ds, h0, &e) == AC_OK && ac_dataset_hash(ds1, h1, &e) == AC_OK && !memcmp(h0, h1, 32),
          "hash does not depend on threads");
    ac_dataset_destroy(&ds1);
    /* a different preprocessing string changes the hash */
    ac_dataset_opts o2 = o;
    o2.preprocess = "resize_h=16,resize_w=16";
    ac_dataset *ds2 = ac_dataset_open(tpath("imgs"), &o2, &e);
    ac_dataset_hash(ds2, h1, &e);
    CHECK(memcmp(h0, h1, 32) != 0, "preprocessing is part of the hash");
    ac_dataset_destroy(&ds2);
    /* wrong model size */
    o2 = o;
    o2.height = o2.width = 224;
    CHECK(ac_dataset_open(tpath("imgs"), &o2, &e) == NULL && strstr(e.msg, "gives 16x16 (WxH) samples") &&
              strstr(e.msg, "00.jpg"),
          "%s", e.msg);

    /* folder -> LMDB -> bit-identical tensors */
    int64_t written, skipped;
    ac_dataset_write_opts wo = {2, 0, 0, NULL};
    CHECK(ac_dataset_write_lmdb(ds, tpath("db"), &wo, &written, &skipped, &e) == AC_OK && written == 5, "%s", e.msg);
    CHECK(ac_dataset_write_lmdb(ds, tpath("db"), &wo, &written, &skipped, &e) == AC_E_INVALID &&
              strstr(e.msg, "already exists"),
          "%s", e.msg);
    ac_dataset_opts lo = {0};
    ac_dataset *db = ac_dataset_open(tpath("db"), &lo, &e);
    CHECK(db != NULL, "open lmdb: %s", e.msg);
    if (db) {
        CHECK(ac_dataset_source_kind(db) == AC_DS_LMDB_TENSORS && ac_dataset_count(db) == 5 &&
                  ac_dataset_nrecords(db) == 3 && ac_dataset_sample_elems(db, 0) == per,
              "lmdb shape");
        memset(b, 0, sizeof(float) * per * 5);
        CHECK(ac_dataset_read(db, 0, 0, 5, b, &e) == AC_OK && same_floats(a, b, per * 5),
              "folder and its LMDB give bit-identical tensors");
        CHECK(ac_dataset_read(db, 0, 3, 2, b, &e) == AC_OK && same_floats(a + 3 * per, b, 2 * per),
              "random access across records");
        CHECK(ac_dataset_read(db, 0, 4, 2, b, &e) == AC_E_INVALID && strstr(e.msg, "outside"), "%s", e.msg);
        ac_dataset_destroy(&db);
    }
    lo.preprocess = "scale=2";
    CHECK(ac_dataset_open(tpath("db"), &lo, &e) == NULL && strstr(e.msg, "does not apply"), "%s", e.msg);

    /* list with labels; a missing file; a corrupt JPEG */
    const char *list = "imgs/00.jpg, 3\nimgs/01.png, 1\n";
    write_file(tpath("list.txt"), list, strlen(list));
    ac_dataset *dl = ac_dataset_open(tpath("list.txt"), &o, &e);
    CHECK(dl && ac_dataset_label_kind(dl) == AC_LABEL_CLASS && ac_labels_class(ac_dataset_labels(dl), 0) == 3, "%s",
          e.msg);
    if (dl) {
        CHECK(ac_dataset_read(dl, 0, 0, 2, b, &e) == AC_OK && same_floats(a, b, 2 * per), "list == folder");
        wo.batch = 2;
        CHECK(ac_dataset_write_lmdb(dl, tpath("dbl"), &wo, &written, &skipped, &e) == AC_OK, "%s", e.msg);
        ac_dataset_destroy(&dl);
        lo.preprocess = NULL;
        dl = ac_dataset_open(tpath("dbl"), &lo, &e);
        CHECK(dl && ac_dataset_label_kind(dl) == AC_LABEL_CLASS && ac_labels_class(ac_dataset_labels(dl), 1) == 1,
              "labels survive the LMDB: %s", e.msg);
        ac_dataset_destroy(&dl);
    }
    list = "imgs/00.jpg 3\nimgs/nope.jpg 1\n";
    write_file(tpath("list2.txt"), list, strlen(list));
    CHECK(ac_dataset_open(tpath("list2.txt"), &o, &e) == NULL && strstr(e.msg, "list2.txt line 2") &&
              strstr(e.msg, "nope.jpg"),
          "%s", e.msg);
    /* truncated JPEG in a folder: read fails naming it; export skips it when asked */
    uint8_t *jb;
    size_t jn;
    ac_file_read(tpath("imgs/02.jpg"), &jb, &jn, &e);
    write_file(tpath("imgs/02.jpg"), jb, jn / 2);
    free(jb);
    ds2 = ac_dataset_open(tpath("imgs"), &o, &e);
    CHECK(ds2 && ac_dataset_read(ds2, 0, 0, 5, b, &e) == AC_E_INVALID && strstr(e.msg, "02.jpg"), "%s", e.msg);
    CHECK(ac_dataset_write_lmdb(ds2, tpath("db2"), &wo, &written, &skipped, &e) == AC_E_INVALID, "stops");
    struct stat st;
    CHECK(stat(tpath("db2"), &st) != 0, "no half-written LMDB after a failure");
    FILE *devnull = fopen("/dev/null", "w");
    ac_dataset_write_opts wskip = {2, 0, 1, devnull};
    CHECK(ac_dataset_write_lmdb(ds2, tpath("db2"), &wskip, &written, &skipped, &e) == AC_OK && written == 4 &&
              skipped == 1,
          "skip: %s", e.msg);
    fclose(devnull);
    ac_dataset_destroy(&ds2);
    /* empty folder */
    mkdir(tpath("empty"), 0755);
    CHECK(ac_dataset_open(tpath("empty"), &o, &e) == NULL && strstr(e.msg, "holds no .jpg/.jpeg/.png"), "%s", e.msg);

    /* shards cover the range exactly, deterministically */
    int64_t total = 0, prev = 0;
    for (int i = 0; i < 3; i++) {
        int64_t s0, s1;
        ac_shard_range(10, 3, i, &s0, &s1);
        CHECK(s0 == prev, "shard %d starts at %lld", i, (long long)s0);
        total += s1 - s0;
        prev = s1;
    }
    CHECK(total == 10 && prev == 10, "shards cover 10");
    ac_shard sh;
    CHECK(ac_dataset_shard(ds, 2, 1, &sh, &e) == AC_OK && sh.begin == 2 && sh.end == 5 && !memcmp(sh.dataset, h0, 32),
          "shard 1 of 2");
    CHECK(ac_dataset_shard(ds, 2, 2, &sh, &e) == AC_E_INVALID, "no shard 2 of 2");
    CHECK(ac_dataset_limit(1300, 0, 32) == 1300 && ac_dataset_limit(1300, 10, 32) == 320 &&
              ac_dataset_limit(100, 10, 32) == 100,
          "iterations limit");
    free(a);
    free(b);
    ac_dataset_destroy(&ds);
}

static void test_caffe_lmdb(void)
{
    ac_err e = {0};
    ac_lmdb_writer *w;
    CHECK(ac_lmdb_writer_new(tpath("caffe"), 0, &w, &e) == AC_OK, "%s", e.msg);
    /* raw CHW BGR 2x3 and an encoded PNG */
    uint8_t chw[3 * 2 * 3];
    for (int i = 0; i < 18; i++)
        chw[i] = (uint8_t)(i * 10);
    uint8_t *val;
    size_t vn;
    ac_datum_encode(3, 2, 3, chw, sizeof chw, 0, 4, &val, &vn, &e);
    ac_lmdb_writer_put_raw(w, val, vn, &e);
    free(val);
    uint8_t rgb[3 * 2 * 3];
    for (int y = 0; y < 2; y++) /* the same picture, RGB HWC */
        for (int x = 0; x < 3; x++)
            for (int k = 0; k < 3; k++)
                rgb[(y * 3 + x) * 3 + k] = chw[(2 - k) * 6 + y * 3 + x];
    write_png(tpath("c.png"), rgb, 3, 2);
    uint8_t *png;
    size_t pn;
    ac_file_read(tpath("c.png"), &png, &pn, &e);
    ac_datum_encode(3, 2, 3, png, pn, 1, 9, &val, &vn, &e);
    ac_lmdb_writer_put_raw(w, val, vn, &e);
    free(val);
    free(png);
    CHECK(ac_lmdb_writer_commit(w, &e) == AC_OK, "%s", e.msg);
    ac_lmdb_writer_destroy(&w);
    ac_dataset_opts o = {"", AC_LAYOUT_NCHW, 3, 0, 0, NULL, 1};
    ac_dataset *ds = ac_dataset_open(tpath("caffe"), &o, &e);
    CHECK(ds && ac_dataset_source_kind(ds) == AC_DS_LMDB_CAFFE && ac_dataset_count(ds) == 2, "caffe open: %s", e.msg);
    if (!ds)
        return;
    float out[2 * 18];
    CHECK(ac_dataset_read(ds, 0, 0, 2, out, &e) == AC_OK, "%s", e.msg);
    int same = 1;
    for (int i = 0; i < 18; i++)
        same &= out[i] == chw[i] && out[18 + i] == chw[i];
    CHECK(same, "raw and encoded Datums read back as the same CHW BGR pixels");
    CHECK(ac_dataset_label_kind(ds) == AC_LABEL_CLASS && ac_labels_class(ac_dataset_labels(ds), 1) == 9, "labels");
    ac_dataset_destroy(&ds);
    /* a Datum whose data does not match its size */
    ac_lmdb_writer_new(tpath("caffe_bad"), 0, &w, &e);
    ac_datum_encode(3, 2, 4, chw, sizeof chw, 0, 1, &val, &vn, &e);
    ac_lmdb_writer_put_raw(w, val, vn, &e);
    free(val);
    ac_lmdb_writer_commit(w, &e);
    ac_lmdb_writer_destroy(&w);
    CHECK(ac_dataset_open(tpath("caffe_bad"), &o, &e) == NULL && strstr(e.msg, "record 0") &&
              strstr(e.msg, "18 bytes; channels x height x width = 24"),
          "%s", e.msg);
    /* an LMDB of our records with a wrong-shape record and a label count mismatch */
    float a[4] = {1, 2, 3, 4};
    ac_rec_tensor t = {AC_REC_F32, 2, {1, 4}, (const uint8_t *)a, 16};
    ac_lmdb_writer_new(tpath("mixed"), 0, &w, &e);
    ac_lmdb_writer_put(w, &t, 1, NULL, 0, &e);
    t.dims[0] = 2, t.dims[1] = 2;
    ac_lmdb_writer_put(w, &t, 1, NULL, 0, &e);
    ac_lmdb_writer_commit(w, &e);
    ac_lmdb_writer_destroy(&w);
    ac_dataset_opts lo = {0};
    CHECK(ac_dataset_open(tpath("mixed"), &lo, &e) == NULL && strstr(e.msg, "record 1") &&
              strstr(e.msg, "sample shape [2] float32 differs from record 0's [4]"),
          "%s", e.msg);
    t.dims[0] = 1, t.dims[1] = 4;
    ac_lmdb_writer_new(tpath("lab"), 0, &w, &e);
    ac_lmdb_writer_put(w, &t, 1, NULL, 0, &e);
    ac_lmdb_writer_put(w, &t, 1, NULL, 0, &e);
    ac_lmdb_writer_commit(w, &e);
    ac_lmdb_writer_destroy(&w);
    write_file(tpath("lab/data.label"), "1\n2,3\n", 6);
    CHECK(ac_dataset_open(tpath("lab"), &lo, &e) == NULL && strstr(e.msg, "data.label: line 2 has 2 labels"), "%s",
          e.msg);
    /* an uncommitted writer leaves nothing */
    ac_lmdb_writer_new(tpath("gone"), 0, &w, &e);
    ac_lmdb_writer_put(w, &t, 1, NULL, 0, &e);
    ac_lmdb_writer_destroy(&w);
    struct stat st;
    CHECK(stat(tpath("gone"), &st) != 0, "abandoned writer removed its files");
}

static void write_idx_gz(const char *path, const uint8_t *hdr, size_t hn, const uint8_t *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    gzwrite(f, hdr, (unsigned)hn);
    gzwrite(f, data, (unsigned)n);
    gzclose(f);
}

/* The same idx content from every gzip form: one member (read whole), two
 * concatenated members (streamed); damaged or cut gzip data is an error that
 * names the file. */
static void test_idx_gzip_forms(const uint8_t hi[16], const uint8_t px[12])
{
    ac_err e = {0};
    ac_idx one, two;
    CHECK(ac_idx_load(tpath("img.gz"), &one, &e) == AC_OK && one.nbytes == 12 && !memcmp(one.data, px, 12),
          "idx gzip: %s", e.msg);
    write_idx_gz(tpath("two.gz"), hi, 16, px, 5);
    gzFile f = gzopen(tpath("two.gz"), "ab"); /* a second member */
    gzwrite(f, px + 5, 7);
    gzclose(f);
    CHECK(ac_idx_load(tpath("two.gz"), &two, &e) == AC_OK && two.nbytes == 12 && !memcmp(two.data, px, 12),
          "idx two-member gzip: %s", e.msg);
    ac_idx_free(&one);
    ac_idx_free(&two);
    uint8_t *buf;
    size_t len;
    CHECK(ac_file_read(tpath("img.gz"), &buf, &len, &e) == AC_OK, "%s", e.msg);
    buf[len / 2] ^= 0xff;
    buf[len / 2 + 1] ^= 0x5a;
    write_file(tpath("bad.gz"), buf, len);
    CHECK(ac_idx_load(tpath("bad.gz"), &one, &e) != AC_OK && strstr(e.msg, "bad.gz"), "damaged gzip: %s", e.msg);
    write_file(tpath("cut.gz"), buf, len - 6);
    CHECK(ac_idx_load(tpath("cut.gz"), &one, &e) != AC_OK && strstr(e.msg, "cut.gz"), "cut gzip: %s", e.msg);
    free(buf);
}

static void test_idx(void)
{
    ac_err e = {0};
    uint8_t hi[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2}, px[12];
    for (int i = 0; i < 12; i++)
        px[i] = (uint8_t)(i * 20);
    write_idx_gz(tpath("img.gz"), hi, 16, px, 12);
    uint8_t hl[8] = {0, 0, 8, 1, 0, 0, 0, 3}, lab[3] = {7, 8, 9};
    write_file(tpath("lab.idx"), hl, 8); /* plain (not gzip) works too */
    FILE *f = fopen(tpath("lab.idx"), "ab");
    fwrite(lab, 1, 3, f);
    fclose(f);
    ac_dataset_opts o = {"mean_value=10,scale=0.5", AC_LAYOUT_NCHW, 0, 0, 0, NULL, 1};
    ac_dataset *ds = ac_dataset_open_idx(tpath("img.gz"), tpath("lab.idx"), &o, &e);
    CHECK(ds != NULL, "idx: %s", e.msg);
    if (ds) {
        int64_t d[8];
        float out[12];
        CHECK(ac_dataset_count(ds) == 3 && ac_dataset_sample_shape(ds, 0, d) == 3 && d[0] == 1 && d[1] == 2 &&
                  d[2] == 2,
              "idx shape");
        CHECK(ac_dataset_read(ds, 0, 0, 3, out, &e) == AC_OK && out[5] == (100 - 10) * 0.5f, "idx pixels %g", out[5]);
        CHECK(ac_labels_class(ac_dataset_labels(ds), 2) == 9, "idx labels");
        ac_dataset_destroy(&ds);
    }
    hl[7] = 4;
    write_idx_gz(tpath("lab4.gz"), hl, 8, (uint8_t[]){1, 2, 3, 4}, 4);
    CHECK(ac_dataset_open_idx(tpath("img.gz"), tpath("lab4.gz"), &o, &e) == NULL &&
              strstr(e.msg, "4 labels (1-d) for 3 images"),
          "%s", e.msg);
    /* A file shorter than its header: the samples it holds read, the next
     * one is an error naming the file (the data is decompressed as far as
     * samples are read); a whole load says so at once. */
    write_idx_gz(tpath("short.gz"), hi, 16, px, 11);
    ds = ac_dataset_open_idx(tpath("short.gz"), NULL, &o, &e);
    CHECK(ds != NULL, "short idx opens: %s", e.msg);
    if (ds) {
        float out[12];
        CHECK(ac_dataset_read(ds, 0, 0, 2, out, &e) == AC_OK && out[5] == (100 - 10) * 0.5f, "short idx: %s", e.msg);
        CHECK(ac_dataset_read(ds, 0, 2, 1, out, &e) != AC_OK && strstr(e.msg, "short.gz") &&
                  strstr(e.msg, "ends after 11 bytes; the header promises 12"),
              "short idx, last sample: %s", e.msg);
        ac_dataset_destroy(&ds);
    }
    ac_idx whole;
    CHECK(ac_idx_load(tpath("short.gz"), &whole, &e) != AC_OK && strstr(e.msg, "promises 12 data bytes"), "%s",
          e.msg);
    test_idx_gzip_forms(hi, px);
}

/* YOLO labels come out in pixels of the samples, and travel with the images
 * in a farm blob: the unpacked copy opens with the same boxes and hash. */
static void test_yolo_labels_and_blob(void)
{
    ac_err e = {0};
    mkdir(tpath("yimgs"), 0755);
    mkdir(tpath("ylabels"), 0755);
    uint8_t rgb[200 * 100 * 3];
    make_rgb(rgb, 200, 100, 7);
    write_jpeg(tpath("yimgs/a.jpg"), rgb, 200, 100, 0);
    write_jpeg(tpath("yimgs/b.jpg"), rgb, 200, 100, 0); /* no label file: no objects */
    const char *lab = "3 0.5 0.5 0.5 0.5\n1 0.1 0.5 0.2 1.0\n"; /* the second is cut away by the crop */
    write_file(tpath("ylabels/a.txt"), lab, strlen(lab));
    ac_dataset_opts o = {"resize_h=40,resize_w=80;crop_h=40,crop_w=40", AC_LAYOUT_NCHW, 3, 0, 0, tpath("ylabels"), 1};
    ac_dataset *ds = ac_dataset_open(tpath("yimgs"), &o, &e);
    CHECK(ds != NULL, "open with YOLO labels: %s", e.msg);
    if (!ds)
        return;
    const ac_box *b;
    CHECK(ac_dataset_label_kind(ds) == AC_LABEL_BOXES && ac_labels_boxes(ac_dataset_labels(ds), 0, &b) == 1 &&
              b[0].cls == 3 && b[0].x1 == 0 && b[0].x2 == 40 && b[0].y1 == 10 && b[0].y2 == 30,
          "YOLO box in sample pixels");
    CHECK(ac_labels_boxes(ac_dataset_labels(ds), 1, &b) == 0, "unlabelled image has no boxes");
    uint8_t h1[32], h2[32], bh[32];
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(ac_dataset_hash(ds, h1, &e) == AC_OK, "%s", e.msg);
    CHECK(ac_blob_pack_dataset(tpath("yimgs"), NULL, &o, &buf, &len, bh, &e) == 0 && !memcmp(bh, h1, 32),
          "pack with labels: %s", e.msg);
    ac_blob_dataset_paths bp;
    CHECK(buf && ac_blob_unpack_dataset(buf, len, tpath("yblob"), &bp, &e) == 0 && bp.labels[0], "unpack: %s",
          e.msg);
    ac_dataset_opts plain = o;
    plain.yolo_labels = NULL; /* the worker's options: the archive names its label folder */
    ac_dataset *copy = buf ? ac_blob_open_dataset(&bp, &plain, &e) : NULL;
    CHECK(copy && ac_dataset_hash(copy, h2, &e) == AC_OK && !memcmp(h1, h2, 32), "unpacked copy hash: %s", e.msg);
    CHECK(copy && ac_labels_boxes(ac_dataset_labels(copy), 0, &b) == 1 && b[0].x2 == 40, "unpacked copy boxes");
    free(buf);
    ac_dataset_destroy(&copy);
    ac_dataset_destroy(&ds);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ac_datasets_selftest.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_sha256();
    test_preproc_parse();
    test_resize();
    test_preproc_run();
    test_imagelist();
    test_labels();
    test_records();
    test_decode();
    test_image_dataset_and_lmdb();
    test_caffe_lmdb();
    test_idx();
    test_yolo_labels_and_blob();
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("datasets selftest: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
