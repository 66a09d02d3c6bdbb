#include "ac_cluster.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ac_broker.h"
#include "ac_worker.h"

#define MAX_LOCAL_WORKERS 64

struct ac_cluster {
    zactor_t *broker;
    zactor_t *workers[MAX_LOCAL_WORKERS];
    int nworkers, threads_per_worker;
    char endpoint[256];
};

ac_cluster *ac_cluster_new(const ac_cluster_config *cfg, ac_err *err)
{
    int n = cfg->workers > 0 ? cfg->workers : 1;
    if (n > MAX_LOCAL_WORKERS) {
        ac_err_set(err, AC_E_INVALID, "--workers %d: at most %d local workers", n, MAX_LOCAL_WORKERS);
        return NULL;
    }
    ac_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        ac_err_set(err, AC_E_NOMEM, "out of memory");
        return NULL;
    }
    int cores = cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    c->threads_per_worker = cores / n > 0 ? cores / n : 1;
    ac_broker_config bc;
    ac_broker_config_defaults(&bc);
    char ep[128];
    /* A unique inproc name per cluster: several may live in one process (tests). */
    static int seq;
    snprintf(ep, sizeof ep, "inproc://autocalib-%d-%d", (int)getpid(), __atomic_fetch_add(&seq, 1, __ATOMIC_SEQ_CST));
    bc.endpoint = ep;
    bc.verbose = cfg->verbose;
    if (cfg->heartbeat_ms > 0)
        bc.heartbeat_ms = cfg->heartbeat_ms;
    c->broker = ac_broker_actor_new(&bc, c->endpoint, err);
    if (!c->broker)
        goto fail;
    for (int i = 0; i < n; i++) {
        ac_worker_config wc;
        ac_worker_config_defaults(&wc);
        char name[64];
        snprintf(name, sizeof name, "local-%d", i);
        wc.endpoint = c->endpoint;
        wc.name = name;
        wc.threads = c->threads_per_worker;
        wc.cache_dir = cfg->cache_dir;
        wc.verbose = cfg->verbose;
        if (cfg->heartbeat_ms > 0)
            wc.heartbeat_ms = cfg->heartbeat_ms;
        c->workers[i] = ac_worker_actor_new(&wc, err);
        if (!c->workers[i])
            goto fail;
        c->nworkers++;
    }
    return c;
fail:
    ac_cluster_destroy(&c);
    return NULL;
}

void ac_cluster_destroy(ac_cluster **p)
{
    if (!p || !*p)
        return;
    ac_cluster *c = *p;
    /* Workers first: they say DISCONNECT to a broker that is still there. */
    for (int i = 0; i < c->nworkers; i++)
        zactor_destroy(&c->workers[i]);
    zactor_destroy(&c->broker);
    free(c);
    *p = NULL;
}

const char *ac_cluster_endpoint(const ac_cluster *c)
{
    return c->endpoint;
}

int ac_cluster_workers(const ac_cluster *c)
{
    return c->nworkers;
}

int ac_cluster_threads_per_worker(const ac_cluster *c)
{
    return c->threads_per_worker;
}
