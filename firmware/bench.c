/*
 * kvmesh bench: engine speed against the memory-bandwidth limit, as ONE JSON object on
 * stdout (progress and errors on stderr).
 *
 * Decoding a token reads every weight once, so decode speed is bounded by
 *     memory read bandwidth / weight bytes per token.
 * The bench measures that bandwidth itself, in the same run and with the same thread
 * count (a streaming read of a buffer several times the last-level cache), and reports
 *     bandwidth_fraction = decode_tok_s * weight_bytes_per_token / (mem_read_gbps * 1e9).
 *
 * Modes: each mode is a function that adds its fields to the one JSON object. "engine"
 * (the default) times prefill and decode; other modes (for example KV import timing)
 * register in the modes[] table below and reuse the writer, the engine and the
 * bandwidth probe.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "kvmesh_board.h"
#include "kvmesh_version.h"

/* ---- a minimal JSON object writer ------------------------------------------------ */

typedef struct bench_json {
    char   buf[8192];
    size_t n;
    int    need_comma;
    int    overflow;
} bench_json;

static void jraw(bench_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jraw(bench_json *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(j->buf + j->n, sizeof j->buf - j->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof j->buf - j->n)
        j->overflow = 1;
    else
        j->n += (size_t)k;
}

static void jkey(bench_json *j, const char *key)
{
    jraw(j, "%s\"%s\":", j->need_comma ? "," : "", key);
    j->need_comma = 1;
}

static void jstr(bench_json *j, const char *key, const char *v)
{
    jkey(j, key);
    jraw(j, "\"");
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            jraw(j, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            jraw(j, "\\u%04x", (unsigned char)*p);
        else
            jraw(j, "%c", *p);
    }
    jraw(j, "\"");
}

static void ju64(bench_json *j, const char *key, uint64_t v)
{
    jkey(j, key);
    jraw(j, "%llu", (unsigned long long)v);
}

static void jnum(bench_json *j, const char *key, double v, int decimals)
{
    jkey(j, key);
    jraw(j, "%.*f", decimals, v);
}

static void jopen(bench_json *j, const char *key)
{
    if (key)
        jkey(j, key);
    jraw(j, "{");
    j->need_comma = 0;
}

static void jclose(bench_json *j)
{
    jraw(j, "}");
    j->need_comma = 1;
}

/* ---- options --------------------------------------------------------------------- */

typedef struct bench_opts {
    fw_engine_opts eng;
    uint32_t prompt_tokens;      /* prefill length */
    uint32_t new_tokens;         /* decode steps */
    uint32_t reps;               /* timed repetitions; the best is reported */
    uint32_t mem_mib;            /* bandwidth probe buffer; 0: max(256 MiB, 4 x LLC) */
    uint64_t seed;               /* prompt tokens */
    nn_kv_opts kv;               /* kv-import: the codec of the imported cache */
    const char *kv_name;
} bench_opts;

/* ---- memory bandwidth probe ------------------------------------------------------- */

/* 16-byte vectors (SSE2 on x86-64, NEON on aarch64) through the compiler's generic
 * vector extension, so the probe issues wide loads on every board without intrinsics. */
typedef uint64_t mem_vec __attribute__((vector_size(16)));

typedef struct mem_job {
    const mem_vec *p;
    size_t         n;            /* vectors */
    size_t         pf;           /* prefetch distance, bytes */
    uint64_t       sink;
} mem_job;

/* Prefetch distances the passes cycle through; the best pass counts. The best distance
 * depends on the machine (512 bytes read 25 GB/s on one Zen 4 core, 4 KiB 40 GB/s), and
 * the probe must be an upper bound for the engine's kernels, whatever distance they use. */
static const size_t mem_pf[] = { 512, 1024, 2048, 4096 };

/* Eight independent chains so that the loop is bound by loads, not by latency, and a
 * software prefetch ahead of them. */
static void *mem_read_part(void *arg)
{
    mem_job *j = arg;
    mem_vec s0 = { 0 }, s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    const mem_vec *p = j->p, *end = j->p + (j->n & ~(size_t)7);
    for (; p < end; p += 8) {
        __builtin_prefetch((const char *)p + j->pf);
        __builtin_prefetch((const char *)p + j->pf + 64);
        s0 ^= p[0]; s1 ^= p[1]; s2 ^= p[2]; s3 ^= p[3];
        s4 ^= p[4]; s5 ^= p[5]; s6 ^= p[6]; s7 ^= p[7];
    }
    s0 ^= s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7;
    j->sink = s0[0] ^ s0[1];
    return NULL;
}

/*
 * Size of the last-level cache this CPU sees. sysfs first: it gives what one core can
 * use (32 MiB on a Zen 3 CCX), where glibc's CPUID figure can be the whole socket's
 * (256 MiB on a 64-core EPYC). Then sysconf, L3 then L2 (a Pi 4 has no L3). 0: unknown.
 */
static size_t llc_bytes(void)
{
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 8; i++) {
        char path[96];
        int level = 0;
        unsigned long k = 0;
        char unit = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int ok = fscanf(f, "%d", &level) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!ok || !(f = fopen(path, "r")))
            continue;
        ok = fscanf(f, "%lu%c", &k, &unit) >= 1;
        fclose(f);
        size_t bytes = unit == 'M' ? (size_t)k << 20 : unit == 'K' ? (size_t)k << 10 : (size_t)k;
        if (ok && level >= best_level) {
            best_level = level;
            best = bytes;
        }
    }
    if (best)
        return best;
    long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v <= 0)
        v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return v > 0 ? (size_t)v : 0;
}

/*
 * Streaming read of `bytes` split over `threads` threads; returns the best GB/s of
 * max(2 * reps, 4) passes after one warm pass, cycling through the prefetch distances.
 * The buffer is mmap'd here, at bench time, and unmapped before returning: it is a
 * measuring instrument, not engine state, so it does not belong in the static arena
 * (which holds only what the engine needs on a board). It is filled first so that every page is real memory, not the shared zero
 * page (which would be read from cache).
 */
static int mem_read_gbps(size_t bytes, uint32_t threads, uint32_t reps, double *gbps, char *err, size_t errlen)
{
    uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu bytes for the bandwidth probe", bytes);
        return -1;
    }
    size_t words = bytes / 8, vecs = bytes / sizeof(mem_vec);
    for (size_t i = 0; i < words; i++)
        buf[i] = i * 0x9E3779B97F4A7C15ull;
    mem_job jobs[64];
    pthread_t th[64];
    double best = 0;
    int rc = 0;
    /* Every distance gets at least one timed pass; pass 0 only warms. */
    uint32_t passes = 2 * reps < 4 ? 4 : 2 * reps;
    for (uint32_t r = 0; r <= passes && !rc; r++) {
        uint64_t t0 = fw_now_ns();
        for (uint32_t t = 0; t < threads; t++) {
            size_t lo = vecs * t / threads, hi = vecs * (t + 1) / threads;
            jobs[t] = (mem_job){ .p = (const mem_vec *)(const void *)buf + lo, .n = hi - lo,
                                 .pf = mem_pf[r % (sizeof mem_pf / sizeof mem_pf[0])] };
            if (t > 0 && pthread_create(&th[t], NULL, mem_read_part, &jobs[t]) != 0) {
                snprintf(err, errlen, "cannot start a bandwidth probe thread");
                for (uint32_t k = 1; k < t; k++)
                    pthread_join(th[k], NULL);
                rc = -1;
                break;
            }
        }
        if (rc)
            break;
        mem_read_part(&jobs[0]);
        for (uint32_t t = 1; t < threads; t++)
            pthread_join(th[t], NULL);
        uint64_t dt = fw_now_ns() - t0;
        double g = (double)bytes / (double)dt;      /* bytes per ns = GB/s */
        if (r > 0 && g > best)                      /* pass 0 warms the TLB and caches */
            best = g;
    }
    munmap(buf, bytes);
    *gbps = best;
    return rc;
}

/* ---- engine mode ------------------------------------------------------------------- */

/* Bytes of one int8 matrix with its group scales. */
/* A layer's seven matmul weights, for the counts below. */
#define LAYER_MATS 7
static void layer_mats(const nn_layer_w *L, const nn_q8_mat *mats[LAYER_MATS])
{
    const nn_q8_mat *all[LAYER_MATS] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
    memcpy(mats, all, sizeof all);
}

static uint64_t q8_bytes(const nn_q8_mat *w, uint32_t rows)
{
    return (uint64_t)rows * w->cols + (uint64_t)rows * w->ngroups * 2;
}

/*
 * Weight bytes one decode step reads: every layer's matrices and norm gains, the final
 * norm, the whole classifier, and one embedding row (the classifier counts in full even
 * when it is tied to the embedding, because the logits read all of it).
 */
static uint64_t weight_bytes_per_token(const nn_model *m)
{
    const nn_config *c = &m->cfg;
    uint64_t b = q8_bytes(&m->tok_emb, 1) + q8_bytes(&m->cls, m->cls.rows) + (uint64_t)c->dim * 4;
    for (uint32_t l = 0; l < c->n_layers; l++) {
        const nn_layer_w *L = &m->layers[l];
        const nn_q8_mat *mats[LAYER_MATS];
        layer_mats(L, mats);
        for (size_t i = 0; i < LAYER_MATS; i++)
            b += q8_bytes(mats[i], mats[i]->rows);
        b += (uint64_t)(L->att_norm.n + L->ffn_norm.n) * 4;
    }
    return b;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct run_times { uint64_t prefill_ns, decode_ns; uint32_t decoded; } run_times;

/* One timed run from an empty context: prefill the prompt, then greedy decode. */
/* Random prompt tokens (ids >= 3 skip unk/BOS/EOS); random weights make any prompt
 * equally representative. The buffer is the engine's prompt id buffer. */
static uint32_t *random_prompt(fw_engine *e, uint64_t seed, uint32_t n)
{
    uint32_t *prompt = e->ids;
    uint64_t s = seed | 1;
    for (uint32_t i = 0; i < n; i++)
        prompt[i] = 3 + (uint32_t)(rng_next(&s) % (e->m->cfg.vocab_size - 3));
    return prompt;
}

static int engine_run(fw_engine *e, const bench_opts *o, const uint32_t *prompt, run_times *rt, char *err,
                      size_t errlen)
{
    const int32_t *logits;
    nn_session_truncate(&e->s, 0);
    uint64_t t0 = fw_now_ns();
    nn_status st = nn_session_forward(&e->s, prompt, o->prompt_tokens, &logits);
    uint64_t t1 = fw_now_ns();
    uint32_t made = 0;
    while (!st && made < o->new_tokens) {
        uint32_t next = nn_sampler_sample(&e->sp, logits);
        st = nn_session_forward(&e->s, &next, 1, &logits);
        made++;
    }
    uint64_t t2 = fw_now_ns();
    if (st) {
        snprintf(err, errlen, "forward: %s", nn_strerror(st));
        return -1;
    }
    rt->prefill_ns = t1 - t0;
    rt->decode_ns = t2 - t1;
    rt->decoded = made;
    return 0;
}

/* Multiply-adds one prompt token costs in the layers' matmuls (the classifier runs for
 * the prompt's last token only). */
static uint64_t layer_macs_per_token(const nn_model *m)
{
    uint64_t n = 0;
    for (uint32_t l = 0; l < m->cfg.n_layers; l++) {
        const nn_layer_w *L = &m->layers[l];
        const nn_q8_mat *mats[LAYER_MATS];
        layer_mats(L, mats);
        for (size_t i = 0; i < LAYER_MATS; i++)
            n += (uint64_t)mats[i]->rows * mats[i]->cols;
    }
    return n;
}

#define MM_MAX_THREADS 64

/* One thread's share of matmul_gmacs: its own output rows, the rest shared. */
typedef struct {
    const nn_kernels *kern;
    nn_mm_args A;
    int a8;
    uint64_t ns, macs;
} mm_trial;

/* The kernel over A's rows again and again for 0.2 s. */
static void *mm_trial_run(void *arg)
{
    mm_trial *t = arg;
    uint64_t n = 0, t0 = fw_now_ns(), t1;
    do {
        if (t->a8)
            t->kern->matmul_q8_a8(&t->A, 0, t->A.w->rows);
        else
            t->kern->matmul_q8_q16(&t->A, 0, t->A.w->rows);
        n += (uint64_t)t->A.w->rows * t->A.w->cols * t->A.n_tok;
        t1 = fw_now_ns();
    } while (t1 - t0 < 200000000ull);
    t->ns = t1 - t0;
    t->macs = n;
    return NULL;
}

/* tr[0 .. n-1] at once, the caller running tr[0]: best of three trials of their summed
 * rate (G multiply-adds per second), *slowest that trial's slowest thread; 0 if a
 * thread cannot be started. */
static double mm_trials(mm_trial *tr, uint32_t n, double *slowest)
{
    pthread_t th[MM_MAX_THREADS];
    double best = 0;
    for (int trial = 0; trial < 3; trial++) {
        uint32_t started = 1;
        for (; started < n; started++)
            if (pthread_create(&th[started], NULL, mm_trial_run, &tr[started]) != 0)
                break;
        mm_trial_run(&tr[0]);
        for (uint32_t k = 1; k < started; k++)
            pthread_join(th[k], NULL);
        if (started < n)
            return 0;
        double r = 0, lo = 0;
        for (uint32_t k = 0; k < n; k++) {
            double rk = (double)tr[k].macs / (double)tr[k].ns;
            r += rk;
            lo = k == 0 || rk < lo ? rk : lo;
        }
        if (r > best) {
            best = r;
            *slowest = lo;
        }
    }
    return best;
}

/*
 * The session's matmul kernel alone over the first rows of layer 0's w1 (at most 256
 * KiB of weights, so they stay in L2) times a block of up to 64 tokens: the rate
 * prefill's matmuls could reach if memory and everything around them were free. *one:
 * on one thread; *all: on `threads` threads at once (each its own output), summed, with
 * *slowest its slowest thread: on a VM whose cores share their vector units with other
 * guests' work, one thread alone says too much about two. Best of three 0.2 s trials
 * each, in G multiply-adds per second; 0 if the buffers or threads cannot be had.
 */
static void matmul_gmacs(const fw_engine *e, uint32_t threads, double *one, double *all, double *slowest)
{
    const nn_model *m = e->m;
    nn_q8_mat w = m->layers[0].w1;
    uint32_t T = e->s.max_batch < 64 ? e->s.max_batch : 64, cols = w.cols, ng = w.ngroups;
    uint32_t rows = (uint32_t)(((size_t)256 << 10) / (cols + 2 * ng)) & ~15u;
    if (threads > MM_MAX_THREADS)
        threads = MM_MAX_THREADS;
    if (threads == 0)
        threads = 1;
    if (rows == 0)
        rows = 16;
    if (rows < w.rows)
        w.rows = rows;
    int a8 = e->img.id.numerics_version >= NN_NUMERICS_ACT8;
    int16_t *a = malloc((size_t)T * cols * sizeof *a);
    int8_t *q = malloc((size_t)T * cols);
    uint8_t *sh = malloc((size_t)T * ng);
    int32_t *sum = malloc((size_t)T * ng * sizeof *sum);
    int32_t *out = malloc((size_t)threads * T * w.rows * sizeof *out);
    nn_scale *as = malloc(T * sizeof *as);
    *one = *all = *slowest = 0;
    if (a && q && sh && sum && out && as) {
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < (size_t)T * cols; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a[i] = (int16_t)(x % 65535) - 32767;
        }
        for (uint32_t t = 0; t < T; t++) {
            as[t] = (nn_scale){ .m = 1u << 31, .e = 71 - w.exp };   /* output shift 55, as in real layers */
            nn_act8_quant(a + (size_t)t * cols, cols, w.group, q + (size_t)t * cols, sh + (size_t)t * ng,
                          sum + (size_t)t * ng);
        }
        mm_trial tr[MM_MAX_THREADS];
        for (uint32_t k = 0; k < threads; k++) {
            tr[k] = (mm_trial){ .kern = e->s.kern, .a8 = a8,
                                .A = { .w = &w, .a = a, .a_stride = cols, .as = as, .n_tok = T,
                                       .out = out + (size_t)k * T * w.rows, .out_stride = w.rows } };
            if (a8) {
                tr[k].A.a8 = q;
                tr[k].A.ash = sh;
                tr[k].A.asum = sum;
                tr[k].A.ash_stride = ng;
            }
        }
        double lo1;
        *one = mm_trials(tr, 1, &lo1);
        if (threads > 1)
            *all = mm_trials(tr, threads, slowest);
        else
            *all = *slowest = *one;
    }
    free(a);
    free(q);
    free(sh);
    free(sum);
    free(out);
    free(as);
}

/* The model's shape and the engine's set-up: the same fields in every mode. */
static void model_json(bench_json *j, const bench_opts *o, const fw_engine *e)
{
    const nn_config *c = &e->m->cfg;
    jopen(j, "model");
    jstr(j, "path", o->eng.model);
    ju64(j, "dim", c->dim);
    ju64(j, "hidden_dim", c->hidden_dim);
    ju64(j, "n_layers", c->n_layers);
    ju64(j, "n_heads", c->n_heads);
    ju64(j, "n_kv_heads", c->n_kv_heads);
    ju64(j, "head_dim", c->head_dim);
    ju64(j, "vocab_size", c->vocab_size);
    ju64(j, "group_size", c->group_size);
    ju64(j, "numerics", e->img.id.numerics_version);
    jstr(j, "classifier", c->flags & NN_IMG_FLAG_TIED_CLASSIFIER ? "tied" : "separate");
    ju64(j, "image_bytes", e->img.size);
    jclose(j);
    ju64(j, "threads", e->s.threads);
    jstr(j, "kernels", e->s.kern->name);
    ju64(j, "ctx", e->s.max_seq);
    ju64(j, "batch", e->s.max_batch);
}

static double per_s(uint64_t n, uint64_t ns) { return ns ? (double)n * 1e9 / (double)ns : 0.0; }

static int mode_engine(const bench_opts *o, bench_json *j, char *err, size_t errlen)
{
    fw_engine e;
    if (fw_engine_open(&e, &o->eng, err, errlen))
        return -1;
    const nn_model *m = e.m;
    if ((uint64_t)o->prompt_tokens + o->new_tokens > e.s.max_seq || o->prompt_tokens == 0) {
        snprintf(err, errlen, "prompt %u + new %u tokens do not fit the context of %u (or the prompt is empty)",
                 o->prompt_tokens, o->new_tokens, e.s.max_seq);
        fw_engine_close(&e);
        return -1;
    }
    uint32_t *prompt = random_prompt(&e, o->seed, o->prompt_tokens);

    /* Bandwidth with the same thread count while the engine is idle, before and after
     * the timed runs; the better of the two is the bound (on a shared machine either
     * may be disturbed, and a low bound would flatter bandwidth_fraction). */
    size_t mem = o->mem_mib ? (size_t)o->mem_mib << 20 : 4 * llc_bytes();
    if (mem < ((size_t)256 << 20) && !o->mem_mib)
        mem = (size_t)256 << 20;
    double gbps_before, gbps_after;
    if (mem_read_gbps(mem, e.s.threads, o->reps, &gbps_before, err, errlen)) {
        fw_engine_close(&e);
        return -1;
    }

    /* One untimed run faults the mapped image in and warms the caches, then the best
     * of reps timed runs (the machine may be shared and noisy). */
    run_times best = { 0 }, rt;
    for (uint32_t r = 0; r <= o->reps; r++) {
        if (engine_run(&e, o, prompt, &rt, err, errlen)) {
            fw_engine_close(&e);
            return -1;
        }
        fprintf(stderr, "kvmesh bench: run %u%s: prefill %.1f tok/s, decode %.2f tok/s\n", r,
                r == 0 ? " (warm-up)" : "", per_s(o->prompt_tokens, rt.prefill_ns), per_s(rt.decoded, rt.decode_ns));
        if (r == 0)
            continue;
        if (!best.prefill_ns || rt.prefill_ns < best.prefill_ns)
            best.prefill_ns = rt.prefill_ns;
        if (!best.decode_ns || rt.decode_ns < best.decode_ns) {
            best.decode_ns = rt.decode_ns;
            best.decoded = rt.decoded;
        }
    }
    if (mem_read_gbps(mem, e.s.threads, o->reps, &gbps_after, err, errlen)) {
        fw_engine_close(&e);
        return -1;
    }
    double gbps = gbps_before > gbps_after ? gbps_before : gbps_after;
    double pre = per_s(o->prompt_tokens, best.prefill_ns), dec = per_s(best.decoded, best.decode_ns);
    uint64_t wbpt = weight_bytes_per_token(m);

    model_json(j, o, &e);
    ju64(j, "prompt_tokens", o->prompt_tokens);
    ju64(j, "new_tokens", best.decoded);
    ju64(j, "reps", o->reps);
    jnum(j, "prefill_tok_s", pre, 2);
    jnum(j, "decode_tok_s", dec, 3);
    jnum(j, "prefill_to_decode", dec > 0 ? pre / dec : 0, 2);
    ju64(j, "weight_bytes_per_token", wbpt);
    ju64(j, "arena_bytes", e.arena_bytes);
    jnum(j, "mem_read_gbps", gbps, 2);
    jnum(j, "mem_read_gbps_before", gbps_before, 2);
    jnum(j, "mem_read_gbps_after", gbps_after, 2);
    ju64(j, "mem_read_bytes", mem);
    jnum(j, "decode_read_gbps", dec * (double)wbpt / 1e9, 2);
    jnum(j, "bandwidth_fraction", gbps > 0 ? dec * (double)wbpt / (gbps * 1e9) : 0, 3);
    /* The ceiling on prefill_to_decode that this machine's compute and bandwidth allow:
     * prefill at the in-cache matmul rate of all threads at once (nothing else costing
     * time) against decode at bandwidth fraction 0.7. */
    double gmacs, gmacs_all, slowest;
    matmul_gmacs(&e, e.s.threads, &gmacs, &gmacs_all, &slowest);
    uint64_t macs = layer_macs_per_token(m);
    double pre_max = gmacs_all * 1e9 / (double)macs, dec07 = 0.7 * gbps * 1e9 / (double)wbpt;
    jnum(j, "matmul_gmacs_1t", gmacs, 3);
    jnum(j, "matmul_gmacs_all", gmacs_all, 3);
    jnum(j, "matmul_gmacs_slowest_thread", slowest, 3);
    ju64(j, "prefill_macs_per_token", macs);
    jnum(j, "prefill_ceiling_tok_s", pre_max, 1);
    jnum(j, "prefill_to_decode_ceiling", dec07 > 0 ? pre_max / dec07 : 0, 2);
    fw_engine_close(&e);
    return 0;
}

/* ---- kv-import mode ------------------------------------------------------------------ */

/* FNV-1a over a logits row: compares two rows without keeping a copy of either. */
static uint64_t logits_hash(const int32_t *l, uint32_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++) {
        h ^= (uint32_t)l[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint32_t argmax(const int32_t *l, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/*
 * Time to first token after a P-token prefix, two ways, alternating in one run:
 *   compute: prefill the P prefix tokens and the first new one (P + 1 tokens);
 *   import:  parse, check and decode an exported cache of the prefix (every layer), then
 *            the first new token alone.
 * Both end with the first new token's logits and its greedy choice. The cache is
 * exported once from this same session with the chosen codec. What the import column
 * leaves out: getting the stream here (link time) and opening its seal (AES-GCM, well
 * under a millisecond for these sizes); stream_bytes is what a link would carry.
 */
static int mode_kv_import(const bench_opts *o, bench_json *j, char *err, size_t errlen)
{
    fw_engine_opts eo = o->eng;
    eo.kv = 1;
    fw_engine e;
    if (fw_engine_open(&e, &eo, err, errlen))
        return -1;
    const uint32_t P = o->prompt_tokens, V = e.m->cfg.vocab_size;
    int rc = -1;
    if ((uint64_t)P + 1 > e.s.max_seq) {
        snprintf(err, errlen, "a prefix of %u tokens plus one does not fit the context of %u", P, e.s.max_seq);
        goto out;
    }
    uint32_t *prompt = random_prompt(&e, o->seed, P + 1);
    const int32_t *logits;
    nn_status st = nn_session_forward(&e.s, prompt, P, NULL);
    nn_kv_range whole = { 0, e.m->cfg.n_layers, 0, P };
    size_t len = 0;
    uint64_t t0 = fw_now_ns();
    if (!st)
        st = nn_kv_export(&e.s, &whole, prompt, &o->kv, NULL, &e.kvw, e.kvbuf, e.kvbuf_bytes, &len);
    uint64_t export_ns = fw_now_ns() - t0;
    nn_kv_info info;
    if (!st)
        st = nn_kv_parse(e.kvbuf, len, &info);
    if (st) {
        snprintf(err, errlen, "exporting the prefix: %s", nn_strerror(st));
        goto out;
    }

    uint64_t best_c = 0, best_i = 0, best_imp = 0, hash_c = 0, hash_i = 0;
    uint32_t tok_c = 0, tok_i = 0;
    for (uint32_t r = 0; r <= o->reps; r++) {
        nn_session_truncate(&e.s, 0);
        t0 = fw_now_ns();
        st = nn_session_forward(&e.s, prompt, P + 1, &logits);
        uint64_t tc = fw_now_ns() - t0;
        if (st)
            break;
        tok_c = argmax(logits, V);
        hash_c = logits_hash(logits, V);

        nn_session_truncate(&e.s, 0);
        uint32_t reused = 0;
        t0 = fw_now_ns();
        st = nn_kv_import(&e.s, e.kvbuf, len, prompt, P, NULL, &e.kvw, &reused);
        uint64_t t_imp = fw_now_ns() - t0;
        if (!st && reused != P) {
            snprintf(err, errlen, "the import took %u of %u positions", reused, P);
            goto out;
        }
        if (!st)
            st = nn_session_forward(&e.s, &prompt[P], 1, &logits);
        uint64_t ti = fw_now_ns() - t0;
        if (st)
            break;
        tok_i = argmax(logits, V);
        hash_i = logits_hash(logits, V);
        fprintf(stderr, "kvmesh bench: run %u%s: compute %.2f ms, import %.2f ms (decode %.2f ms)\n", r,
                r == 0 ? " (warm-up)" : "", tc / 1e6, ti / 1e6, t_imp / 1e6);
        if (r == 0)
            continue;
        if (!best_c || tc < best_c)
            best_c = tc;
        if (!best_i || ti < best_i)
            best_i = ti;
        if (!best_imp || t_imp < best_imp)
            best_imp = t_imp;
    }
    if (st) {
        snprintf(err, errlen, "timed run: %s", nn_strerror(st));
        goto out;
    }
    model_json(j, o, &e);
    ju64(j, "prefix_tokens", P);
    ju64(j, "reps", o->reps);
    jstr(j, "codec", o->kv_name);
    ju64(j, "stream_bytes", len);
    jnum(j, "bits_per_value", nn_kv_bits_per_value_x1000(&info) / 1000.0, 3);
    jnum(j, "export_ms", export_ns / 1e6, 3);
    jnum(j, "import_ms", best_imp / 1e6, 3);
    jnum(j, "ttft_compute_ms", best_c / 1e6, 3);
    jnum(j, "ttft_import_ms", best_i / 1e6, 3);
    jnum(j, "ttft_ratio", best_i ? (double)best_c / (double)best_i : 0, 2);
    jstr(j, "first_token_same", tok_c == tok_i ? "yes" : "no");
    jstr(j, "logits_identical", hash_c == hash_i ? "yes" : "no");
    ju64(j, "arena_bytes", e.arena_bytes);
    rc = 0;
out:
    fw_engine_close(&e);
    return rc;
}

typedef struct bench_mode {
    const char *name;
    const char *what;
    int (*run)(const bench_opts *o, bench_json *j, char *err, size_t errlen);
} bench_mode;

static const bench_mode modes[] = {
    { "engine", "prefill and decode speed against the measured memory bandwidth", mode_engine },
    { "kv-import", "time to first token after a --prompt-tokens prefix: imported cache against computing it", mode_kv_import },
};

/* ---- machine description ----------------------------------------------------------- */

static void cpu_name(char *out, size_t len)
{
    snprintf(out, len, "%s", KVMESH_BOARD_CPU);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (v && strncmp(line, "model name", 10) == 0) {
            v += 1 + strspn(v + 1, " \t");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, len, "%s", v);
            break;
        }
    }
    fclose(f);
}

static void machine(bench_json *j)
{
    struct utsname u;
    char cpu[128];
    cpu_name(cpu, sizeof cpu);
    jopen(j, "machine");
    jstr(j, "board", KVMESH_BOARD_NAME);
    jstr(j, "arch", uname(&u) == 0 ? u.machine : "unknown");
    jstr(j, "cpu", cpu);
    ju64(j, "cpus_online", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
    ju64(j, "llc_bytes", llc_bytes());
    jstr(j, "kernels_available", nn_kernels_available());
    jclose(j);
}

/* ---- command ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh bench -m IMAGE [--threads N] [--prompt-tokens P] [--new-tokens N] [options]\n"
        "\n"
        "Prints one JSON object: prefill_tok_s, decode_tok_s, weight_bytes_per_token,\n"
        "arena_bytes, the kernel path, mem_read_gbps (a streaming read measured in the same\n"
        "run with the same thread count) and bandwidth_fraction = decode_tok_s *\n"
        "weight_bytes_per_token / (mem_read_gbps * 1e9), with the machine and model shape;\n"
        "matmul_gmacs_1t (the matmul kernel alone on one thread, weights in L2),\n"
        "matmul_gmacs_all (on every thread at once, summed; _slowest_thread its slowest),\n"
        "and prefill_to_decode_ceiling (prefill at matmul_gmacs_all against decode at\n"
        "bandwidth fraction 0.7: the ratio this machine allows).\n"
        "--mode kv-import prints instead the time to first token after a P-token prefix,\n"
        "computed against imported from a cache (ttft_ratio), with the cache's size.\n"
        "\n"
        "  -m, --model IMAGE       kvmesh image (random weights are fine: kvmesh-convert --random)\n"
        "      --mode NAME         what to measure (default engine):");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        fprintf(f, "\n                            %s: %s", modes[i].name, modes[i].what);
    fprintf(f, "\n"
        "  -T, --threads N         worker threads (default: the board's, %u here)\n"
        "  -p, --prompt-tokens P   prefill length, or the prefix length for kv-import (default 128)\n"
        "  -n, --new-tokens N      decode steps (default 64)\n"
        "      --kernels NAME      kernel path (default best: %s)\n"
        "      --batch N           prompt tokens per prefill block (default: the prompt, at most 128)\n"
        "      --ctx N             context length (default: the model's, capped by the board);\n"
        "                          sets the KV cache and so arena_bytes\n"
        "      --reps N            timed repetitions after one warm-up; the best is reported (default 5)\n"
        "      --mem-mib N         bandwidth probe buffer in MiB (default: 4x the last-level cache,\n"
        "                          at least 256)\n"
        "      --seed S            prompt token seed (default 1)\n"
        "      --codec C           kv-import: the cache's codec: raw, lossless (default), lossy,\n"
        "                          k<bits>v<bits>[g<n>][c<n>]\n"
        "  -h, --help              this text\n",
        fw_default_threads(), nn_kernels_available());
}

int fw_cmd_bench(int argc, char **argv)
{
    const char *prog = "kvmesh bench", *mode = "engine";
    bench_opts o = { .prompt_tokens = 128, .new_tokens = 64, .reps = 5, .seed = 1, .kv_name = "lossless" };
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "mode", required_argument, 0, 'M' },
        { "threads", required_argument, 0, 'T' }, { "prompt-tokens", required_argument, 0, 'p' },
        { "new-tokens", required_argument, 0, 'n' }, { "kernels", required_argument, 0, 'K' },
        { "batch", required_argument, 0, 'B' }, { "ctx", required_argument, 0, 'c' },
        { "reps", required_argument, 0, 'r' }, { "mem-mib", required_argument, 0, 'b' },
        { "seed", required_argument, 0, 's' }, { "codec", required_argument, 0, 'C' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    uint32_t seed32;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:T:p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.eng.model = optarg; break;
        case 'M': mode = optarg; break;
        case 'T': if (fw_parse_u32(prog, "--threads", optarg, 1, 64, &o.eng.threads)) return 2; break;
        case 'p': if (fw_parse_u32(prog, "--prompt-tokens", optarg, 1, NN_MAX_SEQ, &o.prompt_tokens)) return 2; break;
        case 'n': if (fw_parse_u32(prog, "--new-tokens", optarg, 0, NN_MAX_SEQ, &o.new_tokens)) return 2; break;
        case 'K': o.eng.kernels = optarg; break;
        case 'B': if (fw_parse_u32(prog, "--batch", optarg, 1, 4096, &o.eng.batch)) return 2; break;
        case 'c': if (fw_parse_u32(prog, "--ctx", optarg, 1, NN_MAX_SEQ, &o.eng.ctx)) return 2; break;
        case 'r': if (fw_parse_u32(prog, "--reps", optarg, 1, 100, &o.reps)) return 2; break;
        case 'b': if (fw_parse_u32(prog, "--mem-mib", optarg, 1, 65536, &o.mem_mib)) return 2; break;
        case 's':
            if (fw_parse_u32(prog, "--seed", optarg, 0, UINT32_MAX, &seed32))
                return 2;
            o.seed = seed32;
            break;
        case 'C': o.kv_name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !o.eng.model) {
        fprintf(stderr, "%s: -m IMAGE is required\n", prog);
        usage(stderr);
        return 2;
    }
    if (fw_parse_kv_codec(prog, o.kv_name, &o.kv))
        return 2;
    const bench_mode *bm = NULL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(modes[i].name, mode) == 0)
            bm = &modes[i];
    if (!bm) {
        fprintf(stderr, "%s: unknown mode '%s'\n", prog, mode);
        return 2;
    }
    if (o.eng.kernels && !nn_kernels_select(o.eng.kernels)) {
        fprintf(stderr, "%s: kernel path '%s' is not available here (available: %s)\n", prog, o.eng.kernels,
                nn_kernels_available());
        return 2;
    }
    /* The whole prompt in one prefill block (up to 128 tokens): each weight is then read
     * once for the prompt, and each job is big enough to keep every worker busy. */
    if (!o.eng.batch)
        o.eng.batch = o.prompt_tokens < 128 ? o.prompt_tokens : 128;
    /* Greedy decoding (temp 0): the sampler is an argmax, so its cost is negligible. */
    o.eng.temp_q16 = 0;
    o.eng.max_prompt_bytes = o.prompt_tokens + 1;

    bench_json j = { 0 };
    char err[256];
    jopen(&j, NULL);
    jstr(&j, "bench", bm->name);
    jstr(&j, "version", KVMESH_VERSION);
    machine(&j);
    if (bm->run(&o, &j, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    jclose(&j);
    if (j.overflow) {
        fprintf(stderr, "%s: result too long for the JSON buffer\n", prog);
        return 1;
    }
    printf("%s\n", j.buf);
    return 0;
}
