/* Fixed-point sampling: greedy, temperature (frequencies follow softmax), top-p cut. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn.h"

static uint8_t mem[1 << 16];

static void argmax_lowest_index_wins(void **st)
{
    (void)st;
    int32_t v[5] = { 3, 9, 9, -1, 2 };
    assert_int_equal(nn_argmax_i32(v, 5), 1);
    assert_int_equal(nn_argmax_i32(v, 1), 0);
    /* Longer than one 16-wide block, ragged lengths, ties across blocks, the extremes:
     * the first index of the largest value, as a running best index finds it. */
    static int32_t w[1000];
    uint32_t seed = 7;
    for (uint32_t n = 1; n <= 1000; n += 37) {
        for (uint32_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            w[i] = (int32_t)(seed >> 16) % 50 - 25;
            if (seed % 97 == 0)
                w[i] = INT32_MIN;
        }
        if (n > 40)
            w[n - 1] = w[n / 3] = 1000;   /* a tie: the earlier wins */
        uint32_t best = 0;
        for (uint32_t i = 1; i < n; i++)
            if (w[i] > w[best])
                best = i;
        assert_int_equal(nn_argmax_i32(w, n), best);
    }
    for (uint32_t i = 0; i < 40; i++)
        w[i] = INT32_MIN;
    assert_int_equal(nn_argmax_i32(w, 40), 0);
    w[39] = INT32_MAX;
    assert_int_equal(nn_argmax_i32(w, 40), 39);
}

static void greedy_at_zero_temperature(void **st)
{
    (void)st;
    nn_arena a;
    nn_arena_init(&a, mem, sizeof mem);
    nn_sampler s;
    assert_int_equal(nn_sampler_init(&s, 4, 0, 58982, 1, &a), NN_OK);
    int32_t lg[4] = { 0, 5 << 16, 7 << 16, 1 };
    for (int i = 0; i < 10; i++)
        assert_int_equal(nn_sampler_sample(&s, lg), 2);
}

static void frequencies_follow_softmax(void **st)
{
    (void)st;
    nn_arena a;
    nn_arena_init(&a, mem, sizeof mem);
    nn_sampler s;
    assert_int_equal(nn_sampler_init(&s, 4, 65536, 0, 42, &a), NN_OK);
    /* logits ln(1), ln(2), ln(3), ln(4): probabilities 0.1 0.2 0.3 0.4 */
    int32_t lg[4];
    for (int i = 0; i < 4; i++)
        lg[i] = (int32_t)lround(log(i + 1.0) * 65536);
    int count[4] = { 0 };
    const int N = 200000;
    for (int i = 0; i < N; i++)
        count[nn_sampler_sample(&s, lg)]++;
    for (int i = 0; i < 4; i++)
        assert_true(fabs(count[i] / (double)N - (i + 1) / 10.0) < 0.006);
    /* temperature 0.5 squares the odds: 1 4 9 16 over 30 */
    assert_int_equal(nn_sampler_init(&s, 4, 32768, 0, 43, &a), NN_OK);
    int c2[4] = { 0 };
    for (int i = 0; i < N; i++)
        c2[nn_sampler_sample(&s, lg)]++;
    for (int i = 0; i < 4; i++)
        assert_true(fabs(c2[i] / (double)N - (i + 1) * (i + 1) / 30.0) < 0.006);
}

static void top_p_cuts_the_tail(void **st)
{
    (void)st;
    nn_arena a;
    nn_arena_init(&a, mem, sizeof mem);
    nn_sampler s;
    /* probabilities 0.5 0.3 0.15 0.05 (as logits); top-p 0.7 keeps the first two */
    double p[4] = { 0.5, 0.3, 0.15, 0.05 };
    int32_t lg[4];
    for (int i = 0; i < 4; i++)
        lg[3 - i] = (int32_t)lround(log(p[i]) * 65536);      /* reversed ids: sorting matters */
    assert_int_equal(nn_sampler_init(&s, 4, 65536, 45875, 5, &a), NN_OK);
    int count[4] = { 0 };
    for (int i = 0; i < 100000; i++)
        count[nn_sampler_sample(&s, lg)]++;
    assert_int_equal(count[0] + count[1], 0);
    assert_true(fabs(count[3] / 100000.0 - 0.625) < 0.01);    /* 0.5 / 0.8 */
}

static void same_seed_same_sequence(void **st)
{
    (void)st;
    nn_arena a;
    nn_arena_init(&a, mem, sizeof mem);
    nn_sampler s1, s2;
    assert_int_equal(nn_sampler_init(&s1, 64, 52428, 58982, 99, &a), NN_OK);
    assert_int_equal(nn_sampler_init(&s2, 64, 52428, 58982, 99, &a), NN_OK);
    int32_t lg[64];
    for (int i = 0; i < 64; i++)
        lg[i] = (i * 7919) % 300000 - 150000;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(nn_sampler_sample(&s1, lg), nn_sampler_sample(&s2, lg));
}

/* Drafting from Q and verifying against P yields tokens distributed as P. */
static void speculative_verify_keeps_the_target_distribution(void **st)
{
    (void)st;
    nn_arena a;
    nn_arena_init(&a, mem, sizeof mem);
    nn_sampler s, drafter;
    assert_int_equal(nn_sampler_init(&s, 4, 65536, 0, 11, &a), NN_OK);
    assert_int_equal(nn_sampler_init(&drafter, 4, 65536, 0, 12, &a), NN_OK);
    double P[4] = { 0.1, 0.2, 0.3, 0.4 }, Q[4] = { 0.4, 0.3, 0.2, 0.1 };
    int32_t lp[4], lq[4];
    for (int i = 0; i < 4; i++) {
        lp[i] = (int32_t)lround(log(P[i]) * 65536);
        lq[i] = (int32_t)lround(log(Q[i]) * 65536);
    }
    int count[4] = { 0 }, accepted = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        uint32_t x = nn_sampler_sample(&drafter, lq), out;
        int ok = nn_sampler_verify(&s, lp, lq, x, &out);
        accepted += ok;
        assert_true(!ok || out == x);
        count[out]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(fabs(count[i] / (double)N - P[i]) < 0.006);
    /* Acceptance rate is sum min(P, Q) = 0.1 + 0.2 + 0.2 + 0.1 = 0.6. */
    assert_true(fabs(accepted / (double)N - 0.6) < 0.006);
    /* Greedy: accepted iff the target's argmax, else that argmax as the correction. */
    nn_sampler g;
    assert_int_equal(nn_sampler_init(&g, 4, 0, 0, 1, &a), NN_OK);
    uint32_t c;
    assert_int_equal(nn_sampler_verify(&g, lp, lq, 3, &c), 1);
    assert_int_equal(nn_sampler_verify(&g, lp, lq, 0, &c), 0);
    assert_int_equal(c, 3);
}

static void parse_q16(void **st)
{
    (void)st;
    int32_t v;
    assert_int_equal(nn_parse_q16("0.9", &v), NN_OK);
    assert_int_equal(v, 58982);
    assert_int_equal(nn_parse_q16("1", &v), NN_OK);
    assert_int_equal(v, 65536);
    assert_int_equal(nn_parse_q16(".25", &v), NN_OK);
    assert_int_equal(v, 16384);
    assert_int_equal(nn_parse_q16("0", &v), NN_OK);
    assert_int_equal(v, 0);
    assert_int_equal(nn_parse_q16("2.", &v), NN_OK);
    assert_int_equal(v, 131072);
    const char *bad[] = { "", ".", "-1", "1e-3", "0.5x", "abc", "40000", " 1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(nn_parse_q16(bad[i], &v), NN_E_ARG);
}

static void arena_too_small(void **st)
{
    (void)st;
    static uint8_t tiny[100];
    nn_arena a;
    nn_arena_init(&a, tiny, sizeof tiny);
    nn_sampler s;
    assert_int_equal(nn_sampler_init(&s, 4096, 65536, 0, 1, &a), NN_E_NOMEM);
    assert_int_equal(nn_arena_needed(&a), nn_sampler_arena_bytes(4096));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(argmax_lowest_index_wins),
        cmocka_unit_test(greedy_at_zero_temperature),
        cmocka_unit_test(frequencies_follow_softmax),
        cmocka_unit_test(top_p_cuts_the_tail),
        cmocka_unit_test(same_seed_same_sequence),
        cmocka_unit_test(speculative_verify_keeps_the_target_distribution),
        cmocka_unit_test(parse_q16),
        cmocka_unit_test(arena_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
