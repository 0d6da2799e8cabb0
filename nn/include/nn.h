/*
 * nn.h: the kvmesh engine. Integer-only llama-family inference over a memory-mapped
 * model image, with every buffer carved from a caller-provided static arena.
 *
 *   nn_base.h       status codes, fixed-point scales, the arena
 *   nn_fixed.h      integer math (exp, sigmoid, sin/cos, sqrt, requantisation)
 *   nn_sha256.h     SHA-256 for fingerprints and prefix ids
 *   nn_image.h      the model image format and its loader
 *   nn_kernels.h    integer matmul/dot kernels and the kernel-path selector
 *   nn_model.h      model views, sessions, the forward pass
 *   nn_tokenizer.h  BPE tokenizer stored in the image
 *   nn_sampler.h    greedy / temperature / top-p sampling in fixed point
 *   nn_kv.h         KV cache prefix ids, export/import, codec
 *
 * A complete greedy generation:
 *
 *     static nn_model model;
 *     static uint8_t storage[64 << 20] __attribute__((aligned(64)));
 *     nn_image img;                     nn_image_open(&img, "model.kvm");
 *     nn_model_init(&model, &img);
 *     nn_arena a;                       nn_arena_init(&a, storage, sizeof storage);
 *     nn_session_opts o = { .max_seq = 256, .max_batch = 16 };
 *     nn_session s;                     nn_session_init(&s, &model, &o, &a);
 *     uint32_t ids[256], n;             // encode the prompt with BOS
 *     nn_tok_encode(&model.tok, "Once upon a time", 1, 0, ids, 256, &n, tokscratch, sizeof tokscratch);
 *     const int32_t *logits;
 *     nn_session_forward(&s, ids, n, &logits);
 *     for (uint32_t prev = ids[n - 1], next; s.n_pos < 256; prev = next) {
 *         next = nn_argmax_i32(logits, model.cfg.vocab_size);
 *         if (next == model.tok.bos_id || next == model.tok.eos_id) break;
 *         nn_tok_piece p = nn_tok_decode(&model.tok, prev, next);   // print p
 *         nn_session_forward(&s, &next, 1, &logits);
 *     }
 *
 * nn calls no malloc, calloc, realloc or free, and contains no floating point.
 */
#ifndef NN_H
#define NN_H

#include "nn_base.h"
#include "nn_fixed.h"
#include "nn_sha256.h"
#include "nn_image.h"
#include "nn_kernels.h"
#include "nn_tokenizer.h"
#include "nn_model.h"
#include "nn_sampler.h"
#include "nn_kv.h"

#endif
