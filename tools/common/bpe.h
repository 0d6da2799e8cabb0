/*
 * bpe.h: building an NN_TOK_BPE vocabulary on the host, shared by the tokenizer.json
 * reader (hf_tok.c) and the GGUF reader (src_gguf.c).
 *
 *     kt_vocab_alloc(&v, n, NN_TOK_BPE);  kt_vocab_set(&v, id, "Ġthe", 5); ...
 *     kt_strmap m;  kt_strmap_build(&m, &v);                // vocabulary form -> id
 *     kt_bpe_add_merge(&v, &m, "Ġ", 2, "the", 3, err, n);   // in rank order
 *     kt_bpe_finish_bytelevel(&v, err, n);                  // or kt_bpe_finish_meta
 */
#ifndef KT_BPE_H
#define KT_BPE_H

#include "kvtools.h"

typedef struct kt_strmap {
    uint32_t *slot;        /* id + 1, 0 = empty */
    uint32_t mask;
    const kt_vocab *v;
} kt_strmap;

/* Indexes the vocabulary tokens (those without KT_ADDED) of v by their current strings.
 * Returns 0, or -1 when out of memory or when two tokens share a string (*dup is set
 * to the second id). */
int kt_strmap_build(kt_strmap *m, const kt_vocab *v, uint32_t *dup);
int32_t kt_strmap_get(const kt_strmap *m, const char *s, uint32_t len);
void kt_strmap_free(kt_strmap *m);

/* Appends the merge (a, b) -> a+b; all three must be vocabulary tokens. Returns 0 or -1. */
int kt_bpe_add_merge(kt_vocab *v, const kt_strmap *m, const char *a, uint32_t al, const char *b, uint32_t bl,
                     char *err, size_t errlen);

/*
 * Byte-level: rewrites every vocabulary string from GPT-2's byte-to-unicode alphabet to
 * the raw bytes it stands for, and fills byte_ids. Added tokens keep their content.
 * Returns 0, or -1 when a string has a character outside the alphabet or a byte has no
 * token.
 */
int kt_bpe_finish_bytelevel(kt_vocab *v, char *err, size_t errlen);

/*
 * SentencePiece style: display strings with "▁" as a space; with byte_fallback, the
 * <0xXX> tokens display as their byte and fill byte_ids (all 256 must exist).
 */
int kt_bpe_finish_meta(kt_vocab *v, int byte_fallback, char *err, size_t errlen);

#endif
