/* libFuzzer: the frame parser and every other decoder of untrusted bytes (directory
 * bodies, topics, hex). Whatever the input, decoding must not read out of bounds, and a
 * decoded header must re-encode to the same bytes. Opening with a fixed key exercises
 * the AEAD path on arbitrary lengths; it must fail unless the tag is right. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mqtt_keys keys;
    static int ready;
    if (!ready) {
        mqtt_keys_init(&keys, (const uint8_t *)"fuzzing fleet secret, 32 bytes!", 32, "lab");
        ready = 1;
    }
    /* Copy so that reads past size are caught by ASan rather than landing in slack. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    mqtt_frame_hdr h;
    const uint8_t *body = NULL, *tag = NULL;
    if (mqtt_frame_decode(buf, size, &h, &body, &tag) == MQTT_OK) {
        uint8_t again[MQTT_FRAME_HDR_SIZE];
        if (mqtt_frame_encode(&h, again, sizeof again) != MQTT_OK) __builtin_trap();
        if (memcmp(again, buf, MQTT_FRAME_HDR_SIZE) != 0) __builtin_trap();
        if (body != buf + MQTT_FRAME_HDR_SIZE || tag != body + h.body_len) __builtin_trap();
        uint8_t *out = malloc(h.body_len ? h.body_len : 1);
        int rc = mqtt_open(&keys, &h, buf, out, h.body_len);
        if (rc != MQTT_OK && rc != MQTT_ERR_AUTH) __builtin_trap();
        free(out);
        (void)mqtt_frame_chunk_plain_len(&h);
    }
    mqtt_announce a;
    mqtt_request r;
    mqtt_response s;
    if (mqtt_announce_decode(buf, size, &a) == MQTT_OK && !mqtt_node_id_valid(a.holder)) __builtin_trap();
    if (mqtt_request_decode(buf, size, &r) == MQTT_OK && r.bitmap_bits &&
        r.bitmap + (r.bitmap_bits + 7) / 8 > buf + size)
        __builtin_trap();
    (void)mqtt_response_decode(buf, size, &s);
    /* As a topic string. */
    char topic[600];
    size_t tl = size < sizeof topic - 1 ? size : sizeof topic - 1;
    memcpy(topic, data, tl);
    topic[tl] = '\0';
    mqtt_model_id m;
    uint8_t prefix[32];
    char node[32];
    int kind = mqtt_topic_parse("kvmesh/v1/lab", topic, &m, prefix, node, sizeof node);
    if (kind < MQTT_TOPIC_KV_ANNOUNCE || kind > MQTT_TOPIC_UNKNOWN) __builtin_trap();
    if (kind >= MQTT_TOPIC_REQ && kind != MQTT_TOPIC_UNKNOWN && !mqtt_node_id_valid(node)) __builtin_trap();
    uint8_t hx[16];
    (void)mqtt_hex_decode(topic, hx, sizeof hx);
    free(buf);
    return 0;
}
