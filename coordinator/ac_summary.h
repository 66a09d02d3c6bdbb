/* ac_summary: what a person reads on the terminal when a quantization job
 * ends (before the CLI's final line): for a search, a short table of its
 * candidates (number, round, name, score or decision, cost; the chosen one
 * marked; each round of subset probes folded into one line), then where
 * each artefact is, report.html first. Fed from the ac_outputs that the
 * artefacts were written from. */
#ifndef AC_SUMMARY_H
#define AC_SUMMARY_H

#include <stdio.h>

#include "ac_outputs.h"

void ac_summary_print(const ac_outputs *o, FILE *f);

#endif
