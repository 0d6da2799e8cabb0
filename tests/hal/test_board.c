/* hal_board() describes the board this build is for, exactly as its generated
 * header does, and the description is usable as-is. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hal.h"
#include "kvmesh_board.h"

static void matches_generated_header(void **state)
{
    (void)state;
    const struct hal_board *b = hal_board();
    assert_non_null(b);
    assert_string_equal(b->name, KVMESH_BOARD_NAME);
    assert_string_equal(b->qemu_cpu, KVMESH_BOARD_QEMU_CPU);
    assert_int_equal(b->threads, KVMESH_BOARD_THREADS);
    assert_true(b->arena_bytes == KVMESH_BOARD_ARENA_BYTES);
    assert_int_equal(b->max_context, KVMESH_BOARD_MAX_CONTEXT);
    assert_string_equal(b->gpio_chip, KVMESH_BOARD_GPIO_CHIP);
    assert_string_equal(b->led_line, KVMESH_BOARD_LED_LINE);
    assert_string_equal(b->button_line, KVMESH_BOARD_BUTTON_LINE);
    assert_string_equal(hal_button_role_name(b->button_role), KVMESH_BOARD_BUTTON_ROLE);
    assert_string_equal(hal_power_source_name(b->power_source), KVMESH_BOARD_POWER_SOURCE);
    assert_int_equal(b->n_power_rails, KVMESH_BOARD_POWER_RAIL_COUNT);
    assert_null(b->power_rails[b->n_power_rails]);
    assert_string_equal(b->throttle_path, KVMESH_BOARD_THROTTLE_PATH);
}

/* The description configures every device without naming the board. */
static void configures_the_devices(void **state)
{
    (void)state;
    const struct hal_board *b = hal_board();
    struct hal_governor g;
    struct hal_thermal t;
    struct hal_throttle th;
    assert_int_equal(hal_governor_init(&g, &(struct hal_governor_config){
        .soft_mc = b->thermal_soft_mc, .hard_mc = b->thermal_hard_mc,
        .hyst_mc = b->thermal_hyst_mc, .max_threads = b->threads ? b->threads : 1,
        .min_threads = 1, .step_ms = 5000 }, NULL, NULL), HAL_OK);
    assert_int_equal(hal_thermal_open(&t, &hal_thermal_linux_ops, NULL, b->thermal_zone), HAL_OK);
    assert_int_equal(hal_throttle_open(&th, &hal_throttle_linux_ops, NULL, b->throttle_path),
                     HAL_OK);
    assert_int_equal(th.enabled, b->throttle_path[0] != '\0');
    unsigned off;
    const char *name;
    if (b->gpio_chip[0] != '\0') {
        assert_int_equal(hal_gpio_parse_line(b->led_line, &off, &name), HAL_OK);
        assert_int_equal(hal_gpio_parse_line(b->button_line, &off, &name), HAL_OK);
    }
    assert_true(b->arena_bytes >= (64u << 20));
    assert_true(b->n_power_rails == 0 || b->power_source != HAL_POWER_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_generated_header),
        cmocka_unit_test(configures_the_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
