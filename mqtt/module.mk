# mqtt: the peer layer. Frames, sealing, chunking, topics (pure core, mqtt.h) and the
# libmosquitto session with the cache directory service (mqtt_session.h).
# Depends on libmosquitto, mbedTLS 2.28 and zstd only; never on nn.
LIBS += mqtt
mqtt_SRCS   := $(wildcard mqtt/src/*.c)
mqtt_CFLAGS := $(call pc_cflags,libmosquitto libzstd)
