/* ac_calib_table: tensor name -> (threshold, min, max), the calibration table
 * of docs/bm1684-int8.md §8 in tpu-mlir's text format, and the quantize table
 * (qtable: the layers kept in fp32).
 *
 * Calibration table file: '#' lines are comments; one line per tensor,
 * "<name> <threshold> <min> <max>", whitespace-separated, written with seven
 * decimals. Reading is strict (§10.10): a non-comment line that is not
 * "name threshold min max" is an error naming the line, a threshold <= 0 is an
 * error, and a tpu-mlir section marker ("#int4_th", "#weight_scale", ...: '#'
 * directly followed by a letter or '_') ends the int8 section; the rest of the
 * file is not read. Blank lines are skipped. Also errors (our choice): a name
 * given twice, min > max, a number that is not finite.
 *
 * Quantize table file: '#' comments, then "<layer_output_name> F32" per line
 * (BM1684 has no other float mode). */
#ifndef AC_CALIB_TABLE_H
#define AC_CALIB_TABLE_H

#include <stddef.h>

#include "ac_err.h"

typedef struct {
    char *name;
    double th, min, max;
} ac_calib_entry;

typedef struct ac_calib_table ac_calib_table;

ac_calib_table *ac_calib_table_new(void);
void ac_calib_table_destroy(ac_calib_table **p);
/* A deep copy; NULL when out of memory. */
ac_calib_table *ac_calib_table_dup(const ac_calib_table *t);

/* Adds the entry, or replaces the values of an existing one (the order of
 * entries is the order of first insertion). Rejects th <= 0, min > max and
 * non-finite values (err names the tensor). */
int ac_calib_table_set(ac_calib_table *t, const char *name, double th, double min, double max,
                       ac_err *err);
/* NULL when absent. */
const ac_calib_entry *ac_calib_table_find(const ac_calib_table *t, const char *name);
size_t ac_calib_table_size(const ac_calib_table *t);
const ac_calib_entry *ac_calib_table_at(const ac_calib_table *t, size_t i);

/* Parse text (len bytes); `source` names it in messages ("calib.txt line 7: ..."). */
int ac_calib_table_parse(const char *text, size_t len, const char *source, ac_calib_table **out,
                         ac_err *err);
int ac_calib_table_read(const char *path, ac_calib_table **out, ac_err *err);
/* Writes the table; header (may be NULL) is written as '# ' comment lines.
 * Values have seven decimals (the tpu-mlir format); thresholds below 1e-7 are
 * written as 0.0000001 so the table always reads back. */
int ac_calib_table_write(const ac_calib_table *t, const char *path, const char *header,
                         ac_err *err);

/* ---- quantize table -------------------------------------------------------------- */

typedef struct {
    size_t n;
    char **names;
} ac_qtable;

void ac_qtable_free(ac_qtable *q);
/* Lines "<name> F32"; any other mode or field count is an error naming the line. */
int ac_qtable_parse(const char *text, size_t len, const char *source, ac_qtable *out,
                    ac_err *err);
int ac_qtable_read(const char *path, ac_qtable *out, ac_err *err);
int ac_qtable_write(const char *path, const char *const *names, size_t n, const char *header,
                    ac_err *err);

#endif
