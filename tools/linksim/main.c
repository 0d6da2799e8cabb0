/*
 * kvmesh-linksim: a TCP proxy that makes a link slow, for tests and benchmarks of the
 * collaboration modes. Put it between a node and the broker:
 *
 *     kvmesh-linksim --listen 18830 --to 127.0.0.1:1883 --profile wifi
 *
 * Every byte read from one side is delivered to the other after a one-way delay, at most
 * at the profile's rate (a serialisation queue per direction). TCP never loses bytes, so
 * loss is modelled as TCP shows it to the application: a segment (1448 bytes) lost with
 * probability p arrives one retransmission timeout (200 ms, Linux's minimum) late, and
 * holds up everything behind it. Kernel netem would be more faithful; this VM's kernel
 * has no netem, and a userspace proxy works everywhere.
 *
 * Profiles (per direction): lan 1000 Mbit/s 1 ms; wifi 50 Mbit/s 10 ms;
 * lte 10 Mbit/s 50 ms 0.5% loss.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 64
#define SEG 1448
#define QUEUE (1u << 22)       /* bytes queued per direction before we stop reading */
#define RTO_NS 200000000ull

typedef struct chunk { uint64_t due; uint32_t off, len; } chunk;

/* One direction: bytes read from `from`, written to `to` when due. */
typedef struct pipe_dir {
    int      from, to;
    uint8_t *buf;                /* ring of QUEUE bytes */
    uint32_t head, used;
    chunk    q[4096];
    uint32_t qh, qn;
    uint64_t wire_free;          /* when the link finishes sending what is queued */
    int      eof;
} pipe_dir;

typedef struct conn { pipe_dir d[2]; int live; } conn;

static double g_delay_ms, g_rate_mbit, g_loss;
static volatile int g_stop;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double uniform(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static void on_signal(int s) { (void)s; g_stop = 1; }

/* Reads what fits into the ring and schedules it segment by segment. */
static int pump_in(pipe_dir *p)
{
    uint8_t tmp[65536];
    uint32_t room = QUEUE - p->used;
    if (room == 0 || p->qn >= 4096 - 64)
        return 0;
    ssize_t n = read(p->from, tmp, room < sizeof tmp ? room : sizeof tmp);
    if (n == 0) {
        p->eof = 1;
        return 0;
    }
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    uint64_t t = now_ns();
    for (ssize_t o = 0; o < n; o += SEG) {
        uint32_t len = (uint32_t)(n - o < SEG ? n - o : SEG);
        uint32_t at = (p->head + p->used) % QUEUE;
        for (uint32_t i = 0; i < len; i++)
            p->buf[(at + i) % QUEUE] = tmp[o + i];
        p->used += len;
        uint64_t start = p->wire_free > t ? p->wire_free : t;
        uint64_t ser = g_rate_mbit > 0 ? (uint64_t)(len * 8.0 / (g_rate_mbit * 1e6) * 1e9) : 0;
        p->wire_free = start + ser;
        uint64_t due = p->wire_free + (uint64_t)(g_delay_ms * 1e6);
        if (g_loss > 0 && uniform() < g_loss)
            due += RTO_NS;
        /* In order: a late segment holds up the ones behind it, as in TCP. */
        if (p->qn) {
            const chunk *last = &p->q[(p->qh + p->qn - 1) % 4096];
            if (due < last->due)
                due = last->due;
        }
        p->q[(p->qh + p->qn) % 4096] = (chunk){ due, at, len };
        p->qn++;
    }
    return 0;
}

/* Writes every chunk that is due. */
static int pump_out(pipe_dir *p, uint64_t t)
{
    while (p->qn) {
        chunk *c = &p->q[p->qh];
        if (c->due > t)
            break;
        uint8_t tmp[SEG];
        for (uint32_t i = 0; i < c->len; i++)
            tmp[i] = p->buf[(c->off + i) % QUEUE];
        ssize_t w = write(p->to, tmp, c->len);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->off = (c->off + (uint32_t)w) % QUEUE;
        c->len -= (uint32_t)w;
        p->head = (p->head + (uint32_t)w) % QUEUE;
        p->used -= (uint32_t)w;
        if (c->len)
            return 0;
        p->qh = (p->qh + 1) % 4096;
        p->qn--;
    }
    if (p->eof && !p->qn)
        shutdown(p->to, SHUT_WR);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmesh-linksim --listen PORT --to HOST:PORT [--profile lan|wifi|lte]\n"
        "                      [--delay-ms D] [--rate-mbit R] [--loss P] [--seed S]\n"
        "\n"
        "A TCP proxy that delays, rate-limits and (as TCP retransmission stalls) loses\n"
        "traffic in each direction. Profiles: lan 1000 Mbit/s 1 ms; wifi 50 Mbit/s 10 ms;\n"
        "lte 10 Mbit/s 50 ms 0.5%% loss. Options after --profile override it. Listens on\n"
        "127.0.0.1. Stops on SIGINT/SIGTERM.\n");
}

int main(int argc, char **argv)
{
    int lport = 0, tport = 0;
    char thost[64] = "127.0.0.1";
    static const struct option opts[] = {
        { "listen", required_argument, 0, 'l' }, { "to", required_argument, 0, 't' },
        { "profile", required_argument, 0, 'p' }, { "delay-ms", required_argument, 0, 'd' },
        { "rate-mbit", required_argument, 0, 'r' }, { "loss", required_argument, 0, 'x' },
        { "seed", required_argument, 0, 's' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': lport = atoi(optarg); break;
        case 't':
            if (sscanf(optarg, "%63[^:]:%d", thost, &tport) != 2) {
                fprintf(stderr, "kvmesh-linksim: --to needs HOST:PORT\n");
                return 2;
            }
            break;
        case 'p':
            if (strcmp(optarg, "lan") == 0) { g_rate_mbit = 1000; g_delay_ms = 1; g_loss = 0; }
            else if (strcmp(optarg, "wifi") == 0) { g_rate_mbit = 50; g_delay_ms = 10; g_loss = 0; }
            else if (strcmp(optarg, "lte") == 0) { g_rate_mbit = 10; g_delay_ms = 50; g_loss = 0.005; }
            else {
                fprintf(stderr, "kvmesh-linksim: unknown profile '%s' (lan, wifi, lte)\n", optarg);
                return 2;
            }
            break;
        case 'd': g_delay_ms = atof(optarg); break;
        case 'r': g_rate_mbit = atof(optarg); break;
        case 'x': g_loss = atof(optarg); break;
        case 's': g_rng = strtoull(optarg, NULL, 10) | 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (lport <= 0 || lport > 65535 || tport <= 0 || tport > 65535 || g_delay_ms < 0 || g_rate_mbit < 0 ||
        g_loss < 0 || g_loss >= 1 || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)lport) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 16)) {
        fprintf(stderr, "kvmesh-linksim: cannot listen on 127.0.0.1:%d: %s\n", lport, strerror(errno));
        return 1;
    }
    struct sockaddr_in up = { .sin_family = AF_INET, .sin_port = htons((uint16_t)tport) };
    if (inet_pton(AF_INET, thost, &up.sin_addr) != 1) {
        fprintf(stderr, "kvmesh-linksim: --to needs an IPv4 address, not '%s'\n", thost);
        return 2;
    }
    fprintf(stderr, "kvmesh-linksim: 127.0.0.1:%d -> %s:%d, %.3g Mbit/s, %.3g ms, loss %.3g\n", lport, thost, tport,
            g_rate_mbit, g_delay_ms, g_loss);
    static conn cs[MAX_CONN];
    while (!g_stop) {
        struct pollfd pf[1 + 4 * MAX_CONN];
        int np = 0, map[1 + 4 * MAX_CONN];
        pf[np] = (struct pollfd){ ls, POLLIN, 0 };
        map[np++] = -1;
        uint64_t t = now_ns(), next = t + 50000000ull;
        for (int i = 0; i < MAX_CONN; i++) {
            if (!cs[i].live)
                continue;
            for (int k = 0; k < 2; k++) {
                pipe_dir *p = &cs[i].d[k];
                if (!p->eof && p->used < QUEUE) {
                    pf[np] = (struct pollfd){ p->from, POLLIN, 0 };
                    map[np++] = i * 2 + k;
                }
                if (p->qn && p->q[p->qh].due < next)
                    next = p->q[p->qh].due;
            }
        }
        int timeout = next > t ? (int)((next - t + 999999) / 1000000) : 0;
        if (poll(pf, (nfds_t)np, timeout) < 0 && errno != EINTR)
            break;
        for (int j = 0; j < np; j++) {
            if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (map[j] < 0) {
                int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                int slot = -1;
                for (int i = 0; i < MAX_CONN && slot < 0; i++)
                    if (!cs[i].live)
                        slot = i;
                int ufd = socket(AF_INET, SOCK_STREAM, 0);
                if (cfd < 0 || slot < 0 || ufd < 0 || connect(ufd, (struct sockaddr *)&up, sizeof up)) {
                    if (cfd >= 0)
                        close(cfd);
                    if (ufd >= 0)
                        close(ufd);
                    continue;
                }
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
                conn *cn = &cs[slot];
                for (int k = 0; k < 2; k++) {
                    if (!cn->d[k].buf)
                        cn->d[k].buf = malloc(QUEUE);
                    cn->d[k].head = cn->d[k].used = cn->d[k].qh = cn->d[k].qn = 0;
                    cn->d[k].wire_free = 0;
                    cn->d[k].eof = 0;
                }
                cn->d[0].from = cfd; cn->d[0].to = ufd;
                cn->d[1].from = ufd; cn->d[1].to = cfd;
                cn->live = 1;
                continue;
            }
            if (pump_in(&cs[map[j] / 2].d[map[j] % 2]))
                cs[map[j] / 2].d[map[j] % 2].eof = 1;
        }
        t = now_ns();
        for (int i = 0; i < MAX_CONN; i++) {
            if (!cs[i].live)
                continue;
            for (int k = 0; k < 2; k++)
                if (pump_out(&cs[i].d[k], t)) {      /* the far side is gone */
                    cs[i].d[k].eof = 1;
                    cs[i].d[k].qn = 0;
                }
            if (cs[i].d[0].eof && cs[i].d[1].eof && !cs[i].d[0].qn && !cs[i].d[1].qn) {
                close(cs[i].d[0].from);
                close(cs[i].d[1].from);
                cs[i].live = 0;
            }
        }
    }
    return 0;
}
