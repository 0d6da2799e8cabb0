/*
 * Random-weight models with real shapes, for speed and memory work only: random
 * weights measure neither quality nor compressibility. Each tensor's values come from
 * its own stream seeded by (seed, kind, layer), so the order of reads does not matter.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

typedef struct preset {
    const char *name;
    uint32_t dim, hidden, layers, heads, kv_heads, vocab, seq;
    int tied;
    double theta;
} preset;

/* Shapes from ../shared/models/README.md and the models' published configs. */
static const preset presets[] = {
    { "stories260K",    64,   172,  5,  8,  4,   512,   512, 1, 10000.0 },
    { "stories15M",     288,  768,  6,  6,  6,   32000, 256, 1, 10000.0 },
    { "stories110M",    768,  2048, 12, 12, 12,  32000, 1024, 1, 10000.0 },
    { "smollm2-135m",   576,  1536, 30, 9,  3,   49152, 2048, 1, 100000.0 },
    { "tinyllama-1.1b", 2048, 5632, 22, 32, 4,   32000, 2048, 0, 10000.0 },
};

const char *kt_random_presets(void)
{
    return "stories260K stories15M stories110M smollm2-135m tinyllama-1.1b";
}

typedef struct rnd { uint64_t seed; } rnd;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int rnd_read(kt_source *s, uint32_t kind, uint32_t layer, float *dst, size_t n)
{
    rnd *r = s->impl;
    uint64_t st = mix(r->seed ^ mix((uint64_t)kind << 32 | layer));
    int norm = kind == NN_T_ATT_NORM || kind == NN_T_FFN_NORM || kind == NN_T_FINAL_NORM;
    for (size_t i = 0; i < n; i++) {
        st = mix(st);
        double u = (double)(st >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;   /* [-1, 1) */
        /* Uniform with std 0.02 for matrices (a common init); gains near 1. */
        dst[i] = norm ? (float)(1.0 + 0.1 * u) : (float)(0.02 * sqrt(3.0) * u);
    }
    return 0;
}

static void rnd_close(kt_source *s)
{
    free(s->impl);
    s->impl = NULL;
    kt_vocab_free(&s->vocab);
}

int kt_open_random(kt_source *s, const char *spec, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    preset p = { 0 };
    int found = 0;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(spec, presets[i].name) == 0) {
            p = presets[i];
            found = 1;
        }
    if (!found) {
        char tied[8] = "";
        int k = sscanf(spec, "%u,%u,%u,%u,%u,%u,%u,%7s", &p.dim, &p.hidden, &p.layers, &p.heads,
                       &p.kv_heads, &p.vocab, &p.seq, tied);
        if (k < 7 || (k == 8 && strcmp(tied, "tied") != 0)) {
            snprintf(s->err, sizeof s->err,
                     "unknown random preset '%s': use one of %s, or D,H,L,NH,NKV,V,S[,tied]", spec,
                     kt_random_presets());
            return -1;
        }
        p.tied = k == 8;
        p.theta = 10000.0;
    }
    if (p.dim == 0 || p.heads == 0 || p.kv_heads == 0 || p.dim % p.heads || p.heads % p.kv_heads ||
        (p.dim / p.heads) % 2 || p.vocab < 259 || p.layers == 0 || p.layers > NN_MAX_LAYERS || p.seq == 0 ||
        p.hidden == 0 || p.dim / p.heads > NN_MAX_HEAD_DIM) {
        snprintf(s->err, sizeof s->err, "random shape %s is invalid (dim divisible by heads, heads by kv_heads, "
                 "even head size <= %u, vocab >= 259)", spec, NN_MAX_HEAD_DIM);
        return -1;
    }
    rnd *r = calloc(1, sizeof *r);
    if (!r || kt_vocab_synthetic(&s->vocab, p.vocab)) {
        free(r);
        snprintf(s->err, sizeof s->err, "out of memory");
        return -1;
    }
    r->seed = seed;
    s->impl = r;
    s->read = rnd_read;
    s->close = rnd_close;
    s->cfg.dim = p.dim;
    s->cfg.hidden_dim = p.hidden;
    s->cfg.n_layers = p.layers;
    s->cfg.n_heads = p.heads;
    s->cfg.n_kv_heads = p.kv_heads;
    s->cfg.head_dim = p.dim / p.heads;
    s->cfg.vocab_size = p.vocab;
    s->cfg.max_seq = p.seq;
    s->cfg.flags = p.tied ? NN_IMG_FLAG_TIED_CLASSIFIER : 0;
    s->rope_theta = p.theta;
    s->norm_eps = 1e-5;
    return 0;
}
