/*
 * nn_tokenizer.h: the tokenizer stored inside a model image (tensor NN_T_TOKENIZER).
 *
 * Two kinds, both integer-only and heap-free (the caller passes scratch):
 *
 * NN_TOK_LLAMA2C (blob version 1): llama2.c's BPE, which is also SentencePiece's and
 *   llama.cpp's "llama" (SPM) tokenizer: greedy merges by the score of the merged
 *   string, a dummy-prefix space, and byte fallback to <0xXX> tokens. Encoding and
 *   decoding reproduce llama2.c's run.c exactly. Scores are stored as integer ranks (the
 *   converter maps float scores to their order), so merging needs no floating point.
 *
 * NN_TOK_BPE (blob version 2): Hugging Face tokenizers' BPE model, as tokenizer.json
 *   describes it (and llama.cpp's "gpt2" BPE). Merges are ranked by pair of ids, not by
 *   the merged string, because two splits can make the same string. Two families:
 *   - SentencePiece-style (Llama 2, TinyLlama): spaces become U+2581 "▁", a "▁" is
 *     prepended (NN_TOK_F_PREPEND_*), characters missing from the vocabulary fall back
 *     to <0xXX> byte tokens;
 *   - byte-level (GPT-2, SmolLM2, Llama 3): the text is first split by a pre-tokenizer
 *     (GPT-2's regex or Llama 3's, hand-coded, with Unicode letter/number tables), then
 *     every byte is a symbol. Vocabulary strings are stored as the raw bytes they
 *     stand for (the converter undoes GPT-2's byte-to-unicode map), so any byte
 *     sequence, valid UTF-8 or not, encodes and decodes back to itself.
 *   Added (special) tokens such as <|im_start|> are matched in the text first,
 *   leftmost-longest, as tokenizers' added vocabulary does.
 *
 * Blob layout, version 1 (little-endian; offsets from the blob start):
 *   0  "KTOK"         4  u32 version (1)    8  u32 kind (1)     12 u32 n_vocab
 *   16 u32 max_token_len                    20 u32 bos_id       24 u32 eos_id
 *   28 u32 byte_base (id of <0x00>; 256 byte tokens follow)     32 u32 flags (0)
 *   36 u32 off_scores   i32[n_vocab]     merge rank, higher merges first
 *   40 u32 off_ends     u32[n_vocab]     end of each string in the string area (the
 *                                        string of id i is [end[i-1], end[i]) with a NUL
 *                                        as its last byte; end[-1] = 0)
 *   44 u32 off_sorted   u32[n_vocab]     ids in bytewise order of their strings
 *   48 u32 off_strings  52 u32 strings_bytes                    56..64 reserved
 *
 * Blob layout, version 2 (kind NN_TOK_BPE; header NN_TOK_V2_HEADER_BYTES):
 *   0..28  as version 1 (version 2, kind 2), 28 u32 unk_id (NN_TOK_NONE if none)
 *   32 u32 flags (NN_TOK_F_*)               36 u32 pretok (nn_tok_pretok)
 *   40 u32 off_ends, 44 u32 off_strings, 48 u32 strings_bytes: the lookup strings
 *            (the model vocabulary's own form: "▁the", or raw bytes for byte-level),
 *            laid out as in version 1
 *   52 u32 off_dends, 56 u32 off_dstrings, 60 u32 dstrings_bytes: display strings,
 *            what decoding prints ("▁" shown as " ", <0xXX> as the byte), same layout
 *   64 u32 off_sorted, 68 u32 n_sorted: ids of the model vocabulary (added tokens
 *            excluded) in strictly increasing bytewise order of their lookup strings
 *   72 u32 off_merges, 76 u32 n_merges: entries of 4 u32 {left, right, result, rank},
 *            strictly increasing by (left, right); a lower rank merges first
 *   80 u32 off_bytes: u32[256], the token of each raw byte (byte-level symbols, or
 *            the <0xXX> fallback), NN_TOK_NONE where there is none
 *   84 u32 off_special, 88 u32 n_special: ids of the added tokens matched in text
 *            (by their display string)
 *   92..128 reserved (0)
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
    NN_TOK_BPE     = 2,
} nn_tok_kind;

/* Pre-tokenizers of NN_TOK_BPE (how text is cut into words before merging). */
typedef enum nn_tok_pretok {
    NN_TOK_PRE_NONE   = 0,  /* the whole segment is one word */
    NN_TOK_PRE_GPT2   = 1,  /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    NN_TOK_PRE_LLAMA3 = 2,  /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                               ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
} nn_tok_pretok;

/* NN_TOK_BPE flags. */
#define NN_TOK_F_BYTE_LEVEL     0x001u  /* symbols are bytes (GPT-2 byte-level BPE) */
#define NN_TOK_F_SPACE_TO_META  0x002u  /* ' ' becomes "▁" (U+2581) before lookup */
#define NN_TOK_F_PREPEND_ALWAYS 0x004u  /* prepend "▁" to every non-empty text segment */
#define NN_TOK_F_PREPEND_META   0x008u  /* ... unless it already starts with "▁" (Metaspace) */
#define NN_TOK_F_PREPEND_FIRST  0x010u  /* ... only to the segment at the start of the text */
#define NN_TOK_F_META_SPLIT     0x020u  /* words start at each "▁" (Metaspace split) */
#define NN_TOK_F_DIGITS         0x040u  /* every number character is its own word first */
#define NN_TOK_F_IGNORE_MERGES  0x080u  /* a word that is itself a token is taken whole */
#define NN_TOK_F_FUSE_UNK       0x100u  /* consecutive unknown characters give one unk */
#define NN_TOK_F_STRIP_SPACE    0x200u  /* decoding drops one leading space after BOS */
#define NN_TOK_F_ADD_BOS        0x400u  /* the model's own tokenizer prepends BOS */
#define NN_TOK_F_ALL            0x7ffu

#define NN_TOK_MAGIC           "KTOK"
#define NN_TOK_VERSION         1u     /* kind NN_TOK_LLAMA2C */
#define NN_TOK_VERSION_BPE     2u     /* kind NN_TOK_BPE */
#define NN_TOK_HEADER_BYTES    64u
#define NN_TOK_V2_HEADER_BYTES 128u
#define NN_TOK_NONE            0xffffffffu
#define NN_TOK_MAX_LEN         4096u  /* longest token string, in bytes */

typedef struct nn_tokenizer {
    uint32_t kind, version, n_vocab, max_token_len, bos_id, eos_id, byte_base, flags;
    const int32_t  *scores;     /* v1 */
    const uint32_t *ends;
    const uint32_t *sorted;
    const uint8_t  *strings;
    uint32_t strings_bytes;
    /* v2 */
    uint32_t unk_id, pretok, n_sorted, n_merges, n_special;
    const uint32_t *dends;
    const uint8_t  *dstrings;
    const uint32_t *merges;     /* n_merges x {left, right, result, rank} */
    const uint32_t *byte_ids;   /* [256] */
    const uint32_t *special;
    uint8_t special_first[32];  /* bitmap of the first bytes of special strings */
} nn_tokenizer;

typedef struct nn_tok_piece {
    const uint8_t *p;   /* points into the image or a static table; not NUL-terminated */
    uint32_t len;
} nn_tok_piece;

/*
 * Validates the blob (every offset, length, terminator, id, the sort orders and the
 * merge table) and fills t with views into it. Returns NN_OK or NN_E_TOKENIZER.
 */
nn_status nn_tok_init(nn_tokenizer *t, const uint8_t *blob, size_t bytes);

/* The lookup string of token id (without its NUL). Returns {NULL, 0} for an id out of range. */
nn_tok_piece nn_tok_str(const nn_tokenizer *t, uint32_t id);

/* id of the vocabulary token whose lookup string is exactly s[0, len), or -1. */
int32_t nn_tok_lookup(const nn_tokenizer *t, const uint8_t *s, uint32_t len);

/*
 * Encodes NUL-terminated text. Kind NN_TOK_LLAMA2C as llama2.c does: optional BOS, a
 * dummy-prefix space token when text is not empty, one token per code point (or its
 * bytes), then merges. Kind NN_TOK_BPE as tokenizers does (see the top of this file);
 * `bos` adds BOS whatever NN_TOK_F_ADD_BOS says (that flag tells callers what the
 * model's tokenizer does by default). Before merging there is one id per code point
 * or byte, so ids needs room for strlen(text) + 3 entries even though the result is
 * shorter. scratch must hold nn_tok_scratch_bytes(t) bytes.
 * Returns NN_OK, NN_E_ARG (scratch too small), NN_E_RANGE (max_ids too small)
 * or NN_E_TOKENIZER (a character with no token, no byte fallback and no unk).
 */
nn_status nn_tok_encode(const nn_tokenizer *t, const char *text, int bos, int eos,
                        uint32_t *ids, uint32_t max_ids, uint32_t *n_ids,
                        void *scratch, size_t scratch_bytes);
size_t nn_tok_scratch_bytes(const nn_tokenizer *t);

/*
 * The bytes to print for token id following prev. NN_TOK_LLAMA2C as llama2.c's decode:
 * after BOS a leading space is dropped; <0xXX> tokens become the raw byte. NN_TOK_BPE:
 * the display string, with one leading space dropped after BOS when
 * NN_TOK_F_STRIP_SPACE is set. Out-of-range ids give an empty piece.
 */
nn_tok_piece nn_tok_decode(const nn_tokenizer *t, uint32_t prev, uint32_t id);

#endif
