#include "ac_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ac_model_file_read(const char *path, size_t max, const char *kind, char **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ac_err_set(err, AC_E_IO, "%s: cannot determine the file size", path);
    }
    if ((unsigned long)size > max) {
        fclose(f);
        return ac_err_set(err, AC_E_UNSUPPORTED, "%s: %ld bytes, %s files are read up to %zu", path, size, kind, max);
    }
    *buf = malloc((size_t)size + 1);
    if (!*buf) {
        fclose(f);
        return ac_err_set(err, AC_E_NOMEM, "%s: out of memory for %ld bytes", path, size);
    }
    size_t got = fread(*buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(*buf);
        *buf = NULL;
        return ac_err_set(err, AC_E_IO, "%s: read error", path);
    }
    (*buf)[size] = '\0';
    *len = (size_t)size;
    return 0;
}
