/* ac_search: the strategy search, independent of how candidates are evaluated.
 *
 * The caller supplies an evaluator that scores a list of candidates (on the
 * whole test set or on a subset) and estimates each candidate's cost on the
 * chip; the search decides which candidates to try next. Decisions depend only
 * on the scores and costs (never on arrival order): among passing candidates
 * the cheapest wins, ties going to the lower index.
 *
 * Fast mode (default): round 1 evaluates the baseline (KL, per-tensor, all
 * int8) and every single-option variant at once: per_channel, each other
 * threshold method, accuracy_opt (depthwise in fp32), first_conv_fp32. If any
 * meets the budget the cheapest passing one is chosen. Otherwise round 2
 * combines the options that helped (the best threshold method among those
 * that beat the baseline, plus each boolean option that did), together with
 * the combination without each of its costly options (accuracy_opt,
 * first_conv_fp32), and picks the cheapest passing one.
 *
 * Auto mode (--auto_calib): from the best fast-mode candidate, rank the
 * layers that still run in int8 by sensitivity (the score gained when that
 * layer alone stays in fp32, on a subset), then search the number k of most
 * sensitive layers kept in fp32: each round tests up to `parallel` split
 * points between the largest failing and the smallest passing k (k-ary
 * search), so rounds shrink as workers grow. Finally each kept layer whose
 * reverting does not help (the candidate still passes without it) is
 * returned to int8, most sensitive last: the re-rank step. */
#ifndef AC_SEARCH_H
#define AC_SEARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ac_err.h"
#include "ac_threshold.h"

#define AC_SEARCH_MAX_NAME 96

typedef struct {
    char name[AC_SEARCH_MAX_NAME];
    ac_th_method method;
    bool per_channel, accuracy_opt, first_conv_fp32;
    int nfp32;            /* layers kept in fp32 by the search (node indices) */
    int *fp32_nodes;      /* owned by the search */
    /* filled by the evaluator */
    bool evaluated, failed;
    bool subset;          /* scored on the sensitivity subset only (not comparable) */
    double score;
    double cost;          /* estimated chip cost (lower is cheaper) */
    int round;
} ac_candidate;

typedef struct {
    /* Score cands[0..n) on the test set (subset: the sensitivity subset).
     * Sets evaluated/failed/score/cost of each. Returns 0, or non-zero when
     * nothing could be evaluated (err filled). */
    int (*evaluate)(void *ctx, ac_candidate *cands, int n, bool subset, ac_err *err);
    /* Layers (node indices) that run in int8 under candidate c, in graph order,
     * for sensitivity ranking. Returns the count written to out (cap). */
    int (*int8_layers)(void *ctx, const ac_candidate *c, int *out, int cap);
    /* The name of a node, for logs and reports. */
    const char *(*layer_name)(void *ctx, int node);
    void *ctx;
} ac_evaluator;

typedef struct {
    double fp32_score;
    double accept_decay;     /* a candidate passes when fp32_score - score <= accept_decay */
    bool auto_mode;
    int parallel;            /* split points per bisection round (>= 1; e.g. the worker count) */
    bool debug;              /* log every step */
    FILE *log;
} ac_search_options;

typedef struct {
    ac_candidate *cands;     /* every candidate evaluated, in order */
    int ncands, cap;
    int rounds;
    int evaluations;         /* candidate evaluations on the full test set */
    int subset_evaluations;  /* sensitivity evaluations on the subset */
    int best;                /* index of the chosen candidate (-1 if none was evaluated) */
    bool met_budget;
} ac_search_result;

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err);
void ac_search_result_free(ac_search_result *res);

/* Whether a score meets the budget (with a tolerance for rounding). */
bool ac_search_passes(const ac_search_options *o, double score);

#endif
