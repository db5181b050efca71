"""Presence and typing over the room websocket, in process (real Redis, and without it).

Across processes and after a kill -9: tests/test_shared_live.py."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from chat import presence
from tests.wsutil import presence_in, receive_until, send, text_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

JOIN = json.dumps({"action": "join"})
TYPING = json.dumps({"action": "typing"})


def present(*names: str):
    """Done once a presence fragment lists exactly these names."""

    return lambda frame: presence_in(frame) == list(names)


@pytest.fixture
def bob(user_factory, room):
    bob = user_factory("bob", first_name="Bob", last_name="<b>Builder</b>")
    room.members.add(bob)
    return bob


@pytest.fixture
def room(room_factory):
    return room_factory(name="Shared")


async def test_people_appear_when_they_open_the_room_and_go_when_they_close_it(room, bob, connect):
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    await alice_tab.send_to(text_data=JOIN)
    await receive_until(alice_tab, present("alice"))

    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=JOIN)
    frames = await receive_until(alice_tab, present("alice", "Bob <b>Builder</b>"))
    # A display name is text, never markup.
    assert "&lt;b&gt;Builder&lt;/b&gt;" in frames[-1] and "<b>Builder" not in frames[-1]
    await receive_until(bob_tab, present("alice", "Bob <b>Builder</b>"))

    # A second tab of bob's: still one bob; closing one of them keeps him here.
    bob_second = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_second.send_to(text_data=JOIN)
    await receive_until(alice_tab, present("alice", "Bob <b>Builder</b>"))
    await bob_second.disconnect()
    await receive_until(alice_tab, present("alice", "Bob <b>Builder</b>"))
    await bob_tab.disconnect()
    await receive_until(alice_tab, present("alice"))


async def test_a_socket_that_never_joins_is_not_shown(room, bob, connect):
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    await alice_tab.send_to(text_data=JOIN)
    await receive_until(alice_tab, present("alice"))
    await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    assert await presence.presence_user_ids(room_id=room.pk) == [room.owner_id]


async def test_typing_reaches_the_others_at_most_once_per_interval(room, bob, connect, settings):
    settings.CHAT_TYPING_INTERVAL = 30  # longer than the test: every repeat is throttled
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    alice_second = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    for _ in range(5):
        await alice_tab.send_to(text_data=TYPING)
    frames = await receive_until(bob_tab, lambda f: "is typing" in f)
    assert text_of(frames[-1]) == "alice is typing…"
    assert f'id="typing-{room.owner_id}"' in frames[-1]
    # The four repeats were dropped on the server; alice's own tabs see none.
    assert await bob_tab.receive_nothing(timeout=0.3)
    assert await alice_second.receive_nothing(timeout=0.1)
    assert await alice_tab.receive_nothing(timeout=0.1)


async def test_typing_again_after_the_interval_is_sent_again(room, bob, connect, settings):
    settings.CHAT_TYPING_INTERVAL = 0.2
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=TYPING)
    await receive_until(bob_tab, lambda f: "is typing" in f)
    await asyncio.sleep(0.3)
    await alice_tab.send_to(text_data=TYPING)
    await receive_until(bob_tab, lambda f: "is typing" in f)


async def test_after_a_message_the_next_keystroke_is_news_again(room, bob, connect, settings):
    settings.CHAT_TYPING_INTERVAL = 30
    room.ai_answers = room.AiAnswers.MENTIONED  # people talking; no reply to wait for
    await sync_to_async(room.save)()
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=TYPING)
    await receive_until(bob_tab, lambda f: "is typing" in f)
    await alice_tab.send_to(text_data=send("shall we start?"))
    await receive_until(bob_tab, lambda f: "shall we start?" in f)
    await alice_tab.send_to(text_data=TYPING)
    frames = await receive_until(bob_tab, lambda f: "is typing" in f)
    assert text_of(frames[-1]) == "alice is typing…"


async def test_without_redis_presence_and_typing_work_in_one_process(room, bob, settings):
    settings.REDIS_URL = ""
    settings.CHAT_TYPING_INTERVAL = 30
    await presence.presence_join(room_id=room.pk, user_id=room.owner_id, channel="a")
    await presence.presence_join(room_id=room.pk, user_id=bob.pk, channel="b")
    assert await presence.presence_user_ids(room_id=room.pk) == [room.owner_id, bob.pk]
    html = await presence.presence_html(room_id=room.pk)
    assert "alice" in html["en"] and 'aria-label="지금 있는 사람"' in html["ko"]

    assert await presence.typing_hit(room_id=room.pk, user_id=bob.pk) is True
    assert await presence.typing_hit(room_id=room.pk, user_id=bob.pk) is False

    await presence.presence_leave(room_id=room.pk, user_id=bob.pk, channel="b")
    assert await presence.presence_user_ids(room_id=room.pk) == [room.owner_id]
    # An entry nobody refreshes expires.
    settings.CHAT_PRESENCE_TIMEOUT = 0
    assert await presence.presence_user_ids(room_id=room.pk) == []
    await presence.presence_leave(room_id=room.pk, user_id=room.owner_id, channel="a")


async def test_a_message_arriving_is_from_its_author(room, connect):
    # The page clears "is typing" when its author's message arrives (static/chat/presence.js).
    tab = await connect(f"/ws/chat/{room.pk}/")
    await sync_to_async(room.messages.create)(role="user", author=room.owner, content="x")
    await tab.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
    frames = await receive_until(tab, lambda f: "message-" in f)
    assert f'data-author="{room.owner_id}"' in frames[-1]


async def test_joining_twice_tells_the_room_once(room, bob, connect):
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=JOIN)
    await receive_until(alice_tab, present("Bob <b>Builder</b>"))
    await bob_tab.send_to(text_data=JOIN)
    await receive_until(bob_tab, lambda f: 'id="queue"' in f)
    await receive_until(bob_tab, lambda f: 'id="queue"' in f)
    assert await alice_tab.receive_nothing(timeout=0.3)
