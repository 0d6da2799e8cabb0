/* The privacy filter: what is redacted and what is not, per class, at the ends of the
 * text, in international formats and in UTF-8; the counts; the names list; buffers that
 * are too small; the bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "privacy.h"

static fw_privacy_names names;

static int setup(void **st)
{
    (void)st;
    static const char list[] = "# people the filter hides\n"
                               "Lily\n"
                               "  Tom \r\n"
                               "\n"
                               "Anna\n"
                               "Anna Smith\n"
                               "Zoë\n"
                               "José\n";
    uint32_t bad = 0;
    assert_int_equal(fw_privacy_names_parse(&names, list, sizeof list - 1, &bad), FW_PRIV_OK);
    return 0;
}

/* Redacts in with every class and checks the output and the counts. */
static void expect(const char *in, const char *want, uint32_t email, uint32_t phone, uint32_t name)
{
    char out[1024];
    size_t n = 12345;
    fw_privacy_counts c;
    fw_privacy_cfg cfg = { .classes = FW_PRIV_ALL, .names = &names };
    int rc = fw_privacy_redact(&cfg, in, strlen(in), out, sizeof out, &n, &c);
    if (rc != FW_PRIV_OK) fail_msg("'%s': %s", in, fw_privacy_strerror(rc));
    if (strcmp(out, want) != 0) fail_msg("'%s'\n  gave '%s'\nwanted '%s'", in, out, want);
    assert_int_equal(n, strlen(want));
    if (c.email != email || c.phone != phone || c.name != name)
        fail_msg("'%s': counts email %u phone %u name %u, wanted %u %u %u", in, c.email, c.phone, c.name, email,
                 phone, name);
}

static void test_names_parse(void **st)
{
    (void)st;
    assert_int_equal(names.n, 6);
    assert_string_equal(names.buf + names.off[1], "Tom");     /* blanks and CR trimmed */
    assert_int_equal(names.len[1], 3);
    assert_int_equal(names.len[4], strlen("Zoë"));
    /* Too long: the line is reported and nothing is kept. */
    static fw_privacy_names nm;
    char text[200];
    memset(text, 'x', sizeof text);
    memcpy(text, "ok\n", 3);
    text[150] = '\n';
    uint32_t bad = 0;
    assert_int_equal(fw_privacy_names_parse(&nm, text, 151, &bad), FW_PRIV_E_NAME);
    assert_int_equal(bad, 2);
    assert_int_equal(nm.n, 0);
    /* Too many. */
    static char many[FW_PRIV_NAMES_MAX * 6 + 16];
    size_t k = 0;
    for (int i = 0; i <= FW_PRIV_NAMES_MAX; i++) k += (size_t)snprintf(many + k, sizeof many - k, "n%d\n", i);
    assert_int_equal(fw_privacy_names_parse(&nm, many, k, &bad), FW_PRIV_E_SPACE);
    assert_int_equal(bad, FW_PRIV_NAMES_MAX + 1);
    /* Empty is fine. */
    assert_int_equal(fw_privacy_names_parse(&nm, "", 0, NULL), FW_PRIV_OK);
    assert_int_equal(nm.n, 0);
}

static void test_email(void **st)
{
    (void)st;
    expect("mail bob@example.com today", "mail [email] today", 1, 0, 0);
    /* At the very start and the very end of the text. */
    expect("bob@example.com", "[email]", 1, 0, 0);
    expect("write to x.y+tag@mail.example.co.uk", "write to [email]", 1, 0, 0);
    /* A full stop, comma or bracket after an address stays. */
    expect("It is bob@example.com.", "It is [email].", 1, 0, 0);
    expect("(bob@example.com), or <a_b%c@ex-ample.org>", "([email]), or <[email]>", 2, 0, 0);
    expect("mailto:bob@example.com?subject=x", "mailto:[email]?subject=x", 1, 0, 0);
    expect("a.b@c.de;f@g.hi", "[email];[email]", 2, 0, 0);
    /* Leading dots are not part of the local part; a trailing hyphen is not part of the domain. */
    expect("..bob@example.com", "..[email]", 1, 0, 0);
    expect("bob@example.com-", "[email]-", 1, 0, 0);
    /* Not addresses. */
    expect("@handle and bob@ and @example.com", "@handle and bob@ and @example.com", 0, 0, 0);
    expect("bob@localhost", "bob@localhost", 0, 0, 0);
    expect("bob@example.c", "bob@example.c", 0, 0, 0);
    expect("bob@1.2", "bob@1.2", 0, 0, 0);
    expect("bob@.com bob@-x.com", "bob@.com bob@-x.com", 0, 0, 0);
    expect("a@b@c", "a@b@c", 0, 0, 0);
    /* UTF-8: non-ASCII letters belong to the address, punctuation does not. */
    expect("José.Núñez@correo.es", "[email]", 1, 0, 0);
    expect("用户@例子.广告", "[email]", 1, 0, 0);
    expect("«bob@example.com»", "«[email]»", 1, 0, 0);
    expect("“bob@example.com”", "“[email]”", 1, 0, 0);
    expect("メール：bob@example.jp。", "メール：[email]。", 1, 0, 0);
    /* A name inside an address is part of the address. */
    expect("lily.smith@example.com", "[email]", 1, 0, 0);
    /* A local part over 64 bytes is not an address. */
    char longl[100], want[100];
    memset(longl, 'a', 70);
    memcpy(longl + 70, "@example.com", 13);
    strcpy(want, longl);
    expect(longl, want, 0, 0, 0);
}

static void test_phone(void **st)
{
    (void)st;
    /* International formats. */
    expect("call +44 20 7946 0958 now", "call [phone] now", 0, 1, 0);
    expect("+1 (555) 123-4567", "[phone]", 0, 1, 0);
    expect("+1-555-123-4567.", "[phone].", 0, 1, 0);
    expect("+49 30 1234567", "[phone]", 0, 1, 0);
    expect("+33 1 23 45 67 89", "[phone]", 0, 1, 0);
    expect("+44 (0)20 7946 0958", "[phone]", 0, 1, 0);
    expect("0049 30 1234567", "[phone]", 0, 1, 0);
    expect("+81-3-1234-5678", "[phone]", 0, 1, 0);
    expect("+358401234567", "[phone]", 0, 1, 0);
    expect("+33\xC2\xA0" "1\xC2\xA0" "23\xC2\xA0" "45\xC2\xA0" "67\xC2\xA0" "89", "[phone]", 0, 1, 0);  /* no-break spaces */
    /* National formats (one separator kind, 9..15 digits). */
    expect("(555) 123-4567", "[phone]", 0, 1, 0);
    expect("555-123-4567", "[phone]", 0, 1, 0);
    expect("555.123.4567", "[phone]", 0, 1, 0);
    expect("07700 900123", "[phone]", 0, 1, 0);
    expect("ring 0301234567, please", "ring [phone], please", 0, 1, 0);
    /* Not phones: too short, dates and times, decimals, inside words, too long. */
    expect("555-1234", "555-1234", 0, 0, 0);
    expect("on 2024-01-15 10:30", "on 2024-01-15 10:30", 0, 0, 0);
    expect("pi is 3.14159265358", "pi is 3.14159265358", 0, 0, 0);
    expect("ID12345678901 and 12345678901x", "ID12345678901 and 12345678901x", 0, 0, 0);
    expect("1234567890123456", "1234567890123456", 0, 0, 0);
    expect("+12", "+12", 0, 0, 0);
    expect("v1.2345678901", "v1.2345678901", 0, 0, 0);
    expect("1,234,567,890 people", "1,234,567,890 people", 0, 0, 0);
    /* Two in a row, and one at the very end. */
    expect("+44 20 7946 0958 / +1 555 123 4567", "[phone] / [phone]", 0, 2, 0);
    expect("x 555 123 4567", "x [phone]", 0, 1, 0);
}

static void test_names(void **st)
{
    (void)st;
    expect("Lily and Tom went out.", "[name] and [name] went out.", 0, 0, 2);
    /* Whole words only: substrings of other words stay. */
    expect("Tomorrow Atom Tomb Lilypad lily-white", "Tomorrow Atom Tomb Lilypad [name]-white", 0, 0, 1);
    expect("Tom's hat", "[name]'s hat", 0, 0, 1);
    expect("TOM, tom", "[name], [name]", 0, 0, 2);
    expect("Tom_1 Tom1 1Tom", "Tom_1 Tom1 1Tom", 0, 0, 0);
    /* The longest listed name wins. */
    expect("Anna Smith met Anna.", "[name] met [name].", 0, 0, 2);
    expect("Anna Smithson", "[name] Smithson", 0, 0, 1);
    /* UTF-8: a name followed or preceded by a non-ASCII letter is part of another word. */
    expect("Tomás and Zoë", "Tomás and [name]", 0, 0, 1);
    expect("éTom", "éTom", 0, 0, 0);
    expect("José's", "[name]'s", 0, 0, 1);
    expect("“Tom”—Lily…", "“[name]”—[name]…", 0, 0, 2);
    expect("Zoëy", "Zoëy", 0, 0, 0);
    /* At both ends. */
    expect("Tom", "[name]", 0, 0, 1);
    expect("Lily", "[name]", 0, 0, 1);
}

static void test_mixed_and_counts(void **st)
{
    (void)st;
    expect("Lily (lily@example.com, +44 20 7946 0958) wrote to Tom at tom@example.org or 555-123-4567.",
           "[name] ([email], [phone]) wrote to [name] at [email] or [phone].", 2, 2, 2);
    expect("", "", 0, 0, 0);
    expect("nothing to see", "nothing to see", 0, 0, 0);
    /* Invalid UTF-8 is copied as it is. */
    expect("\xFF\xC3 Tom \xE2\x82", "\xFF\xC3 [name] \xE2\x82", 0, 0, 1);
}

static void test_classes(void **st)
{
    (void)st;
    const char *in = "Tom: tom@example.org, +1 555 123 4567";
    char out[128];
    size_t n;
    fw_privacy_counts c;
    fw_privacy_cfg cfg = { .classes = FW_PRIV_PHONE, .names = &names };
    assert_int_equal(fw_privacy_redact(&cfg, in, strlen(in), out, sizeof out, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, "Tom: tom@example.org, [phone]");
    assert_int_equal(c.phone, 1);
    assert_int_equal(c.email + c.name, 0);
    cfg.classes = FW_PRIV_NAME | FW_PRIV_EMAIL;
    assert_int_equal(fw_privacy_redact(&cfg, in, strlen(in), out, sizeof out, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, "[name]: [email], +1 555 123 4567");
    cfg.names = NULL;   /* no list: names stay */
    assert_int_equal(fw_privacy_redact(&cfg, in, strlen(in), out, sizeof out, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, "Tom: [email], +1 555 123 4567");
    cfg.classes = 0;
    assert_int_equal(fw_privacy_redact(&cfg, in, strlen(in), out, sizeof out, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, in);
    assert_int_equal(fw_privacy_total(&c), 0);
}

static void test_buffers(void **st)
{
    (void)st;
    fw_privacy_cfg cfg = { .classes = FW_PRIV_ALL, .names = &names };
    char out[64];
    size_t n;
    fw_privacy_counts c;
    /* Exactly enough, then one byte short (the placeholder is longer than "Tom"). */
    assert_int_equal(fw_privacy_redact(&cfg, "hi Tom", 6, out, 10, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, "hi [name]");
    assert_int_equal(fw_privacy_redact(&cfg, "hi Tom", 6, out, 9, &n, &c), FW_PRIV_E_SPACE);
    assert_string_equal(out, "");
    assert_int_equal(n, 0);
    assert_int_equal(fw_privacy_total(&c), 0);
    /* Not NUL-terminated input: only len bytes are read ("Tomorrow" cut to "Tom"). */
    assert_int_equal(fw_privacy_redact(&cfg, "Tomorrow", 3, out, sizeof out, &n, &c), FW_PRIV_OK);
    assert_string_equal(out, "[name]");
    assert_int_equal(fw_privacy_redact(NULL, "x", 1, out, sizeof out, &n, &c), FW_PRIV_E_INVAL);
    assert_int_equal(fw_privacy_redact(&cfg, "x", 1, NULL, 8, &n, &c), FW_PRIV_E_INVAL);
    assert_int_equal(fw_privacy_redact(&cfg, "x", 1, out, 0, &n, &c), FW_PRIV_E_INVAL);
    /* The bound holds for the worst case: one-byte names between separators. */
    static fw_privacy_names one;
    assert_int_equal(fw_privacy_names_parse(&one, "A\n", 2, NULL), FW_PRIV_OK);
    fw_privacy_cfg c1 = { .classes = FW_PRIV_NAME, .names = &one };
    char in[41], big[300];
    for (int i = 0; i < 40; i++) in[i] = i % 2 ? ' ' : 'A';
    in[40] = '\0';
    assert_true(fw_privacy_bound(40) <= sizeof big);
    assert_int_equal(fw_privacy_redact(&c1, in, 40, big, fw_privacy_bound(40), &n, &c), FW_PRIV_OK);
    assert_int_equal(c.name, 20);
    assert_true(n + 1 <= fw_privacy_bound(40));
    assert_string_equal(fw_privacy_strerror(FW_PRIV_E_SPACE), "buffer too small");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_parse),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_mixed_and_counts),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_buffers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
