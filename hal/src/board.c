/* The board this build is for, from the generated kvmesh_board.h. */
#include <stddef.h>

#include "hal.h"
#include "kvmesh_board.h"

static const char *const power_rails[] = { KVMESH_BOARD_POWER_RAILS_INIT NULL };

static const struct hal_board board = {
    .name = KVMESH_BOARD_NAME,
    .arch = KVMESH_BOARD_ARCH,
    .cpu = KVMESH_BOARD_CPU,
    .cpu_features = KVMESH_BOARD_CPU_FEATURES,
    .cflags = KVMESH_BOARD_CFLAGS,
    .qemu_cpu = KVMESH_BOARD_QEMU_CPU,
    .threads = KVMESH_BOARD_THREADS,
    .arena_bytes = KVMESH_BOARD_ARENA_BYTES,
    .max_context = KVMESH_BOARD_MAX_CONTEXT,
    .gpio_chip = KVMESH_BOARD_GPIO_CHIP,
    .led_line = KVMESH_BOARD_LED_LINE,
    .button_line = KVMESH_BOARD_BUTTON_LINE,
#ifdef KVMESH_BOARD_BUTTON_TOGGLES_MODE
    .button_role = HAL_BUTTON_ROLE_TOGGLE_MODE,
#else
    .button_role = HAL_BUTTON_ROLE_RUN_PROMPT,
#endif
    .thermal_zone = KVMESH_BOARD_THERMAL_ZONE,
    .thermal_soft_mc = KVMESH_BOARD_THERMAL_SOFT_MC,
    .thermal_hard_mc = KVMESH_BOARD_THERMAL_HARD_MC,
    .thermal_hyst_mc = KVMESH_BOARD_THERMAL_HYST_MC,
    .throttle_path = KVMESH_BOARD_THROTTLE_PATH,
#if defined(KVMESH_BOARD_POWER_INA3221_HWMON)
    .power_source = HAL_POWER_INA3221_HWMON,
#elif defined(KVMESH_BOARD_POWER_INA3221X_IIO)
    .power_source = HAL_POWER_INA3221X_IIO,
#else
    .power_source = HAL_POWER_NONE,
#endif
    .n_power_rails = KVMESH_BOARD_POWER_RAIL_COUNT,
    .power_rails = power_rails,
};

_Static_assert(sizeof power_rails / sizeof power_rails[0] == KVMESH_BOARD_POWER_RAIL_COUNT + 1,
               "generated rail list and count disagree");

const struct hal_board *hal_board(void)
{
    return &board;
}
