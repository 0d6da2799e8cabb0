/* Topic scheme (DESIGN.md section 7) under a configurable root. Pure string work with
 * caller buffers; every parse checks lengths and characters before use. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

int mqtt_topic_root(const char *fleet, char *out, size_t cap)
{
    if (!out || !mqtt_node_id_valid(fleet)) return MQTT_ERR_INVAL;
    int n = snprintf(out, cap, "kvmesh/v1/%s", fleet);
    return n < 0 || (size_t)n >= cap ? MQTT_ERR_SPACE : MQTT_OK;
}

void mqtt_model_id_str(const mqtt_model_id *m, char out[MQTT_MODEL_ID_STR + 1])
{
    mqtt_hex_encode(m->fingerprint, MQTT_ID_BYTES, out);
    snprintf(out + 2 * MQTT_ID_BYTES, MQTT_MODEL_ID_STR + 1 - 2 * MQTT_ID_BYTES, "-%" PRIu32,
             m->numerics);
}

static bool root_valid(const char *root)
{
    size_t n = root ? strlen(root) : 0;
    if (n == 0 || n > MQTT_TOPIC_MAX / 2 || root[n - 1] == '/') return false;
    return strpbrk(root, "+#") == NULL;
}

int mqtt_topic_build(const char *root, int kind, const mqtt_model_id *model,
                     const uint8_t prefix[MQTT_ID_BYTES], const char *node, char *out,
                     size_t cap)
{
    if (!out || !root_valid(root)) return MQTT_ERR_INVAL;
    char mid[MQTT_MODEL_ID_STR + 1], pid[2 * MQTT_ID_BYTES + 1];
    int n;
    switch (kind) {
    case MQTT_TOPIC_KV_ANNOUNCE:
    case MQTT_TOPIC_KV_DATA:
        if (!model || !prefix) return MQTT_ERR_INVAL;
        mqtt_model_id_str(model, mid);
        mqtt_hex_encode(prefix, MQTT_ID_BYTES, pid);
        n = snprintf(out, cap, "%s/kv/%s/%s%s", root, mid, pid,
                     kind == MQTT_TOPIC_KV_DATA ? "/data" : "");
        break;
    case MQTT_TOPIC_REQ:
    case MQTT_TOPIC_RESP:
        if (!mqtt_node_id_valid(node)) return MQTT_ERR_INVAL;
        n = snprintf(out, cap, "%s/%s/%s", root, kind == MQTT_TOPIC_REQ ? "req" : "resp", node);
        break;
    case MQTT_TOPIC_STATUS:
    case MQTT_TOPIC_METRICS:
    case MQTT_TOPIC_CMD:
        if (!mqtt_node_id_valid(node)) return MQTT_ERR_INVAL;
        n = snprintf(out, cap, "%s/node/%s/%s", root, node,
                     kind == MQTT_TOPIC_STATUS ? "status" : kind == MQTT_TOPIC_METRICS ? "metrics" : "cmd");
        break;
    default:
        return MQTT_ERR_INVAL;
    }
    return n < 0 || (size_t)n >= cap ? MQTT_ERR_SPACE : MQTT_OK;
}

int mqtt_topic_shared(const char *group, const char *topic, char *out, size_t cap)
{
    if (!out || !topic || !mqtt_node_id_valid(group)) return MQTT_ERR_INVAL;
    int n = snprintf(out, cap, "$share/%s/%s", group, topic);
    return n < 0 || (size_t)n >= cap ? MQTT_ERR_SPACE : MQTT_OK;
}

/* Copies the next '/'-separated level of *p into out (cap bytes); advances *p past it. */
static bool level(const char **p, char *out, size_t cap)
{
    const char *s = *p, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || n >= cap) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = e ? e + 1 : s + n;
    return true;
}

static bool parse_model(const char *s, mqtt_model_id *m)
{
    if (strlen(s) < 2 * MQTT_ID_BYTES + 2 || s[2 * MQTT_ID_BYTES] != '-') return false;
    char hex[2 * MQTT_ID_BYTES + 1];
    memcpy(hex, s, 2 * MQTT_ID_BYTES);
    hex[2 * MQTT_ID_BYTES] = '\0';
    if (mqtt_hex_decode(hex, m->fingerprint, MQTT_ID_BYTES)) return false;
    const char *num = s + 2 * MQTT_ID_BYTES + 1;
    if (strlen(num) > 10) return false;
    for (const char *c = num; *c; c++)
        if (*c < '0' || *c > '9') return false;
    unsigned long long v = strtoull(num, NULL, 10);
    if (v > UINT32_MAX) return false;
    m->numerics = (uint32_t)v;
    return true;
}

int mqtt_topic_parse(const char *root, const char *topic, mqtt_model_id *model,
                     uint8_t prefix[MQTT_ID_BYTES], char *node, size_t node_cap)
{
    if (!root_valid(root) || !topic) return MQTT_TOPIC_UNKNOWN;
    size_t rl = strlen(root);
    if (strncmp(topic, root, rl) != 0 || topic[rl] != '/') return MQTT_TOPIC_UNKNOWN;
    const char *p = topic + rl + 1;
    char a[MQTT_TOPIC_MAX], b[MQTT_TOPIC_MAX], c[MQTT_TOPIC_MAX];
    if (!level(&p, a, sizeof a)) return MQTT_TOPIC_UNKNOWN;
    if (strcmp(a, "kv") == 0) {
        mqtt_model_id m;
        uint8_t pre[MQTT_ID_BYTES];
        if (!level(&p, b, sizeof b) || !parse_model(b, &m)) return MQTT_TOPIC_UNKNOWN;
        if (!level(&p, c, sizeof c) || mqtt_hex_decode(c, pre, MQTT_ID_BYTES)) return MQTT_TOPIC_UNKNOWN;
        int kind = MQTT_TOPIC_KV_ANNOUNCE;
        if (*p) {
            if (strcmp(p, "data") != 0) return MQTT_TOPIC_UNKNOWN;
            kind = MQTT_TOPIC_KV_DATA;
        } else if (p[-1] == '/') {
            return MQTT_TOPIC_UNKNOWN;
        }
        if (model) *model = m;
        if (prefix) memcpy(prefix, pre, MQTT_ID_BYTES);
        return kind;
    }
    int kind;
    if (strcmp(a, "req") == 0 || strcmp(a, "resp") == 0) {
        if (!level(&p, b, sizeof b) || *p || p[-1] == '/') return MQTT_TOPIC_UNKNOWN;
        kind = a[1] == 'e' && a[2] == 'q' ? MQTT_TOPIC_REQ : MQTT_TOPIC_RESP;
    } else if (strcmp(a, "node") == 0) {
        if (!level(&p, b, sizeof b) || !level(&p, c, sizeof c) || *p || p[-1] == '/')
            return MQTT_TOPIC_UNKNOWN;
        if (strcmp(c, "status") == 0) kind = MQTT_TOPIC_STATUS;
        else if (strcmp(c, "metrics") == 0) kind = MQTT_TOPIC_METRICS;
        else if (strcmp(c, "cmd") == 0) kind = MQTT_TOPIC_CMD;
        else return MQTT_TOPIC_UNKNOWN;
    } else {
        return MQTT_TOPIC_UNKNOWN;
    }
    if (!mqtt_node_id_valid(b)) return MQTT_TOPIC_UNKNOWN;
    if (node) {
        if (strlen(b) >= node_cap) return MQTT_TOPIC_UNKNOWN;
        strcpy(node, b);
    }
    return kind;
}
