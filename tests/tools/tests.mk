TEST_SCRIPTS += $(wildcard tests/tools/*.sh)

# Test-only exporter (tests/tools/export): stories260K as a Hugging Face directory or a
# GGUF file, for the format round trips. Built with the suite, never installed.
EXPORT_HELPER := $(TESTDIR)/helpers/kvmesh_export
EXPORT_SRCS := $(wildcard tests/tools/export/*.c)
$(EXPORT_HELPER): $(EXPORT_SRCS) tests/tools/export/export.h $(LIBDIR)/libkvtools.a $(LIBDIR)/libfwjson.a $(LIBDIR)/libnn.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) -Inn/include -Itools/common -Itests/tools/export -o $@ $(EXPORT_SRCS) \
	    $(LIBDIR)/libkvtools.a $(LIBDIR)/libfwjson.a $(LIBDIR)/libnn.a $(LDFLAGS_ALL) -lm
	@echo "  LD      $@"
tests-build: $(EXPORT_HELPER)

# C tests of the format readers and tokenizers; they use the exporter's code directly.
$(call add_cmocka_tests,kvtools fwjson nn,$(wildcard tests/tools/test_*.c),-lm,tests/lib/testutil.c tests/tools/export/export.c)
tools_test_formats_CFLAGS += -Itests/tools/export
