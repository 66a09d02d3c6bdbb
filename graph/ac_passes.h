/* ac_passes: graph simplifications applied after import and shape inference,
 * before calibration and execution. Each pass keeps the graph's outputs
 * (names and values, up to fp32 rounding for BN folding) unchanged. */
#ifndef AC_PASSES_H
#define AC_PASSES_H

#include "ac_graph.h"

typedef struct {
    int bn_folded;          /* BatchNormalization merged into the Conv/Gemm before it */
    int identities_dropped; /* Identity / Dropout removed */
    int relu6_recognised;   /* Clip(0,6) -> Relu6, Clip(0,inf) -> Relu */
    int silu_recognised;    /* x * Sigmoid(x) -> SiLU */
    int nodes_pruned;       /* nodes no output depends on (folded constants included) */
} ac_passes_stats;

/* Runs every pass, then re-sorts, prunes and re-infers shapes. The graph must
 * be toposorted and shape-inferred on entry. stats may be NULL. */
int ac_graph_simplify(ac_graph *g, ac_passes_stats *stats, ac_err *err);

/* Individual passes (each returns the number of rewrites). */
int ac_pass_fold_batchnorm(ac_graph *g, ac_err *err);
int ac_pass_drop_identity(ac_graph *g);
int ac_pass_recognise_relu6(ac_graph *g);
int ac_pass_recognise_silu(ac_graph *g);

#endif
