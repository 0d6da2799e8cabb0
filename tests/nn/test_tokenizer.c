/* The image tokenizer reproduces llama2.c's encode/decode on the real vocabularies. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct tok {
    kt_vocab v;
    uint8_t *blob;
    uint32_t len;
    nn_tokenizer t;
} tok;

static void load(tok *k, const char *rel, uint32_t n)
{
    char err[256];
    if (kt_vocab_read_llama2c(&k->v, tu_model_file(rel), n, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    assert_int_equal(kt_vocab_blob(&k->v, &k->blob, &k->len), 0);
    assert_int_equal(nn_tok_init(&k->t, k->blob, k->len), NN_OK);
}

static void unload(tok *k)
{
    kt_vocab_free(&k->v);
    free(k->blob);
}

static uint32_t enc(const nn_tokenizer *t, const char *text, uint32_t *ids, uint32_t max)
{
    static uint8_t scratch[1 << 14];
    uint32_t n;
    assert_int_equal(nn_tok_encode(t, text, 1, 0, ids, max, &n, scratch, sizeof scratch), NN_OK);
    return n;
}

static void golden_prompt_ids(void **st)
{
    (void)st;
    tok k;
    load(&k, "stories260K/tok512.bin", 512);
    uint32_t ids[32], want[5], next[5];
    /* The golden tokens file starts with the prompt: BOS then the forced tokens. */
    uint32_t in[5];
    tu_golden_tokens("stories260K", in, next, 5);
    want[0] = in[0];
    for (int i = 1; i < 5; i++)
        want[i] = next[i - 1];
    assert_int_equal(enc(&k.t, "Once upon a time", ids, 32), 5);
    assert_memory_equal(ids, want, sizeof want);
    assert_int_equal(ids[1], 403);
    unload(&k);
}

static void llama2_32k_vocabulary(void **st)
{
    (void)st;
    tok k;
    load(&k, "llama2c-tokenizer-32k/tokenizer.bin", 32000);
    uint32_t ids[64];
    /* Llama 2's own tokenizer gives [1, 9038, 2501, 263, 931] for this prompt. */
    static const uint32_t want[] = { 1, 9038, 2501, 263, 931 };
    assert_int_equal(enc(&k.t, "Once upon a time", ids, 64), 5);
    assert_memory_equal(ids, want, sizeof want);
    /* Non-ASCII: a code point in the vocabulary is one token before merging. */
    uint32_t n = enc(&k.t, "café ☃", ids, 64);
    char out[64] = "";
    for (uint32_t i = 1; i < n; i++) {
        nn_tok_piece p = nn_tok_decode(&k.t, ids[i - 1], ids[i]);
        strncat(out, (const char *)p.p, p.len);
    }
    assert_string_equal(out, "café ☃");
    unload(&k);
}

static void byte_fallback_and_decode(void **st)
{
    (void)st;
    tok k;
    load(&k, "stories260K/tok512.bin", 512);
    uint32_t ids[32];
    /* tok512 has "é" (id 485) but no "ü": its UTF-8 bytes fall back to <0xC3> <0xBC>. */
    uint32_t n = enc(&k.t, "é", ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 485);
    n = enc(&k.t, "ü", ids, 32);
    assert_int_equal(n, 4);
    assert_int_equal(ids[2], 3 + 0xC3);
    assert_int_equal(ids[3], 3 + 0xBC);
    nn_tok_piece p = nn_tok_decode(&k.t, ids[2], ids[3]);
    assert_int_equal(p.len, 1);
    assert_int_equal(p.p[0], 0xBC);
    /* After BOS a leading space is dropped. */
    p = nn_tok_decode(&k.t, 1, 403);
    assert_true(p.len > 0 && p.p[0] != ' ');
    /* Round trip of plain text through decode. */
    const char *text = "The cat sat on the mat, and it was happy.";
    uint32_t big[64];
    n = enc(&k.t, text, big, 64);
    assert_true(n < 32);
    memcpy(ids, big, n * sizeof *ids);
    char out[128] = "";
    for (uint32_t i = 1; i < n; i++) {
        p = nn_tok_decode(&k.t, ids[i - 1], ids[i]);
        strncat(out, (const char *)p.p, p.len);
    }
    assert_string_equal(out, text);
    /* Empty text: BOS only; too many ids: an error, not an overflow. */
    assert_int_equal(enc(&k.t, "", ids, 32), 1);
    static uint8_t scratch[1024];
    uint32_t cnt;
    assert_int_equal(nn_tok_encode(&k.t, "a long prompt", 1, 0, ids, 2, &cnt, scratch, sizeof scratch), NN_E_RANGE);
    assert_int_equal(nn_tok_encode(&k.t, "x", 1, 0, ids, 32, &cnt, scratch, 1), NN_E_ARG);
    assert_int_equal(nn_tok_str(&k.t, 512).len, 0);
    unload(&k);
}

static void corrupt_blobs_are_refused(void **st)
{
    (void)st;
    tok k;
    load(&k, "stories260K/tok512.bin", 512);
    nn_tokenizer t;
    uint8_t *b = malloc(k.len);
    static const uint32_t fields[] = { 4, 8, 12, 16, 20, 28, 36, 40, 44, 48, 52 };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(b, k.blob, k.len);
        nn_wr32(b + fields[i], 0xfffffff0u);
        assert_int_equal(nn_tok_init(&t, b, k.len), NN_E_TOKENIZER);
    }
    memcpy(b, k.blob, k.len);
    uint32_t off_sorted = nn_rd32(b + 44);
    uint32_t a = nn_rd32(b + off_sorted), c = nn_rd32(b + off_sorted + 4 * 100);
    nn_wr32(b + off_sorted, c);                 /* break the sort order */
    nn_wr32(b + off_sorted + 4 * 100, a);
    assert_int_equal(nn_tok_init(&t, b, k.len), NN_E_TOKENIZER);
    memcpy(b, k.blob, k.len);
    uint32_t off_strings = nn_rd32(b + 48), end0 = nn_rd32(b + nn_rd32(b + 40));
    b[off_strings + end0 - 1] = 'x';            /* a missing terminator */
    assert_int_equal(nn_tok_init(&t, b, k.len), NN_E_TOKENIZER);
    assert_int_equal(nn_tok_init(&t, k.blob, k.len - 1), NN_E_TOKENIZER);
    assert_int_equal(nn_tok_init(&t, k.blob, 10), NN_E_TOKENIZER);
    free(b);
    unload(&k);
}

static void vocab_count_must_match(void **st)
{
    (void)st;
    kt_vocab v;
    char err[256];
    assert_int_equal(kt_vocab_read_llama2c(&v, tu_model_file("llama2c-tokenizer-32k/tokenizer.bin"), 512, err,
                                           sizeof err), -1);
    assert_non_null(strstr(err, "32000 entries"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_prompt_ids),
        cmocka_unit_test(llama2_32k_vocabulary),
        cmocka_unit_test(byte_fallback_and_decode),
        cmocka_unit_test(corrupt_blobs_are_refused),
        cmocka_unit_test(vocab_count_must_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
