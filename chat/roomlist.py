"""The live room list: tell the people who can see a room that it changed.

Each user's list pages listen on the user's group (broadcast.user_group); the
event names the room only, and each page renders its own card, with that
user's unread count (chat.consumers_list).
"""

import asyncio

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.broadcast import after_commit, user_group
from chat.models import Room


def room_user_ids(*, room_id: int) -> set[int]:
    """The owner and the members: everyone whose list shows the room.

    One query (a room with its members joined), as it runs for every message."""
    rows = Room.objects.filter(pk=room_id).values_list("owner_id", "members__id")
    return {user_id for row in rows for user_id in row if user_id is not None}


def room_changed_on_commit(*, room: Room, also: tuple[int, ...] = ()) -> None:
    """After commit, the lists of the room's people (and `also`) show its new state.

    The people are taken now, so a room being deleted or left still reaches them."""
    user_ids = {*room_user_ids(room_id=room.pk), *also}
    # A room list that misses this catches up at its next change, or a reload.
    after_commit(_send, room_id=room.pk, user_ids=user_ids)


async def room_changed_send(*, room_id: int) -> None:
    """The lists of the room's people show its new state, now (from the event loop:
    the people are read on the database thread, the sends stay on the loop)."""
    user_ids = await database_sync_to_async(room_user_ids)(room_id=room_id)
    await _send_all(room_id=room_id, user_ids=user_ids)


def _send(*, room_id: int, user_ids: set[int]) -> None:
    # One hop to the event loop for all of them, not one per person.
    async_to_sync(_send_all)(room_id=room_id, user_ids=user_ids)


async def _send_all(*, room_id: int, user_ids: set[int]) -> None:
    layer = get_channel_layer()
    event = {"type": "rooms.changed", "room_id": room_id}
    await asyncio.gather(*(layer.group_send(user_group(user_id), event) for user_id in user_ids))
