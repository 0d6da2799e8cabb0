/*
 * kvmesh: the device program. One binary, several subcommands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh COMMAND [options]\n"
        "\n"
        "Commands:\n"
        "  generate   one-shot text generation from a prompt (no broker needed)\n"
        "  bench      prefill and decode speed against the memory-bandwidth limit (JSON)\n"
        "  verify     check an image's fingerprint and print its identity\n"
        "  version    print version, numerics version and kernel paths\n"
        "\n"
        "Run 'kvmesh COMMAND --help' for a command's options.\n");
}

int fw_parse_u32(const char *prog, const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s needs an integer in %u..%u, not '%s'\n", prog, opt, lo, hi, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int fw_parse_q16(const char *prog, const char *opt, const char *s, int32_t *out)
{
    if (nn_parse_q16(s, out) != NN_OK) {
        fprintf(stderr, "%s: %s needs a non-negative decimal number such as 0.9, not '%s'\n", prog, opt, s);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "generate") == 0)
        return fw_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return fw_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return fw_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0) {
        printf("kvmesh %s, image format %u, numerics %u, kernels: %s\n", KVMESH_VERSION, NN_IMAGE_FORMAT_VERSION,
               NN_NUMERICS_VERSION, nn_kernels_available());
        return 0;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "kvmesh: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
