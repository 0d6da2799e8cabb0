/*
 * nn_fixed.h: the integer-only math under the forward pass (numerics version 1).
 *
 * Formats used here and throughout nn/:
 *   Qn      a signed integer v standing for v / 2^n (Q16: int32, resolution 1.5e-5,
 *           range +-32768; Q30: int32 in [-2, 2)).
 *   turns   an unsigned 64-bit angle, 2^64 = one full turn, so angles wrap for free.
 *   nn_scale  a positive mantissa/exponent pair (see nn_base.h).
 *
 * Every function is a pure function of its integer inputs, so results are identical on
 * every compiler, CPU and kernel path. Rounding is "half up" (add half, then an
 * arithmetic shift, which floors) unless a function says otherwise.
 */
#ifndef NN_FIXED_H
#define NN_FIXED_H

#include <stdint.h>
#include "nn_base.h"

/* Number of significant bits: 0 for 0, else floor(log2(x)) + 1. */
static inline int nn_bitlen_u64(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

/* round(v / 2^s) for s > 0; v * 2^-s saturating for s <= 0 (no rounding needed). */
int64_t nn_rshift_round_i64(int64_t v, int s);

/* Clamp to the int32 range. */
static inline int32_t nn_sat32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* floor(sqrt(x)), exact. */
uint64_t nn_isqrt_u64(uint64_t x);

/* round(acc * m / 2^shift), saturated to int32. shift may be negative (left shift). */
int32_t nn_mulshift_sat32(int64_t acc, uint32_t m, int shift);

/*
 * e^(d / 2^16) in Q30 for d <= 0 (d > 0 is treated as 0). Absolute error <= 2e-9
 * (about 2 LSB); results below 2^-30 are 0. Used by softmax and sigmoid.
 */
int32_t nn_exp_q16_q30(int64_t d);

/* 1 / (1 + e^-x) in Q30 for x in Q16. */
int32_t nn_sigmoid_q16_q30(int32_t x);

/* silu(x) = x * sigmoid(x); Q16 in, Q16 out (rounded). */
int32_t nn_silu_q16(int32_t x);

/* sin and cos of an angle in turns, each in Q30, absolute error <= 2^-30. */
void nn_sincos_q30(uint64_t turns, int32_t *s, int32_t *c);

/*
 * Quantise a Q(frac) vector to int16 with one power-of-two scale. Picks the smallest
 * shift t >= 0 with max|x| / 2^t < 2^15, writes out[i] = clamp(round(x[i] / 2^t),
 * +-32767), and returns t. The real value of out[i] is out[i] * 2^(t - frac).
 */
int nn_quant_i32_i16(const int32_t *x, uint32_t n, int16_t *out);
int nn_quant_i64_i16(const int64_t *x, uint32_t n, int16_t *out);

/* The nn_scale of a vector produced by the two calls above: 2^(t - frac). */
nn_scale nn_scale_pow2(int t_minus_frac);

/*
 * Numerics version 2: an int16 matmul input as int8 in groups of g values (the last
 * group may be short), each group with its own power-of-two step. For a group with
 * largest magnitude M, sh = the smallest s in [0, 9] with (M + h(s)) >> s <= 127, where
 * h(s) = 2^s / 2 (0 for s = 0); then q[i] = sign(a[i]) * ((|a[i]| + h(sh)) >> sh)
 * (round half away from zero), so a[i] ~ q[i] * 2^sh. sum (may be NULL) gets each
 * group's sum of q, which kernels that offset the weights need.
 */
void nn_act8_quant(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum);

#endif
