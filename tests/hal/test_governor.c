/* The thermal governor fed by a scripted temperature trace through the sim thermal
 * backend: each step writes the zone's temp file, reads it back through hal, and
 * feeds the governor. The transitions it reports are checked one by one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hal.h"
#include "hal_test.h"

#define MAX_EVENTS 64

struct log {
    unsigned n;
    struct hal_governor_event ev[MAX_EVENTS];
};

static void record(void *arg, const struct hal_governor_event *e)
{
    struct log *log = arg;
    assert_true(log->n < MAX_EVENTS);
    log->ev[log->n++] = *e;
}

/* Pi 4 limits: soft 70 C, hard 80 C, 5 C hysteresis; 4 threads down to 1, a step
 * every 5 s at most. */
static const struct hal_governor_config pi4 = {
    .soft_mc = 70000, .hard_mc = 80000, .hyst_mc = 5000,
    .max_threads = 4, .min_threads = 1, .step_ms = 5000,
};

struct step {
    uint64_t t_ms;
    const char *temp;        /* file contents; NULL: remove the file */
};

struct want {
    uint64_t t_ms;
    enum hal_governor_state from, to;
    unsigned threads_from, threads_to;
    int32_t temp_mc;
    bool temp_valid;
};

static void run_trace(const struct hal_governor_config *cfg, const struct step *steps,
                      size_t nsteps, const struct want *want, size_t nwant)
{
    char root[256], path[512];
    struct hal_thermal th;
    struct hal_governor g;
    struct log log = { 0 };
    assert_non_null(scratch_root(root, sizeof root));
    snprintf(path, sizeof path, "%s/sys/class/thermal/thermal_zone0/temp", root);
    assert_int_equal(hal_thermal_open(&th, &hal_thermal_sim_ops, root, 0), HAL_OK);
    assert_int_equal(hal_governor_init(&g, cfg, record, &log), HAL_OK);

    for (size_t i = 0; i < nsteps; i++) {
        if (steps[i].temp != NULL)
            assert_int_equal(put_file(root, "sys/class/thermal/thermal_zone0/temp",
                                      steps[i].temp), 0);
        else
            remove(path);
        int32_t mc;
        if (hal_thermal_read(&th, &mc) == HAL_OK)
            assert_int_equal(hal_governor_update(&g, mc, steps[i].t_ms), HAL_OK);
        else
            assert_int_equal(hal_governor_sensor_lost(&g, steps[i].t_ms), HAL_OK);
    }
    for (size_t i = 0; i < nwant && i < log.n; i++) {
        const struct hal_governor_event *e = &log.ev[i];
        print_message("event %zu: t=%llu %s->%s threads %u->%u temp %d\n", i,
                      (unsigned long long)e->at_ms, hal_governor_state_name(e->old_state),
                      hal_governor_state_name(e->new_state), e->old_threads,
                      e->new_threads, e->temp_mc);
        assert_int_equal(e->at_ms, want[i].t_ms);
        assert_int_equal(e->old_state, want[i].from);
        assert_int_equal(e->new_state, want[i].to);
        assert_int_equal(e->old_threads, want[i].threads_from);
        assert_int_equal(e->new_threads, want[i].threads_to);
        assert_int_equal(e->temp_valid, want[i].temp_valid);
        assert_int_equal(e->temp_mc, want[i].temp_mc);
    }
    assert_int_equal(log.n, nwant);
    assert_int_equal(g.transitions, nwant);
    rm_tree(root);
}

#define N HAL_GOVERNOR_NORMAL
#define T HAL_GOVERNOR_THROTTLED
#define P HAL_GOVERNOR_PAUSED
#define S HAL_GOVERNOR_NO_SENSOR

/* A Pi under a sustained load in a warm case: it heats past soft, sheds threads one
 * step per 5 s, still climbs past hard and pauses, cools, resumes at one thread, and
 * climbs back to four once well below soft. */
static void heat_pause_cool_resume(void **state)
{
    (void)state;
    static const struct step steps[] = {
        { 0, "65000\n" },      /* normal */
        { 1000, "69999\n" },   /* just below soft: nothing */
        { 2000, "70000\n" },   /* soft reached: 4 -> 3 at once */
        { 3000, "72000\n" },   /* too soon for another step */
        { 7000, "73000\n" },   /* 5 s later: 3 -> 2 */
        { 12000, "76000\n" },  /* 2 -> 1 */
        { 17000, "78000\n" },  /* at min: hold */
        { 18000, "80000\n" },  /* hard: pause */
        { 19000, "82000\n" },  /* still paused: no event */
        { 20000, "76000\n" },  /* below hard, not below hard - hyst: stay paused */
        { 21000, "74999\n" },  /* < 75 C: resume at min_threads (1) */
        { 22000, "68000\n" },  /* in the band below soft: hold */
        { 30000, "64999\n" },  /* < 65 C and 9 s since the last step: 1 -> 2 */
        { 31000, "60000\n" },  /* too soon */
        { 35000, "60000\n" },  /* 2 -> 3 */
        { 40000, "55000\n" },  /* 3 -> 4: normal */
        { 45000, "55000\n" },  /* nothing */
    };
    static const struct want want[] = {
        { 2000, N, T, 4, 3, 70000, true },
        { 7000, T, T, 3, 2, 73000, true },
        { 12000, T, T, 2, 1, 76000, true },
        { 18000, T, P, 1, 1, 80000, true },
        { 21000, P, T, 1, 1, 74999, true },
        { 30000, T, T, 1, 2, 64999, true },
        { 35000, T, T, 2, 3, 60000, true },
        { 40000, T, N, 3, 4, 55000, true },
    };
    run_trace(&pi4, steps, sizeof steps / sizeof steps[0], want, sizeof want / sizeof want[0]);
}

/* A sudden spike straight past hard from normal pauses without stepping, and resuming
 * from a pause starts at min_threads even though the threads were never lowered. */
static void spike_pauses_at_once(void **state)
{
    (void)state;
    static const struct step steps[] = {
        { 0, "50000\n" },
        { 100, "85000\n" },
        { 200, "70000\n" },    /* < 75: resume, at one thread; above soft: no step down */
        { 5200, "70000\n" },   /* at min already */
        { 5300, "50000\n" },   /* cool: step up, 5.1 s after the resume */
    };
    static const struct want want[] = {
        { 100, N, P, 4, 4, 85000, true },
        { 200, P, T, 4, 1, 70000, true },
        { 5300, T, T, 1, 2, 50000, true },
    };
    run_trace(&pi4, steps, sizeof steps / sizeof steps[0], want, sizeof want / sizeof want[0]);
}

/* The temp file disappears (driver unbound), then comes back malformed, then right. */
static void lost_sensor_serves_at_minimum(void **state)
{
    (void)state;
    static const struct step steps[] = {
        { 0, "50000\n" },
        { 1000, NULL },          /* missing: no-sensor, 1 thread */
        { 2000, NULL },          /* still missing: no new event */
        { 3000, "garbage\n" },   /* malformed is no better */
        { 4000, "50000\n" },     /* back: one thread, throttled; too soon to step */
        { 6000, "50000\n" },     /* 5 s after the loss: 1 -> 2 */
    };
    static const struct want want[] = {
        { 1000, N, S, 4, 1, 0, false },
        { 4000, S, T, 1, 1, 50000, true },
        { 6000, T, T, 1, 2, 50000, true },
    };
    run_trace(&pi4, steps, sizeof steps / sizeof steps[0], want, sizeof want / sizeof want[0]);
}

/* Oscillating around soft inside the hysteresis band does not flap. */
static void hysteresis_prevents_flapping(void **state)
{
    (void)state;
    struct step steps[40];
    for (unsigned i = 0; i < 40; i++)
        steps[i] = (struct step){ (uint64_t)i * 6000, i % 2 ? "71000\n" : "66000\n" };
    /* Above soft every other sample: steps down every 12 s until min; 66 C never
     * counts as cool (needs < 65 C), so no step up ever. */
    static const struct want want[] = {
        { 6000, N, T, 4, 3, 71000, true },
        { 18000, T, T, 3, 2, 71000, true },
        { 30000, T, T, 2, 1, 71000, true },
    };
    run_trace(&pi4, steps, 40, want, sizeof want / sizeof want[0]);
}

static void config_and_input_checks(void **state)
{
    (void)state;
    struct hal_governor g;
    struct hal_governor_config c = pi4;
    c.soft_mc = c.hard_mc;
    assert_int_equal(hal_governor_init(&g, &c, NULL, NULL), HAL_EINVAL);
    c = pi4;
    c.hyst_mc = 11000;     /* more than hard - soft */
    assert_int_equal(hal_governor_init(&g, &c, NULL, NULL), HAL_EINVAL);
    c = pi4;
    c.min_threads = 0;
    assert_int_equal(hal_governor_init(&g, &c, NULL, NULL), HAL_EINVAL);
    c = pi4;
    c.min_threads = 5;
    assert_int_equal(hal_governor_init(&g, &c, NULL, NULL), HAL_EINVAL);
    assert_int_equal(hal_governor_init(&g, &pi4, NULL, NULL), HAL_OK);   /* no callback */
    assert_int_equal(hal_governor_update(&g, 90000, 10), HAL_OK);
    assert_true(hal_governor_paused(&g));
    assert_int_equal(hal_governor_get_state(&g), HAL_GOVERNOR_PAUSED);
    assert_int_equal(hal_governor_update(&g, 50000, 5), HAL_EINVAL);       /* time backwards */
    assert_int_equal(hal_governor_update(&g, -256000, 20), HAL_ERANGE);   /* not a reading */
    assert_int_equal(hal_governor_get_state(&g), HAL_GOVERNOR_PAUSED);
    assert_int_equal(hal_governor_update(&g, 50000, 30), HAL_OK);
    assert_false(hal_governor_paused(&g));
    assert_int_equal(hal_governor_threads(&g), 1);
    assert_string_equal(hal_governor_state_name(HAL_GOVERNOR_NO_SENSOR), "no-sensor");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(heat_pause_cool_resume),
        cmocka_unit_test(spike_pauses_at_once),
        cmocka_unit_test(lost_sensor_serves_at_minimum),
        cmocka_unit_test(hysteresis_prevents_flapping),
        cmocka_unit_test(config_and_input_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
