"""The room list's websocket: /ws/rooms/ keeps the list page live.

It listens on the user's group (broadcast.user_group). When a room the user
can see changes (chat.roomlist), it sends that room's card, rendered for this
user (their unread count) in their language, to the top of the list, or takes
the card away when the room is gone. Frames from the page are ignored.
"""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from chat import presence, selectors, services
from chat.broadcast import user_group
from chat.frames import language as _language
from chat.room_frames import CLOSE_NOT_LOGGED_IN

LIST_TEMPLATE = "chat/room_list.html"


class RoomListConsumer(AsyncWebsocketConsumer):
    group: str = ""
    language: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            # Accepted first, or the browser sees a bare 1006 and htmx retries forever.
            await self.accept()
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        self.group = user_group(user.pk)
        self.language = _language(self.scope)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page's sync frames and the like: the list needs nothing from it."""

    async def rooms_changed(self, event: dict[str, Any]) -> None:
        user, room_id = self.scope["user"], event["room_id"]
        # Someone with the room open has read what arrives in it.
        if await presence.presence_has(room_id=room_id, user_id=user.pk):
            await database_sync_to_async(services.room_read_mark)(room_id=room_id, user_id=user.pk)
        await self.send(text_data=await database_sync_to_async(self._card)(room_id))

    def _card(self, room_id: int) -> str:
        room = selectors.room_list(user=self.scope["user"]).filter(pk=room_id).first()
        if room is None:
            return f'<li id="room-card-{room_id}" hx-swap-oob="delete"></li>'
        with translation.override(self.language):
            card = render_to_string(f"{LIST_TEMPLATE}#room_card", {"room": room})
        # static/chat/presence.js takes out the card's old copy first.
        return f'<div hx-swap-oob="afterbegin:#room-list">{card}</div>'
