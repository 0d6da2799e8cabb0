/*
 * kvmesh-linksim delays and rate-limits what crosses it: an echo server in this test,
 * reached through the proxy, sees round trips of at least twice the one-way delay and a
 * bulk transfer no faster than the configured rate; bytes arrive intact and in order.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static int echo_port;

static void *echo_main(void *arg)
{
    int ls = *(int *)arg;
    int c = accept(ls, NULL, NULL);
    char buf[65536];
    ssize_t n;
    while (c >= 0 && (n = read(c, buf, sizeof buf)) > 0)
        if (write(c, buf, (size_t)n) != n)
            break;
    if (c >= 0)
        close(c);
    return NULL;
}

static int listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t l = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4) || getsockname(s, (struct sockaddr *)&a, &l))
        return -1;
    *port = ntohs(a.sin_port);
    return s;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void delay_and_rate(void **st)
{
    (void)st;
    int ls = listener(&echo_port);
    assert_true(ls >= 0);
    pthread_t th;
    pthread_create(&th, NULL, echo_main, &ls);
    int pport;
    int tmp = listener(&pport);              /* a free port for the proxy */
    close(tmp);
    char cmd[1024];
    const char *build = getenv("KVMESH_BUILD"), *runner = getenv("KVMESH_TEST_RUNNER");
    snprintf(cmd, sizeof cmd, "exec %s %s/bin/kvmesh-linksim --listen %d --to 127.0.0.1:%d --delay-ms 20 --rate-mbit 8",
             runner ? runner : "", build ? build : "build/host", pport, echo_port);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int s = -1;
    for (int i = 0; i < 100 && s < 0; i++) {         /* wait for the proxy to listen */
        usleep(50000);
        s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)pport) };
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) {
            close(s);
            s = -1;
        }
    }
    assert_true(s >= 0);
    char b[64] = "ping";
    double t0 = now();
    assert_int_equal(write(s, b, 4), 4);
    assert_int_equal(read(s, b, sizeof b), 4);
    double rtt = now() - t0;
    assert_true(rtt >= 0.040);                        /* 20 ms each way */
    assert_true(rtt < 1.0);
    /* 400 KB at 8 Mbit/s takes >= 0.4 s each way (the echo pipelines the two ways). */
    static unsigned char big[400000], back[400000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    t0 = now();
    size_t sent = 0, got = 0;
    while (got < sizeof big) {
        if (sent < sizeof big) {
            ssize_t w = write(s, big + sent, sizeof big - sent < 16384 ? sizeof big - sent : 16384);
            assert_true(w > 0);
            sent += (size_t)w;
        }
        ssize_t r = recv(s, back + got, sizeof back - got, sent < sizeof big ? MSG_DONTWAIT : 0);
        if (r > 0)
            got += (size_t)r;
    }
    double secs = now() - t0;
    assert_memory_equal(big, back, sizeof big);
    assert_true(secs >= 0.4);
    close(s);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    pthread_join(th, NULL);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(delay_and_rate) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
