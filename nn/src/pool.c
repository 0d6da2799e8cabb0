#include "pool.h"

#include <time.h>

/* A waiter spins this long before it blocks. Counted in time, not rounds: a round's
 * pause hint lasts 20-40 ns on x86 cores and about a cycle on the Cortex-A cores
 * (their `yield` is a no-op without SMT), where 2000 rounds were a few microseconds,
 * less than a decode step's gap between two jobs. */
#define SPIN_NS 40000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One spin round; 0 once SPIN_NS have passed since the first clock read, which comes
 * after 32 rounds, so a wait that ends at once never reads the clock. */
static int spin_on(uint64_t *deadline, uint32_t *round)
{
    cpu_relax();
    if (++*round % 32)
        return 1;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
    if (*deadline == 0)
        *deadline = ns + SPIN_NS;
    return ns < *deadline;
}

static void *worker_main(void *arg)
{
    nn_pool *p = ((nn_pool_worker *)arg)->p;
    uint32_t id = ((nn_pool_worker *)arg)->id;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        uint64_t deadline = 0;
        uint32_t round = 0;
        while ((g = atomic_load(&p->gen)) == seen && spin_on(&deadline, &round))
            ;
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        p->fn(p->ctx, id, p->n);
        /* The last worker checks for a sleeping caller under the mutex the caller
         * sleeps with, so the hand-off never depends on store->load ordering between
         * atomics (qemu's aarch64-on-x86 translation loses it, and the wake-up). */
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            if (atomic_load(&p->caller_asleep))
                pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

nn_status nn_pool_start(nn_pool *p, uint32_t n)
{
    if (n == 0 || n > NN_MAX_THREADS)
        return NN_E_ARG;
    p->n = n;
    p->started = 0;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_asleep, 0);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (uint32_t i = 1; i < n; i++) {
        p->arg[i].p = p;
        p->arg[i].id = i;
        if (pthread_create(&p->th[i], NULL, worker_main, &p->arg[i]) != 0) {
            nn_pool_stop(p);
            return NN_E_THREAD;
        }
        p->started = i;
    }
    return NN_OK;
}

void nn_pool_stop(nn_pool *p)
{
    if (!p || p->n == 0)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 1; i <= p->started; i++)
        pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    p->n = 0;
    p->started = 0;
}

void nn_pool_run(nn_pool *p, nn_pool_fn fn, void *ctx)
{
    if (p->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    uint64_t deadline = 0;
    uint32_t round = 0;
    while (atomic_load(&p->pending) != 0 && spin_on(&deadline, &round))
        ;
    if (atomic_load(&p->pending) != 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_asleep, 1);
        while (atomic_load(&p->pending) != 0)
            pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_asleep, 0);
        pthread_mutex_unlock(&p->mu);
    }
}

void nn_claims_init(nn_claim_slot *slots, uint32_t nw, uint32_t n_chunks)
{
    for (uint32_t w = 0; w < nw; w++) {
        uint64_t first = (uint64_t)n_chunks * w / nw, end = (uint64_t)n_chunks * (w + 1) / nw;
        atomic_store_explicit(&slots[w].r, first | end << 32, memory_order_relaxed);
    }
}

int nn_claim(nn_claim_slot *slots, uint32_t nw, uint32_t w, uint32_t *chunk)
{
    _Atomic uint64_t *own = &slots[w].r;
    uint64_t r = atomic_load_explicit(own, memory_order_relaxed);
    while ((uint32_t)r < (uint32_t)(r >> 32))
        if (atomic_compare_exchange_weak_explicit(own, &r, r + 1, memory_order_relaxed, memory_order_relaxed)) {
            *chunk = (uint32_t)r;
            return 1;
        }
    for (uint32_t i = 1; i < nw; i++) {
        _Atomic uint64_t *other = &slots[(w + i) % nw].r;
        r = atomic_load_explicit(other, memory_order_relaxed);
        while ((uint32_t)r < (uint32_t)(r >> 32))
            if (atomic_compare_exchange_weak_explicit(other, &r, r - ((uint64_t)1 << 32), memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *chunk = (uint32_t)(r >> 32) - 1;
                return 1;
            }
    }
    return 0;
}
