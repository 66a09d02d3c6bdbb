/* Fuzz target: a buffer as an encoded metric partial (byte 0 picks the
 * metric, fuzz_metric_partial.h). Decoding must fail with a message or give a
 * partial that scores (or says why not), encodes, decodes again to the same
 * bytes, and merges into an empty partial. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_metric_partial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ac_metric_options o;
    fuzz_metric_options(data[0] % FUZZ_METRIC_COUNT, &o);
    ac_err err;
    ac_err_clear(&err);
    ac_metric *m = ac_metric_new(&o, &err);
    if (!m)
        abort(); /* the fixed options are valid */
    ac_metric_partial *p = NULL, *q = NULL, *e = NULL;
    if (ac_metric_partial_decode(m, data + 1, size - 1, &p, &err) != AC_OK) {
        if (p || err.code == AC_OK || !err.msg[0])
            abort(); /* a failure must come with a status and a message, and no partial */
        ac_metric_destroy(&m);
        return 0;
    }
    ac_metric_result r1, r2;
    ac_err_clear(&err);
    int s1 = ac_metric_score(p, &r1, &err);
    if (s1 != AC_OK && !err.msg[0])
        abort();
    if (s1 == AC_OK && !(r1.score >= 0 && r1.score <= 1))
        abort();
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    if (ac_metric_partial_encode(p, &b1, &n1, &err) != AC_OK)
        abort();
    if (ac_metric_partial_decode(m, b1, n1, &q, &err) != AC_OK)
        abort(); /* our own encoding of a valid partial must decode */
    if (ac_metric_partial_encode(q, &b2, &n2, &err) != AC_OK || n1 != n2 || memcmp(b1, b2, n1) != 0)
        abort(); /* and encode to the same bytes */
    e = ac_metric_partial_new(m, &err);
    if (!e || ac_metric_partial_merge(e, q, &err) != AC_OK)
        abort();
    if (s1 == AC_OK && (ac_metric_score(e, &r2, &err) != AC_OK || memcmp(&r1.score, &r2.score, sizeof r1.score) != 0))
        abort(); /* merging into an empty partial keeps the score */
    free(b1);
    free(b2);
    ac_metric_partial_destroy(&e);
    ac_metric_partial_destroy(&q);
    ac_metric_partial_destroy(&p);
    ac_metric_destroy(&m);
    return 0;
}
