/* ac_err: status + message errors (redis/sqlite style).
 * Library code never exits; a failing function returns a non-zero status
 * and fills an ac_err whose message names the value and the rule. */
#ifndef AC_ERR_H
#define AC_ERR_H

#include <stddef.h>

#define AC_ERR_MSG_MAX 1024

typedef enum {
    AC_OK = 0,
    AC_E_INVALID = 1,     /* malformed input: a value breaks a rule */
    AC_E_UNSUPPORTED = 2, /* well-formed but not supported (op, attribute, format) */
    AC_E_IO = 3,          /* file system or network */
    AC_E_NOMEM = 4,
    AC_E_INTERNAL = 5
} ac_status;

typedef struct {
    ac_status code;
    char msg[AC_ERR_MSG_MAX];
} ac_err;

/* Fill err (when not NULL) and return code. printf-style message. */
int ac_err_set(ac_err *err, ac_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("model.onnx: " + msg). */
int ac_err_prefix(ac_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ac_err_clear(ac_err *err);

const char *ac_status_name(ac_status code);

#endif
