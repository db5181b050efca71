"""The AI's queue: questions that arrive while a reply streams wait their turn.

A waiting question is a user message with status "queued", so the queue lives
in the database and survives restarts. When a reply ends (chat.replies calls
queue_after_reply), when a question is queued, and in the watchdog's sweep,
queue_advance claims the room's oldest question: the one_streaming_reply_per_room
constraint makes the claim safe from any number of processes, so whichever
process holds the room answers next, one at a time and in order.
"""

import logging
import re
from functools import partial

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from chat import leases, rendering, replies, roomlist, shutdown
from chat.broadcast import fragment_event, message_broadcast_on_commit, room_group
from chat.models import Message, Room

logger = logging.getLogger(__name__)

# In "mentioned" rooms only these get a reply: "@ai ..." or a "!" tax-law question.
ADDRESSED = re.compile(r"\s*(?:@ai\b|!)", re.IGNORECASE)


def message_addressed(*, room: Room, content: str) -> bool:
    """Whether the AI should answer this message."""
    return room.ai_answers == Room.AiAnswers.EVERY or bool(ADDRESSED.match(content))


def queue_waiting(*, room_id: int) -> list[Message]:
    """The room's waiting questions, next first."""
    return list(
        Message.objects.filter(room_id=room_id, status=Message.Status.QUEUED)
        .select_related("author")
        .order_by("pk")
    )


def queue_html(*, room_id: int) -> str:
    """The room's queue, to replace the page's #queue (latest wins)."""
    return render_to_string(
        f"{rendering.ROOM_TEMPLATE}#queue",
        {"queue": queue_waiting(room_id=room_id), "oob": True},
    )


def queue_broadcast_on_commit(*, room_id: int) -> None:
    """Send the room's queue to its tabs after commit, as a "chat.queue" event."""
    transaction.on_commit(partial(_queue_broadcast, room_id=room_id))


def _queue_broadcast(*, room_id: int) -> None:
    html = rendering.in_every_language(queue_html, room_id=room_id)
    async_to_sync(get_channel_layer().group_send)(
        room_group(room_id), fragment_event("chat.queue", html, key="queue")
    )


async def queue_advance(*, room_id: int) -> Message | None:
    """Start the reply to the room's next question, if the room is free; returns it.
    A process shutting down starts none: the question waits for another process."""
    if shutdown.draining():
        return None
    claimed = await database_sync_to_async(_queue_claim)(room_id=room_id)
    if claimed is None:
        return None
    room, reply = claimed
    replies.reply_start(room=room, reply=reply)
    return reply


def _queue_claim(*, room_id: int) -> tuple[Room, Message] | None:
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        return None
    replies.reply_recover_stale(room=room)
    try:
        with transaction.atomic():
            # Serialises this room's queue decisions (a row lock on PostgreSQL).
            if not Room.objects.select_for_update().filter(pk=room_id).exists():
                return None
            if room.messages.filter(status=Message.Status.STREAMING).exists():
                return None
            waiting = room.messages.filter(status=Message.Status.QUEUED).order_by("pk").first()
            if waiting is None:
                return None
            # Answered now, so it moves to the end of the conversation, just
            # before its reply: the page and the model see question, then answer.
            waiting.delete()
            question = Message.objects.create(
                room=room,
                author_id=waiting.author_id,
                role=Message.Role.USER,
                content=waiting.content,
            )
            reply = Message.objects.create(
                room=room,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                owner=leases.PROCESS_ID,
            )
            message_broadcast_on_commit(question, reply)
            queue_broadcast_on_commit(room_id=room_id)
            roomlist.room_changed_on_commit(room=room)
    except IntegrityError:
        return None  # another process started a reply first
    return room, reply


async def queue_after_reply(*, room: Room) -> None:
    """A reply ended: the room list drops its badge, and the next question starts."""
    try:
        await database_sync_to_async(roomlist.room_changed_send)(room_id=room.pk)
        await queue_advance(room_id=room.pk)
    except Exception:
        # The watchdog's sweep starts it later.
        logger.warning("starting the next question in room %s failed", room.pk, exc_info=True)


def _rooms_to_resume() -> list[int]:
    streaming = Message.objects.filter(status=Message.Status.STREAMING).values("room_id")
    return list(
        Message.objects.filter(status=Message.Status.QUEUED)
        .exclude(room_id__in=streaming)
        .values_list("room_id", flat=True)
        .distinct()
    )


async def queue_resume() -> int:
    """Start the next question of every room that has questions waiting and no reply
    streaming: after a restart, or a reply whose process died. Returns how many started."""
    started = 0
    for room_id in await database_sync_to_async(_rooms_to_resume)():
        if await queue_advance(room_id=room_id):
            started += 1
    return started
