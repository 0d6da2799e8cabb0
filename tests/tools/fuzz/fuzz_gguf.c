/* libFuzzer: the GGUF reader and the GGUF model source (metadata, shapes, tokenizer
 * arrays into a vocabulary, the vocabulary into an engine tokenizer blob). Nothing may
 * be read outside the input; whatever vocabulary is accepted must give a blob that the
 * engine accepts and that encodes text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kvsource.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    kt_gguf g;
    char err[300];
    if (kt_gguf_parse(&g, buf, size, err, sizeof err) == 0) {
        for (uint64_t i = 0; i < g.n_t; i++)
            if (g.t[i].data < buf || g.t[i].data + g.t[i].bytes > buf + size)
                __builtin_trap();
        for (uint64_t i = 0; i < g.n_kv; i++)
            if (g.kv[i].type == KT_GGUF_ARRAY && g.kv[i].arr_type == KT_GGUF_STRING)
                for (uint64_t k = 0; k < g.kv[i].arr_n; k++) {
                    const char *s;
                    uint64_t l;
                    kt_gguf_arr_str(&g.kv[i], k, &s, &l);
                    if ((const uint8_t *)s + l > buf + size)
                        __builtin_trap();
                }
        kt_gguf_close(&g);
    }
    kt_source src;
    if (kt_open_gguf_mem(&src, buf, size) == 0) {
        uint8_t *blob;
        uint32_t len;
        nn_tokenizer t;
        if (kt_vocab_blob(&src.vocab, &blob, &len) == 0) {
            if (nn_tok_init(&t, blob, len) != NN_OK)
                __builtin_trap();
            static uint8_t scratch[1 << 13];
            uint32_t ids[64], n;
            if (nn_tok_scratch_bytes(&t) <= sizeof scratch)
                (void)nn_tok_encode(&t, "Once upon a time, 12 \xc3\xa9\xff!", 1, 1, ids, 64, &n, scratch,
                                    sizeof scratch);
            free(blob);
        }
        src.close(&src);
    }
    free(buf);
    return 0;
}
