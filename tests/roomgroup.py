"""Listening to a room's group on the channel layer, as a tab's consumer does (in-process tests)."""

import asyncio

from channels.layers import get_channel_layer

from chat.broadcast import room_group


async def listen(room_id: int) -> str:
    """A channel in the room's group, as a tab's consumer would have."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room_group(room_id), channel)
    return channel


async def next_frame(channel: str) -> str:
    """A room event's frame: a fragment, or a streaming reply's delta."""
    event = await asyncio.wait_for(get_channel_layer().receive(channel), 5)
    assert event["type"] in {"chat.message", "chat.delta"}
    return event["html"] if event["type"] == "chat.message" else event["frame"]
