/* The linux GPIO backend against libgpiod 1.x, with every libgpiod call it makes
 * wrapped at link time (-Wl,--wrap=gpiod_..., see tests/hal/tests.mk). The wrappers
 * act as a small kernel (two chips, named lines, values, queued edges) and append
 * each call with its arguments to a log; the tests assert that log call by call, and
 * inject failures through errno the way libgpiod reports them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <gpiod.h>

#include "hal.h"

/* libgpiod's structs are opaque; the fake kernel gives them a body. */
struct gpiod_chip { int idx; };
struct gpiod_line { int chip; unsigned offset; int requested; int value; int type; };

#define NLINES 58
static struct gpiod_chip chips[2] = { { 0 }, { 1 } };
static const char *const chip_labels[2] = { "pinctrl-bcm2711", "raspberrypi-exp-gpio" };
static struct gpiod_line lines[2][NLINES];
static int open_count;
static struct { int pending; int type; struct timespec ts; } edge;

/* Failure injection: errno for the next call of that kind, 0 for success. */
static int fail_open_errno, fail_request_errno, fail_set, fail_wait;

#define GPIOD_FAKE_LOG_MAX 48
#define GPIOD_FAKE_LOG_LINE 96
#include "gpiod_fake.h"

/* ---- the wrappers ------------------------------------------------------------------- */

struct gpiod_chip *__wrap_gpiod_chip_open(const char *path);
struct gpiod_chip *__wrap_gpiod_chip_open(const char *path)
{
    logf_("chip_open %s", path);
    int c = chip_of(path);
    if (fail_open_errno) {
        errno = fail_open_errno;
        fail_open_errno = 0;
        return NULL;
    }
    if (c < 0) {
        errno = ENOENT;
        return NULL;
    }
    open_count++;
    return &chips[c];
}

void __wrap_gpiod_chip_close(struct gpiod_chip *chip);
void __wrap_gpiod_chip_close(struct gpiod_chip *chip)
{
    logf_("chip_close %d", chip->idx);
    open_count--;
}

const char *__wrap_gpiod_chip_label(struct gpiod_chip *chip);
const char *__wrap_gpiod_chip_label(struct gpiod_chip *chip)
{
    logf_("chip_label %d", chip->idx);
    return chip_labels[chip->idx];
}

struct gpiod_line *__wrap_gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset);
struct gpiod_line *__wrap_gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset)
{
    logf_("get_line %d %u", chip->idx, offset);
    if (offset >= NLINES) {
        errno = EINVAL;
        return NULL;
    }
    return &lines[chip->idx][offset];
}

struct gpiod_line *__wrap_gpiod_chip_find_line(struct gpiod_chip *chip, const char *name);
struct gpiod_line *__wrap_gpiod_chip_find_line(struct gpiod_chip *chip, const char *name)
{
    logf_("find_line %d %s", chip->idx, name);
    unsigned off;
    if (chip->idx == 0 && sscanf(name, "GPIO%u", &off) == 1 && off < 28)
        return &lines[0][off];
    errno = ENOENT;
    return NULL;
}

int __wrap_gpiod_line_request(struct gpiod_line *line,
                              const struct gpiod_line_request_config *config, int default_val);
int __wrap_gpiod_line_request(struct gpiod_line *line,
                              const struct gpiod_line_request_config *config, int default_val)
{
    logf_("request %d/%u consumer=%s type=%d flags=%#x default=%d", line->chip, line->offset,
          config->consumer, config->request_type, (unsigned)config->flags, default_val);
    if (fail_request_errno) {
        errno = fail_request_errno;
        fail_request_errno = 0;
        return -1;
    }
    line->requested = 1;
    line->type = config->request_type;
    line->value = default_val;
    return 0;
}

unsigned int __wrap_gpiod_line_offset(struct gpiod_line *line);
unsigned int __wrap_gpiod_line_offset(struct gpiod_line *line)
{
    logf_("line_offset %d/%u", line->chip, line->offset);
    return line->offset;
}

void __wrap_gpiod_line_release(struct gpiod_line *line);
void __wrap_gpiod_line_release(struct gpiod_line *line)
{
    logf_("release %d/%u", line->chip, line->offset);
    line->requested = 0;
}

int __wrap_gpiod_line_set_value(struct gpiod_line *line, int value);
int __wrap_gpiod_line_set_value(struct gpiod_line *line, int value)
{
    logf_("set %d/%u %d", line->chip, line->offset, value);
    if (fail_set) {
        fail_set = 0;
        errno = EIO;
        return -1;
    }
    line->value = value;
    return 0;
}

int __wrap_gpiod_line_get_value(struct gpiod_line *line);
int __wrap_gpiod_line_get_value(struct gpiod_line *line)
{
    logf_("get %d/%u", line->chip, line->offset);
    return line->value;
}

int __wrap_gpiod_line_event_wait(struct gpiod_line *line, const struct timespec *timeout);
int __wrap_gpiod_line_event_wait(struct gpiod_line *line, const struct timespec *timeout)
{
    logf_("event_wait %d/%u %lds%ldns", line->chip, line->offset, (long)timeout->tv_sec,
          timeout->tv_nsec);
    if (fail_wait) {
        fail_wait = 0;
        errno = EIO;
        return -1;
    }
    return edge.pending > 0;
}

int __wrap_gpiod_line_event_read(struct gpiod_line *line, struct gpiod_line_event *event);
int __wrap_gpiod_line_event_read(struct gpiod_line *line, struct gpiod_line_event *event)
{
    logf_("event_read %d/%u", line->chip, line->offset);
    edge.pending--;
    event->event_type = edge.type;
    event->ts = edge.ts;
    return 0;
}

int __wrap_gpiod_line_event_get_fd(struct gpiod_line *line);
int __wrap_gpiod_line_event_get_fd(struct gpiod_line *line)
{
    logf_("event_fd %d/%u", line->chip, line->offset);
    return 42;
}

/* ---- tests -------------------------------------------------------------------------- */

static int reset(void **state)
{
    (void)state;
    for (int c = 0; c < 2; c++)
        for (unsigned i = 0; i < NLINES; i++)
            lines[c][i] = (struct gpiod_line){ .chip = c, .offset = i };
    log_n = 0;
    open_count = 0;
    fail_open_errno = fail_request_errno = fail_set = fail_wait = 0;
    memset(&edge, 0, sizeof edge);
    return 0;
}

static void built_against_1x(void **state)
{
    (void)state;
    assert_int_equal(hal_gpio_linux_api, 1);
    assert_string_equal(hal_gpio_linux_ops.name, "linux");
}

static void led_output_by_name(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_led led;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    assert_int_equal(l.offset, 17);
    EXPECT_LOG("chip_open /dev/gpiochip0",
               "find_line 0 GPIO17",
               "request 0/17 consumer=kvmesh-led type=3 flags=0 default=0",
               "line_offset 0/17");
    assert_int_equal(GPIOD_LINE_REQUEST_DIRECTION_OUTPUT, 3);   /* type=3 above */
    /* The LED writes through set_value, and only on change. */
    assert_int_equal(hal_led_init(&led, &l, 0), HAL_OK);
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_BUSY, 0), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 50), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 100), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 150), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 200), HAL_OK);
    EXPECT_LOG("set 0/17 0", "set 0/17 1", "set 0/17 0", "set 0/17 1");
    /* A failed write is an I/O error, and is retried on the next tick. */
    fail_set = 1;
    assert_int_equal(hal_led_tick(&led, 300), HAL_EIO);
    assert_int_equal(hal_led_tick(&led, 301), HAL_OK);
    EXPECT_LOG("set 0/17 0", "set 0/17 0");
    hal_gpio_line_release(&l);
    EXPECT_LOG("release 0/17", "chip_close 0");
    assert_int_equal(open_count, 0);
}

static void button_input_by_offset_with_edges(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_button_line_request("/dev/gpiochip0", "27");
    r.consumer = NULL;      /* default consumer name */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    char want[96];
    snprintf(want, sizeof want, "request 0/27 consumer=kvmesh type=%d flags=%#x default=0",
             GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES,
             (unsigned)(GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW | GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP));
    EXPECT_LOG("chip_open /dev/gpiochip0", "get_line 0 27", want, "line_offset 0/27");

    /* No edge pending: a zero-timeout wait, nothing read. */
    struct hal_gpio_edge e;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EAGAIN);
    EXPECT_LOG("event_wait 0/27 0s0ns");
    edge.pending = 1;
    edge.type = GPIOD_LINE_EVENT_FALLING_EDGE;
    edge.ts = (struct timespec){ 12, 345 };
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_OK);
    assert_int_equal(e.type, HAL_GPIO_EDGE_FALLING);
    assert_int_equal(e.ts_ns, 12000000345ull);
    EXPECT_LOG("event_wait 0/27 0s0ns", "event_read 0/27");
    fail_wait = 1;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EIO);
    EXPECT_LOG("event_wait 0/27 0s0ns");
    int fd;
    assert_int_equal(hal_gpio_line_fd(&l, &fd), HAL_OK);
    assert_int_equal(fd, 42);
    EXPECT_LOG("event_fd 0/27");

    /* The button drains edges, then samples the level. */
    struct hal_button b;
    struct hal_button_event ev;
    assert_int_equal(hal_button_init(&b, &l, HAL_BUTTON_ROLE_TOGGLE_MODE, 30, 0), HAL_OK);
    EXPECT_LOG("get 0/27", "event_wait 0/27 0s0ns");
    edge.pending = 1;
    edge.type = GPIOD_LINE_EVENT_RISING_EDGE;
    lines[0][27].value = 1;
    assert_int_equal(hal_button_poll(&b, 10, &ev), HAL_EAGAIN);
    EXPECT_LOG("event_wait 0/27 0s0ns", "event_read 0/27", "event_wait 0/27 0s0ns", "get 0/27");
    assert_int_equal(hal_button_poll(&b, 40, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_PRESS);
    assert_int_equal(ev.role, HAL_BUTTON_ROLE_TOGGLE_MODE);
    EXPECT_LOG("event_wait 0/27 0s0ns", "get 0/27");
    /* An input cannot be driven; nothing reaches libgpiod. */
    assert_int_equal(hal_gpio_line_set(&l, 1), HAL_ESTATE);
    assert_int_equal(log_n, 0);
    hal_gpio_line_release(&l);
    EXPECT_LOG("release 0/27", "chip_close 0");
}

static void chip_by_label_scans_and_closes_the_others(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_led_line_request("raspberrypi-exp-gpio", "2");
    r.bias = HAL_GPIO_BIAS_DISABLED;
    r.initial = 1;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    char want[96];
    snprintf(want, sizeof want, "request 1/2 consumer=kvmesh-led type=%d flags=%#x default=1",
             GPIOD_LINE_REQUEST_DIRECTION_OUTPUT, (unsigned)GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE);
    EXPECT_LOG("chip_open /dev/gpiochip0", "chip_label 0", "chip_close 0",
               "chip_open /dev/gpiochip1", "chip_label 1",
               "get_line 1 2", want, "line_offset 1/2");
    hal_gpio_line_release(&l);
    log_n = 0;
    /* An unknown label tries every chip number, then gives up cleanly. */
    r.chip = "pinctrl-rp1";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    assert_int_equal(log_n, 2 * 3 + (32 - 2));   /* open/label/close twice, 30 failed opens */
    assert_string_equal(log_buf[log_n - 1], "chip_open /dev/gpiochip31");
    log_n = 0;
    /* A chip that cannot be opened for lack of permission (a user outside the gpio
     * group) turns a failed search into a refusal, not "no such chip". */
    fail_open_errno = EACCES;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    log_n = 0;
    assert_int_equal(open_count, 0);
}

static void failures_map_to_statuses_and_close_the_chip(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    fail_request_errno = EBUSY;        /* another process holds the line */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EBUSY);
    EXPECT_LOG("chip_open /dev/gpiochip0", "find_line 0 GPIO17",
               "request 0/17 consumer=kvmesh-led type=3 flags=0 default=0", "chip_close 0");
    fail_request_errno = EPERM;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    log_n = 0;
    r.line = "GPIO99";                 /* no such name */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    EXPECT_LOG("chip_open /dev/gpiochip0", "find_line 0 GPIO99", "chip_close 0");
    r.line = "60";                     /* past the chip's last line */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    EXPECT_LOG("chip_open /dev/gpiochip0", "get_line 0 60", "chip_close 0");
    r.chip = "gpiochip9";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    EXPECT_LOG("chip_open /dev/gpiochip9");
    fail_open_errno = EACCES;          /* not in the gpio group */
    r.chip = "gpiochip0";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    EXPECT_LOG("chip_open /dev/gpiochip0");
    assert_int_equal(open_count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(built_against_1x),
        cmocka_unit_test_setup(led_output_by_name, reset),
        cmocka_unit_test_setup(button_input_by_offset_with_edges, reset),
        cmocka_unit_test_setup(chip_by_label_scans_and_closes_the_others, reset),
        cmocka_unit_test_setup(failures_map_to_statuses_and_close_the_chip, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
