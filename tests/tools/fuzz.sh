#!/bin/sh
# libFuzzer (clang-14, ASan + UBSan) on the model-format parsers: safetensors, GGUF (with
# the GGUF source's tokenizer metadata) and tokenizer.json (with the strict JSON parser),
# each into the engine's tokenizer. A bounded time each, side by side, starting from the
# checked-in corpus in tests/tools/fuzz/corpus_*. Native host build only; options in
# tests/lib/fuzz.sh (KVMESH_FUZZ_SECS, KVMESH_FUZZ_MERGE).
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/lib/fuzz.sh"
F="$KVMESH_TOP/tests/tools/fuzz"
# tools/common and the engine's tokenizer, with what they link to in nn/ and the
# firmware's JSON reader (tools/common/json.c builds on it: fuzz_tokjson reaches it).
SRCS="$(ls "$KVMESH_TOP"/tools/common/*.c) $(ls "$KVMESH_TOP"/nn/src/*.c) $KVMESH_TOP/firmware/json.c"
HARNESSES="safetensors gguf tokjson"
for h in $HARNESSES; do
    # shellcheck disable=SC2086
    fuzz_build "$h" -pthread -I"$KVMESH_TOP/nn/include" -I"$KVMESH_TOP/tools/common" -I"$KVMESH_TOP/firmware" \
        -I"$KVMESH_BUILD/gen" "$F/fuzz_$h.c" $SRCS -lzstd -lpthread -lm
done
for h in $HARNESSES; do fuzz_run "$h" "$F/corpus_$h" -max_len=65536; done
for h in $HARNESSES; do fuzz_report "$h" "$F/corpus_$h"; done
done_testing
