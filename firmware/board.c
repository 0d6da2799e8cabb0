/*
 * Board I/O for the service, through hal: the status LED, the button, thermal,
 * throttle and power readings, and the thermal governor. The board description
 * (hal_board()) gives the defaults; the configuration may override lines and limits.
 *
 * With backend = sim (tests, and machines without GPIO) the sensors read below
 * sysfs_root, and the GPIO lines live in memory; two files below sysfs_root connect them
 * to the outside: gpio-sim/led holds the LED's current pattern name (gpio-sim/led.log
 * every change), and the button is pressed while gpio-sim/button holds "1".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service.h"

#define SENSE_MS 1000      /* sensors and governor */
#define SIM_POLL_MS 10     /* the sim button file */

static struct hal_sim_gpio fw_sim;   /* ~100 KiB: static, not on the stack */

static int sim_chip(const fw_config *c, char *err, size_t errlen)
{
    const char *name = c->gpio_chip;
    if (strncmp(name, "/dev/", 5) == 0) name += 5;
    int chip = hal_sim_gpio_add_chip(&fw_sim, name, name, 64, NULL);
    if (chip < 0) {
        snprintf(err, errlen, "[gpio] chip '%s': %s", c->gpio_chip, hal_strerror((hal_status)chip));
        return -1;
    }
    /* Named lines get offsets 1 (LED) and 2 (button); numbered lines keep theirs. */
    unsigned off;
    const char *nm;
    if (c->led_line[0] && hal_gpio_parse_line(c->led_line, &off, &nm) == HAL_OK && nm)
        hal_sim_gpio_set_name(&fw_sim, (unsigned)chip, 1, nm);
    if (c->button_line[0] && hal_gpio_parse_line(c->button_line, &off, &nm) == HAL_OK && nm)
        hal_sim_gpio_set_name(&fw_sim, (unsigned)chip, 2, nm);
    return chip;
}

int fw_board_open(fw_svc *s, char *err, size_t errlen)
{
    const fw_config *c = &s->cfg;
    const struct hal_board *hb = hal_board();
    fw_board *b = &s->board;
    memset(b, 0, sizeof *b);
    b->sim = c->backend == FW_BACKEND_SIM;
    const char *root = b->sim ? c->sysfs_root : NULL;
    const struct hal_gpio_ops *gops = b->sim ? &hal_gpio_sim_ops : &hal_gpio_linux_ops;
    void *backend = b->sim ? &fw_sim : NULL;
    uint64_t now = fw_now_ms();
    b->shown = HAL_LED_OFF;
    b->role = c->button == FW_BUTTON_TOGGLE_MODE ? HAL_BUTTON_ROLE_TOGGLE_MODE
            : c->button == FW_BUTTON_RUN_PROMPT ? HAL_BUTTON_ROLE_RUN_PROMPT : hb->button_role;
    int chip = -1;
    if (b->sim) {
        hal_sim_gpio_init(&fw_sim);
        snprintf(b->sim_led, sizeof b->sim_led, "%s/gpio-sim/led", c->sysfs_root);
        snprintf(b->sim_button, sizeof b->sim_button, "%s/gpio-sim/button", c->sysfs_root);
        char dir[FW_PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/gpio-sim", c->sysfs_root);
        mkdir(dir, 0755);
        if (c->gpio_chip[0] && (chip = sim_chip(c, err, errlen)) < 0) return -1;
    }
    if (c->gpio_chip[0] && c->led_line[0]) {
        struct hal_gpio_request r = hal_led_line_request(c->gpio_chip, c->led_line);
        r.consumer = "kvmesh-led";
        hal_status st = hal_gpio_line_request(&b->led_line, gops, backend, &r);
        if (!st) st = hal_led_init(&b->led, &b->led_line, now);
        if (st) {
            snprintf(err, errlen, "LED on %s line %s: %s", c->gpio_chip, c->led_line, hal_strerror(st));
            return -1;
        }
        b->have_led = true;
    }
    if (c->gpio_chip[0] && c->button_line[0] && c->button != FW_BUTTON_NONE) {
        struct hal_gpio_request r = hal_button_line_request(c->gpio_chip, c->button_line);
        r.consumer = "kvmesh-button";
        hal_status st = hal_gpio_line_request(&b->btn_line, gops, backend, &r);
        if (!st) st = hal_button_init(&b->btn, &b->btn_line, b->role, 0, now);
        if (st) {
            snprintf(err, errlen, "button on %s line %s: %s", c->gpio_chip, c->button_line, hal_strerror(st));
            hal_gpio_line_release(&b->led_line);
            return -1;
        }
        b->have_btn = true;
        b->btn_chip = (unsigned)(chip < 0 ? 0 : chip);
        b->btn_offset = b->btn_line.offset;
    }
    /* Sensors: a missing one is reported as absent, never invented. */
    hal_thermal_open(&b->th, b->sim ? &hal_thermal_sim_ops : &hal_thermal_linux_ops, root, c->thermal_zone);
    hal_throttle_open(&b->thr, b->sim ? &hal_throttle_sim_ops : &hal_throttle_linux_ops, root, hb->throttle_path);
    if (hal_power_open(&b->pw, b->sim ? &hal_power_sim_ops : &hal_power_linux_ops, root, hb->power_source) == HAL_OK &&
        hal_power_rail_count(&b->pw) > 0) {
        if (!c->power_rail[0]) {
            b->rail = 0;
            b->have_rail = true;
        } else if (hal_power_find(&b->pw, c->power_rail, &b->rail) == HAL_OK) {
            b->have_rail = true;
        } else {
            snprintf(err, errlen, "[board] power_rail '%s': no such rail on this board", c->power_rail);
            return -1;
        }
    }
    /* The governor runs when the board has a thermal sensor that answers; a board
     * without one (a VM) serves at the configured thread count. */
    int32_t mc;
    b->governed = hal_thermal_read(&b->th, &mc) == HAL_OK;
    struct hal_governor_config gc = { .soft_mc = c->thermal_soft_mc, .hard_mc = c->thermal_hard_mc,
                                      .hyst_mc = c->thermal_hyst_mc, .max_threads = s->eng.so.threads,
                                      .min_threads = 1, .step_ms = c->thermal_step_ms };
    hal_status st = hal_governor_init(&b->gov, &gc, fw_governor_event, s);
    if (st) {
        snprintf(err, errlen, "thermal governor: %s", hal_strerror(st));
        return -1;
    }
    b->last_sense_ms = now - SENSE_MS;
    return 0;
}

void fw_board_close(fw_svc *s)
{
    fw_board *b = &s->board;
    if (b->have_led) {
        hal_led_set_pattern(&b->led, HAL_LED_OFF, fw_now_ms());
        if (b->sim) {
            FILE *f = fopen(b->sim_led, "w");
            if (f) { fputs("off\n", f); fclose(f); }
        }
    }
    hal_gpio_line_release(&b->led_line);
    hal_gpio_line_release(&b->btn_line);
}

static void sense(fw_svc *s, uint64_t now)
{
    fw_board *b = &s->board;
    int32_t mc;
    hal_status st = hal_thermal_read(&b->th, &mc);
    b->temp_ok = st == HAL_OK;
    if (b->temp_ok) b->temp_mc = mc;
    if (b->governed) {
        if (b->temp_ok) hal_governor_update(&b->gov, mc, now);
        else hal_governor_sensor_lost(&b->gov, now);
    }
    b->throttle_ok = hal_throttle_read(&b->thr, &b->throttle) == HAL_OK;
    b->power_ok = b->have_rail && hal_power_read(&b->pw, b->rail, &b->power) == HAL_OK;
}

const char *fw_board_state(const fw_svc *s)
{
    if (s->board.governed && hal_governor_paused(&s->board.gov)) return "paused";
    if (s->sharing || fw_share_serving(s)) return "sharing";
    if (s->busy) return "busy";
    if (s->node_ok && !mqtt_session_connected(&s->node.session)) return "offline";
    return "idle";
}

bool fw_board_tick(fw_svc *s, uint64_t now, enum hal_button_role *role)
{
    fw_board *b = &s->board;
    if (now - b->last_sense_ms >= SENSE_MS) {
        b->last_sense_ms = now;
        sense(s, now);
    }
    bool pressed = false;
    if (b->have_btn) {
        if (b->sim && now - b->last_sim_ms >= SIM_POLL_MS) {
            b->last_sim_ms = now;
            char v[4] = "";
            int fd = open(b->sim_button, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t k = read(fd, v, sizeof v - 1);
                close(fd);
                v[k > 0 ? k : 0] = '\0';
            }
            /* Active low: pressed pulls the pin to ground. */
            hal_sim_gpio_drive(&fw_sim, b->btn_chip, b->btn_offset, v[0] == '1' ? 0 : 1);
        }
        struct hal_button_event ev;
        if (hal_button_poll(&b->btn, now, &ev) == HAL_OK && ev.kind == HAL_BUTTON_PRESS) {
            pressed = true;
            *role = b->role;
        }
    }
    if (b->have_led) {
        /* Paused by the governor is "error": it needs a person (cooling). */
        const char *state = fw_board_state(s);
        enum hal_led_pattern p = !s->cfg.led ? HAL_LED_OFF
                               : !strcmp(state, "paused") ? HAL_LED_ERROR
                               : !strcmp(state, "sharing") ? HAL_LED_SHARING
                               : !strcmp(state, "busy") ? HAL_LED_BUSY
                               : !strcmp(state, "offline") ? HAL_LED_OFFLINE : HAL_LED_IDLE;
        hal_led_set_pattern(&b->led, p, now);
        hal_led_tick(&b->led, now);
        if (b->sim && p != b->shown) {
            char tmp[FW_PATH_MAX + 40];
            snprintf(tmp, sizeof tmp, "%s.tmp", b->sim_led);
            FILE *f = fopen(tmp, "w");
            if (f) {
                fprintf(f, "%s\n", hal_led_pattern_name(p));
                fclose(f);
                rename(tmp, b->sim_led);
            }
            snprintf(tmp, sizeof tmp, "%s.log", b->sim_led);
            if ((f = fopen(tmp, "a"))) {
                fprintf(f, "%s\n", hal_led_pattern_name(p));
                fclose(f);
            }
        }
        b->shown = p;
    }
    return pressed;
}
