/*
 * Tokenizer vocabularies on the host: reading llama2.c's tokenizer.bin, synthesising one
 * for random-weight images, and serialising the engine's blob (nn_tokenizer.h).
 */
#include <stdlib.h>
#include <string.h>

#include "kvtools.h"

static int set_str(kt_vocab *v, uint32_t i, const void *s, uint32_t len);

void kt_vocab_free(kt_vocab *v)
{
    if (!v)
        return;
    if (v->str)
        for (uint32_t i = 0; i < v->n; i++)
            free(v->str[i]);
    free(v->str);
    free(v->len);
    free(v->score);
    if (v->disp)
        for (uint32_t i = 0; i < v->n; i++)
            free(v->disp[i]);
    free(v->disp);
    free(v->disp_len);
    free(v->added);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

int kt_vocab_alloc(kt_vocab *v, uint32_t n, uint32_t kind)
{
    memset(v, 0, sizeof *v);
    v->str = calloc(n, sizeof *v->str);
    v->len = calloc(n, sizeof *v->len);
    v->score = calloc(n, sizeof *v->score);
    if (kind == NN_TOK_BPE) {
        v->disp = calloc(n, sizeof *v->disp);
        v->disp_len = calloc(n, sizeof *v->disp_len);
        v->added = calloc(n, 1);
    }
    v->n = n;
    if (!v->str || !v->len || !v->score || (kind == NN_TOK_BPE && (!v->disp || !v->disp_len || !v->added))) {
        kt_vocab_free(v);
        return -1;
    }
    v->kind = kind;
    v->bos_id = 1;
    v->eos_id = 2;
    v->byte_base = 3;
    v->unk_id = NN_TOK_NONE;
    for (int b = 0; b < 256; b++)
        v->byte_ids[b] = NN_TOK_NONE;
    return 0;
}

static int vocab_alloc(kt_vocab *v, uint32_t n)
{
    return kt_vocab_alloc(v, n, NN_TOK_LLAMA2C);
}

int kt_vocab_set_disp(kt_vocab *v, uint32_t i, const void *s, uint32_t len)
{
    free(v->disp[i]);
    v->disp[i] = malloc(len + 1);
    if (!v->disp[i])
        return -1;
    memcpy(v->disp[i], s, len);
    v->disp[i][len] = 0;
    v->disp_len[i] = len;
    if (len > v->max_token_len)
        v->max_token_len = len;
    return 0;
}

int kt_vocab_set(kt_vocab *v, uint32_t i, const void *s, uint32_t len)
{
    free(v->str[i]);
    v->str[i] = NULL;
    return set_str(v, i, s, len);
}

static int set_str(kt_vocab *v, uint32_t i, const void *s, uint32_t len)
{
    v->str[i] = malloc(len + 1);
    if (!v->str[i])
        return -1;
    memcpy(v->str[i], s, len);
    v->str[i][len] = 0;
    v->len[i] = len;
    if (len > v->max_token_len)
        v->max_token_len = len;
    return 0;
}

int kt_vocab_read_llama2c(kt_vocab *v, const char *path, uint32_t expect_n, char *err, size_t errlen)
{
    const uint8_t *d;
    size_t size;
    memset(v, 0, sizeof *v);
    if (kt_map(path, &d, &size)) {
        snprintf(err, errlen, "cannot read tokenizer %s", path);
        return -1;
    }
    int rc = -1;
    if (size < 4) {
        snprintf(err, errlen, "tokenizer %s is truncated (%zu bytes)", path, size);
        goto out;
    }
    /* Count the entries first: the file has no count of its own. */
    uint32_t n = 0;
    size_t off = 4;
    while (off < size) {
        if (size - off < 8) {
            snprintf(err, errlen, "tokenizer %s is truncated inside entry %u", path, n);
            goto out;
        }
        uint32_t len = nn_rd32(d + off + 4);
        if (len == 0 || len > 4096 || len > size - off - 8) {
            snprintf(err, errlen, "tokenizer %s: entry %u has a bad length (%u) or is truncated", path, n, len);
            goto out;
        }
        off += 8 + len;
        n++;
    }
    if (n != expect_n) {
        snprintf(err, errlen, "tokenizer %s has %u entries but the model's vocabulary is %u", path, n, expect_n);
        goto out;
    }
    if (vocab_alloc(v, n)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    off = 4;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t raw = nn_rd32(d + off), len = nn_rd32(d + off + 4);
        float score;
        memcpy(&score, &raw, 4);
        if (memchr(d + off + 8, 0, len)) {
            snprintf(err, errlen, "tokenizer %s: entry %u contains a NUL byte", path, i);
            goto out;
        }
        if (set_str(v, i, d + off + 8, len)) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        v->score[i] = score;
        off += 8 + len;
    }
    uint32_t file_max = nn_rd32(d);
    if (file_max > v->max_token_len && file_max <= 4096)
        v->max_token_len = file_max;
    rc = 0;
out:
    if (rc)
        kt_vocab_free(v);
    kt_unmap(d, size);
    return rc;
}

int kt_vocab_synthetic(kt_vocab *v, uint32_t n)
{
    if (n < 259 || vocab_alloc(v, n))
        return -1;
    static const char *special[3] = { "<unk>", "<s>", "</s>" };
    char buf[32];
    for (uint32_t i = 0; i < n; i++) {
        const char *s = buf;
        if (i < 3)
            s = special[i];
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else if (i < 259 + 95)
            snprintf(buf, sizeof buf, "%c", (char)(' ' + (i - 259)));   /* printable ASCII */
        else
            snprintf(buf, sizeof buf, " t%u", i);
        if (set_str(v, i, s, (uint32_t)strlen(s)))
            return -1;
        v->score[i] = i < 259 ? 0.0f : -(float)i;
    }
    return 0;
}

static const kt_vocab *sort_ctx;

static int cmp_ids_by_string(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t lx = sort_ctx->len[x], ly = sort_ctx->len[y];
    int c = memcmp(sort_ctx->str[x], sort_ctx->str[y], lx < ly ? lx : ly);
    if (!c)
        c = (lx > ly) - (lx < ly);
    return c ? c : (x > y) - (x < y);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int blob_bpe(const kt_vocab *v, uint8_t **out, uint32_t *out_len);

int kt_vocab_blob(const kt_vocab *v, uint8_t **out, uint32_t *out_len)
{
    if (v->kind == NN_TOK_BPE)
        return blob_bpe(v, out, out_len);
    uint32_t n = v->n;
    uint64_t strings = 0;
    for (uint32_t i = 0; i < n; i++)
        strings += v->len[i] + 1;
    uint32_t off_scores = NN_TOK_HEADER_BYTES, off_ends = off_scores + 4 * n;
    uint32_t off_sorted = off_ends + 4 * n, off_strings = off_sorted + 4 * n;
    uint64_t total = off_strings + strings;
    if (total > UINT32_MAX)
        return -1;
    uint8_t *b = calloc(1, total);
    uint32_t *ids = malloc((size_t)n * sizeof *ids);
    float *uniq = malloc((size_t)n * sizeof *uniq);
    if (!b || !ids || !uniq) {
        free(b);
        free(ids);
        free(uniq);
        return -1;
    }
    memcpy(b, NN_TOK_MAGIC, 4);
    nn_wr32(b + 4, NN_TOK_VERSION);
    nn_wr32(b + 8, v->kind);
    nn_wr32(b + 12, n);
    nn_wr32(b + 16, v->max_token_len);
    nn_wr32(b + 20, v->bos_id);
    nn_wr32(b + 24, v->eos_id);
    nn_wr32(b + 28, v->byte_base);
    nn_wr32(b + 32, 0);
    nn_wr32(b + 36, off_scores);
    nn_wr32(b + 40, off_ends);
    nn_wr32(b + 44, off_sorted);
    nn_wr32(b + 48, off_strings);
    nn_wr32(b + 52, (uint32_t)strings);

    /* Scores become ranks among the distinct values: the merge order is all that
     * matters, and integers compare exactly. */
    memcpy(uniq, v->score, (size_t)n * sizeof *uniq);
    qsort(uniq, n, sizeof *uniq, cmp_float);
    uint32_t nu = 0;
    for (uint32_t i = 0; i < n; i++)
        if (nu == 0 || uniq[nu - 1] != uniq[i])
            uniq[nu++] = uniq[i];
    uint32_t end = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo = 0, hi = nu - 1;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (uniq[mid] < v->score[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        nn_wr32(b + off_scores + 4 * i, lo);
        memcpy(b + off_strings + end, v->str[i], v->len[i]);
        end += v->len[i] + 1;
        nn_wr32(b + off_ends + 4 * i, end);
        ids[i] = i;
    }
    sort_ctx = v;
    qsort(ids, n, sizeof *ids, cmp_ids_by_string);
    for (uint32_t i = 0; i < n; i++)
        nn_wr32(b + off_sorted + 4 * i, ids[i]);
    free(ids);
    free(uniq);
    *out = b;
    *out_len = (uint32_t)total;
    return 0;
}

/* ---- NN_TOK_BPE blob (version 2) ---------------------------------------------------- */

static int cmp_merge(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    for (int i = 0; i < 2; i++)
        if (x[i] != y[i])
            return (x[i] > y[i]) - (x[i] < y[i]);
    return (x[3] > y[3]) - (x[3] < y[3]);
}

static void put_strings(uint8_t *b, uint32_t off_ends, uint32_t off_str, uint32_t n, char *const *s,
                        const uint32_t *len, char *const *alt, const uint32_t *alt_len)
{
    uint32_t end = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *p = alt && alt[i] ? alt[i] : s[i];
        uint32_t l = alt && alt[i] ? alt_len[i] : len[i];
        if (l)
            memcpy(b + off_str + end, p, l);
        end += l + 1;
        nn_wr32(b + off_ends + 4 * i, end);
    }
}

static int blob_bpe(const kt_vocab *v, uint8_t **out, uint32_t *out_len)
{
    uint32_t n = v->n, n_sorted = 0, n_special = 0, maxlen = 1;
    uint64_t sbytes = 0, dbytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t dl = v->disp && v->disp[i] ? v->disp_len[i] : v->len[i];
        sbytes += v->len[i] + 1;
        dbytes += dl + 1;
        maxlen = v->len[i] > maxlen ? v->len[i] : maxlen;
        maxlen = dl > maxlen ? dl : maxlen;
        n_sorted += !(v->added[i] & KT_ADDED);
        n_special += (v->added[i] & KT_SPECIAL) != 0;
    }
    if (maxlen > NN_TOK_MAX_LEN)
        return -1;
    uint64_t off_ends = NN_TOK_V2_HEADER_BYTES, off_dends = off_ends + 4ull * n;
    uint64_t off_sorted = off_dends + 4ull * n, off_merges = off_sorted + 4ull * n_sorted;
    uint64_t off_bytes = off_merges + 16ull * v->n_merges, off_special = off_bytes + 4 * 256;
    uint64_t off_str = off_special + 4ull * n_special, off_dstr = off_str + sbytes;
    uint64_t total = off_dstr + dbytes;
    if (total > UINT32_MAX)
        return -1;
    uint8_t *b = calloc(1, total);
    uint32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    uint32_t (*m)[4] = malloc(((size_t)v->n_merges + 1) * sizeof *m);
    if (!b || !ids || !m) {
        free(b);
        free(ids);
        free(m);
        return -1;
    }
    memcpy(b, NN_TOK_MAGIC, 4);
    nn_wr32(b + 4, NN_TOK_VERSION_BPE);
    nn_wr32(b + 8, NN_TOK_BPE);
    nn_wr32(b + 12, n);
    nn_wr32(b + 16, maxlen);
    nn_wr32(b + 20, v->bos_id);
    nn_wr32(b + 24, v->eos_id);
    nn_wr32(b + 28, v->unk_id);
    nn_wr32(b + 32, v->flags);
    nn_wr32(b + 36, v->pretok);
    nn_wr32(b + 40, (uint32_t)off_ends);
    nn_wr32(b + 44, (uint32_t)off_str);
    nn_wr32(b + 48, (uint32_t)sbytes);
    nn_wr32(b + 52, (uint32_t)off_dends);
    nn_wr32(b + 56, (uint32_t)off_dstr);
    nn_wr32(b + 60, (uint32_t)dbytes);
    nn_wr32(b + 64, (uint32_t)off_sorted);
    nn_wr32(b + 68, n_sorted);
    nn_wr32(b + 72, (uint32_t)off_merges);
    nn_wr32(b + 80, (uint32_t)off_bytes);
    nn_wr32(b + 84, (uint32_t)off_special);
    nn_wr32(b + 88, n_special);
    put_strings(b, (uint32_t)off_ends, (uint32_t)off_str, n, v->str, v->len, NULL, NULL);
    put_strings(b, (uint32_t)off_dends, (uint32_t)off_dstr, n, v->str, v->len, v->disp, v->disp_len);

    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!(v->added[i] & KT_ADDED))
            ids[k++] = i;
    sort_ctx = v;
    qsort(ids, k, sizeof *ids, cmp_ids_by_string);
    int rc = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (i && v->len[ids[i]] == v->len[ids[i - 1]] &&
            memcmp(v->str[ids[i]], v->str[ids[i - 1]], v->len[ids[i]]) == 0)
            rc = -1;                              /* two vocabulary tokens with one string */
        nn_wr32(b + off_sorted + 4 * i, ids[i]);
    }
    /* Merges by pair; a pair listed twice keeps its last rank, as tokenizers' map does. */
    for (uint32_t i = 0; i < v->n_merges; i++) {
        m[i][0] = v->merges[i][0];
        m[i][1] = v->merges[i][1];
        m[i][2] = v->merges[i][2];
        m[i][3] = i;
    }
    qsort(m, v->n_merges, sizeof *m, cmp_merge);
    uint32_t nm = 0;
    for (uint32_t i = 0; i < v->n_merges; i++) {
        if (nm && m[nm - 1][0] == m[i][0] && m[nm - 1][1] == m[i][1])
            nm--;
        memcpy(m[nm++], m[i], sizeof m[0]);
    }
    nn_wr32(b + 76, nm);
    for (uint32_t i = 0; i < nm; i++)
        for (int j = 0; j < 4; j++)
            nn_wr32(b + off_merges + 16ull * i + 4 * j, m[i][j]);
    for (int i = 0; i < 256; i++)
        nn_wr32(b + off_bytes + 4 * i, v->byte_ids[i]);
    k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v->added[i] & KT_SPECIAL)
            nn_wr32(b + off_special + 4 * k++, i);
    free(ids);
    free(m);
    if (rc) {
        free(b);
        return -1;
    }
    *out = b;
    *out_len = (uint32_t)total;
    return 0;
}
