/*
 * The forward pass on the real stories260K model: bit-identical logits and KV bytes
 * for every thread count, block size and kernel path; rollback; arena sizing; range
 * errors that leave the session untouched; conversations kept apart by KV caches.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static kt_img img_buf;
static nn_image img;
static nn_model model;
static uint32_t toks[256];
static uint32_t n_toks;

static int setup(void **st)
{
    (void)st;
    tu_build_llama2c("stories260K", 4, &img_buf);
    if (nn_image_from_memory(&img, img_buf.buf, img_buf.len) || nn_model_init(&model, &img))
        return -1;
    n_toks = tu_golden_tokens("stories260K", toks, NULL, 256);
    return n_toks == 256 ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    kt_img_free(&img_buf);
    return 0;
}

typedef struct run {
    int32_t *logits;        /* [n_toks][vocab] */
    uint8_t *mem;
    nn_session s;
} run;

/* Feeds the golden tokens in blocks of `block`, collecting every position's logits. */
static void run_all(run *r, uint32_t threads, uint32_t block, const char *kernels)
{
    uint32_t V = model.cfg.vocab_size;
    nn_session_opts o = { .max_seq = n_toks, .max_batch = block, .threads = threads, .kernels = kernels,
                          .all_logits = 1 };
    size_t need;
    assert_int_equal(nn_session_arena_bytes(&model, &o, &need), NN_OK);
    r->mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    r->logits = malloc((size_t)n_toks * V * 4);
    nn_arena a;
    nn_arena_init(&a, r->mem, need);
    assert_int_equal(nn_session_init(&r->s, &model, &o, &a), NN_OK);
    assert_true(a.used <= need && need - a.used < NN_ARENA_ALIGN);   /* measuring and carving agree */
    for (uint32_t p = 0; p < n_toks; p += block) {
        uint32_t b = n_toks - p < block ? n_toks - p : block;
        const int32_t *lg;
        assert_int_equal(nn_session_forward(&r->s, toks + p, b, &lg), NN_OK);
        memcpy(r->logits + (size_t)p * V, lg, (size_t)b * V * 4);
    }
    assert_int_equal(r->s.n_pos, n_toks);
}

static void run_free(run *r)
{
    nn_session_deinit(&r->s);
    free(r->mem);
    free(r->logits);
}

static void same_kv(const nn_session *a, const nn_session *b)
{
    size_t n = (size_t)model.cfg.n_layers * n_toks;
    assert_memory_equal(a->kc, b->kc, n * model.kv_dim * 2);
    assert_memory_equal(a->vc, b->vc, n * model.kv_dim * 2);
    assert_memory_equal(a->kt, b->kt, n * model.cfg.n_kv_heads);
    assert_memory_equal(a->vt, b->vt, n * model.cfg.n_kv_heads);
}

static void bit_identical_across_threads_blocks_and_kernels(void **st)
{
    (void)st;
    run base;
    run_all(&base, 1, 1, "ref");
    struct { uint32_t threads, block; const char *k; } v[] = {
        { 2, 1, "ref" }, { 4, 1, "ref" }, { 1, 7, "ref" }, { 2, 32, "ref" }, { 4, 256, "ref" }, { 3, 13, NULL },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        run r;
        run_all(&r, v[i].threads, v[i].block, v[i].k);
        assert_memory_equal(base.logits, r.logits, (size_t)n_toks * model.cfg.vocab_size * 4);
        same_kv(&base.s, &r.s);
        run_free(&r);
    }
    char names[128];
    snprintf(names, sizeof names, "%s", nn_kernels_available());
    for (char *save, *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
        run r;
        run_all(&r, 2, 16, name);
        assert_memory_equal(base.logits, r.logits, (size_t)n_toks * model.cfg.vocab_size * 4);
        same_kv(&base.s, &r.s);
        run_free(&r);
    }
    run_free(&base);
}

/*
 * The SIMD fast paths need group sizes the 260K models (group 4) do not use: a
 * random-weight model with group 32 and 48 (whole groups of 16, and not a power of two),
 * ragged hidden size, grouped-query attention, in numerics version 1 and 2 (int8
 * activations, interleaved weights). Every kernel path, thread count and block size must
 * give the reference path's logits and KV bytes.
 */
static void fast_paths_bit_identical_on_wider_groups(void **st)
{
    (void)st;
    static nn_model rm;
    static const uint32_t groups[] = { 32, 48, 32, 48 };
    uint32_t rt[80];
    for (uint32_t i = 0; i < 80; i++)
        rt[i] = 3 + (i * 2654435761u) % 509;
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        kt_img ib;
        nn_image ri;
        uint32_t nv = gi < 2 ? NN_NUMERICS_VERSION : NN_NUMERICS_ACT8;
        tu_build_random("128,344,2,4,2,512,96", groups[gi], nv, 7, &ib);
        assert_int_equal(nn_image_from_memory(&ri, ib.buf, ib.len), NN_OK);
        assert_int_equal(nn_model_init(&rm, &ri), NN_OK);
        uint32_t V = rm.cfg.vocab_size;
        int32_t *base = NULL;
        nn_session bs;
        uint8_t *bmem = NULL;
        char names[128];
        snprintf(names, sizeof names, "ref %s", nn_kernels_available());
        for (char *save, *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
            /* threads, block, and 1 for prompt matmuls in 16 chunks per worker (16-row
             * chunks here: a chunk's edge inside every matrix) */
            static const uint32_t tb[][3] = { { 1, 1, 0 }, { 2, 13, 0 }, { 3, 32, 0 }, { 2, 32, 1 } };
            for (size_t v = 0; v < sizeof tb / sizeof tb[0]; v++) {
                nn_session_opts o = { .max_seq = 80, .max_batch = tb[v][1], .threads = tb[v][0], .kernels = name,
                                      .all_logits = 1, .prefill_chunk_macs = tb[v][2] };
                size_t need;
                assert_int_equal(nn_session_arena_bytes(&rm, &o, &need), NN_OK);
                uint8_t *mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
                int32_t *lg = malloc((size_t)80 * V * 4);
                nn_arena a;
                nn_arena_init(&a, mem, need);
                nn_session s;
                assert_int_equal(nn_session_init(&s, &rm, &o, &a), NN_OK);
                for (uint32_t p = 0; p < 80; p += tb[v][1]) {
                    uint32_t b = 80 - p < tb[v][1] ? 80 - p : tb[v][1];
                    const int32_t *out;
                    assert_int_equal(nn_session_forward(&s, rt + p, b, &out), NN_OK);
                    memcpy(lg + (size_t)p * V, out, (size_t)b * V * 4);
                }
                if (!base) {
                    base = lg;
                    bs = s;
                    bmem = mem;
                    continue;
                }
                if (memcmp(base, lg, (size_t)80 * V * 4) != 0) {
                    print_error("numerics %u, group %u: kernels %s, %u threads, block %u: logits differ from ref\n",
                                nv, groups[gi], name, tb[v][0], tb[v][1]);
                    fail();
                }
                size_t n = (size_t)rm.cfg.n_layers * 80;
                assert_memory_equal(bs.kc, s.kc, n * rm.kv_dim * 2);
                assert_memory_equal(bs.vc, s.vc, n * rm.kv_dim * 2);
                assert_memory_equal(bs.kt, s.kt, n * rm.cfg.n_kv_heads);
                assert_memory_equal(bs.vt, s.vt, n * rm.cfg.n_kv_heads);
                nn_session_deinit(&s);
                free(mem);
                free(lg);
            }
        }
        nn_session_deinit(&bs);
        free(bmem);
        free(base);
        kt_img_free(&ib);
    }
}

/*
 * Without all_logits the last layer runs its attention and feed-forward for each
 * block's last row only (the others need just its KV): the logits and every KV byte
 * are still the full pass's. nn_session_run_layers_kv does the same for any layer range.
 */
static void last_row_only_paths_bit_identical(void **st)
{
    (void)st;
    uint32_t V = model.cfg.vocab_size, L = model.cfg.n_layers, dim = model.cfg.dim;
    run base;
    run_all(&base, 1, 1, "ref");
    struct { uint32_t threads, block; } v[] = { { 1, 7 }, { 2, 32 }, { 3, 256 } };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        nn_session_opts o = { .max_seq = n_toks, .max_batch = v[i].block, .threads = v[i].threads };
        size_t need;
        assert_int_equal(nn_session_arena_bytes(&model, &o, &need), NN_OK);
        uint8_t *mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
        nn_arena a;
        nn_arena_init(&a, mem, need);
        nn_session s;
        assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_OK);
        for (uint32_t p = 0; p < n_toks; p += v[i].block) {
            uint32_t b = n_toks - p < v[i].block ? n_toks - p : v[i].block;
            const int32_t *lg;
            assert_int_equal(nn_session_forward(&s, toks + p, b, &lg), NN_OK);
            assert_memory_equal(lg, base.logits + (size_t)(p + b - 1) * V, (size_t)V * 4);
        }
        same_kv(&base.s, &s);
        /* The same through run_layers_kv, in two ranges of layers and uneven pieces. */
        int32_t *x = malloc((size_t)n_toks * dim * 4), last[1024], lg[1024];
        assert_true(dim <= 1024 && V <= 1024);
        assert_int_equal(nn_session_truncate(&s, 0), NN_OK);
        for (uint32_t p = 0; p < n_toks;) {
            uint32_t b = n_toks - p < 45 ? n_toks - p : 45;
            assert_int_equal(nn_session_embed(&s, toks + p, b, x), NN_OK);
            assert_int_equal(nn_session_run_layers(&s, p, x, b, 0, 2, x), NN_OK);
            assert_int_equal(nn_session_run_layers_kv(&s, p, x, b, 2, L, p + b == n_toks ? last : NULL), NN_OK);
            p += b;
        }
        assert_int_equal(nn_session_logits(&s, last, 1, lg), NN_OK);
        assert_memory_equal(lg, base.logits + (size_t)(n_toks - 1) * V, (size_t)V * 4);
        same_kv(&base.s, &s);
        free(x);
        nn_session_deinit(&s);
        free(mem);
    }
    run_free(&base);
}

static void rollback_recomputes_identically(void **st)
{
    (void)st;
    run base;
    run_all(&base, 1, 16, NULL);
    uint32_t V = model.cfg.vocab_size;
    assert_int_equal(nn_session_truncate(&base.s, 100), NN_OK);
    const int32_t *lg;
    assert_int_equal(nn_session_forward(&base.s, toks + 100, 1, &lg), NN_OK);
    assert_memory_equal(lg, base.logits + (size_t)100 * V, V * 4);
    assert_int_equal(nn_session_truncate(&base.s, 200), NN_E_ARG);     /* cannot grow */
    assert_int_equal(nn_session_truncate(&base.s, 0), NN_OK);
    assert_int_equal(nn_session_forward(&base.s, toks, 3, &lg), NN_OK);
    assert_memory_equal(lg, base.logits, (size_t)3 * V * 4);      /* all_logits: the whole block */
    run_free(&base);
}

/* Two conversations interleaved on one session, each with its own KV cache, give what
 * each gives alone: logits, n_pos and cache bytes. */
static void kv_caches_keep_conversations_apart(void **st)
{
    (void)st;
    uint32_t V = model.cfg.vocab_size, half = n_toks / 2;
    nn_session_opts o = { .max_seq = half, .max_batch = 8, .threads = 2 };
    size_t need, need_kv;
    assert_int_equal(nn_session_arena_bytes(&model, &o, &need), NN_OK);
    uint8_t *mem = aligned_alloc(64, 2 * need);
    nn_arena a;
    nn_arena_init(&a, mem, 2 * need);
    nn_session s, alone;
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_OK);
    need_kv = nn_kv_cache_bytes(&s);
    nn_kv_cache ka, kb;
    nn_session_kv_get(&s, &ka);
    size_t before = a.used;
    assert_int_equal(nn_kv_cache_carve(&s, &a, &kb), NN_OK);
    assert_true(a.used - before < need_kv + 64);   /* plus at most the alignment of its start */
    /* A = tokens [0, half), B = tokens [half, n_toks), fed in turns of 8 and 5. */
    int32_t *la = malloc((size_t)V * 4), *lb = malloc((size_t)V * 4);
    const int32_t *lg;
    for (uint32_t pa = 0, pb = 0; pa < half || pb < half;) {
        uint32_t na = half - pa < 8 ? half - pa : 8, nb = half - pb < 5 ? half - pb : 5;
        if (na) {
            assert_int_equal(nn_session_forward(&s, toks + pa, na, &lg), NN_OK);
            memcpy(la, lg, (size_t)V * 4);
            pa += na;
        }
        nn_session_kv_get(&s, &ka);
        nn_session_kv_set(&s, &kb);
        assert_int_equal(s.n_pos, pb);
        if (nb) {
            assert_int_equal(nn_session_forward(&s, toks + half + pb, nb, &lg), NN_OK);
            memcpy(lb, lg, (size_t)V * 4);
            pb += nb;
        }
        nn_session_kv_get(&s, &kb);
        nn_session_kv_set(&s, &ka);
        assert_int_equal(s.n_pos, pa);
    }
    nn_session_deinit(&s);
    /* Each alone, on a fresh session over the same memory. */
    for (int c = 0; c < 2; c++) {
        nn_arena_init(&a, mem + need, need);
        assert_int_equal(nn_session_init(&alone, &model, &o, &a), NN_OK);
        assert_int_equal(nn_session_forward(&alone, toks + c * half, half, &lg), NN_OK);
        assert_memory_equal(lg, c ? lb : la, (size_t)V * 4);
        const nn_kv_cache *k = c ? &kb : &ka;
        size_t n = (size_t)model.cfg.n_layers * half;
        assert_int_equal(k->n_pos, half);
        assert_memory_equal(alone.kc, k->kc, n * model.kv_dim * 2);
        assert_memory_equal(alone.vc, k->vc, n * model.kv_dim * 2);
        assert_memory_equal(alone.kt, k->kt, n * model.cfg.n_kv_heads);
        assert_memory_equal(alone.vt, k->vt, n * model.cfg.n_kv_heads);
        nn_session_deinit(&alone);
    }
    /* No room: NN_E_NOMEM, and the arena says what it would take. */
    nn_arena_init(&a, mem, need_kv - 1);
    assert_int_equal(nn_kv_cache_carve(&alone, &a, &kb), NN_E_NOMEM);
    assert_true(nn_arena_needed(&a) >= need_kv);
    free(la);
    free(lb);
    free(mem);
}

static void range_errors_leave_the_session_untouched(void **st)
{
    (void)st;
    nn_session_opts o = { .max_seq = 8, .max_batch = 4 };
    size_t need;
    nn_session_arena_bytes(&model, &o, &need);
    uint8_t *mem = malloc(need);
    nn_arena a;
    nn_arena_init(&a, mem, need);
    nn_session s;
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_OK);
    const int32_t *lg;
    assert_int_equal(nn_session_forward(&s, toks, 5, &lg), NN_OK);
    uint32_t bad[2] = { 1, model.cfg.vocab_size };
    assert_int_equal(nn_session_forward(&s, bad, 2, &lg), NN_E_RANGE);
    assert_int_equal(s.n_pos, 5);
    assert_int_equal(nn_session_forward(&s, toks, 4, &lg), NN_E_RANGE);   /* 5 + 4 > 8 */
    assert_int_equal(s.n_pos, 5);
    assert_int_equal(nn_session_forward(&s, toks, 3, &lg), NN_OK);
    assert_int_equal(s.n_pos, 8);
    assert_int_equal(nn_session_forward(&s, NULL, 1, &lg), NN_E_ARG);
    nn_session_deinit(&s);
    free(mem);
}

static void arena_sizing(void **st)
{
    (void)st;
    nn_session_opts o = { .max_seq = 512, .max_batch = 8, .threads = 2 };
    size_t need;
    assert_int_equal(nn_session_arena_bytes(&model, &o, &need), NN_OK);
    /* The KV cache alone: 5 layers x 512 positions x 32 values x 2 (K, V) x 2 bytes. */
    assert_true(need > 5u * 512 * 32 * 2 * 2);
    uint8_t *mem = malloc(need);
    nn_arena a;
    nn_arena_init(&a, mem, need);
    nn_session s;
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_OK);
    nn_session_deinit(&s);
    size_t tight = a.used;                  /* the exact bytes carved */
    nn_arena_init(&a, mem, tight - 1);
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_E_NOMEM);
    assert_int_equal(nn_arena_needed(&a), need);   /* a failed carve still reports the whole need */
    nn_arena_init(&a, mem, tight);
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_OK);
    nn_session_deinit(&s);
    o.max_seq = model.cfg.max_seq + 1;
    assert_int_equal(nn_session_arena_bytes(&model, &o, &need), NN_E_ARG);
    o.max_seq = 16;
    o.kernels = "no-such-kernels";
    nn_arena_init(&a, mem, 1 << 20);
    assert_int_equal(nn_session_init(&s, &model, &o, &a), NN_E_ARG);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bit_identical_across_threads_blocks_and_kernels),
        cmocka_unit_test(fast_paths_bit_identical_on_wider_groups),
        cmocka_unit_test(last_row_only_paths_bit_identical),
        cmocka_unit_test(rollback_recomputes_identically),
        cmocka_unit_test(kv_caches_keep_conversations_apart),
        cmocka_unit_test(range_errors_leave_the_session_untouched),
        cmocka_unit_test(arena_sizing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
