# mqtt tests: unit (codec, sealing, chunking, topics) as cmocka programs; broker
# integration, CLI and fuzzing as shell scripts that start their own mosquitto on
# 127.0.0.1 (see tests/mqtt/lib/broker.sh).
$(call add_cmocka_tests,mqtt,$(wildcard tests/mqtt/test_*.c),$(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS),)

# Test-only helper program (tamper frames, payload marking, a black-hole port, a load-test
# node). Built with the suite, never installed, never run on its own by tests/run.sh.
MQTT_HELPER := $(TESTDIR)/helpers/mqtt_helper
MQTT_HELPER_SRCS := $(wildcard tests/mqtt/helpers/*.c)
$(MQTT_HELPER): $(MQTT_HELPER_SRCS) tests/mqtt/helpers/helper.h $(LIBDIR)/libmqtt.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) -Imqtt/include -Itests/mqtt/helpers $(call pc_cflags,libmosquitto libzstd) \
	    -o $@ $(MQTT_HELPER_SRCS) $(LIBDIR)/libmqtt.a $(LDFLAGS_ALL) \
	    $(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS)
	@echo "  LD      $@"
tests-build: $(MQTT_HELPER)

TEST_SCRIPTS += $(sort $(wildcard tests/mqtt/*.sh))
