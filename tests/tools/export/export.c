/*
 * Exporter (see export.h). The tokenizer.json is what transformers' LlamaConverter
 * makes of a SentencePiece BPE model: vocabulary with "▁", merges from
 * SentencePieceExtractor (every split of a piece into two pieces, ordered by the
 * piece's score, ties in vocabulary order, then by the halves' ids), Prepend/Replace
 * normalizer, byte fallback, <s> added by the post-processor.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export.h"

#define META "\xe2\x96\x81"

/* ---- a growable buffer ------------------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void printf_(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, n < (int)sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4];
    nn_wr32(x, v);
    put(b, x, 4);
}

static void put_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    nn_wr64(x, v);
    put(b, x, 8);
}

/* A JSON string literal. */
static void jstr(buf *b, const char *s, size_t n)
{
    puts_(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            put(b, e, 2);
        } else if (c < 0x20) {
            printf_(b, "\\u%04x", c);
        } else {
            put(b, &c, 1);
        }
    }
    puts_(b, "\"");
}

static int write_file(const char *path, const buf *b, char *err, size_t errlen)
{
    if (b->oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return 0;
}

/* ---- the model as float tensors ----------------------------------------------------------- */

typedef struct xt {
    char name[96];
    uint32_t kind, layer, rows, cols;   /* rows = 1 for vectors */
    int vec;
} xt;

static uint32_t list_tensors(const nn_config *c, xt *t, int gguf)
{
    static const char *hf_l[] = { [NN_T_ATT_NORM] = "input_layernorm", [NN_T_WQ] = "self_attn.q_proj",
        [NN_T_WK] = "self_attn.k_proj", [NN_T_WV] = "self_attn.v_proj", [NN_T_WO] = "self_attn.o_proj",
        [NN_T_FFN_NORM] = "post_attention_layernorm", [NN_T_W1] = "mlp.gate_proj", [NN_T_W2] = "mlp.down_proj",
        [NN_T_W3] = "mlp.up_proj" };
    static const char *gg_l[] = { [NN_T_ATT_NORM] = "attn_norm", [NN_T_WQ] = "attn_q", [NN_T_WK] = "attn_k",
        [NN_T_WV] = "attn_v", [NN_T_WO] = "attn_output", [NN_T_FFN_NORM] = "ffn_norm", [NN_T_W1] = "ffn_gate",
        [NN_T_W2] = "ffn_down", [NN_T_W3] = "ffn_up" };
    uint32_t n = 0, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    t[n++] = (xt){ "", NN_T_TOK_EMB, NN_LAYER_NONE, c->vocab_size, c->dim, 0 };
    snprintf(t[0].name, sizeof t[0].name, "%s", gguf ? "token_embd.weight" : "model.embed_tokens.weight");
    for (uint32_t l = 0; l < c->n_layers; l++) {
        static const uint32_t order[] = { NN_T_ATT_NORM, NN_T_WQ, NN_T_WK, NN_T_WV, NN_T_WO, NN_T_FFN_NORM,
                                          NN_T_W1, NN_T_W2, NN_T_W3 };
        for (int k = 0; k < 9; k++) {
            uint32_t kind = order[k], rows = 1, cols = c->dim;
            switch (kind) {
            case NN_T_WQ: rows = qd; break;
            case NN_T_WK: case NN_T_WV: rows = kvd; break;
            case NN_T_WO: rows = c->dim; cols = qd; break;
            case NN_T_W1: case NN_T_W3: rows = c->hidden_dim; break;
            case NN_T_W2: rows = c->dim; cols = c->hidden_dim; break;
            default: break;
            }
            xt *x = &t[n++];
            *x = (xt){ "", kind, l, rows, cols, kind == NN_T_ATT_NORM || kind == NN_T_FFN_NORM };
            if (gguf)
                snprintf(x->name, sizeof x->name, "blk.%u.%s.weight", l, gg_l[kind]);
            else
                snprintf(x->name, sizeof x->name, "model.layers.%u.%s.weight", l, hf_l[kind]);
        }
    }
    t[n] = (xt){ "", NN_T_FINAL_NORM, NN_LAYER_NONE, 1, c->dim, 1 };
    snprintf(t[n++].name, sizeof t[0].name, "%s", gguf ? "output_norm.weight" : "model.norm.weight");
    if (!(c->flags & NN_IMG_FLAG_TIED_CLASSIFIER)) {
        t[n] = (xt){ "", NN_T_CLS, NN_LAYER_NONE, c->vocab_size, c->dim, 0 };
        snprintf(t[n++].name, sizeof t[0].name, "%s", gguf ? "output.weight" : "lm_head.weight");
    }
    return n;
}

/* Reads a tensor; for HF, q and k rows go from interleaved pairs to rotate-half order. */
static float *read_tensor(kt_source *src, const xt *t, int hf, char *err, size_t errlen)
{
    size_t n = (size_t)t->rows * t->cols;
    float *v = malloc(n * sizeof *v), *p = NULL;
    if (!v || src->read(src, t->kind, t->layer, v, n)) {
        snprintf(err, errlen, "%s", v ? src->err : "out of memory");
        free(v);
        return NULL;
    }
    if (!hf || (t->kind != NN_T_WQ && t->kind != NN_T_WK))
        return v;
    p = malloc(n * sizeof *p);
    if (!p) {
        free(v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint32_t hd = src->cfg.head_dim, half = hd / 2;
    for (uint32_t r = 0; r < t->rows; r++) {
        uint32_t head = r / hd, j = r % hd;          /* HF row j = which_half * hd/2 + i <- Meta row 2i + which */
        uint32_t meta = head * hd + 2 * (j % half) + j / half;
        memcpy(p + (size_t)r * t->cols, v + (size_t)meta * t->cols, t->cols * sizeof *p);
    }
    free(v);
    return p;
}

/* ---- tokenizer: llama2.c strings back to SentencePiece pieces ------------------------------ */

/* Piece i with "▁" for spaces; llama2.c's export wrote "\n<s>\n" and "\n</s>\n" for BOS/EOS. */
static char *piece(const kt_vocab *v, uint32_t i, uint32_t *len)
{
    if (i == v->bos_id || i == v->eos_id) {
        const char *s = i == v->bos_id ? "<s>" : "</s>";
        *len = (uint32_t)strlen(s);
        return strdup(s);
    }
    char *p = malloc((size_t)v->len[i] * 3 + 1);
    uint32_t o = 0;
    if (!p)
        return NULL;
    for (uint32_t k = 0; k < v->len[i]; k++) {
        if (v->str[i][k] == ' ') {
            memcpy(p + o, META, 3);
            o += 3;
        } else {
            p[o++] = v->str[i][k];
        }
    }
    p[o] = 0;
    *len = o;
    return p;
}

typedef struct pmerge {
    uint32_t l, r, piece;   /* ids of the halves and of the merged piece */
    float score;
    uint32_t seq;           /* position before the stable sort */
} pmerge;

static int cmp_local(const void *a, const void *b)
{
    const pmerge *x = a, *y = b;
    if (x->l != y->l)
        return (x->l > y->l) - (x->l < y->l);
    return (x->r > y->r) - (x->r < y->r);
}

static int cmp_score(const void *a, const void *b)
{
    const pmerge *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;          /* descending */
    return (x->seq > y->seq) - (x->seq < y->seq);     /* stable */
}

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2; }

static int32_t find_piece(char **p, const uint32_t *pl, uint32_t n, const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < n; i++)
        if (pl[i] == len && memcmp(p[i], s, len) == 0)
            return (int32_t)i;
    return -1;
}

static int tokenizer_json(const kt_vocab *v, buf *b)
{
    uint32_t n = v->n, *pl = calloc(n, sizeof *pl);
    char **p = calloc(n, sizeof *p);
    pmerge *m = NULL, local[64];
    size_t nm = 0, cap = 0;
    int rc = -1;
    if (!p || !pl)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        if (!(p[i] = piece(v, i, &pl[i])))
            goto out;
    for (uint32_t i = 0; i < n; i++) {
        size_t nl = 0;
        for (uint32_t k = utf8_len((unsigned char)p[i][0]); k < pl[i]; k += utf8_len((unsigned char)p[i][k])) {
            int32_t l = find_piece(p, pl, n, p[i], k), r = find_piece(p, pl, n, p[i] + k, pl[i] - k);
            if (l >= 0 && r >= 0 && nl < 64)
                local[nl++] = (pmerge){ (uint32_t)l, (uint32_t)r, i, v->score[i], 0 };
        }
        qsort(local, nl, sizeof *local, cmp_local);
        for (size_t k = 0; k < nl; k++) {
            if (nm == cap) {
                cap = cap ? cap * 2 : 1024;
                pmerge *q = realloc(m, cap * sizeof *m);
                if (!q)
                    goto out;
                m = q;
            }
            local[k].seq = (uint32_t)nm;
            m[nm++] = local[k];
        }
    }
    if (nm)
        qsort(m, nm, sizeof *m, cmp_score);

    puts_(b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n");
    uint32_t special[3] = { 0, v->bos_id, v->eos_id };
    for (int k = 0; k < 3; k++) {
        printf_(b, "    {\"id\": %u, \"content\": ", special[k]);
        jstr(b, p[special[k]], pl[special[k]]);
        printf_(b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                "\"special\": true}%s\n", k < 2 ? "," : "");
    }
    puts_(b, "  ],\n  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
          "\"" META "\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" META "\"}]},\n"
          "  \"pre_tokenizer\": null,\n"
          "  \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
          "\"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [{\"SpecialToken\": "
          "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": "
          "{\"id\": \"<s>\", \"type_id\": 1}}, {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], \"special_tokens\": "
          "{\"<s>\": {\"id\": \"<s>\", \"ids\": [");
    printf_(b, "%u", v->bos_id);
    puts_(b, "], \"tokens\": [\"<s>\"]}}},\n"
          "  \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
          "\"" META "\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": "
          "\"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},\n"
          "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": \"<unk>\",\n"
          "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": true,\n"
          "    \"byte_fallback\": true,\n    \"ignore_merges\": false,\n    \"vocab\": {\n");
    for (uint32_t i = 0; i < n; i++) {
        puts_(b, "      ");
        jstr(b, p[i], pl[i]);
        printf_(b, ": %u%s\n", i, i + 1 < n ? "," : "");
    }
    puts_(b, "    },\n    \"merges\": [\n");
    for (size_t k = 0; k < nm; k++) {
        /* the newer pair form for even merges, "a b" for odd ones: both are accepted */
        if (k % 2) {
            char *ab = malloc((size_t)pl[m[k].l] + pl[m[k].r] + 2);
            if (!ab)
                goto out;
            memcpy(ab, p[m[k].l], pl[m[k].l]);
            ab[pl[m[k].l]] = ' ';
            memcpy(ab + pl[m[k].l] + 1, p[m[k].r], pl[m[k].r]);
            puts_(b, "      ");
            jstr(b, ab, (size_t)pl[m[k].l] + 1 + pl[m[k].r]);
            free(ab);
        } else {
            puts_(b, "      [");
            jstr(b, p[m[k].l], pl[m[k].l]);
            puts_(b, ", ");
            jstr(b, p[m[k].r], pl[m[k].r]);
            puts_(b, "]");
        }
        puts_(b, k + 1 < nm ? ",\n" : "\n");
    }
    puts_(b, "    ]\n  }\n}\n");
    rc = b->oom ? -1 : 0;
out:
    if (p)
        for (uint32_t i = 0; i < n; i++)
            free(p[i]);
    free(p);
    free(pl);
    free(m);
    return rc;
}

/* ---- Hugging Face ---------------------------------------------------------------------------- */

static int dtype_code(const char *d) { return !strcmp(d, "f32") ? 0 : !strcmp(d, "f16") ? 1 : !strcmp(d, "bf16") ? 2 : -1; }

static void put_values(buf *b, const float *v, size_t n, int dt)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == 0) {
            uint32_t x;
            memcpy(&x, &v[i], 4);
            put_u32(b, x);
        } else {
            uint16_t h = dt == 1 ? kt_f32_to_f16(v[i]) : kt_f32_to_bf16(v[i]);
            uint8_t x[2] = { (uint8_t)h, (uint8_t)(h >> 8) };
            put(b, x, 2);
        }
    }
}

static int write_safetensors(kt_source *src, const char *path, const xt *t, uint32_t nt, int dt, const char *omit,
                             char *err, size_t errlen)
{
    buf hdr = { 0 }, data = { 0 };
    int rc = -1;
    static const char *names[] = { "F32", "F16", "BF16" };
    size_t esz = dt == 0 ? 4 : 2;
    puts_(&hdr, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (uint32_t i = 0; i < nt; i++) {
        if (omit && !strcmp(omit, t[i].name))
            continue;
        float *v = read_tensor(src, &t[i], 1, err, errlen);
        if (!v)
            goto out;
        size_t n = (size_t)t[i].rows * t[i].cols, off = data.n;
        put_values(&data, v, n, dt);
        free(v);
        printf_(&hdr, ", \"%s\": {\"dtype\": \"%s\", \"shape\": ", t[i].name, names[dt]);
        if (t[i].vec)
            printf_(&hdr, "[%u]", t[i].cols);
        else
            printf_(&hdr, "[%u, %u]", t[i].rows, t[i].cols);
        printf_(&hdr, ", \"data_offsets\": [%zu, %zu]}", off, off + n * esz);
    }
    puts_(&hdr, "}");
    while (hdr.n % 8)
        puts_(&hdr, " ");
    buf all = { 0 };
    put_u64(&all, hdr.n);
    put(&all, hdr.p, hdr.n);
    put(&all, data.p, data.n);
    rc = write_file(path, &all, err, errlen);
    free(all.p);
out:
    free(hdr.p);
    free(data.p);
    return rc;
}

int kx_export_hf(kt_source *src, const char *dir, const kx_opts *o, char *err, size_t errlen)
{
    const nn_config *c = &src->cfg;
    int dt = dtype_code(o->dtype ? o->dtype : "f32");
    if (dt < 0) {
        snprintf(err, errlen, "dtype must be f32, f16 or bf16");
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    buf b = { 0 };
    printf_(&b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"llama\",\n", o->arch ? o->arch :
            "LlamaForCausalLM");
    printf_(&b, "  \"hidden_size\": %u,\n  \"intermediate_size\": %u,\n  \"num_hidden_layers\": %u,\n"
            "  \"num_attention_heads\": %u,\n  \"num_key_value_heads\": %u,\n  \"head_dim\": %u,\n"
            "  \"vocab_size\": %u,\n  \"max_position_embeddings\": %u,\n", c->dim, c->hidden_dim, c->n_layers,
            c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq);
    printf_(&b, "  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n  \"rope_scaling\": null,\n"
            "  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n"
            "  \"mlp_bias\": false,\n  \"bos_token_id\": %u,\n  \"eos_token_id\": %u,\n  \"torch_dtype\": \"%s\"\n}\n",
            src->norm_eps, o->rope_theta ? o->rope_theta : src->rope_theta,
            c->flags & NN_IMG_FLAG_TIED_CLASSIFIER ? "true" : "false", src->vocab.bos_id, src->vocab.eos_id,
            dt == 0 ? "float32" : dt == 1 ? "float16" : "bfloat16");
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = write_file(path, &b, err, errlen);
    free(b.p);
    if (rc)
        return -1;

    b = (buf){ 0 };
    printf_(&b, "{\n  \"add_bos_token\": true,\n  \"add_eos_token\": false,\n  \"bos_token\": {\"__type\": "
            "\"AddedToken\", \"content\": \"<s>\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
            "\"single_word\": false},\n  \"eos_token\": \"</s>\",\n  \"unk_token\": \"<unk>\",\n  \"legacy\": true,\n"
            "  \"model_max_length\": %u,\n  \"tokenizer_class\": \"LlamaTokenizer\"\n}\n", c->max_seq);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    rc = write_file(path, &b, err, errlen);
    free(b.p);
    if (rc)
        return -1;
    b = (buf){ 0 };
    if (tokenizer_json(&src->vocab, &b)) {
        free(b.p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    rc = write_file(path, &b, err, errlen);
    free(b.p);
    if (rc)
        return -1;

    xt *t = malloc((c->n_layers * 9 + 4) * sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t nt = list_tensors(c, t, 0), shards = o->shards > 1 ? o->shards : 1;
    if (shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = write_safetensors(src, path, t, nt, dt, o->omit, err, errlen);
    } else {
        /* Consecutive runs of tensors per shard, and the index naming them. */
        b = (buf){ 0 };
        puts_(&b, "{\n  \"metadata\": {\"total_size\": 0},\n  \"weight_map\": {\n");
        uint32_t per = (nt + shards - 1) / shards, first = 1;
        for (uint32_t s = 0; s < shards && !rc; s++) {
            uint32_t a = s * per, e = a + per < nt ? a + per : nt;
            char file[64];
            snprintf(file, sizeof file, "model-%05u-of-%05u.safetensors", s + 1, shards);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            rc = write_safetensors(src, path, t + a, e > a ? e - a : 0, dt, o->omit, err, errlen);
            for (uint32_t i = a; i < e; i++) {
                if (o->omit && !strcmp(o->omit, t[i].name))
                    continue;
                printf_(&b, "%s    \"%s\": \"%s\"", first ? "" : ",\n", t[i].name, file);
                first = 0;
            }
        }
        puts_(&b, "\n  }\n}\n");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!rc)
            rc = write_file(path, &b, err, errlen);
        free(b.p);
    }
    free(t);
    return rc;
}

/* ---- GGUF -------------------------------------------------------------------------------------- */

static void g_str(buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

static void g_key(buf *b, const char *k, uint32_t type)
{
    g_str(b, k, strlen(k));
    put_u32(b, type);
}

static void g_u32(buf *b, const char *k, uint32_t v)
{
    g_key(b, k, 4);
    put_u32(b, v);
}

static void g_f32(buf *b, const char *k, float v)
{
    uint32_t x;
    memcpy(&x, &v, 4);
    g_key(b, k, 6);
    put_u32(b, x);
}

static void g_s(buf *b, const char *k, const char *v)
{
    g_key(b, k, 8);
    g_str(b, v, strlen(v));
}

/* ggml's quantize_row_q8_0: d = amax / 127 (as fp16), q = round(x / d). */
static void put_q8_0(buf *b, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 32) {
        float amax = 0;
        for (int k = 0; k < 32; k++)
            amax = fmaxf(amax, fabsf(x[i + k]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        uint16_t h = kt_f32_to_f16(d);
        uint8_t hb[2] = { (uint8_t)h, (uint8_t)(h >> 8) };
        put(b, hb, 2);
        for (int k = 0; k < 32; k++) {
            int8_t q = (int8_t)roundf(x[i + k] * id);
            put(b, &q, 1);
        }
    }
}

int kx_export_gguf(kt_source *src, const char *path, const kx_opts *o, char *err, size_t errlen)
{
    const nn_config *c = &src->cfg;
    const kt_vocab *v = &src->vocab;
    const char *dtype = o->dtype ? o->dtype : "f32";
    int q8 = !strcmp(dtype, "q8_0"), f16 = !strcmp(dtype, "f16");
    if (!q8 && !f16 && strcmp(dtype, "f32")) {
        snprintf(err, errlen, "gguf type must be f32, f16 or q8_0");
        return -1;
    }
    xt *t = malloc((c->n_layers * 9 + 4) * sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t nt = list_tensors(c, t, 1), kept = 0;
    for (uint32_t i = 0; i < nt; i++)
        kept += !(o->omit && !strcmp(o->omit, t[i].name));
    buf h = { 0 }, data = { 0 };
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, kept);
    int hd = c->head_dim != c->dim / c->n_heads;
    put_u64(&h, 20 + 2 * hd);                      /* metadata entries, as written below */
    g_s(&h, "general.architecture", o->arch ? o->arch : "llama");
    g_s(&h, "general.name", "stories260K");
    g_u32(&h, "general.file_type", q8 ? 7 : f16 ? 1 : 0);
    g_u32(&h, "llama.context_length", c->max_seq);
    g_u32(&h, "llama.embedding_length", c->dim);
    g_u32(&h, "llama.block_count", c->n_layers);
    g_u32(&h, "llama.feed_forward_length", c->hidden_dim);
    g_u32(&h, "llama.rope.dimension_count", c->head_dim);
    g_u32(&h, "llama.attention.head_count", c->n_heads);
    g_u32(&h, "llama.attention.head_count_kv", c->n_kv_heads);
    if (hd) {
        g_u32(&h, "llama.attention.key_length", c->head_dim);
        g_u32(&h, "llama.attention.value_length", c->head_dim);
    }
    g_f32(&h, "llama.attention.layer_norm_rms_epsilon", (float)src->norm_eps);
    g_f32(&h, "llama.rope.freq_base", (float)(o->rope_theta ? o->rope_theta : src->rope_theta));
    g_s(&h, "tokenizer.ggml.model", "llama");
    g_key(&h, "tokenizer.ggml.tokens", 9);
    put_u32(&h, 8);
    put_u64(&h, v->n);
    for (uint32_t i = 0; i < v->n; i++) {
        uint32_t len;
        char *p = piece(v, i, &len);
        if (!p) {
            h.oom = 1;
            break;
        }
        g_str(&h, p, len);
        free(p);
    }
    g_key(&h, "tokenizer.ggml.scores", 9);
    put_u32(&h, 6);
    put_u64(&h, v->n);
    for (uint32_t i = 0; i < v->n; i++) {
        uint32_t x;
        memcpy(&x, &v->score[i], 4);
        put_u32(&h, x);
    }
    g_key(&h, "tokenizer.ggml.token_type", 9);
    put_u32(&h, 5);
    put_u64(&h, v->n);
    for (uint32_t i = 0; i < v->n; i++)
        put_u32(&h, i == 0 ? 2 : (i == v->bos_id || i == v->eos_id) ? 3 : (i >= v->byte_base && i < v->byte_base + 256)
                                                                                ? 6 : 1);
    g_u32(&h, "tokenizer.ggml.bos_token_id", v->bos_id);
    g_u32(&h, "tokenizer.ggml.eos_token_id", v->eos_id);
    g_u32(&h, "tokenizer.ggml.unknown_token_id", 0);
    g_key(&h, "tokenizer.ggml.add_bos_token", 7);
    uint8_t yes = 1;
    put(&h, &yes, 1);

    int rc = 0;
    for (uint32_t i = 0; i < nt && !rc; i++) {
        if (o->omit && !strcmp(o->omit, t[i].name))
            continue;
        float *x = read_tensor(src, &t[i], 0, err, errlen);
        if (!x) {
            rc = -1;
            break;
        }
        size_t n = (size_t)t[i].rows * t[i].cols;
        /* llama.cpp keeps vectors in F32, and rows that Q8_0 blocks cannot tile in F16. */
        uint32_t type = t[i].vec ? 0 : q8 && t[i].cols % 32 == 0 ? 8 : (q8 || f16) ? 1 : 0;
        while (data.n % 32)
            put(&data, "", 1);
        g_str(&h, t[i].name, strlen(t[i].name));
        put_u32(&h, t[i].vec ? 1 : 2);
        put_u64(&h, t[i].cols);
        if (!t[i].vec)
            put_u64(&h, t[i].rows);
        put_u32(&h, type);
        put_u64(&h, data.n);
        if (type == 8)
            put_q8_0(&data, x, n);
        else
            put_values(&data, x, n, type == 1 ? 1 : 0);
        free(x);
    }
    while (h.n % 32)
        put(&h, "", 1);
    put(&h, data.p, data.n);
    if (!rc)
        rc = write_file(path, &h, err, errlen);
    free(h.p);
    free(data.p);
    free(t);
    return rc;
}
