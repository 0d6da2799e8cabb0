#!/bin/sh
# Turn a board description (boards/<board>.board: make-syntax `KEY = value` lines) into
# the C header build/<board>/gen/kvmesh_board.h. Firmware reads the board only through
# that header (or hal_board()), never by name.
#
#   boards/gen-header.sh boards/rpi4.board build/rpi4/gen/kvmesh_board.h
#
# Checks every key: a missing key, a non-number where a number belongs, or limits that
# make no sense (soft >= hard) stop the build with a message naming the file and key.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 BOARD_FILE OUT_HEADER" >&2
    exit 2
fi
in=$1
out=$2
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

awk -v src="$in" '
function fail(msg) { printf "%s: %s\n", src, msg > "/dev/stderr"; bad = 1; exit 1 }
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function cstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function need(k) { if (!(k in v)) fail("missing key " k) }
function num(k, lo, hi,   x) {
    need(k); x = v[k]
    if (x !~ /^-?[0-9]+$/) fail(k " must be an integer, got \"" x "\"")
    if (x + 0 < lo || x + 0 > hi) fail(k " = " x " is outside " lo ".." hi)
    return x
}
/^[ \t]*(#|$)/ { next }
{
    eq = index($0, "=")
    if (eq == 0) fail("line " NR ": expected KEY = value")
    k = trim(substr($0, 1, eq - 1)); val = trim(substr($0, eq + 1))
    if (k !~ /^BOARD_[A-Z0-9_]+$/) fail("line " NR ": bad key \"" k "\"")
    if (k in v) fail("line " NR ": duplicate key " k)
    v[k] = val
}
END {
    if (bad) exit 1
    split("NAME ARCH CFLAGS QEMU_CPU CPU CPU_FEATURES GPIO_CHIP LED_LINE BUTTON_LINE " \
          "BUTTON_ROLE THROTTLE_PATH POWER_SOURCE POWER_RAILS", keys, " ")
    for (i in keys) need("BOARD_" keys[i])
    if (v["BOARD_NAME"] !~ /^[a-z0-9-]+$/) fail("BOARD_NAME must be [a-z0-9-]+")
    threads = num("BOARD_THREADS", 0, 256)
    arena = num("BOARD_ARENA_BYTES", 1048576, 68719476736)
    ctx = num("BOARD_MAX_CONTEXT", 16, 1048576)
    zone = num("BOARD_THERMAL_ZONE", 0, 255)
    soft = num("BOARD_THERMAL_SOFT_MC", 20000, 150000)
    hard = num("BOARD_THERMAL_HARD_MC", 20000, 150000)
    hyst = num("BOARD_THERMAL_HYST_MC", 0, 50000)
    if (soft + 0 >= hard + 0) fail("BOARD_THERMAL_SOFT_MC must be below BOARD_THERMAL_HARD_MC")
    role = v["BOARD_BUTTON_ROLE"]
    if (role != "run-prompt" && role != "toggle-mode") fail("BOARD_BUTTON_ROLE must be run-prompt or toggle-mode")
    ps = v["BOARD_POWER_SOURCE"]
    if (ps != "none" && ps != "ina3221-hwmon" && ps != "ina3221x-iio") fail("BOARD_POWER_SOURCE must be none, ina3221-hwmon or ina3221x-iio")
    nr = split(v["BOARD_POWER_RAILS"], rails, /[ \t]+/)
    if (ps == "none" && nr > 0) fail("BOARD_POWER_RAILS given but BOARD_POWER_SOURCE is none")
    if (ps != "none" && nr == 0) fail("BOARD_POWER_SOURCE " ps " needs BOARD_POWER_RAILS")
    if (nr > 8) fail("at most 8 BOARD_POWER_RAILS")
    tp = v["BOARD_THROTTLE_PATH"]
    if (tp != "" && tp !~ /^\/sys\//) fail("BOARD_THROTTLE_PATH must start with /sys/")
    if (v["BOARD_GPIO_CHIP"] == "" && (v["BOARD_LED_LINE"] != "" || v["BOARD_BUTTON_LINE"] != ""))
        fail("LED or button lines given without BOARD_GPIO_CHIP")

    print "/* Generated from " src " by boards/gen-header.sh. Do not edit. */"
    print "#ifndef KVMESH_BOARD_H"
    print "#define KVMESH_BOARD_H"
    print ""
    print "#define KVMESH_BOARD_NAME " cstr(v["BOARD_NAME"])
    print "#define KVMESH_BOARD_ARCH " cstr(v["BOARD_ARCH"])
    print "#define KVMESH_BOARD_CFLAGS " cstr(v["BOARD_CFLAGS"])
    print "#define KVMESH_BOARD_QEMU_CPU " cstr(v["BOARD_QEMU_CPU"])
    print "#define KVMESH_BOARD_CPU " cstr(v["BOARD_CPU"])
    print "#define KVMESH_BOARD_CPU_FEATURES " cstr(v["BOARD_CPU_FEATURES"])
    print ""
    print "/* Engine budgets. THREADS 0 means every online CPU. */"
    print "#define KVMESH_BOARD_THREADS " threads "u"
    print "#define KVMESH_BOARD_ARENA_BYTES " arena "ull"
    print "#define KVMESH_BOARD_MAX_CONTEXT " ctx "u"
    print ""
    print "/* GPIO: chip by name, path or label; lines by name or decimal offset; \"\" = none. */"
    print "#define KVMESH_BOARD_GPIO_CHIP " cstr(v["BOARD_GPIO_CHIP"])
    print "#define KVMESH_BOARD_LED_LINE " cstr(v["BOARD_LED_LINE"])
    print "#define KVMESH_BOARD_BUTTON_LINE " cstr(v["BOARD_BUTTON_LINE"])
    print "#define KVMESH_BOARD_BUTTON_ROLE " cstr(role)
    if (role == "toggle-mode") print "#define KVMESH_BOARD_BUTTON_TOGGLES_MODE 1"
    print ""
    print "/* Thermal: zone number under /sys/class/thermal, limits in millidegrees C. */"
    print "#define KVMESH_BOARD_THERMAL_ZONE " zone
    print "#define KVMESH_BOARD_THERMAL_SOFT_MC " soft
    print "#define KVMESH_BOARD_THERMAL_HARD_MC " hard
    print "#define KVMESH_BOARD_THERMAL_HYST_MC " hyst
    print ""
    print "/* Raspberry Pi firmware throttled flags; \"\" = the board has none. */"
    print "#define KVMESH_BOARD_THROTTLE_PATH " cstr(tp)
    print ""
    print "/* Power rails: source kind and rail labels, as an initializer list. */"
    print "#define KVMESH_BOARD_POWER_SOURCE " cstr(ps)
    if (ps == "ina3221-hwmon") print "#define KVMESH_BOARD_POWER_INA3221_HWMON 1"
    if (ps == "ina3221x-iio") print "#define KVMESH_BOARD_POWER_INA3221X_IIO 1"
    print "#define KVMESH_BOARD_POWER_RAIL_COUNT " nr "u"
    init = ""
    for (i = 1; i <= nr; i++) init = init cstr(rails[i]) ", "
    print "#define KVMESH_BOARD_POWER_RAILS_INIT " init
    print ""
    print "#endif"
}' "$in" > "$tmp"
mv "$tmp" "$out"
trap - EXIT
