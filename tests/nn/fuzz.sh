#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the KV stream decoder for a bounded time, from a
# seed corpus of real streams (raw, lossless, lossy) made here with the programs.
# Native host build only; options in tests/lib/fuzz.sh (KVMESH_FUZZ_SECS).
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/lib/fuzz.sh"
# shellcheck disable=SC2046
fuzz_build kv -I"$KVMESH_TOP/nn/include" -I"$KVMESH_TOP/nn/src" $(pkg-config --cflags libzstd) -pthread \
    "$KVMESH_TOP/tests/nn/fuzz/fuzz_kv.c" $(ls "$KVMESH_TOP"/nn/src/*.c) $(pkg-config --libs libzstd)
IMG="$TMPD/fuzz.kvm"
"$BIN/kvmesh-convert" -q --random 64,172,2,8,4,300,64 --seed 3 -g 4 -o "$IMG" || { fail "make the fuzz image"; done_testing; }
corpus="$TMPD/corpus"
mkdir -p "$corpus"
for c in raw lossless k3v2 k4v4g8c8 k2v2c16; do
    "$BIN/kvmesh" generate -m "$IMG" -p "t1 t2 t3" -n 20 --temp 0 --threads 1 --save-kv "$corpus/$c.kv" \
        --kv-codec "$c" >/dev/null 2>&1 || fail "seed stream $c"
done
export KVMESH_FUZZ_IMAGE="$IMG"
fuzz_run kv "$corpus"
fuzz_report kv
done_testing
