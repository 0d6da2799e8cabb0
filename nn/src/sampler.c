/*
 * Sampling in fixed point. Probabilities are Q30 from nn_exp_q16_q30 over
 * (logit - max) / temperature; a 32-bit random number picks a point in their sum.
 */
#include <string.h>

#include "nn_fixed.h"
#include "nn_sampler.h"

uint32_t nn_rng_u32(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* The first index of the largest value. A running best index carries a branch from
 * one element to the next (92 us over SmolLM2's 49,152 logits, every greedy token);
 * here the largest value comes from 16 independent lanes, which the compiler turns
 * into vector max instructions, and then the first block of 16 holding it is searched. */
uint32_t nn_argmax_i32(const int32_t *v, uint32_t n)
{
    int32_t lane[16];
    for (uint32_t j = 0; j < 16; j++)
        lane[j] = INT32_MIN;
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (uint32_t j = 0; j < 16; j++)
            lane[j] = v[i + j] > lane[j] ? v[i + j] : lane[j];
    int32_t m = INT32_MIN;
    for (uint32_t j = 0; j < 16; j++)
        m = lane[j] > m ? lane[j] : m;
    for (; i < n; i++)
        m = v[i] > m ? v[i] : m;
    for (i = 0; i + 16 <= n; i += 16) {
        int hit = 0;
        for (uint32_t j = 0; j < 16; j++)
            hit |= v[i + j] == m;
        if (hit)
            break;
    }
    for (; i < n; i++)
        if (v[i] == m)
            return i;
    return 0;
}

size_t nn_sampler_arena_bytes(uint32_t vocab)
{
    nn_arena a;
    nn_arena_init(&a, NULL, 0);
    nn_arena_alloc(&a, (size_t)vocab * sizeof(int32_t), 64);
    nn_arena_alloc(&a, (size_t)vocab * sizeof(int32_t), 64);
    nn_arena_alloc(&a, (size_t)vocab * sizeof(nn_prob_index), 64);
    return nn_arena_needed(&a);
}

nn_status nn_sampler_init(nn_sampler *s, uint32_t vocab, int32_t temp_q16, int32_t topp_q16,
                          uint64_t seed, nn_arena *a)
{
    if (!s || !a || vocab == 0 || temp_q16 < 0)
        return NN_E_ARG;
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->temp_q16 = temp_q16;
    s->topp_q16 = topp_q16;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;   /* xorshift must not start at 0 */
    s->probs = nn_arena_alloc(a, (size_t)vocab * sizeof(int32_t), 64);
    s->probs2 = nn_arena_alloc(a, (size_t)vocab * sizeof(int32_t), 64);
    s->cand = nn_arena_alloc(a, (size_t)vocab * sizeof(nn_prob_index), 64);
    if (!s->probs || !s->probs2 || !s->cand)
        return NN_E_NOMEM;
    return NN_OK;
}

/* Higher probability first; the lower id first among equals (a total order). */
static int before(const nn_prob_index *a, const nn_prob_index *b)
{
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

/*
 * Heap sort by `before`: no recursion, no allocation, deterministic. The heap keeps the
 * element that sorts last on top, so moving the top to the end leaves the array in
 * `before` order (best first).
 */
static void sift(nn_prob_index *v, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&v[m], &v[l]))
            m = l;
        if (r < n && before(&v[m], &v[r]))
            m = r;
        if (m == i)
            return;
        nn_prob_index tmp = v[i];
        v[i] = v[m];
        v[m] = tmp;
        i = m;
    }
}

static void sort_desc(nn_prob_index *v, uint32_t n)
{
    for (uint32_t i = n / 2; i-- > 0;)
        sift(v, n, i);
    for (uint32_t end = n; end > 1; end--) {
        nn_prob_index tmp = v[0];
        v[0] = v[end - 1];
        v[end - 1] = tmp;
        sift(v, end - 1, 0);
    }
}

/* Unnormalised softmax numerators of logits / temperature into p (Q30); returns the sum. */
static int64_t softmax_num(const nn_sampler *s, const int32_t *logits, int32_t *p)
{
    uint32_t n = s->vocab;
    int32_t lmax = logits[nn_argmax_i32(logits, n)];
    int64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t z = ((int64_t)logits[i] - lmax) * 65536 / s->temp_q16;   /* Q16, <= 0 */
        p[i] = nn_exp_q16_q30(z);
        sum += p[i];
    }
    return sum;
}

int nn_sampler_verify(nn_sampler *s, const int32_t *target, const int32_t *draft, uint32_t token,
                      uint32_t *correction)
{
    uint32_t n = s->vocab;
    if (s->temp_q16 == 0 || token >= n) {
        *correction = nn_argmax_i32(target, n);
        return *correction == token;
    }
    int64_t sp = softmax_num(s, target, s->probs), sq = softmax_num(s, draft, s->probs2);
    /* Accept when u < P(x) / Q(x), with P = probs / sp and Q = probs2 / sq; u in [0, 1)
     * from 32 random bits: u * Q(x) < P(x)  <=>  r * probs2[x] * sp < probs[x] * sq * 2^32. */
    unsigned __int128 lhs = (unsigned __int128)nn_rng_u32(&s->rng) * (uint64_t)s->probs2[token] * (uint64_t)sp;
    unsigned __int128 rhs = ((unsigned __int128)(uint64_t)s->probs[token] * (uint64_t)sq) << 32;
    if (lhs < rhs) {
        *correction = token;
        return 1;
    }
    /* Residual max(0, P - Q) on a common denominator sp * sq: probs * sq - probs2 * sp. */
    unsigned __int128 total = 0;
    for (uint32_t i = 0; i < n; i++) {
        __int128 d = (__int128)s->probs[i] * sq - (__int128)s->probs2[i] * sp;
        total += d > 0 ? (unsigned __int128)d : 0;
    }
    if (total == 0) {                  /* P == Q exactly: any sample of P will do */
        *correction = nn_argmax_i32(target, n);
        return 0;
    }
    /* total < 2^100 (vocab <= 2^20): multiply by 32 random bits in two halves. */
    uint64_t r = nn_rng_u32(&s->rng);
    unsigned __int128 target_mass = (total >> 32) * r + (((total & 0xffffffffu) * r) >> 32), cdf = 0;
    for (uint32_t i = 0; i < n; i++) {
        __int128 d = (__int128)s->probs[i] * sq - (__int128)s->probs2[i] * sp;
        if (d <= 0)
            continue;
        cdf += (unsigned __int128)d;
        if (cdf > target_mass) {
            *correction = i;
            return 0;
        }
    }
    *correction = nn_argmax_i32(target, n);
    return 0;
}

uint32_t nn_sampler_sample(nn_sampler *s, const int32_t *logits)
{
    uint32_t n = s->vocab;
    if (s->temp_q16 == 0)
        return nn_argmax_i32(logits, n);
    int64_t sum = softmax_num(s, logits, s->probs);
    uint64_t r = nn_rng_u32(&s->rng);
    if (s->topp_q16 <= 0 || s->topp_q16 >= 65536) {
        uint64_t target = (r * (uint64_t)sum) >> 32;
        int64_t cdf = 0;
        for (uint32_t i = 0; i < n; i++) {
            cdf += s->probs[i];
            if ((uint64_t)cdf > target)
                return i;
        }
        return n - 1;
    }
    /* Nucleus: drop tokens below (1 - p) / (n - 1) of the mass (they cannot be in the
     * nucleus), sort the rest, keep the smallest prefix whose mass exceeds p. */
    uint32_t nc = 0;
    __int128 cut = (__int128)(65536 - s->topp_q16) * sum;
    for (uint32_t i = 0; i < n; i++)
        if ((__int128)s->probs[i] * (n > 1 ? n - 1 : 1) * 65536 >= cut) {
            s->cand[nc].p = s->probs[i];
            s->cand[nc].id = i;
            nc++;
        }
    sort_desc(s->cand, nc);
    __int128 need = (__int128)s->topp_q16 * sum;
    int64_t mass = 0;
    uint32_t last = nc - 1;
    for (uint32_t i = 0; i < nc; i++) {
        mass += s->cand[i].p;
        if ((__int128)mass * 65536 > need) {
            last = i;
            break;
        }
    }
    uint64_t target = (r * (uint64_t)mass) >> 32;
    int64_t cdf = 0;
    for (uint32_t i = 0; i <= last; i++) {
        cdf += s->cand[i].p;
        if ((uint64_t)cdf > target)
            return s->cand[i].id;
    }
    return s->cand[last].id;
}

nn_status nn_parse_q16(const char *s, int32_t *out)
{
    if (!s || !out || !*s)
        return NN_E_ARG;
    uint64_t ip = 0, frac = 0, den = 1;
    int digits = 0;
    const char *c = s;
    for (; *c >= '0' && *c <= '9'; c++, digits++) {
        ip = ip * 10 + (uint64_t)(*c - '0');
        if (ip >= 32768)
            return NN_E_ARG;
    }
    if (*c == '.') {
        for (c++; *c >= '0' && *c <= '9'; c++, digits++)
            if (den < 1000000000ull) {
                frac = frac * 10 + (uint64_t)(*c - '0');
                den *= 10;
            }
    }
    if (*c != '\0' || digits == 0)
        return NN_E_ARG;
    uint64_t v = (ip << 16) + (frac * 65536 + den / 2) / den;
    if (v >= (32768ull << 16))
        return NN_E_ARG;
    *out = (int32_t)v;
    return NN_OK;
}
