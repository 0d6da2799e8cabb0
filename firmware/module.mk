# firmware: the device program `kvmesh`. Everything but main.c is built as libfw.a, so
# the tests link the service's parts (config, JSON, store) without the program.
KVMESH_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# The version as a generated header, rewritten only when it changes: the files that print
# it depend on it (-MMD), so a new commit rebuilds them and nothing else. A -D flag
# would leave their objects stale (bench JSON and telemetry reported an old commit).
$(call write_if_changed,$(GENDIR)/kvmesh_version.h,#define KVMESH_VERSION "$(KVMESH_VERSION)")
#
# fwjson is the firmware's JSON reader/writer (libc only) on its own, so that the tools
# that read what the device writes (kvmesh-monitor, kvmesh-kv ask) use the same code.
LIBS += fwjson
fwjson_SRCS := firmware/json.c
fwjson_INC  := firmware

LIBS += fw
fw_SRCS   := $(filter-out firmware/main.c firmware/json.c,$(wildcard firmware/*.c))
fw_INC    := firmware
fw_DEPS   := nn mqtt hal
fw_CFLAGS := $(call pc_cflags,inih)
fw_LDLIBS := $(call pc_libs,inih libmosquitto libzstd) $(MBEDTLS_LIBS)

PROGS += kvmesh
kvmesh_SRCS   := firmware/main.c
kvmesh_LIBS   := fw fwjson nn mqtt hal
kvmesh_LDLIBS :=

# The Debian package for this board (arm64 for boards, amd64 for the host):
#   make BOARD=rpi4 deb   ->  build/rpi4/kvmesh_<version>_arm64.deb
DEB_VERSION ?= 0.8.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)+g$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)+$(subst -,.,$(BOARD))
.PHONY: deb demo
deb: build-all
	$(Q)sh packaging/mkdeb.sh $(BINDIR) $(BOARD) $(DEB_VERSION) $(BUILD)

# The demo: a local TLS broker, two nodes on stories260K, a shared prefix, the monitor.
demo: build-all
	$(Q)KVMESH_BUILD=$(BUILD) sh tools/demo.sh
