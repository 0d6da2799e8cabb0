/* Button: software debounce over level samples and kernel edge events.
 *
 * A contact bounces for a few ms when it closes or opens. We accept a new level only
 * once it has held for debounce_ms with no movement in between. Movement is either a
 * sampled level that differs from the last sample, or a kernel edge event: edges
 * catch bounces that happen between two polls, which sampling alone would miss. */
#include <string.h>

#include "hal_internal.h"

/* Edges drained per poll at most; a line that produces more is noise, and the
 * remainder waits for the next poll. */
#define MAX_EDGES_PER_POLL 64

struct hal_gpio_request hal_button_line_request(const char *chip, const char *line)
{
    return (struct hal_gpio_request){
        .chip = chip, .line = line, .consumer = "kvmesh-button",
        .dir = HAL_GPIO_INPUT, .bias = HAL_GPIO_BIAS_PULL_UP,
        .active_low = true, .edges = true,
    };
}

hal_status hal_button_init(struct hal_button *b, struct hal_gpio_line *line,
                           enum hal_button_role role, uint32_t debounce_ms, uint64_t now_ms)
{
    if (b == NULL || line == NULL || debounce_ms > 10000 ||
        (role != HAL_BUTTON_ROLE_RUN_PROMPT && role != HAL_BUTTON_ROLE_TOGGLE_MODE))
        return HAL_EINVAL;
    if (!line->requested || line->dir != HAL_GPIO_INPUT)
        return HAL_ESTATE;
    int level;
    hal_status st = hal_gpio_line_get(line, &level);
    if (st != HAL_OK)
        return st;
    /* Edges queued before now belong to the past we just sampled. */
    struct hal_gpio_edge ev;
    for (unsigned i = 0; line->edges && i < MAX_EDGES_PER_POLL; i++)
        if (hal_gpio_line_read_edge(line, &ev) != HAL_OK)
            break;
    memset(b, 0, sizeof *b);
    b->line = line;
    b->role = role;
    b->debounce_ms = debounce_ms ? debounce_ms : HAL_BUTTON_DEBOUNCE_MS_DEFAULT;
    b->stable = b->raw = level;
    b->raw_since_ms = now_ms;
    b->last_ms = now_ms;
    return HAL_OK;
}

hal_status hal_button_poll(struct hal_button *b, uint64_t now_ms, struct hal_button_event *ev)
{
    if (b == NULL || b->line == NULL || ev == NULL || now_ms < b->last_ms)
        return HAL_EINVAL;
    b->last_ms = now_ms;

    if (b->line->edges) {
        struct hal_gpio_edge e;
        for (unsigned i = 0; i < MAX_EDGES_PER_POLL; i++) {
            hal_status st = hal_gpio_line_read_edge(b->line, &e);
            if (st == HAL_EAGAIN)
                break;
            if (st != HAL_OK)
                return st;
            b->bounces++;
            b->raw_since_ms = now_ms;
        }
    }
    int level;
    hal_status st = hal_gpio_line_get(b->line, &level);
    if (st != HAL_OK)
        return st;
    if (level != b->raw) {
        if (!b->line->edges)
            b->bounces++;
        b->raw = level;
        b->raw_since_ms = now_ms;
    }
    if (b->raw == b->stable || now_ms - b->raw_since_ms < b->debounce_ms)
        return HAL_EAGAIN;

    b->stable = b->raw;
    memset(ev, 0, sizeof *ev);
    ev->role = b->role;
    ev->at_ms = now_ms;
    if (b->stable) {
        ev->kind = HAL_BUTTON_PRESS;
        b->pressed_at_ms = now_ms;
    } else {
        ev->kind = HAL_BUTTON_RELEASE;
        ev->held_ms = now_ms - b->pressed_at_ms;
    }
    return HAL_OK;
}

static const char *const role_names[] = { "run-prompt", "toggle-mode" };

hal_status hal_button_role_parse(const char *name, enum hal_button_role *role)
{
    if (name == NULL || role == NULL)
        return HAL_EINVAL;
    for (unsigned i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *role = (enum hal_button_role)i;
            return HAL_OK;
        }
    }
    return HAL_EINVAL;
}

const char *hal_button_role_name(enum hal_button_role role)
{
    return (unsigned)role < sizeof role_names / sizeof role_names[0] ? role_names[role] : "?";
}
