/*
 * The image's tokenizer: blob validation and the parts both kinds share, then kind
 * NN_TOK_LLAMA2C, llama2.c's BPE. Its encoding follows run.c's encode() step for step
 * (dummy prefix, code-point lookup, byte fallback, greedy merges by best score with
 * the leftmost pair winning ties), so prompts tokenize identically. Kind NN_TOK_BPE
 * lives in tok_bpe.c.
 */
#include <string.h>

#include "nn_image.h"
#include "tok_internal.h"

#define B4(i) (i), (i) + 1, (i) + 2, (i) + 3
#define B16(i) B4(i), B4((i) + 4), B4((i) + 8), B4((i) + 12)
#define B64(i) B16(i), B16((i) + 16), B16((i) + 32), B16((i) + 48)
/* byte_pieces[b] is the byte b, so a <0xXX> token decodes to a one-byte piece. */
static const uint8_t byte_pieces[256] = { B64(0), B64(64), B64(128), B64(192) };

static int cmp_bytes(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

nn_tok_piece nn_tok_str(const nn_tokenizer *t, uint32_t id)
{
    nn_tok_piece p = { NULL, 0 };
    if (id >= t->n_vocab)
        return p;
    uint32_t start = id ? t->ends[id - 1] : 0;
    p.p = t->strings + start;
    p.len = t->ends[id] - start - 1;       /* without the NUL */
    return p;
}

nn_status nn_tok_init(nn_tokenizer *t, const uint8_t *blob, size_t bytes)
{
    memset(t, 0, sizeof *t);
    if (!blob || bytes < NN_TOK_HEADER_BYTES || memcmp(blob, NN_TOK_MAGIC, 4) != 0)
        return NN_E_TOKENIZER;
    t->version = nn_rd32(blob + 4);
    if (t->version == NN_TOK_VERSION_BPE) {
        nn_status st = nn_tok_init_bpe(t, blob, bytes);
        if (st)
            memset(t, 0, sizeof *t);
        return st;
    }
    if (t->version != NN_TOK_VERSION)
        return NN_E_TOKENIZER;
    t->kind = nn_rd32(blob + 8);
    t->n_vocab = nn_rd32(blob + 12);
    t->max_token_len = nn_rd32(blob + 16);
    t->bos_id = nn_rd32(blob + 20);
    t->eos_id = nn_rd32(blob + 24);
    t->byte_base = nn_rd32(blob + 28);
    t->flags = nn_rd32(blob + 32);
    uint32_t off_scores = nn_rd32(blob + 36), off_ends = nn_rd32(blob + 40);
    uint32_t off_sorted = nn_rd32(blob + 44), off_strings = nn_rd32(blob + 48);
    t->strings_bytes = nn_rd32(blob + 52);
    uint64_t n = t->n_vocab;
    if (t->kind != NN_TOK_LLAMA2C || n == 0 || n > NN_MAX_VOCAB || t->max_token_len == 0 ||
        t->max_token_len > 4096 || t->bos_id >= n || t->eos_id >= n || (uint64_t)t->byte_base + 256 > n ||
        off_scores % 4 || off_ends % 4 || off_sorted % 4 ||
        off_scores < NN_TOK_HEADER_BYTES || off_scores + 4 * n > bytes ||
        off_ends < NN_TOK_HEADER_BYTES || off_ends + 4 * n > bytes ||
        off_sorted < NN_TOK_HEADER_BYTES || off_sorted + 4 * n > bytes ||
        off_strings < NN_TOK_HEADER_BYTES || (uint64_t)off_strings + t->strings_bytes > bytes)
        return NN_E_TOKENIZER;
    t->scores = (const int32_t *)(const void *)(blob + off_scores);
    t->ends = (const uint32_t *)(const void *)(blob + off_ends);
    t->sorted = (const uint32_t *)(const void *)(blob + off_sorted);
    t->strings = blob + off_strings;
    t->n_sorted = t->n_vocab;
    t->unk_id = NN_TOK_NONE;

    uint32_t prev_end = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = t->ends[i];
        if (e <= prev_end || e > t->strings_bytes || t->strings[e - 1] != 0 ||
            e - prev_end - 1 > t->max_token_len)
            return NN_E_TOKENIZER;
        prev_end = e;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (t->sorted[i] >= n)
            return NN_E_TOKENIZER;
        if (i) {
            nn_tok_piece a = nn_tok_str(t, t->sorted[i - 1]), b = nn_tok_str(t, t->sorted[i]);
            if (cmp_bytes(a.p, a.len, b.p, b.len) > 0)
                return NN_E_TOKENIZER;
        }
    }
    /* Byte fallback must point at the 256 <0xXX> tokens. */
    for (uint32_t b = 0; b < 256; b++) {
        nn_tok_piece p = nn_tok_str(t, t->byte_base + b);
        static const char hex[] = "0123456789ABCDEF";
        if (p.len != 6 || memcmp(p.p, "<0x", 3) != 0 || p.p[3] != hex[b >> 4] || p.p[4] != hex[b & 15] ||
            p.p[5] != '>')
            return NN_E_TOKENIZER;
    }
    return NN_OK;
}

int32_t nn_tok_lookup(const nn_tokenizer *t, const uint8_t *s, uint32_t len)
{
    uint32_t lo = 0, hi = t->n_sorted;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        nn_tok_piece p = nn_tok_str(t, t->sorted[mid]);
        int c = cmp_bytes(s, len, p.p, p.len);
        if (c == 0)
            return (int32_t)t->sorted[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

size_t nn_tok_scratch_bytes(const nn_tokenizer *t)
{
    /* NN_TOK_BPE needs none: it merges by id pairs and looks up single characters. */
    return t->kind == NN_TOK_BPE ? 1 : (size_t)t->max_token_len * 2 + 3;
}

static nn_status push(uint32_t *ids, uint32_t max_ids, uint32_t *n, uint32_t id)
{
    if (*n >= max_ids)
        return NN_E_RANGE;
    ids[(*n)++] = id;
    return NN_OK;
}

nn_status nn_tok_encode(const nn_tokenizer *t, const char *text, int bos, int eos,
                        uint32_t *ids, uint32_t max_ids, uint32_t *n_ids,
                        void *scratch, size_t scratch_bytes)
{
    if (!t || !text || !ids || !n_ids || !scratch || scratch_bytes < nn_tok_scratch_bytes(t))
        return NN_E_ARG;
    uint8_t *buf = scratch;
    uint32_t n = 0;
    nn_status st = NN_OK;
    *n_ids = 0;
    if (bos && (st = push(ids, max_ids, &n, t->bos_id)))
        return st;
    if (t->kind == NN_TOK_BPE) {
        size_t len = strlen(text);
        if (len > UINT32_MAX)
            return NN_E_RANGE;
        if ((st = nn_tok_encode_bpe(t, (const uint8_t *)text, (uint32_t)len, ids, max_ids, &n)))
            return st;
        if (eos && (st = push(ids, max_ids, &n, t->eos_id)))
            return st;
        *n_ids = n;
        return NN_OK;
    }
    if (text[0] != '\0') {
        int32_t sp = nn_tok_lookup(t, (const uint8_t *)" ", 1);
        if (sp >= 0 && (st = push(ids, max_ids, &n, (uint32_t)sp)))
            return st;
    }
    /* One token per UTF-8 code point (at most 4 bytes), else its bytes. */
    uint32_t len = 0;
    for (const uint8_t *c = (const uint8_t *)text; *c; c++) {
        if ((*c & 0xC0) != 0x80)
            len = 0;
        buf[len++] = *c;
        if ((c[1] & 0xC0) == 0x80 && len < 4)
            continue;
        int32_t id = nn_tok_lookup(t, buf, len);
        if (id >= 0) {
            st = push(ids, max_ids, &n, (uint32_t)id);
        } else {
            for (uint32_t i = 0; i < len && !st; i++)
                st = push(ids, max_ids, &n, t->byte_base + buf[i]);
        }
        if (st)
            return st;
        len = 0;
    }
    /* Merge the best-scoring adjacent pair until none merges; leftmost wins ties. */
    for (;;) {
        int64_t best = INT64_MIN;
        uint32_t best_id = 0, best_idx = UINT32_MAX;
        for (uint32_t i = 0; i + 1 < n; i++) {
            nn_tok_piece a = nn_tok_str(t, ids[i]), b = nn_tok_str(t, ids[i + 1]);
            memcpy(buf, a.p, a.len);
            memcpy(buf + a.len, b.p, b.len);
            int32_t id = nn_tok_lookup(t, buf, a.len + b.len);
            if (id >= 0 && t->scores[id] > best) {
                best = t->scores[id];
                best_id = (uint32_t)id;
                best_idx = i;
            }
        }
        if (best_idx == UINT32_MAX)
            break;
        ids[best_idx] = best_id;
        memmove(ids + best_idx + 1, ids + best_idx + 2, (n - best_idx - 2) * sizeof *ids);
        n--;
    }
    if (eos && (st = push(ids, max_ids, &n, t->eos_id)))
        return st;
    *n_ids = n;
    return NN_OK;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

nn_tok_piece nn_tok_decode(const nn_tokenizer *t, uint32_t prev, uint32_t id)
{
    nn_tok_piece p = nn_tok_str(t, id);
    if (!p.p)
        return p;
    if (t->kind == NN_TOK_BPE) {
        uint32_t start = id ? t->dends[id - 1] : 0;
        p.p = t->dstrings + start;
        p.len = t->dends[id] - start - 1;
        if ((t->flags & NN_TOK_F_STRIP_SPACE) && prev == t->bos_id && p.len && p.p[0] == ' ') {
            p.p++;
            p.len--;
        }
        return p;
    }
    if (prev == t->bos_id && p.len && p.p[0] == ' ') {
        p.p++;
        p.len--;
    }
    if (p.len == 6 && memcmp(p.p, "<0x", 3) == 0 && p.p[5] == '>') {
        int hi = hexval(p.p[3]), lo = hexval(p.p[4]);
        if (hi >= 0 && lo >= 0) {
            p.p = byte_pieces + (hi << 4 | lo);
            p.len = 1;
        }
    }
    return p;
}
