/*
 * GGUF (version 3) llama models: tensors F32, F16, BF16 and Q8_0, tokenizer from the
 * metadata.
 *
 * q/k layout: llama.cpp's convert_hf_to_gguf.py permutes Hugging Face's q_proj and
 * k_proj back to Meta's interleaved-pair order (llama.cpp's llama architecture uses
 * "normal" RoPE over adjacent pairs), which is this engine's order: nothing to undo.
 *
 * Tokenizers: tokenizer.ggml.model "llama" is SentencePiece BPE by score, which is
 * exactly kind NN_TOK_LLAMA2C (llama.cpp's SPM tokenizer merges the best-scoring
 * string, leftmost first, like llama2.c); "gpt2" is byte-level BPE with merge ranks,
 * kind NN_TOK_BPE, with the pre-tokenizer named by tokenizer.ggml.pre.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "gguf.h"
#include "kvsource.h"

typedef struct ggsrc {
    kt_gguf g;
} ggsrc;

static void name_of(uint32_t kind, uint32_t layer, char *out, size_t n)
{
    static const char *per_layer[] = {
        [NN_T_ATT_NORM] = "attn_norm", [NN_T_WQ] = "attn_q", [NN_T_WK] = "attn_k", [NN_T_WV] = "attn_v",
        [NN_T_WO] = "attn_output", [NN_T_FFN_NORM] = "ffn_norm", [NN_T_W1] = "ffn_gate", [NN_T_W2] = "ffn_down",
        [NN_T_W3] = "ffn_up",
    };
    if (kind == NN_T_TOK_EMB)
        snprintf(out, n, "token_embd.weight");
    else if (kind == NN_T_FINAL_NORM)
        snprintf(out, n, "output_norm.weight");
    else if (kind == NN_T_CLS)
        snprintf(out, n, "output.weight");
    else if (kind <= NN_T_W3 && per_layer[kind])
        snprintf(out, n, "blk.%u.%s.weight", layer, per_layer[kind]);
    else
        snprintf(out, n, "?");
}

/* The tensor for (kind, layer), checked against rows x cols (ne = [cols, rows]). */
static const kt_gguf_tensor *tensor(kt_source *s, uint32_t kind, uint32_t layer, uint32_t rows, uint32_t cols)
{
    ggsrc *h = s->impl;
    char name[96];
    name_of(kind, layer, name, sizeof name);
    const kt_gguf_tensor *t = kt_gguf_tensor_find(&h->g, name);
    if (!t) {
        snprintf(s->err, sizeof s->err, "tensor %s is missing", name);
        return NULL;
    }
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) {
        snprintf(s->err, sizeof s->err, "tensor %s has shape [%llu,%llu,%llu,%llu] (ne), expected [%u,%u]", name,
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                 (unsigned long long)t->ne[3], cols, rows);
        return NULL;
    }
    if (t->type != KT_GGML_F32 && t->type != KT_GGML_F16 && t->type != KT_GGML_BF16 && t->type != KT_GGML_Q8_0) {
        snprintf(s->err, sizeof s->err, "tensor %s has type %s; only F32, F16, BF16 and Q8_0 are supported", name,
                 kt_ggml_type_name(t->type));
        return NULL;
    }
    return t;
}

static void shape_of(const nn_config *c, uint32_t kind, size_t n, uint32_t *rows, uint32_t *cols)
{
    uint32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    *rows = 1;
    *cols = (uint32_t)n;
    switch (kind) {
    case NN_T_TOK_EMB: case NN_T_CLS: *rows = c->vocab_size; *cols = c->dim; break;
    case NN_T_WQ: *rows = qd; *cols = c->dim; break;
    case NN_T_WK: case NN_T_WV: *rows = kvd; *cols = c->dim; break;
    case NN_T_WO: *rows = c->dim; *cols = qd; break;
    case NN_T_W1: case NN_T_W3: *rows = c->hidden_dim; *cols = c->dim; break;
    case NN_T_W2: *rows = c->dim; *cols = c->hidden_dim; break;
    default: break;
    }
}

static int gg_read(kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n)
{
    uint32_t rows, cols;
    shape_of(&s->cfg, kind, n, &rows, &cols);
    const kt_gguf_tensor *t = tensor(s, kind, layer, rows, cols);
    if (!t)
        return -1;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->type) {
        case KT_GGML_F32: {
            uint32_t b = nn_rd32(p + 4 * i);
            memcpy(&dst[i], &b, 4);
            break;
        }
        case KT_GGML_F16: dst[i] = kt_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        case KT_GGML_BF16: dst[i] = kt_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        default: {                                                    /* Q8_0 */
            const uint8_t *b = p + 34 * (i / 32);
            dst[i] = kt_f16_to_f32((uint16_t)(b[0] | b[1] << 8)) * (float)(int8_t)b[2 + i % 32];
        }
        }
    }
    return 0;
}

/* Q8_0 straight onto the image's int8 groups when the image's group is 32. */
static int gg_add_native(kt_source *s, kt_img *w, uint32_t kind, uint32_t layer, uint32_t rows, uint32_t cols)
{
    const kt_gguf_tensor *t = tensor(s, kind, layer, rows, cols);
    if (!t)
        return -1;
    if (t->type != KT_GGML_Q8_0 || w->cfg.group_size != 32)
        return 1;
    size_t nb = (size_t)rows * cols / 32;
    uint16_t *d = malloc(nb * sizeof *d);
    int8_t *q = malloc(nb * 32);
    int rc = -1;
    if (d && q) {
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = t->data + 34 * b;
            d[b] = (uint16_t)(blk[0] | blk[1] << 8);
            memcpy(q + 32 * b, blk + 2, 32);
        }
        rc = kt_img_add_q8_0(w, kind, layer, d, q, rows, cols, &s->q8_exact, &s->q8_requant);
    }
    free(d);
    free(q);
    if (rc)
        snprintf(s->err, sizeof s->err, "cannot add Q8_0 tensor layer %u kind %u: non-finite scales or out of memory",
                 layer, kind);
    return rc;
}

static void gg_close(kt_source *s)
{
    ggsrc *h = s->impl;
    if (h) {
        kt_gguf_close(&h->g);
        free(h);
    }
    kt_vocab_free(&s->vocab);
    s->impl = NULL;
}

/* ---- tokenizer -------------------------------------------------------------------------- */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const kt_gguf_kv *array(kt_source *s, const kt_gguf *g, const char *key, uint32_t type, uint64_t n,
                               int required)
{
    const kt_gguf_kv *kv = kt_gguf_kv_find(g, key);
    if (!kv) {
        if (required)
            snprintf(s->err, sizeof s->err, "metadata %s is missing", key);
        return NULL;
    }
    if (kv->type != KT_GGUF_ARRAY || kv->arr_type != type || (n != UINT64_MAX && kv->arr_n != n)) {
        snprintf(s->err, sizeof s->err, "metadata %s has the wrong type or length", key);
        return NULL;
    }
    return kv;
}

static int vocab_llama(kt_source *s, const kt_gguf *g, const kt_gguf_kv *tokens, uint32_t n)
{
    kt_vocab *v = &s->vocab;
    const kt_gguf_kv *scores = array(s, g, "tokenizer.ggml.scores", KT_GGUF_F32, n, 1);
    const kt_gguf_kv *types = array(s, g, "tokenizer.ggml.token_type", KT_GGUF_I32, n, 0);
    if (!scores || (!types && kt_gguf_kv_find(g, "tokenizer.ggml.token_type")))
        return -1;
    int asp = 1;
    if (kt_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp) < 0 || !asp) {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.add_space_prefix false is not supported");
        return -1;
    }
    if (kt_vocab_alloc(v, n, NN_TOK_LLAMA2C)) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    v->byte_base = NN_TOK_NONE;
    for (uint32_t i = 0; i < n; i++) {
        const char *t;
        uint64_t len;
        kt_gguf_arr_str(tokens, i, &t, &len);
        if (len == 0 || len > NN_TOK_MAX_LEN || memchr(t, 0, len)) {
            snprintf(s->err, sizeof s->err, "token %u is empty, too long or has a NUL byte", i);
            return -1;
        }
        /* llama2.c keeps "▁" as a space in its strings; so does the engine's kind 1. */
        char *buf = malloc(len + 1);
        uint32_t o = 0;
        if (!buf) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return -1;
        }
        for (uint64_t k = 0; k < len;) {
            if (k + 3 <= len && memcmp(t + k, "\xe2\x96\x81", 3) == 0) {
                buf[o++] = ' ';
                k += 3;
            } else {
                buf[o++] = t[k++];
            }
        }
        int rc = kt_vocab_set(v, i, buf, o);
        free(buf);
        if (rc) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return -1;
        }
        uint32_t b = nn_rd32(scores->val + 4 * (size_t)i);
        memcpy(&v->score[i], &b, 4);
        if (!(v->score[i] == v->score[i]) || v->score[i] > 3.0e38f || v->score[i] < -3.0e38f) {
            snprintf(s->err, sizeof s->err, "token %u has a non-finite score", i);
            return -1;
        }
        if (types && (int32_t)nn_rd32(types->val + 4 * (size_t)i) == TT_BYTE && v->byte_base == NN_TOK_NONE)
            v->byte_base = i;
    }
    /* Byte fallback: 256 consecutive <0x00>..<0xFF> tokens (the engine checks too). */
    static const char hex[] = "0123456789ABCDEF";
    for (uint32_t i = 0; i < n && v->byte_base == NN_TOK_NONE; i++)
        if (v->len[i] == 6 && memcmp(v->str[i], "<0x00>", 6) == 0)
            v->byte_base = i;
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t id = v->byte_base + b;
        if (v->byte_base == NN_TOK_NONE || id >= n || v->len[id] != 6 || memcmp(v->str[id], "<0x", 3) ||
            v->str[id][3] != hex[b >> 4] || v->str[id][4] != hex[b & 15] || v->str[id][5] != '>') {
            snprintf(s->err, sizeof s->err, "the \"llama\" vocabulary has no run of 256 byte tokens <0x00>..<0xFF>");
            return -1;
        }
    }
    /* With "▁" as a space, two tokens may not end up with one string. */
    kt_strmap m;
    uint32_t dup;
    if (kt_strmap_build(&m, v, &dup)) {
        snprintf(s->err, sizeof s->err, "token %u has the same text as another token once \"▁\" is a space", dup);
        return -1;
    }
    kt_strmap_free(&m);
    return 0;
}

static int vocab_gpt2(kt_source *s, const kt_gguf *g, const kt_gguf_kv *tokens, uint32_t n)
{
    kt_vocab *v = &s->vocab;
    const kt_gguf_kv *types = array(s, g, "tokenizer.ggml.token_type", KT_GGUF_I32, n, 0);
    const kt_gguf_kv *merges = array(s, g, "tokenizer.ggml.merges", KT_GGUF_STRING, UINT64_MAX, 1);
    if (!merges || (!types && kt_gguf_kv_find(g, "tokenizer.ggml.token_type")))
        return -1;
    const char *pre = "default";
    uint32_t pl = 7;
    if (kt_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pl) < 0) {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.pre is not a string");
        return -1;
    }
    uint32_t flags = NN_TOK_F_BYTE_LEVEL, pretok;
    if ((pl == 7 && !memcmp(pre, "default", 7)) || (pl == 5 && !memcmp(pre, "gpt-2", 5)) ||
        (pl == 4 && !memcmp(pre, "gpt2", 4))) {
        pretok = NN_TOK_PRE_GPT2;
    } else if ((pl == 9 && !memcmp(pre, "llama-bpe", 9)) || (pl == 6 && !memcmp(pre, "llama3", 6))) {
        pretok = NN_TOK_PRE_LLAMA3;
        flags |= NN_TOK_F_IGNORE_MERGES;
    } else if (pl == 6 && !memcmp(pre, "smollm", 6)) {
        pretok = NN_TOK_PRE_GPT2;
        flags |= NN_TOK_F_DIGITS;
    } else {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.pre \"%.*s\" is not supported (default, gpt-2, llama-bpe, "
                 "smollm)", (int)(pl > 40 ? 40 : pl), pre);
        return -1;
    }
    if (kt_vocab_alloc(v, n, NN_TOK_BPE)) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *t;
        uint64_t len;
        kt_gguf_arr_str(tokens, i, &t, &len);
        if (len > NN_TOK_MAX_LEN || memchr(t, 0, len)) {
            snprintf(s->err, sizeof s->err, "token %u is too long or has a NUL byte", i);
            return -1;
        }
        if (kt_vocab_set(v, i, t, (uint32_t)len)) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return -1;
        }
        int32_t tt = types ? (int32_t)nn_rd32(types->val + 4 * (size_t)i) : TT_NORMAL;
        /* Control and user-defined tokens are the added tokens: matched in text. */
        if (tt == TT_CONTROL || tt == TT_USER)
            v->added[i] = len ? KT_ADDED | KT_SPECIAL : KT_ADDED;
        else if (tt == TT_UNUSED || len == 0)
            v->added[i] = KT_ADDED;
    }
    kt_strmap m;
    uint32_t dup;
    if (kt_strmap_build(&m, v, &dup)) {
        snprintf(s->err, sizeof s->err, "token %u repeats another token's text", dup);
        return -1;
    }
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        const char *t, *sp;
        uint64_t len;
        kt_gguf_arr_str(merges, i, &t, &len);
        if (len > 2 * NN_TOK_MAX_LEN || !(sp = memchr(t, ' ', len)) ||
            memchr(sp + 1, ' ', len - (uint64_t)(sp + 1 - t))) {
            snprintf(s->err, sizeof s->err, "merge %llu is not two tokens separated by one space",
                     (unsigned long long)i);
            kt_strmap_free(&m);
            return -1;
        }
        if (kt_bpe_add_merge(v, &m, t, (uint32_t)(sp - t), sp + 1, (uint32_t)(len - (uint64_t)(sp - t) - 1), s->err,
                             sizeof s->err)) {
            kt_strmap_free(&m);
            return -1;
        }
    }
    kt_strmap_free(&m);
    int add_bos = 0;
    kt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    v->flags = flags | (add_bos ? NN_TOK_F_ADD_BOS : 0);
    v->pretok = pretok;
    return kt_bpe_finish_bytelevel(v, s->err, sizeof s->err);
}

static int read_vocab(kt_source *s, const kt_gguf *g)
{
    const char *model;
    uint32_t ml;
    if (kt_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml)) {
        snprintf(s->err, sizeof s->err, "metadata tokenizer.ggml.model is missing: the file has no tokenizer");
        return -1;
    }
    const kt_gguf_kv *tokens = array(s, g, "tokenizer.ggml.tokens", KT_GGUF_STRING, UINT64_MAX, 1);
    if (!tokens)
        return -1;
    if (tokens->arr_n != s->cfg.vocab_size) {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.tokens has %llu entries but the model's vocabulary is %u",
                 (unsigned long long)tokens->arr_n, s->cfg.vocab_size);
        return -1;
    }
    uint32_t n = s->cfg.vocab_size;
    int rc;
    if (ml == 5 && memcmp(model, "llama", 5) == 0) {
        rc = vocab_llama(s, g, tokens, n);
    } else if (ml == 4 && memcmp(model, "gpt2", 4) == 0) {
        rc = vocab_gpt2(s, g, tokens, n);
    } else {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)",
                 (int)(ml > 40 ? 40 : ml), model);
        return -1;
    }
    if (rc)
        return -1;
    kt_vocab *v = &s->vocab;
    uint32_t id;
    v->bos_id = v->kind == NN_TOK_LLAMA2C ? 1 : NN_TOK_NONE;
    v->eos_id = v->kind == NN_TOK_LLAMA2C ? 2 : NN_TOK_NONE;
    if (kt_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id) == 0)
        v->bos_id = id;
    if (kt_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id) == 0)
        v->eos_id = id;
    if (v->kind == NN_TOK_BPE && kt_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &id) == 0 && id < n)
        v->unk_id = id;
    if (v->eos_id >= n) {
        snprintf(s->err, sizeof s->err, "tokenizer.ggml.eos_token_id is missing or out of range");
        return -1;
    }
    if (v->bos_id >= n) {
        v->bos_id = v->eos_id;
        v->flags &= ~NN_TOK_F_ADD_BOS;
    }
    return 0;
}

/* ---- open ------------------------------------------------------------------------------- */

static int need_u32(kt_source *s, const kt_gguf *g, const char *key, uint32_t *out)
{
    int rc = kt_gguf_get_u32(g, key, out);
    if (rc)
        snprintf(s->err, sizeof s->err, "metadata %s is %s", key, rc > 0 ? "missing" : "not a u32");
    return rc;
}

static int open_parsed(kt_source *s);

int kt_open_gguf(kt_source *s, const char *path)
{
    memset(s, 0, sizeof *s);
    ggsrc *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    s->impl = h;
    if (kt_gguf_open(&h->g, path, s->err, sizeof s->err)) {
        free(h);
        s->impl = NULL;
        return -1;
    }
    return open_parsed(s);
}

int kt_open_gguf_mem(kt_source *s, const uint8_t *data, size_t size)
{
    memset(s, 0, sizeof *s);
    ggsrc *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    s->impl = h;
    if (kt_gguf_parse(&h->g, data, size, s->err, sizeof s->err)) {
        free(h);
        s->impl = NULL;
        return -1;
    }
    return open_parsed(s);
}

/* Architecture, shape and tokenizer of the parsed file in s->impl. */
static int open_parsed(kt_source *s)
{
    ggsrc *h = s->impl;
    s->read = gg_read;
    s->add_native = gg_add_native;
    s->close = gg_close;
    kt_gguf *g = &h->g;
    const char *arch;
    uint32_t al;
    if (kt_gguf_get_str(g, "general.architecture", &arch, &al)) {
        snprintf(s->err, sizeof s->err, "metadata general.architecture is missing");
        goto fail;
    }
    if (al != 5 || memcmp(arch, "llama", 5) != 0) {
        snprintf(s->err, sizeof s->err, "unsupported architecture \"%.*s\": only llama is supported",
                 (int)(al > 40 ? 40 : al), arch);
        goto fail;
    }
    nn_config *c = &s->cfg;
    if (need_u32(s, g, "llama.embedding_length", &c->dim) || need_u32(s, g, "llama.feed_forward_length",
                                                                      &c->hidden_dim) ||
        need_u32(s, g, "llama.block_count", &c->n_layers) || need_u32(s, g, "llama.attention.head_count",
                                                                      &c->n_heads) ||
        need_u32(s, g, "llama.context_length", &c->max_seq))
        goto fail;
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    uint32_t rope_dim = 0, vlen = 0;
    if (kt_gguf_get_u32(g, "llama.attention.head_count_kv", &c->n_kv_heads) < 0 ||
        kt_gguf_get_u32(g, "llama.attention.key_length", &c->head_dim) < 0 ||
        kt_gguf_get_u32(g, "llama.attention.value_length", &vlen) < 0 ||
        kt_gguf_get_u32(g, "llama.rope.dimension_count", &rope_dim) < 0) {
        snprintf(s->err, sizeof s->err, "metadata llama.attention.* or llama.rope.dimension_count has a bad type");
        goto fail;
    }
    if ((vlen && vlen != c->head_dim) || (rope_dim && rope_dim != c->head_dim)) {
        snprintf(s->err, sizeof s->err, "value length %u or RoPE dimensions %u differ from the head size %u: not "
                 "supported", vlen, rope_dim, c->head_dim);
        goto fail;
    }
    const char *rs;
    uint32_t rsl;
    if ((kt_gguf_get_str(g, "llama.rope.scaling.type", &rs, &rsl) == 0 && !(rsl == 4 && !memcmp(rs, "none", 4))) ||
        kt_gguf_tensor_find(g, "rope_freqs.weight")) {
        snprintf(s->err, sizeof s->err, "RoPE scaling (llama.rope.scaling.type or rope_freqs) is not supported");
        goto fail;
    }
    const kt_gguf_tensor *emb = kt_gguf_tensor_find(g, "token_embd.weight");
    if (!emb) {
        snprintf(s->err, sizeof s->err, "tensor token_embd.weight is missing");
        goto fail;
    }
    c->vocab_size = emb->ne[1] <= NN_MAX_VOCAB ? (uint32_t)emb->ne[1] : 0;
    uint32_t nv;
    if (kt_gguf_get_u32(g, "llama.vocab_size", &nv) == 0 && nv != c->vocab_size) {
        snprintf(s->err, sizeof s->err, "llama.vocab_size %u disagrees with token_embd.weight (%llu rows)", nv,
                 (unsigned long long)emb->ne[1]);
        goto fail;
    }
    if (c->dim == 0 || c->dim > NN_MAX_DIM || c->hidden_dim == 0 || c->hidden_dim > 4 * NN_MAX_DIM ||
        c->n_layers == 0 || c->n_layers > NN_MAX_LAYERS || c->n_heads == 0 || c->n_kv_heads == 0 ||
        c->n_heads % c->n_kv_heads || c->head_dim == 0 || c->head_dim % 2 || c->head_dim > NN_MAX_HEAD_DIM ||
        (uint64_t)c->n_heads * c->head_dim > NN_MAX_DIM || c->vocab_size == 0 || c->max_seq == 0) {
        snprintf(s->err, sizeof s->err, "unsupported shape: dim=%u ffn=%u layers=%u heads=%u kv_heads=%u head_dim=%u "
                 "vocab=%u", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                 c->vocab_size);
        goto fail;
    }
    if (c->max_seq > NN_MAX_SEQ)
        c->max_seq = NN_MAX_SEQ;
    c->flags = kt_gguf_tensor_find(g, "output.weight") ? 0 : NN_IMG_FLAG_TIED_CLASSIFIER;
    s->rope_theta = 10000.0;
    s->norm_eps = 1e-5;
    if (kt_gguf_get_f64(g, "llama.rope.freq_base", &s->rope_theta) < 0 || !(s->rope_theta > 1) ||
        kt_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &s->norm_eps) < 0 || !(s->norm_eps > 0) ||
        s->norm_eps >= 1) {
        snprintf(s->err, sizeof s->err, "llama.rope.freq_base or llama.attention.layer_norm_rms_epsilon is invalid");
        goto fail;
    }
    if (read_vocab(s, g))
        goto fail;
    return 0;
fail:
    gg_close(s);
    return -1;
}
