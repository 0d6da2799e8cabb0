/* hal private helpers: sysfs paths and parsers, shared by the sensor classes and the
 * GPIO backends. Not installed; nothing outside hal/src includes this. */
#ifndef HAL_INTERNAL_H
#define HAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

/* Longest sysfs value we accept. Real values are under 32 bytes; anything longer is a
 * malformed file, not a number to truncate. */
#define HAL_SYSFS_TEXT_MAX 64

/* snprintf into out[cap]; HAL_ENAMETOOLONG instead of truncating. */
hal_status hal_fmt(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy a sim root into dst[HAL_PATH_MAX], without trailing slashes ("/" becomes "").
 * needs_root: NULL or "" is HAL_EINVAL. Otherwise root is ignored and dst = "". */
hal_status hal_root_copy(char *dst, const char *root, int needs_root);

/* Read a whole small file into buf (NUL-terminated, at most cap-1 bytes).
 * HAL_ENOENT (missing, or a path component is not a directory), HAL_EIO (open or read
 * refused), HAL_EPARSE (longer than cap-1). */
hal_status hal_read_text(const char *path, char *buf, size_t cap);

/* Trim trailing whitespace (sysfs ends values with "\n") in place; returns buf. */
char *hal_rtrim(char *buf);

/* Strict parsers for one sysfs value: optional trailing whitespace, nothing else.
 * HAL_EPARSE (empty, junk), HAL_ERANGE (does not fit). */
hal_status hal_parse_i64(const char *text, int64_t *v);
hal_status hal_parse_hex_u32(const char *text, uint32_t *v);   /* "50005", "0x50005" */

/* hal_read_text + hal_parse_i64, with a range check (HAL_ERANGE outside lo..hi). */
hal_status hal_read_int(const char *path, int64_t lo, int64_t hi, int64_t *v);

/* Read a one-line label: trimmed, non-empty, fits cap. HAL_EPARSE otherwise. */
hal_status hal_read_label(const char *path, char *out, size_t cap);

/* List the entries of `dir` whose names start with `prefix`, sorted so that
 * "hwmon2" comes before "hwmon10". Up to `max` names of up to 63 characters.
 * HAL_ENOENT (dir missing), HAL_EIO, HAL_ENOSPC (more than max). */
#define HAL_DIRENT_MAX 64
hal_status hal_list_dir(const char *dir, const char *prefix, char (*names)[HAL_DIRENT_MAX],
                        unsigned max, unsigned *n);

/* GPIO chip spec: "/dev/..." or "gpiochipN" give a path in out (is_label = 0);
 * anything else is a label to look for (is_label = 1, out untouched).
 * HAL_EINVAL (NULL/empty), HAL_ENAMETOOLONG. */
hal_status hal_gpio_chip_path(const char *spec, char *out, size_t cap, int *is_label);

/* How many /dev/gpiochipN the linux backends try when looking for a label. Numbers
 * can have gaps (Pi 5 kernels: gpiochip0, then gpiochip10..13), so all are tried. */
#define HAL_GPIO_LABEL_SCAN 32

#endif
