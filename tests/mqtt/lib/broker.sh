# Shared helper for mqtt integration tests: a test PKI, mosquitto brokers on free ports on
# 127.0.0.1, background processes, and cleanup that runs even when a test fails.
# Source after tests/lib/tap.sh. POSIX sh.
#
#   mqtt_pki DIR                 CA, server cert (DNS:localhost, IP:127.0.0.1), client certs
#                                for the nodes in MQTT_PKI_CLIENTS, and a rogue CA + client
#   mqtt_broker_start NAME KIND  KIND open: one anonymous plain listener
#                                KIND secure: password plain, password TLS, mTLS (client
#                                cert identity as username), all with the ACL below, and a
#                                TLS listener on 127.0.0.2 for the hostname check
#                                Sets <NAME>_PLAIN, <NAME>_TLS, <NAME>_MTLS, <NAME>_ALT ports
#   mqtt_broker_stop NAME [SIG]  stop (SIGTERM default; KILL to simulate a crash)
#   mqtt_broker_restart NAME     start again on the same ports, same config
#   mqtt_bg NAME CMD...          run CMD in the background; pid in $TMPD/pids/NAME
#   mqtt_bg_out NAME FILE CMD... the same with stdout to FILE; mqtt_bg_wait NAME [SECS]
#   mqtt_wait_port PORT [SECS]   until something listens on 127.0.0.1:PORT
# shellcheck shell=sh

MQTT_FLEET=${MQTT_FLEET:-lab}
MQTT_ROOT="kvmesh/v1/$MQTT_FLEET"
MQTT_PKI_CLIENTS=${MQTT_PKI_CLIENTS:-"alice bob carol"}
KV="$BIN/kvmesh-kv"
HELPERS="$KVMESH_BUILD/tests/helpers"
mkdir -p "$TMPD/pids" "$TMPD/brokers"

mqtt_cleanup() {
    for f in "$TMPD"/pids/* "$TMPD"/brokers/*/pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f" 2>/dev/null)
        # Its children too, in case the command was a wrapper.
        [ -n "$p" ] && { pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; }
    done
    sleep 0.2
    for f in "$TMPD"/pids/* "$TMPD"/brokers/*/pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f" 2>/dev/null)
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null
    done
    rm -rf "$TMPD"
}
trap 'mqtt_cleanup' EXIT
trap 'exit 1' INT TERM

# A port nobody listens on, from a range unlikely to be used by others.
mqtt_free_port() {
    while :; do
        p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 30000) + 20000 ))
        if ! ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q .; then
            echo "$p"
            return
        fi
    done
}

mqtt_wait_port() {
    _mq_n=$(( ${2:-10} * 20 ))
    while [ "$_mq_n" -gt 0 ]; do
        ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q . && return 0
        sleep 0.05
        _mq_n=$((_mq_n - 1))
    done
    return 1
}

mqtt_bg() {
    _name=$1; shift
    "$@" &
    echo $! >"$TMPD/pids/$_name"
}

# mqtt_bg_out NAME FILE CMD...: the same, with stdout to FILE.
mqtt_bg_out() {
    _name=$1 _out=$2; shift 2
    "$@" >"$_out" &
    echo $! >"$TMPD/pids/$_name"
}

# Waits for a background process; returns its exit status (or 124 after SECS).
mqtt_bg_wait() {
    _pid=$(cat "$TMPD/pids/$1")
    _mq_n=$(( ${2:-60} * 10 ))
    while kill -0 "$_pid" 2>/dev/null; do
        _mq_n=$((_mq_n - 1))
        if [ "$_mq_n" -le 0 ]; then kill "$_pid" 2>/dev/null; wait "$_pid" 2>/dev/null; return 124; fi
        sleep 0.1
    done
    wait "$_pid"
}

_ossl() { openssl "$@" >/dev/null 2>&1; }

_cert() { # DIR NAME CA SUBJECT EXT
    _ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/$2.key"
    _ossl req -new -key "$1/$2.key" -subj "$4" -out "$1/$2.csr"
    printf '%s\n' "$5" >"$1/$2.ext"
    _ossl x509 -req -in "$1/$2.csr" -CA "$1/$3.crt" -CAkey "$1/$3.key" -CAcreateserial -days 2 \
        -extfile "$1/$2.ext" -out "$1/$2.crt"
}

mqtt_pki() {
    mkdir -p "$1"
    for ca in ca rogue-ca; do
        _ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/$ca.key"
        _ossl req -x509 -new -key "$1/$ca.key" -days 2 -subj "/CN=kvmesh test $ca" -out "$1/$ca.crt"
    done
    _cert "$1" server ca /CN=localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
    for c in $MQTT_PKI_CLIENTS; do
        _cert "$1" "$c" ca "/CN=$c" "extendedKeyUsage=clientAuth"
    done
    _cert "$1" rogue rogue-ca /CN=alice "extendedKeyUsage=clientAuth"
    [ -s "$1/server.crt" ] && [ -s "$1/rogue.crt" ]
}

# Password file for every PKI client (password = "<name>-pw") and the key-less "spy".
_mqtt_passwords() {
    : >"$1"
    for u in $MQTT_PKI_CLIENTS spy; do
        mosquitto_passwd -b "$1" "$u" "$u-pw" >/dev/null 2>&1
    done
}

# The ACL: a node writes only its own node/<id>/ topics and reads its own req/resp; the
# shared cache directory kv/ is open to the fleet; "spy" may read everything.
_mqtt_acl() {
    cat >"$1" <<ACL
user spy
topic read #

pattern readwrite $MQTT_ROOT/node/%u/#
pattern read $MQTT_ROOT/node/+/status
pattern read $MQTT_ROOT/req/%u
pattern write $MQTT_ROOT/req/+
pattern read $MQTT_ROOT/resp/%u
pattern write $MQTT_ROOT/resp/+
pattern readwrite $MQTT_ROOT/kv/#
ACL
}

_mqtt_broker_run() {
    d="$TMPD/brokers/$1"
    mosquitto -c "$d/mosquitto.conf" >>"$d/log" 2>&1 &
    echo $! >"$d/pid"
    mqtt_wait_port "$(cat "$d/port")" 10
}

mqtt_broker_start() {
    name=$1 kind=$2
    d="$TMPD/brokers/$name"
    mkdir -p "$d"
    plain=$(mqtt_free_port)
    echo "$plain" >"$d/port"
    {
        echo "user root"
        echo "persistence false"
        echo "set_tcp_nodelay true"   # small frames go out at once, not after a delayed ACK (about 44 ms per round trip)
        echo "log_dest stderr"
        echo "log_type error"
        echo "log_type warning"
        echo "max_queued_messages 100000"
        echo "max_inflight_messages 64"
    } >"$d/mosquitto.conf"
    if [ "$kind" = open ]; then
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$plain" >>"$d/mosquitto.conf"
        eval "${name}_PLAIN=$plain"
    else
        tls=$(mqtt_free_port); mtls=$(mqtt_free_port); alt=$(mqtt_free_port)
        _mqtt_passwords "$d/passwd"
        _mqtt_acl "$d/acl"
        p="$TMPD/pki"
        cat >>"$d/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous false
password_file $d/passwd
acl_file $d/acl
listener $plain 127.0.0.1
listener $tls 127.0.0.1
cafile $p/ca.crt
certfile $p/server.crt
keyfile $p/server.key
listener $alt 127.0.0.2
cafile $p/ca.crt
certfile $p/server.crt
keyfile $p/server.key
listener $mtls 127.0.0.1
cafile $p/ca.crt
certfile $p/server.crt
keyfile $p/server.key
require_certificate true
use_identity_as_username true
CONF
        eval "${name}_PLAIN=$plain ${name}_TLS=$tls ${name}_MTLS=$mtls ${name}_ALT=$alt"
        echo "$mtls" >"$d/port.last"
    fi
    _mqtt_broker_run "$name" && { [ ! -f "$d/port.last" ] || mqtt_wait_port "$(cat "$d/port.last")" 10; }
}

mqtt_broker_stop() {
    d="$TMPD/brokers/$1"
    p=$(cat "$d/pid" 2>/dev/null) || return 0
    kill "-${2:-TERM}" "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    rm -f "$d/pid"
}

mqtt_broker_restart() {
    _mqtt_broker_run "$1"
}

# Fleet secret and payload helpers.
mqtt_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; }
mqtt_hex32() { printf '%s' "$1" | sha256sum | cut -c1-64; }
# A payload of SIZE bytes with the known marker at the front of every 4 KiB block.
mqtt_payload() {
    head -c "$2" /dev/urandom >"$1.rnd"
    run "$HELPERS/mqtt_helper" mark "$1.rnd" "$1" "${3:-KVMESH-KNOWN-PLAINTEXT-SEQUENCE}" && rm -f "$1.rnd"
}
# The value of a numeric key in a flat or nested JSON line (first occurrence).
json_num() { printf '%s' "$2" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -1; }
# mqtt_wait_online NODE PORT: until NODE's retained status says online (its subscriptions
# are in place by then: they are sent before the status in the same connection).
mqtt_wait_online() {
    _mq_i=0
    while [ $_mq_i -lt 100 ]; do
        [ "$(mosquitto_sub -p "$2" -t "$MQTT_ROOT/node/$1/status" -C 1 -W 1 2>/dev/null)" = online ] && return 0
        _mq_i=$((_mq_i + 1))
    done
    return 1
}
