/* The per-sender frame counter (the variable half of every nonce) and its stores.
 *
 * Why a persisted reservation rather than only a random base: receivers keep a replay
 * window per sender, so a restarted sender must continue *above* its old counter or its
 * frames would be refused as replays; a random base goes backwards half the time. Boards
 * such as the Pi have no RTC, so time cannot order restarts either. The file store costs
 * one fsync'd write per MQTT_SEQ_WINDOW frames and, after a crash, only skips values. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mqtt.h"

int mqtt_seq_init(mqtt_seq *s, mqtt_seq_reserve_fn reserve, void *user)
{
    if (!s || !reserve) return MQTT_ERR_INVAL;
    s->reserve = reserve;
    s->user = user;
    s->next = s->limit = 0;
    return MQTT_OK;
}

int mqtt_seq_next(mqtt_seq *s, uint64_t *out)
{
    if (!s || !out) return MQTT_ERR_INVAL;
    if (s->next == s->limit) {
        uint64_t base = 0, granted = 0;
        int rc = s->reserve(s->user, MQTT_SEQ_WINDOW, &base, &granted);
        if (rc) return rc;
        if (granted == 0 || base > UINT64_MAX - granted) return MQTT_ERR_EXHAUSTED;
        s->next = base;
        s->limit = base + granted;
    }
    *out = s->next++;
    return MQTT_OK;
}

int mqtt_seqfile_open(mqtt_seqfile *f, const char *path)
{
    if (!f || !path || strlen(path) + 5 > sizeof f->path) return MQTT_ERR_INVAL;
    snprintf(f->path, sizeof f->path, "%s", path);
    return MQTT_OK;
}

static int read_next(const char *path, uint64_t *next)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) { *next = 0; return MQTT_OK; }
        return MQTT_ERR_IO;
    }
    char buf[40];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 16) return MQTT_ERR_IO;   /* a damaged store must not silently restart at 0 */
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 16);
    if (errno || end != buf + 16) return MQTT_ERR_IO;
    *next = v;
    return MQTT_OK;
}

int mqtt_seqfile_reserve(void *seqfile, uint64_t want, uint64_t *base, uint64_t *granted)
{
    mqtt_seqfile *f = seqfile;
    if (!f || !base || !granted || want == 0) return MQTT_ERR_INVAL;
    uint64_t next;
    int rc = read_next(f->path, &next);
    if (rc) return rc;
    if (next > UINT64_MAX - want) return MQTT_ERR_EXHAUSTED;
    char tmp[sizeof f->path + 8], line[24];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    int len = snprintf(line, sizeof line, "%016" PRIx64 "\n", next + want);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return MQTT_ERR_IO;
    bool okw = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    if (close(fd) != 0) okw = false;
    if (!okw || rename(tmp, f->path) != 0) {
        unlink(tmp);
        return MQTT_ERR_IO;
    }
    /* Make the rename itself durable before the range is used. */
    char dir[sizeof f->path];
    snprintf(dir, sizeof dir, "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *base = next;
    *granted = want;
    return MQTT_OK;
}

int mqtt_seq_reserve_random(void *unused, uint64_t want, uint64_t *base, uint64_t *granted)
{
    (void)unused;
    (void)want;
    if (!base || !granted) return MQTT_ERR_INVAL;
    uint64_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) return MQTT_ERR_IO;
    *base = r & ((UINT64_C(1) << 62) - 1);
    *granted = UINT64_C(1) << 62;
    return MQTT_OK;
}
