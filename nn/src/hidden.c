/* Residual-stream rows on the wire: exact (byte planes + zstd) or int8 (+ zstd). */
#define ZSTD_STATIC_LINKING_ONLY
#include <string.h>
#include <zstd.h>

#include "nn_fixed.h"
#include "nn_kv.h"

#define HDR 16u

size_t nn_hidden_bound(uint32_t n, uint32_t dim)
{
    return HDR + ZSTD_compressBound((size_t)n * dim * 4);
}

nn_status nn_hidden_encode(const int32_t *x, uint32_t n, uint32_t dim, uint32_t mode, nn_kv_work *w, uint8_t *out,
                           size_t cap, size_t *len)
{
    if (!x || !w || !out || !len || n == 0 || dim == 0 || mode > NN_HIDDEN_INT8)
        return NN_E_ARG;
    size_t vals = (size_t)n * dim, src;
    if (vals * 4 > w->scratch_bytes)
        return NN_E_NOMEM;
    uint8_t *t = w->scratch;
    if (mode == NN_HIDDEN_EXACT) {
        for (size_t i = 0; i < vals; i++)
            for (int b = 0; b < 4; b++)
                t[(size_t)b * vals + i] = (uint8_t)((uint32_t)x[i] >> (8 * b));
        src = vals * 4;
    } else {
        /* per row: exponent e, then round(x / 2^e) in [-127, 127] */
        src = 0;
        for (uint32_t r = 0; r < n; r++) {
            const int32_t *xr = x + (size_t)r * dim;
            uint64_t amax = 0;
            for (uint32_t i = 0; i < dim; i++) {
                uint64_t a = xr[i] < 0 ? (uint64_t)(-(int64_t)xr[i]) : (uint64_t)xr[i];
                amax = a > amax ? a : amax;
            }
            int e = nn_bitlen_u64(amax) - 7;
            e = e < 0 ? 0 : e;
            t[src++] = (uint8_t)e;
            for (uint32_t i = 0; i < dim; i++) {
                int64_t q = nn_rshift_round_i64(xr[i], e);
                t[src++] = (uint8_t)(int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            }
        }
    }
    if (cap < HDR)
        return NN_E_NOMEM;
    memset(out, 0, HDR);
    out[0] = (uint8_t)mode;
    nn_wr32(out + 4, n);
    nn_wr32(out + 8, dim);
    size_t z = ZSTD_compressCCtx(w->cctx, out + HDR, cap - HDR, t, src, 1);
    if (ZSTD_isError(z))
        return cap - HDR < ZSTD_compressBound(src) ? NN_E_NOMEM : NN_E_CODEC;
    nn_wr32(out + 12, (uint32_t)z);
    *len = HDR + z;
    return NN_OK;
}

nn_status nn_hidden_decode(const uint8_t *in, size_t len, uint32_t n, uint32_t dim, nn_kv_work *w, int32_t *x)
{
    if (!in || !w || !x || n == 0 || dim == 0)
        return NN_E_ARG;
    if (len < HDR)
        return NN_E_TRUNCATED;
    uint32_t mode = in[0];
    if (mode > NN_HIDDEN_INT8 || in[1] || in[2] || in[3] || nn_rd32(in + 4) != n || nn_rd32(in + 8) != dim)
        return NN_E_CODEC;
    size_t z = nn_rd32(in + 12), vals = (size_t)n * dim;
    if (z > len - HDR)
        return NN_E_TRUNCATED;
    if (z != len - HDR)
        return NN_E_CODEC;
    size_t want = mode == NN_HIDDEN_EXACT ? vals * 4 : vals + n;
    if (want > w->scratch_bytes)
        return NN_E_NOMEM;
    size_t got = ZSTD_decompressDCtx(w->dctx, w->scratch, want, in + HDR, z);
    if (ZSTD_isError(got) || got != want)
        return NN_E_CODEC;
    const uint8_t *t = w->scratch;
    if (mode == NN_HIDDEN_EXACT) {
        for (size_t i = 0; i < vals; i++) {
            uint32_t v = 0;
            for (int b = 0; b < 4; b++)
                v |= (uint32_t)t[(size_t)b * vals + i] << (8 * b);
            x[i] = (int32_t)v;
        }
        return NN_OK;
    }
    for (uint32_t r = 0; r < n; r++) {
        const uint8_t *row = t + (size_t)r * (dim + 1);
        int e = row[0];
        if (e > 24)
            return NN_E_CODEC;
        for (uint32_t i = 0; i < dim; i++)
            x[(size_t)r * dim + i] = (int32_t)(int8_t)row[1 + i] * (int32_t)(1 << e);
    }
    return NN_OK;
}
