/* Thermal, throttle and power through the sim backends on each board's fixture tree:
 * readings and units, and that missing or malformed files give a clear status and
 * leave the output untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hal.h"
#include "hal_test.h"

/* ---- thermal ------------------------------------------------------------------------ */

static int32_t read_zone(const char *board, unsigned zone, hal_status *st)
{
    struct hal_thermal t;
    int32_t mc = 12345;   /* sentinel: must survive a failed read */
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_sim_ops, fixture(board), zone), HAL_OK);
    *st = hal_thermal_read(&t, &mc);
    return mc;
}

static void thermal_reads_each_board(void **state)
{
    (void)state;
    static const struct { const char *board; unsigned zone; int32_t mc; } cases[] = {
        { "rpi4", 0, 48686 },
        { "rpi5", 0, 61350 },
        { "jetson-nano", 1, 42000 },        /* CPU-therm */
        { "jetson-nano", 4, 100000 },       /* PMIC-Die reports a fixed 100 C */
        { "jetson-orin-nano", 0, 51281 },
        { "host", 0, 45000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hal_status st;
        int32_t mc = read_zone(cases[i].board, cases[i].zone, &st);
        assert_int_equal(st, HAL_OK);
        assert_int_equal(mc, cases[i].mc);
    }
}

static void thermal_errors_are_statuses(void **state)
{
    (void)state;
    static const struct { const char *board; unsigned zone; hal_status st; } cases[] = {
        { "malformed", 0, HAL_EPARSE },     /* "hot" */
        { "malformed", 1, HAL_EPARSE },     /* empty */
        { "malformed", 2, HAL_EPARSE },     /* "42000abc" */
        { "malformed", 3, HAL_ERANGE },     /* 20 digits */
        { "malformed", 4, HAL_ENOENT },     /* zone without temp */
        { "malformed", 5, HAL_EPARSE },     /* 100 digits: longer than any value */
        { "malformed", 6, HAL_ERANGE },     /* -256 C */
        { "malformed", 7, HAL_EPARSE },     /* blanks */
        { "malformed", 8, HAL_EPARSE },     /* two numbers */
        { "malformed", 9, HAL_ENOENT },     /* no such zone */
        { "jetson-orin-nano", 2, HAL_ERANGE },  /* cv0 off: -256000 */
        { "rpi4", 1, HAL_ENOENT },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hal_status st;
        int32_t mc = read_zone(cases[i].board, cases[i].zone, &st);
        assert_int_equal(st, cases[i].st);
        assert_int_equal(mc, 12345);
    }
}

static void thermal_open_checks(void **state)
{
    (void)state;
    struct hal_thermal t;
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_sim_ops, NULL, 0), HAL_EINVAL);
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_sim_ops, "", 0), HAL_EINVAL);
    assert_int_equal(hal_thermal_open(&t, NULL, "x", 0), HAL_EINVAL);
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_sim_ops, "x", 256), HAL_EINVAL);
    /* A trailing slash on the root is the same root. */
    char root[600];
    snprintf(root, sizeof root, "%s/", fixture("rpi4"));
    int32_t mc;
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_sim_ops, root, 0), HAL_OK);
    assert_int_equal(hal_thermal_read(&t, &mc), HAL_OK);
    assert_int_equal(mc, 48686);
    /* The linux backend ignores the root: it must never read a fixture. */
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_linux_ops, fixture("rpi4"), 0), HAL_OK);
    assert_string_equal(t.root, "");
    assert_string_equal(t.ops->name, "linux");
}

/* ---- throttle ----------------------------------------------------------------------- */

static void throttle_pi4_flags_set(void **state)
{
    (void)state;
    struct hal_throttle t;
    struct hal_throttle_state s;
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("rpi4"),
                                       "/sys/devices/platform/soc/soc:firmware/get_throttled"),
                     HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_OK);
    assert_int_equal(s.raw, 0x50005);
    assert_true(s.now.under_voltage);
    assert_false(s.now.freq_capped);
    assert_true(s.now.throttled);
    assert_false(s.now.soft_temp_limit);
    assert_true(s.since_boot.under_voltage);
    assert_false(s.since_boot.freq_capped);
    assert_true(s.since_boot.throttled);
    assert_false(s.since_boot.soft_temp_limit);
}

static void throttle_pi5_path_and_driver_fallback(void **state)
{
    (void)state;
    struct hal_throttle t;
    struct hal_throttle_state s;
    /* The board's own path. */
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("rpi5"),
        "/sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled"), HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_OK);
    assert_int_equal(s.raw, 0xe0008);
    assert_true(s.now.soft_temp_limit);
    assert_false(s.now.throttled || s.now.under_voltage || s.now.freq_capped);
    assert_true(s.since_boot.freq_capped && s.since_boot.throttled &&
                s.since_boot.soft_temp_limit);
    assert_false(s.since_boot.under_voltage);
    /* A wrong path (a Pi 4 description on a Pi 5): found through the driver. */
    memset(&s, 0, sizeof s);
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("rpi5"),
                                       "/sys/devices/platform/soc/soc:firmware/get_throttled"),
                     HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_OK);
    assert_int_equal(s.raw, 0xe0008);
}

static void throttle_absent_and_malformed(void **state)
{
    (void)state;
    struct hal_throttle t;
    struct hal_throttle_state s = { .raw = 777 };
    const char *pi4 = "/sys/devices/platform/soc/soc:firmware/get_throttled";
    /* A Jetson has no firmware flags: the board says so with an empty path. */
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("jetson-nano"), ""),
                     HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_ENOTSUP);
    /* A Pi description on a tree without the file. */
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("host"), pi4), HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_ENOENT);
    /* vcgencmd's "throttled=0x..." is not what sysfs says: malformed. */
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, fixture("malformed"), pi4),
                     HAL_OK);
    assert_int_equal(hal_throttle_read(&t, &s), HAL_EPARSE);
    assert_int_equal(s.raw, 777);
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, "x", "relative/path"),
                     HAL_EINVAL);
}

static void throttle_values_parse_strictly(void **state)
{
    (void)state;
    char root[256];
    assert_non_null(scratch_root(root, sizeof root));
    const char *rel = "sys/devices/platform/soc/soc:firmware/get_throttled";
    static const struct { const char *text; hal_status st; uint32_t raw; } cases[] = {
        { "0\n", HAL_OK, 0 },
        { "80008\n", HAL_OK, 0x80008 },
        { "0x50005\n", HAL_OK, 0x50005 },
        { "FFFFFFFF\n", HAL_OK, 0xffffffffu },
        { "100000000\n", HAL_ERANGE, 0 },     /* 33 bits */
        { "\n", HAL_EPARSE, 0 },
        { "0x\n", HAL_EPARSE, 0 },
        { "5g\n", HAL_EPARSE, 0 },
        { "-1\n", HAL_EPARSE, 0 },
    };
    struct hal_throttle t;
    assert_int_equal(hal_throttle_open(&t, &hal_throttle_sim_ops, root, "/" "sys/devices/platform/soc/soc:firmware/get_throttled"), HAL_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hal_throttle_state s = { .raw = 4242 };
        assert_int_equal(put_file(root, rel, cases[i].text), 0);
        assert_int_equal(hal_throttle_read(&t, &s), cases[i].st);
        assert_int_equal(s.raw, cases[i].st == HAL_OK ? cases[i].raw : 4242);
    }
    rm_tree(root);
}

/* ---- power -------------------------------------------------------------------------- */

static void power_orin_hwmon_rails(void **state)
{
    (void)state;
    struct hal_power p;
    struct hal_power_reading r;
    unsigned i;
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("jetson-orin-nano"),
                                    HAL_POWER_INA3221_HWMON), HAL_OK);
    /* Three labelled bus channels; in7 ("sum of shunt voltages") is not a rail. */
    assert_int_equal(hal_power_rail_count(&p), 3);
    assert_string_equal(hal_power_rail_label(&p, 0), "VDD_IN");
    assert_string_equal(hal_power_rail_label(&p, 1), "VDD_CPU_GPU_CV");
    assert_string_equal(hal_power_rail_label(&p, 2), "VDD_SOC");
    assert_null(hal_power_rail_label(&p, 3));
    assert_int_equal(hal_power_find(&p, "VDD_IN", &i), HAL_OK);
    assert_int_equal(hal_power_read(&p, i, &r), HAL_OK);
    assert_int_equal(r.mv, 5056);
    assert_int_equal(r.ma, 1304);
    assert_int_equal(r.mw, 6593);     /* 5056 mV * 1304 mA = 6593.024 mW */
    assert_int_equal(hal_power_find(&p, "VDD_SOC", &i), HAL_OK);
    assert_int_equal(hal_power_read(&p, i, &r), HAL_OK);
    assert_int_equal(r.mw, 4173);     /* 5064 * 824 = 4172.736 -> 4173 */
    assert_int_equal(hal_power_find(&p, "VDD_GPU", &i), HAL_ENOENT);
    assert_int_equal(hal_power_read(&p, 3, &r), HAL_EINVAL);
}

static void power_nano_iio_rails(void **state)
{
    (void)state;
    struct hal_power p;
    struct hal_power_reading r;
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("jetson-nano"),
                                    HAL_POWER_INA3221X_IIO), HAL_OK);
    assert_int_equal(hal_power_rail_count(&p), 3);
    static const struct { const char *label; int32_t mv, ma, mw; } want[] = {
        { "POM_5V_IN", 5072, 1264, 6411 },    /* driver's own in_power0 says 6400 */
        { "POM_5V_GPU", 5048, 40, 202 },
        { "POM_5V_CPU", 5048, 361, 1822 },
    };
    for (unsigned k = 0; k < 3; k++) {
        unsigned i;
        assert_int_equal(hal_power_find(&p, want[k].label, &i), HAL_OK);
        assert_int_equal(i, k);
        assert_int_equal(hal_power_read(&p, i, &r), HAL_OK);
        assert_int_equal(r.mv, want[k].mv);
        assert_int_equal(r.ma, want[k].ma);
        assert_int_equal(r.mw, want[k].mw);
    }
}

static void power_absent_and_malformed(void **state)
{
    (void)state;
    struct hal_power p;
    struct hal_power_reading r = { 1, 2, 3 };
    unsigned i;
    /* No INA3221 on a Pi: no device of that kind. The other layout on a Jetson too. */
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("rpi4"),
                                    HAL_POWER_INA3221_HWMON), HAL_ENOENT);
    assert_int_equal(hal_power_rail_count(&p), 0);
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("jetson-orin-nano"),
                                    HAL_POWER_INA3221X_IIO), HAL_ENOENT);
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("rpi4"), HAL_POWER_NONE),
                     HAL_OK);
    assert_int_equal(hal_power_rail_count(&p), 0);

    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, fixture("malformed"),
                                    HAL_POWER_INA3221_HWMON), HAL_OK);
    assert_int_equal(hal_power_rail_count(&p), 3);
    assert_int_equal(hal_power_find(&p, "VDD_IN", &i), HAL_OK);
    assert_int_equal(hal_power_read(&p, i, &r), HAL_ENOENT);     /* no curr1_input */
    assert_int_equal(hal_power_find(&p, "VDD_TEXT", &i), HAL_OK);
    assert_int_equal(hal_power_read(&p, i, &r), HAL_EPARSE);     /* "five volts" */
    assert_int_equal(hal_power_find(&p, "VDD_HIGH", &i), HAL_OK);
    assert_int_equal(hal_power_read(&p, i, &r), HAL_ERANGE);     /* 40 V */
    assert_int_equal(r.mv, 1);
    assert_int_equal(r.ma, 2);
    assert_int_equal(r.mw, 3);
}

static void power_negative_current_rounds_away_from_zero(void **state)
{
    (void)state;
    char root[256];
    assert_non_null(scratch_root(root, sizeof root));
    const char *d = "sys/class/hwmon/hwmon3/";
    char rel[128];
    snprintf(rel, sizeof rel, "%sname", d);
    assert_int_equal(put_file(root, rel, "ina3221\n"), 0);
    snprintf(rel, sizeof rel, "%scurr2_label", d);      /* label on curr, not in */
    assert_int_equal(put_file(root, rel, "VBAT\n"), 0);
    snprintf(rel, sizeof rel, "%sin2_input", d);
    assert_int_equal(put_file(root, rel, "3701\n"), 0);
    snprintf(rel, sizeof rel, "%scurr2_input", d);
    assert_int_equal(put_file(root, rel, "-135\n"), 0);  /* charging */
    struct hal_power p;
    struct hal_power_reading r;
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, root, HAL_POWER_INA3221_HWMON),
                     HAL_OK);
    assert_int_equal(hal_power_rail_count(&p), 1);
    assert_string_equal(hal_power_rail_label(&p, 0), "VBAT");
    assert_int_equal(hal_power_read(&p, 0, &r), HAL_OK);
    assert_int_equal(r.ma, -135);
    assert_int_equal(r.mw, -500);     /* -499.635 -> -500 */
    /* A label file with nothing in it is a broken device, not an unwired channel. */
    snprintf(rel, sizeof rel, "%sin1_label", d);
    assert_int_equal(put_file(root, rel, "\n"), 0);
    assert_int_equal(hal_power_open(&p, &hal_power_sim_ops, root, HAL_POWER_INA3221_HWMON),
                     HAL_EPARSE);
    rm_tree(root);
}

static void names_round_trip(void **state)
{
    (void)state;
    enum hal_power_source src;
    for (int k = HAL_POWER_NONE; k <= HAL_POWER_INA3221X_IIO; k++) {
        assert_int_equal(hal_power_source_parse(hal_power_source_name(k), &src), HAL_OK);
        assert_int_equal(src, k);
    }
    assert_int_equal(hal_power_source_parse("ina219", &src), HAL_EINVAL);
    for (int s = HAL_ESTATE; s <= HAL_OK; s++)
        assert_string_not_equal(hal_strerror(s), "unknown hal status");
    assert_string_equal(hal_strerror(-99), "unknown hal status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thermal_reads_each_board),
        cmocka_unit_test(thermal_errors_are_statuses),
        cmocka_unit_test(thermal_open_checks),
        cmocka_unit_test(throttle_pi4_flags_set),
        cmocka_unit_test(throttle_pi5_path_and_driver_fallback),
        cmocka_unit_test(throttle_absent_and_malformed),
        cmocka_unit_test(throttle_values_parse_strictly),
        cmocka_unit_test(power_orin_hwmon_rails),
        cmocka_unit_test(power_nano_iio_rails),
        cmocka_unit_test(power_absent_and_malformed),
        cmocka_unit_test(power_negative_current_rounds_away_from_zero),
        cmocka_unit_test(names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
