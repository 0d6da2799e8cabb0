/* Chunking and reassembly: tx -> rx with interleaved transfers, bounded slots, stall
 * timeout, lies about geometry, wrong model, replay, compression, digest mismatch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

#define CHUNK 4096u
static const uint8_t secret[32] = "fleet secret for reassembly test";

typedef struct {
    mqtt_keys keys;
    mqtt_seq seq;
    mqtt_tx tx;
    mqtt_rx rx;
    uint8_t *pool[2];
    size_t caps[2];
    int delivered, released;
    int last_release_reason;
    uint8_t *got;
    size_t got_len;
    mqtt_model_id model;
} fx;

static void on_deliver(void *u, const mqtt_frame_hdr *h, const uint8_t *p, size_t n)
{
    fx *f = u;
    (void)h;
    f->delivered++;
    free(f->got);
    f->got = malloc(n ? n : 1);
    memcpy(f->got, p, n);
    f->got_len = n;
}

static void on_release(void *u, const mqtt_frame_hdr *h, uint8_t *buf, int reason)
{
    fx *f = u;
    (void)h;
    (void)buf;
    f->released++;
    f->last_release_reason = reason;
}

static int setup(void **st)
{
    fx *f = calloc(1, sizeof *f);
    mqtt_keys_init(&f->keys, secret, sizeof secret, "lab");
    mqtt_seq_init(&f->seq, mqtt_seq_reserve_random, NULL);
    memset(f->model.fingerprint, 0x33, 32);
    f->model.numerics = 1;
    mqtt_tx_cfg tc = { .keys = &f->keys, .seq = &f->seq, .sender = "tx-node", .chunk_size = CHUNK };
    assert_int_equal(mqtt_tx_init(&f->tx, &tc), MQTT_OK);
    f->caps[0] = 64 * 1024;
    f->caps[1] = 256 * 1024;
    f->pool[0] = malloc(f->caps[0]);
    f->pool[1] = malloc(f->caps[1]);
    mqtt_rx_cfg rc = { .keys = &f->keys, .model = &f->model, .timeout_ms = 1000,
                       .max_transfers = 2, .max_peers = 4, .pool = f->pool,
                       .pool_caps = f->caps, .pool_count = 2, .small_max = 512,
                       .deliver = on_deliver, .release = on_release, .user = f };
    assert_int_equal(mqtt_rx_init(&f->rx, &rc), MQTT_OK);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    mqtt_tx_free(&f->tx);
    mqtt_rx_free(&f->rx);
    free(f->pool[0]);
    free(f->pool[1]);
    free(f->got);
    free(f);
    return 0;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void begin(fx *f, mqtt_tx_xfer *x, const uint8_t *p, size_t n)
{
    mqtt_frame_hdr t = { .type = MQTT_FT_KV_CACHE, .model = f->model, .codec = 9 };
    memset(t.prefix, 0x44, 32);
    assert_int_equal(mqtt_tx_begin(&f->tx, x, &t, p, n), MQTT_OK);
}

static int send_chunk(fx *f, mqtt_tx_xfer *x, uint32_t i, uint64_t now)
{
    static uint8_t frame[MQTT_FRAME_HDR_SIZE + CHUNK + MQTT_TAG_SIZE];
    size_t n;
    assert_int_equal(mqtt_tx_chunk(&f->tx, x, i, frame, sizeof frame, &n), MQTT_OK);
    return mqtt_rx_input(&f->rx, now, frame, n);
}

static void test_sizes_roundtrip(void **st)
{
    fx *f = *st;
    size_t sizes[] = { 0, 1, 511, 512, 513, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200000 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *p = pattern(sizes[k], (unsigned)k);
        mqtt_tx_xfer x;
        begin(f, &x, p, sizes[k]);
        int before = f->delivered;
        /* Out of order: odd chunks first. */
        for (uint32_t i = 1; i < x.hdr.chunk_count; i += 2) assert_int_equal(send_chunk(f, &x, i, 1), MQTT_OK);
        for (uint32_t i = 0; i < x.hdr.chunk_count; i += 2) assert_int_equal(send_chunk(f, &x, i, 1), MQTT_OK);
        assert_int_equal(f->delivered, before + 1);
        assert_int_equal(f->got_len, sizes[k]);
        if (sizes[k]) assert_memory_equal(f->got, p, sizes[k]);
        free(p);
    }
    assert_int_equal(mqtt_rx_drops_total(&f->rx), 0);
    assert_int_equal(mqtt_rx_active(&f->rx), 0);
}

static void test_interleaved_and_bounded(void **st)
{
    fx *f = *st;
    uint8_t *a = pattern(50000, 1), *b = pattern(60000, 2), *c = pattern(20000, 3);
    mqtt_tx_xfer xa, xb, xc;
    begin(f, &xa, a, 50000);
    begin(f, &xb, b, 60000);
    begin(f, &xc, c, 20000);
    assert_int_equal(send_chunk(f, &xa, 0, 10), MQTT_OK);
    assert_int_equal(send_chunk(f, &xb, 0, 10), MQTT_OK);
    /* Two slots: a third transfer is refused and counted, nothing delivered. */
    assert_int_equal(send_chunk(f, &xc, 0, 10), MQTT_ERR_BUSY);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_BUSY], 1);
    for (uint32_t i = 1; i < xa.hdr.chunk_count; i++) {
        send_chunk(f, &xa, i, 11);
        if (i < xb.hdr.chunk_count) send_chunk(f, &xb, i, 11);
    }
    for (uint32_t i = xa.hdr.chunk_count; i < xb.hdr.chunk_count; i++) send_chunk(f, &xb, i, 12);
    assert_int_equal(f->delivered, 2);
    assert_memory_equal(f->got, b, 60000);
    /* Now the slot is free again for c. */
    for (uint32_t i = 0; i < xc.hdr.chunk_count; i++) assert_int_equal(send_chunk(f, &xc, i, 13), MQTT_OK);
    assert_int_equal(f->delivered, 3);
    assert_memory_equal(f->got, c, 20000);
    free(a); free(b); free(c);
}

static void test_stall_frees_buffer(void **st)
{
    fx *f = *st;
    uint8_t *a = pattern(40000, 4);
    mqtt_tx_xfer x;
    begin(f, &x, a, 40000);
    send_chunk(f, &x, 0, 100);
    send_chunk(f, &x, 1, 500);
    assert_int_equal(mqtt_rx_active(&f->rx), 1);
    uint8_t bm[MQTT_MAX_CHUNKS / 8];
    assert_int_equal(mqtt_rx_missing(&f->rx, "tx-node", x.hdr.xfer, bm, sizeof bm * 8),
                     (int)x.hdr.chunk_count - 2);
    assert_int_equal(bm[0], 0xFC);
    assert_int_equal(mqtt_rx_tick(&f->rx, 1400), 0);   /* 900 ms since progress */
    assert_int_equal(mqtt_rx_tick(&f->rx, 1500), 1);   /* 1000 ms: abandoned */
    assert_int_equal(mqtt_rx_active(&f->rx), 0);
    assert_int_equal(f->released, 1);
    assert_int_equal(f->last_release_reason, MQTT_DROP_STALLED);
    /* What was placed (chunks 0 and 1 of the smallest fitting buffer) is wiped. */
    for (size_t i = 0; i < 2 * CHUNK; i++) assert_int_equal(f->pool[0][i], 0);
    /* Late chunks start a new transfer; it never completes from them alone. */
    for (uint32_t i = 2; i < x.hdr.chunk_count; i++) send_chunk(f, &x, i, 1600);
    assert_int_equal(f->delivered, 0);
    assert_int_equal(mqtt_rx_abandon_sender(&f->rx, "tx-node"), 1);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_PEER_GONE], 1);
    /* Both pool buffers are usable again. */
    uint8_t *b = pattern(100000, 5);
    mqtt_tx_xfer y;
    begin(f, &y, b, 100000);
    for (uint32_t i = 0; i < y.hdr.chunk_count; i++) send_chunk(f, &y, i, 1700);
    assert_int_equal(f->delivered, 1);
    assert_memory_equal(f->got, b, 100000);
    free(a); free(b);
}

static void test_replay_and_oversize_and_model(void **st)
{
    fx *f = *st;
    uint8_t *a = pattern(10000, 6);
    mqtt_tx_xfer x;
    begin(f, &x, a, 10000);
    uint8_t frame[MQTT_FRAME_HDR_SIZE + CHUNK + MQTT_TAG_SIZE];
    size_t n;
    mqtt_tx_chunk(&f->tx, &x, 0, frame, sizeof frame, &n);
    assert_int_equal(mqtt_rx_input(&f->rx, 1, frame, n), MQTT_OK);
    assert_int_equal(mqtt_rx_input(&f->rx, 1, frame, n), MQTT_ERR_REPLAY);
    /* A resealed copy of a chunk already held is a duplicate too. */
    assert_int_equal(send_chunk(f, &x, 0, 1), MQTT_ERR_REPLAY);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_REPLAY], 2);
    send_chunk(f, &x, 1, 1);
    send_chunk(f, &x, 2, 1);
    assert_int_equal(f->delivered, 1);
    /* After completion the old frame is still a replay (window), not a new transfer. */
    assert_int_equal(mqtt_rx_input(&f->rx, 1, frame, n), MQTT_ERR_REPLAY);
    /* Larger than any pool buffer. */
    uint8_t *big = pattern(300000, 7);
    mqtt_tx_xfer y;
    begin(f, &y, big, 300000);
    assert_int_equal(send_chunk(f, &y, 0, 2), MQTT_ERR_OVERSIZE);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_OVERSIZE], 1);
    /* Another model. */
    mqtt_frame_hdr t = { .type = MQTT_FT_KV_CACHE, .model = f->model };
    t.model.numerics = 2;
    mqtt_tx_xfer z;
    assert_int_equal(mqtt_tx_begin(&f->tx, &z, &t, a, 10000), MQTT_OK);
    assert_int_equal(send_chunk(f, &z, 0, 3), MQTT_ERR_MODEL);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_MODEL], 1);
    assert_int_equal(f->delivered, 1);
    /* An announcement is retained state: the same frame again is delivered again. */
    mqtt_frame_hdr at = { .type = MQTT_FT_KV_ANNOUNCE, .model = f->model };
    mqtt_tx_xfer ax;
    assert_int_equal(mqtt_tx_begin(&f->tx, &ax, &at, a, 48), MQTT_OK);
    mqtt_tx_chunk(&f->tx, &ax, 0, frame, sizeof frame, &n);
    /* Move the sender's window far past the announcement's counter with small frames. */
    mqtt_frame_hdr pt = { .type = MQTT_FT_PROMPT };
    for (uint64_t s = 0; s < 2 * MQTT_REPLAY_BITS; s++) {
        mqtt_tx_xfer px;
        mqtt_tx_begin(&f->tx, &px, &pt, a, 10);
        assert_int_equal(send_chunk(f, &px, 0, 4), MQTT_OK);
    }
    int before = f->delivered;
    assert_int_equal(mqtt_rx_input(&f->rx, 5, frame, n), MQTT_OK);
    assert_int_equal(mqtt_rx_input(&f->rx, 5, frame, n), MQTT_OK);
    assert_int_equal(f->delivered, before + 2);
    free(a); free(big);
}

static void test_lies_and_digest(void **st)
{
    fx *f = *st;
    uint8_t *a = pattern(10000, 8);
    mqtt_tx_xfer x;
    begin(f, &x, a, 10000);
    /* The sender lies about the digest: everything authenticates, delivery is refused. */
    x.hdr.digest[0] ^= 1;
    for (uint32_t i = 0; i < x.hdr.chunk_count; i++) send_chunk(f, &x, i, 1);
    assert_int_equal(f->delivered, 0);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_DIGEST], 1);
    assert_int_equal(mqtt_rx_active(&f->rx), 0);
    /* Inconsistent chunk: same transfer id, different total. */
    mqtt_tx_xfer y, y2;
    begin(f, &y, a, 10000);
    y2 = y;
    uint8_t *b = pattern(9000, 9);
    begin(f, &y2, b, 9000);
    y2.hdr.xfer = y.hdr.xfer;
    send_chunk(f, &y, 0, 1);
    assert_int_equal(send_chunk(f, &y2, 1, 1), MQTT_ERR_INCONSISTENT);
    assert_int_equal(f->rx.stats.drops[MQTT_DROP_INCONSISTENT], 1);
    free(a); free(b);
}

static void test_compression(void **st)
{
    fx *f = *st;
    mqtt_tx ztx;
    mqtt_tx_cfg tc = { .keys = &f->keys, .seq = &f->seq, .sender = "ztx", .chunk_size = CHUNK,
                       .cipher = MQTT_CIPHER_AES256GCM, .zstd_level = 3 };
    assert_int_equal(mqtt_tx_init(&ztx, &tc), MQTT_OK);
    /* Half compressible, half random: both kinds of chunk travel. */
    size_t n = 40000;
    uint8_t *p = pattern(n, 10);
    memset(p, 'a', n / 2);
    mqtt_frame_hdr t = { .type = MQTT_FT_PROMPT };
    mqtt_tx_xfer x;
    assert_int_equal(mqtt_tx_begin(&ztx, &x, &t, p, n), MQTT_OK);
    uint8_t frame[MQTT_FRAME_HDR_SIZE + CHUNK + MQTT_TAG_SIZE];
    int zchunks = 0;
    for (uint32_t i = 0; i < x.hdr.chunk_count; i++) {
        size_t len;
        assert_int_equal(mqtt_tx_chunk(&ztx, &x, i, frame, sizeof frame, &len), MQTT_OK);
        zchunks += (frame[7] & MQTT_FLAG_ZSTD) != 0;
        assert_int_equal(mqtt_rx_input(&f->rx, 1, frame, len), MQTT_OK);
    }
    assert_true(zchunks >= 4 && zchunks < (int)x.hdr.chunk_count);
    assert_int_equal(f->delivered, 1);
    assert_memory_equal(f->got, p, n);
    mqtt_tx_free(&ztx);
    free(p);
}

/* A receiver with an admit callback: the application lends the buffer per transfer. */
static uint8_t lend_buf[20000];
static int lends;
static bool admit_one(void *u, const mqtt_frame_hdr *h, uint8_t **buf, size_t *cap)
{
    (void)u;
    if (h->xfer != 4242) return false;
    lends++;
    *buf = lend_buf;
    *cap = sizeof lend_buf;
    return true;
}

static void test_admit_callback(void **st)
{
    fx *f = *st;
    mqtt_rx rx;
    mqtt_rx_cfg rc = { .keys = &f->keys, .timeout_ms = 1000, .max_transfers = 1, .max_peers = 1,
                       .admit = admit_one, .deliver = on_deliver, .release = on_release, .user = f };
    assert_int_equal(mqtt_rx_init(&rx, &rc), MQTT_OK);
    uint8_t *p = pattern(15000, 11);
    mqtt_frame_hdr t = { .type = MQTT_FT_HIDDEN, .xfer = 4242 };
    mqtt_tx_xfer x, y;
    assert_int_equal(mqtt_tx_begin(&f->tx, &x, &t, p, 15000), MQTT_OK);
    t.xfer = 1;
    assert_int_equal(mqtt_tx_begin(&f->tx, &y, &t, p, 15000), MQTT_OK);
    uint8_t frame[MQTT_FRAME_HDR_SIZE + CHUNK + MQTT_TAG_SIZE];
    size_t n;
    mqtt_tx_chunk(&f->tx, &y, 0, frame, sizeof frame, &n);
    assert_int_equal(mqtt_rx_input(&rx, 1, frame, n), MQTT_ERR_BUSY);
    assert_int_equal(rx.stats.drops[MQTT_DROP_DECLINED], 1);
    for (uint32_t i = 0; i < x.hdr.chunk_count; i++) {
        mqtt_tx_chunk(&f->tx, &x, i, frame, sizeof frame, &n);
        assert_int_equal(mqtt_rx_input(&rx, 1, frame, n), MQTT_OK);
    }
    assert_int_equal(lends, 1);
    assert_int_equal(f->delivered, 1);
    assert_memory_equal(f->got, p, 15000);
    /* A second sender does not fit the one-peer table. */
    mqtt_tx other;
    mqtt_tx_cfg tc = { .keys = &f->keys, .seq = &f->seq, .sender = "other", .chunk_size = CHUNK };
    mqtt_tx_init(&other, &tc);
    t.xfer = 4242;
    assert_int_equal(mqtt_tx_begin(&other, &x, &t, p, 100), MQTT_OK);
    mqtt_tx_chunk(&other, &x, 0, frame, sizeof frame, &n);
    assert_int_equal(mqtt_rx_input(&rx, 1, frame, n), MQTT_ERR_BUSY);
    assert_int_equal(rx.stats.drops[MQTT_DROP_PEERS], 1);
    mqtt_tx_free(&other);
    mqtt_rx_free(&rx);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sizes_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_frees_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_and_oversize_and_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lies_and_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
