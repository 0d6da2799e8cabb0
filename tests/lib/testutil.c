#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsource.h"
#include "testutil.h"

static const char *env_or(const char *name, const char *def)
{
    const char *e = getenv(name);
    return e && *e ? e : def;
}

const char *tu_models(void) { return env_or("KVMESH_MODELS", "../shared/models"); }
const char *tu_golden(void) { return env_or("KVMESH_GOLDEN", "../shared/golden"); }

static const char *need(const char *dir, const char *rel)
{
    static char paths[8][1024];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, rel);
    if (access(p, R_OK) != 0) {
        print_error("required test data missing: %s (set KVMESH_MODELS / KVMESH_GOLDEN)\n", p);
        fail();
    }
    return p;
}

const char *tu_model_file(const char *rel) { return need(tu_models(), rel); }
const char *tu_golden_file(const char *rel) { return need(tu_golden(), rel); }

void tu_build_llama2c(const char *name, uint32_t group, kt_img *w)
{
    char ck[256], tok[256];
    snprintf(ck, sizeof ck, "%s/%s.bin", name, name);
    snprintf(tok, sizeof tok, "%s/tok512.bin", name);
    kt_source src;
    if (kt_open_llama2c(&src, tu_model_file(ck), tu_model_file(tok))) {
        print_error("%s\n", src.err);
        fail();
    }
    if (kt_convert(&src, group, NN_NUMERICS_VERSION, w, 0)) {
        print_error("%s\n", src.err);
        fail();
    }
    src.close(&src);
}

void tu_build_random(const char *spec, uint32_t group, uint32_t numerics, uint64_t seed, kt_img *w)
{
    kt_source src;
    if (kt_open_random(&src, spec, seed) || kt_convert(&src, group, numerics, w, 0)) {
        print_error("%s\n", src.err);
        fail();
    }
    src.close(&src);
}

uint32_t tu_golden_tokens(const char *name, uint32_t *in, uint32_t *next, uint32_t max)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/once_upon_a_time_256.tokens.txt", name);
    FILE *f = fopen(tu_golden_file(rel), "r");
    assert_non_null(f);
    uint32_t n = 0, pos, a, b;
    while (n < max && fscanf(f, "%u %u %u", &pos, &a, &b) == 3) {
        assert_int_equal(pos, n);
        in[n] = a;
        if (next)
            next[n] = b;
        n++;
    }
    fclose(f);
    return n;
}
