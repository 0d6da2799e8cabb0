/* kvmesh-kv pub | sub | fetch: the peer layer from the command line. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"

/* Identity options shared by the three commands. */
typedef struct {
    mqtt_model_id model;
    uint8_t prefix[MQTT_ID_BYTES];
    bool have_model, have_prefix;
} kv_ident;

static int ident_opt(kv_ident *id, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    uint64_t n;
    if (!strcmp(a, "--model")) {
        if (!v || mqtt_hex_decode(v, id->model.fingerprint, MQTT_ID_BYTES)) {
            fprintf(stderr, "kvmesh-kv: --model needs 64 hex digits (the model fingerprint)\n");
            return -1;
        }
        id->have_model = true;
    } else if (!strcmp(a, "--numerics")) {
        if (!v || kv_parse_u64(v, &n) || n > UINT32_MAX) {
            fprintf(stderr, "kvmesh-kv: --numerics needs a 32-bit number\n");
            return -1;
        }
        id->model.numerics = (uint32_t)n;
    } else if (!strcmp(a, "--prefix")) {
        if (!v || mqtt_hex_decode(v, id->prefix, MQTT_ID_BYTES)) {
            fprintf(stderr, "kvmesh-kv: --prefix needs 64 hex digits (the prefix id)\n");
            return -1;
        }
        id->have_prefix = true;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

static const char ident_usage[] =
    "  --model HEX         model fingerprint, 64 hex digits\n"
    "  --numerics N        model numerics version (default 0)\n"
    "  --prefix HEX        prefix id, 64 hex digits\n";


/* Frame type for --type. */
static int push_type(const char *s)
{
    static const struct { const char *name; int type; } t[] = {
        { "hidden", MQTT_FT_HIDDEN }, { "prompt", MQTT_FT_PROMPT }, { "tokens", MQTT_FT_TOKENS },
        { "command", MQTT_FT_COMMAND }, { "kv", MQTT_FT_KV_CACHE },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].name)) return t[i].type;
    return -1;
}
static const char *type_name(int t)
{
    static const char *const names[] = { "?", "kv", "announce", "hidden", "prompt", "tokens", "request", "response", "command" };
    return t >= 1 && t <= MQTT_FT_MAX_ ? names[t] : "?";
}

/* Connects, with progress on stderr. 0 or -1. */
static int connect_node(mqtt_node *n, const kv_net_opts *o)
{
    int rc = mqtt_node_start(n);
    if (!o->quiet) fprintf(stderr, "kvmesh-kv: connecting to %s:%d as %s%s\n", o->host, n->session.cfg.port, o->node,
                           o->tls ? " (TLS)" : "");
    while (!rc && !mqtt_session_connected(&n->session) && !kv_stop) rc = mqtt_node_poll(n, 50);
    if (rc || kv_stop) {
        fprintf(stderr, "kvmesh-kv: cannot connect to %s:%d: %s\n", o->host, n->session.cfg.port,
                kv_stop ? "interrupted" : mqtt_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- pub ---------------------------------------------------------------------------------- */

typedef struct {
    mqtt_cache_info info;
    const uint8_t *data;
    int lent;
} pub_state;

static int pub_get(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                   mqtt_cache_info *info, const uint8_t **data, void **handle)
{
    pub_state *p = user;
    if (memcmp(model, &p->info.model.fingerprint, MQTT_ID_BYTES) || model->numerics != p->info.model.numerics ||
        memcmp(prefix, p->info.prefix, MQTT_ID_BYTES))
        return MQTT_ERR_NOT_FOUND;
    *info = p->info;
    *data = p->data;
    *handle = p;
    p->lent++;
    return MQTT_OK;
}

static void pub_put(void *user, void *handle)
{
    pub_state *p = user;
    (void)handle;
    p->lent--;
}

static void pub_usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv pub --file F --model HEX --prefix HEX --secret-file S [options]\n"
               "Announces the cache in F (retained, sealed) and serves it, sealed and chunked, to\n"
               "every node that requests it, until --requests or --serve-secs is reached or a signal.\n"
               "With --to, pushes F to one node's request topic instead (hidden states, prompts, ...).\n\n"
               "  --file F            cache bytes (opaque: the engine's codec output)\n"
               "%s"
               "  --codec N           engine codec id recorded in the frames (default 0)\n"
               "  --layers A:B        layer range (default 0:0)\n"
               "  --positions A:B     position range (default 0:0)\n"
               "  --requests N        exit after serving N requests (default: serve until stopped)\n"
               "  --serve-secs S      exit after S seconds (default: until stopped)\n"
               "  --pace-ms MS        at least MS between chunks (rate limit; default 0)\n"
               "  --metrics-secs S    publish JSON metrics on node/<node>/metrics every S s (5; 0 off)\n"
               "  --keep-announcement leave the retained announcement when exiting (default: clear it)\n"
               "  --to NODE           instead: send F once, sealed, to NODE's request topic and exit\n"
               "  --to-group G        the same to one member of group G (F must fit one chunk)\n"
               "  --type T            with --to/--to-group: hidden, prompt, tokens, command or kv (default hidden)\n\n%s",
            ident_usage, kv_net_usage);
}

int kv_cmd_pub(int argc, char **argv)
{
    kv_net_opts o;
    kv_net_defaults(&o);
    kv_ident id = { 0 };
    pub_state ps = { 0 };
    const char *file = NULL, *to = NULL, *type = "hidden";
    bool shared = false;
    uint64_t requests = 0, secs = 0, pace = 0, codec = 0, metrics_s = 5;
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        int r = kv_net_opt(&o, argc, argv, &i);
        if (r == 0) r = ident_opt(&id, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { pub_usage(stdout); return 0; }
        else if (!strcmp(a, "--file") && v) file = argv[++i];
        else if (!strcmp(a, "--to") && v) to = argv[++i];
        else if (!strcmp(a, "--to-group") && v) { to = argv[++i]; shared = true; }
        else if (!strcmp(a, "--type") && v) type = argv[++i];
        else if (!strcmp(a, "--requests") && v && !kv_parse_u64(v, &requests)) i++;
        else if (!strcmp(a, "--metrics-secs") && v && !kv_parse_u64(v, &metrics_s)) i++;
        else if (!strcmp(a, "--keep-announcement")) keep = true;
        else if (!strcmp(a, "--serve-secs") && v && !kv_parse_u64(v, &secs)) i++;
        else if (!strcmp(a, "--pace-ms") && v && !kv_parse_u64(v, &pace) && pace < 60000) i++;
        else if (!strcmp(a, "--codec") && v && !kv_parse_u64(v, &codec) && codec <= UINT32_MAX) i++;
        else if (!strcmp(a, "--layers") && v && !kv_parse_range(v, &ps.info.layer_begin, &ps.info.layer_end)) i++;
        else if (!strcmp(a, "--positions") && v && !kv_parse_range(v, &ps.info.pos_begin, &ps.info.pos_end)) i++;
        else { fprintf(stderr, "kvmesh-kv pub: bad option '%s' (see --help)\n", a); return 2; }
    }
    int ftype = push_type(type);
    if (!file || (!to && (!id.have_model || !id.have_prefix)) || (to && (!mqtt_node_id_valid(to) || ftype < 0))) {
        fprintf(stderr, "kvmesh-kv pub: --file with --model and --prefix, or --to NODE [--type T] (see --help)\n");
        return 2;
    }
    mqtt_node_cfg cfg;
    if (kv_net_setup(&o, &cfg)) return 2;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "kvmesh-kv pub: cannot open %s\n", file);
        return 1;
    }
    ps.info.model = id.model;
    memcpy(ps.info.prefix, id.prefix, MQTT_ID_BYTES);
    ps.info.size = (uint64_t)st.st_size;
    ps.info.codec = (uint32_t)codec;
    void *map = NULL;
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "kvmesh-kv pub: cannot map %s\n", file);
            close(fd);
            return 1;
        }
    }
    close(fd);
    ps.data = map;
    cfg.provider_get = pub_get;
    cfg.provider_put = pub_put;
    cfg.user = &ps;
    cfg.pace_ms = (uint32_t)pace;
    mqtt_node node;
    int rc = mqtt_node_init(&node, &cfg);
    int status = 1;
    if (rc) {
        fprintf(stderr, "kvmesh-kv pub: %s\n", mqtt_strerror(rc));
        goto out_map;
    }
    if (connect_node(&node, &o)) goto out;
    if (to) {
        /* Push: one sealed payload to a node (or group) request topic. */
        mqtt_frame_hdr t = { .type = (uint8_t)ftype, .model = id.model, .codec = ps.info.codec,
                             .layer_begin = ps.info.layer_begin, .layer_end = ps.info.layer_end,
                             .pos_begin = ps.info.pos_begin, .pos_end = ps.info.pos_end };
        memcpy(t.prefix, id.prefix, MQTT_ID_BYTES);
        double t0 = kv_now_s();
        rc = shared ? mqtt_node_send_shared(&node, to, &t, ps.data, ps.info.size, 60000)
                    : mqtt_node_send(&node, to, &t, ps.data, ps.info.size, 60000);
        double dt = kv_now_s() - t0;
        if (rc) {
            fprintf(stderr, "kvmesh-kv pub: sending to %s failed: %s\n", to, mqtt_strerror(rc));
            goto out;
        }
        if (!o.quiet) fprintf(stderr, "kvmesh-kv pub: sent %" PRIu64 " bytes to %s in %.3f s\n", ps.info.size, to, dt);
        if (o.json) printf("{\"ok\":true,\"to\":\"%s\",\"bytes\":%" PRIu64 ",\"seconds\":%.6f}\n", to, ps.info.size, dt);
        status = 0;
        goto out;
    }
    rc = mqtt_node_announce(&node, &ps.info);
    if (rc) {
        fprintf(stderr, "kvmesh-kv pub: announce failed: %s\n", mqtt_strerror(rc));
        goto out;
    }
    if (!o.quiet)
        fprintf(stderr, "kvmesh-kv pub: announced %" PRIu64 " bytes; serving%s\n", ps.info.size,
                requests ? "" : " until stopped");
    double t0 = kv_now_s(), last_metrics = -1e9;
    mqtt_node_stats s;
    uint64_t last_report = 0;
    status = 0;
    while (!kv_stop) {
        rc = mqtt_node_poll(&node, 50);
        if (rc) {
            fprintf(stderr, "kvmesh-kv pub: session failed: %s\n", mqtt_strerror(rc));
            status = 1;
            break;
        }
        mqtt_node_get_stats(&node, &s);
        if (!o.quiet && s.frames_sent / 64 != last_report) {
            last_report = s.frames_sent / 64;
            fprintf(stderr, "kvmesh-kv pub: %" PRIu64 " frames, %.1f MiB sent\n", s.frames_sent, s.bytes_sent / 1048576.0);
        }
        if (metrics_s && kv_now_s() - last_metrics >= (double)metrics_s) {
            /* Units in the key names, as the fleet's dashboards expect. */
            char json[256];
            last_metrics = kv_now_s();
            snprintf(json, sizeof json,
                     "{\"uptime_s\":%.0f,\"frames_sent\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
                     ",\"requests_served\":%" PRIu64 ",\"frames_dropped\":%" PRIu64 "}",
                     last_metrics - t0, s.frames_sent, s.bytes_sent, s.requests_served, mqtt_rx_drops_total(&node.rx));
            mqtt_node_publish_metrics(&node, json);
        }
        if (requests && s.requests_served >= requests && ps.lent == 0) {
            mqtt_node_flush(&node, 10000);
            break;
        }
        if (secs && kv_now_s() - t0 >= (double)secs) break;
    }
    /* Leaving: clear the retained announcement so nobody asks a holder that is gone. */
    if (!keep && mqtt_session_connected(&node.session) &&
        mqtt_node_withdraw(&node, &ps.info.model, ps.info.prefix) == MQTT_OK)
        mqtt_node_flush(&node, 2000);
    if (o.json) {
        kv_print_stats(stdout, &node);
        fputc('\n', stdout);
    }
out:
    mqtt_node_free(&node);
out_map:
    if (map) munmap(map, (size_t)st.st_size);
    mqtt_keys_wipe(&o.keys);
    return status;
}

/* ---- sub ---------------------------------------------------------------------------------- */

typedef struct {
    uint64_t count;   /* payloads delivered */
} sub_state;

static void sub_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    sub_state *s = user;
    uint8_t d[MQTT_ID_BYTES];
    char hex[2 * MQTT_ID_BYTES + 1], pre[2 * MQTT_ID_BYTES + 1];
    mqtt_sha256(p, len, d);
    mqtt_hex_encode(d, sizeof d, hex);
    mqtt_hex_encode(h->prefix, MQTT_ID_BYTES, pre);
    mqtt_announce a;
    if (h->type == MQTT_FT_KV_ANNOUNCE && mqtt_announce_decode(p, len, &a) == MQTT_OK) {
        char model[MQTT_MODEL_ID_STR + 1];
        mqtt_model_id_str(&h->model, model);
        printf("{\"event\":\"announce\",\"holder\":\"%s\",\"bytes\":%" PRIu64 ",\"model\":\"%s\",\"prefix\":\"%s\","
               "\"codec\":%u,\"layers\":[%u,%u],\"positions\":[%u,%u]}\n",
               a.holder, a.size, model, pre, h->codec, h->layer_begin, h->layer_end, h->pos_begin, h->pos_end);
        fflush(stdout);
        return;   /* not counted against --count: those are payloads */
    }
    printf("{\"event\":\"deliver\",\"type\":\"%s\",\"sender\":\"%s\",\"bytes\":%zu,\"sha256\":\"%s\",\"prefix\":\"%s\"}\n",
           type_name(h->type), h->sender, len, hex, pre);
    fflush(stdout);
    s->count++;
}

static void sub_usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv sub --secret-file S [options]\n"
               "Listens on this node's req/ and cmd/ topics (and announcements with --announce):\n"
               "prints one JSON line per verified payload (type, sender, bytes, sha256); everything\n"
               "that fails verification is dropped and counted. Prints the counters on exit.\n\n"
               "%s"
               "  --announce          also print every cache announcement under the root\n"
               "  --group G           also take payloads sent to G, shared with the group's other\n"
               "                      members (MQTT shared subscription $share/G/...)\n"
               "  --inbox N           largest pushed payload accepted, bytes (default 64 MiB)\n"
               "  --count N           exit after N deliveries\n"
               "  --secs S            exit after S seconds\n\n%s",
            ident_usage, kv_net_usage);
}

int kv_cmd_sub(int argc, char **argv)
{
    kv_net_opts o;
    kv_net_defaults(&o);
    kv_ident id = { 0 };
    uint64_t count = 0, secs = 0, inbox = 64u << 20;
    bool announce = false;
    const char *group = NULL;
    for (int i = 1; i < argc; i++) {
        int r = kv_net_opt(&o, argc, argv, &i);
        if (r == 0) r = ident_opt(&id, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { sub_usage(stdout); return 0; }
        else if (!strcmp(a, "--announce")) announce = true;
        else if (!strcmp(a, "--group") && v) group = argv[++i];
        else if (!strcmp(a, "--count") && v && !kv_parse_u64(v, &count)) i++;
        else if (!strcmp(a, "--secs") && v && !kv_parse_u64(v, &secs)) i++;
        else if (!strcmp(a, "--inbox") && v && !kv_parse_u64(v, &inbox) && inbox <= (1u << 30)) i++;
        else { fprintf(stderr, "kvmesh-kv sub: bad option '%s' (see --help)\n", a); return 2; }
    }
    mqtt_node_cfg cfg;
    if (kv_net_setup(&o, &cfg)) return 2;
    sub_state ss = { 0 };
    uint8_t *box = malloc(inbox ? inbox : 1);
    if (!box) {
        fprintf(stderr, "kvmesh-kv sub: cannot allocate %" PRIu64 " bytes\n", inbox);
        return 1;
    }
    cfg.inbox = box;
    cfg.inbox_cap = inbox;
    cfg.max_total = inbox;
    cfg.model = id.have_model ? &id.model : NULL;
    cfg.on_deliver = sub_deliver;
    cfg.share_group = group;
    cfg.user = &ss;
    mqtt_node node;
    int rc = mqtt_node_init(&node, &cfg), status = 1;
    if (rc) {
        fprintf(stderr, "kvmesh-kv sub: %s\n", mqtt_strerror(rc));
        free(box);
        return 1;
    }
    char topic[MQTT_TOPIC_MAX];
    if (announce) {
        snprintf(topic, sizeof topic, "%s/kv/+/+", o.root);
        mqtt_session_subscribe(&node.session, topic);
    }
    if (connect_node(&node, &o)) goto out;
    if (!o.quiet) fprintf(stderr, "kvmesh-kv sub: listening\n");
    printf("{\"event\":\"ready\",\"node\":\"%s\"}\n", o.node);
    fflush(stdout);
    double t0 = kv_now_s();
    status = 0;
    while (!kv_stop && !(count && ss.count >= count) && !(secs && kv_now_s() - t0 >= (double)secs)) {
        rc = mqtt_node_poll(&node, 50);
        if (rc) {
            fprintf(stderr, "kvmesh-kv sub: session failed: %s\n", mqtt_strerror(rc));
            status = 1;
            break;
        }
    }
    printf("{\"event\":\"stats\",\"stats\":");
    kv_print_stats(stdout, &node);
    printf("}\n");
out:
    mqtt_node_free(&node);
    free(box);
    mqtt_keys_wipe(&o.keys);
    return status;
}

/* ---- fetch -------------------------------------------------------------------------------- */

static void fetch_usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv fetch --model HEX --prefix HEX --out F --secret-file S [options]\n"
               "Finds the node that announced the prefix, requests the cache and writes it to F once\n"
               "every chunk authenticated and the whole matched its sha256. Exit 0 on success, 1 on\n"
               "failure (not found, timeout, holder offline, unreachable), 2 on bad usage.\n\n"
               "%s"
               "  --out F             where to write the cache\n"
               "  --deadline S        give up after S seconds (default 30)\n"
               "  --max-size N        refuse caches larger than N bytes (default 1 GiB)\n\n%s",
            ident_usage, kv_net_usage);
}

int kv_cmd_fetch(int argc, char **argv)
{
    kv_net_opts o;
    kv_net_defaults(&o);
    kv_ident id = { 0 };
    const char *out = NULL;
    uint64_t deadline = 30, max_size = 1ull << 30;
    for (int i = 1; i < argc; i++) {
        int r = kv_net_opt(&o, argc, argv, &i);
        if (r == 0) r = ident_opt(&id, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fetch_usage(stdout); return 0; }
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--deadline") && v && !kv_parse_u64(v, &deadline) && deadline > 0 && deadline < 86400) i++;
        else if (!strcmp(a, "--max-size") && v && !kv_parse_u64(v, &max_size)) i++;
        else { fprintf(stderr, "kvmesh-kv fetch: bad option '%s' (see --help)\n", a); return 2; }
    }
    if (!out || !id.have_model || !id.have_prefix) {
        fprintf(stderr, "kvmesh-kv fetch: --out, --model and --prefix are required (see --help)\n");
        return 2;
    }
    mqtt_node_cfg cfg;
    if (kv_net_setup(&o, &cfg)) return 2;
    cfg.model = &id.model;
    cfg.max_total = max_size;
    mqtt_node node;
    int rc = mqtt_node_init(&node, &cfg), status = 1;
    uint8_t *buf = NULL;
    if (rc) {
        fprintf(stderr, "kvmesh-kv fetch: %s\n", mqtt_strerror(rc));
        return 1;
    }
    double t_start = kv_now_s();
    if (connect_node(&node, &o)) goto out;
    mqtt_announce ann;
    uint32_t budget = (uint32_t)(deadline * 1000);
    rc = mqtt_node_find(&node, &id.model, id.prefix, budget, &ann, NULL);
    if (rc) {
        fprintf(stderr, "kvmesh-kv fetch: nobody announced that prefix: %s\n", mqtt_strerror(rc));
        goto out;
    }
    if (ann.size > max_size) {
        fprintf(stderr, "kvmesh-kv fetch: %s holds %" PRIu64 " bytes, over --max-size\n", ann.holder, ann.size);
        goto out;
    }
    if (!o.quiet) fprintf(stderr, "kvmesh-kv fetch: %s holds %" PRIu64 " bytes; fetching\n", ann.holder, ann.size);
    buf = malloc(ann.size ? ann.size : 1);
    if (!buf) {
        fprintf(stderr, "kvmesh-kv fetch: cannot allocate %" PRIu64 " bytes\n", ann.size);
        goto out;
    }
    double spent = kv_now_s() - t_start;
    uint32_t left = spent * 1000 >= budget ? 1 : budget - (uint32_t)(spent * 1000);
    double t0 = kv_now_s();
    uint64_t got = 0;
    mqtt_cache_info info;
    rc = mqtt_node_fetch(&node, &id.model, id.prefix, buf, ann.size, left, &got, &info);
    double secs = kv_now_s() - t0;
    if (rc) {
        fprintf(stderr, "kvmesh-kv fetch: failed after %.1f s: %s\n", secs, mqtt_strerror(rc));
        if (o.json) {
            printf("{\"ok\":false,\"error\":\"%s\",\"status\":%d,\"stats\":", mqtt_strerror(rc), rc);
            kv_print_stats(stdout, &node);
            printf("}\n");
        }
        goto out;
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(buf, 1, got, f) != got || fclose(f) != 0) {
        fprintf(stderr, "kvmesh-kv fetch: cannot write %s\n", out);
        goto out;
    }
    uint8_t d[MQTT_ID_BYTES];
    char hex[2 * MQTT_ID_BYTES + 1];
    mqtt_sha256(buf, got, d);
    mqtt_hex_encode(d, sizeof d, hex);
    if (!o.quiet)
        fprintf(stderr, "kvmesh-kv fetch: %" PRIu64 " bytes in %.3f s (%.1f MB/s) from %s\n", got, secs,
                got / 1e6 / (secs > 0 ? secs : 1e-9), ann.holder);
    if (o.json) {
        printf("{\"ok\":true,\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"mb_per_s\":%.2f,\"holder\":\"%s\",\"sha256\":\"%s\","
               "\"codec\":%u,\"layers\":[%u,%u],\"positions\":[%u,%u],\"stats\":",
               got, secs, got / 1e6 / (secs > 0 ? secs : 1e-9), ann.holder, hex, info.codec, info.layer_begin,
               info.layer_end, info.pos_begin, info.pos_end);
        kv_print_stats(stdout, &node);
        printf("}\n");
    }
    status = 0;
out:
    mqtt_node_free(&node);
    free(buf);
    mqtt_keys_wipe(&o.keys);
    return status;
}
