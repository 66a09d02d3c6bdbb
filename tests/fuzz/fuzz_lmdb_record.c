/* Fuzz target: what an LMDB value or a data file can hold. The first byte
 * picks the decoder: 0 our msgpack tensor record, 1 a Caffe Datum (which may
 * embed a JPEG/PNG), 2 a JPEG/PNG file, 3 an idx file. A record that decodes
 * must have byte counts matching its shapes; every byte is touched so ASan
 * checks the bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_idx.h"
#include "ac_image.h"
#include "ac_lmdb.h"
#include "ac_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ac_image_decoder *dec;

static void touch(const void *p, size_t n)
{
    volatile uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s ^= ((const uint8_t *)p)[i];
    (void)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!dec && !(dec = ac_image_decoder_new()))
        abort();
    ac_err err;
    ac_err_clear(&err);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int rc;
    switch (data[0] % 4) {
    case 0: {
        /* copy: the decoder must not read past n even when the data is not at its end */
        uint8_t *buf = malloc(n ? n : 1);
        memcpy(buf, p, n);
        ac_record r;
        rc = ac_record_decode(buf, n, "rec", &r, &err);
        if (rc == AC_OK) {
            if (r.n < 1 || r.n > AC_REC_MAX_TENSORS || r.batch < 1)
                abort();
            for (int i = 0; i < r.n; i++) {
                size_t e = ac_rec_dtype_size(r.t[i].dtype);
                for (int d = 0; d < r.t[i].rank; d++)
                    e *= (size_t)r.t[i].dims[d];
                if (e != r.t[i].nbytes || r.t[i].dims[0] != r.batch || r.t[i].data < buf ||
                    r.t[i].data + r.t[i].nbytes > buf + n)
                    abort();
                touch(r.t[i].data, r.t[i].nbytes);
                float f[4];
                size_t per = ac_rec_sample_elems(&r.t[i]);
                if (per)
                    ac_rec_to_f32(&r.t[i], 0, per < 4 ? per : 4, f);
            }
        }
        free(buf);
        break;
    }
    case 1: {
        ac_image img;
        int32_t label;
        rc = ac_datum_decode(p, n, "datum", dec, 3, &img, &label, &err);
        if (rc == AC_OK)
            touch(img.u8 ? (void *)img.u8 : (void *)img.f32,
                  (size_t)img.h * img.w * img.c * (img.u8 ? 1 : sizeof(float)));
        ac_image_free(&img);
        break;
    }
    case 2: {
        ac_image img;
        rc = ac_image_decode(dec, p, n, data[0] & 4 ? 1 : 3, "img", &img, &err);
        if (rc == AC_OK)
            touch(img.u8, (size_t)img.h * img.w * img.c);
        ac_image_free(&img);
        break;
    }
    default: {
        ac_idx x;
        uint8_t *copy = malloc(n ? n : 1); /* ac_idx_parse takes its buffer */
        if (!copy)
            return 0;
        if (n)
            memcpy(copy, p, n);
        rc = ac_idx_parse(copy, n, "idx", &x, &err);
        if (rc == AC_OK)
            touch(x.data, x.nbytes);
        ac_idx_free(&x);
        break;
    }
    }
    if (rc != AC_OK && (err.code == AC_OK || !err.msg[0]))
        abort();
    return 0;
}
