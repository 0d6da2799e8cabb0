/* Subcommands of the device program. Each returns the process exit status. */
#ifndef FW_CLI_H
#define FW_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

int fw_cmd_generate(int argc, char **argv);
int fw_cmd_verify(int argc, char **argv);
int fw_cmd_bench(int argc, char **argv);
int fw_cmd_run(int argc, char **argv);

/* Shared option parsing helpers: return 0 on success, print the error and return -1. */
int fw_parse_u32(const char *prog, const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
int fw_parse_q16(const char *prog, const char *opt, const char *s, int32_t *out);
/* The lossy KV mode that "lossy" names: 3-bit keys per channel over 128 positions,
 * 2-bit values per channel over 128 positions (2.7 bits per value on stories260K with
 * same_top1 0.985; see README). */
#define FW_DEFAULT_LOSSY "k3v2g128c128"

/* KV codec names: raw, lossless, lossy (the default lossy mode), k<b>v<b>[g<n>][c<n>]. */
int fw_parse_kv_codec(const char *prog, const char *s, nn_kv_opts *out);
/* A comma-separated list of layer numbers (at most max). 0, or -1 (message printed). */
int fw_parse_layers(const char *prog, const char *opt, const char *s, uint32_t *out, uint32_t max, uint32_t *n);
/* Writes a file through a temporary file, fsync and rename. 0, or -1 with err set. */
int fw_write_file_atomic(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
