/*
 * Private: per-layer KV codecs (raw, lossless, lossy) and their zstd plumbing. A layer's
 * encoding is self-delimiting, so a stream can be decoded one layer at a time.
 */
#ifndef NN_KV_CODEC_H
#define NN_KV_CODEC_H

#include "nn_kv.h"

#define KV_MAX_LEVEL  9      /* zstd levels 1..9: contexts are sized for the worst of them */
#define KV_DEFAULT_LEVEL 3
#define KV_DEFAULT_GROUP 64

typedef struct kv_shape {
    uint32_t n_kv, hd, kvd;
} kv_shape;

static inline kv_shape kv_shape_of(uint32_t n_kv, uint32_t hd)
{
    kv_shape s = { n_kv, hd, n_kv * hd };
    return s;
}

/* Codec parameters with defaults applied (bits and group 0 unless lossy). */
typedef struct kv_params {
    uint32_t codec, k_bits, v_bits, k_group, v_group;
    int      level;
} kv_params;

kv_params kv_params_of(const nn_kv_opts *o);
nn_status kv_params_check(const kv_params *p);

/* One layer's rows of a session cache, for npos positions. */
typedef struct kv_layer_view {
    int16_t *k, *v;       /* [npos][kvd] */
    int8_t  *kt, *vt;     /* [npos][n_kv] */
    uint32_t npos;
} kv_layer_view;

kv_layer_view kv_layer_of(const nn_session *s, uint32_t layer, uint32_t pos0, uint32_t npos);

/* Scratch one layer needs for up to max_pos positions, and an encoded layer's maximum. */
size_t kv_layer_scratch_bytes(const kv_shape *sh, uint32_t max_pos);
size_t kv_layer_bound(const kv_shape *sh, uint32_t npos);

nn_status kv_zstd_init(nn_kv_work *w, size_t max_src, nn_arena *a);

/* Encodes v into out; *used receives the bytes written. */
nn_status kv_layer_encode(const kv_shape *sh, const kv_layer_view *v, const kv_params *p, nn_kv_work *w,
                          uint8_t *out, size_t cap, size_t *used);

/*
 * Decodes one layer of npos positions from in; writes its first dst->npos positions into
 * dst, or only measures the layer when dst is NULL. *used receives the bytes consumed.
 * Returns NN_OK or NN_E_CODEC.
 */
nn_status kv_layer_decode(const kv_shape *sh, const kv_params *p, uint32_t npos, const kv_layer_view *dst,
                          nn_kv_work *w, const uint8_t *in, size_t avail, size_t *used);

#endif
