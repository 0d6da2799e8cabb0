#!/bin/sh
# The collaboration benchmark's tables in README.md (Wi-Fi summary) and docs/collab.md
# (every model, link and mode) are what tools/collab/table.py makes of the checked-in
# docs/bench/collab.json: a re-run of tools/collab/bench.sh that updates the JSON but
# not the tables (or the other way round) fails here.
. "$(dirname "$0")/../lib/tap.sh"
T="$KVMESH_TOP/tools/collab/table.py"
J="$KVMESH_TOP/docs/bench/collab.json"
# table FILE HEADER: the markdown table that starts with the line HEADER in FILE.
table() { awk -v h="$2" '$0 == h { on = 1 } on && !/^\|/ { exit } on' "$1"; }
/usr/bin/python3 "$T" "$J" >"$TMPD/full.md"
check "table.py makes the full table" test -s "$TMPD/full.md"
table "$KVMESH_TOP/docs/collab.md" "$(head -1 "$TMPD/full.md")" >"$TMPD/doc.md"
check "docs/collab.md's table is docs/bench/collab.json's" cmp -s "$TMPD/full.md" "$TMPD/doc.md"
/usr/bin/python3 "$T" --wifi "$J" >"$TMPD/wifi.md"
table "$KVMESH_TOP/README.md" "$(head -1 "$TMPD/wifi.md")" >"$TMPD/readme.md"
check "README's Wi-Fi table is docs/bench/collab.json's" cmp -s "$TMPD/wifi.md" "$TMPD/readme.md"
expect_fail "table.py: a missing file" 1 "No such file" /usr/bin/python3 "$T" "$TMPD/none.json"
expect_fail "table.py: no arguments" 2 "Markdown tables" /usr/bin/python3 "$T"
done_testing
