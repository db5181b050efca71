"""Turns in process, against the tests' model server and a real Redis: the supervisor,
its steps and faults, Stop from the first moment, authority at the moment of the
action, and the watchdog (chat.turns, chat.replies)."""

import asyncio
import uuid
from datetime import timedelta
from itertools import pairwise

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError
from django.utils import timezone

from chat import faults, leases, services
from chat.models import Message
from chat.turns import actions, refusals, watchdog
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.roomgroup import listen, next_frame
from tests.wsutil import Page, messages_in, receive_until


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
async def test_updates_are_coalesced_and_the_text_only_grows(room_factory, model, settings):
    settings.CHAT_STREAM_INTERVAL = 0.1
    room = await sync_to_async(room_factory)()
    chunks = tuple(f"w{i} " for i in range(60))
    model.queue(Reply(chunks=chunks, tokens_per_second=200))  # ~0.3 s of tokens
    channel = await listen(room.pk)
    await actions.message_send(room_id=room.pk, author=room.owner, content="go")

    updates, page = [], Page()
    while not updates or updates[-1].status == "streaming":
        frame = page.feed(await next_frame(channel))
        updates += [m for m in messages_in(frame) if m.role == "assistant"]
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
        updates, page = [], Page()
        while not updates or updates[-1].status == "streaming":
            frame = page.feed(await next_frame(channel))
            updates += [m for m in messages_in(frame) if m.role == "assistant"]
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


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stop_while_the_documents_are_searched_ends_the_turn_with_no_model_call(
    room_factory, model, taxlaw_document_factory
):
    await sync_to_async(taxlaw_document_factory)()
    model.embeddings_delay = 5
    room = await sync_to_async(room_factory)()
    await actions.message_send(room_id=room.pk, author=room.owner, content="!퇴직금의 소득 구분은?")
    for _ in range(50):
        if model.embedding_requests:
            break
        await asyncio.sleep(0.05)
    reply = await Message.objects.aget(room=room, role="assistant")

    await actions.reply_stop_ask(room_id=room.pk, user=room.owner, message_id=reply.pk)

    await replies_finished(within=2)
    await reply.arefresh_from_db()
    assert (reply.status, reply.content) == ("stopped", "")
    assert model.requests == [], "the model was never called"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stop_at_the_first_moment_or_before_the_first_token_is_never_lost(
    room_factory, model
):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("late", first_token_delay=5), Reply("never"))
    for wait in (0, 0.3):
        await actions.message_send(room_id=room.pk, author=room.owner, content="go")
        reply = await Message.objects.filter(room=room, role="assistant").alast()
        await asyncio.sleep(wait)
        await actions.reply_stop_ask(room_id=room.pk, user=room.owner, message_id=reply.pk)
        await replies_finished(within=2)
        await reply.arefresh_from_db()
        assert reply.status == "stopped", wait
    assert len(model.requests) == 1, "stopped at once, the second turn called no model"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stop_nobody_is_writing_is_refused(room_factory):
    room = await sync_to_async(room_factory)()
    done = await Message.objects.acreate(room=room, role="assistant", content="done")
    with pytest.raises(refusals.NotStreaming):
        await actions.reply_stop_ask(room_id=room.pk, user=room.owner, message_id=done.pk)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_local_sweep_ends_this_process_s_replies_that_have_no_turn(
    room_factory, settings
):
    room = await sync_to_async(room_factory)()
    orphan = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=leases.PROCESS_ID, content="so far"
    )
    assert await watchdog.turns_recover() == 0, "just claimed: its turn may be starting"
    await Message.objects.filter(pk=orphan.pk).aupdate(
        updated_at=timezone.now() - watchdog.LOCAL_GRACE - timedelta(seconds=0.1)
    )
    channel = await listen(room.pk)
    assert await watchdog.turns_recover() == 1
    (shown,) = messages_in(await next_html(channel))
    assert (shown.pk, shown.status, shown.text) == (orphan.pk, "interrupted", "so far")
    # The room is free again.
    await actions.message_send(room_id=room.pk, author=room.owner, content="again")
    await replies_finished()
    assert await Message.objects.filter(room=room, status="complete", role="assistant").aexists()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step", faults.STEPS)
async def test_a_step_that_raises_ends_the_turn_as_an_error_and_frees_the_room(
    room_factory, model, settings, step
):
    settings.CHAT_FAULT_POINT = step
    faults._fired.clear()
    room = await sync_to_async(room_factory)()
    model.queue(Reply("first"), Reply("second"))
    try:
        await actions.message_send(room_id=room.pk, author=room.owner, content="one")
    except faults.InjectedFault:
        assert step == "claim"
        assert await Message.objects.filter(room=room).acount() == 0, "nothing half-saved"
    await replies_finished()
    await actions.message_send(room_id=room.pk, author=room.owner, content="two")
    await replies_finished()
    statuses = [
        s async for s in room.messages.filter(role="assistant").values_list("status", "error")
    ]
    assert statuses[-1] == ("complete", "")
    if step in ("history", "rag", "model"):
        assert statuses[0] == ("error", "Something went wrong on the server.")
    elif step in ("save", "finish", "advance"):
        assert statuses[0] == ("complete", "")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_no_ghost_reply_after_a_reset(room_factory, model, connect):
    room = await sync_to_async(room_factory)(system_prompt="old")
    model.queue(Reply(chunks=tuple(f"g{i} " for i in range(200)), tokens_per_second=100))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data='{"content": "go"}')
    frames = await receive_until(tab, lambda f: "g5" in f)
    reply_pk = [m for f in frames for m in messages_in(f) if m.role == "assistant"][-1].pk

    await sync_to_async(services.room_update)(room=room, name=room.name, system_prompt="new")

    await receive_until(tab, lambda f: 'id="messages" hx-swap-oob="innerHTML"' in f)
    await replies_finished(within=3)
    after = []
    while not await tab.receive_nothing(timeout=0.5):
        after.append(await tab.receive_from())
    assert not [m for f in after for m in messages_in(f) if m.pk == reply_pk], "a ghost"
    assert await Message.objects.filter(room=room).acount() == 0


@pytest.mark.django_db
def test_the_idle_watchdog_reads_an_index_and_finds_each_room_once(room_factory, user):
    from django.db import connection

    rooms = [room_factory(), room_factory()]
    for room in rooms:
        for content in ("a", "b", "c"):
            Message.objects.create(
                room=room, author=user, role="user", content=content, status="queued"
            )
    assert sorted(watchdog._rooms_to_resume()) == sorted(room.pk for room in rooms)
    for query in (
        Message.objects.filter(status="streaming").order_by().values_list("pk", "owner"),
        Message.objects.filter(status="queued").order_by().values_list("room_id").distinct(),
    ):
        with connection.cursor() as cursor:
            sql, params = query.query.sql_with_params()
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row) for row in cursor.fetchall())
        assert "message_status_room" in plan, plan


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_send_repeated_with_its_client_id_is_saved_and_answered_once(room_factory, model):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("Only once."))
    client_id = uuid.uuid4()
    # At the same moment, as two processes would: the constraint decides.
    first, second = await asyncio.gather(
        *(
            actions.message_send(
                room_id=room.pk, author=room.owner, content="hi", client_id=client_id
            )
            for _ in range(2)
        )
    )
    assert first.pk == second.pk
    # Later, after the reply: still the same message, and no new turn.
    again = await actions.message_send(
        room_id=room.pk, author=room.owner, content="hi", client_id=client_id
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
