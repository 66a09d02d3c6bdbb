/* Fuzz target: the tpu-mlir calibration table and quantize table readers
 * (quant/ac_calib_table.h). Byte 0 picks one (even: calibration table, odd:
 * qtable). A failure must carry a status and a message; a table that parses
 * must write and read back to the same entries, values equal to the seven
 * decimals the format keeps. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_calib_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Equal to seven decimals: half a unit of the last decimal, plus the
 * double's own rounding for large values. */
static int same7(double a, double b)
{
    return fabs(a - b) <= 0.5e-7 * (1 + 1e-9) + fabs(a) * 1e-15;
}

static void calib_table(const char *text, size_t len)
{
    ac_err err;
    ac_err_clear(&err);
    ac_calib_table *t = NULL;
    if (ac_calib_table_parse(text, len, "calibration_table", &t, &err) != AC_OK) {
        if (err.code == AC_OK || !err.msg[0] || t)
            abort();
        return;
    }
    /* round trip through the writer */
    char path[] = "/tmp/fuzz_calib_table_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    ac_calib_table *u = NULL;
    if (ac_calib_table_write(t, path, NULL, &err) != AC_OK || ac_calib_table_read(path, &u, &err) != AC_OK ||
        ac_calib_table_size(u) != ac_calib_table_size(t))
        abort();
    for (size_t i = 0; i < ac_calib_table_size(t); i++) {
        const ac_calib_entry *a = ac_calib_table_at(t, i), *b = ac_calib_table_at(u, i);
        if (strcmp(a->name, b->name) || !same7(a->th < 1e-7 ? 1e-7 : a->th, b->th) || !same7(a->min, b->min) ||
            !same7(a->max, b->max))
            abort(); /* seven decimals (tiny thresholds written as 1e-7) */
    }
    unlink(path);
    ac_calib_table_destroy(&u);
    ac_calib_table_destroy(&t);
}

static void qtable(const char *text, size_t len)
{
    ac_err err;
    ac_err_clear(&err);
    ac_qtable q = {0};
    if (ac_qtable_parse(text, len, "qtable", &q, &err) != AC_OK) {
        if (err.code == AC_OK || !err.msg[0] || q.n || q.names)
            abort();
        return;
    }
    for (size_t i = 0; i < q.n; i++)
        if (!q.names[i] || !q.names[i][0])
            abort();
    ac_qtable_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        qtable((const char *)data + 1, size - 1);
    else
        calib_table((const char *)data + 1, size - 1);
    return 0;
}
