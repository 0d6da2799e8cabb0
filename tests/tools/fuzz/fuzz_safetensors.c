/* libFuzzer: the safetensors reader. Whatever the bytes, parsing must not read outside
 * them; an accepted file's tensors must lie inside the data and convert to float. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);     /* exact size: ASan catches any overread */
    memcpy(buf, data, size);
    kt_st st;
    char err[300];
    if (kt_st_parse(&st, buf, size, err, sizeof err) == 0) {
        for (uint32_t i = 0; i < st.n; i++) {
            const kt_st_tensor *t = &st.t[i];
            if (t->data < buf || t->data + t->bytes > buf + size)
                __builtin_trap();
            if (t->dtype != KT_ST_OTHER && t->count <= (1u << 16)) {
                float *f = malloc((t->count ? t->count : 1) * sizeof *f);
                if (kt_st_read_f32(t, f, t->count) != 0)
                    __builtin_trap();
                free(f);
            }
            if (kt_st_find(&st, t->name) == NULL)
                __builtin_trap();
        }
        kt_st_close(&st);
    } else if (!err[0]) {
        __builtin_trap();                        /* every refusal says why */
    }
    free(buf);
    return 0;
}
