/* What the two libgpiod fakes (test_gpio_linux_v1.c, test_gpio_linux_v2.c) share: the
 * record of the calls the wrappers saw, asserted call by call, and the device paths of
 * the fake kernel's two chips. Include after <cmocka.h>; define GPIOD_FAKE_LOG_MAX and
 * GPIOD_FAKE_LOG_LINE (calls kept, bytes per call) first. Header-only, so each test
 * program stays one file. */
#ifndef GPIOD_FAKE_H
#define GPIOD_FAKE_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char log_buf[GPIOD_FAKE_LOG_MAX][GPIOD_FAKE_LOG_LINE];
static unsigned log_n;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    assert_true(log_n < GPIOD_FAKE_LOG_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_buf[log_n++], sizeof log_buf[0], fmt, ap);
    va_end(ap);
}

/* The calls since the last check are exactly `want`; the record starts again. */
static void expect_log(const char *const *want, unsigned n)
{
    for (unsigned i = 0; i < n && i < log_n; i++)
        assert_string_equal(log_buf[i], want[i]);
    assert_int_equal(log_n, n);
    log_n = 0;
}
#define EXPECT_LOG(...) do { const char *const w_[] = { __VA_ARGS__ }; \
                             expect_log(w_, sizeof w_ / sizeof w_[0]); } while (0)

/* The fake kernel's chips: /dev/gpiochip0 and 1; any other path does not exist. */
static int chip_of(const char *path)
{
    if (strcmp(path, "/dev/gpiochip0") == 0) return 0;
    if (strcmp(path, "/dev/gpiochip1") == 0) return 1;
    return -1;
}

#endif
