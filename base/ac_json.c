#include "ac_json.h"

#include <math.h>

void ac_json_init(ac_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
    j->after_key = false;
}

/* Comma + newline + indentation before a value or key, except right after a key. */
static void separator(ac_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        fputs(j->first[j->depth] ? "\n" : ",\n", j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    j->first[j->depth] = false;
}

static void open_level(ac_json *j, char c)
{
    separator(j);
    fputc(c, j->f);
    if (j->depth + 1 < AC_JSON_MAX_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
}

static void close_level(ac_json *j, char c)
{
    bool empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!empty) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(c, j->f);
    if (j->depth == 0)
        fputc('\n', j->f);
}

void ac_json_object_begin(ac_json *j) { open_level(j, '{'); }
void ac_json_object_end(ac_json *j) { close_level(j, '}'); }
void ac_json_array_begin(ac_json *j) { open_level(j, '['); }
void ac_json_array_end(ac_json *j) { close_level(j, ']'); }

void ac_json_write_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

void ac_json_key(ac_json *j, const char *key)
{
    separator(j);
    fputc('"', j->f);
    ac_json_write_escaped(j->f, key);
    fputs("\": ", j->f);
    j->after_key = true;
}

void ac_json_string(ac_json *j, const char *s)
{
    separator(j);
    if (!s) {
        fputs("null", j->f);
        return;
    }
    fputc('"', j->f);
    ac_json_write_escaped(j->f, s);
    fputc('"', j->f);
}

void ac_json_double(ac_json *j, double v)
{
    separator(j);
    if (!isfinite(v))
        fputs("null", j->f);
    else
        fprintf(j->f, "%.10g", v);
}

void ac_json_int(ac_json *j, int64_t v)
{
    separator(j);
    fprintf(j->f, "%lld", (long long)v);
}

void ac_json_bool(ac_json *j, bool v)
{
    separator(j);
    fputs(v ? "true" : "false", j->f);
}

void ac_json_null(ac_json *j)
{
    separator(j);
    fputs("null", j->f);
}
