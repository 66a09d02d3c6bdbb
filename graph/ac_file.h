/* ac_file: a whole model file into memory, for the importers (ONNX, Darknet) and
 * the farm's model blobs. The size comes from the file system, never from
 * the data. */
#ifndef AC_FILE_H
#define AC_FILE_H

#include <stddef.h>

#include "ac_err.h"

/* *buf (malloc'ed) holds the *len bytes plus a terminating NUL. A file larger
 * than max bytes is an error naming kind ("protobuf", "cfg", ...). */
int ac_model_file_read(const char *path, size_t max, const char *kind, char **buf, size_t *len, ac_err *err);

#endif
