/*
 * Private: inline bodies of the roundings and quantisation steps the hot loops call per
 * element, group or output. fixed.c's exported nn_rshift_round_i64() and
 * nn_mulshift_sat32() are these same functions, and its nn_act8_quant() uses the act8
 * helpers, so there is one definition of each.
 */
#ifndef NN_FIXED_INLINE_H
#define NN_FIXED_INLINE_H

#include <stdint.h>
#include "nn_fixed.h"

/* log2(e) in Q32. */
#define NN_LOG2E_Q32 6196328019ll

/*
 * 2^-f for f in [0, 1): least-squares fit of degree 8 on Chebyshev nodes, coefficients
 * in Q31 (c0 = 1.0). Horner in Q31 stays within 1.6e-9 of the true value. Used by
 * nn_exp_q16_q30() and by the SIMD softmax kernels, which must give the same bits.
 */
static const int64_t nn_exp2_neg_poly_q31[9] = {
    2147483648ll, -1488522236ll, 515882490ll, -119194112ll, 20654494ll,
    -2862538ll, 329366ll, -31303ll, 2014ll,
};

/*
 * nn_act8_quant's step for a group whose largest |a| is mx: the smallest s with
 * round-half-up(mx / 2^s) <= 127. Below s0 = bitlen(mx) - 7, mx / 2^s >= 128; at
 * s0 + 1 the rounded value is at most 2^bitlen / 2^(s0 + 1) = 64; so s0 or s0 + 1.
 */
static inline int nn_act8_shift_inl(uint32_t mx)
{
    if (mx <= 127)
        return 0;
    int s = 32 - __builtin_clz(mx) - 7;
    return s + (((mx + (1u << (s - 1))) >> s) > 127);
}

/* nn_act8_quant's rounding of one group's values i..n-1 with step s: q[i] = round-half-up
 * of |x[i]| / 2^s with the sign put back; returns their sum. */
static inline int32_t nn_act8_round_inl(const int16_t *x, uint32_t i, uint32_t n, int s, int8_t *q)
{
    int32_t tot = 0;
    for (; i < n; i++) {
        int32_t v = x[i] < 0 ? -x[i] : x[i];
        int32_t r = (v + ((1 << s) >> 1)) >> s;
        r = x[i] < 0 ? -r : r;
        q[i] = (int8_t)r;
        tot += r;
    }
    return tot;
}

/* nn_quant_*_i16's shift for a largest magnitude amax: |round(x / 2^t)| <= 2^15. */
static inline int nn_quant_shift_inl(uint64_t amax)
{
    int t = nn_bitlen_u64(amax) - 15;
    return t > 0 ? t : 0;
}

/* An int16 activation: saturated to +-32767 (never -32768, so negation stays exact). */
static inline int16_t nn_clamp_i16_inl(int64_t v)
{
    return (int16_t)(v > 32767 ? 32767 : v < -32767 ? -32767 : v);
}

/* round(v / 2^s) for s > 0; v * 2^-s saturating for s <= 0. */
static inline int64_t nn_rshift_round_i64_inl(int64_t v, int s)
{
    if (s > 0) {
        if (s > 100)
            return 0;
        if (s <= 62 && v >= -(1ll << 61) && v < (1ll << 61))   /* the common case, in 64 bits */
            return (v + (1ll << (s - 1))) >> s;
        return (int64_t)(((__int128)v + ((__int128)1 << (s - 1))) >> s);
    }
    if (s == 0 || v == 0)
        return v;
    if (s < -62)
        return v > 0 ? INT64_MAX : INT64_MIN;
    __int128 r = (__int128)v * ((__int128)1 << -s);    /* a multiply: shifting a negative is UB */
    return r > INT64_MAX ? INT64_MAX : r < INT64_MIN ? INT64_MIN : (int64_t)r;
}

/* round(acc * m / 2^shift), saturated to int32. */
static inline int32_t nn_mulshift_sat32_inl(int64_t acc, uint32_t m, int shift)
{
    __int128 p = (__int128)acc * m;
    if (shift > 0) {
        if (shift > 120)
            return 0;
        p = (p + ((__int128)1 << (shift - 1))) >> shift;
    } else if (shift < 0) {
        if (p == 0)
            return 0;
        if (shift < -40 || p > INT32_MAX || p < INT32_MIN)
            return p > 0 ? INT32_MAX : INT32_MIN;
        p *= (__int128)1 << -shift;
    }
    return p > INT32_MAX ? INT32_MAX : p < INT32_MIN ? INT32_MIN : (int32_t)p;
}

#endif
