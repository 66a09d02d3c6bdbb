/* ac_args: command-line options of the form `--name value` or `--name=value`.
 * Option names compare with '-' and '_' as equals, so the original tool's
 * spellings (`--input_data_shape`) and dash forms (`--input-data-shape`) both
 * work. Misspelled-but-historical names are registered as aliases by callers. */
#ifndef AC_ARGS_H
#define AC_ARGS_H

#include <stdbool.h>

#include "ac_err.h"

typedef enum { AC_ARG_STRING, AC_ARG_INT, AC_ARG_FLOAT, AC_ARG_FLAG } ac_arg_kind;

typedef struct {
    const char *name;     /* without leading dashes, e.g. "input_data_shape" */
    const char *alias;    /* another accepted name or NULL */
    ac_arg_kind kind;
    void *target;         /* const char **, int *, double *, bool * */
    const char *help;
} ac_arg_spec;

/* Parses argv[first..argc). Positional arguments are stored in positional[]
 * (up to max_positional). Unknown options, missing values and non-numbers are
 * errors naming the option and the rule. --help sets *help_requested. */
int ac_args_parse(int argc, char **argv, int first, const ac_arg_spec *specs, int nspecs,
                  const char **positional, int max_positional, int *npositional,
                  bool *help_requested, ac_err *err);

void ac_args_print_help(const char *usage, const ac_arg_spec *specs, int nspecs);

#endif
