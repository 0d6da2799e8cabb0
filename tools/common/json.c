/*
 * Strict JSON parser (see json.h). Recursive descent with a depth limit; every read
 * checks the end of the input first.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 256

typedef struct jp {
    kt_json *j;
    const unsigned char *p, *end, *start;
    char *err;
    size_t errlen;
    int failed;
} jp;

static int fail(jp *s, const char *what)
{
    if (!s->failed) {
        size_t line = 1, col = 1;
        for (const unsigned char *q = s->start; q < s->p && q < s->end; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        snprintf(s->err, s->errlen, "line %zu col %zu: %s", line, col, what);
        s->failed = 1;
    }
    return -1;
}

static void ws(jp *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int new_node(jp *s, uint32_t *idx)
{
    kt_json *j = s->j;
    if (j->n == j->cap) {
        if (j->cap >= UINT32_MAX / 2)
            return fail(s, "too many values");
        uint32_t cap = j->cap ? j->cap * 2 : 256;
        kt_jv *v = realloc(j->v, (size_t)cap * sizeof *v);
        if (!v)
            return fail(s, "out of memory");
        j->v = v;
        j->cap = cap;
    }
    memset(&j->v[j->n], 0, sizeof j->v[0]);
    *idx = j->n++;
    return 0;
}

static int hex4(jp *s, uint32_t *out)
{
    if (s->end - s->p < 4)
        return fail(s, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return fail(s, "bad \\u escape");
    }
    s->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | c >> 6);
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | c >> 12);
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | c >> 18);
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Length of a valid UTF-8 sequence at p (< end), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char b = p[0];
    size_t n;
    uint32_t c, min;
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2; c = b & 0x1f; min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3; c = b & 0x0f; min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4; c = b & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

/* Parses a string at s->p (the opening quote) into j->strs. */
static int string(jp *s, const char **out, uint32_t *out_len)
{
    kt_json *j = s->j;
    char *o = j->strs + j->strs_len, *o0 = o;
    s->p++;
    for (;;) {
        if (s->p >= s->end)
            return fail(s, "unterminated string");
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c < 0x20)
            return fail(s, "control character in string");
        if (c == '\\') {
            if (s->end - s->p < 2)
                return fail(s, "unterminated string");
            c = s->p[1];
            s->p += 2;
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                uint32_t u, lo;
                if (hex4(s, &u))
                    return -1;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return fail(s, "lone low surrogate in \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                        return fail(s, "lone high surrogate in \\u escape");
                    s->p += 2;
                    if (hex4(s, &lo))
                        return -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(s, "bad surrogate pair in \\u escape");
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                }
                /* An escape never takes more output than its 6 (or 12) input bytes. */
                o += put_utf8(o, u);
                break;
            }
            default:
                return fail(s, "bad escape in string");
            }
            continue;
        }
        size_t n = utf8_len(s->p, s->end);
        if (!n)
            return fail(s, "invalid UTF-8 in string");
        memcpy(o, s->p, n);
        o += n;
        s->p += n;
    }
    if ((size_t)(o - o0) > UINT32_MAX - 1)
        return fail(s, "string too long");
    *o++ = 0;
    *out = o0;
    *out_len = (uint32_t)(o - o0 - 1);
    j->strs_len = (size_t)(o - j->strs);
    return 0;
}

static int number(jp *s, uint32_t idx)
{
    const unsigned char *b = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return fail(s, "bad number");
    if (*s->p == '0') {
        s->p++;
        if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            return fail(s, "leading zero in number");
    } else {
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return fail(s, "bad fraction in number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return fail(s, "bad exponent in number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p - b > 4096)
        return fail(s, "number too long");
    /* Copied, so that values outlive the input text like strings do. */
    kt_json *j = s->j;
    size_t n = (size_t)(s->p - b);
    char *o = j->strs + j->strs_len;
    memcpy(o, b, n);
    o[n] = 0;
    j->strs_len += n + 1;
    kt_jv *v = &j->v[idx];
    v->type = KT_J_NUM;
    v->s = o;
    v->len = (uint32_t)n;
    return 0;
}

static int literal(jp *s, const char *word, uint32_t type, uint32_t idx)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, "unexpected character");
    s->p += n;
    s->j->v[idx].type = type;
    return 0;
}

static int value(jp *s, uint32_t idx, int depth);

static int container(jp *s, uint32_t idx, int depth, int obj)
{
    s->j->v[idx].type = obj ? KT_J_OBJ : KT_J_ARR;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
        s->p++;
        return 0;
    }
    uint32_t last = 0, count = 0;
    for (;;) {
        const char *key = NULL;
        uint32_t key_len = 0, child;
        ws(s);
        if (obj) {
            if (s->p >= s->end || *s->p != '"')
                return fail(s, "expected a member name");
            if (string(s, &key, &key_len))
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return fail(s, "expected ':'");
            s->p++;
            ws(s);
        }
        if (new_node(s, &child))
            return -1;
        s->j->v[child].key = key;
        s->j->v[child].key_len = key_len;
        if (value(s, child, depth + 1))
            return -1;
        if (last)
            s->j->v[last].next = child;
        else
            s->j->v[idx].first = child;
        last = child;
        if (count == UINT32_MAX)
            return fail(s, "too many members");
        count++;
        ws(s);
        if (s->p >= s->end)
            return fail(s, obj ? "unterminated object" : "unterminated array");
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p == (obj ? '}' : ']')) {
            s->p++;
            break;
        }
        return fail(s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    s->j->v[idx].len = count;
    return 0;
}

static int value(jp *s, uint32_t idx, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(s, "nested too deeply");
    ws(s);
    if (s->p >= s->end)
        return fail(s, "unexpected end of input");
    switch (*s->p) {
    case '{': return container(s, idx, depth, 1);
    case '[': return container(s, idx, depth, 0);
    case '"': {
        const char *str;
        uint32_t len;
        if (string(s, &str, &len))
            return -1;
        s->j->v[idx].type = KT_J_STR;
        s->j->v[idx].s = str;
        s->j->v[idx].len = len;
        return 0;
    }
    case 't': return literal(s, "true", KT_J_TRUE, idx);
    case 'f': return literal(s, "false", KT_J_FALSE, idx);
    case 'n': return literal(s, "null", KT_J_NULL, idx);
    default: return number(s, idx);
    }
}

int kt_json_parse(kt_json *j, const char *text, size_t len, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    jp s = { j, (const unsigned char *)text, (const unsigned char *)text + len, (const unsigned char *)text,
             err, errlen, 0 };
    /* Unescaped strings and copied numbers never take more than their source plus a
     * NUL each, and every NUL is paid for by a quote or a delimiter: 2 * len + 2 is
     * generous. */
    j->strs = malloc(2 * len + 2);
    uint32_t root;
    if (!j->strs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (new_node(&s, &root) || value(&s, root, 0))
        goto bad;
    ws(&s);
    if (s.p != s.end) {
        fail(&s, "unexpected data after the value");
        goto bad;
    }
    return 0;
bad:
    kt_json_free(j);
    return -1;
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
    char buf[4100];
    memcpy(buf, v->s, v->len);
    buf[v->len] = 0;
    errno = 0;
    *out = strtod(buf, NULL);
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
