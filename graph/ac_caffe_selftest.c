/* Selftest of the Caffe importer: a hand-written prototxt whose caffemodel
 * is packed here (protobuf-c, our schema), run through the importer and the
 * fp32 executor and compared with a direct computation of Caffe's layers
 * (Convolution, BatchNorm + Scale, ReLU with negative_slope, MAX and AVE
 * pooling with Caffe's ceil rounding); a second prototxt with every other
 * layer kind, checked for its output shapes; and the error messages, which
 * must name the file, line and column, and the rule. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_caffe.h"
#include "ac_exec.h"
#include "caffe_min.pb-c.h"
#include "ac_check.h"

static uint32_t rng = 777;
static float urand(float lo, float hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / (float)(1u << 24);
}

/* ---- net A: numerics ---------------------------------------------------------------------- */

static const char net_a[] =
    "name: \"a\"  # comment\n"
    "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }\n"
    "layer { name: \"conv\" type: \"Convolution\" bottom: \"data\" top: \"conv\"\n"
    "  param { lr_mult: 1 } convolution_param { num_output: 3 kernel_size: 3 pad: 1 stride: 1\n"
    "  weight_filler { type: \"xavier\" } } }\n"
    "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"conv\" top: \"conv\" batch_norm_param { eps: 0.001 } }\n"
    "layer { name: \"sc\" type: \"Scale\" bottom: \"conv\" top: \"conv\" scale_param { bias_term: true } }\n"
    "layer { name: \"relu\" type: \"ReLU\" bottom: \"conv\" top: \"conv\" relu_param { negative_slope: 0.1 } }\n"
    "layer { name: \"max\" type: \"Pooling\" bottom: \"conv\" top: \"max\"\n"
    "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
    "layer { name: \"ave\" type: \"Pooling\" bottom: \"conv\" top: \"ave\"\n"
    "  pooling_param { pool: AVE kernel_h: 3 kernel_w: 3 stride_h: 2 stride_w: 2 pad_h: 1 pad_w: 1 } }\n";

enum { C_IN = 2, C_OUT = 3, HW = 5 };

static float conv_w[C_OUT * C_IN * 9], conv_b[C_OUT], bn_mean[C_OUT], bn_var[C_OUT], bn_sf[1] = {2.f},
    sc_s[C_OUT], sc_b[C_OUT];

static CaffeMin__BlobProto *blob(const float *data, size_t n)
{
    CaffeMin__BlobProto *b = calloc(1, sizeof *b);
    caffe_min__blob_proto__init(b);
    b->n_data = n;
    b->data = (float *)data;
    return b;
}

static uint8_t *pack_net_a(bool v1, size_t *len)
{
    static CaffeMin__LayerParameter layers[4];
    static CaffeMin__LayerParameter *lp[4];
    static CaffeMin__V1LayerParameter layers1[4];
    static CaffeMin__V1LayerParameter *lp1[4];
    static CaffeMin__BlobProto *cb[2], *bb[3], *sb[2];
    const char *names[4] = {"conv", "bn", "sc", "unused_in_prototxt"};
    cb[0] = blob(conv_w, C_OUT * C_IN * 9);
    cb[1] = blob(conv_b, C_OUT);
    bb[0] = blob(bn_mean, C_OUT);
    bb[1] = blob(bn_var, C_OUT);
    bb[2] = blob(bn_sf, 1);
    sb[0] = blob(sc_s, C_OUT);
    sb[1] = blob(sc_b, C_OUT);
    CaffeMin__BlobProto **all[4] = {cb, bb, sb, NULL};
    size_t counts[4] = {2, 3, 2, 0};
    for (int i = 0; i < 4; i++) {
        caffe_min__layer_parameter__init(&layers[i]);
        layers[i].name = (char *)names[i];
        layers[i].n_blobs = counts[i];
        layers[i].blobs = all[i];
        lp[i] = &layers[i];
        caffe_min__v1_layer_parameter__init(&layers1[i]);
        layers1[i].name = (char *)names[i];
        layers1[i].n_blobs = counts[i];
        layers1[i].blobs = all[i];
        lp1[i] = &layers1[i];
    }
    CaffeMin__NetParameter net;
    caffe_min__net_parameter__init(&net);
    if (v1) {
        net.n_layers = 4;
        net.layers = lp1;
    } else {
        net.n_layer = 4;
        net.layer = lp;
    }
    *len = caffe_min__net_parameter__get_packed_size(&net);
    uint8_t *buf = malloc(*len);
    caffe_min__net_parameter__pack(&net, buf);
    for (int i = 0; i < 2; i++)
        free(cb[i]), free(sb[i]);
    for (int i = 0; i < 3; i++)
        free(bb[i]);
    return buf;
}

/* Caffe's layers computed directly. */
static void reference_a(const float *x, float *maxo, float *aveo)
{
    float y[C_OUT][HW][HW];
    for (int o = 0; o < C_OUT; o++)
        for (int i = 0; i < HW; i++)
            for (int j = 0; j < HW; j++) {
                double s = conv_b[o];
                for (int c = 0; c < C_IN; c++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int ii = i + ki - 1, jj = j + kj - 1;
                            if (ii >= 0 && ii < HW && jj >= 0 && jj < HW)
                                s += conv_w[((o * C_IN + c) * 3 + ki) * 3 + kj] * x[(c * HW + ii) * HW + jj];
                        }
                double m = bn_mean[o] / bn_sf[0], v = bn_var[o] / bn_sf[0];
                s = (s - m) / sqrt(v + 0.001) * sc_s[o] + sc_b[o];
                y[o][i][j] = (float)(s > 0 ? s : 0.1 * s);
            }
    /* MAX 2/2, ceil: (5 - 2) / 2 -> 3 windows, the last one clipped */
    for (int o = 0; o < C_OUT; o++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                float m = -INFINITY;
                for (int a = 2 * i; a < 2 * i + 2 && a < HW; a++)
                    for (int b = 2 * j; b < 2 * j + 2 && b < HW; b++)
                        m = fmaxf(m, y[o][a][b]);
                maxo[(o * 3 + i) * 3 + j] = m;
            }
    /* AVE 3/2 pad 1: (5 + 2 - 3) / 2 + 1 = 3, divisor the window within the padded input (9) */
    for (int o = 0; o < C_OUT; o++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                double s = 0;
                for (int a = 2 * i - 1; a < 2 * i + 2; a++)
                    for (int b = 2 * j - 1; b < 2 * j + 2; b++)
                        if (a >= 0 && a < HW && b >= 0 && b < HW)
                            s += y[o][a][b];
                aveo[(o * 3 + i) * 3 + j] = (float)(s / 9);
            }
}

/* Net a with its caffemodel written with V2 `layer` or V1 `layers` entries. */
static void run_net_a(bool v1, const float *x, const float *want_max, const float *want_ave)
{
    size_t len;
    uint8_t *model = pack_net_a(v1, &len);
    ac_err err;
    ac_graph *g = ac_caffe_load_buffer(net_a, sizeof net_a - 1, "a.prototxt", model, len, "a.caffemodel", NULL, &err);
    CHECK(g, "net a (%s): %s", v1 ? "V1 layers" : "layer", err.msg);
    free(model);
    if (!g)
        return;
    CHECK(g->noutputs == 2 && !strcmp(g->tensors[g->outputs[0]].name, "max") &&
              !strcmp(g->tensors[g->outputs[1]].name, "ave"),
          "outputs: the unread tops max, ave");
    int nbn = 0;
    for (int i = 0; i < g->nnodes; i++)
        nbn += g->nodes[i].op == AC_OP_BATCHNORM || g->nodes[i].op == AC_OP_MUL;
    CHECK(nbn == 1, "BatchNorm + Scale make one BatchNormalization node (%d)", nbn);
    ac_exec *e = ac_exec_new(g, &err);
    CHECK(e, "exec: %s", err.msg);
    const void *ins[1] = {x};
    if (e && ac_exec_run(e, ins, &err) == 0) {
        const float *gm = ac_exec_tensor(e, g->outputs[0]), *ga = ac_exec_tensor(e, g->outputs[1]);
        float dm = 0, da = 0;
        for (int i = 0; i < C_OUT * 9; i++) {
            dm = fmaxf(dm, fabsf(gm[i] - want_max[i]));
            da = fmaxf(da, fabsf(ga[i] - want_ave[i]));
        }
        CHECK(dm < 1e-5f && da < 1e-5f, "%s: max pool diff %g, ave pool diff %g", v1 ? "V1" : "V2", dm, da);
    } else
        CHECK(0, "run: %s", err.msg);
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
}

static void test_numerics(void)
{
    for (size_t i = 0; i < sizeof conv_w / sizeof *conv_w; i++)
        conv_w[i] = urand(-1, 1);
    for (int o = 0; o < C_OUT; o++) {
        conv_b[o] = urand(-.5f, .5f);
        bn_mean[o] = urand(-1, 1);
        bn_var[o] = urand(.5f, 2);
        sc_s[o] = urand(.5f, 1.5f);
        sc_b[o] = urand(-.5f, .5f);
    }
    float x[C_IN * HW * HW], want_max[C_OUT * 9], want_ave[C_OUT * 9];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = urand(-1, 1);
    reference_a(x, want_max, want_ave);
    run_net_a(false, x, want_max, want_ave);
    run_net_a(true, x, want_max, want_ave);

    /* a layer whose blobs are missing from the caffemodel is an error naming it */
    ac_err err;
    uint8_t none[1];
    ac_graph *g = ac_caffe_load_buffer(net_a, sizeof net_a - 1, "a.prototxt", none, 0, "a.caffemodel", NULL, &err);
    CHECK(!g && strstr(err.msg, "a.prototxt:3:1: layer 'conv' (Convolution): a.caffemodel has no layer of this name"),
          "%s", err.msg);
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    g = ac_caffe_load_buffer(net_a, sizeof net_a - 1, "a.prototxt", garbage, 3, "a.caffemodel", NULL, &err);
    CHECK(!g && strstr(err.msg, "a.caffemodel: not a Caffe NetParameter"), "%s", err.msg);
}

/* ---- net B: every other layer kind (parameters zero, shapes checked) -------------------------- */

static const char net_b[] =
    "input: \"x\"\n"
    "input_shape { dim: 2 dim: 4 dim: 6 dim: 6 }\n"
    "layer { name: \"dc\" type: \"Deconvolution\" bottom: \"x\" top: \"dc\"\n"
    "  convolution_param { num_output: 4 kernel_size: 2 stride: 2 group: 2 bias_term: false } }\n" /* 2x4x12x12 */
    "layer { name: \"pr\" type: \"PReLU\" bottom: \"dc\" top: \"dc\" }\n"
    "layer { name: \"dil\" type: \"Convolution\" bottom: \"dc\" top: \"dil\"\n"
    "  convolution_param { num_output: 4 kernel_h: 3 kernel_w: 3 dilation: 2 pad: 2 } }\n" /* 2x4x12x12 */
    "layer { name: \"sp\" type: \"Split\" bottom: \"dil\" top: \"s1\" top: \"s2\" top: \"s3\" }\n"
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"s1\" bottom: \"s2\"  top: \"sum\"\n"
    "  eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }\n"
    "layer { name: \"prod\" type: \"Eltwise\" bottom: \"sum\" bottom: \"s3\" top: \"prod\"\n"
    "  eltwise_param { operation: PROD } }\n"
    "layer { name: \"mx\" type: \"Eltwise\" bottom: \"prod\" bottom: \"dc\" top: \"mx\"\n"
    "  eltwise_param { operation: MAX } }\n"
    "layer { name: \"up\" type: \"Upsample\" bottom: \"mx\" top: \"up\" upsample_param { scale: 2 } }\n" /* 24 */
    "layer { name: \"gp\" type: \"Pooling\" bottom: \"up\" top: \"gp\" pooling_param { pool: AVE global_pooling: true } }\n"
    "layer { name: \"cat\" type: \"Concat\" bottom: \"gp\" bottom: \"gp\" top: \"cat\" concat_param { axis: 1 } }\n"
    "layer { name: \"fl\" type: \"Flatten\" bottom: \"cat\" top: \"fl\" }\n" /* 2x8 */
    "layer { name: \"drop\" type: \"Dropout\" bottom: \"fl\" top: \"fl\" dropout_param { dropout_ratio: 0.3 } }\n"
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"fl\" top: \"ip\" inner_product_param { num_output: 6 } }\n"
    "layer { name: \"rs\" type: \"Reshape\" bottom: \"ip\" top: \"rs\" reshape_param { shape { dim: 0 dim: 3 dim: -1 } } }\n"
    "layer { name: \"pm\" type: \"Permute\" bottom: \"rs\" top: \"pm\" permute_param { order: 0 order: 2 } }\n" /* 2x2x3 */
    "layer { name: \"sm\" type: \"Softmax\" bottom: \"pm\" top: \"sm\" softmax_param { axis: 2 } }\n"
    "layer { name: \"sg\" type: \"Sigmoid\" bottom: \"sm\" top: \"sg\" }\n"
    "layer { name: \"th\" type: \"TanH\" bottom: \"sg\" top: \"th\" }\n"
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"th\" top: \"loss\" include { phase: TRAIN } }\n";

static void test_layer_kinds(void)
{
    ac_err err;
    ac_graph *g = ac_caffe_load_buffer(net_b, sizeof net_b - 1, "b.prototxt", NULL, 0, NULL, NULL, &err);
    CHECK(g, "net b: %s", err.msg);
    if (!g)
        return;
    static const struct {
        const char *name;
        int ndim;
        int64_t dims[4];
    } want[] = {{"dc", 4, {2, 4, 12, 12}}, {"dil", 4, {2, 4, 12, 12}}, {"up", 4, {2, 4, 24, 24}},
                {"gp", 4, {2, 4, 1, 1}},   {"fl", 2, {2, 8}},           {"ip", 2, {2, 6}},
                {"pm", 3, {2, 2, 3}},      {"th", 3, {2, 2, 3}}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int t = ac_graph_find_tensor(g, want[i].name);
        CHECK(t >= 0 && g->tensors[t].ndim == want[i].ndim &&
                  !memcmp(g->tensors[t].dims, want[i].dims, sizeof(int64_t) * (size_t)want[i].ndim),
              "tensor %s", want[i].name);
    }
    CHECK(g->noutputs == 1 && !strcmp(g->tensors[g->outputs[0]].name, "th"), "the TRAIN-only loss layer is left out");
    ac_graph_destroy(&g);

    /* --input_data_shape by name */
    ac_onnx_shape sh = {.name = "x", .ndim = 4, .dims = {1, 4, 6, 6}};
    ac_caffe_options o = {.nshapes = 1, .shapes = &sh};
    g = ac_caffe_load_buffer(net_b, sizeof net_b - 1, "b.prototxt", NULL, 0, NULL, &o, &err);
    CHECK(g && g->tensors[g->outputs[0]].dims[0] == 1, "shape override: %s", g ? "" : err.msg);
    ac_graph_destroy(&g);
}

/* ---- net D: weightless layers computed (Eltwise MAX is composed, so check its values) ---- */

static const char net_d[] =
    "layer { name: \"in\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 1 dim: 2 dim: 2 dim: 2 } } }\n"
    "layer { name: \"mx\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" bottom: \"a\" top: \"mx\" eltwise_param { operation: MAX } }\n"
    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" top: \"sum\" eltwise_param { coeff: 2 coeff: -1 } }\n"
    "layer { name: \"prod\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" top: \"prod\" eltwise_param { operation: PROD } }\n"
    "layer { name: \"up\" type: \"Upsample\" bottom: \"a\" top: \"up\" upsample_param { scale: 2 } }\n"
    "layer { name: \"pm\" type: \"Permute\" bottom: \"b\" top: \"pm\" permute_param { order: 0 order: 3 order: 1 order: 2 } }\n";

static void test_weightless(void)
{
    ac_err err;
    ac_graph *g = ac_caffe_load_buffer(net_d, sizeof net_d - 1, "d.prototxt", NULL, 0, NULL, NULL, &err);
    CHECK(g && g->ninputs == 2 && g->noutputs == 5, "net d: %s", g ? "inputs/outputs" : err.msg);
    if (!g || g->noutputs != 5) {
        ac_graph_destroy(&g);
        return;
    }
    float a[8], b[8];
    for (int i = 0; i < 8; i++) {
        a[i] = urand(-2, 2);
        b[i] = urand(-2, 2);
    }
    const void *ins[2] = {a, b};
    ac_exec *e = ac_exec_new(g, &err);
    if (!e || ac_exec_run(e, ins, &err)) {
        CHECK(0, "run: %s", err.msg);
    } else {
        const float *mx = ac_exec_tensor(e, g->outputs[0]), *sum = ac_exec_tensor(e, g->outputs[1]),
                    *prod = ac_exec_tensor(e, g->outputs[2]), *up = ac_exec_tensor(e, g->outputs[3]),
                    *pm = ac_exec_tensor(e, g->outputs[4]);
        float d = 0;
        for (int i = 0; i < 8; i++) {
            d = fmaxf(d, fabsf(mx[i] - fmaxf(a[i], b[i])));
            d = fmaxf(d, fabsf(sum[i] - (2 * a[i] - b[i])));
            d = fmaxf(d, fabsf(prod[i] - a[i] * b[i]));
        }
        /* up: [1,2,4,4], nearest; pm: [1,2(w),2(c),2(h)] */
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    d = fmaxf(d, fabsf(up[(c * 4 + y) * 4 + x] - a[(c * 2 + y / 2) * 2 + x / 2]));
        for (int w = 0; w < 2; w++)
            for (int c = 0; c < 2; c++)
                for (int h = 0; h < 2; h++)
                    d = fmaxf(d, fabsf(pm[(w * 2 + c) * 2 + h] - b[(c * 2 + h) * 2 + w]));
        CHECK(d < 1e-6f, "weightless layers differ by %g", d);
    }
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
}

/* ---- net E: Normalize (SSD's L2 norm), per channel over C and shared over C, H, W ---- */

static const char net_e[] =
    "layer { name: \"in\" type: \"Input\" top: \"x\" input_param { shape { dim: 1 dim: 3 dim: 2 dim: 2 } } }\n"
    "layer { name: \"n1\" type: \"Normalize\" bottom: \"x\" top: \"y1\"\n"
    "        norm_param { across_spatial: false channel_shared: false eps: 0.001 } }\n"
    "layer { name: \"n2\" type: \"Normalize\" bottom: \"x\" top: \"y2\" }\n";

static void test_normalize(void)
{
    static const float s1[3] = {20.f, 10.f, 0.5f}, s2[1] = {3.f};
    CaffeMin__LayerParameter l[2];
    CaffeMin__LayerParameter *lp[2] = {&l[0], &l[1]};
    CaffeMin__BlobProto *b1 = blob(s1, 3), *b2 = blob(s2, 1);
    const char *names[2] = {"n1", "n2"};
    CaffeMin__BlobProto *bl[2][1] = {{b1}, {b2}};
    for (int i = 0; i < 2; i++) {
        caffe_min__layer_parameter__init(&l[i]);
        l[i].name = (char *)names[i];
        l[i].n_blobs = 1;
        l[i].blobs = bl[i];
    }
    CaffeMin__NetParameter net;
    caffe_min__net_parameter__init(&net);
    net.n_layer = 2;
    net.layer = lp;
    size_t len = caffe_min__net_parameter__get_packed_size(&net);
    uint8_t *buf = malloc(len);
    caffe_min__net_parameter__pack(&net, buf);
    ac_err err;
    ac_graph *g = ac_caffe_load_buffer(net_e, sizeof net_e - 1, "e.prototxt", buf, len, "e.caffemodel", NULL, &err);
    CHECK(g && g->noutputs == 2, "net e: %s", g ? "outputs" : err.msg);
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = urand(-2, 2);
    const void *ins[1] = {x};
    ac_exec *e = g ? ac_exec_new(g, &err) : NULL;
    if (g && (!e || ac_exec_run(e, ins, &err))) {
        CHECK(0, "run: %s", err.msg);
    } else if (g) {
        const float *y1 = ac_exec_tensor(e, g->outputs[0]), *y2 = ac_exec_tensor(e, g->outputs[1]);
        double all = 1e-10, d = 0;
        for (int i = 0; i < 12; i++)
            all += (double)x[i] * x[i];
        for (int p = 0; p < 4; p++) { /* each position: the norm over the 3 channels */
            double ss = 0.001;
            for (int c = 0; c < 3; c++)
                ss += (double)x[c * 4 + p] * x[c * 4 + p];
            for (int c = 0; c < 3; c++)
                d = fmax(d, fabs(y1[c * 4 + p] - x[c * 4 + p] / sqrt(ss) * s1[c]));
        }
        for (int i = 0; i < 12; i++)
            d = fmax(d, fabs(y2[i] - x[i] / sqrt(all) * s2[0]));
        CHECK(d < 1e-5, "Normalize differs from Caffe's formula by %g", d);
    }
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
    free(buf);
    free(b1);
    free(b2);
}

/* ---- net C: SSD heads (PriorBox computed at import, DetectionOutput as the boundary) ---- */

static const char net_c[] =
    "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 1 dim: 3 dim: 20 dim: 20 } } }\n"
    "layer { name: \"f\" type: \"Pooling\" bottom: \"data\" top: \"f\" pooling_param { pool: MAX kernel_size: 10 stride: 10 } }\n"
    "layer { name: \"loc\" type: \"Flatten\" bottom: \"f\" top: \"loc\" }\n"
    "layer { name: \"pb\" type: \"PriorBox\" bottom: \"f\" bottom: \"data\" top: \"pb\"\n"
    "  prior_box_param { min_size: 4 max_size: 9 aspect_ratio: 2 flip: true clip: true\n"
    "  variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5 } }\n"
    "layer { name: \"det\" type: \"DetectionOutput\" bottom: \"loc\" bottom: \"loc\" bottom: \"pb\" top: \"det\"\n"
    "  detection_output_param { num_classes: 2 nms_param { nms_threshold: 0.45 } } }\n";

static void test_ssd(void)
{
    ac_err err;
    ac_graph *g = ac_caffe_load_buffer(net_c, sizeof net_c - 1, "c.prototxt", NULL, 0, NULL, NULL, &err);
    CHECK(g, "net c: %s", err.msg);
    if (!g)
        return;
    CHECK(g->noutputs == 1 && !strcmp(g->tensors[g->outputs[0]].name, "loc"),
          "outputs: the DetectionOutput bottoms less the constant priors (%d)", g->noutputs);
    const char *meta = ac_graph_get_meta(g, "caffe.priorbox.pb");
    CHECK(meta && !strcmp(meta, "feature=2x2 image=20x20 step=10x10 offset=0.5 clip=1 priors=4 min=4 max=9 "
                                "aspect=1,2,0.5 variance=0.1,0.1,0.2,0.2"),
          "priorbox metadata: %s", meta ? meta : "(none)");
    int pb = ac_graph_find_tensor(g, "pb");
    CHECK(pb >= 0 && !g->tensors[pb].is_output && g->tensors[pb].data && g->tensors[pb].ndim == 3 &&
              g->tensors[pb].dims[2] == 2 * 2 * 4 * 4,
          "pb: a [1, 2, 64] constant output");
    if (pb >= 0 && g->tensors[pb].data) {
        /* 2x2 cells of step 10, priors: min 4, sqrt(4*9) = 6, 4*sqrt2 x 4/sqrt2, its flip */
        const float *v = g->tensors[pb].data;
        float s2 = sqrtf(2.f);
        float want[16] = {(5 - 2) / 20.f, (5 - 2) / 20.f, (5 + 2) / 20.f, (5 + 2) / 20.f,
                          (5 - 3) / 20.f, (5 - 3) / 20.f, (5 + 3) / 20.f, (5 + 3) / 20.f,
                          (5 - 2 * s2) / 20.f, (5 - 2 / s2) / 20.f, (5 + 2 * s2) / 20.f, (5 + 2 / s2) / 20.f,
                          (5 - 2 / s2) / 20.f, (5 - 2 * s2) / 20.f, (5 + 2 / s2) / 20.f, (5 + 2 * s2) / 20.f};
        float d = 0;
        for (int i = 0; i < 16; i++)
            d = fmaxf(d, fabsf(v[i] - want[i]));
        CHECK(d < 1e-6f, "first cell's priors differ by %g", d);
        CHECK(fabsf(v[16] - (15 - 2) / 20.f) < 1e-6f, "the second cell is 10 px right: %g", v[16]);
        CHECK(v[64] == 0.1f && v[66] == 0.2f && v[127] == 0.2f, "variances");
    }
    /* the farm's form: written as ONNX and read back */
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(ac_onnx_save_buffer(g, &buf, &len, &err) == 0, "onnx save: %s", err.msg);
    ac_graph *back = buf ? ac_onnx_load_buffer(buf, len, "c.onnx", NULL, &err) : NULL;
    CHECK(back && back->noutputs == 1, "onnx reload: %s", back ? "" : err.msg);
    CHECK(back && ac_graph_get_meta(back, "caffe.priorbox.pb") && !strcmp(ac_graph_get_meta(back, "caffe.priorbox.pb"), meta),
          "the priorbox metadata survives the ONNX round trip");
    ac_graph_destroy(&back);
    free(buf);
    ac_exec *e = ac_exec_new(g, &err);
    CHECK(e, "exec: %s", err.msg);
    float x[3 * 20 * 20] = {0};
    const void *ins[1] = {x};
    CHECK(e && ac_exec_run(e, ins, &err) == 0, "run: %s", err.msg);
    ac_exec_destroy(&e);
    ac_graph_destroy(&g);
}

/* ---- errors --------------------------------------------------------------------------------- */

#define IN "layer { name: \"in\" type: \"Input\" top: \"x\" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n"

static const struct {
    const char *text, *want;
} bad[] = {
    {"layer { name: \"a\" ", "e.prototxt:1:7: the message opened here is not closed with '}'"},
    {"layer } ", "e.prototxt:1:7: expected ':' or '{' after field 'layer'"},
    {"}", "e.prototxt:1:1: '}' closes no message"},
    {"name: \"abc\n\"", "e.prototxt:1:7: the string is not closed on its line"},
    {"name: [1, 2]", "e.prototxt:1:7: field 'name': lists in brackets are not supported"},
    {"3layer {}", "e.prototxt:1:1: expected a field name, found '3'"},
    {"name: \"\\q\"", "e.prototxt:1:7: unknown escape '\\q' in a string"},
    {IN "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param { kernel_size: 3 } }",
     "e.prototxt:2:60: layer 'c' (Convolution): needs num_output (> 0)"},
    {IN "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\"\n"
        "convolution_param { num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3 } }",
     "e.prototxt:3:50: layer 'c' (Convolution): give either kernel_size or kernel_h/kernel_w, not both"},
    {IN "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\"\n"
        "convolution_param { num_output: 3 kernel_size: 1 group: 2 } }",
     "layer 'c' (Convolution): group 2 must divide the 2 input channels and num_output 3"},
    {IN "layer { name: \"r\" type: \"ReLU\" bottom: \"nope\" top: \"y\" }",
     "e.prototxt:2:1: layer 'r' (ReLU): bottom 'nope' is no top of an earlier layer nor an input"},
    {IN "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" relu_param { negative_slope: abc } }",
     "e.prototxt:2:66: layer 'r' (ReLU): field 'negative_slope': 'abc' is not a finite number"},
    {IN "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" relu_param { slope: 1 } }",
     "e.prototxt:2:66: layer 'r' (ReLU): relu_param has no field 'slope' the importer reads"},
    {IN "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" pooling_param { pool: MAX } }",
     "e.prototxt:2:53: layer 'r' (ReLU): a ReLU layer takes relu_param, not pooling_param"},
    {IN "layer { name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"y\" pooling_param { pool: MIN kernel_size: 2 } }",
     "layer 'p' (Pooling): field 'pool': 'MIN' is not one of MAX, AVE, STOCHASTIC"},
    {IN "layer { name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"y\"\n"
        "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }",
     "layer 'p' (Pooling): AVE pooling with pad and ceil rounding past the padded edge has no ONNX equivalent"},
    {IN "layer { name: \"n\" type: \"Crop\" bottom: \"x\" top: \"y\" }",
     "e.prototxt:2:19: layer 'n' (Crop): layer type 'Crop' is not supported"},
    {IN "layer { name: \"e\" type: \"Eltwise\" bottom: \"x\" bottom: \"x\" top: \"y\"\n"
        "eltwise_param { operation: PROD coeff: 1 coeff: 2 } }",
     "layer 'e' (Eltwise): coeff is for SUM, one per bottom"},
    {IN "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"y\" name: \"again\" }",
     "e.prototxt:2:53: field 'name' appears twice (first at line 2)"},
    {IN "layers { name: \"old\" }", "e.prototxt:2:1: V1 'layers' entries are not supported in a prototxt"},
    {IN "bogus: 1", "e.prototxt:2:1: the net has no field 'bogus' the importer reads"},
    {"layer { name: \"r\" type: \"ReLU\" }", "e.prototxt:1:1: layer 'r' (ReLU): takes one bottom and one top"},
    {IN, "e.prototxt: the network computes nothing"},
    {IN "layer { name: \"s\" type: \"Reshape\" bottom: \"x\" top: \"y\" reshape_param { shape { dim: 3 dim: -1 } } }",
     "layer 's' (Reshape): node 's' (Reshape, opset 13)"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ac_err err;
        ac_graph *g = ac_caffe_load_buffer(bad[i].text, strlen(bad[i].text), "e.prototxt", NULL, 0, NULL, NULL, &err);
        CHECK(!g && err.code != AC_OK && strstr(err.msg, bad[i].want), "case %zu: want '%s', got '%s'", i,
              bad[i].want, g ? "(loaded)" : err.msg);
        ac_graph_destroy(&g);
    }
}

int main(void)
{
    test_numerics();
    test_layer_kinds();
    test_ssd();
    test_weightless();
    test_normalize();
    test_errors();
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("caffe selftest: ok\n");
    return 0;
}
