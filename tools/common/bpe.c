/*
 * Host-side construction of NN_TOK_BPE vocabularies (see bpe.h).
 */
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

static uint64_t hash(const char *s, uint32_t len)
{
    uint64_t h = 1469598103934665603ull;           /* FNV-1a */
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

int kt_strmap_build(kt_strmap *m, const kt_vocab *v, uint32_t *dup)
{
    memset(m, 0, sizeof *m);
    uint32_t cap = 1024;
    while (cap < 2 * v->n)
        cap *= 2;
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot)
        return -1;
    m->mask = cap - 1;
    m->v = v;
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->added && (v->added[i] & KT_ADDED))
            continue;
        if (kt_strmap_get(m, v->str[i], v->len[i]) >= 0) {
            *dup = i;
            kt_strmap_free(m);
            return -1;
        }
        uint32_t h = (uint32_t)hash(v->str[i], v->len[i]) & m->mask;
        while (m->slot[h])
            h = (h + 1) & m->mask;
        m->slot[h] = i + 1;
    }
    return 0;
}

int32_t kt_strmap_get(const kt_strmap *m, const char *s, uint32_t len)
{
    uint32_t h = (uint32_t)hash(s, len) & m->mask;
    while (m->slot[h]) {
        uint32_t id = m->slot[h] - 1;
        if (m->v->len[id] == len && memcmp(m->v->str[id], s, len) == 0)
            return (int32_t)id;
        h = (h + 1) & m->mask;
    }
    return -1;
}

void kt_strmap_free(kt_strmap *m)
{
    free(m->slot);
    memset(m, 0, sizeof *m);
}

int kt_bpe_add_merge(kt_vocab *v, const kt_strmap *m, const char *a, uint32_t al, const char *b, uint32_t bl,
                     char *err, size_t errlen)
{
    int32_t l = kt_strmap_get(m, a, al), r = kt_strmap_get(m, b, bl), res = -1;
    char *cat = malloc((size_t)al + bl + 1);
    if (!cat) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(cat, a, al);
    memcpy(cat + al, b, bl);
    if (l >= 0 && r >= 0)
        res = kt_strmap_get(m, cat, al + bl);
    free(cat);
    if (l < 0 || r < 0 || res < 0) {
        snprintf(err, errlen, "merge %u (\"%.*s\" \"%.*s\") uses a token that is not in the vocabulary",
                 v->n_merges, (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
        return -1;
    }
    /* Capacity doubles at 1024, 2048, ...: n_merges is its own capacity bookkeeping. */
    uint32_t n = v->n_merges;
    if (n == 0 || (n >= 1024 && (n & (n - 1)) == 0)) {
        void *p = realloc(v->merges, (n ? 2 * (size_t)n : 1024) * sizeof *v->merges);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        v->merges = p;
    }
    v->merges[v->n_merges][0] = (uint32_t)l;
    v->merges[v->n_merges][1] = (uint32_t)r;
    v->merges[v->n_merges][2] = (uint32_t)res;
    v->n_merges++;
    return 0;
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 stands for itself, the other 68 bytes
 * for U+0100.. in byte order. */
static int printable(uint32_t b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

static int char_to_byte(uint32_t c)
{
    if (c < 256)
        return printable(c) ? (int)c : -1;
    uint32_t k = 0;
    for (uint32_t b = 0; b < 256; b++)
        if (!printable(b) && 256 + k++ == c)
            return (int)b;
    return -1;
}

/* Decodes one UTF-8 character (the strings came from the strict JSON parser or were
 * checked by the GGUF reader, but stay defensive). */
static uint32_t utf8_char(const uint8_t *s, uint32_t len, uint32_t *c)
{
    if (s[0] < 0x80) {
        *c = s[0];
        return 1;
    }
    uint32_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (!n || n > len) {
        *c = UINT32_MAX;
        return 1;
    }
    uint32_t v = s[0] & (0x7f >> n);
    for (uint32_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *c = UINT32_MAX;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3f);
    }
    *c = v;
    return n;
}

int kt_bpe_finish_bytelevel(kt_vocab *v, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->added[i] & KT_ADDED)
            continue;
        /* A vocabulary token that is also an added token is matched in text by its
         * content, which is what it displays as. */
        if ((v->added[i] & KT_SPECIAL) && kt_vocab_set_disp(v, i, v->str[i], v->len[i])) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        const uint8_t *s = (const uint8_t *)v->str[i];
        uint32_t o = 0;
        char *raw = malloc(v->len[i] + 1);
        if (!raw) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (uint32_t k = 0; k < v->len[i];) {
            uint32_t c, w = utf8_char(s + k, v->len[i] - k, &c);
            int b = char_to_byte(c);
            if (b < 0) {
                snprintf(err, errlen, "token %u (\"%.*s\") has a character outside the byte-level alphabet", i,
                         (int)(v->len[i] > 40 ? 40 : v->len[i]), v->str[i]);
                free(raw);
                return -1;
            }
            raw[o++] = (char)b;
            k += w;
        }
        free(v->str[i]);
        v->str[i] = raw;
        raw[o] = 0;
        v->len[i] = o;
        if (o == 1)
            v->byte_ids[(uint8_t)raw[0]] = i;
    }
    for (int b = 0; b < 256; b++) {
        if (v->byte_ids[b] == NN_TOK_NONE) {
            snprintf(err, errlen, "byte-level vocabulary has no token for byte 0x%02X", b);
            return -1;
        }
    }
    v->max_token_len = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        uint32_t l = v->disp && v->disp[i] ? v->disp_len[i] : v->len[i];
        l = l > v->len[i] ? l : v->len[i];
        v->max_token_len = l > v->max_token_len ? l : v->max_token_len;
    }
    return 0;
}

int kt_bpe_finish_meta(kt_vocab *v, int byte_fallback, char *err, size_t errlen)
{
    static const char hex[] = "0123456789ABCDEF";
    for (uint32_t i = 0; i < v->n; i++) {
        const char *s = v->str[i];
        uint32_t len = v->len[i];
        if (v->added[i] & KT_ADDED)
            continue;
        if (byte_fallback && len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && strchr(hex, s[3]) &&
            strchr(hex, s[4]) && s[3] && s[4]) {
            uint8_t b = (uint8_t)((strchr(hex, s[3]) - hex) << 4 | (strchr(hex, s[4]) - hex));
            v->byte_ids[b] = i;
            if (kt_vocab_set_disp(v, i, &b, 1))
                goto oom;
            continue;
        }
        if (!memmem(s, len, "\xe2\x96\x81", 3))
            continue;
        char *d = malloc(len + 1);
        if (!d)
            goto oom;
        uint32_t o = 0;
        for (uint32_t k = 0; k < len;) {
            if (k + 3 <= len && memcmp(s + k, "\xe2\x96\x81", 3) == 0) {
                d[o++] = ' ';
                k += 3;
            } else {
                d[o++] = s[k++];
            }
        }
        int rc = kt_vocab_set_disp(v, i, d, o);
        free(d);
        if (rc)
            goto oom;
    }
    if (byte_fallback)
        for (int b = 0; b < 256; b++)
            if (v->byte_ids[b] == NN_TOK_NONE) {
                snprintf(err, errlen, "byte_fallback is on but the vocabulary has no <0x%02X> token", b);
                return -1;
            }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}
