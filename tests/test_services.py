import asyncio
import uuid
from datetime import timedelta
from itertools import pairwise

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError
from django.utils import timezone

from chat import replies, services
from chat.broadcast import room_group
from chat.models import Message, Room
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


@pytest.mark.django_db
def test_room_create(user):
    room = services.room_create(owner=user, name="New", system_prompt="Be kind.")
    assert (room.owner, room.name, room.system_prompt, str(room)) == (
        user,
        "New",
        "Be kind.",
        "New",
    )


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_prompt_change_clears_history_and_resets_open_tabs(room_factory, message_factory):
    room = await sync_to_async(room_factory)(name="Old name", system_prompt="old")
    await sync_to_async(message_factory)(room, "hello")
    channel = await listen(room.pk)

    await sync_to_async(services.room_update)(room=room, name="New name", system_prompt="new")

    html = await next_html(channel)
    assert 'id="messages" hx-swap-oob="innerHTML"' in html
    assert "New name" in html and "new" in html
    assert await Message.objects.filter(room=room).acount() == 0


@pytest.mark.django_db
def test_recovery_marks_only_stale_streaming_replies_interrupted(room_factory, settings):
    room = room_factory()
    stale = Message.objects.create(room=room, role="assistant", status="streaming", content="half")
    Message.objects.filter(pk=stale.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER + 1)
    )
    other_room = room_factory()
    fresh = Message.objects.create(room=other_room, role="assistant", status="streaming")

    assert replies.reply_recover_stale(room=room) == 1
    assert replies.reply_recover_stale(room=room) == 0, "recovery is idempotent"
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.content) == ("interrupted", "half")
    assert stale.error
    assert replies.reply_recover_stale(room=other_room) == 0
    assert fresh.status == "streaming"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_second_turn_while_replying_is_queued_and_answered_next(room_factory, model):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("one two three four five six", tokens_per_second=20), Reply("Next."))
    await services.message_send(room=room, author=room.owner, content="first")
    second = await services.message_send(room=room, author=room.owner, content="second")
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
async def test_a_send_repeated_with_its_client_id_is_saved_and_answered_once(room_factory, model):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("Only once."))
    client_id = uuid.uuid4()
    # At the same moment, as two processes would: the constraint decides.
    first, second = await asyncio.gather(
        *(
            services.message_send(room=room, author=room.owner, content="hi", client_id=client_id)
            for _ in range(2)
        )
    )
    assert first.pk == second.pk
    # Later, after the reply: still the same message, and no new turn.
    again = await services.message_send(
        room=room, author=room.owner, content="hi", client_id=client_id
    )
    await replies_finished()
    assert again.pk == first.pk
    assert [m async for m in Message.objects.filter(room=room).values_list("role", "content")] == [
        ("user", "hi"),
        ("assistant", "Only once."),
    ]
    assert len(model.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_client_id_is_unique_per_room_and_author_in_the_database(room_factory, user_factory):
    room, other = room_factory(), room_factory()
    client_id = uuid.uuid4()
    Message.objects.create(room=room, author=room.owner, role="user", client_id=client_id)
    # Another room, or another author, may use the same id.
    Message.objects.create(room=other, author=room.owner, role="user", client_id=client_id)
    bob = user_factory("bob")
    Message.objects.create(room=room, author=bob, role="user", client_id=client_id)
    # Without an id, any number.
    Message.objects.create(room=room, author=room.owner, role="user")
    Message.objects.create(room=room, author=room.owner, role="user")
    with pytest.raises(IntegrityError):
        Message.objects.create(room=room, author=room.owner, role="user", client_id=client_id)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_updates_are_coalesced_and_carry_the_whole_text(room_factory, model, settings):
    settings.CHAT_STREAM_INTERVAL = 0.1
    room = await sync_to_async(room_factory)()
    chunks = tuple(f"w{i} " for i in range(60))
    model.queue(Reply(chunks=chunks, tokens_per_second=200))  # ~0.3 s of tokens
    channel = await listen(room.pk)
    await services.message_send(room=room, author=room.owner, content="go")

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
        await services.message_send(room=room, author=room.owner, content="go")

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
    await services.message_send(room=room, author=room.owner, content="go")
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
    await services.message_send(room=room, author=room.owner, content="go")
    await asyncio.sleep(0.3)
    await sync_to_async(services.room_update)(room=room, name=room.name, system_prompt="new")
    await replies_finished(within=2)
    assert await Message.objects.filter(room=room).acount() == 0


@pytest.mark.django_db
def test_members_are_added_by_username_and_not_twice(room_factory, user_factory):
    room = room_factory()
    bob = user_factory("bob")
    assert services.room_member_add(room=room, username=" bob ") == bob
    services.room_member_add(room=room, username="bob")
    assert list(room.members.all()) == [bob]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "error"),
    [
        ("nobody", "There is no user called “nobody”."),
        ("alice", "The owner is always in the room."),
    ],
)
def test_adding_a_member_can_fail_with_a_reason(room_factory, username, error):
    room = room_factory()
    with pytest.raises(services.MemberError, match=error):
        services.room_member_add(room=room, username=username)
    assert room.members.count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_removing_a_member_tells_the_room(room_factory, user_factory):
    room = await sync_to_async(room_factory)()
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    layer = get_channel_layer()
    channel = await listen(room.pk)

    await sync_to_async(services.room_member_remove)(room=room, user_id=bob.pk)

    event = await asyncio.wait_for(layer.receive(channel), 5)
    assert event == {"type": "chat.member_removed", "user_id": bob.pk}
    assert await room.members.acount() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sending_too_fast_is_refused_and_saves_nothing(room_factory, model, settings):
    settings.CHAT_RATE_LIMIT = 1
    room = await sync_to_async(room_factory)()
    await services.message_send(room=room, author=room.owner, content="first")
    await replies_finished()
    with pytest.raises(services.RateLimited) as limited:
        await services.message_send(room=room, author=room.owner, content="second")
    assert 0 < limited.value.retry_after <= settings.CHAT_RATE_WINDOW
    assert await Message.objects.filter(room=room).acount() == 2


@pytest.mark.django_db(transaction=True)
def test_marking_a_deleted_room_read_is_harmless(room_factory, user):
    room = room_factory()
    room_id = room.pk
    services.room_delete(room=room)
    services.room_read_mark(room_id=room_id, user_id=user.pk)
    assert not Room.objects.filter(pk=room_id).exists()
