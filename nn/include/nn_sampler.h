/*
 * nn_sampler.h: next-token choice in fixed point: greedy, temperature, and top-p
 * (nucleus), with a seeded xorshift64* generator. Deterministic on every platform.
 *
 * Temperature and top-p are Q16 (65536 = 1.0); nn_parse_q16 turns "0.9" into 58982
 * without floating point.
 *
 *     nn_sampler sp;
 *     nn_sampler_init(&sp, vocab, temp_q16, topp_q16, seed, &arena);
 *     uint32_t next = nn_sampler_sample(&sp, logits);
 */
#ifndef NN_SAMPLER_H
#define NN_SAMPLER_H

#include <stdint.h>
#include "nn_base.h"

typedef struct nn_prob_index {
    int32_t  p;        /* Q30 */
    uint32_t id;
} nn_prob_index;

typedef struct nn_sampler {
    uint32_t vocab;
    int32_t  temp_q16;    /* 0: greedy */
    int32_t  topp_q16;    /* <= 0 or >= 65536: no nucleus cut */
    uint64_t rng;
    int32_t       *probs; /* [vocab] Q30 */
    int32_t       *probs2;/* [vocab] Q30: the draft distribution when verifying */
    nn_prob_index *cand;  /* [vocab] top-p candidates */
} nn_sampler;

/* Carves scratch from a. Returns NN_OK, NN_E_ARG or NN_E_NOMEM. seed 0 is allowed. */
nn_status nn_sampler_init(nn_sampler *s, uint32_t vocab, int32_t temp_q16, int32_t topp_q16,
                          uint64_t seed, nn_arena *a);

/* Bytes nn_sampler_init carves. */
size_t nn_sampler_arena_bytes(uint32_t vocab);

/* Picks the next token from Q16 logits [vocab]. */
uint32_t nn_sampler_sample(nn_sampler *s, const int32_t *logits);

/*
 * Speculative decoding's accept/reject step for one drafted token. target and draft are
 * the full model's and the drafter's Q16 logits at the same position. Greedy sampler:
 * accepted iff the target's argmax is the draft. Otherwise, with P and Q the softmaxes at
 * the sampler's temperature (no top-p): accepted with probability min(1, P(draft) /
 * Q(draft)); on rejection *correction is drawn from max(0, P - Q), renormalised, which
 * keeps the output distributed exactly as the target's. Returns 1 if accepted, else 0
 * (and *correction is set; on acceptance it is the draft).
 */
int nn_sampler_verify(nn_sampler *s, const int32_t *target, const int32_t *draft, uint32_t token,
                      uint32_t *correction);

/* Index of the largest value; the lowest index wins ties. n > 0. */
uint32_t nn_argmax_i32(const int32_t *v, uint32_t n);

/* Next 32 random bits (xorshift64*, as llama2.c). */
uint32_t nn_rng_u32(uint64_t *state);

/*
 * Parses a non-negative decimal ("0.9", "1", ".25", "2.5e-1" is not accepted) into Q16,
 * rounding to nearest. Returns NN_OK or NN_E_ARG for anything else or a value >= 32768.
 */
nn_status nn_parse_q16(const char *s, int32_t *out);

#endif
