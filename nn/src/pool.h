/*
 * Private: a static pool of worker threads, created at session init. A job is a
 * function run once per worker (the caller is worker 0); nn_pool_run returns when all
 * have finished. Waiting threads spin for a bounded time before they block, because a
 * decode step issues hundreds of small jobs and a condition-variable wake-up per job
 * would dominate; blocking (never yielding in a loop) keeps an oversubscribed pool,
 * or one under emulation, making progress.
 */
#ifndef NN_POOL_H
#define NN_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "nn_base.h"

#define NN_MAX_THREADS 64

typedef void (*nn_pool_fn)(void *ctx, uint32_t worker, uint32_t n_workers);

struct nn_pool;
typedef struct nn_pool_worker {
    struct nn_pool *p;
    uint32_t        id;
} nn_pool_worker;

typedef struct nn_pool {
    uint32_t        n;                   /* workers, including the caller */
    uint32_t        started;             /* threads actually created */
    pthread_t       th[NN_MAX_THREADS];
    nn_pool_worker  arg[NN_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t  wake;                /* workers: a new job or stop */
    pthread_cond_t  done;                /* caller: the last worker finished */
    atomic_uint     gen;                 /* job generation; bumps start a job */
    atomic_uint     pending;             /* workers still running the current job */
    atomic_int      caller_asleep;       /* the caller blocks on done */
    atomic_int      stop;
    nn_pool_fn      fn;
    void           *ctx;
} nn_pool;

/* Starts n-1 threads (n <= NN_MAX_THREADS). Returns NN_OK or NN_E_THREAD. */
nn_status nn_pool_start(nn_pool *p, uint32_t n);
void nn_pool_stop(nn_pool *p);
void nn_pool_run(nn_pool *p, nn_pool_fn fn, void *ctx);

/* [*lo, *hi): worker w's share of n items split evenly over nw workers. */
static inline void nn_split(uint32_t n, uint32_t w, uint32_t nw, uint32_t *lo, uint32_t *hi)
{
    *lo = (uint32_t)((uint64_t)n * w / nw);
    *hi = (uint32_t)((uint64_t)n * (w + 1) / nw);
}

#endif
