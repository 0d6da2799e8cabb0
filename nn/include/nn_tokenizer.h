/*
 * nn_tokenizer.h: the tokenizer stored inside a model image (tensor NN_T_TOKENIZER).
 *
 * Kind NN_TOK_LLAMA2C is llama2.c's BPE: greedy merges by score, a dummy-prefix space,
 * and byte fallback to <0xXX> tokens. Encoding and decoding reproduce llama2.c's
 * run.c exactly. Scores are stored as integer ranks (the converter maps llama2.c's
 * float scores to their order), so merging needs no floating point.
 *
 * Blob layout (little-endian; offsets from the blob start):
 *   0  "KTOK"         4  u32 version (1)    8  u32 kind         12 u32 n_vocab
 *   16 u32 max_token_len                    20 u32 bos_id       24 u32 eos_id
 *   28 u32 byte_base (id of <0x00>; 256 byte tokens follow)     32 u32 flags
 *   36 u32 off_scores   i32[n_vocab]     merge rank, higher merges first
 *   40 u32 off_ends     u32[n_vocab]     end of each string in the string area (the
 *                                        string of id i is [end[i-1], end[i]) with a NUL
 *                                        as its last byte; end[-1] = 0)
 *   44 u32 off_sorted   u32[n_vocab]     ids in bytewise order of their strings
 *   48 u32 off_strings  52 u32 strings_bytes                    56..64 reserved
 *
 *     nn_tok_piece p = nn_tok_decode(&model.tok, prev, id);   // bytes to print
 *     uint32_t ids[64]; uint32_t n;
 *     nn_tok_encode(&model.tok, "Once upon a time", 1, 0, ids, 64, &n, scratch, sizeof scratch);
 */
#ifndef NN_TOKENIZER_H
#define NN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "nn_base.h"

typedef enum nn_tok_kind {
    NN_TOK_LLAMA2C = 1,
} nn_tok_kind;

#define NN_TOK_MAGIC        "KTOK"
#define NN_TOK_VERSION      1u
#define NN_TOK_HEADER_BYTES 64u

typedef struct nn_tokenizer {
    uint32_t kind, n_vocab, max_token_len, bos_id, eos_id, byte_base, flags;
    const int32_t  *scores;
    const uint32_t *ends;
    const uint32_t *sorted;
    const uint8_t  *strings;
    uint32_t strings_bytes;
} nn_tokenizer;

typedef struct nn_tok_piece {
    const uint8_t *p;   /* points into the image or a static table; not NUL-terminated */
    uint32_t len;
} nn_tok_piece;

/*
 * Validates the blob (every offset, length, terminator and the sort order) and fills t
 * with views into it. Returns NN_OK or NN_E_TOKENIZER.
 */
nn_status nn_tok_init(nn_tokenizer *t, const uint8_t *blob, size_t bytes);

/* The string of token id (without its NUL). Returns {NULL, 0} for an id out of range. */
nn_tok_piece nn_tok_str(const nn_tokenizer *t, uint32_t id);

/* id of the token whose string is exactly s[0, len), or -1. */
int32_t nn_tok_lookup(const nn_tokenizer *t, const uint8_t *s, uint32_t len);

/*
 * Encodes NUL-terminated UTF-8 text as llama2.c does: optional BOS, a dummy-prefix
 * space token when text is not empty, one token per code point (or its bytes), then
 * merges. Before merging there is one id per code point (or byte), so ids needs room
 * for strlen(text) + 3 entries even though the result is shorter. scratch must hold
 * nn_tok_scratch_bytes(t) bytes.
 * Returns NN_OK, NN_E_ARG (scratch too small), NN_E_RANGE (max_ids too small)
 * or NN_E_TOKENIZER (a byte with no token and no byte fallback).
 */
nn_status nn_tok_encode(const nn_tokenizer *t, const char *text, int bos, int eos,
                        uint32_t *ids, uint32_t max_ids, uint32_t *n_ids,
                        void *scratch, size_t scratch_bytes);
size_t nn_tok_scratch_bytes(const nn_tokenizer *t);

/*
 * The bytes to print for token id following prev, as llama2.c's decode: after BOS a
 * leading space is dropped; <0xXX> tokens become the raw byte. Out-of-range ids give
 * an empty piece.
 */
nn_tok_piece nn_tok_decode(const nn_tokenizer *t, uint32_t prev, uint32_t id);

#endif
