/*
 * nn_kernels.h: the integer kernels under the forward pass, and the one place where a
 * kernel path (portable reference or SIMD) is chosen.
 *
 * Every kernel computes an exactly specified integer function, so every path gives
 * bit-identical results: group sums are exact int32, the sum over groups is exact
 * int64, and the single rounding per output is nn_mulshift_sat32(). Summation order is
 * free because integer addition is associative and nothing overflows (bounds below).
 *
 *     const nn_kernels *k = nn_kernels_select(NULL);         // best for this CPU
 *     nn_mm_args mm = { .w = &wq, .a = act, .a_stride = dim, .as = scales,
 *                       .n_tok = 1, .out = q, .out_stride = wq.rows };
 *     k->matmul_q8_q16(&mm, 0, wq.rows);
 */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "nn_base.h"

/*
 * An int8 weight matrix with per-group scales (NN_DT_Q8G):
 *   real w[r][i] = q[r][i] * m[r][i / group] * 2^-exp
 * q in [-127, 127]; group in [1, 256]; the last group of a row may be short.
 */
typedef struct nn_q8_mat {
    const int8_t   *q;       /* [rows][cols], or interleaved (il) */
    const uint16_t *m;       /* [rows][ngroups], or interleaved (il) */
    uint32_t rows, cols, group, ngroups;
    int32_t  exp;
    uint32_t il;             /* 1: NN_DT_Q8G8's layout (nn_image.h; matmul_q8_a8 only) */
} nn_q8_mat;

/* Where weight (r, i) and mantissa (r, g) of w are, in either layout. */
static inline size_t nn_q8_at(const nn_q8_mat *w, uint32_t r, uint32_t i)
{
    if (!w->il)
        return (size_t)r * w->cols + i;
    return (((size_t)(r / 8) * ((w->cols + 3) / 4) + i / 4) * 8 + r % 8) * 4 + i % 4;
}

static inline size_t nn_q8_m_at(const nn_q8_mat *w, uint32_t r, uint32_t g)
{
    return w->il ? ((size_t)(r / 8) * w->ngroups + g) * 8 + r % 8 : (size_t)r * w->ngroups + g;
}

/*
 * One matrix times a block of int16 activation vectors:
 *   acc[t][r] = sum over groups g of m[r][g] * (sum over i in g of q[r][i] * a[t][i])
 *   out[t][r] = nn_mulshift_sat32(acc[t][r], as[t].m, as[t].e + w->exp - 16)   (Q16)
 * a[t][i] in [-32767, 32767]. Bounds: a group sum is at most 256*127*32767 < 2^31 and
 * acc at most cols * 2^38, so int32/int64 never overflow for cols < 2^24.
 */
typedef struct nn_mm_args {
    const nn_q8_mat *w;
    const int16_t   *a;          /* a[t * a_stride + i] */
    uint32_t         a_stride;
    /* Numerics version 2 (matmul_q8_a8): the same vectors as int8 in the weights' groups,
     * a8[t * a_stride + i], each group g with a power-of-two step ash[t * ash_stride + g]
     * (nn_act8_quant), and each group's sum of a8, asum[t * ash_stride + g]. */
    const int8_t    *a8;
    const uint8_t   *ash;
    const int32_t   *asum;
    uint32_t         ash_stride;
    const nn_scale  *as;         /* [n_tok] activation scales */
    uint32_t         n_tok;
    int32_t         *out;        /* out[t * out_stride + r], Q16 */
    uint32_t         out_stride;
} nn_mm_args;

typedef struct nn_kernels {
    const char *name;            /* "ref", "avx2", "neon", "dotprod", ... */
    /* Rows [r0, r1) of every token in the block. */
    void (*matmul_q8_q16)(const nn_mm_args *args, uint32_t r0, uint32_t r1);
    /* The same with int8 activations (numerics version 2):
     *   acc[t][r] = sum over g of m[r][g] * 2^ash[t][g] * (sum over i in g of q[r][i] * a8[t][i])
     *   out[t][r] = nn_mulshift_sat32(acc[t][r], as[t].m, as[t].e + w->exp - 16)
     * a8 in [-127, 127], ash <= 9: a group's shifted sum is at most 256 * 127^2 * 2^9 < 2^31. */
    void (*matmul_q8_a8)(const nn_mm_args *args, uint32_t r0, uint32_t r1);
    /* sum a[i] * b[i], exact (n <= 2^16). */
    int64_t (*dot_i16)(const int16_t *a, const int16_t *b, uint32_t n);
    /* Attention scores: out[j] = sum_i q[i] * k[j * k_stride + i] for j < n_rows,
     * exact (n <= 2^16). */
    void (*dot_rows_i16)(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                         int64_t *out);
    /* The same against rows packed by nn_pack_rows_i16 (n even, at most 256): once per
     * prompt block and KV head, for every query that reads them, so that a vector holds
     * one pair of columns of 16 rows and the sums need no horizontal reduction.
     * Optional: NULL where a path has none (attention then uses dot_rows_i16). */
    void (*dot_rows_packed)(const int16_t *q, const int16_t *p, uint32_t n, uint32_t n_rows, int64_t *out);
    /* Attention values: acc[i] += sum_j p[j] * v[j * v_stride + i] for i < n, j < n_rows,
     * with p[j] in [0, 2^31); exact while every sum fits int64 (attention's
     * probabilities sum to about 2^30, so |acc| stays below 2^46). */
    void (*axpy_rows_i16)(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                          int64_t *acc);
    /* Softmax numerators: out[j] = nn_exp_q16_q30((int64_t)x[j] - xmax) (Q30) for j < n;
     * returns their sum. */
    int64_t (*softmax_exp_q30)(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out);
    /* Numerics version 2's matmul input: exactly nn_act8_quant(a, n, g, q, sh, sum). */
    void (*act8_quant)(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum);
    /* SwiGLU's gate in place: x[i] = nn_silu_q16(x[i]) (Q16) for i < n. */
    void (*silu_q16)(int32_t *x, uint32_t n);
    /* Attention scores from exact dot products, with a per-row exponent e[j * e_stride]:
     *   out[j] = nn_sat32(nn_rshift_round_i64(dots[j] * c, base - e[j * e_stride]))
     * for j < n, c >= 0 and dots[j] * c within int64; returns the largest out[j]
     * (INT32_MIN when n == 0). */
    int32_t (*scores_q16)(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                          int32_t *out);
    /* Softmax numerators p[j] in [0, 2^30] normalised by inv (<= 2^32) and aligned to the
     * largest V exponent, in place:
     *   p[j] = nn_rshift_round_i64((p[j] * inv + 2^31) >> 32, tmax - e[j * e_stride])
     * for j < n, with tmax >= every e. */
    void (*probs_align)(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n);
    /* The per-token row steps around the matmuls (RMSNorm, SwiGLU, the attention
     * output, the KV cache), exactly:
     * quant_i32_i16 is nn_quant_i32_i16 (nn_fixed.h): t = max(0, bitlen(max |x|) - 15),
     *   out[i] = round(x[i] / 2^t) clamped to +-32767; returns t. */
    int (*quant_i32_i16)(const int32_t *x, uint32_t n, int16_t *out);
    /* The same of the exact products a[i] * b[i] (int64: nn_quant_i64_i16 of them). */
    int (*mul_quant_i16)(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out);
    /* sum x[i]^2, exact in 128 bits: ss[0] the low 64 bits, ss[1] the high (n < 2^32). */
    void (*sumsq_i32)(const int32_t *x, uint32_t n, uint64_t ss[2]);
    /* RoPE in place on the interleaved pairs (v[i], v[i + 1]) of a Q16 row of n values
     * (n even), rotated by sc[i % head_dim] = sin and sc[i % head_dim + 1] = cos (Q30):
     *   v[i]     = nn_sat32((v[i] * cos - v[i + 1] * sin + 2^29) >> 30)
     *   v[i + 1] = nn_sat32((v[i] * sin + v[i + 1] * cos + 2^29) >> 30)
     * in int64 (|sin|, |cos| <= 2^30). */
    void (*rope_q30)(int32_t *v, uint32_t n, uint32_t head_dim, const int32_t *sc);
    /* The residual stream: x[i] = nn_sat32((int64_t)x[i] + o[i]) for i < n. */
    void (*add_sat_i32)(int32_t *x, const int32_t *o, uint32_t n);
    /* Attention's output from its exact sums: out[i] = nn_sat32(nn_rshift_round_i64(acc[i], s))
     * for i < n. */
    void (*round_sat_i64)(const int64_t *acc, int s, uint32_t n, int32_t *out);
} nn_kernels;

/* The portable reference twins. */
void    nn_matmul_q8_q16_ref(const nn_mm_args *args, uint32_t r0, uint32_t r1);
void    nn_matmul_q8_a8_ref(const nn_mm_args *args, uint32_t r0, uint32_t r1);
int64_t nn_dot_i16_ref(const int16_t *a, const int16_t *b, uint32_t n);
void    nn_dot_rows_i16_ref(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                            int64_t *out);
void    nn_axpy_rows_i16_ref(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                             int64_t *acc);
int64_t nn_softmax_exp_q30_ref(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out);
void    nn_silu_q16_ref(int32_t *x, uint32_t n);
int32_t nn_scores_q16_ref(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                          int32_t *out);
void    nn_probs_align_ref(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n);
int     nn_mul_quant_i16_ref(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out);
void    nn_sumsq_i32_ref(const int32_t *x, uint32_t n, uint64_t ss[2]);
void    nn_rope_q30_ref(int32_t *v, uint32_t n, uint32_t head_dim, const int32_t *sc);
void    nn_add_sat_i32_ref(int32_t *x, const int32_t *o, uint32_t n);
void    nn_dot_rows_packed_ref(const int16_t *q, const int16_t *p, uint32_t n, uint32_t n_rows, int64_t *out);
/* Rows [0, n_rows) of k (n columns, n even) in blocks of 16 rows, each block n / 2
 * vectors of the 16 rows' column pairs, rows past n_rows zero:
 *   p[(b * n / 2 + i) * 32 + 2 r + e] = k[(16 b + r) * k_stride + 2 i + e]
 * p holds nn_pack_rows_len(n, n_rows) values. */
void    nn_pack_rows_i16(const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows, int16_t *p);
static inline size_t nn_pack_rows_len(uint32_t n, uint32_t n_rows) { return (size_t)(n_rows + 15) / 16 * 16 * n; }
void    nn_round_sat_i64_ref(const int64_t *acc, int s, uint32_t n, int32_t *out);

/*
 * Returns the kernel path named name ("ref" always exists), or the best path this
 * build and CPU support when name is NULL or "auto". Returns NULL for an unknown name
 * or a path this CPU cannot run.
 */
const nn_kernels *nn_kernels_select(const char *name);

/* The same for a model of this numerics version: for version 2 (int8 activations) and
 * name NULL or "auto" an x86 CPU with AVX-512 VNNI gets avx512vnni. */
const nn_kernels *nn_kernels_select_for(const char *name, uint32_t numerics);

/* Space-separated names of the paths this build and CPU can run, best last. */
const char *nn_kernels_available(void);

#endif
