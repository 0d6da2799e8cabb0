/* Topic scheme and directory message bodies: build/parse round trips and strict rejects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mqtt.h"

static void test_topics(void **st)
{
    (void)st;
    char root[64], t[MQTT_TOPIC_MAX], node[32];
    assert_int_equal(mqtt_topic_root("lab", root, sizeof root), MQTT_OK);
    assert_string_equal(root, "kvmesh/v1/lab");
    assert_int_equal(mqtt_topic_root("a/b", root, sizeof root), MQTT_ERR_INVAL);
    mqtt_topic_root("lab", root, sizeof root);
    mqtt_model_id m, m2;
    memset(m.fingerprint, 0xAB, 32);
    m.numerics = 4000000000u;
    uint8_t p[32], p2[32];
    memset(p, 0x01, 32);
    assert_int_equal(mqtt_topic_build(root, MQTT_TOPIC_KV_DATA, &m, p, NULL, t, sizeof t), MQTT_OK);
    assert_int_equal(strlen(t), strlen("kvmesh/v1/lab/kv/") + 64 + 11 + 1 + 64 + 5);
    assert_int_equal(mqtt_topic_parse(root, t, &m2, p2, NULL, 0), MQTT_TOPIC_KV_DATA);
    assert_memory_equal(&m, &m2, sizeof m);
    assert_memory_equal(p, p2, 32);
    mqtt_topic_build(root, MQTT_TOPIC_KV_ANNOUNCE, &m, p, NULL, t, sizeof t);
    assert_int_equal(mqtt_topic_parse(root, t, &m2, p2, NULL, 0), MQTT_TOPIC_KV_ANNOUNCE);
    const int kinds[] = { MQTT_TOPIC_REQ, MQTT_TOPIC_RESP, MQTT_TOPIC_STATUS, MQTT_TOPIC_METRICS, MQTT_TOPIC_CMD };
    const char *want[] = { "kvmesh/v1/lab/req/pi-1", "kvmesh/v1/lab/resp/pi-1", "kvmesh/v1/lab/node/pi-1/status",
                           "kvmesh/v1/lab/node/pi-1/metrics", "kvmesh/v1/lab/node/pi-1/cmd" };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mqtt_topic_build(root, kinds[i], NULL, NULL, "pi-1", t, sizeof t), MQTT_OK);
        assert_string_equal(t, want[i]);
        assert_int_equal(mqtt_topic_parse(root, t, NULL, NULL, node, sizeof node), kinds[i]);
        assert_string_equal(node, "pi-1");
    }
    assert_int_equal(mqtt_topic_build(root, MQTT_TOPIC_REQ, NULL, NULL, "+", t, sizeof t), MQTT_ERR_INVAL);
    assert_int_equal(mqtt_topic_build(root, MQTT_TOPIC_REQ, NULL, NULL, "n", t, 10), MQTT_ERR_SPACE);
    assert_int_equal(mqtt_topic_build("bad/#", MQTT_TOPIC_REQ, NULL, NULL, "n", t, sizeof t), MQTT_ERR_INVAL);
    const char *bad[] = { "kvmesh/v1/lab", "kvmesh/v1/lab/", "kvmesh/v1/labx/req/a", "kvmesh/v1/lab/req/a/",
                          "kvmesh/v1/lab/req/a/b", "kvmesh/v1/lab/node/a/other", "kvmesh/v1/lab/kv/zz/yy",
                          "kvmesh/v1/lab/req/a+b", "other/req/a" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mqtt_topic_parse(root, bad[i], NULL, NULL, node, sizeof node), MQTT_TOPIC_UNKNOWN);
    assert_int_equal(mqtt_topic_shared("cloud", "kvmesh/v1/lab/req/pool", t, sizeof t), MQTT_OK);
    assert_string_equal(t, "$share/cloud/kvmesh/v1/lab/req/pool");
}

static void test_bodies(void **st)
{
    (void)st;
    uint8_t buf[MQTT_REQUEST_FIXED + 16];
    mqtt_announce a = { .size = 1ull << 33, .chunk_size = 262144 }, a2;
    strcpy(a.holder, "jetson-1");
    assert_int_equal(mqtt_announce_encode(&a, buf, sizeof buf), MQTT_OK);
    assert_int_equal(mqtt_announce_decode(buf, MQTT_ANNOUNCE_SIZE, &a2), MQTT_OK);
    assert_int_equal(a2.size, a.size);
    assert_int_equal(a2.chunk_size, a.chunk_size);
    assert_string_equal(a2.holder, a.holder);
    assert_int_equal(mqtt_announce_decode(buf, MQTT_ANNOUNCE_SIZE - 1, &a2), MQTT_ERR_TRUNCATED);
    buf[8 + 20] = 'x'; /* garbage after the holder's NUL */
    assert_int_equal(mqtt_announce_decode(buf, MQTT_ANNOUNCE_SIZE, &a2), MQTT_ERR_MALFORMED);

    uint8_t bm[2] = { 0x05, 0x01 };
    mqtt_request r = { .op = MQTT_REQ_FETCH, .xfer = 77, .expiry_s = 30, .bitmap_bits = 9, .bitmap = bm }, r2;
    strcpy(r.reply_to, "pi-2");
    size_t n;
    assert_int_equal(mqtt_request_encode(&r, buf, sizeof buf, &n), MQTT_OK);
    assert_int_equal(n, MQTT_REQUEST_FIXED + 2);
    assert_int_equal(mqtt_request_decode(buf, n, &r2), MQTT_OK);
    assert_int_equal(r2.xfer, 77);
    assert_int_equal(r2.bitmap_bits, 9);
    assert_memory_equal(r2.bitmap, bm, 2);
    assert_string_equal(r2.reply_to, "pi-2");
    assert_int_equal(mqtt_request_decode(buf, n - 1, &r2), MQTT_ERR_TRUNCATED);
    buf[48] = 0xFF; buf[49] = 0xFF; /* bitmap bits beyond the maximum */
    assert_int_equal(mqtt_request_decode(buf, n, &r2), MQTT_ERR_MALFORMED);

    mqtt_response s = { .status = MQTT_ERR_NOT_FOUND, .xfer = 5, .size = 9, .chunks = 1 }, s2;
    assert_int_equal(mqtt_response_encode(&s, buf, sizeof buf), MQTT_OK);
    assert_int_equal(mqtt_response_decode(buf, MQTT_RESPONSE_SIZE, &s2), MQTT_OK);
    assert_int_equal(s2.status, s.status);
    assert_int_equal(s2.xfer, s.xfer);
    assert_int_equal(s2.size, s.size);
    assert_int_equal(s2.chunks, s.chunks);
    buf[0] = 1; buf[1] = buf[2] = buf[3] = 0; /* positive status is not a status */
    assert_int_equal(mqtt_response_decode(buf, MQTT_RESPONSE_SIZE, &s2), MQTT_ERR_MALFORMED);
}

static void test_hex_and_ids(void **st)
{
    (void)st;
    uint8_t b[3];
    assert_int_equal(mqtt_hex_decode("a0FF01", b, 3), MQTT_OK);
    assert_int_equal(b[1], 0xFF);
    assert_int_equal(mqtt_hex_decode("a0FF0", b, 3), MQTT_ERR_INVAL);
    assert_int_equal(mqtt_hex_decode("a0FF0g", b, 3), MQTT_ERR_INVAL);
    assert_true(mqtt_node_id_valid("pi4_a-1"));
    assert_false(mqtt_node_id_valid(""));
    assert_false(mqtt_node_id_valid("a/b"));
    assert_false(mqtt_node_id_valid("0123456789012345678901234567890123"));
    assert_true(mqtt_node_id_valid("0123456789012345678901234567890"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_hex_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
