/* Fuzz target: the task payload decoders (msg/ac_payload.h). Byte 0 picks the
 * decoder (even: eval, odd: calib), the rest is the payload. A decoder must fail
 * with a status and a message, or succeed with a payload that encodes and
 * decodes again to the same encoding (and the same candidate id). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_eval(const uint8_t *b, size_t n)
{
    ac_err err;
    ac_err_clear(&err);
    ac_eval_payload p;
    ac_payload_storage st;
    uint64_t id = ac_eval_payload_id(b, n);
    if (ac_eval_payload_decode(b, n, &p, &st, &err) != AC_OK) {
        if (err.code == AC_OK || !err.msg[0] || st.ranges || st.names)
            abort(); /* a failure must come with a status and a message, and no storage */
        return;
    }
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    if (ac_eval_payload_encode(&p, &enc, &len, &err) != AC_OK)
        abort(); /* whatever decodes is valid, so it encodes */
    ac_eval_payload q;
    ac_payload_storage st2;
    if (ac_eval_payload_decode(enc, len, &q, &st2, &err) != AC_OK ||
        ac_eval_payload_encode(&q, &enc2, &len2, &err) != AC_OK || len != len2 || memcmp(enc, enc2, len))
        abort(); /* the canonical encoding is a fixed point */
    if (ac_eval_payload_id(enc, len) != id)
        abort(); /* the id is that of the canonical encoding */
    ac_payload_storage_free(&st2);
    ac_payload_storage_free(&st);
    free(enc);
    free(enc2);
}

static void fuzz_calib(const uint8_t *b, size_t n)
{
    ac_err err;
    ac_err_clear(&err);
    ac_calib_payload p;
    if (ac_calib_payload_decode(b, n, &p, &err) != AC_OK) {
        if (err.code == AC_OK || !err.msg[0])
            abort();
        return;
    }
    if (p.collector_template.data < b || p.collector_template.data + p.collector_template.len > b + n)
        abort(); /* the view lies inside the input */
    uint8_t *enc = NULL;
    size_t len = 0;
    if (ac_calib_payload_encode(&p, &enc, &len, &err) != AC_OK)
        abort();
    ac_calib_payload q;
    if (ac_calib_payload_decode(enc, len, &q, &err) != AC_OK || q.collector_template.len != p.collector_template.len ||
        memcmp(q.collector_template.data, p.collector_template.data, p.collector_template.len))
        abort();
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_calib(data + 1, size - 1);
    else
        fuzz_eval(data + 1, size - 1);
    return 0;
}
