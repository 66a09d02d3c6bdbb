#include "ac_summary.h"

#include <math.h>
#include <string.h>

#define NAME_W 44

static void candidate_line(FILE *f, const ac_outputs *o, int i)
{
    const ac_outputs_candidate *c = &o->cands[i];
    ac_verdict v = ac_outputs_verdict(c);
    int nl = (int)strlen(c->name);
    fprintf(f, "  %4d  %5d  %-*.*s%s", i + 1, c->round, nl > NAME_W ? NAME_W - 3 : NAME_W,
            nl > NAME_W ? NAME_W - 3 : nl, c->name, nl > NAME_W ? "..." : "");
    if (v == AC_VERDICT_PASS || v == AC_VERDICT_FAIL)
        fprintf(f, "  %8.4f", c->score);
    else
        fprintf(f, "  %8s", "-");
    fprintf(f, "  %-14s", ac_verdict_name(v));
    if (isfinite(c->cost))
        fprintf(f, "  %6.3f", c->cost);
    else
        fprintf(f, "  %6s", "-");
    fputs(i == o->chosen ? "  <- chosen\n" : "\n", f);
}

/* The candidates, a round of subset probes as one line. */
static void candidates(FILE *f, const ac_outputs *o)
{
    fprintf(f, "search (%s mode): %d candidate(s) in %d round(s), %d evaluation(s) + %d on the subset, %d worker(s)\n",
            o->mode, o->ncands, o->rounds, o->evaluations, o->subset_evaluations, o->workers);
    fprintf(f, "  %4s  %5s  %-*s  %8s  %-14s  %6s\n", "#", "round", NAME_W, "candidate", "score", "decision", "cost");
    for (int i = 0; i < o->ncands;) {
        if (!o->cands[i].subset) {
            candidate_line(f, o, i++);
            continue;
        }
        int k = i;
        while (k < o->ncands && o->cands[k].subset && o->cands[k].round == o->cands[i].round)
            k++;
        fprintf(f, "  %4d  %5d  %d probe(s) scored on the subset (#%d-#%d; scores in report.html)\n",
                i + 1, o->cands[i].round, k - i, i + 1, k);
        i = k;
    }
    if (o->chosen >= 0 && o->chosen < o->ncands)
        fprintf(f, "chosen: #%d %s: int8 %.4f vs fp32 %.4f (budget %.4g: %s), estimated cost %.3f\n", o->chosen + 1,
                o->cands[o->chosen].name, o->int8_score, o->fp32_score, o->accept_decay,
                o->met_budget ? "met" : "NOT met", o->estimated_cost);
}

void ac_summary_print(const ac_outputs *o, FILE *f)
{
    if (o->mode)
        candidates(f, o);
    char int8_name[600];
    ac_outputs_int8_name(o->model_path, int8_name, sizeof int8_name);
    const char *const files[][2] = {
        {"report.html", "the report to read in a browser: summary, sensitivity, search timeline, layers"},
        {"report.json", "the same for programs"},
        {"calibration_table", "thresholds for tpu-mlir (--calibration_table)"},
        {"qtable", "the layers kept in fp32 (--quantize_table)"},
        {int8_name, "the int8 model (autocalib run --model)"},
    };
    size_t dl = strlen(o->output_dir), w = 0;
    const char *sep = dl && o->output_dir[dl - 1] == '/' ? "" : "/";
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
        w = strlen(files[k][0]) > w ? strlen(files[k][0]) : w;
    fprintf(f, "artefacts in %s:\n", o->output_dir);
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
        fprintf(f, "  %s%s%-*s  %s\n", o->output_dir, sep, (int)w, files[k][0], files[k][1]);
    fflush(f);
}
