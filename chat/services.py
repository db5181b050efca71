"""Writes. Every change to rooms and messages goes through here, and only
here broadcasts to the room's tabs: after the write has committed."""

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from chat import llm, rag, ratelimit, rendering, selectors
from chat.broadcast import reply_group, room_member_removed_sync, room_send, room_send_sync
from chat.models import Message, Room

logger = logging.getLogger(__name__)


class RoomBusy(Exception):
    """The room is still answering its previous message."""


class RateLimited(Exception):
    """The user sent too many messages; `retry_after` says for how many seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class EditRefused(Exception):
    """A message cannot be edited; the message says why."""


class MemberError(Exception):
    """A member could not be added or removed; the message says why."""


def room_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    system_prompt: str = "",
    model: str | None = None,
    temperature: float | None = None,
) -> Room:
    # Unset, the model and temperature are the settings' (Room's defaults).
    options = {"model": model, "temperature": temperature}
    return Room.objects.create(
        owner=owner,
        name=name,
        system_prompt=system_prompt,
        **{key: value for key, value in options.items() if value is not None},
    )


def room_member_add(*, room: Room, username: str) -> AbstractBaseUser:
    """Share the room with another user, by username."""
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise MemberError(_("There is no user called “%(name)s”.") % {"name": username.strip()})
    if user.pk == room.owner_id:
        raise MemberError(_("The owner is always in the room."))
    room.members.add(user)
    return user


def room_member_remove(*, room: Room, user_id: int) -> None:
    """Take a member out of the room; their open tabs are closed at once."""
    with transaction.atomic():
        room.members.remove(user_id)
        transaction.on_commit(partial(room_member_removed_sync, room_id=room.pk, user_id=user_id))


def room_update(
    *,
    room: Room,
    name: str,
    system_prompt: str,
    model: str | None = None,
    temperature: float | None = None,
) -> Room:
    """Rename the room, or change its prompt, model or temperature; a new prompt
    starts a new conversation. The next reply uses the new model and temperature."""
    with transaction.atomic():
        stored = Room.objects.select_for_update().get(pk=room.pk)
        prompt_changed = stored.system_prompt != system_prompt
        room.name, room.system_prompt = name, system_prompt
        room.model = model if model is not None else stored.model
        room.temperature = temperature if temperature is not None else stored.temperature
        room.save(update_fields=["name", "system_prompt", "model", "temperature", "updated_at"])
        if prompt_changed:
            # The old answers were given under other instructions.
            room.messages.all().delete()
            transaction.on_commit(
                partial(
                    room_send_sync,
                    room_id=room.pk,
                    html=rendering.in_every_language(rendering.room_reset, room=room),
                )
            )
    return room


def reply_recover_stale(*, room: Room | None = None) -> int:
    """Mark replies whose process died mid-stream as interrupted, and tell their tabs.

    A live reply saves at least every CHAT_SAVE_INTERVAL, so one unsaved for
    CHAT_STALE_AFTER has lost its process. The conditional UPDATE makes this
    safe to run from any number of processes at once. Returns how many it marked.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if room is not None:
        stale = stale.filter(room=room)
    # The dead process may have broadcast this many updates after its last save;
    # jumping past them makes every tab accept the interrupted state.
    seq_margin = math.ceil(settings.CHAT_STALE_AFTER / settings.CHAT_STREAM_INTERVAL) + 1
    recovered = 0
    for message in stale:
        with transaction.atomic():
            if not stale.filter(pk=message.pk).update(
                status=Message.Status.INTERRUPTED,
                error=gettext_noop("The server stopped while writing this reply."),
                seq=F("seq") + seq_margin,
                updated_at=timezone.now(),
            ):
                continue  # another process got there first
            message.refresh_from_db()
            _broadcast_on_commit(message)
            recovered += 1
    return recovered


_watchdogs: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def reply_watchdog_start() -> None:
    """Sweep for dead replies in the background, once per process (event loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _watchdogs:
        _watchdogs[loop] = loop.create_task(_watch_for_dead_replies(), name="reply-watchdog")


async def _watch_for_dead_replies() -> None:
    while True:
        try:
            await database_sync_to_async(reply_recover_stale)()
        except Exception:
            logger.warning("recovering stale replies failed", exc_info=True)
        await asyncio.sleep(settings.CHAT_STALE_AFTER / 3)


async def message_send(*, room: Room, author: AbstractBaseUser, content: str) -> Message:
    """Save a user's message and start the room's reply to it.

    Raises RateLimited when the author sends too fast, and RoomBusy while the
    room's previous reply streams; either way nothing is saved.
    """
    if retry_after := await ratelimit.message_rate_hit(user_id=author.pk):
        raise RateLimited(retry_after)
    user_message, reply = await database_sync_to_async(_turn_create)(
        room=room, author=author, content=content
    )
    reply_start(room=room, reply=reply)
    return user_message


def _turn_create(*, room: Room, author: AbstractBaseUser, content: str) -> tuple[Message, Message]:
    reply_recover_stale(room=room)
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                room=room, author=author, role=Message.Role.USER, content=content
            )
            # The placeholder claims the room: a second one fails the
            # one_streaming_reply_per_room constraint, in any process.
            reply = Message.objects.create(
                room=room, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
            )
            _broadcast_on_commit(user_message, reply)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return user_message, reply


async def reply_regenerate(*, room: Room) -> Message:
    """Answer the last message again, replacing the room's last reply (also a retry after an error).

    Raises RoomBusy while a reply streams, NothingToRegenerate when the room's
    last message is not a finished reply.
    """
    reply = await database_sync_to_async(_reply_reset)(room=room)
    reply_start(room=room, reply=reply)
    return reply


class NothingToRegenerate(Exception):
    """The room's last message is not a finished reply."""


def _reply_reset(*, room: Room) -> Message:
    reply_recover_stale(room=room)
    last = room.messages.last()
    if last is None or last.role != Message.Role.ASSISTANT:
        raise NothingToRegenerate
    if last.is_streaming:
        raise RoomBusy
    newer = Message.objects.filter(room=room, pk__gt=OuterRef("pk"))
    try:
        with transaction.atomic():
            # Only if it is still finished and still last: another tab may have
            # regenerated or sent a message meanwhile.
            restarted = (
                Message.objects.filter(pk=last.pk)
                .exclude(status=Message.Status.STREAMING)
                .filter(~Exists(newer))
                .update(**_restarted_reply())
            )
            if not restarted:
                raise RoomBusy
            last.refresh_from_db()
            _broadcast_on_commit(last)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return last


async def message_edit(
    *, room: Room, author: AbstractBaseUser, message_id: int, content: str
) -> Message:
    """Change the room's last user message and answer it again, replacing its reply.

    Only its author may, and not while a reply streams (RoomBusy); anything
    else raises EditRefused. Either way nothing changes. Returns the reply.
    """
    if retry_after := await ratelimit.message_rate_hit(user_id=author.pk):
        raise RateLimited(retry_after)
    reply = await database_sync_to_async(_turn_edit)(
        room=room, author=author, message_id=message_id, content=content
    )
    reply_start(room=room, reply=reply)
    return reply


def _turn_edit(*, room: Room, author: AbstractBaseUser, message_id: int, content: str) -> Message:
    reply_recover_stale(room=room)
    message = room.messages.filter(pk=message_id, role=Message.Role.USER).first()
    if message is None or message.author_id != author.pk:
        raise EditRefused(gettext_noop("You can edit only your own messages."))
    if room.messages.filter(role=Message.Role.USER, pk__gt=message.pk).exists():
        raise EditRefused(gettext_noop("Only the room's last message can be edited."))
    reply = room.messages.filter(pk__gt=message.pk).first()
    if reply is not None and reply.is_streaming:
        raise RoomBusy
    try:
        with transaction.atomic():
            # Only if the reply is still finished and still last: another tab may
            # have edited, regenerated or sent a message meanwhile.
            newer = Message.objects.filter(room=room, pk__gt=OuterRef("pk"))
            if reply is None:
                reply = Message.objects.create(
                    room=room, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
                )
            elif not (
                Message.objects.filter(pk=reply.pk)
                .exclude(status=Message.Status.STREAMING)
                .filter(~Exists(newer))
                .update(**_restarted_reply())
            ):
                raise RoomBusy
            Message.objects.filter(pk=message.pk).update(
                content=content, seq=F("seq") + 1, updated_at=timezone.now()
            )
            message.refresh_from_db()
            reply.refresh_from_db()
            _broadcast_on_commit(message, reply)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return reply


def _restarted_reply() -> dict[str, object]:
    """The fields that turn a finished reply back into an empty streaming one."""
    return {
        "status": Message.Status.STREAMING,
        "content": "",
        "error": "",
        "sources": [],
        "model": "",
        "prompt_tokens": None,
        "completion_tokens": None,
        "seq": F("seq") + 1,
        "updated_at": timezone.now(),
    }


async def reply_stop(*, room: Room, message_id: int) -> bool:
    """Ask whichever process is writing this reply to stop; False if it is not streaming."""
    if not await Message.objects.filter(
        pk=message_id, room=room, status=Message.Status.STREAMING
    ).aexists():
        return False
    await get_channel_layer().group_send(reply_group(message_id), {"type": "reply.stop"})
    return True


def _broadcast_on_commit(*messages: Message) -> None:
    """Send these messages to their room's tabs once the transaction has committed."""
    html = rendering.in_every_language(rendering.message_oob, *messages)
    transaction.on_commit(partial(room_send_sync, room_id=messages[0].room_id, html=html))


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
    # A "!" question is answered from the tax-law documents; the reply keeps its sources.
    turns, reply.sources = await rag.turns_ground(turns=turns)
    if reply.sources:
        await Message.objects.filter(pk=reply.pk).aupdate(sources=reply.sources)
    stream = _ReplyStream(room=room, reply=reply)
    async with _StopSignal(reply_id=reply.pk) as stop:
        reply.status, reply.error = await _generate(turns=turns, stream=stream, stop=stop)
    await stream.finish()


async def _generate(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", stop: "_StopSignal"
) -> tuple[str, str]:
    """Stream the model's reply into `stream` until it ends, fails or is stopped."""
    coalescer = _Coalescer(stream.publish, interval=settings.CHAT_STREAM_INTERVAL)
    writing = asyncio.create_task(_write(turns=turns, stream=stream, coalescer=coalescer))
    saving = asyncio.create_task(stream.keep_saving())
    try:
        await asyncio.wait({writing, saving, stop.received}, return_when=asyncio.FIRST_COMPLETED)
        if writing.done():
            return writing.result()
        # Stopped by a tab, or the row is gone (history cleared): end the
        # model's stream too, so it stops spending tokens.
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        return Message.Status.STOPPED, ""
    finally:
        saving.cancel()
        await coalescer.close()


async def _write(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", coalescer: "_Coalescer"
) -> tuple[str, str]:
    # The room's current model: its owner may have changed it since the tab connected.
    model, temperature = await selectors.room_model_settings(room=stream.room)
    stream.reply.model = llm.model_name(model=model)
    answer = llm.stream_reply(turns, model=model, temperature=temperature)
    try:
        async for delta in answer:
            stream.reply.content += delta
            coalescer.mark()
    except llm.ModelError as exc:
        return Message.Status.ERROR, str(exc)
    except Exception:
        logger.exception("reply %s failed", stream.reply.pk)
        return Message.Status.ERROR, gettext_noop("Something went wrong on the server.")
    finally:
        usage_record(reply=stream.reply, usage=answer.usage)
    return Message.Status.COMPLETE, ""


def usage_record(*, reply: Message, usage: llm.Usage | None) -> None:
    """Put the server's token counts on the reply (saved with its final state); None is unknown."""
    reply.prompt_tokens = usage.prompt_tokens if usage else None
    reply.completion_tokens = usage.completion_tokens if usage else None


class _StopSignal:
    """The reply's own group on the channel layer: a Stop from any process reaches it."""

    def __init__(self, *, reply_id: int) -> None:
        self.group = reply_group(reply_id)
        self.layer = get_channel_layer()
        self.channel = ""
        self.received: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "_StopSignal":
        self.channel = await self.layer.new_channel()
        try:
            await self.layer.group_add(self.group, self.channel)
        except Exception:
            # Without the layer the reply still completes; Stop cannot reach it.
            logger.warning("cannot listen for Stop on %s", self.group, exc_info=True)
            self.received = asyncio.create_task(asyncio.Event().wait())
        else:
            self.received = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.received.cancel()
        with contextlib.suppress(Exception):
            await self.layer.group_discard(self.group, self.channel)

    async def _listen(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                logger.warning("lost the Stop listener on %s", self.group, exc_info=True)
                await asyncio.sleep(1)
                continue
            if event.get("type") == "reply.stop":
                return


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
    """A growing reply: broadcast (rendered once for every tab) and saved as it grows."""

    def __init__(self, *, room: Room, reply: Message) -> None:
        self.room, self.reply = room, reply

    async def publish(self) -> None:
        self.reply.seq += 1
        await self._broadcast()

    async def keep_saving(self) -> None:
        """Save the text so far every CHAT_SAVE_INTERVAL, as long as the row is ours.

        Each save bounds what a crash can lose, and is the heartbeat that tells
        recovery the reply is alive. Returns when the row was deleted or taken over.
        """
        while True:
            await asyncio.sleep(settings.CHAT_SAVE_INTERVAL)
            if not await self._save():
                return

    async def finish(self) -> None:
        self.reply.seq += 1
        if await self._save(final=True):
            await self._broadcast()

    async def _save(self, *, final: bool = False) -> bool:
        fields = {
            "content": self.reply.content,
            "seq": self.reply.seq,
            "updated_at": timezone.now(),
        }
        if final:
            fields |= {
                "status": self.reply.status,
                "error": self.reply.error,
                "model": self.reply.model,
                "prompt_tokens": self.reply.prompt_tokens,
                "completion_tokens": self.reply.completion_tokens,
            }
        return bool(
            await Message.objects.filter(pk=self.reply.pk, status=Message.Status.STREAMING).aupdate(
                **fields
            )
        )

    async def _broadcast(self) -> None:
        try:
            await room_send(
                room_id=self.room.pk,
                html=rendering.in_every_language(rendering.message_oob, self.reply),
            )
        except Exception:
            # Tabs miss this update, not the reply: the next update carries
            # the whole text, the database has it, and pages catch up on reconnect.
            logger.warning("broadcast of reply %s failed", self.reply.pk, exc_info=True)
