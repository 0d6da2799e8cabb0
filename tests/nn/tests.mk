# nn tests link the tools library too (to build images from the shared models).
$(call add_cmocka_tests,kvtools fwjson nn,$(wildcard tests/nn/test_*.c),-lm,tests/lib/testutil.c)
TEST_SCRIPTS += $(wildcard tests/nn/*.sh)
# test_pool exercises nn's private worker pool directly.
nn_test_pool_CFLAGS += -Inn/src
nn_test_tokenizer_CFLAGS += -Inn/src
