$(call add_cmocka_tests,,$(wildcard tests/tools/test_*.c),,)
TEST_SCRIPTS += $(wildcard tests/tools/*.sh)
