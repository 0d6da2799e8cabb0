#!/bin/sh
# What an attacker on the broker can and cannot do:
#  - tampering: a rogue client publishes flipped ciphertext, a modified header, a replay, a
#    frame sealed with the wrong key, a truncated chunk, a lying chunk count, oversized
#    totals and a frame for another model; each is dropped and counted under its reason and
#    nothing but the legit payloads is delivered;
#  - confidentiality: a subscriber to # with valid broker credentials but no fleet key
#    captures a whole transfer; no known plaintext from the payload is in the capture;
#  - ACL: a node cannot publish to another node's topics or read its requests;
#  - authentication: no client certificate, a certificate from another CA, a wrong
#    password, a server name that does not match, or a foreign CA: no connection.
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/mqtt/lib/broker.sh"

H="$HELPERS/mqtt_helper"
mqtt_secret "$TMPD/secret"
mqtt_secret "$TMPD/wrong"
check "test PKI generated" mqtt_pki "$TMPD/pki"
check "open broker up" mqtt_broker_start open open
check "secure broker up" mqtt_broker_start sec secure
P="$TMPD/pki"

# ---- tampering ------------------------------------------------------------------------
mkdir -p "$TMPD/rogue"
check "rogue frames forged" run "$H" rogue "$TMPD/secret" "$TMPD/wrong" "$TMPD/rogue" "$MQTT_FLEET"
MODEL=$(printf '11%.0s' $(seq 32))
mqtt_bg_out victim "$TMPD/victim.out" $RUN "$KV" sub --port "$open_PLAIN" --node carol --secret-file "$TMPD/secret" \
    --model "$MODEL" --numerics 1 --inbox 1048576 --count 2 --quiet
# Wait for the receiver's subscription: its "online" status is published after SUBACKs are queued.
mosquitto_sub -p "$open_PLAIN" -t "$MQTT_ROOT/node/carol/status" -C 1 -W 20 >/dev/null 2>&1
sleep 0.3
rpub() { mosquitto_pub -p "$open_PLAIN" -q 1 -i rogue -t "$MQTT_ROOT/req/carol" -f "$TMPD/rogue/$1"; }
for f in legit-0 legit-1 legit-2 auth-flipped-ciphertext auth-modified-header auth-wrong-key \
         truncated-chunk count-lying-chunk-count oversize-total-length oversize-over-limit \
         model-other-model legit-0 legit-2 sentinel; do
    rpub "$f" || fail "rogue publish $f"
done
mqtt_bg_wait victim 60
check "receiver exited cleanly after the sentinel" test $? -eq 0
stats=$(grep '"event":"stats"' "$TMPD/victim.out")
echo "# victim stats: $stats"
delivers=$(grep -c '"event":"deliver"' "$TMPD/victim.out")
check "exactly the two legit payloads delivered (got $delivers)" test "$delivers" -eq 2
check "legit payload delivered intact (10000 bytes)" grep -q '"type":"prompt","sender":"alice","bytes":10000' "$TMPD/victim.out"
check "sentinel delivered" grep -q '"bytes":9,' "$TMPD/victim.out"
expect_drop() { # REASON COUNT WHAT
    v=$(json_num "$1" "$stats")
    check "$3: dropped as '$1' ($v, want $2)" test "${v:-x}" = "$2"
}
expect_drop auth 3 "flipped ciphertext, modified header, wrong key"
expect_drop replay 2 "replayed frames"
expect_drop truncated 1 "truncated chunk"
expect_drop count 1 "lying chunk count"
expect_drop oversize 2 "oversized total length (parser limit and receiver limit)"
expect_drop model 1 "frame for another model"
for r in malformed inconsistent digest decompress busy peers declined stalled peer_gone; do
    expect_drop "$r" 0 "no other drops"
done

# ---- confidentiality ----------------------------------------------------------------------
SIZE=$((4 * 1024 * 1024))
mqtt_payload "$TMPD/payload" "$SIZE"
MODEL=$(mqtt_hex32 model-conf)
PREFIX=$(mqtt_hex32 prefix-conf)
mqtt_bg_out spy "$TMPD/capture" mosquitto_sub -p "$sec_PLAIN" -u spy -P spy-pw -i spy -t '#' -q 1
sleep 0.5
mqtt_bg pub-conf $RUN "$KV" pub --port "$sec_PLAIN" --node alice --user alice --pass alice-pw \
    --file "$TMPD/payload" --model "$MODEL" --prefix "$PREFIX" --secret-file "$TMPD/secret" --requests 1 --quiet
$RUN "$KV" fetch --port "$sec_PLAIN" --node bob --user bob --pass bob-pw --model "$MODEL" --prefix "$PREFIX" \
    --secret-file "$TMPD/secret" --out "$TMPD/got" --deadline 60 --quiet
check "transfer under observation completed" cmp -s "$TMPD/payload" "$TMPD/got"
mqtt_bg_wait pub-conf 30
sleep 0.5
kill "$(cat "$TMPD/pids/spy")" 2>/dev/null
csize=$(wc -c <"$TMPD/capture")
check "spy captured the whole transfer ($csize bytes >= $SIZE)" test "$csize" -ge "$SIZE"
self=$(run "$H" scan "$TMPD/payload" "$TMPD/payload")
check "scanner finds plaintext where it is ($self)" test "${self%% *}" = "${self##* }"
leak=$(run "$H" scan "$TMPD/capture" "$TMPD/payload")
check "no known plaintext window in the capture (found/tried: $leak)" test "${leak%% *}" = 0
check "marker text absent from the capture" sh -c "! grep -aq KVMESH-KNOWN-PLAINTEXT '$TMPD/capture'"

# ---- ACL ----------------------------------------------------------------------------------
mqtt_bg_out acl-spy "$TMPD/acl.out" mosquitto_sub -p "$sec_PLAIN" -u spy -P spy-pw -i spy2 -v \
    -t "$MQTT_ROOT/node/+/metrics" -t "$MQTT_ROOT/node/bob/cmd"
mqtt_bg_out acl-bob "$TMPD/acl-bob.out" mosquitto_sub -p "$sec_PLAIN" -u bob -P bob-pw -i bob-reader -v \
    -t "$MQTT_ROOT/req/alice"
sleep 0.5
mosquitto_pub -p "$sec_PLAIN" -u alice -P alice-pw -q 1 -t "$MQTT_ROOT/node/alice/metrics" -m '{"ok_own_topic":1}'
mosquitto_pub -p "$sec_PLAIN" -u alice -P alice-pw -q 1 -t "$MQTT_ROOT/node/bob/metrics" -m '{"forged":1}'
mosquitto_pub -p "$sec_PLAIN" -u alice -P alice-pw -q 1 -t "$MQTT_ROOT/node/bob/cmd" -m 'forged-cmd'
mosquitto_pub -p "$sec_PLAIN" -u carol -P carol-pw -q 1 -t "$MQTT_ROOT/req/alice" -m 'for-alice-only'
sleep 1
kill "$(cat "$TMPD/pids/acl-spy")" "$(cat "$TMPD/pids/acl-bob")" 2>/dev/null
check "a node may publish on its own topics" grep -q "node/alice/metrics" "$TMPD/acl.out"
check "a node cannot publish on another node's metrics" sh -c "! grep -q forged '$TMPD/acl.out'"
check "a node cannot publish on another node's cmd" sh -c "! grep -q forged-cmd '$TMPD/acl.out'"
check "a node cannot read another node's requests" sh -c "! grep -q for-alice-only '$TMPD/acl-bob.out'"

# ---- who may connect ----------------------------------------------------------------------
refused() { # NAME ARGS...: kvmesh-kv cannot connect, gives up after bounded retries, exit 1
    _name=$1; shift
    start=$(date +%s)
    # shellcheck disable=SC2068
    $RUN "$KV" sub --secret-file "$TMPD/secret" --retries 3 --connect-timeout 2000 --secs 1 --quiet $@ \
        >/dev/null 2>"$TMPD/refused.err"
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 1 ] && grep -q "cannot connect" "$TMPD/refused.err" && [ $secs -lt 30 ]; then
        ok "$_name: refused ($(tail -1 "$TMPD/refused.err" | sed 's/.*: //'), ${secs}s)"
    else
        fail "$_name: exit $rc after ${secs}s: $(cat "$TMPD/refused.err")"
    fi
}
refused "mTLS without a client certificate" --port "$sec_MTLS" --tls --ca "$P/ca.crt" --node alice
refused "mTLS with a certificate from another CA" --port "$sec_MTLS" --tls --ca "$P/ca.crt" \
    --cert "$P/rogue.crt" --key "$P/rogue.key" --node alice
refused "wrong password" --port "$sec_PLAIN" --node alice --user alice --pass nope
refused "no credentials" --port "$sec_PLAIN" --node alice
refused "TLS server name mismatch (127.0.0.2 vs localhost/127.0.0.1)" --host 127.0.0.2 --port "$sec_ALT" \
    --tls --ca "$P/ca.crt" --node alice --user alice --pass alice-pw
refused "TLS with a foreign CA" --port "$sec_TLS" --tls --ca "$P/rogue-ca.crt" --node alice --user alice --pass alice-pw
# Positive control: the same tool with the right certificate connects.
$RUN "$KV" sub --secret-file "$TMPD/secret" --port "$sec_MTLS" --tls --ca "$P/ca.crt" --cert "$P/alice.crt" \
    --key "$P/alice.key" --node alice --secs 1 --quiet >/dev/null 2>&1
check "mTLS with a valid certificate connects" test $? -eq 0
done_testing
