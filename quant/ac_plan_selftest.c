/* plan_selftest: threshold sharing, fp32 fallbacks, options, calibration
 * table reading, the int8 executor (hand-computed layer, thread-count
 * invariance, all-fp32 plan = fp32 executor) and whole-network sanity on the
 * Fashion-MNIST nets (int8 top-1 close to fp32).
 *
 * usage: ac_plan_selftest <repo dir> <zoo dir> [--long]
 * The Fashion-MNIST part skips (with a message) when the models or the
 * dataset are absent; --long runs only the MobileNetV2 check of spec §11
 * (exit 77 = skipped when the zoo is absent). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_calib_table.h"
#include "ac_dataset.h"
#include "ac_exec.h"
#include "ac_graph.h"
#include "ac_ops.h"
#include "ac_plan.h"
#include "ac_qexec.h"
#include "ac_qtest_util.h"
#include "ac_round.h"
#include "ac_check.h"

/* ---- small graph builders ------------------------------------------------------------------ */

static int tensor(ac_graph *g, const char *name)
{
    return ac_graph_add_tensor(g, name, AC_DT_F32, -1, NULL);
}

static int input(ac_graph *g, const char *name, int64_t c, int64_t h, int64_t w)
{
    int64_t d[4] = {1, c, h, w};
    return ac_graph_add_tensor(g, name, AC_DT_F32, 4, d);
}

static int constant(ac_graph *g, const char *name, int ndim, const int64_t *dims, const float *v)
{
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, ndim, dims);
    ac_graph_set_const(g, t, v, ac_tensor_bytes(&g->tensors[t]), NULL);
    return t;
}

static ac_node *node(ac_graph *g, const char *name, const char *op, int nin, const int *in, int out)
{
    int i = ac_graph_add_node(g, name, op, ac_op_from_onnx(op), nin, in, 1, &out);
    return &g->nodes[i];
}

static void attr_ints(ac_graph *g, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_INTS);
    a->n = cnt;
    a->ints = ac_arena_memdup(g->arena, v, sizeof(int64_t) * (size_t)cnt);
}

static void attr_int(ac_graph *g, ac_node *n, const char *name, int64_t v)
{
    ac_node_add_attr(g, n, name, AC_ATTR_INT)->i = v;
}

static void attr_string(ac_graph *g, ac_node *n, const char *name, const char *s)
{
    ac_node_add_attr(g, n, name, AC_ATTR_STRING)->s = ac_arena_strdup(g->arena, s);
}

/* Conv with k x k filters, every weight = wv (bias b), stride s, groups. */
static ac_node *conv(ac_graph *g, const char *name, int x, int y, int64_t cin, int64_t cout,
                     int64_t k, int64_t s, int64_t groups, float wv, float b)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.w", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    int64_t wd[4] = {cout, cin / groups, k, k}, bd[1] = {cout};
    int64_t nw = wd[0] * wd[1] * k * k;
    float *w = malloc(sizeof(float) * (size_t)nw), *bias = malloc(sizeof(float) * (size_t)cout);
    for (int64_t i = 0; i < nw; i++)
        w[i] = wv * (float)(1 + i % 3) / 3.0f;
    for (int64_t i = 0; i < cout; i++)
        bias[i] = b;
    int W = constant(g, wn, 4, wd, w), B = constant(g, bn, 1, bd, bias);
    free(w);
    free(bias);
    ac_node *n = node(g, name, "Conv", 3, (int[]){x, W, B}, y);
    attr_ints(g, n, "strides", 2, (int64_t[]){s, s});
    attr_int(g, n, "group", groups);
    return n;
}

static int finish(ac_graph *g, int nin, const int *in, int nout, const int *out)
{
    ac_err err = {0};
    g->opset = 13;
    ac_graph_set_io(g, nin, in, nout, out);
    int rc = ac_graph_toposort(g, &err);
    if (!rc)
        rc = ac_graph_infer_shapes(g, &err);
    CHECK(rc == 0, "building test graph '%s': %s", g->name, err.msg);
    return rc;
}

static ac_calib_table *table(const char *spec)
{
    ac_err err = {0};
    ac_calib_table *t = NULL;
    int rc = ac_calib_table_parse(spec, strlen(spec), "test table", &t, &err);
    CHECK(rc == 0, "%s", err.msg);
    return t;
}

static const ac_calib_entry *entry(const ac_calib_table *t, const char *name)
{
    const ac_calib_entry *e = ac_calib_table_find(t, name);
    CHECK(e != NULL, "tensor '%s' missing from the shared table", name);
    static ac_calib_entry none = {0};
    return e ? e : &none;
}

static int node_index(const ac_graph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

static const ac_node_plan *plan_of(const ac_plan *p, const char *name)
{
    int i = node_index(p->g, name);
    CHECK(i >= 0, "node '%s' not found", name);
    static ac_node_plan none;
    return i >= 0 ? &p->nodes[i] : &none;
}

static const ac_tensor_plan *tplan(const ac_plan *p, const char *name)
{
    int t = ac_graph_find_tensor(p->g, name);
    CHECK(t >= 0, "tensor '%s' not found", name);
    static ac_tensor_plan none;
    return t >= 0 ? &p->tensors[t] : &none;
}

static ac_plan *build(const ac_graph *g, const ac_calib_table *t, const ac_quant_options *o)
{
    ac_err err = {0};
    ac_quant_options def = {0};
    ac_plan *p = ac_plan_build(g, t, o ? o : &def, &err);
    CHECK(p != NULL, "plan of '%s': %s", g->name, err.msg);
    return p;
}

/* ---- sharing ------------------------------------------------------------------------------------ */

/* x -> conv -> c -> Relu -> r -> MaxPool -> m; r_is_output adds r to the outputs. */
static ac_graph *relu_pool_graph(bool r_is_output)
{
    ac_graph *g = ac_graph_new("relu_pool");
    int x = input(g, "x", 2, 4, 4), c = tensor(g, "c"), r = tensor(g, "r"), m = tensor(g, "m");
    conv(g, "conv", x, c, 2, 2, 1, 1, 1, 0.5f, 0.0f);
    node(g, "relu", "Relu", 1, &c, r);
    ac_node *mp = node(g, "pool", "MaxPool", 1, &r, m);
    attr_ints(g, mp, "kernel_shape", 2, (int64_t[]){2, 2});
    attr_ints(g, mp, "strides", 2, (int64_t[]){2, 2});
    int outs[2] = {m, r};
    finish(g, 1, &x, r_is_output ? 2 : 1, outs);
    return g;
}

static void test_sharing_backward_forward(void)
{
    const char *spec = "x 2 -2 2\nc 5 -5 5\nr 4 0 4\nm 3 0 3\n";
    ac_calib_table *t = table(spec);
    ac_graph *g = relu_pool_graph(false);
    ac_err err = {0};
    ac_calib_table *s = ac_plan_share(g, t, &err);
    CHECK(s != NULL, "%s", err.msg);
    if (s) {
        /* backward: r <- m, c <- r (c becomes unsigned); forward: r, m <- c. */
        CHECK(entry(s, "c")->th == 3 && entry(s, "c")->min == 0, "c th %g min %g",
              entry(s, "c")->th, entry(s, "c")->min);
        CHECK(entry(s, "r")->th == 3, "r th %g", entry(s, "r")->th);
        CHECK(entry(s, "m")->th == 3, "m th %g", entry(s, "m")->th);
        CHECK(entry(s, "x")->th == 2, "x unchanged");
    }
    ac_calib_table_destroy(&s);
    ac_graph_destroy(&g);

    /* A graph output is a use: r has two uses, so m's range does not flow back. */
    g = relu_pool_graph(true);
    s = ac_plan_share(g, t, &err);
    if (s) {
        CHECK(entry(s, "r")->th == 4, "r th %g (graph output keeps its own)", entry(s, "r")->th);
        CHECK(entry(s, "c")->th == 4 && entry(s, "c")->min == 0, "c <- r: th %g",
              entry(s, "c")->th);
        CHECK(entry(s, "m")->th == 4, "m <- r forward: th %g", entry(s, "m")->th);
    }
    ac_calib_table_destroy(&s);
    ac_graph_destroy(&g);
    ac_calib_table_destroy(&t);
}

static void test_sharing_sign(void)
{
    /* LeakyReLU: the input takes the output's threshold but keeps its own sign;
     * forward then copies the whole range to the output. */
    ac_graph *g = ac_graph_new("leaky");
    int x = input(g, "x", 1, 2, 2), c = tensor(g, "c"), l = tensor(g, "l");
    conv(g, "conv", x, c, 1, 1, 1, 1, 1, 0.5f, 0.0f);
    ac_node *n = node(g, "leaky", "LeakyRelu", 1, &c, l);
    ac_node_add_attr(g, n, "alpha", AC_ATTR_FLOAT)->f = 0.1f;
    finish(g, 1, &x, 1, &l);
    ac_calib_table *t = table("x 1 -1 1\nc 5 -5 5\nl 3 -0.5 3\n");
    ac_err err = {0};
    ac_calib_table *s = ac_plan_share(g, t, &err);
    if (s) {
        CHECK(entry(s, "c")->th == 3 && entry(s, "c")->min == -5, "c th %g min %g",
              entry(s, "c")->th, entry(s, "c")->min);
        CHECK(entry(s, "l")->th == 3 && entry(s, "l")->min == -5, "l th %g min %g",
              entry(s, "l")->th, entry(s, "l")->min);
    }
    ac_plan *p = build(g, t, NULL);
    if (p) {
        CHECK(plan_of(p, "leaky")->mode == AC_MODE_INT8, "leaky int8");
        CHECK(plan_of(p, "leaky")->u.prelu.m[0] == 51 && plan_of(p, "leaky")->u.prelu.r == 9,
              "alpha 0.1 -> 51/512, got %d/2^%d", plan_of(p, "leaky")->u.prelu.m[0],
              plan_of(p, "leaky")->u.prelu.r);
        CHECK(tplan(p, "c")->is_signed && tplan(p, "l")->is_signed, "signed");
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&s);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);

    /* ReLU: the conv output takes the ReLU output's range, sign included. */
    g = relu_pool_graph(false);
    t = table("x 2 -2 2\nc 5 -5 5\nr 4 0 4\nm 4 0 4\n");
    p = build(g, t, NULL);
    if (p) {
        CHECK(!tplan(p, "c")->is_signed, "conv output is uint8 after sharing");
        CHECK(tplan(p, "c")->scale == 4.0 / 255.0, "scale %g", tplan(p, "c")->scale);
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

static ac_graph *concat_graph(bool a_is_output)
{
    ac_graph *g = ac_graph_new("concat");
    int x = input(g, "x", 1, 2, 2), a = tensor(g, "a"), b = tensor(g, "b"), y = tensor(g, "y");
    conv(g, "ca", x, a, 1, 1, 1, 1, 1, 0.5f, 0.0f);
    conv(g, "cb", x, b, 1, 1, 1, 1, 1, 0.25f, 0.0f);
    ac_node *n = node(g, "cat", "Concat", 2, (int[]){a, b}, y);
    attr_int(g, n, "axis", 1);
    int outs[2] = {y, a};
    finish(g, 1, &x, a_is_output ? 2 : 1, outs);
    return g;
}

static void test_sharing_concat(void)
{
    ac_calib_table *t = table("x 1 -1 1\na 2 -2 2\nb 6 0 6\ny 4 -1 4\n");
    ac_graph *g = concat_graph(false);
    ac_plan *p = build(g, t, NULL);
    if (p) {
        const ac_calib_entry *ea = entry(p->shared, "a"), *eb = entry(p->shared, "b");
        CHECK(ea->th == 4 && eb->th == 4 && eb->min == -1, "inputs take the concat range: %g %g",
              ea->th, eb->th);
        const ac_node_plan *np = plan_of(p, "cat");
        CHECK(np->kind == AC_Q8_CONCAT && np->u.concat.rq[0].m == 1 && np->u.concat.rq[0].r == 0 &&
                  np->u.concat.rq[1].m == 1,
              "concat is a plain copy");
    }
    ac_plan_destroy(&p);
    ac_graph_destroy(&g);

    /* a has a second use: no sharing, both inputs are requantized. */
    g = concat_graph(true);
    p = build(g, t, NULL);
    if (p) {
        CHECK(entry(p->shared, "a")->th == 2 && entry(p->shared, "b")->th == 6, "no sharing");
        const ac_node_plan *np = plan_of(p, "cat");
        CHECK(np->mode == AC_MODE_INT8, "concat int8");
        /* a: s 2/127 -> 4/127 = 0.5: m/2^r = 1/2 reduced; b: (6/255)/(4/127). */
        CHECK(np->u.concat.rq[0].m == 1 && np->u.concat.rq[0].r == 1, "a requant %d/2^%d",
              np->u.concat.rq[0].m, np->u.concat.rq[0].r);
        CHECK(!np->u.concat.rq[1].x_signed && np->u.concat.rq[1].y_signed, "b uint8 -> int8");
    }
    ac_plan_destroy(&p);
    ac_graph_destroy(&g);
    ac_calib_table_destroy(&t);
}

static void test_sharing_sigmoid_fixed(void)
{
    ac_graph *g = ac_graph_new("sigmoid");
    int x = input(g, "x", 1, 4, 4), c = tensor(g, "c"), s = tensor(g, "s"), m = tensor(g, "m");
    conv(g, "conv", x, c, 1, 1, 1, 1, 1, 0.5f, 0.0f);
    node(g, "sig", "Sigmoid", 1, &c, s);
    ac_node *mp = node(g, "pool", "MaxPool", 1, &s, m);
    attr_ints(g, mp, "kernel_shape", 2, (int64_t[]){2, 2});
    finish(g, 1, &x, 1, &m);
    ac_calib_table *t = table("x 1 -1 1\nc 3 -3 3\ns 0.9 0.1 0.9\nm 0.8 0.2 0.8\n");
    ac_plan *p = build(g, t, NULL);
    if (p) {
        CHECK(entry(p->shared, "s")->th == 1 && entry(p->shared, "s")->min == 0, "sigmoid [0,1]");
        CHECK(entry(p->shared, "m")->th == 1, "maxpool output <- sigmoid output");
        CHECK(entry(p->shared, "c")->th == 3, "sigmoid input keeps its range");
        const ac_node_plan *np = plan_of(p, "sig");
        CHECK(np->kind == AC_Q8_LUT, "sigmoid is a table");
        /* code 0 of a signed input: sigmoid(0) = 0.5 -> 127.5 -> 128 (half away). */
        CHECK(np->u.lut.table[128] == 128, "table[0] = %d", np->u.lut.table[128]);
        CHECK(np->u.lut.table[255] == ac_quantize(1.0 / (1.0 + exp(-3.0)), 1.0 / 255.0, false),
              "table[127]");
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

/* ---- fp32 fallbacks ----------------------------------------------------------------------- */

static void test_fallbacks(void)
{
    ac_graph *g = ac_graph_new("fallbacks");
    int x = input(g, "x", 1, 32, 32);
    int c1 = tensor(g, "c1"), c2 = tensor(g, "c2"), c3 = tensor(g, "c3");
    int p1 = tensor(g, "p1"), p2 = tensor(g, "p2"), g1 = tensor(g, "g1");
    int a1 = tensor(g, "a1"), a2 = tensor(g, "a2"), s1 = tensor(g, "s1");
    conv(g, "big_w", x, c1, 1, 1, 1, 1, 1, 600.0f, 0.0f);     /* 200*ratio 1 >= 127: r < 0 */
    conv(g, "stride16", x, c2, 1, 1, 1, 16, 1, 0.5f, 0.0f);   /* stride > 15 */
    conv(g, "ok", x, c3, 1, 1, 1, 1, 1, 0.1f, 0.0f);
    ac_node *n = node(g, "pool16", "MaxPool", 1, &x, p1);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){16, 16});
    n = node(g, "avg15", "AveragePool", 1, &x, p2);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){15, 15});
    node(g, "gap32", "GlobalAveragePool", 1, &x, g1);
    node(g, "add_bad", "Add", 2, (int[]){c3, x}, a1);     /* c3 th 1000 -> y th 1 */
    node(g, "add_ok", "Add", 2, (int[]){x, x}, a2);
    node(g, "sub", "Sub", 2, (int[]){x, x}, s1);
    int outs[] = {c1, c2, p1, p2, g1, a1, a2, s1};
    finish(g, 1, &x, 8, outs);
    ac_calib_table *t = table("x 1 -1 1\nc1 1 -1 1\nc2 1 -1 1\nc3 1000 -1000 1000\np1 1 -1 1\n"
                              "p2 1 -1 1\ng1 1 -1 1\na1 1 -1 1\na2 2 -2 2\ns1 1 -1 1\n");
    ac_plan *p = build(g, t, NULL);
    if (p) {
        CHECK(plan_of(p, "big_w")->why == AC_WHY_SHIFT, "r < 0 -> fp32 (%s)",
              plan_of(p, "big_w")->detail);
        CHECK(plan_of(p, "stride16")->why == AC_WHY_STRIDE, "stride 16 -> fp32");
        CHECK(plan_of(p, "ok")->mode == AC_MODE_INT8, "ok conv int8");
        CHECK(plan_of(p, "pool16")->why == AC_WHY_POOL_AREA, "area 256 -> fp32");
        CHECK(plan_of(p, "avg15")->mode == AC_MODE_INT8, "area 225 int8");
        CHECK(plan_of(p, "gap32")->why == AC_WHY_POOL_AREA, "global pool of 1024 -> fp32");
        CHECK(plan_of(p, "add_bad")->why == AC_WHY_ADD_MULT, "Add m out of range -> fp32 (%s)",
              plan_of(p, "add_bad")->detail);
        CHECK(plan_of(p, "add_ok")->mode == AC_MODE_INT8, "add int8");
        CHECK(plan_of(p, "sub")->why == AC_WHY_ADD_MULT, "Sub (coefficient -1) -> fp32");
        const ac_node_plan *ap = plan_of(p, "add_ok");
        CHECK(ap->u.add.m[0] == 64 && ap->u.add.r[0] == 7, "x + x with s_o = 2 s_i: %d/2^%d",
              ap->u.add.m[0], ap->u.add.r[0]);
        /* qtable: the fp32 layers' outputs. */
        const char *names[16];
        int nq = ac_plan_qtable(p, names, 16);
        CHECK(nq == p->n_fp32, "qtable lists %d of %d fp32 layers", nq, p->n_fp32);
        bool has_c1 = false;
        for (int i = 0; i < nq && i < 16; i++)
            has_c1 |= strcmp(names[i], "c1") == 0;
        CHECK(has_c1, "qtable names the fp32 conv's output");
        /* c1 is produced in fp32 and only a graph output: float only. */
        CHECK(!tplan(p, "c1")->has_codes && tplan(p, "c1")->has_float, "c1 float");
        CHECK(tplan(p, "c3")->has_codes && tplan(p, "c3")->has_float, "c3 codes + dequantized");
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

static void test_softmax(void)
{
    /* Softmax as a graph output stays fp32 and is not quantized (§10.9); one that
     * feeds an int8 layer is quantized as [0, 1] uint8. */
    ac_graph *g = ac_graph_new("softmax");
    int x = input(g, "x", 4, 1, 1), c = tensor(g, "c"), f = tensor(g, "f"), s = tensor(g, "s");
    int s2 = tensor(g, "s2"), r = tensor(g, "r"), rs = tensor(g, "rs");
    conv(g, "conv", x, c, 4, 4, 1, 1, 1, 0.5f, 0.0f);
    node(g, "flat", "Flatten", 1, &c, f);
    node(g, "soft", "Softmax", 1, &f, s);
    node(g, "soft2", "Softmax", 1, &f, s2);
    node(g, "relu", "Relu", 1, &s2, r);
    int64_t sd[1] = {4};
    float sc[4] = {1, 1, 2, 2};
    int scales = constant(g, "scales", 1, sd, sc);
    ac_node *rz = node(g, "resize", "Resize", 3, (int[]){c, -1, scales}, rs);
    attr_string(g, rz, "mode", "linear");
    int outs[3] = {s, r, rs};
    finish(g, 1, &x, 3, outs);
    ac_calib_table *t = table("x 1 -1 1\nc 2 -2 2\nf 2 -2 2\ns 0.7 0 0.7\ns2 0.7 0 0.7\n"
                              "r 0.5 0 0.5\nrs 2 -2 2\n");
    ac_plan *p = build(g, t, NULL);
    if (p) {
        CHECK(plan_of(p, "soft")->why == AC_WHY_NO_INT8_FORM, "softmax fp32");
        CHECK(!tplan(p, "s")->has_codes, "graph-output softmax is not quantized");
        CHECK(entry(p->shared, "s")->th == 1 && entry(p->shared, "s")->max == 1, "fixed [0,1]");
        CHECK(tplan(p, "s2")->has_codes && !tplan(p, "s2")->is_signed &&
                  tplan(p, "s2")->scale == 1.0 / 255.0,
              "softmax feeding int8: uint8 scale 1/255");
        CHECK(plan_of(p, "relu")->mode == AC_MODE_INT8, "relu int8");
        CHECK(plan_of(p, "resize")->why == AC_WHY_NO_INT8_FORM, "bilinear resize fp32");
        CHECK(tplan(p, "c")->has_codes && tplan(p, "c")->has_float, "c dequantized for resize");
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

/* ---- options ---------------------------------------------------------------------------------- */

static void test_options(void)
{
    ac_graph *g = ac_graph_new("options");
    int x = input(g, "x", 4, 4, 4), c1 = tensor(g, "c1"), d1 = tensor(g, "d1"),
        c2 = tensor(g, "c2");
    conv(g, "first", x, c1, 4, 4, 1, 1, 1, 0.5f, 0.0f);
    conv(g, "dw", c1, d1, 4, 4, 3, 1, 4, 0.5f, 0.0f);
    conv(g, "pw", d1, c2, 4, 4, 1, 1, 1, 0.5f, 0.0f);
    finish(g, 1, &x, 1, &c2);
    ac_calib_table *t = table("x 1 -1 1\nc1 2 -2 2\nd1 4 -4 4\nc2 8 -8 8\n");
    ac_quant_options o = {0};
    ac_plan *p = build(g, t, &o);
    if (p)
        CHECK(p->n_int8 == 3 && p->n_fp32 == 0, "all int8 by default");
    ac_plan_destroy(&p);
    o.accuracy_opt = true;
    p = build(g, t, &o);
    if (p) {
        CHECK(plan_of(p, "dw")->why == AC_WHY_ACCURACY_OPT, "depthwise fp32");
        CHECK(plan_of(p, "first")->mode == AC_MODE_INT8 && plan_of(p, "pw")->mode == AC_MODE_INT8,
              "others int8");
        CHECK(tplan(p, "c1")->has_float && tplan(p, "d1")->has_codes, "boundaries");
    }
    ac_plan_destroy(&p);
    o.accuracy_opt = false;
    o.first_conv_fp32 = true;
    p = build(g, t, &o);
    if (p) {
        CHECK(plan_of(p, "first")->why == AC_WHY_FIRST_CONV, "first conv fp32");
        CHECK(p->n_fp32 == 1, "only the first");
        CHECK(!tplan(p, "x")->has_codes, "the input is not quantized when only fp32 reads it");
    }
    ac_plan_destroy(&p);
    o.first_conv_fp32 = false;
    const char *names[2] = {"pw", "d1"}; /* a node name and a layer output name */
    o.fp32_layers = names;
    o.n_fp32_layers = 2;
    p = build(g, t, &o);
    if (p) {
        CHECK(plan_of(p, "pw")->why == AC_WHY_FORCED && plan_of(p, "dw")->why == AC_WHY_FORCED,
              "forced by name and by output name");
        const char *q[4];
        CHECK(ac_plan_qtable(p, q, 4) == 2 && strcmp(q[0], "d1") == 0 && strcmp(q[1], "c2") == 0,
              "qtable d1, c2");
    }
    ac_plan_destroy(&p);
    const char *bad[1] = {"no_such_layer"};
    o.fp32_layers = bad;
    o.n_fp32_layers = 1;
    ac_err err = {0};
    p = ac_plan_build(g, t, &o, &err);
    CHECK(p == NULL && strstr(err.msg, "'no_such_layer'"), "unknown layer: %s", err.msg);
    ac_plan_destroy(&p);

    /* A tensor an int8 layer needs must be in the table. */
    ac_calib_table *partial = table("x 1 -1 1\nc1 2 -2 2\nc2 8 -8 8\n");
    o.n_fp32_layers = 0;
    p = ac_plan_build(g, partial, &o, &err);
    CHECK(p == NULL && strstr(err.msg, "'d1'"), "missing threshold named: %s", err.msg);
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&partial);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

/* ---- calibration table reading ------------------------------------------------------------ */

static int parse_err(const char *text, ac_err *err)
{
    ac_calib_table *t = NULL;
    int rc = ac_calib_table_parse(text, strlen(text), "calib.txt", &t, err);
    ac_calib_table_destroy(&t);
    return rc;
}

static void test_calib_table(void)
{
    ac_err err = {0};
    CHECK(parse_err("x 1 -1 1\nbad line\n", &err) && strstr(err.msg, "calib.txt line 2"),
          "bad line: %s", err.msg);
    CHECK(parse_err("x 1 -1 1 7\n", &err) && strstr(err.msg, "line 1"), "5 fields: %s", err.msg);
    CHECK(parse_err("x 1 -1 abc\n", &err) && strstr(err.msg, "line 1"), "bad number: %s", err.msg);
    CHECK(parse_err("# c\nx 0 -1 1\n", &err) && strstr(err.msg, "line 2") &&
              strstr(err.msg, "threshold"),
          "threshold 0: %s", err.msg);
    CHECK(parse_err("x -2 -1 1\n", &err), "negative threshold");
    CHECK(parse_err("x 1 -1 1\nx 2 -1 1\n", &err) && strstr(err.msg, "twice"), "dup: %s", err.msg);
    ac_calib_table *t = NULL;
    const char *ok = "# genetated time: now\n###\n# op_name threshold min max\n\nx 1.5 -1 1.5\r\n"
                     "y 2.0000000 0.0000000 2.0000000\n#int4_th\nx 7 -7 7\nnot a line at all\n";
    CHECK(ac_calib_table_parse(ok, strlen(ok), "calib.txt", &t, &err) == 0, "%s", err.msg);
    if (t) {
        CHECK(ac_calib_table_size(t) == 2, "section marker ends the int8 section: %zu",
              ac_calib_table_size(t));
        CHECK(ac_calib_table_find(t, "x")->th == 1.5, "x th");
        const char *path = "plan_selftest_calib.txt";
        CHECK(ac_calib_table_write(t, path, "test\ntwo lines", &err) == 0, "%s", err.msg);
        ac_calib_table *r = NULL;
        CHECK(ac_calib_table_read(path, &r, &err) == 0, "%s", err.msg);
        if (r)
            CHECK(ac_calib_table_size(r) == 2 && ac_calib_table_find(r, "y")->th == 2.0 &&
                      ac_calib_table_find(r, "x")->min == -1.0,
                  "round trip");
        ac_calib_table_destroy(&r);
        remove(path);
    }
    ac_calib_table_destroy(&t);
    ac_qtable q;
    const char *qt = "# fp32 layers\nconv1 F32\n\nfc F32\n";
    CHECK(ac_qtable_parse(qt, strlen(qt), "q.txt", &q, &err) == 0 && q.n == 2 &&
              strcmp(q.names[1], "fc") == 0,
          "qtable parse");
    ac_qtable_free(&q);
    CHECK(ac_qtable_parse("conv1 INT8\n", 11, "q.txt", &q, &err) && strstr(err.msg, "line 1"),
          "qtable mode: %s", err.msg);
}

/* ---- executor: one layer by hand ------------------------------------------------------------ */

static void test_exec_by_hand(void)
{
    ac_graph *g = ac_graph_new("hand");
    int x = input(g, "x", 1, 1, 4), y = tensor(g, "y");
    int64_t wd[4] = {1, 1, 1, 1}, bd[1] = {1};
    float w = 0.5f, b = 0.1f;
    int W = constant(g, "w", 4, wd, &w), B = constant(g, "b", 1, bd, &b);
    node(g, "conv", "Conv", 3, (int[]){x, W, B}, y);
    finish(g, 1, &x, 1, &y);
    ac_calib_table *t = table("x 1.27 -1.27 1.27\ny 1.27 -1.27 1.27\n");
    ac_plan *p = build(g, t, NULL);
    ac_err err = {0};
    ac_qexec *e = p ? ac_qexec_new(p, &err) : NULL;
    if (e) {
        /* scale 0.01 both sides: r = 7 (0.5*128 = 64 < 127), w = 64, b = 1280.
         * x codes 50, -50, 100, 1 (1.3), -1 (-0.5 rounds away). */
        float xin[4] = {0.5f, -0.5f, 1.0f, 0.013f};
        const void *in[1] = {xin};
        CHECK(ac_qexec_run(e, in, &err) == 0, "%s", err.msg);
        const int8_t *xc = ac_qexec_tensor_codes(e, x), *yc = ac_qexec_tensor_codes(e, y);
        CHECK(xc[0] == 50 && xc[1] == -50 && xc[2] == 100 && xc[3] == 1, "x codes");
        /* (3200+1280)>>7 = 35, (-3200+1280) = -1920 -> -15, 7680 -> 60, 1344 = 10.5 -> 11. */
        CHECK(yc[0] == 35 && yc[1] == -15 && yc[2] == 60 && yc[3] == 11, "y codes %d %d %d %d",
              yc[0], yc[1], yc[2], yc[3]);
        const float *yf = ac_qexec_tensor_float(e, y);
        CHECK(fabsf(yf[3] - 0.11f) < 1e-6f, "dequantized %g", yf[3]);
        ac_dtype dt;
        CHECK(ac_qexec_tensor_dump(e, y, &dt) == yc && dt == AC_DT_I8, "dump gives codes");
    }
    /* Quantization rounds half away from zero and clamps (scale 1/64 makes the ties exact). */
    float v[6] = {-0.5f / 64, 0.5f / 64, 1.5f / 64, -1.5f / 64, 2.0f, -3.0f};
    int8_t q[6];
    uint8_t u[6];
    ac_quantize_q8__ref(v, q, 6, 1.0 / 64, true, 0, 1);
    ac_quantize_q8__ref(v, u, 6, 1.0 / 64, false, 0, 1);
    CHECK(q[0] == -1 && q[1] == 1 && q[2] == 2 && q[3] == -2 && q[4] == 127 && q[5] == -128,
          "int8 quantize: %d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5]);
    CHECK(u[0] == 0 && u[1] == 1 && u[4] == 128 && u[5] == 0, "uint8 quantize");
    ac_qexec_destroy(&e);
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&t);
    ac_graph_destroy(&g);
}

/* ---- whole networks ----------------------------------------------------------------------------- */

#define FM_BATCH 50
#define FM_CALIB 200
#define FM_TEST 1000

static bool same_buffers(const ac_graph *g, ac_qexec *a, ac_qexec *b)
{
    for (int t = 0; t < g->ntensors; t++) {
        const ac_tensor *ts = &g->tensors[t];
        if (ac_tensor_is_const(ts))
            continue;
        const void *qa = ac_qexec_tensor_codes(a, t), *qb = ac_qexec_tensor_codes(b, t);
        if ((qa == NULL) != (qb == NULL) ||
            (qa && memcmp(qa, qb, (size_t)ac_tensor_numel(ts)) != 0))
            return false;
        const void *fa = ac_qexec_tensor_float(a, t), *fb = ac_qexec_tensor_float(b, t);
        if ((fa == NULL) != (fb == NULL) || (fa && memcmp(fa, fb, ac_tensor_bytes(ts)) != 0))
            return false;
    }
    return true;
}

static void thread_invariance(const ac_graph *g, const ac_plan *p, const float *x,
                              const char *what)
{
    ac_err err = {0};
    ac_qexec *e[3] = {0};
    for (int k = 0; k < 3; k++) {
        e[k] = ac_qexec_new(p, &err);
        CHECK(e[k] != NULL, "%s", err.msg);
        if (!e[k])
            goto done;
        ac_qexec_set_threads(e[k], k + 1);
        const void *in[1] = {x};
        CHECK(ac_qexec_run(e[k], in, &err) == 0, "%s", err.msg);
    }
    CHECK(same_buffers(g, e[0], e[1]) && same_buffers(g, e[0], e[2]),
          "%s: every tensor identical with 1, 2 and 3 threads", what);
done:
    for (int k = 0; k < 3; k++)
        ac_qexec_destroy(&e[k]);
}

/* Executors with shared activation buffers (graph/ac_mem_plan.h) give the
 * graph outputs bit for bit, on several batches in a row (stale values in
 * reused memory must not leak into a later run), in less memory. */
static void shared_buffers_same_outputs(const ac_graph *g, const ac_plan *p, const float *x, int nbatch,
                                        const char *what)
{
    ac_err err = {0};
    ac_qexec *q = ac_qexec_new(p, &err), *qs = ac_qexec_new_shared(p, &err);
    ac_exec *e = ac_exec_new(g, &err), *es = ac_exec_new_shared(g, &err);
    CHECK(q && qs && e && es, "%s: executors: %s", what, err.msg);
    size_t per = (size_t)ac_tensor_numel(&g->tensors[g->inputs[0]]);
    for (int b = 0; q && qs && e && es && b < nbatch; b++) {
        const void *in[1] = {x + (size_t)b * per};
        CHECK(ac_qexec_run(q, in, &err) == 0 && ac_qexec_run(qs, in, &err) == 0 && ac_exec_run(e, in, &err) == 0 &&
                  ac_exec_run(es, in, &err) == 0,
              "%s", err.msg);
        for (int o = 0; o < g->noutputs; o++) {
            int t = g->outputs[o];
            size_t bytes = ac_tensor_bytes(&g->tensors[t]);
            CHECK(!memcmp(ac_qexec_tensor_float(q, t), ac_qexec_tensor_float(qs, t), bytes) &&
                      !memcmp(ac_exec_tensor(e, t), ac_exec_tensor(es, t), bytes),
                  "%s batch %d: shared-buffer outputs differ", what, b);
        }
    }
    if (q && qs && e && es) {
        CHECK(ac_qexec_activation_bytes(qs) < ac_qexec_activation_bytes(q) &&
                  ac_exec_activation_bytes(es) < ac_exec_activation_bytes(e),
              "%s: shared buffers use less memory", what);
        printf("  [activations: int8 %zu -> %zu KiB, fp32 %zu -> %zu KiB shared]", ac_qexec_activation_bytes(q) >> 10,
               ac_qexec_activation_bytes(qs) >> 10, ac_exec_activation_bytes(e) >> 10,
               ac_exec_activation_bytes(es) >> 10);
    }
    ac_qexec_destroy(&q);
    ac_qexec_destroy(&qs);
    ac_exec_destroy(&e);
    ac_exec_destroy(&es);
}

/* A plan with every layer forced to fp32 must reproduce the fp32 executor exactly. */
static void all_fp32_equals_fp32(const ac_graph *g, const ac_calib_table *t, const float *x)
{
    const char **names = malloc(sizeof(char *) * (size_t)g->nnodes);
    for (int i = 0; i < g->nnodes; i++)
        names[i] = g->nodes[i].name;
    ac_quant_options o = {.fp32_layers = names, .n_fp32_layers = g->nnodes};
    ac_plan *p = build(g, t, &o);
    ac_err err = {0};
    ac_qexec *q = p ? ac_qexec_new(p, &err) : NULL;
    ac_exec *e = ac_exec_new(g, &err);
    if (q && e) {
        const void *in[1] = {x};
        ac_qexec_run(q, in, &err);
        ac_exec_run(e, in, &err);
        int out = g->outputs[0];
        CHECK(memcmp(ac_qexec_tensor_float(q, out), ac_exec_tensor(e, out),
                     ac_tensor_bytes(&g->tensors[out])) == 0,
              "all-fp32 plan = fp32 executor");
    }
    ac_exec_destroy(&e);
    ac_qexec_destroy(&q);
    ac_plan_destroy(&p);
    free(names);
}

static void test_fmnist(const char *repo, const char *zoo)
{
    const char *img_tr = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    const char *lab_tr = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
    const char *img_te = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lab_te = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    ac_err err = {0};
    int32_t *lcal = NULL, *lte = NULL;
    float *xcal = qt_fmnist(img_tr, lab_tr, 0, FM_CALIB, &lcal, &err);
    float *xte = xcal ? qt_fmnist(img_te, lab_te, 0, FM_TEST, &lte, &err) : NULL;
    if (!xcal || !xte) {
        printf("SKIP Fashion-MNIST networks: %s\n", err.msg);
        goto done;
    }
    const char *models[3] = {"fmnist_plain.onnx", "fmnist_resnet.onnx", "fmnist_mbv2.onnx"};
    for (int m = 0; m < 3; m++) {
        char path[4096];
        if (!qt_find_fmnist_model(repo, zoo, models[m], path, sizeof path)) {
            printf("SKIP %s: not in %s/models nor %s/fmnist\n", models[m], repo, zoo);
            continue;
        }
        char shape[64];
        snprintf(shape, sizeof shape, "(%d,1,28,28)", FM_BATCH);
        ac_graph *g = qt_load(path, shape, &err);
        CHECK(g != NULL, "%s: %s", path, err.msg);
        if (!g)
            continue;
        ac_calib_table *t = qt_absmax_table(g, xcal, FM_CALIB / FM_BATCH, &err);
        CHECK(t != NULL, "%s", err.msg);
        int64_t f = qt_top1(g, NULL, xte, lte, FM_TEST / FM_BATCH, 0, 0, &err);
        double fp32 = 100.0 * (double)f / FM_TEST;
        printf("%-20s fp32 top-1 %.1f%%", models[m], fp32);
        for (int pc = 0; t && pc < 2; pc++) {
            ac_quant_options o = {.per_channel = pc == 1};
            ac_plan *p = build(g, t, &o);
            if (!p)
                continue;
            int64_t q = qt_top1(g, p, xte, lte, FM_TEST / FM_BATCH, 0, 0, &err);
            CHECK(q >= 0, "%s", err.msg);
            double int8 = 100.0 * (double)q / FM_TEST;
            printf("  int8 %s %.1f%% (%d int8 / %d fp32 layers)", pc ? "per-channel" : "per-tensor",
                   int8, p->n_int8, p->n_fp32);
            CHECK(p->n_fp32 == 0, "%s: every layer has an int8 form", models[m]);
            CHECK(int8 >= fp32 - 3.0, "%s %s: int8 %.1f%% vs fp32 %.1f%%", models[m],
                  pc ? "per-channel" : "per-tensor", int8, fp32);
            thread_invariance(g, p, xte, models[m]);
            shared_buffers_same_outputs(g, p, xte, 3, models[m]);
            ac_plan_destroy(&p);
        }
        printf("\n");
        if (t && m == 0)
            all_fp32_equals_fp32(g, t, xte);
        ac_calib_table_destroy(&t);
        ac_graph_destroy(&g);
    }
done:
    free(xcal);
    free(xte);
    free(lcal);
    free(lte);
}

/* ---- spec §11: MobileNetV2 per-tensor vs per-channel (long) ---------------------------------- */

#define MB_CALIB 100
#define MB_TEST 200
#define MB_TEST_FIRST 300 /* zoo convention: the first 300 lines are calibration images */

static float *read_images(ac_dataset *ds, int64_t first, int64_t n, int32_t *labels, ac_err *err)
{
    size_t elems = ac_dataset_sample_elems(ds, 0);
    float *x = malloc(sizeof(float) * elems * (size_t)n);
    if (!x) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    if (ac_dataset_read(ds, 0, first, n, x, err)) {
        free(x);
        return NULL;
    }
    for (int64_t i = 0; labels && i < n; i++)
        labels[i] = ac_labels_class(ac_dataset_labels(ds), first + i);
    return x;
}

static int test_mobilenet_v2(const char *zoo)
{
    char model[4096], list[4096];
    snprintf(model, sizeof model, "%s/imagenet/mobilenet_v2_1.0_224.onnx", zoo);
    snprintf(list, sizeof list, "%s/imagenet/val1300/dataset_1001.txt", zoo);
    FILE *f = fopen(model, "rb");
    if (!f) {
        printf("SKIP MobileNetV2: %s is absent\n", model);
        return 77;
    }
    fclose(f);
    ac_err err = {0};
    ac_dataset_opts o = {.preprocess = "resize_h=224,resize_w=224;mean_value=128:128:128,"
                                       "scale=0.0078125,bgr2rgb=True",
                         .channels = 3, .height = 224, .width = 224};
    ac_dataset *ds = ac_dataset_open(list, &o, &err);
    CHECK(ds != NULL, "%s", err.msg);
    ac_graph *g = ds ? qt_load(model, "(1,3,224,224)", &err) : NULL;
    CHECK(!ds || g != NULL, "%s", err.msg);
    int32_t labels[MB_TEST];
    float *xcal = g ? read_images(ds, 0, MB_CALIB, NULL, &err) : NULL;
    float *xte = xcal ? read_images(ds, MB_TEST_FIRST, MB_TEST, labels, &err) : NULL;
    CHECK(!g || xte != NULL, "%s", err.msg);
    ac_calib_table *t = xte ? qt_absmax_table(g, xcal, MB_CALIB, &err) : NULL;
    if (t) {
        int64_t c = qt_top1(g, NULL, xte, labels, MB_TEST, 0, 0, &err);
        double fp32 = 100.0 * (double)c / MB_TEST;
        printf("MobileNetV2 (%d calibration / %d test images, abs-max): fp32 top-1 %.1f%%\n",
               MB_CALIB, MB_TEST, fp32);
        const char *what[3] = {"per-tensor", "per-channel", "per-tensor, depthwise fp32"};
        double top1[3];
        for (int k = 0; k < 3; k++) {
            ac_quant_options qo = {.per_channel = k == 1, .accuracy_opt = k == 2};
            ac_plan *p = build(g, t, &qo);
            top1[k] = p ? 100.0 * (double)qt_top1(g, p, xte, labels, MB_TEST, 0, 0, &err) / MB_TEST
                        : -1.0;
            printf("  int8 %-28s top-1 %.1f%% (%d int8 / %d fp32 layers)\n", what[k], top1[k],
                   p ? p->n_int8 : 0, p ? p->n_fp32 : 0);
            fflush(stdout);
            ac_plan_destroy(&p);
        }
        /* Spec §11: per-tensor collapses, per-channel recovers. */
        CHECK(top1[0] < fp32 - 30.0, "per-tensor %.1f%% should collapse (fp32 %.1f%%)", top1[0],
              fp32);
        CHECK(top1[1] > fp32 - 5.0, "per-channel %.1f%% should be close to fp32 %.1f%%", top1[1],
              fp32);
        CHECK(top1[2] > top1[0] + 30.0, "depthwise in fp32 %.1f%% recovers most", top1[2]);
    }
    ac_calib_table_destroy(&t);
    free(xcal);
    free(xte);
    ac_graph_destroy(&g);
    ac_dataset_destroy(&ds);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *repo = argc > 1 ? argv[1] : ".";
    const char *zoo = argc > 2 ? argv[2] : "../shared/zoo";
    if (argc > 3 && strcmp(argv[3], "--long") == 0)
        return test_mobilenet_v2(zoo);
    test_sharing_backward_forward();
    test_sharing_sign();
    test_sharing_concat();
    test_sharing_sigmoid_fixed();
    test_fallbacks();
    test_softmax();
    test_options();
    test_calib_table();
    test_exec_by_hand();
    test_fmnist(repo, zoo);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("plan_selftest: all checks passed\n");
    return 0;
}
