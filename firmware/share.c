/*
 * Cache sharing, on every request:
 *   1. the prefix ids of the prompt (all but its last token, whose logits must be
 *      computed): one per 16-token block;
 *   2. the local store: the longest block it holds;
 *   3. the fleet: the longest block another node announced (an index of the retained
 *      announcements under kv/<model>/+, kept as they arrive, so a miss costs no wait);
 *      a fleet hit longer than the local one is fetched with a deadline;
 *   4. nn_kv_import takes positions while the cache's tokens equal the prompt's, so the
 *      reuse is exact to the token, whatever block found the cache;
 *   5. the caller computes the rest;
 *   6. after the request, the context is stored and announced under the publish policy.
 *
 * Why several ids per cache: a prefix id names the first 16(k+1) tokens, so a requester
 * that shares only the first 20 tokens of a 60-token context computes only block 0's id.
 * Each cache is therefore announced under block 0, the last block, and evenly spaced
 * blocks between (at most [cache] announce_blocks ids). Since the import then matches
 * token by token, an id only has to find the cache; it does not limit the reuse.
 *
 * Peers fetch our entries through the provider callback, which maps the entry's file
 * read-only (FW_SERVE_MAX at once).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "service.h"

int fw_share_init(fw_svc *s, char *err, size_t errlen)
{
    s->fleet = calloc(FW_FLEET_MAX, sizeof *s->fleet);
    s->ids = calloc(FW_STORE_MAX_BLOCKS, sizeof *s->ids);
    if (!s->fleet || !s->ids) {
        snprintf(err, errlen, "no memory for the fleet index");
        return -1;
    }
    return 0;
}

void fw_share_free(fw_svc *s)
{
    for (int i = 0; i < FW_SERVE_MAX; i++)
        if (s->serve[i].used) munmap(s->serve[i].map, s->serve[i].len);
    free(s->fleet);
    free(s->ids);
    s->fleet = NULL;
    s->ids = NULL;
}

static bool same_model(const mqtt_model_id *a, const mqtt_model_id *b)
{
    return memcmp(a->fingerprint, b->fingerprint, MQTT_ID_BYTES) == 0 && a->numerics == b->numerics;
}

/* ---- the fleet index ----------------------------------------------------------------------- */

void fw_share_on_announce(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    mqtt_announce a;
    /* Our own announcements are kept too: the index says who announced a prefix last
     * (the topic holds one holder); lookups skip the ones that are ours. */
    if (mqtt_announce_decode(p, len, &a) != MQTT_OK || !same_model(&h->model, &s->mid)) return;
    fw_fleet_ent *slot = NULL, *old = NULL;
    for (int i = 0; i < FW_FLEET_MAX && !slot; i++) {
        fw_fleet_ent *e = &s->fleet[i];
        if (e->used && memcmp(e->prefix, h->prefix, 32) == 0) slot = e;
    }
    for (int i = 0; i < FW_FLEET_MAX && !slot; i++) {
        fw_fleet_ent *e = &s->fleet[i];
        if (!e->used) slot = e;
        else if (!old || e->stamp < old->stamp) old = e;
    }
    if (!slot) slot = old;   /* forget the least recently announced */
    slot->used = true;
    memcpy(slot->prefix, h->prefix, 32);
    snprintf(slot->holder, sizeof slot->holder, "%s", a.holder);
    slot->size = a.size;
    slot->positions = h->pos_end;
    slot->stamp = ++s->fleet_clock;
}

static void fleet_forget_prefix(fw_svc *s, const uint8_t *prefix)
{
    for (int i = 0; i < FW_FLEET_MAX; i++)
        if (s->fleet[i].used && memcmp(s->fleet[i].prefix, prefix, 32) == 0) s->fleet[i].used = false;
}

static void fleet_forget_holder(fw_svc *s, const char *holder)
{
    for (int i = 0; i < FW_FLEET_MAX; i++)
        if (s->fleet[i].used && strcmp(s->fleet[i].holder, holder) == 0) s->fleet[i].used = false;
}

static int fleet_find(const fw_svc *s, uint32_t nb, int *ent)
{
    for (int k = (int)nb - 1; k >= 0; k--)
        for (int i = 0; i < FW_FLEET_MAX; i++)
            if (s->fleet[i].used && memcmp(s->fleet[i].prefix, s->ids[k], 32) == 0 &&
                strcmp(s->fleet[i].holder, s->cfg.node_id) != 0) {
                *ent = i;
                return k;
            }
    return -1;
}

/* ---- announcements ---------------------------------------------------------------------------- */

/* Which block ids of an entry are announced: all when few, else block 0, the last, and
 * evenly spaced ones between. Returns the count written to k[]. */
static uint32_t announced_blocks(const fw_store_entry *e, uint32_t cap, uint32_t *k)
{
    uint32_t nb = e->nblocks < FW_STORE_MAX_BLOCKS ? e->nblocks : FW_STORE_MAX_BLOCKS;
    if (nb <= cap) {
        for (uint32_t j = 0; j < nb; j++) k[j] = j;
        return nb;
    }
    if (cap == 1) {
        k[0] = 0;
        return 1;
    }
    for (uint32_t j = 0; j < cap; j++) k[j] = (uint32_t)((uint64_t)j * (nb - 1) / (cap - 1));
    return cap;
}

static void announce_one(fw_svc *s, int i, const uint8_t *prefix)
{
    const fw_store_entry *e = &s->store.e[i];
    mqtt_cache_info info = { .model = s->mid, .size = e->bytes, .layer_begin = 0,
                             .layer_end = s->eng.m->cfg.n_layers, .pos_begin = 0, .pos_end = e->positions,
                             .codec = e->codec };
    memcpy(info.prefix, prefix, 32);
    int rc = mqtt_node_announce(&s->node, &info);
    if (rc && rc != MQTT_ERR_NO_CONN)
        fprintf(stderr, "kvmesh run: cannot announce a cache: %s\n", mqtt_strerror(rc));
}

static void announce_entry(fw_svc *s, int i)
{
    uint32_t k[64];
    uint32_t n = announced_blocks(&s->store.e[i], s->cfg.announce_blocks, k);
    for (uint32_t j = 0; j < n; j++) announce_one(s, i, s->store.e[i].ids[k[j]]);
}

/* An entry leaves the store: each of its ids goes to another entry holding it, or is
 * withdrawn, so no announcement points at a cache that is gone. */
static void on_evict(void *user, const fw_store *st, int i)
{
    fw_svc *s = user;
    if (!s->node_ok) return;
    uint32_t k[64];
    uint32_t n = announced_blocks(&st->e[i], s->cfg.announce_blocks, k);
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *id = st->e[i].ids[k[j]];
        int other = fw_store_find_id(st, id, i);
        if (other >= 0 && s->cfg.mode == FW_MODE_CACHE_SHARE) announce_one(s, other, id);
        else mqtt_node_withdraw(&s->node, &s->mid, id);
    }
}

void fw_share_on_withdrawn(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES])
{
    fw_svc *s = user;
    if (!same_model(model, &s->mid)) return;
    fleet_forget_prefix(s, prefix);
    /* The topic holds one holder: when it withdrew, a node that holds the prefix too
     * announces its copy, so the fleet still finds one. */
    int i = s->cfg.mode == FW_MODE_CACHE_SHARE ? fw_store_find_id(&s->store, prefix, -1) : -1;
    if (i >= 0) announce_one(s, i, prefix);
}

void fw_share_announce_all(fw_svc *s)
{
    if (!s->node_ok || s->cfg.mode != FW_MODE_CACHE_SHARE) return;
    for (uint32_t i = 0; i < s->store.slots; i++)
        if (s->store.e && s->store.e[i].used) announce_entry(s, (int)i);
}

void fw_share_withdraw_all(fw_svc *s)
{
    if (!s->node_ok) return;
    for (uint32_t i = 0; i < s->store.slots; i++) {
        if (!s->store.e || !s->store.e[i].used) continue;
        uint32_t k[64];
        uint32_t n = announced_blocks(&s->store.e[i], s->cfg.announce_blocks, k);
        for (uint32_t j = 0; j < n; j++) mqtt_node_withdraw(&s->node, &s->mid, s->store.e[i].ids[k[j]]);
    }
}

uint32_t fw_share_drop_caches(fw_svc *s)
{
    fw_share_withdraw_all(s);
    return fw_store_drop_all(&s->store, NULL, NULL);
}

void fw_share_set_mode(fw_svc *s, fw_mode m)
{
    if (m == s->cfg.mode) return;
    fw_mode old = s->cfg.mode;
    s->cfg.mode = m;
    if (m == FW_MODE_CACHE_SHARE) fw_share_announce_all(s);
    else if (old == FW_MODE_CACHE_SHARE) fw_share_withdraw_all(s);
    char json[128];
    snprintf(json, sizeof json, "{\"event\":\"mode\",\"old_mode\":\"%s\",\"new_mode\":\"%s\"}", fw_mode_name(old),
             fw_mode_name(m));
    fw_telemetry_event(s, json);
    fw_telemetry_tick(s, fw_now_ms(), true);
}

/* ---- on a request ------------------------------------------------------------------------------ */

uint32_t fw_share_prefill(fw_svc *s, const uint32_t *tokens, uint32_t n, fw_reuse *how)
{
    fw_engine *e = &s->eng;
    memset(how, 0, sizeof *how);
    if (n < 2) return 0;
    /* The last prompt token is computed in any case: its logits are not in a cache. */
    uint32_t nb = nn_kv_prefix_ids(&e->img.id, NN_KV_BLOCK, tokens, n - 1, s->ids, FW_STORE_MAX_BLOCKS);
    if (nb == 0) return 0;
    if (nb > FW_STORE_MAX_BLOCKS) nb = FW_STORE_MAX_BLOCKS;
    int entry = -1, fe = -1;
    int lk = fw_store_find(&s->store, (const uint8_t(*)[32])s->ids, nb, &entry);
    int fk = s->cfg.mode == FW_MODE_CACHE_SHARE && s->node_ok && mqtt_session_connected(&s->node.session)
                 ? fleet_find(s, nb, &fe) : -1;
    uint32_t reused = 0;
    if (fk > lk) {
        char holder[MQTT_NODE_ID_MAX + 1];
        snprintf(holder, sizeof holder, "%s", s->fleet[fe].holder);
        s->sharing = true;
        fw_svc_pump(s);   /* show it on the LED */
        uint64_t got = 0;
        int rc = mqtt_node_fetch(&s->node, &s->mid, s->ids[fk], e->kvbuf, e->kvbuf_bytes, s->cfg.fetch_timeout_ms,
                                 &got, NULL);
        s->sharing = false;
        if (rc == MQTT_OK) {
            s->st.cache_in_bytes += got;
            nn_status st = nn_kv_import(&e->s, e->kvbuf, (size_t)got, tokens, n - 1, NULL, &e->kvw, &reused);
            if (st == NN_OK && reused > 0) {
                how->source = 2;
                snprintf(how->from, sizeof how->from, "%s", holder);
                how->bytes = got;
                s->st.hits_fleet++;
            } else {
                fprintf(stderr, "kvmesh run: a cache from %s did not import: %s\n", holder,
                        st ? nn_strerror(st) : "no token matched");
                s->st.import_failures++;
                nn_session_truncate(&e->s, 0);
                reused = 0;
            }
        } else {
            fprintf(stderr, "kvmesh run: fetching a cache from %s failed: %s\n", holder, mqtt_strerror(rc));
            s->st.fetch_failures++;
            /* Not found: that announcement is stale. Anything else: the holder is gone or
             * too slow; it is learnt again when it announces. */
            if (rc == MQTT_ERR_NOT_FOUND) fleet_forget_prefix(s, s->ids[fk]);
            else fleet_forget_holder(s, holder);
        }
    }
    if (!how->source && lk >= 0) {
        size_t len;
        if (fw_store_read(&s->store, entry, e->kvbuf, e->kvbuf_bytes, &len) == 0) {
            nn_status st = nn_kv_import(&e->s, e->kvbuf, len, tokens, n - 1, NULL, &e->kvw, &reused);
            if (st == NN_OK && reused > 0) {
                how->source = 1;
                snprintf(how->from, sizeof how->from, "%s", s->cfg.node_id);
                how->bytes = len;
                s->st.hits_local++;
            } else {
                /* Damaged since it was loaded: it goes. */
                fprintf(stderr, "kvmesh run: a stored cache did not import (%s); discarded\n",
                        st ? nn_strerror(st) : "no token matched");
                s->st.import_failures++;
                fw_store_drop(&s->store, entry, on_evict, s);
                nn_session_truncate(&e->s, 0);
                reused = 0;
            }
        }
    }
    if (!how->source) s->st.misses++;
    return reused;
}

void fw_share_publish(fw_svc *s, const uint32_t *tokens, uint32_t n_ctx, uint32_t n_system)
{
    fw_engine *e = &s->eng;
    uint32_t n = s->cfg.publish == FW_PUBLISH_ALL ? n_ctx : n_system;
    if (n < NN_KV_BLOCK || n > e->s.n_pos) return;
    uint32_t nb = nn_kv_prefix_ids(&e->img.id, NN_KV_BLOCK, tokens, n, s->ids, FW_STORE_MAX_BLOCKS);
    if (nb <= FW_STORE_MAX_BLOCKS && fw_store_covers(&s->store, s->ids[nb - 1], nb, n)) return;
    nn_kv_range r = { 0, e->m->cfg.n_layers, 0, n };
    size_t len;
    nn_status st = nn_kv_export(&e->s, &r, tokens, &s->cfg.codec, NULL, &e->kvw, e->kvbuf, e->kvbuf_bytes, &len);
    if (st) {
        fprintf(stderr, "kvmesh run: cannot export the context's cache: %s\n", nn_strerror(st));
        return;
    }
    int entry;
    char err[256];
    if (fw_store_put(&s->store, e->kvbuf, len, on_evict, s, &entry, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: cannot store a cache: %s\n", err);
        return;
    }
    s->st.published++;
    if (s->node_ok && s->cfg.mode == FW_MODE_CACHE_SHARE) announce_entry(s, entry);
}

/* ---- serving peers ---------------------------------------------------------------------------- */

int fw_share_provider_get(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                          mqtt_cache_info *info, const uint8_t **data, void **handle)
{
    fw_svc *s = user;
    if (s->cfg.mode != FW_MODE_CACHE_SHARE || !same_model(model, &s->mid)) return MQTT_ERR_NOT_FOUND;
    int i = fw_store_find_id(&s->store, prefix, -1);
    if (i < 0) return MQTT_ERR_NOT_FOUND;
    fw_serve *sv = NULL;
    for (int k = 0; k < FW_SERVE_MAX && !sv; k++)
        if (!s->serve[k].used) sv = &s->serve[k];
    if (!sv) return MQTT_ERR_BUSY;
    const fw_store_entry *e = &s->store.e[i];
    char path[FW_PATH_MAX + 80];
    fw_store_path(&s->store, i, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *map = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)e->bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (fd >= 0) close(fd);
    if (map == MAP_FAILED) return MQTT_ERR_NOT_FOUND;
    sv->used = true;
    sv->map = map;
    sv->len = (size_t)e->bytes;
    memset(info, 0, sizeof *info);
    info->model = s->mid;
    memcpy(info->prefix, prefix, MQTT_ID_BYTES);
    info->size = e->bytes;
    info->layer_end = s->eng.m->cfg.n_layers;
    info->pos_end = e->positions;
    info->codec = e->codec;
    *data = map;
    *handle = sv;
    s->st.served++;
    s->st.cache_out_bytes += e->bytes;
    return MQTT_OK;
}

void fw_share_provider_put(void *user, void *handle)
{
    (void)user;
    fw_serve *sv = handle;
    if (!sv || !sv->used) return;
    munmap(sv->map, sv->len);
    sv->used = false;
}

uint32_t fw_share_serving(const fw_svc *s)
{
    uint32_t n = 0;
    for (int i = 0; i < FW_SERVE_MAX; i++) n += s->serve[i].used;
    return n;
}
