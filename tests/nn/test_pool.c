/* The worker pool: every worker runs every job exactly once, in order, for many jobs
 * and across the blocking hand-offs;
 * work claiming hands out every chunk exactly once, a worker's own range first, in order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "pool.h"

typedef struct job { uint32_t ran[NN_MAX_THREADS]; uint32_t seq; uint32_t bad; } job;

static void work(void *arg, uint32_t w, uint32_t nw)
{
    job *j = arg;
    if (w >= nw || j->ran[w] != j->seq)      /* each worker sees every job, in order */
        j->bad++;
    j->ran[w]++;
}

static void sleep_ms(long ms)
{
    struct timespec t = { 0, ms * 1000000L };
    nanosleep(&t, NULL);
}

/* count jobs of fn on a pool of n, gap_ms apart; each worker ran each once, in order. */
static void run_jobs(uint32_t n, uint32_t count, nn_pool_fn fn, long gap_ms)
{
    static nn_pool p;
    memset(&p, 0, sizeof p);
    assert_int_equal(nn_pool_start(&p, n), NN_OK);
    job j;
    memset(&j, 0, sizeof j);
    for (j.seq = 0; j.seq < count; j.seq++) {
        if (gap_ms)
            sleep_ms(gap_ms);
        nn_pool_run(&p, fn, &j);
    }
    nn_pool_stop(&p);
    for (uint32_t w = 0; w < n; w++)
        assert_int_equal(j.ran[w], count);
    assert_int_equal(j.bad, 0);
}

static void every_worker_runs_every_job(void **st)
{
    (void)st;
    for (uint32_t n = 1; n <= 4; n++)
        run_jobs(n, 20000, work, 0);
    nn_pool p;
    memset(&p, 0, sizeof p);
    assert_int_equal(nn_pool_start(&p, 0), NN_E_ARG);
    assert_int_equal(nn_pool_start(&p, NN_MAX_THREADS + 1), NN_E_ARG);
}

/* Odd jobs: the last worker runs 2 ms late, so the caller outwaits its spin budget and
 * blocks until that worker wakes it. */
static void late_work(void *arg, uint32_t w, uint32_t nw)
{
    job *j = arg;
    if (j->seq % 2 && w == nw - 1)
        sleep_ms(2);
    work(arg, w, nw);
}

/* The blocking hand-offs, both ways: 2 ms between jobs (far past the 40 us spin) puts
 * the workers to sleep on the condition variable before every job, and late_work makes
 * the caller sleep on every other one. Each worker still runs each job once, in order. */
static void waiters_block_and_wake(void **st)
{
    (void)st;
    for (uint32_t n = 2; n <= 4; n++)
        run_jobs(n, 40, late_work, 2);
}

/* One thread: worker 0 takes its own range front to back, then the others' back to
 * front, worker 1's first; the others then find nothing. */
static void claims_own_range_then_steal(void **st)
{
    (void)st;
    static nn_claim_slot slots[3];
    nn_claims_init(slots, 3, 10);             /* ranges [0,3) [3,6) [6,10) */
    const uint32_t want[] = { 0, 1, 2, 5, 4, 3, 9, 8, 7, 6 };
    uint32_t k;
    for (uint32_t i = 0; i < 10; i++) {
        assert_true(nn_claim(slots, 3, 0, &k));
        assert_int_equal(k, want[i]);
    }
    for (uint32_t w = 0; w < 3; w++)
        assert_false(nn_claim(slots, 3, w, &k));
    nn_claims_init(slots, 3, 0);
    assert_false(nn_claim(slots, 3, 1, &k));
    nn_claims_init(slots, 1, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_true(nn_claim(slots, 1, 0, &k));
        assert_int_equal(k, i);
    }
    assert_false(nn_claim(slots, 1, 0, &k));
}

typedef struct claim_job {
    nn_claim_slot *slots;
    uint32_t       n_chunks, slow;            /* worker `slow` starts late: the others steal */
    atomic_uint    taken[1000];
    atomic_uint    per_worker[NN_MAX_THREADS];
} claim_job;

static void claim_work(void *arg, uint32_t w, uint32_t nw)
{
    claim_job *j = arg;
    uint32_t k;
    if (w == j->slow)
        for (volatile uint32_t i = 0; i < 200000; i++)
            ;
    while (nn_claim(j->slots, nw, w, &k)) {
        atomic_fetch_add(&j->taken[k], 1);
        atomic_fetch_add(&j->per_worker[w], 1);
    }
}

/* Several threads at once, one of them late: every chunk is claimed exactly once. */
static void claims_every_chunk_once(void **st)
{
    (void)st;
    static nn_pool p;
    static nn_claim_slot slots[4];
    static claim_job j;
    const uint32_t sizes[] = { 0, 1, 2, 3, 7, 64, 1000 };
    for (uint32_t n = 1; n <= 4; n++) {
        memset(&p, 0, sizeof p);
        assert_int_equal(nn_pool_start(&p, n), NN_OK);
        for (uint32_t rep = 0; rep < 50; rep++)
            for (uint32_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
                memset(&j, 0, sizeof j);
                j.slots = slots;
                j.n_chunks = sizes[z];
                j.slow = rep % n;
                nn_claims_init(slots, n, j.n_chunks);
                nn_pool_run(&p, claim_work, &j);
                uint32_t sum = 0;
                for (uint32_t k = 0; k < 1000; k++)
                    assert_int_equal(atomic_load(&j.taken[k]), k < j.n_chunks);
                for (uint32_t w = 0; w < n; w++)
                    sum += atomic_load(&j.per_worker[w]);
                assert_int_equal(sum, j.n_chunks);
            }
        nn_pool_stop(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(every_worker_runs_every_job),
                                        cmocka_unit_test(waiters_block_and_wake),
                                        cmocka_unit_test(claims_own_range_then_steal),
                                        cmocka_unit_test(claims_every_chunk_once) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
