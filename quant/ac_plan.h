/* ac_plan: the BM1684 int8 plan of an fp32 graph (docs/bm1684-int8.md, the
 * "spec"; our choices in docs/int8.md).
 *
 * Built from the simplified fp32 graph, a calibration table and options:
 *  1. threshold sharing (§2, §10.4) on a copy of the table: the "shared
 *     table", which is the calibration_table artefact;
 *  2. per node a mode: int8, or fp32 with the reason (forced by an option, a
 *     spec rule such as r < 0 or stride > 15, or no int8 form);
 *  3. per int8 node its parameters (int8 weights, int16 biases, shifts,
 *     multipliers, requant pairs, tables) in kernels/ac_int8_ref.h structs;
 *  4. per tensor its quantization (threshold, sign, scale) and where it lives:
 *     codes, float, or both (quantize / dequantize at fp32<->int8 boundaries, §6).
 * The plan points into the graph (names, constants): the graph must outlive it. */
#ifndef AC_PLAN_H
#define AC_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ac_calib_table.h"
#include "ac_graph.h"
#include "ac_int8_ref.h"

typedef struct {
    bool per_channel;            /* per-output-channel conv/FC shifts (§3, ours) */
    bool accuracy_opt;           /* depthwise convs in fp32 */
    bool first_conv_fp32;        /* the first conv (graph order) in fp32 */
    const char *const *fp32_layers; /* node names or output tensor names forced to fp32 */
    int n_fp32_layers;
} ac_quant_options;

typedef enum { AC_MODE_INT8 = 0, AC_MODE_FP32 } ac_node_mode;

typedef enum {
    AC_WHY_NONE = 0,
    AC_WHY_FORCED,        /* --fp32_layers */
    AC_WHY_ACCURACY_OPT,  /* --accuracy_opt: depthwise conv */
    AC_WHY_FIRST_CONV,    /* --first_conv_fp32 */
    AC_WHY_SHIFT,         /* conv/FC: r < 0 (per tensor or in some channel) */
    AC_WHY_STRIDE,        /* conv: stride > 15 */
    AC_WHY_POOL_AREA,     /* pool window / global pool area > 225 */
    AC_WHY_ADD_MULT,      /* Add (or Sub) multiplier outside [0, 127] */
    AC_WHY_MUL_MULT,      /* Mul multiplier outside [0, 127] */
    AC_WHY_REQUANT,       /* Concat input needs a requant multiplier > 127 */
    AC_WHY_SLOPE,         /* LeakyReLU / PReLU slope multiplier out of range or layout */
    AC_WHY_ACCUMULATOR,   /* conv/FC accumulator could leave int32 (§10.7) */
    AC_WHY_NO_INT8_FORM,  /* op without an int8 form (Softmax, bilinear Resize, MatMul of activations, ...) */
    AC_WHY_NOT_ACTIVATION,/* operands that are not float activations (shape arithmetic, constant operands, run-time parameters) */
    AC_WHY_RANGE,         /* code-moving op whose input and output ranges differ */
    AC_WHY_FOLLOWS_FP32,  /* code-moving op whose data input an fp32 layer produces */
    AC_WHY_FUSED_ACT,     /* ReLU/Clip, the only consumer of an fp32 conv/FC (fused with it) */
    AC_WHY_COUNT
} ac_fp32_reason;

const char *ac_fp32_reason_name(ac_fp32_reason why);

typedef enum {
    AC_Q8_NONE = 0, /* fp32 node */
    AC_Q8_CONV,
    AC_Q8_FC,
    AC_Q8_ADD,
    AC_Q8_MUL,
    AC_Q8_CONCAT,
    AC_Q8_MAXPOOL,
    AC_Q8_AVGPOOL,
    AC_Q8_GLOBAL_AVGPOOL,
    AC_Q8_GLOBAL_MAXPOOL,
    AC_Q8_CLAMP,    /* ReLU, ReLU6, Clip(0, max) */
    AC_Q8_PRELU,    /* PReLU, LeakyReLU */
    AC_Q8_LUT,      /* Sigmoid, Tanh, SiLU, HardSwish, HardSigmoid, Exp, other Clip */
    AC_Q8_MOVE      /* data movement: codes moved by the fp32 op's generic kernel */
} ac_q8_kind;

const char *ac_q8_kind_name(ac_q8_kind k);

typedef struct {
    ac_node_mode mode;
    ac_fp32_reason why;
    char detail[160];     /* for fp32 nodes: the rule and the numbers, e.g. "r = -2" */
    ac_q8_kind kind;
    bool per_channel;     /* conv/FC lowered with per-channel shifts */
    union {
        ac_conv_q8_params conv;
        ac_fc_q8_params fc;
        ac_add_q8_params add;
        ac_mul_q8_params mul;
        struct {
            int64_t outer;
            int64_t *chunk;
            ac_requant_q8_params *rq;
        } concat;
        ac_pool_shape maxpool;
        ac_avgpool_q8_params avgpool;
        ac_global_avgpool_q8_params gavg;
        struct {
            int64_t rows, len;
        } gmax;
        ac_clamp_q8_params clamp;
        ac_prelu_q8_params prelu;
        ac_lut_q8_params lut;
    } u;
} ac_node_plan;

typedef struct {
    bool activation;   /* a float, non-constant tensor (the quantizable kind) */
    bool has_range;    /* a (shared) calibration range exists */
    double th, min, max;
    bool is_signed;    /* min < 0: int8, scale th/127; else uint8, th/255 */
    double scale;
    bool int8_produced; /* written as codes by an int8 node */
    bool has_codes;     /* codes exist: int8_produced, or quantized for an int8 consumer */
    bool has_float;     /* a float (native dtype) buffer exists: graph input, fp32 producer,
                           or dequantized for an fp32 consumer / graph output */
} ac_tensor_plan;

typedef struct ac_plan {
    const ac_graph *g;
    ac_arena *arena;          /* weights, biases, shifts, tables */
    ac_quant_options opt;     /* as given (pointers not owned) */
    ac_tensor_plan *tensors;  /* [g->ntensors] */
    ac_node_plan *nodes;      /* [g->nnodes] */
    ac_calib_table *shared;   /* the table after sharing (the calibration_table artefact) */
    int n_int8, n_fp32;       /* node counts */
} ac_plan;

/* g: toposorted, shape-inferred, simplified (ac_graph_simplify). Errors: an
 * unknown name in opt->fp32_layers (named), a tensor an int8 node needs with no
 * calibration range (named). */
ac_plan *ac_plan_build(const ac_graph *g, const ac_calib_table *table, const ac_quant_options *opt,
                       ac_err *err);
void ac_plan_destroy(ac_plan **p);

/* Threshold sharing alone (§2, §10.4) on a copy of table (exposed for tests
 * and for writing the artefact): tensors without a range stay without one. */
ac_calib_table *ac_plan_share(const ac_graph *g, const ac_calib_table *table, ac_err *err);

/* The qtable (§8, §10.8): output names (first output) of fp32 layers whose
 * output is a float activation, in graph order. Returns the count; names[]
 * (arena-owned strings) may be NULL to count only; cap bounds what is stored. */
int ac_plan_qtable(const ac_plan *p, const char **names, int cap);
int ac_plan_write_qtable(const ac_plan *p, const char *path, ac_err *err);

/* A one-line summary per node ("conv1 Conv int8 per-tensor r=7" / "fp32 (r<0: ...)")
 * written to f; for logs and the CLI. */
void ac_plan_print(const ac_plan *p, FILE *f);

/* The conv or FC a ReLU / ReLU6 / Clip node is fused with (it is that
 * output's only consumer), or -1: such an activation runs in the mode of its
 * conv (fp32 with it, reason AC_WHY_FUSED_ACT). */
int ac_plan_fused_producer(const ac_plan *p, int node);

#endif
