/*
 * Kind NN_TOK_BPE: Hugging Face tokenizers' BPE model (and llama.cpp's "gpt2" BPE).
 *
 * Encoding: added tokens are cut out of the text first (leftmost, then longest); each
 * remaining segment is normalised (SentencePiece style: "▁" for spaces, a prepended
 * "▁"), split into words by the pre-tokenizer, and each word becomes symbols (bytes,
 * or characters with byte fallback), which merge pair by pair: always the adjacent
 * pair with the lowest merge rank, the leftmost of equals. That is exactly the order
 * in which tokenizers' priority queue (rank, position) merges, because a merge only
 * ever lengthens symbols and a queue entry that went stale never matches again.
 */
#include <string.h>

#include "nn_image.h"
#include "tok_internal.h"

static const uint8_t META[3] = { 0xe2, 0x96, 0x81 };   /* U+2581 "▁" */

/* ---- validation ---------------------------------------------------------------------- */

static int in_blob(uint64_t off, uint64_t n, uint64_t elem, size_t bytes)
{
    return off >= NN_TOK_V2_HEADER_BYTES && off % 4 == 0 && n <= bytes / elem && off + n * elem <= bytes;
}

/* ends[] over a string area: strictly increasing, NUL-terminated, bounded length. */
static int strings_ok(const uint32_t *ends, uint32_t n, const uint8_t *s, uint32_t sbytes, uint32_t maxlen)
{
    uint32_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = ends[i];
        if (e <= prev || e > sbytes || s[e - 1] != 0 || e - prev - 1 > maxlen)
            return 0;
        prev = e;
    }
    return 1;
}

static int cmp_bytes(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static nn_tok_piece dstr(const nn_tokenizer *t, uint32_t id)
{
    uint32_t start = id ? t->dends[id - 1] : 0;
    nn_tok_piece p = { t->dstrings + start, t->dends[id] - start - 1 };
    return p;
}

nn_status nn_tok_init_bpe(nn_tokenizer *t, const uint8_t *b, size_t bytes)
{
    if (bytes < NN_TOK_V2_HEADER_BYTES || bytes > UINT32_MAX)
        return NN_E_TOKENIZER;
    t->kind = nn_rd32(b + 8);
    t->n_vocab = nn_rd32(b + 12);
    t->max_token_len = nn_rd32(b + 16);
    t->bos_id = nn_rd32(b + 20);
    t->eos_id = nn_rd32(b + 24);
    t->unk_id = nn_rd32(b + 28);
    t->flags = nn_rd32(b + 32);
    t->pretok = nn_rd32(b + 36);
    uint32_t off_ends = nn_rd32(b + 40), off_str = nn_rd32(b + 44);
    t->strings_bytes = nn_rd32(b + 48);
    uint32_t off_dends = nn_rd32(b + 52), off_dstr = nn_rd32(b + 56), dbytes = nn_rd32(b + 60);
    uint32_t off_sorted = nn_rd32(b + 64), off_merges = nn_rd32(b + 72);
    uint32_t off_bytes = nn_rd32(b + 80), off_special = nn_rd32(b + 84);
    t->n_sorted = nn_rd32(b + 68);
    t->n_merges = nn_rd32(b + 76);
    t->n_special = nn_rd32(b + 88);
    uint32_t n = t->n_vocab;
    t->byte_base = NN_TOK_NONE;
    for (uint32_t o = 92; o < NN_TOK_V2_HEADER_BYTES; o++)
        if (b[o])
            return NN_E_TOKENIZER;
    if (t->kind != NN_TOK_BPE || n == 0 || n > NN_MAX_VOCAB || t->max_token_len == 0 ||
        t->max_token_len > NN_TOK_MAX_LEN || t->bos_id >= n || t->eos_id >= n ||
        (t->unk_id != NN_TOK_NONE && t->unk_id >= n) || (t->flags & ~NN_TOK_F_ALL) ||
        t->pretok > NN_TOK_PRE_LLAMA3 || t->n_sorted > n || t->n_special > n ||
        /* byte-level text has no spaces to turn into "▁"; pre-tokenizers need bytes */
        ((t->flags & NN_TOK_F_BYTE_LEVEL) &&
         (t->flags & (NN_TOK_F_SPACE_TO_META | NN_TOK_F_PREPEND_ALWAYS | NN_TOK_F_PREPEND_META |
                      NN_TOK_F_PREPEND_FIRST | NN_TOK_F_META_SPLIT))) ||
        (!(t->flags & NN_TOK_F_BYTE_LEVEL) && (t->pretok != NN_TOK_PRE_NONE ||
                                                (t->flags & (NN_TOK_F_DIGITS | NN_TOK_F_IGNORE_MERGES)))) ||
        !in_blob(off_ends, n, 4, bytes) || !in_blob(off_dends, n, 4, bytes) ||
        !in_blob(off_sorted, t->n_sorted, 4, bytes) || !in_blob(off_merges, t->n_merges, 16, bytes) ||
        !in_blob(off_bytes, 256, 4, bytes) || !in_blob(off_special, t->n_special, 4, bytes) ||
        off_str < NN_TOK_V2_HEADER_BYTES || (uint64_t)off_str + t->strings_bytes > bytes ||
        off_dstr < NN_TOK_V2_HEADER_BYTES || (uint64_t)off_dstr + dbytes > bytes)
        return NN_E_TOKENIZER;
    t->ends = (const uint32_t *)(const void *)(b + off_ends);
    t->strings = b + off_str;
    t->dends = (const uint32_t *)(const void *)(b + off_dends);
    t->dstrings = b + off_dstr;
    t->sorted = (const uint32_t *)(const void *)(b + off_sorted);
    t->merges = (const uint32_t *)(const void *)(b + off_merges);
    t->byte_ids = (const uint32_t *)(const void *)(b + off_bytes);
    t->special = (const uint32_t *)(const void *)(b + off_special);
    if (!strings_ok(t->ends, n, t->strings, t->strings_bytes, t->max_token_len) ||
        !strings_ok(t->dends, n, t->dstrings, dbytes, t->max_token_len))
        return NN_E_TOKENIZER;
    for (uint32_t i = 0; i < t->n_sorted; i++) {
        if (t->sorted[i] >= n)
            return NN_E_TOKENIZER;
        if (i) {
            nn_tok_piece a = nn_tok_str(t, t->sorted[i - 1]), c = nn_tok_str(t, t->sorted[i]);
            if (cmp_bytes(a.p, a.len, c.p, c.len) >= 0)
                return NN_E_TOKENIZER;
        }
    }
    for (uint32_t i = 0; i < t->n_merges; i++) {
        const uint32_t *m = t->merges + 4 * (size_t)i;
        if (m[0] >= n || m[1] >= n || m[2] >= n)
            return NN_E_TOKENIZER;
        if (i && (m[-4] > m[0] || (m[-4] == m[0] && m[-3] >= m[1])))
            return NN_E_TOKENIZER;
    }
    for (uint32_t i = 0; i < 256; i++)
        if (t->byte_ids[i] != NN_TOK_NONE && t->byte_ids[i] >= n)
            return NN_E_TOKENIZER;
    if (t->flags & NN_TOK_F_BYTE_LEVEL)
        for (uint32_t i = 0; i < 256; i++)
            if (t->byte_ids[i] == NN_TOK_NONE)
                return NN_E_TOKENIZER;         /* every byte must be a symbol */
    memset(t->special_first, 0, sizeof t->special_first);
    for (uint32_t i = 0; i < t->n_special; i++) {
        if (t->special[i] >= n)
            return NN_E_TOKENIZER;
        nn_tok_piece p = dstr(t, t->special[i]);
        if (p.len == 0)
            return NN_E_TOKENIZER;
        t->special_first[p.p[0] >> 3] |= (uint8_t)(1u << (p.p[0] & 7));
    }
    return NN_OK;
}

/* ---- encoding ------------------------------------------------------------------------ */

typedef struct enc {
    const nn_tokenizer *t;
    uint32_t *ids, max, n;
} enc;

static nn_status push(enc *e, uint32_t id)
{
    if (e->n >= e->max)
        return NN_E_RANGE;
    e->ids[e->n++] = id;
    return NN_OK;
}

/* The merge of (a, b), or NULL. */
static const uint32_t *find_merge(const nn_tokenizer *t, uint32_t a, uint32_t b)
{
    uint32_t lo = 0, hi = t->n_merges;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint32_t *m = t->merges + 4 * (size_t)mid;
        if (m[0] == a && m[1] == b)
            return m;
        if (m[0] < a || (m[0] == a && m[1] < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Merges the symbols ids[start, n) until no adjacent pair has a merge. */
static void merge_word(enc *e, uint32_t start)
{
    for (;;) {
        uint32_t best_rank = UINT32_MAX, best_i = UINT32_MAX, best_id = 0;
        for (uint32_t i = start; i + 1 < e->n; i++) {
            const uint32_t *m = find_merge(e->t, e->ids[i], e->ids[i + 1]);
            if (m && (best_i == UINT32_MAX || m[3] < best_rank)) {
                best_rank = m[3];
                best_i = i;
                best_id = m[2];
            }
        }
        if (best_i == UINT32_MAX)
            return;
        e->ids[best_i] = best_id;
        memmove(e->ids + best_i + 1, e->ids + best_i + 2, (e->n - best_i - 2) * sizeof *e->ids);
        e->n--;
    }
}

/* Byte-level: one word of raw bytes. */
static nn_status word_bytes(enc *e, const uint8_t *w, uint32_t len)
{
    const nn_tokenizer *t = e->t;
    if (t->flags & NN_TOK_F_IGNORE_MERGES) {
        int32_t id = nn_tok_lookup(t, w, len);
        if (id >= 0)
            return push(e, (uint32_t)id);
    }
    uint32_t start = e->n;
    nn_status st;
    for (uint32_t i = 0; i < len; i++)
        if ((st = push(e, t->byte_ids[w[i]])))
            return st;
    merge_word(e, start);
    return NN_OK;
}

/* Byte-level segment: digits isolated first (when asked), then the pre-tokenizer. */
static nn_status segment_bytes(enc *e, const uint8_t *s, uint32_t len)
{
    const nn_tokenizer *t = e->t;
    nn_status st;
    while (len) {
        uint32_t piece = len;
        if (t->flags & NN_TOK_F_DIGITS) {
            /* Pieces are single number characters or runs without any. */
            uint32_t i = 0, cp, w;
            while (i < len) {
                w = nn_utf8_next(s + i, len - i, &cp);
                if (cp != NN_UNI_INVALID && cp >= 0x30 && (cp <= 0x39 || (cp >= 0x80 && nn_uni_is_number(cp)))) {
                    if (i == 0)
                        i = w;
                    break;
                }
                i += w;
            }
            piece = i;
        }
        for (uint32_t i = 0; i < piece;) {
            uint32_t wl = nn_pretok_next(t->pretok, s + i, piece - i);
            if ((st = word_bytes(e, s + i, wl)))
                return st;
            i += wl;
        }
        s += piece;
        len -= piece;
    }
    return NN_OK;
}

/* SentencePiece style: one character (already normalised) as a symbol. */
static nn_status symbol_char(enc *e, const uint8_t *c, uint32_t len, int *last_unk)
{
    const nn_tokenizer *t = e->t;
    int32_t id = nn_tok_lookup(t, c, len);
    if (id >= 0) {
        *last_unk = 0;
        return push(e, (uint32_t)id);
    }
    int fallback = 1;
    for (uint32_t i = 0; i < len; i++)
        fallback &= t->byte_ids[c[i]] != NN_TOK_NONE;
    nn_status st;
    if (fallback) {
        *last_unk = 0;
        for (uint32_t i = 0; i < len; i++)
            if ((st = push(e, t->byte_ids[c[i]])))
                return st;
        return NN_OK;
    }
    if (t->unk_id == NN_TOK_NONE)
        return NN_E_TOKENIZER;
    if (*last_unk && (t->flags & NN_TOK_F_FUSE_UNK))
        return NN_OK;
    *last_unk = 1;
    return push(e, t->unk_id);
}

static nn_status segment_meta(enc *e, const uint8_t *s, uint32_t len, int at_start)
{
    const nn_tokenizer *t = e->t;
    uint32_t f = t->flags, start = e->n;
    int last_unk = 0, sp = (f & NN_TOK_F_SPACE_TO_META) != 0;
    int starts_meta = (len && s[0] == ' ' && sp) || (len >= 3 && memcmp(s, META, 3) == 0);
    nn_status st;
    if (len && ((f & NN_TOK_F_PREPEND_ALWAYS) || ((f & NN_TOK_F_PREPEND_META) && !starts_meta) ||
                ((f & NN_TOK_F_PREPEND_FIRST) && at_start && !starts_meta)))
        if ((st = symbol_char(e, META, 3, &last_unk)))
            return st;
    for (uint32_t i = 0; i < len;) {
        uint32_t cp, w = nn_utf8_next(s + i, len - i, &cp);
        int meta = (sp && s[i] == ' ') || cp == 0x2581;
        /* Metaspace split: a "▁" begins a new word; merges never cross words. */
        if (meta && (f & NN_TOK_F_META_SPLIT)) {
            merge_word(e, start);
            start = e->n;
        }
        if ((st = symbol_char(e, meta ? META : s + i, meta ? 3 : w, &last_unk)))
            return st;
        i += w;
    }
    merge_word(e, start);
    return NN_OK;
}

/* The added token that starts at s[0, len), longest first, or NN_TOK_NONE. */
static uint32_t special_at(const nn_tokenizer *t, const uint8_t *s, uint32_t len, uint32_t *slen)
{
    uint32_t best = NN_TOK_NONE;
    *slen = 0;
    if (!(t->special_first[s[0] >> 3] & (1u << (s[0] & 7))))
        return best;
    for (uint32_t i = 0; i < t->n_special; i++) {
        nn_tok_piece p = dstr(t, t->special[i]);
        if (p.len <= len && p.len > *slen && memcmp(s, p.p, p.len) == 0) {
            best = t->special[i];
            *slen = p.len;
        }
    }
    return best;
}

nn_status nn_tok_encode_bpe(const nn_tokenizer *t, const uint8_t *text, uint32_t len, uint32_t *ids,
                            uint32_t max_ids, uint32_t *n)
{
    enc e = { t, ids, max_ids, *n };
    nn_status st = NN_OK;
    uint32_t pos = 0;
    while (pos < len && !st) {
        uint32_t sp = pos, slen = 0, sid = NN_TOK_NONE;
        if (t->n_special)
            for (; sp < len && (sid = special_at(t, text + sp, len - sp, &slen)) == NN_TOK_NONE; sp++)
                ;
        else
            sp = len;
        if (sp > pos)
            st = (t->flags & NN_TOK_F_BYTE_LEVEL) ? segment_bytes(&e, text + pos, sp - pos)
                                                  : segment_meta(&e, text + pos, sp - pos, pos == 0);
        if (!st && sid != NN_TOK_NONE)
            st = push(&e, sid);
        pos = sp + slen;
    }
    *n = e.n;
    return st;
}
