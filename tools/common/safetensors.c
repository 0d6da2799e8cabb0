/*
 * safetensors reader (see safetensors.h). Nothing is read outside [0, size): the
 * header length is checked against the file before the JSON is parsed, and every
 * tensor extent against the data area before its pointer is formed.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kvtools.h"
#include "safetensors.h"

static const struct { const char *name; uint32_t dtype, size; } dtypes[] = {
    { "F32", KT_ST_F32, 4 },    { "F16", KT_ST_F16, 2 },     { "BF16", KT_ST_BF16, 2 },
    { "F64", KT_ST_OTHER, 8 },  { "I64", KT_ST_OTHER, 8 },   { "U64", KT_ST_OTHER, 8 },
    { "I32", KT_ST_OTHER, 4 },  { "U32", KT_ST_OTHER, 4 },   { "I16", KT_ST_OTHER, 2 },
    { "U16", KT_ST_OTHER, 2 },  { "I8", KT_ST_OTHER, 1 },    { "U8", KT_ST_OTHER, 1 },
    { "BOOL", KT_ST_OTHER, 1 }, { "F8_E4M3", KT_ST_OTHER, 1 }, { "F8_E5M2", KT_ST_OTHER, 1 },
};

static int cmp_begin(const void *a, const void *b)
{
    const kt_st_tensor *x = a, *y = b;
    return (x->data > y->data) - (x->data < y->data);
}

void kt_st_close(kt_st *st)
{
    if (!st)
        return;
    for (uint32_t i = 0; i < st->n; i++)
        free(st->t[i].name);
    free(st->t);
    if (st->mapped)
        kt_unmap(st->map, st->size);
    memset(st, 0, sizeof *st);
}

int kt_st_parse(kt_st *st, const uint8_t *data, size_t size, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->map = data;
    st->size = size;
    if (size < 8) {
        snprintf(err, errlen, "truncated: %zu bytes, shorter than the 8-byte header length", size);
        return -1;
    }
    uint64_t hl = nn_rd64(data);
    if (hl > size - 8) {
        snprintf(err, errlen, "header length %llu runs past the end of the file (%zu bytes)",
                 (unsigned long long)hl, size);
        return -1;
    }
    if (hl > KT_ST_MAX_HEADER || hl < 2) {
        snprintf(err, errlen, "header length %llu is absurd", (unsigned long long)hl);
        return -1;
    }
    const uint8_t *base = data + 8 + hl;
    uint64_t dlen = size - 8 - hl;
    kt_json j;
    char msg[200];
    if (kt_json_parse(&j, (const char *)data + 8, hl, msg, sizeof msg)) {
        snprintf(err, errlen, "corrupted header (not JSON: %s)", msg);
        return -1;
    }
    const kt_jv *root = kt_json_root(&j);
    int rc = -1;
    if (root->type != KT_J_OBJ) {
        snprintf(err, errlen, "corrupted header: not a JSON object");
        goto out;
    }
    st->t = calloc(root->len ? root->len : 1, sizeof *st->t);
    if (!st->t) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (const kt_jv *e = kt_json_first(&j, root); e; e = kt_json_next(&j, e)) {
        if (e->key_len == 12 && memcmp(e->key, "__metadata__", 12) == 0)
            continue;
        kt_st_tensor *t = &st->t[st->n];
        const char *nm = e->key;
        int nl = (int)(e->key_len > 100 ? 100 : e->key_len);
        const kt_jv *dt = kt_json_get(&j, e, "dtype"), *sh = kt_json_get(&j, e, "shape");
        const kt_jv *off = kt_json_get(&j, e, "data_offsets");
        if (e->type != KT_J_OBJ || !dt || dt->type != KT_J_STR || !sh || sh->type != KT_J_ARR || !off ||
            off->type != KT_J_ARR || off->len != 2) {
            snprintf(err, errlen, "corrupted header: tensor '%.*s' lacks dtype, shape or data_offsets", nl, nm);
            goto out;
        }
        uint32_t esize = 0;
        for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
            if (kt_json_streq(dt, dtypes[k].name)) {
                t->dtype = dtypes[k].dtype;
                esize = dtypes[k].size;
                snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dtypes[k].name);
            }
        if (!esize) {
            snprintf(err, errlen, "tensor '%.*s' has an unknown dtype \"%.*s\"", nl, nm,
                     (int)(dt->len > 20 ? 20 : dt->len), dt->s);
            goto out;
        }
        if (sh->len > KT_ST_MAX_DIMS) {
            snprintf(err, errlen, "tensor '%.*s' has %u dimensions (at most %d)", nl, nm, sh->len, KT_ST_MAX_DIMS);
            goto out;
        }
        uint64_t count = 1;
        for (const kt_jv *d = kt_json_first(&j, sh); d; d = kt_json_next(&j, d)) {
            uint64_t x;
            if (kt_json_u64(d, &x) || (x && count > UINT64_MAX / 16 / x)) {
                snprintf(err, errlen, "tensor '%.*s' has a bad shape", nl, nm);
                goto out;
            }
            t->shape[t->ndim++] = x;
            count *= x;
        }
        uint64_t b0, b1;
        const kt_jv *o0 = kt_json_first(&j, off);
        if (kt_json_u64(o0, &b0) || kt_json_u64(kt_json_next(&j, o0), &b1) || b0 > b1) {
            snprintf(err, errlen, "tensor '%.*s' has bad data_offsets", nl, nm);
            goto out;
        }
        if (b1 > dlen) {
            snprintf(err, errlen, "tensor '%.*s' data [%llu, %llu) runs past the end of the data (%llu bytes): "
                     "truncated file?", nl, nm, (unsigned long long)b0, (unsigned long long)b1,
                     (unsigned long long)dlen);
            goto out;
        }
        if (b1 - b0 != count * esize) {
            snprintf(err, errlen, "tensor '%.*s': shape needs %llu bytes of %s but data_offsets give %llu", nl, nm,
                     (unsigned long long)(count * esize), t->dtype_name, (unsigned long long)(b1 - b0));
            goto out;
        }
        t->name = strndup(e->key, e->key_len);
        if (!t->name) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        t->count = count;
        t->data = base + b0;
        t->bytes = b1 - b0;
        st->n++;
    }
    /* Extents must not overlap (empty tensors overlap nothing). */
    kt_st_tensor *sorted = malloc((st->n ? st->n : 1) * sizeof *sorted);
    if (!sorted) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(sorted, st->t, st->n * sizeof *sorted);
    qsort(sorted, st->n, sizeof *sorted, cmp_begin);
    const kt_st_tensor *prev = NULL;
    for (uint32_t i = 0; i < st->n; i++) {
        if (!sorted[i].bytes)
            continue;
        if (prev && sorted[i].data < prev->data + prev->bytes) {
            snprintf(err, errlen, "tensors '%.100s' and '%.100s' overlap", prev->name, sorted[i].name);
            free(sorted);
            goto out;
        }
        prev = &sorted[i];
    }
    free(sorted);
    rc = 0;
out:
    kt_json_free(&j);
    if (rc) {
        for (uint32_t i = 0; i < st->n; i++)
            free(st->t[i].name);
        free(st->t);
        st->t = NULL;
        st->n = 0;
    }
    return rc;
}

int kt_st_open(kt_st *st, const char *path, char *err, size_t errlen)
{
    const uint8_t *d;
    size_t size;
    memset(st, 0, sizeof *st);
    if (kt_map(path, &d, &size)) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    char msg[400];
    if (kt_st_parse(st, d, size, msg, sizeof msg)) {
        snprintf(err, errlen, "%s: %s", path, msg);
        kt_unmap(d, size);
        return -1;
    }
    st->mapped = 1;
    return 0;
}

const kt_st_tensor *kt_st_find(const kt_st *st, const char *name)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

int kt_st_read_f32(const kt_st_tensor *t, float *dst, size_t n)
{
    if (t->count != n)
        return -1;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case KT_ST_F32: {
            uint32_t b = nn_rd32(p + 4 * i);
            memcpy(&dst[i], &b, 4);
            break;
        }
        case KT_ST_F16: dst[i] = kt_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        case KT_ST_BF16: dst[i] = kt_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        default: return -1;
        }
    }
    return 0;
}
