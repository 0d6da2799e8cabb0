/*
 * Helpers for C tests that need the real models: where they are, and building an
 * image from a llama2.c checkpoint in memory. Missing models fail the test loudly;
 * they are never skipped.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kvtools.h"

/* $KVMESH_MODELS or ../shared/models, and $KVMESH_GOLDEN or ../shared/golden. */
const char *tu_models(void);
const char *tu_golden(void);

/* Path of a file under the models or golden directory; fails the test if missing. */
const char *tu_model_file(const char *rel);
const char *tu_golden_file(const char *rel);

/* Converts <name>/<name>.bin + tok512.bin with the given group into w (finished). */
void tu_build_llama2c(const char *name, uint32_t group, kt_img *w);

/* A random-weight image of the given shape spec (see kvmesh-convert --random). */
void tu_build_random(const char *spec, uint32_t group, uint32_t numerics, uint64_t seed, kt_img *w);

/* Reads the golden tokens file of a model: input tokens, count returned. */
uint32_t tu_golden_tokens(const char *name, uint32_t *in, uint32_t *next, uint32_t max);

#endif
