/*
 * mqtt_session.h - kvmesh peer layer, part 2: the broker session and the cache directory.
 *
 * mqtt_session wraps one libmosquitto client: plain TCP or TLS (CA file, optional client
 * certificate and key, hostname verified), username/password, MQTT 5 with a fall-back to
 * 3.1.1 when the broker refuses v5, reconnect with exponential backoff and re-subscribe,
 * a retained last will "offline" on <root>/node/<node>/status and a retained "online"
 * after every connect. It is driven by the caller: mqtt_session_poll() runs the network
 * for at most timeout_ms; there are no threads. The clock is injectable.
 *
 * mqtt_node puts the pure core (mqtt.h) on a session and adds the cache directory:
 *   - mqtt_node_announce: retained, sealed announcement on kv/<model>/<prefix> for a cache
 *     this node holds (re-published after every reconnect);
 *   - requests on req/<node> for a prefix are answered from the application's provider
 *     callback: a sealed response on resp/<requester> (or the MQTT 5 response topic), then
 *     the sealed chunks on kv/<model>/<prefix>/data, paced by a QoS 1 in-flight window;
 *   - mqtt_node_fetch: "who has prefix X" (the retained announcement) and fetch it into a
 *     caller buffer before a deadline, re-requesting only missing chunks after a stall or
 *     a reconnect, and giving up when the holder's status turns "offline".
 *
 * Example (error handling shortened):
 *
 *     mqtt_node node;
 *     mqtt_node_cfg c = mqtt_node_cfg_default();
 *     c.session.host = "127.0.0.1"; c.session.port = 1883; c.session.node_id = "pi4-a";
 *     c.session.root = "kvmesh/v1/lab";
 *     c.keys = &keys; c.seq = &seq; c.model = &model;
 *     c.provider_get = my_get; c.provider_put = my_put; c.user = app;
 *     if (mqtt_node_init(&node, &c) || mqtt_node_start(&node)) goto fail;
 *     mqtt_node_announce(&node, &info);                 // I hold this cache
 *     uint64_t got;
 *     int rc = mqtt_node_fetch(&node, &model, prefix, buf, cap, 10000, &got, NULL);
 *     for (;;) mqtt_node_poll(&node, 100);               // serve requests
 *     mqtt_node_free(&node);
 *
 * Ownership: strings in configs are copied at init. Message pointers passed to callbacks
 * are valid until the callback returns. libmosquitto allocates internally (bounded by the
 * in-flight window); this layer allocates only in _init.
 */
#ifndef MQTT_SESSION_H
#define MQTT_SESSION_H

#include "mqtt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- session --------------------------------------------------------------------------- */

typedef enum {
    MQTT_PROTO_AUTO = 0,   /* MQTT 5, falling back to 3.1.1 when the broker refuses v5 */
    MQTT_PROTO_V5 = 5,
    MQTT_PROTO_V311 = 4
} mqtt_proto;

typedef enum {
    MQTT_EV_CONNECTED = 1,    /* CONNACK accepted; subscriptions restored */
    MQTT_EV_DISCONNECTED = 2, /* connection lost; a reconnect is scheduled */
    MQTT_EV_FAILED = 3        /* gave up: see mqtt_session_status() */
} mqtt_session_event;

/* What a received message carried besides topic and payload (MQTT 5 only; empty on 3.1.1). */
typedef struct {
    const char *response_topic;       /* NULL if absent */
    const uint8_t *correlation;       /* NULL if absent */
    uint16_t correlation_len;
    bool retained;
} mqtt_msg_props;

typedef void (*mqtt_session_msg_fn)(void *user, const char *topic, const uint8_t *payload,
                                    size_t len, const mqtt_msg_props *props);
typedef void (*mqtt_session_event_fn)(void *user, int event);
typedef uint64_t (*mqtt_clock_fn)(void *user);   /* monotonic milliseconds */

typedef struct {
    const char *host;             /* default "127.0.0.1"; the name TLS verifies */
    int port;                     /* default 1883, or 8883 with TLS */
    const char *node_id;          /* required: client id and <node> in topics */
    const char *root;             /* required: topic root, e.g. "kvmesh/v1/lab" */
    const char *username, *password;
    bool tls;
    const char *ca_file;          /* required with tls */
    const char *cert_file, *key_file; /* optional client certificate (mTLS) */
    int protocol;                 /* mqtt_proto */
    int keepalive_s;              /* default 10 (libmosquitto minimum 5) */
    uint32_t connect_timeout_ms;  /* CONNACK must arrive within this; default 5000 */
    uint32_t backoff_min_ms;      /* first retry delay; default 100 */
    uint32_t backoff_max_ms;      /* cap of the doubling delay; default 5000 */
    int max_attempts;             /* consecutive failed attempts before giving up; 0: never */
    uint16_t inflight_max;        /* QoS 1 messages in flight; default 16 */
    mqtt_clock_fn clock;          /* NULL: CLOCK_MONOTONIC */
    void *clock_user;
    mqtt_session_msg_fn on_message;
    mqtt_session_event_fn on_event;
    void *user;
} mqtt_session_cfg;

#define MQTT_SESSION_MAX_SUBS 16

typedef struct {
    uint64_t connects, disconnects, attempts, published, acked, received;
} mqtt_session_stats;

typedef struct {
    mqtt_session_cfg cfg;
    char host[256], node_id[MQTT_NODE_ID_MAX + 1], root[MQTT_TOPIC_MAX / 2 + 1];
    char username[128], password[128], ca_file[256], cert_file[256], key_file[256];
    char status_topic[MQTT_TOPIC_MAX];
    char subs[MQTT_SESSION_MAX_SUBS][MQTT_TOPIC_MAX];
    size_t nsubs;
    struct mosquitto *mosq;
    int state;                    /* private: idle, connecting, connected, waiting, failed */
    int proto;                    /* protocol of the current/last connection: 5 or 4 */
    int status;                   /* MQTT_OK, or why the session failed */
    int attempts;                 /* consecutive failures */
    uint32_t backoff_ms;
    uint64_t attempt_ms, retry_ms;
    uint32_t inflight;            /* QoS 1 publishes not yet acknowledged */
    bool last_tls_error;          /* the last failed attempt failed in TLS */
    mqtt_session_stats stats;
} mqtt_session;

/* Fills defaults into *cfg for every zero field. */
void mqtt_session_cfg_defaults(mqtt_session_cfg *cfg);

/* Creates the libmosquitto client (not connected yet). Returns MQTT_OK, MQTT_ERR_INVAL
 * (missing node id/root, TLS without CA, bad file) or MQTT_ERR_NOMEM. */
int mqtt_session_init(mqtt_session *s, const mqtt_session_cfg *cfg);
/* Sends "offline" (retained) and DISCONNECT when connected, then frees. Accepts NULL. */
void mqtt_session_free(mqtt_session *s);
/* Starts connecting (non-blocking); mqtt_session_poll makes progress. MQTT_OK or
 * MQTT_ERR_INVAL. */
int mqtt_session_start(mqtt_session *s);
/* Runs the network for up to timeout_ms: reads and dispatches messages, writes, keeps
 * alive, times out a connect and reconnects with backoff. Returns MQTT_OK (also while
 * disconnected and retrying) or the permanent failure (MQTT_ERR_UNREACHABLE after
 * max_attempts, MQTT_ERR_TLS when those attempts failed in the TLS handshake (certificate,
 * name), MQTT_ERR_REFUSED for bad credentials or authorization). */
int mqtt_session_poll(mqtt_session *s, int timeout_ms);
bool mqtt_session_connected(const mqtt_session *s);
/* MQTT_OK or the failure that stopped the session. */
int mqtt_session_status(const mqtt_session *s);
/* Protocol in use: MQTT_PROTO_V5 or MQTT_PROTO_V311 (0 before the first CONNACK). */
int mqtt_session_protocol(const mqtt_session *s);
uint64_t mqtt_session_now(const mqtt_session *s);

/* Subscribes at QoS 1 now (when connected) and after every reconnect.
 * Returns MQTT_OK, MQTT_ERR_BUSY (MQTT_SESSION_MAX_SUBS reached), MQTT_ERR_INVAL. */
int mqtt_session_subscribe(mqtt_session *s, const char *topic);
/* Forgets a subscription and unsubscribes when connected. MQTT_OK or MQTT_ERR_NOT_FOUND. */
int mqtt_session_unsubscribe(mqtt_session *s, const char *topic);

/* Publish options; all optional. MQTT 5 properties are dropped on a 3.1.1 connection. */
typedef struct {
    int qos;                      /* 0 or 1 (default 0 here; data uses 1) */
    bool retain;
    const char *response_topic;
    const uint8_t *correlation;
    uint16_t correlation_len;
    uint32_t expiry_s;            /* message expiry interval, 0: none */
    const char *kind;             /* user property "kvmesh-type" */
} mqtt_pub_opts;

/* Queues a publish (libmosquitto copies the payload). Returns MQTT_OK, MQTT_ERR_NO_CONN,
 * MQTT_ERR_OVERSIZE (over the broker's maximum packet size) or MQTT_ERR_PROTOCOL. */
int mqtt_session_publish(mqtt_session *s, const char *topic, const void *payload, size_t len,
                         const mqtt_pub_opts *opts);
/* QoS 1 publishes not acknowledged yet. */
uint32_t mqtt_session_inflight(const mqtt_session *s);

/* ---- node: sealed data and the cache directory ---------------------------------------------- */

/* A cache as the directory sees it: identity, size and the engine's opaque description. */
typedef struct {
    mqtt_model_id model;
    uint8_t prefix[MQTT_ID_BYTES];
    uint64_t size;
    uint32_t layer_begin, layer_end, pos_begin, pos_end;
    uint32_t codec;
} mqtt_cache_info;

/* Provider: the application looks up a cache it holds. On MQTT_OK, *info describes it,
 * *data points at info->size bytes that stay valid and unchanged until provider_put is
 * called with *handle. Return MQTT_ERR_NOT_FOUND when it is not held. */
typedef int (*mqtt_provider_get_fn)(void *user, const mqtt_model_id *model,
                                    const uint8_t prefix[MQTT_ID_BYTES], mqtt_cache_info *info,
                                    const uint8_t **data, void **handle);
typedef void (*mqtt_provider_put_fn)(void *user, void *handle);

/* A sealed payload pushed to this node (on req/<node> or node/<node>/cmd): hidden states,
 * prompts, tokens, commands, unsolicited KV caches; and every verified announcement on an
 * announcement topic the application subscribed to (type MQTT_FT_KV_ANNOUNCE, body decodes
 * with mqtt_announce_decode). hdr and payload are valid until the callback returns. */
typedef void (*mqtt_node_deliver_fn)(void *user, const mqtt_frame_hdr *hdr,
                                     const uint8_t *payload, size_t len);

/* An announcement topic the node watches was cleared (an empty retained message: its
 * holder withdrew the cache). Not authenticated: use it only to forget the prefix. */
typedef void (*mqtt_node_withdrawn_fn)(void *user, const mqtt_model_id *model,
                                       const uint8_t prefix[MQTT_ID_BYTES]);

typedef struct {
    mqtt_session_cfg session;     /* on_message/on_event/user are taken by the node */
    const mqtt_keys *keys;        /* required */
    mqtt_seq *seq;                /* required: this node's frame counter */
    const mqtt_model_id *model;   /* accept KV/hidden frames for this model only; NULL: any */
    uint8_t cipher;               /* for what this node sends */
    uint32_t chunk_size;          /* 0: MQTT_CHUNK_DEFAULT */
    int zstd_level;               /* 0: off */
    uint64_t max_total;           /* largest payload accepted; 0: 1 GiB */
    uint32_t timeout_ms;          /* abandon an incoming transfer without progress; 10000 */
    uint32_t stall_ms;            /* fetch re-requests missing chunks after this; 2000 */
    size_t max_transfers;         /* incoming in flight; default 4 */
    size_t max_peers;             /* senders remembered for replay; default 64 */
    size_t max_serving;           /* outgoing transfers at once; default 4 */
    size_t max_announce;          /* announcements kept for re-publish; default 64 */
    uint32_t pace_ms;             /* minimum gap between served chunks (rate limit); 0: none */
    const char *share_group;      /* optional: also take payloads sent to node id <group> through
                                   * the shared subscription $share/<group>/<root>/req/<group>,
                                   * so that peers of a group (cloud workers) split the load */
    size_t max_directory;         /* verified announcements remembered (holder, size,
                                   * description) so a repeated fetch needs no new one; 64 */
    uint8_t *inbox;               /* buffer for pushed payloads (optional) */
    size_t inbox_cap;
    mqtt_provider_get_fn provider_get;  /* optional: without it, requests get NOT_FOUND */
    mqtt_provider_put_fn provider_put;
    mqtt_node_deliver_fn on_deliver;    /* optional */
    mqtt_node_withdrawn_fn on_withdrawn; /* optional */
    void *user;
} mqtt_node_cfg;

typedef struct {
    mqtt_rx_stats rx;             /* incoming frames, deliveries and drops by reason */
    uint64_t frames_sent, bytes_sent, requests_served, requests_refused, resumes;
    uint64_t fetch_rerequests;
    uint64_t foreign;             /* messages on our topics that were not frames */
} mqtt_node_stats;

typedef struct mqtt_node_serve mqtt_node_serve;
typedef struct mqtt_node_ann mqtt_node_ann;
typedef struct mqtt_node_dirent mqtt_node_dirent;

/* State of the one fetch a node runs at a time (private). */
typedef struct {
    int state;
    int status;
    mqtt_model_id model;
    uint8_t prefix[MQTT_ID_BYTES];
    char holder[MQTT_NODE_ID_MAX + 1];
    mqtt_announce ann;
    mqtt_frame_hdr meta;          /* from the announcement header */
    uint64_t xfer;
    uint8_t *buf;
    size_t cap;
    uint64_t got;
    bool lent, resend;
    uint64_t last_progress_ms, deadline_ms;
    char ann_topic[MQTT_TOPIC_MAX], data_topic[MQTT_TOPIC_MAX], status_topic[MQTT_TOPIC_MAX];
} mqtt_node_fetch_state;

typedef struct {
    mqtt_node_cfg cfg;
    mqtt_session session;
    mqtt_tx tx;
    mqtt_rx rx;
    uint8_t *frame;               /* one outgoing frame, mqtt_frame_size_max(chunk_size) */
    size_t frame_cap;
    mqtt_node_serve *serving;     /* max_serving */
    mqtt_node_ann *anns;          /* max_announce */
    mqtt_node_dirent *dir;        /* max_directory */
    uint64_t dir_clock;           /* LRU stamp */
    bool inbox_busy;
    mqtt_node_fetch_state fetch;
    const mqtt_msg_props *cur_props; /* message being dispatched (MQTT 5 response topic) */
    int cur_kind;                 /* its topic kind: the inbox only takes req/ and cmd/ */
    char group[MQTT_NODE_ID_MAX + 1];
    uint64_t stats_frames_sent, stats_bytes_sent, stats_served, stats_refused, stats_resumes;
    uint64_t stats_rerequests, stats_foreign;
    uint64_t last_chunk_ms;       /* for pace_ms */
} mqtt_node;

/* Defaults for every field; session fields as mqtt_session_cfg_defaults. */
mqtt_node_cfg mqtt_node_cfg_default(void);

/* Returns MQTT_OK, MQTT_ERR_INVAL or MQTT_ERR_NOMEM. */
int mqtt_node_init(mqtt_node *n, const mqtt_node_cfg *cfg);
/* Withdraws nothing (announcements are retained on purpose), says "offline", frees.
 * Accepts NULL. */
void mqtt_node_free(mqtt_node *n);
/* Subscribes to req/<node>, resp/<node>, node/<node>/cmd (and the group's shared request
 * topic) and starts connecting. Returns MQTT_OK or the session's error. */
int mqtt_node_start(mqtt_node *n);
/* Runs the session, serves requests, abandons stalled incoming transfers. Returns
 * MQTT_OK or the session's permanent failure. */
int mqtt_node_poll(mqtt_node *n, int timeout_ms);
/* Runs mqtt_node_poll until connected or timeout_ms passes. MQTT_OK, MQTT_ERR_TIMEOUT or
 * the session's failure. */
int mqtt_node_wait_connected(mqtt_node *n, uint32_t timeout_ms);
/* Runs mqtt_node_poll until nothing is being served and all publishes are acknowledged,
 * or timeout_ms passes. MQTT_OK or MQTT_ERR_TIMEOUT. */
int mqtt_node_flush(mqtt_node *n, uint32_t timeout_ms);

/* Publishes a retained, sealed announcement and keeps it for re-publishing after a
 * reconnect. Returns MQTT_OK, MQTT_ERR_BUSY (max_announce) or a send error. */
int mqtt_node_announce(mqtt_node *n, const mqtt_cache_info *info);
/* Forgets the announcement and clears the retained message, unless the directory saw
 * another node announce the same prefix since (then the topic is theirs). Returns MQTT_OK,
 * MQTT_ERR_NOT_FOUND (this node did not announce it) or a publish error. */
int mqtt_node_withdraw(mqtt_node *n, const mqtt_model_id *model,
                       const uint8_t prefix[MQTT_ID_BYTES]);

/* "Who has prefix X": waits up to timeout_ms for the retained announcement. On MQTT_OK
 * *ann names the holder and size, and *info (optional) the cache's description.
 * Returns MQTT_OK, MQTT_ERR_NOT_FOUND (no announcement in time), MQTT_ERR_BUSY (a fetch is
 * running) or the session's failure. */
int mqtt_node_find(mqtt_node *n, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                   uint32_t timeout_ms, mqtt_announce *ann, mqtt_cache_info *info);

/* Finds the holder of (model, prefix) and fetches the cache into buf (cap bytes) before
 * deadline_ms from now. The bytes are authenticated chunk by chunk and sha256-checked as a
 * whole before MQTT_OK; on any error buf holds nothing usable (it is zeroed).
 * *len and *info (both optional) describe what arrived.
 * Returns MQTT_OK, MQTT_ERR_NOT_FOUND, MQTT_ERR_OVERSIZE (cap too small),
 * MQTT_ERR_TIMEOUT, MQTT_ERR_PEER_GONE (the holder went offline: its partial transfer was
 * abandoned and freed, and no other holder announced before the deadline), MQTT_ERR_BUSY
 * or the session's failure. */
int mqtt_node_fetch(mqtt_node *n, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                    uint8_t *buf, size_t cap, uint32_t deadline_ms, uint64_t *len,
                    mqtt_cache_info *info);

/* Sends a sealed payload of any size to another node's req/<dest> (hidden states,
 * prompts, tokens, commands), blocking until every chunk is acknowledged by the broker or
 * deadline_ms passes. tmpl gives type, model, prefix, ranges and codec.
 * Returns MQTT_OK, MQTT_ERR_INVAL, MQTT_ERR_TIMEOUT or a send error. */
int mqtt_node_send(mqtt_node *n, const char *dest, const mqtt_frame_hdr *tmpl,
                   const uint8_t *payload, uint64_t len, uint32_t deadline_ms);

/* Sends a payload that fits one chunk (len <= chunk_size) to a group's shared request
 * topic: exactly one member of the group (see share_group) receives it. A shared
 * subscription hands out *messages*, so the chunks of a larger payload would be split
 * among members; larger work goes to the group as a small request, and the member that
 * takes it moves the data point to point (mqtt_node_send to it, or a directory fetch).
 * Returns what mqtt_node_send returns, or MQTT_ERR_OVERSIZE. */
int mqtt_node_send_shared(mqtt_node *n, const char *group, const mqtt_frame_hdr *tmpl,
                          const uint8_t *payload, uint64_t len, uint32_t deadline_ms);

/* Seals a payload that fits one chunk (len <= chunk_size) as a single frame of tmpl's
 * type (model, prefix, ranges and codec from tmpl too) and publishes it on `topic` with
 * the options o (QoS, retain, MQTT 5 correlation data, ...; NULL: QoS 1). Used for
 * replies that go to a topic of the requester's choosing (resp/<node>, a command's
 * reply) rather than to req/<dest>. Does not wait for the broker's acknowledgement.
 * Safe to call from on_deliver. Returns MQTT_OK, MQTT_ERR_INVAL, MQTT_ERR_OVERSIZE, a
 * counter or sealing error, or a publish error (MQTT_ERR_NO_CONN, ...). */
int mqtt_node_publish_sealed(mqtt_node *n, const char *topic, const mqtt_frame_hdr *tmpl,
                             const uint8_t *payload, size_t len, const mqtt_pub_opts *o);

/* Inside on_deliver: the MQTT 5 properties of the message that completed the payload
 * (response topic, correlation data; empty on 3.1.1). NULL outside a delivery. The
 * response topic is not authenticated: check it before trusting it. */
const mqtt_msg_props *mqtt_node_delivery_props(const mqtt_node *n);

/* Publishes a JSON metrics document on node/<node>/metrics (QoS 0, not retained); keys
 * should carry their units ("sent_bytes", "uptime_s"). Returns MQTT_OK, MQTT_ERR_INVAL or a
 * publish error (MQTT_ERR_NO_CONN, ...). */
int mqtt_node_publish_metrics(mqtt_node *n, const char *json);

void mqtt_node_get_stats(const mqtt_node *n, mqtt_node_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* MQTT_SESSION_H */
