# hal tests: cmocka programs (tests/hal/test_*.c) and shell tests (tests/hal/*.sh).
#
# test_gpio_linux_v<N>.c tests the linux backend for the libgpiod API this build uses
# (HAL_GPIOD_API, from hal/module.mk), with every libgpiod call it makes wrapped at
# link time, so nothing reaches a real GPIO chip.
HAL_TESTS := $(filter-out tests/hal/test_gpio_linux_v%.c,$(wildcard tests/hal/test_*.c)) \
             $(wildcard tests/hal/test_gpio_linux_v$(HAL_GPIOD_API).c)
$(call add_cmocka_tests,hal,$(HAL_TESTS),,)

# Fixture trees are found by absolute path, so a test binary runs from anywhere
# (and under qemu-user, which shares the host's file system).
$(foreach t,$(filter hal_test_%,$(TESTS)),\
  $(eval $(t)_CFLAGS += -DHAL_FIXTURES='"$(CURDIR)/tests/hal/fixtures"'))

HAL_GPIOD1_WRAPPED := gpiod_chip_open gpiod_chip_close gpiod_chip_label \
    gpiod_chip_get_line gpiod_chip_find_line gpiod_line_request gpiod_line_offset \
    gpiod_line_release gpiod_line_set_value gpiod_line_get_value gpiod_line_event_wait \
    gpiod_line_event_read gpiod_line_event_get_fd
hal_test_gpio_linux_v1_LDFLAGS := $(foreach f,$(HAL_GPIOD1_WRAPPED),-Wl,--wrap=$(f))

TEST_SCRIPTS += $(wildcard tests/hal/*.sh)

# For tests/hal/gpiod2-build.sh: compile the libgpiod 2.x backend with the target's
# compiler and flags against the 2.x headers that tools/setup.sh unpacks.
GPIOD2_DIR ?= /opt/kvmesh/libgpiod2
export HAL_TEST_CC := $(CC)
export HAL_TEST_NM := $(NM)
export HAL_TEST_CFLAGS := $(CSTD) $(OPT) $(WARN) $(BOARD_CFLAGS) -I$(CURDIR)/hal/include -I$(CURDIR)/$(GENDIR)
export HAL_GPIOD2_DIR := $(GPIOD2_DIR)
