/* ac_q8_dump: test tool for tests/python/test_int8_numpy.py. Builds the int8
 * plan of a model with abs-max thresholds from calibration samples, runs it on
 * one input and writes everything a second implementation needs to recompute
 * each int8 layer from its input codes:
 *
 *   OUT/calib.txt        the shared calibration table
 *   OUT/tensors.txt      "index name kind th signed scale numel" per activation
 *                        tensor (kind: codes | float)
 *   OUT/t<index>.npy     each tensor: codes (|i1 / |u1) or float32, graph shape
 *   OUT/nodes.txt        per node: "index name op mode kind per_channel
 *                        inputs(comma list of tensor indices) outputs attrs..."
 *                        conv attrs: kh kw sh sw pt pl dh dw groups;
 *                        pool attrs: kh kw sh sw pt pl pb pr count_include_pad
 *   OUT/w<node>.npy, OUT/b<node>.npy   float weights [c_out][k] and bias of conv/FC
 *
 * usage: ac_q8_dump MODEL SHAPE CALIB.npy INPUT.npy OUT [--per_channel]
 * SHAPE is the --input_data_shape of one batch; CALIB.npy holds whole batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_npy.h"
#include "ac_ops.h"
#include "ac_plan.h"
#include "ac_qexec.h"
#include "ac_qtest_util.h"

static int write_npy(const char *dir, const char *stem, int idx, const char *descr, int ndim,
                     const int64_t *dims, const void *data, ac_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%d.npy", dir, stem, idx);
    return ac_npy_write(path, descr, ndim, dims, data, err);
}

/* Effective float weights [n][k] and bias of a conv / FC node (as ac_plan.c lowers them). */
static int dump_weights(const ac_graph *g, const ac_node *n, const char *dir, int idx, ac_err *err)
{
    const ac_tensor *wt = &g->tensors[n->inputs[1]];
    const float *w = wt->data;
    const float *b = n->ninputs > 2 && n->inputs[2] >= 0 ? g->tensors[n->inputs[2]].data : NULL;
    int64_t nout, k;
    float *wm = NULL;
    if (n->op == AC_OP_CONV) {
        nout = wt->dims[0];
        k = ac_tensor_numel(wt) / nout;
    } else {
        bool trans_b = false;
        if (n->op == AC_OP_GEMM) {
            const ac_gemm_shape *gs = n->params;
            trans_b = gs->trans_b;
            nout = gs->n;
            k = gs->k;
        } else {
            k = wt->dims[0];
            nout = wt->dims[1];
        }
        wm = malloc(sizeof(float) * (size_t)(nout * k));
        for (int64_t o = 0; o < nout; o++)
            for (int64_t i = 0; i < k; i++)
                wm[o * k + i] = trans_b ? w[o * k + i] : w[i * nout + o];
        w = wm;
    }
    int64_t wd[2] = {nout, k};
    int rc = write_npy(dir, "w", idx, "<f4", 2, wd, w, err);
    if (!rc && b) {
        float *bb = malloc(sizeof(float) * (size_t)nout);
        int64_t bn = ac_tensor_numel(&g->tensors[n->inputs[2]]);
        for (int64_t o = 0; o < nout; o++)
            bb[o] = ((const float *)b)[bn == 1 ? 0 : o];
        rc = write_npy(dir, "b", idx, "<f4", 1, &nout, bb, err);
        free(bb);
    }
    free(wm);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL SHAPE CALIB.npy INPUT.npy OUT [--per_channel]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[5];
    ac_quant_options o = {.per_channel = argc > 6 && strcmp(argv[6], "--per_channel") == 0};
    ac_err err = {0};
    ac_npy cal = {0}, in = {0};
    ac_graph *g = NULL;
    ac_calib_table *t = NULL;
    ac_plan *p = NULL;
    ac_qexec *e = NULL;
    int rc = 1;
    g = qt_load(argv[1], argv[2], &err);
    if (!g || ac_npy_read(argv[3], &cal, &err) || ac_npy_read(argv[4], &in, &err))
        goto done;
    int64_t in_numel = ac_tensor_numel(&g->tensors[g->inputs[0]]);
    if (strcmp(cal.descr, "<f4") || strcmp(in.descr, "<f4") ||
        cal.nbytes % (sizeof(float) * (size_t)in_numel) ||
        in.nbytes != sizeof(float) * (size_t)in_numel) {
        ac_err_set(&err, AC_E_INVALID, "calibration / input arrays must be float32 batches of %lld",
                   (long long)in_numel);
        goto done;
    }
    t = qt_absmax_table(g, cal.data, (int)(cal.nbytes / (sizeof(float) * (size_t)in_numel)), &err);
    if (!t || !(p = ac_plan_build(g, t, &o, &err)) || !(e = ac_qexec_new(p, &err)))
        goto done;
    const void *inputs[1] = {in.data};
    if (ac_qexec_run(e, inputs, &err))
        goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/calib.txt", dir);
    if (ac_calib_table_write(p->shared, path, "abs-max, shared", &err))
        goto done;
    snprintf(path, sizeof path, "%s/tensors.txt", dir);
    FILE *ft = fopen(path, "w");
    snprintf(path, sizeof path, "%s/nodes.txt", dir);
    FILE *fn = fopen(path, "w");
    if (!ft || !fn) {
        if (ft)
            fclose(ft);
        if (fn)
            fclose(fn);
        ac_err_set(&err, AC_E_IO, "%s: cannot write", dir);
        goto done;
    }
    for (int ti = 0; ti < g->ntensors && !err.code; ti++) {
        const ac_tensor *ts = &g->tensors[ti];
        const ac_tensor_plan *tp = &p->tensors[ti];
        if (!tp->activation)
            continue;
        ac_dtype dt;
        const void *data = ac_qexec_tensor_dump(e, ti, &dt);
        if (!data)
            continue;
        fprintf(ft, "%d %s %s %.17g %d %.17g %lld\n", ti, ts->name,
                tp->has_codes ? "codes" : "float", tp->has_range ? tp->th : 0.0,
                tp->is_signed ? 1 : 0, tp->has_range ? tp->scale : 0.0,
                (long long)ac_tensor_numel(ts));
        const char *descr = dt == AC_DT_I8 ? "|i1" : dt == AC_DT_U8 ? "|u1" : "<f4";
        write_npy(dir, "t", ti, descr, ts->ndim, ts->dims, data, &err);
    }
    for (int i = 0; i < g->nnodes && !err.code; i++) {
        const ac_node *n = &g->nodes[i];
        const ac_node_plan *np = &p->nodes[i];
        fprintf(fn, "%d %s %s %s %s %d ", i, n->name, n->op_type,
                np->mode == AC_MODE_INT8 ? "int8" : "fp32", ac_q8_kind_name(np->kind),
                np->per_channel ? 1 : 0);
        for (int j = 0; j < n->ninputs; j++)
            fprintf(fn, "%s%d", j ? "," : "", n->inputs[j]);
        fprintf(fn, " ");
        for (int j = 0; j < n->noutputs; j++)
            fprintf(fn, "%s%d", j ? "," : "", n->outputs[j]);
        if (np->kind == AC_Q8_CONV) {
            const ac_conv2d_shape *s = &np->u.conv.s;
            fprintf(fn, " %d %d %d %d %d %d %d %d %d", s->kh, s->kw, s->stride_h, s->stride_w,
                    s->pad_top, s->pad_left, s->dil_h, s->dil_w, s->groups);
        }
        if (np->kind == AC_Q8_MAXPOOL || np->kind == AC_Q8_AVGPOOL) {
            const ac_pool_shape *s = np->kind == AC_Q8_MAXPOOL ? &np->u.maxpool : &np->u.avgpool.s;
            fprintf(fn, " %lld %lld %lld %lld %lld %lld %lld %lld %d", (long long)s->kernel[1],
                    (long long)s->kernel[2], (long long)s->stride[1], (long long)s->stride[2],
                    (long long)s->pad_begin[1], (long long)s->pad_begin[2],
                    (long long)s->pad_end[1], (long long)s->pad_end[2],
                    s->count_include_pad ? 1 : 0);
        }
        fprintf(fn, "\n");
        if (np->kind == AC_Q8_CONV || np->kind == AC_Q8_FC)
            dump_weights(g, n, dir, i, &err);
    }
    fclose(ft);
    fclose(fn);
    rc = err.code ? 1 : 0;
done:
    if (rc)
        fprintf(stderr, "ac_q8_dump: %s\n", err.msg);
    ac_qexec_destroy(&e);
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
    ac_npy_free(&cal);
    ac_npy_free(&in);
    return rc;
}
