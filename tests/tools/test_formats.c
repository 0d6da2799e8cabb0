/*
 * Model formats: the JSON parser, the tokenizer.json reader and the engine's BPE kind
 * (a hand-checked byte-level fixture, arbitrary bytes, the stories260K vocabulary
 * against tok512.bin), the safetensors and GGUF readers' bounds checks, the q/k
 * permutation (weights bit-identical to the llama2.c path), rope_theta, head_dim, and
 * Q8_0 blocks onto image groups.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "gguf.h"
#include "json.h"
#include "safetensors.h"
#include "testutil.h"

static char tmpdir[256];

static int setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "%s/kvmesh-formats.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void json_is_strict(void **st)
{
    (void)st;
    static const char *bad[] = {
        "", "{", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "{'a':1}", "[\"\\x\"]",
        "[\"a\nb\"]", "[\"\\ud800\"]", "[\"\\udc00x\"]", "[\"\\ud800\\u0041\"]", "[tru]", "[1] x", "// c\n[]",
        "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "{\"a\" 1}", "[1 2]", "nul",
    };
    char err[200];
    kt_json j;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (kt_json_parse(&j, bad[i], strlen(bad[i]), err, sizeof err) == 0) {
            print_error("accepted invalid JSON #%zu: %s\n", i, bad[i]);
            fail();
        }
    }
    char deep[600];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    assert_int_equal(kt_json_parse(&j, deep, 600, err, sizeof err), -1);
    assert_non_null(strstr(err, "deep"));

    const char *ok = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\", "
                     "\"big\": 18446744073709551615, \"neg\": -1, \"a\": 7} ";
    assert_int_equal(kt_json_parse(&j, ok, strlen(ok), err, sizeof err), 0);
    const kt_jv *r = kt_json_root(&j), *a = kt_json_get(&j, r, "a");
    assert_int_equal(a->type, KT_J_ARR);              /* the first of duplicate keys */
    assert_int_equal(a->len, 5);
    double d;
    assert_int_equal(kt_json_num(kt_json_next(&j, kt_json_first(&j, a)), &d), 0);
    assert_true(d == -2500.0);
    assert_true(kt_json_streq(kt_json_get(&j, r, "s"), "x\xc3\xa9\xf0\x9f\x98\x80\n\""));
    uint64_t u;
    assert_int_equal(kt_json_u64(kt_json_get(&j, r, "big"), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(kt_json_u64(kt_json_get(&j, r, "neg"), &u), -1);
    kt_json_free(&j);
}

/* ---- tokenizers ------------------------------------------------------------------------- */

typedef struct tok {
    kt_vocab v;
    uint8_t *blob;
    uint32_t len;
    nn_tokenizer t;
} tok;

static void tok_from(tok *k, const kt_vocab *v)
{
    assert_int_equal(kt_vocab_blob(v, &k->blob, &k->len), 0);
    assert_int_equal(nn_tok_init(&k->t, k->blob, k->len), NN_OK);
}

static void load_hf(tok *k, const char *dir, uint32_t n)
{
    char err[512];
    if (kt_vocab_read_hf(&k->v, dir, n, NN_TOK_NONE, NN_TOK_NONE, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    tok_from(k, &k->v);
}

static void unload(tok *k)
{
    kt_vocab_free(&k->v);
    free(k->blob);
}

static uint32_t enc(const nn_tokenizer *t, const char *text, int bos, uint32_t *ids, uint32_t max)
{
    static uint8_t scratch[1 << 14];
    uint32_t n = 0;
    nn_status s = nn_tok_encode(t, text, bos, 0, ids, max, &n, scratch, sizeof scratch);
    if (s) {
        print_error("encode '%s': %s\n", text, nn_strerror(s));
        fail();
    }
    return n;
}

/* Decodes ids (the first of which is BOS when bos) as the generate loop prints them. */
static size_t dec(const nn_tokenizer *t, int bos, const uint32_t *ids, uint32_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (uint32_t i = bos ? 1 : 0; i < n; i++) {
        nn_tok_piece p = nn_tok_decode(t, i ? ids[i - 1] : t->bos_id, ids[i]);
        assert_true(o + p.len < cap);
        memcpy(out + o, p.p, p.len);
        o += p.len;
    }
    out[o] = 0;
    return o;
}

static const char *fixture(void)
{
    static char d[1024];
    snprintf(d, sizeof d, "%s/tests/tools/fixtures/bytelevel", getenv("KVMESH_TOP") ? getenv("KVMESH_TOP") : ".");
    return d;
}

/* Expected ids worked out by hand: GPT-2's pre-tokenization, then the fixture's merges
 * (ranks: 0 "Ġ t", 1 "h e", 2 "Ġt he", 3 "i n", 4 "Ġ c", 5 "a t", 6 "Ġc at", 7 "' s",
 * 8 "Ġ s", 9 "Ġs at", 10 "t he", 11 "Ċ Ċ", 12 "1 2", 13 "Ġ Ġ", 14 "Ã ©", 15 "c at"; the
 * merge of rank r is id 256 + r). Byte b is id b. */
static void bytelevel_fixture_by_hand(void **st)
{
    (void)st;
    tok k;
    load_hf(&k, fixture(), 273);
    assert_int_equal(k.t.kind, NN_TOK_BPE);
    assert_true(k.t.flags & NN_TOK_F_BYTE_LEVEL);
    assert_false(k.t.flags & NN_TOK_F_ADD_BOS);
    assert_int_equal(k.t.bos_id, 272);
    assert_int_equal(k.t.eos_id, 272);
    static const struct { const char *text; uint32_t n, ids[16]; } cases[] = {
        /* "the" | " cat" | "'s" | " hat": t·he -> the; Ġc (4) before c·at (15): Ġc·at -> Ġcat; 's; Ġ h at */
        { "the cat's hat", 6, { 266, 262, 263, 32, 104, 261 } },
        /* "The" | " " | " cat" | "\n" | "\n" | "12" | " é": \s+(?!\S) leaves one space for " cat",
         * the two newlines are separate words so Ċ·Ċ never applies; é is Ã© */
        { "The  cat\n\n12 \xc3\xa9", 9, { 84, 257, 32, 262, 10, 10, 268, 32, 270 } },
        /* an added token is cut out first */
        { "<|endoftext|>the", 2, { 272, 266 } },
        /* three spaces before y: "  " (Ġ·Ġ) and " y" */
        { "x   y", 4, { 120, 269, 32, 121 } },
        /* trailing whitespace runs to the end as one word */
        { "hi \n", 4, { 104, 105, 32, 10 } },
        /* contractions are words ("' s" merges inside "'s"), so "'ll" is ' l l */
        { "I'll it's", 8, { 73, 39, 108, 108, 32, 105, 116, 263 } },
        /* invalid UTF-8 bytes are "other" characters: one word, byte ids */
        { "\xff\xfe!", 3, { 255, 254, 33 } },
    };
    uint32_t ids[64];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t n = enc(&k.t, cases[c].text, 0, ids, 64);
        if (n != cases[c].n || memcmp(ids, cases[c].ids, n * sizeof *ids) != 0) {
            print_error("case %zu \"%s\": got", c, cases[c].text);
            for (uint32_t i = 0; i < n; i++)
                print_error(" %u", ids[i]);
            print_error("\n");
            fail();
        }
    }
    /* BOS on request only; decoding gives the raw bytes back. */
    uint32_t n = enc(&k.t, "the", 1, ids, 64);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 272);
    char out[256];
    dec(&k.t, 1, ids, n, out, sizeof out);
    assert_string_equal(out, "the");
    unload(&k);
}

static void round_trip(const nn_tokenizer *t, int bos, int meta, int rounds);

/* text with every occurrence of a replaced by b (caller frees) */
static char *replace(const char *text, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = 0;
    for (const char *p = strstr(text, a); p; p = strstr(p + la, a))
        n++;
    char *out = malloc(strlen(text) + n * lb + 1), *o = out;
    for (const char *p = text, *q; (q = strstr(p, a)) || *p; p = q + la) {
        if (!q) {
            strcpy(o, p);
            return out;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, b, lb);
        o += lb;
        *o = 0;
    }
    return out;
}

/* The fixture with other pre-tokenizer sections: Digits + GPT-2 (SmolLM2) and Llama 3's
 * Split regex with ignore_merges (and one extra token "xyz", id 273, that no merge makes). */
static void bytelevel_variants_by_hand(void **st)
{
    (void)st;
    char path[1200], err[300];
    snprintf(path, sizeof path, "%s/tokenizer.json", fixture());
    const uint8_t *d;
    size_t n;
    assert_int_equal(kt_map(path, &d, &n), 0);
    char *text = strndup((const char *)d, n);
    kt_unmap(d, n);
    const char *bl = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},";
    char *digits = replace(text, bl, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", "
                           "\"individual_digits\": true}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                           "\"use_regex\": true}]},");
    char *l3a = replace(text, bl, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                        "{\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
                        "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
                        "\"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},");
    char *l3b = replace(l3a, "\"cat\": 271", "\"cat\": 271, \"xyz\": 273");
    char *l3 = replace(l3b, "\"ignore_merges\": false", "\"ignore_merges\": true");
    char *plain = replace(text, "\"cat\": 271", "\"cat\": 271, \"xyz\": 273");
    tok a, b, c;
    assert_int_equal(kt_vocab_parse_hf(&a.v, digits, strlen(digits), NULL, 0, 273, 272, 272, err, sizeof err), 0);
    assert_int_equal(kt_vocab_parse_hf(&b.v, l3, strlen(l3), NULL, 0, 274, 272, 272, err, sizeof err), 0);
    assert_int_equal(kt_vocab_parse_hf(&c.v, plain, strlen(plain), NULL, 0, 274, 272, 272, err, sizeof err), 0);
    tok_from(&a, &a.v);
    tok_from(&b, &b.v);
    tok_from(&c, &c.v);
    assert_int_equal(b.t.pretok, NN_TOK_PRE_LLAMA3);
    uint32_t ids[64];
    /* GPT-2 alone keeps "123" one word, so 1·2 merges; Digits isolates each digit */
    static const uint32_t g_x123[] = { 120, 268, 51 }, d_x123[] = { 120, 49, 50, 51 };
    assert_int_equal(enc(&c.t, "x123", 0, ids, 64), 3);
    assert_memory_equal(ids, g_x123, sizeof g_x123);
    assert_int_equal(enc(&a.t, "x123", 0, ids, 64), 4);
    assert_memory_equal(ids, d_x123, sizeof d_x123);
    /* Llama 3: "I" | "'LL" | " " | "123" | "45"; and "xyz" whole thanks to ignore_merges */
    static const uint32_t l_1[] = { 73, 39, 76, 76, 32, 268, 51, 52, 53 }, l_2[] = { 273 }, p_2[] = { 120, 121, 122 };
    assert_int_equal(enc(&b.t, "I'LL 12345", 0, ids, 64), 9);
    assert_memory_equal(ids, l_1, sizeof l_1);
    assert_int_equal(enc(&b.t, "xyz", 0, ids, 64), 1);
    assert_memory_equal(ids, l_2, sizeof l_2);
    assert_int_equal(enc(&c.t, "xyz", 0, ids, 64), 3);
    assert_memory_equal(ids, p_2, sizeof p_2);
    round_trip(&a.t, 0, 1, 500);
    round_trip(&b.t, 0, 1, 500);
    unload(&a);
    unload(&b);
    unload(&c);
    free(text);
    free(digits);
    free(l3a);
    free(l3b);
    free(l3);
    free(plain);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Any bytes (valid UTF-8 or not) encode and decode back to themselves. SentencePiece
 * style decodes a literal "▁" as a space, as tokenizers does: meta = 0 leaves it out. */
static void round_trip(const nn_tokenizer *t, int bos, int meta, int rounds)
{
    char text[200], out[4096];
    uint32_t ids[256];
    static const char *pieces[] = { "the", " cat", "'s", " ", "  ", "\n", "\r\n", "12", "3", "\xc3\xa9", "\xe2\x96\x81",
                                    "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xe2\x96", "\xed\xa0\x80", "<|endoftext|>",
                                    "\t", "!?", "\xe4\xb8\xad", "\xd9\xa3", "x" };
    for (int r = 0; r < rounds; r++) {
        size_t len = 0;
        uint32_t parts = 1 + rnd32() % 12;
        for (uint32_t i = 0; i < parts; i++) {
            if (rnd32() % 3 == 0) {
                text[len++] = (char)(1 + rnd32() % 255);
            } else {
                const char *p = pieces[rnd32() % (sizeof pieces / sizeof pieces[0])];
                if (!meta && !strcmp(p, "\xe2\x96\x81"))
                    continue;
                memcpy(text + len, p, strlen(p));
                len += strlen(p);
            }
        }
        text[len] = 0;
        uint32_t n = enc(t, text, bos, ids, 256);
        dec(t, bos, ids, n, out, sizeof out);
        if (strcmp(out, text) != 0) {
            print_error("round trip %d failed for %zu bytes\n", r, len);
            fail();
        }
    }
}

static void bytelevel_round_trips_any_bytes(void **st)
{
    (void)st;
    tok k;
    load_hf(&k, fixture(), 273);
    round_trip(&k.t, 0, 1, 3000);
    round_trip(&k.t, 1, 1, 300);
    unload(&k);
}

/* stories260K's vocabulary as tokenizer.json (HF's LlamaConverter layout) against the
 * llama2.c tokenizer.bin it came from. */
static void tok512_json_equals_bin(void **st)
{
    (void)st;
    kt_source src;
    char err[512], dir[512];
    assert_int_equal(kt_open_llama2c(&src, tu_model_file("stories260K/stories260K.bin"),
                                     tu_model_file("stories260K/tok512.bin")), 0);
    snprintf(dir, sizeof dir, "%s/hf-tok", tmpdir);
    kx_opts o = { .dtype = "f32" };
    if (kx_export_hf(&src, dir, &o, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    tok hf, bin;
    load_hf(&hf, dir, 512);
    tok_from(&bin, &src.vocab);
    assert_true(hf.t.flags & NN_TOK_F_ADD_BOS);
    assert_true(hf.t.flags & NN_TOK_F_STRIP_SPACE);
    assert_int_equal(hf.t.bos_id, 1);
    assert_int_equal(hf.t.eos_id, 2);
    /* The golden prompt first, then the golden texts line by line and word by word. */
    uint32_t a[1024], b[1024];
    uint32_t na = enc(&hf.t, "Once upon a time", 1, a, 1024), nb = enc(&bin.t, "Once upon a time", 1, b, 1024);
    static const uint32_t golden[] = { 1, 403, 407, 261, 378 };
    assert_int_equal(na, 5);
    assert_memory_equal(a, golden, sizeof golden);
    assert_int_equal(nb, 5);
    FILE *f = fopen(tu_golden_file("stories260K/once_upon_a_time_256.txt"), "r");
    assert_non_null(f);
    char line[1024];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        for (char *w = line; *w; checked++) {
            na = enc(&hf.t, w, 1, a, 1024);
            nb = enc(&bin.t, w, 1, b, 1024);
            if (na != nb || memcmp(a, b, na * sizeof *a) != 0) {
                print_error("ids differ for \"%s\"\n", w);
                fail();
            }
            char out[2048];
            dec(&hf.t, 1, a, na, out, sizeof out);
            assert_string_equal(out, w);
            char *sp = strchr(w + 1, ' ');
            w = sp ? sp : w + strlen(w);
        }
    }
    fclose(f);
    assert_true(checked > 50);
    /* Byte fallback and the decode of byte tokens. */
    na = enc(&hf.t, "\xc3\xbc", 1, a, 1024);
    nb = enc(&bin.t, "\xc3\xbc", 1, b, 1024);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    round_trip(&hf.t, 1, 0, 1000);
    unload(&hf);
    free(bin.blob);
    src.close(&src);
}

/* ---- readers: bounds --------------------------------------------------------------------- */

static void st_err(const void *d, size_t n, const char *want)
{
    kt_st st;
    char err[400];
    if (kt_st_parse(&st, d, n, err, sizeof err) == 0) {
        kt_st_close(&st);
        print_error("accepted (wanted '%s')\n", want);
        fail();
    }
    if (!strstr(err, want)) {
        print_error("message '%s' lacks '%s'\n", err, want);
        fail();
    }
}

static size_t st_file(uint8_t *out, const char *hdr, size_t data)
{
    size_t hl = strlen(hdr);
    nn_wr64(out, hl);
    memcpy(out + 8, hdr, hl);
    memset(out + 8 + hl, 0, data);
    return 8 + hl + data;
}

static void safetensors_bounds(void **st)
{
    (void)st;
    uint8_t f[1024];
    size_t n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    kt_st s;
    char err[400];
    assert_int_equal(kt_st_parse(&s, f, n, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    kt_st_close(&s);
    st_err(f, 5, "truncated");
    nn_wr64(f, 1000);
    st_err(f, n, "past the end");
    nn_wr64(f, UINT64_MAX);
    st_err(f, n, "past the end");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    st_err(f, n, "truncated");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    st_err(f, n, "overlap");
    n = st_file(f, "{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    st_err(f, n, "unknown dtype");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    st_err(f, n, "shape needs");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                   "\"data_offsets\":[0,8]}}", 8);
    st_err(f, n, "bad shape");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    st_err(f, n, "data_offsets");
    n = st_file(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]", 8);
    st_err(f, n, "not JSON");
    n = st_file(f, "[1,2]", 8);
    st_err(f, n, "not a JSON object");
}

static void gg_put(uint8_t *f, size_t *n, const void *p, size_t k)
{
    memcpy(f + *n, p, k);
    *n += k;
}
static void gg_u32(uint8_t *f, size_t *n, uint32_t v)
{
    uint8_t b[4];
    nn_wr32(b, v);
    gg_put(f, n, b, 4);
}
static void gg_u64(uint8_t *f, size_t *n, uint64_t v)
{
    uint8_t b[8];
    nn_wr64(b, v);
    gg_put(f, n, b, 8);
}
static void gg_str(uint8_t *f, size_t *n, const char *s)
{
    gg_u64(f, n, strlen(s));
    gg_put(f, n, s, strlen(s));
}

/* A GGUF with one kv and tensors "a" (F32 [ne0]) at offsets off[]. */
static size_t gg_file(uint8_t *f, uint32_t version, uint64_t nkv_claim, uint32_t ntensors, const uint64_t *ne0,
                      const uint32_t *type, const uint64_t *off, size_t data)
{
    size_t n = 0;
    gg_put(f, &n, "GGUF", 4);
    gg_u32(f, &n, version);
    gg_u64(f, &n, ntensors);
    gg_u64(f, &n, nkv_claim);
    gg_str(f, &n, "general.architecture");
    gg_u32(f, &n, 8);
    gg_str(f, &n, "llama");
    for (uint32_t i = 0; i < ntensors; i++) {
        char name[8] = { (char)('a' + i), 0 };
        gg_str(f, &n, name);
        gg_u32(f, &n, 1);
        gg_u64(f, &n, ne0[i]);
        gg_u32(f, &n, type[i]);
        gg_u64(f, &n, off[i]);
    }
    while (n % 32)
        f[n++] = 0;
    memset(f + n, 0, data);
    return n + data;
}

static void gguf_err(const void *d, size_t n, const char *want)
{
    kt_gguf g;
    char err[400];
    if (kt_gguf_parse(&g, d, n, err, sizeof err) == 0) {
        kt_gguf_close(&g);
        print_error("accepted (wanted '%s')\n", want);
        fail();
    }
    if (!strstr(err, want)) {
        print_error("message '%s' lacks '%s'\n", err, want);
        fail();
    }
}

static void gguf_bounds(void **st)
{
    (void)st;
    static uint8_t f[4096];
    uint64_t ne[2] = { 8, 32 }, off[2] = { 0, 32 };
    uint32_t ty[2] = { KT_GGML_F32, KT_GGML_Q8_0 };
    size_t n = gg_file(f, 3, 1, 2, ne, ty, off, 32 + 34);
    kt_gguf g;
    char err[400];
    assert_int_equal(kt_gguf_parse(&g, f, n, err, sizeof err), 0);
    assert_int_equal(g.n_t, 2);
    assert_int_equal(g.t[1].bytes, 34);
    const char *s;
    uint32_t sl;
    assert_int_equal(kt_gguf_get_str(&g, "general.architecture", &s, &sl), 0);
    assert_int_equal(sl, 5);
    kt_gguf_close(&g);
    gguf_err(f, n - 1, "truncated");
    gguf_err(f, 30, "cannot fit");
    gguf_err(f, 10, "truncated");
    n = gg_file(f, 2, 1, 2, ne, ty, off, 66);
    gguf_err(f, n, "version 2");
    memcpy(f, "GGML", 4);
    gguf_err(f, n, "magic");
    n = gg_file(f, 3, 1ull << 40, 2, ne, ty, off, 66);
    gguf_err(f, n, "cannot fit");
    n = gg_file(f, 3, 2, 2, ne, ty, off, 66);             /* one kv too many: reads the tensor info as kv */
    gguf_err(f, n, "");
    uint64_t ov[2] = { 0, 0 };
    n = gg_file(f, 3, 1, 2, ne, ty, ov, 66);
    gguf_err(f, n, "overlap");
    uint32_t bad[2] = { KT_GGML_F32, 77 };
    n = gg_file(f, 3, 1, 2, ne, bad, off, 66);
    gguf_err(f, n, "unknown type");
    uint64_t ne_bad[2] = { 8, 33 };
    n = gg_file(f, 3, 1, 2, ne_bad, ty, off, 66);
    gguf_err(f, n, "not a multiple");
    uint64_t unal[2] = { 0, 33 };
    n = gg_file(f, 3, 1, 2, ne, ty, unal, 80);
    gguf_err(f, n, "aligned");
    uint64_t far[2] = { 0, 1ull << 62 };
    n = gg_file(f, 3, 1, 2, ne, ty, far, 66);
    gguf_err(f, n, "past the end");
    /* an array claiming 2^60 strings */
    size_t k = 0;
    gg_put(f, &k, "GGUF", 4);
    gg_u32(f, &k, 3);
    gg_u64(f, &k, 0);
    gg_u64(f, &k, 1);
    gg_str(f, &k, "tokenizer.ggml.tokens");
    gg_u32(f, &k, 9);
    gg_u32(f, &k, 8);
    gg_u64(f, &k, 1ull << 60);
    gguf_err(f, k, "more than the file holds");
}

/* ---- weights: permutation, dtypes, rope, head_dim, Q8_0 ------------------------------------- */

/* Every tensor of a and b but the tokenizer has equal bytes (header fields too). */
static void same_weights(const kt_img *a, const kt_img *b)
{
    nn_image ia, ib;
    assert_int_equal(nn_image_from_memory(&ia, a->buf, a->len), NN_OK);
    assert_int_equal(nn_image_from_memory(&ib, b->buf, b->len), NN_OK);
    assert_int_equal(ia.n_tensors, ib.n_tensors);
    assert_memory_equal(a->buf + NN_IMG_OFF_FLAGS, b->buf + NN_IMG_OFF_FLAGS, NN_IMG_OFF_TOKENIZER - NN_IMG_OFF_FLAGS);
    assert_memory_equal(a->buf + NN_IMG_OFF_ROPE_THETA, b->buf + NN_IMG_OFF_ROPE_THETA, 16);
    for (uint32_t i = 0; i < ia.n_tensors; i++) {
        const uint8_t *e = ia.dir + (size_t)i * NN_IMAGE_DIR_ENTRY_BYTES;
        nn_tensor x, y;
        if (nn_rd32(e) == NN_T_TOKENIZER)
            continue;
        assert_int_equal(nn_image_tensor(&ia, nn_rd32(e), nn_rd32(e + 4), &x), NN_OK);
        assert_int_equal(nn_image_tensor(&ib, nn_rd32(e), nn_rd32(e + 4), &y), NN_OK);
        assert_int_equal(x.exp, y.exp);
        assert_true(x.data_bytes == y.data_bytes);
        assert_memory_equal(x.data, y.data, x.data_bytes);
        if (x.dtype == NN_DT_Q8G)
            assert_memory_equal(x.scales, y.scales, (size_t)x.rows * nn_groups(x.cols, 4) * 2);
    }
}

static void convert(kt_source *src, uint32_t group, kt_img *w)
{
    if (kt_convert(src, group, NN_NUMERICS_VERSION, w, 0)) {
        print_error("%s\n", src->err);
        fail();
    }
}

static void f32_exports_match_llama2c(void **st)
{
    (void)st;
    kt_img ref, hf, gg;
    tu_build_llama2c("stories260K", 4, &ref);
    kt_source src, h, g;
    char err[512], dir[512], file[512];
    assert_int_equal(kt_open_llama2c(&src, tu_model_file("stories260K/stories260K.bin"),
                                     tu_model_file("stories260K/tok512.bin")), 0);
    kx_opts o = { .dtype = "f32", .shards = 2 };
    snprintf(dir, sizeof dir, "%s/hf32", tmpdir);
    snprintf(file, sizeof file, "%s/m32.gguf", tmpdir);
    if (kx_export_hf(&src, dir, &o, err, sizeof err) || kx_export_gguf(&src, file, &o, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    if (kt_open_hf(&h, dir) || kt_open_gguf(&g, file)) {
        print_error("%s%s\n", h.err, g.err);
        fail();
    }
    convert(&h, 4, &hf);
    convert(&g, 4, &gg);
    same_weights(&ref, &hf);       /* q/k permuted there and back, fp32 untouched */
    same_weights(&ref, &gg);
    /* GGUF "llama" vocabularies become kind NN_TOK_LLAMA2C and encode like tok512.bin. */
    assert_int_equal(g.vocab.kind, NN_TOK_LLAMA2C);
    kt_img_free(&ref);
    kt_img_free(&hf);
    kt_img_free(&gg);
    h.close(&h);
    g.close(&g);
    src.close(&src);
}

static void rope_theta_and_head_dim(void **st)
{
    (void)st;
    /* A random model whose head_dim (16) is not dim / heads (8): q has 128 rows. */
    kt_source src, h, g;
    assert_int_equal(kt_open_random(&src, "64,96,2,8,4,512,64,tied", 7), 0);
    src.cfg.head_dim = 16;
    src.rope_theta = 500000.0;
    char err[512], dir[512], file[512];
    snprintf(dir, sizeof dir, "%s/hd16", tmpdir);
    snprintf(file, sizeof file, "%s/hd16.gguf", tmpdir);
    kx_opts o = { .dtype = "f32" };
    if (kx_export_hf(&src, dir, &o, err, sizeof err) || kx_export_gguf(&src, file, &o, err, sizeof err)) {
        print_error("%s\n", err);
        fail();
    }
    if (kt_open_hf(&h, dir) || kt_open_gguf(&g, file)) {
        print_error("%s%s\n", h.err, g.err);
        fail();
    }
    assert_int_equal(h.cfg.head_dim, 16);
    assert_int_equal(g.cfg.head_dim, 16);
    assert_true(h.rope_theta == 500000.0);
    assert_true(g.rope_theta == 500000.0);
    kt_img a, b, c;
    convert(&src, 4, &a);
    convert(&h, 4, &b);
    convert(&g, 4, &c);
    same_weights(&a, &b);
    same_weights(&a, &c);
    nn_image img;
    static nn_model m;
    assert_int_equal(nn_image_from_memory(&img, b.buf, b.len), NN_OK);
    assert_int_equal(nn_model_init(&m, &img), NN_OK);
    assert_true(img.cfg.rope_theta_q16 == 500000ull << 16);
    nn_tensor t;
    assert_int_equal(nn_image_tensor(&img, NN_T_ROPE_FREQ, NN_LAYER_NONE, &t), NN_OK);
    assert_int_equal(t.cols, 8);
    /* phase step of pair i: theta^(-2i/16) / (2 pi) turns, as a 2^64 fraction */
    const uint64_t *f = t.data;
    assert_true(fabs(ldexp((double)f[1], -64) - pow(500000.0, -2.0 / 16) / (2 * M_PI)) < 1e-15);
    kt_img_free(&a);
    kt_img_free(&b);
    kt_img_free(&c);
    h.close(&h);
    g.close(&g);
    src.close(&src);
}

static void q8_0_blocks(void **st)
{
    (void)st;
    nn_config cfg = { .dim = 64, .group_size = 32 };
    kt_img w;
    kt_img_init(&w, &cfg);
    enum { R = 4, C = 64, NB = R * C / 32 };
    int8_t q[R * C];
    uint16_t d[NB];
    for (int i = 0; i < R * C; i++)
        q[i] = (int8_t)((int)(rnd32() % 255) - 127);
    /* Scales within a 2^5 range of each other: every block is exact. */
    for (int b = 0; b < NB; b++)
        d[b] = kt_f32_to_f16(0.001f * (float)(1 + b));
    uint64_t ex = 0, rq = 0;
    assert_int_equal(kt_img_add_q8_0(&w, NN_T_WQ, 0, d, q, R, C, &ex, &rq), 0);
    assert_int_equal(ex, NB);
    assert_int_equal(rq, 0);
    int8_t q0[R * C];
    uint16_t d0[NB];
    memcpy(q0, q, sizeof q);
    memcpy(d0, d, sizeof d);
    /* A scale 2^-14 below the rest, and a -128, cannot be exact: re-quantised. */
    d[3] = kt_f32_to_f16(0.001f / 16384.0f * 3.0f);
    q[5 * 32] = -128;
    ex = rq = 0;
    assert_int_equal(kt_img_add_q8_0(&w, NN_T_WK, 0, d, q, R, C, &ex, &rq), 0);
    assert_int_equal(rq, 2);
    assert_int_equal(ex, NB - 2);
    /* Read back through the writer's directory: data offset 24, scale offset 40, exp 20. */
    for (uint32_t e = 0; e < 2; e++) {
        const uint8_t *ent = w.dir + e * NN_IMAGE_DIR_ENTRY_BYTES;
        const int8_t *iq = (const int8_t *)(w.buf + nn_rd64(ent + 24));
        const uint8_t *ms = w.buf + nn_rd64(ent + 40);
        int32_t ex2 = (int32_t)nn_rd32(ent + 20);
        for (int i = 0; i < R * C; i++) {
            int b = i / 32;
            double step = ldexp(ms[2 * b] | ms[2 * b + 1] << 8, -ex2);
            double want = e ? q[i] * (double)kt_f16_to_f32(d[b]) : q0[i] * (double)kt_f16_to_f32(d0[b]);
            double got = iq[i] * step;
            if (e == 0 || (b != 3 && b != 5))
                assert_true(want == got);                          /* bit for bit */
            else                       /* re-quantised: the MSE-optimal scale may clip the max a little */
                assert_true(fabs(want - got) <= 0.02 * 128 * (double)kt_f16_to_f32(d[b]) + step);
        }
    }
    kt_img_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_is_strict),
        cmocka_unit_test(bytelevel_fixture_by_hand),
        cmocka_unit_test(bytelevel_round_trips_any_bytes),
        cmocka_unit_test(bytelevel_variants_by_hand),
        cmocka_unit_test(tok512_json_equals_bin),
        cmocka_unit_test(safetensors_bounds),
        cmocka_unit_test(gguf_bounds),
        cmocka_unit_test(f32_exports_match_llama2c),
        cmocka_unit_test(rope_theta_and_head_dim),
        cmocka_unit_test(q8_0_blocks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
