/* mqtt_helper: test-only tools for the mqtt integration scripts (never installed).
 *   mark IN OUT MARKER        copy IN, writing MARKER at the start of every 4 KiB block
 *   rogue SECRET WRONG OUTDIR forge the tamper-test frames (see rogue())
 *   scan CAPTURE PAYLOAD      count payload windows found in a capture
 *   fakev3 PORTFILE           an MQTT 3.1.1-only "broker" that refuses v5 (fall-back test)
 *   blackhole PORTFILE        listen on a free 127.0.0.1 port, never accept: a port that
 *                             swallows connections; writes the port to PORTFILE
 *   load ...                  one node of the load test (load.c) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mqtt.h"
#include "helper.h"

static int mark(int argc, char **argv)
{
    if (argc != 4) return 2;
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (!in || !out) return 1;
    size_t ml = strlen(argv[3]);
    uint8_t block[4096];
    size_t n;
    while ((n = fread(block, 1, sizeof block, in)) > 0) {
        memcpy(block, argv[3], ml < n ? ml : n);
        fwrite(block, 1, n, out);
    }
    fclose(in);
    return fclose(out) ? 1 : 0;
}

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) return -1;
    return fclose(f);
}

static int load_keys(const char *path, const char *fleet, mqtt_keys *k)
{
    uint8_t s[MQTT_SECRET_MAX];
    size_t n;
    return mqtt_keys_load_secret(path, s, sizeof s, &n) || mqtt_keys_init(k, s, n, fleet) ? -1 : 0;
}

/* Reseals a header that was edited after the fact, as a sender with the key could. */
static size_t reseal(const mqtt_keys *k, mqtt_frame_hdr *h, const uint8_t *plain, uint32_t n, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (mqtt_seal(k, h, plain, n, out, cap, &len)) return 0;
    return len;
}

/* Frames for the tamper test, all aimed at one receiver. legit-0..2: a 3-chunk PROMPT
 * transfer whose plaintext is the known marker (delivered once); every other file is
 * one frame that must be dropped for the reason in its name. */
static int rogue(int argc, char **argv)
{
    if (argc != 5) return 2;
    mqtt_keys k, wrong;
    if (load_keys(argv[1], argv[4], &k) || load_keys(argv[2], argv[4], &wrong)) return 1;
    const char *dir = argv[3];
    mqtt_seq seq;
    mqtt_seq_init(&seq, mqtt_seq_reserve_random, NULL);
    mqtt_tx tx, txw;
    mqtt_tx_cfg tc = { .keys = &k, .seq = &seq, .sender = "alice", .chunk_size = 4096 };
    mqtt_tx_cfg tw = tc;
    tw.keys = &wrong;
    if (mqtt_tx_init(&tx, &tc) || mqtt_tx_init(&txw, &tw)) return 1;
    static uint8_t payload[10000], frame[8192], plain[4096];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)("ROGUE-TEST-PLAINTEXT-"[i % 21]);
    mqtt_frame_hdr t = { .type = MQTT_FT_PROMPT };
    mqtt_tx_xfer x, y;
    size_t n;
    int rc = 0;
    rc |= mqtt_tx_begin(&tx, &x, &t, payload, sizeof payload);
    for (uint32_t i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "legit-%u", i);
        rc |= mqtt_tx_chunk(&tx, &x, i, frame, sizeof frame, &n) || write_file(dir, name, frame, n);
    }
    /* A second transfer, never published untampered, is the material for the rest. */
    rc |= mqtt_tx_begin(&tx, &y, &t, payload, sizeof payload);
    rc |= mqtt_tx_chunk(&tx, &y, 0, frame, sizeof frame, &n);
    frame[MQTT_FRAME_HDR_SIZE + 100] ^= 0x01;
    rc |= write_file(dir, "auth-flipped-ciphertext", frame, n);
    rc |= mqtt_tx_chunk(&tx, &y, 1, frame, sizeof frame, &n);
    frame[120] ^= 0x01;   /* pos_end: still a well-formed header, but not the one sealed */
    rc |= write_file(dir, "auth-modified-header", frame, n);
    mqtt_tx_xfer z;
    rc |= mqtt_tx_begin(&txw, &z, &t, payload, sizeof payload);
    rc |= mqtt_tx_chunk(&txw, &z, 0, frame, sizeof frame, &n);
    rc |= write_file(dir, "auth-wrong-key", frame, n);
    rc |= mqtt_tx_chunk(&tx, &y, 2, frame, sizeof frame, &n);
    rc |= write_file(dir, "truncated-chunk", frame, n - 100);
    /* Lies told by a key holder. mqtt_seal refuses an inconsistent header, so seal a
     * true one and edit the field afterwards: the parser must stop it before the tag. */
    memcpy(plain, payload, 4096);
    {
        mqtt_frame_hdr ok = y.hdr;
        ok.chunk_index = 0;
        rc |= mqtt_seq_next(&seq, &ok.seq);
        size_t len = reseal(&k, &ok, plain, 4096, frame, sizeof frame);
        frame[132] = 4;     /* chunk_count low byte: 10000 bytes at 4096 per chunk are 3 */
        rc |= len == 0 || write_file(dir, "count-lying-chunk-count", frame, len);
        ok = y.hdr;
        ok.chunk_index = 0;
        ok.chunk_size = 1u << 20;
        ok.total_len = (uint64_t)MQTT_MAX_CHUNKS << 20;      /* 8 GiB: the parser's limit */
        ok.chunk_count = MQTT_MAX_CHUNKS;
        rc |= mqtt_seq_next(&seq, &ok.seq);
        static uint8_t big[(1u << 20) + 256];
        static uint8_t zero[1u << 20];
        len = reseal(&k, &ok, zero, 1u << 20, big, sizeof big);
        big[156 + 4] = 0x10;  /* total_len becomes 2^36 (64 GiB): beyond 8192 chunks of 1 MiB */
        rc |= len == 0 || write_file(dir, "oversize-total-length", big, len);
        ok.total_len = 3ull << 30;                            /* 3 GiB: over the receiver's limit */
        ok.chunk_count = 3072;
        rc |= mqtt_seq_next(&seq, &ok.seq);
        len = reseal(&k, &ok, zero, 1u << 20, big, sizeof big);
        rc |= len == 0 || write_file(dir, "oversize-over-limit", big, len);
    }
    /* Valid in every way, but for another model than the receiver's. */
    mqtt_frame_hdr m = { .type = MQTT_FT_HIDDEN };
    memset(m.model.fingerprint, 0x11, MQTT_ID_BYTES);
    m.model.numerics = 2;
    rc |= mqtt_tx_begin(&tx, &z, &m, payload, 100);
    rc |= mqtt_tx_chunk(&tx, &z, 0, frame, sizeof frame, &n) || write_file(dir, "model-other-model", frame, n);
    /* A last legit transfer: when it is delivered, everything before it was processed. */
    static const uint8_t sentinel[] = "SENTINEL";
    rc |= mqtt_tx_begin(&tx, &z, &t, sentinel, sizeof sentinel);
    rc |= mqtt_tx_chunk(&tx, &z, 0, frame, sizeof frame, &n) || write_file(dir, "sentinel", frame, n);
    mqtt_tx_free(&tx);
    mqtt_tx_free(&txw);
    return rc ? 1 : 0;
}

/* How many 32-byte windows of the payload (one per 4 KiB block, at two offsets) occur in
 * the capture. Prints the count; 0 means no known plaintext leaked. */
static int scan(int argc, char **argv)
{
    if (argc != 3) return 2;
    FILE *fc = fopen(argv[1], "rb"), *fp = fopen(argv[2], "rb");
    if (!fc || !fp) return 1;
    static uint8_t cap[64u << 20], pay[64u << 20];
    size_t nc = fread(cap, 1, sizeof cap, fc), np = fread(pay, 1, sizeof pay, fp);
    fclose(fc);
    fclose(fp);
    unsigned long found = 0, tried = 0;
    for (size_t off = 0; off + 4096 <= np; off += 4096) {
        const size_t at[2] = { off, off + 2000 };
        for (int k = 0; k < 2; k++, tried++)
            if (memmem(cap, nc, pay + at[k], 32)) found++;
    }
    printf("%lu %lu\n", found, tried);
    return 0;
}

/* A broker that only speaks MQTT 3.1.1: refuses a v5 CONNECT with "unacceptable protocol
 * version" as a 3.1.1 broker does, accepts a 3.1.1 CONNECT and then ignores the client. */
static int fakev3(int argc, char **argv)
{
    if (argc != 2) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4) ||
        getsockname(s, (struct sockaddr *)&a, &al))
        return 1;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "%u\n", ntohs(a.sin_port));
    fclose(f);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        uint8_t b[512];
        ssize_t n = recv(c, b, sizeof b, 0);
        /* CONNECT: 0x10, remaining length (1-2 bytes here), 00 04 "MQTT", level */
        size_t at = (n > 2 && (b[1] & 0x80)) ? 3 : 2;
        if (n < (ssize_t)at + 7 || b[0] != 0x10) { close(c); continue; }
        uint8_t level = b[at + 6];
        const uint8_t refuse[4] = { 0x20, 0x02, 0x00, 0x01 }, accept_[4] = { 0x20, 0x02, 0x00, 0x00 };
        if (level == 5) {
            send(c, refuse, 4, MSG_NOSIGNAL);
            close(c);
        } else {
            send(c, accept_, 4, MSG_NOSIGNAL);
            /* Keep the connection; read and discard until the client leaves. */
            while (recv(c, b, sizeof b, 0) > 0) {
            }
            close(c);
        }
    }
}

static int blackhole(int argc, char **argv)
{
    if (argc != 2) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1) ||
        getsockname(s, (struct sockaddr *)&a, &al))
        return 1;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "%u\n", ntohs(a.sin_port));
    fclose(f);
    for (;;) pause();   /* never accept: connections sit in the backlog, then SYNs drop */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mqtt_helper mark|rogue|blackhole|load ...\n");
        return 2;
    }
    if (!strcmp(argv[1], "mark")) return mark(argc - 1, argv + 1);
    if (!strcmp(argv[1], "rogue")) return rogue(argc - 1, argv + 1);
    if (!strcmp(argv[1], "scan")) return scan(argc - 1, argv + 1);
    if (!strcmp(argv[1], "fakev3")) return fakev3(argc - 1, argv + 1);
    if (!strcmp(argv[1], "blackhole")) return blackhole(argc - 1, argv + 1);
    if (!strcmp(argv[1], "load")) return helper_load(argc - 1, argv + 1);
    fprintf(stderr, "mqtt_helper: unknown command %s\n", argv[1]);
    return 2;
}
