/* Fuzz target: the remote test mode request decoder (msg/ac_remote_msg.h).
 * A decode must fail with a status and a message, or succeed with a request
 * that encodes and decodes again to the same encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_remote_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_rm_request q;
    if (ac_rm_decode_request(data, size, &q, NULL, &err) != AC_OK) {
        if (err.code == AC_OK || !err.msg[0])
            abort(); /* a failure comes with a status and a message */
        return 0;
    }
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    ac_rm_request r;
    if (ac_rm_encode_request(&q, AC_RM_VERSION, &enc, &len, &err) != AC_OK ||
        ac_rm_decode_request(enc, len, &r, NULL, &err) != AC_OK ||
        ac_rm_encode_request(&r, AC_RM_VERSION, &enc2, &len2, &err) != AC_OK || len != len2 || memcmp(enc, enc2, len))
        abort(); /* whatever decodes re-encodes to a fixed point */
    free(enc);
    free(enc2);
    return 0;
}
