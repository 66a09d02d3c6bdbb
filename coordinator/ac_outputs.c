#include "ac_outputs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ac_calib_table.h"
#include "ac_exec.h"
#include "ac_int8_model.h"
#include "ac_json.h"
#include "ac_ops.h"
#include "ac_qexec.h"
#include "ac_report_html.h"

/* Adds one tensor's n values: the int8 run's floats f, or its codes
 * dequantized, against the fp32 reference. An unsigned tensor drops
 * negatives by design (a ReLU consumes it, spec §2), so the reference is
 * compared from 0 up. */
static void acc_tensor(ac_layer_acc *a, const ac_tensor_plan *tp, const float *ref, const float *f, const void *codes,
                       int64_t n)
{
    bool clamp0 = tp->has_range && !tp->is_signed;
    for (int64_t k = 0; k < n; k++) {
        float qv = f ? f[k]
                     : (float)((tp->is_signed ? ((const int8_t *)codes)[k] : ((const uint8_t *)codes)[k]) * tp->scale);
        double r = clamp0 && ref[k] < 0 ? 0.0 : ref[k], v = qv, d = r - v;
        a->dot += r * v;
        a->ref_sq += r * r;
        a->q_sq += v * v;
        a->err_sq += d * d;
    }
}

void ac_layer_acc_add(ac_layer_acc *acc, const ac_plan *plan, const ac_exec *fp32, const ac_qexec *int8, int batch,
                      int nreal)
{
    const ac_graph *g = plan->g;
    /* One tensor per iteration, each summed in order by one thread: the
     * sums do not depend on the thread count. */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < g->nnodes; i++) {
        int t = g->nodes[i].outputs[0];
        if (t < 0 || !plan->tensors[t].activation)
            continue;
        int64_t n = ac_tensor_numel(&g->tensors[t]) / batch * nreal;
        const float *ref = ac_exec_tensor(fp32, t);
        const float *f = ac_qexec_tensor_float(int8, t);
        const void *codes = f ? NULL : ac_qexec_tensor_codes(int8, t);
        if (ref && (f || codes))
            acc_tensor(&acc[t], &plan->tensors[t], ref, f, codes, n);
    }
}

bool ac_layer_acc_stats(const ac_layer_acc *a, double *cosine, double *sqnr_db)
{
    if (!a || !(a->ref_sq > 0))
        return false;
    *cosine = a->q_sq > 0 ? a->dot / sqrt(a->ref_sq * a->q_sq) : 0.0;
    *sqnr_db = a->err_sq > 0 ? 10.0 * log10(a->ref_sq / a->err_sq) : 200.0;
    return true;
}

const int32_t *ac_node_plan_shifts(const ac_node_plan *np, int64_t *n)
{
    *n = 0;
    if (np->kind == AC_Q8_CONV) {
        *n = np->per_channel ? np->u.conv.s.c_out : 1;
        return np->u.conv.rshift;
    }
    if (np->kind == AC_Q8_FC) {
        *n = np->per_channel ? np->u.fc.n : 1;
        return np->u.fc.rshift;
    }
    return NULL;
}

ac_verdict ac_outputs_verdict(const ac_outputs_candidate *c)
{
    if (!c->evaluated || c->failed)
        return AC_VERDICT_ERROR;
    if (c->subset)
        return AC_VERDICT_SUBSET;
    if (c->decided_fail)
        return AC_VERDICT_DECIDED_FAIL;
    return c->decided && !strcmp(c->decided, "pass") ? AC_VERDICT_PASS : AC_VERDICT_FAIL;
}

const char *ac_verdict_name(ac_verdict v)
{
    static const char *const names[] = {"pass", "fail", "fail (decided)", "subset", "error"};
    return v >= AC_VERDICT_PASS && v <= AC_VERDICT_ERROR ? names[v] : "?";
}

double ac_estimated_cost(const ac_plan *p)
{
    double total = 0, cost = 0;
    for (int i = 0; i < p->g->nnodes; i++) {
        double macs = (double)ac_node_macs(p->g, &p->g->nodes[i]);
        total += macs;
        cost += p->nodes[i].mode == AC_MODE_FP32 ? AC_FP32_COST_FACTOR * macs : macs;
    }
    return total > 0 ? cost / total : 1.0;
}

void ac_outputs_int8_name(const char *model_path, char *buf, size_t n)
{
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    char stem[512];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem)
        *dot = '\0';
    snprintf(buf, n, "%s.int8.acq", stem);
}

static void json_scores(ac_json *js, const ac_metric_result *r)
{
    ac_json_object_begin(js);
    ac_json_key(js, "score");
    ac_json_double(js, r->score);
    ac_json_key(js, "samples");
    ac_json_int(js, r->samples);
    if (r->topk) {
        ac_json_key(js, "top1");
        ac_json_double(js, r->top1);
        ac_json_key(js, "top5");
        ac_json_double(js, r->topk_accuracy);
    }
    if (r->cosine != 0) {
        ac_json_key(js, "cosine");
        ac_json_double(js, r->cosine);
        ac_json_key(js, "top1_agreement");
        ac_json_double(js, r->top1_agreement);
    }
    if (r->detections || r->gt_boxes) {
        ac_json_key(js, "map50");
        ac_json_double(js, r->map50);
        ac_json_key(js, "map50_95");
        ac_json_double(js, r->map50_95);
        /* what the boxes were scored against: the data's labels or the fp32 detections */
        ac_json_key(js, "labelled");
        ac_json_bool(js, r->labelled != 0);
        ac_json_key(js, "detections");
        ac_json_int(js, r->detections);
        ac_json_key(js, "gt_boxes");
        ac_json_int(js, r->gt_boxes);
    }
    ac_json_object_end(js);
}

/* shift(s) / multipliers of an int8 layer, as the report shows them. */
static void json_layer_params(ac_json *js, const ac_node_plan *np)
{
    int64_t nr;
    const int32_t *rs = ac_node_plan_shifts(np, &nr);
    if (rs) {
        ac_json_key(js, "shift");
        if (np->per_channel) {
            ac_json_array_begin(js);
            for (int64_t c = 0; c < nr; c++)
                ac_json_int(js, rs[c]);
            ac_json_array_end(js);
        } else {
            ac_json_int(js, nr ? rs[0] : 0);
        }
    } else if (np->kind == AC_Q8_ADD) {
        ac_json_key(js, "multipliers");
        ac_json_array_begin(js);
        for (int i = 0; i < np->u.add.ninputs; i++) {
            ac_json_array_begin(js);
            ac_json_int(js, np->u.add.m[i]);
            ac_json_int(js, np->u.add.r[i]);
            ac_json_array_end(js);
        }
        ac_json_array_end(js);
    } else if (np->kind == AC_Q8_AVGPOOL || np->kind == AC_Q8_GLOBAL_AVGPOOL) {
        ac_json_key(js, "multiplier");
        ac_json_array_begin(js);
        ac_json_int(js, np->kind == AC_Q8_AVGPOOL ? np->u.avgpool.m : np->u.gavg.m);
        ac_json_int(js, np->kind == AC_Q8_AVGPOOL ? np->u.avgpool.e : np->u.gavg.e);
        ac_json_array_end(js);
    }
}

static void json_layers(ac_json *js, const ac_outputs *o)
{
    const ac_graph *g = o->g;
    ac_json_array_begin(js);
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        const ac_node_plan *np = &o->plan->nodes[i];
        int t = n->outputs[0];
        const ac_tensor_plan *tp = t >= 0 ? &o->plan->tensors[t] : NULL;
        ac_json_object_begin(js);
        ac_json_key(js, "name");
        ac_json_string(js, n->name);
        ac_json_key(js, "op");
        ac_json_string(js, ac_op_name(n->op));
        ac_json_key(js, "output");
        ac_json_string(js, t >= 0 ? g->tensors[t].name : NULL);
        ac_json_key(js, "mode");
        ac_json_string(js, np->mode == AC_MODE_INT8 ? "int8" : "fp32");
        if (np->mode == AC_MODE_FP32) {
            ac_json_key(js, "fp32_reason");
            ac_json_string(js, ac_fp32_reason_name(np->why));
            if (np->detail[0]) {
                ac_json_key(js, "fp32_detail");
                ac_json_string(js, np->detail);
            }
        }
        ac_json_key(js, "macs");
        ac_json_int(js, ac_node_macs(g, n));
        ac_json_key(js, "threshold");
        if (tp && tp->has_range)
            ac_json_double(js, tp->th);
        else
            ac_json_null(js);
        if (tp && tp->has_range) {
            ac_json_key(js, "signed");
            ac_json_bool(js, tp->is_signed);
        }
        json_layer_params(js, np);
        double cosine, sqnr;
        if (ac_layer_acc_stats(o->layers && t >= 0 ? &o->layers[t] : NULL, &cosine, &sqnr)) {
            ac_json_key(js, "cosine");
            ac_json_double(js, cosine);
            ac_json_key(js, "sqnr_db");
            ac_json_double(js, sqnr);
        }
        ac_json_object_end(js);
    }
    ac_json_array_end(js);
}

static void json_strings(ac_json *js, const char *const *s, int n)
{
    ac_json_array_begin(js);
    for (int i = 0; i < n; i++)
        ac_json_string(js, s[i]);
    ac_json_array_end(js);
}

static void json_candidates(ac_json *js, const ac_outputs *o)
{
    ac_json_array_begin(js);
    for (int i = 0; i < o->ncands; i++) {
        const ac_outputs_candidate *c = &o->cands[i];
        ac_json_object_begin(js);
        ac_json_key(js, "name");
        ac_json_string(js, c->name);
        ac_json_key(js, "round");
        ac_json_int(js, c->round);
        ac_json_key(js, "options");
        ac_json_object_begin(js);
        ac_json_key(js, "th_method");
        ac_json_string(js, c->th_method);
        ac_json_key(js, "per_channel");
        ac_json_bool(js, c->per_channel);
        ac_json_key(js, "accuracy_opt");
        ac_json_bool(js, c->accuracy_opt);
        ac_json_key(js, "first_conv_fp32");
        ac_json_bool(js, c->first_conv_fp32);
        ac_json_object_end(js);
        ac_json_key(js, "fp32_layers");
        json_strings(js, c->fp32_layers, c->nfp32);
        ac_json_key(js, c->subset ? "subset_score" : "int8_score");
        if (c->evaluated && !c->failed && !c->decided_fail)
            ac_json_double(js, c->score);
        else
            ac_json_null(js);
        if (c->decided) {
            ac_json_key(js, "decided");
            ac_json_string(js, c->decided);
        }
        if (c->result && !c->subset && !c->decided_fail) {
            ac_json_key(js, "details");
            json_scores(js, c->result);
        }
        ac_json_key(js, "cost");
        ac_json_double(js, c->cost);
        ac_json_key(js, "failed");
        ac_json_bool(js, c->failed);
        if (c->error) {
            ac_json_key(js, "error");
            ac_json_string(js, c->error);
        }
        ac_json_key(js, "shards");
        ac_json_int(js, c->shards);
        ac_json_key(js, "elapsed_s");
        ac_json_double(js, c->elapsed_s);
        ac_json_object_end(js);
    }
    ac_json_array_end(js);
}

static int write_report(const ac_outputs *o, const char *path, const char *int8_name, ac_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    ac_json js;
    ac_json_init(&js, f);
    ac_json_object_begin(&js);
    ac_json_key(&js, "model");
    ac_json_string(&js, o->model_path);
    ac_json_key(&js, "task");
    ac_json_string(&js, o->task);
    ac_json_key(&js, "fp32_score");
    ac_json_double(&js, o->fp32_score);
    ac_json_key(&js, "int8_score");
    ac_json_double(&js, o->int8_score);
    ac_json_key(&js, "accept_int8_decay");
    ac_json_double(&js, o->accept_decay);
    ac_json_key(&js, "met_budget");
    ac_json_bool(&js, o->met_budget);
    ac_json_key(&js, "strategy");
    ac_json_object_begin(&js);
    ac_json_key(&js, "th_method");
    ac_json_string(&js, o->th_method);
    ac_json_key(&js, "kl_tune");
    ac_json_bool(&js, o->kl_tune);
    ac_json_key(&js, "per_channel");
    ac_json_bool(&js, o->per_channel);
    ac_json_key(&js, "accuracy_opt");
    ac_json_bool(&js, o->accuracy_opt);
    ac_json_key(&js, "first_conv_fp32");
    ac_json_bool(&js, o->first_conv_fp32);
    ac_json_key(&js, "fp32_layers_requested");
    json_strings(&js, o->fp32_requested, o->n_fp32_requested);
    ac_json_object_end(&js);
    ac_json_key(&js, "fp32_layers");
    ac_json_array_begin(&js);
    for (int i = 0; i < o->g->nnodes; i++)
        if (o->plan->nodes[i].mode == AC_MODE_FP32)
            ac_json_string(&js, o->g->nodes[i].name);
    ac_json_array_end(&js);
    ac_json_key(&js, "estimated_cost");
    ac_json_double(&js, o->estimated_cost);
    ac_json_key(&js, "int8_model");
    ac_json_string(&js, int8_name);
    ac_json_key(&js, "evaluations");
    ac_json_int(&js, o->mode ? o->evaluations : 1);
    ac_json_key(&js, "elapsed_s");
    ac_json_double(&js, o->elapsed_s);
    ac_json_key(&js, "calibration");
    ac_json_object_begin(&js);
    ac_json_key(&js, "source");
    ac_json_string(&js, o->calib_source);
    ac_json_key(&js, "samples");
    ac_json_int(&js, o->calib_samples);
    ac_json_key(&js, "tuned_thresholds");
    ac_json_int(&js, o->tuned_thresholds);
    ac_json_key(&js, "seconds");
    ac_json_double(&js, o->calib_s);
    ac_json_object_end(&js);
    ac_json_key(&js, "test");
    ac_json_object_begin(&js);
    ac_json_key(&js, "source");
    ac_json_string(&js, o->test_source);
    ac_json_key(&js, "samples");
    ac_json_int(&js, o->test_samples);
    ac_json_key(&js, "seconds");
    ac_json_double(&js, o->test_s);
    ac_json_key(&js, "fp32");
    if (o->fp32_res)
        json_scores(&js, o->fp32_res);
    else
        ac_json_null(&js);
    ac_json_key(&js, "int8");
    if (o->int8_res)
        json_scores(&js, o->int8_res);
    else
        ac_json_null(&js);
    ac_json_key(&js, "layer_statistics_samples");
    ac_json_int(&js, o->layers ? o->layer_samples : 0);
    ac_json_object_end(&js);
    if (o->mode) {
        ac_json_key(&js, "search");
        ac_json_object_begin(&js);
        ac_json_key(&js, "mode");
        ac_json_string(&js, o->mode);
        ac_json_key(&js, "timed_out");
        ac_json_bool(&js, o->search_timed_out);
        ac_json_key(&js, "subset_evaluations");
        ac_json_int(&js, o->subset_evaluations);
        ac_json_key(&js, "requeued_tasks");
        ac_json_int(&js, o->requeues);
        ac_json_key(&js, "failed_tasks");
        ac_json_int(&js, o->failed_tasks);
        ac_json_key(&js, "broker_restarts");
        ac_json_int(&js, o->broker_restarts);
        ac_json_key(&js, "early_stopped");
        ac_json_int(&js, o->early_stopped);
        ac_json_key(&js, "cancelled_tasks");
        ac_json_int(&js, o->cancelled_tasks);
        ac_json_object_end(&js);
        ac_json_key(&js, "rounds");
        ac_json_int(&js, o->rounds);
        ac_json_key(&js, "workers");
        ac_json_int(&js, o->workers);
        ac_json_key(&js, "candidates");
        json_candidates(&js, o);
        ac_json_key(&js, "chosen_candidate");
        if (o->chosen >= 0 && o->chosen < o->ncands)
            ac_json_int(&js, o->chosen);
        else
            ac_json_null(&js);
    }
    ac_json_key(&js, "layers");
    json_layers(&js, o);
    ac_json_object_end(&js);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return ac_err_set(err, AC_E_IO, "%s: write failed", path);
    return 0;
}

static int remove_tree(const char *dir)
{
    char cmd[8192];
    /* Only our own temporary/old folders are removed, by exact path. */
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    return system(cmd);
}

int ac_outputs_write(const ac_outputs *o, ac_err *err)
{
    const char *out = o->output_dir;
    if (strchr(out, '\''))
        return ac_err_set(err, AC_E_INVALID, "--output_dir '%s': quote characters are not allowed", out);
    char tmp[4096], old[4096], path[4096 + 640], int8_name[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    snprintf(old, sizeof old, "%s.old.%d", out, (int)getpid());
    ac_outputs_int8_name(o->model_path, int8_name, sizeof int8_name);
    remove_tree(tmp);
    if (mkdir(tmp, 0777) != 0)
        return ac_err_set(err, AC_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    char header[512];
    snprintf(header, sizeof header, "autocalib calibration table for %s\nth_method %s%s", o->model_path,
             o->th_method, o->kl_tune ? " (tuned)" : "");
    snprintf(path, sizeof path, "%s/calibration_table", tmp);
    if (ac_calib_table_write(o->plan->shared, path, header, err))
        goto fail;
    snprintf(path, sizeof path, "%s/qtable", tmp);
    if (ac_plan_write_qtable(o->plan, path, err))
        goto fail;
    snprintf(path, sizeof path, "%s/%s", tmp, int8_name);
    if (ac_int8_model_write(path, o->plan, err))
        goto fail;
    snprintf(path, sizeof path, "%s/report.json", tmp);
    if (write_report(o, path, int8_name, err))
        goto fail;
    snprintf(path, sizeof path, "%s/report.html", tmp);
    if (ac_report_html_write(o, path, int8_name, err))
        goto fail;
    struct stat st;
    bool had_old = stat(out, &st) == 0;
    if (had_old && rename(out, old) != 0) {
        ac_err_set(err, AC_E_IO, "%s: cannot move the previous results aside: %s", out, strerror(errno));
        goto fail;
    }
    if (rename(tmp, out) != 0) {
        ac_err_set(err, AC_E_IO, "%s: cannot rename %s into place: %s", out, tmp, strerror(errno));
        if (had_old)
            rename(old, out);
        goto fail;
    }
    if (had_old)
        remove_tree(old);
    return 0;
fail:
    remove_tree(tmp);
    return -1;
}
