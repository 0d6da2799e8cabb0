#!/bin/sh
# Guest instructions by function of an aarch64 program run under qemu-user: a stand-in
# for a profile on a board, where none is at hand. Instruction counts are not time (a
# divide or a cache miss costs more than an add), but they show where a path's work is
# and whether a change removed any of it.
#
#   tools/qemu/profile.sh [--cpu CPU] [--top N] [--raw FILE] PROGRAM [ARGS...]
#
#   --cpu CPU   qemu's CPU model (default cortex-a76: Pi 5; cortex-a72: Pi 4)
#   --top N     functions to list (default 25)
#   --raw FILE  also keep the per-block counts ("vaddr count" lines)
#
# The program's own output goes to stderr; the profile (total, then share, millions
# of instructions and function, largest first) to stdout. The program must carry its
# symbol table (kvmesh's builds do). Needs qemu-user, a host C compiler for the plugin
# (tools/qemu/icount.c, built once into build/host/qemu/) and aarch64-linux-gnu-nm and
# -readelf.
set -eu
export LC_ALL=C   # byte order for sort, "." for the shares sort -n reads
top=$(cd "$(dirname "$0")/../.." && pwd)
cpu=cortex-a76 ntop=25 raw=
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) cpu=${2:?--cpu needs a CPU model}; shift 2 ;;
        --top) ntop=${2:?--top needs a number}; shift 2 ;;
        --raw) raw=${2:?--raw needs a file}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) echo "profile.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$ntop" in ''|*[!0-9]*) echo "profile.sh: --top wants a number, not '$ntop'" >&2; exit 2 ;; esac
prog=$1
[ -f "$prog" ] || { echo "profile.sh: no program $prog" >&2; exit 2; }
for t in qemu-aarch64 aarch64-linux-gnu-nm aarch64-linux-gnu-readelf cc; do
    command -v "$t" >/dev/null || { echo "profile.sh: $t not found (tools/setup.sh installs it)" >&2; exit 2; }
done

plugin="$top/build/host/qemu/icount.so"
if [ ! -f "$plugin" ] || [ "$top/tools/qemu/icount.c" -nt "$plugin" ]; then
    # Built aside and renamed: suites running at once never load a half-written file.
    mkdir -p "$(dirname "$plugin")"
    cc -shared -fPIC -O2 -Wall -o "$plugin.$$" "$top/tools/qemu/icount.c"
    mv -f "$plugin.$$" "$plugin"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-profile.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -d page logs the guest's memory map: start_code is where the lowest executable
# segment was loaded; less that segment's link address, it is the program's load bias
# (0 for a program linked at a fixed address).
set +e
qemu-aarch64 -L / -cpu "$cpu" -d page -D "$tmp/page.log" -plugin "$plugin,out=$tmp/counts" "$@" 1>&2
rc=$?
set -e
[ -s "$tmp/counts" ] || { echo "profile.sh: no counts (qemu exit $rc)" >&2; exit 1; }
[ -z "$raw" ] || cp "$tmp/counts" "$raw"
start=$(awk '$1 == "start_code" { print $2; exit }' "$tmp/page.log")
[ -n "$start" ] || { echo "profile.sh: qemu did not log start_code" >&2; exit 1; }
# The executable segment's link address and end, for the bias and for telling the
# program's blocks from the C library's and the loader's.
set -- $(aarch64-linux-gnu-readelf -lW "$prog" | awk '$1 == "LOAD" && $(NF - 1) ~ /E/ { print $3, $6; exit }')
[ $# -eq 2 ] || { echo "profile.sh: $prog has no executable segment" >&2; exit 1; }
textva=$1 textsz=$2
[ "$rc" -eq 0 ] || echo "profile.sh: the program exited with $rc; profiling what ran" >&2

# Function starts and block counts (less the load bias: link addresses), both as 16 hex
# digits, sorted together ("A" before "P" at one address): each count belongs to the
# function start at or before it. Blocks outside the program's text go to "(other)".
aarch64-linux-gnu-nm -n --defined-only "$prog" | awk '$2 ~ /^[tTwW]$/ { print $1, "A", $3 }' >"$tmp/syms"
[ -s "$tmp/syms" ] || echo "profile.sh: $prog has no symbol table (stripped?): everything is (other)" >&2
awk -v start="$start" -v textva="$textva" -v textsz="$textsz" '
    function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s)
        for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return v }
    BEGIN { lo = hex(textva); hi = lo + hex(textsz); b = hex(start) - lo }
    { a = hex($1) - b
      if (a < lo || a >= hi) print "ffffffffffffffff", "P", $2
      else printf "%016x P %s\n", a, $2 }' "$tmp/counts" >"$tmp/prof"
sort "$tmp/syms" "$tmp/prof" | awk -v byfn="$tmp/byfn" '
    $2 == "A" { cur = $3; next }
    { name = ($1 == "ffffffffffffffff" || cur == "") ? "(other)" : cur; n[name] += $3; tot += $3 }
    END { for (k in n) printf "%.0f %s\n", n[k], k >byfn; printf "%.0f\n", tot }' >"$tmp/total"
tot=$(cat "$tmp/total")
awk -v t="$tot" 'BEGIN { printf "total %.1f M instructions\n", t / 1e6 }'
sort -rn "$tmp/byfn" | head -n "$ntop" | awk -v t="$tot" '{ printf "%6.2f%%  %10.1f M  %s\n", 100 * $1 / t, $1 / 1e6, $2 }'
