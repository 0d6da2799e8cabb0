#!/bin/sh
# kvmesh bench: one JSON object with every field the speed issue asks for, numbers that
# agree with each other (bandwidth_fraction recomputed from its parts), the kernel
# path that was asked for, and bad options refused with the usual exit codes.
. "$(dirname "$0")/../lib/tap.sh"
require_models
M="$KVMESH_MODELS/stories260K"
run "$BIN/kvmesh-convert" -q --llama2c "$M/stories260K.bin" --tokenizer "$M/tok512.bin" -g 4 -o "$TMPD/s.kvm" ||
    fail "convert stories260K"
img_bytes=$(wc -c <"$TMPD/s.kvm")

run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --threads 2 -p 24 -n 8 --reps 1 --mem-mib 16 --kernels ref \
    >"$TMPD/b.json" 2>"$TMPD/b.err"
rc=$?
check "bench exits 0 ($(tail -n1 "$TMPD/b.err"))" [ "$rc" -eq 0 ]
echo "# $(cat "$TMPD/b.json")"
check "bench prints one line" [ "$(wc -l <"$TMPD/b.json")" -eq 1 ]
for k in prefill_tok_s decode_tok_s weight_bytes_per_token arena_bytes kernels mem_read_gbps \
         bandwidth_fraction threads machine cpu model n_layers hidden_dim group_size; do
    check "field $k" grep -q "\"$k\":" "$TMPD/b.json"
done
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$TMPD/b.json"; }
dec=$(num decode_tok_s); pre=$(num prefill_tok_s); w=$(num weight_bytes_per_token)
g=$(num mem_read_gbps); f=$(num bandwidth_fraction); a=$(num arena_bytes)
check "speeds and bandwidth are positive ($pre, $dec, $g)" \
    awk -v p="$pre" -v d="$dec" -v g="$g" 'BEGIN { exit !(p > 0 && d > 0 && g > 0) }'
check "bandwidth_fraction $f = decode * bytes / bandwidth" \
    awk -v d="$dec" -v w="$w" -v g="$g" -v f="$f" 'BEGIN { x = d * w / (g * 1e9); exit !(x - f < 0.002 && f - x < 0.002) }'
check "weight bytes per token ($w) within the image ($img_bytes)" \
    awk -v w="$w" -v i="$img_bytes" 'BEGIN { exit !(w > i / 2 && w < i) }'
check "arena bytes reported ($a)" awk -v a="$a" 'BEGIN { exit !(a > 0) }'
# The ceiling: the matmul kernel's in-cache rate on one thread and on both at once
# (summed, with its slowest thread), and what the latter allows.
mg=$(num matmul_gmacs_1t); ma=$(num matmul_gmacs_all); ms=$(num matmul_gmacs_slowest_thread)
mt=$(num prefill_macs_per_token); pc=$(num prefill_ceiling_tok_s)
rc=$(num prefill_to_decode_ceiling)
check "matmul_gmacs_1t ($mg), _all ($ma) and the layers' MACs per token ($mt) are positive" \
    awk -v m="$mg" -v a="$ma" -v t="$mt" 'BEGIN { exit !(m > 0 && a > 0 && t > 0) }'
check "the slowest of two threads ($ms) is at most half their sum ($ma)" \
    awk -v s="$ms" -v a="$ma" 'BEGIN { exit !(s > 0 && s <= a / 2 + 0.0005) }'
check "prefill_ceiling_tok_s $pc = gmacs_all * 1e9 / MACs per token" \
    awk -v m="$ma" -v t="$mt" -v p="$pc" \
        'BEGIN { lo = (m - 0.0005) * 1e9 / t; hi = (m + 0.0005) * 1e9 / t; exit !(p > lo - 0.1 && p < hi + 0.1) }'
check "prefill_to_decode_ceiling $rc = ceiling / (0.7 * bandwidth / bytes)" \
    awk -v p="$pc" -v g="$g" -v w="$w" -v r="$rc" 'BEGIN { x = p / (0.7 * g * 1e9 / w); exit !(r > 0.99 * x - 0.01 && r < 1.01 * x + 0.01) }'
check "the requested kernel path ran" grep -q '"kernels":"ref"' "$TMPD/b.json"
check "the requested thread count ran" grep -q '"threads":2,' "$TMPD/b.json"

expect_fail "bench: unknown mode" 2 "unknown mode" run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --mode nope
expect_fail "bench: unknown kernel path" 2 "not available" run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --kernels bogus
expect_fail "bench: prompt and decode past the context" 1 "do not fit" \
    run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --ctx 16 -p 12 -n 8 --mem-mib 1
expect_fail "bench: missing -m" 2 "required" run "$BIN/kvmesh" bench
expect_fail "bench: threads not a number" 2 "integer" run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --threads x
# kv-import: time to first token after a prefix, imported against computed. A lossless
# cache gives the same logits as computing; a lossy one still parses and imports whole.
run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --mode kv-import -p 64 --reps 1 >"$TMPD/k.json" 2>"$TMPD/k.err"
check "kv-import exits 0 ($(tail -n1 "$TMPD/k.err"))" [ "$?" -eq 0 ]
echo "# $(cat "$TMPD/k.json")"
for k in prefix_tokens stream_bytes bits_per_value ttft_compute_ms ttft_import_ms ttft_ratio codec; do
    check "kv-import field $k" grep -q "\"$k\":" "$TMPD/k.json"
done
check "kv-import: lossless import gives the computed logits" grep -q '"logits_identical":"yes"' "$TMPD/k.json"
kn() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$TMPD/k.json"; }
check "kv-import: ttft_ratio = compute / import" \
    awk -v c="$(kn ttft_compute_ms)" -v i="$(kn ttft_import_ms)" -v r="$(kn ttft_ratio)" \
    'BEGIN { x = c / i; exit !(i > 0 && x - r < 0.01 * r + 0.01 && r - x < 0.01 * r + 0.01) }'
run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --mode kv-import -p 64 --reps 1 --codec lossy >"$TMPD/l.json" 2>/dev/null
check "kv-import: a lossy cache imports (codec named)" grep -q '"codec":"lossy"' "$TMPD/l.json"
expect_fail "kv-import: unknown codec" 2 "unknown KV codec" \
    run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --mode kv-import --codec zip
expect_fail "kv-import: prefix past the context" 1 "does not fit" \
    run "$BIN/kvmesh" bench -m "$TMPD/s.kvm" --mode kv-import --ctx 32 -p 32
done_testing
