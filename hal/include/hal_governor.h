/*
 * hal_governor: thermal governor. Pure logic: it is fed temperatures and times and
 * decides how many threads the engine may use and whether new work may start.
 *
 * Rules (T = temperature in millidegrees C, each update at time now):
 *   - T >= hard                 -> PAUSED: no new work.
 *   - PAUSED and T < hard - hyst -> resume in THROTTLED with min_threads.
 *   - T >= soft                 -> one thread less, at most one step per step_ms,
 *                                  down to min_threads (first step at once).
 *   - T < soft - hyst           -> one thread more per step_ms, back up to
 *                                  max_threads, where the state becomes NORMAL.
 *   - in between                -> hold.
 *   - the sensor is lost        -> NO_SENSOR with min_threads: keep serving, slowly,
 *                                  rather than guess a temperature. A good reading
 *                                  resumes the rules above from there.
 * Every change of state or thread count is reported through the callback, once,
 * with old and new values, the temperature and the time, so firmware can publish it.
 *
 * Usage:
 *
 *     static void on_change(void *arg, const struct hal_governor_event *e) {
 *         publish(arg, hal_governor_state_name(e->new_state), e->new_threads, e->temp_mc);
 *     }
 *     struct hal_governor g;
 *     hal_governor_init(&g, &(struct hal_governor_config){ .soft_mc = 70000,
 *         .hard_mc = 80000, .hyst_mc = 5000, .max_threads = 4, .min_threads = 1,
 *         .step_ms = 5000 }, on_change, client);
 *     hal_governor_update(&g, 72000, now);      // -> THROTTLED, 4 -> 3 threads
 *     if (!hal_governor_paused(&g)) start_work(hal_governor_threads(&g));
 */
#ifndef HAL_GOVERNOR_H
#define HAL_GOVERNOR_H

#include <stdbool.h>
#include <stdint.h>

#include "hal_status.h"

enum hal_governor_state {
    HAL_GOVERNOR_NORMAL = 0,   /* max_threads, work allowed */
    HAL_GOVERNOR_THROTTLED,    /* fewer threads, work allowed */
    HAL_GOVERNOR_PAUSED,       /* at or above hard: no new work */
    HAL_GOVERNOR_NO_SENSOR,    /* no reading: min_threads, work allowed */
};

struct hal_governor_config {
    int32_t soft_mc;        /* start shedding threads here */
    int32_t hard_mc;        /* stop starting work here; must be above soft_mc */
    int32_t hyst_mc;        /* how far below a limit to come back; 0..(hard-soft) */
    unsigned max_threads;   /* >= 1 */
    unsigned min_threads;   /* 1..max_threads */
    uint32_t step_ms;       /* least time between two thread steps */
};

struct hal_governor_event {
    enum hal_governor_state old_state, new_state;
    unsigned old_threads, new_threads;
    int32_t temp_mc;        /* the reading that caused it; 0 when temp_valid is false */
    bool temp_valid;        /* false for NO_SENSOR transitions */
    uint64_t at_ms;
};

/* The event is valid until the callback returns. The callback must not call back
 * into the same governor. */
typedef void (*hal_governor_cb)(void *arg, const struct hal_governor_event *ev);

struct hal_governor {
    struct hal_governor_config cfg;
    enum hal_governor_state state;
    unsigned threads;
    bool stepped;             /* a thread step happened; last_step_ms is meaningful */
    uint64_t last_step_ms;
    uint64_t last_ms;
    hal_governor_cb cb;
    void *cb_arg;
    uint32_t transitions;     /* events reported so far */
};

/* Start in NORMAL with max_threads. cb may be NULL.
 * Returns HAL_OK or HAL_EINVAL (NULL, soft >= hard, hyst < 0 or > hard - soft,
 * min_threads 0 or above max_threads). */
hal_status hal_governor_init(struct hal_governor *g, const struct hal_governor_config *cfg,
                             hal_governor_cb cb, void *cb_arg);

/* Feed a reading. Returns HAL_OK, HAL_EINVAL (NULL, or now_ms before the previous
 * call), HAL_ERANGE (temperature outside HAL_THERMAL_MIN_MC..MAX_MC: call
 * hal_governor_sensor_lost instead). */
hal_status hal_governor_update(struct hal_governor *g, int32_t temp_mc, uint64_t now_ms);

/* The thermal read failed. Returns HAL_OK or HAL_EINVAL (as above). */
hal_status hal_governor_sensor_lost(struct hal_governor *g, uint64_t now_ms);

unsigned hal_governor_threads(const struct hal_governor *g);
bool hal_governor_paused(const struct hal_governor *g);
enum hal_governor_state hal_governor_get_state(const struct hal_governor *g);

/* "normal", "throttled", "paused", "no-sensor"; "?" for unknown. */
const char *hal_governor_state_name(enum hal_governor_state s);

#endif
