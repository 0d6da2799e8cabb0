#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "kvmesh_board.h"

/*
 * The one arena: activations, KV cache, scratch, sampler, token buffers. Its size is
 * the board description's; untouched pages of .bss cost no RAM.
 */
static uint8_t fw_arena[KVMESH_BOARD_ARENA_BYTES] __attribute__((aligned(64)));
static nn_model fw_model;

size_t fw_arena_capacity(void) { return sizeof fw_arena; }

uint32_t fw_default_threads(void)
{
    if (KVMESH_BOARD_THREADS)
        return KVMESH_BOARD_THREADS;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (uint32_t)n;
}

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
    uint32_t ctx = o->ctx;
    if (!ctx)
        ctx = e->m->cfg.max_seq < KVMESH_BOARD_MAX_CONTEXT ? e->m->cfg.max_seq : KVMESH_BOARD_MAX_CONTEXT;
    if (ctx > e->m->cfg.max_seq) {
        snprintf(err, errlen, "context %u exceeds the model's maximum (%u)", ctx, e->m->cfg.max_seq);
        nn_image_close(&e->img);
        return -1;
    }
    nn_session_opts so = { .max_seq = ctx, .max_batch = o->batch ? o->batch : 32,
                           .threads = o->threads ? o->threads : fw_default_threads(), .kernels = o->kernels };
    nn_arena_init(&e->arena, fw_arena, sizeof fw_arena);
    e->so = so;
    st = nn_session_init(&e->s, e->m, &so, &e->arena);
    e->session_bytes = e->arena.used;
    if (!st) {
        e->tokscratch_bytes = nn_tok_scratch_bytes(&e->m->tok);
        e->tokscratch = nn_arena_alloc(&e->arena, e->tokscratch_bytes, 8);
        e->ids_cap = (o->max_prompt_bytes ? o->max_prompt_bytes : ctx) + 3;
        e->ids = nn_arena_alloc(&e->arena, e->ids_cap * sizeof *e->ids, 8);
        /* Aligned start, so a re-carve from sampler_mem lays out the same (fw_engine_set_sampling). */
        size_t before = (e->arena.used + NN_ARENA_ALIGN - 1) & ~(size_t)(NN_ARENA_ALIGN - 1);
        e->arena.used = before;
        st = nn_sampler_init(&e->sp, e->m->cfg.vocab_size, o->temp_q16, o->topp_q16, o->seed, &e->arena);
        e->sampler_mem = (uint8_t *)fw_arena + before;
        e->sampler_bytes = e->arena.used - before;
        if (!st && (!e->tokscratch || !e->ids))
            st = NN_E_NOMEM;
        if (!st && o->kv) {
            nn_kv_range whole = { 0, e->m->cfg.n_layers, 0, ctx };
            e->log = nn_arena_alloc(&e->arena, (size_t)ctx * sizeof *e->log, 8);
            e->kvbuf_bytes = nn_kv_export_bound(e->m, &whole, o->kv_hidden);
            e->kvbuf = nn_arena_alloc(&e->arena, e->kvbuf_bytes, 64);
            st = nn_kv_work_init(&e->kvw, e->m, ctx, &e->arena);
            if (!st && (!e->log || !e->kvbuf))
                st = NN_E_NOMEM;
        }
    }
    if (st == NN_E_NOMEM) {
        /* Measure the whole need (session + buffers) for the message. */
        size_t need;
        nn_session_arena_bytes(e->m, &so, &need);
        need += nn_tok_scratch_bytes(&e->m->tok) + ((o->max_prompt_bytes ? o->max_prompt_bytes : ctx) + 3) * 4 + 128 +
                nn_sampler_arena_bytes(e->m->cfg.vocab_size);
        if (o->kv) {
            nn_kv_range whole = { 0, e->m->cfg.n_layers, 0, ctx };
            need += (size_t)ctx * 4 + nn_kv_export_bound(e->m, &whole, o->kv_hidden) + nn_kv_work_bytes(e->m, ctx) +
                    nn_kv_hidden_bytes(e->m, o->kv_hidden, ctx) + 256;
        }
        snprintf(err, errlen, "model does not fit: context %u needs %zu bytes of arena, this build has %zu "
                 "(lower --ctx, or raise BOARD_ARENA_BYTES for board %s)", ctx, need, sizeof fw_arena,
                 KVMESH_BOARD_NAME);
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

int fw_engine_read_file(fw_engine *e, const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "cannot read %s: not a regular file", path);
        fclose(f);
        return -1;
    }
    *len = (size_t)sb.st_size;
    size_t free_bytes = e->arena.size > e->arena.used ? e->arena.size - e->arena.used : 0;
    *buf = nn_arena_alloc(&e->arena, *len ? *len : 1, 64);
    if (!*buf) {
        snprintf(err, errlen, "%s (%zu bytes) does not fit in the arena (%zu of %zu bytes free)", path, *len,
                 free_bytes, e->arena.size);
        fclose(f);
        return -1;
    }
    if (fread(*buf, 1, *len, f) != *len) {
        snprintf(err, errlen, "cannot read %s: %s", path, ferror(f) ? strerror(errno) : "short read");
        fclose(f);
        return -1;
    }
    fclose(f);
    e->arena_bytes = e->arena.used;
    return 0;
}

int fw_engine_set_threads(fw_engine *e, uint32_t threads, char *err, size_t errlen)
{
    if (threads == e->s.threads)
        return nn_session_truncate(&e->s, 0) == NN_OK ? 0 : -1;
    if (threads < 1 || threads > e->so.threads) {
        snprintf(err, errlen, "threads must be 1..%u", e->so.threads);
        return -1;
    }
    /* Fewer workers carve less (per-thread scratch), so the session fits where it was. */
    nn_session_deinit(&e->s);
    nn_session_opts so = e->so;
    so.threads = threads;
    nn_arena a;
    nn_arena_init(&a, fw_arena, e->session_bytes);
    nn_status st = nn_session_init(&e->s, e->m, &so, &a);
    if (st) {
        snprintf(err, errlen, "cannot restart the session with %u threads: %s", threads, nn_strerror(st));
        return -1;
    }
    return 0;
}

void fw_engine_set_sampling(fw_engine *e, int32_t temp_q16, int32_t topp_q16, uint64_t seed)
{
    nn_arena a;
    nn_arena_init(&a, e->sampler_mem, e->sampler_bytes);
    nn_sampler_init(&e->sp, e->m->cfg.vocab_size, temp_q16, topp_q16, seed, &a);
}

void fw_engine_close(fw_engine *e)
{
    nn_session_deinit(&e->s);
    nn_image_close(&e->img);
}
