#!/bin/sh
# Chunked prompts against the unchunked U-shape (issue 9's TTFT target), side by side:
# for each prompt length, `kvmesh collab --mode split` with --chunk auto and with
# --chunk whole, one after the other (which goes first alternates from pair to pair),
# --reps times, the device slowed down and behind
# kvmesh-linksim. This machine is shared and noisy: only the ratios of runs next to each
# other mean much, so every pair is kept. Prints one JSON object per prompt length on
# stdout (the TTFTs, each pair's cut = 1 - chunked / whole, their median, the chunk size
# and both sides' compute), progress on stderr.
#
# Usage: tools/collab/ttft.sh [--model smollm2|stories|aidreams] [--link lan|wifi|lte]
#            [--split K,M] [--prompt-chars "111 250 450"] [--reps N] [--slowdown F]
# Defaults: smollm2 (a random smollm2-135m-shape image; its tokenizer makes about one
# token per character of the prompt text), wifi, split 2,2, 111 250 450 characters,
# 7 reps (after one warm-up pair), slowdown 8. stories and aidreams use split 1,1;
# aidreams' context is 128.
# The prompt is a children's story repeated to the length; 4 new tokens per run.
set -u
PROG=ttft.sh
MODEL=smollm2 LINK=wifi SPLIT="" CHARS="111 250 450" REPS=7 SLOW=8
while [ $# -gt 0 ]; do
    case "$1" in -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
    [ $# -ge 2 ] || { echo "$PROG: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --model) MODEL=$2 ;;
        --link) LINK=$2 ;;
        --split) SPLIT=$2 ;;
        --prompt-chars) CHARS=$2 ;;
        --reps) REPS=$2 ;;
        --slowdown) SLOW=$2 ;;
        *) echo "$PROG: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
case $REPS in '' | *[!0-9]* | 0*) echo "$PROG: --reps is a positive number" >&2; exit 2 ;; esac
[ -n "$CHARS" ] || { echo "$PROG: --prompt-chars needs at least one length" >&2; exit 2; }
for c in $CHARS; do
    case $c in *[!0-9]* | 0*) echo "$PROG: --prompt-chars are positive numbers" >&2; exit 2 ;; esac
done
case $SLOW in '' | *[!0-9.]* | .* | *. | *.*.*) echo "$PROG: --slowdown is a number such as 8 or 2.5" >&2; exit 2 ;; esac
. "$(dirname "$0")/lib.sh"
case $MODEL in
    smollm2) CTX=1024; : "${SPLIT:=2,2}" ;;
    stories) CTX=512; : "${SPLIT:=1,1}" ;;
    aidreams) CTX=128; : "${SPLIT:=1,1}" ;;
    *) log "--model is smollm2, stories or aidreams"; exit 2 ;;
esac
IMG=$(model_image "$MODEL" "$T") || exit 1
start_broker || exit 1
start_peer "$IMG" "$CTX" "$T/peer.log" || exit 1
LP=$(free_port 2)
"$BIN/kvmesh-linksim" --listen "$LP" --to "127.0.0.1:$BP" --profile "$LINK" 2>"$T/linksim.log" &
PIDS="$PIDS $!"
wait_port "$LP" || { log "linksim did not start"; exit 1; }
conf dev "$LP" "$IMG" "$CTX"

STORY="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it, but a dog took it first. Lily was sad, but then the dog brought the ball back to her and wagged its tail. They played together all day long, and Lily was very happy. "
for chars in $CHARS; do
    text=""
    while [ ${#text} -lt "$chars" ]; do text="$text$STORY"; done
    prompt=$(printf '%s' "$text" | cut -c "1-$chars")
    : >"$T/pairs"
    r=0   # rep 0 warms both sides up (the first run after the peer starts is slow) and is not kept
    while [ $r -le "$REPS" ]; do
        order="auto whole"
        [ $((r % 2)) = 1 ] || order="whole auto"
        for chunk in $order; do
            if ! "$BIN/kvmesh" collab --config "$T/dev.conf" --peer peer --mode split --split "$SPLIT" \
                --chunk "$chunk" --slowdown "$SLOW" --deadline-ms 20000 -p "$prompt" -n 4 --json "$T/$chunk.json" \
                >/dev/null 2>"$T/err.txt"; then
                log "collab --chunk $chunk failed: $(tail -3 "$T/err.txt")"
                exit 1
            fi
            if grep -q '"fallback":true' "$T/$chunk.json"; then
                log "collab --chunk $chunk fell back to standalone (the peer missed the deadline): $(tail -3 "$T/err.txt")"
                exit 1
            fi
        done
        a=$(num ttft_ms "$T/auto.json") w=$(num ttft_ms "$T/whole.json")
        [ $r = 0 ] || echo "$a $w $(num chunk "$T/auto.json") $(num prompt_tokens "$T/auto.json") $(num device_compute_ms "$T/auto.json")" \
            "$(num peer_compute_ms "$T/auto.json") $(num device_compute_ms "$T/whole.json") $(num peer_compute_ms "$T/whole.json")" \
            >>"$T/pairs"
        log "$MODEL $LINK split $SPLIT, $chars chars, rep $r/$REPS$([ $r = 0 ] && echo ' (warm-up)'): chunked $a ms, whole $w ms"
        r=$((r + 1))
    done
    awk -v model="$MODEL" -v link="$LINK" -v spl="$SPLIT" -v slow="$SLOW" '
        function list(v, n, fmt,   i, s) { s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") sprintf(fmt, v[i]); return "[" s "]" }
        { n++; a[n] = $1; w[n] = $2; cut[n] = 1 - $1 / $2; ch[n] = $3; pt = $4
          dc[n] = $5; pc[n] = $6; dw[n] = $7; pw[n] = $8 }
        END {
            for (i = 1; i <= n; i++) s[i] = cut[i]
            for (i = 2; i <= n; i++) for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
            med = n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
            met = 0; for (i = 1; i <= n; i++) if (cut[i] >= 0.41) met++
            printf "{\"model\":\"%s\",\"link\":\"%s\",\"split\":\"%s\",\"slowdown\":%g,\"prompt_tokens\":%d,", model, link, spl, slow + 0, pt
            printf "\"chunked_ttft_ms\":%s,\"whole_ttft_ms\":%s,\"cut\":%s,", list(a, n, "%.1f"), list(w, n, "%.1f"), list(cut, n, "%.3f")
            printf "\"median_cut\":%.3f,\"min_cut\":%.3f,\"max_cut\":%.3f,\"pairs_at_least_0.41\":%d,\"pairs\":%d,", med, s[1], s[n], met, n
            printf "\"chunk\":%s,\"chunked_device_ms\":%s,\"chunked_peer_ms\":%s,\"whole_device_ms\":%s,\"whole_peer_ms\":%s}\n",
                list(ch, n, "%d"), list(dc, n, "%.0f"), list(pc, n, "%.0f"), list(dw, n, "%.0f"), list(pw, n, "%.0f")
        }' "$T/pairs"
done
