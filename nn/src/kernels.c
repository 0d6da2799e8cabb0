/*
 * The one place where a kernel path is chosen. SIMD paths register here as they are
 * added; each must be bit-exact with the reference twins in kernels_ref.c.
 */
#include <string.h>
#include "nn_kernels.h"

static const nn_kernels k_ref = {
    .name = "ref",
    .matmul_q8_q16 = nn_matmul_q8_q16_ref,
    .dot_i16 = nn_dot_i16_ref,
};

/* Ordered worst to best; the last one the CPU supports is the default. */
static const nn_kernels *const k_all[] = {
    &k_ref,
};

static int supported(const nn_kernels *k)
{
    (void)k;
    return 1;
}

const nn_kernels *nn_kernels_select(const char *name)
{
    size_t n = sizeof k_all / sizeof k_all[0];
    if (!name || strcmp(name, "auto") == 0) {
        for (size_t i = n; i-- > 0;)
            if (supported(k_all[i]))
                return k_all[i];
        return &k_ref;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(k_all[i]->name, name) == 0)
            return supported(k_all[i]) ? k_all[i] : NULL;
    return NULL;
}

const char *nn_kernels_available(void)
{
    static char buf[128];
    if (!buf[0]) {
        size_t n = sizeof k_all / sizeof k_all[0];
        for (size_t i = 0; i < n; i++)
            if (supported(k_all[i])) {
                if (buf[0])
                    strncat(buf, " ", sizeof buf - strlen(buf) - 1);
                strncat(buf, k_all[i]->name, sizeof buf - strlen(buf) - 1);
            }
    }
    return buf;
}
