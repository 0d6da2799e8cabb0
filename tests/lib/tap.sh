# Shared helpers for shell tests: TAP-like "ok - name" / "not ok - name" lines that
# tests/run.sh counts. Source this file; then call ok/fail/check and finish with done_testing.
# shellcheck shell=sh
set -u
_tap_fail=0
: "${KVMESH_BUILD:?KVMESH_BUILD must be set (run through make test)}"
BIN="$KVMESH_BUILD/bin"
RUN="${KVMESH_TEST_RUNNER:-}"
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-test.XXXXXX")
trap 'rm -rf "$TMPD"' EXIT

ok()   { echo "ok - $*"; }
fail() { echo "not ok - $*"; _tap_fail=1; }
# check NAME CMD...: ok when CMD succeeds
check() { _n=$1; shift; if "$@"; then ok "$_n"; else fail "$_n"; fi; }
# check_all NAME 'EXPR': ok when the shell expression EXPR (conditions joined by && or
# ||, evaluated here, so functions work) holds as a whole. `check NAME [ a ] && [ b ]`
# would test [ a ] alone: the shell runs [ b ] after check has already reported.
check_all() { _n=$1; shift; if eval "$*"; then ok "$_n"; else fail "$_n"; fi; }
# run a target program (through qemu for cross builds)
run()  { $RUN "$@"; }

# require_models: fail loudly (never skip) when the shared models are missing.
require_models() {
    if [ ! -f "$KVMESH_MODELS/stories260K/stories260K.bin" ] || [ ! -d "$KVMESH_GOLDEN/stories260K" ]; then
        fail "models missing: expected $KVMESH_MODELS/stories260K and $KVMESH_GOLDEN (set KVMESH_MODELS / KVMESH_GOLDEN)"
        exit 1
    fi
}
done_testing() { exit $_tap_fail; }

# expect_fail NAME CODE PATTERN CMD...: CMD must exit with CODE (not crash) and print a
# message matching PATTERN (grep -E, case-insensitive) on stderr.
expect_fail() {
    _n=$1; _code=$2; _pat=$3; shift 3
    "$@" >"$TMPD/ef.out" 2>"$TMPD/ef.err"
    _rc=$?
    if [ "$_rc" -ne "$_code" ]; then
        fail "$_n (exit $_rc, wanted $_code): $(head -c 300 "$TMPD/ef.err")"
    elif ! grep -qiE "$_pat" "$TMPD/ef.err"; then
        fail "$_n (message did not match '$_pat'): $(head -c 300 "$TMPD/ef.err")"
    else
        ok "$_n: $(head -n1 "$TMPD/ef.err" | cut -c1-150)"
    fi
}
