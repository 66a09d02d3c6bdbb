/* Sub-commands of the `autocalib` executable. Each returns the process exit
 * status: 0 success, 1 a run-time error (message printed), 2 a usage error. */
#ifndef AC_CLI_H
#define AC_CLI_H

int ac_cmd_info(int argc, char **argv);
int ac_cmd_run(int argc, char **argv);
int ac_cmd_quantize(int argc, char **argv);
int ac_cmd_demo(int argc, char **argv);
int ac_cmd_dataset(int argc, char **argv);
int ac_cmd_worker(int argc, char **argv);
int ac_cmd_broker(int argc, char **argv);
int ac_cmd_status(int argc, char **argv);
int ac_cmd_certs(int argc, char **argv);

/* Prints "autocalib <cmd>: <message>" to stderr and returns 1. */
int ac_cli_fail(const char *cmd, const char *msg);

#endif
