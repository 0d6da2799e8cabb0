/*
 * Commands on node/<node>/cmd, sealed with the fleet's cmd key like all data:
 *
 *   {"cmd":"status","id":"c1","ts":1700000000}
 *   {"cmd":"reload"}  {"cmd":"drop-caches"}  {"cmd":"set-mode","mode":"standalone"}
 *   {"cmd":"shutdown"}
 *
 * Frames that are not sealed with the fleet key never get here (the mqtt layer drops
 * and counts them, as it does replays within a run). On top of that a command must be
 * fresh (|now - ts| <= [security] command_max_age_s, by the wall clock), and a
 * (sender, frame counter) pair accepted once is refused again even after a restart:
 * the recent ones are kept in <state_dir>/commands. The answer goes, sealed, to
 * resp/<sender>: {"id":"c1","cmd":"status","ok":true,...} or "ok":false with "error".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fw_json.h"
#include "service.h"

#define SEEN_MAX (sizeof ((fw_svc *)0)->cmd_seen / sizeof ((fw_svc *)0)->cmd_seen[0])

static void seen_path(const fw_svc *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s/commands", s->cfg.state_dir);
}

void fw_cmd_init(fw_svc *s)
{
    char path[FW_PATH_MAX + 16];
    seen_path(s, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char sender[MQTT_NODE_ID_MAX + 1];
    uint64_t seq;
    int64_t ts;
    while (s->cmd_next < SEEN_MAX && fscanf(f, "%31s %" SCNu64 " %" SCNd64, sender, &seq, &ts) == 3) {
        if (!mqtt_node_id_valid(sender)) continue;
        snprintf(s->cmd_seen[s->cmd_next].sender, sizeof s->cmd_seen[0].sender, "%s", sender);
        s->cmd_seen[s->cmd_next].seq = seq;
        s->cmd_seen[s->cmd_next].ts = ts;
        s->cmd_next++;
    }
    fclose(f);
    s->cmd_next %= SEEN_MAX;
}

static bool seen(const fw_svc *s, const char *sender, uint64_t seq)
{
    for (size_t i = 0; i < SEEN_MAX; i++)
        if (s->cmd_seen[i].sender[0] && s->cmd_seen[i].seq == seq && !strcmp(s->cmd_seen[i].sender, sender)) return true;
    return false;
}

/* Remembers an accepted command and writes the list (atomically) before acting on it. */
static void remember(fw_svc *s, const char *sender, uint64_t seq, int64_t ts)
{
    snprintf(s->cmd_seen[s->cmd_next].sender, sizeof s->cmd_seen[0].sender, "%s", sender);
    s->cmd_seen[s->cmd_next].seq = seq;
    s->cmd_seen[s->cmd_next].ts = ts;
    s->cmd_next = (s->cmd_next + 1) % SEEN_MAX;
    char text[SEEN_MAX * 80], path[FW_PATH_MAX + 16], err[256];
    size_t n = 0;
    for (size_t i = 0; i < SEEN_MAX; i++) {
        size_t k = (s->cmd_next + i) % SEEN_MAX;   /* oldest first */
        if (s->cmd_seen[k].sender[0])
            n += (size_t)snprintf(text + n, sizeof text - n, "%s %" PRIu64 " %" PRId64 "\n", s->cmd_seen[k].sender,
                                  s->cmd_seen[k].seq, s->cmd_seen[k].ts);
    }
    seen_path(s, path, sizeof path);
    if (fw_write_file_atomic(path, (const uint8_t *)text, n, err, sizeof err))
        fprintf(stderr, "kvmesh run: cannot record a command: %s\n", err);
}

int fw_svc_reload(fw_svc *s, char *msg, size_t msglen)
{
    fw_config next;
    char err[512];
    if (fw_config_load(&next, s->cfg.path, err, sizeof err)) {
        snprintf(msg, msglen, "%s", err);
        return -1;
    }
    fw_mode mode = next.mode;
    next.mode = s->cfg.mode;   /* applied below, with its announcements */
    uint64_t max_bytes = s->cfg.store_max_bytes;
    fw_config_apply_reload(&s->cfg, &next, msg, msglen);
    fw_share_set_mode(s, mode);
    if (s->cfg.store_max_bytes != max_bytes) fw_store_set_max_bytes(&s->store, s->cfg.store_max_bytes, NULL, NULL);
    if (s->board.have_btn && s->cfg.button != FW_BUTTON_NONE && s->cfg.button != FW_BUTTON_BOARD)
        s->board.btn.role = s->board.role = s->cfg.button == FW_BUTTON_TOGGLE_MODE ? HAL_BUTTON_ROLE_TOGGLE_MODE
                                                                                   : HAL_BUTTON_ROLE_RUN_PROMPT;
    fw_telemetry_tick(s, fw_now_ms(), true);
    return 0;
}

static void answer(fw_svc *s, const mqtt_frame_hdr *h, const char *json, size_t len)
{
    char t[MQTT_TOPIC_MAX];
    snprintf(t, sizeof t, "%s/resp/%s", s->root, h->sender);
    const mqtt_msg_props *props = mqtt_node_delivery_props(&s->node);
    mqtt_frame_hdr th = { .type = MQTT_FT_COMMAND, .model = s->mid };
    mqtt_pub_opts o = { .qos = 1, .kind = "command" };
    if (props && props->correlation) {
        o.correlation = props->correlation;
        o.correlation_len = props->correlation_len;
    }
    mqtt_node_publish_sealed(&s->node, t, &th, (const uint8_t *)json, len, &o);
}

static void refuse(fw_svc *s, const mqtt_frame_hdr *h, const char *id, const char *cmd, const char *why)
{
    s->st.commands_refused++;
    fprintf(stderr, "kvmesh run: command from %s refused: %s\n", h->sender, why);
    char json[512];
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "id");
    if (id[0]) fw_jw_str(&w, id, strlen(id)); else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cmd"); fw_jw_str(&w, cmd, strlen(cmd));
    fw_jw_raw(&w, ",\"ok\":false,"); fw_jw_key(&w, "error"); fw_jw_str(&w, why, strlen(why));
    fw_jw_raw(&w, "}");
    int n = fw_jw_done(&w);
    if (n > 0) answer(s, h, json, (size_t)n);
}

void fw_cmd_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    const char *js = (const char *)p;
    fw_json_tok t[32];
    char id[FW_ID_MAX + 1] = "", cmd[32] = "", mode[32] = "", why[600];
    if (fw_json_parse(js, len, t, 32, why, sizeof why) < 0 || t[0].type != FW_JSON_OBJECT) {
        refuse(s, h, id, "", "not a JSON object");
        return;
    }
    int v;
    if ((v = fw_json_get(js, t, 0, "id")) >= 0 && fw_json_string(js, &t[v], id, sizeof id) < 0) id[0] = '\0';
    if ((v = fw_json_get(js, t, 0, "cmd")) < 0 || fw_json_string(js, &t[v], cmd, sizeof cmd) < 0) {
        refuse(s, h, id, "", "no cmd");
        return;
    }
    for (int k = fw_json_first(t, 0); k >= 0; k = fw_json_next(t, 0, k))
        if (!fw_json_eq(js, &t[k], "id") && !fw_json_eq(js, &t[k], "cmd") && !fw_json_eq(js, &t[k], "ts") &&
            !fw_json_eq(js, &t[k], "mode")) {
            refuse(s, h, id, cmd, "unknown field (known: cmd, id, ts, mode)");
            return;
        }
    uint64_t ts = 0;
    if ((v = fw_json_get(js, t, 0, "ts")) < 0 || fw_json_u64(js, &t[v], &ts)) {
        refuse(s, h, id, cmd, "ts (the sender's unix time, seconds) is required");
        return;
    }
    int64_t now = (int64_t)time(NULL), age = now - (int64_t)ts;
    if (s->cfg.command_max_age_s && (age > (int64_t)s->cfg.command_max_age_s || -age > (int64_t)s->cfg.command_max_age_s)) {
        snprintf(why, sizeof why, "stale: ts is %lld s from this node's clock (limit %u s)", (long long)age,
                 s->cfg.command_max_age_s);
        refuse(s, h, id, cmd, why);
        return;
    }
    if (seen(s, h->sender, h->seq)) {
        refuse(s, h, id, cmd, "replayed: this command was already carried out");
        return;
    }
    static const char *const known[] = { "status", "reload", "drop-caches", "set-mode", "shutdown" };
    int which = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(cmd, known[i])) which = i;
    if (which < 0) {
        refuse(s, h, id, cmd, "unknown command (status, reload, drop-caches, set-mode, shutdown)");
        return;
    }
    int m = -1;
    if (which == 3 && ((v = fw_json_get(js, t, 0, "mode")) < 0 || fw_json_string(js, &t[v], mode, sizeof mode) < 0 ||
                       (m = fw_mode_parse(mode)) < 0)) {
        refuse(s, h, id, cmd, "set-mode needs \"mode\": standalone or cache-share");
        return;
    }
    remember(s, h->sender, h->seq, (int64_t)ts);
    s->st.commands++;
    fprintf(stderr, "kvmesh run: command %s from %s\n", cmd, h->sender);

    static char json[FW_METRICS_MAX + 2048];   /* the status answer embeds the metrics document */
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "id");
    if (id[0]) fw_jw_str(&w, id, strlen(id)); else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cmd"); fw_jw_str(&w, cmd, strlen(cmd));
    bool ok = true;
    why[0] = '\0';
    switch (which) {
    case 0: {
        static char metrics[FW_METRICS_MAX];
        if (fw_metrics_json(s, metrics, sizeof metrics) > 0) {
            fw_jw_raw(&w, ",\"status\":");
            fw_jw_raw(&w, metrics);
        }
        break;
    }
    case 1:
        if (fw_svc_reload(s, why, sizeof why)) {
            ok = false;
        } else if (why[0]) {
            fw_jw_raw(&w, ","); fw_jw_key(&w, "restart_needed"); fw_jw_str(&w, why, strlen(why));
            why[0] = '\0';
        }
        break;
    case 2:
        fw_jw_raw(&w, ",\"dropped\":");
        fw_jw_u64(&w, fw_share_drop_caches(s));
        break;
    case 3:
        fw_share_set_mode(s, (fw_mode)m);
        fw_jw_raw(&w, ","); fw_jw_key(&w, "mode"); fw_jw_raw(&w, "\""); fw_jw_raw(&w, fw_mode_name(s->cfg.mode));
        fw_jw_raw(&w, "\"");
        break;
    default:
        s->stop = 1;
        break;
    }
    fw_jw_raw(&w, ok ? ",\"ok\":true" : ",\"ok\":false");
    if (why[0]) { fw_jw_raw(&w, ","); fw_jw_key(&w, "error"); fw_jw_str(&w, why, strlen(why)); }
    fw_jw_raw(&w, "}");
    int n = fw_jw_done(&w);
    if (n > 0) answer(s, h, json, (size_t)n);
}
