#!/bin/sh
# nn/src/tok_unicode.c (the \p{L} and \p{N} tables of the byte-level pre-tokenizers) is
# exactly what tests/nn/gen_unicode.c generates from ICU's general categories.
# Host build only: the generator links the host's libicu (tools/setup.sh installs it).
. "$KVMESH_TOP/tests/lib/tap.sh"
case "$KVMESH_BUILD:${KVMESH_TEST_RUNNER:-}" in
    */build/host:) ;;
    *) ok "unicode tables checked on the native host build only"; done_testing ;;
esac
if ! cc -O1 -o "$TMPD/gen_unicode" "$KVMESH_TOP/tests/nn/gen_unicode.c" -licuuc 2>"$TMPD/cc.log"; then
    fail "build gen_unicode (libicu-dev missing? tools/setup.sh installs it): $(head -3 "$TMPD/cc.log")"
    done_testing
fi
"$TMPD/gen_unicode" >"$TMPD/tok_unicode.c"
check "nn/src/tok_unicode.c equals the ICU-generated tables ($(sed -n 's/.*(Unicode \([0-9.]*\)).*/\1/p' "$TMPD/tok_unicode.c"))" \
    cmp -s "$TMPD/tok_unicode.c" "$KVMESH_TOP/nn/src/tok_unicode.c"
done_testing
