/* throttle: the Raspberry Pi firmware's get_throttled word.
 *
 * The kernel's raspberrypi-firmware driver exposes it as a sysfs attribute of the
 * firmware device, printed with "%x\n" (bare hex). The device's path depends on the
 * SoC's device tree (Pi 4: soc/soc:firmware, Pi 5: soc@107c000000/...:firmware), so
 * after the board's path we look at every device bound to the driver. */
#include <string.h>

#include "hal_internal.h"

#define FW_DRIVER_DIR "/sys/bus/platform/drivers/raspberrypi-firmware"

void hal_throttle_decode(uint32_t raw, struct hal_throttle_state *st)
{
    st->raw = raw;
    st->now.under_voltage = raw & (1u << 0);
    st->now.freq_capped = raw & (1u << 1);
    st->now.throttled = raw & (1u << 2);
    st->now.soft_temp_limit = raw & (1u << 3);
    st->since_boot.under_voltage = raw & (1u << 16);
    st->since_boot.freq_capped = raw & (1u << 17);
    st->since_boot.throttled = raw & (1u << 18);
    st->since_boot.soft_temp_limit = raw & (1u << 19);
}

static hal_status read_word(const char *path, uint32_t *raw)
{
    char buf[HAL_SYSFS_TEXT_MAX];
    hal_status st = hal_read_text(path, buf, sizeof buf);
    if (st == HAL_OK)
        st = hal_parse_hex_u32(buf, raw);
    return st;
}

static hal_status throttle_read_at(const char *root, const struct hal_throttle *t,
                                   struct hal_throttle_state *out)
{
    char path[2 * HAL_PATH_MAX];
    uint32_t raw;
    hal_status st;

    if (!t->enabled)
        return HAL_ENOTSUP;
    st = hal_fmt(path, sizeof path, "%s%s", root, t->path);
    if (st == HAL_OK)
        st = read_word(path, &raw);
    if (st == HAL_ENOENT) {
        char dir[HAL_PATH_MAX + 64];
        char names[16][HAL_DIRENT_MAX];
        unsigned n = 0;
        st = hal_fmt(dir, sizeof dir, "%s" FW_DRIVER_DIR, root);
        if (st == HAL_OK)
            st = hal_list_dir(dir, "", names, 16, &n);
        if (st == HAL_OK)
            st = HAL_ENOENT;
        /* Entries are the bound devices plus bind/unbind/uevent/module, which have no
         * get_throttled below them. */
        for (unsigned i = 0; i < n && st == HAL_ENOENT; i++) {
            st = hal_fmt(path, sizeof path, "%s/%s/get_throttled", dir, names[i]);
            if (st == HAL_OK)
                st = read_word(path, &raw);
        }
    }
    if (st == HAL_OK)
        hal_throttle_decode(raw, out);
    return st;
}

static hal_status throttle_linux_read(const struct hal_throttle *t, struct hal_throttle_state *s)
{
    return throttle_read_at("", t, s);
}

static hal_status throttle_sim_read(const struct hal_throttle *t, struct hal_throttle_state *s)
{
    return throttle_read_at(t->root, t, s);
}

const struct hal_throttle_ops hal_throttle_linux_ops = { "linux", throttle_linux_read };
const struct hal_throttle_ops hal_throttle_sim_ops = { "sim", throttle_sim_read };

hal_status hal_throttle_open(struct hal_throttle *t, const struct hal_throttle_ops *ops,
                             const char *root, const char *path)
{
    if (t == NULL || ops == NULL)
        return HAL_EINVAL;
    int enabled = path != NULL && path[0] != '\0';
    if (enabled && strncmp(path, "/sys/", 5) != 0)
        return HAL_EINVAL;
    if (enabled && strlen(path) >= sizeof t->path)
        return HAL_ENAMETOOLONG;
    hal_status st = hal_root_copy(t->root, root, ops == &hal_throttle_sim_ops);
    if (st != HAL_OK)
        return st;
    t->ops = ops;
    t->enabled = enabled;
    strcpy(t->path, enabled ? path : "");
    return HAL_OK;
}

hal_status hal_throttle_read(const struct hal_throttle *t, struct hal_throttle_state *st)
{
    if (t == NULL || t->ops == NULL || st == NULL)
        return HAL_EINVAL;
    return t->ops->read(t, st);
}
