#!/bin/bash
# kvmesh test runner.
# Runs each test program (cmocka) and each test script, counts results and prints a
# closing line "N passed, N failed". Exits non-zero when anything failed.
#
# Tests run KVMESH_TEST_JOBS at a time (default: the number of CPUs), longest first so
# that the last one to finish is a short one: by the durations of this build's previous
# run (test-logs/durations), else the checked-in tests/durations, else scripts before
# programs and larger scripts first (the scripts are the long ones: brokers, peers,
# fuzzers, qemu). Each test has its own log,
# temporary directory and free ports, so they do not share state; KVMESH_TEST_JOBS=1
# runs them one after another, in the order given.
#
# Environment (set by `make test`):
#   KVMESH_BUILD        build directory, e.g. build/host
#   KVMESH_TEST_RUNNER  prefix for running target binaries (qemu-aarch64 ... for cross)
#   KVMESH_MODELS       models directory (default ../shared/models)
#   KVMESH_GOLDEN       golden outputs directory (default ../shared/golden)
#   KVMESH_TEST_FILTER  only run tests whose path contains this string
#   KVMESH_TEST_JOBS    how many tests run at once (default: CPUs online)
#   KVMESH_TEST_TIMEOUT seconds a test may take before it is stopped and counted as
#                       failed (default 1200; the longest, under qemu or ASan, take
#                       a few minutes), so a hung test fails CI with its name
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
export KVMESH_TOP="$top"
export KVMESH_MODELS="${KVMESH_MODELS:-$top/../shared/models}"
export KVMESH_GOLDEN="${KVMESH_GOLDEN:-$top/../shared/golden}"
export KVMESH_BUILD="${KVMESH_BUILD:-build/host}"
export KVMESH_TEST_RUNNER="${KVMESH_TEST_RUNNER:-}"
case "$KVMESH_BUILD" in /*) ;; *) KVMESH_BUILD="$top/$KVMESH_BUILD" ;; esac
export CMOCKA_MESSAGE_OUTPUT=stdout

jobs=${KVMESH_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case "$jobs" in ''|*[!0-9]*|0) echo "run.sh: KVMESH_TEST_JOBS is a positive number, not '$jobs'" >&2; exit 2 ;; esac
limit=${KVMESH_TEST_TIMEOUT:-1200}
case "$limit" in ''|*[!0-9]*|0) echo "run.sh: KVMESH_TEST_TIMEOUT is a positive number of seconds, not '$limit'" >&2; exit 2 ;; esac

logdir="$KVMESH_BUILD/test-logs"
mkdir -p "$logdir"
resdir=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-run.XXXXXX") || exit 2
trap 'rm -rf "$resdir"' EXIT
# Interrupted: background jobs of a script do not get the terminal's SIGINT, so pass a
# TERM to each running test (their own traps stop their brokers and peers).
trap 'for _j in $(jobs -p); do pkill -TERM -P "$_j"; kill "$_j"; done 2>/dev/null; exit 130' INT TERM

# A test's name: scripts by their path under tests/ (three directories have a fuzz.sh),
# programs by their file name (already unique: nn_test_kv, mqtt_test_frame, ...).
test_name() {
    case "$1" in
        *.sh) echo "${1#*tests/}" ;;
        *)    basename "$1" ;;
    esac
}

# run_one PATH INDEX: runs one test, prints its line and leaves "passed failed name
# seconds" in $resdir/INDEX.
run_one() {
    t=$1; name=$(test_name "$t")
    log="$logdir/$(echo "$name" | tr / _).log"
    start=$(date +%s)
    # TERM first (a script's trap stops its brokers and peers), KILL 10 s later.
    case "$t" in
        *.sh) timeout -k 10 "$limit" sh "$t" >"$log" 2>&1; rc=$? ;;
        *)    timeout -k 10 "$limit" $KVMESH_TEST_RUNNER "$t" >"$log" 2>&1; rc=$? ;;
    esac
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "run.sh: stopped after ${limit}s (KVMESH_TEST_TIMEOUT)" >>"$log"
    fi
    secs=$(( $(date +%s) - start ))
    # cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)";
    # scripts print "ok - ..." / "not ok - ..." lines (TAP-like).
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    sp=$(grep -c '^ok ' "$log")
    sf=$(grep -c '^not ok ' "$log")
    p=$((p + sp)); f=$((f + sf))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed or exited non-zero without reporting a failure
    fi
    if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        p=1   # a program with no countable output that succeeded
    fi
    # One printf per test, so lines of tests finishing together do not interleave.
    if [ "$f" -ne 0 ]; then
        why=$(sed -n -e '/^\[  ERROR   \]/p' -e '/^\[  FAILED  \]/p' -e '/^not ok/p' -e '/[Ee]rror\|FAIL\|ASSERT\|Sanitizer\|runtime error\|KVMESH_TEST_TIMEOUT/p' "$log" | head -20 | sed 's/^/      /')
        printf '%s\n%s' "FAIL  $name  ($p passed, $f failed, ${secs}s, exit $rc)  log: $log" "${why:+$why
}"
    else
        printf '%s\n' "pass  $name  ($p passed, ${secs}s)"
    fi
    echo "$p $f $name $secs" >"$resdir/$2"
}

# The order: "SECONDS PATH" lines sorted longest first. A test's seconds come from this
# build's last run, else from tests/durations (checked in: a fresh clone, as in CI),
# else a script counts as its size / 100 seconds and a program as 0.
durations="$logdir/durations"
seconds_in() { awk -v n="$1" '$2 == n { print $1; exit }' "$2" 2>/dev/null; }
order_key() {
    _n=$(test_name "$1")
    _d=$(seconds_in "$_n" "$durations")
    [ -n "$_d" ] || _d=$(seconds_in "$_n" "$top/tests/durations")
    if [ -n "$_d" ]; then echo "$_d"
    else case "$1" in *.sh) echo $(( $(wc -c <"$1") / 100 )) ;; *) echo 0 ;; esac
    fi
}
selected=()
if [ "$jobs" -gt 1 ]; then
    while IFS= read -r line; do
        selected+=("${line#* }")
    done < <(for t in "$@"; do
                 case "$t" in *"${KVMESH_TEST_FILTER:-}"*) echo "$(order_key "$t") $t" ;; esac
             done | sort -s -k1,1nr)
else
    for t in "$@"; do
        case "$t" in *"${KVMESH_TEST_FILTER:-}"*) selected+=("$t") ;; esac
    done
fi

i=0
running=0
for t in "${selected[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" "$i" &
    running=$((running + 1))
    i=$((i + 1))
done
wait

passed=0
failed=0
failed_names=""
n=0
while [ "$n" -lt "$i" ]; do
    if [ -f "$resdir/$n" ]; then
        read -r p f name secs <"$resdir/$n"
        echo "$secs $name" >>"$resdir/durations"
    else
        p=0; f=1; name=$(test_name "${selected[$n]}")   # the runner itself lost it
    fi
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || failed_names="$failed_names $name"
    n=$((n + 1))
done

# Remembered for the next run's order (a filtered run keeps the others' lines).
if [ -f "$resdir/durations" ]; then
    { cat "$resdir/durations"; cat "$durations" 2>/dev/null; } | awk '!seen[$2]++' >"$resdir/d.new" &&
        mv "$resdir/d.new" "$durations"
fi

if [ -n "$failed_names" ]; then
    echo "failed:$failed_names"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
