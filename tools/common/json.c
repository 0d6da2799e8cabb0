/*
 * The tools' JSON tree (see json.h), built on the firmware's strict reader
 * (firmware/json.c, fw_json.h): one parser for both, so the tools accept exactly what
 * the device does. The reader fills a token array (grown until it fits); the tree
 * copies every string unescaped, and every number's text, into one buffer.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw_json.h"
#include "json.h"

typedef struct {
    kt_json *j;
    const char *text;
    const fw_json_tok *t;
    size_t strs_cap;
} tree;

/* Copies token k's unescaped string (or a number's text) into the buffer. */
static const char *put_str(tree *b, const fw_json_tok *k, uint32_t *len)
{
    kt_json *j = b->j;
    char *out = j->strs + j->strs_len;
    int n;
    if (k->type == FW_JSON_STRING) {
        n = fw_json_string(b->text, k, out, b->strs_cap - j->strs_len);
    } else {
        n = (int)(k->end - k->start);
        memcpy(out, b->text + k->start, (size_t)n);
        out[n] = '\0';
    }
    /* The buffer holds every token's raw length + 1, and unescaping never grows. */
    j->strs_len += (size_t)n + 1;
    *len = (uint32_t)n;
    return out;
}

/* Value token i into node idx; its children take the next nodes. Nesting is at most
 * FW_JSON_MAX_DEPTH, as the reader checked. */
static void build(tree *b, int i, uint32_t idx)
{
    const fw_json_tok *k = &b->t[i];
    kt_json *j = b->j;
    kt_jv *v = &j->v[idx];
    switch (k->type) {
    case FW_JSON_NULL: v->type = KT_J_NULL; return;
    case FW_JSON_BOOL: v->type = k->truth ? KT_J_TRUE : KT_J_FALSE; return;
    case FW_JSON_NUMBER: v->type = KT_J_NUM; v->s = put_str(b, k, &v->len); return;
    case FW_JSON_STRING: v->type = KT_J_STR; v->s = put_str(b, k, &v->len); return;
    default: break;
    }
    int obj = k->type == FW_JSON_OBJECT;
    v->type = obj ? KT_J_OBJ : KT_J_ARR;
    v->len = k->size;
    uint32_t prev = 0;
    for (uint32_t e = 0, c = (uint32_t)i + 1; e < k->size; e++) {
        const char *key = NULL;
        uint32_t key_len = 0;
        if (obj)
            key = put_str(b, &b->t[c++], &key_len);
        uint32_t ci = j->n++;
        if (prev)
            j->v[prev].next = ci;
        else
            j->v[idx].first = ci;
        j->v[ci].key = key;
        j->v[ci].key_len = key_len;
        build(b, (int)c, ci);
        c += b->t[c].skip;
        prev = ci;
    }
}

int kt_json_parse(kt_json *j, const char *text, size_t len, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    if (len > UINT32_MAX - 1) {
        snprintf(err, errlen, "the text is larger than 4 GiB");
        return -1;
    }
    fw_json_tok *t = NULL;
    int n = FW_JSON_E_FULL;
    for (size_t max = len / 8 + 16; n == FW_JSON_E_FULL; max *= 2) {
        fw_json_tok *nt = max <= INT_MAX ? realloc(t, max * sizeof *t) : NULL;
        if (!nt) {
            free(t);
            snprintf(err, errlen, "out of memory for %zu values", max);
            return -1;
        }
        t = nt;
        n = fw_json_parse(text, len, t, (int)max, err, errlen);
    }
    if (n < 0) {
        free(t);
        return -1;
    }
    size_t strs = 0;
    for (int i = 0; i < n; i++)
        if (t[i].type == FW_JSON_STRING || t[i].type == FW_JSON_NUMBER)
            strs += t[i].end - t[i].start + 1;
    j->v = calloc((size_t)n, sizeof *j->v);
    j->strs = malloc(strs ? strs : 1);
    if (!j->v || !j->strs) {
        free(t);
        kt_json_free(j);
        snprintf(err, errlen, "out of memory for %d values", n);
        return -1;
    }
    j->cap = (uint32_t)n;
    j->n = 1;
    tree b = { .j = j, .text = text, .t = t, .strs_cap = strs };
    build(&b, 0, 0);
    free(t);
    return 0;
}

void kt_json_free(kt_json *j)
{
    if (!j)
        return;
    free(j->v);
    free(j->strs);
    memset(j, 0, sizeof *j);
}

const kt_jv *kt_json_root(const kt_json *j) { return j->n ? &j->v[0] : NULL; }

const kt_jv *kt_json_first(const kt_json *j, const kt_jv *v)
{
    return v && (v->type == KT_J_ARR || v->type == KT_J_OBJ) && v->first ? &j->v[v->first] : NULL;
}

const kt_jv *kt_json_next(const kt_json *j, const kt_jv *v) { return v && v->next ? &j->v[v->next] : NULL; }

const kt_jv *kt_json_get(const kt_json *j, const kt_jv *o, const char *key)
{
    if (!o || o->type != KT_J_OBJ)
        return NULL;
    size_t kl = strlen(key);
    for (const kt_jv *e = kt_json_first(j, o); e; e = kt_json_next(j, e))
        if (e->key_len == kl && memcmp(e->key, key, kl) == 0)
            return e;
    return NULL;
}

int kt_json_num(const kt_jv *v, double *out)
{
    if (!v || v->type != KT_J_NUM)
        return -1;
    *out = strtod(v->s, NULL);   /* the reader checked the grammar; the text is NUL-terminated */
    return isfinite(*out) ? 0 : -1;
}

int kt_json_u64(const kt_jv *v, uint64_t *out)
{
    if (!v || v->type != KT_J_NUM || v->s[0] == '-' || v->len > 20)
        return -1;
    uint64_t x = 0;
    for (uint32_t i = 0; i < v->len; i++) {
        unsigned d = (unsigned char)v->s[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return -1;                           /* fraction, exponent or overflow */
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int kt_json_bool(const kt_jv *v, int *out)
{
    if (!v || (v->type != KT_J_TRUE && v->type != KT_J_FALSE))
        return -1;
    *out = v->type == KT_J_TRUE;
    return 0;
}

int kt_json_streq(const kt_jv *v, const char *s)
{
    return v && v->type == KT_J_STR && strlen(s) == v->len && memcmp(v->s, s, v->len) == 0;
}
