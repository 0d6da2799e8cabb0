#!/bin/sh
# Early exit over many prompts (issue 9): for each confidence threshold, runs
# `kvmesh collab --mode exit --check` on every prompt of a file against a local peer and
# prints one JSON line with the tokens kept on the device (kept_fraction: of the tokens
# decided) and the same-token agreement with the full model, summed over the prompts
# (progress on stderr). The heads are trained on text the model
# generates from BOS (kvmesh-exit-train), so the prompts are not their training text.
#
# Usage: tools/collab/exit-sweep.sh [--model stories|aidreams] [--layer K]
#            [--thresholds "0.4 0.5 0.6"] [--prompts FILE] [-n TOKENS] [--out DIR]
# Defaults: stories: layer 4, thresholds 0.4 0.5 0.6 0.7, tools/collab/prompts-stories.txt,
# 200 new tokens; aidreams: layer 3, thresholds 0.35 0.4 0.45 0.5 0.6,
# tools/collab/prompts-aidreams.txt, 64 new tokens (its context is 128).
# --out keeps the image with the trained heads between runs.
set -u
PROG=exit-sweep.sh
MODEL=stories LAYER="" THRS="" PROMPTS="" NTOK="" OUT=""
while [ $# -gt 0 ]; do
    case "$1" in -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
    [ $# -ge 2 ] || { echo "$PROG: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --model) MODEL=$2 ;;
        --layer) LAYER=$2 ;;
        --thresholds) THRS=$2 ;;
        --prompts) PROMPTS=$2 ;;
        -n) NTOK=$2 ;;
        --out) OUT=$2 ;;
        *) echo "$PROG: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
. "$(dirname "$0")/lib.sh"
case $MODEL in
    stories) CTX=512; : "${LAYER:=4}" "${THRS:=0.4 0.5 0.6 0.7}" "${NTOK:=200}" ;;
    aidreams) CTX=128; : "${LAYER:=3}" "${THRS:=0.35 0.4 0.45 0.5 0.6}" "${NTOK:=64}" ;;
    *) log "--model is stories or aidreams"; exit 2 ;;
esac
[ -n "$PROMPTS" ] || PROMPTS="$top/tools/collab/prompts-$MODEL.txt"
[ -r "$PROMPTS" ] || { log "cannot read $PROMPTS"; exit 1; }
[ -n "$OUT" ] || OUT="$T/out"
mkdir -p "$OUT"
IMG=$(model_image "$MODEL" "$OUT") || exit 1
start_broker || exit 1
start_peer "$IMG" "$CTX" "$T/peer.log" || exit 1
conf dev "$BP" "$IMG" "$CTX"
for thr in $THRS; do
    kept=0 off=0 same=0 made=0 np=0
    while IFS= read -r prompt; do
        [ -n "$prompt" ] || continue
        if ! "$BIN/kvmesh" collab --config "$T/dev.conf" --peer peer --mode exit --layer "$LAYER" \
            --exit-threshold "$thr" --check -p "$prompt" -n "$NTOK" --json "$T/r.json" >/dev/null 2>"$T/err"; then
            log "threshold $thr, prompt '$prompt' failed: $(tail -2 "$T/err")"
            exit 1
        fi
        n=$(num new_tokens "$T/r.json")
        kept=$((kept + $(num kept "$T/r.json")))
        off=$((off + $(num offloaded "$T/r.json")))
        same=$(awk -v s="$same" -v a="$(num agreement "$T/r.json")" -v n="$n" 'BEGIN { printf "%.0f", s + a * n }')
        made=$((made + n))
        np=$((np + 1))
    done <"$PROMPTS"
    log "threshold $thr: kept $kept of $made tokens, $same agree with the full model"
    awk -v m="$MODEL" -v l="$LAYER" -v t="$thr" -v p="$np" -v n="$made" -v k="$kept" -v o="$off" -v s="$same" \
        'BEGIN { printf "{\"model\":\"%s\",\"layer\":%d,\"threshold\":%s,\"prompts\":%d,\"tokens\":%d,\"kept\":%d,\"offloaded\":%d,\"kept_fraction\":%.4f,\"agreement\":%.4f}\n", m, l, t, p, n, k, o, k + o ? k / (k + o) : 0, n ? s / n : 0 }'
done
