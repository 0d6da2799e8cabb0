/* Status strings, identifiers and hex helpers shared by the whole module. */
#include <string.h>

#include "mqtt.h"

const char *mqtt_strerror(int status)
{
    switch (status) {
    case MQTT_OK: return "ok";
    case MQTT_ERR_INVAL: return "invalid argument";
    case MQTT_ERR_NOMEM: return "out of memory";
    case MQTT_ERR_SPACE: return "buffer too small";
    case MQTT_ERR_MAGIC: return "not a kvmesh frame (bad magic)";
    case MQTT_ERR_VERSION: return "unsupported frame version";
    case MQTT_ERR_TRUNCATED: return "frame length mismatch (truncated or padded)";
    case MQTT_ERR_MALFORMED: return "malformed frame field";
    case MQTT_ERR_COUNT: return "chunk count or index disagrees with the payload length";
    case MQTT_ERR_OVERSIZE: return "payload too large";
    case MQTT_ERR_AUTH: return "authentication failed (tampered or wrong key)";
    case MQTT_ERR_REPLAY: return "replayed or duplicate frame";
    case MQTT_ERR_MODEL: return "frame is for another model";
    case MQTT_ERR_DIGEST: return "payload digest mismatch";
    case MQTT_ERR_CRYPTO: return "crypto library failure";
    case MQTT_ERR_COMPRESS: return "compression failure";
    case MQTT_ERR_IO: return "I/O error";
    case MQTT_ERR_EXHAUSTED: return "nonce counter exhausted";
    case MQTT_ERR_BUSY: return "no free slot";
    case MQTT_ERR_NO_CONN: return "not connected";
    case MQTT_ERR_UNREACHABLE: return "broker unreachable";
    case MQTT_ERR_REFUSED: return "connection refused by broker";
    case MQTT_ERR_TIMEOUT: return "deadline passed";
    case MQTT_ERR_NOT_FOUND: return "not found";
    case MQTT_ERR_PEER_GONE: return "peer went offline";
    case MQTT_ERR_PROTOCOL: return "MQTT protocol error";
    case MQTT_ERR_INCONSISTENT: return "chunk inconsistent with its transfer";
    case MQTT_ERR_TLS: return "TLS handshake or certificate verification failed";
    default: return "unknown status";
    }
}

const char *mqtt_drop_reason_name(int reason)
{
    static const char *const names[MQTT_DROP_REASONS_] = {
        [MQTT_DROP_MALFORMED] = "malformed",     [MQTT_DROP_TRUNCATED] = "truncated",
        [MQTT_DROP_COUNT] = "count",             [MQTT_DROP_OVERSIZE] = "oversize",
        [MQTT_DROP_AUTH] = "auth",               [MQTT_DROP_REPLAY] = "replay",
        [MQTT_DROP_MODEL] = "model",             [MQTT_DROP_INCONSISTENT] = "inconsistent",
        [MQTT_DROP_DIGEST] = "digest",           [MQTT_DROP_DECOMPRESS] = "decompress",
        [MQTT_DROP_BUSY] = "busy",               [MQTT_DROP_PEERS] = "peers",
        [MQTT_DROP_DECLINED] = "declined",       [MQTT_DROP_STALLED] = "stalled",
        [MQTT_DROP_PEER_GONE] = "peer_gone",
    };
    if (reason < 0 || reason >= MQTT_DROP_REASONS_) return "unknown";
    return names[reason];
}

bool mqtt_node_id_valid(const char *id)
{
    if (!id) return false;
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || n >= MQTT_NODE_ID_MAX) return false;
    }
    return n > 0;
}

void mqtt_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int mqtt_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return MQTT_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return MQTT_ERR_INVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return MQTT_OK;
}
