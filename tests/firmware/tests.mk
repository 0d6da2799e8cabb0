# firmware tests: cmocka programs for the service's parts (tests/firmware/test_*.c, linked
# with libfw) and shell tests that run `kvmesh run` against a real mosquitto
# (tests/firmware/*.sh; see tests/firmware/lib.sh).
# The store test builds stories260K images in memory (tests/lib/testutil.c, kvtools).
$(call add_cmocka_tests,fw kvtools fwjson nn mqtt hal,$(wildcard tests/firmware/test_*.c),\
    $(call pc_libs,inih libmosquitto libzstd) $(MBEDTLS_LIBS) -lm,tests/lib/testutil.c)
$(foreach t,$(filter firmware_test_%,$(TESTS)),\
  $(eval $(t)_CFLAGS += -DFW_TOP='"$(CURDIR)"'))

# jsoncheck: the shell tests' JSON check, with the firmware's own strict reader.
FW_JSONCHECK := $(TESTDIR)/helpers/jsoncheck
$(FW_JSONCHECK): tests/firmware/helpers/jsoncheck.c $(LIBDIR)/libfwjson.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) -Ifirmware -o $@ $< $(LIBDIR)/libfwjson.a $(LDFLAGS_ALL)
	@echo "  LD      $@"
tests-build: $(FW_JSONCHECK)

# The demo runs the build's programs directly, so only where they run natively.
TEST_SCRIPTS += $(sort $(filter-out $(if $(CROSS),tests/firmware/demo.sh),$(wildcard tests/firmware/*.sh)))
