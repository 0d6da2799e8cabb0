#!/bin/sh
# Collaboration benchmark (issue 9): every mode of `kvmesh collab` against device-only
# and peer-only, over simulated links. Prints a JSON array on stdout (one object per
# model, link and mode: TTFT, time between tokens, link bytes per token, the device's
# share of compute), progress on stderr, and with python3-matplotlib a PNG plot.
#
#   - a local mosquitto (plain TCP, set_tcp_nodelay; payloads are sealed as always);
#   - the peer connects to it directly: it stands for a server next to the broker;
#   - the device connects through kvmesh-linksim with the link profile (lan: 1000 Mbit/s,
#     1 ms; wifi: 50 Mbit/s, 10 ms; lte: 10 Mbit/s, 50 ms, 0.5% loss; one-way delays);
#   - the device's compute is slowed by --slowdown (default 8: a Pi 4 against a server;
#     kvmesh collab sleeps (F-1) times each measured compute interval).
#
# Usage: tools/collab/bench.sh [--links "lan wifi lte"] [--models "stories smollm2"]
#                              [--modes "device peer split split-whole split-int8 spec split-spec
#                                        split-spec-u exit"] [--slowdown F]
#                              [-n TOKENS] [--out DIR]
# Models: stories = stories260K with exit heads at layers 2, 3 and 4 (kvmesh-exit-train,
# 20000 tokens); smollm2 = a random smollm2-135m-shape image (compute-heavy; random
# weights, so drafts and exits are never right: spec and exit are left out for it).
# Modes: split (exact hidden states, prompt chunks pipelined), split-whole (the same
# without chunking: the device's front layers over the whole prompt before the first
# message), split-int8 (int8, with the agreement measured), spec (drafts from layers
# [0,4) + the exit head), split-spec (split plus speculative, HAT: split 4,0, drafts from
# the device's layers [0,4) and the exit head at 4, the peer runs layer 4 over d+1 rows),
# split-spec-u (split 2,2, drafts through the device's own layers [0,2) and [3,5) and the
# final head, skipping the peer's middle), exit (layer 4, top-1 probability >= 0.6,
# agreement measured), device and peer (the baselines).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
B="${KVMESH_BUILD:-$top/build/host}"
case "$B" in /*) ;; *) B="$top/$B" ;; esac
BIN="$B/bin"
M="${KVMESH_MODELS:-$top/../shared/models}"
LINKS="lan wifi lte" MODELS="stories smollm2" MODES="device peer split split-whole split-int8 spec split-spec split-spec-u exit" SLOW=8 NTOK=64 OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --links) LINKS=$2; shift ;;
        --models) MODELS=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --slowdown) SLOW=$2; shift ;;
        -n) NTOK=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
T=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-collab-bench.XXXXXX")
[ -n "$OUT" ] || OUT="$T/out"
mkdir -p "$OUT"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
log() { echo "bench.sh: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + $$ % 20000 + ${1:-0}))
}
wait_port() {
    i=0
    while [ $i -lt 100 ]; do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ---- images ------------------------------------------------------------------------------
S="$M/stories260K"
log "images"
"$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 -o "$T/s.kvm" || exit 1
if [ ! -f "$OUT/stories-exit.kvm" ]; then
    log "training exit heads (layers 2,3,4; 20000 tokens)"
    "$BIN/kvmesh-exit-train" -q -m "$T/s.kvm" --layers 2,3,4 --tokens 20000 -o "$OUT/stories-exit.kvm" || exit 1
fi
case " $MODELS " in *" smollm2 "*)
    [ -f "$OUT/smollm2.kvm" ] || "$BIN/kvmesh-convert" -q --random smollm2-135m --seed 1 -o "$OUT/smollm2.kvm" || exit 1
esac

# ---- broker, secret, configurations ----------------------------------------------------------
BP=$(free_port 1)
cat >"$T/mosquitto.conf" <<CONF
persistence false
log_dest stderr
log_type error
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 64
listener $BP 127.0.0.1
allow_anonymous true
CONF
[ "$(id -u)" = 0 ] && echo "user root" >>"$T/mosquitto.conf"
mosquitto -c "$T/mosquitto.conf" 2>"$T/broker.log" &
PIDS="$PIDS $!"
wait_port "$BP" || { log "mosquitto did not start"; exit 1; }
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/fleet.key"

conf() { # NAME PORT IMAGE CONTEXT
    mkdir -p "$T/$1"
    cat >"$T/$1.conf" <<CONF
[node]
id = $1
fleet = bench
state_dir = $T/$1/state
[broker]
url = mqtt://127.0.0.1:$2
[security]
secret_file = $T/fleet.key
[model]
image = $3
context = $4
threads = 1
CONF
}

# ---- runs ---------------------------------------------------------------------------------------
STORY="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it, but a dog took it first. Lily was sad, but then the dog brought the ball back to her and wagged its tail. They played together all day long, and Lily was very happy."
# The smollm2 shape's tokenizer makes about one token per character of this: 111 tokens.
SHORT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
echo "[" >"$OUT/results.json"
first=1
for model in $MODELS; do
    case $model in
        stories) IMG="$OUT/stories-exit.kvm"; CTX=512; modes=$MODES; layer=4; split=1,1; nt=$NTOK; prompt=$STORY ;;
        smollm2) IMG="$OUT/smollm2.kvm"; CTX=256; modes=$(echo " $MODES " | sed 's/ spec / /; s/ split-spec / /; s/ split-spec-u / /; s/ exit / /')
                 layer=8; split=2,2; nt=$((NTOK / 4)); prompt=$SHORT ;;
        *) log "unknown model $model"; exit 2 ;;
    esac
    conf peer "$BP" "$IMG" "$CTX"
    "$BIN/kvmesh" peer --config "$T/peer.conf" 2>>"$T/peer-$model.log" &
    ppid=$!
    PIDS="$PIDS $ppid"
    i=0
    until grep -q "ready" "$T/peer-$model.log" 2>/dev/null || [ $i -gt 600 ]; do sleep 0.1; i=$((i + 1)); done
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
                split-spec) args="--mode split-spec --split 4,0" ;;
                split-spec-u) args="--mode split-spec --split 2,2 --drafter skip" ;;
                exit) args="--mode exit --layer $layer --exit-threshold 0.6 --check" ;;
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
    kill "$ppid" 2>/dev/null
    wait "$ppid" 2>/dev/null
done
echo "]" >>"$OUT/results.json"
cat "$OUT/results.json"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    /usr/bin/python3 "$top/tools/collab/plot.py" "$OUT/results.json" "$OUT/collab.png" && log "plot: $OUT/collab.png"
else
    log "no plot: python3-matplotlib is not installed (tools/setup.sh installs it)"
fi
