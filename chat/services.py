"""Writes. Every change to rooms and messages goes through here, and only
here broadcasts to the room's tabs: after the write has committed.

A reply in progress is owned by chat.replies, which these start."""

from functools import partial

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from chat import leases, ratelimit, rendering, replies, shutdown
from chat.broadcast import (
    message_broadcast_on_commit,
    reply_group,
    room_member_removed_sync,
    room_send_sync,
)
from chat.models import Message, Room


class RoomBusy(Exception):
    """The room is still answering its previous message."""


class ServerRestarting(Exception):
    """This process is shutting down: it starts no reply, and saves nothing new."""


class RateLimited(Exception):
    """The user sent too many messages; `retry_after` says for how many seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class MemberError(Exception):
    """A member could not be added or removed; the message says why."""


def room_create(*, owner: AbstractBaseUser, name: str, system_prompt: str = "") -> Room:
    return Room.objects.create(owner=owner, name=name, system_prompt=system_prompt)


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
                partial(
                    room_send_sync,
                    room_id=room.pk,
                    html=rendering.in_every_language(rendering.room_reset, room=room),
                )
            )
    return room


async def message_send(*, room: Room, author: AbstractBaseUser, content: str) -> Message:
    """Save a user's message and start the room's reply to it.

    Raises RateLimited when the author sends too fast, and RoomBusy while the
    room's previous reply streams, ServerRestarting while the process drains;
    in every case nothing is saved.
    """
    if shutdown.draining():
        raise ServerRestarting
    if retry_after := await ratelimit.message_rate_hit(user_id=author.pk):
        raise RateLimited(retry_after)
    user_message, reply = await database_sync_to_async(_turn_create)(
        room=room, author=author, content=content
    )
    replies.reply_start(room=room, reply=reply)
    return user_message


def _turn_create(*, room: Room, author: AbstractBaseUser, content: str) -> tuple[Message, Message]:
    replies.reply_recover_stale(room=room)
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                room=room, author=author, role=Message.Role.USER, content=content
            )
            # The placeholder claims the room: a second one fails the
            # one_streaming_reply_per_room constraint, in any process.
            reply = Message.objects.create(
                room=room,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                owner=leases.PROCESS_ID,
            )
            message_broadcast_on_commit(user_message, reply)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return user_message, reply


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
                .update(
                    status=Message.Status.STREAMING,
                    owner=leases.PROCESS_ID,
                    content="",
                    error="",
                    sources=[],
                    seq=F("seq") + 1,
                    updated_at=timezone.now(),
                )
            )
            if not restarted:
                raise RoomBusy
            last.refresh_from_db()
            message_broadcast_on_commit(last)
    except IntegrityError as exc:
        raise RoomBusy from exc
    return last


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
