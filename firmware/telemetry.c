/*
 * Telemetry: the metrics document on node/<node>/metrics (JSON, units in the key names,
 * retained so that a dashboard or `kvmesh-monitor --once` sees the last state at once),
 * Home Assistant discovery configs, and events (governor changes) on node/<node>/events.
 * Metrics, discovery and events carry no user text, so they are not sealed: a monitor
 * needs broker credentials only, never the fleet key.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fw_json.h"
#include "kvmesh_board.h"
#include "kvmesh_version.h"
#include "service.h"
#include "textpeer.h"

static void topic(const fw_svc *s, const char *leaf, char *out, size_t cap)
{
    snprintf(out, cap, "%s/node/%s/%s", s->root, s->cfg.node_id, leaf);
}

int fw_metrics_json(fw_svc *s, char *out, size_t cap)
{
    fw_jw w;
    fw_jw_init(&w, out, cap);
    const fw_stats *st = &s->st;
    const fw_board *b = &s->board;
    uint64_t now = fw_now_ms();
    char fp[17];
    mqtt_hex_encode(s->mid.fingerprint, 8, fp);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "node"); fw_jw_str(&w, s->cfg.node_id, strlen(s->cfg.node_id));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "fleet"); fw_jw_str(&w, s->cfg.fleet, strlen(s->cfg.fleet));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "mode"); fw_jw_raw(&w, "\""); fw_jw_raw(&w, fw_mode_name(s->cfg.mode)); fw_jw_raw(&w, "\"");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "state"); fw_jw_raw(&w, "\""); fw_jw_raw(&w, fw_board_state(s)); fw_jw_raw(&w, "\"");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "version"); fw_jw_str(&w, KVMESH_VERSION, strlen(KVMESH_VERSION));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "board"); fw_jw_str(&w, KVMESH_BOARD_NAME, strlen(KVMESH_BOARD_NAME));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "model"); fw_jw_str(&w, fp, strlen(fp));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "uptime_s"); fw_jw_u64(&w, (now - s->start_ms) / 1000);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "time_unix"); fw_jw_i64(&w, (int64_t)time(NULL));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "tokens_per_s"); fw_jw_fixed(&w, st->last_tps, 1);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "ttft_ms"); fw_jw_fixed(&w, st->last_ttft_ms, 2);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "requests"); fw_jw_u64(&w, st->requests);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "requests_done"); fw_jw_u64(&w, st->done);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "requests_rejected"); fw_jw_u64(&w, st->rejected);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "requests_failed"); fw_jw_u64(&w, st->failed);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "requests_cancelled"); fw_jw_u64(&w, st->cancelled);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "queue_depth"); fw_jw_u64(&w, s->qlen);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "queue_size"); fw_jw_u64(&w, s->cfg.queue);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "tokens_generated"); fw_jw_u64(&w, st->tokens_out);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "prefill_tokens"); fw_jw_u64(&w, st->prefill_tokens);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "prefill_tokens_saved"); fw_jw_u64(&w, st->prefill_saved);
    uint64_t hits = st->hits_local + st->hits_fleet;
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_hits"); fw_jw_u64(&w, hits);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_hits_local"); fw_jw_u64(&w, st->hits_local);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_hits_fleet"); fw_jw_u64(&w, st->hits_fleet);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_misses"); fw_jw_u64(&w, st->misses);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_hit_pct");
    if (hits + st->misses) fw_jw_fixed(&w, 100.0 * (double)hits / (double)(hits + st->misses), 1);
    else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "fetch_failures"); fw_jw_u64(&w, st->fetch_failures);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "import_failures"); fw_jw_u64(&w, st->import_failures);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_in_bytes"); fw_jw_u64(&w, st->cache_in_bytes);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_out_bytes"); fw_jw_u64(&w, st->cache_out_bytes);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "caches_served"); fw_jw_u64(&w, st->served);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "caches_published"); fw_jw_u64(&w, st->published);
    fw_textpeer_metrics(s, &w);
    const fw_store_stats *ss = &s->store.st;
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_entries"); fw_jw_u64(&w, s->store.count);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_bytes"); fw_jw_u64(&w, s->store.bytes);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_max_bytes"); fw_jw_u64(&w, s->store.max_bytes);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_loaded"); fw_jw_u64(&w, ss->loaded);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_evictions"); fw_jw_u64(&w, ss->evicted);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_discarded_torn"); fw_jw_u64(&w, ss->torn);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_discarded_foreign"); fw_jw_u64(&w, ss->foreign);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "store_write_errors"); fw_jw_u64(&w, ss->write_errors);
    mqtt_node_stats ns;
    mqtt_node_get_stats(&s->node, &ns);
    uint64_t rejected = 0;
    fw_jw_raw(&w, ","); fw_jw_key(&w, "frames_rejected"); fw_jw_raw(&w, "{");
    for (int r = 0; r < MQTT_DROP_REASONS_; r++) {
        const char *name = mqtt_drop_reason_name(r);
        fw_jw_raw(&w, r ? ",\"" : "\"");
        fw_jw_raw(&w, name);
        fw_jw_raw(&w, "\":");
        fw_jw_u64(&w, ns.rx.drops[r]);
        rejected += ns.rx.drops[r];
    }
    fw_jw_raw(&w, "}");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "frames_rejected_total"); fw_jw_u64(&w, rejected);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "foreign_messages"); fw_jw_u64(&w, ns.foreign);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "commands"); fw_jw_u64(&w, st->commands);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "commands_refused"); fw_jw_u64(&w, st->commands_refused);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "button_presses"); fw_jw_u64(&w, st->button_presses);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "temp_mc");
    if (b->temp_ok) fw_jw_i64(&w, b->temp_mc); else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "throttle_flags");
    if (b->throttle_ok) {
        char hx[16];
        snprintf(hx, sizeof hx, "0x%x", b->throttle.raw);
        fw_jw_str(&w, hx, strlen(hx));
        fw_jw_raw(&w, ","); fw_jw_key(&w, "throttled_now"); fw_jw_bool(&w, b->throttle.now.throttled);
        fw_jw_raw(&w, ","); fw_jw_key(&w, "under_voltage_now"); fw_jw_bool(&w, b->throttle.now.under_voltage);
    } else {
        fw_jw_raw(&w, "null");
    }
    fw_jw_raw(&w, ","); fw_jw_key(&w, "power_mw");
    if (b->power_ok) fw_jw_i64(&w, b->power.mw); else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "governor"); fw_jw_raw(&w, "\"");
    fw_jw_raw(&w, b->governed ? hal_governor_state_name(hal_governor_get_state(&b->gov)) : "off"); fw_jw_raw(&w, "\"");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "threads"); fw_jw_u64(&w, s->threads);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "arena_bytes"); fw_jw_u64(&w, s->eng.arena_bytes);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "arena_capacity_bytes"); fw_jw_u64(&w, fw_arena_capacity());
    fw_jw_raw(&w, "}");
    return fw_jw_done(&w);
}

static void publish_plain(fw_svc *s, const char *t, const char *json, bool retain, int qos)
{
    mqtt_pub_opts o = { .qos = qos, .retain = retain, .kind = "telemetry" };
    mqtt_session_publish(&s->node.session, t, json, strlen(json), &o);
}

void fw_telemetry_tick(fw_svc *s, uint64_t now, bool force)
{
    if (!s->node_ok || !mqtt_session_connected(&s->node.session)) return;
    if (!force && now - s->last_metrics_ms < (uint64_t)s->cfg.period_s * 1000u) return;
    s->last_metrics_ms = now;
    char json[FW_METRICS_MAX], t[MQTT_TOPIC_MAX];
    if (fw_metrics_json(s, json, sizeof json) < 0) return;
    topic(s, "metrics", t, sizeof t);
    publish_plain(s, t, json, true, 0);
}

void fw_telemetry_event(fw_svc *s, const char *json)
{
    fprintf(stderr, "kvmesh run: event %s\n", json);
    if (!s->node_ok || !mqtt_session_connected(&s->node.session)) return;
    char t[MQTT_TOPIC_MAX];
    topic(s, "events", t, sizeof t);
    publish_plain(s, t, json, false, 1);
}

void fw_governor_event(void *arg, const struct hal_governor_event *ev)
{
    fw_svc *s = arg;
    char json[512];
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{\"event\":\"governor\",\"old_state\":\"");
    fw_jw_raw(&w, hal_governor_state_name(ev->old_state));
    fw_jw_raw(&w, "\",\"new_state\":\"");
    fw_jw_raw(&w, hal_governor_state_name(ev->new_state));
    fw_jw_raw(&w, "\",\"old_threads\":"); fw_jw_u64(&w, ev->old_threads);
    fw_jw_raw(&w, ",\"new_threads\":"); fw_jw_u64(&w, ev->new_threads);
    fw_jw_raw(&w, ",\"temp_mc\":");
    if (ev->temp_valid) fw_jw_i64(&w, ev->temp_mc); else fw_jw_raw(&w, "null");
    fw_jw_raw(&w, "}");
    /* New requests use the new count; a pause holds the queue (see run.c). */
    s->threads = ev->new_threads;
    if (fw_jw_done(&w) > 0) fw_telemetry_event(s, json);
}

/* One Home Assistant discovery config (MQTT discovery, "sensor" component). */
static void discovery(fw_svc *s, const char *sensor, const char *name, const char *value_template, const char *unit,
                      const char *device_class, bool metrics, bool availability)
{
    const char *node = s->cfg.node_id;
    char t[MQTT_TOPIC_MAX], st_topic[MQTT_TOPIC_MAX], av_topic[MQTT_TOPIC_MAX], uid[96], json[2048];
    snprintf(t, sizeof t, "%s/sensor/%s_%s/config", s->cfg.ha_prefix, node, sensor);
    topic(s, metrics ? "metrics" : "status", st_topic, sizeof st_topic);
    topic(s, "status", av_topic, sizeof av_topic);
    snprintf(uid, sizeof uid, "kvmesh_%s_%s", node, sensor);
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{"); fw_jw_key(&w, "name"); fw_jw_str(&w, name, strlen(name));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "unique_id"); fw_jw_str(&w, uid, strlen(uid));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "object_id"); fw_jw_str(&w, uid, strlen(uid));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "state_topic"); fw_jw_str(&w, st_topic, strlen(st_topic));
    if (value_template) { fw_jw_raw(&w, ","); fw_jw_key(&w, "value_template"); fw_jw_str(&w, value_template, strlen(value_template)); }
    if (unit) {
        fw_jw_raw(&w, ","); fw_jw_key(&w, "unit_of_measurement"); fw_jw_str(&w, unit, strlen(unit));
        fw_jw_raw(&w, ","); fw_jw_key(&w, "state_class"); fw_jw_raw(&w, "\"measurement\"");
    }
    if (device_class) { fw_jw_raw(&w, ","); fw_jw_key(&w, "device_class"); fw_jw_str(&w, device_class, strlen(device_class)); }
    if (availability) {
        fw_jw_raw(&w, ","); fw_jw_key(&w, "availability_topic"); fw_jw_str(&w, av_topic, strlen(av_topic));
        fw_jw_raw(&w, ",\"payload_available\":\"online\",\"payload_not_available\":\"offline\"");
    }
    char dev_id[64], dev_name[64], model[96];
    snprintf(dev_id, sizeof dev_id, "kvmesh_%s", node);
    snprintf(dev_name, sizeof dev_name, "kvmesh %s", node);
    snprintf(model, sizeof model, "kvmesh on %s", KVMESH_BOARD_NAME);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "device"); fw_jw_raw(&w, "{");
    fw_jw_key(&w, "identifiers"); fw_jw_raw(&w, "["); fw_jw_str(&w, dev_id, strlen(dev_id)); fw_jw_raw(&w, "]");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "name"); fw_jw_str(&w, dev_name, strlen(dev_name));
    fw_jw_raw(&w, ","); fw_jw_key(&w, "model"); fw_jw_str(&w, model, strlen(model));
    fw_jw_raw(&w, ",\"manufacturer\":\"kvmesh\"");
    fw_jw_raw(&w, ","); fw_jw_key(&w, "sw_version"); fw_jw_str(&w, KVMESH_VERSION, strlen(KVMESH_VERSION));
    fw_jw_raw(&w, "}}");
    if (fw_jw_done(&w) > 0) publish_plain(s, t, json, true, 1);
}

void fw_telemetry_on_connect(fw_svc *s)
{
    if (s->cfg.ha_discovery) {
        discovery(s, "tokens_per_s", "Tokens per second", "{{ value_json.tokens_per_s }}", "tok/s", NULL, true, true);
        discovery(s, "temperature", "Temperature",
                  "{{ (value_json.temp_mc / 1000) | round(1) if value_json.temp_mc is number else None }}", "°C",
                  "temperature", true, true);
        discovery(s, "cache_hit_rate", "Cache hit rate",
                  "{{ value_json.cache_hit_pct if value_json.cache_hit_pct is number else None }}", "%", NULL, true, true);
        /* The status sensor shows online/offline itself, so it has no availability. */
        discovery(s, "status", "Status", NULL, NULL, NULL, false, false);
    }
    fw_telemetry_tick(s, fw_now_ms(), true);
}
