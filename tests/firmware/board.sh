#!/bin/sh
# Board I/O through hal's sim backend and a fixture sysfs tree: the LED shows the state
# (idle, busy, sharing, error when the governor pauses, offline without a broker), the
# button runs the configured prompt or toggles the mode, and the thermal governor's
# changes are published, lower the threads of new requests and pause new work.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib/fw.sh"
fw_setup

for n in node-a node-b; do
    mkdir -p "$TMPD/root-$n"
    cp -r "$KVMESH_TOP/tests/hal/fixtures/rpi4/sys" "$TMPD/root-$n/"
    echo 45000 >"$TMPD/root-$n/sys/class/thermal/thermal_zone0/temp"
    fw_conf $n "[model]" "threads = 2" "[cache]" "publish = all" \
        "[board]" "backend = sim" "sysfs_root = $TMPD/root-$n" "thermal_zone = 0" "thermal_soft_mc = 70000" \
        "thermal_hard_mc = 80000" "thermal_hyst_mc = 5000" "thermal_step_ms = 200" \
        "[gpio]" "chip = gpiochip0" "led_line = GPIO17" "button_line = GPIO27" "button = run-prompt" \
        "button_prompt = Once upon a time" "button_max_tokens = 8"
done
led() { cat "$TMPD/root-$1/gpio-sim/led" 2>/dev/null; }
wait_led() {
    i=0; while [ $i -lt 100 ]; do [ "$(led "$1")" = "$2" ] && return 0; sleep 0.1; i=$((i + 1)); done; return 1
}
metric() { fw_json "$2" "$(fw_sub "$MQTT_ROOT/node/$1/metrics")"; }
temp() { echo "$2" >"$TMPD/root-$1/sys/class/thermal/thermal_zone0/temp"; }
press() { echo 1 >"$TMPD/root-$1/gpio-sim/button"; sleep 0.15; echo 0 >"$TMPD/root-$1/gpio-sim/button"; sleep 0.1; }

mosquitto_sub -p "$fw_PLAIN" -u spy -P spy-pw -t "$MQTT_ROOT/node/+/events" >"$TMPD/events.txt" 2>/dev/null &
echo $! >"$TMPD/pids/events"
check "node-a starts on the sim board" fw_start node-a
check "node-b starts" fw_start node-b
check "the LED shows idle" wait_led node-a idle
sleep 1.2
check_all "metrics carry the sensor: temp_mc 45000, governor normal, 2 threads" \
    '[ "$(metric node-a temp_mc)" = 45000 ] && [ "$(metric node-a governor)" = normal ] && [ "$(metric node-a threads)" = 2 ]'

# The button runs the configured prompt.
press node-a
i=0; while [ $i -lt 50 ] && ! grep -q "button request: {" "$TMPD/node-a.log"; do sleep 0.1; i=$((i + 1)); done
check "the button ran the configured prompt (its final record in the log)" grep -q 'button request: {"id":"button-1","done":true' "$TMPD/node-a.log"
check "the LED went busy while it ran, then back to idle" sh -c "grep -qx busy '$TMPD/root-node-a/gpio-sim/led.log' && [ \"\$(cat '$TMPD/root-node-a/gpio-sim/led')\" = idle ]"

# Sharing: node-b fetches a context node-a holds.
P60="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
fw_ask node-a --prompt "$P60" -n 5 --temp 0 --json >/dev/null
sleep 0.5
fw_ask node-b --prompt "$P60 She" -n 5 --temp 0 --json >"$TMPD/b.json"
check "node-b fetched from node-a" grep -q '"cache":"fleet","cache_from":"node-a"' "$TMPD/b.json"
check "node-b's LED showed sharing, then busy" sh -c "grep -A1 -x sharing '$TMPD/root-node-b/gpio-sim/led.log' | grep -qx busy"

# The governor: soft limit sheds a thread; hard limit pauses new work; cooling resumes.
temp node-a 72000
sleep 1.5
check "above soft: the governor sheds a thread (published: normal -> throttled, 2 -> 1)" \
    grep -q '"event":"governor","old_state":"normal","new_state":"throttled","old_threads":2,"new_threads":1,"temp_mc":72000' "$TMPD/events.txt"
fw_ask node-a --prompt "Once upon a time" -n 3 --temp 0 --json >"$TMPD/t1.json"
check "a new request runs with 1 thread" grep -q '"threads":1' "$TMPD/t1.json"
temp node-a 85000
sleep 1.5
check "above hard: paused, and published" grep -q '"new_state":"paused"' "$TMPD/events.txt"
check "the LED shows error (needs a person)" wait_led node-a error
fw_ask node-a --prompt "Once upon a time" -n 3 --temp 0 --json --timeout 3 >"$TMPD/t2.json"
check "a request waits while paused" sh -c "! grep -q '\"done\":true' '$TMPD/t2.json'"
check_all "the metrics say paused, one queued" \
    '[ "$(metric node-a governor)" = paused ] && [ "$(metric node-a queue_depth)" = 1 ]'
temp node-a 60000
sleep 2
check "cooled: resumed (published)" grep -q '"old_state":"paused","new_state":"throttled"' "$TMPD/events.txt"
check_all "the waiting request ran" \
    '[ "$(metric node-a queue_depth)" = 0 ] && [ "$(metric node-a requests_done)" -ge 3 ]'
check "the LED is back to idle" wait_led node-a idle
sleep 1
check "threads climb back to 2" [ "$(metric node-a threads)" = 2 ]

# The button's role comes from the configuration; a reload (SIGHUP) changes it.
sed -i 's/^button = run-prompt/button = toggle-mode/' "$TMPD/node-a.conf"
kill -HUP "$(cat "$TMPD/pids/node-a")"
sleep 0.5
press node-a
sleep 1.2
check "toggle-mode: the button switches node-a to standalone" [ "$(metric node-a mode)" = standalone ]
press node-a
sleep 1.2
check "and back to cache-share" [ "$(metric node-a mode)" = cache-share ]
check "the mode changes are published" grep -q '"event":"mode","old_mode":"standalone","new_mode":"cache-share"' "$TMPD/events.txt"

# No broker: the LED says offline, and comes back when the broker does.
mqtt_broker_stop fw
check "broker gone: the LED shows offline" wait_led node-b offline
mqtt_broker_restart fw
check "broker back: idle again" wait_led node-b idle
fw_stop node-b
check "the LED is off after a clean stop" [ "$(led node-b)" = off ]
fw_stop node-a
kill "$(cat "$TMPD/pids/events")" 2>/dev/null
fw_done
