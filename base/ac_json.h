/* ac_json: a small streaming JSON writer (reports, status output). It tracks
 * nesting so commas and indentation come out right; the caller writes keys and
 * values in order. Non-finite numbers are written as null (JSON has no NaN). */
#ifndef AC_JSON_H
#define AC_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define AC_JSON_MAX_DEPTH 32

typedef struct {
    FILE *f;
    int depth;
    bool first[AC_JSON_MAX_DEPTH]; /* nothing written yet at this level */
    bool after_key;
} ac_json;

void ac_json_init(ac_json *j, FILE *f);
void ac_json_object_begin(ac_json *j);
void ac_json_object_end(ac_json *j);
void ac_json_array_begin(ac_json *j);
void ac_json_array_end(ac_json *j);
void ac_json_key(ac_json *j, const char *key);
void ac_json_string(ac_json *j, const char *s); /* NULL writes null */
void ac_json_double(ac_json *j, double v);
void ac_json_int(ac_json *j, int64_t v);
void ac_json_bool(ac_json *j, bool v);
void ac_json_null(ac_json *j);

/* Escaped string without the JSON context (for HTML/logs that embed JSON). */
void ac_json_write_escaped(FILE *f, const char *s);

#endif
