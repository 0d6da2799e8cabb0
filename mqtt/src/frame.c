/* Frame codec: the fixed 200-byte little-endian header (byte table in docs/mqtt.md).
 * Pure: no I/O, no clock, no allocation. Decode checks every length against the bytes
 * present before anything is read, and the chunk geometry against the declared totals. */
#include <string.h>

#include "le.h"
#include "mqtt.h"

/* Field offsets; the order is the wire order. */
enum {
    OFF_MAGIC = 0, OFF_VERSION = 4, OFF_TYPE = 5, OFF_CIPHER = 6, OFF_FLAGS = 7,
    OFF_SENDER = 8, OFF_FP = 40, OFF_NUMERICS = 72, OFF_PREFIX = 76,
    OFF_LAYER_B = 108, OFF_LAYER_E = 112, OFF_POS_B = 116, OFF_POS_E = 120,
    OFF_CODEC = 124, OFF_CHUNK_I = 128, OFF_CHUNK_N = 132, OFF_CHUNK_SZ = 136,
    OFF_SEQ = 140, OFF_XFER = 148, OFF_TOTAL = 156, OFF_DIGEST = 164, OFF_BODY = 196,
    OFF_END_ = 200
};
_Static_assert(OFF_END_ == MQTT_FRAME_HDR_SIZE, "header layout and size disagree");
_Static_assert(MQTT_NODE_ID_MAX + 1 == OFF_FP - OFF_SENDER, "sender field is 32 bytes");

uint32_t mqtt_frame_chunk_plain_len(const mqtt_frame_hdr *h)
{
    uint64_t off = (uint64_t)h->chunk_index * h->chunk_size;
    if (off >= h->total_len) return 0;
    uint64_t rest = h->total_len - off;
    return rest < h->chunk_size ? (uint32_t)rest : h->chunk_size;
}

int mqtt_frame_purpose(uint8_t type)
{
    switch (type) {
    case MQTT_FT_KV_CACHE:
    case MQTT_FT_KV_ANNOUNCE: return MQTT_PURPOSE_KV;
    case MQTT_FT_HIDDEN: return MQTT_PURPOSE_HIDDEN;
    case MQTT_FT_PROMPT:
    case MQTT_FT_TOKENS: return MQTT_PURPOSE_TEXT;
    case MQTT_FT_REQUEST:
    case MQTT_FT_RESPONSE:
    case MQTT_FT_COMMAND: return MQTT_PURPOSE_CMD;
    default: return -1;
    }
}

size_t mqtt_frame_size_max(uint32_t chunk_size)
{
    return (size_t)MQTT_FRAME_HDR_SIZE + chunk_size + MQTT_TAG_SIZE;
}

/* Everything about a header that does not need the frame's bytes. */
static int hdr_check(const mqtt_frame_hdr *h)
{
    if (h->version != MQTT_FRAME_VERSION) return MQTT_ERR_VERSION;
    if (h->type < 1 || h->type > MQTT_FT_MAX_) return MQTT_ERR_MALFORMED;
    if (h->cipher > MQTT_CIPHER_AES256GCM) return MQTT_ERR_MALFORMED;
    if (h->flags & ~MQTT_FLAG_KNOWN_) return MQTT_ERR_MALFORMED;
    if (!mqtt_node_id_valid(h->sender)) return MQTT_ERR_MALFORMED;
    if (h->layer_begin > h->layer_end || h->pos_begin > h->pos_end) return MQTT_ERR_MALFORMED;
    if (h->chunk_size < MQTT_CHUNK_MIN || h->chunk_size > MQTT_CHUNK_MAX) return MQTT_ERR_MALFORMED;
    if (h->total_len > (uint64_t)MQTT_MAX_CHUNKS * h->chunk_size) return MQTT_ERR_OVERSIZE;
    uint64_t want = h->total_len == 0 ? 1 : (h->total_len + h->chunk_size - 1) / h->chunk_size;
    if (h->chunk_count != want || h->chunk_index >= h->chunk_count) return MQTT_ERR_COUNT;
    uint32_t plain = mqtt_frame_chunk_plain_len(h);
    if (h->flags & MQTT_FLAG_ZSTD) {
        /* A sender compresses only when that shrinks the chunk. */
        if (h->body_len == 0 || h->body_len >= plain) return MQTT_ERR_TRUNCATED;
    } else if (h->body_len != plain) {
        return MQTT_ERR_TRUNCATED;
    }
    return MQTT_OK;
}

int mqtt_frame_encode(const mqtt_frame_hdr *h, uint8_t *out, size_t cap)
{
    if (!h || !out) return MQTT_ERR_INVAL;
    if (cap < MQTT_FRAME_HDR_SIZE) return MQTT_ERR_SPACE;
    int rc = hdr_check(h);
    if (rc) return rc;
    memset(out, 0, MQTT_FRAME_HDR_SIZE);
    le_put32(out + OFF_MAGIC, MQTT_FRAME_MAGIC);
    out[OFF_VERSION] = h->version;
    out[OFF_TYPE] = h->type;
    out[OFF_CIPHER] = h->cipher;
    out[OFF_FLAGS] = h->flags;
    memcpy(out + OFF_SENDER, h->sender, strlen(h->sender)); /* rest stays NUL */
    memcpy(out + OFF_FP, h->model.fingerprint, MQTT_ID_BYTES);
    le_put32(out + OFF_NUMERICS, h->model.numerics);
    memcpy(out + OFF_PREFIX, h->prefix, MQTT_ID_BYTES);
    le_put32(out + OFF_LAYER_B, h->layer_begin);
    le_put32(out + OFF_LAYER_E, h->layer_end);
    le_put32(out + OFF_POS_B, h->pos_begin);
    le_put32(out + OFF_POS_E, h->pos_end);
    le_put32(out + OFF_CODEC, h->codec);
    le_put32(out + OFF_CHUNK_I, h->chunk_index);
    le_put32(out + OFF_CHUNK_N, h->chunk_count);
    le_put32(out + OFF_CHUNK_SZ, h->chunk_size);
    le_put64(out + OFF_SEQ, h->seq);
    le_put64(out + OFF_XFER, h->xfer);
    le_put64(out + OFF_TOTAL, h->total_len);
    memcpy(out + OFF_DIGEST, h->digest, MQTT_ID_BYTES);
    le_put32(out + OFF_BODY, h->body_len);
    return MQTT_OK;
}

int mqtt_frame_decode(const uint8_t *buf, size_t len, mqtt_frame_hdr *h,
                      const uint8_t **body, const uint8_t **tag)
{
    if (!buf || !h) return MQTT_ERR_INVAL;
    if (len < MQTT_FRAME_HDR_SIZE + MQTT_TAG_SIZE) {
        /* Too short even for a header: say so, unless it is not ours at all. */
        if (len >= 4 && le_get32(buf) != MQTT_FRAME_MAGIC) return MQTT_ERR_MAGIC;
        return MQTT_ERR_TRUNCATED;
    }
    if (le_get32(buf + OFF_MAGIC) != MQTT_FRAME_MAGIC) return MQTT_ERR_MAGIC;
    memset(h, 0, sizeof *h);
    h->version = buf[OFF_VERSION];
    if (h->version != MQTT_FRAME_VERSION) return MQTT_ERR_VERSION;
    h->type = buf[OFF_TYPE];
    h->cipher = buf[OFF_CIPHER];
    h->flags = buf[OFF_FLAGS];
    /* Sender: 1..31 chars, then only NULs up to 32 bytes. */
    const uint8_t *s = buf + OFF_SENDER;
    size_t n = 0;
    while (n < MQTT_NODE_ID_MAX + 1 && s[n]) n++;
    if (n == 0 || n > MQTT_NODE_ID_MAX) return MQTT_ERR_MALFORMED;
    for (size_t i = n; i < MQTT_NODE_ID_MAX + 1; i++)
        if (s[i]) return MQTT_ERR_MALFORMED;
    memcpy(h->sender, s, n);
    h->sender[n] = '\0';
    memcpy(h->model.fingerprint, buf + OFF_FP, MQTT_ID_BYTES);
    h->model.numerics = le_get32(buf + OFF_NUMERICS);
    memcpy(h->prefix, buf + OFF_PREFIX, MQTT_ID_BYTES);
    h->layer_begin = le_get32(buf + OFF_LAYER_B);
    h->layer_end = le_get32(buf + OFF_LAYER_E);
    h->pos_begin = le_get32(buf + OFF_POS_B);
    h->pos_end = le_get32(buf + OFF_POS_E);
    h->codec = le_get32(buf + OFF_CODEC);
    h->chunk_index = le_get32(buf + OFF_CHUNK_I);
    h->chunk_count = le_get32(buf + OFF_CHUNK_N);
    h->chunk_size = le_get32(buf + OFF_CHUNK_SZ);
    h->seq = le_get64(buf + OFF_SEQ);
    h->xfer = le_get64(buf + OFF_XFER);
    h->total_len = le_get64(buf + OFF_TOTAL);
    memcpy(h->digest, buf + OFF_DIGEST, MQTT_ID_BYTES);
    h->body_len = le_get32(buf + OFF_BODY);
    /* The frame's own length first: body_len is attacker-controlled. */
    if ((uint64_t)len != (uint64_t)MQTT_FRAME_HDR_SIZE + h->body_len + MQTT_TAG_SIZE)
        return MQTT_ERR_TRUNCATED;
    int rc = hdr_check(h);
    if (rc) return rc;
    if (body) *body = buf + MQTT_FRAME_HDR_SIZE;
    if (tag) *tag = buf + MQTT_FRAME_HDR_SIZE + h->body_len;
    return MQTT_OK;
}
