/*
 * kvmesh-monitor: the fleet at a glance. Subscribes to node/+/status (retained
 * online/offline, the last will) and node/+/metrics (retained JSON) under the fleet's
 * root and shows a table, redrawn every second: node, status, mode, state, tokens/s,
 * time to first token, cache hit rate, temperature, last seen. --once prints one
 * snapshot (--json: for scripts) and exits.
 *
 * Status and metrics carry no user text and are not sealed, so the monitor needs broker
 * credentials only, never the fleet secret.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fw_json.h"
#include "mqtt_session.h"

#define MON_MAX_NODES 256

typedef struct {
    char id[MQTT_NODE_ID_MAX + 1];
    char status[16];
    bool has_metrics;
    char mode[24], state[16];
    double tps, ttft_ms, hit_pct, temp_mc, time_unix;   /* NAN when absent */
    double seen_mono;                                  /* when a message last came */
} mon_node;

typedef struct {
    const char *root;
    mon_node nodes[MON_MAX_NODES];
    int n;
    bool all;
} monitor;

static volatile sig_atomic_t mon_stop;
static void on_signal(int sig) { (void)sig; mon_stop = 1; }

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static mon_node *node_of(monitor *m, const char *id)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->nodes[i].id, id)) return &m->nodes[i];
    if (m->n == MON_MAX_NODES) return NULL;
    mon_node *n = &m->nodes[m->n++];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->status, sizeof n->status, "?");
    n->tps = n->ttft_ms = n->hit_pct = n->temp_mc = n->time_unix = NAN;
    return n;
}

static double num(const char *js, const fw_json_tok *t, int obj, const char *key)
{
    int v = fw_json_get(js, t, obj, key);
    if (v < 0 || t[v].type != FW_JSON_NUMBER) return NAN;
    char b[48];
    size_t n = t[v].end - t[v].start;
    if (n >= sizeof b) return NAN;
    memcpy(b, js + t[v].start, n);
    b[n] = '\0';
    return strtod(b, NULL);
}

static void str(const char *js, const fw_json_tok *t, int obj, const char *key, char *out, size_t cap)
{
    int v = fw_json_get(js, t, obj, key);
    if (v < 0 || fw_json_string(js, &t[v], out, cap) < 0) snprintf(out, cap, "-");
}

static void on_message(void *user, const char *topic, const uint8_t *payload, size_t len, const mqtt_msg_props *p)
{
    (void)p;
    monitor *m = user;
    char id[MQTT_NODE_ID_MAX + 1];
    int kind = mqtt_topic_parse(m->root, topic, NULL, NULL, id, sizeof id);
    if (kind != MQTT_TOPIC_STATUS && kind != MQTT_TOPIC_METRICS) return;
    if (len == 0) return;   /* a cleared retained message */
    mon_node *n = node_of(m, id);
    if (!n) return;
    n->seen_mono = mono_s();
    if (kind == MQTT_TOPIC_STATUS) {
        snprintf(n->status, sizeof n->status, "%.*s", (int)(len < 15 ? len : 15), (const char *)payload);
        return;
    }
    static fw_json_tok t[512];
    const char *js = (const char *)payload;
    if (fw_json_parse(js, len, t, 512, NULL, 0) < 1 || t[0].type != FW_JSON_OBJECT) return;
    n->has_metrics = true;
    str(js, t, 0, "mode", n->mode, sizeof n->mode);
    str(js, t, 0, "state", n->state, sizeof n->state);
    n->tps = num(js, t, 0, "tokens_per_s");
    n->ttft_ms = num(js, t, 0, "ttft_ms");
    n->hit_pct = num(js, t, 0, "cache_hit_pct");
    n->temp_mc = num(js, t, 0, "temp_mc");
    n->time_unix = num(js, t, 0, "time_unix");
}

static int cmp_nodes(const void *a, const void *b) { return strcmp(((const mon_node *)a)->id, ((const mon_node *)b)->id); }

/* Seconds since the node last spoke: its metrics' own clock (right for retained
 * messages), else since this monitor heard it. */
static double last_seen(const mon_node *n)
{
    if (!isnan(n->time_unix)) {
        double d = (double)time(NULL) - n->time_unix;
        return d < 0 ? 0 : d;
    }
    return mono_s() - n->seen_mono;
}

static void cell(char *out, size_t cap, double v, const char *fmt, double scale)
{
    if (isnan(v)) snprintf(out, cap, "-");
    else snprintf(out, cap, fmt, v / scale);
}

static void print_table(monitor *m, FILE *f, const char *fleet)
{
    qsort(m->nodes, (size_t)m->n, sizeof m->nodes[0], cmp_nodes);
    int shown = 0;
    for (int i = 0; i < m->n; i++) shown += m->all || m->nodes[i].has_metrics;
    time_t now = time(NULL);
    char clock[16];
    strftime(clock, sizeof clock, "%H:%M:%S", localtime(&now));
    fprintf(f, "kvmesh fleet %s (%s)  %d node%s  %s\n", fleet, m->root, shown, shown == 1 ? "" : "s", clock);
    fprintf(f, "%-20s %-8s %-12s %-8s %9s %9s %6s %7s %9s\n", "NODE", "STATUS", "MODE", "STATE", "TOK/S", "TTFT_MS",
            "HIT%", "TEMP_C", "LAST_SEEN");
    for (int i = 0; i < m->n; i++) {
        mon_node *n = &m->nodes[i];
        if (!m->all && !n->has_metrics) continue;
        char tps[16], ttft[16], hit[16], temp[16], seen[16];
        cell(tps, sizeof tps, n->tps, "%.1f", 1);
        cell(ttft, sizeof ttft, n->ttft_ms, "%.2f", 1);
        cell(hit, sizeof hit, n->hit_pct, "%.1f", 1);
        cell(temp, sizeof temp, n->temp_mc, "%.1f", 1000);
        snprintf(seen, sizeof seen, "%.0fs ago", last_seen(n));
        fprintf(f, "%-20s %-8s %-12s %-8s %9s %9s %6s %7s %9s\n", n->id, n->status, n->has_metrics ? n->mode : "-",
                n->has_metrics ? n->state : "-", tps, ttft, hit, temp, seen);
    }
}

static void json_num(FILE *f, const char *key, double v, double scale)
{
    if (isnan(v)) fprintf(f, ",\"%s\":null", key);
    else fprintf(f, ",\"%s\":%.3f", key, v / scale);
}

static void print_json(monitor *m, FILE *f, const char *fleet)
{
    qsort(m->nodes, (size_t)m->n, sizeof m->nodes[0], cmp_nodes);
    char buf[256];
    fw_jw w;
    fw_jw_init(&w, buf, sizeof buf);
    fw_jw_raw(&w, "{\"fleet\":");
    fw_jw_str(&w, fleet, strlen(fleet));
    fw_jw_raw(&w, ",\"root\":");
    fw_jw_str(&w, m->root, strlen(m->root));
    fprintf(f, "%s,\"nodes\":[", buf);
    int k = 0;
    for (int i = 0; i < m->n; i++) {
        mon_node *n = &m->nodes[i];
        if (!m->all && !n->has_metrics) continue;
        fw_jw_init(&w, buf, sizeof buf);
        fw_jw_raw(&w, "{\"node\":");
        fw_jw_str(&w, n->id, strlen(n->id));
        fw_jw_raw(&w, ",\"status\":");
        fw_jw_str(&w, n->status, strlen(n->status));
        fw_jw_raw(&w, ",\"mode\":");
        if (n->has_metrics) fw_jw_str(&w, n->mode, strlen(n->mode)); else fw_jw_raw(&w, "null");
        fw_jw_raw(&w, ",\"state\":");
        if (n->has_metrics) fw_jw_str(&w, n->state, strlen(n->state)); else fw_jw_raw(&w, "null");
        fprintf(f, "%s%s", k++ ? "," : "", buf);
        json_num(f, "tokens_per_s", n->tps, 1);
        json_num(f, "ttft_ms", n->ttft_ms, 1);
        json_num(f, "cache_hit_pct", n->hit_pct, 1);
        json_num(f, "temp_c", n->temp_mc, 1000);
        fprintf(f, ",\"last_seen_s\":%.0f}", last_seen(n));
    }
    fprintf(f, "]}\n");
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh-monitor [options]\n"
        "\n"
        "Shows a fleet's nodes live: status, mode, state, tokens/s, time to first token,\n"
        "cache hit rate, temperature and when each was last seen (redrawn every second;\n"
        "Ctrl-C quits). Needs broker credentials only: metrics and status are not sealed.\n"
        "\n"
        "  --host H            broker host (default 127.0.0.1)\n"
        "  --port P            broker port (default 1883, 8883 with --tls)\n"
        "  --tls --ca F        TLS to the broker; --cert F --key F for a client certificate\n"
        "  --user U            broker username; --pass-file F for its password\n"
        "  --fleet NAME        fleet (topic root kvmesh/v1/NAME; default lab)\n"
        "  --root R            topic root override\n"
        "  --node ID           this client's id (default monitor-<host>)\n"
        "  --once              print one snapshot and exit (after --wait)\n"
        "  --json              with --once: JSON for scripts\n"
        "  --wait MS           how long --once listens before printing (default 1500)\n"
        "  --all               also list clients that publish no metrics\n"
        "  -h, --help          this text\n"
        "\n"
        "Exit status: 0, 1 when the broker cannot be reached, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *fleet = "lab", *root = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    const char *user = NULL, *pass_file = NULL, *node = NULL;
    int port = 0;
    long wait_ms = 1500;
    bool tls = false, once = false, json = false;
    static monitor m;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--tls")) tls = true;
        else if (!strcmp(a, "--once")) once = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--all")) m.all = true;
        else if (!v) { fprintf(stderr, "kvmesh-monitor: bad option '%s' (see --help)\n", a); return 2; }
        else if (!strcmp(a, "--host")) host = argv[++i];
        else if (!strcmp(a, "--fleet")) fleet = argv[++i];
        else if (!strcmp(a, "--root")) root = argv[++i];
        else if (!strcmp(a, "--ca")) ca = argv[++i];
        else if (!strcmp(a, "--cert")) cert = argv[++i];
        else if (!strcmp(a, "--key")) key = argv[++i];
        else if (!strcmp(a, "--user")) user = argv[++i];
        else if (!strcmp(a, "--pass-file")) pass_file = argv[++i];
        else if (!strcmp(a, "--node")) node = argv[++i];
        else if (!strcmp(a, "--port") && (port = (int)strtol(v, &end, 10)) > 0 && port < 65536 && !*end) i++;
        else if (!strcmp(a, "--wait") && (wait_ms = strtol(v, &end, 10)) >= 0 && wait_ms <= 600000 && !*end) i++;
        else { fprintf(stderr, "kvmesh-monitor: bad option '%s' (see --help)\n", a); return 2; }
    }
    if (json && !once) {
        fprintf(stderr, "kvmesh-monitor: --json goes with --once\n");
        return 2;
    }
    if ((tls && !ca) || (!cert != !key)) {
        fprintf(stderr, "kvmesh-monitor: --tls needs --ca; --cert and --key go together\n");
        return 2;
    }
    char rootbuf[MQTT_TOPIC_MAX / 2], idbuf[MQTT_NODE_ID_MAX + 1], pass[128] = "";
    if (!root) {
        if (mqtt_topic_root(fleet, rootbuf, sizeof rootbuf)) {
            fprintf(stderr, "kvmesh-monitor: bad --fleet '%s'\n", fleet);
            return 2;
        }
        root = rootbuf;
    }
    if (!node) {
        /* A stable id per host: the session leaves one retained status per client id. */
        char hn[64] = "";
        gethostname(hn, sizeof hn - 1);
        size_t k = (size_t)snprintf(idbuf, sizeof idbuf, "monitor-");
        for (const char *p = hn; *p && *p != '.' && k < sizeof idbuf - 1; p++)
            if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') idbuf[k++] = *p;
        idbuf[k] = '\0';
        node = idbuf;
    }
    if (!mqtt_node_id_valid(node)) {
        fprintf(stderr, "kvmesh-monitor: bad --node '%s': 1..31 of [A-Za-z0-9_-]\n", node);
        return 2;
    }
    if (pass_file) {
        FILE *f = fopen(pass_file, "r");
        if (!f || !fgets(pass, sizeof pass, f)) {
            fprintf(stderr, "kvmesh-monitor: cannot read --pass-file %s\n", pass_file);
            if (f) fclose(f);
            return 1;
        }
        fclose(f);
        pass[strcspn(pass, "\r\n")] = '\0';
    }
    m.root = root;
    mqtt_session_cfg c = { .host = host, .port = port, .node_id = node, .root = root, .username = user,
                           .password = pass_file ? pass : NULL, .tls = tls, .ca_file = ca, .cert_file = cert,
                           .key_file = key, .max_attempts = once ? 3 : 0, .on_message = on_message, .user = &m };
    mqtt_session s;
    int rc = mqtt_session_init(&s, &c);
    if (rc) {
        fprintf(stderr, "kvmesh-monitor: %s\n", mqtt_strerror(rc));
        return 1;
    }
    char t[MQTT_TOPIC_MAX];
    snprintf(t, sizeof t, "%s/node/+/status", root);
    mqtt_session_subscribe(&s, t);
    snprintf(t, sizeof t, "%s/node/+/metrics", root);
    mqtt_session_subscribe(&s, t);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = mqtt_session_start(&s);
    double t0 = mono_s(), connected_at = -1, last_draw = 0;
    int status = 0;
    while (!rc && !mon_stop) {
        rc = mqtt_session_poll(&s, 50);
        if (rc) break;
        double now = mono_s();
        if (mqtt_session_connected(&s) && connected_at < 0) connected_at = now;
        if (once) {
            if (connected_at >= 0 && now - connected_at >= wait_ms / 1000.0) break;
            if (connected_at < 0 && now - t0 > 15) { rc = MQTT_ERR_TIMEOUT; break; }
            continue;
        }
        if (now - last_draw >= 1.0) {
            last_draw = now;
            printf("\033[H\033[2J");
            if (!mqtt_session_connected(&s)) printf("(connecting to %s...)\n", host);
            print_table(&m, stdout, fleet);
            fflush(stdout);
        }
    }
    if (rc) {
        fprintf(stderr, "kvmesh-monitor: cannot reach the broker at %s: %s\n", host, mqtt_strerror(rc));
        status = 1;
    } else if (once) {
        if (json) print_json(&m, stdout, fleet);
        else print_table(&m, stdout, fleet);
    }
    mqtt_session_free(&s);
    return status;
}
