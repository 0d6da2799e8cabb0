/*
 * Pre-tokenizers of the byte-level BPE kind, hand-coded from their regular
 * expressions (alternatives are tried in order at each position, the first that
 * matches wins, as in the regex engines tokenizers and tiktoken use):
 *   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * \s is Unicode White_Space. A byte that is not valid UTF-8 is a character of its own
 * in none of the classes (so it is "other"), which keeps arbitrary bytes encodable.
 */
#include "tok_internal.h"

uint32_t nn_utf8_next(const uint8_t *s, uint32_t len, uint32_t *cp)
{
    uint8_t b = s[0];
    uint32_t n, c, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2; c = b & 0x1f; min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3; c = b & 0x0f; min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4; c = b & 0x07; min = 0x10000;
    } else {
        *cp = NN_UNI_INVALID;
        return 1;
    }
    if (n > len) {
        *cp = NN_UNI_INVALID;
        return 1;
    }
    for (uint32_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = NN_UNI_INVALID;
            return 1;
        }
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        *cp = NN_UNI_INVALID;
        return 1;
    }
    *cp = c;
    return n;
}

static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

enum { C_OTHER, C_LETTER, C_NUMBER, C_SPACE };

static int cls(uint32_t c)
{
    if (c == NN_UNI_INVALID)
        return C_OTHER;
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            return C_LETTER;
        if (c >= '0' && c <= '9')
            return C_NUMBER;
        return is_space(c) ? C_SPACE : C_OTHER;
    }
    if (is_space(c))
        return C_SPACE;
    if (nn_uni_is_letter(c))
        return C_LETTER;
    return nn_uni_is_number(c) ? C_NUMBER : C_OTHER;
}

/* The character at s[i] (i < len): its class and byte length. */
static int at(const uint8_t *s, uint32_t len, uint32_t i, uint32_t *cp, uint32_t *w)
{
    *w = nn_utf8_next(s + i, len - i, cp);
    return cls(*cp);
}

/* End of the run of class k starting at i (i itself is not checked). */
static uint32_t run(const uint8_t *s, uint32_t len, uint32_t i, int k)
{
    uint32_t cp, w;
    while (i < len && at(s, len, i, &cp, &w) == k)
        i += w;
    return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive. Returns the length or 0. */
static uint32_t contraction(const uint8_t *s, uint32_t len, int icase)
{
    if (len < 2 || s[0] != '\'')
        return 0;
    uint8_t a = s[1], b = len > 2 ? s[2] : 0;
    if (icase) {
        a = (uint8_t)(a >= 'A' && a <= 'Z' ? a | 0x20 : a);
        b = (uint8_t)(b >= 'A' && b <= 'Z' ? b | 0x20 : b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a whitespace character: the run, less its last character when a
 * non-space follows and the run has more than one character. */
static uint32_t spaces(const uint8_t *s, uint32_t len)
{
    uint32_t i = 0, last = 0, cp, w;
    while (i < len && at(s, len, i, &cp, &w) == C_SPACE) {
        last = i;
        i += w;
    }
    if (i < len && last > 0)
        return last;
    return i;
}

static uint32_t gpt2(const uint8_t *s, uint32_t len)
{
    uint32_t cp, w, w1 = 0, n = contraction(s, len, 0);
    if (n)
        return n;
    int k0 = at(s, len, 0, &cp, &w), k1 = -1;
    if (w < len)
        k1 = at(s, len, w, &cp, &w1);
    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
    if (s[0] == ' ' && (k1 == C_LETTER || k1 == C_NUMBER || k1 == C_OTHER))
        return run(s, len, w + w1, k1);
    if (k0 != C_SPACE)
        return run(s, len, w, k0);
    return spaces(s, len);
}

static uint32_t llama3(const uint8_t *s, uint32_t len)
{
    uint32_t cp, cp0, w, w1 = 0, n = contraction(s, len, 1);
    if (n)
        return n;
    int k0 = at(s, len, 0, &cp0, &w), k1 = -1;
    if (w < len)
        k1 = at(s, len, w, &cp, &w1);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 == C_LETTER)
        return run(s, len, w, C_LETTER);
    if (k1 == C_LETTER && k0 != C_NUMBER && cp0 != '\r' && cp0 != '\n')
        return run(s, len, w + w1, C_LETTER);
    /* \p{N}{1,3} */
    if (k0 == C_NUMBER) {
        uint32_t i = w;
        for (int k = 1; k < 3 && i < len && at(s, len, i, &cp, &w1) == C_NUMBER; k++)
            i += w1;
        return i;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    uint32_t i = 0;
    if (k0 == C_OTHER)
        i = run(s, len, w, C_OTHER);
    else if (s[0] == ' ' && k1 == C_OTHER)
        i = run(s, len, w + w1, C_OTHER);
    if (i) {
        while (i < len && (s[i] == '\r' || s[i] == '\n'))
            i++;
        return i;
    }
    /* k0 is whitespace: \s*[\r\n]+ ends after the run's last CR or LF, if any. */
    uint32_t end = 0;
    i = 0;
    while (i < len && at(s, len, i, &cp, &w1) == C_SPACE) {
        if (cp == '\r' || cp == '\n')
            end = i + 1;
        i += w1;
    }
    return end ? end : spaces(s, len);
}

uint32_t nn_pretok_next(uint32_t pretok, const uint8_t *s, uint32_t len)
{
    switch (pretok) {
    case NN_TOK_PRE_GPT2: return gpt2(s, len);
    case NN_TOK_PRE_LLAMA3: return llama3(s, len);
    default: return len;
    }
}
