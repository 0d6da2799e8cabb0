# mqtt tests: unit (codec, sealing, chunking, topics) as cmocka programs; broker
# integration, CLI and fuzzing as shell scripts that start their own mosquitto on
# 127.0.0.1 (see tests/mqtt/lib/broker.sh).
$(call add_cmocka_tests,mqtt,$(wildcard tests/mqtt/test_*.c),$(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS),)
