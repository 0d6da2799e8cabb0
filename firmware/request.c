/*
 * Requests: a sealed JSON prompt on req/<node> (or the fleet group's shared topic) is
 * checked, queued (bounded), and generated in order. Tokens stream back, sealed, on
 * resp/<sender> as they are made, with the request's MQTT 5 correlation data; a final
 * record carries the timings. Every request gets exactly one final record or one error.
 *
 *   request  {"id":"r1","prompt":"...","system":"...","max_tokens":64,
 *             "sampling":{"temp":0.8,"top_p":0.9,"seed":42}}
 *   token    {"id":"r1","i":0,"token":367,"text":" Once"}
 *   final    {"id":"r1","done":true,"stop":"eos",...timings...}
 *   error    {"id":"r1","error":"busy","message":"..."}
 *
 * The system prompt and the prompt are tokenized separately (BOS + system, then the
 * prompt), so a system prompt's tokens, and so its cache, are the same in every request.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fw_json.h"
#include "service.h"
#include "textpeer.h"

#define REQ_TOKENS 128    /* JSON values a request may have */
/* The longest token piece streamed whole. It was 8 bytes, which cut aidreams260K's longer
 * pieces (" whispers" came out as " whisper") and would cut the 32k Llama 2 vocabulary's
 * (up to 27 bytes); the shared tokenizers stay far below this. */
#define FW_PIECE_MAX 256

static size_t text_cap(const fw_svc *s) { return (size_t)s->cfg.max_prompt_bytes + 2; }

int fw_req_init(fw_svc *s, char *err, size_t errlen)
{
    s->q = calloc(s->cfg.queue, sizeof *s->q);
    s->qtext = malloc(((size_t)s->cfg.queue + 1) * text_cap(s));
    if (!s->q || !s->qtext) {
        snprintf(err, errlen, "no memory for a queue of %u requests", s->cfg.queue);
        return -1;
    }
    for (uint32_t i = 0; i < s->cfg.queue; i++) s->q[i].text = s->qtext + (size_t)i * text_cap(s);
    s->cur.text = s->qtext + (size_t)s->cfg.queue * text_cap(s);
    return 0;
}

void fw_req_free(fw_svc *s)
{
    free(s->q);
    free(s->qtext);
    s->q = NULL;
    s->qtext = NULL;
}

/* ---- replies ------------------------------------------------------------------------------- */

/* Sends one sealed record to the requester (or, for the button, to the log). */
static void reply(fw_svc *s, const fw_req *r, const char *json, size_t len)
{
    if (r->button) return;
    if (!s->node_ok) return;
    char t[MQTT_TOPIC_MAX];
    snprintf(t, sizeof t, "%s/resp/%s", s->root, r->sender);
    mqtt_frame_hdr h = { .type = MQTT_FT_TOKENS, .model = s->mid };
    mqtt_pub_opts o = { .qos = 1, .correlation = r->corr_len ? r->corr : NULL, .correlation_len = r->corr_len,
                        .kind = "tokens" };
    mqtt_node_publish_sealed(&s->node, t, &h, (const uint8_t *)json, len, &o);
}

void fw_req_reply(fw_svc *s, const fw_req *r, const char *json, size_t len) { reply(s, r, json, len); }

static void id_field(fw_jw *w, const fw_req *r)
{
    fw_jw_key(w, "id");
    if (r->id[0]) fw_jw_str(w, r->id, strlen(r->id));
    else fw_jw_raw(w, "null");
}

static void reply_error(fw_svc *s, const fw_req *r, const char *code, const char *msg)
{
    char json[1024];
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    id_field(&w, r);
    fw_jw_raw(&w, ",\"error\":\"");
    fw_jw_raw(&w, code);
    fw_jw_raw(&w, "\",");
    fw_jw_key(&w, "message");
    fw_jw_str(&w, msg, strlen(msg));
    fw_jw_raw(&w, "}");
    int n = fw_jw_done(&w);
    if (n > 0) reply(s, r, json, (size_t)n);
    if (r->button) fprintf(stderr, "kvmesh run: button request: %s: %s\n", code, msg);
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* A JSON number as Q16 (via the engine's decimal parser: no floating point). */
static int num_q16(const char *p, const fw_json_tok *t, int32_t *out, int32_t max)
{
    char b[32];
    size_t n = t->end - t->start;
    if (t->type != FW_JSON_NUMBER || n >= sizeof b) return -1;
    memcpy(b, p + t->start, n);
    b[n] = '\0';
    return nn_parse_q16(b, out) == NN_OK && *out <= max ? 0 : -1;
}

static int parse_sampling(const char *p, const fw_json_tok *t, int obj, fw_req *r, char *msg, size_t msglen)
{
    if (t[obj].type != FW_JSON_OBJECT) {
        snprintf(msg, msglen, "sampling must be an object");
        return -1;
    }
    for (int k = fw_json_first(t, obj); k >= 0; k = fw_json_next(t, obj, k)) {
        const fw_json_tok *v = &t[k + 1];
        if (fw_json_eq(p, &t[k], "temp")) {
            if (num_q16(p, v, &r->temp_q16, 2 << 16)) { snprintf(msg, msglen, "sampling.temp must be a number 0..2"); return -1; }
        } else if (fw_json_eq(p, &t[k], "top_p")) {
            if (num_q16(p, v, &r->top_p_q16, 1 << 16)) { snprintf(msg, msglen, "sampling.top_p must be a number 0..1"); return -1; }
        } else if (fw_json_eq(p, &t[k], "seed")) {
            if (fw_json_u64(p, v, &r->seed)) { snprintf(msg, msglen, "sampling.seed must be an integer 0..2^64-1"); return -1; }
            r->has_seed = true;
        } else {
            char name[48];
            if (fw_json_string(p, &t[k], name, sizeof name) < 0) snprintf(name, sizeof name, "(long name)");
            snprintf(msg, msglen, "unknown field 'sampling.%s'", name);
            return -1;
        }
    }
    return 0;
}

/* Fills r from a request document. On error: -1, code and message set (r->id when
 * it was readable). */
static int parse_request(fw_svc *s, const char *p, size_t len, fw_req *r, const char **code, char *msg, size_t msglen)
{
    fw_json_tok t[REQ_TOKENS];
    char err[96];
    *code = "bad_request";
    if (fw_json_parse(p, len, t, REQ_TOKENS, err, sizeof err) < 0) {
        *code = "bad_json";
        snprintf(msg, msglen, "not JSON: %s", err);
        return -1;
    }
    if (t[0].type != FW_JSON_OBJECT) {
        snprintf(msg, msglen, "a request is a JSON object");
        return -1;
    }
    /* The id first, so every later error can name it. */
    int id = fw_json_get(p, t, 0, "id");
    int idn = id >= 0 ? fw_json_string(p, &t[id], r->id, sizeof r->id) : 0;
    if (id >= 0 && (idn <= 0 || strlen(r->id) != (size_t)idn)) {
        r->id[0] = '\0';
        snprintf(msg, msglen, "id must be a string of 1..%d characters", FW_ID_MAX);
        return -1;
    }
    unsigned seen = 0;
    const fw_json_tok *prompt = NULL, *system = NULL;
    r->max_tokens = s->cfg.max_tokens;
    r->temp_q16 = s->cfg.temp_q16;
    r->top_p_q16 = s->cfg.top_p_q16;
    static const char *const fields[] = { "id", "prompt", "system", "max_tokens", "sampling" };
    for (int k = fw_json_first(t, 0); k >= 0; k = fw_json_next(t, 0, k)) {
        int f = -1;
        for (int i = 0; i < 5 && f < 0; i++)
            if (fw_json_eq(p, &t[k], fields[i])) f = i;
        if (f < 0) {
            char name[48];
            if (fw_json_string(p, &t[k], name, sizeof name) < 0) snprintf(name, sizeof name, "(long name)");
            snprintf(msg, msglen, "unknown field '%s' (known: id, prompt, system, max_tokens, sampling)", name);
            return -1;
        }
        if (seen & (1u << f)) {
            snprintf(msg, msglen, "field '%s' appears twice", fields[f]);
            return -1;
        }
        seen |= 1u << f;
        const fw_json_tok *v = &t[k + 1];
        uint64_t n;
        switch (f) {
        case 1: prompt = v; break;
        case 2: system = v; break;
        case 3:
            if (fw_json_u64(p, v, &n) || n < 1 || n > s->cfg.max_tokens) {
                snprintf(msg, msglen, "max_tokens must be an integer 1..%u", s->cfg.max_tokens);
                return -1;
            }
            r->max_tokens = (uint32_t)n;
            break;
        case 4:
            if (parse_sampling(p, t, k + 1, r, msg, msglen)) return -1;
            break;
        default: break;
        }
    }
    if (!r->id[0]) {
        snprintf(msg, msglen, "id is required (a string of 1..%d characters)", FW_ID_MAX);
        return -1;
    }
    if (!prompt || prompt->type != FW_JSON_STRING || (system && system->type != FW_JSON_STRING)) {
        snprintf(msg, msglen, "prompt (and system, when given) must be strings");
        return -1;
    }
    /* system NUL prompt NUL, at most max_prompt_bytes of text in all. */
    size_t cap = text_cap(s);
    int sl = system ? fw_json_string(p, system, r->text, cap - 1) : 0;
    if (sl < 0 || (size_t)sl > s->cfg.max_prompt_bytes) {
        *code = "prompt_too_long";
        snprintf(msg, msglen, "the system prompt is longer than %u bytes", s->cfg.max_prompt_bytes);
        return -1;
    }
    if (!system) r->text[0] = '\0';
    int pl = fw_json_string(p, prompt, r->text + sl + 1, cap - (size_t)sl - 1);
    if (pl < 0 || (size_t)sl + (size_t)pl > s->cfg.max_prompt_bytes) {
        *code = "prompt_too_long";
        snprintf(msg, msglen, "system prompt and prompt are longer than %u bytes", s->cfg.max_prompt_bytes);
        return -1;
    }
    if (strlen(r->text) != (size_t)sl || strlen(r->text + sl + 1) != (size_t)pl) {
        snprintf(msg, msglen, "prompts may not contain NUL characters");
        return -1;
    }
    r->system_len = (uint32_t)sl;
    r->prompt_len = (uint32_t)pl;
    r->has_system = system && sl > 0;
    return 0;
}

/* Just the id of a request, to answer one that is not going to be parsed further. */
static void read_id(const char *p, size_t len, fw_req *r)
{
    fw_json_tok t[REQ_TOKENS];
    r->id[0] = '\0';
    if (fw_json_parse(p, len, t, REQ_TOKENS, NULL, 0) > 0 && t[0].type == FW_JSON_OBJECT) {
        int id = fw_json_get(p, t, 0, "id");
        if (id >= 0 && fw_json_string(p, &t[id], r->id, sizeof r->id) < 0) r->id[0] = '\0';
    }
}

void fw_req_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len)
{
    s->st.requests++;
    fw_req tmp;   /* answers a request that finds the queue full */
    bool full = s->qlen >= s->cfg.queue;
    fw_req *r = full ? &tmp : &s->q[(s->qhead + s->qlen) % s->cfg.queue];
    char *text = full ? NULL : r->text;
    memset(r, 0, sizeof *r);
    r->text = text;
    snprintf(r->sender, sizeof r->sender, "%s", h->sender);
    const mqtt_msg_props *props = mqtt_node_delivery_props(&s->node);
    if (props && props->correlation && props->correlation_len <= FW_CORR_MAX) {
        memcpy(r->corr, props->correlation, props->correlation_len);
        r->corr_len = props->correlation_len;
    }
    char msg[256];
    const char *code;
    if (full) {
        read_id((const char *)p, len, r);
        s->st.rejected++;
        snprintf(msg, sizeof msg, "the queue is full (%u waiting); try again later or another node", s->cfg.queue);
        reply_error(s, r, "busy", msg);
        return;
    }
    if (parse_request(s, (const char *)p, len, r, &code, msg, sizeof msg)) {
        s->st.rejected++;
        reply_error(s, r, code, msg);
        return;
    }
    if (s->stop) {
        s->st.rejected++;
        reply_error(s, r, "shutting_down", "the node is shutting down");
        return;
    }
    r->arrived_ms = fw_now_ms();
    s->qlen++;
}

void fw_req_button(fw_svc *s)
{
    if (s->qlen >= s->cfg.queue) {
        fprintf(stderr, "kvmesh run: button: the queue is full, press ignored\n");
        return;
    }
    fw_req *r = &s->q[(s->qhead + s->qlen) % s->cfg.queue];
    char *text = r->text;
    memset(r, 0, sizeof *r);
    r->text = text;
    r->button = true;
    snprintf(r->id, sizeof r->id, "button-%" PRIu64, s->st.button_presses);
    size_t n = strlen(s->cfg.button_prompt);
    if (n > s->cfg.max_prompt_bytes) n = s->cfg.max_prompt_bytes;
    r->text[0] = '\0';
    memcpy(r->text + 1, s->cfg.button_prompt, n);
    r->text[1 + n] = '\0';
    r->prompt_len = (uint32_t)n;
    r->max_tokens = s->cfg.button_max_tokens;
    r->temp_q16 = s->cfg.temp_q16;
    r->top_p_q16 = s->cfg.top_p_q16;
    r->arrived_ms = fw_now_ms();
    s->qlen++;
}

void fw_req_reject_all(fw_svc *s, const char *code, const char *msg)
{
    while (s->qlen) {
        fw_req *r = &s->q[s->qhead];
        s->qhead = (s->qhead + 1) % s->cfg.queue;
        s->qlen--;
        s->st.rejected++;
        reply_error(s, r, code, msg);
    }
}

/* ---- generation ---------------------------------------------------------------------------- */

static double ms_between(uint64_t a_ns, uint64_t b_ns) { return (double)(b_ns - a_ns) / 1e6; }

/* The token stream: pieces as llama2.c's run.c prints them, held back while a UTF-8
 * character is split between tokens, so every record's text is valid JSON. */
typedef struct {
    uint8_t pend[FW_PIECE_MAX + 8];   /* a whole piece, after up to 3 held-back bytes */
    size_t npend;
} utf8_acc;

static size_t take_piece(utf8_acc *u, nn_tok_piece pc, char *out, size_t cap)
{
    if (pc.p && pc.len && !(pc.len == 1 && !(isprint(pc.p[0]) || isspace(pc.p[0])))) {
        for (uint32_t i = 0; i < pc.len && u->npend < sizeof u->pend; i++) u->pend[u->npend++] = pc.p[i];
    }
    size_t n = fw_utf8_complete(u->pend, u->npend);
    if (u->npend == sizeof u->pend) n = u->npend;   /* not UTF-8 after all: let it out */
    if (n > cap) n = cap;
    memcpy(out, u->pend, n);
    memmove(u->pend, u->pend + n, u->npend - n);
    u->npend -= n;
    return n;
}

static void fail_request(fw_svc *s, fw_req *r, const char *code, const char *msg)
{
    s->st.failed++;
    reply_error(s, r, code, msg);
}

static void run(fw_svc *s, fw_req *r)
{
    if (fw_textpeer_offload(s, r)) return;   /* a text peer answered it ([collab]) */
    fw_engine *e = &s->eng;
    const nn_model *m = e->m;
    char err[256];
    uint64_t t0 = fw_now_ns();
    double queue_ms = (double)(fw_now_ms() - r->arrived_ms);
    uint32_t threads = s->threads ? s->threads : e->so.threads;
    if (fw_engine_set_threads(e, threads, err, sizeof err)) {
        fail_request(s, r, "internal", err);
        return;
    }
    uint64_t seed = r->has_seed ? r->seed : (uint64_t)time(NULL) ^ t0;
    fw_engine_set_sampling(e, r->temp_q16, r->top_p_q16, seed);

    /* Tokens: BOS + system, then the prompt. */
    const char *system = r->text, *prompt = r->text + r->system_len + 1;
    uint32_t n_sys = 0, n_p = 0;
    nn_status st = NN_OK;
    if (r->has_system) st = nn_tok_encode(&m->tok, system, 1, 0, e->ids, (uint32_t)e->ids_cap, &n_sys, e->tokscratch,
                                          e->tokscratch_bytes);
    if (!st) st = nn_tok_encode(&m->tok, prompt, !r->has_system, 0, e->ids + n_sys, (uint32_t)(e->ids_cap - n_sys), &n_p,
                                e->tokscratch, e->tokscratch_bytes);
    uint32_t n_prompt = n_sys + n_p;
    if (st || n_prompt == 0 || n_prompt > e->s.max_seq) {
        if (st) snprintf(err, sizeof err, "cannot tokenize the prompt: %s", nn_strerror(st));
        else snprintf(err, sizeof err, "the prompt is %u tokens; the context holds %u", n_prompt, e->s.max_seq);
        s->st.rejected++;
        reply_error(s, r, st ? "bad_request" : "prompt_too_long", err);
        return;
    }
    memcpy(e->log, e->ids, (size_t)n_prompt * sizeof *e->log);

    /* Reuse what the fleet or the store holds, compute the rest. */
    fw_reuse how;
    uint32_t reused = fw_share_prefill(s, e->ids, n_prompt, &how);
    /* The prefill in blocks, with the network served between them: a long prompt on a
     * slow board must not outlast the broker's keepalive (its will would say offline).
     * Splitting the forward pass changes no bit of the result. */
    const int32_t *logits = NULL;
    for (uint32_t at = reused; at < n_prompt && !st;) {
        uint32_t k = n_prompt - at < e->s.max_batch ? n_prompt - at : e->s.max_batch;
        st = nn_session_forward(&e->s, e->ids + at, k, &logits);
        at += k;
        if (at < n_prompt) fw_svc_pump(s);
    }
    if (st) {
        snprintf(err, sizeof err, "prefill failed: %s", nn_strerror(st));
        fail_request(s, r, "internal", err);
        return;
    }
    uint64_t t1 = fw_now_ns(), t_first = t1;
    s->st.prefill_tokens += n_prompt - reused;
    s->st.prefill_saved += reused;

    utf8_acc acc = { .npend = 0 };
    uint32_t prev = e->ids[n_prompt - 1], made = 0;
    const char *stop = "length";
    char json[2048], piece[FW_PIECE_MAX + 8];
    while (made < r->max_tokens) {
        uint32_t next = nn_sampler_sample(&e->sp, logits);
        if (next == m->tok.bos_id || next == m->tok.eos_id) {
            stop = "eos";
            break;
        }
        size_t pn = take_piece(&acc, nn_tok_decode(&m->tok, prev, next), piece, sizeof piece);
        fw_jw w;
        fw_jw_init(&w, json, sizeof json);
        fw_jw_raw(&w, "{");
        id_field(&w, r);
        fw_jw_raw(&w, ",\"i\":"); fw_jw_u64(&w, r->i_base + made);
        fw_jw_raw(&w, ",\"token\":"); fw_jw_u64(&w, next);
        fw_jw_raw(&w, ",\"text\":"); fw_jw_str(&w, piece, pn);
        fw_jw_raw(&w, "}");
        int jn = fw_jw_done(&w);
        if (jn > 0) reply(s, r, json, (size_t)jn);
        if (r->button) { fwrite(piece, 1, pn, stdout); fflush(stdout); }
        if (made == 0) t_first = fw_now_ns();
        made++;
        prev = next;
        fw_svc_pump(s);
        if (s->stop) {
            stop = "cancelled";
            break;
        }
        if (made == r->max_tokens) break;
        if (e->s.n_pos >= e->s.max_seq) {
            stop = "context";
            break;
        }
        e->log[e->s.n_pos] = next;
        if ((st = nn_session_forward(&e->s, &next, 1, &logits))) {
            snprintf(err, sizeof err, "decode failed: %s", nn_strerror(st));
            fail_request(s, r, "internal", err);
            return;
        }
    }
    uint64_t t2 = fw_now_ns();
    double ttft = ms_between(t0, made ? t_first : t1), prefill = ms_between(t0, t1);
    double dec_s = (double)(t2 - t1) / 1e9, tps = made && dec_s > 0 ? made / dec_s : 0.0;
    s->st.tokens_out += made;
    s->st.last_ttft_ms = ttft;
    if (made) s->st.last_tps = tps;
    if (!strcmp(stop, "cancelled")) s->st.cancelled++;
    else s->st.done++;

    static const char *const sources[] = { "none", "local", "fleet" };
    fw_jw w;
    fw_jw_init(&w, json, sizeof json);
    fw_jw_raw(&w, "{");
    id_field(&w, r);
    fw_jw_raw(&w, ",\"done\":true,\"stop\":\""); fw_jw_raw(&w, stop);
    fw_jw_raw(&w, "\",\"prompt_tokens\":"); fw_jw_u64(&w, n_prompt);
    fw_jw_raw(&w, ",\"reused_tokens\":"); fw_jw_u64(&w, reused);
    fw_jw_raw(&w, ",\"cache\":\""); fw_jw_raw(&w, sources[how.source]); fw_jw_raw(&w, "\"");
    if (how.source) {
        fw_jw_raw(&w, ","); fw_jw_key(&w, "cache_from"); fw_jw_str(&w, how.from, strlen(how.from));
        fw_jw_raw(&w, ",\"cache_bytes\":"); fw_jw_u64(&w, how.bytes);
    }
    fw_jw_raw(&w, ",\"new_tokens\":"); fw_jw_u64(&w, made);
    fw_jw_raw(&w, ",\"queue_ms\":"); fw_jw_fixed(&w, queue_ms, 1);
    fw_jw_raw(&w, ",\"ttft_ms\":"); fw_jw_fixed(&w, ttft, 3);
    fw_jw_raw(&w, ",\"prefill_ms\":"); fw_jw_fixed(&w, prefill, 3);
    fw_jw_raw(&w, ",\"tokens_per_s\":"); fw_jw_fixed(&w, tps, 1);
    fw_jw_raw(&w, ",\"seed\":"); fw_jw_u64(&w, seed);
    fw_jw_raw(&w, ",\"threads\":"); fw_jw_u64(&w, e->s.threads);
    if (acc.npend) {
        fw_jw_raw(&w, ",\"text\":");
        fw_jw_str(&w, (const char *)acc.pend, acc.npend);
    }
    fw_textpeer_final_fields(s, &w);
    fw_jw_raw(&w, "}");
    int jn = fw_jw_done(&w);
    if (jn > 0) reply(s, r, json, (size_t)jn);
    if (r->button) {
        fwrite(acc.pend, 1, acc.npend, stdout);
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "kvmesh run: button request: %s\n", json);
    }
    /* Cancelled work still made a valid context; keep it under the policy. */
    fw_share_publish(s, e->log, e->s.n_pos, n_sys);
}

void fw_req_run_next(fw_svc *s)
{
    if (!s->qlen) return;
    fw_req *q = &s->q[s->qhead];
    char *keep = s->cur.text;
    s->cur = *q;
    s->cur.text = keep;
    memcpy(s->cur.text, q->text, (size_t)q->system_len + q->prompt_len + 2);
    s->qhead = (s->qhead + 1) % s->cfg.queue;
    s->qlen--;
    s->busy = true;
    run(s, &s->cur);
    s->busy = false;
}
