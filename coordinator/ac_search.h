/* ac_search: the strategy search, independent of how candidates are evaluated.
 *
 * The caller supplies an evaluator that scores a list of candidates (on the
 * whole test set, or on a subset with a continuous fidelity score such as
 * the mean cosine of the outputs against fp32) and estimates each
 * candidate's cost on the chip; the search decides which candidates to try
 * next. Decisions depend only on the scores and costs (never on arrival
 * order). Full-set evaluations are what a search spends, so it screens on the
 * subset first and evaluates in full only what the screen puts first.
 *
 * Fast mode (default): round 1 screens the baseline (KL, per-tensor, all
 * int8) and every single-option variant on the subset: per_channel, each
 * other threshold method, accuracy_opt (depthwise in fp32), first_conv_fp32.
 * The baseline and the variants that beat its screen score get a full
 * evaluation, one per round, cheapest first and then by screen score, until
 * one passes or FAST_TRIES (2; 1 in auto mode) were tried: the first to
 * pass is the cheapest that can, among those tried. If none passes, the
 * helpful options are combined (the best-screening threshold method other
 * than KL, plus each helpful boolean option) and evaluated cheapest first:
 * without the costly options (accuracy_opt, first_conv_fp32), then with one,
 * then both, stopping after a round where something passes. Auto mode only
 * wants the first, as a better base for its layer search: it screens it on
 * the subset and evaluates it in full only when it screens above every
 * single option. Among passing candidates the cheapest wins; among
 * equally cheap ones the highest score, then the lower index. Plain int8 is
 * never cheaper than per_channel or another threshold method (the same
 * layers run in int8), so it is evaluated in full only when it screens best
 * among them: a plan the screen shows to be worse at the same cost is not
 * worth a full evaluation.
 *
 * With baseline_first (remote test mode: the client's subset score is its
 * own metric on part of its data, not a fidelity measure, so it ranks
 * equally cheap plans less surely than a full evaluation does), round 1
 * evaluates the baseline alone in full and ends the search when it passes;
 * otherwise the screen follows in round 2 and the rounds go on as above.
 *
 * Auto mode (--auto_calib) looks for the plan with the fewest fp32 layers
 * even when fast mode passed with a costly option. It starts from the base:
 * the highest-scoring full-set candidate that keeps no layer in fp32 by option
 * (accuracy_opt and first_conv_fp32 off; per_channel and any threshold method
 * allowed). Unless the base passes, it finds a passing set of fp32 layers
 * among those that still run in int8 (the evaluator's int8_layers), one of
 * two ways:
 *   - forward, when the base misses the budget by no more than the budget
 *     again: a subset round scores the base with each layer alone in fp32,
 *     and the most helpful 1, 2, 4 (FORWARD_MAX) layers go to fp32, one full
 *     pass/fail round each, until one passes; then a k-ary search for the
 *     smallest passing count in between;
 *   - backward, otherwise or when FORWARD_MAX layers do not pass: from the
 *     base with every such layer in fp32, which is evaluated in full only
 *     when no smaller set passes (then nothing can pass).
 * From the passing set it returns layers to int8:
 * one subset round scores the kept set without each kept layer (how much that
 * layer costs back in int8 with the others in fp32), the kept layers are
 * ordered by that score (the cheapest to return first), and a k-ary search
 * with full-set pass/fail rounds finds the largest m such that the kept set
 * without the first m passes (up to `parallel` split points per round, so
 * rounds shrink as the farm can run more candidates side by side). Where the
 * kept set clears the threshold by at least half the budget (every layer in
 * fp32 does, by the whole budget), the round's first split points are
 * predicted instead of halved: the subset losses (the kept set's own subset
 * score, from the same round, less each probe's) are taken as additive, and
 * the full score as linear in their sum from the kept set to the base; the
 * search probes the last m predicted to pass (the first predicted to fail
 * once that is lo) and, room permitting, both. After a wrong prediction the next round halves, so a misleading
 * subset costs at most every other round. A second pass does the same from
 * what stays in fp32, whose costs are then measured in the company of the
 * kept set only. Full evaluations: about 2 per pass when the prediction
 * holds, log_(parallel+1) n when it does not.
 *
 * The plan chosen in auto mode is the cheapest passing candidate over
 * everything evaluated, fast rounds included.
 *
 * Pass/fail rounds: in the forward and k-ary searches and the all-fp32
 * check, only
 * whether a candidate meets the budget matters (fast rounds are not: their
 * scores choose the base). The evaluator is told so
 * (ac_eval_round.pass_fail) and may stop a candidate once an upper bound of
 * its final score fails the budget (early_stopped). So that nothing reported
 * depends on whether, or when, that happened, every candidate of such a round
 * that does not pass is marked decided_fail and its score is dropped (0,
 * reported as null); passing candidates always have their full score. */
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
    bool subset;          /* scored on the subset only (a fidelity score, not comparable) */
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
    bool subset;     /* score on the subset (a fidelity score) */
    bool pass_fail;  /* only whether each candidate meets the budget matters: a
                      * candidate whose final score cannot pass
                      * (!ac_search_passes(search, upper bound)) may be stopped
                      * early: set evaluated and early_stopped, not failed */
    const struct ac_search_options *search;
} ac_eval_round;

typedef struct {
    /* Score cands[0..n) on the test set (subset: the first samples, by a fidelity score).
     * Sets evaluated/failed/score/cost of each (and early_stopped, see
     * ac_eval_round). Returns 0, or non-zero when nothing could be evaluated
     * (err filled). */
    int (*evaluate)(void *ctx, ac_candidate *cands, int n, const ac_eval_round *round, ac_err *err);
    /* Layers (node indices) that run in int8 under candidate c, in graph order:
     * those auto mode may keep in fp32. Returns the count written to out (cap). */
    int (*int8_layers)(void *ctx, const ac_candidate *c, int *out, int cap);
    /* The name of a node, for logs and reports. */
    const char *(*layer_name)(void *ctx, int node);
    void *ctx;
} ac_evaluator;

typedef struct ac_search_options {
    double fp32_score;
    double accept_decay;     /* a candidate passes when fp32_score - score <= accept_decay */
    bool auto_mode;
    bool baseline_first;     /* evaluate plain int8 in full before the screen (see above) */
    int parallel;            /* split points per k-ary round (>= 1): candidates the farm runs side by side */
    bool debug;              /* log every step */
    FILE *log;
} ac_search_options;

typedef struct {
    ac_candidate *cands;     /* every candidate evaluated, in order */
    int ncands, cap;
    int rounds;
    int evaluations;         /* candidate evaluations on the full test set */
    int subset_evaluations;  /* screen and removal-probe evaluations on the subset */
    int early_stopped;       /* candidates the evaluator stopped from a bound (depends on timing) */
    int best;                /* index of the chosen candidate (-1 if none was evaluated) */
    bool met_budget;
} ac_search_result;

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err);
void ac_search_result_free(ac_search_result *res);

/* Whether a score meets the budget (with a tolerance for rounding). */
bool ac_search_passes(const ac_search_options *o, double score);

#endif
