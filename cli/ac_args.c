#include "ac_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compare option names treating '-' and '_' alike. n is the length of a. */
static bool name_eq(const char *a, size_t n, const char *b)
{
    if (!b || strlen(b) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a[i] == '-' ? '_' : a[i];
        char y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return false;
    }
    return true;
}

static int set_value(const ac_arg_spec *s, const char *v, ac_err *err)
{
    char *end;
    switch (s->kind) {
    case AC_ARG_STRING:
        *(const char **)s->target = v;
        return 0;
    case AC_ARG_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
            return ac_err_set(err, AC_E_INVALID, "option --%s: '%s' is not an integer", s->name, v);
        *(int *)s->target = (int)x;
        return 0;
    }
    case AC_ARG_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end)
            return ac_err_set(err, AC_E_INVALID, "option --%s: '%s' is not a number", s->name, v);
        *(double *)s->target = x;
        return 0;
    }
    case AC_ARG_FLAG:
        if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
            *(bool *)s->target = true;
        else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
            *(bool *)s->target = false;
        else
            return ac_err_set(err, AC_E_INVALID, "option --%s: '%s' is not a boolean (true/false/1/0)",
                              s->name, v);
        return 0;
    }
    return ac_err_set(err, AC_E_INTERNAL, "option --%s: bad spec", s->name);
}

int ac_args_parse(int argc, char **argv, int first, const ac_arg_spec *specs, int nspecs,
                  const char **positional, int max_positional, int *npositional,
                  bool *help_requested, ac_err *err)
{
    int np = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            if (help_requested)
                *help_requested = true;
            continue;
        }
        if (a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (np >= max_positional)
                return ac_err_set(err, AC_E_INVALID, "unexpected argument '%s'", a);
            positional[np++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const ac_arg_spec *s = NULL;
        for (int k = 0; k < nspecs && !s; k++)
            if (name_eq(name, nlen, specs[k].name) || name_eq(name, nlen, specs[k].alias))
                s = &specs[k];
        if (!s)
            return ac_err_set(err, AC_E_INVALID, "unknown option '--%.*s' (see --help)", (int)nlen, name);
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (s->kind == AC_ARG_FLAG && (i + 1 >= argc || argv[i + 1][0] == '-' ||
                                              set_value(s, argv[i + 1], NULL) != 0)) {
            *(bool *)s->target = true; /* bare flag */
            continue;
        } else {
            if (i + 1 >= argc)
                return ac_err_set(err, AC_E_INVALID, "option --%s needs a value", s->name);
            v = argv[++i];
        }
        if (set_value(s, v, err))
            return err ? (int)err->code : AC_E_INVALID;
    }
    if (npositional)
        *npositional = np;
    return 0;
}

void ac_args_print_help(const char *usage, const ac_arg_spec *specs, int nspecs)
{
    printf("%s\n\noptions:\n", usage);
    for (int i = 0; i < nspecs; i++) {
        const char *kind = specs[i].kind == AC_ARG_STRING ? " S"
                           : specs[i].kind == AC_ARG_INT  ? " N"
                           : specs[i].kind == AC_ARG_FLOAT ? " X" : "";
        printf("  --%s%s%s%s\n      %s\n", specs[i].name, kind, specs[i].alias ? ", --" : "",
               specs[i].alias ? specs[i].alias : "", specs[i].help);
    }
}
