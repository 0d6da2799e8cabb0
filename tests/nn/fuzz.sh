#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the KV stream decoder for a bounded time, from a
# seed corpus of real streams (raw, lossless, lossy) made here with the programs.
# Native host build only (libFuzzer needs clang and the host sanitizer runtime).
#   KVMESH_FUZZ_SECS   seconds (default 30)
. "$KVMESH_TOP/tests/lib/tap.sh"
case "$KVMESH_BUILD:${KVMESH_TEST_RUNNER:-}" in
    */build/host:) ;;
    *) ok "fuzzing skipped on $(basename "$KVMESH_BUILD") (it runs with the native host build only)"; done_testing ;;
esac
CLANG=${CLANG:-clang-14}
command -v "$CLANG" >/dev/null 2>&1 || { fail "$CLANG not found (tools/setup.sh installs clang-14)"; done_testing; }
SECS=${KVMESH_FUZZ_SECS:-30}
OUT="$KVMESH_BUILD/fuzz"
mkdir -p "$OUT"
IMG="$TMPD/fuzz.kvm"
"$BIN/kvmesh-convert" -q --random 64,172,2,8,4,300,64 --seed 3 -g 4 -o "$IMG" || { fail "make the fuzz image"; done_testing; }
corpus="$TMPD/corpus"
mkdir -p "$corpus"
for c in raw lossless k3v2 k4v4g8c8 k2v2c16; do
    "$BIN/kvmesh" generate -m "$IMG" -p "t1 t2 t3" -n 20 --temp 0 --threads 1 --save-kv "$corpus/$c.kv" \
        --kv-codec "$c" >/dev/null 2>&1 || fail "seed stream $c"
done
# shellcheck disable=SC2046
if ! "$CLANG" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -I"$KVMESH_TOP/nn/include" -I"$KVMESH_TOP/nn/src" $(pkg-config --cflags libzstd) -pthread \
        -o "$OUT/fuzz_kv" "$KVMESH_TOP/tests/nn/fuzz/fuzz_kv.c" $(ls "$KVMESH_TOP"/nn/src/*.c) \
        $(pkg-config --libs libzstd) 2>"$OUT/build_kv.log"; then
    fail "build fuzz_kv: $(head -5 "$OUT/build_kv.log")"
    done_testing
fi
KVMESH_FUZZ_IMAGE="$IMG" "$OUT/fuzz_kv" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/kv-" "$corpus" >"$OUT/run_kv.log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/run_kv.log")
if [ $rc -eq 0 ]; then
    ok "fuzz_kv: ${SECS}s, ${execs:-?} inputs, no crash, leak or UB"
else
    fail "fuzz_kv crashed (exit $rc): $(grep -m3 -e ERROR -e 'runtime error' "$OUT/run_kv.log")"
fi
done_testing
