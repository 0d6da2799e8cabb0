/*
 * nn_sha256.h: SHA-256 (FIPS 180-4) for image fingerprints and KV prefix ids.
 * nn depends on libc only, so it carries its own small implementation.
 *
 *     nn_sha256 h;
 *     uint8_t digest[NN_SHA256_BYTES];
 *     nn_sha256_init(&h);
 *     nn_sha256_update(&h, data, len);      // any number of times
 *     nn_sha256_final(&h, digest);
 */
#ifndef NN_SHA256_H
#define NN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define NN_SHA256_BYTES 32

typedef struct nn_sha256 {
    uint32_t h[8];
    uint64_t bytes;        /* total message length so far */
    uint8_t  block[64];
    uint32_t fill;         /* bytes waiting in block */
} nn_sha256;

void nn_sha256_init(nn_sha256 *s);
void nn_sha256_update(nn_sha256 *s, const void *data, size_t len);
void nn_sha256_final(nn_sha256 *s, uint8_t out[NN_SHA256_BYTES]);
/* One-shot convenience. */
void nn_sha256_buf(const void *data, size_t len, uint8_t out[NN_SHA256_BYTES]);
/* SHA-256 of data[0, len) with the 32 bytes at off read as zeros (a digest over a
 * record that holds its own digest). off + 32 <= len. */
void nn_sha256_zeroed(const uint8_t *data, size_t len, size_t off, uint8_t out[NN_SHA256_BYTES]);

#endif
