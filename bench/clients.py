"""A client process: many websocket tabs, each timing when it first shows every token.

    python -m bench.clients PLAN RESULTS

PLAN is a JSON ClientPlan. The process prints "ready" once every tab is open,
waits for one line on stdin, lets each room's sender tab ask its question, and
writes its CPU time and one TabResult per tab to RESULTS. Parsing is a few regexes per frame, so
the clients spend their CPU on the sockets rather than on reading HTML.

How far a tab's text has got is the last marker in a frame (bench.replies): it
works on whole message fragments and on frames that carry only part of one.
"""

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from html import unescape
from typing import Any

import aiohttp

from tests.wsutil import Page, is_delta, messages_in

# Our fragments: the assistant's <article> with its seq and status; a frame with
# part of a message carries its seq too.
_ASSISTANT = re.compile(r'message--assistant[^>]*?data-seq="(\d+)"[^>]*?data-status="(\w+)"')
_SEQ = re.compile(r'data-seq="(\d+)"')
_DIGITS = re.compile(r"\d+")
# The naive design's fragments: one numbered delta each.
_DELTA = re.compile(r'data-seq="(\d+)" data-done="(\d)">([^<]*)</span>')

CONNECTS_AT_ONCE = 50
CONNECT_WITHIN = 120.0  # seconds to open every tab


@dataclass
class ClientPlan:
    design: str  # "ours", "naive", or "idle": open the sockets and only hold them
    origin: str
    tabs: list[dict[str, Any]]  # {"url", "room", "sender", "session"}
    reply: str  # the text every tab must end up showing
    tokens: int  # chunks in the reply
    within: float  # seconds a tab may wait for its reply to finish
    marker: str = "w"  # what a marker starts with: "w" (every chunk) or "zq" (bench.replies)
    markers: list[int] = field(default_factory=list)  # the chunks that carry a marker


@dataclass
class TabResult:
    room: int
    shown: list[float | None]  # epoch seconds each token was first shown, by index
    frames: int = 0
    lost: int = 0  # seq gaps: updates that never arrived
    unapplied: int = 0  # delta frames that did not follow what the tab showed
    syncs: int = 0  # the messages it asked for, as a page does (static/chat/chat.js)
    duplicated: int = 0  # seqs seen again
    finished: bool = False
    final_ok: bool = False
    received_bytes: int = 0  # every frame, UTF-8
    final_bytes: int = 0  # the frame with the final state
    last_seq: int = field(default=-1, repr=False)

    def saw(self, seq: int) -> None:
        if seq <= self.last_seq:
            self.duplicated += 1
            return
        self.lost += seq - self.last_seq - 1
        self.last_seq = seq

    def show_upto(self, index: int, at: float) -> None:
        for i in range(index, -1, -1):
            if self.shown[i] is not None:
                break
            self.shown[i] = at


def _last_marker(text: str, prefix: str) -> int | None:
    """The number of the last marker in `text`: the furthest chunk it shows."""
    end = len(text)
    while (at := text.rfind(prefix, 0, end)) >= 0:
        end = at
        if at and text[at - 1].isalnum():
            continue  # inside a word
        if digits := _DIGITS.match(text, at + len(prefix)):
            return int(digits[0])
    return None


def _final_ok(data: str, plan: "ClientPlan") -> bool:
    shown = [m for m in messages_in(data) if m.role == "assistant"]
    if not shown:
        return False
    if plan.marker == "w":
        return shown[-1].text == plan.reply
    # Markdown renders to other text: every marker, in order, stands for it.
    found = [int(n) for n in re.findall(rf"\b{plan.marker}(\d+)\b", shown[-1].text)]
    return found == plan.markers


async def _watch_ours(
    ws: aiohttp.ClientWebSocketResponse, tab: TabResult, plan: "ClientPlan"
) -> None:
    page = Page()  # applies a streaming reply's deltas, and asks, as the room page does

    async def ask() -> None:
        while page.asks:
            tab.syncs += 1
            await ws.send_str(page.asks.pop(0))

    async def tick() -> None:
        while True:
            await asyncio.sleep(1)
            page.check_silent()
            await ask()

    ticker = asyncio.create_task(tick())
    try:
        await _read_ours(ws, tab, plan, page, ask)
    finally:
        ticker.cancel()


async def _read_ours(
    ws: aiohttp.ClientWebSocketResponse,
    tab: TabResult,
    plan: "ClientPlan",
    page: Page,
    ask: Callable[[], Awaitable[None]],
) -> None:
    async for message in ws:
        at, raw = time.time(), message.data
        data = page.feed(raw)
        tab.frames += 1
        tab.unapplied += is_delta(raw) and not data
        await ask()
        tab.received_bytes += len(raw.encode())
        found = _ASSISTANT.search(data) or _SEQ.search(data)
        if found is None:
            continue  # the sender's fresh composer
        tab.saw(int(found[1]))
        if (last := _last_marker(data, plan.marker)) is not None:
            tab.show_upto(min(last, plan.tokens - 1), at)
        if found.re is _ASSISTANT and found[2] != "streaming":
            tab.finished, tab.final_ok = True, _final_ok(data, plan)
            tab.final_bytes = len(data.encode())
            return


async def _watch_naive(
    ws: aiohttp.ClientWebSocketResponse, tab: TabResult, plan: "ClientPlan"
) -> None:
    text = ""
    async for message in ws:
        at = time.time()
        tab.frames += 1
        tab.received_bytes += len(message.data.encode())
        for seq, done, delta in _DELTA.findall(message.data):
            tab.saw(int(seq))
            delta = unescape(delta)
            text += delta
            if (last := _last_marker(delta, plan.marker)) is not None:
                tab.show_upto(min(last, plan.tokens - 1), at)
            if done == "1":
                tab.finished, tab.final_ok = True, text == plan.reply
                return


async def run(plan: ClientPlan) -> tuple[float, list[TabResult]]:
    """Returns the CPU seconds spent from the go line to the end, and every tab's result."""
    results = [TabResult(room=t["room"], shown=[None] * plan.tokens) for t in plan.tabs]
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def open_tab(tab: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:
            headers = {"Origin": plan.origin, "Cookie": f"sessionid={tab['session']}"}
            async with gate:
                return await session.ws_connect(tab["url"], headers=headers)

        async with asyncio.timeout(CONNECT_WITHIN):
            sockets = await asyncio.gather(*(open_tab(tab) for tab in plan.tabs))
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        cpu_at_go = time.process_time()
        if plan.design != "idle":
            watch = _watch_naive if plan.design == "naive" else _watch_ours
            watchers = [
                asyncio.create_task(watch(ws, tab, plan))
                for ws, tab in zip(sockets, results, strict=True)
            ]
            for ws, tab in zip(sockets, plan.tabs, strict=True):
                if tab["sender"]:
                    question = {"content": f"room {tab['room']}", "HEADERS": {"HX-Request": "true"}}
                    await ws.send_str(json.dumps(question))
            # A tab that never finishes keeps what it saw; the report counts it unfinished.
            await asyncio.wait(watchers, timeout=plan.within)
            for task in watchers:
                task.cancel()
        cpu = time.process_time() - cpu_at_go
        await asyncio.gather(*(ws.close() for ws in sockets))
    return cpu, results


def main(plan_path: str, results_path: str) -> None:
    with open(plan_path) as f:
        plan = ClientPlan(**json.load(f))
    cpu, results = asyncio.run(run(plan))
    with open(results_path, "w") as f:
        json.dump({"cpu_seconds": cpu, "tabs": [asdict(r) for r in results]}, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
