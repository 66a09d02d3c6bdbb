/* ac_pytorch: PyTorch models through ONNX. C never links Python: the helper
 * python/export_pytorch.py runs in the user's interpreter (with their torch)
 * as a child process and writes ONNX, which the ONNX importer then reads.
 *
 * A PyTorch model is a TorchScript file (.pt, .pth, .torchscript) or
 * "module.py:ClassName" (the class built with no arguments, a state dict
 * from `weights`). Export needs the input shapes (--input_data_shape): a
 * TorchScript module records no shapes. The interpreter is $AC_PYTHON
 * (default python3 on PATH), the helper $AC_PYTHON_DIR/export_pytorch.py
 * (default: the source tree's python/ this binary was built from). */
#ifndef AC_PYTORCH_H
#define AC_PYTORCH_H

#include <stdbool.h>

#include "ac_graph.h"

/* A TorchScript file by extension, or a "file.py:Class" spec. */
bool ac_pytorch_is_model(const char *path);

/* Runs the helper to write out_onnx. On failure err holds the helper's own
 * message (its last stderr line) or why it could not be started. */
int ac_pytorch_export(const char *model, const char *weights, const char *input_shapes,
                      const char *out_onnx, ac_err *err);

/* Exports to a temporary ONNX file (removed before returning) and returns
 * its raw bytes (*buf malloc'ed): the caller loads them with the ONNX
 * importer. */
int ac_pytorch_export_buffer(const char *model, const char *weights, const char *input_shapes,
                             char **buf, size_t *len, ac_err *err);

#endif
