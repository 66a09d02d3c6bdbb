/* ac_report_html: report.html, the report of a quantization job as people
 * read it, next to report.json and fed from the same ac_outputs:
 *   - the summary: model, task, fp32 vs int8 score, budget and whether it was
 *     met, the chosen strategy, fp32 layers, estimated cost, time, and the
 *     search's evaluations, rounds and workers;
 *   - a chart of per-layer sensitivity (SQNR and cosine of each layer's int8
 *     activations against fp32; fp32 layers marked);
 *   - the search timeline: each candidate's score against the budget line,
 *     grouped by round (candidates decided as fail without a score, and
 *     failed ones, in a band below the axis);
 *   - the candidate table and the per-layer table (op, mode, threshold, shifts).
 * One offline file: no scripts, no fonts or images from elsewhere; the charts
 * are inline SVG written here, light on white so that they print. Every
 * string from the model or the command line is escaped.
 *
 * Stable hooks (tests rely on them): svg#sensitivity-chart with one
 * g.layer-row per charted layer (g.layer-row.fp32 for fp32 layers);
 * svg#timeline-chart with one g.cand per candidate (plus pass, fail,
 * decided-fail, subset or error; g.cand.chosen for the chosen one) and
 * line#budget-line; table#candidates and table#layers with one tbody row per
 * candidate / graph node. */
#ifndef AC_REPORT_HTML_H
#define AC_REPORT_HTML_H

#include <stdio.h>

#include "ac_err.h"
#include "ac_outputs.h"

/* Writes report.html for o to path; int8_name is the int8 model's file name. */
int ac_report_html_write(const ac_outputs *o, const char *path, const char *int8_name, ac_err *err);

/* Writes s as HTML/SVG text or attribute value: & < > " ' as entities,
 * control characters and bytes that are not UTF-8 as U+FFFD. NULL writes
 * nothing. */
void ac_html_escape(FILE *f, const char *s);

#endif
