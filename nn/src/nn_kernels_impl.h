/*
 * Private: the kernel paths this build can contain. Which files compile to a path is
 * decided here from the target's predefined macros; kernels.c then offers each path
 * only when the running CPU has its instructions. Nothing else selects a path.
 */
#ifndef NN_KERNELS_IMPL_H
#define NN_KERNELS_IMPL_H

#include "nn_fixed.h"
#include "nn_kernels.h"

/* x86-64: AVX2 (and AVX-512 VNNI) code is compiled with target pragmas and chosen at
 * run time, so a baseline x86-64 build still carries it. */
#if defined(__x86_64__) && defined(__GNUC__)
#define NN_HAVE_X86_KERNELS 1
#else
#define NN_HAVE_X86_KERNELS 0
#endif

/* aarch64: NEON is part of every armv8-a board. dotprod only where the board's -mcpu
 * has it (Pi 5, Orin Nano), so the Pi 4 build contains no armv8.2 instruction. */
#if defined(__aarch64__)
#define NN_HAVE_NEON_KERNELS 1
#else
#define NN_HAVE_NEON_KERNELS 0
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define NN_HAVE_DOTPROD_KERNELS 1
#else
#define NN_HAVE_DOTPROD_KERNELS 0
#endif

#if NN_HAVE_X86_KERNELS
extern const nn_kernels nn_kernels_avx2;
extern const nn_kernels nn_kernels_avx512vnni;
/* The AVX2 small-group matmul (groups of 4 or 8) and attention kernels, shared by the
 * AVX-512 path (its CPUs have AVX2). */
void    nn_matmul_small_groups_avx2(const nn_mm_args *A, uint32_t r0, uint32_t r1);
int64_t nn_dot_i16_avx2(const int16_t *a, const int16_t *b, uint32_t n);
void    nn_dot_rows_i16_avx2(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                             int64_t *out);
void    nn_axpy_rows_i16_avx2(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                              int64_t *acc);
int64_t nn_softmax_exp_q30_avx2(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out);
void    nn_silu_q16_avx2(int32_t *x, uint32_t n);
int32_t nn_scores_q16_avx2(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                           int32_t *out);
void    nn_probs_align_avx2(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n);
#endif
#if NN_HAVE_NEON_KERNELS
extern const nn_kernels nn_kernels_neon;
#endif
#if NN_HAVE_DOTPROD_KERNELS
extern const nn_kernels nn_kernels_dotprod;
#endif

#endif
