"""Reads. Views and consumers ask these; nothing here writes."""

from django.db.models import Count, F, Max, QuerySet
from django.db.models.functions import Coalesce

from chat.models import Message, Room


def room_list() -> QuerySet[Room]:
    """Rooms, most recently active first; a new room counts as active when created."""
    return Room.objects.annotate(
        message_count=Count("messages"),
        last_message_at=Max("messages__created_at"),
        last_activity=Coalesce(F("last_message_at"), F("created_at")),
    ).order_by("-last_activity", "-pk")


def room_messages(*, room: Room) -> QuerySet[Message]:
    return room.messages.all()


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


async def room_aget(*, pk: int) -> Room | None:
    return await Room.objects.filter(pk=pk).afirst()


# A page that was away for longer catches up by reloading.
SYNC_LIMIT = 200


def room_messages_after(*, room: Room, after: int) -> list[Message]:
    """What a reconnecting page missed: messages after `after`, oldest first."""
    return list(room.messages.filter(pk__gt=after)[:SYNC_LIMIT])
