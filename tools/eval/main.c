/*
 * kvmesh-eval: teacher-forced evaluation. Feeds a token sequence through the engine,
 * optionally writes the logits as float32, and compares them with reference logits
 * (same top-1 token, KL(p_ref || p_test) of the softmaxed rows).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvtools.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh-eval -m IMAGE --tokens FILE [--logits-out OUT.f32] [--ref REF.f32]\n"
        "\n"
        "  -m, --model IMAGE     kvmesh image (from kvmesh-convert)\n"
        "  -t, --tokens FILE     lines of 'pos input_token next_token' (the golden format);\n"
        "                        the input tokens are fed in order (teacher forcing)\n"
        "      --logits-out F    write the logits as little-endian float32 [positions][vocab]\n"
        "      --ref F           reference logits (float32 [positions][vocab]); prints JSON\n"
        "                        {\"positions\",\"same_top1\",\"mean_kld\",\"max_kld\",...}\n"
        "      --threads N       worker threads (default 1)\n"
        "      --batch N         tokens per forward block (default 16)\n"
        "      --kernels NAME    kernel path (default: best; available: %s)\n"
        "      --exit-layer E    also score the early-exit head at the input of layer E against\n"
        "                        the full model: one JSON line per confidence threshold with the\n"
        "                        fraction of positions confident enough to exit (coverage) and\n"
        "                        the top-1 agreement among them and overall\n"
        "      --thresholds L    top-1 probabilities for --exit-layer (default\n"
        "                        0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95)\n"
        "  -h, --help            this text\n"
        "\n"
        "Exit status: 0 ok, 1 bad input or failure, 2 bad usage.\n",
        nn_kernels_available());
}

static uint32_t argmax_f(const float *x, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* The residual stream at one layer's input, for every position. */
typedef struct capture {
    uint32_t layer, dim;
    int32_t *x;                 /* [positions][dim] */
} capture;

static void capture_hook(void *ctx, uint32_t layer, uint32_t pos0, uint32_t n, const int32_t *x)
{
    capture *c = ctx;
    if (layer == c->layer)
        memcpy(c->x + (size_t)pos0 * c->dim, x, (size_t)n * c->dim * 4);
}

/* Scores the exit head at c->layer against the full logits, per threshold. */
static int exit_report(nn_session *s, const capture *c, const float *full, long n, const char *thresholds)
{
    uint32_t V = s->m->cfg.vocab_size;
    int32_t *lg = malloc((size_t)V * 4), *p1 = malloc((size_t)n * 4);
    uint8_t *agree = malloc((size_t)n);
    if (!lg || !p1 || !agree)
        return -1;
    long all = 0;
    for (long p = 0; p < n; p++) {
        if (nn_session_exit_logits(s, c->layer, c->x + (size_t)p * c->dim, 1, lg))
            return -1;
        uint32_t e = nn_logits_confidence(lg, V, &p1[p], NULL);
        agree[p] = e == argmax_f(full + (size_t)p * V, V);
        all += agree[p];
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", thresholds);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double th = atof(t);
        long covered = 0, ok = 0;
        for (long p = 0; p < n; p++)
            if (p1[p] / 1073741824.0 >= th) {
                covered++;
                ok += agree[p];
            }
        printf("{\"exit_layer\":%u,\"trained_head\":%s,\"threshold\":%.3f,\"positions\":%ld,\"coverage\":%.4f,"
               "\"agreement_covered\":%.4f,\"agreement_all\":%.4f}\n",
               c->layer, c->layer < s->m->cfg.n_layers && s->m->layers[c->layer].has_exit ? "true" : "false", th, n,
               (double)covered / n, covered ? (double)ok / covered : 1.0, (double)all / n);
    }
    free(lg);
    free(p1);
    free(agree);
    return 0;
}

/* log-softmax of a row, in double. */
static void log_softmax(const float *x, uint32_t n, double *out)
{
    double m = x[0];
    for (uint32_t i = 1; i < n; i++)
        m = fmax(m, x[i]);
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += exp(x[i] - m);
    double ls = log(s) + m;
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] - ls;
}


int main(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL, *lout = NULL, *ref = NULL, *kernels = NULL;
    long threads = 1, batch = 16, exit_layer = 0;
    const char *thresholds = "0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95";
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "tokens", required_argument, 0, 't' },
        { "logits-out", required_argument, 0, 'L' }, { "ref", required_argument, 0, 'R' },
        { "threads", required_argument, 0, 'T' }, { "batch", required_argument, 0, 'B' },
        { "kernels", required_argument, 0, 'K' }, { "exit-layer", required_argument, 0, 'E' },
        { "thresholds", required_argument, 0, 'H' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tokens = optarg; break;
        case 'L': lout = optarg; break;
        case 'R': ref = optarg; break;
        case 'K': kernels = optarg; break;
        case 'T':
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 64) {
                fprintf(stderr, "kvmesh-eval: --threads must be 1..64\n");
                return 2;
            }
            break;
        case 'B':
            batch = strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 4096) {
                fprintf(stderr, "kvmesh-eval: --batch must be 1..4096\n");
                return 2;
            }
            break;
        case 'E':
            exit_layer = strtol(optarg, &end, 10);
            if (*end || exit_layer < 1) {
                fprintf(stderr, "kvmesh-eval: --exit-layer must be a layer number >= 1\n");
                return 2;
            }
            break;
        case 'H': thresholds = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !model || !tokens) {
        usage(stderr);
        return 2;
    }
    if (kernels && !nn_kernels_select(kernels)) {
        fprintf(stderr, "kvmesh-eval: kernel path '%s' is not available here (available: %s)\n", kernels,
                nn_kernels_available());
        return 2;
    }

    kt_engine e;
    kt_engine_opts eo = { .batch = (uint32_t)batch, .threads = (uint32_t)threads, .kernels = kernels,
                          .all_logits = 1 };
    if (kt_engine_open(&e, "kvmesh-eval", model, &eo))
        return 1;
    int rc = 1;
    uint32_t *tok = NULL;
    float *logits = NULL;
    capture cap = { 0 };
    nn_session *sp = &e.s;
    const nn_model *mp = e.m;
    uint32_t V = mp->cfg.vocab_size;
    long n = kt_read_tokens("kvmesh-eval", tokens, V, &tok);
    if (n < 0)
        goto out;
    if ((uint64_t)n > sp->max_seq) {
        fprintf(stderr, "kvmesh-eval: %ld positions exceed the model's context (%u)\n", n, sp->max_seq);
        goto out;
    }
    logits = malloc((size_t)n * V * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "kvmesh-eval: out of memory\n");
        goto out;
    }
    nn_status st;
    if (exit_layer && (uint32_t)exit_layer > mp->cfg.n_layers) {
        fprintf(stderr, "kvmesh-eval: --exit-layer %ld: the model has %u layers\n", exit_layer, mp->cfg.n_layers);
        rc = 2;
        goto out;
    }
    cap = (capture){ (uint32_t)exit_layer, mp->cfg.dim, exit_layer ? malloc((size_t)n * mp->cfg.dim * 4) : NULL };
    if (exit_layer && !cap.x) {
        fprintf(stderr, "kvmesh-eval: out of memory\n");
        goto out;
    }
    if (exit_layer)
        nn_session_set_hook(sp, capture_hook, &cap);
    for (long p = 0; p < n; p += batch) {
        uint32_t b = (uint32_t)(n - p < batch ? n - p : batch);
        const int32_t *lq;
        if ((st = nn_session_forward(sp, tok + p, b, &lq))) {
            fprintf(stderr, "kvmesh-eval: forward at %ld: %s\n", p, nn_strerror(st));
            goto out;
        }
        for (size_t i = 0; i < (size_t)b * V; i++)
            logits[(size_t)p * V + i] = (float)(lq[i] / 65536.0);
    }
    rc = 0;
    if (exit_layer && exit_report(sp, &cap, logits, n, thresholds))
        rc = 1;

    if (lout) {
        FILE *f = fopen(lout, "wb");
        if (!f || fwrite(logits, sizeof *logits, (size_t)n * V, f) != (size_t)n * V || fclose(f)) {
            fprintf(stderr, "kvmesh-eval: cannot write %s: %s\n", lout, strerror(errno));
            rc = 1;
        }
    }
    if (ref && !rc) {
        const uint8_t *rd;
        size_t rsize;
        if (kt_map(ref, &rd, &rsize)) {
            fprintf(stderr, "kvmesh-eval: cannot read %s: %s\n", ref, strerror(errno));
            rc = 1;
            goto out;
        }
        if (rsize != (size_t)n * V * 4) {
            fprintf(stderr, "kvmesh-eval: %s has %zu bytes; %ld positions x %u vocab x 4 = %zu expected\n", ref,
                    rsize, n, V, (size_t)n * V * 4);
            kt_unmap(rd, rsize);
            rc = 1;
            goto out;
        }
        double *lp = malloc(V * sizeof *lp), *lq = malloc(V * sizeof *lq);
        float *rrow = malloc(V * sizeof *rrow);
        if (!lp || !lq || !rrow) {
            fprintf(stderr, "kvmesh-eval: out of memory\n");
            free(lp);
            free(lq);
            free(rrow);
            kt_unmap(rd, rsize);
            rc = 1;
            goto out;
        }
        long same = 0;
        double sum_kld = 0, max_kld = 0, max_diff = 0;
        for (long p = 0; p < n; p++) {
            memcpy(rrow, rd + (size_t)p * V * 4, V * 4);
            const float *t = logits + (size_t)p * V;
            same += argmax_f(rrow, V) == argmax_f(t, V);
            log_softmax(rrow, V, lp);
            log_softmax(t, V, lq);
            double kl = 0;
            for (uint32_t i = 0; i < V; i++) {
                kl += exp(lp[i]) * (lp[i] - lq[i]);
                max_diff = fmax(max_diff, fabs((double)rrow[i] - t[i]));
            }
            sum_kld += kl;
            max_kld = fmax(max_kld, kl);
        }
        printf("{\"positions\":%ld,\"same_top1\":%.6f,\"mean_kld\":%.8f,\"max_kld\":%.8f,\"max_abs_logit_diff\":%.6f}\n",
               n, (double)same / n, sum_kld / n, max_kld, max_diff);
        free(lp);
        free(lq);
        free(rrow);
        kt_unmap(rd, rsize);
    }
out:
    free(logits);
    free(cap.x);
    free(tok);
    kt_engine_close(&e);
    return rc;
}
