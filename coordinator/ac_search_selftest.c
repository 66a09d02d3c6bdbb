/* The search on a synthetic model whose scores are known in closed form:
 * each int8 layer costs some accuracy, options scale the damage. Checks the
 * fast-mode choices, the auto-mode bisection and re-rank, and that the chosen
 * plan does not depend on the number of split points per round. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_search.h"

static int failures;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define NL 12

typedef struct {
    double damage[NL];      /* accuracy lost by layer i in int8 (per-tensor, KL) */
    double pc_factor;       /* per_channel multiplies damage by this */
    double method_factor[AC_TH_METHOD_COUNT];
    int calls;
    int shuffle;            /* evaluate in reverse order (arrival order must not matter) */
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
            s -= m->damage[i] * f;
    }
    return subset ? s - 0.01 : s; /* the subset is a little harder */
}

static double cost_of(const ac_candidate *c)
{
    int fp32 = c->nfp32 + (c->first_conv_fp32 ? 1 : 0) + (c->accuracy_opt ? NL / 4 : 0);
    return NL + 7.0 * fp32;
}

static int evaluate(void *ctx, ac_candidate *cands, int n, bool subset, ac_err *err)
{
    model *m = ctx;
    for (int q = 0; q < n; q++) {
        int i = m->shuffle ? n - 1 - q : q;
        cands[i].score = score_of(m, &cands[i], subset);
        cands[i].cost = cost_of(&cands[i]);
        cands[i].evaluated = true;
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

static ac_search_result run(model *m, bool auto_mode, int parallel)
{
    ac_search_options o = {.fp32_score = 0.80, .accept_decay = 0.005, .auto_mode = auto_mode, .parallel = parallel};
    ac_evaluator ev = {evaluate, int8_layers, layer_name, m};
    ac_search_result r;
    ac_err err = {0};
    CHECK(ac_search_run(&o, &ev, &r, &err) == 0, "%s", err.msg);
    return r;
}

static void test_baseline_passes(void)
{
    model m = base_model();
    m.damage[0] = 0.004; /* total 0.015 ... too much: scale down */
    for (int i = 0; i < NL; i++)
        m.damage[i] = 0.0003;
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget && r.best == 0, "best %d (%s)", r.best, r.best >= 0 ? r.cands[r.best].name : "-");
    CHECK(r.rounds == 1 && r.evaluations == 9, "rounds %d evaluations %d", r.rounds, r.evaluations);
    ac_search_result_free(&r);
}

static void test_per_channel_rescues(void)
{
    model m = base_model();
    m.pc_factor = 0.2; /* 0.012 * 0.2 = 0.0024 <= 0.005 */
    m.method_factor[AC_TH_MAX] = 0.8;
    ac_search_result r = run(&m, false, 1);
    CHECK(r.met_budget && r.best == 1 && r.cands[r.best].per_channel, "best %d (%s)", r.best,
          r.best >= 0 ? r.cands[r.best].name : "-");
    ac_search_result_free(&r);
}

static void test_combination_in_round_two(void)
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
    CHECK(r.rounds == 2, "rounds %d", r.rounds);
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
            CHECK(r.subset_evaluations == 1 + NL, "subset evaluations %d", r.subset_evaluations);
            printf("search_selftest: auto, %d split point(s) per round: %d rounds, %d evaluations\n", parallel,
                   r.rounds, r.evaluations);
            ac_search_result_free(&r);
        }
    }
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
    test_combination_in_round_two();
    test_auto_finds_fewest_fp32_layers();
    test_nothing_passes();
    if (failures) {
        fprintf(stderr, "search_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("search_selftest: all passed\n");
    return 0;
}
