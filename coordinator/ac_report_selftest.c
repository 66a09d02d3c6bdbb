/* What a person sees of a job: report.html, the end-of-run summary and the
 * progress display. The report is written by ac_outputs_write for the plan of
 * a bundled Fashion-MNIST model, with a layer named like markup (and with
 * bytes that are not UTF-8), one layer forced to fp32, per-layer statistics
 * and a search of every kind of candidate. Checks: escaping, no scripts and
 * no external addresses, the chart elements (one mark per candidate, the
 * chosen one, the budget line, one sensitivity row per charted layer, fp32
 * rows marked), the tables' rows, the no-search page; the summary's table and
 * artefact list; a progress bar on a "terminal" (carriage returns, one
 * newline at the end, never wider than the terminal) and plain lines
 * elsewhere. Usage: ac_report_selftest MODEL.onnx */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_outputs.h"
#include "ac_progress.h"
#include "ac_qtest_util.h"
#include "ac_report_html.h"
#include "ac_summary.h"
#include "ac_check.h"

static const char *EVIL = "<script>alert(\"x\")</script> & 'q' \xff\xfe end";

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Rows of a table's body: <tr between its <tbody> and </tbody>. */
static int body_rows(const char *html, const char *table_id)
{
    char open[64];
    snprintf(open, sizeof open, "<table id=\"%s\">", table_id);
    const char *t = strstr(html, open);
    const char *b = t ? strstr(t, "<tbody>") : NULL;
    const char *e = b ? strstr(b, "</tbody>") : NULL;
    if (!e)
        return -1;
    int n = 0;
    for (const char *p = b; (p = strstr(p, "<tr")) && p < e; p += 3)
        n++;
    return n;
}

static void check_page_is_offline(const char *html)
{
    CHECK(!strncmp(html, "<!DOCTYPE html>", 15), "the page starts with a doctype");
    CHECK(strstr(html, "</html>\n") != NULL, "the page is complete");
    CHECK(!strstr(html, "<script"), "a script element (the evil name was not escaped?)");
    CHECK(!strstr(html, "http:") && !strstr(html, "https:") && !strstr(html, "src=") && !strstr(html, "@import"),
          "an external address or asset");
    CHECK(!strchr(html, '\xff') && !strchr(html, '\xfe'), "bytes that are not UTF-8 reached the page");
}

/* ---- the report of a search --------------------------------------------------- */

typedef struct {
    ac_graph *g;
    ac_plan *plan;
    ac_layer_acc *acc;
    int n_charted;
} fixture;

static int fixture_new(fixture *fx, const char *model, ac_err *err)
{
    memset(fx, 0, sizeof *fx);
    fx->g = qt_load(model, "(2,1,28,28)", err);
    if (!fx->g)
        return -1;
    float x[4 * 784];
    uint32_t r = 12345;
    for (int i = 0; i < 4 * 784; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(r >> 8) / (float)(1u << 24) * 4.0f - 1.0f;
    }
    ac_calib_table *t = qt_absmax_table(fx->g, x, 2, err);
    if (!t)
        return -1;
    const char *forced[] = {fx->g->nodes[1].name};
    ac_quant_options qo = {.fp32_layers = forced, .n_fp32_layers = 1};
    fx->plan = ac_plan_build(fx->g, t, &qo, err);
    ac_calib_table_destroy(&t);
    if (!fx->plan)
        return -1;
    /* Names come from user models: the first layer and its output get markup. */
    fx->g->nodes[0].name = EVIL;
    fx->g->tensors[fx->g->nodes[0].outputs[0]].name = EVIL;
    fx->acc = calloc((size_t)fx->g->ntensors, sizeof *fx->acc);
    if (!fx->acc)
        return -1;
    for (int i = 0; i < fx->g->nnodes; i++) {
        int o = fx->g->nodes[i].outputs[0];
        if (!fx->plan->tensors[o].activation)
            continue;
        /* SQNR falls along the network: 10 log10(100 / (1 + i)) dB */
        fx->acc[o] = (ac_layer_acc){.dot = 99.0, .ref_sq = 100.0, .q_sq = 99.5, .err_sq = 1.0 + i};
    }
    for (int i = 0; i < fx->g->nnodes; i++) {
        double c, q;
        int o = fx->g->nodes[i].outputs[0];
        fx->n_charted += ac_layer_acc_stats(&fx->acc[o], &c, &q) || fx->plan->nodes[i].mode == AC_MODE_FP32;
    }
    return 0;
}

static void fixture_free(fixture *fx)
{
    ac_plan_destroy(&fx->plan);
    ac_graph_destroy(&fx->g);
    free(fx->acc);
}

static ac_outputs outputs_of(const fixture *fx, const char *dir)
{
    return (ac_outputs){
        .output_dir = dir, .model_path = "models/evil<b>.onnx", .g = fx->g, .plan = fx->plan, .task = "classify",
        .fp32_score = 0.9, .int8_score = 0.9, .accept_decay = 0.005, .met_budget = true, .th_method = "KL",
        .kl_tune = true, .calib_source = "calib", .calib_samples = 64, .test_source = "test", .test_samples = 128,
        .layers = fx->acc, .layer_samples = 128, .estimated_cost = ac_estimated_cost(fx->plan), .chosen = -1,
        .elapsed_s = 1.5};
}

/* Every kind of candidate, in three rounds; the chosen one is #2. */
static void candidates(ac_outputs_candidate *c, int *n)
{
    static const char *const layers[] = {"conv1"};
    memset(c, 0, sizeof *c * 7);
    const struct {
        const char *name;
        int round;
        bool subset, decided_fail, failed;
        const char *decided;
        double score;
    } k[7] = {
        {"baseline (KL, per-tensor)", 1, false, false, false, "fail", 0.88},
        {"KL+per_channel", 1, false, false, false, "pass", 0.899},
        {"MAX", 1, false, false, true, NULL, 0},
        {"probe <conv1>", 2, true, false, false, NULL, 0.87},
        {"probe conv2", 2, true, false, false, NULL, 0.86},
        {"KL+1 fp32 layers", 3, false, true, false, NULL, 0},
        {"KL+2 fp32 layers", 3, false, false, false, "pass", 0.9},
    };
    for (int i = 0; i < 7; i++) {
        snprintf(c[i].name, sizeof c[i].name, "%s", k[i].name);
        c[i].th_method = "KL";
        c[i].round = k[i].round;
        c[i].evaluated = true;
        c[i].subset = k[i].subset;
        c[i].decided_fail = k[i].decided_fail;
        c[i].failed = k[i].failed;
        c[i].decided = k[i].decided;
        c[i].score = k[i].score;
        c[i].cost = 1.0 + 0.1 * i;
        c[i].shards = 2;
        c[i].error = k[i].failed ? "worker <w1> died 3 times" : NULL;
        c[i].fp32_layers = layers;
        c[i].nfp32 = i >= 5 ? 1 : 0;
    }
    c[2].cost = INFINITY; /* its plan did not build */
    *n = 7;
}

static void check_verdicts(const ac_outputs_candidate *c)
{
    ac_verdict want[7] = {AC_VERDICT_FAIL,   AC_VERDICT_PASS,         AC_VERDICT_ERROR, AC_VERDICT_SUBSET,
                          AC_VERDICT_SUBSET, AC_VERDICT_DECIDED_FAIL, AC_VERDICT_PASS};
    for (int i = 0; i < 7; i++)
        CHECK(ac_outputs_verdict(&c[i]) == want[i], "candidate %d: verdict %s", i, ac_verdict_name(ac_outputs_verdict(&c[i])));
    CHECK(!strcmp(ac_verdict_name(AC_VERDICT_DECIDED_FAIL), "fail (decided)"), "verdict name");
}

static void check_search_report(const fixture *fx, const char *dir, const ac_outputs *o)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = slurp(path);
    CHECK(html != NULL, "%s was not written", path);
    if (!html)
        return;
    check_page_is_offline(html);
    CHECK(strstr(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; \xEF\xBF\xBD\xEF\xBF\xBD end"),
          "the evil name, escaped, with U+FFFD for the bad bytes");
    CHECK(strstr(html, "models/evil&lt;b&gt;.onnx"), "the model path is escaped");
    CHECK(count(html, "<svg id=\"sensitivity-chart\"") == 1 && count(html, "<svg id=\"timeline-chart\"") == 1,
          "both charts");
    CHECK(count(html, "<g class=\"layer-row") == fx->n_charted, "%d sensitivity rows, want %d",
          count(html, "<g class=\"layer-row"), fx->n_charted);
    CHECK(count(html, "<g class=\"layer-row fp32\"") == fx->plan->n_fp32 && fx->plan->n_fp32 >= 1,
          "%d fp32 rows, want %d", count(html, "<g class=\"layer-row fp32\""), fx->plan->n_fp32);
    CHECK(count(html, "<g class=\"cand ") == o->ncands, "%d candidate marks, want %d", count(html, "<g class=\"cand "),
          o->ncands);
    CHECK(count(html, "<g class=\"cand pass chosen\"") == 1 && count(html, " chosen\"") == 1, "one chosen mark");
    CHECK(count(html, "<g class=\"cand decided-fail\"") == 1, "decided-fail mark");
    CHECK(count(html, "<g class=\"cand subset\"") == 2, "subset marks");
    CHECK(count(html, "<g class=\"cand error\"") == 1, "error mark");
    CHECK(count(html, "<g class=\"round\"") == 3, "three rounds");
    CHECK(count(html, "id=\"budget-line\"") == 1 && count(html, "id=\"fp32-line\"") == 1, "budget and fp32 lines");
    CHECK(strstr(html, "worker &lt;w1&gt; died 3 times") != NULL, "the error, escaped");
    CHECK(body_rows(html, "candidates") == o->ncands, "candidate rows %d", body_rows(html, "candidates"));
    CHECK(body_rows(html, "layers") == fx->g->nnodes, "layer rows %d, want %d", body_rows(html, "layers"),
          fx->g->nnodes);
    CHECK(strstr(html, "Budget met") != NULL && strstr(html, "KL+per_channel</b>, round 1"), "summary: verdict and plan");
    CHECK(strstr(html, "@media print") != NULL, "print styles");
    free(html);
    snprintf(path, sizeof path, "%s/report.json", dir);
    char *json = slurp(path);
    CHECK(json && strstr(json, "\"chosen_candidate\": 1"), "report.json names the chosen candidate");
    free(json);
}

static void check_summary(const ac_outputs *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ac_summary_print(o, f);
    fclose(f);
    CHECK(strstr(text, "search (auto mode): 7 candidate(s) in 3 round(s)") != NULL, "summary header:\n%s", text);
    CHECK(count(text, "<- chosen") == 1 && strstr(text, "KL+per_channel") < strstr(text, "<- chosen"),
          "chosen marked:\n%s", text);
    CHECK(strstr(text, "2 probe(s) scored on the subset (#4-#5") != NULL, "probes folded:\n%s", text);
    CHECK(!strstr(text, "probe conv2"), "a probe listed one by one:\n%s", text);
    CHECK(strstr(text, "fail (decided)") && strstr(text, "error"), "decisions:\n%s", text);
    CHECK(strstr(text, "0.8800  fail") != NULL, "a score:\n%s", text);
    CHECK(strstr(text, "artefacts in ") && strstr(text, "/report.html ") && strstr(text, "/evil<b>.int8.acq"),
          "artefacts:\n%s", text);
    free(text);
}

static void report_tests(const char *model)
{
    fixture fx;
    ac_err err = {0};
    char base[] = "/tmp/ac_report_selftest.XXXXXX";
    if (fixture_new(&fx, model, &err) || !mkdtemp(base)) {
        CHECK(0, "setup: %s", err.msg);
        fixture_free(&fx);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/search", base);
    ac_outputs_candidate c[7];
    ac_outputs o = outputs_of(&fx, dir);
    candidates(c, &o.ncands);
    check_verdicts(c);
    o.mode = "auto";
    o.cands = c;
    o.chosen = 1;
    o.rounds = 3;
    o.evaluations = 5;
    o.subset_evaluations = 2;
    o.workers = 2;
    CHECK(ac_outputs_write(&o, &err) == 0, "write: %s", err.msg);
    check_search_report(&fx, dir, &o);
    check_summary(&o);

    /* --no_search: no timeline, no candidates. */
    snprintf(dir, sizeof dir, "%s/single", base);
    ac_outputs one = outputs_of(&fx, dir);
    CHECK(ac_outputs_write(&one, &err) == 0, "write: %s", err.msg);
    char path[4200];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = slurp(path);
    CHECK(html != NULL, "no-search report");
    if (html) {
        check_page_is_offline(html);
        CHECK(!strstr(html, "timeline-chart") && !strstr(html, "<table id=\"candidates\">") &&
                  strstr(html, "there was no search"),
              "no-search page has no timeline");
        CHECK(count(html, "<g class=\"layer-row") == fx.n_charted, "sensitivity rows without a search");
        free(html);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", base);
    CHECK(system(cmd) == 0, "cleanup");
    fixture_free(&fx);
}

/* ---- progress ----------------------------------------------------------------------- */

static void progress_tests(void)
{
    CHECK(ac_progress_new(NULL, AC_PROGRESS_BAR, 0, "quiet", 10, "tasks") == NULL, "no file: no display");
    ac_progress *none = NULL;
    ac_progress_update(none, 3);
    ac_progress_destroy(&none);

    /* A terminal: carriage-return redraws, the last one complete, one newline. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ac_progress *p = ac_progress_new(f, AC_PROGRESS_BAR, 0, "round 2: 5 candidate(s)", 10, "tasks");
    CHECK(p != NULL, "bar");
    for (int i = 1; i <= 10; i++) {
        usleep(20000); /* a rate to show */
        ac_progress_update(p, i);
    }
    ac_progress_destroy(&p);
    CHECK(p == NULL, "destroy clears the handle");
    fclose(f);
    CHECK(text[0] == '\r' && count(text, "\n") == 1 && text[len - 1] == '\n', "one line redrawn:\n%s", text);
    CHECK(strstr(text, "[########################]  10/10 tasks") != NULL, "full bar with counts:\n%s", text);
    CHECK(strstr(text, "[------------------------]  0/10 tasks") != NULL, "empty bar first:\n%s", text);
    CHECK(strstr(text, "/s  ETA ") != NULL && strstr(text, "/s  in ") != NULL, "rate, ETA and time taken:\n%s", text);
    free(text);

    /* A name too long for the terminal (80 columns when it is not one): cut, never wrapped. */
    text = NULL;
    f = open_memstream(&text, &len);
    char what[201];
    memset(what, 'w', 200);
    what[200] = '\0';
    p = ac_progress_new(f, AC_PROGRESS_BAR, 0, what, 3, "samples");
    ac_progress_update(p, 3);
    ac_progress_destroy(&p);
    fclose(f);
    for (char *s = strtok(text, "\r\n"); s; s = strtok(NULL, "\r\n"))
        CHECK(strlen(s) <= 79 && strstr(s, "...") && strstr(s, "3 samples"), "line of %zu chars: %s", strlen(s), s);
    free(text);

    /* Not a terminal: timestamped lines, no carriage return. */
    text = NULL;
    f = open_memstream(&text, &len);
    p = ac_progress_new(f, AC_PROGRESS_LINES, 0, "fp32 scoring", 4, "tasks");
    for (int i = 1; i <= 4; i++)
        ac_progress_update(p, i);
    ac_progress_destroy(&p);
    fclose(f);
    CHECK(!strchr(text, '\r') && count(text, "\n") == 2, "two lines:\n%s", text);
    CHECK(text[0] == '[' && strstr(text, "s] fp32 scoring: 4 tasks\n") && strstr(text, "s] fp32 scoring: 4/4 tasks"),
          "start and end lines:\n%s", text);
    free(text);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
        return 2;
    }
    report_tests(argv[1]);
    progress_tests();
    if (failures) {
        fprintf(stderr, "report_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("report_selftest: ok\n");
    return 0;
}
