/*
 * hal_board: the board this build is for, as data.
 *
 * The build turns boards/<board>.board into build/<board>/gen/kvmesh_board.h
 * (KVMESH_BOARD_* macros); hal_board() returns the same description as a const
 * struct, so firmware can configure itself without ever naming a board.
 *
 *     const struct hal_board *b = hal_board();
 *     hal_thermal_open(&th, &hal_thermal_linux_ops, NULL, b->thermal_zone);
 *     if (b->gpio_chip[0] && b->led_line[0]) { ...request the LED... }
 */
#ifndef HAL_BOARD_H
#define HAL_BOARD_H

#include <stdint.h>

#include "hal_status.h"
#include "hal_gpio.h"
#include "hal_sensors.h"

struct hal_board {
    const char *name;            /* "rpi4", ... */
    const char *arch;            /* "aarch64" or "native" */
    const char *cpu;             /* human-readable, e.g. "4x Cortex-A72 @ 1.5-1.8 GHz" */
    const char *cpu_features;    /* e.g. "armv8-a neon crc32" */
    const char *cflags;          /* compiler flags the build used */
    const char *qemu_cpu;        /* qemu -cpu model for the cross suite, "" for host */
    unsigned threads;            /* engine threads; 0 = every online CPU */
    uint64_t arena_bytes;        /* the engine's static arena */
    unsigned max_context;        /* tokens */
    const char *gpio_chip;       /* "" when the board has no GPIO */
    const char *led_line;        /* name or offset; "" for none */
    const char *button_line;     /* name or offset; "" for none */
    enum hal_button_role button_role;
    unsigned thermal_zone;
    int32_t thermal_soft_mc, thermal_hard_mc, thermal_hyst_mc;
    const char *throttle_path;   /* "" when the board has no firmware flags */
    enum hal_power_source power_source;
    unsigned n_power_rails;
    const char *const *power_rails;   /* n_power_rails labels */
};

/* The board this library was built for. Never NULL; static storage. */
const struct hal_board *hal_board(void);

#endif
