/*
 * The collaboration message codec and the broker node that `kvmesh collab` and
 * `kvmesh peer` share (see collab.h for the format).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "collab.h"

size_t collab_max_msg(uint32_t dim)
{
    size_t rows = nn_hidden_bound(COLLAB_MAX_ROWS, dim), toks = 4u * COLLAB_MAX_TOKENS;
    size_t m = COLLAB_HDR + (rows > toks ? rows : toks);
    return m < COLLAB_HDR + 65536 ? COLLAB_HDR + 65536 : m;
}

void collab_cost_fit(uint32_t n_lo, uint64_t t_lo, uint32_t n_hi, uint64_t t_hi, uint32_t *per_call,
                     uint32_t *per_row)
{
    uint64_t b = n_hi > n_lo && t_hi > t_lo ? (t_hi - t_lo) / (n_hi - n_lo) : t_lo / (n_lo ? n_lo : 1);
    uint64_t a = t_lo > b * n_lo ? t_lo - b * n_lo : 0;
    *per_row = b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
    *per_call = a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
}

uint32_t collab_chunk_tiles(uint32_t c)
{
    uint32_t t = c >= 12 ? 8 : 4;
    return c < 4 ? c : (c + t / 2) / t * t;
}

uint32_t collab_chunk_at(uint32_t c, int fixed, uint32_t done, uint32_t left, uint32_t i)
{
    uint32_t cmin = c / 4 >= 4 ? c / 4 : c < 4 ? 1 : 4;   /* no ramp piece under a tile */
    if (fixed || left <= cmin)
        return left < c ? left : c;
    if (i < 2 && cmin << i < c && done + left > 2 * c)
        c = cmin << i;
    if (left < 2 * c)
        c = (left + 1) / 2 > cmin ? (left + 1) / 2 : cmin;
    c = collab_chunk_tiles(c);
    return c + 4 > left ? left : c;
}

uint32_t collab_work_positions(const nn_model *md, uint32_t dim)
{
    for (uint32_t wpos = COLLAB_MAX_ROWS;; wpos *= 2) {
        nn_arena probe;
        nn_arena_init(&probe, NULL, 0);
        nn_kv_work w;
        nn_kv_work_init(&w, md, wpos, &probe);
        if (w.scratch_bytes >= (size_t)COLLAB_MAX_ROWS * dim * 4)
            return wpos;
    }
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void collab_msg_write(const collab_msg *m, uint8_t out[COLLAB_HDR])
{
    memset(out, 0, COLLAB_HDR);
    wr32(out, COLLAB_MAGIC);
    out[4] = COLLAB_VERSION;
    out[5] = m->op;
    out[6] = m->hidden;
    out[7] = m->status;
    const uint32_t f[] = { m->session, m->seq, m->pos0, m->n, m->l0, m->l1, m->draft, m->have,
                           m->token, m->accepted, m->flags, m->peer_time, m->data_len, m->peer_ns_call };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        wr32(out + 8 + 4 * i, f[i]);
}

int collab_msg_read(collab_msg *m, const uint8_t *in, size_t len)
{
    if (len < COLLAB_HDR || rd32(in) != COLLAB_MAGIC || in[4] != COLLAB_VERSION)
        return -1;
    m->op = in[5];
    m->hidden = in[6];
    m->status = in[7];
    uint32_t *f[] = { &m->session, &m->seq, &m->pos0, &m->n, &m->l0, &m->l1, &m->draft, &m->have,
                      &m->token, &m->accepted, &m->flags, &m->peer_time, &m->data_len, &m->peer_ns_call };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *f[i] = rd32(in + 8 + 4 * i);
    if (m->data_len > len - COLLAB_HDR || m->op < COLLAB_OP_LAYERS || m->op > COLLAB_OP_PING)
        return -1;
    return 0;
}

int collab_net_open(collab_net *n, const fw_config *c, const mqtt_model_id *mid, size_t max_msg,
                    mqtt_node_deliver_fn deliver, void *user, uint32_t wait_ms, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    n->mid = *mid;
    uint8_t secret[MQTT_SECRET_MAX];
    size_t slen;
    int rc = mqtt_keys_load_secret(c->secret_file, secret, sizeof secret, &slen);
    if (rc || mqtt_keys_init(&n->keys, secret, slen, c->fleet)) {
        snprintf(err, errlen, "[security] secret_file: cannot use %s: %s", c->secret_file,
                 rc ? mqtt_strerror(rc) : "a fleet secret is 16..64 bytes (or 32..128 hex digits)");
        memset(secret, 0, sizeof secret);
        return -1;
    }
    memset(secret, 0, sizeof secret);
    if (mkdir(c->state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "[node] state_dir: cannot create %s: %s", c->state_dir, strerror(errno));
        return -1;
    }
    char nonce[FW_PATH_MAX + 16];
    snprintf(nonce, sizeof nonce, "%s/nonce", c->state_dir);
    mqtt_seqfile_open(&n->seqfile, nonce);
    mqtt_seq_init(&n->seq, mqtt_seqfile_reserve, &n->seqfile);
    uint64_t probe;
    if ((rc = mqtt_seq_next(&n->seq, &probe)) != MQTT_OK) {
        snprintf(err, errlen, "nonce counter %s: %s", nonce, mqtt_strerror(rc));
        return -1;
    }
    if (c->root[0])
        snprintf(n->root, sizeof n->root, "%s", c->root);
    else
        mqtt_topic_root(c->fleet, n->root, sizeof n->root);
    n->inbox_cap = max_msg;
    n->inbox = malloc(max_msg);
    if (!n->inbox) {
        snprintf(err, errlen, "no memory for a %zu-byte inbox", max_msg);
        return -1;
    }
    mqtt_node_cfg nc = mqtt_node_cfg_default();
    fw_config_session(c, n->root, &nc.session);
    /* Pipelined chunks are small single-frame publishes; let many be in flight. */
    nc.session.inflight_max = 64;
    nc.keys = &n->keys;
    nc.seq = &n->seq;
    nc.model = &n->mid;
    nc.cipher = (uint8_t)c->cipher;
    nc.max_total = max_msg;
    nc.inbox = n->inbox;
    nc.inbox_cap = max_msg;
    nc.share_group = c->share_group[0] ? c->share_group : NULL;
    nc.on_deliver = deliver;
    nc.user = user;
    n->chunk_size = nc.chunk_size ? nc.chunk_size : MQTT_CHUNK_DEFAULT;
    if ((rc = mqtt_node_init(&n->node, &nc)) != MQTT_OK) {
        snprintf(err, errlen, "[broker]: cannot set up the connection: %s", mqtt_strerror(rc));
        free(n->inbox);
        n->inbox = NULL;
        return -1;
    }
    if ((rc = mqtt_node_start(&n->node)) != MQTT_OK || (rc = mqtt_node_wait_connected(&n->node, wait_ms)) != MQTT_OK) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->url, mqtt_strerror(rc));
        collab_net_close(n);
        return -1;
    }
    return 0;
}

void collab_net_close(collab_net *n)
{
    if (!n || !n->inbox)
        return;
    mqtt_node_flush(&n->node, 1000);
    mqtt_node_free(&n->node);
    free(n->inbox);
    n->inbox = NULL;
    mqtt_keys_wipe(&n->keys);
}

/* Link bytes of a payload: every chunk carries the frame header and the AEAD tag. */
static uint64_t link_bytes(const collab_net *n, uint64_t len)
{
    uint64_t chunks = len ? (len + n->chunk_size - 1) / n->chunk_size : 1;
    return len + chunks * (MQTT_FRAME_HDR_SIZE + MQTT_TAG_SIZE);
}

void collab_net_drops(const collab_net *n, char *out, size_t cap)
{
    mqtt_node_stats st;
    mqtt_node_get_stats(&n->node, &st);
    int k = snprintf(out, cap, "%llu frames in, %llu delivered", (unsigned long long)st.rx.frames_in,
                     (unsigned long long)st.rx.delivered);
    for (int r = 0; r < MQTT_DROP_REASONS_ && k > 0 && (size_t)k < cap; r++)
        if (st.rx.drops[r])
            k += snprintf(out + k, cap - (size_t)k, ", dropped %s %llu", mqtt_drop_reason_name(r),
                          (unsigned long long)st.rx.drops[r]);
}

void collab_net_count_rx(collab_net *n, size_t len)
{
    n->recv_bytes += link_bytes(n, len);
    n->recv_msgs++;
}

int collab_net_send(collab_net *n, const char *dest, uint8_t type, const collab_msg *m, uint8_t *buf,
                    uint32_t deadline_ms)
{
    size_t len = COLLAB_HDR + m->data_len;
    collab_msg_write(m, buf);
    mqtt_frame_hdr h;
    memset(&h, 0, sizeof h);
    h.type = type;
    h.model = n->mid;
    h.layer_begin = m->l0;
    h.layer_end = m->l1;
    h.pos_begin = m->pos0;
    h.pos_end = m->pos0 + m->n;
    h.codec = m->hidden;
    int rc;
    if (len <= n->chunk_size) {
        char topic[MQTT_TOPIC_MAX];
        rc = mqtt_topic_build(n->root, MQTT_TOPIC_REQ, NULL, NULL, dest, topic, sizeof topic);
        mqtt_pub_opts o = { .qos = 1, .expiry_s = deadline_ms / 1000u + 1, .kind = "data" };
        if (!rc)
            rc = mqtt_node_publish_sealed(&n->node, topic, &h, buf, len, &o);
    } else {
        rc = mqtt_node_send(&n->node, dest, &h, buf, len, deadline_ms);
    }
    if (!rc) {
        n->sent_bytes += link_bytes(n, len);
        n->sent_msgs++;
    }
    return rc;
}
