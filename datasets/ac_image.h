/* ac_image: JPEG (libjpeg-turbo, TurboJPEG API) and PNG (libpng) decoding to
 * interleaved 8-bit pixels. Three channels come out in BGR order (the order the
 * preprocessing templates assume), one channel is gray. Gray, YCbCr, RGB and
 * CMYK/YCCK JPEGs are accepted; PNGs of any bit depth, palette or alpha (alpha
 * is dropped, 16-bit samples keep their high byte). */
#ifndef AC_IMAGE_H
#define AC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ac_err.h"

/* Largest image accepted: guards allocations against corrupt headers. */
#define AC_IMAGE_MAX_SIDE 32768
#define AC_IMAGE_MAX_PIXELS (1u << 28)

/* A decoded image (HWC). Exactly one of u8/f32 is set; f32 images come from
 * Caffe Datum float_data. */
typedef struct {
    int h, w, c;
    uint8_t *u8;
    float *f32;
} ac_image;

/* Holds the TurboJPEG handle; one per thread. */
typedef struct ac_image_decoder ac_image_decoder;

ac_image_decoder *ac_image_decoder_new(void);
void ac_image_decoder_destroy(ac_image_decoder **p);

/* Decodes buf into img (channels 1 = gray, 3 = BGR). name is used in errors. */
int ac_image_decode(ac_image_decoder *d, const uint8_t *buf, size_t len, int channels,
                    const char *name, ac_image *img, ac_err *err);
/* Width and height from the header only. */
int ac_image_probe(ac_image_decoder *d, const uint8_t *buf, size_t len, const char *name,
                   int *h, int *w, ac_err *err);
void ac_image_free(ac_image *img);

/* Whole-file read into a malloc'ed buffer. */
int ac_file_read(const char *path, uint8_t **buf, size_t *len, ac_err *err);

/* True for names ending in .jpg/.jpeg/.png (any case). */
int ac_image_has_image_ext(const char *name);

/* PIL's "L" conversion, so gray models see the values Pillow users get. */
static inline uint8_t ac_bgr_to_gray(uint8_t b, uint8_t g, uint8_t r)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

#endif
