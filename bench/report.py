"""The benchmark's outputs: a JSON file, a latency plot and a table on the terminal."""

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# The p99 targets, drawn on the plots (S3's is relative: at most S1's).
TARGET_P99_MS = {"S1": 100, "S2": 150, "S7": 250, "S2-words": 150, "S8-en": 100, "S8-ko": 100}
CAPACITY_TARGET_MS = 250


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Everything but the raw latency samples, which the percentiles summarise."""
    runs = [{k: v for k, v in run.items() if k != "latencies"} for run in results["streams"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "streams": runs}, indent=1) + "\n")


def plot(path: Path, streams: list[dict[str, Any]]) -> None:
    """Latency CDFs, one panel per scenario, ours against naive, on a log time axis."""
    scenarios = sorted({run["scenario"] for run in streams})
    if not scenarios:
        return
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for run in (r for r in streams if r["scenario"] == scenario):
            samples = run["latencies"]
            if not samples:
                continue
            fraction = [(i + 1) / run["tokens_expected"] for i in range(len(samples))]
            ax.plot(samples, fraction, label=_legend(run), linewidth=1.6)
        if scenario in TARGET_P99_MS:
            target = TARGET_P99_MS[scenario]
            ax.axvline(
                target, color="grey", linestyle="--", linewidth=1, label=f"target p99 {target} ms"
            )
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_title(_title(streams, scenario))
        ax.set_xlabel("token sent by model → shown in a tab (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("fraction of (tab, token) pairs shown")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _legend(run: dict[str, Any]) -> str:
    label = f"{run['variant']}: p99 {run['latency_ms']['p99']:g} ms"
    lost = run["tokens_never_shown"]
    return f"{label}, {lost} never shown" if lost else label


def _title(streams: list[dict[str, Any]], scenario: str) -> str:
    load = next(r["load"] for r in streams if r["scenario"] == scenario)
    reply = f"{load['tokens']} tokens" if load["reply"] == "numbered" else f"{load['reply']} reply"
    return (
        f"{scenario}: {load['rooms']} room(s) x {load['tabs_per_room']} tabs, "
        f"{reply} at {load['rate']:g}/s, {load['servers']} daphne"
    )


def table(streams: list[dict[str, Any]]) -> str:
    head = (
        f"{'run':<58} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'lost':>6} {'dup':>4} "
        f"{'unshown':>8} {'bad':>4} {'frames/s':>9} {'daphne cpu%':>12} {'others%':>8} "
        f"{'KB/tab':>8} {'final KB':>8} {'cpu% 1st/last third':>20}"
    )
    lines = [head]
    for run in streams:
        latency = run["latency_ms"]
        cpu = "+".join(
            f"{p['cpu_percent']:g}" for n, p in run["processes"].items() if n.startswith("daphne")
        )
        ours = sum(p["cpu_percent"] for n, p in run["processes"].items() if n != "machine")
        others = run["processes"]["machine"]["cpu_percent"] - ours
        lines.append(
            f"{run['scenario'] + ' ' + run['variant']:<58} {latency['p50']!s:>7} "
            f"{latency['p95']!s:>7} {latency['p99']!s:>7} {latency['max']!s:>7} "
            f"{run['updates_lost']:>6} {run['updates_duplicated']:>4} "
            f"{run['tokens_never_shown']:>8} {run['tabs_wrong_text'] + run['tabs_unfinished']:>4} "
            f"{run['frames_per_second']:>9} {cpu:>12} {others:>8.0f} "
            f"{run['bytes_per_tab'] / 1024:>8.1f} {_kb(run['final_fragment_bytes']):>8} "
            f"{'/'.join(str(c) for c in run['daphne_cpu_thirds']):>20}"
        )
    return "\n".join(lines)


def _kb(size: int | None) -> str:
    return "-" if size is None else f"{size / 1024:.1f}"


def plot_capacity(path: Path, sweep: list[dict[str, Any]]) -> None:
    """S6: p99 against rooms streaming at once, one line per number of processes."""
    if not sweep:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for servers in sorted({run["load"]["servers"] for run in sweep}):
        runs = sorted(
            (r for r in sweep if r["load"]["servers"] == servers), key=lambda r: r["load"]["rooms"]
        )
        ax.plot(
            [r["load"]["rooms"] for r in runs],
            [r["latency_ms"]["p99"] for r in runs],
            marker="o",
            label=f"{servers} daphne process{'es' if servers > 1 else ''}",
        )
    ax.axhline(CAPACITY_TARGET_MS, color="grey", linestyle="--", linewidth=1, label="250 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rooms streaming at once (2 tabs each, 30 tokens/s)")
    ax.set_ylabel("p99 token latency (ms)")
    ax.set_title("S6: capacity on 2 cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
