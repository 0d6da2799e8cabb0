#!/bin/sh
# kvmesh-kv benchmark: prints one JSON object on stdout, progress on stderr.
#   - 32 MiB fetch throughput over plain TCP, TLS and mTLS to a local mosquitto
#     (best of --reps runs; each run is a full announce/request/chunks/verify cycle);
#   - sealing on its own (kvmesh-kv bench-seal) for ChaCha20-Poly1305 and AES-256-GCM;
#   - with --load, the 16-node load test's exchange and per-node peak RSS.
# Usage: tools/kv/bench.sh [--reps N] [--load]      (after `make` and `make tests-build`)
# Environment: KVMESH_BUILD (default build/host), KVMESH_LOAD_* as in tests/mqtt/load.sh.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export KVMESH_TOP="$top"
export KVMESH_BUILD="${KVMESH_BUILD:-build/host}"
case "$KVMESH_BUILD" in /*) ;; *) KVMESH_BUILD="$top/$KVMESH_BUILD" ;; esac
REPS=3 LOAD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --load) LOAD=1 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
. "$top/tests/lib/tap.sh"
. "$top/tests/mqtt/lib/broker.sh"
[ -x "$KV" ] && [ -x "$HELPERS/mqtt_helper" ] || { echo "bench.sh: run make and make tests-build first" >&2; exit 1; }

echo "bench.sh: PKI, brokers, 32 MiB payload" >&2
mqtt_secret "$TMPD/secret"
mqtt_pki "$TMPD/pki" || { echo "bench.sh: PKI generation failed" >&2; exit 1; }
mqtt_broker_start open open && mqtt_broker_start sec secure || { echo "bench.sh: broker failed" >&2; exit 1; }
mqtt_payload "$TMPD/payload" $((32 * 1024 * 1024))
P="$TMPD/pki"
MODEL=$(mqtt_hex32 bench-model)

best() { # NAME PUBARGS FETCHARGS -> best MB/s over REPS
    b=0 i=0
    while [ $i -lt "$REPS" ]; do
        prefix=$(mqtt_hex32 "bench-$1-$i")
        # shellcheck disable=SC2086
        mqtt_bg pub $RUN "$KV" pub --file "$TMPD/payload" --model "$MODEL" --prefix "$prefix" \
            --secret-file "$TMPD/secret" --requests 1 --quiet $2
        # shellcheck disable=SC2086
        out=$($RUN "$KV" fetch --model "$MODEL" --prefix "$prefix" --secret-file "$TMPD/secret" \
            --out "$TMPD/got" --deadline 120 --json --quiet $3)
        mqtt_bg_wait pub 30
        cmp -s "$TMPD/payload" "$TMPD/got" || { echo "bench.sh: $1 run $i not identical" >&2; exit 1; }
        v=$(json_num mb_per_s "$out")
        echo "bench.sh: $1 run $i: $v MB/s" >&2
        b=$(awk -v a="$b" -v c="$v" 'BEGIN { print (c > a) ? c : a }')
        i=$((i + 1))
    done
    echo "$b"
}
plain=$(best plain "--port $open_PLAIN --node bp" "--port $open_PLAIN --node bf")
tls=$(best tls "--port $sec_TLS --tls --ca $P/ca.crt --node alice --user alice --pass alice-pw" \
               "--port $sec_TLS --tls --ca $P/ca.crt --node bob --user bob --pass bob-pw")
mtls=$(best mtls "--port $sec_MTLS --tls --ca $P/ca.crt --cert $P/alice.crt --key $P/alice.key --node alice" \
                 "--port $sec_MTLS --tls --ca $P/ca.crt --cert $P/bob.crt --key $P/bob.key --node bob")
echo "bench.sh: sealing only" >&2
seal=$($RUN "$KV" bench-seal --mib 32 --reps "$REPS" 2>/dev/null)
load=null
if [ $LOAD -eq 1 ]; then
    echo "bench.sh: load test (tests/mqtt/load.sh)" >&2
    load=$(KVMESH_BUILD="$KVMESH_BUILD" sh "$top/tests/mqtt/load.sh" | sed -n 's/^bench //p')
    [ -n "$load" ] || load=null
fi
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
printf '{"machine":{"cpu":"%s","cores":%s,"board":"%s"},"payload_mib":32,"reps":%s,' \
    "$cpu" "$(nproc)" "$(basename "$KVMESH_BUILD")" "$REPS"
printf '"transfer_mb_s":{"plain":%s,"tls":%s,"mtls":%s},"sealing":%s,"load":%s}\n' \
    "$plain" "$tls" "$mtls" "$seal" "$load"
