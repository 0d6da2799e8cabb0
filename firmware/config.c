/* The service configuration: defaults, a key table, libinih, checks. See config.h. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "cli.h"
#include "config.h"
#include "hal.h"
#include "mqtt_session.h"
#include "privacy.h"

static const char *const mode_names[FW_MODE_COUNT_] = { "standalone", "cache-share" };

const char *fw_mode_name(fw_mode m) { return (unsigned)m < FW_MODE_COUNT_ ? mode_names[m] : "?"; }

int fw_mode_parse(const char *name)
{
    for (int i = 0; i < FW_MODE_COUNT_; i++)
        if (strcmp(name, mode_names[i]) == 0) return i;
    return -1;
}

const char *fw_publish_name(fw_publish p) { return p == FW_PUBLISH_ALL ? "all" : "system"; }

/* ---- value parsers -------------------------------------------------------------------------- */

typedef int (*special_fn)(fw_config *c, const char *v, char *why, size_t whylen);

static int parse_u64_suffix(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*v || *v == '-') return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v) return -1;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024;
    else if (*end == 'M' || *end == 'm') mul = 1024 * 1024;
    else if (*end == 'G' || *end == 'g') mul = 1024ull * 1024 * 1024;
    if (mul != 1) end++;
    if (*end || n > UINT64_MAX / mul) return -1;
    *out = n * mul;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

static int sp_url(fw_config *c, const char *v, char *why, size_t whylen)
{
    const char *rest;
    if (strncmp(v, "mqtt://", 7) == 0) { c->tls = false; rest = v + 7; }
    else if (strncmp(v, "mqtts://", 8) == 0) { c->tls = true; rest = v + 8; }
    else { snprintf(why, whylen, "needs mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not '%s'", v); return -1; }
    const char *host = rest, *colon;
    size_t hlen;
    if (*rest == '[') {                     /* [IPv6]:port */
        const char *close = strchr(rest, ']');
        if (!close) { snprintf(why, whylen, "unclosed '[' in '%s'", v); return -1; }
        host = rest + 1;
        hlen = (size_t)(close - host);
        colon = close[1] == ':' ? close + 1 : close[1] ? close + 1 : NULL;
        if (close[1] && close[1] != ':') { snprintf(why, whylen, "junk after ']' in '%s'", v); return -1; }
    } else {
        colon = strchr(rest, ':');
        hlen = colon ? (size_t)(colon - rest) : strlen(rest);
    }
    if (hlen == 0 || hlen >= sizeof c->host || memchr(host, '/', hlen)) {
        snprintf(why, whylen, "needs a host name, as in mqtts://broker.lan:8883, not '%s'", v);
        return -1;
    }
    memcpy(c->host, host, hlen);
    c->host[hlen] = '\0';
    c->port = c->tls ? 8883 : 1883;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || p < 1 || p > 65535) {
            snprintf(why, whylen, "port must be 1..65535 in '%s'", v);
            return -1;
        }
        c->port = (int)p;
    }
    snprintf(c->url, sizeof c->url, "%s", v);
    return 0;
}

static int sp_node_id(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (!mqtt_node_id_valid(v)) {
        snprintf(why, whylen, "needs 1..31 characters of A-Z a-z 0-9 _ -, not '%s'", v);
        return -1;
    }
    snprintf(c->node_id, sizeof c->node_id, "%s", v);
    return 0;
}

static int sp_fleet(fw_config *c, const char *v, char *why, size_t whylen)
{
    char root[128];
    if (!mqtt_node_id_valid(v) || mqtt_topic_root(v, root, sizeof root) != MQTT_OK) {
        snprintf(why, whylen, "needs 1..31 characters of A-Z a-z 0-9 _ -, not '%s'", v);
        return -1;
    }
    snprintf(c->fleet, sizeof c->fleet, "%s", v);
    return 0;
}

static int sp_root(fw_config *c, const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n >= sizeof c->root || strpbrk(v, "+#") || (n && (v[0] == '/' || v[n - 1] == '/'))) {
        snprintf(why, whylen, "needs a topic prefix without wildcards or leading/trailing '/', not '%s'", v);
        return -1;
    }
    snprintf(c->root, sizeof c->root, "%s", v);
    return 0;
}

/* A node or group id, or empty for none, into dst (cap bytes). */
static int set_opt_id(char *dst, size_t cap, const char *v, char *why, size_t whylen)
{
    if (*v && !mqtt_node_id_valid(v)) {
        snprintf(why, whylen, "needs an id of 1..31 characters of A-Z a-z 0-9 _ - (or empty for none), not '%s'", v);
        return -1;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int sp_share_group(fw_config *c, const char *v, char *why, size_t whylen)
{
    return set_opt_id(c->share_group, sizeof c->share_group, v, why, whylen);
}

static int sp_mode(fw_config *c, const char *v, char *why, size_t whylen)
{
    int m = fw_mode_parse(v);
    if (m < 0) { snprintf(why, whylen, "needs standalone or cache-share, not '%s'", v); return -1; }
    c->mode = (fw_mode)m;
    return 0;
}

static int sp_protocol(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "auto") == 0) c->protocol = MQTT_PROTO_AUTO;
    else if (strcmp(v, "5") == 0) c->protocol = MQTT_PROTO_V5;
    else if (strcmp(v, "3.1.1") == 0) c->protocol = MQTT_PROTO_V311;
    else { snprintf(why, whylen, "needs auto, 5 or 3.1.1, not '%s'", v); return -1; }
    return 0;
}

static int sp_cipher(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "chacha20-poly1305") == 0 || strcmp(v, "chacha") == 0) c->cipher = MQTT_CIPHER_CHACHAPOLY;
    else if (strcmp(v, "aes-256-gcm") == 0 || strcmp(v, "aes") == 0) c->cipher = MQTT_CIPHER_AES256GCM;
    else { snprintf(why, whylen, "needs chacha20-poly1305 or aes-256-gcm, not '%s'", v); return -1; }
    return 0;
}

static int sp_codec(fw_config *c, const char *v, char *why, size_t whylen)
{
    const char *name = strcmp(v, "lossy") == 0 ? FW_DEFAULT_LOSSY : v;
    if (strlen(v) >= sizeof c->codec_name || nn_kv_parse_codec(name, &c->codec) != NN_OK) {
        snprintf(why, whylen, "needs raw, lossless, lossy or k<bits>v<bits>[g<n>][c<n>], not '%s'", v);
        return -1;
    }
    snprintf(c->codec_name, sizeof c->codec_name, "%s", v);
    return 0;
}

static int sp_publish(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "system") == 0) c->publish = FW_PUBLISH_SYSTEM;
    else if (strcmp(v, "all") == 0) c->publish = FW_PUBLISH_ALL;
    else { snprintf(why, whylen, "needs system or all, not '%s'", v); return -1; }
    return 0;
}

static int sp_backend(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "linux") == 0) c->backend = FW_BACKEND_LINUX;
    else if (strcmp(v, "sim") == 0) c->backend = FW_BACKEND_SIM;
    else { snprintf(why, whylen, "needs linux or sim, not '%s'", v); return -1; }
    return 0;
}

static int sp_button(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "board") == 0) c->button = FW_BUTTON_BOARD;
    else if (strcmp(v, "run-prompt") == 0) c->button = FW_BUTTON_RUN_PROMPT;
    else if (strcmp(v, "toggle-mode") == 0) c->button = FW_BUTTON_TOGGLE_MODE;
    else if (strcmp(v, "none") == 0) c->button = FW_BUTTON_NONE;
    else { snprintf(why, whylen, "needs board, run-prompt, toggle-mode or none, not '%s'", v); return -1; }
    return 0;
}

static int sp_led(fw_config *c, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "status") == 0) c->led = true;
    else if (strcmp(v, "off") == 0) c->led = false;
    else { snprintf(why, whylen, "needs status or off, not '%s'", v); return -1; }
    return 0;
}

static const char *const offload_names[] = { "never", "always", "when-model-differs" };

const char *fw_text_offload_name(fw_text_offload o) { return (unsigned)o < 3 ? offload_names[o] : "?"; }

static int sp_text_offload(fw_config *c, const char *v, char *why, size_t whylen)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(v, offload_names[i]) == 0) { c->text_offload = (fw_text_offload)i; return 0; }
    snprintf(why, whylen, "needs never, always or when-model-differs, not '%s'", v);
    return -1;
}

static int sp_text_peer(fw_config *c, const char *v, char *why, size_t whylen)
{
    return set_opt_id(c->text_peer, sizeof c->text_peer, v, why, whylen);
}

/* "none", "all", or a comma-separated list of email, phone, names. */
static int sp_redact(fw_config *c, const char *v, char *why, size_t whylen)
{
    unsigned bits = 0;
    if (strcmp(v, "all") == 0) bits = FW_PRIV_ALL;
    else if (strcmp(v, "none") != 0) {
        for (const char *p = v; *p;) {
            size_t n = strcspn(p, ",");
            while (n && p[n - 1] == ' ') n--;
            if (n == 5 && !strncmp(p, "email", 5)) bits |= FW_PRIV_EMAIL;
            else if (n == 5 && !strncmp(p, "phone", 5)) bits |= FW_PRIV_PHONE;
            else if (n == 5 && !strncmp(p, "names", 5)) bits |= FW_PRIV_NAME;
            else {
                snprintf(why, whylen, "needs none, all, or a list of email, phone, names, not '%s'", v);
                return -1;
            }
            p += strcspn(p, ",");
            while (*p == ',' || *p == ' ') p++;
        }
    }
    c->redact = bits;
    return 0;
}

static int q16(const char *v, int32_t *out, int32_t max, char *why, size_t whylen)
{
    if (nn_parse_q16(v, out) != NN_OK || *out > max) {
        snprintf(why, whylen, "needs a decimal number such as 0.9 (at most %d.%d), not '%s'", max >> 16,
                 (max & 0xFFFF) ? 5 : 0, v);
        return -1;
    }
    return 0;
}
static int sp_temp(fw_config *c, const char *v, char *why, size_t whylen) { return q16(v, &c->temp_q16, 2 << 16, why, whylen); }
static int sp_top_p(fw_config *c, const char *v, char *why, size_t whylen) { return q16(v, &c->top_p_q16, 1 << 16, why, whylen); }

/* ---- the key table ---------------------------------------------------------------------------- */

enum { K_STR, K_U32, K_BYTES, K_I32, K_BOOL, K_SPECIAL };

typedef struct {
    const char *section, *name;
    int kind;
    size_t off, size;           /* the field (K_SPECIAL: the field compared on reload) */
    uint64_t lo, hi;            /* numbers */
    special_fn fn;
    bool live;                  /* taken over by a reload; else a change needs a restart */
} fw_key;

#define F(f) offsetof(fw_config, f), sizeof(((fw_config *)0)->f)
static const fw_key keys[] = {
    { "node", "id", K_SPECIAL, F(node_id), 0, 0, sp_node_id, false },
    { "node", "fleet", K_SPECIAL, F(fleet), 0, 0, sp_fleet, false },
    { "node", "root", K_SPECIAL, F(root), 0, 0, sp_root, false },
    { "node", "mode", K_SPECIAL, F(mode), 0, 0, sp_mode, true },
    { "node", "state_dir", K_STR, F(state_dir), 0, 0, NULL, false },
    { "broker", "url", K_SPECIAL, F(url), 0, 0, sp_url, false },
    { "broker", "ca_file", K_STR, F(ca_file), 0, 0, NULL, false },
    { "broker", "cert_file", K_STR, F(cert_file), 0, 0, NULL, false },
    { "broker", "key_file", K_STR, F(key_file), 0, 0, NULL, false },
    { "broker", "username", K_STR, F(username), 0, 0, NULL, false },
    { "broker", "password_file", K_STR, F(password_file), 0, 0, NULL, false },
    { "broker", "protocol", K_SPECIAL, F(protocol), 0, 0, sp_protocol, false },
    { "broker", "keepalive_s", K_U32, F(keepalive_s), 5, 3600, NULL, false },
    { "broker", "share_group", K_SPECIAL, F(share_group), 0, 0, sp_share_group, false },
    { "security", "secret_file", K_STR, F(secret_file), 0, 0, NULL, false },
    { "security", "cipher", K_SPECIAL, F(cipher), 0, 0, sp_cipher, false },
    { "security", "command_max_age_s", K_U32, F(command_max_age_s), 0, 86400, NULL, true },
    { "model", "image", K_STR, F(image), 0, 0, NULL, false },
    { "model", "context", K_U32, F(context), 0, NN_MAX_SEQ, NULL, false },
    { "model", "threads", K_U32, F(threads), 0, 64, NULL, false },
    { "model", "batch", K_U32, F(batch), 1, 4096, NULL, false },
    { "board", "backend", K_SPECIAL, F(backend), 0, 0, sp_backend, false },
    { "board", "sysfs_root", K_STR, F(sysfs_root), 0, 0, NULL, false },
    { "board", "thermal_zone", K_U32, F(thermal_zone), 0, 255, NULL, false },
    { "board", "thermal_soft_mc", K_I32, F(thermal_soft_mc), 0, 200000, NULL, false },
    { "board", "thermal_hard_mc", K_I32, F(thermal_hard_mc), 0, 200000, NULL, false },
    { "board", "thermal_hyst_mc", K_I32, F(thermal_hyst_mc), 0, 100000, NULL, false },
    { "board", "thermal_step_ms", K_U32, F(thermal_step_ms), 100, 600000, NULL, false },
    { "board", "power_rail", K_STR, F(power_rail), 0, 0, NULL, false },
    { "gpio", "chip", K_STR, F(gpio_chip), 0, 0, NULL, false },
    { "gpio", "led_line", K_STR, F(led_line), 0, 0, NULL, false },
    { "gpio", "button_line", K_STR, F(button_line), 0, 0, NULL, false },
    { "gpio", "led", K_SPECIAL, F(led), 0, 0, sp_led, true },
    { "gpio", "button", K_SPECIAL, F(button), 0, 0, sp_button, true },
    { "gpio", "button_prompt", K_STR, F(button_prompt), 0, 0, NULL, true },
    { "gpio", "button_max_tokens", K_U32, F(button_max_tokens), 1, NN_MAX_SEQ, NULL, true },
    { "cache", "dir", K_STR, F(store_dir), 0, 0, NULL, false },
    { "cache", "max_bytes", K_BYTES, F(store_max_bytes), 0, 1ull << 40, NULL, true },
    { "cache", "max_entries", K_U32, F(store_max_entries), 1, 65536, NULL, false },
    { "cache", "codec", K_SPECIAL, F(codec_name), 0, 0, sp_codec, true },
    { "cache", "publish", K_SPECIAL, F(publish), 0, 0, sp_publish, true },
    { "cache", "fetch_timeout_ms", K_U32, F(fetch_timeout_ms), 10, 600000, NULL, true },
    { "cache", "announce_blocks", K_U32, F(announce_blocks), 1, 64, NULL, false },
    { "telemetry", "period_s", K_U32, F(period_s), 1, 86400, NULL, true },
    { "telemetry", "ha_discovery", K_BOOL, F(ha_discovery), 0, 0, NULL, false },
    { "telemetry", "ha_prefix", K_STR, F(ha_prefix), 0, 0, NULL, false },
    { "requests", "queue", K_U32, F(queue), 1, 1024, NULL, false },
    { "requests", "max_prompt_bytes", K_U32, F(max_prompt_bytes), 16, 1u << 20, NULL, false },
    { "requests", "max_request_bytes", K_U32, F(max_request_bytes), 1024, 16u << 20, NULL, false },
    { "requests", "max_tokens", K_U32, F(max_tokens), 1, NN_MAX_SEQ, NULL, true },
    { "requests", "temp", K_SPECIAL, F(temp_q16), 0, 0, sp_temp, true },
    { "requests", "top_p", K_SPECIAL, F(top_p_q16), 0, 0, sp_top_p, true },
    { "collab", "text_peer", K_SPECIAL, F(text_peer), 0, 0, sp_text_peer, true },
    { "collab", "text_offload", K_SPECIAL, F(text_offload), 0, 0, sp_text_offload, true },
    { "collab", "text_deadline_ms", K_U32, F(text_deadline_ms), 10, 600000, NULL, true },
    { "collab", "text_stall_ms", K_U32, F(text_stall_ms), 10, 600000, NULL, true },
    { "collab", "text_retry_ms", K_U32, F(text_retry_ms), 0, 3600000, NULL, true },
    { "collab", "peer_sessions", K_U32, F(peer_sessions), 0, 64, NULL, false },
    { "privacy", "redact", K_SPECIAL, F(redact), 0, 0, sp_redact, true },
    { "privacy", "names_file", K_STR, F(names_file), 0, 0, NULL, false },
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

/* ---- defaults ------------------------------------------------------------------------------- */

void fw_config_defaults(fw_config *c)
{
    const struct hal_board *b = hal_board();
    memset(c, 0, sizeof *c);
    /* The host name, cut to what a node id may hold. */
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    size_t n = 0;
    for (const char *p = host; *p && n < sizeof c->node_id - 1; p++)
        if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') c->node_id[n++] = *p;
        else if (*p == '.') break;   /* the short name */
    if (n == 0) snprintf(c->node_id, sizeof c->node_id, "kvmesh");
    snprintf(c->fleet, sizeof c->fleet, "lab");
    c->mode = FW_MODE_CACHE_SHARE;
    snprintf(c->state_dir, sizeof c->state_dir, "/var/lib/kvmesh");
    char why[8];
    sp_url(c, "mqtt://127.0.0.1:1883", why, sizeof why);
    c->protocol = MQTT_PROTO_AUTO;
    c->keepalive_s = 10;
    snprintf(c->secret_file, sizeof c->secret_file, "/etc/kvmesh/fleet.key");
    c->cipher = MQTT_CIPHER_CHACHAPOLY;
    c->command_max_age_s = 120;
    snprintf(c->image, sizeof c->image, "/var/lib/kvmesh/model.kvm");
    c->batch = 32;
    c->backend = FW_BACKEND_LINUX;
    c->thermal_zone = b->thermal_zone;
    c->thermal_soft_mc = b->thermal_soft_mc;
    c->thermal_hard_mc = b->thermal_hard_mc;
    c->thermal_hyst_mc = b->thermal_hyst_mc;
    c->thermal_step_ms = 5000;
    snprintf(c->gpio_chip, sizeof c->gpio_chip, "%s", b->gpio_chip);
    snprintf(c->led_line, sizeof c->led_line, "%s", b->led_line);
    snprintf(c->button_line, sizeof c->button_line, "%s", b->button_line);
    c->led = true;
    c->button = FW_BUTTON_BOARD;
    snprintf(c->button_prompt, sizeof c->button_prompt, "Once upon a time");
    c->button_max_tokens = 64;
    snprintf(c->store_dir, sizeof c->store_dir, "/var/lib/kvmesh/cache");
    c->store_max_bytes = 256ull << 20;
    c->store_max_entries = 256;
    sp_codec(c, "lossless", why, sizeof why);
    c->publish = FW_PUBLISH_SYSTEM;
    c->fetch_timeout_ms = 2000;
    c->announce_blocks = 8;
    c->period_s = 10;
    c->ha_discovery = true;
    snprintf(c->ha_prefix, sizeof c->ha_prefix, "homeassistant");
    c->queue = 8;
    c->max_prompt_bytes = 8192;
    c->max_request_bytes = 65536;
    c->max_tokens = 256;
    c->temp_q16 = 65536;
    c->top_p_q16 = 58982;   /* 0.9 */
    c->text_offload = FW_TEXT_NEVER;
    c->text_deadline_ms = 2000;
    c->text_stall_ms = 2000;
    c->text_retry_ms = 30000;
    c->redact = FW_PRIV_EMAIL | FW_PRIV_PHONE;
}

/* ---- loading -------------------------------------------------------------------------------- */

typedef struct {
    fw_config *c;
    char key[96];       /* "[section] name" of the first error */
    char why[320];
    int bad;
} load_ctx;

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    load_ctx *lc = user;
    fw_config *c = lc->c;
    char why[320] = "";
    const fw_key *k = NULL;
    for (size_t i = 0; i < NKEYS && !k; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) k = &keys[i];
    if (!k) {
        bool known = false;
        for (size_t i = 0; i < NKEYS; i++) known |= strcmp(keys[i].section, section) == 0;
        snprintf(why, sizeof why, known ? "unknown key (see kvmesh.conf.example)" : "unknown section (see kvmesh.conf.example)");
    } else {
        uint8_t *field = (uint8_t *)c + k->off;
        uint64_t v;
        switch (k->kind) {
        case K_STR:
            if (strlen(value) >= k->size) snprintf(why, sizeof why, "longer than %zu characters", k->size - 1);
            else snprintf((char *)field, k->size, "%s", value);
            break;
        case K_U32:
        case K_BYTES:
        case K_I32: {
            char *end;
            errno = 0;
            int rc = k->kind == K_BYTES ? parse_u64_suffix(value, &v)
                                        : (v = strtoull(value, &end, 10), (!*value || *value == '-' || errno || *end) ? -1 : 0);
            if (rc || v < k->lo || v > k->hi) {
                snprintf(why, sizeof why, "needs %s in %llu..%llu, not '%s'",
                         k->kind == K_BYTES ? "a byte count (suffix K, M or G allowed)" : "an integer",
                         (unsigned long long)k->lo, (unsigned long long)k->hi, value);
            } else if (k->kind == K_BYTES) {
                *(uint64_t *)field = v;
            } else if (k->kind == K_I32) {
                *(int32_t *)field = (int32_t)v;
            } else {
                *(uint32_t *)field = (uint32_t)v;
            }
            break;
        }
        case K_BOOL:
            if (parse_bool(value, (bool *)field)) snprintf(why, sizeof why, "needs true or false, not '%s'", value);
            break;
        default:
            k->fn(c, value, why, sizeof why);
            break;
        }
    }
    if (!why[0]) return 1;
    if (!lc->bad) {
        snprintf(lc->key, sizeof lc->key, "[%s] %s", section, name);
        snprintf(lc->why, sizeof lc->why, "%s", why);
        lc->bad = 1;
    }
    return 0;
}

int fw_config_load(fw_config *c, const char *path, char *err, size_t errlen)
{
    fw_config_defaults(c);
    snprintf(c->path, sizeof c->path, "%s", path);
    load_ctx lc = { .c = c };
    /* Stop at the first problem, so the line inih reports is the one the message is
     * about (Debian's libinih makes this a run-time switch). */
    ini_stop_on_first_error = true;
    int line = ini_parse(path, on_key, &lc);
    if (line == -1) {
        snprintf(err, errlen, "%s: cannot read the configuration: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    if (line != 0) {
        if (lc.bad)
            snprintf(err, errlen, "%s:%d: %s: %s", path, line, lc.key, lc.why);
        else   /* inih's own complaint: no '=', an unclosed '[', a line over its limit */
            snprintf(err, errlen, "%s:%d: not a 'key = value' line or [section] header (lines are at most %d "
                     "characters)", path, line, INI_MAX_LINE - 3);
        return -1;
    }
    /* Checks across keys. */
    const char *bad = NULL;
    char why[320] = "";
    if (c->tls && !c->ca_file[0]) { bad = "[broker] ca_file"; snprintf(why, sizeof why, "is required with an mqtts:// url"); }
    else if (!c->tls && (c->ca_file[0] || c->cert_file[0])) { bad = "[broker] url"; snprintf(why, sizeof why, "is mqtt:// but TLS files are set: use mqtts://"); }
    else if (!c->cert_file[0] != !c->key_file[0]) { bad = "[broker] cert_file"; snprintf(why, sizeof why, "and key_file go together (mTLS)"); }
    else if (c->thermal_soft_mc >= c->thermal_hard_mc) { bad = "[board] thermal_soft_mc"; snprintf(why, sizeof why, "must be below thermal_hard_mc (%d)", c->thermal_hard_mc); }
    else if (c->thermal_hyst_mc > c->thermal_hard_mc - c->thermal_soft_mc) { bad = "[board] thermal_hyst_mc"; snprintf(why, sizeof why, "must be at most thermal_hard_mc - thermal_soft_mc"); }
    else if (c->backend == FW_BACKEND_SIM && !c->sysfs_root[0]) { bad = "[board] sysfs_root"; snprintf(why, sizeof why, "is required with backend = sim"); }
    else if (c->button == FW_BUTTON_RUN_PROMPT && !c->button_prompt[0]) { bad = "[gpio] button_prompt"; snprintf(why, sizeof why, "is required with button = run-prompt"); }
    else if (c->max_prompt_bytes > c->max_request_bytes) { bad = "[requests] max_prompt_bytes"; snprintf(why, sizeof why, "must be at most max_request_bytes (%u)", c->max_request_bytes); }
    else if (!c->image[0]) { bad = "[model] image"; snprintf(why, sizeof why, "is required"); }
    else if (!c->secret_file[0]) { bad = "[security] secret_file"; snprintf(why, sizeof why, "is required (the fleet secret)"); }
    else if (!c->store_dir[0] || !c->state_dir[0]) { bad = c->state_dir[0] ? "[cache] dir" : "[node] state_dir"; snprintf(why, sizeof why, "is required"); }
    else if (c->text_offload != FW_TEXT_NEVER && (!c->text_peer[0] || !strcmp(c->text_peer, c->node_id))) { bad = "[collab] text_peer"; snprintf(why, sizeof why, "must name another node when text_offload is %s", fw_text_offload_name(c->text_offload)); }
    else if ((c->redact & FW_PRIV_NAME) && !c->names_file[0]) { bad = "[privacy] names_file"; snprintf(why, sizeof why, "is required when redact includes names"); }
    if (bad) {
        snprintf(err, errlen, "%s: %s %s", path, bad, why);
        return -1;
    }
    if (c->password_file[0]) {
        FILE *f = fopen(c->password_file, "r");
        if (!f || !fgets(c->password, sizeof c->password, f)) {
            snprintf(err, errlen, "%s: [broker] password_file: cannot read %s: %s", path, c->password_file,
                     f ? "empty" : strerror(errno));
            if (f) fclose(f);
            return -1;
        }
        fclose(f);
        c->password[strcspn(c->password, "\r\n")] = '\0';
    }
    return 0;
}

void fw_config_apply_reload(fw_config *cur, const fw_config *next, char *why, size_t whylen)
{
    size_t n = 0;
    why[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const fw_key *k = &keys[i];
        const uint8_t *a = (const uint8_t *)cur + k->off, *b = (const uint8_t *)next + k->off;
        bool same = k->kind == K_STR || k->fn == sp_node_id || k->fn == sp_fleet || k->fn == sp_root ||
                            k->fn == sp_url || k->fn == sp_share_group || k->fn == sp_codec || k->fn == sp_text_peer
                        ? strcmp((const char *)a, (const char *)b) == 0
                        : memcmp(a, b, k->size) == 0;
        if (same) continue;
        if (k->live) {
            memcpy((uint8_t *)cur + k->off, b, k->size);
        } else if (n < whylen) {
            n += (size_t)snprintf(why + n, whylen - n, "%s[%s] %s", n ? ", " : "", k->section, k->name);
        }
    }
    cur->codec = next->codec;   /* follows codec_name */
}

void fw_config_session(const fw_config *c, const char *root, mqtt_session_cfg *sc)
{
    sc->host = c->host;
    sc->port = c->port;
    sc->tls = c->tls;
    sc->ca_file = c->ca_file[0] ? c->ca_file : NULL;
    sc->cert_file = c->cert_file[0] ? c->cert_file : NULL;
    sc->key_file = c->key_file[0] ? c->key_file : NULL;
    sc->username = c->username[0] ? c->username : NULL;
    sc->password = c->password[0] ? c->password : NULL;
    sc->node_id = c->node_id;
    sc->root = root;
    sc->protocol = c->protocol;
    sc->keepalive_s = (int)c->keepalive_s;
    sc->max_attempts = 0;
}
