#!/bin/sh
# The libgpiod 2.x backend compiles, with the target's compiler and the project's
# warnings, against libgpiod 2.x headers (Debian 12 has 1.6; tools/setup.sh unpacks
# libgpiod-dev 2.x from bookworm-backports into $HAL_GPIOD2_DIR). Linking is not
# needed: the object's undefined symbols show it calls the 2.x API.
. "$(dirname "$0")/../lib/tap.sh"
: "${HAL_TEST_CC:?run through make test}" "${HAL_TEST_NM:?}" "${HAL_GPIOD2_DIR:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
inc="$HAL_GPIOD2_DIR/usr/include"
pc=$(ls "$HAL_GPIOD2_DIR"/usr/lib/*/pkgconfig/libgpiod.pc 2>/dev/null | head -1)

if [ ! -f "$inc/gpiod.h" ] || [ -z "$pc" ]; then
    fail "libgpiod 2.x headers missing under $HAL_GPIOD2_DIR: run tools/setup.sh"
    done_testing
fi
ver=$(sed -n 's/^Version: *//p' "$pc")
case "$ver" in 2.*) ok "headers are libgpiod $ver" ;; *) fail "headers are libgpiod '$ver', not 2.x" ;; esac

# shellcheck disable=SC2086
check "gpio_linux_v2.c compiles against libgpiod $ver with $HAL_TEST_CC" \
    $HAL_TEST_CC $HAL_TEST_CFLAGS -I"$inc" -c "$top/hal/src/gpio_linux_v2.c" -o "$TMPD/v2.o"
undef=$($HAL_TEST_NM -u "$TMPD/v2.o" 2>/dev/null)
for sym in gpiod_chip_request_lines gpiod_line_settings_new gpiod_line_request_set_value \
           gpiod_line_request_read_edge_events gpiod_chip_get_line_offset_from_name; do
    case "$undef" in *"$sym"*) ok "v2 object calls $sym" ;; *) fail "v2 object does not call $sym" ;; esac
done
# The check is real: the 1.x backend must not compile against 2.x headers.
# shellcheck disable=SC2086
if $HAL_TEST_CC $HAL_TEST_CFLAGS -I"$inc" -c "$top/hal/src/gpio_linux_v1.c" \
       -o "$TMPD/v1.o" >"$TMPD/v1.log" 2>&1; then
    fail "gpio_linux_v1.c compiled against 2.x headers: the 2.x include path is not in effect"
else
    ok "gpio_linux_v1.c is rejected by 2.x headers (the include path is in effect)"
fi
done_testing
