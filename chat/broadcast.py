"""The room group on the channel layer. Only services call these."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def room_group(room_id: int) -> str:
    return f"room-{room_id}"


def reply_group(message_id: int) -> str:
    """The group a reply's task listens on, for Stop."""
    return f"reply-{message_id}"


async def room_send(*, room_id: int, html: str) -> None:
    """Send an HTML fragment to every tab in the room, in every process."""
    layer = get_channel_layer()
    await layer.group_send(room_group(room_id), {"type": "chat.message", "html": html})


def room_send_sync(*, room_id: int, html: str) -> None:
    async_to_sync(room_send)(room_id=room_id, html=html)


def room_member_removed_sync(*, room_id: int, user_id: int) -> None:
    """Tell the room's consumers; the removed user's close themselves."""
    async_to_sync(get_channel_layer().group_send)(
        room_group(room_id), {"type": "chat.member_removed", "user_id": user_id}
    )
