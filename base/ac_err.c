#include "ac_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ac_err_set(ac_err *err, ac_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return (int)code;
}

int ac_err_prefix(ac_err *err, const char *fmt, ...)
{
    if (!err)
        return AC_E_INTERNAL;
    char prefix[AC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Join in a buffer that always fits, then keep what the message holds. */
    char joined[2 * AC_ERR_MSG_MAX];
    snprintf(joined, sizeof joined, "%s%s", prefix, err->msg);
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return (int)err->code;
}

void ac_err_clear(ac_err *err)
{
    if (err) {
        err->code = AC_OK;
        err->msg[0] = '\0';
    }
}

const char *ac_status_name(ac_status code)
{
    switch (code) {
    case AC_OK: return "ok";
    case AC_E_INVALID: return "invalid";
    case AC_E_UNSUPPORTED: return "unsupported";
    case AC_E_IO: return "io";
    case AC_E_NOMEM: return "out of memory";
    case AC_E_INTERNAL: return "internal";
    }
    return "unknown";
}
