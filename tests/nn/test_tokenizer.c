/* The image tokenizer reproduces llama2.c's encode/decode on the real vocabularies. */
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"
#include "testutil.h"
#include "tok_internal.h"

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

/* Splits text with a pre-tokenizer and compares with the expected words, given as
 * NULL-terminated list. Worked out by hand from the published regular expressions. */
static void expect_split(uint32_t pretok, const char *text, const char *const *want)
{
    uint32_t len = (uint32_t)strlen(text), i = 0, k = 0;
    while (i < len) {
        uint32_t w = nn_pretok_next(pretok, (const uint8_t *)text + i, len - i);
        assert_true(w >= 1 && w <= len - i);
        if (!want[k] || strlen(want[k]) != w || memcmp(want[k], text + i, w) != 0) {
            print_error("pretok %u on \"%s\": word %u is \"%.*s\", wanted \"%s\"\n", pretok, text, k, (int)w, text + i,
                        want[k] ? want[k] : "(end)");
            fail();
        }
        i += w;
        k++;
    }
    assert_null(want[k]);
}

static void pre_tokenizers_by_hand(void **st)
{
    (void)st;
    enum { G = NN_TOK_PRE_GPT2, L = NN_TOK_PRE_LLAMA3 };
    /* contractions: case-sensitive in GPT-2, case-insensitive in Llama 3 */
    expect_split(G, "HELLO'S it's", (const char *[]){ "HELLO", "'", "S", " it", "'s", NULL });
    expect_split(L, "HELLO'S it's", (const char *[]){ "HELLO", "'S", " it", "'s", NULL });
    expect_split(L, "I'll see 12345 items!\n\n ok",
                 (const char *[]){ "I", "'ll", " see", " ", "123", "45", " items", "!\n\n", " ok", NULL });
    expect_split(G, "I'll see 12345 items!\n\n ok",
                 (const char *[]){ "I", "'ll", " see", " 12345", " items", "!", "\n\n", " ok", NULL });
    /* whitespace: \s+(?!\S) leaves the last space to the next word; \s*[\r\n]+ */
    expect_split(G, "\tfoo  bar\r\n\r\nbaz",
                 (const char *[]){ "\t", "foo", " ", " bar", "\r\n\r", "\n", "baz", NULL });
    expect_split(L, "\tfoo  bar\r\n\r\nbaz", (const char *[]){ "\tfoo", " ", " bar", "\r\n\r\n", "baz", NULL });
    expect_split(G, "end  ", (const char *[]){ "end", "  ", NULL });
    expect_split(L, "a \n b", (const char *[]){ "a", " \n", " b", NULL });
    /* Unicode letters and numbers: ï, é, CJK, Arabic-Indic digits */
    expect_split(G, "na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xd9\xa3\xd9\xa4",
                 (const char *[]){ "na\xc3\xafve", " caf\xc3\xa9", " \xe4\xb8\xad\xe6\x96\x87", " \xd9\xa3\xd9\xa4",
                                   NULL });
    expect_split(L, "na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xd9\xa3\xd9\xa4",
                 (const char *[]){ "na\xc3\xafve", " caf\xc3\xa9", " \xe4\xb8\xad\xe6\x96\x87", " ", "\xd9\xa3\xd9\xa4",
                                   NULL });
    expect_split(G, "1234567 a.b a...b", (const char *[]){ "1234567", " a", ".", "b", " a", "...", "b", NULL });
    expect_split(L, "1234567 a.b a...b",
                 (const char *[]){ "123", "456", "7", " a", ".b", " a", "...", "b", NULL });
    /* an emoji is neither letter nor number; invalid bytes are "other" characters */
    expect_split(G, "hi\xf0\x9f\x98\x80!", (const char *[]){ "hi", "\xf0\x9f\x98\x80!", NULL });
    expect_split(G, "ab\xff" "cd\xe2\x96", (const char *[]){ "ab", "\xff", "cd", "\xe2\x96", NULL });
    expect_split(L, "ab\xff" "cd", (const char *[]){ "ab", "\xff" "cd", NULL });
    /* U+00A0 and U+3000 are white space, U+00B2 (superscript two) a number */
    expect_split(G, "a\xc2\xa0\xc2\xa0" "b\xe3\x80\x80\xc2\xb2",
                 (const char *[]){ "a", "\xc2\xa0", "\xc2\xa0", "b", "\xe3\x80\x80", "\xc2\xb2", NULL });
    assert_true(nn_uni_is_letter(0x4e2d) && nn_uni_is_letter(0xe9) && !nn_uni_is_letter(0x1f600));
    assert_true(nn_uni_is_number(0x663) && nn_uni_is_number(0xb2) && !nn_uni_is_number('a'));
}

/* Version 2 blobs: every header field damaged, and random damage anywhere, is either
 * refused or yields a tokenizer that encodes without reading out of bounds. */
static void bpe_blobs_are_validated(void **st)
{
    (void)st;
    char dir[1024], err[256];
    snprintf(dir, sizeof dir, "%s/tests/tools/fixtures/bytelevel", getenv("KVMESH_TOP") ? getenv("KVMESH_TOP") : ".");
    kt_vocab v;
    uint8_t *blob;
    uint32_t len;
    if (kt_vocab_read_hf(&v, dir, 273, NN_TOK_NONE, NN_TOK_NONE, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    assert_int_equal(kt_vocab_blob(&v, &blob, &len), 0);
    nn_tokenizer t;
    assert_int_equal(nn_tok_init(&t, blob, len), NN_OK);
    uint8_t *b = malloc(len);
    for (uint32_t off = 4; off < NN_TOK_V2_HEADER_BYTES; off += 4) {
        if (off == 20 || off == 24)
            continue;                               /* bos/eos: any id below n is valid */
        memcpy(b, blob, len);
        nn_wr32(b + off, 0xfffffff0u);
        assert_int_equal(nn_tok_init(&t, b, len), NN_E_TOKENIZER);
    }
    assert_int_equal(nn_tok_init(&t, blob, len - 1), NN_E_TOKENIZER);
    uint64_t r = 42;
    static uint8_t scratch[64];
    uint32_t ids[300], n, accepted = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(b, blob, len);
        for (int k = 0; k < 1 + i % 2; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            b[(r >> 33) % len] ^= (uint8_t)(1u << ((r >> 20) & 7));
        }
        if (nn_tok_init(&t, b, len) == NN_OK) {
            accepted++;
            nn_status s = nn_tok_encode(&t, "the cat's hat \xff 12 <|endoftext|>", 1, 1, ids, 300, &n, scratch,
                                        sizeof scratch);
            assert_true(s == NN_OK || s == NN_E_TOKENIZER || s == NN_E_RANGE);
            for (uint32_t k = 0; s == NN_OK && k < n; k++)
                assert_true(ids[k] < t.n_vocab);
        }
    }
    assert_true(accepted > 0);
    free(b);
    free(blob);
    kt_vocab_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_prompt_ids),
        cmocka_unit_test(llama2_32k_vocabulary),
        cmocka_unit_test(byte_fallback_and_decode),
        cmocka_unit_test(corrupt_blobs_are_refused),
        cmocka_unit_test(vocab_count_must_match),
        cmocka_unit_test(pre_tokenizers_by_hand),
        cmocka_unit_test(bpe_blobs_are_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
