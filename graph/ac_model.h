/* ac_model: load a model file of any supported format into a ready graph:
 * import (the format is chosen by file type), shape inference, and the
 * simplification passes (BN folding, Identity/Dropout removal, ReLU6/SiLU
 * recognition, pruning). This is what the CLI and the workers call. */
#ifndef AC_MODEL_H
#define AC_MODEL_H

#include <stdbool.h>

#include "ac_graph.h"
#include "ac_passes.h"

typedef struct {
    const char *weights;          /* second file of two-file formats (later importers) */
    const char *input_shapes;     /* --input_data_shape string, NULL for the file's shapes */
    bool no_simplify;             /* keep the graph exactly as imported */
} ac_model_options;

typedef enum { AC_FORMAT_UNKNOWN = 0, AC_FORMAT_ONNX } ac_model_format;

ac_model_format ac_model_detect(const char *path);
const char *ac_model_format_name(ac_model_format f);

/* NULL on error (err names the file and the rule). stats may be NULL. */
ac_graph *ac_model_load(const char *path, const ac_model_options *opt, ac_passes_stats *stats,
                        ac_err *err);

/* Total weight elements (constant float tensors read by nodes). */
int64_t ac_graph_param_count(const ac_graph *g);

#endif
