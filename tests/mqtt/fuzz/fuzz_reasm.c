/* libFuzzer: the receiver and reassembler as a state machine. The input is a program of
 * operations: start transfers, send (possibly corrupted, truncated, duplicated or
 * reordered) sealed chunks, inject raw bytes, advance the clock, abandon senders. The
 * invariant checked on every delivery: the bytes are exactly what the sender sent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NX 4
#define MAXP (48 * 1024)

typedef struct {
    mqtt_tx_xfer x;
    uint8_t payload[MAXP];
    size_t len;
    int live;
} xfer_t;

static xfer_t xs[NX];
static uint8_t pool0[MAXP], pool1[MAXP / 2];
static uint8_t frame[MQTT_FRAME_HDR_SIZE + 8192 + MQTT_TAG_SIZE], last[sizeof frame];
static size_t last_len;

static void on_deliver(void *u, const mqtt_frame_hdr *h, const uint8_t *p, size_t n)
{
    (void)u;
    for (int i = 0; i < NX; i++) {
        if (xs[i].live && xs[i].x.hdr.xfer == h->xfer && strcmp(xs[i].x.hdr.sender, h->sender) == 0) {
            if (n != xs[i].len || memcmp(p, xs[i].payload, n) != 0) __builtin_trap();
            return;
        }
    }
    /* Deliveries of transfers the program replaced are still checked by digest inside
     * rx; nothing else may be delivered. */
    if (n > 0 && h->total_len != n) __builtin_trap();
}

typedef struct {
    const uint8_t *p;
    size_t n;
} rd_t;

static unsigned take(rd_t *r, unsigned bytes)
{
    unsigned v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v = v << 8 | (r->n ? *r->p : 0);
        if (r->n) { r->p++; r->n--; }
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mqtt_keys keys, other;
    static mqtt_seq seq;
    static mqtt_tx tx[2];
    static int ready;
    if (!ready) {
        mqtt_keys_init(&keys, (const uint8_t *)"fuzzing fleet secret, 32 bytes!", 32, "lab");
        mqtt_keys_init(&other, (const uint8_t *)"another fleet, another key .....", 32, "lab");
        ready = 1;
    }
    mqtt_seq_init(&seq, mqtt_seq_reserve_random, NULL);
    for (int s = 0; s < 2; s++) {
        mqtt_tx_cfg tc = { .keys = s ? &other : &keys, .seq = &seq, .sender = s ? "mallory" : "alice",
                           .chunk_size = 1024u << (size ? data[0] % 3 : 0), .cipher = (uint8_t)(s & 1),
                           .zstd_level = size > 1 && (data[1] & 1) ? 1 : 0 };
        if (mqtt_tx_init(&tx[s], &tc)) return 0;
    }
    uint8_t *pool[2] = { pool0, pool1 };
    size_t caps[2] = { sizeof pool0, sizeof pool1 };
    mqtt_model_id model = { .numerics = 3 };
    mqtt_rx rx;
    mqtt_rx_cfg rc = { .keys = &keys, .model = &model, .max_total = MAXP, .timeout_ms = 500,
                       .max_transfers = 2, .max_peers = 2, .pool = pool, .pool_caps = caps, .pool_count = 2,
                       .small_max = 256, .deliver = on_deliver };
    if (mqtt_rx_init(&rx, &rc)) return 0;
    memset(xs, 0, sizeof xs);
    last_len = 0;
    uint64_t now = 1000;
    rd_t r = { data + (size > 2 ? 2 : size), size > 2 ? size - 2 : 0 };
    while (r.n) {
        unsigned op = take(&r, 1) % 7;
        xfer_t *x = &xs[take(&r, 1) % NX];
        switch (op) {
        case 0: { /* raw bytes as a frame */
            size_t n = take(&r, 2) % 2048;
            if (n > r.n) n = r.n;
            mqtt_rx_input(&rx, now, r.p, n);
            r.p += n; r.n -= n;
            break;
        }
        case 1: { /* start a transfer */
            unsigned s = take(&r, 1);
            x->len = take(&r, 2) * 3u % MAXP;
            for (size_t i = 0; i < x->len; i++) x->payload[i] = (uint8_t)(i * 31 + s);
            mqtt_frame_hdr t = { .type = (uint8_t)(1 + s % MQTT_FT_MAX_), .model = model };
            if (s & 0x80) t.model.numerics = 4;   /* another model */
            x->live = mqtt_tx_begin(&tx[(s >> 5) & 1], &x->x, &t, x->payload, x->len) == MQTT_OK;
            break;
        }
        case 2: case 3: { /* send a chunk, maybe corrupted or cut */
            if (!x->live) break;
            unsigned idx = take(&r, 2) % x->x.hdr.chunk_count, how = take(&r, 1), at = take(&r, 2);
            int s = strcmp(x->x.hdr.sender, "alice") != 0;
            size_t n;
            if (mqtt_tx_chunk(&tx[s], &x->x, idx, frame, sizeof frame, &n)) break;
            if (how & 1) frame[at % n] ^= (uint8_t)(how | 1);
            if (how & 2) n -= at % (n + 1);
            mqtt_rx_input(&rx, now, frame, n);
            memcpy(last, frame, n);
            last_len = n;
            break;
        }
        case 4: /* replay the last frame */
            if (last_len) mqtt_rx_input(&rx, now, last, last_len);
            break;
        case 5: /* time passes */
            now += take(&r, 1) * 10u;
            mqtt_rx_tick(&rx, now);
            break;
        case 6: /* a sender goes away */
            mqtt_rx_abandon_sender(&rx, take(&r, 1) & 1 ? "mallory" : "alice");
            break;
        }
    }
    /* Bookkeeping must balance: every slot is either active or free. */
    if (mqtt_rx_active(&rx) > 2) __builtin_trap();
    mqtt_rx_free(&rx);
    mqtt_tx_free(&tx[0]);
    mqtt_tx_free(&tx[1]);
    return 0;
}
