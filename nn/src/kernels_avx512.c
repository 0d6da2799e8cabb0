/*
 * x86-64 AVX-512 VNNI matmul ("avx512vnni"), for "cloud" peers on x86 servers;
 * bit-exact with kernels_ref.c by the same argument as the AVX2 path. Tested (test_kernels,
 * test_model) on AMD EPYC VMs (Zen 4, Zen 5). For version-1 images (int16 activations)
 * it was slower than avx2 on Zen 4, so kernels.c offers it for them by name only.
 *
 * vpdpwssd adds pairs of int16 x int16 products into int32 lanes in one instruction.
 * Its additions wrap modulo 2^32, and every lane's final value is a sum over a subset
 * of one group's products (|.| < 256 * 127 * 32767 < 2^31), so the lane is exact.
 * Ragged group ends use masked loads (masked-off elements read as zero and never
 * fault), so the requirement is group % 16 == 0; groups of 4 or 8 take the AVX2
 * small-group kernel, other groups the reference.
 * The attention kernels for head sizes in whole 32-lane chunks use vpdpwssd and the
 * softmax uses SiLU's exp on 512-bit lanes; score scaling and probability alignment
 * are the AVX2 kernels.
 *
 * Numerics version 2 (int8 activations, matmul_q8_a8) is where this path earns its
 * place: vpdpbusd does four int8 products per lane, and with interleaved weights one
 * instruction serves 8 rows without horizontal sums (below). nn_kernels_select_for()
 * makes it the default for version-2 images.
 */
#include "nn_kernels_impl.h"

#if NN_HAVE_X86_KERNELS

#include <immintrin.h>
#include <string.h>
/* gcc: a target pragma; clang (the fuzz builds) ignores that one and takes an attribute. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#include "fixed_inline.h"
#include "kernels_x86.h"
#include "kernels_a8.h"

/* The first min(n, 16) of 16 lanes, min(n, 8) of 8. */
static inline __mmask16 mask16(uint32_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }
static inline __mmask8 mask8(uint32_t n) { return n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1); }

/* The first min(n, 32) of 32 lanes. */
static inline __mmask32 mask32(uint32_t n)
{
    return n >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << n) - 1;
}

/* The first min(n, 32) of one row's weights as int16; the rest zero. Whole steps use a
 * plain load: masked loads on every step made decode 10x slower on Zen 4. */
static inline __m512i wload(const int8_t *q, uint32_t n)
{
    if (n >= 32)
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)q));
    return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask32(n), q));
}

static inline __m512i aload(const int16_t *a, uint32_t n)
{
    if (n >= 32)
        return _mm512_loadu_si512((const void *)a);
    return _mm512_maskz_loadu_epi16(mask32(n), a);
}

/* 16 int32 lanes -> 8 (pairs of lanes added: still subset sums of one group). */
static inline __m256i fold(__m512i c)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
}

/* One group (len values) of one row times one token, as 16 int32 lanes. */
static inline __attribute__((always_inline)) __m512i group_1(const int8_t *q, const int16_t *a, uint32_t len)
{
    __m512i c = _mm512_setzero_si512();
    for (uint32_t i = 0; i < len; i += 32)
        c = _mm512_dpwssd_epi32(c, wload(q + i, len - i), aload(a + i, len - i));
    return c;
}

/* Decode: one row times one token; eight groups reduced together and scaled by eight
 * contiguous mantissas, then the remaining groups one by one. */
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
        __m256i s = hsum8(fold(group_1(qg, ag, G)), fold(group_1(qg + G, ag + G, G)),
                          fold(group_1(qg + 2 * G, ag + 2 * G, G)), fold(group_1(qg + 3 * G, ag + 3 * G, G)),
                          fold(group_1(qg + 4 * G, ag + 4 * G, G)), fold(group_1(qg + 5 * G, ag + 5 * G, G)),
                          fold(group_1(qg + 6 * G, ag + 6 * G, G)), fold(group_1(qg + 7 * G, ag + 7 * G, G)));
        scale8(s, m + g, &e, &o);
    }
    int64_t acc = hsum_i64(_mm256_add_epi64(e, o));
    for (; g < ng; g++) {
        uint32_t i0 = g * G, len = cols - i0 < G ? cols - i0 : G;
        _mm_prefetch((const char *)(q + i0) + PF_DIST, _MM_HINT_T0);
        acc += (int64_t)_mm512_reduce_add_epi32(group_1(q + i0, a + i0, len)) * m[g];
    }
    return acc;
}

/*
 * Prefill: rows qa, qb times tokens a[0..3]. Per group the eight (row, token) sums meet
 * the mantissas [ma, ma, mb, mb] in 64-bit lanes:
 *   e = [ra t0, ra t2, rb t0, rb t2],  o = [ra t1, ra t3, rb t1, rb t3].
 */
static void rows_2x4(const int8_t *qa, const int8_t *qb, const uint16_t *ma, const uint16_t *mb,
                     const int16_t *const a[4], uint32_t cols, uint32_t G, uint32_t ng, int64_t out[2][4])
{
    __m256i e = _mm256_setzero_si256(), o = e;
    for (uint32_t g = 0, i0 = 0; g < ng; g++, i0 += G) {
        uint32_t len = cols - i0 < G ? cols - i0 : G;
        __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
                c13 = c00;
        for (uint32_t i = i0; i < i0 + len; i += 32) {
            uint32_t n = i0 + len - i;
            __m512i wa = wload(qa + i, n), wb = wload(qb + i, n), x;
            x = aload(a[0] + i, n);
            c00 = _mm512_dpwssd_epi32(c00, wa, x);
            c10 = _mm512_dpwssd_epi32(c10, wb, x);
            x = aload(a[1] + i, n);
            c01 = _mm512_dpwssd_epi32(c01, wa, x);
            c11 = _mm512_dpwssd_epi32(c11, wb, x);
            x = aload(a[2] + i, n);
            c02 = _mm512_dpwssd_epi32(c02, wa, x);
            c12 = _mm512_dpwssd_epi32(c12, wb, x);
            x = aload(a[3] + i, n);
            c03 = _mm512_dpwssd_epi32(c03, wa, x);
            c13 = _mm512_dpwssd_epi32(c13, wb, x);
        }
        __m256i s = hsum8(fold(c00), fold(c01), fold(c02), fold(c03), fold(c10), fold(c11), fold(c12), fold(c13));
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

static void mm_avx512(const nn_mm_args *A, uint32_t r0, uint32_t r1)
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
    const uint32_t T = A->n_tok;
    if (T == 1) {
        int shift = A->as[0].e + w->exp - 16;
        for (uint32_t r = r0; r < r1; r++)
            A->out[r] = nn_mulshift_sat32_inl(row_x1(w->q + (size_t)r * w->cols, w->m + (size_t)r * w->ngroups, A->a,
                                                     w->cols, w->group, w->ngroups),
                                              A->as[0].m, shift);
        return;
    }
    /* As AVX2: a chunk of rows (about 96 KiB) stays in L2 while the block's tokens pass. */
    uint32_t CR = (96u << 10) / w->cols;
    CR = CR < 1 ? 1 : CR;
    for (uint32_t c0 = r0; c0 < r1; c0 += CR) {
        uint32_t c1 = c0 + CR < r1 ? c0 + CR : r1;
        for (uint32_t t = 0; t < T; t += 4) {
            const int16_t *a[4];
            for (uint32_t k = 0; k < 4; k++)
                a[k] = A->a + (size_t)(t + k < T ? t + k : T - 1) * A->a_stride;
            for (uint32_t r = c0; r < c1; r += 2) {
                uint32_t rb = r + 1 < c1 ? r + 1 : r;
                int64_t acc[2][4];
                rows_2x4(w->q + (size_t)r * w->cols, w->q + (size_t)rb * w->cols, w->m + (size_t)r * w->ngroups,
                         w->m + (size_t)rb * w->ngroups, a, w->cols, w->group, w->ngroups, acc);
                for (uint32_t i = 0; i < 2 && r + i < c1; i++)
                    for (uint32_t k = 0; k < 4 && t + k < T; k++)
                        A->out[(size_t)(t + k) * A->out_stride + r + i] =
                            nn_mulshift_sat32_inl(acc[i][k], A->as[t + k].m, A->as[t + k].e + w->exp - 16);
            }
        }
    }
}

/* ---- numerics version 2: int8 activations (matmul_q8_a8) ------------------------------ */

/*
 * vpdpbusd multiplies unsigned by signed bytes, four products into each int32 lane.
 * The weights go in as unsigned u = q + 128 (q xor 0x80), so a lane gets
 * sum (q + 128) a = sum q a + 128 sum a; the second term depends on the activations
 * only: the quantiser hands over each group's sum of a (asum), and it is subtracted per
 * (token, group).
 * |sum (q + 128) a| <= 256 * 255 * 127 < 2^31: exact. Ragged ends use masked loads of
 * both operands (zeros, and 128 * 0). Groups that are not a multiple of 32 take the
 * reference.
 */
static inline __m256i bload(const int8_t *p, uint32_t n)
{
    if (n >= 32)
        return _mm256_loadu_si256((const __m256i *)(const void *)p);
    return _mm256_maskz_loadu_epi8(mask32(n), p);
}

/* One group (len values) of one row times one token: 8 int32 lanes of sum (q + 128) a. */
static inline __attribute__((always_inline)) __m256i group_a8(const int8_t *q, const int8_t *a, uint32_t len)
{
    const __m256i x80 = _mm256_set1_epi8((char)0x80);
    __m256i c = _mm256_setzero_si256();
    for (uint32_t i = 0; i < len; i += 32)
        c = _mm256_dpbusd_epi32(c, _mm256_xor_si256(bload(q + i, len - i), x80), bload(a + i, len - i));
    return c;
}

/* Decode: one row times one token, eight groups reduced together, corrected, shifted by
 * their steps and scaled by eight contiguous mantissas; then the rest one by one. */
static inline __attribute__((always_inline)) int64_t row_a8(const int8_t *q, const uint16_t *m, const int8_t *a,
                                                            const int32_t *asum, const uint8_t *sh, uint32_t cols,
                                                            uint32_t G, uint32_t ng)
{
    __m256i e = _mm256_setzero_si256(), o = e;
    uint32_t full = cols / G, g = 0;
    for (; g + 8 <= full; g += 8) {
        const int8_t *qg = q + (size_t)g * G, *ag = a + (size_t)g * G;
        for (uint32_t p = 0; p < 8 * G; p += 64)
            _mm_prefetch((const char *)qg + PF_DIST + p, _MM_HINT_T0);
        __m256i s = hsum8(group_a8(qg, ag, G), group_a8(qg + G, ag + G, G), group_a8(qg + 2 * G, ag + 2 * G, G),
                          group_a8(qg + 3 * G, ag + 3 * G, G), group_a8(qg + 4 * G, ag + 4 * G, G),
                          group_a8(qg + 5 * G, ag + 5 * G, G), group_a8(qg + 6 * G, ag + 6 * G, G),
                          group_a8(qg + 7 * G, ag + 7 * G, G));
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(asum + g)), 7));
        s = _mm256_sllv_epi32(s, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(sh + g))));
        scale8(s, m + g, &e, &o);
    }
    int64_t acc = hsum_i64(_mm256_add_epi64(e, o));
    for (; g < ng; g++) {
        uint32_t i0 = g * G, len = cols - i0 < G ? cols - i0 : G;
        int32_t v = hsum1(group_a8(q + i0, a + i0, len)) - 128 * asum[g];
        acc += (int64_t)(v * (1 << sh[g])) * m[g];
    }
    return acc;
}

/*
 * Interleaved weights (NN_DT_Q8G8): a 32-byte vector holds 4 columns of 8 rows, so one
 * vpdpbusd against 4 activation bytes broadcast adds to each of the 8 rows' own lane:
 * a group's sums come out one row per lane, with no horizontal reduction; il_scale
 * (kernels_x86.h) corrects, shifts and scales them.
 */

static inline __attribute__((always_inline)) __m256i wld(const uint8_t *wq, uint32_t j)
{
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(wq + 32 * (size_t)j)),
                            _mm256_set1_epi8((char)0x80));
}

/* Quads [j0, j1) of row block wq times one token, in four accumulators (quads j mod 4)
 * so that four vpdpbusd chains run side by side; the weights are one stream, fetched
 * PF_DIST ahead. */
static inline __attribute__((always_inline)) __m256i il_quads_r1(const uint8_t *wq, const int8_t *a, uint32_t j0,
                                                                 uint32_t j1, uint32_t cols, int tail)
{
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
    uint32_t j = j0;
    for (uint32_t p = 32 * j0; p < 32 * j1; p += 64)
        _mm_prefetch((const char *)(wq + p) + PF_DIST, _MM_HINT_T0);
    for (; j + 4 <= j1; j += 4) {
        c0 = _mm256_dpbusd_epi32(c0, wld(wq, j), _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j, cols, tail)));
        c1 = _mm256_dpbusd_epi32(c1, wld(wq, j + 1), _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j + 4, cols, tail)));
        c2 = _mm256_dpbusd_epi32(c2, wld(wq, j + 2), _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j + 8, cols, tail)));
        c3 = _mm256_dpbusd_epi32(c3, wld(wq, j + 3), _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j + 12, cols, tail)));
    }
    for (; j < j1; j++)
        c0 = _mm256_dpbusd_epi32(c0, wld(wq, j), _mm256_set1_epi32(nn_a8_quad_at(a, 4 * j, cols, tail)));
    return _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3));
}

/* Decode: row block rb times one token. */
static inline __attribute__((always_inline)) void il_r1(const nn_mm_args *A, uint32_t rb, uint32_t G, __m256i *e,
                                                        __m256i *o)
{
    const nn_q8_mat *w = A->w;
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups;
    const uint8_t *wq = (const uint8_t *)w->q + (size_t)rb * C4 * 32;
    const uint16_t *wm = w->m + (size_t)rb * ng * 8;
    *e = *o = _mm256_setzero_si256();
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t j0 = g * (G / 4);
        __m256i c;
        if (g + 1 < ng)
            c = il_quads_r1(wq, A->a8, j0, j0 + G / 4, w->cols, 0);
        else if (w->cols % 4 == 0)
            c = il_quads_r1(wq, A->a8, j0, C4, w->cols, 0);
        else
            c = il_quads_r1(wq, A->a8, j0, C4, w->cols, 1);
        __m256i mz = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(wm + 8 * (size_t)g)));
        il_scale(c, 128 * A->asum[g], A->ash[g], mz, _mm256_srli_epi64(mz, 32), e, o);
    }
}

/* Quad j of row blocks wa (zmm lanes 0-7) and wb (lanes 8-15), offset to unsigned. */
static inline __attribute__((always_inline)) __m512i zwld(const uint8_t *wa, const uint8_t *wb, uint32_t j)
{
    __m512i W = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(wa + 32 * (size_t)j))),
        _mm256_loadu_si256((const __m256i *)(const void *)(wb + 32 * (size_t)j)), 1);
    return _mm512_xor_si512(W, _mm512_set1_epi8((char)0x80));
}

/* Group g's mantissas of blocks ma and mb as 16 int32 lanes, mz; mo = mz >> 32 (the
 * odd rows' mantissas in the even lanes, as vpmuldq reads them). */
static inline __attribute__((always_inline)) void zmant(const uint16_t *ma, const uint16_t *mb, uint32_t g,
                                                        __m512i *mz, __m512i *mo)
{
    *mz = _mm512_cvtepu16_epi32(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(ma + 8 * (size_t)g))),
        _mm_loadu_si128((const __m128i *)(const void *)(mb + 8 * (size_t)g)), 1));
    *mo = _mm512_srli_epi64(*mz, 32);
}

/* il_scale on 16 rows: (c - corr) << sh times the mantissas, added to e (even rows)
 * and o (odd rows) in int64. */
static inline __attribute__((always_inline)) void zscale(__m512i c, int32_t corr, int sh, __m512i mz, __m512i mo,
                                                         __m512i *e, __m512i *o)
{
    __m512i s = _mm512_sll_epi32(_mm512_sub_epi32(c, _mm512_set1_epi32(corr)), _mm_cvtsi32_si128(sh));
    *e = _mm512_add_epi64(*e, _mm512_mul_epi32(s, mz));
    *o = _mm512_add_epi64(*o, _mm512_mul_epi32(_mm512_srli_epi64(s, 32), mo));
}

/* Row blocks rb and rb + 1 (rb twice when nrb is 1) as two weight streams; their
 * mantissas. */
static inline void zblocks(const nn_q8_mat *w, uint32_t rb, uint32_t nrb, const uint8_t **wa, const uint8_t **wb,
                           const uint16_t **ma, const uint16_t **mb)
{
    size_t C4 = (w->cols + 3) / 4;
    *wa = (const uint8_t *)w->q + (size_t)rb * C4 * 32;
    *wb = *wa + (nrb > 1 ? C4 * 32 : 0);
    *ma = w->m + (size_t)rb * w->ngroups * 8;
    *mb = *ma + (nrb > 1 ? (size_t)w->ngroups * 8 : 0);
}

/* Quads [j0, j1) of the two blocks times eight tokens, added to c[0..7]: each weight
 * vector serves eight vpdpbusd. */
static inline __attribute__((always_inline)) void il_quads_z8(const uint8_t *wa, const uint8_t *wb,
                                                              const int8_t *const a[8], uint32_t j0, uint32_t j1,
                                                              uint32_t cols, int tail, __m512i c[8])
{
#pragma GCC unroll 8
    for (uint32_t j = j0; j < j1; j++) {
        __m512i W = zwld(wa, wb, j);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            c[k] = _mm512_dpbusd_epi32(c[k], W, _mm512_set1_epi32(nn_a8_quad_at(a[k], 4 * j, cols, tail)));
    }
}

/* Prefill: row blocks rb and rb + 1 times eight tokens (a[k], with sum[k][g] and
 * sh[k][g]); e[k], o[k] hold token k's even and odd rows (64-bit lanes 0-3 block rb,
 * 4-7 block rb + 1). The last group, which may end in a ragged quad, goes apart so
 * that the others' loads need no bound. Along the way the pf_len bytes at pf go to
 * L2, pf_lpg lines per group. */
static inline __attribute__((always_inline)) void il_z8(const nn_mm_args *A, uint32_t rb, uint32_t nrb,
                                                        const int8_t *const a[8], const int32_t *const sum[8],
                                                        const uint8_t *const sh[8], uint32_t G, const char *pf,
                                                        uint32_t pf_len, uint32_t pf_lpg, __m512i e[8],
                                                        __m512i o[8])
{
    const nn_q8_mat *w = A->w;
    uint32_t C4 = (w->cols + 3) / 4, ng = w->ngroups;
    const uint8_t *wa, *wb;
    const uint16_t *ma, *mb;
    zblocks(w, rb, nrb, &wa, &wb, &ma, &mb);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        e[k] = o[k] = _mm512_setzero_si512();
    for (uint32_t g = 0; g < ng; g++) {
        __m512i c[8], mz, mo;
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            c[k] = _mm512_setzero_si512();
        for (uint32_t u = 0, off = g * pf_lpg * 64; u < pf_lpg && off < pf_len; u++, off += 64)
            _mm_prefetch(pf + off, _MM_HINT_T1);
        if (g + 1 < ng)
            il_quads_z8(wa, wb, a, g * (G / 4), (g + 1) * (G / 4), w->cols, 0, c);
        else if (w->cols % 4 == 0)
            il_quads_z8(wa, wb, a, g * (G / 4), C4, w->cols, 0, c);
        else
            il_quads_z8(wa, wb, a, g * (G / 4), C4, w->cols, 1, c);
        zmant(ma, mb, g, &mz, &mo);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            zscale(c[k], 128 * sum[k][g], sh[k][g], mz, mo, &e[k], &o[k]);
    }
}

/*
 * nn_mulshift_sat32 of 8 int64 lanes by one scale m in [2^31, 2^32) and one shift s in
 * [32, 93], for lanes with |acc| < 2^61: with acc = ah 2^32 + al and m = 2^31 + m',
 * p = acc m is ah m' 2^32 + ah 2^63 + al m; U = floor(p / 2^31) fits int64, and
 * round(p / 2^s) = floor((U + 2^(s-32)) / 2^(s-31)) (adding 2^(s-1) to p moves only
 * bits at and above 2^31). Returns 0 (and leaves *out) if a lane is out of range.
 */
static inline int mulshift8(__m512i acc, uint32_t m, int s, __m256i *out)
{
    const __m512i lim = _mm512_set1_epi64(1ll << 61);
    if (_mm512_cmpge_epi64_mask(_mm512_abs_epi64(acc), lim))
        return 0;
    __m512i ah = _mm512_srai_epi64(acc, 32), mv = _mm512_set1_epi64(m);
    __m512i lo = _mm512_mul_epu32(acc, mv);                                       /* al m < 2^64 */
    __m512i hi = _mm512_add_epi64(_mm512_mul_epi32(ah, _mm512_set1_epi64(m - (1u << 31))), _mm512_slli_epi64(ah, 31));
    /* floor(p / 2^32) = hi + (lo >> 32); U = 2 floor(p / 2^32) + bit 31 of lo. */
    __m512i u = _mm512_add_epi64(_mm512_slli_epi64(_mm512_add_epi64(hi, _mm512_srli_epi64(lo, 32)), 1),
                                 _mm512_and_si512(_mm512_srli_epi64(lo, 31), _mm512_set1_epi64(1)));
    __m512i r = _mm512_sra_epi64(_mm512_add_epi64(u, _mm512_set1_epi64(1ll << (s - 32))), _mm_cvtsi32_si128(s - 31));
    r = _mm512_min_epi64(_mm512_max_epi64(r, _mm512_set1_epi64(INT32_MIN)), _mm512_set1_epi64(INT32_MAX));
    *out = _mm512_cvtepi64_epi32(r);
    return 1;
}

/* Row block rb's sums for token t (e: rows 0 2 4 6, o: rows 1 3 5 7) into the rows of
 * [r0, r1): in vector lanes where mulshift8 can, else one by one. */
static inline void il_flush(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t r0, uint32_t r1, __m256i e,
                            __m256i o)
{
    uint32_t m = A->as[t].m;
    int s = A->as[t].e + A->w->exp - 16;
    __m256i r;
    if (m >= (1u << 31) && s >= 32 && s <= 93 &&
        mulshift8(_mm512_inserti64x4(_mm512_castsi256_si512(e), o, 1), m, s, &r)) {
        uint32_t base = rb * 8, lo = r0 > base ? r0 - base : 0, hi = r1 - base < 8 ? r1 - base : 8;
        _mm256_mask_storeu_epi32(A->out + (size_t)t * A->out_stride + base,
                                 (__mmask8)(((1u << hi) - 1) & ~((1u << lo) - 1)),
                                 _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        return;
    }
    int64_t acc[8];
    il_rows8(e, o, acc);
    nn_a8_flush(A, t, rb, r0, r1, acc);
}

/* Token t's sums of blocks rb (low halves of e, o) and rb + 1 (high halves, if nrb is
 * 2) into the rows of [r0, r1), whose lanes are mask (row rb * 8 + i is lane i): both
 * blocks' even rows in one mulshift8, the odd rows in another, interleaved back into
 * one 16-row store. Where mulshift8 cannot, il_flush per block. */
static inline void il_zflush(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t nrb, uint32_t r0, uint32_t r1,
                             __mmask16 mask, __m512i e, __m512i o)
{
    uint32_t m = A->as[t].m;
    int s = A->as[t].e + A->w->exp - 16;
    __m256i re, ro;
    if (m >= (1u << 31) && s >= 32 && s <= 93 && mulshift8(e, m, s, &re) && mulshift8(o, m, s, &ro)) {
        const __m512i zip = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        _mm512_mask_storeu_epi32(A->out + (size_t)t * A->out_stride + rb * 8, mask,
                                 _mm512_permutex2var_epi32(_mm512_castsi256_si512(re), zip, _mm512_castsi256_si512(ro)));
        return;
    }
    il_flush(A, t, rb, r0, r1, _mm512_castsi512_si256(e), _mm512_castsi512_si256(o));
    if (nrb > 1)
        il_flush(A, t, rb + 1, r0, r1, _mm512_extracti64x4_epi64(e, 1), _mm512_extracti64x4_epi64(o, 1));
}

/*
 * Interleaved weights. Decode: one row block at a time, 256-bit (memory-bound; a
 * two-block 512-bit loop with two weight streams decoded tinyllama's shape 10-20%
 * slower). Prefill: two row blocks at a time so that every vpdpbusd fills 512 bits
 * (on Zen 5 a 512-bit vpdpbusd costs about what a 256-bit one does: 143-204 against
 * 50-81 G MAC/s on one core); with the vector flush below, the kernel alone runs
 * 2-2.5x the 2 x 4-token 256-bit tile it replaced (docs/speed.md).
 */
static void mm_a8_il(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = A->w;
    const uint32_t T = A->n_tok, G = w->group;
    uint32_t rb0 = r0 / 8, rb1 = (r1 + 7) / 8;
    if (T == 1) {
        for (uint32_t rb = rb0; rb < rb1; rb++) {
            __m256i e, o;
            if (G == 32)
                il_r1(A, rb, 32, &e, &o);
            else
                il_r1(A, rb, G, &e, &o);
            il_flush(A, 0, rb, r0, r1, e, o);
        }
        return;
    }
    for (uint32_t rb = rb0; rb < rb1; rb += 2) {
        uint32_t nrb = rb + 1 < rb1 ? 2 : 1;
        /* The lanes of rows [r0, r1) among the blocks' 8 * nrb. */
        uint32_t base = rb * 8, lo = r0 > base ? r0 - base : 0, hi = r1 - base < 8 * nrb ? r1 - base : 8 * nrb;
        __mmask16 mask = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        /* The next pair's weights, a slice per pass of eight tokens (lpg lines per
         * group), into L2 while this pair's passes run, so that its first pass does not
         * wait on memory. */
        size_t blk = (size_t)((w->cols + 3) / 4) * 32;
        uint32_t passes = (T + 7) / 8, pf_all = rb + 2 < rb1 ? (uint32_t)((rb + 3 < rb1 ? 2 : 1) * blk) : 0;
        const char *pf = (const char *)w->q + (pf_all ? (size_t)(rb + 2) * blk : 0);
        uint32_t slice = ((pf_all + passes - 1) / passes + 63) & ~63u;
        uint32_t lpg = (slice / 64 + w->ngroups - 1) / w->ngroups;
        /* The two blocks' weights (cols x 16 bytes) stay in L1 or L2 while every token
         * of the block passes, eight at a time (a short last set repeats its last
         * token); the tokens' activations stream from L2. */
        for (uint32_t t = 0; t < T; t += 8) {
            const int8_t *a[8];
            const uint8_t *sh[8];
            const int32_t *sum[8];
            for (uint32_t k = 0; k < 8; k++) {
                uint32_t tk = t + k < T ? t + k : T - 1;
                a[k] = A->a8 + (size_t)tk * A->a_stride;
                sh[k] = A->ash + (size_t)tk * A->ash_stride;
                sum[k] = A->asum + (size_t)tk * A->ash_stride;
            }
            __m512i e[8], o[8];
            uint32_t s0 = (t / 8) * slice, slen = s0 < pf_all ? (pf_all - s0 < slice ? pf_all - s0 : slice) : 0;
            if (G == 32)
                il_z8(A, rb, nrb, a, sum, sh, 32, slen ? pf + s0 : pf, slen, lpg, e, o);
            else
                il_z8(A, rb, nrb, a, sum, sh, G, slen ? pf + s0 : pf, slen, lpg, e, o);
            for (uint32_t k = 0; k < 8 && t + k < T; k++)
                il_zflush(A, t + k, rb, nrb, r0, r1, mask, e[k], o[k]);
        }
    }
}

static void mm_a8_avx512(const nn_mm_args *A, uint32_t r0, uint32_t r1)
{
    if (A->w->il) {
        if (r0 >= r1)
            nn_matmul_q8_a8_ref(A, r0, r1);
        else
            mm_a8_il(A, r0, r1);
        return;
    }
    const nn_q8_mat *w = A->w;
    const uint32_t T = A->n_tok, G = w->group, ng = w->ngroups;
    if (G % 32 || r0 >= r1) {
        nn_matmul_q8_a8_ref(A, r0, r1);
        return;
    }
    /* Row-major weights are a tied classifier's, used for a row or a few (a block's
     * logits only under all_logits): one row at a time per token. */
    for (uint32_t t = 0; t < T; t++) {
        const int8_t *a = A->a8 + (size_t)t * A->a_stride;
        const uint8_t *sh = A->ash + (size_t)t * A->ash_stride;
        const int32_t *sum = A->asum + (size_t)t * A->ash_stride;
        int shift = A->as[t].e + w->exp - 16;
        for (uint32_t r = r0; r < r1; r++) {
            const int8_t *q = w->q + (size_t)r * w->cols;
            const uint16_t *m = w->m + (size_t)r * ng;
            int64_t acc = G == 32 ? row_a8(q, m, a, sum, sh, w->cols, 32, ng) : row_a8(q, m, a, sum, sh, w->cols, G, ng);
            A->out[(size_t)t * A->out_stride + r] = nn_mulshift_sat32_inl(acc, A->as[t].m, shift);
        }
    }
}

/*
 * nn_act8_quant for groups of a multiple of 32: a group's largest |a| by a 32-lane
 * max, its step by nn_act8_shift_inl, then round-half-up of |a| in unsigned 16-bit
 * lanes (|a| + half <= 32768 + 256 fits) with the sign put back. Other groups take the
 * portable one.
 */
static void act8_avx512(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum)
{
    if (g % 32) {
        nn_act8_quant(a, n, g, q, sh, sum);
        return;
    }
    for (uint32_t i0 = 0, k = 0; i0 < n; i0 += g, k++) {
        uint32_t len = n - i0 < g ? n - i0 : g;
        __m512i mx = _mm512_setzero_si512();
        for (uint32_t i = 0; i < len; i += 32) {
            mx = _mm512_max_epu16(mx, _mm512_abs_epi16(_mm512_maskz_loadu_epi16(mask32(len - i), a + i0 + i)));
        }
        __m256i m256 = _mm256_max_epu16(_mm512_castsi512_si256(mx), _mm512_extracti64x4_epi64(mx, 1));
        __m128i m128 = _mm_max_epu16(_mm256_castsi256_si128(m256), _mm256_extracti128_si256(m256, 1));
        uint32_t top = 0xffffu - (uint32_t)_mm_extract_epi16(_mm_minpos_epu16(_mm_xor_si128(m128, _mm_set1_epi16(-1))), 0);
        int s = nn_act8_shift_inl(top);
        const __m512i half = _mm512_set1_epi16((short)((1 << s) >> 1)), ones = _mm512_set1_epi16(1);
        const __m128i cnt = _mm_cvtsi32_si128(s);
        __m512i tot = _mm512_setzero_si512();
        for (uint32_t i = 0; i < len; i += 32) {
            __mmask32 m = mask32(len - i);
            __m512i v = _mm512_maskz_loadu_epi16(m, a + i0 + i);
            __m512i r = _mm512_srl_epi16(_mm512_add_epi16(_mm512_abs_epi16(v), half), cnt);
            r = _mm512_mask_sub_epi16(r, _mm512_movepi16_mask(v), _mm512_setzero_si512(), r);
            _mm256_mask_storeu_epi8(q + i0 + i, m, _mm512_cvtepi16_epi8(r));
            tot = _mm512_add_epi32(tot, _mm512_madd_epi16(r, ones));
        }
        sh[k] = (uint8_t)s;
        if (sum)
            sum[k] = _mm512_reduce_add_epi32(tot);
    }
}

/*
 * SiLU runs SK independent vectors of 8 lanes through every step together: each is a
 * long chain of dependent multiplies (the exp polynomial, then the Newton steps), so
 * one or two chains leave the multipliers waiting on latency. Eight ran a standalone
 * loop over 1536 values in 1.5-1.8 ns per value against 2.8-2.9 with two and 3.2-4.0
 * before (one vector through each step, two in flight); 12 or 16 were no better.
 */
#define SK 8

/* exp(d / 2^16) in Q30 for SK x 8 int64 lanes d <= 0 (d >= 0 gives 1.0), in place:
 * nn_exp_q16_q30 step for step (kernels_avx2.c's exp4_q30 on 512-bit lanes, with
 * masks). */
static inline __attribute__((always_inline)) void exp8_q30(__m512i d[SK])
{
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
    __mmask8 pos[SK], big[SK];
    __m512i ni[SK], f[SK], acc[SK];
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        pos[k] = _mm512_cmpge_epi64_mask(d[k], zero);
        __m512i nd = _mm512_sub_epi64(zero, d[k]);
        big[k] = _mm512_cmpgt_epi64_mask(nd, _mm512_set1_epi64((int64_t)64 << 16));
        nd = _mm512_mask_mov_epi64(nd, pos[k] | big[k], zero);
        __m512i y = _mm512_add_epi64(_mm512_slli_epi64(nd, 32),
                                     _mm512_mul_epu32(nd, _mm512_set1_epi64(NN_LOG2E_Q32 - (1ll << 32))));
        y = _mm512_srli_epi64(_mm512_add_epi64(y, _mm512_set1_epi64(1ll << 16)), 17);
        ni[k] = _mm512_srli_epi64(y, 31);
        f[k] = _mm512_and_si512(y, _mm512_set1_epi64(0x7fffffff));
        acc[k] = _mm512_set1_epi64(nn_exp2_neg_poly_q31[8]);
    }
#pragma GCC unroll 8
    for (int j = 7; j >= 0; j--)
#pragma GCC unroll 8
        for (int k = 0; k < SK; k++)
            acc[k] = _mm512_add_epi64(
                _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(acc[k], f[k]), _mm512_set1_epi64(1ll << 30)), 31),
                _mm512_set1_epi64(nn_exp2_neg_poly_q31[j]));
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        __m512i sh = _mm512_add_epi64(ni[k], one);                 /* 1 + n: counts past 63 give 0 */
        __m512i r = _mm512_srlv_epi64(_mm512_add_epi64(acc[k], _mm512_sllv_epi64(one, ni[k])), sh);
        r = _mm512_mask_mov_epi64(r, big[k], zero);
        d[k] = _mm512_mask_mov_epi64(r, pos[k], _mm512_set1_epi64(1ll << 30));
    }
}

/*
 * floor(n / d) for SK x 8 lanes with 0 <= n < 2^61 and 2^30 <= d <= 2^31, into n: a
 * 16-entry estimate of 2^60 / d, three Newton steps r += r (2^60 - d r) / 2^60 (each
 * about doubles the correct bits: 5, 10, 20, then ~30), q = n r / 2^60 from 32-bit
 * halves, and then q corrected until 0 <= n - q d < d, so the result is exact whatever
 * the estimate's error.
 */
static inline __attribute__((always_inline)) void div8_u61_u31(__m512i n[SK], const __m512i d[SK])
{
#define R0(i) (int32_t)((1ll << 35) / (33 + 2 * (i)))
    static const int32_t r0[16] = { R0(0), R0(1), R0(2),  R0(3),  R0(4),  R0(5),  R0(6),  R0(7),
                                    R0(8), R0(9), R0(10), R0(11), R0(12), R0(13), R0(14), R0(15) };
#undef R0
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff), two60 = _mm512_set1_epi64(1ll << 60);
    const __m512i one = _mm512_set1_epi64(1), zero = _mm512_setzero_si512();
    __m512i r[SK];
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        __m512i idx = _mm512_sub_epi64(_mm512_min_epu64(_mm512_srli_epi64(d[k], 26), _mm512_set1_epi64(31)),
                                       _mm512_set1_epi64(16));
        r[k] = _mm512_and_si512(_mm512_permutexvar_epi32(idx, _mm512_loadu_si512((const void *)r0)), lo32);
    }
#pragma GCC unroll 3
    for (int it = 0; it < 3; it++)
#pragma GCC unroll 8
        for (int k = 0; k < SK; k++) {
            __m512i err = _mm512_srai_epi64(_mm512_sub_epi64(two60, _mm512_mul_epu32(d[k], r[k])), 28);
            r[k] = _mm512_add_epi64(r[k], _mm512_srai_epi64(_mm512_mul_epi32(r[k], err), 32));
        }
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        __m512i t = _mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(n[k], 32), r[k]),
                                     _mm512_srli_epi64(_mm512_mul_epu32(n[k], r[k]), 32));
        __m512i q = _mm512_srli_epi64(t, 28);
        __m512i rem = _mm512_sub_epi64(n[k], _mm512_mul_epu32(q, d[k]));
        /* The estimate is low by 0 or 1 (rarely 2): one step without a branch, then
         * loops that almost never run. */
        __mmask8 up = _mm512_cmpge_epi64_mask(rem, d[k]);
        q = _mm512_mask_add_epi64(q, up, q, one);
        rem = _mm512_mask_sub_epi64(rem, up, rem, d[k]);
        for (__mmask8 m; (m = _mm512_cmplt_epi64_mask(rem, zero));) {
            q = _mm512_mask_sub_epi64(q, m, q, one);
            rem = _mm512_mask_add_epi64(rem, m, rem, d[k]);
        }
        for (__mmask8 m; (m = _mm512_cmpge_epi64_mask(rem, d[k]));) {
            q = _mm512_mask_add_epi64(q, m, q, one);
            rem = _mm512_mask_sub_epi64(rem, m, rem, d[k]);
        }
        n[k] = q;
    }
}

/* nn_silu_q16 of SK x 8 int32 at x, in place: nn_sigmoid_q16_q30's quotient by
 * div8_u61_u31. */
static inline __attribute__((always_inline)) void silu8(int32_t *x)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i xv[SK], e[SK], den[SK];
    __mmask8 neg[SK];
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        xv[k] = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(x + 8 * k)));
        neg[k] = _mm512_cmplt_epi64_mask(xv[k], zero);
        e[k] = _mm512_sub_epi64(zero, _mm512_abs_epi64(xv[k]));
    }
    exp8_q30(e);
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++) {
        den[k] = _mm512_add_epi64(_mm512_set1_epi64(1ll << 30), e[k]);
        __m512i num = _mm512_mask_mov_epi64(_mm512_set1_epi64(1ll << 60), neg[k], _mm512_slli_epi64(e[k], 30));
        e[k] = _mm512_add_epi64(num, _mm512_srli_epi64(den[k], 1));
    }
    div8_u61_u31(e, den);
#pragma GCC unroll 8
    for (int k = 0; k < SK; k++)
        _mm256_storeu_si256((__m256i *)(void *)(x + 8 * k),
                            _mm512_cvtepi64_epi32(_mm512_srai_epi64(
                                _mm512_add_epi64(_mm512_mul_epi32(xv[k], e[k]), _mm512_set1_epi64(1ll << 29)), 30)));
}

/* x[i] = nn_silu_q16(x[i]): SK x 8 at a time, the rest (fewer than 32) through a
 * zero-padded copy. The hardware divider, four scalar divisions per four lanes on
 * avx2, made SiLU a tenth of a smollm2-shape prompt. */
static void silu_avx512(int32_t *x, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 8 * SK <= n; i += 8 * SK)
        silu8(x + i);
    if (i < n) {
        int32_t tail[8 * SK] = { 0 };
        memcpy(tail, x + i, (n - i) * sizeof *x);
        silu8(tail);
        memcpy(x + i, tail, (n - i) * sizeof *x);
    }
}

/* Softmax numerators: exp8_q30 over SK x 8 scores at a time (masked lanes are loaded
 * as 0, computed, and neither stored nor summed). */
static int64_t softmax_exp_avx512(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out)
{
    const __m512i mx = _mm512_set1_epi64(xmax);
    __m512i tot = _mm512_setzero_si512();
    for (uint32_t i = 0; i < n; i += 8 * SK) {
        __m512i d[SK];
        __mmask8 m[SK];
#pragma GCC unroll 8
        for (int k = 0; k < SK; k++) {
            uint32_t at = i + 8 * (uint32_t)k;
            m[k] = mask8(n > at ? n - at : 0);
            d[k] = _mm512_sub_epi64(_mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m[k], x + at)), mx);
        }
        exp8_q30(d);
#pragma GCC unroll 8
        for (int k = 0; k < SK; k++) {
            _mm512_mask_cvtepi64_storeu_epi32(out + i + 8 * k, m[k], d[k]);
            tot = _mm512_add_epi64(tot, _mm512_maskz_mov_epi64(m[k], d[k]));
        }
    }
    return _mm512_reduce_add_epi64(tot);
}

#undef SK

/* ---- attention ------------------------------------------------------------------------ */

/* 16 int32 lanes folded to 8 (pairs added: subset sums stay inside their bounds). */
static inline __m256i fold16(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/*
 * Attention scores for head sizes in whole 32-lane chunks up to 256 (64 and 128 in
 * every llama shape here): kernels_avx2.c's split q = 256 qh + ql, four rows at a
 * time, with vpdpwssd adding each pair of int16 products into an int32 lane (no
 * saturation; the AVX2 path's bounds hold for any order of summation). Other sizes and
 * the last rows of a count not divisible by four take the AVX2 kernel.
 */
static void dot_rows_avx512(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                            int64_t *out)
{
    uint32_t j = 0;
    if (n % 32 == 0 && n <= 256) {
        int16_t qh[256], ql[256];
        for (uint32_t i = 0; i < n; i += 32) {   /* split_bytes: qh = q >> 8, ql = q & 255 */
            __m512i v = _mm512_loadu_si512((const void *)(q + i));
            _mm512_storeu_si512((void *)(qh + i), _mm512_srai_epi16(v, 8));
            _mm512_storeu_si512((void *)(ql + i), _mm512_and_si512(v, _mm512_set1_epi16(255)));
        }
        for (; j + 4 <= n_rows; j += 4) {
            const int16_t *k0 = k + j * k_stride;
            if (j + ATT_PF_ROWS + 4 <= n_rows)
                for (uint32_t r = 0; r < 4; r++)
                    for (uint32_t off = 0; off < n * 2; off += 64)
                        _mm_prefetch((const char *)(k0 + (ATT_PF_ROWS + r) * k_stride) + off, _MM_HINT_T0);
            __m512i h[4], l[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                h[r] = l[r] = _mm512_setzero_si512();
            for (uint32_t i = 0; i < n; i += 32) {
                __m512i a = _mm512_loadu_si512((const void *)(qh + i)), b = _mm512_loadu_si512((const void *)(ql + i));
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    __m512i x = _mm512_loadu_si512((const void *)(k0 + r * k_stride + i));
                    h[r] = _mm512_dpwssd_epi32(h[r], a, x);
                    l[r] = _mm512_dpwssd_epi32(l[r], b, x);
                }
            }
            int32_t v[8];
            _mm256_storeu_si256((__m256i *)(void *)v, hsum8(fold16(h[0]), fold16(l[0]), fold16(h[1]), fold16(l[1]),
                                                            fold16(h[2]), fold16(l[2]), fold16(h[3]), fold16(l[3])));
            for (uint32_t r = 0; r < 4; r++)
                out[j + r] = (int64_t)v[2 * r] * 256 + v[2 * r + 1];
        }
    }
    if (j < n_rows)
        nn_dot_rows_i16_avx2(q, k + j * k_stride, k_stride, n, n_rows - j, out + j);
}

/* NB packed blocks of 16 rows (nn_pack_rows_i16) against q's column pairs split into
 * bytes (qh: the high byte, signed; ql: the low, unsigned; as vpdpwssd's int32
 * broadcasts): 2 NB independent sums, each half of a pair's products per lane, within
 * the dot_rows_avx512 bounds. Rows from `rows` on are not stored. */
static inline __attribute__((always_inline)) void packed_blocks(const int16_t *qh, const int16_t *ql, uint32_t half,
                                                                const int16_t *p, size_t bstride, int NB,
                                                                uint32_t rows, int64_t *out)
{
    __m512i h[4], l[4];
#pragma GCC unroll 4
    for (int k = 0; k < NB; k++)
        h[k] = l[k] = _mm512_setzero_si512();
    for (uint32_t i = 0; i < half; i++) {
        __m512i a = _mm512_broadcastd_epi32(_mm_loadu_si32(qh + 2 * i)),
                b = _mm512_broadcastd_epi32(_mm_loadu_si32(ql + 2 * i));
#pragma GCC unroll 4
        for (int k = 0; k < NB; k++) {
            __m512i x = _mm512_loadu_si512((const void *)(p + k * bstride + 32 * (size_t)i));
            h[k] = _mm512_dpwssd_epi32(h[k], x, a);
            l[k] = _mm512_dpwssd_epi32(l[k], x, b);
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < NB; k++, rows = rows > 16 ? rows - 16 : 0) {
        __m512i lo = _mm512_add_epi64(_mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(h[k])), 8),
                                      _mm512_cvtepi32_epi64(_mm512_castsi512_si256(l[k])));
        __m512i hi = _mm512_add_epi64(_mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(h[k], 1)), 8),
                                      _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(l[k], 1)));
        _mm512_mask_storeu_epi64(out + 16 * k, mask8(rows), lo);
        _mm512_mask_storeu_epi64(out + 16 * k + 8, mask8(rows > 8 ? rows - 8 : 0), hi);
    }
}

/* dot_rows_packed: four blocks (64 rows) at a time, then two, then one. */
static void dot_rows_packed_avx512(const int16_t *q, const int16_t *p, uint32_t n, uint32_t n_rows, int64_t *out)
{
    if (n > 256 || n % 2) {
        nn_dot_rows_packed_ref(q, p, n, n_rows, out);
        return;
    }
    int16_t qh[256], ql[256];   /* q >> 8 and q & 255; a column pair is one int32 */
    for (uint32_t i = 0; i < n; i += 32) {
        __m512i v = _mm512_maskz_loadu_epi16(mask32(n - i), q + i);
        _mm512_storeu_si512((void *)(qh + i), _mm512_srai_epi16(v, 8));
        _mm512_storeu_si512((void *)(ql + i), _mm512_and_si512(v, _mm512_set1_epi16(255)));
    }
    size_t bstride = (size_t)16 * n;
    uint32_t nb = (n_rows + 15) / 16, b = 0;
    for (; b + 4 <= nb; b += 4)
        packed_blocks(qh, ql, n / 2, p + b * bstride, bstride, 4, n_rows - 16 * b, out + 16 * b);
    if (b + 2 <= nb) {
        packed_blocks(qh, ql, n / 2, p + b * bstride, bstride, 2, n_rows - 16 * b, out + 16 * b);
        b += 2;
    }
    if (b < nb)
        packed_blocks(qh, ql, n / 2, p + b * bstride, bstride, 1, n_rows - 16 * b, out + 16 * b);
}

/* Eight exponents e[j * es .. (j + 7) * es] as int64 lanes. */
static inline __m512i exps8(const int8_t *e, size_t es, uint32_t j)
{
    return _mm512_set_epi64(e[(j + 7) * es], e[(j + 6) * es], e[(j + 5) * es], e[(j + 4) * es], e[(j + 3) * es],
                            e[(j + 2) * es], e[(j + 1) * es], e[j * es]);
}

/* nn_scores_q16_avx2 on eight lanes, with the arithmetic 64-bit shift and the
 * saturating narrowing AVX-512 has; eight lanes with any outside its ranges, and the
 * last n % 8, through the reference. */
static int32_t scores_q16_avx512(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                                 int32_t *out)
{
    int32_t smax = INT32_MIN;
    uint32_t j = 0;
    if (c >= 0 && c < (1 << 24)) {
        const __m512i cv = _mm512_set1_epi64(c), one = _mm512_set1_epi64(1), vb = _mm512_set1_epi64(base);
        const __m512i dlim = _mm512_set1_epi64(1ll << 37), s_hi = _mm512_set1_epi64(62);
        __m256i mx = _mm256_set1_epi32(INT32_MIN);
        for (; j + 8 <= n; j += 8) {
            __m512i d = _mm512_loadu_si512((const void *)(dots + j));
            __m512i sh = _mm512_sub_epi64(vb, exps8(e, e_stride, j));
            if (_mm512_cmpgt_epu64_mask(_mm512_abs_epi64(d), dlim) | _mm512_cmpgt_epi64_mask(sh, s_hi) |
                _mm512_cmplt_epi64_mask(sh, one)) {
                int32_t m8 = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, 8, out + j);
                mx = _mm256_max_epi32(mx, _mm256_set1_epi32(m8));
                continue;
            }
            __m512i v = _mm512_add_epi64(_mm512_slli_epi64(_mm512_mul_epi32(_mm512_srai_epi64(d, 32), cv), 32),
                                         _mm512_mul_epu32(d, cv));
            __m512i half = _mm512_sllv_epi64(one, _mm512_sub_epi64(sh, one));
            __m256i r = _mm512_cvtsepi64_epi32(_mm512_srav_epi64(_mm512_add_epi64(v, half), sh));
            _mm256_storeu_si256((__m256i *)(void *)(out + j), r);
            mx = _mm256_max_epi32(mx, r);
        }
        __m128i m4 = _mm_max_epi32(_mm256_castsi256_si128(mx), _mm256_extracti128_si256(mx, 1));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0x4e));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0xb1));
        smax = _mm_cvtsi128_si32(m4);
    }
    int32_t t = nn_scores_q16_ref(dots + j, e + j * e_stride, e_stride, c, base, n - j, out + j);
    return t > smax ? t : smax;
}

/* nn_probs_align_avx2 on eight lanes. */
static void probs_align_avx512(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n)
{
    uint32_t j = 0;
    if (inv <= UINT32_MAX) {
        const __m512i iv = _mm512_set1_epi64((int64_t)inv), one = _mm512_set1_epi64(1);
        const __m512i r31 = _mm512_set1_epi64(1ll << 31), vt = _mm512_set1_epi64(tmax);
        for (; j + 8 <= n; j += 8) {
            __m512i x = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(p + j)));
            x = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epu32(x, iv), r31), 32);
            __m512i sh = _mm512_sub_epi64(vt, exps8(e, e_stride, j));
            __m512i half = _mm512_srli_epi64(_mm512_sllv_epi64(one, sh), 1);
            _mm256_storeu_si256((__m256i *)(void *)(p + j),
                                _mm512_cvtepi64_epi32(_mm512_srlv_epi64(_mm512_add_epi64(x, half), sh)));
        }
    }
    nn_probs_align_ref(p + j, inv, e + j * e_stride, e_stride, tmax, n - j);
}

/* (H << 16) + (M << 8) + L of 8 int32 lanes, as int64. */
static inline __m512i axpy_join(__m256i H, __m256i M, __m256i L)
{
    return _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(_mm512_cvtepi32_epi64(H), 16),
                                             _mm512_slli_epi64(_mm512_cvtepi32_epi64(M), 8)),
                            _mm512_cvtepi32_epi64(L));
}

/*
 * Attention values for head sizes in whole 32-lane chunks: kernels_avx2.c's
 * axpy_rows_split (p = 2^16 ph + 2^8 pm + pl, two rows interleaved per vpmaddwd, blocks
 * of rows whose parts fit int32) on 512-bit vectors with vpdpwssd. Within each 128-bit
 * lane the "lo" sums hold outputs 8L..8L+3 and the "hi" sums 8L+4..8L+7; the join puts
 * them back in order. Other sizes, and an odd count's last row, take the AVX2 kernel.
 */
static void axpy_rows_avx512(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                             int64_t *acc)
{
    if (n % 32) {
        nn_axpy_rows_i16_avx2(p, v, v_stride, n, n_rows, acc);
        return;
    }
    int32_t pk[AXPY_MAX_PAIRS][3];         /* per pair: ph, pm, pl of both rows, as int16 pairs */
    uint32_t j = 0;
    while (j + 1 < n_rows) {
        uint32_t j0 = j, np = axpy_pack_pairs(p, j, n_rows, v, v_stride, n, pk);
        j += 2 * np;
        for (uint32_t i = 0; i < n; i += 32) {
            __m512i hl = _mm512_setzero_si512(), hh = hl, ml = hl, mh = hl, ll = hl, lh = hl;
            const int16_t *r = v + j0 * v_stride + i;
            for (uint32_t k = 0; k < np; k++, r += 2 * v_stride) {
                __m512i x = _mm512_loadu_si512((const void *)r), y = _mm512_loadu_si512((const void *)(r + v_stride));
                __m512i lo = _mm512_unpacklo_epi16(x, y), hi = _mm512_unpackhi_epi16(x, y);
                __m512i H = _mm512_set1_epi32(pk[k][0]), M = _mm512_set1_epi32(pk[k][1]),
                        L = _mm512_set1_epi32(pk[k][2]);
                hl = _mm512_dpwssd_epi32(hl, lo, H);
                hh = _mm512_dpwssd_epi32(hh, hi, H);
                ml = _mm512_dpwssd_epi32(ml, lo, M);
                mh = _mm512_dpwssd_epi32(mh, hi, M);
                ll = _mm512_dpwssd_epi32(ll, lo, L);
                lh = _mm512_dpwssd_epi32(lh, hi, L);
            }
            /* lo lanes 0-7: outputs 0-3, 8-11; 8-15: 16-19, 24-27 (hi: each + 4). */
            __m512i la = axpy_join(_mm512_castsi512_si256(hl), _mm512_castsi512_si256(ml), _mm512_castsi512_si256(ll));
            __m512i lb = axpy_join(_mm512_extracti64x4_epi64(hl, 1), _mm512_extracti64x4_epi64(ml, 1),
                                   _mm512_extracti64x4_epi64(ll, 1));
            __m512i ha = axpy_join(_mm512_castsi512_si256(hh), _mm512_castsi512_si256(mh), _mm512_castsi512_si256(lh));
            __m512i hb = axpy_join(_mm512_extracti64x4_epi64(hh, 1), _mm512_extracti64x4_epi64(mh, 1),
                                   _mm512_extracti64x4_epi64(lh, 1));
            int64_t *o = acc + i;
            _mm512_storeu_si512((void *)o, _mm512_add_epi64(_mm512_loadu_si512((const void *)o),
                                                            _mm512_shuffle_i64x2(la, ha, _MM_SHUFFLE(1, 0, 1, 0))));
            _mm512_storeu_si512((void *)(o + 8), _mm512_add_epi64(_mm512_loadu_si512((const void *)(o + 8)),
                                                                  _mm512_shuffle_i64x2(la, ha, _MM_SHUFFLE(3, 2, 3, 2))));
            _mm512_storeu_si512((void *)(o + 16), _mm512_add_epi64(_mm512_loadu_si512((const void *)(o + 16)),
                                                                   _mm512_shuffle_i64x2(lb, hb, _MM_SHUFFLE(1, 0, 1, 0))));
            _mm512_storeu_si512((void *)(o + 24), _mm512_add_epi64(_mm512_loadu_si512((const void *)(o + 24)),
                                                                   _mm512_shuffle_i64x2(lb, hb, _MM_SHUFFLE(3, 2, 3, 2))));
        }
    }
    if (j < n_rows)
        nn_axpy_rows_i16_avx2(p + j, v + j * v_stride, v_stride, n, 1, acc);
}

/* ---- row steps (RMSNorm, SwiGLU, the attention output, the KV cache) ---------------- */

/* nn_quant_i32_i16: |x| as unsigned 32-bit lanes (|INT32_MIN| = 2^31 is right as
 * unsigned), then round(x / 2^t) = (x >> t) + bit t-1 of x, which cannot overflow. */
static int quant_i32_avx512(const int32_t *x, uint32_t n, int16_t *out)
{
    __m512i mx = _mm512_setzero_si512();
    for (uint32_t i = 0; i < n; i += 16)
        mx = _mm512_max_epu32(mx, _mm512_abs_epi32(_mm512_maskz_loadu_epi32(mask16(n - i), x + i)));
    int t = nn_quant_shift_inl(_mm512_reduce_max_epu32(mx));
    const __m128i ct = _mm_cvtsi32_si128(t), ch = _mm_cvtsi32_si128(t ? t - 1 : 0);
    const __m512i one = _mm512_set1_epi32(t ? 1 : 0), lo = _mm512_set1_epi32(-32767), hi = _mm512_set1_epi32(32767);
    for (uint32_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512i v = _mm512_maskz_loadu_epi32(m, x + i);
        __m512i r = _mm512_add_epi32(_mm512_sra_epi32(v, ct), _mm512_and_si512(_mm512_sra_epi32(v, ch), one));
        _mm512_mask_cvtepi32_storeu_epi16(out + i, m, _mm512_min_epi32(_mm512_max_epi32(r, lo), hi));
    }
    return t;
}

/* Lanes i .. i+7 of a and b as int64 products (exact: |p| <= 2^62). */
static inline __m512i mul8_i64(const int32_t *a, const int32_t *b, uint32_t i, __mmask8 m)
{
    return _mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, a + i)),
                            _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, b + i)));
}

/* nn_mul_quant_i16_ref: the products twice (cheaper than storing them), rounding as
 * (p + 2^(t-1)) >> t in int64 (t <= 48 and |p| <= 2^62: no overflow). */
static int mul_quant_avx512(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out)
{
    __m512i mx = _mm512_setzero_si512();
    for (uint32_t i = 0; i < n; i += 8)
        mx = _mm512_max_epu64(mx, _mm512_abs_epi64(mul8_i64(a, b, i, mask8(n - i))));
    int t = nn_quant_shift_inl(_mm512_reduce_max_epu64(mx));
    const __m128i ct = _mm_cvtsi32_si128(t);
    const __m512i half = _mm512_set1_epi64(t ? 1ll << (t - 1) : 0);
    const __m512i lo = _mm512_set1_epi64(-32767), hi = _mm512_set1_epi64(32767);
    for (uint32_t i = 0; i < n; i += 8) {
        __mmask8 m = mask8(n - i);
        __m512i r = _mm512_sra_epi64(_mm512_add_epi64(mul8_i64(a, b, i, m), half), ct);
        _mm512_mask_cvtepi64_storeu_epi16(out + i, m, _mm512_min_epi64(_mm512_max_epi64(r, lo), hi));
    }
    return t;
}

/* nn_sumsq_i32_ref: each square (<= 2^62) split into its high and low 32 bits, summed
 * in separate 64-bit lanes (below 2^61 for n < 2^32), joined in 128 bits at the end. */
static void sumsq_avx512(const int32_t *x, uint32_t n, uint64_t ss[2])
{
    const __m512i lo32 = _mm512_set1_epi64(0xffffffffll);
    __m512i h = _mm512_setzero_si512(), l = _mm512_setzero_si512();
    for (uint32_t i = 0; i < n; i += 8) {
        __m512i p = mul8_i64(x, x, i, mask8(n - i));
        h = _mm512_add_epi64(h, _mm512_srli_epi64(p, 32));
        l = _mm512_add_epi64(l, _mm512_and_si512(p, lo32));
    }
    uint64_t hv[8], lv[8];
    _mm512_storeu_si512((void *)hv, h);
    _mm512_storeu_si512((void *)lv, l);
    unsigned __int128 s = 0;
    for (int k = 0; k < 8; k++)
        s += ((unsigned __int128)hv[k] << 32) + lv[k];
    ss[0] = (uint64_t)s;
    ss[1] = (uint64_t)(s >> 64);
}

/* nn_rope_q30_ref on 8 pairs at a time for head sizes of a multiple of 16: each lane
 * times its cos plus its pair partner times -sin (first of a pair) or +sin (second),
 * in int64 by vpmuldq on the even and the odd lanes. Other sizes: the reference. */
static void rope_avx512(int32_t *v, uint32_t n, uint32_t head_dim, const int32_t *sc)
{
    if (head_dim % 16 || n % 16) {
        nn_rope_q30_ref(v, n, head_dim, sc);
        return;
    }
    const __m512i half = _mm512_set1_epi64(1ll << 29), lo = _mm512_set1_epi64(INT32_MIN),
                  hi = _mm512_set1_epi64(INT32_MAX), low32 = _mm512_set1_epi64(0xffffffffll);
    for (uint32_t i = 0; i < n; i += 16) {
        __m512i x = _mm512_loadu_si512((const void *)(v + i));
        __m512i t = _mm512_loadu_si512((const void *)(sc + i % head_dim));
        __m512i xs = _mm512_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1));            /* pair partners */
        __m512i c = _mm512_shuffle_epi32(t, _MM_SHUFFLE(3, 3, 1, 1));              /* cos, cos */
        __m512i s = _mm512_shuffle_epi32(t, _MM_SHUFFLE(2, 2, 0, 0));              /* sin, sin */
        s = _mm512_mask_sub_epi32(s, 0x5555, _mm512_setzero_si512(), s);            /* -sin, sin */
        __m512i ev = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, c), _mm512_mul_epi32(xs, s)), half);
        __m512i od = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(c, 32)),
                                                       _mm512_mul_epi32(_mm512_srli_epi64(xs, 32), _mm512_srli_epi64(s, 32))),
                                      half);
        ev = _mm512_min_epi64(_mm512_max_epi64(_mm512_srai_epi64(ev, 30), lo), hi);
        od = _mm512_min_epi64(_mm512_max_epi64(_mm512_srai_epi64(od, 30), lo), hi);
        _mm512_storeu_si512((void *)(v + i), _mm512_or_si512(_mm512_and_si512(ev, low32), _mm512_slli_epi64(od, 32)));
    }
}

/* nn_add_sat_i32_ref: the sum in int64 lanes, saturated back to int32 by vpmovsqd. */
static void add_sat_avx512(int32_t *x, const int32_t *o, uint32_t n)
{
    for (uint32_t i = 0; i < n; i += 8) {
        __mmask8 m = mask8(n - i);
        __m512i a = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, x + i));
        __m512i b = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, o + i));
        _mm512_mask_cvtsepi64_storeu_epi32(x + i, m, _mm512_add_epi64(a, b));
    }
}

/* nn_round_sat_i64_ref for shifts in [1, 62] and |acc| < 2^61 (attention's sums are
 * below 2^46), in int64 lanes saturated by vpmovsqd; anything else one by one. */
static void round_sat_avx512(const int64_t *acc, int s, uint32_t n, int32_t *out)
{
    uint32_t i = 0;
    if (s >= 1 && s <= 62) {
        const __m512i half = _mm512_set1_epi64(1ll << (s - 1)), lim = _mm512_set1_epi64(1ll << 61);
        const __m128i sh = _mm_cvtsi32_si128(s);
        for (; i < n; i += 8) {
            __mmask8 m = mask8(n - i);
            __m512i v = _mm512_maskz_loadu_epi64(m, acc + i);
            if (_mm512_mask_cmpge_epu64_mask(m, _mm512_abs_epi64(v), lim))   /* INT64_MIN too */
                break;
            _mm512_mask_cvtsepi64_storeu_epi32(out + i, m, _mm512_sra_epi64(_mm512_add_epi64(v, half), sh));
        }
    }
    if (i < n)
        nn_round_sat_i64_ref(acc + i, s, n - i, out + i);
}

const nn_kernels nn_kernels_avx512vnni = {
    .name = "avx512vnni",
    .matmul_q8_q16 = mm_avx512,
    .matmul_q8_a8 = mm_a8_avx512,
    .dot_i16 = nn_dot_i16_avx2,
    .dot_rows_i16 = dot_rows_avx512,
    .dot_rows_packed = dot_rows_packed_avx512,
    .axpy_rows_i16 = axpy_rows_avx512,
    .softmax_exp_q30 = softmax_exp_avx512,
    .act8_quant = act8_avx512,
    .silu_q16 = silu_avx512,
    .scores_q16 = scores_q16_avx512,
    .probs_align = probs_align_avx512,
    .quant_i32_i16 = quant_i32_avx512,
    .mul_quant_i16 = mul_quant_avx512,
    .sumsq_i32 = sumsq_avx512,
    .rope_q30 = rope_avx512,
    .add_sat_i32 = add_sat_avx512,
    .round_sat_i64 = round_sat_avx512,
};

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
