"""The live room list: /ws/rooms/ (in process, real Redis)."""

import json
import re

import pytest
from asgiref.sync import sync_to_async

from chat import selectors, services
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import receive_until, send, text_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def card_of(room_id: int):
    """Done once a frame carries this room's card."""
    return lambda frame: f'id="room-card-{room_id}"' in frame


def unread(frame: str) -> int:
    match = re.search(r'class="room-card__unread">(\d+) unread', frame)
    return int(match[1]) if match else 0


@pytest.fixture
def bob(user_factory):
    return user_factory("bob")


@pytest.fixture
def shared(room_factory, bob):
    room = room_factory(name="Shared")
    room.members.add(bob)
    return room


async def test_a_message_sends_the_room_to_the_top_of_each_list_with_its_unread_count(
    shared, bob, room_factory, connect, model
):
    model.queue(Reply("slow " * 20, tokens_per_second=40))
    others = await sync_to_async(room_factory)(name="Alice alone")
    bob_list = await connect("/ws/rooms/", as_user=bob)
    alice_list = await connect("/ws/rooms/")
    alice_room = await connect(f"/ws/chat/{shared.pk}/")
    await alice_room.send_to(text_data=json.dumps({"action": "join"}))

    await alice_room.send_to(text_data=send("Anyone here?"))
    frames = await receive_until(bob_list, card_of(shared.pk))
    assert 'hx-swap-oob="afterbegin:#room-list"' in frames[-1], "it goes to the top"
    assert "Shared" in frames[-1] and "Replying…" in frames[-1], "a badge while it replies"
    await replies_finished()
    # Bob has not opened it: alice's message and the reply count.
    frames = await receive_until(bob_list, lambda f: card_of(shared.pk)(f) and "Replying" not in f)
    assert unread(frames[-1]) == 2
    # Alice has it open, so nothing is unread for her; her own message never is.
    frames = await receive_until(
        alice_list, lambda f: card_of(shared.pk)(f) and "Replying" not in f
    )
    assert unread(frames[-1]) == 0
    # Someone else's room never reaches bob.
    await sync_to_async(services.room_update)(room=others, name="Renamed", system_prompt="")
    assert await bob_list.receive_nothing(timeout=0.3)


async def test_unread_counts_since_the_user_last_had_the_room_open(shared, bob, message_factory):
    await sync_to_async(message_factory)(shared, "before", author=shared.owner)
    await sync_to_async(services.room_read_mark)(room_id=shared.pk, user_id=bob.pk)
    await sync_to_async(message_factory)(shared, "after 1", author=shared.owner)
    await sync_to_async(message_factory)(shared, "after 2", author=shared.owner)
    await sync_to_async(message_factory)(shared, "bob's own", author=bob)

    @sync_to_async
    def counts():
        return {room.name: room.unread for room in selectors.room_list(user=bob)}, {
            room.name: room.unread for room in selectors.room_list(user=shared.owner)
        }

    for_bob, for_alice = await counts()
    assert for_bob == {"Shared": 2}
    assert for_alice == {"Shared": 1}, "alice never opened it: bob's message is unread"


async def test_leaving_and_deleting_take_the_card_away(shared, bob, connect):
    bob_list = await connect("/ws/rooms/", as_user=bob)
    alice_list = await connect("/ws/rooms/")
    await sync_to_async(services.room_leave)(room=shared, user=bob)
    frames = await receive_until(bob_list, card_of(shared.pk))
    assert f'<li id="room-card-{shared.pk}" hx-swap-oob="delete"></li>' in frames[-1]

    room_id = shared.pk
    await sync_to_async(services.room_delete)(room=shared)
    frames = await receive_until(alice_list, lambda f: "delete" in f and card_of(room_id)(f))
    assert text_of(frames[-1]) == ""


async def test_the_list_socket_needs_a_login(connect):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from tests.conftest import ORIGIN

    anonymous = WebsocketCommunicator(application, "/ws/rooms/", headers=[ORIGIN])
    # Accepted, then closed: the page can tell why, and does not retry.
    assert await anonymous.connect() == (True, None)
    assert await anonymous.receive_output() == {"type": "websocket.close", "code": 4401}
