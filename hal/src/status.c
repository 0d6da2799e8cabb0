#include "hal.h"

const char *hal_strerror(hal_status s)
{
    switch (s) {
    case HAL_OK:           return "ok";
    case HAL_EINVAL:       return "invalid argument or configuration";
    case HAL_ENOENT:       return "no such file: sensor or driver absent";
    case HAL_EIO:          return "I/O error: the kernel refused the operation";
    case HAL_EPARSE:       return "malformed contents";
    case HAL_ERANGE:       return "value outside what the sensor can report";
    case HAL_ENODEV:       return "no such GPIO chip or line";
    case HAL_EBUSY:        return "GPIO line already in use";
    case HAL_EAGAIN:       return "nothing pending";
    case HAL_ENOTSUP:      return "not supported on this board or backend";
    case HAL_ENOSPC:       return "fixed-size table full";
    case HAL_ENAMETOOLONG: return "path or name too long";
    case HAL_ESTATE:       return "not valid in the current state";
    }
    return "unknown hal status";
}
