/*
 * nn_base.h: status codes, fixed-point scales and the static arena shared by all of nn/.
 *
 * Every nn function returns an nn_status (0 ok, negative error) or documents otherwise.
 * nn never allocates from the heap: buffers come from an nn_arena that the caller backs
 * with static storage (firmware) or a single init-time mapping (host tools).
 *
 *     static uint8_t storage[1 << 20] __attribute__((aligned(64)));
 *     nn_arena a;
 *     nn_arena_init(&a, storage, sizeof storage);
 *     int32_t *buf = nn_arena_alloc(&a, 256 * sizeof *buf, 64);   // NULL when full
 */
#ifndef NN_BASE_H
#define NN_BASE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nn maps little-endian images in place; big-endian hosts are not supported"
#endif

typedef enum nn_status {
    NN_OK            = 0,
    NN_E_ARG         = -1,  /* invalid argument (NULL, zero size, bad option) */
    NN_E_IO          = -2,  /* file could not be opened, read or mapped */
    NN_E_MAGIC       = -3,  /* not a kvmesh model image */
    NN_E_VERSION     = -4,  /* unsupported image format or numerics version */
    NN_E_TRUNCATED   = -5,  /* data ends before its header says it does */
    NN_E_CORRUPT     = -6,  /* inconsistent header, directory or contents */
    NN_E_SHAPE       = -7,  /* a required tensor is missing or has the wrong shape */
    NN_E_NOMEM       = -8,  /* the arena is too small (see the *_arena_bytes calls) */
    NN_E_RANGE       = -9,  /* token, position or range outside the model or session */
    NN_E_FINGERPRINT = -10, /* the image's sha256 does not match its contents */
    NN_E_TOKENIZER   = -11, /* tokenizer data invalid, or text cannot be encoded */
    NN_E_MODEL       = -12, /* data bound to another model identity */
    NN_E_THREAD      = -13, /* a worker thread could not be started */
    NN_E_CODEC       = -14, /* KV stream invalid or codec unsupported */
} nn_status;

/* Returns a static, human-readable description of s. Never NULL. */
const char *nn_strerror(nn_status s);

/*
 * A positive fixed-point scale: real value = m * 2^-e.
 * Normalised scales have m in [2^31, 2^32); m == 0 means the value is exactly zero.
 */
typedef struct nn_scale {
    uint32_t m;
    int32_t  e;
} nn_scale;

/*
 * Bump allocator over caller-owned memory. A measuring arena (base NULL) hands out
 * nothing but counts what would be needed, so that sizing and carving share one code
 * path and cannot disagree.
 */
typedef struct nn_arena {
    uint8_t *base;    /* NULL: measuring */
    size_t   size;
    size_t   used;    /* bytes requested so far, with alignment padding; may pass size */
} nn_arena;

/* base may be NULL (measuring arena; size is then ignored). */
void nn_arena_init(nn_arena *a, void *base, size_t size);

/*
 * Returns bytes of zeroed memory aligned to align (a power of two), or NULL when the
 * arena is measuring or full. Requests are counted either way, so after a failed carve
 * nn_arena_needed() says how much the whole carve needs.
 */
void *nn_arena_alloc(nn_arena *a, size_t bytes, size_t align);

/* The largest alignment nn asks of an arena. */
#define NN_ARENA_ALIGN 64

/*
 * Bytes requested in total so far (fitted or not), rounded up to NN_ARENA_ALIGN, so that
 * sizes measured separately add up: carving A then B needs at most needed(A) + needed(B)
 * whatever the padding between them.
 */
size_t nn_arena_needed(const nn_arena *a);

#endif
