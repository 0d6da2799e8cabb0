/*
 * kvmesh generate: one-shot generation. stdout carries the prompt and the continuation
 * exactly as llama2.c's run.c prints them; statistics go to stderr.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh generate -m IMAGE -p PROMPT [-n NEW_TOKENS] [options]\n"
        "\n"
        "  -m, --model IMAGE   kvmesh image (from kvmesh-convert)\n"
        "  -p, --prompt TEXT   prompt (may be empty)\n"
        "  -n, --new-tokens N  tokens to generate after the prompt (default 256); stops\n"
        "                      early at BOS/EOS or when the context is full\n"
        "      --temp T        sampling temperature, 0 = greedy (default 1.0)\n"
        "      --top-p P       nucleus sampling mass (default 0.9; 0 or 1 disables)\n"
        "      --seed S        random seed (default: time; printed on stderr)\n"
        "      --ctx N         context length (default: the model's, capped by the board)\n"
        "      --threads N     worker threads (default: the board's)\n"
        "      --batch N       prompt tokens per prefill block (default 32)\n"
        "      --kernels NAME  kernel path (default best: %s)\n"
        "      --load-kv FILE  import a KV cache: the prompt's cached prefix is not recomputed\n"
        "                      (stderr reports how many tokens were reused)\n"
        "      --save-kv FILE  export the context's KV cache when done\n"
        "      --kv-codec C    codec for --save-kv: raw, lossless (default), lossy\n"
        "                      (= k3v2g128c128), or k<bits>v<bits>[g<n>][c<n>]\n"
        "      --kv-recompute L  with --load-kv: accept a cache from another image of the same\n"
        "                      architecture (a fine-tune) and recompute layers L (e.g. 1,3,\n"
        "                      or none; see kvmesh-kv calibrate) from its hidden states\n"
        "      --save-kv-hidden L  with --save-kv: carry the hidden states at the input of\n"
        "                      layers L, for receivers that recompute them\n"
        "  -h, --help          this text\n",
        nn_kernels_available());
}

/* As run.c's safe_printf: skip lone bytes that are neither printable nor space. */
static void print_piece(nn_tok_piece p)
{
    if (!p.p || p.len == 0)
        return;
    if (p.len == 1 && !(isprint(p.p[0]) || isspace(p.p[0])))
        return;
    fwrite(p.p, 1, p.len, stdout);
}

int fw_cmd_generate(int argc, char **argv)
{
    const char *prog = "kvmesh generate";
    fw_engine_opts o = { .temp_q16 = 65536, .topp_q16 = 58982 };
    const char *prompt = NULL, *load_kv = NULL, *save_kv = NULL, *kv_codec = "lossless";
    const char *kv_recompute = NULL, *kv_hidden = NULL;
    uint32_t n_new = 256;
    int have_seed = 0;
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "prompt", required_argument, 0, 'p' },
        { "new-tokens", required_argument, 0, 'n' }, { "temp", required_argument, 0, 't' },
        { "top-p", required_argument, 0, 'P' }, { "seed", required_argument, 0, 's' },
        { "ctx", required_argument, 0, 'c' }, { "threads", required_argument, 0, 'T' },
        { "batch", required_argument, 0, 'B' }, { "kernels", required_argument, 0, 'K' },
        { "load-kv", required_argument, 0, 'l' }, { "save-kv", required_argument, 0, 'S' },
        { "kv-codec", required_argument, 0, 'C' }, { "kv-recompute", required_argument, 0, 'R' },
        { "save-kv-hidden", required_argument, 0, 'H' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:h", opts, NULL)) != -1) {
        uint32_t seed32;
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (fw_parse_u32(prog, "-n", optarg, 0, NN_MAX_SEQ, &n_new)) return 2; break;
        case 't': if (fw_parse_q16(prog, "--temp", optarg, &o.temp_q16)) return 2; break;
        case 'P': if (fw_parse_q16(prog, "--top-p", optarg, &o.topp_q16)) return 2; break;
        case 's':
            if (fw_parse_u32(prog, "--seed", optarg, 0, UINT32_MAX, &seed32))
                return 2;
            o.seed = seed32;
            have_seed = 1;
            break;
        case 'c': if (fw_parse_u32(prog, "--ctx", optarg, 1, NN_MAX_SEQ, &o.ctx)) return 2; break;
        case 'T': if (fw_parse_u32(prog, "--threads", optarg, 1, 64, &o.threads)) return 2; break;
        case 'B': if (fw_parse_u32(prog, "--batch", optarg, 1, 4096, &o.batch)) return 2; break;
        case 'K': o.kernels = optarg; break;
        case 'l': load_kv = optarg; break;
        case 'S': save_kv = optarg; break;
        case 'C': kv_codec = optarg; break;
        case 'R': kv_recompute = optarg; break;
        case 'H': kv_hidden = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !o.model || !prompt) {
        fprintf(stderr, "%s: -m IMAGE and -p PROMPT are required\n", prog);
        usage(stderr);
        return 2;
    }
    if (o.kernels && !nn_kernels_select(o.kernels)) {
        fprintf(stderr, "%s: kernel path '%s' is not available here (available: %s)\n", prog, o.kernels,
                nn_kernels_available());
        return 2;
    }
    nn_kv_opts kvo;
    if (fw_parse_kv_codec(prog, kv_codec, &kvo))
        return 2;
    if (!have_seed)
        o.seed = (uint64_t)time(NULL);
    o.kv = load_kv || save_kv;
    uint32_t hid_layers[NN_KV_MAX_HIDDEN], n_hid = 0, rec_layers[NN_MAX_LAYERS], n_rec = 0;
    if ((kv_recompute && !load_kv) || (kv_hidden && !save_kv)) {
        fprintf(stderr, "%s: --kv-recompute needs --load-kv, --save-kv-hidden needs --save-kv\n", prog);
        return 2;
    }
    int other_model = kv_recompute != NULL;
    if (kv_recompute && strcmp(kv_recompute, "none") == 0)
        kv_recompute = NULL;
    if ((kv_recompute && fw_parse_layers(prog, "--kv-recompute", kv_recompute, rec_layers, NN_MAX_LAYERS, &n_rec)) ||
        (kv_hidden && fw_parse_layers(prog, "--save-kv-hidden", kv_hidden, hid_layers, NN_KV_MAX_HIDDEN, &n_hid)))
        return 2;
    o.kv_hidden = n_hid;

    o.max_prompt_bytes = strlen(prompt);
    fw_engine e;
    char err[256];
    if (fw_engine_open(&e, &o, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    const nn_model *m = e.m;
    uint32_t n_prompt;
    nn_status st = nn_tok_encode(&m->tok, prompt, 1, 0, e.ids, (uint32_t)e.ids_cap, &n_prompt, e.tokscratch,
                                 e.tokscratch_bytes);
    if (st || n_prompt > e.s.max_seq) {
        if (st)
            fprintf(stderr, "%s: cannot encode the prompt: %s\n", prog, nn_strerror(st));
        else
            fprintf(stderr, "%s: the prompt (%u tokens) does not fit the context of %u tokens\n", prog, n_prompt,
                    e.s.max_seq);
        fw_engine_close(&e);
        return 1;
    }
    if (!have_seed && o.temp_q16)
        fprintf(stderr, "seed: %llu\n", (unsigned long long)o.seed);

    uint8_t rec[NN_MAX_LAYERS] = { 0 };
    for (uint32_t i = 0; i < n_rec; i++) {
        if (rec_layers[i] >= m->cfg.n_layers) {
            fprintf(stderr, "%s: --kv-recompute: the model has %u layers\n", prog, m->cfg.n_layers);
            fw_engine_close(&e);
            return 2;
        }
        rec[rec_layers[i]] = 1;
    }
    nn_kv_hidden hidden;
    for (uint32_t i = 0; i < n_hid; i++)
        if (hid_layers[i] >= m->cfg.n_layers)
            n_hid = UINT32_MAX;
    if (n_hid == UINT32_MAX || (n_hid && nn_kv_hidden_capture(&hidden, &e.s, hid_layers, n_hid, &e.arena))) {
        fprintf(stderr, "%s: --save-kv-hidden: layers must be below %u and fit the arena\n", prog, m->cfg.n_layers);
        fw_engine_close(&e);
        return 2;
    }
    uint8_t *kvin = NULL;
    size_t kvin_len = 0;
    if (load_kv && fw_engine_read_file(&e, load_kv, &kvin, &kvin_len, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        fw_engine_close(&e);
        return 1;
    }

    /* Prefill: reuse what the cache holds of the prompt (all but the last token, whose
     * logits the cache does not carry), compute the rest, printing the prompt's pieces
     * as run.c does while it reads it. */
    uint64_t t0 = fw_now_ns();
    uint32_t reused = 0;
    if (kvin) {
        nn_kv_import_opts io = { .other_model = other_model, .recompute = n_rec ? rec : NULL, .pipeline = 1 };
        st = nn_kv_import(&e.s, kvin, kvin_len, e.ids, n_prompt - 1, &io, &e.kvw, &reused);
        if (st == NN_E_ARG && n_rec) {
            fprintf(stderr, "%s: %s carries no hidden states at the input of a recomputed run of layers "
                    "(other than one starting at 0); the sender needs --save-kv-hidden with that layer\n",
                    prog, load_kv);
            fw_engine_close(&e);
            return 1;
        }
        if (st) {
            fprintf(stderr, "%s: %s: cannot use this KV cache: %s\n", prog, load_kv, nn_strerror(st));
            fw_engine_close(&e);
            return 1;
        }
        fprintf(stderr, "kv: reused %u of %u prompt tokens from %s", reused, n_prompt, load_kv);
        if (n_rec)
            fprintf(stderr, " (%u layers recomputed)", n_rec);
        fprintf(stderr, "\n");
    }
    if (e.log)
        memcpy(e.log, e.ids, (size_t)n_prompt * sizeof *e.log);
    const int32_t *logits;
    if ((st = nn_session_forward(&e.s, e.ids + reused, n_prompt - reused, &logits))) {
        fprintf(stderr, "%s: %s\n", prog, nn_strerror(st));
        fw_engine_close(&e);
        return 1;
    }
    uint64_t t1 = fw_now_ns();
    for (uint32_t i = 1; i < n_prompt; i++)
        print_piece(nn_tok_decode(&m->tok, e.ids[i - 1], e.ids[i]));
    fflush(stdout);

    uint32_t prev = e.ids[n_prompt - 1], made = 0;
    const char *stop = "token limit";
    while (made < n_new) {
        uint32_t next = nn_sampler_sample(&e.sp, logits);
        if (next == m->tok.bos_id || next == m->tok.eos_id) {
            stop = next == m->tok.bos_id ? "BOS" : "EOS";
            break;
        }
        print_piece(nn_tok_decode(&m->tok, prev, next));
        fflush(stdout);
        made++;
        prev = next;
        if (made == n_new)
            break;
        if (e.s.n_pos >= e.s.max_seq) {
            stop = "context full";
            break;
        }
        if (e.log)
            e.log[e.s.n_pos] = next;
        if ((st = nn_session_forward(&e.s, &next, 1, &logits))) {
            fprintf(stderr, "%s: %s\n", prog, nn_strerror(st));
            fw_engine_close(&e);
            return 1;
        }
    }
    uint64_t t2 = fw_now_ns();
    printf("\n");
    fflush(stdout);
    double pre_s = (double)(t1 - t0) / 1e9, dec_s = (double)(t2 - t1) / 1e9;
    fprintf(stderr, "prompt tokens: %u, new tokens: %u (stopped: %s), prefill: %.1f tok/s, decode: %.1f tok/s, "
            "time to first token: %.2f ms, arena: %zu bytes\n", n_prompt, made, stop,
            pre_s > 0 ? (n_prompt - reused) / pre_s : 0.0, dec_s > 0 && made > 1 ? (made - 1) / dec_s : 0.0,
            pre_s * 1e3, e.arena_bytes);
    if (save_kv) {
        nn_kv_range whole = { 0, m->cfg.n_layers, 0, e.s.n_pos };
        size_t len;
        st = nn_kv_export(&e.s, &whole, e.log, &kvo, n_hid ? &hidden : NULL, &e.kvw, e.kvbuf, e.kvbuf_bytes, &len);
        if (st || fw_write_file_atomic(save_kv, e.kvbuf, len, err, sizeof err)) {
            fprintf(stderr, "%s: cannot save the KV cache: %s\n", prog, st ? nn_strerror(st) : err);
            fw_engine_close(&e);
            return 1;
        }
        fprintf(stderr, "kv: saved %u positions to %s (%zu bytes, %s)\n", e.s.n_pos, save_kv, len, kv_codec);
    }
    fw_engine_close(&e);
    return 0;
}
