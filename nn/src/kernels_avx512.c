/*
 * x86-64 AVX-512 VNNI matmul ("avx512vnni"), for "cloud" peers on x86 servers;
 * bit-exact with kernels_ref.c by the same argument as the AVX2 path. Tested (test_kernels,
 * test_model) on an AMD EPYC (Zen 4); there it is slower than avx2, so kernels.c offers
 * it by name only, not as the default.
 *
 * vpdpwssd adds pairs of int16 x int16 products into int32 lanes in one instruction.
 * Its additions wrap modulo 2^32, and every lane's final value is a sum over a subset
 * of one group's products (|.| < 256 * 127 * 32767 < 2^31), so the lane is exact.
 * Ragged group ends use masked loads (masked-off elements read as zero and never
 * fault), so the requirement is group % 16 == 0; groups of 4 or 8 take the AVX2
 * small-group kernel, other groups the reference.
 * The attention kernels are the AVX2 ones.
 */
#include "nn_kernels_impl.h"

#if NN_HAVE_X86_KERNELS

#include <immintrin.h>
/* gcc: a target pragma; clang (the fuzz builds) ignores that one and takes an attribute. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#include "fixed_inline.h"
#include "kernels_x86.h"

/* The first min(n, 32) of one row's weights as int16; the rest zero. Whole steps use a
 * plain load: masked loads on every step made decode 10x slower on Zen 4. */
static inline __m512i wload(const int8_t *q, uint32_t n)
{
    if (n >= 32)
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)q));
    __mmask32 k = ((__mmask32)1 << n) - 1;
    return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, q));
}

static inline __m512i aload(const int16_t *a, uint32_t n)
{
    if (n >= 32)
        return _mm512_loadu_si512((const void *)a);
    __mmask32 k = ((__mmask32)1 << n) - 1;
    return _mm512_maskz_loadu_epi16(k, a);
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
        __m256i mz = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(m + g)));
        e = _mm256_add_epi64(e, _mm256_mul_epi32(s, mz));
        o = _mm256_add_epi64(o, _mm256_mul_epi32(_mm256_srli_epi64(s, 32), _mm256_srli_epi64(mz, 32)));
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

const nn_kernels nn_kernels_avx512vnni = {
    .name = "avx512vnni",
    .matmul_q8_q16 = mm_avx512,
    .dot_i16 = nn_dot_i16_avx2,
    .dot_rows_i16 = nn_dot_rows_i16_avx2,
    .axpy_rows_i16 = nn_axpy_rows_i16_avx2,
    .softmax_exp_q30 = nn_softmax_exp_q30_avx2,
    .silu_q16 = nn_silu_q16_avx2,
    .scores_q16 = nn_scores_q16_avx2,
    .probs_align = nn_probs_align_avx2,
};

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
