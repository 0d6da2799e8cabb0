/*
 * Image loading refuses every malformed image with a clear status and never reads out
 * of bounds (this suite also runs under ASan+UBSan).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static kt_img good;            /* a small random-weight image, built once */

static int setup(void **st)
{
    (void)st;
    tu_build_random("64,172,2,8,4,300,64", 4, NN_NUMERICS_VERSION, 7, &good);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    kt_img_free(&good);
    return 0;
}

static uint8_t *copy(void)
{
    uint8_t *p = malloc(good.len);
    memcpy(p, good.buf, good.len);
    return p;
}

static nn_status load(const uint8_t *p, size_t n)
{
    nn_image img;
    static nn_model m;
    nn_status st = nn_image_from_memory(&img, p, n);
    if (!st)
        st = nn_model_init(&m, &img);
    return st;
}

static void valid_image_loads_and_verifies(void **st)
{
    (void)st;
    nn_image img;
    assert_int_equal(nn_image_from_memory(&img, good.buf, good.len), NN_OK);
    assert_int_equal(nn_image_verify(&img), NN_OK);
    assert_int_equal(load(good.buf, good.len), NN_OK);
    assert_int_equal(img.cfg.group_size, 4);
    assert_int_equal(img.id.numerics_version, NN_NUMERICS_VERSION);
}

static void truncation(void **st)
{
    (void)st;
    assert_int_equal(load(good.buf, 0), NN_E_MAGIC);
    assert_int_equal(load(good.buf, 7), NN_E_MAGIC);
    assert_int_equal(load(good.buf, 100), NN_E_TRUNCATED);
    for (size_t n = NN_IMAGE_HEADER_BYTES; n < good.len; n += 1 + n / 3)
        assert_int_equal(load(good.buf, n), NN_E_TRUNCATED);
    assert_int_equal(load(good.buf, good.len - 1), NN_E_TRUNCATED);
}

static void bad_magic_and_versions(void **st)
{
    (void)st;
    uint8_t *p = copy();
    p[0] ^= 1;
    assert_int_equal(load(p, good.len), NN_E_MAGIC);
    p[0] ^= 1;
    nn_wr32(p + NN_IMG_OFF_FORMAT, NN_IMAGE_FORMAT_VERSION + 1);
    assert_int_equal(load(p, good.len), NN_E_VERSION);
    nn_wr32(p + NN_IMG_OFF_FORMAT, NN_IMAGE_FORMAT_VERSION);
    nn_wr32(p + NN_IMG_OFF_NUMERICS, NN_NUMERICS_ACT8 + 1);
    assert_int_equal(load(p, good.len), NN_E_VERSION);
    nn_wr32(p + NN_IMG_OFF_NUMERICS, 0);
    assert_int_equal(load(p, good.len), NN_E_VERSION);
    free(p);
    /* Interleaved weights (NN_DT_Q8G8) exist only in numerics version 2: the same image
     * relabelled version 1 is refused; version 2 with row-major weights is valid. */
    kt_img v2;
    tu_build_random("64,172,2,8,4,300,64", 4, NN_NUMERICS_ACT8, 7, &v2);
    assert_int_equal(load(v2.buf, v2.len), NN_OK);
    nn_wr32(v2.buf + NN_IMG_OFF_NUMERICS, NN_NUMERICS_VERSION);
    assert_int_equal(load(v2.buf, v2.len), NN_E_SHAPE);
    kt_img_free(&v2);
    p = copy();
    nn_wr32(p + NN_IMG_OFF_NUMERICS, NN_NUMERICS_ACT8);
    assert_int_equal(load(p, good.len), NN_OK);
    free(p);
}

static void corrupt_header_fields(void **st)
{
    (void)st;
    static const struct { uint32_t off; uint32_t val; } bad[] = {
        { NN_IMG_OFF_HEADS, 0 }, { NN_IMG_OFF_KV_HEADS, 3 }, { NN_IMG_OFF_HEAD_DIM, 7 },
        { NN_IMG_OFF_GROUP, 0 }, { NN_IMG_OFF_GROUP, 257 }, { NN_IMG_OFF_LAYERS, 0 },
        { NN_IMG_OFF_LAYERS, 100000 }, { NN_IMG_OFF_DIM, 0 }, { NN_IMG_OFF_N_TENSORS, 0 },
        { NN_IMG_OFF_N_TENSORS, 1u << 30 }, { NN_IMG_OFF_DIR, 3 }, { NN_IMG_OFF_FLAGS, 0x80 },
        { NN_IMG_OFF_HEADER_BYTES, 128 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *p = copy();
        nn_wr32(p + bad[i].off, bad[i].val);
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        free(p);
    }
    uint8_t *p = copy();
    nn_wr64(p + NN_IMG_OFF_FILE_BYTES, good.len - 8);     /* trailing bytes */
    assert_int_equal(load(p, good.len), NN_E_CORRUPT);
    free(p);
    /* Shape changes that still parse are caught when the model is carved. */
    p = copy();
    nn_wr32(p + NN_IMG_OFF_HIDDEN, 168);
    assert_int_equal(load(p, good.len), NN_E_SHAPE);
    free(p);
    p = copy();
    nn_wr32(p + NN_IMG_OFF_VOCAB, 301);
    assert_int_not_equal(load(p, good.len), NN_OK);
    free(p);
}

static uint8_t *dir_entry(uint8_t *p, uint32_t i)
{
    return p + nn_rd64(p + NN_IMG_OFF_DIR) + (size_t)i * NN_IMAGE_DIR_ENTRY_BYTES;
}

static void corrupt_directory(void **st)
{
    (void)st;
    uint32_t n = nn_rd32(good.buf + NN_IMG_OFF_N_TENSORS);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = copy();
        nn_wr64(dir_entry(p, i) + 24, good.len);               /* data past the end */
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        memcpy(p, good.buf, good.len);
        nn_wr64(dir_entry(p, i) + 24, nn_rd64(dir_entry(p, (i + 1) % n) + 24));   /* overlap */
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        memcpy(p, good.buf, good.len);
        nn_wr32(dir_entry(p, i) + 12, nn_rd32(dir_entry(p, i) + 12) + 1);        /* rows vs bytes */
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        memcpy(p, good.buf, good.len);
        nn_wr32(dir_entry(p, i) + 8, 9);                                           /* dtype */
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        memcpy(p, good.buf, good.len);
        memcpy(dir_entry(p, i), dir_entry(p, (i + 1) % n), 8);                    /* duplicate name */
        assert_int_equal(load(p, good.len), NN_E_CORRUPT);
        free(p);
    }
    /* A missing tensor: rename one to a kind the model never uses twice. */
    uint8_t *p = copy();
    nn_wr32(dir_entry(p, 1) + 4, 1);          /* layer 0 attention norm becomes layer 1's */
    assert_int_not_equal(load(p, good.len), NN_OK);
    free(p);
}

static void tampered_weights_fail_verification(void **st)
{
    (void)st;
    uint8_t *p = copy();
    p[NN_IMAGE_HEADER_BYTES + 3] ^= 0x10;
    nn_image img;
    assert_int_equal(nn_image_from_memory(&img, p, good.len), NN_OK);
    assert_int_equal(nn_image_verify(&img), NN_E_FINGERPRINT);
    free(p);
}

/* Random damage anywhere in the header and directory: a status, never a crash. */
static void random_damage_never_crashes(void **st)
{
    (void)st;
    uint64_t r = 12345;
    size_t dir = nn_rd64(good.buf + NN_IMG_OFF_DIR);
    static nn_model m;
    static uint8_t arena[1 << 20];
    for (int it = 0; it < 3000; it++) {
        uint8_t *p = copy();
        int flips = 1 + (int)(r % 4);
        for (int f = 0; f < flips; f++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t span = NN_IMAGE_HEADER_BYTES + (good.len - dir);
            size_t at = (r >> 33) % span;
            at = at < NN_IMAGE_HEADER_BYTES ? at : dir + (at - NN_IMAGE_HEADER_BYTES);
            p[at] ^= (uint8_t)(1u << ((r >> 20) & 7));
        }
        nn_image img;
        if (nn_image_from_memory(&img, p, good.len) == NN_OK && nn_model_init(&m, &img) == NN_OK) {
            /* Whatever survived validation must run without faults. */
            nn_arena a;
            nn_arena_init(&a, arena, sizeof arena);
            nn_session s;
            nn_session_opts o = { .max_seq = 4 };
            if (nn_session_init(&s, &m, &o, &a) == NN_OK) {
                uint32_t t[2] = { 1, 5 };
                const int32_t *lg;
                nn_session_forward(&s, t, 2, &lg);
                nn_session_deinit(&s);
            }
        }
        free(p);
    }
}

static void open_errors(void **st)
{
    (void)st;
    nn_image img;
    assert_int_equal(nn_image_open(&img, "/nonexistent/model.kvm"), NN_E_IO);
    assert_int_equal(nn_image_open(&img, "/"), NN_E_IO);
    char path[] = "/tmp/kvmesh-img-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(nn_image_open(&img, path), NN_E_MAGIC);            /* empty */
    assert_int_equal(write(fd, good.buf, 100), 100);
    assert_int_equal(nn_image_open(&img, path), NN_E_TRUNCATED);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, good.buf, good.len, 0), (ssize_t)good.len);
    assert_int_equal(nn_image_open(&img, path), NN_OK);
    assert_int_equal(nn_image_verify(&img), NN_OK);
    nn_image_close(&img);
    nn_image_close(NULL);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_image_loads_and_verifies),
        cmocka_unit_test(truncation),
        cmocka_unit_test(bad_magic_and_versions),
        cmocka_unit_test(corrupt_header_fields),
        cmocka_unit_test(corrupt_directory),
        cmocka_unit_test(tampered_weights_fail_verification),
        cmocka_unit_test(random_damage_never_crashes),
        cmocka_unit_test(open_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
