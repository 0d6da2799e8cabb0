/*
 * hal_status: the one status type of the hal module. HAL_OK is 0; every error is
 * negative. Included by every hal header; see hal.h for the overview.
 */
#ifndef HAL_STATUS_H
#define HAL_STATUS_H

typedef enum hal_status {
    HAL_OK = 0,
    HAL_EINVAL = -1,        /* bad argument or configuration */
    HAL_ENOENT = -2,        /* sysfs file or directory missing: the sensor is absent */
    HAL_EIO = -3,           /* the kernel refused a read or write */
    HAL_EPARSE = -4,        /* file contents malformed: empty, not a number, junk, too long */
    HAL_ERANGE = -5,        /* parsed, but outside what the sensor can report */
    HAL_ENODEV = -6,        /* GPIO chip or line not found */
    HAL_EBUSY = -7,         /* GPIO line already requested by someone */
    HAL_EAGAIN = -8,        /* nothing pending (no event) */
    HAL_ENOTSUP = -9,       /* the board or backend has no such feature */
    HAL_ENOSPC = -10,       /* a fixed-size table is full */
    HAL_ENAMETOOLONG = -11, /* a path or name does not fit its buffer */
    HAL_ESTATE = -12,       /* not valid now: line not requested, wrong direction */
} hal_status;

/* Short English description of a status; never NULL (unknown codes included). */
const char *hal_strerror(hal_status s);

#endif
