#include "ac_qtest_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_exec.h"
#include "ac_idx.h"
#include "ac_model.h"
#include "ac_qexec.h"

ac_graph *qt_load(const char *path, const char *input_shape, ac_err *err)
{
    ac_model_options mo = {0};
    mo.input_shapes = input_shape;
    return ac_model_load(path, &mo, NULL, err);
}

ac_calib_table *qt_absmax_table(const ac_graph *g, const float *x, int nbatch, ac_err *err)
{
    ac_exec *e = ac_exec_new(g, err);
    if (!e)
        return NULL;
    int nt = g->ntensors;
    double *mn = malloc(sizeof(double) * (size_t)nt), *mx = malloc(sizeof(double) * (size_t)nt);
    ac_calib_table *tab = ac_calib_table_new();
    if (!mn || !mx || !tab) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int t = 0; t < nt; t++) {
        mn[t] = INFINITY;
        mx[t] = -INFINITY;
    }
    int64_t in_numel = ac_tensor_numel(&g->tensors[g->inputs[0]]);
    for (int b = 0; b < nbatch; b++) {
        const void *in[1] = {x + (int64_t)b * in_numel};
        if (ac_exec_run(e, in, err))
            goto fail;
        for (int t = 0; t < nt; t++) {
            const ac_tensor *ts = &g->tensors[t];
            if (ts->dtype != AC_DT_F32 || ac_tensor_is_const(ts))
                continue;
            const float *v = ac_exec_tensor(e, t);
            if (!v)
                continue;
            int64_t n = ac_tensor_numel(ts);
            for (int64_t i = 0; i < n; i++) {
                if (!isfinite(v[i]))
                    continue;
                mn[t] = v[i] < mn[t] ? v[i] : mn[t];
                mx[t] = v[i] > mx[t] ? v[i] : mx[t];
            }
        }
    }
    for (int t = 0; t < nt; t++) {
        if (!(mn[t] <= mx[t]))
            continue;
        double am = fabs(mn[t]) > fabs(mx[t]) ? fabs(mn[t]) : fabs(mx[t]);
        if (ac_calib_table_set(tab, g->tensors[t].name, am > 1e-5 ? am : 1e-5, mn[t], mx[t], err))
            goto fail;
    }
    free(mn);
    free(mx);
    ac_exec_destroy(&e);
    return tab;
fail:
    free(mn);
    free(mx);
    ac_calib_table_destroy(&tab);
    ac_exec_destroy(&e);
    return NULL;
}

int64_t qt_top1(const ac_graph *g, const ac_plan *plan, const float *x, const int32_t *labels,
                int nbatch, int label_offset, int nthreads, ac_err *err)
{
    ac_exec *e = NULL;
    ac_qexec *q = NULL;
    if (plan)
        q = ac_qexec_new(plan, err);
    else
        e = ac_exec_new(g, err);
    if (!q && !e)
        return -1;
    if (q)
        ac_qexec_set_threads(q, nthreads);
    else
        ac_exec_set_threads(e, nthreads);
    const ac_tensor *in_t = &g->tensors[g->inputs[0]];
    const ac_tensor *out_t = &g->tensors[g->outputs[0]];
    int64_t in_numel = ac_tensor_numel(in_t);
    int64_t batch = in_t->dims[0];
    int64_t classes = ac_tensor_numel(out_t) / batch;
    int64_t correct = 0;
    for (int b = 0; b < nbatch; b++) {
        const void *in[1] = {x + (int64_t)b * in_numel};
        int rc = q ? ac_qexec_run(q, in, err) : ac_exec_run(e, in, err);
        if (rc) {
            correct = -1;
            break;
        }
        const float *y = q ? ac_qexec_tensor_float(q, g->outputs[0])
                           : ac_exec_tensor(e, g->outputs[0]);
        for (int64_t i = 0; i < batch; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (y[i * classes + c] > y[i * classes + best])
                    best = c;
            correct += best - label_offset == labels[b * batch + i];
        }
    }
    ac_qexec_destroy(&q);
    ac_exec_destroy(&e);
    return correct;
}

float *qt_fmnist(const char *images, const char *labels, int64_t first, int64_t n,
                 int32_t **labels_out, ac_err *err)
{
    ac_idx im = {0}, lb = {0};
    float *x = NULL;
    if (ac_idx_load(images, &im, err) || ac_idx_load(labels, &lb, err))
        goto done;
    if (im.ndim != 3 || lb.ndim != 1 || first + n > im.dims[0] || first + n > lb.dims[0]) {
        ac_err_set(err, AC_E_INVALID, "%s: not enough images", images);
        goto done;
    }
    int64_t px = im.dims[1] * im.dims[2];
    x = malloc(sizeof(float) * (size_t)(n * px));
    *labels_out = malloc(sizeof(int32_t) * (size_t)n);
    if (!x || !*labels_out) {
        free(x);
        x = NULL;
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n * px; i++) {
        float v = (float)im.data[first * px + i] / 255.0f;
        x[i] = (v - 0.2860f) / 0.3530f;
    }
    for (int64_t i = 0; i < n; i++)
        (*labels_out)[i] = lb.data[first + i];
done:
    ac_idx_free(&im);
    ac_idx_free(&lb);
    return x;
}

const char *qt_find_fmnist_model(const char *repo, const char *zoo, const char *name, char *buf,
                                 size_t cap)
{
    snprintf(buf, cap, "%s/models/%s", repo, name);
    if (access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, cap, "%s/fmnist/%s", zoo, name);
    if (access(buf, R_OK) == 0)
        return buf;
    return NULL;
}
