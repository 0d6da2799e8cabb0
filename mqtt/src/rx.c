/* Receiving: strict checks, replay window, AEAD open, and reassembly into caller buffers.
 *
 * Order of checks for each frame, cheapest first, so that junk costs little:
 *   decode (lengths, geometry) -> model -> size limit -> replay window -> transfer slot
 *   (consistency with earlier chunks, duplicate chunk) -> AEAD open -> mark window ->
 *   place chunk -> when complete: sha256 of the whole payload -> deliver.
 * A frame that fails any step is counted under its reason and changes nothing else: the
 * replay window only moves for authenticated frames, and a peer slot is only taken by an
 * authenticated sender (so unauthenticated floods cannot evict anyone). */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <zstd.h>

#include "mqtt.h"

struct mqtt_rx_peer {
    bool used;
    char sender[MQTT_NODE_ID_MAX + 1];
    mqtt_replay win;
};

struct mqtt_rx_slot {
    bool used;
    int pool_idx;            /* index into cfg.pool, or -1 when lent by admit */
    mqtt_frame_hdr hdr;      /* of the first chunk: what later chunks must agree with */
    uint8_t *buf;
    size_t cap;
    uint32_t received;
    uint64_t last_ms;        /* last progress */
    uint8_t have[MQTT_MAX_CHUNKS / 8];
};

int mqtt_rx_init(mqtt_rx *rx, const mqtt_rx_cfg *cfg)
{
    if (!rx || !cfg || !cfg->keys || !cfg->deliver || cfg->max_transfers == 0 ||
        cfg->max_peers == 0 || (cfg->pool_count && (!cfg->pool || !cfg->pool_caps)))
        return MQTT_ERR_INVAL;
    memset(rx, 0, sizeof *rx);
    rx->cfg = *cfg;
    rx->peers = calloc(cfg->max_peers, sizeof *rx->peers);
    rx->slots = calloc(cfg->max_transfers, sizeof *rx->slots);
    rx->zbuf = malloc(MQTT_CHUNK_MAX);
    rx->zd = ZSTD_createDCtx();
    if (cfg->small_max) rx->small = malloc(cfg->small_max);
    rx->pool_used = cfg->pool_count ? calloc(cfg->pool_count, sizeof *rx->pool_used) : NULL;
    if (!rx->peers || !rx->slots || !rx->zbuf || !rx->zd || (cfg->small_max && !rx->small) ||
        (cfg->pool_count && !rx->pool_used)) {
        mqtt_rx_free(rx);
        return MQTT_ERR_NOMEM;
    }
    return MQTT_OK;
}

void mqtt_rx_free(mqtt_rx *rx)
{
    if (!rx) return;
    free(rx->peers);
    free(rx->slots);
    free(rx->zbuf);
    free(rx->small);
    free(rx->pool_used);
    ZSTD_freeDCtx(rx->zd);
    rx->peers = NULL;
    rx->slots = NULL;
    rx->zbuf = rx->small = NULL;
    rx->pool_used = NULL;
    rx->zd = NULL;
}

static int drop(mqtt_rx *rx, int reason, int status)
{
    rx->stats.drops[reason]++;
    return status;
}

static int drop_for_status(mqtt_rx *rx, int status)
{
    switch (status) {
    case MQTT_ERR_TRUNCATED: return drop(rx, MQTT_DROP_TRUNCATED, status);
    case MQTT_ERR_COUNT: return drop(rx, MQTT_DROP_COUNT, status);
    case MQTT_ERR_OVERSIZE: return drop(rx, MQTT_DROP_OVERSIZE, status);
    case MQTT_ERR_AUTH: return drop(rx, MQTT_DROP_AUTH, status);
    case MQTT_ERR_COMPRESS: return drop(rx, MQTT_DROP_DECOMPRESS, status);
    default: return drop(rx, MQTT_DROP_MALFORMED, status);
    }
}

static mqtt_rx_peer *peer_find(mqtt_rx *rx, const char *sender, mqtt_rx_peer **free_slot)
{
    if (free_slot) *free_slot = NULL;
    for (size_t i = 0; i < rx->cfg.max_peers; i++) {
        mqtt_rx_peer *p = &rx->peers[i];
        if (p->used && strcmp(p->sender, sender) == 0) return p;
        if (!p->used && free_slot && !*free_slot) *free_slot = p;
    }
    return NULL;
}

static mqtt_rx_slot *slot_find(const mqtt_rx *rx, const char *sender, uint64_t xfer)
{
    for (size_t i = 0; i < rx->cfg.max_transfers; i++) {
        mqtt_rx_slot *s = &rx->slots[i];
        if (s->used && s->hdr.xfer == xfer && strcmp(s->hdr.sender, sender) == 0) return s;
    }
    return NULL;
}

/* Announcements are retained state, not events: the broker hands the same old frame to
 * every new subscriber, long after the holder's counter moved on. They are authenticated
 * but not replay-windowed; re-presenting one can only point a fetcher at a holder that no
 * longer serves the cache, and no data is accepted without fresh, windowed frames. */
static bool windowed(uint8_t type)
{
    return type != MQTT_FT_KV_ANNOUNCE;
}

static bool model_bound(uint8_t type)
{
    return type == MQTT_FT_KV_CACHE || type == MQTT_FT_KV_ANNOUNCE || type == MQTT_FT_HIDDEN;
}

/* Everything but the per-chunk fields must match the transfer's first chunk. */
static bool consistent(const mqtt_frame_hdr *a, const mqtt_frame_hdr *b)
{
    return a->type == b->type && a->cipher == b->cipher &&
           memcmp(&a->model.fingerprint, &b->model.fingerprint, MQTT_ID_BYTES) == 0 &&
           a->model.numerics == b->model.numerics &&
           memcmp(a->prefix, b->prefix, MQTT_ID_BYTES) == 0 &&
           a->layer_begin == b->layer_begin && a->layer_end == b->layer_end &&
           a->pos_begin == b->pos_begin && a->pos_end == b->pos_end && a->codec == b->codec &&
           a->chunk_count == b->chunk_count && a->chunk_size == b->chunk_size &&
           a->total_len == b->total_len && memcmp(a->digest, b->digest, MQTT_ID_BYTES) == 0;
}

/* Gives the slot's buffer back (zeroed: its content is unverified) and frees the slot. */
static void slot_release(mqtt_rx *rx, mqtt_rx_slot *s, int reason)
{
    /* Only chunks that were placed hold anything (a failed open zeroes its own output);
     * zeroing the whole declared length would let one forged frame cost a full wipe. */
    mqtt_frame_hdr c = s->hdr;
    for (c.chunk_index = 0; s->received && c.chunk_index < c.chunk_count; c.chunk_index++)
        if (s->have[c.chunk_index / 8] & (1u << (c.chunk_index % 8)))
            mbedtls_platform_zeroize(s->buf + (uint64_t)c.chunk_index * c.chunk_size,
                                     mqtt_frame_chunk_plain_len(&c));
    if (s->pool_idx >= 0) rx->pool_used[s->pool_idx] = false;
    s->used = false;
    if (rx->cfg.release) rx->cfg.release(rx->cfg.user, &s->hdr, s->buf, reason);
}

/* Finds a buffer for a new transfer: the admit callback, or the smallest free pool buffer
 * that fits. Returns MQTT_OK or the drop reason as a negative status. */
static int slot_claim(mqtt_rx *rx, const mqtt_frame_hdr *h, mqtt_rx_slot **out, int *reason)
{
    mqtt_rx_slot *s = NULL;
    for (size_t i = 0; i < rx->cfg.max_transfers && !s; i++)
        if (!rx->slots[i].used) s = &rx->slots[i];
    if (!s) { *reason = MQTT_DROP_BUSY; return MQTT_ERR_BUSY; }
    uint8_t *buf = NULL;
    size_t cap = 0;
    int idx = -1;
    if (rx->cfg.admit) {
        if (!rx->cfg.admit(rx->cfg.user, h, &buf, &cap) || !buf) {
            *reason = MQTT_DROP_DECLINED;
            return MQTT_ERR_BUSY;
        }
        if (cap < h->total_len) {
            /* The application lent too little: give it back and refuse the transfer. */
            if (rx->cfg.release) rx->cfg.release(rx->cfg.user, h, buf, MQTT_DROP_OVERSIZE);
            *reason = MQTT_DROP_OVERSIZE;
            return MQTT_ERR_OVERSIZE;
        }
    } else {
        bool any_fits = false;
        for (size_t i = 0; i < rx->cfg.pool_count; i++) {
            if (rx->cfg.pool_caps[i] < h->total_len) continue;
            any_fits = true;
            if (rx->pool_used[i]) continue;
            if (idx < 0 || rx->cfg.pool_caps[i] < rx->cfg.pool_caps[idx]) idx = (int)i;
        }
        if (idx < 0) {
            *reason = any_fits ? MQTT_DROP_BUSY : MQTT_DROP_OVERSIZE;
            return any_fits ? MQTT_ERR_BUSY : MQTT_ERR_OVERSIZE;
        }
        buf = rx->cfg.pool[idx];
        cap = rx->cfg.pool_caps[idx];
        rx->pool_used[idx] = true;
    }
    memset(s, 0, sizeof *s);
    s->used = true;
    s->pool_idx = idx;
    s->hdr = *h;
    s->buf = buf;
    s->cap = cap;
    *out = s;
    return MQTT_OK;
}

/* Opens the frame's body into dst, which must take exactly the chunk's plaintext. */
static int open_chunk(mqtt_rx *rx, const mqtt_frame_hdr *h, const uint8_t *frame, uint8_t *dst,
                      uint32_t plain)
{
    if (!(h->flags & MQTT_FLAG_ZSTD)) return mqtt_open(rx->cfg.keys, h, frame, dst, plain);
    int rc = mqtt_open(rx->cfg.keys, h, frame, rx->zbuf, MQTT_CHUNK_MAX);
    if (rc) return rc;
    size_t n = ZSTD_decompressDCtx(rx->zd, dst, plain, rx->zbuf, h->body_len);
    if (ZSTD_isError(n) || n != plain) {
        mbedtls_platform_zeroize(dst, plain);
        return MQTT_ERR_COMPRESS;
    }
    return MQTT_OK;
}

static void accept_frame(mqtt_rx *rx, mqtt_rx_peer *peer, mqtt_rx_peer *free_peer,
                         const mqtt_frame_hdr *h)
{
    if (!peer) {
        peer = free_peer;
        memset(peer, 0, sizeof *peer);
        peer->used = true;
        memcpy(peer->sender, h->sender, sizeof peer->sender);
        mqtt_replay_reset(&peer->win);
    }
    if (windowed(h->type)) mqtt_replay_mark(&peer->win, h->seq);
    rx->stats.frames_ok++;
}

static void deliver(mqtt_rx *rx, const mqtt_frame_hdr *h, const uint8_t *p, size_t n)
{
    rx->stats.delivered++;
    rx->stats.delivered_bytes += n;
    rx->cfg.deliver(rx->cfg.user, h, p, n);
}

int mqtt_rx_input(mqtt_rx *rx, uint64_t now_ms, const uint8_t *frame, size_t len)
{
    if (!rx || !frame) return MQTT_ERR_INVAL;
    rx->stats.frames_in++;
    mqtt_frame_hdr h;
    int rc = mqtt_frame_decode(frame, len, &h, NULL, NULL);
    if (rc) return drop_for_status(rx, rc);
    if (rx->cfg.model && model_bound(h.type) &&
        (memcmp(h.model.fingerprint, rx->cfg.model->fingerprint, MQTT_ID_BYTES) != 0 ||
         h.model.numerics != rx->cfg.model->numerics))
        return drop(rx, MQTT_DROP_MODEL, MQTT_ERR_MODEL);
    if (rx->cfg.max_total && h.total_len > rx->cfg.max_total)
        return drop(rx, MQTT_DROP_OVERSIZE, MQTT_ERR_OVERSIZE);
    mqtt_rx_peer *free_peer;
    mqtt_rx_peer *peer = peer_find(rx, h.sender, &free_peer);
    if (peer && windowed(h.type) && mqtt_replay_check(&peer->win, h.seq))
        return drop(rx, MQTT_DROP_REPLAY, MQTT_ERR_REPLAY);
    if (!peer && !free_peer) return drop(rx, MQTT_DROP_PEERS, MQTT_ERR_BUSY);
    uint32_t plain = mqtt_frame_chunk_plain_len(&h);

    /* Single-chunk payloads that fit the small buffer need no slot. */
    if (h.chunk_count == 1 && rx->small && h.total_len <= rx->cfg.small_max) {
        rc = open_chunk(rx, &h, frame, rx->small, plain);
        if (rc) return drop_for_status(rx, rc);
        accept_frame(rx, peer, free_peer, &h);
        uint8_t d[MQTT_ID_BYTES];
        if (mqtt_sha256(rx->small, h.total_len, d) || memcmp(d, h.digest, sizeof d) != 0) {
            mbedtls_platform_zeroize(rx->small, plain);
            return drop(rx, MQTT_DROP_DIGEST, MQTT_ERR_DIGEST);
        }
        deliver(rx, &h, rx->small, (size_t)h.total_len);
        return MQTT_OK;
    }

    mqtt_rx_slot *s = slot_find(rx, h.sender, h.xfer);
    bool fresh = false;
    if (s) {
        if (!consistent(&s->hdr, &h)) return drop(rx, MQTT_DROP_INCONSISTENT, MQTT_ERR_INCONSISTENT);
        if (s->have[h.chunk_index / 8] & (1u << (h.chunk_index % 8)))
            return drop(rx, MQTT_DROP_REPLAY, MQTT_ERR_REPLAY); /* a resent chunk we hold */
    } else {
        int reason;
        rc = slot_claim(rx, &h, &s, &reason);
        if (rc) return drop(rx, reason, rc);
        fresh = true;
    }
    uint8_t *dst = s->buf + (uint64_t)h.chunk_index * h.chunk_size;
    rc = open_chunk(rx, &h, frame, dst, plain);
    if (rc) {
        if (fresh) slot_release(rx, s, rc == MQTT_ERR_AUTH ? MQTT_DROP_AUTH : MQTT_DROP_DECOMPRESS);
        return drop_for_status(rx, rc);
    }
    accept_frame(rx, peer, free_peer, &h);
    s->have[h.chunk_index / 8] |= (uint8_t)(1u << (h.chunk_index % 8));
    s->received++;
    s->last_ms = now_ms;
    if (s->received < s->hdr.chunk_count) return MQTT_OK;

    uint8_t d[MQTT_ID_BYTES];
    if (mqtt_sha256(s->buf, s->hdr.total_len, d) || memcmp(d, s->hdr.digest, sizeof d) != 0) {
        slot_release(rx, s, MQTT_DROP_DIGEST);
        return drop(rx, MQTT_DROP_DIGEST, MQTT_ERR_DIGEST);
    }
    mqtt_frame_hdr last = h;
    uint8_t *buf = s->buf;
    size_t n = (size_t)s->hdr.total_len;
    if (s->pool_idx >= 0) rx->pool_used[s->pool_idx] = false;
    s->used = false;
    deliver(rx, &last, buf, n);
    return MQTT_OK;
}

int mqtt_rx_tick(mqtt_rx *rx, uint64_t now_ms)
{
    int n = 0;
    for (size_t i = 0; rx && i < rx->cfg.max_transfers; i++) {
        mqtt_rx_slot *s = &rx->slots[i];
        if (s->used && now_ms - s->last_ms >= rx->cfg.timeout_ms) {
            rx->stats.drops[MQTT_DROP_STALLED]++;
            slot_release(rx, s, MQTT_DROP_STALLED);
            n++;
        }
    }
    return n;
}

int mqtt_rx_abandon(mqtt_rx *rx, const char *sender, uint64_t xfer, int reason)
{
    if (!rx || !sender || reason < 0 || reason >= MQTT_DROP_REASONS_) return 0;
    mqtt_rx_slot *s = slot_find(rx, sender, xfer);
    if (!s) return 0;
    rx->stats.drops[reason]++;
    slot_release(rx, s, reason);
    return 1;
}

int mqtt_rx_abandon_sender(mqtt_rx *rx, const char *sender)
{
    int n = 0;
    for (size_t i = 0; rx && sender && i < rx->cfg.max_transfers; i++) {
        mqtt_rx_slot *s = &rx->slots[i];
        if (s->used && strcmp(s->hdr.sender, sender) == 0) {
            rx->stats.drops[MQTT_DROP_PEER_GONE]++;
            slot_release(rx, s, MQTT_DROP_PEER_GONE);
            n++;
        }
    }
    return n;
}

int mqtt_rx_missing(const mqtt_rx *rx, const char *sender, uint64_t xfer, uint8_t *bitmap,
                    size_t nbits)
{
    if (!rx || !sender || !bitmap) return MQTT_ERR_INVAL;
    const mqtt_rx_slot *s = slot_find(rx, sender, xfer);
    if (!s) return MQTT_ERR_NOT_FOUND;
    if (nbits < s->hdr.chunk_count) return MQTT_ERR_SPACE;
    memset(bitmap, 0, (s->hdr.chunk_count + 7) / 8);
    int missing = 0;
    for (uint32_t i = 0; i < s->hdr.chunk_count; i++) {
        if (!(s->have[i / 8] & (1u << (i % 8)))) {
            bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
            missing++;
        }
    }
    return missing;
}

size_t mqtt_rx_active(const mqtt_rx *rx)
{
    size_t n = 0;
    for (size_t i = 0; rx && i < rx->cfg.max_transfers; i++) n += rx->slots[i].used;
    return n;
}

uint64_t mqtt_rx_drops_total(const mqtt_rx *rx)
{
    uint64_t n = 0;
    for (int i = 0; rx && i < MQTT_DROP_REASONS_; i++) n += rx->stats.drops[i];
    return n;
}
