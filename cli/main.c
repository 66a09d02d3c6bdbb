/* autocalib: one executable, sub-commands as thin mains over the libraries. */
#include <stdio.h>
#include <string.h>

#include "ac_cli.h"

#define AC_VERSION "0.1.0"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} subcommand;

static const subcommand commands[] = {
    {"info", ac_cmd_info, "inputs/outputs, op histogram, parameters and per-layer MACs of a model"},
    {"quantize", ac_cmd_quantize, "calibrate, quantize for BM1684, score fp32 vs int8, write the artefacts"},
    {"run", ac_cmd_run, "fp32 inference of a model on .npy inputs, outputs as .npy"},
    {"export-pytorch", ac_cmd_export_pytorch, "a PyTorch model (TorchScript .pt or module.py:Class) as ONNX"},
    {"export-onnx", ac_cmd_export_onnx, "any model autocalib reads as ONNX, named as in its tables (for tpu-mlir)"},
    {"demo", ac_cmd_demo, "the bundled example end to end (Fashion-MNIST models and data)"},
    {"dataset", ac_cmd_dataset, "import image folders/lists/idx files into LMDB; describe a dataset"},
    {"worker", ac_cmd_worker, "serve a farm broker: run calibration and evaluation tasks"},
    {"broker", ac_cmd_broker, "route a farm's tasks between coordinators and workers"},
    {"status", ac_cmd_status, "a broker's workers, queues, in-flight tasks and per-job progress"},
    {"certs", ac_cmd_certs, "make a CURVE key pair for a farm peer (certs new NAME)"},
};

int ac_cli_fail(const char *cmd, const char *msg)
{
    fprintf(stderr, "autocalib %s: %s\n", cmd, msg);
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out, "autocalib %s: quantize fp32 networks to BM1684 int8 within an accuracy budget\n\n"
                 "usage: autocalib <command> [options]   (autocalib <command> --help for details)\n\n"
                 "commands:\n", AC_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("autocalib %s\n", AC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc, argv);
    fprintf(stderr, "autocalib: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
