#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the frame parser and the reassembler, for a
# bounded time each, starting from the checked-in corpus in tests/mqtt/fuzz/corpus_*.
# Runs on the native host build only (the plain one): libFuzzer needs clang and the host
# sanitizer runtime, and fuzzing under qemu would find nothing in the time.
#   KVMESH_FUZZ_SECS   seconds per harness (default 30)
# New inputs found go to a scratch directory, not the checked-in corpus; to refresh the
# corpus run this with KVMESH_FUZZ_MERGE=1 (it minimizes into tests/mqtt/fuzz/).
. "$KVMESH_TOP/tests/lib/tap.sh"

case "$KVMESH_BUILD:${KVMESH_TEST_RUNNER:-}" in
    */build/host:)
        ;;
    *)
        ok "fuzzing skipped on $(basename "$KVMESH_BUILD") (it runs with the native host build only)"
        done_testing
        ;;
esac
CLANG=${CLANG:-clang-14}
if ! command -v "$CLANG" >/dev/null 2>&1; then
    fail "$CLANG not found (tools/setup.sh installs clang-14 and libclang-rt-14-dev)"
    done_testing
fi
SECS=${KVMESH_FUZZ_SECS:-30}
F="$KVMESH_TOP/tests/mqtt/fuzz"
OUT="$KVMESH_BUILD/fuzz"
mkdir -p "$OUT"
# The pure core only: the session and node need a broker and are covered by integration.
SRCS=$(ls "$KVMESH_TOP"/mqtt/src/*.c | grep -v -e /session.c -e /node.c)
for h in frame reasm; do
    # shellcheck disable=SC2086
    if ! "$CLANG" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=all -I"$KVMESH_TOP/mqtt/include" $(pkg-config --cflags libzstd) \
            -o "$OUT/fuzz_$h" "$F/fuzz_$h.c" $SRCS -lmbedtls -lmbedx509 -lmbedcrypto \
            $(pkg-config --libs libzstd) 2>"$OUT/build_$h.log"; then
        fail "build fuzz_$h: $(head -5 "$OUT/build_$h.log")"
        continue
    fi
    scratch="$TMPD/new_$h"
    mkdir -p "$scratch"
    if [ "${KVMESH_FUZZ_MERGE:-0}" = 1 ]; then
        "$OUT/fuzz_$h" -merge=1 "$F/corpus_$h" "$scratch" >/dev/null 2>&1
    fi
    "$OUT/fuzz_$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/" \
        "$scratch" "$F/corpus_$h" >"$OUT/run_$h.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/run_$h.log")
    if [ $rc -eq 0 ]; then
        ok "fuzz_$h: ${SECS}s, ${execs:-?} inputs, no crash, leak or UB"
    else
        fail "fuzz_$h crashed (exit $rc): $(grep -m3 -e ERROR -e 'runtime error' "$OUT/run_$h.log")"
        ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* 2>/dev/null | head -3
    fi
    if [ "${KVMESH_FUZZ_MERGE:-0}" = 1 ]; then
        mkdir -p "$TMPD/min_$h"
        "$OUT/fuzz_$h" -merge=1 "$TMPD/min_$h" "$F/corpus_$h" "$scratch" >/dev/null 2>&1 &&
            rm -f "$F/corpus_$h"/* && cp "$TMPD/min_$h"/* "$F/corpus_$h/"
    fi
done
done_testing
