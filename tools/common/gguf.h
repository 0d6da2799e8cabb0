/*
 * gguf.h: a strict reader for GGUF version 3 files (ggml's docs/gguf.md), host-only.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv
 * key/values (string key, u32 type, value; strings are u64 length + bytes, arrays are
 * u32 element type + u64 count + elements); n_tensors infos (string name, u32 n_dims,
 * u64 ne[n_dims] with ne[0] contiguous, u32 ggml type, u64 offset); then, at the next
 * multiple of general.alignment (default 32), the data, where each tensor's offset is
 * relative and aligned. Every count, length, shape, offset and extent is checked
 * against the file before use; tensors may not overlap.
 *
 *     kt_gguf g;
 *     if (kt_gguf_open(&g, "model.gguf", err, sizeof err)) ...
 *     uint32_t layers;
 *     kt_gguf_get_u32(&g, "llama.block_count", &layers);
 *     const kt_gguf_tensor *t = kt_gguf_tensor_find(&g, "token_embd.weight");
 *     kt_gguf_close(&g);
 */
#ifndef KT_GGUF_H
#define KT_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum {
    KT_GGUF_U8 = 0, KT_GGUF_I8, KT_GGUF_U16, KT_GGUF_I16, KT_GGUF_U32, KT_GGUF_I32, KT_GGUF_F32,
    KT_GGUF_BOOL, KT_GGUF_STRING, KT_GGUF_ARRAY, KT_GGUF_U64, KT_GGUF_I64, KT_GGUF_F64,
};
enum { KT_GGML_F32 = 0, KT_GGML_F16 = 1, KT_GGML_Q8_0 = 8, KT_GGML_BF16 = 30 };

#define KT_GGUF_MAX_DIMS 4

typedef struct kt_gguf_kv {
    const char *key;
    uint32_t key_len, type;
    uint32_t arr_type;         /* arrays: element type */
    uint64_t arr_n;            /* arrays: element count */
    const uint8_t *val;        /* the value (arrays: the first element) */
    uint64_t *str_off;         /* string arrays: offset of each element's length from val */
} kt_gguf_kv;

typedef struct kt_gguf_tensor {
    const char *name;
    uint32_t name_len, type, n_dims;
    uint64_t ne[KT_GGUF_MAX_DIMS];   /* unused dimensions are 1 */
    uint64_t count;
    const uint8_t *data;
    uint64_t bytes;
} kt_gguf_tensor;

typedef struct kt_gguf {
    const uint8_t *map;
    size_t size;
    int mapped;
    uint32_t version, alignment;
    kt_gguf_kv *kv;
    uint64_t n_kv;
    kt_gguf_tensor *t;
    uint64_t n_t;
} kt_gguf;

/* Parses data[0, size), which the caller keeps alive. Returns 0 or -1 with err set. */
int kt_gguf_parse(kt_gguf *g, const uint8_t *data, size_t size, char *err, size_t errlen);
int kt_gguf_open(kt_gguf *g, const char *path, char *err, size_t errlen);
void kt_gguf_close(kt_gguf *g);

const kt_gguf_kv *kt_gguf_kv_find(const kt_gguf *g, const char *key);
/* Scalar reads: 0 ok, 1 absent, -1 wrong type or out of range. */
int kt_gguf_get_u32(const kt_gguf *g, const char *key, uint32_t *out);
int kt_gguf_get_f64(const kt_gguf *g, const char *key, double *out);
int kt_gguf_get_bool(const kt_gguf *g, const char *key, int *out);
int kt_gguf_get_str(const kt_gguf *g, const char *key, const char **s, uint32_t *len);
/* Element i of a string array (i < arr_n). */
void kt_gguf_arr_str(const kt_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);

const kt_gguf_tensor *kt_gguf_tensor_find(const kt_gguf *g, const char *name);
/* ggml type name ("Q4_K", ...) or NULL when unknown. */
const char *kt_ggml_type_name(uint32_t type);

#endif
