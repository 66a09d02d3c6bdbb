/* ac_onnx_write: an ac_graph as an ONNX ModelProto, so that a model imported
 * from another format travels to the farm's workers as the bytes they already
 * load (ac_onnx_load_buffer). See ac_onnx.h for what is written. All protobuf
 * structs live in one arena; names and constant data point into the graph. */
#include <stdlib.h>
#include <string.h>

#include "ac_onnx.h"
#include "onnx/onnx.pb-c.h"

#define IR_VERSION 8 /* opsets up to 17 */

typedef struct {
    const ac_graph *g;
    ac_arena *a;
    ac_err *err;
} writer;

static void *alloc(writer *w, size_t n) { return ac_arena_alloc(w->a, n ? n : 1); }

static int nomem(writer *w) { return ac_err_set(w->err, AC_E_NOMEM, "ONNX export: out of memory"); }

static Onnx__TensorProto *tensor_proto(writer *w, int t)
{
    const ac_tensor *ts = &w->g->tensors[t];
    Onnx__TensorProto *tp = alloc(w, sizeof *tp);
    int64_t *dims = alloc(w, sizeof(int64_t) * (size_t)(ts->ndim > 0 ? ts->ndim : 1));
    if (!tp || !dims)
        return NULL;
    onnx__tensor_proto__init(tp);
    memcpy(dims, ts->dims, sizeof(int64_t) * (size_t)(ts->ndim > 0 ? ts->ndim : 0));
    tp->n_dims = (size_t)(ts->ndim > 0 ? ts->ndim : 0);
    tp->dims = dims;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)ts->dtype; /* ac_dtype values are the ONNX codes */
    tp->name = (char *)ts->name;
    tp->has_raw_data = 1;
    tp->raw_data.len = ac_tensor_bytes(ts);
    tp->raw_data.data = ts->data;
    return tp;
}

static Onnx__ValueInfoProto *value_info(writer *w, int t)
{
    const ac_tensor *ts = &w->g->tensors[t];
    Onnx__ValueInfoProto *vi = alloc(w, sizeof *vi);
    Onnx__TypeProto *tp = alloc(w, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(w, sizeof *tt);
    if (!vi || !tp || !tt)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vi->name = (char *)ts->name;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)ts->dtype;
    if (ts->ndim < 0)
        return vi; /* unknown shape: none written */
    Onnx__TensorShapeProto *sp = alloc(w, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **dims = alloc(w, sizeof *dims * (size_t)(ts->ndim ? ts->ndim : 1));
    if (!sp || !dims)
        return NULL;
    onnx__tensor_shape_proto__init(sp);
    for (int d = 0; d < ts->ndim; d++) {
        dims[d] = alloc(w, sizeof **dims);
        if (!dims[d])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[d]);
        dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dims[d]->dim_value = ts->dims[d];
    }
    sp->n_dim = (size_t)ts->ndim;
    sp->dim = dims;
    tt->shape = sp;
    return vi;
}

static int attribute(writer *w, const ac_node *n, const ac_attr *a, Onnx__AttributeProto **out)
{
    Onnx__AttributeProto *ap = alloc(w, sizeof *ap);
    if (!ap)
        return nomem(w);
    onnx__attribute_proto__init(ap);
    ap->name = (char *)a->name;
    ap->has_type = 1;
    switch (a->type) {
    case AC_ATTR_INT:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        ap->has_i = 1;
        ap->i = a->i;
        break;
    case AC_ATTR_FLOAT:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        ap->has_f = 1;
        ap->f = a->f;
        break;
    case AC_ATTR_INTS:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        ap->n_ints = (size_t)a->n;
        ap->ints = a->ints;
        break;
    case AC_ATTR_FLOATS:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        ap->n_floats = (size_t)a->n;
        ap->floats = a->floats;
        break;
    case AC_ATTR_STRING:
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        ap->has_s = 1;
        ap->s.len = strlen(a->s);
        ap->s.data = (uint8_t *)a->s;
        break;
    case AC_ATTR_TENSOR:
        if (a->tensor < 0 || a->tensor >= w->g->ntensors || !w->g->tensors[a->tensor].data)
            return ac_err_set(w->err, AC_E_INVALID, "ONNX export: node '%s' attribute '%s' names no constant tensor",
                              n->name, a->name);
        ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        if (!(ap->t = tensor_proto(w, a->tensor)))
            return nomem(w);
        break;
    }
    *out = ap;
    return 0;
}

/* A node whose outputs shape inference turned into constants is not written:
 * the constants are (as initializers). */
static bool folded(const ac_graph *g, const ac_node *n)
{
    for (int j = 0; j < n->noutputs; j++)
        if (n->outputs[j] >= 0 && !g->tensors[n->outputs[j]].data)
            return false;
    return true;
}

static const char *tensor_name(const ac_graph *g, int t) { return t >= 0 ? g->tensors[t].name : ""; }

static int node_proto(writer *w, const ac_node *n, Onnx__NodeProto **out)
{
    const char *op = ac_op_name(n->op);
    if (!op || ac_onnx_op_version(op, w->g->opset) <= 0)
        return ac_err_set(w->err, AC_E_UNSUPPORTED, "ONNX export: node '%s' (%s) has no ONNX form at opset %d", n->name,
                          op ? op : n->op_type, w->g->opset);
    Onnx__NodeProto *np = alloc(w, sizeof *np);
    char **ins = alloc(w, sizeof(char *) * (size_t)n->ninputs);
    char **outs = alloc(w, sizeof(char *) * (size_t)n->noutputs);
    Onnx__AttributeProto **attrs = alloc(w, sizeof *attrs * (size_t)n->nattrs);
    if (!np || !ins || !outs || !attrs)
        return nomem(w);
    onnx__node_proto__init(np);
    for (int j = 0; j < n->ninputs; j++)
        ins[j] = (char *)tensor_name(w->g, n->inputs[j]);
    for (int j = 0; j < n->noutputs; j++)
        outs[j] = (char *)tensor_name(w->g, n->outputs[j]);
    for (int k = 0; k < n->nattrs; k++)
        if (attribute(w, n, &n->attrs[k], &attrs[k]))
            return w->err ? (int)w->err->code : AC_E_INVALID;
    np->name = (char *)n->name;
    np->op_type = (char *)op;
    np->n_input = (size_t)n->ninputs;
    np->input = ins;
    np->n_output = (size_t)n->noutputs;
    np->output = outs;
    np->n_attribute = (size_t)n->nattrs;
    np->attribute = attrs;
    *out = np;
    return 0;
}

static int build_graph(writer *w, Onnx__GraphProto *gp)
{
    const ac_graph *g = w->g;
    onnx__graph_proto__init(gp);
    gp->name = (char *)(g->name ? g->name : "graph");
    gp->node = alloc(w, sizeof *gp->node * (size_t)g->nnodes);
    gp->initializer = alloc(w, sizeof *gp->initializer * (size_t)g->ntensors);
    gp->input = alloc(w, sizeof *gp->input * (size_t)g->ninputs);
    gp->output = alloc(w, sizeof *gp->output * (size_t)g->noutputs);
    char *read = alloc(w, (size_t)g->ntensors);
    if (!gp->node || !gp->initializer || !gp->input || !gp->output || !read)
        return nomem(w);
    memset(read, 0, (size_t)g->ntensors);
    for (int i = 0; i < g->nnodes; i++) {
        const ac_node *n = &g->nodes[i];
        if (folded(g, n))
            continue;
        for (int j = 0; j < n->ninputs; j++)
            if (n->inputs[j] >= 0)
                read[n->inputs[j]] = 1;
        if (node_proto(w, n, &gp->node[gp->n_node]))
            return w->err ? (int)w->err->code : AC_E_INVALID;
        gp->n_node++;
    }
    for (int t = 0; t < g->ntensors; t++) {
        if (!read[t] || !g->tensors[t].data)
            continue;
        if (!(gp->initializer[gp->n_initializer++] = tensor_proto(w, t)))
            return nomem(w);
    }
    for (int i = 0; i < g->ninputs; i++)
        if (!(gp->input[gp->n_input++] = value_info(w, g->inputs[i])))
            return nomem(w);
    for (int i = 0; i < g->noutputs; i++) {
        if (g->tensors[g->outputs[i]].data)
            return ac_err_set(w->err, AC_E_UNSUPPORTED, "ONNX export: output '%s' is a constant",
                              g->tensors[g->outputs[i]].name);
        if (!(gp->output[gp->n_output++] = value_info(w, g->outputs[i])))
            return nomem(w);
    }
    return 0;
}

int ac_onnx_save_buffer(const ac_graph *g, uint8_t **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    writer w = {g, ac_arena_new(0), err};
    if (!w.a)
        return ac_err_set(err, AC_E_NOMEM, "ONNX export: out of memory");
    Onnx__ModelProto m;
    Onnx__GraphProto gp;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    onnx__model_proto__init(&m);
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = g->opset;
    m.has_ir_version = 1;
    m.ir_version = IR_VERSION;
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.producer_name = "autocalib";
    m.graph = &gp;
    int rc = build_graph(&w, &gp);
    if (!rc && g->nmeta) {
        m.metadata_props = alloc(&w, sizeof *m.metadata_props * (size_t)g->nmeta);
        for (int i = 0; m.metadata_props && i < g->nmeta; i++) {
            Onnx__StringStringEntryProto *e = alloc(&w, sizeof *e);
            if (!e)
                break;
            onnx__string_string_entry_proto__init(e);
            e->key = (char *)g->meta[i].key;
            e->value = (char *)g->meta[i].value;
            m.metadata_props[m.n_metadata_props++] = e;
        }
        if (m.n_metadata_props != (size_t)g->nmeta)
            rc = nomem(&w);
    }
    if (!rc) {
        size_t size = protobuf_c_message_get_packed_size(&m.base);
        *buf = malloc(size ? size : 1);
        if (!*buf)
            rc = nomem(&w);
        else
            *len = protobuf_c_message_pack(&m.base, *buf);
    }
    ac_arena_destroy(&w.a);
    return rc;
}
