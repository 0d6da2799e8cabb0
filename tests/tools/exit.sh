#!/bin/sh
# Early-exit heads: kvmesh-exit-train fits heads on text the model generates itself and
# writes them into a copy of the image; kvmesh-eval --exit-layer scores them against
# the full model on the golden text. A trained head must beat the untrained one
# (final norm + classifier at the same layer), and the full model must be unchanged.
. "$(dirname "$0")/../lib/tap.sh"
require_models
S="$KVMESH_MODELS/stories260K"
T="$KVMESH_GOLDEN/stories260K/once_upon_a_time_256.tokens.txt"
run "$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 -o "$TMPD/s.kvm" || fail convert
run "$BIN/kvmesh-exit-train" -q -m "$TMPD/s.kvm" --layers 4 --tokens 4000 --epochs 3 -o "$TMPD/x.kvm"
check "exit-train writes an image that verifies" run "$BIN/kvmesh" verify -m "$TMPD/x.kvm"
run "$BIN/kvmesh-eval" -m "$TMPD/s.kvm" --tokens "$T" --logits-out "$TMPD/a.f32"
run "$BIN/kvmesh-eval" -m "$TMPD/x.kvm" --tokens "$T" --logits-out "$TMPD/b.f32"
check "the heads leave the full model's logits unchanged" cmp -s "$TMPD/a.f32" "$TMPD/b.f32"
agree() { run "$BIN/kvmesh-eval" -m "$1" --tokens "$T" --exit-layer 4 --thresholds 0.5 |
          sed 's/.*"agreement_all":\([0-9.]*\).*/\1/'; }
u=$(agree "$TMPD/s.kvm"); t=$(agree "$TMPD/x.kvm")
check "a trained head at layer 4 agrees more often ($t) than the untrained one ($u)" \
    awk -v t="$t" -v u="$u" 'BEGIN { exit !(t > u + 0.05) }'
expect_fail "exit-train refuses layer 0" 2 "layer numbers" run "$BIN/kvmesh-exit-train" -m "$TMPD/s.kvm" --layers 0 -o "$TMPD/y.kvm"
expect_fail "eval refuses an exit layer past the model" 2 "layers" run "$BIN/kvmesh-eval" -m "$TMPD/s.kvm" --tokens "$T" --exit-layer 9
done_testing
