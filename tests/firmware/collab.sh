#!/bin/sh
# kvmesh collab and kvmesh peer on a real mosquitto (TLS, passwords, ACLs): split and
# speculative (and the two combined) greedy output bit-identical to `kvmesh generate --temp 0` for stories260K
# and a random smollm2-135m-shape image; int8 hidden states measured against the full
# model; early exit with a trained head (tokens kept on the device, agreement); the
# device keeping no more requests in flight than the peer queues for it (a long prompt
# in 1-row messages); the peer killed with -9 mid-generation in split and speculative mode (the output still
# completes, and equals standalone); a peer that comes back serves a new session; one
# peer serving two devices at once, and replacing the idlest session when full.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/lib/fw.sh"
fw_setup

P="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
fw_conf node-a "[model]" "context = 512"
fw_conf node-b "[model]" "context = 512"

# peer_start NAME [ARGS]: kvmesh peer in the background until it says ready.
peer_start() {
    _pn=$1; shift
    _before=$(cat "$TMPD/$_pn.log" 2>/dev/null | grep -c 'kvmesh peer: ready')
    $RUN "$BIN/kvmesh" peer --config "$TMPD/$_pn.conf" "$@" >>"$TMPD/$_pn.out" 2>>"$TMPD/$_pn.log" &
    echo $! >"$TMPD/pids/$_pn"
    _i=0
    while [ $_i -lt 600 ]; do
        [ "$(cat "$TMPD/$_pn.log" 2>/dev/null | grep -c 'kvmesh peer: ready')" -gt "$_before" ] && return 0
        kill -0 "$(cat "$TMPD/pids/$_pn")" 2>/dev/null || return 1
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}
collab() { run "$BIN/kvmesh" collab --config "$TMPD/node-a.conf" --peer node-b "$@"; }
gen() { run "$BIN/kvmesh" generate --temp 0 --threads 1 "$@" 2>/dev/null; }
jget() { run "$JSONCHECK" --get "$1" <"$2"; }

check "kvmesh peer starts on stories260K" peer_start node-b

# Bad usage: a message and exit 2, nothing sent.
K="$BIN/kvmesh"
expect_fail "collab: no peer" 2 "one of .*peer NODE" run "$K" collab --config "$TMPD/node-a.conf" --mode split -p x
expect_fail "collab: unknown mode" 2 "mode is split, spec" run "$K" collab --config "$TMPD/node-a.conf" --peer node-b --mode u -p x
expect_fail "collab: a split that leaves the peer nothing" 2 "K \\+ M < 5" \
    run "$K" collab --config "$TMPD/node-a.conf" --peer node-b --mode split --split 3,2 -p x
expect_fail "collab: exit mode does not sample" 2 "greedily" \
    run "$K" collab --config "$TMPD/node-a.conf" --peer node-b --mode exit --temp 0.8 -p x
expect_fail "collab: a bad node id" 2 "node or group id" run "$K" collab --config "$TMPD/node-a.conf" --peer 'a/b' --mode split -p x
expect_fail "peer: no config" 2 "config FILE is required" run "$K" peer
check "collab --help exits 0" run "$K" collab --help >/dev/null

# ---- split -------------------------------------------------------------------------------
gen -m "$IMG" -p "$P" -n 80 >"$TMPD/ref.txt"
for spec in 1,1 2,2 1,3 0,1; do
    collab --mode split --split "$spec" -p "$P" -n 80 --json "$TMPD/s.json" >"$TMPD/split.txt" 2>>"$TMPD/split.err"
    check "split $spec (chunk $(jget chunk "$TMPD/s.json"), exact hidden states): bit-identical to generate" \
        cmp -s "$TMPD/ref.txt" "$TMPD/split.txt"
done
collab --mode split --chunk 5 -p "$P" -n 80 >"$TMPD/split.txt" 2>/dev/null
check "split with 5-row prompt chunks: bit-identical" cmp -s "$TMPD/ref.txt" "$TMPD/split.txt"
collab --mode split --chunk whole -p "$P" -n 80 >"$TMPD/split.txt" 2>/dev/null
check "split without pipelining (--chunk whole): bit-identical" cmp -s "$TMPD/ref.txt" "$TMPD/split.txt"
# A long prompt in 1-row messages: the device keeps no more in flight than the peer's
# share of its request queue (a peer that dropped requests made the device wait out
# its deadline and go on alone).
LP="$P $P $P $P $P $P $P $P $P $P $P $P"
gen -m "$IMG" -p "$LP" -n 16 >"$TMPD/lref.txt"
collab --mode split --chunk 1 -p "$LP" -n 16 --json "$TMPD/l.json" >"$TMPD/lsplit.txt" 2>/dev/null
check "split, $(jget prompt_tokens "$TMPD/l.json")-token prompt in 1-row messages: bit-identical, no fallback" \
    sh -c "cmp -s '$TMPD/lref.txt' '$TMPD/lsplit.txt' && grep -q '\"fallback\":false' '$TMPD/l.json'"
expect_fail "collab: split-spec with no front layer to draft from" 2 "K must be at least 1" \
    run "$K" collab --config "$TMPD/node-a.conf" --peer node-b --mode split-spec --split 0,2 -p x
expect_fail "collab: a bad --drafter" 2 "drafter is head or skip" \
    run "$K" collab --config "$TMPD/node-a.conf" --peer node-b --mode split-spec --drafter x -p x
check "split made no fallback (any split)" sh -c "! grep -q standalone '$TMPD/split.err'"
collab --mode split --hidden int8 --check -p "$P" -n 80 --json "$TMPD/i8.json" >"$TMPD/i8.txt" 2>"$TMPD/i8.err"
a=$(jget agreement "$TMPD/i8.json")
echo "# split with int8 hidden states: agreement with the full model $a, $(jget link_bytes_per_token "$TMPD/i8.json") link bytes per token"
check "split int8 completes with agreement >= 0.9 ($a)" awk -v a="$a" 'BEGIN { exit !(a >= 0.9) }'
# Sampling: the device samples from the same logits with the same seed.
gen -m "$IMG" -p "$P" -n 60 --temp 0.8 --seed 7 >"$TMPD/ref-t.txt"
collab --mode split --temp 0.8 --seed 7 -p "$P" -n 60 >"$TMPD/split-t.txt" 2>/dev/null
check "split with --temp 0.8 --seed 7: identical to generate with the same seed" cmp -s "$TMPD/ref-t.txt" "$TMPD/split-t.txt"

# ---- speculative ---------------------------------------------------------------------------
for k in 2 4; do
    collab --mode spec --layer "$k" -p "$P" -n 80 --json "$TMPD/sp.json" >"$TMPD/spec.txt" 2>"$TMPD/spec.err"
    check "spec, drafting with layers [0,$k) (accepted $(jget accepted "$TMPD/sp.json") of $(jget drafted "$TMPD/sp.json")): bit-identical" \
        cmp -s "$TMPD/ref.txt" "$TMPD/spec.txt"
done
collab --mode peer -p "$P" -n 80 >"$TMPD/peer.txt" 2>/dev/null
check "peer-only baseline: bit-identical" cmp -s "$TMPD/ref.txt" "$TMPD/peer.txt"
# Sampling: drafts drawn from the head, accepted by the speculative rule on the peer.
# At temperature 0.001 both distributions are all but one-hot (at 0.01 stories260K has
# near-ties that sampling rightly resolves either way), so every step of that
# path (draws, acceptances, residual draws) must land on the greedy text.
collab --mode spec --layer 4 --temp 0.001 --seed 5 -p "$P" -n 80 --json "$TMPD/ss.json" >"$TMPD/spec-t.txt" 2>/dev/null
check "spec sampling at temperature 0.001 (accepted $(jget accepted "$TMPD/ss.json") of $(jget drafted "$TMPD/ss.json")): the greedy text" \
    cmp -s "$TMPD/ref.txt" "$TMPD/spec-t.txt"
collab --mode spec --layer 4 --temp 0.8 --seed 5 -p "$P" -n 80 --json "$TMPD/ss.json" >"$TMPD/spec-t.txt" 2>/dev/null
check_all "spec sampling at temperature 0.8 completes, drafts accepted ($(jget accepted "$TMPD/ss.json") of $(jget drafted "$TMPD/ss.json"))" \
    '[ "$(jget new_tokens "$TMPD/ss.json")" -gt 0 ] && [ "$(jget accepted "$TMPD/ss.json")" -gt 0 ]'

# ---- fallback: the peer killed with -9 mid-generation ------------------------------------
# collab_bg MODE ARGS: a long generation in the background; kill_when_started waits
# until it has printed 20 tokens' worth of text, then kills the peer.
gen -m "$IMG" -p "$P" -n 150 >"$TMPD/ref150.txt"
plen=$(printf '%s' "$P" | wc -c)
kill_when_started() {
    _i=0
    while [ $_i -lt 600 ]; do
        [ "$(cat "$TMPD/fb.txt" 2>/dev/null | wc -c)" -gt $((plen + 60)) ] && break
        sleep 0.05
        _i=$((_i + 1))
    done
    kill -9 "$(cat "$TMPD/pids/node-b")"
    wait "$(cat "$TMPD/pids/node-b")" 2>/dev/null
}
for mode in split spec split-spec; do
    # Fresh files: a background job truncates its redirections only once it runs, and a
    # stale fb.txt would make kill_when_started kill the peer before the device starts.
    rm -f "$TMPD/fb.txt" "$TMPD/fb.err" "$TMPD/fb.json"
    # --slowdown 20: the device's compute (not the output) made slower, so that the 130
    # tokens after the trigger outlast the kill on a loaded machine (without it a split
    # run could finish first when tests run side by side).
    collab --mode "$mode" -p "$P" -n 150 --deadline-ms 1500 --slowdown 20 --json "$TMPD/fb.json" \
        >"$TMPD/fb.txt" 2>"$TMPD/fb.err" &
    cpid=$!
    kill_when_started
    wait $cpid
    crc=$?
    at=$(sed -n 's/.*continuing standalone after \([0-9]*\) tokens.*/\1/p' "$TMPD/fb.err")
    echo "# $mode: $(grep 'continuing standalone' "$TMPD/fb.err")"
    check_all "$mode: the peer killed after ${at:-?} tokens, the device completes (exit $crc)" \
        '[ "$crc" = 0 ] && [ "${at:-0}" -gt 0 ] && [ "${at:-0}" -lt 150 ]'
    check "$mode with the fallback: output bit-identical to standalone" cmp -s "$TMPD/ref150.txt" "$TMPD/fb.txt"
    [ "$crc" = 0 ] || sed 's/^/#   /' "$TMPD/fb.err"
    check "$mode: the JSON says it fell back" [ "$(jget fallback "$TMPD/fb.json")" = true ]
    check "the peer comes back" peer_start node-b
done
# ---- split plus speculative (HAT) ---------------------------------------------------------
# The device drafts with its front layers and head; the peer runs the middle over d+1
# rows; the device's back layers and head accept. Greedy: the generate text, and every
# committed token's logits row equal to standalone's (the digest).
collab --mode device -p "$P" -n 80 --json "$TMPD/dv.json" >/dev/null 2>&1
for spec in 2,1 3,1 1,2 "2,2 --drafter skip"; do
    # shellcheck disable=SC2086
    collab --mode split-spec --split $spec -p "$P" -n 80 --json "$TMPD/hs.json" >"$TMPD/hs.txt" 2>>"$TMPD/hs.err"
    check "split-spec $spec (accepted $(jget accepted "$TMPD/hs.json") of $(jget drafted "$TMPD/hs.json")): bit-identical, logits digest equal to standalone" \
        sh -c "cmp -s '$TMPD/ref.txt' '$TMPD/hs.txt' && [ '$(jget logits_digest "$TMPD/hs.json")' = '$(jget logits_digest "$TMPD/dv.json")' ]"
done
check "split-spec made no fallback (any split)" sh -c "! grep -q standalone '$TMPD/hs.err'"
collab --mode split-spec --split 3,1 --temp 0.001 --seed 5 -p "$P" -n 80 >"$TMPD/hs.txt" 2>/dev/null
check "split-spec sampling at temperature 0.001: the greedy text" cmp -s "$TMPD/ref.txt" "$TMPD/hs.txt"
collab --mode split-spec --split 3,1 --temp 0.8 --seed 5 -p "$P" -n 80 --json "$TMPD/hs.json" >/dev/null 2>&1
check_all "split-spec sampling at temperature 0.8 completes, drafts accepted ($(jget accepted "$TMPD/hs.json") of $(jget drafted "$TMPD/hs.json"))" \
    '[ "$(jget new_tokens "$TMPD/hs.json")" -gt 0 ] && [ "$(jget accepted "$TMPD/hs.json")" -gt 0 ]'

# Resume: the peer killed, then started again while the device goes on alone (slowed
# down so that it is still generating): it collaborates again, the text unchanged.
# Under qemu each of these runs takes 20-30 s (60x on top of the emulation): the cross
# suites resume split only (split-spec shares its recovery, resending the recorded
# hidden states); the host suites run all three, spec's own branch included.
gen -m "$IMG" -p "$P" -n 400 >"$TMPD/ref400.txt"
resume_modes="split spec split-spec"
[ -n "$RUN" ] && resume_modes=split
for mode in $resume_modes; do
    rm -f "$TMPD/fb.txt" "$TMPD/rs.err" "$TMPD/rs.json"
    collab --mode "$mode" -p "$P" -n 400 --slowdown 60 --deadline-ms 1000 --resume-every 8 --json "$TMPD/rs.json" \
        >"$TMPD/fb.txt" 2>"$TMPD/rs.err" &
    cpid=$!
    kill_when_started
    peer_start node-b
    wait $cpid
    crc=$?
    echo "# $mode: $(grep -E 'standalone|again' "$TMPD/rs.err" | tr '\n' ' ')"
    check_all "$mode: the peer back during the generation: collaborating again (resumes $(jget resumes "$TMPD/rs.json"), exit $crc)" \
        '[ "$crc" = 0 ] && [ "$(jget resumes "$TMPD/rs.json")" -ge 1 ] && grep -q "answers again" "$TMPD/rs.err"'
    check "$mode after the fallback and the resume: output bit-identical to standalone" \
        cmp -s "$TMPD/ref400.txt" "$TMPD/fb.txt"
done
collab --mode split -p "$P" -n 80 >"$TMPD/split.txt" 2>"$TMPD/split.err"
check "a new session on the restarted peer: bit-identical, no fallback" \
    sh -c "cmp -s '$TMPD/ref.txt' '$TMPD/split.txt' && ! grep -q standalone '$TMPD/split.err'"
expect_fail "no peer at all: a clear error" 1 "did not answer a probe" \
    run "$BIN/kvmesh" collab --config "$TMPD/node-a.conf" --peer node-c --mode split -p "$P" -n 5 --deadline-ms 500

# A peer that holds fewer positions than the text needs ([model] context 64; its PING
# reply says so): a prompt that fits collaborates until the peer is full, then goes on
# alone; a longer prompt is generated standalone from the start. The text equals
# standalone either way. Started again with room while the device is alone, the peer
# is sent the hidden states the device recorded meanwhile, the prompt's included, and
# the two collaborate again (host only: a slowed run takes minutes under qemu).
fw_stop node-b 2>/dev/null
fw_conf node-b "[model]" "context = 64"
check "the peer restarts holding 64 positions" peer_start node-b
collab --mode split -p "$P" -n 80 --json "$TMPD/c1.json" >"$TMPD/c1.txt" 2>"$TMPD/c1.err"
check_all "split past the peer's 64 positions: goes on alone at position 64, bit-identical" \
    'cmp -s "$TMPD/ref.txt" "$TMPD/c1.txt" && grep -q "this request reaches position 64" "$TMPD/c1.err" &&
     [ "$(jget fallback "$TMPD/c1.json")" = true ]'
P3="$P $P $P"
gen -m "$IMG" -p "$P3" -n 300 >"$TMPD/ref3.txt"
if [ -n "$RUN" ]; then
    collab --mode split -p "$P3" -n 300 >"$TMPD/c2.txt" 2>"$TMPD/c2.err"
    check_all "a prompt longer than the peer holds: standalone from the start, bit-identical" \
        'cmp -s "$TMPD/ref3.txt" "$TMPD/c2.txt" && grep -q "more than the peer holds" "$TMPD/c2.err"'
else
    rm -f "$TMPD/c2.txt" "$TMPD/c2.err" "$TMPD/c2.json"
    collab --mode split -p "$P3" -n 300 --slowdown 60 --deadline-ms 1000 --resume-every 8 --json "$TMPD/c2.json" \
        >"$TMPD/c2.txt" 2>"$TMPD/c2.err" &
    cpid=$!
    _i=0
    while [ $_i -lt 600 ] && ! grep -q "more than the peer holds" "$TMPD/c2.err" 2>/dev/null; do
        sleep 0.05
        _i=$((_i + 1))
    done
    fw_stop node-b 2>/dev/null
    fw_conf node-b "[model]" "context = 512"
    peer_start node-b
    wait $cpid
    crc=$?
    check_all "a prompt longer than the peer holds: standalone from the start; the peer back with room: collaborating again (resumes $(jget resumes "$TMPD/c2.json"), exit $crc), bit-identical" \
        '[ "$crc" = 0 ] && grep -q "more than the peer holds" "$TMPD/c2.err" && grep -q "answers again" "$TMPD/c2.err" &&
         cmp -s "$TMPD/ref3.txt" "$TMPD/c2.txt"'
fi
fw_stop node-b 2>/dev/null
fw_conf node-b "[model]" "context = 512"
check "the peer restarts holding 512 positions" peer_start node-b

# ---- one peer, several devices ------------------------------------------------------------
# The peer holds [collab] peer_sessions (4) device sessions, each with its own KV cache:
# node-a (split) and node-c (spec) at the same time are both bit-identical and neither
# falls back. Held to one session, a second device's session replaces the first's,
# which goes on alone (and resumes later), its text unchanged.
fw_conf node-c "[model]" "context = 512"
ccollab() { run "$BIN/kvmesh" collab --config "$TMPD/node-c.conf" --peer node-b "$@"; }
rm -f "$TMPD/m1.txt" "$TMPD/m2.txt" "$TMPD/m1.err" "$TMPD/m2.err"
mark=$(wc -l <"$TMPD/node-b.log")
collab --mode split -p "$P" -n 150 --slowdown 4 >"$TMPD/m1.txt" 2>"$TMPD/m1.err" &
p1=$!
ccollab --mode spec --layer 2 -p "$P" -n 150 --slowdown 4 >"$TMPD/m2.txt" 2>"$TMPD/m2.err" &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
check_all "two devices on one peer at once (split, spec): both bit-identical, neither fell back (exit $r1, $r2)" \
    '[ $r1 = 0 ] && [ $r2 = 0 ] && cmp -s "$TMPD/ref150.txt" "$TMPD/m1.txt" && cmp -s "$TMPD/ref150.txt" "$TMPD/m2.txt" &&
     ! grep -q standalone "$TMPD/m1.err" "$TMPD/m2.err"'
tail -n +$((mark + 1)) "$TMPD/node-b.log" >"$TMPD/m.log"
check_all "the peer served both sessions in their own slots, replacing none" \
    'grep -q "of node-a (slot" "$TMPD/m.log" && grep -q "of node-c (slot" "$TMPD/m.log" && ! grep -q replaces "$TMPD/m.log"'
expect_fail "peer: --sessions out of range" 2 "sessions" run "$BIN/kvmesh" peer --config "$TMPD/node-b.conf" --sessions 0
fw_stop node-b 2>/dev/null
check "the peer restarts holding one session (--sessions 1)" peer_start node-b --sessions 1
rm -f "$TMPD/fb.txt" "$TMPD/m1.err" "$TMPD/m2.txt"
mark=$(wc -l <"$TMPD/node-b.log")
collab --mode split -p "$P" -n 400 --slowdown 60 --deadline-ms 1000 --resume-every 8 --json "$TMPD/m1.json" \
    >"$TMPD/fb.txt" 2>"$TMPD/m1.err" &
p1=$!
_i=0
while [ $_i -lt 600 ] && [ "$(cat "$TMPD/fb.txt" 2>/dev/null | wc -c)" -le $((plen + 60)) ]; do sleep 0.05; _i=$((_i + 1)); done
ccollab --mode split -p "$P" -n 80 >"$TMPD/m2.txt" 2>"$TMPD/m2.err"
r2=$?
wait $p1
r1=$?
tail -n +$((mark + 1)) "$TMPD/node-b.log" >"$TMPD/m.log"
echo "# one session: $(grep -h -E 'replaces|standalone|again' "$TMPD/m.log" "$TMPD/m1.err" "$TMPD/m2.err" | tr '\n' ' ')"
check_all "one session: node-c's replaces node-a's, node-a goes on alone; both bit-identical (exit $r1, $r2)" \
    '[ $r1 = 0 ] && [ $r2 = 0 ] && grep -q "of node-c replaces session .* of node-a" "$TMPD/m.log" &&
     grep -q "continuing standalone" "$TMPD/m1.err" && cmp -s "$TMPD/ref400.txt" "$TMPD/fb.txt" &&
     cmp -s "$TMPD/ref.txt" "$TMPD/m2.txt"'

# ---- a group of peers behind a shared subscription -----------------------------------------
# node-b and node-c both serve the group "cloud"; the member that answers the device's
# first probe serves the session; killed, the device goes on alone, and its next probe
# to the group finds the other member, which rebuilds the session.
{
    printf 'pattern read %s/req/cloud\n' "$MQTT_ROOT"
    printf 'pattern read $share/cloud/%s/req/cloud\n' "$MQTT_ROOT"
} >>"$TMPD/brokers/fw/acl"
kill -HUP "$(cat "$TMPD/brokers/fw/pid")"
sleep 0.3
fw_stop node-b 2>/dev/null
fw_conf node-b "[model]" "context = 512" "[broker]" "share_group = cloud"
fw_conf node-c "[model]" "context = 512" "[broker]" "share_group = cloud"
if peer_start node-b && peer_start node-c; then ok "two peers in the group 'cloud' start"; else fail "two peers in the group 'cloud' start"; fi
gcollab() { run "$BIN/kvmesh" collab --config "$TMPD/node-a.conf" --peer-group cloud "$@"; }
gcollab --mode split -p "$P" -n 80 >"$TMPD/g.txt" 2>"$TMPD/g.err"
first=$(sed -n 's/.*collab: \(node-[bc]\) of group cloud answers.*/\1/p' "$TMPD/g.err" | head -1)
check "split through the group (served by ${first:-nobody}): bit-identical" \
    sh -c "[ -n '$first' ] && cmp -s '$TMPD/ref.txt' '$TMPD/g.txt'"
# A new file: a background job truncates its redirections only once it runs.
rm -f "$TMPD/g2.err" "$TMPD/fb.txt"
gcollab --mode split -p "$P" -n 400 --slowdown 60 --deadline-ms 1000 --resume-every 8 --json "$TMPD/g.json" \
    >"$TMPD/fb.txt" 2>"$TMPD/g2.err" &
cpid=$!
served=""
_i=0
while [ $_i -lt 1200 ] && [ -z "$served" ]; do
    served=$(sed -n 's/.*collab: \(node-[bc]\) of group cloud answers.*/\1/p' "$TMPD/g2.err" 2>/dev/null | head -1)
    [ -n "$served" ] || sleep 0.05
    _i=$((_i + 1))
done
other=node-b; [ "$served" = node-b ] && other=node-c
_i=0
while [ $_i -lt 1200 ] && [ "$(cat "$TMPD/fb.txt" 2>/dev/null | wc -c)" -le $((plen + 60)) ]; do sleep 0.05; _i=$((_i + 1)); done
[ -n "$served" ] && kill -9 "$(cat "$TMPD/pids/$served")" 2>/dev/null
wait $cpid
crc=$?
echo "# group: served by '${served}' (found after $_i polls): $(grep -E 'answers|standalone' "$TMPD/g2.err" | tr '\n' ' ')"
[ -n "$served" ] || sed 's/^/#   /' "$TMPD/g2.err"
check "group: $served killed, $other takes the session over (exit $crc)" \
    sh -c "[ $crc = 0 ] && grep -q 'continuing standalone' '$TMPD/g2.err' && grep -q '$other of group cloud answers' '$TMPD/g2.err'"
check "group: the output after the switch is bit-identical to standalone" cmp -s "$TMPD/ref400.txt" "$TMPD/fb.txt"
# Both members go: the next sections start their own node-b and node-c (one client id
# must never run twice: the broker would keep disconnecting one of them).
for _m in node-b node-c; do
    [ -f "$TMPD/pids/$_m" ] && { kill -9 "$(cat "$TMPD/pids/$_m")" 2>/dev/null; wait "$(cat "$TMPD/pids/$_m")" 2>/dev/null; rm -f "$TMPD/pids/$_m"; }
done
fw_conf node-b "[model]" "context = 512"
fw_conf node-c "[model]" "context = 512"

# ---- early exit ----------------------------------------------------------------------------
run "$BIN/kvmesh-exit-train" -q -m "$IMG" --layers 3 --tokens 4000 --epochs 3 -o "$TMPD/x.kvm"
fw_conf node-c "[model]" "context = 512" "image = $TMPD/x.kvm"
check "a peer with the exit-head image starts" peer_start node-c
xcollab() { run "$BIN/kvmesh" collab --config "$TMPD/node-a.conf" -m "$TMPD/x.kvm" --peer node-c "$@"; }
gen -m "$TMPD/x.kvm" -p "$P" -n 80 >"$TMPD/refx.txt"
xcollab --mode exit --layer 3 --exit-threshold 1 -p "$P" -n 80 >"$TMPD/x1.txt" 2>/dev/null
check "exit with threshold 1 (every token offloaded): bit-identical to the full model" \
    cmp -s "$TMPD/refx.txt" "$TMPD/x1.txt"
xcollab --mode exit --layer 3 --exit-threshold 0.5 --check -p "$P" -n 120 --json "$TMPD/x.json" >/dev/null 2>"$TMPD/x.err"
kf=$(jget kept_fraction "$TMPD/x.json"); ag=$(jget agreement "$TMPD/x.json")
echo "# exit at layer 3 of 5, threshold 0.5: kept on device $kf, agreement with the full model $ag, $(jget link_bytes_per_token "$TMPD/x.json") link bytes per token"
check_all "exit: both paths taken (kept $(jget kept "$TMPD/x.json"), offloaded $(jget offloaded "$TMPD/x.json"))" \
    '[ "$(jget kept "$TMPD/x.json")" -gt 0 ] && [ "$(jget offloaded "$TMPD/x.json")" -gt 0 ]'
# A head trained on 4000 tokens (the docs' numbers use 20000): a loose bound.
check "exit: agreement with the full model >= 0.85 ($ag)" awk -v a="$ag" 'BEGIN { exit !(a >= 0.85) }'
fw_stop node-c KILL 2>/dev/null

# ---- a random smollm2-135m-shape image ------------------------------------------------------
if [ -n "$RUN" ]; then
    # 30 layers of dim 576 under qemu take minutes per run: the x86-64 suite covers it.
    echo "# smollm2-135m-shape cases: host build only (too slow under qemu); not run here"
else
    run "$BIN/kvmesh-convert" -q --random smollm2-135m --seed 1 -o "$TMPD/sm.kvm"
    fw_conf node-c "[model]" "context = 256" "image = $TMPD/sm.kvm"
    fw_conf node-a "[model]" "context = 256"
    check "a peer with the smollm2-shape image starts" peer_start node-c
    Q="Once upon a time, there was a little girl named Lily."
    gen -m "$TMPD/sm.kvm" --ctx 256 -p "$Q" -n 16 >"$TMPD/refs.txt"
    scollab() { run "$BIN/kvmesh" collab --config "$TMPD/node-a.conf" -m "$TMPD/sm.kvm" --peer node-c "$@"; }
    scollab --mode device -p "$Q" -n 16 --json "$TMPD/sd.json" >"$TMPD/sd.txt" 2>/dev/null
    scollab --mode split --split 2,2 --chunk 4 -p "$Q" -n 16 --json "$TMPD/ss.json" >"$TMPD/ss.txt" 2>/dev/null
    check "smollm2 shape: split text bit-identical to generate" cmp -s "$TMPD/refs.txt" "$TMPD/ss.txt"
    check "smollm2 shape: split logits digest equals standalone ($(jget logits_rows "$TMPD/ss.json") rows)" \
        [ "$(jget logits_digest "$TMPD/ss.json")" = "$(jget logits_digest "$TMPD/sd.json")" ]
    scollab --mode split --split 2,2 --hidden int8 -p "$Q" -n 16 --json "$TMPD/s8.json" >/dev/null 2>&1
    check "smollm2 shape: int8 hidden states change the logits (the digest check can fail)" \
        [ "$(jget logits_digest "$TMPD/s8.json")" != "$(jget logits_digest "$TMPD/sd.json")" ]
    scollab --mode spec --layer 8 -p "$Q" -n 16 >"$TMPD/sp2.txt" 2>/dev/null
    check "smollm2 shape: spec bit-identical to generate" cmp -s "$TMPD/refs.txt" "$TMPD/sp2.txt"
    # A long prompt in one VERIFY takes the peer longer than the deadline, which is for
    # the link: the wait adds twice what the peer's measured speed says it costs.
    QL="$Q $Q $Q $Q"
    gen -m "$TMPD/sm.kvm" --ctx 256 -p "$QL" -n 8 >"$TMPD/refl.txt"
    scollab --mode spec --layer 2 --deadline-ms 700 -p "$QL" -n 8 --json "$TMPD/spl.json" >"$TMPD/spl.txt" 2>/dev/null
    check "smollm2 shape: a $(jget prompt_tokens "$TMPD/spl.json")-token prompt verified in one message past a 700 ms deadline: no fallback, bit-identical" \
        sh -c "cmp -s '$TMPD/refl.txt' '$TMPD/spl.txt' && [ '$(jget fallback "$TMPD/spl.json")' = false ]"
    scollab --mode split-spec --split 2,2 -p "$Q" -n 16 --json "$TMPD/hs2.json" >"$TMPD/hs2.txt" 2>/dev/null
    check "smollm2 shape: split-spec text bit-identical, logits digest equal to standalone" \
        sh -c "cmp -s '$TMPD/refs.txt' '$TMPD/hs2.txt' && [ '$(jget logits_digest "$TMPD/hs2.json")' = '$(jget logits_digest "$TMPD/sd.json")' ]"
    # Device sessions at a 2048-token context: 47.5 MB of KV cache each. 64 of them do not
    # fit the host's 1 GiB arena (a clear error, before connecting); by default the peer
    # holds as many as fit, up to 4.
    fw_conf node-d "[model]" "context = 2048" "image = $TMPD/sm.kvm"
    printf 'node-d-pw\n' >"$TMPD/node-d.pw"
    expect_fail "peer: more device sessions than the arena holds" 1 "64 device sessions do not fit.*room for" \
        run "$BIN/kvmesh" peer --config "$TMPD/node-d.conf" --sessions 64
fi

fw_done
