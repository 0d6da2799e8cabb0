/*
 * AVX2 lane reductions and attention helpers shared by the x86 kernel files
 * (kernels_avx2.c, kernels_avx512.c). Include it after the file's target pragma or
 * attribute, so that these functions get the same target. Every reduction adds int32
 * lanes that are subset sums of one group's products, so the results stay exact (see
 * kernels_avx2.c).
 */
#ifndef NN_KERNELS_X86_H
#define NN_KERNELS_X86_H

#include <immintrin.h>
#include <stdint.h>

/*
 * Software prefetch distance for weight streams, in bytes ahead of the reads. The
 * hardware prefetcher alone left decode at a quarter of the memory bandwidth on the
 * Zen 3 development machine, where 2 KiB beat 0.5 and 1 KiB. On the Zen 4 VM (two cores
 * reading about 80 GB/s) 4 KiB decoded 9% faster than 2 KiB at one thread (smollm2 and
 * tinyllama shapes, medians of 3 side by side) and the same within noise at two; 8 KiB
 * was faster still at one thread and slower at two. The AVX-512 path uses the same.
 */
#define PF_DIST 4096

/* Rows ahead that the attention kernels prefetch (a cached K or V row is one head's
 * slice of a longer row, a stride the hardware prefetcher does not follow far enough). */
#define ATT_PF_ROWS 8

/*
 * The attention-value kernels' row blocks: p[j] = 2^16 ph + 2^8 pm + pl, packed per pair
 * of rows (j, j + 1) as int16 pairs pk[k] = { ph, pm, pl } for one vpmaddwd/vpdpwssd
 * each, from row j while pairs remain, at most AXPY_MAX_PAIRS of them, and only while
 * the block's sum of ph stays <= 65535 (so that sum(ph) x 32768 < 2^31). Prefetches the
 * V rows (n columns) ATT_PF_ROWS ahead. Returns the number of pairs (at least 1 when a
 * pair remains: one pair's ph sum is <= 65534); the block ends at row j + 2 x that.
 */
#define AXPY_MAX_PAIRS 64
static inline uint32_t axpy_pack_pairs(const int32_t *p, uint32_t j, uint32_t n_rows, const int16_t *v,
                                       size_t v_stride, uint32_t n, int32_t pk[AXPY_MAX_PAIRS][3])
{
    uint32_t np = 0, hsum = 0;
    for (; np < AXPY_MAX_PAIRS && j + 1 < n_rows; np++, j += 2) {
        uint32_t a = (uint32_t)p[j], b = (uint32_t)p[j + 1];
        if (hsum + (a >> 16) + (b >> 16) > 65535)
            break;
        hsum += (a >> 16) + (b >> 16);
        pk[np][0] = (int32_t)((a >> 16) | (b >> 16) << 16);
        pk[np][1] = (int32_t)((a >> 8 & 255) | (b >> 8 & 255) << 16);
        pk[np][2] = (int32_t)((a & 255) | (b & 255) << 16);
        if (j + ATT_PF_ROWS + 1 < n_rows)
            for (uint32_t r = 0; r < 2; r++)
                for (uint32_t off = 0; off < n * 2; off += 64)
                    _mm_prefetch((const char *)(v + (j + ATT_PF_ROWS + r) * v_stride) + off, _MM_HINT_T0);
    }
    return np;
}

/* c0, c1 -> per 64-bit element, (part of sum c0, part of sum c1). */
static inline __m256i zip32_add(__m256i c0, __m256i c1)
{
    return _mm256_add_epi32(_mm256_unpacklo_epi32(c0, c1), _mm256_unpackhi_epi32(c0, c1));
}

/* Four vectors of 8 lanes -> [sum c0 .. sum c3] in each 128-bit half (halves not yet
 * added). Unpacks and adds: single-uop instructions, where vphaddd costs several. */
static inline __m256i hsum4(__m256i c0, __m256i c1, __m256i c2, __m256i c3)
{
    __m256i p = zip32_add(c0, c1), q = zip32_add(c2, c3);
    return _mm256_add_epi32(_mm256_unpacklo_epi64(p, q), _mm256_unpackhi_epi64(p, q));
}

/* Eight vectors of 8 lanes -> [sum c0, ..., sum c7]. */
static inline __m256i hsum8(__m256i c0, __m256i c1, __m256i c2, __m256i c3, __m256i c4, __m256i c5, __m256i c6,
                            __m256i c7)
{
    __m256i a = hsum4(c0, c1, c2, c3), b = hsum4(c4, c5, c6, c7);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The sum of 8 int32 lanes. */
static inline int32_t hsum1(__m256i c)
{
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
    return _mm_cvtsi128_si32(x);
}

/* Eight consecutive groups' sums s of one row times their mantissas at m, into the int64
 * lanes e (groups 0, 2, 4, 6) and o (groups 1, 3, 5, 7). */
static inline void scale8(__m256i s, const uint16_t *m, __m256i *e, __m256i *o)
{
    __m256i mz = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)m));
    *e = _mm256_add_epi64(*e, _mm256_mul_epi32(s, mz));
    *o = _mm256_add_epi64(*o, _mm256_mul_epi32(_mm256_srli_epi64(s, 32), _mm256_srli_epi64(mz, 32)));
}

/*
 * Interleaved weights (numerics version 2): one group's 8 row sums c (one row per lane),
 * less corr, shifted by sh, times the 8 rows' mantissas mz (mo = mz >> 32 per 64-bit
 * lane) into e (rows 0, 2, 4, 6) and o (rows 1, 3, 5, 7).
 */
static inline void il_scale(__m256i c, int32_t corr, int sh, __m256i mz, __m256i mo, __m256i *e, __m256i *o)
{
    __m256i s = _mm256_sll_epi32(_mm256_sub_epi32(c, _mm256_set1_epi32(corr)), _mm_cvtsi32_si128(sh));
    *e = _mm256_add_epi64(*e, _mm256_mul_epi32(s, mz));
    *o = _mm256_add_epi64(*o, _mm256_mul_epi32(_mm256_srli_epi64(s, 32), mo));
}

/* e and o as above -> the 8 rows in order. */
static inline void il_rows8(__m256i e, __m256i o, int64_t acc[8])
{
    int64_t ev[4], ov[4];
    _mm256_storeu_si256((__m256i *)(void *)ev, e);
    _mm256_storeu_si256((__m256i *)(void *)ov, o);
    for (int i = 0; i < 4; i++) {
        acc[2 * i] = ev[i];
        acc[2 * i + 1] = ov[i];
    }
}

static inline int64_t hsum_i64(__m256i v)
{
    __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(x) + _mm_extract_epi64(x, 1);
}

#endif
