# Shared by tests/*/fuzz.sh (source after tap.sh): libFuzzer harnesses (clang-14, ASan +
# UBSan), built side by side and run side by side, so a script with three harnesses takes
# about one harness's time in CI instead of three (the test runner runs one script at a
# time and the machine has two cores).
#   KVMESH_FUZZ_SECS   seconds each harness runs (default 30, wall clock)
#   KVMESH_FUZZ_MERGE  1: minimise what was found into the checked-in corpus
# shellcheck shell=sh

# Native host build only: libFuzzer needs clang and the host sanitizer runtime, and
# fuzzing under qemu would find nothing in the time. Exits (reporting) otherwise.
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
OUT="$KVMESH_BUILD/fuzz"
mkdir -p "$OUT"

# fuzz_build H ARGS...: starts compiling harness H into $OUT/fuzz_H (ARGS: sources,
# include and link flags), in the background; fuzz_run waits for it.
fuzz_build() {
    _h=$1; shift
    "$CLANG" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -o "$OUT/fuzz_$_h" "$@" 2>"$OUT/build_$_h.log" &
    eval "_fz_build_$_h=$!"
}

# fuzz_run H CORPUS [LIBFUZZER_OPTION...]: once H is built, starts it for $SECS seconds
# from the directory CORPUS (new inputs go to a scratch directory), in the background.
# Environment for the harness is whatever the caller exported.
fuzz_run() {
    _h=$1; _corpus=$2; shift 2
    eval "_pid=\$_fz_build_$_h"
    if ! wait "$_pid"; then
        fail "build fuzz_$_h: $(head -5 "$OUT/build_$_h.log")"
        eval "_fz_run_$_h=none"
        return
    fi
    mkdir -p "$TMPD/new_$_h"
    "$OUT/fuzz_$_h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/$_h-" "$@" "$TMPD/new_$_h" "$_corpus" >"$OUT/run_$_h.log" 2>&1 &
    eval "_fz_run_$_h=$!"
}

# fuzz_report H [MERGE_DIR]: waits for H's run and reports it. With KVMESH_FUZZ_MERGE=1
# and MERGE_DIR (a checked-in corpus), minimises the corpus plus what was found into it.
fuzz_report() {
    _h=$1; _merge=${2:-}
    eval "_pid=\$_fz_run_$_h"
    [ "$_pid" = none ] && return
    wait "$_pid"
    _rc=$?
    _execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/run_$_h.log")
    if [ $_rc -eq 0 ]; then
        ok "fuzz_$_h: ${SECS}s, ${_execs:-?} inputs, no crash, leak or UB"
    else
        fail "fuzz_$_h crashed (exit $_rc): $(grep -m3 -e ERROR -e 'runtime error' "$OUT/run_$_h.log")"
        ls "$OUT/$_h-"* 2>/dev/null | head -3
    fi
    if [ "${KVMESH_FUZZ_MERGE:-0}" = 1 ] && [ -n "$_merge" ]; then
        mkdir -p "$TMPD/min_$_h"
        "$OUT/fuzz_$_h" -merge=1 -max_len=65536 "$TMPD/min_$_h" "$_merge" "$TMPD/new_$_h" >/dev/null 2>&1 &&
            rm -f "$_merge"/* && cp "$TMPD/min_$_h"/* "$_merge/"
    fi
}
