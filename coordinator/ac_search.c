#include "ac_search.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_EPS 1e-12
#define MAX_SPLITS 64 /* split points per k-ary round */

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

/* Round 1: plain int8 alone. Every other candidate runs the same layers in
 * int8 or more of them in fp32, so none is cheaper: when the baseline meets
 * the budget it is the plan, and the options are never evaluated. */
static int baseline_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    ac_candidate c = plain("baseline (KL, per-tensor)", AC_TH_KL);
    if (add_candidate(res, &c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
    return evaluate_round(o, ev, res, 0, ROUND_SCORES, err);
}

/* Round 2 (the baseline missed the budget): every single-option variant at once. */
static int options_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    int first = res->ncands;
    ac_candidate c = plain("", AC_TH_KL);
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
    return evaluate_round(o, ev, res, first, ROUND_SCORES, err);
}

/* Round 3: the options that beat the baseline, combined, with cheaper subsets. */
static int combination_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    const ac_candidate *base = &res->cands[0];
    if (!base->evaluated || base->failed)
        return 0;
    ac_candidate combo = plain("", AC_TH_KL);
    double best_method = base->score;
    for (int i = 1; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!c->evaluated || c->failed || c->score <= base->score + SCORE_EPS)
            continue;
        if (c->method != AC_TH_KL && c->score > best_method + SCORE_EPS) {
            best_method = c->score;
            combo.method = c->method;
        }
        combo.per_channel |= c->per_channel;
        combo.accuracy_opt |= c->accuracy_opt;
        combo.first_conv_fp32 |= c->first_conv_fp32;
    }
    int first = res->ncands;
    /* The full combination, then without each costly option, then without both. */
    for (int drop = 0; drop < 4; drop++) {
        ac_candidate c = combo;
        if ((drop & 1) && !c.accuracy_opt)
            continue;
        if ((drop & 2) && !c.first_conv_fp32)
            continue;
        if (drop & 1)
            c.accuracy_opt = false;
        if (drop & 2)
            c.first_conv_fp32 = false;
        describe(&c);
        if (find_same(res, &c) < 0 && add_candidate(res, &c) < 0)
            return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
    }
    logf_(o, "round %d: %d combination(s) of the helpful options", res->rounds + 1, res->ncands - first);
    return evaluate_round(o, ev, res, first, ROUND_SCORES, err);
}

typedef struct {
    int node;
    double score;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score > y->score + SCORE_EPS)
        return -1;
    if (y->score > x->score + SCORE_EPS)
        return 1;
    return x->node - y->node;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* base + the first k ranked layers in fp32 (the list sorted by node index). */
static int add_with_fp32(ac_search_result *res, const ac_candidate *base, const ranked *rank, int k, int *tmp)
{
    ac_candidate c = *base;
    int n = 0;
    for (int i = 0; i < base->nfp32; i++)
        tmp[n++] = base->fp32_nodes[i];
    for (int i = 0; i < k; i++)
        tmp[n++] = rank[i].node;
    qsort(tmp, (size_t)n, sizeof(int), cmp_int);
    c.fp32_nodes = tmp;
    c.nfp32 = n;
    describe(&c);
    int same = find_same(res, &c);
    return same >= 0 ? same : add_candidate(res, &c);
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

/* A layer whose removal alone from the kept set still passes. */
typedef struct {
    int node;
    double score; /* of the kept set without it */
    int pos;      /* in rank order */
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

/* base + keep[0..kept) in fp32 without the first m layers of R (by node). */
static int add_without(ac_search_result *res, const ac_candidate *base, const ranked *keep, int kept,
                       const removable *R, int m, ranked *scratch, int *tmp)
{
    int n = 0;
    for (int q = 0; q < kept; q++) {
        bool out = false;
        for (int r = 0; r < m && !out; r++)
            out = R[r].node == keep[q].node;
        if (!out)
            scratch[n++] = keep[q];
    }
    return add_with_fp32(res, base, scratch, n, tmp);
}

/* The re-rank (see ac_search.h): one round of single removals from the kept
 * set, then a k-ary search for the largest removable prefix of R. */
static int rerank(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res,
                  const ac_candidate *base, const ranked *keep, int kept, int *tmp, ac_err *err)
{
    if (kept < 1)
        return 0;
    int rc = -1, nr = 0;
    int *idx = malloc(sizeof(int) * (size_t)kept);
    removable *R = malloc(sizeof(removable) * (size_t)kept);
    ranked *scratch = malloc(sizeof(ranked) * (size_t)kept);
    if (!idx || !R || !scratch) {
        ac_err_set(err, AC_E_NOMEM, "search: out of memory");
        goto done;
    }
    int start = res->ncands;
    for (int i = 0; i < kept; i++) {
        removable one = {keep[i].node, 0, i};
        idx[i] = add_without(res, base, keep, kept, &one, 1, scratch, tmp);
        if (idx[i] < 0) {
            ac_err_set(err, AC_E_NOMEM, "search: out of memory");
            goto done;
        }
    }
    if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
        goto done;
    for (int i = 0; i < kept; i++)
        if (cand_passes(o, &res->cands[idx[i]]))
            R[nr++] = (removable){keep[i].node, res->cands[idx[i]].score, i};
    qsort(R, (size_t)nr, sizeof *R, cmp_removable);
    for (int i = 0; i < nr; i++)
        logf_(o, "auto: re-rank: %s can go back to int8 alone (score %.6f without it)",
              ev->layer_name(ev->ctx, R[i].node), R[i].score);
    /* The largest m in [1, nr] whose prefix R[0..m) can go together: m = 1 passes, nr + 1 is the sentinel. */
    int lo = nr ? 1 : 0, hi = nr + 1, P = max_split_points(o);
    while (hi - lo > 1) {
        int ms[MAX_SPLITS], ids[MAX_SPLITS];
        int nm = split_points(lo, hi, P, ms);
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
        int new_lo = lo, new_hi = hi;
        for (int i = 0; i < nm; i++)
            if (cand_passes(o, &res->cands[ids[i]]) && ms[i] > new_lo)
                new_lo = ms[i];
        for (int i = 0; i < nm; i++)
            if (!cand_passes(o, &res->cands[ids[i]]) && ms[i] > new_lo && ms[i] < new_hi)
                new_hi = ms[i];
        logf_(o, "auto: re-rank: removable prefix [%d, %d) -> [%d, %d)", lo, hi, new_lo, new_hi);
        lo = new_lo;
        hi = new_hi;
    }
    logf_(o, "auto: re-rank returns %d of %d kept layer(s) to int8: %d kept in fp32", lo, kept, kept - lo);
    rc = 0;
done:
    free(idx);
    free(R);
    free(scratch);
    return rc;
}

static int auto_search(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int base_i,
                       ac_err *err)
{
    int rc = -1;
    int cap = 4096;
    int *layers = malloc(sizeof(int) * (size_t)cap);
    int *tmp = malloc(sizeof(int) * (size_t)cap * 2);
    ranked *rank = malloc(sizeof(ranked) * (size_t)cap);
    if (!layers || !tmp || !rank) {
        ac_err_set(err, AC_E_NOMEM, "search: out of memory");
        goto done;
    }
    ac_candidate base = res->cands[base_i];
    int nl = ev->int8_layers(ev->ctx, &base, layers, cap);
    logf_(o, "auto: base '%s', ranking %d int8 layers by sensitivity", base.name, nl);
    /* Sensitivity on the subset: the base itself, then the base + each layer in fp32. */
    int first = res->ncands;
    ac_candidate sub = base;
    snprintf(sub.name, sizeof sub.name, "sensitivity base");
    sub.subset = true; /* kept apart from the full-set base by find_same */
    if (add_candidate(res, &sub) < 0)
        goto nomem;
    for (int i = 0; i < nl; i++) {
        int idx = res->ncands;
        ac_candidate c = base;
        c.subset = true;
        int n = 0;
        for (int q = 0; q < base.nfp32; q++)
            tmp[n++] = base.fp32_nodes[q];
        tmp[n++] = layers[i];
        qsort(tmp, (size_t)n, sizeof(int), cmp_int);
        c.fp32_nodes = tmp;
        c.nfp32 = n;
        snprintf(c.name, sizeof c.name, "sensitivity %s", ev->layer_name(ev->ctx, layers[i]));
        if (add_candidate(res, &c) != idx)
            goto nomem;
    }
    if (evaluate_round(o, ev, res, first, ROUND_SUBSET, err))
        goto done;
    for (int i = 0; i < nl; i++) {
        rank[i].node = layers[i];
        const ac_candidate *c = &res->cands[first + 1 + i];
        rank[i].score = c->failed ? -1.0 : c->score;
    }
    qsort(rank, (size_t)nl, sizeof(ranked), cmp_ranked);
    for (int i = 0; i < nl && o->debug; i++)
        logf_(o, "auto: rank %d %s (subset score %.6f in fp32)", i + 1, ev->layer_name(ev->ctx, rank[i].node),
              rank[i].score);

    /* k-ary search for the smallest passing k in (lo, hi]. k = 0 is the base (fails). */
    int lo = 0, hi = -1;
    {
        int start = res->ncands;
        int all = add_with_fp32(res, &base, rank, nl, tmp);
        if (all < 0)
            goto nomem;
        if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
            goto done;
        if (cand_passes(o, &res->cands[all]))
            hi = nl;
    }
    if (hi < 0) {
        logf_(o, "auto: even with all %d ranked layers in fp32 the budget is not met", nl);
        rc = 0;
        goto done;
    }
    int P = max_split_points(o);
    while (hi - lo > 1) {
        int kidx[MAX_SPLITS], idx[MAX_SPLITS];
        int start = res->ncands, nk = split_points(lo, hi, P, kidx);
        for (int i = 0; i < nk; i++) {
            idx[i] = add_with_fp32(res, &base, rank, kidx[i], tmp);
            if (idx[i] < 0)
                goto nomem;
        }
        if (evaluate_round(o, ev, res, start, ROUND_PASS_FAIL, err))
            goto done;
        int new_lo = lo, new_hi = hi;
        for (int i = 0; i < nk; i++)
            if (cand_passes(o, &res->cands[idx[i]]) && kidx[i] < new_hi)
                new_hi = kidx[i];
        for (int i = 0; i < nk; i++)
            if (!cand_passes(o, &res->cands[idx[i]]) && kidx[i] > new_lo && kidx[i] < new_hi)
                new_lo = kidx[i];
        logf_(o, "auto: bisection (%d, %d] -> (%d, %d]", lo, hi, new_lo, new_hi);
        lo = new_lo;
        hi = new_hi;
    }
    rc = rerank(o, ev, res, &base, rank, hi, tmp, err);
    goto done;
nomem:
    ac_err_set(err, AC_E_NOMEM, "search: out of memory");
done:
    free(layers);
    free(tmp);
    free(rank);
    return rc;
}

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    memset(res, 0, sizeof *res);
    res->best = -1;
    if (baseline_round(o, ev, res, err))
        return -1;
    int best = cheapest_passing(o, res);
    if (best < 0 && options_round(o, ev, res, err))
        return -1;
    best = cheapest_passing(o, res);
    if (best < 0 && combination_round(o, ev, res, err))
        return -1;
    if (o->auto_mode) {
        /* Even when fast mode passed: a plan with a few fp32 layers may be
         * cheaper than accuracy_opt or first_conv_fp32. */
        int base = highest_score(res, true);
        if (base >= 0 && !cand_passes(o, &res->cands[base]) && auto_search(o, ev, res, base, err))
            return -1;
    }
    best = cheapest_passing(o, res);
    res->met_budget = best >= 0;
    if (best < 0)
        best = highest_score(res, false); /* nothing meets the budget: report the best full-set score */
    res->best = best;
    return 0;
}
