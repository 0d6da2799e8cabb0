#!/bin/sh
# Quality and exactness on the real models, through the programs users run:
#  - kvmesh-eval against the fp32 golden logits: same_top1 >= 0.99, mean_kld <= 0.001;
#  - kvmesh generate reproduces the greedy once_upon_a_time_64 text byte for byte;
#  - the image and the logits are bit-identical to the committed expectations, which
#    were produced on x86-64: on an aarch64 (qemu) run this proves cross-platform
#    bit-exactness of the converter and the engine;
#  - logits are identical for 1, 2 and 4 threads and for every kernel path;
#  - all of it for numerics version 1 (int16 matmul inputs) and 2 (int8 in groups,
#    interleaved weights: kvmesh-convert --numerics 2).
. "$(dirname "$0")/../lib/tap.sh"
require_models
EXPECT="$KVMESH_TOP/tests/tools/expected.sha256"

for nv in 1 2; do
for m0 in stories260K aidreams260K; do
    # version 1 keeps its names (and expected hashes); version 2 is "<model> n2"
    m=$m0; key=$m0-g4; [ $nv = 1 ] || { m="$m0 n2"; key=$m0-g4-n2; }
    img="$TMPD/$m0.n$nv.kvm"
    if ! run "$BIN/kvmesh-convert" -q --llama2c "$KVMESH_MODELS/$m0/$m0.bin" \
            --tokenizer "$KVMESH_MODELS/$m0/tok512.bin" -g 4 --numerics $nv -o "$img"; then
        fail "$m: convert"; continue
    fi
    ok "$m: convert"
    want=$(awk -v k="$key-image" '$2 == k {print $1}' "$EXPECT")
    got=$(sha256sum "$img" | cut -d' ' -f1)
    check "$m: image is bit-identical to the x86-64 reference ($got)" [ "$got" = "$want" ]

    toks="$KVMESH_GOLDEN/$m0/once_upon_a_time_256.tokens.txt"
    json=$(run "$BIN/kvmesh-eval" -m "$img" --tokens "$toks" --ref "$KVMESH_GOLDEN/$m0/once_upon_a_time_256.logits.f32" \
           --logits-out "$TMPD/$m0.t1.f32")
    echo "# $m: $json"
    top1=$(echo "$json" | sed 's/.*"same_top1":\([0-9.]*\).*/\1/')
    kld=$(echo "$json" | sed 's/.*"mean_kld":\([0-9.]*\).*/\1/')
    check "$m: same_top1 $top1 >= 0.99" awk -v x="$top1" 'BEGIN { exit !(x >= 0.99) }'
    check "$m: mean_kld $kld <= 0.001" awk -v x="$kld" 'BEGIN { exit !(x <= 0.001) }'
    want=$(awk -v k="$key-logits" '$2 == k {print $1}' "$EXPECT")
    got=$(sha256sum "$TMPD/$m0.t1.f32" | cut -d' ' -f1)
    check "$m: logits are bit-identical to the x86-64 reference" [ "$got" = "$want" ]

    for t in 2 4; do
        run "$BIN/kvmesh-eval" -m "$img" --tokens "$toks" --threads $t --batch 7 --logits-out "$TMPD/$m0.t$t.f32"
        check "$m: logits with $t threads equal 1 thread" cmp -s "$TMPD/$m0.t1.f32" "$TMPD/$m0.t$t.f32"
    done
    for k in $(run "$BIN/kvmesh" version | sed 's/.*kernels: //'); do
        run "$BIN/kvmesh-eval" -m "$img" --tokens "$toks" --kernels "$k" --logits-out "$TMPD/$m0.k.f32"
        check "$m: logits with kernel path $k equal the reference path" cmp -s "$TMPD/$m0.t1.f32" "$TMPD/$m0.k.f32"
    done

    # run.c -n 64 makes 64 forward passes; each prints the next token, and the first
    # (prompt_tokens - 1) of them are the prompt's own tokens.
    np=$(run "$BIN/kvmesh" generate -m "$img" -p "Once upon a time" -n 0 --temp 0 2>&1 >/dev/null |
         sed -n 's/^prompt tokens: \([0-9]*\),.*/\1/p')
    run "$BIN/kvmesh" generate -m "$img" -p "Once upon a time" -n $((64 - np + 1)) --temp 0 \
        >"$TMPD/$m0.64.txt" 2>"$TMPD/$m0.64.err"
    check "$m: greedy text equals the fp32 golden once_upon_a_time_64" \
        cmp "$TMPD/$m0.64.txt" "$KVMESH_GOLDEN/$m0/once_upon_a_time_64.txt"
done
done
done_testing
