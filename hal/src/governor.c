/* Thermal governor: pure state machine over (temperature, time). See hal_governor.h
 * for the rules; the comments here say why they are shaped that way. */
#include <string.h>

#include "hal_internal.h"

hal_status hal_governor_init(struct hal_governor *g, const struct hal_governor_config *cfg,
                             hal_governor_cb cb, void *cb_arg)
{
    if (g == NULL || cfg == NULL || cfg->soft_mc >= cfg->hard_mc || cfg->hyst_mc < 0 ||
        cfg->hyst_mc > cfg->hard_mc - cfg->soft_mc || cfg->min_threads == 0 ||
        cfg->min_threads > cfg->max_threads)
        return HAL_EINVAL;
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    g->state = HAL_GOVERNOR_NORMAL;
    g->threads = cfg->max_threads;
    g->cb = cb;
    g->cb_arg = cb_arg;
    return HAL_OK;
}

/* One thread step at most per step_ms, so the temperature has time to answer the
 * previous step before we take another. The first step is immediate. */
static int may_step(const struct hal_governor *g, uint64_t now_ms)
{
    return !g->stepped || now_ms - g->last_step_ms >= g->cfg.step_ms;
}

static void mark_step(struct hal_governor *g, uint64_t now_ms)
{
    g->stepped = true;
    g->last_step_ms = now_ms;
}

static void commit(struct hal_governor *g, enum hal_governor_state st, unsigned threads,
                   int32_t temp_mc, bool temp_valid, uint64_t now_ms)
{
    if (st == g->state && threads == g->threads)
        return;
    struct hal_governor_event ev = {
        .old_state = g->state, .new_state = st,
        .old_threads = g->threads, .new_threads = threads,
        .temp_mc = temp_valid ? temp_mc : 0, .temp_valid = temp_valid, .at_ms = now_ms,
    };
    g->state = st;
    g->threads = threads;
    g->transitions++;
    if (g->cb != NULL)
        g->cb(g->cb_arg, &ev);
}

static enum hal_governor_state running_state(const struct hal_governor *g, unsigned threads)
{
    return threads < g->cfg.max_threads ? HAL_GOVERNOR_THROTTLED : HAL_GOVERNOR_NORMAL;
}

hal_status hal_governor_update(struct hal_governor *g, int32_t temp_mc, uint64_t now_ms)
{
    if (g == NULL || now_ms < g->last_ms)
        return HAL_EINVAL;
    if (temp_mc < HAL_THERMAL_MIN_MC || temp_mc > HAL_THERMAL_MAX_MC)
        return HAL_ERANGE;
    g->last_ms = now_ms;

    const struct hal_governor_config *c = &g->cfg;
    enum hal_governor_state st = g->state;
    unsigned th = g->threads;

    if (st == HAL_GOVERNOR_NO_SENSOR)   /* a reading again: carry on from min_threads */
        st = running_state(g, th);

    if (temp_mc >= c->hard_mc) {
        st = HAL_GOVERNOR_PAUSED;
    } else if (st == HAL_GOVERNOR_PAUSED) {
        /* Resume cautiously: at min_threads, and only once clearly below hard, so a
         * reading hovering at the limit does not flap between pause and work. */
        if (temp_mc < c->hard_mc - c->hyst_mc) {
            th = c->min_threads;
            mark_step(g, now_ms);
            st = running_state(g, th);
        }
    } else if (temp_mc >= c->soft_mc) {
        if (th > c->min_threads && may_step(g, now_ms)) {
            th--;
            mark_step(g, now_ms);
        }
        st = running_state(g, th);
    } else if (temp_mc < c->soft_mc - c->hyst_mc) {
        if (th < c->max_threads && may_step(g, now_ms)) {
            th++;
            mark_step(g, now_ms);
        }
        st = running_state(g, th);
    }
    /* else: inside the hysteresis band below soft, hold. */
    commit(g, st, th, temp_mc, true, now_ms);
    return HAL_OK;
}

hal_status hal_governor_sensor_lost(struct hal_governor *g, uint64_t now_ms)
{
    if (g == NULL || now_ms < g->last_ms)
        return HAL_EINVAL;
    g->last_ms = now_ms;
    /* Without a temperature we cannot know we are safe, but stopping a board because a
     * file went missing would be worse: serve at the minimum and say so. */
    if (g->state != HAL_GOVERNOR_NO_SENSOR)
        mark_step(g, now_ms);
    commit(g, HAL_GOVERNOR_NO_SENSOR, g->cfg.min_threads, 0, false, now_ms);
    return HAL_OK;
}

unsigned hal_governor_threads(const struct hal_governor *g)
{
    return g != NULL ? g->threads : 0;
}

bool hal_governor_paused(const struct hal_governor *g)
{
    return g != NULL && g->state == HAL_GOVERNOR_PAUSED;
}

enum hal_governor_state hal_governor_get_state(const struct hal_governor *g)
{
    return g != NULL ? g->state : HAL_GOVERNOR_NO_SENSOR;
}

const char *hal_governor_state_name(enum hal_governor_state s)
{
    switch (s) {
    case HAL_GOVERNOR_NORMAL:    return "normal";
    case HAL_GOVERNOR_THROTTLED: return "throttled";
    case HAL_GOVERNOR_PAUSED:    return "paused";
    case HAL_GOVERNOR_NO_SENSOR: return "no-sensor";
    }
    return "?";
}
