/* Sub-commands of the `autocalib` executable. Each returns the process exit
 * status: 0 success, 1 a run-time error (message printed), 2 a usage error. */
#ifndef AC_CLI_H
#define AC_CLI_H

#include "ac_farm_job.h"

int ac_cmd_info(int argc, char **argv);
int ac_cmd_run(int argc, char **argv);
int ac_cmd_quantize(int argc, char **argv);
int ac_cmd_demo(int argc, char **argv);
int ac_cmd_dataset(int argc, char **argv);
int ac_cmd_worker(int argc, char **argv);
int ac_cmd_broker(int argc, char **argv);
int ac_cmd_status(int argc, char **argv);
int ac_cmd_certs(int argc, char **argv);
int ac_cmd_export_pytorch(int argc, char **argv);
int ac_cmd_export_onnx(int argc, char **argv);

/* The search of a quantize job on a farm: the broker at `broker`, or (NULL) an
 * embedded cluster of `workers` local workers. fo->workers and fo->local_data
 * are set for the embedded cluster. */
int ac_cli_run_search(ac_farm_job_options *fo, const char *broker, int workers, const char *curve_key,
                      const char *server_key, ac_quantize_result *res, ac_err *err);

/* Prints "autocalib <cmd>: <message>" to stderr and returns 1. */
int ac_cli_fail(const char *cmd, const char *msg);

#endif
