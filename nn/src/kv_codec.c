/*
 * Per-layer KV codecs.
 *
 * lossless: the layer's K and V (int16 [pos][channel]) as byte planes, exponents as
 *   differences along positions, then zstd (see lossless_forward for what was measured).
 * lossy: keys are quantised per channel over groups of k_group positions, values per
 *   position over all channels (as KIVI), each group as min + q * step with q in
 *   [0, 2^bits - 1], in integers at the group's largest exponent. The decoded values go
 *   back into the cache format (int16, one exponent per position and head).
 * Compressed layers are a u32 length and one zstd frame.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "kv_codec.h"
#include "nn_fixed.h"

kv_params kv_params_of(const nn_kv_opts *o)
{
    kv_params p = { o->codec, 0, 0, 0, 0, o->level ? o->level : KV_DEFAULT_LEVEL };
    if (o->codec == NN_KV_LOSSY) {
        p.k_bits = o->k_bits;
        p.v_bits = o->v_bits;
        p.k_group = o->k_group ? o->k_group : KV_DEFAULT_GROUP;
        p.v_group = o->v_group;
    }
    return p;
}

nn_status kv_params_check(const kv_params *p)
{
    if (p->codec != NN_KV_LOSSY)
        return p->k_bits || p->v_bits || p->k_group || p->v_group ? NN_E_CODEC : NN_OK;
    return p->k_bits >= 1 && p->k_bits <= 8 && p->v_bits >= 1 && p->v_bits <= 8 && p->k_group >= 8 &&
                   p->k_group <= 65536 && (p->v_group == 0 || (p->v_group >= 8 && p->v_group <= 65536))
               ? NN_OK
               : NN_E_CODEC;
}

kv_layer_view kv_layer_of(const nn_session *s, uint32_t layer, uint32_t pos0, uint32_t npos)
{
    size_t row = (size_t)layer * s->max_seq + pos0;
    uint32_t kvd = s->m->kv_dim, nkv = s->m->cfg.n_kv_heads;
    kv_layer_view v = { s->kc + row * kvd, s->vc + row * kvd, s->kt + row * nkv, s->vt + row * nkv, npos };
    return v;
}

static size_t raw_bytes(const kv_shape *sh, uint32_t npos)
{
    return (size_t)npos * sh->kvd * 4 + (size_t)npos * sh->n_kv * 2;
}

/* Layout of a lossy layer before zstd. */
typedef struct lossy_layout {
    uint32_t ng;                         /* key groups along positions */
    size_t ke, kp, ve, vp, kq, vq, bytes;
} lossy_layout;

static lossy_layout lossy_of(const kv_shape *sh, uint32_t npos, const kv_params *p)
{
    lossy_layout l;
    l.ng = (npos + p->k_group - 1) / p->k_group;
    uint32_t ngv = p->v_group ? (npos + p->v_group - 1) / p->v_group : 0;
    l.ke = 0;                                                    /* int8 [n_kv][ng] */
    l.kp = l.ke + (size_t)sh->n_kv * l.ng;                       /* (i16 min, u16 step) [n_kv][ng][hd] */
    l.ve = l.kp + (size_t)sh->kvd * l.ng * 4;                    /* per position: int8 [npos]; per channel: [n_kv][ngv] */
    l.vp = l.ve + (p->v_group ? (size_t)sh->n_kv * ngv : npos);  /* (i16, u16) [npos] or [n_kv][ngv][hd] */
    l.kq = l.vp + (p->v_group ? (size_t)sh->kvd * ngv * 4 : (size_t)npos * 4);   /* k_bits per key */
    l.vq = l.kq + ((size_t)npos * sh->kvd * p->k_bits + 7) / 8;  /* v_bits per value */
    l.bytes = l.vq + ((size_t)npos * sh->kvd * p->v_bits + 7) / 8;
    return l;
}

size_t kv_layer_scratch_bytes(const kv_shape *sh, uint32_t max_pos)
{
    kv_params worst = { NN_KV_LOSSY, 8, 8, 8, 8, 0 };
    size_t a = raw_bytes(sh, max_pos), b = lossy_of(sh, max_pos, &worst).bytes;
    return ((a > b ? a : b) + 63) & ~(size_t)63;
}

size_t kv_layer_bound(const kv_shape *sh, uint32_t npos)
{
    return 4 + ZSTD_compressBound(kv_layer_scratch_bytes(sh, npos));
}

nn_status kv_zstd_init(nn_kv_work *w, size_t max_src, nn_arena *a)
{
    /* Size the compression context for the largest need over the levels we accept. */
    size_t csize = 0;
    for (int lv = 1; lv <= KV_MAX_LEVEL; lv++) {
        size_t c = ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(lv, max_src, 0));
        if (c > csize)
            csize = c;
    }
    size_t dsize = ZSTD_estimateDCtxSize();
    void *cm = nn_arena_alloc(a, csize, 64), *dm = nn_arena_alloc(a, dsize, 64);
    if (!cm || !dm)
        return NN_E_NOMEM;
    w->cctx = ZSTD_initStaticCCtx(cm, csize);
    w->dctx = ZSTD_initStaticDCtx(dm, dsize);
    return w->cctx && w->dctx ? NN_OK : NN_E_NOMEM;
}

/* ---- bit packing (LSB first) ------------------------------------------------------------- */

typedef struct bitio { uint8_t *p; size_t bit; } bitio;

static void put_bits(bitio *b, uint32_t v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++, b->bit++) {
        if (v >> i & 1)
            b->p[b->bit >> 3] |= (uint8_t)(1u << (b->bit & 7));
    }
}

static uint32_t get_bits(bitio *b, uint32_t n)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < n; i++, b->bit++)
        v |= (uint32_t)(b->p[b->bit >> 3] >> (b->bit & 7) & 1) << i;
    return v;
}

static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- lossless transform ------------------------------------------------------------------- */

/*
 * Values as two byte planes (low bytes, then high bytes) in position order; exponents
 * per head as differences along positions (they rarely change). Measured on the real
 * 260K models, reordering by channel or delta-coding the int16 values along positions
 * costs 0.3-0.5 bits per value against this: at 15 bits of precision per value the low
 * byte is noise, and RoPE decorrelates a key channel's neighbours.
 */
static void lossless_forward(const kv_shape *sh, const kv_layer_view *v, uint8_t *o)
{
    uint32_t n = v->npos, nkv = sh->n_kv;
    size_t vals = (size_t)n * sh->kvd;
    const int16_t *src[2] = { v->k, v->v };
    for (int t = 0; t < 2; t++) {
        uint8_t *lo = o + (size_t)t * 2 * vals, *hi = lo + vals;
        for (size_t i = 0; i < vals; i++) {
            uint16_t x = (uint16_t)src[t][i];
            lo[i] = (uint8_t)x;
            hi[i] = (uint8_t)(x >> 8);
        }
    }
    const int8_t *ex[2] = { v->kt, v->vt };
    uint8_t *eo = o + 4 * vals;
    for (int t = 0; t < 2; t++)
        for (uint32_t h = 0; h < nkv; h++) {
            uint8_t prev = 0;
            for (uint32_t j = 0; j < n; j++) {
                uint8_t cur = (uint8_t)ex[t][(size_t)j * nkv + h];
                eo[((size_t)t * nkv + h) * n + j] = (uint8_t)(cur - prev);
                prev = cur;
            }
        }
}

/* Inverse of lossless_forward for n stream positions; writes the first dst->npos. */
static void lossless_inverse(const kv_shape *sh, uint32_t n, const uint8_t *o, const kv_layer_view *dst)
{
    uint32_t nkv = sh->n_kv, take = dst->npos;
    size_t vals = (size_t)n * sh->kvd, keep = (size_t)take * sh->kvd;
    int16_t *out[2] = { dst->k, dst->v };
    for (int t = 0; t < 2; t++) {
        const uint8_t *lo = o + (size_t)t * 2 * vals, *hi = lo + vals;
        for (size_t i = 0; i < keep; i++)
            out[t][i] = (int16_t)(uint16_t)(lo[i] | hi[i] << 8);
    }
    int8_t *ex[2] = { dst->kt, dst->vt };
    const uint8_t *eo = o + 4 * vals;
    for (int t = 0; t < 2; t++)
        for (uint32_t h = 0; h < nkv; h++) {
            uint8_t cur = 0;
            for (uint32_t j = 0; j < take; j++) {
                cur = (uint8_t)(cur + eo[((size_t)t * nkv + h) * n + j]);
                ex[t][(size_t)j * nkv + h] = (int8_t)cur;
            }
        }
}

/* ---- lossy transform ---------------------------------------------------------------------- */

/* Integer min + q * step quantiser for one group; returns step. */
static uint32_t group_step(int32_t mn, int32_t mx, uint32_t bits)
{
    uint32_t levels = (1u << bits) - 1, range = (uint32_t)(mx - mn);
    return range ? (range + levels - 1) / levels : 0;
}

static int16_t clamp16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32767 ? -32767 : v); }

/*
 * Per channel over groups of `group` positions: one exponent per (head, group), min and
 * step per (channel, group), then `nbits` per value. Used for keys, and for values when
 * they are grouped by channel too.
 */
static void quant_channels(const kv_shape *sh, uint32_t n, uint32_t group, uint32_t nbits, const int16_t *x,
                           const int8_t *ex, uint8_t *eo, uint8_t *po, bitio *q)
{
    uint32_t kvd = sh->kvd, nkv = sh->n_kv, hd = sh->hd, ng = (n + group - 1) / group;
    for (uint32_t h = 0; h < nkv; h++)
        for (uint32_t g = 0; g < ng; g++) {
            uint32_t j0 = g * group, j1 = j0 + group < n ? j0 + group : n;
            int E = 0;
            for (uint32_t j = j0; j < j1; j++)
                if (ex[(size_t)j * nkv + h] > E)
                    E = ex[(size_t)j * nkv + h];
            eo[(size_t)h * ng + g] = (uint8_t)E;
            for (uint32_t d = 0; d < hd; d++) {
                uint32_t c = h * hd + d;
                int32_t mn = INT32_MAX, mx = INT32_MIN;
                for (uint32_t j = j0; j < j1; j++) {
                    int32_t v = (int32_t)nn_rshift_round_i64(x[(size_t)j * kvd + c], E - ex[(size_t)j * nkv + h]);
                    mn = v < mn ? v : mn;
                    mx = v > mx ? v : mx;
                }
                uint32_t step = group_step(mn, mx, nbits);
                uint8_t *pp = po + (((size_t)h * ng + g) * hd + d) * 4;
                wr16(pp, (uint16_t)(int16_t)mn);
                wr16(pp + 2, (uint16_t)step);
                for (uint32_t j = j0; j < j1; j++) {
                    int32_t v = (int32_t)nn_rshift_round_i64(x[(size_t)j * kvd + c], E - ex[(size_t)j * nkv + h]);
                    put_bits(q, step ? (uint32_t)(v - mn + (int32_t)(step / 2)) / step : 0, nbits);
                }
            }
        }
}

static nn_status dequant_channels(const kv_shape *sh, uint32_t n, uint32_t take, uint32_t group, uint32_t nbits,
                                  const uint8_t *eo, const uint8_t *po, bitio *q, int16_t *x, int8_t *ex)
{
    uint32_t kvd = sh->kvd, nkv = sh->n_kv, hd = sh->hd, ng = (n + group - 1) / group;
    for (uint32_t h = 0; h < nkv; h++)
        for (uint32_t g = 0; g < ng; g++) {
            uint32_t j0 = g * group, j1 = j0 + group < n ? j0 + group : n;
            int8_t E = (int8_t)eo[(size_t)h * ng + g];
            if (E < 0 || E > 31)
                return NN_E_CODEC;
            for (uint32_t d = 0; d < hd; d++) {
                const uint8_t *pp = po + (((size_t)h * ng + g) * hd + d) * 4;
                int32_t mn = (int16_t)rd16(pp);
                uint32_t step = rd16(pp + 2);
                for (uint32_t j = j0; j < j1; j++) {
                    uint32_t v = get_bits(q, nbits);
                    if (j < take) {
                        x[(size_t)j * kvd + h * hd + d] = clamp16(mn + (int32_t)(v * step));
                        ex[(size_t)j * nkv + h] = E;
                    }
                }
            }
        }
    return NN_OK;
}

/* Per position over all channels: one exponent, min and step, then nbits per value. */
static void quant_tokens(const kv_shape *sh, uint32_t n, uint32_t nbits, const int16_t *x, const int8_t *ex,
                         uint8_t *eo, uint8_t *po, bitio *q)
{
    uint32_t kvd = sh->kvd, nkv = sh->n_kv, hd = sh->hd;
    for (uint32_t j = 0; j < n; j++) {
        int E = 0;
        for (uint32_t h = 0; h < nkv; h++)
            if (ex[(size_t)j * nkv + h] > E)
                E = ex[(size_t)j * nkv + h];
        eo[j] = (uint8_t)E;
        int32_t mn = INT32_MAX, mx = INT32_MIN;
        for (uint32_t c = 0; c < kvd; c++) {
            int32_t v = (int32_t)nn_rshift_round_i64(x[(size_t)j * kvd + c], E - ex[(size_t)j * nkv + c / hd]);
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        uint32_t step = group_step(mn, mx, nbits);
        wr16(po + (size_t)j * 4, (uint16_t)(int16_t)mn);
        wr16(po + (size_t)j * 4 + 2, (uint16_t)step);
        for (uint32_t c = 0; c < kvd; c++) {
            int32_t v = (int32_t)nn_rshift_round_i64(x[(size_t)j * kvd + c], E - ex[(size_t)j * nkv + c / hd]);
            put_bits(q, step ? (uint32_t)(v - mn + (int32_t)(step / 2)) / step : 0, nbits);
        }
    }
}

static nn_status dequant_tokens(const kv_shape *sh, uint32_t n, uint32_t take, uint32_t nbits, const uint8_t *eo,
                                const uint8_t *po, bitio *q, int16_t *x, int8_t *ex)
{
    uint32_t kvd = sh->kvd, nkv = sh->n_kv;
    for (uint32_t j = 0; j < n; j++) {
        int8_t E = (int8_t)eo[j];
        if (E < 0 || E > 31)
            return NN_E_CODEC;
        int32_t mn = (int16_t)rd16(po + (size_t)j * 4);
        uint32_t step = rd16(po + (size_t)j * 4 + 2);
        for (uint32_t c = 0; c < kvd; c++) {
            uint32_t v = get_bits(q, nbits);
            if (j < take)
                x[(size_t)j * kvd + c] = clamp16(mn + (int32_t)(v * step));
        }
        if (j < take)
            for (uint32_t h = 0; h < nkv; h++)
                ex[(size_t)j * nkv + h] = E;
    }
    return NN_OK;
}

static void lossy_forward(const kv_shape *sh, const kv_layer_view *v, const kv_params *p, uint8_t *o)
{
    lossy_layout L = lossy_of(sh, v->npos, p);
    memset(o, 0, L.bytes);
    bitio kq = { o + L.kq, 0 }, vq = { o + L.vq, 0 };
    quant_channels(sh, v->npos, p->k_group, p->k_bits, v->k, v->kt, o + L.ke, o + L.kp, &kq);
    if (p->v_group)
        quant_channels(sh, v->npos, p->v_group, p->v_bits, v->v, v->vt, o + L.ve, o + L.vp, &vq);
    else
        quant_tokens(sh, v->npos, p->v_bits, v->v, v->vt, o + L.ve, o + L.vp, &vq);
}

static nn_status lossy_inverse(const kv_shape *sh, uint32_t n, const kv_params *p, const uint8_t *o,
                               const kv_layer_view *dst)
{
    lossy_layout L = lossy_of(sh, n, p);
    bitio kq = { (uint8_t *)(uintptr_t)(o + L.kq), 0 }, vq = { (uint8_t *)(uintptr_t)(o + L.vq), 0 };
    nn_status st = dequant_channels(sh, n, dst->npos, p->k_group, p->k_bits, o + L.ke, o + L.kp, &kq, dst->k, dst->kt);
    if (st)
        return st;
    if (p->v_group)
        return dequant_channels(sh, n, dst->npos, p->v_group, p->v_bits, o + L.ve, o + L.vp, &vq, dst->v, dst->vt);
    return dequant_tokens(sh, n, dst->npos, p->v_bits, o + L.ve, o + L.vp, &vq, dst->v, dst->vt);
}

/* ---- layer encode / decode ------------------------------------------------------------------ */

nn_status kv_layer_encode(const kv_shape *sh, const kv_layer_view *v, const kv_params *p, nn_kv_work *w,
                          uint8_t *out, size_t cap, size_t *used)
{
    uint32_t n = v->npos, kvd = sh->kvd, nkv = sh->n_kv;
    if (p->codec == NN_KV_RAW) {
        size_t need = raw_bytes(sh, n);
        if (cap < need)
            return NN_E_NOMEM;
        size_t vals = (size_t)n * kvd;
        memcpy(out, v->k, vals * 2);
        memcpy(out + vals * 2, v->v, vals * 2);
        memcpy(out + vals * 4, v->kt, (size_t)n * nkv);
        memcpy(out + vals * 4 + (size_t)n * nkv, v->vt, (size_t)n * nkv);
        *used = need;
        return NN_OK;
    }
    size_t src;
    if (p->codec == NN_KV_LOSSLESS) {
        src = raw_bytes(sh, n);
        lossless_forward(sh, v, w->scratch);
    } else {
        src = lossy_of(sh, n, p).bytes;
        lossy_forward(sh, v, p, w->scratch);
    }
    if (cap < 4)
        return NN_E_NOMEM;
    size_t z = ZSTD_compressCCtx(w->cctx, out + 4, cap - 4, w->scratch, src, p->level);
    if (ZSTD_isError(z))
        return ZSTD_getErrorCode(z) == ZSTD_error_dstSize_tooSmall ? NN_E_NOMEM : NN_E_CODEC;
    nn_wr32(out, (uint32_t)z);
    *used = 4 + z;
    return NN_OK;
}

nn_status kv_layer_decode(const kv_shape *sh, const kv_params *p, uint32_t npos, const kv_layer_view *dst,
                          nn_kv_work *w, const uint8_t *in, size_t avail, size_t *used)
{
    if (p->codec == NN_KV_RAW) {
        size_t need = raw_bytes(sh, npos), vals = (size_t)npos * sh->kvd;
        if (avail < need)
            return NN_E_CODEC;
        if (dst) {
            size_t t = (size_t)dst->npos * sh->kvd, te = (size_t)dst->npos * sh->n_kv;
            memcpy(dst->k, in, t * 2);
            memcpy(dst->v, in + vals * 2, t * 2);
            memcpy(dst->kt, in + vals * 4, te);
            memcpy(dst->vt, in + vals * 4 + (size_t)npos * sh->n_kv, te);
        }
        *used = need;
        return NN_OK;
    }
    if (avail < 4)
        return NN_E_CODEC;
    size_t z = nn_rd32(in);
    if (z > avail - 4)
        return NN_E_CODEC;
    *used = 4 + z;
    if (!dst)
        return NN_OK;
    size_t want = p->codec == NN_KV_LOSSLESS ? raw_bytes(sh, npos) : lossy_of(sh, npos, p).bytes;
    if (want > w->scratch_bytes)
        return NN_E_NOMEM;
    size_t got = ZSTD_decompressDCtx(w->dctx, w->scratch, want, in + 4, z);
    if (ZSTD_isError(got) || got != want)
        return NN_E_CODEC;
    if (p->codec == NN_KV_LOSSLESS) {
        lossless_inverse(sh, npos, w->scratch, dst);
        return NN_OK;
    }
    return lossy_inverse(sh, npos, p, w->scratch, dst);
}
