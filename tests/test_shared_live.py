"""Shared rooms across two real daphne processes: presence after a kill -9, and
a queued question that outlives the process that was answering before it."""

import json
from collections.abc import Iterator

import aiohttp
import pytest
from yarl import URL

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    Stack,
    browser_session,
    create_room,
    frames_until,
    open_socket,
    running_stack,
    sign_up,
)
from tests.servers import DaphneServer
from tests.wsutil import messages_in, presence_in

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PRESENCE_TIMEOUT = 2.0
STALE_AFTER = 2.0
SETTINGS = {
    "CHAT_PRESENCE_TIMEOUT": str(PRESENCE_TIMEOUT),
    "CHAT_SAVE_INTERVAL": "0.25",
    "CHAT_STALE_AFTER": str(STALE_AFTER),
}
JOIN = json.dumps({"action": "join"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    # Each test kills one of the first two; the third survives both.
    with running_stack(
        tmp_path_factory.mktemp("shared"),
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=3,
        **SETTINGS,
    ) as stack:
        yield stack


async def shared_room(
    alice: aiohttp.ClientSession, bob: aiohttp.ClientSession, server: DaphneServer
) -> tuple[int, str, str]:
    """A room of alice's shared with bob; returns it and their names."""
    alice_name = await sign_up(alice, server)
    bob_name = await sign_up(bob, server)
    room_id = await create_room(alice, server, "Across processes")
    # The edit page gives the CSRF cookie; its Share form posts here.
    edit = f"{server.http_url}/chat/{room_id}/edit/"
    async with alice.get(edit) as page:
        assert page.status == 200
    token = alice.cookie_jar.filter_cookies(URL(server.http_url))["csrftoken"].value
    async with alice.post(
        f"{server.http_url}/chat/{room_id}/members/",
        data={"username": bob_name, "csrfmiddlewaretoken": token},
        headers={"Referer": edit, "HX-Request": "true"},
    ) as shared:
        assert shared.status == 200
    return room_id, alice_name, bob_name


def showing(*names: str):
    return lambda frame: presence_in(frame) == sorted(names, key=str.casefold)


async def test_presence_spans_processes_and_a_killed_process_s_sockets_expire(stack):
    doomed, _, survivor = stack.servers
    async with browser_session() as alice, browser_session() as bob:
        room_id, alice_name, bob_name = await shared_room(alice, bob, survivor)
        watcher = await open_socket(alice, survivor, room_id)
        await watcher.send_str(JOIN)
        await frames_until(watcher, showing(alice_name))

        bob_socket = await open_socket(bob, doomed, room_id)
        await bob_socket.send_str(JOIN)
        await frames_until(watcher, showing(alice_name, bob_name))
        await frames_until(bob_socket, showing(alice_name, bob_name))
        # Closing the last tab: gone at once.
        await bob_socket.close()
        await frames_until(watcher, showing(alice_name))

        bob_socket = await open_socket(bob, doomed, room_id)
        await bob_socket.send_str(JOIN)
        await frames_until(watcher, showing(alice_name, bob_name))
        doomed.kill()
        # The surviving process notices the dead one's sockets expire.
        await frames_until(watcher, showing(alice_name), within=15)


async def test_a_queued_question_is_answered_after_its_process_dies(stack, model_server):
    _, doomed, survivor = stack.servers
    model_server.queue(
        Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40),
        Reply("Answered after the crash."),
    )
    async with browser_session() as alice, browser_session() as bob:
        room_id, _, _ = await shared_room(alice, bob, survivor)
        asker = await open_socket(alice, doomed, room_id)
        watcher = await open_socket(bob, survivor, room_id)
        await asker.send_str(json.dumps({"content": "Write a lot"}))
        # Under way on the doomed process: the reply's tail has text.
        await frames_until(watcher, lambda f: 'class="message__tail"><p>w' in f)
        await watcher.send_str(json.dumps({"content": "And then this?"}))
        await frames_until(watcher, lambda f: 'id="queue"' in f and "And then this?" in f)

        doomed.kill()

        frames = await frames_until(
            watcher,
            lambda f: (
                any(m.text == "Answered after the crash." for m in messages_in(f))
                and "complete" in f
            ),
            within=30,
        )
        assert frames
        rows = stack.messages(room_id)
        assert [(role, status) for role, status, _ in rows] == [
            ("user", "complete"),
            ("assistant", "interrupted"),
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert rows[2][2] == "And then this?"
