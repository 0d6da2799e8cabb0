/*
 * Private to the tokenizer: the byte-level BPE kind (tok_bpe.c), its pre-tokenizers
 * (tok_pretok.c) and the Unicode tables (tok_unicode.c, generated).
 */
#ifndef NN_TOK_INTERNAL_H
#define NN_TOK_INTERNAL_H

#include <stdint.h>

#include "nn_tokenizer.h"

/* General categories L* and N* (Unicode 15.0). */
int nn_uni_is_letter(uint32_t c);
int nn_uni_is_number(uint32_t c);

/*
 * Decodes one UTF-8 character of s[0, len) (len >= 1) strictly: overlong forms,
 * surrogates and values past U+10FFFF are invalid. Returns its length in bytes (1..4)
 * and the code point in *cp; an invalid byte is a character of its own (length 1)
 * with *cp = NN_UNI_INVALID, which is no letter, number or space.
 */
#define NN_UNI_INVALID 0xffffffffu
uint32_t nn_utf8_next(const uint8_t *s, uint32_t len, uint32_t *cp);

/* Length of the next word of s[0, len) (len >= 1) under pre-tokenizer pretok. */
uint32_t nn_pretok_next(uint32_t pretok, const uint8_t *s, uint32_t len);

/* Kind NN_TOK_BPE (tok_bpe.c). */
nn_status nn_tok_init_bpe(nn_tokenizer *t, const uint8_t *blob, size_t bytes);
nn_status nn_tok_encode_bpe(const nn_tokenizer *t, const uint8_t *text, uint32_t len, uint32_t *ids,
                            uint32_t max_ids, uint32_t *n);

#endif
