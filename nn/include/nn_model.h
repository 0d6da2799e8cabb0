/*
 * nn_model.h: a llama-family transformer in integer arithmetic (numerics versions 1 and 2:
 * int16 or int8 matmul inputs, nn_kernels.h).
 *
 * A model is a set of views into a mapped image. A session owns a context: the KV
 * cache and the activation buffers, all carved from a caller's arena. Both structs are
 * caller-owned and visible, but touched only through these functions.
 *
 *     static nn_model model;                       // large (per-layer views): not on the stack
 *     nn_image img;  nn_image_open(&img, path);
 *     nn_model_init(&model, &img);
 *     nn_session_opts o = { .max_seq = 512, .max_batch = 32, .threads = 4 };
 *     size_t need;   nn_session_arena_bytes(&model, &o, &need);
 *     nn_arena a;    nn_arena_init(&a, storage, sizeof storage);
 *     nn_session s;  nn_session_init(&s, &model, &o, &a);   // NN_E_NOMEM if it does not fit
 *     const int32_t *logits;                                // Q16, [vocab]
 *     nn_session_forward(&s, prompt, n_prompt, &logits);    // prefill in blocks
 *     nn_session_forward(&s, &next, 1, &logits);            // one decode step
 *     nn_session_deinit(&s);
 *
 * Numerics, per token (Qn = int / 2^n; see nn_fixed.h and nn_kernels.h):
 *   residual x          int32 Q16 [dim]
 *   norm output         int16 [dim] + one nn_scale; RMSNorm via exact sum of squares
 *                       (128-bit) and an integer square root; 1/rms folds into the scale
 *   q, k, v, o, h1, h3  int32 Q16 from nn_matmul_q8_q16 (one rounding each)
 *   RoPE                interleaved pairs; phase = pos * freq (turns, wraps mod 2^64);
 *                       sin/cos Q30
 *   KV cache            int16 [layer][pos][kv_dim] with one power-of-two exponent per
 *                       (layer, pos, kv head): real = v * 2^(t - 16)
 *   scores              q (int16 per head) . k exact in int64, times 1/sqrt(head_dim)
 *                       in Q24, to Q16
 *   softmax             exp by exp2 polynomial (Q30), probabilities Q30 via one
 *                       reciprocal per row
 *   attention output    exact int64 sum of p * v (p aligned to the row's largest V
 *                       exponent), to Q16
 *   SwiGLU              silu(h1) Q16 (sigmoid Q30) times h3 Q16 -> int64 Q32, then
 *                       quantised to int16 for the down projection
 *   logits              int32 Q16 [vocab]
 * Same image + same tokens = bit-identical logits, KV bytes and tokens on every
 * platform, kernel path, thread count and batch size.
 */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stdint.h>
#include "nn_base.h"
#include "nn_image.h"
#include "nn_kernels.h"
#include "nn_tokenizer.h"

/* A vector of fixed-point parameters: real = v[i] * 2^-exp. */
typedef struct nn_vec_i32 {
    const int32_t *v;
    uint32_t n;
    int32_t  exp;
} nn_vec_i32;

typedef struct nn_layer_w {
    nn_q8_mat  wq, wk, wv, wo, w1, w2, w3;
    nn_vec_i32 att_norm, ffn_norm;
    nn_q8_mat  exit_proj;          /* early-exit head at this layer's input, if has_exit */
    int        has_exit;
} nn_layer_w;

typedef struct nn_model {
    const nn_image *img;
    nn_config   cfg;
    uint32_t    q_dim;            /* n_heads * head_dim */
    uint32_t    kv_dim;           /* n_kv_heads * head_dim */
    nn_q8_mat   tok_emb;
    nn_q8_mat   cls;              /* equals tok_emb when the classifier is tied */
    nn_vec_i32  final_norm;
    const uint64_t *rope_freq;    /* [head_dim / 2] turns per position */
    int32_t     inv_sqrt_hd_q24;  /* 1 / sqrt(head_dim), Q24 */
    nn_tokenizer tok;
    nn_layer_w  layers[NN_MAX_LAYERS];
} nn_model;

/*
 * Carves the views for every tensor and checks shapes, exponents and the tokenizer.
 * img must stay open while the model is used.
 * Returns NN_OK, NN_E_ARG, NN_E_SHAPE (missing tensor or wrong shape), NN_E_CORRUPT
 * (exponent out of range) or NN_E_TOKENIZER.
 */
nn_status nn_model_init(nn_model *m, const nn_image *img);

typedef struct nn_session_opts {
    uint32_t    max_seq;    /* context length; 0: the model's max_seq. <= model max_seq */
    uint32_t    max_batch;  /* tokens per block in a forward call; 0: 1 */
    uint32_t    threads;    /* threads including the caller; 0: 1 */
    const char *kernels;    /* kernel path name; NULL: best available */
    int         all_logits; /* keep logits for every token of a block, not just the last */
    uint64_t    prefill_chunk_macs; /* smallest share of a prompt block's matmul a worker
                                       claims; 0: 64M (tests set it low to split small models) */
} nn_session_opts;

struct nn_pool;
struct nn_claim_slot;

/*
 * Called at the input of every layer with the block's residual stream: x is
 * [n][dim] Q16 for positions pos0 .. pos0+n-1, read-only and valid during the call.
 * After the last layer it is called once more with layer == n_layers (the input of the
 * final norm). Used to capture hidden states (cross-model KV reuse, split inference,
 * training exit heads).
 */
typedef void (*nn_layer_hook)(void *ctx, uint32_t layer, uint32_t pos0, uint32_t n, const int32_t *x);

typedef struct nn_session {
    const nn_model   *m;
    const nn_kernels *kern;
    struct nn_pool   *pool;
    struct nn_claim_slot *claims;       /* [threads] work ranges of the running job */
    uint32_t max_seq, max_batch, threads, all_logits;
    uint64_t prefill_chunk_macs;        /* see nn_session_opts */
    uint32_t n_pos;                     /* positions held in the KV cache */
    /* KV cache */
    int16_t *kc, *vc;                   /* [n_layers][max_seq][kv_dim] */
    int8_t  *kt, *vt;                   /* [n_layers][max_seq][n_kv_heads] exponents */
    /* block activations, [max_batch][...] */
    int32_t *x;                         /* [B][dim] residual, Q16 */
    int16_t *xa;                        /* [B][max(dim, q_dim, hidden)] matmul input */
    nn_scale *xs;                       /* [B] scales of xa */
    int8_t  *xa8;                       /* numerics version 2: xa as int8 in groups, */
    uint8_t *xsh;                       /*   each group's step and sum (NULL in version 1) */
    int32_t *xsum;
    int32_t *q, *k, *v;                 /* [B][q_dim], [B][kv_dim], [B][kv_dim] Q16 */
    int32_t *att;                       /* [B][q_dim] Q16 */
    int32_t *o;                         /* [B][dim] Q16 */
    int32_t *h1, *h3;                   /* [B][hidden] Q16 */
    int32_t *rope;                      /* [B][head_dim/2][2] sin, cos Q30 */
    int32_t *logits;                    /* [B or 1][vocab] Q16 */
    /* per-thread scratch for attention */
    uint8_t *scratch;
    size_t   scratch_stride;
    nn_layer_hook hook;                 /* optional, see nn_session_set_hook */
    void         *hook_ctx;
} nn_session;

/*
 * Bytes of arena a session with these options needs for this model. Exactly what
 * nn_session_init carves. Returns NN_OK or NN_E_ARG (options out of range).
 */
nn_status nn_session_arena_bytes(const nn_model *m, const nn_session_opts *o, size_t *bytes);

/*
 * Carves the session from a and starts its worker threads.
 * Returns NN_OK, NN_E_ARG, NN_E_NOMEM (the arena is too small: nn_arena_needed(a)
 * then says how much the whole session needs), NN_E_THREAD, or NN_E_ARG for an
 * unknown or unsupported kernel path.
 */
nn_status nn_session_init(nn_session *s, const nn_model *m, const nn_session_opts *o, nn_arena *a);

/* Stops the worker threads. The arena memory is the caller's. Accepts NULL. */
void nn_session_deinit(nn_session *s);

/*
 * Several conversations on one session (a peer serving several devices): each keeps
 * its own KV cache, and the session's weights, activations and threads are shared.
 * nn_kv_cache_carve carves another cache shaped like s's (nn_kv_cache_bytes of arena,
 * plus the alignment of its start; NN_E_NOMEM when it does not fit, and then
 * nn_arena_needed(a) says how much it takes); nn_session_kv_get reads the cache s uses
 * now (and its n_pos), nn_session_kv_set makes s use another. A cache is only ever used
 * by sessions of the same model and max_seq.
 *
 *     nn_kv_cache a, b;
 *     nn_session_kv_get(&s, &a);  nn_kv_cache_carve(&s, &arena, &b);
 *     ... conversation A on s ...
 *     nn_session_kv_get(&s, &a);  nn_session_kv_set(&s, &b);   // to B, A kept in a
 */
typedef struct nn_kv_cache {
    int16_t *kc, *vc;
    int8_t  *kt, *vt;
    uint32_t n_pos;
} nn_kv_cache;

size_t nn_kv_cache_bytes(const nn_session *s);
nn_status nn_kv_cache_carve(const nn_session *s, nn_arena *a, nn_kv_cache *k);
void nn_session_kv_get(const nn_session *s, nn_kv_cache *k);
void nn_session_kv_set(nn_session *s, const nn_kv_cache *k);

/*
 * Appends n tokens at positions n_pos .. n_pos+n-1 (any n; blocks of max_batch are run
 * internally) and sets *logits to Q16 logits valid until the next call on s: those of
 * the last token, or with all_logits those of the last block, [block][vocab].
 * logits may be NULL when they are not needed (prefix prefill).
 * Returns NN_OK, NN_E_ARG, or NN_E_RANGE (token >= vocab, or the context would pass
 * max_seq; nothing is appended then).
 */
nn_status nn_session_forward(nn_session *s, const uint32_t *tokens, uint32_t n, const int32_t **logits);

/* Forgets positions >= n_pos (n_pos <= current): rollback or a fresh context (0). */
nn_status nn_session_truncate(nn_session *s, uint32_t n_pos);

/*
 * Declares positions [0, n_pos) valid after the caller filled the KV cache itself
 * (nn_kv_import, nn_session_run_layers). Returns NN_OK or NN_E_ARG (n_pos > max_seq).
 */
nn_status nn_session_set_pos(nn_session *s, uint32_t n_pos);

/*
 * Runs layers [l0, l1) for n positions pos0 .. pos0+n-1 from their residual stream at
 * the input of layer l0 (x_in, [n][dim] Q16), in blocks of max_batch. Writes those
 * layers' KV at those positions; attention reads the same layers' KV below pos0, which
 * must be valid. x_out ([n][dim], may equal x_in or be NULL) receives the output of
 * layer l1-1. n_pos is not changed. The same integer math as nn_session_forward, so
 * a model run in pieces is bit-identical to one run whole.
 * Returns NN_OK, NN_E_ARG or NN_E_RANGE.
 */
nn_status nn_session_run_layers(nn_session *s, uint32_t pos0, const int32_t *x_in, uint32_t n, uint32_t l0,
                                uint32_t l1, int32_t *x_out);

/*
 * As nn_session_run_layers, for a caller that needs layer l1-1's output only for the
 * last position (x_last, [dim]) or not at all (x_last NULL): every layer's KV is
 * written for every position, but layer l1-1's attention output and feed-forward run
 * for the last position alone. Bit-identical to nn_session_run_layers in what it
 * writes. (A prompt's last layer, where only the last row meets the classifier, or a
 * split's tail layers: nn_session_forward does the same when all_logits is off.)
 */
nn_status nn_session_run_layers_kv(nn_session *s, uint32_t pos0, const int32_t *x_in, uint32_t n, uint32_t l0,
                                   uint32_t l1, int32_t *x_last);

/*
 * Logits (Q16, [n][vocab] into out) of n residual-stream rows x ([n][dim], Q16, the
 * output of the last layer): the final norm and the classifier, as nn_session_forward
 * ends. Returns NN_OK or NN_E_ARG.
 */
nn_status nn_session_logits(nn_session *s, const int32_t *x, uint32_t n, int32_t *out);

/*
 * Early-exit logits at the input of `layer` (1 <= layer <= n_layers): x + A x when the
 * image has a trained head for that layer (NN_T_EXIT_PROJ), else x itself, then the
 * final norm and the classifier. layer == n_layers gives the full model's logits.
 * Returns NN_OK or NN_E_ARG.
 */
nn_status nn_session_exit_logits(nn_session *s, uint32_t layer, const int32_t *x, uint32_t n, int32_t *out);

/*
 * Confidence of a logits row: the top-1 probability in Q30 (softmax in fixed point) and
 * the margin between the two largest logits in Q16. Returns the top-1 index.
 */
uint32_t nn_logits_confidence(const int32_t *logits, uint32_t vocab, int32_t *p1_q30, int32_t *margin_q16);

/*
 * The residual stream at the input of layer 0 for n tokens: their embeddings, Q16,
 * into x ([n][dim]). Returns NN_OK, NN_E_ARG or NN_E_RANGE (token >= vocab).
 */
nn_status nn_session_embed(const nn_session *s, const uint32_t *tokens, uint32_t n, int32_t *x);

/* Installs (or, with fn NULL, removes) the per-layer hook. */
void nn_session_set_hook(nn_session *s, nn_layer_hook fn, void *ctx);

#endif
