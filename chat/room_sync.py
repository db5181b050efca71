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
            since = None
        else:
            message_id, seq = None, None
            since = as_id(frame.get("since"), allow_zero=True)
        if since is None and (message_id is None or seq is None):
            await self._refuse(_("Could not catch up: the sync frame was malformed."))
            return
        if since is not None:
            changes = await database_sync_to_async(selectors.room_changes)(
                room=self.room, since=since
            )
            await self.send(text_data=rendering.room_changes(room=self.room, changes=changes))
            return
        assert message_id is not None and seq is not None
        messages, streaming = await database_sync_to_async(_newer)(self.room, message_id, seq)
        if messages:
            await self.send(text_data=rendering.message_oob(*messages))
        if streaming:
            # After the answer (each tab's frames keep their order): the reply's next
            # delta carries its tail whole, which the page can take up.
            await reply_ask(message_id)


def _newer(room: Room, pk: int, seq: int) -> tuple[list[Message], bool]:
    """The message if newer than `seq`, and whether it is a reply still streaming."""
    newer = selectors.room_message_newer(room=room, pk=pk, seq=seq)
    return newer, selectors.room_reply_streaming(room=room, pk=pk)
