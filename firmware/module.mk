# firmware: the device program `kvmesh`.
PROGS += kvmesh
kvmesh_SRCS   := $(wildcard firmware/*.c)
kvmesh_LIBS   := nn
kvmesh_LDLIBS :=
