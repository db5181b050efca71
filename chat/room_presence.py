"""The room socket's part in shared rooms: who is here, who is typing, and the AI's queue.

A mixin of chat.consumers.ChatConsumer, which sets `room` before any frame.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async

from chat import presence, rendering, selectors, services
from chat.models import Room


class RoomPresence:
    room: Room
    scope: dict[str, Any]
    channel_name: str
    # The page announced itself ("join"): it counts as someone here.
    present: bool = False

    # The consumer's own (annotations only: they must not shadow it in the MRO).
    send: Callable[..., Awaitable[None]]
    chat_message: Callable[[dict[str, Any]], Awaitable[None]]

    async def _presence_join(self) -> None:
        user_id = self.scope["user"].pk
        # Once per socket: a repeated "join" tells the room nothing new.
        if not self.present:
            self.present = True
            await presence.presence_join(
                room_id=self.room.pk, user_id=user_id, channel=self.channel_name
            )
        await database_sync_to_async(services.room_read_mark)(room_id=self.room.pk, user_id=user_id)
        # A reconnecting page may have missed changes to the queue.
        queue = await database_sync_to_async(selectors.room_queue)(room_id=self.room.pk)
        await self.send(text_data=rendering.queue(queue=queue))

    async def _presence_leave(self) -> None:
        user_id = self.scope["user"].pk
        await presence.presence_leave(
            room_id=self.room.pk, user_id=user_id, channel=self.channel_name
        )
        await database_sync_to_async(services.room_read_mark)(room_id=self.room.pk, user_id=user_id)

    async def chat_typing(self, event: dict[str, Any]) -> None:
        # Nobody needs to see themselves typing.
        if event["user_id"] != self.scope["user"].pk:
            await self.chat_message(event)
