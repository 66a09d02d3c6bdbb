/* Fuzz target: ac_int8_model_parse on arbitrary bytes. It must never crash,
 * read out of bounds or allocate from an unchecked length; a failure comes
 * with a status and a message; whatever it accepts re-encodes to a file that
 * parses again and re-encodes to the same bytes. */
#include "ac_int8_model.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_err_clear(&err);
    ac_int8_model *m = ac_int8_model_parse(data, size, "fuzz", &err);
    if (!m) {
        if (err.code == AC_OK || err.msg[0] == '\0')
            abort(); /* a failure must come with a status and a message */
        return 0;
    }
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    if (ac_int8_model_encode(ac_int8_model_plan(m), &a, &la, &err) == AC_OK) {
        ac_int8_model *again = ac_int8_model_parse(a, la, "fuzz re-encoded", &err);
        if (!again)
            abort(); /* an accepted model whose own encoding is refused */
        if (ac_int8_model_encode(ac_int8_model_plan(again), &b, &lb, &err) == AC_OK &&
            (la != lb || memcmp(a, b, la) != 0))
            abort(); /* encoding is not a fixed point */
        ac_int8_model_destroy(&again);
    }
    free(a);
    free(b);
    ac_int8_model_destroy(&m);
    return 0;
}
