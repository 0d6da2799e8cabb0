#!/bin/sh
# Faults. In every case nothing corrupted is delivered, and the transfer either completes
# (byte-identical) or is reported failed (exit 1, no output file):
#  - the broker is killed mid-transfer and restarted: both nodes reconnect with backoff,
#    re-subscribe, re-announce, and the fetch resumes with only the missing chunks;
#  - the holder dies mid-transfer: its last will arrives, the partial transfer is
#    abandoned and its buffer freed, and the fetch reports the peer gone;
#  - the network is cut: the client points at a port that swallows connections (and at a
#    closed port) and gives up after bounded retries;
#  - a broker that only speaks MQTT 3.1.1: the session falls back from MQTT 5.
. "$KVMESH_TOP/tests/lib/tap.sh"
. "$KVMESH_TOP/tests/mqtt/lib/broker.sh"

H="$HELPERS/mqtt_helper"
mqtt_secret "$TMPD/secret"
check "broker up" mqtt_broker_start fb open
SIZE=$((16 * 1024 * 1024))
mqtt_payload "$TMPD/payload" "$SIZE"
MODEL=$(mqtt_hex32 model-faults)
S="--secret-file $TMPD/secret --port $fb_PLAIN --model $MODEL"

# ---- broker killed mid-transfer --------------------------------------------------------
PREFIX=$(mqtt_hex32 broker-kill)
# 64 chunks, >= 40 ms apart: the transfer takes about 3 s, so a kill at 1 s lands inside it.
mqtt_bg pub-bk $RUN "$KV" pub $S --prefix "$PREFIX" --node prov-bk --file "$TMPD/payload" --pace-ms 40 \
    --requests 1 --retries 0 --quiet
mqtt_bg_out fetch-bk "$TMPD/bk.json" $RUN "$KV" fetch $S --prefix "$PREFIX" --node fetch-bk \
    --out "$TMPD/got-bk" --deadline 60 --retries 0 --json --quiet
sleep 1
mqtt_broker_stop fb KILL
sleep 1
check "broker restarted on the same port" mqtt_broker_restart fb
mqtt_bg_wait fetch-bk 90
rc=$?
mqtt_bg_wait pub-bk 30
out=$(cat "$TMPD/bk.json")
echo "# broker kill: $out"
check "broker kill: fetch completed (exit $rc)" test $rc -eq 0
check "broker kill: byte-identical after resume" cmp -s "$TMPD/payload" "$TMPD/got-bk"
check "broker kill: the fetcher reconnected" test "$(json_num reconnects "$out")" -ge 1
check "broker kill: the request was repeated after the reconnect" test "$(json_num frames_sent "$out")" -ge 2
check "broker kill: nothing failed verification" sh -c "echo '$out' | grep -q '\"auth\":0,' && echo '$out' | grep -q '\"digest\":0,'"

# ---- holder dies mid-transfer --------------------------------------------------------------
PREFIX=$(mqtt_hex32 peer-death)
mqtt_bg pub-pd $RUN "$KV" pub $S --prefix "$PREFIX" --node prov-pd --file "$TMPD/payload" --pace-ms 60 --quiet
mqtt_bg_out fetch-pd "$TMPD/pd.json" $RUN "$KV" fetch $S --prefix "$PREFIX" --node fetch-pd \
    --out "$TMPD/got-pd" --deadline 6 --json --quiet
sleep 1.5
kill -9 "$(cat "$TMPD/pids/pub-pd")"
start=$(date +%s)
mqtt_bg_wait fetch-pd 30
rc=$?
secs=$(( $(date +%s) - start ))
out=$(cat "$TMPD/pd.json")
echo "# peer death: $out"
check "peer death: fetch reports failure (exit $rc)" test $rc -eq 1
check "peer death: reported as the peer going offline" sh -c "echo '$out' | grep -q 'peer went offline'"
check "peer death: its partial transfer was abandoned and freed" test "$(json_num peer_gone "$out")" -eq 1
check "peer death: nothing delivered, no file written" sh -c "echo '$out' | grep -q '\"delivered_bytes\":[0-9]*,' && test ! -e '$TMPD/got-pd'"
check "peer death: reported within the deadline (${secs}s)" test "$secs" -le 12
# Its retained announcement is now stale; a new holder replaces it and fetching works.
mqtt_bg pub-pd2 $RUN "$KV" pub $S --prefix "$PREFIX" --node prov-pd2 --file "$TMPD/payload" --requests 1 --quiet
$RUN "$KV" fetch $S --prefix "$PREFIX" --node fetch-pd2 --out "$TMPD/got-pd2" --deadline 60 --quiet
check "after the death a new holder serves the prefix" cmp -s "$TMPD/payload" "$TMPD/got-pd2"
mqtt_bg_wait pub-pd2 30

# ---- network cut ---------------------------------------------------------------------------
mqtt_bg blackhole $RUN "$H" blackhole "$TMPD/bh.port"
i=0; while [ ! -s "$TMPD/bh.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
BH=$(cat "$TMPD/bh.port")
start=$(date +%s)
$RUN "$KV" fetch --secret-file "$TMPD/secret" --port "$BH" --model "$MODEL" --prefix "$PREFIX" --node cut \
    --out "$TMPD/got-cut" --retries 3 --connect-timeout 1000 --quiet 2>"$TMPD/cut.err"
rc=$?
secs=$(( $(date +%s) - start ))
check "port that swallows packets: gives up with exit 1 (${secs}s)" test $rc -eq 1
check "... after bounded retries (3 x 1 s connect timeout + backoff < 10 s)" test "$secs" -lt 10
check "... says the broker is unreachable" grep -q "broker unreachable" "$TMPD/cut.err"
check "... writes nothing" test ! -e "$TMPD/got-cut"
CLOSED=$(mqtt_free_port)
start=$(date +%s)
$RUN "$KV" fetch --secret-file "$TMPD/secret" --port "$CLOSED" --model "$MODEL" --prefix "$PREFIX" --node cut2 \
    --out "$TMPD/got-cut" --retries 4 --quiet 2>"$TMPD/cut.err"
rc=$?
secs=$(( $(date +%s) - start ))
check "closed port: exit 1 after 4 attempts with backoff (${secs}s)" sh -c "test $rc -eq 1 && test $secs -lt 10"

# ---- MQTT 3.1.1-only broker ---------------------------------------------------------------
mqtt_bg fakev3 $RUN "$H" fakev3 "$TMPD/v3.port"
i=0; while [ ! -s "$TMPD/v3.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
out=$($RUN "$KV" sub --secret-file "$TMPD/secret" --port "$(cat "$TMPD/v3.port")" --node v3 --secs 1 --quiet)
check "v5 refused by a 3.1.1 broker: fell back to 3.1.1 and connected" sh -c "echo '$out' | grep -q '\"protocol\":311'"
done_testing
