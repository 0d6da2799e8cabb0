/*
 * Integer math for numerics version 1. Changing any result here changes the numerics:
 * bump NN_NUMERICS_VERSION (nn_image.h) so that old KV caches are refused.
 */
#include "nn_fixed.h"
#include "fixed_inline.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

int64_t nn_rshift_round_i64(int64_t v, int s)
{
    return nn_rshift_round_i64_inl(v, s);
}

uint64_t nn_isqrt_u64(uint64_t x)
{
    uint64_t r = 0, b = 1ull << 62;
    while (b > x)
        b >>= 2;
    while (b) {
        if (x >= r + b) {
            x -= r + b;
            r = (r >> 1) + b;
        } else {
            r >>= 1;
        }
        b >>= 2;
    }
    return r;
}

int32_t nn_mulshift_sat32(int64_t acc, uint32_t m, int shift)
{
    return nn_mulshift_sat32_inl(acc, m, shift);
}

int32_t nn_exp_q16_q30(int64_t d)
{
    if (d >= 0)
        return 1 << 30;
    if (d < -((int64_t)64 << 16))
        return 0;                               /* e^-64 < 2^-92: zero in Q30 */
    int64_t y31 = ((-d) * NN_LOG2E_Q32 + (1ll << 16)) >> 17;   /* Q16*Q32 = Q48 -> Q31 */
    int64_t n = y31 >> 31;
    int64_t f = y31 & 0x7fffffffll;
    int64_t acc = nn_exp2_neg_poly_q31[8];
    for (int k = 7; k >= 0; k--)
        acc = nn_exp2_neg_poly_q31[k] + ((acc * f + (1ll << 30)) >> 31);
    /* acc = 2^-f in Q31, in (2^30, 2^31]; the result is acc * 2^-n in Q30. */
    return (int32_t)nn_rshift_round_i64(acc, (int)(1 + n));
}

int32_t nn_sigmoid_q16_q30(int32_t x)
{
    int64_t ax = x < 0 ? -(int64_t)x : x;
    int64_t e = nn_exp_q16_q30(-ax);            /* e^-|x|, Q30, in (0, 2^30] */
    int64_t den = (1ll << 30) + e;
    int64_t num = x >= 0 ? (1ll << 60) : e << 30;
    return (int32_t)((num + den / 2) / den);
}

int32_t nn_silu_q16(int32_t x)
{
    int64_t s = nn_sigmoid_q16_q30(x);
    return (int32_t)(((int64_t)x * s + (1ll << 29)) >> 30);
}

/* pi/4 in Q64. */
#define NN_PI4_Q64 14488038916154245685ull

/* sin and cos of t in [0, pi/4], t and results in Q62 (Taylor to the 15th/14th power). */
static void sincos_octant_q62(int64_t t, int64_t *s, int64_t *c)
{
    int64_t x2 = (int64_t)(((i128)t * t) >> 62);
    int64_t st = t, ssum = t;
    int64_t ct = 1ll << 62, csum = ct;
    for (int k = 1; k <= 7; k++) {
        st = (int64_t)(-(((i128)st * x2) >> 62) / ((2 * k) * (2 * k + 1)));
        ct = (int64_t)(-(((i128)ct * x2) >> 62) / ((2 * k - 1) * (2 * k)));
        ssum += st;
        csum += ct;
    }
    *s = ssum;
    *c = csum;
}

void nn_sincos_q30(uint64_t turns, int32_t *s, int32_t *c)
{
    unsigned oct = (unsigned)(turns >> 61);
    uint64_t frac = turns << 3;                           /* position inside the octant */
    uint64_t th = (uint64_t)(((u128)frac * NN_PI4_Q64) >> 64);   /* Q64 radians */
    if (oct & 1)
        th = NN_PI4_Q64 - th;
    int64_t s62, c62;
    sincos_octant_q62((int64_t)(th >> 2), &s62, &c62);
    int32_t so = (int32_t)nn_rshift_round_i64(s62, 32);
    int32_t co = (int32_t)nn_rshift_round_i64(c62, 32);
    switch (oct) {
    case 0: *s = so;  *c = co;  break;
    case 1: *s = co;  *c = so;  break;
    case 2: *s = co;  *c = -so; break;
    case 3: *s = so;  *c = -co; break;
    case 4: *s = -so; *c = -co; break;
    case 5: *s = -co; *c = -so; break;
    case 6: *s = -co; *c = so;  break;
    default: *s = -so; *c = co; break;
    }
}

int nn_quant_i32_i16(const int32_t *x, uint32_t n, int16_t *out)
{
    uint64_t amax = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = x[i] < 0 ? (uint64_t)(-(int64_t)x[i]) : (uint64_t)x[i];
        if (a > amax)
            amax = a;
    }
    int t = nn_quant_shift_inl(amax);
    for (uint32_t i = 0; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64(x[i], t));
    return t;
}

int nn_quant_i64_i16(const int64_t *x, uint32_t n, int16_t *out)
{
    uint64_t amax = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = x[i] < 0 ? (uint64_t)0 - (uint64_t)x[i] : (uint64_t)x[i];
        if (a > amax)
            amax = a;
    }
    int t = nn_quant_shift_inl(amax);
    for (uint32_t i = 0; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64(x[i], t));
    return t;
}

nn_scale nn_scale_pow2(int k)
{
    nn_scale s = { 1u << 31, 31 - k };
    return s;
}

void nn_act8_quant(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum)
{
    for (uint32_t i0 = 0, k = 0; i0 < n; i0 += g, k++) {
        uint32_t len = n - i0 < g ? n - i0 : g;
        const int16_t *x = a + i0;
        int32_t mx = 0;
        for (uint32_t i = 0; i < len; i++) {
            int32_t v = x[i] < 0 ? -x[i] : x[i];
            mx = v > mx ? v : mx;
        }
        int s = nn_act8_shift_inl((uint32_t)mx);
        int32_t tot = nn_act8_round_inl(x, 0, len, s, q + i0);
        sh[k] = (uint8_t)s;
        if (sum)
            sum[k] = tot;
    }
}
