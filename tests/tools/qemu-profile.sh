#!/bin/sh
# tools/qemu/profile.sh: guest instructions by function, on a small aarch64 program whose
# two loops differ tenfold in trips; and its usage errors.
. "$(dirname "$0")/../lib/tap.sh"
P="$KVMESH_TOP/tools/qemu/profile.sh"
cat >"$TMPD/loops.c" <<'C'
__attribute__((noinline)) static long ten(long n) { long s = 0; for (long i = 0; i < n; i++) s += i ^ (s >> 3); return s; }
__attribute__((noinline)) static long one(long n) { long s = 0; for (long i = 0; i < n; i++) s += i ^ (s >> 3); return s; }
int main(int argc, char **argv) { (void)argv; return (int)((ten(4000000L * argc) + one(400000L * argc)) & 1); }
C
aarch64-linux-gnu-gcc -O1 -o "$TMPD/loops" "$TMPD/loops.c"
sh "$P" --top 5 --raw "$TMPD/raw" "$TMPD/loops" >"$TMPD/prof" 2>"$TMPD/err"
check "profile.sh prints a total" grep -q "^total" "$TMPD/prof"
g() { awk -v f="$1" '$NF == f { print $2 }' "$TMPD/prof"; }
ten=$(g ten) one=$(g one)
check_all "the tenfold loop has about ten times the instructions ($ten / $one)" \
    '[ -n "$ten" ] && [ -n "$one" ] && awk -v a="$ten" -v b="$one" "BEGIN { exit !(a / b > 9 && a / b < 11) }"'
check "the raw per-block counts are kept" test -s "$TMPD/raw"
# Linked at a fixed address (no load bias) and static: the same attribution.
aarch64-linux-gnu-gcc -O1 -static -no-pie -o "$TMPD/loops-static" "$TMPD/loops.c"
sh "$P" --top 5 "$TMPD/loops-static" >"$TMPD/prof" 2>"$TMPD/err"
ten=$(g ten) one=$(g one)
check_all "a static, fixed-address program too ($ten / $one)" \
    '[ -n "$ten" ] && [ -n "$one" ] && awk -v a="$ten" -v b="$one" "BEGIN { exit !(a / b > 9 && a / b < 11) }"'
expect_fail "no program" 2 "no program" sh "$P" "$TMPD/none"
expect_fail "a bad --top" 2 "wants a number" sh "$P" --top x "$TMPD/loops"
expect_fail "an unknown option" 2 "unknown option" sh "$P" --bogus "$TMPD/loops"
done_testing
