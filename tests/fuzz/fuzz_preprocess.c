/* Fuzz target: a preprocessing string (--data_preproccess_str). A string that
 * parses must re-parse from its canonical spelling to the same canonical
 * spelling; small pipelines are also run on a 13x17 BGR image. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_preproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    ac_preproc *p = NULL;
    ac_err err;
    ac_err_clear(&err);
    if (ac_preproc_parse(s, &p, &err) != AC_OK) {
        if (p || err.code == AC_OK || !err.msg[0])
            abort(); /* a failure must come with a status and a message */
        free(s);
        return 0;
    }
    ac_preproc *q = NULL;
    if (ac_preproc_parse(ac_preproc_canonical(p), &q, &err) != AC_OK ||
        strcmp(ac_preproc_canonical(p), ac_preproc_canonical(q)) != 0)
        abort(); /* canonical form must be stable */
    int small = 1;
    for (int i = 0; i < ac_preproc_nops(p); i++) {
        const ac_pp_op *op = ac_preproc_op(p, i);
        if (op->h > 64 || op->w > 64 || op->side > 64)
            small = 0;
    }
    if (small) {
        static uint8_t px[13 * 17 * 3];
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)(i * 7);
        ac_image img = {13, 17, 3, px, NULL};
        int h, w;
        for (int c = 1; c <= 3; c += 2) {
            if (ac_preproc_out_size(p, 13, 17, c, &h, &w, "img", &err) != AC_OK)
                continue;
            float *out = malloc(sizeof(float) * (size_t)h * w * c);
            if (out && ac_preproc_run(p, &img, c, AC_LAYOUT_NCHW, h, w, out, "img", &err) != AC_OK &&
                (err.code == AC_OK || !err.msg[0]))
                abort();
            free(out);
        }
    }
    ac_preproc_destroy(&q);
    ac_preproc_destroy(&p);
    free(s);
    return 0;
}
