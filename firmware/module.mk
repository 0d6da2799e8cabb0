# firmware: the device program `kvmesh`.
KVMESH_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
PROGS += kvmesh
kvmesh_SRCS   := $(wildcard firmware/*.c)
kvmesh_LIBS   := nn
kvmesh_LDLIBS :=
kvmesh_CFLAGS := -DKVMESH_VERSION='"$(KVMESH_VERSION)"'
