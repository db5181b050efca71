"""`uv run python -m bench`: start the stack on loopback, run the scenarios, write the results.

uv run python -m bench                  # every scenario: ours, and naive on S1 and S2
uv run python -m bench --only S1,S4     # some scenarios (S6 is the whole sweep, S8 both languages)
uv run python -m bench --profile S2     # also py-spy the first daphne in these scenarios
uv run python -m bench --docs           # write docs/benchmark-results.json and -latency.png
"""

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.scenarios import Load, Variant, run_idle, run_render, run_stream
from bench.stack import Database
from tests.servers import ROOT

STREAMS = {
    "S1": Load("S1", rooms=1, tabs_per_room=200, tokens=400, rate=50),
    "S2": Load("S2", rooms=50, tabs_per_room=4, tokens=200, rate=30),
    "S3": Load("S3", rooms=1, tabs_per_room=200, tokens=400, rate=50, servers=2),
    # S1 with one more socket into the room that never reads.
    "stalled": Load("stalled", rooms=1, tabs_per_room=200, tokens=400, rate=50, stalled=1),
    "S7": Load("S7", rooms=1, tabs_per_room=1000, tokens=400, rate=50, servers=2),
    # S2 with replies of ordinary words (about 1.6 KB each) instead of "w12" tokens.
    "S2-words": Load("S2-words", rooms=50, tabs_per_room=4, tokens=0, rate=30, reply="ordinary"),
    # Long Markdown answers with code (about 12 KB), English and Korean.
    "S8-en": Load("S8-en", rooms=1, tabs_per_room=50, tokens=0, rate=65, reply="markdown-en"),
    "S8-ko": Load("S8-ko", rooms=1, tabs_per_room=50, tokens=0, rate=65, reply="markdown-ko"),
}
# Capacity: many rooms streaming at once, two tabs each, on one and on two processes.
SWEEP_ROOMS = (10, 25, 50, 100, 200)
for _servers in (1, 2):
    for _rooms in SWEEP_ROOMS:
        _name = f"S6-{_rooms}x{_servers}"
        STREAMS[_name] = Load(_name, _rooms, tabs_per_room=2, tokens=150, rate=30, servers=_servers)
OURS = Variant()
NAIVE = Variant("naive", layer="default")
COMPARED = {name: (OURS, NAIVE) for name in ("S1", "S2", "S2-words", "S8-en", "S8-ko")}
IDLE_CONNECTIONS, RENDER_SIZES = 2000, (100, 1000, 10_000)
# One per tab in S1 and S2; S4 gives each of them 10 connections, S7 five.
USERS = 200


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="S1,S2,S2-words,S3,stalled,S8,S6,S7,S4,S5",
        help="comma-separated scenarios",
    )
    parser.add_argument(
        "--profile", default="", help="comma-separated scenarios to py-spy the first daphne in"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--ours-only", action="store_true", help="skip the naive design's runs")
    parser.add_argument("--docs", action="store_true", help="write docs/benchmark-*")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    for group in ("S6", "S8"):
        if group in wanted:
            wanted += [name for name in STREAMS if name.startswith(f"{group}-")]
    # SIGTERM unwinds like Ctrl-C, so the servers and clients started so far are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # Every tab is a file descriptor in a client and in daphne; both inherit this limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_before": os.getloadavg(),
        "streams": [],
    }
    runs = [
        (name, variant)
        for name in STREAMS
        if name in wanted
        for variant in COMPARED.get(name, (OURS,))
        if variant is OURS or not args.ours_only
    ]
    stamp = results["started"].replace(":", "")
    out = ROOT / ("docs/benchmark-results.json" if args.docs else f"bench/results/{stamp}.json")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        database = Database(
            workdir, rooms=max(load.rooms for load in STREAMS.values()), users=USERS
        )
        for name, variant in runs:
            profile = None
            if name in args.profile.split(","):
                # Raw samples stay out of the repository; the run's JSON keeps the summary.
                profile = ROOT / f"bench/results/{stamp}-{name}-{variant.design}.pyspy"
                profile.parent.mkdir(parents=True, exist_ok=True)
            run = run_stream(
                database,
                STREAMS[name],
                variant,
                client_procs=args.clients,
                workdir=workdir,
                profile=profile,
            )
            results["streams"].append(run)
            print(report.table([run]).splitlines()[1], flush=True)
        if "S4" in wanted:
            results["idle"] = [
                run_idle(
                    database, connections=IDLE_CONNECTIONS, rooms=20, layer=layer, workdir=workdir
                )
                for layer in ("app", "pubsub")
            ]
            print(results["idle"], flush=True)
        if "S5" in wanted:
            results["render"] = run_render(database, RENDER_SIZES)
            print(results["render"], flush=True)

    report.write_json(out, results)
    if results["streams"]:
        print(report.table(results["streams"]))
        latency_png = ROOT / "docs/benchmark-latency.png" if args.docs else out.with_suffix(".png")
        report.plot(
            latency_png, [r for r in results["streams"] if not r["scenario"].startswith("S6")]
        )
        report.plot_capacity(
            latency_png.with_name(latency_png.name.replace("latency", "capacity")),
            [r for r in results["streams"] if r["scenario"].startswith("S6")],
        )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
