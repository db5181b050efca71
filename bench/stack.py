"""The servers one benchmark run needs, all on loopback, and the sampling of their cost."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.model import RecordingModel
from tests.servers import ROOT, DaphneServer, RedisServer

# Every Django process of one benchmark: production-like, over plain HTTP on
# loopback. They share the key, so the sessions the seed signs log tabs in.
DJANGO_ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_COOKIES": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
}


class Database:
    """A migrated SQLite file holding users, their sessions and empty rooms; copied per run."""

    def __init__(self, directory: Path, *, rooms: int, users: int) -> None:
        self.directory = directory
        self.template = directory / "template.sqlite3"
        env = {**DJANGO_ENV, "DATABASE_URL": f"sqlite:///{self.template}"}
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.seed", str(rooms), str(users)],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        seed = json.loads(seeded.stdout)
        self.rooms: list[int] = seed["rooms"]
        self.sessions: list[str] = seed["sessions"]

    def fresh(self) -> Path:
        path = self.directory / f"run-{uuid.uuid4().hex[:8]}.sqlite3"
        shutil.copy(self.template, path)
        return path


@dataclass
class Stack:
    """Redis, the model server and daphne processes for one run; see `stack()`."""

    redis: RedisServer
    model: RecordingModel
    servers: list[DaphneServer]
    rooms: list[int] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)

    def processes(self) -> dict[str, int]:
        pids = {f"daphne-{i}": s.process.pid for i, s in enumerate(self.servers) if s.process}
        if self.redis.process:
            pids["redis"] = self.redis.process.pid
        # This process serves the model's stream (RecordingModel runs in a thread here).
        pids["model"] = os.getpid()
        return pids


@contextmanager
def stack(
    database: Database,
    *,
    application: str,
    servers: int,
    rooms: int,
    chunks: tuple[str, ...],
    rate: float,
    settings: dict[str, str],
) -> Iterator[Stack]:
    """Start a fresh Redis, model server, database copy and `servers` daphne processes."""
    with ExitStack() as cleanup:
        redis = RedisServer().start()
        cleanup.callback(redis.stop)
        model = RecordingModel(chunks=chunks, rate=rate).start()
        cleanup.callback(model.stop)
        env = {
            **DJANGO_ENV,
            "DATABASE_URL": f"sqlite:///{database.fresh()}",
            "REDIS_URL": redis.url,
            "CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "CHAT_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_MODEL": "bench",
            **settings,
        }
        daphnes = []
        for _ in range(servers):
            daphne = DaphneServer(env, application=application)
            cleanup.callback(daphne.stop)
            daphnes.append(daphne.start())
        yield Stack(redis, model, daphnes, rooms=database.rooms[:rooms], sessions=database.sessions)


class Sampler:
    """CPU seconds and peak RSS of named processes, between start() and stop()."""

    def __init__(self, pids: dict[str, int], *, interval: float = 0.2, limit: float = 600) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval, self.limit = interval, limit
        self.peak_rss = dict.fromkeys(self.procs, 0)
        # (epoch seconds, CPU seconds) per process, every interval.
        self.cpu_series: dict[str, list[tuple[float, float]]] = {name: [] for name in self.procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> "Sampler":
        self._cpu0 = {name: _cpu_seconds(p) for name, p in self.procs.items()}
        self._busy0 = _machine_busy_seconds()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> dict[str, dict[str, float]]:
        """Per process: mean CPU % of one core over the window, and peak RSS in MB.

        "machine" is every core's busy time (200% = both cores), ours or not:
        the machine is shared, so this says how much else was running.
        """
        self._stop.set()
        self._thread.join(timeout=5)
        self.elapsed = elapsed = time.monotonic() - self._t0
        usage = {
            name: {
                "cpu_percent": round(100 * (_cpu_seconds(p) - self._cpu0[name]) / elapsed, 1),
                "peak_rss_mb": round(self.peak_rss[name] / 2**20, 1),
            }
            for name, p in self.procs.items()
        }
        busy = _machine_busy_seconds() - self._busy0
        usage["machine"] = {"cpu_percent": round(100 * busy / elapsed, 1), "peak_rss_mb": 0.0}
        return usage

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            for name, process in self.procs.items():
                self.peak_rss[name] = max(self.peak_rss[name], _rss(process))
                self.cpu_series[name].append((time.time(), _cpu_seconds(process)))

    def cpu_percent(self, name: str, start: float, end: float) -> float | None:
        """CPU % of one core between two epoch times, from the nearest samples inside."""
        inside = [point for point in self.cpu_series[name] if start <= point[0] <= end]
        if len(inside) < 2:
            return None
        (t0, cpu0), (t1, cpu1) = inside[0], inside[-1]
        return round(100 * (cpu1 - cpu0) / (t1 - t0), 1)


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0
