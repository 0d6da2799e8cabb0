#!/bin/sh
# kvmesh run end to end, on a real mosquitto (TLS, passwords, ACLs) with stories260K:
# cache sharing between two nodes (output bit-identical to `kvmesh generate`, the reused
# count exact to the token, a 21-token requester finding a 75-token context), the
# system-prompt policy, telemetry and Home Assistant discovery as valid JSON, the
# monitor, bad requests and a flood, commands (sealed, stale, unsealed, replayed, also
# across a restart), kill -9 (the last will) with the store intact after the restart,
# and a clean SIGTERM in the middle of a generation.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib/fw.sh"
fw_setup

SHARED="Once upon a time, there was a little girl named Lily. She loved to play"
P60="$SHARED outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it, but a dog took it first."
P2="$SHARED with her cat named Tom."
ntok() { run "$BIN/kvmesh" generate -m "$IMG" -p "$1" -n 0 --temp 0 2>&1 >/dev/null | sed -n 's/^prompt tokens: \([0-9]*\),.*/\1/p'; }
final() { grep '"done":true' "$1" | tail -1; }
n_shared=$(ntok "$SHARED"); n60=$(ntok "$P60"); n2=$(ntok "$P2")

# Everything on the wire, as a broker tenant without the fleet key sees it.
mosquitto_sub -p "$fw_PLAIN" -u spy -P spy-pw -t '#' -v >"$TMPD/wire.txt" 2>/dev/null &
echo $! >"$TMPD/pids/wire"

fw_conf node-a "[cache]" "publish = all"
fw_conf node-b "[cache]" "publish = all"
check "node-a starts and says online (retained)" fw_start node-a
check "node-b starts and says online" fw_start node-b
check "start-up reports the arena" grep -q "arena: [0-9]* of [0-9]* bytes used" "$TMPD/node-a.log"

# ---- cache sharing ----------------------------------------------------------------------
fw_ask node-a --prompt "$P60" -n 20 --temp 0 --json >"$TMPD/a1.json"
check "node-a answers a $n60-token prompt (no cache yet)" grep -q '"reused_tokens":0,"cache":"none"' "$TMPD/a1.json"
check "its records stream: 20 token records before the final one" \
    [ "$(grep -c '"token":' "$TMPD/a1.json")" -eq 20 ]
sleep 0.5   # the announcements reach node-b's index
fw_ask node-b --prompt "$P2" -n 40 --temp 0 --json >"$TMPD/b1.json"
f=$(final "$TMPD/b1.json")
echo "# node-b: $f"
check_all "node-b found node-a's $n60-token context from its own $n2-token prompt (fleet)" \
    '[ "$(fw_json cache "$f")" = fleet ] && [ "$(fw_json cache_from "$f")" = node-a ]'
check "reused tokens $(fw_json reused_tokens "$f") == the shared prefix, $n_shared tokens" \
    [ "$(fw_json reused_tokens "$f")" = "$n_shared" ]
text=$(grep '"token":' "$TMPD/b1.json" | while IFS= read -r l; do fw_json text "$l"; done | tr -d '\n')
run "$BIN/kvmesh" generate -m "$IMG" -p "$P2" -n 40 --temp 0 --threads 1 >"$TMPD/gen.txt" 2>/dev/null
printf '%s%s\n' "$P2" "$text" >"$TMPD/b1.txt"
check "node-b's greedy output is bit-identical to kvmesh generate" cmp -s "$TMPD/gen.txt" "$TMPD/b1.txt"
fw_ask node-b --prompt "$P2" -n 5 --temp 0 --json >"$TMPD/b2.json"
f=$(final "$TMPD/b2.json")
check_all "the same prompt again: node-b's own store, all but the last token reused" \
    '[ "$(fw_json cache "$f")" = local ] && [ "$(fw_json reused_tokens "$f")" = $((n2 - 1)) ]'

# The system-prompt policy: only the system prompt's part is stored and shared.
SYS="Tom and his dog Bartholomew went to the market to buy food for the big party in the garden."
n_sys=$(ntok "$SYS")
fw_conf node-c "[cache]" "publish = system"
check "node-c starts (publish = system)" fw_start node-c
fw_ask node-c --system "$SYS" --prompt "Zebediah whispered a secret." -n 5 --temp 0 --json >/dev/null
fw_wait_glob "$TMPD/node-c/cache/*.kv"
entries=$(ls "$TMPD/node-c/cache/"*.kv 2>/dev/null | wc -l)
pos=$(run "$BIN/kvmesh-kv" inspect "$TMPD"/node-c/cache/*.kv 2>/dev/null | sed -n 's/.*"positions":\[0,\([0-9]*\)\].*/\1/p')
check_all "node-c stored one cache of exactly the system prompt's $n_sys tokens (got $entries entry, $pos positions)" \
    '[ "$entries" -eq 1 ] && [ "$pos" = "$n_sys" ]'
sleep 0.5
fw_ask node-b --system "$SYS" --prompt "Then it rained." -n 5 --temp 0 --json >"$TMPD/b3.json"
f=$(final "$TMPD/b3.json")
check_all "node-b reuses node-c's system prompt cache: $(fw_json reused_tokens "$f") == $n_sys tokens" \
    '[ "$(fw_json cache_from "$f")" = node-c ] && [ "$(fw_json reused_tokens "$f")" = "$n_sys" ]'
fw_stop node-c

# ---- telemetry, discovery, the monitor ------------------------------------------------
sleep 1.2
fw_sub "$MQTT_ROOT/node/node-b/metrics" 1 5 >"$TMPD/metrics.json"
check "metrics are JSON with the documented fields and units" run "$JSONCHECK" node:string mode:string state:string \
    tokens_per_s:number ttft_ms:number uptime_s:number time_unix:number requests:number prefill_tokens:number \
    prefill_tokens_saved:number cache_hits:number cache_hits_fleet:number cache_misses:number cache_hit_pct:numnull \
    cache_in_bytes:number cache_out_bytes:number store_entries:number store_bytes:number \
    store_discarded_torn:number frames_rejected:object frames_rejected.auth:number frames_rejected.replay:number \
    foreign_messages:number commands_refused:number temp_mc:numnull power_mw:numnull throttle_flags governor:string \
    threads:number arena_bytes:number arena_capacity_bytes:number <"$TMPD/metrics.json"
check_all "metrics count the fleet hit and the prefill saved" \
    '[ "$(fw_json cache_hits_fleet "$(cat "$TMPD/metrics.json")")" -ge 2 ] &&
     [ "$(fw_json prefill_tokens_saved "$(cat "$TMPD/metrics.json")")" -ge "$n_shared" ]'
fw_sub "homeassistant/sensor/+/config" 12 5 | grep '"kvmesh_node-a_' >"$TMPD/ha.json"
check "four Home Assistant discovery configs for node-a" [ "$(wc -l <"$TMPD/ha.json")" -eq 4 ]
check "each has unique_id, state_topic and a device" run "$JSONCHECK" name:string unique_id:string state_topic:string \
    device.identifiers:array device.name:string device.model:string <"$TMPD/ha.json"
grep -v node-a_status "$TMPD/ha.json" >"$TMPD/ha3.json"
check "the sensors have value templates, units and availability" run "$JSONCHECK" value_template:string \
    unit_of_measurement:string availability_topic:string payload_available:string payload_not_available:string \
    <"$TMPD/ha3.json"
check "tokens/s, temperature, cache hit rate and status are there" sh -c \
    "grep -q tokens_per_s '$TMPD/ha.json' && grep -q temperature '$TMPD/ha.json' && grep -q cache_hit_rate '$TMPD/ha.json' && grep -q '_status\"' '$TMPD/ha.json'"
run "$BIN/kvmesh-monitor" --host 127.0.0.1 --port "$fw_TLS" --tls --ca "$TMPD/pki/ca.crt" --user monitor \
    --pass-file "$TMPD/monitor.pw" --node monitor --fleet "$MQTT_FLEET" --once --json >"$TMPD/mon.json"
echo "# monitor: $(cat "$TMPD/mon.json")"
check "kvmesh-monitor --once --json (broker credentials only) lists both nodes" sh -c \
    "$RUN '$JSONCHECK' fleet:string nodes:array <'$TMPD/mon.json' && grep -q '\"node\":\"node-a\",\"status\":\"online\"' '$TMPD/mon.json' && grep -q '\"node\":\"node-b\",\"status\":\"online\"' '$TMPD/mon.json'"
run "$BIN/kvmesh-monitor" --host 127.0.0.1 --port "$fw_TLS" --tls --ca "$TMPD/pki/ca.crt" --user monitor \
    --pass-file "$TMPD/monitor.pw" --node monitor --fleet "$MQTT_FLEET" --once >"$TMPD/mon.txt"
check "and the table shows them" sh -c "grep -q '^node-a *online *cache-share' '$TMPD/mon.txt' && grep -q '^node-b' '$TMPD/mon.txt'"

# ---- bad requests, a flood --------------------------------------------------------------
fw_ask node-a --raw '{"id":"m1","prompt":' --json >"$TMPD/bad1.json"
check "malformed JSON: an error" grep -q '"error":"bad_json"' "$TMPD/bad1.json"
fw_ask node-a --raw '{"id":"u1","prompt":"hi","colour":"red"}' --json >"$TMPD/bad2.json"
check "an unknown field: an error naming it" grep -q '"id":"u1","error":"bad_request".*colour' "$TMPD/bad2.json"
fw_ask node-a --raw '{"id":"s1","prompt":"hi","sampling":{"temp":-1}}' --json >"$TMPD/bad3.json"
check "a bad sampling value: an error" grep -q '"error":"bad_request".*temp' "$TMPD/bad3.json"
long=$(i=0; while [ $i -lt 140 ]; do printf 'the big dog ran and '; i=$((i + 1)); done)
fw_ask node-a --prompt "$long" --json >"$TMPD/bad4.json"
check "a prompt over the context: prompt_too_long" grep -q '"error":"prompt_too_long".*512' "$TMPD/bad4.json"
fw_ask node-a --prompt "Once upon a time" -n 150 --temp 0 --count 24 >"$TMPD/flood.json"
echo "# flood: $(cat "$TMPD/flood.json")"
d=$(fw_json done "$(cat "$TMPD/flood.json")"); e=$(fw_json errors "$(cat "$TMPD/flood.json")")
b=$(fw_json busy "$(cat "$TMPD/flood.json")")
check_all "a flood of 24 beyond the queue of 8: all answered ($d done + $e errors), the overflow ($b) with busy" \
    '[ $((d + e)) -eq 24 ] && [ "$b" -ge 1 ] && [ "$b" -eq "$e" ]'
fw_ask node-a --prompt "Once upon a time" -n 5 --temp 0 --json >"$TMPD/after.json"
check "and node-a keeps serving" grep -q '"done":true' "$TMPD/after.json"

# ---- commands ----------------------------------------------------------------------------
fw_cmd node-a status >"$TMPD/st.json"
check "status: answered with the metrics" sh -c "grep -q '\"ok\":true' '$TMPD/st.json' && grep -q '\"status\":{\"node\":\"node-a\"' '$TMPD/st.json'"
check "set-mode standalone" fw_cmd node-a set-mode standalone
fw_ask node-b --prompt "$P60" -n 3 --temp 0 --json >/dev/null   # node-b now holds it too; fine
sleep 1.2
check "the metrics say standalone" sh -c "$RUN '$JSONCHECK' --get mode <<EOF | grep -qx standalone
$(fw_sub "$MQTT_ROOT/node/node-a/metrics")
EOF"
check "set-mode cache-share" fw_cmd node-a set-mode cache-share
fw_cmd node-a set-mode split >"$TMPD/c1.json"
check "set-mode to an unknown mode is refused" grep -q '"ok":false,"error":"set-mode needs' "$TMPD/c1.json"
fw_cmd node-a --ts $(( $(date +%s) - 3600 )) status >"$TMPD/c2.json"
check "a stale command (ts an hour old) is refused" grep -q '"ok":false,"error":"stale' "$TMPD/c2.json"
# An unsealed command: dropped by the mqtt layer, counted, never carried out.
mosquitto_pub -p "$fw_PLAIN" -u client -P client-pw -t "$MQTT_ROOT/node/node-a/cmd" -m '{"cmd":"shutdown","ts":0}'
# A sealed command captured on the wire and replayed.
mosquitto_sub -p "$fw_PLAIN" -u spy -P spy-pw -t "$MQTT_ROOT/node/node-a/cmd" -C 1 -N -W 10 >"$TMPD/cmd.bin" 2>/dev/null &
cap=$!
sleep 0.5
fw_cmd node-a drop-caches >"$TMPD/drop.json"
wait $cap
check "drop-caches: the store is empty" sh -c "grep -q '\"ok\":true' '$TMPD/drop.json' && [ -z \"\$(ls '$TMPD/node-a/cache/' | grep '\\.kv$')\" ]"
check "the sealed command was captured on the wire" [ -s "$TMPD/cmd.bin" ]
sleep 1.2   # a metrics document (period_s = 1) that already counts drop-caches
m=$(fw_sub "$MQTT_ROOT/node/node-a/metrics")
before=$(fw_json commands "$m"); replays=$(fw_json frames_rejected.replay "$m")
mosquitto_pub -p "$fw_PLAIN" -u client -P client-pw -t "$MQTT_ROOT/node/node-a/cmd" -f "$TMPD/cmd.bin"
sleep 1.5
m=$(fw_sub "$MQTT_ROOT/node/node-a/metrics")
check_all "the replayed command is dropped (replays $replays -> $(fw_json frames_rejected.replay "$m")) and not carried out again" \
    '[ "$(fw_json frames_rejected.replay "$m")" -gt "$replays" ] && [ "$(fw_json commands "$m")" = "$before" ]'
check_all "the unsealed command is counted as foreign, and node-a is still up" \
    '[ "$(fw_json foreign_messages "$m")" -ge 1 ] && [ "$(fw_status node-a)" = online ]'
printf '[telemetry]\nperiod_s = 2\n' >>"$TMPD/node-a.conf"
fw_cmd node-a reload >"$TMPD/reload.json"
check "reload: ok" grep -q '"ok":true' "$TMPD/reload.json"

# ---- kill -9, the last will, the store after a restart ----------------------------------
fw_ask node-a --prompt "$P60" -n 20 --temp 0 --json >/dev/null
# The cache is stored after the final reply goes out: wait for it before the kill (a
# loaded machine once killed node-a first, and the restart had nothing to use).
i=0
while [ "$i" -lt 100 ] && ! ls "$TMPD/node-a/cache/" | grep -q '\.kv$'; do sleep 0.1; i=$((i + 1)); done
n_entries=$(ls "$TMPD/node-a/cache/" | grep -c '\.kv$')
fw_stop node-a KILL
check "kill -9: node-a's status turns offline through its last will" fw_wait_status node-a offline 15
check "restarted" fw_start node-a
check "its store is intact and verified: $n_entries entries, nothing discarded" \
    grep -q "$n_entries entries verified.*0 torn and 0 foreign" "$TMPD/node-a.log"
# Replayed right after the restart, before the client's newer frames move node-a's replay
# window past it: the persisted list of carried-out commands refuses it.
mosquitto_pub -p "$fw_PLAIN" -u client -P client-pw -t "$MQTT_ROOT/node/node-a/cmd" -f "$TMPD/cmd.bin"
sleep 1
check "the captured command replayed after the restart is refused too" grep -q "refused: replayed" "$TMPD/node-a.log"
fw_ask node-a --prompt "$P60" -n 5 --temp 0 --json >"$TMPD/a2.json"
check "and used: the context comes from the store" grep -q '"cache":"local"' "$TMPD/a2.json"

# ---- confidentiality: nothing user-derived on the wire in the clear ---------------------
kill "$(cat "$TMPD/pids/wire")"
for w in Lily Bartholomew Zebediah; do
    check "no '$w' in any payload a broker tenant saw" sh -c "! grep -q '$w' '$TMPD/wire.txt'"
done

# ---- shutdown: by command, and by SIGTERM mid-generation ---------------------------------
fw_cmd node-b shutdown >/dev/null
check "the shutdown command: node-b exits 0" fw_stop node-b
check "and says offline" fw_wait_status node-b offline 5
# Several long requests queued; SIGTERM once the first has finished.
fw_ask node-a --prompt "Once upon a time" -n 250 --temp 0 --count 6 --json >"$TMPD/long.json" &
askpid=$!
i=0; while [ $i -lt 300 ] && ! grep -q '"done":true' "$TMPD/long.json" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
fw_stop node-a TERM
rc=$?
wait $askpid
ended=$(grep -c '"done":true\|"error":' "$TMPD/long.json")
check "SIGTERM with work queued: exit 0" [ "$rc" -eq 0 ]
check "every request is answered: $ended of 6 (finished, cancelled, or shutting_down)" [ "$ended" -eq 6 ]
check "the queued ones with shutting_down" grep -q '"error":"shutting_down"' "$TMPD/long.json"
check "offline is published" fw_wait_status node-a offline 5
check "the log says it stopped cleanly" grep -q "kvmesh run: stopped" "$TMPD/node-a.log"
fw_done
