/* GPIO sim backend: chips and lines in a caller-owned struct hal_sim_gpio.
 *
 * It models what a button test needs from the kernel: a line's physical level comes
 * from its output driver, else from the outside world (hal_sim_gpio_drive), else from
 * its bias; logical = physical XOR active_low; requested inputs with edges queue an
 * edge event whenever the logical level changes, like gpiolib's cdev does. */
#include <string.h>

#include "hal_internal.h"

static struct hal_sim_gpio_line *sim_line(struct hal_sim_gpio *sim, unsigned chip,
                                          unsigned offset)
{
    if (sim == NULL || chip >= sim->nchips || offset >= sim->chips[chip].nlines)
        return NULL;
    return &sim->chips[chip].lines[offset];
}

static int phys_level(const struct hal_sim_gpio_line *ln)
{
    if (ln->requested && ln->output)
        return ln->out_phys;
    if (ln->driven)
        return ln->ext_phys;
    return ln->bias == HAL_GPIO_BIAS_PULL_UP;
}

/* After anything that may move the level: queue an edge if a watcher wants it. */
static void sim_settle(struct hal_sim_gpio_line *ln)
{
    int now = phys_level(ln);
    if (now == ln->last_phys)
        return;
    ln->last_phys = (uint8_t)now;
    if (!(ln->requested && ln->edges))
        return;
    int logical = now ^ ln->active_low;
    if (ln->ev_count == HAL_SIM_GPIO_EVENTS) {        /* full: drop the oldest */
        ln->ev_head = (uint8_t)((ln->ev_head + 1) % HAL_SIM_GPIO_EVENTS);
        ln->ev_count--;
        ln->ev_dropped++;
    }
    struct hal_gpio_edge *e = &ln->ev[(ln->ev_head + ln->ev_count) % HAL_SIM_GPIO_EVENTS];
    e->type = logical ? HAL_GPIO_EDGE_RISING : HAL_GPIO_EDGE_FALLING;
    e->ts_ns = 0;
    ln->ev_count++;
}

void hal_sim_gpio_init(struct hal_sim_gpio *sim)
{
    if (sim != NULL)
        memset(sim, 0, sizeof *sim);
}

static hal_status copy_name(char *dst, const char *src)
{
    if (strlen(src) >= HAL_SIM_GPIO_NAME_MAX)
        return HAL_ENAMETOOLONG;
    strcpy(dst, src);
    return HAL_OK;
}

int hal_sim_gpio_add_chip(struct hal_sim_gpio *sim, const char *name, const char *label,
                          unsigned nlines, const char *const *names)
{
    if (sim == NULL || name == NULL || name[0] == '\0' || label == NULL || nlines == 0 ||
        nlines > HAL_SIM_GPIO_MAX_LINES)
        return HAL_EINVAL;
    if (sim->nchips == HAL_SIM_GPIO_MAX_CHIPS)
        return HAL_ENOSPC;
    struct hal_sim_gpio_chip *c = &sim->chips[sim->nchips];
    memset(c, 0, sizeof *c);
    hal_status st = copy_name(c->name, name);
    if (st == HAL_OK)
        st = copy_name(c->label, label);
    for (unsigned i = 0; st == HAL_OK && names != NULL && i < nlines; i++)
        if (names[i] != NULL)
            st = copy_name(c->lines[i].name, names[i]);
    if (st != HAL_OK)
        return st;
    c->nlines = nlines;
    return (int)sim->nchips++;
}

hal_status hal_sim_gpio_set_name(struct hal_sim_gpio *sim, unsigned chip, unsigned offset,
                                 const char *name)
{
    struct hal_sim_gpio_line *ln = sim_line(sim, chip, offset);
    if (ln == NULL || name == NULL)
        return HAL_EINVAL;
    return copy_name(ln->name, name);
}

hal_status hal_sim_gpio_drive(struct hal_sim_gpio *sim, unsigned chip, unsigned offset, int phys)
{
    struct hal_sim_gpio_line *ln = sim_line(sim, chip, offset);
    if (ln == NULL || (phys != 0 && phys != 1))
        return HAL_EINVAL;
    ln->driven = true;
    ln->ext_phys = (uint8_t)phys;
    sim_settle(ln);
    return HAL_OK;
}

hal_status hal_sim_gpio_release_drive(struct hal_sim_gpio *sim, unsigned chip, unsigned offset)
{
    struct hal_sim_gpio_line *ln = sim_line(sim, chip, offset);
    if (ln == NULL)
        return HAL_EINVAL;
    ln->driven = false;
    sim_settle(ln);
    return HAL_OK;
}

hal_status hal_sim_gpio_level(const struct hal_sim_gpio *sim, unsigned chip, unsigned offset,
                              int *phys)
{
    if (sim == NULL || phys == NULL || chip >= sim->nchips ||
        offset >= sim->chips[chip].nlines)
        return HAL_EINVAL;
    *phys = phys_level(&sim->chips[chip].lines[offset]);
    return HAL_OK;
}

/* ---- ops ---------------------------------------------------------------------------- */

static int find_chip(const struct hal_sim_gpio *sim, const char *spec)
{
    for (unsigned i = 0; i < sim->nchips; i++) {
        const struct hal_sim_gpio_chip *c = &sim->chips[i];
        if (strcmp(spec, c->name) == 0 || strcmp(spec, c->label) == 0 ||
            (strncmp(spec, "/dev/", 5) == 0 && strcmp(spec + 5, c->name) == 0))
            return (int)i;
    }
    return -1;
}

static hal_status sim_request(struct hal_gpio_line *l, void *backend,
                              const struct hal_gpio_request *req, unsigned offset,
                              const char *name)
{
    struct hal_sim_gpio *sim = backend;
    if (sim == NULL)
        return HAL_EINVAL;
    int chip = find_chip(sim, req->chip);
    if (chip < 0)
        return HAL_ENODEV;
    struct hal_sim_gpio_chip *c = &sim->chips[chip];
    if (name != NULL) {
        unsigned i;
        for (i = 0; i < c->nlines; i++)
            if (strcmp(c->lines[i].name, name) == 0)
                break;
        if (i == c->nlines)
            return HAL_ENODEV;
        offset = i;
    } else if (offset >= c->nlines) {
        return HAL_ENODEV;
    }
    struct hal_sim_gpio_line *ln = &c->lines[offset];
    if (ln->requested)
        return HAL_EBUSY;
    ln->requested = true;
    ln->output = req->dir == HAL_GPIO_OUTPUT;
    ln->active_low = req->active_low;
    ln->edges = req->edges;
    if (req->bias != HAL_GPIO_BIAS_AS_IS)
        ln->bias = (uint8_t)req->bias;
    ln->ev_head = ln->ev_count = 0;
    if (ln->output) {
        ln->out_phys = (uint8_t)(req->initial ^ req->active_low);
        sim->writes++;
    }
    ln->last_phys = (uint8_t)phys_level(ln);   /* requesting is not an edge */
    l->h.sim.chip = (unsigned)chip;
    l->offset = offset;
    return HAL_OK;
}

static struct hal_sim_gpio_line *line_of(struct hal_gpio_line *l)
{
    return sim_line(l->backend, l->h.sim.chip, l->offset);
}

static void sim_release(struct hal_gpio_line *l)
{
    struct hal_sim_gpio_line *ln = line_of(l);
    if (ln == NULL)
        return;
    ln->requested = ln->output = ln->edges = false;
    ln->active_low = false;
    ln->ev_count = 0;
    sim_settle(ln);
}

static hal_status sim_set(struct hal_gpio_line *l, int value)
{
    struct hal_sim_gpio_line *ln = line_of(l);
    if (ln == NULL)
        return HAL_ESTATE;
    ln->out_phys = (uint8_t)(value ^ ln->active_low);
    ((struct hal_sim_gpio *)l->backend)->writes++;
    sim_settle(ln);
    return HAL_OK;
}

static hal_status sim_get(struct hal_gpio_line *l, int *value)
{
    struct hal_sim_gpio_line *ln = line_of(l);
    if (ln == NULL)
        return HAL_ESTATE;
    *value = phys_level(ln) ^ ln->active_low;
    return HAL_OK;
}

static hal_status sim_read_edge(struct hal_gpio_line *l, struct hal_gpio_edge *ev)
{
    struct hal_sim_gpio_line *ln = line_of(l);
    if (ln == NULL)
        return HAL_ESTATE;
    if (ln->ev_count == 0)
        return HAL_EAGAIN;
    *ev = ln->ev[ln->ev_head];
    ln->ev_head = (uint8_t)((ln->ev_head + 1) % HAL_SIM_GPIO_EVENTS);
    ln->ev_count--;
    return HAL_OK;
}

static hal_status sim_get_fd(struct hal_gpio_line *l, int *fd)
{
    (void)l;
    (void)fd;
    return HAL_ENOTSUP;
}

const struct hal_gpio_ops hal_gpio_sim_ops = {
    .name = "sim",
    .request = sim_request,
    .release = sim_release,
    .set = sim_set,
    .get = sim_get,
    .read_edge = sim_read_edge,
    .get_fd = sim_get_fd,
};
