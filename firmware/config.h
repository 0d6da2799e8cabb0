/*
 * The device service's configuration: an INI file (parsed with libinih), every key
 * documented in firmware/kvmesh.conf.example, whose values are the defaults here.
 *
 *     fw_config c;
 *     char err[512];
 *     if (fw_config_load(&c, "/etc/kvmesh/kvmesh.conf", err, sizeof err)) {
 *         fprintf(stderr, "kvmesh run: %s\n", err);     // "FILE:12: [cache] max_bytes: ..."
 *         return 1;
 *     }
 *
 * Board-dependent keys default to the build's board description (hal_board()); the
 * firmware never names a board.
 */
#ifndef FW_CONFIG_H
#define FW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_session.h"
#include "nn.h"

#define FW_PATH_MAX 256

/* Collaboration modes. Issue 9 adds split, early-exit and speculative: new values go
 * before FW_MODE_COUNT_ and into fw_mode_names. */
typedef enum {
    FW_MODE_STANDALONE = 0,   /* everything on this board; nothing travels */
    FW_MODE_CACHE_SHARE,      /* look caches up in the fleet, publish our own */
    FW_MODE_COUNT_
} fw_mode;

/* Which contexts become cache entries (stored, announced, served): caches reveal the
 * text they were computed from. */
typedef enum {
    FW_PUBLISH_SYSTEM = 0,    /* only the system prompt's part of a context */
    FW_PUBLISH_ALL,           /* the whole context: system prompt, prompt and output */
} fw_publish;

typedef enum { FW_BACKEND_LINUX = 0, FW_BACKEND_SIM } fw_backend;

/* When a request goes to the text peer ([collab] text_offload; textpeer.c). */
typedef enum {
    FW_TEXT_NEVER = 0,              /* always generate here */
    FW_TEXT_ALWAYS,                 /* send every request to text_peer, local on failure */
    FW_TEXT_WHEN_MODEL_DIFFERS,     /* only when text_peer runs another model (no KV reuse) */
} fw_text_offload;

/* Button actions; FW_BUTTON_BOARD takes the board description's role. */
typedef enum { FW_BUTTON_BOARD = 0, FW_BUTTON_RUN_PROMPT, FW_BUTTON_TOGGLE_MODE, FW_BUTTON_NONE } fw_button;

typedef struct fw_config {
    char path[FW_PATH_MAX];
    /* [node] */
    char node_id[32];
    char fleet[64];
    char root[128];               /* topic root; "" = kvmesh/v1/<fleet> */
    fw_mode mode;
    char state_dir[FW_PATH_MAX];
    /* [broker] */
    char url[FW_PATH_MAX];
    char host[FW_PATH_MAX];       /* from url */
    int port;                     /* from url */
    bool tls;                     /* from url: mqtts:// */
    char ca_file[FW_PATH_MAX], cert_file[FW_PATH_MAX], key_file[FW_PATH_MAX];
    char username[128];
    char password_file[FW_PATH_MAX];
    char password[128];           /* read from password_file */
    int protocol;                 /* mqtt_proto */
    uint32_t keepalive_s;
    char share_group[32];         /* "" = none */
    /* [security] */
    char secret_file[FW_PATH_MAX];
    int cipher;                   /* mqtt_cipher */
    uint32_t command_max_age_s;
    /* [model] */
    char image[FW_PATH_MAX];
    uint32_t context;             /* 0 = the model's, capped by the board */
    uint32_t threads;             /* 0 = the board's */
    uint32_t batch;
    /* [board] */
    fw_backend backend;
    char sysfs_root[FW_PATH_MAX]; /* sim: a directory holding sys/... */
    uint32_t thermal_zone;
    int32_t thermal_soft_mc, thermal_hard_mc, thermal_hyst_mc;
    uint32_t thermal_step_ms;
    char power_rail[32];          /* "" = the board's first rail */
    /* [gpio] */
    char gpio_chip[64], led_line[32], button_line[32];
    bool led;
    fw_button button;
    char button_prompt[192];
    uint32_t button_max_tokens;
    /* [cache] */
    char store_dir[FW_PATH_MAX];
    uint64_t store_max_bytes;
    uint32_t store_max_entries;
    char codec_name[32];
    nn_kv_opts codec;
    fw_publish publish;
    uint32_t fetch_timeout_ms;
    uint32_t announce_blocks;     /* block ids announced per cache, at most */
    /* [telemetry] */
    uint32_t period_s;
    bool ha_discovery;
    char ha_prefix[64];
    /* [requests] */
    uint32_t queue;
    uint32_t max_prompt_bytes;    /* system + prompt text */
    uint32_t max_request_bytes;   /* a whole request payload */
    uint32_t max_tokens;          /* cap, and the default when a request names none */
    int32_t temp_q16, top_p_q16;  /* defaults when a request names none */
    /* [collab], the text level (textpeer.c) */
    char text_peer[32];           /* node id; "" = none */
    fw_text_offload text_offload;
    uint32_t text_deadline_ms;    /* the peer's first record must arrive within this */
    uint32_t text_stall_ms;       /* ... and each later one within this of the last */
    uint32_t text_retry_ms;       /* after a failure, generate here this long before trying again */
    /* [collab], kvmesh peer */
    uint32_t peer_sessions;       /* device sessions a peer holds at once (one KV cache each); 0: auto */
    /* [privacy] (privacy.h) */
    unsigned redact;              /* FW_PRIV_* classes redacted before text leaves the board */
    char names_file[FW_PATH_MAX]; /* names to redact, one per line; "" = none */
} fw_config;

/* Fills the defaults (what kvmesh.conf.example documents). */
void fw_config_defaults(fw_config *c);

/*
 * The [broker] and [node] keys as an MQTT session configuration, for a node whose topic
 * root is `root` (kept by the caller). The strings point into c; empty optional files
 * and credentials become NULL. The session keeps reconnecting (max_attempts 0): a board
 * works standalone meanwhile.
 */
void fw_config_session(const fw_config *c, const char *root, mqtt_session_cfg *sc);

/* Defaults, then the file. Returns 0, or -1 with err naming the file, line, section and
 * key (or the missing key) and the problem. */
int fw_config_load(fw_config *c, const char *path, char *err, size_t errlen);

const char *fw_mode_name(fw_mode m);
/* FW_MODE_* for a name, or -1. */
int fw_mode_parse(const char *name);
const char *fw_publish_name(fw_publish p);
const char *fw_text_offload_name(fw_text_offload o);

/* The keys a running service can take over from a reloaded file; anything else needs a
 * restart. Fills why (comma-separated key names that differ and need a restart, "" if
 * none) and copies the live keys into cur. */
void fw_config_apply_reload(fw_config *cur, const fw_config *next, char *why, size_t whylen);

#endif
