/*
 * The device program's engine: one model image, one session and one sampler, carved
 * from the static arena whose size the board description sets.
 */
#ifndef FW_ENGINE_H
#define FW_ENGINE_H

#include <stddef.h>
#include "nn.h"

typedef struct fw_engine_opts {
    const char *model;       /* image path */
    uint32_t    ctx;         /* context length; 0: the model's, capped by the board */
    uint32_t    batch;       /* prefill block; 0: 32 */
    uint32_t    threads;     /* 0: the board's (fw_default_threads) */
    const char *kernels;     /* NULL: best */
    int32_t     temp_q16;    /* 0: greedy */
    int32_t     topp_q16;
    uint64_t    seed;
    size_t      max_prompt_bytes;  /* longest prompt text to encode; 0: ctx */
    int         kv;                /* carve KV export/import buffers (work, token log, stream) */
    uint32_t    kv_hidden;         /* hidden-state layers an export may carry */
} fw_engine_opts;

typedef struct fw_engine {
    nn_image    img;
    nn_model   *m;
    nn_session  s;
    nn_sampler  sp;
    nn_arena    arena;
    uint32_t   *ids;         /* [max_prompt_bytes + 3]: prompt ids before merging */
    size_t      ids_cap;
    uint32_t   *log;         /* [ctx] tokens fed to the session, for KV export (opts.kv) */
    nn_kv_work  kvw;         /* opts.kv */
    uint8_t    *kvbuf;       /* opts.kv: export buffer for the whole context */
    size_t      kvbuf_bytes;
    void       *tokscratch;
    size_t      tokscratch_bytes;
    size_t      arena_bytes; /* used by this engine */
    nn_session_opts so;      /* the session's options (threads may change, see below) */
    size_t      session_bytes;   /* the session's carve at the start of the arena */
    uint8_t    *sampler_mem;     /* the sampler's carve, for re-initialising it */
    size_t      sampler_bytes;
} fw_engine;

/* Size of the static arena in this build (the board's BOARD_ARENA_BYTES). */
size_t fw_arena_capacity(void);

/* The board's thread count, or every online CPU when the board says 0. */
uint32_t fw_default_threads(void);

/* Loads the image and carves session, sampler and buffers. Returns 0, or -1 with a
 * message in err (including how many bytes a model that does not fit needs). */
int fw_engine_open(fw_engine *e, const fw_engine_opts *o, char *err, size_t errlen);

/* Reads a whole file into the arena (at start-up only). Returns 0, or -1 with err set. */
int fw_engine_read_file(fw_engine *e, const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen);
void fw_engine_close(fw_engine *e);

/* Restarts the session with `threads` workers (1 .. the count it was opened with),
 * carved in the same place; the context is emptied. 0, or -1 with err set. */
int fw_engine_set_threads(fw_engine *e, uint32_t threads, char *err, size_t errlen);

/* New sampling parameters (temperature and top-p Q16, seed) for the next generation. */
void fw_engine_set_sampling(fw_engine *e, int32_t temp_q16, int32_t topp_q16, uint64_t seed);

/* Monotonic time in nanoseconds. */
uint64_t fw_now_ns(void);

#endif
