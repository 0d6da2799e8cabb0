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
    void *impl;
    char  err[512];
} kt_source;

/* llama2.c legacy checkpoint + tokenizer.bin. Returns 0 or -1 with s->err set. */
int kt_open_llama2c(kt_source *s, const char *ckpt, const char *tokenizer);

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
int kt_convert(kt_source *src, uint32_t group, kt_img *w, int progress);

#endif
