"""The live room list: tell the people who can see a room that it changed.

Each user's list pages listen on the user's group (broadcast.user_group); the
event names the room only, and each page renders its own card, with that
user's unread count (chat.consumers_list).
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.broadcast import after_commit, user_group
from chat.models import Room


def room_user_ids(*, room_id: int) -> list[int]:
    """The owner and the members: everyone whose list shows the room."""
    room = Room.objects.filter(pk=room_id).values("owner_id").first()
    if room is None:
        return []
    members = Room.members.through.objects.filter(room_id=room_id).values_list("user_id", flat=True)
    return [room["owner_id"], *members]


def room_changed_on_commit(*, room: Room, also: tuple[int, ...] = ()) -> None:
    """After commit, the lists of the room's people (and `also`) show its new state.

    The people are taken now, so a room being deleted or left still reaches them."""
    user_ids = {*room_user_ids(room_id=room.pk), *also}
    # A room list that misses this catches up at its next change, or a reload.
    after_commit(_send, room_id=room.pk, user_ids=user_ids)


def room_changed_send(*, room_id: int) -> None:
    _send(room_id=room_id, user_ids=set(room_user_ids(room_id=room_id)))


def _send(*, room_id: int, user_ids: set[int]) -> None:
    layer = get_channel_layer()
    for user_id in user_ids:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": "rooms.changed", "room_id": room_id}
        )
