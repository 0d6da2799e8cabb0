# Shared by tools/collab/bench.sh, exit-sweep.sh and ttft.sh (sourced, POSIX sh):
# a scratch directory cleaned up on exit, the images with trained exit heads, a local
# mosquitto, node configurations and a peer. The caller sets PROG (for messages) first.
top=$(cd "$(dirname "$0")/../.." && pwd)
B="${KVMESH_BUILD:-$top/build/host}"
case "$B" in /*) ;; *) B="$top/$B" ;; esac
BIN="$B/bin"
M="${KVMESH_MODELS:-$top/../shared/models}"
T=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-collab.XXXXXX")
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
log() { echo "$PROG: $*" >&2; }
# num KEY FILE: the number after "KEY": in a one-line JSON object.
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }

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

# model_image NAME DIR: prints the image for a model name, made once in DIR:
#   stories   stories260K with exit heads at layers 2, 3, 4 (kvmesh-exit-train, 20000 tokens)
#   aidreams  aidreams260K with exit heads at layers 2, 3 (60000 tokens, 16 refinement
#             epochs, about 2 minutes: against 20000 and 8, exit-sweep.sh's kept fraction
#             at probability 0.45 went 0.516 -> 0.530 and agreement 0.984 -> 0.992;
#             stories260K's heads gained nothing from the same)
#   smollm2   a random smollm2-135m-shape image (speed only: random weights)
model_image() {
    case $1 in
        stories) src=$M/stories260K/stories260K.bin tok=$M/stories260K/tok512.bin heads=2,3,4 train="--tokens 20000" ;;
        aidreams) src=$M/aidreams260K/aidreams260K.bin tok=$M/aidreams260K/tok512.bin heads=2,3
                  train="--tokens 60000 --epochs 16" ;;
        smollm2)
            [ -f "$2/smollm2.kvm" ] || "$BIN/kvmesh-convert" -q --random smollm2-135m --seed 1 -o "$2/smollm2.kvm" ||
                return 1
            echo "$2/smollm2.kvm"
            return 0 ;;
        *) log "unknown model $1 (stories, aidreams or smollm2)"; return 2 ;;
    esac
    if [ ! -f "$2/$1-exit.kvm" ]; then
        [ -f "$src" ] || { log "$src is missing (set KVMESH_MODELS)"; return 1; }
        "$BIN/kvmesh-convert" -q --llama2c "$src" --tokenizer "$tok" -g 4 -o "$T/$1.kvm" || return 1
        log "training exit heads for $1 (layers $heads, $train)"
        # shellcheck disable=SC2086
        "$BIN/kvmesh-exit-train" -q -m "$T/$1.kvm" --layers $heads $train -o "$2/$1-exit.kvm" || return 1
    fi
    echo "$2/$1-exit.kvm"
}

# start_broker: a local mosquitto (plain TCP, set_tcp_nodelay; payloads are sealed as
# always) on a free port, in BP; and the fleet secret.
start_broker() {
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
    wait_port "$BP" || { log "mosquitto did not start"; return 1; }
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/fleet.key"
}

conf() { # NAME PORT IMAGE CONTEXT: $T/NAME.conf
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

# start_peer IMAGE CONTEXT LOG: `kvmesh peer` as node "peer" on the broker, its pid in PPID_.
start_peer() {
    conf peer "$BP" "$1" "$2"
    "$BIN/kvmesh" peer --config "$T/peer.conf" 2>>"$3" &
    PPID_=$!
    PIDS="$PIDS $PPID_"
    i=0
    until grep -q "ready" "$3" 2>/dev/null || [ $i -gt 600 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "ready" "$3" || { log "kvmesh peer did not start: $(tail -2 "$3")"; return 1; }
}
