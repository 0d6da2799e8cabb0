/*
 * nn_kv.h: KV caches leave and enter sessions: prefix identity, export and import of any
 * range of layers and positions, and a codec (raw, lossless, lossy) for the stream.
 *
 * A prefix is named by a chained SHA-256 over fixed-size token blocks, seeded with the
 * model identity: two boards that read the same tokens with the same image compute the
 * same ids, block by block.
 *
 *     uint8_t ids[64][32];
 *     uint32_t nb = nn_kv_prefix_ids(&img.id, NN_KV_BLOCK, tokens, n, ids, 64);
 *
 * A KV stream is self-describing and self-checking: header (model identity, ranges,
 * codec, prefix id), the context's tokens, optional hidden states, then the payload,
 * all covered by a SHA-256 digest. Export and import work in caller buffers; the codec's
 * zstd contexts and scratch come from an nn_kv_work carved from an arena.
 *
 *     nn_kv_work w;   nn_kv_work_init(&w, &model, max_positions, &opts, &arena);
 *     nn_kv_range r = { 0, L, 0, n };
 *     nn_kv_export(&s, &r, tokens, &opts, NULL, &w, buf, cap, &len);
 *     ... on another board, same image ...
 *     uint32_t reused;
 *     nn_kv_import(&s2, buf, len, my_tokens, my_n, NULL, &w2, &reused);   // s2.n_pos == reused
 *
 * Stream header (little-endian, NN_KV_HEADER_BYTES, offsets in bytes)
 *   0 "KVMESHKV"   8 u32 version   12 u32 header_bytes   16 u8[32] fingerprint
 *   48 u32 numerics_version   52 u32 codec   56 u32 k_bits   60 u32 v_bits
 *   64 u32 k_group   68 u32 n_layers   72 u32 n_kv_heads   76 u32 head_dim
 *   80 u32 layer0   84 u32 layer1   88 u32 pos0   92 u32 pos1   96 u32 block
 *   100 u32 n_hidden   104 u32 dim   108 u32 v_group   112 u64 payload_bytes
 *   120 u8[32] prefix_id (of tokens [0, floor(pos1 / block) * block); zero if none)
 *   152 u8[32] digest: SHA-256 of the whole stream with these 32 bytes zeroed
 *   184..192 zero
 * Then tokens u32[pos1] (the whole context up to pos1), hidden layer numbers
 * u32[n_hidden], hidden states int32 Q16 [n_hidden][pos1 - pos0][dim], and the payload:
 * per layer in [layer0, layer1), the codec's encoding of that layer's K, V and
 * exponents for positions [pos0, pos1) (raw: as stored; compressed: u32 length + one
 * zstd frame per layer, so layers can be decoded one at a time).
 */
#ifndef NN_KV_H
#define NN_KV_H

#include <stddef.h>
#include <stdint.h>

#include "nn_base.h"
#include "nn_image.h"
#include "nn_model.h"

#define NN_KV_MAGIC        "KVMESHKV"
#define NN_KV_VERSION      1u
#define NN_KV_HEADER_BYTES 192u
#define NN_KV_BLOCK        16u          /* default tokens per prefix block */
#define NN_KV_MAX_HIDDEN   64u          /* hidden-state layers a stream may carry */

typedef enum nn_kv_codec {
    NN_KV_RAW      = 0,  /* int16 values and int8 exponents as the session stores them */
    NN_KV_LOSSLESS = 1,  /* bit-exact: byte planes, exponent deltas, zstd */
    NN_KV_LOSSY    = 2,  /* keys per channel over k_group positions, values per position, at
                          * k_bits / v_bits, fixed-point scales, then zstd */
} nn_kv_codec;

typedef struct nn_kv_opts {
    uint32_t codec;      /* nn_kv_codec */
    uint32_t k_bits;     /* lossy: 1..8 */
    uint32_t v_bits;     /* lossy: 1..8 */
    uint32_t k_group;    /* lossy: positions per key group; 0: 64 */
    uint32_t v_group;    /* lossy: 0 = values per position over all channels; else per
                          * channel over groups of v_group positions, like keys */
    int      level;      /* zstd level; 0: 3 */
} nn_kv_opts;

typedef struct nn_kv_range {
    uint32_t layer0, layer1;   /* [layer0, layer1) */
    uint32_t pos0, pos1;       /* [pos0, pos1) */
} nn_kv_range;

/* A parsed, digest-checked stream. Pointers point into the stream. */
typedef struct nn_kv_info {
    nn_model_id    id;
    uint32_t       codec, k_bits, v_bits, k_group, v_group;
    uint32_t       n_layers, n_kv_heads, head_dim, dim;
    nn_kv_range    r;
    uint32_t       block;
    uint8_t        prefix_id[32];
    const uint8_t *tokens;          /* u32 LE [r.pos1] */
    uint32_t       n_hidden;
    const uint8_t *hidden_layers;   /* u32 LE [n_hidden] */
    const uint8_t *hidden;          /* int32 LE [n_hidden][pos1 - pos0][dim] */
    const uint8_t *payload;
    uint64_t       payload_bytes;
    uint64_t       total_bytes;
} nn_kv_info;

/* Hidden states captured while a session computes (the input of chosen layers), so an
 * export can carry them for a receiver that recomputes those layers. */
typedef struct nn_kv_hidden {
    uint32_t  n;                          /* layers captured */
    uint32_t  layer[NN_KV_MAX_HIDDEN];
    uint32_t  dim, max_pos;
    int32_t  *x;                          /* [n][max_pos][dim] Q16, indexed by position */
} nn_kv_hidden;

/* Codec state: zstd contexts and per-layer scratch, from an arena (no heap). */
typedef struct nn_kv_work {
    void    *cctx, *dctx;       /* ZSTD_CCtx, ZSTD_DCtx (static, in the arena) */
    uint8_t *scratch;           /* per-layer transform buffer */
    size_t   scratch_bytes;
    int32_t *x;                 /* [max_pos][dim]: hidden states for layer recompute */
    uint32_t max_pos;
} nn_kv_work;

/* ---- prefix identity ------------------------------------------------------------------- */

/*
 * ids[k] names tokens [0, (k+1)*block):
 *   id_-1 = SHA-256("kvmesh prefix v1" | fingerprint | numerics u32 | block u32)
 *   id_k  = SHA-256(id_k-1 | tokens of block k as u32 LE)
 * Returns the number of full blocks (at most max_ids are written).
 */
uint32_t nn_kv_prefix_ids(const nn_model_id *id, uint32_t block, const uint32_t *tokens, uint32_t n,
                          uint8_t (*ids)[32], uint32_t max_ids);

/* ---- work area ----------------------------------------------------------------------- */

/* Bytes nn_kv_work_init carves for up to max_pos positions per stream. */
size_t nn_kv_work_bytes(const nn_model *m, uint32_t max_pos);

/* Returns NN_OK, NN_E_ARG or NN_E_NOMEM. */
nn_status nn_kv_work_init(nn_kv_work *w, const nn_model *m, uint32_t max_pos, nn_arena *a);

/* ---- hidden-state capture ------------------------------------------------------------ */

/* Bytes of arena for capturing n_layers layers over max_pos positions. */
size_t nn_kv_hidden_bytes(const nn_model *m, uint32_t n_layers, uint32_t max_pos);

/*
 * Prepares h to capture the inputs of `layers` (n <= NN_KV_MAX_HIDDEN) and installs a
 * layer hook on s; every forward call then records those layers' residual streams by
 * position. nn_session_set_hook(s, NULL, NULL) stops it.
 * Returns NN_OK, NN_E_ARG or NN_E_NOMEM.
 */
nn_status nn_kv_hidden_capture(nn_kv_hidden *h, nn_session *s, const uint32_t *layers, uint32_t n, nn_arena *a);

/* ---- export ---------------------------------------------------------------------------- */

/* Upper bound of an exported stream's size. */
size_t nn_kv_export_bound(const nn_model *m, const nn_kv_range *r, uint32_t n_hidden);

/*
 * Encodes layers [r->layer0, r->layer1) at positions [r->pos0, r->pos1) of s into out.
 * tokens holds the session's context [0, r->pos1) (the session does not keep tokens);
 * hidden (may be NULL) adds the captured hidden states for the range.
 * Returns NN_OK, NN_E_ARG (bad options), NN_E_RANGE (range outside the session's
 * positions or layers), NN_E_NOMEM (out too small: *len says how much is needed, or
 * the work area is too small for the range) or NN_E_CODEC (zstd failed).
 */
nn_status nn_kv_export(const nn_session *s, const nn_kv_range *r, const uint32_t *tokens, const nn_kv_opts *o,
                       const nn_kv_hidden *hidden, nn_kv_work *w, uint8_t *out, size_t cap, size_t *len);

/* ---- parse and import ------------------------------------------------------------------ */

/*
 * Checks a stream (every field and length, then the digest) and fills info.
 * Returns NN_OK, NN_E_TRUNCATED, NN_E_MAGIC, NN_E_VERSION, NN_E_CODEC (a codec or codec
 * parameters this build does not know) or NN_E_CORRUPT (inconsistent fields, or the
 * digest does not match).
 */
nn_status nn_kv_parse(const uint8_t *buf, size_t len, nn_kv_info *info);

typedef struct nn_kv_import_opts {
    /* Accept a stream from another image of the same architecture (a fine-tune of the
     * same base). Layers not in `recompute` are reused as they are. */
    int             other_model;
    /* [n_layers] 1 = recompute this layer locally. A run of recomputed layers that starts
     * at layer 0 starts from this model's own embeddings; any other run from the stream's
     * hidden states at its first layer, which the stream must carry. NULL = none. */
    const uint8_t  *recompute;
    /* Decode while recomputing (one helper thread). Results are identical either way. */
    int             pipeline;
} nn_kv_import_opts;

/*
 * Imports a stream into s at positions [pos0, ...), where pos0 must equal s->n_pos.
 * Positions are taken while the stream's tokens equal the caller's (tokens[0,
 * n_tokens)), so a cache is never applied to a different context; *reused receives the
 * end of what was taken. A stream of all layers then moves n_pos there; a stream of some
 * layers fills their rows and leaves n_pos to the caller (nn_session_set_pos once every
 * layer is in). Nothing is written below s->n_pos, and n_pos only moves when the whole
 * import succeeded: a rejected stream leaves the session as it was.
 * Returns NN_OK, NN_E_ARG, NN_E_TRUNCATED/NN_E_MAGIC/NN_E_VERSION/NN_E_CODEC/NN_E_CORRUPT
 * (bad stream, as nn_kv_parse; also NN_E_CODEC when a payload fails to decode), NN_E_MODEL (another model identity, or another shape with other_model),
 * NN_E_RANGE (pos0 != n_pos, or past max_seq), NN_E_NOMEM (work area too small) or
 * NN_E_THREAD.
 */
nn_status nn_kv_import(nn_session *s, const uint8_t *buf, size_t len, const uint32_t *tokens, uint32_t n_tokens,
                       const nn_kv_import_opts *o, nn_kv_work *w, uint32_t *reused);

/* ---- hidden states on the wire (split and early-exit inference) ------------------------- */

/*
 * A block of residual-stream rows (int32 Q16 [n][dim]) between boards:
 *   NN_HIDDEN_EXACT  lossless: four byte planes, then zstd. What the peer computes from
 *                    it is bit-identical to running the model in one place.
 *   NN_HIDDEN_INT8   one power-of-two exponent and dim int8 values per row (round to
 *                    nearest), then zstd: about a quarter of the exact size, and no
 *                    longer bit-identical (measured in README).
 * Encoding: u8 mode, 3 zero bytes, u32 n, u32 dim, u32 zstd length, zstd frame.
 */
typedef enum nn_hidden_mode { NN_HIDDEN_EXACT = 0, NN_HIDDEN_INT8 = 1 } nn_hidden_mode;

/* Upper bound of an encoded block; the work area must have scratch for n*dim*4 bytes. */
size_t nn_hidden_bound(uint32_t n, uint32_t dim);

/* Returns NN_OK, NN_E_ARG, NN_E_NOMEM (out or the work scratch too small) or NN_E_CODEC. */
nn_status nn_hidden_encode(const int32_t *x, uint32_t n, uint32_t dim, uint32_t mode, nn_kv_work *w, uint8_t *out,
                           size_t cap, size_t *len);

/*
 * Decodes into x ([n][dim]); n and dim must be what the sender encoded (checked).
 * Returns NN_OK, NN_E_ARG, NN_E_NOMEM, NN_E_TRUNCATED or NN_E_CODEC.
 */
nn_status nn_hidden_decode(const uint8_t *in, size_t len, uint32_t n, uint32_t dim, nn_kv_work *w, int32_t *x);

/* Bits per K or V value of a stream: 8 * total bytes / (layers * positions * kv_dim * 2). */
uint32_t nn_kv_bits_per_value_x1000(const nn_kv_info *info);

/* "raw", "lossless", "lossy"; and parsing of "raw", "lossless", "k3v2"-style names. */
const char *nn_kv_codec_name(uint32_t codec);
nn_status nn_kv_parse_codec(const char *name, nn_kv_opts *o);

#endif
