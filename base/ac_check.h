/* CHECK for the selftests: counts a failure and says where and why, without
 * stopping, so one run reports every broken rule. CHECK(cond) or
 * CHECK(cond, "format", args...) for the values that explain it. A selftest
 * returns `failures != 0` from main; `checks` counts the CHECKs run. */
#ifndef AC_CHECK_H
#define AC_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int failures, checks;

/* fmt starts with the space CHECK puts in front (so a CHECK without details
 * still has a non-empty, checked format). */
__attribute__((format(printf, 1, 2), unused)) static void ac_check_detail(const char *fmt, ...)
{
    if (strlen(fmt) > 1) {
        va_list ap;
        va_start(ap, fmt);
        fputc(':', stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        checks++;                                                             \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s", __FILE__, __LINE__, #cond);    \
            ac_check_detail(" " __VA_ARGS__);                                 \
        }                                                                     \
    } while (0)

#endif
