#!/bin/sh
# kvmesh test runner.
# Runs each test program (cmocka) and each test script, counts results and prints a
# closing line "N passed, N failed". Exits non-zero when anything failed.
#
# Environment (set by `make test`):
#   KVMESH_BUILD        build directory, e.g. build/host
#   KVMESH_TEST_RUNNER  prefix for running target binaries (qemu-aarch64 ... for cross)
#   KVMESH_MODELS       models directory (default ../shared/models)
#   KVMESH_GOLDEN       golden outputs directory (default ../shared/golden)
#   KVMESH_TEST_FILTER  only run tests whose path contains this string
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
export KVMESH_TOP="$top"
export KVMESH_MODELS="${KVMESH_MODELS:-$top/../shared/models}"
export KVMESH_GOLDEN="${KVMESH_GOLDEN:-$top/../shared/golden}"
export KVMESH_BUILD="${KVMESH_BUILD:-build/host}"
export KVMESH_TEST_RUNNER="${KVMESH_TEST_RUNNER:-}"
case "$KVMESH_BUILD" in /*) ;; *) KVMESH_BUILD="$top/$KVMESH_BUILD" ;; esac
export CMOCKA_MESSAGE_OUTPUT=stdout

passed=0
failed=0
failed_names=""
logdir="$KVMESH_BUILD/test-logs"
mkdir -p "$logdir"

for t in "$@"; do
    case "$t" in *"${KVMESH_TEST_FILTER:-}"*) ;; *) continue ;; esac
    name=$(basename "$t")
    log="$logdir/$name.log"
    start=$(date +%s)
    case "$t" in
        *.sh) sh "$t" >"$log" 2>&1; rc=$? ;;
        *)    $KVMESH_TEST_RUNNER "$t" >"$log" 2>&1; rc=$? ;;
    esac
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
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        failed_names="$failed_names $name"
        echo "FAIL  $name  ($p passed, $f failed, ${secs}s, exit $rc)  log: $log"
        sed -n -e '/^\[  ERROR   \]/p' -e '/^\[  FAILED  \]/p' -e '/^not ok/p' -e '/[Ee]rror\|FAIL\|ASSERT\|Sanitizer\|runtime error/p' "$log" | head -20 | sed 's/^/      /'
    else
        echo "pass  $name  ($p passed, ${secs}s)"
    fi
done

if [ -n "$failed_names" ]; then
    echo "failed:$failed_names"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
