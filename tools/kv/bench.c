/* kvmesh-kv bench-seal: sealing cost on its own, without a broker. Prints JSON. */
#include <stdlib.h>
#include <string.h>

#include "kv.h"

static void deliver_nop(void *u, const mqtt_frame_hdr *h, const uint8_t *p, size_t n)
{
    (void)h; (void)p; (void)n;
    (*(int *)u)++;
}

/* Seals the payload as a transfer (sha256 + AEAD per chunk), then opens and reassembles
 * it; returns MB/s for both directions and for the AEAD alone. */
static int run(int cipher, const uint8_t *payload, size_t len, uint32_t chunk, int reps, double out[3])
{
    static const uint8_t secret[32] = "kvmesh bench-seal fixed secret!";
    mqtt_keys keys;
    mqtt_keys_init(&keys, secret, sizeof secret, "bench");
    mqtt_seq seq;
    mqtt_seq_init(&seq, mqtt_seq_reserve_random, NULL);
    mqtt_tx tx;
    mqtt_tx_cfg tc = { .keys = &keys, .seq = &seq, .sender = "bench", .chunk_size = chunk, .cipher = (uint8_t)cipher };
    if (mqtt_tx_init(&tx, &tc)) return -1;
    size_t fcap = mqtt_frame_size_max(chunk);
    uint32_t nchunks = (uint32_t)((len + chunk - 1) / chunk);
    uint8_t *frames = malloc(fcap * nchunks), *dst = malloc(len);
    size_t *flen = calloc(nchunks, sizeof *flen);
    int delivered = 0;
    size_t cap = len;
    mqtt_rx rx;
    mqtt_rx_cfg rc = { .keys = &keys, .timeout_ms = 100000, .max_transfers = 1, .max_peers = 2, .pool = &dst,
                       .pool_caps = &cap, .pool_count = 1, .deliver = deliver_nop, .user = &delivered };
    if (!frames || !dst || !flen || mqtt_rx_init(&rx, &rc)) return -1;
    double seal_s = 0, open_s = 0, aead_s = 0;
    for (int r = 0; r < reps; r++) {
        mqtt_frame_hdr t = { .type = MQTT_FT_KV_CACHE };
        mqtt_tx_xfer x;
        double t0 = kv_now_s();
        if (mqtt_tx_begin(&tx, &x, &t, payload, len)) return -1;
        for (uint32_t i = 0; i < nchunks; i++)
            if (mqtt_tx_chunk(&tx, &x, i, frames + (size_t)i * fcap, fcap, &flen[i])) return -1;
        double t1 = kv_now_s();
        for (uint32_t i = 0; i < nchunks; i++)
            if (mqtt_rx_input(&rx, 0, frames + (size_t)i * fcap, flen[i])) return -1;
        double t2 = kv_now_s();
        /* AEAD alone: mqtt_seal over the same chunks with a fixed header. */
        mqtt_frame_hdr h = x.hdr;
        for (uint32_t i = 0; i < nchunks; i++) {
            h.chunk_index = i;
            mqtt_seq_next(&seq, &h.seq);
            size_t n;
            if (mqtt_seal(&keys, &h, payload + (size_t)i * chunk, mqtt_frame_chunk_plain_len(&h),
                          frames, fcap, &n)) return -1;
        }
        double t3 = kv_now_s();
        seal_s += t1 - t0;
        open_s += t2 - t1;
        aead_s += t3 - t2;
    }
    if (delivered != reps || memcmp(dst, payload, len) != 0) return -1;
    double mb = (double)len * reps / 1e6;
    out[0] = mb / seal_s;
    out[1] = mb / open_s;
    out[2] = mb / aead_s;
    mqtt_rx_free(&rx);
    mqtt_tx_free(&tx);
    free(frames);
    free(dst);
    free(flen);
    return 0;
}

int kv_cmd_bench_seal(int argc, char **argv)
{
    uint64_t mib = 32, reps = 3, chunk = MQTT_CHUNK_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: kvmesh-kv bench-seal [--mib N] [--reps N] [--chunk-size N]\n"
                   "Seals an N MiB payload in chunks (sha256 + AEAD), opens and reassembles it, and\n"
                   "seals it with the AEAD alone, for ChaCha20-Poly1305 and AES-256-GCM. Prints JSON\n"
                   "with MB/s (10^6 bytes per second) for each. Defaults: 32 MiB, 3 repetitions.\n");
            return 0;
        } else if (!strcmp(a, "--mib") && v && !kv_parse_u64(v, &mib) && mib >= 1 && mib <= 1024) i++;
        else if (!strcmp(a, "--reps") && v && !kv_parse_u64(v, &reps) && reps >= 1 && reps <= 100) i++;
        else if (!strcmp(a, "--chunk-size") && v && !kv_parse_u64(v, &chunk) && chunk >= MQTT_CHUNK_MIN &&
                 chunk <= MQTT_CHUNK_MAX) i++;
        else { fprintf(stderr, "kvmesh-kv bench-seal: bad option '%s' (see --help)\n", a); return 2; }
    }
    size_t len = (size_t)mib << 20;
    uint8_t *p = malloc(len);
    if (!p) { fprintf(stderr, "kvmesh-kv bench-seal: out of memory\n"); return 1; }
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) { x = x * 1103515245u + 12345u; p[i] = (uint8_t)(x >> 24); }
    double c[3], g[3];
    fprintf(stderr, "kvmesh-kv bench-seal: %llu MiB x %llu, chunk %llu\n", (unsigned long long)mib,
            (unsigned long long)reps, (unsigned long long)chunk);
    if (run(MQTT_CIPHER_CHACHAPOLY, p, len, (uint32_t)chunk, (int)reps, c) ||
        run(MQTT_CIPHER_AES256GCM, p, len, (uint32_t)chunk, (int)reps, g)) {
        fprintf(stderr, "kvmesh-kv bench-seal: round trip failed\n");
        free(p);
        return 1;
    }
    printf("{\"payload_mib\":%llu,\"reps\":%llu,\"chunk\":%llu,"
           "\"chacha20_poly1305\":{\"seal_mb_s\":%.1f,\"open_mb_s\":%.1f,\"aead_only_mb_s\":%.1f},"
           "\"aes_256_gcm\":{\"seal_mb_s\":%.1f,\"open_mb_s\":%.1f,\"aead_only_mb_s\":%.1f}}\n",
           (unsigned long long)mib, (unsigned long long)reps, (unsigned long long)chunk, c[0], c[1], c[2], g[0],
           g[1], g[2]);
    free(p);
    return 0;
}
