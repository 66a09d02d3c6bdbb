/* autocalib export-pytorch MODEL --input_data_shape S --output OUT.onnx:
 * a PyTorch model (TorchScript file or module.py:Class + --weights) as an
 * ONNX file, through python/export_pytorch.py in the user's interpreter
 * (ac_pytorch.h). `--model X.pt` elsewhere does the same on the fly; this
 * keeps the ONNX for inspection or reuse. */
#include <stdio.h>
#include <stdlib.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_model.h"
#include "ac_pytorch.h"

int ac_cmd_export_pytorch(int argc, char **argv)
{
    const char *model = NULL, *weights = NULL, *shapes = NULL, *output = NULL;
    bool help = false;
    ac_arg_spec specs[] = {
        {"model", NULL, AC_ARG_STRING, &model, "TorchScript file (.pt/.pth) or module.py:ClassName (or the first argument)"},
        {"weights", NULL, AC_ARG_STRING, &weights, "state dict for module.py:ClassName (torch.save(m.state_dict()))"},
        {"input_data_shape", NULL, AC_ARG_STRING, &shapes, "input shape(s) to export at, e.g. '(1,3,224,224)'"},
        {"output", NULL, AC_ARG_STRING, &output, "the ONNX file to write"},
    };
    const char *pos[1];
    int npos = 0;
    ac_err err = {0};
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    if (ac_args_parse(argc, argv, 2, specs, nspecs, pos, 1, &npos, &help, &err)) {
        fprintf(stderr, "autocalib export-pytorch: %s\n", err.msg);
        return 2;
    }
    if (help) {
        ac_args_print_help("usage: autocalib export-pytorch MODEL --input_data_shape S --output OUT.onnx "
                           "[--weights STATE_DICT]", specs, nspecs);
        return 0;
    }
    if (npos)
        model = pos[0];
    if (!model || !output || !shapes) {
        fprintf(stderr, "autocalib export-pytorch: MODEL, --input_data_shape and --output are required\n");
        return 2;
    }
    if (!ac_pytorch_is_model(model))
        return ac_cli_fail("export-pytorch", "MODEL must be a TorchScript file (.pt, .pth, .torchscript) "
                                             "or module.py:ClassName");
    if (ac_pytorch_export(model, weights, shapes, output, &err))
        return ac_cli_fail("export-pytorch", err.msg);
    /* Read it back: what the importer makes of it is what the user will get. */
    ac_model_options opt = {.input_shapes = shapes};
    ac_graph *g = ac_model_load(output, &opt, NULL, &err);
    if (!g)
        return ac_cli_fail("export-pytorch", err.msg);
    printf("%s: %d nodes, %d inputs, %d outputs\n", output, g->nnodes, g->ninputs, g->noutputs);
    ac_graph_destroy(&g);
    return 0;
}
