/*
 * The transformer: model views over the image, session carving, and the forward pass.
 * Sections follow the data: views -> session -> per-token ops -> attention -> block.
 */
#include <string.h>

#include "nn_fixed.h"
#include "nn_model.h"
#include "nn_sampler.h"
#include "fixed_inline.h"
#include "pool.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

/* ---- model views -------------------------------------------------------------------- */

/* Exponents stay in a range where every shift in the forward pass is well defined. */
#define EXP_MIN (-32)
#define EXP_MAX 96

/* The smallest share of a prompt block's matmul worth a chunk of its own (see matmuls()). */
#define PREFILL_CHUNK_MACS (64ull << 20)

static nn_status view_q8(const nn_image *img, uint32_t kind, uint32_t layer,
                         uint32_t rows, uint32_t cols, nn_q8_mat *out)
{
    nn_tensor t;
    /* Interleaved weights only in numerics version 2, never the embedding (read by row). */
    int il_ok = img->id.numerics_version == NN_NUMERICS_ACT8 && kind != NN_T_TOK_EMB;
    if (nn_image_tensor(img, kind, layer, &t) != NN_OK ||
        (t.dtype != NN_DT_Q8G && !(il_ok && t.dtype == NN_DT_Q8G8)) || t.rows != rows || t.cols != cols)
        return NN_E_SHAPE;
    if (t.exp < EXP_MIN || t.exp > EXP_MAX)
        return NN_E_CORRUPT;
    out->q = t.data;
    out->m = t.scales;
    out->rows = rows;
    out->cols = cols;
    out->group = img->cfg.group_size;
    out->ngroups = nn_groups(cols, out->group);
    out->exp = t.exp;
    out->il = t.dtype == NN_DT_Q8G8;
    return NN_OK;
}

static nn_status view_vec(const nn_image *img, uint32_t kind, uint32_t layer, uint32_t n,
                          nn_vec_i32 *out)
{
    nn_tensor t;
    if (nn_image_tensor(img, kind, layer, &t) != NN_OK || t.dtype != NN_DT_I32 ||
        t.rows != 1 || t.cols != n)
        return NN_E_SHAPE;
    if (t.exp < EXP_MIN || t.exp > EXP_MAX)
        return NN_E_CORRUPT;
    out->v = t.data;
    out->n = n;
    out->exp = t.exp;
    /* |g| < 2^30 keeps x * g (x int32) below 2^61 in RMSNorm. */
    for (uint32_t i = 0; i < n; i++)
        if (out->v[i] >= (1 << 30) || out->v[i] <= -(1 << 30))
            return NN_E_CORRUPT;
    return NN_OK;
}

nn_status nn_model_init(nn_model *m, const nn_image *img)
{
    if (!m || !img || !img->data)
        return NN_E_ARG;
    memset(m, 0, sizeof *m);
    const nn_config *c = &img->cfg;
    m->img = img;
    m->cfg = *c;
    m->q_dim = c->n_heads * c->head_dim;
    m->kv_dim = c->n_kv_heads * c->head_dim;

    nn_status st;
    if ((st = view_q8(img, NN_T_TOK_EMB, NN_LAYER_NONE, c->vocab_size, c->dim, &m->tok_emb)))
        return st;
    if (c->flags & NN_IMG_FLAG_TIED_CLASSIFIER) {
        nn_tensor t;
        if (nn_image_tensor(img, NN_T_CLS, NN_LAYER_NONE, &t) == NN_OK)
            return NN_E_SHAPE;            /* tied images carry no separate classifier */
        m->cls = m->tok_emb;
    } else if ((st = view_q8(img, NN_T_CLS, NN_LAYER_NONE, c->vocab_size, c->dim, &m->cls))) {
        return st;
    }
    if ((st = view_vec(img, NN_T_FINAL_NORM, NN_LAYER_NONE, c->dim, &m->final_norm)))
        return st;
    for (uint32_t l = 0; l < c->n_layers; l++) {
        nn_layer_w *L = &m->layers[l];
        if ((st = view_vec(img, NN_T_ATT_NORM, l, c->dim, &L->att_norm)) ||
            (st = view_vec(img, NN_T_FFN_NORM, l, c->dim, &L->ffn_norm)) ||
            (st = view_q8(img, NN_T_WQ, l, m->q_dim, c->dim, &L->wq)) ||
            (st = view_q8(img, NN_T_WK, l, m->kv_dim, c->dim, &L->wk)) ||
            (st = view_q8(img, NN_T_WV, l, m->kv_dim, c->dim, &L->wv)) ||
            (st = view_q8(img, NN_T_WO, l, c->dim, m->q_dim, &L->wo)) ||
            (st = view_q8(img, NN_T_W1, l, c->hidden_dim, c->dim, &L->w1)) ||
            (st = view_q8(img, NN_T_W2, l, c->dim, c->hidden_dim, &L->w2)) ||
            (st = view_q8(img, NN_T_W3, l, c->hidden_dim, c->dim, &L->w3)))
            return st;
        nn_tensor ex;
        if (nn_image_tensor(img, NN_T_EXIT_PROJ, l, &ex) == NN_OK) {
            if ((st = view_q8(img, NN_T_EXIT_PROJ, l, c->dim, c->dim, &L->exit_proj)))
                return st;
            L->has_exit = l > 0;
            if (l == 0)
                return NN_E_SHAPE;         /* an exit before any layer makes no sense */
        }
    }
    nn_tensor t;
    if (nn_image_tensor(img, NN_T_ROPE_FREQ, NN_LAYER_NONE, &t) != NN_OK || t.dtype != NN_DT_U64 ||
        t.rows != 1 || t.cols != c->head_dim / 2)
        return NN_E_SHAPE;
    m->rope_freq = t.data;
    /* 1/sqrt(head_dim) in Q24 = floor(sqrt(2^48 / head_dim)). */
    m->inv_sqrt_hd_q24 = (int32_t)nn_isqrt_u64((1ull << 48) / c->head_dim);

    if (nn_image_tensor(img, NN_T_TOKENIZER, NN_LAYER_NONE, &t) != NN_OK || t.dtype != NN_DT_BYTES)
        return NN_E_TOKENIZER;
    if ((st = nn_tok_init(&m->tok, t.data, t.data_bytes)))
        return st;
    if (m->tok.n_vocab != c->vocab_size || m->tok.kind != c->tokenizer_kind)
        return NN_E_TOKENIZER;
    return NN_OK;
}

/* ---- session ------------------------------------------------------------------------ */

static uint32_t max3(uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* Prompt blocks of at least this many tokens pack each KV head's K rows once for all
 * the queries that read them (nn_kernels.dot_rows_packed). */
#define PACK_MIN_TOK 8u

/*
 * Per-thread scratch, one region per worker:
 *   score int32[max_seq] | prob int32[max_seq] | dots int64[max_seq] | acc int64[head_dim]
 *   | q16 int16[head_dim] | pk: one KV head's K rows packed (nn_pack_rows_len), only
 *   in sessions whose blocks can be prompt blocks (pk 0: none)
 */
typedef struct scratch_layout { size_t prob, dots, acc, q16, pk, bytes; } scratch_layout;

static scratch_layout scratch_of(const nn_model *m, uint32_t max_seq, uint32_t max_batch)
{
    uint32_t hd = m->cfg.head_dim;
    scratch_layout l;
    l.prob = (size_t)max_seq * 4;
    l.dots = l.prob + (size_t)max_seq * 4;
    l.acc = l.dots + (size_t)max_seq * 8;
    l.q16 = l.acc + (size_t)hd * 8;
    l.bytes = (l.q16 + (size_t)hd * 2 + 63) & ~(size_t)63;
    l.pk = 0;
    if (max_batch >= PACK_MIN_TOK && hd % 2 == 0 && hd <= 256) {
        l.pk = l.bytes;
        l.bytes += (nn_pack_rows_len(hd, max_seq) * 2 + 63) & ~(size_t)63;
    }
    return l;
}

static nn_status check_opts(const nn_model *m, const nn_session_opts *o, uint32_t *seq,
                            uint32_t *batch, uint32_t *threads)
{
    if (!m || !o || !m->img)
        return NN_E_ARG;
    *seq = o->max_seq ? o->max_seq : m->cfg.max_seq;
    *batch = o->max_batch ? o->max_batch : 1;
    *threads = o->threads ? o->threads : 1;
    if (*seq > m->cfg.max_seq || *batch > 4096 || *threads > NN_MAX_THREADS)
        return NN_E_ARG;
    return NN_OK;
}

/* A KV cache for seq positions of every layer. */
static void carve_kv(nn_kv_cache *k, const nn_model *m, uint32_t seq, nn_arena *a)
{
    size_t kv = (size_t)m->cfg.n_layers * seq;
    k->kc = nn_arena_alloc(a, kv * m->kv_dim * 2, 64);
    k->vc = nn_arena_alloc(a, kv * m->kv_dim * 2, 64);
    k->kt = nn_arena_alloc(a, kv * m->cfg.n_kv_heads, 64);
    k->vt = nn_arena_alloc(a, kv * m->cfg.n_kv_heads, 64);
    k->n_pos = 0;
}

/* One carving routine for measuring and for real, so the two can never disagree. */
static void carve(nn_session *s, const nn_model *m, uint32_t seq, uint32_t B, uint32_t T,
                  int all_logits, nn_arena *a)
{
    const nn_config *c = &m->cfg;
    nn_kv_cache k;
    carve_kv(&k, m, seq, a);
    s->kc = k.kc;
    s->vc = k.vc;
    s->kt = k.kt;
    s->vt = k.vt;
    uint32_t wide = max3(c->dim, m->q_dim, c->hidden_dim);
    s->x = nn_arena_alloc(a, (size_t)B * c->dim * 4, 64);
    s->xa = nn_arena_alloc(a, (size_t)B * wide * 2, 64);
    s->xs = nn_arena_alloc(a, (size_t)B * sizeof(nn_scale), 64);
    if (m->img->id.numerics_version == NN_NUMERICS_ACT8) {
        s->xa8 = nn_arena_alloc(a, (size_t)B * wide, 64);
        s->xsh = nn_arena_alloc(a, (size_t)B * ((wide + c->group_size - 1) / c->group_size), 64);
        s->xsum = nn_arena_alloc(a, (size_t)B * ((wide + c->group_size - 1) / c->group_size) * 4, 64);
    } else {
        s->xa8 = NULL;
        s->xsh = NULL;
        s->xsum = NULL;
    }
    s->q = nn_arena_alloc(a, (size_t)B * m->q_dim * 4, 64);
    s->k = nn_arena_alloc(a, (size_t)B * m->kv_dim * 4, 64);
    s->v = nn_arena_alloc(a, (size_t)B * m->kv_dim * 4, 64);
    s->att = nn_arena_alloc(a, (size_t)B * m->q_dim * 4, 64);
    s->o = nn_arena_alloc(a, (size_t)B * c->dim * 4, 64);
    s->h1 = nn_arena_alloc(a, (size_t)B * c->hidden_dim * 4, 64);
    s->h3 = nn_arena_alloc(a, (size_t)B * c->hidden_dim * 4, 64);
    s->rope = nn_arena_alloc(a, (size_t)B * c->head_dim * 4, 64);
    s->logits = nn_arena_alloc(a, (size_t)(all_logits ? B : 1) * c->vocab_size * 4, 64);
    s->scratch_stride = scratch_of(m, seq, B).bytes;
    s->scratch = nn_arena_alloc(a, s->scratch_stride * T, 64);
    s->pool = T > 1 ? nn_arena_alloc(a, sizeof(nn_pool), 64) : NULL;
    s->claims = nn_arena_alloc(a, (size_t)T * sizeof(nn_claim_slot), 64);
}

nn_status nn_session_arena_bytes(const nn_model *m, const nn_session_opts *o, size_t *bytes)
{
    uint32_t seq, B, T;
    nn_status st = check_opts(m, o, &seq, &B, &T);
    if (st)
        return st;
    nn_arena a;
    nn_session s;
    nn_arena_init(&a, NULL, 0);
    carve(&s, m, seq, B, T, o->all_logits, &a);
    *bytes = nn_arena_needed(&a);
    return NN_OK;
}

nn_status nn_session_init(nn_session *s, const nn_model *m, const nn_session_opts *o, nn_arena *a)
{
    if (!s || !a)
        return NN_E_ARG;
    memset(s, 0, sizeof *s);
    uint32_t seq, B, T;
    nn_status st = check_opts(m, o, &seq, &B, &T);
    if (st)
        return st;
    const nn_kernels *k = nn_kernels_select_for(o->kernels, m->img->id.numerics_version);
    if (!k)
        return NN_E_ARG;
    carve(s, m, seq, B, T, o->all_logits, a);
    if (a->used > a->size) {           /* nn_arena_needed(a) now tells the caller how much */
        memset(s, 0, sizeof *s);
        return NN_E_NOMEM;
    }
    s->m = m;
    s->kern = k;
    s->max_seq = seq;
    s->max_batch = B;
    s->threads = T;
    s->all_logits = o->all_logits ? 1 : 0;
    s->prefill_chunk_macs = o->prefill_chunk_macs ? o->prefill_chunk_macs : PREFILL_CHUNK_MACS;
    if (s->pool && (st = nn_pool_start(s->pool, T))) {
        s->pool = NULL;
        return st;
    }
    return NN_OK;
}

size_t nn_kv_cache_bytes(const nn_session *s)
{
    nn_arena a;
    nn_kv_cache k;
    nn_arena_init(&a, NULL, 0);
    carve_kv(&k, s->m, s->max_seq, &a);
    return nn_arena_needed(&a);
}

nn_status nn_kv_cache_carve(const nn_session *s, nn_arena *a, nn_kv_cache *k)
{
    if (!s || !s->m || !a || !k)
        return NN_E_ARG;
    carve_kv(k, s->m, s->max_seq, a);
    if (a->used > a->size) {   /* nn_arena_needed(a) says how much it takes */
        memset(k, 0, sizeof *k);
        return NN_E_NOMEM;
    }
    return NN_OK;
}

void nn_session_kv_get(const nn_session *s, nn_kv_cache *k)
{
    *k = (nn_kv_cache){ .kc = s->kc, .vc = s->vc, .kt = s->kt, .vt = s->vt, .n_pos = s->n_pos };
}

void nn_session_kv_set(nn_session *s, const nn_kv_cache *k)
{
    s->kc = k->kc;
    s->vc = k->vc;
    s->kt = k->kt;
    s->vt = k->vt;
    s->n_pos = k->n_pos;
}

void nn_session_deinit(nn_session *s)
{
    if (!s)
        return;
    if (s->pool)
        nn_pool_stop(s->pool);
    s->pool = NULL;
}

nn_status nn_session_truncate(nn_session *s, uint32_t n_pos)
{
    if (!s || !s->m || n_pos > s->n_pos)
        return NN_E_ARG;
    s->n_pos = n_pos;
    return NN_OK;
}

nn_status nn_session_set_pos(nn_session *s, uint32_t n_pos)
{
    if (!s || !s->m || n_pos > s->max_seq)
        return NN_E_ARG;
    s->n_pos = n_pos;
    return NN_OK;
}

void nn_session_set_hook(nn_session *s, nn_layer_hook fn, void *ctx)
{
    s->hook = fn;
    s->hook_ctx = ctx;
}

/* ---- per-token operations ----------------------------------------------------------- */



/* x[i] = token embedding row, dequantised to Q16. */
static void embed(const nn_q8_mat *e, uint32_t token, int32_t *x)
{
    const int8_t *q = e->q + (size_t)token * e->cols;
    const uint16_t *mg = e->m + (size_t)token * e->ngroups;
    for (uint32_t i = 0; i < e->cols; i++)
        x[i] = nn_sat32(nn_rshift_round_i64((int64_t)q[i] * mg[i / e->group], e->exp - 16));
}

/*
 * RMSNorm of Q16 x with gains g into int16 out; returns out's scale.
 *   rms^2 = sum(x^2)/n + eps, summed exactly in 128 bits, then normalised so that an
 *   integer square root r has 31 bits. out = round(x * g / 2^t) with t chosen so that
 *   |out| < 2^15; 1/rms goes into the scale's mantissa (2^62 / r).
 */
static nn_scale rmsnorm(const nn_kernels *kern, const int32_t *x, const nn_vec_i32 *g, uint64_t eps_q32,
                        int16_t *out)
{
    uint32_t n = g->n;
    uint64_t s2[2];
    kern->sumsq_i32(x, n, s2);
    u128 ss = ((u128)s2[1] << 64) | s2[0];
    int k = 0;
    while (ss >> 62) {
        ss >>= 2;
        k += 2;
    }
    uint64_t v = (uint64_t)ss / n + (k < 64 ? eps_q32 >> k : 0);
    if (v == 0)
        v = 1;
    int j = 0;
    while (v < (1ull << 60)) {
        v <<= 2;
        j++;
    }
    uint64_t r = nn_isqrt_u64(v);                      /* [2^30, 2^31] */
    int t = kern->mul_quant_i16(x, g->v, n, out);
    uint64_t inv = (1ull << 62) / r;
    nn_scale s = { inv > 0xffffffffull ? 0xffffffffu : (uint32_t)inv, 62 - t + g->exp + k / 2 - j };
    return s;
}

/* Quantise each kv head of a Q16 row into the cache with its own exponent. */
static void kv_store(const nn_kernels *kern, const int32_t *src, uint32_t n_kv, uint32_t hd, int16_t *dst,
                     int8_t *exps)
{
    for (uint32_t h = 0; h < n_kv; h++)
        exps[h] = (int8_t)kern->quant_i32_i16(src + h * hd, hd, dst + h * hd);
}

/* ---- attention ---------------------------------------------------------------------- */

/*
 * A job's items (rows, (token, head) pairs, tokens) are claimed in chunks (nn_claim:
 * each worker's own range in order, then the back of another's) rather than split
 * evenly up front: a worker that the OS preempts (a shared machine, a thermally
 * throttled core) then delays one chunk, not its whole share. Every item is computed
 * the same way whoever claims it, so results do not depend on the schedule.
 */
typedef struct fwd_ctx {
    nn_session *s;
    uint32_t layer, l0, pos0, n_tok;   /* l0: the first layer of this layers_block */
    const nn_mm_args *mm;
    uint32_t n_mm;
    int silu0;                          /* matmul_job: silu on mm[0]'s rows as they are made */
    uint32_t a8_cols;                   /* version 2: the token steps left xa's rows as int8
                                         * in this many columns; 0: matmuls() does it */
    void (*tok_fn)(struct fwd_ctx *c, uint32_t b, uint8_t *scratch);   /* run_tokens */
    uint32_t n_items, chunk, nw;        /* the running job: items, items per claim, workers */
} fwd_ctx;

/* Worker w's next chunk of the job's items as [*lo, *hi); returns 0 when none is left. */
static int claim(fwd_ctx *c, uint32_t w, uint32_t *lo, uint32_t *hi)
{
    uint32_t k;
    if (!nn_claim(c->s->claims, c->nw, w, &k))
        return 0;
    *lo = k * c->chunk;
    *hi = c->n_items - *lo < c->chunk ? c->n_items : *lo + c->chunk;
    return 1;
}

/*
 * One head of one token at position pos:
 *   score_j = (q . k_j) * 2^(tq + tk_j - 32) / sqrt(hd), in Q16
 *   p_j     = softmax(score) in Q30
 *   out     = sum_j p_j * v_j, exact in int64 with p_j aligned to tmax, the largest V
 *             exponent over positions [0, pos]
 */
static void attend_head(const nn_session *s, uint32_t layer, uint32_t pos, uint32_t h, int tmax,
                        const int16_t *pk, const int32_t *q, int32_t *out, uint8_t *scratch)
{
    const nn_model *m = s->m;
    uint32_t hd = m->cfg.head_dim, nkv = m->cfg.n_kv_heads, n = pos + 1;
    uint32_t kvh = h / (m->cfg.n_heads / nkv);
    scratch_layout sl = scratch_of(m, s->max_seq, s->max_batch);
    int32_t *score = (int32_t *)(void *)scratch;
    int32_t *prob = (int32_t *)(void *)(scratch + sl.prob);
    int64_t *dots = (int64_t *)(void *)(scratch + sl.dots);
    int64_t *acc = (int64_t *)(void *)(scratch + sl.acc);
    int16_t *q16 = (int16_t *)(void *)(scratch + sl.q16);
    int tq = s->kern->quant_i32_i16(q, hd, q16);

    size_t base = (size_t)layer * s->max_seq;
    const int16_t *kc = s->kc + base * m->kv_dim + (size_t)kvh * hd;
    const int8_t *kt = s->kt + base * nkv + kvh;
    const int8_t *vt = s->vt + base * nkv + kvh;
    if (pk)
        s->kern->dot_rows_packed(q16, pk, hd, n, dots);
    else
        s->kern->dot_rows_i16(q16, kc, m->kv_dim, hd, n, dots);
    int32_t smax = s->kern->scores_q16(dots, kt, nkv, m->inv_sqrt_hd_q24, 40 - tq, n, score);
    int64_t sum = s->kern->softmax_exp_q30(score, smax, n, prob);
    uint64_t inv = (1ull << 62) / (uint64_t)sum;      /* sum >= 2^30: the max term is 1.0 */
    /* p_j normalised, then aligned to the largest V exponent: in [0, 2^30], so it fits
     * int32 again. */
    s->kern->probs_align(prob, inv, vt, nkv, tmax, n);
    memset(acc, 0, hd * sizeof *acc);
    s->kern->axpy_rows_i16(prob, s->vc + base * m->kv_dim + (size_t)kvh * hd, m->kv_dim, hd, n, acc);
    s->kern->round_sat_i64(acc, 30 - tmax, hd, out);
}

static void attention_job(void *arg, uint32_t w, uint32_t nw)
{
    fwd_ctx *c = arg;
    nn_session *s = c->s;
    uint32_t H = s->m->cfg.n_heads, hd = s->m->cfg.head_dim, nkv = s->m->cfg.n_kv_heads, lo, hi;
    /* The largest V exponent over positions [0, seen) of KV head kvh_seen: items
     * follow each other by position within a head, so it is extended, not rescanned. */
    uint32_t kvh_seen = UINT32_MAX, seen = 0, kvh_packed = UINT32_MAX;
    int tmax = 0;
    uint8_t *scratch = s->scratch + w * s->scratch_stride;
    size_t pk_at = scratch_of(s->m, s->max_seq, s->max_batch).pk;
    int16_t *pk = c->n_tok >= PACK_MIN_TOK && pk_at && s->kern->dot_rows_packed ? (int16_t *)(void *)(scratch + pk_at)
                                                                                 : NULL;
    (void)nw;
    /* Head-major: the items of one head (and the heads sharing its KV head) are
     * neighbours, so a prompt block's tokens meet that head's cached K and V while
     * they are still in L2. */
    while (claim(c, w, &lo, &hi))
        for (uint32_t i = lo; i < hi; i++) {
            uint32_t h = i / c->n_tok, b = i % c->n_tok, kvh = h / (H / nkv), n = c->pos0 + b + 1;
            if (kvh != kvh_seen || n < seen) {
                kvh_seen = kvh;
                seen = 0;
                tmax = 0;
            }
            const int8_t *vt = s->vt + (size_t)c->layer * s->max_seq * nkv + kvh;
            for (; seen < n; seen++)
                if (vt[(size_t)seen * nkv] > tmax)
                    tmax = vt[(size_t)seen * nkv];
            if (pk && kvh != kvh_packed) {   /* the rows of every token in the block */
                nn_pack_rows_i16(s->kc + (size_t)c->layer * s->max_seq * s->m->kv_dim + (size_t)kvh * hd,
                                 s->m->kv_dim, hd, c->pos0 + c->n_tok, pk);
                kvh_packed = kvh;
            }
            attend_head(s, c->layer, c->pos0 + b, h, tmax, pk, s->q + (size_t)b * s->m->q_dim + h * hd,
                        s->att + (size_t)b * s->m->q_dim + h * hd, scratch);
        }
}

/* Runs up to three matmuls over the same activations; their rows, laid end to end,
 * are claimed in chunks. With silu0, the rows of the first get silu in place right
 * after they are made (SwiGLU's gate: elementwise, so it needs no barrier of its own). */
static void matmul_job(void *arg, uint32_t w, uint32_t nw)
{
    fwd_ctx *c = arg;
    uint32_t lo, hi;
    (void)nw;
    while (claim(c, w, &lo, &hi))
        for (uint32_t i = 0, base = 0; i < c->n_mm && base < hi; base += c->mm[i].w->rows, i++) {
            uint32_t r0 = lo > base ? lo - base : 0, r1 = hi - base;
            if (r1 > c->mm[i].w->rows)
                r1 = c->mm[i].w->rows;
            if (r0 >= r1)
                continue;
            if (c->mm[i].a8)
                c->s->kern->matmul_q8_a8(&c->mm[i], r0, r1);
            else
                c->s->kern->matmul_q8_q16(&c->mm[i], r0, r1);
            if (i == 0 && c->silu0)
                for (uint32_t b = 0; b < c->mm[0].n_tok; b++)
                    c->s->kern->silu_q16(c->mm[0].out + (size_t)b * c->mm[0].out_stride + r0, r1 - r0);
        }
}

/* Runs fn over n items claimed `chunk` at a time: on every worker, or (split == 0, or
 * no pool) on the calling thread alone. */
static void run(nn_session *s, nn_pool_fn fn, fwd_ctx *c, uint32_t n, uint32_t chunk, int split)
{
    c->n_items = n;
    c->chunk = chunk ? chunk : 1;
    c->nw = s->pool && split ? s->threads : 1;
    nn_claims_init(s->claims, c->nw, (n + c->chunk - 1) / c->chunk);
    if (c->nw > 1)
        nn_pool_run(s->pool, fn, c);
    else
        fn(c, 0, 1);
}

/*
 * Items per claim for a job of n equal-ish items: about per_thread claims per thread.
 * Each claim is an atomic compare-and-swap; one per item (a prompt block's 4096 (token,
 * head) pairs a layer on the tinyllama shape) was about 1.3% of a 1-thread prompt's
 * profile samples.
 */
static uint32_t claim_chunk(const nn_session *s, uint32_t n, uint32_t per_thread)
{
    uint32_t k = n / (s->threads * per_thread);
    return k ? k : 1;
}

/*
 * Below this many multiply-adds a matmul job stays on the calling thread: waking the
 * workers costs about a microsecond, and at dim 64 that is more than the work.
 */
#define MIN_SPLIT_MACS 32768u

/* The smallest chunk of a few tokens' matmul a worker claims (64 KiB of int8 weights
 * for one token: about a microsecond of reading), see matmuls(). */
#define DECODE_CHUNK_MACS 65536u

static void matmuls(nn_session *s, fwd_ctx *c, const nn_mm_args *mm, uint32_t n)
{
    /* Numerics version 2: the input vectors (one set for all n matrices, which share
     * their columns and group size) as int8 in groups. */
    if (mm[0].a8 && !(c->a8_cols == mm[0].w->cols && mm[0].w->group == s->m->cfg.group_size))
        for (uint32_t b = 0; b < mm[0].n_tok; b++)
            s->kern->act8_quant(mm[0].a + (size_t)b * mm[0].a_stride, mm[0].w->cols, mm[0].w->group,
                                s->xa8 + (size_t)b * mm[0].a_stride, s->xsh + (size_t)b * mm[0].ash_stride,
                                s->xsum + (size_t)b * mm[0].ash_stride);
    uint64_t macs = 0;
    uint32_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        macs += (uint64_t)mm[i].w->rows * mm[i].w->cols * mm[i].n_tok;
        rows += mm[i].w->rows;
    }
    c->mm = mm;
    c->n_mm = n;
    /* At least two chunks per worker, in multiples of 16 rows (whole SIMD row blocks),
     * so the other worker can take a preempted or slowed worker's last chunk. A
     * worker's own chunks are one weight stream (nn_claim); when the chunks were dealt
     * from one shared counter, each started a stream the prefetch had not reached and
     * each claim was an atomic on a line both cores share, and two per worker decoded 7%
     * slower (smollm2 shape, two threads; eight 12-22%).
     * Large matrices go in up to 16 chunks per worker, of at least DECODE_CHUNK_MACS
     * (a few tokens) or s->prefill_chunk_macs (a prompt block) each. When one core runs
     * slower than the other (a busy SMT sibling under a VM, another process), the
     * others wait at the end of every matmul for up to a chunk: with the classifier in
     * four chunks the waiting worker outspun its spin budget and slept once a token,
     * and smollm2-shape 2-thread decode went 234-243 -> 271-280 tok/s with the finer
     * chunks (no change with the cores even); tinyllama-shape prefill with a busy loop
     * on one core 118 -> 127. */
    uint64_t k = macs / ((uint64_t)s->threads * (mm[0].n_tok >= 8 ? s->prefill_chunk_macs : DECODE_CHUNK_MACS));
    uint32_t per = k < 2 ? 2 : k > 16 ? 16 : (uint32_t)k;
    uint32_t chunk = (rows / (s->threads * per) + 15) & ~15u;
    run(s, matmul_job, c, rows, chunk < 16 ? 16 : chunk, macs >= MIN_SPLIT_MACS);
    c->a8_cols = 0;
}

static void tokens_job(void *arg, uint32_t w, uint32_t nw)
{
    fwd_ctx *c = arg;
    uint32_t lo, hi;
    (void)nw;
    while (claim(c, w, &lo, &hi))
        for (uint32_t b = lo; b < hi; b++)
            c->tok_fn(c, b, c->s->scratch + w * c->s->scratch_stride);
}

/* Runs fn for every token of the block on the workers, each with its own scratch; a
 * single token runs on the caller (nothing to split). */
static void run_tokens(nn_session *s, fwd_ctx *c, void (*fn)(fwd_ctx *c, uint32_t b, uint8_t *scratch))
{
    c->tok_fn = fn;
    run(s, tokens_job, c, c->n_tok, claim_chunk(s, c->n_tok, 8), c->n_tok > 1);
}

/* Runs fn, a step that leaves each token's matmul input in xa (cols columns), and with
 * it, on the same worker while the row is in L1, version 2's int8 form of the row:
 * done in parallel here, matmuls() need not do it on one thread. */
static void run_tokens_a8(nn_session *s, fwd_ctx *c, void (*fn)(fwd_ctx *c, uint32_t b, uint8_t *scratch),
                          uint32_t cols)
{
    c->a8_cols = s->xa8 ? cols : 0;
    run_tokens(s, c, fn);
}

static nn_mm_args mm_args(const nn_session *s, const nn_q8_mat *w, uint32_t n_tok, int32_t *out,
                          uint32_t out_stride)
{
    const nn_model *m = s->m;
    uint32_t stride = max3(m->cfg.dim, m->q_dim, m->cfg.hidden_dim);
    nn_mm_args a = {
        .w = w, .a = s->xa, .a_stride = stride, .as = s->xs, .n_tok = n_tok, .out = out, .out_stride = out_stride,
        .a8 = s->xa8, .ash = s->xsh, .asum = s->xsum, .ash_stride = (stride + m->cfg.group_size - 1) / m->cfg.group_size,
    };
    return a;
}

/* ---- per-token steps of a layer (run_tokens) ------------------------------------------ */

static uint32_t xa_stride(const nn_model *m) { return max3(m->cfg.dim, m->q_dim, m->cfg.hidden_dim); }

/* Row b of xa as int8 (version 2), if run_tokens_a8 asked for it. */
static void tok_a8(const fwd_ctx *c, uint32_t b)
{
    const nn_session *s = c->s;
    const nn_model *m = s->m;
    if (!c->a8_cols)
        return;
    uint32_t gs = m->cfg.group_size;
    size_t row = (size_t)b * xa_stride(m), grow = (size_t)b * ((xa_stride(m) + gs - 1) / gs);
    s->kern->act8_quant(s->xa + row, c->a8_cols, gs, s->xa8 + row, s->xsh + grow, s->xsum + grow);
}

/* x += o (the previous sublayer's output; skipped before the block's first layer, whose
 * input is complete), then the attention RMSNorm into xa. */
static void tok_attn_norm(fwd_ctx *c, uint32_t b, uint8_t *scratch)
{
    nn_session *s = c->s;
    const nn_model *m = s->m;
    uint32_t dim = m->cfg.dim;
    int32_t *x = s->x + (size_t)b * dim;
    (void)scratch;
    if (c->layer > c->l0) {
        s->kern->add_sat_i32(x, s->o + (size_t)b * dim, dim);
    }
    s->xs[b] = rmsnorm(s->kern, x, &m->layers[c->layer].att_norm, m->cfg.norm_eps_q32,
                       s->xa + (size_t)b * xa_stride(m));
    tok_a8(c, b);
}

/* RoPE on q and k, then k and v into the cache at position pos0 + b. */
static void tok_rope_store(fwd_ctx *c, uint32_t b, uint8_t *scratch)
{
    nn_session *s = c->s;
    const nn_model *m = s->m;
    uint32_t hd = m->cfg.head_dim, qd = m->q_dim, kvd = m->kv_dim, nkv = m->cfg.n_kv_heads;
    size_t row = (size_t)c->layer * s->max_seq + c->pos0 + b;
    const int32_t *sc = s->rope + (size_t)b * hd;
    (void)scratch;
    s->kern->rope_q30(s->q + (size_t)b * qd, qd, hd, sc);
    s->kern->rope_q30(s->k + (size_t)b * kvd, kvd, hd, sc);
    kv_store(s->kern, s->k + (size_t)b * kvd, nkv, hd, s->kc + row * kvd, s->kt + row * nkv);
    kv_store(s->kern, s->v + (size_t)b * kvd, nkv, hd, s->vc + row * kvd, s->vt + row * nkv);
}

/* The attention output, quantised for the output projection. */
static void tok_attn_quant(fwd_ctx *c, uint32_t b, uint8_t *scratch)
{
    nn_session *s = c->s;
    const nn_model *m = s->m;
    (void)scratch;
    s->xs[b] = nn_scale_pow2(s->kern->quant_i32_i16(s->att + (size_t)b * m->q_dim, m->q_dim,
                                                    s->xa + (size_t)b * xa_stride(m)) - 16);
    tok_a8(c, b);
}

/* x += o, then the feed-forward RMSNorm into xa. */
static void tok_ffn_norm(fwd_ctx *c, uint32_t b, uint8_t *scratch)
{
    nn_session *s = c->s;
    const nn_model *m = s->m;
    uint32_t dim = m->cfg.dim;
    int32_t *x = s->x + (size_t)b * dim;
    (void)scratch;
    s->kern->add_sat_i32(x, s->o + (size_t)b * dim, dim);
    s->xs[b] = rmsnorm(s->kern, x, &m->layers[c->layer].ffn_norm, m->cfg.norm_eps_q32,
                       s->xa + (size_t)b * xa_stride(m));
    tok_a8(c, b);
}

/* silu(h1) * h3 in Q32, quantised for the down projection. SiLU runs here unless
 * the matmul did it (silu0: one token; see layers_block). */
static void tok_swiglu_quant(fwd_ctx *c, uint32_t b, uint8_t *scratch)
{
    nn_session *s = c->s;
    const nn_model *m = s->m;
    uint32_t hid = m->cfg.hidden_dim;
    (void)scratch;
    if (!c->silu0)
        s->kern->silu_q16(s->h1 + (size_t)b * hid, hid);
    s->xs[b] = nn_scale_pow2(s->kern->mul_quant_i16(s->h1 + (size_t)b * hid, s->h3 + (size_t)b * hid, hid,
                                                    s->xa + (size_t)b * xa_stride(m)) - 32);
    tok_a8(c, b);
}

/* ---- the block forward pass ---------------------------------------------------------- */

/* sin/cos of every RoPE pair for the block's positions pos0 .. pos0+B-1. */
static void rope_block(nn_session *s, uint32_t pos0, uint32_t B)
{
    const nn_model *m = s->m;
    uint32_t hd = m->cfg.head_dim;
    for (uint32_t b = 0; b < B; b++) {
        int32_t *sc = s->rope + (size_t)b * hd;
        for (uint32_t i = 0; i < hd / 2; i++)
            nn_sincos_q30((uint64_t)(pos0 + b) * m->rope_freq[i], &sc[2 * i], &sc[2 * i + 1]);
    }
}

/*
 * Layers [l0, l1) over the block's residual stream s->x ([B][dim], Q16), for positions
 * pos0 .. pos0+B-1 (s->rope must hold their phases). Writes those layers' KV at those
 * positions; attention reads the layers' KV at positions < pos0, which must be valid.
 * last_only: of layer l1-1 the other rows need only their KV, so after its K and V
 * projections the layer goes on with the last row alone (its attention, output
 * projection and feed-forward); only row B-1 of s->x is then the layer's output.
 */
static void layers_block(nn_session *s, uint32_t pos0, uint32_t B, uint32_t l0, uint32_t l1, int last_only)
{
    const nn_model *m = s->m;
    const nn_config *c = &m->cfg;
    uint32_t dim = c->dim, hd = c->head_dim, qd = m->q_dim, kvd = m->kv_dim, hid = c->hidden_dim;
    fwd_ctx fc = { .s = s, .pos0 = pos0, .n_tok = B, .l0 = l0 };
    uint32_t nb = B;   /* rows carried on: B, or 1 after the switch in a last-only layer */

    for (uint32_t l = l0; l < l1; l++) {
        const nn_layer_w *L = &m->layers[l];
        fc.layer = l;

        run_tokens_a8(s, &fc, tok_attn_norm, dim);
        if (s->hook)
            s->hook(s->hook_ctx, l, pos0, B, s->x);
        nn_mm_args qkv[3] = {
            mm_args(s, &L->wq, B, s->q, qd), mm_args(s, &L->wk, B, s->k, kvd), mm_args(s, &L->wv, B, s->v, kvd),
        };
        matmuls(s, &fc, qkv, 3);
        run_tokens(s, &fc, tok_rope_store);
        if (last_only && l + 1 == l1 && B > 1) {
            memcpy(s->q, s->q + (size_t)(B - 1) * qd, (size_t)qd * sizeof *s->q);
            memcpy(s->x, s->x + (size_t)(B - 1) * dim, (size_t)dim * sizeof *s->x);
            fc.pos0 = pos0 + B - 1;
            fc.n_tok = nb = 1;
        }
        run(s, attention_job, &fc, nb * c->n_heads, claim_chunk(s, nb * c->n_heads, 16),
            (uint64_t)nb * c->n_heads * (fc.pos0 + nb) * hd >= MIN_SPLIT_MACS);
        run_tokens_a8(s, &fc, tok_attn_quant, qd);
        nn_mm_args wo = mm_args(s, &L->wo, nb, s->o, dim);
        matmuls(s, &fc, &wo, 1);

        run_tokens_a8(s, &fc, tok_ffn_norm, dim);
        nn_mm_args up[2] = { mm_args(s, &L->w1, nb, s->h1, hid), mm_args(s, &L->w3, nb, s->h3, hid) };
        /* SiLU on W1's rows. One token: in the matmul, as each worker makes its rows
         * (the per-token step then runs on the caller alone). A prompt block: in the
         * per-token step, split by token, so it stays even over the workers (their
         * matmul ranges are contiguous: one worker would make every W1 row) and the
         * row is in L1 for the product that follows. */
        fc.silu0 = nb == 1;
        matmuls(s, &fc, up, 2);
        run_tokens_a8(s, &fc, tok_swiglu_quant, hid);
        fc.silu0 = 0;
        nn_mm_args down = mm_args(s, &L->w2, nb, s->o, dim);
        matmuls(s, &fc, &down, 1);
    }
    if (l1 > l0) /* the last sublayer's residual add */
        s->kern->add_sat_i32(s->x, s->o, nb * dim);
    if (nb != B)
        memcpy(s->x + (size_t)(B - 1) * dim, s->x, (size_t)dim * sizeof *s->x);
    if (s->hook && l1 == c->n_layers) /* the rows that were computed to the end */
        s->hook(s->hook_ctx, l1, pos0 + B - nb, nb, s->x + (size_t)(B - nb) * dim);
}

static void forward_block(nn_session *s, const uint32_t *tokens, uint32_t B)
{
    const nn_model *m = s->m;
    for (uint32_t b = 0; b < B; b++)
        embed(&m->tok_emb, tokens[b], s->x + (size_t)b * m->cfg.dim);
    rope_block(s, s->n_pos, B);
    /* Without all_logits only the block's last row reaches the classifier; a hook may
     * want every row's output. */
    layers_block(s, s->n_pos, B, 0, m->cfg.n_layers, !s->all_logits && !s->hook);
}

/* Final norm and classifier for tokens [b0, B) of the block. */
static void logits_block(nn_session *s, uint32_t b0, uint32_t B)
{
    const nn_model *m = s->m;
    uint32_t dim = m->cfg.dim, stride = max3(dim, m->q_dim, m->cfg.hidden_dim);
    uint32_t n = B - b0;
    for (uint32_t b = 0; b < n; b++)
        s->xs[b] = rmsnorm(s->kern, s->x + (size_t)(b0 + b) * dim, &m->final_norm, m->cfg.norm_eps_q32,
                           s->xa + (size_t)b * stride);
    fwd_ctx fc = { .s = s };
    nn_mm_args cls = mm_args(s, &m->cls, n, s->logits, m->cfg.vocab_size);
    matmuls(s, &fc, &cls, 1);
}

nn_status nn_session_embed(const nn_session *s, const uint32_t *tokens, uint32_t n, int32_t *x)
{
    if (!s || !s->m || (!tokens && n) || (!x && n))
        return NN_E_ARG;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] >= s->m->cfg.vocab_size)
            return NN_E_RANGE;
    for (uint32_t i = 0; i < n; i++)
        embed(&s->m->tok_emb, tokens[i], x + (size_t)i * s->m->cfg.dim);
    return NN_OK;
}

/* run_layers and run_layers_kv: x_out gets every row's output, or (last_only) x_out,
 * when not NULL, the last row's. */
static nn_status run_layers(nn_session *s, uint32_t pos0, const int32_t *x_in, uint32_t n, uint32_t l0, uint32_t l1,
                            int32_t *x_out, int last_only)
{
    if (!s || !s->m || (!x_in && n) || l0 > l1 || l1 > s->m->cfg.n_layers)
        return NN_E_ARG;
    if (pos0 > s->max_seq || n > s->max_seq - pos0)
        return NN_E_RANGE;
    uint32_t dim = s->m->cfg.dim;
    for (uint32_t done = 0; done < n;) {
        uint32_t B = n - done < s->max_batch ? n - done : s->max_batch;
        memmove(s->x, x_in + (size_t)done * dim, (size_t)B * dim * sizeof *s->x);
        rope_block(s, pos0 + done, B);
        layers_block(s, pos0 + done, B, l0, l1, last_only);
        if (x_out && !last_only)
            memmove(x_out + (size_t)done * dim, s->x, (size_t)B * dim * sizeof *s->x);
        done += B;
        if (x_out && last_only && done == n)
            memmove(x_out, s->x + (size_t)(B - 1) * dim, (size_t)dim * sizeof *s->x);
    }
    return NN_OK;
}

nn_status nn_session_run_layers(nn_session *s, uint32_t pos0, const int32_t *x_in, uint32_t n, uint32_t l0,
                                uint32_t l1, int32_t *x_out)
{
    return run_layers(s, pos0, x_in, n, l0, l1, x_out, 0);
}

nn_status nn_session_run_layers_kv(nn_session *s, uint32_t pos0, const int32_t *x_in, uint32_t n, uint32_t l0,
                                   uint32_t l1, int32_t *x_last)
{
    return run_layers(s, pos0, x_in, n, l0, l1, x_last, 1);
}

nn_status nn_session_forward(nn_session *s, const uint32_t *tokens, uint32_t n, const int32_t **logits)
{
    if (!s || !s->m || (!tokens && n))
        return NN_E_ARG;
    if (n > s->max_seq - s->n_pos)
        return NN_E_RANGE;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] >= s->m->cfg.vocab_size)
            return NN_E_RANGE;
    for (uint32_t done = 0; done < n;) {
        uint32_t B = n - done < s->max_batch ? n - done : s->max_batch;
        forward_block(s, tokens + done, B);
        s->n_pos += B;
        done += B;
        if (done == n && logits)
            logits_block(s, s->all_logits ? 0 : B - 1, B);
    }
    if (logits)
        *logits = s->logits;
    return NN_OK;
}

/* ---- heads on given hidden states ----------------------------------------------------- */

nn_status nn_session_logits(nn_session *s, const int32_t *x, uint32_t n, int32_t *out)
{
    return nn_session_exit_logits(s, s && s->m ? s->m->cfg.n_layers : 0, x, n, out);
}

nn_status nn_session_exit_logits(nn_session *s, uint32_t layer, const int32_t *x, uint32_t n, int32_t *out)
{
    if (!s || !s->m || layer == 0 || layer > s->m->cfg.n_layers || (n && (!x || !out)))
        return NN_E_ARG;
    const nn_model *m = s->m;
    uint32_t dim = m->cfg.dim, V = m->cfg.vocab_size, stride = max3(dim, m->q_dim, m->cfg.hidden_dim);
    const nn_layer_w *L = layer < m->cfg.n_layers ? &m->layers[layer] : NULL;
    fwd_ctx fc = { .s = s };
    for (uint32_t done = 0; done < n;) {
        uint32_t B = n - done < s->max_batch ? n - done : s->max_batch;
        memmove(s->x, x + (size_t)done * dim, (size_t)B * dim * sizeof *s->x);
        if (L && L->has_exit) {
            /* x + A x: A takes x as int16 with a power-of-two scale. */
            for (uint32_t b = 0; b < B; b++)
                s->xs[b] = nn_scale_pow2(
                    s->kern->quant_i32_i16(s->x + (size_t)b * dim, dim, s->xa + (size_t)b * stride) - 16);
            nn_mm_args a = mm_args(s, &L->exit_proj, B, s->o, dim);
            matmuls(s, &fc, &a, 1);
            s->kern->add_sat_i32(s->x, s->o, B * dim);
        }
        for (uint32_t b = 0; b < B; b++)
            s->xs[b] = rmsnorm(s->kern, s->x + (size_t)b * dim, &m->final_norm, m->cfg.norm_eps_q32,
                               s->xa + (size_t)b * stride);
        nn_mm_args cls = mm_args(s, &m->cls, B, out + (size_t)done * V, V);
        matmuls(s, &fc, &cls, 1);
        done += B;
    }
    return NN_OK;
}

uint32_t nn_logits_confidence(const int32_t *logits, uint32_t vocab, int32_t *p1_q30, int32_t *margin_q16)
{
    uint32_t best = nn_argmax_i32(logits, vocab);
    int64_t second = INT64_MIN, sum = 0;
    for (uint32_t i = 0; i < vocab; i++) {
        if (i != best && logits[i] > second)
            second = logits[i];
        sum += nn_exp_q16_q30((int64_t)logits[i] - logits[best]);
    }
    /* p1 = e^0 / sum = 2^30 / sum in Q30 (sum >= 2^30). */
    if (p1_q30)
        *p1_q30 = (int32_t)(((int64_t)1 << 60) / sum);
    if (margin_q16)
        *margin_q16 = second == INT64_MIN ? INT32_MAX : nn_sat32((int64_t)logits[best] - second);
    return best;
}
