/* One node of the load test: announces its caches, serves them, fetches caches of the
 * other nodes and checks every byte against the generator. Prints one JSON line.
 *
 *   load PORT INDEX NODES CACHES MAX_BYTES SECS SECRET_FILE DONE_DIR
 *
 * Cache m of node i: prefix = sha256("load-n<i>-c<m>"), size in 1..MAX_BYTES, bytes from
 * a xorshift generator seeded by (i, m), so any node can verify any cache. A node keeps
 * serving after its own fetches until every node has written DONE_DIR/done-<i> (or SECS). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"
#include "mqtt_session.h"

#define MAX_SERVING 4

typedef struct {
    int index, caches;
    uint64_t max_bytes;
    uint8_t (*prefixes)[MQTT_ID_BYTES];
    uint8_t *serve_buf[MAX_SERVING];
    bool serve_used[MAX_SERVING];
    mqtt_model_id model;
} load_node;

static uint64_t cache_size(int node, int m, uint64_t max)
{
    uint64_t x = (uint64_t)(node + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(m + 1) * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return 1 + x % max;
}

static void cache_fill(int node, int m, uint8_t *p, uint64_t n)
{
    uint64_t x = (uint64_t)(node + 1) << 32 | (uint64_t)(m + 1);
    for (uint64_t i = 0; i < n; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t v = x;
        for (uint64_t j = 0; j < 8 && i + j < n; j++) p[i + j] = (uint8_t)(v >> (8 * j));
    }
}

static void cache_prefix(int node, int m, uint8_t out[MQTT_ID_BYTES])
{
    char s[64];
    int n = snprintf(s, sizeof s, "load-n%d-c%d", node, m);
    mqtt_sha256((const uint8_t *)s, (uint64_t)n, out);
}

static int get(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES], mqtt_cache_info *info,
               const uint8_t **data, void **handle)
{
    load_node *ln = user;
    (void)model;
    for (int m = 0; m < ln->caches; m++) {
        if (memcmp(ln->prefixes[m], prefix, MQTT_ID_BYTES)) continue;
        for (int b = 0; b < MAX_SERVING; b++) {
            if (ln->serve_used[b]) continue;
            memset(info, 0, sizeof *info);
            info->model = ln->model;
            memcpy(info->prefix, prefix, MQTT_ID_BYTES);
            info->size = cache_size(ln->index, m, ln->max_bytes);
            cache_fill(ln->index, m, ln->serve_buf[b], info->size);
            ln->serve_used[b] = true;
            *data = ln->serve_buf[b];
            *handle = (void *)(intptr_t)b;
            return MQTT_OK;
        }
        return MQTT_ERR_BUSY;
    }
    return MQTT_ERR_NOT_FOUND;
}

static void put(void *user, void *handle)
{
    load_node *ln = user;
    ln->serve_used[(intptr_t)handle] = false;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int all_done(const char *dir, int nodes)
{
    for (int i = 0; i < nodes; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/done-%d", dir, i);
        if (access(p, F_OK) != 0) return 0;
    }
    return 1;
}

int helper_load(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: load PORT INDEX NODES CACHES MAX_BYTES SECS SECRET_FILE DONE_DIR\n");
        return 2;
    }
    int port = atoi(argv[1]), nodes = atoi(argv[3]);
    double secs = atof(argv[6]);
    load_node ln = { .index = atoi(argv[2]), .caches = atoi(argv[4]), .max_bytes = strtoull(argv[5], NULL, 10) };
    const char *done_dir = argv[8];
    memset(ln.model.fingerprint, 0x5A, MQTT_ID_BYTES);
    ln.model.numerics = 1;
    uint8_t secret[MQTT_SECRET_MAX];
    size_t slen;
    mqtt_keys keys;
    if (mqtt_keys_load_secret(argv[7], secret, sizeof secret, &slen) || mqtt_keys_init(&keys, secret, slen, "lab"))
        return 1;
    ln.prefixes = calloc((size_t)ln.caches, MQTT_ID_BYTES);
    for (int m = 0; m < ln.caches; m++) cache_prefix(ln.index, m, ln.prefixes[m]);
    for (int b = 0; b < MAX_SERVING; b++) ln.serve_buf[b] = malloc(ln.max_bytes);
    uint8_t *buf = malloc(ln.max_bytes), *want = malloc(ln.max_bytes);
    char node_id[32], root[64], state[600];
    snprintf(node_id, sizeof node_id, "load-%d", ln.index);
    snprintf(root, sizeof root, "kvmesh/v1/lab");
    snprintf(state, sizeof state, "%s/nonce-%d", done_dir, ln.index);
    mqtt_seqfile sf;
    mqtt_seq seq;
    mqtt_seqfile_open(&sf, state);
    mqtt_seq_init(&seq, mqtt_seqfile_reserve, &sf);

    mqtt_node_cfg c = mqtt_node_cfg_default();
    c.session.port = port;
    c.session.node_id = node_id;
    c.session.root = root;
    c.session.max_attempts = 50;
    c.keys = &keys;
    c.seq = &seq;
    c.model = &ln.model;
    c.max_serving = MAX_SERVING;
    c.max_announce = (size_t)ln.caches;
    c.stall_ms = 1000;
    c.provider_get = get;
    c.provider_put = put;
    c.user = &ln;
    mqtt_node node;
    if (mqtt_node_init(&node, &c) || mqtt_node_start(&node) || mqtt_node_wait_connected(&node, 30000)) {
        fprintf(stderr, "load-%d: cannot connect\n", ln.index);
        return 1;
    }
    for (int m = 0; m < ln.caches; m++) {
        mqtt_cache_info info = { .model = ln.model, .size = cache_size(ln.index, m, ln.max_bytes) };
        memcpy(info.prefix, ln.prefixes[m], MQTT_ID_BYTES);
        if (mqtt_node_announce(&node, &info)) return 1;
        mqtt_node_poll(&node, 0);
    }
    double t0 = now_s();
    int fetched = 0, failed = 0, corrupted = 0;
    uint64_t bytes = 0;
    for (int j = 0; j < ln.caches && now_s() - t0 < secs; j++) {
        int owner = (ln.index + 1 + j % (nodes - 1)) % nodes;
        int m = (j * 7 + ln.index) % ln.caches;
        uint8_t prefix[MQTT_ID_BYTES];
        cache_prefix(owner, m, prefix);
        uint64_t got = 0;
        int rc = mqtt_node_fetch(&node, &ln.model, prefix, buf, ln.max_bytes, 60000, &got, NULL);
        if (rc) {
            fprintf(stderr, "load-%d: fetch %d from load-%d failed: %s\n", ln.index, m, owner, mqtt_strerror(rc));
            failed++;
            continue;
        }
        uint64_t size = cache_size(owner, m, ln.max_bytes);
        cache_fill(owner, m, want, size);
        if (got != size || memcmp(buf, want, size) != 0) corrupted++;
        else fetched++;
        bytes += got;
    }
    double fetch_s = now_s() - t0;
    char p[600];
    snprintf(p, sizeof p, "%s/done-%d", done_dir, ln.index);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    /* Keep serving the others until everyone is done (or the bound passes). */
    while (!all_done(done_dir, nodes) && now_s() - t0 < secs + 30) mqtt_node_poll(&node, 20);
    mqtt_node_flush(&node, 5000);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    mqtt_node_stats st;
    mqtt_node_get_stats(&node, &st);
    uint64_t drops = 0;
    for (int r = 0; r < MQTT_DROP_REASONS_; r++)
        if (r != MQTT_DROP_REPLAY && r != MQTT_DROP_DECLINED) drops += st.rx.drops[r];
    printf("{\"node\":%d,\"fetched\":%d,\"wanted\":%d,\"failed\":%d,\"corrupted\":%d,\"bytes\":%" PRIu64
           ",\"fetch_seconds\":%.2f,\"served\":%" PRIu64 ",\"busy\":%" PRIu64 ",\"rerequests\":%" PRIu64
           ",\"unexpected_drops\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"peak_rss_kib\":%ld}\n",
           ln.index, fetched, ln.caches, failed, corrupted, bytes, fetch_s, st.requests_served, st.requests_refused,
           st.fetch_rerequests, drops, st.rx.drops[MQTT_DROP_REPLAY], ru.ru_maxrss);
    mqtt_node_free(&node);
    for (int b = 0; b < MAX_SERVING; b++) free(ln.serve_buf[b]);
    free(buf);
    free(want);
    free(ln.prefixes);
    return failed || corrupted ? 1 : 0;
}
