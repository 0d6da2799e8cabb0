/* kvmesh-kv: shared declarations. main.c dispatches subcommands from a table; each
 * subcommand lives in its own file (net.c: pub, sub, fetch; bench.c: bench-seal; cache.c:
 * inspect, verify, convert, quality) and has
 * the signature of kv_cmd_fn. Add a subcommand by adding a file and a table row. */
#ifndef KV_TOOL_H
#define KV_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mqtt.h"
#include "mqtt_session.h"

typedef int (*kv_cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    kv_cmd_fn fn;
    const char *summary;
} kv_cmd;

/* Connection, identity and sealing options shared by the network subcommands. */
typedef struct {
    const char *host, *node, *fleet, *root, *secret_file, *user, *pass, *pass_file;
    const char *ca, *cert, *key, *state_file;
    int port, protocol, cipher, retries, keepalive;
    bool tls, json, quiet;
    uint32_t chunk_size, connect_timeout_ms;
    int zstd_level;
    /* storage behind the pointers above */
    char root_buf[MQTT_TOPIC_MAX / 2], node_buf[MQTT_NODE_ID_MAX + 1], pass_buf[128];
    mqtt_keys keys;
    mqtt_seq seq;
    mqtt_seqfile seqfile;
} kv_net_opts;

/* Help text for the shared options. */
extern const char kv_net_usage[];

/* Consumes a shared option at argv[*i] (and its value). Returns 1 if consumed, 0 if not
 * a shared option, -1 on a bad value (message printed). */
int kv_net_opt(kv_net_opts *o, int argc, char **argv, int *i);
void kv_net_defaults(kv_net_opts *o);
/* Loads the secret, sets up the counter, fills a node config. 0 or -1 (message printed). */
int kv_net_setup(kv_net_opts *o, mqtt_node_cfg *cfg);
/* Prints node statistics as one JSON object (no newline). */
void kv_print_stats(FILE *f, const mqtt_node *n);

/* Parse "a:b" into a half-open range. 0 or -1. */
int kv_parse_range(const char *s, uint32_t *a, uint32_t *b);
int kv_parse_u64(const char *s, uint64_t *out);
double kv_now_s(void);

extern volatile int kv_stop;   /* set by SIGINT/SIGTERM */

int kv_cmd_pub(int argc, char **argv);
int kv_cmd_sub(int argc, char **argv);
int kv_cmd_fetch(int argc, char **argv);
int kv_cmd_bench_seal(int argc, char **argv);
/* ask.c: talk to a running kvmesh node (requests, commands) */
int kv_cmd_ask(int argc, char **argv);
int kv_cmd_cmd(int argc, char **argv);
/* cache.c: KV cache files against an image (need the engine) */
int kv_cmd_inspect(int argc, char **argv);
int kv_cmd_verify(int argc, char **argv);
int kv_cmd_convert(int argc, char **argv);
int kv_cmd_quality(int argc, char **argv);
int kv_cmd_calibrate(int argc, char **argv);

#endif
