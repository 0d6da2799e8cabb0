/* kvmesh-kv: command-line access to the kvmesh peer layer. main only dispatches; each
 * subcommand parses its own options and prints its own --help. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "kv.h"

volatile int kv_stop;

static void on_signal(int sig)
{
    (void)sig;
    kv_stop = 1;
}

static const kv_cmd commands[] = {
    { "pub", kv_cmd_pub, "announce a cache file and serve it to peers that request it" },
    { "sub", kv_cmd_sub, "listen: print verified announcements and payloads, count drops" },
    { "fetch", kv_cmd_fetch, "find who holds a prefix and fetch it, verified, into a file" },
    { "ask", kv_cmd_ask, "send a prompt to a kvmesh node and print the streamed answer" },
    { "cmd", kv_cmd_cmd, "send a sealed command to a kvmesh node (status, reload, set-mode, ...)" },
    { "bench-seal", kv_cmd_bench_seal, "measure sealing/opening throughput (JSON)" },
    { "inspect", kv_cmd_inspect, "print a KV cache file's header, codec and bits per value (JSON)" },
    { "verify", kv_cmd_verify, "check a KV cache file against a model image, decoding it fully" },
    { "convert", kv_cmd_convert, "re-encode a KV cache file with another codec" },
    { "quality", kv_cmd_quality, "measure codecs: size and continuation quality on a real model (JSON)" },
    { "calibrate", kv_cmd_calibrate, "cross-model reuse: measure which layers a fine-tune must recompute (JSON)" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kvmesh-kv <command> [options]   (kvmesh-kv <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kvmesh-kv: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
