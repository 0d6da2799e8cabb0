#!/usr/bin/python3
"""Plots tools/collab/bench.sh results: one row per model, one panel per measure
(TTFT, time between tokens, link bytes per token, device share of compute), bars
grouped by link profile, one bar per mode. Usage: plot.py RESULTS.json OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = json.load(open(sys.argv[1]))
models = list(dict.fromkeys(r["model"] for r in rows))
links = list(dict.fromkeys(r["link"] for r in rows))
modes = list(dict.fromkeys(r["mode"] for r in rows))
measures = [("ttft_ms", "time to first token (ms)", True), ("tbt_ms", "time between tokens (ms)", True),
            ("link_bytes_per_token", "link bytes per token", True), ("device_share", "device share of compute", False)]
fig, axes = plt.subplots(len(models), len(measures), figsize=(4.2 * len(measures), 3.4 * len(models)), squeeze=False)
w = 0.8 / max(1, len(modes))
for mi, model in enumerate(models):
    for ci, (key, title, logy) in enumerate(measures):
        ax = axes[mi][ci]
        for k, mode in enumerate(modes):
            xs, ys = [], []
            for li, link in enumerate(links):
                for r in rows:
                    if r["model"] == model and r["link"] == link and r["mode"] == mode:
                        if logy and r.get(key, 0) <= 0:
                            continue  # nothing on a log axis (device mode sends no bytes)
                        xs.append(li + (k - (len(modes) - 1) / 2) * w)
                        ys.append(r.get(key, 0))
            ax.bar(xs, ys, w, label=mode)
        ax.set_xticks(range(len(links)))
        ax.set_xticklabels(links)
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"{model}: {title}", fontsize=9)
        if mi == 0 and ci == 0:
            ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
