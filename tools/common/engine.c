/* Engine set-up and golden-token reading shared by the host tools. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvtools.h"

int kt_engine_open(kt_engine *e, const char *prog, const char *path, const kt_engine_opts *o)
{
    memset(e, 0, sizeof *e);
    e->m = calloc(1, sizeof *e->m);
    nn_status st = e->m ? nn_image_open(&e->img, path) : NN_E_NOMEM;
    if (!st)
        st = nn_model_init(e->m, &e->img);
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, nn_strerror(st));
        kt_engine_close(e);
        return -1;
    }
    uint32_t ctx = o->ctx && o->ctx <= e->m->cfg.max_seq ? o->ctx : e->m->cfg.max_seq;
    nn_session_opts so = { .max_seq = ctx, .max_batch = o->batch ? o->batch : 32, .threads = o->threads,
                           .kernels = o->kernels, .all_logits = o->all_logits };
    size_t need;
    if ((st = nn_session_arena_bytes(e->m, &so, &need))) {
        fprintf(stderr, "%s: %s\n", prog, nn_strerror(st));
        kt_engine_close(e);
        return -1;
    }
    if (o->kv_work)
        need += nn_kv_work_bytes(e->m, ctx);
    if (o->sampler)
        need += nn_sampler_arena_bytes(e->m->cfg.vocab_size);
    e->mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    nn_arena a;
    nn_arena_init(&a, e->mem, need);
    st = e->mem ? nn_session_init(&e->s, e->m, &so, &a) : NN_E_NOMEM;
    if (!st && o->kv_work)
        st = nn_kv_work_init(&e->w, e->m, ctx, &a);
    if (!st && o->sampler)
        st = nn_sampler_init(&e->sp, e->m->cfg.vocab_size, o->temp_q16, o->topp_q16, o->seed, &a);
    if (st) {
        fprintf(stderr, "%s: %s (%zu bytes of arena)\n", prog, nn_strerror(st), need);
        kt_engine_close(e);
        return -1;
    }
    return 0;
}

void kt_engine_close(kt_engine *e)
{
    nn_session_deinit(&e->s);
    nn_image_close(&e->img);
    free(e->mem);
    free(e->m);
    memset(e, 0, sizeof *e);
}

long kt_read_tokens(const char *prog, const char *path, uint32_t vocab, uint32_t **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    size_t cap = 256, n = 0;
    uint32_t *v = malloc(cap * sizeof *v);
    char line[256];
    long lineno = 0;
    while (v && fgets(line, sizeof line, f)) {
        lineno++;
        unsigned long pos, in, next;
        char extra;
        if (line[0] == '\n' || line[0] == '#')
            continue;
        if (sscanf(line, "%lu %lu %lu %c", &pos, &in, &next, &extra) != 3 || pos != n || in >= vocab) {
            fprintf(stderr, "%s: %s:%ld: expected 'pos input next' with pos %zu and tokens < %u\n", prog, path,
                    lineno, n, vocab);
            free(v);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            uint32_t *w = realloc(v, (cap *= 2) * sizeof *v);
            if (!w) {
                free(v);
                v = NULL;
                break;
            }
            v = w;
        }
        v[n++] = (uint32_t)in;
    }
    fclose(f);
    if (!v) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    if (n == 0) {
        fprintf(stderr, "%s: %s has no tokens\n", prog, path);
        free(v);
        return -1;
    }
    *out = v;
    return (long)n;
}
