/* power: INA3221 rails through sysfs, in the two layouts Jetsons ship.
 *
 *   ina3221-hwmon  /sys/class/hwmon/hwmon<K>/{name,in<C>_input,curr<C>_input,in<C>_label}
 *                  mainline driver, channels 1..3 (in4..in7 are shunt and sum
 *                  channels, not rails). A channel without a label is not wired.
 *   ina3221x-iio   /sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<K>/
 *                  {rail_name_<C>,in_voltage<C>_input,in_current<C>_input}, L4T 32,
 *                  channels 0..2.
 * Both report mV and mA as decimal integers. */
#include <string.h>

#include "hal_internal.h"

#define HWMON_DIR "/sys/class/hwmon"
#define INA3221X_DIR "/sys/bus/i2c/drivers/ina3221x"

/* What an INA3221 can report: bus voltage 0..26 V; shunt +-163.8 mV, which even
 * across a 1 mOhm shunt is under 164 A. Outside that, the file is wrong. */
#define MV_MIN 0
#define MV_MAX 32767
#define MA_ABS_MAX 200000

static hal_status add_rail(struct hal_power *p, const char *dir, unsigned ch, const char *label)
{
    if (p->nrails == HAL_POWER_MAX_RAILS)
        return HAL_ENOSPC;
    struct hal_power_rail *r = &p->rails[p->nrails];
    if (strlen(dir) >= sizeof r->dir || strlen(label) >= sizeof r->label)
        return HAL_ENAMETOOLONG;
    strcpy(r->dir, dir);
    strcpy(r->label, label);
    r->channel = ch;
    p->nrails++;
    return HAL_OK;
}

/* A channel file is <pre><channel><post>, e.g. "in" 1 "_label" or "rail_name_" 0 "". */
struct chan_file { const char *pre, *post; };

/* Label of one channel: the first of the candidate files that exists.
 * HAL_ENOENT when none does (channel not wired). */
static hal_status channel_label(const char *root, const char *dir, const struct chan_file *f,
                                unsigned nf, unsigned ch, char *label)
{
    char path[2 * HAL_PATH_MAX];
    hal_status st = HAL_ENOENT;
    for (unsigned i = 0; i < nf && st == HAL_ENOENT; i++) {
        st = hal_fmt(path, sizeof path, "%s%s/%s%u%s", root, dir, f[i].pre, ch, f[i].post);
        if (st == HAL_OK)
            st = hal_read_label(path, label, HAL_POWER_LABEL_MAX);
    }
    return st;
}

static const struct chan_file hwmon_labels[] = { { "in", "_label" }, { "curr", "_label" } };
static const struct chan_file iio_labels[] = { { "rail_name_", "" } };

static hal_status scan_hwmon(struct hal_power *p, const char *root)
{
    char dir[HAL_PATH_MAX + 64], path[2 * HAL_PATH_MAX];
    char names[32][HAL_DIRENT_MAX];
    unsigned n, found = 0;
    hal_status st = hal_fmt(dir, sizeof dir, "%s" HWMON_DIR, root);
    if (st == HAL_OK)
        st = hal_list_dir(dir, "hwmon", names, 32, &n);
    for (unsigned i = 0; st == HAL_OK && i < n; i++) {
        char name[HAL_POWER_LABEL_MAX], rel[HAL_PATH_MAX];
        st = hal_fmt(path, sizeof path, "%s/%s/name", dir, names[i]);
        if (st != HAL_OK)
            break;
        /* Other hwmon devices (cpu, fans) may lack a name or have odd ones. */
        if (hal_read_label(path, name, sizeof name) != HAL_OK || strcmp(name, "ina3221") != 0)
            continue;
        found++;
        st = hal_fmt(rel, sizeof rel, HWMON_DIR "/%s", names[i]);
        for (unsigned ch = 1; st == HAL_OK && ch <= 3; ch++) {
            char label[HAL_POWER_LABEL_MAX];
            st = channel_label(root, rel, hwmon_labels, 2, ch, label);
            if (st == HAL_OK)
                st = add_rail(p, rel, ch, label);
            else if (st == HAL_ENOENT)
                st = HAL_OK;
        }
    }
    if (st == HAL_OK && found == 0)
        st = HAL_ENOENT;
    return st;
}

static hal_status scan_iio(struct hal_power *p, const char *root)
{
    char base[HAL_PATH_MAX + 64], dir[2 * HAL_PATH_MAX];
    char devs[16][HAL_DIRENT_MAX], iios[4][HAL_DIRENT_MAX];
    unsigned nd, found = 0;
    hal_status st = hal_fmt(base, sizeof base, "%s" INA3221X_DIR, root);
    if (st == HAL_OK)
        st = hal_list_dir(base, "", devs, 16, &nd);
    for (unsigned d = 0; st == HAL_OK && d < nd; d++) {
        unsigned ni = 0;
        st = hal_fmt(dir, sizeof dir, "%s/%s", base, devs[d]);
        if (st != HAL_OK)
            break;
        /* bind, unbind, uevent, module: not directories with iio devices below. */
        st = hal_list_dir(dir, "iio:device", iios, 4, &ni);
        if (st == HAL_ENOENT) {
            st = HAL_OK;
            continue;
        }
        for (unsigned k = 0; st == HAL_OK && k < ni; k++) {
            char rel[HAL_PATH_MAX];
            found++;
            st = hal_fmt(rel, sizeof rel, INA3221X_DIR "/%s/%s", devs[d], iios[k]);
            for (unsigned ch = 0; st == HAL_OK && ch <= 2; ch++) {
                char label[HAL_POWER_LABEL_MAX];
                st = channel_label(root, rel, iio_labels, 1, ch, label);
                if (st == HAL_OK)
                    st = add_rail(p, rel, ch, label);
                else if (st == HAL_ENOENT)
                    st = HAL_OK;
            }
        }
    }
    if (st == HAL_OK && found == 0)
        st = HAL_ENOENT;
    return st;
}

static hal_status power_scan_at(struct hal_power *p, const char *root)
{
    p->nrails = 0;
    hal_status st;
    switch (p->source) {
    case HAL_POWER_NONE:          return HAL_OK;
    case HAL_POWER_INA3221_HWMON: st = scan_hwmon(p, root); break;
    case HAL_POWER_INA3221X_IIO:  st = scan_iio(p, root); break;
    default:                      return HAL_EINVAL;
    }
    if (st != HAL_OK)
        p->nrails = 0;
    return st;
}

static hal_status power_read_at(const struct hal_power *p, const char *root, unsigned i,
                                 struct hal_power_reading *out)
{
    const struct hal_power_rail *r = &p->rails[i];
    int hw = p->source == HAL_POWER_INA3221_HWMON;
    const char *vpre = hw ? "in" : "in_voltage", *cpre = hw ? "curr" : "in_current";
    char path[2 * HAL_PATH_MAX];
    int64_t mv, ma;

    hal_status st = hal_fmt(path, sizeof path, "%s%s/%s%u_input", root, r->dir, vpre, r->channel);
    if (st == HAL_OK)
        st = hal_read_int(path, MV_MIN, MV_MAX, &mv);
    if (st == HAL_OK)
        st = hal_fmt(path, sizeof path, "%s%s/%s%u_input", root, r->dir, cpre, r->channel);
    if (st == HAL_OK)
        st = hal_read_int(path, -MA_ABS_MAX, MA_ABS_MAX, &ma);
    if (st != HAL_OK)
        return st;
    int64_t uw = mv * ma;   /* mV * mA = uW; |uw| < 6.6e9, fits easily */
    out->mv = (int32_t)mv;
    out->ma = (int32_t)ma;
    out->mw = (int32_t)((uw >= 0 ? uw + 500 : uw - 500) / 1000);
    return HAL_OK;
}

static hal_status power_linux_scan(struct hal_power *p) { return power_scan_at(p, ""); }
static hal_status power_sim_scan(struct hal_power *p) { return power_scan_at(p, p->root); }

static hal_status power_linux_read(const struct hal_power *p, unsigned i,
                                   struct hal_power_reading *r)
{
    return power_read_at(p, "", i, r);
}

static hal_status power_sim_read(const struct hal_power *p, unsigned i,
                                 struct hal_power_reading *r)
{
    return power_read_at(p, p->root, i, r);
}

const struct hal_power_ops hal_power_linux_ops = { "linux", power_linux_scan, power_linux_read };
const struct hal_power_ops hal_power_sim_ops = { "sim", power_sim_scan, power_sim_read };

hal_status hal_power_open(struct hal_power *p, const struct hal_power_ops *ops,
                          const char *root, enum hal_power_source source)
{
    if (p == NULL || ops == NULL || source > HAL_POWER_INA3221X_IIO)
        return HAL_EINVAL;
    hal_status st = hal_root_copy(p->root, root, ops == &hal_power_sim_ops);
    if (st != HAL_OK)
        return st;
    p->ops = ops;
    p->source = source;
    p->nrails = 0;
    return ops->scan(p);
}

unsigned hal_power_rail_count(const struct hal_power *p)
{
    return p ? p->nrails : 0;
}

const char *hal_power_rail_label(const struct hal_power *p, unsigned i)
{
    return p && i < p->nrails ? p->rails[i].label : NULL;
}

hal_status hal_power_find(const struct hal_power *p, const char *label, unsigned *i)
{
    if (p == NULL || label == NULL || i == NULL)
        return HAL_EINVAL;
    for (unsigned k = 0; k < p->nrails; k++) {
        if (strcmp(p->rails[k].label, label) == 0) {
            *i = k;
            return HAL_OK;
        }
    }
    return HAL_ENOENT;
}

hal_status hal_power_read(const struct hal_power *p, unsigned i, struct hal_power_reading *r)
{
    if (p == NULL || p->ops == NULL || r == NULL || i >= p->nrails)
        return HAL_EINVAL;
    return p->ops->read(p, i, r);
}

static const char *const source_names[] = { "none", "ina3221-hwmon", "ina3221x-iio" };

hal_status hal_power_source_parse(const char *name, enum hal_power_source *src)
{
    if (name == NULL || src == NULL)
        return HAL_EINVAL;
    for (unsigned k = 0; k < sizeof source_names / sizeof source_names[0]; k++) {
        if (strcmp(name, source_names[k]) == 0) {
            *src = (enum hal_power_source)k;
            return HAL_OK;
        }
    }
    return HAL_EINVAL;
}

const char *hal_power_source_name(enum hal_power_source src)
{
    return (unsigned)src < sizeof source_names / sizeof source_names[0] ? source_names[src] : "?";
}
