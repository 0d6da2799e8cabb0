/*
 * kvmesh-convert: turns a model into a kvmesh image (int8 weights with per-group
 * fixed-point scales, RoPE phase table, tokenizer), written atomically.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh-convert [options] -o OUT.kvm\n"
        "\n"
        "Input (one of):\n"
        "  --llama2c FILE        llama2.c checkpoint (legacy fp32 format)\n"
        "  --tokenizer FILE      its tokenizer.bin (required with --llama2c)\n"
        "  --hf DIR              Hugging Face llama-family directory: config.json,\n"
        "                        model.safetensors (or shards + model.safetensors.index.json,\n"
        "                        F32/F16/BF16), tokenizer.json, tokenizer_config.json\n"
        "  --gguf FILE           GGUF v3, architecture llama, F32/F16/BF16/Q8_0 tensors;\n"
        "                        Q8_0 blocks map onto the image's groups with -g 32\n"
        "  --random SHAPE        random weights with a real shape, for speed work only:\n"
        "                        %s,\n"
        "                        or D,H,L,NH,NKV,V,S[,tied]\n"
        "  --seed S              seed for --random and --perturb (default 1)\n"
        "  --perturb SCALE       make a reproducible \"fine-tune\" of the input: every weight\n"
        "                        matrix entry times (1 + SCALE * u), u uniform in [-1, 1)\n"
        "                        seeded per tensor; norm gains unchanged (cross-model KV\n"
        "                        reuse experiments)\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE     image to write (written to a temporary file, then renamed)\n"
        "  -g, --group N         weights per quantisation group, 1..256 (default 32; the\n"
        "                        260K test models use 4 for quality)\n"
        "      --numerics N      1 (default): matmul inputs in int16; 2: in int8 with a\n"
        "                        power-of-two step per group of weights (faster prompt\n"
        "                        processing, slightly less exact; see docs/speed.md)\n"
        "      --rope-theta X    override the RoPE base (llama2.c default 10000)\n"
        "      --norm-eps X      override the RMSNorm epsilon (default 1e-5)\n"
        "  -q, --quiet           no progress on stderr\n"
        "  -h, --help            this text\n"
        "\n"
        "Exit status: 0 on success, 1 on bad input or failure to write, 2 on bad usage.\n",
        kt_random_presets());
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end || !isfinite(*out);
}

int main(int argc, char **argv)
{
    const char *l2c = NULL, *tok = NULL, *rnd = NULL, *out = NULL, *hf = NULL, *gguf = NULL;
    uint64_t seed = 1;
    long group = 32;
    double theta = 0, eps = 0, perturb = 0;
    int quiet = 0;
    uint32_t numerics = NN_NUMERICS_VERSION;
    static const struct option opts[] = {
        { "llama2c", required_argument, 0, 'L' }, { "tokenizer", required_argument, 0, 'T' },
        { "random", required_argument, 0, 'R' },  { "seed", required_argument, 0, 'S' },
        { "hf", required_argument, 0, 'H' },      { "gguf", required_argument, 0, 'G' },
        { "output", required_argument, 0, 'o' },  { "group", required_argument, 0, 'g' },
        { "rope-theta", required_argument, 0, 'r' }, { "norm-eps", required_argument, 0, 'e' },
        { "perturb", required_argument, 0, 'P' }, { "numerics", required_argument, 0, 'N' },
        { "quiet", no_argument, 0, 'q' },         { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:g:qh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'L': l2c = optarg; break;
        case 'T': tok = optarg; break;
        case 'R': rnd = optarg; break;
        case 'H': hf = optarg; break;
        case 'G': gguf = optarg; break;
        case 'S':
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "kvmesh-convert: --seed needs a non-negative integer\n");
                return 2;
            }
            break;
        case 'o': out = optarg; break;
        case 'g':
            group = strtol(optarg, &end, 10);
            if (*end || group < 1 || group > (long)NN_MAX_GROUP) {
                fprintf(stderr, "kvmesh-convert: --group must be 1..%u\n", NN_MAX_GROUP);
                return 2;
            }
            break;
        case 'r':
            if (parse_double(optarg, &theta) || theta <= 1) {
                fprintf(stderr, "kvmesh-convert: --rope-theta must be a number > 1\n");
                return 2;
            }
            break;
        case 'e':
            if (parse_double(optarg, &eps) || eps <= 0 || eps >= 1) {
                fprintf(stderr, "kvmesh-convert: --norm-eps must be in (0, 1)\n");
                return 2;
            }
            break;
        case 'P':
            if (parse_double(optarg, &perturb) || perturb <= 0 || perturb >= 1) {
                fprintf(stderr, "kvmesh-convert: --perturb must be in (0, 1)\n");
                return 2;
            }
            break;
        case 'N':
            if (!strcmp(optarg, "1") || !strcmp(optarg, "2")) {
                numerics = optarg[0] == '1' ? NN_NUMERICS_VERSION : NN_NUMERICS_ACT8;
            } else {
                fprintf(stderr, "kvmesh-convert: --numerics must be 1 or 2\n");
                return 2;
            }
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int inputs = !!l2c + !!rnd + !!hf + !!gguf;
    if (optind != argc || !out || inputs != 1 || (l2c && !tok) || (tok && !l2c)) {
        fprintf(stderr, "kvmesh-convert: need -o OUT and one input: --llama2c CKPT --tokenizer TOK, --hf DIR, "
                "--gguf FILE or --random SHAPE\n");
        usage(stderr);
        return 2;
    }

    if (numerics == NN_NUMERICS_ACT8 && group % 4) {
        fprintf(stderr, "kvmesh-convert: --numerics 2 needs a group that is a multiple of 4 (-g %ld)\n", group);
        return 2;
    }
    kt_source src;
    int rc = l2c ? kt_open_llama2c(&src, l2c, tok) : hf ? kt_open_hf(&src, hf) : gguf ? kt_open_gguf(&src, gguf)
                                                                                    : kt_open_random(&src, rnd, seed);
    if (!rc && perturb)
        rc = kt_wrap_perturb(&src, perturb, seed);
    if (rc) {
        fprintf(stderr, "kvmesh-convert: %s\n", src.err);
        return 1;
    }
    if (theta)
        src.rope_theta = theta;
    if (eps)
        src.norm_eps = eps;
    kt_img img;
    if (!quiet)
        fprintf(stderr, "kvmesh-convert: dim %u hidden %u layers %u heads %u/%u vocab %u seq %u group %ld%s\n",
                src.cfg.dim, src.cfg.hidden_dim, src.cfg.n_layers, src.cfg.n_heads, src.cfg.n_kv_heads,
                src.cfg.vocab_size, src.cfg.max_seq, group,
                src.cfg.flags & NN_IMG_FLAG_TIED_CLASSIFIER ? " tied" : "");
    rc = kt_convert(&src, (uint32_t)group, numerics, &img, !quiet);
    if (!rc && kt_img_write(&img, out, src.err, sizeof src.err))
        rc = -1;
    if (!rc && !quiet && (src.q8_exact || src.q8_requant))
        fprintf(stderr, "kvmesh-convert: Q8_0 blocks: %llu kept bit for bit, %llu re-quantised\n",
                (unsigned long long)src.q8_exact, (unsigned long long)src.q8_requant);
    if (rc) {
        fprintf(stderr, "kvmesh-convert: %s\n", src.err);
    } else {
        /* Re-open what was written: a converter that writes images the engine
         * refuses should fail here, not on the board. */
        nn_image check;
        static nn_model m;
        nn_status st = nn_image_open(&check, out);
        if (!st)
            st = nn_model_init(&m, &check);
        if (st) {
            fprintf(stderr, "kvmesh-convert: the written image does not load: %s\n", nn_strerror(st));
            rc = -1;
        } else if (!quiet) {
            fprintf(stderr, "kvmesh-convert: wrote %s (%zu bytes), fingerprint ", out, check.size);
            for (int i = 0; i < 32; i++)
                fprintf(stderr, "%02x", check.id.fingerprint[i]);
            fprintf(stderr, "\n");
        }
        nn_image_close(&check);
    }
    kt_img_free(&img);
    src.close(&src);
    return rc ? 1 : 0;
}
