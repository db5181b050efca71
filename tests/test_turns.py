"""Turns in process, against the tests' model server and a real Redis: the supervisor,
its steps and faults, Stop from the first moment, authority at the moment of the
action, and the watchdog (chat.turns, chat.replies)."""

import asyncio
from datetime import timedelta
from itertools import pairwise

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from chat import services
from chat.broadcast import room_group
from chat.models import Message
from chat.turns import actions, refusals, watchdog
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import messages_in


async def listen(room_id: int) -> str:
    """A channel in the room's group, as a tab's consumer would have."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room_group(room_id), channel)
    return channel


async def next_html(channel: str) -> str:
    event = await asyncio.wait_for(get_channel_layer().receive(channel), 5)
    assert event["type"] == "chat.message"
    return event["html"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_recovery_marks_only_stale_streaming_replies_interrupted(room_factory, settings):
    room = await sync_to_async(room_factory)()
    stale = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", content="half"
    )
    await Message.objects.filter(pk=stale.pk).aupdate(
        updated_at=timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER + 1)
    )
    other_room = await sync_to_async(room_factory)()
    fresh = await Message.objects.acreate(room=other_room, role="assistant", status="streaming")

    assert await watchdog.turns_recover(room_id=room.pk) == 1
    assert await watchdog.turns_recover(room_id=room.pk) == 0, "recovery is idempotent"
    await stale.arefresh_from_db()
    await fresh.arefresh_from_db()
    assert (stale.status, stale.content) == ("interrupted", "half")
    assert stale.error
    assert await watchdog.turns_recover(room_id=other_room.pk) == 0
    assert fresh.status == "streaming"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_second_turn_while_replying_is_queued_and_answered_next(room_factory, model):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("one two three four five six", tokens_per_second=20), Reply("Next."))
    await actions.message_send(room_id=room.pk, author=room.owner, content="first")
    second = await actions.message_send(room_id=room.pk, author=room.owner, content="second")
    assert second.status == "queued"
    await replies_finished()
    await replies_finished()
    assert [
        m async for m in Message.objects.filter(room=room).values_list("content", "status")
    ] == [
        ("first", "complete"),
        ("one two three four five six", "complete"),
        ("second", "complete"),
        ("Next.", "complete"),
    ]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_updates_are_coalesced_and_carry_the_whole_text(room_factory, model, settings):
    settings.CHAT_STREAM_INTERVAL = 0.1
    room = await sync_to_async(room_factory)()
    chunks = tuple(f"w{i} " for i in range(60))
    model.queue(Reply(chunks=chunks, tokens_per_second=200))  # ~0.3 s of tokens
    channel = await listen(room.pk)
    await actions.message_send(room_id=room.pk, author=room.owner, content="go")

    updates = []
    while not updates or updates[-1].status == "streaming":
        updates += [m for m in messages_in(await next_html(channel)) if m.role == "assistant"]
    # 60 tokens in ~0.3 s at one update per 0.1 s: a handful of updates, not 60.
    assert len(updates) < 15
    texts = [u.text for u in updates]
    assert all(b.startswith(a) for a, b in pairwise(texts)), "text only grows"
    assert texts[-1] == "".join(chunks).strip()
    # In order; a listener that falls behind gets only the newest (chat.layers).
    assert [u.seq for u in updates] == sorted({u.seq for u in updates})


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("budget, most", [(10_000, None), (4, 4)])
async def test_replies_streaming_at_once_share_the_process_update_budget(
    room_factory, model, settings, budget, most
):
    settings.CHAT_STREAM_INTERVAL, settings.CHAT_STREAM_BUDGET = 0.02, budget
    rooms = [await sync_to_async(room_factory)(name=f"Room {i}") for i in range(2)]
    chunks = tuple(f"w{i} " for i in range(60))
    model.queue(*(Reply(chunks=chunks, tokens_per_second=100) for _ in rooms))  # ~0.6 s each
    channels = [await listen(room.pk) for room in rooms]
    for room in rooms:
        await actions.message_send(room_id=room.pk, author=room.owner, content="go")

    for channel in channels:
        updates = []
        while not updates or updates[-1].status == "streaming":
            updates += [m for m in messages_in(await next_html(channel)) if m.role == "assistant"]
        assert updates[-1].text == "".join(chunks).strip()
        # Each broadcast bumps the seq (a listener that falls behind may skip some).
        broadcasts = updates[-1].seq
        if most is None:
            # 20 ms apart for ~0.6 s: many updates.
            assert broadcasts > 10, broadcasts
        else:
            # Two replies on a budget of 4 a second: each at most every 0.5 s.
            assert broadcasts <= most, broadcasts


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_partial_text_is_saved_while_streaming(room_factory, model, settings):
    settings.CHAT_SAVE_INTERVAL = 0.2
    room = await sync_to_async(room_factory)()
    model.queue(Reply(chunks=tuple(f"p{i} " for i in range(30)), tokens_per_second=30))
    await actions.message_send(room_id=room.pk, author=room.owner, content="go")
    await asyncio.sleep(0.6)
    reply = await Message.objects.aget(room=room, role="assistant")
    assert reply.status == "streaming"
    assert reply.content.startswith("p0 p1 ")
    await replies_finished()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_whose_history_was_cleared_stops_quietly(room_factory, model, settings):
    settings.CHAT_SAVE_INTERVAL = 0.05
    room = await sync_to_async(room_factory)(system_prompt="old")
    model.queue(Reply(chunks=tuple(f"x{i} " for i in range(100)), tokens_per_second=50))
    await actions.message_send(room_id=room.pk, author=room.owner, content="go")
    await asyncio.sleep(0.3)
    await sync_to_async(services.room_update)(room=room, name=room.name, system_prompt="new")
    await replies_finished(within=2)
    assert await Message.objects.filter(room=room).acount() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sending_too_fast_is_refused_and_saves_nothing(room_factory, model, settings):
    settings.CHAT_RATE_LIMIT = 1
    room = await sync_to_async(room_factory)()
    await actions.message_send(room_id=room.pk, author=room.owner, content="first")
    await replies_finished()
    with pytest.raises(refusals.RateLimited) as limited:
        await actions.message_send(room_id=room.pk, author=room.owner, content="second")
    assert 0 < limited.value.retry_after <= settings.CHAT_RATE_WINDOW
    assert await Message.objects.filter(room=room).acount() == 2
