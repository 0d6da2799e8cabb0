/* Bodies of the directory messages (announce, request, response): fixed little-endian
 * layouts, sealed like any other frame. Decoders check every length first. */
#include <string.h>

#include "le.h"
#include "mqtt.h"

/* Reads a NUL-padded node id field of 32 bytes. */
static int get_node(const uint8_t *p, char out[MQTT_NODE_ID_MAX + 1])
{
    size_t n = 0;
    while (n <= MQTT_NODE_ID_MAX && p[n]) n++;
    if (n > MQTT_NODE_ID_MAX) return MQTT_ERR_MALFORMED;
    for (size_t i = n; i <= MQTT_NODE_ID_MAX; i++)
        if (p[i]) return MQTT_ERR_MALFORMED;
    memcpy(out, p, n);
    out[n] = '\0';
    return mqtt_node_id_valid(out) ? MQTT_OK : MQTT_ERR_MALFORMED;
}

static void put_node(uint8_t *p, const char *id)
{
    memset(p, 0, MQTT_NODE_ID_MAX + 1);
    memcpy(p, id, strlen(id));
}

/* announce: size u64 | holder[32] | chunk_size u32 | flags u32  = 48 bytes */
int mqtt_announce_encode(const mqtt_announce *a, uint8_t *out, size_t cap)
{
    if (!a || !out || !mqtt_node_id_valid(a->holder)) return MQTT_ERR_INVAL;
    if (cap < MQTT_ANNOUNCE_SIZE) return MQTT_ERR_SPACE;
    le_put64(out, a->size);
    put_node(out + 8, a->holder);
    le_put32(out + 40, a->chunk_size);
    le_put32(out + 44, a->flags);
    return MQTT_OK;
}

int mqtt_announce_decode(const uint8_t *in, size_t len, mqtt_announce *a)
{
    if (!in || !a) return MQTT_ERR_INVAL;
    if (len != MQTT_ANNOUNCE_SIZE) return MQTT_ERR_TRUNCATED;
    a->size = le_get64(in);
    if (get_node(in + 8, a->holder)) return MQTT_ERR_MALFORMED;
    a->chunk_size = le_get32(in + 40);
    a->flags = le_get32(in + 44);
    if (a->flags) return MQTT_ERR_MALFORMED;
    return MQTT_OK;
}

/* request: op u32 | expiry_s u32 | xfer u64 | reply_to[32] | bitmap_bits u32 | pad u32
 *          = 56 bytes, then (bitmap_bits + 7) / 8 bitmap bytes */
int mqtt_request_encode(const mqtt_request *r, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!r || !out || !out_len || !mqtt_node_id_valid(r->reply_to) ||
        r->bitmap_bits > MQTT_MAX_CHUNKS || (r->bitmap_bits && !r->bitmap))
        return MQTT_ERR_INVAL;
    size_t bm = (r->bitmap_bits + 7) / 8;
    if (cap < MQTT_REQUEST_FIXED + bm) return MQTT_ERR_SPACE;
    le_put32(out, r->op);
    le_put32(out + 4, r->expiry_s);
    le_put64(out + 8, r->xfer);
    put_node(out + 16, r->reply_to);
    le_put32(out + 48, r->bitmap_bits);
    le_put32(out + 52, 0);
    if (bm) memcpy(out + MQTT_REQUEST_FIXED, r->bitmap, bm);
    *out_len = MQTT_REQUEST_FIXED + bm;
    return MQTT_OK;
}

int mqtt_request_decode(const uint8_t *in, size_t len, mqtt_request *r)
{
    if (!in || !r) return MQTT_ERR_INVAL;
    if (len < MQTT_REQUEST_FIXED) return MQTT_ERR_TRUNCATED;
    r->op = le_get32(in);
    r->expiry_s = le_get32(in + 4);
    r->xfer = le_get64(in + 8);
    if (get_node(in + 16, r->reply_to)) return MQTT_ERR_MALFORMED;
    r->bitmap_bits = le_get32(in + 48);
    if (le_get32(in + 52) || r->op != MQTT_REQ_FETCH || r->bitmap_bits > MQTT_MAX_CHUNKS)
        return MQTT_ERR_MALFORMED;
    if (len != MQTT_REQUEST_FIXED + (r->bitmap_bits + 7) / 8) return MQTT_ERR_TRUNCATED;
    r->bitmap = r->bitmap_bits ? in + MQTT_REQUEST_FIXED : NULL;
    return MQTT_OK;
}

/* response: status i32 | chunks u32 | xfer u64 | size u64  = 24 bytes */
int mqtt_response_encode(const mqtt_response *r, uint8_t *out, size_t cap)
{
    if (!r || !out) return MQTT_ERR_INVAL;
    if (cap < MQTT_RESPONSE_SIZE) return MQTT_ERR_SPACE;
    le_put32(out, (uint32_t)r->status);
    le_put32(out + 4, r->chunks);
    le_put64(out + 8, r->xfer);
    le_put64(out + 16, r->size);
    return MQTT_OK;
}

int mqtt_response_decode(const uint8_t *in, size_t len, mqtt_response *r)
{
    if (!in || !r) return MQTT_ERR_INVAL;
    if (len != MQTT_RESPONSE_SIZE) return MQTT_ERR_TRUNCATED;
    r->status = (int32_t)le_get32(in);
    r->chunks = le_get32(in + 4);
    r->xfer = le_get64(in + 8);
    r->size = le_get64(in + 16);
    if (r->status > 0 || r->chunks > MQTT_MAX_CHUNKS) return MQTT_ERR_MALFORMED;
    return MQTT_OK;
}
