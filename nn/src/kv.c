/*
 * KV caches in and out of sessions: prefix ids, the stream container, export, parse and
 * import (with token matching, cross-model reuse and layer recompute). The per-layer
 * codecs are in kv_codec.c.
 */
#include <pthread.h>
#include <string.h>

#include "kv_codec.h"
#include "nn_kv.h"
#include "nn_sha256.h"

/* ---- prefix identity ------------------------------------------------------------------- */

/* Runs the chain over nb blocks; writes up to max_ids ids and, when last is not NULL,
 * the final id. */
static void prefix_chain(const nn_model_id *id, uint32_t block, const uint32_t *tokens, uint32_t nb,
                         uint8_t (*ids)[32], uint32_t max_ids, uint8_t last[32])
{
    static const char tag[] = "kvmesh prefix v1";
    uint8_t seed[sizeof tag - 1 + 32 + 8], prev[32];
    memcpy(seed, tag, sizeof tag - 1);
    memcpy(seed + sizeof tag - 1, id->fingerprint, 32);
    nn_wr32(seed + sizeof tag - 1 + 32, id->numerics_version);
    nn_wr32(seed + sizeof tag - 1 + 36, block);
    nn_sha256_buf(seed, sizeof seed, prev);
    for (uint32_t k = 0; k < nb; k++) {
        nn_sha256 h;
        nn_sha256_init(&h);
        nn_sha256_update(&h, prev, 32);
        for (uint32_t i = 0; i < block; i++) {
            uint8_t t[4];
            nn_wr32(t, tokens[(size_t)k * block + i]);
            nn_sha256_update(&h, t, 4);
        }
        nn_sha256_final(&h, prev);
        if (k < max_ids)
            memcpy(ids[k], prev, 32);
    }
    if (last)
        memcpy(last, prev, 32);
}

uint32_t nn_kv_prefix_ids(const nn_model_id *id, uint32_t block, const uint32_t *tokens, uint32_t n,
                          uint8_t (*ids)[32], uint32_t max_ids)
{
    if (!id || block == 0 || (!tokens && n))
        return 0;
    uint32_t nb = n / block;
    prefix_chain(id, block, tokens, nb < max_ids ? nb : max_ids, ids, max_ids, NULL);
    return nb;
}

/* ---- work area ------------------------------------------------------------------------ */

size_t nn_kv_work_bytes(const nn_model *m, uint32_t max_pos)
{
    nn_arena a;
    nn_kv_work w;
    nn_arena_init(&a, NULL, 0);
    nn_kv_work_init(&w, m, max_pos, &a);
    return nn_arena_needed(&a);
}

nn_status nn_kv_work_init(nn_kv_work *w, const nn_model *m, uint32_t max_pos, nn_arena *a)
{
    if (!w || !m || !a || max_pos == 0)
        return NN_E_ARG;
    memset(w, 0, sizeof *w);
    kv_shape sh = kv_shape_of(m->cfg.n_kv_heads, m->cfg.head_dim);
    w->scratch_bytes = kv_layer_scratch_bytes(&sh, max_pos);
    w->scratch = nn_arena_alloc(a, w->scratch_bytes, 64);
    w->max_pos = max_pos;
    w->x = nn_arena_alloc(a, (size_t)max_pos * m->cfg.dim * sizeof *w->x, 64);
    nn_status st = kv_zstd_init(w, w->scratch_bytes, a);
    if (st == NN_OK && (!w->scratch || !w->x))
        st = NN_E_NOMEM;
    return st;
}

/* ---- hidden-state capture ------------------------------------------------------------- */

size_t nn_kv_hidden_bytes(const nn_model *m, uint32_t n_layers, uint32_t max_pos)
{
    return (size_t)n_layers * max_pos * m->cfg.dim * sizeof(int32_t) + 64;
}

static void hidden_hook(void *ctx, uint32_t layer, uint32_t pos0, uint32_t n, const int32_t *x)
{
    nn_kv_hidden *h = ctx;
    for (uint32_t i = 0; i < h->n; i++)
        if (h->layer[i] == layer && pos0 < h->max_pos) {
            uint32_t k = n < h->max_pos - pos0 ? n : h->max_pos - pos0;
            memcpy(h->x + ((size_t)i * h->max_pos + pos0) * h->dim, x, (size_t)k * h->dim * sizeof *x);
        }
}

nn_status nn_kv_hidden_capture(nn_kv_hidden *h, nn_session *s, const uint32_t *layers, uint32_t n, nn_arena *a)
{
    if (!h || !s || !s->m || (!layers && n) || n > NN_KV_MAX_HIDDEN)
        return NN_E_ARG;
    memset(h, 0, sizeof *h);
    for (uint32_t i = 0; i < n; i++) {
        if (layers[i] >= s->m->cfg.n_layers)
            return NN_E_ARG;
        h->layer[i] = layers[i];
    }
    h->n = n;
    h->dim = s->m->cfg.dim;
    h->max_pos = s->max_seq;
    h->x = nn_arena_alloc(a, (size_t)n * h->max_pos * h->dim * sizeof *h->x, 64);
    if (n && !h->x)
        return NN_E_NOMEM;
    nn_session_set_hook(s, hidden_hook, h);
    return NN_OK;
}

/* ---- stream container ------------------------------------------------------------------ */

#define OFF_VERSION   8
#define OFF_HDRBYTES  12
#define OFF_FP        16
#define OFF_NUMERICS  48
#define OFF_CODEC     52
#define OFF_KBITS     56
#define OFF_VBITS     60
#define OFF_KGROUP    64
#define OFF_LAYERS    68
#define OFF_KVHEADS   72
#define OFF_HEADDIM   76
#define OFF_L0        80
#define OFF_L1        84
#define OFF_P0        88
#define OFF_P1        92
#define OFF_BLOCK     96
#define OFF_NHIDDEN   100
#define OFF_DIM       104
#define OFF_VGROUP    108
#define OFF_PAYLOAD   112
#define OFF_PREFIX    120
#define OFF_DIGEST    152


size_t nn_kv_export_bound(const nn_model *m, const nn_kv_range *r, uint32_t n_hidden)
{
    if (!m || !r || r->pos1 < r->pos0 || r->layer1 < r->layer0)
        return 0;
    kv_shape sh = kv_shape_of(m->cfg.n_kv_heads, m->cfg.head_dim);
    uint32_t npos = r->pos1 - r->pos0;
    size_t per_layer = kv_layer_bound(&sh, npos);
    return NN_KV_HEADER_BYTES + (size_t)r->pos1 * 4 + (size_t)n_hidden * 4 +
           (size_t)n_hidden * npos * m->cfg.dim * 4 + (size_t)(r->layer1 - r->layer0) * per_layer;
}

static nn_status check_opts(const nn_kv_opts *o)
{
    if (o->codec > NN_KV_LOSSY || o->level < 0 || o->level > KV_MAX_LEVEL)
        return NN_E_ARG;
    if (o->codec == NN_KV_LOSSY &&
        (o->k_bits < 1 || o->k_bits > 8 || o->v_bits < 1 || o->v_bits > 8 || (o->k_group && o->k_group < 8) ||
         (o->v_group && o->v_group < 8)))
        return NN_E_ARG;
    return NN_OK;
}

nn_status nn_kv_export(const nn_session *s, const nn_kv_range *r, const uint32_t *tokens, const nn_kv_opts *o,
                       const nn_kv_hidden *hidden, nn_kv_work *w, uint8_t *out, size_t cap, size_t *len)
{
    if (!s || !s->m || !r || !o || !w || !len || (!tokens && r->pos1) || check_opts(o))
        return NN_E_ARG;
    const nn_model *m = s->m;
    if (r->layer0 >= r->layer1 || r->layer1 > m->cfg.n_layers || r->pos0 >= r->pos1 || r->pos1 > s->n_pos)
        return NN_E_RANGE;
    uint32_t npos = r->pos1 - r->pos0, nh = hidden ? hidden->n : 0;
    if (npos > w->max_pos)
        return NN_E_NOMEM;
    if (hidden && r->pos1 > hidden->max_pos)
        return NN_E_RANGE;
    size_t bound = nn_kv_export_bound(m, r, nh);
    if (!out || cap < bound) {
        *len = bound;
        return NN_E_NOMEM;
    }
    uint8_t *h = out;
    memset(h, 0, NN_KV_HEADER_BYTES);
    memcpy(h, NN_KV_MAGIC, 8);
    nn_wr32(h + OFF_VERSION, NN_KV_VERSION);
    nn_wr32(h + OFF_HDRBYTES, NN_KV_HEADER_BYTES);
    memcpy(h + OFF_FP, m->img->id.fingerprint, 32);
    nn_wr32(h + OFF_NUMERICS, m->img->id.numerics_version);
    kv_params p = kv_params_of(o);
    nn_wr32(h + OFF_CODEC, o->codec);
    nn_wr32(h + OFF_KBITS, p.k_bits);
    nn_wr32(h + OFF_VBITS, p.v_bits);
    nn_wr32(h + OFF_KGROUP, p.k_group);
    nn_wr32(h + OFF_VGROUP, p.v_group);
    nn_wr32(h + OFF_LAYERS, m->cfg.n_layers);
    nn_wr32(h + OFF_KVHEADS, m->cfg.n_kv_heads);
    nn_wr32(h + OFF_HEADDIM, m->cfg.head_dim);
    nn_wr32(h + OFF_L0, r->layer0);
    nn_wr32(h + OFF_L1, r->layer1);
    nn_wr32(h + OFF_P0, r->pos0);
    nn_wr32(h + OFF_P1, r->pos1);
    nn_wr32(h + OFF_BLOCK, NN_KV_BLOCK);
    nn_wr32(h + OFF_NHIDDEN, nh);
    nn_wr32(h + OFF_DIM, m->cfg.dim);
    size_t off = NN_KV_HEADER_BYTES;
    for (uint32_t i = 0; i < r->pos1; i++, off += 4)
        nn_wr32(out + off, tokens[i]);
    for (uint32_t i = 0; i < nh; i++, off += 4)
        nn_wr32(out + off, hidden->layer[i]);
    for (uint32_t i = 0; i < nh; i++) {
        const int32_t *x = hidden->x + ((size_t)i * hidden->max_pos + r->pos0) * hidden->dim;
        for (size_t k = 0; k < (size_t)npos * hidden->dim; k++, off += 4)
            nn_wr32(out + off, (uint32_t)x[k]);
    }
    size_t payload0 = off;
    kv_shape sh = kv_shape_of(m->cfg.n_kv_heads, m->cfg.head_dim);
    for (uint32_t l = r->layer0; l < r->layer1; l++) {
        kv_layer_view v = kv_layer_of(s, l, r->pos0, npos);
        size_t used;
        nn_status st = kv_layer_encode(&sh, &v, &p, w, out + off, cap - off, &used);
        if (st)
            return st;
        off += used;
    }
    nn_wr64(h + OFF_PAYLOAD, off - payload0);
    if (r->pos1 >= NN_KV_BLOCK)
        prefix_chain(&m->img->id, NN_KV_BLOCK, tokens, r->pos1 / NN_KV_BLOCK, NULL, 0, h + OFF_PREFIX);
    uint8_t d[32];
    nn_sha256_zeroed(out, off, OFF_DIGEST, d);
    memcpy(h + OFF_DIGEST, d, 32);
    *len = off;
    return NN_OK;
}

nn_status nn_kv_parse(const uint8_t *buf, size_t len, nn_kv_info *in)
{
    if (!buf || !in)
        return NN_E_ARG;
    memset(in, 0, sizeof *in);
    if (len < 8 || memcmp(buf, NN_KV_MAGIC, 8) != 0)
        return len < 8 ? NN_E_TRUNCATED : NN_E_MAGIC;
    if (len < NN_KV_HEADER_BYTES)
        return NN_E_TRUNCATED;
    if (nn_rd32(buf + OFF_VERSION) != NN_KV_VERSION)
        return NN_E_VERSION;
    if (nn_rd32(buf + OFF_HDRBYTES) != NN_KV_HEADER_BYTES)
        return NN_E_CORRUPT;
    for (uint32_t i = OFF_DIGEST + 32; i < NN_KV_HEADER_BYTES; i++)
        if (buf[i])
            return NN_E_CORRUPT;
    memcpy(in->id.fingerprint, buf + OFF_FP, 32);
    in->id.numerics_version = nn_rd32(buf + OFF_NUMERICS);
    in->codec = nn_rd32(buf + OFF_CODEC);
    in->k_bits = nn_rd32(buf + OFF_KBITS);
    in->v_bits = nn_rd32(buf + OFF_VBITS);
    in->k_group = nn_rd32(buf + OFF_KGROUP);
    in->v_group = nn_rd32(buf + OFF_VGROUP);
    in->n_layers = nn_rd32(buf + OFF_LAYERS);
    in->n_kv_heads = nn_rd32(buf + OFF_KVHEADS);
    in->head_dim = nn_rd32(buf + OFF_HEADDIM);
    in->r.layer0 = nn_rd32(buf + OFF_L0);
    in->r.layer1 = nn_rd32(buf + OFF_L1);
    in->r.pos0 = nn_rd32(buf + OFF_P0);
    in->r.pos1 = nn_rd32(buf + OFF_P1);
    in->block = nn_rd32(buf + OFF_BLOCK);
    in->n_hidden = nn_rd32(buf + OFF_NHIDDEN);
    in->dim = nn_rd32(buf + OFF_DIM);
    in->payload_bytes = nn_rd64(buf + OFF_PAYLOAD);
    memcpy(in->prefix_id, buf + OFF_PREFIX, 32);
    kv_params p = { in->codec, in->k_bits, in->v_bits, in->k_group, in->v_group, 0 };
    if (in->codec > NN_KV_LOSSY || kv_params_check(&p))
        return NN_E_CODEC;
    if (in->n_layers == 0 || in->n_layers > NN_MAX_LAYERS || in->n_kv_heads == 0 || in->head_dim == 0 ||
        in->head_dim > NN_MAX_HEAD_DIM || (uint64_t)in->n_kv_heads * in->head_dim > NN_MAX_DIM ||
        in->dim == 0 || in->dim > NN_MAX_DIM || in->r.layer0 >= in->r.layer1 || in->r.layer1 > in->n_layers ||
        in->r.pos0 >= in->r.pos1 || in->r.pos1 > NN_MAX_SEQ || in->block == 0 || in->n_hidden > NN_KV_MAX_HIDDEN)
        return NN_E_CORRUPT;
    uint64_t npos = in->r.pos1 - in->r.pos0;
    uint64_t need = NN_KV_HEADER_BYTES + (uint64_t)in->r.pos1 * 4 + (uint64_t)in->n_hidden * 4 +
                    (uint64_t)in->n_hidden * npos * in->dim * 4;
    if (need > len || in->payload_bytes > len - need)
        return NN_E_TRUNCATED;
    if (need + in->payload_bytes != len)
        return NN_E_CORRUPT;
    in->tokens = buf + NN_KV_HEADER_BYTES;
    in->hidden_layers = in->tokens + (size_t)in->r.pos1 * 4;
    in->hidden = in->hidden_layers + (size_t)in->n_hidden * 4;
    in->payload = buf + need;
    in->total_bytes = len;
    for (uint32_t i = 0; i < in->n_hidden; i++)
        if (nn_rd32(in->hidden_layers + 4 * i) >= in->n_layers)
            return NN_E_CORRUPT;
    uint8_t d[32];
    nn_sha256_zeroed(buf, len, OFF_DIGEST, d);
    if (memcmp(d, buf + OFF_DIGEST, 32) != 0)
        return NN_E_CORRUPT;
    return NN_OK;
}

uint32_t nn_kv_bits_per_value_x1000(const nn_kv_info *in)
{
    uint64_t values = (uint64_t)(in->r.layer1 - in->r.layer0) * (in->r.pos1 - in->r.pos0) * in->n_kv_heads *
                      in->head_dim * 2;
    return values ? (uint32_t)((in->total_bytes * 8000 + values / 2) / values) : 0;
}

/* ---- import ---------------------------------------------------------------------------- */

typedef struct import_job {
    nn_session       *s;
    const nn_kv_info *in;
    const uint8_t    *skip;        /* [n_layers] layers not to decode (recomputed) */
    nn_kv_work       *w;
    uint32_t          take;        /* positions to keep, from pos0 */
    nn_status         st;
} import_job;

/* Decodes every layer not in skip into the session at [pos0, pos0+take). */
static void *decode_layers(void *arg)
{
    import_job *j = arg;
    const nn_kv_info *in = j->in;
    kv_shape sh = kv_shape_of(in->n_kv_heads, in->head_dim);
    kv_params p = { in->codec, in->k_bits, in->v_bits, in->k_group, in->v_group, 0 };
    uint32_t npos = in->r.pos1 - in->r.pos0;
    const uint8_t *at = in->payload, *end = in->payload + in->payload_bytes;
    j->st = NN_OK;
    for (uint32_t l = in->r.layer0; l < in->r.layer1; l++) {
        size_t used;
        kv_layer_view v = kv_layer_of(j->s, l, in->r.pos0, j->take);
        nn_status st = kv_layer_decode(&sh, &p, npos, j->skip && j->skip[l] ? NULL : &v, j->w, at,
                                       (size_t)(end - at), &used);
        if (st) {
            j->st = st;
            return NULL;
        }
        at += used;
    }
    if (at != end)
        j->st = NN_E_CODEC;
    return NULL;
}

/*
 * Recomputes each run of layers marked in rec: a run from layer 0 starts from this
 * model's own embeddings of the tokens; any other run from the stream's hidden states
 * at its first layer (the sender's, an approximation for another model).
 */
static nn_status recompute_runs(nn_session *s, const nn_kv_info *in, const uint8_t *rec, uint32_t take,
                                int32_t *x)
{
    uint32_t L = s->m->cfg.n_layers, dim = s->m->cfg.dim, npos = in->r.pos1 - in->r.pos0;
    for (uint32_t a = 0; a < L;) {
        if (!rec[a]) {
            a++;
            continue;
        }
        uint32_t b = a;
        while (b < L && rec[b])
            b++;
        int found = 0;
        for (uint32_t i = 0; a == 0 && i < take; i++) {
            uint32_t t = nn_rd32(in->tokens + 4 * ((size_t)in->r.pos0 + i));
            if (nn_session_embed(s, &t, 1, x + (size_t)i * dim))
                return NN_E_CORRUPT;               /* a token outside this vocabulary */
            found = 1;
        }
        for (uint32_t i = 0; i < in->n_hidden && !found; i++)
            if (nn_rd32(in->hidden_layers + 4 * i) == a) {
                const uint8_t *src = in->hidden + (size_t)i * npos * dim * 4;
                for (size_t k = 0; k < (size_t)take * dim; k++)
                    x[k] = (int32_t)nn_rd32(src + 4 * k);
                found = 1;
            }
        if (!found)
            return NN_E_ARG;
        nn_status st = nn_session_run_layers(s, in->r.pos0, x, take, a, b, NULL);
        if (st)
            return st;
        a = b;
    }
    return NN_OK;
}

nn_status nn_kv_import(nn_session *s, const uint8_t *buf, size_t len, const uint32_t *tokens, uint32_t n_tokens,
                       const nn_kv_import_opts *o, nn_kv_work *w, uint32_t *reused)
{
    static const nn_kv_import_opts none;
    if (!s || !s->m || !w || !reused || (!tokens && n_tokens))
        return NN_E_ARG;
    if (!o)
        o = &none;
    *reused = s->n_pos;
    nn_kv_info in;
    nn_status st = nn_kv_parse(buf, len, &in);
    if (st)
        return st;
    const nn_model *m = s->m;
    const nn_model_id *mine = &m->img->id;
    int same = memcmp(in.id.fingerprint, mine->fingerprint, 32) == 0 && in.id.numerics_version == mine->numerics_version;
    if (in.n_layers != m->cfg.n_layers || in.n_kv_heads != m->cfg.n_kv_heads || in.head_dim != m->cfg.head_dim ||
        in.dim != m->cfg.dim || in.id.numerics_version != mine->numerics_version || (!same && !o->other_model))
        return NN_E_MODEL;
    int whole = in.r.layer0 == 0 && in.r.layer1 == m->cfg.n_layers;
    if (in.r.pos0 != s->n_pos || in.r.pos1 > s->max_seq)
        return NN_E_RANGE;
    uint32_t npos = in.r.pos1 - in.r.pos0;
    if (npos > w->max_pos)
        return NN_E_NOMEM;
    /* Take positions while the stream's context matches the caller's. */
    uint32_t end = 0;
    while (end < in.r.pos1 && end < n_tokens && nn_rd32(in.tokens + 4 * (size_t)end) == tokens[end])
        end++;
    if (end <= in.r.pos0)
        return NN_OK;                              /* nothing in common beyond what we have */
    uint32_t take = end - in.r.pos0;
    int any_rec = 0;
    if (o->recompute && whole)
        for (uint32_t l = 0; l < m->cfg.n_layers; l++)
            any_rec |= o->recompute[l] != 0;

    import_job job = { s, &in, any_rec ? o->recompute : NULL, w, take, NN_OK };
    if (!any_rec) {
        decode_layers(&job);
        st = job.st;
    } else {
        /* Recompute uses the session's activations and w->x; decoding uses w->scratch
         * and writes other layers' cache rows, so the two can run at the same time. */
        pthread_t th;
        int threaded = o->pipeline && pthread_create(&th, NULL, decode_layers, &job) == 0;
        if (o->pipeline && !threaded)
            return NN_E_THREAD;
        nn_status rst = recompute_runs(s, &in, o->recompute, take, w->x);
        if (threaded)
            pthread_join(th, NULL);
        else
            decode_layers(&job);
        st = rst ? rst : job.st;
    }
    if (st)
        return st;                                 /* n_pos unchanged: rows past it are unused */
    if (whole)
        s->n_pos = end;                            /* partial layers: the caller decides */
    *reused = end;
    return NN_OK;
}

const char *nn_kv_codec_name(uint32_t codec)
{
    switch (codec) {
    case NN_KV_RAW:      return "raw";
    case NN_KV_LOSSLESS: return "lossless";
    case NN_KV_LOSSY:    return "lossy";
    }
    return "unknown";
}

/* Parses "<letter><8..65536>" at *p, advancing it. Returns 0 or -1. */
static int parse_group(const char **p, uint32_t *out)
{
    const char *g = *p + 1;
    uint32_t v = 0;
    for (; *g >= '0' && *g <= '9' && v < 100000; g++)
        v = v * 10 + (uint32_t)(*g - '0');
    if (g == *p + 1 || v < 8 || v > 65536)
        return -1;
    *out = v;
    *p = g;
    return 0;
}

nn_status nn_kv_parse_codec(const char *name, nn_kv_opts *o)
{
    if (!name || !o)
        return NN_E_ARG;
    memset(o, 0, sizeof *o);
    if (strcmp(name, "raw") == 0) {
        o->codec = NN_KV_RAW;
        return NN_OK;
    }
    if (strcmp(name, "lossless") == 0) {
        o->codec = NN_KV_LOSSLESS;
        return NN_OK;
    }
    /* "k<bits>v<bits>" with bits 1..8, optionally "g<positions>" */
    if (name[0] == 'k' && name[1] >= '1' && name[1] <= '8' && name[2] == 'v' && name[3] >= '1' && name[3] <= '8') {
        o->codec = NN_KV_LOSSY;
        o->k_bits = (uint32_t)(name[1] - '0');
        o->v_bits = (uint32_t)(name[3] - '0');
        /* optional "g<positions>" (key groups), then "c<positions>" (values per channel) */
        const char *g = name + 4;
        if (*g == 'g' && parse_group(&g, &o->k_group))
            return NN_E_ARG;
        if (*g == 'c' && parse_group(&g, &o->v_group))
            return NN_E_ARG;
        if (*g)
            return NN_E_ARG;
        return NN_OK;
    }
    return NN_E_ARG;
}
