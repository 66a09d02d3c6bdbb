/* Selftest of quant/: calibration statistics (moments, histogram layout, exact
 * merging over many shardings and merge orders, the wire form and its
 * rejection of bad bytes) and the threshold methods on distributions with
 * known answers.
 *
 *   ac_quant_selftest                   run the tests
 *   ac_quant_selftest --write-seeds DIR write fuzz seeds (valid encodings) */
#include "ac_calib_stats.h"
#include "ac_calibrate.h"
#include "ac_threshold.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ac_check.h"

#define CHECK_NEAR(got, want, tol)                                                             \
    do {                                                                                       \
        double g_ = (got), w_ = (want);                                                        \
        if (!(fabs(g_ - w_) <= (tol))) {                                                       \
            fprintf(stderr, "%s:%d: %s is %.9g, expected %.9g (tolerance %g)\n", __FILE__,     \
                    __LINE__, #got, g_, w_, (double)(tol));                                    \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* ---- deterministic data ------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static double rng_uniform(void) /* (0, 1) */
{
    return ((double)(rng_next() >> 11) + 0.5) * 0x1p-53;
}
static double rng_gauss(void)
{
    return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}
static double rng_laplace(void)
{
    double u = rng_uniform() - 0.5;
    return (u < 0 ? 1.0 : -1.0) * log(1.0 - 2.0 * fabs(u));
}

/* A batch of n values of mixed character: Gaussian, Laplace, exact zeros of
 * both signs, subnormals, huge and tiny magnitudes, NaN and infinities. */
static float *make_batch(size_t n, int kind)
{
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next() % 100;
        double v;
        if (r < 40)
            v = rng_gauss() * (kind + 1);
        else if (r < 70)
            v = rng_laplace() * 0.3;
        else if (r < 80)
            v = (r & 1) ? 0.0 : -0.0;
        else if (r < 84)
            v = ldexp(rng_uniform(), -140) * ((r & 1) ? 1 : -1); /* subnormal */
        else if (r < 86)
            v = ldexp(rng_uniform(), 60 + kind) * ((r & 1) ? 1 : -1);
        else if (r < 88)
            v = ldexp(rng_uniform(), -60);
        else if (r < 89)
            v = (r & 1) ? INFINITY : NAN;
        else
            v = rng_uniform() * 3.0 - 1.0;
        x[i] = (float)v;
    }
    return x;
}

/* ---- moments and histogram layout --------------------------------------------------- */

static void test_moments(void)
{
    ac_calib_stats *st = ac_calib_stats_new(0);
    CHECK(ac_calib_stats_nbins(st) == 2048);
    float x[] = {1.0f, -2.0f, 3.0f, 0.0f, -0.0f, NAN, INFINITY, -INFINITY};
    ac_calib_stats_observe(st, x, 8);
    CHECK(ac_calib_stats_count(st) == 5);
    CHECK(ac_calib_stats_zeros(st) == 2);
    CHECK(ac_calib_stats_nonfinite(st) == 3);
    CHECK(ac_calib_stats_min(st) == -2.0f);
    CHECK(ac_calib_stats_max(st) == 3.0f);
    CHECK(ac_calib_stats_absmax(st) == 3.0f);
    CHECK(ac_calib_stats_mean(st) == 2.0 / 5.0);
    CHECK(ac_calib_stats_mean_abs(st) == 6.0 / 5.0);
    CHECK(ac_calib_stats_mean_sq(st) == 14.0 / 5.0);
    ac_calib_stats_destroy(&st);
    CHECK(st == NULL);
    ac_calib_stats_destroy(&st); /* NULL-safe */

    /* Exact sums: 1e30 + 1 - 1e30 is 1, where a double running sum gives 0. */
    st = ac_calib_stats_new(16);
    float y[] = {1e30f, 1.0f, -1e30f};
    ac_calib_stats_observe(st, y, 3);
    CHECK(ac_calib_stats_mean(st) == 1.0 / 3.0);
    ac_calib_stats_destroy(&st);
    /* The smallest subnormal counts exactly, squares included (2^-298). */
    st = ac_calib_stats_new(16);
    float sub[] = {0x1p-149f, -0x1p-149f, 0x1p-149f};
    ac_calib_stats_observe(st, sub, 3);
    CHECK(ac_calib_stats_mean(st) == ldexp(1.0, -149) / 3.0);
    CHECK(ac_calib_stats_mean_abs(st) == ldexp(1.0, -149));
    CHECK(ac_calib_stats_mean_sq(st) == ldexp(1.0, -298));
    CHECK(ac_calib_stats_min(st) == -0x1p-149f && ac_calib_stats_absmax(st) == 0x1p-149f);
    ac_calib_stats_destroy(&st);

    /* One call over more than a bucket block (65 536 values) equals many small calls. */
    rng_state = 5;
    size_t big = 200003;
    float *many = make_batch(big, 3);
    ac_calib_stats *whole = ac_calib_stats_new(0), *pieces = ac_calib_stats_new(0);
    ac_calib_stats_observe(whole, many, big);
    for (size_t i = 0; i < big; i += 777)
        ac_calib_stats_observe(pieces, many + i, big - i < 777 ? big - i : 777);
    CHECK(ac_calib_stats_equal(whole, pieces));
    CHECK(ac_calib_stats_count(whole) + ac_calib_stats_nonfinite(whole) == big);
    ac_calib_stats_destroy(&whole);
    ac_calib_stats_destroy(&pieces);
    free(many);

    /* The fast passes against their __ref oracles: every length around the
     * vector widths and the bucket block, zeros of both signs, subnormals,
     * huge values, NaN and inf, on fresh statistics and on statistics already
     * holding data (min/max carried in), post-ReLU data (half exact zeros),
     * and a histogram range below the data (clamped values). */
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 9, 63, 1000, 65535, 65536, 65537, 131075};
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (int kind = 0; kind < 3; kind++) {
            rng_state = 11 + l * 3 + (uint64_t)kind;
            float *d = make_batch(lens[l] + 5, kind);
            if (kind == 2)
                for (size_t i = 0; i < lens[l] + 5; i++)
                    d[i] = d[i] > 0 ? d[i] : 0.0f; /* a ReLU's output */
            ac_calib_stats *fast = ac_calib_stats_new(0), *ref = ac_calib_stats_new(0);
            ac_calib_stats_observe(fast, d + 5, lens[l]);
            ac_calib_stats_observe__ref(ref, d + 5, lens[l]);
            CHECK(ac_calib_stats_equal(fast, ref));
            ac_calib_stats_observe(fast, d, 5); /* then more data, min/max carried in */
            ac_calib_stats_observe__ref(ref, d, 5);
            CHECK(ac_calib_stats_equal(fast, ref));
            /* pass 2 with a range from 70 % of the data's abs-max: values above it clamp */
            float range = ac_calib_stats_absmax(ref) * (kind == 1 ? 0.7f : 1.0f);
            if (ac_calib_stats_set_hist_range(fast, range, NULL) == 0 &&
                ac_calib_stats_set_hist_range(ref, range, NULL) == 0) {
                CHECK(ac_calib_stats_observe_hist(fast, d, lens[l] + 5));
                ac_calib_stats_observe_hist__ref(ref, d, lens[l] + 5);
                CHECK(ac_calib_stats_equal(fast, ref));
            }
            ac_calib_stats_destroy(&fast);
            ac_calib_stats_destroy(&ref);
            free(d);
        }

    /* Many values in one bucket, largest mantissa: their squares overflow a
     * bucket unless it is folded every block (300 000 x ~2^48 > 2^64). */
    {
        const size_t nsame = 300000;
        float *same = malloc(nsame * sizeof *same);
        for (size_t i = 0; i < nsame; i++)
            same[i] = i % 3 ? 1.99999988f : -1.99999988f;
        ac_calib_stats *fast = ac_calib_stats_new(0), *ref = ac_calib_stats_new(0);
        ac_calib_stats_observe(fast, same, nsame);
        ac_calib_stats_observe__ref(ref, same, nsame);
        CHECK(ac_calib_stats_equal(fast, ref));
        const double sq = (double)1.99999988f * (double)1.99999988f;
        CHECK(fabs(ac_calib_stats_mean_sq(fast) - sq) <= 1e-15 * sq);
        ac_calib_stats_destroy(&fast);
        ac_calib_stats_destroy(&ref);
        free(same);
    }

    /* Empty statistics. */
    st = ac_calib_stats_new(16);
    CHECK(ac_calib_stats_count(st) == 0 && ac_calib_stats_absmax(st) == 0.0f);
    CHECK(ac_calib_stats_mean(st) == 0.0 && ac_calib_stats_mean_sq(st) == 0.0);
    ac_calib_stats_destroy(&st);

    CHECK(ac_calib_stats_new(1) == NULL);
    CHECK(ac_calib_stats_new(-5) == NULL);
    CHECK(ac_calib_stats_new(AC_CALIB_MAX_BINS + 1) == NULL);
}

static void test_hist_layout(void)
{
    ac_err err;
    ac_calib_stats *st = ac_calib_stats_new(2048);
    float x[] = {0.4f, 0.5f, 1.49f, 1.5f, 2047.0f, -3.0f, 0.0f, -0.0f, NAN};
    CHECK(!ac_calib_stats_observe_hist(st, x, 1)); /* no range yet */
    ac_calib_stats_observe(st, x, 9);
    CHECK(ac_calib_stats_absmax(st) == 2047.0f);
    CHECK(ac_calib_stats_set_hist_range(st, ac_calib_stats_absmax(st), &err) == AC_OK);
    CHECK(ac_calib_stats_hist_width(st) == 1.0);
    CHECK(ac_calib_stats_observe_hist(st, x, 9));
    const uint64_t *h = ac_calib_stats_hist(st);
    CHECK(h[0] == 1);    /* 0.4: bins are centred on j*width */
    CHECK(h[1] == 2);    /* 0.5 and 1.49 */
    CHECK(h[2] == 1);    /* 1.5 */
    CHECK(h[3] == 1);    /* |-3| */
    CHECK(h[2047] == 1); /* abs-max lands in the last bin */
    CHECK(ac_calib_stats_hist_total(st) == 6); /* zeros and NaN excluded */
    CHECK(ac_calib_stats_hist_clamped(st) == 0);
    float beyond = 5000.0f;
    ac_calib_stats_observe_hist(st, &beyond, 1); /* data that differ from pass 1 */
    CHECK(h[2047] == 2 && ac_calib_stats_hist_clamped(st) == 1);
    /* The range is fixed once set. */
    CHECK(ac_calib_stats_set_hist_range(st, 2047.0f, &err) == AC_OK);
    CHECK(ac_calib_stats_set_hist_range(st, 2000.0f, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "already set") != NULL);
    ac_calib_stats *bad = ac_calib_stats_new(16);
    CHECK(ac_calib_stats_set_hist_range(bad, NAN, &err) == AC_E_INVALID);
    CHECK(ac_calib_stats_set_hist_range(bad, -1.0f, &err) == AC_E_INVALID);
    ac_calib_stats_destroy(&bad);
    ac_calib_stats_destroy(&st);
}

/* ---- exact merging ------------------------------------------------------------------ */

#define NBATCH 12

typedef struct {
    float *x[NBATCH];
    size_t n[NBATCH];
} dataset;

static void make_dataset(dataset *d)
{
    static const size_t sizes[NBATCH] = {1000, 0, 1, 5000, 333, 2048, 7, 4096, 100, 999, 1, 3000};
    for (int b = 0; b < NBATCH; b++) {
        d->n[b] = sizes[b];
        d->x[b] = make_batch(sizes[b], b % 4);
    }
}

static void free_dataset(dataset *d)
{
    for (int b = 0; b < NBATCH; b++)
        free(d->x[b]);
}

static ac_calib_stats *one_pass(const dataset *d, int nbins)
{
    ac_err err;
    ac_calib_stats *st = ac_calib_stats_new(nbins);
    for (int b = 0; b < NBATCH; b++)
        ac_calib_stats_observe(st, d->x[b], d->n[b]);
    CHECK(ac_calib_stats_set_hist_range(st, ac_calib_stats_absmax(st), &err) == AC_OK);
    for (int b = 0; b < NBATCH; b++)
        ac_calib_stats_observe_hist(st, d->x[b], d->n[b]);
    return st;
}

/* Merge parts[order[0..n)] into a fresh object, either left to right or as a
 * balanced tree (pairs first), to exercise different association orders. */
static ac_calib_stats *merge_parts(ac_calib_stats **parts, const int *order, int n, bool tree,
                                   int nbins)
{
    ac_err err;
    if (!tree) {
        ac_calib_stats *m = ac_calib_stats_new(nbins);
        for (int i = 0; i < n; i++)
            CHECK(ac_calib_stats_merge(m, parts[order[i]], &err) == AC_OK);
        return m;
    }
    ac_calib_stats *level[NBATCH];
    for (int i = 0; i < n; i++)
        level[i] = ac_calib_stats_dup(parts[order[i]]);
    while (n > 1) {
        int k = 0;
        for (int i = 0; i < n; i += 2) {
            if (i + 1 < n) {
                CHECK(ac_calib_stats_merge(level[i], level[i + 1], &err) == AC_OK);
                ac_calib_stats_destroy(&level[i + 1]);
            }
            level[k++] = level[i];
        }
        n = k;
    }
    return level[0];
}

static void test_merge_exact(void)
{
    ac_err err;
    rng_state = 42;
    dataset d;
    make_dataset(&d);
    const int nbins = 2048;
    ac_calib_stats *ref = one_pass(&d, nbins);
    uint8_t *ref_buf;
    size_t ref_len;
    CHECK(ac_calib_stats_encode(ref, &ref_buf, &ref_len, &err) == AC_OK);

    static const int shard_counts[] = {1, 2, 3, 5, NBATCH};
    int cases = 0;
    for (size_t sc = 0; sc < sizeof shard_counts / sizeof shard_counts[0]; sc++) {
        int k = shard_counts[sc];
        for (int layout = 0; layout < 2; layout++) { /* contiguous or round-robin */
            for (int ord = 0; ord < 3; ord++) {      /* forward, reverse, tree */
                int shard_of[NBATCH];
                for (int b = 0; b < NBATCH; b++)
                    shard_of[b] = layout ? b % k : b * k / NBATCH;
                int order[NBATCH];
                for (int i = 0; i < k; i++)
                    order[i] = ord == 1 ? k - 1 - i : i;
                /* Pass 1 per shard, merged. */
                ac_calib_stats *p1[NBATCH];
                for (int s = 0; s < k; s++) {
                    p1[s] = ac_calib_stats_new(nbins);
                    for (int b = 0; b < NBATCH; b++)
                        if (shard_of[b] == s)
                            ac_calib_stats_observe(p1[s], d.x[b], d.n[b]);
                }
                ac_calib_stats *merged = merge_parts(p1, order, k, ord == 2, nbins);
                float absmax = ac_calib_stats_absmax(merged);
                /* Pass 2 per shard with the global range, merged into pass 1's result. */
                ac_calib_stats *p2[NBATCH];
                for (int s = 0; s < k; s++) {
                    p2[s] = ac_calib_stats_new(nbins);
                    CHECK(ac_calib_stats_set_hist_range(p2[s], absmax, &err) == AC_OK);
                    for (int b = 0; b < NBATCH; b++)
                        if (shard_of[b] == s)
                            ac_calib_stats_observe_hist(p2[s], d.x[b], d.n[b]);
                }
                ac_calib_stats *hists = merge_parts(p2, order, k, ord == 2, nbins);
                CHECK(ac_calib_stats_merge(merged, hists, &err) == AC_OK);
                uint8_t *buf;
                size_t len;
                CHECK(ac_calib_stats_encode(merged, &buf, &len, &err) == AC_OK);
                bool same = ac_calib_stats_equal(merged, ref) && len == ref_len &&
                            memcmp(buf, ref_buf, len) == 0;
                if (!same) {
                    fprintf(stderr, "merge differs from one pass: %d shards, layout %d, order %d\n",
                            k, layout, ord);
                    failures++;
                }
                cases++;
                free(buf);
                ac_calib_stats_destroy(&hists);
                ac_calib_stats_destroy(&merged);
                for (int s = 0; s < k; s++) {
                    ac_calib_stats_destroy(&p1[s]);
                    ac_calib_stats_destroy(&p2[s]);
                }
            }
        }
    }
    CHECK(cases == 30);

    /* Partials that carry both passes (a worker that keeps one object per
     * shard) merge to the same bytes, in any order. */
    ac_calib_stats *both[3];
    float absmax = ac_calib_stats_absmax(ref);
    for (int s = 0; s < 3; s++) {
        both[s] = ac_calib_stats_new(nbins);
        for (int b = s; b < NBATCH; b += 3)
            ac_calib_stats_observe(both[s], d.x[b], d.n[b]);
        CHECK(ac_calib_stats_set_hist_range(both[s], absmax, &err) == AC_OK);
        for (int b = s; b < NBATCH; b += 3)
            ac_calib_stats_observe_hist(both[s], d.x[b], d.n[b]);
    }
    int orders[2][3] = {{2, 0, 1}, {1, 2, 0}};
    for (int o = 0; o < 2; o++) {
        ac_calib_stats *m = merge_parts(both, orders[o], 3, false, nbins);
        CHECK(ac_calib_stats_equal(m, ref));
        ac_calib_stats_destroy(&m);
    }
    /* ... and so do the thresholds. */
    ac_threshold a, b;
    ac_calib_stats *m = merge_parts(both, orders[0], 3, true, nbins);
    for (int meth = 0; meth < AC_TH_METHOD_COUNT; meth++) {
        CHECK(ac_threshold_compute(ref, (ac_th_method)meth, &a, &err) == AC_OK);
        CHECK(ac_threshold_compute(m, (ac_th_method)meth, &b, &err) == AC_OK);
        CHECK(memcmp(&a.th, &b.th, sizeof a.th) == 0);
    }
    ac_calib_stats_destroy(&m);
    for (int s = 0; s < 3; s++)
        ac_calib_stats_destroy(&both[s]);

    /* Merge rules: same nbins, same histogram range; a failed merge changes nothing. */
    ac_calib_stats *small = ac_calib_stats_new(64);
    ac_calib_stats *copy = ac_calib_stats_dup(ref);
    CHECK(ac_calib_stats_merge(copy, small, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "bins") != NULL);
    ac_calib_stats *other = ac_calib_stats_new(nbins);
    CHECK(ac_calib_stats_set_hist_range(other, absmax * 0.5f, &err) == AC_OK);
    CHECK(ac_calib_stats_merge(copy, other, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "ranges differ") != NULL);
    CHECK(ac_calib_stats_equal(copy, ref));
    ac_calib_stats_destroy(&small);
    ac_calib_stats_destroy(&other);
    ac_calib_stats_destroy(&copy);

    free(ref_buf);
    ac_calib_stats_destroy(&ref);
    free_dataset(&d);
}

/* ---- wire form ---------------------------------------------------------------------- */

static void test_wire(void)
{
    ac_err err;
    rng_state = 7;
    dataset d;
    make_dataset(&d);
    ac_calib_stats *st = one_pass(&d, 256);
    uint8_t *buf;
    size_t len;
    CHECK(ac_calib_stats_encode(st, &buf, &len, &err) == AC_OK);

    ac_calib_stats *back = NULL;
    CHECK(ac_calib_stats_decode(buf, len, &back, &err) == AC_OK);
    CHECK(back && ac_calib_stats_equal(st, back));
    ac_calib_stats_destroy(&back);

    /* It is plain msgpack: msgpack-c's own unpacker reads it (trusted bytes). */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&up, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS);
    CHECK(off == len);
    CHECK(up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 14);
    CHECK(up.data.via.array.ptr[13].via.array.size == 256);
    msgpack_unpacked_destroy(&up);

    /* Every truncation is rejected with a message. */
    for (size_t cut = 0; cut < len; cut++) {
        ac_err_clear(&err);
        int rc = ac_calib_stats_decode(buf, cut, &back, &err);
        if (rc == AC_OK || back || err.msg[0] == '\0') {
            fprintf(stderr, "truncation to %zu bytes was not rejected\n", cut);
            failures++;
            ac_calib_stats_destroy(&back);
            break;
        }
    }
    /* A trailing byte is rejected. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0x00;
    CHECK(ac_calib_stats_decode(longer, len + 1, &back, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "trailing") != NULL);
    free(longer);

    /* Single-byte corruptions: rejected or accepted, never a crash (the
     * sanitizer build checks the reads); whatever is accepted round-trips. */
    uint8_t *mut = malloc(len);
    int rejected = 0;
    for (size_t i = 0; i < len; i++) {
        memcpy(mut, buf, len);
        mut[i] ^= (uint8_t)(0x5a + i);
        if (ac_calib_stats_decode(mut, len, &back, &err) != AC_OK) {
            rejected++;
            continue;
        }
        uint8_t *b2;
        size_t l2;
        CHECK(ac_calib_stats_encode(back, &b2, &l2, &err) == AC_OK);
        ac_calib_stats *again = NULL;
        CHECK(ac_calib_stats_decode(b2, l2, &again, &err) == AC_OK);
        CHECK(again && ac_calib_stats_equal(back, again));
        ac_calib_stats_destroy(&again);
        ac_calib_stats_destroy(&back);
        free(b2);
    }
    CHECK(rejected > 0);
    free(mut);

    /* Hand-made garbage. */
    static const struct {
        const char *what;
        const uint8_t bytes[24];
        size_t len;
        const char *field;
    } bad[] = {
        {"empty", {0}, 0, "top level"},
        {"array32 of 2^32-1 elements", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5, "top level"},
        {"a map", {0x81, 0xa1, 'a', 0x01}, 4, "top level"},
        {"wrong magic", {0x9e, 0xa7, 'a', 'c', 's', 't', 'a', 't', 'x'}, 9, "magic"},
        {"version 2", {0x9e, 0xa7, 'a', 'c', 's', 't', 'a', 't', 's', 0x02}, 10, "version"},
        {"str8 longer than the buffer", {0x9e, 0xd9, 0xff, 'a'}, 4, "magic"},
        {"n_zero > count", {0x9e, 0xa7, 'a', 'c', 's', 't', 'a', 't', 's', 0x01, 0x01, 0x02},
         12, "n_zero"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ac_err_clear(&err);
        int rc = ac_calib_stats_decode(bad[i].len ? bad[i].bytes : NULL, bad[i].len, &back, &err);
        if (rc != AC_E_INVALID || back || !strstr(err.msg, bad[i].field)) {
            fprintf(stderr, "garbage '%s': rc %d, message '%s'\n", bad[i].what, rc, err.msg);
            failures++;
        }
    }

    /* Inconsistent but well-formed: decode, change one field's bytes, expect
     * the named rule. The min field is the float after the three counts. */
    ac_calib_stats *empty = ac_calib_stats_new(16);
    uint8_t *eb;
    size_t el;
    CHECK(ac_calib_stats_encode(empty, &eb, &el, &err) == AC_OK);
    /* layout: 9e a7 "acstats" 01 00 00 00 ca <min, 4 bytes> ... */
    CHECK(eb[13] == 0xca);
    eb[14] = 0x3f; /* min = 0x3f000000 = 0.5 with count 0 */
    eb[15] = 0x00;
    CHECK(ac_calib_stats_decode(eb, el, &back, &err) == AC_E_INVALID);
    CHECK(strstr(err.msg, "count is 0") != NULL);
    free(eb);
    ac_calib_stats_destroy(&empty);

    free(buf);
    ac_calib_stats_destroy(&st);
    free_dataset(&d);
}

/* ---- thresholds ------------------------------------------------------------------------ */

/* Two-pass statistics of n values drawn by gen, scaled by s. */
static ac_calib_stats *stats_of(double (*gen)(void), size_t n, double s, bool relu)
{
    ac_err err;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        double v = gen() * s;
        x[i] = (float)(relu && v < 0 ? 0.0 : v);
    }
    ac_calib_stats *st = ac_calib_stats_new(0);
    ac_calib_stats_observe(st, x, n);
    CHECK(ac_calib_stats_set_hist_range(st, ac_calib_stats_absmax(st), &err) == AC_OK);
    ac_calib_stats_observe_hist(st, x, n);
    free(x);
    return st;
}

static double uniform_pm1(void)
{
    return 2.0 * rng_uniform() - 1.0;
}

static void test_thresholds(void)
{
    ac_err err;
    ac_threshold t;
    rng_state = 1684;

    /* Uniform on (-2, 2): MAX is the abs-max; KL keeps (nearly) everything. */
    ac_calib_stats *u = stats_of(uniform_pm1, 100000, 2.0, false);
    double umax = ac_calib_stats_absmax(u);
    CHECK(ac_threshold_compute(u, AC_TH_MAX, &t, &err) == AC_OK);
    CHECK(t.th == umax && t.is_signed && t.scale == umax / 127.0);
    CHECK(ac_threshold_compute(u, AC_TH_KL, &t, &err) == AC_OK);
    CHECK(t.th <= umax && t.th >= 0.85 * umax);
    CHECK(ac_threshold_compute(u, AC_TH_PERCENTILE9999, &t, &err) == AC_OK);
    CHECK(t.th <= umax && t.th >= 0.999 * umax - 2 * ac_calib_stats_hist_width(u));
    CHECK(ac_threshold_compute(u, AC_TH_MSE, &t, &err) == AC_OK);
    CHECK(t.th <= umax && t.th >= 0.95 * umax); /* no outliers: clip little */
    ac_calib_stats_destroy(&u);

    /* Gaussian sigma = 1.5: ACIQ 3.924 sigma; KL and MSE in a sensible range. */
    ac_calib_stats *g = stats_of(rng_gauss, 200000, 1.5, false);
    double gmax = ac_calib_stats_absmax(g);
    CHECK(gmax > 3.924 * 1.5); /* 200k samples reach past 4.2 sigma */
    CHECK(ac_threshold_compute(g, AC_TH_ACIQ_GAUSS, &t, &err) == AC_OK);
    CHECK_NEAR(t.th, 3.924 * 1.5, 0.01 * 3.924 * 1.5);
    CHECK(ac_threshold_compute(g, AC_TH_KL, &t, &err) == AC_OK);
    printf("gaussian sigma 1.5: abs-max %.4f, KL %.4f", gmax, t.th);
    CHECK(t.th <= gmax && t.th >= 2.0 * 1.5);
    CHECK(ac_threshold_compute(g, AC_TH_MSE, &t, &err) == AC_OK);
    printf(", MSE %.4f", t.th);
    /* The MSE objective is the one ACIQ solved analytically for a Gaussian. */
    CHECK(t.th <= gmax);
    CHECK_NEAR(t.th, 3.924 * 1.5, 0.05 * 3.924 * 1.5);
    CHECK(ac_threshold_compute(g, AC_TH_PERCENTILE9999, &t, &err) == AC_OK);
    printf(", P99.99 %.4f (3.89 sigma = %.4f)\n", t.th, 3.8906 * 1.5);
    CHECK_NEAR(t.th, 3.8906 * 1.5, 0.25 * 1.5); /* the 99.99th percentile of |N(0,1)| */
    ac_calib_stats_destroy(&g);

    /* Laplace b = 0.5: ACIQ 9.897 b (raw; the cap at abs-max may apply). */
    ac_calib_stats *l = stats_of(rng_laplace, 200000, 0.5, false);
    CHECK(ac_threshold_compute(l, AC_TH_ACIQ_LAPLACE, &t, &err) == AC_OK);
    CHECK_NEAR(t.raw, 9.897 * 0.5, 0.015 * 9.897 * 0.5);
    CHECK(t.th == fmin(t.raw, (double)ac_calib_stats_absmax(l)));
    ac_calib_stats_destroy(&l);

    /* After ReLU: min 0, so uint8 with scale th/255. */
    ac_calib_stats *r = stats_of(rng_gauss, 50000, 1.0, true);
    CHECK(ac_threshold_compute(r, AC_TH_KL, &t, &err) == AC_OK);
    CHECK(!t.is_signed && t.min == 0.0f && t.scale == t.th / 255.0);
    ac_calib_stats_destroy(&r);

    /* Percentile on a known set: 99 990 values in (0, 1], 10 at 100. The
     * 99.99th percentile is the largest of the small ones, <= 1; the answer is
     * the upper edge of its bin. */
    {
        size_t n = 100000;
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = i < 99990 ? (float)((double)(i + 1) / 99990.0) : 100.0f;
        ac_calib_stats *p = ac_calib_stats_new(0);
        ac_calib_stats_observe(p, x, n);
        CHECK(ac_calib_stats_set_hist_range(p, 100.0f, &err) == AC_OK);
        ac_calib_stats_observe_hist(p, x, n);
        double w = ac_calib_stats_hist_width(p);
        CHECK(ac_threshold_compute(p, AC_TH_PERCENTILE9999, &t, &err) == AC_OK);
        CHECK(t.th >= 1.0 && t.th <= 1.0 + w);
        CHECK(t.th == (floor(1.0 / w + 0.5) + 0.5) * w);
        CHECK(ac_threshold_compute(p, AC_TH_MAX, &t, &err) == AC_OK);
        CHECK(t.th == 100.0 && !t.is_signed);
        free(x);
        ac_calib_stats_destroy(&p);
    }

    /* KL known answer: all mass in one bin below the first clip point makes
     * Q equal P at every candidate (KL 0); the first candidate wins: 128 bins. */
    {
        static uint64_t h[2048];
        memset(h, 0, sizeof h);
        h[100] = 1000;
        CHECK(ac_threshold_kl_hist(h, 2048, 0.5, 128) == 128 * 0.5);
        /* A lone far outlier with a mass in the body: the body's clip wins. */
        for (int j = 1; j < 200; j++)
            h[j] = 1000 - 4 * (uint64_t)j;
        h[2047] = 1;
        double th = ac_threshold_kl_hist(h, 2048, 1.0, 128);
        CHECK(th >= 128.0 && th <= 512.0);
        CHECK(ac_threshold_kl_hist(h, 100, 1.0, 128) == 0.0); /* fewer bins than levels */
        uint64_t none[256] = {0};
        CHECK(ac_threshold_kl_hist(none, 256, 1.0, 128) == 0.0);
        CHECK(ac_threshold_percentile_hist(none, 256, 1.0, 0.9999) == 0.0);
        CHECK(ac_threshold_mse_hist(none, 256, 1.0, 127) == 0.0);
    }

    /* The 1e-5 rule and the cap. */
    {
        ac_calib_stats *z = ac_calib_stats_new(0);
        float zeros[4] = {0, 0, -0.0f, 0};
        ac_calib_stats_observe(z, zeros, 4);
        CHECK(ac_threshold_compute(z, AC_TH_KL, &t, &err) == AC_OK); /* no histogram needed */
        CHECK(t.th == AC_TH_FLOOR && !t.is_signed);
        ac_calib_stats_destroy(&z);
        ac_calib_stats *tiny = ac_calib_stats_new(0);
        float small[2] = {-1e-6f, 5e-6f};
        ac_calib_stats_observe(tiny, small, 2);
        CHECK(ac_threshold_compute(tiny, AC_TH_MAX, &t, &err) == AC_OK);
        CHECK(t.th == AC_TH_FLOOR && t.is_signed && t.scale == AC_TH_FLOOR / 127.0);
        ac_calib_stats_destroy(&tiny);
        CHECK(ac_threshold_finish(5.0, 3.0) == 3.0);
        CHECK(ac_threshold_finish(2.0, 3.0) == 2.0);
        CHECK(ac_threshold_finish(1e-7, 3.0) == AC_TH_FLOOR);
        CHECK(ac_threshold_finish(2.0, 1e-5) == AC_TH_FLOOR);
        CHECK(ac_threshold_finish(NAN, 3.0) == 3.0);
    }

    /* Errors name the problem. */
    {
        ac_calib_stats *e = ac_calib_stats_new(0);
        CHECK(ac_threshold_compute(e, AC_TH_MAX, &t, &err) == AC_E_INVALID);
        CHECK(strstr(err.msg, "no finite value") != NULL);
        float v[3] = {1.0f, -2.0f, 0.5f};
        ac_calib_stats_observe(e, v, 3);
        CHECK(ac_threshold_compute(e, AC_TH_MAX, &t, &err) == AC_OK); /* pass 1 is enough */
        CHECK(ac_threshold_compute(e, AC_TH_ACIQ_GAUSS, &t, &err) == AC_OK);
        CHECK(ac_threshold_compute(e, AC_TH_KL, &t, &err) == AC_E_INVALID);
        CHECK(strstr(err.msg, "pass 2 missing") != NULL);
        CHECK(ac_calib_stats_set_hist_range(e, 1.5f, &err) == AC_OK);
        CHECK(ac_threshold_compute(e, AC_TH_MSE, &t, &err) == AC_E_INVALID);
        CHECK(strstr(err.msg, "not the tensor's abs-max") != NULL);
        ac_calib_stats_destroy(&e);
        ac_calib_stats *few = ac_calib_stats_new(64);
        ac_calib_stats_observe(few, v, 3);
        CHECK(ac_calib_stats_set_hist_range(few, 2.0f, &err) == AC_OK);
        ac_calib_stats_observe_hist(few, v, 3);
        CHECK(ac_threshold_compute(few, AC_TH_KL, &t, &err) == AC_E_INVALID);
        CHECK(ac_threshold_compute(few, AC_TH_PERCENTILE9999, &t, &err) == AC_OK);
        ac_calib_stats_destroy(&few);
    }

    /* Names, parsing, tuning candidates. */
    ac_th_method m;
    CHECK(ac_th_method_parse("percentile9999", &m, &err) == AC_OK && m == AC_TH_PERCENTILE9999);
    CHECK(ac_th_method_parse("ACIQ_laplace", &m, &err) == AC_OK && m == AC_TH_ACIQ_LAPLACE);
    CHECK(ac_th_method_parse("kld", &m, &err) == AC_E_INVALID && strstr(err.msg, "'kld'"));
    for (int i = 0; i < AC_TH_METHOD_COUNT; i++)
        CHECK(ac_th_method_parse(ac_th_method_name((ac_th_method)i), &m, &err) == AC_OK &&
              m == (ac_th_method)i);
    double cand[5];
    CHECK(ac_threshold_tune_candidates(1.0, 3.0, 4, cand) == 5);
    CHECK(cand[0] == 1.0 && cand[1] == 1.5 && cand[2] == 2.0 && cand[3] == 2.5 && cand[4] == 3.0);
    CHECK(ac_threshold_tune_candidates(3.0, 3.0, 4, cand) == 1 && cand[0] == 3.0);
}

/* ---- fuzz seeds ---------------------------------------------------------------------- */

static int write_seeds(const char *dir)
{
    ac_err err;
    rng_state = 99;
    dataset d;
    make_dataset(&d);
    ac_calib_stats *items[3];
    items[0] = one_pass(&d, 128);  /* both passes */
    items[1] = ac_calib_stats_new(16); /* empty */
    items[2] = ac_calib_stats_new(8);  /* pass 1 only */
    ac_calib_stats_observe(items[2], d.x[0], d.n[0]);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        uint8_t *buf;
        size_t len;
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%d.msgpack", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || ac_calib_stats_encode(items[i], &buf, &len, &err) != AC_OK) {
            fprintf(stderr, "cannot write %s\n", path);
            rc = 1;
        } else {
            fwrite(buf, 1, len, f);
            free(buf);
        }
        if (f)
            fclose(f);
        ac_calib_stats_destroy(&items[i]);
    }
    free_dataset(&d);
    return rc;
}

/* The tuning pass's squared errors against the round() oracle, bit for bit:
 * ties (x/s = k + 0.5 exactly), values beyond the int8/uint8 range, both
 * signs, zero, infinities and NaN (skipped), both signednesses, 22 candidate
 * thresholds at once and fewer (a partial vector), a zero threshold (the
 * oracle's path); element by element too. */
static void test_fake_quant_sq_err(void)
{
    enum { N = 4096, K = AC_TUNE_STEPS + 1 };
    static float x[N];
    rng_state = 7;
    const double th = 6.35; /* s = 0.05 signed: many x/s land on exact halves */
    for (int i = 0; i < N; i++) {
        switch (i % 8) {
        case 0: x[i] = (float)((rng_next() % 20001) * 0.025 - 250.0); break; /* halves of s */
        case 1: x[i] = (float)(((int)(rng_next() % 601) - 300) * 0.05 * 0.5); break;
        case 2: x[i] = (float)(((int64_t)(rng_next() % 2000001) - 1000000) * 1e-4); break;
        case 3: x[i] = (float)(((int64_t)(rng_next() % 2001) - 1000) * 1e3); break; /* far beyond */
        case 4: x[i] = i % 16 == 4 ? INFINITY : -INFINITY; break;
        case 5: x[i] = i % 16 == 5 ? NAN : 0.0f; break;
        default: x[i] = (float)((int64_t)(rng_next() % 25601) * (th / 25600.0) - th / 2); break;
        }
    }
    double cand[K];
    for (int k = 0; k < K; k++)
        cand[k] = th * (1.0 + k / 4.0) / 2; /* th itself at k = 4 */
    static const int counts[] = {K, 13, 1};
    for (int sg = 0; sg < 2; sg++)
        for (int c = 0; c < 3; c++) {
            double got[K];
            ac_calib_fake_quant_sq_err(x, N, cand, counts[c], sg, got);
            for (int k = 0; k < counts[c]; k++) {
                double want = ac_calib_fake_quant_sq_err__ref(x, N, cand[k], sg);
                CHECK(memcmp(&got[k], &want, sizeof want) == 0, "sq_err(th %g, signed %d, %d candidates) = %.17g, "
                      "oracle %.17g", cand[k], sg, counts[c], got[k], want);
            }
        }
    for (int i = 0; i < N; i++) {
        double got[K];
        ac_calib_fake_quant_sq_err(&x[i], 1, cand, K, true, got);
        double want = ac_calib_fake_quant_sq_err__ref(&x[i], 1, cand[4], true);
        CHECK(memcmp(&got[4], &want, sizeof want) == 0, "x = %.9g: %.17g vs oracle %.17g", x[i], got[4], want);
    }
    /* a zero threshold: NaN sums, as the oracle's */
    double zero[2] = {0.0, th}, got[2];
    ac_calib_fake_quant_sq_err(x, 64, zero, 2, true, got);
    double want0 = ac_calib_fake_quant_sq_err__ref(x, 64, 0.0, true), want1 = ac_calib_fake_quant_sq_err__ref(x, 64, th, true);
    CHECK((isnan(got[0]) && isnan(want0)) || got[0] == want0, "zero threshold: %g vs oracle %g", got[0], want0);
    CHECK(memcmp(&got[1], &want1, sizeof want1) == 0, "beside a zero threshold: %.17g vs %.17g", got[1], want1);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    test_moments();
    test_hist_layout();
    test_merge_exact();
    test_wire();
    test_thresholds();
    test_fake_quant_sq_err();
    if (failures) {
        fprintf(stderr, "quant_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("quant_selftest: all checks passed\n");
    return 0;
}
