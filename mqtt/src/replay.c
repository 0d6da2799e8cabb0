/* Per-sender replay window: the highest accepted counter plus a bitmap of the
 * MQTT_REPLAY_BITS counters below it (RFC 4303 / RFC 6479 style). Out-of-order delivery
 * within the window is accepted once; anything older is refused. */
#include <string.h>

#include "mqtt.h"

#define WORDS (MQTT_REPLAY_BITS / 64)

void mqtt_replay_reset(mqtt_replay *w)
{
    memset(w, 0, sizeof *w);
}

int mqtt_replay_check(const mqtt_replay *w, uint64_t seq)
{
    if (!w->any || seq > w->top) return MQTT_OK;
    uint64_t age = w->top - seq;
    if (age >= MQTT_REPLAY_BITS) return MQTT_ERR_REPLAY;
    return (w->bits[age / 64] >> (age % 64)) & 1 ? MQTT_ERR_REPLAY : MQTT_OK;
}

/* Shift the bitmap towards older ages by n bits. */
static void shift_older(mqtt_replay *w, uint64_t n)
{
    if (n >= MQTT_REPLAY_BITS) {
        memset(w->bits, 0, sizeof w->bits);
        return;
    }
    unsigned words = (unsigned)(n / 64), bits = (unsigned)(n % 64);
    for (int i = WORDS - 1; i >= 0; i--) {
        uint64_t v = 0;
        int src = i - (int)words;
        if (src >= 0) {
            v = w->bits[src] << bits;
            if (bits && src > 0) v |= w->bits[src - 1] >> (64 - bits);
        }
        w->bits[i] = v;
    }
}

void mqtt_replay_mark(mqtt_replay *w, uint64_t seq)
{
    if (!w->any) {
        memset(w->bits, 0, sizeof w->bits);
        w->any = true;
        w->top = seq;
    } else if (seq > w->top) {
        shift_older(w, seq - w->top);
        w->top = seq;
    }
    uint64_t age = w->top - seq;
    if (age < MQTT_REPLAY_BITS) w->bits[age / 64] |= (uint64_t)1 << (age % 64);
}
