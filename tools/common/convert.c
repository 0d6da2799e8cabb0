/*
 * Source -> image: reads each tensor as float, quantises it and appends it, then adds
 * the RoPE phase table and the tokenizer. Shared by kvmesh-convert and the tests.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

static const char *kind_name(uint32_t k)
{
    static const char *n[] = { "", "tok_embeddings", "attention_norm", "wq", "wk", "wv", "wo", "ffn_norm",
                               "w1", "w2", "w3", "norm", "output", "rope", "tokenizer" };
    return k < sizeof n / sizeof n[0] ? n[k] : "?";
}

/* Reads one tensor from the source and adds it, quantised, to the image. */
static int add_tensor(kt_source *src, kt_img *img, float *buf, uint32_t kind, uint32_t layer,
                      uint32_t rows, uint32_t cols, int is_norm)
{
    size_t n = (size_t)rows * cols;
    if (!is_norm && src->add_native) {
        int native = src->add_native(src, img, kind, layer, rows, cols);
        if (native <= 0)
            return native;
    }
    if (src->read(src, kind, layer, buf, n))
        return -1;
    int rc = is_norm ? kt_img_add_norm(img, kind, layer, buf, cols)
                     : kt_img_add_q8(img, kind, layer, buf, rows, cols);
    if (rc) {
        if (layer == NN_LAYER_NONE)
            snprintf(src->err, sizeof src->err, "cannot quantise %s: non-finite values or out of range", kind_name(kind));
        else
            snprintf(src->err, sizeof src->err, "cannot quantise layer %u %s: non-finite values or out of range",
                     layer, kind_name(kind));
    }
    return rc;
}

int kt_convert(kt_source *src, uint32_t group, uint32_t numerics, kt_img *img, int progress)
{
    nn_config cfg = src->cfg;
    cfg.group_size = group;
    cfg.tokenizer_kind = src->vocab.kind;
    cfg.rope_theta_q16 = (uint64_t)llround(src->rope_theta * 65536.0);
    cfg.norm_eps_q32 = (uint64_t)llround(src->norm_eps * 4294967296.0);
    if (cfg.norm_eps_q32 == 0)
        cfg.norm_eps_q32 = 1;
    uint32_t dim = cfg.dim, hid = cfg.hidden_dim, qd = cfg.n_heads * cfg.head_dim;
    uint32_t kvd = cfg.n_kv_heads * cfg.head_dim;
    size_t biggest = (size_t)cfg.vocab_size * dim;
    if ((size_t)hid * dim > biggest)
        biggest = (size_t)hid * dim;
    float *buf = malloc(biggest * sizeof *buf);
    kt_img_init(img, &cfg);
    img->numerics = numerics;
    if (!buf) {
        snprintf(src->err, sizeof src->err, "out of memory");
        return -1;
    }

    int rc = add_tensor(src, img, buf, NN_T_TOK_EMB, NN_LAYER_NONE, cfg.vocab_size, dim, 0);
    for (uint32_t l = 0; l < cfg.n_layers && !rc; l++) {
        rc = add_tensor(src, img, buf, NN_T_ATT_NORM, l, 1, dim, 1) ||
             add_tensor(src, img, buf, NN_T_WQ, l, qd, dim, 0) ||
             add_tensor(src, img, buf, NN_T_WK, l, kvd, dim, 0) ||
             add_tensor(src, img, buf, NN_T_WV, l, kvd, dim, 0) ||
             add_tensor(src, img, buf, NN_T_WO, l, dim, qd, 0) ||
             add_tensor(src, img, buf, NN_T_FFN_NORM, l, 1, dim, 1) ||
             add_tensor(src, img, buf, NN_T_W1, l, hid, dim, 0) ||
             add_tensor(src, img, buf, NN_T_W2, l, dim, hid, 0) ||
             add_tensor(src, img, buf, NN_T_W3, l, hid, dim, 0);
        if (progress)
            kt_progress("kvmesh-convert: layers", l + 1, cfg.n_layers);
    }
    if (!rc)
        rc = add_tensor(src, img, buf, NN_T_FINAL_NORM, NN_LAYER_NONE, 1, dim, 1);
    if (!rc && !(cfg.flags & NN_IMG_FLAG_TIED_CLASSIFIER))
        rc = add_tensor(src, img, buf, NN_T_CLS, NN_LAYER_NONE, cfg.vocab_size, dim, 0);
    if (!rc && kt_img_add_rope(img, src->rope_theta, cfg.head_dim)) {
        snprintf(src->err, sizeof src->err, "cannot build the RoPE table");
        rc = -1;
    }
    if (!rc) {
        uint8_t *blob = NULL;
        uint32_t blen;
        if (kt_vocab_blob(&src->vocab, &blob, &blen) || kt_img_add_bytes(img, NN_T_TOKENIZER, NN_LAYER_NONE, blob, blen)) {
            snprintf(src->err, sizeof src->err, "cannot build the tokenizer");
            rc = -1;
        }
        free(blob);
    }
    free(buf);
    if (!rc && kt_img_finish(img, src->err, sizeof src->err))
        rc = -1;
    return rc ? -1 : 0;
}
