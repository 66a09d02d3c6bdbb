/* ac_preproc: the preprocessing string users already write, parsed into a list
 * of ops and applied to decoded images.
 *
 *   ops separated by ';', parameters by ',', name=value, several values by ':'
 *   resize_h=256,resize_w=256;mean_value=103.94:116.78:123.68,scale=1.0,bgr2rgb=True;crop_h=224,crop_w=224
 *
 * Ops run in the order written. Within one ';' group the parameters form ops
 * (resize_h+resize_w = one resize, mean_value+scale = one standardisation) in
 * the order their first parameter appears. Images enter as BGR (or gray) and
 * every op works in float32; nothing is rounded back to 8 bits. */
#ifndef AC_PREPROC_H
#define AC_PREPROC_H

#include <stdio.h>

#include "ac_err.h"
#include "ac_image.h"

#define AC_PP_MAX_CH 4

typedef enum {
    AC_PP_RESIZE,        /* resize_h, resize_w: bilinear, half-pixel centres */
    AC_PP_RESIZE_SIDE,   /* resize_side: shorter side to N, aspect kept */
    AC_PP_CROP,          /* crop_h, crop_w: centre crop */
    AC_PP_CROP_FRACTION, /* crop_fraction: central fraction of both sides */
    AC_PP_STAND,         /* mean_value, scale: (x - mean) * scale */
    AC_PP_BGR2RGB        /* bgr2rgb: swap channels 0 and 2 */
} ac_pp_kind;

typedef struct {
    ac_pp_kind kind;
    int h, w;        /* RESIZE, CROP */
    int side;        /* RESIZE_SIDE */
    double fraction; /* CROP_FRACTION */
    int nmean, nscale;
    float mean[AC_PP_MAX_CH], scale[AC_PP_MAX_CH];
    int swap;        /* BGR2RGB: 1 for True */
} ac_pp_op;

typedef enum { AC_LAYOUT_NCHW = 0, AC_LAYOUT_NHWC = 1 } ac_layout;

typedef struct ac_preproc ac_preproc;

/* Parses text (NULL or "" = no ops). Errors name the op, the parameter, its
 * 1-based column in the string and the rule. */
int ac_preproc_parse(const char *text, ac_preproc **out, ac_err *err);
void ac_preproc_destroy(ac_preproc **p);

int ac_preproc_nops(const ac_preproc *p);
const ac_pp_op *ac_preproc_op(const ac_preproc *p, int i);
/* A canonical spelling (%.9g numbers): equal pipelines give equal strings. */
const char *ac_preproc_canonical(const ac_preproc *p);

/* Template names for --image_data_preproccess. "user_defined" (or NULL/"")
 * returns user_str; an unknown name is an error listing the known ones. */
int ac_preproc_resolve(const char *template_name, const char *user_str, const char **out, ac_err *err);
/* --print_all_image_data_preproccess_detail */
void ac_preproc_print_all(FILE *f);

/* Output size for an in_h x in_w image; errors for crops larger than the image. */
int ac_preproc_out_size(const ac_preproc *p, int in_h, int in_w, int channels, int *out_h, int *out_w,
                        const char *name, ac_err *err);

/* Maps a box given in pixels of an in_h x in_w image through the pipeline's
 * geometry (resizes scale it, crops shift it) into pixels of the output, and
 * clips it to the output. Returns 1 when something of the box is left, 0 when
 * the crops cut it away (or it has no area), negative on an error (a crop
 * larger than the image). Used to bring detection labels into the frame of
 * the network input. */
int ac_preproc_map_box(const ac_preproc *p, int in_h, int in_w, float *x1, float *y1, float *x2, float *y2,
                       const char *name, ac_err *err);

/* Runs the pipeline on img (any channel count; converted to `channels` first:
 * gray->BGR replicates, BGR->gray uses Pillow's L weights) and writes
 * channels x out_h x out_w floats in `layout`. out_h/out_w > 0 must match the
 * pipeline's result (an error names the image otherwise). */
int ac_preproc_run(const ac_preproc *p, const ac_image *img, int channels, ac_layout layout, int out_h,
                   int out_w, float *out, const char *name, ac_err *err);

/* The same with caller-owned working memory (one per thread), so buffers are
 * reused across images. */
typedef struct ac_preproc_work ac_preproc_work;
ac_preproc_work *ac_preproc_work_new(void);
void ac_preproc_work_destroy(ac_preproc_work **p);
int ac_preproc_run_work(const ac_preproc *p, ac_preproc_work *work, const ac_image *img, int channels,
                        ac_layout layout, int out_h, int out_w, float *out, const char *name, ac_err *err);

/* Bilinear resize of a float HWC image (exposed for the selftest): output pixel
 * centre (x+0.5)*in/out-0.5, clamped to [0, in-1] (OpenCV INTER_LINEAR and
 * PyTorch align_corners=False without antialias). */
void ac_resize_bilinear_f32(const float *src, int ih, int iw, int c, float *dst, int oh, int ow);

#endif
