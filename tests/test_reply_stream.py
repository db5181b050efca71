"""A reply as it grows and ends (chat.reply_stream): saved while it streams, and
its final state saved, with its charge settled, only while the row is this turn's."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import budgets, faults
from chat.budget_models import Charge
from chat.models import Message, Room
from chat.reply_stream import ReplyStream
from chat.turns import actions
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.roomgroup import listen, next_frame
from tests.wsutil import messages_in


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
async def test_a_failed_periodic_save_is_retried_and_the_reply_goes_on(
    room_factory, model, settings, caplog
):
    settings.CHAT_SAVE_INTERVAL, settings.CHAT_FAULT_POINT = 0.2, "save"
    faults._fired.clear()
    room = await sync_to_async(room_factory)()
    model.queue(Reply(chunks=tuple(f"p{i} " for i in range(40)), tokens_per_second=40))
    await actions.message_send(room_id=room.pk, author=room.owner, content="go")
    await asyncio.sleep(0.6)
    reply = await Message.objects.aget(room=room, role="assistant")
    assert (reply.status, reply.content[:3]) == ("streaming", "p0 "), "saved at the next try"
    await replies_finished()
    await reply.arefresh_from_db()
    assert reply.status == "complete" and reply.content == "".join(f"p{i} " for i in range(40))
    assert "saving reply" in caplog.text and "trying again" in caplog.text


async def streaming_reply(room_factory) -> tuple[Room, Message, Charge]:
    """A reply being written, with its reservation, as a claim leaves them."""
    room = await sync_to_async(room_factory)()
    reply = await Message.objects.acreate(room=room, role="assistant", status="streaming")
    charge = await sync_to_async(budgets.charge_reserve)(room=room, reply=reply, asker_id=None)
    return room, reply, charge


def ended(reply: Message) -> None:
    reply.content, reply.status, reply.model = "Hello there", "complete", "test-model"
    reply.prompt_tokens, reply.completion_tokens = 5, 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_final_state_is_saved_counted_in_the_room_and_sent_whole(room_factory):
    room, reply, charge = await streaming_reply(room_factory)
    channel = await listen(room.pk)
    ended(reply)

    await ReplyStream(room=room, reply=reply).finish()

    saved = await Message.objects.aget(pk=reply.pk)
    assert (saved.status, saved.content, saved.seq) == ("complete", "Hello there", 1)
    assert (saved.prompt_tokens, saved.completion_tokens) == (5, 2)
    assert saved.version == (await Room.objects.aget(pk=room.pk)).version
    await charge.arefresh_from_db()
    assert (charge.settled, charge.estimated, charge.tokens) == (True, False, 7)
    html = await next_frame(channel)
    (shown,) = messages_in(html)
    assert (shown.pk, shown.status, shown.text) == (reply.pk, "complete", "Hello there")
    assert 'id="room-usage"' in html, "the room's total comes with it"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_taken_over_keeps_its_row_but_its_charge_is_settled(room_factory):
    room, reply, charge = await streaming_reply(room_factory)
    # Recovery marked it interrupted meanwhile: the row is no longer this turn's.
    await Message.objects.filter(pk=reply.pk).aupdate(status="interrupted", content="Hello")
    channel = await listen(room.pk)
    ended(reply)

    await ReplyStream(room=room, reply=reply).finish()

    saved = await Message.objects.aget(pk=reply.pk)
    assert (saved.status, saved.content) == ("interrupted", "Hello")
    await charge.arefresh_from_db()
    assert (charge.settled, charge.tokens) == (True, 7), "a reply taken over spent too"
    with pytest.raises(TimeoutError):
        await next_frame(channel)
