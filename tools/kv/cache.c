/*
 * kvmesh-kv cache subcommands: inspect, verify and convert KV cache files, and measure a
 * codec's size and quality on a real model (quality).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"
#include "kvtools.h"

/* ---- shared set-up ------------------------------------------------------------------------ */

static int engine_open(kt_engine *e, const char *path, uint32_t ctx, uint32_t threads)
{
    kt_engine_opts o = { .ctx = ctx, .threads = threads, .kv_work = 1 };
    return kt_engine_open(e, "kvmesh-kv", path, &o);
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    const uint8_t *d;
    if (kt_map(path, &d, len)) {
        fprintf(stderr, "kvmesh-kv: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    *buf = malloc(*len ? *len : 1);
    if (*buf)
        memcpy(*buf, d, *len);
    kt_unmap(d, *len);
    return *buf ? 0 : -1;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static int parse_stream(const char *path, const uint8_t *buf, size_t len, nn_kv_info *in)
{
    nn_status st = nn_kv_parse(buf, len, in);
    if (st) {
        fprintf(stderr, "kvmesh-kv: %s: not a valid KV cache: %s\n", path, nn_strerror(st));
        return -1;
    }
    return 0;
}

/* ---- inspect --------------------------------------------------------------------------- */

int kv_cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "usage: kvmesh-kv inspect FILE\n\nPrints a KV cache file's header as JSON: model identity, layer and\n"
                   "position ranges, codec, sizes, bits per value. Checks the digest.\n");
        return argc == 2 ? 0 : 2;
    }
    uint8_t *buf;
    size_t len;
    nn_kv_info in;
    if (read_file(argv[1], &buf, &len) || parse_stream(argv[1], buf, len, &in))
        return 1;
    char fp[65], pid[65];
    hex(in.id.fingerprint, 32, fp);
    hex(in.prefix_id, 32, pid);
    uint32_t bpv = nn_kv_bits_per_value_x1000(&in);
    uint64_t values = (uint64_t)(in.r.layer1 - in.r.layer0) * (in.r.pos1 - in.r.pos0) * in.n_kv_heads * in.head_dim * 2;
    printf("{\"file\":\"%s\",\"bytes\":%zu,\"model\":\"%s\",\"numerics\":%u,\"codec\":\"%s\"", argv[1], len, fp,
           in.id.numerics_version, nn_kv_codec_name(in.codec));
    if (in.codec == NN_KV_LOSSY)
        printf(",\"k_bits\":%u,\"v_bits\":%u,\"k_group\":%u", in.k_bits, in.v_bits, in.k_group);
    printf(",\"layers\":[%u,%u],\"positions\":[%u,%u],\"n_layers\":%u,\"n_kv_heads\":%u,\"head_dim\":%u,"
           "\"block\":%u,\"prefix_id\":\"%s\",\"hidden_layers\":%u,\"payload_bytes\":%llu,\"values\":%llu,"
           "\"bits_per_value\":%.3f,\"vs_fp16\":%.2f}\n",
           in.r.layer0, in.r.layer1, in.r.pos0, in.r.pos1, in.n_layers, in.n_kv_heads, in.head_dim, in.block, pid,
           in.n_hidden, (unsigned long long)in.payload_bytes, (unsigned long long)values, bpv / 1000.0,
           bpv ? 16000.0 / bpv : 0.0);
    free(buf);
    return 0;
}

/* ---- verify ------------------------------------------------------------------------------ */

int kv_cmd_verify(int argc, char **argv)
{
    const char *model = NULL;
    static const struct option opts[] = { { "model", required_argument, 0, 'm' }, { "help", no_argument, 0, 'h' },
                                          { 0, 0, 0, 0 } };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        if (c == 'm')
            model = optarg;
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kvmesh-kv verify -m IMAGE FILE\n\nChecks that a KV cache file belongs to IMAGE: digest, model\n"
                    "identity, shapes, prefix id recomputed from its tokens, and a full decode.\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!model || optind + 1 != argc) {
        fprintf(stderr, "kvmesh-kv verify: -m IMAGE and one FILE are required\n");
        return 2;
    }
    const char *path = argv[optind];
    uint8_t *buf;
    size_t len;
    nn_kv_info in;
    if (read_file(path, &buf, &len) || parse_stream(path, buf, len, &in))
        return 1;
    kt_engine e;
    if (engine_open(&e, model, in.r.pos1, 1))
        return 1;
    int rc = 1;
    uint32_t *tok = malloc((size_t)in.r.pos1 * sizeof *tok);
    for (uint32_t i = 0; tok && i < in.r.pos1; i++)
        tok[i] = nn_rd32(in.tokens + 4 * (size_t)i);
    uint8_t want[32] = { 0 };
    uint32_t nb = in.r.pos1 / in.block;
    uint8_t (*ids)[32] = nb ? malloc((size_t)nb * 32) : NULL;
    if (nb && ids) {
        nn_kv_prefix_ids(&e.img.id, in.block, tok, in.r.pos1, ids, nb);
        memcpy(want, ids[nb - 1], 32);
    }
    uint32_t reused = 0;
    nn_status st = NN_OK;
    char fp_file[65], fp_img[65];
    hex(in.id.fingerprint, 32, fp_file);
    hex(e.img.id.fingerprint, 32, fp_img);
    if (memcmp(in.id.fingerprint, e.img.id.fingerprint, 32) || in.id.numerics_version != e.img.id.numerics_version) {
        fprintf(stderr, "kvmesh-kv verify: %s belongs to another model (%s, numerics %u), not %s (%s, numerics %u)\n",
                path, fp_file, in.id.numerics_version, model, fp_img, e.img.id.numerics_version);
    } else if (in.r.pos0 != 0 || in.r.layer0 != 0 || in.r.layer1 != in.n_layers) {
        fprintf(stderr, "kvmesh-kv verify: %s holds a partial range; only whole-context caches are verified\n", path);
    } else if (memcmp(want, in.prefix_id, 32) != 0) {
        fprintf(stderr, "kvmesh-kv verify: %s: prefix id does not match its tokens for this model\n", path);
    } else if ((st = nn_kv_import(&e.s, buf, len, tok, in.r.pos1, NULL, &e.w, &reused)) || reused != in.r.pos1) {
        fprintf(stderr, "kvmesh-kv verify: %s: %s\n", path, st ? nn_strerror(st) : "did not decode completely");
    } else {
        printf("%s: ok: %u positions, %u layers, codec %s, matches %s\n", path, in.r.pos1, in.n_layers,
               nn_kv_codec_name(in.codec), model);
        rc = 0;
    }
    free(ids);
    free(tok);
    free(buf);
    kt_engine_close(&e);
    return rc;
}

/* ---- convert ------------------------------------------------------------------------------- */

static int parse_codec_opt(const char *s, nn_kv_opts *o)
{
    if (nn_kv_parse_codec(s, o) != NN_OK) {
        fprintf(stderr, "kvmesh-kv: unknown codec '%s' (raw, lossless, or k<bits>v<bits>[g<positions>], "
                        "e.g. k3v2, k2v2g32)\n", s);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
    char err[512];
    if (kt_write_file_atomic(path, buf, len, err, sizeof err)) {
        fprintf(stderr, "kvmesh-kv: %s\n", err);
        return -1;
    }
    return 0;
}

int kv_cmd_convert(int argc, char **argv)
{
    const char *model = NULL, *codec = NULL;
    static const struct option opts[] = { { "model", required_argument, 0, 'm' }, { "codec", required_argument, 0, 'c' },
                                          { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
        if (c == 'm')
            model = optarg;
        else if (c == 'c')
            codec = optarg;
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kvmesh-kv convert -m IMAGE --codec CODEC IN OUT\n\nRe-encodes a KV cache file: raw, lossless, or\n"
                    "lossy k<bits>v<bits>[g<positions>]. The output is written atomically.\n");
            return c == 'h' ? 0 : 2;
        }
    }
    nn_kv_opts ko;
    if (!model || !codec || optind + 2 != argc) {
        fprintf(stderr, "kvmesh-kv convert: -m IMAGE, --codec and IN OUT are required\n");
        return 2;
    }
    if (parse_codec_opt(codec, &ko))
        return 2;
    uint8_t *buf;
    size_t len;
    nn_kv_info in;
    if (read_file(argv[optind], &buf, &len) || parse_stream(argv[optind], buf, len, &in))
        return 1;
    kt_engine e;
    if (engine_open(&e, model, in.r.pos1, 1))
        return 1;
    uint32_t *tok = malloc((size_t)in.r.pos1 * sizeof *tok);
    for (uint32_t i = 0; tok && i < in.r.pos1; i++)
        tok[i] = nn_rd32(in.tokens + 4 * (size_t)i);
    uint32_t reused;
    nn_status st = nn_kv_import(&e.s, buf, len, tok, in.r.pos1, NULL, &e.w, &reused);
    int rc = 1;
    if (st || reused != in.r.pos1) {
        fprintf(stderr, "kvmesh-kv convert: %s: %s\n", argv[optind], st ? nn_strerror(st) : "partial");
    } else {
        nn_kv_range r = { 0, e.m->cfg.n_layers, 0, in.r.pos1 };
        size_t cap = nn_kv_export_bound(e.m, &r, 0), olen;
        uint8_t *out = malloc(cap);
        if (out && !(st = nn_kv_export(&e.s, &r, tok, &ko, NULL, &e.w, out, cap, &olen)) &&
            !write_file(argv[optind + 1], out, olen)) {
            fprintf(stderr, "kvmesh-kv convert: %s (%zu bytes, %s) -> %s (%zu bytes, %s)\n", argv[optind], len,
                    nn_kv_codec_name(in.codec), argv[optind + 1], olen, codec);
            rc = 0;
        } else if (st) {
            fprintf(stderr, "kvmesh-kv convert: %s\n", nn_strerror(st));
        }
        free(out);
    }
    free(tok);
    free(buf);
    kt_engine_close(&e);
    return rc;
}

/* ---- quality ----------------------------------------------------------------------------------- */

/* Softmax statistics between two Q16 logit rows. */
static void compare_rows(const int32_t *ref, const int32_t *test, uint32_t V, int *same, double *kl)
{
    double mr = -INFINITY, mt = -INFINITY;
    uint32_t ar = 0, at = 0;
    for (uint32_t i = 0; i < V; i++) {
        if (ref[i] > ref[ar])
            ar = i;
        if (test[i] > test[at])
            at = i;
        mr = fmax(mr, ref[i] / 65536.0);
        mt = fmax(mt, test[i] / 65536.0);
    }
    double sr = 0, st = 0;
    for (uint32_t i = 0; i < V; i++) {
        sr += exp(ref[i] / 65536.0 - mr);
        st += exp(test[i] / 65536.0 - mt);
    }
    double lsr = log(sr) + mr, lst = log(st) + mt, k = 0;
    for (uint32_t i = 0; i < V; i++) {
        double lp = ref[i] / 65536.0 - lsr, lq = test[i] / 65536.0 - lst;
        k += exp(lp) * (lp - lq);
    }
    *same = ar == at;
    *kl = k;
}

int kv_cmd_quality(int argc, char **argv)
{
    const char *model = NULL, *tokfile = NULL;
    uint32_t prefix = 0, cont = 64;
    char *codecs[16];
    int n_codecs = 0;
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "tokens", required_argument, 0, 't' },
        { "prefix", required_argument, 0, 'p' }, { "continue", required_argument, 0, 'n' },
        { "codec", required_argument, 0, 'c' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:p:n:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tokfile = optarg; break;
        case 'p': prefix = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': cont = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c':
            if (n_codecs < 16)
                codecs[n_codecs++] = optarg;
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kvmesh-kv quality -m IMAGE --tokens FILE [--prefix N] [--continue M] --codec C ...\n\n"
                    "Computes the first N input tokens of FILE (golden 'pos in next' format; default all),\n"
                    "continues greedily for M tokens (default 64), exports the N positions with each\n"
                    "codec, imports them into a fresh session and teacher-forces the continuation. Prints one JSON line per codec: bytes, bits per value, ratio against\n"
                    "fp16 and against the raw int16 cache, same_top1 and mean/max KL divergence of the\n"
                    "continuation against the uncompressed session.\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!model || !tokfile || n_codecs == 0 || optind != argc) {
        fprintf(stderr, "kvmesh-kv quality: -m IMAGE, --tokens FILE and at least one --codec are required\n");
        return 2;
    }
    kt_engine ref, imp;
    if (engine_open(&ref, model, 0, 1))
        return 1;
    uint32_t *tok;
    long nt = kt_read_tokens("kvmesh-kv quality", tokfile, ref.m->cfg.vocab_size, &tok);
    if (nt < 0)
        return 1;
    uint32_t n = (uint32_t)nt;
    if (prefix == 0 || prefix > n)
        prefix = n;
    uint32_t V = ref.m->cfg.vocab_size;
    if (prefix + cont + 1 > ref.s.max_seq)
        cont = ref.s.max_seq - prefix - 1;
    /* Reference: the prefix, then a greedy continuation of cont tokens; lref[i] are the
     * logits after feeding continuation token i (at position prefix + i). */
    int32_t *lref = malloc((size_t)cont * V * 4);
    tok = realloc(tok, (size_t)(prefix + cont + 1) * sizeof *tok);
    const int32_t *lg;
    nn_status st = nn_session_forward(&ref.s, tok, prefix, &lg);
    for (uint32_t i = 0; !st && i < cont; i++) {
        tok[prefix + i] = nn_argmax_i32(lg, V);
        if ((st = nn_session_forward(&ref.s, &tok[prefix + i], 1, &lg)))
            break;
        memcpy(lref + (size_t)i * V, lg, (size_t)V * 4);
    }
    if (st) {
        fprintf(stderr, "kvmesh-kv quality: %s\n", nn_strerror(st));
        return 1;
    }
    /* Export [0, prefix) of the reference, import it into a fresh session, continue. */
    if (engine_open(&imp, model, 0, 1))
        return 1;
    nn_kv_range r = { 0, ref.m->cfg.n_layers, 0, prefix };
    size_t bound = nn_kv_export_bound(ref.m, &r, 0);
    uint8_t *buf = malloc(bound);
    int rc = 0;
    for (int k = 0; k < n_codecs; k++) {
        nn_kv_opts ko;
        if (parse_codec_opt(codecs[k], &ko)) {
            rc = 2;
            continue;
        }
        size_t len;
        uint32_t reused;
        nn_session_truncate(&imp.s, 0);
        if ((st = nn_kv_export(&ref.s, &r, tok, &ko, NULL, &ref.w, buf, bound, &len)) ||
            (st = nn_kv_import(&imp.s, buf, len, tok, prefix, NULL, &imp.w, &reused))) {
            fprintf(stderr, "kvmesh-kv quality: %s: %s\n", codecs[k], nn_strerror(st));
            rc = 1;
            continue;
        }
        int same = 0, s1;
        double sum = 0, mx = 0, kl;
        for (uint32_t i = 0; i < cont; i++) {
            if ((st = nn_session_forward(&imp.s, &tok[prefix + i], 1, &lg)))
                break;
            compare_rows(lref + (size_t)i * V, lg, V, &s1, &kl);
            same += s1;
            sum += kl;
            mx = fmax(mx, kl);
        }
        nn_kv_info in;
        nn_kv_parse(buf, len, &in);
        uint32_t bpv = nn_kv_bits_per_value_x1000(&in);
        uint64_t raw = (uint64_t)ref.m->cfg.n_layers * prefix * (ref.m->kv_dim * 4 + ref.m->cfg.n_kv_heads * 2);
        printf("{\"codec\":\"%s\",\"positions\":%u,\"continuation\":%u,\"bytes\":%zu,\"bits_per_value\":%.3f,"
               "\"x_vs_fp16\":%.2f,\"x_vs_raw\":%.2f,\"same_top1\":%.4f,\"mean_kld\":%.6f,\"max_kld\":%.6f}\n",
               codecs[k], prefix, cont, len, bpv / 1000.0, bpv ? 16000.0 / bpv : 0, (double)raw / len,
               (double)same / cont, sum / cont, mx);
        fflush(stdout);
    }
    free(buf);
    free(lref);
    free(tok);
    kt_engine_close(&imp);
    kt_engine_close(&ref);
    return rc;
}

/* ---- calibrate (cross-model reuse) ------------------------------------------------------ */

typedef struct trial {
    uint8_t  rec[NN_MAX_LAYERS];
    double   same, kld, ms;
} trial;

/* Imports the base's stream into the sibling with a recompute set, continues, compares. */
static int run_trial(kt_engine *sib, const uint8_t *buf, size_t len, const uint32_t *tok, uint32_t prefix,
                     uint32_t cont, const int32_t *lref, int pipeline, trial *t)
{
    uint32_t V = sib->m->cfg.vocab_size, reused;
    nn_kv_import_opts io = { .other_model = 1, .recompute = t->rec, .pipeline = pipeline };
    nn_session_truncate(&sib->s, 0);
    double t0 = kv_now_s();
    nn_status st = nn_kv_import(&sib->s, buf, len, tok, prefix, &io, &sib->w, &reused);
    t->ms = (kv_now_s() - t0) * 1e3;
    if (st || reused != prefix) {
        fprintf(stderr, "kvmesh-kv calibrate: import: %s\n", st ? nn_strerror(st) : "partial");
        return -1;
    }
    int same = 0, s1;
    double sum = 0, kl;
    const int32_t *lg;
    for (uint32_t i = 0; i < cont; i++) {
        if (nn_session_forward(&sib->s, &tok[prefix + i], 1, &lg))
            return -1;
        compare_rows(lref + (size_t)i * V, lg, V, &s1, &kl);
        same += s1;
        sum += kl;
    }
    t->same = (double)same / cont;
    t->kld = sum / cont;
    return 0;
}

static void print_trial(const char *label, const trial *t, uint32_t L, double full_ms)
{
    printf("{\"set\":\"%s\",\"layers\":[", label);
    int first = 1;
    for (uint32_t l = 0; l < L; l++)
        if (t->rec[l]) {
            printf("%s%u", first ? "" : ",", l);
            first = 0;
        }
    printf("],\"same_top1\":%.4f,\"mean_kld\":%.6f,\"import_ms\":%.3f,\"own_prefill_ms\":%.3f,\"time_saved\":%.3f}\n",
           t->same, t->kld, t->ms, full_ms, full_ms > 0 ? 1.0 - t->ms / full_ms : 0.0);
    fflush(stdout);
}

int kv_cmd_calibrate(int argc, char **argv)
{
    const char *sib_path = NULL, *base_path = NULL, *tokfile = NULL, *codec = "lossless";
    uint32_t prefix = 0, cont = 64, threads = 1;
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "from", required_argument, 0, 'f' },
        { "tokens", required_argument, 0, 't' }, { "prefix", required_argument, 0, 'p' },
        { "continue", required_argument, 0, 'n' }, { "codec", required_argument, 0, 'c' },
        { "threads", required_argument, 0, 'T' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:t:p:n:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': sib_path = optarg; break;
        case 'f': base_path = optarg; break;
        case 't': tokfile = optarg; break;
        case 'p': prefix = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': cont = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c': codec = optarg; break;
        case 'T': threads = (uint32_t)strtoul(optarg, NULL, 10); break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: kvmesh-kv calibrate -m SIBLING --from BASE --tokens FILE [--prefix N] [--continue M]\n"
                    "                           [--codec C] [--threads N]\n\n"
                    "Cross-model KV reuse: BASE computes the context (first N input tokens of FILE), SIBLING\n"
                    "(a fine-tune of the same architecture) imports BASE's cache and recomputes a set of\n"
                    "layers from BASE's hidden states. Measures each layer's effect on the sibling's\n"
                    "continuation (M greedy tokens, against the sibling computing the context itself) and\n"
                    "prints JSON lines for the recompute sets: none, each single layer, the best 1 and 2\n"
                    "by effect, and all; with same_top1, mean KL, and import+recompute time against the\n"
                    "sibling's own prefill.\n");
            return c == 'h' ? 0 : 2;
        }
    }
    nn_kv_opts ko;
    if (!sib_path || !base_path || !tokfile || optind != argc) {
        fprintf(stderr, "kvmesh-kv calibrate: -m SIBLING, --from BASE and --tokens FILE are required\n");
        return 2;
    }
    if (parse_codec_opt(codec, &ko) || threads == 0 || threads > 64)
        return 2;
    kt_engine base, sib;
    if (engine_open(&base, base_path, 0, threads) || engine_open(&sib, sib_path, 0, threads))
        return 1;
    uint32_t *tok;
    long nt = kt_read_tokens("kvmesh-kv calibrate", tokfile, sib.m->cfg.vocab_size, &tok);
    if (nt < 0)
        return 1;
    uint32_t n = (uint32_t)nt;
    uint32_t L = sib.m->cfg.n_layers, V = sib.m->cfg.vocab_size;
    if (base.m->cfg.n_layers != L || base.m->cfg.dim != sib.m->cfg.dim || base.m->kv_dim != sib.m->kv_dim) {
        fprintf(stderr, "kvmesh-kv calibrate: %s and %s are not the same architecture\n", base_path, sib_path);
        return 1;
    }
    if (L > NN_KV_MAX_HIDDEN) {
        fprintf(stderr, "kvmesh-kv calibrate: %u layers; at most %u can carry hidden states\n", L, NN_KV_MAX_HIDDEN);
        return 1;
    }
    if (prefix == 0 || prefix > n)
        prefix = n;
    if (prefix + cont + 1 > sib.s.max_seq)
        cont = sib.s.max_seq - prefix - 1;
    tok = realloc(tok, (size_t)(prefix + cont + 1) * sizeof *tok);
    /* The sibling's own reference: its prefill time and its greedy continuation. */
    int32_t *lref = malloc((size_t)cont * V * 4);
    const int32_t *lg;
    double t0 = kv_now_s();
    nn_status st = nn_session_forward(&sib.s, tok, prefix, &lg);
    double full_ms = (kv_now_s() - t0) * 1e3;
    for (uint32_t i = 0; !st && i < cont; i++) {
        tok[prefix + i] = nn_argmax_i32(lg, V);
        if (!(st = nn_session_forward(&sib.s, &tok[prefix + i], 1, &lg)))
            memcpy(lref + (size_t)i * V, lg, (size_t)V * 4);
    }
    /* The base computes the context, capturing every layer's input. */
    uint32_t layers[NN_KV_MAX_HIDDEN];
    for (uint32_t l = 0; l < L; l++)
        layers[l] = l;
    size_t hbytes = nn_kv_hidden_bytes(base.m, L, base.s.max_seq);
    void *hmem = malloc(hbytes);
    nn_arena ha;
    nn_arena_init(&ha, hmem, hbytes);
    nn_kv_hidden hid;
    if (!st)
        st = nn_kv_hidden_capture(&hid, &base.s, layers, L, &ha);
    if (!st)
        st = nn_session_forward(&base.s, tok, prefix, NULL);
    nn_kv_range r = { 0, L, 0, prefix };
    size_t cap = nn_kv_export_bound(base.m, &r, L), len;
    uint8_t *buf = malloc(cap);
    if (!st)
        st = nn_kv_export(&base.s, &r, tok, &ko, &hid, &base.w, buf, cap, &len);
    if (st) {
        fprintf(stderr, "kvmesh-kv calibrate: %s\n", nn_strerror(st));
        return 1;
    }
    /* None, then every single layer: its effect is how much recomputing it alone helps. */
    trial none, one[NN_MAX_LAYERS], t;
    memset(&none, 0, sizeof none);
    if (run_trial(&sib, buf, len, tok, prefix, cont, lref, 1, &none))
        return 1;
    print_trial("none", &none, L, full_ms);
    uint32_t order[NN_MAX_LAYERS];
    for (uint32_t l = 0; l < L; l++) {
        memset(&one[l], 0, sizeof one[l]);
        one[l].rec[l] = 1;
        if (run_trial(&sib, buf, len, tok, prefix, cont, lref, 1, &one[l]))
            return 1;
        char label[32];
        snprintf(label, sizeof label, "single:%u", l);
        print_trial(label, &one[l], L, full_ms);
        order[l] = l;
    }
    for (uint32_t i = 0; i < L; i++)              /* by KL after recomputing that layer alone */
        for (uint32_t j = i + 1; j < L; j++)
            if (one[order[j]].kld < one[order[i]].kld) {
                uint32_t x = order[i];
                order[i] = order[j];
                order[j] = x;
            }
    for (uint32_t k = 1; k <= 2 && k < L; k++) {
        memset(&t, 0, sizeof t);
        for (uint32_t i = 0; i < k; i++)
            t.rec[order[i]] = 1;
        if (run_trial(&sib, buf, len, tok, prefix, cont, lref, 1, &t))
            return 1;
        print_trial(k == 1 ? "best1" : "best2", &t, L, full_ms);
    }
    memset(&t, 0, sizeof t);
    memset(t.rec, 1, L);
    if (run_trial(&sib, buf, len, tok, prefix, cont, lref, 1, &t))
        return 1;
    print_trial("all", &t, L, full_ms);
    free(buf);
    free(hmem);
    free(lref);
    free(tok);
    kt_engine_close(&sib);
    kt_engine_close(&base);
    return 0;
}
