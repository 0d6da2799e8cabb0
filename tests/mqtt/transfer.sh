#!/bin/sh
# 32 MiB cache published by one node and fetched by another, sealed, chunked, reassembled
# and compared byte for byte: plain TCP, TLS and mTLS (with passwords and the ACL), plus
# AES-256-GCM, MQTT 3.1.1 and zstd variants. Throughput lines go to the log as JSON
# ("bench" lines); tools/kv/bench.sh is the benchmark proper.
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/mqtt/lib/broker.sh"

SIZE=$((32 * 1024 * 1024))
mqtt_secret "$TMPD/secret"
check "test PKI generated" mqtt_pki "$TMPD/pki"
mqtt_payload "$TMPD/payload" "$SIZE"
MODEL=$(mqtt_hex32 model-a)
check "open broker up" mqtt_broker_start open open
check "secure broker up (passwords, TLS, mTLS, ACL)" mqtt_broker_start sec secure

# transfer NAME "PUB_ARGS" "FETCH_ARGS": serve once, fetch, compare.
transfer() {
    name=$1 pubargs=$2 fetchargs=$3
    PREFIX=$(mqtt_hex32 "prefix-$name")
    rm -f "$TMPD/got"
    # shellcheck disable=SC2086
    mqtt_bg "pub-$name" $RUN "$KV" pub --file "$TMPD/payload" --model "$MODEL" --prefix "$PREFIX" \
        --secret-file "$TMPD/secret" --requests 1 --quiet --codec 7 --layers 0:6 --positions 0:512 $pubargs
    # shellcheck disable=SC2086
    out=$($RUN "$KV" fetch --model "$MODEL" --prefix "$PREFIX" --secret-file "$TMPD/secret" \
        --out "$TMPD/got" --deadline 60 --json --quiet $fetchargs)
    rc=$?
    mqtt_bg_wait "pub-$name" 30
    if [ $rc -eq 0 ] && cmp -s "$TMPD/payload" "$TMPD/got"; then
        ok "32 MiB over $name: byte-identical ($(json_num mb_per_s "$out") MB/s)"
        echo "bench {\"transport\":\"$name\",\"bytes\":$SIZE,\"mb_per_s\":$(json_num mb_per_s "$out")}"
    else
        fail "32 MiB over $name (fetch exit $rc): $out"
    fi
    case "$out" in *'"codec":7,"layers":[0,6],"positions":[0,512]'*) ;;
        *) [ $rc -eq 0 ] && fail "$name: metadata did not survive: $out" ;; esac
}

P="$TMPD/pki"
transfer plain "--port $open_PLAIN --node prov-plain" "--port $open_PLAIN --node fetch-plain"
transfer tls "--port $sec_TLS --tls --ca $P/ca.crt --node alice --user alice --pass alice-pw" \
             "--port $sec_TLS --tls --ca $P/ca.crt --node bob --user bob --pass bob-pw"
transfer mtls "--port $sec_MTLS --tls --ca $P/ca.crt --cert $P/alice.crt --key $P/alice.key --node alice" \
              "--port $sec_MTLS --tls --ca $P/ca.crt --cert $P/bob.crt --key $P/bob.key --node bob"
transfer plain-aes-gcm "--port $open_PLAIN --node prov-aes --cipher aes" "--port $open_PLAIN --node fetch-aes"
transfer plain-mqtt311 "--port $open_PLAIN --node prov-311 --mqtt 3.1.1" "--port $open_PLAIN --node fetch-311 --mqtt 3.1.1"
transfer plain-zstd "--port $open_PLAIN --node prov-z --zstd 3" "--port $open_PLAIN --node fetch-z"

head -c 1000000 "$TMPD/payload" >"$TMPD/small"
head -c 65536 "$TMPD/payload" >"$TMPD/work"
# Persisted nonce counter: the same node id across restarts keeps working (a receiver
# remembers its replay window), because the counter continues above what was used.
rm -f "$TMPD/got"
for i in 1 2; do
    mqtt_bg "pub-state$i" $RUN "$KV" pub --port "$open_PLAIN" --node prov-state --state-file "$TMPD/nonce" \
        --file "$TMPD/small" --model "$MODEL" --prefix "$(mqtt_hex32 state)" --secret-file "$TMPD/secret" \
        --requests 1 --quiet
    $RUN "$KV" fetch --port "$open_PLAIN" --node fetch-state$i --model "$MODEL" --prefix "$(mqtt_hex32 state)" \
        --secret-file "$TMPD/secret" --out "$TMPD/got$i" --deadline 60 --quiet
    mqtt_bg_wait "pub-state$i" 30
done
check "restarted sender with a state file: both fetches identical" cmp -s "$TMPD/got1" "$TMPD/got2"
check "state file advanced past the first run's counters" test "$(cat "$TMPD/nonce")" != "0000000000000000"

# ---- push to a node, a shared group, announcements seen by sub -----------------------------

C="--port $open_PLAIN --secret-file $TMPD/secret --quiet"
LIVE=$(mqtt_hex32 prefix-live)
mqtt_bg live $RUN "$KV" pub $C --node holder-live --file "$TMPD/work" --model "$MODEL" --prefix "$LIVE" --metrics-secs 1
check "holder online" mqtt_wait_online holder-live "$open_PLAIN"
m=$(mosquitto_sub -p "$open_PLAIN" -t "$MQTT_ROOT/node/holder-live/metrics" -C 1 -W 10)
check "holder publishes JSON metrics with units in the keys: $m" sh -c "echo '$m' | grep -q '\"uptime_s\":[0-9]*,\"frames_sent\"'"
mqtt_bg_out carol "$TMPD/carol.out" $RUN "$KV" sub $C --node carol --count 1 --announce
check "receiver carol online" mqtt_wait_online carol "$open_PLAIN"
$RUN "$KV" pub $C --to carol --type hidden --file "$TMPD/small" --layers 2:5 --positions 0:64
check "push to carol sent" test $? -eq 0
mqtt_bg_wait carol 30
want=$(sha256sum "$TMPD/small" | cut -c1-64)
check "push: the hidden state arrived intact" grep -q "\"type\":\"hidden\",\"sender\":\"kv-[0-9]*\",\"bytes\":1000000,\"sha256\":\"$want\"" "$TMPD/carol.out"
check "sub --announce lists verified announcements" grep -q '"event":"announce","holder":"holder-live","bytes":65536' "$TMPD/carol.out"
check "... and not the ones withdrawn by holders that exited" sh -c "! grep -q '"holder":"prov-plain"' '$TMPD/carol.out'"
kill "$(cat "$TMPD/pids/live")"
mqtt_bg_wait live 10
check "a holder exiting cleanly withdraws its retained announcement" test -z "$(mosquitto_sub -p "$open_PLAIN" -t "$MQTT_ROOT/kv/+/$LIVE" -C 1 -W 2 2>/dev/null)"
for w in w1 w2; do
    mqtt_bg_out "$w" "$TMPD/$w.out" $RUN "$KV" sub $C --node "$w" --group cloud
    check "group member $w online" mqtt_wait_online "$w" "$open_PLAIN"
done
for i in 1 2 3 4 5 6; do
    $RUN "$KV" pub $C --to-group cloud --type prompt --file "$TMPD/work" || fail "push $i to the group"
done
i=0
while [ $i -lt 150 ]; do
    got=$(cat "$TMPD/w1.out" "$TMPD/w2.out" | grep -c '"event":"deliver"')
    [ "$got" -ge 6 ] && break
    sleep 0.2; i=$((i + 1))
done
kill "$(cat "$TMPD/pids/w1")" "$(cat "$TMPD/pids/w2")"
mqtt_bg_wait w1 10; mqtt_bg_wait w2 10
a=$(grep -c '"event":"deliver"' "$TMPD/w1.out"); b=$(grep -c '"event":"deliver"' "$TMPD/w2.out")
check "group: 6 payloads sent to 'cloud' delivered exactly once ($a + $b)" test $((a + b)) -eq 6
check "group: the shared subscription split the work" sh -c "test $a -ge 1 && test $b -ge 1"
$RUN "$KV" pub $C --to-group cloud --file "$TMPD/small" 2>"$TMPD/err"
rc=$?
check "a payload larger than one chunk is refused for a group (exit $rc)" sh -c "test $rc -eq 1 && grep -q 'too large' '$TMPD/err'"

# Not announced: fetch fails with a clear error and exit 1 within its deadline.
$RUN "$KV" fetch --port "$open_PLAIN" --model "$MODEL" --prefix "$(mqtt_hex32 nobody)" --secret-file "$TMPD/secret" \
    --out "$TMPD/none" --deadline 2 --quiet 2>"$TMPD/err"
rc=$?
check "fetch of an unannounced prefix exits 1" test $rc -eq 1
check "... and says why" grep -q "nobody announced" "$TMPD/err"
check "... and writes nothing" test ! -e "$TMPD/none"

# Usage: every subcommand has --help; bad usage exits 2.
for c in pub sub fetch bench-seal; do
    check "kvmesh-kv $c --help" sh -c "$RUN $KV $c --help | grep -q usage"
done
$RUN "$KV" fetch --model zz >/dev/null 2>&1
check "bad usage exits 2" test $? -eq 2
$RUN "$KV" frobnicate >/dev/null 2>&1
check "unknown subcommand exits 2" test $? -eq 2
done_testing
