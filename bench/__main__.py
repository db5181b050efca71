"""`uv run python -m bench`: start the stack on loopback, run the scenarios, write the results.

uv run python -m bench                  # S1-S5: ours as shipped, ours as proposed, naive
uv run python -m bench --only S1,S4     # some scenarios
uv run python -m bench --levers         # also S1 once per lever, one change at a time
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
}
SHIPPED = Variant()
PROPOSED = Variant(layer="pubsub", changes=("fastpath", "sse", "freeze"))
NAIVE = Variant("naive", layer="default")
COMPARED = {
    "S1": (SHIPPED, PROPOSED, NAIVE),
    "S2": (SHIPPED, PROPOSED, NAIVE),
    "S3": (SHIPPED, PROPOSED),
}
# One thing changed at a time, from the shipped app towards the proposal; S2
# shows what reading the model's stream costs with 50 of them at once.
LEVERS = (
    ("S1", Variant(layer="pubsub")),
    ("S1", Variant(changes=("fastpath",))),
    ("S1", Variant(layer="pubsub", changes=("fastpath",))),
    ("S1", Variant(layer="pubsub", changes=("fastpath", "freeze"))),
    ("S1", Variant(layer="pubsub", interval=0.02, changes=PROPOSED.changes)),
    ("S1", Variant(layer="pubsub", interval=0.1, changes=PROPOSED.changes)),
    ("S1", Variant("naive", layer="app")),
    ("S2", Variant(layer="pubsub", changes=("fastpath", "freeze"))),
    ("S2", Variant(layer="pubsub", changes=("fastpath", "client", "freeze"))),
    ("S2", Variant(layer="pubsub", interval=0.1, changes=PROPOSED.changes)),
)
IDLE_CONNECTIONS, RENDER_SIZES = 2000, (100, 1000, 10_000)
# One per tab in S1 and S2; S4 gives each of them 10 connections.
USERS = 200


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="S1,S2,S3,S4,S5", help="comma-separated scenarios")
    parser.add_argument("--levers", action="store_true", help="also run the lever sweep")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--docs", action="store_true", help="write docs/benchmark-*")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
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
        (name, variant, False) for name in STREAMS if name in wanted for variant in COMPARED[name]
    ]
    if args.levers:
        runs += [(name, variant, True) for name, variant in LEVERS if name in wanted]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        database = Database(
            workdir, rooms=max(load.rooms for load in STREAMS.values()), users=USERS
        )
        for name, variant, lever in runs:
            run = run_stream(
                database, STREAMS[name], variant, client_procs=args.clients, workdir=workdir
            )
            results["streams"].append({**run, "lever": lever})
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

    stamp = results["started"].replace(":", "")
    out = ROOT / ("docs/benchmark-results.json" if args.docs else f"bench/results/{stamp}.json")
    report.write_json(out, results)
    if results["streams"]:
        print(report.table(results["streams"]))
        plotted = [run for run in results["streams"] if not run["lever"]]
        report.plot(
            ROOT / "docs/benchmark-latency.png" if args.docs else out.with_suffix(".png"), plotted
        )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
