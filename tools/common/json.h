/*
 * json.h: a small, strict JSON parser (RFC 8259) for the converters' config.json,
 * tokenizer.json and safetensors headers. Host-only: it allocates from the heap. The
 * grammar is the firmware's reader's (fw_json.h), which this builds on.
 *
 * The whole document becomes an array of nodes; strings are unescaped (and number texts
 * copied) into one buffer (valid UTF-8, NUL-terminated, embedded NULs kept in len), so
 * the input text may go away after parsing. Strict means: no comments,
 * no trailing commas, no leading zeros, no control characters or invalid UTF-8 in
 * strings, no lone surrogates, nothing after the value, nesting at most
 * FW_JSON_MAX_DEPTH (16) deep.
 *
 *     kt_json j;
 *     if (kt_json_parse(&j, text, len, err, sizeof err)) ...
 *     const kt_jv *v = kt_json_get(&j, kt_json_root(&j), "rope_theta");
 *     double theta;
 *     if (v && kt_json_num(v, &theta) == 0) ...
 *     for (const kt_jv *e = kt_json_first(&j, arr); e; e = kt_json_next(&j, e)) ...
 *     kt_json_free(&j);
 */
#ifndef KT_JSON_H
#define KT_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum kt_jtype { KT_J_NULL, KT_J_FALSE, KT_J_TRUE, KT_J_NUM, KT_J_STR, KT_J_ARR, KT_J_OBJ } kt_jtype;

typedef struct kt_jv {
    uint32_t type;       /* kt_jtype */
    uint32_t len;        /* string bytes, number text bytes, or number of children */
    uint32_t first;      /* first child (arrays, objects); 0 = none */
    uint32_t next;       /* next sibling; 0 = none */
    uint32_t key_len;
    const char *s;       /* string (unescaped) or number text, NUL-terminated */
    const char *key;     /* member name inside an object, else NULL */
} kt_jv;

typedef struct kt_json {
    kt_jv   *v;          /* v[0] is the root */
    uint32_t n, cap;
    char    *strs;       /* unescaped strings */
    size_t   strs_len;
} kt_json;

/* Parses text[0, len). Returns 0, or -1 with "at byte N: what" in err. */
int kt_json_parse(kt_json *j, const char *text, size_t len, char *err, size_t errlen);
void kt_json_free(kt_json *j);

const kt_jv *kt_json_root(const kt_json *j);
/* First member named key of object o (NULL if o is not an object or has none). */
const kt_jv *kt_json_get(const kt_json *j, const kt_jv *o, const char *key);
const kt_jv *kt_json_first(const kt_json *j, const kt_jv *v);
const kt_jv *kt_json_next(const kt_json *j, const kt_jv *v);

/* Typed reads: 0 on success, -1 on a wrong type (or a number that does not fit). */
int kt_json_num(const kt_jv *v, double *out);
int kt_json_u64(const kt_jv *v, uint64_t *out);     /* a non-negative integer */
int kt_json_bool(const kt_jv *v, int *out);
/* A string compared with s (NUL-terminated). */
int kt_json_streq(const kt_jv *v, const char *s);

#endif
