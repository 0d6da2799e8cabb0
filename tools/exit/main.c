/*
 * kvmesh-exit-train: trains early-exit heads on text the model generates itself, and
 * writes a copy of the image with the heads inside (NN_T_EXIT_PROJ).
 *
 * A head at layer e maps the residual stream x_e to x_e + A x_e, which then goes through
 * the model's own final norm and classifier (a "tuned lens"). A is fitted by ridge
 * regression of the final residual x_L on x_e over every generated position:
 *   A^T = (X^T X + lambda I)^-1 X^T (X_L - X)
 * in double precision (tools may use floating point; the engine runs the head in
 * integers like every other matrix).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvtools.h"

typedef struct fit {
    uint32_t layer, dim;
    double  *g;       /* [dim][dim] X^T X */
    double  *c;       /* [dim][dim] X^T (X_L - X) */
    int32_t *pending; /* [max_pos][dim]: x_e rows waiting for their x_L */
    float   *xe;      /* [rows][dim]: every x_e, for the KL refinement */
} fit;

typedef struct trainer {
    fit      f[NN_MAX_LAYERS];
    uint32_t n, dim, max_pos;
    uint64_t rows, cap;
    uint32_t last;    /* n_layers: the hook's final call */
    float   *xl;      /* [rows][dim]: every final residual */
} trainer;

static void hook(void *ctx, uint32_t layer, uint32_t pos0, uint32_t n, const int32_t *x)
{
    trainer *t = ctx;
    uint32_t d = t->dim;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->f[i].layer == layer)
            memcpy(t->f[i].pending + (size_t)pos0 * d, x, (size_t)n * d * 4);
    if (layer != t->last)
        return;
    /* The final residual is known: accumulate every head's normal equations. */
    double *xe = malloc(d * sizeof *xe), *tg = malloc(d * sizeof *tg);
    for (uint32_t r = 0; r < n && t->rows < t->cap; r++) {
        const int32_t *xl = x + (size_t)r * d;
        for (uint32_t a = 0; a < d; a++)
            t->xl[t->rows * d + a] = (float)(xl[a] / 65536.0);
        for (uint32_t i = 0; i < t->n; i++) {
            fit *f = &t->f[i];
            const int32_t *p = f->pending + (size_t)(pos0 + r) * d;
            for (uint32_t a = 0; a < d; a++)
                f->xe[t->rows * d + a] = (float)(p[a] / 65536.0);
            for (uint32_t a = 0; a < d; a++) {
                xe[a] = p[a] / 65536.0;
                tg[a] = (xl[a] - p[a]) / 65536.0;
            }
            for (uint32_t a = 0; a < d; a++) {
                double *ga = f->g + (size_t)a * d, *ca = f->c + (size_t)a * d;
                for (uint32_t b = 0; b < d; b++) {
                    ga[b] += xe[a] * xe[b];
                    ca[b] += xe[a] * tg[b];
                }
            }
        }
        t->rows++;
    }
    free(xe);
    free(tg);
}

/* Solves (G + lambda I) Y = C for Y ([d][d]) in place of C, by Cholesky. 0 or -1. */
static int ridge_solve(double *g, double *c, uint32_t d)
{
    double tr = 0;
    for (uint32_t i = 0; i < d; i++)
        tr += g[(size_t)i * d + i];
    double lambda = 1e-3 * tr / d + 1e-9;
    for (uint32_t i = 0; i < d; i++)
        g[(size_t)i * d + i] += lambda;
    for (uint32_t j = 0; j < d; j++) {           /* G = L L^T, L in the lower triangle */
        double s = g[(size_t)j * d + j];
        for (uint32_t k = 0; k < j; k++)
            s -= g[(size_t)j * d + k] * g[(size_t)j * d + k];
        if (s <= 0)
            return -1;
        double l = sqrt(s);
        g[(size_t)j * d + j] = l;
        for (uint32_t i = j + 1; i < d; i++) {
            double v = g[(size_t)i * d + j];
            for (uint32_t k = 0; k < j; k++)
                v -= g[(size_t)i * d + k] * g[(size_t)j * d + k];
            g[(size_t)i * d + j] = v / l;
        }
    }
    for (uint32_t col = 0; col < d; col++) {     /* forward then back substitution */
        for (uint32_t i = 0; i < d; i++) {
            double v = c[(size_t)i * d + col];
            for (uint32_t k = 0; k < i; k++)
                v -= g[(size_t)i * d + k] * c[(size_t)k * d + col];
            c[(size_t)i * d + col] = v / g[(size_t)i * d + i];
        }
        for (uint32_t i = d; i-- > 0;) {
            double v = c[(size_t)i * d + col];
            for (uint32_t k = i + 1; k < d; k++)
                v -= g[(size_t)k * d + i] * c[(size_t)k * d + col];
            c[(size_t)i * d + col] = v / g[(size_t)i * d + i];
        }
    }
    return 0;
}

/* The model's final norm and classifier in float, for the KL refinement. */
typedef struct head_ref {
    uint32_t d, V;
    double   eps;
    float   *gain;   /* [d] */
    float   *w;      /* [V][d] */
} head_ref;

static float *dequant(const nn_q8_mat *m)
{
    float *w = malloc((size_t)m->rows * m->cols * sizeof *w);
    for (uint32_t r = 0; w && r < m->rows; r++)
        for (uint32_t i = 0; i < m->cols; i++)
            w[(size_t)r * m->cols + i] = (float)ldexp((double)m->q[(size_t)r * m->cols + i] *
                                                      m->m[(size_t)r * m->ngroups + i / m->group], -m->exp);
    return w;
}

/* logits = W (gain * h / rms(h)); returns rms. */
static double head_forward(const head_ref *h, const double *x, double *n, double *z)
{
    double ss = 0;
    for (uint32_t a = 0; a < h->d; a++)
        ss += x[a] * x[a];
    double r = sqrt(ss / h->d + h->eps);
    for (uint32_t a = 0; a < h->d; a++)
        n[a] = h->gain[a] * x[a] / r;
    for (uint32_t v = 0; v < h->V; v++) {
        double s = 0;
        const float *wv = h->w + (size_t)v * h->d;
        for (uint32_t a = 0; a < h->d; a++)
            s += wv[a] * n[a];
        z[v] = s;
    }
    return r;
}

static void softmax(double *z, uint32_t V)
{
    double mx = z[0], s = 0;
    for (uint32_t v = 1; v < V; v++)
        mx = fmax(mx, z[v]);
    for (uint32_t v = 0; v < V; v++)
        s += (z[v] = exp(z[v] - mx));
    for (uint32_t v = 0; v < V; v++)
        z[v] /= s;
}

/*
 * Refines A (row-major [d][d], out = x + A x) by minimising KL(p_full || p_exit) with
 * Adam over the collected rows, starting from the least-squares fit.
 */
static void kl_refine(const head_ref *h, const float *xe, const float *xl, uint64_t rows, double *A, int epochs,
                      double lr, int quiet, uint32_t layer)
{
    uint32_t d = h->d, V = h->V;
    double *m1 = calloc((size_t)d * d, sizeof *m1), *m2 = calloc((size_t)d * d, sizeof *m2);
    double *grad = calloc((size_t)d * d, sizeof *grad);
    double *x = malloc(d * sizeof *x), *xp = malloc(d * sizeof *xp), *n = malloc(d * sizeof *n);
    double *p = malloc(V * sizeof *p), *q = malloc(V * sizeof *q), *dn = malloc(d * sizeof *dn);
    double *dx = malloc(d * sizeof *dx);
    const uint32_t batch = 64;
    long step = 0;
    for (int ep = 0; ep < epochs; ep++) {
        double loss = 0;
        for (uint64_t b0 = 0; b0 < rows; b0 += batch) {
            memset(grad, 0, (size_t)d * d * sizeof *grad);
            uint64_t b1 = b0 + batch < rows ? b0 + batch : rows;
            for (uint64_t r = b0; r < b1; r++) {
                for (uint32_t a = 0; a < d; a++)
                    x[a] = xl[r * d + a];
                head_forward(h, x, n, p);
                softmax(p, V);
                for (uint32_t a = 0; a < d; a++)
                    x[a] = xe[r * d + a];
                for (uint32_t i = 0; i < d; i++) {
                    double s = x[i];
                    for (uint32_t j = 0; j < d; j++)
                        s += A[(size_t)i * d + j] * x[j];
                    xp[i] = s;
                }
                double rr = head_forward(h, xp, n, q);
                softmax(q, V);
                for (uint32_t v = 0; v < V; v++) {
                    if (p[v] > 0)
                        loss += p[v] * (log(p[v]) - log(q[v] + 1e-30));
                    q[v] -= p[v];                       /* dL/dz */
                }
                for (uint32_t a = 0; a < d; a++) {
                    double s = 0;
                    for (uint32_t v = 0; v < V; v++)
                        s += h->w[(size_t)v * d + a] * q[v];
                    dn[a] = s;
                }
                /* n = g x / r: dx = g dn / r - x (sum g dn x) / (d r^3) */
                double dot = 0;
                for (uint32_t a = 0; a < d; a++)
                    dot += h->gain[a] * dn[a] * xp[a];
                for (uint32_t a = 0; a < d; a++)
                    dx[a] = h->gain[a] * dn[a] / rr - xp[a] * dot / (d * rr * rr * rr);
                for (uint32_t i = 0; i < d; i++)
                    for (uint32_t j = 0; j < d; j++)
                        grad[(size_t)i * d + j] += dx[i] * x[j];
            }
            step++;
            double b1c = 1 - pow(0.9, (double)step), b2c = 1 - pow(0.999, (double)step);
            for (size_t k = 0; k < (size_t)d * d; k++) {
                double g = grad[k] / (double)(b1 - b0);
                m1[k] = 0.9 * m1[k] + 0.1 * g;
                m2[k] = 0.999 * m2[k] + 0.001 * g * g;
                A[k] -= lr * (m1[k] / b1c) / (sqrt(m2[k] / b2c) + 1e-8);
            }
        }
        if (!quiet)
            fprintf(stderr, "kvmesh-exit-train: layer %u epoch %d: mean KL %.5f\n", layer, ep + 1, loss / rows);
    }
    free(m1); free(m2); free(grad); free(x); free(xp); free(n); free(p); free(q); free(dn); free(dx);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh-exit-train -m IMAGE --layers L[,L...] -o OUT.kvm [options]\n"
        "\n"
        "Trains early-exit heads (x + A x before the final norm and classifier) at the input\n"
        "of the given layers, on text the model generates itself, and writes a copy of IMAGE\n"
        "with the heads inside. Score them with kvmesh-eval --exit-layer.\n"
        "\n"
        "  -m, --model IMAGE   the image to extend\n"
        "      --layers L      exit layers, 1 .. n_layers-1 (comma-separated)\n"
        "  -o, --output FILE   the new image (written atomically)\n"
        "      --tokens N      generated positions to fit on (default 20000)\n"
        "      --seed S        sampling seed (default 1); temperature 1.0, top-p 0.95\n"
        "      --threads N     worker threads (default 1)\n"
        "      --epochs N      KL refinement passes after the least-squares fit (default 8;\n"
        "                      0 = least squares only). Costs vocab x dim per position.\n"
        "  -q, --quiet         no progress on stderr\n"
        "  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
    const char *model = NULL, *layers = NULL, *out = NULL;
    unsigned long want = 20000, seed = 1, threads = 1, epochs = 8;
    int quiet = 0;
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "layers", required_argument, 0, 'L' },
        { "output", required_argument, 0, 'o' }, { "tokens", required_argument, 0, 'n' },
        { "seed", required_argument, 0, 's' }, { "threads", required_argument, 0, 'T' },
        { "epochs", required_argument, 0, 'E' },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:o:qh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': model = optarg; break;
        case 'L': layers = optarg; break;
        case 'o': out = optarg; break;
        case 'n': want = strtoul(optarg, &end, 10); break;
        case 's': seed = strtoul(optarg, &end, 10); break;
        case 'T': threads = strtoul(optarg, &end, 10); break;
        case 'E': epochs = strtoul(optarg, &end, 10); break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "kvmesh-exit-train: option -%c needs a number\n", c);
            return 2;
        }
    }
    if (!model || !layers || !out || optind != argc || want == 0 || threads == 0 || threads > 64) {
        usage(stderr);
        return 2;
    }
    kt_engine e;
    kt_engine_opts eo = { .batch = 1, .threads = (uint32_t)threads, .sampler = 1, .temp_q16 = 65536,
                          .topp_q16 = 62259, .seed = seed };
    if (kt_engine_open(&e, "kvmesh-exit-train", model, &eo))
        return 1;
    const nn_model *mp = e.m;
    nn_status st;
    int rc = 1;
    uint32_t L = mp->cfg.n_layers, d = mp->cfg.dim;
    static trainer t;
    t.dim = d;
    t.last = L;
    for (const char *p = layers; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v == 0 || v >= L || t.n >= NN_MAX_LAYERS || (*end && *end != ',')) {
            fprintf(stderr, "kvmesh-exit-train: --layers needs layer numbers in 1..%u, not '%s'\n", L - 1, layers);
            rc = 2;
            goto out;
        }
        t.f[t.n].layer = (uint32_t)v;
        t.f[t.n].dim = d;
        t.n++;
        p = *end ? end + 1 : end;
    }
    uint32_t ctx = e.s.max_seq;
    t.cap = want;
    t.xl = malloc((size_t)want * d * sizeof *t.xl);
    for (uint32_t i = 0; i < t.n; i++) {
        t.f[i].g = calloc((size_t)d * d, sizeof(double));
        t.f[i].c = calloc((size_t)d * d, sizeof(double));
        t.f[i].pending = malloc((size_t)ctx * d * 4);
        t.f[i].xe = malloc((size_t)want * d * sizeof *t.f[i].xe);
        if (!t.f[i].g || !t.f[i].c || !t.f[i].pending || !t.f[i].xe || !t.xl) {
            fprintf(stderr, "kvmesh-exit-train: out of memory\n");
            goto out;
        }
    }
    nn_session_set_hook(&e.s, hook, &t);
    /* Generate from BOS until the context ends or the model ends the text. */
    uint32_t seqs = 0;
    while (t.rows < want) {
        nn_session_truncate(&e.s, 0);
        uint32_t tok = mp->tok.bos_id;
        const int32_t *lg;
        while (t.rows < want && e.s.n_pos < ctx) {
            if ((st = nn_session_forward(&e.s, &tok, 1, &lg))) {
                fprintf(stderr, "kvmesh-exit-train: %s\n", nn_strerror(st));
                goto out;
            }
            tok = nn_sampler_sample(&e.sp, lg);
            if (tok == mp->tok.bos_id || tok == mp->tok.eos_id)
                break;
        }
        seqs++;
        if (!quiet)
            kt_progress("kvmesh-exit-train: positions", t.rows < want ? t.rows : want, want);
    }
    nn_session_set_hook(&e.s, NULL, NULL);
    if (!quiet)
        fprintf(stderr, "kvmesh-exit-train: %llu positions from %u generated texts\n", (unsigned long long)t.rows, seqs);

    /* Fit, then write the image with the heads. */
    kt_img w;
    kt_img_init(&w, &e.img.cfg);
    w.numerics = e.img.id.numerics_version;
    rc = 0;
    for (uint32_t i = 0; i < e.img.n_tensors && !rc; i++) {
        nn_tensor tt;
        const uint8_t *de = e.img.dir + (size_t)i * NN_IMAGE_DIR_ENTRY_BYTES;
        nn_image_tensor(&e.img, nn_rd32(de), nn_rd32(de + 4), &tt);
        int replaced = 0;
        for (uint32_t k = 0; k < t.n; k++)
            replaced |= tt.kind == NN_T_EXIT_PROJ && tt.layer == t.f[k].layer;
        if (!replaced)
            rc = kt_img_add_tensor(&w, &tt);
    }
    float *af = malloc((size_t)d * d * sizeof *af);
    double *A = malloc((size_t)d * d * sizeof *A);
    head_ref hr = { d, mp->cfg.vocab_size, (double)mp->cfg.norm_eps_q32 / 4294967296.0, malloc(d * sizeof(float)),
                    dequant(&mp->cls) };
    for (uint32_t i = 0; i < d; i++)
        hr.gain[i] = (float)ldexp((double)mp->final_norm.v[i], -mp->final_norm.exp);
    for (uint32_t k = 0; k < t.n && !rc; k++) {
        fit *f = &t.f[k];
        if (ridge_solve(f->g, f->c, d)) {
            fprintf(stderr, "kvmesh-exit-train: layer %u: the hidden states are degenerate\n", f->layer);
            rc = 1;
            break;
        }
        /* c now holds A^T: A[i][j] = c[j][i]; the engine computes out_i = sum_j A[i][j] x_j. */
        for (uint32_t i = 0; i < d; i++)
            for (uint32_t j = 0; j < d; j++)
                A[(size_t)i * d + j] = f->c[(size_t)j * d + i];
        if (epochs)
            kl_refine(&hr, f->xe, t.xl, t.rows, A, (int)epochs, 1e-3, quiet, f->layer);
        for (size_t i = 0; i < (size_t)d * d; i++)
            af[i] = (float)A[i];
        rc = kt_img_add_q8(&w, NN_T_EXIT_PROJ, f->layer, af, d, d);
    }
    free(A);
    free(hr.gain);
    free(hr.w);
    char err[256];
    if (!rc && kt_img_write(&w, out, err, sizeof err)) {
        fprintf(stderr, "kvmesh-exit-train: %s\n", err);
        rc = 1;
    } else if (rc) {
        fprintf(stderr, "kvmesh-exit-train: cannot build the image\n");
    } else if (!quiet) {
        fprintf(stderr, "kvmesh-exit-train: wrote %s with heads at layers %s\n", out, layers);
    }
    free(af);
    kt_img_free(&w);
out:
    for (uint32_t i = 0; i < t.n; i++) {
        free(t.f[i].g);
        free(t.f[i].c);
        free(t.f[i].pending);
        free(t.f[i].xe);
    }
    free(t.xl);
    kt_engine_close(&e);
    return rc == 2 ? 2 : rc ? 1 : 0;
}
