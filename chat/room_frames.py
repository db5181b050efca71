"""What a page sends over its room socket: each frame's authority, then its action.

A mixin of chat.consumers.ChatConsumer. Before any frame is handled,
chat.authority checks that the socket's session still vouches for its user and
that the user still has the room: otherwise the socket is closed (4401, 4403,
4404) and nothing it sent is saved. The actions themselves are chat.turns.actions'
and the feature modules' (presence, reactions, recaps).
"""

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from chat import authority, metrics, presence, reactions, recaps, rendering
from chat.forms import MessageForm
from chat.frames import as_id, as_uuid, parse
from chat.models import Room
from chat.outbox import Outbox
from chat.throttle import TokenBucket
from chat.turns import actions
from chat.turns.refusals import Refused

logger = logging.getLogger(__name__)

# Close codes in the 4000-4999 range the protocol leaves to applications.
# A refused socket is accepted, then closed at once with its code (nothing of
# the room is sent): a close before accept reaches the browser as a bare 1006,
# which the page cannot explain and htmx retries forever.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_REMOVED = 4403
# An unknown room and someone else's room look the same.
CLOSE_ROOM_NOT_FOUND = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429


class RoomFrames:
    room: Room
    outbox: Outbox
    language: str
    scope: dict[str, Any]
    channel_name: str
    syncs: TokenBucket

    send: Callable[..., Awaitable[None]]
    close: Callable[..., Awaitable[None]]
    _catch_up: Callable[[dict[str, Any]], Awaitable[None]]
    _presence_join: Callable[[], Awaitable[None]]
    _refuse: Callable[[str], Awaitable[None]]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return
        # What this socket alone is sent (composer, notices, catch-up) is in its language.
        with translation.override(self.language):
            await self._handle(text_data)

    async def _handle(self, text_data: str | None) -> None:
        if text_data is not None and len(text_data) > settings.CHAT_FRAME_MAX_LENGTH:
            await self._refuse(_("That frame was too large, so nothing was sent."))
            return
        frame = parse(text_data)
        # Past the throttle, a sync is dropped before it costs the database thread
        # anything: the page asks again while it still lacks something.
        if frame is not None and frame.get("action") == "sync" and not self.syncs.take():
            metrics.SYNCS_DROPPED.inc()
            return
        user = self.scope["user"]
        try:
            # Who may act is asked now, not as it was when the socket opened.
            self.room = await database_sync_to_async(authority.socket_check)(
                session_key=self.scope["session"].session_key, user_id=user.pk, room_id=self.room.pk
            )
            await self._act(frame)
        except Refused as refused:
            await self._refuse(refused.text())
        except authority.SignedOut:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
        except authority.NotMember:
            await self.close(code=CLOSE_REMOVED)
        except authority.RoomGone:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
        except Exception:
            logger.exception("a frame in room %s failed", self.room.pk)
            await self._refuse(_("Something went wrong on the server, so nothing was saved."))

    async def _act(self, frame: dict[str, Any] | None) -> None:
        user, room_id = self.scope["user"], self.room.pk
        action = frame.get("action") if frame is not None else None
        message_id = as_id(frame.get("message")) if frame is not None else None
        if frame is None:
            await self._refuse(_("That frame was not a JSON object, so it was ignored."))
        elif action == "sync":
            await self._catch_up(frame)
        elif action == "stop":
            await actions.reply_stop_ask(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "regenerate":
            await actions.reply_regenerate(room_id=room_id, user=user)
        elif action == "continue":
            await actions.reply_continue(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "edit":
            await self._edit(frame, message_id)
        elif action == "join":
            await self._presence_join()
        elif action == "cancel":
            await actions.queue_cancel(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "react":
            await reactions.reaction_toggle(
                room_id=room_id, user=user, message_id=message_id, emoji=frame.get("emoji")
            )
        elif action == "typing":
            await presence.typing_send(room_id=room_id, user=user)
        elif action == "catch_up":
            await recaps.recap_ask(room=self.room, user=user, tab=self)
        elif "action" in frame:
            await self._refuse(_("Unknown action."))
        elif "content" not in frame:
            await self._refuse(_("That frame had no message content, so nothing was sent."))
        else:
            await self._send_message(frame)

    async def _send_message(self, frame: dict[str, Any]) -> None:
        # The page's id for this send: a repeat of it is answered, not saved again.
        client_id = as_uuid(frame.get("client_id"))
        answer = partial(rendering.composer_answer, client_id=str(client_id or ""))
        if client_id is None and frame.get("client_id") is not None:
            await self.send(text_data=answer(error=_("That message had a malformed id.")))
            return
        form = MessageForm(data={"content": frame["content"]})
        if not form.is_valid():
            await self.send(text_data=answer(error=" ".join(map(str, form.errors["content"]))))
            return
        try:
            await actions.message_send(
                room_id=self.room.pk,
                author=self.scope["user"],
                content=form.cleaned_data["content"],
                client_id=client_id,
            )
        except Refused as refused:
            # The page gives the sender the text back, and shows why.
            await self.send(text_data=answer(error=refused.text()))
            return
        await self.send(text_data=answer())
        await presence.typing_reset(room_id=self.room.pk, user_id=self.scope["user"].pk)

    async def _edit(self, frame: dict[str, Any], message_id: int | None) -> None:
        form = MessageForm(data={"content": frame.get("content")})
        if message_id is None:
            await self._refuse(_("Only the room's last message can be edited."))
        elif not form.is_valid():
            await self._refuse(" ".join(str(error) for error in form.errors["content"]))
        else:
            await actions.message_edit(
                room_id=self.room.pk,
                author=self.scope["user"],
                message_id=message_id,
                content=form.cleaned_data["content"],
            )
