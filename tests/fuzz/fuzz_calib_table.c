/* Fuzz target: the tpu-mlir calibration table and quantize table readers
 * (quant/ac_calib_table.h). Byte 0 picks one (even: calibration table, odd:
 * qtable). A failure must carry a status and a message; a table that parses
 * must write and parse again to the same entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_calib_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        if (strcmp(a->name, b->name) || a->th != b->th || a->min != b->min || a->max != b->max)
            abort(); /* the writer prints %.17g: values survive exactly */
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
