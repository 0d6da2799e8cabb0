/*
 * A model source for kvmesh-convert: something that yields a llama-family model as
 * float tensors, one at a time, so that even a 1B-parameter model never has to sit in
 * memory as float all at once.
 */
#ifndef KT_SOURCE_H
#define KT_SOURCE_H

#include "kvtools.h"

typedef struct kt_source {
    nn_config cfg;          /* dims and flags; group_size is set by the caller */
    double    rope_theta;
    double    norm_eps;
    kt_vocab  vocab;
    /* Copies tensor (kind, layer) as float [rows][cols] into dst (rows*cols values).
     * Returns 0, or -1 with a message in err. */
    int  (*read)(struct kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n);
    void (*close)(struct kt_source *s);
    /* Optional: adds tensor (kind, layer) to the image from the source's own int8 form
     * (GGUF Q8_0). Returns 0 when added, 1 when the float path should be used
     * instead, -1 with a message in err. */
    int  (*add_native)(struct kt_source *s, kt_img *w, uint32_t kind, uint32_t layer, uint32_t rows,
                       uint32_t cols);
    uint64_t q8_exact, q8_requant;   /* Q8_0 blocks kept bit for bit / re-quantised */
    void *impl;
    char  err[512];
} kt_source;

/* llama2.c legacy checkpoint + tokenizer.bin. Returns 0 or -1 with s->err set. */
int kt_open_llama2c(kt_source *s, const char *ckpt, const char *tokenizer);

/*
 * Hugging Face llama-family directory: config.json, model.safetensors (or shards with
 * model.safetensors.index.json) in F32/F16/BF16, tokenizer.json and
 * tokenizer_config.json. q and k rows are permuted from HF's rotate-half layout to the
 * engine's interleaved pairs. Returns 0 or -1 with s->err set.
 */
int kt_open_hf(kt_source *s, const char *dir);

/* GGUF version 3, architecture llama, tensors F32/F16/BF16/Q8_0, tokenizer from the
 * metadata ("llama" SentencePiece or "gpt2" byte-level). Returns 0 or -1 with s->err. */
int kt_open_gguf(kt_source *s, const char *path);

/* tokenizer.json (+ tokenizer_config.json) of dir as an NN_TOK_BPE vocabulary of
 * expect_n ids. cfg_bos/cfg_eos (or NN_TOK_NONE) come from config.json and are used
 * when the tokenizer files name none. Returns 0 or -1 with a message in err. */
int kt_vocab_read_hf(kt_vocab *v, const char *dir, uint32_t expect_n, uint32_t cfg_bos, uint32_t cfg_eos,
                     char *err, size_t errlen);
/* The same over the two files' contents in memory (cfg_json may be NULL). */
int kt_vocab_parse_hf(kt_vocab *v, const char *tok_json, size_t tok_len, const char *cfg_json, size_t cfg_len,
                      uint32_t expect_n, uint32_t cfg_bos, uint32_t cfg_eos, char *err, size_t errlen);

/* kt_open_gguf over a GGUF image in memory that the caller keeps alive (fuzzing). */
int kt_open_gguf_mem(kt_source *s, const uint8_t *data, size_t size);

/* Random weights with a real model's shape: a preset name or "D,H,L,NH,NKV,V,S[,tied]". */
int kt_open_random(kt_source *s, const char *spec, uint64_t seed);

/*
 * Turns s into a "fine-tune" of itself: every weight-matrix entry times (1 + scale * u),
 * u uniform in [-1, 1) seeded by (seed, tensor). Returns 0 or -1 with s->err set.
 */
int kt_wrap_perturb(kt_source *s, double scale, uint64_t seed);

/* Names of the random presets, for --help. */
const char *kt_random_presets(void);

/*
 * Quantises every tensor of src (weights with groups of `group`) into a fresh image in
 * w, then completes it in memory (kt_img_finish). w must be uninitialised or freed.
 * progress: print per-layer progress on stderr. Returns 0, or -1 with src->err set.
 */
int kt_convert(kt_source *src, uint32_t group, uint32_t numerics, kt_img *w, int progress);

#endif
