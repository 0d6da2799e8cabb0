/* The node: sealed frames over a session, plus the cache directory service.
 *
 *   announce   retained KV_ANNOUNCE frame on kv/<model>/<prefix>, re-published on connect
 *   serve      REQUEST on req/<me> -> provider lookup -> RESPONSE on the requester's
 *              response topic -> KV_CACHE chunks on kv/<model>/<prefix>/data, paced by the
 *              QoS 1 in-flight window so that libmosquitto's queue stays bounded
 *   fetch      wait for the announcement -> REQUEST (transfer id chosen here) -> chunks
 *              reassembled straight into the caller's buffer; after a reconnect or a stall
 *              the request is repeated with the bitmap of missing chunks; the holder's
 *              "offline" status abandons the transfer
 * Everything that arrives goes through mqtt_rx, so nothing unverified reaches a caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "mqtt_session.h"

struct mqtt_node_serve {
    bool used;
    mqtt_tx_xfer x;
    void *handle;                          /* provider's */
    char data_topic[MQTT_TOPIC_MAX];
    uint8_t todo[MQTT_MAX_CHUNKS / 8];     /* chunks still to publish */
    uint32_t left, cursor;
    uint32_t expiry_s;
    uint64_t expires_ms;
};

struct mqtt_node_ann {
    bool used;
    mqtt_cache_info info;
    char topic[MQTT_TOPIC_MAX];
};

/* A verified announcement seen from another node (or ourselves). */
struct mqtt_node_dirent {
    bool used;
    uint64_t stamp;
    mqtt_announce ann;
    mqtt_frame_hdr meta;
};

enum { F_IDLE = 0, F_WAIT_ANN, F_ANNOUNCED, F_REQUESTED, F_DONE, F_FAILED };

#define SMALL_MAX 4096   /* announcements, requests, responses, small commands */

mqtt_node_cfg mqtt_node_cfg_default(void)
{
    mqtt_node_cfg c;
    memset(&c, 0, sizeof c);
    c.cipher = MQTT_CIPHER_CHACHAPOLY;
    c.chunk_size = MQTT_CHUNK_DEFAULT;
    c.max_total = 1ull << 30;
    c.timeout_ms = 10000;
    c.stall_ms = 2000;
    c.max_transfers = 4;
    c.max_peers = 64;
    c.max_serving = 4;
    c.max_announce = 64;
    c.max_directory = 64;
    return c;
}

static uint64_t now_ms(mqtt_node *n) { return mqtt_session_now(&n->session); }

static bool same_cache(const mqtt_model_id *m, const uint8_t *p, const mqtt_model_id *m2, const uint8_t *p2)
{
    return memcmp(m->fingerprint, m2->fingerprint, MQTT_ID_BYTES) == 0 && m->numerics == m2->numerics &&
           memcmp(p, p2, MQTT_ID_BYTES) == 0;
}

/* Seals a single-chunk message (announce, request, response) into n->frame and publishes. */
static int send_small(mqtt_node *n, const char *topic, const mqtt_frame_hdr *tmpl, const uint8_t *body,
                      size_t len, const mqtt_pub_opts *o)
{
    mqtt_tx_xfer x;
    size_t flen;
    int rc = mqtt_tx_begin(&n->tx, &x, tmpl, body, len);
    if (!rc) rc = mqtt_tx_chunk(&n->tx, &x, 0, n->frame, n->frame_cap, &flen);
    if (!rc) rc = mqtt_session_publish(&n->session, topic, n->frame, flen, o);
    if (!rc) {
        n->stats_frames_sent++;
        n->stats_bytes_sent += flen;
    }
    return rc;
}

static int publish_announce(mqtt_node *n, const mqtt_node_ann *a)
{
    mqtt_frame_hdr t = { .type = MQTT_FT_KV_ANNOUNCE, .model = a->info.model,
                         .layer_begin = a->info.layer_begin, .layer_end = a->info.layer_end,
                         .pos_begin = a->info.pos_begin, .pos_end = a->info.pos_end,
                         .codec = a->info.codec };
    memcpy(t.prefix, a->info.prefix, MQTT_ID_BYTES);
    mqtt_announce body = { .size = a->info.size, .chunk_size = n->tx.cfg.chunk_size };
    snprintf(body.holder, sizeof body.holder, "%s", n->session.node_id);
    uint8_t b[MQTT_ANNOUNCE_SIZE];
    mqtt_announce_encode(&body, b, sizeof b);
    mqtt_pub_opts o = { .qos = 1, .retain = true, .kind = "announce" };
    return send_small(n, a->topic, &t, b, sizeof b, &o);
}

static void respond(mqtt_node *n, const mqtt_frame_hdr *req_hdr, const char *reply_to, const mqtt_response *r)
{
    char topic[MQTT_TOPIC_MAX], node[MQTT_NODE_ID_MAX + 1];
    /* The MQTT 5 response topic is not authenticated: use it only when it is the
     * requester's own resp topic under our root. */
    const char *rt = n->cur_props ? n->cur_props->response_topic : NULL;
    if (rt && strlen(rt) < sizeof topic &&
        mqtt_topic_parse(n->session.root, rt, NULL, NULL, node, sizeof node) == MQTT_TOPIC_RESP &&
        strcmp(node, reply_to) == 0)
        strcpy(topic, rt);
    else
        mqtt_topic_build(n->session.root, MQTT_TOPIC_RESP, NULL, NULL, reply_to, topic, sizeof topic);
    mqtt_frame_hdr t = { .type = MQTT_FT_RESPONSE, .model = req_hdr->model };
    memcpy(t.prefix, req_hdr->prefix, MQTT_ID_BYTES);
    uint8_t b[MQTT_RESPONSE_SIZE];
    mqtt_response_encode(r, b, sizeof b);
    mqtt_pub_opts o = { .qos = 1, .kind = "response",
                        .correlation = n->cur_props ? n->cur_props->correlation : NULL,
                        .correlation_len = n->cur_props ? n->cur_props->correlation_len : 0 };
    send_small(n, topic, &t, b, sizeof b, &o);
}

static void serve_end(mqtt_node *n, mqtt_node_serve *sv)
{
    if (n->cfg.provider_put) n->cfg.provider_put(n->cfg.user, sv->handle);
    sv->used = false;
}

static void set_todo(mqtt_node_serve *sv, const mqtt_request *r)
{
    uint32_t count = sv->x.hdr.chunk_count;
    for (uint32_t i = 0; i < count; i++) {
        bool want = !r->bitmap_bits || (i < r->bitmap_bits && (r->bitmap[i / 8] >> (i % 8)) & 1);
        bool have = (sv->todo[i / 8] >> (i % 8)) & 1;
        if (want && !have) {
            sv->todo[i / 8] |= (uint8_t)(1u << (i % 8));
            sv->left++;
        }
    }
}

static void handle_request(mqtt_node *n, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    mqtt_request r;
    if (mqtt_request_decode(p, len, &r) || strcmp(r.reply_to, h->sender) != 0) {
        n->stats_foreign++;
        return;
    }
    mqtt_response resp = { .status = MQTT_OK, .xfer = r.xfer };
    uint64_t now = now_ms(n);
    /* A repeated request for a transfer being served: add the missing chunks (resume). */
    for (size_t i = 0; i < n->cfg.max_serving; i++) {
        mqtt_node_serve *sv = &n->serving[i];
        if (sv->used && sv->x.hdr.xfer == r.xfer && same_cache(&sv->x.hdr.model, sv->x.hdr.prefix, &h->model, h->prefix)) {
            set_todo(sv, &r);
            sv->expires_ms = now + (uint64_t)(r.expiry_s ? r.expiry_s : 60) * 1000u;
            n->stats_resumes++;
            resp.size = sv->x.hdr.total_len;
            resp.chunks = sv->left;
            respond(n, h, r.reply_to, &resp);
            return;
        }
    }
    mqtt_node_serve *sv = NULL;
    for (size_t i = 0; i < n->cfg.max_serving && !sv; i++)
        if (!n->serving[i].used) sv = &n->serving[i];
    mqtt_cache_info info;
    const uint8_t *data = NULL;
    void *handle = NULL;
    int rc = !sv ? MQTT_ERR_BUSY
             : n->cfg.provider_get ? n->cfg.provider_get(n->cfg.user, &h->model, h->prefix, &info, &data, &handle)
                                   : MQTT_ERR_NOT_FOUND;
    if (rc == MQTT_OK) {
        mqtt_frame_hdr t = { .type = MQTT_FT_KV_CACHE, .model = h->model, .xfer = r.xfer,
                             .layer_begin = info.layer_begin, .layer_end = info.layer_end,
                             .pos_begin = info.pos_begin, .pos_end = info.pos_end, .codec = info.codec };
        memcpy(t.prefix, h->prefix, MQTT_ID_BYTES);
        memset(sv, 0, sizeof *sv);
        rc = mqtt_tx_begin(&n->tx, &sv->x, &t, data, info.size);
        if (rc) {
            if (n->cfg.provider_put) n->cfg.provider_put(n->cfg.user, handle);
        } else {
            sv->used = true;
            sv->handle = handle;
            sv->expiry_s = r.expiry_s ? r.expiry_s : 60;
            sv->expires_ms = now + (uint64_t)sv->expiry_s * 1000u;
            mqtt_topic_build(n->session.root, MQTT_TOPIC_KV_DATA, &h->model, h->prefix, NULL, sv->data_topic,
                             sizeof sv->data_topic);
            set_todo(sv, &r);
            resp.size = info.size;
            resp.chunks = sv->left;
            n->stats_served++;
        }
    }
    if (rc) {
        resp.status = rc == MQTT_ERR_BUSY ? MQTT_ERR_BUSY : MQTT_ERR_NOT_FOUND;
        n->stats_refused++;
    }
    respond(n, h, r.reply_to, &resp);
}

/* Publishes chunks while the in-flight window has room, round-robin over transfers. */
static void serve_pump(mqtt_node *n)
{
    uint64_t now = now_ms(n);
    for (size_t i = 0; i < n->cfg.max_serving; i++) {
        mqtt_node_serve *sv = &n->serving[i];
        if (sv->used && now >= sv->expires_ms) serve_end(n, sv);
    }
    bool progress = true;
    while (progress && mqtt_session_connected(&n->session)) {
        progress = false;
        if (n->cfg.pace_ms && now_ms(n) - n->last_chunk_ms < n->cfg.pace_ms) return;
        for (size_t i = 0; i < n->cfg.max_serving; i++) {
            mqtt_node_serve *sv = &n->serving[i];
            if (!sv->used) continue;
            if (mqtt_session_inflight(&n->session) >= n->session.cfg.inflight_max) return;
            uint32_t count = sv->x.hdr.chunk_count, c = sv->cursor;
            for (uint32_t k = 0; k < count && !((sv->todo[c / 8] >> (c % 8)) & 1); k++) c = (c + 1) % count;
            if (!((sv->todo[c / 8] >> (c % 8)) & 1)) {
                sv->left = 0;
                serve_end(n, sv);
                continue;
            }
            size_t flen;
            if (mqtt_tx_chunk(&n->tx, &sv->x, c, n->frame, n->frame_cap, &flen)) {
                serve_end(n, sv);
                continue;
            }
            mqtt_pub_opts o = { .qos = 1, .expiry_s = sv->expiry_s, .kind = "kv" };
            if (mqtt_session_publish(&n->session, sv->data_topic, n->frame, flen, &o)) return;
            n->stats_frames_sent++;
            n->stats_bytes_sent += flen;
            n->last_chunk_ms = now_ms(n);
            sv->todo[c / 8] &= (uint8_t)~(1u << (c % 8));
            sv->cursor = (c + 1) % count;
            if (--sv->left == 0) serve_end(n, sv);
            progress = true;
        }
    }
}

/* ---- directory cache ------------------------------------------------------------------ */

static mqtt_node_dirent *dir_find(mqtt_node *n, const mqtt_model_id *m, const uint8_t *p)
{
    for (size_t i = 0; i < n->cfg.max_directory; i++) {
        mqtt_node_dirent *d = &n->dir[i];
        if (d->used && same_cache(&d->meta.model, d->meta.prefix, m, p)) return d;
    }
    return NULL;
}

static void dir_put(mqtt_node *n, const mqtt_frame_hdr *h, const mqtt_announce *a)
{
    mqtt_node_dirent *d = dir_find(n, &h->model, h->prefix), *old = NULL;
    for (size_t i = 0; !d && i < n->cfg.max_directory; i++) {
        mqtt_node_dirent *c = &n->dir[i];
        if (!c->used) { d = c; break; }
        if (!old || c->stamp < old->stamp) old = c;
    }
    if (!d) d = old;   /* least recently seen */
    d->used = true;
    d->stamp = ++n->dir_clock;
    d->ann = *a;
    d->meta = *h;
}

/* Forgets the entry for (m, p) if it names holder (a newer holder stays). */
static void dir_forget(mqtt_node *n, const mqtt_model_id *m, const uint8_t *p, const char *holder)
{
    mqtt_node_dirent *d = dir_find(n, m, p);
    if (d && strcmp(d->ann.holder, holder) == 0) d->used = false;
}

/* Starts the fetch from a known announcement, if there is one. */
static void fetch_from_dir(mqtt_node *n)
{
    mqtt_node_fetch_state *f = &n->fetch;
    const mqtt_node_dirent *known = dir_find(n, &f->model, f->prefix);
    if (!known) return;
    f->ann = known->ann;
    f->meta = known->meta;
    snprintf(f->holder, sizeof f->holder, "%s", known->ann.holder);
    f->state = F_ANNOUNCED;
}

/* ---- incoming ---------------------------------------------------------------------------- */

static bool node_admit(void *user, const mqtt_frame_hdr *h, uint8_t **buf, size_t *cap)
{
    mqtt_node *n = user;
    mqtt_node_fetch_state *f = &n->fetch;
    if (h->type == MQTT_FT_KV_CACHE && f->state == F_REQUESTED && !f->lent && h->xfer == f->xfer &&
        strcmp(h->sender, f->holder) == 0 && same_cache(&h->model, h->prefix, &f->model, f->prefix)) {
        if (h->total_len > f->cap) return false;
        f->lent = true;
        *buf = f->buf;
        *cap = f->cap;
        return true;
    }
    /* Pushed payloads come on our own req/ or cmd/ topic; anything else (a late chunk on
     * a data topic after a fetch ended) must not tie up the inbox until it stalls. */
    if (n->cfg.inbox && !n->inbox_busy && (n->cur_kind == MQTT_TOPIC_REQ || n->cur_kind == MQTT_TOPIC_CMD)) {
        n->inbox_busy = true;
        *buf = n->cfg.inbox;
        *cap = n->cfg.inbox_cap;
        return true;
    }
    return false;
}

static void node_release(void *user, const mqtt_frame_hdr *h, uint8_t *buf, int reason)
{
    mqtt_node *n = user;
    (void)h;
    (void)reason;
    if (n->fetch.lent && buf == n->fetch.buf) n->fetch.lent = false;  /* re-requested later */
    if (n->inbox_busy && buf == n->cfg.inbox) n->inbox_busy = false;
}

static void node_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    mqtt_node *n = user;
    mqtt_node_fetch_state *f = &n->fetch;
    switch (h->type) {
    case MQTT_FT_KV_ANNOUNCE: {
        mqtt_announce a;
        if (mqtt_announce_decode(p, len, &a) != MQTT_OK || strcmp(a.holder, h->sender) != 0) return;
        dir_put(n, h, &a);
        if (f->state == F_WAIT_ANN && same_cache(&h->model, h->prefix, &f->model, f->prefix)) {
            f->ann = a;
            f->meta = *h;
            snprintf(f->holder, sizeof f->holder, "%s", a.holder);
            f->state = F_ANNOUNCED;
        }
        break;   /* the application sees verified announcements too */
    }
    case MQTT_FT_REQUEST:
        handle_request(n, h, p, len);
        return;
    case MQTT_FT_RESPONSE: {
        mqtt_response r;
        if (f->state == F_REQUESTED && strcmp(h->sender, f->holder) == 0 &&
            mqtt_response_decode(p, len, &r) == MQTT_OK && r.xfer == f->xfer) {
            f->last_progress_ms = now_ms(n);
            if (r.status == MQTT_ERR_NOT_FOUND) {
                f->state = F_FAILED;
                f->status = MQTT_ERR_NOT_FOUND;
            }
            if (r.status == MQTT_ERR_BUSY && n->cfg.stall_ms > 200)   /* ask again in ~200 ms */
                f->last_progress_ms = now_ms(n) + 200 - n->cfg.stall_ms;
        }
        return;
    }
    case MQTT_FT_KV_CACHE:
        if (f->state == F_REQUESTED && h->xfer == f->xfer && strcmp(h->sender, f->holder) == 0 &&
            same_cache(&h->model, h->prefix, &f->model, f->prefix)) {
            if (p != f->buf) {          /* a small cache came through rx's own buffer */
                if (len > f->cap) return;
                memcpy(f->buf, p, len);
            }
            f->lent = false;
            f->got = len;
            f->state = F_DONE;
            return;
        }
        break;
    default:
        break;
    }
    if (n->cfg.on_deliver) n->cfg.on_deliver(n->cfg.user, h, p, len);
    if (p == n->cfg.inbox) n->inbox_busy = false;
}

static void node_message(void *user, const char *topic, const uint8_t *payload, size_t len,
                         const mqtt_msg_props *props)
{
    mqtt_node *n = user;
    char node[MQTT_NODE_ID_MAX + 1];
    mqtt_model_id model;
    uint8_t prefix[MQTT_ID_BYTES];
    int kind = mqtt_topic_parse(n->session.root, topic, &model, prefix, node, sizeof node);
    if (kind == MQTT_TOPIC_KV_ANNOUNCE && len == 0) {
        /* A cleared announcement: its holder withdrew it. Unauthenticated, so it is only
         * used to forget (the worst a forger achieves is a miss). */
        mqtt_node_dirent *d = dir_find(n, &model, prefix);
        if (d) d->used = false;
        if (n->cfg.on_withdrawn) n->cfg.on_withdrawn(n->cfg.user, &model, prefix);
        return;
    }
    if (kind == MQTT_TOPIC_STATUS) {
        mqtt_node_fetch_state *f = &n->fetch;
        if (len == 7 && memcmp(payload, "offline", 7) == 0 && f->state == F_REQUESTED &&
            strcmp(node, f->holder) == 0) {
            /* The holder died (its will) or its announcement was stale: free what it sent
             * and wait, until the deadline, for another holder to announce the prefix. */
            mqtt_rx_abandon_sender(&n->rx, node);
            dir_forget(n, &f->model, f->prefix, node);
            mqtt_session_unsubscribe(&n->session, f->status_topic);
            f->status_topic[0] = '\0';
            f->holder[0] = '\0';
            f->lent = false;
            f->status = MQTT_ERR_PEER_GONE;
            f->state = F_WAIT_ANN;
            fetch_from_dir(n);   /* another holder may have announced meanwhile */
        }
        return;
    }
    if (len < 4 || le_get32(payload) != MQTT_FRAME_MAGIC) {
        if (len) n->stats_foreign++;   /* empty = a cleared retained message */
        return;
    }
    n->cur_props = props;
    n->cur_kind = kind;
    int rc = mqtt_rx_input(&n->rx, now_ms(n), payload, len);
    n->cur_props = NULL;
    n->cur_kind = MQTT_TOPIC_UNKNOWN;
    if (rc == MQTT_OK && kind == MQTT_TOPIC_KV_DATA) n->fetch.last_progress_ms = now_ms(n);
}

static void node_event(void *user, int ev)
{
    mqtt_node *n = user;
    if (ev != MQTT_EV_CONNECTED) return;
    for (size_t i = 0; i < n->cfg.max_announce; i++)
        if (n->anns[i].used) publish_announce(n, &n->anns[i]);
    if (n->fetch.state == F_REQUESTED) n->fetch.resend = true;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int mqtt_node_init(mqtt_node *n, const mqtt_node_cfg *cfg)
{
    if (!n || !cfg || !cfg->keys || !cfg->seq || !cfg->max_transfers || !cfg->max_peers ||
        !cfg->max_serving || !cfg->max_announce || !cfg->max_directory)
        return MQTT_ERR_INVAL;
    if (cfg->share_group && !mqtt_node_id_valid(cfg->share_group)) return MQTT_ERR_INVAL;
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    if (cfg->share_group) snprintf(n->group, sizeof n->group, "%s", cfg->share_group);
    n->cfg.share_group = NULL;   /* the copy in n->group is used */
    n->cur_kind = MQTT_TOPIC_UNKNOWN;
    mqtt_session_cfg sc = cfg->session;
    sc.on_message = node_message;
    sc.on_event = node_event;
    sc.user = n;
    int rc = mqtt_session_init(&n->session, &sc);
    if (rc) return rc;
    mqtt_tx_cfg tc = { .keys = cfg->keys, .seq = cfg->seq, .sender = n->session.node_id,
                       .chunk_size = cfg->chunk_size, .cipher = cfg->cipher, .zstd_level = cfg->zstd_level };
    rc = mqtt_tx_init(&n->tx, &tc);
    if (rc) goto fail;
    mqtt_rx_cfg rcfg = { .keys = cfg->keys, .model = cfg->model, .max_total = cfg->max_total,
                         .timeout_ms = cfg->timeout_ms, .max_transfers = cfg->max_transfers,
                         .max_peers = cfg->max_peers, .small_max = SMALL_MAX, .admit = node_admit,
                         .deliver = node_deliver, .release = node_release, .user = n };
    rc = mqtt_rx_init(&n->rx, &rcfg);
    if (rc) goto fail;
    n->frame_cap = mqtt_frame_size_max(n->tx.cfg.chunk_size);
    n->frame = malloc(n->frame_cap);
    n->serving = calloc(cfg->max_serving, sizeof *n->serving);
    n->anns = calloc(cfg->max_announce, sizeof *n->anns);
    n->dir = calloc(cfg->max_directory, sizeof *n->dir);
    if (!n->frame || !n->serving || !n->anns || !n->dir) {
        rc = MQTT_ERR_NOMEM;
        goto fail;
    }
    return MQTT_OK;
fail:
    mqtt_node_free(n);
    return rc;
}

void mqtt_node_free(mqtt_node *n)
{
    if (!n) return;
    for (size_t i = 0; n->serving && i < n->cfg.max_serving; i++)
        if (n->serving[i].used) serve_end(n, &n->serving[i]);
    mqtt_session_free(&n->session);
    mqtt_tx_free(&n->tx);
    mqtt_rx_free(&n->rx);
    free(n->frame);
    free(n->serving);
    free(n->anns);
    free(n->dir);
    n->dir = NULL;
    n->frame = NULL;
    n->serving = NULL;
    n->anns = NULL;
}

int mqtt_node_start(mqtt_node *n)
{
    if (!n) return MQTT_ERR_INVAL;
    char t[MQTT_TOPIC_MAX];
    const int kinds[] = { MQTT_TOPIC_REQ, MQTT_TOPIC_RESP, MQTT_TOPIC_CMD };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int rc = mqtt_topic_build(n->session.root, kinds[i], NULL, NULL, n->session.node_id, t, sizeof t);
        if (!rc) rc = mqtt_session_subscribe(&n->session, t);
        if (rc) return rc;
    }
    if (n->group[0]) {
        char shared[MQTT_TOPIC_MAX];
        int rc = mqtt_topic_build(n->session.root, MQTT_TOPIC_REQ, NULL, NULL, n->group, t, sizeof t);
        if (!rc) rc = mqtt_topic_shared(n->group, t, shared, sizeof shared);
        if (!rc) rc = mqtt_session_subscribe(&n->session, shared);
        if (rc) return rc;
    }
    return mqtt_session_start(&n->session);
}

int mqtt_node_poll(mqtt_node *n, int timeout_ms)
{
    if (!n) return MQTT_ERR_INVAL;
    serve_pump(n);
    int rc = mqtt_session_poll(&n->session, timeout_ms);
    mqtt_rx_tick(&n->rx, now_ms(n));
    serve_pump(n);
    return rc;
}

int mqtt_node_wait_connected(mqtt_node *n, uint32_t timeout_ms)
{
    uint64_t end = now_ms(n) + timeout_ms;
    while (!mqtt_session_connected(&n->session)) {
        int rc = mqtt_node_poll(n, 50);
        if (rc) return rc;
        if (now_ms(n) >= end) return MQTT_ERR_TIMEOUT;
    }
    return MQTT_OK;
}

static bool serving_any(const mqtt_node *n)
{
    for (size_t i = 0; i < n->cfg.max_serving; i++)
        if (n->serving[i].used) return true;
    return false;
}

int mqtt_node_flush(mqtt_node *n, uint32_t timeout_ms)
{
    uint64_t end = now_ms(n) + timeout_ms;
    while (serving_any(n) || mqtt_session_inflight(&n->session)) {
        int rc = mqtt_node_poll(n, 20);
        if (rc) return rc;
        if (now_ms(n) >= end) return MQTT_ERR_TIMEOUT;
    }
    return MQTT_OK;
}

/* ---- directory -------------------------------------------------------------------------------- */

int mqtt_node_announce(mqtt_node *n, const mqtt_cache_info *info)
{
    if (!n || !info) return MQTT_ERR_INVAL;
    mqtt_node_ann *a = NULL;
    for (size_t i = 0; i < n->cfg.max_announce; i++) {
        mqtt_node_ann *c = &n->anns[i];
        if (c->used && same_cache(&c->info.model, c->info.prefix, &info->model, info->prefix)) { a = c; break; }
        if (!c->used && !a) a = c;
    }
    if (!a) return MQTT_ERR_BUSY;
    int rc = mqtt_topic_build(n->session.root, MQTT_TOPIC_KV_ANNOUNCE, &info->model, info->prefix, NULL,
                              a->topic, sizeof a->topic);
    if (rc) return rc;
    a->used = true;
    a->info = *info;
    /* Not connected yet: published on connect. */
    return mqtt_session_connected(&n->session) ? publish_announce(n, a) : MQTT_OK;
}

int mqtt_node_withdraw(mqtt_node *n, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES])
{
    if (!n || !model || !prefix) return MQTT_ERR_INVAL;
    for (size_t i = 0; i < n->cfg.max_announce; i++) {
        mqtt_node_ann *a = &n->anns[i];
        if (!a->used || !same_cache(&a->info.model, a->info.prefix, model, prefix)) continue;
        a->used = false;
        /* The topic holds one announcement: when another node announced the prefix after
         * us (seen in the directory), it is theirs now, and clearing it would hide their
         * cache. */
        const mqtt_node_dirent *d = dir_find(n, model, prefix);
        if (d && strcmp(d->ann.holder, n->session.node_id) != 0) return MQTT_OK;
        mqtt_pub_opts o = { .qos = 1, .retain = true };
        return mqtt_session_publish(&n->session, a->topic, NULL, 0, &o);
    }
    return MQTT_ERR_NOT_FOUND;
}

static int send_request(mqtt_node *n, uint64_t now)
{
    mqtt_node_fetch_state *f = &n->fetch;
    uint8_t bm[MQTT_MAX_CHUNKS / 8];
    memset(bm, 0, sizeof bm);
    mqtt_request r = { .op = MQTT_REQ_FETCH, .xfer = f->xfer,
                       .expiry_s = (uint32_t)((f->deadline_ms - now) / 1000u + 1) };
    snprintf(r.reply_to, sizeof r.reply_to, "%s", n->session.node_id);
    int missing = mqtt_rx_missing(&n->rx, f->holder, f->xfer, bm, sizeof bm * 8);
    if (missing > 0) {
        r.bitmap = bm;
        /* The holder chunks with the size it announced. */
        r.bitmap_bits = (uint32_t)((f->ann.size + f->ann.chunk_size - 1) / (f->ann.chunk_size ? f->ann.chunk_size : 1));
        if (r.bitmap_bits == 0 || r.bitmap_bits > MQTT_MAX_CHUNKS) r.bitmap_bits = 0;
    }
    uint8_t body[MQTT_REQUEST_FIXED + MQTT_MAX_CHUNKS / 8];
    size_t blen;
    int rc = mqtt_request_encode(&r, body, sizeof body, &blen);
    if (rc) return rc;
    char topic[MQTT_TOPIC_MAX], resp[MQTT_TOPIC_MAX];
    mqtt_topic_build(n->session.root, MQTT_TOPIC_REQ, NULL, NULL, f->holder, topic, sizeof topic);
    mqtt_topic_build(n->session.root, MQTT_TOPIC_RESP, NULL, NULL, n->session.node_id, resp, sizeof resp);
    uint8_t corr[8];
    le_put64(corr, f->xfer);
    mqtt_frame_hdr t = { .type = MQTT_FT_REQUEST, .model = f->model };
    memcpy(t.prefix, f->prefix, MQTT_ID_BYTES);
    mqtt_pub_opts o = { .qos = 1, .response_topic = resp, .correlation = corr, .correlation_len = 8,
                        .expiry_s = r.expiry_s, .kind = "request" };
    return send_small(n, topic, &t, body, blen, &o);
}

static void fetch_end(mqtt_node *n)
{
    mqtt_node_fetch_state *f = &n->fetch;
    if (f->lent) mqtt_rx_abandon(&n->rx, f->holder, f->xfer, MQTT_DROP_STALLED);
    mqtt_session_unsubscribe(&n->session, f->ann_topic);
    mqtt_session_unsubscribe(&n->session, f->data_topic);
    if (f->status_topic[0]) mqtt_session_unsubscribe(&n->session, f->status_topic);
    f->state = F_IDLE;
}

static void fill_info(const mqtt_node_fetch_state *f, mqtt_cache_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->model = f->meta.model;
    memcpy(info->prefix, f->meta.prefix, MQTT_ID_BYTES);
    info->size = f->ann.size;
    info->layer_begin = f->meta.layer_begin;
    info->layer_end = f->meta.layer_end;
    info->pos_begin = f->meta.pos_begin;
    info->pos_end = f->meta.pos_end;
    info->codec = f->meta.codec;
}

/* Shared by find and fetch: runs the state machine until it settles or time runs out. */
static int fetch_run(mqtt_node *n, const mqtt_model_id *model, const uint8_t *prefix, uint8_t *buf, size_t cap,
                     uint32_t deadline_ms, bool find_only, mqtt_announce *ann, mqtt_cache_info *info, uint64_t *len)
{
    if (!n || !model || !prefix || (!find_only && !buf)) return MQTT_ERR_INVAL;
    mqtt_node_fetch_state *f = &n->fetch;
    if (f->state != F_IDLE) return MQTT_ERR_BUSY;
    memset(f, 0, sizeof *f);
    f->model = *model;
    memcpy(f->prefix, prefix, MQTT_ID_BYTES);
    f->buf = buf;
    f->cap = cap;
    uint64_t now = now_ms(n);
    f->deadline_ms = now + deadline_ms;
    mqtt_topic_build(n->session.root, MQTT_TOPIC_KV_ANNOUNCE, model, prefix, NULL, f->ann_topic, sizeof f->ann_topic);
    mqtt_topic_build(n->session.root, MQTT_TOPIC_KV_DATA, model, prefix, NULL, f->data_topic, sizeof f->data_topic);
    f->state = F_WAIT_ANN;
    /* Known already: start from the cached announcement (updates still arrive). */
    fetch_from_dir(n);
    int rc = mqtt_session_subscribe(&n->session, f->ann_topic);
    if (!rc && !find_only) rc = mqtt_session_subscribe(&n->session, f->data_topic);
    while (!rc) {
        rc = mqtt_node_poll(n, 10);
        if (rc) break;
        now = now_ms(n);
        if (f->state == F_ANNOUNCED) {
            if (find_only) break;
            if (f->ann.size > cap) { rc = MQTT_ERR_OVERSIZE; break; }
            mqtt_topic_build(n->session.root, MQTT_TOPIC_STATUS, NULL, NULL, f->holder, f->status_topic,
                             sizeof f->status_topic);
            rc = mqtt_session_subscribe(&n->session, f->status_topic);
            if (!rc) rc = mqtt_seq_next(n->cfg.seq, &f->xfer);
            if (rc) break;
            f->state = F_REQUESTED;
            f->resend = true;
        }
        if (f->state == F_REQUESTED &&
            (f->resend || now - f->last_progress_ms >= n->cfg.stall_ms) && mqtt_session_connected(&n->session)) {
            if (!f->resend) n->stats_rerequests++;
            if (send_request(n, now) == MQTT_OK) f->resend = false;
            f->last_progress_ms = now;
        }
        if (f->state == F_DONE) break;
        if (f->state == F_FAILED) { rc = f->status; break; }
        if (now >= f->deadline_ms) {
            rc = f->status ? f->status : f->state == F_WAIT_ANN ? MQTT_ERR_NOT_FOUND : MQTT_ERR_TIMEOUT;
            break;
        }
    }
    if (!rc) {
        if (ann) *ann = f->ann;
        fill_info(f, info);
        if (len) *len = f->got;
    } else {
        /* A failed fetch may mean a stale announcement: wait for a fresh one next time. */
        if (rc != MQTT_ERR_BUSY && f->holder[0]) dir_forget(n, model, prefix, f->holder);
        if (!find_only) memset(buf, 0, f->ann.size && f->ann.size < cap ? (size_t)f->ann.size : cap);
    }
    fetch_end(n);
    return rc;
}

int mqtt_node_find(mqtt_node *n, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                   uint32_t timeout_ms, mqtt_announce *ann, mqtt_cache_info *info)
{
    return fetch_run(n, model, prefix, NULL, 0, timeout_ms, true, ann, info, NULL);
}

int mqtt_node_fetch(mqtt_node *n, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                    uint8_t *buf, size_t cap, uint32_t deadline_ms, uint64_t *len, mqtt_cache_info *info)
{
    return fetch_run(n, model, prefix, buf, cap, deadline_ms, false, NULL, info, len);
}

int mqtt_node_send(mqtt_node *n, const char *dest, const mqtt_frame_hdr *tmpl, const uint8_t *payload,
                   uint64_t len, uint32_t deadline_ms)
{
    if (!n || !tmpl || !mqtt_node_id_valid(dest)) return MQTT_ERR_INVAL;
    char topic[MQTT_TOPIC_MAX];
    int rc = mqtt_topic_build(n->session.root, MQTT_TOPIC_REQ, NULL, NULL, dest, topic, sizeof topic);
    mqtt_tx_xfer x;
    if (!rc) rc = mqtt_tx_begin(&n->tx, &x, tmpl, payload, len);
    uint64_t end = now_ms(n) + deadline_ms;
    for (uint32_t i = 0; !rc && i < x.hdr.chunk_count;) {
        if (mqtt_session_connected(&n->session) && mqtt_session_inflight(&n->session) < n->session.cfg.inflight_max) {
            size_t flen;
            rc = mqtt_tx_chunk(&n->tx, &x, i, n->frame, n->frame_cap, &flen);
            mqtt_pub_opts o = { .qos = 1, .expiry_s = deadline_ms / 1000u + 1, .kind = "data" };
            if (!rc) rc = mqtt_session_publish(&n->session, topic, n->frame, flen, &o);
            if (rc == MQTT_ERR_NO_CONN) rc = MQTT_OK;   /* retried after reconnect */
            else if (!rc) {
                n->stats_frames_sent++;
                n->stats_bytes_sent += flen;
                i++;
            }
            continue;
        }
        if (!rc) rc = mqtt_node_poll(n, 10);
        if (!rc && now_ms(n) >= end) rc = MQTT_ERR_TIMEOUT;
    }
    while (!rc && mqtt_session_inflight(&n->session)) {
        rc = mqtt_node_poll(n, 10);
        if (!rc && now_ms(n) >= end) rc = MQTT_ERR_TIMEOUT;
    }
    return rc;
}

int mqtt_node_send_shared(mqtt_node *n, const char *group, const mqtt_frame_hdr *tmpl, const uint8_t *payload,
                          uint64_t len, uint32_t deadline_ms)
{
    if (!n) return MQTT_ERR_INVAL;
    if (len > n->tx.cfg.chunk_size) return MQTT_ERR_OVERSIZE;
    return mqtt_node_send(n, group, tmpl, payload, len, deadline_ms);
}

int mqtt_node_publish_sealed(mqtt_node *n, const char *topic, const mqtt_frame_hdr *tmpl,
                             const uint8_t *payload, size_t len, const mqtt_pub_opts *o)
{
    if (!n || !topic || !tmpl || (len && !payload)) return MQTT_ERR_INVAL;
    if (len > n->tx.cfg.chunk_size) return MQTT_ERR_OVERSIZE;
    mqtt_pub_opts def = { .qos = 1 };
    return send_small(n, topic, tmpl, payload, len, o ? o : &def);
}

const mqtt_msg_props *mqtt_node_delivery_props(const mqtt_node *n)
{
    return n ? n->cur_props : NULL;
}

int mqtt_node_publish_metrics(mqtt_node *n, const char *json)
{
    if (!n || !json) return MQTT_ERR_INVAL;
    char topic[MQTT_TOPIC_MAX];
    int rc = mqtt_topic_build(n->session.root, MQTT_TOPIC_METRICS, NULL, NULL, n->session.node_id, topic, sizeof topic);
    mqtt_pub_opts o = { .qos = 0, .kind = "metrics" };
    return rc ? rc : mqtt_session_publish(&n->session, topic, json, strlen(json), &o);
}

void mqtt_node_get_stats(const mqtt_node *n, mqtt_node_stats *out)
{
    if (!n || !out) return;
    memset(out, 0, sizeof *out);
    out->rx = n->rx.stats;
    out->frames_sent = n->stats_frames_sent;
    out->bytes_sent = n->stats_bytes_sent;
    out->requests_served = n->stats_served;
    out->requests_refused = n->stats_refused;
    out->resumes = n->stats_resumes;
    out->fetch_rerequests = n->stats_rerequests;
    out->foreign = n->stats_foreign;
}
