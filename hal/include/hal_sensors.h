/*
 * hal_sensors: thermal, throttle and power, read from sysfs.
 *
 * Overview
 *   thermal   millidegrees C from /sys/class/thermal/thermal_zone<N>/temp.
 *   throttle  the Raspberry Pi firmware's get_throttled word (the kernel's
 *             raspberrypi-firmware driver prints it as bare hex, e.g. "50005\n"):
 *             bits 0-3 now, bits 16-19 since boot, for under-voltage, ARM frequency
 *             capped, throttled and soft temperature limit. Read from the board's path
 *             (Pi 4: /sys/devices/platform/soc/soc:firmware/get_throttled), else from
 *             /sys/bus/platform/drivers/raspberrypi-firmware/<device>/get_throttled.
 *   power     INA3221 rails in mV and mA, and their product in mW. Two layouts:
 *               ina3221-hwmon  mainline driver (Jetson Orin, JetPack 5/6):
 *                              /sys/class/hwmon/hwmon<K>/ with name "ina3221",
 *                              in<C>_input (mV), curr<C>_input (mA), in<C>_label
 *                              (or curr<C>_label), channels 1..3
 *               ina3221x-iio   L4T's IIO driver (Jetson Nano, L4T 32):
 *                              /sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:device<K>/
 *                              in_voltage<C>_input (mV), in_current<C>_input (mA),
 *                              rail_name_<C>, channels 0..2
 *
 *   Each class has two backends with one const ops table each. The linux backend
 *   reads the real /sys; the sim backend reads the same paths below a root directory
 *   a test fills (tests/hal/fixtures/<board>/ mirror real boards). Both run the same
 *   parser, so a fixture exercises the code a board runs.
 *
 * Usage:
 *
 *     struct hal_thermal th;
 *     int32_t mc;
 *     hal_thermal_open(&th, &hal_thermal_linux_ops, NULL, 0);
 *     hal_status s = hal_thermal_read(&th, &mc);  // 48686 = 48.686 C
 *
 *     struct hal_power pw;
 *     struct hal_power_reading r;
 *     unsigned vdd_in;
 *     hal_power_open(&pw, &hal_power_sim_ops, "tests/hal/fixtures/jetson-orin-nano",
 *                    HAL_POWER_INA3221_HWMON);
 *     hal_power_find(&pw, "VDD_IN", &vdd_in);
 *     hal_power_read(&pw, vdd_in, &r);             // r.mv, r.ma, r.mw
 *
 * Errors (all readers)
 *   HAL_ENOENT  the file is not there (sensor absent, driver not loaded)
 *   HAL_EIO     the kernel refused the read (sensor present but failing)
 *   HAL_EPARSE  empty, not a number, trailing junk, longer than any real value
 *   HAL_ERANGE  a number, but one the sensor cannot produce (overflow, -300 C)
 *   On error, output parameters are not written.
 *
 * Ownership
 *   `root` (sim) is copied into the device; the linux ops ignore it.
 */
#ifndef HAL_SENSORS_H
#define HAL_SENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_status.h"

#define HAL_PATH_MAX 256

/* ---- thermal -------------------------------------------------------------------------- */

/* Plausible range of a thermal zone: anything outside is a sensor error, not a
 * temperature (some drivers report -40 C or 125 C at their rails; those pass). */
#define HAL_THERMAL_MIN_MC (-60000)
#define HAL_THERMAL_MAX_MC 200000

struct hal_thermal;
struct hal_thermal_ops {
    const char *name;
    hal_status (*read_mc)(const struct hal_thermal *t, int32_t *mc);
};

struct hal_thermal {
    const struct hal_thermal_ops *ops;
    char root[HAL_PATH_MAX];   /* "" for linux */
    unsigned zone;
};

extern const struct hal_thermal_ops hal_thermal_linux_ops;
extern const struct hal_thermal_ops hal_thermal_sim_ops;

/* Bind zone `zone`. Does not touch the file system: a missing zone shows on read.
 * Returns HAL_OK, HAL_EINVAL (NULL t/ops, sim without root, zone > 255),
 * HAL_ENAMETOOLONG (root). */
hal_status hal_thermal_open(struct hal_thermal *t, const struct hal_thermal_ops *ops,
                            const char *root, unsigned zone);

/* Temperature in millidegrees C. Returns HAL_OK or a reader error (see top). */
hal_status hal_thermal_read(const struct hal_thermal *t, int32_t *mc);

/* ---- throttle ------------------------------------------------------------------------- */

struct hal_throttle_bits {
    bool under_voltage;      /* bit 0 / 16 */
    bool freq_capped;        /* bit 1 / 17: ARM frequency capped */
    bool throttled;          /* bit 2 / 18 */
    bool soft_temp_limit;    /* bit 3 / 19: soft temperature limit active */
};

struct hal_throttle_state {
    uint32_t raw;                      /* the whole word, unknown bits included */
    struct hal_throttle_bits now;
    struct hal_throttle_bits since_boot;
};

struct hal_throttle;
struct hal_throttle_ops {
    const char *name;
    hal_status (*read)(const struct hal_throttle *t, struct hal_throttle_state *st);
};

struct hal_throttle {
    const struct hal_throttle_ops *ops;
    char root[HAL_PATH_MAX];
    char path[HAL_PATH_MAX];   /* board's get_throttled path, "" for none */
    bool enabled;
};

extern const struct hal_throttle_ops hal_throttle_linux_ops;
extern const struct hal_throttle_ops hal_throttle_sim_ops;

/* Bind the board's path (absolute, under /sys). NULL or "" means the board has no
 * firmware flags: reads return HAL_ENOTSUP. Returns HAL_OK, HAL_EINVAL (path not
 * under /sys, NULL ops, sim without root), HAL_ENAMETOOLONG. */
hal_status hal_throttle_open(struct hal_throttle *t, const struct hal_throttle_ops *ops,
                             const char *root, const char *path);

/* Read and decode the flags: the board path first, then any device bound to the
 * raspberrypi-firmware driver. Returns HAL_OK, HAL_ENOTSUP (board has none),
 * HAL_ENOENT (neither file exists) or a reader error. */
hal_status hal_throttle_read(const struct hal_throttle *t, struct hal_throttle_state *st);

/* Pure decoder, for values from elsewhere (vcgencmd, MQTT). */
void hal_throttle_decode(uint32_t raw, struct hal_throttle_state *st);

/* ---- power ---------------------------------------------------------------------------- */

enum hal_power_source {
    HAL_POWER_NONE = 0,
    HAL_POWER_INA3221_HWMON,   /* "ina3221-hwmon" */
    HAL_POWER_INA3221X_IIO,    /* "ina3221x-iio" */
};

#define HAL_POWER_MAX_RAILS 8
#define HAL_POWER_LABEL_MAX 32

struct hal_power_reading {
    int32_t mv;   /* bus voltage, millivolts */
    int32_t ma;   /* current, milliamps (signed: the INA3221 measures both ways) */
    int32_t mw;   /* mv * ma / 1000, rounded to nearest, half away from zero */
};

struct hal_power_rail {
    char label[HAL_POWER_LABEL_MAX];
    char dir[HAL_PATH_MAX];    /* directory holding the channel's files, without root */
    unsigned channel;          /* as numbered by the driver */
};

struct hal_power;
struct hal_power_ops {
    const char *name;
    hal_status (*scan)(struct hal_power *p);
    hal_status (*read)(const struct hal_power *p, unsigned rail,
                       struct hal_power_reading *r);
};

struct hal_power {
    const struct hal_power_ops *ops;
    char root[HAL_PATH_MAX];
    enum hal_power_source source;
    unsigned nrails;
    struct hal_power_rail rails[HAL_POWER_MAX_RAILS];
};

extern const struct hal_power_ops hal_power_linux_ops;
extern const struct hal_power_ops hal_power_sim_ops;

/*
 * Find the rails of `source`: every channel with a label, on every matching device,
 * in directory order. HAL_POWER_NONE opens with no rails.
 * Returns HAL_OK; HAL_EINVAL; HAL_ENOENT (no device of that kind); HAL_EPARSE (a label
 * file is empty or too long); HAL_ENOSPC (more than HAL_POWER_MAX_RAILS channels);
 * HAL_ENAMETOOLONG.
 */
hal_status hal_power_open(struct hal_power *p, const struct hal_power_ops *ops,
                          const char *root, enum hal_power_source source);

/* Number of rails found, and the label of rail i (NULL when out of range). */
unsigned hal_power_rail_count(const struct hal_power *p);
const char *hal_power_rail_label(const struct hal_power *p, unsigned i);

/* Index of the rail labelled `label`. HAL_OK, HAL_EINVAL, HAL_ENOENT. */
hal_status hal_power_find(const struct hal_power *p, const char *label, unsigned *i);

/* Read rail i: both files must read, or nothing is reported.
 * Returns HAL_OK, HAL_EINVAL (i out of range) or a reader error. */
hal_status hal_power_read(const struct hal_power *p, unsigned i, struct hal_power_reading *r);

/* "none", "ina3221-hwmon", "ina3221x-iio" and back (HAL_OK or HAL_EINVAL). */
hal_status hal_power_source_parse(const char *name, enum hal_power_source *src);
const char *hal_power_source_name(enum hal_power_source src);

#endif
