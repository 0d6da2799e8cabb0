/*
 * Model image: mapping and validation. Every offset and length is checked before the
 * engine touches it; a corrupt image is refused here, never discovered in the forward
 * pass.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn_image.h"
#include "nn_sha256.h"

/* data bytes and scale bytes a tensor of this shape must have; 0 on overflow. */
static int tensor_sizes(uint32_t dtype, uint32_t rows, uint32_t cols, uint32_t group,
                        uint64_t *data_bytes, uint64_t *scale_bytes)
{
    uint64_t n = (uint64_t)rows * cols;       /* both < 2^32: no overflow in 64 bits */
    *scale_bytes = 0;
    switch (dtype) {
    case NN_DT_Q8G:
        *data_bytes = n;
        *scale_bytes = (uint64_t)rows * nn_groups(cols, group) * 2;
        return 1;
    case NN_DT_Q8G8:
        *data_bytes = (uint64_t)(rows + 7) / 8 * ((cols + 3) / 4) * 32;
        *scale_bytes = (uint64_t)(rows + 7) / 8 * nn_groups(cols, group) * 16;
        return group % 4 == 0;
    case NN_DT_I32:   *data_bytes = n * 4; return 1;
    case NN_DT_U64:   *data_bytes = n * 8; return 1;
    case NN_DT_BYTES: *data_bytes = cols; return rows == 1;
    }
    return 0;
}

typedef struct span { uint64_t lo, hi; } span;

static int spans_overlap(span a, span b) { return a.lo < b.hi && b.lo < a.hi; }

static nn_status parse_config(nn_image *img)
{
    const uint8_t *h = img->data;
    nn_config *c = &img->cfg;
    c->flags          = nn_rd32(h + NN_IMG_OFF_FLAGS);
    c->dim            = nn_rd32(h + NN_IMG_OFF_DIM);
    c->hidden_dim     = nn_rd32(h + NN_IMG_OFF_HIDDEN);
    c->n_layers       = nn_rd32(h + NN_IMG_OFF_LAYERS);
    c->n_heads        = nn_rd32(h + NN_IMG_OFF_HEADS);
    c->n_kv_heads     = nn_rd32(h + NN_IMG_OFF_KV_HEADS);
    c->head_dim       = nn_rd32(h + NN_IMG_OFF_HEAD_DIM);
    c->vocab_size     = nn_rd32(h + NN_IMG_OFF_VOCAB);
    c->max_seq        = nn_rd32(h + NN_IMG_OFF_MAX_SEQ);
    c->group_size     = nn_rd32(h + NN_IMG_OFF_GROUP);
    c->tokenizer_kind = nn_rd32(h + NN_IMG_OFF_TOKENIZER);
    c->rope_theta_q16 = nn_rd64(h + NN_IMG_OFF_ROPE_THETA);
    c->norm_eps_q32   = nn_rd64(h + NN_IMG_OFF_NORM_EPS);

    if (c->dim == 0 || c->dim > NN_MAX_DIM || c->hidden_dim == 0 || c->hidden_dim > 4 * NN_MAX_DIM ||
        c->n_layers == 0 || c->n_layers > NN_MAX_LAYERS ||
        c->n_heads == 0 || c->n_kv_heads == 0 || c->n_heads % c->n_kv_heads ||
        c->head_dim == 0 || c->head_dim % 2 || c->head_dim > NN_MAX_HEAD_DIM ||
        (uint64_t)c->n_heads * c->head_dim > NN_MAX_DIM ||
        c->vocab_size == 0 || c->vocab_size > NN_MAX_VOCAB ||
        c->max_seq == 0 || c->max_seq > NN_MAX_SEQ ||
        c->group_size == 0 || c->group_size > NN_MAX_GROUP ||
        c->norm_eps_q32 >= (1ull << 32) || (c->flags & ~NN_IMG_FLAG_TIED_CLASSIFIER))
        return NN_E_CORRUPT;
    return NN_OK;
}

static nn_status validate(nn_image *img)
{
    const uint8_t *h = img->data;
    if (img->size < 8 || memcmp(h, NN_IMAGE_MAGIC, 8) != 0)
        return NN_E_MAGIC;
    if (img->size < NN_IMAGE_HEADER_BYTES)
        return NN_E_TRUNCATED;
    img->format_version = nn_rd32(h + NN_IMG_OFF_FORMAT);
    img->id.numerics_version = nn_rd32(h + NN_IMG_OFF_NUMERICS);
    uint32_t nv = img->id.numerics_version;
    if (img->format_version != NN_IMAGE_FORMAT_VERSION || (nv != NN_NUMERICS_VERSION && nv != NN_NUMERICS_ACT8))
        return NN_E_VERSION;
    if (nn_rd32(h + NN_IMG_OFF_HEADER_BYTES) != NN_IMAGE_HEADER_BYTES)
        return NN_E_CORRUPT;
    uint64_t file_bytes = nn_rd64(h + NN_IMG_OFF_FILE_BYTES);
    if (file_bytes > img->size)
        return NN_E_TRUNCATED;
    if (file_bytes != img->size)
        return NN_E_CORRUPT;
    for (uint32_t i = NN_IMG_OFF_FINGERPRINT + 32; i < NN_IMAGE_HEADER_BYTES; i++)
        if (h[i])
            return NN_E_CORRUPT;
    nn_status st = parse_config(img);
    if (st)
        return st;
    memcpy(img->id.fingerprint, h + NN_IMG_OFF_FINGERPRINT, 32);

    uint32_t n = nn_rd32(h + NN_IMG_OFF_N_TENSORS);
    uint64_t dir = nn_rd64(h + NN_IMG_OFF_DIR);
    uint64_t max_tensors = 16 + 16ull * img->cfg.n_layers;
    if (n == 0 || n > max_tensors || dir < NN_IMAGE_HEADER_BYTES || dir % 8 ||
        dir > img->size || (uint64_t)n * NN_IMAGE_DIR_ENTRY_BYTES > img->size - dir)
        return NN_E_CORRUPT;
    img->n_tensors = n;
    img->dir = h + dir;

    span fixed[2] = { { 0, NN_IMAGE_HEADER_BYTES }, { dir, dir + (uint64_t)n * NN_IMAGE_DIR_ENTRY_BYTES } };
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = img->dir + (size_t)i * NN_IMAGE_DIR_ENTRY_BYTES;
        uint32_t kind = nn_rd32(e), layer = nn_rd32(e + 4), dtype = nn_rd32(e + 8);
        uint32_t rows = nn_rd32(e + 12), cols = nn_rd32(e + 16);
        uint64_t off = nn_rd64(e + 24), bytes = nn_rd64(e + 32), soff = nn_rd64(e + 40);
        uint64_t want, sbytes;
        if (kind < NN_T_TOK_EMB || kind > NN_T_EXIT_PROJ || rows == 0 || cols == 0 ||
            (layer != NN_LAYER_NONE && layer >= img->cfg.n_layers) ||
            !tensor_sizes(dtype, rows, cols, img->cfg.group_size, &want, &sbytes) || bytes != want ||
            off % NN_IMAGE_ALIGN || off > img->size || bytes > img->size - off)
            return NN_E_CORRUPT;
        span s[2] = { { off, off + bytes }, { soff, soff + sbytes } };
        if (sbytes) {
            if (soff % 2 || soff > img->size || sbytes > img->size - soff || spans_overlap(s[0], s[1]))
                return NN_E_CORRUPT;
        } else if (soff) {
            return NN_E_CORRUPT;
        }
        for (int k = 0; k < (sbytes ? 2 : 1); k++)
            for (int f = 0; f < 2; f++)
                if (spans_overlap(s[k], fixed[f]))
                    return NN_E_CORRUPT;
        /* No two tensors share bytes or a (kind, layer) name. n is small (<= 16/layer). */
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *o = img->dir + (size_t)j * NN_IMAGE_DIR_ENTRY_BYTES;
            if (nn_rd32(o) == kind && nn_rd32(o + 4) == layer)
                return NN_E_CORRUPT;
            uint64_t ow = 0, osb = 0;
            tensor_sizes(nn_rd32(o + 8), nn_rd32(o + 12), nn_rd32(o + 16), img->cfg.group_size, &ow, &osb);
            span t[2] = { { nn_rd64(o + 24), nn_rd64(o + 24) + ow }, { nn_rd64(o + 40), nn_rd64(o + 40) + osb } };
            for (int k = 0; k < (sbytes ? 2 : 1); k++)
                for (int m = 0; m < (osb ? 2 : 1); m++)
                    if (spans_overlap(s[k], t[m]))
                        return NN_E_CORRUPT;
        }
    }
    return NN_OK;
}

nn_status nn_image_from_memory(nn_image *img, const void *data, size_t size)
{
    if (!img || !data)
        return NN_E_ARG;
    memset(img, 0, sizeof *img);
    img->data = data;
    img->size = size;
    nn_status st = validate(img);
    if (st)
        memset(img, 0, sizeof *img);
    return st;
}

nn_status nn_image_open(nn_image *img, const char *path)
{
    if (!img || !path)
        return NN_E_ARG;
    memset(img, 0, sizeof *img);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NN_E_IO;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return NN_E_IO;
    }
    if (sb.st_size < (off_t)NN_IMAGE_HEADER_BYTES) {
        /* Too short to map usefully: read what is there to tell "truncated" from "not
         * an image". */
        uint8_t head[NN_IMAGE_HEADER_BYTES];
        ssize_t got = read(fd, head, sizeof head);
        close(fd);
        if (got >= 8 && memcmp(head, NN_IMAGE_MAGIC, 8) == 0)
            return NN_E_TRUNCATED;
        return NN_E_MAGIC;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return NN_E_IO;
    nn_status st = nn_image_from_memory(img, p, (size_t)sb.st_size);
    if (st) {
        munmap(p, (size_t)sb.st_size);
        return st;
    }
    img->mapped = 1;
    return NN_OK;
}

void nn_image_close(nn_image *img)
{
    if (!img)
        return;
    if (img->mapped && img->data)
        munmap((void *)img->data, img->size);
    memset(img, 0, sizeof *img);
}

void nn_image_fingerprint(const uint8_t *data, size_t size, uint8_t out[32])
{
    nn_sha256_zeroed(data, size, NN_IMG_OFF_FINGERPRINT, out);
}

nn_status nn_image_verify(const nn_image *img)
{
    if (!img || !img->data)
        return NN_E_ARG;
    uint8_t fp[32];
    nn_image_fingerprint(img->data, img->size, fp);
    return memcmp(fp, img->id.fingerprint, 32) ? NN_E_FINGERPRINT : NN_OK;
}

nn_status nn_image_tensor(const nn_image *img, uint32_t kind, uint32_t layer, nn_tensor *out)
{
    for (uint32_t i = 0; i < img->n_tensors; i++) {
        const uint8_t *e = img->dir + (size_t)i * NN_IMAGE_DIR_ENTRY_BYTES;
        if (nn_rd32(e) != kind || nn_rd32(e + 4) != layer)
            continue;
        out->kind = kind;
        out->layer = layer;
        out->dtype = nn_rd32(e + 8);
        out->rows = nn_rd32(e + 12);
        out->cols = nn_rd32(e + 16);
        out->exp = (int32_t)nn_rd32(e + 20);
        out->data = img->data + nn_rd64(e + 24);
        out->data_bytes = nn_rd64(e + 32);
        int q8 = out->dtype == NN_DT_Q8G || out->dtype == NN_DT_Q8G8;
        out->scales = q8 ? (const uint16_t *)(const void *)(img->data + nn_rd64(e + 40)) : NULL;
        return NN_OK;
    }
    return NN_E_SHAPE;
}
