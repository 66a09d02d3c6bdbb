#include "ac_report_html.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ac_ops.h"
#include "ac_plan.h"

/* ---- escaping ------------------------------------------------------------------- */

/* Length (1..4) of the UTF-8 sequence at s, or 0 when it is not valid UTF-8
 * (overlong forms and surrogates included). Stops at a NUL. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

void ac_html_escape(FILE *f, const char *s)
{
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_len(p);
        if (n == 0 || *p < 0x20 || *p == 0x7F) {
            fputs("\xEF\xBF\xBD", f); /* U+FFFD */
            p++;
            continue;
        }
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fwrite(p, 1, (size_t)n, f);
        }
        p += n;
    }
}

static void esc(FILE *f, const char *s)
{
    ac_html_escape(f, s);
}

/* The last max_chars characters of s, escaped, "…" marking a cut: the end of
 * a layer name is the part that tells layers apart ("…/conv.0/Conv"). */
static void esc_tail(FILE *f, const char *s, int max_chars)
{
    const unsigned char *p = (const unsigned char *)s;
    int count = 0;
    for (const unsigned char *q = p; *q; count++) {
        int n = utf8_len(q);
        q += n ? n : 1;
    }
    if (count <= max_chars) {
        esc(f, s);
        return;
    }
    fputs("\xE2\x80\xA6", f); /* … */
    for (int skip = count - (max_chars - 1); skip > 0; skip--) {
        int n = utf8_len(p);
        p += n ? n : 1;
    }
    esc(f, (const char *)p);
}

/* A number, or a dash when there is none (an infinite cost: the plan did not build). */
static void num(FILE *f, const char *fmt, double v)
{
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("\xE2\x80\x94", f);
}

/* ---- page ----------------------------------------------------------------------- */

/* Light colours on white, and the colours kept when printing. */
static const char *const CSS =
    "*{-webkit-print-color-adjust:exact;print-color-adjust:exact;box-sizing:border-box}\n"
    "body{font:14px/1.45 system-ui,'Segoe UI',Helvetica,Arial,sans-serif;color:#1a1a1a;background:#fff;"
    "max-width:1060px;margin:24px auto;padding:0 18px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 8px;padding-bottom:3px;"
    "border-bottom:1px solid #ccc}\n"
    "p.model{margin:0;color:#444;word-break:break-all}p.note{color:#444;margin:4px 0 8px}\n"
    ".verdict{font-size:16px;font-weight:600;padding:6px 10px;border:2px solid;display:inline-block;margin:10px 0}\n"
    ".verdict.met{color:#1b6b30;border-color:#2a9d4b;background:#eef8f0}\n"
    ".verdict.missed{color:#a32018;border-color:#d9534f;background:#fdf0ef}\n"
    "table{border-collapse:collapse;font-size:13px;margin:6px 0}\n"
    "th,td{border:1px solid #d6d6d6;padding:3px 7px;text-align:left;vertical-align:top}\n"
    "thead th{background:#f1f3f5}table.kv th{background:#f7f7f7;width:170px;font-weight:600}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.name{word-break:break-all;max-width:320px}\n"
    "tr.fp32 td{background:#fbf3e6}tr.chosen td{background:#e6f4ea;font-weight:600}\n"
    ".pass{color:#1b6b30}.fail{color:#a32018}.err{color:#555}\n"
    "svg{display:block;max-width:100%;height:auto;margin:6px 0;font-family:system-ui,'Segoe UI',Helvetica,Arial,"
    "sans-serif;font-size:11px}\n"
    "details summary{cursor:pointer;color:#333}code{font-size:12px}\n"
    "@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}"
    "h2{break-after:avoid}section.keep{break-inside:avoid}thead{display:table-header-group}"
    "tr{break-inside:avoid}details>*{display:block}}\n";

static void head(FILE *f, const ac_outputs *o)
{
    const char *base = strrchr(o->model_path, '/');
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>autocalib report: ",
          f);
    esc(f, base ? base + 1 : o->model_path);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n<h1>autocalib report</h1>\n<p class=\"model\">",
            CSS);
    esc(f, o->model_path);
    fputs("</p>\n</header>\n", f);
}

/* ---- summary -------------------------------------------------------------------- */

static void kv(FILE *f, const char *key)
{
    fprintf(f, "<tr><th scope=\"row\">%s</th><td>", key);
}

static const char *const TR_END = "</td></tr>\n";

static void score_details(FILE *f, const ac_metric_result *fp, const ac_metric_result *q)
{
    if (q && q->topk) {
        fputs("<br>top-5: ", f);
        if (fp && fp->topk) {
            fprintf(f, "fp32 %.4f, ", fp->topk_accuracy);
        }
        fprintf(f, "int8 %.4f", q->topk_accuracy);
    }
    if (q && (q->detections || q->gt_boxes))
        fprintf(f, "<br>int8 mAP@0.5 %.4f, mAP@[.5:.95] %.4f against %s (%lld detections, %lld boxes)", q->map50,
                q->map50_95, q->labelled ? "the test labels" : "the fp32 detections", (long long)q->detections,
                (long long)q->gt_boxes);
    if (q && q->cosine != 0)
        fprintf(f, "<br>int8 output cosine to fp32 %.6f, top-1 agreement %.4f", q->cosine, q->top1_agreement);
}

static void name_list(FILE *f, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        fputs(i ? ", <code>" : "<code>", f);
        esc(f, names[i]);
        fputs("</code>", f);
    }
}

/* The chosen plan's fp32 layers with their reasons; a long list folds away. */
static void fp32_layers(FILE *f, const ac_outputs *o)
{
    const ac_plan *p = o->plan;
    fprintf(f, "%d of %d layers", p->n_fp32, o->g->nnodes);
    if (!p->n_fp32)
        return;
    bool fold = p->n_fp32 > 8;
    fputs(fold ? "<details><summary>which and why</summary>" : "<br>", f);
    int k = 0;
    for (int i = 0; i < o->g->nnodes; i++) {
        const ac_node_plan *np = &p->nodes[i];
        if (np->mode != AC_MODE_FP32)
            continue;
        fputs(k++ ? ", <code>" : "<code>", f);
        esc(f, o->g->nodes[i].name);
        fputs("</code> (", f);
        esc(f, ac_fp32_reason_name(np->why));
        fputs(")", f);
    }
    if (fold)
        fputs("</details>", f);
}

static void strategy(FILE *f, const ac_outputs *o)
{
    esc(f, o->th_method);
    fputs(" thresholds", f);
    if (o->kl_tune)
        fputs(" (tuned)", f);
    fputs(o->per_channel ? ", per-channel shifts" : ", per-tensor shifts", f);
    if (o->accuracy_opt)
        fputs(", accuracy_opt (depthwise convs in fp32)", f);
    if (o->first_conv_fp32)
        fputs(", first conv in fp32", f);
    if (o->n_fp32_requested) {
        fputs(", --fp32_layers ", f);
        name_list(f, o->fp32_requested, o->n_fp32_requested);
    }
    if (o->mode && o->chosen >= 0 && o->chosen < o->ncands) {
        fprintf(f, "<br>candidate #%d <b>", o->chosen + 1);
        esc(f, o->cands[o->chosen].name);
        fprintf(f, "</b>, round %d", o->cands[o->chosen].round);
    }
}

static void summary(FILE *f, const ac_outputs *o, const char *int8_name)
{
    double loss = o->fp32_score - o->int8_score;
    fputs("<section id=\"summary\" class=\"keep\">\n<h2>Summary</h2>\n", f);
    fprintf(f, "<div class=\"verdict %s\">Budget %s: int8 %.4f vs fp32 %.4f, loss %.4f (allowed %.4g)</div>\n",
            o->met_budget ? "met" : "missed", o->met_budget ? "met" : "NOT met", o->int8_score, o->fp32_score, loss,
            o->accept_decay);
    fputs("<table class=\"kv\">\n", f);
    kv(f, "Model");
    esc(f, o->model_path);
    fputs(TR_END, f);
    kv(f, "Task");
    esc(f, o->task);
    fputs(TR_END, f);
    kv(f, "Score");
    fprintf(f, "fp32 <b>%.4f</b>%s, int8 <b>%.4f</b>, loss %.4f", o->fp32_score, o->fp32_res ? "" : " (given)",
            o->int8_score, loss);
    score_details(f, o->fp32_res, o->int8_res);
    fputs(TR_END, f);
    kv(f, "Budget");
    fprintf(f, "loss &le; %.4g: <b class=\"%s\">%s</b>", o->accept_decay, o->met_budget ? "pass" : "fail",
            o->met_budget ? "met" : "NOT met");
    fputs(TR_END, f);
    kv(f, "Chosen plan");
    strategy(f, o);
    fputs(TR_END, f);
    kv(f, "fp32 layers");
    fp32_layers(f, o);
    fputs(TR_END, f);
    kv(f, "Estimated cost");
    num(f, "%.3f", o->estimated_cost);
    fputs(" &times; the all-int8 network on BM1684 (an fp32 layer's MACs count 8&times;)", f);
    fputs(TR_END, f);
    kv(f, "Time");
    fprintf(f, "%.1f s in all; calibration %.1f s, test %.1f s", o->elapsed_s, o->calib_s, o->test_s);
    fputs(TR_END, f);
    kv(f, "Calibration data");
    esc(f, o->calib_source);
    fprintf(f, ": %lld samples", (long long)o->calib_samples);
    if (o->kl_tune)
        fprintf(f, ", tuning raised %d thresholds", o->tuned_thresholds);
    fputs(TR_END, f);
    kv(f, "Test data");
    esc(f, o->test_source);
    fprintf(f, ": %lld samples", (long long)o->test_samples);
    fputs(TR_END, f);
    kv(f, "Search");
    if (o->mode) {
        esc(f, o->mode);
        fprintf(f, " mode: %d round(s), %d evaluation(s) on the test set, %d on the subset, %d worker(s)", o->rounds,
                o->evaluations, o->subset_evaluations, o->workers);
        if (o->early_stopped || o->cancelled_tasks)
            fprintf(f, "; %d candidate(s) stopped early, %d task(s) cancelled", o->early_stopped, o->cancelled_tasks);
        if (o->failed_tasks || o->requeues || o->broker_restarts)
            fprintf(f, "; %d failed task(s), %d requeued, %d broker restart(s)", o->failed_tasks, o->requeues,
                    o->broker_restarts);
        if (o->search_timed_out)
            fputs("; <b>stopped by --max_search_seconds</b>", f);
    } else {
        fputs("none (--no_search): the one strategy given, evaluated once", f);
    }
    fputs(TR_END, f);
    kv(f, "Artefacts");
    fputs("<code>calibration_table</code>, <code>qtable</code>, <code>", f);
    esc(f, int8_name);
    fputs("</code>, <code>report.json</code>, <code>report.html</code>", f);
    fputs(TR_END, f);
    fputs("</table>\n</section>\n", f);
}

/* ---- per-layer sensitivity chart ------------------------------------------------ */

#define SENS_W 960
#define SENS_LABEL_X 276      /* right edge of the layer names */
#define SENS_SQNR_X 290
#define SENS_SQNR_W 330
#define SENS_COS_X 700
#define SENS_COS_W 190
#define SENS_TOP 46
#define SENS_ROW 18
#define SENS_NAME_CHARS 34

static const char *sqnr_colour(double db)
{
    return db < 20 ? "#d9534f" : db < 30 ? "#e0a030" : "#3a9a55";
}

typedef struct {
    double sqnr_max, cos_lo;
    int rows;
} sens_scale;

/* Whether node i gets a row: it has statistics, or it runs in fp32. */
static bool sens_row(const ac_outputs *o, int i, double *cosine, double *sqnr)
{
    int t = o->g->nodes[i].outputs[0];
    bool stats = ac_layer_acc_stats(o->layers && t >= 0 ? &o->layers[t] : NULL, cosine, sqnr);
    return stats || o->plan->nodes[i].mode == AC_MODE_FP32;
}

static sens_scale sens_axes(const ac_outputs *o)
{
    sens_scale s = {.sqnr_max = 0, .cos_lo = 1};
    for (int i = 0; i < o->g->nnodes; i++) {
        double c = NAN, q = NAN;
        if (!sens_row(o, i, &c, &q))
            continue;
        s.rows++;
        if (isfinite(q) && q < 200 && q > s.sqnr_max)
            s.sqnr_max = q;
        if (isfinite(c) && c < s.cos_lo)
            s.cos_lo = c;
    }
    s.sqnr_max = ceil(s.sqnr_max / 10) * 10;
    s.sqnr_max = s.sqnr_max < 10 ? 10 : s.sqnr_max > 80 ? 80 : s.sqnr_max;
    /* The cosine axis starts at the largest of these below the lowest cosine,
     * so that small differences near 1 stay visible. */
    static const double starts[] = {0.999, 0.99, 0.9, 0.5, 0.0, -1.0};
    double lo = -1.0;
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++)
        if (starts[k] < s.cos_lo) {
            lo = starts[k];
            break;
        }
    s.cos_lo = lo;
    return s;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static void sens_axis_grid(FILE *f, const sens_scale *s, int height)
{
    fprintf(f, "<text x=\"%d\" y=\"14\" font-weight=\"600\">SQNR of int8 vs fp32 activations (dB, higher is better)</text>\n",
            SENS_SQNR_X);
    fprintf(f, "<text x=\"%d\" y=\"14\" font-weight=\"600\">cosine to fp32</text>\n", SENS_COS_X);
    fprintf(f, "<text x=\"%d\" y=\"14\" font-weight=\"600\" text-anchor=\"end\">layer (graph order)</text>\n",
            SENS_LABEL_X);
    for (int k = 0; k <= 4; k++) {
        double v = s->sqnr_max * k / 4;
        double x = SENS_SQNR_X + SENS_SQNR_W * k / 4.0;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>", x, x, SENS_TOP - 6, height - 26);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.0f</text>\n", x, SENS_TOP - 10, v);
        double c = s->cos_lo + (1.0 - s->cos_lo) * k / 4;
        x = SENS_COS_X + SENS_COS_W * k / 4.0;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>", x, x, SENS_TOP - 6, height - 26);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.4g</text>\n", x, SENS_TOP - 10, c);
    }
}

static void sens_legend(FILE *f, int y)
{
    static const struct {
        const char *fill, *label;
    } items[] = {{"#d9534f", "below 20 dB"}, {"#e0a030", "20 to 30 dB"}, {"#3a9a55", "30 dB and up"},
                 {"#4a78b0", "cosine"}, {"url(#fp32-hatch)", "layer kept in fp32"}};
    int x = SENS_SQNR_X;
    for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\" stroke=\"#888\" stroke-width=\"0.5\"/>"
                   "<text x=\"%d\" y=\"%d\">%s</text>\n",
                x, y, items[k].fill, x + 18, y + 9, items[k].label);
        x += 24 + 7 * (int)strlen(items[k].label);
    }
}

static void sens_bar(FILE *f, double x, double w, const char *fill)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"3\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", x, w < 0.5 ? 0.5 : w, SENS_ROW - 6,
            fill);
}

static void sens_layer(FILE *f, const ac_outputs *o, const sens_scale *s, int i, int row)
{
    const ac_node *n = &o->g->nodes[i];
    const ac_node_plan *np = &o->plan->nodes[i];
    bool fp32 = np->mode == AC_MODE_FP32;
    double c = NAN, q = NAN;
    bool stats = ac_layer_acc_stats(o->layers && n->outputs[0] >= 0 ? &o->layers[n->outputs[0]] : NULL, &c, &q);
    fprintf(f, "<g class=\"layer-row%s\" transform=\"translate(0,%d)\">", fp32 ? " fp32" : "", SENS_TOP + row * SENS_ROW);
    if (row % 2)
        fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f6f7f8\"/>", SENS_W, SENS_ROW);
    fputs("<title>", f);
    esc(f, n->name);
    fputs(" (", f);
    esc(f, ac_op_name(n->op));
    fputs(")", f);
    if (stats)
        fprintf(f, ": SQNR %.2f dB, cosine %.6f", q, c);
    if (fp32) {
        fputs("; kept in fp32: ", f);
        esc(f, ac_fp32_reason_name(np->why));
    }
    fputs("</title>", f);
    if (fp32)
        fputs("<rect x=\"2\" y=\"3\" width=\"30\" height=\"12\" rx=\"2\" fill=\"#8a5a14\"/>"
              "<text x=\"17\" y=\"13\" text-anchor=\"middle\" font-size=\"9\" font-weight=\"700\" "
              "fill=\"#fff\">fp32</text>",
              f);
    fprintf(f, "<text x=\"%d\" y=\"13\" text-anchor=\"end\"%s>", SENS_LABEL_X, fp32 ? " font-weight=\"700\"" : "");
    esc_tail(f, n->name, SENS_NAME_CHARS);
    fputs("</text>", f);
    if (stats) {
        sens_bar(f, SENS_SQNR_X, SENS_SQNR_W * clamp01(q / s->sqnr_max), fp32 ? "url(#fp32-hatch)" : sqnr_colour(q));
        fprintf(f, "<text x=\"%d\" y=\"13\">", SENS_SQNR_X + SENS_SQNR_W + 6);
        if (q >= 200)
            fputs("exact", f);
        else
            fprintf(f, "%.1f dB", q);
        fputs("</text>", f);
        sens_bar(f, SENS_COS_X, SENS_COS_W * clamp01((c - s->cos_lo) / (1.0 - s->cos_lo)),
                 fp32 ? "url(#fp32-hatch)" : "#4a78b0");
        fprintf(f, "<text x=\"%d\" y=\"13\">%.4f</text>", SENS_COS_X + SENS_COS_W + 6, c);
    } else {
        sens_bar(f, SENS_SQNR_X, SENS_SQNR_W, "url(#fp32-hatch)");
        fprintf(f, "<text x=\"%d\" y=\"13\">kept in fp32: ", SENS_SQNR_X + 6);
        esc(f, ac_fp32_reason_name(np->why));
        fputs("</text>", f);
    }
    fputs("</g>\n", f);
}

static void sensitivity(FILE *f, const ac_outputs *o)
{
    fputs("<section id=\"sensitivity\">\n<h2>Per-layer sensitivity</h2>\n", f);
    sens_scale s = sens_axes(o);
    if (!s.rows) {
        fputs("<p class=\"note\">No per-layer statistics were collected and no layer runs in fp32.</p>\n</section>\n", f);
        return;
    }
    fprintf(f, "<p class=\"note\">How far each layer's int8 output is from fp32 under the chosen plan, over %lld "
               "test samples: signal-to-quantization-noise ratio and cosine similarity. Low values mark the "
               "layers that lose the most; fp32 layers are hatched.</p>\n",
            (long long)o->layer_samples);
    int height = SENS_TOP + s.rows * SENS_ROW + 34;
    fprintf(f, "<svg id=\"sensitivity-chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"per-layer SQNR and cosine\">\n",
            SENS_W, height, SENS_W, height);
    fputs("<defs><pattern id=\"fp32-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
          "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f3e3c8\"/>"
          "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#8a5a14\" stroke-width=\"2\"/></pattern></defs>\n",
          f);
    int row = 0;
    for (int i = 0; i < o->g->nnodes; i++) {
        double c, q;
        if (sens_row(o, i, &c, &q))
            sens_layer(f, o, &s, i, row++);
    }
    sens_axis_grid(f, &s, height);
    sens_legend(f, height - 16);
    fputs("</svg>\n</section>\n", f);
}

/* ---- search timeline ------------------------------------------------------------ */

#define TL_LEFT 74
#define TL_TOP 36
#define TL_PLOT_H 250
#define TL_BAND 40          /* the band below the axis: candidates without a score */
#define TL_RIGHT 150        /* room for the line labels */
#define TL_GAP 0.8          /* between rounds, in candidate widths */

typedef struct {
    double lo, hi, tick;    /* score axis */
    double step;            /* pixels per candidate */
    double plot_w;
    int groups;
} tl_scale;

static bool has_score(ac_verdict v)
{
    return v == AC_VERDICT_PASS || v == AC_VERDICT_FAIL || v == AC_VERDICT_SUBSET;
}

/* Scores on the task's axis: full-set ones. A subset probe's score is a
 * fidelity measure on a few samples (docs/search.md), not the task's score,
 * so its mark sits in the band below the axis with its score in its title. */
static bool on_axis(ac_verdict v)
{
    return v == AC_VERDICT_PASS || v == AC_VERDICT_FAIL;
}

/* A round step of about span/5: 1, 2 or 5 times a power of ten. */
static double nice_tick(double span)
{
    double raw = span / 5, p = pow(10, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

static tl_scale tl_axes(const ac_outputs *o, double budget)
{
    tl_scale s = {.lo = budget < o->fp32_score ? budget : o->fp32_score, .hi = o->fp32_score > budget ? o->fp32_score : budget};
    for (int i = 0; i < o->ncands; i++) {
        const ac_outputs_candidate *c = &o->cands[i];
        if (!on_axis(ac_outputs_verdict(c)) || !isfinite(c->score))
            continue;
        s.lo = c->score < s.lo ? c->score : s.lo;
        s.hi = c->score > s.hi ? c->score : s.hi;
    }
    for (int i = 0; i < o->ncands; i++)
        s.groups += i == 0 || o->cands[i].round != o->cands[i - 1].round;
    double span = s.hi - s.lo;
    if (!(span > 1e-9))
        span = fabs(s.hi) > 1e-9 ? fabs(s.hi) * 0.02 : 0.01;
    s.tick = nice_tick(span * 1.16);
    s.lo = floor((s.lo - span * 0.08) / s.tick) * s.tick;
    s.hi = ceil((s.hi + span * 0.08) / s.tick) * s.tick;
    double units = o->ncands + TL_GAP * (s.groups > 1 ? s.groups - 1 : 0);
    s.step = 820.0 / (units > 0 ? units : 1);
    s.step = s.step > 56 ? 56 : s.step < 7 ? 7 : s.step;
    s.plot_w = units * s.step;
    return s;
}

static double tl_y(const tl_scale *s, double v)
{
    return TL_TOP + TL_PLOT_H * (1.0 - (v - s->lo) / (s->hi - s->lo));
}

/* x of each candidate's centre (rounds are separated by a gap). */
static void tl_xs(const ac_outputs *o, const tl_scale *s, double *x)
{
    double u = 0;
    for (int i = 0; i < o->ncands; i++) {
        if (i > 0 && o->cands[i].round != o->cands[i - 1].round)
            u += TL_GAP;
        x[i] = TL_LEFT + (u + 0.5) * s->step;
        u += 1;
    }
}

static void tl_rounds(FILE *f, const ac_outputs *o, const tl_scale *s, const double *x)
{
    int group = 0;
    for (int i = 0; i < o->ncands;) {
        int k = i;
        bool subset = true;
        for (; k < o->ncands && o->cands[k].round == o->cands[i].round; k++)
            subset = subset && o->cands[k].subset;
        double x0 = x[i] - s->step / 2, x1 = x[k - 1] + s->step / 2;
        fprintf(f, "<g class=\"round\" data-round=\"%d\">", o->cands[i].round);
        if (group % 2 == 0)
            fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#f3f5f7\"/>", x0, TL_TOP,
                    x1 - x0, TL_PLOT_H + TL_BAND);
        bool wide = x1 - x0 >= 64;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#444\">%s%d%s</text></g>\n",
                (x0 + x1) / 2, TL_TOP - 8, wide ? "round " : "", o->cands[i].round,
                subset && wide ? " (subset)" : subset ? "s" : "");
        group++;
        i = k;
    }
}

static void tl_axis(FILE *f, const ac_outputs *o, const tl_scale *s)
{
    int bottom = TL_TOP + TL_PLOT_H;
    int decimals = (int)fmax(0, -floor(log10(s->tick) + 1e-9));
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n", TL_LEFT, TL_LEFT, TL_TOP, bottom);
    for (double v = s->lo; v <= s->hi + s->tick * 0.01; v += s->tick) {
        double y = tl_y(s, v);
        fprintf(f, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e2e2\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%.*f</text>\n",
                TL_LEFT, TL_LEFT + s->plot_w, y, y, TL_LEFT - 6, y + 4, decimals, v);
    }
    fprintf(f, "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">", TL_TOP + TL_PLOT_H / 2,
            TL_TOP + TL_PLOT_H / 2);
    esc(f, o->task);
    fputs(" score</text>\n", f);
    fprintf(f, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#999\" stroke-dasharray=\"2 3\"/>"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#555\">no score</text>\n",
            TL_LEFT, TL_LEFT + s->plot_w, bottom + 6, bottom + 6, TL_LEFT - 6, bottom + TL_BAND / 2 + 8);
}

/* The fp32 and budget lines; when they are close, fp32's label goes above and the budget's below. */
static void tl_lines(FILE *f, const ac_outputs *o, const tl_scale *s, double budget)
{
    double xr = TL_LEFT + s->plot_w, yf = tl_y(s, o->fp32_score), yb = tl_y(s, budget);
    bool close = fabs(yb - yf) < 14;
    fprintf(f, "<line id=\"fp32-line\" x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
               "stroke-dasharray=\"2 3\" stroke-width=\"1.5\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" fill=\"#444\">fp32 %.4f</text>\n",
            TL_LEFT, xr, yf, yf, xr + 6, close ? yf - 4 : yf + 4, o->fp32_score);
    fprintf(f, "<line id=\"budget-line\" x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#b3261e\" "
               "stroke-dasharray=\"7 4\" stroke-width=\"1.5\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" fill=\"#b3261e\">budget %.4f</text>\n",
            TL_LEFT, xr, yb, yb, xr + 6, close ? yb + 12 : yb + 4, budget);
}

static void cand_title(FILE *f, const ac_outputs_candidate *c, int i, ac_verdict v)
{
    fprintf(f, "<title>#%d ", i + 1);
    esc(f, c->name);
    fprintf(f, ", round %d: ", c->round);
    if (has_score(v))
        fprintf(f, "%s%.4f, ", v == AC_VERDICT_SUBSET ? "subset score " : "", c->score);
    esc(f, ac_verdict_name(v));
    if (v == AC_VERDICT_ERROR && c->error) {
        fputs(": ", f);
        esc(f, c->error);
    }
    fputs(", cost ", f);
    num(f, "%.3f", c->cost);
    fputs("</title>", f);
}

static void tl_marks(FILE *f, const ac_outputs *o, const tl_scale *s, const double *x)
{
    static const char *const cls[] = {"pass", "fail", "decided-fail", "subset", "error"};
    double band_y = TL_TOP + TL_PLOT_H + TL_BAND / 2 + 4;
    double r = s->step < 12 ? s->step * 0.42 : 5;
    for (int i = 0; i < o->ncands; i++) {
        const ac_outputs_candidate *c = &o->cands[i];
        ac_verdict v = ac_outputs_verdict(c);
        bool chosen = i == o->chosen;
        double y = on_axis(v) && isfinite(c->score) ? tl_y(s, c->score) : band_y;
        fprintf(f, "<g class=\"cand %s%s\" data-index=\"%d\" data-round=\"%d\" transform=\"translate(%.1f,%.1f)\">",
                cls[v], chosen ? " chosen" : "", i, c->round, x[i], y);
        cand_title(f, c, i, v);
        switch (v) {
        case AC_VERDICT_PASS:
            fprintf(f, "<circle r=\"%.1f\" fill=\"#2a9d4b\" stroke=\"#175c2b\"/>", r);
            break;
        case AC_VERDICT_FAIL:
            fprintf(f, "<circle r=\"%.1f\" fill=\"#d9534f\" stroke=\"#7d1a16\"/>", r);
            break;
        case AC_VERDICT_SUBSET:
            fprintf(f, "<circle r=\"%.1f\" fill=\"#fff\" stroke=\"#4a78b0\" stroke-width=\"1.5\"/>", r * 0.85);
            break;
        case AC_VERDICT_DECIDED_FAIL:
            fprintf(f, "<path d=\"M-%.1f,-%.1fL%.1f,%.1fM-%.1f,%.1fL%.1f,-%.1f\" stroke=\"#b3261e\" stroke-width=\"2\"/>",
                    r, r, r, r, r, r, r, r);
            break;
        case AC_VERDICT_ERROR:
            fprintf(f, "<path d=\"M0,-%.1fL%.1f,%.1fL-%.1f,%.1fZ\" fill=\"#777\" stroke=\"#333\"/>", r, r, r * 0.8, r,
                    r * 0.8);
            break;
        }
        if (chosen)
            fprintf(f, "<circle r=\"%.1f\" fill=\"none\" stroke=\"#111\" stroke-width=\"2\"/>"
                       "<text y=\"-%.1f\" text-anchor=\"middle\" font-weight=\"700\">chosen</text>",
                    r + 4, r + 8);
        if (s->step >= 16)
            fprintf(f, "<text y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\" fill=\"#666\">%d</text>",
                    TL_TOP + TL_PLOT_H + TL_BAND + 12 - y, i + 1);
        fputs("</g>\n", f);
    }
}

static void tl_legend(FILE *f, int y)
{
    static const struct {
        const char *shape, *label;
    } items[] = {
        {"<circle cx=\"6\" cy=\"-4\" r=\"5\" fill=\"#2a9d4b\" stroke=\"#175c2b\"/>", "passes the budget"},
        {"<circle cx=\"6\" cy=\"-4\" r=\"5\" fill=\"#d9534f\" stroke=\"#7d1a16\"/>", "fails it"},
        {"<path d=\"M2,-8L10,0M2,0L10,-8\" stroke=\"#b3261e\" stroke-width=\"2\"/>", "decided fail (no score)"},
        {"<circle cx=\"6\" cy=\"-4\" r=\"4\" fill=\"#fff\" stroke=\"#4a78b0\" stroke-width=\"1.5\"/>",
         "subset probe (below the axis)"},
        {"<path d=\"M6,-9L11,0L1,0Z\" fill=\"#777\" stroke=\"#333\"/>", "not evaluated / error"},
    };
    int x = TL_LEFT;
    for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
        fprintf(f, "<g transform=\"translate(%d,%d)\">%s<text x=\"16\" y=\"0\">%s</text></g>\n", x, y, items[k].shape,
                items[k].label);
        x += 30 + 6 * (int)strlen(items[k].label);
    }
}

static void timeline_chart(FILE *f, const ac_outputs *o)
{
    double budget = o->fp32_score - o->accept_decay;
    tl_scale s = tl_axes(o, budget);
    double *x = malloc(sizeof(double) * (size_t)o->ncands);
    if (!x) {
        fputs("<p class=\"note\">(no chart: out of memory)</p>\n", f);
        return;
    }
    tl_xs(o, &s, x);
    int width = TL_LEFT + (int)ceil(s.plot_w) + TL_RIGHT, height = TL_TOP + TL_PLOT_H + TL_BAND + 48;
    width = width < 880 ? 880 : width;   /* room for the legend */
    fprintf(f, "<svg id=\"timeline-chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"candidate scores by round\">\n",
            width, height, width, height);
    tl_rounds(f, o, &s, x);
    tl_axis(f, o, &s);
    tl_lines(f, o, &s, budget);
    tl_marks(f, o, &s, x);
    tl_legend(f, height - 8);
    fputs("</svg>\n", f);
    free(x);
}

static void candidate_table(FILE *f, const ac_outputs *o)
{
    fputs("<table id=\"candidates\">\n<thead><tr><th>#</th><th>round</th><th>candidate</th><th>fp32 layers</th>"
          "<th>score</th><th>decision</th><th>cost</th><th>shards</th><th>time (s)</th></tr></thead>\n<tbody>\n",
          f);
    for (int i = 0; i < o->ncands; i++) {
        const ac_outputs_candidate *c = &o->cands[i];
        ac_verdict v = ac_outputs_verdict(c);
        fprintf(f, "<tr%s><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"name\">",
                i == o->chosen ? " class=\"chosen\"" : "", i + 1, c->round);
        esc(f, c->name);
        if (i == o->chosen)
            fputs(" &#10003; chosen", f);
        fprintf(f, "</td><td class=\"num\">%d</td><td class=\"num\">", c->nfp32);
        if (has_score(v))
            fprintf(f, "%.4f", c->score);
        else
            fputs("&mdash;", f);
        fprintf(f, "</td><td class=\"%s\">",
                v == AC_VERDICT_PASS ? "pass" : v == AC_VERDICT_ERROR ? "err" : v == AC_VERDICT_SUBSET ? "" : "fail");
        esc(f, ac_verdict_name(v));
        if (v == AC_VERDICT_ERROR && c->error) {
            fputs(": ", f);
            esc(f, c->error);
        }
        fputs("</td><td class=\"num\">", f);
        num(f, "%.3f", c->cost);
        fprintf(f, "</td><td class=\"num\">%d</td><td class=\"num\">%.2f</td></tr>\n", c->shards, c->elapsed_s);
    }
    fputs("</tbody>\n</table>\n", f);
}

static void timeline(FILE *f, const ac_outputs *o)
{
    fputs("<section id=\"timeline\">\n<h2>Search timeline</h2>\n", f);
    if (!o->mode) {
        fputs("<p class=\"note\">One strategy was evaluated (<code>--no_search</code>): there was no search.</p>\n"
              "</section>\n",
              f);
        return;
    }
    fprintf(f, "<p class=\"note\">Every candidate the %s-mode search evaluated, in the order of its rounds: its score "
               "against the budget line (fp32 score minus %.4g). Candidates of pass/fail rounds that fail the budget "
               "have no score (they may have been stopped early) and sit below the axis, as do subset probes (the "
               "screen of fast-mode options, auto mode's removal probes): those are scored on the first %lld test "
               "samples by the mean cosine of their outputs against fp32, shown in their titles and the table.</p>\n",
            o->mode, o->accept_decay, (long long)o->layer_samples);
    if (o->ncands)
        timeline_chart(f, o);
    candidate_table(f, o);
    fputs("</section>\n", f);
}

/* ---- per-layer table ------------------------------------------------------------ */

static void shifts_cell(FILE *f, const ac_node_plan *np)
{
    int64_t n;
    const int32_t *rs = ac_node_plan_shifts(np, &n);
    if (rs && n == 1) {
        fprintf(f, "&gt;&gt;%d", rs[0]);
    } else if (rs && n > 1) {
        int32_t lo = rs[0], hi = rs[0];
        for (int64_t c = 1; c < n; c++) {
            lo = rs[c] < lo ? rs[c] : lo;
            hi = rs[c] > hi ? rs[c] : hi;
        }
        fprintf(f, "<details><summary>&gt;&gt;%d&ndash;%d (%lld channels)</summary><code>", lo, hi, (long long)n);
        for (int64_t c = 0; c < n; c++)
            fprintf(f, c ? " %d" : "%d", rs[c]);
        fputs("</code></details>", f);
    } else if (np->kind == AC_Q8_ADD) {
        for (int i = 0; i < np->u.add.ninputs; i++)
            fprintf(f, "%s&times;%d &gt;&gt;%d", i ? ", " : "", np->u.add.m[i], np->u.add.r[i]);
    } else if (np->kind == AC_Q8_AVGPOOL) {
        fprintf(f, "&times;%d &gt;&gt;%d", np->u.avgpool.m, np->u.avgpool.e);
    } else if (np->kind == AC_Q8_GLOBAL_AVGPOOL) {
        fprintf(f, "&times;%d &gt;&gt;%d", np->u.gavg.m, np->u.gavg.e);
    }
}

static void layer_row(FILE *f, const ac_outputs *o, int i)
{
    const ac_graph *g = o->g;
    const ac_node *n = &g->nodes[i];
    const ac_node_plan *np = &o->plan->nodes[i];
    int t = n->outputs[0];
    const ac_tensor_plan *tp = t >= 0 ? &o->plan->tensors[t] : NULL;
    bool fp32 = np->mode == AC_MODE_FP32;
    fprintf(f, "<tr%s><td class=\"num\">%d</td><td class=\"name\">", fp32 ? " class=\"fp32\"" : "", i + 1);
    esc(f, n->name);
    fputs("</td><td>", f);
    esc(f, ac_op_name(n->op));
    fputs("</td><td class=\"name\">", f);
    esc(f, t >= 0 ? g->tensors[t].name : "");
    fputs("</td><td>", f);
    if (fp32) {
        fputs("<b>fp32</b>: ", f);
        esc(f, ac_fp32_reason_name(np->why));
        if (np->detail[0]) {
            fputs(" (", f);
            esc(f, np->detail);
            fputs(")", f);
        }
    } else {
        fputs("int8", f);
    }
    fputs("</td><td class=\"num\">", f);
    if (tp && tp->has_range)
        fprintf(f, "%.6g %s", tp->th, tp->is_signed ? "s8" : "u8");
    fputs("</td><td>", f);
    if (!fp32)
        shifts_cell(f, np);
    fputs("</td><td class=\"num\">", f);
    double c, q;
    if (ac_layer_acc_stats(o->layers && t >= 0 ? &o->layers[t] : NULL, &c, &q)) {
        fprintf(f, "%.5f</td><td class=\"num\">", c);
        if (q >= 200)
            fputs("exact", f);
        else
            fprintf(f, "%.1f", q);
    } else {
        fputs("</td><td class=\"num\">", f);
    }
    fprintf(f, "</td><td class=\"num\">%lld</td></tr>\n", (long long)ac_node_macs(g, n));
}

static void layer_table(FILE *f, const ac_outputs *o)
{
    fputs("<section id=\"layers-section\">\n<h2>Layers</h2>\n<p class=\"note\">The chosen plan, node by node: "
          "threshold of the output (s8 signed, u8 unsigned), the right shift(s) of conv/FC layers or the "
          "multiplier and shift of adds and average pools, and the agreement of the int8 output with fp32.</p>\n"
          "<table id=\"layers\">\n<thead><tr><th>#</th><th>layer</th><th>op</th><th>output</th><th>mode</th>"
          "<th>threshold</th><th>shift(s)</th><th>cosine</th><th>SQNR (dB)</th><th>MACs</th></tr></thead>\n"
          "<tbody>\n",
          f);
    for (int i = 0; i < o->g->nnodes; i++)
        layer_row(f, o, i);
    fputs("</tbody>\n</table>\n</section>\n", f);
}

int ac_report_html_write(const ac_outputs *o, const char *path, const char *int8_name, ac_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    head(f, o);
    summary(f, o, int8_name);
    sensitivity(f, o);
    timeline(f, o);
    layer_table(f, o);
    fputs("<footer><p class=\"note\">Written by autocalib with report.json, from the same data.</p></footer>\n"
          "</body>\n</html>\n",
          f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return ac_err_set(err, AC_E_IO, "%s: write failed", path);
    return 0;
}
