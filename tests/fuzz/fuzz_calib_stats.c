/* Fuzz target: ac_calib_stats_decode on arbitrary bytes. It must never crash,
 * read out of bounds or allocate from an unchecked length; whatever it accepts
 * must survive encode + decode unchanged, and merging it with itself may fail
 * (a count overflows) but must not crash. */
#include "ac_calib_stats.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ac_err err;
    ac_calib_stats *st = NULL;
    ac_err_clear(&err);
    int rc = ac_calib_stats_decode(data, size, &st, &err);
    if (rc != AC_OK) {
        if (st || err.code == AC_OK || err.msg[0] == '\0')
            abort(); /* a failure must come with a status and a message, and no object */
        return 0;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ac_calib_stats_encode(st, &buf, &len, &err) == AC_OK) {
        ac_calib_stats *again = NULL;
        if (ac_calib_stats_decode(buf, len, &again, &err) != AC_OK ||
            !ac_calib_stats_equal(st, again))
            abort(); /* accepted input that does not survive a round trip */
        ac_calib_stats_destroy(&again);
        free(buf);
    }
    ac_calib_stats *twice = ac_calib_stats_dup(st);
    if (twice) {
        (void)ac_calib_stats_merge(twice, st, &err); /* may overflow: an error, not a crash */
        ac_calib_stats_destroy(&twice);
    }
    ac_calib_stats_destroy(&st);
    return 0;
}
