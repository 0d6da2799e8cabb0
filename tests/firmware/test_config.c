/* The service configuration: the commented example parses and equals the defaults;
 * every kind of mistake is refused with the file, line, section and key; a reload takes
 * over the live keys and names the ones that need a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "hal.h"
#include "mqtt_session.h"

static char path[64];

static void write_conf(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **st)
{
    (void)st;
    snprintf(path, sizeof path, "/tmp/kvmesh-test-config.%ld.conf", (long)getpid());
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    unlink(path);
    return 0;
}

static void test_example_is_the_defaults(void **st)
{
    (void)st;
    fw_config d, e;
    char err[512];
    fw_config_defaults(&d);
    if (fw_config_load(&e, FW_TOP "/firmware/kvmesh.conf.example", err, sizeof err)) fail_msg("%s", err);
    /* The example leaves the host-dependent id commented out. */
    assert_string_equal(e.node_id, d.node_id);
    assert_string_equal(e.fleet, "lab");
    assert_int_equal(e.mode, FW_MODE_CACHE_SHARE);
    assert_string_equal(e.host, "127.0.0.1");
    assert_int_equal(e.port, 1883);
    assert_false(e.tls);
    assert_int_equal(e.store_max_bytes, 256ull << 20);
    assert_int_equal(e.publish, FW_PUBLISH_SYSTEM);
    assert_int_equal(e.codec.codec, NN_KV_LOSSLESS);
    assert_int_equal(e.queue, 8);
    assert_int_equal(e.temp_q16, 65536);
    assert_int_equal(e.top_p_q16, 58982);
    /* Board defaults come from the board description. */
    const struct hal_board *b = hal_board();
    assert_int_equal(e.thermal_soft_mc, b->thermal_soft_mc);
    assert_string_equal(e.led_line, b->led_line);
    /* Every field the example sets equals the default (the example documents them). */
    char why[256];
    fw_config_apply_reload(&d, &e, why, sizeof why);
    assert_string_equal(why, "");
}

static void test_values(void **st)
{
    (void)st;
    write_conf("[node]\nid = pi4-a\nmode = standalone\n"
               "[broker]\nurl = mqtts://broker.lan\nca_file = /etc/ca.crt\nprotocol = 3.1.1\n"
               "[cache]\nmax_bytes = 64K\ncodec = lossy\npublish = all\n"
               "[requests]\ntemp = 0\ntop_p = 1\n[telemetry]\nha_discovery = no\n");
    fw_config c;
    char err[512];
    if (fw_config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(c.node_id, "pi4-a");
    assert_int_equal(c.mode, FW_MODE_STANDALONE);
    assert_true(c.tls);
    assert_string_equal(c.host, "broker.lan");
    assert_int_equal(c.port, 8883);
    assert_int_equal(c.protocol, MQTT_PROTO_V311);
    assert_int_equal(c.store_max_bytes, 65536);
    assert_int_equal(c.codec.codec, NN_KV_LOSSY);
    assert_int_equal(c.codec.k_bits, 3);
    assert_int_equal(c.publish, FW_PUBLISH_ALL);
    assert_int_equal(c.temp_q16, 0);
    assert_int_equal(c.top_p_q16, 65536);
    assert_false(c.ha_discovery);
    write_conf("[broker]\nurl = mqtt://[::1]:1999\n");
    if (fw_config_load(&c, path, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 1999);
}

/* Each bad file is refused, and the message names what it must. */
static void test_errors_name_line_and_key(void **st)
{
    (void)st;
    static const struct { const char *text, *want; } cases[] = {
        { "[node]\nid = pi4 a\n", ":2: [node] id: needs 1..31" },
        { "[node]\nfleet = x\nmode = split\n", ":3: [node] mode: needs standalone or cache-share" },
        { "[nodes]\nid = a\n", ":2: [nodes] id: unknown section" },
        { "[node]\nname = a\n", ":2: [node] name: unknown key" },
        { "[cache]\n\n; c\nmax_bytes = 12X\n", ":4: [cache] max_bytes: needs a byte count" },
        { "[cache]\nmax_entries = 0\n", ":2: [cache] max_entries: needs an integer in 1..65536" },
        { "[cache]\nmax_entries = -5\n", ":2: [cache] max_entries" },
        { "[cache]\ncodec = k9v9\n", ":2: [cache] codec: needs raw, lossless" },
        { "[cache]\npublish = everything\n", ":2: [cache] publish: needs system or all" },
        { "[broker]\nurl = http://x\n", ":2: [broker] url: needs mqtt://" },
        { "[broker]\nurl = mqtt://h:99999\n", ":2: [broker] url: port must be 1..65535" },
        { "[broker]\nurl = mqtt://\n", ":2: [broker] url: needs a host name" },
        { "[requests]\ntemp = 2.5\n", ":2: [requests] temp: needs a decimal number" },
        { "[telemetry]\nha_discovery = maybe\n", ":2: [telemetry] ha_discovery: needs true or false" },
        { "[gpio]\nbutton = launch\n", ":2: [gpio] button: needs board, run-prompt" },
        { "[node]\njust words\n", ":2: not a 'key = value' line" },
        { "[node\nid = a\n", ":1: not a 'key = value' line" },
        { "[broker]\nurl = mqtts://h\n", "[broker] ca_file is required with an mqtts:// url" },
        { "[broker]\ncert_file = /c\n", "[broker] url is mqtt:// but TLS files are set" },
        { "[board]\nthermal_soft_mc = 90000\nthermal_hard_mc = 80000\n", "[board] thermal_soft_mc must be below" },
        { "[board]\nbackend = sim\n", "[board] sysfs_root is required with backend = sim" },
        { "[broker]\npassword_file = /nonexistent/pw\n", "[broker] password_file: cannot read /nonexistent/pw" },
        { "[requests]\nmax_prompt_bytes = 100000\n", "[requests] max_prompt_bytes must be at most max_request_bytes" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_conf(cases[i].text);
        fw_config c;
        char err[512];
        if (fw_config_load(&c, path, err, sizeof err) == 0) fail_msg("accepted bad config #%zu", i);
        if (!strstr(err, cases[i].want) || strncmp(err, path, strlen(path)) != 0)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].want);
    }
    /* The first of several errors is the one reported. */
    write_conf("[cache]\nmax_entries = 0\n[node]\nmode = x\n");
    fw_config c;
    char err[512];
    assert_int_equal(fw_config_load(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2: [cache] max_entries"));
    /* A missing file. */
    assert_int_equal(fw_config_load(&c, "/nonexistent/kvmesh.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read the configuration"));
}

static void test_reload_live_and_restart(void **st)
{
    (void)st;
    fw_config cur, next;
    char err[512], why[256];
    write_conf("[node]\nid = a\n");
    assert_int_equal(fw_config_load(&cur, path, err, sizeof err), 0);
    write_conf("[node]\nid = b\nmode = standalone\n[cache]\npublish = all\ncodec = raw\n[model]\nthreads = 2\n"
               "[telemetry]\nperiod_s = 3\n");
    assert_int_equal(fw_config_load(&next, path, err, sizeof err), 0);
    fw_config_apply_reload(&cur, &next, why, sizeof why);
    assert_int_equal(cur.mode, FW_MODE_STANDALONE);
    assert_int_equal(cur.publish, FW_PUBLISH_ALL);
    assert_int_equal(cur.codec.codec, NN_KV_RAW);
    assert_string_equal(cur.codec_name, "raw");
    assert_int_equal(cur.period_s, 3);
    assert_string_equal(cur.node_id, "a");        /* needs a restart: kept */
    assert_int_equal(cur.threads, 0);
    assert_string_equal(why, "[node] id, [model] threads");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_is_the_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors_name_line_and_key),
        cmocka_unit_test(test_reload_live_and_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
