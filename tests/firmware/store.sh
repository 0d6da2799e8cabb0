#!/bin/sh
# The cache store under crashes: the node is killed (SIGKILL, by the KVMESH_STORE_FAULT
# test hook) at each point of a store write, then restarted. The store must never hold
# an entry that verifies wrongly, and what the crash tore is discarded, and counted,
# when the store loads. A byte flipped on disk is caught when the entry is used.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib/fw.sh"
fw_setup
P="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

# Every .kv file left in DIR verifies against the image (kvmesh-kv verify decodes it fully).
all_verify() {
    for f in "$1"/*.kv; do
        [ -e "$f" ] || continue
        run "$BIN/kvmesh-kv" verify -m "$IMG" "$f" >/dev/null 2>&1 || return 1
    done
}

fw_conf node-a "[cache]" "publish = all"
for fault in partial before-rename before-dirsync; do
    rm -rf "$TMPD/node-a/cache"
    fw_start node-a KVMESH_STORE_FAULT=$fault || fail "start with $fault"
    fw_ask node-a --prompt "$P" -n 10 --temp 0 --json >"$TMPD/$fault.json"
    check "$fault: the request was answered before the store write" grep -q '"done":true' "$TMPD/$fault.json"
    check "$fault: the node died in the write (its will says offline)" fw_wait_status node-a offline 10
    fw_stop node-a 2>/dev/null
    check "$fault: every file the crash left verifies, or is a .tmp" all_verify "$TMPD/node-a/cache"
    : >"$TMPD/node-a.log"
    fw_start node-a || fail "restart after $fault"
    case $fault in
    before-dirsync)
        check "$fault: the renamed entry is complete: loaded and verified" \
            grep -q "1 entries verified.*0 torn and 0 foreign" "$TMPD/node-a.log" ;;
    *)
        check "$fault: the torn write is discarded and counted at load" \
            grep -q "0 entries verified.*1 torn and 0 foreign" "$TMPD/node-a.log"
        check "$fault: nothing of it is left in the store" sh -c "[ -z \"\$(ls '$TMPD/node-a/cache' | grep -v '^\\.lock$')\" ]" ;;
    esac
    sleep 1.2
    m=$(fw_sub "$MQTT_ROOT/node/node-a/metrics")
    check "$fault: the metrics count it (store_discarded_torn $(fw_json store_discarded_torn "$m"))" \
        [ "$(fw_json store_discarded_torn "$m")" -eq "$([ $fault = before-dirsync ] && echo 0 || echo 1)" ]
    fw_ask node-a --prompt "$P" -n 10 --temp 0 --json >"$TMPD/$fault.again.json"
    check "$fault: the node serves again and stores the context again" \
        sh -c "grep -q '\"done\":true' '$TMPD/$fault.again.json' && sleep 0.3 && ls '$TMPD/node-a/cache' | grep -q '\\.kv$'"
    check "$fault: and that entry verifies" all_verify "$TMPD/node-a/cache"
    fw_stop node-a
done

# A disk that returns a flipped byte: the entry is written "successfully" but damaged.
rm -rf "$TMPD/node-a/cache"
fw_start node-a KVMESH_STORE_FAULT=corrupt || fail "start with corrupt"
fw_ask node-a --prompt "$P" -n 10 --temp 0 --json >/dev/null
fw_wait_glob "$TMPD/node-a/cache/*.kv"
check "corrupt: the damaged entry does not verify" sh -c "! '$BIN/kvmesh-kv' verify -m '$IMG' '$TMPD'/node-a/cache/*.kv >/dev/null 2>&1"
fw_ask node-a --prompt "$P" -n 10 --temp 0 --json >"$TMPD/corrupt.json"
check "corrupt: it is never imported: the context is computed again" grep -q '"reused_tokens":0,"cache":"none"' "$TMPD/corrupt.json"
check "corrupt: and the entry is discarded" grep -q "did not import.*discarded" "$TMPD/node-a.log"
fw_stop node-a
: >"$TMPD/node-a.log"
fw_start node-a || fail "restart after corrupt"
# The context was stored again, through the same bad disk: that entry goes at load.
check "corrupt: after a restart, the damaged entry is discarded at load" \
    grep -q "0 entries verified.*1 torn" "$TMPD/node-a.log"
check "corrupt: every file verifies" all_verify "$TMPD/node-a/cache"
fw_stop node-a
fw_done
