/*
 * kvmesh run: the device service. Private to firmware/: the state the service's parts
 * share.
 *
 *   run.c        start-up, the loop, signals, shutdown
 *   request.c    requests: JSON, the bounded queue, generation, the token stream
 *   share.c      cache sharing: prefix lookup (store, then fleet), fetch, import,
 *                publishing new caches, serving peers (the provider callback)
 *   command.c    sealed commands on node/<node>/cmd
 *   telemetry.c  metrics, Home Assistant discovery, governor events
 *   board.c      LED, button, thermal, throttle, power and the governor, through hal
 *
 * One thread runs all of it (the engine's workers aside). The mqtt layer is poll-driven:
 * everything that arrives is dispatched from mqtt_node_poll, which the loop calls when
 * idle and the generation calls between tokens. Memory is allocated at start-up only.
 */
#ifndef FW_SERVICE_H
#define FW_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "hal.h"
#include "mqtt_session.h"
#include "store.h"

#define FW_ID_MAX 64            /* request and command ids */
#define FW_CORR_MAX 64          /* MQTT 5 correlation data kept per request */
#define FW_FLEET_MAX 1024       /* fleet announcements remembered */
#define FW_SERVE_MAX 4          /* caches served to peers at once */

/* A queued request. Text is the slot's buffer: system prompt, NUL, prompt, NUL. */
typedef struct {
    bool button;                /* from the board's button: output goes to the log */
    char id[FW_ID_MAX + 1];
    char sender[MQTT_NODE_ID_MAX + 1];
    uint8_t corr[FW_CORR_MAX];
    uint16_t corr_len;
    char *text;
    uint32_t system_len, prompt_len;
    bool has_system;
    uint32_t max_tokens;
    int32_t temp_q16, top_p_q16;
    uint64_t seed;
    bool has_seed;
    uint64_t arrived_ms;
    uint32_t i_base;            /* token records already sent for it (by a text peer) */
} fw_req;

/* A cache another node announced. */
typedef struct {
    bool used;
    uint8_t prefix[32];
    char holder[MQTT_NODE_ID_MAX + 1];
    uint64_t size;
    uint32_t positions;
    uint64_t stamp;
} fw_fleet_ent;

typedef struct {
    bool used;
    void *map;
    size_t len;
} fw_serve;

typedef struct {
    uint64_t requests, done, rejected, failed, cancelled;
    uint64_t tokens_out, prefill_tokens, prefill_saved;
    uint64_t hits_local, hits_fleet, misses, fetch_failures, import_failures;
    uint64_t cache_in_bytes, cache_out_bytes, served, published;
    uint64_t commands, commands_refused, button_presses;
    double last_tps, last_ttft_ms;
} fw_stats;

/* Board I/O. */
typedef struct {
    bool sim;
    struct hal_gpio_line led_line, btn_line;
    bool have_led, have_btn;
    struct hal_led led;
    struct hal_button btn;
    enum hal_button_role role;
    struct hal_thermal th;
    struct hal_throttle thr;
    struct hal_power pw;
    unsigned rail;
    bool have_rail;
    struct hal_governor gov;
    bool governed;              /* a thermal sensor answered at start-up */
    int32_t temp_mc;
    bool temp_ok;
    struct hal_throttle_state throttle;
    bool throttle_ok;
    struct hal_power_reading power;
    bool power_ok;
    uint64_t last_sense_ms, last_sim_ms;
    enum hal_led_pattern shown;
    char sim_led[FW_PATH_MAX + 32], sim_button[FW_PATH_MAX + 32];
    unsigned btn_chip, btn_offset;
} fw_board;

typedef struct fw_svc {
    fw_config cfg;
    fw_engine eng;
    mqtt_model_id mid;
    fw_store store;
    mqtt_node node;
    mqtt_keys keys;
    mqtt_seq seq;
    mqtt_seqfile seqfile;
    char root[MQTT_TOPIC_MAX / 2];
    uint8_t *inbox;
    bool node_ok;               /* the node was started (a broker is configured) */
    /* requests */
    fw_req *q;                  /* [cfg.queue] ring */
    char *qtext;                /* [cfg.queue][max_prompt_bytes + 2] */
    uint32_t qhead, qlen;
    bool busy;                  /* a request is being generated */
    /* sharing */
    fw_fleet_ent *fleet;        /* [FW_FLEET_MAX] */
    uint64_t fleet_clock;
    fw_serve serve[FW_SERVE_MAX];
    bool sharing;               /* fetching right now */
    uint8_t (*ids)[32];         /* [FW_STORE_MAX_BLOCKS] prefix ids scratch */
    /* board, telemetry */
    fw_board board;
    uint64_t start_ms, last_metrics_ms;
    uint64_t connects_seen;
    fw_stats st;
    uint32_t threads;           /* what new requests use (the governor's count) */
    /* commands: recently accepted (sender, seq) pairs, persisted against replays */
    struct { char sender[MQTT_NODE_ID_MAX + 1]; uint64_t seq; int64_t ts; } cmd_seen[64];
    uint32_t cmd_next;
    int net_failure;            /* the broker session failed for good (credentials, TLS) */
    fw_req cur;                 /* the request being generated (text: its own buffer) */
    volatile sig_atomic_t stop, reload;
} fw_svc;

uint64_t fw_now_ms(void);

/* request.c */
int fw_req_init(fw_svc *s, char *err, size_t errlen);
void fw_req_free(fw_svc *s);
/* A sealed prompt payload (JSON) from `sender`: queued, or answered with an error. */
void fw_req_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len);
/* Queues the configured button prompt. */
void fw_req_button(fw_svc *s);
/* Runs the oldest queued request to its end (streaming tokens). */
void fw_req_run_next(fw_svc *s);
/* Answers every queued request with an error (shutting down). */
void fw_req_reject_all(fw_svc *s, const char *code, const char *msg);
/* Sends one sealed record to the requester (the button's go nowhere). */
void fw_req_reply(fw_svc *s, const fw_req *r, const char *json, size_t len);
/* Keeps the service responsive during long work: network, board, telemetry. */
void fw_svc_pump(fw_svc *s);

/* share.c */
int fw_share_init(fw_svc *s, char *err, size_t errlen);
void fw_share_free(fw_svc *s);
/* Fills the session with the longest cached prefix of tokens[0, n) it can find (local
 * store, then the fleet); returns the positions reused and says where from. */
typedef struct {
    int source;                 /* 0 none, 1 local store, 2 fleet */
    char from[MQTT_NODE_ID_MAX + 1];
    uint64_t bytes;
} fw_reuse;
uint32_t fw_share_prefill(fw_svc *s, const uint32_t *tokens, uint32_t n, fw_reuse *how);
/* Stores (and in cache-share mode announces) the session's context [0, n_ctx) under
 * the publish policy; n_system is the system prompt's token count (0: none). */
void fw_share_publish(fw_svc *s, const uint32_t *tokens, uint32_t n_ctx, uint32_t n_system);
void fw_share_on_announce(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len);
void fw_share_on_withdrawn(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES]);
/* Announces every stored entry (start-up, and when cache-share mode begins). */
void fw_share_announce_all(fw_svc *s);
/* Withdraws every announcement (standalone mode, shutdown). */
void fw_share_withdraw_all(fw_svc *s);
uint32_t fw_share_drop_caches(fw_svc *s);
void fw_share_set_mode(fw_svc *s, fw_mode m);
int fw_share_provider_get(void *user, const mqtt_model_id *model, const uint8_t prefix[MQTT_ID_BYTES],
                          mqtt_cache_info *info, const uint8_t **data, void **handle);
void fw_share_provider_put(void *user, void *handle);
uint32_t fw_share_serving(const fw_svc *s);

/* command.c */
void fw_cmd_init(fw_svc *s);
void fw_cmd_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len);
/* Re-reads the configuration file; err gets what failed or what needs a restart. */
int fw_svc_reload(fw_svc *s, char *msg, size_t msglen);

/* telemetry.c */
/* The metrics document (also the status command's answer). Returns its length or -1. */
int fw_metrics_json(fw_svc *s, char *out, size_t cap);
/* Room for the metrics document (about 4 KiB with the text-level counters). */
#define FW_METRICS_MAX 8192
void fw_telemetry_tick(fw_svc *s, uint64_t now_ms, bool force);
void fw_telemetry_on_connect(fw_svc *s);
void fw_telemetry_event(fw_svc *s, const char *json);
void fw_governor_event(void *arg, const struct hal_governor_event *ev);

/* board.c */
int fw_board_open(fw_svc *s, char *err, size_t errlen);
void fw_board_close(fw_svc *s);
/* Senses (once a second), feeds the governor, shows the state on the LED, and returns
 * true when the button was pressed (its role in *role). */
bool fw_board_tick(fw_svc *s, uint64_t now_ms, enum hal_button_role *role);
const char *fw_board_state(const fw_svc *s);

#endif
