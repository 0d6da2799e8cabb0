/* Status LED: patterns as const data, evaluated against an injected clock. */
#include <string.h>

#include "hal_internal.h"

/* A pattern is `steady` (-1 = blinking, else the constant level), or a cycle of
 * segment durations in ms that alternate on, off, on, off... starting lit. */
struct led_pattern {
    const char *name;
    int steady;
    unsigned nseg;
    uint16_t seg_ms[4];
};

static const struct led_pattern patterns[HAL_LED_PATTERN_COUNT] = {
    [HAL_LED_OFF]     = { "off",     0,  0, { 0 } },
    [HAL_LED_IDLE]    = { "idle",    -1, 2, { 50, 1950 } },
    [HAL_LED_BUSY]    = { "busy",    -1, 2, { 100, 100 } },
    [HAL_LED_SHARING] = { "sharing", -1, 4, { 100, 100, 100, 700 } },
    [HAL_LED_ERROR]   = { "error",   1,  0, { 0 } },
    [HAL_LED_OFFLINE] = { "offline", -1, 2, { 1000, 1000 } },
};

static const struct led_pattern *pattern_of(enum hal_led_pattern p)
{
    return (unsigned)p < HAL_LED_PATTERN_COUNT ? &patterns[p] : NULL;
}

/* Segment index and ms left in it, `elapsed_ms` into a blinking pattern. */
static unsigned segment_at(const struct led_pattern *pt, uint64_t elapsed_ms, uint32_t *left)
{
    uint32_t period = 0;
    for (unsigned i = 0; i < pt->nseg; i++)
        period += pt->seg_ms[i];
    uint32_t t = (uint32_t)(elapsed_ms % period);
    unsigned i = 0;
    while (t >= pt->seg_ms[i])
        t -= pt->seg_ms[i++];
    *left = pt->seg_ms[i] - t;
    return i;
}

int hal_led_pattern_level(enum hal_led_pattern p, uint64_t elapsed_ms)
{
    const struct led_pattern *pt = pattern_of(p);
    uint32_t left;
    if (pt == NULL)
        return -1;
    if (pt->steady >= 0)
        return pt->steady;
    return segment_at(pt, elapsed_ms, &left) % 2 == 0;
}

uint32_t hal_led_pattern_next_change(enum hal_led_pattern p, uint64_t elapsed_ms)
{
    const struct led_pattern *pt = pattern_of(p);
    uint32_t left;
    if (pt == NULL || pt->steady >= 0)
        return UINT32_MAX;
    segment_at(pt, elapsed_ms, &left);
    return left;
}

const char *hal_led_pattern_name(enum hal_led_pattern p)
{
    const struct led_pattern *pt = pattern_of(p);
    return pt != NULL ? pt->name : "?";
}

struct hal_gpio_request hal_led_line_request(const char *chip, const char *line)
{
    return (struct hal_gpio_request){
        .chip = chip, .line = line, .consumer = "kvmesh-led",
        .dir = HAL_GPIO_OUTPUT, .initial = 0, .bias = HAL_GPIO_BIAS_AS_IS,
    };
}

/* Write only when the level changes: each write is a syscall on a real board. If the
 * write fails, `lit` keeps the old level so the next tick tries again. */
static hal_status led_show(struct hal_led *led, int level)
{
    if (level == led->lit)
        return HAL_OK;
    hal_status st = hal_gpio_line_set(led->line, level);
    if (st == HAL_OK)
        led->lit = level;
    return st;
}

hal_status hal_led_init(struct hal_led *led, struct hal_gpio_line *line, uint64_t now_ms)
{
    if (led == NULL || line == NULL)
        return HAL_EINVAL;
    if (!line->requested || line->dir != HAL_GPIO_OUTPUT)
        return HAL_ESTATE;
    memset(led, 0, sizeof *led);
    led->line = line;
    led->pattern = HAL_LED_OFF;
    led->start_ms = now_ms;
    led->lit = -1;
    return led_show(led, 0);
}

hal_status hal_led_tick(struct hal_led *led, uint64_t now_ms)
{
    if (led == NULL || led->line == NULL || now_ms < led->start_ms)
        return HAL_EINVAL;
    return led_show(led, hal_led_pattern_level(led->pattern, now_ms - led->start_ms));
}

hal_status hal_led_set_pattern(struct hal_led *led, enum hal_led_pattern p, uint64_t now_ms)
{
    if (led == NULL || led->line == NULL || pattern_of(p) == NULL)
        return HAL_EINVAL;
    if (p != led->pattern) {
        led->pattern = p;
        led->start_ms = now_ms;
    }
    return hal_led_tick(led, now_ms);
}
