"""What one streaming run's tabs saw, and what it cost: latency, loss, bytes, CPU."""

from statistics import median
from typing import Any

from bench.stack import Sampler, Stack


def measure(
    st: Stack,
    outputs: list[dict[str, Any]],
    usage: dict[str, dict[str, float]],
    sampler: Sampler,
    *,
    markers: list[int],
) -> dict[str, Any]:
    """Latency over every (tab, marker chunk) pair: a tab shows chunk i at the
    first frame holding its marker or a later one."""
    tabs = [tab for output in outputs for tab in output["tabs"]]
    latencies: list[float] = []
    # Where in the reply the slow ones are: by fifth of the markers (start, ..., end).
    by_fifth: list[list[float]] = [[] for _ in range(5)]
    first_sent, last_shown = float("inf"), 0.0
    for tab in tabs:
        sent = st.model.sent.get(f"room {tab['room']}", [])
        first_sent = min([first_sent, *sent[:1]])
        for position, index in enumerate(markers):
            shown_at = tab["shown"][index]
            if shown_at is not None and index < len(sent):
                latencies.append((shown_at - sent[index]) * 1000)
                by_fifth[position * 5 // len(markers)].append(latencies[-1])
                last_shown = max(last_shown, shown_at)
    frames = sum(tab["frames"] for tab in tabs)
    window = max(last_shown - first_sent, 1e-9)
    latencies.sort()
    finals = [tab["final_bytes"] for tab in tabs if tab["final_bytes"]]
    return {
        "tabs": len(tabs),
        "latency_ms": summary(latencies),
        "p99_ms_by_fifth": [summary(sorted(fifth))["p99"] for fifth in by_fifth],
        "tokens_expected": len(tabs) * len(markers),
        "tokens_never_shown": len(tabs) * len(markers) - len(latencies),
        "updates_lost": sum(tab["lost"] for tab in tabs),
        "updates_duplicated": sum(tab["duplicated"] for tab in tabs),
        "deltas_unapplied": sum(tab["unapplied"] for tab in tabs),
        "syncs_asked": sum(tab["syncs"] for tab in tabs),
        "tabs_unfinished": sum(not tab["finished"] for tab in tabs),
        "tabs_wrong_text": sum(tab["finished"] and not tab["final_ok"] for tab in tabs),
        "frames_delivered": frames,
        "frames_per_second": round(frames / window),
        "stream_seconds": round(window, 2),
        "bytes_per_tab": round(median(tab["received_bytes"] for tab in tabs)) if tabs else 0,
        # The final state's frame, as a page load would show the message (ours only).
        "final_fragment_bytes": round(median(finals)) if finals else None,
        # CPU of the first daphne in the first and the last third of the stream.
        "daphne_cpu_thirds": [
            sampler.cpu_percent(
                "daphne-0", first_sent + window * k / 3, first_sent + window * (k + 1) / 3
            )
            for k in (0, 2)
        ],
        "processes": usage,
        "latencies": latencies,  # dropped from the JSON file; the plot uses it
    }


def summary(sorted_ms: list[float]) -> dict[str, Any]:
    def pick(q: float) -> float | None:
        if not sorted_ms:
            return None
        return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 1)

    return {
        "samples": len(sorted_ms),
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(sorted_ms[-1], 1) if sorted_ms else None,
        "percentiles": [pick(i / 100) for i in range(101)],
    }
