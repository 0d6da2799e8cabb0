/* libFuzzer: tokenizer.json through the strict JSON parser and the reader, then into
 * the engine. A tokenizer.json the converter accepts must become a blob the engine
 * accepts, and encoding/decoding with it must stay in bounds; anything else must be
 * refused with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsource.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    kt_vocab v;
    char err[300];
    if (kt_vocab_parse_hf(&v, buf, size, NULL, 0, 300, NN_TOK_NONE, 0, err, sizeof err) == 0) {
        uint8_t *blob;
        uint32_t len;
        if (kt_vocab_blob(&v, &blob, &len) == 0) {
            nn_tokenizer t;
            if (nn_tok_init(&t, blob, len) != NN_OK)
                __builtin_trap();
            static uint8_t scratch[1 << 13];
            uint32_t ids[96], n;
            if (nn_tok_encode(&t, "the cat's <|x|> 12\n\n \xe2\x96\x81\xc3\xa9\xff", 1, 0, ids, 96, &n, scratch,
                              sizeof scratch) == NN_OK)
                for (uint32_t i = 0; i < n; i++) {
                    nn_tok_piece p = nn_tok_decode(&t, i ? ids[i - 1] : t.bos_id, ids[i]);
                    if (p.len && !p.p)
                        __builtin_trap();
                }
            free(blob);
        }
        kt_vocab_free(&v);
    } else if (!err[0]) {
        __builtin_trap();
    }
    free(buf);
    return 0;
}
