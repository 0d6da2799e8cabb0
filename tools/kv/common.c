/* kvmesh-kv: options shared by the network subcommands, and node set-up from them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

const char kv_net_usage[] =
    "connection and sealing options:\n"
    "  --host H            broker host (default 127.0.0.1; TLS verifies this name)\n"
    "  --port P            broker port (default 1883, 8883 with --tls)\n"
    "  --node ID           this node's id (default kv-<pid>)\n"
    "  --fleet NAME        fleet name: topic root kvmesh/v1/NAME and HKDF salt (default lab)\n"
    "  --root R            topic root override\n"
    "  --secret-file F     fleet secret (raw 16..64 bytes or hex); required\n"
    "  --cipher C          chacha (default) or aes\n"
    "  --tls --ca F        TLS to the broker with this CA; --cert F --key F for mTLS\n"
    "  --user U            broker username; --pass P or --pass-file F\n"
    "  --mqtt V            auto (default: 5, falling back to 3.1.1), 5 or 3.1.1\n"
    "  --retries N         connect attempts before giving up (default 10; 0 = forever)\n"
    "  --connect-timeout MS  CONNACK deadline per attempt (default 5000)\n"
    "  --keepalive S       MQTT keepalive seconds (default 10)\n"
    "  --chunk-size N      bytes per chunk (default 262144)\n"
    "  --zstd L            compress chunks that shrink at zstd level L (default off)\n"
    "  --state-file F      nonce counter store (default: a random 62-bit base, which is\n"
    "                      only safe for a node id used once; see docs/mqtt.md)\n"
    "  --json              machine-readable output on stdout\n"
    "  --quiet             no progress on stderr\n";

void kv_net_defaults(kv_net_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->fleet = "lab";
    o->retries = 10;
    o->keepalive = 10;
    o->chunk_size = MQTT_CHUNK_DEFAULT;
    o->connect_timeout_ms = 5000;
    snprintf(o->node_buf, sizeof o->node_buf, "kv-%ld", (long)getpid());
    o->node = o->node_buf;
}

int kv_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int kv_parse_range(const char *s, uint32_t *a, uint32_t *b)
{
    unsigned long x, y;
    char tail;
    if (sscanf(s, "%lu:%lu%c", &x, &y, &tail) != 2 || x > y || y > UINT32_MAX) return -1;
    *a = (uint32_t)x;
    *b = (uint32_t)y;
    return 0;
}

double kv_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int kv_net_opt(kv_net_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    uint64_t n;
#define TAKE(field)                                                           \
    do {                                                                      \
        if (!v) { fprintf(stderr, "kvmesh-kv: %s needs a value\n", a); return -1; } \
        o->field = v;                                                         \
        (*i)++;                                                               \
        return 1;                                                             \
    } while (0)
#define TAKE_NUM(field, lo, hi)                                               \
    do {                                                                      \
        if (!v || kv_parse_u64(v, &n) || n + 1 < (uint64_t)(lo) + 1 || n > (hi)) {            \
            fprintf(stderr, "kvmesh-kv: %s needs a number in %llu..%llu\n", a, \
                    (unsigned long long)(lo), (unsigned long long)(hi));      \
            return -1;                                                        \
        }                                                                     \
        o->field = n;                                                         \
        (*i)++;                                                               \
        return 1;                                                             \
    } while (0)
    if (!strcmp(a, "--host")) TAKE(host);
    if (!strcmp(a, "--node")) TAKE(node);
    if (!strcmp(a, "--fleet")) TAKE(fleet);
    if (!strcmp(a, "--root")) TAKE(root);
    if (!strcmp(a, "--secret-file")) TAKE(secret_file);
    if (!strcmp(a, "--ca")) TAKE(ca);
    if (!strcmp(a, "--cert")) TAKE(cert);
    if (!strcmp(a, "--key")) TAKE(key);
    if (!strcmp(a, "--user")) TAKE(user);
    if (!strcmp(a, "--pass")) TAKE(pass);
    if (!strcmp(a, "--pass-file")) TAKE(pass_file);
    if (!strcmp(a, "--state-file")) TAKE(state_file);
    if (!strcmp(a, "--port")) TAKE_NUM(port, 1, 65535);
    if (!strcmp(a, "--retries")) TAKE_NUM(retries, 0, 1000000);
    if (!strcmp(a, "--keepalive")) TAKE_NUM(keepalive, 5, 3600);
    if (!strcmp(a, "--connect-timeout")) TAKE_NUM(connect_timeout_ms, 100, 600000);
    if (!strcmp(a, "--chunk-size")) TAKE_NUM(chunk_size, MQTT_CHUNK_MIN, MQTT_CHUNK_MAX);
    if (!strcmp(a, "--zstd")) TAKE_NUM(zstd_level, 1, 19);
    if (!strcmp(a, "--tls")) { o->tls = true; return 1; }
    if (!strcmp(a, "--json")) { o->json = true; return 1; }
    if (!strcmp(a, "--quiet")) { o->quiet = true; return 1; }
    if (!strcmp(a, "--cipher")) {
        if (v && !strcmp(v, "chacha")) o->cipher = MQTT_CIPHER_CHACHAPOLY;
        else if (v && !strcmp(v, "aes")) o->cipher = MQTT_CIPHER_AES256GCM;
        else { fprintf(stderr, "kvmesh-kv: --cipher is chacha or aes\n"); return -1; }
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--mqtt")) {
        if (v && !strcmp(v, "auto")) o->protocol = MQTT_PROTO_AUTO;
        else if (v && !strcmp(v, "5")) o->protocol = MQTT_PROTO_V5;
        else if (v && !strcmp(v, "3.1.1")) o->protocol = MQTT_PROTO_V311;
        else { fprintf(stderr, "kvmesh-kv: --mqtt is auto, 5 or 3.1.1\n"); return -1; }
        (*i)++;
        return 1;
    }
#undef TAKE
#undef TAKE_NUM
    return 0;
}

int kv_net_setup(kv_net_opts *o, mqtt_node_cfg *cfg)
{
    if (!o->secret_file) {
        fprintf(stderr, "kvmesh-kv: --secret-file is required (the fleet secret)\n");
        return -1;
    }
    if (!mqtt_node_id_valid(o->node)) {
        fprintf(stderr, "kvmesh-kv: bad --node '%s': 1..31 of [A-Za-z0-9_-]\n", o->node);
        return -1;
    }
    uint8_t secret[MQTT_SECRET_MAX];
    size_t slen;
    int rc = mqtt_keys_load_secret(o->secret_file, secret, sizeof secret, &slen);
    if (rc || mqtt_keys_init(&o->keys, secret, slen, o->fleet)) {
        fprintf(stderr, "kvmesh-kv: cannot use secret file %s: %s\n", o->secret_file,
                rc ? mqtt_strerror(rc) : "need 16..64 bytes and a valid --fleet");
        return -1;
    }
    memset(secret, 0, sizeof secret);
    if (!o->root) {
        if (mqtt_topic_root(o->fleet, o->root_buf, sizeof o->root_buf)) {
            fprintf(stderr, "kvmesh-kv: bad --fleet '%s'\n", o->fleet);
            return -1;
        }
        o->root = o->root_buf;
    }
    if (o->state_file) {
        mqtt_seqfile_open(&o->seqfile, o->state_file);
        mqtt_seq_init(&o->seq, mqtt_seqfile_reserve, &o->seqfile);
    } else {
        mqtt_seq_init(&o->seq, mqtt_seq_reserve_random, NULL);
    }
    uint64_t probe;
    if ((rc = mqtt_seq_next(&o->seq, &probe)) != MQTT_OK) {
        fprintf(stderr, "kvmesh-kv: nonce counter store %s: %s\n", o->state_file ? o->state_file : "(random)",
                mqtt_strerror(rc));
        return -1;
    }
    if (o->pass_file) {
        FILE *f = fopen(o->pass_file, "r");
        if (!f || !fgets(o->pass_buf, sizeof o->pass_buf, f)) {
            fprintf(stderr, "kvmesh-kv: cannot read --pass-file %s\n", o->pass_file);
            if (f) fclose(f);
            return -1;
        }
        fclose(f);
        o->pass_buf[strcspn(o->pass_buf, "\r\n")] = '\0';
        o->pass = o->pass_buf;
    }
    if (o->tls && !o->ca) {
        fprintf(stderr, "kvmesh-kv: --tls needs --ca\n");
        return -1;
    }
    *cfg = mqtt_node_cfg_default();
    mqtt_session_cfg *s = &cfg->session;
    s->host = o->host;
    s->port = o->port;
    s->node_id = o->node;
    s->root = o->root;
    s->username = o->user;
    s->password = o->pass;
    s->tls = o->tls;
    s->ca_file = o->ca;
    s->cert_file = o->cert;
    s->key_file = o->key;
    s->protocol = o->protocol;
    s->keepalive_s = o->keepalive;
    s->connect_timeout_ms = o->connect_timeout_ms;
    s->max_attempts = o->retries;
    cfg->keys = &o->keys;
    cfg->seq = &o->seq;
    cfg->cipher = (uint8_t)o->cipher;
    cfg->chunk_size = o->chunk_size;
    cfg->zstd_level = o->zstd_level;
    return 0;
}

void kv_print_stats(FILE *f, const mqtt_node *n)
{
    mqtt_node_stats st;
    mqtt_node_get_stats(n, &st);
    fprintf(f, "{\"frames_in\":%" PRIu64 ",\"frames_ok\":%" PRIu64 ",\"delivered\":%" PRIu64
               ",\"delivered_bytes\":%" PRIu64 ",\"frames_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
               ",\"served\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"resumes\":%" PRIu64
               ",\"rerequests\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"reconnects\":%" PRIu64
               ",\"protocol\":%d,\"drops\":{",
            st.rx.frames_in, st.rx.frames_ok, st.rx.delivered, st.rx.delivered_bytes, st.frames_sent,
            st.bytes_sent, st.requests_served, st.requests_refused, st.resumes, st.fetch_rerequests, st.foreign,
            n->session.stats.connects ? n->session.stats.connects - 1 : 0,
            mqtt_session_protocol(&n->session) == MQTT_PROTO_V311 ? 311 : mqtt_session_protocol(&n->session) ? 5 : 0);
    for (int r = 0; r < MQTT_DROP_REASONS_; r++)
        fprintf(f, "%s\"%s\":%" PRIu64, r ? "," : "", mqtt_drop_reason_name(r), st.rx.drops[r]);
    fprintf(f, "}}");
}
