/*
 * KV caches on the real stories260K model: prefix ids, export and import (the session
 * resumes bit-identically), any range of layers and positions, token matching, lossy
 * import, and every kind of bad stream rejected without touching the session.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static kt_img img_buf;
static nn_image img;
static nn_model model;
static uint32_t toks[256];

typedef struct sess {
    nn_session s;
    nn_kv_work w;
    uint8_t *mem;
} sess;

static void open_sess(sess *x, uint32_t seq, uint32_t threads)
{
    nn_session_opts o = { .max_seq = seq, .max_batch = 16, .threads = threads };
    size_t need;
    nn_session_arena_bytes(&model, &o, &need);
    need += nn_kv_work_bytes(&model, seq);
    x->mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    nn_arena a;
    nn_arena_init(&a, x->mem, need);
    assert_int_equal(nn_session_init(&x->s, &model, &o, &a), NN_OK);
    assert_int_equal(nn_kv_work_init(&x->w, &model, seq, &a), NN_OK);
    assert_true(a.used <= need && need - a.used < NN_ARENA_ALIGN);   /* measuring and carving agree */
}

static void close_sess(sess *x)
{
    nn_session_deinit(&x->s);
    free(x->mem);
}

static int setup(void **st)
{
    (void)st;
    tu_build_llama2c("stories260K", 4, &img_buf);
    if (nn_image_from_memory(&img, img_buf.buf, img_buf.len) || nn_model_init(&model, &img))
        return -1;
    return tu_golden_tokens("stories260K", toks, NULL, 256) == 256 ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    kt_img_free(&img_buf);
    return 0;
}

/* Export [0, n) of a session that read toks, with codec o; returns the malloc'd stream. */
static uint8_t *export_all(sess *x, uint32_t n, const char *codec, size_t *len)
{
    nn_kv_opts o;
    assert_int_equal(nn_kv_parse_codec(codec, &o), NN_OK);
    nn_kv_range r = { 0, model.cfg.n_layers, 0, n };
    size_t cap = nn_kv_export_bound(&model, &r, 0);
    uint8_t *buf = malloc(cap);
    assert_int_equal(nn_kv_export(&x->s, &r, toks, &o, NULL, &x->w, buf, cap, len), NN_OK);
    return buf;
}

static void prefix_ids_chain_by_block(void **st)
{
    (void)st;
    uint8_t a[16][32], b[16][32];
    assert_int_equal(nn_kv_prefix_ids(&img.id, 16, toks, 100, a, 16), 6);
    uint32_t other[100];
    memcpy(other, toks, sizeof other);
    other[40] ^= 1;                       /* differs inside block 2 */
    assert_int_equal(nn_kv_prefix_ids(&img.id, 16, other, 100, b, 16), 6);
    assert_memory_equal(a[0], b[0], 64);  /* blocks 0 and 1 agree */
    for (int k = 2; k < 6; k++)
        assert_memory_not_equal(a[k], b[k], 32);
    nn_model_id id2 = img.id;
    id2.fingerprint[0] ^= 1;               /* another model: every id differs */
    assert_int_equal(nn_kv_prefix_ids(&id2, 16, toks, 100, b, 16), 6);
    assert_memory_not_equal(a[0], b[0], 32);
    assert_int_equal(nn_kv_prefix_ids(&img.id, 16, toks, 15, a, 16), 0);
}

/* The defining property: a session that imports [0, n) continues bit-identically. */
static void import_resumes_bit_identically(void **st)
{
    (void)st;
    static const char *codecs[] = { "raw", "lossless" };
    for (size_t c = 0; c < 2; c++) {
        sess a, b;
        open_sess(&a, 256, 1);
        open_sess(&b, 256, 2);
        const int32_t *la, *lb;
        assert_int_equal(nn_session_forward(&a.s, toks, 100, NULL), NN_OK);
        size_t len;
        uint8_t *buf = export_all(&a, 100, codecs[c], &len);
        uint32_t reused;
        assert_int_equal(nn_kv_import(&b.s, buf, len, toks, 256, NULL, &b.w, &reused), NN_OK);
        assert_int_equal(reused, 100);
        assert_int_equal(b.s.n_pos, 100);
        for (uint32_t p = 100; p < 140; p++) {
            assert_int_equal(nn_session_forward(&a.s, &toks[p], 1, &la), NN_OK);
            assert_int_equal(nn_session_forward(&b.s, &toks[p], 1, &lb), NN_OK);
            assert_memory_equal(la, lb, model.cfg.vocab_size * 4);
        }
        /* The whole cache, including the 40 positions computed after import. */
        for (uint32_t l = 0; l < model.cfg.n_layers; l++) {
            size_t row = (size_t)l * 256 * model.kv_dim;
            assert_memory_equal(a.s.kc + row, b.s.kc + row, 140 * model.kv_dim * 2);
            assert_memory_equal(a.s.vc + row, b.s.vc + row, 140 * model.kv_dim * 2);
        }
        free(buf);
        close_sess(&a);
        close_sess(&b);
    }
}

static void any_range_of_layers_and_positions(void **st)
{
    (void)st;
    sess a, b;
    open_sess(&a, 256, 1);
    open_sess(&b, 256, 1);
    assert_int_equal(nn_session_forward(&a.s, toks, 120, NULL), NN_OK);
    /* Positions [0, 50) of every layer, then [50, 120) appended in two layer halves. */
    nn_kv_opts o = { .codec = NN_KV_LOSSLESS };
    nn_kv_range r1 = { 0, model.cfg.n_layers, 0, 50 };
    nn_kv_range r2 = { 0, 2, 50, 120 }, r3 = { 2, model.cfg.n_layers, 50, 120 };
    nn_kv_range all[3] = { r1, r2, r3 };
    uint32_t expect_pos[3] = { 50, 50, 50 };
    for (int i = 0; i < 3; i++) {
        size_t cap = nn_kv_export_bound(&model, &all[i], 0), len;
        uint8_t *buf = malloc(cap);
        assert_int_equal(nn_kv_export(&a.s, &all[i], toks, &o, NULL, &a.w, buf, cap, &len), NN_OK);
        nn_kv_info in;
        assert_int_equal(nn_kv_parse(buf, len, &in), NN_OK);
        assert_int_equal(in.r.layer0, all[i].layer0);
        assert_int_equal(in.r.pos1, all[i].pos1);
        uint32_t reused;
        assert_int_equal(nn_kv_import(&b.s, buf, len, toks, 256, NULL, &b.w, &reused), NN_OK);
        assert_int_equal(b.s.n_pos, expect_pos[i]);   /* partial layers leave n_pos to the caller */
        free(buf);
    }
    assert_int_equal(nn_session_set_pos(&b.s, 120), NN_OK);
    const int32_t *la, *lb;
    assert_int_equal(nn_session_forward(&a.s, &toks[120], 1, &la), NN_OK);
    assert_int_equal(nn_session_forward(&b.s, &toks[120], 1, &lb), NN_OK);
    assert_memory_equal(la, lb, model.cfg.vocab_size * 4);
    close_sess(&a);
    close_sess(&b);
}

static void import_stops_where_tokens_differ(void **st)
{
    (void)st;
    sess a, b;
    open_sess(&a, 256, 1);
    open_sess(&b, 256, 1);
    assert_int_equal(nn_session_forward(&a.s, toks, 64, NULL), NN_OK);
    size_t len;
    uint8_t *buf = export_all(&a, 64, "lossless", &len);
    uint32_t mine[64], reused;
    memcpy(mine, toks, sizeof mine);
    mine[37] = (mine[37] + 1) % model.cfg.vocab_size;
    assert_int_equal(nn_kv_import(&b.s, buf, len, mine, 64, NULL, &b.w, &reused), NN_OK);
    assert_int_equal(reused, 37);
    /* Fewer caller tokens than the stream: take only those. */
    assert_int_equal(nn_session_truncate(&b.s, 0), NN_OK);
    assert_int_equal(nn_kv_import(&b.s, buf, len, toks, 20, NULL, &b.w, &reused), NN_OK);
    assert_int_equal(reused, 20);
    free(buf);
    close_sess(&a);
    close_sess(&b);
}

static void lossy_import_stays_close(void **st)
{
    (void)st;
    sess a, b;
    open_sess(&a, 256, 1);
    open_sess(&b, 256, 1);
    assert_int_equal(nn_session_forward(&a.s, toks, 128, NULL), NN_OK);
    size_t len, lossless_len;
    uint8_t *l8 = export_all(&a, 128, "lossless", &lossless_len);
    uint8_t *buf = export_all(&a, 128, "k4v4", &len);
    assert_true(len * 3 < lossless_len);
    uint32_t reused;
    assert_int_equal(nn_kv_import(&b.s, buf, len, toks, 256, NULL, &b.w, &reused), NN_OK);
    const int32_t *la, *lb;
    int same = 0;
    for (uint32_t p = 128; p < 160; p++) {
        assert_int_equal(nn_session_forward(&a.s, &toks[p], 1, &la), NN_OK);
        assert_int_equal(nn_session_forward(&b.s, &toks[p], 1, &lb), NN_OK);
        same += nn_argmax_i32(la, model.cfg.vocab_size) == nn_argmax_i32(lb, model.cfg.vocab_size);
    }
    assert_true(same >= 31);
    free(buf);
    free(l8);
    close_sess(&a);
    close_sess(&b);
}

/* Every rejection leaves n_pos and the valid cache rows exactly as they were. */
static void bad_streams_are_rejected_whole(void **st)
{
    (void)st;
    sess a, b;
    open_sess(&a, 256, 1);
    open_sess(&b, 256, 1);
    assert_int_equal(nn_session_forward(&a.s, toks, 96, NULL), NN_OK);
    size_t len;
    uint8_t *good = export_all(&a, 96, "lossless", &len);
    uint8_t *bad = malloc(len);
    /* b already holds 10 positions of its own. */
    assert_int_equal(nn_session_forward(&b.s, toks, 10, NULL), NN_OK);
    size_t rows = (size_t)model.cfg.n_layers * 256 * model.kv_dim;
    int16_t *before = malloc(rows * 2);
    memcpy(before, b.s.kc, rows * 2);
    uint32_t reused;
#define REJECT(buf_, len_, want_)                                                                   \
    do {                                                                                            \
        assert_int_equal(nn_kv_import(&b.s, buf_, len_, toks, 256, NULL, &b.w, &reused), want_);    \
        assert_int_equal(b.s.n_pos, 10);                                                            \
        for (uint32_t l = 0; l < model.cfg.n_layers; l++)                                           \
            assert_memory_equal(b.s.kc + (size_t)l * 256 * model.kv_dim,                           \
                                before + (size_t)l * 256 * model.kv_dim, 10 * model.kv_dim * 2);    \
    } while (0)
    /* pos0 (0) is not b's n_pos (10). */
    REJECT(good, len, NN_E_RANGE);
    /* Truncated anywhere. */
    for (size_t n = 0; n < len; n += 1 + n / 4)
        assert_int_not_equal(nn_kv_import(&b.s, good, n, toks, 256, NULL, &b.w, &reused), NN_OK);
    REJECT(good, len - 1, NN_E_TRUNCATED);
    /* Any flipped byte fails the digest. */
    for (size_t i = 0; i < len; i += 1 + i / 8) {
        memcpy(bad, good, len);
        bad[i] ^= 0x20;
        assert_int_not_equal(nn_kv_import(&b.s, bad, len, toks, 256, NULL, &b.w, &reused), NN_OK);
        assert_int_equal(b.s.n_pos, 10);
    }
    assert_int_equal(nn_session_truncate(&b.s, 0), NN_OK);
    /* Another model's identity (digest recomputed by re-exporting is not possible here:
     * flip the fingerprint and the digest check fires first, so test the identity check
     * through a second image instead). */
    kt_img other;
    tu_build_llama2c("stories260K", 8, &other);            /* same shape, another fingerprint */
    nn_image oimg;
    static nn_model omodel;
    assert_int_equal(nn_image_from_memory(&oimg, other.buf, other.len), NN_OK);
    assert_int_equal(nn_model_init(&omodel, &oimg), NN_OK);
    nn_session_opts o = { .max_seq = 256, .max_batch = 16 };
    size_t need;
    nn_session_arena_bytes(&omodel, &o, &need);
    need += nn_kv_work_bytes(&omodel, 256);
    uint8_t *mem = malloc(need);
    nn_arena ar;
    nn_arena_init(&ar, mem, need);
    nn_session os;
    nn_kv_work ow;
    assert_int_equal(nn_session_init(&os, &omodel, &o, &ar), NN_OK);
    assert_int_equal(nn_kv_work_init(&ow, &omodel, 256, &ar), NN_OK);
    assert_int_equal(nn_kv_import(&os, good, len, toks, 256, NULL, &ow, &reused), NN_E_MODEL);
    assert_int_equal(os.n_pos, 0);
    nn_kv_import_opts other_ok = { .other_model = 1 };
    assert_int_equal(nn_kv_import(&os, good, len, toks, 256, &other_ok, &ow, &reused), NN_OK);
    assert_int_equal(reused, 96);
    nn_session_deinit(&os);
    free(mem);
    kt_img_free(&other);
    /* Past the session's context. */
    sess small;
    open_sess(&small, 64, 1);
    assert_int_equal(nn_kv_import(&small.s, good, len, toks, 256, NULL, &small.w, &reused), NN_E_RANGE);
    assert_int_equal(small.s.n_pos, 0);
    close_sess(&small);
    /* Export arguments. */
    nn_kv_opts ko = { .codec = NN_KV_LOSSY, .k_bits = 9, .v_bits = 2 };
    nn_kv_range r = { 0, model.cfg.n_layers, 0, 96 };
    assert_int_equal(nn_kv_export(&a.s, &r, toks, &ko, NULL, &a.w, bad, len, &len), NN_E_ARG);
    ko.k_bits = 2;
    r.pos1 = 97;                                            /* beyond a's positions */
    assert_int_equal(nn_kv_export(&a.s, &r, toks, &ko, NULL, &a.w, bad, len, &len), NN_E_RANGE);
    r.pos1 = 96;
    size_t small_len;
    assert_int_equal(nn_kv_export(&a.s, &r, toks, &ko, NULL, &a.w, bad, 100, &small_len), NN_E_NOMEM);
    assert_true(small_len > 100);
    free(before);
    free(bad);
    free(good);
    close_sess(&a);
    close_sess(&b);
}

/*
 * U-shaped split across two sessions: the device embeds and runs layers [0, 2), the peer
 * runs [2, 4) from the device's hidden states (exact wire codec), the device runs [4, 5)
 * and the head. Every token's logits equal one session running the whole model.
 */
static void split_inference_is_bit_identical(void **st)
{
    (void)st;
    sess whole, dev, peer;
    open_sess(&whole, 256, 1);
    open_sess(&dev, 256, 1);
    open_sess(&peer, 256, 2);
    uint32_t dim = model.cfg.dim, V = model.cfg.vocab_size, L = model.cfg.n_layers;
    int32_t x[16 * 64], y[16 * 64], lg[16 * 512];
    uint8_t wire[16384];
    size_t len, exact_bytes = 0, int8_bytes = 0;
    uint32_t pos = 0;
    /* a 16-token prompt chunk, then one token at a time */
    uint32_t steps[4] = { 16, 1, 1, 1 };
    for (int k = 0; k < 4; k++) {
        uint32_t n = steps[k];
        const int32_t *lw;
        assert_int_equal(nn_session_forward(&whole.s, toks + pos, n, &lw), NN_OK);
        assert_int_equal(nn_session_embed(&dev.s, toks + pos, n, x), NN_OK);
        assert_int_equal(nn_session_run_layers(&dev.s, pos, x, n, 0, 2, x), NN_OK);
        assert_int_equal(nn_hidden_encode(x, n, dim, NN_HIDDEN_EXACT, &dev.w, wire, sizeof wire, &len), NN_OK);
        exact_bytes += len;
        assert_int_equal(nn_hidden_decode(wire, len, n, dim, &peer.w, y), NN_OK);
        assert_memory_equal(x, y, (size_t)n * dim * 4);
        assert_int_equal(nn_session_run_layers(&peer.s, pos, y, n, 2, 4, y), NN_OK);
        assert_int_equal(nn_hidden_encode(y, n, dim, NN_HIDDEN_EXACT, &peer.w, wire, sizeof wire, &len), NN_OK);
        assert_int_equal(nn_hidden_decode(wire, len, n, dim, &dev.w, x), NN_OK);
        assert_int_equal(nn_session_run_layers(&dev.s, pos, x, n, 4, L, x), NN_OK);
        assert_int_equal(nn_session_logits(&dev.s, x + (size_t)(n - 1) * dim, 1, lg), NN_OK);
        assert_memory_equal(lg, lw, V * 4);
        assert_int_equal(nn_hidden_encode(x, n, dim, NN_HIDDEN_INT8, &dev.w, wire, sizeof wire, &len), NN_OK);
        int8_bytes += len;
        assert_int_equal(nn_hidden_decode(wire, len, n, dim, &dev.w, y), NN_OK);
        for (size_t i = 0; i < (size_t)n * dim; i++)        /* int8: within half a step of the row's scale */
            assert_true(llabs((long long)y[i] - x[i]) <= (1ll << 24));
        pos += n;
    }
    assert_true(int8_bytes < exact_bytes);
    /* Bad blocks: the wrong shape, truncation, a corrupted mode. */
    assert_int_equal(nn_hidden_encode(x, 1, dim, NN_HIDDEN_EXACT, &dev.w, wire, sizeof wire, &len), NN_OK);
    assert_int_equal(nn_hidden_decode(wire, len, 2, dim, &dev.w, y), NN_E_CODEC);
    assert_int_equal(nn_hidden_decode(wire, len - 1, 1, dim, &dev.w, y), NN_E_TRUNCATED);
    wire[0] = 7;
    assert_int_equal(nn_hidden_decode(wire, len, 1, dim, &dev.w, y), NN_E_CODEC);
    close_sess(&whole);
    close_sess(&dev);
    close_sess(&peer);
}

static void codec_names(void **st)
{
    (void)st;
    nn_kv_opts o;
    assert_int_equal(nn_kv_parse_codec("k3v2g128c64", &o), NN_OK);
    assert_int_equal(o.codec, NN_KV_LOSSY);
    assert_int_equal(o.k_bits, 3);
    assert_int_equal(o.v_bits, 2);
    assert_int_equal(o.k_group, 128);
    assert_int_equal(o.v_group, 64);
    assert_int_equal(nn_kv_parse_codec("k4v4c32", &o), NN_OK);
    assert_int_equal(o.k_group, 0);
    assert_int_equal(o.v_group, 32);
    const char *bad[] = { "k9v2", "k3v0", "k3v2g4", "k3v2x", "k3v2c64g128", "", "zstd", "k3v2g" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(nn_kv_parse_codec(bad[i], &o), NN_E_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefix_ids_chain_by_block),
        cmocka_unit_test(import_resumes_bit_identically),
        cmocka_unit_test(any_range_of_layers_and_positions),
        cmocka_unit_test(import_stops_where_tokens_differ),
        cmocka_unit_test(lossy_import_stays_close),
        cmocka_unit_test(bad_streams_are_rejected_whole),
        cmocka_unit_test(split_inference_is_bit_identical),
        cmocka_unit_test(codec_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
