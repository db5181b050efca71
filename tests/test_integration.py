"""Real daphne processes sharing one Redis and one database."""

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer, migrate
from tests.wsutil import messages_in, reply_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


class Stack:
    def __init__(self, servers: list[DaphneServer], database: Path) -> None:
        self.servers, self.database = servers, database

    def rows(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.database) as db:
            return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    database = tmp_path_factory.mktemp("integration") / "db.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        "CHANNELS_PREFIX": f"it-{uuid.uuid4().hex[:8]}",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_MODEL": "test-model",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    migrate(env)
    servers = [DaphneServer(env).start(), DaphneServer(env).start()]
    try:
        yield Stack(servers, database)
    finally:
        for server in servers:
            server.stop()


def browser_session() -> aiohttp.ClientSession:
    # Keep cookies from 127.0.0.1 too, as a browser does.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def create_room(session: aiohttp.ClientSession, server: DaphneServer, name: str) -> int:
    async with session.get(f"{server.http_url}/chat/new/") as response:
        assert response.status == 200
    token = session.cookie_jar.filter_cookies(URL(server.http_url))["csrftoken"].value
    async with session.post(
        f"{server.http_url}/chat/new/",
        data={"name": name, "system_prompt": "", "csrfmiddlewaretoken": token},
        headers={"HX-Request": "true", "Referer": f"{server.http_url}/chat/new/"},
    ) as response:
        return int(response.headers["HX-Redirect"].strip("/").split("/")[-1])


async def open_socket(session, server: DaphneServer, room_id: int):
    return await session.ws_connect(
        f"{server.ws_url}/ws/chat/{room_id}/", headers={"Origin": server.http_url}
    )


async def frames_until(ws, done, within: float = 15) -> list[str]:
    frames = []
    async with asyncio.timeout(within):
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frames.append(message.data)
            if done(message.data):
                return frames
    raise AssertionError(f"socket closed before the end; got {len(frames)} frames")


async def test_a_reply_generated_by_one_process_streams_into_the_other(stack, model_server):
    first, second = stack.servers
    text = " ".join(f"token{i}" for i in range(30))
    model_server.queue(Reply(text, tokens_per_second=60))
    async with browser_session() as session:
        room_id = await create_room(session, first, "Two processes")
        sender = await open_socket(session, first, room_id)
        watcher = await open_socket(session, second, room_id)

        await sender.send_str(json.dumps({"content": "across processes"}))
        frames = await frames_until(watcher, reply_finished)

        shown = [m for f in frames for m in messages_in(f)]
        assert shown[0].text == "across processes"
        assert len([m for m in shown if m.role == "assistant"]) >= 3
        assert shown[-1].status == "complete" and shown[-1].text == text
    assert stack.rows(
        "select role, status, content from chat_message where room_id = ? order by id", room_id
    ) == [("user", "complete", "across processes"), ("assistant", "complete", text)]


async def test_an_idle_connection_stays_open(stack, model_server):
    server = stack.servers[0]
    async with browser_session() as session:
        room_id = await create_room(session, server, "Idle")
        ws = await open_socket(session, server, room_id)
        with pytest.raises(TimeoutError):
            # Nothing arrives, and nothing closes the socket, for 10 s.
            await ws.receive(timeout=10.5)
        assert not ws.closed
        model_server.queue(Reply("still connected"))
        await ws.send_str(json.dumps({"content": "after a pause"}))
        frames = await frames_until(ws, reply_finished)
        assert messages_in(frames[-1])[-1].text == "still connected"
