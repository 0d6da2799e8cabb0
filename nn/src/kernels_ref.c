/* Portable reference kernels: the specification every SIMD path must match bit for bit. */
#include "nn_fixed.h"
#include "nn_kernels.h"
#include "fixed_inline.h"

void nn_matmul_q8_q16_ref(const nn_mm_args *args, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = args->w;
    for (uint32_t t = 0; t < args->n_tok; t++) {
        const int16_t *a = args->a + (size_t)t * args->a_stride;
        int shift = args->as[t].e + w->exp - 16;
        for (uint32_t r = r0; r < r1; r++) {
            const int8_t *q = w->q + (size_t)r * w->cols;
            const uint16_t *m = w->m + (size_t)r * w->ngroups;
            int64_t acc = 0;
            for (uint32_t g = 0, i0 = 0; g < w->ngroups; g++, i0 += w->group) {
                uint32_t i1 = i0 + w->group < w->cols ? i0 + w->group : w->cols;
                int32_t s = 0;
                for (uint32_t i = i0; i < i1; i++)
                    s += q[i] * a[i];
                acc += (int64_t)s * m[g];
            }
            args->out[(size_t)t * args->out_stride + r] = nn_mulshift_sat32_inl(acc, args->as[t].m, shift);
        }
    }
}

void nn_matmul_q8_a8_ref(const nn_mm_args *args, uint32_t r0, uint32_t r1)
{
    const nn_q8_mat *w = args->w;
    for (uint32_t t = 0; t < args->n_tok; t++) {
        const int8_t *a = args->a8 + (size_t)t * args->a_stride;
        const uint8_t *sh = args->ash + (size_t)t * args->ash_stride;
        int shift = args->as[t].e + w->exp - 16;
        for (uint32_t r = r0; r < r1; r++) {
            int64_t acc = 0;
            for (uint32_t g = 0, i0 = 0; g < w->ngroups; g++, i0 += w->group) {
                uint32_t i1 = i0 + w->group < w->cols ? i0 + w->group : w->cols;
                int32_t s = 0;
                for (uint32_t i = i0; i < i1; i++)
                    s += w->q[nn_q8_at(w, r, i)] * a[i];
                acc += (int64_t)(s * (1 << sh[g])) * w->m[nn_q8_m_at(w, r, g)];
            }
            args->out[(size_t)t * args->out_stride + r] = nn_mulshift_sat32_inl(acc, args->as[t].m, shift);
        }
    }
}

int64_t nn_dot_i16_ref(const int16_t *a, const int16_t *b, uint32_t n)
{
    int64_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += (int32_t)a[i] * b[i];
    return s;
}

void nn_dot_rows_i16_ref(const int16_t *q, const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows,
                         int64_t *out)
{
    for (uint32_t j = 0; j < n_rows; j++)
        out[j] = nn_dot_i16_ref(q, k + j * k_stride, n);
}

void nn_axpy_rows_i16_ref(const int32_t *p, const int16_t *v, size_t v_stride, uint32_t n, uint32_t n_rows,
                          int64_t *acc)
{
    for (uint32_t j = 0; j < n_rows; j++) {
        const int16_t *vj = v + j * v_stride;
        for (uint32_t i = 0; i < n; i++)
            acc[i] += (int64_t)p[j] * vj[i];
    }
}

int64_t nn_softmax_exp_q30_ref(const int32_t *x, int32_t xmax, uint32_t n, int32_t *out)
{
    int64_t sum = 0;
    for (uint32_t j = 0; j < n; j++) {
        out[j] = nn_exp_q16_q30((int64_t)x[j] - xmax);
        sum += out[j];
    }
    return sum;
}

void nn_silu_q16_ref(int32_t *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        x[i] = nn_silu_q16(x[i]);
}

int32_t nn_scores_q16_ref(const int64_t *dots, const int8_t *e, size_t e_stride, int32_t c, int base, uint32_t n,
                          int32_t *out)
{
    int32_t smax = INT32_MIN;
    for (uint32_t j = 0; j < n; j++) {
        out[j] = nn_sat32(nn_rshift_round_i64_inl(dots[j] * c, base - e[(size_t)j * e_stride]));
        if (out[j] > smax)
            smax = out[j];
    }
    return smax;
}

void nn_probs_align_ref(int32_t *p, uint64_t inv, const int8_t *e, size_t e_stride, int tmax, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        uint64_t pj = ((uint64_t)p[j] * inv + (1ull << 31)) >> 32;
        p[j] = (int32_t)nn_rshift_round_i64_inl((int64_t)pj, tmax - e[(size_t)j * e_stride]);
    }
}

int nn_mul_quant_i16_ref(const int32_t *a, const int32_t *b, uint32_t n, int16_t *out)
{
    uint64_t amax = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t p = (int64_t)a[i] * b[i];
        uint64_t ap = p < 0 ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
        if (ap > amax)
            amax = ap;
    }
    int t = nn_quant_shift_inl(amax);
    for (uint32_t i = 0; i < n; i++)
        out[i] = nn_clamp_i16_inl(nn_rshift_round_i64_inl((int64_t)a[i] * b[i], t));
    return t;
}

void nn_sumsq_i32_ref(const int32_t *x, uint32_t n, uint64_t ss[2])
{
    unsigned __int128 s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += (unsigned __int128)((int64_t)x[i] * x[i]);
    ss[0] = (uint64_t)s;
    ss[1] = (uint64_t)(s >> 64);
}

void nn_rope_q30_ref(int32_t *v, uint32_t n, uint32_t head_dim, const int32_t *sc)
{
    for (uint32_t i = 0; i < n; i += 2) {
        const int32_t *p = sc + (i % head_dim);        /* pair (i % hd)/2: [sin, cos] */
        int64_t a = v[i], b = v[i + 1];
        v[i] = nn_sat32((a * p[1] - b * p[0] + (1ll << 29)) >> 30);
        v[i + 1] = nn_sat32((a * p[0] + b * p[1] + (1ll << 29)) >> 30);
    }
}

void nn_add_sat_i32_ref(int32_t *x, const int32_t *o, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        x[i] = nn_sat32((int64_t)x[i] + o[i]);
}

void nn_round_sat_i64_ref(const int64_t *acc, int s, uint32_t n, int32_t *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = nn_sat32(nn_rshift_round_i64_inl(acc[i], s));
}

void nn_pack_rows_i16(const int16_t *k, size_t k_stride, uint32_t n, uint32_t n_rows, int16_t *p)
{
    for (uint32_t b = 0; b < (n_rows + 15) / 16; b++)
        for (uint32_t i = 0; i < n / 2; i++, p += 32)
            for (uint32_t r = 0; r < 16; r++) {
                uint32_t j = 16 * b + r;
                p[2 * r] = j < n_rows ? k[j * k_stride + 2 * i] : 0;
                p[2 * r + 1] = j < n_rows ? k[j * k_stride + 2 * i + 1] : 0;
            }
}

void nn_dot_rows_packed_ref(const int16_t *q, const int16_t *p, uint32_t n, uint32_t n_rows, int64_t *out)
{
    for (uint32_t j = 0; j < n_rows; j++) {
        const int16_t *blk = p + (size_t)(j / 16) * 16 * n + 2 * (j % 16);
        int64_t s = 0;
        for (uint32_t i = 0; i < n / 2; i++)
            s += (int64_t)q[2 * i] * blk[32 * i] + (int64_t)q[2 * i + 1] * blk[32 * i + 1];
        out[j] = s;
    }
}
