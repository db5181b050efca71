"""Who may hold a room websocket, through the full ASGI stack on the real channels-redis
layer: the refusals and their close codes (signed out, not a member, an unknown room,
too many sockets, another site), members seeing the room live, and the tabs closed and
replies stopped when a member is removed or leaves or the room is deleted."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session

from chat import services
from chat.models import Message
from config.asgi import application
from tests.conftest import ORIGIN, replies_finished, session_cookie
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room", system_prompt="You are terse.")


async def refused_with(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Open a socket that must be refused; returns the close code.

    A refusal is accepted, then closed at once, with nothing of the room sent:
    closed before accept, the browser would see only 1006, and retry forever."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected, "accepted, so the page can tell why it is closed"
    close = await communicator.receive_output()
    assert close["type"] == "websocket.close", close
    return close["code"]


async def test_unknown_room_is_refused_with_a_clear_code(user):
    cookie = await sync_to_async(session_cookie)(user)
    assert await refused_with("/ws/chat/999/", [ORIGIN, cookie]) == 4404


async def test_anonymous_sockets_are_closed_as_signed_out(room):
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN]) == 4401


async def test_a_socket_of_a_logged_out_session_is_closed_as_signed_out(room, user):
    cookie = await sync_to_async(session_cookie)(user)
    # Logging out deletes the session the cookie names.
    await Session.objects.all().adelete()
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4401


async def test_a_non_member_is_refused_like_an_unknown_room(room, user_factory):
    mallory = await sync_to_async(user_factory)("mallory")
    cookie = await sync_to_async(session_cookie)(mallory)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4404


async def test_members_see_the_room_live(room, connect, model, user_factory):
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    model.queue(Reply("A reply both of you see.", tokens_per_second=50))
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=send("Bob asks"))
    for tab in (alice_tab, bob_tab):
        frames = await receive_until(tab, reply_finished)
        shown = [m for f in frames for m in messages_in(f)]
        assert '<span class="message__author">bob</span>' in shown[0].html
        assert shown[-1].text == "A reply both of you see."


async def test_a_removed_member_is_disconnected_at_once(room, connect, user_factory):
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)

    await sync_to_async(services.room_member_remove)(room=room, user_id=bob.pk)

    assert await bob_tab.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    assert await alice_tab.receive_nothing(timeout=0.3)
    cookie = await sync_to_async(session_cookie)(bob)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4404


async def test_connections_per_user_are_bounded(room, connect, user, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    await connect(f"/ws/chat/{room.pk}/")
    second = await connect(f"/ws/chat/{room.pk}/")
    cookie = await sync_to_async(session_cookie)(user)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4429
    await second.disconnect()
    assert await connect(f"/ws/chat/{room.pk}/"), "a closed socket frees its place"


async def test_cross_site_handshake_is_refused(room):
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{room.pk}/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_member_who_leaves_has_their_tabs_closed_and_their_questions_cancelled(
    room, connect, user_factory, model
):
    model.queue(Reply("slow " * 40, tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("first"))
    await receive_until(bob_tab, lambda f: any(m.role == "assistant" for m in messages_in(f)))
    await bob_tab.send_to(text_data=send("bob's question"))
    await receive_until(alice_tab, lambda f: 'id="queue"' in f and "bob&#x27;s question" in f)

    await sync_to_async(services.room_leave)(room=room, user=bob)
    while (output := await bob_tab.receive_output(timeout=5))["type"] != "websocket.close":
        pass
    assert output["code"] == 4404
    emptied = await receive_until(alice_tab, lambda f: 'id="queue"' in f and "bob" not in f)
    assert "Queued" not in emptied[-1]
    # Alice's reply goes on.
    await receive_until(alice_tab, reply_finished)
    assert not await Message.objects.filter(room=room, status="queued").aexists()


async def test_deleting_a_room_stops_its_reply_and_closes_every_tab(
    room, connect, user_factory, model
):
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("go on"))
    # Its first words: the model is streaming.
    await receive_until(
        bob_tab, lambda f: any(m.text for m in messages_in(f) if m.role == "assistant")
    )
    room_id = room.pk

    await sync_to_async(services.room_delete)(room=room)
    for tab in (alice_tab, bob_tab):
        while (output := await tab.receive_output(timeout=5))["type"] != "websocket.close":
            pass
        assert output["code"] == 4404
    await replies_finished(within=5)
    assert len(model.requests) == 1
    assert not await Message.objects.filter(room_id=room_id).aexists()
    cookie = await sync_to_async(session_cookie)(bob)
    assert await refused_with(f"/ws/chat/{room_id}/", [ORIGIN, cookie]) == 4404


async def test_leaving_stops_the_reply_to_the_leavers_question(room, connect, user_factory, model):
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=send("bob asks"))
    # Under way (its Stop listener is up once text flows).
    await receive_until(
        alice_tab, lambda f: any(m.role == "assistant" and m.text for m in messages_in(f))
    )

    await sync_to_async(services.room_leave)(room=room, user=bob)
    final = await receive_until(alice_tab, reply_finished)
    assert [m.status for m in messages_in(final[-1]) if m.role == "assistant"] == ["stopped"]
