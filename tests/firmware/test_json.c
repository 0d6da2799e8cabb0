/* The firmware's JSON reader and writer: strictness (what RFC 8259 forbids is refused),
 * member access, unescaping to UTF-8, the writer's escaping (always valid JSON, also
 * from bytes that are not UTF-8), and holding back a UTF-8 character split between
 * tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fw_json.h"

static int parse(const char *s, fw_json_tok *t, int max)
{
    char err[96];
    return fw_json_parse(s, strlen(s), t, max, err, sizeof err);
}

static void test_accepts_json(void **st)
{
    (void)st;
    static const char *const good[] = {
        "{}", "[]", "0", "-0", "1.5e-3", "\"\"", "true", "null", " {\"a\" : [1, 2, {\"b\": null}] } ",
        "\"\\u00e9\\ud83d\\ude00 \\\"\\\\\\/\\b\\f\\n\\r\\t\"", "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
    };
    fw_json_tok t[32];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int n = parse(good[i], t, 32);
        if (n < 1) fail_msg("refused valid JSON: %s", good[i]);
    }
}

static void test_refuses_what_json_forbids(void **st)
{
    (void)st;
    static const char *const bad[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "NaN",
        "tru", "nul", "\"abc", "\"a\nb\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "{} {}", "[1 2]",
        "{\"a\" 1}", "/* c */ {}", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
        "\"\xe0\x80\xaf\"", "[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]",
    };
    fw_json_tok t[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i], t, 64) >= 0) fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
    /* A value cut anywhere is refused. */
    const char *doc = "{\"id\":\"r1\",\"prompt\":\"hi\",\"sampling\":{\"temp\":0.5}}";
    for (size_t n = 0; n < strlen(doc); n++)
        assert_true(fw_json_parse(doc, n, t, 64, NULL, 0) < 0);
    /* Too many values for the token array: refused, not truncated, and told apart from
     * text that is not JSON (the one that fails first is reported). */
    assert_int_equal(parse("[1,2,3,4,5,6,7,8]", t, 4), FW_JSON_E_FULL);
    assert_int_equal(parse("[1,2,3,4,5,6,7,8]", t, 9), 9);
    assert_int_equal(parse("[1,2,]", t, 4), -1);
    assert_int_equal(parse("[1,2,3,4,]", t, 3), FW_JSON_E_FULL);
}

static void test_members_and_strings(void **st)
{
    (void)st;
    const char *s = "{\"id\":\"r\\u00e91\",\"n\":42,\"o\":{\"x\":[1,2]},\"big\":18446744073709551615,\"neg\":-1,\"f\":1.5}";
    fw_json_tok t[32];
    int n = parse(s, t, 32);
    assert_true(n > 0);
    assert_int_equal(t[0].type, FW_JSON_OBJECT);
    assert_int_equal(t[0].size, 6);
    int keys = 0;
    for (int k = fw_json_first(t, 0); k >= 0; k = fw_json_next(t, 0, k)) keys++;
    assert_int_equal(keys, 6);
    char out[16];
    int v = fw_json_get(s, t, 0, "id");
    assert_int_equal(fw_json_string(s, &t[v], out, sizeof out), 4);
    assert_string_equal(out, "r\xc3\xa9" "1");
    assert_int_equal(fw_json_string(s, &t[v], out, 4), -1);   /* does not fit */
    uint64_t u;
    assert_int_equal(fw_json_u64(s, &t[fw_json_get(s, t, 0, "n")], &u), 0);
    assert_int_equal(u, 42);
    assert_int_equal(fw_json_u64(s, &t[fw_json_get(s, t, 0, "big")], &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(fw_json_u64(s, &t[fw_json_get(s, t, 0, "neg")], &u), -1);
    assert_int_equal(fw_json_u64(s, &t[fw_json_get(s, t, 0, "f")], &u), -1);
    int o = fw_json_get(s, t, 0, "o");
    assert_int_equal(t[o].type, FW_JSON_OBJECT);
    assert_int_equal(t[fw_json_get(s, t, o, "x")].size, 2);
    assert_int_equal(fw_json_get(s, t, 0, "x"), -1);   /* members of the root only */
    assert_int_equal(fw_json_get(s, t, 0, "missing"), -1);
    assert_int_equal(fw_json_get(s, t, v, "id"), -1);  /* not an object */
}

static void test_writer_escapes(void **st)
{
    (void)st;
    char buf[256];
    fw_jw w;
    fw_jw_init(&w, buf, sizeof buf);
    const char text[] = "a\"b\\c\n\x01 \xc3\xa9 \xff end";
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "t");
    fw_jw_str(&w, text, sizeof text - 1);
    fw_jw_raw(&w, ",\"n\":");
    fw_jw_fixed(&w, 2.345, 2);
    fw_jw_raw(&w, ",\"z\":");
    fw_jw_fixed(&w, -0.0001, 2);
    fw_jw_raw(&w, "}");
    assert_true(fw_jw_done(&w) > 0);
    assert_string_equal(buf, "{\"t\":\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9 \xef\xbf\xbd end\",\"n\":2.35,\"z\":0}");
    fw_json_tok t[8];
    assert_true(parse(buf, t, 8) > 0);   /* whatever went in, JSON comes out */
    char small[8];
    fw_jw_init(&w, small, sizeof small);
    fw_jw_raw(&w, "0123456789");
    assert_int_equal(fw_jw_done(&w), -1);
}

static void test_utf8_hold_back(void **st)
{
    (void)st;
    const uint8_t euro[] = { 'a', 0xE2, 0x82, 0xAC };
    assert_int_equal(fw_utf8_complete(euro, 4), 4);
    assert_int_equal(fw_utf8_complete(euro, 3), 1);   /* hold back the split character */
    assert_int_equal(fw_utf8_complete(euro, 2), 1);
    const uint8_t bad[] = { 'a', 0xFF };
    assert_int_equal(fw_utf8_complete(bad, 2), 2);    /* not UTF-8: let it out (-> U+FFFD) */
    const uint8_t emoji[] = { 0xF0, 0x9F, 0x98 };
    assert_int_equal(fw_utf8_complete(emoji, 3), 0);
    const uint8_t surrogate[] = { 0xED, 0xA0 };       /* can never complete */
    assert_int_equal(fw_utf8_complete(surrogate, 2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_json),
        cmocka_unit_test(test_refuses_what_json_forbids),
        cmocka_unit_test(test_members_and_strings),
        cmocka_unit_test(test_writer_escapes),
        cmocka_unit_test(test_utf8_hold_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
