#!/usr/bin/python3
"""Markdown tables from tools/collab/bench.sh results (JSON array on the file named).

  table.py RESULTS.json           every model, link and mode (docs/collab.md's table)
  table.py --wifi RESULTS.json    the README's Wi-Fi summary: device and peer only, the
                                  modes the issue's targets are about

tests/tools/collab-table.sh checks that the tables in README.md and docs/collab.md are
what this makes of docs/bench/collab.json, so a re-run cannot leave them stale."""
import json
import sys

NAMES = {"stories": "stories260K", "aidreams": "aidreams260K", "smollm2": "smollm2 shape"}


def km(x):
    """A row's split, "k,m"."""
    return "%d,%d" % (x["k"], x["m"])


def notes(x):
    n, m = [], x["mode"]
    if m.startswith("split"):
        if m != "split-whole":
            n.append("chunk %d" % x["chunk"])
        n.append("split " + km(x))
    if m == "split-int8":
        n.append("agreement %.3f" % x["agreement"])
    if "accepted" in x:
        n.append("accepted %d of %d" % (x["accepted"], x["drafted"]))
    if m == "exit":
        n.append("kept %.3f, agreement %.3f" % (x["kept_fraction"], x["agreement"]))
    return ", ".join(n)


def full(rows):
    print("| model | link | mode | TTFT ms | between tokens ms | link bytes/token | device share | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for x in rows:
        print("| %s | %s | %s | %.1f | %.2f | %.0f | %.2f | %s |" % (
            NAMES[x["model"]], x["link"], x["mode"], x["ttft_ms"], x["tbt_ms"], x["link_bytes_per_token"],
            x["device_share"], notes(x)))


def wifi(rows):
    g = {}   # model -> mode -> row, Wi-Fi only
    for x in rows:
        if x["link"] == "wifi":
            g.setdefault(x["model"], {})[x["mode"]] = x
    s, a, sm = g["stories"], g["aidreams"], g["smollm2"]
    # The exit thresholds are bench.sh's per-model settings (the JSON does not carry them).
    want = [("stories", "device", "device only"), ("stories", "peer", "peer only"),
            ("stories", "split", "split %s (exact)" % km(s["split"])),
            ("stories", "split-whole", "split %s, no chunks" % km(s["split-whole"])),
            ("stories", "split-int8", "split (int8, agreement %.3f)" % s["split-int8"]["agreement"]),
            ("stories", "spec", "speculative (layer %d)" % s["spec"]["k"]),
            ("stories", "split-spec", "**split-spec %s**" % km(s["split-spec"])),
            ("stories", "exit", "early exit (p >= 0.6: kept %.2f, agreement %.3f)" % (s["exit"]["kept_fraction"],
                                                                                      s["exit"]["agreement"])),
            ("aidreams", "peer", "peer only"),
            ("aidreams", "split-spec", "**split-spec %s**" % km(a["split-spec"])),
            ("aidreams", "exit", "**early exit** (p >= 0.45: **kept %.2f, agreement %.3f**)" % (
                a["exit"]["kept_fraction"], a["exit"]["agreement"])),
            ("smollm2", "peer", "peer only"),
            ("smollm2", "split", "split %s" % km(sm["split"])),
            ("smollm2", "split-whole", "split %s, no chunks" % km(sm["split-whole"]))]
    print("| model | mode | TTFT ms | between tokens ms | link bytes/token | device share |")
    print("|---|---|---|---|---|---|")
    for model, mode, label in want:
        x = g[model][mode]
        tbt = "%.2f" % x["tbt_ms"]
        if mode == "split-spec":
            tbt = "**%s**" % tbt
        print("| %s | %s | %.1f | %s | %.0f | %.2f |" % (NAMES[model], label, x["ttft_ms"], tbt,
                                                         x["link_bytes_per_token"], x["device_share"]))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0)
    if not args or len(args) > 2 or (len(args) == 2 and args[0] != "--wifi"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    try:
        data = json.load(open(args[-1]))
        (wifi if args[0] == "--wifi" else full)(data)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("table.py: %s: %s" % (args[-1], e), file=sys.stderr)
        sys.exit(1)
