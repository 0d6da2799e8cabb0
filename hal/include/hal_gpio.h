/*
 * hal_gpio: GPIO lines, the status LED and the button.
 *
 * Overview
 *   A line is requested from a chip, either by offset or by the name the kernel gives
 *   it (the Pi names its header lines "GPIO17"; Jetson Orin "PR.04"). The chip is
 *   named by path ("/dev/gpiochip0"), by device name ("gpiochip0") or by label
 *   ("pinctrl-rp1"), because labels survive the renumbering that the Pi 5 went through.
 *
 *   Lines go through a backend's const ops table:
 *     hal_gpio_linux_ops  libgpiod, 1.6 or 2.x API (hal_gpio_linux_api says which was built)
 *     hal_gpio_sim_ops    lines in a struct hal_sim_gpio, driven by tests
 *
 *   Values are logical: with active_low set, 1 means "pressed" for a button that pulls
 *   the pin to ground. Both backends (and the kernel) apply active_low the same way,
 *   including to edge events.
 *
 *   The LED shows one pattern at a time (idle, busy, sharing, error, offline, off);
 *   hal_led_tick() writes the line only when the pattern says it changes. The button
 *   is debounced in software from level samples and kernel edge events; each debounced
 *   press carries the role the board gave it (run the configured prompt, or toggle
 *   the collaboration mode).
 *
 * Usage (sim backend, as the tests do):
 *
 *     static struct hal_sim_gpio sim;               // ~100 KiB: make it static
 *     hal_sim_gpio_init(&sim);
 *     hal_sim_gpio_add_chip(&sim, "gpiochip0", "pinctrl-bcm2711", 58, NULL);
 *     struct hal_gpio_line btn_line;
 *     struct hal_gpio_request r = hal_button_line_request("gpiochip0", "27");
 *     hal_gpio_line_request(&btn_line, &hal_gpio_sim_ops, &sim, &r);
 *     struct hal_button btn;
 *     hal_button_init(&btn, &btn_line, HAL_BUTTON_ROLE_RUN_PROMPT, 30, 0);
 *     hal_sim_gpio_drive(&sim, 0, 27, 0);           // pressed: pin pulled to ground
 *     hal_button_poll(&btn, 1, &ev);                // HAL_EAGAIN: not settled yet
 *     hal_button_poll(&btn, 31, &ev);               // HAL_OK, ev.kind == HAL_BUTTON_PRESS
 *
 * Ownership
 *   Line, LED and button structs are caller-owned. An LED or button borrows its line:
 *   the line must outlive it. Release a line with hal_gpio_line_release() (safe on a
 *   line that was never requested or already released).
 */
#ifndef HAL_GPIO_H
#define HAL_GPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_status.h"

/* ---- lines -------------------------------------------------------------------------- */

enum hal_gpio_dir { HAL_GPIO_INPUT = 0, HAL_GPIO_OUTPUT = 1 };

enum hal_gpio_bias {
    HAL_GPIO_BIAS_AS_IS = 0,   /* leave whatever the firmware or device tree set */
    HAL_GPIO_BIAS_DISABLED,
    HAL_GPIO_BIAS_PULL_UP,
    HAL_GPIO_BIAS_PULL_DOWN,
};

struct hal_gpio_request {
    const char *chip;       /* "/dev/gpiochipN", "gpiochipN" or a chip label; required */
    const char *line;       /* line name ("GPIO17") or decimal offset ("17"); required */
    const char *consumer;   /* shown by gpioinfo; NULL means "kvmesh" */
    enum hal_gpio_dir dir;
    int initial;            /* outputs: first logical value (0 or 1) */
    enum hal_gpio_bias bias;
    bool active_low;
    bool edges;             /* inputs: ask the kernel for rising and falling edge events */
};

enum hal_gpio_edge_type { HAL_GPIO_EDGE_RISING = 1, HAL_GPIO_EDGE_FALLING = 2 };

struct hal_gpio_edge {
    enum hal_gpio_edge_type type;   /* of the logical value */
    uint64_t ts_ns;                 /* kernel timestamp (CLOCK_MONOTONIC); sim: 0 */
};

struct hal_gpio_line;

/* A backend. Callers use the hal_gpio_line_* wrappers, which check state first. */
struct hal_gpio_ops {
    const char *name;                                   /* "linux" or "sim" */
    hal_status (*request)(struct hal_gpio_line *l, void *backend,
                          const struct hal_gpio_request *req, unsigned offset,
                          const char *name);            /* name NULL: use offset */
    void (*release)(struct hal_gpio_line *l);
    hal_status (*set)(struct hal_gpio_line *l, int value);
    hal_status (*get)(struct hal_gpio_line *l, int *value);
    hal_status (*read_edge)(struct hal_gpio_line *l, struct hal_gpio_edge *ev);
    hal_status (*get_fd)(struct hal_gpio_line *l, int *fd);
};

/* A requested line. Fields are for the backends; use the functions below. */
struct hal_gpio_line {
    const struct hal_gpio_ops *ops;
    void *backend;              /* sim: the struct hal_sim_gpio; linux: unused */
    unsigned offset;            /* resolved offset on its chip */
    enum hal_gpio_dir dir;
    bool requested;
    bool edges;
    union {
        struct { void *chip; void *line; } v1;          /* libgpiod 1.6 */
        struct { void *request; void *events; } v2;     /* libgpiod 2.x */
        struct { unsigned chip; } sim;
    } h;
};

extern const struct hal_gpio_ops hal_gpio_linux_ops;
extern const struct hal_gpio_ops hal_gpio_sim_ops;

/* The libgpiod API the linux backend was built against: 1 or 2. */
extern const int hal_gpio_linux_api;

/*
 * Request one line. `backend` is the struct hal_sim_gpio for the sim ops, NULL for
 * linux. On success the line is ready: outputs drive req->initial. `l` may be
 * uninitialized; whatever it held is overwritten, so release a live request first.
 * Returns HAL_OK; HAL_EINVAL (NULL or empty chip/line, bad offset text, initial not
 * 0/1, edges on an output); HAL_ENODEV (no such chip, or no such line on it);
 * HAL_EBUSY (line already requested); HAL_EIO (the kernel refused, e.g. no permission to
 * open a chip, also while searching chips by label).
 */
hal_status hal_gpio_line_request(struct hal_gpio_line *l, const struct hal_gpio_ops *ops,
                                 void *backend, const struct hal_gpio_request *req);

/* Give the line back. Accepts NULL, unrequested and released lines. */
void hal_gpio_line_release(struct hal_gpio_line *l);

/* Drive an output (logical value, any nonzero is 1).
 * Returns HAL_OK, HAL_ESTATE (not requested, or an input), HAL_EIO. */
hal_status hal_gpio_line_set(struct hal_gpio_line *l, int value);

/* Read the logical value (0 or 1) of an input or output.
 * Returns HAL_OK, HAL_ESTATE (not requested), HAL_EIO. */
hal_status hal_gpio_line_get(struct hal_gpio_line *l, int *value);

/* Take one pending edge event without blocking.
 * Returns HAL_OK, HAL_EAGAIN (none pending), HAL_ESTATE (not requested with edges),
 * HAL_EIO. */
hal_status hal_gpio_line_read_edge(struct hal_gpio_line *l, struct hal_gpio_edge *ev);

/* File descriptor that becomes readable when an edge is pending, for poll(2).
 * Owned by the line: do not close it. Returns HAL_OK, HAL_ESTATE (no edges),
 * HAL_ENOTSUP (sim). */
hal_status hal_gpio_line_fd(struct hal_gpio_line *l, int *fd);

/*
 * Parse a line spec: all decimal digits is an offset (*name = NULL), anything else is
 * a line name (*name = spec). Returns HAL_OK or HAL_EINVAL (NULL, empty, offset over
 * 65535).
 */
hal_status hal_gpio_parse_line(const char *spec, unsigned *offset, const char **name);

/* ---- sim backend ---------------------------------------------------------------------- */

#define HAL_SIM_GPIO_MAX_CHIPS 4
#define HAL_SIM_GPIO_MAX_LINES 256   /* Jetson Nano's tegra-gpio has 256 */
#define HAL_SIM_GPIO_NAME_MAX 24
#define HAL_SIM_GPIO_EVENTS 8        /* pending edges per line; the oldest are dropped */

struct hal_sim_gpio_line {
    char name[HAL_SIM_GPIO_NAME_MAX];
    bool requested, output, active_low, edges, driven;
    uint8_t bias;            /* enum hal_gpio_bias */
    uint8_t out_phys;        /* level an output drives */
    uint8_t ext_phys;        /* level the outside world drives, when `driven` */
    uint8_t last_phys;       /* for edge detection */
    uint8_t ev_head, ev_count;
    uint16_t ev_dropped;
    struct hal_gpio_edge ev[HAL_SIM_GPIO_EVENTS];
};

struct hal_sim_gpio_chip {
    char name[HAL_SIM_GPIO_NAME_MAX];
    char label[HAL_SIM_GPIO_NAME_MAX];
    unsigned nlines;
    struct hal_sim_gpio_line lines[HAL_SIM_GPIO_MAX_LINES];
};

struct hal_sim_gpio {
    unsigned nchips;
    struct hal_sim_gpio_chip chips[HAL_SIM_GPIO_MAX_CHIPS];
    unsigned writes;         /* output writes that reached a line, for tests */
};

/* Empty the simulator. */
void hal_sim_gpio_init(struct hal_sim_gpio *sim);

/*
 * Add a chip with `nlines` lines. `names` is NULL (unnamed lines) or an array of
 * nlines strings (NULL or "" entries stay unnamed); names are copied.
 * Returns the chip index (>= 0), or HAL_EINVAL (bad name/label/nlines),
 * HAL_ENOSPC (too many chips), HAL_ENAMETOOLONG.
 */
int hal_sim_gpio_add_chip(struct hal_sim_gpio *sim, const char *name, const char *label,
                          unsigned nlines, const char *const *names);

/* Name one line after the fact (e.g. "GPIO17"). HAL_OK, HAL_EINVAL, HAL_ENAMETOOLONG. */
hal_status hal_sim_gpio_set_name(struct hal_sim_gpio *sim, unsigned chip, unsigned offset,
                                 const char *name);

/* The outside world drives a line to a physical level (0 or 1), like a button
 * shorting it to ground. Queues an edge if the line was requested with edges and its
 * level changes. Returns HAL_OK or HAL_EINVAL. */
hal_status hal_sim_gpio_drive(struct hal_sim_gpio *sim, unsigned chip, unsigned offset,
                              int phys);

/* Stop driving: the line floats to its bias (pull-up 1, otherwise 0). */
hal_status hal_sim_gpio_release_drive(struct hal_sim_gpio *sim, unsigned chip,
                                      unsigned offset);

/* Physical level of a line as a meter would see it. HAL_OK or HAL_EINVAL. */
hal_status hal_sim_gpio_level(const struct hal_sim_gpio *sim, unsigned chip,
                              unsigned offset, int *phys);

/* ---- status LED --------------------------------------------------------------------- */

enum hal_led_pattern {
    HAL_LED_OFF = 0,     /* dark: kvmesh is not running */
    HAL_LED_IDLE,        /* 50 ms blip every 2 s: alive, waiting for work */
    HAL_LED_BUSY,        /* 100 ms on / 100 ms off: running the model */
    HAL_LED_SHARING,     /* double blink every second: exchanging with peers */
    HAL_LED_ERROR,       /* steady on */
    HAL_LED_OFFLINE,     /* 1 s on / 1 s off: broker unreachable, standalone */
    HAL_LED_PATTERN_COUNT
};

struct hal_led {
    struct hal_gpio_line *line;   /* borrowed, requested as an output */
    enum hal_led_pattern pattern;
    uint64_t start_ms;            /* when the current pattern began */
    int lit;                      /* last level written, -1 before the first write */
};

/* Line request preset for the LED: output, active high (GPIO -> resistor -> LED ->
 * ground), initially off. `chip` and `line` are borrowed by the returned struct. */
struct hal_gpio_request hal_led_line_request(const char *chip, const char *line);

/* Start the LED in HAL_LED_OFF and write the line. HAL_OK, HAL_EINVAL, HAL_ESTATE
 * (line not an output), HAL_EIO. */
hal_status hal_led_init(struct hal_led *led, struct hal_gpio_line *line, uint64_t now_ms);

/* Switch pattern. Setting the current pattern again keeps its phase, so calling this
 * every loop is fine. Writes the line if the level changes.
 * Returns HAL_OK, HAL_EINVAL (unknown pattern), HAL_EIO. */
hal_status hal_led_set_pattern(struct hal_led *led, enum hal_led_pattern p, uint64_t now_ms);

/* Bring the line up to date for `now_ms`; writes only on a change.
 * Returns HAL_OK, HAL_EINVAL (now before the pattern started), HAL_EIO. */
hal_status hal_led_tick(struct hal_led *led, uint64_t now_ms);

/* Pure: the level (0/1) pattern `p` shows `elapsed_ms` after it started, or -1 for an
 * unknown pattern. */
int hal_led_pattern_level(enum hal_led_pattern p, uint64_t elapsed_ms);

/* Milliseconds from `elapsed_ms` until pattern `p` next changes level; UINT32_MAX for
 * steady patterns (off, error) and unknown ones. Lets a loop sleep exactly. */
uint32_t hal_led_pattern_next_change(enum hal_led_pattern p, uint64_t elapsed_ms);

/* "off", "idle", "busy", "sharing", "error", "offline"; "?" for unknown. */
const char *hal_led_pattern_name(enum hal_led_pattern p);

/* ---- button --------------------------------------------------------------------------- */

enum hal_button_role {
    HAL_BUTTON_ROLE_RUN_PROMPT = 0,   /* run the configured prompt */
    HAL_BUTTON_ROLE_TOGGLE_MODE,      /* switch collaboration mode (e.g. standalone/share) */
};

enum hal_button_event_kind { HAL_BUTTON_PRESS = 1, HAL_BUTTON_RELEASE = 2 };

struct hal_button_event {
    enum hal_button_event_kind kind;
    enum hal_button_role role;
    uint64_t at_ms;        /* the poll that saw the level settle */
    uint64_t held_ms;      /* RELEASE: how long it was held; PRESS: 0 */
};

#define HAL_BUTTON_DEBOUNCE_MS_DEFAULT 30u

struct hal_button {
    struct hal_gpio_line *line;   /* borrowed, requested as an input */
    enum hal_button_role role;
    uint32_t debounce_ms;
    int stable;                   /* debounced logical level */
    int raw;                      /* last sampled level */
    uint64_t raw_since_ms;        /* when the level last moved (sample or edge) */
    uint64_t pressed_at_ms;
    uint64_t last_ms;             /* previous poll (or init) */
    uint32_t bounces;             /* level changes seen, for diagnostics */
};

/* Line request preset for the button: input, pull-up, active low (button from the pin
 * to ground reads 1 when pressed), both edges. Strings are borrowed. */
struct hal_gpio_request hal_button_line_request(const char *chip, const char *line);

/*
 * Start debouncing `line`. The current level is taken as settled, so a button held
 * at boot gives no press until it is released and pressed again. debounce_ms 0 means
 * HAL_BUTTON_DEBOUNCE_MS_DEFAULT.
 * Returns HAL_OK, HAL_EINVAL (NULL, unknown role, debounce over 10 s), HAL_ESTATE
 * (line not a requested input), HAL_EIO.
 */
hal_status hal_button_init(struct hal_button *b, struct hal_gpio_line *line,
                           enum hal_button_role role, uint32_t debounce_ms, uint64_t now_ms);

/*
 * Sample the button at `now_ms` (drain kernel edges, read the level) and report at
 * most one debounced change. A level must hold for debounce_ms with no edge in
 * between to count. Call often (every 5-10 ms, or when the line's fd is readable and
 * then again after debounce_ms).
 * Returns HAL_OK with *ev filled, HAL_EAGAIN (no change), HAL_EINVAL (now_ms went
 * backwards), HAL_EIO.
 */
hal_status hal_button_poll(struct hal_button *b, uint64_t now_ms, struct hal_button_event *ev);

/* "run-prompt" / "toggle-mode" and back. hal_button_role_parse returns HAL_OK or
 * HAL_EINVAL; hal_button_role_name returns "?" for unknown roles. */
hal_status hal_button_role_parse(const char *name, enum hal_button_role *role);
const char *hal_button_role_name(enum hal_button_role role);

#endif
