"""Scenarios: a reply streamed to many tabs (S1-S3), and idle connections held open (S4)."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.measure import measure
from bench.profile import hottest, profiled
from bench.replies import marker_indices, marker_prefix, reply_chunks
from bench.stack import DJANGO_ENV, Database, Sampler, Stack, stack
from tests.live import stalled_client
from tests.servers import ROOT

PATHS = {"ours": "/ws/chat/{room}/", "naive": "/ws/naive/{room}/", "idle": "/ws/chat/{room}/"}


@dataclass(frozen=True)
class Load:
    name: str
    rooms: int
    tabs_per_room: int
    tokens: int  # a numbered reply's length, in chunks
    rate: float  # chunks per second from the model
    servers: int = 1  # daphne processes; a room's tabs are spread over them
    stalled: int = 0  # raw sockets into the first room that never read
    reply: str = "numbered"  # bench.replies: numbered (`tokens` long), ordinary, markdown-en/ko

    @property
    def chunks(self) -> tuple[str, ...]:
        return reply_chunks(self.reply, self.tokens)

    @property
    def seconds(self) -> float:
        return len(self.chunks) / self.rate


@dataclass(frozen=True)
class Variant:
    design: str = "ours"  # or "naive" (bench/naive.py)
    layer: str = "app"  # see bench/settings.py
    interval: float = 0.04  # CHAT_STREAM_INTERVAL, seconds

    @property
    def label(self) -> str:
        if self.design == "naive":
            return f"naive ({self.layer} layer)"
        return f"ours ({self.layer} layer, {self.interval * 1000:g} ms)"

    @property
    def application(self) -> str:
        if self.design == "naive":
            return "bench.naive_asgi:application"
        return "config.asgi:application"


class Clients:
    """Client processes (bench.clients), each holding its share of the tabs."""

    def __init__(self, plans: list[dict[str, Any]], workdir: Path) -> None:
        self.procs: list[tuple[subprocess.Popen[str], Path]] = []
        for index, plan in enumerate(plans):
            plan_path, results = workdir / f"plan-{index}.json", workdir / f"tabs-{index}.json"
            plan_path.write_text(json.dumps(plan))
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.clients", str(plan_path), str(results)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append((process, results))

    def wait_ready(self) -> None:
        for process, _ in self.procs:
            # The client gives up connecting after its own timeout, which ends this line.
            if process.stdout is None or process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"client {process.pid} failed to open its tabs")

    def go(self) -> None:
        for process, _ in self.procs:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()

    def results(self, timeout: float) -> list[dict[str, Any]]:
        outputs = []
        for process, results in self.procs:
            if process.wait(timeout=timeout) != 0:
                raise RuntimeError(f"client {process.pid} exited with {process.returncode}")
            outputs.append(json.loads(results.read_text()))
        return outputs

    def kill(self) -> None:
        for process, _ in self.procs:
            if process.poll() is None:
                process.kill()
                process.wait()


def _plans(st: Stack, load: Load, design: str, client_procs: int) -> list[dict[str, Any]]:
    reply = "".join(load.chunks)
    # Every user is a member of every room; spreading tabs over them keeps each
    # user under CHAT_MAX_CONNECTIONS_PER_USER, as a room full of people would.
    # Rooms take turns over the servers, so on several processes each one
    # writes some of the replies (a reply is written where its question arrives).
    tabs = [
        {
            "url": st.servers[(index + tab) % load.servers].ws_url
            + PATHS[design].format(room=room),
            "room": room,
            "sender": tab == 0,
            "session": st.sessions[(index * load.tabs_per_room + tab) % len(st.sessions)],
        }
        for index, room in enumerate(st.rooms)
        for tab in range(load.tabs_per_room)
    ]
    return [
        {
            "design": design,
            "origin": st.servers[0].http_url,
            "tabs": tabs[index::client_procs],
            "reply": reply,
            "tokens": len(load.chunks),
            "within": load.seconds * 1.5 + 5,
            "marker": marker_prefix(load.reply),
            "markers": marker_indices(load.reply, load.tokens),
        }
        for index in range(client_procs)
    ]


def run_stream(
    database: Database,
    load: Load,
    variant: Variant,
    *,
    client_procs: int,
    workdir: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Stream one reply per room to every tab; return what the tabs saw and what it cost.

    With `profile`, py-spy samples the first daphne process into that file.
    """
    settings = {"BENCH_LAYER": variant.layer, "CHAT_STREAM_INTERVAL": str(variant.interval)}
    with stack(
        database,
        application=variant.application,
        servers=load.servers,
        rooms=load.rooms,
        chunks=load.chunks,
        rate=load.rate,
        settings=settings,
    ) as st:
        clients = Clients(_plans(st, load, variant.design, client_procs), workdir)
        daphne = st.servers[0].process
        assert daphne is not None
        with ExitStack() as running:
            stalled = [
                _stalled(st, st.rooms[0], st.sessions[i % len(st.sessions)])
                for i in range(load.stalled)
            ]
            running.callback(lambda: [sock.close() for sock in stalled])
            running.callback(clients.kill)
            clients.wait_ready()
            rss_before = psutil.Process(daphne.pid).memory_info().rss
            sampler = Sampler(st.processes()).start()
            if profile is not None:
                running.enter_context(profiled(daphne.pid, profile))
            clients.go()
            outputs = clients.results(timeout=load.seconds * 1.5 + 60)
            usage = sampler.stop()
            usage["daphne-0"]["rss_growth_mb"] = round(
                (usage["daphne-0"]["peak_rss_mb"] * 2**20 - rss_before) / 2**20, 1
            )
            client_cpu = sum(output["cpu_seconds"] for output in outputs)
            usage["clients"] = {
                "cpu_percent": round(100 * client_cpu / sampler.elapsed, 1),
                "peak_rss_mb": 0.0,
            }
        run = {
            "scenario": load.name,
            "variant": variant.label,
            **asdict(variant),
            "load": asdict(load),
            **measure(st, outputs, usage, sampler, markers=marker_indices(load.reply, load.tokens)),
        }
        if profile is not None:
            run["profile"] = hottest(profile)
        return run


def _stalled(st: Stack, room: int, session: str) -> socket.socket:
    """A tab that opens its socket and never reads from it (tests.live.stalled_client)."""
    return stalled_client(st.servers[0], room, f"sessionid={session}")


def run_idle(
    database: Database, *, connections: int, rooms: int, layer: str, workdir: Path
) -> dict[str, Any]:
    """Hold `connections` idle tabs on one daphne; the RSS they add, per connection."""
    load = Load("S4", rooms, connections // rooms, tokens=1, rate=1)
    with stack(
        database,
        application="config.asgi:application",
        servers=1,
        rooms=rooms,
        chunks=reply_chunks("numbered", 1),
        rate=1,
        settings={"BENCH_LAYER": layer},
    ) as st:
        daphne = psutil.Process(st.servers[0].process.pid)  # type: ignore[union-attr]
        # A few tabs first, so imports, pools and caches are in the baseline.
        with _held(_plans(st, Load("warm-up", 1, 20, 1, 1), "idle", 1), workdir):
            pass
        time.sleep(1)
        before = daphne.memory_info().rss
        started = time.monotonic()
        with _held(_plans(st, load, "idle", 2), workdir):
            open_seconds = time.monotonic() - started
            time.sleep(2)  # let the last handshakes settle
            held = daphne.memory_info().rss
    return {
        "scenario": "S4",
        "layer": layer,
        "connections": connections,
        "open_seconds": round(open_seconds, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_held_mb": round(held / 2**20, 1),
        "kb_per_connection": round((held - before) / connections / 1024, 1),
    }


@contextmanager
def _held(plans: list[dict[str, Any]], workdir: Path) -> Iterator[None]:
    """Tabs open and idle for the body of the with block, closed after it."""
    clients = Clients(plans, workdir)
    try:
        clients.wait_ready()
        yield
        clients.go()
        clients.results(timeout=60)
    finally:
        clients.kill()


def run_render(database: Database, sizes: tuple[int, ...]) -> dict[str, Any]:
    """S5 in its own Django process (bench.render) on a fresh copy of the database."""
    env = {**DJANGO_ENV, "DATABASE_URL": f"sqlite:///{database.fresh()}"}
    rendered = subprocess.run(
        [sys.executable, "-m", "bench.render", *map(str, sizes)],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"scenario": "S5", **json.loads(rendered.stdout)}
