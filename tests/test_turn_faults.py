"""A turn's faults against real processes: daphne, Redis and the tests' model server.

Each test breaks one step of a turn (chat.faults names them; CHAT_FAULT_POINT
makes one fail once per process), stops Redis as a question is claimed, or
makes the embedding server fail, and checks that the turn ends with its reason
and that the room takes a new message at once.
"""

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from chat.faults import STEPS
from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import browser_session, create_room, frames_until, open_socket, running_stack
from tests.servers import RedisServer
from tests.wsutil import messages_in, reply_finished, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# A room takes a new message this soon after a fault.
FREE_WITHIN = 3.0
SLOW = Reply(chunks=tuple(f"s{i} " for i in range(30)), tokens_per_second=30)


def last_reply(frames: list[str]):
    return [m for f in frames for m in messages_in(f) if m.role == "assistant"][-1]


def one_process(directory: Path, *, redis_url: str, model_url: str, **settings: str):
    """One daphne, saving a streaming reply four times a second."""
    return running_stack(
        directory,
        redis_url=redis_url,
        model_url=model_url,
        processes=1,
        CHAT_SAVE_INTERVAL="0.25",
        **settings,
    )


async def answered_at_once(tab, text: str, model_server: FakeOpenAI) -> None:
    """The room takes a new message and answers it within FREE_WITHIN seconds."""
    model_server.queue(Reply(text))
    started = time.monotonic()
    await tab.send_str(send("and now?"))
    frames = await frames_until(tab, lambda f: reply_finished(f) and text in f, within=FREE_WITHIN)
    assert last_reply(frames).status == "complete"
    assert time.monotonic() - started < FREE_WITHIN


@pytest.mark.parametrize("step", STEPS)
async def test_a_step_that_raises_ends_the_turn_and_frees_the_room(
    tmp_path, redis_url, model_server, step
):
    with one_process(
        tmp_path,
        redis_url=redis_url,
        model_url=model_server.base_url,
        CHAT_FAULT_POINT=step,
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, f"Fault at {step}")
            tab = await open_socket(session, server, room_id)
            model_server.queue(SLOW, *([Reply("the queued one")] if step == "advance" else []))
            await tab.send_str(send("first"))
            if step == "claim":
                frames = await frames_until(tab, lambda f: 'id="composer-answer"' in f)
                assert "Something went wrong on the server, so nothing was saved." in frames[-1]
                assert stack.messages(room_id) == [], "nothing half-saved"
                model_server.reset()
            else:
                if step == "advance":
                    await frames_until(tab, lambda f: "s3" in f)
                    await tab.send_str(send("second"))  # waits behind the first
                frames = await frames_until(tab, reply_finished)
                outcome = (last_reply(frames).status, "went wrong" in frames[-1])
                if step in ("history", "rag", "model"):
                    assert outcome == ("error", True), outcome
                    assert "Retry" in frames[-1]
                    assert model_server.requests == [], "failed before the model was called"
                    model_server.reset()
                else:
                    # Saved at the next try, ended at the next try, or started by the watchdog.
                    assert outcome == ("complete", False), outcome
                if step == "advance":
                    frames = await frames_until(
                        tab, lambda f: reply_finished(f) and "the queued one" in f
                    )
            await answered_at_once(tab, f"free after {step}", model_server)
        rows = stack.messages(room_id)
        assert not [row for row in rows if row[1] == "streaming"], rows
        if step == "save":
            assert ("assistant", "complete", "".join(SLOW.deltas())) in rows


@pytest.mark.parametrize("failure", ["500", "timeout"])
async def test_a_failing_embedding_server_ends_a_bang_question_with_its_reason(
    tmp_path, redis_url, model_server, failure
):
    with one_process(
        tmp_path,
        redis_url=redis_url,
        model_url=model_server.base_url,
        OPENAI_TIMEOUT="1",
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, "Embeddings down")
            tab = await open_socket(session, server, room_id)
            if failure == "500":
                model_server.embeddings_status = 500
            else:
                model_server.embeddings_delay = 3
            await tab.send_str(send("!퇴직금의 소득 구분은?"))
            frames = await frames_until(tab, reply_finished, within=10)
            assert last_reply(frames).status == "error"
            assert "The embedding request failed." in frames[-1]
            assert model_server.requests == [], "no answer made up without its documents"
            model_server.embeddings_status, model_server.embeddings_delay = 200, 0
            await answered_at_once(tab, "free again", model_server)
        assert stack.messages(room_id)[1][:2] == ("assistant", "error")


async def test_redis_stopped_as_a_queued_question_is_claimed(tmp_path, model_server):
    redis = RedisServer().start()
    try:
        with one_process(tmp_path, redis_url=redis.url, model_url=model_server.base_url) as stack:
            (server,) = stack.servers
            async with browser_session() as session:
                room_id = await create_room(session, server, "Redis at the claim")
                tab = await open_socket(session, server, room_id)
                model_server.queue(
                    Reply(chunks=tuple(f"a{i} " for i in range(30)), tokens_per_second=15),
                    Reply("the queued answer"),
                )
                await tab.send_str(send("first"))
                await frames_until(tab, lambda f: "a5" in f)
                await tab.send_str(send("queued"))
                # The first reply ends about a second after this, with Redis away:
                # the queued question is claimed and started without it.
                await frames_until(tab, lambda f: "a20" in f)
                redis.stop()
                await asyncio.sleep(2)
                redis.start()
                back = time.monotonic()
                for _ in range(100):
                    rows = stack.messages(room_id)
                    if rows[-1] == ("assistant", "complete", "the queued answer"):
                        break
                    await asyncio.sleep(0.1)
                assert rows[-1] == ("assistant", "complete", "the queued answer"), rows
                assert time.monotonic() - back < 10
                assert [row[1] for row in rows] == ["complete"] * 4

                # The room is not stuck: a new tab sends, and is answered.
                for _ in range(50):
                    with contextlib.suppress(Exception):
                        tab = await open_socket(session, server, room_id)
                        break
                    await asyncio.sleep(0.2)
                await answered_at_once(tab, "after the outage", model_server)
    finally:
        redis.stop()


async def test_the_database_refusing_a_periodic_save_does_not_stop_the_reply(
    tmp_path, redis_url, model_server
):
    words = tuple(f"d{i} " for i in range(150))
    with one_process(tmp_path, redis_url=redis_url, model_url=model_server.base_url) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, "Database busy")
            tab = await open_socket(session, server, room_id)
            model_server.queue(Reply(chunks=words, tokens_per_second=25))
            await tab.send_str(send("a long one"))
            await frames_until(tab, lambda f: "d10" in f)
            # Another connection holds SQLite's write lock past the server's busy
            # timeout (5 s): the periodic save in between fails with "database is locked".
            holder = sqlite3.connect(stack.database, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            await asyncio.sleep(5.5)
            holder.execute("ROLLBACK")
            holder.close()
            frames = await frames_until(tab, reply_finished, within=20)
            assert (last_reply(frames).status, last_reply(frames).text) == (
                "complete",
                "".join(words).strip(),
            )
        assert stack.messages(room_id)[-1] == ("assistant", "complete", "".join(words))
        assert "saving reply" in server.output() and "trying again" in server.output()
