$(call add_cmocka_tests,nn,$(wildcard tests/nn/test_*.c),,)
TEST_SCRIPTS += $(wildcard tests/nn/*.sh)
