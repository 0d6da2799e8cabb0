/*
 * mqtt.h - kvmesh peer layer, part 1: the pure core.
 *
 * Everything in this header is free of I/O and clocks: callers pass buffers, the time
 * ("now_ms") and the counter store. It carries KV caches, hidden states, prompts and
 * tokens as typed, opaque payloads plus metadata; it never interprets them.
 *
 *   frame codec   mqtt_frame_encode / mqtt_frame_decode: the fixed 200-byte,
 *                 little-endian header described in docs/mqtt.md.
 *   keys, sealing mqtt_keys_init, mqtt_seal / mqtt_open: ChaCha20-Poly1305 (default) or
 *                 AES-256-GCM through mbedTLS 2.28; keys from the fleet secret by
 *                 HKDF-SHA256, one per (purpose, cipher, sender); the header is the AEAD
 *                 additional data; nonce = 4 bytes of SHA-256(sender) || 8-byte counter.
 *   counters      mqtt_seq: the per-sender frame counter. Its base comes from an injected
 *                 reservation store (mqtt_seqfile_* is the file-backed one), so that a
 *                 nonce is never reused across restarts.
 *   replay        mqtt_replay: a sliding 1024-frame bitmap per sender.
 *   send          mqtt_tx: splits a payload into sealed chunk frames, one at a time, into
 *                 a caller buffer (any chunk, any order: resends are cheap).
 *   receive       mqtt_rx: checks, opens and reassembles frames into caller-provided
 *                 buffers; drops and counts everything incomplete, tampered, replayed,
 *                 oversized or for another model. Nothing unverified is ever delivered.
 *   topics        mqtt_topic_*: the topic scheme under a configurable root.
 *
 * The libmosquitto session and the cache directory service are in mqtt_session.h.
 *
 * Example: seal a 1 MiB payload on one side and reassemble it on the other.
 *
 *     mqtt_keys keys;                       // same fleet secret on both sides
 *     mqtt_keys_init(&keys, secret, 32, "lab");
 *     mqtt_seq seq;                         // counter reserved from a state file
 *     mqtt_seqfile sf;
 *     mqtt_seqfile_open(&sf, "/var/lib/kvmesh/nonce");
 *     mqtt_seq_init(&seq, mqtt_seqfile_reserve, &sf);
 *
 *     mqtt_tx tx;
 *     mqtt_tx_cfg tc = { .keys = &keys, .seq = &seq, .sender = "pi4-a" };
 *     mqtt_tx_init(&tx, &tc);
 *     mqtt_frame_hdr h = { .type = MQTT_FT_KV_CACHE, .model = model, .codec = 3 };
 *     memcpy(h.prefix, prefix, 32);
 *     mqtt_tx_xfer x;
 *     mqtt_tx_begin(&tx, &x, &h, payload, len);
 *     for (uint32_t i = 0; i < x.hdr.chunk_count; i++) {
 *         size_t n;
 *         mqtt_tx_chunk(&tx, &x, i, frame, sizeof frame, &n);
 *         publish(frame, n);
 *     }
 *
 *     // Receiver: a pool of caller buffers and a callback for verified payloads.
 *     uint8_t *bufs[1] = { big };  size_t caps[1] = { sizeof big };
 *     mqtt_rx_cfg rc = { .keys = &keys, .model = &model, .timeout_ms = 10000,
 *                        .max_transfers = 1, .max_peers = 16, .pool = bufs,
 *                        .pool_caps = caps, .pool_count = 1, .deliver = on_payload };
 *     mqtt_rx rx;
 *     mqtt_rx_init(&rx, &rc);
 *     mqtt_rx_input(&rx, now_ms, frame, n);  // on_payload(user, hdr, bytes, len) once
 *                                            // every chunk verified and sha256 matched
 *
 * Ownership: contexts (mqtt_tx, mqtt_rx, ...) are caller-owned structs; the _init
 * functions may allocate (zstd contexts, tables) and the matching _free releases; nothing
 * allocates afterwards. _free functions accept NULL.
 */
#ifndef MQTT_H
#define MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------------------ */

/* One status for the whole module: 0 is success, negative values are errors. */
typedef enum {
    MQTT_OK = 0,
    MQTT_ERR_INVAL = -1,        /* bad argument or configuration */
    MQTT_ERR_NOMEM = -2,        /* allocation failed (init only) */
    MQTT_ERR_SPACE = -3,        /* caller buffer too small */
    MQTT_ERR_MAGIC = -4,        /* not a kvmesh frame */
    MQTT_ERR_VERSION = -5,      /* unknown frame version */
    MQTT_ERR_TRUNCATED = -6,    /* a length does not match the bytes present */
    MQTT_ERR_MALFORMED = -7,    /* a field is out of range */
    MQTT_ERR_COUNT = -8,        /* chunk count/index disagrees with total length and chunk size */
    MQTT_ERR_OVERSIZE = -9,     /* payload larger than allowed */
    MQTT_ERR_AUTH = -10,        /* AEAD tag did not verify: tampered, or a different key */
    MQTT_ERR_REPLAY = -11,      /* frame counter already seen or too old */
    MQTT_ERR_MODEL = -12,       /* for another model identity */
    MQTT_ERR_DIGEST = -13,      /* reassembled payload does not match its sha256 */
    MQTT_ERR_CRYPTO = -14,      /* mbedTLS failure other than authentication */
    MQTT_ERR_COMPRESS = -15,    /* zstd failure, or a chunk that decompresses to the wrong size */
    MQTT_ERR_IO = -16,          /* state file or socket error (errno-level failure) */
    MQTT_ERR_EXHAUSTED = -17,   /* nonce counter space exhausted */
    MQTT_ERR_BUSY = -18,        /* no free slot (transfers, peers, subscriptions) */
    MQTT_ERR_NO_CONN = -19,     /* not connected to the broker */
    MQTT_ERR_UNREACHABLE = -20, /* broker unreachable after the configured retries */
    MQTT_ERR_REFUSED = -21,     /* broker refused the connection (credentials, authorization) */
    MQTT_ERR_TIMEOUT = -22,     /* deadline passed */
    MQTT_ERR_NOT_FOUND = -23,   /* nobody announced the requested cache, or it is gone */
    MQTT_ERR_PEER_GONE = -24,   /* the peer went offline mid-transfer */
    MQTT_ERR_PROTOCOL = -25,    /* libmosquitto/protocol error not covered above */
    MQTT_ERR_INCONSISTENT = -26,/* a chunk disagrees with the rest of its transfer */
    MQTT_ERR_TLS = -27          /* TLS handshake or certificate verification failed */
} mqtt_status;

/* Static, never NULL, also for unknown values. */
const char *mqtt_strerror(int status);

/* ---- identities ---------------------------------------------------------------------- */

#define MQTT_NODE_ID_MAX 31      /* chars; [A-Za-z0-9_-], stored NUL-padded in 32 bytes */
#define MQTT_ID_BYTES 32         /* model fingerprint, prefix id, digest */

/* The identity a KV cache is bound to: sha256 of the model image plus its numerics. */
typedef struct {
    uint8_t fingerprint[MQTT_ID_BYTES];
    uint32_t numerics;
} mqtt_model_id;

/* True when id is 1..MQTT_NODE_ID_MAX characters of [A-Za-z0-9_-]. */
bool mqtt_node_id_valid(const char *id);

/* Hex helpers: out gets 2*n chars plus NUL. parse returns MQTT_OK only for exactly 2*n
 * hex digits. */
void mqtt_hex_encode(const uint8_t *in, size_t n, char *out);
int mqtt_hex_decode(const char *hex, uint8_t *out, size_t n);

/* ---- frame codec ----------------------------------------------------------------------- */

#define MQTT_FRAME_MAGIC 0x464D564Bu  /* "KVMF" as little-endian bytes */
#define MQTT_FRAME_VERSION 1
#define MQTT_FRAME_HDR_SIZE 200       /* bytes on the wire, fixed */
#define MQTT_TAG_SIZE 16              /* AEAD tag after the body */
#define MQTT_CHUNK_MIN 1024u          /* smallest chunk size a sender may declare */
#define MQTT_CHUNK_MAX (1024u * 1024u)/* largest: brokers commonly cap packets at 2 MB */
#define MQTT_CHUNK_DEFAULT (256u * 1024u)
#define MQTT_MAX_CHUNKS 8192u         /* per transfer: 2 GiB at the default chunk size */

/* Frame types. The sealing purpose of each is fixed (see mqtt_frame_purpose). */
typedef enum {
    MQTT_FT_KV_CACHE = 1,    /* KV cache bytes (engine codec is opaque: hdr.codec) */
    MQTT_FT_KV_ANNOUNCE = 2, /* "I hold this cache": mqtt_announce body */
    MQTT_FT_HIDDEN = 3,      /* hidden states (split / early exit) */
    MQTT_FT_PROMPT = 4,      /* prompt text */
    MQTT_FT_TOKENS = 5,      /* token ids */
    MQTT_FT_REQUEST = 6,     /* mqtt_request body */
    MQTT_FT_RESPONSE = 7,    /* mqtt_response body */
    MQTT_FT_COMMAND = 8,     /* application command (opaque) */
    MQTT_FT_MAX_ = 8
} mqtt_frame_type;

/* Header flags. */
#define MQTT_FLAG_ZSTD 0x01u   /* this chunk's body is zstd-compressed before sealing */
#define MQTT_FLAG_KNOWN_ MQTT_FLAG_ZSTD

/* AEAD choice, carried in the header so that receivers accept both. */
typedef enum {
    MQTT_CIPHER_CHACHAPOLY = 0,  /* ChaCha20-Poly1305: default; fast without AES hardware */
    MQTT_CIPHER_AES256GCM = 1
} mqtt_cipher;

/* Key purposes: frames of different purposes are sealed with unrelated keys. */
typedef enum {
    MQTT_PURPOSE_KV = 0,     /* "kvmesh v1 kv": KV_CACHE, KV_ANNOUNCE */
    MQTT_PURPOSE_HIDDEN = 1, /* "kvmesh v1 hidden": HIDDEN */
    MQTT_PURPOSE_TEXT = 2,   /* "kvmesh v1 text": PROMPT, TOKENS */
    MQTT_PURPOSE_CMD = 3     /* "kvmesh v1 cmd": REQUEST, RESPONSE, COMMAND */
} mqtt_purpose;

/* The header in host form. Ranges are half-open [begin, end). */
typedef struct {
    uint8_t version;       /* MQTT_FRAME_VERSION */
    uint8_t type;          /* mqtt_frame_type */
    uint8_t cipher;        /* mqtt_cipher */
    uint8_t flags;         /* MQTT_FLAG_* */
    char sender[MQTT_NODE_ID_MAX + 1];
    mqtt_model_id model;
    uint8_t prefix[MQTT_ID_BYTES];
    uint32_t layer_begin, layer_end;
    uint32_t pos_begin, pos_end;
    uint32_t codec;        /* engine's KV codec, opaque here */
    uint32_t chunk_index;  /* 0 .. chunk_count-1 */
    uint32_t chunk_count;  /* == max(1, ceil(total_len / chunk_size)) */
    uint32_t chunk_size;   /* plaintext bytes per chunk (the last may be shorter) */
    uint64_t seq;          /* sender's frame counter: nonce and replay window */
    uint64_t xfer;         /* transfer id, unique per sender */
    uint64_t total_len;    /* plaintext bytes of the whole payload */
    uint8_t digest[MQTT_ID_BYTES]; /* sha256 of the whole plaintext payload */
    uint32_t body_len;     /* bytes between header and tag */
} mqtt_frame_hdr;

/* SHA-256 of len bytes (the digest frames carry). Returns MQTT_OK or MQTT_ERR_CRYPTO. */
int mqtt_sha256(const uint8_t *data, uint64_t len, uint8_t out[MQTT_ID_BYTES]);

/* Plaintext bytes chunk h->chunk_index carries (depends on total_len and chunk_size). */
uint32_t mqtt_frame_chunk_plain_len(const mqtt_frame_hdr *h);

/* Purpose a frame type is sealed under; -1 for an unknown type. */
int mqtt_frame_purpose(uint8_t type);

/* Largest frame on the wire for a chunk size (header + body + slack + tag). */
size_t mqtt_frame_size_max(uint32_t chunk_size);

/* Writes the 200-byte header to out. Checks h the same way decode does.
 * Returns MQTT_OK, MQTT_ERR_SPACE (cap < 200), or the decode error h would cause. */
int mqtt_frame_encode(const mqtt_frame_hdr *h, uint8_t *out, size_t cap);

/* Parses and validates a whole frame of len bytes: the header, then that
 * len == 200 + body_len + 16, the chunk geometry, and the body length the chunk must have.
 * On success *body points into buf (valid as long as buf) and *tag at the 16 tag bytes.
 * Returns MQTT_OK, MQTT_ERR_TRUNCATED, MQTT_ERR_MAGIC, MQTT_ERR_VERSION,
 * MQTT_ERR_MALFORMED, MQTT_ERR_COUNT or MQTT_ERR_OVERSIZE. Nothing is read past len. */
int mqtt_frame_decode(const uint8_t *buf, size_t len, mqtt_frame_hdr *h,
                      const uint8_t **body, const uint8_t **tag);

/* ---- keys and sealing -------------------------------------------------------------------- */

#define MQTT_SECRET_MAX 64

typedef struct {
    uint8_t secret[MQTT_SECRET_MAX];
    size_t secret_len;
    uint8_t salt[64];      /* "kvmesh v1 fleet " + fleet name, truncated */
    size_t salt_len;
} mqtt_keys;

/* Keeps a copy of the fleet secret (16..64 bytes) and the fleet name (the HKDF salt).
 * Returns MQTT_OK or MQTT_ERR_INVAL. */
int mqtt_keys_init(mqtt_keys *k, const uint8_t *secret, size_t secret_len, const char *fleet);
/* Overwrites the secret. Accepts NULL. */
void mqtt_keys_wipe(mqtt_keys *k);
/* Reads a fleet secret file: raw bytes, or 32..128 hex characters (whitespace ignored).
 * Returns MQTT_OK, MQTT_ERR_IO or MQTT_ERR_INVAL. */
int mqtt_keys_load_secret(const char *path, uint8_t *secret, size_t cap, size_t *len);

/* HKDF-SHA256(salt, secret, info = "kvmesh v1 <purpose> <cipher>" 0x00 sender) -> 32 bytes.
 * Returns MQTT_OK, MQTT_ERR_INVAL or MQTT_ERR_CRYPTO. */
int mqtt_keys_derive(const mqtt_keys *k, int purpose, int cipher, const char *sender,
                     uint8_t key[32]);

/* 12-byte nonce: SHA-256(sender)[0..4] || seq (little-endian). */
void mqtt_nonce_build(const char *sender, uint64_t seq, uint8_t nonce[12]);

/* Seals body_len bytes of plain into the frame buffer out (cap bytes): header (with
 * h->body_len set from body_len), ciphertext, tag. plain may not overlap out.
 * *out_len gets the frame length. Returns MQTT_OK, MQTT_ERR_SPACE, MQTT_ERR_INVAL or
 * MQTT_ERR_CRYPTO. h->seq must be a fresh counter value from mqtt_seq_next. */
int mqtt_seal(const mqtt_keys *k, mqtt_frame_hdr *h, const uint8_t *plain, uint32_t body_len,
              uint8_t *out, size_t cap, size_t *out_len);

/* Verifies and decrypts a decoded frame (raw = the whole frame as received) into out
 * (cap >= h->body_len). On MQTT_ERR_AUTH out is zeroed. Returns MQTT_OK, MQTT_ERR_AUTH,
 * MQTT_ERR_SPACE or MQTT_ERR_CRYPTO. */
int mqtt_open(const mqtt_keys *k, const mqtt_frame_hdr *h, const uint8_t *raw,
              uint8_t *out, size_t cap);

/* ---- frame counter (nonce) ----------------------------------------------------------------- */

/* Reserves fresh counter values: on success [*base, *base + *granted) are the caller's,
 * *granted >= 1 (want is a hint), and no later reservation, also after a restart, may
 * return any of them again. Returns MQTT_OK or a negative status. */
typedef int (*mqtt_seq_reserve_fn)(void *user, uint64_t want, uint64_t *base, uint64_t *granted);

#define MQTT_SEQ_WINDOW (1u << 20)   /* counter values reserved per store write */

typedef struct {
    mqtt_seq_reserve_fn reserve;
    void *user;
    uint64_t next, limit;  /* [next, limit) reserved and unused */
} mqtt_seq;

/* reserve may be mqtt_seqfile_reserve (persisted) or mqtt_seq_reserve_random (a random
 * 62-bit base: only for ephemeral sender ids, see docs/mqtt.md).
 * Returns MQTT_OK or MQTT_ERR_INVAL. */
int mqtt_seq_init(mqtt_seq *s, mqtt_seq_reserve_fn reserve, void *user);
/* Next counter value. Returns MQTT_OK, or the reservation's error (MQTT_ERR_IO, ...). */
int mqtt_seq_next(mqtt_seq *s, uint64_t *out);

/* File-backed store: the file holds the first never-reserved value as 16 hex digits. A
 * reservation writes base+count to a temporary file, fsyncs and renames it over the old
 * one before handing the range out; a crash only skips values. */
typedef struct {
    char path[256];
} mqtt_seqfile;
int mqtt_seqfile_open(mqtt_seqfile *f, const char *path);   /* MQTT_OK, MQTT_ERR_INVAL */
int mqtt_seqfile_reserve(void *seqfile, uint64_t want, uint64_t *base, uint64_t *granted);
/* A random base below 2^62 with 2^62 values granted: never exhausted in practice. */
int mqtt_seq_reserve_random(void *unused, uint64_t want, uint64_t *base, uint64_t *granted);

/* ---- replay window ------------------------------------------------------------------------ */

#define MQTT_REPLAY_BITS 1024u

typedef struct {
    uint64_t top;                       /* highest accepted seq */
    bool any;                           /* top is valid */
    uint64_t bits[MQTT_REPLAY_BITS / 64]; /* bit i: seq == top - i seen */
} mqtt_replay;

void mqtt_replay_reset(mqtt_replay *w);
/* MQTT_OK when seq is new and inside the window, MQTT_ERR_REPLAY otherwise. Pure. */
int mqtt_replay_check(const mqtt_replay *w, uint64_t seq);
/* Records seq (call only after the frame authenticated and passed check). */
void mqtt_replay_mark(mqtt_replay *w, uint64_t seq);

/* ---- sending --------------------------------------------------------------------------------- */

typedef struct {
    const mqtt_keys *keys;
    mqtt_seq *seq;
    const char *sender;       /* this node's id */
    uint32_t chunk_size;      /* 0: MQTT_CHUNK_DEFAULT */
    uint8_t cipher;           /* mqtt_cipher */
    int zstd_level;           /* 0: no compression; else compress chunks that shrink */
} mqtt_tx_cfg;

typedef struct {
    mqtt_tx_cfg cfg;
    char sender[MQTT_NODE_ID_MAX + 1];
    void *zc;                 /* ZSTD_CCtx when compressing */
    uint8_t *zbuf;            /* compression output, chunk_size + slack */
    size_t zcap;
} mqtt_tx;

/* One outgoing transfer: the template header with digest and geometry filled in. The
 * payload is borrowed: it must stay valid and unchanged until the last chunk is built. */
typedef struct {
    mqtt_frame_hdr hdr;
    const uint8_t *payload;
} mqtt_tx_xfer;

/* Returns MQTT_OK, MQTT_ERR_INVAL or MQTT_ERR_NOMEM. */
int mqtt_tx_init(mqtt_tx *tx, const mqtt_tx_cfg *cfg);
void mqtt_tx_free(mqtt_tx *tx);
/* Starts a transfer of len bytes: copies tmpl's type, model, prefix, ranges and codec,
 * computes the sha256 and the chunk geometry, and takes a transfer id (tmpl->xfer, or a
 * fresh counter value when it is 0). Returns MQTT_OK, MQTT_ERR_INVAL, MQTT_ERR_OVERSIZE
 * or a counter error. */
int mqtt_tx_begin(mqtt_tx *tx, mqtt_tx_xfer *x, const mqtt_frame_hdr *tmpl,
                  const uint8_t *payload, uint64_t len);
/* Builds sealed chunk `index` (a fresh counter value each call) into out.
 * out needs mqtt_frame_size_max(chunk_size) bytes. Returns MQTT_OK, MQTT_ERR_INVAL,
 * MQTT_ERR_SPACE, MQTT_ERR_CRYPTO, MQTT_ERR_COMPRESS or a counter error. */
int mqtt_tx_chunk(mqtt_tx *tx, mqtt_tx_xfer *x, uint32_t index, uint8_t *out, size_t cap,
                  size_t *out_len);

/* ---- receiving ------------------------------------------------------------------------------ */

/* Why a frame or transfer was dropped. Each has a counter in mqtt_rx_stats. */
typedef enum {
    MQTT_DROP_MALFORMED = 0, /* bad magic/version/field */
    MQTT_DROP_TRUNCATED,     /* lengths disagree with the bytes present */
    MQTT_DROP_COUNT,         /* chunk count or index lies about the geometry */
    MQTT_DROP_OVERSIZE,      /* total length above the receiver's limit or any buffer */
    MQTT_DROP_AUTH,          /* tag failed: tampered, or sealed with another key */
    MQTT_DROP_REPLAY,        /* counter already seen (replay or duplicate delivery) */
    MQTT_DROP_MODEL,         /* for another model identity */
    MQTT_DROP_INCONSISTENT,  /* chunk disagrees with the transfer's other chunks */
    MQTT_DROP_DIGEST,        /* complete, but sha256 mismatch */
    MQTT_DROP_DECOMPRESS,    /* bad zstd body */
    MQTT_DROP_BUSY,          /* no free transfer slot */
    MQTT_DROP_PEERS,         /* peer table full */
    MQTT_DROP_DECLINED,      /* the application's admit callback said no */
    MQTT_DROP_STALLED,       /* transfer abandoned: no progress within the timeout */
    MQTT_DROP_PEER_GONE,     /* transfer abandoned: sender went offline */
    MQTT_DROP_REASONS_
} mqtt_drop_reason;

const char *mqtt_drop_reason_name(int reason);

typedef struct {
    uint64_t frames_in;        /* frames offered to mqtt_rx_input */
    uint64_t frames_ok;        /* authenticated and accepted */
    uint64_t delivered;        /* payloads handed to the application */
    uint64_t delivered_bytes;
    uint64_t drops[MQTT_DROP_REASONS_];
} mqtt_rx_stats;

/* Admission: a new multi-chunk transfer asks for a buffer of at least hdr->total_len
 * bytes. Return true and set *buf and *cap to lend one (it stays lent until deliver or
 * release is called for this transfer), or false to decline. hdr is valid during the
 * call only. */
typedef bool (*mqtt_rx_admit_fn)(void *user, const mqtt_frame_hdr *hdr, uint8_t **buf,
                                 size_t *cap);
/* A complete, authenticated, digest-checked payload. hdr (chunk fields of the last
 * chunk) and payload are valid until the callback returns; then a lent buffer is back
 * with its owner. */
typedef void (*mqtt_rx_deliver_fn)(void *user, const mqtt_frame_hdr *hdr,
                                   const uint8_t *payload, size_t len);
/* A buffer (lent by admit, or from the pool) comes back without delivery (reason:
 * MQTT_DROP_*). Its content was unverified and has been zeroed. */
typedef void (*mqtt_rx_release_fn)(void *user, const mqtt_frame_hdr *hdr, uint8_t *buf,
                                   int reason);

typedef struct {
    const mqtt_keys *keys;
    const mqtt_model_id *model; /* NULL: accept any; else KV and hidden frames must match */
    uint64_t max_total;         /* largest payload accepted; 0: no limit beyond buffers */
    uint32_t timeout_ms;        /* abandon a transfer after this long without progress */
    size_t max_transfers;       /* in flight at once (1..) */
    size_t max_peers;           /* senders remembered for replay (1..) */
    /* Buffers for admission when admit is NULL: a free one of cap >= total_len is taken. */
    uint8_t **pool;
    const size_t *pool_caps;
    size_t pool_count;
    /* Single-chunk payloads up to this size are opened into an internal buffer of this
     * size, without a transfer slot (announcements, requests, small commands). */
    size_t small_max;
    mqtt_rx_admit_fn admit;     /* optional */
    mqtt_rx_deliver_fn deliver; /* required */
    mqtt_rx_release_fn release; /* optional */
    void *user;
} mqtt_rx_cfg;

typedef struct mqtt_rx_peer mqtt_rx_peer;
typedef struct mqtt_rx_slot mqtt_rx_slot;

typedef struct {
    mqtt_rx_cfg cfg;
    mqtt_rx_peer *peers;
    mqtt_rx_slot *slots;
    bool *pool_used;            /* pool_count flags */
    uint8_t *small;             /* small_max bytes */
    uint8_t *zbuf;              /* decrypted compressed chunk, MQTT_CHUNK_MAX + slack */
    void *zd;                   /* ZSTD_DCtx */
    mqtt_rx_stats stats;
} mqtt_rx;

/* Allocates the peer and slot tables, the small buffer and the zstd context.
 * Returns MQTT_OK, MQTT_ERR_INVAL or MQTT_ERR_NOMEM. */
int mqtt_rx_init(mqtt_rx *rx, const mqtt_rx_cfg *cfg);
void mqtt_rx_free(mqtt_rx *rx);

/* Offers one frame as received. Never delivers anything that did not authenticate,
 * pass the replay window (all types but KV_ANNOUNCE, which is retained state that the
 * broker re-sends verbatim to every new subscriber) and (once complete) match its digest. A frame that completes a
 * payload calls deliver before returning. now_ms: a monotonic clock.
 * Returns MQTT_OK when the frame was accepted (or completed a payload), else the negative
 * status of the reason it was dropped (and counted). */
int mqtt_rx_input(mqtt_rx *rx, uint64_t now_ms, const uint8_t *frame, size_t len);

/* Abandons transfers without progress for cfg.timeout_ms (release with
 * MQTT_DROP_STALLED). Returns how many were abandoned. */
int mqtt_rx_tick(mqtt_rx *rx, uint64_t now_ms);
/* Abandons every transfer from sender (release with MQTT_DROP_PEER_GONE). Returns how
 * many. */
int mqtt_rx_abandon_sender(mqtt_rx *rx, const char *sender);
/* Abandons one transfer (sender, xfer) with the given reason. Returns 1 or 0. */
int mqtt_rx_abandon(mqtt_rx *rx, const char *sender, uint64_t xfer, int reason);
/* Chunks still missing of (sender, xfer): sets bit i of bitmap (nbits >= chunk_count)
 * for each missing chunk i. Returns the count missing, or MQTT_ERR_NOT_FOUND. */
int mqtt_rx_missing(const mqtt_rx *rx, const char *sender, uint64_t xfer, uint8_t *bitmap,
                    size_t nbits);
/* Transfers in flight. */
size_t mqtt_rx_active(const mqtt_rx *rx);
uint64_t mqtt_rx_drops_total(const mqtt_rx *rx);

/* ---- topics ------------------------------------------------------------------------------------ */

#define MQTT_TOPIC_MAX 256

/* Topic kinds under the root (default "kvmesh/v1/<fleet>"). */
typedef enum {
    MQTT_TOPIC_KV_ANNOUNCE = 0, /* <root>/kv/<model-id>/<prefix-id>   (retained) */
    MQTT_TOPIC_KV_DATA,         /* <root>/kv/<model-id>/<prefix-id>/data */
    MQTT_TOPIC_REQ,             /* <root>/req/<node> */
    MQTT_TOPIC_RESP,            /* <root>/resp/<node> */
    MQTT_TOPIC_STATUS,          /* <root>/node/<node>/status  (retained online/offline) */
    MQTT_TOPIC_METRICS,         /* <root>/node/<node>/metrics */
    MQTT_TOPIC_CMD,             /* <root>/node/<node>/cmd */
    MQTT_TOPIC_UNKNOWN
} mqtt_topic_kind;

/* <model-id> is 64 hex digits of the fingerprint, '-', the numerics version in decimal. */
#define MQTT_MODEL_ID_STR 76

/* Builds "kvmesh/v1/<fleet>" into out. Returns MQTT_OK, MQTT_ERR_INVAL, MQTT_ERR_SPACE. */
int mqtt_topic_root(const char *fleet, char *out, size_t cap);
/* Builds a topic. model/prefix are used by the KV kinds, node by the others.
 * Returns MQTT_OK, MQTT_ERR_INVAL or MQTT_ERR_SPACE. */
int mqtt_topic_build(const char *root, int kind, const mqtt_model_id *model,
                     const uint8_t prefix[MQTT_ID_BYTES], const char *node, char *out,
                     size_t cap);
/* Shared-subscription form: "$share/<group>/<topic>". */
int mqtt_topic_shared(const char *group, const char *topic, char *out, size_t cap);
/* Classifies a received topic; fills model/prefix or node (node_cap bytes) when present.
 * Returns the mqtt_topic_kind (MQTT_TOPIC_UNKNOWN for foreign or malformed topics). */
int mqtt_topic_parse(const char *root, const char *topic, mqtt_model_id *model,
                     uint8_t prefix[MQTT_ID_BYTES], char *node, size_t node_cap);
void mqtt_model_id_str(const mqtt_model_id *m, char out[MQTT_MODEL_ID_STR + 1]);

/* ---- directory message bodies ------------------------------------------------------------------- */

/* KV_ANNOUNCE body (64 bytes, little-endian): what a node holds. The frame header carries
 * model, prefix, layer/position ranges and codec; the body repeats the size and holder. */
typedef struct {
    uint64_t size;                    /* payload bytes */
    char holder[MQTT_NODE_ID_MAX + 1];/* node that serves it (== frame sender) */
    uint32_t chunk_size;              /* chunking the holder will use */
    uint32_t flags;                   /* reserved, 0 */
} mqtt_announce;
#define MQTT_ANNOUNCE_SIZE 48
int mqtt_announce_encode(const mqtt_announce *a, uint8_t *out, size_t cap);
int mqtt_announce_decode(const uint8_t *in, size_t len, mqtt_announce *a);

/* REQUEST body: fetch (model, prefix from the header) as transfer `xfer`, answering to
 * reply_to; an optional bitmap names the chunks still wanted (resume). */
typedef struct {
    uint32_t op;                      /* MQTT_REQ_FETCH */
    uint64_t xfer;                    /* transfer id the holder must use */
    uint32_t expiry_s;                /* requester gives up after this */
    char reply_to[MQTT_NODE_ID_MAX + 1];
    uint32_t bitmap_bits;             /* 0: all chunks; else bits of `bitmap` */
    const uint8_t *bitmap;            /* (bitmap_bits+7)/8 bytes, borrowed */
} mqtt_request;
#define MQTT_REQ_FETCH 1u
#define MQTT_REQUEST_FIXED 56
int mqtt_request_encode(const mqtt_request *r, uint8_t *out, size_t cap, size_t *out_len);
/* r->bitmap points into in. */
int mqtt_request_decode(const uint8_t *in, size_t len, mqtt_request *r);

/* RESPONSE body. */
typedef struct {
    int32_t status;                   /* MQTT_OK, MQTT_ERR_NOT_FOUND, MQTT_ERR_BUSY, ... */
    uint64_t xfer;
    uint64_t size;
    uint32_t chunks;                  /* chunks that will follow on .../data */
} mqtt_response;
#define MQTT_RESPONSE_SIZE 24
int mqtt_response_encode(const mqtt_response *r, uint8_t *out, size_t cap);
int mqtt_response_decode(const uint8_t *in, size_t len, mqtt_response *r);

#ifdef __cplusplus
}
#endif
#endif /* MQTT_H */
