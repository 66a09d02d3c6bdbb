/* ac_mxnet: the MXNet importer. A symbol file (NAME-symbol.json, read with
 * Debian's jansson) plus its parameters (NAME-0000.params, MXNet's NDArray
 * list format) become an ac_graph of ONNX ops at opset 13, toposorted and
 * shape-inferred. MXNet is NCHW like the IR, so the mapping is one node to
 * one node (FullyConnected with flatten adds a Flatten). The symbol records
 * no shapes: the data input's shape comes from --input_data_shape.
 *
 * The .params layout (docs/importers.md, "MXNet", gives it in full): uint64
 * 0x112, uint64 0, uint64 count, count NDArrays, uint64 count, count names
 * (uint64 length + bytes, "arg:"/"aux:" prefixes). An NDArray: uint32 magic
 * (0xF993FAC8 V1, 0xF993FAC9 V2, 0xF993FACA V3; anything else is the ndim of
 * the legacy layout with uint32 dims), int32 storage type (V2/V3; 0 dense
 * only), the shape (uint32 ndim, V3 int32; int64 dims), int32 dev_type,
 * int32 dev_id, int32 type flag (0 float32, 1 float64), the data.
 *
 * Errors name the file, the node (index, name, op) or the byte offset, and
 * the rule. */
#ifndef AC_MXNET_H
#define AC_MXNET_H

#include <stddef.h>

#include "ac_graph.h"
#include "ac_onnx.h"

#define AC_MXNET_OPSET 13

typedef struct {
    const ac_onnx_shape *shapes; /* by input name, or positional in symbol order */
    int nshapes;
} ac_mxnet_options;

ac_graph *ac_mxnet_load_buffer(const char *json, size_t json_len, const char *json_name, const void *params,
                               size_t params_len, const char *params_name, const ac_mxnet_options *opt,
                               ac_err *err);
ac_graph *ac_mxnet_load(const char *json_path, const char *params_path, const ac_mxnet_options *opt,
                        ac_err *err);

/* The NDArray list of a .params file alone, for the fuzz target: 0 or an
 * error naming the byte offset. *count gets the number of arrays. */
int ac_mxnet_check_params(const void *buf, size_t len, const char *name, int *count, ac_err *err);

#endif
