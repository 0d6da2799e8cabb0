/* The privacy filter (see privacy.h for the rules). One left-to-right pass: at each
 * position try an e-mail, a phone number, then a listed name; otherwise copy one
 * character. Boundaries look at the input, never at what was written. */
#include <string.h>

#include "privacy.h"

const char *fw_privacy_strerror(int status)
{
    switch (status) {
    case FW_PRIV_OK: return "ok";
    case FW_PRIV_E_SPACE: return "buffer too small";
    case FW_PRIV_E_INVAL: return "invalid argument";
    case FW_PRIV_E_NAME: return "a name is longer than 64 bytes";
    default: return "unknown status";
    }
}

/* ---- characters ---------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *s;
    size_t len;
} text;

static int ascii_alnum(unsigned c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }
static int ascii_digit(unsigned c) { return c >= '0' && c <= '9'; }
static unsigned ascii_lower(unsigned c) { return c >= 'A' && c <= 'Z' ? c | 32 : c; }

/* The code point at i and its length in bytes; an invalid or cut sequence is one byte
 * with code point 0xFFFFFFFF (not a letter). */
static uint32_t decode(const text *t, size_t i, size_t *n)
{
    unsigned b = t->s[i];
    *n = 1;
    if (b < 0x80) return b;
    size_t k = b >= 0xF0 && b < 0xF8 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
    if (k == 0 || i + k > t->len) return 0xFFFFFFFFu;
    uint32_t cp = b & (0x7Fu >> k);
    for (size_t j = 1; j < k; j++) {
        unsigned c = t->s[i + j];
        if ((c & 0xC0) != 0x80) return 0xFFFFFFFFu;
        cp = cp << 6 | (c & 0x3F);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0xFFFFFFFFu;
    *n = k;
    return cp;
}

/* Non-ASCII letters without Unicode tables: everything but the punctuation blocks. */
static int cp_letter(uint32_t cp)
{
    if (cp < 0x80) return ascii_alnum(cp) || cp == '_';
    if (cp == 0xFFFFFFFFu || cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return 0;
    if (cp >= 0x2000 && cp <= 0x206F) return 0;
    if (cp >= 0x3000 && cp <= 0x303F) return 0;
    if ((cp >= 0xFF00 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20)) return 0;
    return 1;
}

/* Is the character that starts at i a word character (letter, digit, '_')? n: its length. */
static int word_at(const text *t, size_t i, size_t *n)
{
    size_t k;
    if (i >= t->len) {
        if (n) *n = 0;
        return 0;
    }
    int w = cp_letter(decode(t, i, &k));
    if (n) *n = k;
    return w;
}

/* Is the character that ends just before i a word character? */
static int word_before(const text *t, size_t i)
{
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && (t->s[j] & 0xC0) == 0x80) j--;
    size_t n;
    int w = cp_letter(decode(t, j, &n));
    return j + n == i ? w : 0;   /* a stray continuation byte is not a letter */
}

/* ---- e-mail -------------------------------------------------------------------------------- */

static int local_char(const text *t, size_t i, size_t *n)
{
    unsigned c = t->s[i];
    *n = 1;
    if (c < 0x80) return ascii_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
    return word_at(t, i, n);
}

static int label_char(const text *t, size_t i, size_t *n)
{
    unsigned c = t->s[i];
    *n = 1;
    if (c < 0x80) return ascii_alnum(c) || c == '-';
    return word_at(t, i, n);
}

/* An address starting at i (the caller checked that i starts a word): its end, or 0. */
static size_t match_email(const text *t, size_t i)
{
    size_t p = i, n;
    if (t->s[p] == '.') return 0;
    /* RFC 5321 caps the local part at 64 bytes; the cap also keeps the pass linear. */
    while (p < t->len && p - i <= 64 && t->s[p] != '@' && local_char(t, p, &n)) p += n;
    if (p == i || p - i > 64 || p >= t->len || t->s[p] != '@') return 0;
    size_t at = ++p;
    /* Labels separated by single dots; a label neither starts nor ends with '-'. At most
     * 255 bytes of domain (RFC 1035) are looked at. */
    size_t end = 0, labels = 0, last_len = 0;
    int last_letter = 0;
    while (p < t->len) {
        size_t s = p;
        int letter = 0;
        while (p < t->len && p - at < 255 && label_char(t, p, &n)) {
            letter |= t->s[p] != '-' && !ascii_digit(t->s[p]);
            p += n;
        }
        size_t e = p;
        while (e > s && t->s[e - 1] == '-') e--;          /* a trailing hyphen stays outside */
        if (e == s || t->s[s] == '-') break;
        labels++;
        end = e;
        last_len = e - s;
        last_letter = letter;
        if (e != p || p + 1 >= t->len || t->s[p] != '.' || !label_char(t, p + 1, &n)) break;
        p++;
    }
    if (labels < 2 || last_len < 2 || !last_letter) return 0;
    if (word_at(t, end, NULL)) return 0;
    return end;
}

/* ---- phone --------------------------------------------------------------------------------- */

/* A separator at i: its length (no-break space is two bytes), or 0. */
static size_t phone_sep(const text *t, size_t i)
{
    unsigned c = t->s[i];
    if (c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')') return 1;
    if (c == 0xC2 && i + 1 < t->len && t->s[i + 1] == 0xA0) return 2;
    return 0;
}

static size_t match_phone(const text *t, size_t i)
{
    size_t p = i;
    int lead = 0;
    if (t->s[p] == '+') {
        lead = 1;
        p++;
    } else if (t->s[p] == '(') {
        lead = 1;
    } else if (p + 1 < t->len && t->s[p] == '0' && t->s[p + 1] == '0') {
        lead = 1;
    }
    unsigned digits = 0, dots = 0;
    int sep_kind = -1;        /* without a lead: the one separator character allowed */
    size_t end = 0;
    while (p < t->len) {
        if (ascii_digit(t->s[p])) {
            while (p < t->len && ascii_digit(t->s[p])) { p++; digits++; }
            end = p;
            if (digits > 15) return 0;
            continue;
        }
        /* Up to two separators between groups. */
        size_t q = p, k, count = 0;
        int mixed = 0;
        unsigned d = 0;
        while (q < t->len && count < 3 && (k = phone_sep(t, q)) != 0) {
            int kind = k == 2 ? 0xA0 : t->s[q];
            if (!lead) {
                if (sep_kind < 0) sep_kind = kind;
                else if (sep_kind != kind) mixed = 1;
            }
            d += t->s[q] == '.';
            q += k;
            count++;
        }
        if (count == 0 || count > 2 || mixed || q >= t->len || !ascii_digit(t->s[q])) break;
        if (!lead && count != 1) break;
        dots += d;
        p = q;
    }
    if (end == 0) return 0;
    if (digits < (lead ? 7u : 9u) || digits > 15 || dots == 1) return 0;
    if (end < t->len && (word_at(t, end, NULL) || t->s[end] == '@')) return 0;
    return end;
}

/* ---- names --------------------------------------------------------------------------------- */

static size_t match_name(const fw_privacy_names *nm, const text *t, size_t i)
{
    size_t best = 0;
    for (uint32_t k = 0; k < nm->n; k++) {
        size_t l = nm->len[k];
        if (l <= best || i + l > t->len) continue;
        const unsigned char *a = (const unsigned char *)nm->buf + nm->off[k], *b = t->s + i;
        size_t j = 0;
        while (j < l && ascii_lower(a[j]) == ascii_lower(b[j])) j++;
        if (j == l && !word_at(t, i + l, NULL)) best = l;
    }
    return best;
}

int fw_privacy_names_parse(fw_privacy_names *names, const char *txt, size_t len, uint32_t *bad_line)
{
    if (!names || (!txt && len)) return FW_PRIV_E_INVAL;
    names->n = 0;
    size_t used = 0;
    uint32_t line = 0;
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && txt[e] != '\n') e++;
        line++;
        size_t s = p, f = e;
        p = e + 1;
        while (s < f && (txt[s] == ' ' || txt[s] == '\t' || txt[s] == '\r')) s++;
        while (f > s && (txt[f - 1] == ' ' || txt[f - 1] == '\t' || txt[f - 1] == '\r')) f--;
        if (s == f || txt[s] == '#') continue;
        int rc = FW_PRIV_OK;
        if (f - s > FW_PRIV_NAME_BYTES || memchr(txt + s, '\0', f - s)) rc = FW_PRIV_E_NAME;
        else if (names->n >= FW_PRIV_NAMES_MAX || used + (f - s) + 1 > sizeof names->buf) rc = FW_PRIV_E_SPACE;
        if (rc) {
            names->n = 0;
            if (bad_line) *bad_line = line;
            return rc;
        }
        memcpy(names->buf + used, txt + s, f - s);
        names->buf[used + (f - s)] = '\0';
        names->off[names->n] = (uint16_t)used;
        names->len[names->n] = (uint8_t)(f - s);
        names->n++;
        used += f - s + 1;
    }
    return FW_PRIV_OK;
}

/* ---- the pass ------------------------------------------------------------------------------ */

size_t fw_privacy_bound(size_t len) { return len * 6 + 1; }   /* a 1-byte name becomes "[name]" */

int fw_privacy_redact(const fw_privacy_cfg *cfg, const char *in, size_t len, char *out, size_t cap,
                      size_t *out_len, fw_privacy_counts *counts)
{
    if (!cfg || (!in && len) || !out || !cap || !out_len || !counts) return FW_PRIV_E_INVAL;
    memset(counts, 0, sizeof *counts);
    text t = { (const unsigned char *)in, len };
    size_t o = 0, i = 0;
    while (i < len) {
        const char *ph = NULL;
        size_t end = 0;
        uint32_t *cnt = NULL;
        int start = !word_before(&t, i);
        unsigned c = t.s[i];
        if (start && (cfg->classes & FW_PRIV_EMAIL) && word_at(&t, i, NULL)) {
            size_t e = match_email(&t, i);
            if (e) { end = e; ph = "[email]"; cnt = &counts->email; }
        }
        /* A phone may not follow a digit or a dot either ("1.5551234567"). */
        if (!ph && start && (cfg->classes & FW_PRIV_PHONE) && (c == '+' || c == '(' || ascii_digit(c)) &&
            !(i > 0 && (t.s[i - 1] == '.' || t.s[i - 1] == '+'))) {
            size_t e = match_phone(&t, i);
            if (e) { end = e; ph = "[phone]"; cnt = &counts->phone; }
        }
        if (!ph && start && (cfg->classes & FW_PRIV_NAME) && cfg->names && word_at(&t, i, NULL)) {
            size_t l = match_name(cfg->names, &t, i);
            if (l) { end = i + l; ph = "[name]"; cnt = &counts->name; }
        }
        const char *src;
        size_t n;
        if (ph) {
            src = ph;
            n = strlen(ph);
            (*cnt)++;
            i = end;
        } else {
            src = in + i;
            decode(&t, i, &n);
            i += n;
        }
        if (o + n + 1 > cap) {
            out[0] = '\0';
            *out_len = 0;
            memset(counts, 0, sizeof *counts);
            return FW_PRIV_E_SPACE;
        }
        memcpy(out + o, src, n);
        o += n;
    }
    out[o] = '\0';
    *out_len = o;
    return FW_PRIV_OK;
}
