"""Real daphne processes sharing one Redis and one database."""

import json
from collections.abc import Iterator

import pytest

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    Stack,
    browser_session,
    create_room,
    frames_until,
    open_socket,
    running_stack,
)
from tests.wsutil import messages_in, reply_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("integration"), redis_url=redis_url, model_url=model_server.base_url
    ) as stack:
        yield stack


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
    assert stack.messages(room_id) == [
        ("user", "complete", "across processes"),
        ("assistant", "complete", text),
    ]


@pytest.mark.slow
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
