/* The text level: a request's filtered text goes to [collab] text_peer, its text streams
 * back, and this board takes over when the peer does not answer (see textpeer.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textpeer.h"

#define TP_PEER_TRUST_MS 60000u   /* a learned peer model identity is re-probed after this */

static fw_textpeer tp;            /* one service per process, as fw_service in run.c */

static const char *const result_names[] = { "none", "answered", "same_model", "skipped", "filter", "timeout",
                                            "stalled", "error", "send_failed", "cancelled" };

const char *fw_tp_result_name(fw_tp_result r)
{
    return (unsigned)r < sizeof result_names / sizeof result_names[0] ? result_names[r] : "?";
}

static uint64_t frame_bytes(size_t body) { return (uint64_t)MQTT_FRAME_HDR_SIZE + body + MQTT_TAG_SIZE; }

int fw_textpeer_init(fw_svc *s, char *err, size_t errlen)
{
    const fw_config *c = &s->cfg;
    memset(&tp, 0, sizeof tp);
    if (c->names_file[0]) {
        static char text[2 * FW_PRIV_NAMES_BYTES];
        FILE *f = fopen(c->names_file, "rb");
        size_t n = f ? fread(text, 1, sizeof text, f) : 0;
        int rd_err = !f || ferror(f), big = f && n == sizeof text;
        int e = errno;
        if (f) fclose(f);
        if (rd_err || big) {
            snprintf(err, errlen, "[privacy] names_file: cannot read %s: %s", c->names_file,
                     big ? "larger than 16 KiB" : strerror(e));
            return -1;
        }
        uint32_t line = 0;
        int rc = fw_privacy_names_parse(&tp.names, text, n, &line);
        if (rc) {
            snprintf(err, errlen, "[privacy] names_file: %s:%u: %s (at most %d names, %d bytes each)", c->names_file,
                     line, fw_privacy_strerror(rc), FW_PRIV_NAMES_MAX, FW_PRIV_NAME_BYTES);
            return -1;
        }
        tp.names_loaded = true;
    }
    /* The filtered system prompt and prompt, then the request (escaped) after them. */
    size_t bound = fw_privacy_bound(c->max_prompt_bytes);
    tp.cont_cap = c->max_prompt_bytes;
    tp.buf_cap = 2 * bound + 2 * bound + 1024;
    tp.cont = malloc(tp.cont_cap + 1);
    tp.buf = malloc(tp.buf_cap);
    if (!tp.cont || !tp.buf) {
        snprintf(err, errlen, "no memory for the text peer's buffers");
        fw_textpeer_free(s);
        return -1;
    }
    return 0;
}

void fw_textpeer_free(fw_svc *s)
{
    (void)s;
    free(tp.cont);
    free(tp.buf);
    tp.cont = tp.buf = NULL;
}

/* ---- the peer's records -------------------------------------------------------------------- */

static void relay_text(fw_svc *s, const char *text, size_t n)
{
    char json[2048];
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "id"); fw_jw_str(&w, tp.req->id, strlen(tp.req->id));
    fw_jw_raw(&w, ",\"i\":"); fw_jw_u64(&w, tp.req->i_base + tp.relayed);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "text"); fw_jw_str(&w, text, n);
    fw_jw_raw(&w, ","); fw_jw_key(&w, "from"); fw_jw_str(&w, s->cfg.text_peer, strlen(s->cfg.text_peer));
    fw_jw_raw(&w, "}");
    int jn = fw_jw_done(&w);
    if (jn > 0) fw_req_reply(s, tp.req, json, (size_t)jn);
    if (tp.req->button) { fwrite(text, 1, n, stdout); fflush(stdout); }
}

static void keep_text(const char *text, size_t n)
{
    if (n > tp.cont_cap - tp.cont_len) n = tp.cont_cap - tp.cont_len;
    memcpy(tp.cont + tp.cont_len, text, n);
    tp.cont_len += n;
}

void fw_textpeer_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    if (!tp.waiting || strcmp(h->sender, s->cfg.text_peer) != 0) return;
    const char *js = (const char *)p;
    fw_json_tok t[64];
    char id[sizeof tp.want_id];
    if (fw_json_parse(js, len, t, 64, NULL, 0) < 1 || t[0].type != FW_JSON_OBJECT) return;
    int v = fw_json_get(js, t, 0, "id");
    if (v < 0 || fw_json_string(js, &t[v], id, sizeof id) < 0 || strcmp(id, tp.want_id) != 0) return;
    /* Ours. The header is authenticated (sealed with the peer's key): its model is the
     * peer's model. */
    uint64_t now = fw_now_ms();
    tp.peer_model = h->model;
    tp.peer_known = true;
    tp.peer_seen_ms = now;
    tp.last_ms = now;
    tp.out.received_bytes += frame_bytes(len);
    if (tp.probing) {       /* any answer to the probe will do: it was only for the header */
        tp.ended = true;
        return;
    }
    char text[sizeof tp.tail];
    int tn = -1;
    if ((v = fw_json_get(js, t, 0, "text")) >= 0 && t[v].type == FW_JSON_STRING)
        tn = fw_json_string(js, &t[v], text, sizeof text);
    if ((v = fw_json_get(js, t, 0, "error")) >= 0) {
        if (fw_json_string(js, &t[v], tp.out.error, sizeof tp.out.error) < 0) snprintf(tp.out.error, sizeof tp.out.error, "?");
        tp.out.result = FW_TP_ERROR;
        tp.ended = true;
    } else if ((v = fw_json_get(js, t, 0, "done")) >= 0) {
        if ((v = fw_json_get(js, t, 0, "stop")) < 0 || fw_json_string(js, &t[v], tp.out.stop, sizeof tp.out.stop) < 0)
            snprintf(tp.out.stop, sizeof tp.out.stop, "?");
        uint64_t pt;
        if ((v = fw_json_get(js, t, 0, "prompt_tokens")) >= 0 && !fw_json_u64(js, &t[v], &pt))
            tp.out.peer_prompt_tokens = (uint32_t)pt;
        if (tn > 0) {   /* a character the peer held back to the end */
            size_t k = (size_t)tn < sizeof tp.tail ? (size_t)tn : sizeof tp.tail;
            memcpy(tp.tail, text, k);
            tp.tail_len = k;
            keep_text(text, (size_t)tn);
        }
        tp.out.result = FW_TP_ANSWERED;
        tp.ended = true;
    } else if (tn >= 0) {
        if (!tp.relayed) tp.first_ns = fw_now_ns();
        relay_text(s, text, (size_t)tn);
        keep_text(text, (size_t)tn);
        tp.relayed++;
    }
}

/* ---- one exchange -------------------------------------------------------------------------- */

/* Seals payload to req/<text_peer> under a fresh id (already in tp.want_id). */
static int send_request(fw_svc *s, const char *payload, size_t len)
{
    if (!s->node_ok || !mqtt_session_connected(&s->node.session)) return -1;
    char topic[MQTT_TOPIC_MAX];
    snprintf(topic, sizeof topic, "%s/req/%s", s->root, s->cfg.text_peer);
    mqtt_frame_hdr h = { .type = MQTT_FT_PROMPT };
    mqtt_pub_opts o = { .qos = 1, .correlation = (const uint8_t *)tp.want_id,
                        .correlation_len = (uint16_t)strlen(tp.want_id), .kind = "request" };
    if (mqtt_node_publish_sealed(&s->node, topic, &h, (const uint8_t *)payload, len, &o) != MQTT_OK) return -1;
    tp.out.sent_bytes += frame_bytes(len);
    return 0;
}

/* Runs the network until the exchange ends or a deadline passes. Returns FW_TP_NONE when
 * it ended (tp.out.result says how), else why it did not. */
static fw_tp_result wait_exchange(fw_svc *s)
{
    uint64_t start = fw_now_ms();
    tp.last_ms = 0;
    while (!tp.ended) {
        if (s->stop) return FW_TP_CANCELLED;
        uint64_t now = fw_now_ms();
        if (!tp.last_ms && now - start >= s->cfg.text_deadline_ms) return FW_TP_TIMEOUT;
        if (tp.last_ms && now - tp.last_ms >= s->cfg.text_stall_ms) return FW_TP_STALLED;
        fw_svc_pump(s);
        if (!tp.ended && s->node_ok) {
            int rc = mqtt_node_poll(&s->node, 5);
            if (rc && !s->net_failure) s->net_failure = rc;
        }
    }
    return FW_TP_NONE;
}

static void begin(fw_svc *s, fw_req *r, bool probe)
{
    snprintf(tp.want_id, sizeof tp.want_id, "%s-%s%" PRIu64, s->cfg.node_id, probe ? "probe-" : "t", ++tp.seq);
    tp.req = r;
    tp.waiting = true;
    tp.probing = probe;
    tp.ended = false;
}

static void finish(void)
{
    tp.waiting = tp.probing = false;
    tp.want_id[0] = '\0';   /* a late record is not ours any more */
}

/* Learns the peer's model (when-model-differs). FW_TP_NONE when known now. */
static fw_tp_result probe(fw_svc *s, fw_req *r)
{
    char json[128];
    begin(s, r, true);
    int n = snprintf(json, sizeof json, "{\"id\":\"%s\"}", tp.want_id);
    fw_tp_result res = send_request(s, json, (size_t)n) ? FW_TP_SEND : wait_exchange(s);
    finish();
    return res;
}

/* The request as the peer gets it: the filtered texts, the same limits and sampling. */
static int build_request(fw_svc *s, const fw_req *r, size_t *len)
{
    const fw_config *c = &s->cfg;
    fw_privacy_cfg pc = { .classes = c->redact, .names = tp.names_loaded ? &tp.names : NULL };
    size_t bound = fw_privacy_bound(c->max_prompt_bytes), sn = 0, pn = 0;
    char *fsys = tp.buf, *fprompt = tp.buf + bound, *json = tp.buf + 2 * bound;
    fw_privacy_counts cs = { 0 }, cp;
    const char *system = r->text, *prompt = r->text + r->system_len + 1;
    if ((r->has_system && fw_privacy_redact(&pc, system, r->system_len, fsys, bound, &sn, &cs)) ||
        fw_privacy_redact(&pc, prompt, r->prompt_len, fprompt, bound, &pn, &cp))
        return -1;
    tp.out.redacted.email = cs.email + cp.email;
    tp.out.redacted.phone = cs.phone + cp.phone;
    tp.out.redacted.name = cs.name + cp.name;
    fw_jw w;
    fw_jw_init(&w, json, tp.buf_cap - 2 * bound);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "id"); fw_jw_str(&w, tp.want_id, strlen(tp.want_id));
    if (r->has_system) { fw_jw_raw(&w, ","); fw_jw_key(&w, "system"); fw_jw_str(&w, fsys, sn); }
    fw_jw_raw(&w, ","); fw_jw_key(&w, "prompt"); fw_jw_str(&w, fprompt, pn);
    fw_jw_raw(&w, ",\"max_tokens\":"); fw_jw_u64(&w, r->max_tokens);
    /* Q16 as a decimal with 6 digits: the peer's parser rounds it back to the same Q16. */
    char num[64];
    snprintf(num, sizeof num, ",\"sampling\":{\"temp\":%d.%06d,\"top_p\":%d.%06d", r->temp_q16 >> 16,
             (int)(((int64_t)(r->temp_q16 & 0xFFFF) * 1000000 + 32768) >> 16), r->top_p_q16 >> 16,
             (int)(((int64_t)(r->top_p_q16 & 0xFFFF) * 1000000 + 32768) >> 16));
    fw_jw_raw(&w, num);
    if (r->has_seed) { fw_jw_raw(&w, ",\"seed\":"); fw_jw_u64(&w, r->seed); }
    fw_jw_raw(&w, "}}");
    int n = fw_jw_done(&w);
    if (n < 0 || (size_t)n > MQTT_CHUNK_DEFAULT) return -1;
    *len = (size_t)n;
    return 0;
}

static void log_outcome(fw_svc *s, const fw_req *r)
{
    const fw_tp_outcome *o = &tp.out;
    fprintf(stderr, "kvmesh run: text peer %s: request %s %s%s%s (%u peer tokens, sent %" PRIu64 " B, received %" PRIu64
            " B, %.0f ms; redacted email %u, phone %u, name %u)%s\n", s->cfg.text_peer, r->id, fw_tp_result_name(o->result),
            o->result == FW_TP_ERROR ? " " : "", o->result == FW_TP_ERROR ? o->error : "", o->peer_tokens, o->sent_bytes,
            o->received_bytes, o->wait_ms, o->redacted.email, o->redacted.phone, o->redacted.name,
            o->result == FW_TP_ANSWERED ? "" : "; generating here");
}

/* The final record of a request the peer answered. */
static void send_final(fw_svc *s, fw_req *r, double queue_ms, double ttft_ms, double total_ms)
{
    char json[2048];
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    fw_jw_key(&w, "id"); fw_jw_str(&w, r->id, strlen(r->id));
    fw_jw_raw(&w, ",\"done\":true,"); fw_jw_key(&w, "stop"); fw_jw_str(&w, tp.out.stop, strlen(tp.out.stop));
    fw_jw_raw(&w, ",\"level\":\"text\",\"new_tokens\":"); fw_jw_u64(&w, tp.out.peer_tokens);
    fw_jw_raw(&w, ",\"queue_ms\":"); fw_jw_fixed(&w, queue_ms, 1);
    fw_jw_raw(&w, ",\"ttft_ms\":"); fw_jw_fixed(&w, ttft_ms, 3);
    fw_jw_raw(&w, ",\"total_ms\":"); fw_jw_fixed(&w, total_ms, 3);
    if (tp.tail_len) { fw_jw_raw(&w, ","); fw_jw_key(&w, "text"); fw_jw_str(&w, tp.tail, tp.tail_len); }
    fw_textpeer_final_fields(s, &w);
    fw_jw_raw(&w, "}");
    int jn = fw_jw_done(&w);
    if (jn > 0) fw_req_reply(s, r, json, (size_t)jn);
    if (r->button) {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "kvmesh run: button request: %s\n", json);
    }
}

bool fw_textpeer_offload(fw_svc *s, fw_req *r)
{
    const fw_config *c = &s->cfg;
    memset(&tp.out, 0, sizeof tp.out);
    if (c->text_offload == FW_TEXT_NEVER || !c->text_peer[0] || !tp.buf) return false;
    uint64_t t0 = fw_now_ns(), now = fw_now_ms();
    double queue_ms = (double)(now - r->arrived_ms);
    if (strcmp(tp.peer_name, c->text_peer) != 0) {   /* another peer (a reload): nothing known */
        snprintf(tp.peer_name, sizeof tp.peer_name, "%s", c->text_peer);
        tp.peer_known = false;
        tp.retry_after_ms = 0;
    }
    tp.relayed = 0;
    tp.cont_len = tp.tail_len = 0;
    tp.first_ns = 0;
    fw_tp_result fail = FW_TP_NONE;
    if (now < tp.retry_after_ms) {
        fail = FW_TP_SKIPPED;
    } else if ((c->redact & FW_PRIV_NAME) && !tp.names_loaded) {
        fail = FW_TP_FILTER;   /* names asked for after a reload, not loaded: keep the text here */
    } else if (c->text_offload == FW_TEXT_WHEN_MODEL_DIFFERS &&
               (!tp.peer_known || now - tp.peer_seen_ms > TP_PEER_TRUST_MS)) {
        fail = probe(s, r);
    }
    if (fail == FW_TP_NONE && c->text_offload == FW_TEXT_WHEN_MODEL_DIFFERS && tp.peer_known &&
        !memcmp(&tp.peer_model, &s->mid, sizeof tp.peer_model))
        fail = FW_TP_SAME_MODEL;
    size_t len = 0;
    uint64_t sent_at = fw_now_ns(), first_ns = 0;
    if (fail == FW_TP_NONE) {
        begin(s, r, false);
        if (build_request(s, r, &len)) fail = FW_TP_FILTER;
        else if (send_request(s, tp.buf + 2 * fw_privacy_bound(c->max_prompt_bytes), len)) fail = FW_TP_SEND;
        else fail = wait_exchange(s);
        finish();
        first_ns = tp.first_ns;
    }
    tp.out.peer_tokens = tp.relayed;
    tp.out.wait_ms = (double)(fw_now_ns() - sent_at) / 1e6;
    if (fail == FW_TP_NONE) fail = tp.out.result == FW_TP_ANSWERED ? FW_TP_NONE : tp.out.result;
    if (fail != FW_TP_NONE) tp.out.result = fail;
    tp.sent_bytes += tp.out.sent_bytes;
    tp.received_bytes += tp.out.received_bytes;
    tp.redacted_total.email += tp.out.redacted.email;
    tp.redacted_total.phone += tp.out.redacted.phone;
    tp.redacted_total.name += tp.out.redacted.name;
    if (tp.out.result == FW_TP_TIMEOUT || tp.out.result == FW_TP_STALLED || tp.out.result == FW_TP_SEND) {
        tp.retry_after_ms = fw_now_ms() + c->text_retry_ms;
        tp.peer_known = false;   /* it may come back with another model */
    }
    if (tp.out.result != FW_TP_SAME_MODEL && tp.out.result != FW_TP_SKIPPED) log_outcome(s, r);

    if (tp.out.result == FW_TP_ANSWERED) {
        tp.offloaded++;
        s->st.done++;
        s->st.tokens_out += tp.relayed;
        uint64_t t2 = fw_now_ns();
        double ttft = (double)((first_ns ? first_ns : t2) - t0) / 1e6;
        s->st.last_ttft_ms = ttft;
        send_final(s, r, queue_ms, ttft, (double)(t2 - t0) / 1e6);
        return true;
    }
    if (tp.out.result == FW_TP_CANCELLED) {
        /* Stopping: what the peer sent stands; end the request here. */
        snprintf(tp.out.stop, sizeof tp.out.stop, "cancelled");
        s->st.cancelled++;
        send_final(s, r, queue_ms, 0, (double)(fw_now_ns() - t0) / 1e6);
        return true;
    }
    if (tp.out.result == FW_TP_SAME_MODEL || tp.out.result == FW_TP_SKIPPED || tp.out.result == FW_TP_FILTER) {
        if (tp.out.result != FW_TP_SAME_MODEL) tp.fallbacks++;
        return false;
    }
    /* Generate here, going on from the peer's text: the original prompt (this board's
     * own, unfiltered) plus what arrived, for the tokens that are left. */
    tp.fallbacks++;
    size_t room = c->max_prompt_bytes - r->system_len - r->prompt_len;
    size_t n = tp.cont_len < room ? tp.cont_len : room;
    n = fw_utf8_complete((const uint8_t *)tp.cont, n);
    char *prompt_end = r->text + r->system_len + 1 + r->prompt_len;
    memcpy(prompt_end, tp.cont, n);
    prompt_end[n] = '\0';
    r->prompt_len += (uint32_t)n;
    r->i_base = tp.relayed;
    r->max_tokens = r->max_tokens > tp.relayed ? r->max_tokens - tp.relayed : 0;
    return false;
}

/* ---- reporting ----------------------------------------------------------------------------- */

static void counts(fw_jw *w, const fw_privacy_counts *c)
{
    fw_jw_raw(w, "{\"email\":"); fw_jw_u64(w, c->email);
    fw_jw_raw(w, ",\"phone\":"); fw_jw_u64(w, c->phone);
    fw_jw_raw(w, ",\"name\":"); fw_jw_u64(w, c->name);
    fw_jw_raw(w, "}");
}

void fw_textpeer_final_fields(fw_svc *s, fw_jw *w)
{
    const fw_tp_outcome *o = &tp.out;
    if (o->result == FW_TP_NONE) return;
    fw_jw_raw(w, ",\"text_peer\":{");
    fw_jw_key(w, "peer"); fw_jw_str(w, s->cfg.text_peer, strlen(s->cfg.text_peer));
    fw_jw_raw(w, ",\"result\":\""); fw_jw_raw(w, fw_tp_result_name(o->result)); fw_jw_raw(w, "\"");
    if (o->result == FW_TP_ERROR) { fw_jw_raw(w, ","); fw_jw_key(w, "error"); fw_jw_str(w, o->error, strlen(o->error)); }
    if (tp.peer_known) {
        char model[MQTT_MODEL_ID_STR + 1];
        mqtt_model_id_str(&tp.peer_model, model);
        fw_jw_raw(w, ","); fw_jw_key(w, "peer_model"); fw_jw_str(w, model, strlen(model));
        fw_jw_raw(w, ",\"model_differs\":"); fw_jw_bool(w, memcmp(&tp.peer_model, &s->mid, sizeof s->mid) != 0);
    }
    fw_jw_raw(w, ",\"peer_tokens\":"); fw_jw_u64(w, o->peer_tokens);
    if (o->peer_prompt_tokens) { fw_jw_raw(w, ",\"peer_prompt_tokens\":"); fw_jw_u64(w, o->peer_prompt_tokens); }
    fw_jw_raw(w, ",\"sent_bytes\":"); fw_jw_u64(w, o->sent_bytes);
    fw_jw_raw(w, ",\"received_bytes\":"); fw_jw_u64(w, o->received_bytes);
    fw_jw_raw(w, ",\"wait_ms\":"); fw_jw_fixed(w, o->wait_ms, 3);
    fw_jw_raw(w, ",\"redacted\":"); counts(w, &o->redacted);
    fw_jw_raw(w, "}");
}

void fw_textpeer_metrics(fw_svc *s, fw_jw *w)
{
    if (s->cfg.text_offload == FW_TEXT_NEVER && !tp.offloaded && !tp.fallbacks) return;   /* not in use */
    fw_jw_raw(w, ",\"text_offloaded\":"); fw_jw_u64(w, tp.offloaded);
    fw_jw_raw(w, ",\"text_fallbacks\":"); fw_jw_u64(w, tp.fallbacks);
    fw_jw_raw(w, ",\"text_sent_bytes\":"); fw_jw_u64(w, tp.sent_bytes);
    fw_jw_raw(w, ",\"text_received_bytes\":"); fw_jw_u64(w, tp.received_bytes);
    fw_jw_raw(w, ",\"redacted\":"); counts(w, &tp.redacted_total);
}
