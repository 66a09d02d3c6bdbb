/* ac_cluster: the embedded default. `autocalib quantize` without --broker
 * starts a broker and local workers in this process, each in its own thread,
 * on an inproc:// endpoint, so the one-command run goes through exactly the
 * code path of a farm (protocol, broker queues, worker caches). Cores are
 * split between the workers so they do not oversubscribe the machine. */
#ifndef AC_CLUSTER_H
#define AC_CLUSTER_H

#include <stdbool.h>

#include "ac_err.h"

typedef struct {
    int workers;           /* 0: 1 */
    int threads;           /* total kernel threads (0: the machine's cores) */
    int heartbeat_ms;      /* 0: 1000 */
    const char *cache_dir; /* NULL: private temporary folders */
    bool verbose;
} ac_cluster_config;

typedef struct ac_cluster ac_cluster;

ac_cluster *ac_cluster_new(const ac_cluster_config *cfg, ac_err *err);
void ac_cluster_destroy(ac_cluster **p);

/* The endpoint coordinators connect to. */
const char *ac_cluster_endpoint(const ac_cluster *c);
int ac_cluster_workers(const ac_cluster *c);
/* Kernel threads each worker got. */
int ac_cluster_threads_per_worker(const ac_cluster *c);

#endif
