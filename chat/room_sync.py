"""The room socket's catch-up: what a page missed, by room version or by message.

A mixin of chat.consumers.ChatConsumer, which sets `room` before any frame. A
page sends {"action": "sync", "since": <room version>} whenever its socket
opens, and {"action": "sync", "message": <id>, "seq": <n>} when a delta does
not follow what it shows or a streaming message falls silent.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.utils.translation import gettext as _

from chat import rendering, selectors
from chat.broadcast import reply_ask
from chat.frames import as_id
from chat.models import Message, Room


class RoomSync:
    room: Room

    # The consumer's own (annotations only: they must not shadow it in the MRO).
    send: Callable[..., Awaitable[None]]
    _refuse: Callable[[str], Awaitable[None]]

    async def _catch_up(self, frame: dict[str, Any]) -> None:
        if "message" in frame:
            message_id, seq = as_id(frame["message"]), as_id(frame.get("seq"), allow_zero=True)
            if message_id is not None and seq is not None:
                await self._catch_up_message(message_id, seq)
                return
        elif (since := as_id(frame.get("since"), allow_zero=True)) is not None:
            changes = await database_sync_to_async(selectors.room_changes)(
                room=self.room, since=since
            )
            await self.send(text_data=rendering.room_changes(room=self.room, changes=changes))
            return
        await self._refuse(_("Could not catch up: the sync frame was malformed."))

    async def _catch_up_message(self, message_id: int, seq: int) -> None:
        held = await database_sync_to_async(selectors.room_message_version)(
            room=self.room, pk=message_id
        )
        if held is None:
            return
        saved_seq, status = held
        if status == Message.Status.STREAMING:
            # Its process makes the next delta whole from the blocks this page holds
            # (chat.reply_stream): no read of the text, which lags the stream anyway.
            await reply_ask(message_id, seq=seq)
        elif saved_seq > seq:
            newer = await database_sync_to_async(selectors.room_message_newer)(
                room=self.room, pk=message_id, seq=seq
            )
            if newer:
                await self.send(text_data=rendering.message_oob(*newer))
