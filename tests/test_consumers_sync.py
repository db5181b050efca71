"""Catching up over the room websocket ("sync"): by room version, so a tab that was away
finds new messages and changes to the ones it has; by message, so a tab whose
streaming reply fell silent gets it whole; the throttle on a flood of syncs and the
notice for a malformed one; and the room's usage with a reply's final state."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY

from chat import broadcast, reply_stream, services
from chat.broadcast import reply_asks_group
from chat.models import Message
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import Page, messages_in, receive_until, reply_finished, room_version_in, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def frame(**fields: object) -> str:
    return json.dumps({**fields, "HEADERS": {}})


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room")


async def settle(tab) -> int:
    """The room version the tab holds once the room is quiet (what chat.js keeps)."""
    await replies_finished()
    version = room_version_in(await sync_state(tab, since=0))
    assert version is not None
    return version


async def sync_state(tab, *, since: int) -> str:
    await tab.send_to(text_data=frame(action="sync", since=since))
    return await tab.receive_from()


async def test_a_tab_away_during_an_edit_and_a_regenerate_finds_both(room, connect, model):
    model.queue(Reply("Rome."), Reply("Paris."), Reply("Paris, France."))
    away = await connect(f"/ws/chat/{room.pk}/")
    await away.send_to(text_data=frame(content="Capital of Italy?"))
    await receive_until(away, reply_finished)
    held = await settle(away)
    question, answer = [m.pk async for m in Message.objects.filter(room=room)]
    await away.disconnect()

    other = await connect(f"/ws/chat/{room.pk}/")
    await other.send_to(text_data=frame(action="edit", message=question, content="Of France?"))
    await receive_until(other, reply_finished)
    await replies_finished()
    await other.send_to(text_data=frame(action="regenerate"))
    await receive_until(other, lambda f: reply_finished(f) and "Paris, France." in f)
    await replies_finished()

    back = await connect(f"/ws/chat/{room.pk}/")
    page = Page()
    caught_up = page.feed(await sync_state(back, since=held))
    got = {m.pk: (m.status, m.text) for m in messages_in(caught_up)}
    # The same two messages, both changed: no new id, yet nothing missed.
    assert got == {question: ("complete", "Of France?"), answer: ("complete", "Paris, France.")}
    assert room_version_in(caught_up) > held


async def test_a_reset_room_is_shown_afresh_on_catching_up(room, connect, model):
    model.queue(Reply("Old answer."), Reply("New answer."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=frame(content="old question"))
    await receive_until(tab, reply_finished)
    held = await settle(tab)
    await tab.disconnect()

    await sync_to_async(services.room_update)(
        room=room, name=room.name, system_prompt="A new prompt"
    )
    other = await connect(f"/ws/chat/{room.pk}/")
    await other.send_to(text_data=frame(content="new question"))
    await receive_until(other, reply_finished)
    await replies_finished()

    back = await connect(f"/ws/chat/{room.pk}/")
    caught_up = await sync_state(back, since=held)
    assert '<div id="messages" hx-swap-oob="innerHTML">' in caught_up
    assert [m.text for m in messages_in(caught_up)] == ["new question", "New answer."]


async def test_the_final_state_carries_the_rooms_usage_once_for_every_tab(room, connect, model):
    model.queue(Reply("Counted."))
    tabs = [await connect(f"/ws/chat/{room.pk}/") for _ in range(2)]
    await tabs[0].send_to(text_data=frame(content="count me"))
    for tab in tabs:
        frames = await receive_until(tab, reply_finished)
        assert '<p id="room-usage"' in frames[-1] and "Room total: " in frames[-1]
        assert not any('id="room-usage"' in f for f in frames[:-1])


async def test_a_sync_for_a_streaming_reply_asks_its_process_for_a_whole_tail(
    room, room_factory, connect, message_factory
):
    """The page that asked then takes up the reply's stream from the next delta
    (chat.replies); another room's reply, or a finished one, is not asked for."""
    layer = get_channel_layer()
    other = await sync_to_async(room_factory)(name="Other")
    streaming, elsewhere, done = [
        await sync_to_async(message_factory)(
            where, "so far", role=Message.Role.ASSISTANT, status=status
        )
        for where, status in (
            (room, Message.Status.STREAMING),
            (other, Message.Status.STREAMING),
            (room, Message.Status.COMPLETE),
        )
    ]
    heard = {}
    for message in (streaming, elsewhere, done):
        heard[message.pk] = await layer.new_channel()
        await layer.group_add(reply_asks_group(message.pk), heard[message.pk])
    tab = await connect(f"/ws/chat/{room.pk}/")
    for message in (elsewhere, done, streaming):
        await tab.send_to(text_data=frame(action="sync", message=message.pk, seq=0))
    event = await asyncio.wait_for(layer.receive(heard[streaming.pk]), 5)
    assert event == {"type": "reply.asked", "seq": 0}
    for message in (elsewhere, done):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(heard[message.pk]), 0.3)


async def test_catch_up_sends_what_changed_since_the_pages_version(room, connect, message_factory):
    old = await sync_to_async(message_factory)(room, "seen already")
    missed = await sync_to_async(message_factory)(room, "missed while offline")
    for message in (old, missed):
        await sync_to_async(broadcast.room_version_bump)(room_id=room.pk, message_ids=[message.pk])
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"action": "sync", "since": 1}))
    frame = await tab.receive_from()
    assert [(m.pk, m.text) for m in messages_in(frame)] == [(missed.pk, "missed while offline")]
    assert room_version_in(frame) == 2
    # Nothing new: only the version.
    await tab.send_to(text_data=json.dumps({"action": "sync", "since": 2}))
    frame = await tab.receive_from()
    assert messages_in(frame) == [] and room_version_in(frame) == 2


def sync_one(message_id: int, seq: int) -> str:
    return json.dumps({"action": "sync", "message": message_id, "seq": seq})


async def test_a_dropped_final_update_is_repaired_by_asking_for_that_message(
    room, connect, model, monkeypatch
):
    """The layer delivers at most once: here the reply's final broadcast is dropped on
    purpose, and the tab, seeing its streaming message fall silent, asks for it."""
    real_send = reply_stream.room_send

    async def drop_the_final_update(*, room_id, html, key=None):
        if 'data-status="streaming"' in html["en"]:
            await real_send(room_id=room_id, html=html, key=key)

    monkeypatch.setattr(reply_stream, "room_send", drop_the_final_update)
    model.queue(Reply("The end never arrives live.", tokens_per_second=100))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("hi"))
    await replies_finished()
    frames = []
    while not await tab.receive_nothing(timeout=0.3):
        frames.append(await tab.receive_from())
    held = [m for f in frames for m in messages_in(f) if m.role == "assistant"][-1]
    assert held.status == "streaming", "the tab never heard the reply end"

    await tab.send_to(text_data=sync_one(held.pk, held.seq))
    (final,) = messages_in(await tab.receive_from())
    assert (final.pk, final.status) == (held.pk, "complete")
    assert final.text == "The end never arrives live." and final.seq > held.seq
    # Holding the newest version already, the tab is sent nothing.
    await tab.send_to(text_data=sync_one(final.pk, final.seq))
    assert await tab.receive_nothing(timeout=0.3)


async def test_asking_for_another_rooms_message_sends_nothing(
    room, room_factory, connect, message_factory
):
    elsewhere = await sync_to_async(message_factory)(await sync_to_async(room_factory)("Other"))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=sync_one(elsewhere.pk, 0))
    assert await tab.receive_nothing(timeout=0.3)


async def test_a_flood_of_sync_requests_is_throttled_per_socket(
    room, connect, message_factory, settings
):
    settings.CHAT_SYNC_BURST, settings.CHAT_SYNC_RATE = 3, 0.5
    await sync_to_async(message_factory)(room, "already there")
    flooder = await connect(f"/ws/chat/{room.pk}/")
    calm = await connect(f"/ws/chat/{room.pk}/")
    dropped_before = REGISTRY.get_sample_value("chat_syncs_dropped_total") or 0
    for _ in range(30):
        await flooder.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
    answered = 0
    while not await flooder.receive_nothing(timeout=0.3):
        await flooder.receive_from()
        answered += 1
    assert answered == 3, "a burst is answered, the rest dropped"
    dropped = REGISTRY.get_sample_value("chat_syncs_dropped_total") - dropped_before
    assert dropped >= 26, dropped  # 27, unless the bucket refilled one meanwhile
    # Another socket's allowance is its own.
    await calm.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
    assert [m.text for m in messages_in(await calm.receive_from())] == ["already there"]


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sync"},
        {"action": "sync", "message": 1},
        {"action": "sync", "message": "x", "seq": 1},
        {"action": "sync", "message": 1, "seq": -1},
    ],
)
async def test_malformed_sync_requests_get_a_notice(room, connect, frame):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps(frame))
    assert "the sync frame was malformed" in await tab.receive_from()
