"""Restarts, deploys and crashes with real daphne processes sharing one database and Redis.

kill -9 under load, SIGTERM and SIGINT mid-reply then a restart, a rolling
restart, and Continue after each way a reply can end early. Each test checks
the rows left in the database and what the tabs were shown.
"""

import asyncio
import signal
import time
import uuid
from itertools import pairwise

import aiohttp
import pytest

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import Stack, browser_session, create_room, frames_until, open_socket, running_stack
from tests.servers import DaphneServer
from tests.tabs import Recorder, Tab, action, p99, settled
from tests.wsutil import Shown, messages_in, reply_finished, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WORDS = [f"w{i}" for i in range(400)]
# The bound is 3 s; asserted loosely, as the machine is shared.
INTERRUPTED_WITHIN = 5.0


def words_reply(count: int, rate: float) -> Reply:
    return Reply(chunks=tuple(f"{w} " for w in WORDS[:count]), tokens_per_second=rate)


def full_text(count: int) -> str:
    return " ".join(WORDS[:count])


def last_reply(frames: list[str]) -> Shown | None:
    shown = [m for f in frames for m in messages_in(f) if m.role == "assistant"]
    return shown[-1] if shown else None


def streamed(at_least: int):
    """Done once an assistant update shows at least this many words."""

    def done(frame: str) -> bool:
        reply = last_reply([frame])
        return reply is not None and len(reply.text.split()) >= at_least

    return done


def settings_for_restarts(**overrides: str) -> dict[str, str]:
    return {
        # Keys of this stack's own: the sockets bound and rate limit count per user id.
        "CHAT_REDIS_PREFIX": f"restarts-{uuid.uuid4().hex[:8]}",
        "CHAT_RATE_LIMIT": "1000",
        "CHAT_MAX_CONNECTIONS_PER_USER": "100",
        **overrides,
    }


@pytest.fixture
def stack_of(tmp_path, redis_url: str, model_server: FakeOpenAI):
    def start(processes: int = 2, **overrides: str):
        return running_stack(
            tmp_path,
            redis_url=redis_url,
            model_url=model_server.base_url,
            processes=processes,
            **settings_for_restarts(**overrides),
        )

    return start


async def stop_with(server: DaphneServer, signum: int, within: float = 30) -> float:
    """Send `signum`; returns how long the process took to exit, which it must do cleanly."""
    started = time.monotonic()
    server.process.send_signal(signum)
    code = await asyncio.to_thread(server.process.wait, within)
    assert code == 0, server.output()[-3000:]
    return time.monotonic() - started


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read past the frames still buffered to the close, and return its code."""
    async with asyncio.timeout(10):
        while (message := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
            pass
    # The close frame's own code: answering it may fail once the process is gone.
    return message.data if message.type == aiohttp.WSMsgType.CLOSE else ws.close_code


def reply_row(stack: Stack, room_id: int) -> tuple[int, str, str]:
    ((pk, status, content),) = stack.rows(
        "select id, status, content from chat_message where room_id = ? and role = 'assistant'"
        " order by id desc limit 1",
        room_id,
    )
    return pk, status, content


async def test_sigterm_mid_reply_loses_nothing_and_the_restart_answers_at_once(
    stack_of, model_server
):
    grace = 1.5
    model_server.queue(words_reply(300, 40))
    with stack_of(CHAT_SHUTDOWN_GRACE=str(grace)) as stack:
        stopping, other = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, stopping, "Deploy")
            sender = await open_socket(session, stopping, room_id)
            watcher = await open_socket(session, other, room_id)
            await sender.send_str(send("Write a lot"))
            shown_at_signal = last_reply(await frames_until(watcher, streamed(20)))

            took = await stop_with(stopping, signal.SIGTERM)

            # The process's own tabs were told to go elsewhere: a clean close,
            # which the page reconnects on.
            assert await close_code(sender) == 1000
            # The reply went on through the grace period, then was saved in full.
            frames = await frames_until(watcher, reply_finished, within=grace + 10)
            final = last_reply(frames)
            pk, status, saved = reply_row(stack, room_id)
            assert (final.pk, final.status, status) == (pk, "interrupted", "interrupted")
            assert saved.strip() == final.text, "zero loss: all it had, not its last save"
            assert full_text(300).startswith(final.text)
            assert len(final.text.split()) >= len(shown_at_signal.text.split()) + 40 * grace / 2
            assert grace <= took < grace + 8
            assert "shutting down: 1 replies are being written" in stopping.output()

            # Started again, it answers at once: nothing of the old process holds the room.
            stopping.start()
            model_server.queue(Reply("Back already."))
            tab = await open_socket(session, stopping, room_id)
            await tab.send_str(send("Are you back?"))
            frames = await frames_until(tab, lambda f: "Back already." in f and reply_finished(f))
            assert last_reply(frames).status == "complete"

            # Stop on one process, Continue on the other: the same message goes on.
            model_server.queue(words_reply(300, 40), Reply("and that is all."))
            await tab.send_str(send("Another long one"))
            reply = last_reply(await frames_until(watcher, streamed(10)))
            await watcher.send_str(action("stop", message=reply.pk))
            stopped = last_reply(await frames_until(tab, reply_finished))
            assert (stopped.pk, stopped.status) == (reply.pk, "stopped")
            kept = reply_row(stack, room_id)[2]
            await tab.send_str(action("continue", message=reply.pk))
            continued = last_reply(
                await frames_until(watcher, lambda f: "that is all" in f and reply_finished(f))
            )
            assert (continued.pk, continued.status) == (reply.pk, "complete")
            assert reply_row(stack, room_id) == (reply.pk, "complete", kept + "and that is all.")


@pytest.mark.slow
async def test_kill_9_under_load(stack_of, model_server, capsys):
    rooms_each, count, rate = 10, 160, 20
    model_server.queue(*(words_reply(count, rate) for _ in range(2 * rooms_each)))
    with stack_of() as stack:
        doomed, survivor = stack.servers
        async with browser_session() as session:
            rooms = [
                await create_room(session, survivor, f"Load {i}") for i in range(2 * rooms_each)
            ]
            dead_rooms, live_rooms = rooms[:rooms_each], rooms[rooms_each:]
            senders = {
                r: await open_socket(session, doomed if r in dead_rooms else survivor, r)
                for r in rooms
            }
            # Every tab watching is on the survivor.
            tabs = {r: Recorder(await open_socket(session, survivor, r)) for r in rooms}
            await asyncio.gather(*(senders[r].send_str(send("Go on")) for r in rooms))
            shown = {r: await tabs[r].until(lambda m: len(m.text.split()) >= 15) for r in rooms}
            # A steady state to compare the survivor's pace with, after the kill.
            steady_from = time.monotonic()
            await asyncio.sleep(2)

            killed_at = time.monotonic()
            doomed.kill()
            saved = {r: reply_row(stack, r) for r in dead_rooms}

            # The dead process's replies: interrupted for the tabs, with their saved text.
            interrupted_after = []
            for r in dead_rooms:
                final = await tabs[r].until(lambda m: m.status != "streaming")
                arrived = next(t for t, m in tabs[r].updates if m.status != "streaming")
                interrupted_after.append(arrived - killed_at)
                pk, status, text = saved[r]
                assert status == "streaming", "still streaming in the row at the kill"
                assert (final.pk, final.status, final.text) == (pk, "interrupted", text.strip())
                assert full_text(count).startswith(text.strip())
                # Lost: at most what came after the last save (CHAT_SAVE_INTERVAL, 1 s).
                assert len(text.split()) >= len(shown[r].text.split()) - rate * 1.5
            assert max(interrupted_after) <= INTERRUPTED_WITHIN, interrupted_after

            # The survivor's replies were not disturbed: complete, in order, nothing lost.
            gaps_before, gaps_after = [], []
            for r in live_rooms:
                final = await tabs[r].until(lambda m: m.status != "streaming")
                assert (final.status, final.text) == ("complete", full_text(count))
                seqs = [m.seq for _, m in tabs[r].updates]
                assert seqs == sorted(set(seqs)), "no update twice, none out of order"
                texts = [m.text for _, m in tabs[r].updates]
                assert all(b.startswith(a) for a, b in pairwise(texts)), "no text lost"
                for (t1, _), (t2, _) in pairwise(tabs[r].updates):
                    if t1 >= steady_from:
                        (gaps_before if t2 < killed_at else gaps_after).append(t2 - t1)
                assert reply_row(stack, r)[1:] == ("complete", full_text(count) + " ")

            # The dead process's rooms take a new message at once, or Continue.
            model_server.queue(*(Reply("fresh answer.") for _ in dead_rooms))
            first, *others = dead_rooms
            pk = saved[first][0]
            await tabs[first].ws.send_str(action("continue", message=pk))
            await asyncio.gather(*(tabs[r].ws.send_str(send("Again")) for r in others))
            for r in dead_rooms:
                await tabs[r].until(lambda m: "fresh answer." in m.text and m.status != "streaming")
                assert tabs[r].last().status == "complete"
            assert reply_row(stack, first) == (pk, "complete", saved[first][2] + "fresh answer.")
            for tab in tabs.values():
                tab.task.cancel()
    with capsys.disabled():
        print(
            f"\nkill -9: interrupted shown after {min(interrupted_after):.2f}-"
            f"{max(interrupted_after):.2f} s; survivor update gap p99 "
            f"{p99(gaps_before) * 1000:.0f} ms before, {p99(gaps_after) * 1000:.0f} ms after"
        )


@pytest.mark.slow
async def test_rolling_restart_under_load(stack_of, model_server):
    grace = 1.0
    # Rooms 0-2 are answered by the first process, 3-5 by the second; room 1's
    # reply ends within the grace period, the others would not.
    lengths = [200, 10, 200, 400, 400, 400]
    with stack_of(CHAT_SHUTDOWN_GRACE=str(grace)) as stack:
        first, second = stack.servers
        async with browser_session() as session:
            rooms = [await create_room(session, first, f"Rolling {i}") for i in range(6)]
            # Two tabs per room, one on each process, as a load balancer spreads them.
            tabs = {
                r: [await Tab(session, stack, r).open(server) for server in (first, second)]
                for r in rooms
            }
            for i, (r, count) in enumerate(zip(rooms, lengths, strict=True)):
                model_server.queue(words_reply(count, 40))
                sender = tabs[r][0 if i < 3 else 1]
                await sender.ws.send_str(send("Talk"))
                await asyncio.to_thread(model_server.wait_for_requests, i + 1)

            await stop_with(first, signal.SIGTERM)
            first.start()
            # Ctrl-C in `make run` is SIGINT, handled the same way.
            await stop_with(second, signal.SIGINT)
            second.start()

            all_tabs = [tab for pair in tabs.values() for tab in pair]
            rows = await settled(stack, all_tabs)
            outcomes = []
            for r, count in zip(rooms, lengths, strict=True):
                ((pk, (status, text)),) = rows[r].items()
                outcomes.append(status)
                assert status in ("complete", "interrupted"), status
                if status == "complete":
                    assert text == full_text(count)
                else:
                    assert full_text(count).startswith(text) and len(text.split()) < count
            assert outcomes[1] == "complete", "a reply ending within the grace period completes"
            assert outcomes[0] == outcomes[2] == "interrupted"

            # Continue after a SIGTERM, on the other process.
            model_server.queue(Reply("the end."))
            (pk,) = rows[rooms[0]]
            await tabs[rooms[0]][1].ws.send_str(action("continue", message=pk))
            rows = await settled(stack, all_tabs, lambda rows: rows[rooms[0]][pk][0] == "complete")
            assert rows[rooms[0]][pk][1].endswith("the end.")
            for tab in all_tabs:
                tab.close()
