/* Prompt chunks for split mode (collab_chunk_at): every prompt length and base size
 * is cut into pieces that add up to it, none over COLLAB_MAX_ROWS, all but the last a
 * whole number of the prefill kernels' token tiles, none left short of 4 rows; the
 * ramp at both ends; fixed sizes kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "collab.h"

/* Cuts P rows with base c; returns the number of pieces, sizes in out[]. */
static uint32_t cut(uint32_t c, int fixed, uint32_t P, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t done = 0; done < P; n++) {
        uint32_t k = collab_chunk_at(c, fixed, done, P - done, n);
        assert_true(k >= 1 && k <= P - done);
        assert_true(n < cap);
        out[n] = k;
        done += k;
    }
    return n;
}

static void tiles(void **st)
{
    (void)st;
    static const uint32_t in[] = { 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 19, 20, 21, 23, 24, 60, 63, 64 };
    static const uint32_t want[] = { 1, 2, 3, 4, 4, 8, 8, 12, 12, 16, 16, 16, 24, 24, 24, 24, 64, 64, 64 };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(collab_chunk_tiles(in[i]), want[i]);
}

static void every_length_and_size(void **st)
{
    (void)st;
    uint32_t k[2048];
    for (uint32_t c = 1; c <= COLLAB_MAX_ROWS; c++)
        for (uint32_t P = 1; P <= 700; P++) {
            uint32_t n = cut(c, 0, P, k, 2048), sum = 0;
            for (uint32_t j = 0; j < n; j++) {
                sum += k[j];
                assert_true(k[j] <= COLLAB_MAX_ROWS);
                if (c >= 4 && P >= 4)   /* a piece under 4 rows only as the whole prompt */
                    assert_true(k[j] >= 4 || n == 1);
                if (c >= 4 && j + 1 < n) {   /* all but the last: whole tiles */
                    assert_int_equal(k[j] % 4, 0);
                    assert_true(k[j] < 16 || k[j] % 8 == 0);
                }
            }
            assert_int_equal(sum, P);
        }
}

/* 113 rows at base 24 (issue 9's TTFT prompt): a ramp of 8 and 16, the base, then
 * halves of what is left, the last taking the rest. Before the tiles: 5, 10, 22, 22,
 * 22, 16, 8, 5, 3 at base 22. */
static void ramp(void **st)
{
    (void)st;
    uint32_t k[64];
    static const uint32_t want[] = { 8, 16, 24, 24, 24, 8, 9 };
    assert_int_equal(cut(24, 0, 113, k, 64), 7);
    for (uint32_t j = 0; j < 7; j++)
        assert_int_equal(k[j], want[j]);
    /* A prompt under two base chunks: no ramp, two halves in tiles. */
    assert_int_equal(cut(24, 0, 20, k, 64), 2);
    assert_int_equal(k[0], 12);
    assert_int_equal(k[1], 8);
    /* A small base: the ramp starts at a tile, not at c/4. */
    static const uint32_t small[] = { 4, 8, 8, 8, 8, 5 };
    assert_int_equal(cut(8, 0, 41, k, 64), 6);
    for (uint32_t j = 0; j < 6; j++)
        assert_int_equal(k[j], small[j]);
}

static void fixed_sizes(void **st)
{
    (void)st;
    uint32_t k[256];
    assert_int_equal(cut(5, 1, 23, k, 256), 5);   /* --chunk 5: 5 5 5 5 3 */
    assert_int_equal(k[0], 5);
    assert_int_equal(k[4], 3);
    assert_int_equal(cut(COLLAB_MAX_ROWS, 1, 130, k, 256), 3);   /* whole: 64 64 2 */
    assert_int_equal(k[2], 2);
    assert_int_equal(cut(1, 1, 7, k, 256), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(tiles), cmocka_unit_test(every_length_and_size),
                                        cmocka_unit_test(ramp), cmocka_unit_test(fixed_sizes) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
