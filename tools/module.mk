# tools: host programs. Shared code lives in tools/common (libkvtools.a).
LIBS += kvtools
kvtools_SRCS := $(wildcard tools/common/*.c)
kvtools_INC  := tools/common
kvtools_DEPS := nn

PROGS += kvmesh-convert
kvmesh-convert_SRCS := $(wildcard tools/convert/*.c)
kvmesh-convert_LIBS := kvtools nn

PROGS += kvmesh-eval
kvmesh-eval_SRCS := $(wildcard tools/eval/*.c)
kvmesh-eval_LIBS := kvtools nn
