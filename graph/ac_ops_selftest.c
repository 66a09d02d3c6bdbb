/* Selftest of graph/ac_ops.c: builds tiny graphs with the IR functions, runs
 * toposort + shape inference and checks inferred shapes, constant folding
 * (Shape/Gather/Unsqueeze/Concat chains, int64 arithmetic), opset-dependent
 * semantics, error messages for bad attributes, and that random garbage
 * (attributes of any type and value, odd shapes) never crashes. */
#include "ac_exec.h"
#include "ac_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ac_check.h"

/* ---- graph building helpers ---------------------------------------------------------- */

static ac_graph *new_graph(int opset)
{
    ac_graph *g = ac_graph_new("selftest");
    g->opset = opset;
    return g;
}

static int input(ac_graph *g, const char *name, ac_dtype dt, int ndim, const int64_t *dims)
{
    int t = ac_graph_add_tensor(g, name, dt, ndim, dims);
    g->tensors[t].is_input = true;
    return t;
}

static int const_i64(ac_graph *g, const char *name, int n, const int64_t *v)
{
    int64_t d = n;
    int t = ac_graph_add_tensor(g, name, AC_DT_I64, 1, &d);
    ac_graph_set_const(g, t, v, sizeof(int64_t) * (size_t)n, NULL);
    return t;
}

static int const_f32(ac_graph *g, const char *name, int ndim, const int64_t *dims, const float *v)
{
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, ndim, dims);
    ac_graph_set_const(g, t, v, ac_tensor_bytes(&g->tensors[t]), NULL);
    return t;
}

static int value(ac_graph *g, const char *name)
{
    return ac_graph_add_tensor(g, name, AC_DT_UNDEFINED, -1, NULL);
}

static ac_node *node(ac_graph *g, const char *name, ac_op op, int nin, const int *ins, int nout,
                     const int *outs)
{
    int i = ac_graph_add_node(g, name, ac_op_name(op), op, nin, ins, nout, outs);
    return &g->nodes[i];
}

static void attr_i(ac_graph *g, ac_node *n, const char *name, int64_t v)
{
    ac_node_add_attr(g, n, name, AC_ATTR_INT)->i = v;
}

static void attr_f(ac_graph *g, ac_node *n, const char *name, float v)
{
    ac_node_add_attr(g, n, name, AC_ATTR_FLOAT)->f = v;
}

static void attr_s(ac_graph *g, ac_node *n, const char *name, const char *v)
{
    ac_node_add_attr(g, n, name, AC_ATTR_STRING)->s = ac_arena_strdup(g->arena, v);
}

static void attr_ints(ac_graph *g, ac_node *n, const char *name, int cnt, const int64_t *v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_INTS);
    a->n = cnt;
    a->ints = ac_arena_memdup(g->arena, v, sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
}

static void attr_floats(ac_graph *g, ac_node *n, const char *name, int cnt, const float *v)
{
    ac_attr *a = ac_node_add_attr(g, n, name, AC_ATTR_FLOATS);
    a->n = cnt;
    a->floats = ac_arena_memdup(g->arena, v, sizeof(float) * (size_t)(cnt ? cnt : 1));
}

/* Sets graph inputs (tensors marked is_input) and the given outputs, sorts, infers. */
static int finish(ac_graph *g, int nout, const int *outs, ac_err *err)
{
    int ins[64], nin = 0;
    for (int t = 0; t < g->ntensors && nin < 64; t++)
        if (g->tensors[t].is_input)
            ins[nin++] = t;
    ac_graph_set_io(g, nin, ins, nout, outs);
    ac_err_clear(err);
    int rc = ac_graph_toposort(g, err);
    if (!rc)
        rc = ac_graph_infer_shapes(g, err);
    return rc;
}

static int dims_are(const ac_tensor *t, int ndim, const int64_t *dims)
{
    if (t->ndim != ndim)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (t->dims[d] != dims[d])
            return 0;
    return 1;
}

#define CHECK_DIMS(g, t, ...)                                                                   \
    do {                                                                                       \
        const int64_t want_[] = {__VA_ARGS__};                                                 \
        if (!dims_are(&(g)->tensors[t], (int)(sizeof want_ / sizeof want_[0]), want_)) {       \
            fprintf(stderr, "%s:%d: tensor '%s' has rank %d dims [%lld,%lld,%lld,%lld]\n",     \
                    __FILE__, __LINE__, (g)->tensors[t].name, (g)->tensors[t].ndim,            \
                    (long long)(g)->tensors[t].dims[0], (long long)(g)->tensors[t].dims[1],    \
                    (long long)(g)->tensors[t].dims[2], (long long)(g)->tensors[t].dims[3]);   \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

#define CHECK_ERR(rc, err, text)                                                               \
    do {                                                                                       \
        if (!(rc) || !strstr((err).msg, text)) {                                               \
            fprintf(stderr, "%s:%d: expected an error containing \"%s\", got rc=%d \"%s\"\n",  \
                    __FILE__, __LINE__, text, rc, (err).msg);                                  \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

#define CHECK_OK(rc, err)                                                                      \
    do {                                                                                       \
        if (rc) {                                                                              \
            fprintf(stderr, "%s:%d: unexpected error: %s\n", __FILE__, __LINE__, (err).msg);   \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------ */

static void test_conv_shapes(void)
{
    ac_err err;
    ac_graph *g = new_graph(13);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 3, 8, 7});
    int w = input(g, "w", AC_DT_F32, 4, (int64_t[]){4, 3, 3, 3});
    int y1 = value(g, "y1"), y2 = value(g, "y2"), y3 = value(g, "y3");
    ac_node *n = node(g, "conv1", AC_OP_CONV, 2, (int[]){x, w}, 1, &y1);
    attr_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    attr_ints(g, n, "strides", 2, (int64_t[]){2, 2});
    n = node(g, "conv_same", AC_OP_CONV, 2, (int[]){x, w}, 1, &y2);
    attr_s(g, n, "auto_pad", "SAME_UPPER");
    attr_ints(g, n, "strides", 2, (int64_t[]){2, 2});
    n = node(g, "conv_dil", AC_OP_CONV, 2, (int[]){x, w}, 1, &y3);
    attr_ints(g, n, "dilations", 2, (int64_t[]){2, 1});
    int rc = finish(g, 3, (int[]){y1, y2, y3}, &err);
    CHECK_OK(rc, err);
    CHECK_DIMS(g, y1, 1, 4, 4, 4);
    CHECK_DIMS(g, y2, 1, 4, 4, 4);
    CHECK_DIMS(g, y3, 1, 4, 4, 5);
    CHECK(ac_node_macs(g, &g->nodes[0]) == 1 * 4 * 4 * 4 * 27);
    ac_graph_destroy(&g);

    /* 1-D conv, depthwise */
    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 3, (int64_t[]){2, 6, 10});
    w = input(g, "w", AC_DT_F32, 3, (int64_t[]){6, 1, 3});
    y1 = value(g, "y");
    n = node(g, "dw", AC_OP_CONV, 2, (int[]){x, w}, 1, &y1);
    attr_i(g, n, "group", 6);
    rc = finish(g, 1, &y1, &err);
    CHECK_OK(rc, err);
    CHECK_DIMS(g, y1, 2, 6, 8);
    ac_graph_destroy(&g);
}

/* One Conv node with the given extra attribute setup; returns the infer status. */
static int conv_with(int group, int64_t cin, const char *attr, int cnt, const int64_t *v,
                     ac_err *err)
{
    ac_graph *g = new_graph(13);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, cin, 8, 8});
    int w = input(g, "w", AC_DT_F32, 4, (int64_t[]){4, cin / (group ? group : 1), 3, 3});
    int y = value(g, "y");
    ac_node *n = node(g, "conv1", AC_OP_CONV, 2, (int[]){x, w}, 1, &y);
    attr_i(g, n, "group", group);
    if (attr)
        attr_ints(g, n, attr, cnt, v);
    int rc = finish(g, 1, &y, err);
    ac_graph_destroy(&g);
    return rc;
}

static void test_conv_errors(void)
{
    ac_err err;
    int rc = conv_with(2, 3, NULL, 0, NULL, &err);
    CHECK_ERR(rc, err, "node 'conv1' (Conv, opset 13): input channels 3 not divisible by group 2");
    rc = conv_with(1, 3, "strides", 2, (int64_t[]){0, 1}, &err);
    CHECK_ERR(rc, err, "attribute 'strides' value 0 is out of range");
    rc = conv_with(1, 3, "strides", 3, (int64_t[]){1, 1, 1}, &err);
    CHECK_ERR(rc, err, "attribute 'strides' must have 2 values, got 3");
    rc = conv_with(1, 3, "pads", 4, (int64_t[]){-1, 0, 0, 0}, &err);
    CHECK_ERR(rc, err, "attribute 'pads' value -1 is out of range");
    rc = conv_with(1, 3, "dilations", 2, (int64_t[]){INT64_MAX, 1}, &err);
    CHECK_ERR(rc, err, "attribute 'dilations'");
    rc = conv_with(1, 3, "dilations", 2, (int64_t[]){5, 1}, &err);
    CHECK_ERR(rc, err, "exceeds padded input size");
    rc = conv_with(1, 3, "kernel_shape", 2, (int64_t[]){5, 5}, &err);
    CHECK_ERR(rc, err, "differs from the weight's");
    rc = conv_with(0, 3, NULL, 0, NULL, &err);
    CHECK_ERR(rc, err, "attribute 'group' must be >= 1, got 0");

    /* wrong attribute type, unknown auto_pad, missing input */
    ac_graph *g = new_graph(11);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 3, 8, 8});
    int w = input(g, "w", AC_DT_F32, 4, (int64_t[]){4, 3, 3, 3});
    int y = value(g, "y");
    ac_node *n = node(g, "c", AC_OP_CONV, 2, (int[]){x, w}, 1, &y);
    attr_s(g, n, "auto_pad", "SAME_MIDDLE");
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "node 'c' (Conv, opset 11): attribute 'auto_pad' value 'SAME_MIDDLE'");
    ac_graph_destroy(&g);

    g = new_graph(11);
    x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 3, 8, 8});
    y = value(g, "y");
    n = node(g, "c", AC_OP_CONV, 1, (int[]){x}, 1, &y);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "expects 2 to 3 inputs, got 1");
    ac_graph_destroy(&g);
}

/* x [1,3,128,128] -> Shape -> Gather(0) -> Unsqueeze(0) -> Concat([-1]) -> Reshape(x):
 * the whole shape chain folds; only the Reshape stays, with a constant shape. */
static void test_fold_chain(int opset)
{
    ac_err err;
    ac_graph *g = new_graph(opset);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 3, 128, 128});
    int s = value(g, "s"), b = value(g, "b"), bu = value(g, "bu"), sh = value(g, "sh");
    int y = value(g, "y");
    int i0 = const_i64(g, "zero", 1, (int64_t[]){0});
    g->tensors[i0].ndim = 0; /* a scalar index: Gather drops the axis */
    int m1 = const_i64(g, "minus1", 1, (int64_t[]){-1});
    node(g, "shape", AC_OP_SHAPE, 1, &x, 1, &s);
    node(g, "gather", AC_OP_GATHER, 2, (int[]){s, i0}, 1, &b);
    if (opset >= 13) {
        int ax = const_i64(g, "axes", 1, (int64_t[]){0});
        node(g, "unsq", AC_OP_UNSQUEEZE, 2, (int[]){b, ax}, 1, &bu);
    } else {
        ac_node *n = node(g, "unsq", AC_OP_UNSQUEEZE, 1, &b, 1, &bu);
        attr_ints(g, n, "axes", 1, (int64_t[]){0});
    }
    ac_node *c = node(g, "concat", AC_OP_CONCAT, 2, (int[]){bu, m1}, 1, &sh);
    attr_i(g, c, "axis", 0);
    node(g, "reshape", AC_OP_RESHAPE, 2, (int[]){x, sh}, 1, &y);
    int rc = finish(g, 1, &y, &err);
    CHECK_OK(rc, err);
    CHECK(g->nnodes == 1 && g->nodes[0].op == AC_OP_RESHAPE);
    CHECK(ac_tensor_is_const(&g->tensors[sh]));
    if (ac_tensor_is_const(&g->tensors[sh])) {
        const int64_t *v = g->tensors[sh].data;
        CHECK(v[0] == 1 && v[1] == -1);
    }
    CHECK_DIMS(g, b);
    CHECK_DIMS(g, y, 1, 49152);
    /* The graph still sorts after folding, and runs. */
    CHECK(ac_graph_toposort(g, &err) == 0);
    ac_graph_destroy(&g);
}

/* int64 arithmetic on shapes folds: H / 2 * 3 - 1 from Shape. */
static void test_fold_int_arith(void)
{
    ac_err err;
    ac_graph *g = new_graph(13);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 3, 64, 32});
    int s = value(g, "s"), h = value(g, "h"), d = value(g, "d"), m = value(g, "m");
    int r = value(g, "r"), f = value(g, "f");
    int idx = const_i64(g, "two", 1, (int64_t[]){2});
    int c2 = const_i64(g, "c2", 1, (int64_t[]){2});
    int c3 = const_i64(g, "c3", 1, (int64_t[]){3});
    int c1 = const_i64(g, "c1", 1, (int64_t[]){1});
    node(g, "shape", AC_OP_SHAPE, 1, &x, 1, &s);
    node(g, "gather", AC_OP_GATHER, 2, (int[]){s, idx}, 1, &h);
    node(g, "div", AC_OP_DIV, 2, (int[]){h, c2}, 1, &d);
    node(g, "mul", AC_OP_MUL, 2, (int[]){d, c3}, 1, &m);
    node(g, "sub", AC_OP_SUB, 2, (int[]){m, c1}, 1, &r);
    ac_node *n = node(g, "cast", AC_OP_CAST, 1, &r, 1, &f);
    attr_i(g, n, "to", AC_DT_F32);
    int rc = finish(g, 1, &f, &err);
    CHECK_OK(rc, err);
    CHECK(g->nnodes == 0);
    CHECK(ac_tensor_is_const(&g->tensors[r]) && ((int64_t *)g->tensors[r].data)[0] == 95);
    CHECK(g->tensors[f].dtype == AC_DT_F32 && ((float *)g->tensors[f].data)[0] == 95.0f);
    ac_graph_destroy(&g);

    /* integer division by zero while folding is an error, not a crash */
    g = new_graph(13);
    int a = const_i64(g, "a", 1, (int64_t[]){5});
    int z = const_i64(g, "z", 1, (int64_t[]){0});
    int q = value(g, "q");
    node(g, "div0", AC_OP_DIV, 2, (int[]){a, z}, 1, &q);
    rc = finish(g, 1, &q, &err);
    CHECK_ERR(rc, err, "node 'div0' (Div, opset 13): constant folding failed");
    ac_graph_destroy(&g);
}

/* Folds a single op over constant inputs and returns its output data. */
static const float *fold_f32(ac_graph *g, int out, ac_err *err)
{
    int rc = finish(g, 1, &out, err);
    if (rc) {
        fprintf(stderr, "fold: %s\n", err->msg);
        failures++;
        return NULL;
    }
    CHECK(ac_tensor_is_const(&g->tensors[out]));
    return g->tensors[out].data;
}

static void test_softmax_opsets(void)
{
    ac_err err;
    const float v[4] = {0, 1, 2, 3};
    /* opset 11, axis 1 of [2,2]: flatten to [2, 2] -> softmax per row */
    for (int opset = 11; opset <= 13; opset += 2) {
        ac_graph *g = new_graph(opset);
        int x = const_f32(g, "x", 3, (int64_t[]){1, 2, 2}, v);
        int y = value(g, "y");
        ac_node *n = node(g, "sm", AC_OP_SOFTMAX, 1, &x, 1, &y);
        attr_i(g, n, "axis", 1);
        const float *o = fold_f32(g, y, &err);
        if (o) {
            if (opset == 11) { /* softmax over all 4 values */
                float e = expf(0) + expf(1) + expf(2) + expf(3);
                CHECK(fabsf(o[3] - expf(3) / e) < 1e-6f);
            } else { /* over axis 1 only: pairs (0,2) and (1,3) */
                CHECK(fabsf(o[0] - 1.0f / (1.0f + expf(2))) < 1e-6f);
                CHECK(fabsf(o[0] + o[2] - 1.0f) < 1e-6f);
            }
        }
        ac_graph_destroy(&g);
    }
}

static void test_clip_opsets(void)
{
    ac_err err;
    const float v[4] = {-5, 0.5f, 3, 9};
    ac_graph *g = new_graph(6);
    int x = const_f32(g, "x", 1, (int64_t[]){4}, v);
    int y = value(g, "y");
    ac_node *n = node(g, "clip", AC_OP_CLIP, 1, &x, 1, &y);
    attr_f(g, n, "min", 0.0f);
    attr_f(g, n, "max", 2.0f);
    const float *o = fold_f32(g, y, &err);
    CHECK(o && o[0] == 0.0f && o[1] == 0.5f && o[2] == 2.0f && o[3] == 2.0f);
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = const_f32(g, "x", 1, (int64_t[]){4}, v);
    int lo = const_f32(g, "lo", 0, NULL, (float[]){-1.0f});
    y = value(g, "y");
    node(g, "clip", AC_OP_CLIP, 3, (int[]){x, lo, -1}, 1, &y);
    o = fold_f32(g, y, &err);
    CHECK(o && o[0] == -1.0f && o[3] == 9.0f);
    ac_graph_destroy(&g);

    /* Relu6 (fused op): clip to [0, 6] */
    g = new_graph(13);
    x = const_f32(g, "x", 1, (int64_t[]){4}, v);
    y = value(g, "y");
    node(g, "r6", AC_OP_RELU6, 1, &x, 1, &y);
    o = fold_f32(g, y, &err);
    CHECK(o && o[0] == 0.0f && o[3] == 6.0f);
    ac_graph_destroy(&g);
}

static void test_slice(void)
{
    ac_err err;
    const float v[6] = {0, 1, 2, 3, 4, 5};
    ac_graph *g = new_graph(13);
    int x = const_f32(g, "x", 2, (int64_t[]){2, 3}, v);
    int st = const_i64(g, "st", 2, (int64_t[]){-1, INT64_MAX});
    int en = const_i64(g, "en", 2, (int64_t[]){INT64_MIN, INT64_MIN});
    int ax = const_i64(g, "ax", 2, (int64_t[]){0, -1});
    int sp = const_i64(g, "sp", 2, (int64_t[]){-1, -2});
    int y = value(g, "y");
    node(g, "slice", AC_OP_SLICE, 5, (int[]){x, st, en, ax, sp}, 1, &y);
    const float *o = fold_f32(g, y, &err);
    CHECK_DIMS(g, y, 2, 2);
    CHECK(o && o[0] == 5 && o[1] == 3 && o[2] == 2 && o[3] == 0);
    ac_graph_destroy(&g);

    /* opset 9: attributes; end beyond the dim clamps */
    g = new_graph(9);
    x = const_f32(g, "x", 2, (int64_t[]){2, 3}, v);
    y = value(g, "y");
    ac_node *n = node(g, "slice", AC_OP_SLICE, 1, &x, 1, &y);
    attr_ints(g, n, "starts", 1, (int64_t[]){1});
    attr_ints(g, n, "ends", 1, (int64_t[]){1000});
    attr_ints(g, n, "axes", 1, (int64_t[]){1});
    o = fold_f32(g, y, &err);
    CHECK_DIMS(g, y, 2, 2);
    CHECK(o && o[0] == 1 && o[1] == 2 && o[2] == 4 && o[3] == 5);
    ac_graph_destroy(&g);

    /* step 0 is an error */
    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    st = const_i64(g, "st", 1, (int64_t[]){0});
    en = const_i64(g, "en", 1, (int64_t[]){1});
    ax = const_i64(g, "ax", 1, (int64_t[]){0});
    sp = const_i64(g, "sp", 1, (int64_t[]){0});
    y = value(g, "y");
    node(g, "s0", AC_OP_SLICE, 5, (int[]){x, st, en, ax, sp}, 1, &y);
    int rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "node 's0' (Slice, opset 13): step 0 on axis 0 is invalid");
    ac_graph_destroy(&g);

    /* non-constant starts: a clear unsupported error */
    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    st = input(g, "st", AC_DT_I64, 1, (int64_t[]){1});
    en = const_i64(g, "en", 1, (int64_t[]){1});
    y = value(g, "y");
    node(g, "s1", AC_OP_SLICE, 3, (int[]){x, st, en}, 1, &y);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "input 'st' (starts) must be a constant for static shapes");
    CHECK(err.code == AC_E_UNSUPPORTED);
    ac_graph_destroy(&g);
}

static void test_shape_ops(void)
{
    ac_err err;
    ac_graph *g = new_graph(15);
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){2, 3, 4, 5});
    int s = value(g, "s"), r = value(g, "r"), f = value(g, "f"), t = value(g, "t");
    int sq = value(g, "sq"), us = value(g, "us"), rz = value(g, "rz"), p = value(g, "p");
    int gp = value(g, "gp"), rm = value(g, "rm"), sp0 = value(g, "sp0"), sp1 = value(g, "sp1");
    int up = value(g, "up");
    ac_node *n = node(g, "shape", AC_OP_SHAPE, 1, &x, 1, &s);
    attr_i(g, n, "start", 1);
    attr_i(g, n, "end", -1);
    int rs = const_i64(g, "rs", 3, (int64_t[]){0, -1, 5});
    node(g, "reshape", AC_OP_RESHAPE, 2, (int[]){x, rs}, 1, &r);
    n = node(g, "flatten", AC_OP_FLATTEN, 1, &x, 1, &f);
    attr_i(g, n, "axis", -2);
    n = node(g, "transpose", AC_OP_TRANSPOSE, 1, &x, 1, &t);
    attr_ints(g, n, "perm", 4, (int64_t[]){0, 2, 3, 1});
    int ones_shape = value(g, "os");
    int rs1 = const_i64(g, "rs1", 5, (int64_t[]){2, 1, 3, 20, 1});
    node(g, "reshape1", AC_OP_RESHAPE, 2, (int[]){x, rs1}, 1, &ones_shape);
    node(g, "squeeze", AC_OP_SQUEEZE, 1, &ones_shape, 1, &sq);
    int ua = const_i64(g, "ua", 2, (int64_t[]){-1, 0});
    node(g, "unsqueeze", AC_OP_UNSQUEEZE, 2, (int[]){x, ua}, 1, &us);
    int sc = const_f32(g, "scales", 1, (int64_t[]){4}, (float[]){1, 1, 2, 0.5f});
    n = node(g, "resize", AC_OP_RESIZE, 3, (int[]){x, -1, sc}, 1, &rz);
    attr_s(g, n, "mode", "nearest");
    int pads = const_i64(g, "pads", 8, (int64_t[]){0, 0, 1, 2, 0, 0, 3, -1});
    node(g, "pad", AC_OP_PAD, 2, (int[]){x, pads}, 1, &p);
    node(g, "gap", AC_OP_GLOBAL_AVGPOOL, 1, &x, 1, &gp);
    n = node(g, "rmean", AC_OP_REDUCE_MEAN, 1, &x, 1, &rm);
    attr_ints(g, n, "axes", 2, (int64_t[]){-1, 1});
    attr_i(g, n, "keepdims", 0);
    int split = const_i64(g, "split", 2, (int64_t[]){1, 3});
    n = node(g, "split", AC_OP_SPLIT, 2, (int[]){x, split}, 2, (int[]){sp0, sp1});
    attr_i(g, n, "axis", 2);
    int usc = const_f32(g, "us_scales", 1, (int64_t[]){4}, (float[]){1, 1, 2, 2});
    n = node(g, "upsample", AC_OP_UPSAMPLE, 2, (int[]){x, usc}, 1, &up);
    attr_s(g, n, "mode", "linear");
    int rc = finish(g, 3, (int[]){r, f, t}, &err);
    CHECK_OK(rc, err);
    CHECK_DIMS(g, s, 2);
    CHECK(ac_tensor_is_const(&g->tensors[s]) && ((int64_t *)g->tensors[s].data)[0] == 3 &&
          ((int64_t *)g->tensors[s].data)[1] == 4);
    CHECK_DIMS(g, r, 2, 12, 5);
    CHECK_DIMS(g, f, 6, 20);
    CHECK_DIMS(g, t, 2, 4, 5, 3);
    CHECK_DIMS(g, sq, 2, 3, 20);
    CHECK_DIMS(g, us, 1, 2, 3, 4, 5, 1);
    CHECK_DIMS(g, rz, 2, 3, 8, 2);
    CHECK_DIMS(g, p, 2, 3, 8, 6);
    CHECK_DIMS(g, gp, 2, 3, 1, 1);
    CHECK_DIMS(g, rm, 2, 4);
    CHECK_DIMS(g, sp0, 2, 3, 1, 5);
    CHECK_DIMS(g, sp1, 2, 3, 3, 5);
    CHECK_DIMS(g, up, 2, 3, 8, 10);
    ac_graph_destroy(&g);
}

/* Upsample opset 7 (scales attribute, nearest = floor of x / scale). */
static void test_upsample_v7(void)
{
    ac_err err;
    ac_graph *g = new_graph(7);
    int x = const_f32(g, "x", 2, (int64_t[]){1, 3}, (float[]){1, 2, 3});
    int y = value(g, "y");
    ac_node *n = node(g, "up", AC_OP_UPSAMPLE, 1, &x, 1, &y);
    attr_floats(g, n, "scales", 2, (float[]){2.0f, 2.0f});
    const float *o = fold_f32(g, y, &err);
    CHECK_DIMS(g, y, 2, 6);
    CHECK(o && o[0] == 1 && o[1] == 1 && o[2] == 2 && o[5] == 3 && o[6] == 1 && o[11] == 3);
    ac_graph_destroy(&g);
}

static void test_matmul_gemm(void)
{
    ac_err err;
    ac_graph *g = new_graph(13);
    int a = input(g, "a", AC_DT_F32, 3, (int64_t[]){5, 2, 3});
    int b = input(g, "b", AC_DT_F32, 4, (int64_t[]){4, 1, 3, 7});
    int v = input(g, "v", AC_DT_F32, 1, (int64_t[]){3});
    int y = value(g, "y"), y2 = value(g, "y2"), y3 = value(g, "y3");
    node(g, "mm", AC_OP_MATMUL, 2, (int[]){a, b}, 1, &y);
    node(g, "mv", AC_OP_MATMUL, 2, (int[]){a, v}, 1, &y2);
    int ga = input(g, "ga", AC_DT_F32, 2, (int64_t[]){3, 4});
    int gb = input(g, "gb", AC_DT_F32, 2, (int64_t[]){6, 3});
    int gc = input(g, "gc", AC_DT_F32, 1, (int64_t[]){6});
    ac_node *n = node(g, "gemm", AC_OP_GEMM, 3, (int[]){ga, gb, gc}, 1, &y3);
    attr_i(g, n, "transA", 1);
    attr_i(g, n, "transB", 1);
    int rc = finish(g, 3, (int[]){y, y2, y3}, &err);
    CHECK_OK(rc, err);
    CHECK_DIMS(g, y, 4, 5, 2, 7);
    CHECK_DIMS(g, y2, 5, 2);
    CHECK_DIMS(g, y3, 4, 6);
    CHECK(ac_node_macs(g, &g->nodes[0]) == 4 * 5 * 2 * 7 * 3);
    ac_graph_destroy(&g);

    /* a small MatMul evaluated by folding: [[1,2],[3,4]] x [[1],[1]] */
    g = new_graph(13);
    a = const_f32(g, "a", 2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    b = const_f32(g, "b", 2, (int64_t[]){2, 1}, (float[]){1, 1});
    y = value(g, "y");
    node(g, "mm", AC_OP_MATMUL, 2, (int[]){a, b}, 1, &y);
    const float *o = fold_f32(g, y, &err);
    CHECK(o && o[0] == 3 && o[1] == 7);
    ac_graph_destroy(&g);

    g = new_graph(13);
    a = input(g, "a", AC_DT_F32, 2, (int64_t[]){2, 3});
    b = input(g, "b", AC_DT_F32, 2, (int64_t[]){4, 5});
    y = value(g, "y");
    node(g, "mm", AC_OP_MATMUL, 2, (int[]){a, b}, 1, &y);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "inner dimensions differ");
    ac_graph_destroy(&g);
}

/* Conv and pool evaluated by folding (uses the conv kernels through ac_ops). */
static void test_conv_pool_values(void)
{
    ac_err err;
    float ones[9];
    for (int i = 0; i < 9; i++)
        ones[i] = 1.0f;
    ac_graph *g = new_graph(13);
    int x = const_f32(g, "x", 4, (int64_t[]){1, 1, 3, 3}, ones);
    int w = const_f32(g, "w", 4, (int64_t[]){1, 1, 3, 3}, ones);
    int bias = const_f32(g, "b", 1, (int64_t[]){1}, (float[]){0.5f});
    int y = value(g, "y");
    ac_node *n = node(g, "conv", AC_OP_CONV, 3, (int[]){x, w, bias}, 1, &y);
    attr_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    const float *o = fold_f32(g, y, &err);
    CHECK(o && o[0] == 4.5f && o[4] == 9.5f && o[8] == 4.5f);
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = const_f32(g, "x", 4, (int64_t[]){1, 1, 3, 3}, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    y = value(g, "y");
    n = node(g, "pool", AC_OP_MAXPOOL, 1, &x, 1, &y);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){2, 2});
    attr_ints(g, n, "strides", 2, (int64_t[]){2, 2});
    attr_i(g, n, "ceil_mode", 1);
    o = fold_f32(g, y, &err);
    CHECK_DIMS(g, y, 1, 1, 2, 2);
    CHECK(o && o[0] == 5 && o[1] == 6 && o[2] == 8 && o[3] == 9);
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 1, 3, 3});
    y = value(g, "y");
    n = node(g, "pool", AC_OP_AVGPOOL, 1, &x, 1, &y);
    attr_ints(g, n, "strides", 2, (int64_t[]){1, 1});
    int rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "node 'pool' (AveragePool, opset 13): attribute 'kernel_shape' is required");
    ac_graph_destroy(&g);
}

static void test_misc_errors(void)
{
    ac_err err;
    /* unknown op */
    ac_graph *g = new_graph(13);
    int x = input(g, "x", AC_DT_F32, 1, (int64_t[]){4});
    int y = value(g, "y");
    ac_graph_add_node(g, "weird", "FooOp", AC_OP_UNKNOWN, 1, &x, 1, &y);
    int rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "node 'weird' (FooOp, opset 13): operator not supported");
    ac_graph_destroy(&g);

    /* Reshape: overflowing target, two -1, size mismatch */
    const struct {
        int n;
        int64_t shape[4];
        const char *msg;
    } cases[] = {
        {3, {INT64_MAX / 2, 4, 4}, "more than"},
        {2, {-1, -1}, "more than one -1"},
        {2, {5, 5}, "cannot reshape 24 elements into 25"},
        {2, {-7, 4}, "'shape' value -7 is invalid"},
        {2, {0, 7}, "cannot reshape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g = new_graph(13);
        x = input(g, "x", AC_DT_F32, 3, (int64_t[]){2, 3, 4});
        int s = const_i64(g, "s", cases[i].n, cases[i].shape);
        y = value(g, "y");
        node(g, "rs", AC_OP_RESHAPE, 2, (int[]){x, s}, 1, &y);
        rc = finish(g, 1, &y, &err);
        CHECK_ERR(rc, err, cases[i].msg);
        ac_graph_destroy(&g);
    }

    /* Gather with a constant index out of range; Concat with mismatched dims */
    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    int idx = const_i64(g, "idx", 1, (int64_t[]){3});
    y = value(g, "y");
    ac_node *n = node(g, "g", AC_OP_GATHER, 2, (int[]){x, idx}, 1, &y);
    attr_i(g, n, "axis", -1);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "index 3 is out of range [-3, 3) for axis 1");
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    int x2 = input(g, "x2", AC_DT_F32, 2, (int64_t[]){3, 3});
    y = value(g, "y");
    n = node(g, "cat", AC_OP_CONCAT, 2, (int[]){x, x2}, 1, &y);
    attr_i(g, n, "axis", 1);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "input 'x2' dim 0 is 3");
    ac_graph_destroy(&g);

    /* Unsqueeze axes out of range; Transpose bad perm; Resize cubic; Add no broadcast */
    g = new_graph(11);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    y = value(g, "y");
    n = node(g, "u", AC_OP_UNSQUEEZE, 1, &x, 1, &y);
    attr_ints(g, n, "axes", 1, (int64_t[]){3});
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "node 'u' (Unsqueeze, opset 11): axis 3 is out of range [-3, 2]");
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    y = value(g, "y");
    n = node(g, "t", AC_OP_TRANSPOSE, 1, &x, 1, &y);
    attr_ints(g, n, "perm", 2, (int64_t[]){1, 1});
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "not a permutation");
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 1, 2, 2});
    int sc = const_f32(g, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 2, 2});
    y = value(g, "y");
    n = node(g, "rz", AC_OP_RESIZE, 3, (int[]){x, -1, sc}, 1, &y);
    attr_s(g, n, "mode", "cubic");
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "mode 'cubic' is not supported");
    CHECK(err.code == AC_E_UNSUPPORTED);
    ac_graph_destroy(&g);

    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 2, (int64_t[]){2, 3});
    x2 = input(g, "x2", AC_DT_F32, 1, (int64_t[]){2});
    y = value(g, "y");
    node(g, "add", AC_OP_ADD, 2, (int[]){x, x2}, 1, &y);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "do not broadcast: dimension 1 is 3 vs 2");
    ac_graph_destroy(&g);

    /* Output element count overflow through Resize scales */
    g = new_graph(13);
    x = input(g, "x", AC_DT_F32, 4, (int64_t[]){1, 1, 1000, 1000});
    sc = const_f32(g, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 1000, 1000});
    y = value(g, "y");
    node(g, "rz", AC_OP_RESIZE, 3, (int[]){x, -1, sc}, 1, &y);
    rc = finish(g, 1, &y, &err);
    CHECK_ERR(rc, err, "elements");
    ac_graph_destroy(&g);
}

/* Zero-sized dims infer and run (2 threads) without touching memory they should not;
 * a K = 0 product is all bias / zeros. */
static void test_edge_sizes(void)
{
    ac_err err;
    ac_graph *g = new_graph(13);
    int a = input(g, "a", AC_DT_F32, 2, (int64_t[]){2, 0});
    int b = input(g, "b", AC_DT_F32, 2, (int64_t[]){0, 3});
    int c = input(g, "c", AC_DT_F32, 1, (int64_t[]){3});
    int x = input(g, "x", AC_DT_F32, 4, (int64_t[]){0, 3, 4, 4});
    int w = input(g, "w", AC_DT_F32, 4, (int64_t[]){2, 3, 3, 3});
    int e = input(g, "e", AC_DT_F32, 2, (int64_t[]){2, 3});
    int mm = value(g, "mm"), gm = value(g, "gm"), cv = value(g, "cv"), cat = value(g, "cat");
    int sl = value(g, "sl"), mp = value(g, "mp");
    node(g, "matmul", AC_OP_MATMUL, 2, (int[]){a, b}, 1, &mm);
    node(g, "gemm", AC_OP_GEMM, 3, (int[]){a, b, c}, 1, &gm);
    node(g, "conv", AC_OP_CONV, 2, (int[]){x, w}, 1, &cv);
    ac_node *n = node(g, "cat", AC_OP_CONCAT, 2, (int[]){a, e}, 1, &cat);
    attr_i(g, n, "axis", 1);
    int st = const_i64(g, "st", 1, (int64_t[]){2});
    int en = const_i64(g, "en", 1, (int64_t[]){1});
    node(g, "slice", AC_OP_SLICE, 3, (int[]){e, st, en}, 1, &sl);
    n = node(g, "pool", AC_OP_MAXPOOL, 1, &x, 1, &mp);
    attr_ints(g, n, "kernel_shape", 2, (int64_t[]){2, 2});
    int outs[6] = {mm, gm, cv, cat, sl, mp};
    int rc = finish(g, 6, outs, &err);
    CHECK_OK(rc, err);
    CHECK_DIMS(g, mm, 2, 3);
    CHECK_DIMS(g, cv, 0, 2, 2, 2);
    CHECK_DIMS(g, cat, 2, 3);
    CHECK_DIMS(g, sl, 0, 3);
    if (!rc) {
        ac_exec *ex = ac_exec_new(g, &err);
        CHECK(ex != NULL);
        float one = 1.0f, cb[3] = {1, 2, 3}, ev[6] = {1, 2, 3, 4, 5, 6}, wv[54] = {0};
        const void *ins[6] = {&one, &one, cb, &one, wv, ev};
        ac_exec_set_threads(ex, 2);
        rc = ex ? ac_exec_run(ex, ins, &err) : 1;
        CHECK_OK(rc, err);
        if (!rc) {
            const float *m = ac_exec_tensor(ex, mm), *gv = ac_exec_tensor(ex, gm);
            const float *cc = ac_exec_tensor(ex, cat);
            CHECK(m[0] == 0.0f && m[5] == 0.0f);
            CHECK(gv[0] == 1.0f && gv[5] == 3.0f);
            CHECK(cc[0] == 1.0f && cc[5] == 6.0f);
        }
        ac_exec_destroy(&ex);
    }
    ac_graph_destroy(&g);
}

/* ---- garbage: random attributes and shapes never crash ---------------------------------- */

static unsigned rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static int64_t rnd_int(unsigned *s)
{
    static const int64_t special[] = {0, 1, -1, 2, 3, -2, 7, INT64_MAX, INT64_MIN, 1 << 30, -(1 << 30)};
    if (rnd(s) % 3 == 0)
        return special[rnd(s) % (sizeof special / sizeof special[0])];
    return (int64_t)(rnd(s) % 9) - 3;
}

#ifndef GARBAGE_ITERS
#define GARBAGE_ITERS 6000 /* a longer run: -DGARBAGE_ITERS=200000 -DGARBAGE_SEED=n */
#endif
#ifndef GARBAGE_SEED
#define GARBAGE_SEED 12345
#endif

static void test_garbage(void)
{
    static const char *names[] = {"axis", "axes", "perm", "pads", "strides", "kernel_shape",
                                  "dilations", "group", "split", "starts", "ends", "to",
                                  "mode", "auto_pad", "keepdims", "alpha", "beta", "value",
                                  "transA", "transB", "output_shape", "output_padding",
                                  "ceil_mode", "count_include_pad", "shape", "scales",
                                  "min", "max", "start", "end", "allowzero", "epsilon",
                                  "coordinate_transformation_mode", "nearest_mode",
                                  "value_ints", "value_floats", "value_int", "value_float"};
    static const char *strings[] = {"", "NOTSET", "SAME_UPPER", "VALID", "nearest", "linear",
                                    "reflect", "edge", "half_pixel", "align_corners", "zzz"};
    static const int opsets[] = {7, 9, 10, 11, 12, 13, 15, 17};
    unsigned seed = GARBAGE_SEED;
    int ok = 0, failed = 0;
    for (int iter = 0; iter < GARBAGE_ITERS; iter++) {
        ac_op op = (ac_op)(1 + rnd(&seed) % (AC_OP_COUNT - 1));
        ac_graph *g = new_graph(opsets[rnd(&seed) % 8]);
        int nin = (int)(rnd(&seed) % 5), ins[5];
        for (int i = 0; i < nin; i++) {
            int ndim = (int)(rnd(&seed) % 6);
            int64_t dims[8];
            for (int d = 0; d < ndim; d++)
                dims[d] = rnd(&seed) % 8 == 0 ? 0 : 1 + rnd(&seed) % 4;
            char name[16];
            snprintf(name, sizeof name, "in%d", i);
            unsigned kind = rnd(&seed) % 4;
            if (kind == 0 && i > 0) { /* a constant int64 vector of random values */
                int64_t v[8];
                int cnt = (int)(rnd(&seed) % 8);
                for (int k = 0; k < cnt; k++)
                    v[k] = rnd_int(&seed);
                ins[i] = const_i64(g, name, cnt, v);
            } else if (kind == 1 && i > 0) { /* a constant float vector */
                float v[8];
                int cnt = (int)(rnd(&seed) % 8);
                for (int k = 0; k < cnt; k++)
                    v[k] = (float)rnd_int(&seed) / 2.0f;
                ins[i] = const_f32(g, name, 1, (int64_t[]){cnt}, v);
            } else if (kind == 2 && i > 0) {
                ins[i] = -1; /* absent optional input */
            } else {
                ins[i] = input(g, name, rnd(&seed) % 4 ? AC_DT_F32 : AC_DT_I64, ndim, dims);
            }
        }
        int nout = 1 + (int)(rnd(&seed) % 2), outs[2];
        outs[0] = value(g, "out0");
        outs[1] = value(g, "out1");
        ac_node *n = node(g, "n", op, nin, ins, nout, outs);
        int nattr = (int)(rnd(&seed) % 4);
        for (int a = 0; a < nattr; a++) {
            const char *name = names[rnd(&seed) % (sizeof names / sizeof names[0])];
            switch (rnd(&seed) % 4) {
            case 0: attr_i(g, n, name, rnd_int(&seed)); break;
            case 1: attr_f(g, n, name, (float)rnd_int(&seed) * 0.5f); break;
            case 2: {
                int64_t v[8];
                int cnt = (int)(rnd(&seed) % 8);
                for (int k = 0; k < cnt; k++)
                    v[k] = rnd_int(&seed);
                attr_ints(g, n, name, cnt, v);
                break;
            }
            default: attr_s(g, n, name, strings[rnd(&seed) % (sizeof strings / sizeof strings[0])]);
            }
        }
        ac_err err;
        int rc = finish(g, 1, outs, &err);
        if (rc) {
            failed++;
            CHECK(strlen(err.msg) > 0);
        } else {
            ok++;
            /* When it infers, it must also run (random data, any error is a status). */
            ac_exec *e = ac_exec_new(g, &err);
            if (e) {
                const void *in_ptrs[8];
                void *bufs[8];
                int k;
                for (k = 0; k < g->ninputs && k < 8; k++) {
                    size_t b = ac_tensor_bytes(&g->tensors[g->inputs[k]]);
                    bufs[k] = calloc(1, b ? b : 1);
                    in_ptrs[k] = bufs[k];
                }
                ac_exec_set_threads(e, 2);
                (void)ac_exec_run(e, in_ptrs, &err);
                for (int j = 0; j < k; j++)
                    free(bufs[j]);
                ac_exec_destroy(&e);
            }
        }
        ac_graph_destroy(&g);
    }
    printf("garbage graphs: %d inferred, %d rejected\n", ok, failed);
    CHECK(ok > 100 && failed > 100);
}

/* Every op has a definition. */
static void test_table(void)
{
    for (int op = 1; op < AC_OP_COUNT; op++) {
        const ac_op_def *d = ac_op_def_get((ac_op)op);
        if (!d || !d->infer || !d->run) {
            fprintf(stderr, "op %s has no definition\n", ac_op_name((ac_op)op));
            failures++;
        }
    }
    CHECK(ac_op_def_get(AC_OP_UNKNOWN) == NULL);
    CHECK(ac_op_def_get(AC_OP_COUNT) == NULL);
}

int main(void)
{
    test_table();
    test_conv_shapes();
    test_conv_errors();
    test_fold_chain(11);
    test_fold_chain(13);
    test_fold_int_arith();
    test_softmax_opsets();
    test_clip_opsets();
    test_slice();
    test_shape_ops();
    test_matmul_gemm();
    test_upsample_v7();
    test_conv_pool_values();
    test_misc_errors();
    test_edge_sizes();
    test_garbage();
    if (failures) {
        fprintf(stderr, "ops selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("ops selftest: ok\n");
    return 0;
}
