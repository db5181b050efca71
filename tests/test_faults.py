"""Replies that survive: real daphne processes, killed, stopped, reloaded and cut off.

Each test checks the rows left in the database, and that no more is lost than the
stated bound: a crash loses at most CHAT_SAVE_INTERVAL of tokens.
"""

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from itertools import pairwise

import aiohttp
import pytest

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    Stack,
    browser_session,
    cookie_header,
    create_room,
    frames_until,
    open_socket,
    running_stack,
    stalled_client,
)
from tests.servers import RedisServer
from tests.wsutil import messages_in, reply_finished, room_version_in, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SAVE_INTERVAL = 0.25
# The guarantee: a crash or a reload loses at most about a second of tokens.
LOSS_BOUND = 1.0
STALE_AFTER = 2.0
FAST_RECOVERY = {"CHAT_SAVE_INTERVAL": str(SAVE_INTERVAL), "CHAT_STALE_AFTER": str(STALE_AFTER)}
WORDS = [f"w{i}" for i in range(200)]


def words_reply(rate: float) -> Reply:
    return Reply(chunks=tuple(f"{w} " for w in WORDS), tokens_per_second=rate)


def reply_text(frame: str) -> str | None:
    replies = [m for m in messages_in(frame) if m.role == "assistant"]
    return replies[-1].text if replies else None


def streamed(at_least: int):
    """Done once an assistant update shows at least this many words."""
    return lambda frame: len((reply_text(frame) or "").split()) >= at_least


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("faults"),
        redis_url=redis_url,
        model_url=model_server.base_url,
        **FAST_RECOVERY,
    ) as stack:
        yield stack


@pytest.mark.slow
async def test_kill_9_mid_reply_loses_at_most_one_save_interval(tmp_path, redis_url, model_server):
    rate = 20.0
    model_server.queue(words_reply(rate), Reply("A fresh answer."))
    with running_stack(
        tmp_path, redis_url=redis_url, model_url=model_server.base_url, **FAST_RECOVERY
    ) as stack:
        doomed, survivor = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, doomed, "Crash")
            sender = await open_socket(session, doomed, room_id)
            watcher = await open_socket(session, survivor, room_id)
            await sender.send_str(send("Write a lot"))
            frames = await frames_until(watcher, streamed(30))
            shown_before_kill = reply_text(frames[-1]).split()

            doomed.kill()

            # Right after the crash the row still says streaming, with the text
            # saved at most one save interval (plus one update) before the kill.
            ((status, saved),) = stack.rows(
                "select status, content from chat_message where role = 'assistant'"
            )
            assert status == "streaming"
            saved_words = saved.split()
            assert saved_words == WORDS[: len(saved_words)]
            assert len(saved_words) >= len(shown_before_kill) - rate * LOSS_BOUND

            # The survivor's watchdog marks it interrupted and tells the open tab.
            frames = await frames_until(watcher, reply_finished, within=STALE_AFTER * 4)
            final = [m for m in messages_in(frames[-1]) if m.role == "assistant"][-1]
            assert final.status == "interrupted"
            assert final.text.split() == saved_words
            assert stack.messages(room_id) == [
                ("user", "complete", "Write a lot"),
                ("assistant", "interrupted", saved),
            ]

            # The user can regenerate it, on the surviving process.
            await watcher.send_str(json.dumps({"action": "regenerate"}))
            frames = await frames_until(watcher, reply_finished)
            assert reply_text(frames[-1]) == "A fresh answer."
            assert stack.messages(room_id)[-1] == ("assistant", "complete", "A fresh answer.")


async def test_stop_from_a_tab_on_another_process(stack, model_server):
    generating, other = stack.servers
    model_server.queue(words_reply(40))
    async with browser_session() as session:
        room_id = await create_room(session, generating, "Stop across processes")
        sender = await open_socket(session, generating, room_id)
        stopper = await open_socket(session, other, room_id)
        await sender.send_str(send("Go on and on"))
        frames = await frames_until(stopper, streamed(10))
        reply_id = messages_in(frames[-1])[-1].pk

        await stopper.send_str(json.dumps({"action": "stop", "message": str(reply_id)}))
        for tab in (stopper, sender):
            frames = await frames_until(tab, reply_finished)
            final = messages_in(frames[-1])[-1]
            assert (final.pk, final.status) == (reply_id, "stopped")
        # Stop has no other path than the reply's group: had the signal not
        # reached the other process, this reply would have ended "complete".
        kept = final.text
        assert 10 <= len(kept.split()) < len(WORDS)
        assert stack.messages(room_id) == [
            ("user", "complete", "Go on and on"),
            ("assistant", "stopped", kept + " "),
        ]
        # Stopping frees the room at once.
        model_server.queue(Reply("Next answer."))
        await stopper.send_str(send("Next"))
        frames = await frames_until(stopper, reply_finished)
        assert reply_text(frames[-1]) == "Next answer."


async def test_reload_mid_reply_shows_the_text_so_far_then_the_rest(stack, model_server):
    first, second = stack.servers
    model_server.queue(words_reply(40))
    async with browser_session() as session:
        room_id = await create_room(session, first, "Reload")
        sender = await open_socket(session, first, room_id)
        await sender.send_str(send("Long answer please"))
        await frames_until(sender, streamed(30))

        # A reload: the page, then its socket and the catch-up frame chat.js sends.
        async with session.get(f"{second.http_url}/chat/{room_id}/") as response:
            page = await response.text()
        reply_id = int(re.findall(r'data-pk="(\d+)"', page)[-1])
        on_page = messages_in(page)[-1]
        assert on_page.status == "streaming"
        assert len(on_page.text.split()) >= 30 - 40 * LOSS_BOUND
        tab = await open_socket(session, second, room_id)
        await tab.send_str(json.dumps({"action": "sync", "since": room_version_in(page)}))
        frames = await frames_until(tab, reply_finished)

        updates = [m for f in frames for m in messages_in(f) if m.pk == reply_id]
        seqs = [u.seq for u in updates]
        assert seqs == sorted(set(seqs)), "no update twice, none out of order"
        texts = [on_page.text] + [u.text for u in updates]
        assert all(b.startswith(a) for a, b in pairwise(texts)), "no gaps"
        assert texts[-1] == " ".join(WORDS)
    assert stack.messages(room_id)[-1] == ("assistant", "complete", " ".join(WORDS) + " ")


async def test_reconnect_catches_up_on_what_was_missed(stack, model_server):
    first, second = stack.servers
    model_server.queue(Reply("seen live"), Reply("answered while away"))
    async with browser_session() as session:
        room_id = await create_room(session, first, "Reconnect")
        tab = await open_socket(session, first, room_id)
        other = await open_socket(session, second, room_id)
        await tab.send_str(send("first"))
        frames = await frames_until(tab, reply_finished)
        # What chat.js holds: the version of the last change it saw.
        last_seen = max(m.version for f in frames for m in messages_in(f))
        await tab.close()  # the network drops

        await other.send_str(send("while you were away"))
        await frames_until(other, lambda f: reply_finished(f) and "while away" in f)

        tab = await open_socket(session, second, room_id)
        await tab.send_str(json.dumps({"action": "sync", "since": last_seen}))
        missed = messages_in(await tab.receive_str(timeout=5))
        assert [(m.role, m.status, m.text) for m in missed] == [
            ("user", "complete", "while you were away"),
            ("assistant", "complete", "answered while away"),
        ]


async def test_two_tabs_sending_at_the_same_moment_are_answered_one_after_the_other(
    stack, model_server
):
    """Both messages are saved; one is answered while the other waits its turn, on
    whichever process, and the replies never interleave."""
    first, second = stack.servers
    model_server.queue(
        Reply("first answer", tokens_per_second=20), Reply("second answer", tokens_per_second=20)
    )
    async with browser_session() as session:
        room_id = await create_room(session, first, "Same moment")
        tab1 = await open_socket(session, first, room_id)
        tab2 = await open_socket(session, second, room_id)
        await asyncio.gather(tab1.send_str(send("from tab 1")), tab2.send_str(send("from tab 2")))
        for _ in range(150):
            rows = stack.messages(room_id)
            if [row[1] for row in rows] == ["complete"] * 4:
                break
            await asyncio.sleep(0.1)

    assert [(role, status) for role, status, _ in rows] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ], rows
    assert {rows[0][2], rows[2][2]} == {"from tab 1", "from tab 2"}
    assert (rows[1][2], rows[3][2]) == ("first answer", "second answer")


@pytest.mark.slow
async def test_redis_restart_mid_session(tmp_path, model_server):
    redis = RedisServer().start()
    try:
        model_server.queue(words_reply(40), Reply("after the restart"))
        with running_stack(
            tmp_path,
            redis_url=redis.url,
            model_url=model_server.base_url,
            processes=1,
            **FAST_RECOVERY,
        ) as stack:
            (server,) = stack.servers
            async with browser_session() as session:
                room_id = await create_room(session, server, "Redis restart")
                tab = await open_socket(session, server, room_id)
                await tab.send_str(send("talk"))
                await frames_until(tab, streamed(5))

                redis.stop()
                # The reply goes on without the layer and is saved in full.
                for _ in range(100):
                    if stack.messages(room_id)[-1][1] != "streaming":
                        break
                    await asyncio.sleep(0.1)
                assert stack.messages(room_id)[-1] == (
                    "assistant",
                    "complete",
                    " ".join(WORDS) + " ",
                )
                # The open tab lost its live feed, so the server closed it with a
                # code the page retries, rather than leaving it silent.
                closing = await tab.receive(timeout=10)
                while closing.type == aiohttp.WSMsgType.TEXT:
                    closing = await tab.receive(timeout=10)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert tab.close_code in (1006, 1011, 1012, 1013), tab.close_code

                redis.start()
                # The same server process serves new connections and replies, and
                # the reconnected tab converges to what was saved.
                tab = await reconnect(session, server, room_id)
                await tab.send_str(json.dumps({"action": "sync", "since": 0}))
                caught_up = messages_in(await tab.receive_str(timeout=5))
                assert (caught_up[-1].status, caught_up[-1].text) == ("complete", " ".join(WORDS))
                await tab.send_str(send("still there?"))
                frames = await frames_until(tab, reply_finished)
                assert reply_text(frames[-1]) == "after the restart"
    finally:
        redis.stop()


async def reconnect(session, server, room_id, attempts: int = 50):
    """What the page does: retry until the server accepts and stays up."""
    for _ in range(attempts):
        try:
            ws = await open_socket(session, server, room_id)
            await ws.send_str(json.dumps({"action": "sync", "since": 0}))
            await ws.receive_str(timeout=2)
            return ws
        except (aiohttp.ClientError, TypeError, TimeoutError):
            await asyncio.sleep(0.2)
    raise AssertionError("the server never accepted a connection again")


@pytest.mark.slow
async def test_a_stalled_client_is_dropped_and_slows_no_one(tmp_path, redis_url, model_server):
    rate, words = 50, 150
    model_server.queue(Reply(chunks=tuple(f"{w} " for w in WORDS[:words]), tokens_per_second=rate))
    with running_stack(
        tmp_path,
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=1,
        daphne_args=("--ping-interval", "1", "--ping-timeout", "2"),
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, "Stalled")
            stalled = stalled_client(server, room_id, cookie_header(session, server))
            tab = await open_socket(session, server, room_id)
            started = time.monotonic()
            await tab.send_str(send("a long one"))
            frames = await frames_until(tab, reply_finished, within=30)
            elapsed = time.monotonic() - started

            # The healthy tab got every update in about the time the model took.
            assert reply_text(frames[-1]) == " ".join(WORDS[:words])
            seqs = [m.seq for f in frames for m in messages_in(f) if m.role == "assistant"]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert elapsed < words / rate * 1.5 + 3, "the stalled client held the room back"

            # The stalled one could not answer the server's pings, so it was dropped.
            deadline = time.monotonic() + 8
            while not stalled_closed(stalled):
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                await asyncio.sleep(0.2)
            stalled.close()

            # And it can resume: a new connection catches up on the whole reply.
            tab = await open_socket(session, server, room_id)
            await tab.send_str(json.dumps({"action": "sync", "since": 0}))
            caught_up = messages_in(await tab.receive_str(timeout=5))
            assert caught_up[-1].status == "complete"
            assert caught_up[-1].text == " ".join(WORDS[:words])


def stalled_closed(sock: socket.socket) -> bool:
    """True once the server has closed the connection: reading finds its end."""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(1 << 20):
            del chunk
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True
