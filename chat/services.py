"""Writes. Every change to rooms and messages goes through here, and only
here broadcasts to the room's tabs: after the write has committed."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat import llm, rendering, selectors
from chat.broadcast import room_send, room_send_sync
from chat.models import Message, Room

logger = logging.getLogger(__name__)


class RoomBusy(Exception):
    """The room is still answering its previous message."""


def room_create(*, name: str, system_prompt: str = "") -> Room:
    return Room.objects.create(name=name, system_prompt=system_prompt)


def room_update(*, room: Room, name: str, system_prompt: str) -> Room:
    """Rename the room or change its prompt; a new prompt starts a new conversation."""
    with transaction.atomic():
        stored = Room.objects.select_for_update().get(pk=room.pk)
        prompt_changed = stored.system_prompt != system_prompt
        room.name, room.system_prompt = name, system_prompt
        room.save(update_fields=["name", "system_prompt", "updated_at"])
        if prompt_changed:
            # The old answers were given under other instructions.
            room.messages.all().delete()
            transaction.on_commit(
                partial(room_send_sync, room_id=room.pk, html=rendering.room_reset(room=room))
            )
    return room


def reply_recover_stale(*, room: Room) -> int:
    """Mark replies whose process died mid-stream as interrupted; returns how many.

    A live reply saves at least every CHAT_SAVE_INTERVAL, so one unsaved for
    CHAT_STALE_AFTER has lost its process. The conditional UPDATE makes this
    safe to run from any number of processes at once.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER)
    return room.messages.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff).update(
        status=Message.Status.INTERRUPTED,
        error=_("The server stopped while writing this reply."),
        updated_at=timezone.now(),
    )


async def message_send(*, room: Room, content: str) -> Message:
    """Save a user's message and start the room's reply to it.

    Raises RoomBusy, saving nothing, while the room's previous reply streams.
    """
    user_message, reply = await database_sync_to_async(_turn_create)(room=room, content=content)
    reply_start(room=room, reply=reply)
    return user_message


def _turn_create(*, room: Room, content: str) -> tuple[Message, Message]:
    reply_recover_stale(room=room)
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                room=room, role=Message.Role.USER, content=content
            )
            # The placeholder claims the room: a second one fails the
            # one_streaming_reply_per_room constraint, in any process.
            reply = Message.objects.create(
                room=room, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
            )
            transaction.on_commit(
                partial(
                    room_send_sync,
                    room_id=room.pk,
                    html=rendering.message_oob(user_message, reply),
                )
            )
    except IntegrityError as exc:
        raise RoomBusy from exc
    return user_message, reply


# Replies belong to their room, not to the socket that asked: the tasks live
# here, so a reply goes on when the sender's tab closes. The set keeps a
# reference, or the event loop could drop a running task.
_reply_tasks: set[asyncio.Task[None]] = set()


def reply_start(*, room: Room, reply: Message) -> asyncio.Task[None]:
    task = asyncio.create_task(_reply_generate(room=room, reply=reply), name=f"reply-{reply.pk}")
    _reply_tasks.add(task)
    task.add_done_callback(_reply_tasks.discard)
    return task


async def _reply_generate(*, room: Room, reply: Message) -> None:
    turns = await database_sync_to_async(selectors.room_history)(room=room, before=reply)
    stream = _ReplyStream(room=room, reply=reply)
    coalescer = _Coalescer(stream.publish, interval=settings.CHAT_STREAM_INTERVAL)
    try:
        async for delta in llm.stream_reply(turns):
            reply.content += delta
            coalescer.mark()
            if stream.gone:
                return  # the room's history was cleared or the room deleted
        reply.status = Message.Status.COMPLETE
    except llm.ModelError as exc:
        reply.status, reply.error = Message.Status.ERROR, str(exc)
    except Exception:
        logger.exception("reply %s failed", reply.pk)
        reply.status, reply.error = Message.Status.ERROR, _("Something went wrong on the server.")
    finally:
        await coalescer.close()
    await stream.finish()


class _Coalescer:
    """Runs `flush` at most once per `interval` while marks keep coming.

    The first mark flushes at once; marks during the pause are folded into one
    flush after it. Each flush sends the whole state, so folding loses nothing.
    """

    def __init__(self, flush: Callable[[], Awaitable[None]], *, interval: float) -> None:
        self._flush, self._interval = flush, interval
        self._dirty, self._closing = asyncio.Event(), asyncio.Event()
        self._runner = asyncio.create_task(self._run())

    def mark(self) -> None:
        self._dirty.set()

    async def close(self) -> None:
        """Stop, letting a flush under way finish (the caller sends the final state)."""
        self._closing.set()
        self._dirty.set()
        await self._runner

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing.is_set():
                return
            self._dirty.clear()
            await self._flush()
            try:
                await asyncio.wait_for(self._closing.wait(), self._interval)
                return
            except TimeoutError:
                pass


class _ReplyStream:
    """Publishes a growing reply: one render per update, shared by every tab."""

    def __init__(self, *, room: Room, reply: Message) -> None:
        self.room, self.reply = room, reply
        self.gone = False
        self._saved_at = time.monotonic()

    async def publish(self) -> None:
        self.reply.seq += 1
        if time.monotonic() - self._saved_at >= settings.CHAT_SAVE_INTERVAL:
            await self._save()
        await self._broadcast()

    async def finish(self) -> None:
        self.reply.seq += 1
        await self._save(final=True)
        await self._broadcast()

    async def _broadcast(self) -> None:
        if self.gone:
            return
        try:
            await room_send(room_id=self.room.pk, html=rendering.message_oob(self.reply))
        except Exception:
            # Tabs miss this update, not the reply: the next update carries
            # the whole text, and the database has it.
            logger.warning("broadcast of reply %s failed", self.reply.pk, exc_info=True)

    async def _save(self, *, final: bool = False) -> None:
        """Save the text so far; also a heartbeat that tells recovery the reply is alive."""
        fields = {
            "content": self.reply.content,
            "seq": self.reply.seq,
            "updated_at": timezone.now(),
        }
        if final:
            fields |= {"status": self.reply.status, "error": self.reply.error}
        updated = await Message.objects.filter(
            pk=self.reply.pk, status=Message.Status.STREAMING
        ).aupdate(**fields)
        self._saved_at = time.monotonic()
        self.gone = updated == 0
