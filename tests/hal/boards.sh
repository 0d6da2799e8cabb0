#!/bin/sh
# Every board description generates a header that builds hal's board table, and the
# generator rejects broken descriptions with a message naming the key.
. "$(dirname "$0")/../lib/tap.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
gen="$top/boards/gen-header.sh"
cc=${HOST_CC:-cc}

for f in "$top"/boards/*.board; do
    b=$(basename "$f" .board)
    mkdir -p "$TMPD/$b"
    if ! sh "$gen" "$f" "$TMPD/$b/kvmesh_board.h" 2>"$TMPD/$b.err"; then
        fail "$b: generator: $(cat "$TMPD/$b.err")"
        continue
    fi
    check "$b: hal board table compiles from its header" \
        $cc -std=c11 -Wall -Wextra -Werror -I"$top/hal/include" -I"$TMPD/$b" \
            -c "$top/hal/src/board.c" -o "$TMPD/$b/board.o"
    grep -q "^#define KVMESH_BOARD_NAME \"$b\"$" "$TMPD/$b/kvmesh_board.h" \
        && ok "$b: name matches its file" || fail "$b: BOARD_NAME differs from file name"
    # The Makefile's keys are still there with the values it uses.
    for k in BOARD_ARCH BOARD_CFLAGS BOARD_QEMU_CPU; do
        grep -q "^$k *=" "$f" && ok "$b: keeps $k" || fail "$b: lost $k"
    done
done

# Broken descriptions: each must fail, naming the problem.
base="$top/boards/rpi4.board"
reject() {  # NAME EXPECTED-MESSAGE SED-EXPRESSION
    sed "$3" "$base" > "$TMPD/bad.board"
    if sh "$gen" "$TMPD/bad.board" "$TMPD/bad.h" 2>"$TMPD/bad.err"; then
        fail "rejects $1 (it was accepted)"
    elif grep -q "$2" "$TMPD/bad.err"; then
        ok "rejects $1"
    else
        fail "rejects $1 with a useful message (got: $(cat "$TMPD/bad.err"))"
    fi
    [ ! -e "$TMPD/bad.h" ] && ok "no header left behind for $1" || { fail "header left for $1"; rm -f "$TMPD/bad.h"; }
}
reject "a missing key" "missing key BOARD_THERMAL_ZONE" '/^BOARD_THERMAL_ZONE/d'
reject "soft at or above hard" "SOFT_MC must be below" 's/^BOARD_THERMAL_SOFT_MC.*/BOARD_THERMAL_SOFT_MC = 80000/'
reject "a word for a number" "BOARD_THREADS must be an integer" 's/^BOARD_THREADS.*/BOARD_THREADS = four/'
reject "a tiny arena" "BOARD_ARENA_BYTES = 1024 is outside" 's/^BOARD_ARENA_BYTES.*/BOARD_ARENA_BYTES = 1024/'
reject "an unknown button role" "BOARD_BUTTON_ROLE must be" 's/^BOARD_BUTTON_ROLE.*/BOARD_BUTTON_ROLE = reboot/'
reject "rails without a source" "BOARD_POWER_RAILS given" 's/^BOARD_POWER_RAILS.*/BOARD_POWER_RAILS = VDD_IN/'
reject "a duplicate key" "duplicate key BOARD_THREADS" '/^BOARD_THREADS/p'
reject "a relative throttle path" "BOARD_THROTTLE_PATH must start" 's|^BOARD_THROTTLE_PATH.*|BOARD_THROTTLE_PATH = get_throttled|'
done_testing
