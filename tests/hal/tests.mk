# hal tests: cmocka programs (tests/hal/test_*.c) and shell tests (tests/hal/*.sh).
#
# test_gpio_linux_v<N>.c tests the linux backend for libgpiod API N, with every libgpiod
# call it makes wrapped at link time, so nothing reaches a real GPIO chip:
#   v1  when this build uses the 1.x API (HAL_GPIOD_API, from hal/module.mk): it links
#       libhal.a, whose linux backend is then gpio_linux_v1.c.
#   v2  always, on every board (see below): the 2.x backend is compiled for the test
#       against 2.x headers and linked with the rest of hal, without any libgpiod.
HAL_TESTS := $(filter-out tests/hal/test_gpio_linux_v%.c,$(wildcard tests/hal/test_*.c)) \
             $(filter-out tests/hal/test_gpio_linux_v2.c,\
                          $(wildcard tests/hal/test_gpio_linux_v$(HAL_GPIOD_API).c))
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

# ---- the libgpiod 2.x backend, run with its calls wrapped (test_gpio_linux_v2) --------
#
# Debian 12 has libgpiod 1.6 and no 2.x library, so this test links none: hal's 2.x
# backend is compiled into an object of its own against the 2.x headers (the ones
# tools/setup.sh unpacks from bookworm-backports into GPIOD2_DIR, or the system's when
# pkg-config already reports 2.x), then linked with the test, hal's other objects (not
# libhal.a, whose linux backend may be v1) and nothing else. Every 2.x function the
# backend calls must be in HAL_GPIOD2_WRAPPED and have a __wrap_ in the test, or the
# link fails on an undefined gpiod_ symbol: an unwrapped call cannot reach a library.
#
# gpiod.h is plain C with no per-architecture content, and nothing architecture-specific
# is used from the package, so the same header serves cross builds: the test is built
# with the target's compiler and runs under qemu like the rest of the suite (its first
# test prints the architecture it was built for). When the headers are missing the
# test is still built, as one failing test that names the fix: it never skips.
GPIOD2_DIR ?= /opt/kvmesh/libgpiod2
ifneq ($(filter 2.%,$(HAL_GPIOD_VERSION)),)
  HAL_GPIOD2_CFLAGS  := $(call pc_cflags,libgpiod)
  HAL_GPIOD2_VERSION := $(HAL_GPIOD_VERSION)
else
  HAL_GPIOD2_CFLAGS  := -I$(GPIOD2_DIR)/usr/include
  HAL_GPIOD2_PC      := $(firstword $(wildcard $(GPIOD2_DIR)/usr/lib/*/pkgconfig/libgpiod.pc))
  HAL_GPIOD2_VERSION := $(strip $(if $(wildcard $(GPIOD2_DIR)/usr/include/gpiod.h),\
                          $(if $(HAL_GPIOD2_PC),$(shell sed -n 's/^Version: *//p' $(HAL_GPIOD2_PC)))))
endif

HAL_GPIOD2_WRAPPED := gpiod_chip_open gpiod_chip_close gpiod_chip_get_info \
    gpiod_chip_info_get_label gpiod_chip_info_free gpiod_chip_get_line_offset_from_name \
    gpiod_line_settings_new gpiod_line_settings_free gpiod_line_settings_set_direction \
    gpiod_line_settings_set_output_value gpiod_line_settings_set_edge_detection \
    gpiod_line_settings_set_bias gpiod_line_settings_set_active_low \
    gpiod_line_config_new gpiod_line_config_free gpiod_line_config_add_line_settings \
    gpiod_request_config_new gpiod_request_config_free gpiod_request_config_set_consumer \
    gpiod_edge_event_buffer_new gpiod_edge_event_buffer_free \
    gpiod_edge_event_buffer_get_event gpiod_edge_event_get_event_type \
    gpiod_edge_event_get_timestamp_ns gpiod_chip_request_lines gpiod_line_request_release \
    gpiod_line_request_set_value gpiod_line_request_get_value \
    gpiod_line_request_wait_edge_events gpiod_line_request_read_edge_events \
    gpiod_line_request_get_fd

# The test's object and the backend's are rebuilt when the headers it found change
# (running tools/setup.sh after a failed run, or another GPIOD2_DIR): the stamp holds
# what was found, and is rewritten only when that differs.
HAL_GPIOD2_STAMP := $(OBJDIR)/tests/hal/gpiod2/headers
HAL_GPIOD2_FOUND := $(HAL_GPIOD2_CFLAGS) version=$(or $(HAL_GPIOD2_VERSION),missing)
ifneq ($(filter-out clean help boards,$(or $(MAKECMDGOALS),all)),)
  $(call write_if_changed,$(HAL_GPIOD2_STAMP),$(HAL_GPIOD2_FOUND))
endif
$(OBJDIR)/tests/hal/test_gpio_linux_v2.o: $(HAL_GPIOD2_STAMP)

ifneq ($(filter 2.%,$(HAL_GPIOD2_VERSION)),)
  HAL_GPIOD2_OBJ := $(OBJDIR)/tests/hal/gpiod2/gpio_linux_v2.o
  # hal without its linux backend: the sources hal/module.mk builds, minus gpio_linux_v*.
  HAL_GPIOD2_LINK := $(HAL_GPIOD2_OBJ) \
      $(patsubst %.c,$(OBJDIR)/%.o,$(filter-out hal/src/gpio_linux_v%.c,$(hal_SRCS)))
  $(call add_cmocka_tests,,tests/hal/test_gpio_linux_v2.c,$(HAL_GPIOD2_LINK),)
  hal_test_gpio_linux_v2_CFLAGS += -Ihal/include $(HAL_GPIOD2_CFLAGS) \
      -DHAL_GPIOD2_VERSION='"$(HAL_GPIOD2_VERSION)"'
  hal_test_gpio_linux_v2_LDFLAGS := $(foreach f,$(HAL_GPIOD2_WRAPPED),-Wl,--wrap=$(f))
  # Relink when the wrap list changes.
  $(TESTDIR)/hal_test_gpio_linux_v2: $(HAL_GPIOD2_LINK) tests/hal/tests.mk
  ALL_OBJS += $(HAL_GPIOD2_OBJ)

  $(HAL_GPIOD2_OBJ): hal/src/gpio_linux_v2.c $(GEN_HEADERS) $(HAL_GPIOD2_STAMP)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) -Ihal/include $(HAL_GPIOD2_CFLAGS) -MMD -MP -c -o $@ $<
	@echo "  CC      $< (libgpiod $(HAL_GPIOD2_VERSION) headers, for the v2 test)"
else
  $(call add_cmocka_tests,,tests/hal/test_gpio_linux_v2.c,,)
  hal_test_gpio_linux_v2_CFLAGS += \
      -DHAL_GPIOD2_MISSING='"looked for $(GPIOD2_DIR)/usr/include/gpiod.h and a 2.x libgpiod.pc under $(GPIOD2_DIR)/usr/lib"'
endif

# For tests/hal/gpiod2-build.sh: compile the libgpiod 2.x backend with the target's
# compiler and flags against the 2.x headers that tools/setup.sh unpacks.
export HAL_TEST_CC := $(CC)
export HAL_TEST_NM := $(NM)
export HAL_TEST_CFLAGS := $(CSTD) $(OPT) $(WARN) $(BOARD_CFLAGS) -I$(CURDIR)/hal/include -I$(CURDIR)/$(GENDIR)
export HAL_GPIOD2_DIR := $(GPIOD2_DIR)
