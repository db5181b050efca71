"""The shipped nginx config (deploy/nginx.conf) in front of two real daphne processes.

nginx runs from Debian's package with the same file, its upstream addresses,
port and paths swapped for the test's by deploy/nginx_conf.py (which fails if
the file no longer has what it swaps), as an operator would run it by hand.
The processes share one Redis and one database:
PostgreSQL when the PostgreSQL tests can run here (tests/pgembed.py), else a
SQLite file. Which process served a request is read from nginx's access log,
as an operator would (its `upstream=` field).
"""

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest
from yarl import URL

from deploy import nginx_conf
from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import browser_session, create_room, frames_until
from tests.pgembed import PgEmbedServer, Unavailable
from tests.servers import ROOT, DaphneServer, free_port, migrate, redis_prefixes, wait_for_port
from tests.wsutil import messages_in, reply_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    def __init__(self, *, upstreams: list[int], static: Path, prefix: Path) -> None:
        self.port, self.prefix = free_port(), prefix
        prefix.mkdir(parents=True, exist_ok=True)
        config = nginx_conf.render(
            nginx_conf.CONFIG.read_text(),
            listen=f"127.0.0.1:{self.port}",
            upstreams=[f"127.0.0.1:{port}" for port in upstreams],
            prefix=prefix,
            static=static,
        )
        (prefix / "nginx.conf").write_text(config)
        self.command = nginx_conf.command(NGINX, prefix)
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> "Nginx":
        check = subprocess.run([*self.command[:-2], "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(self.command, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def upstreams(self, path: str) -> list[str]:
        """The daphne address that answered each finished request for `path`, in order."""
        pattern = re.compile(rf'"GET {re.escape(path)} HTTP/1.1" \d+ .*upstream=(.*) time=')
        log = (self.prefix / "access.log").read_text()
        # A retried request lists every process tried: "first, second".
        return [m[1].split(", ")[-1] for m in pattern.finditer(log)]


@dataclass
class Topology:
    proxy: Nginx
    backends: list[DaphneServer]
    static: Path
    database: str

    def address(self, backend: DaphneServer) -> str:
        return f"127.0.0.1:{backend.port}"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PostgreSQL when tests/pgembed.py can run it here, else a SQLite file."""
    try:
        server = PgEmbedServer().start()
    except (Unavailable, subprocess.CalledProcessError):
        yield f"sqlite:///{tmp_path_factory.mktemp('proxy-db') / 'db.sqlite3'}"
        return
    database = f"proxy_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(server.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        yield server.url(database)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    model_server: FakeOpenAI,
    database_url: str,
) -> Iterator[Topology]:
    if not Path(NGINX).exists():
        reason = "nginx is not installed (apt-get install nginx; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("proxy")
    static = directory / "static"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        **redis_prefixes("proxy"),
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_MODEL": "test-model",
        # Production settings, behind a proxy speaking plain HTTP on loopback.
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_STATIC_ROOT": str(static),
    }
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        collected = pool.submit(
            subprocess.run, collect, cwd=ROOT, env={**os.environ, **env}, check=True
        )
        migrate(env)
        collected.result()
    backends = [DaphneServer(env), DaphneServer(env)]
    proxy = Nginx(upstreams=[b.port for b in backends], static=static, prefix=directory / "nginx")
    try:
        for backend in backends:
            backend.start()
        proxy.start()
        yield Topology(proxy, backends, static, database_url.partition(":")[0])
    finally:
        proxy.stop()
        for backend in backends:
            backend.stop()


async def open_tab(session: aiohttp.ClientSession, proxy: Nginx, room_id: int):
    return await session.ws_connect(
        f"{proxy.ws_url}/ws/chat/{room_id}/", headers={"Origin": proxy.http_url}
    )


async def test_two_tabs_land_on_different_processes_and_both_see_the_reply(topology, model_server):
    proxy = topology.proxy
    text = " ".join(f"word{i}" for i in range(20))
    model_server.queue(Reply(text, tokens_per_second=40))
    async with browser_session() as session:
        room_id = await create_room(session, proxy, f"Proxied on {topology.database}")
        path = f"/ws/chat/{room_id}/"
        tabs = [await open_tab(session, proxy, room_id) for _ in range(2)]

        await tabs[0].send_str(json.dumps({"content": "through nginx"}))
        for tab in tabs:
            frames = await frames_until(tab, reply_finished)
            replies = [m for f in frames for m in messages_in(f) if m.role == "assistant"]
            assert len(replies) >= 3, "the reply streamed, in several updates"
            assert replies[-1].status == "complete" and replies[-1].text == text
        for tab in tabs:
            await tab.close()
    # nginx logs a websocket when it closes.
    await asyncio.sleep(0.2)
    assert sorted(proxy.upstreams(path)) == sorted(topology.address(b) for b in topology.backends)


async def test_static_files_come_from_nginx(topology):
    proxy = topology.proxy
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.http_url}/accounts/login/") as response:
            page = await response.text()
        assets = re.findall(r'(?:src|href)="/static/([^"]+)"', page)
        assert {"chat/chat.css", "chat/chat.js"} <= set(assets)
        assert any(a.startswith("django_htmx/") for a in assets), "htmx and its ws extension"
        for name in assets:
            async with session.get(f"{proxy.http_url}/static/{name}") as response:
                assert response.status == 200, name
                # nginx's `expires 1h`; whitenoise in daphne would say max-age=60.
                assert response.headers["Cache-Control"] == "max-age=3600", name
                assert await response.read() == (topology.static / name).read_bytes()
    assert not proxy.upstreams("/static/chat/chat.css"), "no process was asked"


async def test_metrics_are_not_served_through_the_proxy(topology):
    async with aiohttp.ClientSession() as session:
        # Every spelling nginx normalises to /metrics, and one Django would not.
        for path in ("/metrics", "/metrics?format=text", "//metrics", "/%6Detrics", "/metrics/"):
            url = URL(f"{topology.proxy.http_url}{path}", encoded=True)
            async with session.get(url) as response:
                assert response.status == 404, path
        # Each process still answers a scraper of its own on loopback.
        backend = topology.backends[0]
        async with session.get(f"{backend.http_url}/metrics") as response:
            assert response.status == 200
            assert "chat_open_websockets" in await response.text()


async def test_a_forged_forwarded_proto_is_replaced_by_the_proxy(topology):
    """With DJANGO_SECURE_PROXY_SSL_HEADER=true Django believes X-Forwarded-Proto, and
    answers a request it thinks came over HTTPS with HSTS. nginx sends its own scheme,
    so a client's claim never reaches Django; a malformed one sent straight to a
    process counts as plain HTTP."""
    backend = topology.backends[1]
    async with aiohttp.ClientSession() as session:

        async def hsts(base: str, proto: str) -> bool:
            headers = {"X-Forwarded-Proto": proto}
            async with session.get(f"{base}/accounts/login/", headers=headers) as response:
                assert response.status == 200
                return "Strict-Transport-Security" in response.headers

        assert await hsts(backend.http_url, "https"), "the setting is on"
        assert not await hsts(topology.proxy.http_url, "https")
        assert not await hsts(backend.http_url, "http, https")
        assert not await hsts(backend.http_url, "\u00e9")


@pytest.mark.slow
async def test_one_backend_killed_and_restarted_leaves_the_other_serving(topology, model_server):
    proxy, (first, second) = topology.proxy, topology.backends
    async with browser_session() as session:
        room_id = await create_room(session, proxy, "Survives a restart")
        tabs = [await open_tab(session, proxy, room_id) for _ in range(2)]
        first.kill()
        try:
            # The tab on the killed process loses its socket; the other keeps its own.
            closed = [tab for tab in tabs if await _closes(tab)]
            assert len(closed) == 1
            survivor = next(tab for tab in tabs if tab not in closed)

            # New tabs still open (nginx skips the dead process) and the room still answers.
            newcomer = await open_tab(session, proxy, room_id)
            model_server.queue(Reply("still serving"))
            await newcomer.send_str(json.dumps({"content": "anyone there?"}))
            for tab in (survivor, newcomer):
                frames = await frames_until(tab, reply_finished)
                assert messages_in(frames[-1])[-1].text == "still serving"
            async with session.get(f"{proxy.http_url}/healthz") as response:
                assert response.status == 200
        finally:
            first.start()
        await newcomer.close()
        await survivor.close()
    await asyncio.sleep(0.2)
    served = proxy.upstreams(f"/ws/chat/{room_id}/")
    # The newcomer's socket went to the live process, whatever the turn said.
    assert served[-1] == topology.address(second)

    # Back in the rotation once its fail_timeout (5 s) has passed.
    await asyncio.sleep(5.5)
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            async with session.get(f"{proxy.http_url}/healthz") as response:
                assert response.status == 200
    assert topology.address(first) in proxy.upstreams("/healthz")[-4:]


async def _closes(tab: aiohttp.ClientWebSocketResponse, within: float = 3) -> bool:
    """True if the server side of `tab` goes away within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            async for _ in tab:
                pass
    except TimeoutError:
        return False
    return True
