/*
 * GGUF reader (see gguf.h). A cursor walks the file; every read first checks that the
 * bytes are there, and every count is bounded by what the rest of the file could hold
 * before anything is allocated for it.
 */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kvtools.h"

typedef struct cur {
    const uint8_t *p, *end;
    char *err;
    size_t errlen;
} cur;

static const struct { const char *name; uint32_t block, bytes; } ggml_types[] = {
    [0] = { "F32", 1, 4 },     [1] = { "F16", 1, 2 },     [2] = { "Q4_0", 32, 18 },  [3] = { "Q4_1", 32, 20 },
    [6] = { "Q5_0", 32, 22 },  [7] = { "Q5_1", 32, 24 },  [8] = { "Q8_0", 32, 34 },  [9] = { "Q8_1", 32, 36 },
    [10] = { "Q2_K", 256, 84 }, [11] = { "Q3_K", 256, 110 }, [12] = { "Q4_K", 256, 144 },
    [13] = { "Q5_K", 256, 176 }, [14] = { "Q6_K", 256, 210 }, [15] = { "Q8_K", 256, 292 },
    [16] = { "IQ2_XXS", 256, 66 }, [17] = { "IQ2_XS", 256, 74 }, [18] = { "IQ3_XXS", 256, 98 },
    [19] = { "IQ1_S", 256, 50 }, [20] = { "IQ4_NL", 32, 18 }, [21] = { "IQ3_S", 256, 110 },
    [22] = { "IQ2_S", 256, 82 }, [23] = { "IQ4_XS", 256, 136 }, [24] = { "I8", 1, 1 },
    [25] = { "I16", 1, 2 },    [26] = { "I32", 1, 4 },    [27] = { "I64", 1, 8 },    [28] = { "F64", 1, 8 },
    [29] = { "IQ1_M", 256, 56 }, [30] = { "BF16", 1, 2 },
};
#define N_TYPES (sizeof ggml_types / sizeof ggml_types[0])

const char *kt_ggml_type_name(uint32_t type) { return type < N_TYPES ? ggml_types[type].name : NULL; }

static int take(cur *c, uint64_t n, const uint8_t **out, const char *what)
{
    if ((uint64_t)(c->end - c->p) < n) {
        snprintf(c->err, c->errlen, "truncated: %s runs past the end of the file", what);
        return -1;
    }
    *out = c->p;
    c->p += n;
    return 0;
}

static int rd_u32(cur *c, uint32_t *v, const char *what)
{
    const uint8_t *p;
    if (take(c, 4, &p, what))
        return -1;
    *v = nn_rd32(p);
    return 0;
}

static int rd_u64(cur *c, uint64_t *v, const char *what)
{
    const uint8_t *p;
    if (take(c, 8, &p, what))
        return -1;
    *v = nn_rd64(p);
    return 0;
}

static int rd_str(cur *c, const char **s, uint64_t *len, const char *what)
{
    const uint8_t *p;
    if (rd_u64(c, len, what) || take(c, *len, &p, what))
        return -1;
    *s = (const char *)p;
    return 0;
}

static uint32_t scalar_size(uint32_t t)
{
    static const uint8_t sz[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    return t < sizeof sz ? sz[t] : 0;
}

void kt_gguf_close(kt_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_off);
    free(g->kv);
    free(g->t);
    if (g->mapped)
        kt_unmap(g->map, g->size);
    memset(g, 0, sizeof *g);
}

static int cmp_data(const void *a, const void *b)
{
    const kt_gguf_tensor *x = *(const kt_gguf_tensor *const *)a, *y = *(const kt_gguf_tensor *const *)b;
    return (x->data > y->data) - (x->data < y->data);
}

static int cmp_name(const void *a, const void *b)
{
    const kt_gguf_tensor *x = *(const kt_gguf_tensor *const *)a, *y = *(const kt_gguf_tensor *const *)b;
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int parse_kv(cur *c, kt_gguf_kv *kv)
{
    uint64_t kl;
    if (rd_str(c, &kv->key, &kl, "a metadata key") || rd_u32(c, &kv->type, "a metadata type"))
        return -1;
    if (kl == 0 || kl > 65535) {
        snprintf(c->err, c->errlen, "corrupted header: a metadata key of %llu bytes", (unsigned long long)kl);
        return -1;
    }
    kv->key_len = (uint32_t)kl;
    int kn = (int)(kl > 80 ? 80 : kl);
    kv->val = c->p;
    const uint8_t *p;
    if (kv->type == KT_GGUF_STRING) {
        const char *s;
        uint64_t l;
        return rd_str(c, &s, &l, "a metadata string");
    }
    if (kv->type != KT_GGUF_ARRAY) {
        uint32_t sz = scalar_size(kv->type);
        if (!sz) {
            snprintf(c->err, c->errlen, "corrupted header: metadata '%.*s' has unknown type %u", kn, kv->key,
                     kv->type);
            return -1;
        }
        return take(c, sz, &p, "a metadata value");
    }
    if (rd_u32(c, &kv->arr_type, "an array type") || rd_u64(c, &kv->arr_n, "an array length"))
        return -1;
    kv->val = c->p;
    uint64_t left = (uint64_t)(c->end - c->p);
    if (kv->arr_type == KT_GGUF_STRING) {
        if (kv->arr_n > left / 8) {
            snprintf(c->err, c->errlen, "truncated or corrupted: array '%.*s' claims %llu strings, more than the "
                     "file holds", kn, kv->key, (unsigned long long)kv->arr_n);
            return -1;
        }
        kv->str_off = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *kv->str_off);
        if (!kv->str_off) {
            snprintf(c->err, c->errlen, "out of memory");
            return -1;
        }
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            const char *s;
            uint64_t l;
            kv->str_off[i] = (uint64_t)(c->p - kv->val);
            if (rd_str(c, &s, &l, "a string array"))
                return -1;
        }
        return 0;
    }
    uint32_t sz = scalar_size(kv->arr_type);
    if (!sz) {
        snprintf(c->err, c->errlen, "corrupted header: array '%.*s' has unsupported element type %u", kn, kv->key,
                 kv->arr_type);
        return -1;
    }
    if (kv->arr_n > left / sz) {
        snprintf(c->err, c->errlen, "truncated or corrupted: array '%.*s' claims %llu elements, more than the "
                 "file holds", kn, kv->key, (unsigned long long)kv->arr_n);
        return -1;
    }
    return take(c, kv->arr_n * sz, &p, "an array");
}

int kt_gguf_parse(kt_gguf *g, const uint8_t *data, size_t size, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->map = data;
    g->size = size;
    cur c = { data, data + size, err, errlen };
    const uint8_t *magic;
    if (take(&c, 4, &magic, "the magic") || memcmp(magic, "GGUF", 4) != 0) {
        if (size >= 4)
            snprintf(err, errlen, "not a GGUF file (bad magic)");
        return -1;
    }
    if (rd_u32(&c, &g->version, "the version"))
        return -1;
    if (g->version != 3) {
        snprintf(err, errlen, "GGUF version %u is not supported (version 3 only)", g->version);
        return -1;
    }
    uint64_t nt, nkv;
    if (rd_u64(&c, &nt, "the tensor count") || rd_u64(&c, &nkv, "the metadata count"))
        return -1;
    /* A key/value takes at least 13 bytes and a tensor info at least 24. */
    if (nkv > size / 13 || nt > size / 24) {
        snprintf(err, errlen, "corrupted header: %llu tensors and %llu metadata entries cannot fit %zu bytes",
                 (unsigned long long)nt, (unsigned long long)nkv, size);
        return -1;
    }
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->t = calloc(nt ? nt : 1, sizeof *g->t);
    kt_gguf_tensor **sorted = NULL;
    if (!g->kv || !g->t) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = i + 1;
        if (parse_kv(&c, &g->kv[i]))
            goto fail;
    }
    g->alignment = 32;
    const kt_gguf_kv *al = kt_gguf_kv_find(g, "general.alignment");
    if (al) {
        if (al->type != KT_GGUF_U32 || nn_rd32(al->val) == 0 || (nn_rd32(al->val) & (nn_rd32(al->val) - 1)) ||
            nn_rd32(al->val) > (1u << 20)) {
            snprintf(err, errlen, "corrupted header: general.alignment must be a u32 power of two");
            goto fail;
        }
        g->alignment = nn_rd32(al->val);
    }
    uint64_t *offs = malloc((nt ? nt : 1) * sizeof *offs);
    if (!offs) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++) {
        kt_gguf_tensor *t = &g->t[i];
        uint64_t nl;
        if (rd_str(&c, &t->name, &nl, "a tensor name") || rd_u32(&c, &t->n_dims, "a tensor's dimensions")) {
            free(offs);
            goto fail;
        }
        g->n_t = i + 1;
        int tn = (int)(nl > 80 ? 80 : nl);
        if (nl == 0 || nl > 256) {
            snprintf(err, errlen, "corrupted header: tensor %llu has a name of %llu bytes", (unsigned long long)i,
                     (unsigned long long)nl);
            free(offs);
            goto fail;
        }
        t->name_len = (uint32_t)nl;
        if (t->n_dims == 0 || t->n_dims > KT_GGUF_MAX_DIMS) {
            snprintf(err, errlen, "tensor '%.*s' has %u dimensions (1..%d)", tn, t->name, t->n_dims,
                     KT_GGUF_MAX_DIMS);
            free(offs);
            goto fail;
        }
        t->count = 1;
        for (uint32_t d = 0; d < KT_GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d < t->n_dims && rd_u64(&c, &t->ne[d], "a tensor shape")) {
                free(offs);
                goto fail;
            }
            if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || t->count > (1ull << 50) / t->ne[d]) {
                snprintf(err, errlen, "tensor '%.*s' has a bad shape", tn, t->name);
                free(offs);
                goto fail;
            }
            t->count *= t->ne[d];
        }
        if (rd_u32(&c, &t->type, "a tensor type") || rd_u64(&c, &offs[i], "a tensor offset")) {
            free(offs);
            goto fail;
        }
        if (t->type >= N_TYPES || !ggml_types[t->type].name) {
            snprintf(err, errlen, "tensor '%.*s' has an unknown type %u", tn, t->name, t->type);
            free(offs);
            goto fail;
        }
        uint32_t bs = ggml_types[t->type].block;
        if (t->ne[0] % bs) {
            snprintf(err, errlen, "tensor '%.*s': row length %llu is not a multiple of the %s block (%u)", tn,
                     t->name, (unsigned long long)t->ne[0], ggml_types[t->type].name, bs);
            free(offs);
            goto fail;
        }
        t->bytes = t->count / bs * ggml_types[t->type].bytes;
    }
    uint64_t hdr = (uint64_t)(c.p - data), start = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    if (start > size) {
        snprintf(err, errlen, "truncated: the file ends before its tensor data begins");
        free(offs);
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++) {
        kt_gguf_tensor *t = &g->t[i];
        int tn = (int)(t->name_len > 80 ? 80 : t->name_len);
        if (offs[i] % g->alignment) {
            snprintf(err, errlen, "tensor '%.*s' offset %llu is not aligned to %u", tn, t->name,
                     (unsigned long long)offs[i], g->alignment);
            free(offs);
            goto fail;
        }
        if (offs[i] > size - start || t->bytes > size - start - offs[i]) {
            snprintf(err, errlen, "truncated: tensor '%.*s' data [%llu, +%llu) runs past the end of the file", tn,
                     t->name, (unsigned long long)offs[i], (unsigned long long)t->bytes);
            free(offs);
            goto fail;
        }
        t->data = data + start + offs[i];
    }
    free(offs);
    sorted = malloc((nt ? nt : 1) * sizeof *sorted);
    if (!sorted) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++)
        sorted[i] = &g->t[i];
    qsort(sorted, nt, sizeof *sorted, cmp_name);
    for (uint64_t i = 1; i < nt; i++)
        if (cmp_name(&sorted[i - 1], &sorted[i]) == 0) {
            snprintf(err, errlen, "tensor '%.*s' appears twice", (int)(sorted[i]->name_len > 80 ? 80 :
                     sorted[i]->name_len), sorted[i]->name);
            goto fail;
        }
    qsort(sorted, nt, sizeof *sorted, cmp_data);
    for (uint64_t i = 1; i < nt; i++)
        if (sorted[i]->data < sorted[i - 1]->data + sorted[i - 1]->bytes) {
            snprintf(err, errlen, "tensors '%.*s' and '%.*s' overlap", (int)(sorted[i - 1]->name_len > 80 ? 80 :
                     sorted[i - 1]->name_len), sorted[i - 1]->name, (int)(sorted[i]->name_len > 80 ? 80 :
                     sorted[i]->name_len), sorted[i]->name);
            goto fail;
        }
    free(sorted);
    return 0;
fail:
    free(sorted);
    kt_gguf_close(g);
    return -1;
}

int kt_gguf_open(kt_gguf *g, const char *path, char *err, size_t errlen)
{
    const uint8_t *d;
    size_t size;
    memset(g, 0, sizeof *g);
    if (kt_map(path, &d, &size)) {
        snprintf(err, errlen, "cannot read %.400s", path);
        return -1;
    }
    char msg[400];
    if (kt_gguf_parse(g, d, size, msg, sizeof msg)) {
        snprintf(err, errlen, "%.300s: %s", path, msg);
        kt_unmap(d, size);
        return -1;
    }
    g->mapped = 1;
    return 0;
}

const kt_gguf_kv *kt_gguf_kv_find(const kt_gguf *g, const char *key)
{
    size_t kl = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == kl && memcmp(g->kv[i].key, key, kl) == 0)
            return &g->kv[i];
    return NULL;
}

int kt_gguf_get_u32(const kt_gguf *g, const char *key, uint32_t *out)
{
    const kt_gguf_kv *kv = kt_gguf_kv_find(g, key);
    if (!kv)
        return 1;
    uint64_t v;
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case KT_GGUF_U8: v = p[0]; break;
    case KT_GGUF_U16: v = (uint64_t)(p[0] | p[1] << 8); break;
    case KT_GGUF_U32: v = nn_rd32(p); break;
    case KT_GGUF_U64: v = nn_rd64(p); break;
    case KT_GGUF_I8: if ((int8_t)p[0] < 0) return -1; v = p[0]; break;
    case KT_GGUF_I16: if (p[1] & 0x80) return -1; v = (uint64_t)(p[0] | p[1] << 8); break;
    case KT_GGUF_I32: if ((int32_t)nn_rd32(p) < 0) return -1; v = nn_rd32(p); break;
    case KT_GGUF_I64: if ((int64_t)nn_rd64(p) < 0) return -1; v = nn_rd64(p); break;
    default: return -1;
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int kt_gguf_get_f64(const kt_gguf *g, const char *key, double *out)
{
    const kt_gguf_kv *kv = kt_gguf_kv_find(g, key);
    if (!kv)
        return 1;
    if (kv->type == KT_GGUF_F32) {
        uint32_t b = nn_rd32(kv->val);
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return 0;
    }
    if (kv->type == KT_GGUF_F64) {
        uint64_t b = nn_rd64(kv->val);
        memcpy(out, &b, 8);
        return 0;
    }
    uint32_t u;
    int rc = kt_gguf_get_u32(g, key, &u);
    if (rc == 0)
        *out = u;
    return rc;
}

int kt_gguf_get_bool(const kt_gguf *g, const char *key, int *out)
{
    const kt_gguf_kv *kv = kt_gguf_kv_find(g, key);
    if (!kv)
        return 1;
    if (kv->type != KT_GGUF_BOOL)
        return -1;
    *out = kv->val[0] != 0;
    return 0;
}

int kt_gguf_get_str(const kt_gguf *g, const char *key, const char **s, uint32_t *len)
{
    const kt_gguf_kv *kv = kt_gguf_kv_find(g, key);
    if (!kv)
        return 1;
    uint64_t l = nn_rd64(kv->val);
    if (kv->type != KT_GGUF_STRING || l > UINT32_MAX)
        return -1;
    *s = (const char *)kv->val + 8;
    *len = (uint32_t)l;
    return 0;
}

void kt_gguf_arr_str(const kt_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len)
{
    const uint8_t *p = kv->val + kv->str_off[i];
    *len = nn_rd64(p);
    *s = (const char *)p + 8;
}

const kt_gguf_tensor *kt_gguf_tensor_find(const kt_gguf *g, const char *name)
{
    size_t nl = strlen(name);
    for (uint64_t i = 0; i < g->n_t; i++)
        if (g->t[i].name_len == nl && memcmp(g->t[i].name, name, nl) == 0)
            return &g->t[i];
    return NULL;
}
