/* The local KV cache store. See store.h for the on-disk rules. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

enum { FAULT_NONE = 0, FAULT_PARTIAL, FAULT_BEFORE_RENAME, FAULT_BEFORE_DIRSYNC, FAULT_CORRUPT };

#define DIGEST_OFF 152
#define FW_STORE_PATH 600   /* dir (255) + / + a file name (255) */   /* nn_kv.h: the stream header's SHA-256 field */

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void fw_store_path(const fw_store *s, int i, char *out, size_t cap)
{
    char h[65];
    hex(s->e[i].digest, 32, h);
    if (snprintf(out, cap, "%s/%s.kv", s->dir, h) >= (int)cap && cap) out[0] = '\0';
}

int fw_mkdirs(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s", dir);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/') continue;
        *q = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST) return -1;
        *q = '/';
    }
    return mkdir(p, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Checks a stream against the model; fills e (not `used`) and its ids. 0, or 1 torn,
 * 2 foreign. name_digest (NULL: not checked) is the digest the file name claims. */
static int check_stream(const fw_store *s, const uint8_t *buf, size_t len, const uint8_t *name_digest,
                        fw_store_entry *e)
{
    nn_kv_info info;
    if (nn_kv_parse(buf, len, &info) != NN_OK) return 1;
    const nn_model *m = s->m;
    const nn_config *c = &m->cfg;
    if (memcmp(info.id.fingerprint, m->img->id.fingerprint, 32) != 0 ||
        info.id.numerics_version != m->img->id.numerics_version || info.n_layers != c->n_layers ||
        info.n_kv_heads != c->n_kv_heads || info.head_dim != c->head_dim || info.r.layer0 != 0 ||
        info.r.layer1 != c->n_layers || info.r.pos0 != 0 || info.block != NN_KV_BLOCK || info.r.pos1 < NN_KV_BLOCK)
        return 2;
    if (name_digest && memcmp(name_digest, buf + DIGEST_OFF, 32) != 0) return 2;
    uint32_t nb = nn_kv_prefix_ids(&m->img->id, NN_KV_BLOCK, (const uint32_t *)(const void *)info.tokens,
                                   info.r.pos1, e->ids, FW_STORE_MAX_BLOCKS);
    if (nb == 0 || (nb <= FW_STORE_MAX_BLOCKS && memcmp(e->ids[nb - 1], info.prefix_id, 32) != 0)) return 2;
    memcpy(e->digest, buf + DIGEST_OFF, 32);
    e->bytes = len;
    e->positions = info.r.pos1;
    e->nblocks = nb;
    e->codec = info.codec;
    return 0;
}

static int free_slot(const fw_store *s)
{
    for (uint32_t i = 0; i < s->slots; i++)
        if (!s->e[i].used) return (int)i;
    return -1;
}

static void forget(fw_store *s, int i)
{
    char path[FW_STORE_PATH];
    fw_store_path(s, i, path, sizeof path);
    unlink(path);
    s->bytes -= s->e[i].bytes;
    s->count--;
    s->e[i].used = false;
}

static int oldest(const fw_store *s)
{
    int o = -1;
    for (uint32_t i = 0; i < s->slots; i++)
        if (s->e[i].used && (o < 0 || s->e[i].stamp < s->e[o].stamp)) o = (int)i;
    return o;
}

static void evict_until(fw_store *s, uint64_t need_bytes, uint32_t need_entries, fw_store_evict_fn cb, void *user)
{
    while (s->count && (s->bytes + need_bytes > s->max_bytes || s->count + need_entries > s->max_entries)) {
        int o = oldest(s);
        if (cb) cb(user, s, o);
        forget(s, o);
        s->st.evicted++;
    }
}

static int load_file(fw_store *s, const char *name, uint8_t *buf, size_t cap, time_t *mtime)
{
    char path[FW_STORE_PATH];
    if (snprintf(path, sizeof path, "%s/%s", s->dir, name) >= (int)sizeof path) return 3;
    uint8_t want[32];
    bool named = strlen(name) == 64 + 3;
    for (size_t i = 0; named && i < 64; i++) {
        const char *d = strchr("0123456789abcdef", name[i]);
        named = d && *d;
        if (named) want[i / 2] = (uint8_t)(i % 2 ? want[i / 2] | (d - "0123456789abcdef") : (d - "0123456789abcdef") << 4);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    int verdict = 1;
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        *mtime = sb.st_mtime;
        if ((uint64_t)sb.st_size > cap) {
            verdict = 2;   /* larger than any stream this model and context can make */
        } else {
            size_t got = 0;
            while (got < (size_t)sb.st_size) {
                ssize_t k = read(fd, buf + got, (size_t)sb.st_size - got);
                if (k <= 0) break;
                got += (size_t)k;
            }
            int slot = free_slot(s);
            if (got == (size_t)sb.st_size) {
                fw_store_entry *e = &s->e[slot];
                verdict = !named ? 2 : check_stream(s, buf, got, want, e);
                if (verdict == 0) {
                    e->used = true;
                    s->count++;
                    s->bytes += e->bytes;
                    s->st.loaded++;
                }
            }
        }
    }
    if (fd >= 0) close(fd);
    if (verdict == 1 || verdict == 2) {
        unlink(path);
        if (verdict == 1) s->st.torn++;
        else s->st.foreign++;
    }
    return verdict;
}

int fw_store_open(fw_store *s, const fw_store_cfg *cfg, uint8_t *buf, size_t cap, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (snprintf(s->dir, sizeof s->dir, "%s", cfg->dir) >= (int)sizeof s->dir) {
        snprintf(err, errlen, "cache directory name too long");
        return -1;
    }
    s->max_bytes = cfg->max_bytes;
    s->max_entries = cfg->max_entries;
    s->m = cfg->m;
    const char *f = getenv("KVMESH_STORE_FAULT");
    s->fault = !f ? FAULT_NONE : !strcmp(f, "partial") ? FAULT_PARTIAL : !strcmp(f, "before-rename") ? FAULT_BEFORE_RENAME
             : !strcmp(f, "before-dirsync") ? FAULT_BEFORE_DIRSYNC : !strcmp(f, "corrupt") ? FAULT_CORRUPT : FAULT_NONE;
    if (fw_mkdirs(s->dir) != 0) {
        snprintf(err, errlen, "cannot create the cache directory %s: %s", s->dir, strerror(errno));
        return -1;
    }
    /* One service per store: a second one would evict files the first still serves. */
    char lock[FW_STORE_PATH];
    if (snprintf(lock, sizeof lock, "%s/.lock", s->dir) >= (int)sizeof lock) lock[0] = '\0';
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "cache directory %s: %s", s->dir,
                 lfd < 0 ? strerror(errno) : "in use by another kvmesh service");
        if (lfd >= 0) close(lfd);
        return -1;
    }
    s->lock_fd = lfd;
    /* One slot more than the bound: a new entry is checked before the oldest makes room. */
    s->slots = s->max_entries + 1;
    s->e = calloc(s->slots, sizeof *s->e);
    s->ids = calloc((size_t)s->slots * FW_STORE_MAX_BLOCKS, sizeof *s->ids);
    time_t *mt = calloc(s->slots, sizeof *mt);
    if (!s->e || !s->ids || !mt) {
        free(mt);
        fw_store_close(s);
        snprintf(err, errlen, "no memory for a store index of %u entries", s->max_entries);
        return -1;
    }
    for (uint32_t i = 0; i < s->slots; i++) s->e[i].ids = s->ids + (size_t)i * FW_STORE_MAX_BLOCKS;
    DIR *d = opendir(s->dir);
    if (!d) {
        free(mt);
        snprintf(err, errlen, "cannot read the cache directory %s: %s", s->dir, strerror(errno));
        fw_store_close(s);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
            /* An interrupted write: never renamed, so never an entry. */
            char path[FW_STORE_PATH];
            if (snprintf(path, sizeof path, "%s/%s", s->dir, de->d_name) < (int)sizeof path && unlink(path) == 0)
                s->st.torn++;
        } else if (n > 3 && strcmp(de->d_name + n - 3, ".kv") == 0) {
            time_t t = 0;
            int slot = free_slot(s);
            if (load_file(s, de->d_name, buf, cap, &t) != 0) continue;
            mt[slot] = t;
            if (s->count > s->max_entries) {   /* over the bound: the least recent goes */
                int o = slot;
                for (uint32_t i = 0; i < s->slots; i++)
                    if (s->e[i].used && mt[i] < mt[o]) o = (int)i;
                forget(s, o);
                s->st.evicted++;
            }
        }
    }
    closedir(d);
    /* Recency from the files' mtimes: rank them. */
    for (uint32_t i = 0; i < s->slots; i++) {
        if (!s->e[i].used) continue;
        uint64_t rank = 1;
        for (uint32_t j = 0; j < s->slots; j++)
            if (s->e[j].used && (mt[j] < mt[i] || (mt[j] == mt[i] && j < i))) rank++;
        s->e[i].stamp = rank;
    }
    free(mt);
    s->clock = s->count + 1;
    evict_until(s, 0, 0, NULL, NULL);
    sync_dir(s->dir);
    return 0;
}

void fw_store_close(fw_store *s)
{
    if (!s) return;
    if (s->lock_fd > 0) close(s->lock_fd);
    s->lock_fd = -1;
    free(s->e);
    free(s->ids);
    s->e = NULL;
    s->ids = NULL;
}

static uint64_t tick(fw_store *s) { return ++s->clock; }

static void touch(fw_store *s, int i)
{
    s->e[i].stamp = tick(s);
    char path[FW_STORE_PATH];
    fw_store_path(s, i, path, sizeof path);
    utimensat(AT_FDCWD, path, NULL, 0);   /* recency across restarts; best effort */
}

int fw_store_find(const fw_store *s, const uint8_t (*ids)[32], uint32_t nb, int *entry)
{
    if (nb > FW_STORE_MAX_BLOCKS) nb = FW_STORE_MAX_BLOCKS;
    for (int k = (int)nb - 1; k >= 0; k--) {
        int best = -1;
        for (uint32_t i = 0; i < s->slots; i++) {
            const fw_store_entry *e = &s->e[i];
            if (e->used && e->nblocks > (uint32_t)k && memcmp(e->ids[k], ids[k], 32) == 0 &&
                (best < 0 || e->positions > s->e[best].positions))
                best = (int)i;
        }
        if (best >= 0) {
            *entry = best;
            return k;
        }
    }
    return -1;
}

int fw_store_find_id(const fw_store *s, const uint8_t id[32], int exclude)
{
    int best = -1;
    for (uint32_t i = 0; i < s->slots; i++) {
        const fw_store_entry *e = &s->e[i];
        if (!e->used || (int)i == exclude) continue;
        uint32_t nb = e->nblocks < FW_STORE_MAX_BLOCKS ? e->nblocks : FW_STORE_MAX_BLOCKS;
        for (uint32_t k = 0; k < nb; k++)
            if (memcmp(e->ids[k], id, 32) == 0 && (best < 0 || e->positions > s->e[best].positions)) {
                best = (int)i;
                break;
            }
    }
    return best;
}

bool fw_store_covers(const fw_store *s, const uint8_t last[32], uint32_t nb, uint32_t positions)
{
    if (nb == 0 || nb > FW_STORE_MAX_BLOCKS) return false;
    for (uint32_t i = 0; i < s->slots; i++) {
        const fw_store_entry *e = &s->e[i];
        if (e->used && e->nblocks >= nb && e->positions >= positions && memcmp(e->ids[nb - 1], last, 32) == 0)
            return true;
    }
    return false;
}

int fw_store_read(fw_store *s, int i, uint8_t *buf, size_t cap, size_t *len)
{
    char path[FW_STORE_PATH];
    fw_store_path(s, i, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd >= 0 && s->e[i].bytes <= cap) {
        while (got < s->e[i].bytes) {
            ssize_t k = read(fd, buf + got, (size_t)s->e[i].bytes - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
    }
    if (fd >= 0) close(fd);
    if (got != s->e[i].bytes || got == 0) {
        forget(s, i);
        s->st.dropped++;
        return -1;
    }
    *len = got;
    s->st.hits++;
    touch(s, i);
    return 0;
}

/* Writes all of buf to fd; the fault hook may stop half way. 0 or -1. */
static int write_all(fw_store *s, int fd, const uint8_t *buf, size_t len)
{
    size_t stop = s->fault == FAULT_PARTIAL ? len / 2 : len;
    size_t flip = s->fault == FAULT_CORRUPT ? len / 2 : SIZE_MAX;
    for (size_t off = 0; off < stop;) {
        size_t n = stop - off;
        if (flip >= off && flip < off + n) n = flip > off ? flip - off : 1;
        ssize_t k;
        if (off == flip) {
            uint8_t b = buf[off] ^ 0x5A;
            k = write(fd, &b, 1);
        } else {
            k = write(fd, buf + off, n);
        }
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        off += (size_t)k;
    }
    if (s->fault == FAULT_PARTIAL) {
        fsync(fd);
        raise(SIGKILL);   /* test hook: the process dies mid-write */
    }
    return 0;
}

int fw_store_put(fw_store *s, const uint8_t *stream, size_t len, fw_store_evict_fn on_evict, void *user, int *entry,
                 char *err, size_t errlen)
{
    if (len < DIGEST_OFF + 32) {
        snprintf(err, errlen, "not a KV stream");
        return -1;
    }
    for (uint32_t i = 0; i < s->slots; i++)
        if (s->e[i].used && memcmp(s->e[i].digest, stream + DIGEST_OFF, 32) == 0) {
            touch(s, (int)i);
            *entry = (int)i;
            return 0;
        }
    if (len > s->max_bytes) {
        snprintf(err, errlen, "a %zu-byte cache is larger than the store (%llu bytes)", len,
                 (unsigned long long)s->max_bytes);
        return -1;
    }
    evict_until(s, len, 1, on_evict, user);
    int slot = free_slot(s);
    fw_store_entry *e = &s->e[slot];
    int rc = check_stream(s, stream, len, NULL, e);
    if (rc) {
        snprintf(err, errlen, "refusing to store a stream that does not check (%s)", rc == 1 ? "damaged" : "foreign");
        return -1;
    }
    char h[65], path[FW_STORE_PATH], tmp[FW_STORE_PATH + 8];
    hex(e->digest, 32, h);
    if (snprintf(path, sizeof path, "%s/%s.kv", s->dir, h) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "cache directory name too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write_all(s, fd, stream, len) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        s->st.write_errors++;
        return -1;
    }
    if (close(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        s->st.write_errors++;
        return -1;
    }
    if (s->fault == FAULT_BEFORE_RENAME) raise(SIGKILL);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        s->st.write_errors++;
        return -1;
    }
    if (s->fault == FAULT_BEFORE_DIRSYNC) raise(SIGKILL);
    sync_dir(s->dir);
    e->used = true;
    e->stamp = tick(s);
    s->count++;
    s->bytes += len;
    s->st.writes++;
    *entry = slot;
    return 0;
}

void fw_store_set_max_bytes(fw_store *s, uint64_t max_bytes, fw_store_evict_fn on_evict, void *user)
{
    s->max_bytes = max_bytes;
    evict_until(s, 0, 0, on_evict, user);
}

void fw_store_drop(fw_store *s, int i, fw_store_evict_fn on_evict, void *user)
{
    if (i < 0 || (uint32_t)i >= s->slots || !s->e[i].used) return;
    if (on_evict) on_evict(user, s, i);
    forget(s, i);
    s->st.dropped++;
}

uint32_t fw_store_drop_all(fw_store *s, fw_store_evict_fn on_evict, void *user)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->slots; i++) {
        if (!s->e[i].used) continue;
        if (on_evict) on_evict(user, s, (int)i);
        forget(s, (int)i);
        s->st.dropped++;
        n++;
    }
    sync_dir(s->dir);
    return n;
}

int fw_store_sync(const fw_store *s) { return sync_dir(s->dir); }
