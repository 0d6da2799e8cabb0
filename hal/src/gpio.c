/* GPIO: backend-independent checks around the ops tables, and spec parsing. */
#include <string.h>

#include "hal_internal.h"

hal_status hal_gpio_parse_line(const char *spec, unsigned *offset, const char **name)
{
    if (spec == NULL || spec[0] == '\0' || offset == NULL || name == NULL)
        return HAL_EINVAL;
    unsigned long v = 0;
    const char *p = spec;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10u + (unsigned)(*p - '0');
        if (v > 65535u)
            return HAL_EINVAL;
    }
    if (*p != '\0') {           /* not all digits: a line name */
        *name = spec;
        return HAL_OK;
    }
    *offset = (unsigned)v;
    *name = NULL;
    return HAL_OK;
}

hal_status hal_gpio_chip_path(const char *spec, char *out, size_t cap, int *is_label)
{
    if (spec == NULL || spec[0] == '\0')
        return HAL_EINVAL;
    if (spec[0] == '/') {
        *is_label = 0;
        return hal_fmt(out, cap, "%s", spec);
    }
    if (strncmp(spec, "gpiochip", 8) == 0 && spec[8] != '\0' &&
        strspn(spec + 8, "0123456789") == strlen(spec + 8)) {
        *is_label = 0;
        return hal_fmt(out, cap, "/dev/%s", spec);
    }
    *is_label = 1;
    return HAL_OK;
}

hal_status hal_gpio_line_request(struct hal_gpio_line *l, const struct hal_gpio_ops *ops,
                                 void *backend, const struct hal_gpio_request *req)
{
    if (l == NULL || ops == NULL || req == NULL || req->chip == NULL || req->chip[0] == '\0')
        return HAL_EINVAL;
    if (req->dir != HAL_GPIO_INPUT && req->dir != HAL_GPIO_OUTPUT)
        return HAL_EINVAL;
    if (req->initial != 0 && req->initial != 1)
        return HAL_EINVAL;
    if (req->bias > HAL_GPIO_BIAS_PULL_DOWN)
        return HAL_EINVAL;
    if (req->edges && req->dir != HAL_GPIO_INPUT)
        return HAL_EINVAL;
    unsigned offset = 0;
    const char *name = NULL;
    hal_status st = hal_gpio_parse_line(req->line, &offset, &name);
    if (st != HAL_OK)
        return st;

    memset(l, 0, sizeof *l);
    st = ops->request(l, backend, req, offset, name);
    if (st != HAL_OK) {
        memset(l, 0, sizeof *l);
        return st;
    }
    l->ops = ops;
    l->backend = backend;
    l->dir = req->dir;
    l->edges = req->edges;
    l->requested = true;
    return HAL_OK;
}

void hal_gpio_line_release(struct hal_gpio_line *l)
{
    if (l == NULL || !l->requested || l->ops == NULL)
        return;
    l->ops->release(l);
    memset(l, 0, sizeof *l);
}

hal_status hal_gpio_line_set(struct hal_gpio_line *l, int value)
{
    if (l == NULL || !l->requested || l->dir != HAL_GPIO_OUTPUT)
        return HAL_ESTATE;
    return l->ops->set(l, value != 0);
}

hal_status hal_gpio_line_get(struct hal_gpio_line *l, int *value)
{
    if (value == NULL)
        return HAL_EINVAL;
    if (l == NULL || !l->requested)
        return HAL_ESTATE;
    return l->ops->get(l, value);
}

hal_status hal_gpio_line_read_edge(struct hal_gpio_line *l, struct hal_gpio_edge *ev)
{
    if (ev == NULL)
        return HAL_EINVAL;
    if (l == NULL || !l->requested || !l->edges)
        return HAL_ESTATE;
    return l->ops->read_edge(l, ev);
}

hal_status hal_gpio_line_fd(struct hal_gpio_line *l, int *fd)
{
    if (fd == NULL)
        return HAL_EINVAL;
    if (l == NULL || !l->requested || !l->edges)
        return HAL_ESTATE;
    return l->ops->get_fd(l, fd);
}
