/* Sending: a payload becomes chunk frames of at most chunk_size plaintext bytes, each
 * sealed with a fresh counter value. Chunks can be built in any order and again (resume),
 * so the caller controls pacing and memory: one frame buffer is enough. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>
#include <zstd.h>

#include "mqtt.h"

int mqtt_tx_init(mqtt_tx *tx, const mqtt_tx_cfg *cfg)
{
    if (!tx || !cfg || !cfg->keys || !cfg->seq || !mqtt_node_id_valid(cfg->sender) ||
        cfg->cipher > MQTT_CIPHER_AES256GCM)
        return MQTT_ERR_INVAL;
    memset(tx, 0, sizeof *tx);
    tx->cfg = *cfg;
    if (!tx->cfg.chunk_size) tx->cfg.chunk_size = MQTT_CHUNK_DEFAULT;
    if (tx->cfg.chunk_size < MQTT_CHUNK_MIN || tx->cfg.chunk_size > MQTT_CHUNK_MAX)
        return MQTT_ERR_INVAL;
    snprintf(tx->sender, sizeof tx->sender, "%s", cfg->sender);
    tx->cfg.sender = tx->sender;
    if (cfg->zstd_level) {
        tx->zc = ZSTD_createCCtx();
        tx->zcap = tx->cfg.chunk_size;
        tx->zbuf = malloc(tx->zcap);
        if (!tx->zc || !tx->zbuf) {
            mqtt_tx_free(tx);
            return MQTT_ERR_NOMEM;
        }
    }
    return MQTT_OK;
}

void mqtt_tx_free(mqtt_tx *tx)
{
    if (!tx) return;
    ZSTD_freeCCtx(tx->zc);
    free(tx->zbuf);
    tx->zc = NULL;
    tx->zbuf = NULL;
}

int mqtt_tx_begin(mqtt_tx *tx, mqtt_tx_xfer *x, const mqtt_frame_hdr *tmpl,
                  const uint8_t *payload, uint64_t len)
{
    if (!tx || !x || !tmpl || (!payload && len)) return MQTT_ERR_INVAL;
    if (len > (uint64_t)MQTT_MAX_CHUNKS * tx->cfg.chunk_size) return MQTT_ERR_OVERSIZE;
    mqtt_frame_hdr *h = &x->hdr;
    memset(h, 0, sizeof *h);
    h->version = MQTT_FRAME_VERSION;
    h->type = tmpl->type;
    h->cipher = tx->cfg.cipher;
    memcpy(h->sender, tx->sender, sizeof h->sender);
    h->model = tmpl->model;
    memcpy(h->prefix, tmpl->prefix, sizeof h->prefix);
    h->layer_begin = tmpl->layer_begin;
    h->layer_end = tmpl->layer_end;
    h->pos_begin = tmpl->pos_begin;
    h->pos_end = tmpl->pos_end;
    h->codec = tmpl->codec;
    h->chunk_size = tx->cfg.chunk_size;
    h->total_len = len;
    h->chunk_count = len == 0 ? 1 : (uint32_t)((len + h->chunk_size - 1) / h->chunk_size);
    if (mqtt_frame_purpose(h->type) < 0) return MQTT_ERR_INVAL;
    if (mqtt_sha256(payload, len, h->digest)) return MQTT_ERR_CRYPTO;
    h->xfer = tmpl->xfer;
    if (!h->xfer) {
        int rc = mqtt_seq_next(tx->cfg.seq, &h->xfer);
        if (rc) return rc;
    }
    x->payload = payload;
    return MQTT_OK;
}

int mqtt_tx_chunk(mqtt_tx *tx, mqtt_tx_xfer *x, uint32_t index, uint8_t *out, size_t cap,
                  size_t *out_len)
{
    if (!tx || !x || !out || !out_len || index >= x->hdr.chunk_count) return MQTT_ERR_INVAL;
    mqtt_frame_hdr h = x->hdr;
    h.chunk_index = index;
    h.flags = 0;
    uint32_t plain = mqtt_frame_chunk_plain_len(&h);
    const uint8_t *src = x->payload ? x->payload + (uint64_t)index * h.chunk_size : NULL;
    const uint8_t *body = src;
    uint32_t body_len = plain;
    if (tx->zc && plain > 0) {
        /* Compress only when it shrinks the chunk: the output cap is plain - 1. */
        size_t z = ZSTD_compressCCtx(tx->zc, tx->zbuf, plain - 1, src, plain, tx->cfg.zstd_level);
        if (!ZSTD_isError(z) && z > 0 && z < plain) {
            body = tx->zbuf;
            body_len = (uint32_t)z;
            h.flags |= MQTT_FLAG_ZSTD;
        }
    }
    int rc = mqtt_seq_next(tx->cfg.seq, &h.seq);
    if (rc) return rc;
    return mqtt_seal(tx->cfg.keys, &h, body, body_len, out, cap, out_len);
}
