/* autocalib broker: the farm's broker (broker/ac_broker.h, docs/protocol.md)
 * serving workers and coordinators until SIGINT/SIGTERM. */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "ac_args.h"
#include "ac_broker.h"
#include "ac_cli.h"

int ac_cmd_broker(int argc, char **argv)
{
    ac_broker_config cfg;
    ac_broker_config_defaults(&cfg);
    const char *bind = NULL, *curve_dir = NULL, *curve_key = NULL;
    int heartbeat_ms = cfg.heartbeat_ms, liveness = cfg.liveness, max_attempts = cfg.max_attempts;
    int blob_mb = (int)(cfg.blob_bytes_per_job >> 20), max_queued = (int)cfg.max_queued_per_job;
    int max_rate = (int)cfg.max_msgs_per_s;
    bool quiet = false;
    const ac_arg_spec specs[] = {
        {"bind", NULL, AC_ARG_STRING, &bind, "endpoint to bind, e.g. tcp://*:5555 (required)"},
        {"curve-dir", NULL, AC_ARG_STRING, &curve_dir,
         "CURVE: folder of admitted public keys (NAME.pub); adding/removing a file admits/revokes"},
        {"curve-key", "cert", AC_ARG_STRING, &curve_key, "CURVE: the broker's secret certificate file"},
        {"heartbeat-ms", NULL, AC_ARG_INT, &heartbeat_ms, "heartbeat interval (1000)"},
        {"liveness", NULL, AC_ARG_INT, &liveness, "missed heartbeats before a peer is dropped (3)"},
        {"max-attempts", NULL, AC_ARG_INT, &max_attempts, "dispatches of a task before it fails (3)"},
        {"blob-mb", NULL, AC_ARG_INT, &blob_mb, "blob store bound per job in MiB (4096)"},
        {"max-queued", NULL, AC_ARG_INT, &max_queued, "queued + in-flight tasks per job (1000000)"},
        {"max-rate", NULL, AC_ARG_INT, &max_rate, "messages per second per peer, 0 = unlimited (20000)"},
        {"quiet", NULL, AC_ARG_FLAG, &quiet, "do not log peers and faults to stderr"},
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    bool help = false;
    int npos = 0;
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, &npos, &help, &err)) {
        fprintf(stderr, "autocalib broker: %s\n", err.msg);
        return 2;
    }
    const char *usage = "usage: autocalib broker --bind EP [--curve-dir DIR --curve-key BROKER.key] "
                        "[--heartbeat-ms N --liveness N]";
    if (help) {
        ac_args_print_help(usage, specs, nspecs);
        return 0;
    }
    if (!bind) {
        fprintf(stderr, "autocalib broker: --bind is required\n%s\n", usage);
        return 2;
    }
    if (heartbeat_ms < 10 || liveness < 1 || max_attempts < 1 || blob_mb < 0 || max_queued < 1 ||
        max_rate < 0) {
        fprintf(stderr, "autocalib broker: --heartbeat-ms must be >= 10, --liveness, --max-attempts and "
                        "--max-queued >= 1, --blob-mb and --max-rate >= 0\n");
        return 2;
    }
    if ((curve_dir == NULL) != (curve_key == NULL)) {
        fprintf(stderr, "autocalib broker: --curve-dir and --curve-key go together "
                        "(make keys with `autocalib certs new NAME`)\n");
        return 2;
    }
    cfg.endpoint = bind;
    cfg.curve_dir = curve_dir;
    cfg.cert_path = curve_key;
    cfg.heartbeat_ms = heartbeat_ms;
    cfg.liveness = liveness;
    cfg.max_attempts = max_attempts;
    cfg.blob_bytes_per_job = (uint64_t)blob_mb << 20;
    cfg.max_queued_per_job = (uint32_t)max_queued;
    cfg.max_msgs_per_s = (uint32_t)max_rate;
    cfg.verbose = !quiet;
    ac_broker *b = ac_broker_new(&cfg, &err);
    if (!b)
        return ac_cli_fail("broker", err.msg);
    if (!quiet)
        fprintf(stderr, "autocalib broker: serving %s (Ctrl-C to stop)\n", ac_broker_endpoint(b));
    int rc = ac_broker_run(b, NULL);
    ac_broker_destroy(&b);
    return rc ? 1 : 0;
}
