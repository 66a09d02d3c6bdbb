/* ac_search: the strategy search, independent of how candidates are evaluated.
 *
 * The caller supplies an evaluator that scores a list of candidates (on the
 * whole test set or on a subset) and estimates each candidate's cost on the
 * chip; the search decides which candidates to try next. Decisions depend only
 * on the scores and costs (never on arrival order): among passing candidates
 * the cheapest wins; among equally cheap ones the highest score, then the
 * lower index.
 *
 * Fast mode (default): round 1 evaluates the baseline (KL, per-tensor, all
 * int8) alone. Nothing is cheaper on the chip than plain int8, so when it
 * meets the budget the search ends there, in auto mode too. Otherwise round 2
 * evaluates every single-option variant at once: per_channel, each other
 * threshold method, accuracy_opt (depthwise in fp32), first_conv_fp32. If any
 * meets the budget the cheapest passing one is chosen. Otherwise round 3
 * combines the options that helped (the best threshold method among those
 * that beat the baseline, plus each boolean option that did), together with
 * the combination without each of its costly options (accuracy_opt,
 * first_conv_fp32), and picks the cheapest passing one.
 *
 * Auto mode (--auto_calib) looks for the plan with the fewest fp32 layers
 * even when fast mode passed. After the fast rounds it starts from the base:
 * the highest-scoring full-set candidate that keeps no layer in fp32 by option
 * (accuracy_opt and first_conv_fp32 off; per_channel and any threshold method
 * allowed). Unless the base already passes, it ranks the layers that still run
 * in int8 by sensitivity (the score gained when that layer alone stays in fp32,
 * on a subset), checks that the base with every ranked layer in fp32 passes,
 * then searches the number k of most sensitive layers kept in fp32: each round
 * tests up to `parallel` split points between the largest failing and the
 * smallest passing k (k-ary search), so rounds shrink as workers grow.
 *
 * Re-rank, in a bounded number of rounds: the subset ranking may have put
 * layers among the k kept ones that the full test set does not need. One round
 * evaluates, all at once, the kept set without layer i for every kept layer i.
 * The layers whose removal alone still passes form R, ordered by the score of
 * that candidate (highest first, ties in rank order). If R has two layers or
 * more, a k-ary search like the bisection's (up to `parallel` split points per
 * round) finds the largest m such that the kept set without R[0..m) passes
 * (m = 1 is known to pass); those m layers return to int8. Two layers that are
 * each removable alone need not be removable together, which is why the prefix
 * is searched rather than all of R removed. Rounds: 1 + about
 * log_(parallel+1) |R|.
 *
 * The plan chosen in auto mode is the cheapest passing candidate over
 * everything evaluated, fast rounds included.
 *
 * Pass/fail rounds: in the check with every ranked layer in fp32, the
 * bisection and the re-rank, only whether a candidate meets the budget
 * matters (fast rounds are not: their scores choose round 2 and the base). The
 * evaluator is told so (ac_eval_round.pass_fail) and may stop a candidate once
 * an upper bound of its final score fails the budget (early_stopped). So that
 * nothing reported depends on whether, or when, that happened, every
 * candidate of such a round that does not pass is marked decided_fail and its
 * score is dropped (0, reported as null); passing candidates always have their
 * full score. */
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
    bool pass_fail;       /* evaluated in a pass/fail round */
    bool early_stopped;   /* stopped by the evaluator from a bound (depends on timing) */
    bool decided_fail;    /* pass/fail round, does not meet the budget: score dropped (set by the search) */
    double score;
    double cost;          /* estimated chip cost (lower is cheaper) */
    int round;
} ac_candidate;

struct ac_search_options;

/* What a round asks of the evaluator. */
typedef struct {
    bool subset;     /* score on the sensitivity subset */
    bool pass_fail;  /* only whether each candidate meets the budget matters: a
                      * candidate whose final score cannot pass
                      * (!ac_search_passes(search, upper bound)) may be stopped
                      * early: set evaluated and early_stopped, not failed */
    const struct ac_search_options *search;
} ac_eval_round;

typedef struct {
    /* Score cands[0..n) on the test set (subset: the sensitivity subset).
     * Sets evaluated/failed/score/cost of each (and early_stopped, see
     * ac_eval_round). Returns 0, or non-zero when nothing could be evaluated
     * (err filled). */
    int (*evaluate)(void *ctx, ac_candidate *cands, int n, const ac_eval_round *round, ac_err *err);
    /* Layers (node indices) that run in int8 under candidate c, in graph order,
     * for sensitivity ranking. Returns the count written to out (cap). */
    int (*int8_layers)(void *ctx, const ac_candidate *c, int *out, int cap);
    /* The name of a node, for logs and reports. */
    const char *(*layer_name)(void *ctx, int node);
    void *ctx;
} ac_evaluator;

typedef struct ac_search_options {
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
    int early_stopped;       /* candidates the evaluator stopped from a bound (depends on timing) */
    int best;                /* index of the chosen candidate (-1 if none was evaluated) */
    bool met_budget;
} ac_search_result;

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err);
void ac_search_result_free(ac_search_result *res);

/* Whether a score meets the budget (with a tolerance for rounding). */
bool ac_search_passes(const ac_search_options *o, double score);

#endif
