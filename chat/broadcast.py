"""The room group on the channel layer. Only services (and the reply engine) call these."""

from collections.abc import Mapping
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F

from chat import rendering
from chat.models import Message, Room


def room_group(room_id: int) -> str:
    return f"room-{room_id}"


def reply_group(message_id: int) -> str:
    """The group a reply's task listens on, for Stop."""
    return f"reply-{message_id}"


async def room_send(*, room_id: int, html: Mapping[str, str], key: str | None = None) -> None:
    """Send an HTML fragment to every tab in the room, in every process.

    `html` holds the fragment in each of the site's languages
    (rendering.in_every_language); the event carries the default language's as
    "html" and the others' as "translations", and each tab gets its own. `key`
    names the one message it carries: a slow tab skips to its newest version.
    """
    default = settings.LANGUAGE_CODE
    event = {
        "type": "chat.message",
        "html": html[default],
        "translations": {code: text for code, text in html.items() if code != default},
        "key": key,
    }
    await get_channel_layer().group_send(room_group(room_id), event)


def room_send_sync(*, room_id: int, html: Mapping[str, str], key: str | None = None) -> None:
    async_to_sync(room_send)(room_id=room_id, html=html, key=key)


async def delta_send(*, room_id: int, message_id: int, frame: str) -> None:
    """Send a streaming reply's delta (chat.deltas) to every tab in the room: one frame
    for every language. A slow tab's waiting deltas for the reply are merged."""
    event = {"type": "chat.delta", "frame": frame, "key": f"message-{message_id}"}
    await get_channel_layer().group_send(room_group(room_id), event)


def message_key(message: Message) -> str:
    return f"message-{message.pk}"


def room_member_removed_sync(*, room_id: int, user_id: int) -> None:
    """Tell the room's consumers; the removed user's close themselves."""
    async_to_sync(get_channel_layer().group_send)(
        room_group(room_id), {"type": "chat.member_removed", "user_id": user_id}
    )


def room_version_bump(*, room_id: int, message_ids: list[int], reset: bool = False) -> int:
    """Count a change to these messages (or, with `reset`, the clearing of the room's
    history) in the room's version, and return it. In the caller's transaction: the
    room's row stays locked until it commits, so versions commit in order."""
    with transaction.atomic():
        Room.objects.filter(pk=room_id).update(version=F("version") + 1)
        version = Room.objects.filter(pk=room_id).values_list("version", flat=True).first() or 0
        if reset:
            Room.objects.filter(pk=room_id).update(reset_version=version)
        Message.objects.filter(pk__in=message_ids).update(version=version)
    return version


def message_broadcast_on_commit(*messages: Message) -> None:
    """Send these messages to their room's tabs once the transaction has committed,
    each marked with the room's version of this change."""
    version = room_version_bump(
        room_id=messages[0].room_id, message_ids=[message.pk for message in messages]
    )
    for message in messages:
        message.version = version
    html = rendering.messages_in_every_language(*messages)
    key = message_key(messages[0]) if len(messages) == 1 else None
    transaction.on_commit(partial(room_send_sync, room_id=messages[0].room_id, html=html, key=key))


def room_reset_broadcast_on_commit(*, room: Room) -> None:
    """Tell the room's tabs its history was cleared, once the transaction has committed."""
    room.version = room_version_bump(room_id=room.pk, message_ids=[], reset=True)
    html = rendering.in_every_language(rendering.room_reset, room=room)
    transaction.on_commit(partial(room_send_sync, room_id=room.pk, html=html))


def user_group(user_id: int) -> str:
    """A user's group: their room-list pages listen on it (chat.consumers_list)."""
    return f"user-{user_id}"


def fragment_event(event_type: str, html: Mapping[str, str], **fields: object) -> dict:
    """A Channels event of its own type carrying a fragment in every language, shaped
    like room_send's ("html" in the default language, the others in "translations").
    A "key" field names what it shows, so a slow tab gets only its newest version."""
    default = settings.LANGUAGE_CODE
    return {
        "type": event_type,
        "html": html[default],
        "translations": {code: text for code, text in html.items() if code != default},
        **fields,
    }
