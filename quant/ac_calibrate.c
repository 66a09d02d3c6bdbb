#include "ac_calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int tensor;                 /* graph tensor index */
    ac_calib_stats *st;
    /* tuning pass */
    int ncand;
    double cand[AC_TUNE_STEPS + 1];
    double sq_err[AC_TUNE_STEPS + 1];
    bool is_signed;
    ac_threshold base;
} slot;

struct ac_calib_collector {
    const ac_graph *g;
    ac_calib_pass pass;
    int nslots;
    slot *slots;
    int *slot_of;               /* tensor index -> slot index or -1 */
};

static bool is_float_activation(const ac_tensor *t)
{
    return !t->data && t->dtype == AC_DT_F32 && t->ndim >= 0;
}

ac_calib_collector *ac_calib_collector_new(const ac_graph *g, int nbins, ac_err *err)
{
    ac_calib_collector *c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    c->g = g;
    c->pass = AC_CALIB_PASS_RANGE;
    c->slots = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof(slot));
    c->slot_of = malloc(sizeof(int) * (size_t)(g->ntensors ? g->ntensors : 1));
    if (!c->slots || !c->slot_of)
        goto nomem;
    for (int t = 0; t < g->ntensors; t++) {
        c->slot_of[t] = -1;
        /* Only tensors some node reads or writes (or graph I/O) matter. */
        const ac_tensor *ts = &g->tensors[t];
        if (!is_float_activation(ts) || (ts->producer < 0 && !ts->is_input))
            continue;
        slot *s = &c->slots[c->nslots];
        s->tensor = t;
        s->st = ac_calib_stats_new(nbins);
        if (!s->st)
            goto nomem;
        c->slot_of[t] = c->nslots++;
    }
    return c;
nomem:
    ac_err_set(err, AC_E_NOMEM, "out of memory for calibration statistics");
    ac_calib_collector_destroy(&c);
    return NULL;
}

void ac_calib_collector_destroy(ac_calib_collector **p)
{
    if (!p || !*p)
        return;
    ac_calib_collector *c = *p;
    if (c->slots)
        for (int i = 0; i < c->nslots; i++)
            ac_calib_stats_destroy(&c->slots[i].st);
    free(c->slots);
    free(c->slot_of);
    free(c);
    *p = NULL;
}

ac_calib_pass ac_calib_collector_pass(const ac_calib_collector *c)
{
    return c->pass;
}

const ac_calib_stats *ac_calib_collector_stats(const ac_calib_collector *c, int tensor)
{
    if (tensor < 0 || tensor >= c->g->ntensors || c->slot_of[tensor] < 0)
        return NULL;
    return c->slots[c->slot_of[tensor]].st;
}

/* Squared error of x against its fake-quantized value at threshold th. The
 * quantization follows the spec: q = clamp(round_half_away(x / s)). */
static double fake_quant_sq_err(const float *x, size_t n, double th, bool is_signed)
{
    double s = is_signed ? th / 127.0 : th / 255.0;
    double lo = is_signed ? -128.0 : 0.0, hi = is_signed ? 127.0 : 255.0;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        if (!isfinite(v))
            continue;
        double q = round(v / s); /* round() is half away from zero */
        q = q < lo ? lo : (q > hi ? hi : q);
        double d = v - q * s;
        acc += d * d;
    }
    return acc;
}

static void observe_slot(ac_calib_collector *c, slot *s, const float *x, size_t n)
{
    switch (c->pass) {
    case AC_CALIB_PASS_RANGE:
        ac_calib_stats_observe(s->st, x, n);
        break;
    case AC_CALIB_PASS_HIST:
        ac_calib_stats_observe_hist(s->st, x, n);
        break;
    case AC_CALIB_PASS_TUNE:
        for (int k = 0; k < s->ncand; k++)
            s->sq_err[k] += fake_quant_sq_err(x, n, s->cand[k], s->is_signed);
        break;
    }
}

int ac_calib_collector_observe(ac_calib_collector *c, const ac_exec *e, ac_err *err)
{
    int missing = -1;
    /* Each tensor's statistics are touched by one thread only, in data order. */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < c->nslots; i++) {
        slot *s = &c->slots[i];
        const float *x = ac_exec_tensor(e, s->tensor);
        if (!x) {
#pragma omp critical
            missing = s->tensor;
            continue;
        }
        observe_slot(c, s, x, (size_t)ac_tensor_numel(&c->g->tensors[s->tensor]));
    }
    if (missing >= 0)
        return ac_err_set(err, AC_E_INTERNAL, "calibration: tensor '%s' has no buffer after the run",
                          c->g->tensors[missing].name);
    return 0;
}

ac_calib_collector *ac_calib_collector_new_shard(const ac_calib_collector *master, ac_err *err)
{
    int nbins = master->nslots ? ac_calib_stats_nbins(master->slots[0].st) : 0;
    ac_calib_collector *c = ac_calib_collector_new(master->g, nbins, err);
    if (!c)
        return NULL;
    c->pass = master->pass;
    for (int i = 0; i < c->nslots; i++) {
        slot *s = &c->slots[i];
        const slot *m = &master->slots[i];
        if (master->pass >= AC_CALIB_PASS_HIST && ac_calib_stats_has_hist(m->st) &&
            ac_calib_stats_set_hist_range(s->st, ac_calib_stats_hist_absmax(m->st), err)) {
            ac_err_prefix(err, "tensor '%s': ", c->g->tensors[s->tensor].name);
            ac_calib_collector_destroy(&c);
            return NULL;
        }
        if (master->pass == AC_CALIB_PASS_TUNE) {
            s->ncand = m->ncand;
            memcpy(s->cand, m->cand, sizeof s->cand);
            s->is_signed = m->is_signed;
            s->base = m->base;
        }
    }
    return c;
}

int ac_calib_collector_merge(ac_calib_collector *dst, const ac_calib_collector *src, ac_err *err)
{
    if (dst->g != src->g || dst->nslots != src->nslots || dst->pass != src->pass)
        return ac_err_set(err, AC_E_INVALID, "calibration: cannot merge collectors of different graphs or passes");
    for (int i = 0; i < dst->nslots; i++) {
        slot *d = &dst->slots[i];
        const slot *s = &src->slots[i];
        if (dst->pass == AC_CALIB_PASS_TUNE) {
            for (int k = 0; k < d->ncand; k++)
                d->sq_err[k] += s->sq_err[k];
        } else if (ac_calib_stats_merge(d->st, s->st, err)) {
            return ac_err_prefix(err, "tensor '%s': ", dst->g->tensors[d->tensor].name);
        }
    }
    return 0;
}

int ac_calib_collector_begin_hist(ac_calib_collector *c, ac_err *err)
{
    if (c->pass != AC_CALIB_PASS_RANGE)
        return ac_err_set(err, AC_E_INTERNAL, "calibration: histogram pass must follow the range pass");
    for (int i = 0; i < c->nslots; i++) {
        slot *s = &c->slots[i];
        if (ac_calib_stats_set_hist_range(s->st, ac_calib_stats_absmax(s->st), err))
            return ac_err_prefix(err, "tensor '%s': ", c->g->tensors[s->tensor].name);
    }
    c->pass = AC_CALIB_PASS_HIST;
    return 0;
}

ac_calib_table *ac_calib_collector_table(const ac_calib_collector *c, ac_th_method m, ac_err *err)
{
    if (ac_th_method_needs_hist(m) && c->pass < AC_CALIB_PASS_HIST) {
        ac_err_set(err, AC_E_INTERNAL, "calibration: %s needs the histogram pass", ac_th_method_name(m));
        return NULL;
    }
    ac_calib_table *tab = ac_calib_table_new();
    if (!tab) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for the calibration table");
        return NULL;
    }
    for (int i = 0; i < c->nslots; i++) {
        const slot *s = &c->slots[i];
        const char *name = c->g->tensors[s->tensor].name;
        ac_threshold th;
        if (ac_threshold_compute(s->st, m, &th, err) ||
            ac_calib_table_set(tab, name, th.th, th.min, th.max, err)) {
            ac_err_prefix(err, "tensor '%s': ", name);
            ac_calib_table_destroy(&tab);
            return NULL;
        }
    }
    return tab;
}

int ac_calib_collector_begin_tune(ac_calib_collector *c, ac_th_method m, ac_err *err)
{
    if (ac_th_method_needs_hist(m) && c->pass != AC_CALIB_PASS_HIST)
        return ac_err_set(err, AC_E_INTERNAL, "calibration: tuning %s needs the histogram pass first",
                          ac_th_method_name(m));
    for (int i = 0; i < c->nslots; i++) {
        slot *s = &c->slots[i];
        if (ac_threshold_compute(s->st, m, &s->base, err))
            return ac_err_prefix(err, "tensor '%s': ", c->g->tensors[s->tensor].name);
        s->is_signed = s->base.is_signed;
        s->ncand = ac_threshold_tune_candidates(s->base.th, ac_calib_stats_absmax(s->st), AC_TUNE_STEPS,
                                                s->cand);
        if (s->ncand < 1) {
            s->ncand = 1;
            s->cand[0] = s->base.th;
        }
        memset(s->sq_err, 0, sizeof s->sq_err);
    }
    c->pass = AC_CALIB_PASS_TUNE;
    return 0;
}

ac_calib_table *ac_calib_collector_tuned_table(const ac_calib_collector *c, int *moved, ac_err *err)
{
    if (c->pass != AC_CALIB_PASS_TUNE) {
        ac_err_set(err, AC_E_INTERNAL, "calibration: no tuning pass was run");
        return NULL;
    }
    ac_calib_table *tab = ac_calib_table_new();
    if (!tab) {
        ac_err_set(err, AC_E_NOMEM, "out of memory for the calibration table");
        return NULL;
    }
    int up = 0;
    for (int i = 0; i < c->nslots; i++) {
        const slot *s = &c->slots[i];
        int best = 0;
        for (int k = 1; k < s->ncand; k++)
            if (s->sq_err[k] < s->sq_err[best])
                best = k;
        up += best > 0;
        const char *name = c->g->tensors[s->tensor].name;
        if (ac_calib_table_set(tab, name, s->cand[best], s->base.min, s->base.max, err)) {
            ac_err_prefix(err, "tensor '%s': ", name);
            ac_calib_table_destroy(&tab);
            return NULL;
        }
    }
    if (moved)
        *moved = up;
    return tab;
}
