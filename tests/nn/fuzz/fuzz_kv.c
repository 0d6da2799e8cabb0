/*
 * libFuzzer harness for the KV stream decoder: nn_kv_parse and nn_kv_import on hostile
 * input. Each input is tried twice: as it is (the digest check must hold every mutation
 * off), and with its fingerprint and digest fixed up, so that mutations reach the
 * header checks, the token matching and the codecs (zstd, lossless planes, lossy
 * dequantisation) behind the digest.
 * KVMESH_FUZZ_IMAGE names the model image (tests/nn/fuzz.sh makes a small one).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

static nn_image img;
static nn_model model;
static nn_session sess;
static nn_kv_work work;
static uint8_t *copy;

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *path = getenv("KVMESH_FUZZ_IMAGE");
    if (!path || nn_image_open(&img, path) || nn_model_init(&model, &img)) {
        fprintf(stderr, "fuzz_kv: set KVMESH_FUZZ_IMAGE to a valid image\n");
        abort();
    }
    nn_session_opts o = { .max_seq = 64, .max_batch = 8 };
    size_t need;
    nn_session_arena_bytes(&model, &o, &need);
    need += nn_kv_work_bytes(&model, 64);
    static nn_arena a;
    nn_arena_init(&a, malloc(need), need);
    if (nn_session_init(&sess, &model, &o, &a) || nn_kv_work_init(&work, &model, 64, &a))
        abort();
    copy = malloc(1 << 20);
}

static void try_import(const uint8_t *buf, size_t len)
{
    static const uint32_t toks[64] = { 1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61 };
    uint32_t reused;
    nn_session_truncate(&sess, 0);
    nn_status st = nn_kv_import(&sess, buf, len, toks, 64, NULL, &work, &reused);
    if (st == NN_OK && sess.n_pos > 0) {
        /* Whatever was accepted must run. */
        const int32_t *lg;
        uint32_t t = 3;
        if (sess.n_pos < sess.max_seq)
            nn_session_forward(&sess, &t, 1, &lg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    nn_kv_info in;
    nn_kv_parse(data, size, &in);
    try_import(data, size);
    if (size >= NN_KV_HEADER_BYTES && size <= (1 << 20)) {
        memcpy(copy, data, size);
        memcpy(copy + 16, img.id.fingerprint, 32);
        nn_wr32(copy + 48, img.id.numerics_version);
        memset(copy + 152, 0, 32);
        uint8_t d[32];
        nn_sha256_buf(copy, size, d);   /* the digest covers the stream with its field zeroed */
        memcpy(copy + 152, d, 32);
        try_import(copy, size);
    }
    return 0;
}
