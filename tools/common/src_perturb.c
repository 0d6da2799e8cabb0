/*
 * A "fine-tune" of a model for cross-model KV reuse experiments: wraps another source and
 * scales every weight-matrix entry by (1 + scale * u), u uniform in [-1, 1), from a
 * stream seeded by (seed, kind, layer). Norm gains are kept: a fine-tune moves the
 * matrices, and the result stays the same architecture with another fingerprint.
 * Reproducible: the same base, scale and seed give the same image.
 */
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

typedef struct perturb {
    kt_source inner;
    double    scale;
    uint64_t  seed;
} perturb;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int perturb_read(kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n)
{
    perturb *p = s->impl;
    if (p->inner.read(&p->inner, kind, layer, dst, n)) {
        memcpy(s->err, p->inner.err, sizeof s->err);
        return -1;
    }
    if (kind == NN_T_ATT_NORM || kind == NN_T_FFN_NORM || kind == NN_T_FINAL_NORM)
        return 0;
    uint64_t st = mix(p->seed ^ mix((uint64_t)kind << 32 | layer) ^ 0x5045525455524245ull);
    for (size_t i = 0; i < n; i++) {
        st = mix(st);
        double u = (double)(st >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        dst[i] = (float)(dst[i] * (1.0 + p->scale * u));
    }
    return 0;
}

static void perturb_close(kt_source *s)
{
    perturb *p = s->impl;
    if (p) {
        p->inner.close(&p->inner);
        free(p);
    }
    s->impl = NULL;
    kt_vocab_free(&s->vocab);
}

int kt_wrap_perturb(kt_source *s, double scale, uint64_t seed)
{
    perturb *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    p->inner = *s;
    p->scale = scale;
    p->seed = seed;
    /* The outer source keeps the shape and the vocabulary (moved, not copied). */
    memset(&p->inner.vocab, 0, sizeof p->inner.vocab);
    s->impl = p;
    s->read = perturb_read;
    s->close = perturb_close;
    return 0;
}
