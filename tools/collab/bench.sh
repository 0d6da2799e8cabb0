#!/bin/sh
# Collaboration benchmark (issue 9): every mode of `kvmesh collab` against device-only
# and peer-only, over simulated links. Prints a JSON array on stdout (one object per
# model, link and mode: TTFT, time between tokens, link bytes per token, the device's
# share of compute), progress on stderr, markdown tables (tools/collab/table.py) and, with
# python3-matplotlib, a PNG plot in --out.
#
#   - a local mosquitto (plain TCP, set_tcp_nodelay; payloads are sealed as always);
#   - the peer connects to it directly: it stands for a server next to the broker;
#   - the device connects through kvmesh-linksim with the link profile (lan: 1000 Mbit/s,
#     1 ms; wifi: 50 Mbit/s, 10 ms; lte: 10 Mbit/s, 50 ms, 0.5% loss; one-way delays);
#   - the device's compute is slowed by --slowdown (default 8: a Pi 4 against a server;
#     each compute interval of kvmesh collab lasts F times its thread's CPU time).
#
# Usage: tools/collab/bench.sh [--links "lan wifi lte"] [--models "stories aidreams smollm2"]
#                              [--modes "device peer split split-whole split-int8 spec split-spec
#                                        split-spec-u exit"] [--slowdown F]
#                              [--split K,M] [-n TOKENS] [--out DIR]
# --split overrides the split of the split, split-whole and split-int8 modes (default 1,1
# for stories and aidreams, 2,2 for smollm2).
# Models (tools/collab/lib.sh): stories = stories260K (5 layers) with exit heads at layers
# 2, 3 and 4 (kvmesh-exit-train, 20000 tokens); aidreams = aidreams260K (4 layers,
# 128-token context) with heads at 2 and 3 (60000 tokens, 16 epochs); made once in
# --out; smollm2 = a random
# smollm2-135m-shape image (compute-heavy; random weights, so drafts and exits are never
# right: the speculative and exit modes are left out for it).
# Modes: split (exact hidden states, prompt chunks pipelined), split-whole (the same
# without chunking: the device's front layers over the whole prompt before the first
# message), split-int8 (int8, with the agreement measured), spec (drafts from layers
# [0,k) + the exit head at k: 4 for stories, 3 for aidreams), split-spec (split plus
# speculative, HAT: split k,0, drafts from the device's layers [0,k) and the exit head at
# k, the peer runs the rest over d+1 rows), split-spec-u (a split with back layers on the
# device, 2,2 / 1,2, drafting through all the device's layers and the final head,
# skipping the peer's middle), exit (layer k, top-1 probability >= 0.6 for stories, 0.45
# for aidreams; agreement measured), device and peer (the baselines).
set -u
PROG=bench.sh
LINKS="lan wifi lte" MODELS="stories aidreams smollm2"
MODES="device peer split split-whole split-int8 spec split-spec split-spec-u exit" SLOW=8 NTOK=64 OUT="" SPLIT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --links) LINKS=$2; shift ;;
        --models) MODELS=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --slowdown) SLOW=$2; shift ;;
        --split) SPLIT=$2; shift ;;
        -n) NTOK=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
. "$(dirname "$0")/lib.sh"
[ -n "$OUT" ] || OUT="$T/out"
mkdir -p "$OUT"
start_broker || exit 1

# ---- runs ---------------------------------------------------------------------------------------
STORY="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it, but a dog took it first. Lily was sad, but then the dog brought the ball back to her and wagged its tail. They played together all day long, and Lily was very happy."
# The smollm2 shape's tokenizer makes about one token per character of this: 111 tokens.
SHORT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
echo "[" >"$OUT/results.json"
first=1
DREAM="I dreamed of a city made of glass, where the streets were rivers of light and every window held a different sky."
for model in $MODELS; do
    # Per model: context, modes, the spec/exit layer and threshold, split, split-spec
    # splits, new tokens and prompt. aidreams260K has 4 layers and a 128-token context.
    IMG=$(model_image "$model" "$OUT") || exit 1
    case $model in
        stories) CTX=512; modes=$MODES; layer=4; thr=0.6; split=1,1; hs=4,0; hsu=2,2; nt=$NTOK; prompt=$STORY ;;
        aidreams) CTX=128; modes=$MODES; layer=3; thr=0.45; split=1,1; hs=3,0; hsu=1,2; nt=$NTOK; prompt=$DREAM ;;
        smollm2) CTX=256; modes=$(echo " $MODES " | sed 's/ spec / /; s/ split-spec / /; s/ split-spec-u / /; s/ exit / /')
                 layer=8; thr=0.6; split=2,2; hs=2,2; hsu=2,2; nt=$((NTOK / 4)); prompt=$SHORT ;;
    esac
    [ -z "$SPLIT" ] || split=$SPLIT
    start_peer "$IMG" "$CTX" "$T/peer-$model.log" || exit 1
    for link in $LINKS; do
        LP=$(free_port 2)
        "$BIN/kvmesh-linksim" --listen "$LP" --to "127.0.0.1:$BP" --profile "$link" 2>"$T/linksim.log" &
        lpid=$!
        wait_port "$LP" || { log "linksim did not start"; exit 1; }
        conf dev "$LP" "$IMG" "$CTX"
        for mode in $modes; do
            case $mode in
                split) args="--mode split --split $split" ;;
                split-whole) args="--mode split --split $split --chunk whole" ;;
                split-int8) args="--mode split --split $split --hidden int8 --check" ;;
                spec) args="--mode spec --layer $layer" ;;
                split-spec) args="--mode split-spec --split $hs" ;;
                split-spec-u) args="--mode split-spec --split $hsu --drafter skip" ;;
                exit) args="--mode exit --layer $layer --exit-threshold $thr --check" ;;
                *) args="--mode $mode" ;;
            esac
            # shellcheck disable=SC2086
            if "$BIN/kvmesh" collab --config "$T/dev.conf" --peer peer $args \
                --slowdown "$SLOW" --deadline-ms 20000 -p "$prompt" -n "$nt" --json "$T/r.json" \
                >"$T/out.txt" 2>"$T/err.txt"; then
                line=$(sed "s/^{\"mode\":\"[a-z-]*\"/{\"model\":\"$model\",\"link\":\"$link\",\"mode\":\"$mode\"/" "$T/r.json")
                [ $first = 1 ] || echo "," >>"$OUT/results.json"
                printf '%s' "$line" >>"$OUT/results.json"
                first=0
                log "$model $link $mode: $(tail -1 "$T/err.txt" | sed 's/^kvmesh collab: //')"
            else
                log "$model $link $mode failed: $(tail -3 "$T/err.txt")"
            fi
        done
        kill "$lpid" 2>/dev/null
        wait "$lpid" 2>/dev/null
    done
    kill "$PPID_" 2>/dev/null
    wait "$PPID_" 2>/dev/null
done
echo "]" >>"$OUT/results.json"
cat "$OUT/results.json"
# The tables README.md and docs/collab.md show (tests/tools/collab-table.sh keeps them
# equal to docs/bench/collab.json): copy results.json there and paste these.
/usr/bin/python3 "$top/tools/collab/table.py" "$OUT/results.json" >"$OUT/table.md" &&
    /usr/bin/python3 "$top/tools/collab/table.py" --wifi "$OUT/results.json" >"$OUT/table-wifi.md" &&
    log "tables: $OUT/table.md (docs/collab.md), $OUT/table-wifi.md (README.md)"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    /usr/bin/python3 "$top/tools/collab/plot.py" "$OUT/results.json" "$OUT/collab.png" && log "plot: $OUT/collab.png"
else
    log "no plot: python3-matplotlib is not installed (tools/setup.sh installs it)"
fi
