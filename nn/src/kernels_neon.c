/*
 * aarch64 kernels, bit-exact with kernels_ref.c: "neon" for every armv8-a board (Pi 4,
 * Jetson Nano), and "dotprod" where the board's -mcpu has the armv8.2 dot product
 * (Pi 5, Orin Nano). nn_kernels_impl.h decides which of the two this build contains,
 * so a Pi 4 build has no sdot in it.
 *
 * neon: int8 weights widened to int16 (sxtl), multiplied by int16 activations and
 * accumulated in int32 lanes (smlal, smlal2). A lane holds a sum over a subset of one
 * group's products, at most 256 * 127 * 32767 < 2^31: exact. Per group the lanes are
 * reduced (addp) and multiplied by the mantissa into int64 (smlal on 32-bit lanes).
 *
 * dotprod: sdot multiplies int8 by int8. Each int16 activation a splits into
 *   hi = a >> 8 (signed, [-128, 127]) and lo' = (a & 255) - 128 ([-128, 127]),
 *   a * w = 256 * (hi * w) + lo' * w + 128 * w,
 * so a group sum is 256 * sdot(w, hi) + sdot(w, lo') + 128 * sdot(w, 1). Every lane of
 * each term is bounded by 64 * 128 * 127 < 2^20 (a lane sees at most 64 of a 256-wide
 * group), and the combination is again a subset sum of the group's true products.
 *
 * Fast paths (version 1) need group % 8 == 0 or group == 4 (neon; dotprod takes neon's
 * for groups that are not a multiple of 16 and for rows wider than SPLIT_COLS); a row's
 * short last group ends in a scalar tail. Other groups use the reference. Version 2's
 * interleaved weights take any group of a multiple of 4.
 */
#include "nn_kernels_impl.h"

#if NN_HAVE_NEON_KERNELS

#include <arm_neon.h>
#include <string.h>

#include "fixed_inline.h"
#include "nn_fixed.h"
#include "kernels_a8.h"

static inline int32_t tail_dot(const int8_t *q, const int16_t *a, uint32_t n)
{
    int32_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += q[i] * a[i];
    return s;
}

/* c with v added to lane 0. */
static inline int32x4_t add_lane0(int32x4_t c, int32_t v)
{
    return vaddq_s32(c, vsetq_lane_s32(v, vdupq_n_s32(0), 0));
}

/* [sum c0, sum c1, sum c2, sum c3] */
static inline int32x4_t hsum4(int32x4_t c0, int32x4_t c1, int32x4_t c2, int32x4_t c3)
{
    return vpaddq_s32(vpaddq_s32(c0, c1), vpaddq_s32(c2, c3));
}

/* acc[0..3] += s[0..3] * m (m < 2^16, so it fits a signed 32-bit lane). */
static inline void mla4(int64x2_t *lo, int64x2_t *hi, int32x4_t s, uint32_t m)
{
    *lo = vmlal_n_s32(*lo, vget_low_s32(s), (int32_t)m);
    *hi = vmlal_high_n_s32(*hi, s, (int32_t)m);
}

static inline void store4(int64_t *out, int64x2_t lo, int64x2_t hi)
{
    vst1q_s64(out, lo);
    vst1q_s64(out + 2, hi);
}

/* ---- neon matmul ------------------------------------------------------------------- */

/* One group of one row times one token: 8 products per step into 4 int32 lanes. */
static inline __attribute__((always_inline)) int32x4_t group_n1(const int8_t *q, const int16_t *a, uint32_t len)
{
    int32x4_t c = vdupq_n_s32(0);
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        int16x8_t w = vmovl_s8(vld1_s8(q + i)), x = vld1q_s16(a + i);
        c = vmlal_s16(c, vget_low_s16(w), vget_low_s16(x));
        c = vmlal_high_s16(c, w, x);
    }
    if (i < len)
        c = add_lane0(c, tail_dot(q + i, a + i, len - i));
    return c;
}

/* Decode: one row times one token, four groups reduced and scaled together. */
static inline __attribute__((always_inline)) int64_t row_n1(const int8_t *q, const uint16_t *m, const int16_t *a,
                                                            uint32_t cols, uint32_t G, uint32_t ng)
{
    int64x2_t lo = vdupq_n_s64(0), hi = lo;
    uint32_t full = cols / G, g = 0;
    for (; g + 4 <= full; g += 4) {
        const int8_t *qg = q + (size_t)g * G;
        const int16_t *ag = a + (size_t)g * G;
        int32x4_t s = hsum4(group_n1(qg, ag, G), group_n1(qg + G, ag + G, G), group_n1(qg + 2 * G, ag + 2 * G, G),
                            group_n1(qg + 3 * G, ag + 3 * G, G));
        int32x4_t mv = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(m + g)));
        lo = vmlal_s32(lo, vget_low_s32(s), vget_low_s32(mv));
        hi = vmlal_high_s32(hi, s, mv);
    }
    int64_t acc = vaddvq_s64(vaddq_s64(lo, hi));
    for (; g < ng; g++) {
        uint32_t i0 = g * G, len = cols - i0 < G ? cols - i0 : G;
        acc += (int64_t)vaddvq_s32(group_n1(q + i0, a + i0, len)) * m[g];
    }
    return acc;
}

/*
 * Prefill: rows qa, qb times tokens a[0..3]; each widened weight serves four tokens and
 * each activation load two rows. out[r][t].
 */
static void rows_2x4(const int8_t *qa, const int8_t *qb, const uint16_t *ma, const uint16_t *mb,
                     const int16_t *const a[4], const int8_t *split, uint32_t cols, uint32_t G, uint32_t ng,
                     int64_t out[2][4])
{
    (void)split;   /* split activations are for rows_2x4_dot */
    int64x2_t ea = vdupq_n_s64(0), fa = ea, eb = ea, fb = ea;
    for (uint32_t g = 0, i0 = 0; g < ng; g++, i0 += G) {
        uint32_t len = cols - i0 < G ? cols - i0 : G, i1 = i0 + (len & ~7u);
        int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        for (uint32_t i = i0; i < i1; i += 8) {
            int16x8_t wa = vmovl_s8(vld1_s8(qa + i)), wb = vmovl_s8(vld1_s8(qb + i)), x;
#define NN_MLA2(ca, cb, x)                                                                                          \
    do {                                                                                                            \
        ca = vmlal_high_s16(vmlal_s16(ca, vget_low_s16(wa), vget_low_s16(x)), wa, x);                               \
        cb = vmlal_high_s16(vmlal_s16(cb, vget_low_s16(wb), vget_low_s16(x)), wb, x);                               \
    } while (0)
            x = vld1q_s16(a[0] + i);
            NN_MLA2(c00, c10, x);
            x = vld1q_s16(a[1] + i);
            NN_MLA2(c01, c11, x);
            x = vld1q_s16(a[2] + i);
            NN_MLA2(c02, c12, x);
            x = vld1q_s16(a[3] + i);
            NN_MLA2(c03, c13, x);
#undef NN_MLA2
        }
        if (i1 < i0 + len) {
            uint32_t n = i0 + len - i1;
            c00 = add_lane0(c00, tail_dot(qa + i1, a[0] + i1, n));
            c01 = add_lane0(c01, tail_dot(qa + i1, a[1] + i1, n));
            c02 = add_lane0(c02, tail_dot(qa + i1, a[2] + i1, n));
            c03 = add_lane0(c03, tail_dot(qa + i1, a[3] + i1, n));
            c10 = add_lane0(c10, tail_dot(qb + i1, a[0] + i1, n));
            c11 = add_lane0(c11, tail_dot(qb + i1, a[1] + i1, n));
            c12 = add_lane0(c12, tail_dot(qb + i1, a[2] + i1, n));
            c13 = add_lane0(c13, tail_dot(qb + i1, a[3] + i1, n));
        }
        mla4(&ea, &fa, hsum4(c00, c01, c02, c03), ma[g]);
        mla4(&eb, &fb, hsum4(c10, c11, c12, c13), mb[g]);
    }
    store4(out[0], ea, fa);
    store4(out[1], eb, fb);
}

/*
 * nn_mulshift_sat32 of two int64 sums by one token's scale m in [2^31, 2^32) and shift
 * s in [32, 93], both sums in [-2^61, 2^61) (real layers: s 49-58): with
 * acc = ah 2^32 + al and m = 2^31 + m', U = floor(acc m / 2^31) = acc + 2 ah m' +
 * floor(al m' / 2^31) comes from two 32 x 32 products (|U| <= 2^62), and
 * round(acc m / 2^s) = floor((U + 2^(s-32)) / 2^(s-31)) is one rounding shift (srshl),
 * then a saturating narrow. Returns 0 and writes nothing outside those bounds.
 */
static inline int mulshift2(int64x2_t acc, uint32_t m, int s, int32x2_t *out)
{
    /* acc >> 61 is 0 or -1 inside the bounds, so that plus 1 is 0 or 1. */
    uint64x2_t top = vreinterpretq_u64_s64(vaddq_s64(vshrq_n_s64(acc, 61), vdupq_n_s64(1)));
    if (m < 0x80000000u || s < 32 || s > 93 || ((vgetq_lane_u64(top, 0) | vgetq_lane_u64(top, 1)) & ~1ull))
        return 0;
    uint32_t mp = m - 0x80000000u;
    int64x2_t hi = vmull_n_s32(vmovn_s64(vshrq_n_s64(acc, 32)), (int32_t)mp);
    uint64x2_t lo = vmull_n_u32(vmovn_u64(vreinterpretq_u64_s64(acc)), mp);
    int64x2_t u = vaddq_s64(vaddq_s64(acc, vshlq_n_s64(hi, 1)), vreinterpretq_s64_u64(vshrq_n_u64(lo, 31)));
    *out = vqmovn_s64(vrshlq_s64(u, vdupq_n_s64(31 - s)));
    return 1;
}

/* Rows per L2-resident chunk in prefill: about 64 KiB of weights (the A72's L2 is
 * 1 MiB shared by four cores). */
static uint32_t chunk_rows(uint32_t cols)
{
    uint32_t n = (64u << 10) / cols;
    return n < 1 ? 1 : n;
}

typedef void (*rows_2x4_fn)(const int8_t *qa, const int8_t *qb, const uint16_t *ma, const uint16_t *mb,
                            const int16_t *const a[4], const int8_t *split, uint32_t cols, uint32_t G, uint32_t ng,
                            int64_t out[2][4]);

/* The widest rows whose split activations (hi and lo' bytes, two bytes a column a
 * token) the dotprod kernels keep, in a per-thread static buffer (split_buf, touched
 * only as far as used): four tokens in prompts, one in decode. Wider rows take neon's
 * kernels. 16384 columns cover the hidden sizes of models up to about 13B. */
#define SPLIT_COLS 16384u

#if NN_HAVE_DOTPROD_KERNELS
static void split_tokens(const int16_t *const a[4], uint32_t cols, int8_t *split);
#endif

/*
 * Prefill driver shared by both paths: a chunk of rows stays in cache while every token
 * of the block passes over it (each weight read from memory once per block); row pairs
 * meet token quads. Edge rows and tokens repeat the last one; their results are dropped.
 * With a split buffer (dotprod), each token quad's activations are split into bytes
 * once per chunk instead of once per row pair.
 */
static void prefill(const nn_mm_args *A, uint32_t r0, uint32_t r1, rows_2x4_fn kern, int8_t *split)
{
    const nn_q8_mat *w = A->w;
    const uint32_t T = A->n_tok, CR = chunk_rows(w->cols);
    for (uint32_t c0 = r0; c0 < r1; c0 += CR) {
        uint32_t c1 = c0 + CR < r1 ? c0 + CR : r1;
        for (uint32_t t = 0; t < T; t += 4) {
            const int16_t *a[4];
            for (uint32_t k = 0; k < 4; k++)
                a[k] = A->a + (size_t)(t + k < T ? t + k : T - 1) * A->a_stride;
#if NN_HAVE_DOTPROD_KERNELS
            if (split)
                split_tokens(a, w->cols, split);
#endif
            for (uint32_t r = c0; r < c1; r += 2) {
                uint32_t rb = r + 1 < c1 ? r + 1 : r;
                int64_t acc[2][4];
                kern(w->q + (size_t)r * w->cols, w->q + (size_t)rb * w->cols, w->m + (size_t)r * w->ngroups,
                     w->m + (size_t)rb * w->ngroups, a, split, w->cols, w->group, w->ngroups, acc);
                for (uint32_t k = 0; k < 4 && t + k < T; k++) {
                    int32_t *o = A->out + (size_t)(t + k) * A->out_stride + r;
                    int s = A->as[t + k].e + w->exp - 16;
                    int32x2_t v;
                    if (r + 1 < c1 && mulshift2(vcombine_s64(vcreate_s64((uint64_t)acc[0][k]),
                                                             vcreate_s64((uint64_t)acc[1][k])),
                                                A->as[t + k].m, s, &v)) {
                        vst1_s32(o, v);
                        continue;
                    }
                    for (uint32_t i = 0; i < 2 && r + i < c1; i++)
                        o[i] = nn_mulshift_sat32_inl(acc[i][k], A->as[t + k].m, s);
                }
            }
        }
    }
}

/*
 * Groups of 4 (the 260K models, whose hidden width 172 admits no group of 8): one row
 * times one token, four groups per step. Each group's four products (smull) are added
 * pairwise (addp) twice into [g0, g1, g2, g3], then scaled as in row_n1.
 */
static int64_t row_g4(const int8_t *q, const uint16_t *m, const int16_t *a, uint32_t cols, uint32_t ng)
{
    int64x2_t lo = vdupq_n_s64(0), hi = lo;
    uint32_t g = 0;
    for (; g + 4 <= ng && (g + 4) * 4 <= cols; g += 4) {
        const int8_t *qg = q + (size_t)g * 4;
        const int16_t *ag = a + (size_t)g * 4;
        int16x8_t w0 = vmovl_s8(vld1_s8(qg)), w1 = vmovl_s8(vld1_s8(qg + 8));
        int16x8_t x0 = vld1q_s16(ag), x1 = vld1q_s16(ag + 8);
        int32x4_t p0 = vmull_s16(vget_low_s16(w0), vget_low_s16(x0)), p1 = vmull_high_s16(w0, x0);
        int32x4_t p2 = vmull_s16(vget_low_s16(w1), vget_low_s16(x1)), p3 = vmull_high_s16(w1, x1);
        int32x4_t s = vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3));
        int32x4_t mv = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(m + g)));
        lo = vmlal_s32(lo, vget_low_s32(s), vget_low_s32(mv));
        hi = vmlal_high_s32(hi, s, mv);
    }
    int64_t acc = vaddvq_s64(vaddq_s64(lo, hi));
    for (uint32_t i0 = g * 4; g < ng; g++, i0 += 4) {
        uint32_t n = cols - i0 < 4 ? cols - i0 : 4;
        acc += (int64_t)tail_dot(q + i0, a + i0, n) * m[g];
    }
    return acc;
}

static void mm_neon(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = A->w;
    if (w->group == 4) {
        for (uint32_t t = 0; t < A->n_tok; t++) {
            const int16_t *a = A->a + (size_t)t * A->a_stride;
            int shift = A->as[t].e + w->exp - 16;
            for (uint32_t r = r0; r < r1; r++)
                A->out[(size_t)t * A->out_stride + r] = nn_mulshift_sat32_inl(
                    row_g4(w->q + (size_t)r * w->cols, w->m + (size_t)r * w->ngroups, a, w->cols, w->ngroups),
                    A->as[t].m, shift);
        }
        return;
    }
    if (w->group % 8 || r0 >= r1) {
        nn_matmul_q8_q16_ref(A, r0, r1);
        return;
    }
    if (A->n_tok > 1) {
        prefill(A, r0, r1, rows_2x4, NULL);
        return;
    }
    int shift = A->as[0].e + w->exp - 16;
    for (uint32_t r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * w->cols;
        const uint16_t *m = w->m + (size_t)r * w->ngroups;
        /* Groups of 32 (the default) unrolled whole. */
        int64_t acc = w->group == 32 ? row_n1(q, m, A->a, w->cols, 32, w->ngroups)
                                     : row_n1(q, m, A->a, w->cols, w->group, w->ngroups);
        A->out[r] = nn_mulshift_sat32_inl(acc, A->as[0].m, shift);
    }
}

/* ---- attention --------------------------------------------------------------------- */

/* A product of two int16 is below 2^30 but two of them may not fit an int32 lane, so
 * each smull result is added pairwise into int64 lanes (sadalp). */
static int64_t dot_neon(const int16_t *a, const int16_t *b, uint32_t n)
{
    int64x2_t s0 = vdupq_n_s64(0), s1 = s0;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int16x8_t x = vld1q_s16(a + i), y = vld1q_s16(b + i);
        s0 = vpadalq_s32(s0, vmull_s16(vget_low_s16(x), vget_low_s16(y)));
        s1 = vpadalq_s32(s1, vmull_high_s16(x, y));
    }
    int64_t s = vaddvq_s64(vaddq_s64(s0, s1));
    for (; i < n; i++)
        s += (int32_t)a[i] * b[i];
    return s;
}

static void dot_rows_neon(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                          int64_t *out)
{
    for (uint32_t j = 0; j < n_rows; j++)
        out[j] = dot_neon(q, k + j * k_stride, n);
}

/* acc[i] += sum_j p[j] * v[j][i]: v widened to int32, smlal by the scalar p[j] into
 * int64 lanes; 16 outputs (eight int64x2) stay in registers while the rows go by. */
static void axpy_rows_neon(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                           int64_t *acc)
{
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* Named accumulators, so that they stay in registers. */
        int64_t *o = acc + i;
        int64x2_t s0 = vld1q_s64(o), s1 = vld1q_s64(o + 2), s2 = vld1q_s64(o + 4), s3 = vld1q_s64(o + 6);
        int64x2_t s4 = vld1q_s64(o + 8), s5 = vld1q_s64(o + 10), s6 = vld1q_s64(o + 12), s7 = vld1q_s64(o + 14);
        for (uint32_t j = 0; j < n_rows; j++) {
            const int16_t *vj = v + j * v_stride + i;
            int32_t pj = p[j];
            int16x8_t x = vld1q_s16(vj), y = vld1q_s16(vj + 8);
            int32x4_t xl = vmovl_s16(vget_low_s16(x)), xh = vmovl_high_s16(x);
            int32x4_t yl = vmovl_s16(vget_low_s16(y)), yh = vmovl_high_s16(y);
            s0 = vmlal_n_s32(s0, vget_low_s32(xl), pj);
            s1 = vmlal_high_n_s32(s1, xl, pj);
            s2 = vmlal_n_s32(s2, vget_low_s32(xh), pj);
            s3 = vmlal_high_n_s32(s3, xh, pj);
            s4 = vmlal_n_s32(s4, vget_low_s32(yl), pj);
            s5 = vmlal_high_n_s32(s5, yl, pj);
            s6 = vmlal_n_s32(s6, vget_low_s32(yh), pj);
            s7 = vmlal_high_n_s32(s7, yh, pj);
        }
        vst1q_s64(o, s0);
        vst1q_s64(o + 2, s1);
        vst1q_s64(o + 4, s2);
        vst1q_s64(o + 6, s3);
        vst1q_s64(o + 8, s4);
        vst1q_s64(o + 10, s5);
        vst1q_s64(o + 12, s6);
        vst1q_s64(o + 14, s7);
    }
    for (; i < n; i++)
        for (uint32_t j = 0; j < n_rows; j++)
            acc[i] += (int64_t)p[j] * v[j * v_stride + i];
}

/* ---- softmax numerators and SiLU --------------------------------------------------- */

/*
 * nn_exp_q16_q30(d) for two int64 lanes, step for step the scalar algorithm (see
 * fixed.c): y = -d * log2(e) in Q31, with log2(e) = 2^32 + 1901360723 in Q32 so the
 * product is a shift plus one 32x32 multiply; Horner in Q31 on 32-bit lanes (smull;
 * the intermediates fit, the last one is not multiplied again); then the rounding
 * shift by 1 + int(y), where ushl by 64 or more gives 0 as the scalar code does.
 */
static inline int64x2_t exp2_q30(int64x2_t d)
{
    const int64x2_t zero = vdupq_n_s64(0);
    uint64x2_t pos = vcgeq_s64(d, zero);
    int64x2_t nd = vnegq_s64(d);
    uint64x2_t big = vcgtq_s64(nd, vdupq_n_s64((int64_t)64 << 16));
    nd = vbslq_s64(vorrq_u64(pos, big), zero, nd);
    uint64x2_t y = vaddq_u64(vshlq_n_u64(vreinterpretq_u64_s64(nd), 32),
                             vmull_n_u32(vmovn_u64(vreinterpretq_u64_s64(nd)), (uint32_t)(NN_LOG2E_Q32 - (1ll << 32))));
    y = vshrq_n_u64(vaddq_u64(y, vdupq_n_u64(1ull << 16)), 17);
    int64x2_t ni = vreinterpretq_s64_u64(vshrq_n_u64(y, 31));
    int32x2_t f = vmovn_s64(vreinterpretq_s64_u64(vandq_u64(y, vdupq_n_u64(0x7fffffff))));
    int64x2_t acc = vdupq_n_s64(nn_exp2_neg_poly_q31[8]);
    for (int k = 7; k >= 0; k--) {
        int64x2_t p = vmull_s32(vmovn_s64(acc), f);
        acc = vaddq_s64(vshrq_n_s64(vaddq_s64(p, vdupq_n_s64(1ll << 30)), 31), vdupq_n_s64(nn_exp2_neg_poly_q31[k]));
    }
    int64x2_t sh = vaddq_s64(ni, vdupq_n_s64(1));                                     /* 1 + n, >= 1 */
    uint64x2_t half = vshlq_u64(vdupq_n_u64(1), vsubq_s64(sh, vdupq_n_s64(1)));
    int64x2_t r = vreinterpretq_s64_u64(vshlq_u64(vaddq_u64(vreinterpretq_u64_s64(acc), half), vnegq_s64(sh)));
    r = vbslq_s64(big, zero, r);
    return vbslq_s64(pos, vdupq_n_s64(1ll << 30), r);
}

static int64_t softmax_exp_neon(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out)
{
    int64x2_t sum = vdupq_n_s64(0);
    const int64x2_t vmax = vdupq_n_s64(xmax);
    uint32_t j = 0;
    for (; j + 2 <= n; j += 2) {
        int64x2_t r = exp2_q30(vsubq_s64(vmovl_s32(vld1_s32(x + j)), vmax));
        sum = vaddq_s64(sum, r);
        vst1_s32(out + j, vmovn_s64(r));
    }
    int64_t s = vaddvq_s64(sum);
    for (; j < n; j++) {
        out[j] = nn_exp_q16_q30((int64_t)x[j] - xmax);
        s += out[j];
    }
    return s;
}

/*
 * x[i] = nn_silu_q16(x[i]): e = exp(-|x|) two lanes at a time, the sigmoid's rounded
 * quotient (num + den/2) / den (den = 2^30 + e, num = 2^60 or e * 2^30) by the core's
 * 64-bit divider, one value at a time (31 restoring steps in vector lanes cost about
 * 90 instructions a value, in one dependent chain), then round(x * q / 2^30). Four
 * values per iteration: two independent exp chains.
 */
static inline int64x2_t sigmoid_q30x2(int64x2_t xv)
{
    int64x2_t e = exp2_q30(vnegq_s64(vabsq_s64(xv)));
    int64x2_t den = vaddq_s64(vdupq_n_s64(1ll << 30), e);
    int64x2_t num = vbslq_s64(vcltq_s64(xv, vdupq_n_s64(0)), vshlq_n_s64(e, 30), vdupq_n_s64(1ll << 60));
    uint64x2_t m = vreinterpretq_u64_s64(vaddq_s64(num, vshrq_n_s64(den, 1)));
    uint64x2_t d = vreinterpretq_u64_s64(den);
    uint64_t q0 = vgetq_lane_u64(m, 0) / vgetq_lane_u64(d, 0), q1 = vgetq_lane_u64(m, 1) / vgetq_lane_u64(d, 1);
    return vreinterpretq_s64_u64(vsetq_lane_u64(q1, vdupq_n_u64(q0), 1));
}

static inline int32x2_t silu_apply(int32x2_t x32, int64x2_t q)
{
    int64x2_t p = vmull_s32(x32, vmovn_s64(q));
    return vmovn_s64(vshrq_n_s64(vaddq_s64(p, vdupq_n_s64(1ll << 29)), 30));
}

static void silu_neon(int32_t *x, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        int32x2_t a = vld1_s32(x + i), b = vld1_s32(x + i + 2);
        int64x2_t qa = sigmoid_q30x2(vmovl_s32(a)), qb = sigmoid_q30x2(vmovl_s32(b));
        vst1_s32(x + i, silu_apply(a, qa));
        vst1_s32(x + i + 2, silu_apply(b, qb));
    }
    for (; i < n; i++)
        x[i] = nn_silu_q16(x[i]);
}

/* ---- per-token row steps ------------------------------------------------------------ */

/* nn_add_sat_i32_ref: sqadd saturates the sum exactly as nn_sat32 of the int64 sum. */
static void add_sat_neon(int32_t *x, const int32_t *o, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_s32(x + i, vqaddq_s32(vld1q_s32(x + i), vld1q_s32(o + i)));
    nn_add_sat_i32_ref(x + i, o + i, n - i);
}

/* nn_round_sat_i64_ref for shifts in [1, 62]: srshl rounds (v + 2^(s-1)) >> s without
 * overflow, sqxtn saturates to int32; other shifts one by one. */
static void round_sat_neon(const int64_t *acc, int s, uint32_t n, int32_t *out)
{
    uint32_t i = 0;
    if (s >= 1 && s <= 62) {
        const int64x2_t sh = vdupq_n_s64(-s);
        for (; i + 4 <= n; i += 4)
            vst1q_s32(out + i, vcombine_s32(vqmovn_s64(vrshlq_s64(vld1q_s64(acc + i), sh)),
                                            vqmovn_s64(vrshlq_s64(vld1q_s64(acc + i + 2), sh))));
    }
    nn_round_sat_i64_ref(acc + i, s, n - i, out + i);
}

/* nn_sumsq_i32_ref: each square (<= 2^62) split into its low and high 32 bits (uzp),
 * each half summed in uint64 lanes, the two joined in 128 bits at the end. */
static void sumsq_neon(const int32_t *x, uint32_t n, uint64_t ss[2])
{
    uint64x2_t lo = vdupq_n_u64(0), hi = lo;
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        int32x4_t v = vld1q_s32(x + i);
        uint32x4_t a = vreinterpretq_u32_s64(vmull_s32(vget_low_s32(v), vget_low_s32(v)));
        uint32x4_t b = vreinterpretq_u32_s64(vmull_high_s32(v, v));
        lo = vpadalq_u32(lo, vuzp1q_u32(a, b));
        hi = vpadalq_u32(hi, vuzp2q_u32(a, b));
    }
    unsigned __int128 s = (unsigned __int128)vaddvq_u64(lo) + ((unsigned __int128)vaddvq_u64(hi) << 32);
    for (; i < n; i++)
        s += (unsigned __int128)((int64_t)x[i] * x[i]);
    ss[0] = (uint64_t)s;
    ss[1] = (uint64_t)(s >> 64);
}

/* nn_rope_q30_ref on 4 pairs at a time for head sizes and lengths of a multiple of 8
 * (others: the reference): ld2 splits the pairs' first and second values (and sin,
 * cos), smull/smlsl/smlal make both results in int64 (|a cos| + |b sin| <= 2^62),
 * srshr by 30 rounds them, sqxtn saturates. */
static void rope_neon(int32_t *v, uint32_t n, uint32_t head_dim, const int32_t *sc)
{
    if (head_dim % 8 || n % 8) {
        nn_rope_q30_ref(v, n, head_dim, sc);
        return;
    }
    for (uint32_t i = 0; i < n; i += 8) {
        int32x4x2_t x = vld2q_s32(v + i), t = vld2q_s32(sc + i % head_dim);
        int32x4_t a = x.val[0], b = x.val[1], sn = t.val[0], cs = t.val[1];
        int64x2_t f0 = vmlsl_s32(vmull_s32(vget_low_s32(a), vget_low_s32(cs)), vget_low_s32(b), vget_low_s32(sn));
        int64x2_t f1 = vmlsl_high_s32(vmull_high_s32(a, cs), b, sn);
        int64x2_t g0 = vmlal_s32(vmull_s32(vget_low_s32(a), vget_low_s32(sn)), vget_low_s32(b), vget_low_s32(cs));
        int64x2_t g1 = vmlal_high_s32(vmull_high_s32(a, sn), b, cs);
        int32x4x2_t r;
        r.val[0] = vcombine_s32(vqmovn_s64(vrshrq_n_s64(f0, 30)), vqmovn_s64(vrshrq_n_s64(f1, 30)));
        r.val[1] = vcombine_s32(vqmovn_s64(vrshrq_n_s64(g0, 30)), vqmovn_s64(vrshrq_n_s64(g1, 30)));
        vst2q_s32(v + i, r);
    }
}

/* The shifts base - e[j] and base - e[j+1] (scores) or tmax - ... (probabilities). */
static inline int64x2_t shifts2(int base, const int8_t *e, size_t es, uint32_t j)
{
    return vcombine_s64(vcreate_s64((uint64_t)(int64_t)(base - e[j * es])),
                        vcreate_s64((uint64_t)(int64_t)(base - e[(j + 1) * es])));
}

/*
 * Attention scores two at a time: dots * c in int64 (c in [0, 2^24], |dots| < 2^37: the
 * high word's product shifted up plus the low word's, |product| < 2^61), srshl by the
 * lane's own shift (exact rounding), sqxtn to int32. Pairs with a shift outside [1, 62]
 * or a larger dot product take the scalar path.
 */
static int32_t scores_neon(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                           int32_t *out)
{
    int32_t smax = INT32_MIN;
    uint32_t j = 0;
    if (c >= 0 && c <= (1 << 24)) {
        const int64x2_t lim = vdupq_n_s64(1ll << 37), nlim = vdupq_n_s64(-(1ll << 37));
        const uint32x2_t cv = vdup_n_u32((uint32_t)c);
        int32x2_t mx = vdup_n_s32(INT32_MIN);
        for (; j + 2 <= n; j += 2) {
            int64x2_t d = vld1q_s64(dots + j), sh = shifts2(base, e, e_stride, j);
            uint64x2_t bad = vorrq_u64(vorrq_u64(vcgeq_s64(d, lim), vcleq_s64(d, nlim)),
                                       vorrq_u64(vcltq_s64(sh, vdupq_n_s64(1)), vcgtq_s64(sh, vdupq_n_s64(62))));
            if (vmaxvq_u32(vreinterpretq_u32_u64(bad))) {
                int32_t m2 = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, 2, out + j);
                mx = vmax_s32(mx, vdup_n_s32(m2));
                continue;
            }
            int64x2_t hi = vreinterpretq_s64_u64(vshlq_n_u64(
                vreinterpretq_u64_s64(vmull_s32(vmovn_s64(vshrq_n_s64(d, 32)), vreinterpret_s32_u32(cv))), 32));
            int64x2_t v = vaddq_s64(hi, vreinterpretq_s64_u64(vmull_u32(vmovn_u64(vreinterpretq_u64_s64(d)), cv)));
            int32x2_t r = vqmovn_s64(vrshlq_s64(v, vnegq_s64(sh)));
            vst1_s32(out + j, r);
            mx = vmax_s32(mx, r);
        }
        smax = vmaxv_s32(mx);
    }
    int32_t t = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, n - j, out + j);
    return t > smax ? t : smax;
}

/*
 * The probabilities normalised and aligned two at a time: p * inv (inv < 2^32; the one
 * larger value, 2^32 exactly, takes the scalar path) rounded by urshr 32, then by the
 * lane's shift tmax - e (>= 0, as tmax is the largest e; the value is below 2^31, so
 * from 32 on both give 0, and the shift is capped at 63 to stay within urshl's byte)
 * with urshl.
 */
static void probs_align_neon(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n)
{
    uint32_t j = 0;
    if (inv <= UINT32_MAX) {
        const uint32x2_t iv = vdup_n_u32((uint32_t)inv);
        for (; j + 2 <= n; j += 2) {
            uint64x2_t x = vrshrq_n_u64(vmull_u32(vreinterpret_u32_s32(vld1_s32(p + j)), iv), 32);
            int64x2_t sh = shifts2(tmax, e, e_stride, j), cap = vdupq_n_s64(63);
            sh = vbslq_s64(vcgtq_s64(sh, cap), cap, sh);
            vst1_s32(p + j, vreinterpret_s32_u32(vmovn_u64(vrshlq_u64(x, vnegq_s64(sh)))));
        }
    }
    nn_probs_align_ref(p + j, inv, e + j * e_stride, e_stride, tmax, n - j);
}

/* round(x / 2^t) (srshl: exact, no overflow) clamped to +-32767, as int16. */
static inline int16x4_t round_clamp16(int32x4_t x, int t)
{
    return vmax_s16(vqmovn_s32(vrshlq_s32(x, vdupq_n_s32(-t))), vdup_n_s16(-32767));
}

/* nn_quant_i32_i16: the largest |x| in unsigned lanes (|INT32_MIN| is 2^31 there). */
static int quant_i32_neon(const int32_t *x, uint32_t n, int16_t *out)
{
    uint32x4_t mx = vdupq_n_u32(0);
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4)
        mx = vmaxq_u32(mx, vreinterpretq_u32_s32(vabsq_s32(vld1q_s32(x + i))));
    uint64_t amax = vmaxvq_u32(mx);
    for (uint32_t j = i; j < n; j++) {
        uint64_t a = x[j] < 0 ? (uint64_t)(-(int64_t)x[j]) : (uint64_t)x[j];
        amax = a > amax ? a : amax;
    }
    int t = nn_quant_shift_inl(amax);
    for (i = 0; i + 4 <= n; i += 4)
        vst1_s16(out + i, round_clamp16(vld1q_s32(x + i), t));
    for (; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64(x[i], t));
    return t;
}

/* nn_mul_quant_i16_ref: the int64 products twice (smull), the largest by compare and
 * select (no 64-bit max in NEON), then rounded by srshl and clamped. */
static int mul_quant_neon(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out)
{
    uint64x2_t mx = vdupq_n_u64(0);
    uint32_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64x2_t p = vreinterpretq_u64_s64(vabsq_s64(vmull_s32(vld1_s32(a + i), vld1_s32(b + i))));
        mx = vbslq_u64(vcgtq_u64(p, mx), p, mx);
    }
    uint64_t amax = vgetq_lane_u64(mx, 0) > vgetq_lane_u64(mx, 1) ? vgetq_lane_u64(mx, 0) : vgetq_lane_u64(mx, 1);
    for (uint32_t j = i; j < n; j++) {
        int64_t p = (int64_t)a[j] * b[j];
        uint64_t ap = p < 0 ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
        amax = ap > amax ? ap : amax;
    }
    int t = nn_quant_shift_inl(amax);
    const int64x2_t sh = vdupq_n_s64(-t);
    for (i = 0; i + 4 <= n; i += 4) {
        int32x4_t x = vld1q_s32(a + i), y = vld1q_s32(b + i);
        int64x2_t lo = vrshlq_s64(vmull_s32(vget_low_s32(x), vget_low_s32(y)), sh);
        int64x2_t hi = vrshlq_s64(vmull_high_s32(x, y), sh);
        int32x4_t r = vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi));
        vst1_s16(out + i, vmax_s16(vqmovn_s32(r), vdup_n_s16(-32767)));
    }
    for (; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64_inl((int64_t)a[i] * b[i], t));
    return t;
}

/* nn_act8_quant for groups of a multiple of 8: magnitudes in unsigned 16-bit lanes
 * (|-32768| is 32768 there), the group's step by nn_act8_shift_inl, round-half-up of the
 * magnitude (at most 32768 + 256: fits) with the sign put back. Other groups take the
 * portable one. */
static void act8_neon(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum)
{
    if (g % 8) {
        nn_act8_quant(a, n, g, q, sh, sum);
        return;
    }
    for (uint32_t i0 = 0, k = 0; i0 < n; i0 += g, k++) {
        uint32_t len = n - i0 < g ? n - i0 : g, full = len & ~7u;
        const int16_t *x = a + i0;
        uint16x8_t mv = vdupq_n_u16(0);
        for (uint32_t i = 0; i < full; i += 8)
            mv = vmaxq_u16(mv, vreinterpretq_u16_s16(vabsq_s16(vld1q_s16(x + i))));
        uint32_t mx = vmaxvq_u16(mv);
        for (uint32_t i = full; i < len; i++) {
            uint32_t v = (uint32_t)(x[i] < 0 ? -x[i] : x[i]);
            mx = v > mx ? v : mx;
        }
        int s = nn_act8_shift_inl(mx);
        const uint16x8_t h = vdupq_n_u16((uint16_t)((1u << s) >> 1));
        const int16x8_t ns = vdupq_n_s16((int16_t)-s);
        int32x4_t tot = vdupq_n_s32(0);
        for (uint32_t i = 0; i < full; i += 8) {
            int16x8_t v = vld1q_s16(x + i), neg = vshrq_n_s16(v, 15);
            uint16x8_t m = vshlq_u16(vaddq_u16(vreinterpretq_u16_s16(vabsq_s16(v)), h), ns);
            int16x8_t r = vsubq_s16(veorq_s16(vreinterpretq_s16_u16(m), neg), neg);
            vst1_s8(q + i0 + i, vmovn_s16(r));
            tot = vpadalq_s16(tot, r);
        }
        int32_t t = vaddvq_s32(tot) + nn_act8_round_inl(x, full, len, s, q + i0);
        sh[k] = (uint8_t)s;
        if (sum)
            sum[k] = t;
    }
}

/* ---- numerics version 2: int8 activations (matmul_q8_a8) ------------------------------- */

/* nn_a8_flush with whole row blocks through mulshift2, two rows at a time. */
static void flush8_neon(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t r0, uint32_t r1, const int64_t acc[8])
{
    uint32_t r = rb * 8;
    if (r >= r0 && r + 8 <= r1) {
        uint32_t m = A->as[t].m;
        int s = A->as[t].e + A->w->exp - 16;
        int32x2_t v0, v1, v2, v3;
        if (mulshift2(vld1q_s64(acc), m, s, &v0) && mulshift2(vld1q_s64(acc + 2), m, s, &v1) &&
            mulshift2(vld1q_s64(acc + 4), m, s, &v2) && mulshift2(vld1q_s64(acc + 6), m, s, &v3)) {
            int32_t *o = A->out + (size_t)t * A->out_stride + r;
            vst1q_s32(o, vcombine_s32(v0, v1));
            vst1q_s32(o + 4, vcombine_s32(v2, v3));
            return;
        }
    }
    nn_a8_flush(A, t, rb, r0, r1, acc);
}

/* One interleaved row block's group sums r03 (rows 0-3) and r47, shifted by the token's
 * step and multiplied by the 8 mantissas into e[0..3] (rows 0-1, 2-3, 4-5, 6-7). */
static inline void il_scale8(int32x4_t r03, int32x4_t r47, int sh, const uint16_t *m8, int64x2_t e[4])
{
    uint16x8_t m = vld1q_u16(m8);
    int32x4_t ml = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(m)));
    int32x4_t mh = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(m)));
    int32x4_t k = vdupq_n_s32(sh);
    r03 = vshlq_s32(r03, k);
    r47 = vshlq_s32(r47, k);
    e[0] = vmlal_s32(e[0], vget_low_s32(r03), vget_low_s32(ml));
    e[1] = vmlal_high_s32(e[1], r03, ml);
    e[2] = vmlal_s32(e[2], vget_low_s32(r47), vget_low_s32(mh));
    e[3] = vmlal_high_s32(e[3], r47, mh);
}

static inline void store8(int64_t acc[8], const int64x2_t e[4])
{
    for (int i = 0; i < 4; i++)
        vst1q_s64(acc + 2 * i, e[i]);
}

/*
 * neon: vmull_s8 of 8 weight bytes (2 rows x 4 columns) by the 4 activation bytes
 * repeated; two quads' products share an int16 lane (at most 2 * 127^2 < 2^15) before
 * vpadalq_s16 adds pairs into int32 lanes [r (b0+b1), r (b2+b3), ...]; per group vpaddq
 * makes the rows' sums.
 */

/* Quads j and j+1 of one token (x, y: each quad's 4 bytes repeated) against their
 * weights (W0 W1: quad j's 32 bytes, V0 V1: quad j+1's), added into the token's s[4]. */
static inline __attribute__((always_inline)) void il_pair(int8x16_t W0, int8x16_t W1, int8x16_t V0, int8x16_t V1,
                                                          int8x16_t x, int8x16_t y, int32x4_t s[4])
{
    s[0] = vpadalq_s16(s[0], vmlal_s8(vmull_s8(vget_low_s8(W0), vget_low_s8(x)), vget_low_s8(V0), vget_low_s8(y)));
    s[1] = vpadalq_s16(s[1], vmlal_high_s8(vmull_high_s8(W0, x), V0, y));
    s[2] = vpadalq_s16(s[2], vmlal_s8(vmull_s8(vget_low_s8(W1), vget_low_s8(x)), vget_low_s8(V1), vget_low_s8(y)));
    s[3] = vpadalq_s16(s[3], vmlal_high_s8(vmull_high_s8(W1, x), V1, y));
}

/* The two quads at a and a + 4 (a token's quads j and j+1), each repeated over a
 * vector; memcpy, as the activations sit at any byte offset. */
static inline void quad_pair(const int8_t *a, int8x16_t *x, int8x16_t *y)
{
    uint32_t u, v;
    memcpy(&u, a, 4);
    memcpy(&v, a + 4, 4);
    *x = vreinterpretq_s8_u32(vdupq_n_u32(u));
    *y = vreinterpretq_s8_u32(vdupq_n_u32(v));
}

/* Quads j .. j1-1 of one token past the whole pairs (an odd count, or quads that run
 * past cols) into s[4], one by one: each quad's products alone in their int16 lanes. */
static inline void il_rest_neon(const int8_t *wq, const int8_t *a, uint32_t j, uint32_t j1, uint32_t cols,
                                int32x4_t s[4])
{
    for (; j < j1; j++) {
        const int8_t *W = wq + 32 * (size_t)j;
        int8x16_t x = vreinterpretq_s8_u32(vdupq_n_u32(nn_a8_quad(a, 4 * j, cols)));
        int8x16_t W0 = vld1q_s8(W), W1 = vld1q_s8(W + 16);
        s[0] = vpadalq_s16(s[0], vmull_s8(vget_low_s8(W0), vget_low_s8(x)));
        s[1] = vpadalq_s16(s[1], vmull_high_s8(W0, x));
        s[2] = vpadalq_s16(s[2], vmull_s8(vget_low_s8(W1), vget_low_s8(x)));
        s[3] = vpadalq_s16(s[3], vmull_high_s8(W1, x));
    }
}

/* Whole pairs of quads: from quad j while j + 2 <= j1 and both lie within cols. */
#define IL_PAIRS(j, j1, cols) for (; (j) + 2 <= (j1) && 4 * (j) + 8 <= (cols); (j) += 2)

static void il_neon(const nn_q8_mat *w, uint32_t rb, const int8_t *a, const uint8_t *sh, int64_t acc[8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    int64x2_t e[4] = { vdupq_n_s64(0), vdupq_n_s64(0), vdupq_n_s64(0), vdupq_n_s64(0) };
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4, j = j0;
        int32x4_t s[4] = { vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0) };
        IL_PAIRS(j, j1, w->cols) {
            const int8_t *W = wq + 32 * (size_t)j;
            int8x16_t x, y;
            quad_pair(a + 4 * j, &x, &y);
            il_pair(vld1q_s8(W), vld1q_s8(W + 16), vld1q_s8(W + 32), vld1q_s8(W + 48), x, y, s);
        }
        il_rest_neon(wq, a, j, j1, w->cols, s);
        il_scale8(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]), sh[g], wm + 8 * (size_t)g, e);
    }
    store8(acc, e);
}

/*
 * Prompt tile: a row block times four tokens, two at a time, each pair of weight
 * vectors loaded once for the two (two tokens' sums and scaled rows take 16 of the 32
 * vector registers; four would spill). The block's weights (cols x 8 bytes) come from
 * L1 for the second two. Same group sums as il_neon, so the same results.
 */
static void il4_neon(const nn_q8_mat *w, uint32_t rb, const int8_t *const a[4], const uint8_t *const sh[4],
                     int64_t acc[4][8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    for (int t = 0; t < 4; t += 2) {
        const int8_t *a0 = a[t], *a1 = a[t + 1];
        int64x2_t e0[4], e1[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            e0[i] = e1[i] = vdupq_n_s64(0);
        for (uint32_t g = 0; g < ng; g++) {
            uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4, j = j0;
            int32x4_t s0[4], s1[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                s0[i] = s1[i] = vdupq_n_s32(0);
            IL_PAIRS(j, j1, w->cols) {
                const int8_t *W = wq + 32 * (size_t)j;
                int8x16_t W0 = vld1q_s8(W), W1 = vld1q_s8(W + 16), V0 = vld1q_s8(W + 32), V1 = vld1q_s8(W + 48);
                int8x16_t x, y;
                quad_pair(a0 + 4 * j, &x, &y);
                il_pair(W0, W1, V0, V1, x, y, s0);
                quad_pair(a1 + 4 * j, &x, &y);
                il_pair(W0, W1, V0, V1, x, y, s1);
            }
            il_rest_neon(wq, a0, j, j1, w->cols, s0);
            il_rest_neon(wq, a1, j, j1, w->cols, s1);
            il_scale8(vpaddq_s32(s0[0], s0[1]), vpaddq_s32(s0[2], s0[3]), sh[t][g], wm + 8 * (size_t)g, e0);
            il_scale8(vpaddq_s32(s1[0], s1[1]), vpaddq_s32(s1[2], s1[3]), sh[t + 1][g], wm + 8 * (size_t)g, e1);
        }
        store8(acc[t], e0);
        store8(acc[t + 1], e1);
    }
}

#undef IL_PAIRS

/* sum q[i] * a[i] over one group of a row-major row. */
static int32_t gdot_neon(const int8_t *q, const int8_t *a, uint32_t n)
{
    int32x4_t c = vdupq_n_s32(0);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        c = vpadalq_s16(c, vmull_s8(vld1_s8(q + i), vld1_s8(a + i)));
    int32_t s = vaddvq_s32(c);
    for (; i < n; i++)
        s += q[i] * a[i];
    return s;
}

typedef int32x4_t (*gsum_fn)(const int8_t *q, const int8_t *a, uint32_t G);

/* One whole group (G a multiple of 16) of a row-major row times a token, in 4 lanes:
 * two products (at most 2 * 127^2) share an int16 lane before sadalp. */
static inline __attribute__((always_inline)) int32x4_t gsum_neon(const int8_t *q, const int8_t *a, uint32_t G)
{
    int32x4_t c = vdupq_n_s32(0);
    for (uint32_t i = 0; i < G; i += 16) {
        int8x16_t w = vld1q_s8(q + i), x = vld1q_s8(a + i);
        c = vpadalq_s16(c, vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x));
    }
    return c;
}

/*
 * A row-major row (the tied classifier) times one token, groups of a multiple of 16:
 * four groups' sums (gsum) reduced together, shifted by their steps (|sum| 2^sh < 2^31,
 * the contract's bound) and scaled by their mantissas into int64; the rest by gdot.
 */
static inline __attribute__((always_inline)) int64_t row_a8(const int8_t *q, const uint16_t *m, const int8_t *a,
                                                           const uint8_t *sh, uint32_t cols, uint32_t G,
                                                           uint32_t ng, gsum_fn gsum, nn_a8_gdot_fn gdot)
{
    int64x2_t lo = vdupq_n_s64(0), hi = lo;
    uint32_t full = G % 16 ? 0 : cols / G, g = 0;
    for (; g + 4 <= full; g += 4) {
        size_t i = (size_t)g * G;
        int32x4_t s = hsum4(gsum(q + i, a + i, G), gsum(q + i + G, a + i + G, G),
                            gsum(q + i + 2 * G, a + i + 2 * G, G), gsum(q + i + 3 * G, a + i + 3 * G, G));
        uint32_t sh4;
        memcpy(&sh4, sh + g, 4);
        s = vshlq_s32(s, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vcreate_u8(sh4))))));
        int32x4_t mv = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(m + g)));
        lo = vmlal_s32(lo, vget_low_s32(s), vget_low_s32(mv));
        hi = vmlal_high_s32(hi, s, mv);
    }
    return vaddvq_s64(vaddq_s64(lo, hi)) + nn_a8_row_groups(q, m, a, sh, cols, G, g, ng, gdot);
}

static int64_t row_a8_neon(const int8_t *q, const uint16_t *m, const int8_t *a, const uint8_t *sh, uint32_t cols,
                           uint32_t G, uint32_t ng)
{
    return G == 32 ? row_a8(q, m, a, sh, cols, 32, ng, gsum_neon, gdot_neon)
                   : row_a8(q, m, a, sh, cols, G, ng, gsum_neon, gdot_neon);
}

static void mm_a8_neon(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    static const nn_a8_path path = { il_neon, il4_neon, gdot_neon, row_a8_neon, flush8_neon };
    nn_a8_drive(A, r0, r1, &path);
}

const nn_kernels nn_kernels_neon = {
    .name = "neon",
    .matmul_q8_q16 = mm_neon,
    .matmul_q8_a8 = mm_a8_neon,
    .dot_i16 = dot_neon,
    .dot_rows_i16 = dot_rows_neon,
    .axpy_rows_i16 = axpy_rows_neon,
    .softmax_exp_q30 = softmax_exp_neon,
    .act8_quant = act8_neon,
    .silu_q16 = silu_neon,
    .scores_q16 = scores_neon,
    .probs_align = probs_align_neon,
    .quant_i32_i16 = quant_i32_neon,
    .mul_quant_i16 = mul_quant_neon,
    .sumsq_i32 = sumsq_neon,
    .rope_q30 = rope_neon,
    .add_sat_i32 = add_sat_neon,
    .round_sat_i64 = round_sat_neon,
};

/* ---- dotprod matmul ---------------------------------------------------------------- */

#if NN_HAVE_DOTPROD_KERNELS

/* 16 activations -> hi = a >> 8 and lo' = (a & 255) - 128, each as 16 int8. */
static inline void split16(const int16_t *a, int8x16_t *hi, int8x16_t *lo)
{
    int16x8_t x0 = vld1q_s16(a), x1 = vld1q_s16(a + 8);
    *hi = vcombine_s8(vshrn_n_s16(x0, 8), vshrn_n_s16(x1, 8));
    *lo = veorq_s8(vcombine_s8(vmovn_s16(x0), vmovn_s16(x1)), vdupq_n_s8((int8_t)0x80));
}

/* 256 * hi + lo' + 128 * wsum: the lanes of the true group sum. */
static inline int32x4_t combine(int32x4_t hi, int32x4_t lo, int32x4_t wsum)
{
    return vaddq_s32(vmlaq_n_s32(lo, hi, 256), vshlq_n_s32(wsum, 7));
}

/* One group of one row times one token, its activations split by split_row into xh and
 * xl (a only for a short tail, added exactly). */
static inline __attribute__((always_inline)) int32x4_t group_d1(const int8_t *q, const int8_t *xh_,
                                                               const int8_t *xl_, const int16_t *a, uint32_t len)
{
    int32x4_t h = vdupq_n_s32(0), l = h, ws = h;
    const int8x16_t ones = vdupq_n_s8(1);
    uint32_t i = 0;
    for (; i + 16 <= len; i += 16) {
        int8x16_t w = vld1q_s8(q + i), xh = vld1q_s8(xh_ + i), xl = vld1q_s8(xl_ + i);
        h = vdotq_s32(h, w, xh);
        l = vdotq_s32(l, w, xl);
        ws = vdotq_s32(ws, w, ones);
    }
    int32x4_t c = combine(h, l, ws);
    if (i < len)
        c = add_lane0(c, tail_dot(q + i, a + i, len - i));
    return c;
}

static inline __attribute__((always_inline)) int64_t row_d1(const int8_t *q, const uint16_t *m, const int8_t *xh,
                                                            const int8_t *xl, const int16_t *a, uint32_t cols,
                                                            uint32_t G, uint32_t ng)
{
    int64x2_t lo = vdupq_n_s64(0), hi = lo;
    uint32_t full = cols / G, g = 0;
    for (; g + 4 <= full; g += 4) {
        size_t i = (size_t)g * G;
        int32x4_t s = hsum4(group_d1(q + i, xh + i, xl + i, a + i, G),
                            group_d1(q + i + G, xh + i + G, xl + i + G, a + i + G, G),
                            group_d1(q + i + 2 * G, xh + i + 2 * G, xl + i + 2 * G, a + i + 2 * G, G),
                            group_d1(q + i + 3 * G, xh + i + 3 * G, xl + i + 3 * G, a + i + 3 * G, G));
        int32x4_t mv = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(m + g)));
        lo = vmlal_s32(lo, vget_low_s32(s), vget_low_s32(mv));
        hi = vmlal_high_s32(hi, s, mv);
    }
    int64_t acc = vaddvq_s64(vaddq_s64(lo, hi));
    for (; g < ng; g++) {
        uint32_t i0 = g * G, len = cols - i0 < G ? cols - i0 : G;
        acc += (int64_t)vaddvq_s32(group_d1(q + i0, xh + i0, xl + i0, a + i0, len)) * m[g];
    }
    return acc;
}

/* Four tokens' split activations, or one token's. */
static _Thread_local int8_t split_buf[8 * SPLIT_COLS] __attribute__((aligned(16)));

/* One token's activations split as split16 does: its hi bytes to h, its lo' bytes to
 * l, for every whole 16 columns (a group's short tail reads the int16 values). */
static void split_row(const int16_t *a, uint32_t cols, int8_t *h, int8_t *l)
{
    for (uint32_t i = 0; i + 16 <= cols; i += 16) {
        int8x16_t xh, xl;
        split16(a + i, &xh, &xl);
        vst1q_s8(h + i, xh);
        vst1q_s8(l + i, xl);
    }
}

/* Four tokens: token t's hi bytes at split + 2 t cols, its lo' bytes at
 * split + (2 t + 1) cols. */
static void split_tokens(const int16_t *const a[4], uint32_t cols, int8_t *split)
{
    for (uint32_t t = 0; t < 4; t++)
        split_row(a[t], cols, split + 2 * (size_t)t * cols, split + (2 * (size_t)t + 1) * cols);
}

/* Prefill: rows qa, qb times tokens a[0..3], their activations split by split_tokens
 * (a[] only for a group's short tail); each row's weight sum (sdot with ones) once for
 * all four tokens. */
static void rows_2x4_dot(const int8_t *qa, const int8_t *qb, const uint16_t *ma, const uint16_t *mb,
                         const int16_t *const a[4], const int8_t *split, uint32_t cols, uint32_t G, uint32_t ng,
                         int64_t out[2][4])
{
    int64x2_t ea = vdupq_n_s64(0), fa = ea, eb = ea, fb = ea;
    const int8x16_t ones = vdupq_n_s8(1);
    for (uint32_t g = 0, i0 = 0; g < ng; g++, i0 += G) {
        uint32_t len = cols - i0 < G ? cols - i0 : G, i1 = i0 + (len & ~15u);
        /* Arrays indexed by constants in fully unrolled loops: they live in registers. */
        int32x4_t z = vdupq_n_s32(0), wsa = z, wsb = z;
        int32x4_t ha[4] = { z, z, z, z }, la[4] = { z, z, z, z }, hb[4] = { z, z, z, z }, lb[4] = { z, z, z, z };
        for (uint32_t i = i0; i < i1; i += 16) {
            int8x16_t wa = vld1q_s8(qa + i), wb = vld1q_s8(qb + i);
            wsa = vdotq_s32(wsa, wa, ones);
            wsb = vdotq_s32(wsb, wb, ones);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                int8x16_t xh = vld1q_s8(split + 2 * (size_t)t * cols + i);
                int8x16_t xl = vld1q_s8(split + (2 * (size_t)t + 1) * cols + i);
                ha[t] = vdotq_s32(ha[t], wa, xh);
                la[t] = vdotq_s32(la[t], wa, xl);
                hb[t] = vdotq_s32(hb[t], wb, xh);
                lb[t] = vdotq_s32(lb[t], wb, xl);
            }
        }
        int32x4_t ca[4], cb[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            ca[t] = combine(ha[t], la[t], wsa);
            cb[t] = combine(hb[t], lb[t], wsb);
        }
        if (i1 < i0 + len) {
            uint32_t n = i0 + len - i1;
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                ca[t] = add_lane0(ca[t], tail_dot(qa + i1, a[t] + i1, n));
                cb[t] = add_lane0(cb[t], tail_dot(qb + i1, a[t] + i1, n));
            }
        }
        mla4(&ea, &fa, hsum4(ca[0], ca[1], ca[2], ca[3]), ma[g]);
        mla4(&eb, &fb, hsum4(cb[0], cb[1], cb[2], cb[3]), mb[g]);
    }
    store4(out[0], ea, fa);
    store4(out[1], eb, fb);
}

static void mm_dotprod(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = A->w;
    /* Groups that are not a multiple of 16 and rows wider than the split buffers take
     * neon's kernels (smlal, no split). */
    if (w->group % 16 || w->cols > SPLIT_COLS || r0 >= r1) {
        mm_neon(A, r0, r1);
        return;
    }
    if (A->n_tok > 1) {
        prefill(A, r0, r1, rows_2x4_dot, split_buf);
        return;
    }
    /* Decode: the token's activations split once for every row. */
    int8_t *xh = split_buf, *xl = split_buf + w->cols;
    split_row(A->a, w->cols, xh, xl);
    int shift = A->as[0].e + w->exp - 16;
    for (uint32_t r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * w->cols;
        const uint16_t *m = w->m + (size_t)r * w->ngroups;
        /* Groups of 32 (the default) unrolled whole. */
        int64_t acc = w->group == 32 ? row_d1(q, m, xh, xl, A->a, w->cols, 32, w->ngroups)
                                     : row_d1(q, m, xh, xl, A->a, w->cols, w->group, w->ngroups);
        A->out[r] = nn_mulshift_sat32_inl(acc, A->as[0].m, shift);
    }
}

/* dotprod, int8 activations: sdot of 16 weight bytes (4 rows x 4 columns) by one
 * activation quad (by element, or repeated over a vector at a ragged end) adds each
 * row's quad to its lane. */
static void il_dotprod(const nn_q8_mat *w, uint32_t rb, const int8_t *a, const uint8_t *sh, int64_t acc[8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    int64x2_t e[4] = { vdupq_n_s64(0), vdupq_n_s64(0), vdupq_n_s64(0), vdupq_n_s64(0) };
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4;
        int32x4_t lo = vdupq_n_s32(0), hi = lo;
        uint32_t j = j0;
        /* Four quads from one 16-byte load, each picked by the indexed sdot. */
        for (; j + 4 <= j1 && 4 * j + 16 <= w->cols; j += 4) {
            int8x16_t x = vld1q_s8(a + 4 * j);
            const int8_t *W = wq + 32 * (size_t)j;
            lo = vdotq_laneq_s32(lo, vld1q_s8(W), x, 0);
            hi = vdotq_laneq_s32(hi, vld1q_s8(W + 16), x, 0);
            lo = vdotq_laneq_s32(lo, vld1q_s8(W + 32), x, 1);
            hi = vdotq_laneq_s32(hi, vld1q_s8(W + 48), x, 1);
            lo = vdotq_laneq_s32(lo, vld1q_s8(W + 64), x, 2);
            hi = vdotq_laneq_s32(hi, vld1q_s8(W + 80), x, 2);
            lo = vdotq_laneq_s32(lo, vld1q_s8(W + 96), x, 3);
            hi = vdotq_laneq_s32(hi, vld1q_s8(W + 112), x, 3);
        }
        for (; j < j1; j++) {
            int8x16_t x = vreinterpretq_s8_u32(vdupq_n_u32(nn_a8_quad(a, 4 * j, w->cols)));
            lo = vdotq_s32(lo, vld1q_s8(wq + 32 * (size_t)j), x);
            hi = vdotq_s32(hi, vld1q_s8(wq + 32 * (size_t)j + 16), x);
        }
        il_scale8(lo, hi, sh[g], wm + 8 * (size_t)g, e);
    }
    store8(acc, e);
}

/* One quad j of four tokens' activations against a row block's 8 rows: each token's
 * quad broadcast by the indexed sdot (lane k of x[t], a compile-time constant). Uses
 * il4_dotprod's lo[4], hi[4] and x[4]. */
#define IL4_QUAD(W, k)                                                                                         \
    do {                                                                                                       \
        int8x16_t wl_ = vld1q_s8((W)), wh_ = vld1q_s8((W) + 16);                                               \
        _Pragma("GCC unroll 4") for (int t_ = 0; t_ < 4; t_++) {                                               \
            lo[t_] = vdotq_laneq_s32(lo[t_], wl_, x[t_], k);                                                   \
            hi[t_] = vdotq_laneq_s32(hi[t_], wh_, x[t_], k);                                                   \
        }                                                                                                      \
    } while (0)

/*
 * Prefill tile: a row block times four tokens. A weight vector is loaded once for the
 * four tokens, and each token's 16 activation bytes (four quads) once for four sdot by
 * element, with no broadcast per quad. Quads whose 16-byte load would pass the last
 * column go one by one. Same group sums, so the same results.
 */
static void il4_dotprod(const nn_q8_mat *w, uint32_t rb, const int8_t *const a[4], const uint8_t *const sh[4],
                        int64_t acc[4][8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    int64x2_t e[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            e[t][i] = vdupq_n_s64(0);
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4, j = j0;
        int32x4_t lo[4], hi[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++)
            lo[t] = hi[t] = vdupq_n_s32(0);
        for (; j + 4 <= j1 && 4 * j + 16 <= w->cols; j += 4) {
            int8x16_t x[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                x[t] = vld1q_s8(a[t] + 4 * j);
            const int8_t *W = wq + 32 * (size_t)j;
            IL4_QUAD(W, 0);
            IL4_QUAD(W + 32, 1);
            IL4_QUAD(W + 64, 2);
            IL4_QUAD(W + 96, 3);
        }
        for (; j < j1; j++) {
            int8x16_t x[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                x[t] = vreinterpretq_s8_u32(vdupq_n_u32(nn_a8_quad(a[t], 4 * j, w->cols)));
            IL4_QUAD(wq + 32 * (size_t)j, 0);
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++)
            il_scale8(lo[t], hi[t], sh[t][g], wm + 8 * (size_t)g, e[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
        store8(acc[t], e[t]);
}

#undef IL4_QUAD

static int32_t gdot_dotprod(const int8_t *q, const int8_t *a, uint32_t n)
{
    int32x4_t c = vdupq_n_s32(0);
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16)
        c = vdotq_s32(c, vld1q_s8(q + i), vld1q_s8(a + i));
    int32_t s = vaddvq_s32(c);
    for (; i < n; i++)
        s += q[i] * a[i];
    return s;
}

static inline __attribute__((always_inline)) int32x4_t gsum_dotprod(const int8_t *q, const int8_t *a, uint32_t G)
{
    int32x4_t c = vdupq_n_s32(0);
    for (uint32_t i = 0; i < G; i += 16)
        c = vdotq_s32(c, vld1q_s8(q + i), vld1q_s8(a + i));
    return c;
}

static int64_t row_a8_dotprod(const int8_t *q, const uint16_t *m, const int8_t *a, const uint8_t *sh, uint32_t cols,
                              uint32_t G, uint32_t ng)
{
    return G == 32 ? row_a8(q, m, a, sh, cols, 32, ng, gsum_dotprod, gdot_dotprod)
                   : row_a8(q, m, a, sh, cols, G, ng, gsum_dotprod, gdot_dotprod);
}

static void mm_a8_dotprod(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    static const nn_a8_path path = { il_dotprod, il4_dotprod, gdot_dotprod, row_a8_dotprod, flush8_neon };
    nn_a8_drive(A, r0, r1, &path);
}

const nn_kernels nn_kernels_dotprod = {
    .name = "dotprod",
    .matmul_q8_q16 = mm_dotprod,
    .matmul_q8_a8 = mm_a8_dotprod,
    .dot_i16 = dot_neon,
    .dot_rows_i16 = dot_rows_neon,
    .axpy_rows_i16 = axpy_rows_neon,
    .softmax_exp_q30 = softmax_exp_neon,
    .act8_quant = act8_neon,
    .silu_q16 = silu_neon,
    .scores_q16 = scores_neon,
    .probs_align = probs_align_neon,
    .quant_i32_i16 = quant_i32_neon,
    .mul_quant_i16 = mul_quant_neon,
    .sumsq_i32 = sumsq_neon,
    .rope_q30 = rope_neon,
    .add_sat_i32 = add_sat_neon,
    .round_sat_i64 = round_sat_neon,
};

#endif /* NN_HAVE_DOTPROD_KERNELS */

#endif /* NN_HAVE_NEON_KERNELS */
