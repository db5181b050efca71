"""Driving real daphne processes like a browser does: pages over HTTP, rooms over websockets."""

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
from yarl import URL

from tests.servers import DaphneServer, migrate, redis_prefixes
from tests.slow import patience
from tests.wsutil import page_of


class Stack:
    """Daphne processes sharing one database file and one Redis."""

    def __init__(self, servers: list[DaphneServer], database: Path) -> None:
        self.servers, self.database = servers, database

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.database) as db:
            return db.execute(sql, params).fetchall()

    def messages(self, room_id: int) -> list[tuple[str, str, str]]:
        return self.rows(
            "select role, status, content from chat_message where room_id = ? order by id", room_id
        )


@contextlib.contextmanager
def running_stack(
    directory: Path,
    *,
    redis_url: str,
    model_url: str,
    processes: int = 2,
    daphne_args: tuple[str, ...] = (),
    **settings: str,
) -> Iterator[Stack]:
    """Migrate a fresh database, then serve it from `processes` daphne processes."""
    database = directory / "db.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        **redis_prefixes("live"),
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_url,
        "OPENAI_MODEL": "test-model",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        # Production settings, over plain HTTP on loopback.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        **settings,
    }
    migrate(env)
    servers = [DaphneServer(env, args=daphne_args) for _ in range(processes)]
    try:
        for server in servers:
            server.start()
        yield Stack(servers, database)
    finally:
        for server in servers:
            server.stop()


def browser_session() -> aiohttp.ClientSession:
    # Keep cookies from 127.0.0.1 too, as a browser does.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def post_form(
    session: aiohttp.ClientSession,
    server: DaphneServer,
    path: str,
    data: dict[str, str],
    *,
    htmx: bool = False,
) -> aiohttp.ClientResponse:
    """GET the page for its CSRF cookie, then POST the form, as a browser does."""
    url = f"{server.http_url}{path}"
    async with session.get(url) as response:
        assert response.status == 200, response.status
    token = session.cookie_jar.filter_cookies(URL(server.http_url))["csrftoken"].value
    headers = {"Referer": url} | ({"HX-Request": "true"} if htmx else {})
    return await session.post(
        url,
        data={**data, "csrfmiddlewaretoken": token},
        headers=headers,
        allow_redirects=False,
    )


async def sign_up(session: aiohttp.ClientSession, server: DaphneServer) -> str:
    """Create an account through the sign-up page; the session is then logged in."""
    username = f"user-{uuid.uuid4().hex[:8]}"
    password = "correct-horse-battery-9"
    response = await post_form(
        session,
        server,
        "/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
    )
    assert response.status == 302, await response.text()
    return username


async def create_room(session: aiohttp.ClientSession, server: DaphneServer, name: str) -> int:
    """Create a room as the session's user, signing a new user up if there is none yet."""
    if "sessionid" not in session.cookie_jar.filter_cookies(URL(server.http_url)):
        await sign_up(session, server)
    response = await post_form(
        session, server, "/chat/new/", {"name": name, "system_prompt": ""}, htmx=True
    )
    return int(response.headers["HX-Redirect"].strip("/").split("/")[-1])


async def open_socket(
    session: aiohttp.ClientSession, server: DaphneServer, room_id: int
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(
        f"{server.ws_url}/ws/chat/{room_id}/", headers={"Origin": server.http_url}
    )


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[str], bool], within: float = 15
) -> list[str]:
    """Collect text frames until `done(frame)`; fail on a close or after `within` seconds.
    A delta is collected as the article it leaves on the page (wsutil.Page)."""
    frames: list[str] = []
    page = page_of(ws)
    async with asyncio.timeout(patience(within)):
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = page.feed(message.data)
            frames.append(frame)
            if done(frame):
                return frames
    raise AssertionError(f"socket closed ({ws.close_code}) after {len(frames)} frames")


def cookie_header(session: aiohttp.ClientSession, server: DaphneServer) -> str:
    """The session's cookies for `server`, as a Cookie header."""
    jar = session.cookie_jar.filter_cookies(URL(server.http_url))
    return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())


def stalled_client(server: DaphneServer, room_id: int, cookies: str) -> socket.socket:
    """A websocket client that completes the handshake, then never reads again."""
    sock = socket.socket()
    # A tiny receive window, so the server's writes back up at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/chat/{room_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {server.http_url}\r\nCookie: {cookies}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock
