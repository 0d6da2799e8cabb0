/*
 * A model source for kvmesh-convert: something that yields a llama-family model as
 * float tensors, one at a time, so that even a 1B-parameter model never has to sit in
 * memory as float all at once.
 */
#ifndef KC_SOURCE_H
#define KC_SOURCE_H

#include "kvtools.h"

typedef struct kc_source {
    nn_config cfg;          /* dims and flags; group_size is set by the caller */
    double    rope_theta;
    double    norm_eps;
    kt_vocab  vocab;
    /* Copies tensor (kind, layer) as float [rows][cols] into dst (rows*cols values).
     * Returns 0, or -1 with a message in err. */
    int  (*read)(struct kc_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n);
    void (*close)(struct kc_source *s);
    void *impl;
    char  err[512];
} kc_source;

/* llama2.c legacy checkpoint + tokenizer.bin. Returns 0 or -1 with s->err set. */
int kc_open_llama2c(kc_source *s, const char *ckpt, const char *tokenizer);

/* Random weights with a real model's shape: a preset name or "D,H,L,NH,NKV,V,S[,tied]". */
int kc_open_random(kc_source *s, const char *spec, uint64_t seed);

/* Names of the random presets, for --help. */
const char *kc_random_presets(void);

#endif
