/*
 * kvmesh run --config FILE: the long-running device service (see service.h for its
 * parts). Start-up loads the image and sizes the arena, opens the store, connects
 * (the mqtt layer publishes the retained "online", with "offline" as the last will),
 * and announces the stored caches. SIGTERM/SIGINT (or the shutdown command) cancel the
 * request being generated, answer the queued ones, withdraw the announcements, flush,
 * say "offline" and exit 0. SIGHUP reloads the configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "service.h"
#include "textpeer.h"

static fw_svc fw_service;   /* large (engine, node, config): static, not on the stack */

uint64_t fw_now_ms(void) { return fw_now_ns() / 1000000u; }

static void on_stop(int sig)
{
    (void)sig;
    fw_service.stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    fw_service.reload = 1;
}

static void on_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    fw_svc *s = user;
    switch (h->type) {
    case MQTT_FT_KV_ANNOUNCE: fw_share_on_announce(s, h, p, len); break;
    case MQTT_FT_PROMPT: fw_req_deliver(s, h, p, len); break;
    case MQTT_FT_COMMAND: fw_cmd_deliver(s, h, p, len); break;
    case MQTT_FT_TOKENS: fw_textpeer_deliver(s, h, p, len); break;   /* a text peer's answer */
    default: break;   /* hidden states, tokens, pushed caches: later modes */
    }
}

static void housekeeping(fw_svc *s)
{
    uint64_t now = fw_now_ms();
    enum hal_button_role role;
    if (fw_board_tick(s, now, &role)) {
        s->st.button_presses++;
        fprintf(stderr, "kvmesh run: button pressed: %s\n", hal_button_role_name(role));
        if (role == HAL_BUTTON_ROLE_TOGGLE_MODE)
            fw_share_set_mode(s, s->cfg.mode == FW_MODE_CACHE_SHARE ? FW_MODE_STANDALONE : FW_MODE_CACHE_SHARE);
        else
            fw_req_button(s);
    }
    if (s->node_ok && mqtt_session_connected(&s->node.session) && s->node.session.stats.connects != s->connects_seen) {
        s->connects_seen = s->node.session.stats.connects;
        fprintf(stderr, "kvmesh run: connected to %s:%d (MQTT %s)\n", s->cfg.host, s->cfg.port,
                mqtt_session_protocol(&s->node.session) == MQTT_PROTO_V311 ? "3.1.1" : "5");
        fw_telemetry_on_connect(s);
    }
    fw_telemetry_tick(s, now, false);
}

void fw_svc_pump(fw_svc *s)
{
    if (s->node_ok) {
        int rc = mqtt_node_poll(&s->node, 0);
        if (rc && !s->net_failure) s->net_failure = rc;
    }
    housekeeping(s);
}

static int start(fw_svc *s)
{
    fw_config *c = &s->cfg;
    char err[512];
    fw_engine_opts eo = { .model = c->image, .ctx = c->context, .batch = c->batch, .threads = c->threads,
                          .temp_q16 = c->temp_q16, .topp_q16 = c->top_p_q16, .max_prompt_bytes = c->max_prompt_bytes,
                          .kv = 1 };
    if (fw_engine_open(&s->eng, &eo, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: [model] image: %s\n", err);
        return -1;
    }
    fw_engine *e = &s->eng;
    memcpy(s->mid.fingerprint, e->img.id.fingerprint, 32);
    s->mid.numerics = e->img.id.numerics_version;
    char fp[65];
    mqtt_hex_encode(s->mid.fingerprint, 32, fp);
    fprintf(stderr, "kvmesh run: model %s (fingerprint %.16s..., %u layers, dim %u, vocab %u)\n", c->image, fp,
            e->m->cfg.n_layers, e->m->cfg.dim, e->m->cfg.vocab_size);
    fprintf(stderr, "kvmesh run: arena: %zu of %zu bytes used (session %zu incl. the KV cache for %u tokens, "
            "%u threads; KV stream buffer %zu)\n", e->arena_bytes, fw_arena_capacity(), e->session_bytes,
            e->s.max_seq, e->so.threads, e->kvbuf_bytes);
    s->threads = e->so.threads;
    if (fw_mkdirs(c->state_dir) != 0) {
        fprintf(stderr, "kvmesh run: [node] state_dir: cannot create %s: %s\n", c->state_dir, strerror(errno));
        return -1;
    }
    fw_store_cfg sc = { .dir = c->store_dir, .max_bytes = c->store_max_bytes, .max_entries = c->store_max_entries,
                        .m = e->m };
    if (fw_store_open(&s->store, &sc, e->kvbuf, e->kvbuf_bytes, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: [cache] dir: %s\n", err);
        return -1;
    }
    const fw_store_stats *ss = &s->store.st;
    fprintf(stderr, "kvmesh run: cache store %s: %u entries verified (%" PRIu64 " bytes of %" PRIu64 "), "
            "%" PRIu64 " torn and %" PRIu64 " foreign files discarded, %" PRIu64 " evicted\n", c->store_dir,
            s->store.count, s->store.bytes, s->store.max_bytes, ss->torn, ss->foreign, ss->evicted);
    if (fw_share_init(s, err, sizeof err) || fw_req_init(s, err, sizeof err) || fw_textpeer_init(s, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: %s\n", err);
        return -1;
    }
    fw_cmd_init(s);

    /* The fleet: keys, the persisted frame counter, the node. */
    uint8_t secret[MQTT_SECRET_MAX];
    size_t slen;
    int rc = mqtt_keys_load_secret(c->secret_file, secret, sizeof secret, &slen);
    if (rc || mqtt_keys_init(&s->keys, secret, slen, c->fleet)) {
        fprintf(stderr, "kvmesh run: [security] secret_file: cannot use %s: %s\n", c->secret_file,
                rc ? mqtt_strerror(rc) : "a fleet secret is 16..64 bytes (or 32..128 hex digits)");
        return -1;
    }
    memset(secret, 0, sizeof secret);
    char nonce[FW_PATH_MAX + 16];
    snprintf(nonce, sizeof nonce, "%s/nonce", c->state_dir);
    mqtt_seqfile_open(&s->seqfile, nonce);
    mqtt_seq_init(&s->seq, mqtt_seqfile_reserve, &s->seqfile);
    uint64_t probe;
    if ((rc = mqtt_seq_next(&s->seq, &probe)) != MQTT_OK) {
        fprintf(stderr, "kvmesh run: nonce counter %s: %s\n", nonce, mqtt_strerror(rc));
        return -1;
    }
    if (c->root[0]) snprintf(s->root, sizeof s->root, "%s", c->root);
    else mqtt_topic_root(c->fleet, s->root, sizeof s->root);
    s->inbox = malloc(c->max_request_bytes);
    if (!s->inbox) {
        fprintf(stderr, "kvmesh run: no memory for the request inbox\n");
        return -1;
    }
    mqtt_node_cfg nc = mqtt_node_cfg_default();
    fw_config_session(c, s->root, &nc.session);
    nc.keys = &s->keys;
    nc.seq = &s->seq;
    nc.model = &s->mid;
    nc.cipher = (uint8_t)c->cipher;
    nc.max_total = e->kvbuf_bytes > c->max_request_bytes ? e->kvbuf_bytes : c->max_request_bytes;
    nc.inbox = s->inbox;
    nc.inbox_cap = c->max_request_bytes;
    nc.share_group = c->share_group[0] ? c->share_group : NULL;
    uint64_t anns = (uint64_t)c->store_max_entries * c->announce_blocks;
    nc.max_announce = anns < 64 ? 64 : anns > 16384 ? 16384 : (size_t)anns;
    nc.max_directory = 1024;
    nc.max_serving = FW_SERVE_MAX;
    nc.provider_get = fw_share_provider_get;
    nc.provider_put = fw_share_provider_put;
    nc.on_deliver = on_deliver;
    nc.on_withdrawn = fw_share_on_withdrawn;
    nc.user = s;
    if ((rc = mqtt_node_init(&s->node, &nc)) != MQTT_OK) {
        fprintf(stderr, "kvmesh run: [broker]: cannot set up the connection: %s (check the TLS files)\n",
                mqtt_strerror(rc));
        return -1;
    }
    s->node_ok = true;
    /* Every announcement for this model, as it arrives: the fleet index (share.c). */
    char model_str[MQTT_MODEL_ID_STR + 1], t[MQTT_TOPIC_MAX];
    mqtt_model_id_str(&s->mid, model_str);
    snprintf(t, sizeof t, "%s/kv/%s/+", s->root, model_str);
    if ((rc = mqtt_session_subscribe(&s->node.session, t)) || (rc = mqtt_node_start(&s->node))) {
        fprintf(stderr, "kvmesh run: cannot start the connection: %s\n", mqtt_strerror(rc));
        return -1;
    }
    if (fw_board_open(s, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: board: %s\n", err);
        return -1;
    }
    fw_share_announce_all(s);
    fprintf(stderr, "kvmesh run: node %s, fleet %s (topics under %s), mode %s, publish policy %s, broker %s, "
            "board %s%s\n", c->node_id, c->fleet, s->root, fw_mode_name(c->mode), fw_publish_name(c->publish), c->url,
            hal_board()->name, c->backend == FW_BACKEND_SIM ? " (sim backend)" : "");
    return 0;
}

static void stop_service(fw_svc *s)
{
    fprintf(stderr, "kvmesh run: stopping\n");
    fw_req_reject_all(s, "shutting_down", "the node is shutting down");
    if (s->node_ok) {
        fw_share_withdraw_all(s);
        fw_telemetry_tick(s, fw_now_ms(), true);
        mqtt_node_flush(&s->node, 2000);
    }
    if (s->store.e) fw_store_sync(&s->store);
    fw_board_close(s);
    if (s->node_ok) mqtt_node_free(&s->node);   /* says "offline" and disconnects */
    s->node_ok = false;
}

static void release(fw_svc *s)
{
    fw_share_free(s);
    fw_req_free(s);
    fw_textpeer_free(s);
    fw_store_close(&s->store);
    fw_engine_close(&s->eng);
    free(s->inbox);
    mqtt_keys_wipe(&s->keys);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh run --config FILE [--check]\n"
        "\n"
        "The device service: answers prompts sent over MQTT (req/<node>), streams the tokens\n"
        "back, shares KV caches with the fleet, publishes telemetry and Home Assistant\n"
        "discovery, shows its state on the LED and takes commands on node/<node>/cmd.\n"
        "Every key of FILE is explained in kvmesh.conf.example (/usr/share/doc/kvmesh/).\n"
        "\n"
        "  -c, --config FILE   the configuration (INI)\n"
        "      --check         check the configuration and exit (0: fine, 1: the error)\n"
        "  -h, --help          this text\n"
        "\n"
        "Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads the configuration.\n");
}

int fw_cmd_run(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0;
    static const struct option opts[] = { { "config", required_argument, 0, 'c' }, { "check", no_argument, 0, 'k' },
                                           { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (ch == 'c') config = optarg;
        else if (ch == 'k') check = 1;
        else if (ch == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (!config || optind != argc) {
        fprintf(stderr, "kvmesh run: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    fw_svc *s = &fw_service;
    char err[768];
    if (fw_config_load(&s->cfg, config, err, sizeof err)) {
        fprintf(stderr, "kvmesh run: %s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: configuration OK (node %s, fleet %s, mode %s)\n", config, s->cfg.node_id, s->cfg.fleet,
               fw_mode_name(s->cfg.mode));
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->start_ms = fw_now_ms();
    if (start(s)) {
        if (s->node_ok) mqtt_node_free(&s->node);
        s->node_ok = false;
        release(s);
        return 1;
    }
    while (!s->stop && !s->net_failure) {
        if (s->reload) {
            s->reload = 0;
            char msg[512];
            if (fw_svc_reload(s, msg, sizeof msg))
                fprintf(stderr, "kvmesh run: reload failed, keeping the running configuration: %s\n", msg);
            else
                fprintf(stderr, "kvmesh run: configuration reloaded%s%s\n", msg[0] ? "; restart needed for: " : "", msg);
        }
        housekeeping(s);
        bool paused = s->board.governed && hal_governor_paused(&s->board.gov);
        if (s->qlen && !paused) {
            fw_req_run_next(s);
            continue;
        }
        int wait = s->board.have_btn || s->board.have_led ? 10 : 50;
        int rc = mqtt_node_poll(&s->node, wait);
        if (rc) s->net_failure = rc;
    }
    int status = 0;
    if (s->net_failure) {
        fprintf(stderr, "kvmesh run: the broker connection failed for good: %s (check [broker] and the "
                "credentials)\n", mqtt_strerror(s->net_failure));
        status = 1;
    }
    stop_service(s);
    release(s);
    fprintf(stderr, "kvmesh run: stopped\n");
    return status;
}
