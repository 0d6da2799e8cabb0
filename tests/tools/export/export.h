/*
 * Test-side exporter: writes a llama2.c checkpoint (stories260K) out as a Hugging Face
 * directory or a GGUF file, the way Hugging Face's and llama.cpp's converters lay them
 * out, so that kvmesh-convert's readers can be proven by round trips through a real
 * model. Never installed; used by tests/tools/formats.sh and test_formats.c.
 */
#ifndef KT_EXPORT_H
#define KT_EXPORT_H

#include "kvsource.h"

typedef struct kx_opts {
    const char *dtype;      /* hf: "f32", "f16", "bf16"; gguf: "f32", "f16", "q8_0" */
    uint32_t shards;        /* hf: 0/1 = model.safetensors, >1 = index + shards */
    const char *omit;       /* a tensor name to leave out (bad-input tests) */
    const char *arch;       /* override the architecture name (bad-input tests) */
    double rope_theta;      /* override config/metadata rope theta (0 = the source's) */
} kx_opts;

/* Writes dir/{config.json, model.safetensors|shards+index, tokenizer.json,
 * tokenizer_config.json}. Returns 0 or -1 with err set. */
int kx_export_hf(kt_source *src, const char *dir, const kx_opts *o, char *err, size_t errlen);

/* Writes a GGUF v3 file. Returns 0 or -1 with err set. */
int kx_export_gguf(kt_source *src, const char *path, const kx_opts *o, char *err, size_t errlen);

#endif
