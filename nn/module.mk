# nn: the engine. libc only (zstd joins for the KV codec).
LIBS += nn
nn_SRCS   := $(wildcard nn/src/*.c)
nn_CFLAGS :=
