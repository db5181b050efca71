"""The room group on the channel layer: what a write tells the tabs, rendered here, once.

Only services and the turn modules (chat.turns, chat.replies, chat.reply_stream) call
these, and the socket's catch-up (chat.room_sync) to pass on a tab's ask for a
streaming reply. What is sent after a commit is sent with robust=True: a broadcast
Redis refuses is logged and left to the pages' repair (each update carries its seq;
a gap, a silence or a reconnect makes a page sync), and never undoes or stalls the
write."""

import logging
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction

from chat import rendering, selectors
from chat.models import Message, Room

logger = logging.getLogger(__name__)


def room_group(room_id: int) -> str:
    return f"room-{room_id}"


def reply_asks_group(message_id: int) -> str:
    """Where the process streaming a reply hears that a tab asked for it (chat.reply_stream)."""
    return f"reply-asks-{message_id}"


async def reply_ask(message_id: int, *, seq: int) -> None:
    """Tell the process streaming this reply, if any, that a tab holding it at `seq`
    asked for it. A lost ask costs that tab the next one, 2 s later (static/chat/chat.js)."""
    try:
        await get_channel_layer().group_send(
            reply_asks_group(message_id), {"type": "reply.asked", "seq": seq}
        )
    except Exception:
        logger.warning("could not pass on an ask for reply %s", message_id, exc_info=True)


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
    await get_channel_layer().group_send(
        room_group(room_id), fragment_event("chat.message", html, key=key)
    )


def room_send_sync(*, room_id: int, html: Mapping[str, str], key: str | None = None) -> None:
    async_to_sync(room_send)(room_id=room_id, html=html, key=key)


def group_send_sync(*, group: str, event: dict) -> None:
    """Send a Channels event to a group from synchronous code (an after_commit callback)."""
    async_to_sync(get_channel_layer().group_send)(group, event)


async def delta_send(*, room_id: int, message_id: int, frame: str) -> None:
    """Send a streaming reply's delta (chat.deltas) to every tab in the room: one frame
    for every language. A slow tab's waiting deltas for the reply are merged."""
    event = {"type": "chat.delta", "frame": frame, "key": f"message-{message_id}"}
    await get_channel_layer().group_send(room_group(room_id), event)


def message_key(message: Message) -> str:
    return f"message-{message.pk}"


def room_version_bump(*, room_id: int, message_ids: list[int], reset: bool = False) -> int:
    """Count a change to these messages (or, with `reset`, the clearing of the room's
    history) in the room's version, and return it. In the caller's transaction: the
    room's row stays locked until it commits, so versions commit in order."""
    room = connection.ops.quote_name(Room._meta.db_table)
    # One statement bumps and reads the version (RETURNING: SQLite 3.35+, PostgreSQL);
    # no savepoint, as a failure here fails the caller's change too.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {room} SET version = version + 1,"
            " reset_version = CASE WHEN %s THEN version + 1 ELSE reset_version END"
            " WHERE id = %s RETURNING version",
            [reset, room_id],
        )
        row = cursor.fetchone()
        version = row[0] if row else 0
        if message_ids:
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
    after_commit(room_send_sync, room_id=messages[0].room_id, html=html, key=key)


def user_group(user_id: int) -> str:
    """A user's group: their room-list pages listen on it (chat.consumers_list)."""
    return f"user-{user_id}"


def fragment_event(event_type: str, html: Mapping[str, str], **fields: object) -> dict:
    """A Channels event carrying a fragment in every language: "html" in the default
    language, the others in "translations" (room_send's "chat.message" is one).
    A "key" field names what it shows, so a slow tab gets only its newest version."""
    default = settings.LANGUAGE_CODE
    return {
        "type": event_type,
        "html": html[default],
        "translations": {code: text for code, text in html.items() if code != default},
        **fields,
    }


def after_commit(func: Callable[..., None], /, **kwargs: Any) -> None:
    """Call func(**kwargs) once the transaction commits; a failure is logged, never raised
    into the write that committed (robust). Django logs it by the function's
    name, which a functools.partial lacks, so this wraps it in one that has it."""

    def call() -> None:
        func(**kwargs)

    call.__qualname__ = func.__qualname__
    transaction.on_commit(call, robust=True)


def queue_changed_on_commit(*, room_id: int) -> None:
    """After commit, the room's queue to its tabs, as a "chat.queue" event."""
    after_commit(_queue_send, room_id=room_id)


def _queue_send(*, room_id: int) -> None:
    queue = selectors.room_queue(room_id=room_id)
    html = rendering.in_every_language(rendering.queue, queue=queue)
    group_send_sync(
        group=room_group(room_id), event=fragment_event("chat.queue", html, key="queue")
    )


def room_settings_on_commit(*, room: Room) -> None:
    """After commit, the room's header (name, prompt, model, who the AI answers) to its tabs."""
    html = rendering.in_every_language(rendering.room_title, room=room)
    after_commit(room_send_sync, room_id=room.pk, html=html)


def room_reset_on_commit(*, room: Room, cleared_through: int) -> None:
    """After commit, an emptied conversation to the room's tabs. Their sockets then
    drop any later update of a message up to `cleared_through`: a reply that was
    streaming may have published one more before it heard its Stop. The room's
    version counts the reset, so a tab offline meanwhile replaces its list."""
    room.version = room_version_bump(room_id=room.pk, message_ids=[], reset=True)
    event = fragment_event(
        "chat.room_reset",
        rendering.in_every_language(rendering.room_reset, room=room),
        cleared_through=cleared_through,
    )
    after_commit(group_send_sync, group=room_group(room.pk), event=event)


def reply_stop_on_commit(*, reply_id: int) -> None:
    """After commit, Stop to whichever process writes this reply."""
    after_commit(group_send_sync, group=reply_group(reply_id), event={"type": "reply.stop"})


async def reply_stop(*, reply_id: int) -> None:
    await get_channel_layer().group_send(reply_group(reply_id), {"type": "reply.stop"})


def room_gone_on_commit(*, room_id: int, user_id: int | None) -> None:
    """After commit, close the room's tabs with 4404: one user's (they left), or everyone's."""
    event = {"type": "chat.room_gone", "user_id": user_id}
    after_commit(group_send_sync, group=room_group(room_id), event=event)


def room_member_removed_on_commit(*, room_id: int, user_id: int) -> None:
    """After commit, the removed user's tabs of the room close themselves (4403)."""
    event = {"type": "chat.member_removed", "user_id": user_id}
    after_commit(group_send_sync, group=room_group(room_id), event=event)
