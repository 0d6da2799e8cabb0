/*
 * kvmesh collab: the device side of a collaboration (collab.h, docs/collab.md).
 *
 * The device always runs the embedding and layers [0, k) itself and keeps the residual
 * stream at the input of layer k for every position (hist). That one record serves
 * every mode:
 *   split  the rows go to the peer, which runs [k, L-m) and keeps that KV; its output
 *          comes back and the device runs [L-m, L), the head and sampling. Prompts go
 *          in chunks, pipelined: the device computes chunk i+1 while the peer works on
 *          chunk i.
 *   spec   layers [0, k) plus the exit head at k draft d tokens; the peer verifies
 *          them with the whole model in one pass; the device rolls its KV back.
 *   exit   the exit head at k decides when its top-1 probability passes a threshold;
 *          otherwise the rows the peer has not seen yet (every position since the last
 *          offload) go to it, so the peer's deep-layer KV is exactly the full model's
 *          for this text: the exited positions' deep KV is computed lazily, at the
 *          next offload.
 *   device / peer  the baselines: everything here (slowed down), or everything there.
 * Fallback: when the peer does not answer before the deadline, the device computes the
 * layers it lacks for every position from hist (run_layers is bit-identical to a
 * whole forward pass) and continues standalone; split and speculative output stays
 * identical to `kvmesh generate`.
 */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "collab.h"
#include "engine.h"

#define DEV_SLOTS 32   /* replies buffered; in flight at most DEV_SLOTS - 1, and the peer's share */

typedef enum { CM_SPLIT, CM_SPEC, CM_EXIT, CM_DEVICE, CM_PEER, CM_SPLIT_SPEC } collab_mode;
static const char *const mode_names[] = { "split", "spec", "exit", "device", "peer", "split-spec" };

typedef struct {
    uint32_t seq;
    int ready;
    uint32_t grace_ms;          /* added to the deadline: the request's expected compute (grace_ms()) */
    collab_msg r;
    uint8_t *data;
} dev_slot;

typedef struct {
    fw_config cfg;
    fw_engine e;
    collab_net net;
    int net_ok;
    nn_kv_work w;
    collab_mode mode;
    const char *peer;           /* the peer's node id (pinned from the group's answer) */
    const char *group;          /* --peer-group: peers behind a shared subscription */
    int pinned;                 /* peer is known: messages go to it, not to the group */
    char peer_buf[MQTT_NODE_ID_MAX + 1];
    uint32_t L, dim, vocab, k, m_tail, hidden, chunk, deadline_ms;
    uint32_t d, dmax;
    int whole;                  /* --chunk whole: no pipelining (the unchunked U, a baseline) */
    int chunk_fixed;            /* --chunk N or whole: every chunk that size */
    int draft_skip;             /* split-spec: draft through [0,k) + [L-m,L) + the head */
    int32_t exit_q30;
    int32_t exit_margin_q16;    /* > 0: decide by the top-2 logit margin instead */
    uint32_t slow_x100;         /* device slowdown factor x 100 (800 = 8x slower) */
    uint32_t max_inflight;      /* requests in flight at most: the peer's share of its queue */
    uint32_t peer_ctx;          /* positions the peer holds for a session (0: not known) */
    int send_failed;            /* the last dev_send failed (or was refused) */
    uint32_t session, seq;
    uint64_t seed;
    int32_t *hist;              /* [max_seq][dim] Q16: the residual at the input of layer k */
    int32_t *xa;                /* [COLLAB_MAX_ROWS][dim] Q16 */
    int32_t *logits;            /* [vocab] Q16: the prediction after position ntok-1 */
    int32_t *tl, *dl;           /* split-spec: [dmax+1][vocab] the full model's rows,
                                 * [dmax][vocab] the drafter's (sampling) */
    uint32_t *tok;              /* [max_seq + 1] every token: prompt and output */
    uint32_t ntok, n_prompt;
    uint8_t *msg;               /* outgoing: COLLAB_HDR + data */
    size_t max_msg;
    dev_slot slots[DEV_SLOTS];
    uint32_t peer_have, dev_fed;
    int standalone;             /* the peer failed: everything here from now on */
    uint32_t fallback_at;       /* tokens made when it happened */
    uint32_t resume_every;      /* tokens between probes for a returned peer; 0: never */
    uint32_t next_probe_at, probe_seq, resumes, fallbacks;
    /* output */
    uint32_t n_new, made, max_seq;
    const char *stop;
    int done;
    /* measurements */
    uint64_t t_start, t_first, t_last;
    uint64_t dev_ns, peer_ns, wait_ns;
    uint64_t rounds, drafted, accepted, kept, offloaded;
    uint8_t *kept_flag;         /* [max_seq + 1]: the token was decided on the device */
    nn_sha256 lhash;            /* over every logits row the device sampled from */
    uint32_t lhash_rows;
    uint32_t ping_rtt_us, ping_bw_kbps;
    uint32_t peer_ns_row_layer, peer_ns_call_layer, dev_ns_row_layer, dev_ns_call_layer;
    uint64_t probe_bytes;       /* the link probe's, not counted per token */
    double t_model_chunked_ms, t_model_whole_ms;   /* choose_chunk's predictions */
    uint32_t model_chunk;       /* and the chunk size it weighed */
} dev_state;

static dev_state dev_g;

/* ---- device compute, slowed down by a documented factor ----------------------------- */

/* The device's compute is timed on the calling thread's CPU clock: this VM also runs
 * the peer, the broker and the link simulator, and time the device spends preempted by
 * them is not device compute (at 8x it would count eight times). An interval costs
 * F x its CPU time, and at least its wall time; the difference is slept. */
static uint64_t dev_t0, dev_c0;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void dev_begin(void)
{
    dev_t0 = fw_now_ns();
    dev_c0 = thread_cpu_ns();
}

static void dev_end(dev_state *d)
{
    uint64_t wall = fw_now_ns() - dev_t0, dt = wall;
    if (d->slow_x100 > 100) {
        uint64_t slowed = (thread_cpu_ns() - dev_c0) * d->slow_x100 / 100;
        if (slowed > wall) {
            uint64_t extra = slowed - wall;
            struct timespec ts = { (time_t)(extra / 1000000000u), (long)(extra % 1000000000u) };
            nanosleep(&ts, NULL);
            dt = slowed;
        }
    }
    d->dev_ns += dt;
}

/* ---- output ----------------------------------------------------------------------- */

static void print_piece(nn_tok_piece p)
{
    if (!p.p || p.len == 0)
        return;
    if (p.len == 1 && !(isprint(p.p[0]) || isspace(p.p[0])))
        return;
    fwrite(p.p, 1, p.len, stdout);
}

/* Takes one generated token, with `kvmesh generate`'s stopping rules. */
static void emit(dev_state *d, uint32_t t, int on_device)
{
    if (d->done)
        return;
    const nn_tokenizer *tk = &d->e.m->tok;
    if (t == tk->bos_id || t == tk->eos_id) {
        d->stop = t == tk->bos_id ? "BOS" : "EOS";
        d->done = 1;
        return;
    }
    print_piece(nn_tok_decode(tk, d->tok[d->ntok - 1], t));
    fflush(stdout);
    d->kept_flag[d->ntok] = (uint8_t)on_device;
    d->tok[d->ntok++] = t;
    d->made++;
    d->t_last = fw_now_ns();
    if (d->made == 1)
        d->t_first = d->t_last;
    if (d->made == d->n_new) {
        d->done = 1;
    } else if (d->ntok - 1 >= d->max_seq) {
        d->stop = "context full";
        d->done = 1;
    }
}

/* Samples from d->logits, recording them in the logits digest. */
static uint32_t dev_sample(dev_state *d)
{
    nn_sha256_update(&d->lhash, d->logits, (size_t)d->vocab * 4);
    d->lhash_rows++;
    return nn_sampler_sample(&d->e.sp, d->logits);
}

/* ---- the link --------------------------------------------------------------------- */

static void on_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    dev_state *d = user;
    collab_msg r;
    if ((h->type != MQTT_FT_HIDDEN && h->type != MQTT_FT_TOKENS) || collab_msg_read(&r, p, len) ||
        r.session != d->session)
        return;
    if (!d->pinned) {
        /* Asking a group: the member that answers a probe serves the session (a shared
         * subscription hands each message to any member, so the rest must go to one). */
        if (r.op != COLLAB_OP_PING)
            return;
        snprintf(d->peer_buf, sizeof d->peer_buf, "%s", h->sender);
        d->peer = d->peer_buf;
        d->pinned = 1;
    } else if (strcmp(h->sender, d->peer) != 0) {
        return;
    }
    collab_net_count_rx(&d->net, len);
    dev_slot *s = &d->slots[r.seq % DEV_SLOTS];
    if (s->seq != r.seq || s->ready)
        return;   /* not awaited (late, or a duplicate) */
    s->r = r;
    memcpy(s->data, p + COLLAB_HDR, r.data_len);
    s->ready = 1;
}

/* What the peer's measured speed (the last probe's reply) says a request costs it: a
 * long prompt in one VERIFY can take it seconds, well past the deadline, which is for
 * the link and for a peer that is gone. The per-row cost is measured at the first
 * positions and attention grows with the position, so the wait adds twice this
 * (dev_send), but at most 20 deadlines: a disturbed measurement must not keep a device
 * waiting minutes for a peer that is gone. The peer runs a VERIFY in blocks of
 * COLLAB_MAX_ROWS, paying the per-call cost for each. */
static uint32_t grace_ms(const dev_state *d, const collab_msg *m)
{
    uint32_t layers = m->op == COLLAB_OP_VERIFY ? d->L : m->op == COLLAB_OP_LAYERS ? m->l1 - m->l0 : 0;
    uint64_t calls = (m->n + COLLAB_MAX_ROWS - 1) / COLLAB_MAX_ROWS;
    uint64_t ns = (uint64_t)layers * ((uint64_t)m->n * d->peer_ns_row_layer + calls * d->peer_ns_call_layer);
    uint64_t ms = 2 * ns / 1000000u, cap = 20ull * d->deadline_ms;
    return (uint32_t)(ms < cap ? ms : cap);
}

/* Sends d->msg (header m, data already after COLLAB_HDR). Returns the seq or -1. */
static int64_t dev_send(dev_state *d, uint8_t type, collab_msg *m)
{
    if (d->seq == UINT32_MAX)
        return -1;
    d->send_failed = 1;
    if (m->op != COLLAB_OP_PING && d->peer_ctx && m->pos0 + m->n > d->peer_ctx) {
        fprintf(stderr, "kvmesh collab: the peer holds %u positions (its [model] context); this request reaches "
                "position %u\n", d->peer_ctx, m->pos0 + m->n - 1);
        return -1;
    }
    m->session = d->session;
    m->seq = ++d->seq;
    dev_slot *s = &d->slots[m->seq % DEV_SLOTS];
    s->seq = m->seq;
    s->ready = 0;
    s->grace_ms = grace_ms(d, m);
    const char *dest = d->pinned ? d->peer : d->group;
    int rc = collab_net_send(&d->net, dest, type, m, d->msg, d->deadline_ms);
    if (rc) {
        fprintf(stderr, "kvmesh collab: sending to %s failed: %s\n", dest, mqtt_strerror(rc));
        return -1;
    }
    d->send_failed = 0;
    return m->seq;
}

/* Sends hist rows [pos0, pos0+n) for the peer's layers [k, l1) (flags: COLLAB_F_TOKEN or
 * 0). Returns the seq; -1 when sending failed (the peer may be gone), -2 when the rows
 * did not encode. */
static int64_t send_rows(dev_state *d, uint32_t pos0, uint32_t n, uint32_t l1, uint32_t flags)
{
    size_t len;
    if (nn_hidden_encode(d->hist + (size_t)pos0 * d->dim, n, d->dim, d->hidden, &d->w, d->msg + COLLAB_HDR,
                         d->max_msg - COLLAB_HDR, &len))
        return -2;
    collab_msg m = { .op = COLLAB_OP_LAYERS, .hidden = (uint8_t)d->hidden, .pos0 = pos0, .n = n, .l0 = d->k,
                     .l1 = l1, .flags = flags, .data_len = (uint32_t)len };
    return dev_send(d, MQTT_FT_HIDDEN, &m);
}

/* Waits (up to the deadline, plus the request's grace) until reply `seq` is in its slot,
 * leaving it there. Returns the slot, or NULL after the deadline. */
static dev_slot *dev_ready(dev_state *d, uint32_t seq)
{
    dev_slot *s = &d->slots[seq % DEV_SLOTS];
    uint64_t t0 = fw_now_ns(), end = t0 + ((uint64_t)d->deadline_ms + s->grace_ms) * 1000000u;
    while (!(s->seq == seq && s->ready)) {
        if (fw_now_ns() >= end || mqtt_node_poll(&d->net.node, 1) != MQTT_OK) {
            d->wait_ns += fw_now_ns() - t0;
            return NULL;
        }
    }
    d->wait_ns += fw_now_ns() - t0;
    return s;
}

/* Whether reply `seq` is in its slot (no waiting). */
static int reply_in(const dev_state *d, uint32_t seq)
{
    const dev_slot *s = &d->slots[seq % DEV_SLOTS];
    return s->seq == seq && s->ready;
}

/* What a PING reply says besides its timing: how many requests the peer takes in flight
 * from this device (its share of its request queue; at most DEV_SLOTS - 1 are tracked
 * here) and how many positions it holds for a session. */
static void take_ping(dev_state *d, const collab_msg *r)
{
    d->max_inflight = r->n == 0 ? 1 : r->n < DEV_SLOTS - 1 ? r->n : DEV_SLOTS - 1;
    d->peer_ctx = r->have;
    d->peer_ns_row_layer = r->peer_time;
    d->peer_ns_call_layer = r->peer_ns_call;
}

/* Waits for reply `seq` and takes it out of its slot (its data stays there until the
 * slot's next reply). */
static dev_slot *dev_wait(dev_state *d, uint32_t seq)
{
    dev_slot *s = dev_ready(d, seq);
    if (!s)
        return NULL;
    s->ready = 0;
    s->seq = 0;
    if (s->r.op != COLLAB_OP_PING)
        d->peer_ns += (uint64_t)s->r.peer_time * 1000u;
    else
        take_ping(d, &s->r);
    return s;
}

/* ---- device layers ------------------------------------------------------------------- */

/* Embedding and layers [0, k) for positions pos0 .. pos0+n-1 (n <= COLLAB_MAX_ROWS):
 * into xa and hist. */
static nn_status front(dev_state *d, uint32_t pos0, uint32_t n)
{
    dev_begin();
    nn_status st = nn_session_embed(&d->e.s, d->tok + pos0, n, d->xa);
    if (!st && d->k)
        st = nn_session_run_layers(&d->e.s, pos0, d->xa, n, 0, d->k, d->xa);
    if (!st)
        memcpy(d->hist + (size_t)pos0 * d->dim, d->xa, (size_t)n * d->dim * 4);
    dev_end(d);
    return st;
}

/* ---- fallback ------------------------------------------------------------------------ */

/* The U-shaped modes: the device also holds the last m layers. */
static int has_back(const dev_state *d) { return d->mode == CM_SPLIT || d->mode == CM_SPLIT_SPEC; }

/* While standalone, hist keeps being recorded (a returned peer is sent it). */
static void hist_hook(void *ctx, uint32_t layer, uint32_t pos0, uint32_t n, const int32_t *x)
{
    dev_state *d = ctx;
    if (layer == d->k)
        memcpy(d->hist + (size_t)pos0 * d->dim, x, (size_t)n * d->dim * 4);
}

/*
 * The peer is gone. The device holds layers [0, k) for positions [0, fed), and in split
 * mode layers [L-m, L) for [0, back_done). It computes the rest from hist, in order of
 * position (attention needs every earlier position's KV), then feeds the committed
 * tokens it has not fed yet, and ends with logits for the last token.
 */
static int fallback(dev_state *d, uint32_t fed, uint32_t back_done, const char *why)
{
    uint64_t t0 = fw_now_ns();
    uint32_t mid_end = has_back(d) ? d->L - d->m_tail : d->L;
    nn_session *s = &d->e.s;
    nn_status st = NN_OK;
    dev_begin();
    for (uint32_t p = 0; p < fed && !st; p += COLLAB_MAX_ROWS) {
        uint32_t c = fed - p < COLLAB_MAX_ROWS ? fed - p : COLLAB_MAX_ROWS;
        memcpy(d->xa, d->hist + (size_t)p * d->dim, (size_t)c * d->dim * 4);
        st = nn_session_run_layers(s, p, d->xa, c, d->k, mid_end, d->xa);
        if (!st && mid_end < d->L) {
            uint32_t j0 = back_done > p ? (back_done - p < c ? back_done - p : c) : 0;
            if (j0 < c)
                st = nn_session_run_layers(s, p + j0, d->xa + (size_t)j0 * d->dim, c - j0, mid_end, d->L,
                                           d->xa + (size_t)j0 * d->dim);
        }
        if (!st && p + c == fed)
            st = nn_session_logits(s, d->xa + (size_t)(c - 1) * d->dim, 1, d->logits);
    }
    if (!st)
        st = nn_session_set_pos(s, fed);
    /* From here on hist is recorded as the layers run (a returned peer is sent it),
     * starting with the positions the peer never had. */
    nn_session_set_hook(s, hist_hook, d);
    const int32_t *lg = NULL;
    if (!st && fed < d->ntok)
        st = nn_session_forward(s, d->tok + fed, d->ntok - fed, &lg);
    if (!st && lg)
        memcpy(d->logits, lg, (size_t)d->vocab * 4);
    dev_end(d);
    if (st) {
        fprintf(stderr, "kvmesh collab: fallback failed: %s\n", nn_strerror(st));
        return -1;
    }
    d->standalone = 1;
    d->fallback_at = d->made;
    d->fallbacks++;
    d->next_probe_at = d->made + d->resume_every;
    d->probe_seq = 0;
    fprintf(stderr, "kvmesh collab: %s: continuing standalone after %u tokens (computed layers %u..%u for %u "
            "positions in %.1f ms)\n", why, d->made, d->k, d->L, fed, (double)(fw_now_ns() - t0) / 1e6);
    return 0;
}

/* ---- split --------------------------------------------------------------------------- */

/* Runs positions [pos0, ntok) through the U: front here, middle there, back here,
 * pipelined in chunks; leaves the last position's logits. 0, 1 (fell back) or -1. */
static int split_run(dev_state *d, uint32_t pos0)
{
    uint32_t end = d->ntok, sent = pos0, done = pos0, mid_end = d->L - d->m_tail;
    uint32_t q_seq[DEV_SLOTS], q_pos[DEV_SLOTS], q_n[DEV_SLOTS], qh = 0, qn = 0;
    /* --chunk whole: the front of every row first, then the messages (the U without
     * chunking, which HAT's chunking is measured against). */
    uint32_t fronted = pos0, nchunk = 0;
    for (; d->whole && fronted < end; fronted += d->chunk)
        if (front(d, fronted, end - fronted < d->chunk ? end - fronted : d->chunk))
            return -1;
    while (done < end) {
        /* Send the next chunk while there is room in flight; otherwise (or when every
         * chunk is out) take the oldest reply. */
        if (sent < end && qn < d->max_inflight) {
            uint32_t c = collab_chunk_at(d->chunk, d->chunk_fixed, sent - pos0, end - sent, nchunk++);
            if (sent >= fronted && front(d, sent, c))
                return -1;
            int64_t seq = send_rows(d, sent, c, mid_end, 0);
            if (seq == -2)
                return -1;
            if (seq < 0)
                return fallback(d, sent + c, done, "sending failed") ? -1 : 1;
            uint32_t i = (qh + qn++) % DEV_SLOTS;
            q_seq[i] = (uint32_t)seq;
            q_pos[i] = sent;
            q_n[i] = c;
            sent += c;
            mqtt_node_poll(&d->net.node, 0);
            if (sent < end)
                continue;   /* fronts first: the peer never waits while the device works on a back */
            /* Unchunked, the back layers start once the peer has answered for the whole
             * prompt, as in the U-shape HAT's chunking is measured against. (The prompt
             * still crosses in messages of at most 64 rows: running the back of each
             * reply as it came would pipeline the backs with the peer's later messages;
             * a prompt of more messages than the peer takes in flight, 15 from a peer
             * holding four sessions (960 rows), still does that past them.) */
            for (uint32_t j = 0; d->whole && j < qn; j++)
                if (!dev_ready(d, q_seq[(qh + j) % DEV_SLOTS]))
                    return fallback(d, sent, done, "the peer did not answer in time") ? -1 : 1;
        }
        /* The oldest reply, and the replies behind it that are already in (up to
         * COLLAB_MAX_ROWS rows): their back layers run as one call, so each layer's
         * weights are read once for all of them rather than once per reply. */
        dev_slot *got[COLLAB_MAX_ROWS];
        uint32_t p0 = q_pos[qh], n = 0, k = 0;
        do {
            dev_slot *s = dev_wait(d, q_seq[qh]);
            if (!s || s->r.status != COLLAB_ST_OK || s->r.pos0 != q_pos[qh] || s->r.n != q_n[qh])
                return fallback(d, sent, done, s ? "the peer lost the session" : "the peer did not answer in time")
                           ? -1
                           : 1;
            got[k++] = s;
            n += q_n[qh];
            qh = (qh + 1) % DEV_SLOTS;
            qn--;
            if (k == 1)
                mqtt_node_poll(&d->net.node, 0);   /* take in whatever else has arrived */
        } while (qn && n + q_n[qh] <= COLLAB_MAX_ROWS && reply_in(d, q_seq[qh]));
        dev_begin();
        nn_status st = NN_OK;
        for (uint32_t i = 0, r = 0; i < k && !st; r += got[i]->r.n, i++)
            st = nn_hidden_decode(got[i]->data, got[i]->r.data_len, got[i]->r.n, d->dim, &d->w,
                                  d->xa + (size_t)r * d->dim);
        /* Only the end's logits are wanted: the other rows need just the last layer's
         * KV (run_layers_kv skips the rest of that layer for them). */
        int last = p0 + n == end;
        int32_t *xl = d->xa + (size_t)(n - 1) * d->dim;
        if (!st && mid_end < d->L)
            st = nn_session_run_layers_kv(&d->e.s, p0, d->xa, n, mid_end, d->L, last ? xl : NULL);
        if (!st && last)
            st = nn_session_logits(&d->e.s, xl, 1, d->logits);
        dev_end(d);
        if (st)
            return -1;
        d->peer_have = p0 + n;
        done += n;
    }
    nn_session_set_pos(&d->e.s, end);
    return 0;
}

/* ---- speculative ----------------------------------------------------------------------- */

/* The peer verifies tokens [peer_have, ntok) followed by `draft` drafts (d->msg already
 * holds the drafts' ids after the committed ones). */
static dev_slot *verify(dev_state *d, const uint32_t *drafts, uint32_t draft)
{
    uint32_t n = d->ntok - d->peer_have + draft;
    if (n > COLLAB_MAX_TOKENS)
        return NULL;
    uint8_t *p = d->msg + COLLAB_HDR;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = i < d->ntok - d->peer_have ? d->tok[d->peer_have + i] : drafts[i - (d->ntok - d->peer_have)];
        p[4 * i] = (uint8_t)t;
        p[4 * i + 1] = (uint8_t)(t >> 8);
        p[4 * i + 2] = (uint8_t)(t >> 16);
        p[4 * i + 3] = (uint8_t)(t >> 24);
    }
    collab_msg m = { .op = COLLAB_OP_VERIFY, .pos0 = d->peer_have, .n = n, .l0 = 0, .l1 = d->L, .draft = draft,
                     .data_len = 4 * n };
    if (d->e.sp.temp_q16) {
        /* The peer samples with its own generator (a seed unrelated to the device's). */
        m.flags = COLLAB_F_SAMPLE;
        m.l0 = d->k;
        m.token = (uint32_t)d->e.sp.temp_q16;
        m.have = (uint32_t)(d->seed * 2654435761u + 0x5bd1e995u);
    }
    int64_t seq = dev_send(d, MQTT_FT_TOKENS, &m);
    if (seq < 0)
        return NULL;
    /* Overlap: the device reads the prompt through its own layers meanwhile, in small
     * pieces, until the answer is there (the rest waits for the first draft). */
    dev_slot *w = &d->slots[(uint32_t)seq % DEV_SLOTS];
    if (d->mode == CM_SPEC && draft == 0) {
        while (d->dev_fed < d->ntok && !(w->seq == (uint32_t)seq && w->ready)) {
            uint32_t c = d->ntok - d->dev_fed < 8 ? d->ntok - d->dev_fed : 8;
            if (front(d, d->dev_fed, c))
                return NULL;
            d->dev_fed += c;
            mqtt_node_poll(&d->net.node, 0);
        }
    }
    dev_slot *s = dev_wait(d, (uint32_t)seq);
    if (s && (s->r.status != COLLAB_ST_OK || s->r.accepted > draft))
        return NULL;
    return s;
}

/* Positions both sides can hold: the device's context, and the peer's when smaller. */
static uint32_t seq_room(const dev_state *d)
{
    return d->peer_ctx && d->peer_ctx < d->max_seq ? d->peer_ctx : d->max_seq;
}

/* One round: draft, verify, take the accepted drafts and the peer's token. 0, 1 (fell
 * back) or -1. */
static int spec_round(dev_state *d, int first)
{
    uint32_t drafts[COLLAB_MAX_ROWS];
    uint32_t nd = d->mode == CM_SPEC && !first ? d->d : 0, room = seq_room(d);
    /* Positions the peer may hold after verification: ntok - 1 + nd < room. */
    if (nd && d->ntok + nd > room)
        nd = room > d->ntok ? room - d->ntok : 0;
    uint32_t ntok0 = d->ntok;
    if (nd) {
        /* Feed what the device has not read yet, then one draft at a time. */
        while (d->dev_fed < d->ntok) {
            uint32_t c = d->ntok - d->dev_fed < COLLAB_MAX_ROWS ? d->ntok - d->dev_fed : COLLAB_MAX_ROWS;
            if (front(d, d->dev_fed, c))
                return -1;
            d->dev_fed += c;
        }
        const int32_t *x = d->hist + (size_t)(d->dev_fed - 1) * d->dim;
        for (uint32_t i = 0; i < nd; i++) {
            dev_begin();
            nn_status st = nn_session_exit_logits(&d->e.s, d->k, x, 1, d->logits);
            dev_end(d);
            if (st)
                return -1;
            /* Greedy: the head's argmax. Sampling: a draw from the head's distribution
             * (no nucleus cut: the peer's accept rule needs exactly that distribution). */
            drafts[i] = d->e.sp.temp_q16 ? nn_sampler_sample(&d->e.sp, d->logits) : nn_argmax_i32(d->logits, d->vocab);
            if (i + 1 == nd)
                break;
            d->tok[d->ntok + i] = drafts[i];   /* scratch beyond ntok: the draft's own position */
            if (front(d, d->ntok + i, 1))
                return -1;
            x = d->hist + (size_t)(d->ntok + i) * d->dim;
        }
        d->drafted += nd;
    }
    dev_slot *s = verify(d, drafts, nd);
    if (!s) {
        /* The device has read [0, fed) itself; drafts beyond ntok are not committed. */
        uint32_t fed = d->dev_fed < d->ntok ? d->dev_fed : d->ntok;
        return fallback(d, fed, 0, d->send_failed ? "sending failed" : "the peer did not answer in time") ? -1 : 1;
    }
    uint32_t a = s->r.accepted;
    d->rounds++;
    d->accepted += a;
    d->peer_have = s->r.have;
    for (uint32_t i = 0; i < a; i++)
        emit(d, drafts[i], 1);
    emit(d, s->r.token, 0);
    /* The device fed the drafts but the last; keep those that were accepted. */
    if (nd) {
        uint32_t fed = ntok0 + nd - 1, keep = ntok0 + a;
        d->dev_fed = fed < keep ? fed : keep;
        nn_session_truncate(&d->e.s, d->dev_fed < d->e.s.n_pos ? d->dev_fed : d->e.s.n_pos);
        /* d adapts: longer after a fully accepted round, shorter when most were rejected. */
        if (a == nd && d->d < d->dmax)
            d->d++;
        else if (2 * a < nd && d->d > 1)
            d->d--;
    }
    return 0;
}

/* ---- split plus speculative (HAT) ------------------------------------------------------------ */

/*
 * One round, with the last committed token (position p0 = ntok-1) not yet read by any
 * layer. The device drafts d tokens with what it holds: its front layers and the exit
 * head at k, or (--drafter skip) the whole U without the peer's middle: [0,k), then
 * [L-m,L) and the final head. On the way it computes the rows at k of p0 and every
 * draft; the peer runs its middle layers over those d+1 rows in one pass; the device
 * runs its back layers and the head over all d+1 and keeps the drafts the full model
 * agrees with (greedy: its argmax; sampling: the speculative rule), plus the full
 * model's next token. Tokens never leave the device, only hidden states, as in split mode; and every
 * committed token comes from a logits row computed exactly as standalone. Rejected
 * positions are overwritten by the next round on both sides. 0, 1 (fell back) or -1.
 */
static int split_spec_round(dev_state *d)
{
    uint32_t drafts[COLLAB_MAX_ROWS];
    uint32_t p0 = d->ntok - 1, nd = d->d, mid_end = d->L - d->m_tail, room = seq_room(d);
    int sample = d->e.sp.temp_q16 != 0;
    if (p0 + nd >= room)
        nd = room > p0 + 1 ? room - 1 - p0 : 0;
    for (uint32_t i = 0;; i++) {
        if (front(d, p0 + i, 1))
            return -1;
        if (i == nd)
            break;
        int32_t *q = sample ? d->dl + (size_t)i * d->vocab : d->logits;
        const int32_t *x = d->hist + (size_t)(p0 + i) * d->dim;
        nn_status st;
        dev_begin();
        if (d->draft_skip) {
            /* The back layers' KV written here is the draft's; the verification below
             * rewrites it for every position it keeps. */
            st = nn_session_run_layers(&d->e.s, p0 + i, x, 1, mid_end, d->L, d->xa);
            if (!st)
                st = nn_session_logits(&d->e.s, d->xa, 1, q);
        } else {
            st = nn_session_exit_logits(&d->e.s, d->k, x, 1, q);
        }
        dev_end(d);
        if (st)
            return -1;
        drafts[i] = sample ? nn_sampler_sample(&d->e.sp, q) : nn_argmax_i32(q, d->vocab);
        d->tok[d->ntok + i] = drafts[i];   /* scratch beyond ntok: the draft's own position */
    }
    d->drafted += nd;
    int64_t seq = send_rows(d, p0, nd + 1, mid_end, 0);
    if (seq == -2)
        return -1;
    if (seq < 0)
        return fallback(d, d->ntok, p0, "sending failed") ? -1 : 1;
    dev_slot *s = dev_wait(d, (uint32_t)seq);
    if (!s || s->r.status != COLLAB_ST_OK || s->r.pos0 != p0 || s->r.n != nd + 1)
        return fallback(d, d->ntok, p0, s ? "the peer lost the session" : "the peer did not answer in time") ? -1 : 1;
    dev_begin();
    nn_status st = nn_hidden_decode(s->data, s->r.data_len, nd + 1, d->dim, &d->w, d->xa);
    if (!st && mid_end < d->L)
        st = nn_session_run_layers(&d->e.s, p0, d->xa, nd + 1, mid_end, d->L, d->xa);
    if (!st)
        st = nn_session_logits(&d->e.s, d->xa, nd + 1, d->tl);
    dev_end(d);
    if (st)
        return -1;
    /* tl row i is the full model's prediction after position p0 + i. */
    uint32_t a = 0, next = 0;
    for (; a < nd; a++) {
        const int32_t *row = d->tl + (size_t)a * d->vocab;
        if (sample ? !nn_sampler_verify(&d->e.sp, row, d->dl + (size_t)a * d->vocab, drafts[a], &next)
                   : (next = nn_argmax_i32(row, d->vocab)) != drafts[a])
            break;
    }
    if (a == nd)
        next = nn_sampler_sample(&d->e.sp, d->tl + (size_t)a * d->vocab);
    d->rounds++;
    d->accepted += a;
    d->peer_have = p0 + a + 1;
    for (uint32_t i = 0; i <= a && !d->done; i++) {
        nn_sha256_update(&d->lhash, d->tl + (size_t)i * d->vocab, (size_t)d->vocab * 4);
        d->lhash_rows++;
        emit(d, i < a ? drafts[i] : next, i < a);
    }
    /* Both sides hold positions up to p0 + a for the committed text; the rest is
     * overwritten next round (attention reads only positions below its own). */
    d->dev_fed = p0 + a + 1;
    nn_session_set_pos(&d->e.s, d->dev_fed);
    if (a == nd && d->d < d->dmax)
        d->d++;
    else if (2 * a < nd && d->d > 1)
        d->d--;
    return 0;
}

/* ---- early exit ------------------------------------------------------------------------ */

/* Decides the token after position ntok-1 (whose row is in hist). 0, 1 (fell back), -1. */
static int exit_step(dev_state *d)
{
    const int32_t *x = d->hist + (size_t)(d->ntok - 1) * d->dim;
    int32_t p1, margin;
    dev_begin();
    nn_status st = nn_session_exit_logits(&d->e.s, d->k, x, 1, d->logits);
    uint32_t t = nn_logits_confidence(d->logits, d->vocab, &p1, &margin);
    dev_end(d);
    if (st)
        return -1;
    if (d->exit_margin_q16 > 0 ? margin >= d->exit_margin_q16 : p1 >= d->exit_q30) {
        d->kept++;
        emit(d, t, 1);
        return 0;
    }
    /* Offload: every row the peer has not seen, in messages of COLLAB_MAX_ROWS. */
    uint32_t last_seq = 0;
    for (uint32_t p = d->peer_have; p < d->ntok; p += COLLAB_MAX_ROWS) {
        uint32_t c = d->ntok - p < COLLAB_MAX_ROWS ? d->ntok - p : COLLAB_MAX_ROWS;
        int64_t seq = send_rows(d, p, c, d->L, COLLAB_F_TOKEN);
        if (seq == -2)
            return -1;
        if (seq < 0)
            return fallback(d, d->ntok, 0, "sending failed") ? -1 : 1;
        last_seq = (uint32_t)seq;
        if (p + c < d->ntok) {   /* catch-up messages: wait for each (bounded in flight) */
            dev_slot *s = dev_wait(d, last_seq);
            if (!s || s->r.status != COLLAB_ST_OK)
                return fallback(d, d->ntok, 0, "the peer did not answer in time") ? -1 : 1;
        }
    }
    dev_slot *s = dev_wait(d, last_seq);
    if (!s || s->r.status != COLLAB_ST_OK)
        return fallback(d, d->ntok, 0, s ? "the peer lost the session" : "the peer did not answer in time") ? -1 : 1;
    d->peer_have = s->r.have;
    d->offloaded++;
    emit(d, s->r.token, 0);
    return 0;
}

/* ---- resuming after a fallback ------------------------------------------------------------ */

/*
 * Every resume_every tokens the standalone device sends a probe without waiting; when a
 * peer answers one, it starts a new session there. The device holds every layer's KV for
 * [0, ntok) and hist: in split mode it sends hist for all of it at once (the peer
 * rebuilds the middle layers' KV; the rows it returns are not needed); spec and exit
 * mode send the peer what it has not seen in their next request anyway (from 0).
 */
static void try_resume(dev_state *d)
{
    if (!d->probe_seq) {
        if (d->made < d->next_probe_at || !mqtt_session_connected(&d->net.node.session))
            return;
        d->next_probe_at = d->made + d->resume_every;
        if (d->group)
            d->pinned = 0;   /* any member of the group may take the session now */
        collab_msg m = { .op = COLLAB_OP_PING };
        int64_t seq = dev_send(d, MQTT_FT_HIDDEN, &m);
        d->probe_seq = seq < 0 ? 0 : (uint32_t)seq;
        return;
    }
    mqtt_node_poll(&d->net.node, 0);
    if (!reply_in(d, d->probe_seq)) {
        if (d->made >= d->next_probe_at)
            d->probe_seq = 0;   /* no answer for a whole period: ask again */
        return;
    }
    dev_wait(d, d->probe_seq);   /* in already: takes it out, and what it says (take_ping) */
    d->probe_seq = 0;
    if (d->peer_ctx && d->ntok >= d->peer_ctx)
        return;   /* this peer has no room for the text and its next token: still standalone */
    if (d->group)
        fprintf(stderr, "kvmesh collab: %s of group %s answers\n", d->peer, d->group);
    d->session++;
    d->peer_have = 0;
    uint32_t n = d->e.s.n_pos;
    if (has_back(d)) {
        for (uint32_t p = 0; p < n; p += COLLAB_MAX_ROWS) {
            uint32_t c = n - p < COLLAB_MAX_ROWS ? n - p : COLLAB_MAX_ROWS;
            int64_t seq = send_rows(d, p, c, d->L - d->m_tail, 0);
            dev_slot *r = seq < 0 ? NULL : dev_wait(d, (uint32_t)seq);
            if (!r || r->r.status != COLLAB_ST_OK)
                return;   /* still standalone; the next period asks again */
        }
        d->peer_have = n;
    }
    d->dev_fed = n;
    d->standalone = 0;
    d->resumes++;
    nn_session_set_hook(&d->e.s, NULL, NULL);
    fprintf(stderr, "kvmesh collab: the peer answers again: collaborating from token %u (%u positions resent)\n",
            d->made, has_back(d) ? n : 0);
}

/* ---- standalone steps (device mode, and after a fallback) ------------------------------ */

static int standalone_step(dev_state *d)
{
    uint32_t t = dev_sample(d);
    emit(d, t, 1);
    if (d->done)
        return 0;
    const int32_t *lg;
    dev_begin();
    nn_status st = nn_session_forward(&d->e.s, &d->tok[d->ntok - 1], 1, &lg);
    if (!st)
        memcpy(d->logits, lg, (size_t)d->vocab * 4);
    dev_end(d);
    return st ? -1 : 0;
}

/* ---- link probe and chunk size ----------------------------------------------------------- */

/*
 * The prompt chunk. Each chunk of c rows costs a fixed part: one message's round trip
 * o, and on both sides a per-call cost for each layer (streaming that layer's weights,
 * which batching amortises). The pipeline runs at its slowest stage's pace (device,
 * peer or link, per row), and fills and drains once with c rows' worth of every stage:
 *   T(c) ~ P max(dev_row, peer_row, link_row) + (P / c) (o + calls) + c sum_row
 *   ->  c = sqrt(P (o + calls) / sum_row), clamped to 1 .. COLLAB_MAX_ROWS,
 * against no pipelining at all, T ~ P sum_row + (o + calls). When one stage dominates
 * (a slow device with most of the work) chunking saves little and its per-chunk costs
 * win: then the prompt goes in the largest messages, unramped (*fixed set). The
 * device's last layer costs a prompt row only its K and V projections
 * (nn_session_run_layers_kv), about kv_frac of a layer.
 */
static uint32_t choose_chunk(dev_state *d, uint32_t P, int *fixed)
{
    const nn_model *md = d->e.m;
    double dim = md->cfg.dim, kvd = md->kv_dim, qd = md->q_dim, hid = md->cfg.hidden_dim;
    double kv_frac = 2 * dim * kvd / (dim * (qd + 2 * kvd) + qd * dim + 3 * dim * hid);
    double o = d->ping_rtt_us * 1e3;
    double row_bytes = d->hidden == NN_HIDDEN_INT8 ? d->dim + 1.0 : d->dim * 4.0;
    double link = d->ping_bw_kbps ? 2.0 * row_bytes / (d->ping_bw_kbps * 1e3 / 8.0) * 1e9 : 0;
    double dev = (double)d->dev_ns_row_layer * (d->k + (d->m_tail ? d->m_tail - 1 + kv_frac : 0));
    double peer = (double)d->peer_ns_row_layer * (d->L - d->k - d->m_tail);
    double sum = dev + peer + link, top = dev > peer ? (dev > link ? dev : link) : (peer > link ? peer : link);
    double calls = (double)d->dev_ns_call_layer * (d->k + d->m_tail) +
                   (double)d->peer_ns_call_layer * (d->L - d->k - d->m_tail);
    double c = sum > 0 ? sqrt(P * (o + calls) / sum) : COLLAB_MAX_ROWS;
    uint32_t ci = c < 1 ? 1 : c > COLLAB_MAX_ROWS ? COLLAB_MAX_ROWS : (uint32_t)c;
    ci = collab_chunk_tiles(ci);
    if (ci > P)
        ci = P ? P : 1;
    double t_chunked = P * top + (double)P / ci * (o + calls) + ci * sum, t_whole = P * sum + o + calls;
    d->t_model_chunked_ms = t_chunked / 1e6;
    d->model_chunk = ci;
    d->t_model_whole_ms = t_whole / 1e6;
    *fixed = t_whole <= t_chunked;
    return *fixed ? (P < COLLAB_MAX_ROWS ? (P ? P : 1) : COLLAB_MAX_ROWS) : ci;
}

/* Round trips with an empty and a 64 KiB probe: RTT and link rate; the peer's speed. */
static int probe_link(dev_state *d)
{
    uint64_t t[2];
    uint32_t sizes[2] = { 0, 65536 };
    memset(d->msg + COLLAB_HDR, 0x5a, sizes[1] < d->max_msg - COLLAB_HDR ? sizes[1] : d->max_msg - COLLAB_HDR);
    for (int i = 0; i < 2; i++) {
        uint32_t len = sizes[i] < d->max_msg - COLLAB_HDR ? sizes[i] : (uint32_t)(d->max_msg - COLLAB_HDR);
        collab_msg m = { .op = COLLAB_OP_PING, .data_len = len };
        /* A peer that has just started may not have its subscription in place yet:
         * ask again every 250 ms, for the deadline but at least 5 s (start-up only).
         * A peer busy with another device's long request answers between its blocks,
         * later than 250 ms: an answer to any of the last DEV_SLOTS - 2 probes counts,
         * timed from when that one was sent. */
        uint32_t deadline = d->deadline_ms, wait_ms = deadline > 5000 ? deadline : 5000, first = 0, last = 0;
        uint64_t t0 = 0, end = fw_now_ns() + (uint64_t)wait_ms * 1000000u, sent_at[DEV_SLOTS];
        dev_slot *s = NULL;
        d->deadline_ms = deadline < 250 ? deadline : 250;
        while (!s && fw_now_ns() < end) {
            uint64_t ts = fw_now_ns();
            int64_t seq = dev_send(d, MQTT_FT_HIDDEN, &m);
            if (seq < 0)
                continue;
            last = (uint32_t)seq;
            first = first ? first : last;
            sent_at[last % DEV_SLOTS] = ts;
            s = dev_wait(d, last);
            t0 = ts;
            for (uint32_t q = last - first > DEV_SLOTS - 2 ? last - (DEV_SLOTS - 2) : first; !s && q < last; q++)
                if (reply_in(d, q)) {
                    s = dev_wait(d, q);
                    t0 = sent_at[q % DEV_SLOTS];
                }
        }
        d->deadline_ms = deadline;
        if (!s)
            return -1;
        t[i] = fw_now_ns() - t0;
        sizes[i] = len;
    }
    d->ping_rtt_us = (uint32_t)(t[0] / 1000u);
    d->probe_bytes = d->net.sent_bytes + d->net.recv_bytes;
    d->net.sent_bytes = d->net.recv_bytes = 0;
    uint64_t extra = t[1] > t[0] ? t[1] - t[0] : 1;
    d->ping_bw_kbps = (uint32_t)((uint64_t)sizes[1] * 8u * 1000000u / extra);
    return 0;
}

/* ---- agreement with the full model ----------------------------------------------------- */

/* Teacher-forced full model over the final text: how many generated tokens are its
 * greedy choice, overall and among those decided on the device. */
static int check_agreement(dev_state *d, uint32_t *same, uint32_t *same_kept)
{
    nn_session *s = &d->e.s;
    *same = *same_kept = 0;
    nn_status st = NN_OK;
    for (uint32_t p = 0; p + 1 < d->ntok && !st; p += COLLAB_MAX_ROWS) {
        uint32_t c = d->ntok - 1 - p < COLLAB_MAX_ROWS ? d->ntok - 1 - p : COLLAB_MAX_ROWS;
        st = nn_session_embed(s, d->tok + p, c, d->xa);
        if (!st)
            st = nn_session_run_layers(s, p, d->xa, c, 0, d->L, d->xa);
        for (uint32_t j = 0; j < c && !st; j++) {
            uint32_t q = p + j + 1;   /* the token this row predicts */
            if (q < d->n_prompt)
                continue;
            nn_session_logits(s, d->xa + (size_t)j * d->dim, 1, d->logits);
            int ok = nn_argmax_i32(d->logits, d->vocab) == d->tok[q];
            *same += (uint32_t)ok;
            *same_kept += (uint32_t)(ok && d->kept_flag[q]);
        }
    }
    return st ? -1 : 0;
}

/* ---- the command --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh collab --config FILE --mode MODE -p PROMPT [-n N] [options]\n"
        "\n"
        "Generates on this device together with a peer (kvmesh peer) that has the same image.\n"
        "stdout is the text, as kvmesh generate prints it; statistics go to stderr (and JSON\n"
        "to --json FILE). Greedy split and spec output equals kvmesh generate --temp 0.\n"
        "\n"
        "  --config FILE        this node's configuration (broker, security, [model] image)\n"
        "  --peer NODE          the peer's node id (required except in device mode)\n"
        "  --peer-group G       instead of --peer: peers that set [broker] share_group = G;\n"
        "                       the member that answers the first probe serves the session\n"
        "  --mode MODE          split   device runs embedding, layers [0,k), [L-m,L), head;\n"
        "                               the peer runs [k,L-m) and keeps that KV\n"
        "                       spec    device drafts with layers [0,k) + the exit head at k;\n"
        "                               the peer verifies d+1 positions in one pass\n"
        "                       exit    device decides at layer k when the exit head's top-1\n"
        "                               probability passes --exit-threshold, else offloads\n"
        "                       device  everything here (baseline)\n"
        "                       peer    everything on the peer, tokens over the link (baseline)\n"
        "                       split-spec  split plus speculative (HAT): the device drafts with\n"
        "                               its front layers and the exit head at K; the peer runs\n"
        "                               the middle for d+1 rows, the device the back and head\n"
        "  -p, --prompt TEXT    prompt\n"
        "  -n, --new-tokens N   tokens to generate (default 256)\n"
        "  -m, --model IMAGE    image (default: the config's [model] image)\n"
        "  --split K,M          split, split-spec: K front layers and M back layers on the device\n"
        "                       (default 1,1)\n"
        "  --layer K            spec/exit: the device's layers and exit head (default L/2)\n"
        "  --draft D            spec, split-spec: largest draft (default 6; adapts between 1 and D)\n"
        "  --drafter head|skip  split-spec: draft with layers [0,K) and the exit head at K\n"
        "                       (default), or skip the peer's middle: [0,K), [L-M,L), the head\n"
        "  --exit-threshold P   exit: top-1 probability to decide on the device (default 0.5;\n"
        "                       1: never, every token offloaded)\n"
        "  --exit-margin M      exit: decide on the device when the two largest logits are at\n"
        "                       least M apart instead (logit units, e.g. 2.5)\n"
        "  --hidden exact|int8  hidden states on the wire (default exact: bit-identical;\n"
        "                       int8 is a quarter of the size and only close)\n"
        "  --chunk N|auto|whole split, split-spec: prompt rows per message (default auto: from\n"
        "                       the measured RTT, link rate and both sides' speed); whole:\n"
        "                       no pipelining: the device's front layers over the whole\n"
        "                       prompt before the first message, its back layers once\n"
        "                       every reply is in (a baseline)\n"
        "  --deadline-ms MS     a reply later than this, plus twice what the peer's measured\n"
        "                       speed says the request costs it (at most 20 x MS more):\n"
        "                       continue standalone (default 3000)\n"
        "  --resume-every N     standalone after a fallback: ask every N tokens whether a peer\n"
        "                       answers again, and collaborate again when one does (default\n"
        "                       16; 0: never)\n"
        "  --slowdown F         device compute made F times slower (each compute interval\n"
        "                       lasts F x its CPU time, the rest slept), to stand for a slow\n"
        "                       board against a fast peer (default 1)\n"
        "  --temp T, --seed S   sampling (default greedy). split and device: as kvmesh generate\n"
        "                       (top-p 0.9); spec, split-spec and peer: no nucleus cut, drafts\n"
        "                       are accepted by the speculative rule (the full model's\n"
        "                       distribution)\n"
        "  --check              afterwards, compare every generated token with the full\n"
        "                       model's greedy choice (agreement, on stderr and in JSON)\n"
        "  --json FILE          write the measurements as one JSON object\n"
        "  -h, --help           this text\n");
}

static int parse_mode(const char *s)
{
    for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
        if (strcmp(s, mode_names[i]) == 0)
            return i;
    return -1;
}

int fw_cmd_collab(int argc, char **argv)
{
    const char *prog = "kvmesh collab", *conf = NULL, *model = NULL, *prompt = NULL, *json = NULL;
    const char *split = "1,1", *chunk_s = "auto";
    dev_state *d = &dev_g;
    int mode = -1, check = 0;
    uint32_t layer = 0, dmax = 6, deadline = 3000, seed = 0, slow_x100 = 100;
    int32_t thr_q16 = 32768, temp_q16 = 0, slow_q16 = 65536;
    d->n_new = 256;
    d->resume_every = 16;
    d->hidden = NN_HIDDEN_EXACT;
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "peer", required_argument, 0, 'P' },
        { "mode", required_argument, 0, 'M' }, { "prompt", required_argument, 0, 'p' },
        { "new-tokens", required_argument, 0, 'n' }, { "model", required_argument, 0, 'm' },
        { "split", required_argument, 0, 'S' }, { "layer", required_argument, 0, 'K' },
        { "draft", required_argument, 0, 'D' }, { "exit-threshold", required_argument, 0, 'X' },
        { "hidden", required_argument, 0, 'H' }, { "chunk", required_argument, 0, 'C' },
        { "deadline-ms", required_argument, 0, 'd' }, { "slowdown", required_argument, 0, 'W' },
        { "temp", required_argument, 0, 't' }, { "seed", required_argument, 0, 's' },
        { "check", no_argument, 0, 'k' }, { "exit-margin", required_argument, 0, 'G' },
        { "drafter", required_argument, 0, 'F' }, { "resume-every", required_argument, 0, 'R' },
        { "peer-group", required_argument, 0, 'g' }, { "json", required_argument, 0, 'j' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:p:n:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'P': d->peer = optarg; break;
        case 'g': d->group = optarg; break;
        case 'M':
            if ((mode = parse_mode(optarg)) < 0) {
                fprintf(stderr, "%s: --mode is split, spec, split-spec, exit, device or peer, not '%s'\n", prog, optarg);
                return 2;
            }
            break;
        case 'p': prompt = optarg; break;
        case 'n': if (fw_parse_u32(prog, "-n", optarg, 0, NN_MAX_SEQ, &d->n_new)) return 2; break;
        case 'm': model = optarg; break;
        case 'S': split = optarg; break;
        case 'K': if (fw_parse_u32(prog, "--layer", optarg, 1, NN_MAX_LAYERS, &layer)) return 2; break;
        case 'D': if (fw_parse_u32(prog, "--draft", optarg, 1, COLLAB_MAX_ROWS - 1, &dmax)) return 2; break;
        case 'X': if (fw_parse_q16(prog, "--exit-threshold", optarg, &thr_q16)) return 2; break;
        case 'H':
            if (strcmp(optarg, "exact") && strcmp(optarg, "int8")) {
                fprintf(stderr, "%s: --hidden is exact or int8, not '%s'\n", prog, optarg);
                return 2;
            }
            d->hidden = strcmp(optarg, "int8") == 0 ? NN_HIDDEN_INT8 : NN_HIDDEN_EXACT;
            break;
        case 'C': chunk_s = optarg; break;
        case 'F':
            if (strcmp(optarg, "head") && strcmp(optarg, "skip")) {
                fprintf(stderr, "%s: --drafter is head or skip, not '%s'\n", prog, optarg);
                return 2;
            }
            d->draft_skip = strcmp(optarg, "skip") == 0;
            break;
        case 'd': if (fw_parse_u32(prog, "--deadline-ms", optarg, 10, 600000, &deadline)) return 2; break;
        case 'W': if (fw_parse_q16(prog, "--slowdown", optarg, &slow_q16)) return 2; break;
        case 't': if (fw_parse_q16(prog, "--temp", optarg, &temp_q16)) return 2; break;
        case 's': if (fw_parse_u32(prog, "--seed", optarg, 0, UINT32_MAX, &seed)) return 2; break;
        case 'k': check = 1; break;
        case 'R': if (fw_parse_u32(prog, "--resume-every", optarg, 0, NN_MAX_SEQ, &d->resume_every)) return 2; break;
        case 'G': if (fw_parse_q16(prog, "--exit-margin", optarg, &d->exit_margin_q16)) return 2; break;
        case 'j': json = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !conf || mode < 0 || !prompt) {
        fprintf(stderr, "%s: --config FILE, --mode MODE and -p PROMPT are required\n", prog);
        usage(stderr);
        return 2;
    }
    if (mode != CM_DEVICE && !d->peer == !d->group) {
        fprintf(stderr, "%s: one of --peer NODE or --peer-group G is required in mode %s\n", prog,
                mode_names[mode]);
        return 2;
    }
    if ((d->peer && !mqtt_node_id_valid(d->peer)) || (d->group && !mqtt_node_id_valid(d->group))) {
        fprintf(stderr, "%s: a node or group id is 1..31 of A-Z a-z 0-9 _ -\n", prog);
        return 2;
    }
    d->pinned = d->peer != NULL;
    if (temp_q16 && mode == CM_EXIT) {
        fprintf(stderr, "%s: --temp: exit mode decodes greedily in this version\n", prog);
        return 2;
    }
    if (temp_q16 && (mode == CM_SPEC || mode == CM_SPLIT_SPEC) && dmax > COLLAB_SAMPLE_MAX) {
        fprintf(stderr, "%s: --draft: at most %u drafts when sampling\n", prog, COLLAB_SAMPLE_MAX);
        return 2;
    }
    if (slow_q16 < 65536) {
        fprintf(stderr, "%s: --slowdown must be at least 1\n", prog);
        return 2;
    }
    slow_x100 = (uint32_t)(((int64_t)slow_q16 * 100 + 32768) >> 16);
    d->mode = (collab_mode)mode;
    d->seed = seed;
    d->deadline_ms = deadline;
    d->dmax = dmax;
    d->d = dmax < 4 ? dmax : 4;
    /* A threshold of 1 never exits (a saturated softmax reaches exactly 1.0 in Q30). */
    d->exit_q30 = thr_q16 >= 65536 ? INT32_MAX : thr_q16 << 14;
    d->slow_x100 = slow_x100;
    d->max_inflight = 1;   /* until the probe's reply says how many */
    d->stop = "token limit";
    char err[512];
    if (fw_config_load(&d->cfg, conf, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    fw_engine_opts eo = { .model = model ? model : d->cfg.image, .ctx = d->cfg.context, .batch = d->cfg.batch,
                          .threads = d->cfg.threads, .temp_q16 = temp_q16,
                          /* Speculative sampling draws drafts and verifies without a nucleus cut. */
                          .topp_q16 = mode == CM_SPEC || mode == CM_PEER || mode == CM_SPLIT_SPEC ? 0 : 58982,
                          .seed = seed,
                          .max_prompt_bytes = strlen(prompt) };
    if (fw_engine_open(&d->e, &eo, err, sizeof err)) {
        fprintf(stderr, "%s: [model] image: %s\n", prog, err);
        return 1;
    }
    int rc = 1;
    const nn_model *md = d->e.m;
    d->L = md->cfg.n_layers;
    d->dim = md->cfg.dim;
    d->vocab = md->cfg.vocab_size;
    d->max_seq = d->e.s.max_seq;
    uint32_t kf = 1, km = 1;
    if (mode == CM_SPLIT || mode == CM_SPLIT_SPEC) {
        if (sscanf(split, "%u,%u", &kf, &km) != 2 || kf + km >= d->L) {
            fprintf(stderr, "%s: --split K,M needs K + M < %u layers, not '%s'\n", prog, d->L, split);
            rc = 2;
            goto out_engine;
        }
        d->k = kf;
        d->m_tail = km;
        if (mode == CM_SPLIT_SPEC && kf == 0 && !d->draft_skip) {
            fprintf(stderr, "%s: split-spec drafts with the exit head at K, so K must be at least 1 "
                    "(or --drafter skip)\n", prog);
            rc = 2;
            goto out_engine;
        }
    } else {
        d->k = layer ? layer : d->L / 2;
        if (d->k >= d->L && mode != CM_DEVICE && mode != CM_PEER) {
            fprintf(stderr, "%s: --layer must be below the model's %u layers\n", prog, d->L);
            rc = 2;
            goto out_engine;
        }
    }
    d->chunk_fixed = strcmp(chunk_s, "auto") != 0;
    if (strcmp(chunk_s, "whole") == 0) {
        d->whole = 1;
        d->chunk = COLLAB_MAX_ROWS;
    } else if (strcmp(chunk_s, "auto") != 0 &&
               fw_parse_u32(prog, "--chunk", chunk_s, 1, COLLAB_MAX_ROWS, &d->chunk)) {
        rc = 2;
        goto out_engine;
    }
    uint32_t n_prompt;
    if (nn_tok_encode(&md->tok, prompt, 1, 0, d->e.ids, (uint32_t)d->e.ids_cap, &n_prompt, d->e.tokscratch,
                      d->e.tokscratch_bytes) ||
        n_prompt > d->max_seq) {
        fprintf(stderr, "%s: the prompt cannot be encoded or does not fit the context of %u\n", prog, d->max_seq);
        goto out_engine;
    }
    /* Buffers (start-up only): hist, rows, logits, tokens, the codec's work area, messages. */
    d->max_msg = collab_max_msg(d->dim);
    uint32_t wpos = collab_work_positions(md, d->dim);
    d->hist = malloc((size_t)(d->max_seq + COLLAB_MAX_ROWS) * d->dim * 4);
    d->xa = calloc((size_t)COLLAB_MAX_ROWS * d->dim, 4);
    d->logits = malloc((size_t)d->vocab * 4);
    if (mode == CM_SPLIT_SPEC) {
        d->tl = malloc((size_t)(dmax + 1) * d->vocab * 4);
        d->dl = malloc((size_t)dmax * d->vocab * 4);
    }
    d->tok = malloc((size_t)(d->max_seq + COLLAB_MAX_ROWS + 1) * 4);
    d->kept_flag = calloc(d->max_seq + COLLAB_MAX_ROWS + 1, 1);
    d->msg = malloc(d->max_msg);
    for (int i = 0; i < DEV_SLOTS; i++)
        d->slots[i].data = malloc(d->max_msg);
    int nomem = !d->hist || !d->xa || !d->logits || !d->tok || !d->kept_flag || !d->msg ||
                (mode == CM_SPLIT_SPEC && (!d->tl || !d->dl));
    for (int i = 0; i < DEV_SLOTS; i++)
        nomem |= !d->slots[i].data;
    if (nomem || nn_kv_work_init(&d->w, md, wpos, &d->e.arena)) {
        fprintf(stderr, "%s: no memory for the collaboration buffers\n", prog);
        goto out_buffers;
    }
    memcpy(d->tok, d->e.ids, (size_t)n_prompt * 4);
    d->ntok = d->n_prompt = n_prompt;
    d->session = (uint32_t)(fw_now_ns() ^ ((uint64_t)getpid() << 16));

    /* Device speed (slowdown included), for the chunk size: per call and per row of a
     * layer, from runs of COLLAB_CAL_LO and COLLAB_CAL_HI rows after a warm-up run
     * (their KV is overwritten by the prompt). */
    if (has_back(d)) {
        uint32_t hi = n_prompt < COLLAB_CAL_HI ? n_prompt : COLLAB_CAL_HI, kl = d->k ? d->k : 1;
        uint32_t lo = hi > COLLAB_CAL_LO ? COLLAB_CAL_LO : 1, n[3] = { hi, lo, hi };
        uint64_t t[3];
        for (int i = 0; i < 3; i++) {
            uint64_t t0 = d->dev_ns;
            front(d, 0, n[i]);
            t[i] = (d->dev_ns - t0) / kl;
        }
        collab_cost_fit(lo, t[1], hi, t[2], &d->dev_ns_call_layer, &d->dev_ns_row_layer);
    }
    /* The rest of the device's path once (back layers, head), so that the prompt does not
     * pay the first touch of their weights (page faults, F times over when slowed down). */
    if (has_back(d) && d->m_tail)
        nn_session_run_layers(&d->e.s, 0, d->xa, 1, d->L - d->m_tail, d->L, d->xa);
    nn_session_logits(&d->e.s, d->xa, 1, d->logits);
    d->dev_ns = 0;
    if (mode != CM_DEVICE) {
        mqtt_model_id mid;
        memcpy(mid.fingerprint, d->e.img.id.fingerprint, 32);
        mid.numerics = d->e.img.id.numerics_version;
        if (collab_net_open(&d->net, &d->cfg, &mid, d->max_msg, on_deliver, d, 10000, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out_buffers;
        }
        d->net_ok = 1;
        if (probe_link(d)) {
            char why[256];
            collab_net_drops(&d->net, why, sizeof why);
            fprintf(stderr, "%s: the peer %s did not answer a probe within %u ms (is `kvmesh peer` running with "
                    "the same image?) [%s]\n", prog, d->group ? d->group : d->peer,
                    d->deadline_ms > 5000 ? d->deadline_ms : 5000, why);
            goto out_net;
        }
    }
    if (!d->chunk)
        d->chunk = has_back(d) ? choose_chunk(d, n_prompt, &d->chunk_fixed) : COLLAB_MAX_ROWS;
    if (d->group && d->peer)
        fprintf(stderr, "kvmesh collab: %s of group %s answers\n", d->peer, d->group);
    fprintf(stderr, "kvmesh collab: mode %s, %u layers (device: %s), prompt %u tokens, chunk %u, hidden %s, "
            "rtt %.2f ms, link %.1f Mbit/s; a layer costs the device %u ns per call + %u per row, the peer %u + %u\n", mode_names[mode], d->L,
            has_back(d) ? "front and back" : mode == CM_DEVICE ? "all" : mode == CM_PEER ? "none" : "front",
            n_prompt, d->chunk, d->hidden == NN_HIDDEN_INT8 ? "int8" : "exact", d->ping_rtt_us / 1000.0,
            d->ping_bw_kbps / 1000.0, d->dev_ns_call_layer, d->dev_ns_row_layer, d->peer_ns_call_layer,
            d->peer_ns_row_layer);
    if (d->t_model_chunked_ms > 0)
        fprintf(stderr, "kvmesh collab: the prompt's predicted time: %.1f ms pipelined in chunks of %u, %.1f ms in "
                "whole messages: %s\n", d->t_model_chunked_ms, d->model_chunk,
                d->t_model_whole_ms, d->chunk_fixed ? "whole messages" : "chunks");

    /* Prefill: print the prompt as generate does, then produce the first token. */
    d->t_start = fw_now_ns();
    nn_sha256_init(&d->lhash);
    nn_session_truncate(&d->e.s, 0);
    for (uint32_t i = 1; i < n_prompt; i++)
        print_piece(nn_tok_decode(&md->tok, d->tok[i - 1], d->tok[i]));
    fflush(stdout);
    int r = 0;
    if (d->n_new == 0) {
        d->done = 1;
    } else if (mode == CM_DEVICE) {
        const int32_t *lg;
        dev_begin();
        nn_status st = nn_session_forward(&d->e.s, d->tok, n_prompt, &lg);
        if (!st)
            memcpy(d->logits, lg, (size_t)d->vocab * 4);
        dev_end(d);
        d->standalone = 1;
        r = st ? -1 : 0;
    } else if (d->peer_ctx && n_prompt > d->peer_ctx) {
        char why[96];
        snprintf(why, sizeof why, "the prompt's %u tokens are more than the peer holds (%u)", n_prompt, d->peer_ctx);
        r = fallback(d, 0, 0, why);
    } else if (has_back(d)) {
        r = split_run(d, 0);
    } else if (mode == CM_SPEC || mode == CM_PEER) {
        r = spec_round(d, 1);   /* no drafts yet: the peer reads the prompt (and the device, too) */
    } else {
        for (uint32_t p = 0; p < n_prompt && r == 0; p += COLLAB_MAX_ROWS) {
            uint32_t cnt = n_prompt - p < COLLAB_MAX_ROWS ? n_prompt - p : COLLAB_MAX_ROWS;
            r = front(d, p, cnt) ? -1 : 0;
        }
        d->dev_fed = n_prompt;
        if (!r)
            r = exit_step(d);
    }
    while (r >= 0 && !d->done) {
        if (d->standalone) {
            r = standalone_step(d);
            if (r == 0 && !d->done && mode != CM_DEVICE && d->resume_every)
                try_resume(d);
            continue;
        }
        if (mode == CM_SPLIT) {
            uint32_t t = dev_sample(d);
            emit(d, t, 1);
            if (!d->done)
                r = split_run(d, d->ntok - 1);
        } else if (mode == CM_SPLIT_SPEC) {
            /* After the prompt (and after a resume) the last token has been read and
             * its logits are here: that token first, then rounds. */
            if (d->e.s.n_pos == d->ntok)
                emit(d, dev_sample(d), 1);
            if (!d->done)
                r = split_spec_round(d);
        } else if (mode == CM_SPEC || mode == CM_PEER) {
            r = spec_round(d, 0);
        } else {
            if (front(d, d->ntok - 1, 1)) {
                r = -1;
                break;
            }
            d->dev_fed = d->ntok;
            r = exit_step(d);
        }
    }
    printf("\n");
    fflush(stdout);
    if (r < 0) {
        fprintf(stderr, "%s: generation failed\n", prog);
        goto out_net;
    }
    uint64_t t_end = fw_now_ns();
    double ttft = d->made ? (double)(d->t_first - d->t_start) / 1e6 : 0;
    double tbt = d->made > 1 ? (double)(d->t_last - d->t_first) / 1e6 / (d->made - 1) : 0;
    double link = (double)(d->net.sent_bytes + d->net.recv_bytes);
    double share = d->dev_ns + d->peer_ns ? (double)d->dev_ns / (double)(d->dev_ns + d->peer_ns) : 1.0;
    uint32_t same = 0, same_kept = 0;
    int checked = check && check_agreement(d, &same, &same_kept) == 0;
    fprintf(stderr, "kvmesh collab: mode %s, prompt tokens: %u, new tokens: %u (stopped: %s), time to first token: "
            "%.2f ms, between tokens: %.2f ms, link: %.0f bytes (%.0f per token), device compute share %.3f",
            mode_names[mode], n_prompt, d->made, d->stop, ttft, tbt, link, d->made ? link / d->made : 0, share);
    if (mode == CM_SPEC || mode == CM_SPLIT_SPEC)
        fprintf(stderr, ", drafted %llu, accepted %llu in %llu rounds, last d %u", (unsigned long long)d->drafted,
                (unsigned long long)d->accepted, (unsigned long long)d->rounds, d->d);
    if (mode == CM_EXIT)
        fprintf(stderr, ", kept on device %llu, offloaded %llu", (unsigned long long)d->kept,
                (unsigned long long)d->offloaded);
    if (checked)
        fprintf(stderr, ", agreement with the full model %u/%u", same, d->made);
    if (d->fallbacks && mode != CM_DEVICE)
        fprintf(stderr, ", fell back to standalone after %u tokens", d->fallback_at);
    if (d->resumes)
        fprintf(stderr, ", resumed %u times", d->resumes);
    fprintf(stderr, "\n");
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot write %s\n", prog, json);
            goto out_net;
        }
        fprintf(f, "{\"mode\":\"%s\",\"prompt_tokens\":%u,\"new_tokens\":%u,\"ttft_ms\":%.3f,\"tbt_ms\":%.3f,"
                "\"total_ms\":%.3f,\"link_bytes_sent\":%llu,\"link_bytes_received\":%llu,"
                "\"link_bytes_per_token\":%.1f,\"device_compute_ms\":%.3f,\"peer_compute_ms\":%.3f,"
                "\"device_share\":%.4f,\"slowdown\":%.2f,\"chunk\":%u,\"hidden\":\"%s\",\"layers\":%u,\"k\":%u,"
                "\"m\":%u,\"rtt_ms\":%.3f,\"link_mbit_s\":%.2f,\"probe_bytes\":%llu,\"fallback\":%s",
                mode_names[mode], n_prompt, d->made, ttft, tbt, (double)(t_end - d->t_start) / 1e6,
                (unsigned long long)d->net.sent_bytes, (unsigned long long)d->net.recv_bytes,
                d->made ? link / d->made : 0, d->dev_ns / 1e6, d->peer_ns / 1e6, share, d->slow_x100 / 100.0,
                d->chunk, d->hidden == NN_HIDDEN_INT8 ? "int8" : "exact", d->L, d->k, d->m_tail,
                d->ping_rtt_us / 1000.0, d->ping_bw_kbps / 1000.0, (unsigned long long)d->probe_bytes,
                d->fallbacks && mode != CM_DEVICE ? "true" : "false");
        fprintf(f, ",\"resumes\":%u", d->resumes);
        if (d->t_model_chunked_ms > 0)
            fprintf(f, ",\"predicted_chunked_ms\":%.2f,\"predicted_whole_ms\":%.2f", d->t_model_chunked_ms,
                    d->t_model_whole_ms);
        if (mode == CM_SPEC || mode == CM_SPLIT_SPEC)
            fprintf(f, ",\"drafted\":%llu,\"accepted\":%llu,\"rounds\":%llu,\"acceptance\":%.4f",
                    (unsigned long long)d->drafted, (unsigned long long)d->accepted, (unsigned long long)d->rounds,
                    d->drafted ? (double)d->accepted / d->drafted : 0);
        if (mode == CM_EXIT)
            fprintf(f, ",\"kept\":%llu,\"offloaded\":%llu,\"kept_fraction\":%.4f", (unsigned long long)d->kept,
                    (unsigned long long)d->offloaded,
                    d->kept + d->offloaded ? (double)d->kept / (double)(d->kept + d->offloaded) : 0);
        if (has_back(d) || mode == CM_DEVICE) {
            /* Every token came from logits computed here: their digest, to compare
             * runs bit for bit (random-weight models repeat one token). */
            uint8_t dg[32];
            char hex[65];
            nn_sha256_final(&d->lhash, dg);
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", dg[i]);
            fprintf(f, ",\"logits_rows\":%u,\"logits_digest\":\"%s\"", d->lhash_rows, hex);
        }
        if (checked)
            fprintf(f, ",\"agreement\":%.4f,\"agreement_kept\":%.4f", d->made ? (double)same / d->made : 1.0,
                    d->kept ? (double)same_kept / d->kept : 1.0);
        fprintf(f, "}\n");
        fclose(f);
    }
    rc = 0;
out_net:
    if (d->net_ok)
        collab_net_close(&d->net);
out_buffers:
    free(d->hist);
    free(d->xa);
    free(d->logits);
    free(d->tl);
    free(d->dl);
    free(d->tok);
    free(d->kept_flag);
    free(d->msg);
    for (int i = 0; i < DEV_SLOTS; i++)
        free(d->slots[i].data);
out_engine:
    fw_engine_close(&d->e);
    return rc;
}
