/*
 * AVX2 lane reductions shared by the x86 kernel files (kernels_avx2.c,
 * kernels_avx512.c). Include it after the file's target pragma or attribute, so that
 * these functions get the same target. Every reduction adds int32 lanes that are subset
 * sums of one group's products, so the results stay exact (see kernels_avx2.c).
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

static inline int64_t hsum_i64(__m256i v)
{
    __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(x) + _mm_extract_epi64(x, 1);
}

#endif
