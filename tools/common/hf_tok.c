/*
 * Hugging Face tokenizer.json (BPE model) -> NN_TOK_BPE vocabulary. What tokenizers
 * would do is decided by the normalizer, pre_tokenizer, model, post_processor and
 * decoder sections; every option this reader does not reproduce exactly is refused
 * with a message rather than approximated.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "json.h"
#include "kvsource.h"

#define META "\xe2\x96\x81"

static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct hf {
    kt_json j;
    const kt_jv *root;
    int byte_level, meta;          /* which family the sections describe */
    uint32_t flags, pretok;
    char *err;
    size_t errlen;
} hf;

static int bad(hf *h, const char *what, const kt_jv *v)
{
    if (v && v->type == KT_J_STR)
        snprintf(h->err, h->errlen, "tokenizer.json: %s: \"%.*s\"", what, (int)(v->len > 80 ? 80 : v->len), v->s);
    else
        snprintf(h->err, h->errlen, "tokenizer.json: %s", what);
    return -1;
}

static const kt_jv *get(hf *h, const kt_jv *o, const char *k) { return kt_json_get(&h->j, o, k); }

static int is_null(const kt_jv *v) { return !v || v->type == KT_J_NULL; }

static int bool_or(hf *h, const kt_jv *o, const char *k, int def)
{
    int b;
    return kt_json_bool(get(h, o, k), &b) ? def : b;
}

/* ---- sections ------------------------------------------------------------------------- */

static int normalizer(hf *h, const kt_jv *n)
{
    if (is_null(n))
        return 0;
    const kt_jv *type = get(h, n, "type");
    if (kt_json_streq(type, "Sequence")) {
        const kt_jv *list = get(h, n, "normalizers");
        if (!list || list->type != KT_J_ARR)
            return bad(h, "normalizer Sequence without a list", NULL);
        for (const kt_jv *e = kt_json_first(&h->j, list); e; e = kt_json_next(&h->j, e))
            if (normalizer(h, e))
                return -1;
        return 0;
    }
    if (kt_json_streq(type, "Prepend")) {
        if (!kt_json_streq(get(h, n, "prepend"), META))
            return bad(h, "normalizer Prepend of something other than \"▁\" is not supported", NULL);
        h->flags |= NN_TOK_F_PREPEND_ALWAYS;
        h->meta = 1;
        return 0;
    }
    if (kt_json_streq(type, "Replace")) {
        const kt_jv *pat = get(h, n, "pattern");
        if (!kt_json_streq(get(h, pat, "String"), " ") || !kt_json_streq(get(h, n, "content"), META))
            return bad(h, "only the normalizer Replace \" \" -> \"▁\" is supported", NULL);
        h->flags |= NN_TOK_F_SPACE_TO_META;
        h->meta = 1;
        return 0;
    }
    return bad(h, "unsupported normalizer", type);
}

static int pre_tokenizer(hf *h, const kt_jv *p)
{
    if (is_null(p))
        return 0;
    const kt_jv *type = get(h, p, "type");
    if (kt_json_streq(type, "Sequence")) {
        const kt_jv *list = get(h, p, "pretokenizers");
        if (!list || list->type != KT_J_ARR)
            return bad(h, "pre_tokenizer Sequence without a list", NULL);
        for (const kt_jv *e = kt_json_first(&h->j, list); e; e = kt_json_next(&h->j, e))
            if (pre_tokenizer(h, e))
                return -1;
        return 0;
    }
    if (kt_json_streq(type, "ByteLevel")) {
        if (bool_or(h, p, "add_prefix_space", 1))
            return bad(h, "ByteLevel with add_prefix_space is not supported", NULL);
        if (bool_or(h, p, "use_regex", 1)) {
            if (h->pretok != NN_TOK_PRE_NONE)
                return bad(h, "two regex pre-tokenizers", NULL);
            h->pretok = NN_TOK_PRE_GPT2;
        }
        h->byte_level = 1;
        return 0;
    }
    if (kt_json_streq(type, "Digits")) {
        if (!bool_or(h, p, "individual_digits", 0))
            return bad(h, "Digits without individual_digits is not supported", NULL);
        if (h->pretok != NN_TOK_PRE_NONE)
            return bad(h, "Digits after a regex pre-tokenizer is not supported", NULL);
        h->flags |= NN_TOK_F_DIGITS;
        return 0;
    }
    if (kt_json_streq(type, "Split")) {
        const kt_jv *re = get(h, get(h, p, "pattern"), "Regex");
        if (!kt_json_streq(get(h, p, "behavior"), "Isolated") || bool_or(h, p, "invert", 0))
            return bad(h, "Split pre-tokenizer other than behavior Isolated, invert false", NULL);
        if (h->pretok != NN_TOK_PRE_NONE)
            return bad(h, "two regex pre-tokenizers", NULL);
        if (kt_json_streq(re, GPT2_RE))
            h->pretok = NN_TOK_PRE_GPT2;
        else if (kt_json_streq(re, LLAMA3_RE))
            h->pretok = NN_TOK_PRE_LLAMA3;
        else
            return bad(h, "Split with a regex other than GPT-2's or Llama 3's", re);
        return 0;
    }
    if (kt_json_streq(type, "Metaspace")) {
        if (!kt_json_streq(get(h, p, "replacement"), META))
            return bad(h, "Metaspace with a replacement other than \"▁\"", NULL);
        const kt_jv *scheme = get(h, p, "prepend_scheme");
        h->flags |= NN_TOK_F_SPACE_TO_META;
        if (kt_json_streq(scheme, "first"))
            h->flags |= NN_TOK_F_PREPEND_FIRST;
        else if (kt_json_streq(scheme, "always") || (!scheme && bool_or(h, p, "add_prefix_space", 1)))
            h->flags |= NN_TOK_F_PREPEND_META;
        else if (scheme && !kt_json_streq(scheme, "never"))
            return bad(h, "unknown Metaspace prepend_scheme", scheme);
        if (bool_or(h, p, "split", 1))
            h->flags |= NN_TOK_F_META_SPLIT;
        h->meta = 1;
        return 0;
    }
    return bad(h, "unsupported pre_tokenizer", type);
}

/* Strip(" ", start >= 1) after Fuse, or a Metaspace decoder that removes the prefix. */
static void decoder(hf *h, const kt_jv *d)
{
    if (is_null(d))
        return;
    const kt_jv *type = get(h, d, "type");
    if (kt_json_streq(type, "Sequence")) {
        for (const kt_jv *e = kt_json_first(&h->j, get(h, d, "decoders")); e; e = kt_json_next(&h->j, e))
            decoder(h, e);
    } else if (kt_json_streq(type, "Strip")) {
        uint64_t start;
        if (kt_json_streq(get(h, d, "content"), " ") && !kt_json_u64(get(h, d, "start"), &start) && start >= 1)
            h->flags |= NN_TOK_F_STRIP_SPACE;
    } else if (kt_json_streq(type, "Metaspace")) {
        const kt_jv *scheme = get(h, d, "prepend_scheme");
        if ((scheme && !kt_json_streq(scheme, "never")) || (!scheme && bool_or(h, d, "add_prefix_space", 1)))
            h->flags |= NN_TOK_F_STRIP_SPACE;
    }
}

/* The id string of the special token a TemplateProcessing "single" template starts with. */
static const kt_jv *template_bos(hf *h, const kt_jv *pp)
{
    if (is_null(pp))
        return NULL;
    const kt_jv *type = get(h, pp, "type");
    if (kt_json_streq(type, "Sequence")) {
        for (const kt_jv *e = kt_json_first(&h->j, get(h, pp, "processors")); e; e = kt_json_next(&h->j, e)) {
            const kt_jv *b = template_bos(h, e);
            if (b)
                return b;
        }
        return NULL;
    }
    if (!kt_json_streq(type, "TemplateProcessing"))
        return NULL;
    const kt_jv *first = kt_json_first(&h->j, get(h, pp, "single"));
    return get(h, get(h, first, "SpecialToken"), "id");
}

/* ---- tokens ------------------------------------------------------------------------- */

/* id of the token whose (vocabulary-form or added) string is s, or NN_TOK_NONE. */
static uint32_t find_token(const kt_vocab *v, const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (v->len[i] == len && v->str[i] && memcmp(v->str[i], s, len) == 0 && (len || v->added[i] != KT_ADDED))
            return i;
    return NN_TOK_NONE;
}

/* bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}. */
static uint32_t config_token(const kt_json *j, const kt_jv *cfg, const char *key, const kt_vocab *v)
{
    const kt_jv *t = kt_json_get(j, cfg, key);
    if (t && t->type == KT_J_OBJ)
        t = kt_json_get(j, t, "content");
    if (!t || t->type != KT_J_STR)
        return NN_TOK_NONE;
    return find_token(v, t->s, t->len);
}

int kt_vocab_parse_hf(kt_vocab *v, const char *tok_json, size_t tok_len, const char *cfg_json, size_t cfg_len,
                      uint32_t expect_n, uint32_t cfg_bos, uint32_t cfg_eos, char *err, size_t errlen)
{
    hf h = { .err = err, .errlen = errlen };
    kt_json cfg = { 0 };
    kt_strmap map = { 0 };
    int rc = -1, have_cfg = cfg_json ? 0 : 1;
    char msg[200];
    memset(v, 0, sizeof *v);
    if (kt_json_parse(&h.j, tok_json, tok_len, msg, sizeof msg)) {
        snprintf(err, errlen, "tokenizer.json is not valid JSON: %s", msg);
        return -1;
    }
    if (cfg_json && kt_json_parse(&cfg, cfg_json, cfg_len, msg, sizeof msg)) {
        snprintf(err, errlen, "tokenizer_config.json is not valid JSON: %s", msg);
        goto out;
    }
    h.root = kt_json_root(&h.j);
    const kt_jv *model = get(&h, h.root, "model");
    if (!model || model->type != KT_J_OBJ) {
        bad(&h, "no model section", NULL);
        goto out;
    }
    const kt_jv *mtype = get(&h, model, "type");
    if (mtype && !kt_json_streq(mtype, "BPE")) {
        bad(&h, "only BPE tokenizer models are supported, not", mtype);
        goto out;
    }
    if (!is_null(get(&h, model, "dropout")) ||
        (!is_null(get(&h, model, "continuing_subword_prefix")) &&
         !kt_json_streq(get(&h, model, "continuing_subword_prefix"), "")) ||
        (!is_null(get(&h, model, "end_of_word_suffix")) && !kt_json_streq(get(&h, model, "end_of_word_suffix"), ""))) {
        bad(&h, "BPE dropout, continuing_subword_prefix and end_of_word_suffix are not supported", NULL);
        goto out;
    }
    if (normalizer(&h, get(&h, h.root, "normalizer")) || pre_tokenizer(&h, get(&h, h.root, "pre_tokenizer")))
        goto out;
    if (h.byte_level == h.meta) {
        bad(&h, h.meta ? "mixes byte-level and SentencePiece-style (\"▁\") sections"
                       : "neither byte-level (ByteLevel pre-tokenizer) nor SentencePiece-style (\"▁\" normalizer "
                         "or Metaspace); not supported", NULL);
        goto out;
    }
    int byte_fallback = bool_or(&h, model, "byte_fallback", 0);
    if (bool_or(&h, model, "ignore_merges", 0)) {
        if (h.meta) {
            bad(&h, "ignore_merges with a SentencePiece-style tokenizer is not supported", NULL);
            goto out;
        }
        h.flags |= NN_TOK_F_IGNORE_MERGES;
    }
    if (bool_or(&h, model, "fuse_unk", 0))
        h.flags |= NN_TOK_F_FUSE_UNK;

    /* ids: the vocabulary and the added tokens together must be 0..n-1 */
    const kt_jv *vocab = get(&h, model, "vocab"), *added = get(&h, h.root, "added_tokens");
    if (!vocab || vocab->type != KT_J_OBJ || vocab->len == 0) {
        bad(&h, "model.vocab is missing or empty", NULL);
        goto out;
    }
    if (!is_null(added) && added->type != KT_J_ARR) {
        bad(&h, "added_tokens is not a list", NULL);
        goto out;
    }
    uint64_t n = 0, id;
    for (const kt_jv *e = kt_json_first(&h.j, vocab); e; e = kt_json_next(&h.j, e)) {
        if (kt_json_u64(e, &id) || id >= NN_MAX_VOCAB) {
            bad(&h, "a vocabulary id is not an integer below 2^20", NULL);
            goto out;
        }
        n = id + 1 > n ? id + 1 : n;
    }
    for (const kt_jv *e = kt_json_first(&h.j, added); e; e = kt_json_next(&h.j, e)) {
        if (kt_json_u64(get(&h, e, "id"), &id) || id >= NN_MAX_VOCAB || get(&h, e, "content") == NULL ||
            get(&h, e, "content")->type != KT_J_STR || get(&h, e, "content")->len == 0) {
            bad(&h, "an added token has no valid id or content", NULL);
            goto out;
        }
        n = id + 1 > n ? id + 1 : n;
    }
    if (n > expect_n) {
        snprintf(err, errlen, "tokenizer.json has %llu token ids but the model's vocabulary is %u",
                 (unsigned long long)n, expect_n);
        goto out;
    }
    if (kt_vocab_alloc(v, expect_n, NN_TOK_BPE)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    uint8_t *seen = calloc(expect_n, 1);
    if (!seen) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (const kt_jv *e = kt_json_first(&h.j, vocab); e; e = kt_json_next(&h.j, e)) {
        kt_json_u64(e, &id);
        if (seen[id]) {
            free(seen);
            bad(&h, "two vocabulary entries share an id", NULL);
            goto out;
        }
        seen[id] = 1;
        if (kt_vocab_set(v, (uint32_t)id, e->key, e->key_len)) {
            free(seen);
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    for (const kt_jv *e = kt_json_first(&h.j, added); e; e = kt_json_next(&h.j, e)) {
        const kt_jv *c = get(&h, e, "content");
        kt_json_u64(get(&h, e, "id"), &id);
        if (seen[id] == 1 && (v->len[id] != c->len || memcmp(v->str[id], c->s, c->len) != 0)) {
            free(seen);
            bad(&h, "an added token's id belongs to a different vocabulary token", c);
            goto out;
        }
        if (!seen[id]) {
            v->added[id] = KT_ADDED;
            if (kt_vocab_set(v, (uint32_t)id, c->s, c->len)) {
                free(seen);
                snprintf(err, errlen, "out of memory");
                goto out;
            }
        }
        seen[id] = 2;
        /* Matched in the text unless it carries options whose exact effect on the
         * neighbouring text is not reproduced (see docs/formats.md). */
        if (!bool_or(&h, e, "lstrip", 0) && !bool_or(&h, e, "rstrip", 0) && !bool_or(&h, e, "single_word", 0))
            v->added[id] |= KT_SPECIAL;
    }
    /* Ids the model has but the tokenizer does not (padded embeddings): never produced. */
    for (uint32_t i = 0; i < expect_n; i++)
        if (!seen[i]) {
            v->added[i] = KT_ADDED;
            if (kt_vocab_set(v, i, "", 0)) {
                free(seen);
                snprintf(err, errlen, "out of memory");
                goto out;
            }
        }
    free(seen);

    uint32_t dup;
    if (kt_strmap_build(&map, v, &dup)) {
        snprintf(err, errlen, "tokenizer.json: out of memory or a duplicate vocabulary string (id %u)", dup);
        goto out;
    }
    const kt_jv *merges = get(&h, model, "merges");
    if (!merges || merges->type != KT_J_ARR) {
        bad(&h, "model.merges is missing", NULL);
        goto out;
    }
    for (const kt_jv *e = kt_json_first(&h.j, merges); e; e = kt_json_next(&h.j, e)) {
        const char *a, *b;
        uint32_t al, bl;
        if (e->type == KT_J_STR) {                    /* "a b" */
            const char *sp = memchr(e->s, ' ', e->len);
            if (!sp || memchr(sp + 1, ' ', e->len - (uint32_t)(sp + 1 - e->s))) {
                bad(&h, "a merge is not two tokens separated by one space", e);
                goto out;
            }
            a = e->s;
            al = (uint32_t)(sp - e->s);
            b = sp + 1;
            bl = e->len - al - 1;
        } else {                                      /* ["a", "b"] */
            const kt_jv *x = kt_json_first(&h.j, e), *y = kt_json_next(&h.j, x);
            if (e->type != KT_J_ARR || e->len != 2 || x->type != KT_J_STR || y->type != KT_J_STR) {
                bad(&h, "a merge is neither \"a b\" nor [\"a\", \"b\"]", NULL);
                goto out;
            }
            a = x->s;
            al = x->len;
            b = y->s;
            bl = y->len;
        }
        if (kt_bpe_add_merge(v, &map, a, al, b, bl, err, errlen))
            goto out;
    }

    /* Special tokens: tokenizer_config.json, else the post-processor, else config.json. */
    const kt_jv *croot = have_cfg == 0 ? kt_json_root(&cfg) : NULL;
    v->bos_id = config_token(&cfg, croot, "bos_token", v);
    v->eos_id = config_token(&cfg, croot, "eos_token", v);
    const kt_jv *tb = template_bos(&h, get(&h, h.root, "post_processor"));
    uint32_t tmpl_bos = tb && tb->type == KT_J_STR ? find_token(v, tb->s, tb->len) : NN_TOK_NONE;
    if (v->bos_id == NN_TOK_NONE)
        v->bos_id = tmpl_bos != NN_TOK_NONE ? tmpl_bos : cfg_bos;
    if (v->eos_id == NN_TOK_NONE)
        v->eos_id = cfg_eos;
    int add_bos = tmpl_bos != NN_TOK_NONE && tmpl_bos == v->bos_id;
    int cb;
    if (croot && !kt_json_bool(kt_json_get(&cfg, croot, "add_bos_token"), &cb))
        add_bos = cb;
    if (v->eos_id == NN_TOK_NONE || v->eos_id >= expect_n) {
        snprintf(err, errlen, "no EOS token: tokenizer_config.json eos_token and config.json eos_token_id are "
                 "missing or unknown");
        goto out;
    }
    if (v->bos_id == NN_TOK_NONE || v->bos_id >= expect_n) {
        v->bos_id = v->eos_id;       /* models without BOS: generation still stops there */
        add_bos = 0;
    }
    const kt_jv *unk = get(&h, model, "unk_token");
    if (unk && unk->type == KT_J_STR) {
        v->unk_id = find_token(v, unk->s, unk->len);
        if (v->unk_id == NN_TOK_NONE) {
            bad(&h, "unk_token is not a token", unk);
            goto out;
        }
    }
    decoder(&h, get(&h, h.root, "decoder"));
    v->flags = h.flags | (add_bos ? NN_TOK_F_ADD_BOS : 0) | (h.byte_level ? NN_TOK_F_BYTE_LEVEL : 0);
    v->pretok = h.pretok;
    if (h.byte_level ? kt_bpe_finish_bytelevel(v, err, errlen) : kt_bpe_finish_meta(v, byte_fallback, err, errlen))
        goto out;
    v->max_token_len = 1;
    for (uint32_t i = 0; i < v->n; i++) {
        uint32_t l = v->disp[i] ? v->disp_len[i] : v->len[i];
        l = l > v->len[i] ? l : v->len[i];
        v->max_token_len = l > v->max_token_len ? l : v->max_token_len;
    }
    if (v->max_token_len > NN_TOK_MAX_LEN) {
        snprintf(err, errlen, "tokenizer.json: a token is longer than %u bytes", NN_TOK_MAX_LEN);
        goto out;
    }
    rc = 0;
out:
    kt_strmap_free(&map);
    kt_json_free(&h.j);
    kt_json_free(&cfg);
    if (rc)
        kt_vocab_free(v);
    return rc;
}

int kt_vocab_read_hf(kt_vocab *v, const char *dir, uint32_t expect_n, uint32_t cfg_bos, uint32_t cfg_eos,
                     char *err, size_t errlen)
{
    char path[4096];
    const uint8_t *t = NULL, *c = NULL;
    size_t tl = 0, cl = 0;
    memset(v, 0, sizeof *v);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (kt_map(path, &t, &tl)) {
        snprintf(err, errlen, "cannot read %.400s", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    int have_cfg = kt_map(path, &c, &cl) == 0;
    int rc = kt_vocab_parse_hf(v, (const char *)t, tl, have_cfg ? (const char *)c : NULL, cl, expect_n, cfg_bos,
                               cfg_eos, err, errlen);
    if (rc && strncmp(err, "tokenizer", 9) == 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%.380s", err);
        snprintf(err, errlen, "%.200s/%s", dir, msg);
    }
    kt_unmap(t, tl);
    if (have_cfg)
        kt_unmap(c, cl);
    return rc;
}
