/* The integer math against libm and 128-bit brute force. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_fixed.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void exp_matches_libm(void **st)
{
    (void)st;
    double worst = 0;
    for (int64_t d = 0; d > -(40ll << 16); d -= 997) {
        double want = exp((double)d / 65536.0);
        double got = nn_exp_q16_q30(d) / 1073741824.0;
        worst = fmax(worst, fabs(got - want));
    }
    assert_true(worst < 3e-9);             /* about 3 LSB of Q30 */
    assert_int_equal(nn_exp_q16_q30(0), 1 << 30);
    assert_int_equal(nn_exp_q16_q30(5), 1 << 30);          /* positive input clamps to 1 */
    assert_int_equal(nn_exp_q16_q30(-(65ll << 16)), 0);
    assert_int_equal(nn_exp_q16_q30(INT64_MIN / 2), 0);
}

static void sigmoid_and_silu(void **st)
{
    (void)st;
    for (int32_t x = -(30 << 16); x < (30 << 16); x += 4099) {
        double xr = x / 65536.0;
        double s = 1.0 / (1.0 + exp(-xr));
        assert_true(fabs(nn_sigmoid_q16_q30(x) / 1073741824.0 - s) < 3e-9);
        assert_true(fabs(nn_silu_q16(x) / 65536.0 - xr * s) < 2.0 / 65536.0);
    }
    assert_int_equal(nn_sigmoid_q16_q30(0), 1 << 29);
    assert_int_equal(nn_silu_q16(INT32_MIN) <= 0, 1);
}

static void sincos_matches_libm(void **st)
{
    (void)st;
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t t = i < 16 ? (uint64_t)i << 60 : rnd();      /* octant boundaries, then random */
        int32_t s, c;
        nn_sincos_q30(t, &s, &c);
        double a = ldexp((double)t, -64) * 2 * M_PI;
        worst = fmax(worst, fabs(s / 1073741824.0 - sin(a)));
        worst = fmax(worst, fabs(c / 1073741824.0 - cos(a)));
    }
    assert_true(worst < 2e-9);
    int32_t s, c;
    nn_sincos_q30(0, &s, &c);
    assert_int_equal(s, 0);
    assert_int_equal(c, 1 << 30);
    nn_sincos_q30(1ull << 62, &s, &c);                  /* a quarter turn */
    assert_int_equal(s, 1 << 30);
    assert_int_equal(c, 0);
}

static void isqrt_is_floor_sqrt(void **st)
{
    (void)st;
    uint64_t edge[] = { 0, 1, 2, 3, 4, 15, 16, 17, UINT64_MAX, 1ull << 62, (1ull << 32) - 1 };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        uint64_t r = nn_isqrt_u64(edge[i]);
        assert_true((unsigned __int128)r * r <= edge[i]);
        assert_true((unsigned __int128)(r + 1) * (r + 1) > edge[i]);
    }
    for (int i = 0; i < 100000; i++) {
        uint64_t x = rnd() >> (rnd() % 64);
        uint64_t r = nn_isqrt_u64(x);
        assert_true((unsigned __int128)r * r <= x);
        assert_true((unsigned __int128)(r + 1) * (r + 1) > x);
    }
}

static void mulshift_rounds_half_up_and_saturates(void **st)
{
    (void)st;
    for (int i = 0; i < 100000; i++) {
        int64_t acc = (int64_t)(rnd() >> (rnd() % 40)) * ((rnd() & 1) ? 1 : -1) / 2;
        uint32_t m = (uint32_t)rnd();
        int shift = (int)(rnd() % 70);
        __int128 p = (__int128)acc * m;
        __int128 want = shift ? (p + ((__int128)1 << (shift - 1))) >> shift : p;
        if (want > INT32_MAX) want = INT32_MAX;
        if (want < INT32_MIN) want = INT32_MIN;
        assert_int_equal(nn_mulshift_sat32(acc, m, shift), (int32_t)want);
    }
    assert_int_equal(nn_mulshift_sat32(3, 1, -2), 12);
    assert_int_equal(nn_mulshift_sat32(1ll << 40, 1u << 31, -1), INT32_MAX);
    assert_int_equal(nn_mulshift_sat32(-(1ll << 40), 1u << 31, 0), INT32_MIN);
    assert_int_equal(nn_mulshift_sat32(-3, 1, 1), -1);    /* -1.5 rounds half up to -1 */
    assert_int_equal(nn_mulshift_sat32(3, 1, 1), 2);
}

static void rshift_round(void **st)
{
    (void)st;
    assert_int_equal(nn_rshift_round_i64(5, 1), 3);
    assert_int_equal(nn_rshift_round_i64(-5, 1), -2);
    assert_int_equal(nn_rshift_round_i64(7, 0), 7);
    assert_int_equal(nn_rshift_round_i64(7, -2), 28);
    assert_true(nn_rshift_round_i64(INT64_MAX / 2, -3) == INT64_MAX);
    assert_int_equal(nn_rshift_round_i64(123, 200), 0);
    /* Against 128-bit arithmetic, across the edges of the 64-bit fast path (|v| < 2^61,
     * s <= 62) and beyond them. */
    static const int64_t edge[] = { (1ll << 61) - 1, 1ll << 61, -(1ll << 61), -(1ll << 61) - 1,
                                    INT64_MAX, INT64_MIN, 1, -1, 0 };
    for (int i = 0; i < 20000; i++) {
        int64_t v = i < 9 * 70 ? edge[i % 9] : (int64_t)rnd() >> (rnd() % 64);
        int sh = i < 9 * 70 ? 1 + i / 9 : 1 + (int)(rnd() % 70);
        int64_t want = (int64_t)(((__int128)v + ((__int128)1 << (sh - 1))) >> sh);
        if (sh > 100)
            want = 0;
        assert_true(nn_rshift_round_i64(v, sh) == want);
    }
}

static void quantise_to_int16(void **st)
{
    (void)st;
    int32_t x[7] = { 0, 1, -1, 40000, -70001, 32767, 12 };
    int16_t q[7];
    int t = nn_quant_i32_i16(x, 7, q);
    assert_int_equal(t, 2);                        /* 70001 needs 17 bits: shift by 2 */
    assert_int_equal(q[4], -17500);
    assert_int_equal(q[3], 10000);
    assert_int_equal(q[1], 0);                     /* 0.25 rounds to 0 */
    int32_t small[3] = { 5, -32767, 100 };
    assert_int_equal(nn_quant_i32_i16(small, 3, q), 0);
    assert_int_equal(q[1], -32767);
    int32_t edge[1] = { 65535 };                   /* rounds to 32768: clamps */
    assert_int_equal(nn_quant_i32_i16(edge, 1, q), 1);
    assert_int_equal(q[0], 32767);
    int64_t big[2] = { INT64_MIN + 1, 3 };
    int tb = nn_quant_i64_i16(big, 2, q);
    assert_int_equal(tb, 48);
    assert_int_equal(q[0], -32767);
    nn_scale s = nn_scale_pow2(-16);
    assert_int_equal(s.m, 1u << 31);
    assert_int_equal(s.e, 47);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exp_matches_libm),
        cmocka_unit_test(sigmoid_and_silu),
        cmocka_unit_test(sincos_matches_libm),
        cmocka_unit_test(isqrt_is_floor_sqrt),
        cmocka_unit_test(mulshift_rounds_half_up_and_saturates),
        cmocka_unit_test(rshift_round),
        cmocka_unit_test(quantise_to_int16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
