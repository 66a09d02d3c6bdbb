/* int8_model_test: the int8 model file (quant/ac_int8_model.h,
 * docs/int8-model-format.md).
 *   - the strict msgpack reader (base/ac_mpack.h) on hand-made bytes;
 *   - a small graph built through the IR API with one node of most int8 kinds
 *     (conv, add, maxpool, sigmoid LUT, concat, avgpool, leaky ReLU, mul,
 *     global average pool, FC): write, load, bit-identical qexec outputs and
 *     codes, and a byte-identical re-encoding;
 *   - the bundled Fashion-MNIST models (plain, resnet, mbv2), per-tensor and
 *     per-channel and with fp32 options, calibrated (abs-max) on 48 training
 *     images: the reloaded plan's qexec tensors equal the original's on test
 *     images, bit for bit;
 *   - corrupted files: truncation at many offsets, flipped bytes, a changed
 *     weight byte, option, magic, version, trailing bytes: clean errors.
 * Usage: int8_model_test REPO ZOO [--write-seeds DIR] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_int8_model.h"
#include "ac_model.h"
#include "ac_mpack.h"
#include "ac_ops.h"
#include "ac_passes.h"
#include "ac_qexec.h"
#include "ac_qtest_util.h"
#include "ac_check.h"

/* ---- the msgpack reader ------------------------------------------------------------------- */

static void test_mpack(void)
{
    ac_mpack_reader r;
    int64_t i;
    uint64_t u;
    uint32_t n;
    const char *s;
    size_t len;
    const uint8_t *b;
    /* Integers of every width, signed and unsigned. */
    static const uint8_t ints[] = {0x05, 0xff, 0xcc, 0xc8, 0xd0, 0x80, 0xd1, 0x80, 0x00,
                                   0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xcf, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ac_mpack_reader_init(&r, ints, sizeof ints);
    CHECK(ac_mpack_read_int(&r, &i) && i == 5, "fixint");
    CHECK(ac_mpack_read_int(&r, &i) && i == -1, "negative fixint");
    CHECK(ac_mpack_read_int(&r, &i) && i == 200, "uint8");
    CHECK(ac_mpack_read_int(&r, &i) && i == -128, "int8");
    CHECK(ac_mpack_read_int(&r, &i) && i == -32768, "int16");
    CHECK(ac_mpack_read_int(&r, &i) && i == INT64_MIN, "int64 min");
    ac_mpack_reader save = r;
    CHECK(!ac_mpack_read_int(&r, &i), "uint64 max does not fit int64");
    r = save;
    CHECK(ac_mpack_read_uint(&r, &u) && u == UINT64_MAX, "uint64 max");
    CHECK(r.left == 0 && ac_mpack_peek(&r) == AC_MPACK_END, "all consumed");
    /* Declared lengths beyond the data are refused before use. */
    static const uint8_t big_array[] = {0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01};
    ac_mpack_reader_init(&r, big_array, sizeof big_array);
    CHECK(!ac_mpack_read_array(&r, &n), "array of 2^31 elements in 1 byte");
    static const uint8_t big_map[] = {0x82, 0x01, 0x02, 0x03};
    ac_mpack_reader_init(&r, big_map, sizeof big_map);
    CHECK(!ac_mpack_read_map(&r, &n), "map of 2 pairs in 3 bytes");
    static const uint8_t short_str[] = {0xa5, 'a', 'b'};
    ac_mpack_reader_init(&r, short_str, sizeof short_str);
    CHECK(!ac_mpack_read_str(&r, &s, &len), "truncated string");
    static const uint8_t short_bin[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    ac_mpack_reader_init(&r, short_bin, sizeof short_bin);
    CHECK(!ac_mpack_read_bin(&r, &b, &len), "truncated bin32");
    /* Skip over nested values, ext included; a wrong type is refused. */
    static const uint8_t nested[] = {0x93, 0x81, 0xa1, 'k', 0x93, 0x01, 0xc0, 0xc3, 0xd5, 0x01,
                                     0xaa, 0xbb, 0xcb, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x07};
    ac_mpack_reader_init(&r, nested, sizeof nested);
    CHECK(ac_mpack_skip(&r) && r.left == 1, "skip nested (left %zu)", r.left);
    CHECK(ac_mpack_read_int(&r, &i) && i == 7, "value after the skipped one");
    static const uint8_t deep[] = {0x91, 0x91, 0x91, 0x91};
    ac_mpack_reader_init(&r, deep, sizeof deep);
    CHECK(!ac_mpack_skip(&r), "truncated nesting");
    static const uint8_t f64[] = {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
    double d;
    float f;
    ac_mpack_reader_init(&r, f64, sizeof f64);
    CHECK(!ac_mpack_read_f32(&r, &f), "float64 is not read as float32");
    CHECK(ac_mpack_read_f64(&r, &d) && d == 1.0, "float64");
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* Every tensor the executor dumps, of two executors over the same graph, byte for byte. */
static int compare_runs(const ac_graph *g1, const ac_plan *p1, const ac_graph *g2,
                        const ac_plan *p2, const float *x, int nbatch, const char *what)
{
    ac_err err = {0};
    ac_qexec *a = ac_qexec_new(p1, &err), *b = a ? ac_qexec_new(p2, &err) : NULL;
    int64_t in_numel = ac_tensor_numel(&g1->tensors[g1->inputs[0]]);
    int bad = 0;
    if (!a || !b) {
        CHECK(0, "%s: qexec_new: %s", what, err.msg);
        bad = 1;
    }
    if (!bad) {
        ac_qexec_set_threads(a, 2);
        ac_qexec_set_threads(b, 1);
    }
    for (int k = 0; !bad && k < nbatch; k++) {
        const void *in[1] = {x + (int64_t)k * in_numel};
        if (ac_qexec_run(a, in, &err) || ac_qexec_run(b, in, &err)) {
            CHECK(0, "%s: run: %s", what, err.msg);
            bad = 1;
            break;
        }
        for (int t = 0; t < g1->ntensors && !bad; t++) {
            ac_dtype da = AC_DT_UNDEFINED, db = AC_DT_UNDEFINED;
            const void *va = ac_qexec_tensor_dump(a, t, &da);
            const void *vb = ac_qexec_tensor_dump(b, t, &db);
            if (!va && !vb)
                continue;
            size_t bytes = (size_t)ac_tensor_numel(&g1->tensors[t]) * ac_dtype_size(da);
            if (!va || !vb || da != db || memcmp(va, vb, bytes) != 0) {
                CHECK(0, "%s: batch %d tensor '%s' differs after reloading", what, k,
                      g1->tensors[t].name);
                bad = 1;
            }
        }
        const float *ya = ac_qexec_tensor_float(a, g1->outputs[0]);
        const float *yb = ac_qexec_tensor_float(b, g2->outputs[0]);
        size_t ob = sizeof(float) * (size_t)ac_tensor_numel(&g1->tensors[g1->outputs[0]]);
        if (!bad && (!ya || !yb || memcmp(ya, yb, ob) != 0)) {
            CHECK(0, "%s: batch %d: float outputs differ", what, k);
            bad = 1;
        }
    }
    ac_qexec_destroy(&a);
    ac_qexec_destroy(&b);
    return bad;
}

/* Encode, parse, compare plans and runs, re-encode: the central round trip. */
static ac_int8_model *round_trip(const ac_plan *p, const float *x, int nbatch, const char *what,
                                 uint8_t **buf_out, size_t *len_out)
{
    ac_err err = {0};
    uint8_t *buf = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    if (ac_int8_model_encode(p, &buf, &len, &err)) {
        CHECK(0, "%s: encode: %s", what, err.msg);
        return NULL;
    }
    CHECK(ac_int8_model_detect_bytes(buf, len), "%s: detect", what);
    ac_int8_model *m = ac_int8_model_parse(buf, len, what, &err);
    CHECK(m, "%s: parse: %s", what, err.msg);
    if (m) {
        const ac_plan *q = ac_int8_model_plan(m);
        const ac_graph *g = ac_int8_model_graph(m);
        CHECK(g->nnodes == p->g->nnodes && g->ntensors == p->g->ntensors, "%s: graph size", what);
        CHECK(q->n_int8 == p->n_int8 && q->n_fp32 == p->n_fp32, "%s: %d/%d int8/fp32 nodes, "
              "reloaded %d/%d", what, p->n_int8, p->n_fp32, q->n_int8, q->n_fp32);
        CHECK(strcmp(ac_int8_model_producer(m), AC_INT8_MODEL_PRODUCER) == 0, "producer");
        compare_runs(p->g, p, g, q, x, nbatch, what);
        CHECK(ac_int8_model_encode(q, &again, &len2, &err) == 0, "%s: re-encode", what);
        CHECK(again && len2 == len && memcmp(buf, again, len) == 0,
              "%s: re-encoding the reloaded model gives other bytes (%zu vs %zu)", what, len2, len);
        free(again);
    }
    if (buf_out) {
        *buf_out = buf;
        *len_out = len;
    } else {
        free(buf);
    }
    return m;
}

static int write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* ---- a small graph with one node of most int8 kinds ------------------------------------------ */

static uint32_t rng_state = 12345;
static float frand(void) /* deterministic, in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static int add_const(ac_graph *g, const char *name, int ndim, const int64_t *dims, float scale)
{
    int t = ac_graph_add_tensor(g, name, AC_DT_F32, ndim, dims);
    int64_t n = ac_tensor_numel(&g->tensors[t]);
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    ac_graph_set_const(g, t, v, sizeof(float) * (size_t)n, NULL);
    free(v);
    return t;
}

static int act(ac_graph *g, const char *name)
{
    return ac_graph_add_tensor(g, name, AC_DT_UNDEFINED, -1, NULL);
}

static void set_ints(ac_graph *g, int node, const char *name, int n, const int64_t *v)
{
    ac_attr *a = ac_node_add_attr(g, &g->nodes[node], name, AC_ATTR_INTS);
    a->n = n;
    a->ints = ac_arena_memdup(g->arena, v, sizeof(int64_t) * (size_t)n);
}

static int node(ac_graph *g, const char *name, const char *op, int nin, const int *in, int out)
{
    return ac_graph_add_node(g, name, op, ac_op_from_onnx(op), nin, in, 1, &out);
}

/* x[2,3,8,8] -> Conv 3x3 -> Relu -> (Conv 1x1, Add residual) -> MaxPool 2 ->
 * Sigmoid -> Concat(maxpool, sigmoid) -> AveragePool 2 -> LeakyRelu -> Mul(self)
 * -> GlobalAveragePool -> Flatten -> Gemm -> y[2,5] */
static ac_graph *tiny_graph(ac_err *err)
{
    ac_graph *g = ac_graph_new("tiny");
    g->opset = 13;
    int64_t xd[4] = {2, 3, 8, 8}, w1d[4] = {4, 3, 3, 3}, b1d[1] = {4}, w2d[4] = {4, 4, 1, 1};
    int64_t wfd[2] = {5, 8}, bfd[1] = {5};
    int x = ac_graph_add_tensor(g, "x", AC_DT_F32, 4, xd);
    int w1 = add_const(g, "w1", 4, w1d, 0.5f), b1 = add_const(g, "b1", 1, b1d, 0.1f);
    int w2 = add_const(g, "w2", 4, w2d, 0.5f), b2 = add_const(g, "b2", 1, b1d, 0.1f);
    int wf = add_const(g, "wf", 2, wfd, 0.5f), bf = add_const(g, "bf", 1, bfd, 0.1f);
    int c1 = act(g, "c1"), r1 = act(g, "r1"), c2 = act(g, "c2"), a1 = act(g, "a1");
    int m1 = act(g, "m1"), s1 = act(g, "s1"), k1 = act(g, "k1"), p1 = act(g, "p1");
    int l1 = act(g, "l1"), u1 = act(g, "u1"), g1 = act(g, "g1"), f1 = act(g, "f1");
    int y = act(g, "y");
    static const int64_t pads1[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
    int n;
    n = node(g, "conv1", "Conv", 3, (int[]){x, w1, b1}, c1);
    set_ints(g, n, "pads", 4, pads1);
    node(g, "relu1", "Relu", 1, (int[]){c1}, r1);
    node(g, "conv2", "Conv", 3, (int[]){r1, w2, b2}, c2);
    node(g, "add1", "Add", 2, (int[]){r1, c2}, a1);
    n = node(g, "pool1", "MaxPool", 1, (int[]){a1}, m1);
    set_ints(g, n, "kernel_shape", 2, k2);
    set_ints(g, n, "strides", 2, k2);
    node(g, "sig1", "Sigmoid", 1, (int[]){m1}, s1);
    n = node(g, "cat1", "Concat", 2, (int[]){m1, s1}, k1);
    ac_node_add_attr(g, &g->nodes[n], "axis", AC_ATTR_INT)->i = 1;
    n = node(g, "pool2", "AveragePool", 1, (int[]){k1}, p1);
    set_ints(g, n, "kernel_shape", 2, k2);
    set_ints(g, n, "strides", 2, k2);
    n = node(g, "lrelu1", "LeakyRelu", 1, (int[]){p1}, l1);
    ac_node_add_attr(g, &g->nodes[n], "alpha", AC_ATTR_FLOAT)->f = 0.1f;
    node(g, "mul1", "Mul", 2, (int[]){l1, l1}, u1);
    node(g, "gap1", "GlobalAveragePool", 1, (int[]){u1}, g1);
    node(g, "flat1", "Flatten", 1, (int[]){g1}, f1);
    n = node(g, "fc1", "Gemm", 3, (int[]){f1, wf, bf}, y);
    ac_node_add_attr(g, &g->nodes[n], "transB", AC_ATTR_INT)->i = 1;
    ac_graph_set_io(g, 1, &x, 1, &y);
    if (ac_graph_toposort(g, err) || ac_graph_infer_shapes(g, err) ||
        ac_graph_simplify(g, NULL, err))
        ac_graph_destroy(&g);
    return g;
}

static void test_corruption(const ac_plan *p, const uint8_t *buf, size_t len, size_t dense,
                            size_t spread, int flips);

static void test_tiny(const char *seed_dir)
{
    ac_err err = {0};
    ac_graph *g = tiny_graph(&err);
    CHECK(g, "tiny graph: %s", err.msg);
    if (!g)
        return;
    enum { NB = 6 };
    int64_t in_numel = ac_tensor_numel(&g->tensors[g->inputs[0]]);
    float *x = malloc(sizeof(float) * (size_t)(in_numel * NB));
    for (int64_t i = 0; i < in_numel * NB; i++)
        x[i] = frand() * 2.0f;
    ac_calib_table *tab = qt_absmax_table(g, x, NB, &err);
    CHECK(tab, "tiny: calibration: %s", err.msg);
    for (int pc = 0; tab && pc < 2; pc++) {
        ac_quant_options opt = {.per_channel = pc != 0};
        ac_plan *p = ac_plan_build(g, tab, &opt, &err);
        CHECK(p, "tiny: plan: %s", err.msg);
        if (!p)
            continue;
        /* The graph must reach most kinds, or the test tests less than it says. */
        bool seen[AC_Q8_MOVE + 1] = {0};
        for (int i = 0; i < g->nnodes; i++)
            seen[p->nodes[i].kind] = true;
        static const ac_q8_kind want[] = {AC_Q8_CONV, AC_Q8_FC, AC_Q8_ADD, AC_Q8_MUL,
                                          AC_Q8_CONCAT, AC_Q8_MAXPOOL, AC_Q8_AVGPOOL,
                                          AC_Q8_GLOBAL_AVGPOOL, AC_Q8_CLAMP, AC_Q8_PRELU,
                                          AC_Q8_LUT};
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            CHECK(seen[want[k]], "tiny: no int8 %s node (plan below)", ac_q8_kind_name(want[k]));
        if (failures)
            ac_plan_print(p, stdout);
        uint8_t *buf;
        size_t len;
        ac_int8_model *m = round_trip(p, x, NB, pc ? "tiny per-channel" : "tiny", &buf, &len);
        printf("tiny%s: %d int8 / %d fp32 nodes, %zu bytes\n", pc ? " per-channel" : "",
               p->n_int8, p->n_fp32, len);
        if (m && pc == 0)
            test_corruption(p, buf, len, len, 1, 2000);
        if (seed_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/tiny%s.int8", seed_dir, pc ? "_per_channel" : "");
            CHECK(write_file(path, buf, len) == 0, "write %s", path);
        }
        ac_int8_model_destroy(&m);
        free(buf);
        ac_plan_destroy(&p);
    }
    ac_calib_table_destroy(&tab);
    free(x);
    ac_graph_destroy(&g);
}

/* ---- corruption ----------------------------------------------------------------------------- */

/* Parsing must fail with a status and a message, or succeed; never crash. */
static int parse_outcome(const uint8_t *buf, size_t len, char *msg, size_t cap)
{
    ac_err err = {0};
    ac_int8_model *m = ac_int8_model_parse(buf, len, "corrupt.int8", &err);
    if (m) {
        ac_int8_model_destroy(&m);
        return 0;
    }
    CHECK(err.code != AC_OK && err.msg[0], "a failed parse without a message");
    snprintf(msg, cap, "%s", err.msg);
    return -1;
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; m && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* Truncations: every offset below `dense`, then about `spread` more; `flips`
 * random byte changes. */
static void test_corruption(const ac_plan *p, const uint8_t *buf, size_t len, size_t dense,
                            size_t spread, int flips)
{
    char msg[AC_ERR_MSG_MAX];
    uint8_t *c = malloc(len + 1);
    int truncs = 0;
    size_t step = len / spread > 0 ? len / spread : 1;
    for (size_t cut = 0; cut < len; cut += cut < dense ? 1 : step) {
        memcpy(c, buf, cut);
        CHECK(parse_outcome(c, cut, msg, sizeof msg) != 0, "truncated at %zu of %zu accepted", cut,
              len);
        truncs++;
    }
    printf("corruption: %d truncations rejected (e.g. \"%s\")\n", truncs, msg);
    /* One trailing byte. */
    memcpy(c, buf, len);
    c[len] = 0xc0;
    CHECK(parse_outcome(c, len + 1, msg, sizeof msg) != 0 && strstr(msg, "trailing"),
          "trailing byte: %s", msg);
    /* Magic and version. */
    memcpy(c, buf, len);
    uint8_t *at = (uint8_t *)find_bytes(c, len, AC_INT8_MODEL_FORMAT, strlen(AC_INT8_MODEL_FORMAT));
    if (at) {
        at[strlen(AC_INT8_MODEL_FORMAT) - 1] = '9';
        CHECK(parse_outcome(c, len, msg, sizeof msg) != 0 && strstr(msg, "format"),
              "wrong magic: %s", msg);
        CHECK(!ac_int8_model_detect_bytes(c, len), "wrong magic detected as an int8 model");
    }
    memcpy(c, buf, len);
    at = (uint8_t *)find_bytes(c, len, "\xa7version\x01", 9);
    CHECK(at, "version field not found");
    if (at) {
        at[8] = 2;
        CHECK(parse_outcome(c, len, msg, sizeof msg) != 0 && strstr(msg, "version 2"),
              "version 2: %s", msg);
    }
    /* An option changed: the rebuilt plan differs from the stored one. */
    memcpy(c, buf, len);
    at = (uint8_t *)find_bytes(c, len, "\xabper_channel", 12);
    if (at && (at[12] == 0xc2 || at[12] == 0xc3)) {
        at[12] ^= 1;
        CHECK(parse_outcome(c, len, msg, sizeof msg) != 0 && strstr(msg, "different version"),
              "per_channel flipped: %s", msg);
        printf("corruption: per_channel flipped -> \"%s\"\n", msg);
    }
    /* One stored int8 weight changed: the verification names the node and the parameter. */
    for (int i = 0; i < p->g->nnodes; i++) {
        const ac_node_plan *np = &p->nodes[i];
        if (np->mode != AC_MODE_INT8 || np->kind != AC_Q8_CONV)
            continue;
        size_t nw = (size_t)np->u.conv.s.c_out * (size_t)(np->u.conv.s.c_in / np->u.conv.s.groups) *
                    (size_t)np->u.conv.s.kh * (size_t)np->u.conv.s.kw;
        memcpy(c, buf, len);
        at = (uint8_t *)find_bytes(c, len, np->u.conv.w, nw);
        CHECK(at, "weights of '%s' not found in the file", p->g->nodes[i].name);
        if (!at)
            break;
        at[nw / 2] ^= 0x01;
        CHECK(parse_outcome(c, len, msg, sizeof msg) != 0 &&
                  strstr(msg, p->g->nodes[i].name) && strstr(msg, "'weights'") &&
                  strstr(msg, "different version or corrupted"),
              "changed weight: %s", msg);
        printf("corruption: weight byte changed -> \"%s\"\n", msg);
        break;
    }
    /* Random byte flips: an error or a valid model, never a crash. */
    uint32_t s = 777;
    int rejected = 0;
    for (int k = 0; k < flips; k++) {
        memcpy(c, buf, len);
        s = s * 1664525u + 1013904223u;
        size_t pos = (s >> 4) % len;
        s = s * 1664525u + 1013904223u;
        c[pos] ^= (uint8_t)(1u + (s >> 24) % 255u);
        rejected += parse_outcome(c, len, msg, sizeof msg) != 0;
    }
    printf("corruption: %d of %d random byte changes rejected\n", rejected, flips);
    free(c);
}

/* ---- Fashion-MNIST models ------------------------------------------------------------------ */

#define FM_BATCH 8
#define FM_CALIB 48
#define FM_TEST 32
#define FM_DATA "/usr/share/datasets/fashion-mnist"

/* Batch 8 -> 2 on a loaded model equals a plan built for batch 2 directly. */
static void test_reshape(ac_int8_model *m, const char *path, const ac_calib_table *tab,
                         const float *x)
{
    ac_err err = {0};
    CHECK(ac_int8_model_set_input_shapes(m, "(3,1,28)", &err) != 0 && strstr(err.msg, "dims"),
          "a 3-D shape for a 4-D input: %s", err.msg);
    CHECK(ac_int8_model_graph(m)->tensors[ac_int8_model_graph(m)->inputs[0]].dims[0] == FM_BATCH,
          "a failed reshape keeps the shapes");
    CHECK(ac_int8_model_set_input_shapes(m, "(2,1,28,28)", &err) == 0, "reshape: %s", err.msg);
    ac_graph *g2 = qt_load(path, "(2,1,28,28)", &err);
    ac_plan *p2 = g2 ? ac_plan_build(g2, tab, NULL, &err) : NULL;
    CHECK(p2, "batch-2 plan: %s", err.msg);
    if (p2)
        compare_runs(g2, p2, ac_int8_model_graph(m), ac_int8_model_plan(m), x, 3,
                     "reshaped to batch 2");
    ac_plan_destroy(&p2);
    ac_graph_destroy(&g2);
}

/* Two plans' executors sharing one lent arena, run alternately batch by
 * batch, give the outputs of executors with arenas of their own; a lent
 * executor refuses to run before an arena is lent. */
static void test_lent_arena(const ac_plan *pa, const ac_plan *pb, const float *x, int nbatch)
{
    ac_err err = {0};
    const ac_plan *plans[2] = {pa, pb};
    ac_qexec *own[2], *lent[2];
    size_t need = 0;
    for (int i = 0; i < 2; i++) {
        own[i] = ac_qexec_new_shared(plans[i], &err);
        lent[i] = ac_qexec_new_lent(plans[i], &err);
        CHECK(own[i] && lent[i], "lent arena: %s", err.msg);
        if (!own[i] || !lent[i])
            return;
        if (ac_qexec_activation_bytes(lent[i]) > need)
            need = ac_qexec_activation_bytes(lent[i]);
    }
    const ac_graph *g = pa->g;
    const int64_t in_numel = ac_tensor_numel(&g->tensors[g->inputs[0]]);
    const size_t ob = sizeof(float) * (size_t)ac_tensor_numel(&g->tensors[g->outputs[0]]);
    const void *in0[1] = {x};
    CHECK(ac_qexec_run(lent[0], in0, &err) != 0 && strstr(err.msg, "lent"), "run before a lend: %s", err.msg);
    void *pool = NULL;
    CHECK(posix_memalign(&pool, 64, need ? need : 1) == 0, "pool");
    for (int k = 0; pool && k < nbatch; k++)
        for (int i = 0; i < 2; i++) {
            const void *in[1] = {x + (int64_t)k * in_numel};
            ac_qexec_lend(lent[i], pool);
            CHECK(ac_qexec_run(own[i], in, &err) == 0 && ac_qexec_run(lent[i], in, &err) == 0, "%s", err.msg);
            const float *ya = ac_qexec_tensor_float(own[i], g->outputs[0]);
            const float *yb = ac_qexec_tensor_float(lent[i], g->outputs[0]);
            CHECK(ya && yb && !memcmp(ya, yb, ob), "plan %d batch %d: the lent arena's outputs differ", i, k);
        }
    free(pool);
    for (int i = 0; i < 2; i++) {
        ac_qexec_destroy(&own[i]);
        ac_qexec_destroy(&lent[i]);
    }
}

static void test_fmnist(const char *repo, const char *zoo, const char *file_out)
{
    ac_err err = {0};
    int32_t *lcal = NULL, *lte = NULL;
    float *xcal = qt_fmnist(FM_DATA "/train-images-idx3-ubyte.gz",
                            FM_DATA "/train-labels-idx1-ubyte.gz", 0, FM_CALIB, &lcal, &err);
    float *xte = xcal ? qt_fmnist(FM_DATA "/t10k-images-idx3-ubyte.gz",
                                  FM_DATA "/t10k-labels-idx1-ubyte.gz", 0, FM_TEST, &lte, &err)
                      : NULL;
    if (!xcal || !xte) {
        printf("SKIP Fashion-MNIST models: %s\n", err.msg);
        goto done;
    }
    static const char *models[] = {"fmnist_plain.onnx", "fmnist_resnet.onnx", "fmnist_mbv2.onnx"};
    for (int mi = 0; mi < 3; mi++) {
        char path[4096], shape[64];
        if (!qt_find_fmnist_model(repo, zoo, models[mi], path, sizeof path)) {
            printf("SKIP %s: not in %s/models nor %s/fmnist\n", models[mi], repo, zoo);
            continue;
        }
        snprintf(shape, sizeof shape, "(%d,1,28,28)", FM_BATCH);
        ac_graph *g = qt_load(path, shape, &err);
        CHECK(g, "%s: %s", path, err.msg);
        if (!g)
            continue;
        ac_calib_table *tab = qt_absmax_table(g, xcal, FM_CALIB / FM_BATCH, &err);
        CHECK(tab, "%s: calibration: %s", path, err.msg);
        /* Per-tensor, per-channel, and the fp32 options (with one named layer). */
        const char *forced[1] = {g->nodes[g->nnodes - 1].name};
        ac_quant_options opts[3] = {
            {0},
            {.per_channel = true},
            {.accuracy_opt = true, .first_conv_fp32 = true, .fp32_layers = forced,
             .n_fp32_layers = 1},
        };
        if (tab) {
            ac_plan *pt = ac_plan_build(g, tab, &opts[0], &err), *pc = ac_plan_build(g, tab, &opts[1], &err);
            CHECK(pt && pc, "%s: plans: %s", path, err.msg);
            if (pt && pc)
                test_lent_arena(pt, pc, xte, 2);
            ac_plan_destroy(&pt);
            ac_plan_destroy(&pc);
        }
        for (int k = 0; tab && k < 3; k++) {
            ac_plan *p = ac_plan_build(g, tab, &opts[k], &err);
            CHECK(p, "%s: plan: %s", path, err.msg);
            if (!p)
                continue;
            char what[256];
            snprintf(what, sizeof what, "%s [%s]", models[mi],
                     k == 0 ? "per-tensor" : k == 1 ? "per-channel" : "fp32 options");
            uint8_t *buf = NULL;
            size_t len = 0;
            ac_int8_model *m = round_trip(p, xte, FM_TEST / FM_BATCH, what, &buf, &len);
            printf("%s: %d int8 / %d fp32 nodes, %zu bytes, reloaded %s\n", what, p->n_int8,
                   p->n_fp32, len, m ? "bit-identical" : "FAILED");
            if (mi == 0 && k == 0 && m) {
                test_corruption(p, buf, len, 64, 60, 60);
                /* The file path API: write atomically, detect, load. */
                char tmp[64];
                snprintf(tmp, sizeof tmp, "/tmp/int8_model_test.%d.int8", (int)getpid());
                const char *out = file_out ? file_out : tmp;
                CHECK(ac_int8_model_write(out, p, &err) == 0, "write: %s", err.msg);
                CHECK(ac_int8_model_detect(out), "detect %s", out);
                CHECK(!ac_int8_model_detect(path), "an ONNX file detected as int8 model");
                ac_int8_model *l = ac_int8_model_load(out, &err);
                CHECK(l, "load %s: %s", out, err.msg);
                ac_int8_model_destroy(&l);
                if (!file_out)
                    unlink(tmp);
                CHECK(!ac_int8_model_load("/nonexistent/x.int8", &err) && err.code == AC_E_IO,
                      "missing file: %s", err.msg);
                test_reshape(m, path, tab, xte);
            }
            ac_int8_model_destroy(&m);
            free(buf);
            ac_plan_destroy(&p);
        }
        ac_calib_table_destroy(&tab);
        ac_graph_destroy(&g);
    }
done:
    free(xcal);
    free(xte);
    free(lcal);
    free(lte);
}

/* A seed from an imported ONNX file (the fuzz corpus's single-conv model). */
static void seed_from_onnx(const char *repo, const char *seed_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/onnx/test_conv_with_strides_padding.onnx",
             repo);
    ac_err err = {0};
    ac_model_options mo = {0};
    ac_graph *g = ac_model_load(path, &mo, NULL, &err);
    CHECK(g, "%s: %s", path, err.msg);
    if (!g)
        return;
    int64_t n = ac_tensor_numel(&g->tensors[g->inputs[0]]);
    float *x = malloc(sizeof(float) * (size_t)n * 2);
    for (int64_t i = 0; i < 2 * n; i++)
        x[i] = frand();
    ac_calib_table *tab = qt_absmax_table(g, x, 2, &err);
    ac_plan *p = tab ? ac_plan_build(g, tab, NULL, &err) : NULL;
    CHECK(p, "%s: %s", path, err.msg);
    if (p) {
        uint8_t *buf;
        size_t len;
        ac_int8_model *m = round_trip(p, x, 2, "onnx conv", &buf, &len);
        snprintf(path, sizeof path, "%s/onnx_conv.int8", seed_dir);
        CHECK(write_file(path, buf, len) == 0, "write %s", path);
        ac_int8_model_destroy(&m);
        free(buf);
    }
    ac_plan_destroy(&p);
    ac_calib_table_destroy(&tab);
    free(x);
    ac_graph_destroy(&g);
}

int main(int argc, char **argv)
{
    const char *repo = argc > 1 ? argv[1] : ".";
    const char *zoo = argc > 2 ? argv[2] : "../shared/zoo";
    const char *seed_dir = NULL, *file_out = NULL;
    for (int i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--write-seeds") == 0)
            seed_dir = argv[++i];
        else if (strcmp(argv[i], "--write-model") == 0)
            file_out = argv[++i];
    }
    test_mpack();
    test_tiny(seed_dir);
    if (seed_dir)
        seed_from_onnx(repo, seed_dir);
    test_fmnist(repo, zoo, file_out);
    if (failures) {
        printf("int8_model_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("int8_model_test: all passed\n");
    return 0;
}
