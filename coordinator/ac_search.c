#include "ac_search.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_EPS 1e-12
#define MAX_SPLITS 64 /* split points per k-ary round */
#define FAST_TRIES 2  /* full evaluations of screened single options before combining them */
#define AUTO_PASSES 2 /* passes of returning layers to int8 in auto mode */
#define FORWARD_MAX 4 /* most layers auto mode's forward search keeps in fp32 before going backward */

bool ac_search_passes(const ac_search_options *o, double score)
{
    return o->fp32_score - score <= o->accept_decay + SCORE_EPS;
}

static void logf_(const ac_search_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const ac_search_options *o, const char *fmt, ...)
{
    if (!o->debug)
        return;
    FILE *f = o->log ? o->log : stderr;
    va_list ap;
    va_start(ap, fmt);
    fputs("search: ", f);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

void ac_search_result_free(ac_search_result *res)
{
    for (int i = 0; i < res->ncands; i++)
        free(res->cands[i].fp32_nodes);
    free(res->cands);
    memset(res, 0, sizeof *res);
}

/* Appends a copy of c (deep-copying its fp32 list); returns its index or -1. */
static int add_candidate(ac_search_result *res, const ac_candidate *c)
{
    if (res->ncands == res->cap) {
        int ncap = res->cap ? res->cap * 2 : 32;
        ac_candidate *n = realloc(res->cands, sizeof *n * (size_t)ncap);
        if (!n)
            return -1;
        res->cands = n;
        res->cap = ncap;
    }
    ac_candidate *d = &res->cands[res->ncands];
    *d = *c;
    d->fp32_nodes = NULL;
    if (c->nfp32) {
        d->fp32_nodes = malloc(sizeof(int) * (size_t)c->nfp32);
        if (!d->fp32_nodes)
            return -1;
        memcpy(d->fp32_nodes, c->fp32_nodes, sizeof(int) * (size_t)c->nfp32);
    }
    d->evaluated = d->failed = false;
    return res->ncands++;
}

static bool same_strategy(const ac_candidate *a, const ac_candidate *b)
{
    if (a->method != b->method || a->per_channel != b->per_channel || a->accuracy_opt != b->accuracy_opt ||
        a->first_conv_fp32 != b->first_conv_fp32 || a->nfp32 != b->nfp32)
        return false;
    return a->nfp32 == 0 || memcmp(a->fp32_nodes, b->fp32_nodes, sizeof(int) * (size_t)a->nfp32) == 0;
}

/* A full-set candidate with the same strategy, or -1. */
static int find_same(const ac_search_result *res, const ac_candidate *c)
{
    for (int i = 0; i < res->ncands; i++)
        if (!res->cands[i].subset && same_strategy(&res->cands[i], c))
            return i;
    return -1;
}

typedef enum { ROUND_SCORES, ROUND_SUBSET, ROUND_PASS_FAIL } round_kind;

/* Whether a full-set candidate meets the budget. */
static bool cand_passes(const ac_search_options *o, const ac_candidate *c)
{
    return c->evaluated && !c->failed && !c->subset && !c->decided_fail && ac_search_passes(o, c->score);
}

/* Evaluates cands [first, ncands) as one round. In a pass/fail round every
 * candidate that does not pass is decided_fail with its score dropped,
 * whether the evaluator stopped it early or ran it to the end, so that
 * nothing downstream can tell the two apart. */
static int evaluate_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int first,
                          round_kind kind, ac_err *err)
{
    int n = res->ncands - first;
    if (n <= 0)
        return 0;
    res->rounds++;
    for (int i = first; i < res->ncands; i++) {
        ac_candidate *c = &res->cands[i];
        c->round = res->rounds;
        c->subset = kind == ROUND_SUBSET;
        c->pass_fail = kind == ROUND_PASS_FAIL;
        c->early_stopped = c->decided_fail = false;
    }
    ac_eval_round r = {.subset = kind == ROUND_SUBSET, .pass_fail = kind == ROUND_PASS_FAIL, .search = o};
    if (ev->evaluate(ev->ctx, &res->cands[first], n, &r, err))
        return -1;
    if (kind == ROUND_SUBSET)
        res->subset_evaluations += n;
    else
        res->evaluations += n;
    for (int i = first; i < res->ncands; i++) {
        ac_candidate *c = &res->cands[i];
        if (kind == ROUND_PASS_FAIL && c->evaluated && !c->failed &&
            (c->early_stopped || !ac_search_passes(o, c->score))) {
            c->decided_fail = true;
            c->score = 0;
        }
        res->early_stopped += c->early_stopped;
        if (c->decided_fail)
            logf_(o, "round %d: %-40s fails the budget%s, cost %.6g", res->rounds, c->name,
                  c->early_stopped ? " (stopped early by its bound)" : "", c->cost);
        else
            logf_(o, "round %d%s: %-40s %s score %.6f cost %.6g%s", res->rounds,
                  kind == ROUND_SUBSET ? " (subset)" : "", c->name, c->failed ? "FAILED" : "", c->score, c->cost,
                  cand_passes(o, c) ? "  passes" : "");
    }
    return 0;
}

/* The cheapest passing full-set candidate; among equally cheap ones the
 * highest score (the budget is a floor, not a target), then the lower index;
 * -1 if none. Passing candidates always carry their full score. */
static int cheapest_passing(const ac_search_options *o, const ac_search_result *res)
{
    int best = -1;
    for (int i = 0; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!cand_passes(o, c))
            continue;
        const ac_candidate *b = best >= 0 ? &res->cands[best] : NULL;
        bool cheaper = !b || c->cost < b->cost - SCORE_EPS;
        bool as_cheap = b && c->cost <= b->cost + SCORE_EPS;
        if (cheaper || (as_cheap && c->score > b->score + SCORE_EPS))
            best = i;
    }
    return best;
}

/* The highest full-set score (ties to the lower index), among the candidates
 * that keep no layer in fp32 by option when plain_only; -1 if none. */
static int highest_score(const ac_search_result *res, bool plain_only)
{
    int best = -1;
    for (int i = 0; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!c->evaluated || c->failed || c->subset || c->decided_fail)
            continue;
        if (plain_only && (c->accuracy_opt || c->first_conv_fp32 || c->nfp32))
            continue;
        if (best < 0 || c->score > res->cands[best].score + SCORE_EPS)
            best = i;
    }
    return best;
}

static ac_candidate plain(const char *name, ac_th_method m)
{
    ac_candidate c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.method = m;
    return c;
}

/* Plain int8: KL, per-tensor, no layer in fp32 (it keeps its name in full). */
static bool is_baseline(const ac_candidate *c)
{
    return c->method == AC_TH_KL && !c->per_channel && !c->accuracy_opt && !c->first_conv_fp32 && !c->nfp32;
}

static void describe(ac_candidate *c)
{
    int len = snprintf(c->name, sizeof c->name, "%s", ac_th_method_name(c->method));
    if (c->per_channel)
        len += snprintf(c->name + len, sizeof c->name - (size_t)len, "+per_channel");
    if (c->accuracy_opt)
        len += snprintf(c->name + len, sizeof c->name - (size_t)len, "+accuracy_opt");
    if (c->first_conv_fp32)
        len += snprintf(c->name + len, sizeof c->name - (size_t)len, "+first_conv_fp32");
    if (c->nfp32)
        snprintf(c->name + len, sizeof c->name - (size_t)len, "+%d fp32 layers", c->nfp32);
}

/* Round 1 with baseline_first: plain int8 alone, in full. */
static int baseline_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    ac_candidate c = plain("baseline (KL, per-tensor)", AC_TH_KL);
    if (add_candidate(res, &c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
    return evaluate_round(o, ev, res, 0, ROUND_SCORES, err);
}

/* Round 1, the screen: the baseline (KL, per-tensor, all int8) and every
 * single-option variant on the subset. The evaluator's subset score is a
 * continuous fidelity measure (the mean output cosine against fp32), so the
 * screen orders the candidates by fidelity at a small fraction of a full
 * evaluation's cost, and no full evaluation goes to a plan that the screen
 * already shows is worse than an equally cheap one. (Round 2 after a
 * baseline_first round 1.) Returns the index of the screened baseline; the
 * variants follow it. */
static int screen_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    int first = res->ncands;
    ac_candidate c = plain("baseline (KL, per-tensor)", AC_TH_KL);
    add_candidate(res, &c);
    c.per_channel = true;
    describe(&c);
    add_candidate(res, &c);
    for (int m = 0; m < AC_TH_METHOD_COUNT; m++) {
        if (m == AC_TH_KL)
            continue;
        c = plain("", (ac_th_method)m);
        describe(&c);
            add_candidate(res, &c);
    }
    c = plain("", AC_TH_KL);
    c.accuracy_opt = true;
    describe(&c);
    add_candidate(res, &c);
    c = plain("", AC_TH_KL);
    c.first_conv_fp32 = true;
    describe(&c);
    if (add_candidate(res, &c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
    if (evaluate_round(o, ev, res, first, ROUND_SUBSET, err))
        return -1;
    return first;
}

/* Whether screened candidate c repairs the baseline's fidelity on the subset. */
static bool screen_helps(const ac_search_result *res, int screen_base, const ac_candidate *c)
{
    const ac_candidate *b = &res->cands[screen_base];
    return c->evaluated && !c->failed && b->evaluated && !b->failed && c->score > b->score + SCORE_EPS;
}

typedef struct {
    int index;
    double cost, score;
} screened;

/* Cheapest first; among equally cheap ones the best screen score, then the lower index. */
static int cmp_screened(const void *a, const void *b)
{
    const screened *x = a, *y = b;
    if (x->cost < y->cost - SCORE_EPS)
        return -1;
    if (y->cost < x->cost - SCORE_EPS)
        return 1;
    if (x->score > y->score + SCORE_EPS)
        return -1;
    if (y->score > x->score + SCORE_EPS)
        return 1;
    return x->index - y->index;
}

/* Whether screened candidate `index` was evaluated in full already. */
static bool has_full_twin(const ac_search_result *res, int index)
{
    ac_candidate c = res->cands[index];
    c.subset = false;
    return find_same(res, &c) >= 0;
}

/* Evaluates the full-set twin of screened candidate `index`, alone in its round. */
static int full_twin_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int index,
                           ac_err *err)
{
    ac_candidate c = res->cands[index];
    c.subset = false;
    if (!is_baseline(&c))
        describe(&c);
    if (find_same(res, &c) >= 0)
        return 0;
    int first = res->ncands;
    if (add_candidate(res, &c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
    return evaluate_round(o, ev, res, first, ROUND_SCORES, err);
}

/* Whether the screened baseline has a score to compare the options with. */
static bool screen_base_ok(const ac_search_result *res, int screen_base)
{
    const ac_candidate *b = &res->cands[screen_base];
    return b->evaluated && !b->failed;
}

/* Rounds 2..: the baseline and the options that repair it on the screen, one
 * full evaluation per round, cheapest first (then best screen score), until
 * one meets the budget or FAST_TRIES were tried. Because they go cheapest
 * first, the first to pass is the cheapest that can pass among those tried.
 * A baseline whose screen failed goes alone: nothing else can be ordered. */
static int single_option_rounds(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                                int screen_base, ac_err *err)
{
    screened order[AC_TH_METHOD_COUNT + 4];
    int n = 0;
    order[n++] = (screened){screen_base, res->cands[screen_base].cost, res->cands[screen_base].score};
    for (int i = screen_base + 1; i < res->ncands && n < (int)(sizeof order / sizeof order[0]); i++)
        if (res->cands[i].subset && screen_helps(res, screen_base, &res->cands[i]))
            order[n++] = (screened){i, res->cands[i].cost, res->cands[i].score};
    qsort(order, (size_t)n, sizeof *order, cmp_screened);
    /* Auto mode keeps its full evaluations for the layer search. */
    int tries = o->auto_mode || !screen_base_ok(res, screen_base) ? 1 : FAST_TRIES;
    for (int t = 0; t < n && tries > 0; t++) {
        if (has_full_twin(res, order[t].index))
            continue; /* the baseline of a baseline_first round 1: no try spent */
        logf_(o, "round %d: %s, screen score %.6f", res->rounds + 1, res->cands[order[t].index].name,
              order[t].score);
        if (full_twin_round(o, ev, res, order[t].index, err))
            return -1;
        tries--;
        if (cheapest_passing(o, res) >= 0)
            break;
    }
    return 0;
}

/* Whether candidate c, screened on the subset now, screens above every
 * screened single option: auto mode's all-int8 combination only matters as
 * a better base for the layer search. -1 on error. */
static int screens_above_singles(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                                 int screen_base, const ac_candidate *c, ac_err *err)
{
    double best = res->cands[screen_base].score;
    for (int i = screen_base + 1; i < res->ncands; i++)
        if (res->cands[i].subset && res->cands[i].evaluated && !res->cands[i].failed && res->cands[i].score > best)
            best = res->cands[i].score;
    int first = res->ncands;
    if (add_candidate(res, c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory"), -1;
    if (evaluate_round(o, ev, res, first, ROUND_SUBSET, err))
        return -1;
    const ac_candidate *s = &res->cands[first];
    bool above = s->evaluated && !s->failed && s->score > best + SCORE_EPS;
    logf_(o, "auto: %s screens %.6f, the best single option %.6f: %s", s->name, s->score, best,
          above ? "evaluated in full" : "not evaluated in full");
    return above;
}

/* The options that repaired the baseline on the screen, combined: the
 * best-screening threshold method other than KL, plus each boolean option
 * that helped. Evaluated cheapest first: the combination without its costly
 * options (accuracy_opt, first_conv_fp32), then with one of them, then the
 * full combination; each step is one round and the search stops after a
 * round where something passes. */
static int combination_rounds(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                              int screen_base, ac_err *err)
{
    ac_candidate combo = plain("", AC_TH_KL);
    double best_method = res->cands[screen_base].score;
    for (int i = screen_base + 1; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!c->subset || !screen_helps(res, screen_base, c))
            continue;
        if (c->method != AC_TH_KL && c->score > best_method + SCORE_EPS) {
            best_method = c->score;
            combo.method = c->method;
        }
        combo.per_channel |= c->per_channel;
        combo.accuracy_opt |= c->accuracy_opt;
        combo.first_conv_fp32 |= c->first_conv_fp32;
    }
    /* Costly options kept: none, one, both (when the combination has them).
     * Auto mode only needs the all-int8 combination, as a better base for its
     * layer search (which finds cheaper fp32 sets than whole options), so it
     * screens that one first. */
    int max_costly = o->auto_mode ? 0 : 2;
    for (int costly = 0; costly <= max_costly; costly++) {
        ac_candidate todo[4];
        int n = 0;
        for (int keep = 0; keep < 4; keep++) {
            bool ao = keep & 1, fc = keep & 2;
            if ((ao && !combo.accuracy_opt) || (fc && !combo.first_conv_fp32) || ao + fc != costly)
                continue;
            ac_candidate c = combo;
            c.accuracy_opt = ao;
            c.first_conv_fp32 = fc;
            describe(&c);
            if (find_same(res, &c) < 0)
                todo[n++] = c;
        }
        if (!n)
            continue;
        if (o->auto_mode) {
            int above = screens_above_singles(o, ev, res, screen_base, &todo[0], err);
            if (above <= 0)
                return above;
        }
        int first = res->ncands;
        for (int i = 0; i < n; i++)
            if (add_candidate(res, &todo[i]) < 0)
                return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
        logf_(o, "round %d: %d combination(s) of the helpful options with %d costly option(s)", res->rounds + 1, n,
              costly);
        if (evaluate_round(o, ev, res, first, ROUND_SCORES, err))
            return -1;
        if (cheapest_passing(o, res) >= 0)
            break;
    }
    return 0;
}

typedef struct {
    int node;
    double score;
} ranked;

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* base with its fp32 layers and layers[0..k) in fp32, the list (in tmp)
 * sorted by node index. */
static ac_candidate with_fp32(const ac_candidate *base, const ranked *layers, int k, int *tmp)
{
    ac_candidate c = *base;
    int n = 0;
    for (int i = 0; i < base->nfp32; i++)
        tmp[n++] = base->fp32_nodes[i];
    for (int i = 0; i < k; i++)
        tmp[n++] = layers[i].node;
    qsort(tmp, (size_t)n, sizeof(int), cmp_int);
    c.fp32_nodes = tmp;
    c.nfp32 = n;
    return c;
}

/* base + the first k ranked layers in fp32, unless already evaluated. */
static int add_with_fp32(ac_search_result *res, const ac_candidate *base, const ranked *rank, int k, int *tmp)
{
    ac_candidate c = with_fp32(base, rank, k, tmp);
    describe(&c);
    int same = find_same(res, &c);
    return same >= 0 ? same : add_candidate(res, &c);
}

/* base + rank[0..k) in fp32 in a pass/fail round of its own (unless it was
 * evaluated already): 1 when it passes, 0 when not, -1 on error. */
static int prefix_passes(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                         const ac_candidate *base, const ranked *rank, int k, int *tmp, ac_err *err)
{
    int start = res->ncands;
    int idx = add_with_fp32(res, base, rank, k, tmp);
    if (idx < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory"), -1;
    if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
        return -1;
    return cand_passes(o, &res->cands[idx]);
}

/* The split points strictly inside (lo, hi), up to P of them, evenly spread
 * (one, the middle, when none falls inside). */
static int split_points(int lo, int hi, int P, int *out)
{
    int n = 0;
    for (int i = 1; i <= P; i++) {
        int k = lo + (int)((int64_t)(hi - lo) * i / (P + 1));
        if (k <= lo || k >= hi || (n && out[n - 1] == k))
            continue;
        out[n++] = k;
    }
    if (!n)
        out[n++] = lo + (hi - lo) / 2;
    return n;
}

static int max_split_points(const ac_search_options *o)
{
    return o->parallel > 0 ? (o->parallel > MAX_SPLITS ? MAX_SPLITS : o->parallel) : 1;
}

/* A kept layer and the subset score of the kept set without it. */
typedef struct {
    int node;
    double score; /* of the kept set without it */
    int pos;      /* in the kept set's order (ties keep it) */
} removable;

static int cmp_removable(const void *a, const void *b)
{
    const removable *x = a, *y = b;
    if (x->score > y->score + SCORE_EPS)
        return -1;
    if (y->score > x->score + SCORE_EPS)
        return 1;
    return x->pos - y->pos;
}

/* keep[0..kept) without the layers of R[0..m), in keep's order, into out
 * (which may be keep itself); returns the count. */
static int keep_without(const ranked *keep, int kept, const removable *R, int m, ranked *out)
{
    int n = 0;
    for (int q = 0; q < kept; q++) {
        bool removed = false;
        for (int r = 0; r < m && !removed; r++)
            removed = R[r].node == keep[q].node;
        if (!removed)
            out[n++] = keep[q];
    }
    return n;
}

/* base + keep[0..kept) in fp32 without the first m layers of R (by node). */
static int add_without(ac_search_result *res, const ac_candidate *base, const ranked *keep, int kept,
                       const removable *R, int m, ranked *scratch, int *tmp)
{
    return add_with_fp32(res, base, scratch, keep_without(keep, kept, R, m, scratch), tmp);
}

/* base + keep[0..kept) in fp32 without keep[i], on the subset: how much
 * keep[i] costs back in int8 with the others in fp32 (i = -1: the kept set
 * itself, the reference for those costs). Returns its index or -1. */
static int add_removal_probe(const ac_evaluator *ev, ac_search_result *res, const ac_candidate *base,
                             const ranked *keep, int kept, int i, ranked *scratch, int *tmp)
{
    int n = 0;
    for (int q = 0; q < kept; q++)
        if (q != i)
            scratch[n++] = keep[q];
    ac_candidate c = with_fp32(base, scratch, n, tmp);
    c.subset = true;
    if (i < 0)
        snprintf(c.name, sizeof c.name, "fp32 set of %d layer(s)", kept);
    else
        snprintf(c.name, sizeof c.name, "fp32 set without %s", ev->layer_name(ev->ctx, keep[i].node));
    return add_candidate(res, &c);
}

/* The search for m in return_to_int8: the kept set without R[0..lo)
 * passes, without R[0..hi) it fails. x[m] is the predicted subset loss of
 * returning R[0..m) (NULL: no prediction); f_top is the kept set's full
 * score (fp32's own when it is every layer and not evaluated). */
typedef struct {
    int lo, hi, kept;
    double f_top, f_base, threshold;
    const double *x;
    bool last_wrong; /* the previous round's outcome differed from the prediction */
} m_search;

/* The largest m in [lo, hi) predicted to pass, or -1 for no prediction: the
 * full score taken as linear in x from the kept set (f_top at x = 0) to the
 * base (f_base at x[kept]). */
static int predicted_last_pass(const m_search *s)
{
    if (!s->x || s->last_wrong)
        return -1;
    double span = s->x[s->kept], drop = s->f_top - s->f_base;
    if (!(span > SCORE_EPS) || !(drop > SCORE_EPS))
        return -1;
    int m = s->lo;
    for (int k = s->lo + 1; k < s->hi; k++)
        if (s->f_top - drop * s->x[k] / span >= s->threshold - SCORE_EPS)
            m = k;
    return m;
}

/* The round's values of m, sorted: the predicted boundary pred (its last
 * pass and, room permitting, its first fail), then points spread evenly
 * over (lo, hi) up to P. Without a prediction (pred < 0: none, or the last
 * one was wrong) only the even spread: a misleading prediction costs at most
 * every other round of the k-ary search. */
static int probe_points(const m_search *s, int pred, int P, int *out)
{
    int n = 0;
    if (pred > s->lo)
        out[n++] = pred;
    if (pred >= s->lo && pred + 1 < s->hi && n < P)
        out[n++] = pred + 1;
    int even[MAX_SPLITS];
    int ne = split_points(s->lo, s->hi, P, even);
    for (int i = 0; i < ne && n < P; i++) {
        bool dup = false;
        for (int q = 0; q < n; q++)
            dup |= out[q] == even[i];
        if (!dup)
            out[n++] = even[i];
    }
    qsort(out, (size_t)n, sizeof(int), cmp_int);
    return n;
}

/* x[m] for m in [0, kept]: the sum of the subset losses (the kept set's
 * subset score less that of the kept set without R[i]) of R[0..m). */
static void subset_losses(const removable *R, int kept, double kept_subset, double *x)
{
    x[0] = 0;
    for (int m = 0; m < kept; m++) {
        double loss = kept_subset - R[m].score;
        x[m + 1] = x[m] + (loss > 0 ? loss : 0);
    }
}

/* Whether the kept set (base + keep[0..kept) in fp32) was evaluated and
 * passed, with its full score in *score (any real: a remote client's metric
 * need not be a fraction). */
static bool verified_score(const ac_search_options *o, const ac_search_result *res, const ac_candidate *base,
                           const ranked *keep, int kept, int *tmp, double *score)
{
    ac_candidate c = with_fp32(base, keep, kept, tmp);
    int i = find_same(res, &c);
    if (i < 0 || !cand_passes(o, &res->cands[i]))
        return false;
    *score = res->cands[i].score;
    return true;
}

/* Whether the unverified kept set passes, in a pass/fail round of its own:
 * if it does not, no subset of it in fp32 can. */
static int kept_set_passes(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                           const ac_candidate *base, const ranked *keep, int kept, int *tmp, ac_err *err)
{
    int passes = prefix_passes(o, ev, res, base, keep, kept, tmp, err);
    if (passes == 0)
        logf_(o, "auto: even with all %d layers in fp32 the budget is not met", kept);
    return passes;
}

/* One pass of returning layers to int8 (see ac_search.h): a subset round
 * scores the kept set and the kept set without each kept layer, and R orders
 * the kept layers by that score (the removal that costs least first). A
 * k-ary search with full-set pass/fail rounds then finds the largest m such
 * that the kept set without R[0..m) passes: m = kept (the base) is known to
 * fail; m = 0 (the kept set) passed, or is assumed to (the first pass, from
 * every layer in fp32) and is evaluated only when every other m fails. Each
 * round probes where the subset losses, taken as additive, predict the
 * boundary. keep[0..*kept) becomes what stays in fp32 (*kept = 0 when even
 * the whole kept set fails); returns the number of layers returned to int8,
 * or -1. */
static int return_to_int8(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                          const ac_candidate *base, ranked *keep, int *kept_io, int *tmp, ac_err *err)
{
    int kept = *kept_io;
    double f_kept = 0;
    bool verified = verified_score(o, res, base, keep, kept, tmp, &f_kept);
    if (kept < 2) {
        /* without its only layer the kept set is the base, which fails */
        if (verified)
            return 0;
        int all = kept_set_passes(o, ev, res, base, keep, kept, tmp, err);
        if (all < 0)
            return -1;
        if (!all)
            *kept_io = 0;
        return 0;
    }
    int rc = -1;
    removable *R = malloc(sizeof(removable) * (size_t)kept);
    ranked *scratch = malloc(sizeof(ranked) * (size_t)kept);
    double *x = malloc(sizeof(double) * (size_t)(kept + 1));
    if (!R || !scratch || !x) {
        ac_err_set(err, AC_E_NOMEM, "search: out of memory");
        goto done;
    }
    m_search s = {.lo = 0, .hi = kept, .kept = kept, .f_top = verified ? f_kept : o->fp32_score,
                  .f_base = base->score, .threshold = o->fp32_score - o->accept_decay};
    /* Predict only from a kept set that clears the threshold by half the
     * budget: from one just above it the line's start is within the score's
     * own noise (top-1 on 1000 images moves by a few samples between
     * neighbouring plans), and the prediction hugs the kept set. The kept
     * set's own subset score, the reference for the losses x, is probed
     * only then. */
    bool predict = s.f_top - s.threshold >= o->accept_decay / 2 - SCORE_EPS;
    int start = res->ncands, first = predict ? -1 : 0;
    for (int i = first; i < kept; i++)
        if (add_removal_probe(ev, res, base, keep, kept, i, scratch, tmp) != start - first + i) {
            ac_err_set(err, AC_E_NOMEM, "search: out of memory");
            goto done;
        }
    if (evaluate_round(o, ev, res, start, ROUND_SUBSET, err))
        goto done;
    for (int i = 0; i < kept; i++) {
        const ac_candidate *c = &res->cands[start - first + i];
        R[i] = (removable){keep[i].node, c->failed ? -1.0 : c->score, i};
    }
    qsort(R, (size_t)kept, sizeof *R, cmp_removable);
    for (int i = 0; i < kept && o->debug; i++)
        logf_(o, "auto: int8 order %d: %s (subset score %.6f with it in int8)", i + 1,
              ev->layer_name(ev->ctx, R[i].node), R[i].score);
    if (predict && !res->cands[start].failed) {
        subset_losses(R, kept, res->cands[start].score, x);
        s.x = x;
    }
    int P = max_split_points(o);
    while (s.hi - s.lo > 1) {
        int ms[MAX_SPLITS], ids[MAX_SPLITS];
        int pred = predicted_last_pass(&s), nm = probe_points(&s, pred, P, ms);
        start = res->ncands;
        for (int i = 0; i < nm; i++) {
            ids[i] = add_without(res, base, keep, kept, R, ms[i], scratch, tmp);
            if (ids[i] < 0) {
                ac_err_set(err, AC_E_NOMEM, "search: out of memory");
                goto done;
            }
        }
        if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
            goto done;
        int new_lo = s.lo, new_hi = s.hi;
        bool wrong = false;
        for (int i = 0; i < nm; i++) {
            bool passes = cand_passes(o, &res->cands[ids[i]]);
            wrong |= pred >= 0 && passes != (ms[i] <= pred);
            if (passes && ms[i] > new_lo)
                new_lo = ms[i];
        }
        for (int i = 0; i < nm; i++)
            if (!cand_passes(o, &res->cands[ids[i]]) && ms[i] > new_lo && ms[i] < new_hi)
                new_hi = ms[i];
        logf_(o, "auto: layers back to int8: (%d, %d) -> (%d, %d) of %d%s", s.lo, s.hi, new_lo, new_hi, kept,
              pred < 0 ? ", evenly split" : wrong ? ", predicted wrongly" : ", as predicted");
        s.lo = new_lo;
        s.hi = new_hi;
        s.last_wrong = wrong;
    }
    if (s.lo == 0 && !verified) {
        int all = kept_set_passes(o, ev, res, base, keep, kept, tmp, err);
        if (all < 0)
            goto done;
        if (!all) {
            *kept_io = 0;
            rc = 0;
            goto done;
        }
    }
    /* What stays in fp32: keep without R[0..lo). */
    int n = keep_without(keep, kept, R, s.lo, keep);
    *kept_io = n;
    logf_(o, "auto: %d of %d layer(s) back to int8: %d kept in fp32", s.lo, kept, n);
    rc = s.lo;
done:
    free(R);
    free(scratch);
    free(x);
    return rc;
}

static int cmp_gain(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score > y->score + SCORE_EPS)
        return -1;
    if (y->score > x->score + SCORE_EPS)
        return 1;
    return x->node - y->node;
}

/* k-ary search for the smallest passing k in (lo, hi] of base + rank[0..k)
 * in fp32 (k = hi is known to pass); returns it, or -1. */
static int smallest_prefix(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                           const ac_candidate *base, const ranked *rank, int lo, int hi, int *tmp, ac_err *err)
{
    int P = max_split_points(o);
    while (hi - lo > 1) {
        int kidx[MAX_SPLITS], idx[MAX_SPLITS];
        int start = res->ncands, nk = split_points(lo, hi, P, kidx);
        for (int i = 0; i < nk; i++)
            if ((idx[i] = add_with_fp32(res, base, rank, kidx[i], tmp)) < 0)
                return ac_err_set(err, AC_E_NOMEM, "search: out of memory"), -1;
        if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
            return -1;
        int new_lo = lo, new_hi = hi;
        for (int i = 0; i < nk; i++)
            if (cand_passes(o, &res->cands[idx[i]]) && kidx[i] < new_hi)
                new_hi = kidx[i];
        for (int i = 0; i < nk; i++)
            if (!cand_passes(o, &res->cands[idx[i]]) && kidx[i] > new_lo && kidx[i] < new_hi)
                new_lo = kidx[i];
        logf_(o, "auto: forward: (%d, %d] -> (%d, %d]", lo, hi, new_lo, new_hi);
        lo = new_lo;
        hi = new_hi;
    }
    return hi;
}

/* Forward, for a base that misses the budget by little: a subset round
 * scores the base with each layer alone in fp32, and the most helpful 1, 2,
 * 4, ... FORWARD_MAX layers go to fp32 (one full pass/fail round each) until
 * one passes; then the smallest passing count in between. keep[0..*kept)
 * gets the layers kept in fp32. Returns 1 when a plan passed, 0 when none of
 * up to FORWARD_MAX layers did, -1 on error. */
static int forward_search(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                          const ac_candidate *base, const int *layers, int nl, ranked *keep, int *kept, int *tmp,
                          ac_err *err)
{
    int first = res->ncands;
    for (int i = 0; i < nl; i++) {
        ranked one = {layers[i], 0};
        ac_candidate c = with_fp32(base, &one, 1, tmp);
        c.subset = true;
        snprintf(c.name, sizeof c.name, "fp32 alone: %s", ev->layer_name(ev->ctx, layers[i]));
        if (add_candidate(res, &c) != first + i)
            return ac_err_set(err, AC_E_NOMEM, "search: out of memory"), -1;
    }
    if (evaluate_round(o, ev, res, first, ROUND_SUBSET, err))
        return -1;
    for (int i = 0; i < nl; i++) {
        const ac_candidate *c = &res->cands[first + i];
        keep[i] = (ranked){layers[i], c->failed ? -1.0 : c->score};
    }
    qsort(keep, (size_t)nl, sizeof *keep, cmp_gain);
    for (int i = 0; i < nl && o->debug; i++)
        logf_(o, "auto: forward rank %d: %s (subset score %.6f in fp32 alone)", i + 1,
              ev->layer_name(ev->ctx, keep[i].node), keep[i].score);
    int lo = 0, hi = -1;
    for (int k = 1; k <= nl && k <= FORWARD_MAX && hi < 0; k *= 2) {
        int passes = prefix_passes(o, ev, res, base, keep, k, tmp, err);
        if (passes < 0)
            return -1;
        if (passes)
            hi = k;
        else
            lo = k;
    }
    if (hi < 0) {
        logf_(o, "auto: forward: up to %d layer(s) in fp32 do not pass", lo);
        return 0;
    }
    *kept = smallest_prefix(o, ev, res, base, keep, lo, hi, tmp, err);
    return *kept < 0 ? -1 : 1;
}

static int auto_search(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int base_i,
                       ac_err *err)
{
    int rc = -1;
    int cap = 4096;
    int *layers = malloc(sizeof(int) * (size_t)cap);
    int *tmp = malloc(sizeof(int) * (size_t)cap * 2);
    ranked *keep = malloc(sizeof(ranked) * (size_t)cap);
    if (!layers || !tmp || !keep) {
        ac_err_set(err, AC_E_NOMEM, "search: out of memory");
        goto done;
    }
    ac_candidate base = res->cands[base_i];
    int nl = ev->int8_layers(ev->ctx, &base, layers, cap);
    if (nl < 1) {
        logf_(o, "auto: base '%s' has no int8 layer left to keep in fp32", base.name);
        rc = 0;
        goto done;
    }
    /* A base that misses the budget by no more than the budget again needs
     * few fp32 layers: look forward from it. Otherwise, or when a few layers
     * do not do, come back from every layer in fp32. */
    double miss = o->fp32_score - base.score - o->accept_decay;
    bool near = miss <= o->accept_decay + SCORE_EPS;
    logf_(o, "auto: base '%s' misses the budget by %.6f; %d int8 layer(s) to keep in fp32 or not, %s first",
          base.name, miss, nl, near ? "forward" : "backward");
    int kept = 0, found = 0;
    if (near && (found = forward_search(o, ev, res, &base, layers, nl, keep, &kept, tmp, err)) < 0)
        goto done;
    if (!found) {
        /* Backward: from every int8 layer in fp32, which is evaluated
         * only if nothing less passes (then nothing can). */
        for (int i = 0; i < nl; i++)
            keep[i] = (ranked){layers[i], 0};
        kept = nl;
    }
    /* Return layers to int8 from what passes, twice at most: each pass
     * measures every kept layer in the company of the others kept. */
    for (int pass = 0; kept > 0 && pass < AUTO_PASSES; pass++) {
        int back = return_to_int8(o, ev, res, &base, keep, &kept, tmp, err);
        if (back < 0)
            goto done;
        if (back == 0)
            break;
    }
    rc = 0;
done:
    free(layers);
    free(tmp);
    free(keep);
    return rc;
}

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    memset(res, 0, sizeof *res);
    res->best = -1;
    if (o->baseline_first && baseline_round(o, ev, res, err))
        return -1;
    if (cheapest_passing(o, res) < 0) {
        int screen_base = screen_round(o, ev, res, err);
        if (screen_base < 0 || single_option_rounds(o, ev, res, screen_base, err))
            return -1;
        if (cheapest_passing(o, res) < 0 && screen_base_ok(res, screen_base) &&
            combination_rounds(o, ev, res, screen_base, err))
            return -1;
    }
    if (o->auto_mode) {
        /* Even when fast mode passed: a plan with a few fp32 layers may be
         * cheaper than accuracy_opt or first_conv_fp32. */
        int base = highest_score(res, true);
        if (base >= 0 && !cand_passes(o, &res->cands[base]) && auto_search(o, ev, res, base, err))
            return -1;
    }
    int best = cheapest_passing(o, res);
    res->met_budget = best >= 0;
    if (best < 0)
        best = highest_score(res, false); /* nothing meets the budget: report the best full-set score */
    res->best = best;
    return 0;
}
