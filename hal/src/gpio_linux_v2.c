/* GPIO linux backend, libgpiod 2.x API (bookworm-backports 2.1, trixie, newer distros).
 *
 * 2.x separates the request from the chip: the chip is opened only to resolve the
 * line and make the request, then closed. Settings, line config and request config
 * are allocated for the request and freed before returning; the only allocation
 * that lives on is a small edge-event buffer for inputs with edges. */
#include <errno.h>
#include <gpiod.h>
#include <string.h>

#include "hal_internal.h"

const int hal_gpio_linux_api = 2;

/* Edges taken per read; hal_gpio_line_read_edge hands them out one at a time. */
#define V2_EVENT_BUFFER 1

static hal_status errno_status(int e)
{
    switch (e) {
    case ENOENT: case ENODEV: case EINVAL: case ENXIO: return HAL_ENODEV;
    case EBUSY:                                       return HAL_EBUSY;
    default:                                          return HAL_EIO;
    }
}

static int chip_has_label(struct gpiod_chip *c, const char *label)
{
    struct gpiod_chip_info *info = gpiod_chip_get_info(c);
    if (info == NULL)
        return 0;
    const char *l = gpiod_chip_info_get_label(info);
    int match = l != NULL && strcmp(l, label) == 0;
    gpiod_chip_info_free(info);
    return match;
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
        if (chip_has_label(c, spec)) {
            *out = c;
            return HAL_OK;
        }
        gpiod_chip_close(c);
    }
    return refused ? errno_status(refused) : HAL_ENODEV;
}

static enum gpiod_line_bias v2_bias(enum hal_gpio_bias b)
{
    switch (b) {
    case HAL_GPIO_BIAS_DISABLED:  return GPIOD_LINE_BIAS_DISABLED;
    case HAL_GPIO_BIAS_PULL_UP:   return GPIOD_LINE_BIAS_PULL_UP;
    case HAL_GPIO_BIAS_PULL_DOWN: return GPIOD_LINE_BIAS_PULL_DOWN;
    case HAL_GPIO_BIAS_AS_IS:     break;
    }
    return GPIOD_LINE_BIAS_AS_IS;
}

static hal_status v2_request(struct hal_gpio_line *l, void *backend,
                             const struct hal_gpio_request *req, unsigned offset,
                             const char *name)
{
    (void)backend;
    struct gpiod_chip *chip = NULL;
    struct gpiod_line_settings *settings = NULL;
    struct gpiod_line_config *lcfg = NULL;
    struct gpiod_request_config *rcfg = NULL;
    struct gpiod_line_request *request = NULL;
    struct gpiod_edge_event_buffer *events = NULL;
    hal_status st = open_chip(req->chip, &chip);
    if (st != HAL_OK)
        return st;

    if (name != NULL) {
        int off = gpiod_chip_get_line_offset_from_name(chip, name);
        if (off < 0) {
            st = errno_status(errno);
            goto out;
        }
        offset = (unsigned)off;
    }

    st = HAL_EIO;   /* the calls below fail only on allocation or a kernel refusal */
    settings = gpiod_line_settings_new();
    lcfg = gpiod_line_config_new();
    rcfg = gpiod_request_config_new();
    if (settings == NULL || lcfg == NULL || rcfg == NULL)
        goto out;
    if (req->dir == HAL_GPIO_OUTPUT) {
        if (gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_OUTPUT) < 0 ||
            gpiod_line_settings_set_output_value(settings, req->initial
                                                 ? GPIOD_LINE_VALUE_ACTIVE
                                                 : GPIOD_LINE_VALUE_INACTIVE) < 0)
            goto out;
    } else {
        if (gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_INPUT) < 0)
            goto out;
        if (req->edges &&
            gpiod_line_settings_set_edge_detection(settings, GPIOD_LINE_EDGE_BOTH) < 0)
            goto out;
    }
    if (gpiod_line_settings_set_bias(settings, v2_bias(req->bias)) < 0)
        goto out;
    gpiod_line_settings_set_active_low(settings, req->active_low);
    if (gpiod_line_config_add_line_settings(lcfg, &offset, 1, settings) < 0)
        goto out;
    gpiod_request_config_set_consumer(rcfg, req->consumer != NULL ? req->consumer : "kvmesh");
    if (req->edges) {
        events = gpiod_edge_event_buffer_new(V2_EVENT_BUFFER);
        if (events == NULL)
            goto out;
    }
    request = gpiod_chip_request_lines(chip, rcfg, lcfg);
    if (request == NULL) {
        st = errno_status(errno);
        goto out;
    }
    l->h.v2.request = request;
    l->h.v2.events = events;
    l->offset = offset;
    events = NULL;
    st = HAL_OK;
out:
    /* libgpiod 2.x does not document its free functions as NULL-safe. */
    if (events != NULL)
        gpiod_edge_event_buffer_free(events);
    if (rcfg != NULL)
        gpiod_request_config_free(rcfg);
    if (lcfg != NULL)
        gpiod_line_config_free(lcfg);
    if (settings != NULL)
        gpiod_line_settings_free(settings);
    gpiod_chip_close(chip);
    return st;
}

static void v2_release(struct hal_gpio_line *l)
{
    gpiod_line_request_release(l->h.v2.request);
    if (l->h.v2.events != NULL)
        gpiod_edge_event_buffer_free(l->h.v2.events);
}

static hal_status v2_set(struct hal_gpio_line *l, int value)
{
    return gpiod_line_request_set_value(l->h.v2.request, l->offset,
                                        value ? GPIOD_LINE_VALUE_ACTIVE
                                              : GPIOD_LINE_VALUE_INACTIVE) < 0
               ? HAL_EIO : HAL_OK;
}

static hal_status v2_get(struct hal_gpio_line *l, int *value)
{
    enum gpiod_line_value v = gpiod_line_request_get_value(l->h.v2.request, l->offset);
    if (v == GPIOD_LINE_VALUE_ERROR)
        return HAL_EIO;
    *value = v == GPIOD_LINE_VALUE_ACTIVE;
    return HAL_OK;
}

static hal_status v2_read_edge(struct hal_gpio_line *l, struct hal_gpio_edge *ev)
{
    int r = gpiod_line_request_wait_edge_events(l->h.v2.request, 0);   /* poll only */
    if (r == 0)
        return HAL_EAGAIN;
    if (r < 0)
        return HAL_EIO;
    if (gpiod_line_request_read_edge_events(l->h.v2.request, l->h.v2.events,
                                            V2_EVENT_BUFFER) < 1)
        return HAL_EIO;
    struct gpiod_edge_event *e = gpiod_edge_event_buffer_get_event(l->h.v2.events, 0);
    if (e == NULL)
        return HAL_EIO;
    ev->type = gpiod_edge_event_get_event_type(e) == GPIOD_EDGE_EVENT_RISING_EDGE
                   ? HAL_GPIO_EDGE_RISING : HAL_GPIO_EDGE_FALLING;
    ev->ts_ns = gpiod_edge_event_get_timestamp_ns(e);
    return HAL_OK;
}

static hal_status v2_get_fd(struct hal_gpio_line *l, int *fd)
{
    int f = gpiod_line_request_get_fd(l->h.v2.request);
    if (f < 0)
        return HAL_EIO;
    *fd = f;
    return HAL_OK;
}

const struct hal_gpio_ops hal_gpio_linux_ops = {
    .name = "linux",
    .request = v2_request,
    .release = v2_release,
    .set = v2_set,
    .get = v2_get,
    .read_edge = v2_read_edge,
    .get_fd = v2_get_fd,
};
