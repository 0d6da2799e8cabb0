/*
 * Collaboration between a device and a peer with the same image (issue 9, DESIGN.md 8):
 * split (U-shape), speculative decoding verified by the peer, and early exit with
 * offload. Private to firmware/.
 *
 *   collab_wire.c  the message codec below, and the broker node both sides use
 *   collab.c       `kvmesh collab`: the device's driver for every mode, and the fallback
 *   peer.c         `kvmesh peer`: serves middle layers, deep layers and verification
 *
 * Every message is one sealed payload (mqtt_node_send or, when it fits one chunk,
 * mqtt_node_publish_sealed) on req/<receiver>: MQTT_FT_HIDDEN for residual-stream rows,
 * MQTT_FT_TOKENS for token ids. The payload is this 64-byte little-endian header, then
 * `data_len` bytes (nn_hidden_encode rows, or u32 token ids):
 *
 *    0 u32 magic "KVCO"    4 u8 version (2)   5 u8 op   6 u8 hidden mode   7 u8 status
 *    8 u32 session        12 u32 seq         16 u32 pos0   20 u32 n
 *   24 u32 l0             28 u32 l1          32 u32 draft  36 u32 have
 *   40 u32 token          44 u32 accepted    48 u32 flags  52 u32 peer_time
 *   56 u32 data_len       60 u32 peer_ns_per_call_layer
 *
 * Ops (device -> peer; the reply carries the same op, session and seq):
 *   LAYERS  rows at the input of layer l0 for positions pos0 .. pos0+n-1; the peer runs
 *           [l0, l1) and keeps those layers' KV. Reply: the output rows of layer l1-1,
 *           or with l1 == n_layers and COLLAB_F_TOKEN only the greedy next token.
 *   VERIFY  n token ids from pos0; the last `draft` of them are drafts. The peer runs the
 *           whole model over them, accepts the longest prefix of drafts that equals its
 *           own greedy choice, and replies `accepted` and `token` (its choice after the
 *           last accepted one). draft 0: just the next token (peer-only generation).
 *           With COLLAB_F_SAMPLE the request's `token` is the temperature (Q16), `have`
 *           the peer's sampling seed and l0 the drafter's exit layer: the peer computes
 *           the drafter's logits itself (the same first layers and head) and accepts each
 *           draft by the speculative rule (nn_sampler_verify), which keeps the output
 *           distributed as the full model's; a rejected draft is replaced by a draw
 *           from the residual, and when all are accepted `token` is drawn from the full
 *           model (draft <= COLLAB_SAMPLE_MAX).
 *   PING    link and speed probe: the reply says how fast the peer runs rows through
 *           one layer, as a cost per call plus a cost per row (peer_ns_per_call_layer,
 *           and peer_time: nanoseconds per row and layer), for the chunk size and the
 *           waits; its `n` is how many requests the device may keep in flight (the
 *           peer's share of its request queue) and its `have` the most positions the
 *           peer can hold for a session (its context). In every other reply peer_time
 *           is the microseconds the peer computed for the request (version 1 sent
 *           nanoseconds, which overflowed 32 bits at 4.3 s: a long prompt in one VERIFY).
 * `have` in any other reply is how many positions the peer holds for the session. A
 * request that starts beyond it (the peer restarted, or serves another device now) gets
 * status COLLAB_ST_NEED and the device resends from `have`; one that starts below it
 * rolls the peer back (speculative rejection, a resend after a timeout).
 */
#ifndef FW_COLLAB_H
#define FW_COLLAB_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "mqtt_session.h"

#define COLLAB_MAGIC 0x4F43564Bu   /* "KVCO" as little-endian bytes */
#define COLLAB_VERSION 2         /* 2: PING replies carry n and have, replies peer_time in us */
#define COLLAB_HDR 64
#define COLLAB_MAX_ROWS 64         /* rows or verified positions per message */
#define COLLAB_MAX_TOKENS 4096     /* token ids per VERIFY message */

enum { COLLAB_OP_LAYERS = 1, COLLAB_OP_VERIFY = 2, COLLAB_OP_PING = 3 };
enum { COLLAB_ST_OK = 0, COLLAB_ST_NEED = 1, COLLAB_ST_ERROR = 2 };
#define COLLAB_F_TOKEN 1u          /* LAYERS to the last layer: reply the token, no rows */
#define COLLAB_F_SAMPLE 2u         /* VERIFY by sampling (see above) */
#define COLLAB_SAMPLE_MAX 16       /* drafts per VERIFY when sampling */

typedef struct {
    uint8_t op, hidden, status;
    uint32_t session, seq, pos0, n, l0, l1, draft, have, token, accepted, flags, peer_time, peer_ns_call;
    uint32_t data_len;
} collab_msg;

void collab_msg_write(const collab_msg *m, uint8_t out[COLLAB_HDR]);
/* 0, or -1 when the bytes are not a COLLAB_VERSION message whose data fits len. */
int collab_msg_read(collab_msg *m, const uint8_t *in, size_t len);

/* The largest message either side sends or takes for a model of width dim: COLLAB_MAX_ROWS
 * hidden rows or COLLAB_MAX_TOKENS token ids, and at least the device's 64 KiB link probe. */
size_t collab_max_msg(uint32_t dim);
/* Positions to size the hidden codec's work area (nn_kv_work_init) with, so that its
 * scratch holds COLLAB_MAX_ROWS rows of 4 bytes per value. */
uint32_t collab_work_positions(const nn_model *md, uint32_t dim);

/* Each side's speed, for the chunk size: a layer over n rows costs a per call + b per
 * row, fitted to timed runs of COLLAB_CAL_LO and COLLAB_CAL_HI rows (both through the
 * batched path: a single row takes the decode kernels, whose cost says little about a
 * chunk's). */
#define COLLAB_CAL_LO 4u
#define COLLAB_CAL_HI 16u
void collab_cost_fit(uint32_t n_lo, uint64_t t_lo, uint32_t n_hi, uint64_t t_hi, uint32_t *per_call,
                     uint32_t *per_row);

/* c rows made a whole number of the prefill kernels' token tiles: every version-1 SIMD
 * tile takes 4 tokens at a time and the avx512 version-2 one 8, a short last set
 * repeating its last token, so 21 rows cost what 24 do and 5 what 8 do. Multiples of
 * 8 from 12 rows, of 4 below; under 4 rows as they are. */
uint32_t collab_chunk_tiles(uint32_t c);

/* The size of prompt chunk i, `done` rows sent and `left` (> 0) to go, around the base
 * size c. The pipeline also fills (the peer waits for the first chunk) and drains (the
 * device waits for the last): the first chunks ramp up from c/4 (at least 4 rows),
 * doubling, and the last ones shrink, each taking half of what is left, so both ends
 * are short (HAT sizes its chunks dynamically for the same reason). Each is a whole
 * number of tiles but the last, which also takes a remainder under 4 rows rather than
 * leave it a call of its own (no piece is over COLLAB_MAX_ROWS when c is not: checked
 * for every c and prompt length up to 700 by tests/firmware/test_collab_chunk.c).
 * fixed (--chunk N, whole, or the largest messages) keeps c. */
uint32_t collab_chunk_at(uint32_t c, int fixed, uint32_t done, uint32_t left, uint32_t i);

/* The broker side both programs share: keys, the persisted frame counter, the node. */
typedef struct {
    mqtt_node node;
    mqtt_keys keys;
    mqtt_seq seq;
    mqtt_seqfile seqfile;
    mqtt_model_id mid;
    char root[MQTT_TOPIC_MAX / 2];
    uint8_t *inbox;
    size_t inbox_cap;
    uint32_t chunk_size;
    uint64_t sent_bytes, recv_bytes;   /* frames on the link (headers and tags included) */
    uint64_t sent_msgs, recv_msgs;
} collab_net;

/* Connects as the config's node (broker, TLS, credentials, fleet secret, state_dir),
 * accepting frames for model mid only, with an inbox of max_msg bytes. Waits up to
 * wait_ms for the broker. 0, or -1 with err set. */
int collab_net_open(collab_net *n, const fw_config *c, const mqtt_model_id *mid, size_t max_msg,
                    mqtt_node_deliver_fn deliver, void *user, uint32_t wait_ms, char *err, size_t errlen);
void collab_net_close(collab_net *n);

/* Writes m's header into buf[0, COLLAB_HDR) (the data, m->data_len bytes, follows it)
 * and sends the whole to req/<dest> as one sealed payload of type `type`. A payload
 * that fits one chunk is published without waiting for the broker's acknowledgement
 * (pipelining); a larger one goes chunked and waits up to deadline_ms. MQTT status. */
int collab_net_send(collab_net *n, const char *dest, uint8_t type, const collab_msg *m, uint8_t *buf,
                    uint32_t deadline_ms);
/* "N frames in, reason N, ..." for the frames the mqtt layer dropped (diagnostics). */
void collab_net_drops(const collab_net *n, char *out, size_t cap);

/* Counts a received payload of len bytes (link bytes, like collab_net_send). */
void collab_net_count_rx(collab_net *n, size_t len);

int fw_cmd_collab(int argc, char **argv);
int fw_cmd_peer(int argc, char **argv);

#endif
