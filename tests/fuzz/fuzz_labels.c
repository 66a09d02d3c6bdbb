/* Fuzz target: the label and list parsers. The first byte picks one:
 *   0: an ImageList file, 1: a YOLO txt label file, 2..: data.label for
 *   records whose batch sizes come from the next bytes.
 * Successful parses must be self-consistent (counts, box order). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_imagelist.h"
#include "ac_labels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failure(int rc, const ac_err *err)
{
    if (rc != AC_OK && (err->code == AC_OK || !err->msg[0]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ac_err err;
    ac_err_clear(&err);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] == 0) {
        ac_imagelist *l = NULL;
        int rc = ac_imagelist_parse(text, len, "list.txt", "/base", &l, &err);
        check_failure(rc, &err);
        if (rc == AC_OK) {
            if (!l || l->count < 1)
                abort();
            for (int64_t i = 0; i < l->count; i++)
                if (!l->paths[i][0] || (l->has_labels && l->labels[i] < 0))
                    abort();
        }
        ac_imagelist_destroy(&l);
    } else if (data[0] == 1) {
        ac_box *b = NULL;
        int n = 0;
        int rc = ac_labels_parse_yolo(text, len, "a.txt", 640, 480, &b, &n, &err);
        check_failure(rc, &err);
        for (int i = 0; rc == AC_OK && i < n; i++)
            if (!(b[i].x1 <= b[i].x2 && b[i].y1 <= b[i].y2) || b[i].cls < 0)
                abort();
        free(b);
    } else {
        if (len < 1)
            return 0;
        int64_t nrec = text[0] % 6, batch[6], total = 0;
        if (len < 1 + (size_t)nrec)
            return 0;
        for (int64_t r = 0; r < nrec; r++)
            total += batch[r] = 1 + (uint8_t)text[1 + r] % 4;
        ac_labels *l = NULL;
        int rc = ac_labels_parse_datalabel(text + 1 + nrec, len - 1 - (size_t)nrec, "data.label", batch, nrec, &l,
                                           &err);
        check_failure(rc, &err);
        if (rc == AC_OK) {
            if (ac_labels_count(l) != total)
                abort();
            for (int64_t i = 0; i < total; i++) {
                const ac_box *b;
                int n = ac_labels_boxes(l, i, &b);
                for (int k = 0; k < n; k++)
                    if (!(b[k].x1 <= b[k].x2 && b[k].y1 <= b[k].y2))
                        abort();
                if (ac_labels_kind(l) == AC_LABEL_CLASS && ac_labels_class(l, i) < 0)
                    abort();
            }
        }
        ac_labels_destroy(&l);
    }
    return 0;
}
