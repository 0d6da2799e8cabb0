#!/bin/sh
# KV caches through the programs: save and load with kvmesh generate (the reused prefix
# is skipped and the output is identical), kvmesh-kv inspect / verify / convert, the
# codec targets measured by kvmesh-kv quality on the real model, and bad cache files.
. "$(dirname "$0")/../lib/tap.sh"
require_models
S="$KVMESH_MODELS/stories260K"; A="$KVMESH_MODELS/aidreams260K"
run "$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 -o "$TMPD/s.kvm" || fail "convert stories"
run "$BIN/kvmesh-convert" -q --llama2c "$A/aidreams260K.bin" --tokenizer "$A/tok512.bin" -g 4 -o "$TMPD/a.kvm" || fail "convert aidreams"
gen() { run "$BIN/kvmesh" generate -m "$TMPD/s.kvm" --temp 0 --threads 1 "$@"; }
KV() { run "$BIN/kvmesh-kv" "$@"; }

P1="Once upon a time, there was a little girl named Lily."
P2="Once upon a time, there was a little girl named Lily. She had a red ball and a small dog."
gen -p "$P1" -n 30 --save-kv "$TMPD/p1.kv" >"$TMPD/p1.out" 2>"$TMPD/p1.err"
check "generate --save-kv writes a cache" [ -s "$TMPD/p1.kv" ]
n1=$(sed -n 's/^prompt tokens: \([0-9]*\),.*/\1/p' "$TMPD/p1.err")
gen -p "$P2" -n 40 >"$TMPD/p2.plain" 2>/dev/null
gen -p "$P2" -n 40 --load-kv "$TMPD/p1.kv" >"$TMPD/p2.kv.out" 2>"$TMPD/p2.err"
check "a shared-prefix prompt with --load-kv generates exactly what it does without" cmp -s "$TMPD/p2.plain" "$TMPD/p2.kv.out"
reused=$(sed -n 's/^kv: reused \([0-9]*\) of.*/\1/p' "$TMPD/p2.err")
check "reused $reused tokens: at least the first prompt's $n1" [ "${reused:-0}" -ge "${n1:-999}" ]
gen -p "$P1" -n 30 --load-kv "$TMPD/p1.kv" >"$TMPD/p1.again" 2>"$TMPD/p1.again.err"
check "the same prompt reuses all but its last token" grep -q "^kv: reused $((n1 - 1)) of $n1 " "$TMPD/p1.again.err"
check "and prints the same text" cmp -s "$TMPD/p1.out" "$TMPD/p1.again"

KV inspect "$TMPD/p1.kv" >"$TMPD/inspect.json"
check "inspect reports the codec and the positions" grep -q '"codec":"lossless".*"positions":\[0,' "$TMPD/inspect.json"
check "verify accepts the cache with its own model" KV verify -m "$TMPD/s.kvm" "$TMPD/p1.kv"
expect_fail "verify refuses the cache with another model" 1 "another model" KV verify -m "$TMPD/a.kvm" "$TMPD/p1.kv"
KV convert -m "$TMPD/s.kvm" --codec lossy "$TMPD/p1.kv" "$TMPD/p1.lossy.kv" 2>/dev/null ||
    KV convert -m "$TMPD/s.kvm" --codec k3v2g128c128 "$TMPD/p1.kv" "$TMPD/p1.lossy.kv"
check "convert writes a lossy cache that verifies" KV verify -m "$TMPD/s.kvm" "$TMPD/p1.lossy.kv"
KV convert -m "$TMPD/s.kvm" --codec raw "$TMPD/p1.kv" "$TMPD/p1.raw.kv" &&
    KV convert -m "$TMPD/s.kvm" --codec lossless "$TMPD/p1.raw.kv" "$TMPD/p1.back.kv"
check "lossless -> raw -> lossless is byte-identical" cmp -s "$TMPD/p1.kv" "$TMPD/p1.back.kv"

# Codec targets on the 256-position golden context, 200 continuation tokens.
KV quality -m "$TMPD/s.kvm" --tokens "$KVMESH_GOLDEN/stories260K/once_upon_a_time_256.tokens.txt" \
    --continue 200 --codec lossless --codec k3v2g128c128 >"$TMPD/q.json"
cat "$TMPD/q.json" | sed 's/^/# /'
field() { sed -n "/\"codec\":\"$1\"/s/.*\"$2\":\([0-9.]*\).*/\1/p" "$TMPD/q.json"; }
check "lossless: the continuation is exact (same_top1 $(field lossless same_top1), kld $(field lossless mean_kld))" \
    awk -v t="$(field lossless same_top1)" -v k="$(field lossless mean_kld)" 'BEGIN { exit !(t == 1 && k == 0) }'
b=$(field k3v2g128c128 bits_per_value); t=$(field k3v2g128c128 same_top1)
check "lossy k3v2g128c128: $b bits per value <= 3 (>= 5.3x smaller than fp16)" awk -v x="$b" 'BEGIN { exit !(x > 0 && x <= 3) }'
check "lossy k3v2g128c128: same_top1 $t >= 0.98" awk -v x="$t" 'BEGIN { exit !(x >= 0.98) }'

# Cross-model reuse: a reproducible "fine-tune" (every weight times 1 + 0.1 u) imports
# the base's cache and recomputes chosen layers from the base's hidden states.
run "$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 \
    --perturb 0.1 --seed 7 -o "$TMPD/sib.kvm" || fail "make the fine-tune"
run "$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 \
    --perturb 0.1 --seed 7 -o "$TMPD/sib2.kvm"
check "the fine-tune is reproducible" cmp -s "$TMPD/sib.kvm" "$TMPD/sib2.kvm"
check "the fine-tune is another model" sh -c "! cmp -s '$TMPD/s.kvm' '$TMPD/sib.kvm'"
KV calibrate -m "$TMPD/sib.kvm" --from "$TMPD/s.kvm" \
    --tokens "$KVMESH_GOLDEN/stories260K/once_upon_a_time_256.tokens.txt" --continue 100 >"$TMPD/cal.json"
sed 's/^/# /' "$TMPD/cal.json"
for set in none best1 best2 all; do
    check "calibrate reports the recompute set '$set'" grep -q "\"set\":\"$set\"" "$TMPD/cal.json"
done
check "recomputing every layer is exact (same_top1 1, kld 0)" \
    grep -q '"set":"all".*"same_top1":1.0000,"mean_kld":0.000000' "$TMPD/cal.json"
gen -p "$P1" -n 5 --save-kv "$TMPD/base.kv" --save-kv-hidden 3 >/dev/null 2>&1
run "$BIN/kvmesh" generate -m "$TMPD/sib.kvm" -p "$P2" -n 30 --temp 0 --threads 1 >"$TMPD/sib.plain" 2>/dev/null
run "$BIN/kvmesh" generate -m "$TMPD/sib.kvm" -p "$P2" -n 30 --temp 0 --threads 1 --load-kv "$TMPD/base.kv" \
    --kv-recompute 0,1,2,3,4 >"$TMPD/sib.all" 2>"$TMPD/sib.all.err"
check "the fine-tune recomputing all layers from the base's cache generates its own text" \
    cmp -s "$TMPD/sib.plain" "$TMPD/sib.all"
check "and reports the recompute" grep -q "5 layers recomputed" "$TMPD/sib.all.err"
check "one recomputed layer from carried hidden states" run "$BIN/kvmesh" generate -m "$TMPD/sib.kvm" -p "$P2" -n 5 \
    --temp 0 --load-kv "$TMPD/base.kv" --kv-recompute 3 >/dev/null 2>&1
expect_fail "recompute needs hidden states the cache does not carry" 1 "no hidden states" \
    run "$BIN/kvmesh" generate -m "$TMPD/sib.kvm" -p "$P2" -n 5 --load-kv "$TMPD/base.kv" --kv-recompute 2
expect_fail "the fine-tune refuses the base's cache unless asked" 1 "another model" \
    run "$BIN/kvmesh" generate -m "$TMPD/sib.kvm" -p "$P2" -n 5 --load-kv "$TMPD/base.kv"

# Bad caches: a clear status, exit 1, the generation does not run on them.
size=$(wc -c <"$TMPD/p1.kv")
head -c $((size / 2)) "$TMPD/p1.kv" >"$TMPD/half.kv"
{ head -c 300 "$TMPD/p1.kv"; printf '\125'; tail -c +302 "$TMPD/p1.kv"; } >"$TMPD/flip.kv"
expect_fail "load a truncated cache" 1 "truncated" gen -p "$P1" -n 5 --load-kv "$TMPD/half.kv"
expect_fail "load a corrupted cache" 1 "corrupt" gen -p "$P1" -n 5 --load-kv "$TMPD/flip.kv"
run "$BIN/kvmesh" generate -m "$TMPD/a.kvm" -p "Once upon a time" -n 5 --temp 0 --save-kv "$TMPD/a.kv" >/dev/null 2>&1
expect_fail "load another model's cache" 1 "another model" gen -p "$P1" -n 5 --load-kv "$TMPD/a.kv"
expect_fail "load a missing cache" 1 "cannot read" gen -p "$P1" -n 5 --load-kv "$TMPD/none.kv"
expect_fail "an unknown codec" 2 "unknown KV codec" gen -p "$P1" -n 5 --save-kv "$TMPD/x.kv" --kv-codec k9v9
expect_fail "inspect a file that is not a cache" 1 "not a valid KV cache" KV inspect "$TMPD/s.kvm"
expect_fail "inspect a truncated cache" 1 "truncated" KV inspect "$TMPD/half.kv"
done_testing
