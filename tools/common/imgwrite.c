/*
 * Image writer and weight quantiser (host side; floating point allowed).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvtools.h"

/* Keep in step with nn/src/model.c: exponents the engine accepts. */
#define EXP_MIN (-32)
#define EXP_MAX 96

static int grow(kt_img *w, size_t need)
{
    if (w->oom || w->finished)
        return -1;
    if (need <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 1 << 20;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(w->buf, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    memset(p + w->cap, 0, cap - w->cap);
    w->buf = p;
    w->cap = cap;
    return 0;
}

/* Reserves bytes at the next 64-byte boundary; returns the offset or SIZE_MAX. */
static size_t reserve(kt_img *w, size_t bytes)
{
    size_t off = (w->len + NN_IMAGE_ALIGN - 1) & ~(size_t)(NN_IMAGE_ALIGN - 1);
    if (grow(w, off + bytes))
        return SIZE_MAX;
    w->len = off + bytes;
    return off;
}

static int add_entry(kt_img *w, uint32_t kind, uint32_t layer, uint32_t dtype, uint32_t rows,
                     uint32_t cols, int32_t exp, size_t off, size_t bytes, size_t soff)
{
    if (w->n == w->dir_cap) {
        uint32_t cap = w->dir_cap ? w->dir_cap * 2 : 64;
        uint8_t *d = realloc(w->dir, (size_t)cap * NN_IMAGE_DIR_ENTRY_BYTES);
        if (!d) {
            w->oom = 1;
            return -1;
        }
        w->dir = d;
        w->dir_cap = cap;
    }
    uint8_t *e = w->dir + (size_t)w->n++ * NN_IMAGE_DIR_ENTRY_BYTES;
    memset(e, 0, NN_IMAGE_DIR_ENTRY_BYTES);
    nn_wr32(e, kind);
    nn_wr32(e + 4, layer);
    nn_wr32(e + 8, dtype);
    nn_wr32(e + 12, rows);
    nn_wr32(e + 16, cols);
    nn_wr32(e + 20, (uint32_t)exp);
    nn_wr64(e + 24, off);
    nn_wr64(e + 32, bytes);
    nn_wr64(e + 40, soff);
    return 0;
}

void kt_img_init(kt_img *w, const nn_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    w->numerics = NN_NUMERICS_VERSION;
    reserve(w, NN_IMAGE_HEADER_BYTES);
}

void kt_img_free(kt_img *w)
{
    free(w->buf);
    free(w->dir);
    memset(w, 0, sizeof *w);
}

/* Numerics version 2 stores every matmul weight but the embedding interleaved
 * (NN_DT_Q8G8, nn_image.h); the embedding is read by row. */
static int interleaved(const kt_img *w, uint32_t kind)
{
    return w->numerics == NN_NUMERICS_ACT8 && kind != NN_T_TOK_EMB;
}

int kt_img_add_q8_raw(kt_img *w, uint32_t kind, uint32_t layer, const int8_t *q, const uint16_t *m,
                      int32_t exp, uint32_t rows, uint32_t cols)
{
    uint32_t ng = nn_groups(cols, w->cfg.group_size);
    int il = interleaved(w, kind);
    uint32_t R8 = (rows + 7) / 8, C4 = (cols + 3) / 4;
    size_t n = il ? (size_t)R8 * C4 * 32 : (size_t)rows * cols, ns = il ? (size_t)R8 * 8 * ng : (size_t)rows * ng;
    size_t off = reserve(w, n);
    if (off == SIZE_MAX)
        return -1;
    nn_q8_mat lay = { .rows = rows, .cols = cols, .group = w->cfg.group_size, .ngroups = ng, .il = (uint32_t)il };
    if (il) {
        memset(w->buf + off, 0, n);
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t i = 0; i < cols; i++)
                w->buf[off + nn_q8_at(&lay, r, i)] = (uint8_t)q[(size_t)r * cols + i];
    } else {
        memcpy(w->buf + off, q, n);
    }
    size_t soff = reserve(w, ns * 2);
    if (soff == SIZE_MAX)
        return -1;
    memset(w->buf + soff, 0, ns * 2);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t g = 0; g < ng; g++) {
            size_t j = nn_q8_m_at(&lay, r, g);
            uint16_t v = m[(size_t)r * ng + g];
            w->buf[soff + 2 * j] = (uint8_t)v;
            w->buf[soff + 2 * j + 1] = (uint8_t)(v >> 8);
        }
    return add_entry(w, kind, layer, il ? NN_DT_Q8G8 : NN_DT_Q8G, rows, cols, exp, off, n, soff);
}

int kt_img_add_tensor(kt_img *w, const nn_tensor *t)
{
    if (t->dtype == NN_DT_Q8G)
        return kt_img_add_q8_raw(w, t->kind, t->layer, t->data, t->scales, t->exp, t->rows, t->cols);
    if (t->dtype == NN_DT_Q8G8) {   /* as it is: its image was version 2 too */
        size_t ns = (size_t)(t->rows + 7) / 8 * 8 * nn_groups(t->cols, w->cfg.group_size) * 2;
        size_t off = reserve(w, t->data_bytes);
        if (off == SIZE_MAX)
            return -1;
        memcpy(w->buf + off, t->data, t->data_bytes);
        size_t soff = reserve(w, ns);
        if (soff == SIZE_MAX)
            return -1;
        memcpy(w->buf + soff, t->scales, ns);
        return add_entry(w, t->kind, t->layer, t->dtype, t->rows, t->cols, t->exp, off, t->data_bytes, soff);
    }
    size_t off = reserve(w, t->data_bytes);
    if (off == SIZE_MAX)
        return -1;
    memcpy(w->buf + off, t->data, t->data_bytes);
    return add_entry(w, t->kind, t->layer, t->dtype, t->rows, t->cols, t->exp, off, t->data_bytes, 0);
}

/*
 * nearbyint() in the default rounding mode (to nearest, ties to even), inline: adding
 * and subtracting 1.5 * 2^52 leaves y rounded to an integer for |y| < 2^51. Only the
 * sign of a zero can differ from nearbyint(), and every use below multiplies the
 * result by a scale or converts it to an integer, where +0 and -0 agree. nearbyint()
 * was a library call per value and most of a 1B-parameter conversion.
 */
static inline double round_even(double y)
{
    if (!(fabs(y) < 0x1p51))
        return nearbyint(y);
    return (y + 0x1.8p52) - 0x1.8p52;
}

/*
 * Squared error of quantising x[0..n) with scale s (values clamped to +-127), or any
 * value >= limit once the running sum reaches limit: the terms are non-negative, so the
 * sum can only grow, and a candidate that reaches the best error so far cannot win
 * (the search keeps strictly smaller errors). The choice is the same as summing all.
 */
static double group_error(const float *x, uint32_t n, double s, double limit)
{
    double e = 0;
    for (uint32_t i = 0; i < n && e < limit; i++) {
        double q = round_even(x[i] / s);
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        double d = x[i] - q * s;
        e += d * d;
    }
    return e;
}

/* Quantises one group x[0, n) with scale exponent e: the mantissa that minimises the
 * group's squared error among the absmax scale and slightly smaller ones. */
static void quant_group(const float *x, uint32_t n, int e, int8_t *q, uint16_t *m)
{
    double a = 0;
    for (uint32_t i = 0; i < n; i++)
        a = fmax(a, fabs(x[i]));
    double ideal = ldexp(a / 127.0, e);           /* mantissa of the absmax scale */
    long best_m = 1;
    if (a > 0) {
        /* Try the absmax scale (rounded up, so nothing clamps) and slightly
         * smaller ones, which trade a clipped maximum for finer steps. */
        double best_err = INFINITY;
        for (int k = -1; k <= 20; k++) {
            long mc = k < 0 ? (long)ceil(ideal) : lround(ideal * (1.0 - 0.01 * k));
            mc = mc < 1 ? 1 : mc > 65535 ? 65535 : mc;
            double err = group_error(x, n, ldexp((double)mc, -e), best_err);
            if (err < best_err) {
                best_err = err;
                best_m = mc;
            }
        }
    }
    double s = ldexp((double)best_m, -e);
    *m = (uint16_t)best_m;
    for (uint32_t i = 0; i < n; i++) {
        double qq = a > 0 ? round_even(x[i] / s) : 0;
        q[i] = (int8_t)(qq > 127 ? 127 : qq < -127 ? -127 : qq);
    }
}

typedef struct q8_job {
    const float *v;
    int8_t *q;
    uint16_t *m;
    uint32_t r0, r1, cols, G, ng;
    int e;
} q8_job;

/* Rows [r0, r1), group by group. */
static void *quantise_rows(void *arg)
{
    const q8_job *j = arg;
    for (uint32_t r = j->r0; r < j->r1; r++)
        for (uint32_t g = 0; g < j->ng; g++) {
            uint32_t i0 = g * j->G, n = j->cols - i0 < j->G ? j->cols - i0 : j->G;
            size_t at = (size_t)r * j->cols + i0;
            quant_group(j->v + at, n, j->e, j->q + at, &j->m[(size_t)r * j->ng + g]);
        }
    return NULL;
}

int kt_img_add_q8(kt_img *w, uint32_t kind, uint32_t layer, const float *v, uint32_t rows, uint32_t cols)
{
    uint32_t G = w->cfg.group_size, ng = nn_groups(cols, G);
    double smax = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        if (!isfinite(v[i]))
            return -1;
        double a = fabs(v[i]) / 127.0;
        if (a > smax)
            smax = a;
    }
    /* One exponent per tensor: the largest group scale gets a 16-bit mantissa. */
    int e = smax > 0 ? (int)floor(log2(65535.0 / smax)) : 0;
    while (smax > 0 && ldexp(smax, e) > 65535.0)
        e--;
    if (e > EXP_MAX)
        e = EXP_MAX;
    if (e < EXP_MIN)
        return -1;
    int8_t *q = malloc((size_t)rows * cols);
    uint16_t *m = malloc((size_t)rows * ng * sizeof *m);
    if (!q || !m) {
        free(q);
        free(m);
        w->oom = 1;
        return -1;
    }
    /* Rows are independent, so they are split over the online CPUs (at most 16); the
     * bytes do not depend on the split. Small tensors stay on this thread. */
    q8_job jobs[16];
    pthread_t th[16];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t nt = (size_t)rows * cols < (1u << 20) || ncpu < 2 ? 1 : ncpu > 16 ? 16 : (uint32_t)ncpu;
    if (nt > rows)
        nt = rows;
    uint32_t started = 1;
    for (uint32_t t = 0; t < nt; t++) {
        jobs[t] = (q8_job){ .v = v, .q = q, .m = m, .r0 = (uint32_t)((uint64_t)rows * t / nt),
                            .r1 = (uint32_t)((uint64_t)rows * (t + 1) / nt), .cols = cols, .G = G, .ng = ng, .e = e };
        if (t > 0) {
            if (pthread_create(&th[t], NULL, quantise_rows, &jobs[t]) != 0)
                quantise_rows(&jobs[t]);                /* no thread: do it here */
            else
                started |= 1u << t;
        }
    }
    quantise_rows(&jobs[0]);
    for (uint32_t t = 1; t < nt; t++)
        if (started & (1u << t))
            pthread_join(th[t], NULL);
    int rc = kt_img_add_q8_raw(w, kind, layer, q, m, e, rows, cols);
    free(q);
    free(m);
    return rc;
}

/* An fp16 value as M * 2^E with an integer M (11 bits at most); -1 for inf/NaN. */
static int f16_split(uint16_t h, int32_t *M, int *E)
{
    int ex = (h >> 10) & 31;
    int32_t man = h & 0x3ff;
    if (ex == 31)
        return -1;
    *M = ex ? (man | 0x400) : man;
    *E = ex ? ex - 25 : -24;
    if (h & 0x8000)
        *M = -*M;
    return 0;
}

static int bitlen(uint32_t x)
{
    int n = 0;
    while (x) {
        n++;
        x >>= 1;
    }
    return n;
}

int kt_img_add_q8_0(kt_img *w, uint32_t kind, uint32_t layer, const uint16_t *d, const int8_t *q, uint32_t rows,
                    uint32_t cols, uint64_t *exact, uint64_t *requant)
{
    if (w->cfg.group_size != 32 || cols % 32)
        return -1;
    size_t nb = (size_t)rows * (cols / 32);
    /* The largest exponent at which every block's |d| fits 16 bits. */
    int e = EXP_MAX;
    for (size_t b = 0; b < nb; b++) {
        int32_t M;
        int E;
        if (f16_split(d[b], &M, &E))
            return -1;
        uint32_t am = (uint32_t)(M < 0 ? -M : M);
        if (am) {
            int lim = 16 - bitlen(am) - E;
            e = lim < e ? lim : e;
        }
    }
    if (e < EXP_MIN)
        return -1;
    int8_t *oq = malloc((size_t)rows * cols);
    uint16_t *om = malloc(nb * sizeof *om);
    float x[32];
    if (!oq || !om) {
        free(oq);
        free(om);
        w->oom = 1;
        return -1;
    }
    for (size_t b = 0; b < nb; b++) {
        int32_t M = 0;
        int E = 0;
        f16_split(d[b], &M, &E);
        const int8_t *qb = q + 32 * b;
        int ok = M > 0, zero = M == 0;
        for (int i = 0; i < 32; i++)
            ok &= qb[i] != -128;
        /* d = M * 2^E = m * 2^-e needs m = M * 2^(E + e) to be an integer < 2^16. */
        int sh = E + e;
        if (ok && sh < 0)
            ok = (M & ((1 << -sh) - 1)) == 0;
        if (zero) {
            om[b] = 1;
            memset(oq + 32 * b, 0, 32);
            (*exact)++;
        } else if (ok) {
            om[b] = (uint16_t)(sh >= 0 ? (uint32_t)M << sh : (uint32_t)M >> -sh);
            memcpy(oq + 32 * b, qb, 32);
            (*exact)++;
        } else {
            double df = ldexp((double)M, E);
            for (int i = 0; i < 32; i++)
                x[i] = (float)(qb[i] * df);
            quant_group(x, 32, e, oq + 32 * b, &om[b]);
            (*requant)++;
        }
    }
    int rc = kt_img_add_q8_raw(w, kind, layer, oq, om, e, rows, cols);
    free(oq);
    free(om);
    return rc;
}

int kt_img_add_norm(kt_img *w, uint32_t kind, uint32_t layer, const float *v, uint32_t n)
{
    double amax = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return -1;
        amax = fmax(amax, fabs(v[i]));
    }
    int e = amax > 0 ? (int)floor(log2(((double)(1 << 30) - 1) / amax)) : 0;
    while (amax > 0 && nearbyint(ldexp(amax, e)) >= (double)(1 << 30))
        e--;
    if (e > EXP_MAX)
        e = EXP_MAX;
    if (e < EXP_MIN)
        return -1;
    size_t off = reserve(w, (size_t)n * 4);
    if (off == SIZE_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        nn_wr32(w->buf + off + 4 * i, (uint32_t)(int32_t)nearbyint(ldexp(v[i], e)));
    return add_entry(w, kind, layer, NN_DT_I32, 1, n, e, off, (size_t)n * 4, 0);
}

int kt_img_add_u64(kt_img *w, uint32_t kind, uint32_t layer, const uint64_t *v, uint32_t n)
{
    size_t off = reserve(w, (size_t)n * 8);
    if (off == SIZE_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        nn_wr64(w->buf + off + 8 * i, v[i]);
    return add_entry(w, kind, layer, NN_DT_U64, 1, n, 0, off, (size_t)n * 8, 0);
}

int kt_img_add_bytes(kt_img *w, uint32_t kind, uint32_t layer, const void *p, uint32_t n)
{
    size_t off = reserve(w, n);
    if (off == SIZE_MAX)
        return -1;
    memcpy(w->buf + off, p, n);
    return add_entry(w, kind, layer, NN_DT_BYTES, 1, n, 0, off, n, 0);
}

int kt_img_add_rope(kt_img *w, double theta, uint32_t head_dim)
{
    uint64_t f[NN_MAX_HEAD_DIM / 2];
    if (head_dim == 0 || head_dim > NN_MAX_HEAD_DIM || !(theta > 1))
        return -1;
    for (uint32_t i = 0; i < head_dim / 2; i++) {
        /* double, not long double: glibc's pow is the same correctly rounded code on
         * x86-64 and aarch64, so both convert to the same image. 53 bits of phase
         * step drift by < 2^-40 turns over 2^13 positions. */
        double turns = pow(theta, -2.0 * i / head_dim) / (2.0 * 3.14159265358979323846);
        f[i] = (uint64_t)nearbyint(ldexp(turns, 64));
    }
    return kt_img_add_u64(w, NN_T_ROPE_FREQ, NN_LAYER_NONE, f, head_dim / 2);
}

int kt_img_finish(kt_img *w, char *err, size_t errlen)
{
    if (w->finished)
        return 0;
    if (w->oom) {
        snprintf(err, errlen, "out of memory while building the image");
        return -1;
    }
    size_t dir = (w->len + 7) & ~(size_t)7;
    size_t total = dir + (size_t)w->n * NN_IMAGE_DIR_ENTRY_BYTES;
    if (grow(w, total)) {
        snprintf(err, errlen, "out of memory while building the image");
        return -1;
    }
    memcpy(w->buf + dir, w->dir, (size_t)w->n * NN_IMAGE_DIR_ENTRY_BYTES);
    w->len = total;

    uint8_t *h = w->buf;
    const nn_config *c = &w->cfg;
    memset(h, 0, NN_IMAGE_HEADER_BYTES);
    memcpy(h + NN_IMG_OFF_MAGIC, NN_IMAGE_MAGIC, 8);
    nn_wr32(h + NN_IMG_OFF_FORMAT, NN_IMAGE_FORMAT_VERSION);
    nn_wr32(h + NN_IMG_OFF_NUMERICS, w->numerics);
    nn_wr32(h + NN_IMG_OFF_HEADER_BYTES, NN_IMAGE_HEADER_BYTES);
    nn_wr32(h + NN_IMG_OFF_FLAGS, c->flags);
    nn_wr32(h + NN_IMG_OFF_DIM, c->dim);
    nn_wr32(h + NN_IMG_OFF_HIDDEN, c->hidden_dim);
    nn_wr32(h + NN_IMG_OFF_LAYERS, c->n_layers);
    nn_wr32(h + NN_IMG_OFF_HEADS, c->n_heads);
    nn_wr32(h + NN_IMG_OFF_KV_HEADS, c->n_kv_heads);
    nn_wr32(h + NN_IMG_OFF_HEAD_DIM, c->head_dim);
    nn_wr32(h + NN_IMG_OFF_VOCAB, c->vocab_size);
    nn_wr32(h + NN_IMG_OFF_MAX_SEQ, c->max_seq);
    nn_wr32(h + NN_IMG_OFF_GROUP, c->group_size);
    nn_wr32(h + NN_IMG_OFF_TOKENIZER, c->tokenizer_kind);
    nn_wr64(h + NN_IMG_OFF_ROPE_THETA, c->rope_theta_q16);
    nn_wr64(h + NN_IMG_OFF_NORM_EPS, c->norm_eps_q32);
    nn_wr32(h + NN_IMG_OFF_N_TENSORS, w->n);
    nn_wr64(h + NN_IMG_OFF_DIR, dir);
    nn_wr64(h + NN_IMG_OFF_FILE_BYTES, total);
    uint8_t fp[32];
    nn_image_fingerprint(w->buf, total, fp);
    memcpy(h + NN_IMG_OFF_FINGERPRINT, fp, 32);
    w->finished = 1;
    return 0;
}

int kt_img_write(kt_img *w, const char *path, char *err, size_t errlen)
{
    if (kt_img_finish(w, err, errlen))
        return -1;
    size_t total = w->len;

    /* Temp file beside the target, fsync, rename: never a partial image at path. */
    return kt_write_file_atomic(path, w->buf, total, err, errlen);
}
