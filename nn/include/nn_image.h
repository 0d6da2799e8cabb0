/*
 * nn_image.h: the versioned, read-only model image (DESIGN.md section 5).
 *
 * An image is one file, memory-mapped read-only; tensors are used in place, never
 * copied. All fields are little-endian.
 *
 * Layout
 *   [0, 256)        header (offsets below)
 *   [256, ...)      tensor data, each region 64-byte aligned
 *   [dir_offset..)  tensor directory: n_tensors entries of 48 bytes
 *
 * Header (NN_IMG_OFF_* are byte offsets)
 *   0   u8[8]  magic "KVMESHIM"
 *   8   u32    format_version      (NN_IMAGE_FORMAT_VERSION)
 *   12  u32    numerics_version    (NN_NUMERICS_VERSION)
 *   16  u32    header_bytes        (256)
 *   20  u32    flags               (NN_IMG_FLAG_*)
 *   24  u32    dim, 28 hidden_dim, 32 n_layers, 36 n_heads, 40 n_kv_heads,
 *   44  u32    head_dim, 48 vocab_size, 52 max_seq, 56 group_size, 60 tokenizer_kind
 *   64  u64    rope_theta_q16      (RoPE base theta * 2^16; informational: the phase
 *                                   table NN_T_ROPE_FREQ is what the engine uses)
 *   72  u64    norm_eps_q32        (RMSNorm epsilon * 2^32)
 *   80  u32    n_tensors
 *   84  u32    reserved (0)
 *   88  u64    dir_offset
 *   96  u64    file_bytes          (the whole file)
 *   104 u8[32] fingerprint         sha256 of the whole file with these 32 bytes zeroed
 *   136 ...    zero up to 256
 *
 * Directory entry (48 bytes)
 *   0 u32 kind (nn_tensor_kind)  4 u32 layer (NN_LAYER_NONE for global tensors)
 *   8 u32 dtype (nn_dtype)       12 u32 rows     16 u32 cols     20 i32 exp
 *   24 u64 data_offset           32 u64 data_bytes               40 u64 scale_offset
 *
 * Tensor formats (numerics version 1)
 *   NN_DT_Q8G  int8 q[rows][cols] in [-127, 127], and uint16 m[rows][ceil(cols/group)]
 *              at scale_offset. Real weight = q * m[group] * 2^-exp. The last group of
 *              a row is short when cols % group != 0 (ragged tail).
 *   NN_DT_Q8G8 (numerics version 2 only; every matmul weight but the embedding) the same
 *              values interleaved for int8 dot products: 8 rows by 4 columns per 32
 *              bytes, q8[ceil(rows/8)][ceil(cols/4)][8][4] = q[8 rb + r][4 c + b], and
 *              m8[ceil(rows/8)][ceil(cols/group)][8] = m[8 rb + r][g]; padding rows and
 *              columns hold 0. group % 4 == 0, so no 4 columns cross a group.
 *   NN_DT_I32  int32 v[rows][cols]; real = v * 2^-exp (norm gains: |v| < 2^30).
 *   NN_DT_U64  uint64 v[rows][cols] (the RoPE phase table: turns per position).
 *   NN_DT_BYTES  an opaque blob of cols bytes (rows = 1), e.g. the tokenizer.
 *
 * The model identity, to which KV caches are bound, is the fingerprint plus the
 * numerics version.
 *
 *     nn_image img;
 *     nn_status st = nn_image_open(&img, "stories260K.kvm");
 *     if (st) { fprintf(stderr, "%s\n", nn_strerror(st)); ... }
 *     ... nn_model_init(&model, &img) ...
 *     nn_image_close(&img);
 */
#ifndef NN_IMAGE_H
#define NN_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "nn_base.h"

#define NN_IMAGE_MAGIC          "KVMESHIM"
#define NN_IMAGE_FORMAT_VERSION 1u
#define NN_NUMERICS_VERSION     1u   /* int16 matmul inputs */
#define NN_NUMERICS_ACT8        2u   /* int8 matmul inputs in groups (nn_act8_quant) */
#define NN_IMAGE_HEADER_BYTES   256u
#define NN_IMAGE_DIR_ENTRY_BYTES 48u
#define NN_IMAGE_ALIGN          64u
#define NN_LAYER_NONE           0xffffffffu

#define NN_IMG_OFF_MAGIC        0
#define NN_IMG_OFF_FORMAT       8
#define NN_IMG_OFF_NUMERICS     12
#define NN_IMG_OFF_HEADER_BYTES 16
#define NN_IMG_OFF_FLAGS        20
#define NN_IMG_OFF_DIM          24
#define NN_IMG_OFF_HIDDEN       28
#define NN_IMG_OFF_LAYERS       32
#define NN_IMG_OFF_HEADS        36
#define NN_IMG_OFF_KV_HEADS     40
#define NN_IMG_OFF_HEAD_DIM     44
#define NN_IMG_OFF_VOCAB        48
#define NN_IMG_OFF_MAX_SEQ      52
#define NN_IMG_OFF_GROUP        56
#define NN_IMG_OFF_TOKENIZER    60
#define NN_IMG_OFF_ROPE_THETA   64
#define NN_IMG_OFF_NORM_EPS     72
#define NN_IMG_OFF_N_TENSORS    80
#define NN_IMG_OFF_DIR          88
#define NN_IMG_OFF_FILE_BYTES   96
#define NN_IMG_OFF_FINGERPRINT  104

#define NN_IMG_FLAG_TIED_CLASSIFIER 0x1u

/* Limits the engine's overflow analysis relies on (see nn_model.h). */
#define NN_MAX_LAYERS   256u
#define NN_MAX_DIM      65536u
#define NN_MAX_HEAD_DIM 256u
#define NN_MAX_GROUP    256u
#define NN_MAX_VOCAB    (1u << 20)
#define NN_MAX_SEQ      (1u << 20)

typedef enum nn_tensor_kind {
    NN_T_TOK_EMB    = 1,   /* Q8G [vocab][dim] */
    NN_T_ATT_NORM   = 2,   /* I32 [1][dim], per layer */
    NN_T_WQ         = 3,   /* Q8G [n_heads*head_dim][dim], per layer */
    NN_T_WK         = 4,   /* Q8G [n_kv_heads*head_dim][dim], per layer */
    NN_T_WV         = 5,   /* Q8G [n_kv_heads*head_dim][dim], per layer */
    NN_T_WO         = 6,   /* Q8G [dim][n_heads*head_dim], per layer */
    NN_T_FFN_NORM   = 7,   /* I32 [1][dim], per layer */
    NN_T_W1         = 8,   /* Q8G [hidden][dim], per layer (gate) */
    NN_T_W2         = 9,   /* Q8G [dim][hidden], per layer (down) */
    NN_T_W3         = 10,  /* Q8G [hidden][dim], per layer (up) */
    NN_T_FINAL_NORM = 11,  /* I32 [1][dim] */
    NN_T_CLS        = 12,  /* Q8G [vocab][dim]; absent when the classifier is tied */
    NN_T_ROPE_FREQ  = 13,  /* U64 [1][head_dim/2]: phase advance per position, in turns */
    NN_T_TOKENIZER  = 14,  /* BYTES: see nn_tokenizer.h */
    NN_T_EXIT_PROJ  = 15,  /* Q8G [dim][dim], optional, per exit layer e: the early-exit head
                            * at the input of layer e is x + A x, then the final norm and
                            * the classifier (a "tuned lens", trained by kvmesh-exit-train) */
} nn_tensor_kind;

typedef enum nn_dtype {
    NN_DT_Q8G   = 1,
    NN_DT_I32   = 2,
    NN_DT_U64   = 3,
    NN_DT_BYTES = 4,
    NN_DT_Q8G8  = 5,
} nn_dtype;

typedef struct nn_config {
    uint32_t dim;            /* residual width */
    uint32_t hidden_dim;     /* FFN width */
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;     /* n_heads % n_kv_heads == 0 (grouped-query attention) */
    uint32_t head_dim;       /* even */
    uint32_t vocab_size;
    uint32_t max_seq;        /* longest context the model was trained for */
    uint32_t group_size;     /* weight quantisation group, 1..256 */
    uint32_t tokenizer_kind; /* nn_tok_kind */
    uint32_t flags;          /* NN_IMG_FLAG_* */
    uint64_t rope_theta_q16;
    uint64_t norm_eps_q32;
} nn_config;

/* A tensor as found in the image: pointers into the mapping, valid while it is open. */
typedef struct nn_tensor {
    uint32_t kind, layer, dtype, rows, cols;
    int32_t  exp;
    const void     *data;
    const uint16_t *scales;   /* NN_DT_Q8G only */
    uint64_t        data_bytes;
} nn_tensor;

typedef struct nn_model_id {
    uint8_t  fingerprint[32];
    uint32_t numerics_version;
} nn_model_id;

typedef struct nn_image {
    const uint8_t *data;      /* the whole file */
    size_t         size;
    int            mapped;    /* 1 when nn_image_open mapped it (unmapped on close) */
    uint32_t       format_version;
    uint32_t       n_tensors;
    const uint8_t *dir;       /* n_tensors directory entries */
    nn_config      cfg;
    nn_model_id    id;
} nn_image;

/*
 * Maps path read-only and validates header, directory and every tensor's bounds and
 * shape class. The fingerprint is not recomputed (see nn_image_verify).
 * Returns NN_OK, NN_E_ARG, NN_E_IO, NN_E_MAGIC, NN_E_VERSION, NN_E_TRUNCATED or
 * NN_E_CORRUPT. On error nothing stays mapped.
 */
nn_status nn_image_open(nn_image *img, const char *path);

/* As nn_image_open, over memory the caller owns and keeps alive and unchanged. */
nn_status nn_image_from_memory(nn_image *img, const void *data, size_t size);

/* Unmaps (when mapped). Accepts NULL and a zeroed image. */
void nn_image_close(nn_image *img);

/* Recomputes the sha256 fingerprint over the whole image (reads every byte).
 * Returns NN_OK or NN_E_FINGERPRINT. */
nn_status nn_image_verify(const nn_image *img);

/* Computes the fingerprint of an image held in memory (used by the converter). */
void nn_image_fingerprint(const uint8_t *data, size_t size, uint8_t out[32]);

/* Finds tensor (kind, layer). Returns NN_OK or NN_E_SHAPE when absent. */
nn_status nn_image_tensor(const nn_image *img, uint32_t kind, uint32_t layer, nn_tensor *out);

/* Little-endian field access shared with the writer. */
static inline uint32_t nn_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t nn_rd64(const uint8_t *p)
{
    return (uint64_t)nn_rd32(p) | (uint64_t)nn_rd32(p + 4) << 32;
}
static inline void nn_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void nn_wr64(uint8_t *p, uint64_t v)
{
    nn_wr32(p, (uint32_t)v);
    nn_wr32(p + 4, (uint32_t)(v >> 32));
}

/* Number of quantisation groups in a row of cols values. */
static inline uint32_t nn_groups(uint32_t cols, uint32_t group) { return (cols + group - 1) / group; }

#endif
