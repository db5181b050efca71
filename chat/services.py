"""Writes to rooms and their membership. Each broadcasts what it changed only after
its transaction has committed (chat.broadcast, chat.roomlist), and starts nothing:
turns and the messages they write are chat.turns'."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat import roomlist
from chat.broadcast import (
    queue_changed_on_commit,
    reply_stop_on_commit,
    room_gone_on_commit,
    room_member_removed_on_commit,
    room_reset_on_commit,
    room_settings_on_commit,
)
from chat.models import Message, Room, RoomRead


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
    max_reply_tokens: int | None = None,
    context_tokens: int | None = None,
) -> Room:
    # Unset, the model and temperature are the settings' (Room's defaults).
    options = {"model": model, "temperature": temperature}
    return Room.objects.create(
        owner=owner,
        name=name,
        system_prompt=system_prompt,
        ai_answers=ai_answers,
        max_reply_tokens=max_reply_tokens,
        context_tokens=context_tokens,
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
        room_member_removed_on_commit(room_id=room.pk, user_id=user_id)


def room_update(
    *,
    room: Room,
    name: str,
    system_prompt: str,
    model: str | None = None,
    temperature: float | None = None,
    ai_answers: str = Room.AiAnswers.EVERY,
    max_reply_tokens: int | None = None,
    context_tokens: int | None = None,
) -> Room:
    """Rename the room, or change its prompt, model, temperature, who the AI answers or
    its spend limits (None: the settings'); a new prompt starts a new conversation.
    The next reply uses the new settings."""
    with transaction.atomic():
        stored = Room.objects.select_for_update().get(pk=room.pk)
        prompt_changed = stored.system_prompt != system_prompt
        room.name, room.system_prompt, room.ai_answers = name, system_prompt, ai_answers
        room.model = model if model is not None else stored.model
        room.temperature = temperature if temperature is not None else stored.temperature
        room.max_reply_tokens, room.context_tokens = max_reply_tokens, context_tokens
        room.save(
            update_fields=[
                "name",
                "system_prompt",
                "model",
                "temperature",
                "ai_answers",
                "max_reply_tokens",
                "context_tokens",
                "updated_at",
            ]
        )
        if prompt_changed:
            # The old answers were given under other instructions. A reply in
            # progress stops first, so it adds nothing to the emptied room.
            for reply_id in _streaming(room=room):
                reply_stop_on_commit(reply_id=reply_id)
            cleared_through = room.messages.order_by("-pk").values_list("pk", flat=True).first()
            room.messages.all().delete()
            room_reset_on_commit(room=room, cleared_through=cleared_through or 0)
            # Its waiting questions went with it.
            queue_changed_on_commit(room_id=room.pk)
        else:
            room_settings_on_commit(room=room)
    return room


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
            queue_changed_on_commit(room_id=room.pk)
        if (reply_id := _reply_answering(room=room, user=user)) is not None:
            reply_stop_on_commit(reply_id=reply_id)
        room_gone_on_commit(room_id=room.pk, user_id=user.pk)


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


def room_delete(*, room: Room) -> None:
    """Delete the room for everyone: a reply in progress stops, every open tab closes (4404)."""
    with transaction.atomic():
        roomlist.room_changed_on_commit(room=room)
        for reply_id in _streaming(room=room):
            reply_stop_on_commit(reply_id=reply_id)
        room_gone_on_commit(room_id=room.pk, user_id=None)
        room.delete()


def _streaming(*, room: Room) -> list[int]:
    return list(room.messages.filter(status=Message.Status.STREAMING).values_list("pk", flat=True))
