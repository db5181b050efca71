"""Reads. Views and consumers ask these; nothing here writes."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F, Max, Q, QuerySet
from django.db.models.functions import Coalesce

from chat.models import Message, Room

AnyUser = User | AnonymousUser


def room_visible(*, user: AnyUser) -> QuerySet[Room]:
    """The rooms a user may see: their own and those shared with them."""
    if not user.is_authenticated:
        return Room.objects.none()
    return Room.objects.filter(Q(owner=user) | Q(pk__in=user.shared_rooms.values("pk")))


def room_list(*, user: AnyUser) -> QuerySet[Room]:
    """The user's rooms, most recently active first; a new room counts as active when created."""
    return (
        room_visible(user=user)
        .select_related("owner")
        .annotate(
            message_count=Count("messages"),
            last_message_at=Max("messages__created_at"),
            last_activity=Coalesce(F("last_message_at"), F("created_at")),
        )
        .order_by("-last_activity", "-pk")
    )


def room_get(*, pk: int, user: AnyUser) -> Room | None:
    """The room, if this user may see it; others cannot tell it from a missing one."""
    return room_visible(user=user).filter(pk=pk).first()


async def room_aget(*, pk: int, user: AnyUser) -> Room | None:
    return await room_visible(user=user).filter(pk=pk).afirst()


async def room_model_settings(*, room: Room) -> tuple[str, float]:
    """The room's model and temperature as stored now (a connected tab's copy may be older)."""
    stored = await Room.objects.filter(pk=room.pk).values_list("model", "temperature").afirst()
    return stored or (room.model, room.temperature)


def room_members(*, room: Room) -> QuerySet:
    return room.members.order_by("username")


def room_messages(*, room: Room) -> QuerySet[Message]:
    return room.messages.select_related("author")


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # oldest first
    has_earlier: bool


def room_messages_page(*, room: Room, before: int | None = None) -> MessagePage:
    """The newest CHAT_PAGE_SIZE messages (before a message id, if given): two queries at most."""
    size = settings.CHAT_PAGE_SIZE
    newest = room_messages(room=room).order_by("-pk")
    if before is not None:
        newest = newest.filter(pk__lt=before)
    found = list(newest[: size + 1])
    return MessagePage(messages=found[:size][::-1], has_earlier=len(found) > size)


# Messages shown above a message opened from search.
CONTEXT_BEFORE = 5


def room_messages_page_from(*, room: Room, message_id: int) -> MessagePage | None:
    """Everything from a few messages before `message_id` to the newest, so the page
    can scroll to it however old it is; None when the room has no such message."""
    if not room.messages.filter(pk=message_id).exists():
        return None
    earlier = room.messages.filter(pk__lt=message_id).order_by("-pk").values_list("pk", flat=True)
    context = list(earlier[: CONTEXT_BEFORE + 1])
    first = context[:CONTEXT_BEFORE][-1] if context else message_id
    shown = room_messages(room=room).order_by("pk").filter(pk__gte=first)
    return MessagePage(messages=list(shown), has_earlier=len(context) > CONTEXT_BEFORE)


def room_history(*, room: Room, before: Message) -> list[dict[str, str]]:
    """The conversation sent to the model: the system prompt, then every finished turn."""
    turns: list[dict[str, str]] = []
    if room.system_prompt:
        turns.append({"role": "system", "content": room.system_prompt})
    for role, content in (
        room.messages.filter(pk__lt=before.pk).exclude(content="").values_list("role", "content")
    ):
        turns.append({"role": role, "content": content})
    return turns


# A page that was away for longer catches up by reloading.
SYNC_LIMIT = 200


def room_messages_after(*, room: Room, after: int) -> list[Message]:
    """What a reconnecting page missed: messages after `after`, oldest first."""
    return list(room_messages(room=room).filter(pk__gt=after)[:SYNC_LIMIT])


def room_message_newer(*, room: Room, pk: int, seq: int) -> list[Message]:
    """The room's message `pk`, if it is newer than the version `seq` a page holds.

    While a reply streams the saved row lags what was broadcast, so this mostly
    finds nothing; a final state is saved before it is broadcast, so a page
    that missed it finds it here. Another room's message is never found.
    """
    return list(room_messages(room=room).filter(pk=pk, seq__gt=seq))
