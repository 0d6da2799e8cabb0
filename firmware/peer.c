/*
 * kvmesh peer --config FILE: the stronger side of a collaboration (collab.h). For each
 * device session it holds (up to [collab] peer_sessions, see peer_slot) it keeps the KV
 * of the layers it runs for that device (the middle layers in split mode, the deep
 * layers in early-exit mode, all of them for speculative verification), and answers each
 * request with rows, a token, or an accepted count.
 *
 * Requests are copied out of the mqtt layer's callback into a small ring and served in
 * order from the main loop, so a reply (which may be chunked and wait for the broker)
 * is never sent from inside the callback.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "collab.h"
#include "engine.h"

/* Requests waiting, for every device session together: PEER_QUEUE, or two per session
 * the peer holds when that is more. A device keeps at most peer_share() of them in
 * flight (the PING reply tells it), so that the ring does not overflow while the peer
 * works: a dropped request costs the device its deadline. */
#define PEER_QUEUE 64
#define PEER_QUEUE_MAX (2 * PEER_SESSIONS_MAX)

/*
 * One device session held: who owns it, the positions its KV cache holds, and its
 * sampler (seeded by the device's first sampling VERIFY). A new session takes its
 * owner's previous slot, a free one, or the one used longest ago (take_slot); a request
 * for a session the peer does not hold (replaced, or from before a restart) gets NEED,
 * and the device goes on alone.
 */
#define PEER_SESSIONS_MAX 64
#define PEER_SESSIONS_AUTO 4   /* [collab] peer_sessions 0: up to this many, as fit */

typedef struct {
    char owner[MQTT_NODE_ID_MAX + 1];   /* "" = free */
    uint32_t session, have;
    uint64_t used;
    nn_kv_cache kv;
    nn_sampler sp;
    uint8_t *sp_mem;
    int sp_ready;
} peer_slot;

typedef struct {
    fw_config cfg;
    fw_engine e;
    collab_net net;
    nn_kv_work w;
    size_t max_msg;
    /* the device sessions held: slot `cur`'s KV cache is the engine session's */
    peer_slot slot[PEER_SESSIONS_MAX];
    uint32_t nslot, cur;
    uint64_t tick;         /* request counter, for the slots' last use */
    uint64_t evicted;
    /* requests waiting, in arrival order */
    uint8_t *q[PEER_QUEUE_MAX];
    size_t qlen[PEER_QUEUE_MAX];
    uint8_t qtype[PEER_QUEUE_MAX];
    char qsender[PEER_QUEUE_MAX][MQTT_NODE_ID_MAX + 1];
    uint32_t qcap, qhead, qcount;   /* qcap entries in use */
    uint64_t dropped;
    /* work buffers */
    int32_t *x;            /* [COLLAB_MAX_ROWS][dim] Q16 residual rows */
    int32_t *logits;       /* [vocab] Q16 */
    uint32_t targ[COLLAB_MAX_ROWS];
    int32_t *tl, *dl;      /* sampling: [COLLAB_SAMPLE_MAX+1][vocab] target, [..][vocab] draft Q16 */
    size_t sp_bytes;       /* a slot's sampler carve */
    uint8_t *out;          /* reply: COLLAB_HDR + encoded rows */
    uint32_t ns_per_row_layer, ns_per_call_layer;
    uint64_t served, rows, verify_tokens;
} peer_state;

static peer_state peer_g;   /* large: not on the stack */
static volatile sig_atomic_t peer_stop;

static void on_stop(int sig)
{
    (void)sig;
    peer_stop = 1;
}

static void on_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    peer_state *ps = user;
    if (h->type != MQTT_FT_HIDDEN && h->type != MQTT_FT_TOKENS)
        return;
    collab_net_count_rx(&ps->net, len);
    if (ps->qcount == ps->qcap || len > ps->max_msg) {
        ps->dropped++;   /* the device's deadline notices and it resends or goes on alone */
        return;
    }
    uint32_t i = (ps->qhead + ps->qcount++) % ps->qcap;
    memcpy(ps->q[i], p, len);
    ps->qlen[i] = len;
    ps->qtype[i] = h->type;
    snprintf(ps->qsender[i], sizeof ps->qsender[i], "%s", h->sender);
}

/* ---- device sessions ---------------------------------------------------------------- */

static peer_slot *find_slot(peer_state *ps, const char *owner, uint32_t session)
{
    for (uint32_t i = 0; i < ps->nslot; i++)
        if (ps->slot[i].owner[0] && ps->slot[i].session == session && !strcmp(ps->slot[i].owner, owner))
            return &ps->slot[i];
    return NULL;
}

/* A slot for a new session: the owner's previous session's (a node runs one kvmesh
 * collab at a time, so that one has ended), else a free one, else the one used longest
 * ago. */
static peer_slot *take_slot(peer_state *ps, const char *owner, uint32_t session)
{
    peer_slot *sl = NULL;
    for (uint32_t i = 0; i < ps->nslot && !sl; i++)
        if (!strcmp(ps->slot[i].owner, owner))
            sl = &ps->slot[i];
    for (uint32_t i = 0; i < ps->nslot && !sl; i++)
        if (!ps->slot[i].owner[0])
            sl = &ps->slot[i];
    if (!sl) {
        sl = &ps->slot[0];
        for (uint32_t i = 1; i < ps->nslot; i++)
            if (ps->slot[i].used < sl->used)
                sl = &ps->slot[i];
        ps->evicted++;
        fprintf(stderr, "kvmesh peer: session %08x of %s replaces session %08x of %s (all %u slots busy; "
                "that one was idle longest)\n", session, owner, sl->session, sl->owner, ps->nslot);
    } else {
        fprintf(stderr, "kvmesh peer: serving session %08x of %s (slot %u of %u)\n", session, owner,
                (uint32_t)(sl - ps->slot) + 1, ps->nslot);
    }
    snprintf(sl->owner, sizeof sl->owner, "%s", owner);
    sl->session = session;
    sl->have = 0;
    sl->sp_ready = 0;
    return sl;
}

/* Makes sl's KV cache the engine session's. */
static void use_slot(peer_state *ps, peer_slot *sl)
{
    uint32_t i = (uint32_t)(sl - ps->slot);
    sl->used = ++ps->tick;
    if (i == ps->cur)
        return;
    nn_session_kv_get(&ps->e.s, &ps->slot[ps->cur].kv);
    nn_session_kv_set(&ps->e.s, &sl->kv);
    ps->cur = i;
}

/* Requests one device may keep in flight: the ring shared among the sessions the peer
 * holds, one place each left for a probe (at least 1, as the ring has two per session),
 * so that every session's share and probe fit at once. */
static uint32_t peer_share(const peer_state *ps)
{
    return ps->qcap / ps->nslot - 1;
}

static void answer_probes(peer_state *ps);

/* Sends reply r (data, dlen bytes, already in ps->out after the header) to sender. */
static void send_reply(peer_state *ps, const char *sender, uint8_t type, collab_msg *r, uint32_t dlen)
{
    r->data_len = dlen;
    ps->served++;
    int rc = collab_net_send(&ps->net, sender, type, r, ps->out, 5000);
    if (rc)
        fprintf(stderr, "kvmesh peer: reply to %s failed: %s\n", sender, mqtt_strerror(rc));
}

/* Serves one request; fills the reply header r and returns the reply's data length. */
static uint32_t serve(peer_state *ps, const collab_msg *m, const uint8_t *data, const char *sender, collab_msg *r)
{
    const nn_model *md = ps->e.m;
    nn_session *s = &ps->e.s;
    uint32_t L = md->cfg.n_layers, dim = md->cfg.dim, vocab = md->cfg.vocab_size;
    *r = (collab_msg){ .op = m->op, .hidden = m->hidden, .session = m->session, .seq = m->seq, .pos0 = m->pos0,
                       .n = m->n, .l0 = m->l0, .l1 = m->l1, .draft = m->draft, .flags = m->flags,
                       .peer_time = ps->ns_per_row_layer, .peer_ns_call = ps->ns_per_call_layer };
    if (m->op == COLLAB_OP_PING) {
        r->n = peer_share(ps);
        r->have = s->max_seq;
        return 0;
    }
    peer_slot *sl = find_slot(ps, sender, m->session);
    if (!sl) {
        /* A new device session starts from position 0; anything else learns that the
         * peer holds nothing for it. */
        if (m->pos0 != 0) {
            r->status = COLLAB_ST_NEED;
            r->have = 0;
            return 0;
        }
        sl = take_slot(ps, sender, m->session);
    }
    use_slot(ps, sl);
    if (m->pos0 > sl->have) {
        r->status = COLLAB_ST_NEED;
        r->have = sl->have;
        return 0;
    }
    nn_status st = NN_OK;
    if (m->op == COLLAB_OP_LAYERS) {
        if (m->n == 0 || m->n > COLLAB_MAX_ROWS || m->l0 >= m->l1 || m->l1 > L || m->pos0 + m->n > s->max_seq ||
            m->hidden > NN_HIDDEN_INT8)
            st = NN_E_ARG;
        if (!st)
            st = nn_hidden_decode(data, m->data_len, m->n, dim, &ps->w, ps->x);
        /* Up to the last layer for a token: only the last row's output is wanted. */
        int token = m->l1 == L && (m->flags & COLLAB_F_TOKEN);
        if (!st && token)
            st = nn_session_run_layers_kv(s, m->pos0, ps->x, m->n, m->l0, m->l1, ps->x + (size_t)(m->n - 1) * dim);
        else if (!st)
            st = nn_session_run_layers(s, m->pos0, ps->x, m->n, m->l0, m->l1, ps->x);
        if (st) {
            fprintf(stderr, "kvmesh peer: bad LAYERS request from %s: %s\n", sender, nn_strerror(st));
            r->status = COLLAB_ST_ERROR;
            r->have = sl->have;
            return 0;
        }
        sl->have = m->pos0 + m->n;
        ps->rows += m->n;
        r->have = sl->have;
        if (token) {
            nn_session_logits(s, ps->x + (size_t)(m->n - 1) * dim, 1, ps->logits);
            r->token = nn_argmax_i32(ps->logits, vocab);
            return 0;
        }
        size_t len;
        st = nn_hidden_encode(ps->x, m->n, dim, m->hidden, &ps->w, ps->out + COLLAB_HDR,
                              ps->max_msg - COLLAB_HDR, &len);
        if (st) {
            r->status = COLLAB_ST_ERROR;
            return 0;
        }
        return (uint32_t)len;
    }
    /* VERIFY: the whole model over n tokens; logits only for the last draft+1. */
    int sample = (m->flags & COLLAB_F_SAMPLE) != 0;
    if (m->n == 0 || m->n > COLLAB_MAX_TOKENS || m->data_len != 4 * m->n || m->draft >= m->n ||
        m->draft + 1 > COLLAB_MAX_ROWS || m->pos0 + m->n > s->max_seq ||
        (sample && (m->draft > COLLAB_SAMPLE_MAX || m->l0 == 0 || m->l0 >= L))) {
        r->status = COLLAB_ST_ERROR;
        r->have = sl->have;
        return 0;
    }
    uint32_t toks[COLLAB_MAX_ROWS], first = m->n - m->draft - 1;
    for (uint32_t off = 0; off < m->n && !st; off += COLLAB_MAX_ROWS) {
        uint32_t cnt = m->n - off < COLLAB_MAX_ROWS ? m->n - off : COLLAB_MAX_ROWS;
        if (off)
            answer_probes(ps);   /* a long prompt keeps the peer for seconds */
        for (uint32_t j = 0; j < cnt; j++) {
            const uint8_t *b = data + 4 * (off + j);
            toks[j] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        }
        st = nn_session_embed(s, toks, cnt, ps->x);
        /* Sampling also needs the drafter's logits: the first l0 layers and the exit
         * head, at the rows that produced the drafts. */
        uint32_t split = sample ? m->l0 : L;
        if (!st)
            st = nn_session_run_layers(s, m->pos0 + off, ps->x, cnt, 0, split, ps->x);
        for (uint32_t j = 0; j < cnt && !st && sample; j++)
            if (off + j >= first && off + j < first + m->draft)
                st = nn_session_exit_logits(s, split, ps->x + (size_t)j * dim, 1,
                                            ps->dl + (size_t)(off + j - first) * vocab);
        if (!st && split < L)
            st = nn_session_run_layers(s, m->pos0 + off, ps->x, cnt, split, L, ps->x);
        for (uint32_t j = 0; j < cnt && !st; j++) {
            if (off + j < first)
                continue;
            int32_t *lg = sample ? ps->tl + (size_t)(off + j - first) * vocab : ps->logits;
            nn_session_logits(s, ps->x + (size_t)j * dim, 1, lg);
            ps->targ[off + j - first] = nn_argmax_i32(lg, vocab);
        }
    }
    if (st) {
        fprintf(stderr, "kvmesh peer: bad VERIFY request from %s: %s\n", sender, nn_strerror(st));
        r->status = COLLAB_ST_ERROR;
        r->have = sl->have;
        return 0;
    }
    /* Greedy acceptance: drafts are the last `draft` tokens; targ[j] is the model's
     * choice after position first + j. */
    uint32_t a = 0, next;
    if (sample && !sl->sp_ready) {
        nn_arena sa;
        nn_arena_init(&sa, sl->sp_mem, ps->sp_bytes);
        nn_sampler_init(&sl->sp, vocab, (int32_t)m->token, 0, m->have, &sa);
        sl->sp_ready = 1;
    }
    while (a < m->draft) {
        const uint8_t *b = data + 4 * (first + 1 + a);
        uint32_t d = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (sample) {
            uint32_t corr;
            if (!nn_sampler_verify(&sl->sp, ps->tl + (size_t)a * vocab, ps->dl + (size_t)a * vocab, d, &corr)) {
                ps->targ[a] = corr;   /* drawn from the residual max(0, P - Q) */
                break;
            }
        } else if (d != ps->targ[a]) {
            break;
        }
        a++;
    }
    next = ps->targ[a];
    if (sample && a == m->draft)
        next = nn_sampler_sample(&sl->sp, ps->tl + (size_t)a * vocab);
    sl->have = m->pos0 + first + 1 + a;   /* rejected drafts' KV is forgotten */
    ps->verify_tokens += m->n;
    r->accepted = a;
    r->token = next;
    r->have = sl->have;
    return 0;
}

/*
 * Answers the probes queued behind the request being served (the ring's head) and takes
 * them out of the ring, the rest keeping their order. A probe touches no session, and a
 * device starting up gives up on a peer that does not answer one within seconds: one
 * long VERIFY from another device (a prompt of 1562 tokens, 11 s on the smollm2 shape
 * here) made it exit.
 */
static void answer_probes(peer_state *ps)
{
    mqtt_node_poll(&ps->net.node, 0);
    /* First the answers (a send may take in more requests: they go to the end), each
     * answered probe marked by a length of 0; then the ring closes up. */
    int any = 0;
    for (uint32_t j = 1; j < ps->qcount; j++) {
        uint32_t i = (ps->qhead + j) % ps->qcap;
        collab_msg m, r;
        if (collab_msg_read(&m, ps->q[i], ps->qlen[i]) != 0 || m.op != COLLAB_OP_PING)
            continue;
        uint32_t dlen = serve(ps, &m, ps->q[i] + COLLAB_HDR, ps->qsender[i], &r);
        send_reply(ps, ps->qsender[i], ps->qtype[i], &r, dlen);
        ps->qlen[i] = 0;
        any = 1;
    }
    if (!any)
        return;
    uint32_t kept = 1;
    for (uint32_t j = 1; j < ps->qcount; j++) {
        uint32_t i = (ps->qhead + j) % ps->qcap, k = (ps->qhead + kept) % ps->qcap;
        if (ps->qlen[i] == 0)
            continue;
        if (k != i) {   /* the entries from k up to i were answered: move i down to k */
            uint8_t *b = ps->q[k];
            ps->q[k] = ps->q[i];
            ps->q[i] = b;
            ps->qlen[k] = ps->qlen[i];
            ps->qtype[k] = ps->qtype[i];
            memcpy(ps->qsender[k], ps->qsender[i], sizeof ps->qsender[k]);
        }
        kept++;
    }
    ps->qcount = kept;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh peer --config FILE [-m IMAGE] [--threads N] [--sessions N]\n"
        "\n"
        "Serves collaborating devices (kvmesh collab) with the same image: the middle layers\n"
        "of a split, the deep layers of an early exit, and verification of drafted tokens.\n"
        "It connects as the config's node and takes requests on req/<node>. It holds several\n"
        "device sessions at once, each with its own KV cache; a new one beyond them replaces\n"
        "the one idle longest (whose device goes on alone, and comes back later).\n"
        "\n"
        "  --config FILE    the node's configuration (kvmesh.conf: broker, security, model)\n"
        "  -m, --model IMG  image (default: [model] image of the config)\n"
        "  --threads N      engine threads (default: [model] threads)\n"
        "  --sessions N     device sessions held at once, 1-64 (default: [collab] peer_sessions;\n"
        "                   0 or unset: as many as the arena holds, up to 4); each takes a KV\n"
        "                   cache of [model] context positions\n"
        "  -h, --help       this text\n");
}

int fw_cmd_peer(int argc, char **argv)
{
    const char *prog = "kvmesh peer", *conf = NULL, *model = NULL;
    uint32_t threads = 0, sessions = 0;
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "model", required_argument, 0, 'm' },
        { "threads", required_argument, 0, 'T' }, { "sessions", required_argument, 0, 'S' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'm': model = optarg; break;
        case 'T': if (fw_parse_u32(prog, "--threads", optarg, 1, 64, &threads)) return 2; break;
        case 'S': if (fw_parse_u32(prog, "--sessions", optarg, 1, PEER_SESSIONS_MAX, &sessions)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !conf) {
        fprintf(stderr, "%s: --config FILE is required\n", prog);
        usage(stderr);
        return 2;
    }
    peer_state *ps = &peer_g;
    char err[512];
    if (fw_config_load(&ps->cfg, conf, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    fw_engine_opts eo = { .model = model ? model : ps->cfg.image, .ctx = ps->cfg.context,
                          .batch = ps->cfg.batch, .threads = threads ? threads : ps->cfg.threads };
    if (fw_engine_open(&ps->e, &eo, err, sizeof err)) {
        fprintf(stderr, "%s: [model] image: %s\n", prog, err);
        return 1;
    }
    const nn_model *md = ps->e.m;
    uint32_t dim = md->cfg.dim;
    ps->max_msg = collab_max_msg(dim);
    nn_status st = nn_kv_work_init(&ps->w, md, collab_work_positions(md, dim), &ps->e.arena);
    ps->x = nn_arena_alloc(&ps->e.arena, (size_t)COLLAB_MAX_ROWS * dim * 4, 64);
    ps->logits = nn_arena_alloc(&ps->e.arena, (size_t)md->cfg.vocab_size * 4, 64);
    ps->tl = nn_arena_alloc(&ps->e.arena, (size_t)(COLLAB_SAMPLE_MAX + 1) * md->cfg.vocab_size * 4, 64);
    ps->dl = nn_arena_alloc(&ps->e.arena, (size_t)COLLAB_SAMPLE_MAX * md->cfg.vocab_size * 4, 64);
    if (st || !ps->x || !ps->logits || !ps->tl || !ps->dl) {
        fprintf(stderr, "%s: the arena has no room for the peer's buffers\n", prog);
        fw_engine_close(&ps->e);
        return 1;
    }
    /* The device sessions: slot 0 has the engine session's KV cache, the others their
     * own, each with a sampler. 0 (the default): as many as fit, up to PEER_SESSIONS_AUTO. */
    uint32_t want = sessions ? sessions : ps->cfg.peer_sessions;
    ps->nslot = want ? want : PEER_SESSIONS_AUTO;
    ps->sp_bytes = nn_sampler_arena_bytes(md->cfg.vocab_size) + 256;
    size_t slot_bytes = nn_kv_cache_bytes(&ps->e.s) + ps->sp_bytes + 2 * NN_ARENA_ALIGN, base = ps->e.arena.used;
    nn_session_kv_get(&ps->e.s, &ps->slot[0].kv);
    uint32_t made = 0;
    for (; made < ps->nslot && !st; made++) {
        size_t mark = ps->e.arena.used;
        if (made)
            st = nn_kv_cache_carve(&ps->e.s, &ps->e.arena, &ps->slot[made].kv);
        ps->slot[made].sp_mem = st ? NULL : nn_arena_alloc(&ps->e.arena, ps->sp_bytes, 64);
        if (!st && !ps->slot[made].sp_mem)
            st = NN_E_NOMEM;
        if (st && !want && made > 0) {   /* automatic: keep the ones that fit */
            ps->e.arena.used = mark;
            ps->nslot = made;
            st = NN_OK;
            break;
        }
    }
    if (st) {
        size_t cap = fw_arena_capacity(), room = cap > base ? (cap - base) / slot_bytes : 0;
        fprintf(stderr, "%s: %u device sessions do not fit: each takes about %zu bytes of arena (a KV cache of "
                "%u positions and a sampler), and this build's %zu-byte arena has room for %zu; set [collab] "
                "peer_sessions (or --sessions) or [model] context lower\n", prog, ps->nslot, slot_bytes,
                ps->e.s.max_seq, cap, room + 1);
        fw_engine_close(&ps->e);
        return 1;
    }
    ps->out = malloc(ps->max_msg);
    ps->qcap = 2 * ps->nslot > PEER_QUEUE ? 2 * ps->nslot : PEER_QUEUE;
    for (uint32_t i = 0; i < ps->qcap; i++)
        ps->q[i] = malloc(ps->max_msg);
    for (uint32_t i = 0; i < ps->qcap; i++)
        if (!ps->q[i] || !ps->out) {
            fprintf(stderr, "%s: no memory for the request queue\n", prog);
            return 1;
        }
    /* Speed, measured once (the device sizes its chunks by it): one layer costs a per
     * call plus b per row; from runs of COLLAB_CAL_LO and COLLAB_CAL_HI rows after a
     * warm-up run (the first touch of the weights would count as a cost per call). */
    uint32_t toks[COLLAB_CAL_HI], n[3] = { COLLAB_CAL_HI, COLLAB_CAL_LO, COLLAB_CAL_HI };
    uint64_t t[3];
    for (uint32_t i = 0; i < COLLAB_CAL_HI; i++)
        toks[i] = (i + 1) % md->cfg.vocab_size;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = fw_now_ns();
        nn_session_embed(&ps->e.s, toks, n[i], ps->x);
        nn_session_run_layers(&ps->e.s, 0, ps->x, n[i], 0, md->cfg.n_layers, ps->x);
        t[i] = (fw_now_ns() - t0) / md->cfg.n_layers;
    }
    collab_cost_fit(n[1], t[1], n[2], t[2], &ps->ns_per_call_layer, &ps->ns_per_row_layer);

    mqtt_model_id mid;
    memcpy(mid.fingerprint, ps->e.img.id.fingerprint, 32);
    mid.numerics = ps->e.img.id.numerics_version;
    if (collab_net_open(&ps->net, &ps->cfg, &mid, ps->max_msg, on_deliver, ps, 30000, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        fw_engine_close(&ps->e);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "kvmesh peer: ready: node %s, %u layers, dim %u, context %u, %u device sessions; a layer "
            "costs %u ns per call + %u ns per row\n", ps->cfg.node_id, md->cfg.n_layers, dim, ps->e.s.max_seq,
            ps->nslot, ps->ns_per_call_layer, ps->ns_per_row_layer);
    int rc = 0;
    while (!peer_stop) {
        if ((rc = mqtt_node_poll(&ps->net.node, ps->qcount ? 0 : 20)) != MQTT_OK) {
            fprintf(stderr, "%s: broker session failed: %s\n", prog, mqtt_strerror(rc));
            break;
        }
        while (ps->qcount && !peer_stop) {
            uint32_t i = ps->qhead;
            collab_msg m, r;
            char sender[MQTT_NODE_ID_MAX + 1];
            snprintf(sender, sizeof sender, "%s", ps->qsender[i]);
            uint8_t type = ps->qtype[i];
            int ok = collab_msg_read(&m, ps->q[i], ps->qlen[i]) == 0;
            uint64_t tq = fw_now_ns();
            uint32_t dlen = ok ? serve(ps, &m, ps->q[i] + COLLAB_HDR, sender, &r) : 0;
            if (ok && m.op != COLLAB_OP_PING) {   /* the time this request took here */
                uint64_t dq = fw_now_ns() - tq;
                r.peer_time = dq / 1000u > UINT32_MAX ? UINT32_MAX : (uint32_t)(dq / 1000u);
            }
            ps->qhead = (ps->qhead + 1) % ps->qcap;
            ps->qcount--;
            if (!ok)
                continue;
            send_reply(ps, sender, type, &r, dlen);
            /* Pick up what arrived meanwhile without blocking. */
            mqtt_node_poll(&ps->net.node, 0);
        }
    }
    char drops[256];
    collab_net_drops(&ps->net, drops, sizeof drops);
    fprintf(stderr, "kvmesh peer: stopping: %llu requests served, %llu rows, %llu verified tokens, %llu sessions "
            "replaced, %llu dropped (queue full), %llu bytes sent, %llu received; frames: %s\n",
            (unsigned long long)ps->served, (unsigned long long)ps->rows, (unsigned long long)ps->verify_tokens,
            (unsigned long long)ps->evicted, (unsigned long long)ps->dropped,
            (unsigned long long)ps->net.sent_bytes, (unsigned long long)ps->net.recv_bytes, drops);
    collab_net_close(&ps->net);
    for (uint32_t i = 0; i < ps->qcap; i++)
        free(ps->q[i]);
    free(ps->out);
    fw_engine_close(&ps->e);
    return rc ? 1 : 0;
}
