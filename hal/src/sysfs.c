/* sysfs access and strict value parsing. Everything the sensor classes read goes
 * through hal_read_text, which never returns more than it was given room for. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_internal.h"

hal_status hal_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return HAL_ENAMETOOLONG;
    return HAL_OK;
}

hal_status hal_root_copy(char *dst, const char *root, int needs_root)
{
    dst[0] = '\0';
    if (!needs_root)
        return HAL_OK;
    if (root == NULL || root[0] == '\0')
        return HAL_EINVAL;
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    if (n >= HAL_PATH_MAX)
        return HAL_ENAMETOOLONG;
    memcpy(dst, root, n);
    dst[n] = '\0';
    return HAL_OK;
}

hal_status hal_read_text(const char *path, char *buf, size_t cap)
{
    if (cap < 2)
        return HAL_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? HAL_ENOENT : HAL_EIO;
    size_t len = 0;
    hal_status st = HAL_OK;
    for (;;) {
        /* Read one byte past the room we have, to tell "fits" from "too long". */
        char extra;
        char *dst = len < cap - 1 ? buf + len : &extra;
        size_t want = len < cap - 1 ? cap - 1 - len : 1;
        ssize_t r = read(fd, dst, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            st = HAL_EIO;
            break;
        }
        if (r == 0)
            break;
        if (dst == &extra) {
            st = HAL_EPARSE;
            break;
        }
        len += (size_t)r;
    }
    close(fd);
    if (st == HAL_OK)
        buf[len] = '\0';
    return st;
}

char *hal_rtrim(char *buf)
{
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t' ||
                     buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

static int only_space(const char *p)
{
    for (; *p; p++)
        if (*p != '\n' && *p != ' ' && *p != '\t' && *p != '\r')
            return 0;
    return 1;
}

hal_status hal_parse_i64(const char *text, int64_t *v)
{
    const char *p = text;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return HAL_EPARSE;
    uint64_t acc = 0;
    /* Magnitude limit: INT64_MAX, or INT64_MAX + 1 for a negative number. */
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (acc > (lim - d) / 10u)
            overflow = 1;
        else
            acc = acc * 10u + d;
    }
    if (!only_space(p))
        return HAL_EPARSE;
    if (overflow)
        return HAL_ERANGE;
    if (neg)
        *v = acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc;
    else
        *v = (int64_t)acc;
    return HAL_OK;
}

hal_status hal_parse_hex_u32(const char *text, uint32_t *v)
{
    const char *p = text;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    uint64_t acc = 0;
    int digits = 0, overflow = 0;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else if (*p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A' + 10);
        else
            break;
        acc = acc * 16u + d;
        if (acc > UINT32_MAX)
            overflow = 1, acc = UINT32_MAX;
        digits++;
    }
    if (digits == 0 || !only_space(p))
        return HAL_EPARSE;
    if (overflow)
        return HAL_ERANGE;
    *v = (uint32_t)acc;
    return HAL_OK;
}

hal_status hal_read_int(const char *path, int64_t lo, int64_t hi, int64_t *v)
{
    char buf[HAL_SYSFS_TEXT_MAX];
    int64_t x;
    hal_status st = hal_read_text(path, buf, sizeof buf);
    if (st == HAL_OK)
        st = hal_parse_i64(buf, &x);
    if (st == HAL_OK && (x < lo || x > hi))
        st = HAL_ERANGE;
    if (st == HAL_OK)
        *v = x;
    return st;
}

hal_status hal_read_label(const char *path, char *out, size_t cap)
{
    char buf[HAL_SYSFS_TEXT_MAX];
    hal_status st = hal_read_text(path, buf, sizeof buf);
    if (st != HAL_OK)
        return st;
    hal_rtrim(buf);
    size_t n = strlen(buf);
    if (n == 0 || n >= cap || memchr(buf, '\n', n) != NULL)
        return HAL_EPARSE;
    memcpy(out, buf, n + 1);
    return HAL_OK;
}

/* "hwmon2" < "hwmon10": compare equal-length digit runs by length first. */
static int natural_cmp(const void *a, const void *b)
{
    const char *x = a, *y = b;
    while (*x && *y) {
        if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
            const char *xs = x, *ys = y;
            while (*xs == '0') xs++;
            while (*ys == '0') ys++;
            const char *xe = xs, *ye = ys;
            while (*xe >= '0' && *xe <= '9') xe++;
            while (*ye >= '0' && *ye <= '9') ye++;
            if (xe - xs != ye - ys)
                return (xe - xs) < (ye - ys) ? -1 : 1;
            int c = strncmp(xs, ys, (size_t)(xe - xs));
            if (c)
                return c;
            x = xe, y = ye;
            continue;
        }
        if (*x != *y)
            return (unsigned char)*x < (unsigned char)*y ? -1 : 1;
        x++, y++;
    }
    return (unsigned char)*x - (unsigned char)*y;
}

hal_status hal_list_dir(const char *dir, const char *prefix, char (*names)[HAL_DIRENT_MAX],
                        unsigned max, unsigned *n)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return (errno == ENOENT || errno == ENOTDIR) ? HAL_ENOENT : HAL_EIO;
    size_t plen = strlen(prefix);
    unsigned count = 0;
    hal_status st = HAL_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, plen) != 0)
            continue;
        if (strlen(e->d_name) >= HAL_DIRENT_MAX)
            continue;   /* no name we look for is that long */
        if (count == max) {
            st = HAL_ENOSPC;
            break;
        }
        strcpy(names[count++], e->d_name);
    }
    closedir(d);
    if (st != HAL_OK)
        return st;
    qsort(names, count, HAL_DIRENT_MAX, natural_cmp);
    *n = count;
    return HAL_OK;
}
