/*
 * kvmesh: the device program. One binary, several subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "collab.h"
#include "nn.h"
#include "kvmesh_version.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh COMMAND [options]\n"
        "\n"
        "Commands:\n"
        "  run        the device service: prompts over MQTT, cache sharing, telemetry\n"
        "  generate   one-shot text generation from a prompt (no broker needed)\n"
        "  collab     generate together with a peer: split, speculative, early exit\n"
        "  peer       serve collaborating devices (middle layers, verification)\n"
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

int fw_parse_kv_codec(const char *prog, const char *s, nn_kv_opts *out)
{
    if (strcmp(s, "lossy") == 0)
        s = FW_DEFAULT_LOSSY;
    if (nn_kv_parse_codec(s, out) != NN_OK) {
        fprintf(stderr, "%s: unknown KV codec '%s' (raw, lossless, lossy, or k<bits>v<bits>[g<n>][c<n>])\n", prog, s);
        return -1;
    }
    return 0;
}

int fw_parse_layers(const char *prog, const char *opt, const char *s, uint32_t *out, uint32_t max, uint32_t *n)
{
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || v >= NN_MAX_LAYERS || *n >= max || (*end && *end != ',')) {
            fprintf(stderr, "%s: %s needs a comma-separated list of layer numbers (at most %u), not '%s'\n", prog,
                    opt, max, s);
            return -1;
        }
        out[(*n)++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        fprintf(stderr, "%s: %s needs at least one layer\n", prog, opt);
        return -1;
    }
    return 0;
}

int fw_write_file_atomic(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t k = write(fd, buf + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, k < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)k;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
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
    if (strcmp(cmd, "run") == 0)
        return fw_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "collab") == 0)
        return fw_cmd_collab(argc - 1, argv + 1);
    if (strcmp(cmd, "peer") == 0)
        return fw_cmd_peer(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0) {
        printf("kvmesh %s, image format %u, numerics %u and %u, kernels: %s\n", KVMESH_VERSION,
               NN_IMAGE_FORMAT_VERSION, NN_NUMERICS_VERSION, NN_NUMERICS_ACT8, nn_kernels_available());
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
