/* ac_progress: how a long phase of a job (a calibration pass, fp32 scoring,
 * a search round, the final per-layer statistics) shows while it runs.
 *
 * On a terminal: one line redrawn in place with carriage returns,
 *   [  12.34s] round 2: 6 candidates [#########.......]  30/48 tasks  4.1/s  ETA 4s
 * and ended with a newline when the phase ends (the final counts, the rate
 * and the time taken). Elsewhere (a file, a pipe, a CI log): plain
 * timestamped lines, one when the phase starts and one when it ends, and one
 * every AC_PROGRESS_LINE_S seconds in between; never a carriage return.
 * The timestamps are those of ac_job_say (seconds since the job started).
 *
 * A NULL handle is a valid, silent one (--quiet): every function accepts it. */
#ifndef AC_PROGRESS_H
#define AC_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define AC_PROGRESS_LINE_S 30.0

typedef enum {
    AC_PROGRESS_AUTO,   /* a bar when f is a terminal, else lines */
    AC_PROGRESS_LINES,
    AC_PROGRESS_BAR
} ac_progress_style;

typedef struct ac_progress ac_progress;

/* A phase of `total` units ("tasks", "samples") named by what (copied),
 * written to f; t0: the job's start (ac_job_now() clock). Returns NULL when f
 * is NULL, total <= 0 or memory is short: then nothing is shown. */
ac_progress *ac_progress_new(FILE *f, ac_progress_style style, double t0, const char *what, int64_t total,
                             const char *unit);

/* done units of total so far (a bar is redrawn at most every 0.1 s, and
 * always when done reaches total). */
void ac_progress_update(ac_progress *p, int64_t done);

/* Ends the phase: the last state with the time taken, then a newline. */
void ac_progress_destroy(ac_progress **p);

#endif
