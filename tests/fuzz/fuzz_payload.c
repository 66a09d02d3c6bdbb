/* Fuzz target: the task payload decoders (msg/ac_payload.h). Byte 0 picks the
 * decoder (even: eval, odd: calib), the rest is the payload. A decoder must fail
 * with a status and a message, or succeed with a payload that encodes and
 * decodes again to the same encoding (and the same candidate id). */
#include <stdbool.h>
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

/* Encodes a decoded run payload (outputs: a decoded outputs list); false when
 * that fails, which it must not for anything that decoded. */
static bool encode_run(const ac_run_payload *p, const ac_run_output *o, int32_t k, uint8_t **enc, size_t *len)
{
    ac_err err;
    ac_err_clear(&err);
    return (p ? ac_run_payload_encode(p, enc, len, &err) : ac_run_outputs_encode(o, k, enc, len, &err)) == AC_OK;
}

/* Decodes b as a run payload (outputs: a run outputs list) and encodes the
 * result again; returns the decoder's status, aborts when what decoded does
 * not encode or a view lies outside the input. */
static int recode_run(const uint8_t *b, size_t n, bool outputs, uint8_t **enc, size_t *len)
{
    ac_err err;
    ac_err_clear(&err);
    ac_run_payload p;
    ac_run_output o[4];
    int32_t k = 0;
    int rc = outputs ? ac_run_outputs_decode(b, n, o, 4, &k, &err) : ac_run_payload_decode(b, n, &p, &err);
    if (rc != AC_OK) {
        if (err.code == AC_OK || !err.msg[0])
            abort(); /* a failure must come with a status and a message */
        return rc;
    }
    if (!outputs &&
        (p.data.data < b || p.data.data + p.data.len > b + n || p.eval.data < b || p.eval.data + p.eval.len > b + n))
        abort(); /* the views lie inside the input */
    if (!encode_run(outputs ? NULL : &p, o, k, enc, len))
        abort(); /* whatever decodes is valid, so it encodes */
    return AC_OK;
}

/* Run payloads and run outputs (byte 0 = 2, 3): the decoder accepts any valid
 * msgpack (an integer need not use its shortest form); its encoding is
 * canonical, so encoding what that decodes to gives the same bytes again. */
static void fuzz_run(const uint8_t *b, size_t n, bool outputs)
{
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    if (recode_run(b, n, outputs, &enc, &len) != AC_OK)
        return;
    if (recode_run(enc, len, outputs, &enc2, &len2) != AC_OK || len != len2 || memcmp(enc, enc2, len))
        abort(); /* the canonical encoding is a fixed point */
    free(enc);
    free(enc2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] & 3) { /* seeds: 0 eval, 1 calib, 2 run payload, 3 run outputs */
    case 0: fuzz_eval(data + 1, size - 1); break;
    case 1: fuzz_calib(data + 1, size - 1); break;
    default: fuzz_run(data + 1, size - 1, (data[0] & 3) == 3); break;
    }
    return 0;
}
