/*
 * llama2.c legacy checkpoints: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier),
 * then fp32 tensors in a fixed order. The file size must match the header exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

typedef struct l2c {
    const uint8_t *data;
    size_t size;
    size_t off[NN_T_TOKENIZER + 1];    /* byte offset of each tensor kind (layer 0) */
    size_t per_layer[NN_T_TOKENIZER + 1]; /* floats per layer of that kind */
} l2c;

static int l2c_read(kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n)
{
    l2c *c = s->impl;
    if (kind > NN_T_TOKENIZER || !c->per_layer[kind]) {
        snprintf(s->err, sizeof s->err, "llama2.c checkpoints have no tensor of kind %u", kind);
        return -1;
    }
    size_t off = c->off[kind] + (layer == NN_LAYER_NONE ? 0 : (size_t)layer * c->per_layer[kind] * 4);
    if (n != c->per_layer[kind] || off + n * 4 > c->size) {
        snprintf(s->err, sizeof s->err, "internal: tensor %u/%u out of range", kind, layer);
        return -1;
    }
    memcpy(dst, c->data + off, n * 4);
    return 0;
}

static void l2c_close(kt_source *s)
{
    l2c *c = s->impl;
    if (c) {
        kt_unmap(c->data, c->size);
        free(c);
    }
    kt_vocab_free(&s->vocab);
    s->impl = NULL;
}

int kt_open_llama2c(kt_source *s, const char *ckpt, const char *tokenizer)
{
    memset(s, 0, sizeof *s);
    l2c *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    s->impl = c;
    s->read = l2c_read;
    s->close = l2c_close;
    if (kt_map(ckpt, &c->data, &c->size)) {
        snprintf(s->err, sizeof s->err, "cannot read checkpoint %s", ckpt);
        goto fail;
    }
    if (c->size < 28) {
        snprintf(s->err, sizeof s->err, "checkpoint %s is truncated: %zu bytes, shorter than its 28-byte header",
                 ckpt, c->size);
        goto fail;
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++)
        h[i] = (int32_t)nn_rd32(c->data + 4 * i);
    int tied = h[5] > 0;
    int64_t dim = h[0], hid = h[1], L = h[2], H = h[3], KV = h[4], V = h[5] < 0 ? -(int64_t)h[5] : h[5], S = h[6];
    if (dim <= 0 || hid <= 0 || L <= 0 || H <= 0 || KV <= 0 || V == 0 || S <= 0 || dim % H || H % KV ||
        (dim / H) % 2 || dim > NN_MAX_DIM || hid > 4 * (int64_t)NN_MAX_DIM || L > NN_MAX_LAYERS ||
        V > NN_MAX_VOCAB || S > NN_MAX_SEQ || dim / H > NN_MAX_HEAD_DIM) {
        snprintf(s->err, sizeof s->err,
                 "checkpoint %s has an invalid header: dim=%d hidden=%d layers=%d heads=%d kv_heads=%d vocab=%d seq=%d",
                 ckpt, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        goto fail;
    }
    int64_t hs = dim / H, kvd = KV * hs;
    struct { uint32_t kind; int64_t n; int layered; } order[] = {
        { NN_T_TOK_EMB, V * dim, 0 },  { NN_T_ATT_NORM, dim, 1 }, { NN_T_WQ, dim * dim, 1 },
        { NN_T_WK, kvd * dim, 1 },     { NN_T_WV, kvd * dim, 1 }, { NN_T_WO, dim * dim, 1 },
        { NN_T_FFN_NORM, dim, 1 },     { NN_T_W1, hid * dim, 1 }, { NN_T_W2, dim * hid, 1 },
        { NN_T_W3, hid * dim, 1 },     { NN_T_FINAL_NORM, dim, 0 },
        { 0, S * hs / 2 * 2, 0 },      /* the two unused RoPE tables */
        { NN_T_CLS, tied ? 0 : V * dim, 0 },
    };
    int64_t off = 28;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (order[i].kind) {
            c->off[order[i].kind] = (size_t)off;
            c->per_layer[order[i].kind] = (size_t)order[i].n;
        }
        off += order[i].n * 4 * (order[i].layered ? L : 1);
    }
    if ((int64_t)c->size < off) {
        snprintf(s->err, sizeof s->err,
                 "checkpoint %s is truncated: %zu bytes, but its header (dim=%lld layers=%lld vocab=%lld) needs %lld",
                 ckpt, c->size, (long long)dim, (long long)L, (long long)V, (long long)off);
        goto fail;
    }
    if ((int64_t)c->size > off) {
        snprintf(s->err, sizeof s->err,
                 "checkpoint %s has %lld bytes more than its header describes (%zu vs %lld): header and size disagree",
                 ckpt, (long long)((int64_t)c->size - off), c->size, (long long)off);
        goto fail;
    }
    s->cfg.dim = (uint32_t)dim;
    s->cfg.hidden_dim = (uint32_t)hid;
    s->cfg.n_layers = (uint32_t)L;
    s->cfg.n_heads = (uint32_t)H;
    s->cfg.n_kv_heads = (uint32_t)KV;
    s->cfg.head_dim = (uint32_t)hs;
    s->cfg.vocab_size = (uint32_t)V;
    s->cfg.max_seq = (uint32_t)S;
    s->cfg.flags = tied ? NN_IMG_FLAG_TIED_CLASSIFIER : 0;
    s->rope_theta = 10000.0;
    s->norm_eps = 1e-5;
    if (kt_vocab_read_llama2c(&s->vocab, tokenizer, (uint32_t)V, s->err, sizeof s->err))
        goto fail;
    return 0;
fail:
    l2c_close(s);
    return -1;
}
