/* kvmesh-kv ask | cmd: talk to a running `kvmesh run` node. Requests and commands are
 * sealed with the fleet key (text and cmd purposes); the answers come back sealed on
 * this client's resp/<node>. The record formats are in docs/firmware.md. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fw_json.h"
#include "kv.h"

typedef struct {
    char ids[64][80];            /* ids of the requests in flight (ask --count) */
    bool ended[64];
    uint32_t n, done, errors, busy;
    bool json, quiet;
    bool any;                    /* --raw: the payload's id is unknown, take any answer */
    int want_type;               /* MQTT_FT_TOKENS (ask) or MQTT_FT_COMMAND (cmd) */
    char last_error[260];
    bool cmd_ok, got_reply;
} ask_state;

static int find_id(const ask_state *a, const char *js, const fw_json_tok *t)
{
    char id[72];
    if (a->any) return 0;
    int v = fw_json_get(js, t, 0, "id");
    if (v < 0 || fw_json_string(js, &t[v], id, sizeof id) < 0) return -1;
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->ids[i], id)) return (int)i;
    return -1;
}

static void ask_deliver(void *user, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    ask_state *a = user;
    if (h->type != a->want_type) return;
    const char *js = (const char *)p;
    fw_json_tok t[160];
    if (fw_json_parse(js, len, t, 160, NULL, 0) < 1 || t[0].type != FW_JSON_OBJECT) {
        fprintf(stderr, "kvmesh-kv: an answer from %s is not JSON\n", h->sender);
        return;
    }
    int i = find_id(a, js, t);
    if (i < 0 || a->ended[i]) return;   /* not ours (or a late duplicate) */
    if (a->json) {
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    int v;
    if (a->want_type == MQTT_FT_COMMAND) {
        a->ended[i] = true;
        a->got_reply = true;
        a->cmd_ok = (v = fw_json_get(js, t, 0, "ok")) >= 0 && t[v].type == FW_JSON_BOOL && t[v].truth;
        if (!a->json) {
            fwrite(p, 1, len, stdout);
            fputc('\n', stdout);
        }
        return;
    }
    char text[256];
    if (!a->json && a->n == 1 && (v = fw_json_get(js, t, 0, "text")) >= 0 && fw_json_string(js, &t[v], text, sizeof text) >= 0) {
        fputs(text, stdout);
        fflush(stdout);
    }
    if ((v = fw_json_get(js, t, 0, "error")) >= 0) {
        char code[64] = "", msg[192] = "";
        fw_json_string(js, &t[v], code, sizeof code);
        if ((v = fw_json_get(js, t, 0, "message")) >= 0) fw_json_string(js, &t[v], msg, sizeof msg);
        snprintf(a->last_error, sizeof a->last_error, "%s: %s", code, msg);
        if (!a->json && !a->quiet) fprintf(stderr, "kvmesh-kv ask: %s: error %s\n", a->ids[i], a->last_error);
        a->ended[i] = true;
        a->errors++;
        if (!strcmp(code, "busy")) a->busy++;
    } else if ((v = fw_json_get(js, t, 0, "done")) >= 0) {
        a->ended[i] = true;
        a->done++;
        if (!a->json && a->n == 1) {
            fputc('\n', stdout);
            fflush(stdout);
        }
        if (!a->json && !a->quiet) fprintf(stderr, "kvmesh-kv ask: %.*s\n", (int)len, js);
    }
}

static void ask_usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv ask --to NODE --prompt TEXT --secret-file S [options]\n"
               "Sends a prompt to a kvmesh node (sealed), prints the tokens as they stream back and\n"
               "the final record (timings, reused tokens) on stderr. Exit 0 when every request ended\n"
               "with a final record, 1 on an error record or a timeout.\n\n"
               "  --to NODE           the node (its req/NODE topic)\n"
               "  --to-group G        instead: one member of the shared group G (cloud peers)\n"
               "  --prompt TEXT       the prompt\n"
               "  --system TEXT       a system prompt (tokenized first; its cache can be shared)\n"
               "  -n, --max-tokens N  tokens to generate (default: the node's [requests] max_tokens)\n"
               "  --temp T --top-p P --seed S   sampling (default: the node's; --temp 0 is greedy)\n"
               "  --id ID             request id (default r-<pid>)\n"
               "  --raw JSON          send this payload as it is instead (testing a node: any answer counts)\n"
               "  --count N           send N copies back to back (ids ID-0..), wait for all (1..64)\n"
               "  --timeout S         give up after S seconds (default 60)\n"
               "  --json              print every record as a JSON line, nothing else\n\n%s",
            kv_net_usage);
}

static void add_str(char *out, size_t cap, size_t *n, const char *key, const char *val)
{
    fw_jw w;
    fw_jw_init(&w, out + *n, cap - *n);
    fw_jw_raw(&w, *n > 1 ? "," : "");
    fw_jw_key(&w, key);
    fw_jw_str(&w, val, strlen(val));
    *n += w.len;
}

/* Connects, sends each payload (a sealed single frame) to topic, and waits for the ends. */
static int exchange(kv_net_opts *o, mqtt_node_cfg *cfg, ask_state *st, const char *topic, int type,
                    char payloads[][4096], const size_t *lens, uint64_t timeout_s)
{
    cfg->on_deliver = ask_deliver;
    cfg->user = st;
    mqtt_node node;
    int rc = mqtt_node_init(&node, cfg), status = 1;
    if (rc) {
        fprintf(stderr, "kvmesh-kv: %s\n", mqtt_strerror(rc));
        return 1;
    }
    rc = mqtt_node_start(&node);
    if (!rc) rc = mqtt_node_wait_connected(&node, o->connect_timeout_ms * (uint32_t)(o->retries ? o->retries : 1));
    if (rc) {
        fprintf(stderr, "kvmesh-kv: cannot connect to %s:%d: %s\n", o->host, node.session.cfg.port, mqtt_strerror(rc));
        goto out;
    }
    char resp[MQTT_TOPIC_MAX];
    snprintf(resp, sizeof resp, "%s/resp/%s", o->root, o->node);
    for (uint32_t i = 0; i < st->n && !kv_stop; i++) {
        mqtt_frame_hdr h = { .type = (uint8_t)type };
        mqtt_pub_opts po = { .qos = 1, .response_topic = resp, .correlation = (const uint8_t *)st->ids[i],
                             .correlation_len = (uint16_t)strlen(st->ids[i]), .kind = "request" };
        rc = mqtt_node_publish_sealed(&node, topic, &h, (const uint8_t *)payloads[i], lens[i], &po);
        if (rc) {
            fprintf(stderr, "kvmesh-kv: sending failed: %s\n", mqtt_strerror(rc));
            goto out;
        }
    }
    double end = kv_now_s() + (double)timeout_s;
    uint32_t ended = 0;
    while (!kv_stop && ended < st->n && kv_now_s() < end) {
        rc = mqtt_node_poll(&node, 20);
        if (rc) {
            fprintf(stderr, "kvmesh-kv: session failed: %s\n", mqtt_strerror(rc));
            goto out;
        }
        ended = 0;
        for (uint32_t i = 0; i < st->n; i++) ended += st->ended[i];
    }
    if (ended < st->n) fprintf(stderr, "kvmesh-kv: %u of %u answers missing after %" PRIu64 " s\n", st->n - ended, st->n, timeout_s);
    else status = 0;
out:
    mqtt_node_free(&node);
    return status;
}

int kv_cmd_ask(int argc, char **argv)
{
    kv_net_opts o;
    kv_net_defaults(&o);
    const char *to = NULL, *prompt = NULL, *system = NULL, *raw = NULL, *id = NULL, *temp = NULL, *top_p = NULL;
    uint64_t max_tokens = 0, seed = 0, count = 1, timeout = 60;
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        int r = kv_net_opt(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { ask_usage(stdout); return 0; }
        else if (!strcmp(a, "--to") && v) to = argv[++i];
        else if (!strcmp(a, "--to-group") && v) to = argv[++i];   /* members share req/<group> */
        else if (!strcmp(a, "--prompt") && v) prompt = argv[++i];
        else if (!strcmp(a, "--system") && v) system = argv[++i];
        else if (!strcmp(a, "--raw") && v) raw = argv[++i];
        else if (!strcmp(a, "--id") && v) id = argv[++i];
        else if (!strcmp(a, "--temp") && v) temp = argv[++i];
        else if (!strcmp(a, "--top-p") && v) top_p = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) && v && !kv_parse_u64(v, &max_tokens) && max_tokens) i++;
        else if (!strcmp(a, "--seed") && v && !kv_parse_u64(v, &seed)) { have_seed = true; i++; }
        else if (!strcmp(a, "--count") && v && !kv_parse_u64(v, &count) && count >= 1 && count <= 64) i++;
        else if (!strcmp(a, "--timeout") && v && !kv_parse_u64(v, &timeout) && timeout) i++;
        else { fprintf(stderr, "kvmesh-kv ask: bad option '%s' (see --help)\n", a); return 2; }
    }
    if (!to || !mqtt_node_id_valid(to) || (!prompt && !raw) || (raw && strlen(raw) >= 4096) ||
        (id && (strlen(id) == 0 || strlen(id) > 60))) {
        fprintf(stderr, "kvmesh-kv ask: --to NODE and --prompt TEXT (or --raw JSON under 4 KiB) are needed; "
                        "--id is 1..60 characters (see --help)\n");
        return 2;
    }
    for (const char *q = temp ? temp : top_p ? top_p : ""; *q; q++)
        if (!strchr("0123456789.", *q)) { fprintf(stderr, "kvmesh-kv ask: --temp/--top-p take decimals such as 0.9\n"); return 2; }
    mqtt_node_cfg cfg;
    if (kv_net_setup(&o, &cfg)) return 2;
    static ask_state st;
    static char payloads[64][4096];
    size_t lens[64];
    st.n = (uint32_t)count;
    st.json = o.json;
    st.quiet = o.quiet || count > 1;   /* --count: just the summary */
    st.any = raw != NULL;
    st.want_type = MQTT_FT_TOKENS;
    char base[64];
    snprintf(base, sizeof base, "%s", id ? id : "");
    if (!id) snprintf(base, sizeof base, "r-%ld", (long)getpid());
    for (uint32_t i = 0; i < st.n; i++) {
        if (count == 1) snprintf(st.ids[i], sizeof st.ids[i], "%s", base);
        else snprintf(st.ids[i], sizeof st.ids[i], "%s-%u", base, i);
        if (raw) {
            snprintf(payloads[i], sizeof payloads[i], "%s", raw);
            lens[i] = strlen(raw);
            continue;
        }
        size_t n = 0;
        char *out = payloads[i];
        out[n++] = '{';
        add_str(out, sizeof payloads[i], &n, "id", st.ids[i]);
        if (system) add_str(out, sizeof payloads[i], &n, "system", system);
        add_str(out, sizeof payloads[i], &n, "prompt", prompt);
        int k = 0;
        if (max_tokens) k += snprintf(out + n + k, sizeof payloads[i] - n - k, ",\"max_tokens\":%" PRIu64, max_tokens);
        if (temp || top_p || have_seed) {
            k += snprintf(out + n + k, sizeof payloads[i] - n - k, ",\"sampling\":{");
            const char *sep = "";
            if (temp) { k += snprintf(out + n + k, sizeof payloads[i] - n - k, "\"temp\":%s", temp); sep = ","; }
            if (top_p) { k += snprintf(out + n + k, sizeof payloads[i] - n - k, "%s\"top_p\":%s", sep, top_p); sep = ","; }
            if (have_seed) k += snprintf(out + n + k, sizeof payloads[i] - n - k, "%s\"seed\":%" PRIu64, sep, seed);
            k += snprintf(out + n + k, sizeof payloads[i] - n - k, "}");
        }
        n += (size_t)k;
        if (n + 2 >= sizeof payloads[i]) {
            fprintf(stderr, "kvmesh-kv ask: the prompt is too long for this client (4 KiB request)\n");
            return 2;
        }
        out[n++] = '}';
        out[n] = '\0';
        lens[i] = n;
    }
    char topic[MQTT_TOPIC_MAX];
    snprintf(topic, sizeof topic, "%s/req/%s", o.root, to);
    int status = exchange(&o, &cfg, &st, topic, MQTT_FT_PROMPT, payloads, lens, timeout);
    if (count > 1)
        printf("{\"sent\":%u,\"done\":%u,\"errors\":%u,\"busy\":%u}\n", st.n, st.done, st.errors, st.busy);
    mqtt_keys_wipe(&o.keys);
    return status || st.errors ? 1 : 0;
}

static void cmd_usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv cmd --to NODE --secret-file S [options] status|reload|drop-caches|shutdown\n"
               "       kvmesh-kv cmd --to NODE --secret-file S [options] set-mode standalone|cache-share\n"
               "Sends a command, sealed with the fleet key, to node/NODE/cmd and prints the node's\n"
               "answer (JSON). Exit 0 when the node answered ok, 1 otherwise.\n\n"
               "  --to NODE           the node\n"
               "  --id ID             command id (default c-<pid>)\n"
               "  --ts UNIX           timestamp to send (default now; nodes refuse stale commands)\n"
               "  --timeout S         wait at most S seconds for the answer (default 10)\n\n%s",
            kv_net_usage);
}

int kv_cmd_cmd(int argc, char **argv)
{
    kv_net_opts o;
    kv_net_defaults(&o);
    const char *to = NULL, *id = NULL, *cmd = NULL, *mode = NULL;
    uint64_t ts = (uint64_t)time(NULL), timeout = 10;
    for (int i = 1; i < argc; i++) {
        int r = kv_net_opt(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { cmd_usage(stdout); return 0; }
        else if (!strcmp(a, "--to") && v) to = argv[++i];
        else if (!strcmp(a, "--id") && v) id = argv[++i];
        else if (!strcmp(a, "--ts") && v && !kv_parse_u64(v, &ts)) i++;
        else if (!strcmp(a, "--timeout") && v && !kv_parse_u64(v, &timeout) && timeout) i++;
        else if (a[0] != '-' && !cmd) cmd = a;
        else if (a[0] != '-' && cmd && !strcmp(cmd, "set-mode") && !mode) mode = a;
        else { fprintf(stderr, "kvmesh-kv cmd: bad argument '%s' (see --help)\n", a); return 2; }
    }
    if (!to || !mqtt_node_id_valid(to) || !cmd || (!strcmp(cmd, "set-mode") && !mode) || (id && strlen(id) > 60) ||
        strlen(cmd) > 32 || (mode && strlen(mode) > 32)) {
        fprintf(stderr, "kvmesh-kv cmd: --to NODE and a command are needed (see --help)\n");
        return 2;
    }
    mqtt_node_cfg cfg;
    if (kv_net_setup(&o, &cfg)) return 2;
    static ask_state st;
    static char payload[1][4096];
    st.n = 1;
    st.json = o.json;
    st.want_type = MQTT_FT_COMMAND;
    snprintf(st.ids[0], sizeof st.ids[0], "%s", id ? id : "");
    if (!id) snprintf(st.ids[0], sizeof st.ids[0], "c-%ld", (long)getpid());
    size_t n = 0;
    payload[0][n++] = '{';
    add_str(payload[0], sizeof payload[0], &n, "id", st.ids[0]);
    add_str(payload[0], sizeof payload[0], &n, "cmd", cmd);
    if (mode) add_str(payload[0], sizeof payload[0], &n, "mode", mode);
    n += (size_t)snprintf(payload[0] + n, sizeof payload[0] - n, ",\"ts\":%" PRIu64 "}", ts);
    char topic[MQTT_TOPIC_MAX];
    snprintf(topic, sizeof topic, "%s/node/%s/cmd", o.root, to);
    int status = exchange(&o, &cfg, &st, topic, MQTT_FT_COMMAND, payload, &n, timeout);
    mqtt_keys_wipe(&o.keys);
    return status || !st.cmd_ok ? 1 : 0;
}
