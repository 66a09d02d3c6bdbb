/* ac_imagelist: where images come from. Either a folder (its .jpg/.jpeg/.png
 * files in byte-wise sorted name order, no recursion) or an ImageList file:
 * one path per line, relative paths resolved against the list's folder, an
 * optional integer label after the path ("path label" or "path, label").
 * Blank lines and lines starting with '#' are skipped. */
#ifndef AC_IMAGELIST_H
#define AC_IMAGELIST_H

#include <stdint.h>

#include "ac_err.h"

typedef struct {
    int64_t count;
    char **paths;     /* resolved paths */
    int32_t *labels;  /* count labels when has_labels, else NULL */
    int64_t *lines;   /* list line of each entry (0 for folders) */
    int has_labels;
    char *source;     /* the folder or list file */
} ac_imagelist;

/* Parses list text; base_dir resolves relative paths (NULL: keep as is). */
int ac_imagelist_parse(const char *text, size_t len, const char *list_name, const char *base_dir,
                       ac_imagelist **out, ac_err *err);
/* A folder or a list file; every listed file must exist. */
int ac_imagelist_load(const char *source, ac_imagelist **out, ac_err *err);
void ac_imagelist_destroy(ac_imagelist **p);

/* "list.txt line 12 (./a.jpg)" or the path itself, for error messages. */
void ac_imagelist_where(const ac_imagelist *l, int64_t i, char *buf, size_t n);

#endif
