/* autocalib worker: a farm worker (worker/ac_worker.h, docs/worker.md) serving
 * a broker until SIGINT/SIGTERM. */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "ac_args.h"
#include "ac_cli.h"
#include "ac_worker.h"

int ac_cmd_worker(int argc, char **argv)
{
    const char *connect = NULL, *name = NULL, *cache_dir = NULL, *curve_key = NULL, *server_key = NULL;
    int threads = 0, cache_mb = 4096, heartbeat_ms = 1000, liveness = 3;
    bool verbose = false;
    const ac_arg_spec specs[] = {
        {"connect", NULL, AC_ARG_STRING, &connect, "the broker endpoint, e.g. tcp://host:5555 (required)"},
        {"threads", NULL, AC_ARG_INT, &threads, "kernel threads (0 = all cores)"},
        {"name", NULL, AC_ARG_STRING, &name, "the name the broker shows (default host-pid-id)"},
        {"cache-dir", NULL, AC_ARG_STRING, &cache_dir, "where models and datasets are kept (default: a temporary folder)"},
        {"cache-mb", NULL, AC_ARG_INT, &cache_mb, "bound of the cache folder in MiB (4096; 0 = none)"},
        {"curve-key", NULL, AC_ARG_STRING, &curve_key, "CURVE: this worker's secret certificate file"},
        {"server-key", NULL, AC_ARG_STRING, &server_key, "CURVE: the broker's public certificate file"},
        {"heartbeat-ms", NULL, AC_ARG_INT, &heartbeat_ms, "heartbeat interval (1000)"},
        {"liveness", NULL, AC_ARG_INT, &liveness, "silent heartbeats before reconnecting (3)"},
        {"verbose", NULL, AC_ARG_FLAG, &verbose, "log tasks, blobs and reconnects to stderr"},
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    bool help = false;
    int npos = 0;
    ac_err err = {0};
    if (ac_args_parse(argc, argv, 2, specs, nspecs, NULL, 0, &npos, &help, &err)) {
        fprintf(stderr, "autocalib worker: %s\n", err.msg);
        return 2;
    }
    const char *usage = "usage: autocalib worker --connect EP [--threads N --cache-dir D --cache-mb N "
                        "--curve-key F --server-key F --heartbeat-ms N]";
    if (help) {
        ac_args_print_help(usage, specs, nspecs);
        return 0;
    }
    if (!connect) {
        fprintf(stderr, "autocalib worker: --connect is required\n%s\n", usage);
        return 2;
    }
    if (threads < 0 || cache_mb < 0 || heartbeat_ms < 10 || liveness < 1) {
        fprintf(stderr, "autocalib worker: --threads and --cache-mb must be >= 0, --heartbeat-ms >= 10, "
                        "--liveness >= 1\n");
        return 2;
    }
    ac_worker_config cfg;
    ac_worker_config_defaults(&cfg);
    cfg.endpoint = connect;
    cfg.name = name;
    cfg.threads = threads;
    cfg.cache_dir = cache_dir;
    cfg.cache_bytes = (uint64_t)cache_mb << 20;
    cfg.cert_path = curve_key;
    cfg.server_pub_path = server_key;
    cfg.heartbeat_ms = heartbeat_ms;
    cfg.liveness = liveness;
    cfg.verbose = verbose;
    ac_worker *w = ac_worker_new(&cfg, &err);
    if (!w)
        return ac_cli_fail("worker", err.msg);
    int rc = ac_worker_run(w, NULL);
    ac_worker_destroy(&w);
    return rc ? 1 : 0;
}
