#include "ac_search.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_EPS 1e-12

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

/* Evaluates cands [first, ncands) as one round. */
static int evaluate_round(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int first,
                          bool subset, ac_err *err)
{
    int n = res->ncands - first;
    if (n <= 0)
        return 0;
    res->rounds++;
    for (int i = first; i < res->ncands; i++) {
        res->cands[i].round = res->rounds;
        res->cands[i].subset = subset;
    }
    if (ev->evaluate(ev->ctx, &res->cands[first], n, subset, err))
        return -1;
    if (subset)
        res->subset_evaluations += n;
    else
        res->evaluations += n;
    for (int i = first; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        logf_(o, "round %d%s: %-40s %s score %.6f cost %.6g%s", res->rounds, subset ? " (subset)" : "", c->name,
              c->failed ? "FAILED" : "", c->score, c->cost,
              !subset && !c->failed && ac_search_passes(o, c->score) ? "  passes" : "");
    }
    return 0;
}

/* The cheapest passing full-set candidate, ties to the lower index; -1 if none. */
static int cheapest_passing(const ac_search_options *o, const ac_search_result *res)
{
    int best = -1;
    for (int i = 0; i < res->ncands; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!c->evaluated || c->failed || c->subset || !ac_search_passes(o, c->score))
            continue;
        if (best < 0 || c->cost < res->cands[best].cost - SCORE_EPS)
            best = i;
    }
    return best;
}

static int highest_score(const ac_search_result *res, int first, int last)
{
    int best = -1;
    for (int i = first; i < last; i++) {
        const ac_candidate *c = &res->cands[i];
        if (!c->evaluated || c->failed || c->subset)
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

static int fast_round1(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    ac_candidate c = plain("baseline (KL, per-tensor)", AC_TH_KL);
    if (add_candidate(res, &c) < 0)
        return ac_err_set(err, AC_E_NOMEM, "search: out of memory");
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
    return evaluate_round(o, ev, res, 0, false, err);
}

/* Round 2: the options that beat the baseline, combined, with cheaper subsets. */
static int fast_round2(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
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
    logf_(o, "round 2: %d combination(s) of the helpful options", res->ncands - first);
    return evaluate_round(o, ev, res, first, false, err);
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

static int auto_search(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, int base_i,
                       ac_err *err)
{
    int rc = -1;
    int cap = 4096;
    int *layers = malloc(sizeof(int) * (size_t)cap);
    int *tmp = malloc(sizeof(int) * (size_t)cap * 2);
    ranked *rank = malloc(sizeof(ranked) * (size_t)cap);
    int *kidx = NULL;
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
        ranked one = {layers[i], 0};
        int idx = res->ncands;
        ac_candidate c = base;
        c.subset = true;
        int n = 0;
        for (int q = 0; q < base.nfp32; q++)
            tmp[n++] = base.fp32_nodes[q];
        tmp[n++] = one.node;
        qsort(tmp, (size_t)n, sizeof(int), cmp_int);
        c.fp32_nodes = tmp;
        c.nfp32 = n;
        snprintf(c.name, sizeof c.name, "sensitivity %s", ev->layer_name(ev->ctx, one.node));
        if (add_candidate(res, &c) != idx)
            goto nomem;
    }
    if (evaluate_round(o, ev, res, first, true, err))
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
    kidx = malloc(sizeof(int) * (size_t)(nl + 2));
    if (!kidx)
        goto nomem;
    {
        int start = res->ncands;
        int all = add_with_fp32(res, &base, rank, nl, tmp);
        if (all < 0)
            goto nomem;
        if (res->ncands > start && evaluate_round(o, ev, res, start, false, err))
            goto done;
        const ac_candidate *c = &res->cands[all];
        if (c->evaluated && !c->failed && ac_search_passes(o, c->score))
            hi = nl;
    }
    if (hi < 0) {
        logf_(o, "auto: even with all %d ranked layers in fp32 the budget is not met", nl);
        rc = 0;
        goto done;
    }
    int P = o->parallel > 0 ? (o->parallel > 64 ? 64 : o->parallel) : 1;
    while (hi - lo > 1) {
        int start = res->ncands, nk = 0;
        for (int i = 1; i <= P; i++) {
            int k = lo + (int)((int64_t)(hi - lo) * i / (P + 1));
            if (k <= lo || k >= hi || (nk && kidx[nk - 1] == k))
                continue;
            kidx[nk++] = k;
        }
        if (!nk)
            kidx[nk++] = lo + (hi - lo) / 2;
        int idx[64];
        for (int i = 0; i < nk && i < 64; i++) {
            idx[i] = add_with_fp32(res, &base, rank, kidx[i], tmp);
            if (idx[i] < 0)
                goto nomem;
        }
        if (evaluate_round(o, ev, res, start, false, err))
            goto done;
        int new_lo = lo, new_hi = hi;
        for (int i = 0; i < nk && i < 64; i++) {
            const ac_candidate *c = &res->cands[idx[i]];
            bool pass = c->evaluated && !c->failed && ac_search_passes(o, c->score);
            if (pass && kidx[i] < new_hi)
                new_hi = kidx[i];
        }
        for (int i = 0; i < nk && i < 64; i++) {
            const ac_candidate *c = &res->cands[idx[i]];
            bool pass = c->evaluated && !c->failed && ac_search_passes(o, c->score);
            if (!pass && kidx[i] > new_lo && kidx[i] < new_hi)
                new_lo = kidx[i];
        }
        logf_(o, "auto: bisection (%d, %d] -> (%d, %d]", lo, hi, new_lo, new_hi);
        lo = new_lo;
        hi = new_hi;
    }
    /* Re-rank: return kept layers to int8 when the budget still holds without them. */
    int kept = hi;
    ranked *keep = malloc(sizeof(ranked) * (size_t)(kept ? kept : 1));
    if (!keep)
        goto nomem;
    memcpy(keep, rank, sizeof(ranked) * (size_t)kept);
    for (int i = kept - 1; i >= 0 && kept > 1; i--) {
        ranked without[4096];
        int n = 0;
        for (int q = 0; q < kept; q++)
            if (q != i)
                without[n++] = keep[q];
        int start = res->ncands;
        int idx = add_with_fp32(res, &base, without, n, tmp);
        if (idx < 0) {
            free(keep);
            goto nomem;
        }
        if (res->ncands > start && evaluate_round(o, ev, res, start, false, err)) {
            free(keep);
            goto done;
        }
        const ac_candidate *c = &res->cands[idx];
        if (c->evaluated && !c->failed && ac_search_passes(o, c->score)) {
            logf_(o, "auto: re-rank: %s does not need fp32", ev->layer_name(ev->ctx, keep[i].node));
            memmove(&keep[i], &keep[i + 1], sizeof(ranked) * (size_t)(kept - i - 1));
            kept--;
        }
    }
    logf_(o, "auto: %d layer(s) kept in fp32", kept);
    free(keep);
    rc = 0;
    goto done;
nomem:
    ac_err_set(err, AC_E_NOMEM, "search: out of memory");
done:
    free(layers);
    free(tmp);
    free(rank);
    free(kidx);
    return rc;
}

int ac_search_run(const ac_search_options *o, const ac_evaluator *ev, ac_search_result *res, ac_err *err)
{
    memset(res, 0, sizeof *res);
    res->best = -1;
    if (fast_round1(o, ev, res, err))
        return -1;
    int best = cheapest_passing(o, res);
    if (best < 0 && fast_round2(o, ev, res, err))
        return -1;
    best = cheapest_passing(o, res);
    if (best < 0 && o->auto_mode) {
        int base = highest_score(res, 0, res->ncands);
        if (base >= 0 && auto_search(o, ev, res, base, err))
            return -1;
        best = cheapest_passing(o, res);
    }
    res->met_budget = best >= 0;
    if (best < 0) {
        /* Nothing meets the budget: report the best full-set score. */
        for (int i = 0; i < res->ncands; i++) {
            const ac_candidate *c = &res->cands[i];
            if (!c->evaluated || c->failed || c->subset)
                continue;
            if (best < 0 || c->score > res->cands[best].score + SCORE_EPS)
                best = i;
        }
    }
    res->best = best;
    return 0;
}
