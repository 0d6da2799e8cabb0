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
expect_fail "convert: unknown numerics version" 2 "numerics must be 1 or 2" conv --llama2c "$CK" --tokenizer "$TOK" --numerics 3 -o "$TMPD/o.kvm"
expect_fail "convert: numerics 2 needs groups of a multiple of 4" 2 "multiple of 4" conv --llama2c "$CK" --tokenizer "$TOK" --numerics 2 -g 6 -o "$TMPD/o.kvm"
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

# --- converter: Hugging Face directories and GGUF files ---------------------------------------
X="$KVMESH_BUILD/tests/helpers/kvmesh_export"
xp() { run "$X" "$1" "$CK" "$TOK" "$2" --dtype "$3" 2>"$TMPD/x.err" || fail "export $2: $(cat "$TMPD/x.err")"; shift 3; }
xp hf "$TMPD/hf" f16
hfdir() { rm -rf "$TMPD/$1"; cp -r "$TMPD/hf" "$TMPD/$1"; }
ST="model.safetensors"
hfdir hf-trunc; head -c 300000 "$TMPD/hf/$ST" >"$TMPD/hf-trunc/$ST"
expect_fail "hf: truncated safetensors" 1 "past the end of the data.*truncated" conv --hf "$TMPD/hf-trunc" -o "$TMPD/o.kvm"
check "hf: no output left after a failure" [ ! -e "$TMPD/o.kvm" ]
hfdir hf-short; head -c 6 "$TMPD/hf/$ST" >"$TMPD/hf-short/$ST"
expect_fail "hf: safetensors shorter than its length field" 1 "truncated" conv --hf "$TMPD/hf-short" -o "$TMPD/o.kvm"
hfdir hf-len; { printf '\377\377\377\377\000\000\000\000'; tail -c +9 "$TMPD/hf/$ST"; } >"$TMPD/hf-len/$ST"
expect_fail "hf: header length past the end of the file" 1 "past the end of the file" conv --hf "$TMPD/hf-len" -o "$TMPD/o.kvm"
hfdir hf-json; { head -c 8 "$TMPD/hf/$ST"; printf '[!'; tail -c +11 "$TMPD/hf/$ST"; } >"$TMPD/hf-json/$ST"
expect_fail "hf: corrupted safetensors header" 1 "corrupted header" conv --hf "$TMPD/hf-json" -o "$TMPD/o.kvm"
hfdir hf-dtype; sed 's/"F16"/"Q16"/' "$TMPD/hf/$ST" >"$TMPD/hf-dtype/$ST"
expect_fail "hf: unknown dtype" 1 "unknown dtype" conv --hf "$TMPD/hf-dtype" -o "$TMPD/o.kvm"
hfdir hf-dt2; sed '0,/"F16"/s//"I16"/' "$TMPD/hf/$ST" >"$TMPD/hf-dt2/$ST"
expect_fail "hf: unsupported dtype" 1 "dtype I16" conv --hf "$TMPD/hf-dt2" -o "$TMPD/o.kvm"
# the first norm vector moved 6 bytes back into the embedding (same length, same header size)
hfdir hf-ovl; sed 's/"data_offsets": \[65536, 65664\]/"data_offsets": [65530, 65658]/' "$TMPD/hf/$ST" >"$TMPD/hf-ovl/$ST"
expect_fail "hf: overlapping tensors" 1 "overlap" conv --hf "$TMPD/hf-ovl" -o "$TMPD/o.kvm"
run "$X" hf "$CK" "$TOK" "$TMPD/hf-miss" --dtype bf16 --omit model.layers.2.mlp.up_proj.weight
expect_fail "hf: tensor missing" 1 "model.layers.2.mlp.up_proj.weight is missing" conv --hf "$TMPD/hf-miss" -o "$TMPD/o.kvm"
run "$X" hf "$CK" "$TOK" "$TMPD/hf-miss3" --dtype bf16 --shards 3 --omit model.norm.weight
expect_fail "hf: tensor missing from sharded checkpoint" 1 "model.norm.weight is missing" conv --hf "$TMPD/hf-miss3" -o "$TMPD/o.kvm"
hfdir hf-shape; sed 's/"intermediate_size": 172/"intermediate_size": 176/' "$TMPD/hf/config.json" >"$TMPD/hf-shape/config.json"
expect_fail "hf: shape mismatch with config.json" 1 "has shape \[172,64\], expected \[176,64\]" conv --hf "$TMPD/hf-shape" -o "$TMPD/o.kvm"
run "$X" hf "$CK" "$TOK" "$TMPD/hf-arch" --dtype f16 --arch MistralForCausalLM
expect_fail "hf: unsupported architecture" 1 "unsupported architecture \"MistralForCausalLM\"" conv --hf "$TMPD/hf-arch" -o "$TMPD/o.kvm"
hfdir hf-rope; sed 's/"rope_scaling": null/"rope_scaling": {"rope_type": "llama3", "factor": 8.0}/' "$TMPD/hf/config.json" >"$TMPD/hf-rope/config.json"
expect_fail "hf: rope scaling refused" 1 "rope_scaling llama3 is not supported" conv --hf "$TMPD/hf-rope" -o "$TMPD/o.kvm"
hfdir hf-bias; sed 's/"attention_bias": false/"attention_bias": true/' "$TMPD/hf/config.json" >"$TMPD/hf-bias/config.json"
expect_fail "hf: attention biases refused" 1 "attention_bias" conv --hf "$TMPD/hf-bias" -o "$TMPD/o.kvm"
hfdir hf-cfg; printf '{"architectures": ["LlamaForCausalLM"],' >"$TMPD/hf-cfg/config.json"
expect_fail "hf: config.json is not JSON" 1 "config.json is not valid JSON" conv --hf "$TMPD/hf-cfg" -o "$TMPD/o.kvm"
hfdir hf-tok; sed 's/"type": "BPE"/"type": "Unigram"/' "$TMPD/hf/tokenizer.json" >"$TMPD/hf-tok/tokenizer.json"
expect_fail "hf: unsupported tokenizer model" 1 "only BPE" conv --hf "$TMPD/hf-tok" -o "$TMPD/o.kvm"
hfdir hf-tok2; head -c 5000 "$TMPD/hf/tokenizer.json" >"$TMPD/hf-tok2/tokenizer.json"
expect_fail "hf: truncated tokenizer.json" 1 "tokenizer.json is not valid JSON" conv --hf "$TMPD/hf-tok2" -o "$TMPD/o.kvm"
hfdir hf-nom; rm "$TMPD/hf-nom/$ST"
expect_fail "hf: no weights" 1 "cannot read .*model.safetensors" conv --hf "$TMPD/hf-nom" -o "$TMPD/o.kvm"

xp gguf "$TMPD/m.gguf" q8_0
size=$(wc -c <"$TMPD/m.gguf")
head -c $((size - 1000)) "$TMPD/m.gguf" >"$TMPD/g-trunc.gguf"
expect_fail "gguf: truncated" 1 "truncated.*runs past the end" conv --gguf "$TMPD/g-trunc.gguf" -o "$TMPD/o.kvm"
head -c 3000 "$TMPD/m.gguf" >"$TMPD/g-hdr.gguf"
expect_fail "gguf: truncated inside the header" 1 "truncated" conv --gguf "$TMPD/g-hdr.gguf" -o "$TMPD/o.kvm"
{ printf 'GGUF\002\000\000\000'; tail -c +9 "$TMPD/m.gguf"; } >"$TMPD/g-ver.gguf"
expect_fail "gguf: version 2" 1 "version 2 is not supported" conv --gguf "$TMPD/g-ver.gguf" -o "$TMPD/o.kvm"
{ printf 'GGUF\003\000\000\000\377\377\377\377\377\377\377\177'; tail -c +17 "$TMPD/m.gguf"; } >"$TMPD/g-cnt.gguf"
expect_fail "gguf: corrupted header (absurd tensor count)" 1 "corrupted header" conv --gguf "$TMPD/g-cnt.gguf" -o "$TMPD/o.kvm"
expect_fail "gguf: not a GGUF file" 1 "bad magic" conv --gguf "$CK" -o "$TMPD/o.kvm"
run "$X" gguf "$CK" "$TOK" "$TMPD/g-miss.gguf" --dtype f32 --omit blk.4.ffn_down.weight
expect_fail "gguf: tensor missing" 1 "blk.4.ffn_down.weight is missing" conv --gguf "$TMPD/g-miss.gguf" -o "$TMPD/o.kvm"
run "$X" gguf "$CK" "$TOK" "$TMPD/g-arch.gguf" --dtype f32 --arch qwen2
expect_fail "gguf: unsupported architecture" 1 "unsupported architecture \"qwen2\"" conv --gguf "$TMPD/g-arch.gguf" -o "$TMPD/o.kvm"
# llama.feed_forward_length (u32 after its key and type) from 172 to 176: shapes disagree
off=$(grep -obUa 'llama.feed_forward_length' "$TMPD/m.gguf" | head -1 | cut -d: -f1)
cp "$TMPD/m.gguf" "$TMPD/g-shape.gguf"
printf '\260' | dd of="$TMPD/g-shape.gguf" bs=1 seek=$((off + 25 + 4)) conv=notrunc 2>/dev/null
expect_fail "gguf: shape mismatch with the metadata" 1 "has shape \[64,172,1,1\] \(ne\), expected \[64,176\]" \
    conv --gguf "$TMPD/g-shape.gguf" -o "$TMPD/o.kvm"
expect_fail "convert: two inputs" 2 "one input" conv --hf "$TMPD/hf" --gguf "$TMPD/m.gguf" -o "$TMPD/o.kvm"
expect_fail "convert: --tokenizer without --llama2c" 2 "one input" conv --hf "$TMPD/hf" --tokenizer "$TOK" -o "$TMPD/o.kvm"

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
