/* ac_farm_job: a quantization job on the farm. The coordinator keeps the
 * model and the data, uploads them once as blobs, computes the calibration
 * statistics on the workers (shards -> partial statistics -> exact merge in
 * shard order), then runs the strategy search (coordinator/ac_search.h):
 * every candidate becomes one evaluation task per test shard, the partial
 * scores come back and are merged in shard order, so the chosen plan and
 * every score are the same for any number of workers and after requeues.
 * The artefacts are those of a single job (coordinator/ac_outputs.h), with
 * the search's candidates, rounds and evaluations in report.json.
 *
 * A journal in --output_dir (journal.acj: the calibration tables and every
 * evaluated candidate's score) lets --resume continue after the coordinator
 * was killed: evaluations already journaled are not submitted again. */
#ifndef AC_FARM_JOB_H
#define AC_FARM_JOB_H

#include <stdbool.h>

#include "ac_farm_client.h"
#include "ac_quantize.h"

typedef struct {
    ac_quantize_options q;      /* model, data, base strategy, budget, output_dir, ... */
    bool auto_calib;            /* auto mode after fast mode misses the budget */
    bool baseline_first;        /* plain int8 in full before the screen (always in remote test mode) */
    bool calib_debug;           /* log every search step */
    double max_search_seconds;  /* 0: no limit; then the best plan found so far */
    bool resume;                /* continue from the journal in output_dir */
    int workers;                /* the farm's size: split points per bisection round */
    int shard_batches;          /* batches per shard (0: 8); fixed, so results do not depend on the farm */
    int subset_samples;         /* sensitivity subset: the first N test samples (0: min(test, 256)) */
    const char *data_path_hint; /* set data_path in tasks (workers sharing this file system read it directly) */
    bool local_data;            /* workers share this machine's file system (the embedded cluster) */
    /* Remote test mode (docs/remote.md): a client streams the test data and
     * reports each candidate's score; no test data here. */
    const char *remote_listen;     /* the endpoint to listen on; NULL: built-in scores */
    const char *remote_curve_dir;  /* CURVE: the admitted clients' public certificates */
    const char *remote_curve_cert; /* CURVE: this server's certificate */
    double remote_linger;          /* seconds to serve the result after the search (0: 30) */
} ac_farm_job_options;

void ac_farm_job_options_init(ac_farm_job_options *o);

int ac_farm_job_run(const ac_farm_job_options *o, ac_farm_client *client, ac_quantize_result *res, ac_err *err);

#endif
