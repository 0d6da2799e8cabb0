#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the frame parser and the reassembler, for a
# bounded time each, side by side, starting from the checked-in corpus in
# tests/mqtt/fuzz/corpus_*. Native host build only; options in tests/lib/fuzz.sh
# (KVMESH_FUZZ_SECS; KVMESH_FUZZ_MERGE=1 minimises what was found into the corpus).
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/lib/fuzz.sh"
F="$KVMESH_TOP/tests/mqtt/fuzz"
# The pure core only: the session and node need a broker and are covered by integration.
SRCS=$(ls "$KVMESH_TOP"/mqtt/src/*.c | grep -v -e /session.c -e /node.c)
HARNESSES="frame reasm"
for h in $HARNESSES; do
    # shellcheck disable=SC2086
    fuzz_build "$h" -I"$KVMESH_TOP/mqtt/include" $(pkg-config --cflags libzstd) "$F/fuzz_$h.c" $SRCS \
        -lmbedtls -lmbedx509 -lmbedcrypto $(pkg-config --libs libzstd)
done
for h in $HARNESSES; do fuzz_run "$h" "$F/corpus_$h"; done
for h in $HARNESSES; do fuzz_report "$h" "$F/corpus_$h"; done
done_testing
