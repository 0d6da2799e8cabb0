# tools: host programs. Shared code lives in tools/common (libkvtools.a); each program
# has a directory here.
LIBS += kvtools
kvtools_SRCS := $(wildcard tools/common/*.c)
kvtools_INC  := tools/common
kvtools_DEPS := nn fwjson

PROGS += kvmesh-convert
kvmesh-convert_SRCS := $(wildcard tools/convert/*.c)
kvmesh-convert_LIBS := kvtools fwjson nn

PROGS += kvmesh-eval
kvmesh-eval_SRCS := $(wildcard tools/eval/*.c)
kvmesh-eval_LIBS := kvtools fwjson nn

# kvmesh-kv: the peer layer from the command line (tools/kv/: main.c dispatches, one file
# per group of subcommands).
PROGS += kvmesh-kv
kvmesh-kv_SRCS   := $(wildcard tools/kv/*.c)
kvmesh-kv_LIBS   := kvtools fwjson nn mqtt
kvmesh-kv_LDLIBS := $(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS)

PROGS += kvmesh-exit-train
kvmesh-exit-train_SRCS := $(wildcard tools/exit/*.c)
kvmesh-exit-train_LIBS := kvtools fwjson nn

PROGS += kvmesh-linksim
kvmesh-linksim_SRCS := $(wildcard tools/linksim/*.c)

# kvmesh-monitor: the fleet live in a terminal, or a JSON snapshot. Reads metrics with
# the firmware's own JSON reader (fwjson), so the two agree on the format.
PROGS += kvmesh-monitor
kvmesh-monitor_SRCS   := $(wildcard tools/monitor/*.c)
kvmesh-monitor_LIBS   := fwjson mqtt
kvmesh-monitor_LDLIBS := $(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS)
