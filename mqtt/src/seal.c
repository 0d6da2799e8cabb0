/* Sealing: HKDF-SHA256 key derivation and AEAD (ChaCha20-Poly1305 or AES-256-GCM) over
 * frames, with the encoded header as additional data, through mbedTLS 2.28.
 *
 * Keys are derived per (purpose, cipher, sender): a frame of one purpose can never be
 * opened as another, and nonce uniqueness is only needed within one sender's counter. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "le.h"
#include "mqtt.h"

static const char *const purpose_names[] = { "kv", "hidden", "text", "cmd" };
static const char *const cipher_names[] = { "chacha20-poly1305", "aes-256-gcm" };

int mqtt_keys_init(mqtt_keys *k, const uint8_t *secret, size_t secret_len, const char *fleet)
{
    if (!k || !secret || secret_len < 16 || secret_len > MQTT_SECRET_MAX || !fleet)
        return MQTT_ERR_INVAL;
    memset(k, 0, sizeof *k);
    memcpy(k->secret, secret, secret_len);
    k->secret_len = secret_len;
    int n = snprintf((char *)k->salt, sizeof k->salt, "kvmesh v1 fleet %s", fleet);
    k->salt_len = n < 0 ? 0 : ((size_t)n < sizeof k->salt ? (size_t)n : sizeof k->salt - 1);
    return MQTT_OK;
}

void mqtt_keys_wipe(mqtt_keys *k)
{
    if (k) mbedtls_platform_zeroize(k, sizeof *k);
}

int mqtt_keys_load_secret(const char *path, uint8_t *secret, size_t cap, size_t *len)
{
    if (!path || !secret || !len) return MQTT_ERR_INVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MQTT_ERR_IO;
    uint8_t raw[300];
    ssize_t n = read(fd, raw, sizeof raw);
    close(fd);
    if (n <= 0) return MQTT_ERR_IO;
    /* Hex if every byte is a hex digit or whitespace. */
    char hex[sizeof raw + 1];
    size_t h = 0;
    bool is_hex = true;
    for (ssize_t i = 0; i < n; i++) {
        char c = (char)raw[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            is_hex = false;
            break;
        }
        hex[h++] = c;
    }
    int rc = MQTT_OK;
    if (is_hex && h >= 32 && h <= 128 && h % 2 == 0) {
        hex[h] = '\0';
        if (h / 2 > cap) rc = MQTT_ERR_INVAL;
        else if (mqtt_hex_decode(hex, secret, h / 2)) rc = MQTT_ERR_INVAL;
        else *len = h / 2;
    } else if ((size_t)n >= 16 && (size_t)n <= cap && (size_t)n <= MQTT_SECRET_MAX) {
        memcpy(secret, raw, (size_t)n);
        *len = (size_t)n;
    } else {
        rc = MQTT_ERR_INVAL;
    }
    mbedtls_platform_zeroize(raw, sizeof raw);
    mbedtls_platform_zeroize(hex, sizeof hex);
    return rc;
}

int mqtt_keys_derive(const mqtt_keys *k, int purpose, int cipher, const char *sender,
                     uint8_t key[32])
{
    if (!k || !sender || purpose < 0 || purpose > MQTT_PURPOSE_CMD || cipher < 0 ||
        cipher > MQTT_CIPHER_AES256GCM || !mqtt_node_id_valid(sender))
        return MQTT_ERR_INVAL;
    /* info = "kvmesh v1 <purpose> <cipher>" 0x00 <sender> */
    char info[96];
    int n = snprintf(info, sizeof info, "kvmesh v1 %s %s", purpose_names[purpose],
                     cipher_names[cipher]);
    size_t sl = strlen(sender);
    if (n < 0 || (size_t)n + 1 + sl > sizeof info) return MQTT_ERR_INVAL;
    info[n] = '\0';
    memcpy(info + n + 1, sender, sl);
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (mbedtls_hkdf(md, k->salt, k->salt_len, k->secret, k->secret_len,
                     (const unsigned char *)info, (size_t)n + 1 + sl, key, 32) != 0)
        return MQTT_ERR_CRYPTO;
    return MQTT_OK;
}

void mqtt_nonce_build(const char *sender, uint64_t seq, uint8_t nonce[12])
{
    uint8_t d[32];
    mbedtls_sha256_ret((const unsigned char *)sender, strlen(sender), d, 0);
    memcpy(nonce, d, 4);
    le_put64(nonce + 4, seq);
}

/* One AEAD operation in either direction; aad is the encoded header. */
static int aead(int cipher, const uint8_t key[32], const uint8_t nonce[12], bool enc,
                const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                uint8_t *out, uint8_t tag[MQTT_TAG_SIZE])
{
    int r;
    if (cipher == MQTT_CIPHER_CHACHAPOLY) {
        mbedtls_chachapoly_context c;
        mbedtls_chachapoly_init(&c);
        r = mbedtls_chachapoly_setkey(&c, key);
        if (r == 0)
            r = enc ? mbedtls_chachapoly_encrypt_and_tag(&c, len, nonce, aad, aad_len, in, out, tag)
                    : mbedtls_chachapoly_auth_decrypt(&c, len, nonce, aad, aad_len, tag, in, out);
        mbedtls_chachapoly_free(&c);
        if (r == MBEDTLS_ERR_CHACHAPOLY_AUTH_FAILED) return MQTT_ERR_AUTH;
    } else {
        mbedtls_gcm_context g;
        mbedtls_gcm_init(&g);
        r = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256);
        if (r == 0)
            r = enc ? mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, len, nonce, 12, aad,
                                                aad_len, in, out, MQTT_TAG_SIZE, tag)
                    : mbedtls_gcm_auth_decrypt(&g, len, nonce, 12, aad, aad_len, tag,
                                               MQTT_TAG_SIZE, in, out);
        mbedtls_gcm_free(&g);
        if (r == MBEDTLS_ERR_GCM_AUTH_FAILED) return MQTT_ERR_AUTH;
    }
    return r == 0 ? MQTT_OK : MQTT_ERR_CRYPTO;
}

int mqtt_seal(const mqtt_keys *k, mqtt_frame_hdr *h, const uint8_t *plain, uint32_t body_len,
              uint8_t *out, size_t cap, size_t *out_len)
{
    if (!k || !h || (!plain && body_len) || !out || !out_len) return MQTT_ERR_INVAL;
    size_t need = (size_t)MQTT_FRAME_HDR_SIZE + body_len + MQTT_TAG_SIZE;
    if (cap < need) return MQTT_ERR_SPACE;
    h->body_len = body_len;
    int rc = mqtt_frame_encode(h, out, cap);
    if (rc) return rc;
    int purpose = mqtt_frame_purpose(h->type);
    uint8_t key[32], nonce[12];
    rc = mqtt_keys_derive(k, purpose, h->cipher, h->sender, key);
    if (rc) return rc;
    mqtt_nonce_build(h->sender, h->seq, nonce);
    rc = aead(h->cipher, key, nonce, true, out, MQTT_FRAME_HDR_SIZE, plain, body_len,
              out + MQTT_FRAME_HDR_SIZE, out + MQTT_FRAME_HDR_SIZE + body_len);
    mbedtls_platform_zeroize(key, sizeof key);
    if (rc) return rc;
    *out_len = need;
    return MQTT_OK;
}

int mqtt_open(const mqtt_keys *k, const mqtt_frame_hdr *h, const uint8_t *raw,
              uint8_t *out, size_t cap)
{
    if (!k || !h || !raw || (!out && h->body_len)) return MQTT_ERR_INVAL;
    if (cap < h->body_len) return MQTT_ERR_SPACE;
    int purpose = mqtt_frame_purpose(h->type);
    uint8_t key[32], nonce[12], tag[MQTT_TAG_SIZE];
    int rc = mqtt_keys_derive(k, purpose, h->cipher, h->sender, key);
    if (rc) return rc;
    mqtt_nonce_build(h->sender, h->seq, nonce);
    memcpy(tag, raw + MQTT_FRAME_HDR_SIZE + h->body_len, MQTT_TAG_SIZE);
    rc = aead(h->cipher, key, nonce, false, raw, MQTT_FRAME_HDR_SIZE,
              raw + MQTT_FRAME_HDR_SIZE, h->body_len, out, tag);
    mbedtls_platform_zeroize(key, sizeof key);
    if (rc && out) mbedtls_platform_zeroize(out, h->body_len);
    return rc;
}

int mqtt_sha256(const uint8_t *data, uint64_t len, uint8_t out[MQTT_ID_BYTES])
{
    if (!out || (!data && len)) return MQTT_ERR_INVAL;
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    int r = mbedtls_sha256_starts_ret(&c, 0);
    /* Feed in pieces: size_t may be 32 bits on some targets. */
    while (r == 0 && len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : (size_t)len;
        r = mbedtls_sha256_update_ret(&c, data, n);
        data += n;
        len -= n;
    }
    if (r == 0) r = mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    return r == 0 ? MQTT_OK : MQTT_ERR_CRYPTO;
}
