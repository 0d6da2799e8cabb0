/*
 * x86-64 AVX2 kernels, bit-exact with kernels_ref.c. Compiled for AVX2 with a target
 * pragma (the rest of the build stays baseline x86-64), and offered by kernels.c only
 * when the CPU reports AVX2, so one host binary runs everywhere.
 *
 * Products: vpmovsxbw widens 16 int8 weights, vpmaddwd multiplies them by 16 int16
 * activations and adds pairs into 8 int32 lanes. Every int32 lane (and every sum of
 * lanes made while reducing) is a sum over a subset of one group's products, so its
 * magnitude is at most 256 * 127 * 32767 < 2^31: exact. Lanes are reduced to one int32
 * group sum per (row, token) before the 64-bit multiply by the group mantissa
 * (vpmuldq), so the 64-bit work is once per group, not once per product.
 *
 * Fast paths: group % 16 == 0 (a group is whole 16-wide chunks; the last group of a row
 * may be short and end in a scalar tail), and groups of 4 or 8. Other group sizes use
 * the reference.
 */
#include "nn_kernels_impl.h"

#if NN_HAVE_X86_KERNELS

#include <immintrin.h>
#include <string.h>
/* gcc: a target pragma; clang (the fuzz builds) ignores that one and takes an attribute. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#include "fixed_inline.h"
#include "nn_fixed.h"
#include "kernels_x86.h"
#include "kernels_a8.h"

/* v in lane 0, zeros elsewhere. */
static inline __m256i lane0(int32_t v)
{
    return _mm256_zextsi128_si256(_mm_cvtsi32_si128(v));
}

static inline __m256i widen16(const int8_t *q)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)q));
}

static inline __m256i load16(const int16_t *a)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)a);
}

static inline __m128i load8(const int16_t *a)
{
    return _mm_loadu_si128((const __m128i *)(const void *)a);
}

/* sum q[i] * a[i] for a short tail (n < 16), exact. */
static inline int32_t tail_dot(const int8_t *q, const int16_t *a, uint32_t n)
{
    int32_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += q[i] * a[i];
    return s;
}

/* One group's products (len <= 256 values) as 8 int32 lanes; the tail goes to lane 0. */
static inline __attribute__((always_inline)) __m256i group_vec(const int8_t *q, const int16_t *a, uint32_t len)
{
    __m256i c = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 16 <= len; i += 16)
        c = _mm256_add_epi32(c, _mm256_madd_epi16(widen16(q + i), load16(a + i)));
    if (i < len)
        c = _mm256_add_epi32(c, lane0(tail_dot(q + i, a + i, len - i)));
    return c;
}

/*
 * Decode: one row times one token. Eight whole groups at a time reduce to one vector of
 * eight group sums, multiplied by eight contiguous mantissas (one load); the remaining
 * groups (fewer than eight, and a short last group) go one by one.
 */
static inline __attribute__((always_inline)) int64_t row_x1(const int8_t *q, const uint16_t *m, const int16_t *a,
                                                            uint32_t cols, uint32_t G, uint32_t ng)
{
    __m256i e = _mm256_setzero_si256(), o = e;
    uint32_t full = cols / G, g = 0;
    for (; g + 8 <= full; g += 8) {
        const int8_t *qg = q + (size_t)g * G;
        const int16_t *ag = a + (size_t)g * G;
        for (uint32_t p = 0; p < 8 * G; p += 64)
            _mm_prefetch((const char *)qg + PF_DIST + p, _MM_HINT_T0);
        __m256i s = hsum8(group_vec(qg, ag, G), group_vec(qg + G, ag + G, G), group_vec(qg + 2 * G, ag + 2 * G, G),
                          group_vec(qg + 3 * G, ag + 3 * G, G), group_vec(qg + 4 * G, ag + 4 * G, G),
                          group_vec(qg + 5 * G, ag + 5 * G, G), group_vec(qg + 6 * G, ag + 6 * G, G),
                          group_vec(qg + 7 * G, ag + 7 * G, G));
        scale8(s, m + g, &e, &o);
    }
    int64_t acc = hsum_i64(_mm256_add_epi64(e, o));
    for (; g < full; g++) {
        _mm_prefetch((const char *)(q + (size_t)g * G) + PF_DIST, _MM_HINT_T0);
        acc += (int64_t)hsum1(group_vec(q + (size_t)g * G, a + (size_t)g * G, G)) * m[g];
    }
    if (g < ng) /* a short last group */
        acc += (int64_t)hsum1(group_vec(q + (size_t)g * G, a + (size_t)g * G, cols - g * G)) * m[g];
    return acc;
}

/* One group of rows qa, qb times four tokens -> [qa t0..t3, qb t0..t3] group sums. Each
 * activation chunk is loaded once for two rows, each weight chunk widened once for four
 * tokens: six loads per 128 products, where one row times eight tokens would need nine. */
static inline __attribute__((always_inline)) __m256i group_2x4(const int8_t *qa, const int8_t *qb,
                                                               const int16_t *const a[4], uint32_t i0, uint32_t len)
{
    uint32_t i1 = i0 + (len & ~15u);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
            c13 = c00;
#pragma GCC unroll 16
    for (uint32_t i = i0; i < i1; i += 16) {
        __m256i wa = widen16(qa + i), wb = widen16(qb + i), x;
        x = load16(a[0] + i);
        c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(wa, x));
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(wb, x));
        x = load16(a[1] + i);
        c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(wa, x));
        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(wb, x));
        x = load16(a[2] + i);
        c02 = _mm256_add_epi32(c02, _mm256_madd_epi16(wa, x));
        c12 = _mm256_add_epi32(c12, _mm256_madd_epi16(wb, x));
        x = load16(a[3] + i);
        c03 = _mm256_add_epi32(c03, _mm256_madd_epi16(wa, x));
        c13 = _mm256_add_epi32(c13, _mm256_madd_epi16(wb, x));
    }
    if (i1 < i0 + len) {
        uint32_t n = i0 + len - i1;
        c00 = _mm256_add_epi32(c00, lane0(tail_dot(qa + i1, a[0] + i1, n)));
        c01 = _mm256_add_epi32(c01, lane0(tail_dot(qa + i1, a[1] + i1, n)));
        c02 = _mm256_add_epi32(c02, lane0(tail_dot(qa + i1, a[2] + i1, n)));
        c03 = _mm256_add_epi32(c03, lane0(tail_dot(qa + i1, a[3] + i1, n)));
        c10 = _mm256_add_epi32(c10, lane0(tail_dot(qb + i1, a[0] + i1, n)));
        c11 = _mm256_add_epi32(c11, lane0(tail_dot(qb + i1, a[1] + i1, n)));
        c12 = _mm256_add_epi32(c12, lane0(tail_dot(qb + i1, a[2] + i1, n)));
        c13 = _mm256_add_epi32(c13, lane0(tail_dot(qb + i1, a[3] + i1, n)));
    }
    return hsum8(c00, c01, c02, c03, c10, c11, c12, c13);
}

/*
 * Prefill: rows ra, rb times tokens a[0..3]. Per group the eight sums meet the two
 * rows' mantissas [ma, ma, mb, mb] in 64-bit lanes:
 *   e = [ra t0, ra t2, rb t0, rb t2],  o = [ra t1, ra t3, rb t1, rb t3].
 */
static inline __attribute__((always_inline)) void rows_2x4(const int8_t *qa, const int8_t *qb, const uint16_t *ma,
                                                           const uint16_t *mb, const int16_t *const a[4],
                                                           uint32_t cols, uint32_t G, uint32_t ng, int64_t out[2][4])
{
    __m256i e = _mm256_setzero_si256(), o = e;
    uint32_t full = cols / G, g = 0;
    for (; g <= full; g++) {
        uint32_t len = g < full ? G : cols - g * G;
        if (g == full && (g == ng || len == 0))
            break;
        __m256i s = group_2x4(qa, qb, a, g * G, g < full ? G : len);
        __m256i mv = _mm256_set_epi64x(mb[g], mb[g], ma[g], ma[g]);
        e = _mm256_add_epi64(e, _mm256_mul_epi32(s, mv));
        o = _mm256_add_epi64(o, _mm256_mul_epi32(_mm256_srli_epi64(s, 32), mv));
    }
    int64_t ev[4], ov[4];
    _mm256_storeu_si256((__m256i *)(void *)ev, e);
    _mm256_storeu_si256((__m256i *)(void *)ov, o);
    out[0][0] = ev[0]; out[0][1] = ov[0]; out[0][2] = ev[1]; out[0][3] = ov[1];
    out[1][0] = ev[2]; out[1][1] = ov[2]; out[1][2] = ev[3]; out[1][3] = ov[3];
}

/* The kernels specialised for common group sizes, so the group loops unroll. */
static void rows_x1(const nn_mm_args *A, uint32_t r0, uint32_t r1, uint32_t G)
{
    const nn_q8_mat *w = A->w;
    int shift = A->as[0].e + w->exp - 16;
    for (uint32_t r = r0; r < r1; r++) {
        const int8_t *q = w->q + (size_t)r * w->cols;
        const uint16_t *m = w->m + (size_t)r * w->ngroups;
        int64_t acc;
        switch (G) {
        case 32: acc = row_x1(q, m, A->a, w->cols, 32, w->ngroups); break;
        case 64: acc = row_x1(q, m, A->a, w->cols, 64, w->ngroups); break;
        default: acc = row_x1(q, m, A->a, w->cols, G, w->ngroups); break;
        }
        A->out[r] = nn_mulshift_sat32_inl(acc, A->as[0].m, shift);
    }
}

/* Rows handled per L2-resident chunk in prefill: about 96 KiB of weights. */
static uint32_t chunk_rows(uint32_t cols)
{
    uint32_t n = (96u << 10) / cols;
    return n < 1 ? 1 : n;
}

/*
 * Small groups (4 or 8 values: the 260K models, whose hidden width 172 admits no group
 * of 16): one row times one token, eight groups per step. vpmaddwd makes the sums of
 * value pairs; vphaddd adds neighbouring pairs into sums of 4 (once more for 8),
 * interleaving the two 128-bit halves, which a vpermq after each vphaddd puts back in
 * order; then eight group sums times eight mantissas in two vpmuldq (even and odd
 * lanes). Groups past the last whole step, a short last group among them, are added one
 * by one.
 */
static inline __m256i sums4_x8(const int8_t *q, const int16_t *a)
{
    __m256i p0 = _mm256_madd_epi16(widen16(q), load16(a));
    __m256i p1 = _mm256_madd_epi16(widen16(q + 16), load16(a + 16));
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(p0, p1), 0xd8);
}

static inline __attribute__((always_inline)) int64_t row_small(const int8_t *q, const uint16_t *m, const int16_t *a,
                                                               uint32_t cols, uint32_t g, uint32_t ng)
{
    __m256i acc = _mm256_setzero_si256();
    uint32_t k = 0;
    for (; k + 8 <= ng && (k + 8) * g <= cols; k += 8) {
        const int8_t *qk = q + (size_t)k * g;
        const int16_t *ak = a + (size_t)k * g;
        __m256i s = sums4_x8(qk, ak);
        if (g == 8)
            s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(s, sums4_x8(qk + 32, ak + 32)), 0xd8);
        __m256i mv = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(m + k)));
        acc = _mm256_add_epi64(acc, _mm256_mul_epi32(s, mv));
        acc = _mm256_add_epi64(acc, _mm256_mul_epi32(_mm256_srli_epi64(s, 32), _mm256_srli_epi64(mv, 32)));
    }
    int64_t r = hsum_i64(acc);
    for (uint32_t i0 = k * g; k < ng; k++, i0 += g) {
        uint32_t n = cols - i0 < g ? cols - i0 : g;
        r += (int64_t)tail_dot(q + i0, a + i0, n) * m[k];
    }
    return r;
}

void nn_matmul_small_groups_avx2(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = A->w;
    for (uint32_t t = 0; t < A->n_tok; t++) {
        const int16_t *a = A->a + (size_t)t * A->a_stride;
        int shift = A->as[t].e + w->exp - 16;
        for (uint32_t r = r0; r < r1; r++) {
            const int8_t *q = w->q + (size_t)r * w->cols;
            const uint16_t *m = w->m + (size_t)r * w->ngroups;
            int64_t acc = w->group == 4 ? row_small(q, m, a, w->cols, 4, w->ngroups)
                                        : row_small(q, m, a, w->cols, 8, w->ngroups);
            A->out[(size_t)t * A->out_stride + r] = nn_mulshift_sat32_inl(acc, A->as[t].m, shift);
        }
    }
}

static void mm_avx2(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = A->w;
    if (w->group == 4 || w->group == 8) {
        nn_matmul_small_groups_avx2(A, r0, r1);
        return;
    }
    if (w->group % 16 || r0 >= r1) {
        nn_matmul_q8_q16_ref(A, r0, r1);
        return;
    }
    const uint32_t T = A->n_tok, G = w->group;
    if (T == 1) {
        rows_x1(A, r0, r1, G);
        return;
    }
    /*
     * Prefill: a chunk of rows stays in L2 while every token of the block passes over
     * it, so each weight comes from memory once per block; within the chunk a pair of
     * rows meets four tokens at a time, whose activations stay in L1. A last, short set
     * of tokens repeats its last token and drops those results.
     */
    const uint32_t CR = chunk_rows(w->cols);
    for (uint32_t c0 = r0; c0 < r1; c0 += CR) {
        uint32_t c1 = c0 + CR < r1 ? c0 + CR : r1;
        for (uint32_t t = 0; t < T; t += 4) {
            const int16_t *a[4];
            for (uint32_t k = 0; k < 4; k++)
                a[k] = A->a + (size_t)(t + k < T ? t + k : T - 1) * A->a_stride;
            for (uint32_t r = c0; r < c1; r += 2) {
                uint32_t rb = r + 1 < c1 ? r + 1 : r;
                const int8_t *qa = w->q + (size_t)r * w->cols, *qb = w->q + (size_t)rb * w->cols;
                const uint16_t *ma = w->m + (size_t)r * w->ngroups, *mb = w->m + (size_t)rb * w->ngroups;
                int64_t acc[2][4];
                switch (G) {
                case 32: rows_2x4(qa, qb, ma, mb, a, w->cols, 32, w->ngroups, acc); break;
                case 64: rows_2x4(qa, qb, ma, mb, a, w->cols, 64, w->ngroups, acc); break;
                default: rows_2x4(qa, qb, ma, mb, a, w->cols, G, w->ngroups, acc); break;
                }
                for (uint32_t i = 0; i < 2 && r + i < c1; i++)
                    for (uint32_t k = 0; k < 4 && t + k < T; k++)
                        A->out[(size_t)(t + k) * A->out_stride + r + i] =
                            nn_mulshift_sat32_inl(acc[i][k], A->as[t + k].m, A->as[t + k].e + w->exp - 16);
            }
        }
    }
}

/*
 * sum a[i] * b[i]: a pair of int16 products is at most 2 * 32767^2 < 2^31, so each
 * vpmaddwd lane is exact, and is widened to int64 before it is added to anything.
 */
int64_t nn_dot_i16_avx2(const int16_t *a, const int16_t *b, uint32_t n)
{
    __m256i acc = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i p = _mm256_madd_epi16(load16(a + i), load16(b + i));
        acc = _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(p)));
        acc = _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(p, 1)));
    }
    int64_t v[4];
    _mm256_storeu_si256((__m256i *)(void *)v, acc);
    int64_t s = v[0] + v[1] + v[2] + v[3];
    for (; i < n; i++)
        s += (int32_t)a[i] * b[i];
    return s;
}

/* q[i] = 256 qh[i] + ql[i], qh in [-128, 127], ql in [0, 255]. */
static inline void split_bytes(const int16_t *q, uint32_t n, int16_t *qh, int16_t *ql)
{
    for (uint32_t i = 0; i < n; i++) {
        ql[i] = (int16_t)(q[i] & 255);
        qh[i] = (int16_t)((q[i] - ql[i]) / 256);
    }
}

/*
 * Attention scores for head sizes in whole 16-lane chunks up to 256 (every llama head
 * size), four rows at a time. q = 256 * qh + ql with qh in [-128, 127] and ql in
 * [0, 255], so q . k = 256 * (qh . k) + (ql . k), and with n <= 256 both parts stay
 * inside int32 in any order of summation: |qh . k| <= 256 * 128 * 32768 = 2^30 and
 * |ql . k| <= 256 * 255 * 32768 < 2^31. So the products accumulate in int32 lanes, two
 * vpmaddwd per 16 values and row, and meet int64 once per row. Heads of 8 have their
 * own four-row step; other sizes, and the last rows of a count that is not a multiple
 * of four, go row by row.
 */
void nn_dot_rows_i16_avx2(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                          int64_t *out)
{
    uint32_t j = 0;
    if (n % 16 == 0 && n <= 256) {
        int16_t qh[256], ql[256];
        split_bytes(q, n, qh, ql);
        for (; j + 4 <= n_rows; j += 4) {
            const int16_t *k0 = k + j * k_stride, *k1 = k0 + k_stride, *k2 = k1 + k_stride, *k3 = k2 + k_stride;
            if (j + ATT_PF_ROWS + 4 <= n_rows)
                for (uint32_t r = 0; r < 4; r++)
                    for (uint32_t off = 0; off < n * 2; off += 64)
                        _mm_prefetch((const char *)(k0 + (ATT_PF_ROWS + r) * k_stride) + off, _MM_HINT_T0);
            __m256i h0 = _mm256_setzero_si256(), l0 = h0, h1 = h0, l1 = h0, h2 = h0, l2 = h0, h3 = h0, l3 = h0;
            for (uint32_t i = 0; i < n; i += 16) {
                __m256i a = load16(qh + i), b = load16(ql + i), x;
                x = load16(k0 + i);
                h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(a, x));
                l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(b, x));
                x = load16(k1 + i);
                h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(a, x));
                l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(b, x));
                x = load16(k2 + i);
                h2 = _mm256_add_epi32(h2, _mm256_madd_epi16(a, x));
                l2 = _mm256_add_epi32(l2, _mm256_madd_epi16(b, x));
                x = load16(k3 + i);
                h3 = _mm256_add_epi32(h3, _mm256_madd_epi16(a, x));
                l3 = _mm256_add_epi32(l3, _mm256_madd_epi16(b, x));
            }
            int32_t v[8];
            _mm256_storeu_si256((__m256i *)(void *)v, hsum8(h0, l0, h1, l1, h2, l2, h3, l3));
            for (uint32_t r = 0; r < 4; r++)
                out[j + r] = (int64_t)v[2 * r] * 256 + v[2 * r + 1];
        }
    }
    if (n == 8) {
        /* Heads of 8 (the 260K models): q split as above and repeated in both halves,
         * two rows per vector. Two rounds of vphaddd (three instructions) leave
         * [row 0, row 2 | row 1, row 3], each as its high and low part. */
        int16_t qh[16], ql[16];
        split_bytes(q, 8, qh, ql);
        split_bytes(q, 8, qh + 8, ql + 8);
        const __m256i a = load16(qh), b = load16(ql);
        for (; j + 4 <= n_rows; j += 4) {
            const int16_t *k0 = k + j * k_stride;
            __m256i x01 = _mm256_inserti128_si256(_mm256_castsi128_si256(load8(k0)), load8(k0 + k_stride), 1);
            __m256i x23 = _mm256_inserti128_si256(_mm256_castsi128_si256(load8(k0 + 2 * k_stride)),
                                                  load8(k0 + 3 * k_stride), 1);
            __m256i u = _mm256_hadd_epi32(_mm256_madd_epi16(a, x01), _mm256_madd_epi16(b, x01));
            __m256i w = _mm256_hadd_epi32(_mm256_madd_epi16(a, x23), _mm256_madd_epi16(b, x23));
            int32_t v[8];
            _mm256_storeu_si256((__m256i *)(void *)v, _mm256_hadd_epi32(u, w));
            out[j] = (int64_t)v[0] * 256 + v[1];
            out[j + 1] = (int64_t)v[4] * 256 + v[5];
            out[j + 2] = (int64_t)v[2] * 256 + v[3];
            out[j + 3] = (int64_t)v[6] * 256 + v[7];
        }
    }
    for (; j < n_rows; j++)
        out[j] = nn_dot_i16_avx2(q, k + j * k_stride, n);
}

/* acc[i] += sum_j p[j] * v[j][i] for the columns [i0, n): vpmuldq, p (< 2^31) times
 * sign-extended v in 64-bit lanes, four columns at a time, then one by one. */
static void axpy_cols_wide(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t i0, uint32_t n,
                           uint32_t n_rows, int64_t *acc)
{
    uint32_t i = i0;
    for (; i + 4 <= n; i += 4) {
        __m256i s = _mm256_loadu_si256((const __m256i *)(const void *)(acc + i));
        for (uint32_t j = 0; j < n_rows; j++) {
            __m256i x = _mm256_cvtepi16_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(v + j * v_stride + i)));
            s = _mm256_add_epi64(s, _mm256_mul_epi32(x, _mm256_set1_epi64x(p[j])));
        }
        _mm256_storeu_si256((__m256i *)(void *)(acc + i), s);
    }
    for (; i < n; i++)
        for (uint32_t j = 0; j < n_rows; j++)
            acc[i] += (int64_t)p[j] * v[j * v_stride + i];
}

/* acc[i] += (h << 16) + (m << 8) + l for the four outputs whose int32 parts are in the
 * low (hi128 = 0) or high 128 bits of h, m, l. */
static inline void axpy_flush4(int64_t *acc, __m256i h, __m256i m, __m256i l, int hi128)
{
    __m128i h4 = hi128 ? _mm256_extracti128_si256(h, 1) : _mm256_castsi256_si128(h);
    __m128i m4 = hi128 ? _mm256_extracti128_si256(m, 1) : _mm256_castsi256_si128(m);
    __m128i l4 = hi128 ? _mm256_extracti128_si256(l, 1) : _mm256_castsi256_si128(l);
    __m256i x = _mm256_add_epi64(_mm256_slli_epi64(_mm256_cvtepi32_epi64(h4), 16),
                                 _mm256_add_epi64(_mm256_slli_epi64(_mm256_cvtepi32_epi64(m4), 8),
                                                  _mm256_cvtepi32_epi64(l4)));
    __m256i *o = (__m256i *)(void *)acc;
    _mm256_storeu_si256(o, _mm256_add_epi64(_mm256_loadu_si256(o), x));
}

/*
 * Attention values for the columns [0, n16) (n16 a multiple of 16), two rows at a time:
 * p = 2^16 ph + 2^8 pm + pl, with ph < 2^15 and pm, pl < 2^8, so each part of a pair of
 * rows is one vpmaddwd on the rows' interleaved values, and the parts accumulate in
 * int32 over a block of rows:
 *  - pm and pl: at most 2 * AXPY_MAX_PAIRS = 128 rows (axpy_pack_pairs in
 *    kernels_x86.h), 128 * 255 * 32768 < 2^31;
 *  - ph: rows while the block's sum of ph stays <= 65535, 65535 * 32768 < 2^31 (in
 *    attention the probabilities sum to about 2^30, so a block is always 128 rows);
 * then the block is added to acc in int64. Interleaving within 128-bit lanes puts the
 * outputs 0-3 and 8-11 of a chunk in the "lo" accumulators, 4-7 and 12-15 in "hi". A
 * block's rows (8 KiB of a 64-wide head) stay in L1 while its 16-column chunks go by.
 * An odd count's last row is added in 64-bit lanes.
 */
static void axpy_rows_split(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n16, uint32_t n_rows,
                            int64_t *acc)
{
    int32_t pk[AXPY_MAX_PAIRS][3];         /* per pair: ph, pm, pl of both rows, as int16 pairs */
    uint32_t j = 0;
    while (j + 1 < n_rows) {
        uint32_t j0 = j, np = axpy_pack_pairs(p, j, n_rows, v, v_stride, n16, pk);
        j += 2 * np;
        for (uint32_t i = 0; i < n16; i += 16) {
            __m256i hl = _mm256_setzero_si256(), hh = hl, ml = hl, mh = hl, ll = hl, lh = hl;
            const int16_t *r = v + j0 * v_stride + i;
            for (uint32_t k = 0; k < np; k++, r += 2 * v_stride) {
                __m256i x = load16(r), y = load16(r + v_stride);
                __m256i lo = _mm256_unpacklo_epi16(x, y), hi = _mm256_unpackhi_epi16(x, y);
                __m256i H = _mm256_set1_epi32(pk[k][0]), M = _mm256_set1_epi32(pk[k][1]),
                        L = _mm256_set1_epi32(pk[k][2]);
                hl = _mm256_add_epi32(hl, _mm256_madd_epi16(lo, H));
                hh = _mm256_add_epi32(hh, _mm256_madd_epi16(hi, H));
                ml = _mm256_add_epi32(ml, _mm256_madd_epi16(lo, M));
                mh = _mm256_add_epi32(mh, _mm256_madd_epi16(hi, M));
                ll = _mm256_add_epi32(ll, _mm256_madd_epi16(lo, L));
                lh = _mm256_add_epi32(lh, _mm256_madd_epi16(hi, L));
            }
            axpy_flush4(acc + i, hl, ml, ll, 0);
            axpy_flush4(acc + i + 4, hh, mh, lh, 0);
            axpy_flush4(acc + i + 8, hl, ml, ll, 1);
            axpy_flush4(acc + i + 12, hh, mh, lh, 1);
        }
    }
    if (j < n_rows)
        axpy_cols_wide(p + j, v + j * v_stride, v_stride, 0, n16, 1, acc);
}

/*
 * acc[i] += sum_j p[j] * v[j][i]: whole 16-column chunks by axpy_rows_split, the rest
 * (head sizes that are not a multiple of 16) by axpy_cols_wide.
 */
void nn_axpy_rows_i16_avx2(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                           int64_t *acc)
{
    uint32_t n16 = n & ~15u;
    axpy_rows_split(p, v, v_stride, n16, n_rows, acc);
    axpy_cols_wide(p, v, v_stride, n16, n, n_rows, acc);
}

/*
 * nn_exp_q16_q30(d) for four int64 lanes, step for step the scalar algorithm:
 * y = -d * log2(e) in Q31 (log2(e) = 2^32 + 1901360723 in Q32, so the product is a
 * shift plus one 32x32 multiply), 2^-frac(y) by Horner in Q31 with vpmuldq (every
 * intermediate fits a signed 32-bit lane, the final one excepted, which is not
 * multiplied again), then the rounding shift by 1 + int(y). AVX2 has no 64-bit
 * arithmetic shift, so floor((p + 2^30) / 2^31) is computed as a logical shift of
 * p + 2^30 + 2^62 minus 2^31.
 */
static inline __m256i exp4_q30(__m256i d)
{
    const __m256i lim = _mm256_set1_epi64x((int64_t)64 << 16), one = _mm256_set1_epi64x(1);
    const __m256i zero = _mm256_setzero_si256(), l2lo = _mm256_set1_epi64x(NN_LOG2E_Q32 - (1ll << 32));
    const __m256i bias = _mm256_set1_epi64x((1ll << 30) + (1ll << 62)), mask31 = _mm256_set1_epi64x(0x7fffffff);
    __m256i pos = _mm256_cmpgt_epi64(d, _mm256_set1_epi64x(-1));                 /* d >= 0: 1.0 */
    __m256i nd = _mm256_sub_epi64(zero, d);
    __m256i big = _mm256_cmpgt_epi64(nd, lim);                                   /* d < -64: 0 */
    nd = _mm256_blendv_epi8(nd, zero, _mm256_or_si256(pos, big));
    __m256i y = _mm256_add_epi64(_mm256_slli_epi64(nd, 32), _mm256_mul_epu32(nd, l2lo));
    y = _mm256_srli_epi64(_mm256_add_epi64(y, _mm256_set1_epi64x(1ll << 16)), 17);
    __m256i ni = _mm256_srli_epi64(y, 31), f = _mm256_and_si256(y, mask31);
    __m256i acc = _mm256_set1_epi64x(nn_exp2_neg_poly_q31[8]);
    for (int k = 7; k >= 0; k--) {
        __m256i p = _mm256_add_epi64(_mm256_mul_epi32(acc, f), bias);
        acc = _mm256_add_epi64(_mm256_srli_epi64(p, 31), _mm256_set1_epi64x(nn_exp2_neg_poly_q31[k] - (1ll << 31)));
    }
    __m256i sh = _mm256_add_epi64(ni, one);                                       /* 1 + n, >= 1 */
    __m256i r = _mm256_srlv_epi64(_mm256_add_epi64(acc, _mm256_sllv_epi64(one, _mm256_sub_epi64(sh, one))), sh);
    r = _mm256_blendv_epi8(r, zero, big);
    return _mm256_blendv_epi8(r, _mm256_set1_epi64x(1ll << 30), pos);
}

/* The low 32 bits of four int64 lanes, as four int32. */
static inline __m128i pack4(__m256i v)
{
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
}

int64_t nn_softmax_exp_q30_avx2(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out)
{
    const __m256i vmax = _mm256_set1_epi64x(xmax);
    __m256i sum = _mm256_setzero_si256();
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        __m256i d = _mm256_sub_epi64(_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(x + j))),
                                     vmax);
        __m256i r = exp4_q30(d);
        sum = _mm256_add_epi64(sum, r);
        _mm_storeu_si128((__m128i *)(void *)(out + j), pack4(r));
    }
    int64_t s = hsum_i64(sum);
    for (; j < n; j++) {
        out[j] = nn_exp_q16_q30((int64_t)x[j] - xmax);
        s += out[j];
    }
    return s;
}

/*
 * floor(n / d) for four lanes (0 <= n < 2^61, 2^30 < d <= 2^31): four scalar 64-bit
 * divisions. The hardware divider beats the 31-step restoring division in vector lanes
 * that made SiLU a seventh of decode time (Zen 4: 3.2 against 14.7 ns per element), and
 * nn/ stays integer-only.
 */
static inline __m256i div4_u61_u32(__m256i n, __m256i d)
{
    uint64_t nv[4], dv[4];
    _mm256_storeu_si256((__m256i *)(void *)nv, n);
    _mm256_storeu_si256((__m256i *)(void *)dv, d);
    for (int k = 0; k < 4; k++)
        nv[k] /= dv[k];
    return _mm256_loadu_si256((const __m256i *)(const void *)nv);
}

/*
 * x[i] = nn_silu_q16(x[i]), four lanes at a time: e = exp(-|x|) as above, then the
 * sigmoid's rounded quotient (num + den/2) / den with den = 2^30 + e in (2^30, 2^31]
 * and num = 2^60 (x >= 0) or e * 2^30 (x < 0), so q <= 2^30 (div4_u61_u32), then
 * round(x * q / 2^30) with the biased shift.
 */
void nn_silu_q16_avx2(int32_t *x, uint32_t n)
{
    const __m256i zero = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i xv = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(x + i)));
        __m256i neg = _mm256_cmpgt_epi64(zero, xv);
        __m256i ax = _mm256_blendv_epi8(xv, _mm256_sub_epi64(zero, xv), neg);
        __m256i e = exp4_q30(_mm256_sub_epi64(zero, ax));
        __m256i den = _mm256_add_epi64(_mm256_set1_epi64x(1ll << 30), e);
        __m256i num = _mm256_blendv_epi8(_mm256_set1_epi64x(1ll << 60), _mm256_slli_epi64(e, 30), neg);
        __m256i q = div4_u61_u32(_mm256_add_epi64(num, _mm256_srli_epi64(den, 1)), den);
        __m256i p = _mm256_add_epi64(_mm256_mul_epi32(xv, q), _mm256_set1_epi64x((1ll << 29) + (1ll << 62)));
        __m256i r = _mm256_sub_epi64(_mm256_srli_epi64(p, 30), _mm256_set1_epi64x(1ll << 32));
        _mm_storeu_si128((__m128i *)(void *)(x + i), pack4(r));
    }
    for (; i < n; i++)
        x[i] = nn_silu_q16(x[i]);
}

/* Four exponents e[j * es .. (j + 3) * es] as int64 lanes. */
static inline __m256i exps4(const int8_t *e, size_t es, uint32_t j)
{
    return _mm256_set_epi64x(e[(j + 3) * es], e[(j + 2) * es], e[(j + 1) * es], e[j * es]);
}

/*
 * Attention scores, four at a time: dots * c in 64-bit lanes (the high and low halves of
 * dots times c, c >= 0), then round(v / 2^s) for s in [1, 62] and |v| < 2^61 as a
 * logical shift of v + 2^62 + 2^(s-1) minus 2^(62-s) (AVX2 has no 64-bit arithmetic
 * shift), saturated to int32. Lanes outside those ranges (|dots| >= 2^37, which needs a
 * head size far above 256, or an exponent that puts s outside [1, 62]) take the scalar
 * path, four at a time.
 */
int32_t nn_scores_q16_avx2(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                           int32_t *out)
{
    int32_t smax = INT32_MIN;
    uint32_t j = 0;
    if (c >= 0 && c < (1 << 24)) {
        const __m256i cv = _mm256_set1_epi64x(c), one = _mm256_set1_epi64x(1), bias = _mm256_set1_epi64x(1ll << 62);
        const __m256i dlo = _mm256_set1_epi64x(-(1ll << 37)), dhi = _mm256_set1_epi64x(1ll << 37);
        const __m256i s_hi = _mm256_set1_epi64x(62), vb = _mm256_set1_epi64x(base);
        const __m256i i32max = _mm256_set1_epi64x(INT32_MAX), i32min = _mm256_set1_epi64x(INT32_MIN);
        __m128i mx = _mm_set1_epi32(INT32_MIN);
        for (; j + 4 <= n; j += 4) {
            __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(dots + j));
            __m256i sh = _mm256_sub_epi64(vb, exps4(e, e_stride, j));
            __m256i bad = _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi64(dlo, d), _mm256_cmpgt_epi64(d, dhi)),
                                          _mm256_or_si256(_mm256_cmpgt_epi64(sh, s_hi), _mm256_cmpgt_epi64(one, sh)));
            if (!_mm256_testz_si256(bad, bad)) {
                int32_t m4 = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, 4, out + j);
                mx = _mm_max_epi32(mx, _mm_set1_epi32(m4));
                continue;
            }
            __m256i v = _mm256_add_epi64(_mm256_slli_epi64(_mm256_mul_epi32(_mm256_srli_epi64(d, 32), cv), 32),
                                         _mm256_mul_epu32(d, cv));
            __m256i half = _mm256_sllv_epi64(one, _mm256_sub_epi64(sh, one));
            __m256i r = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_add_epi64(_mm256_add_epi64(v, bias), half), sh),
                                         _mm256_srlv_epi64(bias, sh));
            r = _mm256_blendv_epi8(r, i32max, _mm256_cmpgt_epi64(r, i32max));
            r = _mm256_blendv_epi8(r, i32min, _mm256_cmpgt_epi64(i32min, r));
            __m128i r4 = pack4(r);
            _mm_storeu_si128((__m128i *)(void *)(out + j), r4);
            mx = _mm_max_epi32(mx, r4);
        }
        mx = _mm_max_epi32(mx, _mm_shuffle_epi32(mx, 0x4e));
        mx = _mm_max_epi32(mx, _mm_shuffle_epi32(mx, 0xb1));
        smax = _mm_cvtsi128_si32(mx);
    }
    int32_t t = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, n - j, out + j);
    return t > smax ? t : smax;
}

/*
 * The probabilities normalised and aligned, four at a time: p * inv in 64-bit lanes
 * (inv < 2^32; the one larger value, 2^32 exactly, takes the scalar path), then
 * round(x / 2^s) for s >= 0 as (x + (2^s >> 1)) >> s with variable logical shifts, which
 * give 0 for s >= 64 as the rounding does (x < 2^31).
 */
void nn_probs_align_avx2(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n)
{
    uint32_t j = 0;
    if (inv <= UINT32_MAX) {
        const __m256i iv = _mm256_set1_epi64x((int64_t)inv), one = _mm256_set1_epi64x(1);
        const __m256i r31 = _mm256_set1_epi64x(1ll << 31), vt = _mm256_set1_epi64x(tmax);
        for (; j + 4 <= n; j += 4) {
            __m256i x = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(p + j)));
            x = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(x, iv), r31), 32);
            __m256i sh = _mm256_sub_epi64(vt, exps4(e, e_stride, j));
            __m256i half = _mm256_srli_epi64(_mm256_sllv_epi64(one, sh), 1);
            __m256i r = _mm256_srlv_epi64(_mm256_add_epi64(x, half), sh);
            _mm_storeu_si128((__m128i *)(void *)(p + j), pack4(r));
        }
    }
    nn_probs_align_ref(p + j, inv, e + j * e_stride, e_stride, tmax, n - j);
}

/* ---- row steps: the int16 quantisations of SwiGLU's product and the attention output,
 * and numerics version 2's int8 matmul inputs ------------------------------------------ */

/* Eight int32 lanes (each within +-32767) as eight int16, in order. */
static inline __m128i pack8_i16(__m256i r)
{
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packs_epi32(r, r), 0xd8));
}

/* nn_quant_i32_i16: |x| in unsigned 32-bit lanes (|INT32_MIN| is 2^31 there), then
 * round(x / 2^t) = (x >> t) + bit t-1 of x, which cannot overflow, clamped. */
static int quant_i32_avx2(const int32_t *x, uint32_t n, int16_t *out)
{
    __m256i mx = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        mx = _mm256_max_epu32(mx, _mm256_abs_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(x + i))));
    __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(mx), _mm256_extracti128_si256(mx, 1));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0x4e));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0xb1));
    uint64_t amax = (uint32_t)_mm_cvtsi128_si32(m4);
    for (uint32_t j = i; j < n; j++) {
        uint64_t a = x[j] < 0 ? (uint64_t)(-(int64_t)x[j]) : (uint64_t)x[j];
        amax = a > amax ? a : amax;
    }
    int t = nn_quant_shift_inl(amax);
    const __m128i ct = _mm_cvtsi32_si128(t), ch = _mm_cvtsi32_si128(t ? t - 1 : 0);
    const __m256i one = _mm256_set1_epi32(t ? 1 : 0), lo = _mm256_set1_epi32(-32767), hi = _mm256_set1_epi32(32767);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        __m256i r = _mm256_add_epi32(_mm256_sra_epi32(v, ct), _mm256_and_si256(_mm256_sra_epi32(v, ch), one));
        _mm_storeu_si128((__m128i *)(void *)(out + i), pack8_i16(_mm256_min_epi32(_mm256_max_epi32(r, lo), hi)));
    }
    for (; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64(x[i], t));
    return t;
}

/* Lanes i .. i+3 of a and b as int64 products (exact: |p| <= 2^62). */
static inline __m256i mul4_i64(const int32_t *a, const int32_t *b, uint32_t i)
{
    return _mm256_mul_epi32(_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(a + i))),
                            _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(b + i))));
}

/*
 * nn_mul_quant_i16_ref: the products twice (cheaper than storing them), the largest
 * magnitude by compare and select (AVX2 has no 64-bit abs or max). Rounding is
 * (p + 2^(t-1)) >> t, and AVX2 has no 64-bit arithmetic shift: for |p| <= 2^61,
 * p + 2^(t-1) + 2^62 is in [0, 2^63), so its logical shift less 2^(62-t) is the same.
 * Larger products (both factors near 2^31, which SwiGLU does not make) take the
 * portable one.
 */
static int mul_quant_avx2(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out)
{
    __m256i mx = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i p = mul4_i64(a, b, i), neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
        __m256i ap = _mm256_sub_epi64(_mm256_xor_si256(p, neg), neg);   /* |p| <= 2^62: positive */
        mx = _mm256_blendv_epi8(mx, ap, _mm256_cmpgt_epi64(ap, mx));
    }
    uint64_t mv[4], amax = 0;
    _mm256_storeu_si256((__m256i *)(void *)mv, mx);
    for (int k = 0; k < 4; k++)
        amax = mv[k] > amax ? mv[k] : amax;
    for (uint32_t j = i; j < n; j++) {
        int64_t p = (int64_t)a[j] * b[j];
        uint64_t ap = p < 0 ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
        amax = ap > amax ? ap : amax;
    }
    if (amax > (1ull << 61))
        return nn_mul_quant_i16_ref(a, b, n, out);
    int t = nn_quant_shift_inl(amax);
    const __m128i ct = _mm_cvtsi32_si128(t);
    const __m256i bias = _mm256_set1_epi64x((1ll << 62) + (t ? 1ll << (t - 1) : 0));
    const __m256i unbias = _mm256_set1_epi64x(1ll << (62 - t));
    const __m256i lo = _mm256_set1_epi32(-32767), hi = _mm256_set1_epi32(32767);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256i r0 = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(mul4_i64(a, b, i), bias), ct), unbias);
        __m256i r1 = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(mul4_i64(a, b, i + 4), bias), ct), unbias);
        __m256i r = _mm256_setr_m128i(pack4(r0), pack4(r1));   /* |r| <= 2^15: the low halves */
        _mm_storeu_si128((__m128i *)(void *)(out + i), pack8_i16(_mm256_min_epi32(_mm256_max_epi32(r, lo), hi)));
    }
    for (; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64_inl((int64_t)a[i] * b[i], t));
    return t;
}

/*
 * nn_act8_quant for groups of a multiple of 16: magnitudes in unsigned 16-bit lanes
 * (|-32768| is 32768 there), the group's step by nn_act8_shift_inl, round-half-up of the
 * magnitude (at most 32768 + 256: fits) with the sign put back by vpsignw (a zero stays
 * zero: it rounds to zero). Other groups take the portable one.
 */
static void act8_avx2(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum)
{
    if (g % 16) {
        nn_act8_quant(a, n, g, q, sh, sum);
        return;
    }
    const __m256i ones = _mm256_set1_epi16(1);
    for (uint32_t i0 = 0, k = 0; i0 < n; i0 += g, k++) {
        uint32_t len = n - i0 < g ? n - i0 : g, full = len & ~15u;
        const int16_t *x = a + i0;
        __m256i mv = _mm256_setzero_si256();
        for (uint32_t i = 0; i < full; i += 16)
            mv = _mm256_max_epu16(mv, _mm256_abs_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(x + i))));
        __m128i m8 = _mm_max_epu16(_mm256_castsi256_si128(mv), _mm256_extracti128_si256(mv, 1));
        uint32_t mx = 0xffffu - (uint32_t)_mm_extract_epi16(_mm_minpos_epu16(_mm_xor_si128(m8, _mm_set1_epi16(-1))), 0);
        for (uint32_t i = full; i < len; i++) {
            uint32_t v = (uint32_t)(x[i] < 0 ? -x[i] : x[i]);
            mx = v > mx ? v : mx;
        }
        int s = nn_act8_shift_inl(mx);
        const __m256i h = _mm256_set1_epi16((short)((1 << s) >> 1));
        const __m128i cnt = _mm_cvtsi32_si128(s);
        __m256i tot = _mm256_setzero_si256();
        for (uint32_t i = 0; i < full; i += 16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
            __m256i r = _mm256_sign_epi16(_mm256_srl_epi16(_mm256_add_epi16(_mm256_abs_epi16(v), h), cnt), v);
            __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(r, r), 0xd8);
            _mm_storeu_si128((__m128i *)(void *)(q + i0 + i), _mm256_castsi256_si128(b));
            tot = _mm256_add_epi32(tot, _mm256_madd_epi16(r, ones));
        }
        int32_t t = hsum1(tot) + nn_act8_round_inl(x, full, len, s, q + i0);
        sh[k] = (uint8_t)s;
        if (sum)
            sum[k] = t;
    }
}

/* ---- numerics version 2: int8 activations (matmul_q8_a8), for CPUs without VNNI ---------
 *
 * vpmaddubsw multiplies unsigned by signed bytes: |q| times a * sign(q) is q * a, and a
 * pair of such products is at most 2 * 127^2 < 2^15, so the int16 lanes never saturate
 * (q and a are never -128); vpmaddwd by ones widens the pairs into int32 lanes.
 */
static inline __m256i dot8(__m256i q, __m256i a)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(a, q)),
                             _mm256_set1_epi16(1));
}

/*
 * nn_mulshift_sat32 of 4 int64 lanes by one scale m in [2^31, 2^32) and one shift s in
 * [32, 93], for lanes with acc in [-2^60, 2^60) (the AVX-512 mulshift8's argument on
 * 256 bits): with acc = ah 2^32 + al and m = 2^31 + m', p = acc m is ah m' 2^32 + ah 2^63 + al m;
 * U = floor(p / 2^31), |U| < 2^61, and round(p / 2^s) = floor((U + 2^(s-32)) / 2^k)
 * with k = s - 31 in [1, 62]. AVX2 has no 64-bit arithmetic shift: x = U + 2^(s-32) is
 * within 2^62, so floor(x / 2^k) is the logical shift of x + 2^62 less 2^(62-k).
 * Returns 0 (and leaves *out) if a lane is out of range.
 */
static inline int mulshift4(__m256i acc, uint32_t m, int s, __m128i *out)
{
    const __m256i lim = _mm256_set1_epi64x(1ll << 60), nlim = _mm256_set1_epi64x(-(1ll << 60));
    __m256i bad = _mm256_or_si256(_mm256_cmpgt_epi64(acc, _mm256_sub_epi64(lim, _mm256_set1_epi64x(1))),
                                  _mm256_cmpgt_epi64(nlim, acc));
    if (!_mm256_testz_si256(bad, bad))
        return 0;
    __m256i ahl = _mm256_srli_epi64(acc, 32);                                    /* ah, read signed by vpmuldq */
    __m256i ah = _mm256_blend_epi32(ahl, _mm256_srai_epi32(acc, 31), 0xaa);     /* ah sign-extended */
    __m256i lo = _mm256_mul_epu32(acc, _mm256_set1_epi64x(m));                   /* al m < 2^64 */
    __m256i hi = _mm256_add_epi64(_mm256_mul_epi32(ahl, _mm256_set1_epi64x((int64_t)m - (1ll << 31))),
                                  _mm256_slli_epi64(ah, 31));
    __m256i u = _mm256_add_epi64(_mm256_slli_epi64(_mm256_add_epi64(hi, _mm256_srli_epi64(lo, 32)), 1),
                                 _mm256_and_si256(_mm256_srli_epi64(lo, 31), _mm256_set1_epi64x(1)));
    int k = s - 31;
    __m256i r = _mm256_sub_epi64(
        _mm256_srl_epi64(_mm256_add_epi64(u, _mm256_set1_epi64x((1ll << 62) + (1ll << (s - 32)))),
                         _mm_cvtsi32_si128(k)),
        _mm256_set1_epi64x(1ll << (62 - k)));
    const __m256i i32max = _mm256_set1_epi64x(INT32_MAX), i32min = _mm256_set1_epi64x(INT32_MIN);
    r = _mm256_blendv_epi8(r, i32max, _mm256_cmpgt_epi64(r, i32max));
    r = _mm256_blendv_epi8(r, i32min, _mm256_cmpgt_epi64(i32min, r));
    *out = pack4(r);
    return 1;
}

/* Row block rb's 8 sums for token t into the rows of [r0, r1): a whole block in vector
 * lanes where mulshift4 can, else one by one (nn_a8_flush). */
static void flush_avx2(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t r0, uint32_t r1, const int64_t acc[8])
{
    uint32_t m = A->as[t].m;
    int s = A->as[t].e + A->w->exp - 16;
    __m128i lo, hi;
    if (rb * 8 >= r0 && rb * 8 + 8 <= r1 && m >= (1u << 31) && s >= 32 && s <= 93 &&
        mulshift4(_mm256_loadu_si256((const __m256i *)(const void *)acc), m, s, &lo) &&
        mulshift4(_mm256_loadu_si256((const __m256i *)(const void *)(acc + 4)), m, s, &hi)) {
        _mm256_storeu_si256((__m256i *)(void *)(A->out + (size_t)t * A->out_stride + rb * 8), _mm256_set_m128i(hi, lo));
        return;
    }
    nn_a8_flush(A, t, rb, r0, r1, acc);
}

/* Interleaved weights, quads j0 .. j1-1 of a row block times one token: each row's
 * quad sums. tail: the last quad may run past cols (nn_a8_quad_at). The weights are one
 * stream (decode, and a prompt block's last tokens past a multiple of four), fetched
 * PF_DIST ahead. */
static inline __attribute__((always_inline)) __m256i il_quads(const int8_t *wq, const int8_t *a, uint32_t j0,
                                                              uint32_t j1, uint32_t cols, int tail)
{
    __m256i c = _mm256_setzero_si256();
    for (uint32_t p = 32 * j0; p < 32 * j1; p += 64)
        _mm_prefetch((const char *)(wq + p) + PF_DIST, _MM_HINT_T0);
    for (uint32_t j = j0; j < j1; j++) {
        __m256i W = _mm256_loadu_si256((const __m256i *)(const void *)(wq + 32 * (size_t)j));
        c = _mm256_add_epi32(c, dot8(W, _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j, cols, tail))));
    }
    return c;
}

/* Interleaved weights, row block rb times one token: each quad's 4 activation bytes
 * broadcast against 8 rows x 4 columns gives each row's quad sum in its own lane. */
static void il_avx2(const nn_q8_mat *w, uint32_t rb, const int8_t *a, const uint8_t *sh, int64_t acc[8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    __m256i e = _mm256_setzero_si256(), o = e;
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4;
        __m256i c = 4 * j1 <= w->cols ? il_quads(wq, a, j0, j1, w->cols, 0) : il_quads(wq, a, j0, j1, w->cols, 1);
        __m256i mz = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(wm + 8 * (size_t)g)));
        il_scale(c, 0, sh[g], mz, _mm256_srli_epi64(mz, 32), &e, &o);   /* signed products: no offset */
    }
    il_rows8(e, o, acc);
}

/* Quads j0 .. j1-1 of a row block times four tokens, as il_quads: each weight vector
 * is loaded, and its magnitude taken, once for the four. */
static inline __attribute__((always_inline)) void il4_quads(const int8_t *wq, const int8_t *const a[4], uint32_t j0,
                                                            uint32_t j1, uint32_t cols, int tail, __m256i c[4])
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (uint32_t j = j0; j < j1; j++) {
        __m256i W = _mm256_loadu_si256((const __m256i *)(const void *)(wq + 32 * (size_t)j));
        __m256i aw = _mm256_abs_epi8(W);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            __m256i x = _mm256_sign_epi8(_mm256_set1_epi32(nn_a8_quad_at(a[t], 4 * j, cols, tail)), W);
            c[t] = _mm256_add_epi32(c[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, x), ones));
        }
    }
}

/*
 * Prompt tile: a row block times four tokens. The same group sums as il_avx2, so the
 * same results. Groups are a multiple of 4 columns (the image loader's rule for
 * interleaved weights), so only the last group can hold quads that run past cols: it
 * takes nn_a8_quad, every other group plain 4-byte loads with no check.
 */
static void il4_avx2(const nn_q8_mat *w, uint32_t rb, const int8_t *const a[4], const uint8_t *const sh[4],
                     int64_t acc[4][8])
{
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups, G = w->group;
    const int8_t *wq = w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    __m256i e[4], o[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
        e[t] = o[t] = _mm256_setzero_si256();
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4), j1 = j0 + G / 4 < C4 ? j0 + G / 4 : C4;
        __m256i c[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++)
            c[t] = _mm256_setzero_si256();
        if (4 * j1 <= w->cols)
            il4_quads(wq, a, j0, j1, w->cols, 0, c);
        else
            il4_quads(wq, a, j0, j1, w->cols, 1, c);
        __m256i mz = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(wm + 8 * (size_t)g)));
        __m256i mo = _mm256_srli_epi64(mz, 32);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++)
            il_scale(c[t], 0, sh[t][g], mz, mo, &e[t], &o[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
        il_rows8(e[t], o[t], acc[t]);
}

/* Row-major weights (the tied classifier): one row's group sum. */
static int32_t gdot_avx2(const int8_t *q, const int8_t *a, uint32_t n)
{
    __m256i c = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32)
        c = _mm256_add_epi32(c, dot8(_mm256_loadu_si256((const __m256i *)(const void *)(q + i)),
                                     _mm256_loadu_si256((const __m256i *)(const void *)(a + i))));
    int32_t s = hsum1(c);
    for (; i < n; i++)
        s += q[i] * a[i];
    return s;
}

/* One whole group (G a multiple of 32) of a row-major row times a token, in 8 lanes. */
static inline __attribute__((always_inline)) __m256i gsum_avx2(const int8_t *q, const int8_t *a, uint32_t G)
{
    __m256i c = _mm256_setzero_si256();
    for (uint32_t i = 0; i < G; i += 32)
        c = _mm256_add_epi32(c, dot8(_mm256_loadu_si256((const __m256i *)(const void *)(q + i)),
                                     _mm256_loadu_si256((const __m256i *)(const void *)(a + i))));
    return c;
}

/*
 * A row-major row (the tied classifier) times one token, groups of a multiple of 32:
 * eight groups' sums reduced together (hsum8), shifted by their steps (|sum| 2^sh < 2^31,
 * the contract's bound) and scaled by their mantissas into int64 lanes; the rest by gdot.
 */
static inline __attribute__((always_inline)) int64_t row_a8_g(const int8_t *q, const uint16_t *m, const int8_t *a,
                                                             const uint8_t *sh, uint32_t cols, uint32_t G,
                                                             uint32_t ng)
{
    __m256i e = _mm256_setzero_si256(), o = e;
    uint32_t full = G % 32 ? 0 : cols / G, g = 0;
    for (; g + 8 <= full; g += 8) {
        const int8_t *qg = q + (size_t)g * G, *ag = a + (size_t)g * G;
        for (uint32_t p = 0; p < 8 * G; p += 64)
            _mm_prefetch((const char *)qg + PF_DIST + p, _MM_HINT_T0);
        __m256i s = hsum8(gsum_avx2(qg, ag, G), gsum_avx2(qg + G, ag + G, G), gsum_avx2(qg + 2 * G, ag + 2 * G, G),
                          gsum_avx2(qg + 3 * G, ag + 3 * G, G), gsum_avx2(qg + 4 * G, ag + 4 * G, G),
                          gsum_avx2(qg + 5 * G, ag + 5 * G, G), gsum_avx2(qg + 6 * G, ag + 6 * G, G),
                          gsum_avx2(qg + 7 * G, ag + 7 * G, G));
        s = _mm256_sllv_epi32(s, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(sh + g))));
        scale8(s, m + g, &e, &o);
    }
    return hsum_i64(_mm256_add_epi64(e, o)) + nn_a8_row_groups(q, m, a, sh, cols, G, g, ng, gdot_avx2);
}

static int64_t row_a8_avx2(const int8_t *q, const uint16_t *m, const int8_t *a, const uint8_t *sh, uint32_t cols,
                           uint32_t G, uint32_t ng)
{
    return G == 32 ? row_a8_g(q, m, a, sh, cols, 32, ng) : row_a8_g(q, m, a, sh, cols, G, ng);
}

static void mm_a8_avx2(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    static const nn_a8_path path = { il_avx2, il4_avx2, gdot_avx2, row_a8_avx2, flush_avx2 };
    nn_a8_drive(A, r0, r1, &path);
}

const nn_kernels nn_kernels_avx2 = {
    .name = "avx2",
    .matmul_q8_q16 = mm_avx2,
    .matmul_q8_a8 = mm_a8_avx2,
    .dot_i16 = nn_dot_i16_avx2,
    .dot_rows_i16 = nn_dot_rows_i16_avx2,
    .axpy_rows_i16 = nn_axpy_rows_i16_avx2,
    .softmax_exp_q30 = nn_softmax_exp_q30_avx2,
    .act8_quant = act8_avx2,
    .silu_q16 = nn_silu_q16_avx2,
    .scores_q16 = nn_scores_q16_avx2,
    .probs_align = nn_probs_align_avx2,
    .quant_i32_i16 = quant_i32_avx2,
    .mul_quant_i16 = mul_quant_avx2,
    .sumsq_i32 = nn_sumsq_i32_ref,
    .rope_q30 = nn_rope_q30_ref,
    .add_sat_i32 = nn_add_sat_i32_ref,
    .round_sat_i64 = nn_round_sat_i64_ref,
};

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
