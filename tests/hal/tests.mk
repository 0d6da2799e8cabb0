# hal tests: cmocka programs (tests/hal/test_*.c) and shell tests (tests/hal/*.sh).
# All link libgpiod (libhal.a's linux backend needs it); the linux backend test wraps
# every libgpiod call it makes, so nothing reaches a real GPIO chip.
$(call add_cmocka_tests,hal,$(wildcard tests/hal/test_*.c),$(HAL_LDLIBS),)

# Fixture trees are found by absolute path, so a test binary runs from anywhere
# (and under qemu-user, which shares the host's file system).
$(foreach t,$(filter hal_test_%,$(TESTS)),\
  $(eval $(t)_CFLAGS += -DHAL_FIXTURES='"$(CURDIR)/tests/hal/fixtures"'))

TEST_SCRIPTS += $(wildcard tests/hal/*.sh)
