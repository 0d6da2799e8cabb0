/*
 * Kernels: the reference twins against an independent 128-bit brute force, then every
 * kernel path this build and CPU can run against the reference, bit for bit, over
 * random and ragged shapes (lengths that are not multiples of the vector width or the
 * group size), extreme values and several tokens per block.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nn.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static uint32_t rndn(uint32_t n) { return (uint32_t)(rnd() % n); }

typedef struct mat {
    nn_q8_mat w;
    int8_t *q;
    uint16_t *m;
} mat;

/* extreme: use the full ranges (+-127, 65535, +-32767) to probe overflow bounds. */
static void make_mat(mat *x, uint32_t rows, uint32_t cols, uint32_t group, int extreme)
{
    uint32_t ng = nn_groups(cols, group);
    x->q = malloc((size_t)rows * cols);
    x->m = malloc((size_t)rows * ng * 2);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        x->q[i] = extreme ? (rnd() & 1 ? 127 : -127) : (int8_t)(rndn(255) - 127);
    for (size_t i = 0; i < (size_t)rows * ng; i++)
        x->m[i] = extreme ? 65535 : (uint16_t)(1 + rndn(65535));
    x->w = (nn_q8_mat){ .q = x->q, .m = x->m, .rows = rows, .cols = cols, .group = group, .ngroups = ng,
                        .exp = 20 + (int32_t)rndn(20) };
}

static void brute(const nn_mm_args *a, int32_t *out)
{
    const nn_q8_mat *w = a->w;
    for (uint32_t t = 0; t < a->n_tok; t++)
        for (uint32_t r = 0; r < w->rows; r++) {
            __int128 acc = 0;
            for (uint32_t i = 0; i < w->cols; i++)
                acc += (__int128)w->q[(size_t)r * w->cols + i] * a->a[(size_t)t * a->a_stride + i] *
                       w->m[(size_t)r * w->ngroups + i / w->group];
            int shift = a->as[t].e + w->exp - 16;
            __int128 p = acc * a->as[t].m;
            p = shift > 0 ? (p + ((__int128)1 << (shift - 1))) >> shift : p << -shift;
            out[(size_t)t * a->out_stride + r] = p > INT32_MAX ? INT32_MAX : p < INT32_MIN ? INT32_MIN : (int32_t)p;
        }
}

/* Numerics version 2: a8 with per-group steps. */
static void brute_a8(const nn_mm_args *a, int32_t *out)
{
    const nn_q8_mat *w = a->w;
    for (uint32_t t = 0; t < a->n_tok; t++)
        for (uint32_t r = 0; r < w->rows; r++) {
            __int128 acc = 0;
            for (uint32_t i = 0; i < w->cols; i++)
                acc += (__int128)w->q[(size_t)r * w->cols + i] * a->a8[(size_t)t * a->a_stride + i] *
                       ((int64_t)1 << a->ash[(size_t)t * a->ash_stride + i / w->group]) *
                       w->m[(size_t)r * w->ngroups + i / w->group];
            int shift = a->as[t].e + w->exp - 16;
            __int128 p = acc * a->as[t].m;
            p = shift > 0 ? (p + ((__int128)1 << (shift - 1))) >> shift : p << -shift;
            out[(size_t)t * a->out_stride + r] = p > INT32_MAX ? INT32_MAX : p < INT32_MIN ? INT32_MIN : (int32_t)p;
        }
}

static void run_case(const nn_kernels *k, uint32_t rows, uint32_t cols, uint32_t group, uint32_t ntok, int extreme,
                     int check_brute)
{
    mat x;
    make_mat(&x, rows, cols, group, extreme);
    uint32_t stride = cols + rndn(5);
    int16_t *act = malloc((size_t)ntok * stride * 2);
    nn_scale *as = malloc(ntok * sizeof *as);
    for (size_t i = 0; i < (size_t)ntok * stride; i++)
        act[i] = extreme ? (rnd() & 1 ? 32767 : -32767) : (int16_t)(rndn(65535) - 32767);
    /* Output shifts (e + exp - 16) mostly 44..93, where results are neither 0 nor
     * saturated; a quarter anywhere in 4..113, across the vector/scalar flush bounds.
     * One token in eight has a scale that is zero (an exact zero) or not normalised,
     * which the vector flushes leave to the scalar one. */
    for (uint32_t t = 0; t < ntok; t++) {
        uint32_t m = rndn(8) ? (uint32_t)(rnd() | 0x80000000u) : rndn(2) ? 0 : (uint32_t)rnd() >> (1 + rndn(31));
        as[t] = (nn_scale){ m, (int32_t)(rndn(4) ? 40 + rndn(30) : rndn(90)) };
    }
    uint32_t ostride = rows + rndn(3);
    int32_t *ref = calloc((size_t)ntok * ostride, 4), *got = calloc((size_t)ntok * ostride, 4);
    nn_mm_args a = { .w = &x.w, .a = act, .a_stride = stride, .as = as, .n_tok = ntok, .out = ref,
                     .out_stride = ostride };
    nn_matmul_q8_q16_ref(&a, 0, rows);
    if (check_brute) {
        int32_t *bf = calloc((size_t)ntok * ostride, 4);
        a.out = bf;
        brute(&a, bf);
        assert_memory_equal(ref, bf, (size_t)ntok * ostride * 4);
        free(bf);
    }
    /* The kernel under test, in two row ranges to exercise r0 > 0. */
    a.out = got;
    uint32_t mid = rows / 3;
    k->matmul_q8_q16(&a, 0, mid);
    k->matmul_q8_q16(&a, mid, rows);
    if (memcmp(ref, got, (size_t)ntok * ostride * 4) != 0) {
        print_error("kernel %s differs from ref: rows %u cols %u group %u tokens %u extreme %d\n", k->name, rows,
                    cols, group, ntok, extreme);
        fail();
    }
    /* The same activations as int8 in groups (numerics version 2), as the model makes
     * them; extreme: every value +-32767, so the largest step (9) and int8 values of
     * +-64. */
    uint32_t ng = nn_groups(cols, group), sstride = ng + rndn(3);
    int8_t *a8 = malloc((size_t)ntok * stride);
    uint8_t *sh = malloc((size_t)ntok * sstride);
    int32_t *sum = malloc((size_t)ntok * sstride * 4);
    for (uint32_t t = 0; t < ntok; t++) {
        nn_act8_quant(act + (size_t)t * stride, cols, group, a8 + (size_t)t * stride, sh + (size_t)t * sstride,
                      sum + (size_t)t * sstride);
        for (uint32_t g = 0; extreme && g < ng; g++)
            assert_int_equal(sh[(size_t)t * sstride + g], 9);
    }
    /* The same weights interleaved (NN_DT_Q8G8, numerics version 2) when the group
     * allows it: the same results. */
    nn_q8_mat il = x.w;
    int8_t *qi = NULL;
    uint16_t *mi = NULL;
    if (group % 4 == 0) {
        size_t qb = (size_t)(rows + 7) / 8 * ((cols + 3) / 4) * 32, mb = (size_t)(rows + 7) / 8 * 8 * ng;
        il.il = 1;
        qi = calloc(qb, 1);
        mi = calloc(mb, 2);
        for (uint32_t r = 0; r < rows; r++) {
            for (uint32_t i = 0; i < cols; i++)
                qi[nn_q8_at(&il, r, i)] = x.q[(size_t)r * cols + i];
            for (uint32_t g = 0; g < ng; g++)
                mi[nn_q8_m_at(&il, r, g)] = x.m[(size_t)r * ng + g];
        }
        il.q = qi;
        il.m = mi;
    }
    /* extreme: a second pass with every int8 activation +-127 at step 0, the bound of
     * the NEON tiles' int16 lanes (two products of 127 * 127 share one). */
    for (int pass = 0; pass <= extreme; pass++) {
        for (uint32_t t = 0; pass && t < ntok; t++)
            for (uint32_t g = 0; g < ng; g++) {
                int32_t tot = 0;
                for (uint32_t i = g * group; i < cols && i < (g + 1) * group; i++) {
                    int8_t v = rnd() & 1 ? 127 : -127;
                    a8[(size_t)t * stride + i] = v;
                    tot += v;
                }
                sh[(size_t)t * sstride + g] = 0;
                sum[(size_t)t * sstride + g] = tot;
            }
        a.w = &x.w;
        a.a8 = a8;
        a.ash = sh;
        a.asum = sum;
        a.ash_stride = sstride;
        a.out = ref;
        nn_matmul_q8_a8_ref(&a, 0, rows);
        if (check_brute) {
            int32_t *bf = calloc((size_t)ntok * ostride, 4);
            brute_a8(&a, bf);
            assert_memory_equal(ref, bf, (size_t)ntok * ostride * 4);
            free(bf);
        }
        /* The kernel on the row-major weights, then on the interleaved ones. */
        const nn_q8_mat *ws[2] = { &x.w, qi ? &il : NULL };
        static const char *const what[2] = { "int8 activations", "interleaved weights" };
        for (int wi = 0; wi < 2 && ws[wi]; wi++) {
            a.w = ws[wi];
            memset(got, 0, (size_t)ntok * ostride * 4);
            a.out = got;
            k->matmul_q8_a8(&a, 0, mid);
            k->matmul_q8_a8(&a, mid, rows);
            if (memcmp(ref, got, (size_t)ntok * ostride * 4) != 0) {
                print_error("kernel %s (%s) differs from ref: rows %u cols %u group %u tokens %u extreme %d pass %d\n",
                            k->name, what[wi], rows, cols, group, ntok, extreme, pass);
                fail();
            }
        }
        a.w = &x.w;
    }
    free(qi);
    free(mi);
    free(a8);
    free(sh);
    free(sum);
    free(x.q);
    free(x.m);
    free(act);
    free(as);
    free(ref);
    free(got);
}

static void ref_matches_brute_force(void **st)
{
    (void)st;
    const nn_kernels *ref = nn_kernels_select("ref");
    assert_non_null(ref);
    for (int i = 0; i < 60; i++)
        run_case(ref, 1 + rndn(40), 1 + rndn(300), 1 + rndn(256), 1 + rndn(4), i % 7 == 0, 1);
    run_case(ref, 3, 4096, 256, 2, 1, 1);      /* largest group at full range: int32 group sums */
}

/*
 * The attention kernels over ragged head sizes and row counts (dot_rows_packed, where a
 * path has it, at the even sizes), with strided rows, full range values, and probabilities up to 2^31 - 1 (the contract's bound, above what
 * attention produces; the extreme case, all 2^31 - 1, makes the AVX2 axpy's int32
 * blocks as short as they get).
 */
static void attention_rows(const nn_kernels *k)
{
    static const uint32_t dims[] = { 1, 3, 4, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 100, 128, 256, 64, 32, 258 };
    for (size_t di = 0; di < 3 * (sizeof dims / sizeof dims[0]); di++) {
        /* Up to 1100 rows: the AVX2 axpy adds blocks of up to 128 rows in int32. */
        uint32_t n = dims[di % (sizeof dims / sizeof dims[0])], rows = 1 + rndn(di % 2 ? 300 : 1100);
        uint32_t stride = n + rndn(40);
        int extreme = di % 3 == 0;
        int16_t *q = malloc(n * 2), *kv = malloc(((size_t)rows * stride + 1) * 2);
        int32_t *p = malloc(rows * 4);
        int64_t *want = malloc(rows * 8 > n * 8 ? rows * 8 : n * 8), *got = malloc(rows * 8 > n * 8 ? rows * 8 : n * 8);
        for (uint32_t i = 0; i < n; i++)
            q[i] = extreme ? (i & 1 ? 32767 : -32767) : (int16_t)(rndn(65535) - 32767);
        for (size_t i = 0; i < (size_t)rows * stride; i++)
            kv[i] = extreme ? (i % 3 ? -32767 : 32767) : (int16_t)(rndn(65535) - 32767);
        for (uint32_t j = 0; j < rows; j++)
            p[j] = extreme ? 0x7fffffff : (int32_t)(rnd() & (j % 4 ? 0x3fffffff : 0x7fffffff));
        nn_dot_rows_i16_ref(q, kv, stride, n, rows, want);
        k->dot_rows_i16(q, kv, stride, n, rows, got);
        if (memcmp(want, got, rows * 8)) {
            print_error("kernel %s dot_rows differs: n %u rows %u\n", k->name, n, rows);
            fail();
        }
        if (k->dot_rows_packed && n % 2 == 0) {   /* the same rows packed; nothing stored past them */
            int16_t *pk = malloc(nn_pack_rows_len(n, rows) * 2);
            int64_t *pg = malloc(((size_t)rows + 1) * 8);
            nn_pack_rows_i16(kv, stride, n, rows, pk);
            pg[rows] = 0x5a5a5a5a5a5a5a5a;
            k->dot_rows_packed(q, pk, n, rows, pg);
            if (memcmp(want, pg, rows * 8) || pg[rows] != 0x5a5a5a5a5a5a5a5a) {
                print_error("kernel %s dot_rows_packed differs: n %u rows %u\n", k->name, n, rows);
                fail();
            }
            free(pk);
            free(pg);
        }
        for (uint32_t i = 0; i < n; i++)
            want[i] = got[i] = (int64_t)(rnd() % 2000001) - 1000000;
        nn_axpy_rows_i16_ref(p, kv, stride, n, rows, want);
        k->axpy_rows_i16(p, kv, stride, n, rows, got);
        if (memcmp(want, got, n * 8)) {
            print_error("kernel %s axpy_rows differs: n %u rows %u\n", k->name, n, rows);
            fail();
        }
        free(q);
        free(kv);
        free(p);
        free(want);
        free(got);
    }
}

/*
 * Scores from dot products and the probabilities' normalisation and alignment: random
 * exponents around the working range and beyond it (shifts of 0 or less, or above 62,
 * take the SIMD paths' scalar fallback), dot products up to 2^38 (beyond the AVX2 fast
 * path's 2^37), and the edge inv = 2^32; lengths ragged against four lanes.
 */
static void scores_probs(const nn_kernels *k)
{
    for (int round = 0; round < 60; round++) {
        uint32_t n = 1 + rndn(round % 5 ? 300 : 9), es = 1 + rndn(4);
        int64_t *dots = malloc(n * 8);
        int8_t *e = malloc((size_t)n * es);
        int32_t *want = malloc(n * 4), *got = malloc(n * 4), *p0 = malloc(n * 4);
        int base = 24 + (int)rndn(30), wide = round % 4 == 0;
        int32_t c = round % 7 == 0    ? (1 << 24)
                    : round % 11 == 0 ? 0
                    : round % 13 == 0 ? (1 << 24) + (int32_t)rndn(1u << 20)   /* past the SIMD fast paths */
                                      : (int32_t)(1 + rndn(1u << 24));
        int tmax = 0;
        for (uint32_t j = 0; j < n; j++) {
            int64_t d = (int64_t)(rnd() >> (wide ? 25 : 28)) - (int64_t)(wide ? 1ull << 38 : 1ull << 35);
            dots[j] = j % 11 == 3 ? 0 : j % 13 == 7 ? (j & 1 ? 1ll << 37 : -(1ll << 37)) : d;
            e[(size_t)j * es] = (int8_t)(wide ? (int)rndn(256) - 128 : (int)rndn(40) - 20);
            if (e[(size_t)j * es] > tmax)
                tmax = e[(size_t)j * es];
            p0[j] = (int32_t)rndn((1u << 30) + 1);
        }
        int32_t mw = nn_scores_q16_ref(dots, e, es, c, base, n, want);
        int32_t mg = k->scores_q16(dots, e, es, c, base, n, got);
        if (mw != mg || memcmp(want, got, n * 4)) {
            print_error("kernel %s scores_q16 differs: n %u stride %u base %d c %d\n", k->name, n, es, base, c);
            fail();
        }
        uint64_t inv = round % 6 == 0    ? 1ull << 32
                       : round % 10 == 1 ? (1ull << 32) - 1
                                         : (1ull << 62) / ((1ull << 30) + rndn(1u << 30) * (uint64_t)n);
        memcpy(want, p0, n * 4);
        memcpy(got, p0, n * 4);
        nn_probs_align_ref(want, inv, e, es, tmax, n);
        k->probs_align(got, inv, e, es, tmax, n);
        if (memcmp(want, got, n * 4)) {
            print_error("kernel %s probs_align differs: n %u stride %u tmax %d\n", k->name, n, es, tmax);
            fail();
        }
        free(dots);
        free(e);
        free(want);
        free(got);
        free(p0);
    }
}

/*
 * Softmax numerators over every branch of nn_exp_q16_q30: x above xmax (1.0), the
 * whole polynomial range in small steps, just past e^-64 (0), and the int32 extremes.
 */
static void softmax_exp(const nn_kernels *k)
{
    enum { N = 4099 };
    static int32_t x[N], want[N], got[N];
    const int64_t span = (int64_t)64 << 16;
    for (int pass = 0; pass < 44; pass++) {
        int32_t xmax = pass == 0 ? INT32_MAX : pass == 1 ? INT32_MIN + 1 : (int32_t)rnd();
        for (uint32_t j = 0; j < N; j++) {
            int64_t d;
            if (j < 8)
                d = (int64_t)j - 3;                                     /* around 0 */
            else if (j < 16)
                d = span - 4 + (int64_t)(j - 8);                         /* around e^-64 */
            else if (j % 97 == 0)
                d = (int64_t)xmax - INT32_MIN;                           /* farthest */
            else
                d = (int64_t)((uint64_t)pass * N + j) * 257 % (span + 1);
            int64_t v = (int64_t)xmax - d;
            x[j] = (int32_t)(v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v);
        }
        uint32_t n = pass < 20 ? N - (uint32_t)pass : pass < 24 ? 1 + rndn(7) : 1 + rndn(150);
        memset(got, 0x5a, sizeof got);
        int64_t sw = nn_softmax_exp_q30_ref(x, xmax, n, want), sg = k->softmax_exp_q30(x, xmax, n, got);
        int past = 0;   /* nothing written past n */
        for (uint32_t j = n; j < N; j++)
            past |= got[j] != 0x5a5a5a5a;
        if (sw != sg || memcmp(want, got, n * 4) || past) {
            print_error("kernel %s softmax_exp_q30 differs: pass %d n %u\n", k->name, pass, n);
            fail();
        }
    }
}

/* SiLU over every branch: around 0, the polynomial range, past e^-64 both ways, and
 * the int32 extremes; lengths not a multiple of the vector width. */
static void silu_rows(const nn_kernels *k)
{
    enum { N = 4099 };
    static int32_t want[N], got[N];
    for (int pass = 0; pass < 40; pass++) {
        for (uint32_t j = 0; j < N; j++) {
            int64_t v;
            if (j < 16)
                v = (int64_t)j - 8;
            else if (j < 24)
                v = j & 1 ? INT32_MAX - (int64_t)(j - 16) : INT32_MIN + (int64_t)(j - 16);
            else if (pass < 20)
                v = ((int64_t)pass * N + j) * 1021 % ((int64_t)140 << 16) - ((int64_t)70 << 16);
            else
                v = (int32_t)rnd();
            want[j] = (int32_t)v;
        }
        memcpy(got, want, sizeof got);
        uint32_t n = pass % 2 ? N - (uint32_t)(pass % 4) : (uint32_t)pass * 3 + 1;   /* and short rows */
        nn_silu_q16_ref(want, n);
        k->silu_q16(got, n);
        if (memcmp(want, got, sizeof got)) {
            print_error("kernel %s silu_q16 differs: pass %d\n", k->name, pass);
            fail();
        }
    }
}

/* A row of n values for the row steps: kind 0 full-range random, 1 small (shift 0),
 * 2 the extremes, 3 ties (odd multiples of 2^(t-1) once the shift is t), 4 one
 * magnitude at a bit-length boundary among small values. */
static void row_values(int32_t *x, uint32_t n, int kind, int pass)
{
    for (uint32_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = (int32_t)rnd() >> (pass % 17); break;
        case 1: x[i] = (int32_t)rndn(65535) - 32767; break;
        case 2: x[i] = i % 3 == 0 ? INT32_MIN : i % 3 == 1 ? INT32_MAX : -INT32_MAX; break;
        case 3: x[i] = (int32_t)(((2 * (int64_t)rndn(1u << 14) + 1) << (pass % 16)) * (rnd() & 1 ? 1 : -1)); break;
        default: x[i] = (int32_t)rndn(1000) - 500; break;
        }
    }
    if (kind == 4 && n)
        x[rndn(n)] = (int32_t)((1ll << (15 + pass % 16)) - (pass & 1)) * (pass & 2 ? -1 : 1);
}

/*
 * The row steps against their contracts: quant_i32_i16 against nn_quant_i32_i16,
 * mul_quant_i16 against nn_quant_i64_i16 of the products (and the reference twin),
 * sumsq_i32 against a 128-bit loop, add_sat_i32 and round_sat_i64 against their
 * reference twins (nothing written past n); lengths 0..300 (every vector tail) and 4099.
 */
static void row_steps(const nn_kernels *k)
{
    enum { N = 4099 };
    static int32_t a[N], b[N];
    static int64_t p[N];
    static int32_t w[N + 1], g[N + 1];
    static int16_t want[N], got[N];
    for (int pass = 0; pass < 200; pass++) {
        uint32_t n = pass < 150 ? (uint32_t)pass * 2 + (uint32_t)(pass & 1) : pass % 5 ? 1 + rndn(N) : N;
        row_values(a, n, pass % 5, pass);
        row_values(b, n, (pass / 5) % 5, pass / 3);
        memset(want, 0x55, sizeof want);
        memset(got, 0x55, sizeof got);
        int tw = nn_quant_i32_i16(a, n, want), tg = k->quant_i32_i16(a, n, got);
        if (tw != tg || memcmp(want, got, sizeof got)) {
            print_error("kernel %s quant_i32_i16 differs: n %u kind %d pass %d\n", k->name, n, pass % 5, pass);
            fail();
        }
        for (uint32_t i = 0; i < n; i++)
            p[i] = (int64_t)a[i] * b[i];
        memset(want, 0x55, sizeof want);
        memset(got, 0x55, sizeof got);
        tw = nn_quant_i64_i16(p, n, want);
        tg = k->mul_quant_i16(a, b, n, got);
        if (tw != tg || memcmp(want, got, sizeof got)) {
            print_error("kernel %s mul_quant_i16 differs: n %u kinds %d %d pass %d\n", k->name, n, pass % 5,
                        (pass / 5) % 5, pass);
            fail();
        }
        unsigned __int128 ss = 0;
        for (uint32_t i = 0; i < n; i++)
            ss += (unsigned __int128)((int64_t)a[i] * a[i]);
        uint64_t s2[2] = { 1, 1 };
        k->sumsq_i32(a, n, s2);
        if (s2[0] != (uint64_t)ss || s2[1] != (uint64_t)(ss >> 64)) {
            print_error("kernel %s sumsq_i32 differs: n %u kind %d pass %d\n", k->name, n, pass % 5, pass);
            fail();
        }
    }
    /* The residual add: full-range rows, so that some sums saturate both ways. */
    for (int pass = 0; pass < 40; pass++) {
        uint32_t n = pass < 30 ? (uint32_t)pass * 3 : 1 + rndn(N);
        row_values(a, n, pass % 5, pass);
        row_values(b, n, (pass + 2) % 5, pass);
        memcpy(w, a, n * 4);
        memcpy(g, a, n * 4);
        g[n] = w[n] = 0x5a5a5a5a;
        nn_add_sat_i32_ref(w, b, n);
        k->add_sat_i32(g, b, n);
        if (memcmp(w, g, (n + 1) * 4)) {
            print_error("kernel %s add_sat_i32 differs: n %u pass %d\n", k->name, n, pass);
            fail();
        }
    }
    /* Attention's output: sums of attention's size (below 2^46) and beyond (up to
     * INT64_MIN, past the 64-bit fast path's 2^61), some saturating; every shift from
     * -2 to 64 (none or more than 62 take the scalar path). */
    for (int pass = 0; pass < 400; pass++) {
        uint32_t n = pass < 300 ? (uint32_t)pass % 150 : 1 + rndn(N);
        int sh = pass % 67 - 2, wide = pass % 3 == 0;
        for (uint32_t i = 0; i < n; i++) {
            p[i] = wide ? (int64_t)(rnd() << 1 ^ rnd() >> 7) : (int64_t)(rnd() >> 18) - (1ll << 45);
            if (wide && i % 37 == 5)
                p[i] = i & 1 ? INT64_MIN : INT64_MAX;
        }
        w[n] = g[n] = 0x5a5a5a5a;
        nn_round_sat_i64_ref(p, sh, n, w);
        k->round_sat_i64(p, sh, n, g);
        if (memcmp(w, g, (n + 1) * 4)) {
            print_error("kernel %s round_sat_i64 differs: n %u shift %d pass %d\n", k->name, n, sh, pass);
            fail();
        }
    }
    /* The most a square sum can be here: N squares of INT32_MIN, N * 2^62 (past 2^64). */
    for (uint32_t i = 0; i < N; i++)
        a[i] = INT32_MIN;
    uint64_t s2[2];
    k->sumsq_i32(a, N, s2);
    assert_true(s2[0] == (uint64_t)(N % 4) << 62 && s2[1] == N / 4);
}

/* RoPE against the reference: head sizes with and without whole 16-lane chunks, rows
 * of several heads, full-range values and sin/cos at +-2^30 (the saturation). */
static void rope_rows(const nn_kernels *k)
{
    enum { N = 9 * 128 };
    static int32_t want[N], got[N], sc[256];
    static const uint32_t hds[] = { 2, 8, 12, 16, 32, 48, 64, 128, 256 };
    for (int pass = 0; pass < 60; pass++) {
        uint32_t hd = hds[pass % 9], heads = 1 + rndn(N / hd < 9 ? N / hd : 9), n = hd * heads;
        if (pass % 10 == 9)
            n = 2 * (1 + rndn(hd / 2));   /* part of one head: a length the vector paths leave */
        for (uint32_t i = 0; i < hd; i++) {
            uint32_t r = rndn(8);
            sc[i] = r == 0 ? (1 << 30) : r == 1 ? -(1 << 30) : (int32_t)(rnd() % (2u << 30)) - (1 << 30);
        }
        for (uint32_t i = 0; i < n; i++)
            want[i] = pass % 3 == 0 ? (rnd() & 1 ? INT32_MAX : INT32_MIN) : (int32_t)rnd() >> (pass % 20);
        memcpy(got, want, n * 4);
        nn_rope_q30_ref(want, n, hd, sc);
        k->rope_q30(got, n, hd, sc);
        if (memcmp(want, got, n * 4)) {
            print_error("kernel %s rope_q30 differs: hd %u n %u pass %d\n", k->name, hd, n, pass);
            fail();
        }
    }
}

/* nn_act8_quant as its contract states it (nn_fixed.h), one group at a time. */
static void act8_brute(const int16_t *a, uint32_t n, uint32_t g, int8_t *q, uint8_t *sh, int32_t *sum)
{
    for (uint32_t i0 = 0, k = 0; i0 < n; i0 += g, k++) {
        uint32_t len = n - i0 < g ? n - i0 : g;
        int32_t mx = 0, tot = 0;
        for (uint32_t i = 0; i < len; i++)
            mx = abs(a[i0 + i]) > mx ? abs(a[i0 + i]) : mx;
        int s = 0;
        while (((mx + ((1 << s) >> 1)) >> s) > 127)
            s++;
        for (uint32_t i = 0; i < len; i++) {
            int32_t r = (abs(a[i0 + i]) + ((1 << s) >> 1)) >> s;
            q[i0 + i] = (int8_t)(a[i0 + i] < 0 ? -r : r);
            tot += q[i0 + i];
        }
        sh[k] = (uint8_t)s;
        sum[k] = tot;
    }
}

/*
 * act8_quant against the contract: every group maximum from 0 to 32767 (one value per
 * group), then ragged lengths and groups with values that are full range, small (no
 * step), or at the step boundaries.
 */
static void act8_rows(const nn_kernels *k)
{
    enum { N = 32768 };
    static int16_t a[N];
    static int8_t qw[N], qg[N];
    static uint8_t sw[N], sg[N];
    static int32_t uw[N], ug[N];
    for (uint32_t i = 0; i < N; i++)
        a[i] = (int16_t)(i & 1 ? -(int32_t)i : (int32_t)i);
    act8_brute(a, N, 1, qw, sw, uw);
    k->act8_quant(a, N, 1, qg, sg, ug);
    assert_memory_equal(qw, qg, N);
    assert_memory_equal(sw, sg, N);
    assert_memory_equal(uw, ug, N * sizeof *uw);
    /* Every group maximum again through the paths' vector loops (groups of 16 and 48):
     * group k holds +-k and values of smaller magnitude; a last group holds -32768. */
    static const uint32_t wide[] = { 16, 48 };
    for (size_t wi = 0; wi < sizeof wide / sizeof wide[0]; wi++) {
        uint32_t g = wide[wi], ng = 32769, n = ng * g;
        int16_t *b = malloc((size_t)n * sizeof *b);
        int8_t *bw = malloc(n), *bg = malloc(n);
        uint8_t *tw = malloc(ng), *tg = malloc(ng);
        int32_t *vw = malloc(ng * sizeof *vw), *vg = malloc(ng * sizeof *vg);
        assert_true(b && bw && bg && tw && tg && vw && vg);
        for (uint32_t grp = 0; grp < ng; grp++)
            for (uint32_t i = 0; i < g; i++) {
                int32_t v = i == grp % g ? (int32_t)grp : (int32_t)rndn(grp + 1);
                b[(size_t)grp * g + i] = (int16_t)(grp == 32768 ? (i == 0 ? -32768 : -(int32_t)rndn(32768))
                                                                : (rnd() & 1 ? -v : v));
            }
        act8_brute(b, n, g, bw, tw, vw);
        k->act8_quant(b, n, g, bg, tg, vg);
        if (memcmp(bw, bg, n) || memcmp(tw, tg, ng) || memcmp(vw, vg, ng * sizeof *vw)) {
            print_error("kernel %s act8_quant differs over every maximum: g %u\n", k->name, g);
            fail();
        }
        free(b);
        free(bw);
        free(bg);
        free(tw);
        free(tg);
        free(vw);
        free(vg);
    }
    static const int16_t edge[] = { 0, 1, 63, 64, 127, 128, 129, 255, 256, 383, 384, 511, 512, 32640, 32767, -32767 };
    for (int pass = 0; pass < 60; pass++) {
        uint32_t n = 1 + rndn(1100), g = pass < 40 ? 32 * (1 + rndn(8)) : 1 + rndn(256), ng = (n + g - 1) / g;
        int kind = pass % 4;
        for (uint32_t i = 0; i < n; i++)
            a[i] = kind == 0   ? (int16_t)(rndn(65535) - 32767)
                   : kind == 1 ? (int16_t)(rndn(255) - 127)
                   : kind == 2 ? edge[rndn(sizeof edge / sizeof edge[0])] * (rndn(2) ? 1 : -1)
                               : (int16_t)((int32_t)(rndn(65535) - 32767) >> rndn(16));
        act8_brute(a, n, g, qw, sw, uw);
        memset(qg, 0x55, n);
        k->act8_quant(a, n, g, qg, sg, ug);
        if (memcmp(qw, qg, n) || memcmp(sw, sg, ng) || memcmp(uw, ug, ng * sizeof *uw)) {
            print_error("kernel %s act8_quant differs: n %u g %u kind %d\n", k->name, n, g, kind);
            fail();
        }
        k->act8_quant(a, n, g, qg, sg, NULL);   /* sum is optional */
        assert_memory_equal(qw, qg, n);
    }
}

static void every_path_matches_ref(void **st)
{
    (void)st;
    char names[128];
    snprintf(names, sizeof names, "%s", nn_kernels_available());
    print_message("kernel paths: %s\n", names);
    for (char *save, *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
        const nn_kernels *k = nn_kernels_select(name);
        assert_non_null(k);
        static const uint32_t groups[] = { 1, 4, 8, 16, 31, 32, 33, 64, 100, 128, 256 };
        static const uint32_t cols[] = { 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 172, 255, 288, 576 };
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
                run_case(k, 1 + rndn(19), cols[c], groups[g], 1 + rndn(9), (g + c) % 5 == 0, 0);
        for (int i = 0; i < 40; i++)
            run_case(k, 1 + rndn(70), 1 + rndn(1100), 1 + rndn(256), 1 + rndn(17), i % 4 == 0, 0);
        /* Real widths: past a fast path's row chunk (tens of KiB of weights), more than
         * eight tokens with a remainder, whole and ragged groups of the usual sizes. */
        run_case(k, 100, 4096, 64, 11, 0, 0);
        run_case(k, 61, 2048 + 17, 32, 9, 1, 0);
        run_case(k, 37, 5632, 256, 17, 0, 0);
        run_case(k, 45, 3000, 48, 8, 0, 0);
        run_case(k, 70, 576, 32, 1, 0, 0);
        run_case(k, 33, 1536 + 8, 128, 5, 0, 0);
        /* The dotprod split buffer (16384 columns) full, and rows past it. */
        run_case(k, 9, 16384, 64, 6, 0, 0);
        run_case(k, 9, 16384 + 40, 32, 7, 0, 0);
        run_case(k, 9, 16384, 32, 1, 0, 0);
        run_case(k, 9, 16384 + 40, 32, 1, 0, 0);
        /* dot_i16 over ragged lengths, including the full range. */
        for (uint32_t n = 0; n < 300; n += 1 + n / 16) {
            int16_t a[300], b[300];
            for (uint32_t i = 0; i < n; i++) {
                a[i] = n % 3 ? (int16_t)(rndn(65535) - 32767) : 32767;
                b[i] = n % 3 ? (int16_t)(rndn(65535) - 32767) : -32767;
            }
            assert_true(k->dot_i16(a, b, n) == nn_dot_i16_ref(a, b, n));
        }
        attention_rows(k);
        scores_probs(k);
        softmax_exp(k);
        silu_rows(k);
        act8_rows(k);
        row_steps(k);
        rope_rows(k);
    }
}

static void selection(void **st)
{
    (void)st;
    assert_non_null(nn_kernels_select(NULL));
    assert_non_null(nn_kernels_select("auto"));
    assert_string_equal(nn_kernels_select("ref")->name, "ref");
    assert_null(nn_kernels_select("no-such-path"));
    /* Say which paths this run could not check: not built for this target, or built
     * but this CPU lacks the instructions (AVX-512 VNNI on the development machine). */
    static const char *const known[] = { "avx2", "avx512vnni", "neon", "dotprod" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!nn_kernels_select(known[i]))
            print_message("kernel path %s: NOT RUN here (not in this build, or this CPU lacks it)\n", known[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ref_matches_brute_force),
        cmocka_unit_test(every_path_matches_ref),
        cmocka_unit_test(selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
