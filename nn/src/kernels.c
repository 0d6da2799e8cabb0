/*
 * The one place where a kernel path is chosen. Each path is bit-exact with the
 * reference twins in kernels_ref.c; nn_kernels_impl.h says which paths this build
 * contains, and supported() asks the running CPU whether it can execute them.
 */
#include <string.h>
#include "nn_image.h"
#include "nn_kernels_impl.h"

#if NN_HAVE_DOTPROD_KERNELS
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static const nn_kernels k_ref = {
    .name = "ref",
    .matmul_q8_q16 = nn_matmul_q8_q16_ref,
    .matmul_q8_a8 = nn_matmul_q8_a8_ref,
    .dot_i16 = nn_dot_i16_ref,
    .dot_rows_i16 = nn_dot_rows_i16_ref,
    .dot_rows_packed = nn_dot_rows_packed_ref,
    .axpy_rows_i16 = nn_axpy_rows_i16_ref,
    .softmax_exp_q30 = nn_softmax_exp_q30_ref,
    .act8_quant = nn_act8_quant,
    .silu_q16 = nn_silu_q16_ref,
    .scores_q16 = nn_scores_q16_ref,
    .probs_align = nn_probs_align_ref,
    .quant_i32_i16 = nn_quant_i32_i16,
    .mul_quant_i16 = nn_mul_quant_i16_ref,
    .sumsq_i32 = nn_sumsq_i32_ref,
    .rope_q30 = nn_rope_q30_ref,
    .add_sat_i32 = nn_add_sat_i32_ref,
    .round_sat_i64 = nn_round_sat_i64_ref,
};

/*
 * Ordered worst to best; the last one the CPU supports is the default. On x86 that is
 * avx2: on both AVX-512 VNNI CPUs measured (AMD EPYC Zen 4, which runs 512-bit
 * operations as two 256-bit halves, and Zen 5, which does not) avx512vnni was slower
 * in both decode and prefill (docs/speed.md). It stays available by name
 * (--kernels avx512vnni).
 */
static const nn_kernels *const k_all[] = {
    &k_ref,
#if NN_HAVE_X86_KERNELS
    &nn_kernels_avx512vnni,
    &nn_kernels_avx2,
#endif
#if NN_HAVE_NEON_KERNELS
    &nn_kernels_neon,
#endif
#if NN_HAVE_DOTPROD_KERNELS
    &nn_kernels_dotprod,
#endif
};

static int supported(const nn_kernels *k)
{
#if NN_HAVE_X86_KERNELS
    if (k == &nn_kernels_avx2)
        return __builtin_cpu_supports("avx2");
    if (k == &nn_kernels_avx512vnni)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
#if NN_HAVE_DOTPROD_KERNELS
    /* The build targets a dotprod CPU; the check keeps a misplaced binary from dying
     * with SIGILL and lets it fall back to NEON. */
    if (k == &nn_kernels_dotprod)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
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

/*
 * Numerics version 2 multiplies int8 by int8, which vpdpbusd does in one instruction
 * where AVX2 needs four: there avx512vnni is the default (on the Zen 5 VM its matmul
 * runs 141-190 G multiply-adds/s per core in cache against 27-45 for version 1 on
 * avx2, docs/speed.md). Elsewhere the order above stands.
 */
const nn_kernels *nn_kernels_select_for(const char *name, uint32_t numerics)
{
#if NN_HAVE_X86_KERNELS
    if (numerics == NN_NUMERICS_ACT8 && (!name || strcmp(name, "auto") == 0) && supported(&nn_kernels_avx512vnni))
        return &nn_kernels_avx512vnni;
#else
    (void)numerics;
#endif
    return nn_kernels_select(name);
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
