/*
 * Hugging Face llama-family directories (LlamaForCausalLM: Llama 2/3-style, TinyLlama,
 * SmolLM2). Tensors come from model.safetensors or from the shards that
 * model.safetensors.index.json names, in F32, F16 or BF16.
 *
 * q/k rows: Meta's checkpoints rotate interleaved pairs (x[2i], x[2i+1]), as llama2.c
 * and this engine do. Hugging Face's conversion permutes each head's q and k rows so
 * that its rotate_half pairs x[i] with x[i + head_dim/2]:
 *     hf_row(h, half * head_dim/2 + i) = meta_row(h, 2i + half).
 * Reading applies the inverse, so HF row j*hd/2 + i lands at engine row 2i + j. The
 * attention scores are unchanged because q and k are permuted alike.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "kvsource.h"
#include "safetensors.h"

#define MAX_SHARDS 256

typedef struct hfsrc {
    kt_st    shard[MAX_SHARDS];
    uint32_t n_shards;
    float   *tmp;            /* q/k permutation scratch */
    size_t   tmp_n;
} hfsrc;

static void name_of(uint32_t kind, uint32_t layer, char *out, size_t n)
{
    static const char *per_layer[] = {
        [NN_T_ATT_NORM] = "input_layernorm", [NN_T_WQ] = "self_attn.q_proj", [NN_T_WK] = "self_attn.k_proj",
        [NN_T_WV] = "self_attn.v_proj",      [NN_T_WO] = "self_attn.o_proj",
        [NN_T_FFN_NORM] = "post_attention_layernorm", [NN_T_W1] = "mlp.gate_proj", [NN_T_W2] = "mlp.down_proj",
        [NN_T_W3] = "mlp.up_proj",
    };
    if (kind == NN_T_TOK_EMB)
        snprintf(out, n, "model.embed_tokens.weight");
    else if (kind == NN_T_FINAL_NORM)
        snprintf(out, n, "model.norm.weight");
    else if (kind == NN_T_CLS)
        snprintf(out, n, "lm_head.weight");
    else if (kind <= NN_T_W3 && per_layer[kind])
        snprintf(out, n, "model.layers.%u.%s.weight", layer, per_layer[kind]);
    else
        snprintf(out, n, "?");
}

static const kt_st_tensor *find(hfsrc *h, const char *name)
{
    for (uint32_t i = 0; i < h->n_shards; i++) {
        const kt_st_tensor *t = kt_st_find(&h->shard[i], name);
        if (t)
            return t;
    }
    return NULL;
}

static int hf_read(kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n)
{
    hfsrc *h = s->impl;
    char name[128];
    name_of(kind, layer, name, sizeof name);
    const kt_st_tensor *t = find(h, name);
    if (!t) {
        snprintf(s->err, sizeof s->err, "tensor %s is missing", name);
        return -1;
    }
    /* Expected shape: [rows][cols] for matrices, [dim] for norms. */
    uint32_t rows = 1, cols = (uint32_t)n;
    const nn_config *c = &s->cfg;
    uint32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    switch (kind) {
    case NN_T_TOK_EMB: case NN_T_CLS: rows = c->vocab_size; cols = c->dim; break;
    case NN_T_WQ: rows = qd; cols = c->dim; break;
    case NN_T_WK: case NN_T_WV: rows = kvd; cols = c->dim; break;
    case NN_T_WO: rows = c->dim; cols = qd; break;
    case NN_T_W1: case NN_T_W3: rows = c->hidden_dim; cols = c->dim; break;
    case NN_T_W2: rows = c->dim; cols = c->hidden_dim; break;
    default: break;
    }
    int is_vec = rows == 1 && (kind == NN_T_ATT_NORM || kind == NN_T_FFN_NORM || kind == NN_T_FINAL_NORM);
    if ((is_vec && (t->ndim != 1 || t->shape[0] != cols)) ||
        (!is_vec && (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols))) {
        char got[96] = "";
        for (uint32_t i = 0; i < t->ndim && strlen(got) < 70; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? "," : "",
                     (unsigned long long)t->shape[i]);
        if (is_vec)
            snprintf(s->err, sizeof s->err, "tensor %s has shape [%s], expected [%u]", name, got, cols);
        else
            snprintf(s->err, sizeof s->err, "tensor %s has shape [%s], expected [%u,%u] (config.json)", name, got,
                     rows, cols);
        return -1;
    }
    if (t->dtype == KT_ST_OTHER) {
        snprintf(s->err, sizeof s->err, "tensor %s has dtype %s; only F32, F16 and BF16 are supported", name,
                 t->dtype_name);
        return -1;
    }
    if (kind != NN_T_WQ && kind != NN_T_WK)
        return kt_st_read_f32(t, dst, n);
    if (h->tmp_n < n) {
        float *p = realloc(h->tmp, n * sizeof *p);
        if (!p) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return -1;
        }
        h->tmp = p;
        h->tmp_n = n;
    }
    kt_st_read_f32(t, h->tmp, n);
    uint32_t hd = c->head_dim, half = hd / 2;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t head = r / hd, j = r % hd;                  /* HF row: head, j = half*hd/2 + i */
        uint32_t dst_row = head * hd + 2 * (j % half) + j / half;
        memcpy(dst + (size_t)dst_row * cols, h->tmp + (size_t)r * cols, (size_t)cols * sizeof *dst);
    }
    return 0;
}

static void hf_close(kt_source *s)
{
    hfsrc *h = s->impl;
    if (h) {
        for (uint32_t i = 0; i < h->n_shards; i++)
            kt_st_close(&h->shard[i]);
        free(h->tmp);
        free(h);
    }
    kt_vocab_free(&s->vocab);
    s->impl = NULL;
}

static int read_json_file(const char *path, kt_json *j, char *err, size_t errlen)
{
    const uint8_t *d;
    size_t size;
    if (kt_map(path, &d, &size)) {
        snprintf(err, errlen, "cannot read %.400s", path);
        return -1;
    }
    char msg[200];
    int rc = kt_json_parse(j, (const char *)d, size, msg, sizeof msg);
    kt_unmap(d, size);
    if (rc)
        snprintf(err, errlen, "%.300s is not valid JSON: %.180s", path, msg);
    return rc;
}

/* Opens model.safetensors, or every shard the index names (each once). */
static int open_weights(kt_source *s, hfsrc *h, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (kt_st_open(&h->shard[0], path, s->err, sizeof s->err))
            return -1;
        h->n_shards = 1;
        return 0;
    }
    kt_json j;
    if (read_json_file(path, &j, s->err, sizeof s->err))
        return -1;
    const kt_jv *map = kt_json_get(&j, kt_json_root(&j), "weight_map");
    int rc = -1;
    if (!map || map->type != KT_J_OBJ) {
        snprintf(s->err, sizeof s->err, "%.400s has no weight_map", path);
        goto out;
    }
    for (const kt_jv *e = kt_json_first(&j, map); e; e = kt_json_next(&j, e)) {
        if (e->type != KT_J_STR || memchr(e->s, '/', e->len) || e->len == 0 || memchr(e->s, 0, e->len)) {
            snprintf(s->err, sizeof s->err, "%.300s: weight_map entries must be file names in the directory", path);
            goto out;
        }
        int seen = 0;
        for (const kt_jv *f = kt_json_first(&j, map); f != e && !seen; f = kt_json_next(&j, f))
            seen = f->len == e->len && memcmp(f->s, e->s, e->len) == 0;
        if (seen)
            continue;
        if (h->n_shards == MAX_SHARDS) {
            snprintf(s->err, sizeof s->err, "%.300s names more than %d shards", path, MAX_SHARDS);
            goto out;
        }
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->s);
        if (kt_st_open(&h->shard[h->n_shards], shard, s->err, sizeof s->err))
            goto out;
        h->n_shards++;
    }
    /* Every tensor the index names must be in the shard it names. */
    for (const kt_jv *e = kt_json_first(&j, map); e; e = kt_json_next(&j, e)) {
        char name[512];
        snprintf(name, sizeof name, "%.*s", (int)(e->key_len > 500 ? 500 : e->key_len), e->key);
        if (!find(h, name)) {
            snprintf(s->err, sizeof s->err, "tensor %.200s is missing: the index names %.200s but it holds no such tensor",
                     name, e->s);
            goto out;
        }
    }
    rc = 0;
out:
    kt_json_free(&j);
    return rc;
}

static int cfg_u32(const kt_json *j, const kt_jv *root, const char *key, uint32_t *out, int required,
                   char *err, size_t errlen)
{
    const kt_jv *v = kt_json_get(j, root, key);
    uint64_t x;
    if (!v || v->type == KT_J_NULL) {
        if (required)
            snprintf(err, errlen, "config.json: %s is missing", key);
        return required ? -1 : 1;
    }
    if (kt_json_u64(v, &x) || x > UINT32_MAX) {
        snprintf(err, errlen, "config.json: %s is not a non-negative integer", key);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

int kt_open_hf(kt_source *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    hfsrc *h = calloc(1, sizeof *h);
    kt_json j = { 0 };
    char path[4096];
    if (!h) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    s->impl = h;
    s->read = hf_read;
    s->close = hf_close;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (read_json_file(path, &j, s->err, sizeof s->err))
        goto fail;
    const kt_jv *root = kt_json_root(&j), *arch = kt_json_get(&j, root, "architectures");
    const kt_jv *a0 = kt_json_first(&j, arch), *mt = kt_json_get(&j, root, "model_type");
    if (!kt_json_streq(a0, "LlamaForCausalLM") || (arch && arch->len != 1) || (mt && !kt_json_streq(mt, "llama"))) {
        const kt_jv *what = a0 && a0->type == KT_J_STR ? a0 : mt;
        snprintf(s->err, sizeof s->err,
                 "config.json: unsupported architecture %s%.*s%s: only LlamaForCausalLM (Llama 2/3-style, "
                 "TinyLlama, SmolLM2) is supported", what && what->type == KT_J_STR ? "\"" : "",
                 what && what->type == KT_J_STR ? (int)(what->len > 60 ? 60 : what->len) : 6,
                 what && what->type == KT_J_STR ? what->s : "(none)", what && what->type == KT_J_STR ? "\"" : "");
        goto fail;
    }
    const kt_jv *rs = kt_json_get(&j, root, "rope_scaling");
    if (rs && rs->type != KT_J_NULL) {
        const kt_jv *t = kt_json_get(&j, rs, "rope_type");
        if (!t)
            t = kt_json_get(&j, rs, "type");
        if (!kt_json_streq(t, "default")) {
            snprintf(s->err, sizeof s->err, "config.json: rope_scaling %.*s is not supported (plain RoPE only)",
                     t && t->type == KT_J_STR ? (int)(t->len > 40 ? 40 : t->len) : 4,
                     t && t->type == KT_J_STR ? t->s : "(set)");
            goto fail;
        }
    }
    int b;
    if ((!kt_json_bool(kt_json_get(&j, root, "attention_bias"), &b) && b) ||
        (!kt_json_bool(kt_json_get(&j, root, "mlp_bias"), &b) && b)) {
        snprintf(s->err, sizeof s->err, "config.json: attention_bias / mlp_bias are not supported");
        goto fail;
    }
    const kt_jv *act = kt_json_get(&j, root, "hidden_act");
    if (act && !kt_json_streq(act, "silu")) {
        snprintf(s->err, sizeof s->err, "config.json: hidden_act must be silu");
        goto fail;
    }
    nn_config *c = &s->cfg;
    if (cfg_u32(&j, root, "hidden_size", &c->dim, 1, s->err, sizeof s->err) ||
        cfg_u32(&j, root, "intermediate_size", &c->hidden_dim, 1, s->err, sizeof s->err) ||
        cfg_u32(&j, root, "num_hidden_layers", &c->n_layers, 1, s->err, sizeof s->err) ||
        cfg_u32(&j, root, "num_attention_heads", &c->n_heads, 1, s->err, sizeof s->err) ||
        cfg_u32(&j, root, "vocab_size", &c->vocab_size, 1, s->err, sizeof s->err) ||
        cfg_u32(&j, root, "max_position_embeddings", &c->max_seq, 1, s->err, sizeof s->err))
        goto fail;
    c->n_kv_heads = c->n_heads;
    if (cfg_u32(&j, root, "num_key_value_heads", &c->n_kv_heads, 0, s->err, sizeof s->err) < 0)
        goto fail;
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    if (cfg_u32(&j, root, "head_dim", &c->head_dim, 0, s->err, sizeof s->err) < 0)
        goto fail;
    if (c->dim == 0 || c->dim > NN_MAX_DIM || c->hidden_dim == 0 || c->hidden_dim > 4 * NN_MAX_DIM ||
        c->n_layers == 0 || c->n_layers > NN_MAX_LAYERS || c->n_heads == 0 || c->n_kv_heads == 0 ||
        c->n_heads % c->n_kv_heads || c->head_dim == 0 || c->head_dim % 2 || c->head_dim > NN_MAX_HEAD_DIM ||
        (uint64_t)c->n_heads * c->head_dim > NN_MAX_DIM || c->vocab_size == 0 || c->vocab_size > NN_MAX_VOCAB ||
        c->max_seq == 0) {
        snprintf(s->err, sizeof s->err,
                 "config.json: unsupported shape: hidden_size=%u intermediate_size=%u layers=%u heads=%u "
                 "kv_heads=%u head_dim=%u vocab=%u", c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                 c->n_kv_heads, c->head_dim, c->vocab_size);
        goto fail;
    }
    if (c->max_seq > NN_MAX_SEQ)
        c->max_seq = NN_MAX_SEQ;
    s->rope_theta = 10000.0;
    s->norm_eps = 1e-6;
    const kt_jv *v;
    if ((v = kt_json_get(&j, root, "rope_theta")) && (kt_json_num(v, &s->rope_theta) || !(s->rope_theta > 1))) {
        snprintf(s->err, sizeof s->err, "config.json: rope_theta must be a number > 1");
        goto fail;
    }
    if ((v = kt_json_get(&j, root, "rms_norm_eps")) &&
        (kt_json_num(v, &s->norm_eps) || !(s->norm_eps > 0) || s->norm_eps >= 1)) {
        snprintf(s->err, sizeof s->err, "config.json: rms_norm_eps must be in (0, 1)");
        goto fail;
    }
    /* LlamaConfig's default is an untied classifier. */
    int tied = 0;
    if ((v = kt_json_get(&j, root, "tie_word_embeddings")) && kt_json_bool(v, &tied)) {
        snprintf(s->err, sizeof s->err, "config.json: tie_word_embeddings must be true or false");
        goto fail;
    }
    c->flags = tied ? NN_IMG_FLAG_TIED_CLASSIFIER : 0;
    uint32_t bos = NN_TOK_NONE, eos = NN_TOK_NONE;
    cfg_u32(&j, root, "bos_token_id", &bos, 0, s->err, sizeof s->err);
    cfg_u32(&j, root, "eos_token_id", &eos, 0, s->err, sizeof s->err);
    s->err[0] = 0;
    if (open_weights(s, h, dir))
        goto fail;
    if (!tied && !find(h, "lm_head.weight")) {
        snprintf(s->err, sizeof s->err, "tensor lm_head.weight is missing (config.json says the classifier is "
                 "not tied to the embeddings)");
        goto fail;
    }
    for (uint32_t i = 0; i < h->n_shards; i++)
        for (uint32_t k = 0; k < h->shard[i].n; k++) {
            const char *nm = h->shard[i].t[k].name;
            size_t l = strlen(nm);
            if (l > 5 && strcmp(nm + l - 5, ".bias") == 0) {
                snprintf(s->err, sizeof s->err, "tensor %.200s: biases are not supported", nm);
                goto fail;
            }
        }
    if (kt_vocab_read_hf(&s->vocab, dir, c->vocab_size, bos, eos, s->err, sizeof s->err))
        goto fail;
    kt_json_free(&j);
    return 0;
fail:
    kt_json_free(&j);
    hf_close(s);
    return -1;
}
