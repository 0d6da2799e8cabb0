#include <string.h>
#include "nn_base.h"

const char *nn_strerror(nn_status s)
{
    switch (s) {
    case NN_OK:            return "ok";
    case NN_E_ARG:         return "invalid argument";
    case NN_E_IO:          return "file could not be opened, read or mapped";
    case NN_E_MAGIC:       return "not a kvmesh model image (bad magic)";
    case NN_E_VERSION:     return "unsupported image format or numerics version";
    case NN_E_TRUNCATED:   return "data is truncated";
    case NN_E_CORRUPT:     return "data is corrupt or inconsistent";
    case NN_E_SHAPE:       return "a tensor is missing or has the wrong shape";
    case NN_E_NOMEM:       return "arena too small";
    case NN_E_RANGE:       return "token, position or range out of bounds";
    case NN_E_FINGERPRINT: return "image fingerprint does not match its contents";
    case NN_E_TOKENIZER:   return "tokenizer data invalid or text cannot be encoded";
    case NN_E_MODEL:       return "data belongs to another model identity";
    case NN_E_THREAD:      return "worker thread could not be started";
    case NN_E_CODEC:       return "KV stream invalid or codec unsupported";
    }
    return "unknown nn status";
}

void nn_arena_init(nn_arena *a, void *base, size_t size)
{
    a->base = base;
    a->size = base ? size : 0;
    a->used = 0;
}

void *nn_arena_alloc(nn_arena *a, size_t bytes, size_t align)
{
    size_t start = (a->used + align - 1) & ~(align - 1);
    /* used keeps counting past size, so a full or measuring arena reports the total. */
    a->used = start + bytes;
    if (!a->base || start > a->size || bytes > a->size - start)
        return NULL;
    void *p = a->base + start;
    memset(p, 0, bytes);
    return p;
}

size_t nn_arena_needed(const nn_arena *a)
{
    return (a->used + NN_ARENA_ALIGN - 1) & ~(size_t)(NN_ARENA_ALIGN - 1);
}
