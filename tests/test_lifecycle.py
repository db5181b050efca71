"""Draining on shutdown, in process: what the drain does with replies, sockets and new messages.

Real daphne processes getting SIGTERM and SIGINT are in tests/test_restarts.py.
"""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import leases, lifecycle, shutdown
from chat.broadcast import room_group
from chat.models import Message
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

WORDS = tuple(f"d{i} " for i in range(200))


@pytest.fixture(autouse=True)
def not_draining(monkeypatch) -> None:
    """Each test drains its own process state; the flag is put back after it."""
    monkeypatch.setattr(shutdown, "_draining", False)


@pytest.fixture
def room(room_factory):
    return room_factory(name="Draining")


class RoomListener:
    """A tab on another process: it hears the room's broadcasts on the channel layer."""

    def __init__(self, room_id: int) -> None:
        self.room_id, self.layer, self.channel = room_id, get_channel_layer(), ""

    async def __aenter__(self) -> "RoomListener":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(room_group(self.room_id), self.channel)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.layer.group_discard(room_group(self.room_id), self.channel)

    async def last_reply_until_final(self, within: float = 10) -> list:
        shown = []
        async with asyncio.timeout(within):
            while not shown or shown[-1].status == "streaming":
                event = await self.layer.receive(self.channel)
                shown += [m for m in messages_in(event.get("html", "")) if m.role == "assistant"]
        return shown


async def streaming_reply(tab, *, at_least: int) -> None:
    await tab.send_to(text_data=send("go"))
    await receive_until(tab, lambda f: any(len(m.text.split()) >= at_least for m in messages_in(f)))


async def test_a_reply_that_ends_within_the_grace_period_completes(room, connect, model):
    model.queue(Reply(chunks=WORDS[:30], tokens_per_second=40))
    tab = await connect(f"/ws/chat/{room.pk}/")
    async with RoomListener(room.pk) as other_tab:
        await streaming_reply(tab, at_least=5)
        await lifecycle.drain(grace=10)
        shown = await other_tab.last_reply_until_final()
    assert (shown[-1].status, shown[-1].text) == ("complete", "".join(WORDS[:30]).strip())
    # This process's tabs were sent to a live one, with a code the page reconnects on.
    assert await tab.receive_output() == {"type": "websocket.close", "code": 1000}


async def test_past_the_grace_period_a_reply_keeps_all_its_text_and_is_interrupted(
    room, connect, model
):
    model.queue(Reply(chunks=WORDS, tokens_per_second=50))
    tab = await connect(f"/ws/chat/{room.pk}/")
    async with RoomListener(room.pk) as other_tab:
        await streaming_reply(tab, at_least=10)
        await lifecycle.drain(grace=0.5)
        shown = await other_tab.last_reply_until_final()
    final = shown[-1]
    row = await Message.objects.aget(pk=final.pk)
    assert (row.status, final.status) == ("interrupted", "interrupted")
    # Saved in full: exactly what the tabs were last shown, which is everything
    # the model had sent, not the last periodic save.
    assert row.content.strip() == final.text
    assert "".join(WORDS).startswith(row.content)
    assert len(row.content.split()) > 10 + 50 * 0.5 * 0.5, "it went on during the grace period"
    assert row.seq == final.seq


async def test_while_draining_a_question_waits_for_a_live_process(room, connect):
    tab = await connect(f"/ws/chat/{room.pk}/")
    shutdown.drain_begin()
    await tab.send_to(text_data=send("keep me"))
    await tab.receive_from()
    # Saved, never lost, but not answered here: the next live process does it.
    assert [(m.role, m.status, m.content) async for m in Message.objects.filter(room=room)] == [
        ("user", "queued", "keep me")
    ]

    late = await connect(f"/ws/chat/{room.pk}/")
    assert await late.receive_output() == {"type": "websocket.close", "code": 1000}


async def test_a_reply_this_process_claimed_but_never_wrote_is_interrupted(room, connect):
    await connect(f"/ws/chat/{room.pk}/")
    orphan = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=leases.PROCESS_ID, content="so far"
    )
    await lifecycle.drain(grace=1)
    await orphan.arefresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "so far")
