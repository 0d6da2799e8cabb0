/*
 * The loops around a path's int8-activation kernels (numerics version 2), shared by
 * kernels_avx2.c and kernels_neon.c: include it after the file's target pragma so that
 * it is compiled for that target. The path supplies an nn_a8_path:
 *   il(w, rb, a, sh, acc):   interleaved row block rb times one token's activations a
 *                            with steps sh: the 8 rows' int64 sums (before the token scale);
 *   il4(w, rb, a, sh, acc):  optional (NULL): the same for four tokens at once;
 *   gdot(q, a, n):           sum q[i] * a[i] for one group of a row-major row;
 *   row(q, m, a, sh, cols, G, ng): optional (NULL: by gdot): a whole row-major row's
 *                            int64 sum over its groups, each shifted and scaled;
 *   flush(A, t, rb, r0, r1, acc): optional (NULL: nn_a8_flush): il's sums into out.
 */
#ifndef NN_KERNELS_A8_H
#define NN_KERNELS_A8_H

#include <stdint.h>
#include <string.h>
#include "fixed_inline.h"
#include "nn_kernels.h"

typedef void (*nn_a8_il_fn)(const nn_q8_mat *w, uint32_t rb, const int8_t *a, const uint8_t *sh, int64_t acc[8]);
typedef void (*nn_a8_il4_fn)(const nn_q8_mat *w, uint32_t rb, const int8_t *const a[4], const uint8_t *const sh[4],
                             int64_t acc[4][8]);
typedef int32_t (*nn_a8_gdot_fn)(const int8_t *q, const int8_t *a, uint32_t n);
typedef int64_t (*nn_a8_row_fn)(const int8_t *q, const uint16_t *m, const int8_t *a, const uint8_t *sh,
                                uint32_t cols, uint32_t G, uint32_t ng);
typedef void (*nn_a8_flush_fn)(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t r0, uint32_t r1,
                               const int64_t acc[8]);

typedef struct nn_a8_path {
    nn_a8_il_fn    il;
    nn_a8_il4_fn   il4;
    nn_a8_gdot_fn  gdot;
    nn_a8_row_fn   row;
    nn_a8_flush_fn flush;
} nn_a8_path;

/* Row block rb's 8 sums for token t, scaled and rounded, into the rows of [r0, r1). */
static inline void nn_a8_flush(const nn_mm_args *A, uint32_t t, uint32_t rb, uint32_t r0, uint32_t r1,
                               const int64_t acc[8])
{
    for (uint32_t i = 0; i < 8; i++) {
        uint32_t r = rb * 8 + i;
        if (r >= r0 && r < r1)
            A->out[(size_t)t * A->out_stride + r] =
                nn_mulshift_sat32_inl(acc[i], A->as[t].m, A->as[t].e + A->w->exp - 16);
    }
}

/* Groups g .. ng-1 of a row-major row times one token: each group's sum (gdot) shifted
 * by its step and scaled by its mantissa, summed in int64 (the portable way; a path's
 * row entry takes whole runs of groups faster and leaves the rest to this). */
static inline int64_t nn_a8_row_groups(const int8_t *q, const uint16_t *m, const int8_t *a, const uint8_t *sh,
                                       uint32_t cols, uint32_t G, uint32_t g, uint32_t ng, nn_a8_gdot_fn gdot)
{
    int64_t acc = 0;
    for (uint32_t i0 = g * G; g < ng; g++, i0 += G) {
        uint32_t len = cols - i0 < G ? cols - i0 : G;
        acc += (int64_t)(gdot(q + i0, a + i0, len) * (1 << sh[g])) * m[g];
    }
    return acc;
}

/*
 * Interleaved weights: per row block (cols x 8 bytes, which stay in L1) every token of
 * the block in turn, four at a time where the path has il4. Row-major weights (the tied
 * classifier, which is also the embedding): per row, by the path's row or per group.
 */
static inline void nn_a8_drive(const nn_mm_args *A, uint32_t r0, uint32_t r1, const nn_a8_path *P)
{
    const nn_q8_mat *w = A->w;
    const nn_a8_flush_fn flush = P->flush ? P->flush : nn_a8_flush;
    if (!w->il) {
        for (uint32_t t = 0; t < A->n_tok; t++) {
            const int8_t *a = A->a8 + (size_t)t * A->a_stride;
            const uint8_t *sh = A->ash + (size_t)t * A->ash_stride;
            for (uint32_t r = r0; r < r1; r++) {
                const int8_t *q = w->q + (size_t)r * w->cols;
                const uint16_t *m = w->m + (size_t)r * w->ngroups;
                int64_t acc = P->row ? P->row(q, m, a, sh, w->cols, w->group, w->ngroups)
                                     : nn_a8_row_groups(q, m, a, sh, w->cols, w->group, 0, w->ngroups, P->gdot);
                A->out[(size_t)t * A->out_stride + r] =
                    nn_mulshift_sat32_inl(acc, A->as[t].m, A->as[t].e + w->exp - 16);
            }
        }
        return;
    }
    const uint32_t T = A->n_tok, T4 = P->il4 ? T & ~3u : 0;
    for (uint32_t rb = r0 / 8; rb < (r1 + 7) / 8; rb++) {
        for (uint32_t t = 0; t < T4; t += 4) {
            const int8_t *a[4];
            const uint8_t *sh[4];
            for (uint32_t k = 0; k < 4; k++) {
                a[k] = A->a8 + (size_t)(t + k) * A->a_stride;
                sh[k] = A->ash + (size_t)(t + k) * A->ash_stride;
            }
            int64_t acc[4][8];
            P->il4(w, rb, a, sh, acc);
            for (uint32_t k = 0; k < 4; k++)
                flush(A, t + k, rb, r0, r1, acc[k]);
        }
        for (uint32_t t = T4; t < T; t++) {
            int64_t acc[8];
            P->il(w, rb, A->a8 + (size_t)t * A->a_stride, A->ash + (size_t)t * A->ash_stride, acc);
            flush(A, t, rb, r0, r1, acc);
        }
    }
}

/* Activation bytes i .. i+3 as one u32, zero past cols (the padding columns of
 * interleaved weights must meet zeros). */
static inline uint32_t nn_a8_quad(const int8_t *a, uint32_t i, uint32_t cols)
{
    uint32_t v = 0;
    if (i + 4 <= cols) {
        memcpy(&v, a + i, 4);
        return v;
    }
    for (uint32_t b = 0; i + b < cols; b++)
        v |= (uint32_t)(uint8_t)a[i + b] << (8 * b);
    return v;
}

/* Four activation bytes at i as one int32, to broadcast: a plain load where all four
 * are columns (tail 0), nn_a8_quad for the ragged end of a row (tail 1; a constant at
 * each call, so the plain path carries no check). */
static inline __attribute__((always_inline)) int32_t nn_a8_quad_at(const int8_t *a, uint32_t i, uint32_t cols,
                                                                    int tail)
{
    uint32_t v;
    if (tail)
        return (int32_t)nn_a8_quad(a, i, cols);
    memcpy(&v, a + i, 4);
    return (int32_t)v;
}

#endif
