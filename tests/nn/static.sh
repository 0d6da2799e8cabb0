#!/bin/sh
# nn/ is heap-free and integer-only:
#  - libnn.a has no undefined reference to malloc, calloc, realloc or free (nor the
#    aligned/posix variants);
#  - no float or double type, and no floating-point literal, appears in nn/ sources;
#  - on x86-64 hosts, the compiled code contains no scalar or packed floating-point
#    arithmetic instruction;
#  - on aarch64, sdot appears exactly when the board has dotprod.
. "$(dirname "$0")/../lib/tap.sh"
LIB="$KVMESH_BUILD/lib/libnn.a"
NM="nm"
case "${KVMESH_TARGET_ARCH:-}" in aarch64) command -v aarch64-linux-gnu-nm >/dev/null && NM=aarch64-linux-gnu-nm ;; esac
check "libnn.a exists" [ -f "$LIB" ]
heap=$($NM -u "$LIB" | grep -wE 'malloc|calloc|realloc|free|aligned_alloc|posix_memalign|memalign|valloc|reallocarray|strdup|qsort' || true)
check "libnn.a calls no heap allocator (found: ${heap:-none})" [ -z "$heap" ]
# Code only: comments and #include lines stripped by the preprocessor.
code="$TMPD/nn-code.txt"
for f in $(find "$KVMESH_TOP/nn" -name '*.[ch]'); do
    gcc -fpreprocessed -dD -E -P "$f" 2>/dev/null | grep -v '^#' | sed "s|^|$f: |"
done >"$code"
check "nn/ sources were scanned" [ -s "$code" ]
fl=$(grep -wE 'float|double|_Float16|__fp16' "$code" || true)
check "no float/double in nn/ sources (found: ${fl:-none})" [ -z "$fl" ]
lit=$(sed 's/^[^:]*: //' "$code" | grep -E '(^|[^A-Za-z0-9_.])[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?[fFlL]?([^A-Za-z0-9_]|$)|\b[0-9]+[eE][-+]?[0-9]+\b' || true)
check "no floating-point literals in nn/ code (found: ${lit:-none})" [ -z "$lit" ]
if [ "${KVMESH_TARGET_ARCH:-}" = "x86_64" ]; then
    fpi=$(objdump -d "$LIB" | grep -E '\s(v?(add|sub|mul|div|sqrt|min|max|rcp|rsqrt|round|fmadd[0-9]*|fmsub[0-9]*|ucomi|comi|cvt[a-z0-9]*)(ss|sd|ps|pd)|v?cvt(t?s[sd]2si|si2s[sd]|dq2p[sd]|p[sd]2dq|tp[sd]2dq))\b' || true)
    check "no floating-point instructions in libnn.a (found: $(echo "$fpi" | head -3))" [ -z "$fpi" ]
fi
# aarch64: the dot-product instructions (armv8.2) appear only in builds for boards that
# have them; qemu with the board's CPU model would also kill a Pi 4 build that ran one.
if [ "${KVMESH_TARGET_ARCH:-}" = "aarch64" ] && command -v aarch64-linux-gnu-objdump >/dev/null; then
    nsdot=$(aarch64-linux-gnu-objdump -d "$LIB" | grep -cwE 'sdot|udot|usdot' || true)
    if grep -q 'CPU_FEATURES ".*dotprod' "$KVMESH_BUILD/gen/kvmesh_board.h"; then
        check "dotprod board: libnn.a has the sdot kernels ($nsdot dot instructions)" [ "$nsdot" -gt 0 ]
    else
        check "armv8-a board: libnn.a has no dot-product instruction (found $nsdot)" [ "$nsdot" -eq 0 ]
    fi
fi
done_testing
