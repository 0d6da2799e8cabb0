# Test programs and scripts. Each module's tests live in tests/<module>/ with their own
# fragment (tests.mk), which calls add_cmocka_tests for its test_*.c files and appends
# shell tests to TEST_SCRIPTS.
CMOCKA_LIBS := $(call pc_libs,cmocka)

# $(call add_cmocka_tests,MODULE_LIBS,FILES,EXTRA_LDLIBS,EXTRA_SRCS)
# One test program per file: tests/<m>/test_foo.c -> build/<board>/tests/<m>_test_foo
define add_cmocka_test_one
TESTS += $(4)
$(4)_SRCS   := $(2) $(5)
$(4)_LIBS   := $(1)
$(4)_LDLIBS := $(3) $(CMOCKA_LIBS)
$(4)_CFLAGS := -Itests/lib
endef
add_cmocka_tests = $(foreach f,$(2),$(eval $(call add_cmocka_test_one,$(1),$(f),$(3),$(subst /,_,$(patsubst tests/%.c,%,$(f))),$(4))))

-include tests/nn/tests.mk
-include tests/mqtt/tests.mk
-include tests/hal/tests.mk
-include tests/firmware/tests.mk
-include tests/tools/tests.mk
