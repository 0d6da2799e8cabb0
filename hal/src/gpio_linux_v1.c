/* GPIO linux backend, libgpiod 1.x API (Debian 12, Raspberry Pi OS bookworm: 1.6).
 *
 * One request holds the chip open (1.x lines belong to their chip) and the line.
 * Every libgpiod failure sets errno; we map it to a hal status right there. */
#include <errno.h>
#include <gpiod.h>
#include <string.h>
#include <time.h>

#include "hal_internal.h"

const int hal_gpio_linux_api = 1;

static hal_status errno_status(int e)
{
    switch (e) {
    case ENOENT: case ENODEV: case EINVAL: case ENXIO: return HAL_ENODEV;
    case EBUSY:                                       return HAL_EBUSY;
    default:                                          return HAL_EIO;
    }
}

static hal_status open_chip(const char *spec, struct gpiod_chip **out)
{
    char path[64];
    int is_label;
    hal_status st = hal_gpio_chip_path(spec, path, sizeof path, &is_label);
    if (st != HAL_OK)
        return st;
    if (!is_label) {
        *out = gpiod_chip_open(path);
        return *out != NULL ? HAL_OK : errno_status(errno);
    }
    int refused = 0;   /* a chip we may not open could be the one: say so, not ENODEV */
    for (unsigned n = 0; n < HAL_GPIO_LABEL_SCAN; n++) {
        hal_fmt(path, sizeof path, "/dev/gpiochip%u", n);
        struct gpiod_chip *c = gpiod_chip_open(path);
        if (c == NULL) {
            if (errno == EACCES || errno == EPERM)
                refused = errno;
            continue;
        }
        const char *label = gpiod_chip_label(c);
        if (label != NULL && strcmp(label, spec) == 0) {
            *out = c;
            return HAL_OK;
        }
        gpiod_chip_close(c);
    }
    return refused ? errno_status(refused) : HAL_ENODEV;
}

static int request_flags(const struct hal_gpio_request *req)
{
    int flags = req->active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
    switch (req->bias) {
    case HAL_GPIO_BIAS_DISABLED:  flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE; break;
    case HAL_GPIO_BIAS_PULL_UP:   flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP; break;
    case HAL_GPIO_BIAS_PULL_DOWN: flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN; break;
    case HAL_GPIO_BIAS_AS_IS:     break;
    }
    return flags;
}

static hal_status v1_request(struct hal_gpio_line *l, void *backend,
                             const struct hal_gpio_request *req, unsigned offset,
                             const char *name)
{
    (void)backend;
    struct gpiod_chip *chip = NULL;
    hal_status st = open_chip(req->chip, &chip);
    if (st != HAL_OK)
        return st;

    struct gpiod_line *line = name != NULL ? gpiod_chip_find_line(chip, name)
                                           : gpiod_chip_get_line(chip, offset);
    if (line == NULL) {
        /* find_line reports "no such name" as NULL with errno ENOENT. */
        st = errno_status(errno);
        goto fail;
    }
    struct gpiod_line_request_config cfg = {
        .consumer = req->consumer != NULL ? req->consumer : "kvmesh",
        .request_type = req->dir == HAL_GPIO_OUTPUT ? GPIOD_LINE_REQUEST_DIRECTION_OUTPUT
                        : req->edges ? GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES
                                     : GPIOD_LINE_REQUEST_DIRECTION_INPUT,
        .flags = request_flags(req),
    };
    if (gpiod_line_request(line, &cfg, req->initial) < 0) {
        st = errno_status(errno);
        goto fail;
    }
    l->h.v1.chip = chip;
    l->h.v1.line = line;
    l->offset = gpiod_line_offset(line);
    return HAL_OK;
fail:
    gpiod_chip_close(chip);
    return st;
}

static void v1_release(struct hal_gpio_line *l)
{
    gpiod_line_release(l->h.v1.line);
    gpiod_chip_close(l->h.v1.chip);
}

static hal_status v1_set(struct hal_gpio_line *l, int value)
{
    return gpiod_line_set_value(l->h.v1.line, value) < 0 ? HAL_EIO : HAL_OK;
}

static hal_status v1_get(struct hal_gpio_line *l, int *value)
{
    int v = gpiod_line_get_value(l->h.v1.line);
    if (v < 0)
        return HAL_EIO;
    *value = v != 0;
    return HAL_OK;
}

static hal_status v1_read_edge(struct hal_gpio_line *l, struct hal_gpio_edge *ev)
{
    const struct timespec zero = { 0, 0 };   /* poll, never block */
    int r = gpiod_line_event_wait(l->h.v1.line, &zero);
    if (r == 0)
        return HAL_EAGAIN;
    if (r < 0)
        return HAL_EIO;
    struct gpiod_line_event e;
    if (gpiod_line_event_read(l->h.v1.line, &e) < 0)
        return HAL_EIO;
    ev->type = e.event_type == GPIOD_LINE_EVENT_RISING_EDGE ? HAL_GPIO_EDGE_RISING
                                                           : HAL_GPIO_EDGE_FALLING;
    ev->ts_ns = (uint64_t)e.ts.tv_sec * 1000000000u + (uint64_t)e.ts.tv_nsec;
    return HAL_OK;
}

static hal_status v1_get_fd(struct hal_gpio_line *l, int *fd)
{
    int f = gpiod_line_event_get_fd(l->h.v1.line);
    if (f < 0)
        return HAL_EIO;
    *fd = f;
    return HAL_OK;
}

const struct hal_gpio_ops hal_gpio_linux_ops = {
    .name = "linux",
    .request = v1_request,
    .release = v1_release,
    .set = v1_set,
    .get = v1_get,
    .read_edge = v1_read_edge,
    .get_fd = v1_get_fd,
};
