/* ONNX importer tests: the --input_data_shape parser, small models built here
 * with protobuf-c (valid ones and one per error rule), truncations of a valid
 * model, deep nesting, and standalone TensorProto files. Every error case
 * checks that the message names the thing at fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac_onnx.h"
#include "onnx/onnx.pb-c.h"
#include "ac_check.h"

/* ---------------------------------------------------------------- shapes */

static void test_parse_shapes_valid(void)
{
    ac_onnx_shape s[AC_ONNX_MAX_SHAPES];
    int n = 0;
    ac_err err;
    CHECK(ac_onnx_parse_shapes("(1,3,224,224)", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 1 && s[0].ndim == 4 && s[0].dims[1] == 3 && s[0].dims[3] == 224 && !s[0].name[0]);
    CHECK(ac_onnx_parse_shapes(" [ 1 , 3 ,224, 224 ] ", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 1 && s[0].ndim == 4 && s[0].dims[2] == 224);
    CHECK(ac_onnx_parse_shapes("1,3,224,224", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 1 && s[0].ndim == 4 && s[0].dims[0] == 1);
    CHECK(ac_onnx_parse_shapes("(1,3,224,224),(1,10)", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 2 && s[1].ndim == 2 && s[1].dims[1] == 10);
    CHECK(ac_onnx_parse_shapes("(1,3,224,224);[1,10]", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 2 && s[1].ndim == 2);
    CHECK(ac_onnx_parse_shapes("[[1,3,224,224],[1,10]]", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 2 && s[0].ndim == 4 && s[1].dims[1] == 10);
    CHECK(ac_onnx_parse_shapes("data:(1,3,8,8), mask = [1,10]", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 2 && strcmp(s[0].name, "data") == 0 && strcmp(s[1].name, "mask") == 0);
    CHECK(s[1].ndim == 2 && s[1].dims[0] == 1);
    CHECK(ac_onnx_parse_shapes("()", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 1 && s[0].ndim == 0);
    CHECK(ac_onnx_parse_shapes("(0,5)", s, AC_ONNX_MAX_SHAPES, &n, &err) == 0);
    CHECK(n == 1 && s[0].dims[0] == 0);
}

static void expect_parse_error(const char *text, const char *needle)
{
    ac_onnx_shape s[4];
    int n = 0;
    ac_err err;
    ac_err_clear(&err);
    int rc = ac_onnx_parse_shapes(text, s, 4, &n, &err);
    if (rc == 0 || !strstr(err.msg, needle)) {
        fprintf(stderr, "parse \"%s\": expected an error containing '%s', got rc=%d '%s'\n",
                text ? text : "(null)", needle, rc, err.msg);
        failures++;
    }
}

static void test_parse_shapes_errors(void)
{
    expect_parse_error(NULL, "no value");
    expect_parse_error("", "empty");
    expect_parse_error("(1,-3)", "negative");
    expect_parse_error("(1,3", "expected ',' or ')'");
    expect_parse_error("(1,3]", "expected ',' or ')'");
    expect_parse_error("(1,,3)", "expected a dim");
    expect_parse_error("(1,3)x", "between shapes");
    expect_parse_error("(99999999999)", "below 2^31");
    expect_parse_error("(1,2,3,4,5,6,7,8,9)", "more than 8 dims");
    expect_parse_error("(1),(2),(3),(4),(5)", "more than 4 shapes");
    expect_parse_error("[[1,2],[3]", "closing ']'");
    expect_parse_error("[[1,2]] junk", "after the closing");
    expect_parse_error(":(1,2)", "empty input name");
    expect_parse_error("(1,2),3", "expected '(' or '['");
    expect_parse_error("(a)", "expected a dim");
}

/* ---------------------------------------------------------- model builder */

/* A small arena of protobuf-c structs: everything is freed with the builder. */
typedef struct {
    void *ptrs[512];
    int n;
} builder;

static void *bnew(builder *b, size_t size)
{
    void *p = calloc(1, size);
    if (!p || b->n == 512)
        abort(); /* test harness only */
    b->ptrs[b->n++] = p;
    return p;
}

static void bfree(builder *b)
{
    for (int i = 0; i < b->n; i++)
        free(b->ptrs[i]);
    b->n = 0;
}

static Onnx__TensorProto *tensor_f32(builder *b, const char *name, int ndim, const int64_t *dims,
                                     const float *vals, size_t nvals)
{
    Onnx__TensorProto *t = bnew(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = (size_t)ndim;
    t->dims = (int64_t *)dims;
    t->n_float_data = nvals;
    t->float_data = (float *)vals;
    return t;
}

static Onnx__ValueInfoProto *value_info(builder *b, const char *name, int32_t elem, int ndim,
                                        const int64_t *dims, const char *const *params)
{
    Onnx__ValueInfoProto *vi = bnew(b, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    Onnx__TypeProto *tp = bnew(b, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = bnew(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *sh = bnew(b, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)ndim;
        sh->dim = bnew(b, sizeof(void *) * (size_t)(ndim ? ndim : 1));
        for (int i = 0; i < ndim; i++) {
            Onnx__TensorShapeProto__Dimension *d = bnew(b, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (params && params[i]) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = (char *)params[i];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

static Onnx__AttributeProto *attr_ints(builder *b, const char *name, size_t n, const int64_t *v)
{
    Onnx__AttributeProto *a = bnew(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = n;
    a->ints = (int64_t *)v;
    return a;
}

static Onnx__AttributeProto *attr_float(builder *b, const char *name, float v)
{
    Onnx__AttributeProto *a = bnew(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
    return a;
}

static Onnx__NodeProto *node(builder *b, const char *name, const char *op, int nin,
                             const char *const *ins, int nout, const char *const *outs)
{
    Onnx__NodeProto *n = bnew(b, sizeof *n);
    onnx__node_proto__init(n);
    n->name = (char *)name;
    n->op_type = (char *)op;
    n->n_input = (size_t)nin;
    n->input = (char **)ins;
    n->n_output = (size_t)nout;
    n->output = (char **)outs;
    return n;
}

static void node_attrs(builder *b, Onnx__NodeProto *n, int na, Onnx__AttributeProto *a0,
                       Onnx__AttributeProto *a1)
{
    n->n_attribute = (size_t)na;
    n->attribute = bnew(b, sizeof(void *) * 2);
    n->attribute[0] = a0;
    n->attribute[1] = a1;
}

/* The reference model: x[N,3,4,4] -> Conv(W[2,3,1,1], B[2], pads 0) -> Relu -> y.
 * Tests edit the parts they break through the returned pointers. */
typedef struct {
    builder b;
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__NodeProto *nodes[4];
    Onnx__TensorProto *inits[4];
    Onnx__ValueInfoProto *inputs[4];
    Onnx__ValueInfoProto *outputs[2];
    Onnx__TensorProto *w, *bias;
    Onnx__NodeProto *conv, *relu;
} model;

static const int64_t x_dims[] = {1, 3, 4, 4};
static const char *const x_params[] = {"N", NULL, NULL, NULL};
static const int64_t w_dims[] = {2, 3, 1, 1};
static const float w_vals[] = {1, 2, 3, -1, -2, -3};
static const int64_t b_dims[] = {2};
static const float b_vals[] = {0.5f, -0.5f};
static const int64_t y_dims[] = {1, 2, 4, 4};
static const char *const conv_in[] = {"x", "W", "B"};
static const char *const conv_out[] = {"c"};
static const char *const relu_in[] = {"c"};
static const char *const relu_out[] = {"y"};
static const int64_t zeros4[] = {0, 0, 0, 0};
static const int64_t ones2[] = {1, 1};

static void model_init(model *md)
{
    memset(md, 0, sizeof *md);
    builder *b = &md->b;
    onnx__model_proto__init(&md->m);
    onnx__graph_proto__init(&md->g);
    onnx__operator_set_id_proto__init(&md->opset);
    md->m.has_ir_version = 1;
    md->m.ir_version = 7;
    md->opset.domain = "";
    md->opset.has_version = 1;
    md->opset.version = 13;
    md->opsets[0] = &md->opset;
    md->m.n_opset_import = 1;
    md->m.opset_import = md->opsets;
    md->m.graph = &md->g;
    md->g.name = "g";
    md->w = tensor_f32(b, "W", 4, w_dims, w_vals, 6);
    md->bias = tensor_f32(b, "B", 1, b_dims, b_vals, 2);
    md->inits[0] = md->w;
    md->inits[1] = md->bias;
    md->g.n_initializer = 2;
    md->g.initializer = md->inits;
    md->inputs[0] = value_info(b, "x", 1, 4, x_dims, x_params);
    md->g.n_input = 1;
    md->g.input = md->inputs;
    md->outputs[0] = value_info(b, "y", 1, 4, y_dims, NULL);
    md->g.n_output = 1;
    md->g.output = md->outputs;
    md->conv = node(b, "conv1", "Conv", 3, conv_in, 1, conv_out);
    node_attrs(b, md->conv, 2, attr_ints(b, "pads", 4, zeros4), attr_ints(b, "strides", 2, ones2));
    md->relu = node(b, "", "Relu", 1, relu_in, 1, relu_out);
    md->nodes[0] = md->conv;
    md->nodes[1] = md->relu;
    md->g.n_node = 2;
    md->g.node = md->nodes;
}

static uint8_t *model_pack(model *md, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&md->m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf)
        abort();
    onnx__model_proto__pack(&md->m, buf);
    return buf;
}

static ac_graph *model_load(model *md, const ac_onnx_options *opt, ac_err *err)
{
    size_t len;
    uint8_t *buf = model_pack(md, &len);
    ac_graph *g = ac_onnx_load_buffer(buf, len, "test.onnx", opt, err);
    free(buf);
    return g;
}

static void expect_load_error(model *md, const ac_onnx_options *opt, const char *n1, const char *n2,
                              int line)
{
    ac_err err;
    ac_err_clear(&err);
    ac_graph *g = model_load(md, opt, &err);
    if (g || !strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)) || !strstr(err.msg, "test.onnx")) {
        fprintf(stderr, "line %d: expected a load error with '%s'%s%s, got %s '%s'\n", line, n1,
                n2 ? " and " : "", n2 ? n2 : "", g ? "a graph" : "error", err.msg);
        failures++;
    }
    ac_graph_destroy(&g);
    bfree(&md->b);
}

#define EXPECT_ERROR(md, opt, n1, n2) expect_load_error(md, opt, n1, n2, __LINE__)

static const ac_onnx_options no_infer = {.skip_shape_inference = 1};

/* ---------------------------------------------------------- model tests */

static void test_valid_model(void)
{
    model md;
    model_init(&md);
    ac_err err;
    ac_graph *g = model_load(&md, &no_infer, &err);
    CHECK(g != NULL);
    if (!g) {
        fprintf(stderr, "  %s\n", err.msg);
        bfree(&md.b);
        return;
    }
    CHECK(g->opset == 13);
    CHECK(g->ninputs == 1 && g->noutputs == 1);
    const ac_tensor *x = &g->tensors[g->inputs[0]];
    CHECK(strcmp(x->name, "x") == 0 && x->ndim == 4 && x->dims[0] == 1 && x->dims[3] == 4);
    CHECK(x->dtype == AC_DT_F32 && !ac_tensor_is_const(x));
    int w = ac_graph_find_tensor(g, "W");
    CHECK(w >= 0 && ac_tensor_is_const(&g->tensors[w]) && g->tensors[w].ndim == 4);
    CHECK(w >= 0 && ((float *)g->tensors[w].data)[5] == -3.0f);
    CHECK(g->nnodes == 2);
    CHECK(strcmp(g->nodes[0].name, "conv1") == 0 && g->nodes[0].op == AC_OP_CONV);
    CHECK(strcmp(g->nodes[1].name, "Relu_1") == 0 && g->nodes[1].op == AC_OP_RELU);
    const ac_attr *pads = ac_node_attr(&g->nodes[0], "pads");
    CHECK(pads && pads->type == AC_ATTR_INTS && pads->n == 4 && pads->ints[3] == 0);
    CHECK(g->nodes[0].ninputs == 3 && g->nodes[0].inputs[1] == w);
    ac_graph_destroy(&g);
    CHECK(g == NULL);
    bfree(&md.b);

    /* With shape inference the declared output [1,2,4,4] is checked too. */
    model_init(&md);
    g = model_load(&md, NULL, &err);
    CHECK(g != NULL);
    if (!g)
        fprintf(stderr, "  with shape inference: %s\n", err.msg);
    else {
        const ac_tensor *y = &g->tensors[g->outputs[0]];
        CHECK(y->ndim == 4 && y->dims[1] == 2 && y->dims[3] == 4 && y->dtype == AC_DT_F32);
    }
    ac_graph_destroy(&g);
    bfree(&md.b);

    /* Positional and named overrides replace the batch. */
    ac_onnx_shape sh[1];
    int n;
    CHECK(ac_onnx_parse_shapes("x:(4,3,4,4)", sh, 1, &n, &err) == 0);
    ac_onnx_options o = {.nshapes = 1, .shapes = sh, .skip_shape_inference = 1};
    model_init(&md);
    g = model_load(&md, &o, &err);
    CHECK(g && g->tensors[g->inputs[0]].dims[0] == 4);
    ac_graph_destroy(&g);
    bfree(&md.b);
}

static void test_model_errors(void)
{
    model md;
    ac_onnx_shape sh[2];
    int n;
    ac_err err;

    model_init(&md);
    md.opset.version = 18;
    EXPECT_ERROR(&md, &no_infer, "opset 18", "1..17");

    model_init(&md);
    md.m.ir_version = 2;
    EXPECT_ERROR(&md, &no_infer, "ir_version 2", NULL);

    model_init(&md);
    md.opset.domain = "com.example";
    EXPECT_ERROR(&md, &no_infer, "no default-domain", NULL);

    model_init(&md);
    md.relu->domain = "com.microsoft";
    EXPECT_ERROR(&md, &no_infer, "node 'Relu_1' (Relu, opset 13)", "domain 'com.microsoft'");

    model_init(&md);
    md.relu->op_type = "FancyRelu";
    EXPECT_ERROR(&md, &no_infer, "node 'FancyRelu_1' (FancyRelu, opset 13)", "not supported");

    model_init(&md);
    md.relu->op_type = "HardSwish";
    EXPECT_ERROR(&md, &no_infer, "HardSwish does not exist before opset 14", NULL);

    model_init(&md);
    md.opset.version = 6;
    md.relu->op_type = "Gemm";
    EXPECT_ERROR(&md, &no_infer, "Gemm-6", "opset 7 or newer");

    /* Opset 1..6 is fine where the op has not changed since (Conv-1, Relu-6). */
    model_init(&md);
    md.opset.version = 6;
    ac_graph *g = model_load(&md, &no_infer, &err);
    CHECK(g != NULL);
    ac_graph_destroy(&g);
    bfree(&md.b);

    model_init(&md);
    md.w->has_data_location = 1;
    md.w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "external");

    model_init(&md);
    md.w->n_float_data = 5;
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "holds 5 values, dims need 6");

    model_init(&md);
    md.w->n_float_data = 0;
    md.w->has_raw_data = 1;
    md.w->raw_data.len = 23;
    md.w->raw_data.data = (uint8_t *)"0123456789abcdefghijklm";
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "raw_data holds 23 bytes");

    static const int64_t neg_dims[] = {2, -3, 1, 1};
    model_init(&md);
    md.w->dims = (int64_t *)neg_dims;
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "dim 1 is -3");

    static const int64_t huge_dims[] = {1 << 30, 1 << 30, 1 << 30, 1};
    model_init(&md);
    md.w->dims = (int64_t *)huge_dims;
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "2^48");

    model_init(&md);
    md.w->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
    EXPECT_ERROR(&md, &no_infer, "initializer 'W'", "STRING");

    model_init(&md);
    md.bias->name = "W";
    EXPECT_ERROR(&md, &no_infer, "tensor 'W' is defined twice", NULL);

    static const char *const bad_in[] = {"x", "W", "nothere"};
    model_init(&md);
    md.conv->input = (char **)bad_in;
    EXPECT_ERROR(&md, &no_infer, "node 'conv1' (Conv, opset 13)", "input 'nothere'");

    static const char *const dup_out[] = {"c"};
    model_init(&md);
    md.relu->output = (char **)dup_out;
    EXPECT_ERROR(&md, &no_infer, "tensor 'c' is defined twice", "Relu_1");

    static const char *const dyn_params[] = {"N", NULL, "height", NULL};
    model_init(&md);
    md.inputs[0] = value_info(&md.b, "x", 1, 4, x_dims, dyn_params);
    EXPECT_ERROR(&md, &no_infer, "input 'x': dim 2 ('height') is dynamic", "--input_data_shape");

    /* ... which the override fixes. */
    model_init(&md);
    md.inputs[0] = value_info(&md.b, "x", 1, 4, x_dims, dyn_params);
    CHECK(ac_onnx_parse_shapes("(2,3,5,4)", sh, 2, &n, &err) == 0);
    ac_onnx_options o = {.nshapes = n, .shapes = sh, .skip_shape_inference = 1};
    g = model_load(&md, &o, &err);
    CHECK(g && g->tensors[g->inputs[0]].dims[0] == 2 && g->tensors[g->inputs[0]].dims[2] == 5);
    ac_graph_destroy(&g);
    bfree(&md.b);

    model_init(&md);
    CHECK(ac_onnx_parse_shapes("(1,3,4)", sh, 2, &n, &err) == 0);
    o.nshapes = n;
    EXPECT_ERROR(&md, &o, "input 'x' has 4 dims in the model", "gives 3");

    model_init(&md);
    CHECK(ac_onnx_parse_shapes("(1,3,4,4),(1,2)", sh, 2, &n, &err) == 0);
    o.nshapes = n;
    EXPECT_ERROR(&md, &o, "gives 2 shapes", "'x'");

    model_init(&md);
    CHECK(ac_onnx_parse_shapes("img:(1,3,4,4)", sh, 2, &n, &err) == 0);
    o.nshapes = n;
    EXPECT_ERROR(&md, &o, "input 'img'", "its inputs: 'x'");

    model_init(&md);
    CHECK(ac_onnx_parse_shapes("(1,3,65536,65536)", sh, 2, &n, &err) == 0);
    o.nshapes = n;
    EXPECT_ERROR(&md, &o, "input 'x'", "at most 2^31");

    model_init(&md);
    md.inputs[0] = value_info(&md.b, "x", 1, -1, NULL, NULL);
    EXPECT_ERROR(&md, &no_infer, "input 'x' has no shape", "--input_data_shape");

    model_init(&md);
    md.inputs[0] = value_info(&md.b, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 4, x_dims, NULL);
    EXPECT_ERROR(&md, &no_infer, "input 'x'", "FLOAT16");

    model_init(&md);
    md.g.n_output = 0;
    EXPECT_ERROR(&md, &no_infer, "graph has no outputs", NULL);

    model_init(&md);
    md.outputs[0] = value_info(&md.b, "zz", 1, 4, y_dims, NULL);
    EXPECT_ERROR(&md, &no_infer, "graph output 'zz'", NULL);

    model_init(&md);
    md.relu->op_type = "";
    EXPECT_ERROR(&md, &no_infer, "node #1", "no op_type");

    /* An attribute type the IR cannot hold. */
    model_init(&md);
    Onnx__AttributeProto *ga = attr_float(&md.b, "body", 0);
    ga->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    node_attrs(&md.b, md.relu, 1, ga, NULL);
    EXPECT_ERROR(&md, &no_infer, "node 'Relu_1' (Relu, opset 13)", "type GRAPH");

    model_init(&md);
    node_attrs(&md.b, md.relu, 2, attr_float(&md.b, "alpha", 1), attr_float(&md.b, "alpha", 2));
    EXPECT_ERROR(&md, &no_infer, "attribute 'alpha' is given twice", NULL);

    /* The declared output shape must agree with inference. */
    static const int64_t wrong_y[] = {1, 3, 4, 4};
    model_init(&md);
    md.outputs[0] = value_info(&md.b, "y", 1, 4, wrong_y, NULL);
    EXPECT_ERROR(&md, NULL, "graph output 'y'", "declares shape [1,3,4,4]");
}

/* Constant nodes of every supported form become constant tensors, no node. */
static void test_constant_nodes(void)
{
    model md;
    model_init(&md);
    static const char *const cf_out[] = {"cf"}, *const ci_out[] = {"ci"};
    static const char *const ct_out[] = {"ct"};
    Onnx__NodeProto *cf = node(&md.b, "cf", "Constant", 0, NULL, 1, cf_out);
    node_attrs(&md.b, cf, 1, attr_float(&md.b, "value_float", 6.0f), NULL);
    Onnx__NodeProto *ci = node(&md.b, "ci", "Constant", 0, NULL, 1, ci_out);
    static const int64_t iv[] = {7, 8, 9};
    node_attrs(&md.b, ci, 1, attr_ints(&md.b, "value_ints", 3, iv), NULL);
    Onnx__NodeProto *ct = node(&md.b, "ct", "Constant", 0, NULL, 1, ct_out);
    Onnx__AttributeProto *ta = attr_float(&md.b, "value", 0);
    ta->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    ta->t = tensor_f32(&md.b, "", 1, b_dims, b_vals, 2);
    node_attrs(&md.b, ct, 1, ta, NULL);
    Onnx__NodeProto *all[5] = {md.conv, md.relu, cf, ci, ct};
    md.g.node = all;
    md.g.n_node = 5;
    ac_err err;
    ac_graph *g = model_load(&md, &no_infer, &err);
    CHECK(g != NULL);
    if (g) {
        CHECK(g->nnodes == 2);
        int t = ac_graph_find_tensor(g, "cf");
        CHECK(t >= 0 && g->tensors[t].ndim == 0 && g->tensors[t].dtype == AC_DT_F32 &&
              *(float *)g->tensors[t].data == 6.0f);
        t = ac_graph_find_tensor(g, "ci");
        CHECK(t >= 0 && g->tensors[t].ndim == 1 && g->tensors[t].dims[0] == 3 &&
              g->tensors[t].dtype == AC_DT_I64 && ((int64_t *)g->tensors[t].data)[2] == 9);
        t = ac_graph_find_tensor(g, "ct");
        CHECK(t >= 0 && g->tensors[t].dims[0] == 2 && ((float *)g->tensors[t].data)[1] == -0.5f);
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }
    ac_graph_destroy(&g);

    /* sparse_value: unsupported, named */
    Onnx__AttributeProto *sa = attr_float(&md.b, "sparse_value", 0);
    sa->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR;
    node_attrs(&md.b, ct, 1, sa, NULL);
    EXPECT_ERROR(&md, &no_infer, "node 'ct' (Constant, opset 13)", "'sparse_value' is not supported");
}

/* Tensor attributes become constant tensors referenced by index. */
static void test_tensor_attribute(void)
{
    model md;
    model_init(&md);
    static const char *const shp_in[] = {"y"}, *const shp_out[] = {"s"};
    static const char *const cos_in[] = {"s"}, *const cos_out[] = {"z"};
    Onnx__NodeProto *shp = node(&md.b, "shape", "Shape", 1, shp_in, 1, shp_out);
    Onnx__NodeProto *cos = node(&md.b, "fill", "ConstantOfShape", 1, cos_in, 1, cos_out);
    static const int64_t one[] = {1};
    static const float v[] = {2.5f};
    Onnx__AttributeProto *ta = attr_float(&md.b, "value", 0);
    ta->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    ta->t = tensor_f32(&md.b, "", 1, one, v, 1);
    node_attrs(&md.b, cos, 1, ta, NULL);
    Onnx__NodeProto *all[4] = {md.conv, md.relu, shp, cos};
    md.g.node = all;
    md.g.n_node = 4;
    md.outputs[0] = value_info(&md.b, "z", 1, 4, y_dims, NULL);
    ac_err err;
    ac_graph *g = model_load(&md, &no_infer, &err);
    CHECK(g != NULL);
    if (g) {
        const ac_node *n = NULL;
        for (int i = 0; i < g->nnodes; i++)
            if (strcmp(g->nodes[i].name, "fill") == 0)
                n = &g->nodes[i];
        const ac_attr *a = n ? ac_node_attr(n, "value") : NULL;
        CHECK(a && a->type == AC_ATTR_TENSOR && a->tensor >= 0);
        if (a && a->tensor >= 0) {
            const ac_tensor *t = &g->tensors[a->tensor];
            CHECK(ac_tensor_is_const(t) && t->dtype == AC_DT_F32 && *(float *)t->data == 2.5f);
            CHECK(strcmp(t->name, "fill:value") == 0);
        }
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }
    ac_graph_destroy(&g);
    bfree(&md.b);
}

/* A bound input becomes a constant holding the value; an unknown name is an error. */
static void test_bound_inputs(void)
{
    model md;
    model_init(&md);
    static float xv[48];
    for (int i = 0; i < 48; i++)
        xv[i] = (float)i;
    ac_onnx_tensor v = {.name = "x", .dtype = AC_DT_F32, .ndim = 4, .dims = {1, 3, 4, 4},
                        .data = xv, .bytes = sizeof xv};
    ac_onnx_options o = {.nbound = 1, .bound = &v, .skip_shape_inference = 1};
    ac_err err;
    ac_graph *g = model_load(&md, &o, &err);
    CHECK(g != NULL);
    if (g) {
        int t = ac_graph_find_tensor(g, "x");
        CHECK(g->ninputs == 0 && t >= 0 && ac_tensor_is_const(&g->tensors[t]));
        CHECK(t >= 0 && ((float *)g->tensors[t].data)[47] == 47.0f);
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }
    ac_graph_destroy(&g);
    bfree(&md.b);

    model_init(&md);
    v.dims[2] = 5; /* the model's fixed dims are [N,3,4,4] */
    EXPECT_ERROR(&md, &o, "input 'x' (bound to a value)", "differs");

    model_init(&md);
    v.dims[2] = 4;
    v.dtype = AC_DT_I64;
    EXPECT_ERROR(&md, &o, "input 'x' (bound to a value)", "declares FLOAT");

    model_init(&md);
    snprintf(v.name, sizeof v.name, "nope");
    EXPECT_ERROR(&md, &o, "input 'nope'", "does not have");
}

/* Every prefix of a valid file is either an error or a graph; never a crash. */
static void test_truncations(void)
{
    model md;
    model_init(&md);
    size_t len;
    uint8_t *buf = model_pack(&md, &len);
    int errors = 0;
    for (size_t cut = 0; cut < len; cut++) {
        ac_err err;
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, buf, cut);
        ac_graph *g = ac_onnx_load_buffer(copy, cut, "cut.onnx", &no_infer, &err);
        if (!g) {
            errors++;
            CHECK(err.code != AC_OK && strstr(err.msg, "cut.onnx") != NULL);
        }
        ac_graph_destroy(&g);
        free(copy);
    }
    CHECK(errors > (int)len / 2);
    free(buf);
    bfree(&md.b);
}

/* 100k nested messages: an error from the wire check, not a stack overflow. */
static void test_deep_nesting(void)
{
    /* ModelProto.graph (7) -> GraphProto.node (1) -> NodeProto.attribute (5) ->
     * AttributeProto.g (6) -> GraphProto.node ... built from the inside out. */
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    uint8_t *tmp = malloc(cap);
    static const uint8_t tags[] = {0x32 /* attr.g */, 0x2a /* node.attribute */, 0x0a /* graph.node */};
    for (int level = 0; level < 30000; level++) {
        uint8_t tag = tags[level % 3];
        size_t hdr = 0;
        tmp[hdr++] = tag;
        size_t v = len;
        do {
            tmp[hdr++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        if (hdr + len + 8 > cap)
            break;
        memcpy(tmp + hdr, buf, len);
        len += hdr;
        uint8_t *sw = buf;
        buf = tmp;
        tmp = sw;
    }
    /* wrap: ModelProto { ir_version 7, graph = ... } */
    uint8_t *model = malloc(len + 16);
    size_t m = 0;
    model[m++] = 0x08;
    model[m++] = 7;
    model[m++] = 0x3a;
    size_t v = len;
    do {
        model[m++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    memcpy(model + m, buf, len);
    ac_err err;
    ac_graph *g = ac_onnx_load_buffer(model, m + len, "deep.onnx", NULL, &err);
    CHECK(g == NULL && strstr(err.msg, "nested deeper"));
    ac_graph_destroy(&g);
    free(model);
    free(buf);
    free(tmp);
}

static void test_tensor_pb(void)
{
    builder b = {0};
    static const int64_t dims[] = {2, 3};
    static const float vals[] = {1, 2, 3, 4, 5, 6};
    Onnx__TensorProto *t = tensor_f32(&b, "t0", 2, dims, vals, 6);
    size_t len = onnx__tensor_proto__get_packed_size(t);
    uint8_t *buf = malloc(len);
    onnx__tensor_proto__pack(t, buf);
    ac_onnx_tensor out;
    ac_err err;
    CHECK(ac_onnx_tensor_from_buffer(buf, len, "t.pb", &out, &err) == 0);
    CHECK(out.dtype == AC_DT_F32 && out.ndim == 2 && out.dims[1] == 3 && out.bytes == 24);
    CHECK(out.data && ((float *)out.data)[5] == 6.0f && strcmp(out.name, "t0") == 0);
    ac_onnx_tensor_free(&out);
    CHECK(out.data == NULL);
    free(buf);

    /* int64 in raw_data */
    static const int64_t iv[] = {-1, 5};
    static const int64_t d1[] = {2};
    t = tensor_f32(&b, "i", 1, d1, NULL, 0);
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->has_raw_data = 1;
    t->raw_data.len = sizeof iv;
    t->raw_data.data = (uint8_t *)iv;
    len = onnx__tensor_proto__get_packed_size(t);
    buf = malloc(len);
    onnx__tensor_proto__pack(t, buf);
    CHECK(ac_onnx_tensor_from_buffer(buf, len, "i.pb", &out, &err) == 0);
    CHECK(out.dtype == AC_DT_I64 && ((int64_t *)out.data)[0] == -1 && ((int64_t *)out.data)[1] == 5);
    ac_onnx_tensor_free(&out);
    CHECK(ac_onnx_tensor_from_buffer(buf, len - 3, "short.pb", &out, &err) != 0);
    CHECK(strstr(err.msg, "short.pb") != NULL);
    free(buf);

    CHECK(ac_onnx_load_tensor_pb("/nonexistent/x.pb", &out, &err) == AC_E_IO);
    CHECK(strstr(err.msg, "/nonexistent/x.pb") != NULL);
    bfree(&b);
}

static void test_op_versions(void)
{
    CHECK(ac_onnx_op_version("Conv", 13) == 11);
    CHECK(ac_onnx_op_version("Conv", 1) == 1);
    CHECK(ac_onnx_op_version("GlobalAveragePool", 1) == 1);
    CHECK(ac_onnx_op_version("Gemm", 6) == -1);
    CHECK(ac_onnx_op_version("HardSwish", 13) == 0);
    CHECK(ac_onnx_op_version("HardSwish", 14) == 14);
    CHECK(ac_onnx_op_version("Resize", 9) == 0);
    CHECK(ac_onnx_op_version("NoSuchOp", 13) == 0);
}

int main(void)
{
    test_parse_shapes_valid();
    test_parse_shapes_errors();
    test_op_versions();
    test_valid_model();
    test_model_errors();
    test_constant_nodes();
    test_tensor_attribute();
    test_bound_inputs();
    test_truncations();
    test_deep_nesting();
    test_tensor_pb();
    if (failures) {
        fprintf(stderr, "onnx_loader_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("onnx_loader_test: all checks passed\n");
    return 0;
}
