/*
 * The privacy filter: redacts e-mail addresses, phone numbers and listed names from a
 * text before it leaves the board (the text-level offload, textpeer.c), and counts what
 * it redacted per class. The values themselves are never reported. Pure: no I/O, no
 * allocation, no clock; caller buffers.
 *
 *     static fw_privacy_names names;                      // a few KiB: static, not stack
 *     fw_privacy_names_parse(&names, file_text, file_len, &bad_line);
 *     fw_privacy_cfg pc = { .classes = FW_PRIV_ALL, .names = &names };
 *     fw_privacy_counts c;
 *     size_t n;
 *     if (fw_privacy_redact(&pc, in, in_len, out, sizeof out, &n, &c) == FW_PRIV_OK)
 *         ...   // out: "Write to [email] or call [phone], [name]." (NUL-terminated)
 *
 * What counts as what (the tests in tests/firmware/test_privacy.c pin each rule down):
 *   - e-mail: local@domain. The local part is letters, digits and . _ % + -; the domain
 *     is at least two labels of letters, digits and -, separated by single dots, the last
 *     label two or more characters with a letter in it. A dot or hyphen that ends the
 *     domain (the end of a sentence) stays outside. Non-ASCII letters (UTF-8) count as
 *     letters on both sides, so internationalised addresses are redacted whole.
 *   - phone: digits in groups. With a leading '+', "00" or '(' the groups may be split by
 *     any of space, no-break space, - . / ( ) (at most two in a row) and 7..15 digits
 *     qualify (E.164 has at most 15); without one, every separator must be the same
 *     character and 9..15 digits qualify, so dates ("2024-01-15 10:30"), times and
 *     decimals ("3.14159265") are left alone. Dots need at least two ("555.123.4567").
 *     Neither end may touch a letter or a digit ("ID12345678901" is not a phone).
 *   - name: a listed name as a whole word, ASCII case ignored, non-ASCII bytes compared
 *     exactly. A word boundary is any character that is not a letter, digit or '_'; a
 *     non-ASCII letter (UTF-8) continues a word, so "Tom" is not found in "Tomás" or
 *     "Atom", but is in "Tom's". The longest listed name wins ("Anna Smith" over "Anna").
 *   A non-ASCII code point counts as a letter unless it is Latin-1 punctuation or
 *   symbols (below U+00C0, and U+00D7, U+00F7), General Punctuation (U+2000..U+206F), CJK
 *   punctuation (U+3000..U+303F) or fullwidth ASCII punctuation (U+FF00..U+FF0F,
 *   U+FF1A..U+FF20): a heuristic without Unicode tables, erring towards redacting more.
 *   Each match becomes a placeholder the peer's model can read as text: [email], [phone],
 *   [name]. Checks run in that order at each position: an address that contains a name
 *   is one e-mail.
 */
#ifndef FW_PRIVACY_H
#define FW_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FW_PRIV_OK = 0,
    FW_PRIV_E_SPACE = -1,       /* the output (or the names table) is too small */
    FW_PRIV_E_INVAL = -2,       /* a NULL argument */
    FW_PRIV_E_NAME = -3,        /* a listed name is empty after trimming, or too long */
} fw_privacy_status;

const char *fw_privacy_strerror(int status);

/* Classes, as bits of fw_privacy_cfg.classes. */
enum {
    FW_PRIV_EMAIL = 1u << 0,
    FW_PRIV_PHONE = 1u << 1,
    FW_PRIV_NAME = 1u << 2,
    FW_PRIV_ALL = FW_PRIV_EMAIL | FW_PRIV_PHONE | FW_PRIV_NAME,
};

#define FW_PRIV_NAMES_MAX 256       /* names in a list */
#define FW_PRIV_NAME_BYTES 64       /* longest name, bytes of UTF-8 */
#define FW_PRIV_NAMES_BYTES 8192    /* all names together */

/* A list of names, parsed once (start-up, reload) into the caller's storage. */
typedef struct {
    char buf[FW_PRIV_NAMES_BYTES];  /* the names, each NUL-terminated */
    uint16_t off[FW_PRIV_NAMES_MAX];
    uint8_t len[FW_PRIV_NAMES_MAX]; /* bytes, 1..FW_PRIV_NAME_BYTES */
    uint32_t n;
} fw_privacy_names;

typedef struct {
    unsigned classes;               /* FW_PRIV_* bits; 0 copies the text unchanged */
    const fw_privacy_names *names;  /* NULL: no names */
} fw_privacy_cfg;

typedef struct {
    uint32_t email, phone, name;    /* matches replaced, per class */
} fw_privacy_counts;

/* Parses a names file's text: one name per line, surrounding blanks trimmed, empty lines
 * and lines starting with '#' skipped. Returns FW_PRIV_OK, FW_PRIV_E_NAME (an over-long
 * name) or FW_PRIV_E_SPACE (over FW_PRIV_NAMES_MAX names or FW_PRIV_NAMES_BYTES); on
 * error *bad_line (optional) is the 1-based line and names holds nothing. */
int fw_privacy_names_parse(fw_privacy_names *names, const char *text, size_t len, uint32_t *bad_line);

/* Copies in[0, len) to out with every match of cfg's classes replaced by its placeholder,
 * NUL-terminates it, and sets *out_len (bytes before the NUL) and *counts. in need not be
 * NUL-terminated; it may hold any bytes (invalid UTF-8 is copied as it is). Returns
 * FW_PRIV_OK, FW_PRIV_E_INVAL, or FW_PRIV_E_SPACE when out (cap bytes with the NUL) is
 * too small; a placeholder can be longer than what it replaces, so allow
 * fw_privacy_bound(len). On error out holds an empty string and *counts zeros. */
int fw_privacy_redact(const fw_privacy_cfg *cfg, const char *in, size_t len, char *out, size_t cap,
                      size_t *out_len, fw_privacy_counts *counts);

/* An output size (with the NUL) that always suffices for len input bytes. */
size_t fw_privacy_bound(size_t len);

/* Total matches. */
static inline uint32_t fw_privacy_total(const fw_privacy_counts *c) { return c->email + c->phone + c->name; }

#endif
