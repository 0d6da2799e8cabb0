/* Subcommands of the device program. Each returns the process exit status. */
#ifndef FW_CLI_H
#define FW_CLI_H

#include <stdint.h>

int fw_cmd_generate(int argc, char **argv);
int fw_cmd_verify(int argc, char **argv);
int fw_cmd_bench(int argc, char **argv);

/* Shared option parsing helpers: return 0 on success, print the error and return -1. */
int fw_parse_u32(const char *prog, const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
int fw_parse_q16(const char *prog, const char *opt, const char *s, int32_t *out);

#endif
