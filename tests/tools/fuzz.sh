#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the model-format parsers: safetensors, GGUF (with
# the GGUF source's tokenizer metadata) and tokenizer.json (with the strict JSON parser),
# each into the engine's tokenizer. A bounded time each, starting from the checked-in
# corpus in tests/tools/fuzz/corpus_*. Native host build only (as tests/mqtt/fuzz.sh).
#   KVMESH_FUZZ_SECS   seconds per harness (default 30)
#   KVMESH_FUZZ_MERGE  1: minimise what was found into the checked-in corpus
. "$KVMESH_TOP/tests/lib/tap.sh"

case "$KVMESH_BUILD:${KVMESH_TEST_RUNNER:-}" in
    */build/host:) ;;
    *) ok "fuzzing skipped on $(basename "$KVMESH_BUILD") (it runs with the native host build only)"; done_testing ;;
esac
CLANG=${CLANG:-clang-14}
if ! command -v "$CLANG" >/dev/null 2>&1; then
    fail "$CLANG not found (tools/setup.sh installs clang-14 and libclang-rt-14-dev)"
    done_testing
fi
SECS=${KVMESH_FUZZ_SECS:-30}
F="$KVMESH_TOP/tests/tools/fuzz"
OUT="$KVMESH_BUILD/fuzz"
mkdir -p "$OUT"
# tools/common and the engine's tokenizer, with what they link to in nn/ and the
# firmware's JSON reader (tools/common/json.c builds on it: fuzz_tokjson reaches it).
SRCS="$(ls "$KVMESH_TOP"/tools/common/*.c) $(ls "$KVMESH_TOP"/nn/src/*.c) $KVMESH_TOP/firmware/json.c"
for h in safetensors gguf tokjson; do
    # shellcheck disable=SC2086
    if ! "$CLANG" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            -pthread -I"$KVMESH_TOP/nn/include" -I"$KVMESH_TOP/tools/common" -I"$KVMESH_TOP/firmware" -I"$KVMESH_BUILD/gen" \
            -o "$OUT/fuzz_$h" "$F/fuzz_$h.c" $SRCS -lzstd -lpthread -lm 2>"$OUT/build_$h.log"; then
        fail "build fuzz_$h: $(head -5 "$OUT/build_$h.log")"
        continue
    fi
    scratch="$TMPD/new_$h"
    mkdir -p "$scratch"
    "$OUT/fuzz_$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$OUT/" "$scratch" "$F/corpus_$h" >"$OUT/run_$h.log" 2>&1
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
        "$OUT/fuzz_$h" -merge=1 -max_len=65536 "$TMPD/min_$h" "$F/corpus_$h" "$scratch" >/dev/null 2>&1 &&
            rm -f "$F/corpus_$h"/* && cp "$TMPD/min_$h"/* "$F/corpus_$h/"
    fi
done
done_testing
