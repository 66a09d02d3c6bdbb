/* An example metric plug-in (docs/metrics.md §6): the fraction of output
 * values of the candidate model that lie within a tolerance of the fp32
 * reference, over every output of every sample.
 *
 *   options: "tol=<float>" (default 0.05); "" keeps the default.
 *   partial: two integer counts (values seen, values within tolerance), so
 *            merging is exact: any sharding gives the same score.
 *   bytes:   version byte 1, then both counts as little-endian uint64 (17 bytes).
 *
 * Build: cc -shared -fPIC -o libwithin_tol.so metric_plugin_example.c -lm
 * (CMake target metric_plugin_example, a MODULE library). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_metric_plugin.h"

typedef struct {
    double tol;
} state_t;

typedef struct {
    uint64_t seen, within;
} partial_t;

static void *init(const char *options, char *err, size_t errlen)
{
    double tol = 0.05;
    if (options && options[0]) {
        char *end = NULL;
        if (strncmp(options, "tol=", 4) != 0 || (tol = strtod(options + 4, &end), end == options + 4) || *end ||
            !(tol >= 0) || !isfinite(tol)) {
            snprintf(err, errlen, "options '%s': expected tol=<finite number >= 0>", options);
            return NULL;
        }
    }
    state_t *s = malloc(sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->tol = tol;
    return s;
}

static void fini(void *state) { free(state); }

static void *partial_new(void *state)
{
    (void)state;
    return calloc(1, sizeof(partial_t));
}

static void partial_free(void *state, void *partial)
{
    (void)state;
    free(partial);
}

static int64_t numel(const ac_metric_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->dims[d];
    return n;
}

static int add(void *state, void *partial, int64_t sample_index, const ac_metric_tensor *outputs, int32_t noutputs,
               const ac_metric_tensor *refs, int32_t nrefs, const ac_metric_label *label, char *err, size_t errlen)
{
    const state_t *s = state;
    partial_t *p = partial;
    (void)label;
    if (nrefs != noutputs) {
        snprintf(err, errlen, "sample %lld: needs one fp32 output per output (got %d and %d)",
                 (long long)sample_index, nrefs, noutputs);
        return 1;
    }
    partial_t add = {0, 0};
    for (int32_t i = 0; i < noutputs; i++) {
        int64_t n = numel(&outputs[i]);
        if (n != numel(&refs[i])) {
            snprintf(err, errlen, "sample %lld: output %d has %lld values, its reference %lld",
                     (long long)sample_index, i, (long long)n, (long long)numel(&refs[i]));
            return 1;
        }
        for (int64_t k = 0; k < n; k++) {
            add.seen++;
            add.within += fabs((double)outputs[i].data[k] - refs[i].data[k]) <= s->tol;
        }
    }
    p->seen += add.seen;
    p->within += add.within;
    return 0;
}

static int merge(void *state, void *dst, const void *src, char *err, size_t errlen)
{
    (void)state, (void)err, (void)errlen;
    partial_t *d = dst;
    const partial_t *s = src;
    d->seen += s->seen;
    d->within += s->within;
    return 0;
}

static size_t encode(void *state, const void *partial, uint8_t *buf, size_t cap)
{
    (void)state;
    const partial_t *p = partial;
    if (buf && cap >= 17) {
        buf[0] = 1;
        for (int i = 0; i < 8; i++) {
            buf[1 + i] = (uint8_t)(p->seen >> (8 * i));
            buf[9 + i] = (uint8_t)(p->within >> (8 * i));
        }
    }
    return 17;
}

static void *decode(void *state, const uint8_t *bytes, size_t len, char *err, size_t errlen)
{
    (void)state;
    if (len != 17 || bytes[0] != 1) {
        snprintf(err, errlen, "expected 17 bytes starting with version 1, got %zu bytes", len);
        return NULL;
    }
    partial_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        p->seen |= (uint64_t)bytes[1 + i] << (8 * i);
        p->within |= (uint64_t)bytes[9 + i] << (8 * i);
    }
    if (p->within > p->seen) {
        snprintf(err, errlen, "within (%llu) exceeds seen (%llu)", (unsigned long long)p->within,
                 (unsigned long long)p->seen);
        free(p);
        return NULL;
    }
    return p;
}

static int score(void *state, const void *partial, double *score, char *details, size_t details_len, char *err,
                 size_t errlen)
{
    const state_t *s = state;
    const partial_t *p = partial;
    if (p->seen == 0) {
        snprintf(err, errlen, "no values seen");
        return 1;
    }
    *score = (double)p->within / (double)p->seen;
    snprintf(details, details_len, "%llu of %llu values within %g", (unsigned long long)p->within,
             (unsigned long long)p->seen, s->tol);
    return 0;
}

static const ac_metric_plugin table = {
    AC_METRIC_PLUGIN_ABI, sizeof(ac_metric_plugin), "within_tol", init, fini, partial_new, partial_free, add, merge,
    encode, decode, score,
};

__attribute__((visibility("default"))) const ac_metric_plugin *ac_metric_plugin_v1(void);
const ac_metric_plugin *ac_metric_plugin_v1(void) { return &table; }
