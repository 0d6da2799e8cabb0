/*
 * The local KV cache store: a directory of KV streams (nn_kv.h), bounded in bytes and
 * entries, evicting the least recently used entry first, and surviving restarts.
 *
 * An entry is one file, <digest>.kv, where <digest> is the hex SHA-256 the stream
 * carries in its header. A write goes to <digest>.kv.tmp, is fsynced, renamed over the
 * final name, and the directory is fsynced, so a crash or a power cut leaves either the
 * whole entry or a .tmp file, never a partial <digest>.kv. At open every file is read
 * and checked (nn_kv_parse: lengths and the digest; then the model identity, the
 * shape, that it covers every layer from position 0, that its name is its digest, and
 * that its recorded prefix id is the one its tokens give). Torn (.tmp, truncated,
 * digest mismatch) and foreign (another model, another shape, misnamed) files are
 * deleted and counted. Reads for import go through nn_kv_import, which checks the
 * digest again, so a file damaged after start-up is never imported either.
 *
 * In memory each entry keeps the prefix ids of its first FW_STORE_MAX_BLOCKS blocks, so
 * lookups never touch the disk. Recency survives restarts through the files' mtimes.
 *
 *     fw_store st;
 *     fw_store_open(&st, &(fw_store_cfg){ .dir = "/var/lib/kvmesh/cache", .max_bytes = 64 << 20,
 *                   .max_entries = 256, .model = &img.id, .m = model }, buf, cap, err, sizeof err);
 *     int k = fw_store_find(&st, ids, nb, &entry);      // longest block k with a hit, or -1
 *     fw_store_read(&st, entry, buf, cap, &len);        // then nn_kv_import(...)
 *     fw_store_put(&st, stream, len, &entry, err, sizeof err);
 *
 * Test hook: the environment variable KVMESH_STORE_FAULT makes the next write kill the
 * process (SIGKILL) at a chosen point: "partial" (half the bytes of the .tmp written),
 * "before-rename" (the .tmp complete and fsynced), "before-dirsync" (renamed, the
 * directory not yet fsynced). "corrupt" writes the entry with one byte flipped and
 * carries on, like a disk that returns bad data.
 */
#ifndef FW_STORE_H
#define FW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"

#define FW_STORE_MAX_BLOCKS 256   /* ids kept per entry: 4096 tokens of 16 */

typedef struct {
    bool used;
    uint8_t digest[32];
    uint64_t bytes;
    uint32_t positions;          /* tokens the stream covers, from 0 */
    uint32_t nblocks;            /* full blocks, ids kept for min(nblocks, MAX_BLOCKS) */
    uint32_t codec;
    uint64_t stamp;              /* recency: larger is more recent */
    uint8_t (*ids)[32];          /* [FW_STORE_MAX_BLOCKS] */
} fw_store_entry;

typedef struct {
    uint64_t loaded, torn, foreign, evicted, writes, write_errors, hits, dropped;
} fw_store_stats;

typedef struct {
    const char *dir;
    uint64_t max_bytes;
    uint32_t max_entries;
    const nn_model *m;           /* identity and shape entries must match */
} fw_store_cfg;

typedef struct {
    char dir[256];
    uint64_t max_bytes, bytes;
    uint32_t max_entries, count;
    uint32_t slots;              /* max_entries + 1 */
    const nn_model *m;
    fw_store_entry *e;           /* [slots] */
    uint8_t (*ids)[32];          /* [slots * FW_STORE_MAX_BLOCKS] */
    uint64_t clock;              /* recency counter */
    int lock_fd;                 /* flock on <dir>/.lock while open */
    int fault;
    fw_store_stats st;
} fw_store;

/* Creates the directory if needed, allocates the index (init only), and loads and
 * checks every file, using buf (cap bytes, at least the largest valid entry) to read
 * them. Entries that do not fit the bounds are evicted oldest first.
 * Returns 0, or -1 with err set (directory not usable, no memory). */
int fw_store_open(fw_store *s, const fw_store_cfg *cfg, uint8_t *buf, size_t cap, char *err, size_t errlen);
void fw_store_close(fw_store *s);

/* The longest block index k < nb such that an entry holds ids[k] (all tokens of blocks
 * 0..k equal, by the hash chain); among entries that hold it, the one covering the most
 * positions. Returns k with *entry set, or -1. */
int fw_store_find(const fw_store *s, const uint8_t (*ids)[32], uint32_t nb, int *entry);

/* The entry (most positions) holding prefix id `id` at any block, other than entry
 * `exclude` (-1: none), or -1. */
int fw_store_find_id(const fw_store *s, const uint8_t id[32], int exclude);

/* Reads entry i into buf and marks it used. Returns 0, or -1 (the file is gone or
 * short; the entry is dropped and counted). */
int fw_store_read(fw_store *s, int i, uint8_t *buf, size_t cap, size_t *len);

/* Path of entry i's file, for mapping it read-only. */
void fw_store_path(const fw_store *s, int i, char *out, size_t cap);

/* Would an entry covering `positions` tokens whose last full block has id `last` (block
 * index nb - 1) add nothing? True when an entry holds that id and covers as many
 * positions. */
bool fw_store_covers(const fw_store *s, const uint8_t last[32], uint32_t nb, uint32_t positions);

/* Called for each entry an eviction or drop removes, before it is forgotten. */
typedef void (*fw_store_evict_fn)(void *user, const fw_store *s, int i);

/* Adds a stream (already exported by this model) as an entry: evicts least recently
 * used entries until it fits, then writes it atomically. *entry gets its index.
 * Returns 0 (also when the same stream was stored already), or -1 with err set (larger
 * than max_bytes, or an I/O error: nothing is left behind). */
int fw_store_put(fw_store *s, const uint8_t *stream, size_t len, fw_store_evict_fn on_evict, void *user,
                 int *entry, char *err, size_t errlen);

/* Evicts until the store fits max_bytes (after the bound was lowered). */
void fw_store_set_max_bytes(fw_store *s, uint64_t max_bytes, fw_store_evict_fn on_evict, void *user);

/* Deletes entry i (found damaged when it was used). */
void fw_store_drop(fw_store *s, int i, fw_store_evict_fn on_evict, void *user);

/* Deletes every entry. Returns the number deleted. */
uint32_t fw_store_drop_all(fw_store *s, fw_store_evict_fn on_evict, void *user);

/* mkdir -p (mode 0750). 0 or -1 with errno. */
int fw_mkdirs(const char *dir);

/* fsyncs the directory (everything written is already on disk). 0 or -1. */
int fw_store_sync(const fw_store *s);

#endif
