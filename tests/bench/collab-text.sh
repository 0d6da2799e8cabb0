#!/bin/sh
# The text level against KV-level sharing (issue 9, heterogeneous peers): one JSON object
# on stdout, progress on stderr.
#
# The device node-a (stories260K) reaches the broker through kvmesh-linksim with a link
# profile; its peers sit beside the broker (no shaping), as a server would:
#   local        node-a computes the prompt itself (mode = standalone: no fleet lookup)
#   text         node-a sends the prompt's text to node-b, which runs *another* model
#                (aidreams260K), and relays node-b's text (text_offload = always)
#   kv_lossless  node-a imports the prompt's KV cache from node-c, which runs the *same*
#   kv_lossy     model and computed it before (cache-share; node-c's codec lossless or lossy)
# Each is run --reps times per profile (medians reported); node-a's caches are dropped
# before every run, so each KV run fetches over the link.
#   ttft_ms     node-a's own time to first token (from taking the request to its first
#               token record), from the final record: median, and ttft_min_ms/ttft_max_ms
#   link_bytes  bytes through node-a's link in both directions while the request ran
#               (kvmesh-linksim's read(2) bytes from /proc/<pid>/io: MQTT and sealed frames
#               included, so also the client's request and the token records to it)
#   payload_bytes  what the mode itself moved: text = sealed request + sealed records
#               (text_peer.sent_bytes + received_bytes); kv = the cache stream (cache_bytes)
# Usage: tests/bench/collab-text.sh [--reps N] [--profiles "lan wifi lte"] [-n TOKENS]
#        (after `make` and `make tests-build`). Environment: KVMESH_BUILD (default
#        build/host), KVMESH_MODELS; BENCH_DEBUG=1 prints every final record on stderr.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export KVMESH_TOP="$top"
export KVMESH_BUILD="${KVMESH_BUILD:-build/host}"
case "$KVMESH_BUILD" in /*) ;; *) KVMESH_BUILD="$top/$KVMESH_BUILD" ;; esac
export KVMESH_MODELS="${KVMESH_MODELS:-$top/../shared/models}"
REPS=3 PROFILES="lan wifi lte" NTOK=16
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --profiles) PROFILES=$2; shift ;;
        -n) NTOK=$2; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print } /^set -u/ { exit }' "$0"; exit 0 ;;
        *) echo "collab-text.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
. "$top/tests/lib/tap.sh"
. "$top/tests/mqtt/lib/broker.sh"
[ -x "$BIN/kvmesh" ] && [ -x "$BIN/kvmesh-linksim" ] || { echo "collab-text.sh: run make first" >&2; exit 1; }
JSONCHECK="$KVMESH_BUILD/tests/helpers/jsoncheck"
[ -x "$JSONCHECK" ] || { echo "collab-text.sh: run make tests-build first (jsoncheck)" >&2; exit 1; }
get() { printf '%s\n' "$2" | "$JSONCHECK" --get "$1"; }

S="$KVMESH_MODELS/stories260K" A="$KVMESH_MODELS/aidreams260K"
"$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 -o "$TMPD/s.kvm" &&
"$BIN/kvmesh-convert" -q --llama2c "$A/aidreams260K.bin" --tokenizer "$A/tok512.bin" -g 4 -o "$TMPD/a.kvm" ||
    { echo "collab-text.sh: cannot convert the models from $KVMESH_MODELS" >&2; exit 1; }
mqtt_secret "$TMPD/fleet.key"
mqtt_broker_start b open || { echo "collab-text.sh: broker failed" >&2; exit 1; }

# The prompt fits aidreams260K's 128-token context with the answer: 62 tokens for
# stories260K, 107 for aidreams260K (its vocabulary splits English finer).
P="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it"

conf() { # NAME PORT IMAGE LINES...
    _n=$1 _p=$2 _i=$3; shift 3
    mkdir -p "$TMPD/$_n"
    {
        printf '[node]\nid = %s\nfleet = %s\nstate_dir = %s/%s/state\n' "$_n" "$MQTT_FLEET" "$TMPD" "$_n"
        printf '[broker]\nurl = mqtt://127.0.0.1:%s\n[security]\nsecret_file = %s/fleet.key\n' "$_p" "$TMPD"
        printf '[model]\nimage = %s\nthreads = 1\n[cache]\ndir = %s/%s/cache\n' "$_i" "$TMPD" "$_n"
        printf '[telemetry]\nperiod_s = 3600\nha_discovery = false\n'
        for _l in "$@"; do printf '%s\n' "$_l"; done
    } >"$TMPD/$_n.conf"
}
start() {
    : >"$TMPD/$1.log"
    "$BIN/kvmesh" run --config "$TMPD/$1.conf" >/dev/null 2>>"$TMPD/$1.log" &
    echo $! >"$TMPD/pids/$1"
    _i=0
    while [ $_i -lt 100 ]; do
        grep -q "connected to" "$TMPD/$1.log" && return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    echo "collab-text.sh: $1 did not connect" >&2
    tail -5 "$TMPD/$1.log" >&2
    exit 1
}
stop() { _p=$(cat "$TMPD/pids/$1"); kill "$_p" 2>/dev/null; wait "$_p" 2>/dev/null; rm -f "$TMPD/pids/$1"; }
net() { echo --port "$b_PLAIN" --node client --secret-file "$TMPD/fleet.key" --fleet "$MQTT_FLEET" --quiet --state-file "$TMPD/client.nonce"; }
# shellcheck disable=SC2046
ask() { "$BIN/kvmesh-kv" ask $(net) --to "$1" --prompt "$P" -n "$NTOK" --temp 0 --json --timeout 60 | grep '"done":true' | tail -1; }
# shellcheck disable=SC2046
cmd() { "$BIN/kvmesh-kv" cmd $(net) --to "$1" "$2" >/dev/null; }
reload() { kill -HUP "$(cat "$TMPD/pids/$1")"; sleep 0.5; }
rchar() { sed -n 's/^rchar: //p' "/proc/$(cat "$TMPD/pids/link")/io"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "null"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure NAME KIND: REPS runs of node-a; prints "ttft link payload" medians as JSON.
measure() {
    : >"$TMPD/m.ttft"; : >"$TMPD/m.link"; : >"$TMPD/m.pay"
    _r=0
    while [ "$_r" -lt "$REPS" ]; do
        cmd node-a drop-caches
        sleep 0.3
        _b0=$(rchar)
        f=$(ask node-a)
        sleep 0.3   # acknowledgements
        _b1=$(rchar)
        [ -n "$f" ] || { echo "collab-text.sh: $1: no final record" >&2; exit 1; }
        case $2 in
        text) [ "$(get text_peer.result "$f")" = answered ] || { echo "collab-text.sh: text run not answered: $f" >&2; exit 1; }
              pay=$(( $(get text_peer.sent_bytes "$f") + $(get text_peer.received_bytes "$f") )) ;;
        kv)   [ "$(get cache "$f")" = fleet ] || { echo "collab-text.sh: kv run did not fetch: $f" >&2; exit 1; }
              pay=$(get cache_bytes "$f") ;;
        *)    [ "$(get cache "$f")" = none ] && [ "$(get reused_tokens "$f")" = 0 ] ||
                  { echo "collab-text.sh: local run reused a cache: $f" >&2; exit 1; }
              pay=0 ;;
        esac
        get ttft_ms "$f" >>"$TMPD/m.ttft"
        echo $((_b1 - _b0)) >>"$TMPD/m.link"
        echo "$pay" >>"$TMPD/m.pay"
        echo "collab-text.sh: $PROFILE $1 run $_r: ttft $(get ttft_ms "$f") ms, link $((_b1 - _b0)) B, payload $pay B" >&2
        [ -z "${BENCH_DEBUG:-}" ] || echo "  $f" >&2
        _r=$((_r + 1))
    done
    printf '{"ttft_ms":%s,"ttft_min_ms":%s,"ttft_max_ms":%s,"link_bytes":%s,"payload_bytes":%s}' \
        "$(median <"$TMPD/m.ttft")" "$(sort -g "$TMPD/m.ttft" | head -1)" "$(sort -g "$TMPD/m.ttft" | tail -1)" \
        "$(median <"$TMPD/m.link")" "$(median <"$TMPD/m.pay")"
}

profiles=""
for PROFILE in $PROFILES; do
    LP=$(mqtt_free_port)
    "$BIN/kvmesh-linksim" --listen "$LP" --to "127.0.0.1:$b_PLAIN" --profile "$PROFILE" 2>>"$TMPD/link.log" &
    echo $! >"$TMPD/pids/link"
    mqtt_wait_port "$LP" 10
    rm -rf "$TMPD/node-a" "$TMPD/node-b" "$TMPD/node-c"
    conf node-a "$LP" "$TMPD/s.kvm" "[node]" "mode = standalone" "[collab]" "text_peer = node-b" "text_offload = never" "text_deadline_ms = 10000" \
        "text_stall_ms = 10000" "[privacy]" "redact = none"
    conf node-b "$b_PLAIN" "$TMPD/a.kvm"
    conf node-c "$b_PLAIN" "$TMPD/s.kvm" "[cache]" "publish = all" "codec = lossless"
    start node-a; start node-b; start node-c
    echo "collab-text.sh: profile $PROFILE" >&2
    local_m=$(measure local local)
    ask node-c >/dev/null   # node-c computes the prompt and announces its cache
    sed -i 's/^mode = standalone/mode = cache-share/' "$TMPD/node-a.conf"
    reload node-a
    kvl=$(measure kv_lossless kv)
    sed -i 's/^codec = lossless/codec = lossy/' "$TMPD/node-c.conf"
    reload node-c
    cmd node-c drop-caches
    ask node-c >/dev/null
    sleep 0.5
    kvy=$(measure kv_lossy kv)
    sed -i 's/^text_offload = never/text_offload = always/' "$TMPD/node-a.conf"
    reload node-a
    txt=$(measure text text)
    stop node-a; stop node-b; stop node-c; stop link
    profiles="$profiles${profiles:+,}\"$PROFILE\":{\"local\":$local_m,\"text\":$txt,\"kv_lossless\":$kvl,\"kv_lossy\":$kvy}"
done
n_dev=$("$BIN/kvmesh" generate -m "$TMPD/s.kvm" -p "$P" -n 0 --temp 0 2>&1 >/dev/null | sed -n 's/^prompt tokens: \([0-9]*\),.*/\1/p')
n_peer=$("$BIN/kvmesh" generate -m "$TMPD/a.kvm" -p "$P" -n 0 --temp 0 2>&1 >/dev/null | sed -n 's/^prompt tokens: \([0-9]*\),.*/\1/p')
printf '{"bench":"collab-text","device_model":"stories260K","text_peer_model":"aidreams260K","kv_peer_model":"stories260K",'
printf '"prompt_bytes":%s,"prompt_tokens_device":%s,"prompt_tokens_text_peer":%s,"new_tokens":%s,"reps":%s,' \
    "${#P}" "$n_dev" "$n_peer" "$NTOK" "$REPS"
printf '"profiles":{%s}}\n' "$profiles"
