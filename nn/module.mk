# nn: the engine. libc only (zstd joins for the KV codec).
LIBS += nn
nn_SRCS   := $(wildcard nn/src/*.c)
nn_CFLAGS := $(call pc_cflags,libzstd)
# What a program linking libnn.a adds to its link line (the KV codec uses zstd).
nn_LDLIBS := $(call pc_libs,libzstd)
