"""Writes. Every change to rooms and messages goes through here, and only
here broadcasts to the room's tabs: after the write has committed.

A reply in progress is owned by chat.replies, which these start."""

import uuid
from functools import partial

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from chat import leases, queue, ratelimit, rendering, replies, roomlist, shutdown
from chat.broadcast import (
    message_broadcast_on_commit,
    reply_group,
    room_group,
    room_member_removed_sync,
    room_send_sync,
)
from chat.models import Message, Room, RoomRead


class RoomBusy(Exception):
    """The room is still answering its previous message."""


class ServerRestarting(Exception):
    """This process is shutting down: it starts no reply, and saves nothing new."""


class RateLimited(Exception):
    """The user sent too many messages; `retry_after` says for how many seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class EditRefused(Exception):
    """A message cannot be edited; the message says why."""


class QueueFull(Exception):
    """CHAT_QUEUE_LIMIT questions already wait for the AI in this room."""


class RoomGone(Exception):
    """The room was deleted."""


class MemberError(Exception):
    """A member could not be added or removed; the message says why."""


def room_create(
    *,
    owner: User,
    name: str,
    system_prompt: str = "",
    model: str | None = None,
    temperature: float | None = None,
    ai_answers: str = Room.AiAnswers.EVERY,
) -> Room:
    # Unset, the model and temperature are the settings' (Room's defaults).
    options = {"model": model, "temperature": temperature}
    return Room.objects.create(
        owner=owner,
        name=name,
        system_prompt=system_prompt,
        ai_answers=ai_answers,
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
    roomlist.room_changed_on_commit(room=room)
    return user


def room_member_remove(*, room: Room, user_id: int) -> None:
    """Take a member out of the room; their open tabs are closed at once."""
    with transaction.atomic():
        roomlist.room_changed_on_commit(room=room)
        room.members.remove(user_id)
        transaction.on_commit(partial(room_member_removed_sync, room_id=room.pk, user_id=user_id))


def room_update(
    *,
    room: Room,
    name: str,
    system_prompt: str,
    model: str | None = None,
    temperature: float | None = None,
    ai_answers: str = Room.AiAnswers.EVERY,
) -> Room:
    """Rename the room, or change its prompt, model, temperature or who the AI answers;
    a new prompt starts a new conversation. The next reply uses the new settings."""
    with transaction.atomic():
        stored = Room.objects.select_for_update().get(pk=room.pk)
        prompt_changed = stored.system_prompt != system_prompt
        room.name, room.system_prompt, room.ai_answers = name, system_prompt, ai_answers
        room.model = model if model is not None else stored.model
        room.temperature = temperature if temperature is not None else stored.temperature
        room.save(
            update_fields=[
                "name",
                "system_prompt",
                "model",
                "temperature",
                "ai_answers",
                "updated_at",
            ]
        )
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
            # Its waiting questions went with it.
            queue.queue_broadcast_on_commit(room_id=room.pk)
    return room


async def message_send(
    *, room: Room, author: User, content: str, client_id: uuid.UUID | None = None
) -> Message:
    """Save a user's message; start the room's reply to it, or queue it behind the one
    streaming. People are never refused for a reply in progress.

    In a "mentioned" room a message not addressed to the AI is saved and shown only.
    While this process shuts down a question is queued, for the next live process
    (chat.queue.queue_resume) to answer. Raises RateLimited when the author sends
    too fast, QueueFull when CHAT_QUEUE_LIMIT questions already wait; either way
    nothing is saved.

    A `client_id` the author already sent in this room returns that message:
    nothing new is saved or answered (the one_message_per_client_id constraint
    holds across processes).
    """
    if client_id is not None and (sent := await _message_sent(room, author, client_id)):
        return sent
    if retry_after := await ratelimit.message_rate_hit(user_id=author.pk):
        raise RateLimited(retry_after)
    try:
        user_message, reply = await database_sync_to_async(_turn_create)(
            room=room,
            author=author,
            content=content,
            may_start=not shutdown.draining(),
            client_id=client_id,
        )
    except IntegrityError:
        # The same send, saved by another process a moment ago.
        if client_id is None or not (sent := await _message_sent(room, author, client_id)):
            raise
        return sent
    if reply is not None:
        replies.reply_start(room=room, reply=reply)
    elif user_message.status == Message.Status.QUEUED:
        # The reply ahead may have ended while this was being saved.
        await queue.queue_advance(room_id=room.pk)
    return user_message


@database_sync_to_async
def _message_sent(room: Room, author: User, client_id: uuid.UUID) -> Message | None:
    return Message.objects.filter(room=room, author=author, client_id=client_id).first()


def _turn_create(
    *,
    room: Room,
    author: User,
    content: str,
    may_start: bool = True,
    client_id: uuid.UUID | None = None,
) -> tuple[Message, Message | None]:
    replies.reply_recover_stale(room=room)
    addressed = queue.message_addressed(room=room, content=content)
    with transaction.atomic():
        # Serialises this room's queue decisions (a row lock on PostgreSQL).
        if not Room.objects.select_for_update().filter(pk=room.pk).exists():
            raise RoomGone
        roomlist.room_changed_on_commit(room=room)
        if not addressed:
            user_message = Message.objects.create(
                room=room,
                author=author,
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
            )
            message_broadcast_on_commit(user_message)
            return user_message, None
        waiting = room.messages.filter(status=Message.Status.QUEUED).count()
        if not waiting and may_start:
            try:
                with transaction.atomic():
                    user_message = Message.objects.create(
                        room=room,
                        author=author,
                        role=Message.Role.USER,
                        content=content,
                        client_id=client_id,
                    )
                    # The placeholder claims the room: a second one fails the
                    # one_streaming_reply_per_room constraint, in any process.
                    reply = Message.objects.create(
                        room=room,
                        role=Message.Role.ASSISTANT,
                        status=Message.Status.STREAMING,
                        owner=leases.PROCESS_ID,
                    )
            except IntegrityError:
                pass  # a reply is streaming: wait behind it
            else:
                message_broadcast_on_commit(user_message, reply)
                return user_message, reply
        if waiting >= settings.CHAT_QUEUE_LIMIT:
            raise QueueFull
        user_message = Message.objects.create(
            room=room,
            author=author,
            role=Message.Role.USER,
            content=content,
            status=Message.Status.QUEUED,
            client_id=client_id,
        )
        queue.queue_broadcast_on_commit(room_id=room.pk)
    return user_message, None


def queue_cancel(*, room: Room, user: User, message_id: int) -> bool:
    """Take the author's question out of the queue; False if it is not theirs or not waiting."""
    with transaction.atomic():
        deleted, _rows = Message.objects.filter(
            pk=message_id, room=room, author=user, status=Message.Status.QUEUED
        ).delete()
        if deleted:
            queue.queue_broadcast_on_commit(room_id=room.pk)
    return bool(deleted)


def room_read_mark(*, room_id: int, user_id: int) -> None:
    """The user has the room open: the room list counts what arrives after now as unread."""
    try:
        with transaction.atomic():
            # One upsert, whether or not the user opened the room before.
            RoomRead.objects.bulk_create(
                [RoomRead(room_id=room_id, user_id=user_id, read_at=timezone.now())],
                update_conflicts=True,
                unique_fields=["user", "room"],
                update_fields=["read_at"],
            )
    except IntegrityError:
        pass  # the room was just deleted: nothing left to read


def room_leave(*, room: Room, user: User) -> None:
    """A member leaves: their waiting questions go, the reply to their question stops,
    and their open tabs close (4404)."""
    if user.pk == room.owner_id:
        raise MemberError(_("The owner cannot leave their own room; delete it instead."))
    with transaction.atomic():
        roomlist.room_changed_on_commit(room=room)
        room.members.remove(user)
        cancelled, _rows = room.messages.filter(author=user, status=Message.Status.QUEUED).delete()
        if cancelled:
            queue.queue_broadcast_on_commit(room_id=room.pk)
        if (reply_id := _reply_answering(room=room, user=user)) is not None:
            transaction.on_commit(partial(_reply_stop_sync, reply_id=reply_id))
        transaction.on_commit(partial(room_gone_sync, room_id=room.pk, user_id=user.pk))


def _reply_answering(*, room: Room, user: User) -> int | None:
    """The reply streaming in the room, if it answers this user's question."""
    reply = room.messages.filter(status=Message.Status.STREAMING).first()
    if reply is None:
        return None
    question = (
        room.messages.filter(pk__lt=reply.pk, role=Message.Role.USER)
        .exclude(status=Message.Status.QUEUED)
        .last()
    )
    return reply.pk if question is not None and question.author_id == user.pk else None


def _reply_stop_sync(*, reply_id: int) -> None:
    async_to_sync(get_channel_layer().group_send)(reply_group(reply_id), {"type": "reply.stop"})


def room_delete(*, room: Room) -> None:
    """Delete the room for everyone: a reply in progress stops, every open tab closes (4404)."""
    with transaction.atomic():
        roomlist.room_changed_on_commit(room=room)
        streaming = list(
            room.messages.filter(status=Message.Status.STREAMING).values_list("pk", flat=True)
        )
        room_id = room.pk
        room.delete()
        transaction.on_commit(partial(_room_deleted, room_id=room_id, reply_ids=streaming))


def _room_deleted(*, room_id: int, reply_ids: list[int]) -> None:
    for reply_id in reply_ids:
        _reply_stop_sync(reply_id=reply_id)
    room_gone_sync(room_id=room_id, user_id=None)


def room_gone_sync(*, room_id: int, user_id: int | None) -> None:
    """Close the room's tabs with 4404: one user's (they left), or everyone's (deleted)."""
    async_to_sync(get_channel_layer().group_send)(
        room_group(room_id), {"type": "chat.room_gone", "user_id": user_id}
    )


async def reply_regenerate(*, room: Room) -> Message:
    """Answer the last message again, replacing the room's last reply (also a retry after an error).

    Raises RoomBusy while a reply streams, NothingToRegenerate when the room's
    last message is not a finished reply, ServerRestarting while the process drains.
    """
    if shutdown.draining():
        raise ServerRestarting
    reply = await database_sync_to_async(_reply_reset)(room=room)
    replies.reply_start(room=room, reply=reply)
    return reply


class NothingToRegenerate(Exception):
    """The room's last message is not a finished reply."""


def _reply_reset(*, room: Room) -> Message:
    replies.reply_recover_stale(room=room)
    # Questions waiting come first; a newer message (queued too) keeps this one put.
    last = room.messages.exclude(status=Message.Status.QUEUED).last()
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
            message_broadcast_on_commit(last)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return last


async def message_edit(*, room: Room, author: User, message_id: int, content: str) -> Message:
    """Change the room's last user message and answer it again, replacing its reply.

    Only its author may, and not while a reply streams (RoomBusy); anything
    else raises EditRefused, and ServerRestarting while the process drains. Either
    way nothing changes. Returns the reply.
    """
    if shutdown.draining():
        raise ServerRestarting
    if retry_after := await ratelimit.message_rate_hit(user_id=author.pk):
        raise RateLimited(retry_after)
    reply = await database_sync_to_async(_turn_edit)(
        room=room, author=author, message_id=message_id, content=content
    )
    replies.reply_start(room=room, reply=reply)
    return reply


def _turn_edit(*, room: Room, author: User, message_id: int, content: str) -> Message:
    replies.reply_recover_stale(room=room)
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
                    room=room,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.STREAMING,
                    owner=leases.PROCESS_ID,
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
            message_broadcast_on_commit(message, reply)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return reply


def _restarted_reply() -> dict[str, object]:
    """The fields that turn a finished reply back into an empty streaming one."""
    return {
        "status": Message.Status.STREAMING,
        "owner": leases.PROCESS_ID,
        "content": "",
        "error": "",
        "sources": [],
        "model": "",
        "prompt_tokens": None,
        "completion_tokens": None,
        "seq": F("seq") + 1,
        "updated_at": timezone.now(),
    }


class NothingToContinue(Exception):
    """That message is not the room's last reply, or it was not interrupted or stopped."""


async def reply_continue(*, room: Room, message_id: int) -> Message:
    """Carry an interrupted or stopped reply, the room's last message, on from its text.

    Raises NothingToContinue for any other message (or one of another room),
    RoomBusy while a reply streams, ServerRestarting while the process drains.
    """
    if shutdown.draining():
        raise ServerRestarting
    reply = await database_sync_to_async(_reply_resume)(room=room, message_id=message_id)
    replies.reply_start(room=room, reply=reply, continuing=True)
    return reply


def _reply_resume(*, room: Room, message_id: int) -> Message:
    replies.reply_recover_stale(room=room)
    newer = Message.objects.filter(room=room, pk__gt=OuterRef("pk"))
    try:
        with transaction.atomic():
            # Only while it is still interrupted or stopped and still last: another
            # tab may have continued it or sent a message meanwhile.
            resumed = (
                Message.objects.filter(
                    pk=message_id,
                    room=room,
                    role=Message.Role.ASSISTANT,
                    status__in=[Message.Status.INTERRUPTED, Message.Status.STOPPED],
                )
                .filter(~Exists(newer))
                .update(
                    status=Message.Status.STREAMING,
                    owner=leases.PROCESS_ID,
                    error="",
                    seq=F("seq") + 1,
                    updated_at=timezone.now(),
                )
            )
            if not resumed:
                raise NothingToContinue
            reply = Message.objects.get(pk=message_id)
            message_broadcast_on_commit(reply)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return reply


async def reply_stop(*, room: Room, message_id: int) -> bool:
    """Ask whichever process is writing this reply to stop; False if it is not streaming."""
    if not await Message.objects.filter(
        pk=message_id, room=room, status=Message.Status.STREAMING
    ).aexists():
        return False
    await get_channel_layer().group_send(reply_group(message_id), {"type": "reply.stop"})
    return True
