/*
 * A strict JSON reader and a small writer, for request, command and telemetry payloads.
 * No allocation: the reader fills a caller's token array, the writer a caller's buffer.
 * libc only, so kvmesh-monitor reads metrics with the code that defines them.
 *
 * Reading (RFC 8259, strictly: one value, UTF-8 checked, no trailing commas, no
 * comments, nesting at most FW_JSON_MAX_DEPTH):
 *
 *     fw_json_tok t[64];
 *     char err[80];
 *     int n = fw_json_parse(buf, len, t, 64, err, sizeof err);   // < 0: err says why
 *     int v = fw_json_get(buf, t, 0, "prompt");                  // index, or -1
 *     char prompt[256];
 *     if (v >= 0 && t[v].type == FW_JSON_STRING) fw_json_string(buf, &t[v], prompt, sizeof prompt);
 *     for (int k = fw_json_first(t, 0); k >= 0; k = fw_json_next(t, 0, k)) ...   // keys
 *
 * Writing: fw_jw appends to a fixed buffer and remembers overflow, so a caller checks
 * once at the end.
 *
 *     fw_jw w;  fw_jw_init(&w, out, sizeof out);
 *     fw_jw_raw(&w, "{");  fw_jw_key(&w, "id");  fw_jw_str(&w, id, strlen(id));
 *     fw_jw_raw(&w, ",");  fw_jw_key(&w, "n");   fw_jw_u64(&w, 3);  fw_jw_raw(&w, "}");
 *     if (fw_jw_done(&w) < 0) ...overflow...
 */
#ifndef FW_JSON_H
#define FW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_JSON_MAX_DEPTH 16

typedef enum {
    FW_JSON_NULL = 0,
    FW_JSON_BOOL,
    FW_JSON_NUMBER,
    FW_JSON_STRING,
    FW_JSON_ARRAY,
    FW_JSON_OBJECT,
} fw_json_type;

/* One value. Objects are followed by their members as key (STRING) and value tokens;
 * arrays by their elements. start/end are byte offsets into the input; a string's span
 * excludes the quotes. skip is the number of tokens in the value's subtree, itself
 * included, so the next sibling of token i is i + skip. */
typedef struct {
    uint8_t type;
    bool truth;            /* BOOL */
    uint32_t start, end;
    uint32_t size;         /* OBJECT: members; ARRAY: elements */
    uint32_t skip;
} fw_json_tok;

/* Parses s[0, len). Returns the number of tokens (token 0 is the root), or a negative
 * value with a message in err ("at byte N: ..."): FW_JSON_E_FULL when the text needs
 * more than max tokens (a caller with a heap may retry with more), -1 when it is not
 * JSON. */
#define FW_JSON_E_FULL (-2)
int fw_json_parse(const char *s, size_t len, fw_json_tok *t, int max, char *err, size_t errlen);

/* Object members: the index of the first key of object `obj`, and of the key after key
 * `key`; -1 at the end. A member's value is at key + 1. */
int fw_json_first(const fw_json_tok *t, int obj);
int fw_json_next(const fw_json_tok *t, int obj, int key);

/* True when string token k equals the NUL-terminated name (after unescaping). */
bool fw_json_eq(const char *s, const fw_json_tok *k, const char *name);

/* The value of member `name` of object `obj`, or -1 (also when obj is no object). */
int fw_json_get(const char *s, const fw_json_tok *t, int obj, const char *name);

/* Unescapes a string token into out (NUL-terminated, UTF-8). Returns its length, or -1
 * when it does not fit in cap - 1 bytes. */
int fw_json_string(const char *s, const fw_json_tok *k, char *out, size_t cap);

/* A NUMBER token as a non-negative integer (no fraction or exponent). 0 or -1. */
int fw_json_u64(const char *s, const fw_json_tok *k, uint64_t *out);

/* ---- writer --------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
    bool overflow;
} fw_jw;

void fw_jw_init(fw_jw *w, char *buf, size_t cap);
void fw_jw_raw(fw_jw *w, const char *text);
/* A JSON string from n bytes of UTF-8: quotes, backslashes and control characters are
 * escaped. Bytes that are not valid UTF-8 become U+FFFD, so the output is always JSON. */
void fw_jw_str(fw_jw *w, const char *p, size_t n);
/* "name": (name is a plain identifier, not escaped) */
void fw_jw_key(fw_jw *w, const char *name);
void fw_jw_u64(fw_jw *w, uint64_t v);
void fw_jw_i64(fw_jw *w, int64_t v);
/* A number with `decimals` digits after the point (0..6), rounded; NaN/inf become null. */
void fw_jw_fixed(fw_jw *w, double v, int decimals);
void fw_jw_bool(fw_jw *w, bool v);
/* The text length (NUL-terminated in buf), or -1 when something did not fit. */
int fw_jw_done(const fw_jw *w);

/* Length of the longest prefix of p[0, n) that is complete, valid UTF-8 up to an
 * incomplete sequence at its very end (so a token stream can hold back a character
 * split between tokens). */
size_t fw_utf8_complete(const uint8_t *p, size_t n);

#endif
