"""A client process: many websocket tabs, each timing when it first shows every token.

    python -m bench.clients PLAN RESULTS

PLAN is a JSON ClientPlan. The process prints "ready" once every tab is open,
waits for one line on stdin, lets each room's sender tab ask its question, and
writes its CPU time and one TabResult per tab to RESULTS. Parsing is a few regexes per frame, so
the clients spend their CPU on the sockets rather than on reading HTML.
"""

import asyncio
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from html import unescape
from typing import Any

import aiohttp

from tests.wsutil import Page, messages_in

# Our fragments: the assistant's <article> with its seq and status; its text ends in w<i>.
_ASSISTANT = re.compile(r'message--assistant[^>]*?data-seq="(\d+)"[^>]*?data-status="(\w+)"')
_LAST_TOKEN = re.compile(r".*\bw(\d+)", re.S)
# The naive design's fragments: one numbered delta each.
_DELTA = re.compile(r'data-seq="(\d+)" data-done="(\d)">([^<]*)</span>')
_TOKEN = re.compile(r"w(\d+)")

CONNECTS_AT_ONCE = 50
CONNECT_WITHIN = 120.0  # seconds to open every tab


@dataclass
class ClientPlan:
    design: str  # "ours", "naive", or "idle": open the sockets and only hold them
    origin: str
    tabs: list[dict[str, Any]]  # {"url", "room", "sender", "session"}
    reply: str  # the text every tab must end up showing
    tokens: int
    within: float  # seconds a tab may wait for its reply to finish


@dataclass
class TabResult:
    room: int
    shown: list[float | None]  # epoch seconds each token was first shown, by index
    frames: int = 0
    lost: int = 0  # seq gaps: updates that never arrived
    duplicated: int = 0  # seqs seen again
    finished: bool = False
    final_ok: bool = False
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


async def _watch_ours(ws: aiohttp.ClientWebSocketResponse, tab: TabResult, reply: str) -> None:
    page = Page()  # applies a streaming reply's deltas, as the room page does
    async for message in ws:
        at, data = time.time(), page.feed(message.data)
        tab.frames += 1
        found = _ASSISTANT.search(data)
        if found is None:
            continue  # the sender's fresh composer
        tab.saw(int(found[1]))
        last = _LAST_TOKEN.match(data, found.end(), data.find("</article>", found.end()))
        if last is not None:
            tab.show_upto(int(last[1]), at)
        if found[2] != "streaming":
            shown = [m for m in messages_in(data) if m.role == "assistant"]
            tab.finished, tab.final_ok = True, bool(shown) and shown[-1].text == reply
            return


async def _watch_naive(ws: aiohttp.ClientWebSocketResponse, tab: TabResult, reply: str) -> None:
    text = ""
    async for message in ws:
        at = time.time()
        tab.frames += 1
        for seq, done, delta in _DELTA.findall(message.data):
            tab.saw(int(seq))
            text += unescape(delta)
            if (token := _TOKEN.search(delta)) and tab.shown[int(token[1])] is None:
                tab.shown[int(token[1])] = at
            if done == "1":
                tab.finished, tab.final_ok = True, text == reply
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
                asyncio.create_task(watch(ws, tab, plan.reply))
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
