TEST_SCRIPTS += $(wildcard tests/tools/*.sh)
