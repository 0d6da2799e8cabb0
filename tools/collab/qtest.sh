set -u
PROG=qtest.sh
. "$(dirname "$0")/lib.sh"
IMG=$(model_image smollm2 "$T") || exit 1
start_broker || exit 1
start_peer "$IMG" ${PCTX:-1024} "$T/peer.log" || exit 1
conf dev "$BP" "$IMG" ${CTX:-1024}
STORY="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. "
text=""; while [ ${#text} -lt ${LEN:-600} ]; do text="$text$STORY"; done
"$BIN/kvmesh" collab --config "$T/dev.conf" --peer peer --mode ${MODE:-split} --split 1,1 --chunk ${CH:-4} -p "$text" -n ${NEW:-4} --json "$T/a.json" >/dev/null 2>"$T/err.txt"
echo "rc=$?"; tail -4 "$T/err.txt"; cat "$T/a.json"; echo; kill $PPID_; sleep 1; tail -3 "$T/peer.log"
