"""Sampling a daphne process during a run with py-spy, and its hottest functions."""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def profiled(pid: int, out: Path) -> Iterator[None]:
    """py-spy samples `pid` (100 Hz, every busy thread) for the body of the block."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def hottest(raw: Path, *, count: int = 12) -> dict[str, Any]:
    """The busiest functions, as a share of all samples py-spy took (it skips idle
    threads, so every sample is work): on top of the stack ("self") and anywhere
    on it ("total"). Worker threads (the database's) count too: they hold the GIL."""
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [_name(frame) for frame in stack.split(";")]
        n = int(samples)
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n

    def share(counter: Counter[str]) -> list[list[Any]]:
        rows = [[name, round(100 * n / busy, 1)] for name, n in counter.most_common()]
        # Thread and task entry points are on nearly every stack and say nothing.
        return [row for row in rows if row[1] < 95][:count]

    return {
        "samples": busy,
        "components": components(raw),
        "self": share(own),
        "total": share(total),
    }


# Where a sample's time went, by the first of these found anywhere on its stack.
COMPONENTS = (
    (
        "rendering (templates, Markdown)",
        (
            "django/template/",
            "chat/rendering.py",
            "chat/markdown.py",
            "markdown_it/",
            "nh3",
            "pygments/",
        ),
    ),
    ("model stream (openai SDK, httpx)", ("openai/", "httpx/", "httpcore/")),
    ("channel layer (channels-redis, redis-py)", ("channels_redis/", "redis/", "msgpack")),
    (
        "websocket writes (autobahn, Twisted)",
        ("autobahn/", "twisted/internet/tcp", "twisted/internet/abstract"),
    ),
    ("database (Django ORM, SQLite)", ("django/db/",)),
    ("imports at run time", ("importlib._bootstrap",)),
    ("consumers and dispatch (Channels, chat)", ("channels/", "chat/")),
)


def components(raw: Path) -> list[list[Any]]:
    """Each sample's stack put under the first COMPONENTS entry it touches; waiting
    in epoll is idle. Shares of all samples, largest first."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack.rsplit(";", 1)[-1].startswith("EpollSelector.select"):
            counts["idle (waiting in epoll)"] += int(samples)
            continue
        name = next(
            (label for label, marks in COMPONENTS if any(m in stack for m in marks)),
            "the event loop, asyncio and the rest",
        )
        counts[name] += int(samples)
    total = sum(counts.values())
    return [[name, round(100 * n / total, 1)] for name, n in counts.most_common()]


def _name(frame: str) -> str:
    """'render (django/template/base.py:1000)' -> 'render (django/template/base.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name
