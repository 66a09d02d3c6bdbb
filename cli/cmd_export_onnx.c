/* autocalib export-onnx MODEL [--weights W] [--input_data_shape S] --output OUT.onnx:
 * any model autocalib imports, written as the ONNX file a farm worker would
 * receive (ac_model_blob): the import with its node and tensor names, so the
 * names in autocalib's calibration table and quantize table are tensors of
 * this file. It is what tpu-mlir's model_transform reads for a format it does
 * not import itself (Darknet, MXNet, a TensorFlow frozen graph). An ONNX
 * model is copied unchanged. */
#include <stdio.h>
#include <stdlib.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_model.h"

/* Writes buf to path through a temporary file, so a failed write leaves no
 * half-written model behind. */
static int write_file_atomically(const char *path, const uint8_t *buf, size_t len, ac_err *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ac_err_set(err, AC_E_INVALID, "--output: path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ac_err_set(err, AC_E_IO, "%s: cannot create the file", tmp);
    size_t wrote = fwrite(buf, 1, len, f);
    int closed = fclose(f);
    if (wrote != len || closed != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return ac_err_set(err, AC_E_IO, "%s: cannot write %zu bytes", path, len);
    }
    return AC_OK;
}

int ac_cmd_export_onnx(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL, *shapes = NULL, *output = NULL;
    bool help = false;
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &model, "the model, any format autocalib reads (or the first argument)"},
        {"weights", NULL, AC_ARG_STRING, &weights, "its weights for two-file formats (Darknet, Caffe, MXNet)"},
        {"input_data_shape", NULL, AC_ARG_STRING, &shapes, "input shape(s), e.g. '(1,3,320,320)' (default: the model's)"},
        {"output", NULL, AC_ARG_STRING, &output, "the ONNX file to write"},
    };
    const char *pos[1];
    int npos = 0;
    ac_err err = {0};
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    if (ac_args_parse(argc, argv, 2, specs, nspecs, pos, 1, &npos, &help, &err)) {
        fprintf(stderr, "autocalib export-onnx: %s\n", err.msg);
        return 2;
    }
    if (help) {
        ac_args_print_help("usage: autocalib export-onnx MODEL [--weights W] [--input_data_shape S] --output OUT.onnx",
                           specs, nspecs);
        return 0;
    }
    if (npos)
        model = pos[0];
    if (!model || !output) {
        fprintf(stderr, "autocalib export-onnx: MODEL and --output are required\n");
        return 2;
    }
    ac_model_options opt = {.weights = weights, .input_shapes = shapes};
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ac_model_blob(model, &opt, &buf, &len, &err))
        return ac_cli_fail("export-onnx", err.msg);
    int rc = write_file_atomically(output, buf, len, &err);
    free(buf);
    if (rc)
        return ac_cli_fail("export-onnx", err.msg);
    /* Read it back: what the ONNX importer makes of it is what tpu-mlir's user gets. */
    ac_model_options back = {.input_shapes = shapes};
    ac_graph *g = ac_model_load(output, &back, NULL, &err);
    if (!g)
        return ac_cli_fail("export-onnx", err.msg);
    printf("%s: %s as ONNX, %zu bytes, %d nodes, %d inputs, %d outputs\n", output,
           ac_model_format_name(ac_model_detect(model)), len, g->nnodes, g->ninputs, g->noutputs);
    ac_graph_destroy(&g);
    return 0;
}
