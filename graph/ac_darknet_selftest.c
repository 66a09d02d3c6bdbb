/* Selftest of the Darknet importer: two small hand-written networks whose
 * weights files are written here, run through the importer and the fp32
 * executor and compared with a direct implementation of darknet's forward
 * pass (written below from darknet's formulas, independent of the importer's
 * mapping); the weights header variants; and the error messages, which must
 * name the file, the line and the rule. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_darknet.h"
#include "ac_exec.h"
#include "ac_model.h"
#include "ac_check.h"

/* ---- deterministic parameters ------------------------------------------------------------ */

static uint32_t rng = 12345;
static float urand(float lo, float hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / (float)(1u << 24);
}

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void header(buf *w, int major, int minor, int rev, bool seen64)
{
    int32_t v[3] = {major, minor, rev};
    put(w, v, sizeof v);
    uint64_t seen = 64000;
    put(w, &seen, seen64 ? 8 : 4);
}

/* One layer's parameters, kept for the reference. */
typedef struct {
    int n, per_out;
    bool bn;
    float *bias, *scale, *mean, *var, *w;
} params;

static params make_params(int n, int per_out, bool bn)
{
    params p = {n, per_out, bn, calloc((size_t)n, 4), calloc((size_t)n, 4), calloc((size_t)n, 4),
                calloc((size_t)n, 4), calloc((size_t)(n * per_out), 4)};
    for (int i = 0; i < n; i++) {
        p.bias[i] = urand(-0.5f, 0.5f);
        p.scale[i] = urand(0.5f, 1.5f);
        p.mean[i] = urand(-0.3f, 0.3f);
        p.var[i] = urand(0.2f, 2.0f);
    }
    for (int i = 0; i < n * per_out; i++)
        p.w[i] = urand(-1, 1);
    return p;
}

static void free_params(params *p)
{
    free(p->bias);
    free(p->scale);
    free(p->mean);
    free(p->var);
    free(p->w);
}

/* darknet's file order: convolutional: biases, [scales, mean, var,] weights;
 * connected: biases, weights, [scales, mean, var]. transposed: connected
 * weights as [inputs][outputs]. */
static void write_params(buf *w, const params *p, bool connected, bool transposed)
{
    put(w, p->bias, (size_t)p->n * 4);
    if (connected) {
        if (transposed)
            for (int i = 0; i < p->per_out; i++)
                for (int o = 0; o < p->n; o++)
                    put(w, &p->w[o * p->per_out + i], 4);
        else
            put(w, p->w, (size_t)(p->n * p->per_out) * 4);
    }
    if (p->bn) {
        put(w, p->scale, (size_t)p->n * 4);
        put(w, p->mean, (size_t)p->n * 4);
        put(w, p->var, (size_t)p->n * 4);
    }
    if (!connected)
        put(w, p->w, (size_t)(p->n * p->per_out) * 4);
}

/* ---- darknet's forward pass, written from its formulas ------------------------------------ */

typedef enum { LINEAR, LEAKY, RELU, LOGISTIC, TANH, SWISH, MISH } act;

static float activate(float x, act a)
{
    switch (a) {
    case LEAKY: return x > 0 ? x : .1f * x;
    case RELU: return x * (x > 0);
    case LOGISTIC: return 1.f / (1.f + expf(-x));
    case TANH: return tanhf(x);
    case SWISH: return x / (1.f + expf(-x));
    case MISH: {
        float sp = x > 20 ? x : (x < -20 ? expf(x) : log1pf(expf(x))); /* darknet's softplus */
        return x * tanhf(sp);
    }
    default: return x;
    }
}

typedef struct {
    int c, h, w;
    float *d;
} tensor;

static tensor tnew(int c, int h, int w) { return (tensor){c, h, w, calloc((size_t)(c * h * w), sizeof(float))}; }

/* conv without bias, then darknet's batch norm or bias, then the activation */
static tensor ref_conv(tensor x, const params *p, int size, int stride, int pad, int groups, act a)
{
    int oh = (x.h + 2 * pad - size) / stride + 1, ow = (x.w + 2 * pad - size) / stride + 1;
    tensor y = tnew(p->n, oh, ow);
    int cg = x.c / groups, ng = p->n / groups;
    for (int o = 0; o < p->n; o++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double s = 0;
                for (int c = 0; c < cg; c++)
                    for (int ki = 0; ki < size; ki++)
                        for (int kj = 0; kj < size; kj++) {
                            int yy = i * stride - pad + ki, xx = j * stride - pad + kj;
                            if (yy < 0 || yy >= x.h || xx < 0 || xx >= x.w)
                                continue;
                            s += (double)p->w[((o * cg + c) * size + ki) * size + kj] *
                                 x.d[((o / ng * cg + c) * x.h + yy) * x.w + xx];
                        }
                float v = (float)s;
                if (p->bn)
                    v = (v - p->mean[o]) / (sqrtf(p->var[o]) + .000001f) * p->scale[o];
                y.d[(o * oh + i) * ow + j] = activate(v + p->bias[o], a);
            }
    return y;
}

static tensor ref_maxpool(tensor x, int size, int stride)
{
    int pad = size - 1, off = -pad / 2; /* darknet's default padding and offset */
    int oh = (x.h + pad - size) / stride + 1, ow = (x.w + pad - size) / stride + 1;
    tensor y = tnew(x.c, oh, ow);
    for (int c = 0; c < x.c; c++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                float m = -FLT_MAX;
                for (int ki = 0; ki < size; ki++)
                    for (int kj = 0; kj < size; kj++) {
                        int yy = off + i * stride + ki, xx = off + j * stride + kj;
                        if (yy >= 0 && yy < x.h && xx >= 0 && xx < x.w && x.d[(c * x.h + yy) * x.w + xx] > m)
                            m = x.d[(c * x.h + yy) * x.w + xx];
                    }
                y.d[(c * oh + i) * ow + j] = m;
            }
    return y;
}

static tensor ref_connected(tensor x, const params *p, act a)
{
    tensor y = tnew(p->n, 1, 1);
    for (int o = 0; o < p->n; o++) {
        double s = 0;
        for (int i = 0; i < p->per_out; i++)
            s += (double)p->w[o * p->per_out + i] * x.d[i];
        float v = (float)s;
        if (p->bn)
            v = (v - p->mean[o]) / (sqrtf(p->var[o]) + .000001f) * p->scale[o];
        y.d[o] = activate(v + p->bias[o], a);
    }
    return y;
}

/* ---- running the importer ---------------------------------------------------------------- */

static float max_rel_diff(const float *a, const float *b, int64_t n)
{
    float worst = 0, scale = 1e-6f;
    for (int64_t i = 0; i < n; i++)
        scale = fmaxf(scale, fabsf(b[i]));
    for (int64_t i = 0; i < n; i++)
        worst = fmaxf(worst, fabsf(a[i] - b[i]) / scale);
    return worst;
}

/* Runs g on x and compares output k with want (numel elements). */
static void check_run(const ac_graph *g, const float *x, int k, const float *want, int64_t numel, const char *what)
{
    ac_err err = {0};
    ac_exec *e = ac_exec_new(g, &err);
    CHECK(e, "%s: %s", what, err.msg);
    if (!e)
        return;
    const void *ins[1] = {x};
    CHECK(ac_exec_run(e, ins, &err) == 0, "%s: %s", what, err.msg);
    const ac_tensor *t = &g->tensors[g->outputs[k]];
    CHECK(ac_tensor_numel(t) == numel, "%s: output has %lld elements, want %lld", what, (long long)ac_tensor_numel(t),
          (long long)numel);
    if (ac_tensor_numel(t) == numel) {
        float d = max_rel_diff(ac_exec_tensor(e, g->outputs[k]), want, numel);
        CHECK(d < 2e-5f, "%s: max relative difference %g from darknet's formulas", what, (double)d);
    }
    ac_exec_destroy(&e);
}

/* A detector: every layer kind of Yolo-Fastest and more (route groups,
 * upsample, mish, swish, stride-1 maxpool with darknet's padding). */
static const char *det_cfg = "[net]\n"
                             "# training keys are ignored\n"
                             "batch=4\nwidth=6\nheight=6\nchannels=2\nlearning_rate=0.001\n"
                             "\n"
                             "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
                             "[maxpool]\nsize=2\nstride=2\n"
                             "[convolutional]\nfilters=4\nsize=1\ngroups=2\nactivation=mish\n"
                             "[shortcut]\nfrom=-2\nactivation=linear\n"
                             "[route]\nlayers=-1,-3\ngroups=2\ngroup_id=1\n"
                             "[upsample]\nstride=2\n"
                             "[convolutional]\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=swish\n"
                             "[maxpool]\nsize=3\nstride=1\n"
                             "[dropout]\nprobability=.15\n"
                             "[convolutional]\nfilters=12\nsize=1\nactivation=linear\n"
                             "[yolo]\nmask = 0, 1\nanchors = 2,3,  4,5,  6,7\nnum=3\nclasses=1\nscale_x_y=1.05\n"
                             "jitter=.3\nignore_thresh=.7\n";

static void test_detector(void)
{
    params p0 = make_params(4, 2 * 9, true), p2 = make_params(4, 2, false), p6 = make_params(6, 4 * 9, false),
           p9 = make_params(12, 6, false);
    /* a tiny variance: darknet's sqrt(var) + 1e-6 differs from ONNX's sqrt(var + eps) */
    p0.var[3] = 1e-8f;
    p0.scale[3] = 1e-5f;
    buf w = {0};
    header(&w, 0, 2, 5, true);
    write_params(&w, &p0, false, false);
    write_params(&w, &p2, false, false);
    write_params(&w, &p6, false, false);
    write_params(&w, &p9, false, false);
    tensor x = tnew(2, 6, 6);
    for (int i = 0; i < 72; i++)
        x.d[i] = urand(0, 1);
    /* the reference, layer by layer */
    tensor l0 = ref_conv(x, &p0, 3, 1, 1, 1, LEAKY), l1 = ref_maxpool(l0, 2, 2), l2 = ref_conv(l1, &p2, 1, 1, 0, 2, MISH);
    tensor l3 = tnew(4, 3, 3);
    for (int i = 0; i < 36; i++)
        l3.d[i] = l2.d[i] + l1.d[i];
    tensor l4 = tnew(4, 3, 3); /* group 1 of 2 of each input: channels 2,3 of l3 then of l1 */
    memcpy(l4.d, l3.d + 18, 18 * 4);
    memcpy(l4.d + 18, l1.d + 18, 18 * 4);
    tensor l5 = tnew(4, 6, 6);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)
                l5.d[(c * 6 + i) * 6 + j] = l4.d[(c * 3 + i / 2) * 3 + j / 2];
    tensor l6 = ref_conv(l5, &p6, 3, 2, 1, 1, SWISH), l7 = ref_maxpool(l6, 3, 1), l9 = ref_conv(l7, &p9, 1, 1, 0, 1, LINEAR);

    ac_err err = {0};
    ac_graph *g = ac_darknet_load_buffer(det_cfg, strlen(det_cfg), "det.cfg", w.b, w.n, "det.weights", NULL, &err);
    CHECK(g, "det: %s", err.msg);
    if (g) {
        CHECK(g->ninputs == 1 && g->noutputs == 1, "io %d %d", g->ninputs, g->noutputs);
        const ac_tensor *out = &g->tensors[g->outputs[0]];
        CHECK(out->ndim == 4 && out->dims[1] == 12 && out->dims[2] == 3 && out->dims[3] == 3, "yolo input shape");
        check_run(g, x.d, 0, l9.d, 12 * 9, "detector");
        ac_darknet_head hd[4];
        int n = 0;
        CHECK(ac_darknet_heads(g, hd, 4, &n, &err) == 0 && n == 1, "heads: %s (n %d)", err.msg, n);
        CHECK(hd[0].kind == AC_DARKNET_YOLO && hd[0].classes == 1 && hd[0].output == 0 && hd[0].nmask == 2 &&
                  hd[0].mask[0] == 0 && hd[0].mask[1] == 1 && hd[0].nanchors == 3 && hd[0].anchors[2][0] == 6 &&
                  hd[0].anchors[2][1] == 7 && fabsf(hd[0].scale_xy - 1.05f) < 1e-6f,
              "head metadata '%s'", ac_graph_get_meta(g, "darknet.head.0"));
        CHECK(!strcmp(ac_graph_get_meta(g, "darknet.weights_version"), "0.2.5") &&
                  !strcmp(ac_graph_get_meta(g, "darknet.seen"), "64000"),
              "header metadata");
        /* as ONNX (what the farm's workers load): the same graph, names, values and heads */
        uint8_t *onnx = NULL;
        size_t onnx_len = 0;
        CHECK(ac_onnx_save_buffer(g, &onnx, &onnx_len, &err) == 0, "ONNX export: %s", err.msg);
        ac_graph *back = onnx ? ac_onnx_load_buffer(onnx, onnx_len, "det.onnx", NULL, &err) : NULL;
        CHECK(back, "ONNX reload: %s", err.msg);
        if (back) {
            CHECK(back->nnodes == g->nnodes && back->opset == 13, "nodes %d vs %d", back->nnodes, g->nnodes);
            for (int i = 0; i < g->nnodes && i < back->nnodes; i++)
                CHECK(!strcmp(back->nodes[i].name, g->nodes[i].name) && back->nodes[i].op == g->nodes[i].op,
                      "node %d: %s vs %s", i, back->nodes[i].name, g->nodes[i].name);
            CHECK(!strcmp(back->tensors[back->outputs[0]].name, g->tensors[g->outputs[0]].name), "output name");
            CHECK(!strcmp(ac_graph_get_meta(back, "darknet.head.0"), ac_graph_get_meta(g, "darknet.head.0")),
                  "metadata survives");
            check_run(back, x.d, 0, l9.d, 12 * 9, "detector via ONNX");
            ac_graph_destroy(&back);
        }
        free(onnx);
        /* the simplification passes (swish -> SiLU) keep the values */
        ac_passes_stats st;
        CHECK(ac_graph_simplify(g, &st, &err) == 0, "simplify: %s", err.msg);
        CHECK(st.silu_recognised == 1, "swish became %d SiLU", st.silu_recognised);
        check_run(g, x.d, 0, l9.d, 12 * 9, "detector, simplified");
        CHECK(ac_onnx_save_buffer(g, &onnx, &onnx_len, &err) != 0 && strstr(err.msg, "(SiLU) has no ONNX form"),
              "SiLU export: %s", err.msg);
        ac_graph_destroy(&g);
    }
    /* a batch of 3 and another spatial size through an input shape override */
    ac_onnx_shape sh = {.ndim = 4, .dims = {3, 2, 12, 12}};
    ac_darknet_options o = {.shape = &sh};
    g = ac_darknet_load_buffer(det_cfg, strlen(det_cfg), "det.cfg", w.b, w.n, "det.weights", &o, &err);
    CHECK(g && g->tensors[g->outputs[0]].dims[0] == 3 && g->tensors[g->outputs[0]].dims[2] == 6, "override: %s",
          g ? "wrong shape" : err.msg);
    ac_graph_destroy(&g);
    /* the cfg alone (no weights): same graph, zero parameters */
    g = ac_darknet_load_buffer(det_cfg, strlen(det_cfg), "det.cfg", NULL, 0, NULL, NULL, &err);
    CHECK(g && g->nnodes > 10, "cfg alone: %s", g ? "few nodes" : err.msg);
    ac_graph_destroy(&g);
    tensor all[] = {x, l0, l1, l2, l3, l4, l5, l6, l7, l9};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i].d);
    params *ps[] = {&p0, &p2, &p6, &p9};
    for (int i = 0; i < 4; i++)
        free_params(ps[i]);
    free(w.b);
}

/* A classifier: conv + bn, logistic/tanh/relu, avgpool, connected with batch
 * norm, dropout, softmax groups, cost. */
static const char *cls_cfg = "[network]\nwidth=4\nheight=4\nchannels=3\n"
                             "[convolutional]\nbatch_normalize=1\nfilters=5\nsize=3\nstride=2\npad=1\nactivation=relu\n"
                             "[convolutional]\nfilters=5\nsize=1\nactivation=logistic\n"
                             "[convolutional]\nfilters=5\nsize=1\nactivation=tanh\n"
                             "[avgpool]\n"
                             "[connected]\noutput=7\nbatch_normalize=1\nactivation=leaky\n"
                             "[dropout]\nprobability=.5\n"
                             "[connected]\noutput=6\nactivation=linear\n"
                             "[softmax]\ngroups=2\n"
                             "[cost]\ntype=sse\n";

static void classifier_weights(buf *w, const params *p, int major, int minor, bool seen64, bool transposed)
{
    header(w, major, minor, 0, seen64);
    write_params(w, &p[0], false, false);
    write_params(w, &p[1], false, false);
    write_params(w, &p[2], false, false);
    write_params(w, &p[3], true, transposed);
    write_params(w, &p[4], true, transposed);
}

static void test_classifier(void)
{
    params p[5] = {make_params(5, 27, true), make_params(5, 5, false), make_params(5, 5, false),
                   make_params(7, 5, true), make_params(6, 7, false)};
    tensor x = tnew(3, 4, 4);
    for (int i = 0; i < 48; i++)
        x.d[i] = urand(-1, 1);
    tensor l0 = ref_conv(x, &p[0], 3, 2, 1, 1, RELU), l1 = ref_conv(l0, &p[1], 1, 1, 0, 1, LOGISTIC),
           l2 = ref_conv(l1, &p[2], 1, 1, 0, 1, TANH), l3 = tnew(5, 1, 1);
    for (int c = 0; c < 5; c++)
        l3.d[c] = (l2.d[c * 4] + l2.d[c * 4 + 1] + l2.d[c * 4 + 2] + l2.d[c * 4 + 3]) / 4;
    tensor l4 = ref_connected(l3, &p[3], LEAKY), l6 = ref_connected(l4, &p[4], LINEAR), l7 = tnew(6, 1, 1);
    for (int gi = 0; gi < 2; gi++) {
        float m = fmaxf(fmaxf(l6.d[3 * gi], l6.d[3 * gi + 1]), l6.d[3 * gi + 2]), s = 0;
        for (int k = 0; k < 3; k++)
            s += expf(l6.d[3 * gi + k] - m);
        for (int k = 0; k < 3; k++)
            l7.d[3 * gi + k] = expf(l6.d[3 * gi + k] - m) / s;
    }
    /* the header variants: 0.2 with a 64-bit seen, 0.1 with a 32-bit one, and
     * a version above 1000 (32-bit seen) with transposed connected weights */
    struct {
        int major, minor;
        bool seen64, transposed;
    } v[3] = {{0, 2, true, false}, {0, 1, false, false}, {1001, 0, false, true}};
    for (int k = 0; k < 3; k++) {
        buf w = {0};
        classifier_weights(&w, p, v[k].major, v[k].minor, v[k].seen64, v[k].transposed);
        ac_err err = {0};
        ac_graph *g = ac_darknet_load_buffer(cls_cfg, strlen(cls_cfg), "cls.cfg", w.b, w.n, "cls.weights", NULL, &err);
        CHECK(g, "classifier, version %d.%d: %s", v[k].major, v[k].minor, err.msg);
        if (g) {
            const ac_tensor *out = &g->tensors[g->outputs[0]];
            CHECK(out->ndim == 2 && out->dims[1] == 6, "softmax output [1,6], ndim %d", out->ndim);
            CHECK(!strcmp(ac_graph_get_meta(g, "darknet.heads"), "0"), "no heads");
            check_run(g, x.d, 0, l7.d, 6, "classifier");
            ac_graph_destroy(&g);
        }
        free(w.b);
    }
    tensor all[] = {x, l0, l1, l2, l3, l4, l6, l7};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i].d);
    for (int i = 0; i < 5; i++)
        free_params(&p[i]);
}

/* ---- errors ------------------------------------------------------------------------------ */

/* A cfg built from the classifier by replacing one line (or appending text). */
static void expect_cfg_error(const char *cfg, const char *want1, const char *want2)
{
    ac_err err = {0};
    ac_graph *g = ac_darknet_load_buffer(cfg, strlen(cfg), "t.cfg", NULL, 0, NULL, NULL, &err);
    CHECK(!g && err.code && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)),
          "cfg\n%s\nwant '%s' and '%s', got: %s", cfg, want1, want2 ? want2 : "", g ? "(loaded)" : err.msg);
    ac_graph_destroy(&g);
}

#define NET "[net]\nwidth=8\nheight=8\nchannels=3\n"
#define CONV "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"

static void test_cfg_errors(void)
{
    expect_cfg_error("", "t.cfg: no sections", NULL);
    expect_cfg_error("[convolutional]\nfilters=1\n", "t.cfg:1: the first section is [convolutional]", NULL);
    expect_cfg_error("width=3\n[net]\n", "t.cfg:1: option 'width=3' comes before the first section", NULL);
    expect_cfg_error(NET "[conv olutional\n", "t.cfg:5: a section header", NULL);
    expect_cfg_error(NET "just words\n", "t.cfg:5: 'justwords' is neither", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=\n", "t.cfg:6: key 'filters' has no value", NULL);
    expect_cfg_error(NET "[convolutional]\nfil-ters=3\n", "t.cfg:6: a key is letters", NULL);
    expect_cfg_error(NET CONV "filters=8\n", "t.cfg:10: key 'filters' appears twice in [convolutional] (first on line 6)",
                     NULL);
    expect_cfg_error("[net]\nwidth=8\nheight=8\n", "t.cfg:1: [net]: width, height and channels", NULL);
    expect_cfg_error("[net]\nwidth=8x\nheight=8\nchannels=3\n", "t.cfg:2: [net]: key 'width': '8x' is not an integer",
                     NULL);
    expect_cfg_error(NET, "no layers after [net]", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=4\nsize=three\n",
                     "t.cfg:7: [convolutional] layer 0: key 'size': 'three' is not an integer", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=0\n", "t.cfg:6: [convolutional] layer 0: key 'filters': 0 is outside",
                     NULL);
    expect_cfg_error(NET CONV "binary=1\n", "t.cfg:10: [convolutional] layer 0: key 'binary': '1': this darknet feature",
                     NULL);
    expect_cfg_error(NET CONV "colour=red\n", "t.cfg:10: [convolutional] layer 0: key 'colour'", "has no such key");
    expect_cfg_error(NET "[convolutional]\nactivation=elu\n", "t.cfg:6: [convolutional] layer 0: key 'activation'",
                     "'elu' is not supported");
    expect_cfg_error(NET CONV "[lstm]\noutput=3\n", "t.cfg:10: [lstm] layer 1: layer type [lstm] is not supported", NULL);
    expect_cfg_error(NET CONV "[route]\nlayers=3\n", "t.cfg:11: [route] layer 1: key 'layers': 3 refers to layer 3",
                     "does not come before layer 1");
    expect_cfg_error(NET CONV "[route]\n", "t.cfg:10: [route] layer 1: a [route] needs layers=", NULL);
    expect_cfg_error(NET CONV "[route]\nlayers=-1,x\n", "t.cfg:11: [route] layer 1: key 'layers': item 2 'x'", NULL);
    expect_cfg_error(NET CONV "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n",
                     "t.cfg:14: [route] layer 2: key 'layers': layer 0 is 8x8, the first is 4x4", NULL);
    expect_cfg_error(NET CONV "[route]\nlayers=-1\ngroups=3\n", "t.cfg:10: [route] layer 1: groups=3 does not divide",
                     NULL);
    expect_cfg_error(NET CONV "[convolutional]\nfilters=3\ngroups=2\n", "t.cfg:10: [convolutional] layer 1: groups=2",
                     NULL);
    expect_cfg_error(NET CONV "[maxpool]\nsize=2\nstride=2\n[shortcut]\nfrom=-2\n",
                     "t.cfg:14: [shortcut] layer 2: key 'from': layer 0 is 8x8x4", "only equal shapes");
    expect_cfg_error(NET CONV "[upsample]\nstride=-2\n", "t.cfg:10: [upsample] layer 1: stride=-2", NULL);
    expect_cfg_error(NET CONV "[yolo]\nmask=0\nanchors=1,2\nnum=1\nclasses=2\n",
                     "t.cfg:10: [yolo] layer 1: the layer before has 4 channels", "need 7");
    expect_cfg_error(NET "[convolutional]\nfilters=7\nsize=1\n[yolo]\nmask=0\nanchors=1,2,3\nnum=1\nclasses=2\n",
                     "t.cfg:8: [yolo] layer 1: anchors= must hold num=1 pairs", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=7\nsize=1\n[yolo]\nmask=1\nanchors=1,2\nnum=1\nclasses=2\n",
                     "t.cfg:8: [yolo] layer 1: mask value 1", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=7\nsize=1\n[yolo]\nanchors=1,2\nclasses=2\n[convolutional]\nfilters=2\n",
                     "t.cfg:11: [convolutional] layer 2: reads the output of the [yolo] layer 1", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=7\nsize=1\n[yolo]\nanchors=1,2\nclasses=2\n[route]\nlayers=-1\n",
                     "t.cfg:12: [route] layer 2: key 'layers': layer 1 is a [yolo] layer", NULL);
    expect_cfg_error(NET "[convolutional]\nfilters=4\nsize=11\n", "t.cfg:5: [convolutional] layer 0: a 11x11 kernel", NULL);
    expect_cfg_error(NET "[maxpool]\nsize=2\npadding=4\n", "t.cfg:5: [maxpool] layer 0: padding=4 leaves windows", NULL);
    expect_cfg_error(NET "[softmax]\ntree=data/9k.tree\n", "t.cfg:6: [softmax] layer 0: key 'tree'", NULL);
    expect_cfg_error(NET "[dropout]\n", "the network computes nothing", NULL);
    char nul[] = NET "[convolutional]\nfilters=1\0\n";
    ac_err err = {0};
    CHECK(!ac_darknet_load_buffer(nul, sizeof nul - 1, "t.cfg", NULL, 0, NULL, NULL, &err) &&
              strstr(err.msg, "t.cfg:6: the line holds a NUL byte"),
          "NUL: %s", err.msg);
    /* CRLF line ends and blanks anywhere are fine, as in darknet */
    const char *crlf = "[net]\r\n width = 8\r\nheight=8\r\nchannels=3\r\n[ convolutional ]\r\nfilters = 2\r\n";
    ac_graph *g = ac_darknet_load_buffer(crlf, strlen(crlf), "t.cfg", NULL, 0, NULL, NULL, &err);
    CHECK(g, "CRLF: %s", err.msg);
    ac_graph_destroy(&g);
}

static void expect_weights_error(const char *cfg, const buf *w, const char *want1, const char *want2)
{
    ac_err err = {0};
    ac_graph *g = ac_darknet_load_buffer(cfg, strlen(cfg), "t.cfg", w->b, w->n, "t.weights", NULL, &err);
    CHECK(!g && err.code && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)), "want '%s' / '%s', got: %s",
          want1, want2 ? want2 : "", g ? "(loaded)" : err.msg);
    ac_graph_destroy(&g);
}

static void test_weights_errors(void)
{
    /* conv 3->4 3x3 with batch norm (4 * 4 + 108 floats), then conv 4->2 1x1 (2 + 8) */
    const char *cfg = NET "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\n"
                          "[convolutional]\nfilters=2\nsize=1\n";
    float zeros[200] = {0};
    buf w = {0};
    header(&w, 0, 2, 0, true);
    put(&w, zeros, 4 * (16 + 108 + 2 + 8));
    ac_err err = {0};
    ac_graph *g = ac_darknet_load_buffer(cfg, strlen(cfg), "t.cfg", w.b, w.n, "t.weights", NULL, &err);
    CHECK(g, "exact size: %s", err.msg);
    ac_graph_destroy(&g);
    size_t full = w.n;
    w.n = full - 4;
    expect_weights_error(cfg, &w, "t.weights: the file ends inside layer 1 ([convolutional] at t.cfg:10)",
                         "its weights need 32 bytes from offset 524, 28 are left");
    w.n = 20 + 4 * 3;
    expect_weights_error(cfg, &w, "ends inside layer 0 ([convolutional] at t.cfg:5): its biases", NULL);
    w.n = 12;
    expect_weights_error(cfg, &w, "t.weights: 12 bytes; the header alone", NULL);
    w.n = full;
    put(&w, zeros, 8);
    expect_weights_error(cfg, &w, "t.weights: 8 bytes after the parameters of the last layer with weights (layer 1",
                         "at t.cfg:10");
    /* a negative variance, a NaN */
    w.n = full;
    float neg = -1, nan = NAN;
    memcpy(w.b + 20 + 4 * (12 + 1), &neg, 4); /* variance of output 1 */
    expect_weights_error(cfg, &w, "t.cfg:5: [convolutional] layer 0: rolling variance 1 is negative", NULL);
    memcpy(w.b + 20 + 4 * (16 + 3), &nan, 4);
    expect_weights_error(cfg, &w, "t.weights: layer 0 ([convolutional] at t.cfg:5): weights value 3", "not a finite");
    free(w.b);
    buf neg_version = {0};
    header(&neg_version, -1, 2, 0, true);
    expect_weights_error(cfg, &neg_version, "version -1.2.0 has a negative part", NULL);
    free(neg_version.b);
}

/* ac_model: the format from the file type, --weights required, shapes passed on. */
static void test_model_dispatch(void)
{
    char dir[] = "/tmp/ac_darknet_selftest_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char cfg[64], plain[64], wts[64];
    snprintf(cfg, sizeof cfg, "%s/m.cfg", dir);
    snprintf(plain, sizeof plain, "%s/model", dir);
    snprintf(wts, sizeof wts, "%s/m.weights", dir);
    const char *text = "# a comment first\n\n" NET "[convolutional]\nfilters=2\nsize=1\n";
    FILE *f = fopen(cfg, "w");
    fputs(text, f);
    fclose(f);
    f = fopen(plain, "w");
    fputs(text, f);
    fclose(f);
    buf w = {0};
    header(&w, 0, 2, 0, true);
    float zeros[8] = {0};
    put(&w, zeros, 4 * 8);
    f = fopen(wts, "wb");
    fwrite(w.b, 1, w.n, f);
    fclose(f);
    free(w.b);
    CHECK(ac_model_detect(cfg) == AC_FORMAT_DARKNET && ac_model_detect(plain) == AC_FORMAT_DARKNET, "detect");
    ac_err err = {0};
    ac_model_options none = {0};
    ac_graph *g = ac_model_load(cfg, &none, NULL, &err);
    CHECK(!g && strstr(err.msg, "needs its weights file: --weights"), "no weights: %s", err.msg);
    ac_model_options o = {.weights = wts, .input_shapes = "(4,3,16,16)"};
    g = ac_model_load(cfg, &o, NULL, &err);
    CHECK(g && g->tensors[g->outputs[0]].dims[0] == 4 && g->tensors[g->outputs[0]].dims[3] == 16, "load: %s",
          g ? "shape" : err.msg);
    ac_graph_destroy(&g);
    o.input_shapes = "(4,1,16,16)";
    g = ac_model_load(cfg, &o, NULL, &err);
    CHECK(!g && strstr(err.msg, "must be (N,3,H,W)"), "channels: %s", err.msg);
    o.input_shapes = NULL;
    o.weights = "/nonexistent/m.weights";
    g = ac_model_load(cfg, &o, NULL, &err);
    CHECK(!g && strstr(err.msg, "/nonexistent/m.weights: cannot open"), "missing weights: %s", err.msg);
    remove(cfg);
    remove(plain);
    remove(wts);
    rmdir(dir);
}

int main(void)
{
    test_detector();
    test_classifier();
    test_cfg_errors();
    test_weights_errors();
    test_model_dispatch();
    if (failures) {
        fprintf(stderr, "darknet_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("darknet_selftest: all passed\n");
    return 0;
}
