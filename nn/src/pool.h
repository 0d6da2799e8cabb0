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

/*
 * Work claiming for a job of n_chunks equal chunks: worker w owns a contiguous range of
 * them and takes its chunks in order from the front, so its reads stay one stream (the
 * hardware prefetcher follows it across chunks) and its claims touch only its own
 * cache line; a worker whose range is empty takes chunks from the back of another's.
 * A preempted or slowed worker then delays at most the chunk it is in. Each slot holds
 * a range as (first, end) chunk indices, changed only by compare-and-swap, so every
 * chunk is claimed exactly once.
 */
typedef struct nn_claim_slot {
    _Alignas(64) _Atomic uint64_t r;     /* first | end << 32 */
} nn_claim_slot;

/* Splits [0, n_chunks) over nw slots; done before the job starts. */
void nn_claims_init(nn_claim_slot *slots, uint32_t nw, uint32_t n_chunks);
/* Worker w's next chunk index in *chunk; 0 when every range is empty. */
int nn_claim(nn_claim_slot *slots, uint32_t nw, uint32_t w, uint32_t *chunk);

#endif
