/* Calibration on a real model and real data: the bundled Fashion-MNIST net over
 * Fashion-MNIST test images. Checks that statistics collected on shards and
 * merged equal one pass over all the data (bit for bit, any merge order), that
 * the threshold table is sane for every method, that the tuning pass only
 * moves thresholds up, and that observing node by node on shared buffers
 * (the workers' way) gives the same statistics for 1-3 threads. Skips (77) when the dataset package is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_calibrate.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_model.h"
#include "ac_runner.h"
#include "ac_check.h"

#define BATCH 10
#define IMAGES 60

typedef struct {
    ac_graph *g;
    ac_exec *e;
    ac_dataset *ds;
    float x[BATCH * 28 * 28];
} fixture;

/* Feed images [begin, end) through the model into collector c. */
static void feed(fixture *f, ac_calib_collector *c, int begin, int end)
{
    ac_err err = {0};
    for (int i = begin; i < end; i += BATCH) {
        CHECK(ac_dataset_read(f->ds, 0, i, BATCH, f->x, &err) == 0, "%s", err.msg);
        const void *in[1] = {f->x};
        CHECK(ac_exec_run(f->e, in, &err) == 0, "%s", err.msg);
        CHECK(ac_calib_collector_observe(c, f->e, &err) == 0, "%s", err.msg);
    }
}

static bool collectors_equal(const fixture *f, const ac_calib_collector *a, const ac_calib_collector *b)
{
    for (int t = 0; t < f->g->ntensors; t++) {
        const ac_calib_stats *x = ac_calib_collector_stats(a, t), *y = ac_calib_collector_stats(b, t);
        if ((x == NULL) != (y == NULL) || (x && !ac_calib_stats_equal(x, y)))
            return false;
    }
    return true;
}

/* One pass over [0, IMAGES) vs shards {0..20, 20..60} merged as a+b and as b+a. */
static void test_sharded_equals_whole(fixture *f)
{
    ac_err err = {0};
    ac_calib_collector *whole = ac_calib_collector_new(f->g, 0, &err);
    ac_calib_collector *a = ac_calib_collector_new(f->g, 0, &err);
    ac_calib_collector *b = ac_calib_collector_new(f->g, 0, &err);
    ac_calib_collector *b2 = ac_calib_collector_new(f->g, 0, &err);
    feed(f, whole, 0, IMAGES);
    feed(f, a, 0, 20);
    feed(f, b, 20, IMAGES);
    feed(f, b2, 20, IMAGES);
    CHECK(ac_calib_collector_merge(b2, a, &err) == 0, "%s", err.msg); /* b + a */
    CHECK(ac_calib_collector_merge(a, b, &err) == 0, "%s", err.msg);  /* a + b */
    CHECK(collectors_equal(f, whole, a), "pass 1: a+b differs from one pass");
    CHECK(collectors_equal(f, whole, b2), "pass 1: b+a differs from one pass");

    /* Pass 2 on the shards with the merged range, then merge again. */
    CHECK(ac_calib_collector_begin_hist(whole, &err) == 0, "%s", err.msg);
    /* As in a farm: the merged pass-1 result (a) starts pass 2, workers fill
     * empty shard collectors with its ranges, the coordinator merges them. */
    CHECK(ac_calib_collector_begin_hist(a, &err) == 0, "%s", err.msg);
    ac_calib_collector *ha = ac_calib_collector_new_shard(a, &err);
    ac_calib_collector *hb = ac_calib_collector_new_shard(a, &err);
    CHECK(ha && hb, "%s", err.msg);
    feed(f, whole, 0, IMAGES);
    feed(f, ha, 0, 30);
    feed(f, hb, 30, IMAGES);
    CHECK(ac_calib_collector_merge(a, hb, &err) == 0, "%s", err.msg);
    CHECK(ac_calib_collector_merge(a, ha, &err) == 0, "%s", err.msg);
    CHECK(collectors_equal(f, whole, a), "pass 2: merged shards differ from one pass");
    ac_calib_collector_destroy(&ha);
    ac_calib_collector_destroy(&hb);

    for (int m = 0; m < AC_TH_METHOD_COUNT; m++) {
        ac_calib_table *t = ac_calib_collector_table(whole, (ac_th_method)m, &err);
        CHECK(t != NULL, "%s: %s", ac_th_method_name((ac_th_method)m), err.msg);
        if (!t)
            continue;
        ac_calib_table *t2 = ac_calib_collector_table(a, (ac_th_method)m, &err);
        for (size_t i = 0; t2 && i < ac_calib_table_size(t); i++) {
            const ac_calib_entry *e = ac_calib_table_at(t, i), *e2 = ac_calib_table_find(t2, e->name);
            const ac_calib_stats *st = NULL;
            for (int k = 0; k < f->g->ntensors && !st; k++)
                if (!strcmp(f->g->tensors[k].name, e->name))
                    st = ac_calib_collector_stats(whole, k);
            CHECK(e2 && e2->th == e->th, "%s %s: sharded threshold differs", ac_th_method_name((ac_th_method)m),
                  e->name);
            CHECK(e->th > 0 && e->th <= fmax(ac_calib_stats_absmax(st), 1e-5) * (1 + 1e-6),
                  "%s %s: th %g outside (0, absmax %g]", ac_th_method_name((ac_th_method)m), e->name, e->th,
                  ac_calib_stats_absmax(st));
        }
        ac_calib_table_destroy(&t2);
        ac_calib_table_destroy(&t);
    }

    /* Tuning moves KL thresholds only upward, toward abs-max. */
    ac_calib_table *kl = ac_calib_collector_table(whole, AC_TH_KL, &err);
    CHECK(ac_calib_collector_begin_tune(whole, AC_TH_KL, &err) == 0, "%s", err.msg);
    feed(f, whole, 0, 20);
    int moved = -1;
    ac_calib_table *tuned = ac_calib_collector_tuned_table(whole, &moved, &err);
    CHECK(tuned && kl, "%s", err.msg);
    for (size_t i = 0; tuned && kl && i < ac_calib_table_size(kl); i++) {
        const ac_calib_entry *e = ac_calib_table_at(kl, i), *u = ac_calib_table_find(tuned, e->name);
        CHECK(u && u->th >= e->th, "%s: tuned %g below KL %g", e->name, u ? u->th : -1, e->th);
    }
    CHECK(moved >= 0, "moved %d", moved);
    printf("calibrate_test: %zu tensors, tuning raised %d KL thresholds\n", kl ? ac_calib_table_size(kl) : 0,
           moved);
    ac_calib_table_destroy(&kl);
    ac_calib_table_destroy(&tuned);
    ac_calib_collector_destroy(&whole);
    ac_calib_collector_destroy(&a);
    ac_calib_collector_destroy(&b);
    ac_calib_collector_destroy(&b2);
}

/* Feed [begin, end) observing node by node on executor e (nth threads). */
static void feed_observed(fixture *f, ac_exec *e, int nth, ac_calib_collector *c, int begin, int end)
{
    ac_err err = {0};
    ac_exec_set_threads(e, nth);
    ac_calib_observer *o = ac_calib_observer_new(c, ac_exec_threads(e), &err);
    CHECK(o != NULL, "%s", err.msg);
    if (!o)
        return;
    ac_exec_set_node_hook(e, ac_calib_observer_node, o);
    for (int i = begin; i < end; i += BATCH) {
        CHECK(ac_dataset_read(f->ds, 0, i, BATCH, f->x, &err) == 0, "%s", err.msg);
        const void *in[1] = {f->x};
        CHECK(ac_exec_run(e, in, &err) == 0, "%s", err.msg);
    }
    ac_exec_set_node_hook(e, NULL, NULL);
    CHECK(ac_calib_observer_finish(o, &err) == 0, "%s", err.msg);
    ac_calib_observer_destroy(&o);
}

/* Tensors observed as their nodes finish, on an executor whose buffers are
 * shared (each tensor overwritten once its consumers ran), split over 1, 2
 * and 3 threads: the same statistics as observing every tensor after each
 * run, in the range and histogram passes, and the same tuned table. */
static void test_observed_by_node(fixture *f)
{
    ac_err err = {0};
    ac_exec *shared = ac_exec_new_shared(f->g, &err);
    CHECK(shared != NULL, "%s", err.msg);
    if (!shared)
        return;
    ac_calib_collector *ref = ac_calib_collector_new(f->g, 0, &err);
    feed(f, ref, 0, 30);
    CHECK(ac_calib_collector_begin_hist(ref, &err) == 0, "%s", err.msg);
    feed(f, ref, 0, 30);
    ac_calib_table *ref_kl = ac_calib_collector_table(ref, AC_TH_KL, &err);
    CHECK(ac_calib_collector_begin_tune(ref, AC_TH_KL, &err) == 0, "%s", err.msg);
    feed(f, ref, 0, 20);
    ac_calib_table *ref_tuned = ac_calib_collector_tuned_table(ref, NULL, &err);
    for (int nth = 1; nth <= 3; nth++) {
        ac_calib_collector *c = ac_calib_collector_new(f->g, 0, &err);
        ac_calib_collector *probe = ac_calib_collector_new(f->g, 0, &err);
        feed_observed(f, shared, nth, c, 0, 30);
        feed(f, probe, 0, 30);
        CHECK(collectors_equal(f, probe, c), "range pass observed by node, %d thread(s): differs", nth);
        CHECK(ac_calib_collector_begin_hist(c, &err) == 0 && ac_calib_collector_begin_hist(probe, &err) == 0, "%s",
              err.msg);
        feed_observed(f, shared, nth, c, 0, 30);
        feed(f, probe, 0, 30);
        CHECK(collectors_equal(f, probe, c), "histogram pass observed by node, %d thread(s): differs", nth);
        ac_calib_table *kl = ac_calib_collector_table(c, AC_TH_KL, &err);
        CHECK(ac_calib_collector_begin_tune(c, AC_TH_KL, &err) == 0, "%s", err.msg);
        feed_observed(f, shared, nth, c, 0, 20);
        ac_calib_table *tuned = ac_calib_collector_tuned_table(c, NULL, &err);
        for (size_t i = 0; kl && tuned && ref_kl && ref_tuned && i < ac_calib_table_size(ref_kl); i++) {
            const ac_calib_entry *r = ac_calib_table_at(ref_kl, i), *k = ac_calib_table_find(kl, r->name);
            const ac_calib_entry *rt = ac_calib_table_find(ref_tuned, r->name), *t = ac_calib_table_find(tuned, r->name);
            CHECK(k && k->th == r->th, "%s: KL threshold by node (%d thread(s)) differs", r->name, nth);
            CHECK(t && rt && t->th == rt->th, "%s: tuned threshold by node (%d thread(s)) differs", r->name, nth);
        }
        CHECK(kl && tuned, "%s", err.msg);
        ac_calib_table_destroy(&kl);
        ac_calib_table_destroy(&tuned);
        ac_calib_collector_destroy(&c);
        ac_calib_collector_destroy(&probe);
    }
    ac_calib_table_destroy(&ref_kl);
    ac_calib_table_destroy(&ref_tuned);
    ac_calib_collector_destroy(&ref);
    ac_exec_destroy(&shared);
}

/* The runner's calibration over 25 samples at batch 10 (the last batch
 * padded, only its 5 real samples observed) equals the same 25 samples at
 * batch 5, in the range and histogram passes. */
static void test_padded_last_batch(fixture *f, const char *model)
{
    ac_err err = {0};
    ac_model_options mo = {.input_shapes = "(5,1,28,28)"};
    ac_graph *g5 = ac_model_load(model, &mo, NULL, &err);
    CHECK(g5 != NULL, "%s", err.msg);
    if (!g5)
        return;
    ac_exec *e10 = ac_exec_new_shared(f->g, &err), *e5 = ac_exec_new_shared(g5, &err);
    ac_runner *r10 = ac_runner_new(f->g, 0, f->ds, &err), *r5 = ac_runner_new(g5, 0, f->ds, &err);
    ac_calib_collector *c10 = ac_calib_collector_new(f->g, 0, &err), *c5 = ac_calib_collector_new(g5, 0, &err);
    CHECK(e10 && e5 && r10 && r5 && c10 && c5, "%s", err.msg);
    if (e10 && e5 && r10 && r5 && c10 && c5) {
        for (int pass = 0; pass < 2; pass++) {
            CHECK(ac_runner_calibrate(r10, e10, c10, 0, 25, &err) == 0, "%s", err.msg);
            CHECK(ac_runner_calibrate(r5, e5, c5, 0, 25, &err) == 0, "%s", err.msg);
            bool same = true;
            for (int t = 0; t < f->g->ntensors && t < g5->ntensors; t++) {
                const ac_calib_stats *a = ac_calib_collector_stats(c10, t), *b = ac_calib_collector_stats(c5, t);
                same = same && (a == NULL) == (b == NULL) && (!a || ac_calib_stats_equal(a, b));
                CHECK(!a || ac_calib_stats_count(a) == (uint64_t)(ac_tensor_numel(&f->g->tensors[t]) / 10 * 25) ||
                          f->g->tensors[t].dims[0] != 10,
                      "%s: %llu values observed for 25 samples", f->g->tensors[t].name,
                      (unsigned long long)ac_calib_stats_count(a));
            }
            CHECK(same, "pass %d: 25 samples at batch 10 (padded) differ from batch 5", pass + 1);
            if (pass == 0)
                CHECK(ac_calib_collector_begin_hist(c10, &err) == 0 && ac_calib_collector_begin_hist(c5, &err) == 0,
                      "%s", err.msg);
        }
    }
    ac_calib_collector_destroy(&c10);
    ac_calib_collector_destroy(&c5);
    ac_runner_destroy(&r10);
    ac_runner_destroy(&r5);
    ac_exec_destroy(&e10);
    ac_exec_destroy(&e5);
    ac_graph_destroy(&g5);
}

/* The farm's path: template bytes -> worker collector -> partial bytes -> merge.
 * Must equal feeding the master directly, in every pass; garbage is refused. */
static void test_wire_round_trip(fixture *f)
{
    ac_err err = {0};
    ac_calib_collector *direct = ac_calib_collector_new(f->g, 0, &err);
    ac_calib_collector *master = ac_calib_collector_new(f->g, 0, &err);
    for (int pass = 1; pass <= 3; pass++) {
        if (pass == 2) {
            CHECK(ac_calib_collector_begin_hist(direct, &err) == 0, "%s", err.msg);
            CHECK(ac_calib_collector_begin_hist(master, &err) == 0, "%s", err.msg);
        } else if (pass == 3) {
            CHECK(ac_calib_collector_begin_tune(direct, AC_TH_KL, &err) == 0, "%s", err.msg);
            CHECK(ac_calib_collector_begin_tune(master, AC_TH_KL, &err) == 0, "%s", err.msg);
        }
        uint8_t *tpl = NULL, *part[2] = {NULL, NULL};
        size_t tlen = 0, plen[2] = {0, 0};
        CHECK(ac_calib_collector_encode_template(master, &tpl, &tlen, &err) == 0, "%s", err.msg);
        for (int s = 0; s < 2; s++) {
            ac_calib_collector *w = ac_calib_collector_from_template(f->g, tpl, tlen, &err);
            CHECK(w != NULL, "pass %d: %s", pass, err.msg);
            if (!w)
                continue;
            feed(f, w, s * 20, s * 20 + 20);
            CHECK(ac_calib_collector_encode(w, &part[s], &plen[s], &err) == 0, "%s", err.msg);
            ac_calib_collector_destroy(&w);
        }
        feed(f, direct, 0, 40);
        /* Shards come back in either order; merged in shard order. */
        CHECK(ac_calib_collector_merge_encoded(master, part[0], plen[0], &err) == 0, "pass %d: %s", pass, err.msg);
        CHECK(ac_calib_collector_merge_encoded(master, part[1], plen[1], &err) == 0, "pass %d: %s", pass, err.msg);
        if (pass < 3)
            CHECK(collectors_equal(f, direct, master), "pass %d: wire path differs from direct", pass);
        /* Truncated or flipped bytes: an error, master unchanged. */
        for (size_t cut = 0; cut < plen[0]; cut += 1 + plen[0] / 50)
            CHECK(ac_calib_collector_merge_encoded(master, part[0], cut, &err) != 0, "pass %d: cut %zu accepted",
                  pass, cut);
        ac_calib_collector *bad = ac_calib_collector_from_template(f->g, tpl, tlen / 2, &err);
        CHECK(bad == NULL, "half a template accepted");
        free(tpl);
        free(part[0]);
        free(part[1]);
    }
    int m1 = -1, m2 = -2;
    ac_calib_table *t1 = ac_calib_collector_tuned_table(direct, &m1, &err);
    ac_calib_table *t2 = ac_calib_collector_tuned_table(master, &m2, &err);
    CHECK(t1 && t2 && m1 == m2, "tuning differs: %d vs %d", m1, m2);
    for (size_t i = 0; t1 && t2 && i < ac_calib_table_size(t1); i++)
        CHECK(ac_calib_table_at(t1, i)->th == ac_calib_table_find(t2, ac_calib_table_at(t1, i)->name)->th,
              "tuned threshold of %s differs", ac_calib_table_at(t1, i)->name);
    ac_calib_table_destroy(&t1);
    ac_calib_table_destroy(&t2);
    ac_calib_collector_destroy(&direct);
    ac_calib_collector_destroy(&master);
}

int main(int argc, char **argv)
{
    const char *model = argc > 1 ? argv[1] : "models/fmnist_plain.onnx";
    const char *data = "/usr/share/datasets/fashion-mnist";
    char images[512], labels[512];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", data);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", data);
    if (access(images, R_OK) != 0) {
        printf("calibrate_test: SKIP: %s is absent (Debian package dataset-fashion-mnist)\n", images);
        return 77;
    }
    ac_err err = {0};
    fixture f = {0};
    ac_model_options mo = {.input_shapes = "(10,1,28,28)"};
    f.g = ac_model_load(model, &mo, NULL, &err);
    if (!f.g) {
        fprintf(stderr, "calibrate_test: %s\n", err.msg);
        return 1;
    }
    f.e = ac_exec_new(f.g, &err);
    ac_dataset_opts o = {.preprocess = "mean_value=72.93,scale=0.011109", .channels = 1};
    f.ds = ac_dataset_open_idx(images, labels, &o, &err);
    if (!f.e || !f.ds) {
        fprintf(stderr, "calibrate_test: %s\n", err.msg);
        return 1;
    }
    test_sharded_equals_whole(&f);
    test_wire_round_trip(&f);
    test_observed_by_node(&f);
    test_padded_last_batch(&f, model);
    ac_dataset_destroy(&f.ds);
    ac_exec_destroy(&f.e);
    ac_graph_destroy(&f.g);
    if (failures) {
        fprintf(stderr, "calibrate_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("calibrate_test: all passed\n");
    return 0;
}
