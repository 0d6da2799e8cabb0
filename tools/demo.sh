#!/bin/sh
# The kvmesh demo, one command (`make demo`) on a machine set up with tools/setup.sh:
#   1. the stories260K model image (from ../shared/models or KVMESH_MODELS; without it,
#      where to get it, and a loudly labelled random-weight image instead)
#   2. a local mosquitto as the fleet's broker: TLS only, passwords and ACLs, all
#      credentials generated for this run
#   3. two nodes, `kvmesh run`, with their configurations
#   4. a prompt to node-a, which computes it and publishes its cache
#   5. a prompt with the same long prefix to node-b, which fetches node-a's cache and
#      skips that prefill; then the same prompt computed without it, for comparison
#   6. the fleet as kvmesh-monitor shows it
# Everything runs on 127.0.0.1 and is removed at the end (KVMESH_DEMO_KEEP=1 keeps it).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KVMESH_BUILD:-$top/build/host}
case $BUILD in /*) ;; *) BUILD="$top/$BUILD" ;; esac
BIN="$BUILD/bin"
MODELS=${KVMESH_MODELS:-$top/../shared/models}

for p in kvmesh kvmesh-kv kvmesh-monitor kvmesh-convert; do
    [ -x "$BIN/$p" ] || { echo "demo: $BIN/$p is missing: run 'make demo' (or 'make' first)" >&2; exit 1; }
done
for p in mosquitto openssl mosquitto_passwd; do
    command -v $p >/dev/null || { echo "demo: $p is missing: run tools/setup.sh (as root)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-demo.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    if [ "${KVMESH_DEMO_KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
step() { n=$((n + 1)); printf '\n\033[1m[%d] %s\033[0m\n' "$n" "$*"; }
say() { printf '    %s\n' "$*"; }

# ---- 1. the model -------------------------------------------------------------------
step "The model"
img="$work/stories260K.kvm"
if [ "${KVMESH_DEMO_RANDOM:-0}" != 1 ] && [ -f "$MODELS/stories260K/stories260K.bin" ] && [ -f "$MODELS/stories260K/tok512.bin" ]; then
    "$BIN/kvmesh-convert" -q --llama2c "$MODELS/stories260K/stories260K.bin" \
        --tokenizer "$MODELS/stories260K/tok512.bin" -g 4 -o "$img"
    say "stories260K (a 260K-parameter llama trained on TinyStories) from $MODELS"
    say "converted to a kvmesh image: $(wc -c <"$img") bytes, integer-only (int8 weights, group 4)"
    random=0
else
    say "stories260K was not found in $MODELS/stories260K/."
    say "It is Andrej Karpathy's tinyllamas model: download stories260K.bin and tok512.bin from"
    say "  https://huggingface.co/karpathy/tinyllamas/tree/main/stories260K"
    say "into $MODELS/stories260K/ (or point KVMESH_MODELS at their parent directory)."
    "$BIN/kvmesh-convert" -q --random stories260K -g 4 -o "$img"
    printf '\n    \033[1;31m!!! RANDOM WEIGHTS: this run uses a random-weight image of the same shape. !!!\033[0m\n'
    printf '    \033[1;31m!!! The text below is gibberish; the sharing and the timings are real.     !!!\033[0m\n'
    random=1
fi

# ---- 2. the broker ------------------------------------------------------------------
step "A local MQTT broker (mosquitto): TLS, passwords, ACLs, generated credentials"
pki="$work/pki"
mkdir -p "$pki"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key"
ossl req -x509 -new -key "$pki/ca.key" -days 1 -subj "/CN=kvmesh demo CA" -out "$pki/ca.crt"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/server.key"
ossl req -new -key "$pki/server.key" -subj /CN=localhost -out "$pki/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$pki/server.ext"
ossl x509 -req -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 1 \
    -extfile "$pki/server.ext" -out "$pki/server.crt"
[ -s "$pki/server.crt" ] || { echo "demo: openssl could not make the test certificates" >&2; exit 1; }
port=""
for try in 1 2 3 4 5 6 7 8 9 10; do
    p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 20000) + 30000 ))
    ss -Htln "( sport = :$p )" 2>/dev/null | grep -q . || { port=$p; break; }
done
[ -n "$port" ] || { echo "demo: no free port" >&2; exit 1; }
root=kvmesh/v1/demo
: >"$work/passwd"
for u in node-a node-b demo-client demo-monitor; do
    head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/$u.pw"
    mosquitto_passwd -b "$work/passwd" "$u" "$(cat "$work/$u.pw")" >/dev/null 2>&1
done
# Each node: its own node/ topics, its own requests and answers, the fleet's cache
# directory, and its Home Assistant configs. The monitor: status and metrics only.
cat >"$work/acl" <<ACL
pattern readwrite $root/node/%u/#
pattern read $root/node/+/status
pattern read $root/req/%u
pattern write $root/req/+
pattern read $root/resp/%u
pattern write $root/resp/+
pattern readwrite $root/kv/#
user demo-client
topic write $root/node/+/cmd
user demo-monitor
topic read $root/node/+/metrics
ACL
for nd in node-a node-b; do
    printf 'user %s\n' "$nd" >>"$work/acl"
    for s in tokens_per_s temperature cache_hit_rate status; do
        printf 'topic write homeassistant/sensor/%s_%s/config\n' "$nd" "$s" >>"$work/acl"
    done
done
cat >"$work/mosquitto.conf" <<CONF
persistence false
log_dest file $work/mosquitto.log
per_listener_settings false
allow_anonymous false
password_file $work/passwd
acl_file $work/acl
listener $port 127.0.0.1
cafile $pki/ca.crt
certfile $pki/server.crt
keyfile $pki/server.key
CONF
[ "$(id -u)" -eq 0 ] && echo "user root" >>"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
pids="$pids $!"
i=0
while ! ss -Htln "( sport = :$port )" 2>/dev/null | grep -q .; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: mosquitto did not start (see $work/mosquitto.log)" >&2; exit 1; }
    sleep 0.05
done
say "mqtts://127.0.0.1:$port  (TLS only; CA $pki/ca.crt)"
say "users node-a, node-b, demo-client, demo-monitor with random passwords; ACL: $work/acl"

# ---- 3. two nodes -------------------------------------------------------------------
step "Two kvmesh nodes (kvmesh run) on this machine"
head -c 32 /dev/urandom >"$work/fleet.key"
for nd in node-a node-b; do
    cat >"$work/$nd.conf" <<CONF
[node]
id = $nd
fleet = demo
state_dir = $work/$nd/state
[broker]
url = mqtts://127.0.0.1:$port
ca_file = $pki/ca.crt
username = $nd
password_file = $work/$nd.pw
[security]
secret_file = $work/fleet.key
[model]
image = $img
threads = 1
[cache]
dir = $work/$nd/cache
; the demo shares whole contexts (the safe default shares only system prompts)
publish = all
[telemetry]
period_s = 1
CONF
    "$BIN/kvmesh" run --config "$work/$nd.conf" >"$work/$nd.out" 2>"$work/$nd.log" &
    pids="$pids $!"
done
for nd in node-a node-b; do
    i=0
    until grep -q "connected to" "$work/$nd.log" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: $nd did not connect:" >&2; cat "$work/$nd.log" >&2; exit 1; }
        sleep 0.1
    done
done
sed -n 's/^kvmesh run: /    node-a: /p' "$work/node-a.log" | grep -v "^    node-a: connected"
say "node-b: the same (its log: $work/node-b.log); both online, fleet secret $work/fleet.key"

ask() {   # ask NODE OUT PROMPT: streams the answer, keeps the final record in OUT
    "$BIN/kvmesh-kv" ask --host 127.0.0.1 --port "$port" --tls --ca "$pki/ca.crt" --user demo-client \
        --pass-file "$work/demo-client.pw" --node demo-client --state-file "$work/demo-client.nonce" \
        --secret-file "$work/fleet.key" --fleet demo --to "$1" --prompt "$3" -n 40 --temp 0 2>"$2.err" |
        tee "$2.txt" | fold -s -w 88 | sed 's/^/    | /'
    if ! grep -q '"done":true' "$2.err"; then
        echo "demo: $1 did not answer:" >&2
        cat "$2.err" >&2
        exit 1
    fi
    grep '"done":true' "$2.err" | sed 's/^kvmesh-kv ask: //' >"$2"
}
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$2"; }
cmd() {
    "$BIN/kvmesh-kv" cmd --host 127.0.0.1 --port "$port" --tls --ca "$pki/ca.crt" --user demo-client \
        --pass-file "$work/demo-client.pw" --node demo-client --state-file "$work/demo-client.nonce" \
        --secret-file "$work/fleet.key" --fleet demo --quiet --to "$@" >/dev/null
}

STORY="Once upon a time, in a small town by the sea, there lived a little girl named Lily. \
She had a red ball, a blue kite and a small brown dog called Max. Every morning Lily and Max \
went to the park to play. They ran on the grass, they jumped over the puddles and they laughed \
in the sun. One day, the wind was very strong. Lily wanted to fly her kite, so she held the string \
very tight. The kite went up and up, high into the sky. Max barked and ran after it. Then the \
string broke and the kite flew away over the trees. Lily was very sad. She sat on a bench and \
started to cry. An old man came and sat next to her. He smiled and said, \"Do not be sad, little \
one. I will help you find your kite.\" Lily, Max and the old man walked into the woods."
# A random-weight image has a synthetic vocabulary of short tokens: half the story fits.
[ $random -eq 0 ] || STORY=$(printf '%s' "$STORY" | cut -c1-420)
P1="$STORY They looked behind a big tree"
P2="$STORY Then they saw a little house"

# ---- 4. node-a ----------------------------------------------------------------------
step "A prompt to node-a (greedy, 40 tokens): it computes the whole prompt"
ask node-a "$work/a1.json" "$P1"
say "node-a: $(field prompt_tokens "$work/a1.json") prompt tokens, $(field reused_tokens "$work/a1.json") reused," \
    "time to first token $(field ttft_ms "$work/a1.json") ms, $(field tokens_per_s "$work/a1.json") tokens/s"
say "node-a stores the context's KV cache ($(ls "$work/node-a/cache" | grep -c '\.kv$') entry, lossless) and"
say "announces it, sealed, under its 16-token block ids"
sleep 0.5

# ---- 5. node-b ----------------------------------------------------------------------
step "A prompt with the same long prefix to node-b: it fetches node-a's cache"
ask node-b "$work/b1.json" "$P2"
with=$(field ttft_ms "$work/b1.json")
say "node-b: $(field prompt_tokens "$work/b1.json") prompt tokens, $(field reused_tokens "$work/b1.json") reused from" \
    "$(field cache_from "$work/b1.json") ($(field cache "$work/b1.json"), $(field cache_bytes "$work/b1.json") bytes)," \
    "time to first token $with ms"
cmd node-b drop-caches
cmd node-b set-mode standalone
ask node-b "$work/b2.json" "$P2" >/dev/null
cmd node-b set-mode cache-share
without=$(field ttft_ms "$work/b2.json")
say "the same prompt on node-b without any cache (standalone, store dropped):"
say "  $(field reused_tokens "$work/b2.json") reused, time to first token $without ms"
say "time to first token with node-a's cache: $with ms; computing it: $without ms"
if cmp -s "$work/b1.json.txt" "$work/b2.json.txt"; then
    say "the two answers are the same text: a lossless cache continues bit-identically"
else
    say "the two answers DIFFER: that is a bug (a lossless cache must continue bit-identically)"
    exit 1
fi

# ---- 6. the monitor -----------------------------------------------------------------
step "The fleet, as kvmesh-monitor shows it (broker credentials only, no fleet key)"
sleep 1.2
"$BIN/kvmesh-monitor" --host 127.0.0.1 --port "$port" --tls --ca "$pki/ca.crt" --user demo-monitor \
    --pass-file "$work/demo-monitor.pw" --node demo-monitor --fleet demo --once | sed 's/^/    /'

step "Done"
say "Live view: kvmesh-monitor --fleet demo ... (without --once). Cleaning up."
[ $random -eq 0 ] || printf '    \033[1;31m(This run used RANDOM WEIGHTS: see step 1.)\033[0m\n'
