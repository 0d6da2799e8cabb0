# Shared helper for the firmware's shell tests: a secure mosquitto (TLS, passwords, the
# mqtt tests' ACL plus Home Assistant topics for the nodes), the stories260K image, and
# `kvmesh run` nodes started from generated configurations. Source after
# tests/lib/tap.sh. POSIX sh.
#
#   fw_setup                   PKI, broker "fw", fleet secret, image ($IMG)
#   fw_conf NAME [LINES]       writes $TMPD/NAME.conf: the node NAME on the TLS listener,
#                              its own store and state, then LINES (INI, appended)
#   fw_start NAME [ENV=V...]   runs `kvmesh run` for NAME in the background (log in
#                              $TMPD/NAME.log), waits until its status is online
#   fw_stop NAME [SIG]         SIGTERM (default) and wait; returns its exit status
#   fw_ask NODE ARGS...        kvmesh-kv ask as the client "client" (a persisted frame
#                              counter: receivers refuse a sender whose counter goes back)
#   fw_cmd NODE ARGS...        kvmesh-kv cmd as the client "client"
#   fw_sub TOPIC [N] [SECS]    N retained/live payloads of TOPIC (as "spy")
#   fw_status NAME             the retained status of NAME
# shellcheck shell=sh

MQTT_PKI_CLIENTS="node-a node-b node-c client monitor"
. "$KVMESH_TOP/tests/mqtt/lib/broker.sh"
JSONCHECK="$KVMESH_BUILD/tests/helpers/jsoncheck"

fw_setup() {
    require_models
    S="$KVMESH_MODELS/stories260K"
    IMG="$TMPD/s.kvm"
    run "$BIN/kvmesh-convert" -q --llama2c "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -g 4 -o "$IMG" ||
        { fail "convert stories260K"; exit 1; }
    mqtt_pki "$TMPD/pki" || { fail "test PKI"; exit 1; }
    mqtt_broker_start fw secure || { fail "broker start"; exit 1; }
    # Nodes also write their Home Assistant discovery configs; the monitor reads node/.
    {
        for n in node-a node-b node-c; do
            printf 'user %s\ntopic write homeassistant/sensor/%s_tokens_per_s/config\n' "$n" "$n"
            printf 'topic write homeassistant/sensor/%s_temperature/config\n' "$n"
            printf 'topic write homeassistant/sensor/%s_cache_hit_rate/config\n' "$n"
            printf 'topic write homeassistant/sensor/%s_status/config\n' "$n"
        done
        printf 'user monitor\ntopic read %s/node/+/status\ntopic read %s/node/+/metrics\n' "$MQTT_ROOT" "$MQTT_ROOT"
        printf 'user client\ntopic write %s/node/+/cmd\n' "$MQTT_ROOT"
    } >>"$TMPD/brokers/fw/acl"
    kill -HUP "$(cat "$TMPD/brokers/fw/pid")"
    sleep 0.3
    mqtt_secret "$TMPD/fleet.key"
    for u in node-a node-b node-c client monitor spy; do printf '%s-pw\n' "$u" >"$TMPD/$u.pw"; done
}

fw_conf() {
    _n=$1; shift
    mkdir -p "$TMPD/$_n"
    cat >"$TMPD/$_n.conf" <<CONF
[node]
id = $_n
fleet = $MQTT_FLEET
state_dir = $TMPD/$_n/state
[broker]
url = mqtts://127.0.0.1:$fw_TLS
ca_file = $TMPD/pki/ca.crt
username = $_n
password_file = $TMPD/$_n.pw
[security]
secret_file = $TMPD/fleet.key
[model]
image = $IMG
threads = 1
[cache]
dir = $TMPD/$_n/cache
[telemetry]
period_s = 1
CONF
    # A board build (rpi4, rpi5 under qemu) names real GPIO lines that this machine does
    # not have: such nodes run on hal's sim backend unless the test sets [board] itself.
    case "${KVMESH_BOARD:-host} $*" in
    host*|*"[board]"*) ;;
    *) mkdir -p "$TMPD/root-$_n"
       printf '[board]\nbackend = sim\nsysfs_root = %s\n' "$TMPD/root-$_n" >>"$TMPD/$_n.conf" ;;
    esac
    for _l in "$@"; do printf '%s\n' "$_l" >>"$TMPD/$_n.conf"; done
}

fw_status() {
    mosquitto_sub -p "$fw_PLAIN" -u spy -P spy-pw -t "$MQTT_ROOT/node/$1/status" -C 1 -W 2 2>/dev/null
}

# fw_wait_status NAME VALUE [SECS]
fw_wait_status() {
    _i=0
    while [ $_i -lt $(( ${3:-20} * 2 )) ]; do
        [ "$(fw_status "$1")" = "$2" ] && return 0
        sleep 0.5
        _i=$((_i + 1))
    done
    return 1
}

fw_start() {
    _n=$1; shift
    # shellcheck disable=SC2086
    env "$@" $RUN "$BIN/kvmesh" run --config "$TMPD/$_n.conf" >>"$TMPD/$_n.out" 2>>"$TMPD/$_n.log" &
    echo $! >"$TMPD/pids/$_n"
    # The retained status may still say online from a killed run: wait for the new
    # process to say so itself.
    _i=0
    while [ $_i -lt 200 ]; do
        grep -q "connected to" "$TMPD/$_n.log" 2>/dev/null && fw_wait_status "$_n" online 10 && return 0
        kill -0 "$(cat "$TMPD/pids/$_n")" 2>/dev/null || return 1
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

fw_stop() {
    _p=$(cat "$TMPD/pids/$1")
    kill "-${2:-TERM}" "$_p" 2>/dev/null
    wait "$_p"
    _rc=$?
    rm -f "$TMPD/pids/$1"
    return $_rc
}

fw_net() {
    echo --host 127.0.0.1 --port "$fw_TLS" --tls --ca "$TMPD/pki/ca.crt" --user client --pass-file "$TMPD/client.pw" \
        --node client --secret-file "$TMPD/fleet.key" --fleet "$MQTT_FLEET" --quiet --state-file "$TMPD/client.nonce"
}
# shellcheck disable=SC2046
fw_ask() { _to=$1; shift; run "$BIN/kvmesh-kv" ask $(fw_net) --to "$_to" "$@"; }
# shellcheck disable=SC2046
fw_cmd() { _to=$1; shift; run "$BIN/kvmesh-kv" cmd $(fw_net) --to "$_to" "$@"; }

fw_sub() {
    mosquitto_sub -p "$fw_PLAIN" -u spy -P spy-pw -t "$1" -C "${2:-1}" -W "${3:-5}" 2>/dev/null
}

# The value of KEY in a JSON line (firmware's reader).
fw_json() { printf '%s\n' "$2" | run "$JSONCHECK" --get "$1"; }

# fw_wait_glob PATTERN [SECS]: until a file matches (a node stores a cache just after it
# sends the final record).
fw_wait_glob() {
    _i=0
    while [ $_i -lt $(( ${2:-5} * 10 )) ]; do
        for _f in $1; do [ -e "$_f" ] && return 0; done
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# On failure, the nodes' logs go into the test log.
fw_done() {
    if [ "$_tap_fail" -ne 0 ]; then
        for _l in "$TMPD"/*.log; do
            [ -f "$_l" ] || continue
            echo "# --- $(basename "$_l") (last 40 lines)"
            tail -40 "$_l" | sed 's/^/#   /'
        done
    fi
    done_testing
}
