#!/bin/sh
# The demo (`make demo`, tools/demo.sh) end to end: with the real stories260K it shows
# node-b reusing node-a's prefix, the answers with and without the cache identical, and
# the monitor's view; without the model files (forced here) it says where to get them
# and runs, loudly labelled, on a random-weight image. Both clean up after themselves.
. "$(dirname "$0")/../lib/tap.sh"
require_models
before=$(ls -d /tmp/kvmesh-demo.* 2>/dev/null | wc -l)
KVMESH_BUILD="$KVMESH_BUILD" sh "$KVMESH_TOP/tools/demo.sh" >"$TMPD/demo.txt" 2>&1
rc=$?
sed 's/^/# /' "$TMPD/demo.txt"
check "make demo's script exits 0" [ "$rc" -eq 0 ]
check "it numbers and prints its steps" sh -c "grep -q '\[1\] The model' '$TMPD/demo.txt' && grep -q '\[6\] The fleet' '$TMPD/demo.txt'"
check "it starts a TLS broker with generated credentials" grep -q "mqtts://127.0.0.1:[0-9]*  (TLS only" "$TMPD/demo.txt"
check "node-b reuses node-a's prefix from the fleet" grep -q "node-b: 346 prompt tokens, 337 reused from node-a (fleet" "$TMPD/demo.txt"
check "it compares the time to first token with and without the cache" grep -q "time to first token with node-a's cache: [0-9.]* ms; computing it: [0-9.]* ms" "$TMPD/demo.txt"
check "and the two answers are identical" grep -q "the two answers are the same text" "$TMPD/demo.txt"
check "the monitor shows both nodes online" sh -c "grep -q 'node-a *online' '$TMPD/demo.txt' && grep -q 'node-b *online' '$TMPD/demo.txt'"
check "it uses the real model, not random weights" sh -c "! grep -q 'RANDOM WEIGHTS' '$TMPD/demo.txt'"

KVMESH_DEMO_RANDOM=1 sh "$KVMESH_TOP/tools/demo.sh" >"$TMPD/random.txt" 2>&1
rc=$?
check "without the model files: it says where to get them" grep -q "huggingface.co/karpathy/tinyllamas" "$TMPD/random.txt"
check "and runs on a random-weight image, loudly labelled (exit $rc)" sh -c \
    "[ $rc -eq 0 ] && [ \$(grep -c 'RANDOM WEIGHTS' '$TMPD/random.txt') -ge 2 ] && grep -q 'reused from node-a (fleet' '$TMPD/random.txt'"
check "it cleans up after itself" [ "$(ls -d /tmp/kvmesh-demo.* 2>/dev/null | wc -l)" -eq "$before" ]
done_testing
