/* ac_outputs: what a quantization job leaves in --output_dir, written to a
 * temporary folder and renamed into place (never half-written):
 *   calibration_table  tpu-mlir's format, after threshold sharing (spec §8)
 *   qtable             the layers kept in fp32
 *   <model>.int8.acq   the int8 model (docs/int8-model-format.md)
 *   report.json        scores, budget, strategy, layers, and the search
 *   report.html        the same for people: summary, charts, tables (ac_report_html.h)
 * Both the single-strategy job and the farm's search fill an ac_outputs. */
#ifndef AC_OUTPUTS_H
#define AC_OUTPUTS_H

#include <stdbool.h>
#include <stdint.h>

#include "ac_err.h"
#include "ac_graph.h"
#include "ac_metric.h"
#include "ac_plan.h"

/* Per-tensor agreement of int8 with fp32 activations (sums over the samples scored). */
typedef struct {
    double dot, ref_sq, q_sq, err_sq;
} ac_layer_acc;

/* Adds one batch's agreement (its first nreal samples) of every node output
 * the plan quantizes, tensors shared among OpenMP threads. */
struct ac_exec;
struct ac_qexec;
void ac_layer_acc_add(ac_layer_acc *acc, const ac_plan *plan, const struct ac_exec *fp32,
                      const struct ac_qexec *int8, int batch, int nreal);

/* The cosine and SQNR (dB) that the reports give for one tensor; false when
 * it has no statistics. Identical values give an SQNR of 200 dB. */
bool ac_layer_acc_stats(const ac_layer_acc *a, double *cosine, double *sqnr_db);

/* The right shifts of an int8 conv/FC node: n = its output channels when it
 * has per-channel shifts, else 1. NULL (n = 0) for other nodes. */
const int32_t *ac_node_plan_shifts(const ac_node_plan *np, int64_t *n);

/* One candidate of a search, as the report lists it. */
typedef struct {
    char name[96];
    const char *th_method;
    bool per_channel, accuracy_opt, first_conv_fp32;
    int nfp32;
    const char *const *fp32_layers;   /* names of the layers the search kept in fp32 */
    bool evaluated, failed, subset;
    bool decided_fail;                 /* failed the budget in a pass/fail round: no score reported */
    const char *decided;               /* "pass" | "fail" (full-set candidates scored), NULL otherwise */
    double score, cost;
    int shards, round;
    double elapsed_s;
    const char *error;                 /* NULL when none */
    const ac_metric_result *result;    /* the score's details (top-5, cosine, mAP), NULL if unknown */
} ac_outputs_candidate;

/* How a candidate came out, as the report and the summary show it. */
typedef enum {
    AC_VERDICT_PASS,          /* scored on the full test set, within the budget */
    AC_VERDICT_FAIL,          /* scored on the full test set, outside it */
    AC_VERDICT_DECIDED_FAIL,  /* pass/fail round: fails the budget, no score reported */
    AC_VERDICT_SUBSET,        /* a probe scored on the subset (no verdict) */
    AC_VERDICT_ERROR          /* not evaluated, or its evaluation failed (error says why) */
} ac_verdict;

ac_verdict ac_outputs_verdict(const ac_outputs_candidate *c);
/* "pass", "fail", "fail (decided)", "subset", "error". */
const char *ac_verdict_name(ac_verdict v);

typedef struct {
    const char *output_dir;
    const char *model_path;
    const ac_graph *g;
    const ac_plan *plan;               /* the chosen plan */
    const char *task;                  /* classify | similarity | detect | plugin */
    double fp32_score, int8_score, accept_decay;
    bool met_budget;
    const ac_metric_result *fp32_res;  /* NULL: not computed (given by --fp32_score) */
    const ac_metric_result *int8_res;  /* NULL: only the score is known */
    /* the chosen strategy */
    const char *th_method;
    bool kl_tune, per_channel, accuracy_opt, first_conv_fp32;
    const char *const *fp32_requested; /* --fp32_layers */
    int n_fp32_requested;
    /* data */
    const char *calib_source;
    int64_t calib_samples;
    int tuned_thresholds;
    double calib_s;
    const char *test_source;
    int64_t test_samples;
    double test_s;
    const ac_layer_acc *layers;        /* [g->ntensors] or NULL */
    int64_t layer_samples;             /* samples the layer statistics cover */
    /* the search (mode NULL: one strategy, no search) */
    const char *mode;                  /* "fast" | "auto" */
    const ac_outputs_candidate *cands;
    int ncands, rounds, evaluations, subset_evaluations, workers;
    int chosen;                        /* index into cands of the chosen plan (-1: none) */
    int requeues, broker_restarts, failed_tasks;
    int early_stopped, cancelled_tasks; /* decided from bounds: depend on timing, never on the plan */
    double estimated_cost;             /* chosen plan's cost (all-int8 = 1) */
    bool search_timed_out;
    double elapsed_s;
} ac_outputs;

/* Estimated BM1684 cost of a plan, relative to the same network all in int8:
 * sum over layers of MACs x (1 in int8, AC_FP32_COST_FACTOR in fp32) divided
 * by the total MACs. The chip's int8 peak is 8x its fp32 peak (17.6 TOPS int8
 * vs 2.2 TFLOPS fp32 on BM1684), so an fp32 layer counts eight times. A
 * network without MACs costs 1. */
#define AC_FP32_COST_FACTOR 8.0
double ac_estimated_cost(const ac_plan *p);

/* The file name of the int8 model for a model path ("<stem>.int8.acq"). */
void ac_outputs_int8_name(const char *model_path, char *buf, size_t n);

/* Writes the artefacts, report.json and report.html (coordinator/ac_report_html.h). */
int ac_outputs_write(const ac_outputs *o, ac_err *err);

#endif
