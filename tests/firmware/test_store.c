/* The local cache store on real stories260K caches: lookups by prefix id (the longest
 * block, also a short requester finding a long context), the byte and entry bounds with
 * least-recently-used eviction, recency and contents surviving a reopen, and what a
 * reopen discards: temporary files, truncated or damaged entries, another model's
 * caches, misnamed files. Also: one service per directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store.h"
#include "testutil.h"

#define CTX 256

static kt_img img_buf, other_buf;
static nn_image img, oimg;
static nn_model model, omodel;
static uint32_t toks[256];
static char dir[96];
static uint8_t *rbuf;
static size_t rcap;

/* An exported lossless stream of tokens t[0, n) under model m. Caller frees. */
static uint8_t *stream_of(const nn_model *m, const uint32_t *t, uint32_t n, size_t *len)
{
    nn_session_opts o = { .max_seq = CTX, .max_batch = 32, .threads = 1 };
    size_t need;
    nn_session_arena_bytes(m, &o, &need);
    need += nn_kv_work_bytes(m, CTX) + 4096;
    uint8_t *mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    nn_arena a;
    nn_arena_init(&a, mem, need);
    nn_session s;
    nn_kv_work w;
    assert_int_equal(nn_session_init(&s, m, &o, &a), NN_OK);
    assert_int_equal(nn_kv_work_init(&w, m, CTX, &a), NN_OK);
    assert_int_equal(nn_session_forward(&s, t, n, NULL), NN_OK);
    nn_kv_range r = { 0, m->cfg.n_layers, 0, n };
    size_t cap = nn_kv_export_bound(m, &r, 0);
    uint8_t *out = malloc(cap);
    nn_kv_opts ko = { .codec = NN_KV_LOSSLESS };
    assert_int_equal(nn_kv_export(&s, &r, t, &ko, NULL, &w, out, cap, len), NN_OK);
    nn_session_deinit(&s);
    free(mem);
    return out;
}

static int setup(void **st)
{
    (void)st;
    tu_build_llama2c("stories260K", 4, &img_buf);
    tu_build_llama2c("stories260K", 8, &other_buf);   /* same shape, another identity */
    if (nn_image_from_memory(&img, img_buf.buf, img_buf.len) || nn_model_init(&model, &img) ||
        nn_image_from_memory(&oimg, other_buf.buf, other_buf.len) || nn_model_init(&omodel, &oimg))
        return -1;
    nn_kv_range whole = { 0, model.cfg.n_layers, 0, CTX };
    rcap = nn_kv_export_bound(&model, &whole, 0);
    rbuf = malloc(rcap);
    return tu_golden_tokens("stories260K", toks, NULL, 256) == 256 ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    kt_img_free(&img_buf);
    kt_img_free(&other_buf);
    free(rbuf);
    return 0;
}

static void fresh_dir(void)
{
    static int n;
    snprintf(dir, sizeof dir, "/tmp/kvmesh-test-store.%ld.%d", (long)getpid(), n++);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void rm_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void open_store(fw_store *s, uint64_t max_bytes, uint32_t max_entries)
{
    char err[256];
    fw_store_cfg c = { .dir = dir, .max_bytes = max_bytes, .max_entries = max_entries, .m = &model };
    if (fw_store_open(s, &c, rbuf, rcap, err, sizeof err)) fail_msg("%s", err);
}

static int put(fw_store *s, const nn_model *m, const uint32_t *t, uint32_t n, fw_store_evict_fn cb, void *user)
{
    size_t len;
    uint8_t *b = stream_of(m, t, n, &len);
    int entry = -1;
    char err[256];
    int rc = fw_store_put(s, b, len, cb, user, &entry, err, sizeof err);
    free(b);
    return rc ? -1 : entry;
}

static uint32_t ids_of(const uint32_t *t, uint32_t n, uint8_t (*ids)[32])
{
    return nn_kv_prefix_ids(&img.id, NN_KV_BLOCK, t, n, ids, FW_STORE_MAX_BLOCKS);
}

static void test_find_longest_and_short(void **st)
{
    (void)st;
    fresh_dir();
    fw_store s;
    open_store(&s, 64 << 20, 16);
    int e60 = put(&s, &model, toks, 60, NULL, NULL);
    assert_true(e60 >= 0);
    assert_int_equal(s.e[e60].positions, 60);
    assert_int_equal(s.e[e60].nblocks, 3);
    uint8_t ids[FW_STORE_MAX_BLOCKS][32];
    int entry;
    /* A requester with 100 tokens that agree on the first 60: block 2 is the longest hit. */
    assert_int_equal(fw_store_find(&s, (const uint8_t(*)[32])ids, ids_of(toks, 100, ids), &entry), 2);
    assert_int_equal(entry, e60);
    /* One that shares only the first 20 tokens of the 60-token context: block 0 finds it. */
    uint32_t other[40];
    memcpy(other, toks, sizeof other);
    for (int i = 20; i < 40; i++) other[i] = (toks[i] + 7) % 512;
    assert_int_equal(fw_store_find(&s, (const uint8_t(*)[32])ids, ids_of(other, 40, ids), &entry), 0);
    assert_int_equal(entry, e60);
    assert_int_equal(fw_store_find_id(&s, ids[0], -1), e60);
    assert_int_equal(fw_store_find_id(&s, ids[0], e60), -1);
    /* Diverging inside block 0: nothing. */
    other[5] = (toks[5] + 1) % 512;
    assert_int_equal(fw_store_find(&s, (const uint8_t(*)[32])ids, ids_of(other, 40, ids), &entry), -1);
    /* covers: the same context adds nothing; a longer one does. */
    uint32_t nb = ids_of(toks, 60, ids);
    assert_true(fw_store_covers(&s, ids[nb - 1], nb, 60));
    assert_false(fw_store_covers(&s, ids[nb - 1], nb, 61));
    /* Reading gives the stream back, and it imports. */
    size_t len;
    assert_int_equal(fw_store_read(&s, e60, rbuf, rcap, &len), 0);
    assert_int_equal(len, s.e[e60].bytes);
    nn_kv_info info;
    assert_int_equal(nn_kv_parse(rbuf, len, &info), NN_OK);
    /* Storing the same stream twice keeps one entry. */
    assert_int_equal(put(&s, &model, toks, 60, NULL, NULL), e60);
    assert_int_equal(s.count, 1);
    /* Another model's stream is refused. */
    assert_int_equal(put(&s, &omodel, toks, 60, NULL, NULL), -1);
    fw_store_close(&s);
    rm_dir();
}

static int evicted[8], n_evicted;
static void on_evict(void *user, const fw_store *s, int i)
{
    (void)user;
    (void)s;
    evicted[n_evicted++] = i;
}

static void test_bounds_evict_least_recently_used(void **st)
{
    (void)st;
    fresh_dir();
    fw_store s;
    open_store(&s, 64 << 20, 3);
    int a = put(&s, &model, toks, 32, on_evict, NULL);
    int b = put(&s, &model, toks + 40, 32, on_evict, NULL);
    int c = put(&s, &model, toks + 80, 32, on_evict, NULL);
    assert_true(a >= 0 && b >= 0 && c >= 0);
    size_t len;
    assert_int_equal(fw_store_read(&s, a, rbuf, rcap, &len), 0);   /* a is used: b is the oldest */
    n_evicted = 0;
    int d = put(&s, &model, toks + 120, 32, on_evict, NULL);
    assert_true(d >= 0);
    assert_int_equal(n_evicted, 1);
    assert_int_equal(evicted[0], b);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.st.evicted, 1);
    /* The byte bound: lowering it evicts the least recent until it fits. */
    uint64_t one = s.e[a].bytes;
    n_evicted = 0;
    fw_store_set_max_bytes(&s, one + one / 2, on_evict, NULL);
    assert_int_equal(s.count, 1);
    assert_true(s.bytes <= one + one / 2);
    assert_int_equal(n_evicted, 2);
    /* A stream larger than the store is refused, and nothing is written. */
    fw_store_set_max_bytes(&s, 100, NULL, NULL);
    assert_int_equal(put(&s, &model, toks, 32, NULL, NULL), -1);
    fw_store_close(&s);
    rm_dir();
}

static void test_reopen_keeps_contents_and_recency(void **st)
{
    (void)st;
    fresh_dir();
    fw_store s;
    open_store(&s, 64 << 20, 8);
    int a = put(&s, &model, toks, 32, NULL, NULL);
    int b = put(&s, &model, toks + 40, 48, NULL, NULL);
    char pa[320], pb[320];
    fw_store_path(&s, a, pa, sizeof pa);
    fw_store_path(&s, b, pb, sizeof pb);
    /* a used long ago, b recently. */
    struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } }, recent[2] = { { 2000, 0 }, { 2000, 0 } };
    utimensat(AT_FDCWD, pa, old, 0);
    utimensat(AT_FDCWD, pb, recent, 0);
    fw_store_close(&s);
    /* Reopened with room for one: the least recent (a) goes. */
    open_store(&s, 64 << 20, 1);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.st.loaded, 2);
    assert_int_equal(s.st.evicted, 1);
    assert_int_equal(access(pa, F_OK), -1);
    assert_int_equal(access(pb, F_OK), 0);
    uint8_t ids[FW_STORE_MAX_BLOCKS][32];
    int entry;
    assert_int_equal(fw_store_find(&s, (const uint8_t(*)[32])ids, ids_of(toks + 40, 48, ids), &entry), 2);
    fw_store_close(&s);
    rm_dir();
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_reopen_discards_torn_and_foreign(void **st)
{
    (void)st;
    fresh_dir();
    fw_store s;
    open_store(&s, 64 << 20, 16);
    int good = put(&s, &model, toks, 64, NULL, NULL);
    int cut = put(&s, &model, toks + 10, 40, NULL, NULL);
    int flip = put(&s, &model, toks + 20, 40, NULL, NULL);
    char pgood[320], pcut[320], pflip[320], p[400];
    fw_store_path(&s, good, pgood, sizeof pgood);
    fw_store_path(&s, cut, pcut, sizeof pcut);
    fw_store_path(&s, flip, pflip, sizeof pflip);
    uint64_t cut_bytes = s.e[cut].bytes;
    fw_store_close(&s);
    assert_int_equal(truncate(pcut, (off_t)(cut_bytes / 2)), 0);          /* a torn write */
    FILE *f = fopen(pflip, "r+b");                                        /* a bad sector */
    fseek(f, 300, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 300, SEEK_SET);
    fputc(ch ^ 0x10, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s", dir, "0123.kv.tmp");                   /* an interrupted put */
    write_file(p, (const uint8_t *)"half", 4);
    size_t olen;
    uint8_t *other = stream_of(&omodel, toks, 40, &olen);                  /* another model's */
    char hexname[65];
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hexname[2 * i] = d[other[152 + i] >> 4];
        hexname[2 * i + 1] = d[other[152 + i] & 15];
    }
    hexname[64] = '\0';
    snprintf(p, sizeof p, "%s/%s.kv", dir, hexname);
    write_file(p, other, olen);
    free(other);
    size_t glen;
    uint8_t *g = stream_of(&model, toks + 30, 40, &glen);                  /* valid, but misnamed */
    snprintf(p, sizeof p, "%s/%064d.kv", dir, 0);
    write_file(p, g, glen);
    free(g);
    snprintf(p, sizeof p, "%s/notes.txt", dir);                           /* not ours: left alone */
    write_file(p, (const uint8_t *)"x", 1);

    open_store(&s, 64 << 20, 16);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.st.loaded, 1);
    assert_int_equal(s.st.torn, 3);      /* .tmp, truncated, flipped */
    assert_int_equal(s.st.foreign, 2);   /* other model, misnamed */
    assert_int_equal(access(pgood, F_OK), 0);
    assert_int_equal(access(pcut, F_OK), -1);
    assert_int_equal(access(pflip, F_OK), -1);
    assert_int_equal(access(p, F_OK), 0);
    /* One service per directory. */
    fw_store s2;
    char err[256];
    fw_store_cfg c = { .dir = dir, .max_bytes = 1 << 20, .max_entries = 4, .m = &model };
    assert_int_equal(fw_store_open(&s2, &c, rbuf, rcap, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));
    assert_int_equal(fw_store_drop_all(&s, NULL, NULL), 1);
    assert_int_equal(s.count, 0);
    fw_store_close(&s);
    rm_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_longest_and_short),
        cmocka_unit_test(test_bounds_evict_least_recently_used),
        cmocka_unit_test(test_reopen_keeps_contents_and_recency),
        cmocka_unit_test(test_reopen_discards_torn_and_foreign),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
