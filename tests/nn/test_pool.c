/* The worker pool: every worker runs every job exactly once, in order, for many jobs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
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

static void every_worker_runs_every_job(void **st)
{
    (void)st;
    static nn_pool p;
    for (uint32_t n = 1; n <= 4; n++) {
        memset(&p, 0, sizeof p);
        assert_int_equal(nn_pool_start(&p, n), NN_OK);
        job j;
        memset(&j, 0, sizeof j);
        for (j.seq = 0; j.seq < 20000; j.seq++)
            nn_pool_run(&p, work, &j);
        nn_pool_stop(&p);
        for (uint32_t w = 0; w < n; w++)
            assert_int_equal(j.ran[w], 20000);
        assert_int_equal(j.bad, 0);
    }
    assert_int_equal(nn_pool_start(&p, 0), NN_E_ARG);
    assert_int_equal(nn_pool_start(&p, NN_MAX_THREADS + 1), NN_E_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(every_worker_runs_every_job) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
