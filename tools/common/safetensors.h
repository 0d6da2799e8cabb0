/*
 * safetensors.h: a strict reader for the safetensors format (host-only).
 *
 * File: u64 little-endian N, then N bytes of JSON {"name": {"dtype": "F16", "shape":
 * [rows, cols], "data_offsets": [begin, end]}, ..., "__metadata__": {...}}, then the
 * data; offsets are relative to the start of the data. The reader checks that the
 * header fits the file, every dtype is known, every shape's byte size equals its
 * extent, every extent lies inside the data, and no two tensors overlap.
 *
 *     kt_st st;
 *     if (kt_st_open(&st, "model.safetensors", err, sizeof err)) ...
 *     const kt_st_tensor *t = kt_st_find(&st, "model.norm.weight");
 *     kt_st_read_f32(t, dst, n);
 *     kt_st_close(&st);
 */
#ifndef KT_SAFETENSORS_H
#define KT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum kt_st_dtype { KT_ST_F32, KT_ST_F16, KT_ST_BF16, KT_ST_OTHER } kt_st_dtype;

#define KT_ST_MAX_DIMS 8
#define KT_ST_MAX_HEADER (100u << 20)   /* the reference implementation's limit */

typedef struct kt_st_tensor {
    char    *name;
    uint32_t dtype;          /* kt_st_dtype */
    char     dtype_name[16];
    uint32_t ndim;
    uint64_t shape[KT_ST_MAX_DIMS];
    uint64_t count;          /* product of shape */
    const uint8_t *data;
    uint64_t bytes;
} kt_st_tensor;

typedef struct kt_st {
    const uint8_t *map;
    size_t size;
    int mapped;
    kt_st_tensor *t;
    uint32_t n;
} kt_st;

/* Parses data[0, size), which the caller keeps alive. Returns 0 or -1 with err set. */
int kt_st_parse(kt_st *st, const uint8_t *data, size_t size, char *err, size_t errlen);
/* Maps path and parses it. Returns 0 or -1 with err set. */
int kt_st_open(kt_st *st, const char *path, char *err, size_t errlen);
void kt_st_close(kt_st *st);

const kt_st_tensor *kt_st_find(const kt_st *st, const char *name);

/* Converts a F32/F16/BF16 tensor of exactly n values to float. Returns 0 or -1. */
int kt_st_read_f32(const kt_st_tensor *t, float *dst, size_t n);

#endif
