/*
 * kvtools.h: code shared by the host tools (kvmesh-convert, kvmesh-eval, kvmesh-kv, ...).
 * Host-only: floating point and heap allocation are fine here, never in nn/.
 *
 * Writing an image:
 *     kt_img w;
 *     kt_img_init(&w, &cfg);                                // header fields
 *     kt_img_add_q8(&w, NN_T_WQ, 0, wq_f32, rows, cols);     // quantised, MSE-optimal scales
 *     kt_img_add_norm(&w, NN_T_ATT_NORM, 0, g_f32, dim);
 *     ... every tensor ...
 *     kt_img_write(&w, "out.kvm", errbuf, sizeof errbuf);   // atomic: temp file + rename
 *     kt_img_free(&w);
 */
#ifndef KVTOOLS_H
#define KVTOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nn.h"

/* ---- image writer ------------------------------------------------------------------- */

typedef struct kt_img {
    nn_config cfg;
    uint8_t  *buf;        /* header + tensor data (directory appended at write) */
    size_t    len, cap;
    uint8_t  *dir;        /* n * NN_IMAGE_DIR_ENTRY_BYTES */
    uint32_t  n, dir_cap;
    int       oom;        /* an allocation failed; kt_img_finish reports it */
    int       finished;   /* header, directory and fingerprint are in buf */
    uint32_t  numerics;   /* the header's numerics version (kt_img_init: NN_NUMERICS_VERSION) */
} kt_img;

void kt_img_init(kt_img *w, const nn_config *cfg);
void kt_img_free(kt_img *w);

/*
 * Quantises a float matrix [rows][cols] to NN_DT_Q8G with the image's group size:
 * one exponent for the tensor, a 16-bit mantissa per group chosen to minimise the
 * group's squared error, int8 values in [-127, 127]. Returns 0, or -1 when out of
 * memory or on non-finite input.
 */
int kt_img_add_q8(kt_img *w, uint32_t kind, uint32_t layer, const float *v, uint32_t rows, uint32_t cols);

/* Adds already-quantised Q8G data (for example GGUF Q8_0 blocks mapped exactly). */
int kt_img_add_q8_raw(kt_img *w, uint32_t kind, uint32_t layer, const int8_t *q, const uint16_t *m,
                      int32_t exp, uint32_t rows, uint32_t cols);

/* Copies a tensor of another image as it is (data, scales, exponent). Returns 0 or -1. */
int kt_img_add_tensor(kt_img *w, const nn_tensor *t);

/*
 * GGUF Q8_0 blocks (32 int8 values and one fp16 scale d each) as NN_DT_Q8G with group
 * 32 (cols % 32 == 0). The tensor exponent is the largest that fits every block's d in
 * a 16-bit mantissa; a block whose d is then an exact mantissa and whose values are in
 * [-127, 127] is copied bit for bit, any other block is re-quantised from q * d.
 * Adds the counts to *exact and *requant. Returns 0, or -1 (non-finite scale, memory).
 */
int kt_img_add_q8_0(kt_img *w, uint32_t kind, uint32_t layer, const uint16_t *d, const int8_t *q, uint32_t rows,
                    uint32_t cols, uint64_t *exact, uint64_t *requant);

/* A norm-gain vector as NN_DT_I32 with |v| < 2^30. Returns 0 or -1. */
int kt_img_add_norm(kt_img *w, uint32_t kind, uint32_t layer, const float *v, uint32_t n);

int kt_img_add_u64(kt_img *w, uint32_t kind, uint32_t layer, const uint64_t *v, uint32_t n);
int kt_img_add_bytes(kt_img *w, uint32_t kind, uint32_t layer, const void *p, uint32_t n);

/* RoPE phase table: freq[i] = theta^(-2i/head_dim) / (2 pi) turns per position. */
int kt_img_add_rope(kt_img *w, double theta, uint32_t head_dim);

/*
 * Appends the directory and fills the header and fingerprint: buf[0, len) is then a
 * complete image (nn_image_from_memory accepts it). Adding tensors afterwards is an
 * error. Returns 0, or -1 with a message in err.
 */
int kt_img_finish(kt_img *w, char *err, size_t errlen);

/*
 * Finishes the image, then writes it to path through a temporary file in the
 * same directory, then renames it into place, so a failed run never leaves a partial
 * image behind. Returns 0, or -1 with a message in err.
 */
int kt_img_write(kt_img *w, const char *path, char *err, size_t errlen);

/* ---- tokenizer ------------------------------------------------------------------------ */

/*
 * A tokenizer in host form. NN_TOK_LLAMA2C: strings with float scores, as llama2.c
 * stores them. NN_TOK_BPE: lookup strings (the vocabulary's own form, raw bytes for
 * byte-level), display strings, merges in rank order and the options of nn_tokenizer.h.
 */
typedef struct kt_vocab {
    uint32_t n;
    uint32_t max_token_len;
    char   **str;      /* n strings (may contain any bytes but NUL) */
    uint32_t *len;
    float   *score;    /* NN_TOK_LLAMA2C */
    uint32_t bos_id, eos_id, byte_base;
    uint32_t kind;     /* nn_tok_kind */
    /* NN_TOK_BPE */
    char   **disp;     /* display strings; NULL entries (or array) = same as str */
    uint32_t *disp_len;
    uint8_t  *added;   /* per id: KT_ADDED = not in the model vocabulary (never looked up or
                        * merged), KT_SPECIAL = matched in text; 0 = plain vocabulary token */
    uint32_t (*merges)[3];   /* {left, right, result}, lowest rank first */
    uint32_t n_merges;
    uint32_t flags, pretok, unk_id;
    uint32_t byte_ids[256];
} kt_vocab;

#define KT_ADDED 1
#define KT_SPECIAL 2

/* Allocates n empty entries of the given kind (str/len/score, and disp/added for BPE). */
int kt_vocab_alloc(kt_vocab *v, uint32_t n, uint32_t kind);
/* Sets entry i's string (copied). Returns 0 or -1 (out of memory). */
int kt_vocab_set(kt_vocab *v, uint32_t i, const void *s, uint32_t len);
int kt_vocab_set_disp(kt_vocab *v, uint32_t i, const void *s, uint32_t len);

void kt_vocab_free(kt_vocab *v);

/*
 * Reads a llama2.c tokenizer.bin with exactly expect_n entries (the model's vocab).
 * Returns 0, or -1 with a message in err (truncated file, entry count disagreeing with
 * expect_n, oversize strings).
 */
int kt_vocab_read_llama2c(kt_vocab *v, const char *path, uint32_t expect_n, char *err, size_t errlen);

/* A synthetic llama2.c-style vocabulary of n tokens (random-weight images). n >= 259. */
int kt_vocab_synthetic(kt_vocab *v, uint32_t n);

/* Serialises v as an NN_T_TOKENIZER blob (see nn_tokenizer.h). Caller frees *out. */
int kt_vocab_blob(const kt_vocab *v, uint8_t **out, uint32_t *out_len);

/* ---- files and progress --------------------------------------------------------------- */

/* Maps a whole file read-only. Returns 0 or -1 (errno set). kt_unmap accepts NULL. */
int kt_map(const char *path, const uint8_t **data, size_t *size);
void kt_unmap(const uint8_t *data, size_t size);

/* Progress on stderr: "label: done/total", redrawn in place on a terminal. */
void kt_progress(const char *label, uint64_t done, uint64_t total);

/* Resolve a model file: $KVMESH_MODELS/<rel>, defaulting to ../shared/models. */
const char *kt_models_dir(void);

/* IEEE half and bfloat16 to float. */
float kt_f16_to_f32(uint16_t h);
float kt_bf16_to_f32(uint16_t h);
uint16_t kt_f32_to_f16(float f);
uint16_t kt_f32_to_bf16(float f);


/* ---- engine set-up for host tools ----------------------------------------------------- */

/*
 * One image, its model views, a session and (optionally) a KV work area and a sampler,
 * in one heap block: host tools allocate once at start-up.
 */
typedef struct kt_engine_opts {
    uint32_t    ctx;          /* 0: the model's max_seq */
    uint32_t    batch;        /* 0: 32 */
    uint32_t    threads;      /* 0: 1 */
    const char *kernels;      /* NULL: best */
    int         all_logits;
    int         kv_work;      /* carve an nn_kv_work for ctx positions */
    int         sampler;      /* carve a sampler with temp/top-p/seed below */
    int32_t     temp_q16, topp_q16;
    uint64_t    seed;
} kt_engine_opts;

typedef struct kt_engine {
    nn_image   img;
    nn_model  *m;
    nn_session s;
    nn_kv_work w;
    nn_sampler sp;
    void      *mem;
} kt_engine;

/* Returns 0, or -1 with a message "<prog>: ..." on stderr. */
int kt_engine_open(kt_engine *e, const char *prog, const char *path, const kt_engine_opts *o);
void kt_engine_close(kt_engine *e);

/*
 * Reads a golden tokens file (lines "pos input next", pos counting from 0, tokens below
 * vocab): the input tokens into a malloc'd array. Returns the count, or -1 with a message
 * "<prog>: <file>:<line>: ..." on stderr.
 */
long kt_read_tokens(const char *prog, const char *path, uint32_t vocab, uint32_t **out);

/* Writes a file through a temporary file beside it, fsync and rename. 0, or -1 with err. */
int kt_write_file_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen);

#endif
