#!/bin/sh
# Bad input to every program: a clear message, the documented exit code (1 bad input,
# 2 bad usage), never a crash, and no partial output left behind.
. "$(dirname "$0")/../lib/tap.sh"
require_models
S="$KVMESH_MODELS/stories260K"
CK="$S/stories260K.bin"; TOK="$S/tok512.bin"
conv() { run "$BIN/kvmesh-convert" -q "$@"; }

# --- converter: checkpoints and tokenizers ---------------------------------------------
head -c 500000 "$CK" >"$TMPD/trunc.bin"
expect_fail "convert: truncated checkpoint" 1 "truncated" conv --llama2c "$TMPD/trunc.bin" --tokenizer "$TOK" -o "$TMPD/o.kvm"
check "convert: no output left after a failure" [ ! -e "$TMPD/o.kvm" ]
head -c 20 "$CK" >"$TMPD/tiny.bin"
expect_fail "convert: checkpoint shorter than its header" 1 "truncated" conv --llama2c "$TMPD/tiny.bin" --tokenizer "$TOK" -o "$TMPD/o.kvm"
{ cat "$CK"; printf 'trailing'; } >"$TMPD/long.bin"
expect_fail "convert: header and size mismatch" 1 "disagree" conv --llama2c "$TMPD/long.bin" --tokenizer "$TOK" -o "$TMPD/o.kvm"
{ printf '\000\000\000\000'; tail -c +5 "$CK"; } >"$TMPD/dim0.bin"
expect_fail "convert: invalid header (dim 0)" 1 "invalid header" conv --llama2c "$TMPD/dim0.bin" --tokenizer "$TOK" -o "$TMPD/o.kvm"
expect_fail "convert: vocabulary disagrees with the tokenizer" 1 "32000 entries.*512" \
    conv --llama2c "$CK" --tokenizer "$KVMESH_MODELS/llama2c-tokenizer-32k/tokenizer.bin" -o "$TMPD/o.kvm"
head -c 3000 "$TOK" >"$TMPD/tok.bin"
expect_fail "convert: truncated tokenizer" 1 "truncated|entries" conv --llama2c "$CK" --tokenizer "$TMPD/tok.bin" -o "$TMPD/o.kvm"
expect_fail "convert: missing checkpoint" 1 "cannot read" conv --llama2c "$TMPD/none.bin" --tokenizer "$TOK" -o "$TMPD/o.kvm"
expect_fail "convert: unwritable output (no such directory)" 1 "cannot write" conv --llama2c "$CK" --tokenizer "$TOK" -o "$TMPD/no/such/dir.kvm"
mkdir "$TMPD/adir"
expect_fail "convert: output is a directory" 1 "cannot write" conv --llama2c "$CK" --tokenizer "$TOK" -o "$TMPD/adir"
expect_fail "convert: usage without an input" 2 "need -o" conv -o "$TMPD/o.kvm"
expect_fail "convert: bad group size" 2 "group" conv --llama2c "$CK" --tokenizer "$TOK" -g 0 -o "$TMPD/o.kvm"
expect_fail "convert: unknown random preset" 1 "unknown random preset" conv --random nope -o "$TMPD/o.kvm"
check "convert: --help exits 0" run "$BIN/kvmesh-convert" --help >/dev/null

# --- images into the engine ---------------------------------------------------------------
conv --llama2c "$CK" --tokenizer "$TOK" -g 4 -o "$TMPD/good.kvm" || fail "convert a good image"
size=$(wc -c <"$TMPD/good.kvm")
head -c $((size / 2)) "$TMPD/good.kvm" >"$TMPD/half.kvm"
head -c 100 "$TMPD/good.kvm" >"$TMPD/hdr.kvm"
cp "$CK" "$TMPD/notimage.kvm"
# format version (offset 8) and numerics version (offset 12) bumped
{ head -c 8 "$TMPD/good.kvm"; printf '\002'; tail -c +10 "$TMPD/good.kvm"; } >"$TMPD/ver.kvm"
{ head -c 12 "$TMPD/good.kvm"; printf '\007'; tail -c +14 "$TMPD/good.kvm"; } >"$TMPD/num.kvm"
# the directory sits at the end: damage a tensor offset inside it
{ head -c $((size - 40)) "$TMPD/good.kvm"; printf '\377\377\377\377'; tail -c 36 "$TMPD/good.kvm"; } >"$TMPD/dir.kvm"
# a weight byte flipped: structure intact, fingerprint wrong
{ head -c 300 "$TMPD/good.kvm"; printf '\125'; tail -c +302 "$TMPD/good.kvm"; } >"$TMPD/flip.kvm"
gen() { run "$BIN/kvmesh" generate -p "Once" -n 4 --temp 0 "$@"; }
ev() { run "$BIN/kvmesh-eval" --tokens "$KVMESH_GOLDEN/stories260K/once_upon_a_time_256.tokens.txt" "$@"; }
for prog in gen ev; do
    expect_fail "$prog: truncated image" 1 "truncated" $prog -m "$TMPD/half.kvm"
    expect_fail "$prog: image shorter than its header" 1 "truncated" $prog -m "$TMPD/hdr.kvm"
    expect_fail "$prog: wrong magic" 1 "not a kvmesh model image" $prog -m "$TMPD/notimage.kvm"
    expect_fail "$prog: wrong format version" 1 "unsupported" $prog -m "$TMPD/ver.kvm"
    expect_fail "$prog: wrong numerics version" 1 "unsupported" $prog -m "$TMPD/num.kvm"
    expect_fail "$prog: corrupted directory" 1 "corrupt" $prog -m "$TMPD/dir.kvm"
    expect_fail "$prog: missing image" 1 "could not be opened" $prog -m "$TMPD/none.kvm"
done
expect_fail "verify: flipped weight byte fails the fingerprint" 1 "fingerprint" \
    run "$BIN/kvmesh" verify -m "$TMPD/flip.kvm"
check "verify: a good image verifies" run "$BIN/kvmesh" verify -m "$TMPD/good.kvm"

# --- eval inputs ---------------------------------------------------------------------------
printf '0 1 403\n1 9999 5\n' >"$TMPD/badtok.txt"
expect_fail "eval: token out of the vocabulary" 1 "badtok.txt:2" run "$BIN/kvmesh-eval" -m "$TMPD/good.kvm" --tokens "$TMPD/badtok.txt"
printf '0 1 403\nhello\n' >"$TMPD/garbage.txt"
expect_fail "eval: garbage line" 1 "garbage.txt:2" run "$BIN/kvmesh-eval" -m "$TMPD/good.kvm" --tokens "$TMPD/garbage.txt"
head -c 1000 "$KVMESH_GOLDEN/stories260K/once_upon_a_time_256.logits.f32" >"$TMPD/ref.f32"
expect_fail "eval: reference of the wrong size" 1 "expected" ev -m "$TMPD/good.kvm" --ref "$TMPD/ref.f32"
expect_fail "eval: unwritable logits output" 1 "cannot write" ev -m "$TMPD/good.kvm" --logits-out "$TMPD/no/dir/x.f32"
expect_fail "eval: unknown kernel path" 2 "not available" ev -m "$TMPD/good.kvm" --kernels bogus

# --- generate options -----------------------------------------------------------------------
expect_fail "generate: -n not a number" 2 "integer" gen -m "$TMPD/good.kvm" -n abc
expect_fail "generate: negative temperature" 2 "decimal" gen -m "$TMPD/good.kvm" --temp -1
expect_fail "generate: prompt longer than the context" 1 "does not fit the context" \
    gen -m "$TMPD/good.kvm" --ctx 4 -p "Once upon a time there was a cat"
expect_fail "generate: context beyond the model's" 1 "exceeds" gen -m "$TMPD/good.kvm" --ctx 100000
expect_fail "generate: missing -m" 2 "required" run "$BIN/kvmesh" generate -p hi
expect_fail "kvmesh: unknown command" 2 "unknown command" run "$BIN/kvmesh" frobnicate
check "generate: --help exits 0" run "$BIN/kvmesh" generate --help >/dev/null
done_testing
