/*
 * The text level of collaboration (issue 9, heterogeneous peers; docs/collab-text.md).
 * Private to firmware/.
 *
 * A peer whose model differs from this board's (another fingerprint or tokenizer) can
 * reuse none of its KV caches or hidden states; what both understand is text. So with
 * [collab] text_offload, a request this board takes is sent on, as text, to text_peer:
 *
 *   1. the system prompt and prompt go through the privacy filter ([privacy] redact,
 *      names_file; privacy.h), and only the filtered text is sealed into an ordinary
 *      request on req/<text_peer>, answered by that node's `kvmesh run` like any other;
 *   2. its token records come back sealed on resp/<this node>; each one's text is relayed
 *      at once to the requester as {"id","i","text","from":<peer>} (token ids are the
 *      peer's vocabulary, so they are not passed on);
 *   3. its final record ends the request here too: {"id","done":true,"stop",
 *      "level":"text",...,"text_peer":{...}}.
 *
 * If the peer's first record does not arrive within text_deadline_ms, or a later one
 * within text_stall_ms of the one before, or it answers with an error, this board
 * generates itself, continuing from the original (unfiltered) prompt plus the text
 * received so far, for the tokens left; its final record then carries
 * "text_peer":{"result":"timeout"|"stalled"|...}. After a timeout or stall the peer is
 * left alone for text_retry_ms, then tried again.
 *
 * text_offload = when-model-differs needs the peer's model identity before any user
 * text leaves: it sends a probe (a request with an id and nothing else, which the peer
 * refuses with an error record) and reads the identity from the answer's sealed, and so
 * authenticated, frame header. Every answer refreshes it; it is trusted for 60 s.
 *
 * The final record and the log report what the filter redacted, per class, never the
 * values; the metrics count offloads, fallbacks, bytes and redactions.
 */
#ifndef FW_TEXTPEER_H
#define FW_TEXTPEER_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_json.h"
#include "privacy.h"
#include "service.h"

/* What happened to the request being generated. */
typedef enum {
    FW_TP_NONE = 0,       /* text_offload = never, or not tried for this request */
    FW_TP_ANSWERED,       /* the peer answered it whole */
    FW_TP_SAME_MODEL,     /* when-model-differs, and the peer runs this board's model */
    FW_TP_SKIPPED,        /* the peer failed less than text_retry_ms ago */
    FW_TP_FILTER,         /* the filter could not run (names not loaded, no room): kept here */
    FW_TP_TIMEOUT,        /* no first record within text_deadline_ms */
    FW_TP_STALLED,        /* a later record did not come within text_stall_ms */
    FW_TP_ERROR,          /* the peer answered with an error record (busy, too long, ...) */
    FW_TP_SEND,           /* the request could not be sent (no broker connection) */
    FW_TP_CANCELLED,      /* this board is stopping */
} fw_tp_result;

typedef struct {
    fw_tp_result result;
    uint32_t peer_tokens;          /* token records relayed */
    uint32_t peer_prompt_tokens;   /* from the peer's final record (its tokenizer) */
    uint64_t sent_bytes, received_bytes;   /* sealed frames: header + body + tag */
    fw_privacy_counts redacted;
    char error[64];                /* the peer's error code (FW_TP_ERROR) */
    char stop[16];                 /* the peer's stop reason (FW_TP_ANSWERED) */
    double wait_ms;                /* from sending to the answer or the fallback */
} fw_tp_outcome;

typedef struct {
    fw_privacy_names names;
    bool names_loaded;
    /* the exchange in flight */
    bool waiting, probing, ended;
    char want_id[72];              /* our id for it at the peer */
    fw_req *req;          /* the request being relayed */
    uint32_t relayed;              /* records relayed (the next "i") */
    uint64_t last_ms;              /* last record from the peer */
    uint64_t first_ns;             /* when the first token record arrived */
    char tail[512];                /* a record's text: a piece, or what the peer held back */
    size_t tail_len;
    char *cont;                    /* [cont_cap] the peer's text so far (for a fallback) */
    size_t cont_len, cont_cap;
    char *buf;                     /* [buf_cap] the filtered text, then the request JSON */
    size_t buf_cap;
    uint64_t seq;
    /* the peer's model, from its sealed answers; and its failures (for text_peer = peer_name) */
    char peer_name[32];
    bool peer_known;
    mqtt_model_id peer_model;
    uint64_t peer_seen_ms;
    uint64_t retry_after_ms;       /* generate here until then */
    fw_tp_outcome out;             /* this request's */
    /* totals for the metrics */
    uint64_t offloaded, fallbacks, sent_bytes, received_bytes;
    fw_privacy_counts redacted_total;
} fw_textpeer;

/* The state is one static instance in textpeer.c, as the service is one per process. */

/* Loads [privacy] names_file (when set) and sizes the buffers. 0, or -1 with err. */
int fw_textpeer_init(fw_svc *s, char *err, size_t errlen);
void fw_textpeer_free(fw_svc *s);

/* Called first for every request. Returns true when the peer answered it (the final
 * record was sent); false when this board generates it: then r may have been extended
 * (prompt + the peer's text, fewer max_tokens, the records already sent in r->i_base). */
bool fw_textpeer_offload(fw_svc *s, fw_req *r);

/* A sealed token record on resp/<this node> (from on_deliver). */
void fw_textpeer_deliver(fw_svc *s, const mqtt_frame_hdr *h, const uint8_t *p, size_t len);

/* Appends ,"text_peer":{...} to a final record when the text level was involved. */
void fw_textpeer_final_fields(fw_svc *s, fw_jw *w);
/* Appends the totals to the metrics document (,"text_offloaded":... ). */
void fw_textpeer_metrics(fw_svc *s, fw_jw *w);

const char *fw_tp_result_name(fw_tp_result r);

#endif
