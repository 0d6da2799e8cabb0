# hal: board I/O (GPIO, thermal, throttle, power, governor). libc, libgpiod, sysfs.
#
# The libgpiod API is picked here: pkg-config's version of libgpiod for the target
# (PKG_CONFIG_LIBDIR points at the arm64 .pc files for cross builds) selects
# gpio_linux_v1.c (1.x) or gpio_linux_v2.c (2.x). Override with HAL_GPIOD_API=1|2.
LIBS += hal

HAL_GPIOD_VERSION := $(shell $(PKG_CONFIG) --modversion libgpiod 2>/dev/null)
ifeq ($(HAL_GPIOD_VERSION),)
  $(error hal: pkg-config finds no libgpiod for $(BOARD); install libgpiod-dev (tools/setup.sh))
endif
HAL_GPIOD_API ?= $(firstword $(subst ., ,$(HAL_GPIOD_VERSION)))
ifeq ($(filter 1 2,$(HAL_GPIOD_API)),)
  $(error hal: libgpiod $(HAL_GPIOD_VERSION) is neither 1.x nor 2.x)
endif

hal_SRCS   := $(filter-out hal/src/gpio_linux_v%.c,$(wildcard hal/src/*.c)) \
              hal/src/gpio_linux_v$(HAL_GPIOD_API).c
hal_CFLAGS := $(call pc_cflags,libgpiod)
# What a program linking libhal.a adds to its link line.
hal_LDLIBS := $(call pc_libs,libgpiod)

# The board description, as C. Every object depends on GEN_HEADERS (see Makefile).
GEN_HEADERS += $(GENDIR)/kvmesh_board.h
$(GENDIR)/kvmesh_board.h: $(BOARD_FILE) boards/gen-header.sh
	$(Q)sh boards/gen-header.sh $(BOARD_FILE) $@
	@echo "  GEN     $@"
