"""Tabs for the restart tests: what a room page receives, and what it keeps showing
as static/chat/chat.js does across reconnects."""

import asyncio
import time

import aiohttp

from tests.live import Stack, open_socket
from tests.servers import DaphneServer
from tests.slow import patience
from tests.wsutil import Page, Shown, action, messages_in


class Recorder:
    """Every assistant update a tab receives, with when it arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.updates, self.changed = ws, [], asyncio.Event()
        self.page = Page()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                now = time.monotonic()
                shown = messages_in(self.page.feed(message.data))
                self.updates += [(now, m) for m in shown if m.role == "assistant"]
                self.changed.set()

    def last(self) -> Shown | None:
        return self.updates[-1][1] if self.updates else None

    async def until(self, done, within: float = 30) -> Shown:
        try:
            async with asyncio.timeout(patience(within)):
                while not (self.last() and done(self.last())):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"not there after {within} s; last shown: {self.last()}") from None
        return self.last()


def p99(gaps: list[float]) -> float:
    ordered = sorted(gaps)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Tab:
    """A room page as static/chat/chat.js keeps it: the newest version of each
    message, and when its socket closes, a reconnect to a live process and a sync."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack, room_id: int) -> None:
        self.session, self.stack, self.room_id = session, stack, room_id
        self.page = Page()
        self.shown: dict[int, Shown] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self, server: DaphneServer) -> "Tab":
        await self._connect(server)
        self.task = asyncio.create_task(self._run())
        return self

    def close(self) -> None:
        self.task.cancel()

    async def _connect(self, server: DaphneServer) -> None:
        self.ws = await open_socket(self.session, server, self.room_id)
        # Everything the room has: what chat.js asks for when it holds version 0.
        await self.ws.send_str(action("sync", since=0))

    async def _run(self) -> None:
        while True:
            async for message in self.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.page.feed(message.data)
                    self.shown = self.page.shown
            await self._reconnect()

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for server in self.stack.servers:
                if server.process.poll() is None:
                    try:
                        await self._connect(server)
                        return
                    except aiohttp.ClientError:
                        continue

    def replies(self) -> dict[int, tuple[str, str]]:
        return {pk: (m.status, m.text) for pk, m in self.shown.items() if m.role == "assistant"}


def replies_by_room(stack: Stack) -> dict[int, dict[int, tuple[str, str]]]:
    rooms: dict[int, dict[int, tuple[str, str]]] = {}
    for room_id, pk, status, content in stack.rows(
        "select room_id, id, status, content from chat_message where role = 'assistant'"
    ):
        rooms.setdefault(room_id, {})[pk] = (status, content.strip())
    return rooms


async def settled(stack: Stack, tabs: list[Tab], done=lambda rows: True, within: float = 30):
    """Wait until no reply streams, `done(rows)`, and every tab shows each reply as
    the database holds it."""
    deadline = time.monotonic() + patience(within)
    while True:
        rows = replies_by_room(stack)
        streaming = any(s == "streaming" for room in rows.values() for s, _ in room.values())
        wrong = [(tab.room_id, tab.replies()) for tab in tabs if tab.replies() != rows[tab.room_id]]
        if not streaming and done(rows) and not wrong:
            return rows
        assert time.monotonic() < deadline, f"not settled: {rows=} {wrong=}"
        await asyncio.sleep(0.2)
