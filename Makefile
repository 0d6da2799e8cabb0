# kvmesh: one entry point for building, testing, cross-building, benchmarks and packages.
#
#   make                       host build into build/host/
#   make BOARD=rpi4            aarch64 cross build with the board's CPU flags
#   make test                  host suite (-Werror), then the same suite under ASan+UBSan
#   make test BOARD=rpi4       cross-built suite run under qemu-aarch64 with the board's CPU
#   make help                  this text, and the list of boards
#
# Each module (nn, mqtt, hal) and program directory contributes a fragment (module.mk)
# that appends to LIBS, PROGS and TESTS; the templates below turn those into rules.

BOARD ?= host
SAN   ?=
V     ?= 0

BOARD_FILE := boards/$(BOARD).board
ifeq ($(wildcard $(BOARD_FILE)),)
$(error unknown BOARD '$(BOARD)' (no $(BOARD_FILE)); known boards: $(sort $(basename $(notdir $(wildcard boards/*.board)))))
endif
include $(BOARD_FILE)

HOST_ARCH := $(shell uname -m)
ifeq ($(BOARD_ARCH),native)
  TARGET_ARCH_NAME := $(HOST_ARCH)
  CROSS :=
else
  TARGET_ARCH_NAME := $(BOARD_ARCH)
  ifeq ($(BOARD_ARCH),$(HOST_ARCH))
    CROSS :=
  else
    CROSS := $(BOARD_ARCH)-linux-gnu-
    export PKG_CONFIG_LIBDIR := /usr/lib/$(BOARD_ARCH)-linux-gnu/pkgconfig:/usr/share/pkgconfig
  endif
endif

# How test programs are run: natively, or under qemu-user with the board's CPU model so
# that an instruction the board lacks kills the test. The loader and libc come from
# Debian's multiarch libc6:<arch> (-L /), not from the cross toolchain's copy in
# /usr/<arch>-linux-gnu: the two glibc builds differ, and a cross ld.so with the
# multiarch libc.so hangs in pthread_create.
ifneq ($(CROSS),)
  TEST_RUNNER := qemu-$(BOARD_ARCH) -L / $(if $(BOARD_QEMU_CPU),-cpu $(BOARD_QEMU_CPU))
else
  TEST_RUNNER :=
endif

CC      := $(CROSS)gcc
AR      := $(CROSS)ar
NM      := $(CROSS)nm
PKG_CONFIG ?= pkg-config

BUILD   := build/$(BOARD)$(if $(SAN),-$(SAN))
OBJDIR  := $(BUILD)/obj
LIBDIR  := $(BUILD)/lib
BINDIR  := $(BUILD)/bin
TESTDIR := $(BUILD)/tests
GENDIR  := $(BUILD)/gen

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CSTD    := -std=c11 -D_GNU_SOURCE
OPT     ?= -O2
CFLAGS_ALL := $(CSTD) $(OPT) -g $(WARN) $(BOARD_CFLAGS) -fno-strict-aliasing -pthread \
              -I$(GENDIR) $(EXTRA_CFLAGS)
LDFLAGS_ALL := -pthread $(EXTRA_LDFLAGS)

ifeq ($(SAN),asan)
  CFLAGS_ALL  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDFLAGS_ALL += -fsanitize=address,undefined
endif

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

# Third-party libraries, found through pkg-config (mbedTLS 2.28 ships no .pc file).
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs   = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)
MBEDTLS_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto

# $(call write_if_changed,FILE,LINE): at parse time, makes FILE hold LINE, rewriting it
# only when it differs, so what depends on FILE rebuilds only on a real change (the
# version header, the libgpiod 2.x headers' stamp). LINE must not contain a single quote.
write_if_changed = $(shell mkdir -p $(dir $(1)) && \
    { printf '%s\n' '$(2)' | cmp -s - $(1) || printf '%s\n' '$(2)' >$(1); })

LIBS  :=
PROGS :=
TESTS :=
TEST_SCRIPTS :=

all: build-all

include nn/module.mk
include mqtt/module.mk
include hal/module.mk
include firmware/module.mk
include tools/module.mk
include tests/module.mk

# ---- templates -----------------------------------------------------------------------

# $(1): path of a .c file  ->  its object in $(OBJDIR)
obj_of = $(patsubst %.c,$(OBJDIR)/%.o,$(1))

# A library's public headers: <module>/include, unless $(lib)_INC says otherwise.
inc_of = -I$(or $($(1)_INC),$(1)/include)

# Library: $(1)_SRCS, $(1)_CFLAGS, $(1)_DEPS (libraries whose headers it uses)
#   ->  $(LIBDIR)/lib$(1).a
define lib_template
$(1)_OBJS := $$(call obj_of,$$($(1)_SRCS))
$$($(1)_OBJS): EXTRA_OBJ_CFLAGS := $$(call inc_of,$(1)) $$(foreach d,$$($(1)_DEPS),$$(call inc_of,$$(d))) $$($(1)_CFLAGS)
$(LIBDIR)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	@rm -f $$@
	$(Q)$(AR) rcs $$@ $$^
	@echo "  AR      $$@"
ALL_OBJS += $$($(1)_OBJS)
endef

# Program: $(1)_SRCS, $(1)_LIBS (module names, link order), $(1)_LDLIBS, $(1)_CFLAGS,
# $(1)_DIR (bin or tests). Each linked library adds its own <lib>_LDLIBS.
define prog_template
$(1)_OBJS := $$(call obj_of,$$($(1)_SRCS))
$$($(1)_OBJS): EXTRA_OBJ_CFLAGS := $$(foreach l,$$($(1)_LIBS),$$(call inc_of,$$(l))) $$($(1)_CFLAGS)
$$($(1)_DIR)/$(1): $$($(1)_OBJS) $$(foreach l,$$($(1)_LIBS),$(LIBDIR)/lib$$(l).a)
	@mkdir -p $$(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) $$($(1)_LDFLAGS) -o $$@ $$($(1)_OBJS) \
	    $$(foreach l,$$($(1)_LIBS),$(LIBDIR)/lib$$(l).a) $$($(1)_LDLIBS) \
	    $$(foreach l,$$($(1)_LIBS),$$($$(l)_LDLIBS)) -lm
	@echo "  LD      $$@"
ALL_OBJS += $$($(1)_OBJS)
endef

$(foreach l,$(LIBS),$(eval $(call lib_template,$(l))))
$(foreach p,$(PROGS),$(eval $(p)_DIR := $(BINDIR)))
$(foreach p,$(PROGS),$(eval $(call prog_template,$(p))))
$(foreach t,$(TESTS),$(eval $(t)_DIR := $(TESTDIR)))
$(foreach t,$(TESTS),$(eval $(call prog_template,$(t))))

$(OBJDIR)/%.o: %.c $(GEN_HEADERS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) $(EXTRA_OBJ_CFLAGS) -MMD -MP -c -o $@ $<
	@echo "  CC      $<"

-include $(ALL_OBJS:.o=.d)

LIB_FILES  := $(foreach l,$(LIBS),$(LIBDIR)/lib$(l).a)
PROG_FILES := $(foreach p,$(PROGS),$(BINDIR)/$(p))
TEST_FILES := $(foreach t,$(TESTS),$(TESTDIR)/$(t))

# ---- user-facing targets -----------------------------------------------------------

.PHONY: all build-all tests-build test test-run test-asan clean help boards

build-all: $(LIB_FILES) $(PROG_FILES)

tests-build: build-all $(TEST_FILES)

# The suite: every test program and script, with a closing "N passed, N failed" line.
test-run: tests-build
	$(Q)KVMESH_BUILD=$(BUILD) KVMESH_BOARD=$(BOARD) KVMESH_TEST_RUNNER="$(TEST_RUNNER)" \
	    KVMESH_TARGET_ARCH=$(TARGET_ARCH_NAME) \
	    tests/run.sh $(TEST_FILES) $(TEST_SCRIPTS)

ifeq ($(SAN)$(CROSS),)
# Host: the plain suite, then one more run with ASan+UBSan in build/<board>-asan.
test: test-run
	$(Q)$(MAKE) --no-print-directory SAN=asan OPT=-O1 test-run
else
test: test-run
endif

clean:
	rm -rf build

boards:
	@echo $(sort $(basename $(notdir $(wildcard boards/*.board))))

help:
	@sed -n '2,9p' Makefile | sed 's/^# \{0,1\}//'
	@echo "boards: $(sort $(basename $(notdir $(wildcard boards/*.board))))"

# The README's test command: the host suite (plain and sanitized) and the cross suites
# under qemu for an armv8-a board (Pi 4: no dotprod) and an armv8.2-a+dotprod board (Pi 5).
CHECK_BOARDS ?= rpi4 rpi5
.PHONY: check
# Builds run in parallel (one job per CPU); the tests themselves run one at a time.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check:
	$(Q)$(MAKE) --no-print-directory -j$(CHECK_JOBS) test
	$(Q)for b in $(CHECK_BOARDS); do $(MAKE) --no-print-directory -j$(CHECK_JOBS) test BOARD=$$b || exit 1; done
