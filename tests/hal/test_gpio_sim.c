/* The GPIO sim backend directly, and the LED and button on top of it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "hal.h"

/* Pi 4 header chip: 58 lines, header lines named "GPIO<n>". */
static struct hal_sim_gpio sim;
static int pi_chip;

static int setup_pi(void **state)
{
    (void)state;
    hal_sim_gpio_init(&sim);
    pi_chip = hal_sim_gpio_add_chip(&sim, "gpiochip0", "pinctrl-bcm2711", 58, NULL);
    if (pi_chip != 0)
        return -1;
    for (unsigned i = 0; i < 28; i++) {
        char name[16];
        snprintf(name, sizeof name, "GPIO%u", i);
        if (hal_sim_gpio_set_name(&sim, 0, i, name) != HAL_OK)
            return -1;
    }
    /* A second chip, so lookups must pick the right one. */
    static const char *const exp_names[8] = { "BT_ON", "WL_ON", "PWR_LED_OFF" };
    return hal_sim_gpio_add_chip(&sim, "gpiochip1", "raspberrypi-exp-gpio", 8, exp_names) == 1
               ? 0 : -1;
}

static void request_by_name_offset_and_label(void **state)
{
    (void)state;
    struct hal_gpio_line a, b, c;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    assert_int_equal(hal_gpio_line_request(&a, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(a.offset, 17);
    /* Same line by offset through the chip's path: busy. */
    r.chip = "/dev/gpiochip0";
    r.line = "17";
    assert_int_equal(hal_gpio_line_request(&b, &hal_gpio_sim_ops, &sim, &r), HAL_EBUSY);
    /* By label, another line. */
    r = hal_button_line_request("pinctrl-bcm2711", "27");
    assert_int_equal(hal_gpio_line_request(&b, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(b.offset, 27);
    /* Names are per chip. */
    r = hal_led_line_request("gpiochip1", "PWR_LED_OFF");
    assert_int_equal(hal_gpio_line_request(&c, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(c.offset, 2);
    hal_gpio_line_release(&c);
    r.line = "GPIO17";
    assert_int_equal(hal_gpio_line_request(&c, &hal_gpio_sim_ops, &sim, &r), HAL_ENODEV);
    r.line = "8";       /* chip has 8 lines: 0..7 */
    assert_int_equal(hal_gpio_line_request(&c, &hal_gpio_sim_ops, &sim, &r), HAL_ENODEV);
    r.chip = "gpiochip7";
    r.line = "1";
    assert_int_equal(hal_gpio_line_request(&c, &hal_gpio_sim_ops, &sim, &r), HAL_ENODEV);
    /* Released lines can be requested again; release twice is harmless. */
    hal_gpio_line_release(&a);
    hal_gpio_line_release(&a);
    r = hal_led_line_request("gpiochip0", "17");
    assert_int_equal(hal_gpio_line_request(&a, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    /* The line itself is taken, whichever struct asks. */
    assert_int_equal(hal_gpio_line_request(&c, &hal_gpio_sim_ops, &sim, &r), HAL_EBUSY);
    hal_gpio_line_release(&a);
    hal_gpio_line_release(&b);
    hal_gpio_line_release(NULL);
}

static void request_rejects_bad_arguments(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    memset(&l, 0, sizeof l);
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "17");
    r.initial = 2;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_EINVAL);
    r = hal_led_line_request("gpiochip0", "");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_EINVAL);
    r = hal_led_line_request("gpiochip0", "70000");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_EINVAL);
    r = hal_led_line_request(NULL, "17");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_EINVAL);
    r = hal_led_line_request("gpiochip0", "17");
    r.edges = true;     /* edges on an output */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_EINVAL);
    /* Unrequested lines refuse I/O. */
    int v;
    struct hal_gpio_edge e;
    assert_int_equal(hal_gpio_line_set(&l, 1), HAL_ESTATE);
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_ESTATE);
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_ESTATE);
}

static void output_levels_and_active_low(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    int phys, v;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO22");
    r.initial = 1;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 22, &phys), HAL_OK);
    assert_int_equal(phys, 1);
    assert_int_equal(hal_gpio_line_set(&l, 0), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 22, &phys), HAL_OK);
    assert_int_equal(phys, 0);
    hal_gpio_line_release(&l);
    /* Active low: logical 1 drives the pin to ground (LED wired to 3V3). */
    r.active_low = true;
    r.initial = 0;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 22, &phys), HAL_OK);
    assert_int_equal(phys, 1);
    assert_int_equal(hal_gpio_line_set(&l, 1), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 22, &phys), HAL_OK);
    assert_int_equal(phys, 0);
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_OK);
    assert_int_equal(v, 1);
    /* Outputs have no edges, and the sim has no fd. */
    struct hal_gpio_edge e;
    int fd;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_ESTATE);
    assert_int_equal(hal_gpio_line_fd(&l, &fd), HAL_ESTATE);
    hal_gpio_line_release(&l);
}

static void input_bias_and_edges(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    int v;
    struct hal_gpio_edge e;
    struct hal_gpio_request r = hal_button_line_request("gpiochip0", "GPIO27");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    /* Nothing connected: the pull-up holds it high, active-low reads "not pressed". */
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_OK);
    assert_int_equal(v, 0);
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EAGAIN);
    /* Button shorts the pin to ground: logical rising edge. */
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_OK);
    assert_int_equal(v, 1);
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_OK);
    assert_int_equal(e.type, HAL_GPIO_EDGE_RISING);
    /* Driving the same level again is not an edge. */
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EAGAIN);
    /* Let go: back to the pull-up, falling edge. */
    assert_int_equal(hal_sim_gpio_release_drive(&sim, 0, 27), HAL_OK);
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_OK);
    assert_int_equal(e.type, HAL_GPIO_EDGE_FALLING);
    /* A burst longer than the queue keeps the newest edges. */
    for (int i = 0; i < HAL_SIM_GPIO_EVENTS + 3; i++)
        assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, i % 2), HAL_OK);
    int n = 0;
    while (hal_gpio_line_read_edge(&l, &e) == HAL_OK)
        n++;
    assert_int_equal(n, HAL_SIM_GPIO_EVENTS);
    assert_int_equal(sim.chips[0].lines[27].ev_dropped, 3);
    hal_gpio_line_release(&l);
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 58, 0), HAL_EINVAL);
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 2), HAL_EINVAL);
}

/* ---- LED ---------------------------------------------------------------------------- */

static void led_patterns_are_what_the_header_says(void **state)
{
    (void)state;
    /* idle: 50 ms on, 1950 off */
    assert_int_equal(hal_led_pattern_level(HAL_LED_IDLE, 0), 1);
    assert_int_equal(hal_led_pattern_level(HAL_LED_IDLE, 49), 1);
    assert_int_equal(hal_led_pattern_level(HAL_LED_IDLE, 50), 0);
    assert_int_equal(hal_led_pattern_level(HAL_LED_IDLE, 1999), 0);
    assert_int_equal(hal_led_pattern_level(HAL_LED_IDLE, 2000), 1);
    /* sharing: on 100, off 100, on 100, off 700 */
    static const int sharing[10] = { 1, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    for (int i = 0; i < 20; i++)
        assert_int_equal(hal_led_pattern_level(HAL_LED_SHARING, (uint64_t)i * 100 + 50),
                         sharing[i % 10]);
    assert_int_equal(hal_led_pattern_level(HAL_LED_BUSY, 150), 0);
    assert_int_equal(hal_led_pattern_level(HAL_LED_OFFLINE, 999), 1);
    assert_int_equal(hal_led_pattern_level(HAL_LED_OFFLINE, 1000), 0);
    assert_int_equal(hal_led_pattern_level(HAL_LED_ERROR, 123456), 1);
    assert_int_equal(hal_led_pattern_level(HAL_LED_OFF, 123456), 0);
    assert_int_equal(hal_led_pattern_level(HAL_LED_PATTERN_COUNT, 0), -1);
    assert_int_equal(hal_led_pattern_next_change(HAL_LED_IDLE, 10), 40);
    assert_int_equal(hal_led_pattern_next_change(HAL_LED_SHARING, 250), 50);
    assert_int_equal(hal_led_pattern_next_change(HAL_LED_SHARING, 300), 700);
    assert_int_equal(hal_led_pattern_next_change(HAL_LED_ERROR, 10), UINT32_MAX);
    assert_string_equal(hal_led_pattern_name(HAL_LED_SHARING), "sharing");
    assert_string_equal(hal_led_pattern_name((enum hal_led_pattern)99), "?");
}

static void led_drives_line_and_writes_only_changes(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_led led;
    int phys;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_led_init(&led, &l, 1000), HAL_OK);
    unsigned w0 = sim.writes;
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_BUSY, 1000), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 17, &phys), HAL_OK);
    assert_int_equal(phys, 1);
    /* Tick every ms for one second: busy toggles every 100 ms, so 10 levels, of which
     * the first was already written: 9 more writes, not 1000. */
    for (uint64_t t = 1000; t < 2000; t++) {
        assert_int_equal(hal_led_tick(&led, t), HAL_OK);
        assert_int_equal(hal_sim_gpio_level(&sim, 0, 17, &phys), HAL_OK);
        assert_int_equal(phys, ((t - 1000) / 100) % 2 == 0);
    }
    assert_int_equal(sim.writes - w0, 10);
    /* Asking for the same pattern keeps its phase. */
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_BUSY, 2150), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 17, &phys), HAL_OK);
    assert_int_equal(phys, 0);
    /* A new pattern starts lit, at once. */
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_IDLE, 2160), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 17, &phys), HAL_OK);
    assert_int_equal(phys, 1);
    assert_int_equal(hal_led_tick(&led, 2210), HAL_OK);
    assert_int_equal(hal_sim_gpio_level(&sim, 0, 17, &phys), HAL_OK);
    assert_int_equal(phys, 0);
    assert_int_equal(hal_led_tick(&led, 2100), HAL_EINVAL);     /* before the start */
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_PATTERN_COUNT, 3000), HAL_EINVAL);
    hal_gpio_line_release(&l);
    /* An LED needs an output. */
    r = hal_button_line_request("gpiochip0", "GPIO27");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_led_init(&led, &l, 0), HAL_ESTATE);
    hal_gpio_line_release(&l);
}

/* ---- button ------------------------------------------------------------------------- */

struct button_rig {
    struct hal_gpio_line line;
    struct hal_button btn;
};

static void rig_up(struct button_rig *rig, enum hal_button_role role, uint64_t now)
{
    struct hal_gpio_request r = hal_button_line_request("gpiochip0", "GPIO27");
    assert_int_equal(hal_gpio_line_request(&rig->line, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_button_init(&rig->btn, &rig->line, role, 30, now), HAL_OK);
}

static void button_debounces_a_bouncy_press(void **state)
{
    (void)state;
    struct button_rig rig;
    struct hal_button_event ev;
    rig_up(&rig, HAL_BUTTON_ROLE_RUN_PROMPT, 0);
    /* Contact closes at t=100 and bounces for 6 ms, polled every 2 ms. */
    static const int bounce[] = { 0, 1, 0, 1, 0, 0 };
    uint64_t t = 100;
    for (size_t i = 0; i < sizeof bounce / sizeof bounce[0]; i++, t += 1) {
        assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, bounce[i]), HAL_OK);
        if (i % 2 == 1)
            assert_int_equal(hal_button_poll(&rig.btn, t, &ev), HAL_EAGAIN);
    }
    /* Last movement at t=105: nothing before t=105+30. */
    int presses = 0;
    uint64_t pressed_at = 0;
    for (t = 106; t < 200; t += 2) {
        hal_status st = hal_button_poll(&rig.btn, t, &ev);
        if (st == HAL_OK) {
            presses++;
            pressed_at = t;
            assert_int_equal(ev.kind, HAL_BUTTON_PRESS);
            assert_int_equal(ev.role, HAL_BUTTON_ROLE_RUN_PROMPT);
        } else {
            assert_int_equal(st, HAL_EAGAIN);
        }
    }
    assert_int_equal(presses, 1);
    assert_true(pressed_at >= 135 && pressed_at <= 137);
    /* Release cleanly at 700: one release, with how long it was held. */
    assert_int_equal(hal_sim_gpio_release_drive(&sim, 0, 27), HAL_OK);
    assert_int_equal(hal_button_poll(&rig.btn, 700, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 729, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 730, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_RELEASE);
    assert_int_equal(ev.held_ms, 730 - pressed_at);
    assert_int_equal(hal_button_poll(&rig.btn, 800, &ev), HAL_EAGAIN);
    hal_gpio_line_release(&rig.line);
}

static void button_edge_between_polls_restarts_debounce(void **state)
{
    (void)state;
    struct button_rig rig;
    struct hal_button_event ev;
    rig_up(&rig, HAL_BUTTON_ROLE_TOGGLE_MODE, 0);
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);
    assert_int_equal(hal_button_poll(&rig.btn, 10, &ev), HAL_EAGAIN);
    /* A glitch open-and-closed between two polls: sampling alone would not see it,
     * the kernel's edges do, so the 30 ms start again from the poll at t=30. */
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 1), HAL_OK);
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);
    assert_int_equal(hal_button_poll(&rig.btn, 30, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 45, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 59, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 60, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_PRESS);
    assert_int_equal(ev.role, HAL_BUTTON_ROLE_TOGGLE_MODE);
    assert_true(rig.btn.bounces >= 3);
    assert_int_equal(hal_button_poll(&rig.btn, 50, &ev), HAL_EINVAL);   /* time backwards */
    hal_sim_gpio_release_drive(&sim, 0, 27);
    hal_gpio_line_release(&rig.line);
}

static void button_short_glitch_is_not_a_press(void **state)
{
    (void)state;
    struct button_rig rig;
    struct hal_button_event ev;
    rig_up(&rig, HAL_BUTTON_ROLE_RUN_PROMPT, 0);
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);   /* 20 ms spike */
    for (uint64_t t = 0; t <= 20; t += 5)
        assert_int_equal(hal_button_poll(&rig.btn, t, &ev), HAL_EAGAIN);
    assert_int_equal(hal_sim_gpio_release_drive(&sim, 0, 27), HAL_OK);
    for (uint64_t t = 25; t <= 500; t += 5)
        assert_int_equal(hal_button_poll(&rig.btn, t, &ev), HAL_EAGAIN);
    hal_gpio_line_release(&rig.line);
}

static void button_held_at_boot_needs_release_first(void **state)
{
    (void)state;
    struct button_rig rig;
    struct hal_button_event ev;
    assert_int_equal(hal_sim_gpio_drive(&sim, 0, 27, 0), HAL_OK);
    rig_up(&rig, HAL_BUTTON_ROLE_RUN_PROMPT, 0);
    assert_int_equal(hal_button_poll(&rig.btn, 100, &ev), HAL_EAGAIN);
    assert_int_equal(hal_sim_gpio_release_drive(&sim, 0, 27), HAL_OK);
    assert_int_equal(hal_button_poll(&rig.btn, 200, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&rig.btn, 230, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_RELEASE);
    hal_gpio_line_release(&rig.line);
    /* Roles and arguments. */
    enum hal_button_role role;
    assert_int_equal(hal_button_role_parse("toggle-mode", &role), HAL_OK);
    assert_int_equal(role, HAL_BUTTON_ROLE_TOGGLE_MODE);
    assert_string_equal(hal_button_role_name(HAL_BUTTON_ROLE_RUN_PROMPT), "run-prompt");
    assert_int_equal(hal_button_role_parse("reboot", &role), HAL_EINVAL);
    struct hal_gpio_request r = hal_button_line_request("gpiochip0", "GPIO27");
    assert_int_equal(hal_gpio_line_request(&rig.line, &hal_gpio_sim_ops, &sim, &r), HAL_OK);
    assert_int_equal(hal_button_init(&rig.btn, &rig.line, (enum hal_button_role)7, 30, 0),
                     HAL_EINVAL);
    assert_int_equal(hal_button_init(&rig.btn, &rig.line, HAL_BUTTON_ROLE_RUN_PROMPT, 20000, 0),
                     HAL_EINVAL);
    assert_int_equal(hal_button_init(&rig.btn, &rig.line, HAL_BUTTON_ROLE_RUN_PROMPT, 0, 0),
                     HAL_OK);
    assert_int_equal(rig.btn.debounce_ms, HAL_BUTTON_DEBOUNCE_MS_DEFAULT);
    hal_gpio_line_release(&rig.line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(request_by_name_offset_and_label, setup_pi),
        cmocka_unit_test_setup(request_rejects_bad_arguments, setup_pi),
        cmocka_unit_test_setup(output_levels_and_active_low, setup_pi),
        cmocka_unit_test_setup(input_bias_and_edges, setup_pi),
        cmocka_unit_test(led_patterns_are_what_the_header_says),
        cmocka_unit_test_setup(led_drives_line_and_writes_only_changes, setup_pi),
        cmocka_unit_test_setup(button_debounces_a_bouncy_press, setup_pi),
        cmocka_unit_test_setup(button_edge_between_polls_restarts_debounce, setup_pi),
        cmocka_unit_test_setup(button_short_glitch_is_not_a_press, setup_pi),
        cmocka_unit_test_setup(button_held_at_boot_needs_release_first, setup_pi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
