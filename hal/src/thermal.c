/* thermal: /sys/class/thermal/thermal_zone<N>/temp, millidegrees C as a decimal. */
#include <stddef.h>

#include "hal_internal.h"

static hal_status thermal_read_at(const char *root, unsigned zone, int32_t *mc)
{
    char path[HAL_PATH_MAX + 64];
    int64_t v;
    hal_status st = hal_fmt(path, sizeof path, "%s/sys/class/thermal/thermal_zone%u/temp",
                            root, zone);
    if (st == HAL_OK)
        st = hal_read_int(path, HAL_THERMAL_MIN_MC, HAL_THERMAL_MAX_MC, &v);
    if (st == HAL_OK)
        *mc = (int32_t)v;
    return st;
}

static hal_status thermal_linux_read(const struct hal_thermal *t, int32_t *mc)
{
    return thermal_read_at("", t->zone, mc);
}

static hal_status thermal_sim_read(const struct hal_thermal *t, int32_t *mc)
{
    return thermal_read_at(t->root, t->zone, mc);
}

const struct hal_thermal_ops hal_thermal_linux_ops = { "linux", thermal_linux_read };
const struct hal_thermal_ops hal_thermal_sim_ops = { "sim", thermal_sim_read };

hal_status hal_thermal_open(struct hal_thermal *t, const struct hal_thermal_ops *ops,
                            const char *root, unsigned zone)
{
    if (t == NULL || ops == NULL || zone > 255)
        return HAL_EINVAL;
    hal_status st = hal_root_copy(t->root, root, ops == &hal_thermal_sim_ops);
    if (st != HAL_OK)
        return st;
    t->ops = ops;
    t->zone = zone;
    return HAL_OK;
}

hal_status hal_thermal_read(const struct hal_thermal *t, int32_t *mc)
{
    if (t == NULL || t->ops == NULL || mc == NULL)
        return HAL_EINVAL;
    return t->ops->read_mc(t, mc);
}
