/* autocalib info MODEL: what a user needs to know before quantizing, or what
 * an int8 model file holds. */
#include <stdio.h>
#include <string.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_int8_model.h"
#include "ac_model.h"
#include "ac_ops.h"

static void print_shape(const ac_tensor *t)
{
    printf("[");
    for (int i = 0; i < t->ndim; i++)
        printf("%s%lld", i ? "," : "", (long long)t->dims[i]);
    printf("]");
}

static void print_io(const ac_graph *g, const char *title, int n, const int *idx)
{
    printf("%s:\n", title);
    for (int i = 0; i < n; i++) {
        const ac_tensor *t = &g->tensors[idx[i]];
        printf("  %-24s %-8s ", t->name, ac_dtype_name(t->dtype));
        print_shape(t);
        printf("\n");
    }
}

static void print_op_histogram(const ac_graph *g)
{
    int count[AC_OP_COUNT] = {0};
    for (int i = 0; i < g->nnodes; i++)
        count[g->nodes[i].op]++;
    printf("ops (%d nodes):", g->nnodes);
    const char *sep = " ";
    for (int op = 1; op < AC_OP_COUNT; op++)
        if (count[op]) {
            printf("%s%s %d", sep, ac_op_name((ac_op)op), count[op]);
            sep = ", ";
        }
    printf("\n");
}

static void print_layers(const ac_graph *g)
{
    int64_t total = 0;
    printf("layers:\n  %-32s %-18s %-20s %14s\n", "name", "op", "output", "MACs");
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        int64_t macs = ac_node_macs(g, n);
        total += macs;
        printf("  %-32s %-18s ", n->name, ac_op_name(n->op));
        char shape[64] = "";
        const ac_tensor *t = &g->tensors[n->outputs[0]];
        int len = 0;
        for (int d = 0; d < t->ndim && len < (int)sizeof shape - 12; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", d ? "x" : "",
                            (long long)t->dims[d]);
        printf("%-20s %14lld\n", shape, (long long)macs);
    }
    printf("total MACs: %lld (%.3f G)\n", (long long)total, (double)total / 1e9);
}

/* An int8 model file (docs/int8-model-format.md): the graph, the options it
 * was quantized with and the per-layer plan. */
static int info_int8(const char *path)
{
    ac_err err = {0};
    ac_int8_model *m = ac_int8_model_load(path, &err);
    if (!m)
        return ac_cli_fail("info", err.msg);
    const ac_graph *g = ac_int8_model_graph(m);
    const ac_plan *p = ac_int8_model_plan(m);
    printf("model: %s (autocalib int8 model, format version %d, written by %s; graph '%s', "
           "opset %d)\n", path, AC_INT8_MODEL_VERSION, ac_int8_model_producer(m), g->name,
           g->opset);
    print_io(g, "inputs", g->ninputs, g->inputs);
    print_io(g, "outputs", g->noutputs, g->outputs);
    print_op_histogram(g);
    printf("options: per_channel %s, accuracy_opt %s, first_conv_fp32 %s, fp32_layers",
           p->opt.per_channel ? "on" : "off", p->opt.accuracy_opt ? "on" : "off",
           p->opt.first_conv_fp32 ? "on" : "off");
    for (int i = 0; i < p->opt.n_fp32_layers; i++)
        printf("%s%s", i ? "," : " ", p->opt.fp32_layers[i]);
    printf("%s\n", p->opt.n_fp32_layers ? "" : " none");
    printf("calibration table: %zu tensors; plan: %d int8 layers, %d fp32 layers\n",
           ac_calib_table_size(p->shared), p->n_int8, p->n_fp32);
    printf("layers:\n");
    ac_plan_print(p, stdout);
    ac_int8_model_destroy(&m);
    return 0;
}

int ac_cmd_info(int argc, char **argv)
{
    const char *shapes = NULL, *weights = NULL, *model = NULL;
    bool raw = false, help = false;
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &model, "model file (or give it as the first argument)"},
        {"weights", NULL, AC_ARG_STRING, &weights, "the weights of two-file formats (Darknet: --model X.cfg --weights X.weights; Caffe: --model X.prototxt --weights X.caffemodel; a state dict for module.py:Class)"},
        {"input_data_shape", NULL, AC_ARG_STRING, &shapes, "input shape(s), e.g. '(1,3,224,224)'"},
        {"raw", NULL, AC_ARG_FLAG, &raw, "show the graph as imported, before simplification passes"},
    };
    const char *pos[1];
    int npos = 0;
    ac_err err = {0};
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    if (ac_args_parse(argc, argv, 2, specs, nspecs, pos, 1, &npos, &help, &err)) {
        fprintf(stderr, "autocalib info: %s\n", err.msg);
        return 2;
    }
    if (help) {
        ac_args_print_help("usage: autocalib info MODEL [--weights W] [--input_data_shape S]", specs, nspecs);
        return 0;
    }
    if (npos)
        model = pos[0];
    if (!model) {
        fprintf(stderr, "autocalib info: no model given (autocalib info MODEL)\n");
        return 2;
    }
    if (ac_int8_model_detect(model))
        return info_int8(model);
    ac_model_options opt = {.weights = weights, .input_shapes = shapes, .no_simplify = raw};
    ac_passes_stats st = {0};
    ac_graph *g = ac_model_load(model, &opt, &st, &err);
    if (!g)
        return ac_cli_fail("info", err.msg);
    printf("model: %s (%s, opset %d)\n", model, ac_model_format_name(ac_model_detect(model)), g->opset);
    print_io(g, "inputs", g->ninputs, g->inputs);
    print_io(g, "outputs", g->noutputs, g->outputs);
    if (g->nmeta) /* e.g. a Darknet import's YOLO heads (docs/importers.md) */
        printf("metadata:\n");
    for (int i = 0; i < g->nmeta; i++)
        printf("  %s = %s\n", g->meta[i].key, g->meta[i].value);
    print_op_histogram(g);
    printf("parameters: %lld\n", (long long)ac_graph_param_count(g));
    if (!raw)
        printf("passes: %d BatchNormalization folded, %d Identity/Dropout dropped, %d ReLU6/ReLU "
               "from Clip, %d SiLU recognised, %d nodes pruned\n",
               st.bn_folded, st.identities_dropped, st.relu6_recognised, st.silu_recognised,
               st.nodes_pruned);
    print_layers(g);
    ac_graph_destroy(&g);
    return 0;
}
