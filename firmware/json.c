/* Strict JSON reader into a token array, and an escaping writer. See fw_json.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fw_json.h"

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0, n), 0 when invalid, or -k when p holds a
 * valid but incomplete start that needs k more bytes. */
static int utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    int len;
    uint32_t min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) {
            /* Incomplete: the bytes so far must still be a possible prefix. */
            if (len == 3 && n >= 2 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))) return 0;
            if (len == 4 && n >= 2 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))) return 0;
            return -(len - i);
        }
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t fw_utf8_complete(const uint8_t *p, size_t n)
{
    /* Only the last three bytes can start an incomplete sequence. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        size_t i = n - back;
        if ((p[i] & 0xC0) == 0x80) continue;   /* continuation: look further back */
        int r = utf8_seq(p + i, back);
        return r < 0 ? i : n;
    }
    return n;
}

/* ---- reader ------------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len, pos;
    fw_json_tok *t;
    int max, n;
    const char *why;
    bool full;   /* the failure is running out of tokens */
} jp;

static void ws(jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int fail(jp *p, const char *why)
{
    if (!p->why) p->why = why;
    return -1;
}

static int new_tok(jp *p, int type)
{
    if (p->n >= p->max) {
        p->full = !p->why;
        return fail(p, "too many values");
    }
    fw_json_tok *k = &p->t[p->n];
    memset(k, 0, sizeof *k);
    k->type = (uint8_t)type;
    k->start = (uint32_t)p->pos;
    return p->n++;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* A string starting at the opening quote; checks escapes and UTF-8. */
static int string(jp *p)
{
    int i = new_tok(p, FW_JSON_STRING);
    if (i < 0) return -1;
    p->pos++;
    p->t[i].start = (uint32_t)p->pos;
    while (p->pos < p->len) {
        uint8_t c = (uint8_t)p->s[p->pos];
        if (c == '"') {
            p->t[i].end = (uint32_t)p->pos;
            p->pos++;
            p->t[i].skip = 1;
            return i;
        }
        if (c < 0x20) return fail(p, "control character in a string");
        if (c == '\\') {
            if (p->pos + 1 >= p->len) break;
            char e = p->s[p->pos + 1];
            if (e == 'u') {
                uint32_t v, lo;
                if (p->pos + 6 > p->len || hex4(p->s + p->pos + 2, &v)) return fail(p, "bad \\u escape");
                p->pos += 6;
                if (v >= 0xDC00 && v <= 0xDFFF) return fail(p, "lone low surrogate");
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                        hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(p, "lone high surrogate");
                    p->pos += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') return fail(p, "bad escape");
            p->pos += 2;
            continue;
        }
        int r = utf8_seq((const uint8_t *)p->s + p->pos, p->len - p->pos);
        if (r <= 0) return fail(p, "invalid UTF-8");
        p->pos += (size_t)r;
    }
    return fail(p, "unterminated string");
}

static int number(jp *p)
{
    int i = new_tok(p, FW_JSON_NUMBER);
    if (i < 0) return -1;
    const char *s = p->s;
    size_t q = p->pos, n = p->len;
    if (q < n && s[q] == '-') q++;
    if (q < n && s[q] == '0') q++;
    else if (q < n && s[q] >= '1' && s[q] <= '9') while (q < n && s[q] >= '0' && s[q] <= '9') q++;
    else return fail(p, "bad number");
    if (q < n && s[q] == '.') {
        q++;
        if (!(q < n && s[q] >= '0' && s[q] <= '9')) return fail(p, "bad number");
        while (q < n && s[q] >= '0' && s[q] <= '9') q++;
    }
    if (q < n && (s[q] == 'e' || s[q] == 'E')) {
        q++;
        if (q < n && (s[q] == '+' || s[q] == '-')) q++;
        if (!(q < n && s[q] >= '0' && s[q] <= '9')) return fail(p, "bad number");
        while (q < n && s[q] >= '0' && s[q] <= '9') q++;
    }
    p->pos = q;
    p->t[i].end = (uint32_t)q;
    p->t[i].skip = 1;
    return i;
}

static int literal(jp *p, const char *word, int type, bool truth)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return fail(p, "unexpected character");
    int i = new_tok(p, type);
    if (i < 0) return -1;
    p->pos += n;
    p->t[i].end = (uint32_t)p->pos;
    p->t[i].truth = truth;
    p->t[i].skip = 1;
    return i;
}

static int value(jp *p, int depth);

static int container(jp *p, int depth, bool obj)
{
    if (depth >= FW_JSON_MAX_DEPTH) return fail(p, "nested too deep");
    int i = new_tok(p, obj ? FW_JSON_OBJECT : FW_JSON_ARRAY);
    if (i < 0) return -1;
    char close = obj ? '}' : ']';
    p->pos++;
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            ws(p);
            if (obj) {
                if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a member name");
                if (string(p) < 0) return -1;
                ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
                p->pos++;
                ws(p);
            }
            if (value(p, depth + 1) < 0) return -1;
            p->t[i].size++;
            ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; break; }
            return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    p->t[i].end = (uint32_t)p->pos;
    p->t[i].skip = (uint32_t)(p->n - i);
    return i;
}

static int value(jp *p, int depth)
{
    if (p->pos >= p->len) return fail(p, "unexpected end");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return container(p, depth, true);
    case '[': return container(p, depth, false);
    case '"': return string(p);
    case 't': return literal(p, "true", FW_JSON_BOOL, true);
    case 'f': return literal(p, "false", FW_JSON_BOOL, false);
    case 'n': return literal(p, "null", FW_JSON_NULL, false);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return number(p);
        return fail(p, "unexpected character");
    }
}

int fw_json_parse(const char *s, size_t len, fw_json_tok *t, int max, char *err, size_t errlen)
{
    jp p = { .s = s, .len = len, .t = t, .max = max };
    if (!s || !t || max < 1) {
        if (err && errlen) snprintf(err, errlen, "no input");
        return -1;
    }
    ws(&p);
    if (value(&p, 0) >= 0) {
        ws(&p);
        if (p.pos == p.len) return p.n;
        fail(&p, "text after the value");
    }
    if (err && errlen) snprintf(err, errlen, "at byte %zu: %s", p.pos, p.why ? p.why : "invalid");
    return p.full ? FW_JSON_E_FULL : -1;
}

int fw_json_first(const fw_json_tok *t, int obj)
{
    return t[obj].type == FW_JSON_OBJECT && t[obj].size ? obj + 1 : -1;
}

int fw_json_next(const fw_json_tok *t, int obj, int key)
{
    int next = key + 1 + (int)t[key + 1].skip;
    return next < obj + (int)t[obj].skip ? next : -1;
}

/* Decodes one (possibly escaped) character of a string token at *i into out (up to 4
 * bytes). Returns the byte count. The token was validated by the parser. */
static int unescape_one(const char *s, uint32_t *i, char out[4])
{
    char c = s[*i];
    if (c != '\\') {
        out[0] = c;
        (*i)++;
        return 1;
    }
    char e = s[*i + 1];
    if (e != 'u') {
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        out[0] = to[strchr(from, e) - from];
        *i += 2;
        return 1;
    }
    uint32_t v, lo;
    hex4(s + *i + 2, &v);
    *i += 6;
    if (v >= 0xD800 && v <= 0xDBFF) {
        hex4(s + *i + 2, &lo);
        *i += 6;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (v < 0x80) { out[0] = (char)v; return 1; }
    if (v < 0x800) { out[0] = (char)(0xC0 | v >> 6); out[1] = (char)(0x80 | (v & 0x3F)); return 2; }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12); out[1] = (char)(0x80 | ((v >> 6) & 0x3F)); out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18); out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F)); out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

int fw_json_string(const char *s, const fw_json_tok *k, char *out, size_t cap)
{
    if (k->type != FW_JSON_STRING || cap == 0) return -1;
    size_t n = 0;
    for (uint32_t i = k->start; i < k->end;) {
        char b[4];
        int m = unescape_one(s, &i, b);
        if (n + (size_t)m >= cap) return -1;
        memcpy(out + n, b, (size_t)m);
        n += (size_t)m;
    }
    out[n] = '\0';
    return (int)n;
}

bool fw_json_eq(const char *s, const fw_json_tok *k, const char *name)
{
    if (k->type != FW_JSON_STRING) return false;
    size_t n = 0, want = strlen(name);
    for (uint32_t i = k->start; i < k->end;) {
        char b[4];
        int m = unescape_one(s, &i, b);
        if (n + (size_t)m > want || memcmp(name + n, b, (size_t)m) != 0) return false;
        n += (size_t)m;
    }
    return n == want;
}

int fw_json_get(const char *s, const fw_json_tok *t, int obj, const char *name)
{
    for (int k = fw_json_first(t, obj); k >= 0; k = fw_json_next(t, obj, k))
        if (fw_json_eq(s, &t[k], name)) return k + 1;
    return -1;
}

int fw_json_u64(const char *s, const fw_json_tok *k, uint64_t *out)
{
    if (k->type != FW_JSON_NUMBER || k->end == k->start) return -1;
    uint64_t v = 0;
    for (uint32_t i = k->start; i < k->end; i++) {
        char c = s[i];
        uint64_t d = (uint64_t)(c - '0');
        if (c < '0' || c > '9' || v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---- writer ------------------------------------------------------------------------------- */

void fw_jw_init(fw_jw *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = cap == 0;
    if (cap) buf[0] = '\0';
}

static void put(fw_jw *w, const char *p, size_t n)
{
    if (w->overflow || w->len + n >= w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void fw_jw_raw(fw_jw *w, const char *text) { put(w, text, strlen(text)); }

void fw_jw_str(fw_jw *w, const char *p, size_t n)
{
    put(w, "\"", 1);
    const uint8_t *u = (const uint8_t *)p;
    for (size_t i = 0; i < n;) {
        uint8_t c = u[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *short_esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (short_esc) {
                put(w, short_esc, 2);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                put(w, esc, 6);
            }
            i++;
        } else if (c < 0x80) {
            put(w, (const char *)&u[i], 1);
            i++;
        } else {
            int r = utf8_seq(u + i, n - i);
            if (r > 0) {
                put(w, (const char *)&u[i], (size_t)r);
                i += (size_t)r;
            } else {
                put(w, "\xEF\xBF\xBD", 3);   /* U+FFFD for a byte that is not UTF-8 */
                i++;
            }
        }
    }
    put(w, "\"", 1);
}

void fw_jw_key(fw_jw *w, const char *name)
{
    put(w, "\"", 1);
    fw_jw_raw(w, name);
    put(w, "\":", 2);
}

void fw_jw_u64(fw_jw *w, uint64_t v)
{
    char b[24];
    put(w, b, (size_t)snprintf(b, sizeof b, "%llu", (unsigned long long)v));
}

void fw_jw_i64(fw_jw *w, int64_t v)
{
    char b[24];
    put(w, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)v));
}

void fw_jw_fixed(fw_jw *w, double v, int decimals)
{
    if (isnan(v) || isinf(v)) {
        fw_jw_raw(w, "null");
        return;
    }
    char b[48];
    int n = snprintf(b, sizeof b, "%.*f", decimals < 0 ? 0 : decimals > 6 ? 6 : decimals, v);
    if (n <= 0 || (size_t)n >= sizeof b) {
        fw_jw_raw(w, "null");
        return;
    }
    if (strcmp(b, "-0") == 0 || strspn(b, "-0.") == (size_t)n) {   /* -0.00 -> 0 */
        fw_jw_raw(w, "0");
        return;
    }
    put(w, b, (size_t)n);
}

void fw_jw_bool(fw_jw *w, bool v) { fw_jw_raw(w, v ? "true" : "false"); }

int fw_jw_done(const fw_jw *w) { return w->overflow ? -1 : (int)w->len; }
