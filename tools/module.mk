# tools: host programs (kvmesh-convert, kvmesh-eval, ...). Each has a directory here.

# kvmesh-kv: the peer layer from the command line (tools/kv/: main.c dispatches, one file
# per group of subcommands).
PROGS += kvmesh-kv
kvmesh-kv_SRCS   := $(wildcard tools/kv/*.c)
kvmesh-kv_LIBS   := mqtt
kvmesh-kv_LDLIBS := $(call pc_libs,libmosquitto libzstd) $(MBEDTLS_LIBS)
