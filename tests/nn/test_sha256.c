/* SHA-256 against the FIPS 180-4 example vectors, and streaming in odd pieces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "nn_sha256.h"

static void hex(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void known_vectors(void **st)
{
    (void)st;
    static const struct { const char *msg; const char *want; } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t d[32];
        char h[65];
        nn_sha256_buf(v[i].msg, strlen(v[i].msg), d);
        hex(d, h);
        assert_string_equal(h, v[i].want);
    }
}

static void million_a_in_pieces(void **st)
{
    (void)st;
    static uint8_t a[1000000];
    memset(a, 'a', sizeof a);
    nn_sha256 s;
    nn_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < sizeof a) {          /* pieces of 1, 2, 3, ... bytes cross every block edge */
        size_t n = step < sizeof a - off ? step : sizeof a - off;
        nn_sha256_update(&s, a + off, n);
        off += n;
        step = step % 131 + 1;
    }
    uint8_t d[32];
    char h[65];
    nn_sha256_final(&s, d);
    hex(d, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(million_a_in_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
