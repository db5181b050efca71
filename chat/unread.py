"""What is new to a user since they last had a room open ("New since you left").

Opening the room's page marks it read (chat.services.room_read_mark moves
`read_at`), so the page keeps the read before it as `since`: the divider and
Catch me up (chat.recaps) count from that, however often the room is marked read
while the page stays open.
"""

from datetime import datetime

from asgiref.sync import async_to_sync
from django.db import IntegrityError, connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat import presence, selectors
from chat.models import Message, Room, RoomRead


def room_open_mark(*, room_id: int, user_id: int) -> datetime | None:
    """The user opens the room's page: it is read now. Returns the read before this
    one (None if they had never opened it), kept as the user's `since`.

    One statement, on SQLite and PostgreSQL alike: the upsert moves the read it
    replaces to `since` and returns it, so no lock or transaction is needed."""
    table = connection.ops.quote_name(RoomRead._meta.db_table)
    sql = (
        f"INSERT INTO {table} (user_id, room_id, read_at, since) VALUES (%s, %s, %s, NULL) "
        f"ON CONFLICT (user_id, room_id) DO UPDATE SET since = {table}.read_at, "
        "read_at = excluded.read_at RETURNING id, since"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    try:
        (mark,) = RoomRead.objects.raw(sql, [user_id, room_id, now])
    except IntegrityError:
        return None  # the room was just deleted: nothing is new in it
    return mark.since


def room_since(*, room_id: int, user_id: int) -> datetime | None:
    """The read the user's last opening of the room's page counts from."""
    return (
        RoomRead.objects.filter(room_id=room_id, user_id=user_id)
        .values_list("since", flat=True)
        .first()
    )


def first_unread(*, room: Room, user_id: int, since: datetime | None) -> Message | None:
    """The first message, not the user's own, that came after `since`; None when
    nothing did, or the user had never opened the room."""
    if since is None:
        return None
    others = Q(author__isnull=True) | ~Q(author=user_id)
    return (
        selectors.room_messages(room=room)
        .filter(others, created_at__gt=since)
        .order_by("pk")
        .first()
    )


def still_here(*, room_id: int, user_id: int) -> bool:
    """Whether a page of the user's is open in the room, or was until now (a reload):
    what came meanwhile was seen as it came. A page that closes marks the room read
    before it leaves the presence (chat.consumers), so one of the two always holds."""
    return async_to_sync(presence.presence_has)(room_id=room_id, user_id=user_id)


def unread_from(*, room: Room, first: Message) -> QuerySet[Message]:
    """The conversation from the first unread message on, oldest first."""
    return selectors.room_messages(room=room).filter(pk__gte=first.pk).order_by("pk")
