/* Frame codec, sealing, key separation, nonce counter persistence and replay window. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt.h"

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";

static mqtt_frame_hdr sample(void)
{
    mqtt_frame_hdr h;
    memset(&h, 0, sizeof h);
    h.version = MQTT_FRAME_VERSION;
    h.type = MQTT_FT_KV_CACHE;
    strcpy(h.sender, "pi4-a");
    for (int i = 0; i < 32; i++) {
        h.model.fingerprint[i] = (uint8_t)i;
        h.prefix[i] = (uint8_t)(0xA0 + i);
        h.digest[i] = (uint8_t)(0x50 + i);
    }
    h.model.numerics = 7;
    h.layer_begin = 0; h.layer_end = 6;
    h.pos_begin = 0; h.pos_end = 512;
    h.codec = 3;
    h.chunk_size = 4096;
    h.total_len = 10000;
    h.chunk_count = 3;
    h.chunk_index = 2;
    h.body_len = 10000 - 8192;
    h.seq = 0x1122334455667788ull;
    h.xfer = 99;
    return h;
}

static void test_roundtrip_little_endian(void **st)
{
    (void)st;
    mqtt_frame_hdr h = sample(), g;
    uint8_t buf[MQTT_FRAME_HDR_SIZE + 1808 + MQTT_TAG_SIZE];
    memset(buf, 0xEE, sizeof buf);
    assert_int_equal(mqtt_frame_encode(&h, buf, sizeof buf), MQTT_OK);
    /* Spot-check the byte layout: magic, sender padding, seq little-endian. */
    assert_memory_equal(buf, "KVMF", 4);
    assert_int_equal(buf[8], 'p');
    assert_int_equal(buf[13], 0);
    assert_int_equal(buf[39], 0);
    assert_int_equal(buf[140], 0x88);
    assert_int_equal(buf[147], 0x11);
    const uint8_t *body, *tag;
    assert_int_equal(mqtt_frame_decode(buf, sizeof buf, &g, &body, &tag), MQTT_OK);
    assert_memory_equal(&h, &g, sizeof h);
    assert_ptr_equal(body, buf + MQTT_FRAME_HDR_SIZE);
    assert_ptr_equal(tag, buf + MQTT_FRAME_HDR_SIZE + 1808);
}

static int decode_modified(mqtt_frame_hdr h, size_t len_delta)
{
    uint8_t buf[MQTT_FRAME_HDR_SIZE + 70000];
    mqtt_frame_hdr ok = sample();
    assert_int_equal(mqtt_frame_encode(&ok, buf, sizeof buf), MQTT_OK);
    /* Overwrite the encoded fields of interest by hand, bypassing encode's checks. */
    buf[5] = h.type;
    buf[6] = h.cipher;
    buf[7] = h.flags;
    for (int i = 0; i < 4; i++) {
        buf[132 + i] = (uint8_t)(h.chunk_count >> (8 * i));
        buf[128 + i] = (uint8_t)(h.chunk_index >> (8 * i));
        buf[136 + i] = (uint8_t)(h.chunk_size >> (8 * i));
        buf[196 + i] = (uint8_t)(h.body_len >> (8 * i));
    }
    for (int i = 0; i < 8; i++) buf[156 + i] = (uint8_t)(h.total_len >> (8 * i));
    mqtt_frame_hdr g;
    return mqtt_frame_decode(buf, MQTT_FRAME_HDR_SIZE + h.body_len + MQTT_TAG_SIZE + len_delta, &g,
                             NULL, NULL);
}

static void test_decode_rejects(void **st)
{
    (void)st;
    mqtt_frame_hdr h = sample();
    assert_int_equal(decode_modified(h, 0), MQTT_OK);
    assert_int_equal(decode_modified(h, 1), MQTT_ERR_TRUNCATED);
    assert_int_equal(decode_modified(h, (size_t)-1), MQTT_ERR_TRUNCATED);
    h = sample(); h.chunk_count = 4;                     /* a lying count */
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_COUNT);
    h = sample(); h.chunk_index = 3;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_COUNT);
    h = sample(); h.total_len = (uint64_t)MQTT_MAX_CHUNKS * 4096 + 1;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_OVERSIZE);
    h = sample(); h.type = 0;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_MALFORMED);
    h = sample(); h.cipher = 2;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_MALFORMED);
    h = sample(); h.flags = 0x80;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_MALFORMED);
    h = sample(); h.chunk_size = 512;
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_MALFORMED);
    h = sample(); h.body_len = 1000;                     /* truncated chunk body */
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_TRUNCATED);
    h = sample(); h.flags = MQTT_FLAG_ZSTD; h.body_len = 1808; /* "compressed" but not smaller */
    assert_int_equal(decode_modified(h, 0), MQTT_ERR_TRUNCATED);
    h = sample(); h.body_len = 0xFFFFFFF0u;              /* length that would overflow */
    uint8_t small[300] = {0};
    mqtt_frame_hdr ok = sample(), g;
    assert_int_equal(mqtt_frame_encode(&ok, small, sizeof small), MQTT_OK);
    memset(small + 196, 0xFF, 4);
    assert_int_equal(mqtt_frame_decode(small, sizeof small, &g, NULL, NULL), MQTT_ERR_TRUNCATED);
    /* Short buffers and foreign data. */
    assert_int_equal(mqtt_frame_decode(small, 10, &g, NULL, NULL), MQTT_ERR_TRUNCATED);
    assert_int_equal(mqtt_frame_decode((const uint8_t *)"hello world", 11, &g, NULL, NULL), MQTT_ERR_MAGIC);
    small[4] = 2;
    assert_int_equal(mqtt_frame_decode(small, sizeof small, &g, NULL, NULL), MQTT_ERR_VERSION);
    /* Sender must be NUL-padded and valid. */
    assert_int_equal(mqtt_frame_encode(&ok, small, sizeof small), MQTT_OK);
    small[20] = 'x';
    assert_int_equal(mqtt_frame_decode(small, MQTT_FRAME_HDR_SIZE + 1808 + 16, &g, NULL, NULL), MQTT_ERR_MALFORMED);
}

static void seal_open(int cipher)
{
    mqtt_keys k, other;
    assert_int_equal(mqtt_keys_init(&k, secret, sizeof secret, "lab"), MQTT_OK);
    assert_int_equal(mqtt_keys_init(&other, secret, sizeof secret, "elsewhere"), MQTT_OK);
    mqtt_frame_hdr h = sample();
    h.cipher = (uint8_t)cipher;
    uint8_t plain[1808], back[1808];
    for (size_t i = 0; i < sizeof plain; i++) plain[i] = (uint8_t)(i * 7);
    uint8_t frame[MQTT_FRAME_HDR_SIZE + sizeof plain + MQTT_TAG_SIZE];
    size_t n;
    assert_int_equal(mqtt_seal(&k, &h, plain, sizeof plain, frame, sizeof frame, &n), MQTT_OK);
    assert_int_equal(n, sizeof frame);
    assert_null(memmem(frame, n, plain + 100, 32)); /* no plaintext on the wire */
    mqtt_frame_hdr g;
    assert_int_equal(mqtt_frame_decode(frame, n, &g, NULL, NULL), MQTT_OK);
    assert_int_equal(mqtt_open(&k, &g, frame, back, sizeof back), MQTT_OK);
    assert_memory_equal(plain, back, sizeof plain);
    /* Another fleet's keys fail. */
    assert_int_equal(mqtt_open(&other, &g, frame, back, sizeof back), MQTT_ERR_AUTH);
    /* Any header byte, body byte or tag byte flipped fails. */
    size_t spots[] = { 9, 50, 80, 130, 145, 170, MQTT_FRAME_HDR_SIZE, MQTT_FRAME_HDR_SIZE + 900, n - 1 };
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        frame[spots[i]] ^= 0x04;
        int rc = mqtt_frame_decode(frame, n, &g, NULL, NULL);
        if (rc == MQTT_OK) rc = mqtt_open(&k, &g, frame, back, sizeof back);
        assert_int_not_equal(rc, MQTT_OK);
        frame[spots[i]] ^= 0x04;
    }
    /* Same body opened as another type (purpose) fails: keys are separated. */
    frame[5] = MQTT_FT_HIDDEN;
    assert_int_equal(mqtt_frame_decode(frame, n, &g, NULL, NULL), MQTT_OK);
    assert_int_equal(mqtt_open(&k, &g, frame, back, sizeof back), MQTT_ERR_AUTH);
}

static void test_seal_chachapoly(void **st) { (void)st; seal_open(MQTT_CIPHER_CHACHAPOLY); }
static void test_seal_aesgcm(void **st) { (void)st; seal_open(MQTT_CIPHER_AES256GCM); }

static void test_key_separation(void **st)
{
    (void)st;
    mqtt_keys k;
    mqtt_keys_init(&k, secret, sizeof secret, "lab");
    uint8_t a[32], b[32], c[32], d[32];
    assert_int_equal(mqtt_keys_derive(&k, MQTT_PURPOSE_KV, 0, "n1", a), MQTT_OK);
    assert_int_equal(mqtt_keys_derive(&k, MQTT_PURPOSE_CMD, 0, "n1", b), MQTT_OK);
    assert_int_equal(mqtt_keys_derive(&k, MQTT_PURPOSE_KV, 1, "n1", c), MQTT_OK);
    assert_int_equal(mqtt_keys_derive(&k, MQTT_PURPOSE_KV, 0, "n2", d), MQTT_OK);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    assert_memory_not_equal(a, d, 32);
    uint8_t a2[32];
    mqtt_keys_derive(&k, MQTT_PURPOSE_KV, 0, "n1", a2);
    assert_memory_equal(a, a2, 32);
    assert_int_equal(mqtt_keys_derive(&k, MQTT_PURPOSE_KV, 0, "bad/id", a2), MQTT_ERR_INVAL);
    assert_int_equal(mqtt_keys_init(&k, secret, 8, "lab"), MQTT_ERR_INVAL);
    uint8_t n1[12], n2[12];
    mqtt_nonce_build("n1", 5, n1);
    mqtt_nonce_build("n2", 5, n2);
    assert_memory_not_equal(n1, n2, 4);
    assert_memory_equal(n1 + 4, n2 + 4, 8);
    assert_int_equal(n1[4], 5);
}

static void test_seqfile_never_reuses(void **st)
{
    (void)st;
    char dir[] = "/tmp/kvmesh-seq.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/nonce", dir);
    mqtt_seqfile f;
    assert_int_equal(mqtt_seqfile_open(&f, path), MQTT_OK);
    uint64_t last = 0;
    for (int run = 0; run < 3; run++) { /* three "restarts" */
        mqtt_seq s;
        assert_int_equal(mqtt_seq_init(&s, mqtt_seqfile_reserve, &f), MQTT_OK);
        uint64_t v;
        for (int i = 0; i < 10; i++) {
            assert_int_equal(mqtt_seq_next(&s, &v), MQTT_OK);
            if (run || i) assert_true(v > last);
            last = v;
        }
    }
    assert_true(last >= 2u * MQTT_SEQ_WINDOW);
    /* A damaged store is an error, never a silent restart at 0. */
    FILE *fp = fopen(path, "w");
    fputs("zz", fp);
    fclose(fp);
    mqtt_seq s;
    mqtt_seq_init(&s, mqtt_seqfile_reserve, &f);
    uint64_t v;
    assert_int_equal(mqtt_seq_next(&s, &v), MQTT_ERR_IO);
    unlink(path);
    rmdir(dir);
    /* Random base: below 2^62, monotone within a run. */
    mqtt_seq r;
    mqtt_seq_init(&r, mqtt_seq_reserve_random, NULL);
    uint64_t a, b;
    assert_int_equal(mqtt_seq_next(&r, &a), MQTT_OK);
    assert_int_equal(mqtt_seq_next(&r, &b), MQTT_OK);
    assert_true(a < (1ull << 62));
    assert_int_equal(b, a + 1);
}

static void test_replay_window(void **st)
{
    (void)st;
    mqtt_replay w;
    mqtt_replay_reset(&w);
    assert_int_equal(mqtt_replay_check(&w, 100), MQTT_OK);
    mqtt_replay_mark(&w, 100);
    assert_int_equal(mqtt_replay_check(&w, 100), MQTT_ERR_REPLAY);
    assert_int_equal(mqtt_replay_check(&w, 99), MQTT_OK);       /* reordered, new */
    mqtt_replay_mark(&w, 99);
    assert_int_equal(mqtt_replay_check(&w, 99), MQTT_ERR_REPLAY);
    mqtt_replay_mark(&w, 300);
    assert_int_equal(mqtt_replay_check(&w, 100), MQTT_ERR_REPLAY); /* still remembered */
    assert_int_equal(mqtt_replay_check(&w, 101), MQTT_OK);
    mqtt_replay_mark(&w, 100 + MQTT_REPLAY_BITS + 5);
    assert_int_equal(mqtt_replay_check(&w, 101), MQTT_ERR_REPLAY); /* too old now */
    assert_int_equal(mqtt_replay_check(&w, 300), MQTT_ERR_REPLAY);
    assert_int_equal(mqtt_replay_check(&w, 301), MQTT_OK);
    /* Shifts by amounts that cross word boundaries keep the right bits. */
    mqtt_replay_reset(&w);
    for (uint64_t s = 1000; s < 1200; s += 3) mqtt_replay_mark(&w, s);
    for (uint64_t s = 1000; s < 1200; s++)
        assert_int_equal(mqtt_replay_check(&w, s), (s - 1000) % 3 == 0 ? MQTT_ERR_REPLAY : MQTT_OK);
}

static void test_strerror(void **st)
{
    (void)st;
    for (int s = 0; s >= -30; s--) assert_non_null(mqtt_strerror(s));
    assert_string_equal(mqtt_strerror(12345), "unknown status");
    assert_string_equal(mqtt_drop_reason_name(MQTT_DROP_REPLAY), "replay");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_little_endian),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_seal_chachapoly),
        cmocka_unit_test(test_seal_aesgcm),
        cmocka_unit_test(test_key_separation),
        cmocka_unit_test(test_seqfile_never_reuses),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
