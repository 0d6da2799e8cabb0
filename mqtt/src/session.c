/* The broker session on libmosquitto: connect (TCP or TLS), MQTT 5 with a 3.1.1
 * fall-back, reconnect with jittered exponential backoff, re-subscribe, presence (last
 * will "offline", retained "online"), QoS 1 publishes counted until acknowledged.
 * Driven by mqtt_session_poll(); no threads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "mqtt_session.h"

enum { ST_IDLE = 0, ST_CONNECTING, ST_CONNECTED, ST_WAITING, ST_FAILED };

static uint64_t mono_ms(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mqtt_session_now(const mqtt_session *s)
{
    return s->cfg.clock(s->cfg.clock_user);
}

void mqtt_session_cfg_defaults(mqtt_session_cfg *c)
{
    if (!c->host) c->host = "127.0.0.1";
    if (!c->port) c->port = c->tls ? 8883 : 1883;
    if (!c->keepalive_s) c->keepalive_s = 10;
    if (!c->connect_timeout_ms) c->connect_timeout_ms = 5000;
    if (!c->backoff_min_ms) c->backoff_min_ms = 100;
    if (!c->backoff_max_ms) c->backoff_max_ms = 5000;
    if (!c->inflight_max) c->inflight_max = 16;
    if (!c->clock) c->clock = mono_ms;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) { dst[0] = '\0'; return MQTT_OK; }
    size_t n = strlen(src);
    if (n >= cap) return MQTT_ERR_INVAL;
    memcpy(dst, src, n + 1);
    return MQTT_OK;
}

static bool readable(const char *path)
{
    return path[0] == '\0' || access(path, R_OK) == 0;
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags, const mosquitto_property *p);
static void on_publish(struct mosquitto *m, void *obj, int mid, int rc, const mosquitto_property *p);
static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *p);

int mqtt_session_init(mqtt_session *s, const mqtt_session_cfg *cfg)
{
    static bool lib_ready;
    if (!s || !cfg) return MQTT_ERR_INVAL;
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    mqtt_session_cfg_defaults(&s->cfg);
    mqtt_session_cfg *c = &s->cfg;
    if (!mqtt_node_id_valid(c->node_id) || !c->root || (c->tls && !c->ca_file) ||
        (c->cert_file && !c->key_file) || c->port <= 0 || c->port > 65535 || c->keepalive_s < 5 ||
        (c->protocol != MQTT_PROTO_AUTO && c->protocol != MQTT_PROTO_V5 && c->protocol != MQTT_PROTO_V311))
        return MQTT_ERR_INVAL;
    if (copy_str(s->host, sizeof s->host, c->host) || copy_str(s->node_id, sizeof s->node_id, c->node_id) ||
        copy_str(s->root, sizeof s->root, c->root) || copy_str(s->username, sizeof s->username, c->username) ||
        copy_str(s->password, sizeof s->password, c->password) ||
        copy_str(s->ca_file, sizeof s->ca_file, c->ca_file) ||
        copy_str(s->cert_file, sizeof s->cert_file, c->cert_file) ||
        copy_str(s->key_file, sizeof s->key_file, c->key_file))
        return MQTT_ERR_INVAL;
    if (!readable(s->ca_file) || !readable(s->cert_file) || !readable(s->key_file)) return MQTT_ERR_INVAL;
    if (mqtt_topic_build(s->root, MQTT_TOPIC_STATUS, NULL, NULL, s->node_id, s->status_topic,
                         sizeof s->status_topic))
        return MQTT_ERR_INVAL;
    if (!lib_ready) {
        mosquitto_lib_init();
        lib_ready = true;
    }
    s->mosq = mosquitto_new(s->node_id, true, s);
    if (!s->mosq) return errno == ENOMEM ? MQTT_ERR_NOMEM : MQTT_ERR_INVAL;
    s->proto = c->protocol == MQTT_PROTO_V311 ? MQTT_PROTO_V311 : MQTT_PROTO_V5;
    mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         s->proto == MQTT_PROTO_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(s->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(s->mosq, MOSQ_OPT_SEND_MAXIMUM, c->inflight_max);
    mosquitto_connect_v5_callback_set(s->mosq, on_connect);
    mosquitto_publish_v5_callback_set(s->mosq, on_publish);
    mosquitto_message_v5_callback_set(s->mosq, on_message);
    int rc = MOSQ_ERR_SUCCESS;
    if (s->username[0])
        rc = mosquitto_username_pw_set(s->mosq, s->username, s->password[0] ? s->password : NULL);
    if (rc == MOSQ_ERR_SUCCESS && c->tls)
        rc = mosquitto_tls_set(s->mosq, s->ca_file, NULL, s->cert_file[0] ? s->cert_file : NULL,
                               s->key_file[0] ? s->key_file : NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_will_set_v5(s->mosq, s->status_topic, 7, "offline", 1, true, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(s->mosq);
        s->mosq = NULL;
        return rc == MOSQ_ERR_NOMEM ? MQTT_ERR_NOMEM : MQTT_ERR_INVAL;
    }
    s->backoff_ms = c->backoff_min_ms;
    return MQTT_OK;
}

void mqtt_session_free(mqtt_session *s)
{
    if (!s || !s->mosq) return;
    if (s->state == ST_CONNECTED) {
        /* A clean DISCONNECT suppresses the will, so say "offline" ourselves first. */
        int mid;
        if (mosquitto_publish_v5(s->mosq, &mid, s->status_topic, 7, "offline", 1, true, NULL) == MOSQ_ERR_SUCCESS)
            s->inflight++;
        uint64_t until = mqtt_session_now(s) + 1000;
        while (s->inflight && mqtt_session_now(s) < until &&
               mosquitto_loop(s->mosq, 50, 1) == MOSQ_ERR_SUCCESS) {
        }
        mosquitto_disconnect_v5(s->mosq, 0, NULL);
        mosquitto_loop(s->mosq, 10, 1);
    }
    mosquitto_destroy(s->mosq);
    s->mosq = NULL;
}

/* Cheap jitter so that a fleet does not reconnect in lockstep after a broker restart. */
static uint32_t jitter(mqtt_session *s, uint32_t ms)
{
    uint64_t x = mqtt_session_now(s) * 0x9E3779B97F4A7C15ull ^ (uintptr_t)s;
    x ^= x >> 29;
    return ms / 2 + (uint32_t)(x % (ms / 2 + 1));
}

static void attempt(mqtt_session *s)
{
    s->stats.attempts++;
    s->state = ST_CONNECTING;
    s->attempt_ms = mqtt_session_now(s);
    mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         s->proto == MQTT_PROTO_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    int rc = s->stats.attempts == 1
                 ? mosquitto_connect_async(s->mosq, s->host, s->cfg.port, s->cfg.keepalive_s)
                 : mosquitto_reconnect_async(s->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        /* Immediate failure (refused port, unresolvable host): retry later like any other. */
        s->state = ST_WAITING;
        s->attempts++;
        if (s->cfg.max_attempts && s->attempts >= s->cfg.max_attempts) {
            s->state = ST_FAILED;
            s->status = MQTT_ERR_UNREACHABLE;
            if (s->cfg.on_event) s->cfg.on_event(s->cfg.user, MQTT_EV_FAILED);
            return;
        }
        s->retry_ms = mqtt_session_now(s) + jitter(s, s->backoff_ms);
        s->backoff_ms = s->backoff_ms * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms : s->backoff_ms * 2;
    }
}

int mqtt_session_start(mqtt_session *s)
{
    if (!s || !s->mosq || s->state != ST_IDLE) return MQTT_ERR_INVAL;
    attempt(s);
    return s->state == ST_FAILED ? s->status : MQTT_OK;
}

/* The connection ended or an attempt failed; schedule the next attempt or give up. */
static void lost(mqtt_session *s, int mosq_rc)
{
    if (s->state == ST_FAILED || s->state == ST_WAITING) return;
    bool was_up = s->state == ST_CONNECTED;
    if (was_up) {
        s->stats.disconnects++;
        s->backoff_ms = s->cfg.backoff_min_ms;
    } else {
        s->attempts++;
    }
    if (!was_up && s->cfg.max_attempts && s->attempts >= s->cfg.max_attempts) {
        s->state = ST_FAILED;
        s->status = mosq_rc == MOSQ_ERR_TLS || s->last_tls_error ? MQTT_ERR_TLS : MQTT_ERR_UNREACHABLE;
        mosquitto_disconnect(s->mosq);
        if (s->cfg.on_event) s->cfg.on_event(s->cfg.user, MQTT_EV_FAILED);
        return;
    }
    s->state = ST_WAITING;
    s->retry_ms = mqtt_session_now(s) + jitter(s, s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms : s->backoff_ms * 2;
    if (was_up && s->cfg.on_event) s->cfg.on_event(s->cfg.user, MQTT_EV_DISCONNECTED);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags, const mosquitto_property *p)
{
    (void)m; (void)flags; (void)p;
    mqtt_session *s = obj;
    if (rc == 0) {
        s->state = ST_CONNECTED;
        s->attempts = 0;
        s->backoff_ms = s->cfg.backoff_min_ms;
        s->stats.connects++;
        for (size_t i = 0; i < s->nsubs; i++)
            mosquitto_subscribe_v5(s->mosq, NULL, s->subs[i], 1, 0, NULL);
        int mid;
        if (mosquitto_publish_v5(s->mosq, &mid, s->status_topic, 6, "online", 1, true, NULL) ==
            MOSQ_ERR_SUCCESS) {
            s->inflight++;
            s->stats.published++;
        }
        if (s->cfg.on_event) s->cfg.on_event(s->cfg.user, MQTT_EV_CONNECTED);
        return;
    }
    /* A 3.1.1 broker answers a v5 CONNECT with "unacceptable protocol version" (1);
     * libmosquitto reports it as MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION. */
    if ((rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == CONNACK_REFUSED_PROTOCOL_VERSION) &&
        s->cfg.protocol == MQTT_PROTO_AUTO && s->proto == MQTT_PROTO_V5) {
        s->proto = MQTT_PROTO_V311;
        s->state = ST_WAITING;
        s->retry_ms = mqtt_session_now(s);
        mosquitto_disconnect(s->mosq);
        return;
    }
    bool permanent = rc == CONNACK_REFUSED_BAD_USERNAME_PASSWORD || rc == CONNACK_REFUSED_NOT_AUTHORIZED ||
                     rc == CONNACK_REFUSED_IDENTIFIER_REJECTED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD ||
                     rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BANNED ||
                     rc == MQTT_RC_CLIENTID_NOT_VALID || rc == MQTT_RC_BAD_AUTHENTICATION_METHOD ||
                     rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == CONNACK_REFUSED_PROTOCOL_VERSION;
    if (permanent) {
        s->state = ST_FAILED;
        s->status = MQTT_ERR_REFUSED;
        mosquitto_disconnect(s->mosq);
        if (s->cfg.on_event) s->cfg.on_event(s->cfg.user, MQTT_EV_FAILED);
        return;
    }
    lost(s, MOSQ_ERR_CONN_REFUSED);
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int rc, const mosquitto_property *p)
{
    (void)m; (void)mid; (void)rc; (void)p;
    mqtt_session *s = obj;
    if (s->inflight) s->inflight--;
    s->stats.acked++;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
    (void)m;
    mqtt_session *s = obj;
    s->stats.received++;
    if (!s->cfg.on_message) return;
    mqtt_msg_props props = { .retained = msg->retain };
    char *rt = NULL;
    void *corr = NULL;
    if (p) {
        mosquitto_property_read_string(p, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
        mosquitto_property_read_binary(p, MQTT_PROP_CORRELATION_DATA, &corr, &props.correlation_len, false);
        props.response_topic = rt;
        props.correlation = corr;
    }
    s->cfg.on_message(s->cfg.user, msg->topic, msg->payload, (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0),
                      &props);
    free(rt);   /* allocated by libmosquitto with malloc */
    free(corr);
}

int mqtt_session_poll(mqtt_session *s, int timeout_ms)
{
    if (!s || !s->mosq) return MQTT_ERR_INVAL;
    if (s->state == ST_FAILED) return s->status;
    if (s->state == ST_IDLE) return MQTT_ERR_NO_CONN;
    uint64_t now = mqtt_session_now(s);
    if (s->state == ST_WAITING) {
        if (now < s->retry_ms) {
            uint64_t wait = s->retry_ms - now;
            if (wait > (uint64_t)timeout_ms) wait = (uint64_t)timeout_ms;
            struct timespec ts = { (time_t)(wait / 1000), (long)(wait % 1000) * 1000000L };
            nanosleep(&ts, NULL);
            return MQTT_OK;
        }
        attempt(s);
        return s->state == ST_FAILED ? s->status : MQTT_OK;
    }
    int rc = mosquitto_loop(s->mosq, timeout_ms, 1);
    if (s->state == ST_FAILED) return s->status;
    if (rc != MOSQ_ERR_SUCCESS) {
        if (s->state == ST_CONNECTING) s->last_tls_error = rc == MOSQ_ERR_TLS;
        lost(s, rc);
    } else if (s->state == ST_CONNECTING &&
               mqtt_session_now(s) - s->attempt_ms >= s->cfg.connect_timeout_ms) {
        lost(s, MOSQ_ERR_SUCCESS);   /* no CONNACK in time: a port that swallows packets */
    }
    return s->state == ST_FAILED ? s->status : MQTT_OK;
}

bool mqtt_session_connected(const mqtt_session *s) { return s && s->state == ST_CONNECTED; }
int mqtt_session_status(const mqtt_session *s) { return s ? s->status : MQTT_ERR_INVAL; }
int mqtt_session_protocol(const mqtt_session *s) { return s && s->stats.connects ? s->proto : 0; }
uint32_t mqtt_session_inflight(const mqtt_session *s) { return s ? s->inflight : 0; }

int mqtt_session_subscribe(mqtt_session *s, const char *topic)
{
    if (!s || !topic || strlen(topic) >= MQTT_TOPIC_MAX) return MQTT_ERR_INVAL;
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i], topic) == 0) return MQTT_OK;
    if (s->nsubs == MQTT_SESSION_MAX_SUBS) return MQTT_ERR_BUSY;
    strcpy(s->subs[s->nsubs++], topic);
    if (s->state == ST_CONNECTED) mosquitto_subscribe_v5(s->mosq, NULL, topic, 1, 0, NULL);
    return MQTT_OK;
}

int mqtt_session_unsubscribe(mqtt_session *s, const char *topic)
{
    if (!s || !topic) return MQTT_ERR_INVAL;
    for (size_t i = 0; i < s->nsubs; i++) {
        if (strcmp(s->subs[i], topic) != 0) continue;
        if (s->state == ST_CONNECTED) mosquitto_unsubscribe_v5(s->mosq, NULL, topic, NULL);
        memmove(s->subs[i], s->subs[i + 1], (s->nsubs - i - 1) * sizeof s->subs[0]);
        s->nsubs--;
        return MQTT_OK;
    }
    return MQTT_ERR_NOT_FOUND;
}

int mqtt_session_publish(mqtt_session *s, const char *topic, const void *payload, size_t len,
                         const mqtt_pub_opts *o)
{
    static const mqtt_pub_opts none;
    if (!s || !topic || (!payload && len) || len > INT32_MAX) return MQTT_ERR_INVAL;
    if (!o) o = &none;
    if (s->state != ST_CONNECTED) return MQTT_ERR_NO_CONN;
    mosquitto_property *props = NULL;
    if (s->proto == MQTT_PROTO_V5) {
        if (o->response_topic) mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, o->response_topic);
        if (o->correlation)
            mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, o->correlation, o->correlation_len);
        if (o->expiry_s) mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, o->expiry_s);
        if (o->kind) mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "kvmesh-type", o->kind);
    }
    int mid;
    int rc = mosquitto_publish_v5(s->mosq, &mid, topic, (int)len, payload, o->qos, o->retain, props);
    mosquitto_property_free_all(&props);
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        s->stats.published++;
        if (o->qos > 0) s->inflight++;
        return MQTT_OK;
    case MOSQ_ERR_NO_CONN: return MQTT_ERR_NO_CONN;
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_PAYLOAD_SIZE: return MQTT_ERR_OVERSIZE;
    case MOSQ_ERR_NOMEM: return MQTT_ERR_NOMEM;
    default: return MQTT_ERR_PROTOCOL;
    }
}
