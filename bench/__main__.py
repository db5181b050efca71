"""`uv run python -m bench`: start the stack on loopback, run the scenarios, write the results.

uv run python -m bench                  # everything, ours against naive
uv run python -m bench --only S1        # one scenario
uv run python -m bench --docs           # also write docs/benchmark-*.{json,png}
"""

import argparse
import resource
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
OURS, NAIVE = Variant("ours"), Variant("naive", layer="default")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="S1,S2,S3,S4,S5", help="comma-separated scenarios")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--docs", action="store_true", help="write docs/benchmark-*")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")

    # Every tab is a file descriptor in a client and in daphne; both inherit this limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "streams": []}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        database = Database(workdir, rooms=max(load.rooms for load in STREAMS.values()))
        for name in (n for n in STREAMS if n in wanted):
            for variant in (OURS, NAIVE):
                run = run_stream(
                    database, STREAMS[name], variant, client_procs=args.clients, workdir=workdir
                )
                results["streams"].append(run)
                print(report.table([run]).splitlines()[1], flush=True)
        if "S4" in wanted:
            results["idle"] = run_idle(
                database, connections=2000, rooms=20, layer="app", workdir=workdir
            )
            print(results["idle"], flush=True)
        if "S5" in wanted:
            results["render"] = run_render(database, (100, 1000, 10_000))
            print(results["render"], flush=True)

    stamp = results["started"].replace(":", "")
    json_path = (
        ROOT / "docs" / "benchmark-results.json"
        if args.docs
        else ROOT / "bench" / "results" / f"{stamp}.json"
    )
    report.write_json(json_path, results)
    if results["streams"]:
        print(report.table(results["streams"]))
        plot_path = (
            ROOT / "docs" / "benchmark-latency.png" if args.docs else json_path.with_suffix(".png")
        )
        report.plot(plot_path, results["streams"])


if __name__ == "__main__":
    main()
