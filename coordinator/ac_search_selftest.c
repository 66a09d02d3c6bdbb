/* The search on a synthetic model whose scores are known in closed form:
 * each int8 layer costs some accuracy, options scale the damage. Checks the
 * fast-mode choices, the auto-mode bisection and parallel re-rank (with a
 * subset that misleads the ranking), auto mode improving on a fast-mode pass,
 * that the chosen plan does not depend on the number of split points per
 * round or on the order the evaluator fills its candidates, and that an
 * evaluator that stops failing candidates early in pass/fail rounds changes
 * nothing the search reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_search.h"
#include "ac_check.h"

#define NL 12

typedef struct {
    double damage[NL];      /* accuracy lost by layer i in int8 (per-tensor, KL) */
    double sub_damage[NL];  /* on the subset, when non-zero: a misleading subset */
    int early_stop;         /* stop failing candidates of pass/fail rounds early */
    int pass_fail_rounds;
    double pc_factor;       /* per_channel multiplies damage by this */
    double method_factor[AC_TH_METHOD_COUNT];
    int calls;
    int shuffle;            /* evaluate in reverse order (arrival order must not matter) */
    int fail_base_screen;   /* the baseline's subset evaluation fails */
    double fixed_damage;    /* lost on the test set whatever runs in fp32 */
    double offset;          /* added to every score and to fp32's (a metric below 0) */
} model;

static double score_of(const model *m, const ac_candidate *c, bool subset)
{
    double f = m->method_factor[c->method] * (c->per_channel ? m->pc_factor : 1.0);
    double s = 0.80;
    for (int i = 0; i < NL; i++) {
        bool fp32 = false;
        for (int k = 0; k < c->nfp32; k++)
            fp32 |= c->fp32_nodes[k] == i;
        if (c->first_conv_fp32 && i == 0)
            fp32 = true;
        if (c->accuracy_opt && (i % 4) == 1) /* "depthwise" layers */
            fp32 = true;
        if (!fp32)
            s -= (subset && m->sub_damage[i] > 0 ? m->sub_damage[i] : m->damage[i]) * f;
    }
    return m->offset + (subset ? s - 0.01 : s - m->fixed_damage); /* the subset is a little harder */
}

static double cost_of(const ac_candidate *c)
{
    int fp32 = c->nfp32 + (c->first_conv_fp32 ? 1 : 0) + (c->accuracy_opt ? NL / 4 : 0);
    return NL + 7.0 * fp32;
}

static int evaluate(void *ctx, ac_candidate *cands, int n, const ac_eval_round *round, ac_err *err)
{
    model *m = ctx;
    m->pass_fail_rounds += round->pass_fail;
    for (int q = 0; q < n; q++) {
        int i = m->shuffle ? n - 1 - q : q;
        cands[i].score = score_of(m, &cands[i], round->subset);
        cands[i].cost = cost_of(&cands[i]);
        cands[i].evaluated = true;
        cands[i].failed = m->fail_base_screen && round->subset && strncmp(cands[i].name, "baseline", 8) == 0;
        if (m->early_stop && round->pass_fail && !ac_search_passes(round->search, cands[i].score)) {
            /* as the farm does: the rest of the shards never come, the score is unknown */
            cands[i].early_stopped = true;
            cands[i].score = -1;
        }
        m->calls++;
    }
    return 0;
}

static int int8_layers(void *ctx, const ac_candidate *c, int *out, int cap)
{
    int n = 0;
    for (int i = 0; i < NL && n < cap; i++) {
        bool fp32 = false;
        for (int k = 0; k < c->nfp32; k++)
            fp32 |= c->fp32_nodes[k] == i;
        if (!fp32)
            out[n++] = i;
    }
    return n;
}

static const char *layer_name(void *ctx, int node)
{
    static char names[NL][16];
    snprintf(names[node], sizeof names[node], "layer%d", node);
    return names[node];
}

static model base_model(void)
{
    model m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.001;
    m.pc_factor = 1.0;
    for (int k = 0; k < AC_TH_METHOD_COUNT; k++)
        m.method_factor[k] = 1.0;
    return m;
}

static ac_search_result run_with(model *m, bool auto_mode, int parallel, bool baseline_first)
{
    ac_search_options o = {.fp32_score = 0.80 + m->offset, .accept_decay = 0.005, .auto_mode = auto_mode,
                           .baseline_first = baseline_first, .parallel = parallel,
                           .debug = getenv("SEARCH_DEBUG") != NULL};
    ac_evaluator ev = {evaluate, int8_layers, layer_name, m};
    ac_search_result r;
    ac_err err = {0};
    CHECK(ac_search_run(&o, &ev, &r, &err) == 0, "%s", err.msg);
    return r;
}

static ac_search_result run(model *m, bool auto_mode, int parallel)
{
    return run_with(m, auto_mode, parallel, false);
}

/* baseline_first (remote test mode): plain int8 in full alone first; when it
 * passes nothing else is evaluated, otherwise the screen follows and the
 * baseline, already evaluated, spends none of the tries. */
static void test_baseline_first(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0003;
    ac_search_result r = run_with(&m, false, 1, true);
    CHECK(r.met_budget && r.best == 0 && r.rounds == 1 && r.evaluations == 1 && r.subset_evaluations == 0,
          "passing baseline first: best %d, rounds %d, evaluations %d", r.best, r.rounds, r.evaluations);
    ac_search_result_free(&r);
    m = base_model();
    m.pc_factor = 0.4;                /* 0.0048: passes */
    m.method_factor[AC_TH_MSE] = 0.2; /* 0.0024: passes with a higher score */
    r = run_with(&m, false, 1, true);
    const ac_candidate *b = r.best >= 0 ? &r.cands[r.best] : NULL;
    CHECK(b && b->method == AC_TH_MSE && !b->subset && r.rounds == 3 && r.evaluations == 2 &&
              r.subset_evaluations == 9 && !r.cands[0].subset && r.cands[1].subset,
          "missing baseline first: best %s, rounds %d, evaluations %d, subset %d", b ? b->name : "-", r.rounds,
          r.evaluations, r.subset_evaluations);
    ac_search_result_free(&r);
}

static void test_baseline_passes(void)
{
    model m = base_model();
    m.damage[0] = 0.004; /* total 0.015 ... too much: scale down */
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0003;
    /* No option screens above plain int8 at its cost: the screen (round 1),
     * then the baseline alone in full; nothing is cheaper, so it is the plan. */
    for (int auto_mode = 0; auto_mode < 2; auto_mode++) {
        ac_search_result r = run(&m, auto_mode, 1);
        const ac_candidate *b = r.best >= 0 ? &r.cands[r.best] : NULL;
        CHECK(r.met_budget && b && !b->subset && strncmp(b->name, "baseline", 8) == 0 && b->round == 2,
              "%s: best %d (%s)", auto_mode ? "auto" : "fast", r.best, b ? b->name : "-");
        CHECK(r.rounds == 2 && r.evaluations == 1 && r.subset_evaluations == 9 && r.cands[0].subset,
              "%s: rounds %d evaluations %d subset %d", auto_mode ? "auto" : "fast", r.rounds, r.evaluations,
              r.subset_evaluations);
        ac_search_result_free(&r);
    }
}

static void test_per_channel_rescues(void)
{
    model m = base_model();
    m.pc_factor = 0.2; /* 0.012 * 0.2 = 0.0024 <= 0.005 */
    m.method_factor[AC_TH_MAX] = 0.8;
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget && r.best >= 0 && r.cands[r.best].per_channel && !r.cands[r.best].subset, "best %d (%s)",
          r.best, r.best >= 0 ? r.cands[r.best].name : "-");
    /* the screen of the baseline and the 8 single-option variants on the
     * subset, then per_channel (the best screen at the baseline's cost) alone:
     * the baseline, which screens worse at the same cost, is never evaluated
     * in full */
    CHECK(r.rounds == 2 && r.evaluations == 1 && r.subset_evaluations == 9 && r.cands[1].round == 1 &&
              r.cands[r.best].round == 2,
          "rounds %d evaluations %d subset %d", r.rounds, r.evaluations, r.subset_evaluations);
    ac_search_result_free(&r);
}

/* Options that do not repair the baseline on the screen get no full
 * evaluation; of those that do, at most two are tried before combining. */
static void test_screen_skips_useless_options(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.002;              /* 0.024 lost */
    m.method_factor[AC_TH_MSE] = 0.15;    /* 0.0036: passes */
    m.method_factor[AC_TH_MAX] = 1.5;     /* worse than the baseline */
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget && r.cands[r.best].method == AC_TH_MSE && r.evaluations == 1, "best %s, %d evaluations",
          r.best >= 0 ? r.cands[r.best].name : "-", r.evaluations);
    ac_search_result_free(&r);
    m.method_factor[AC_TH_MSE] = 1.0; /* nothing helps: the baseline is the only full evaluation */
    for (int k = 0; k < AC_TH_METHOD_COUNT; k++)
        m.method_factor[k] = k == AC_TH_KL ? 1.0 : 1.5;
    m.pc_factor = 1.5;
    for (int i = 0; i < NL; i++)
        m.damage[i] = i == 0 || i % 4 == 1 ? 0.0 : 0.002; /* fp32 options gain nothing */
    r = run(&m, false, 1);
    CHECK(!r.met_budget && r.evaluations == 1 && r.subset_evaluations == 9, "%d evaluations, %d on the subset",
          r.evaluations, r.subset_evaluations);
    ac_search_result_free(&r);
}

/* The baseline's screen failed: the options have nothing to be compared
 * with, so the baseline is evaluated in full alone and nothing is combined. */
static void test_failed_screen_falls_back_to_baseline(void)
{
    model m = base_model();
    m.pc_factor = 0.2;
    m.fail_base_screen = 1;
    ac_search_result r = run(&m, false, 1);
    const ac_candidate *b = r.best >= 0 ? &r.cands[r.best] : NULL;
    CHECK(b && !b->subset && strncmp(b->name, "baseline", 8) == 0 && r.evaluations == 1 && r.rounds == 2,
          "best %s, %d evaluations in %d rounds", b ? b->name : "-", r.evaluations, r.rounds);
    ac_search_result_free(&r);
}

/* Two equally cheap options pass: the better screen goes first and is chosen,
 * whatever the order of the options in the screen. */
static void test_equal_cost_prefers_higher_score(void)
{
    model m = base_model();
    m.pc_factor = 0.4;                /* 0.0048: passes, per_channel comes first */
    m.method_factor[AC_TH_MSE] = 0.2; /* 0.0024: passes with a higher score */
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget && r.best >= 0 && r.cands[r.best].method == AC_TH_MSE && !r.cands[r.best].per_channel,
          "best %s", r.best >= 0 ? r.cands[r.best].name : "-");
    ac_search_result_free(&r);
}

static void test_combination_in_round_three(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.002;           /* 0.024 lost */
    m.pc_factor = 0.4;                 /* 0.0096 */
    m.method_factor[AC_TH_MSE] = 0.5;  /* 0.012 */
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget, "combination should pass");
    const ac_candidate *b = &r.cands[r.best];
    CHECK(b->per_channel && b->method == AC_TH_MSE && !b->accuracy_opt, "best %s", b->name);
    /* the screen, two single options, then the combination without costly options */
    CHECK(r.rounds == 4 && r.evaluations == 3, "rounds %d evaluations %d", r.rounds, r.evaluations);
    ac_search_result_free(&r);
    /* Auto mode tries one single option, then screens the combination on the
     * subset (it screens above per_channel) before its full evaluation. */
    r = run(&m, true, 1);
    b = &r.cands[r.best];
    int screened = 0, full = 0;
    for (int i = 0; i < r.ncands; i++) {
        bool combo = r.cands[i].per_channel && r.cands[i].method == AC_TH_MSE && !r.cands[i].nfp32;
        screened += combo && r.cands[i].subset;
        full += combo && !r.cands[i].subset;
    }
    CHECK(r.met_budget && b->per_channel && b->method == AC_TH_MSE && screened == 1 && full == 1 && r.evaluations == 2,
          "auto: best %s, combination screened %d, in full %d, %d evaluations", b->name, screened, full, r.evaluations);
    ac_search_result_free(&r);
}

/* Auto mode: two very sensitive layers; everything else is harmless. */
static void test_auto_finds_fewest_fp32_layers(void)
{
    for (int parallel = 1; parallel <= 4; parallel += 3) {
        for (int shuffle = 0; shuffle < 2; shuffle++) {
            model m = base_model();
            for (int i = 0; i < NL; i++)
                m.damage[i] = 0.0002;
            m.damage[7] = 0.03;
            m.damage[3] = 0.02;
            m.shuffle = shuffle;
            ac_search_result r = run(&m, true, parallel);
            CHECK(r.met_budget, "parallel %d: auto should pass", parallel);
            const ac_candidate *b = &r.cands[r.best];
            CHECK(b->nfp32 == 2 && b->fp32_nodes[0] == 3 && b->fp32_nodes[1] == 7,
                  "parallel %d shuffle %d: best %s (%d fp32)", parallel, shuffle, b->name, b->nfp32);
            /* the screen (9), the all-fp32 set and one removal probe per
             * layer from it, then the kept pair and one probe each */
            CHECK(r.subset_evaluations == 9 + NL + 1 + 2 + 1, "subset evaluations %d", r.subset_evaluations);
            /* the subset losses add up here, so a prefix passes at once
             * and the all-fp32 set is never evaluated in full */
            int all_fp32 = 0;
            for (int i = 0; i < r.ncands; i++)
                all_fp32 += !r.cands[i].subset && r.cands[i].nfp32 == NL;
            CHECK(all_fp32 == 0, "parallel %d: all-fp32 set evaluated in full %d time(s)", parallel, all_fp32);
            printf("search_selftest: auto, %d split point(s) per round: %d rounds, %d evaluations\n", parallel,
                   r.rounds, r.evaluations);
            ac_search_result_free(&r);
        }
    }
}

/* Every candidate as the report shows it: the same list, scores bit for bit. */
static void check_same_candidates(const ac_search_result *a, const ac_search_result *b, const char *what)
{
    CHECK(a->ncands == b->ncands && a->best == b->best && a->rounds == b->rounds, "%s: %d/%d candidates", what,
          a->ncands, b->ncands);
    for (int i = 0; i < a->ncands && i < b->ncands; i++) {
        const ac_candidate *x = &a->cands[i], *y = &b->cands[i];
        CHECK(!strcmp(x->name, y->name) && x->decided_fail == y->decided_fail && x->failed == y->failed &&
                  memcmp(&x->score, &y->score, sizeof x->score) == 0,
              "%s: candidate %d %s (%g, fail %d) vs %s (%g, fail %d)", what, i, x->name, x->score, x->decided_fail,
              y->name, y->score, y->decided_fail);
    }
}

/* Pass/fail rounds hide the scores of failing candidates, stopped early or not. */
static void check_pass_fail_reporting(const ac_search_options *o, const ac_search_result *r, const char *what)
{
    for (int i = 0; i < r->ncands; i++) {
        const ac_candidate *c = &r->cands[i];
        bool passes = c->evaluated && !c->failed && !c->decided_fail && ac_search_passes(o, c->score);
        if (c->pass_fail)
            CHECK(passes != c->decided_fail && (!c->decided_fail || c->score == 0), "%s: %s", what, c->name);
        else
            CHECK(!c->decided_fail && !c->early_stopped, "%s: %s", what, c->name);
    }
}

/* The auto search with and without early stops, for 1, 2 and 4 split points
 * and both evaluation orders: the same plan everywhere, and for a given
 * number of split points the same candidates and reported scores whether the
 * evaluator stopped failing ones early or not. Returns the 1-split run. */
static ac_search_result run_auto_everywhere(const model *proto, const char *what)
{
    ac_search_options o = {.fp32_score = 0.80 + proto->offset, .accept_decay = 0.005, .auto_mode = true};
    ac_search_result first;
    memset(&first, 0, sizeof first);
    for (int parallel = 1; parallel <= 4; parallel *= 2) {
        ac_search_result plain;
        for (int mode = 0; mode < 4; mode++) {
            model m = *proto;
            m.early_stop = mode & 1;
            m.shuffle = mode >> 1;
            ac_search_result r = run(&m, true, parallel);
            o.parallel = parallel;
            check_pass_fail_reporting(&o, &r, what);
            /* this evaluator stops every failing candidate of a pass/fail round */
            int decided_fail = 0;
            for (int i = 0; i < r.ncands; i++)
                decided_fail += r.cands[i].decided_fail;
            CHECK(r.early_stopped == (m.early_stop ? decided_fail : 0), "%s: %d early stops, %d decided to fail",
                  what, r.early_stopped, decided_fail);
            if (mode == 0) {
                plain = r;
                continue;
            }
            check_same_candidates(&r, &plain, what);
            ac_search_result_free(&r);
        }
        if (parallel == 1) {
            first = plain;
            continue;
        }
        const ac_candidate *a = &plain.cands[plain.best], *b = &first.cands[first.best];
        CHECK(a->nfp32 == b->nfp32 && !memcmp(a->fp32_nodes, b->fp32_nodes, sizeof(int) * (size_t)a->nfp32) &&
                  a->method == b->method && a->per_channel == b->per_channel,
              "%s: %d split points chose %s, 1 chose %s", what, parallel, a->name, b->name);
        ac_search_result_free(&plain);
    }
    return first;
}

static bool fp32_set_is(const ac_candidate *c, const int *nodes, int n)
{
    return c->nfp32 == n && (n == 0 || !memcmp(c->fp32_nodes, nodes, sizeof(int) * (size_t)n));
}

/* Fast mode passes with accuracy_opt (3 layers in fp32); auto mode still
 * searches from the plain base and finds the one layer that matters. */
static void test_auto_improves_on_a_fast_pass(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0002;
    m.damage[5] = 0.01; /* a "depthwise" layer (i % 4 == 1): accuracy_opt keeps it in fp32 */
    ac_search_result f = run(&m, false, 1);
    CHECK(f.met_budget && f.cands[f.best].accuracy_opt, "fast: best %s", f.cands[f.best].name);
    ac_search_result r = run_auto_everywhere(&m, "auto after a fast pass");
    const ac_candidate *b = &r.cands[r.best];
    int want[1] = {5};
    CHECK(r.met_budget && !b->accuracy_opt && !b->first_conv_fp32 && fp32_set_is(b, want, 1), "auto: best %s",
          b->name);
    CHECK(b->cost < f.cands[f.best].cost, "auto %g vs fast %g", b->cost, f.cands[f.best].cost);
    ac_search_result_free(&f);
    ac_search_result_free(&r);
}

/* Two layers that matter (3, 7) and two that each cost 0.002 (5, 9): with
 * the eight others (0.0016 in all) one of 5 and 9 can return to int8, not
 * both (0.0056 > 0.005); 5 goes, as equal scores keep node order. With 0.001
 * each both go. The k-ary search needs few full evaluations. */
static void test_return_to_int8_pair(void)
{
    for (int both = 0; both < 2; both++) {
        model m = base_model();
        for (int i = 0; i < NL; i++)
            m.damage[i] = 0.0002;
        m.damage[7] = 0.03;
        m.damage[3] = 0.02;
        m.damage[5] = m.damage[9] = both ? 0.001 : 0.002;
        ac_search_result r = run_auto_everywhere(&m, both ? "a pair back to int8" : "one of a pair back to int8");
        const ac_candidate *b = &r.cands[r.best];
        int one[3] = {3, 7, 9}, two[2] = {3, 7};
        CHECK(r.met_budget && (both ? fp32_set_is(b, two, 2) : fp32_set_is(b, one, 3)), "both %d: best %s", both,
              b->name);
        int probes = 0, decided_fail = 0;
        for (int i = 0; i < r.ncands; i++) {
            probes += r.cands[i].subset && !strncmp(r.cands[i].name, "fp32 set without", 16);
            decided_fail += r.cands[i].decided_fail;
        }
        /* removal probes: 12 from the all-fp32 set, then one per kept layer */
        CHECK(probes == NL + (both ? 2 : 3), "both %d: %d removal probes", both, probes);
        /* full: baseline, one screened option, the all-fp32 set, 4 k-ary
         * steps over 12 layers and at most 2 over the kept ones */
        CHECK(r.evaluations <= 3 + 4 + 2, "both %d: %d evaluations", both, r.evaluations);
        CHECK(decided_fail > 0, "both %d: no candidate to stop early", both);
        ac_search_result_free(&r);
    }
}

/* A misleading subset: layers 5 and 9 look harmful on it but cost little on
 * the test set. They are returned to int8 last, so the plan keeps them with
 * the two layers that matter: it still meets the budget, only dearer. */
static void test_misleading_subset(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0002;
    m.damage[7] = 0.03;
    m.damage[3] = 0.02;
    m.sub_damage[5] = 0.05;
    m.sub_damage[9] = 0.04;
    ac_search_result r = run_auto_everywhere(&m, "misleading subset");
    const ac_candidate *b = &r.cands[r.best];
    int want[4] = {3, 5, 7, 9};
    CHECK(r.met_budget && fp32_set_is(b, want, 4), "best %s", b->name);
    ac_search_result_free(&r);
}

/* The round of the re-rank's removal probes, or -1. */
static int removal_round(const ac_search_result *r)
{
    for (int i = 0; i < r->ncands; i++)
        if (r->cands[i].subset && !strncmp(r->cands[i].name, "fp32 set without", 16))
            return r->cands[i].round;
    return -1;
}

/* Eight layers of 0.0004 and two of 0.0002 can return to int8 together,
 * two (10, 11) cannot. */
static model ten_back_model(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0002;
    for (int i = 0; i < 8; i++)
        m.damage[i] = 0.0004;
    m.damage[10] = 0.03;
    m.damage[11] = 0.02;
    return m;
}

/* ten_back_model: the subset losses add up exactly here, so the first
 * pass's search over m in (0, 12) probes the predicted boundary: with one
 * split point 10 (passes), then 11 (fails), two rounds; with four 10 and 11
 * together with evenly spread points, one round. Each pass starts with its
 * round of removal probes, and the second pass (over the kept pair) needs
 * no full round: its one split point, the kept set without its first layer,
 * was evaluated (and failed) in the first pass. */
static void test_return_rounds(void)
{
    model m = ten_back_model();
    ac_search_result r1 = run_auto_everywhere(&m, "ten back to int8");
    const ac_candidate *b = &r1.cands[r1.best];
    int want[2] = {10, 11};
    CHECK(r1.met_budget && fp32_set_is(b, want, 2), "best %s", b->name);
    int s1 = removal_round(&r1);
    CHECK(s1 > 0 && r1.rounds - s1 + 1 == 1 + 2 + 1, "1 split point: from round %d of %d", s1, r1.rounds);
    ac_search_result r4 = run(&m, true, 4);
    int s4 = removal_round(&r4);
    CHECK(s4 > 0 && r4.rounds - s4 + 1 == 1 + 1 + 1, "4 split points: from round %d of %d", s4, r4.rounds);
    printf("search_selftest: 10 of 12 layers back to int8: %d round(s) with 1 split point, %d with 4\n",
           r1.rounds - s1 + 1, r4.rounds - s4 + 1);
    ac_search_result_free(&r1);
    ac_search_result_free(&r4);
}

/* A metric whose scores are below zero (a remote client's, say): the same
 * search, candidate for candidate, as with the scores above zero. */
static void test_scores_below_zero(void)
{
    model m = ten_back_model();
    ac_search_result up = run_auto_everywhere(&m, "scores above zero");
    m.offset = -1.0;
    ac_search_result down = run_auto_everywhere(&m, "scores below zero");
    int want[2] = {10, 11};
    CHECK(down.met_budget && fp32_set_is(&down.cands[down.best], want, 2), "best %s", down.cands[down.best].name);
    CHECK(down.ncands == up.ncands && down.evaluations == up.evaluations && down.rounds == up.rounds,
          "below zero: %d candidates, %d evaluations, %d rounds; above: %d, %d, %d", down.ncands, down.evaluations,
          down.rounds, up.ncands, up.evaluations, up.rounds);
    for (int i = 0; i < up.ncands && i < down.ncands; i++)
        CHECK(!strcmp(up.cands[i].name, down.cands[i].name), "candidate %d: %s vs %s", i, up.cands[i].name,
              down.cands[i].name);
    ac_search_result_free(&up);
    ac_search_result_free(&down);
}

static int count_named(const ac_search_result *r, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < r->ncands; i++)
        n += !strncmp(r->cands[i].name, prefix, strlen(prefix));
    return n;
}

/* A base that misses the budget by less than the budget again (0.0022 +
 * 0.006 lost, 0.0032 over): the forward search ranks each layer alone in
 * fp32 on the subset, and layer 7 alone passes: one full evaluation after the
 * fast rounds, no all-fp32 plan. */
static void test_forward_for_a_near_miss(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0002;
    m.damage[7] = 0.006;
    ac_search_result r = run_auto_everywhere(&m, "forward");
    const ac_candidate *b = &r.cands[r.best];
    int want[1] = {7};
    CHECK(r.met_budget && fp32_set_is(b, want, 1), "best %s", b->name);
    CHECK(count_named(&r, "fp32 alone: ") == NL && count_named(&r, "fp32 set without") == 0,
          "%d forward probes, %d removal probes", count_named(&r, "fp32 alone: "), count_named(&r, "fp32 set without"));
    int auto_full = 0;
    for (int i = 0; i < r.ncands; i++)
        auto_full += !r.cands[i].subset && r.cands[i].nfp32 > 0;
    CHECK(auto_full == 1, "%d full evaluations in auto mode", auto_full);
    ac_search_result_free(&r);
}

/* A near miss spread over every layer (12 x 0.0008): up to 4 layers in fp32
 * do not pass, so the search comes back from all twelve in fp32 and returns
 * six to int8 (6 x 0.0008 <= 0.005 < 7 x 0.0008). */
static void test_forward_falls_back(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0008;
    ac_search_result r = run_auto_everywhere(&m, "forward, then backward");
    const ac_candidate *b = &r.cands[r.best];
    CHECK(r.met_budget && b->nfp32 == 6, "best %s", b->name);
    CHECK(count_named(&r, "fp32 alone: ") == NL && count_named(&r, "fp32 set without") >= NL, "probes %d, %d",
          count_named(&r, "fp32 alone: "), count_named(&r, "fp32 set without"));
    ac_search_result_free(&r);
}

/* The subset underrates layers 0-7 (0.00005 each against 0.0006 on the
 * test set), so the search's prediction (m = 10) fails; it falls back to
 * even splits and still finds the boundary: layers 0-7 return to int8
 * (0.0048), 8 and 9 (0.0003 each) cannot follow. */
static void test_wrong_prediction(void)
{
    model m = base_model();
    for (int i = 0; i < 8; i++) {
        m.damage[i] = 0.0006;
        m.sub_damage[i] = 0.00005;
    }
    m.damage[8] = m.damage[9] = 0.0003;
    m.damage[10] = 0.03;
    m.damage[11] = 0.02;
    ac_search_result r = run_auto_everywhere(&m, "wrong prediction");
    const ac_candidate *b = &r.cands[r.best];
    int want[4] = {8, 9, 10, 11};
    CHECK(r.met_budget && fp32_set_is(b, want, 4), "best %s", b->name);
    /* base and one screened option, then at most two rounds per halving */
    CHECK(r.evaluations <= 2 + 2 * 4 + 1, "%d evaluations", r.evaluations);
    ac_search_result_free(&r);
}

/* Even with every layer in fp32 the test set loses more than the budget:
 * auto mode says so, having evaluated the all-fp32 set in full once, last. */
static void test_auto_nothing_passes(void)
{
    model m = base_model();
    m.fixed_damage = 0.006;
    ac_search_result r = run(&m, true, 1);
    int all_fp32 = -1, n_all = 0;
    for (int i = 0; i < r.ncands; i++)
        if (!r.cands[i].subset && r.cands[i].nfp32 == NL) {
            all_fp32 = i;
            n_all++;
        }
    CHECK(!r.met_budget && n_all == 1 && all_fp32 == r.ncands - 1 && r.cands[all_fp32].decided_fail,
          "met %d, all-fp32 set evaluated %d time(s), at %d of %d", r.met_budget, n_all, all_fp32, r.ncands);
    ac_search_result_free(&r);
}

static void test_nothing_passes(void)
{
    model m = base_model();
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.05;
    ac_search_result r = run(&m, false, 1);
    CHECK(!r.met_budget && r.best >= 0, "met %d best %d", r.met_budget, r.best);
    ac_search_result_free(&r);
}

int main(void)
{
    test_baseline_passes();
    test_per_channel_rescues();
    test_equal_cost_prefers_higher_score();
    test_screen_skips_useless_options();
    test_failed_screen_falls_back_to_baseline();
    test_baseline_first();
    test_combination_in_round_three();
    test_auto_finds_fewest_fp32_layers();
    test_auto_improves_on_a_fast_pass();
    test_return_to_int8_pair();
    test_misleading_subset();
    test_return_rounds();
    test_scores_below_zero();
    test_forward_for_a_near_miss();
    test_forward_falls_back();
    test_nothing_passes();
    test_wrong_prediction();
    test_auto_nothing_passes();
    if (failures) {
        fprintf(stderr, "search_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("search_selftest: all passed\n");
    return 0;
}
