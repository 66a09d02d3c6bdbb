#include "ac_calibrate.h"

#include "ac_mpack.h"
#include "ac_ref_f32.h"
#include "ac_round.h"

#include <math.h>
#include <msgpack.h>
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
 * quantization follows the spec: q = clamp(round_half_away(x / s)). The
 * oracle of ac_calib_fake_quant_sq_err. */
double ac_calib_fake_quant_sq_err__ref(const float *x, size_t n, double th, bool is_signed)
{
    double s = ac_scale_from_th(th, is_signed);
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Eight candidates per vector, each lane one candidate's sum in element
 * order: the oracle's operations (a division, round half away as trunc plus
 * the exact fraction, the clamp, a multiply and a subtract, a multiply and an
 * add; nothing fused) on the same values, so the same bits. */
__attribute__((target("avx512f"))) static void sq_err_avx512(const float *x, size_t n, const double *s, int ncand,
                                                           double lo, double hi, double *acc)
{
    enum { NV = (AC_TUNE_STEPS + 1 + 7) / 8 };
    const int nv = (ncand + 7) / 8;
    __m512d S[NV], A[NV];
    __mmask8 M[NV];
    for (int q = 0; q < nv; q++) {
        int lanes = ncand - 8 * q < 8 ? ncand - 8 * q : 8;
        M[q] = (__mmask8)((1u << lanes) - 1);
        S[q] = _mm512_mask_loadu_pd(_mm512_set1_pd(1.0), M[q], s + 8 * q);
        A[q] = _mm512_setzero_pd();
    }
    const __m512d LO = _mm512_set1_pd(lo), HI = _mm512_set1_pd(hi), ONE = _mm512_set1_pd(1.0);
    const __m512d HALF = _mm512_set1_pd(0.5), MHALF = _mm512_set1_pd(-0.5);
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        if (!isfinite(v))
            continue;
        const __m512d V = _mm512_set1_pd(v);
        for (int q = 0; q < nv; q++) {
            __m512d y = _mm512_div_pd(V, S[q]);
            __m512d t = _mm512_roundscale_pd(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m512d f = _mm512_sub_pd(y, t); /* exact; NaN for y = +-inf, when t stays inf */
            t = _mm512_mask_add_pd(t, _mm512_cmp_pd_mask(f, HALF, _CMP_GE_OQ), t, ONE);
            t = _mm512_mask_sub_pd(t, _mm512_cmp_pd_mask(f, MHALF, _CMP_LE_OQ), t, ONE);
            t = _mm512_min_pd(_mm512_max_pd(t, LO), HI); /* t is never NaN: s > 0, v finite */
            __m512d d = _mm512_sub_pd(V, _mm512_mul_pd(t, S[q]));
            A[q] = _mm512_add_pd(A[q], _mm512_mul_pd(d, d));
        }
    }
    for (int q = 0; q < nv; q++) {
        double out[8];
        _mm512_storeu_pd(out, A[q]);
        for (int l = 0; l < 8 && 8 * q + l < ncand; l++)
            acc[8 * q + l] = out[l];
    }
}

#endif

void ac_calib_fake_quant_sq_err(const float *x, size_t n, const double *th, int ncand, bool is_signed, double *out)
{
    double s[AC_TUNE_STEPS + 1];
    bool positive = ncand <= AC_TUNE_STEPS + 1;
    for (int k = 0; k < ncand && positive; k++) {
        s[k] = ac_scale_from_th(th[k], is_signed);
        positive = s[k] > 0 && isfinite(s[k]);
    }
#if defined(__x86_64__) && defined(__GNUC__)
    /* a zero, NaN or infinite scale (a tensor that is all zeros) takes the oracle's path */
    if (positive && __builtin_cpu_supports("avx512f")) {
        sq_err_avx512(x, n, s, ncand, is_signed ? -128.0 : 0.0, is_signed ? 127.0 : 255.0, out);
        return;
    }
#endif
    for (int k = 0; k < ncand; k++)
        out[k] = ac_calib_fake_quant_sq_err__ref(x, n, th[k], is_signed);
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
    case AC_CALIB_PASS_TUNE: {
        double err[AC_TUNE_STEPS + 1];
        ac_calib_fake_quant_sq_err(x, n, s->cand, s->ncand, s->is_signed, err);
        for (int k = 0; k < s->ncand; k++)
            s->sq_err[k] += err[k];
        break;
    }
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

/* ---- observing node by node ------------------------------------------------------- */

struct ac_calib_observer {
    ac_calib_collector *c;
    int nth;                       /* threads it was made for */
    ac_calib_collector **helpers;  /* threads 1..nth-1: their shares (range, histogram) */
    int *first, *count;            /* per node + 1 (node -1 = the inputs): its slots in order[] */
    int *order;                    /* slot indices grouped by producer */
    int missing;                   /* a tensor without a buffer, or -1 */
    int nreal, batch;              /* real samples of the runs' batches (0: all) */
};

void ac_calib_observer_set_real(ac_calib_observer *o, int nreal, int batch)
{
    o->nreal = nreal;
    o->batch = batch;
}

/* Elements of tensor t that belong to real samples. */
static int64_t observed_elems(const ac_calib_observer *o, const ac_tensor *t)
{
    const int64_t n = ac_tensor_numel(t);
    if (o->nreal <= 0 || o->nreal >= o->batch || t->ndim < 1 || t->dims[0] != o->batch)
        return n;
    return n / o->batch * o->nreal;
}

ac_calib_observer *ac_calib_observer_new(ac_calib_collector *c, int nth, ac_err *err)
{
    ac_calib_observer *o = calloc(1, sizeof *o);
    const int nn = c->g->nnodes + 1;
    if (nth < 1)
        nth = 1;
    if (o) {
        o->c = c;
        o->nth = nth;
        o->missing = -1;
        o->helpers = calloc((size_t)nth, sizeof *o->helpers);
        o->first = calloc((size_t)nn, sizeof(int));
        o->count = calloc((size_t)nn, sizeof(int));
        o->order = malloc(sizeof(int) * (size_t)(c->nslots ? c->nslots : 1));
    }
    if (!o || !o->helpers || !o->first || !o->count || !o->order) {
        ac_calib_observer_destroy(&o);
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    /* slots by producer node (graph inputs first), each group in slot order */
    for (int i = 0; i < c->nslots; i++)
        o->count[c->g->tensors[c->slots[i].tensor].producer + 1]++;
    for (int n = 1; n < nn; n++)
        o->first[n] = o->first[n - 1] + o->count[n - 1];
    int *fill = calloc((size_t)nn, sizeof(int));
    if (!fill) {
        ac_calib_observer_destroy(&o);
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < c->nslots; i++) {
        int n = c->g->tensors[c->slots[i].tensor].producer + 1;
        o->order[o->first[n] + fill[n]++] = i;
    }
    free(fill);
    if (c->pass != AC_CALIB_PASS_TUNE)
        for (int t = 1; t < nth; t++)
            if (!(o->helpers[t] = ac_calib_collector_new_shard(c, err))) {
                ac_calib_observer_destroy(&o);
                return NULL;
            }
    return o;
}

int ac_calib_observer_node(void *observer, const ac_exec *e, int node, int ith, int nth)
{
    ac_calib_observer *o = observer;
    ac_calib_collector *c = o->c;
    const int g = node + 1;
    for (int k = 0; k < o->count[g]; k++) {
        const int i = o->order[o->first[g] + k];
        const slot *s = &c->slots[i];
        const float *x = ac_exec_tensor(e, s->tensor);
        if (!x) {
            if (ith == 0)
                o->missing = s->tensor;
            continue;
        }
        const int64_t n = observed_elems(o, &c->g->tensors[s->tensor]);
        if (c->pass == AC_CALIB_PASS_TUNE) {
            /* whole tensors: the per-tensor double sums keep their order */
            if (i % nth == ith)
                observe_slot(c, &c->slots[i], x, (size_t)n);
        } else if (nth > o->nth) {
            if (ith == 0) /* more threads than planned: thread 0 alone, whole */
                observe_slot(c, &c->slots[i], x, (size_t)n);
        } else {
            int64_t lo, hi;
            ac_ref_range(n, ith, nth, &lo, &hi);
            ac_calib_collector *mine = ith == 0 ? c : o->helpers[ith];
            if (hi > lo)
                observe_slot(mine, &mine->slots[i], x + lo, (size_t)(hi - lo));
        }
    }
    return 0;
}

int ac_calib_observer_finish(ac_calib_observer *o, ac_err *err)
{
    if (o->missing >= 0)
        return ac_err_set(err, AC_E_INTERNAL, "calibration: tensor '%s' has no buffer after its node ran",
                          o->c->g->tensors[o->missing].name);
    /* Range and histogram statistics merge exactly: the thread split changes no bit. */
    for (int t = 1; t < o->nth; t++) {
        if (!o->helpers[t])
            continue;
        if (ac_calib_collector_merge(o->c, o->helpers[t], err))
            return -1;
        ac_calib_collector *fresh = ac_calib_collector_new_shard(o->c, err);
        if (!fresh)
            return -1;
        ac_calib_collector_destroy(&o->helpers[t]);
        o->helpers[t] = fresh;
    }
    return 0;
}

void ac_calib_observer_destroy(ac_calib_observer **p)
{
    if (!p || !*p)
        return;
    ac_calib_observer *o = *p;
    for (int t = 0; o->helpers && t < o->nth; t++)
        ac_calib_collector_destroy(&o->helpers[t]);
    free(o->helpers);
    free(o->first);
    free(o->count);
    free(o->order);
    free(o);
    *p = NULL;
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

/* ---- wire forms ------------------------------------------------------------------ */

#define TEMPLATE_MAGIC "ac-calib-template"
#define PARTIAL_MAGIC "ac-calib-partial"
#define WIRE_VERSION 1

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int finish_buffer(msgpack_sbuffer *sb, int rc, uint8_t **buf, size_t *len, ac_err *err)
{
    if (rc) {
        msgpack_sbuffer_destroy(sb);
        return ac_err_set(err, AC_E_NOMEM, "calibration: out of memory encoding");
    }
    *buf = (uint8_t *)sb->data;
    *len = sb->size;
    return 0; /* the caller frees *buf (the sbuffer's malloc'ed data) */
}

static int nbins_of(const ac_calib_collector *c)
{
    return c->nslots ? ac_calib_stats_nbins(c->slots[0].st) : AC_CALIB_DEFAULT_BINS;
}

/* [magic, version, pass, nbins, [[name, hist_absmax, [cand...], is_signed, base.th, base.min, base.max] ...]] */
int ac_calib_collector_encode_template(const ac_calib_collector *m, uint8_t **buf, size_t *len, ac_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, 5) || pack_str(&pk, TEMPLATE_MAGIC) ||
             msgpack_pack_uint64(&pk, WIRE_VERSION) || msgpack_pack_uint64(&pk, (uint64_t)m->pass) ||
             msgpack_pack_uint64(&pk, (uint64_t)nbins_of(m)) || msgpack_pack_array(&pk, (size_t)m->nslots);
    for (int i = 0; i < m->nslots && !rc; i++) {
        const slot *s = &m->slots[i];
        rc = msgpack_pack_array(&pk, 7) || pack_str(&pk, m->g->tensors[s->tensor].name) ||
             msgpack_pack_float(&pk, ac_calib_stats_has_hist(s->st) ? ac_calib_stats_hist_absmax(s->st) : -1.0f) ||
             msgpack_pack_array(&pk, (size_t)(m->pass == AC_CALIB_PASS_TUNE ? s->ncand : 0));
        for (int k = 0; m->pass == AC_CALIB_PASS_TUNE && k < s->ncand && !rc; k++)
            rc = msgpack_pack_double(&pk, s->cand[k]);
        rc = rc || (s->is_signed ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
             msgpack_pack_double(&pk, s->base.th) || msgpack_pack_float(&pk, s->base.min) ||
             msgpack_pack_float(&pk, s->base.max);
    }
    return finish_buffer(&sb, rc, buf, len, err);
}

static int find_slot(const ac_calib_collector *c, const char *name, size_t n)
{
    for (int i = 0; i < c->nslots; i++) {
        const char *t = c->g->tensors[c->slots[i].tensor].name;
        if (strlen(t) == n && memcmp(t, name, n) == 0)
            return i;
    }
    return -1;
}

static int read_header(ac_mpack_reader *r, const char *magic, uint32_t nfields, uint64_t *pass, uint64_t *nbins,
                       ac_err *err)
{
    uint32_t n;
    uint64_t version;
    if (!ac_mpack_read_array(r, &n) || n != nfields)
        return ac_err_set(err, AC_E_INVALID, "%s: not an array of %u fields", magic, nfields);
    if (!ac_mpack_read_str_eq(r, magic))
        return ac_err_set(err, AC_E_INVALID, "%s: wrong magic", magic);
    if (!ac_mpack_read_uint(r, &version) || version != WIRE_VERSION)
        return ac_err_set(err, AC_E_INVALID, "%s: unsupported version", magic);
    if (!ac_mpack_read_uint(r, pass) || *pass < AC_CALIB_PASS_RANGE || *pass > AC_CALIB_PASS_TUNE)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'pass' must be 1, 2 or 3", magic);
    if (!ac_mpack_read_uint(r, nbins) || *nbins < 2 || *nbins > AC_CALIB_MAX_BINS)
        return ac_err_set(err, AC_E_INVALID, "%s: field 'nbins' out of range", magic);
    return 0;
}

ac_calib_collector *ac_calib_collector_from_template(const ac_graph *g, const uint8_t *buf, size_t len, ac_err *err)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint64_t pass, nbins;
    uint32_t n;
    if (read_header(&r, TEMPLATE_MAGIC, 5, &pass, &nbins, err))
        return NULL;
    ac_calib_collector *c = ac_calib_collector_new(g, (int)nbins, err);
    if (!c)
        return NULL;
    c->pass = (ac_calib_pass)pass;
    if (!ac_mpack_read_array(&r, &n) || n != (uint32_t)c->nslots) {
        ac_err_set(err, AC_E_INVALID, "%s: tensor list does not match the graph's %d tensors", TEMPLATE_MAGIC,
                   c->nslots);
        goto bad;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nf, ncand;
        const char *name;
        size_t nlen;
        float absmax, bmin, bmax;
        if (!ac_mpack_read_array(&r, &nf) || nf != 7 || !ac_mpack_read_str(&r, &name, &nlen)) {
            ac_err_set(err, AC_E_INVALID, "%s: tensor entry %u is malformed", TEMPLATE_MAGIC, i);
            goto bad;
        }
        int k = find_slot(c, name, nlen);
        if (k < 0) {
            ac_err_set(err, AC_E_INVALID, "%s: tensor '%.*s' is not in the graph", TEMPLATE_MAGIC, (int)(nlen > 200 ? 200 : nlen),
                       name);
            goto bad;
        }
        slot *s = &c->slots[k];
        if (!ac_mpack_read_f32(&r, &absmax) || !ac_mpack_read_array(&r, &ncand) || ncand > AC_TUNE_STEPS + 1 ||
            (pass == AC_CALIB_PASS_TUNE && ncand < 1)) {
            ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': bad range or candidates", TEMPLATE_MAGIC,
                       g->tensors[s->tensor].name);
            goto bad;
        }
        for (uint32_t q = 0; q < ncand; q++)
            if (!ac_mpack_read_f64(&r, &s->cand[q]) || !(s->cand[q] > 0) || !isfinite(s->cand[q])) {
                ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': candidate %u is not a positive number",
                           TEMPLATE_MAGIC, g->tensors[s->tensor].name, q);
                goto bad;
            }
        s->ncand = (int)ncand;
        if (!ac_mpack_read_bool(&r, &s->is_signed) || !ac_mpack_read_f64(&r, &s->base.th) ||
            !ac_mpack_read_f32(&r, &bmin) || !ac_mpack_read_f32(&r, &bmax)) {
            ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': bad tuning base", TEMPLATE_MAGIC,
                       g->tensors[s->tensor].name);
            goto bad;
        }
        s->base.min = bmin;
        s->base.max = bmax;
        s->base.is_signed = s->is_signed;
        if (pass >= AC_CALIB_PASS_HIST && absmax >= 0 && ac_calib_stats_set_hist_range(s->st, absmax, err)) {
            ac_err_prefix(err, "%s: tensor '%s': ", TEMPLATE_MAGIC, g->tensors[s->tensor].name);
            goto bad;
        }
    }
    if (r.left) {
        ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes", TEMPLATE_MAGIC, r.left);
        goto bad;
    }
    return c;
bad:
    ac_calib_collector_destroy(&c);
    return NULL;
}

/* [magic, version, pass, nbins, [[name, stats bytes | [sq_err...]] ...]] */
int ac_calib_collector_encode(const ac_calib_collector *c, uint8_t **buf, size_t *len, ac_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, 5) || pack_str(&pk, PARTIAL_MAGIC) ||
             msgpack_pack_uint64(&pk, WIRE_VERSION) || msgpack_pack_uint64(&pk, (uint64_t)c->pass) ||
             msgpack_pack_uint64(&pk, (uint64_t)nbins_of(c)) || msgpack_pack_array(&pk, (size_t)c->nslots);
    for (int i = 0; i < c->nslots && !rc; i++) {
        const slot *s = &c->slots[i];
        rc = msgpack_pack_array(&pk, 2) || pack_str(&pk, c->g->tensors[s->tensor].name);
        if (rc)
            break;
        if (c->pass == AC_CALIB_PASS_TUNE) {
            rc = msgpack_pack_array(&pk, (size_t)s->ncand);
            for (int k = 0; k < s->ncand && !rc; k++)
                rc = msgpack_pack_double(&pk, s->sq_err[k]);
        } else {
            uint8_t *b = NULL;
            size_t blen = 0;
            if (ac_calib_stats_encode(s->st, &b, &blen, err)) {
                msgpack_sbuffer_destroy(&sb);
                return ac_err_prefix(err, "tensor '%s': ", c->g->tensors[s->tensor].name);
            }
            rc = msgpack_pack_bin(&pk, blen) || msgpack_pack_bin_body(&pk, b, blen);
            free(b);
        }
    }
    return finish_buffer(&sb, rc, buf, len, err);
}

int ac_calib_collector_merge_encoded(ac_calib_collector *dst, const uint8_t *buf, size_t len, ac_err *err)
{
    ac_mpack_reader r;
    ac_mpack_reader_init(&r, buf, len);
    uint64_t pass, nbins;
    uint32_t n;
    if (read_header(&r, PARTIAL_MAGIC, 5, &pass, &nbins, err))
        return err ? (int)err->code : AC_E_INVALID;
    if ((ac_calib_pass)pass != dst->pass || (int)nbins != nbins_of(dst))
        return ac_err_set(err, AC_E_INVALID, "%s: pass %llu / %llu bins, expected pass %d / %d bins", PARTIAL_MAGIC,
                          (unsigned long long)pass, (unsigned long long)nbins, (int)dst->pass, nbins_of(dst));
    if (!ac_mpack_read_array(&r, &n) || n != (uint32_t)dst->nslots)
        return ac_err_set(err, AC_E_INVALID, "%s: tensor list does not match the graph's %d tensors", PARTIAL_MAGIC,
                          dst->nslots);
    /* Decode everything into a scratch collector first, so dst is unchanged on error. */
    ac_calib_collector *tmp = ac_calib_collector_new_shard(dst, err);
    if (!tmp)
        return err ? (int)err->code : AC_E_NOMEM;
    int rc = 0;
    char *seen = calloc((size_t)(dst->nslots ? dst->nslots : 1), 1);
    for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t nf;
        const char *name;
        size_t nlen;
        if (!seen || !ac_mpack_read_array(&r, &nf) || nf != 2 || !ac_mpack_read_str(&r, &name, &nlen)) {
            rc = ac_err_set(err, AC_E_INVALID, "%s: tensor entry %u is malformed", PARTIAL_MAGIC, i);
            break;
        }
        int k = find_slot(tmp, name, nlen);
        if (k < 0 || seen[k]) {
            rc = ac_err_set(err, AC_E_INVALID, "%s: tensor '%.*s' is unknown or repeated", PARTIAL_MAGIC,
                            (int)(nlen > 200 ? 200 : nlen), name);
            break;
        }
        seen[k] = 1;
        slot *s = &tmp->slots[k];
        const char *tname = tmp->g->tensors[s->tensor].name;
        if (tmp->pass == AC_CALIB_PASS_TUNE) {
            uint32_t nc;
            if (!ac_mpack_read_array(&r, &nc) || (int)nc != s->ncand) {
                rc = ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': expected %d candidate errors", PARTIAL_MAGIC,
                                tname, s->ncand);
                break;
            }
            for (uint32_t q = 0; q < nc && !rc; q++)
                if (!ac_mpack_read_f64(&r, &s->sq_err[q]) || !(s->sq_err[q] >= 0))
                    rc = ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': error %u is not a number >= 0",
                                    PARTIAL_MAGIC, tname, q);
        } else {
            const uint8_t *b;
            size_t blen;
            ac_calib_stats *st = NULL;
            if (!ac_mpack_read_bin(&r, &b, &blen)) {
                rc = ac_err_set(err, AC_E_INVALID, "%s: tensor '%s': statistics are not bytes", PARTIAL_MAGIC, tname);
                break;
            }
            if (ac_calib_stats_decode(b, blen, &st, err) || ac_calib_stats_merge(s->st, st, err)) {
                rc = ac_err_prefix(err, "%s: tensor '%s': ", PARTIAL_MAGIC, tname);
            }
            ac_calib_stats_destroy(&st);
        }
    }
    if (!rc && r.left)
        rc = ac_err_set(err, AC_E_INVALID, "%s: %zu trailing bytes", PARTIAL_MAGIC, r.left);
    if (!rc)
        rc = ac_calib_collector_merge(dst, tmp, err);
    free(seen);
    ac_calib_collector_destroy(&tmp);
    return rc;
}
