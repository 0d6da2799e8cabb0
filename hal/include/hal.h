/*
 * hal: board I/O for kvmesh. GPIO (status LED, button), thermal, throttling, power,
 * and a thermal governor. Depends on libc, libgpiod and sysfs only.
 *
 * Overview
 *   Every device class is a const table of operations (Zephyr style) with two
 *   backends:
 *     linux  GPIO through libgpiod (the 1.6 or the 2.x API, picked at build time by
 *            pkg-config); thermal, throttle and power read the real /sys.
 *     sim    GPIO lines live in memory (struct hal_sim_gpio), so a test can press a
 *            button or look at the LED; thermal, throttle and power read the same
 *            sysfs paths below a directory that a test fills. The parser that reads
 *            a fixture is the parser that reads a board.
 *   The LED, the button and the governor sit on top of the tables. They never sleep
 *   and never read a clock: the caller passes "now" in milliseconds to *_tick/_poll/
 *   _update, so a test can replay any timeline.
 *
 * Usage (firmware, real board; error handling trimmed):
 *
 *     #include "hal.h"
 *     const struct hal_board *b = hal_board();
 *     struct hal_gpio_line led_line, btn_line;
 *     struct hal_gpio_request lr = hal_led_line_request(b->gpio_chip, b->led_line);
 *     struct hal_gpio_request br = hal_button_line_request(b->gpio_chip, b->button_line);
 *     struct hal_led led;
 *     struct hal_button btn;
 *     struct hal_thermal th;
 *     struct hal_governor gov;
 *
 *     hal_gpio_line_request(&led_line, &hal_gpio_linux_ops, NULL, &lr);
 *     hal_led_init(&led, &led_line, now_ms());
 *     hal_gpio_line_request(&btn_line, &hal_gpio_linux_ops, NULL, &br);
 *     hal_button_init(&btn, &btn_line, b->button_role, 0, now_ms());
 *     hal_thermal_open(&th, &hal_thermal_linux_ops, NULL, b->thermal_zone);
 *     hal_governor_init(&gov, &(struct hal_governor_config){
 *         .soft_mc = b->thermal_soft_mc, .hard_mc = b->thermal_hard_mc,
 *         .hyst_mc = b->thermal_hyst_mc, .max_threads = 4, .min_threads = 1,
 *         .step_ms = 5000 }, publish_transition, mqtt);
 *
 *     for (;;) {                                 // the service loop
 *         uint64_t now = now_ms();
 *         int32_t mc;
 *         struct hal_button_event ev;
 *         if (hal_thermal_read(&th, &mc) == HAL_OK) hal_governor_update(&gov, mc, now);
 *         else                                     hal_governor_sensor_lost(&gov, now);
 *         if (hal_button_poll(&btn, now, &ev) == HAL_OK && ev.kind == HAL_BUTTON_PRESS)
 *             handle(ev.role);                     // run the prompt, or toggle mode
 *         hal_led_set_pattern(&led, busy ? HAL_LED_BUSY : HAL_LED_IDLE, now);
 *         sleep_until(now + 10);
 *     }
 *
 * Errors
 *   Every function that can fail returns hal_status: HAL_OK (0) or a negative code.
 *   hal_strerror() names it. Nothing in hal prints, exits or aborts. A missing or
 *   malformed sysfs file is a status, never a crash and never a made-up value; on
 *   error, output parameters are left untouched.
 *
 * Memory
 *   No allocation, except what libgpiod does inside a line request (at init). All
 *   state lives in caller-owned structs, whose fields are visible but are touched only
 *   through functions. Strings passed in (chip names, sysfs roots) are borrowed for
 *   the duration of the call unless a function says otherwise.
 *
 * Threads
 *   Objects are not locked. Use each object from one thread, or lock around it.
 */
#ifndef HAL_H
#define HAL_H

#include "hal_status.h"

#include "hal_gpio.h"
#include "hal_sensors.h"
#include "hal_governor.h"
#include "hal_board.h"

#endif
