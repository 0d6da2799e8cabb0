#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine.h"

#ifndef KVMESH_ARENA_BYTES
#define KVMESH_ARENA_BYTES (256u << 20)
#endif

/* The one arena: activations, KV cache, scratch, sampler, token buffers. */
static uint8_t fw_arena[KVMESH_ARENA_BYTES] __attribute__((aligned(64)));
static nn_model fw_model;

size_t fw_arena_capacity(void) { return sizeof fw_arena; }

uint64_t fw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fw_engine_open(fw_engine *e, const fw_engine_opts *o, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->m = &fw_model;
    nn_status st = nn_image_open(&e->img, o->model);
    if (!st)
        st = nn_model_init(e->m, &e->img);
    if (st) {
        snprintf(err, errlen, "%s: %s", o->model, nn_strerror(st));
        nn_image_close(&e->img);
        return -1;
    }
    uint32_t ctx = o->ctx ? o->ctx : e->m->cfg.max_seq;
    if (ctx > e->m->cfg.max_seq) {
        snprintf(err, errlen, "context %u exceeds the model's maximum (%u)", ctx, e->m->cfg.max_seq);
        nn_image_close(&e->img);
        return -1;
    }
    nn_session_opts so = { .max_seq = ctx, .max_batch = o->batch ? o->batch : 32,
                           .threads = o->threads ? o->threads : 1, .kernels = o->kernels };
    nn_arena_init(&e->arena, fw_arena, sizeof fw_arena);
    st = nn_session_init(&e->s, e->m, &so, &e->arena);
    if (!st) {
        e->tokscratch_bytes = nn_tok_scratch_bytes(&e->m->tok);
        e->tokscratch = nn_arena_alloc(&e->arena, e->tokscratch_bytes, 8);
        e->ids_cap = (o->max_prompt_bytes ? o->max_prompt_bytes : ctx) + 3;
        e->ids = nn_arena_alloc(&e->arena, e->ids_cap * sizeof *e->ids, 8);
        st = nn_sampler_init(&e->sp, e->m->cfg.vocab_size, o->temp_q16, o->topp_q16, o->seed, &e->arena);
        if (!st && (!e->tokscratch || !e->ids))
            st = NN_E_NOMEM;
    }
    if (st == NN_E_NOMEM) {
        /* Measure the whole need (session + buffers) for the message. */
        size_t need;
        nn_session_arena_bytes(e->m, &so, &need);
        need += nn_tok_scratch_bytes(&e->m->tok) + ((o->max_prompt_bytes ? o->max_prompt_bytes : ctx) + 3) * 4 + 128 +
                nn_sampler_arena_bytes(e->m->cfg.vocab_size);
        snprintf(err, errlen, "model does not fit: context %u needs %zu bytes of arena, this build has %zu "
                 "(lower --ctx or use a board with a larger arena)", ctx, need, sizeof fw_arena);
    } else if (st) {
        snprintf(err, errlen, "%s", nn_strerror(st));
    }
    if (st) {
        nn_session_deinit(&e->s);
        nn_image_close(&e->img);
        return -1;
    }
    e->arena_bytes = e->arena.used;
    return 0;
}

void fw_engine_close(fw_engine *e)
{
    nn_session_deinit(&e->s);
    nn_image_close(&e->img);
}
